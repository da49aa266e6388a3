//! The unit of the durable path: a work item, what it targets and the policy that decides its
//! retries and where it goes when it finishes.
//!
//! Everything here is plain data that the store keeps as JSON, so a second backend (PostgreSQL)
//! stores the same documents without knowing what they mean.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Where a work item is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Invoke a function (asynchronously: nobody waits for its answer).
    Function {
        /// The account that owns the function.
        account_id: String,
        /// Unqualified function ARN.
        function_arn: String,
        /// Version or alias; `None` runs `$LATEST`.
        qualifier: Option<String>,
    },
    /// Put one event on an event bus.
    EventBus {
        account_id: String,
        bus_arn: String,
        source: String,
        detail_type: String,
    },
    /// Send one message to a queue or topic (SQS or SNS ARN), with message attributes.
    Queue {
        account_id: String,
        arn: String,
        attributes: Vec<(String, String)>,
    },
}

impl Target {
    /// The kind, as the store's `kind` column and the dispatcher's target registry name it.
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Function { .. } => TargetKind::Function,
            Target::EventBus { .. } => TargetKind::EventBus,
            Target::Queue { .. } => TargetKind::Queue,
        }
    }

    /// The account the delivery happens in.
    pub fn account_id(&self) -> &str {
        match self {
            Target::Function { account_id, .. }
            | Target::EventBus { account_id, .. }
            | Target::Queue { account_id, .. } => account_id,
        }
    }

    /// The resource, for listings: the function's unqualified ARN, the bus or the queue ARN.
    pub fn resource_arn(&self) -> &str {
        match self {
            Target::Function { function_arn, .. } => function_arn,
            Target::EventBus { bus_arn, .. } => bus_arn,
            Target::Queue { arn, .. } => arn,
        }
    }

    /// A function target's ARN with its qualifier (`$LATEST` when it has none), as Lambda
    /// names the function in destination records.
    pub fn qualified_function_arn(&self) -> Option<String> {
        match self {
            Target::Function {
                function_arn,
                qualifier,
                ..
            } => Some(format!(
                "{function_arn}:{}",
                qualifier.as_deref().unwrap_or("$LATEST")
            )),
            _ => None,
        }
    }
}

/// The kinds of [`Target`], one delivery implementation each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    Function,
    EventBus,
    Queue,
}

/// How often and how long a work item is retried, and where it goes when it finishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Retries after a function error or timeout (Lambda: 0 to 2, default 2).
    pub max_retries: u32,
    /// Age after which the item is given up, in seconds (Lambda: 60 to 21,600, default 21,600).
    pub max_age_s: u64,
    /// Destination ARN for a record of a successful invocation.
    pub on_success: Option<String>,
    /// Destination ARN for a record of an invocation that was given up.
    pub on_failure: Option<String>,
    /// Dead-letter queue or topic ARN: it receives the original payload when the item is given up.
    pub dead_letter: Option<String>,
}

/// Lambda's defaults for asynchronous invocation.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Lambda's default maximum event age: six hours.
pub const DEFAULT_MAX_AGE_S: u64 = 21_600;

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: DEFAULT_MAX_RETRIES,
            max_age_s: DEFAULT_MAX_AGE_S,
            on_success: None,
            on_failure: None,
            dead_letter: None,
        }
    }
}

/// A work item to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWork {
    pub target: Target,
    /// The event (a function's payload, an event's detail, a message body).
    pub payload: Bytes,
    /// The id the delivery carries (a function sees it as `aws_request_id`); kept across retries.
    pub request_id: String,
    /// Who produced it: `"invoke"` for `Invoke` with `InvocationType: Event`, a function ARN for
    /// a destination record, a rule ARN for an EventBridge target.
    pub source: String,
    /// `None`: a function target's own event invoke configuration (looked up at each decision,
    /// as Lambda applies configuration changes to queued events); other targets get the default.
    pub policy: Option<RetryPolicy>,
}

/// The state of a stored work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for its `not_before` (the first attempt, or a retry after a failure).
    Pending,
    /// Claimed by a dispatcher until its lease expires.
    Leased,
    /// Given up (its failure destination, if any, has been enqueued).
    Failed,
}

impl State {
    pub(crate) fn from_code(c: i64) -> State {
        match c {
            0 => State::Pending,
            1 => State::Leased,
            _ => State::Failed,
        }
    }
}

/// A work item a dispatcher holds a lease on.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub target: Target,
    pub payload: Bytes,
    pub request_id: String,
    pub source: String,
    pub policy: Option<RetryPolicy>,
    /// This claim's attempt number (1 for the first): with the owner, the fencing token that a
    /// completion must present.
    pub attempt: u32,
    /// Function errors so far (they count against `max_retries`; throttles do not).
    pub failures: u32,
    pub created_at_ms: i64,
    /// The lease holder.
    pub owner: String,
}

/// How a claimed item ends its attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// Delivered: the item is removed.
    Done,
    /// Try again at `not_before_ms`.
    Retry {
        not_before_ms: i64,
        failures: u32,
        error: String,
    },
    /// Given up: the item stays, in state `Failed`, for operators to see.
    Failed { error: String },
}

/// One stored item as listings show it.
#[derive(Debug, Clone, Serialize)]
pub struct ItemView {
    pub id: i64,
    pub request_id: String,
    pub state: State,
    /// `Some` for a pending item that failed at least once (it waits for a retry).
    pub retrying: bool,
    pub attempt: u32,
    pub failures: u32,
    pub created_at_ms: i64,
    pub not_before_ms: i64,
    pub qualifier: Option<String>,
    pub source: String,
    pub last_error: Option<String>,
}

/// Counts of one function's stored items.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Waiting for their first attempt.
    pub pending: u64,
    /// Claimed by a dispatcher now.
    pub in_flight: u64,
    /// Waiting for a retry after a failed attempt.
    pub retrying: u64,
    /// Given up.
    pub failed: u64,
    /// The items themselves (at most the listing's limit, newest first).
    pub items: Vec<ItemView>,
}
