//! Payload format 2.0, the event Function URLs (and API Gateway HTTP APIs) hand a function, and
//! the way the function's answer is read back as an HTTP response.
//!
//! Both directions are pure functions of their inputs so they are tested without a server.

use axum::http::HeaderMap;
use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The caller of an `AWS_IAM` URL, as `requestContext.authorizer.iam` shows it.
#[derive(Debug, Clone)]
pub struct IamCaller {
    pub access_key: String,
    pub account_id: String,
}

/// One HTTP request to a Function URL.
#[derive(Debug, Clone)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// The path the function sees (without any `/lambda-url/<id>` prefix), still percent-encoded.
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: &'a str,
    pub url_id: &'a str,
    /// `<url-id>.lambda-url.<region>.<domain>`.
    pub domain_name: &'a str,
    pub request_id: &'a str,
    /// `None` for `AuthType NONE`.
    pub iam: Option<&'a IamCaller>,
    pub time: time::OffsetDateTime,
}

/// What the function's answer means as an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    /// Header names as the function wrote them.
    pub headers: Vec<(String, String)>,
    /// One `Set-Cookie` each.
    pub cookies: Vec<String>,
    pub body: Vec<u8>,
}

/// Why a function's answer cannot be turned into a response (Lambda answers 502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the function's answer is not json")]
    NotJson,
    #[error("statusCode is not an http status")]
    BadStatus,
    #[error("body is not valid base64")]
    BadBase64,
}

/// Whether a body of this content type travels as text (otherwise it is base64-encoded).
pub fn is_text_content_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, sub)) = mime.split_once('/') else {
        return false;
    };
    kind == "text"
        || (kind == "application"
            && (matches!(sub, "json" | "xml" | "javascript" | "ecmascript")
                || sub.ends_with("+json")
                || sub.ends_with("+xml")))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `queryStringParameters`: decoded, repeated keys joined with commas, in first-seen order.
fn query_parameters(raw: &str) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k), percent_decode(v));
        match out.get_mut(&k) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                out.insert(k, Value::String(v));
            }
        }
    }
    out
}

/// `12/Mar/2020:19:03:58 +0000`.
fn clf_time(t: time::OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// Builds the version 2.0 event for a request.
pub fn request_event(r: &HttpRequest<'_>) -> Value {
    let mut headers: Map<String, Value> = Map::new();
    let mut cookies: Vec<String> = Vec::new();
    for name in r.headers.keys() {
        let values: Vec<String> = r
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if name == "cookie" {
            for v in values {
                cookies.extend(
                    v.split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(str::to_string),
                );
            }
            continue;
        }
        headers.insert(name.as_str().to_string(), json!(values.join(",")));
    }
    let user_agent = r
        .headers
        .get("user-agent")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let mut context = json!({
        "accountId": r.iam.map(|i| i.account_id.as_str()).unwrap_or("anonymous"),
        "apiId": r.url_id,
        "domainName": r.domain_name,
        "domainPrefix": r.url_id,
        "http": {
            "method": r.method,
            "path": r.raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": r.source_ip,
            "userAgent": user_agent,
        },
        "requestId": r.request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": clf_time(r.time),
        "timeEpoch": (r.time.unix_timestamp_nanos() / 1_000_000) as i64,
    });
    if let Some(iam) = r.iam {
        // Updraft's callers are account root keys.
        context["authorizer"] = json!({
            "iam": {
                "accessKey": iam.access_key,
                "accountId": iam.account_id,
                "callerId": iam.account_id,
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": format!("arn:aws:iam::{}:root", iam.account_id),
                "userId": iam.account_id,
            }
        });
    }
    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!("$default"));
    event.insert("rawPath".into(), json!(r.raw_path));
    event.insert("rawQueryString".into(), json!(r.raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), Value::Object(headers));
    if !r.raw_query.is_empty() {
        event.insert(
            "queryStringParameters".into(),
            Value::Object(query_parameters(r.raw_query)),
        );
    }
    event.insert("requestContext".into(), context);
    let mut base64 = false;
    if !r.body.is_empty() {
        let content_type = r.headers.get("content-type").and_then(|v| v.to_str().ok());
        match std::str::from_utf8(r.body) {
            Ok(text) if is_text_content_type(content_type) => {
                event.insert("body".into(), json!(text));
            }
            _ => {
                base64 = true;
                event.insert(
                    "body".into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(r.body)),
                );
            }
        }
    }
    event.insert("isBase64Encoded".into(), json!(base64));
    Value::Object(event)
}

fn header_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Reads a function's answer: an object with `statusCode` is a response description; any other
/// JSON value is the body of a `200` `application/json` response.
pub fn interpret_answer(payload: &[u8]) -> Result<HttpAnswer, AnswerError> {
    let value: Value = serde_json::from_slice(payload).map_err(|_| AnswerError::NotJson)?;
    let obj = match &value {
        Value::Object(o) if o.contains_key("statusCode") => o,
        _ => {
            return Ok(HttpAnswer {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                cookies: Vec::new(),
                body: payload.to_vec(),
            });
        }
    };
    let status = obj
        .get("statusCode")
        .and_then(Value::as_u64)
        .filter(|s| (100..=599).contains(s))
        .ok_or(AnswerError::BadStatus)? as u16;
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(Value::Object(h)) = obj.get("headers") {
        for (k, v) in h {
            if let Some(v) = header_text(v) {
                headers.push((k.clone(), v));
            }
        }
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".into(), "application/json".into()));
    }
    let cookies = match obj.get("cookies") {
        Some(Value::Array(a)) => a.iter().filter_map(header_text).collect(),
        _ => Vec::new(),
    };
    let text = match obj.get("body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let body = if obj.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| AnswerError::BadBase64)?
    } else {
        text.into_bytes()
    };
    Ok(HttpAnswer {
        status,
        headers,
        cookies,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn request<'a>(headers: &'a HeaderMap, query: &'a str, body: &'a [u8]) -> HttpRequest<'a> {
        HttpRequest {
            method: "POST",
            raw_path: "/a/b",
            raw_query: query,
            headers,
            body,
            source_ip: "127.0.0.1",
            url_id: "abc",
            domain_name: "abc.lambda-url.us-east-1.localhost",
            request_id: "rid",
            iam: None,
            time: time::macros::datetime!(2020-03-12 19:03:58.123 UTC),
        }
    }

    #[test]
    fn event_shape() {
        let mut h = HeaderMap::new();
        h.append("x-multi", HeaderValue::from_static("1"));
        h.append("x-multi", HeaderValue::from_static("2"));
        h.append("cookie", HeaderValue::from_static("a=1; b=2"));
        h.append("content-type", HeaderValue::from_static("application/json"));
        h.append("user-agent", HeaderValue::from_static("ua/1"));
        let e = request_event(&request(&h, "x=1&x=2&y=%20z", b"{\"k\":1}"));
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "$default");
        assert_eq!(e["rawPath"], "/a/b");
        assert_eq!(e["rawQueryString"], "x=1&x=2&y=%20z");
        assert_eq!(e["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(e["headers"]["x-multi"], "1,2");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["queryStringParameters"], json!({"x": "1,2", "y": " z"}));
        assert_eq!(e["body"], "{\"k\":1}");
        assert_eq!(e["isBase64Encoded"], false);
        let c = &e["requestContext"];
        assert_eq!(c["accountId"], "anonymous");
        assert_eq!(c["time"], "12/Mar/2020:19:03:58 +0000");
        assert_eq!(c["timeEpoch"], 1_584_039_838_123i64);
        assert_eq!(c["http"]["userAgent"], "ua/1");
        assert_eq!(c["http"]["method"], "POST");
        assert_eq!(c["stage"], "$default");
    }

    #[test]
    fn binary_and_absent_bodies() {
        let mut h = HeaderMap::new();
        h.append(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        let e = request_event(&request(&h, "", &[0, 159, 255]));
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "AJ//");
        assert!(e.get("queryStringParameters").is_none());
        assert!(e.get("cookies").is_none());
        let none = request_event(&request(&h, "", b""));
        assert!(none.get("body").is_none());
        assert_eq!(none["isBase64Encoded"], false);
        // Text types that are not valid UTF-8 still travel as base64.
        let mut t = HeaderMap::new();
        t.append("content-type", HeaderValue::from_static("text/plain"));
        assert_eq!(
            request_event(&request(&t, "", &[0xff]))["isBase64Encoded"],
            true
        );
    }

    #[test]
    fn text_types() {
        assert!(is_text_content_type(Some("text/html; charset=utf-8")));
        assert!(is_text_content_type(Some("application/vnd.api+json")));
        assert!(!is_text_content_type(Some("image/png")));
        assert!(!is_text_content_type(Some(
            "application/x-www-form-urlencoded"
        )));
        assert!(!is_text_content_type(None));
    }

    #[test]
    fn structured_answers() {
        let a = interpret_answer(
            br#"{"statusCode": 201, "headers": {"X-A": "b", "X-N": 5}, "cookies": ["c=1", "d=2"], "body": "hi"}"#,
        )
        .unwrap();
        assert_eq!(a.status, 201);
        assert!(a.headers.contains(&("X-A".into(), "b".into())));
        assert!(a.headers.contains(&("X-N".into(), "5".into())));
        assert!(
            a.headers
                .contains(&("content-type".into(), "application/json".into()))
        );
        assert_eq!(a.cookies, ["c=1", "d=2"]);
        assert_eq!(a.body, b"hi");
        let b =
            interpret_answer(br#"{"statusCode": 200, "body": "AJ//", "isBase64Encoded": true}"#)
                .unwrap();
        assert_eq!(b.body, [0, 159, 255]);
        assert_eq!(
            interpret_answer(br#"{"statusCode": 99}"#).unwrap_err(),
            AnswerError::BadStatus
        );
        assert_eq!(
            interpret_answer(br#"{"statusCode": 200, "body": "@@", "isBase64Encoded": true}"#)
                .unwrap_err(),
            AnswerError::BadBase64
        );
        assert_eq!(
            interpret_answer(b"not json").unwrap_err(),
            AnswerError::NotJson
        );
    }

    #[test]
    fn bare_values_are_json_bodies() {
        for payload in [&br#"{"message": "hi"}"#[..], b"\"hello\"", b"42", b"[1,2]"] {
            let a = interpret_answer(payload).unwrap();
            assert_eq!(a.status, 200);
            assert_eq!(a.body, payload);
            assert_eq!(
                a.headers,
                [("content-type".to_string(), "application/json".to_string())]
            );
        }
    }
}
