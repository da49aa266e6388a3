//! One queue's messages in memory, and the visibility rules over them.
//!
//! Pure: every method takes the time as an argument and returns what changed, so the service
//! (which persists the changes and wakes long polls) and the unit tests drive the same code.
//! Messages are kept in send order (`seq`); a receive walks them in that order, skipping the
//! invisible ones. In a FIFO queue a message that is not visible (in flight or delayed) blocks
//! every later message of its group, which is what keeps a group's order.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::model::{MessageDoc, MessageState, QueueConfig};

/// `visible_at` of a message whose send is still being committed: never receivable, but it
/// holds its place (and, in a FIFO queue, blocks its group).
pub const PENDING: u64 = u64::MAX;

/// How long a FIFO deduplication id is remembered.
pub const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;
/// How long a `ReceiveRequestAttemptId` answers with the same messages.
pub const ATTEMPT_WINDOW_MS: u64 = 5 * 60 * 1000;

/// A message in a queue.
#[derive(Debug, Clone)]
pub struct Message {
    pub seq: u64,
    pub doc: MessageDoc,
    pub state: MessageState,
    pub md5_body: String,
    pub md5_attributes: Option<String>,
    pub md5_system_attributes: Option<String>,
}

/// A message handed out by a receive.
#[derive(Debug, Clone)]
pub struct Received {
    pub message: Message,
    /// The receive's token (bound into the receipt handle).
    pub token: String,
}

/// What a receive did.
#[derive(Debug, Default)]
pub struct ReceiveOutcome {
    pub received: Vec<Received>,
    /// Messages past `maxReceiveCount`, taken out for the dead-letter queue.
    pub dead: Vec<Message>,
    /// Messages past the retention period, dropped.
    pub expired: Vec<u64>,
}

/// An earlier send a FIFO deduplication id points at.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DedupEntry {
    pub expires: u64,
    pub message_id: String,
    pub seq: u64,
}

#[derive(Debug, Clone)]
struct Attempt {
    expires: u64,
    /// (seq, token) of each message the attempt received.
    taken: Vec<(u64, String)>,
}

/// One queue: its configuration and its messages.
#[derive(Debug, Default)]
pub struct Queue {
    pub config: QueueConfig,
    pub messages: BTreeMap<u64, Message>,
    /// FIFO: deduplication id → the send it belongs to.
    pub dedup: HashMap<String, DedupEntry>,
    attempts: HashMap<String, Attempt>,
    /// When the last purge ran (milliseconds), for `PurgeQueueInProgress`.
    pub last_purge: Option<u64>,
}

/// Counters of `GetQueueAttributes`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

impl Queue {
    pub fn new(config: QueueConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    fn retention_ms(&self) -> u64 {
        self.config.num("MessageRetentionPeriod") * 1000
    }

    /// The deduplication entry for a send, if one is still live.
    pub fn dedup_hit(&mut self, key: &str, now: u64) -> Option<DedupEntry> {
        self.dedup.retain(|_, e| e.expires > now);
        self.dedup.get(key).cloned()
    }

    /// Takes up to `max` visible messages and makes them invisible for `visibility_ms`.
    /// `token` makes a fresh receipt token for each.
    pub fn receive(
        &mut self,
        max: usize,
        visibility_ms: u64,
        now: u64,
        attempt_id: Option<&str>,
        mut token: impl FnMut() -> String,
    ) -> ReceiveOutcome {
        let mut out = ReceiveOutcome::default();
        let fifo = self.config.fifo();
        if let Some(id) = attempt_id.filter(|_| fifo) {
            self.attempts.retain(|_, a| a.expires > now);
            if let Some(a) = self.attempts.get(id) {
                // The same attempt again (a retried request): the same messages with the same
                // handles, as long as none of them was received by someone else since.
                let same: Option<Vec<Received>> = a
                    .taken
                    .iter()
                    .map(|(seq, tok)| {
                        self.messages
                            .get(seq)
                            .filter(|m| {
                                m.state.token.as_deref() == Some(tok) && m.state.visible_at > now
                            })
                            .map(|m| Received {
                                message: m.clone(),
                                token: tok.clone(),
                            })
                    })
                    .collect();
                if let Some(same) = same {
                    out.received = same;
                    return out;
                }
            }
        }
        let retention = self.retention_ms();
        let redrive = self.config.redrive();
        let mut blocked: HashSet<String> = HashSet::new();
        let mut taken_groups: HashSet<String> = HashSet::new();
        let mut dead = Vec::new();
        for (seq, m) in self.messages.iter_mut() {
            if out.received.len() >= max {
                break;
            }
            if now >= m.doc.sent + retention {
                out.expired.push(*seq);
                continue;
            }
            let group = m.doc.group_id.clone();
            if fifo {
                let g = group.clone().unwrap_or_default();
                if blocked.contains(&g) {
                    continue;
                }
                if m.state.visible_at > now {
                    blocked.insert(g);
                    continue;
                }
            } else if m.state.visible_at > now {
                continue;
            }
            if let Some(r) = &redrive
                && m.state.receive_count >= r.max_receive_count
            {
                dead.push(*seq);
                continue;
            }
            let tok = token();
            m.state.visible_at = now + visibility_ms;
            m.state.receive_count += 1;
            m.state.first_receive.get_or_insert(now);
            m.state.token = Some(tok.clone());
            if let Some(g) = group {
                taken_groups.insert(g);
            }
            out.received.push(Received {
                message: m.clone(),
                token: tok,
            });
        }
        for seq in &out.expired {
            self.messages.remove(seq);
        }
        for seq in dead {
            if let Some(m) = self.messages.remove(&seq) {
                out.dead.push(m);
            }
        }
        if let Some(id) = attempt_id.filter(|_| fifo) {
            self.attempts.insert(
                id.to_string(),
                Attempt {
                    expires: now + ATTEMPT_WINDOW_MS,
                    taken: out
                        .received
                        .iter()
                        .map(|r| (r.message.seq, r.token.clone()))
                        .collect(),
                },
            );
        }
        out
    }

    /// The message a receipt (seq, token) names, if that receipt is still its latest.
    fn current(&self, seq: u64, token: &str) -> Option<&Message> {
        self.messages
            .get(&seq)
            .filter(|m| m.state.token.as_deref() == Some(token))
    }

    /// Deletes the message of a receipt. `false` when the receipt is stale (the message is
    /// gone or was received again since): SQS then succeeds without deleting anything.
    pub fn delete(&mut self, seq: u64, token: &str) -> bool {
        if self.current(seq, token).is_some() {
            self.messages.remove(&seq);
            true
        } else {
            false
        }
    }

    /// Sets a received message's visibility timeout, counted from `now`. Errors when the
    /// receipt is stale or the message is no longer in flight.
    pub fn change_visibility(
        &mut self,
        seq: u64,
        token: &str,
        visibility_ms: u64,
        now: u64,
    ) -> Result<MessageState, crate::QueueError> {
        let in_flight = match self.current(seq, token) {
            None => return Err(crate::QueueError::InvalidParameterValue(
                "Value for parameter ReceiptHandle is invalid. Reason: Message does not exist or is not available for visibility timeout change.".into(),
            )),
            Some(m) => m.state.visible_at > now,
        };
        if !in_flight {
            return Err(crate::QueueError::MessageNotInflight);
        }
        let m = self.messages.get_mut(&seq).expect("checked above");
        m.state.visible_at = now + visibility_ms;
        Ok(m.state.clone())
    }

    /// The counters of GetQueueAttributes.
    pub fn counts(&self, now: u64) -> Counts {
        let retention = self.retention_ms();
        let mut c = Counts::default();
        for m in self.messages.values() {
            if now >= m.doc.sent + retention || m.state.visible_at == PENDING {
                continue;
            }
            if m.state.visible_at <= now {
                c.visible += 1;
            } else if m.state.receive_count > 0 {
                c.in_flight += 1;
            } else {
                c.delayed += 1;
            }
        }
        c
    }

    /// Drops the messages past the retention period; returns their sequence numbers.
    pub fn expire(&mut self, now: u64) -> Vec<u64> {
        let retention = self.retention_ms();
        let gone: Vec<u64> = self
            .messages
            .values()
            .filter(|m| now >= m.doc.sent + retention)
            .map(|m| m.seq)
            .collect();
        for seq in &gone {
            self.messages.remove(seq);
        }
        gone
    }

    /// The earliest time after `now` at which a message becomes visible (a long poll's wake-up).
    pub fn next_visible(&self, now: u64) -> Option<u64> {
        self.messages
            .values()
            .map(|m| m.state.visible_at)
            .filter(|&t| t > now && t != PENDING)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, group: Option<&str>, visible_at: u64) -> Message {
        Message {
            seq,
            doc: MessageDoc {
                id: format!("m{seq}"),
                body: format!("body {seq}"),
                attributes: BTreeMap::new(),
                system_attributes: BTreeMap::new(),
                sent: 0,
                sender_id: "s".into(),
                group_id: group.map(str::to_string),
                dedup_id: None,
                dead_letter_source: None,
            },
            state: MessageState {
                visible_at,
                ..MessageState::default()
            },
            md5_body: String::new(),
            md5_attributes: None,
            md5_system_attributes: None,
        }
    }

    fn queue(fifo: bool) -> Queue {
        let mut c = QueueConfig::default();
        if fifo {
            c.attributes.insert("FifoQueue".into(), "true".into());
        }
        Queue::new(c)
    }

    fn tokens() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("t{n}")
        }
    }

    fn seqs(o: &ReceiveOutcome) -> Vec<u64> {
        o.received.iter().map(|r| r.message.seq).collect()
    }

    #[test]
    fn visibility_hides_then_returns_a_message() {
        let mut q = queue(false);
        q.messages.insert(1, msg(1, None, 0));
        let o = q.receive(10, 30_000, 1_000, None, tokens());
        assert_eq!(seqs(&o), [1]);
        assert!(
            q.receive(10, 30_000, 30_999, None, tokens())
                .received
                .is_empty()
        );
        assert_eq!(q.counts(30_999).in_flight, 1);
        let again = q.receive(10, 30_000, 31_000, None, || "second".to_string());
        assert_eq!(seqs(&again), [1]);
        assert_eq!(again.received[0].message.state.receive_count, 2);
        // The first receipt is stale now: deleting with it deletes nothing.
        assert!(!q.delete(1, &o.received[0].token));
        assert!(q.delete(1, &again.received[0].token));
        assert!(q.messages.is_empty());
    }

    #[test]
    fn delayed_messages_wait_and_count_as_delayed() {
        let mut q = queue(false);
        q.messages.insert(1, msg(1, None, 5_000));
        assert_eq!(
            q.counts(0),
            Counts {
                visible: 0,
                in_flight: 0,
                delayed: 1
            }
        );
        assert!(q.receive(10, 1, 4_999, None, tokens()).received.is_empty());
        assert_eq!(q.next_visible(0), Some(5_000));
        assert_eq!(seqs(&q.receive(10, 1, 5_000, None, tokens())), [1]);
    }

    #[test]
    fn change_visibility_rules() {
        let mut q = queue(false);
        q.messages.insert(1, msg(1, None, 0));
        let tok = q.receive(1, 30_000, 0, None, tokens()).received[0]
            .token
            .clone();
        q.change_visibility(1, &tok, 0, 10).unwrap();
        // Visible again: no longer in flight.
        assert_eq!(
            q.change_visibility(1, &tok, 5, 10),
            Err(crate::QueueError::MessageNotInflight)
        );
        assert!(q.change_visibility(1, "forged", 5, 10).is_err());
        assert_eq!(seqs(&q.receive(1, 30_000, 10, None, tokens())), [1]);
    }

    #[test]
    fn fifo_group_blocked_while_a_message_is_in_flight() {
        let mut q = queue(true);
        q.messages.insert(1, msg(1, Some("a"), 0));
        q.messages.insert(2, msg(2, Some("a"), 0));
        q.messages.insert(3, msg(3, Some("b"), 0));
        let first = q.receive(1, 30_000, 0, None, tokens());
        assert_eq!(seqs(&first), [1]);
        // Group a is blocked behind message 1; b is free.
        let second = q.receive(10, 30_000, 0, None, tokens());
        assert_eq!(seqs(&second), [3]);
        assert!(q.delete(1, &first.received[0].token));
        assert_eq!(seqs(&q.receive(10, 30_000, 0, None, tokens())), [2]);
    }

    #[test]
    fn fifo_receive_takes_a_group_in_order() {
        let mut q = queue(true);
        for s in 1..=3 {
            q.messages.insert(s, msg(s, Some("g"), 0));
        }
        assert_eq!(seqs(&q.receive(10, 30_000, 0, None, tokens())), [1, 2, 3]);
    }

    #[test]
    fn fifo_attempt_id_repeats_the_same_answer() {
        let mut q = queue(true);
        q.messages.insert(1, msg(1, Some("g"), 0));
        let a = q.receive(10, 30_000, 0, Some("try-1"), tokens());
        let b = q.receive(10, 30_000, 100, Some("try-1"), tokens());
        assert_eq!(seqs(&a), seqs(&b));
        assert_eq!(a.received[0].token, b.received[0].token);
        assert!(
            q.receive(10, 30_000, 100, Some("try-2"), tokens())
                .received
                .is_empty()
        );
    }

    #[test]
    fn a_message_being_committed_holds_its_groups_place() {
        let mut q = queue(true);
        q.messages.insert(1, msg(1, Some("g"), PENDING));
        q.messages.insert(2, msg(2, Some("g"), 0));
        q.messages.insert(3, msg(3, Some("h"), 0));
        assert_eq!(seqs(&q.receive(10, 30_000, 0, None, tokens())), [3]);
        assert_eq!(q.next_visible(0), Some(30_000));
        assert_eq!(
            q.counts(0),
            Counts {
                visible: 1,
                in_flight: 1,
                delayed: 0
            }
        );
    }

    #[test]
    fn dedup_window_is_five_minutes() {
        let mut q = queue(true);
        q.dedup.insert(
            "d".into(),
            DedupEntry {
                expires: DEDUP_WINDOW_MS,
                message_id: "m".into(),
                seq: 1,
            },
        );
        assert!(q.dedup_hit("d", DEDUP_WINDOW_MS - 1).is_some());
        assert!(q.dedup_hit("d", DEDUP_WINDOW_MS).is_none());
    }

    #[test]
    fn redrive_after_max_receive_count() {
        let mut q = queue(false);
        q.config.attributes.insert(
            "RedrivePolicy".into(),
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:111122223333:dlq","maxReceiveCount":2}"#.into(),
        );
        q.messages.insert(1, msg(1, None, 0));
        assert_eq!(seqs(&q.receive(1, 0, 0, None, tokens())), [1]);
        assert_eq!(seqs(&q.receive(1, 0, 0, None, tokens())), [1]);
        let third = q.receive(1, 0, 0, None, tokens());
        assert!(third.received.is_empty());
        assert_eq!(third.dead.len(), 1);
        assert!(q.messages.is_empty());
    }

    #[test]
    fn retention_expiry_drops() {
        let mut q = queue(false);
        q.config
            .attributes
            .insert("MessageRetentionPeriod".into(), "60".into());
        q.messages.insert(1, msg(1, None, 0));
        assert_eq!(q.counts(59_999).visible, 1);
        let o = q.receive(10, 30_000, 60_000, None, tokens());
        assert_eq!(o.expired, [1]);
        assert!(q.messages.is_empty());
    }
}
