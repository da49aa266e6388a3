//! Wiring of the EventBridge service and the durable event path into this node: the function
//! policy check EventBridge asks before a rule invokes a function, the path its deliveries take
//! (the durable work queue, as `Event` invocations of the target function), and the event bus
//! that Lambda destinations put their records on, and the queues that destinations and
//! dead-letter configurations send to.

use std::sync::Arc;

use updraft_control::ControlPlane;
use updraft_control::policy::{AccessRequest, Policy, Requester, evaluate};
use updraft_engine::random_u64;
use updraft_eventbridge::{
    BoxFuture, Delivery, DeliveryError, EventBridge, EventDelivery, FunctionPermissions, NewEvent,
    PutOutcome,
};
use updraft_events::{DeliveryTarget, EventBusSink, Events, NewWork, Outcome, SinkError, Target};
use updraft_queues::{QueueError, Queues, SendInput};

/// The function ARN without its qualifier, and the qualifier.
pub(crate) fn split_qualifier(arn: &str) -> (&str, Option<&str>) {
    // arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
    let parts: Vec<&str> = arn.splitn(8, ':').collect();
    if parts.len() == 8 {
        let cut = arn.len() - parts[7].len() - 1;
        (&arn[..cut], Some(parts[7]))
    } else {
        (arn, None)
    }
}

pub(crate) fn account_of(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or("")
}

/// Asks the control plane's resource policies, as Lambda does for service principals.
pub struct PolicyCheck(pub Arc<ControlPlane>);

impl FunctionPermissions for PolicyCheck {
    fn allows_events(
        &self,
        function_arn: &str,
        source_arn: &str,
        source_account: &str,
    ) -> Result<(), String> {
        self.allows_service(
            "events.amazonaws.com",
            function_arn,
            source_arn,
            source_account,
        )
    }
}

impl PolicyCheck {
    /// Whether a function exists and its resource policy lets `service` (a service principal
    /// such as `s3.amazonaws.com`) invoke it for `source_arn` of `source_account`.
    pub fn allows_service(
        &self,
        service: &str,
        function_arn: &str,
        source_arn: &str,
        source_account: &str,
    ) -> Result<(), String> {
        let (base, qualifier) = split_qualifier(function_arn);
        let owner = account_of(function_arn);
        self.0
            .get_configuration(owner, base, qualifier)
            .map_err(|e| format!("the target function cannot be invoked: {}", e.message))?;
        let mut policy: Policy = self.0.get_policy(owner, base, None).unwrap_or_default();
        if let Some(q) = qualifier
            && let Ok(p) = self.0.get_policy(owner, base, Some(q))
        {
            policy.statements.extend(p.statements);
        }
        let allowed = evaluate(
            &policy,
            &AccessRequest {
                action: "lambda:InvokeFunction",
                requester: Requester::Service(service),
                source_arn: Some(source_arn),
                source_account: Some(source_account),
                url_auth_type: None,
            },
        );
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "the resource policy of {function_arn} does not allow {service} to invoke it for {source_arn} (add one with AddPermission)"
            ))
        }
    }
}

/// What EventBridge is told when it asks before queuing a delivery: yes. The permission is
/// checked when the durable path delivers ([`rule_admission`]), so a refused delivery is kept as a
/// failed event of the function, with its reason, where `updraft events` shows it, rather than
/// only in the log.
pub struct CheckedAtDelivery;

impl FunctionPermissions for CheckedAtDelivery {
    fn allows_events(&self, _: &str, _: &str, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// The durable path's check before it runs a function for an EventBridge rule: the function's
/// resource policy must allow `events.amazonaws.com` for that rule's ARN. Other sources (callers,
/// destination records) pass. A refusal is logged as EventBridge's.
pub fn rule_admission(control: Arc<ControlPlane>) -> Arc<updraft_api::async_invoke::Admission> {
    let check = PolicyCheck(control);
    Arc::new(move |function_arn: &str, source: &str| {
        if !is_rule(source) {
            return Ok(());
        }
        check
            .allows_events(function_arn, source, account_of(source))
            .inspect_err(|reason| {
                tracing::warn!(rule = %source, target = %function_arn, "eventbridge: delivery refused: {reason}");
            })
    })
}

/// Whether a work item's source is an EventBridge rule.
fn is_rule(source: &str) -> bool {
    source.starts_with("arn:aws") && source.contains(":events:") && source.contains(":rule/")
}

/// EventBridge's deliveries: a function target becomes an `Event` invocation on the durable
/// path (the function's own event invoke configuration then governs retries and destinations,
/// as when EventBridge invokes a function on AWS); a queue target becomes a queue work item
/// whose message is sent by [`QueueTarget`]. `enqueue` resolves once they are committed.
pub struct DurableDelivery(pub Arc<Events>);

/// A fresh request id in Lambda's (UUID) form, kept by the event across its retries.
pub(crate) fn request_id() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

impl EventDelivery for DurableDelivery {
    fn enqueue(&self, deliveries: Vec<Delivery>) -> BoxFuture<'_, Result<(), DeliveryError>> {
        let items = deliveries
            .into_iter()
            .map(|d| {
                let target = if updraft_queues::model::parse_arn(&d.target_arn).is_some() {
                    // A rule's SQS target: the event becomes one message, sent as the rule's
                    // account (the queue's policy is checked then, in `QueueTarget`).
                    Target::Queue {
                        account_id: d.account.clone(),
                        arn: d.target_arn.clone(),
                        attributes: Vec::new(),
                    }
                } else {
                    let (base, qualifier) = split_qualifier(&d.target_arn);
                    Target::Function {
                        account_id: account_of(&d.target_arn).to_string(),
                        function_arn: base.to_string(),
                        qualifier: qualifier.map(str::to_string),
                    }
                };
                NewWork {
                    target,
                    payload: d.payload.into(),
                    request_id: request_id(),
                    source: d.source_arn,
                    policy: None,
                }
            })
            .collect();
        Box::pin(async move {
            self.0
                .enqueue(items)
                .await
                .map(|_| ())
                .map_err(|e| DeliveryError(e.to_string()))
        })
    }
}

/// Lambda destinations on an event bus: the record is put on the bus like a `PutEvents` entry
/// (its rules' deliveries are queued durably before this resolves).
pub struct BusSink(pub Arc<EventBridge>);

impl EventBusSink for BusSink {
    fn put_event(
        &self,
        account: &str,
        bus_arn: &str,
        source: &str,
        detail_type: &str,
        detail: serde_json::Value,
    ) -> updraft_events::BoxFuture<'static, Result<(), SinkError>> {
        let eb = self.0.clone();
        let (account, bus) = (account.to_string(), bus_arn.to_string());
        let entry = NewEvent {
            source: Some(source.to_string()),
            detail_type: Some(detail_type.to_string()),
            detail: Some(detail.to_string()),
            resources: Vec::new(),
            time: None,
            bus: None,
        };
        Box::pin(async move {
            match eb.put_internal(&account, Some(&bus), vec![entry]).await {
                // A refused entry (no such bus, a malformed record) will never be taken; a
                // failure to queue its rules' deliveries may pass.
                Ok(outcomes) => match outcomes.into_iter().next() {
                    Some(PutOutcome::Accepted(_)) => Ok(()),
                    Some(PutOutcome::Failed { code, message }) => {
                        Err(SinkError::Rejected(format!("{code}: {message}")))
                    }
                    None => Err(SinkError::Unavailable("the bus gave no outcome".into())),
                },
                Err(e) => Err(SinkError::Unavailable(e.to_string())),
            }
        })
    }
}

/// Destinations and dead-letter targets that are SQS queues of this node: the record (or, for a
/// dead-letter queue, the event with Lambda's `RequestID`/`ErrorCode`/`ErrorMessage` message
/// attributes) becomes one message. SNS topics have no service here and are given up, visibly.
pub struct QueueTarget(pub Arc<Queues>);

/// Lambda's dead-letter attributes: `ErrorCode` is a number, the others strings.
fn message_attributes(
    attributes: &[(String, String)],
) -> std::collections::BTreeMap<String, updraft_queues::model::AttrValue> {
    attributes
        .iter()
        .map(|(name, value)| {
            let data_type = if name == "ErrorCode" {
                "Number"
            } else {
                "String"
            };
            let v = updraft_queues::model::AttrValue {
                data_type: data_type.to_string(),
                string: Some(value.clone()),
                binary: None,
            };
            (name.clone(), v)
        })
        .collect()
}

impl DeliveryTarget for QueueTarget {
    fn deliver(&self, d: updraft_events::Delivery) -> updraft_events::BoxFuture<'static, Outcome> {
        let queues = self.0.clone();
        Box::pin(async move {
            let Target::Queue {
                account_id,
                arn,
                attributes,
            } = &d.target
            else {
                return Outcome::Gone {
                    reason: "not a queue target".into(),
                };
            };
            let Some((owner, name)) = updraft_queues::model::parse_arn(arn) else {
                return Outcome::Gone {
                    reason: format!("{arn} is not a queue of this node (no SNS service here)"),
                };
            };
            // An EventBridge rule sends to a queue of another account only when that queue's
            // policy allows `events.amazonaws.com` (for the rule), as on AWS.
            if &owner != account_id
                && is_rule(&d.source)
                && let Err(e) =
                    queues.authorize_service("events.amazonaws.com", &d.source, &owner, &name)
            {
                tracing::warn!(rule = %d.source, target = %arn, "eventbridge: delivery refused: {e}");
                return Outcome::Gone {
                    reason: format!(
                        "the policy of queue {arn} does not allow events.amazonaws.com to send messages for {}",
                        d.source
                    ),
                };
            }
            let input = SendInput {
                body: String::from_utf8_lossy(&d.payload).into_owned(),
                delay_seconds: None,
                attributes: message_attributes(attributes),
                system_attributes: Default::default(),
                group_id: None,
                dedup_id: None,
            };
            let sent = queues.send(&owner, &name, account_id, vec![input]).await;
            match sent.map(|mut r| r.pop()) {
                Ok(Some(Ok(_))) => Outcome::Success {
                    status: 200,
                    executed_version: None,
                    response: Default::default(),
                },
                // A store that could not commit may recover: try again later.
                Err(QueueError::Internal) | Ok(Some(Err(QueueError::Internal))) => {
                    Outcome::Throttled {
                        reason: format!("queue {arn} could not store the message"),
                    }
                }
                Ok(Some(Err(e))) | Err(e) => Outcome::Gone {
                    reason: format!("queue {arn}: {e}"),
                },
                Ok(None) => Outcome::Gone {
                    reason: format!("queue {arn} answered nothing"),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualifiers() {
        let a = "arn:aws:lambda:us-east-1:111122223333:function:f";
        assert_eq!(split_qualifier(a), (a, None));
        assert_eq!(
            split_qualifier("arn:aws:lambda:us-east-1:111122223333:function:f:live"),
            (a, Some("live"))
        );
        assert_eq!(account_of(a), "111122223333");
        assert_eq!(request_id().len(), 36);
    }
}
