//! Where an invocation's response goes, and reading a streamed response.
//!
//! A [`Sink`] is either `Collect` (`Engine::invoke`: a streamed response is gathered into one
//! payload under the 6 MB limit of buffered responses) or `Forward` (`Engine::invoke_streaming`:
//! every chunk is passed on the moment it arrives, under the 20 MiB limit of streamed responses).
//! Either way the sink also carries the caller's end of the invocation: [`Sink::finish`] hands it
//! the result once, as soon as the result is known, which may be before the environment is done
//! (its `END`/`REPORT` lines and its return to the pool come after).
//!
//! Forwarding goes through a bounded channel, so a caller that reads slowly slows the runtime's
//! writes down (through the Runtime API connection) instead of piling chunks up in memory. A
//! caller that hangs up, or takes nothing for the node's stream write timeout, is treated as
//! gone: the rest of the response is read and dropped and the invocation runs to its end (so a
//! stalled reader pins neither the environment nor the chunks until the function's timeout).
//! The invocation's deadline bounds every wait here, including a wait for a full channel.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{Ended, Finish};
use crate::messages;
use crate::runtime_api::{
    DISCARD_LIMIT, MAX_PAYLOAD_BYTES, MAX_STREAMED_RESPONSE_BYTES, StreamPiece, StreamVerdict,
    StreamedBody,
};
use crate::{FunctionError, InvokeError, InvokeOutcome, StreamEvent};

/// How the response began, told to a streaming caller before the first chunk.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub content_type: Option<String>,
    pub streamed: bool,
}

/// The answer `Engine::invoke_streaming` waits for: the head of the response, or why the
/// invocation could not run.
pub(crate) type HeadResult = Result<ResponseHead, InvokeError>;

/// The caller's end of a plain (collecting) invocation.
pub(crate) type Reply = oneshot::Sender<Result<InvokeOutcome, InvokeError>>;

/// Where an invocation's response goes.
pub(crate) enum Sink {
    /// `None` once the result has been handed over.
    Collect(Option<Reply>),
    Forward(Forwarder),
}

/// The caller's end of a streaming invocation.
pub(crate) struct Forwarder {
    /// `None` once the caller stopped reading (dropping the sender lets it see the end).
    pub tx: Option<mpsc::Sender<StreamEvent>>,
    /// How long a send may wait for room before the caller counts as gone.
    write_timeout: Duration,
    /// Taken when the head (or the failure) has been told.
    head: Option<oneshot::Sender<HeadResult>>,
    /// The caller stopped listening.
    closed: bool,
    /// The `Complete` event (or the refusal) has been handed over.
    done: bool,
}

/// The deadline passed while waiting for the caller to take a chunk.
pub(crate) struct DeadlinePassed;

impl Forwarder {
    pub(crate) fn new(
        tx: mpsc::Sender<StreamEvent>,
        head: oneshot::Sender<HeadResult>,
        write_timeout: Duration,
    ) -> Self {
        Forwarder {
            tx: Some(tx),
            write_timeout,
            head: Some(head),
            closed: false,
            done: false,
        }
    }

    /// Tells the caller how the response begins (only the first call counts).
    pub(crate) fn start(&mut self, content_type: Option<String>, streamed: bool) {
        if let Some(head) = self.head.take()
            && head
                .send(Ok(ResponseHead {
                    content_type,
                    streamed,
                }))
                .is_err()
        {
            self.closed = true;
        }
    }

    /// Tells the caller the invocation could not run; false if the head was already told.
    pub(crate) fn fail(&mut self, e: InvokeError) -> bool {
        match self.head.take() {
            Some(head) => {
                let _ = head.send(Err(e));
                true
            }
            None => false,
        }
    }

    /// Stops forwarding: the caller hung up or stopped reading.
    fn close(&mut self) {
        self.closed = true;
        self.tx = None;
    }

    /// Passes one event on, waiting for room in the channel until `deadline`, or until the
    /// write timeout, after which the caller counts as gone.
    pub(crate) async fn send(
        &mut self,
        ev: StreamEvent,
        deadline: Instant,
    ) -> Result<(), DeadlinePassed> {
        let Some(tx) = self.tx.as_ref().filter(|_| !self.closed) else {
            return Ok(());
        };
        let stalled = Instant::now() + self.write_timeout;
        tokio::select! {
            sent = tx.send(ev) => {
                if sent.is_err() {
                    self.close();
                }
                Ok(())
            }
            _ = tokio::time::sleep_until(deadline.min(stalled)) => {
                if stalled < deadline {
                    tracing::debug!("streaming reader took nothing for {:?}; dropping the rest", self.write_timeout);
                    self.close();
                    Ok(())
                } else {
                    Err(DeadlinePassed)
                }
            }
        }
    }
}

impl Sink {
    /// Largest response this sink accepts.
    fn limit(&self) -> usize {
        match self {
            Sink::Collect(_) => MAX_PAYLOAD_BYTES,
            Sink::Forward(_) => MAX_STREAMED_RESPONSE_BYTES,
        }
    }

    /// A buffered response arrived: a streaming caller gets it now as the one chunk (and the
    /// returned payload is empty, it has been delivered); a collecting caller gets it back.
    pub(crate) fn deliver_buffered(&mut self, body: Bytes, content_type: Option<String>) -> Bytes {
        match self {
            Sink::Collect(_) => body,
            Sink::Forward(f) => {
                f.start(content_type, false);
                // The first event of the channel: there is room for it.
                if !body.is_empty()
                    && let Some(tx) = f.tx.as_ref().filter(|_| !f.closed)
                    && tx.try_send(StreamEvent::Chunk(body)).is_err()
                {
                    f.close();
                }
                Bytes::new()
            }
        }
    }

    /// Hands the invocation's result to the caller; only the first call counts. Never waits: a
    /// streaming reader whose channel is full gets its `Complete` from a task of its own (after
    /// every chunk, which were all sent before).
    pub(crate) fn finish(&mut self, result: Result<Ended, InvokeError>) {
        match self {
            Sink::Collect(reply) => {
                if let Some(tx) = reply.take() {
                    let _ = tx.send(result.map(|e| e.outcome));
                }
            }
            Sink::Forward(f) => {
                if f.done {
                    return;
                }
                f.done = true;
                let complete = match result {
                    Ok(ended) => {
                        f.start(None, false);
                        StreamEvent::Complete {
                            function_error: ended.error_type.map(|error_type| FunctionError {
                                error_type,
                                error_body: ended.outcome.payload,
                            }),
                            log_tail: ended.outcome.log_tail,
                        }
                    }
                    Err(e) => {
                        if f.fail(e) {
                            return;
                        }
                        // Not reached (refusals come before any answer), but a stream must end.
                        StreamEvent::Complete {
                            function_error: Some(FunctionError {
                                error_type: "ServiceException".to_string(),
                                error_body: messages::error_json(&[
                                    ("errorMessage", "the invocation failed"),
                                    ("errorType", "ServiceException"),
                                ]),
                            }),
                            log_tail: None,
                        }
                    }
                };
                // A reader that stopped reading gets no end: it is dropped as it is. The sender
                // stays until the invocation is done, so the reader's stream ends with it.
                let Some(tx) = f.tx.as_ref().filter(|_| !f.closed) else {
                    return;
                };
                match tx.try_send(complete) {
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                    Err(mpsc::error::TrySendError::Full(complete)) => {
                        // The invocation is over (its permits are back); only a reader that is
                        // still there waits, and no longer than the write timeout.
                        let tx = tx.clone();
                        let wait = f.write_timeout;
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(wait, tx.send(complete)).await;
                        });
                    }
                }
            }
        }
    }
}

/// Reads a streamed response to its end into `sink`. `None` when the connection broke before the
/// body ended (the caller then waits for the runtime's exit or the deadline).
pub(crate) async fn pump(
    mut body: StreamedBody,
    content_type: Option<String>,
    sink: &mut Sink,
    deadline: Instant,
) -> Option<Finish> {
    let limit = sink.limit();
    if let Sink::Forward(f) = sink {
        f.start(content_type, true);
    }
    let mut collected = BytesMut::new();
    let mut total: u64 = 0;
    let mut over = false;
    loop {
        let piece = tokio::select! {
            p = body.next() => p,
            // Dropping the body answers the runtime; the environment is killed next.
            _ = tokio::time::sleep_until(deadline) => return Some(Finish::Timeout),
        };
        match piece {
            Some(Ok(StreamPiece::Data(data))) => {
                total += data.len() as u64;
                if total > limit as u64 {
                    over = true;
                }
                if over {
                    // Heard out (and dropped) up to a point, so the runtime can read its 413.
                    if total > limit as u64 + DISCARD_LIMIT {
                        body.finish(StreamVerdict::TooLarge);
                        return Some(Finish::TooLarge(limit));
                    }
                    continue;
                }
                match sink {
                    Sink::Collect(_) => collected.extend_from_slice(&data),
                    Sink::Forward(f) => {
                        if f.send(StreamEvent::Chunk(data), deadline).await.is_err() {
                            return Some(Finish::Timeout);
                        }
                    }
                }
            }
            Some(Ok(StreamPiece::End(error))) => {
                if over {
                    body.finish(StreamVerdict::TooLarge);
                    return Some(Finish::TooLarge(limit));
                }
                body.finish(StreamVerdict::Accepted);
                return Some(Finish::Streamed {
                    collected: collected.freeze(),
                    error,
                });
            }
            Some(Err(())) | None => return None,
        }
    }
}
