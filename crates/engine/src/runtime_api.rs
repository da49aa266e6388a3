//! The Lambda Runtime API (version 2018-06-01) of one execution environment.
//!
//! Served with hyper (HTTP/1.1, keep-alive) on the listeners the sandbox bound inside the
//! environment's own network namespace, so only that environment's processes reach it:
//! `127.0.0.1:9001` (`AWS_LAMBDA_RUNTIME_API`, what every runtime client speaks) and the abstract
//! Unix socket `updraft-runtime-api` (`_UPDRAFT_RUNTIME_API_SOCKET`, which Updraft's own Python
//! and Node.js clients prefer). Both serve the same API with the same state.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /2018-06-01/runtime/invocation/next` | blocks until an invocation is assigned; 200 with the event |
//! | `POST .../invocation/{id}/response` | 202 `{"status":"OK"}` (a streamed one once its body ended) |
//! | `POST .../invocation/{id}/error` | 202 `{"status":"OK"}` |
//! | `POST /2018-06-01/runtime/init/error` | 202 `{"status":"OK"}`; the environment has failed |
//!
//! Errors use the types of Lambda's runtime API server: an id that is not the current invocation
//! is 400 `InvalidRequestID`; answering an invocation that was already answered (or reporting an
//! init error after init) is 403 `InvalidStateTransition`; a body over 6 MB (6291556 bytes) is
//! 413 `RequestEntityTooLarge` (the invocation then fails with `Function.ResponseSizeTooLarge`).
//!
//! A response posted with `Lambda-Runtime-Function-Response-Mode: streaming` (a chunked body, up to
//! 20 MiB, errors after the first byte in the trailers `Lambda-Runtime-Function-Error-Type` and
//! `Lambda-Runtime-Function-Error-Body` (base64)) is not read here: its body is handed to the
//! invocation as a [`StreamedBody`] the moment the request head arrives, the invocation reads the
//! chunks as the runtime writes them (so a slow reader slows the writer, not the node's memory),
//! and decides the status the runtime gets once the body has ended.
//!
//! The server does not decide anything: it hands each answer to the invocation that owns the
//! environment as a [`RuntimeEvent`]. Payloads travel as `Bytes` (the event body is never copied;
//! a buffered response is collected once).
//!
//! The server runs in Updraft's process, so whatever it holds for a function is memory outside
//! that function's cgroup. What one environment can make it hold is therefore bounded:
//! - at most [`MAX_CONNECTIONS`] connections at once (more are closed as soon as they are
//!   accepted), each with a read buffer of at most [`MAX_READ_BUFFER`];
//! - an answer is claimed before its body is read, so one body at a time is read per invocation
//!   (and one init error per environment): a second post for the same request id is refused from
//!   its head alone with 403 `InvalidStateTransition`, as an answer that was already sent is;
//! - `/next` calls with no other event between them are one [`RuntimeEvent::Next`], so a runtime
//!   that connects, asks for its next event and hangs up in a loop queues nothing.
//! - an answer over 1 MiB that the server holds (while it is read, and until its invocation
//!   takes it) is charged to the node's memory budget, as memory of its environment ([`Held`]),
//!   so that new environments are not started on top of it.

pub(crate) mod extensions;
mod pipelined;
pub(crate) mod telemetry;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use updraft_sandbox::ExitInfo;

use crate::env::{Capacity, MemoryLease};
use pipelined::PipelinedIo;

/// Largest response or error body a runtime may post (Lambda's 6 MB limit, in bytes).
pub const MAX_PAYLOAD_BYTES: usize = 6_291_556;

/// Connections one environment's Runtime API serves at once. A runtime client needs one or two
/// (its `/next` and, while it streams a response, the stream); the rest is room for runtimes that
/// keep a small pool.
pub const MAX_CONNECTIONS: usize = 32;

/// Largest read buffer of one connection: request heads are a few hundred bytes and bodies are
/// read in pieces of this size (hyper's default of about 400 KiB would let the capped connections
/// alone hold 13 MiB).
pub const MAX_READ_BUFFER: usize = 64 * 1024;

/// Largest response a runtime may stream (Lambda's 20 MiB limit for streamed responses, in bytes).
pub const MAX_STREAMED_RESPONSE_BYTES: usize = 20 * 1024 * 1024;

const RESPONSE_MODE_HEADER: &str = "Lambda-Runtime-Function-Response-Mode";
const ERROR_TYPE_HEADER: &str = "Lambda-Runtime-Function-Error-Type";
const ERROR_BODY_TRAILER: &str = "Lambda-Runtime-Function-Error-Body";

const PREFIX: &str = "/2018-06-01/runtime/";

/// An invocation handed to the runtime on its next `/next`.
#[derive(Debug, Clone)]
pub(crate) struct Assigned {
    pub request_id: String,
    pub payload: Bytes,
    pub deadline_ms: u64,
    pub invoked_function_arn: String,
    pub trace_id: String,
    /// Decoded JSON, as Lambda passes it in `Lambda-Runtime-Client-Context`.
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
}

/// What happened in an environment, in order, for whoever owns it.
#[derive(Debug)]
pub(crate) enum RuntimeEvent {
    /// The runtime called `/next` (the first one ends the init phase; later ones show the runtime
    /// is done with the previous invocation and has flushed its output).
    Next,
    InitError {
        error_type: Option<String>,
        body: Bytes,
        /// Gives the memory charge back when the owner drops the event.
        _held: Held,
    },
    Response {
        request_id: String,
        /// `Content-Type` the runtime gave its response.
        content_type: Option<String>,
        body: Bytes,
        /// Gives the memory charge back when the owner drops the event.
        _held: Held,
    },
    /// The runtime started a streamed response; its body is still arriving.
    Streaming {
        request_id: String,
        content_type: Option<String>,
        body: StreamedBody,
    },
    Error {
        request_id: String,
        error_type: Option<String>,
        body: Bytes,
        /// Gives the memory charge back when the owner drops the event.
        _held: Held,
    },
    ResponseTooLarge {
        request_id: String,
    },
    /// The environment's processes are gone (sent by the thread waiting on the jail).
    Exited(ExitInfo),
}

/// A piece of a streamed response body.
#[derive(Debug)]
pub(crate) enum StreamPiece {
    Data(Bytes),
    /// The trailers; `Some` error when the runtime reported one after the first byte.
    End(Option<StreamedError>),
}

/// An error a runtime reported in the trailers of a streamed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedError {
    pub error_type: String,
    /// The decoded `Lambda-Runtime-Function-Error-Body` (JSON as the runtime wrote it).
    pub body: Bytes,
}

/// What the runtime is told once its streamed response has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamVerdict {
    Accepted,
    TooLarge,
}

/// The body of a streamed response, read by the invocation that owns the environment. Dropping it
/// without a verdict answers the runtime with a 500 (the invocation is gone: timed out or killed).
#[derive(Debug)]
pub(crate) struct StreamedBody {
    body: Incoming,
    verdict: Option<oneshot::Sender<StreamVerdict>>,
    ended: bool,
}

impl StreamedBody {
    /// The next piece: data as it arrives, then one `End` (also when the body ends without
    /// trailers). `None` after the end; `Err` when the connection broke mid-body.
    pub(crate) async fn next(&mut self) -> Option<Result<StreamPiece, ()>> {
        if self.ended {
            return None;
        }
        loop {
            match self.body.frame().await {
                None => {
                    self.ended = true;
                    return Some(Ok(StreamPiece::End(None)));
                }
                Some(Err(_)) => {
                    self.ended = true;
                    return Some(Err(()));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    Ok(data) => return Some(Ok(StreamPiece::Data(data))),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.ended = true;
                            return Some(Ok(StreamPiece::End(trailer_error(&trailers))));
                        }
                    }
                },
            }
        }
    }

    /// Answers the runtime's POST.
    pub(crate) fn finish(mut self, verdict: StreamVerdict) {
        if let Some(tx) = self.verdict.take() {
            let _ = tx.send(verdict);
        }
    }
}

/// The error a runtime put in the trailers, if any. A body that is not base64 is passed on as
/// given; a type without a body gets a minimal body in Lambda's shape.
pub fn trailer_error(trailers: &HeaderMap) -> Option<StreamedError> {
    let error_type = trailers
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let raw_body = trailers
        .get(ERROR_BODY_TRAILER)
        .map(|v| v.as_bytes())
        .filter(|v| !v.is_empty());
    if error_type.is_none() && raw_body.is_none() {
        return None;
    }
    let body = raw_body.map(|raw| {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map(Bytes::from)
            .unwrap_or_else(|_| Bytes::copy_from_slice(raw))
    });
    let error_type = error_type
        .map(str::to_string)
        .or_else(|| {
            body.as_ref()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                .and_then(|v| v.get("errorType")?.as_str().map(str::to_string))
        })
        .unwrap_or_else(|| "Runtime.Unknown".to_string());
    let body = crate::messages::posted_error_body(body.unwrap_or_default(), Some(&error_type));
    Some(StreamedError { error_type, body })
}

#[derive(Default)]
struct ApiState {
    /// The runtime has called `/next` at least once (init is over).
    ready: bool,
    /// Invocation handed out and not yet answered.
    current: Option<String>,
    /// A post answering `current` is being read: no other may start.
    claimed: bool,
    /// An init error is being read or was reported: no other may start.
    init_error_claimed: bool,
    /// Last invocation answered.
    answered: Option<String>,
    /// The last event queued is a `Next` (another one would tell the owner nothing new).
    next_queued: bool,
    /// The runtime waits in `/next` with no invocation handed over yet.
    runtime_waiting: bool,
}

/// Shared state of one environment's Runtime API.
pub(crate) struct RuntimeApi {
    state: Mutex<ApiState>,
    /// Connections closed because the environment had [`MAX_CONNECTIONS`] open.
    refused: AtomicU64,
    next_rx: tokio::sync::Mutex<mpsc::Receiver<Assigned>>,
    events: mpsc::UnboundedSender<RuntimeEvent>,
    /// The node's memory budget, charged with large answers the server holds (see [`Held`]).
    capacity: Option<Arc<Capacity>>,
    /// The Extensions API's registrations and event queues (see [`extensions`]).
    pub(crate) extensions: extensions::Extensions,
    /// Telemetry API subscriptions (see [`telemetry`]).
    pub(crate) telemetry: telemetry::Telemetry,
}

impl RuntimeApi {
    /// The API, the sender that assigns invocations to it, and the receiver of its events.
    pub(crate) fn new(
        events: mpsc::UnboundedSender<RuntimeEvent>,
        capacity: Option<Arc<Capacity>>,
    ) -> (Arc<RuntimeApi>, mpsc::Sender<Assigned>) {
        let (next_tx, next_rx) = mpsc::channel(1);
        let api = Arc::new(RuntimeApi {
            state: Mutex::new(ApiState::default()),
            refused: AtomicU64::new(0),
            capacity,
            next_rx: tokio::sync::Mutex::new(next_rx),
            events,
            extensions: extensions::Extensions::default(),
            telemetry: telemetry::Telemetry::default(),
        });
        (api, next_tx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ApiState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `ev` while the caller holds the state lock, so that the order of events and the
    /// `Next` coalescing agree.
    fn emit_locked(&self, st: &mut ApiState, ev: RuntimeEvent) {
        st.next_queued = matches!(ev, RuntimeEvent::Next);
        let _ = self.events.send(ev);
    }

    fn emit(&self, ev: RuntimeEvent) {
        let mut st = self.lock();
        self.emit_locked(&mut st, ev);
    }

    /// Tells the owner `Next` once the runtime and every extension wait for their next event:
    /// the init phase, or the invocation, is complete only then.
    fn maybe_next_locked(&self, st: &mut ApiState) {
        if st.runtime_waiting && !st.next_queued && self.extensions.all_waiting() {
            self.extensions.close_registration();
            self.emit_locked(st, RuntimeEvent::Next);
        }
    }
}

/// Serves `api` on `listener` and, when given, on `unix` (the same API on the environment's Unix
/// socket) until the returned task is aborted; aborting it also ends every connection (they live
/// in the task's `JoinSet`).
pub(crate) fn serve(
    listener: std::net::TcpListener,
    unix: Option<std::os::unix::net::UnixListener>,
    api: Arc<RuntimeApi>,
) -> std::io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let unix = match unix {
        Some(u) => {
            u.set_nonblocking(true)?;
            Some(UnixListener::from_std(u)?)
        }
        None => None,
    };
    Ok(tokio::spawn(accept_loop(listener, unix, api)))
}

async fn accept_unix(listener: Option<&UnixListener>) -> std::io::Result<UnixStream> {
    match listener {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

/// Whether `conns` has room for one more connection; finished ones are reaped first, so a
/// closed connection never holds a place.
fn has_room(conns: &mut JoinSet<()>) -> bool {
    while conns.try_join_next().is_some() {}
    conns.len() < MAX_CONNECTIONS
}

async fn accept_loop(listener: TcpListener, unix: Option<UnixListener>, api: Arc<RuntimeApi>) {
    let mut conns = JoinSet::new();
    loop {
        let failed = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if has_room(&mut conns) {
                        // Small request/response exchanges: never wait for Nagle.
                        let _ = stream.set_nodelay(true);
                        conns.spawn(serve_connection(stream, api.clone()));
                    } else {
                        refuse_connection(&api);
                    }
                    None
                }
                Err(e) => Some(e),
            },
            accepted = accept_unix(unix.as_ref()) => match accepted {
                Ok(stream) => {
                    if has_room(&mut conns) {
                        conns.spawn(serve_connection(stream, api.clone()));
                    } else {
                        refuse_connection(&api);
                    }
                    None
                }
                Err(e) => Some(e),
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => None,
        };
        if let Some(e) = failed {
            tracing::debug!("runtime api accept: {e}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// A connection over [`MAX_CONNECTIONS`] is closed unread (dropping the stream); only the first
/// of an environment is logged, so the flood does not move into the log.
fn refuse_connection(api: &RuntimeApi) {
    if api.refused.fetch_add(1, Ordering::Relaxed) == 0 {
        tracing::warn!(
            "runtime api: more than {MAX_CONNECTIONS} connections from one environment; closing the extra ones"
        );
    }
}

async fn serve_connection<S>(stream: S, api: Arc<RuntimeApi>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handle(api.clone(), req));
    let _ = http1::Builder::new()
        .keep_alive(true)
        .max_buf_size(MAX_READ_BUFFER)
        .serve_connection(TokioIo::new(PipelinedIo::new(stream)), svc)
        .await;
}

type Reply = Response<Full<Bytes>>;

fn json(status: StatusCode, body: Bytes) -> Reply {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn accepted() -> Reply {
    json(
        StatusCode::ACCEPTED,
        Bytes::from_static(br#"{"status":"OK"}"#),
    )
}

fn api_error(status: StatusCode, error_type: &str, message: &str) -> Reply {
    json(
        status,
        crate::messages::error_json(&[("errorMessage", message), ("errorType", error_type)]),
    )
}

fn invalid_request_id() -> Reply {
    api_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "Invalid request ID",
    )
}

fn invalid_transition(message: &str) -> Reply {
    api_error(StatusCode::FORBIDDEN, "InvalidStateTransition", message)
}

fn too_large() -> Reply {
    api_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &format!("Exceeded maximum allowed payload size ({MAX_PAYLOAD_BYTES} bytes)."),
    )
}

/// A Runtime API request, classified from its head alone (method, path and headers), before any
/// body is read.
#[derive(Debug, PartialEq, Eq)]
pub enum RuntimeRoute<'a> {
    /// `GET .../invocation/next`.
    Next,
    /// `POST .../invocation/{id}/response`; `streaming` when the runtime asked for streaming mode.
    Response { id: &'a str, streaming: bool },
    /// `POST .../invocation/{id}/error`.
    Error(&'a str),
    /// `POST .../init/error`.
    InitError,
}

/// Classifies a Runtime API request. The error is the status of the `InvalidRequest` answer: 404
/// for a path the API does not have, 405 for a known path asked with the wrong method.
///
/// Public so that the fuzz targets exercise the very function the server routes with.
pub fn route<'a>(
    method: &Method,
    path: &'a str,
    headers: &HeaderMap,
) -> Result<RuntimeRoute<'a>, StatusCode> {
    let rest = path.strip_prefix(PREFIX).ok_or(StatusCode::NOT_FOUND)?;
    let (route, want) = if rest == "invocation/next" {
        (RuntimeRoute::Next, Method::GET)
    } else if rest == "init/error" {
        (RuntimeRoute::InitError, Method::POST)
    } else if let Some(inv) = rest.strip_prefix("invocation/") {
        match inv.rsplit_once('/') {
            Some((id, "response")) if !id.is_empty() && !id.contains('/') => {
                let streaming = is_streaming(headers);
                (RuntimeRoute::Response { id, streaming }, Method::POST)
            }
            Some((id, "error")) if !id.is_empty() && !id.contains('/') => {
                (RuntimeRoute::Error(id), Method::POST)
            }
            _ => return Err(StatusCode::NOT_FOUND),
        }
    } else {
        return Err(StatusCode::NOT_FOUND);
    };
    if *method != want {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    Ok(route)
}

async fn handle(api: Arc<RuntimeApi>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    if req.uri().path().starts_with(extensions::PREFIX) {
        return Ok(extensions::handle(&api, req).await);
    }
    if matches!(
        req.uri().path(),
        telemetry::TELEMETRY_PATH | telemetry::LOGS_PATH
    ) {
        return Ok(telemetry::handle(&api, req).await);
    }
    let path = req.uri().path().to_string();
    let reply = match route(req.method(), &path, req.headers()) {
        Err(status) => api_error(
            status,
            "InvalidRequest",
            "Unknown runtime API path or method",
        ),
        Ok(RuntimeRoute::Next) => next(&api).await,
        Ok(RuntimeRoute::Response {
            id,
            streaming: true,
        }) => answer_streaming(&api, id, req).await,
        Ok(RuntimeRoute::Response {
            id,
            streaming: false,
        }) => answer(&api, id, req, Answer::Response).await,
        Ok(RuntimeRoute::Error(id)) => answer(&api, id, req, Answer::Error).await,
        Ok(RuntimeRoute::InitError) => init_error(&api, req).await,
    };
    Ok(reply)
}

async fn next(api: &RuntimeApi) -> Reply {
    {
        let mut st = api.lock();
        st.ready = true;
        st.runtime_waiting = true;
        api.maybe_next_locked(&mut st);
    }
    let assigned = {
        let mut rx = api.next_rx.lock().await;
        rx.recv().await
    };
    let Some(a) = assigned else {
        return api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Environment is shutting down",
        );
    };
    {
        let mut st = api.lock();
        st.current = Some(a.request_id.clone());
        st.claimed = false;
        st.runtime_waiting = false;
        // Under the state lock: the runtime's next `/next` cannot complete the invocation
        // before the extensions got their INVOKE.
        api.extensions.queue_invoke(&a);
    }
    next_response(a)
}

/// The 200 answer of `/next` for an assigned invocation.
fn next_response(a: Assigned) -> Reply {
    let mut r = json(StatusCode::OK, a.payload);
    let h = r.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        } else {
            tracing::debug!("runtime api: {name} value is not a valid header, left out");
        }
    };
    put("Lambda-Runtime-Aws-Request-Id", &a.request_id);
    put("Lambda-Runtime-Deadline-Ms", &a.deadline_ms.to_string());
    put(
        "Lambda-Runtime-Invoked-Function-Arn",
        &a.invoked_function_arn,
    );
    put("Lambda-Runtime-Trace-Id", &a.trace_id);
    if let Some(c) = &a.client_context {
        put("Lambda-Runtime-Client-Context", c);
    }
    if let Some(c) = &a.cognito_identity {
        put("Lambda-Runtime-Cognito-Identity", c);
    }
    r
}

enum Answer {
    Response,
    Error,
}

enum BodyError {
    TooLarge,
    Broken,
}

/// A runtime that posts too much is still heard out up to this many bytes (and its data dropped),
/// so that it can read the 413 instead of failing on a reset connection.
pub(crate) const DISCARD_LIMIT: u64 = 64 * 1024 * 1024;

/// Answers up to this size are not charged to the node's memory budget: a lock per invocation
/// would cost more than the memory it counts.
const CHARGE_FROM: usize = 1024 * 1024;

/// What the server holds of an environment's answer, counted in the node's memory budget
/// against that environment until the invocation takes the answer (dropping this gives it back).
#[derive(Default)]
pub(crate) struct Held(Option<MemoryLease>);

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({} MiB)", self.mb())
    }
}

impl Held {
    pub(crate) fn mb(&self) -> u64 {
        self.0.as_ref().map_or(0, MemoryLease::mb)
    }

    /// Counts `bytes` held for the environment (only ever more: the buffer does not shrink).
    fn hold(&mut self, api: &RuntimeApi, bytes: usize) {
        if bytes <= CHARGE_FROM {
            return;
        }
        let Some(capacity) = &api.capacity else {
            return;
        };
        let mb = bytes.div_ceil(1024 * 1024) as u64;
        match &mut self.0 {
            Some(lease) if lease.mb() >= mb => {}
            Some(lease) => lease.force_resize(mb),
            None => self.0 = Some(capacity.charge(mb)),
        }
    }
}

async fn read_body(
    api: &RuntimeApi,
    req: Request<Incoming>,
) -> Result<(http::request::Parts, Bytes, Held), BodyError> {
    let (parts, mut body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut over = declared.is_some_and(|n| n > MAX_PAYLOAD_BYTES as u64);
    let mut total: u64 = 0;
    // A body that arrives as one frame is passed on as is; only several frames are joined.
    let mut single: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut held = Held::default();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyError::Broken)?.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > MAX_PAYLOAD_BYTES as u64 {
            over = true;
        }
        if over {
            if total > DISCARD_LIMIT {
                return Err(BodyError::TooLarge);
            }
            continue;
        }
        if single.is_none() && joined.is_empty() {
            held.hold(api, data.len());
            single = Some(data);
        } else {
            if let Some(first) = single.take() {
                joined.reserve(
                    declared
                        .map_or(0, |n| n as usize)
                        .max(first.len() + data.len()),
                );
                joined.extend_from_slice(&first);
            }
            joined.extend_from_slice(&data);
            held.hold(api, joined.capacity());
        }
    }
    if over {
        return Err(BodyError::TooLarge);
    }
    Ok((parts, single.unwrap_or_else(|| joined.freeze()), held))
}

fn error_type_header(parts: &http::request::Parts) -> Option<String> {
    parts
        .headers
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Why an answer to an invocation was refused.
enum Refusal {
    UnknownId,
    AlreadyAnswered,
}

impl Refusal {
    fn reply(self) -> Reply {
        match self {
            Refusal::UnknownId => invalid_request_id(),
            Refusal::AlreadyAnswered => invalid_transition(
                "State transition from RuntimeResponseSent to RuntimeResponseSent failed for runtime",
            ),
        }
    }
}

/// Claims the answer to `id` before its body is read: only one post per invocation is read, so
/// parallel posts cannot make the server hold one body each.
fn claim(api: &RuntimeApi, id: &str) -> Result<(), Refusal> {
    let mut st = api.lock();
    match (&st.current, &st.answered) {
        (Some(c), _) if c == id && !st.claimed => {
            st.claimed = true;
            Ok(())
        }
        // Being answered by another post: for the runtime that is an answer already sent.
        (Some(c), _) if c == id => Err(Refusal::AlreadyAnswered),
        (_, Some(a)) if a == id => Err(Refusal::AlreadyAnswered),
        _ => Err(Refusal::UnknownId),
    }
}

/// Gives a claim back (its post broke off), so that the runtime may post the answer again.
fn unclaim(api: &RuntimeApi, id: &str) {
    let mut st = api.lock();
    if st.current.as_deref() == Some(id) {
        st.claimed = false;
    }
}

/// Marks the claimed `id` answered and queues the event `make` builds from it, in one step.
fn settle(api: &RuntimeApi, id: &str, make: impl FnOnce(String) -> RuntimeEvent) {
    let mut st = api.lock();
    if st.current.as_deref() != Some(id) {
        // Only the claim's holder settles, and nothing else clears `current`.
        return;
    }
    let request_id = st.current.take().unwrap_or_default();
    st.claimed = false;
    st.answered = Some(request_id.clone());
    let ev = make(request_id);
    api.emit_locked(&mut st, ev);
}

fn truncated() -> Reply {
    api_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        "Truncated request body",
    )
}

async fn answer(api: &RuntimeApi, id: &str, req: Request<Incoming>, kind: Answer) -> Reply {
    if let Err(refusal) = claim(api, id) {
        return refusal.reply();
    }
    let (parts, body, held) = match read_body(api, req).await {
        Ok(x) => x,
        Err(BodyError::TooLarge) => {
            settle(api, id, |request_id| RuntimeEvent::ResponseTooLarge {
                request_id,
            });
            return too_large();
        }
        Err(BodyError::Broken) => {
            unclaim(api, id);
            return truncated();
        }
    };
    settle(api, id, |request_id| match kind {
        Answer::Response => RuntimeEvent::Response {
            request_id,
            content_type: content_type(&parts.headers),
            body,
            _held: held,
        },
        Answer::Error => RuntimeEvent::Error {
            request_id,
            error_type: error_type_header(&parts),
            body,
            _held: held,
        },
    });
    accepted()
}

fn is_streaming(headers: &HeaderMap) -> bool {
    headers
        .get(RESPONSE_MODE_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("streaming"))
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A streamed response: the body goes to the invocation as it arrives; the runtime's answer waits
/// for the invocation's verdict once the body has ended.
async fn answer_streaming(api: &RuntimeApi, id: &str, req: Request<Incoming>) -> Reply {
    if let Err(refusal) = claim(api, id) {
        return refusal.reply();
    }
    let (parts, body) = req.into_parts();
    let (tx, rx) = oneshot::channel();
    settle(api, id, |request_id| RuntimeEvent::Streaming {
        request_id,
        content_type: content_type(&parts.headers),
        body: StreamedBody {
            body,
            verdict: Some(tx),
            ended: false,
        },
    });
    match rx.await {
        Ok(StreamVerdict::Accepted) => accepted(),
        Ok(StreamVerdict::TooLarge) => api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!(
                "Exceeded maximum allowed payload size ({MAX_STREAMED_RESPONSE_BYTES} bytes)."
            ),
        ),
        Err(_) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "The invocation ended before the response was read",
        ),
    }
}

async fn init_error(api: &RuntimeApi, req: Request<Incoming>) -> Reply {
    {
        let mut st = api.lock();
        if st.ready {
            return invalid_transition(
                "State transition from Ready to InitError failed for runtime",
            );
        }
        // Claimed before the body is read, like an answer.
        if st.init_error_claimed {
            return invalid_transition(
                "State transition from InitError to InitError failed for runtime",
            );
        }
        st.init_error_claimed = true;
    }
    let (parts, body, held) = match read_body(api, req).await {
        Ok(x) => x,
        Err(e) => {
            // Heard out (or broken off) and dropped: the runtime may report a smaller one.
            api.lock().init_error_claimed = false;
            return match e {
                BodyError::TooLarge => too_large(),
                BodyError::Broken => truncated(),
            };
        }
    };
    api.emit(RuntimeEvent::InitError {
        error_type: error_type_header(&parts),
        body,
        _held: held,
    });
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::client::conn::http1 as client;
    use tokio::net::TcpStream;

    #[test]
    fn routes() {
        let get = Method::GET;
        let post = Method::POST;
        let none = HeaderMap::new();
        assert_eq!(
            route(&get, "/2018-06-01/runtime/invocation/next", &none),
            Ok(RuntimeRoute::Next)
        );
        assert_eq!(
            route(
                &post,
                "/2018-06-01/runtime/invocation/abc-1/response",
                &none
            ),
            Ok(RuntimeRoute::Response {
                id: "abc-1",
                streaming: false
            })
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/invocation/abc-1/error", &none),
            Ok(RuntimeRoute::Error("abc-1"))
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/init/error", &none),
            Ok(RuntimeRoute::InitError)
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/invocation/next", &none),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            route(&get, "/2019-01-01/runtime/invocation/next", &none),
            Err(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/invocation//response", &none),
            Err(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            route(&post, "/2018-06-01/runtime/invocation/a/b/response", &none),
            Err(StatusCode::NOT_FOUND)
        );
    }

    #[test]
    fn streaming_mode_is_read_from_the_header() {
        let post = Method::POST;
        let path = "/2018-06-01/runtime/invocation/abc-1/response";
        let mut headers = HeaderMap::new();
        headers.insert(
            RESPONSE_MODE_HEADER,
            HeaderValue::from_static(" Streaming "),
        );
        assert_eq!(
            route(&post, path, &headers),
            Ok(RuntimeRoute::Response {
                id: "abc-1",
                streaming: true
            })
        );
        headers.insert(RESPONSE_MODE_HEADER, HeaderValue::from_static("buffered"));
        assert_eq!(
            route(&post, path, &headers),
            Ok(RuntimeRoute::Response {
                id: "abc-1",
                streaming: false
            })
        );
        // Only a response can stream; the header does not change other routes.
        headers.insert(RESPONSE_MODE_HEADER, HeaderValue::from_static("streaming"));
        assert_eq!(
            route(
                &post,
                "/2018-06-01/runtime/invocation/abc-1/error",
                &headers
            ),
            Ok(RuntimeRoute::Error("abc-1"))
        );
    }

    struct Harness {
        addr: std::net::SocketAddr,
        api: Arc<RuntimeApi>,
        next_tx: mpsc::Sender<Assigned>,
        events: mpsc::UnboundedReceiver<RuntimeEvent>,
        server: JoinHandle<()>,
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    fn start() -> Harness {
        start_with(None)
    }

    /// A harness that also serves on `unix`.
    fn start_with(unix: Option<std::os::unix::net::UnixListener>) -> Harness {
        start_full(unix, None)
    }

    fn start_full(
        unix: Option<std::os::unix::net::UnixListener>,
        capacity: Option<Arc<Capacity>>,
    ) -> Harness {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (ev_tx, events) = mpsc::unbounded_channel();
        let (api, next_tx) = RuntimeApi::new(ev_tx, capacity);
        let server = serve(listener, unix, api.clone()).unwrap();
        Harness {
            addr,
            api,
            next_tx,
            events,
            server,
        }
    }

    struct Client {
        send: client::SendRequest<Full<Bytes>>,
    }

    async fn connect(addr: std::net::SocketAddr) -> Client {
        client_over(tokio::net::TcpStream::connect(addr).await.unwrap()).await
    }

    async fn client_over<S>(stream: S) -> Client
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) = client::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        Client { send }
    }

    impl Client {
        async fn call(
            &mut self,
            method: Method,
            path: &str,
            headers: &[(&str, &str)],
            body: Bytes,
        ) -> (StatusCode, http::HeaderMap, Bytes) {
            let mut b = Request::builder()
                .method(method)
                .uri(path)
                .header("host", "x");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            let resp = self
                .send
                .send_request(b.body(Full::new(body)).unwrap())
                .await
                .unwrap();
            let (parts, body) = resp.into_parts();
            (
                parts.status,
                parts.headers,
                body.collect().await.unwrap().to_bytes(),
            )
        }
    }

    fn assigned(id: &str) -> Assigned {
        Assigned {
            request_id: id.into(),
            payload: Bytes::from_static(b"{\"k\":1}"),
            deadline_ms: 1_700_000_000_123,
            invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f:prod".into(),
            trace_id: "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=0".into(),
            client_context: Some("{\"custom\":{\"a\":\"b\"}}".into()),
            cognito_identity: None,
        }
    }

    const NEXT: &str = "/2018-06-01/runtime/invocation/next";

    #[tokio::test]
    async fn next_delivers_the_event_with_lambda_headers() {
        let mut h = start();
        let mut c = connect(h.addr).await;
        h.next_tx.send(assigned("req-1")).await.unwrap();
        let (status, headers, body) = c.call(Method::GET, NEXT, &[], Bytes::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"{\"k\":1}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["lambda-runtime-aws-request-id"], "req-1");
        assert_eq!(headers["lambda-runtime-deadline-ms"], "1700000000123");
        assert_eq!(
            headers["lambda-runtime-invoked-function-arn"],
            "arn:aws:lambda:us-east-1:123456789012:function:f:prod"
        );
        assert_eq!(
            headers["lambda-runtime-trace-id"],
            "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=0"
        );
        assert_eq!(
            headers["lambda-runtime-client-context"],
            "{\"custom\":{\"a\":\"b\"}}"
        );
        assert!(headers.get("lambda-runtime-cognito-identity").is_none());
        assert!(matches!(h.events.recv().await, Some(RuntimeEvent::Next)));
    }

    #[tokio::test]
    async fn the_unix_socket_serves_the_same_api_and_state() {
        let name = format!("updraft-runtime-api-test-{}", std::process::id());
        let sa = updraft_sandbox::abstract_socket_addr(&name).unwrap();
        let unix = std::os::unix::net::UnixListener::bind_addr(&sa).unwrap();
        let mut h = start_with(Some(unix));

        let stream = std::os::unix::net::UnixStream::connect_addr(&sa).unwrap();
        stream.set_nonblocking(true).unwrap();
        let mut over_unix = client_over(UnixStream::from_std(stream).unwrap()).await;
        h.next_tx.send(assigned("req-u")).await.unwrap();
        let (status, headers, body) = over_unix.call(Method::GET, NEXT, &[], Bytes::new()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["lambda-runtime-aws-request-id"], "req-u");
        assert_eq!(&body[..], b"{\"k\":1}");
        assert!(matches!(h.events.recv().await, Some(RuntimeEvent::Next)));

        // The invocation handed out on the socket is the one TCP answers for.
        let mut over_tcp = connect(h.addr).await;
        let (status, _, _) = over_tcp
            .call(
                Method::POST,
                "/2018-06-01/runtime/invocation/req-u/response",
                &[],
                Bytes::from_static(b"\"ok\""),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        match h.events.recv().await {
            Some(RuntimeEvent::Response { body, .. }) => assert_eq!(&body[..], b"\"ok\""),
            other => panic!("expected the response, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn response_lifecycle_and_request_id_checks() {
        let mut h = start();
        let mut c = connect(h.addr).await;
        h.next_tx.send(assigned("req-1")).await.unwrap();
        c.call(Method::GET, NEXT, &[], Bytes::new()).await;

        let (s, _, b) = c
            .call(
                Method::POST,
                "/2018-06-01/runtime/invocation/other/response",
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["errorType"], "InvalidRequestID");

        let (s, h1, b) = c
            .call(
                Method::POST,
                "/2018-06-01/runtime/invocation/req-1/response",
                &[],
                Bytes::from_static(b"\"hi\""),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        assert_eq!(&b[..], br#"{"status":"OK"}"#);
        assert_eq!(h1["content-type"], "application/json");

        let (s, _, b) = c
            .call(
                Method::POST,
                "/2018-06-01/runtime/invocation/req-1/response",
                &[],
                Bytes::from_static(b"\"again\""),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["errorType"], "InvalidStateTransition");

        let (s, _, _) = c
            .call(
                Method::POST,
                "/2018-06-01/runtime/init/error",
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        assert!(matches!(h.events.recv().await, Some(RuntimeEvent::Next)));
        match h.events.recv().await {
            Some(RuntimeEvent::Response {
                request_id, body, ..
            }) => {
                assert_eq!(request_id, "req-1");
                assert_eq!(&body[..], b"\"hi\"");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(h.events.try_recv().is_err());
    }

    #[tokio::test]
    async fn error_carries_the_error_type_header() {
        let mut h = start();
        let mut c = connect(h.addr).await;
        h.next_tx.send(assigned("req-2")).await.unwrap();
        c.call(Method::GET, NEXT, &[], Bytes::new()).await;
        let (s, _, _) = c
            .call(
                Method::POST,
                "/2018-06-01/runtime/invocation/req-2/error",
                &[("Lambda-Runtime-Function-Error-Type", "Unhandled")],
                Bytes::from_static(br#"{"errorMessage":"boom","errorType":"ValueError"}"#),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let _next = h.events.recv().await;
        match h.events.recv().await {
            Some(RuntimeEvent::Error {
                request_id,
                error_type,
                body,
                ..
            }) => {
                assert_eq!(request_id, "req-2");
                assert_eq!(error_type.as_deref(), Some("Unhandled"));
                assert!(body.starts_with(b"{\"errorMessage\":\"boom\""));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn oversized_response_is_413_and_fails_the_invocation() {
        let mut h = start();
        let mut c = connect(h.addr).await;
        h.next_tx.send(assigned("req-3")).await.unwrap();
        c.call(Method::GET, NEXT, &[], Bytes::new()).await;
        let big = Bytes::from(vec![b'a'; MAX_PAYLOAD_BYTES + 1]);
        let (s, _, b) = c
            .call(
                Method::POST,
                "/2018-06-01/runtime/invocation/req-3/response",
                &[],
                big,
            )
            .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["errorType"], "RequestEntityTooLarge");
        let _next = h.events.recv().await;
        assert!(matches!(
            h.events.recv().await,
            Some(RuntimeEvent::ResponseTooLarge { request_id }) if request_id == "req-3"
        ));

        // Exactly at the limit is fine.
        let mut c = connect(h.addr).await;
        h.next_tx.send(assigned("req-4")).await.unwrap();
        c.call(Method::GET, NEXT, &[], Bytes::new()).await;
        let max = Bytes::from(vec![b'a'; MAX_PAYLOAD_BYTES]);
        let (s, _, _) = c
            .call(
                Method::POST,
                "/2018-06-01/runtime/invocation/req-4/response",
                &[],
                max,
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
    }

    #[test]
    fn trailer_errors_are_decoded() {
        let mut t = HeaderMap::new();
        assert_eq!(trailer_error(&t), None);
        t.insert(ERROR_TYPE_HEADER, HeaderValue::from_static("TypeError"));
        t.insert(
            ERROR_BODY_TRAILER,
            HeaderValue::from_static("eyJlcnJvclR5cGUiOiJUeXBlRXJyb3IifQ=="),
        );
        let e = trailer_error(&t).unwrap();
        assert_eq!(e.error_type, "TypeError");
        assert_eq!(&e.body[..], br#"{"errorType":"TypeError"}"#);

        // A type alone gets a body in Lambda's shape; a body alone names the type.
        let mut t = HeaderMap::new();
        t.insert(ERROR_TYPE_HEADER, HeaderValue::from_static("Custom"));
        assert_eq!(
            &trailer_error(&t).unwrap().body[..],
            br#"{"errorMessage":"","errorType":"Custom"}"#
        );
        let mut t = HeaderMap::new();
        t.insert(
            ERROR_BODY_TRAILER,
            HeaderValue::from_static("eyJlcnJvclR5cGUiOiJUeXBlRXJyb3IifQ=="),
        );
        assert_eq!(trailer_error(&t).unwrap().error_type, "TypeError");
    }

    #[tokio::test]
    async fn streamed_response_is_handed_over_before_it_ends() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut h = start();
        let mut c = connect(h.addr).await;
        h.next_tx.send(assigned("req-s")).await.unwrap();
        c.call(Method::GET, NEXT, &[], Bytes::new()).await;
        assert!(matches!(h.events.recv().await, Some(RuntimeEvent::Next)));

        let mut raw = tokio::net::TcpStream::connect(h.addr).await.unwrap();
        raw.write_all(
            b"POST /2018-06-01/runtime/invocation/req-s/response HTTP/1.1\r\nhost: x\r\n\
              Lambda-Runtime-Function-Response-Mode: streaming\r\n\
              Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n",
        )
        .await
        .unwrap();
        let Some(RuntimeEvent::Streaming {
            request_id,
            content_type,
            mut body,
        }) = h.events.recv().await
        else {
            panic!("expected a streaming response");
        };
        assert_eq!(request_id, "req-s");
        assert_eq!(content_type.as_deref(), Some("text/event-stream"));
        // The first chunk is readable while the runtime has not finished writing.
        assert!(matches!(body.next().await, Some(Ok(StreamPiece::Data(d))) if &d[..] == b"one"));
        raw.write_all(b"3\r\ntwo\r\n0\r\nLambda-Runtime-Function-Error-Type: Boom\r\n\r\n")
            .await
            .unwrap();
        assert!(matches!(body.next().await, Some(Ok(StreamPiece::Data(d))) if &d[..] == b"two"));
        match body.next().await {
            Some(Ok(StreamPiece::End(Some(e)))) => assert_eq!(e.error_type, "Boom"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(body.next().await.is_none());
        body.finish(StreamVerdict::Accepted);
        let mut answer = vec![0u8; 512];
        let n = raw.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

        // The invocation is answered: a second response is refused.
        let (s, _, _) = c
            .call(
                Method::POST,
                "/2018-06-01/runtime/invocation/req-s/response",
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn init_error_before_first_next() {
        let mut h = start();
        let mut c = connect(h.addr).await;
        let (s, _, _) = c
            .call(
                Method::POST,
                "/2018-06-01/runtime/init/error",
                &[(
                    "Lambda-Runtime-Function-Error-Type",
                    "Runtime.ImportModuleError",
                )],
                Bytes::from_static(br#"{"errorType":"Runtime.ImportModuleError"}"#),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        match h.events.recv().await {
            Some(RuntimeEvent::InitError {
                error_type, body, ..
            }) => {
                assert_eq!(error_type.as_deref(), Some("Runtime.ImportModuleError"));
                assert!(!body.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        let (s, _, _) = c
            .call(
                Method::GET,
                "/2018-06-01/runtime/nothing",
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    /// Generous: a refusal comes from the head alone, so only a broken server takes this long.
    const REFUSAL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

    /// Sends a request head (and `body`) on a raw connection.
    async fn raw_post(
        addr: std::net::SocketAddr,
        path: &str,
        length: usize,
        body: &[u8],
    ) -> TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {length}\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body).await.unwrap();
        s
    }

    /// Reads what the server answered on `s` until the head and `{...}` body are in.
    async fn read_answer(s: &mut TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if n == 0 || text.ends_with('}') {
                return text;
            }
        }
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_and_room_comes_back() {
        use tokio::io::AsyncReadExt;
        let h = start();
        let mut open = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            let mut c = connect(h.addr).await;
            // Served: an unknown path is answered.
            let (s, _, _) = c.call(Method::GET, "/nothing", &[], Bytes::new()).await;
            assert_eq!(s, StatusCode::NOT_FOUND);
            open.push(c);
        }
        // One more is accepted by the kernel and closed unread by the server.
        let mut extra = TcpStream::connect(h.addr).await.unwrap();
        let mut buf = [0u8; 64];
        let n = extra.read(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0, "a connection over the cap was served");
        assert_eq!(h.api.refused.load(Ordering::Relaxed), 1);

        // A connection that ends gives its place back (the server notices the close on its own
        // schedule, so a new connection may be refused a few times first).
        drop(open.pop());
        let mut served = false;
        for _ in 0..500 {
            let Ok(mut c) = tokio::time::timeout(std::time::Duration::from_secs(1), async {
                let stream = TcpStream::connect(h.addr).await.unwrap();
                let (send, conn) = client::handshake(TokioIo::new(stream)).await.unwrap();
                tokio::spawn(conn);
                Client { send }
            })
            .await
            else {
                continue;
            };
            let req = Request::get("/nothing")
                .header("host", "x")
                .body(Full::new(Bytes::new()))
                .unwrap();
            if let Ok(resp) = c.send.send_request(req).await {
                assert_eq!(resp.status(), StatusCode::NOT_FOUND);
                served = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(served, "no room after a connection closed");
    }

    #[tokio::test]
    async fn a_second_post_for_the_same_id_is_refused_without_reading_its_body() {
        let mut h = start();
        let mut c = connect(h.addr).await;
        h.next_tx.send(assigned("req-c")).await.unwrap();
        c.call(Method::GET, NEXT, &[], Bytes::new()).await;
        assert!(matches!(h.events.recv().await, Some(RuntimeEvent::Next)));

        // Two posts announce 6 MB each and send none of it: whichever the server reads first
        // claims the answer, the other is refused from its head alone.
        let path = "/2018-06-01/runtime/invocation/req-c/response";
        let mut a = raw_post(h.addr, path, MAX_PAYLOAD_BYTES, b"").await;
        let mut b = raw_post(h.addr, path, MAX_PAYLOAD_BYTES, b"").await;
        // Without claims both would wait for their bodies: the bound turns that into a failure.
        let (refused, mut claimed) = tokio::time::timeout(REFUSAL_WAIT, async {
            tokio::select! {
                answer = read_answer(&mut a) => (answer, b),
                answer = read_answer(&mut b) => (answer, a),
            }
        })
        .await
        .expect("neither post was refused");
        assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
        assert!(refused.contains("InvalidStateTransition"), "{refused}");
        // The claim holder's body is still awaited: nothing was answered yet.
        assert!(h.events.try_recv().is_err());

        {
            use tokio::io::AsyncWriteExt;
            let body = vec![b'a'; MAX_PAYLOAD_BYTES];
            claimed.write_all(&body).await.unwrap();
        }
        let answer = read_answer(&mut claimed).await;
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        match h.events.recv().await {
            Some(RuntimeEvent::Response {
                request_id, body, ..
            }) => {
                assert_eq!(request_id, "req-c");
                assert_eq!(body.len(), MAX_PAYLOAD_BYTES);
            }
            other => panic!("expected the response, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_post_that_breaks_off_gives_its_claim_back() {
        let mut h = start();
        let mut c = connect(h.addr).await;
        h.next_tx.send(assigned("req-b")).await.unwrap();
        c.call(Method::GET, NEXT, &[], Bytes::new()).await;
        let path = "/2018-06-01/runtime/invocation/req-b/response";
        let mut broken = raw_post(h.addr, path, 1000, b"partial").await;
        {
            use tokio::io::AsyncWriteExt;
            broken.shutdown().await.unwrap();
        }
        let answer = read_answer(&mut broken).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        let (s, _, _) = c
            .call(Method::POST, path, &[], Bytes::from_static(b"\"ok\""))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        assert!(matches!(h.events.recv().await, Some(RuntimeEvent::Next)));
        assert!(matches!(
            h.events.recv().await,
            Some(RuntimeEvent::Response { body, .. }) if &body[..] == b"\"ok\""
        ));
    }

    #[tokio::test]
    async fn a_second_init_error_is_refused_while_the_first_is_read() {
        let h = start();
        let path = "/2018-06-01/runtime/init/error";
        let mut a = raw_post(h.addr, path, 1000, b"").await;
        let mut b = raw_post(h.addr, path, 1000, b"").await;
        let refused = tokio::time::timeout(REFUSAL_WAIT, async {
            tokio::select! {
                answer = read_answer(&mut a) => answer,
                answer = read_answer(&mut b) => answer,
            }
        })
        .await
        .expect("neither init error was refused");
        assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
        assert!(refused.contains("InvalidStateTransition"), "{refused}");
    }

    /// Runs `/next` until it waits for an invocation, then drops it (as hyper does when the
    /// runtime hangs up).
    async fn next_and_hang_up(api: &RuntimeApi) {
        let polled_once = tokio::time::timeout(std::time::Duration::ZERO, next(api)).await;
        assert!(polled_once.is_err(), "no invocation was assigned");
    }

    #[tokio::test]
    async fn next_calls_in_a_row_queue_one_event() {
        let mut h = start();
        for _ in 0..1000 {
            next_and_hang_up(&h.api).await;
        }
        assert!(matches!(h.events.try_recv(), Ok(RuntimeEvent::Next)));
        assert!(h.events.try_recv().is_err(), "more than one event queued");

        // An answer in between is kept in order, and the `/next` after it is told again.
        let mut c = connect(h.addr).await;
        h.next_tx.send(assigned("req-n")).await.unwrap();
        c.call(Method::GET, NEXT, &[], Bytes::new()).await;
        let (s, _, _) = c
            .call(
                Method::POST,
                "/2018-06-01/runtime/invocation/req-n/response",
                &[],
                Bytes::from_static(b"1"),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        for _ in 0..1000 {
            next_and_hang_up(&h.api).await;
        }
        assert!(matches!(
            h.events.try_recv(),
            Ok(RuntimeEvent::Response { request_id, .. }) if request_id == "req-n"
        ));
        assert!(matches!(h.events.try_recv(), Ok(RuntimeEvent::Next)));
        assert!(h.events.try_recv().is_err(), "more than one event queued");
    }

    #[tokio::test]
    async fn a_large_answer_is_charged_to_the_node_until_it_is_taken() {
        let capacity = Capacity::new(1000);
        let mut h = start_full(None, Some(capacity.clone()));
        let mut c = connect(h.addr).await;
        h.next_tx.send(assigned("req-m")).await.unwrap();
        c.call(Method::GET, NEXT, &[], Bytes::new()).await;
        assert!(matches!(h.events.recv().await, Some(RuntimeEvent::Next)));

        // Half of a 5 MiB answer: the server holds a buffer for all of it already.
        let path = "/2018-06-01/runtime/invocation/req-m/response";
        let five = 5 * 1024 * 1024;
        let mut post = raw_post(h.addr, path, five, &vec![b'a'; five / 2]).await;
        let mut charged = false;
        for _ in 0..3000 {
            if capacity.used_mb() == 5 {
                charged = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            charged,
            "the buffer was not charged: {} MiB",
            capacity.used_mb()
        );
        {
            use tokio::io::AsyncWriteExt;
            post.write_all(&vec![b'a'; five - five / 2]).await.unwrap();
        }
        assert!(read_answer(&mut post).await.starts_with("HTTP/1.1 202"));
        // Still charged while the answer waits for its invocation, given back once taken.
        let ev = h.events.recv().await;
        assert!(matches!(&ev, Some(RuntimeEvent::Response { _held, .. }) if _held.mb() == 5));
        assert_eq!(capacity.used_mb(), 5);
        drop(ev);
        assert_eq!(capacity.used_mb(), 0);

        // Small answers cost nothing.
        h.next_tx.send(assigned("req-s")).await.unwrap();
        c.call(Method::GET, NEXT, &[], Bytes::new()).await;
        let (s, _, _) = c
            .call(
                Method::POST,
                "/2018-06-01/runtime/invocation/req-s/response",
                &[],
                Bytes::from(vec![b'b'; 64 * 1024]),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        assert_eq!(capacity.used_mb(), 0);
    }
}
