//! The front door's side of the queue service: which requests are SQS's, and the hand-over to
//! `updraft_queues`' protocol modules (the queue crate owns SQS's wire shapes).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use updraft_queues::{CallContext, WireResponse, wire_json, wire_query};

use crate::auth::Caller;
use crate::{AppState, Incoming};

/// Largest SQS request body: a 1 MiB message escaped by JSON or percent-encoding, with room
/// for its attributes; each message's own limit is checked by the queue service.
pub const MAX_SQS_BODY: usize = 8 * 1024 * 1024;

/// Whether a request (whose head is authenticated for `service`) is for the queue service.
pub fn is_sqs(service: &str, headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.starts_with("AmazonSQS."))
        || service == "sqs"
}

/// Serves an SQS request in the protocol it came in.
pub async fn handle(
    state: &AppState,
    caller: &Caller,
    incoming: Incoming,
    raw_query: &str,
) -> Response {
    let Some(queues) = state.queues.get() else {
        return to_response(wire_json::error(&updraft_queues::QueueError::Internal));
    };
    if caller.service != "sqs" {
        let e = crate::error::ApiError::new(
            StatusCode::FORBIDDEN,
            "InvalidSignatureException",
            format!(
                "Credential should be scoped to correct service: 'sqs', not '{}'.",
                caller.service
            ),
        );
        if let Some(resp) = auth_error(&incoming.headers, raw_query, &incoming.request_id, &e) {
            return resp;
        }
    }
    let ctx = CallContext {
        account: caller.account_id.clone(),
        access_key_id: caller.access_key_id.clone(),
        host: incoming.host.clone(),
        request_id: incoming.request_id.clone(),
    };
    if let Some(target) = incoming.header("x-amz-target") {
        return to_response(wire_json::handle(queues, &ctx, target, &incoming.body).await);
    }
    let mut params = wire_query::parse_form(raw_query);
    if !incoming.body.is_empty() {
        params.extend(wire_query::parse_form(&String::from_utf8_lossy(
            &incoming.body,
        )));
    }
    let path_queue = match incoming.segments.as_slice() {
        [account, name] => Some(format!("http://{}/{account}/{name}", incoming.host)),
        _ => None,
    };
    to_response(wire_query::handle(queues, &ctx, &params, path_queue).await)
}

/// Whether a request is meant for the queue service, judged before it is authenticated (so
/// that an authentication failure is answered in SQS's error shape).
fn looks_like_sqs(headers: &axum::http::HeaderMap, raw_query: &str) -> bool {
    let scoped = |v: &str| v.contains("/sqs/aws4_request");
    is_sqs("", headers)
        || headers
            .get("authorization")
            .and_then(|a| a.to_str().ok())
            .is_some_and(scoped)
        || scoped(&raw_query.replace("%2F", "/").replace("%2f", "/"))
}

/// An authentication failure of an SQS request, in the protocol it came in: the JSON
/// protocol's `__type` and `x-amzn-query-error`, or the query protocol's `ErrorResponse`, with
/// SQS's query codes. `None` for requests of other services.
pub fn auth_error(
    headers: &axum::http::HeaderMap,
    raw_query: &str,
    request_id: &str,
    e: &crate::error::ApiError,
) -> Option<Response> {
    if !looks_like_sqs(headers, raw_query) {
        return None;
    }
    let query_code = match e.code {
        "UnrecognizedClientException" => "InvalidClientTokenId",
        "InvalidSignatureException" => "SignatureDoesNotMatch",
        "IncompleteSignatureException" => "IncompleteSignature",
        "MissingAuthenticationTokenException" => "MissingAuthenticationToken",
        other => other,
    };
    let status = e.status.as_u16();
    let fault = if status >= 500 { "Receiver" } else { "Sender" };
    let w = if headers.contains_key("x-amz-target") {
        WireResponse {
            status,
            headers: vec![
                ("content-type", "application/x-amz-json-1.0".into()),
                ("x-amzn-query-error", format!("{query_code};{fault}")),
            ],
            body: serde_json::to_vec(&serde_json::json!({
                "__type": format!("com.amazon.coral.service#{}", e.code),
                "message": e.message,
            }))
            .unwrap_or_default(),
        }
    } else {
        let esc = |t: &str| {
            t.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        WireResponse {
            status,
            headers: vec![("content-type", "text/xml".into())],
            body: format!(
                "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><Error><Type>{fault}</Type><Code>{query_code}</Code><Message>{}</Message><Detail/></Error><RequestId>{}</RequestId></ErrorResponse>",
                esc(&e.message),
                esc(request_id)
            )
            .into_bytes(),
        }
    };
    Some(to_response(w))
}

fn to_response(w: WireResponse) -> Response {
    let mut resp = Response::new(Body::from(w.body));
    *resp.status_mut() =
        StatusCode::from_u16(w.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in w.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}
