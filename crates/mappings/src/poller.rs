//! One mapping's poll group: loops that receive batches from the queue and invoke the function.
//!
//! The group starts `initial_pollers` loops. A loop that brings back a full batch while more
//! messages wait starts another, up to `MaximumConcurrency`; a loop whose long poll comes back
//! empty, or whose invoke is throttled, ends while others remain, so the group follows the
//! queue's depth and the function's concurrency.
//!
//! SQS's visibility semantics are kept: a batch is deleted only after the function succeeded
//! (with `ReportBatchItemFailures`, all but the reported records); after an error or a timeout
//! its messages stay hidden until their visibility timeout ends, reappear, and redrive to the
//! dead-letter queue after `maxReceiveCount`. Messages no filter matches are deleted, as on
//! Lambda. On a FIFO queue, a failed record also holds back every later record of its group in
//! the batch, so each group is delivered in order.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use updraft_pattern::Pattern;

use crate::model::{Mapping, parse_queue_arn};
use crate::record::{batch_item_failures, filter_view, sqs_record};
use crate::service::Mappings;
use crate::{InvokeOutcome, QueueMessage, SourceError};

/// A batch's payload stops growing past this (Lambda's 6 MB synchronous payload limit, with
/// room for the envelope).
const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024 + 512 * 1024;
/// Least time between two loops added to a group: the group grows by at most five loops a
/// second (Lambda adds up to 300 concurrent batches a minute), so a deep queue does not start
/// a crowd of cold environments at once.
const SCALE_UP_EVERY: Duration = Duration::from_millis(200);
/// Pause of a loop whose function or queue is missing, or whose queue failed.
const PROBLEM_PAUSE: Duration = Duration::from_secs(1);

/// What every loop of one group shares.
struct Group {
    svc: Arc<Mappings>,
    m: Mapping,
    region: String,
    filters: Vec<Pattern>,
    cap: u32,
    active: AtomicU32,
    /// When the group last grew.
    grown: std::sync::Mutex<Instant>,
    stop: watch::Receiver<bool>,
}

/// Runs a mapping's poll group until the mapping changes, is deleted or the node stops.
pub(crate) async fn run(svc: Arc<Mappings>, m: Mapping, stop: watch::Receiver<bool>) {
    svc.settle(&m.uuid);
    if !m.enabled {
        return;
    }
    let filters = m
        .filters
        .iter()
        .filter_map(|f| Pattern::parse(f).ok())
        .collect();
    let cap = m
        .maximum_concurrency
        .unwrap_or(svc.settings.default_max_concurrency)
        .max(1);
    let region = parse_queue_arn(&m.event_source_arn)
        .map(|(r, _, _)| r.to_string())
        .unwrap_or_default();
    let initial = svc.settings.initial_pollers.clamp(1, cap);
    let group = Arc::new(Group {
        svc,
        m,
        region,
        filters,
        cap,
        active: AtomicU32::new(0),
        grown: std::sync::Mutex::new(Instant::now()),
        stop,
    });
    for _ in 0..initial {
        spawn_loop(&group);
    }
}

fn spawn_loop(g: &Arc<Group>) {
    g.active.fetch_add(1, Ordering::SeqCst);
    let g = g.clone();
    tokio::spawn(async move {
        // A loop that retired took itself off the count already.
        if !poll_loop(&g).await {
            g.active.fetch_sub(1, Ordering::SeqCst);
        }
    });
}

impl Group {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Waits `d`, or less if the group is stopped meanwhile.
    async fn pause(&self, d: Duration) {
        let mut stop = self.stop.clone();
        let _ = tokio::time::timeout(d, stop.wait_for(|s| *s)).await;
    }

    /// Takes this loop off the count if another one keeps the group going.
    fn may_retire(&self) -> bool {
        let n = self.active.load(Ordering::SeqCst);
        n > 1
            && self
                .active
                .compare_exchange(n, n - 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// Whether the group may grow by one loop now (and, if so, counts it as grown).
    fn may_grow(&self) -> bool {
        if self.active.load(Ordering::SeqCst) >= self.cap {
            return false;
        }
        let mut grown = self.grown.lock().unwrap_or_else(|p| p.into_inner());
        if grown.elapsed() < SCALE_UP_EVERY {
            return false;
        }
        *grown = Instant::now();
        true
    }

    fn note(&self, result: &str) {
        self.svc.note_result(&self.m.uuid, result);
    }
}

/// Polls until the group stops (`false`) or the loop retires (`true`).
async fn poll_loop(g: &Arc<Group>) -> bool {
    let queues = g.svc.queues.clone();
    let arn = g.m.event_source_arn.as_str();
    loop {
        if g.stopped() || !g.svc.exists(&g.m.uuid) {
            return false;
        }
        if !g.svc.invoker.exists(&g.m.function_arn) {
            // Lambda keeps a deleted function's mappings; nothing is received meanwhile.
            g.note("PROBLEM: Function not found.");
            g.pause(PROBLEM_PAUSE).await;
            continue;
        }
        let info = match queues.info(arn, &g.m.account_id) {
            Ok(i) => i,
            Err(e) => {
                g.note(match e {
                    SourceError::NoSuchQueue => "PROBLEM: The queue does not exist.",
                    SourceError::AccessDenied(_) => {
                        "PROBLEM: The function's account may not receive messages from the queue."
                    }
                    SourceError::Other(_) => "PROBLEM: The queue could not be read.",
                });
                g.pause(PROBLEM_PAUSE).await;
                continue;
            }
        };
        let Some(batch) = collect(g).await else {
            return false;
        };
        if batch.is_empty() {
            if g.may_retire() {
                return true;
            }
            continue;
        }
        let full = batch.len() >= (g.m.batch_size as usize).min(10);
        if full && info.visible > 0 && g.may_grow() {
            spawn_loop(g);
        }
        let throttled = process(g, batch, info.fifo, info.visibility_timeout).await;
        if throttled && g.may_retire() {
            return true;
        }
    }
}

/// Receives one batch: a long poll for the first messages, then (with a batching window) more
/// until the batch is full, the window ends or the payload limit nears. `None` when the group
/// stopped before anything was received.
async fn collect(g: &Group) -> Option<Vec<QueueMessage>> {
    let queues = &g.svc.queues;
    let arn = g.m.event_source_arn.as_str();
    let want = g.m.batch_size as usize;
    let mut stop = g.stop.clone();
    let first = tokio::select! {
        r = queues.receive(arn, want.min(10), g.svc.settings.wait_seconds) => r,
        _ = stop.wait_for(|s| *s) => return None,
    };
    let mut got = match first {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(uuid = %g.m.uuid, error = %e, "event source mapping: receive failed");
            g.pause(PROBLEM_PAUSE).await;
            return Some(Vec::new());
        }
    };
    if got.is_empty() || g.m.window_seconds == 0 {
        return Some(got);
    }
    let deadline = Instant::now() + Duration::from_secs(u64::from(g.m.window_seconds));
    let mut bytes: usize = got.iter().map(|m| m.body.len()).sum();
    while got.len() < want && bytes < MAX_BATCH_BYTES && !g.stopped() {
        let more = tokio::select! {
            r = tokio::time::timeout_at(
                deadline,
                queues.receive(arn, (want - got.len()).min(10), g.svc.settings.wait_seconds),
            ) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        match more {
            Ok(Ok(v)) => {
                bytes += v.iter().map(|m| m.body.len()).sum::<usize>();
                got.extend(v);
            }
            Ok(Err(_)) | Err(_) => break,
        }
    }
    Some(got)
}

/// Filters, invokes and settles one batch. Returns whether the function was throttled.
async fn process(g: &Group, batch: Vec<QueueMessage>, fifo: bool, visibility: u32) -> bool {
    let queues = &g.svc.queues;
    let arn = g.m.event_source_arn.as_str();
    let mut records = Vec::with_capacity(batch.len());
    let mut kept = Vec::with_capacity(batch.len());
    let mut unmatched = Vec::new();
    for m in batch {
        let r = sqs_record(&m, arn, &g.region);
        if g.filters.is_empty() || {
            let view = filter_view(&r);
            g.filters.iter().any(|p| p.matches(&view))
        } {
            records.push(r);
            kept.push(m);
        } else {
            unmatched.push(m.receipt_handle);
        }
    }
    if !unmatched.is_empty()
        && let Err(e) = queues.delete(arn, unmatched).await
    {
        tracing::warn!(uuid = %g.m.uuid, error = %e, "event source mapping: deleting filtered messages");
    }
    if kept.is_empty() {
        return false;
    }
    let payload = Bytes::from(
        serde_json::to_vec(&json!({ "Records": Value::Array(records) }))
            .expect("plain JSON serialises"),
    );
    let started = Instant::now();
    // Throttled invokes are retried while the batch is comfortably inside its visibility
    // timeout; then it is left to reappear, as Lambda does.
    let retry_for = Duration::from_secs(u64::from(visibility.max(2)) / 2);
    let mut backoff = Duration::from_millis(50);
    let outcome = loop {
        match g
            .svc
            .invoker
            .invoke(&g.m.function_arn, payload.clone())
            .await
        {
            InvokeOutcome::Throttled(reason) => {
                if started.elapsed() + backoff >= retry_for || g.stopped() {
                    tracing::debug!(uuid = %g.m.uuid, %reason, "event source mapping: throttled");
                    g.note("PROBLEM: Function call throttled.");
                    return true;
                }
                g.pause(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            other => break other,
        }
    };
    let failed: HashSet<String> = match outcome {
        InvokeOutcome::Ok(response) if g.m.report_batch_item_failures => {
            let ids: Vec<&str> = kept.iter().map(|m| m.message_id.as_str()).collect();
            match batch_item_failures(&response, &ids) {
                Some(f) => f.into_iter().collect(),
                None => {
                    g.note("PROBLEM: Function returned an invalid batchItemFailures response.");
                    return false;
                }
            }
        }
        InvokeOutcome::Ok(_) => HashSet::new(),
        InvokeOutcome::FunctionError(_) => {
            g.note("PROBLEM: Function call failed.");
            return false;
        }
        InvokeOutcome::Gone(reason) => {
            tracing::warn!(uuid = %g.m.uuid, %reason, "event source mapping: function gone");
            g.note("PROBLEM: Function not found.");
            // Not the function's failure: give the messages back at once.
            for m in &kept {
                let _ = queues.change_visibility(arn, &m.receipt_handle, 0);
            }
            g.pause(PROBLEM_PAUSE).await;
            return false;
        }
        InvokeOutcome::Throttled(_) => unreachable!("retried above"),
    };
    g.note(if failed.is_empty() {
        "OK"
    } else {
        "PROBLEM: Function reported batch item failures."
    });
    let done = successes(&kept, &failed, fifo);
    if done.is_empty() {
        return false;
    }
    // The loop receives its next batch while this deletion commits: the processed messages
    // stay hidden meanwhile, and one that is not deleted (a crash before the commit) reappears
    // after its visibility timeout and is delivered again, at least once as on Lambda.
    let deletion = queues.delete(arn, done);
    let (svc, uuid) = (g.svc.clone(), g.m.uuid.clone());
    tokio::spawn(async move {
        if let Err(e) = deletion.await {
            tracing::warn!(%uuid, error = %e, "event source mapping: deleting a processed batch");
            svc.note_result(&uuid, "PROBLEM: Processed messages could not be deleted.");
        }
    });
    false
}

/// The receipt handles to delete: every record not reported failed and, on a FIFO queue, not
/// behind a failed record of its own group.
fn successes(kept: &[QueueMessage], failed: &HashSet<String>, fifo: bool) -> Vec<String> {
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut done = Vec::with_capacity(kept.len());
    for m in kept {
        let group = m.group().unwrap_or("");
        if failed.contains(&m.message_id) {
            if fifo {
                blocked.insert(group);
            }
            continue;
        }
        if fifo && blocked.contains(group) {
            continue;
        }
        done.push(m.receipt_handle.clone());
    }
    done
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn msg(id: &str, group: Option<&str>) -> QueueMessage {
        let mut attributes = BTreeMap::new();
        if let Some(g) = group {
            attributes.insert("MessageGroupId".into(), g.into());
        }
        QueueMessage {
            message_id: id.into(),
            receipt_handle: format!("rh-{id}"),
            body: String::new(),
            md5_of_body: String::new(),
            md5_of_attributes: None,
            attributes,
            message_attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn fifo_failures_hold_back_their_group() {
        let kept = vec![
            msg("1", Some("a")),
            msg("2", Some("b")),
            msg("3", Some("a")),
            msg("4", Some("b")),
        ];
        let failed: HashSet<String> = ["1".to_string()].into();
        assert_eq!(successes(&kept, &failed, true), vec!["rh-2", "rh-4"]);
        assert_eq!(
            successes(&kept, &failed, false),
            vec!["rh-2", "rh-3", "rh-4"]
        );
        assert_eq!(successes(&kept, &HashSet::new(), true).len(), 4);
    }
}
