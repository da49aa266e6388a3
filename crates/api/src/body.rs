//! The one way the front door reads a request body: every route (the Lambda API, Invoke,
//! Function URLs) goes through [`BodyReader::read`], which bounds what a client can make the
//! node hold.
//!
//! - a size limit per route, refused from `Content-Length` without keeping a byte;
//! - a read deadline for the whole body, so a trickling client cannot hold a connection and a
//!   buffer for ever;
//! - a node-wide budget of body bytes in flight (a semaphore counted in bytes): a request waits
//!   up to [`BodyLimits::budget_wait`] for room, then is refused with a throttling error, so
//!   thousands of connections each sending a large body cannot exhaust the node's memory;
//! - the body's SHA-256, computed while it streams in, for SigV4.
//!
//! Bodies are read only after the request head has been authenticated as far as it can be
//! (see [`crate::auth::authenticate_head`]): an anonymous client never gets a byte buffered.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest request body accepted at all: a `CreateFunction` carrying a 50 MB zip as base64.
pub const MAX_BODY_BYTES: usize = 70 * 1024 * 1024;

/// Largest body of an EventBridge request: its own limit (256 KB for `PutEvents`) is checked by
/// the service, with its own error; this only keeps a bigger body from being held at all.
pub const EVENTS_MAX_BODY: usize = 1024 * 1024;

/// The node's body settings.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    /// Time a client has to send a whole request body.
    pub read_timeout: Duration,
    /// Body bytes the node holds at once, over all requests; at least [`MAX_BODY_BYTES`].
    pub budget_bytes: usize,
    /// How long a request waits for room in the budget before it is refused.
    pub budget_wait: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(30),
            budget_bytes: 256 * 1024 * 1024,
            budget_wait: Duration::from_secs(2),
        }
    }
}

/// Why a body was not read. The routes turn each into their own error shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("body not received within {0:?}")]
    Timeout(Duration),
    #[error("no room for {0} more body bytes in the node's budget")]
    OverBudget(usize),
    #[error("body read failed: {0}")]
    Read(String),
}

/// A body read in full, and its share of the node's budget (released when this is dropped).
pub struct ReadBody {
    pub bytes: Bytes,
    /// Lower-case hex SHA-256 of `bytes`.
    pub sha256_hex: String,
    pub permit: Option<OwnedSemaphorePermit>,
}

/// Reads bodies within the node's limits; shared by every route.
pub struct BodyReader {
    limits: BodyLimits,
    budget: Arc<Semaphore>,
}

impl Default for BodyReader {
    fn default() -> Self {
        Self::new(BodyLimits::default())
    }
}

impl BodyReader {
    pub fn new(mut limits: BodyLimits) -> Self {
        // A budget smaller than the largest body would refuse that body for ever.
        limits.budget_bytes = limits
            .budget_bytes
            .clamp(MAX_BODY_BYTES, Semaphore::MAX_PERMITS);
        Self {
            budget: Arc::new(Semaphore::new(limits.budget_bytes)),
            limits,
        }
    }

    pub fn limits(&self) -> &BodyLimits {
        &self.limits
    }

    /// Body bytes the budget has room for now.
    pub fn available(&self) -> usize {
        self.budget.available_permits()
    }

    /// Reads `body` (announced as `declared_len` bytes by `Content-Length`, if it was) of at most
    /// `limit` bytes.
    pub async fn read(
        &self,
        body: Body,
        declared_len: Option<u64>,
        limit: usize,
    ) -> Result<ReadBody, BodyError> {
        let limit = limit.min(self.limits.budget_bytes);
        let deadline = tokio::time::Instant::now() + self.limits.read_timeout;
        let mut permit = None;
        let mut reserved = 0usize;
        if let Some(len) = declared_len {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > limit {
                // Taken in and thrown away up to the limit (as a reader that stops there would),
                // so that a client that sends its whole body before reading still finds the
                // answer; nothing of it is kept.
                discard(body, limit, deadline).await;
                return Err(BodyError::TooLarge { limit });
            }
            // A known length is reserved whole, so requests never hold part of the budget
            // while they wait for the rest of it.
            if len > 0 {
                permit = Some(self.reserve(len, self.limits.budget_wait).await?);
                reserved = len;
            }
        }
        let read = async {
            let mut body = body;
            let mut buf = BytesMut::with_capacity(reserved);
            let mut hasher = Sha256::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let total = buf.len() + data.len();
                if total > limit {
                    return Err(BodyError::TooLarge { limit });
                }
                if total > reserved {
                    // A body of unknown length (chunked) takes its budget as it grows, without
                    // waiting: waiting while holding a part could stall every such request.
                    let more = self.reserve(total - reserved, Duration::ZERO).await?;
                    match permit.as_mut() {
                        Some(p) => OwnedSemaphorePermit::merge(p, more),
                        None => permit = Some(more),
                    }
                    reserved = total;
                }
                hasher.update(&data);
                buf.extend_from_slice(&data);
            }
            Ok((buf.freeze(), hex::encode(hasher.finalize())))
        };
        let (bytes, sha256_hex) = tokio::time::timeout_at(deadline, read)
            .await
            .map_err(|_| BodyError::Timeout(self.limits.read_timeout))??;
        // Hold only what was really received (a shorter body than announced ends in an error
        // from hyper, so this trims nothing in practice).
        if let Some(p) = permit.as_mut()
            && reserved > bytes.len()
            && let Some(extra) = p.split(reserved - bytes.len())
        {
            drop(extra);
        }
        Ok(ReadBody {
            bytes,
            sha256_hex,
            permit,
        })
    }

    async fn reserve(&self, n: usize, wait: Duration) -> Result<OwnedSemaphorePermit, BodyError> {
        let Ok(count) = u32::try_from(n) else {
            return Err(BodyError::OverBudget(n));
        };
        if let Ok(p) = self.budget.clone().try_acquire_many_owned(count) {
            return Ok(p);
        }
        if wait.is_zero() {
            return Err(BodyError::OverBudget(n));
        }
        match tokio::time::timeout(wait, self.budget.clone().acquire_many_owned(count)).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(BodyError::OverBudget(n)),
        }
    }
}

/// Reads and drops up to `max` bytes of `body`, until `deadline` at the latest.
async fn discard(mut body: Body, max: usize, deadline: tokio::time::Instant) {
    let mut seen = 0usize;
    while seen < max {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => seen += frame.data_ref().map_or(0, Bytes::len),
            _ => break,
        }
    }
}

/// `Content-Length` of a request, when it has a valid one.
pub fn declared_len(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether a request announces a body (a non-zero length, or chunks).
pub fn announces_body(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || declared_len(headers).is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::channel::Channel;

    use super::*;

    fn reader(budget: usize, wait_ms: u64, timeout_ms: u64) -> BodyReader {
        // Below the production floor, to exercise the budget with small bodies.
        BodyReader {
            limits: BodyLimits {
                read_timeout: Duration::from_millis(timeout_ms),
                budget_bytes: budget,
                budget_wait: Duration::from_millis(wait_ms),
            },
            budget: Arc::new(Semaphore::new(budget)),
        }
    }

    /// A chunked body fed by the returned sender.
    fn chunked() -> (http_body_util::channel::Sender<Bytes, Infallible>, Body) {
        let (tx, body) = Channel::<Bytes, Infallible>::new(4);
        (tx, Body::new(body))
    }

    #[tokio::test]
    async fn hashes_while_reading_and_releases_the_budget() {
        let r = reader(100, 0, 5_000);
        let got = r.read(Body::from("hello"), Some(5), 10).await.unwrap();
        assert_eq!(&got.bytes[..], b"hello");
        assert_eq!(got.sha256_hex, updraft_sigv4::sha256_hex(b"hello"));
        assert_eq!(r.available(), 95);
        drop(got);
        assert_eq!(r.available(), 100);
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_without_keeping_it() {
        let r = reader(100, 0, 5_000);
        let err = r.read(Body::from("x".repeat(11)), Some(11), 10).await.err();
        assert_eq!(err, Some(BodyError::TooLarge { limit: 10 }));
        assert_eq!(r.available(), 100);
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_limit_is_cut() {
        let r = reader(100, 0, 5_000);
        let (mut tx, body) = chunked();
        tokio::spawn(async move {
            for _ in 0..4 {
                let _ = tx.send_data(Bytes::from_static(b"12345")).await;
            }
        });
        let err = r.read(body, None, 12).await.err();
        assert_eq!(err, Some(BodyError::TooLarge { limit: 12 }));
        assert_eq!(r.available(), 100);
    }

    #[tokio::test]
    async fn over_budget_waits_then_is_refused() {
        let r = reader(10, 50, 5_000);
        let held = r.read(Body::from("12345678"), Some(8), 10).await.unwrap();
        let err = r.read(Body::from("1234"), Some(4), 10).await.err();
        assert_eq!(err, Some(BodyError::OverBudget(4)));
        // A chunked body does not wait for room.
        let (mut tx, body) = chunked();
        tokio::spawn(async move { tx.send_data(Bytes::from_static(b"1234")).await });
        assert_eq!(
            r.read(body, None, 10).await.err(),
            Some(BodyError::OverBudget(4))
        );
        drop(held);
        assert!(r.read(Body::from("1234"), Some(4), 10).await.is_ok());
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_room_another_frees() {
        let r = Arc::new(reader(10, 10_000, 5_000));
        let held = r.read(Body::from("12345678"), Some(8), 10).await.unwrap();
        let r2 = r.clone();
        let waiting = tokio::spawn(async move {
            r2.read(Body::from("1234"), Some(4), 10)
                .await
                .map(|b| b.bytes)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "read without room in the budget");
        drop(held);
        assert_eq!(&waiting.await.unwrap().unwrap()[..], b"1234");
    }

    #[tokio::test]
    async fn a_trickling_body_is_cut_at_the_deadline() {
        let r = reader(100, 0, 1_000);
        let (mut tx, body) = chunked();
        let feeder = tokio::spawn(async move {
            loop {
                if tx.send_data(Bytes::from_static(b"x")).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let err = r.read(body, None, 100).await.err();
        assert_eq!(err, Some(BodyError::Timeout(Duration::from_millis(1_000))));
        assert_eq!(r.available(), 100);
        feeder.abort();
    }
}
