//! `InvokeWithResponseStream` on the wire: Lambda's headers in, an AWS event stream out.
//!
//! `POST /2021-11-15/functions/{name}/response-streaming-invocations` is checked, authorised and
//! resolved exactly as `Invoke` is; then the answer is `200` with
//! `Content-Type: application/vnd.amazon.eventstream` and a body of event-stream messages, sent as
//! the function produces them: one `PayloadChunk` per chunk of the response (raw bytes,
//! `application/octet-stream`), then one `InvokeComplete` (`application/json`:
//! `ErrorCode`, `ErrorDetails`, `LogResult`). Failures that keep the function from running at all
//! (throttling, unknown function, ...) are ordinary error answers, as for `Invoke`.
//!
//! The event-stream framing (`vnd.amazon.eventstream`) is written here: per message a prelude
//! (total length, headers length, CRC-32 of those 8 bytes), the headers (name length, name, type
//! 7 = string, value length, value), the payload, and the CRC-32 of everything before it. All
//! integers are big-endian.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::channel::Channel;
use updraft_engine::{FunctionError, StreamEvent};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::invoke::{Prepared, engine_error, prepare};
use crate::{AppState, Incoming, MAX_SYNC_PAYLOAD, empty};

/// Encoded messages buffered towards the client before the function's chunks wait.
const BODY_CHANNEL: usize = 16;

/// Event-stream header value type: a UTF-8 string with a 16-bit length.
const HEADER_STRING: u8 = 7;

/// One event-stream message of type `event`.
pub(crate) fn event_message(event_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    let mut headers = BytesMut::new();
    for (name, value) in [
        (":event-type", event_type),
        (":content-type", content_type),
        (":message-type", "event"),
    ] {
        headers.put_u8(name.len() as u8);
        headers.put_slice(name.as_bytes());
        headers.put_u8(HEADER_STRING);
        headers.put_u16(value.len() as u16);
        headers.put_slice(value.as_bytes());
    }
    let total = 12 + headers.len() + payload.len() + 4;
    let mut out = BytesMut::with_capacity(total);
    out.put_u32(total as u32);
    out.put_u32(headers.len() as u32);
    let prelude_crc = crc32fast::hash(&out[..8]);
    out.put_u32(prelude_crc);
    out.put_slice(&headers);
    out.put_slice(payload);
    let message_crc = crc32fast::hash(&out);
    out.put_u32(message_crc);
    out.freeze()
}

/// A `PayloadChunk` event carrying response bytes.
pub(crate) fn payload_chunk(bytes: &[u8]) -> Bytes {
    event_message("PayloadChunk", "application/octet-stream", bytes)
}

/// The `InvokeComplete` event: the error (if the function failed) and the log tail (if asked).
pub(crate) fn invoke_complete(error: Option<&FunctionError>, log_tail: Option<&[u8]>) -> Bytes {
    let mut doc = serde_json::Map::new();
    if let Some(e) = error {
        doc.insert("ErrorCode".into(), e.error_type.clone().into());
        doc.insert(
            "ErrorDetails".into(),
            String::from_utf8_lossy(&e.error_body).into_owned().into(),
        );
    }
    if let Some(tail) = log_tail {
        doc.insert(
            "LogResult".into(),
            base64::engine::general_purpose::STANDARD
                .encode(tail)
                .into(),
        );
    }
    let payload = serde_json::Value::Object(doc).to_string();
    event_message("InvokeComplete", "application/json", payload.as_bytes())
}

/// Why a response stream was cut: its reader took nothing for the node's stream write timeout.
pub(crate) fn stalled_reader(timeout: std::time::Duration) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the reader took nothing for {timeout:?}"),
    )
}

/// `POST /2021-11-15/functions/{name}/response-streaming-invocations`.
pub async fn invoke_with_response_stream(
    state: &Arc<AppState>,
    caller: &Caller,
    req: Incoming,
    function_name: &str,
) -> ApiResult<Response> {
    // The front door reads bodies of this path with the general limit; Lambda's is 6 MB.
    if req.body.len() > MAX_SYNC_PAYLOAD {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            format!(
                "Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the InvokeWithResponseStream operation"
            ),
        ));
    }
    let (spec, invocation) = match prepare(
        state,
        caller,
        req,
        function_name,
        &["RequestResponse", "DryRun"],
    )? {
        Prepared::DryRun => return Ok(empty(StatusCode::NO_CONTENT)),
        Prepared::Run(spec, inv) => (spec, inv),
    };
    let mut stream = state
        .engine
        .invoke_streaming(spec, invocation)
        .await
        .map_err(engine_error)?;

    let executed_version = stream.executed_version.clone();
    let write_timeout = state.engine.stream_write_timeout();
    let (mut tx, body) = Channel::<Bytes, std::io::Error>::new(BODY_CHANNEL);
    tokio::spawn(async move {
        let mut completed = false;
        while let Some(ev) = stream.events.recv().await {
            let frame = match &ev {
                StreamEvent::Chunk(bytes) => payload_chunk(bytes),
                StreamEvent::Complete {
                    function_error,
                    log_tail,
                } => {
                    completed = true;
                    invoke_complete(function_error.as_ref(), log_tail.as_deref())
                }
            };
            match tokio::time::timeout(write_timeout, tx.send_data(frame)).await {
                Ok(Ok(())) => {}
                // A client that hung up: dropping the events lets the invocation run to its end.
                Ok(Err(_)) => return,
                // A client that stopped reading: the connection is cut (hyper drops what it
                // holds for it) and the invocation runs to its end without it.
                Err(_) => {
                    tx.abort(stalled_reader(write_timeout));
                    return;
                }
            }
        }
        if !completed {
            // The engine gave up on this reader: the stream must not look complete.
            tx.abort(stalled_reader(write_timeout));
        }
    });
    let mut resp = (StatusCode::OK, Body::new(body)).into_response();
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    if let Ok(v) = HeaderValue::from_str(&executed_version) {
        h.insert("x-amz-executed-version", v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoded message: headers (name, value) and payload, with both CRCs checked.
    fn decode(buf: &[u8]) -> (Vec<(String, String)>, Vec<u8>, usize) {
        let total = u32::from_be_bytes(buf[0..4].try_into().unwrap()) as usize;
        let headers_len = u32::from_be_bytes(buf[4..8].try_into().unwrap()) as usize;
        let prelude_crc = u32::from_be_bytes(buf[8..12].try_into().unwrap());
        assert_eq!(prelude_crc, crc32fast::hash(&buf[..8]), "prelude crc");
        let message_crc = u32::from_be_bytes(buf[total - 4..total].try_into().unwrap());
        assert_eq!(
            message_crc,
            crc32fast::hash(&buf[..total - 4]),
            "message crc"
        );
        let mut headers = Vec::new();
        let mut i = 12;
        while i < 12 + headers_len {
            let n = buf[i] as usize;
            let name = String::from_utf8(buf[i + 1..i + 1 + n].to_vec()).unwrap();
            i += 1 + n;
            assert_eq!(buf[i], HEADER_STRING);
            let len = u16::from_be_bytes([buf[i + 1], buf[i + 2]]) as usize;
            let value = String::from_utf8(buf[i + 3..i + 3 + len].to_vec()).unwrap();
            i += 3 + len;
            headers.push((name, value));
        }
        assert_eq!(i, 12 + headers_len);
        (headers, buf[i..total - 4].to_vec(), total)
    }

    fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
        &h.iter().find(|(k, _)| k == name).unwrap().1
    }

    #[test]
    fn crc32_is_the_ieee_polynomial() {
        // The check value of CRC-32/ISO-HDLC, the CRC event streams use.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn payload_chunks_round_trip() {
        let bytes = payload_chunk(b"hello \x00 world");
        let (h, payload, total) = decode(&bytes);
        assert_eq!(total, bytes.len());
        assert_eq!(header(&h, ":event-type"), "PayloadChunk");
        assert_eq!(header(&h, ":content-type"), "application/octet-stream");
        assert_eq!(header(&h, ":message-type"), "event");
        assert_eq!(payload, b"hello \x00 world");
    }

    #[test]
    fn known_frame_layout() {
        // An empty payload: 12 bytes of prelude, the headers, 4 bytes of CRC.
        let bytes = event_message("E", "t", b"");
        let headers_len = (1 + 11 + 1 + 2 + 1) + (1 + 13 + 1 + 2 + 1) + (1 + 13 + 1 + 2 + 5);
        assert_eq!(&bytes[4..8], &(headers_len as u32).to_be_bytes());
        assert_eq!(bytes.len(), 12 + headers_len + 4);
        assert_eq!(&bytes[0..4], &(bytes.len() as u32).to_be_bytes());
        // Any flipped bit is caught by the message CRC.
        let mut broken = bytes.to_vec();
        broken[14] ^= 1;
        assert_ne!(
            crc32fast::hash(&broken[..broken.len() - 4]),
            u32::from_be_bytes(broken[broken.len() - 4..].try_into().unwrap())
        );
    }

    #[test]
    fn invoke_complete_carries_error_and_tail() {
        let err = FunctionError {
            error_type: "TypeError".into(),
            error_body: Bytes::from_static(br#"{"errorMessage":"x"}"#),
        };
        let bytes = invoke_complete(Some(&err), Some(b"START\nEND\n"));
        let (h, payload, _) = decode(&bytes);
        assert_eq!(header(&h, ":event-type"), "InvokeComplete");
        assert_eq!(header(&h, ":content-type"), "application/json");
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(v["ErrorCode"], "TypeError");
        assert_eq!(v["ErrorDetails"], r#"{"errorMessage":"x"}"#);
        assert_eq!(v["LogResult"], "U1RBUlQKRU5ECg==");

        let (_, payload, _) = decode(&invoke_complete(None, None));
        assert_eq!(payload, b"{}");
    }
}
