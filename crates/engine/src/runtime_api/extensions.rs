//! The Lambda Extensions API (version 2020-01-01), on the same address as the Runtime API.
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /2020-01-01/extension/register` (`Lambda-Extension-Name`, `{"events": [...]}`) | 200 `{functionName, functionVersion, handler[, accountId]}`, `Lambda-Extension-Identifier` |
//! | `GET /2020-01-01/extension/event/next` | blocks until the next `INVOKE` or `SHUTDOWN` event |
//! | `POST /2020-01-01/extension/init/error` | 202; the environment's init fails with the given error type |
//! | `POST /2020-01-01/extension/exit/error` | 202; the environment is replaced after this invocation |
//!
//! Refusals are 403 with Lambda's error types (`Extension.InvalidExtensionName`,
//! `Extension.AlreadyRegistered`, `Extension.RegistrationServiceOff` after init,
//! `Extension.InvalidEventType`, `Extension.TooManyExtensions`,
//! `Extension.MissingExtensionIdentifier`, `Extension.InvalidExtensionIdentifier`).
//!
//! The lifecycle rules live here as a gate the Runtime API consults: the environment's owner
//! hears `Next` (init over, or an invocation complete) only once the runtime *and* every
//! registered extension wait for their next event. An extension is *busy* from the moment an
//! event is queued for it until it asks for the next one. An extension whose connection breaks
//! while it waits for an event has crashed (`Extension.Crash`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::Notify;

use super::{Assigned, Reply, RuntimeApi, RuntimeEvent, accepted, api_error, json};

/// Path prefix of the Extensions API.
pub(crate) const PREFIX: &str = "/2020-01-01/extension/";

/// Lambda's limit of extensions per function.
pub(crate) const MAX_EXTENSIONS: usize = 10;

/// Largest register or error body read (they are a few bytes of JSON).
const MAX_BODY: usize = 64 * 1024;

/// A refused request: 403 with one of Lambda's error types.
pub(crate) struct Refused {
    error_type: &'static str,
    message: String,
}

impl Refused {
    fn new(error_type: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            error_type,
            message: message.into(),
        }
    }

    fn reply(self) -> Reply {
        api_error(StatusCode::FORBIDDEN, self.error_type, &self.message)
    }
}

/// What the register answer tells an extension about its function.
#[derive(Debug, Clone, Default)]
pub(crate) struct FunctionInfo {
    pub function_name: String,
    pub function_version: String,
    pub handler: String,
    pub account_id: String,
}

struct Ext {
    id: String,
    name: String,
    invoke: bool,
    shutdown: bool,
    queue: VecDeque<Bytes>,
    /// An event was queued or handed over and the extension has not asked for the next one.
    busy: bool,
    wake: Arc<Notify>,
}

#[derive(Default)]
struct ExtState {
    exts: Vec<Ext>,
    /// Registration is over: the init phase ended.
    closed: bool,
    /// An extension reported an error or crashed: the environment must not be reused.
    failed: Option<String>,
}

/// The extensions of one environment.
#[derive(Default)]
pub(crate) struct Extensions {
    st: Mutex<ExtState>,
    info: OnceLock<FunctionInfo>,
    /// External extensions (files in `/opt/extensions`) the init phase waits for.
    expected: std::sync::atomic::AtomicUsize,
}

impl Extensions {
    fn lock(&self) -> std::sync::MutexGuard<'_, ExtState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_function(&self, info: FunctionInfo) {
        let _ = self.info.set(info);
    }

    /// How many external extensions must register before init can end.
    pub(crate) fn expect(&self, n: usize) {
        self.expected.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether `id` names a registered extension.
    pub(crate) fn is_registered(&self, id: &str) -> bool {
        self.lock().exts.iter().any(|e| e.id == id)
    }

    /// Registered extensions.
    pub(crate) fn count(&self) -> usize {
        self.lock().exts.len()
    }

    /// Why the environment must be replaced, if an extension failed.
    pub(crate) fn failure(&self) -> Option<String> {
        self.lock().failed.clone()
    }

    /// Whether every extension waits for its next event (and every expected one registered).
    pub(crate) fn all_waiting(&self) -> bool {
        let st = self.lock();
        st.exts.len() >= self.expected.load(std::sync::atomic::Ordering::Relaxed)
            && st.exts.iter().all(|e| !e.busy)
    }

    /// Ends registration (the init phase is over).
    pub(crate) fn close_registration(&self) {
        self.lock().closed = true;
    }

    /// Queues the `INVOKE` event of `a` for every extension subscribed to it.
    pub(crate) fn queue_invoke(&self, a: &Assigned) {
        let mut st = self.lock();
        if st.exts.is_empty() {
            return;
        }
        let event = serde_json::json!({
            "eventType": "INVOKE",
            "deadlineMs": a.deadline_ms,
            "requestId": a.request_id,
            "invokedFunctionArn": a.invoked_function_arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": a.trace_id},
        });
        let body = Bytes::from(event.to_string());
        for e in st.exts.iter_mut().filter(|e| e.invoke) {
            e.queue.push_back(body.clone());
            e.busy = true;
            e.wake.notify_one();
        }
    }

    /// Queues `SHUTDOWN` for every extension subscribed to it; returns how many were told.
    pub(crate) fn queue_shutdown(&self, reason: &str, deadline_ms: u64) -> usize {
        let mut st = self.lock();
        let body = Bytes::from(
            serde_json::json!({
                "eventType": "SHUTDOWN",
                "shutdownReason": reason,
                "deadlineMs": deadline_ms,
            })
            .to_string(),
        );
        let mut n = 0;
        for e in st.exts.iter_mut().filter(|e| e.shutdown) {
            e.queue.push_back(body.clone());
            e.busy = true;
            e.wake.notify_one();
            n += 1;
        }
        n
    }

    fn register(
        &self,
        name: &str,
        events: &[String],
        account_feature: bool,
    ) -> Result<(String, Bytes), Refused> {
        let refuse = |t: &'static str, m: String| Err(Refused::new(t, m));
        if name.is_empty() {
            return refuse(
                "Extension.InvalidExtensionName",
                "Empty extension name".into(),
            );
        }
        let (mut invoke, mut shutdown) = (false, false);
        for ev in events {
            match ev.as_str() {
                "INVOKE" => invoke = true,
                "SHUTDOWN" => shutdown = true,
                other => {
                    return refuse(
                        "Extension.InvalidEventType",
                        format!("Failed to register {name}: event {other}"),
                    );
                }
            }
        }
        let mut st = self.lock();
        if st.closed {
            return refuse(
                "Extension.RegistrationServiceOff",
                format!("Failed to register {name}: registration is only open during init"),
            );
        }
        if st.exts.iter().any(|e| e.name == name) {
            return refuse(
                "Extension.AlreadyRegistered",
                format!("Failed to register {name}: already registered"),
            );
        }
        if st.exts.len() >= MAX_EXTENSIONS {
            return refuse(
                "Extension.TooManyExtensions",
                format!("Extension limit ({MAX_EXTENSIONS}) reached"),
            );
        }
        let id = uuid::Uuid::new_v4().to_string();
        st.exts.push(Ext {
            id: id.clone(),
            name: name.to_string(),
            invoke,
            shutdown,
            queue: VecDeque::new(),
            // Busy until its first `next`: init waits for it.
            busy: true,
            wake: Arc::new(Notify::new()),
        });
        let info = self.info.get().cloned().unwrap_or_default();
        let mut body = serde_json::json!({
            "functionName": info.function_name,
            "functionVersion": info.function_version,
            "handler": info.handler,
        });
        if account_feature {
            body["accountId"] = info.account_id.into();
        }
        Ok((id, Bytes::from(body.to_string())))
    }

    fn mark_failed(&self, why: String) {
        let mut st = self.lock();
        st.failed.get_or_insert(why);
    }
}

/// Marks an extension as crashed when its `next` call is dropped before an event came: the
/// connection broke, so the process is gone.
struct WaitGuard<'a> {
    api: &'a RuntimeApi,
    name: String,
    armed: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let ext = &self.api.extensions;
        let during_init = !ext.lock().closed;
        ext.mark_failed(format!("extension {} exited", self.name));
        if during_init {
            self.api.emit(RuntimeEvent::InitError {
                error_type: Some("Extension.Crash".into()),
                body: Bytes::from(
                    serde_json::json!({
                        "errorType": "Extension.Crash",
                        "errorMessage": format!("extension {} exited during init", self.name),
                    })
                    .to_string(),
                ),
                _held: Default::default(),
            });
        }
    }
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn small_body(req: Request<Incoming>) -> Option<Bytes> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY);
    limited.collect().await.ok().map(|c| c.to_bytes())
}

/// Serves one Extensions API request.
pub(crate) async fn handle(api: &RuntimeApi, req: Request<Incoming>) -> Reply {
    let path = req
        .uri()
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or("")
        .to_string();
    let method = req.method().clone();
    match (method.as_str(), path.as_str()) {
        ("POST", "register") => register(api, req).await,
        ("GET", "event/next") => next(api, req).await,
        ("POST", "init/error") | ("POST", "exit/error") => {
            report_error(api, req, path == "init/error").await
        }
        (_, "register" | "event/next" | "init/error" | "exit/error") => api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "InvalidRequest",
            "Wrong method for this Extensions API path",
        ),
        _ => api_error(
            StatusCode::NOT_FOUND,
            "InvalidRequest",
            "Unknown extensions API path",
        ),
    }
}

async fn register(api: &RuntimeApi, req: Request<Incoming>) -> Reply {
    let name = header(&req, "Lambda-Extension-Name")
        .unwrap_or("")
        .to_string();
    let account_feature = header(&req, "Lambda-Extension-Accept-Feature")
        .is_some_and(|f| f.split(',').any(|f| f.trim() == "accountId"));
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        events: Vec<String>,
    }
    let Some(raw) = small_body(req).await else {
        return api_error(
            StatusCode::FORBIDDEN,
            "InvalidRequestFormat",
            "Body too large or broken",
        );
    };
    let body: Body = match serde_json::from_slice(&raw) {
        Ok(b) => b,
        Err(e) => {
            return api_error(
                StatusCode::FORBIDDEN,
                "InvalidRequestFormat",
                &e.to_string(),
            );
        }
    };
    match api
        .extensions
        .register(&name, &body.events, account_feature)
    {
        Ok((id, body)) => {
            let mut r = json(StatusCode::OK, body);
            if let Ok(v) = HeaderValue::from_str(&id) {
                r.headers_mut().insert("Lambda-Extension-Identifier", v);
            }
            r
        }
        Err(refused) => refused.reply(),
    }
}

/// Finds the extension named by the request's identifier header.
fn identify(api: &RuntimeApi, req: &Request<Incoming>) -> Result<(String, Arc<Notify>), Refused> {
    let Some(id) = header(req, "Lambda-Extension-Identifier") else {
        return Err(Refused::new(
            "Extension.MissingExtensionIdentifier",
            "Missing Lambda-Extension-Identifier header",
        ));
    };
    let st = api.extensions.lock();
    st.exts
        .iter()
        .find(|e| e.id == id)
        .map(|e| (e.name.clone(), e.wake.clone()))
        .ok_or_else(|| {
            Refused::new(
                "Extension.InvalidExtensionIdentifier",
                "Invalid Lambda-Extension-Identifier",
            )
        })
}

async fn next(api: &RuntimeApi, req: Request<Incoming>) -> Reply {
    let (name, wake) = match identify(api, &req) {
        Ok(x) => x,
        Err(r) => return r.reply(),
    };
    let id = header(&req, "Lambda-Extension-Identifier")
        .unwrap_or("")
        .to_string();
    // The extension is done with its last event: the runtime's owner may hear `Next` now.
    {
        let mut st = api.lock();
        if let Some(e) = api.extensions.lock().exts.iter_mut().find(|e| e.id == id) {
            e.busy = !e.queue.is_empty();
        }
        api.maybe_next_locked(&mut st);
    }
    let mut guard = WaitGuard {
        api,
        name,
        armed: true,
    };
    loop {
        let notified = wake.notified();
        let event = {
            let mut st = api.extensions.lock();
            st.exts.iter_mut().find(|e| e.id == id).and_then(|e| {
                let ev = e.queue.pop_front()?;
                e.busy = true;
                Some(ev)
            })
        };
        if let Some(body) = event {
            guard.armed = false;
            let mut r = json(StatusCode::OK, body);
            if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
                r.headers_mut()
                    .insert("Lambda-Extension-Event-Identifier", v);
            }
            return r;
        }
        notified.await;
    }
}

async fn report_error(api: &RuntimeApi, req: Request<Incoming>, init: bool) -> Reply {
    let (name, _) = match identify(api, &req) {
        Ok(x) => x,
        Err(r) => return r.reply(),
    };
    let error_type = header(&req, "Lambda-Extension-Function-Error-Type")
        .unwrap_or("Extension.Unknown")
        .to_string();
    let body = small_body(req).await.unwrap_or_default();
    let during_init = !api.extensions.lock().closed;
    api.extensions
        .mark_failed(format!("extension {name} reported {error_type}"));
    if init || during_init {
        api.emit(RuntimeEvent::InitError {
            error_type: Some(error_type),
            body,
            _held: Default::default(),
        });
    }
    accepted()
}
