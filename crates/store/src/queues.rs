//! Durable storage of queues and their messages (the SQS-compatible queue service).
//!
//! A database of its own (`queues.db` beside `updraft.db`): queue traffic is write-heavy and
//! group-committed by one writer, so it never contends with the control plane's connection for
//! SQLite's single writer lock. Like the rest of this crate it knows nothing of SQS: a queue is
//! an opaque document keyed by (account, name), a message an opaque document plus a small,
//! separately updated `state` (what a receive changes), keyed by (account, queue, seq), so a
//! receive rewrites a few bytes rather than the message body.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queues (
    account_id TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (account_id, name));
CREATE TABLE IF NOT EXISTS messages (
    account_id TEXT NOT NULL, queue TEXT NOT NULL, seq INTEGER NOT NULL,
    doc TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (account_id, queue, seq));
CREATE TABLE IF NOT EXISTS dedup (
    account_id TEXT NOT NULL, queue TEXT NOT NULL, key TEXT NOT NULL,
    expires INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (account_id, queue, key));
";

/// One change to the queue database; a batch of them commits atomically.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueOp {
    /// Insert or replace a process-wide setting.
    PutMeta { key: String, value: String },
    /// Insert or replace a queue's document.
    PutQueue {
        account_id: String,
        name: String,
        doc: String,
    },
    /// Remove a queue and every message in it.
    DeleteQueue { account_id: String, name: String },
    /// Insert a message.
    PutMessage {
        account_id: String,
        queue: String,
        seq: u64,
        doc: String,
        state: String,
    },
    /// Replace a message's state.
    SetMessageState {
        account_id: String,
        queue: String,
        seq: u64,
        state: String,
    },
    /// Remove a message.
    DeleteMessage {
        account_id: String,
        queue: String,
        seq: u64,
    },
    /// Remove every message of a queue.
    PurgeQueue { account_id: String, queue: String },
    /// Insert or replace a deduplication record that lapses at `expires` (milliseconds).
    PutDedup {
        account_id: String,
        queue: String,
        key: String,
        expires: u64,
        doc: String,
    },
    /// Remove the deduplication records that lapsed before `now` (milliseconds).
    DeleteLapsedDedup { now: u64 },
}

/// A stored deduplication record.
#[derive(Debug, Clone, PartialEq)]
pub struct DedupRow {
    pub account_id: String,
    pub queue: String,
    pub key: String,
    pub expires: u64,
    pub doc: String,
}

/// A stored queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRow {
    pub account_id: String,
    pub name: String,
    pub doc: String,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub account_id: String,
    pub queue: String,
    pub seq: u64,
    pub doc: String,
    pub state: String,
}

/// Everything the queue service loads at start-up.
#[derive(Debug, Default, Clone)]
pub struct QueueSnapshot {
    pub queues: Vec<QueueRow>,
    /// In `seq` order within each queue.
    pub messages: Vec<MessageRow>,
    pub dedup: Vec<DedupRow>,
}

/// The SQLite queue database.
pub struct QueueDb {
    conn: Mutex<Connection>,
}

impl QueueDb {
    /// Opens (creating if needed) the database file and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(crate::sqlite::open_wal(Some(path))?)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(crate::sqlite::open_wal(None)?)
    }

    // As for the main database, a WAL commit under NORMAL survives the process being killed
    // (the acknowledged-send guarantee).
    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.execute_batch(SCHEMA).map_err(StoreError::Migrate)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    /// Applies all operations in one transaction, in order.
    pub fn apply(&self, ops: &[QueueOp]) -> Result<(), StoreError> {
        crate::sqlite::apply_all(&mut *self.lock()?, ops, apply_one)
    }

    /// Reads one setting.
    pub fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock()?;
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Loads every queue and message.
    pub fn snapshot(&self) -> Result<QueueSnapshot, StoreError> {
        let conn = self.lock()?;
        let mut snap = QueueSnapshot::default();
        let mut stmt = conn.prepare("SELECT account_id, name, doc FROM queues")?;
        snap.queues = stmt
            .query_map([], |r| {
                Ok(QueueRow {
                    account_id: r.get(0)?,
                    name: r.get(1)?,
                    doc: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare(
            "SELECT account_id, queue, seq, doc, state FROM messages
             ORDER BY account_id, queue, seq",
        )?;
        snap.messages = stmt
            .query_map([], |r| {
                Ok(MessageRow {
                    account_id: r.get(0)?,
                    queue: r.get(1)?,
                    seq: r.get::<_, i64>(2)? as u64,
                    doc: r.get(3)?,
                    state: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT account_id, queue, key, expires, doc FROM dedup")?;
        snap.dedup = stmt
            .query_map([], |r| {
                Ok(DedupRow {
                    account_id: r.get(0)?,
                    queue: r.get(1)?,
                    key: r.get(2)?,
                    expires: r.get::<_, i64>(3)? as u64,
                    doc: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(snap)
    }
}

fn apply_one(tx: &rusqlite::Transaction<'_>, op: &QueueOp) -> Result<(), rusqlite::Error> {
    match op {
        QueueOp::PutMeta { key, value } => tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        ),
        QueueOp::PutQueue {
            account_id,
            name,
            doc,
        } => tx.execute(
            "INSERT INTO queues (account_id, name, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT(account_id, name) DO UPDATE SET doc = excluded.doc",
            params![account_id, name, doc],
        ),
        QueueOp::DeleteQueue { account_id, name } => {
            tx.execute(
                "DELETE FROM messages WHERE account_id = ?1 AND queue = ?2",
                params![account_id, name],
            )?;
            tx.execute(
                "DELETE FROM dedup WHERE account_id = ?1 AND queue = ?2",
                params![account_id, name],
            )?;
            tx.execute(
                "DELETE FROM queues WHERE account_id = ?1 AND name = ?2",
                params![account_id, name],
            )
        }
        QueueOp::PutMessage {
            account_id,
            queue,
            seq,
            doc,
            state,
        } => tx.execute(
            "INSERT INTO messages (account_id, queue, seq, doc, state) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![account_id, queue, *seq as i64, doc, state],
        ),
        QueueOp::SetMessageState {
            account_id,
            queue,
            seq,
            state,
        } => tx.execute(
            "UPDATE messages SET state = ?4 WHERE account_id = ?1 AND queue = ?2 AND seq = ?3",
            params![account_id, queue, *seq as i64, state],
        ),
        QueueOp::DeleteMessage {
            account_id,
            queue,
            seq,
        } => tx.execute(
            "DELETE FROM messages WHERE account_id = ?1 AND queue = ?2 AND seq = ?3",
            params![account_id, queue, *seq as i64],
        ),
        QueueOp::PurgeQueue { account_id, queue } => tx.execute(
            "DELETE FROM messages WHERE account_id = ?1 AND queue = ?2",
            params![account_id, queue],
        ),
        QueueOp::PutDedup {
            account_id,
            queue,
            key,
            expires,
            doc,
        } => tx.execute(
            "INSERT INTO dedup (account_id, queue, key, expires, doc) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(account_id, queue, key) DO UPDATE SET expires = excluded.expires, doc = excluded.doc",
            params![account_id, queue, key, *expires as i64, doc],
        ),
        QueueOp::DeleteLapsedDedup { now } => tx.execute(
            "DELETE FROM dedup WHERE expires <= ?1",
            params![*now as i64],
        ),
    }
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(seq: u64) -> QueueOp {
        QueueOp::PutMessage {
            account_id: "111122223333".into(),
            queue: "q".into(),
            seq,
            doc: format!("{{\"n\":{seq}}}"),
            state: "{}".into(),
        }
    }

    #[test]
    fn messages_round_trip_in_order_and_go_with_their_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queues.db");
        {
            let db = QueueDb::open(&path).unwrap();
            db.apply(&[
                QueueOp::PutQueue {
                    account_id: "111122223333".into(),
                    name: "q".into(),
                    doc: "{}".into(),
                },
                put(2),
                put(1),
                put(3),
            ])
            .unwrap();
            db.apply(&[
                QueueOp::SetMessageState {
                    account_id: "111122223333".into(),
                    queue: "q".into(),
                    seq: 1,
                    state: "{\"r\":1}".into(),
                },
                QueueOp::DeleteMessage {
                    account_id: "111122223333".into(),
                    queue: "q".into(),
                    seq: 3,
                },
            ])
            .unwrap();
        }
        let db = QueueDb::open(&path).unwrap();
        let snap = db.snapshot().unwrap();
        assert_eq!(snap.queues.len(), 1);
        let seqs: Vec<u64> = snap.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2]);
        assert_eq!(snap.messages[0].state, "{\"r\":1}");
        db.apply(&[QueueOp::DeleteQueue {
            account_id: "111122223333".into(),
            name: "q".into(),
        }])
        .unwrap();
        let snap = db.snapshot().unwrap();
        assert!(snap.queues.is_empty() && snap.messages.is_empty());
    }

    #[test]
    fn dedup_records_lapse() {
        let db = QueueDb::in_memory().unwrap();
        let put = |key: &str, expires: u64| QueueOp::PutDedup {
            account_id: "111122223333".into(),
            queue: "q.fifo".into(),
            key: key.into(),
            expires,
            doc: "{}".into(),
        };
        db.apply(&[put("a", 100), put("b", 200)]).unwrap();
        db.apply(&[QueueOp::DeleteLapsedDedup { now: 150 }])
            .unwrap();
        let keys: Vec<String> = db
            .snapshot()
            .unwrap()
            .dedup
            .into_iter()
            .map(|d| d.key)
            .collect();
        assert_eq!(keys, ["b"]);
    }

    #[test]
    fn a_failed_batch_leaves_nothing() {
        let db = QueueDb::in_memory().unwrap();
        db.apply(&[put(1)]).unwrap();
        // The second insert of seq 1 violates the key: the whole batch rolls back.
        assert!(db.apply(&[put(2), put(1)]).is_err());
        assert_eq!(db.snapshot().unwrap().messages.len(), 1);
    }
}
