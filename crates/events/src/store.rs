//! Durable work items: the [`WorkStore`] trait and its SQLite backend.
//!
//! One table holds every item (`work`: id, target, payload, attempt, state, lease owner, lease
//! expiry, not-before, created-at, policy). There is one claim query: it leases due items to an
//! owner and bumps their attempt number; a completion names (owner, attempt) and is refused when
//! that is no longer the item's current lease, so a dispatcher that lost its lease (it was slow,
//! or it belonged to a node that died) cannot complete an attempt a second time.
//!
//! In SQLite every write goes through one writer thread that gathers whatever requests are queued
//! into one transaction (group commit): a burst of accepts costs one fsync, not one each, and a
//! caller's reply is sent only after its batch committed. A PostgreSQL backend would implement the
//! same trait with `FOR UPDATE SKIP LOCKED` claims.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::work::{Claimed, Finish, ItemView, NewWork, RetryPolicy, State, Summary, Target};

/// A boxed future, so the store and the targets stay usable as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Errors of the durable path.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot open the event database at {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("event database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored document is not valid: {0}")]
    Document(#[from] serde_json::Error),
    #[error("the event store's writer has stopped")]
    WriterGone,
    /// The transaction this request was part of failed (it was not stored).
    #[error("event database: the batch was not committed: {0}")]
    Batch(String),
    #[error("cannot start the event store's writer: {0}")]
    Thread(std::io::Error),
}

/// Where work items live. Every method is atomic; completions are fenced by (owner, attempt).
pub trait WorkStore: Send + Sync {
    /// Stores the items in one transaction; resolves only after it is durable.
    fn enqueue(&self, items: Vec<NewWork>) -> BoxFuture<'static, Result<Vec<i64>, EventsError>>;

    /// Leases up to `limit` due items (pending ones whose `not_before` has come, and leased ones
    /// whose lease expired) to `owner` until `now_ms + lease_ms`, each with its attempt number
    /// bumped.
    fn claim(
        &self,
        owner: &str,
        limit: usize,
        now_ms: i64,
        lease_ms: i64,
    ) -> BoxFuture<'static, Result<Vec<Claimed>, EventsError>>;

    /// Ends the attempt (`id`, `owner`, `attempt`) and enqueues `follow_ups` (destination
    /// records, dead letters) in the same transaction. `Ok(false)`: the attempt is no longer the
    /// item's current lease, and nothing was changed.
    fn finish(
        &self,
        id: i64,
        owner: &str,
        attempt: u32,
        finish: Finish,
        follow_ups: Vec<NewWork>,
    ) -> BoxFuture<'static, Result<bool, EventsError>>;

    /// Returns to `Pending` every item leased by an owner whose name starts with `prefix` (a
    /// restarted node's own leases: nobody works on them any more).
    fn release(&self, prefix: &str) -> Result<u64, EventsError>;

    /// When the earliest pending item is due, or an expired-to-be lease ends.
    fn next_due_ms(&self) -> Result<Option<i64>, EventsError>;

    /// Counts and (up to `limit`, newest first) items of one target resource.
    fn summary(&self, resource_arn: &str, limit: usize) -> Result<Summary, EventsError>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS work (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    resource TEXT NOT NULL,
    target TEXT NOT NULL,
    payload BLOB NOT NULL,
    request_id TEXT NOT NULL,
    source TEXT NOT NULL,
    policy TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    state INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expiry INTEGER,
    not_before INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    last_error TEXT);
CREATE INDEX IF NOT EXISTS work_due ON work (state, not_before);
CREATE INDEX IF NOT EXISTS work_lease ON work (state, lease_expiry);
CREATE INDEX IF NOT EXISTS work_resource ON work (resource, state);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// Most requests one group commit takes; more wait for the next one.
const MAX_BATCH: usize = 1024;

type Reply<T> = oneshot::Sender<Result<T, EventsError>>;

/// A write the writer thread runs inside its current batch.
enum Request {
    Enqueue(Vec<NewWork>, Reply<Vec<i64>>),
    Claim {
        owner: String,
        limit: usize,
        now_ms: i64,
        lease_ms: i64,
        reply: Reply<Vec<Claimed>>,
    },
    Finish {
        id: i64,
        owner: String,
        attempt: u32,
        finish: Finish,
        follow_ups: Vec<NewWork>,
        reply: Reply<bool>,
    },
}

/// A result waiting for its batch to commit.
enum Done {
    Ids(Reply<Vec<i64>>, Result<Vec<i64>, EventsError>),
    Claimed(Reply<Vec<Claimed>>, Result<Vec<Claimed>, EventsError>),
    Finished(Reply<bool>, Result<bool, EventsError>),
}

impl Done {
    /// Sends the result, or `err` in its place when the batch did not commit.
    fn send(self, commit: Option<&str>) {
        let fail = |r: &str| EventsError::Batch(r.to_string());
        match self {
            Done::Ids(tx, r) => {
                let _ = tx.send(match commit {
                    None => r,
                    Some(e) => Err(fail(e)),
                });
            }
            Done::Claimed(tx, r) => {
                let _ = tx.send(match commit {
                    None => r,
                    Some(e) => Err(fail(e)),
                });
            }
            Done::Finished(tx, r) => {
                let _ = tx.send(match commit {
                    None => r,
                    Some(e) => Err(fail(e)),
                });
            }
        }
    }
}

/// SQLite-backed [`WorkStore`] with a group-committing writer thread.
pub struct SqliteWorkStore {
    writer: Mutex<mpsc::Sender<Request>>,
    /// Reads (listings, the next due time) use their own connection: WAL lets them run beside
    /// the writer.
    reader: Mutex<Connection>,
}

fn open_conn(path: &Path) -> Result<Connection, EventsError> {
    let conn = Connection::open(path).map_err(|source| EventsError::Open {
        path: path.display().to_string(),
        source,
    })?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: an accepted event survives a power loss too; group commit pays it once per batch.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

impl SqliteWorkStore {
    /// Opens (creating if needed) the event database and starts its writer thread.
    pub fn open(path: &Path) -> Result<Arc<Self>, EventsError> {
        let conn = open_conn(path)?;
        conn.execute_batch(SCHEMA)?;
        let reader = open_conn(path)?;
        Self::start(conn, reader)
    }

    /// Starts on a connection already set up (tests use this to set limits on it).
    fn start(conn: Connection, reader: Connection) -> Result<Arc<Self>, EventsError> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("updraft-events-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(EventsError::Thread)?;
        Ok(Arc::new(Self {
            writer: Mutex::new(tx),
            reader: Mutex::new(reader),
        }))
    }

    fn send(&self, r: Request) -> Result<(), EventsError> {
        let w = self.writer.lock().map_err(|_| EventsError::WriterGone)?;
        w.send(r).map_err(|_| EventsError::WriterGone)
    }

    fn reader(&self) -> Result<std::sync::MutexGuard<'_, Connection>, EventsError> {
        self.reader.lock().map_err(|_| EventsError::WriterGone)
    }

    /// A value of the event database's own settings (the node id).
    pub fn get_meta(&self, key: &str) -> Result<Option<String>, EventsError> {
        Ok(self
            .reader()?
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets one of the event database's own settings.
    pub fn put_meta(&self, key: &str, value: &str) -> Result<(), EventsError> {
        self.reader()?.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Runs `f` on the reader connection (the configuration store shares the database).
    pub(crate) fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, EventsError>,
    ) -> Result<T, EventsError> {
        f(&*self.reader()?)
    }
}

async fn wait<T>(rx: oneshot::Receiver<Result<T, EventsError>>) -> Result<T, EventsError> {
    rx.await.map_err(|_| EventsError::WriterGone)?
}

impl WorkStore for SqliteWorkStore {
    fn enqueue(&self, items: Vec<NewWork>) -> BoxFuture<'static, Result<Vec<i64>, EventsError>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(Request::Enqueue(items, tx));
        Box::pin(async move {
            sent?;
            wait(rx).await
        })
    }

    fn claim(
        &self,
        owner: &str,
        limit: usize,
        now_ms: i64,
        lease_ms: i64,
    ) -> BoxFuture<'static, Result<Vec<Claimed>, EventsError>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(Request::Claim {
            owner: owner.to_string(),
            limit,
            now_ms,
            lease_ms,
            reply: tx,
        });
        Box::pin(async move {
            sent?;
            wait(rx).await
        })
    }

    fn finish(
        &self,
        id: i64,
        owner: &str,
        attempt: u32,
        finish: Finish,
        follow_ups: Vec<NewWork>,
    ) -> BoxFuture<'static, Result<bool, EventsError>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.send(Request::Finish {
            id,
            owner: owner.to_string(),
            attempt,
            finish,
            follow_ups,
            reply: tx,
        });
        Box::pin(async move {
            sent?;
            wait(rx).await
        })
    }

    fn release(&self, prefix: &str) -> Result<u64, EventsError> {
        // A LIKE pattern would need escaping; a prefix comparison needs none.
        let n = self.reader()?.execute(
            "UPDATE work SET state = 0, lease_owner = NULL, lease_expiry = NULL
             WHERE state = 1 AND substr(lease_owner, 1, length(?1)) = ?1",
            [prefix],
        )?;
        Ok(n as u64)
    }

    fn next_due_ms(&self) -> Result<Option<i64>, EventsError> {
        let conn = self.reader()?;
        let pending: Option<i64> = conn.query_row(
            "SELECT MIN(not_before) FROM work WHERE state = 0",
            [],
            |r| r.get(0),
        )?;
        let leased: Option<i64> = conn.query_row(
            "SELECT MIN(lease_expiry) FROM work WHERE state = 1",
            [],
            |r| r.get(0),
        )?;
        Ok(match (pending, leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn summary(&self, resource_arn: &str, limit: usize) -> Result<Summary, EventsError> {
        let conn = self.reader()?;
        let mut s = Summary::default();
        let mut counts = conn.prepare(
            "SELECT state, failures > 0, COUNT(*) FROM work WHERE resource = ?1 GROUP BY 1, 2",
        )?;
        let rows = counts.query_map([resource_arn], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, u64>(2)?,
            ))
        })?;
        for row in rows {
            let (state, failed_before, n) = row?;
            match (State::from_code(state), failed_before) {
                (State::Pending, false) => s.pending += n,
                (State::Pending, true) => s.retrying += n,
                (State::Leased, _) => s.in_flight += n,
                (State::Failed, _) => s.failed += n,
            }
        }
        let mut items = conn.prepare(
            "SELECT id, request_id, state, attempt, failures, created_at, not_before, target,
                    source, last_error
             FROM work WHERE resource = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = items.query_map(params![resource_arn, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, u32>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        })?;
        for row in rows {
            let (
                id,
                request_id,
                state,
                attempt,
                failures,
                created,
                not_before,
                target,
                source,
                err,
            ) = row?;
            let state = State::from_code(state);
            let qualifier = match serde_json::from_str::<Target>(&target)? {
                Target::Function { qualifier, .. } => qualifier,
                _ => None,
            };
            s.items.push(ItemView {
                id,
                request_id,
                state,
                retrying: state == State::Pending && failures > 0,
                attempt,
                failures,
                created_at_ms: created,
                not_before_ms: not_before,
                qualifier,
                source,
                last_error: err,
            });
        }
        Ok(s)
    }
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Request>) {
    let mut full = true;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        // Only accepts must reach the disk before their answer. A claim or a completion that a
        // power loss takes back (the WAL is synced in order, so nothing after it survives
        // either) only makes an item run again, which at-least-once delivery allows; sparing
        // them the fsync keeps it off the path from accept to delivery. A killed process loses
        // neither: the OS has the WAL.
        let needs_full = batch.iter().any(|r| matches!(r, Request::Enqueue(..)));
        if needs_full != full {
            let mode = if needs_full { "FULL" } else { "NORMAL" };
            match conn.pragma_update(None, "synchronous", mode) {
                Ok(()) => full = needs_full,
                Err(e) => tracing::error!(error = %e, "event store: cannot set synchronous"),
            }
        }
        // If FULL could not be set back, accepts are refused rather than answered undurably.
        if needs_full && !full {
            for r in batch {
                failed(r, "cannot make the commit durable").send(None);
            }
            continue;
        }
        run_batch(&mut conn, batch);
    }
}

/// Runs a batch in one transaction; each request in its own savepoint, so one that fails (a
/// full disk fails them all anyway) does not undo the others.
fn run_batch(conn: &mut Connection, batch: Vec<Request>) {
    let mut tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let msg = e.to_string();
            tracing::error!(error = %msg, "event store: cannot begin a transaction");
            for r in batch {
                failed(r, &msg).send(None);
            }
            return;
        }
    };
    let mut done = Vec::with_capacity(batch.len());
    for r in batch {
        match tx.savepoint() {
            Ok(sp) => done.push(run_one(sp, r)),
            Err(e) => done.push(failed(r, &e.to_string())),
        }
    }
    let err = tx.commit().err().map(|e| e.to_string());
    if let Some(e) = &err {
        tracing::error!(error = %e, "event store: a group commit failed");
    }
    for d in done {
        d.send(err.as_deref());
    }
}

/// A request answered with an error without running it.
fn failed(r: Request, msg: &str) -> Done {
    let e = || EventsError::Batch(msg.to_string());
    match r {
        Request::Enqueue(_, reply) => Done::Ids(reply, Err(e())),
        Request::Claim { reply, .. } => Done::Claimed(reply, Err(e())),
        Request::Finish { reply, .. } => Done::Finished(reply, Err(e())),
    }
}

/// Runs one request in its savepoint: kept in the batch on success, rolled back on error.
fn run_one(mut sp: rusqlite::Savepoint<'_>, r: Request) -> Done {
    let (ok, done) = match r {
        Request::Enqueue(items, reply) => {
            let res = insert(&sp, &items);
            (res.is_ok(), Done::Ids(reply, res))
        }
        Request::Claim {
            owner,
            limit,
            now_ms,
            lease_ms,
            reply,
        } => {
            let res = claim(&sp, &owner, limit, now_ms, lease_ms);
            (res.is_ok(), Done::Claimed(reply, res))
        }
        Request::Finish {
            id,
            owner,
            attempt,
            finish,
            follow_ups,
            reply,
        } => {
            let res = finish_item(&sp, id, &owner, attempt, &finish, &follow_ups);
            (res.is_ok(), Done::Finished(reply, res))
        }
    };
    if !ok {
        let _ = sp.rollback();
        return done;
    }
    match sp.commit() {
        Ok(()) => done,
        Err(e) => fail_done(done, e),
    }
}

fn fail_done(d: Done, e: rusqlite::Error) -> Done {
    match d {
        Done::Ids(r, _) => Done::Ids(r, Err(EventsError::Sql(e))),
        Done::Claimed(r, _) => Done::Claimed(r, Err(EventsError::Sql(e))),
        Done::Finished(r, _) => Done::Finished(r, Err(EventsError::Sql(e))),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn insert(conn: &Connection, items: &[NewWork]) -> Result<Vec<i64>, EventsError> {
    let now = now_ms();
    let mut stmt = conn.prepare_cached(
        "INSERT INTO work (kind, resource, target, payload, request_id, source, policy,
                           not_before, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
    )?;
    let mut ids = Vec::with_capacity(items.len());
    for w in items {
        let target = serde_json::to_string(&w.target)?;
        let policy = w.policy.as_ref().map(serde_json::to_string).transpose()?;
        stmt.execute(params![
            format!("{:?}", w.target.kind()),
            w.target.resource_arn(),
            target,
            &w.payload[..],
            w.request_id,
            w.source,
            policy,
            now,
        ])?;
        ids.push(conn.last_insert_rowid());
    }
    Ok(ids)
}

fn claim(
    conn: &Connection,
    owner: &str,
    limit: usize,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Vec<Claimed>, EventsError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // The one claim query: due pending items first (oldest due first), then items whose lease
    // ran out (their holder is gone or too slow); each gets the new owner and the next attempt.
    let mut stmt = conn.prepare_cached(
        "UPDATE work SET state = 1, lease_owner = ?1, lease_expiry = ?2, attempt = attempt + 1
         WHERE id IN (
             SELECT id FROM work WHERE state = 0 AND not_before <= ?3
             UNION ALL
             SELECT id FROM work WHERE state = 1 AND lease_expiry <= ?3
             LIMIT ?4)
         RETURNING id, target, payload, request_id, source, policy, attempt, failures, created_at",
    )?;
    let rows = stmt.query_map(
        params![owner, now_ms + lease_ms, now_ms, limit as i64],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, u32>(6)?,
                r.get::<_, u32>(7)?,
                r.get::<_, i64>(8)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let (id, target, payload, request_id, source, policy, attempt, failures, created) = row?;
        out.push(Claimed {
            id,
            target: serde_json::from_str(&target)?,
            payload: Bytes::from(payload),
            request_id,
            source,
            policy: policy
                .map(|p| serde_json::from_str::<RetryPolicy>(&p))
                .transpose()?,
            attempt,
            failures,
            created_at_ms: created,
            owner: owner.to_string(),
        });
    }
    Ok(out)
}

fn finish_item(
    conn: &Connection,
    id: i64,
    owner: &str,
    attempt: u32,
    finish: &Finish,
    follow_ups: &[NewWork],
) -> Result<bool, EventsError> {
    // The fence: only the current lease (same owner, same attempt, still leased) may end it.
    let changed = match finish {
        Finish::Done => conn.execute(
            "DELETE FROM work WHERE id = ?1 AND lease_owner = ?2 AND attempt = ?3 AND state = 1",
            params![id, owner, attempt],
        )?,
        Finish::Retry {
            not_before_ms,
            failures,
            error,
        } => conn.execute(
            "UPDATE work SET state = 0, lease_owner = NULL, lease_expiry = NULL,
                             not_before = ?4, failures = ?5, last_error = ?6
             WHERE id = ?1 AND lease_owner = ?2 AND attempt = ?3 AND state = 1",
            params![id, owner, attempt, not_before_ms, failures, error],
        )?,
        Finish::Failed { error } => conn.execute(
            "UPDATE work SET state = 2, lease_owner = NULL, lease_expiry = NULL, last_error = ?4
             WHERE id = ?1 AND lease_owner = ?2 AND attempt = ?3 AND state = 1",
            params![id, owner, attempt, error],
        )?,
    };
    if changed == 0 {
        return Ok(false);
    }
    insert(conn, follow_ups)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(n: usize) -> Vec<NewWork> {
        (0..n)
            .map(|i| NewWork {
                target: Target::Function {
                    account_id: "123456789012".into(),
                    function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
                    qualifier: None,
                },
                payload: Bytes::from(format!("{{\"i\":{i}}}")),
                request_id: format!("req-{i}"),
                source: "invoke".into(),
                policy: None,
            })
            .collect()
    }

    fn store() -> (tempfile::TempDir, Arc<SqliteWorkStore>) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteWorkStore::open(&dir.path().join("events.db")).unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn a_claim_leases_each_item_once_with_its_attempt() {
        let (_d, s) = store();
        let ids = s.enqueue(work(3)).await.unwrap();
        assert_eq!(ids.len(), 3);
        let now = now_ms() + 1;
        let a = s.claim("a", 2, now, 60_000).await.unwrap();
        let b = s.claim("b", 10, now, 60_000).await.unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(
            b.len(),
            1,
            "a leased item is not claimed again before its lease expires"
        );
        assert!(a.iter().chain(&b).all(|c| c.attempt == 1));
        let mut seen: Vec<i64> = a.iter().chain(&b).map(|c| c.id).collect();
        seen.sort();
        assert_eq!(seen, ids);
        assert!(s.claim("c", 10, now, 60_000).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_stale_completion_is_refused() {
        let (_d, s) = store();
        s.enqueue(work(1)).await.unwrap();
        let now = now_ms() + 1;
        let first = s.claim("a", 1, now, 1_000).await.unwrap().remove(0);
        // The lease runs out: another dispatcher takes the item over with the next attempt.
        let second = s.claim("b", 1, now + 1_000, 1_000).await.unwrap().remove(0);
        assert_eq!(second.id, first.id);
        assert_eq!(second.attempt, first.attempt + 1);
        // The first holder comes back late: its completion must change nothing.
        let late = s
            .finish(first.id, "a", first.attempt, Finish::Done, work(1))
            .await
            .unwrap();
        assert!(!late, "a completion of a lost lease is refused");
        // Nor may the right owner complete with a wrong attempt number.
        let wrong = s
            .finish(second.id, "b", first.attempt, Finish::Done, vec![])
            .await
            .unwrap();
        assert!(!wrong);
        let sum = s
            .summary("arn:aws:lambda:us-east-1:123456789012:function:f", 10)
            .unwrap();
        assert_eq!(
            sum.in_flight, 1,
            "nothing was enqueued by the refused completion"
        );
        assert!(
            s.finish(second.id, "b", second.attempt, Finish::Done, vec![])
                .await
                .unwrap()
        );
        // And a completion cannot happen twice.
        assert!(
            !s.finish(second.id, "b", second.attempt, Finish::Done, vec![])
                .await
                .unwrap()
        );
        let sum = s
            .summary("arn:aws:lambda:us-east-1:123456789012:function:f", 10)
            .unwrap();
        assert_eq!(
            (sum.pending, sum.in_flight, sum.retrying, sum.failed),
            (0, 0, 0, 0)
        );
    }

    #[tokio::test]
    async fn retries_wait_for_not_before_and_keep_their_failures() {
        let (_d, s) = store();
        s.enqueue(work(1)).await.unwrap();
        let now = now_ms() + 1;
        let c = s.claim("a", 1, now, 60_000).await.unwrap().remove(0);
        let retried = s
            .finish(
                c.id,
                "a",
                c.attempt,
                Finish::Retry {
                    not_before_ms: now + 5_000,
                    failures: 1,
                    error: "Unhandled".into(),
                },
                vec![],
            )
            .await
            .unwrap();
        assert!(retried);
        assert!(
            s.claim("a", 1, now + 4_999, 60_000)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.next_due_ms().unwrap(), Some(now + 5_000));
        let again = s
            .claim("a", 1, now + 5_000, 60_000)
            .await
            .unwrap()
            .remove(0);
        assert_eq!((again.attempt, again.failures), (2, 1));
        assert_eq!(
            again.request_id, c.request_id,
            "a retry keeps its request id"
        );
    }

    #[tokio::test]
    async fn a_restarted_owner_releases_its_leases() {
        let (_d, s) = store();
        s.enqueue(work(2)).await.unwrap();
        let now = now_ms() + 1;
        assert_eq!(
            s.claim("node-1/boot-1", 2, now, 600_000)
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(s.release("node-2/").unwrap(), 0, "other nodes' leases stay");
        assert_eq!(s.release("node-1/").unwrap(), 2);
        let again = s.claim("node-1/boot-2", 5, now, 600_000).await.unwrap();
        assert_eq!(again.len(), 2);
        assert!(again.iter().all(|c| c.attempt == 2));
    }

    #[tokio::test]
    async fn finishing_enqueues_follow_ups_atomically_and_failed_items_stay() {
        let (_d, s) = store();
        s.enqueue(work(1)).await.unwrap();
        let now = now_ms() + 1;
        let c = s.claim("a", 1, now, 60_000).await.unwrap().remove(0);
        let mut record = work(1);
        record[0].target = Target::Function {
            account_id: "123456789012".into(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:dest".into(),
            qualifier: None,
        };
        assert!(
            s.finish(
                c.id,
                "a",
                c.attempt,
                Finish::Failed { error: "x".into() },
                record
            )
            .await
            .unwrap()
        );
        let f = s
            .summary("arn:aws:lambda:us-east-1:123456789012:function:f", 10)
            .unwrap();
        assert_eq!(f.failed, 1);
        assert_eq!(f.items[0].last_error.as_deref(), Some("x"));
        let d = s
            .summary("arn:aws:lambda:us-east-1:123456789012:function:dest", 10)
            .unwrap();
        assert_eq!(d.pending, 1);
        // A failed item is never claimed again.
        let next = s.claim("a", 10, now + 10_000_000, 60_000).await.unwrap();
        assert_eq!(next.len(), 1);
        assert!(next[0].target.resource_arn().ends_with(":dest"));
    }

    #[tokio::test]
    async fn concurrent_enqueues_share_commits_and_all_land() {
        let (_d, s) = store();
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { s.enqueue(work(5)).await }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.extend(t.await.unwrap().unwrap());
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 320);
        let sum = s
            .summary("arn:aws:lambda:us-east-1:123456789012:function:f", 1)
            .unwrap();
        assert_eq!(sum.pending, 320);
    }

    #[tokio::test]
    async fn a_full_disk_fails_the_accept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let conn = open_conn(&path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        // SQLite's own size cap produces the same SQLITE_FULL a full file system does.
        conn.pragma_update(None, "max_page_count", 40).unwrap();
        let s = SqliteWorkStore::start(conn, open_conn(&path).unwrap()).unwrap();
        let mut big = work(1);
        big[0].payload = Bytes::from(vec![b'x'; 64 * 1024]);
        let mut failed = false;
        for _ in 0..20 {
            if s.enqueue(big.clone()).await.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "an accept that cannot be stored must fail");
        // The store still answers afterwards, and keeps what it did store.
        let sum = s
            .summary("arn:aws:lambda:us-east-1:123456789012:function:f", 100)
            .unwrap();
        assert!(sum.pending >= 1);
    }
}
