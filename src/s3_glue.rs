//! Wiring of the object store's notifications into this node: a function destination must
//! exist and allow `s3.amazonaws.com` for the bucket; a queue destination must exist; each
//! notification becomes a work item of the durable event path (a function's `Event`
//! invocation, a queue message, or an event on the bucket owner's default bus), committed
//! before the change that caused it is answered.

use std::sync::Arc;

use updraft_control::ControlPlane;
use updraft_events::{Events, NewWork, Target};
use updraft_objects::notify::{BoxFuture, Delivery, Destination, Notifier};
use updraft_queues::Queues;

use crate::events_glue::{PolicyCheck, account_of, request_id, split_qualifier};

pub struct S3Notifier {
    pub control: Arc<ControlPlane>,
    pub queues: Arc<Queues>,
    pub events: Arc<Events>,
    pub region: String,
}

impl Notifier for S3Notifier {
    fn check_function(
        &self,
        function_arn: &str,
        source_arn: &str,
        source_account: &str,
    ) -> Result<(), String> {
        PolicyCheck(self.control.clone()).allows_service(
            "s3.amazonaws.com",
            function_arn,
            source_arn,
            source_account,
        )
    }

    fn check_queue(&self, queue_arn: &str) -> Result<(), String> {
        let (owner, name) = updraft_queues::model::parse_arn(queue_arn)
            .ok_or_else(|| format!("{queue_arn} is not a queue ARN"))?;
        self.queues
            .exists(&owner, &name)
            .map_err(|e| format!("queue {queue_arn}: {e}"))
    }

    fn deliver(&self, deliveries: Vec<Delivery>) -> BoxFuture<'_, Result<(), String>> {
        let items: Vec<NewWork> = deliveries
            .into_iter()
            .map(|d| {
                let target = match d.destination {
                    Destination::Function(arn) => {
                        let (base, qualifier) = split_qualifier(&arn);
                        Target::Function {
                            account_id: account_of(&arn).to_string(),
                            function_arn: base.to_string(),
                            qualifier: qualifier.map(str::to_string),
                        }
                    }
                    Destination::Queue(arn) => Target::Queue {
                        account_id: d.bucket_owner.clone(),
                        arn,
                        attributes: Vec::new(),
                    },
                    Destination::EventBus {
                        account,
                        detail_type,
                    } => Target::EventBus {
                        bus_arn: format!(
                            "arn:aws:events:{}:{account}:event-bus/default",
                            self.region
                        ),
                        account_id: account,
                        source: "aws.s3".to_string(),
                        detail_type,
                    },
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
            self.events
                .enqueue(items)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// `Code.S3Bucket`/`S3Key` packages, read from this node's object store with the caller's
/// access (its own buckets, or a bucket policy granting `s3:GetObject`).
pub struct CodeFromObjects(pub Arc<updraft_objects::ObjectStore>);

/// The largest package read from the object store: Lambda's unzipped limit.
const MAX_CODE_OBJECT: u64 = 250 * 1024 * 1024;

impl updraft_api::wire::CodeObjects for CodeFromObjects {
    fn read_code(
        &self,
        account: &str,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<Vec<u8>, (String, String)> {
        self.0
            .read_as(account, bucket, key, version, MAX_CODE_OBJECT)
            .map_err(|e| (e.code.to_string(), e.message))
    }
}
