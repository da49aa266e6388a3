//! Updraft's front door: one HTTP listener for every AWS-shaped API.
//!
//! Requests are routed by shape (see `../shared/DESIGN.md`): paths that start with a Lambda API
//! date go to the Lambda handlers in [`lambda`]; `/health` answers without authentication; the
//! code download links handed out by `GetFunction` are served from `/updraft/code/`. Every
//! other request must pass SigV4 verification in [`auth`] before any handler sees it: its head
//! is checked before its body is read, and the body is read by [`body`] (size limit, read
//! deadline, the node's budget of body bytes, hashing as it streams in).
//! `/updraft/admin/` is the root account's account API in [`admin`].
//!
//! Architecture invariant: only this crate knows AWS wire shapes (JSON field names, headers,
//! error types); it translates them to the control plane's and the engine's domain calls.

pub mod admin;
pub mod async_invoke;
pub mod auth;
pub mod body;
mod cloudwatch;
pub mod error;
mod event_config;
mod invoke;
mod lambda;
mod layers;
mod logs;
mod mappings;
mod queue_admin;
pub use lambda::RUNTIME_NOTE_HEADER;
pub mod payload_v2;
mod policy;
pub mod provisioned;
pub mod s3;
mod sqs;
mod streaming;
mod urls;
mod usage;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use updraft_control::ControlPlane;
use updraft_control::accounts::Accounts;
use updraft_engine::Engine;
use updraft_sigv4::Credentials;

use crate::auth::{KeyRing, header_pairs};
pub use crate::body::MAX_BODY_BYTES;
use crate::body::{BodyError, BodyLimits, BodyReader, EVENTS_MAX_BODY};
use crate::error::ApiError;

/// Largest synchronous invocation payload, as on Lambda.
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;

/// Everything the handlers share.
pub struct AppState {
    pub control: Arc<ControlPlane>,
    pub engine: Arc<Engine>,
    pub keys: Arc<KeyRing>,
    /// Accounts and their keys; the admin API changes them, the key ring follows.
    pub accounts: Arc<Accounts>,
    /// Node-internal key that signs code download links (never accepted for API calls).
    pub code_link_key: Credentials,
    pub region: String,
    pub spec_cache: invoke::SpecCache,
    /// Reads every request body: limits, deadline and the node's budget of body bytes.
    pub bodies: BodyReader,
    /// The EventBridge service (`X-Amz-Target: AWSEvents.*`), set once by the binary.
    pub eventbridge: std::sync::OnceLock<Arc<updraft_eventbridge::EventBridge>>,
    /// The durable event path, once the node has started it (asynchronous invocation).
    pub events: std::sync::OnceLock<async_invoke::AsyncInvoke>,
    /// The queue service, set once at start-up (`updraft serve`).
    pub queues: std::sync::OnceLock<Arc<updraft_queues::Queues>>,
    /// Event source mappings, set once at start-up (`updraft serve`).
    pub mappings: std::sync::OnceLock<Arc<updraft_mappings::Mappings>>,
    /// CloudWatch Logs (`X-Amz-Target: Logs_20140328.*`), set once at start-up.
    pub logs: std::sync::OnceLock<Arc<updraft_logs::LogStore>>,
    /// The object store (S3's API), set once at start-up.
    pub objects: std::sync::OnceLock<Arc<updraft_objects::S3Service>>,
    /// Where `Code.S3Bucket` packages are read from, set once at start-up.
    pub code_objects: std::sync::OnceLock<Arc<dyn wire::CodeObjects>>,
    /// Usage reports (`/updraft/v1/usage`), set at start-up unless metering is off.
    pub usage: std::sync::OnceLock<Arc<updraft_observe::Usage>>,
    /// Prometheus metrics (`/metrics`, root credentials), set at start-up unless metering is off.
    pub metrics: std::sync::OnceLock<Arc<updraft_observe::Metrics>>,
    /// The CloudWatch metrics subset, set at start-up unless metering is off.
    pub cloudwatch: std::sync::OnceLock<Arc<updraft_observe::CloudWatch>>,
}

impl AppState {
    pub fn new(
        control: Arc<ControlPlane>,
        engine: Arc<Engine>,
        keys: Arc<KeyRing>,
        accounts: Arc<Accounts>,
        code_link_key: Credentials,
        region: String,
        body_limits: BodyLimits,
    ) -> Arc<Self> {
        Arc::new(Self {
            control,
            engine,
            keys,
            accounts,
            code_link_key,
            region,
            spec_cache: invoke::SpecCache::default(),
            bodies: BodyReader::new(body_limits),
            eventbridge: std::sync::OnceLock::new(),
            events: std::sync::OnceLock::new(),
            queues: std::sync::OnceLock::new(),
            mappings: std::sync::OnceLock::new(),
            logs: std::sync::OnceLock::new(),
            objects: std::sync::OnceLock::new(),
            code_objects: std::sync::OnceLock::new(),
            usage: std::sync::OnceLock::new(),
            metrics: std::sync::OnceLock::new(),
            cloudwatch: std::sync::OnceLock::new(),
        })
    }
}

/// The front door's router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// A request with its body read, as the handlers see it.
pub struct Incoming {
    pub method: Method,
    /// Path segments, percent-decoded.
    pub segments: Vec<String>,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    pub headers: axum::http::HeaderMap,
    pub body: bytes::Bytes,
    pub request_id: String,
    pub host: String,
    /// The body's share of the node's budget of body bytes, released with the request.
    pub(crate) budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Incoming {
    /// First value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of a repeated query parameter.
    pub fn params(&self, name: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn is_api_date(s: &str) -> bool {
    s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

async fn dispatch(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let request_id = invoke::new_request_id();
    let mut resp = route(&state, req, &request_id).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

async fn route(state: &Arc<AppState>, req: Request, request_id: &str) -> Response {
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    if raw_path == "/health" {
        return (StatusCode::OK, "ok\n").into_response();
    }
    // Function URLs authenticate (or not) by their own rules, so they are routed before SigV4.
    let host_header = parts.headers.get("host").and_then(|h| h.to_str().ok());
    if let Some(url) = urls::url_route(host_header, &raw_path) {
        return urls::serve(state, parts, body, request_id, url).await;
    }
    if s3::claims(&parts, &raw_path, &raw_query) {
        return s3::serve(state, parts, body, request_id, &raw_path, &raw_query).await;
    }
    let has_body = body::announces_body(&parts.headers);
    let segments: Vec<String> = raw_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let mut incoming = Incoming {
        method: parts.method.clone(),
        segments,
        query: parse_query(&raw_query),
        headers: parts.headers,
        body: bytes::Bytes::new(),
        request_id: request_id.to_string(),
        host,
        budget: None,
    };
    if incoming.segments.first().is_some_and(|s| s == "updraft")
        && incoming.segments.get(1).is_some_and(|s| s == "code")
    {
        // A presigned GET over an empty payload: its body is never read.
        return unread(
            has_body,
            lambda::download_code(state, &incoming, &raw_path, &raw_query).await,
        );
    }
    // The head first: a request with no valid key, scope or (when the head can tell) signature
    // is answered before a byte of its body is read.
    let pairs = header_pairs(&incoming.headers);
    let pending = match auth::authenticate_head(
        &state.keys,
        &state.region,
        incoming.method.as_str(),
        &raw_path,
        &raw_query,
        &pairs,
    ) {
        Ok(p) => p,
        Err(e) => {
            let resp = sqs::auth_error(&incoming.headers, &raw_query, request_id, &e)
                .unwrap_or_else(|| e.into_response());
            return unread(has_body, resp);
        }
    };
    let lambda_api = incoming.segments.first().is_some_and(|s| is_api_date(s));
    if lambda_api && pending.service() != "lambda" {
        return unread(has_body, wrong_service("lambda", pending.service()));
    }
    if pending.empty_body_only() && has_body {
        return unread(has_body, pending.refuse_body().into_response());
    }
    let events = incoming
        .header("x-amz-target")
        .is_some_and(|t| t.starts_with("AWSEvents."));
    if events && pending.service() != "events" {
        return unread(has_body, wrong_service("events", pending.service()));
    }
    let logs_api = !lambda_api && logs::is_logs(&incoming.headers);
    if logs_api && pending.service() != "logs" {
        return unread(has_body, wrong_service("logs", pending.service()));
    }
    let invoke = incoming.segments.last().is_some_and(|s| s == "invocations");
    let monitoring =
        !lambda_api && cloudwatch::is_cloudwatch(pending.service(), &raw_path, &incoming.headers);
    if monitoring && pending.service() != "monitoring" {
        return unread(has_body, wrong_service("monitoring", pending.service()));
    }
    let sqs = !lambda_api && !monitoring && sqs::is_sqs(pending.service(), &incoming.headers);
    let limit = if invoke {
        MAX_SYNC_PAYLOAD
    } else if events {
        EVENTS_MAX_BODY
    } else if sqs {
        sqs::MAX_SQS_BODY
    } else {
        MAX_BODY_BYTES
    };
    let read = match state
        .bodies
        .read(body, body::declared_len(&incoming.headers), limit)
        .await
    {
        Ok(r) => r,
        Err(e) => return body_error(state, &e, invoke),
    };
    let caller = match pending.finish(&read.sha256_hex) {
        Ok(c) => c,
        Err(e) if sqs => {
            return sqs::auth_error(&incoming.headers, &raw_query, request_id, &e)
                .unwrap_or_else(|| e.into_response());
        }
        Err(e) => return e.into_response(),
    };
    incoming.body = read.bytes;
    incoming.budget = read.permit;
    if events && let Some(eb) = state.eventbridge.get() {
        let target = incoming.header("x-amz-target").unwrap_or_default();
        let r = updraft_eventbridge::wire::handle(eb, &caller.account_id, target, &incoming.body);
        return eventbridge_response(r.await);
    }
    if sqs {
        return sqs::handle(state, &caller, incoming, &raw_query).await;
    }
    if logs_api && let Some(store) = state.logs.get() {
        let target = incoming
            .header("x-amz-target")
            .unwrap_or_default()
            .to_string();
        return logs::handle(
            store.clone(),
            caller.account_id.clone(),
            target,
            incoming.body,
        )
        .await;
    }
    if monitoring {
        return cloudwatch::handle(state, &caller, incoming, &raw_path, &raw_query).await;
    }
    if incoming.segments.first().is_some_and(|s| is_api_date(s)) {
        return lambda::handle(state, &caller, incoming).await;
    }
    if incoming.segments.first().is_some_and(|s| s == "updraft")
        && incoming.segments.get(1).is_some_and(|s| s == "admin")
    {
        return admin::handle(state, &caller, incoming).await;
    }
    if incoming.segments.len() == 5
        && incoming.segments[..3] == ["updraft", "v1", "functions"]
        && incoming.segments[4] == "logs"
        && incoming.method == Method::GET
    {
        return lambda::function_logs(state, &caller, &incoming).await;
    }
    if incoming.segments.len() == 5
        && incoming.segments[..3] == ["updraft", "v1", "functions"]
        && incoming.segments[4] == "events"
        && incoming.method == Method::GET
    {
        return async_invoke::function_events(state, &caller, &incoming).await;
    }
    if incoming.segments.get(..3) == Some(&["updraft", "v1", "queues"].map(String::from)[..])
        && incoming.method == Method::GET
    {
        let r = match incoming.segments.get(3..) {
            Some([]) => queue_admin::list(state, &caller),
            Some([name, m]) if m == "messages" => {
                queue_admin::peek(state, &caller, &incoming, name)
            }
            _ => Err(ApiError::unknown_operation()),
        };
        return r.unwrap_or_else(|e| e.into_response());
    }
    if incoming.segments[..] == ["updraft", "v1", "usage"] && incoming.method == Method::GET {
        return usage::usage(state, &caller, &incoming).await;
    }
    if incoming.segments[..] == ["metrics"] && incoming.method == Method::GET {
        return usage::metrics(state, &caller).await;
    }
    ApiError::unknown_operation().into_response()
}

/// The answer to a request signed for another service than the one it addresses.
fn wrong_service(want: &str, got: &str) -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "InvalidSignatureException",
        format!("Credential should be scoped to correct service: '{want}', not '{got}'."),
    )
    .into_response()
}

fn eventbridge_response(r: updraft_eventbridge::wire::WireResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, r.body).into_response();
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static(updraft_eventbridge::wire::CONTENT_TYPE),
    );
    if let Some(t) = r.error_type {
        h.insert("x-amzn-ErrorType", HeaderValue::from_static(t));
    }
    resp
}

/// Marks an answer given without reading the request's body (when it has one): the connection
/// is closed after it rather than made to swallow the rest of a body nobody wants.
pub(crate) fn unread(has_body: bool, mut resp: Response) -> Response {
    if has_body {
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    resp
}

/// The Lambda API's answer to a body that could not be read.
fn body_error(state: &AppState, e: &BodyError, invoke: bool) -> Response {
    let err = match e {
        BodyError::TooLarge { .. } if invoke => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            format!(
                "Request must be smaller than {MAX_SYNC_PAYLOAD} bytes for the InvokeFunction operation"
            ),
        ),
        BodyError::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("Request must be smaller than {MAX_BODY_BYTES} bytes for this operation"),
        ),
        BodyError::Timeout(t) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeoutException",
            format!(
                "The request body was not received within {} seconds.",
                t.as_secs_f64()
            ),
        ),
        BodyError::OverBudget(_) => {
            tracing::warn!(
                budget = state.bodies.limits().budget_bytes,
                "request body refused: the node's body budget is full"
            );
            let mut err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "Rate exceeded",
            );
            err.extra = Some(("Reason", "CallerRateLimitExceeded".to_string()));
            let mut resp = err.into_response();
            resp.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            return unread(true, resp);
        }
        BodyError::Read(detail) => {
            tracing::debug!(%detail, "request body read failed");
            ApiError::bad_content("Could not read the request body.")
        }
    };
    unread(true, err.into_response())
}

/// A JSON answer with a status code.
pub(crate) fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// An empty answer (`204 No Content` and friends).
pub(crate) fn empty(status: StatusCode) -> Response {
    (status, Body::empty()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_dates() {
        assert!(is_api_date("2015-03-31"));
        assert!(!is_api_date("2015-03-3x"));
        assert!(!is_api_date("health"));
    }

    #[test]
    fn query_decoding() {
        let q = parse_query("Qualifier=%24LATEST&tagKeys=a&tagKeys=b%20c&flag");
        assert_eq!(q[0], ("Qualifier".into(), "$LATEST".into()));
        assert_eq!(q[2], ("tagKeys".into(), "b c".into()));
        assert_eq!(q[3], ("flag".into(), String::new()));
    }
}
