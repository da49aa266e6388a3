//! The durable usage store (`<data-dir>/usage.db`): one row per invocation, written by one
//! thread in batches (every record the engine published since the last write goes into one
//! transaction), so the invoke path only ever puts a record on the engine's broadcast channel.
//! Rows older than the retention are deleted by the same thread.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use tokio::sync::broadcast::{self, error::TryRecvError};
use updraft_engine::UsageRecord;

use crate::ObserveError;

/// Most records written in one transaction.
const MAX_BATCH: usize = 4096;
/// How long the writer gathers records after the first of a batch (well within what the engine's
/// usage channel holds: 16,384 records).
const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// How often expired rows are deleted.
const RETENTION_SWEEP: Duration = Duration::from_secs(60);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage (
    request_id TEXT NOT NULL,
    account TEXT NOT NULL,
    function TEXT NOT NULL,
    version TEXT NOT NULL,
    qualifier TEXT,
    source TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    billed_ms INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    max_memory_mb INTEGER NOT NULL,
    init_ms REAL,
    cold INTEGER NOT NULL,
    ephemeral_mb INTEGER NOT NULL,
    provisioned INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_time ON usage (started_ms);
CREATE INDEX IF NOT EXISTS usage_account_time ON usage (account, started_ms);
";

/// The usage database. Reads (reports) and the writer share one connection behind a mutex:
/// reports are rare and short, and no `.await` happens while it is held.
pub struct UsageStore {
    conn: Mutex<Connection>,
    /// Records the writer could not keep up with (the broadcast channel overflowed).
    lost: AtomicU64,
    /// Records committed so far.
    written: AtomicU64,
}

impl UsageStore {
    pub fn open(path: &Path) -> Result<Arc<Self>, ObserveError> {
        let conn = Connection::open(path).map_err(ObserveError::db)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        )
        .map_err(ObserveError::db)?;
        conn.execute_batch(SCHEMA).map_err(ObserveError::db)?;
        Ok(Arc::new(Self {
            conn: Mutex::new(conn),
            lost: AtomicU64::new(0),
            written: AtomicU64::new(0),
        }))
    }

    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records dropped because the writer fell behind the channel.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Records committed since start.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Writes `records` in one transaction.
    pub fn write(&self, records: &[UsageRecord]) -> Result<(), ObserveError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(ObserveError::db)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO usage (request_id, account, function, version, qualifier, source,
                     started_ms, duration_ms, billed_ms, memory_mb, max_memory_mb, init_ms, cold,
                     ephemeral_mb, provisioned, outcome)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )
                .map_err(ObserveError::db)?;
            for r in records {
                stmt.execute(params![
                    r.request_id,
                    r.account_id,
                    r.function_name,
                    r.version,
                    r.qualifier,
                    r.source.as_str(),
                    r.started_at_ms as i64,
                    r.duration_ms,
                    r.billed_duration_ms as i64,
                    r.memory_mb,
                    r.max_memory_used_mb as i64,
                    r.init_duration_ms,
                    r.cold_start,
                    r.ephemeral_extra_mb,
                    r.provisioned,
                    r.outcome.as_str(),
                ])
                .map_err(ObserveError::db)?;
            }
        }
        tx.commit().map_err(ObserveError::db)?;
        self.written
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Calls `f` with every record that started at or after `since_ms` (rebuilding metrics at
    /// start).
    pub(crate) fn each_since(
        &self,
        conn: &Connection,
        since_ms: u64,
        mut f: impl FnMut(UsageRecord),
    ) -> Result<(), ObserveError> {
        let mut stmt = conn
            .prepare(
                "SELECT request_id, account, function, version, qualifier, source, started_ms,
                 duration_ms, billed_ms, memory_mb, max_memory_mb, init_ms, cold, ephemeral_mb,
                 provisioned, outcome FROM usage WHERE started_ms >= ?1",
            )
            .map_err(ObserveError::db)?;
        let mut rows = stmt
            .query(params![since_ms as i64])
            .map_err(ObserveError::db)?;
        while let Some(r) = rows.next().map_err(ObserveError::db)? {
            let get = |r: &rusqlite::Row<'_>| -> rusqlite::Result<UsageRecord> {
                let function_name: String = r.get(2)?;
                let account_id: String = r.get(1)?;
                Ok(UsageRecord {
                    request_id: r.get(0)?,
                    function_arn: format!("arn:aws:lambda:::{account_id}:function:{function_name}"),
                    account_id,
                    function_name,
                    version: r.get(3)?,
                    qualifier: r.get(4)?,
                    source: source_of(&r.get::<_, String>(5)?),
                    started_at_ms: r.get::<_, i64>(6)? as u64,
                    duration_ms: r.get(7)?,
                    billed_duration_ms: r.get::<_, i64>(8)? as u64,
                    memory_mb: r.get(9)?,
                    max_memory_used_mb: r.get::<_, i64>(10)? as u64,
                    init_duration_ms: r.get(11)?,
                    cold_start: r.get(12)?,
                    ephemeral_extra_mb: r.get(13)?,
                    provisioned: r.get(14)?,
                    outcome: outcome_of(&r.get::<_, String>(15)?),
                    // Extensions' time after the answer is already part of `billed_ms`.
                    post_runtime_extensions_duration_ms: None,
                })
            };
            f(get(r).map_err(ObserveError::db)?);
        }
        Ok(())
    }

    /// Deletes rows that started before `cutoff_ms`; returns how many.
    pub fn expire(&self, cutoff_ms: u64) -> Result<usize, ObserveError> {
        self.conn()
            .execute(
                "DELETE FROM usage WHERE started_ms < ?1",
                params![cutoff_ms as i64],
            )
            .map_err(ObserveError::db)
    }

    /// Starts the writer thread: it drains `rx` in batches until the engine's channel closes.
    /// `retention` bounds how long rows are kept.
    pub fn spawn_writer(
        self: &Arc<Self>,
        mut rx: broadcast::Receiver<UsageRecord>,
        retention: Duration,
        sinks: Vec<Arc<dyn crate::UsageSink>>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let store = self.clone();
        std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || {
                let mut batch = Vec::with_capacity(64);
                let mut last_sweep: Option<Instant> = None;
                loop {
                    if last_sweep.is_none_or(|t| t.elapsed() >= RETENTION_SWEEP) {
                        last_sweep = Some(Instant::now());
                        let cutoff = crate::now_ms().saturating_sub(retention.as_millis() as u64);
                        if let Err(e) = store.expire(cutoff) {
                            tracing::warn!("usage retention: {e}");
                        }
                    }
                    // Wait for one record (or the sweep), then take whatever else is queued.
                    let first = rx.blocking_recv();
                    let closed = match first {
                        Ok(r) => {
                            batch.push(r);
                            false
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            store.lost.fetch_add(n, Ordering::Relaxed);
                            tracing::warn!("usage writer fell behind: {n} records lost");
                            false
                        }
                        Err(broadcast::error::RecvError::Closed) => true,
                    };
                    // A record that arrives alone waits up to BATCH_WINDOW for the others of its
                    // moment: one transaction (and one wake-up of this thread) per window instead of
                    // one per invocation is what keeps metering off the invoke path's CPU.
                    if !closed && !batch.is_empty() {
                        std::thread::sleep(BATCH_WINDOW);
                    }
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(TryRecvError::Lagged(n)) => {
                                store.lost.fetch_add(n, Ordering::Relaxed);
                            }
                            Err(_) => break,
                        }
                    }
                    if !batch.is_empty() {
                        for sink in &sinks {
                            sink.records(&batch);
                        }
                        if let Err(e) = store.write(&batch) {
                            tracing::error!("usage records not stored: {e}");
                        }
                        batch.clear();
                    }
                    if closed {
                        return;
                    }
                }
            })
    }
}

fn source_of(s: &str) -> updraft_engine::InvocationSource {
    use updraft_engine::InvocationSource as S;
    [S::Sync, S::Async, S::EventSource, S::Url, S::Schedule]
        .into_iter()
        .find(|x| x.as_str() == s)
        .unwrap_or_default()
}

fn outcome_of(s: &str) -> updraft_engine::UsageOutcome {
    use updraft_engine::UsageOutcome as O;
    [
        O::Success,
        O::FunctionError,
        O::Timeout,
        O::Crash,
        O::InitError,
        O::OutOfMemory,
        O::Throttle,
    ]
    .into_iter()
    .find(|x| x.as_str() == s)
    .unwrap_or(O::Crash)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use updraft_engine::{InvocationSource, UsageOutcome};

    pub(crate) fn record(fun: &str, started: u64, billed: u64, mem: u32) -> UsageRecord {
        UsageRecord {
            request_id: format!("r-{fun}-{started}"),
            account_id: "111111111111".into(),
            function_name: fun.into(),
            function_arn: format!("arn:aws:lambda:us-east-1:111111111111:function:{fun}"),
            version: "$LATEST".into(),
            qualifier: None,
            source: InvocationSource::Sync,
            started_at_ms: started,
            duration_ms: billed as f64 - 0.5,
            billed_duration_ms: billed,
            memory_mb: mem,
            max_memory_used_mb: 30,
            init_duration_ms: None,
            cold_start: false,
            ephemeral_extra_mb: 0,
            provisioned: false,
            outcome: UsageOutcome::Success,
            post_runtime_extensions_duration_ms: None,
        }
    }

    #[test]
    fn rows_are_written_and_expired() {
        let dir = tempfile::tempdir().unwrap();
        let s = UsageStore::open(&dir.path().join("usage.db")).unwrap();
        s.write(&[record("a", 1000, 5, 128), record("a", 5000, 5, 128)])
            .unwrap();
        assert_eq!(s.written(), 2);
        assert_eq!(s.expire(2000).unwrap(), 1);
        let n: i64 = s
            .conn()
            .query_row("SELECT COUNT(*) FROM usage", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn the_writer_drains_the_channel() {
        let dir = tempfile::tempdir().unwrap();
        let s = UsageStore::open(&dir.path().join("usage.db")).unwrap();
        let (tx, rx) = broadcast::channel(16);
        let h = s
            .spawn_writer(rx, Duration::from_secs(3600 * 24 * 365 * 100), Vec::new())
            .unwrap();
        let now = crate::now_ms();
        for i in 0..5 {
            tx.send(record("b", now + i, 10, 256)).unwrap();
        }
        drop(tx);
        h.join().unwrap();
        assert_eq!(s.written(), 5);
    }
}
