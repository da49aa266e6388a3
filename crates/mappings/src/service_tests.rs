//! The service and its poll groups over an in-memory queue and a recording invoker.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::*;
use crate::{BoxFuture, InvokeOutcome, Invoker, QueueInfo, QueueMessage, QueueSource, SourceError};

const ACCT: &str = "111122223333";
const ARN: &str = "arn:aws:sqs:us-east-1:111122223333:q";
const FN: &str = "arn:aws:lambda:us-east-1:111122223333:function:f";

/// A queue of bodies: `(id, body, in flight)`.
#[derive(Default)]
struct FakeQueue {
    messages: Mutex<Vec<(String, String, bool)>>,
    receives: Mutex<u32>,
}

impl FakeQueue {
    fn with(n: usize) -> Arc<Self> {
        let q = Self::default();
        *q.messages.lock().unwrap() = (0..n)
            .map(|i| (format!("id-{i}"), format!("body-{i}"), false))
            .collect();
        Arc::new(q)
    }

    fn left(&self) -> usize {
        self.messages.lock().unwrap().len()
    }
}

impl QueueSource for FakeQueue {
    fn info(&self, arn: &str, _: &str) -> Result<QueueInfo, SourceError> {
        if arn != ARN {
            return Err(SourceError::NoSuchQueue);
        }
        let visible = self
            .messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| !m.2)
            .count() as u64;
        Ok(QueueInfo {
            fifo: false,
            visibility_timeout: 30,
            visible,
        })
    }

    fn receive(
        &self,
        _: &str,
        max: usize,
        _: u32,
    ) -> BoxFuture<'static, Result<Vec<QueueMessage>, SourceError>> {
        *self.receives.lock().unwrap() += 1;
        let mut ms = self.messages.lock().unwrap();
        let got: Vec<QueueMessage> = ms
            .iter_mut()
            .filter(|m| !m.2)
            .take(max)
            .map(|m| {
                m.2 = true;
                QueueMessage {
                    message_id: m.0.clone(),
                    receipt_handle: m.0.clone(),
                    body: m.1.clone(),
                    md5_of_body: String::new(),
                    md5_of_attributes: None,
                    attributes: BTreeMap::new(),
                    message_attributes: BTreeMap::new(),
                }
            })
            .collect();
        Box::pin(async move {
            if got.is_empty() {
                // An empty long poll.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(got)
        })
    }

    fn delete(&self, _: &str, handles: Vec<String>) -> BoxFuture<'static, Result<(), SourceError>> {
        self.messages
            .lock()
            .unwrap()
            .retain(|m| !handles.contains(&m.0));
        Box::pin(async { Ok(()) })
    }

    fn change_visibility(&self, _: &str, handle: &str, _: u32) -> Result<(), SourceError> {
        for m in self
            .messages
            .lock()
            .unwrap()
            .iter_mut()
            .filter(|m| m.0 == handle)
        {
            m.2 = false;
        }
        Ok(())
    }
}

/// Records every batch's bodies; fails when told to.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<Vec<String>>>,
    fail: Mutex<bool>,
}

impl Invoker for Recorder {
    fn exists(&self, f: &str) -> bool {
        f == FN
    }

    fn invoke(&self, _: &str, payload: Bytes) -> BoxFuture<'static, InvokeOutcome> {
        let v: Value = serde_json::from_slice(&payload).unwrap();
        let bodies = v["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["body"].as_str().unwrap().to_string())
            .collect();
        self.batches.lock().unwrap().push(bodies);
        let out = if *self.fail.lock().unwrap() {
            InvokeOutcome::FunctionError(Bytes::from_static(b"{}"))
        } else {
            InvokeOutcome::Ok(Bytes::from_static(b"null"))
        };
        Box::pin(async move { out })
    }
}

fn input(batch: u32) -> MappingInput {
    MappingInput {
        event_source_arn: ARN.into(),
        function_arn: FN.into(),
        function_timeout: 3,
        batch_size: Some(batch),
        ..Default::default()
    }
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_drains_its_queue_in_batches_and_settles_its_state() {
    let q = FakeQueue::with(95);
    let inv = Arc::new(Recorder::default());
    let svc = Mappings::in_memory(q.clone(), inv.clone(), Settings::default()).unwrap();
    let m = svc.create(ACCT, input(10)).unwrap();
    assert_eq!(m.state, MappingState::Creating);
    until("the queue to drain", || q.left() == 0).await;
    assert_eq!(svc.get(ACCT, &m.uuid).unwrap().state, MappingState::Enabled);
    let batches = inv.batches.lock().unwrap().clone();
    assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 10));
    let mut all: Vec<String> = batches.into_iter().flatten().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 95);
    until("the result to be noted", || {
        svc.get(ACCT, &m.uuid).unwrap().last_result == "OK"
    })
    .await;
    // Another account sees nothing of it.
    assert!(matches!(
        svc.get("444455556666", &m.uuid),
        Err(MappingError::NotFound(_))
    ));
    assert!(matches!(
        svc.create(ACCT, input(10)),
        Err(MappingError::Conflict(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_function_leaves_its_messages_and_a_disabled_mapping_receives_nothing() {
    let q = FakeQueue::with(3);
    let inv = Arc::new(Recorder::default());
    *inv.fail.lock().unwrap() = true;
    let svc = Mappings::in_memory(q.clone(), inv.clone(), Settings::default()).unwrap();
    let m = svc.create(ACCT, input(10)).unwrap();
    until("a failed batch", || {
        svc.get(ACCT, &m.uuid).unwrap().last_result == "PROBLEM: Function call failed."
    })
    .await;
    assert_eq!(q.left(), 3, "a failed batch is not deleted");
    let d = svc
        .update(
            ACCT,
            &m.uuid,
            MappingUpdate {
                enabled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(d.state, MappingState::Disabling);
    until("Disabled", || {
        svc.get(ACCT, &m.uuid).unwrap().state == MappingState::Disabled
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let receives = *q.receives.lock().unwrap();
    for m in q.messages.lock().unwrap().iter_mut() {
        m.2 = false;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        *q.receives.lock().unwrap(),
        receives,
        "a disabled mapping polls nothing"
    );
    let gone = svc.delete(ACCT, &m.uuid).unwrap();
    assert_eq!(gone.state, MappingState::Deleting);
    assert!(svc.get(ACCT, &m.uuid).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_are_stored_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mappings.db");
    let q = FakeQueue::with(0);
    let inv = Arc::new(Recorder::default());
    let uuid = {
        let svc = Mappings::open(&path, q.clone(), inv.clone(), Settings::default()).unwrap();
        let mut bad = input(10);
        bad.function_timeout = 31;
        assert!(matches!(
            svc.create(ACCT, bad),
            Err(MappingError::Invalid(_))
        ));
        let mut other = input(10);
        other.event_source_arn = "arn:aws:sqs:us-east-1:111122223333:missing".into();
        assert!(matches!(
            svc.create(ACCT, other),
            Err(MappingError::Invalid(_))
        ));
        let m = svc
            .create(
                ACCT,
                MappingInput {
                    enabled: Some(false),
                    ..input(5)
                },
            )
            .unwrap();
        svc.stop_all();
        m.uuid
    };
    let svc = Mappings::open(&path, q, inv, Settings::default()).unwrap();
    let m = svc.get(ACCT, &uuid).unwrap();
    assert_eq!(
        (m.batch_size, m.enabled, m.state),
        (5, false, MappingState::Disabled)
    );
    let (page, next) = svc.list(ACCT, Some(ARN), Some(FN), None, None);
    assert_eq!((page.len(), next), (1, None));
}
