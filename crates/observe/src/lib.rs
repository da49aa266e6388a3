//! Observability of an Updraft node: what every invocation used and what it would cost, and
//! the platform's health as operators already read it.
//!
//! - `usage`: the durable usage store (`usage.db`), fed in batches by one writer thread from
//!   the engine's broadcast of usage records, with retention.
//! - `prices`: the price table (Lambda's published prices embedded; `--prices FILE`).
//! - `cloudwatch`: the CloudWatch metrics subset (`AWS/Lambda` and custom metrics) in its three
//!   protocols.
//! - `metrics`: the Prometheus registry behind `/metrics`.
//! - `report`: usage summed over a window, grouped by function, account, version, tag, day or
//!   hour, and priced.
//!
//! *Invariant*: nothing here is on the invoke path; the engine only sends a record into a
//! channel, everything else happens on this crate's own threads or on request.

pub mod cloudwatch;
pub mod metrics;
pub mod prices;
pub mod report;
pub mod usage;

pub use cloudwatch::CloudWatch;
pub use metrics::{GaugeSource, Metrics, Reading};
pub use prices::PriceTable;
pub use report::{FunctionDirectory, GroupBy, Report, UsageQuery};
pub use usage::UsageStore;

use updraft_engine::UsageRecord;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("usage database: {0}")]
    Db(String),
    #[error("price table: {0}")]
    Prices(String),
    /// A caller's bad parameter (answered 400).
    #[error("{0}")]
    Invalid(String),
}

impl ObserveError {
    pub(crate) fn db(e: rusqlite::Error) -> Self {
        ObserveError::Db(e.to_string())
    }
}

/// Another consumer of each batch of usage records (the metrics registry), called by the usage
/// writer before the batch is stored.
pub trait UsageSink: Send + Sync {
    fn records(&self, batch: &[UsageRecord]);
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Usage reporting as the front door uses it: the store, the prices and the directory of
/// functions' architectures and tags.
pub struct Usage {
    pub store: std::sync::Arc<UsageStore>,
    pub prices: PriceTable,
    pub dir: std::sync::Arc<dyn FunctionDirectory>,
}

impl Usage {
    /// Builds a report (blocking: run it on the blocking pool).
    pub fn report(&self, q: &UsageQuery) -> Result<Report, ObserveError> {
        report::report(&self.store, &self.prices, self.dir.as_ref(), q)
    }
}
