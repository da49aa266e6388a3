//! Bucket notifications: the configuration (Lambda functions, SQS queues, EventBridge), its
//! validation as S3 does it, and the event records S3 sends, handed to a [`Notifier`] that the
//! binary implements over the durable event path.

pub mod wire;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::store::{Bucket, ObjectRecord};
use crate::wire::{Ctx, S3Service, event_key, iso8601};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where one notification goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Invoke a function asynchronously (its ARN, possibly qualified).
    Function(String),
    /// Send a message to a queue (its ARN).
    Queue(String),
    /// Put an event on the bucket owner's default event bus.
    EventBus {
        account: String,
        detail_type: String,
    },
}

/// One notification to deliver.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub destination: Destination,
    /// The record document (a JSON text).
    pub payload: String,
    /// The bucket's ARN (the source the function's policy is asked about).
    pub source_arn: String,
    pub bucket_owner: String,
}

/// The other services notifications reach, implemented by the binary's glue.
pub trait Notifier: Send + Sync {
    /// Whether a function exists and its resource policy lets `s3.amazonaws.com` invoke it for
    /// this bucket (`source_arn`) of `source_account`; the reason when not.
    fn check_function(
        &self,
        function_arn: &str,
        source_arn: &str,
        source_account: &str,
    ) -> Result<(), String>;
    /// Whether a queue exists; the reason when not.
    fn check_queue(&self, queue_arn: &str) -> Result<(), String>;
    /// Queues deliveries durably; resolves once they are committed.
    fn deliver(&self, deliveries: Vec<Delivery>) -> BoxFuture<'_, Result<(), String>>;
}

/// Which change happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Post,
    Copy,
    CompleteMultipartUpload,
    Delete,
    DeleteMarkerCreated,
}

impl EventKind {
    /// The record's `eventName` (without `s3:`).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Put => "ObjectCreated:Put",
            EventKind::Post => "ObjectCreated:Post",
            EventKind::Copy => "ObjectCreated:Copy",
            EventKind::CompleteMultipartUpload => "ObjectCreated:CompleteMultipartUpload",
            EventKind::Delete => "ObjectRemoved:Delete",
            EventKind::DeleteMarkerCreated => "ObjectRemoved:DeleteMarkerCreated",
        }
    }

    fn created(self) -> bool {
        !matches!(self, EventKind::Delete | EventKind::DeleteMarkerCreated)
    }

    fn reason(self) -> &'static str {
        match self {
            EventKind::Put => "PutObject",
            EventKind::Post => "PostObject",
            EventKind::Copy => "CopyObject",
            EventKind::CompleteMultipartUpload => "CompleteMultipartUpload",
            EventKind::Delete | EventKind::DeleteMarkerCreated => "DeleteObject",
        }
    }
}

/// The event types a configuration may name.
pub const EVENTS: &[&str] = &[
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
];

/// One destination's rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Rule {
    pub id: String,
    pub arn: String,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
}

impl Rule {
    /// Whether an event type the rule names covers `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        let full = format!("s3:{}", kind.name());
        self.events
            .iter()
            .any(|e| *e == full || e.strip_suffix('*').is_some_and(|p| full.starts_with(p)))
    }

    pub fn matches_key(&self, key: &str) -> bool {
        self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && self.suffix.as_deref().is_none_or(|s| key.ends_with(s))
    }
}

/// A bucket's notification configuration, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Config {
    #[serde(default)]
    pub functions: Vec<Rule>,
    #[serde(default)]
    pub queues: Vec<Rule>,
    #[serde(default)]
    pub eventbridge: bool,
}

impl Config {
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty() && self.queues.is_empty() && !self.eventbridge
    }
}

/// The sequencer S3 gives an event: increasing per key, compared as hex strings.
fn sequencer(seq: i64) -> String {
    format!("{:016X}", seq.max(0))
}

/// Who made the change a record tells of.
pub struct Requester<'a> {
    pub principal: &'a str,
    pub source_ip: &'a str,
    pub request_id: &'a str,
}

/// One S3 event record.
pub fn record(
    region: &str,
    bucket: &Bucket,
    rec: &ObjectRecord,
    kind: EventKind,
    configuration_id: &str,
    who: &Requester<'_>,
) -> serde_json::Value {
    let (principal, source_ip, request_id) = (who.principal, who.source_ip, who.request_id);
    let mut object = json!({ "key": event_key(&rec.key), "sequencer": sequencer(rec.seq) });
    if kind.created() {
        object["size"] = json!(rec.size);
        object["eTag"] = json!(rec.etag);
    }
    if rec.version_id != "null" {
        object["versionId"] = json!(rec.version_id);
    }
    json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": iso8601(crate::store::now_ms()),
        "eventName": kind.name(),
        "userIdentity": { "principalId": format!("AWS:{principal}") },
        "requestParameters": { "sourceIPAddress": source_ip },
        "responseElements": { "x-amz-request-id": request_id, "x-amz-id-2": request_id },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {
                "name": bucket.name,
                "ownerIdentity": { "principalId": bucket.account },
                "arn": format!("arn:aws:s3:::{}", bucket.name),
            },
            "object": object,
        }
    })
}

/// The EventBridge form of the same change.
fn eventbridge_detail(
    bucket: &Bucket,
    rec: &ObjectRecord,
    kind: EventKind,
    requester: &str,
    source_ip: &str,
    request_id: &str,
) -> serde_json::Value {
    let mut object = json!({ "key": rec.key, "sequencer": sequencer(rec.seq) });
    if kind.created() {
        object["size"] = json!(rec.size);
        object["etag"] = json!(rec.etag);
    }
    if rec.version_id != "null" {
        object["version-id"] = json!(rec.version_id);
    }
    let mut d = json!({
        "version": "0",
        "bucket": { "name": bucket.name },
        "object": object,
        "request-id": request_id,
        "requester": requester,
        "source-ip-address": source_ip,
        "reason": kind.reason(),
    });
    if !kind.created() {
        d["deletion-type"] = json!(if kind == EventKind::DeleteMarkerCreated {
            "Delete Marker Created"
        } else {
            "Permanently Deleted"
        });
    }
    d
}

impl S3Service {
    /// Sends the notifications a change calls for, durably, before the change is answered.
    /// A failure to queue them is logged: the change itself is committed already.
    pub(crate) async fn emit(
        self: &Arc<Self>,
        ctx: &Ctx,
        bucket: &Bucket,
        rec: &ObjectRecord,
        kind: EventKind,
    ) {
        let Some(text) = &bucket.notification else {
            return;
        };
        let Some(notifier) = self.notifier.get() else {
            return;
        };
        let Ok(config) = serde_json::from_str::<Config>(text) else {
            return;
        };
        let bucket_arn = format!("arn:aws:s3:::{}", bucket.name);
        let who = Requester {
            principal: &ctx.account,
            source_ip: &ctx.source_ip,
            request_id: &ctx.request_id,
        };
        let mut out = Vec::new();
        let one = |rule: &Rule| {
            json!({ "Records": [record(&self.region, bucket, rec, kind, &rule.id, &who)] })
                .to_string()
        };
        for r in config
            .functions
            .iter()
            .filter(|r| r.wants(kind) && r.matches_key(&rec.key))
        {
            out.push(Delivery {
                destination: Destination::Function(r.arn.clone()),
                payload: one(r),
                source_arn: bucket_arn.clone(),
                bucket_owner: bucket.account.clone(),
            });
        }
        for r in config
            .queues
            .iter()
            .filter(|r| r.wants(kind) && r.matches_key(&rec.key))
        {
            out.push(Delivery {
                destination: Destination::Queue(r.arn.clone()),
                payload: one(r),
                source_arn: bucket_arn.clone(),
                bucket_owner: bucket.account.clone(),
            });
        }
        if config.eventbridge {
            let detail_type = if kind.created() {
                "Object Created"
            } else {
                "Object Deleted"
            };
            out.push(Delivery {
                destination: Destination::EventBus {
                    account: bucket.account.clone(),
                    detail_type: detail_type.to_string(),
                },
                payload: eventbridge_detail(
                    bucket,
                    rec,
                    kind,
                    &ctx.account,
                    &ctx.source_ip,
                    &ctx.request_id,
                )
                .to_string(),
                source_arn: bucket_arn.clone(),
                bucket_owner: bucket.account.clone(),
            });
        }
        if out.is_empty() {
            return;
        }
        if let Err(e) = notifier.deliver(out).await {
            tracing::error!(bucket = %bucket.name, key = %rec.key, "s3 notification could not be queued: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_events_and_keys() {
        let r = Rule {
            id: "r".into(),
            arn: "a".into(),
            events: vec!["s3:ObjectCreated:*".into()],
            prefix: Some("input/".into()),
            suffix: Some(".csv".into()),
        };
        assert!(r.wants(EventKind::Put));
        assert!(r.wants(EventKind::CompleteMultipartUpload));
        assert!(!r.wants(EventKind::Delete));
        assert!(r.matches_key("input/x.csv"));
        assert!(!r.matches_key("input/x.txt"));
        assert!(!r.matches_key("output/x.csv"));
    }
}
