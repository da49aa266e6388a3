//! The CloudWatch metrics subset: `GetMetricStatistics`, `GetMetricData` (metric stats and
//! simple math), `ListMetrics` and `PutMetricData`, with the `AWS/Lambda` namespace built from
//! usage records (`Invocations`, `Errors`, `Throttles`, `Duration` by `FunctionName`, `Resource`
//! and `ExecutedVersion`).
//!
//! - `store.rs`: the in-memory metric store (1-minute buckets, 1-second for high resolution).
//! - `ops.rs`: the operations over a neutral input and output.
//! - `expr.rs`: metric math.
//! - `emf.rs`: metrics from Embedded Metric Format log lines.
//! - `wire.rs`: the three protocols CloudWatch's model lists (Smithy RPC v2 CBOR, AWS JSON 1.0,
//!   query), all answering from the same operations.
//!
//! *Invariant*: an account reads and writes only its own metrics; unknown metrics answer
//! empty data, never an error.

mod emf;
pub mod expr;
mod ops;
pub mod store;
pub mod wire;

use std::sync::Arc;

use rusqlite::params;
use serde_json::Value;
use updraft_engine::UsageRecord;

use crate::usage::UsageStore;
use crate::{ObserveError, UsageSink};
pub use ops::Out;
use store::{MetricId, MetricStore, StatSet};

/// A CloudWatch error: its query-protocol code, model shape name and status.
#[derive(Debug, Clone, PartialEq)]
pub struct CwError {
    /// `InvalidParameterValue`, `MissingParameter`, ...
    pub code: &'static str,
    /// The model's shape name (`InvalidParameterValueException`), the JSON and CBOR `__type`.
    pub shape: &'static str,
    pub status: u16,
    pub message: String,
    /// `Sender` or `Receiver` (query protocol).
    pub fault: &'static str,
}

impl CwError {
    fn new(code: &'static str, shape: &'static str, status: u16, message: String) -> Self {
        Self {
            code,
            shape,
            status,
            message,
            fault: if status >= 500 { "Receiver" } else { "Sender" },
        }
    }

    pub fn invalid(m: impl Into<String>) -> Self {
        Self::new(
            "InvalidParameterValue",
            "InvalidParameterValueException",
            400,
            m.into(),
        )
    }

    pub fn combination(m: impl Into<String>) -> Self {
        Self::new(
            "InvalidParameterCombination",
            "InvalidParameterCombinationException",
            400,
            m.into(),
        )
    }

    pub fn missing(field: &str) -> Self {
        Self::new(
            "MissingParameter",
            "MissingRequiredParameterException",
            400,
            format!("The parameter {field} is required."),
        )
    }

    pub fn validation(m: impl Into<String>) -> Self {
        Self::new("ValidationError", "ValidationException", 400, m.into())
    }

    pub fn next_token() -> Self {
        Self::new(
            "InvalidNextToken",
            "InvalidNextToken",
            400,
            "The service cannot find the next token.".into(),
        )
    }

    pub fn unknown_operation(op: &str) -> Self {
        Self::new(
            "InvalidAction",
            "InvalidAction",
            400,
            format!("The action {op} is not valid for this web service."),
        )
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("cloudwatch: {e}");
        Self::new(
            "InternalServiceError",
            "InternalServiceFault",
            500,
            "An internal error occurred.".into(),
        )
    }
}

pub(crate) fn now_secs() -> i64 {
    (crate::now_ms() / 1000) as i64
}

/// One point `PutMetricData` accepted.
pub(crate) struct Point {
    pub id: MetricId,
    pub ts: i64,
    pub high_res: bool,
    pub unit: Option<String>,
    pub set: StatSet,
}

/// The service.
pub struct CloudWatch {
    pub(crate) store: MetricStore,
    /// Where `PutMetricData` points are made durable (`None`: memory only, in tests).
    durable: Option<Arc<UsageStore>>,
    /// When points past the retention were last dropped (epoch seconds).
    last_expire: std::sync::atomic::AtomicI64,
    /// Embedded Metric Format points on their way to the thread that stores them (log pumps
    /// must not wait on SQLite). `None` in memory-only mode.
    emf_tx: std::sync::Mutex<Option<EmfSender>>,
    /// EMF lines dropped because that thread fell behind.
    pub emf_dropped: std::sync::atomic::AtomicU64,
}

/// Sends one line's points (with its account) to the EMF writer thread.
type EmfSender = std::sync::mpsc::SyncSender<(String, Vec<Point>)>;

/// EMF lines queued for storing before further ones are dropped.
const EMF_QUEUE: usize = 4096;

const METRIC_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS metric_data (
    account TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    dims TEXT NOT NULL,
    ts INTEGER NOT NULL,
    high_res INTEGER NOT NULL,
    unit TEXT,
    count REAL NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metric_data_time ON metric_data (ts);
";

impl CloudWatch {
    /// A service whose custom metrics live in memory only.
    pub fn in_memory() -> Self {
        Self {
            store: MetricStore::default(),
            durable: None,
            last_expire: Default::default(),
            emf_tx: std::sync::Mutex::new(None),
            emf_dropped: Default::default(),
        }
    }

    /// Opens the service over the usage database: `AWS/Lambda` is rebuilt from the usage
    /// records of the retention window, custom metrics are loaded from `metric_data`.
    pub fn open(usage: Arc<UsageStore>) -> Result<Self, ObserveError> {
        let cw = Self {
            store: MetricStore::default(),
            durable: Some(usage.clone()),
            last_expire: Default::default(),
            emf_tx: std::sync::Mutex::new(None),
            emf_dropped: Default::default(),
        };
        let conn = usage.conn();
        conn.execute_batch(METRIC_SCHEMA)
            .map_err(ObserveError::db)?;
        let since = now_secs() - store::RETENTION_SECS;
        conn.execute("DELETE FROM metric_data WHERE ts < ?1", params![since])
            .map_err(ObserveError::db)?;
        usage.each_since(&conn, (since.max(0) as u64) * 1000, |r| {
            cw.store.add_usage(&r)
        })?;
        let mut stmt = conn
            .prepare(
                "SELECT account, namespace, name, dims, ts, high_res, unit, count, sum, min, max
                 FROM metric_data",
            )
            .map_err(ObserveError::db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    StatSet {
                        count: r.get(7)?,
                        sum: r.get(8)?,
                        min: r.get(9)?,
                        max: r.get(10)?,
                    },
                ))
            })
            .map_err(ObserveError::db)?;
        for row in rows {
            let (account, ns, name, dims, ts, high_res, unit, set) =
                row.map_err(ObserveError::db)?;
            let dims: Vec<(String, String)> = serde_json::from_str(&dims).unwrap_or_default();
            cw.store.add(
                &account,
                MetricId::new(&ns, &name, dims),
                ts,
                high_res,
                unit.as_deref(),
                set,
            );
        }
        drop(stmt);
        drop(conn);
        Ok(cw)
    }

    /// Starts the thread that stores Embedded Metric Format points.
    pub fn start_emf_writer(self: &Arc<Self>) -> std::io::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(String, Vec<Point>)>(EMF_QUEUE);
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("emf-writer".into())
            .spawn(move || {
                while let Ok((account, points)) = rx.recv() {
                    let Some(cw) = weak.upgrade() else { return };
                    if let Err(e) = cw.put_points(&account, points) {
                        tracing::warn!("metrics from log lines not stored: {}", e.message);
                    }
                }
            })?;
        *self.emf_tx.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        Ok(())
    }

    /// Stores accepted points: durable first, then visible.
    fn put_points(&self, account: &str, points: Vec<Point>) -> Result<(), CwError> {
        if let Some(usage) = &self.durable {
            let mut conn = usage.conn();
            let tx = conn.transaction().map_err(CwError::internal)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO metric_data (account, namespace, name, dims, ts, high_res,
                         unit, count, sum, min, max) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
                    )
                    .map_err(CwError::internal)?;
                for p in &points {
                    let dims = serde_json::to_string(&p.id.dims).map_err(CwError::internal)?;
                    stmt.execute(params![
                        account,
                        p.id.namespace,
                        p.id.name,
                        dims,
                        p.ts,
                        p.high_res,
                        p.unit,
                        p.set.count,
                        p.set.sum,
                        p.set.min,
                        p.set.max
                    ])
                    .map_err(CwError::internal)?;
                }
            }
            tx.commit().map_err(CwError::internal)?;
        }
        for p in points {
            self.store
                .add(account, p.id, p.ts, p.high_res, p.unit.as_deref(), p.set);
        }
        Ok(())
    }

    /// Runs operation `op` for `account` over the neutral input.
    pub fn call(&self, account: &str, op: &str, input: &Value) -> Result<Out, CwError> {
        match op {
            "GetMetricStatistics" => self.get_metric_statistics(account, input),
            "GetMetricData" => self.get_metric_data(account, input),
            "ListMetrics" => self.list_metrics(account, input),
            "PutMetricData" => self.put_metric_data(account, input),
            other => Err(CwError::unknown_operation(other)),
        }
    }

    /// One sample of the executions running now: `per_function` (account, function, running)
    /// for every function with environments, summed per account as well. Samples merge into
    /// the minute, so `Maximum` is the peak, as `ConcurrentExecutions` is read on Lambda.
    pub fn sample_concurrency(&self, per_function: &[(String, String, u64)]) {
        let ts = now_secs();
        let mut per_account: std::collections::HashMap<&str, u64> = Default::default();
        for (account, function, running) in per_function {
            *per_account.entry(account).or_default() += running;
            self.store.add(
                account,
                MetricId::new(
                    "AWS/Lambda",
                    "ConcurrentExecutions",
                    vec![("FunctionName".into(), function.clone())],
                ),
                ts,
                false,
                Some("Count"),
                StatSet::one(*running as f64),
            );
        }
        for (account, running) in per_account {
            self.store.add(
                account,
                MetricId::new("AWS/Lambda", "ConcurrentExecutions", Vec::new()),
                ts,
                false,
                Some("Count"),
                StatSet::one(running as f64),
            );
        }
    }

    /// Drops points past the retention (called by the usage writer's batches).
    pub fn expire(&self) {
        self.store.expire(now_secs());
    }
}

impl updraft_engine::LogLineHook for CloudWatch {
    fn line(&self, account_id: &str, _function_name: &str, line: &[u8]) {
        let points = emf::points(line, now_secs());
        if points.is_empty() {
            return;
        }
        let tx = self
            .emf_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match tx {
            Some(tx) => {
                if tx.try_send((account_id.to_string(), points)).is_err() {
                    self.emf_dropped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            None => {
                let _ = self.put_points(account_id, points);
            }
        }
    }
}

impl UsageSink for CloudWatch {
    fn records(&self, batch: &[UsageRecord]) {
        self.store.add_usage_batch(batch);
        let now = now_secs();
        let last = self.last_expire.load(std::sync::atomic::Ordering::Relaxed);
        if now - last >= 60 {
            self.last_expire
                .store(now, std::sync::atomic::Ordering::Relaxed);
            self.expire();
        }
    }
}

#[cfg(test)]
mod tests;
