//! [`Queues`]: every queue of every account, the one owner of their state.
//!
//! State lives in memory behind one `std::sync::Mutex` (no `.await` happens while it is held);
//! every change is also handed, in the order it was made, to the group-commit [`Writer`].
//! Sends and deletes await their commit before they are answered (an acknowledged send
//! survives `kill -9`); a sent message becomes receivable only once committed. Long polls wait
//! on the queue's `Notify`, woken by every arrival, or until the next delayed or in-flight
//! message becomes visible. The wire modules call this API; so will an in-process poller.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use updraft_store::QueueDb;
use updraft_store::queues::QueueOp;

use crate::error::QueueError;
use crate::md5::{md5_of_attributes, md5_of_body};
use crate::model::{
    self, AttrValue, MessageDoc, MessageState, QueueConfig, check_attribute, check_chars,
    check_queue_name, parse_arn,
};
use crate::queue::{DEDUP_WINDOW_MS, DedupEntry, Message, PENDING, Queue};
use crate::receipt::Receipts;
use crate::writer::Writer;

/// Longest long poll.
pub const MAX_WAIT_SECONDS: u32 = 20;

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

type Key = (String, String);

struct Slot {
    queue: Queue,
    notify: Arc<Notify>,
}

/// A message move task (redrive from a dead-letter queue).
#[derive(Debug, Clone)]
pub struct MoveTask {
    pub handle: String,
    pub source_arn: String,
    pub destination_arn: Option<String>,
    pub status: &'static str,
    pub moved: u64,
    pub to_move: u64,
    pub started: u64,
    pub max_per_second: Option<u32>,
    /// Why a `FAILED` task failed (an SQS error code).
    pub failure: Option<String>,
}

#[derive(Default)]
struct State {
    queues: HashMap<Key, Slot>,
    next_seq: u64,
    tasks: Vec<MoveTask>,
}

/// One message to send.
#[derive(Debug, Clone, Default)]
pub struct SendInput {
    pub body: String,
    pub delay_seconds: Option<u32>,
    pub attributes: BTreeMap<String, AttrValue>,
    pub system_attributes: BTreeMap<String, AttrValue>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
}

/// What a send answers.
#[derive(Debug, Clone, PartialEq)]
pub struct SendOutput {
    pub message_id: String,
    pub md5_body: String,
    pub md5_attributes: Option<String>,
    pub md5_system_attributes: Option<String>,
    pub sequence_number: Option<String>,
}

/// A receive's parameters.
#[derive(Debug, Clone, Default)]
pub struct ReceiveInput {
    pub max: usize,
    pub visibility_timeout: Option<u32>,
    pub wait_seconds: Option<u32>,
    pub attempt_id: Option<String>,
}

/// A received message and its receipt handle.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub message: Message,
    pub receipt_handle: String,
}

/// All queues of the node.
pub struct Queues {
    state: Mutex<State>,
    /// Set when the node stops: long polls answer at once instead of holding shutdown.
    stopping: std::sync::atomic::AtomicBool,
    writer: Writer,
    receipts: Receipts,
    region: String,
}

fn key(account: &str, name: &str) -> Key {
    (account.to_string(), name.to_string())
}

fn doc_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

impl Queues {
    /// Opens the queue database at `path` and loads every queue and message.
    pub fn open(path: &Path, region: &str) -> Result<Arc<Self>, updraft_store::StoreError> {
        Self::load(QueueDb::open(path)?, region)
    }

    /// Queues over an in-memory database, for tests.
    pub fn in_memory(region: &str) -> Result<Arc<Self>, updraft_store::StoreError> {
        Self::load(QueueDb::in_memory()?, region)
    }

    fn load(db: QueueDb, region: &str) -> Result<Arc<Self>, updraft_store::StoreError> {
        let secret = match db.get_meta("receipt_secret")? {
            Some(s) => hex::decode(s).unwrap_or_default(),
            None => {
                let s = rand::random::<[u8; 32]>().to_vec();
                db.apply(&[QueueOp::PutMeta {
                    key: "receipt_secret".into(),
                    value: hex::encode(&s),
                }])?;
                s
            }
        };
        let snap = db.snapshot()?;
        let mut state = State {
            next_seq: 1,
            ..State::default()
        };
        for row in snap.queues {
            let Ok(config) = serde_json::from_str::<QueueConfig>(&row.doc) else {
                tracing::error!(account = %row.account_id, queue = %row.name, "unreadable queue document skipped");
                continue;
            };
            state.queues.insert(
                (row.account_id, row.name),
                Slot {
                    queue: Queue::new(config),
                    notify: Arc::new(Notify::new()),
                },
            );
        }
        for row in snap.messages {
            state.next_seq = state.next_seq.max(row.seq + 1);
            let (Ok(doc), Ok(st)) = (
                serde_json::from_str::<MessageDoc>(&row.doc),
                serde_json::from_str::<MessageState>(&row.state),
            ) else {
                tracing::error!(queue = %row.queue, seq = row.seq, "unreadable message skipped");
                continue;
            };
            if let Some(slot) = state.queues.get_mut(&(row.account_id, row.queue)) {
                let m = build_message(row.seq, doc, st);
                slot.queue.messages.insert(row.seq, m);
            }
        }
        let now = now_ms();
        for row in snap.dedup {
            if row.expires <= now {
                continue;
            }
            if let (Some(slot), Ok(entry)) = (
                state.queues.get_mut(&(row.account_id, row.queue)),
                serde_json::from_str::<DedupEntry>(&row.doc),
            ) {
                slot.queue.dedup.insert(row.key, entry);
            }
        }
        let queues = Arc::new(Self {
            state: Mutex::new(state),
            stopping: std::sync::atomic::AtomicBool::new(false),
            writer: Writer::start(Arc::new(db)),
            receipts: Receipts::new(secret),
            region: region.to_string(),
        });
        start_sweeper(Arc::downgrade(&queues));
        Ok(queues)
    }

    /// Deletes every message past its queue's retention period; returns how many.
    pub fn sweep_expired(&self, now: u64) -> usize {
        let mut st = self.lock();
        let mut ops = Vec::new();
        for ((account, name), slot) in st.queues.iter_mut() {
            for seq in slot.queue.expire(now) {
                ops.push(QueueOp::DeleteMessage {
                    account_id: account.clone(),
                    queue: name.clone(),
                    seq,
                });
            }
        }
        let n = ops.len();
        ops.push(QueueOp::DeleteLapsedDedup { now });
        self.writer.persist(ops);
        n
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves state that is still consistent per queue
        // (every change is a single map operation), so keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends every long poll now and makes later ones answer at once (the node is stopping).
    pub fn stop_polling(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for slot in self.lock().queues.values() {
            slot.notify.notify_waiters();
        }
    }

    /// Waits until every change made so far is committed.
    pub async fn flush(&self) {
        let _ = self.writer.submit(Vec::new()).await;
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The ARN of a queue.
    pub fn arn(&self, account: &str, name: &str) -> String {
        format!("arn:aws:sqs:{}:{account}:{name}", self.region)
    }

    /// Whether `caller` may use the queue `owner`/`name`: its owner always, another account
    /// when the queue's `Policy` allows it (an `Allow` statement naming the account, its root,
    /// or `*`).
    pub fn authorize(&self, caller: &str, owner: &str, name: &str) -> Result<(), QueueError> {
        let st = self.lock();
        let slot = st
            .queues
            .get(&key(owner, name))
            .ok_or(QueueError::NoSuchQueue)?;
        if caller == owner {
            return Ok(());
        }
        let policy = slot
            .queue
            .config
            .attributes
            .get("Policy")
            .cloned()
            .unwrap_or_default();
        if policy_allows(&policy, caller) {
            Ok(())
        } else {
            Err(QueueError::AccessDenied(self.arn(owner, name)))
        }
    }

    /// Whether the AWS service `service` (e.g. `events.amazonaws.com`) may send to the queue
    /// `owner`/`name` on behalf of `source_arn`: its `Policy` must hold an `Allow` statement
    /// naming the service principal for `sqs:SendMessage`, whose `aws:SourceArn` condition (if
    /// any) matches.
    pub fn authorize_service(
        &self,
        service: &str,
        source_arn: &str,
        owner: &str,
        name: &str,
    ) -> Result<(), QueueError> {
        let st = self.lock();
        let slot = st
            .queues
            .get(&key(owner, name))
            .ok_or(QueueError::NoSuchQueue)?;
        let policy = slot.queue.config.attributes.get("Policy");
        if policy.is_some_and(|p| crate::policy::service_allowed(p, service, source_arn)) {
            Ok(())
        } else {
            Err(QueueError::AccessDenied(self.arn(owner, name)))
        }
    }

    /// Creates a queue, or returns quietly when an identical one exists.
    pub fn create_queue(
        &self,
        account: &str,
        name: &str,
        attributes: BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
    ) -> Result<(), QueueError> {
        let fifo = attributes
            .get("FifoQueue")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        check_queue_name(name, fifo)?;
        for (n, v) in &attributes {
            check_attribute(n, v, fifo, true)?;
        }
        let mut st = self.lock();
        check_redrive_target(&st, account, &attributes, fifo)?;
        if let Some(slot) = st.queues.get(&key(account, name)) {
            let have = slot.queue.config.effective();
            for (n, v) in &attributes {
                if have.get(n) != Some(v) {
                    return Err(QueueError::QueueNameExists(n.clone()));
                }
            }
            return Ok(());
        }
        let now = now_ms() / 1000;
        let mut attributes = attributes;
        if fifo {
            attributes.insert("FifoQueue".into(), "true".into());
        } else {
            attributes.remove("FifoQueue");
        }
        let config = QueueConfig {
            attributes,
            tags,
            created: now,
            modified: now,
        };
        self.writer.persist(vec![QueueOp::PutQueue {
            account_id: account.into(),
            name: name.into(),
            doc: doc_json(&config),
        }]);
        st.queues.insert(
            key(account, name),
            Slot {
                queue: Queue::new(config),
                notify: Arc::new(Notify::new()),
            },
        );
        Ok(())
    }

    /// Fails with `QueueDoesNotExist` unless the queue exists.
    pub fn exists(&self, account: &str, name: &str) -> Result<(), QueueError> {
        if self.lock().queues.contains_key(&key(account, name)) {
            Ok(())
        } else {
            Err(QueueError::NoSuchQueue)
        }
    }

    /// The names of an account's queues that start with `prefix`, sorted.
    pub fn list_queues(&self, account: &str, prefix: &str) -> Vec<String> {
        let st = self.lock();
        let mut names: Vec<String> = st
            .queues
            .keys()
            .filter(|(a, n)| a == account && n.starts_with(prefix))
            .map(|(_, n)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// Up to `max` messages of a queue in their order, each with its state (`visible`,
    /// `in-flight` or `delayed`), for operators. Read-only: no visibility, receive count or
    /// stored state changes.
    pub fn peek(
        &self,
        account: &str,
        name: &str,
        max: usize,
    ) -> Result<Vec<(Message, &'static str)>, QueueError> {
        let st = self.lock();
        let slot = st
            .queues
            .get(&key(account, name))
            .ok_or(QueueError::NoSuchQueue)?;
        let q = &slot.queue;
        let now = now_ms();
        let retention = q.config.num("MessageRetentionPeriod") * 1000;
        Ok(q.messages
            .values()
            .filter(|m| m.state.visible_at != PENDING && now < m.doc.sent + retention)
            .take(max)
            .map(|m| {
                let state = if m.state.visible_at <= now {
                    "visible"
                } else if m.state.receive_count > 0 {
                    "in-flight"
                } else {
                    "delayed"
                };
                (m.clone(), state)
            })
            .collect())
    }

    /// Queues whose redrive policy names this queue as their dead-letter queue.
    pub fn dead_letter_sources(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Vec<String>, QueueError> {
        let arn = self.arn(account, name);
        let st = self.lock();
        if !st.queues.contains_key(&key(account, name)) {
            return Err(QueueError::NoSuchQueue);
        }
        let mut out: Vec<String> = st
            .queues
            .iter()
            .filter(|((a, _), s)| {
                a == account
                    && s.queue
                        .config
                        .redrive()
                        .is_some_and(|r| r.dead_letter_target_arn == arn)
            })
            .map(|((_, n), _)| n.clone())
            .collect();
        out.sort();
        Ok(out)
    }

    /// The queue attributes asked for (`All` for every one).
    pub fn get_attributes(
        &self,
        account: &str,
        name: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, String>, QueueError> {
        for n in names {
            if !model::is_attribute_name(n) {
                return Err(QueueError::InvalidAttributeName(n.clone()));
            }
        }
        let st = self.lock();
        let slot = st
            .queues
            .get(&key(account, name))
            .ok_or(QueueError::NoSuchQueue)?;
        let q = &slot.queue;
        let mut all = q.config.effective();
        let c = q.counts(now_ms());
        all.insert("QueueArn".into(), self.arn(account, name));
        all.insert("ApproximateNumberOfMessages".into(), c.visible.to_string());
        all.insert(
            "ApproximateNumberOfMessagesNotVisible".into(),
            c.in_flight.to_string(),
        );
        all.insert(
            "ApproximateNumberOfMessagesDelayed".into(),
            c.delayed.to_string(),
        );
        all.insert("CreatedTimestamp".into(), q.config.created.to_string());
        all.insert(
            "LastModifiedTimestamp".into(),
            q.config.modified.to_string(),
        );
        if names.iter().any(|n| n == "All") {
            return Ok(all);
        }
        Ok(all.into_iter().filter(|(k, _)| names.contains(k)).collect())
    }

    /// Sets queue attributes (all checked before any is applied).
    pub fn set_attributes(
        &self,
        account: &str,
        name: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<(), QueueError> {
        let mut st = self.lock();
        let fifo = st
            .queues
            .get(&key(account, name))
            .ok_or(QueueError::NoSuchQueue)?
            .queue
            .config
            .fifo();
        for (n, v) in &attributes {
            check_attribute(n, v, fifo, false)?;
        }
        check_redrive_target(&st, account, &attributes, fifo)?;
        let slot = st
            .queues
            .get_mut(&key(account, name))
            .ok_or(QueueError::NoSuchQueue)?;
        for (n, v) in attributes {
            if v.is_empty()
                && matches!(
                    n.as_str(),
                    "RedrivePolicy" | "Policy" | "RedriveAllowPolicy"
                )
            {
                slot.queue.config.attributes.remove(&n);
            } else {
                slot.queue.config.attributes.insert(n, v);
            }
        }
        slot.queue.config.modified = now_ms() / 1000;
        self.writer.persist(vec![QueueOp::PutQueue {
            account_id: account.into(),
            name: name.into(),
            doc: doc_json(&slot.queue.config),
        }]);
        slot.notify.notify_waiters();
        Ok(())
    }

    /// Deletes a queue and its messages.
    pub async fn delete_queue(&self, account: &str, name: &str) -> Result<(), QueueError> {
        let rx = {
            let mut st = self.lock();
            let slot = st
                .queues
                .remove(&key(account, name))
                .ok_or(QueueError::NoSuchQueue)?;
            slot.notify.notify_waiters();
            self.writer.submit(vec![QueueOp::DeleteQueue {
                account_id: account.into(),
                name: name.into(),
            }])
        };
        match rx.await {
            Ok(Ok(())) => Ok(()),
            _ => Err(QueueError::Internal),
        }
    }

    /// Deletes every message of a queue (once a minute at most, as SQS allows).
    pub async fn purge(&self, account: &str, name: &str) -> Result<(), QueueError> {
        let rx = {
            let mut st = self.lock();
            let slot = st
                .queues
                .get_mut(&key(account, name))
                .ok_or(QueueError::NoSuchQueue)?;
            let now = now_ms();
            if slot.queue.last_purge.is_some_and(|t| now < t + 60_000) {
                return Err(QueueError::PurgeQueueInProgress(self.arn(account, name)));
            }
            slot.queue.last_purge = Some(now);
            slot.queue.messages.clear();
            self.writer.submit(vec![QueueOp::PurgeQueue {
                account_id: account.into(),
                queue: name.into(),
            }])
        };
        match rx.await {
            Ok(Ok(())) => Ok(()),
            _ => Err(QueueError::Internal),
        }
    }

    /// A queue's tags.
    pub fn tags(&self, account: &str, name: &str) -> Result<BTreeMap<String, String>, QueueError> {
        let st = self.lock();
        let slot = st
            .queues
            .get(&key(account, name))
            .ok_or(QueueError::NoSuchQueue)?;
        Ok(slot.queue.config.tags.clone())
    }

    /// Adds or replaces tags (`add`) and removes tags (`remove`).
    pub fn retag(
        &self,
        account: &str,
        name: &str,
        add: BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), QueueError> {
        let mut st = self.lock();
        let slot = st
            .queues
            .get_mut(&key(account, name))
            .ok_or(QueueError::NoSuchQueue)?;
        let tags = &mut slot.queue.config.tags;
        tags.extend(add);
        for k in remove {
            tags.remove(k);
        }
        if tags.len() > 50 {
            return Err(QueueError::InvalidParameterValue(
                "Too many tags added for queue.".into(),
            ));
        }
        self.writer.persist(vec![QueueOp::PutQueue {
            account_id: account.into(),
            name: name.into(),
            doc: doc_json(&slot.queue.config),
        }]);
        Ok(())
    }

    /// Sends a batch of messages; each entry succeeds or fails on its own, and the successful
    /// ones are committed together before this returns.
    pub async fn send(
        &self,
        account: &str,
        name: &str,
        sender_id: &str,
        inputs: Vec<SendInput>,
    ) -> Result<Vec<Result<SendOutput, QueueError>>, QueueError> {
        let now = now_ms();
        let mut results = Vec::with_capacity(inputs.len());
        // (seq, when it becomes visible) of each message being committed.
        let mut fresh: Vec<(u64, u64)> = Vec::new();
        let mut ops = Vec::new();
        let (rx, notify) = {
            let mut st = self.lock();
            let mut next_seq = st.next_seq;
            let slot = st
                .queues
                .get_mut(&key(account, name))
                .ok_or(QueueError::NoSuchQueue)?;
            let q = &mut slot.queue;
            for input in inputs {
                match prepare(q, input, sender_id, now, &mut next_seq) {
                    Ok(Prepared::Fresh(m)) => {
                        let m = *m;
                        results.push(Ok(output(&m, q.config.fifo())));
                        ops.push(QueueOp::PutMessage {
                            account_id: account.into(),
                            queue: name.into(),
                            seq: m.seq,
                            doc: doc_json(&m.doc),
                            state: doc_json(&m.state),
                        });
                        if let Some(d) = &m.doc.dedup_id {
                            let k = dedup_key(&q.config, m.doc.group_id.as_deref(), d);
                            if let Some(entry) = q.dedup.get(&k) {
                                ops.push(QueueOp::PutDedup {
                                    account_id: account.into(),
                                    queue: name.into(),
                                    key: k,
                                    expires: entry.expires,
                                    doc: doc_json(entry),
                                });
                            }
                        }
                        // Held in place (so FIFO order follows sequence numbers and a group is
                        // blocked behind it) but not receivable until its commit.
                        fresh.push((m.seq, m.state.visible_at));
                        let mut held = m;
                        held.state.visible_at = PENDING;
                        q.messages.insert(held.seq, held);
                    }
                    Ok(Prepared::Duplicate(out)) => results.push(Ok(out)),
                    Err(e) => results.push(Err(e)),
                }
            }
            let notify = slot.notify.clone();
            st.next_seq = next_seq;
            if ops.is_empty() {
                return Ok(results);
            }
            (self.writer.submit(ops), notify)
        };
        let committed = matches!(rx.await, Ok(Ok(())));
        let mut st = self.lock();
        let Some(slot) = st.queues.get_mut(&key(account, name)) else {
            // Deleted while the send was committing: the delete removed the rows too.
            return Err(QueueError::NoSuchQueue);
        };
        let q = &mut slot.queue;
        if !committed {
            // Nothing was stored: the messages go, and their deduplication ids with them.
            for (seq, _) in &fresh {
                if let Some(m) = q.messages.remove(seq)
                    && let Some(d) = &m.doc.dedup_id
                {
                    q.dedup
                        .remove(&dedup_key(&q.config, m.doc.group_id.as_deref(), d));
                }
            }
            return Err(QueueError::Internal);
        }
        // A purge while committing removed them here and (after the insert) in the database.
        for (seq, visible_at) in fresh {
            if let Some(m) = q.messages.get_mut(&seq) {
                m.state.visible_at = visible_at;
            }
        }
        drop(st);
        notify.notify_waiters();
        Ok(results)
    }

    /// Receives messages, waiting up to the wait time (the queue's
    /// `ReceiveMessageWaitTimeSeconds` when not given) for the first to arrive.
    pub async fn receive(
        &self,
        account: &str,
        name: &str,
        input: ReceiveInput,
    ) -> Result<Vec<Delivered>, QueueError> {
        let start = tokio::time::Instant::now();
        let mut wait = None;
        loop {
            let (notified, until) = {
                let mut st = self.lock();
                let slot = st
                    .queues
                    .get_mut(&key(account, name))
                    .ok_or(QueueError::NoSuchQueue)?;
                let wait_s = *wait.get_or_insert_with(|| {
                    input
                        .wait_seconds
                        .unwrap_or(slot.queue.config.num("ReceiveMessageWaitTimeSeconds") as u32)
                        .min(MAX_WAIT_SECONDS)
                });
                let now = now_ms();
                let got = self.receive_now(&mut st, account, name, &input, now);
                if !got.is_empty() {
                    return Ok(got);
                }
                let slot = st
                    .queues
                    .get(&key(account, name))
                    .ok_or(QueueError::NoSuchQueue)?;
                let deadline = start + Duration::from_secs(u64::from(wait_s));
                if tokio::time::Instant::now() >= deadline
                    || self.stopping.load(std::sync::atomic::Ordering::SeqCst)
                {
                    return Ok(Vec::new());
                }
                let next_visible = slot
                    .queue
                    .next_visible(now)
                    .map(|t| tokio::time::Instant::now() + Duration::from_millis(t - now));
                let mut notified = Box::pin(slot.notify.clone().notified_owned());
                // Registered before the lock is released, so an arrival between now and the
                // wait below is not missed.
                notified.as_mut().enable();
                (notified, next_visible.map_or(deadline, |t| t.min(deadline)))
            };
            let _ = tokio::time::timeout_at(until, notified).await;
        }
    }

    fn receive_now(
        &self,
        st: &mut State,
        account: &str,
        name: &str,
        input: &ReceiveInput,
        now: u64,
    ) -> Vec<Delivered> {
        let Some(slot) = st.queues.get_mut(&key(account, name)) else {
            return Vec::new();
        };
        let visibility = input
            .visibility_timeout
            .map(u64::from)
            .unwrap_or_else(|| slot.queue.config.num("VisibilityTimeout"));
        let source_arn = self.arn(account, name);
        let dlq = slot
            .queue
            .config
            .redrive()
            .and_then(|r| parse_arn(&r.dead_letter_target_arn));
        let out = slot.queue.receive(
            input.max.clamp(1, 10),
            visibility * 1000,
            now,
            input.attempt_id.as_deref(),
            Receipts::token,
        );
        let mut ops = Vec::new();
        for seq in &out.expired {
            ops.push(QueueOp::DeleteMessage {
                account_id: account.into(),
                queue: name.into(),
                seq: *seq,
            });
        }
        let mut delivered = Vec::with_capacity(out.received.len());
        for r in out.received {
            ops.push(QueueOp::SetMessageState {
                account_id: account.into(),
                queue: name.into(),
                seq: r.message.seq,
                state: doc_json(&r.message.state),
            });
            delivered.push(Delivered {
                receipt_handle: self.receipts.handle(account, name, r.message.seq, &r.token),
                message: r.message,
            });
        }
        if !out.dead.is_empty() {
            let target = dlq.filter(|(a, _)| a == account);
            let mut next_seq = st.next_seq;
            let mut moved = Vec::new();
            for mut m in out.dead {
                ops.push(QueueOp::DeleteMessage {
                    account_id: account.into(),
                    queue: name.into(),
                    seq: m.seq,
                });
                if let Some((da, dn)) = &target
                    && st.queues.contains_key(&key(da, dn))
                {
                    m.seq = next_seq;
                    next_seq += 1;
                    m.doc.dead_letter_source = Some(source_arn.clone());
                    m.state = MessageState {
                        visible_at: now,
                        ..MessageState::default()
                    };
                    ops.push(QueueOp::PutMessage {
                        account_id: da.clone(),
                        queue: dn.clone(),
                        seq: m.seq,
                        doc: doc_json(&m.doc),
                        state: doc_json(&m.state),
                    });
                    moved.push(m);
                } else {
                    // SQS keeps a message whose dead-letter queue is gone; so do we.
                    tracing::warn!(queue = %name, "dead-letter queue missing; message kept");
                    m.state.receive_count = 0;
                    ops.pop();
                    if let Some(slot) = st.queues.get_mut(&key(account, name)) {
                        slot.queue.messages.insert(m.seq, m);
                    }
                }
            }
            st.next_seq = next_seq;
            if let Some((da, dn)) = target
                && let Some(dslot) = st.queues.get_mut(&key(&da, &dn))
            {
                for m in moved {
                    dslot.queue.messages.insert(m.seq, m);
                }
                dslot.notify.notify_waiters();
            }
        }
        self.writer.persist(ops);
        delivered
    }

    /// Deletes the message a receipt handle names. A genuine but stale handle succeeds without
    /// deleting anything, as on SQS.
    pub async fn delete(&self, account: &str, name: &str, handle: &str) -> Result<(), QueueError> {
        self.delete_batch(account, name, &[handle])
            .await?
            .pop()
            .unwrap_or(Err(QueueError::Internal))
    }

    /// Deletes the messages of several receipt handles with one commit; each handle succeeds
    /// or fails on its own.
    pub async fn delete_batch(
        &self,
        account: &str,
        name: &str,
        handles: &[&str],
    ) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        let mut results = Vec::with_capacity(handles.len());
        let mut ops = Vec::new();
        {
            let mut st = self.lock();
            let slot = st
                .queues
                .get_mut(&key(account, name))
                .ok_or(QueueError::NoSuchQueue)?;
            for handle in handles {
                let Some(receipt) = self.receipts.open(account, name, handle) else {
                    results.push(Err(QueueError::ReceiptHandleIsInvalid(handle.to_string())));
                    continue;
                };
                if slot.queue.delete(receipt.seq, &receipt.token) {
                    ops.push(QueueOp::DeleteMessage {
                        account_id: account.into(),
                        queue: name.into(),
                        seq: receipt.seq,
                    });
                }
                results.push(Ok(()));
            }
        }
        if !ops.is_empty() {
            match self.writer.submit(ops).await {
                Ok(Ok(())) => {}
                _ => return Err(QueueError::Internal),
            }
        }
        Ok(results)
    }

    /// Changes the visibility timeout of a received message, counted from now.
    pub fn change_visibility(
        &self,
        account: &str,
        name: &str,
        handle: &str,
        timeout_seconds: u32,
    ) -> Result<(), QueueError> {
        if timeout_seconds > 43_200 {
            return Err(QueueError::InvalidParameterValue(format!(
                "Value {timeout_seconds} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided."
            )));
        }
        let receipt = self
            .receipts
            .open(account, name, handle)
            .ok_or_else(|| QueueError::ReceiptHandleIsInvalid(handle.to_string()))?;
        let mut st = self.lock();
        let slot = st
            .queues
            .get_mut(&key(account, name))
            .ok_or(QueueError::NoSuchQueue)?;
        let state = slot.queue.change_visibility(
            receipt.seq,
            &receipt.token,
            u64::from(timeout_seconds) * 1000,
            now_ms(),
        )?;
        slot.notify.notify_waiters();
        self.writer.persist(vec![QueueOp::SetMessageState {
            account_id: account.into(),
            queue: name.into(),
            seq: receipt.seq,
            state: doc_json(&state),
        }]);
        Ok(())
    }

    /// Starts moving the messages of a dead-letter queue back to their source queues (or to
    /// `destination_arn`), at most `max_per_second` a second when given. The task runs in the
    /// background (`RUNNING`, then `COMPLETED`, `CANCELLED` or `FAILED`); each step is
    /// committed before the next. Tasks are kept in memory: a restart forgets them, never the
    /// messages they moved.
    pub fn start_move_task(
        self: &Arc<Self>,
        account: &str,
        source_arn: &str,
        destination_arn: Option<&str>,
        max_per_second: Option<u32>,
    ) -> Result<String, QueueError> {
        let not_found = |what: &str| {
            QueueError::ResourceNotFound(format!(
                "The resource that you specified for the {what} parameter doesn't exist."
            ))
        };
        let src = parse_arn(source_arn).ok_or_else(|| not_found("SourceArn"))?;
        if src.0 != account {
            return Err(not_found("SourceArn"));
        }
        let dest = match destination_arn {
            Some(d) => Some(parse_arn(d).ok_or_else(|| not_found("DestinationArn"))?),
            None => None,
        };
        if let Some(p) = max_per_second
            && !(1..=500).contains(&p)
        {
            return Err(QueueError::InvalidParameterValue(format!(
                "Value {p} for parameter MaxNumberOfMessagesPerSecond is invalid. Reason: must be between 1 and 500."
            )));
        }
        if dest.as_ref() == Some(&src) {
            return Err(QueueError::InvalidParameterValue(
                "Destination queue must be different from the source queue.".into(),
            ));
        }
        let now = now_ms();
        let handle = {
            let mut st = self.lock();
            let Some(slot) = st.queues.get(&src) else {
                return Err(not_found("SourceArn"));
            };
            let to_move = slot
                .queue
                .messages
                .values()
                .filter(|m| m.state.visible_at <= now)
                .count() as u64;
            let is_dlq = st.queues.values().any(|s| {
                s.queue
                    .config
                    .redrive()
                    .is_some_and(|r| r.dead_letter_target_arn == source_arn)
            });
            if !is_dlq {
                return Err(QueueError::InvalidParameterValue(
                    "Source queue must be configured as a Dead Letter Queue.".into(),
                ));
            }
            if let Some(d) = &dest
                && !st.queues.contains_key(d)
            {
                return Err(not_found("DestinationArn"));
            }
            if st
                .tasks
                .iter()
                .any(|t| t.source_arn == source_arn && matches!(t.status, "RUNNING" | "CANCELLING"))
            {
                return Err(QueueError::UnsupportedOperation(
                    "There is already a task running. Only one active task is allowed for a source queue arn at a given time.".into(),
                ));
            }
            let handle = uuid::Uuid::new_v4().to_string();
            st.tasks.push(MoveTask {
                handle: handle.clone(),
                source_arn: source_arn.to_string(),
                destination_arn: destination_arn.map(str::to_string),
                status: "RUNNING",
                moved: 0,
                to_move,
                started: now,
                max_per_second,
                failure: None,
            });
            handle
        };
        let me = Arc::clone(self);
        let h = handle.clone();
        tokio::spawn(async move { me.run_move_task(&h, src, dest, max_per_second).await });
        Ok(handle)
    }

    /// The body of a move task: a step per second (rate-limited) or as fast as commits go.
    async fn run_move_task(
        &self,
        handle: &str,
        src: Key,
        dest: Option<Key>,
        per_second: Option<u32>,
    ) {
        let chunk = per_second.map_or(500, |p| p as usize);
        loop {
            let (rx, done) = {
                let mut st = self.lock();
                let Some(i) = st.tasks.iter().position(|t| t.handle == handle) else {
                    return;
                };
                if st.tasks[i].status == "CANCELLING" {
                    st.tasks[i].status = "CANCELLED";
                    return;
                }
                let Some(step) = move_some(&mut st, &src, dest.as_ref(), chunk, now_ms()) else {
                    st.tasks[i].status = "FAILED";
                    st.tasks[i].failure = Some("AWS.SimpleQueueService.NonExistentQueue".into());
                    return;
                };
                let task = &mut st.tasks[i];
                task.moved += step.moved;
                let done = step.left == 0;
                if done {
                    if step.stuck > 0 {
                        // Messages whose source queue is gone stay in the dead-letter queue.
                        task.status = "FAILED";
                        task.failure = Some("AWS.SimpleQueueService.NonExistentQueue".into());
                    } else {
                        task.status = "COMPLETED";
                    }
                }
                (self.writer.submit(step.ops), done)
            };
            if !matches!(rx.await, Ok(Ok(()))) {
                let mut st = self.lock();
                if let Some(t) = st.tasks.iter_mut().find(|t| t.handle == handle) {
                    t.status = "FAILED";
                    t.failure = Some("InternalError".into());
                }
                return;
            }
            if done {
                return;
            }
            if per_second.is_some() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            } else {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Asks a running move task to stop; returns how many messages it had moved.
    pub fn cancel_move_task(&self, account: &str, handle: &str) -> Result<u64, QueueError> {
        let mut st = self.lock();
        let task = st
            .tasks
            .iter_mut()
            .find(|t| {
                t.handle == handle && parse_arn(&t.source_arn).is_some_and(|(a, _)| a == account)
            })
            .ok_or_else(|| QueueError::ResourceNotFound("Task does not exist.".into()))?;
        if task.status != "RUNNING" {
            return Err(QueueError::UnsupportedOperation(format!(
                "Only active tasks can be cancelled. The task is {}.",
                task.status
            )));
        }
        task.status = "CANCELLING";
        Ok(task.moved)
    }

    /// The move tasks of a source queue, newest first.
    pub fn list_move_tasks(
        &self,
        account: &str,
        source_arn: &str,
        max: usize,
    ) -> Result<Vec<MoveTask>, QueueError> {
        let (sa, sn) = parse_arn(source_arn).ok_or_else(|| {
            QueueError::ResourceNotFound(
                "The resource that you specified for the SourceArn parameter doesn't exist.".into(),
            )
        })?;
        let st = self.lock();
        if sa != account || !st.queues.contains_key(&key(&sa, &sn)) {
            return Err(QueueError::ResourceNotFound(
                "The resource that you specified for the SourceArn parameter doesn't exist.".into(),
            ));
        }
        Ok(st
            .tasks
            .iter()
            .rev()
            .filter(|t| t.source_arn == source_arn)
            .take(max.clamp(1, 10))
            .cloned()
            .collect())
    }
}

/// One step of a move task.
struct MoveStep {
    ops: Vec<QueueOp>,
    moved: u64,
    /// Visible messages with nowhere to go (their source queue is gone).
    stuck: u64,
    /// Movable messages left after this step.
    left: u64,
}

/// Moves up to `limit` visible messages of `src` to `dest` (or each to the queue it was
/// dead-lettered from) as new messages (a fresh receive count); `None` when `src` is gone.
fn move_some(
    st: &mut State,
    src: &Key,
    dest: Option<&Key>,
    limit: usize,
    now: u64,
) -> Option<MoveStep> {
    let slot = st.queues.get(src)?;
    let mut visible = 0u64;
    let mut candidates: Vec<(u64, Key)> = Vec::new();
    for m in slot.queue.messages.values() {
        if m.state.visible_at > now {
            continue;
        }
        visible += 1;
        let target = match dest {
            Some(d) => Some(d.clone()),
            None => m.doc.dead_letter_source.as_deref().and_then(parse_arn),
        };
        if let Some(t) = target.filter(|t| t != src && st.queues.contains_key(t)) {
            candidates.push((m.seq, t));
        }
    }
    let stuck = visible - candidates.len() as u64;
    let take = candidates.len().min(limit);
    let left = (candidates.len() - take) as u64;
    let mut ops = Vec::new();
    for (seq, target) in candidates.into_iter().take(take) {
        let Some(mut m) = st
            .queues
            .get_mut(src)
            .and_then(|s| s.queue.messages.remove(&seq))
        else {
            continue;
        };
        ops.push(QueueOp::DeleteMessage {
            account_id: src.0.clone(),
            queue: src.1.clone(),
            seq,
        });
        m.seq = st.next_seq;
        st.next_seq += 1;
        m.doc.dead_letter_source = None;
        m.state = MessageState {
            visible_at: now,
            ..MessageState::default()
        };
        ops.push(QueueOp::PutMessage {
            account_id: target.0.clone(),
            queue: target.1.clone(),
            seq: m.seq,
            doc: doc_json(&m.doc),
            state: doc_json(&m.state),
        });
        if let Some(t) = st.queues.get_mut(&target) {
            t.queue.messages.insert(m.seq, m);
            t.notify.notify_waiters();
        }
    }
    Some(MoveStep {
        ops,
        moved: take as u64,
        stuck,
        left,
    })
}

/// A redrive policy must name an existing queue of the same account and type.
fn check_redrive_target(
    st: &State,
    account: &str,
    attributes: &BTreeMap<String, String>,
    fifo: bool,
) -> Result<(), QueueError> {
    let Some(policy) = attributes.get("RedrivePolicy").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let r = model::parse_redrive(policy)?;
    let invalid = |why: &str| {
        QueueError::InvalidParameterValue(format!(
            "Value {policy} for parameter RedrivePolicy is invalid. Reason: {why}"
        ))
    };
    let (a, n) = parse_arn(&r.dead_letter_target_arn)
        .ok_or_else(|| invalid("Invalid value for deadLetterTargetArn."))?;
    match st.queues.get(&(a.clone(), n)) {
        Some(dlq) if a == account => {
            if dlq.queue.config.fifo() != fifo {
                return Err(invalid(
                    "Dead-letter queue must be same type of queue as the source.",
                ));
            }
            Ok(())
        }
        _ => Err(invalid("Dead letter target does not exist.")),
    }
}

/// How often expired messages are deleted (receives and counters skip them meanwhile).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// A thread that deletes expired messages until the queues are dropped.
fn start_sweeper(queues: std::sync::Weak<Queues>) {
    let spawned = std::thread::Builder::new()
        .name("queue-sweeper".into())
        .spawn(move || {
            loop {
                std::thread::sleep(SWEEP_EVERY);
                let Some(q) = queues.upgrade() else { break };
                let n = q.sweep_expired(now_ms());
                if n > 0 {
                    tracing::debug!(messages = n, "expired queue messages deleted");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "queue sweeper not started; expired messages go on receive");
    }
}

enum Prepared {
    Fresh(Box<Message>),
    Duplicate(SendOutput),
}

fn dedup_key(config: &QueueConfig, group: Option<&str>, dedup_id: &str) -> String {
    if config.get("DeduplicationScope").as_deref() == Some("messageGroup") {
        format!("{}\u{0}{dedup_id}", group.unwrap_or(""))
    } else {
        dedup_id.to_string()
    }
}

fn build_message(seq: u64, doc: MessageDoc, state: MessageState) -> Message {
    Message {
        seq,
        md5_body: md5_of_body(&doc.body),
        md5_attributes: md5_of_attributes(&doc.attributes),
        md5_system_attributes: md5_of_attributes(&doc.system_attributes),
        doc,
        state,
    }
}

fn output(m: &Message, fifo: bool) -> SendOutput {
    SendOutput {
        message_id: m.doc.id.clone(),
        md5_body: m.md5_body.clone(),
        md5_attributes: m.md5_attributes.clone(),
        md5_system_attributes: m.md5_system_attributes.clone(),
        sequence_number: fifo.then(|| format!("{:020}", m.seq)),
    }
}

fn id_param(name: &str, v: &str) -> Result<(), QueueError> {
    if v.is_empty() || v.len() > 128 || !v.chars().all(|c| c.is_ascii_graphic()) {
        return Err(QueueError::InvalidParameterValue(format!(
            "Value {v} for parameter {name} is invalid. Reason: {name} can only include alphanumeric and punctuation characters. 1 to 128 in length."
        )));
    }
    Ok(())
}

/// Checks one send and makes its message (or finds the earlier send it duplicates).
fn prepare(
    q: &mut Queue,
    input: SendInput,
    sender_id: &str,
    now: u64,
    next_seq: &mut u64,
) -> Result<Prepared, QueueError> {
    let fifo = q.config.fifo();
    if input.body.is_empty() {
        return Err(QueueError::MissingParameter("MessageBody".into()));
    }
    check_chars(&input.body)?;
    let max = q.config.num("MaximumMessageSize") as usize;
    let size = input.body.len()
        + input
            .attributes
            .iter()
            .map(|(k, v)| v.size(k))
            .sum::<usize>();
    if size > max {
        return Err(QueueError::InvalidParameterValue(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {max} bytes."
        )));
    }
    if input.attributes.len() > 10 {
        return Err(QueueError::InvalidParameterValue(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [10].",
            input.attributes.len()
        )));
    }
    for (k, v) in &input.attributes {
        v.validate(k)?;
    }
    for (k, v) in &input.system_attributes {
        if k != "AWSTraceHeader" {
            return Err(QueueError::InvalidParameterValue(format!(
                "Message system attribute name '{k}' is invalid."
            )));
        }
        if v.data_type != "String" || v.string.as_deref().is_none_or(str::is_empty) {
            return Err(QueueError::InvalidParameterValue(format!(
                "Message system attribute '{k}' must be of type 'String'."
            )));
        }
    }
    if let Some(d) = input.delay_seconds {
        if d > 900 {
            return Err(QueueError::InvalidParameterValue(format!(
                "Value {d} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
            )));
        }
        if fifo && d > 0 {
            return Err(QueueError::InvalidParameterValue(format!(
                "Value {d} for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type."
            )));
        }
    }
    let mut dedup_id = None;
    if fifo {
        let Some(g) = &input.group_id else {
            return Err(QueueError::MissingParameter("MessageGroupId".into()));
        };
        id_param("MessageGroupId", g)?;
        let d = match &input.dedup_id {
            Some(d) => {
                id_param("MessageDeduplicationId", d)?;
                d.clone()
            }
            None if q.config.content_dedup() => hex::encode(Sha256::digest(input.body.as_bytes())),
            None => {
                return Err(QueueError::InvalidParameterValue(
                    "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly".into(),
                ));
            }
        };
        let k = dedup_key(&q.config, Some(g), &d);
        if let Some(hit) = q.dedup_hit(&k, now) {
            return Ok(Prepared::Duplicate(SendOutput {
                message_id: hit.message_id,
                md5_body: md5_of_body(&input.body),
                md5_attributes: md5_of_attributes(&input.attributes),
                md5_system_attributes: md5_of_attributes(&input.system_attributes),
                sequence_number: Some(format!("{:020}", hit.seq)),
            }));
        }
        dedup_id = Some(d);
    } else if input.group_id.is_some() || input.dedup_id.is_some() {
        let which = if input.group_id.is_some() {
            "MessageGroupId"
        } else {
            "MessageDeduplicationId"
        };
        return Err(QueueError::InvalidParameterValue(format!(
            "Value for parameter {which} is invalid. Reason: The request include parameter that is not valid for this queue type."
        )));
    }
    let seq = *next_seq;
    *next_seq += 1;
    let delay = input
        .delay_seconds
        .map(u64::from)
        .unwrap_or_else(|| q.config.num("DelaySeconds"));
    let doc = MessageDoc {
        id: uuid::Uuid::new_v4().to_string(),
        body: input.body,
        attributes: input.attributes,
        system_attributes: input.system_attributes,
        sent: now,
        sender_id: sender_id.to_string(),
        group_id: input.group_id,
        dedup_id: dedup_id.clone(),
        dead_letter_source: None,
    };
    let m = build_message(
        seq,
        doc,
        MessageState {
            visible_at: now + delay * 1000,
            ..MessageState::default()
        },
    );
    if let Some(d) = dedup_id {
        let k = dedup_key(&q.config, m.doc.group_id.as_deref(), &d);
        q.dedup.insert(
            k,
            DedupEntry {
                expires: now + DEDUP_WINDOW_MS,
                message_id: m.doc.id.clone(),
                seq,
            },
        );
    }
    Ok(Prepared::Fresh(Box::new(m)))
}

/// Whether a queue policy has an `Allow` statement for `account` (by id, root ARN or `*`).
fn policy_allows(policy: &str, account: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else {
        return false;
    };
    let statements = match doc.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.clone(),
        Some(s @ serde_json::Value::Object(_)) => vec![s.clone()],
        _ => return false,
    };
    let root = format!("arn:aws:iam::{account}:root");
    let names = |v: &serde_json::Value| -> bool {
        let one = |s: &str| s == "*" || s == account || s == root;
        match v {
            serde_json::Value::String(s) => one(s),
            serde_json::Value::Array(a) => a.iter().any(|x| x.as_str().is_some_and(one)),
            serde_json::Value::Object(o) => o.get("AWS").is_some_and(|aws| match aws {
                serde_json::Value::String(s) => one(s),
                serde_json::Value::Array(a) => a.iter().any(|x| x.as_str().is_some_and(one)),
                _ => false,
            }),
            _ => false,
        }
    };
    statements.iter().any(|s| {
        s.get("Effect").and_then(|e| e.as_str()) == Some("Allow")
            && s.get("Principal").is_some_and(names)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCT: &str = "111122223333";

    fn body(s: &str) -> SendInput {
        SendInput {
            body: s.into(),
            ..SendInput::default()
        }
    }

    #[tokio::test]
    async fn send_receive_delete_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queues.db");
        {
            let qs = Queues::open(&path, "us-east-1").unwrap();
            qs.create_queue(ACCT, "q", BTreeMap::new(), BTreeMap::new())
                .unwrap();
            let r = qs
                .send(ACCT, "q", "AIDA", vec![body("one"), body("two")])
                .await
                .unwrap();
            assert!(r.iter().all(|x| x.is_ok()));
            let got = qs
                .receive(
                    ACCT,
                    "q",
                    ReceiveInput {
                        max: 1,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(got[0].message.doc.body, "one");
            qs.delete(ACCT, "q", &got[0].receipt_handle).await.unwrap();
        }
        let qs = Queues::open(&path, "us-east-1").unwrap();
        let got = qs
            .receive(
                ACCT,
                "q",
                ReceiveInput {
                    max: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let bodies: Vec<&str> = got.iter().map(|d| d.message.doc.body.as_str()).collect();
        assert_eq!(bodies, ["two"]);
    }

    #[tokio::test]
    async fn fifo_dedup_and_group_required() {
        let qs = Queues::in_memory("us-east-1").unwrap();
        let mut attrs = BTreeMap::new();
        attrs.insert("FifoQueue".to_string(), "true".to_string());
        attrs.insert("ContentBasedDeduplication".to_string(), "true".to_string());
        qs.create_queue(ACCT, "f.fifo", attrs, BTreeMap::new())
            .unwrap();
        let no_group = qs.send(ACCT, "f.fifo", "s", vec![body("x")]).await.unwrap();
        assert_eq!(
            no_group[0],
            Err(QueueError::MissingParameter("MessageGroupId".into()))
        );
        let g = |b: &str| SendInput {
            group_id: Some("g".into()),
            ..body(b)
        };
        let a = qs.send(ACCT, "f.fifo", "s", vec![g("same")]).await.unwrap();
        let b = qs.send(ACCT, "f.fifo", "s", vec![g("same")]).await.unwrap();
        assert_eq!(
            a[0].as_ref().unwrap().message_id,
            b[0].as_ref().unwrap().message_id
        );
        let got = qs
            .receive(
                ACCT,
                "f.fifo",
                ReceiveInput {
                    max: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
    }

    #[tokio::test]
    async fn dedup_outlives_a_restart_and_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queues.db");
        let g = |b: &str| SendInput {
            group_id: Some("g".into()),
            dedup_id: Some("once".into()),
            ..body(b)
        };
        let first = {
            let qs = Queues::open(&path, "us-east-1").unwrap();
            let mut attrs = BTreeMap::new();
            attrs.insert("FifoQueue".to_string(), "true".to_string());
            qs.create_queue(ACCT, "f.fifo", attrs, BTreeMap::new())
                .unwrap();
            let id = qs.send(ACCT, "f.fifo", "s", vec![g("a")]).await.unwrap()[0]
                .clone()
                .unwrap()
                .message_id;
            let got = qs
                .receive(
                    ACCT,
                    "f.fifo",
                    ReceiveInput {
                        max: 1,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            qs.delete(ACCT, "f.fifo", &got[0].receipt_handle)
                .await
                .unwrap();
            id
        };
        let qs = Queues::open(&path, "us-east-1").unwrap();
        let again = qs.send(ACCT, "f.fifo", "s", vec![g("a")]).await.unwrap()[0]
            .clone()
            .unwrap();
        assert_eq!(again.message_id, first);
        assert_eq!(
            qs.get_attributes(ACCT, "f.fifo", &["ApproximateNumberOfMessages".into()])
                .unwrap()["ApproximateNumberOfMessages"],
            "0"
        );
    }

    #[tokio::test]
    async fn forged_and_stale_receipts() {
        let qs = Queues::in_memory("us-east-1").unwrap();
        qs.create_queue(ACCT, "q", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        qs.send(ACCT, "q", "s", vec![body("x")]).await.unwrap();
        let got = qs
            .receive(
                ACCT,
                "q",
                ReceiveInput {
                    max: 1,
                    visibility_timeout: Some(0),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let stale = got[0].receipt_handle.clone();
        let again = qs
            .receive(
                ACCT,
                "q",
                ReceiveInput {
                    max: 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(matches!(
            qs.delete(ACCT, "q", "forged").await,
            Err(QueueError::ReceiptHandleIsInvalid(_))
        ));
        // Stale: succeeds, deletes nothing.
        qs.delete(ACCT, "q", &stale).await.unwrap();
        assert_eq!(
            qs.get_attributes(ACCT, "q", &["ApproximateNumberOfMessagesNotVisible".into()])
                .unwrap()["ApproximateNumberOfMessagesNotVisible"],
            "1"
        );
        qs.delete(ACCT, "q", &again[0].receipt_handle)
            .await
            .unwrap();
        assert_eq!(
            qs.get_attributes(ACCT, "q", &["All".into()]).unwrap()["ApproximateNumberOfMessagesNotVisible"],
            "0"
        );
    }

    #[tokio::test]
    async fn long_poll_wakes_on_arrival() {
        let qs = Queues::in_memory("us-east-1").unwrap();
        qs.create_queue(ACCT, "q", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        let waiter = {
            let qs = qs.clone();
            tokio::spawn(async move {
                qs.receive(
                    ACCT,
                    "q",
                    ReceiveInput {
                        max: 1,
                        wait_seconds: Some(20),
                        ..Default::default()
                    },
                )
                .await
            })
        };
        tokio::task::yield_now().await;
        qs.send(ACCT, "q", "s", vec![body("hello")]).await.unwrap();
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got.len(), 1, "the long poll returned without the message");
        assert_eq!(got[0].message.doc.body, "hello");
    }

    #[tokio::test]
    async fn retention_expiry_deletes_durably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queues.db");
        {
            let qs = Queues::open(&path, "us-east-1").unwrap();
            let mut attrs = BTreeMap::new();
            attrs.insert("MessageRetentionPeriod".to_string(), "60".to_string());
            qs.create_queue(ACCT, "q", attrs, BTreeMap::new()).unwrap();
            qs.send(ACCT, "q", "s", vec![body("old")]).await.unwrap();
            assert_eq!(qs.sweep_expired(now_ms()), 0);
            assert_eq!(qs.sweep_expired(now_ms() + 61_000), 1);
            qs.flush().await;
        }
        let qs = Queues::open(&path, "us-east-1").unwrap();
        assert_eq!(
            qs.get_attributes(ACCT, "q", &["ApproximateNumberOfMessages".into()])
                .unwrap()["ApproximateNumberOfMessages"],
            "0"
        );
        // Not merely hidden by the counters: the row is gone.
        assert_eq!(qs.sweep_expired(u64::MAX / 2), 0);
    }

    #[tokio::test]
    async fn move_task_returns_dead_letters_to_their_source() {
        let qs = Queues::in_memory("us-east-1").unwrap();
        qs.create_queue(ACCT, "dlq", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        let mut attrs = BTreeMap::new();
        attrs.insert(
            "RedrivePolicy".to_string(),
            format!(
                r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":1}}"#,
                qs.arn(ACCT, "dlq")
            ),
        );
        qs.create_queue(ACCT, "src", attrs, BTreeMap::new())
            .unwrap();
        qs.send(ACCT, "src", "s", vec![body("a"), body("b")])
            .await
            .unwrap();
        let rx = |max| ReceiveInput {
            max,
            visibility_timeout: Some(0),
            ..Default::default()
        };
        assert_eq!(qs.receive(ACCT, "src", rx(10)).await.unwrap().len(), 2);
        // Past maxReceiveCount: the next receive dead-letters both.
        assert!(qs.receive(ACCT, "src", rx(10)).await.unwrap().is_empty());
        let dlq_arn = qs.arn(ACCT, "dlq");
        qs.start_move_task(ACCT, &dlq_arn, None, None).unwrap();
        for _ in 0..1000 {
            if qs.list_move_tasks(ACCT, &dlq_arn, 1).unwrap()[0].status != "RUNNING" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let task = &qs.list_move_tasks(ACCT, &dlq_arn, 1).unwrap()[0];
        assert_eq!((task.status, task.moved, task.to_move), ("COMPLETED", 2, 2));
        let back = qs.receive(ACCT, "src", rx(10)).await.unwrap();
        let mut bodies: Vec<&str> = back.iter().map(|d| d.message.doc.body.as_str()).collect();
        bodies.sort();
        assert_eq!(bodies, ["a", "b"]);
        assert_eq!(back[0].message.state.receive_count, 1);
    }

    #[test]
    fn policies() {
        let p = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"sqs:SendMessage","Resource":"*"}]}"#;
        assert!(policy_allows(p, "444455556666"));
        assert!(!policy_allows(p, "777788889999"));
        assert!(!policy_allows("", "444455556666"));
    }
}
