//! Function URLs: their management operations (`/2021-10-31/functions/{name}/url[s]`) and the
//! URLs themselves.
//!
//! A URL request is recognised by its host (`<url-id>.lambda-url.<region>.localhost` or
//! `….on.aws`) or by the path prefix `/lambda-url/<url-id>/` for clients without wildcard DNS. It
//! is routed here before SigV4: `NONE` URLs are public (the resource policy must say so), and
//! `AWS_IAM` URLs check the signature themselves. The request becomes a payload format 2.0 event
//! ([`crate::payload_v2`]), runs through the same Invoke path as the API, and the function's
//! answer becomes the HTTP response, with the URL's CORS settings applied. URLs with
//! `InvokeMode: RESPONSE_STREAM` run the function as `InvokeWithResponseStream` does and pass its
//! bytes on as they come, reading the status and headers from the HTTP prelude when the response
//! has one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::channel::Channel;
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_control::url::{Cors, InvokeMode, UrlAuthType, UrlInput};
use updraft_control::{UrlTarget, UrlView};
use updraft_engine::{Invocation, StreamEvent, StreamingInvocation};

use crate::auth::{Caller, header_pairs};
use crate::body::BodyError;
use crate::error::{ApiError, ApiResult, blocking, owned};
use crate::payload_v2::{self, HttpRequest, IamCaller};
use crate::{AppState, Incoming, MAX_SYNC_PAYLOAD, empty, json, unread};

/// Where a URL request goes: the url-id and the path the function sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRoute {
    pub url_id: String,
    /// Raw (still percent-encoded) path, always starting with `/`.
    pub path: String,
    /// Whether the host named the URL (else the `/lambda-url/` path prefix did).
    pub by_host: bool,
}

/// The url-id a `Host` header names, if it is a Function URL host.
fn url_id_of_host(host: &str) -> Option<String> {
    let host = host.trim().to_ascii_lowercase();
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
        _ => host,
    };
    let name = name.trim_end_matches('.');
    let rest = name
        .strip_suffix(".localhost")
        .or_else(|| name.strip_suffix(".on.aws"))?;
    let (id, region) = rest.split_once(".lambda-url.")?;
    (updraft_control::url::is_url_id(id) && !region.is_empty() && !region.contains('.'))
        .then(|| id.to_string())
}

/// Recognises a Function URL request by host or by path prefix.
pub fn url_route(host: Option<&str>, raw_path: &str) -> Option<UrlRoute> {
    if let Some(id) = host.and_then(url_id_of_host) {
        let path = if raw_path.is_empty() { "/" } else { raw_path };
        return Some(UrlRoute {
            url_id: id,
            path: path.to_string(),
            by_host: true,
        });
    }
    let rest = raw_path.strip_prefix("/lambda-url/")?;
    let (id, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    updraft_control::url::is_url_id(id).then(|| UrlRoute {
        url_id: id.to_string(),
        path: path.to_string(),
        by_host: false,
    })
}

/// An answer of the URL front itself (not of the function): `{"Message": ...}`.
fn message(status: StatusCode, text: &str) -> Response {
    let mut resp = (status, axum::Json(json!({ "Message": text }))).into_response();
    if status == StatusCode::FORBIDDEN {
        resp.headers_mut().insert(
            "x-amzn-ErrorType",
            HeaderValue::from_static("AccessDeniedException"),
        );
    }
    resp
}

fn forbidden() -> Response {
    message(StatusCode::FORBIDDEN, "Forbidden")
}

fn too_large() -> Response {
    message(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!(
            "Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the InvokeFunction operation"
        ),
    )
}

/// The URL front's answer to a body that could not be read; the connection is closed after it.
fn body_error(e: &BodyError) -> Response {
    let resp = match e {
        BodyError::TooLarge { .. } => too_large(),
        BodyError::Timeout(_) => message(StatusCode::REQUEST_TIMEOUT, "Request Timeout"),
        BodyError::OverBudget(_) => {
            tracing::warn!("Function URL request body refused: the node's body budget is full");
            let mut resp = message(StatusCode::TOO_MANY_REQUESTS, "Rate Exceeded.");
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            resp
        }
        BodyError::Read(_) => message(StatusCode::BAD_REQUEST, "Bad Request"),
    };
    unread(true, resp)
}

fn bad_gateway() -> Response {
    message(StatusCode::BAD_GATEWAY, "Internal Server Error")
}

// ------------------------------------------------------------------------------------ CORS

fn list(v: &Option<Vec<String>>) -> &[String] {
    v.as_deref().unwrap_or(&[])
}

/// Whether `origin` matches one of the allowed origins (`*` anywhere in an entry is a wildcard).
pub fn origin_allowed(cors: &Cors, origin: &str) -> bool {
    list(&cors.allow_origins).iter().any(|o| {
        o == "*"
            || o.eq_ignore_ascii_case(origin)
            || (o.contains('*')
                && updraft_control::policy::arn_like(
                    &o.to_ascii_lowercase(),
                    &origin.to_ascii_lowercase(),
                ))
    })
}

fn allow_origin_value(cors: &Cors, origin: &str) -> String {
    let wildcard = list(&cors.allow_origins).iter().any(|o| o == "*");
    if wildcard && cors.allow_credentials != Some(true) {
        "*".into()
    } else {
        origin.to_string()
    }
}

/// Headers answering a preflight, or `None` when the origin, method or headers are not allowed.
pub fn preflight_headers(
    cors: &Cors,
    origin: &str,
    method: &str,
    request_headers: Option<&str>,
) -> Option<Vec<(&'static str, String)>> {
    if !origin_allowed(cors, origin) {
        return None;
    }
    let methods = list(&cors.allow_methods);
    let method_ok = methods
        .iter()
        .any(|m| m == "*" || m.eq_ignore_ascii_case(method));
    if !method_ok {
        return None;
    }
    let allowed_headers = list(&cors.allow_headers);
    let headers_ok = request_headers
        .into_iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .all(|h| {
            allowed_headers
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(h))
        });
    if !headers_ok {
        return None;
    }
    let mut out = vec![
        (
            "access-control-allow-origin",
            allow_origin_value(cors, origin),
        ),
        ("access-control-allow-methods", methods.join(",")),
    ];
    if !allowed_headers.is_empty() {
        out.push(("access-control-allow-headers", allowed_headers.join(",")));
    }
    if cors.allow_credentials == Some(true) {
        out.push(("access-control-allow-credentials", "true".into()));
    }
    if let Some(age) = cors.max_age {
        out.push(("access-control-max-age", age.to_string()));
    }
    out.push(("vary", "Origin".into()));
    Some(out)
}

/// CORS headers added to an actual response for a request from `origin`.
pub fn response_cors_headers(cors: &Cors, origin: Option<&str>) -> Vec<(&'static str, String)> {
    let Some(origin) = origin.filter(|o| origin_allowed(cors, o)) else {
        return Vec::new();
    };
    let mut out = vec![(
        "access-control-allow-origin",
        allow_origin_value(cors, origin),
    )];
    let expose = list(&cors.expose_headers);
    if !expose.is_empty() {
        out.push(("access-control-expose-headers", expose.join(",")));
    }
    if cors.allow_credentials == Some(true) {
        out.push(("access-control-allow-credentials", "true".into()));
    }
    out.push(("vary", "Origin".into()));
    out
}

// ------------------------------------------------------------------------------ URL requests

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Serves one request to a Function URL.
pub async fn serve(
    state: &Arc<AppState>,
    parts: axum::http::request::Parts,
    body: Body,
    request_id: &str,
    route: UrlRoute,
) -> Response {
    let has_body = crate::body::announces_body(&parts.headers);
    let Some(target) = state.control.resolve_url(&route.url_id) else {
        return unread(has_body, forbidden());
    };
    let origin = header(&parts.headers, "origin");
    // Preflights are the platform's to answer, before any authentication (browsers send none).
    if let Some(cors) = &target.config.cors
        && parts.method == Method::OPTIONS
        && let (Some(origin), Some(method)) = (
            origin,
            header(&parts.headers, "access-control-request-method"),
        )
    {
        let mut resp = empty(StatusCode::OK);
        let wanted = header(&parts.headers, "access-control-request-headers");
        for (k, v) in preflight_headers(cors, origin, method, wanted).unwrap_or_default() {
            if let Ok(v) = HeaderValue::from_str(&v) {
                resp.headers_mut().insert(k, v);
            }
        }
        return unread(has_body, resp);
    }
    let raw_path = parts.uri.path();
    let raw_query = parts.uri.query().unwrap_or("");
    // Who may call is settled from the head; only then is the body read (a `NONE` URL is
    // public: its body is bounded by the payload limit, the deadline and the node's budget).
    let pending = match target.config.auth_type {
        UrlAuthType::None => {
            let open = updraft_control::policy::url_invoke_allowed(
                &target.policy,
                None,
                UrlAuthType::None,
            );
            if !open {
                return unread(has_body, forbidden());
            }
            None
        }
        UrlAuthType::AwsIam => {
            let pairs = header_pairs(&parts.headers);
            let pending = match crate::auth::authenticate_head(
                &state.keys,
                &state.region,
                parts.method.as_str(),
                raw_path,
                raw_query,
                &pairs,
            ) {
                Ok(p) if p.service() == "lambda" && !(p.empty_body_only() && has_body) => p,
                _ => return unread(has_body, forbidden()),
            };
            let allowed = pending.account_id() == target.account_id
                || updraft_control::policy::url_invoke_allowed(
                    &target.policy,
                    Some(pending.account_id()),
                    UrlAuthType::AwsIam,
                );
            if !allowed {
                return unread(has_body, forbidden());
            }
            Some(pending)
        }
    };
    let read = match state
        .bodies
        .read(
            body,
            crate::body::declared_len(&parts.headers),
            MAX_SYNC_PAYLOAD,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return body_error(&e),
    };
    let iam = match pending.map(|p| p.finish(&read.sha256_hex)) {
        None => None,
        Some(Ok(caller)) => Some(IamCaller {
            access_key: caller.access_key_id,
            account_id: caller.account_id,
        }),
        Some(Err(_)) => return forbidden(),
    };
    let body = &read.bytes;
    let host_domain = header(&parts.headers, "host")
        .map(|h| h.rsplit_once(':').map_or(h, |(n, _)| n).to_string());
    let domain_name = match host_domain {
        Some(h) if route.by_host => h,
        _ => format!("{}.lambda-url.{}.localhost", route.url_id, state.region),
    };
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let event = payload_v2::request_event(&HttpRequest {
        method: parts.method.as_str(),
        raw_path: &route.path,
        raw_query,
        headers: &parts.headers,
        body,
        source_ip: &source_ip,
        url_id: &route.url_id,
        domain_name: &domain_name,
        request_id,
        iam: iam.as_ref(),
        time: time::OffsetDateTime::now_utc(),
    });
    let event = match serde_json::to_vec(&event) {
        Ok(e) => bytes::Bytes::from(e),
        Err(e) => return ApiError::service(e).into_response(),
    };
    if event.len() > MAX_SYNC_PAYLOAD {
        return too_large();
    }
    match target.config.invoke_mode {
        InvokeMode::Buffered => {
            let payload = match invoke_buffered(state, &target, event, request_id).await {
                Ok(p) => p,
                Err(resp) => return resp,
            };
            let answer = match payload_v2::interpret_answer(&payload) {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, url_id = %route.url_id, "unusable function url answer");
                    return bad_gateway();
                }
            };
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut resp = (status, Body::from(answer.body)).into_response();
            apply_answer_headers(
                resp.headers_mut(),
                &answer.headers,
                &answer.cookies,
                target.config.cors.as_ref(),
                origin,
            );
            resp
        }
        InvokeMode::ResponseStream => {
            invoke_response_stream(state, &target, event, request_id, origin).await
        }
    }
}

/// Puts the function's headers and cookies on a URL response, then the URL's CORS headers for a
/// request from `origin`.
fn apply_answer_headers(
    h: &mut HeaderMap,
    headers: &[(String, String)],
    cookies: &[String],
    cors: Option<&Cors>,
    origin: Option<&str>,
) {
    for (k, v) in headers {
        let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) else {
            continue;
        };
        // With CORS configured the platform owns the CORS headers, as on Lambda.
        if cors.is_some() && k.as_str().starts_with("access-control-") {
            continue;
        }
        h.append(k, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append("set-cookie", v);
        }
    }
    if let Some(cors) = cors {
        for (k, v) in response_cors_headers(cors, origin) {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
    }
}

/// Runs the function through the API's Invoke path and returns its raw answer, or the URL
/// response for a failure (502 for function errors, 429 for throttles).
async fn invoke_buffered(
    state: &Arc<AppState>,
    target: &UrlTarget,
    event: bytes::Bytes,
    request_id: &str,
) -> Result<bytes::Bytes, Response> {
    let caller = Caller {
        account_id: target.account_id.clone(),
        access_key_id: String::new(),
        region: state.region.clone(),
        service: "lambda".into(),
    };
    let req = Incoming {
        method: Method::POST,
        segments: Vec::new(),
        query: target
            .qualifier
            .iter()
            .map(|q| ("Qualifier".to_string(), q.clone()))
            .collect(),
        headers: HeaderMap::new(),
        body: event,
        request_id: request_id.to_string(),
        host: String::new(),
        budget: None,
    };
    match crate::invoke::invoke(state, &caller, req, &target.function_name).await {
        Ok(resp) => {
            if resp.headers().contains_key("x-amz-function-error") {
                return Err(bad_gateway());
            }
            axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .map_err(|_| bad_gateway())
        }
        Err(e) => Err(invoke_failure(e)),
    }
}

// ------------------------------------------------------------------------- streamed responses

/// Content type of a streamed response that opens with the HTTP prelude.
const HTTP_INTEGRATION: &str = "application/vnd.awslambda.http-integration-response";

/// What ends the prelude of an HTTP-integration response.
const PRELUDE_DELIMITER: [u8; 8] = [0; 8];

/// Largest prelude read before the response is given up as unusable.
const MAX_PRELUDE: usize = 64 * 1024;

/// Body frames buffered towards the client before the function's chunks wait.
const URL_BODY_CHANNEL: usize = 16;

/// The status and headers an HTTP-integration response opens with
/// (`awslambda.HttpResponseStream.from(stream, {statusCode, headers, cookies})`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prelude {
    pub status: u16,
    /// Header names as the function wrote them.
    pub headers: Vec<(String, String)>,
    /// One `Set-Cookie` each.
    pub cookies: Vec<String>,
}

/// Why a prelude cannot be used (the client gets a 502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreludeError {
    #[error("the prelude is not a json object")]
    NotJson,
    #[error("statusCode is not an http status")]
    BadStatus,
    #[error("the prelude is longer than {MAX_PRELUDE} bytes")]
    TooLong,
    #[error("the response ended before the prelude did")]
    Unterminated,
}

fn prelude_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Reads the prelude's JSON: `statusCode` (200 when absent), `headers`, `cookies`.
pub fn parse_prelude(raw: &[u8]) -> Result<Prelude, PreludeError> {
    let value: Value = serde_json::from_slice(raw).map_err(|_| PreludeError::NotJson)?;
    let Value::Object(obj) = value else {
        return Err(PreludeError::NotJson);
    };
    let status = match obj.get("statusCode") {
        None | Some(Value::Null) => 200,
        Some(v) => v
            .as_u64()
            .filter(|s| (100..=599).contains(s))
            .ok_or(PreludeError::BadStatus)? as u16,
    };
    let headers = match obj.get("headers") {
        Some(Value::Object(h)) => h
            .iter()
            .filter_map(|(k, v)| prelude_text(v).map(|v| (k.clone(), v)))
            .collect(),
        _ => Vec::new(),
    };
    let cookies = match obj.get("cookies") {
        Some(Value::Array(a)) => a.iter().filter_map(prelude_text).collect(),
        _ => Vec::new(),
    };
    Ok(Prelude {
        status,
        headers,
        cookies,
    })
}

/// Gathers the start of an HTTP-integration response until the 8 NUL bytes that end its
/// prelude, wherever chunk boundaries fall. JSON text holds no NUL byte, so the first run of
/// eight is the delimiter.
#[derive(Debug, Default)]
pub struct PreludeReader {
    buf: Vec<u8>,
}

impl PreludeReader {
    /// Takes the next chunk: `Ok(Some((prelude, rest of the chunk)))` once the delimiter has
    /// been seen, `Ok(None)` while it has not.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Option<(Prelude, bytes::Bytes)>, PreludeError> {
        // A delimiter may have begun in the bytes already held.
        let from = self.buf.len().saturating_sub(PRELUDE_DELIMITER.len() - 1);
        self.buf.extend_from_slice(chunk);
        let found = self.buf[from..]
            .windows(PRELUDE_DELIMITER.len())
            .position(|w| w == PRELUDE_DELIMITER)
            .map(|i| from + i);
        match found {
            Some(end) if end > MAX_PRELUDE => Err(PreludeError::TooLong),
            Some(end) => {
                let prelude = parse_prelude(&self.buf[..end])?;
                let rest =
                    bytes::Bytes::copy_from_slice(&self.buf[end + PRELUDE_DELIMITER.len()..]);
                Ok(Some((prelude, rest)))
            }
            None if self.buf.len() > MAX_PRELUDE + PRELUDE_DELIMITER.len() => {
                Err(PreludeError::TooLong)
            }
            None => Ok(None),
        }
    }
}

/// Whether a runtime's content type announces the HTTP prelude.
fn is_http_integration(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case(HTTP_INTEGRATION))
}

/// The URL answer for an invocation that could not run: 429 for throttles, else 502.
fn invoke_failure(e: ApiError) -> Response {
    if e.status == StatusCode::TOO_MANY_REQUESTS {
        return message(StatusCode::TOO_MANY_REQUESTS, "Rate Exceeded.");
    }
    tracing::warn!(code = e.code, message = %e.message, "function url invocation failed");
    bad_gateway()
}

/// URLs with `InvokeMode: RESPONSE_STREAM`: the function runs as `InvokeWithResponseStream` runs
/// it and its bytes reach the client as it writes them.
///
/// A response of type `application/vnd.awslambda.http-integration-response` opens with a JSON
/// prelude (status, headers, cookies) and 8 NUL bytes; the bytes after them are the body. Any
/// other response (streamed, or a buffered function's payload, which is not read as a payload
/// format 2.0 answer in this mode) is the body of a `200` with the runtime's content type.
/// A failure before the first byte reaches the client is a 502; after it, the body just ends.
async fn invoke_response_stream(
    state: &Arc<AppState>,
    target: &UrlTarget,
    event: bytes::Bytes,
    request_id: &str,
    origin: Option<&str>,
) -> Response {
    let resolved = match state.control.resolve(
        &target.account_id,
        &target.function_name,
        target.qualifier.as_deref(),
        crate::invoke::rand_unit(),
    ) {
        Ok(r) => r,
        Err(e) => return invoke_failure(ApiError::from(e)),
    };
    let invoked_arn = match target.qualifier.as_deref().filter(|q| !q.is_empty()) {
        Some(q) => format!("{}:{q}", resolved.function_arn),
        None => resolved.function_arn.clone(),
    };
    let spec = state.spec_cache.get(&resolved);
    let stream = state
        .engine
        .invoke_streaming(
            spec,
            Invocation {
                request_id: request_id.to_string(),
                payload: event,
                invoked_function_arn: invoked_arn,
                client_context: None,
                cognito_identity: None,
                trace_id: None,
                want_log_tail: false,
                source: updraft_engine::InvocationSource::Url,
            },
        )
        .await;
    let StreamingInvocation {
        content_type,
        mut events,
        ..
    } = match stream {
        Ok(s) => s,
        Err(e) => return invoke_failure(crate::invoke::engine_error(e)),
    };

    // Nothing goes to the client until the status is known: a failure up to then is a 502.
    let (status, headers, cookies, first) = if is_http_integration(content_type.as_deref()) {
        let mut reader = PreludeReader::default();
        loop {
            match events.recv().await {
                Some(StreamEvent::Chunk(bytes)) => match reader.push(&bytes) {
                    Ok(Some((p, rest))) => break (p.status, p.headers, p.cookies, rest),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "unusable function url prelude");
                        return bad_gateway();
                    }
                },
                Some(StreamEvent::Complete {
                    function_error: Some(fe),
                    ..
                }) => {
                    tracing::debug!(error_type = %fe.error_type, "function url invocation failed before its prelude");
                    return bad_gateway();
                }
                Some(StreamEvent::Complete { .. }) | None => {
                    tracing::debug!(error = %PreludeError::Unterminated, "unusable function url prelude");
                    return bad_gateway();
                }
            }
        }
    } else {
        let first = match events.recv().await {
            Some(StreamEvent::Chunk(bytes)) => bytes,
            Some(StreamEvent::Complete {
                function_error: Some(fe),
                ..
            }) => {
                tracing::debug!(error_type = %fe.error_type, "function url invocation failed");
                return bad_gateway();
            }
            Some(StreamEvent::Complete { .. }) | None => bytes::Bytes::new(),
        };
        let ct = content_type.unwrap_or_else(|| "application/octet-stream".to_string());
        (
            200,
            vec![("content-type".to_string(), ct)],
            Vec::new(),
            first,
        )
    };

    let (mut tx, body) = Channel::<bytes::Bytes, Infallible>::new(URL_BODY_CHANNEL);
    tokio::spawn(async move {
        if !first.is_empty() && tx.send_data(first).await.is_err() {
            return;
        }
        while let Some(ev) = events.recv().await {
            match ev {
                StreamEvent::Chunk(bytes) => {
                    // A client that hung up: dropping the events lets the invocation run to its end.
                    if tx.send_data(bytes).await.is_err() {
                        return;
                    }
                }
                StreamEvent::Complete { function_error, .. } => {
                    if let Some(fe) = function_error {
                        // The status is sent; as on Lambda the body is cut short.
                        tracing::debug!(error_type = %fe.error_type, "function url stream ended by an error");
                    }
                    return;
                }
            }
        }
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = (status, Body::new(body)).into_response();
    let h = resp.headers_mut();
    let mut headers = headers;
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push((
            "content-type".to_string(),
            "application/octet-stream".to_string(),
        ));
    }
    apply_answer_headers(h, &headers, &cookies, target.config.cors.as_ref(), origin);
    resp
}

// ----------------------------------------------------------------------- management operations

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CorsWire {
    allow_credentials: Option<bool>,
    allow_headers: Option<Vec<String>>,
    allow_methods: Option<Vec<String>>,
    allow_origins: Option<Vec<String>>,
    expose_headers: Option<Vec<String>>,
    max_age: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UrlConfigWire {
    auth_type: Option<String>,
    cors: Option<CorsWire>,
    invoke_mode: Option<String>,
}

impl UrlConfigWire {
    fn into_input(self) -> UrlInput {
        UrlInput {
            auth_type: self.auth_type,
            cors: self.cors.map(|c| Cors {
                allow_credentials: c.allow_credentials,
                allow_headers: c.allow_headers,
                allow_methods: c.allow_methods,
                allow_origins: c.allow_origins,
                expose_headers: c.expose_headers,
                max_age: c.max_age,
            }),
            invoke_mode: self.invoke_mode,
        }
    }
}

/// `http://<url-id>.lambda-url.<region>.localhost[:port]/`, on the port the caller reached.
fn function_url(region: &str, host: &str, url_id: &str) -> String {
    let port = host
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    match port {
        Some(p) => format!("http://{url_id}.lambda-url.{region}.localhost:{p}/"),
        None => format!("http://{url_id}.lambda-url.{region}.localhost/"),
    }
}

fn render_cors(c: &Cors) -> Value {
    let mut v = serde_json::Map::new();
    if let Some(x) = c.allow_credentials {
        v.insert("AllowCredentials".into(), json!(x));
    }
    if let Some(x) = &c.allow_headers {
        v.insert("AllowHeaders".into(), json!(x));
    }
    if let Some(x) = &c.allow_methods {
        v.insert("AllowMethods".into(), json!(x));
    }
    if let Some(x) = &c.allow_origins {
        v.insert("AllowOrigins".into(), json!(x));
    }
    if let Some(x) = &c.expose_headers {
        v.insert("ExposeHeaders".into(), json!(x));
    }
    if let Some(x) = c.max_age {
        v.insert("MaxAge".into(), json!(x));
    }
    Value::Object(v)
}

/// Renders a `FunctionUrlConfig` (`with_modified: false` for `CreateFunctionUrlConfig`'s answer).
fn render(state: &AppState, host: &str, v: &UrlView, with_modified: bool) -> Value {
    let c = &v.config;
    let mut out = json!({
        "FunctionUrl": function_url(&state.region, host, &c.url_id),
        "FunctionArn": v.function_arn,
        "AuthType": c.auth_type.as_str(),
        "CreationTime": c.creation_time,
        "InvokeMode": c.invoke_mode.as_str(),
    });
    if let Some(cors) = &c.cors {
        out["Cors"] = render_cors(cors);
    }
    if with_modified {
        out["LastModifiedTime"] = json!(c.last_modified_time);
    }
    out
}

/// `CreateFunctionUrlConfig`.
pub async fn create(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    f: &str,
) -> ApiResult<Response> {
    let input = crate::wire::parse_body::<UrlConfigWire>(&req.body)?.into_input();
    let (s, c, f, q) = owned(state, caller, f, req.param("Qualifier"));
    let v = blocking(move || {
        Ok(s.control
            .create_url_config(&c.account_id, &f, q.as_deref(), input)?)
    })
    .await?;
    Ok(json(
        StatusCode::CREATED,
        render(state, &req.host, &v, false),
    ))
}

/// `GetFunctionUrlConfig`.
pub fn get(state: &Arc<AppState>, caller: &Caller, req: &Incoming, f: &str) -> ApiResult<Response> {
    let v = state
        .control
        .get_url_config(&caller.account_id, f, req.param("Qualifier"))?;
    Ok(json(StatusCode::OK, render(state, &req.host, &v, true)))
}

/// `UpdateFunctionUrlConfig`.
pub async fn update(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    f: &str,
) -> ApiResult<Response> {
    let input = crate::wire::parse_body::<UrlConfigWire>(&req.body)?.into_input();
    let (s, c, f, q) = owned(state, caller, f, req.param("Qualifier"));
    let v = blocking(move || {
        Ok(s.control
            .update_url_config(&c.account_id, &f, q.as_deref(), input)?)
    })
    .await?;
    Ok(json(StatusCode::OK, render(state, &req.host, &v, true)))
}

/// `DeleteFunctionUrlConfig`.
pub async fn delete(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    f: &str,
) -> ApiResult<Response> {
    let (s, c, f, q) = owned(state, caller, f, req.param("Qualifier"));
    blocking(move || {
        Ok(s.control
            .delete_url_config(&c.account_id, &f, q.as_deref())?)
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `ListFunctionUrlConfigs`.
pub fn list_configs(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    f: &str,
) -> ApiResult<Response> {
    let max = req
        .param("MaxItems")
        .map(|m| {
            m.parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("Invalid MaxItems value: {m}")))
        })
        .transpose()?;
    let page = state
        .control
        .list_url_configs(&caller.account_id, f, req.param("Marker"), max)?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|v| render(state, &req.host, v, true))
        .collect();
    let mut out = json!({ "FunctionUrlConfigs": items });
    if let Some(m) = page.next_marker {
        out["NextMarker"] = json!(m);
    }
    Ok(json(StatusCode::OK, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "abcdefghijklmnopqrstuvwxyz012345";

    #[test]
    fn routes_by_host_and_by_path() {
        let host = format!("{ID}.lambda-url.us-east-1.localhost:9000");
        let r = url_route(Some(&host), "/a/b").unwrap();
        assert_eq!(
            (r.url_id.as_str(), r.path.as_str(), r.by_host),
            (ID, "/a/b", true)
        );
        let aws = format!("{ID}.lambda-url.eu-west-1.on.aws");
        assert!(url_route(Some(&aws), "/").is_some());
        let p = url_route(Some("127.0.0.1:9000"), &format!("/lambda-url/{ID}/x/y")).unwrap();
        assert_eq!((p.path.as_str(), p.by_host), ("/x/y", false));
        let bare = url_route(Some("127.0.0.1:9000"), &format!("/lambda-url/{ID}")).unwrap();
        assert_eq!(bare.path, "/");
        assert!(url_route(Some("127.0.0.1:9000"), "/2015-03-31/functions").is_none());
        assert!(url_route(Some("short.lambda-url.us-east-1.localhost"), "/").is_none());
        assert!(url_route(Some("127.0.0.1"), "/lambda-url/NOTANID/").is_none());
    }

    #[test]
    fn function_urls_use_the_callers_port() {
        assert_eq!(
            function_url("us-east-1", "127.0.0.1:4321", ID),
            format!("http://{ID}.lambda-url.us-east-1.localhost:4321/")
        );
        assert_eq!(
            function_url("us-east-1", "localhost", ID),
            format!("http://{ID}.lambda-url.us-east-1.localhost/")
        );
    }

    fn cors() -> Cors {
        Cors {
            allow_origins: Some(vec![
                "https://app.example.com".into(),
                "https://*.test".into(),
            ]),
            allow_methods: Some(vec!["GET".into(), "POST".into()]),
            allow_headers: Some(vec!["content-type".into(), "x-token".into()]),
            expose_headers: Some(vec!["x-out".into()]),
            max_age: Some(600),
            allow_credentials: Some(true),
        }
    }

    #[test]
    fn cors_origins() {
        let c = cors();
        assert!(origin_allowed(&c, "https://app.example.com"));
        assert!(origin_allowed(&c, "HTTPS://APP.EXAMPLE.COM"));
        assert!(origin_allowed(&c, "https://a.test"));
        assert!(!origin_allowed(&c, "https://evil.com"));
        let any = Cors {
            allow_origins: Some(vec!["*".into()]),
            ..Default::default()
        };
        assert!(origin_allowed(&any, "https://whatever"));
        assert_eq!(allow_origin_value(&any, "https://whatever"), "*");
        // With credentials the origin is echoed (browsers refuse `*` then).
        assert_eq!(
            allow_origin_value(&c, "https://app.example.com"),
            "https://app.example.com"
        );
    }

    #[test]
    fn cors_preflight() {
        let c = cors();
        let h = preflight_headers(
            &c,
            "https://app.example.com",
            "POST",
            Some("Content-Type, X-Token"),
        )
        .unwrap();
        let get = |k: &str| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            get("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(get("access-control-allow-methods"), Some("GET,POST"));
        assert_eq!(
            get("access-control-allow-headers"),
            Some("content-type,x-token")
        );
        assert_eq!(get("access-control-max-age"), Some("600"));
        assert_eq!(get("access-control-allow-credentials"), Some("true"));
        assert!(preflight_headers(&c, "https://app.example.com", "DELETE", None).is_none());
        assert!(preflight_headers(&c, "https://evil.com", "GET", None).is_none());
        assert!(preflight_headers(&c, "https://app.example.com", "GET", Some("x-other")).is_none());
    }

    #[test]
    fn cors_on_responses() {
        let c = cors();
        let h = response_cors_headers(&c, Some("https://app.example.com"));
        assert!(h.contains(&("access-control-expose-headers", "x-out".into())));
        assert!(response_cors_headers(&c, Some("https://evil.com")).is_empty());
        assert!(response_cors_headers(&c, None).is_empty());
    }
    fn framed(prelude: &str, body: &[u8]) -> Vec<u8> {
        let mut out = prelude.as_bytes().to_vec();
        out.extend_from_slice(&PRELUDE_DELIMITER);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn prelude_fields() {
        let p = parse_prelude(
            br#"{"statusCode": 201, "headers": {"x-a": "b", "x-n": 5, "x-null": null}, "cookies": ["c=d", "e=f; Path=/"]}"#,
        )
        .unwrap();
        assert_eq!(p.status, 201);
        assert_eq!(
            p.headers,
            [("x-a".into(), "b".into()), ("x-n".into(), "5".into())]
        );
        assert_eq!(p.cookies, ["c=d", "e=f; Path=/"]);
        let bare = parse_prelude(b"{}").unwrap();
        assert_eq!(
            (bare.status, bare.headers.len(), bare.cookies.len()),
            (200, 0, 0)
        );
        assert_eq!(
            parse_prelude(br#"{"statusCode": 42}"#),
            Err(PreludeError::BadStatus)
        );
        assert_eq!(
            parse_prelude(br#"{"statusCode": "200"}"#),
            Err(PreludeError::BadStatus)
        );
        assert_eq!(parse_prelude(b"[1]"), Err(PreludeError::NotJson));
        assert_eq!(parse_prelude(b"{"), Err(PreludeError::NotJson));
    }

    #[test]
    fn prelude_in_one_chunk() {
        let mut r = PreludeReader::default();
        let (p, rest) = r
            .push(&framed(r#"{"statusCode":404}"#, b"\0body\0"))
            .unwrap()
            .unwrap();
        assert_eq!(p.status, 404);
        // NUL bytes of the body after the delimiter are body bytes.
        assert_eq!(&rest[..], b"\0body\0");
    }

    #[test]
    fn prelude_split_at_every_point() {
        let whole = framed(r#"{"statusCode":202,"headers":{"x":"y"}}"#, b"tail");
        for cut in 0..=whole.len() {
            for cut2 in cut..=whole.len() {
                let mut r = PreludeReader::default();
                let mut got: Option<(Prelude, Vec<u8>)> = None;
                for piece in [&whole[..cut], &whole[cut..cut2], &whole[cut2..]] {
                    match &mut got {
                        Some((_, rest)) => rest.extend_from_slice(piece),
                        None => got = r.push(piece).unwrap().map(|(p, b)| (p, b.to_vec())),
                    }
                }
                let (p, rest) = got.unwrap_or_else(|| panic!("no prelude with cuts {cut}/{cut2}"));
                assert_eq!(p.status, 202);
                assert_eq!(p.headers, [("x".into(), "y".into())]);
                assert_eq!(&rest[..], b"tail", "cuts {cut}/{cut2}");
            }
        }
    }

    #[test]
    fn prelude_waits_for_all_eight_nuls() {
        let mut r = PreludeReader::default();
        assert_eq!(r.push(b"{}\0\0\0\0\0\0\0").unwrap(), None);
        let (p, rest) = r.push(b"\0x").unwrap().unwrap();
        assert_eq!((p.status, &rest[..]), (200, &b"x"[..]));
    }

    #[test]
    fn prelude_limits() {
        let mut r = PreludeReader::default();
        let big = vec![b' '; MAX_PRELUDE + 16];
        assert_eq!(r.push(&big), Err(PreludeError::TooLong));
        let mut bad = PreludeReader::default();
        assert_eq!(
            bad.push(&framed("not json", b"")),
            Err(PreludeError::NotJson)
        );
    }

    #[test]
    fn http_integration_content_type() {
        assert!(is_http_integration(Some(HTTP_INTEGRATION)));
        assert!(is_http_integration(Some(
            "Application/Vnd.AwsLambda.Http-Integration-Response; charset=utf-8"
        )));
        assert!(!is_http_integration(Some("application/octet-stream")));
        assert!(!is_http_integration(None));
    }
}
