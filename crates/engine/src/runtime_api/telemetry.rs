//! The Lambda Telemetry API (`PUT /2022-07-01/telemetry`) and the legacy Logs API
//! (`PUT /2020-08-15/logs`), on the Runtime API address.
//!
//! A registered extension subscribes to streams (`platform`, `function`, `extension`) with a
//! buffering setting (`maxItems` 25–10,000, `maxBytes` 262,144–1,048,576, `timeoutMs`
//! 25–30,000; Lambda's bounds and defaults) and an HTTP destination inside the environment
//! (`http://sandbox.localdomain:<port>`, or `127.0.0.1` / `localhost`). Records are delivered as
//! JSON arrays in POSTs to that listener, through a connection the sandbox makes inside the
//! environment's network namespace.
//!
//! Each subscription has a bounded queue: records that arrive while it is full are dropped and
//! counted, so a slow or dead subscriber never holds the node's memory nor slows invocations.
//! Publishing costs nothing while nobody subscribed (one atomic load).
//!
//! The Logs API answers as the Telemetry API does: the same subscription body (its `types` are
//! `platform`, `function`, `extension`), the same delivery.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Reply, RuntimeApi, api_error, json};

pub(crate) const TELEMETRY_PATH: &str = "/2022-07-01/telemetry";
pub(crate) const LOGS_PATH: &str = "/2020-08-15/logs";

/// Records queued per subscription before new ones are dropped.
pub(crate) const QUEUE_RECORDS: usize = 10_000;

/// Opens a connection to a port inside the environment.
pub(crate) type Connector = Arc<dyn Fn(u16) -> Result<std::net::TcpStream, String> + Send + Sync>;

/// Which stream a record belongs to. An extension's output shares the runtime's pipes, so it
/// arrives on the `function` stream; the `extension` type is accepted and gets nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Platform,
    Function,
}

struct Sub {
    streams: [bool; 3],
    tx: mpsc::Sender<Bytes>,
}

/// The subscriptions of one environment.
#[derive(Default)]
pub(crate) struct Telemetry {
    subs: Mutex<Vec<Sub>>,
    any: AtomicBool,
    connector: OnceLock<Connector>,
    /// Records dropped because a subscriber's queue was full.
    pub(crate) dropped: AtomicU64,
    /// Records of the init phase, kept for subscribers that subscribe during init (they
    /// subscribe after `platform.initStart` happened); closed by the first invocation.
    early: Mutex<Option<Vec<(Stream, Bytes)>>>,
    early_open: AtomicBool,
}

/// Records of the init phase kept for later subscribers.
const EARLY_RECORDS: usize = 256;

/// Lambda's buffering bounds: (min, default, max).
const MAX_ITEMS: (u64, u64, u64) = (25, 10_000, 10_000);
const MAX_BYTES: (u64, u64, u64) = (262_144, 262_144, 1_048_576);
const TIMEOUT_MS: (u64, u64, u64) = (25, 1_000, 30_000);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Buffering {
    max_items: usize,
    max_bytes: usize,
    timeout: Duration,
}

/// A subscription request, checked.
#[derive(Debug, PartialEq, Eq)]
struct Subscription {
    streams: [bool; 3],
    buffering: Buffering,
    port: u16,
}

fn bounded(v: Option<&serde_json::Value>, name: &str, b: (u64, u64, u64)) -> Result<u64, String> {
    match v {
        None => Ok(b.1),
        Some(v) => match v.as_u64() {
            Some(n) if (b.0..=b.2).contains(&n) => Ok(n),
            _ => Err(format!(
                "buffering.{name} must be an integer from {} to {}",
                b.0, b.2
            )),
        },
    }
}

/// Checks a subscription body the way Lambda does.
fn parse(body: &[u8]) -> Result<Subscription, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let types = v
        .get("types")
        .and_then(|t| t.as_array())
        .ok_or("types is required")?;
    let mut streams = [false; 3];
    for t in types {
        match t.as_str() {
            Some("platform") => streams[0] = true,
            Some("function") => streams[1] = true,
            Some("extension") => streams[2] = true,
            _ => return Err(format!("unknown type {t}")),
        }
    }
    let b = v.get("buffering");
    let buffering = Buffering {
        max_items: bounded(b.and_then(|b| b.get("maxItems")), "maxItems", MAX_ITEMS)? as usize,
        max_bytes: bounded(b.and_then(|b| b.get("maxBytes")), "maxBytes", MAX_BYTES)? as usize,
        timeout: Duration::from_millis(bounded(
            b.and_then(|b| b.get("timeoutMs")),
            "timeoutMs",
            TIMEOUT_MS,
        )?),
    };
    let dest = v.get("destination").ok_or("destination is required")?;
    if dest.get("protocol").and_then(|p| p.as_str()) != Some("HTTP") {
        return Err("destination.protocol must be HTTP".into());
    }
    let uri = dest
        .get("URI")
        .and_then(|u| u.as_str())
        .ok_or("destination.URI is required")?;
    let rest = uri
        .strip_prefix("http://")
        .ok_or("destination.URI must be an http:// URI")?;
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or("destination.URI must name a port")?;
    if !matches!(
        host,
        "sandbox.localdomain" | "sandbox" | "127.0.0.1" | "localhost"
    ) {
        return Err("destination.URI must be a listener inside the execution environment".into());
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or("destination.URI has an invalid port")?;
    Ok(Subscription {
        streams,
        buffering,
        port,
    })
}

/// RFC 3339 time with milliseconds, as Lambda stamps records.
pub(crate) fn rfc3339_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    )
}

impl Telemetry {
    /// How the server reaches listeners inside the environment.
    pub(crate) fn set_connector(&self, c: Connector) {
        let _ = self.connector.set(c);
    }

    /// Whether any subscriber exists (publishing is free otherwise).
    pub(crate) fn active(&self) -> bool {
        self.any.load(Ordering::Relaxed)
    }

    /// Starts keeping the init phase's records for subscribers to come.
    pub(crate) fn open_init_backlog(&self) {
        *self.early.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
        self.early_open.store(true, Ordering::Relaxed);
    }

    /// Queues one record `{time, type, record}` for every subscriber of `stream`; `record` is
    /// only built when someone will get it.
    pub(crate) fn publish(
        &self,
        stream: Stream,
        kind: &str,
        record: impl FnOnce() -> serde_json::Value,
    ) {
        let early_open = self.early_open.load(Ordering::Relaxed);
        if !self.active() && !early_open {
            return;
        }
        let lock_early = || self.early.lock().unwrap_or_else(|p| p.into_inner());
        if early_open && kind == "platform.start" {
            self.early_open.store(false, Ordering::Relaxed);
            lock_early().take();
        }
        let item = Bytes::from(
            serde_json::json!({"time": rfc3339_now(), "type": kind, "record": record()})
                .to_string(),
        );
        if early_open
            && kind != "platform.start"
            && let Some(early) = lock_early().as_mut()
            && early.len() < EARLY_RECORDS
        {
            early.push((stream, item.clone()));
        }
        let i = stream as usize;
        for sub in self
            .subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|s| s.streams[i])
        {
            if sub.tx.try_send(item.clone()).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A function's output line (the `function` stream).
    pub(crate) fn function_line(&self, line: &[u8]) {
        if self.active() {
            self.publish(Stream::Function, "function", || {
                serde_json::Value::String(String::from_utf8_lossy(line).into_owned())
            });
        }
    }

    fn subscribe(&self, s: Subscription) -> Result<(), String> {
        let connector = self
            .connector
            .get()
            .cloned()
            .ok_or("telemetry delivery is not available in this environment")?;
        let (tx, rx) = mpsc::channel(QUEUE_RECORDS);
        if let Some(early) = self
            .early
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            for (stream, item) in early.iter().filter(|(st, _)| s.streams[*st as usize]) {
                let _ = (stream, tx.try_send(item.clone()));
            }
        }
        self.subs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Sub {
                streams: s.streams,
                tx,
            });
        self.any.store(true, Ordering::Relaxed);
        tokio::spawn(deliver(rx, s.buffering, s.port, connector));
        Ok(())
    }
}

/// Sends batches to one subscriber until the environment goes (the queue's senders drop).
async fn deliver(mut rx: mpsc::Receiver<Bytes>, b: Buffering, port: u16, connect: Connector) {
    loop {
        let Some(first) = rx.recv().await else { return };
        let mut batch = vec![first];
        let mut bytes = batch[0].len();
        let until = tokio::time::Instant::now() + b.timeout;
        while batch.len() < b.max_items && bytes < b.max_bytes {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(item)) => {
                    bytes += item.len() + 1;
                    batch.push(item);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let mut body = Vec::with_capacity(bytes + 2);
        body.push(b'[');
        for (i, item) in batch.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item);
        }
        body.push(b']');
        let connect = connect.clone();
        let stream = tokio::task::spawn_blocking(move || connect(port)).await;
        let Ok(Ok(stream)) = stream else {
            tracing::debug!("telemetry listener on port {port} unreachable, batch dropped");
            continue;
        };
        if let Err(e) = post(stream, &body).await {
            tracing::debug!("telemetry delivery to port {port} failed: {e}");
        }
    }
}

async fn post(stream: std::net::TcpStream, body: &[u8]) -> std::io::Result<()> {
    stream.set_nonblocking(true)?;
    let mut s = tokio::net::TcpStream::from_std(stream)?;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: sandbox.localdomain\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    // The subscriber's answer is not used; reading it to the end lets it finish cleanly.
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while s.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    Ok(())
}

/// Serves `PUT /2022-07-01/telemetry` and `PUT /2020-08-15/logs`.
pub(crate) async fn handle(api: &RuntimeApi, req: Request<Incoming>) -> Reply {
    if req.method() != http::Method::PUT {
        return api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "InvalidRequest",
            "Use PUT to subscribe",
        );
    }
    let id = req
        .headers()
        .get("Lambda-Extension-Identifier")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Some(id) = id else {
        return api_error(
            StatusCode::FORBIDDEN,
            "Extension.MissingExtensionIdentifier",
            "Missing Lambda-Extension-Identifier header",
        );
    };
    if !api.extensions.is_registered(&id) {
        return api_error(
            StatusCode::FORBIDDEN,
            "Extension.InvalidExtensionIdentifier",
            "Invalid Lambda-Extension-Identifier",
        );
    }
    let limited = http_body_util::Limited::new(req.into_body(), 64 * 1024);
    let Ok(body) = limited.collect().await.map(|c| c.to_bytes()) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "Body too large or broken",
        );
    };
    let sub = match parse(&body) {
        Ok(s) => s,
        Err(m) => return api_error(StatusCode::BAD_REQUEST, "ValidationError", &m),
    };
    match api.telemetry.subscribe(sub) {
        Ok(()) => json(StatusCode::OK, Bytes::from_static(b"\"OK\"")),
        Err(m) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_checked_with_lambdas_bounds() {
        let ok = parse(
            br#"{"schemaVersion":"2022-12-13","types":["platform","function"],
                "buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":100},
                "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:8080"}}"#,
        )
        .unwrap();
        assert_eq!(ok.streams, [true, true, false]);
        assert_eq!(ok.port, 8080);
        assert_eq!(ok.buffering.max_items, 1000);
        assert_eq!(ok.buffering.timeout, Duration::from_millis(100));
        let defaults = parse(
            br#"{"types":["extension"],"destination":{"protocol":"HTTP","URI":"http://127.0.0.1:9000/"}}"#,
        )
        .unwrap();
        assert_eq!(defaults.buffering.max_items, 10_000);
        assert_eq!(defaults.buffering.max_bytes, 262_144);
        assert_eq!(defaults.buffering.timeout, Duration::from_millis(1000));
        for bad in [
            r#"{"types":["platform"],"buffering":{"maxItems":24},"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1"}}"#,
            r#"{"types":["platform"],"buffering":{"timeoutMs":30001},"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1"}}"#,
            r#"{"types":["platform"],"buffering":{"maxBytes":1048577},"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1"}}"#,
            r#"{"types":["nope"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1"}}"#,
            r#"{"types":["platform"],"destination":{"protocol":"TCP","URI":"http://sandbox.localdomain:1"}}"#,
            r#"{"types":["platform"],"destination":{"protocol":"HTTP","URI":"http://example.com:80"}}"#,
            r#"{"types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain"}}"#,
            r#"{"types":["platform"]}"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let t = Telemetry::default();
        let (tx, _rx) = mpsc::channel(2);
        t.subs.lock().unwrap().push(Sub {
            streams: [true, false, false],
            tx,
        });
        t.any.store(true, Ordering::Relaxed);
        for _ in 0..5 {
            t.publish(
                Stream::Platform,
                "platform.report",
                || serde_json::json!({}),
            );
        }
        t.publish(Stream::Function, "function", || {
            serde_json::json!("not subscribed")
        });
        assert_eq!(t.dropped.load(Ordering::Relaxed), 3);
    }
}
