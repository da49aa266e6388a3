//! Wiring of event source mappings into this node: the queue side (`updraft_queues::Queues`,
//! read directly with SQS's visibility semantics) and the function side (the durable path's
//! `FunctionTarget`, which resolves the function and calls `Engine::invoke` exactly as a
//! synchronous Invoke does, so reserved concurrency and throttles apply).

use crate::events_glue::{request_id, split_qualifier};
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use updraft_control::ControlPlane;
use updraft_events::{DeliveryTarget, Outcome, Target};
use updraft_mappings::{
    BoxFuture, InvokeOutcome, Invoker, MessageAttr, QueueInfo, QueueMessage, QueueSource,
    SourceError,
};
use updraft_queues::{Delivered, QueueError, Queues, ReceiveInput};

/// The queue store as a mapping's source.
pub struct QueueStore(pub Arc<Queues>);

fn queue_of(arn: &str) -> Result<(String, String), SourceError> {
    updraft_queues::model::parse_arn(arn).ok_or(SourceError::NoSuchQueue)
}

fn source_error(e: QueueError) -> SourceError {
    match e {
        QueueError::NoSuchQueue => SourceError::NoSuchQueue,
        QueueError::AccessDenied(m) => SourceError::AccessDenied(m),
        other => SourceError::Other(other.to_string()),
    }
}

/// A received message in the mapping's terms (every system attribute Lambda's record carries).
fn message(d: Delivered) -> QueueMessage {
    let m = d.message;
    let mut attributes = BTreeMap::new();
    attributes.insert(
        "ApproximateReceiveCount".to_string(),
        m.state.receive_count.to_string(),
    );
    attributes.insert("SentTimestamp".to_string(), m.doc.sent.to_string());
    attributes.insert("SenderId".to_string(), m.doc.sender_id.clone());
    if let Some(t) = m.state.first_receive {
        attributes.insert(
            "ApproximateFirstReceiveTimestamp".to_string(),
            t.to_string(),
        );
    }
    if let Some(g) = &m.doc.group_id {
        attributes.insert("MessageGroupId".to_string(), g.clone());
        attributes.insert("SequenceNumber".to_string(), format!("{:020}", m.seq));
    }
    if let Some(dd) = &m.doc.dedup_id {
        attributes.insert("MessageDeduplicationId".to_string(), dd.clone());
    }
    if let Some(t) = m.doc.system_attributes.get("AWSTraceHeader")
        && let Some(s) = &t.string
    {
        attributes.insert("AWSTraceHeader".to_string(), s.clone());
    }
    let md5_of_attributes = updraft_queues::md5::md5_of_attributes(m.doc.attributes.iter());
    let message_attributes = m
        .doc
        .attributes
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                MessageAttr {
                    data_type: v.data_type,
                    string: v.string,
                    binary: v.binary,
                },
            )
        })
        .collect();
    QueueMessage {
        message_id: m.doc.id,
        receipt_handle: d.receipt_handle,
        body: m.doc.body,
        md5_of_body: m.md5_body,
        md5_of_attributes,
        attributes,
        message_attributes,
    }
}

impl QueueSource for QueueStore {
    fn info(&self, arn: &str, account: &str) -> Result<QueueInfo, SourceError> {
        let (owner, name) = queue_of(arn)?;
        self.0
            .authorize(account, &owner, &name)
            .map_err(source_error)?;
        let names = [
            "FifoQueue".to_string(),
            "VisibilityTimeout".to_string(),
            "ApproximateNumberOfMessages".to_string(),
        ];
        let a = self
            .0
            .get_attributes(&owner, &name, &names)
            .map_err(source_error)?;
        let num = |k: &str| a.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(QueueInfo {
            fifo: a.get("FifoQueue").is_some_and(|v| v == "true"),
            visibility_timeout: u32::try_from(num("VisibilityTimeout")).unwrap_or(u32::MAX),
            visible: num("ApproximateNumberOfMessages"),
        })
    }

    fn receive(
        &self,
        arn: &str,
        max: usize,
        wait_seconds: u32,
    ) -> BoxFuture<'static, Result<Vec<QueueMessage>, SourceError>> {
        let queues = self.0.clone();
        let target = queue_of(arn);
        Box::pin(async move {
            let (owner, name) = target?;
            let input = ReceiveInput {
                max,
                visibility_timeout: None,
                wait_seconds: Some(wait_seconds),
                attempt_id: None,
            };
            let got = queues
                .receive(&owner, &name, input)
                .await
                .map_err(source_error)?;
            Ok(got.into_iter().map(message).collect())
        })
    }

    fn delete(
        &self,
        arn: &str,
        handles: Vec<String>,
    ) -> BoxFuture<'static, Result<(), SourceError>> {
        let queues = self.0.clone();
        let target = queue_of(arn);
        Box::pin(async move {
            let (owner, name) = target?;
            let refs: Vec<&str> = handles.iter().map(String::as_str).collect();
            // Each handle came from this queue's own receive: a per-entry failure only means the
            // message is already gone (its visibility ended and someone else took it).
            queues
                .delete_batch(&owner, &name, &refs)
                .await
                .map(|_| ())
                .map_err(source_error)
        })
    }

    fn change_visibility(&self, arn: &str, handle: &str, seconds: u32) -> Result<(), SourceError> {
        let (owner, name) = queue_of(arn)?;
        self.0
            .change_visibility(&owner, &name, handle, seconds)
            .map_err(source_error)
    }
}

/// The function side of a mapping.
pub struct FunctionInvoker {
    pub control: Arc<ControlPlane>,
    pub target: updraft_api::async_invoke::FunctionTarget,
}

impl Invoker for FunctionInvoker {
    fn exists(&self, function_arn: &str) -> bool {
        let (base, qualifier) = split_qualifier(function_arn);
        let account = base.split(':').nth(4).unwrap_or("");
        self.control
            .get_configuration(account, base, qualifier)
            .is_ok()
    }

    fn invoke(&self, function_arn: &str, payload: Bytes) -> BoxFuture<'static, InvokeOutcome> {
        let (base, qualifier) = split_qualifier(function_arn);
        let d = updraft_events::Delivery {
            target: Target::Function {
                account_id: base.split(':').nth(4).unwrap_or("").to_string(),
                function_arn: base.to_string(),
                qualifier: qualifier.map(str::to_string),
            },
            payload,
            request_id: request_id(),
            attempt: 1,
            source: updraft_api::async_invoke::EVENT_SOURCE_MAPPING.to_string(),
        };
        let run = self.target.deliver(d);
        Box::pin(async move {
            match run.await {
                Outcome::Success { response, .. } => InvokeOutcome::Ok(response),
                Outcome::FunctionError { response, .. } => InvokeOutcome::FunctionError(response),
                Outcome::Throttled { reason } => InvokeOutcome::Throttled(reason),
                Outcome::Gone { reason } => InvokeOutcome::Gone(reason),
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
        assert_eq!(split_qualifier(&format!("{a}:live")), (a, Some("live")));
        assert_eq!(request_id().len(), 36);
    }
}
