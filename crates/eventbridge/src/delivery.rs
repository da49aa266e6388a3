//! The narrow interfaces the service needs from the rest of the node: a durable way to hand
//! function invocations over ([`EventDelivery`]) and the function's resource policy
//! ([`FunctionPermissions`]). The binary wires both; this crate imports neither the engine nor
//! the Lambda control plane.

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so the traits stay object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One delivery on behalf of a rule: an asynchronous (`Event`) invocation of a function, or a
/// message to an SQS queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The account that owns the rule (and so pays for the delivery).
    pub account: String,
    /// The target's ARN: a function (qualified when the target names a version or alias) or an
    /// SQS queue (`arn:aws:sqs:…`, whose policy is checked when the message is sent).
    pub target_arn: String,
    pub payload: Vec<u8>,
    /// The rule's ARN (what `AddPermission`'s `SourceArn` names).
    pub source_arn: String,
    /// Attempts in all, the first included (`RetryPolicy.MaximumRetryAttempts` + 1); `None`
    /// keeps the delivery path's default.
    pub max_attempts: Option<u32>,
    /// `RetryPolicy.MaximumEventAgeInSeconds`; `None` keeps the delivery path's default.
    pub max_age_secs: Option<u32>,
}

/// The delivery path refused the batch; nothing of it was accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delivery not accepted: {0}")]
pub struct DeliveryError(pub String);

/// Accepts deliveries for later, at-least-once execution. `enqueue` returns once the batch is
/// accepted (durably, on the durable path), not once functions ran.
pub trait EventDelivery: Send + Sync {
    fn enqueue(&self, deliveries: Vec<Delivery>) -> BoxFuture<'_, Result<(), DeliveryError>>;
}

/// Whether `events.amazonaws.com` may invoke a function for a rule.
pub trait FunctionPermissions: Send + Sync {
    /// `Ok` when the function's resource policy allows `lambda:InvokeFunction` to the service
    /// principal `events.amazonaws.com` with this source ARN and account; otherwise why not
    /// (no such function, or no statement allows it).
    fn allows_events(
        &self,
        function_arn: &str,
        source_arn: &str,
        source_account: &str,
    ) -> Result<(), String>;
}
