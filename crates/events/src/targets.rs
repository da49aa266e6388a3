//! Delivery targets: one trait, one implementation per kind of [`Target`].
//!
//! The dispatcher knows nothing of functions, buses or queues: it hands a [`Delivery`] to the
//! target registered for its kind and acts on the [`Outcome`]. Functions are delivered by the
//! front door (which owns the control plane and the engine), event buses by whatever implements
//! [`EventBusSink`] (the EventBridge service), queues once a queue service exists.

use std::sync::Arc;

use bytes::Bytes;

use crate::store::BoxFuture;
use crate::work::{Target, TargetKind};

/// One attempt to deliver a work item.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub target: Target,
    pub payload: Bytes,
    /// The function sees it as `aws_request_id`; the same on every attempt.
    pub request_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// What put the item on the path (an EventBridge rule's ARN, a function's for destination
    /// records, `invoke` for a caller), so a target can check that source may reach it.
    pub source: String,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Delivered. For a function: its response.
    Success {
        status: u16,
        executed_version: Option<String>,
        response: Bytes,
    },
    /// The function ran and failed (an error, a timeout, a crash): retried up to the policy's
    /// `max_retries`.
    FunctionError {
        status: u16,
        executed_version: Option<String>,
        /// `Unhandled` (Lambda's `X-Amz-Function-Error`).
        function_error: String,
        /// The error document.
        response: Bytes,
    },
    /// Not delivered for now (a throttle, the node's capacity, a system error): retried with
    /// exponential backoff until the event's maximum age.
    Throttled { reason: String },
    /// Cannot ever be delivered (the function was deleted, no service for this target): given up.
    Gone { reason: String },
}

/// Delivers work items of one kind.
pub trait DeliveryTarget: Send + Sync {
    /// Makes one attempt.
    fn deliver(&self, d: Delivery) -> BoxFuture<'static, Outcome>;

    /// The dead-letter target of a function target (its `DeadLetterConfig.TargetArn`).
    fn dead_letter(&self, _target: &Target) -> Option<String> {
        None
    }
}

/// Why an event bus did not take an event.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// Try again later.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// The event will never be taken (no such bus, not allowed).
    #[error("event rejected: {0}")]
    Rejected(String),
}

/// Where events for an event bus go; implemented by the EventBridge service.
pub trait EventBusSink: Send + Sync {
    /// Puts one event on a bus of `account`; resolves once the bus has accepted it (its rules'
    /// deliveries durably queued).
    fn put_event(
        &self,
        account: &str,
        bus_arn: &str,
        source: &str,
        detail_type: &str,
        detail: serde_json::Value,
    ) -> BoxFuture<'static, Result<(), SinkError>>;
}

/// An [`EventBusSink`] as a delivery target.
pub struct EventBusTarget(pub Arc<dyn EventBusSink>);

impl DeliveryTarget for EventBusTarget {
    fn deliver(&self, d: Delivery) -> BoxFuture<'static, Outcome> {
        let sink = self.0.clone();
        Box::pin(async move {
            let Target::EventBus {
                account_id,
                bus_arn,
                source,
                detail_type,
            } = &d.target
            else {
                return Outcome::Gone {
                    reason: "not an event bus target".into(),
                };
            };
            let detail = serde_json::from_slice(&d.payload).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&d.payload).into_owned())
            });
            match sink
                .put_event(account_id, bus_arn, source, detail_type, detail)
                .await
            {
                Ok(()) => Outcome::Success {
                    status: 200,
                    executed_version: None,
                    response: Bytes::new(),
                },
                Err(SinkError::Unavailable(r)) => Outcome::Throttled { reason: r },
                Err(SinkError::Rejected(r)) => Outcome::Gone { reason: r },
            }
        })
    }
}

/// The targets the dispatcher delivers to, by kind. A kind without one gives its items up.
#[derive(Clone)]
pub struct Targets {
    pub function: Arc<dyn DeliveryTarget>,
    pub event_bus: Option<Arc<dyn DeliveryTarget>>,
    pub queue: Option<Arc<dyn DeliveryTarget>>,
}

impl Targets {
    pub(crate) fn get(&self, kind: TargetKind) -> Option<&Arc<dyn DeliveryTarget>> {
        match kind {
            TargetKind::Function => Some(&self.function),
            TargetKind::EventBus => self.event_bus.as_ref(),
            TargetKind::Queue => self.queue.as_ref(),
        }
    }
}

/// The kind of resource a destination or dead-letter ARN names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationArn {
    /// `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
    Function {
        account_id: String,
        function_arn: String,
        qualifier: Option<String>,
    },
    /// `arn:aws:events:<region>:<account>:event-bus/<name>`.
    EventBus { account_id: String, arn: String },
    /// `arn:aws:sqs:…` or `arn:aws:sns:…`.
    Queue { account_id: String, arn: String },
}

impl DestinationArn {
    /// Parses a destination ARN; `None` when it names nothing a destination can be.
    pub fn parse(arn: &str) -> Option<DestinationArn> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() != 6 || parts[0] != "arn" || !parts[1].starts_with("aws") {
            return None;
        }
        let (service, account, resource) = (parts[2], parts[4], parts[5]);
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let ok_name = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        };
        match service {
            "lambda" => {
                let rest = resource.strip_prefix("function:")?;
                let (name, qualifier) = match rest.split_once(':') {
                    Some((n, q)) => (n, Some(q)),
                    None => (rest, None),
                };
                if !ok_name(name) || qualifier.is_some_and(|q| !ok_name(q) && q != "$LATEST") {
                    return None;
                }
                let base = arn.len() - qualifier.map_or(0, |q| q.len() + 1);
                Some(DestinationArn::Function {
                    account_id: account.to_string(),
                    function_arn: arn[..base].to_string(),
                    qualifier: qualifier.map(str::to_string),
                })
            }
            "events" => {
                let name = resource.strip_prefix("event-bus/")?;
                ok_name(name).then(|| DestinationArn::EventBus {
                    account_id: account.to_string(),
                    arn: arn.to_string(),
                })
            }
            "sqs" | "sns" => ok_name(resource).then(|| DestinationArn::Queue {
                account_id: account.to_string(),
                arn: arn.to_string(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_arns() {
        assert_eq!(
            DestinationArn::parse("arn:aws:lambda:us-east-1:123456789012:function:dest:live"),
            Some(DestinationArn::Function {
                account_id: "123456789012".into(),
                function_arn: "arn:aws:lambda:us-east-1:123456789012:function:dest".into(),
                qualifier: Some("live".into()),
            })
        );
        assert!(matches!(
            DestinationArn::parse("arn:aws:events:us-east-1:123456789012:event-bus/default"),
            Some(DestinationArn::EventBus { .. })
        ));
        assert!(matches!(
            DestinationArn::parse("arn:aws:sqs:us-east-1:123456789012:dlq"),
            Some(DestinationArn::Queue { .. })
        ));
        for bad in [
            "",
            "dest",
            "arn:aws:s4:us-east-1:123456789012:thing",
            "arn:aws:lambda:us-east-1:12345:function:f",
            "arn:aws:lambda:us-east-1:123456789012:layer:f",
            "arn:aws:events:us-east-1:123456789012:rule/r",
        ] {
            assert_eq!(DestinationArn::parse(bad), None, "{bad}");
        }
    }
}
