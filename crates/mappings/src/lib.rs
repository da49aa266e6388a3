//! Event source mappings: Lambda's pollers that read a queue and invoke a function with batches
//! of its messages.
//!
//! - [`model`]: a mapping's settings, its state machine and Lambda's validation of its input.
//! - [`store`]: the mappings' own SQLite file (`<data-dir>/mappings.db`), so they survive restarts.
//! - [`record`]: Lambda's SQS event record, and the view `FilterCriteria` patterns are matched on.
//! - [`service`]: [`Mappings`], the create/get/list/update/delete operations and the pollers'
//!   lifecycle (`Creating → Enabled`, `Enabling`, `Disabling → Disabled`, `Updating`, `Deleting`).
//! - [`poller`]: one mapping's poll loop: batching window, filters, invoke, delete on success,
//!   `ReportBatchItemFailures`, scaling with queue depth up to `MaximumConcurrency`.
//!
//! The crate reaches the queue service and the engine only through the two narrow traits below,
//! which the binary implements over `updraft_queues::Queues` and the sync invoke path, so it
//! imports neither.

pub mod model;
pub mod poller;
pub mod record;
pub mod service;
pub mod store;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

pub use model::{Mapping, MappingInput, MappingState, MappingUpdate};
pub use service::{Mappings, Settings};

/// A boxed future, as the traits below return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a mapping operation can fail with; each names the Lambda error it is answered as.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// `InvalidParameterValueException`.
    #[error("{0}")]
    Invalid(String),
    /// `ValidationException` (a value outside the model's range).
    #[error("{0}")]
    Validation(String),
    /// `ResourceNotFoundException`.
    #[error("{0}")]
    NotFound(String),
    /// `ResourceConflictException`.
    #[error("{0}")]
    Conflict(String),
    /// `ResourceInUseException`: the mapping is between states.
    #[error("{0}")]
    InUse(String),
    /// The mappings database failed.
    #[error("mappings database: {0}")]
    Store(#[from] rusqlite::Error),
    /// A stored document could not be read back.
    #[error("mappings database: bad document: {0}")]
    Document(#[from] serde_json::Error),
}

/// A queue as a mapping sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueInfo {
    pub fifo: bool,
    /// The queue's default visibility timeout, seconds: how long a failed batch stays hidden.
    pub visibility_timeout: u32,
    /// Messages visible now (the pollers scale with it).
    pub visible: u64,
}

/// A message attribute, in the queue's own terms.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageAttr {
    pub data_type: String,
    pub string: Option<String>,
    pub binary: Option<Vec<u8>>,
}

/// A received message with everything Lambda's record carries.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub md5_of_body: String,
    pub md5_of_attributes: Option<String>,
    /// SQS's system attributes (`ApproximateReceiveCount`, `SentTimestamp`, `SenderId`,
    /// `ApproximateFirstReceiveTimestamp`, FIFO's `MessageGroupId`, `SequenceNumber`,
    /// `MessageDeduplicationId`).
    pub attributes: BTreeMap<String, String>,
    pub message_attributes: BTreeMap<String, MessageAttr>,
}

impl QueueMessage {
    /// The FIFO group, if any.
    pub fn group(&self) -> Option<&str> {
        self.attributes.get("MessageGroupId").map(String::as_str)
    }
}

/// Why the queue could not do what a poller asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The queue does not exist (any more).
    #[error("the queue does not exist")]
    NoSuchQueue,
    /// The function's account may not read the queue (its policy does not allow it).
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Anything else; try again later.
    #[error("{0}")]
    Other(String),
}

/// The queue store, read directly with SQS's visibility semantics (no HTTP round trip).
pub trait QueueSource: Send + Sync {
    /// The queue `arn` names, if `account` may consume from it.
    fn info(&self, arn: &str, account: &str) -> Result<QueueInfo, SourceError>;

    /// Receives up to `max` (1-10) messages, waiting up to `wait_seconds` for the first; they
    /// stay hidden for the queue's visibility timeout.
    fn receive(
        &self,
        arn: &str,
        max: usize,
        wait_seconds: u32,
    ) -> BoxFuture<'static, Result<Vec<QueueMessage>, SourceError>>;

    /// Deletes messages by receipt handle; resolves once the deletion is committed.
    fn delete(
        &self,
        arn: &str,
        handles: Vec<String>,
    ) -> BoxFuture<'static, Result<(), SourceError>>;

    /// Makes a received message visible again after `seconds`.
    fn change_visibility(&self, arn: &str, handle: &str, seconds: u32) -> Result<(), SourceError>;
}

/// How one invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeOutcome {
    /// The function returned this response.
    Ok(Bytes),
    /// The function failed (an error, a timeout, a crash).
    FunctionError(Bytes),
    /// Not run now (reserved or account concurrency, the node's capacity); try again.
    Throttled(String),
    /// Cannot run (the function does not exist).
    Gone(String),
}

/// The function side: the same resolve + engine path synchronous invokes take, so reserved
/// concurrency and throttles apply.
pub trait Invoker: Send + Sync {
    /// Whether the (qualified) function exists now.
    fn exists(&self, function_arn: &str) -> bool;

    /// Invokes the (qualified) function synchronously with `payload`.
    fn invoke(&self, function_arn: &str, payload: Bytes) -> BoxFuture<'static, InvokeOutcome>;
}
