//! Prometheus metrics (`/metrics`, the text exposition format) with the `prometheus-client` crate.
//!
//! Counters and histograms move with each batch of usage records the usage writer hands over
//! ([`UsageSink`]), so the invoke path pays nothing for them. Gauges that describe the node's
//! state now (environments, concurrency, provisioned utilisation, queue depths, source lag,
//! memory budget, connections) are read at scrape time from [`GaugeSource`]s the binary
//! registers: the engine, the durable event path, and any event source that can tell its lag.

use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use updraft_engine::UsageRecord;

use crate::UsageSink;

/// Content type of the exposition text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of per-function series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    pub account: String,
    pub function: String,
    pub version: String,
}

/// Labels of invocation counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvocationLabels {
    pub account: String,
    pub function: String,
    pub version: String,
    pub source: String,
    pub outcome: String,
}

/// Labels of environment counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub account: String,
    pub function: String,
    pub version: String,
    pub state: String,
}

/// Labels of an event source's lag.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub account: String,
    pub function: String,
    /// The source's ARN or name (a queue, a stream).
    pub source: String,
}

/// One gauge reading a [`GaugeSource`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// Environments of a function version in `state` (`idle`, `busy`).
    Environments {
        function: FunctionLabels,
        state: &'static str,
        count: u64,
    },
    /// Provisioned environments: requested and busy (utilisation is busy / requested).
    Provisioned {
        function: FunctionLabels,
        requested: u64,
        busy: u64,
    },
    /// Events of a function waiting on the durable path, and the oldest one's age.
    AsyncQueue {
        function: FunctionLabels,
        depth: u64,
        oldest_age_seconds: f64,
    },
    /// How far an event source is behind (messages or records not yet handed to the function).
    SourceLag { source: SourceLabels, lag: u64 },
    /// The node's memory budget and what live environments are counted at (MiB).
    MemoryBudget { budget_mb: u64, used_mb: u64 },
    /// Connections the front door holds open.
    OpenConnections(u64),
    /// Usage records the usage writer could not keep up with, since start.
    UsageRecordsLost(u64),
}

/// Something that reports gauges at scrape time (the engine's pools, the event path, a
/// queue poller). Implemented in the binary's glue or by a service crate.
pub trait GaugeSource: Send + Sync {
    fn read(&self, out: &mut Vec<Reading>);
}

/// Duration buckets in seconds: 1 ms to about 16 minutes (Lambda's longest timeout).
fn duration_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        300.0, 900.0,
    ])
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The registry and its families.
pub struct Metrics {
    registry: Registry,
    invocations: Family<InvocationLabels, Counter>,
    errors: Family<FunctionLabels, Counter>,
    throttles: Family<FunctionLabels, Counter>,
    cold_starts: Family<FunctionLabels, Counter>,
    duration: HistogramFamily<FunctionLabels>,
    init_duration: HistogramFamily<FunctionLabels>,
    concurrent: Family<FunctionLabels, Gauge>,
    environments: Family<StateLabels, Gauge>,
    provisioned_utilization: Family<FunctionLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    async_depth: Family<FunctionLabels, Gauge>,
    async_age: Family<FunctionLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    source_lag: Family<SourceLabels, Gauge>,
    memory_budget: Gauge,
    memory_used: Gauge,
    connections: Gauge,
    lost_records: Gauge,
    sources: RwLock<Vec<Arc<dyn GaugeSource>>>,
    /// One scrape at a time: gauges are cleared and refilled while it is held.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("updraft");
        let invocations = Family::<InvocationLabels, Counter>::default();
        let errors = Family::<FunctionLabels, Counter>::default();
        let throttles = Family::<FunctionLabels, Counter>::default();
        let cold_starts = Family::<FunctionLabels, Counter>::default();
        let duration: HistogramFamily<FunctionLabels> =
            Family::new_with_constructor(duration_histogram);
        let init_duration: HistogramFamily<FunctionLabels> =
            Family::new_with_constructor(duration_histogram);
        let concurrent = Family::<FunctionLabels, Gauge>::default();
        let environments = Family::<StateLabels, Gauge>::default();
        let provisioned_utilization = Family::default();
        let async_depth = Family::<FunctionLabels, Gauge>::default();
        let async_age = Family::default();
        let source_lag = Family::<SourceLabels, Gauge>::default();
        let memory_budget = Gauge::default();
        let memory_used = Gauge::default();
        let connections = Gauge::default();
        let lost_records = Gauge::default();
        registry.register(
            "invocations",
            "Invocations by source and outcome (throttles included, as outcome throttle)",
            invocations.clone(),
        );
        registry.register(
            "errors",
            "Invocations that failed (function error, timeout, crash, out of memory, init)",
            errors.clone(),
        );
        registry.register("throttles", "Invocations refused", throttles.clone());
        registry.register(
            "cold_starts",
            "Invocations that started an environment",
            cold_starts.clone(),
        );
        registry.register(
            "duration_seconds",
            "Invocation duration (as REPORT Duration)",
            duration.clone(),
        );
        registry.register(
            "init_duration_seconds",
            "Init phase of cold starts",
            init_duration.clone(),
        );
        registry.register(
            "concurrent_executions",
            "Invocations running now",
            concurrent.clone(),
        );
        registry.register(
            "environments",
            "Execution environments by state",
            environments.clone(),
        );
        registry.register(
            "provisioned_concurrency_utilization",
            "Busy provisioned environments over requested ones (0..1)",
            provisioned_utilization.clone(),
        );
        registry.register(
            "async_queue_depth",
            "Asynchronous events waiting or running on the durable path",
            async_depth.clone(),
        );
        registry.register(
            "async_event_age_seconds",
            "Age of the oldest asynchronous event still waiting",
            async_age.clone(),
        );
        registry.register(
            "event_source_lag",
            "Records an event source has not yet handed to its function",
            source_lag.clone(),
        );
        registry.register(
            "memory_budget_mib",
            "The node's memory budget for environments",
            memory_budget.clone(),
        );
        registry.register(
            "memory_in_use_mib",
            "Memory live environments are counted at",
            memory_used.clone(),
        );
        registry.register(
            "open_connections",
            "Connections the front door holds",
            connections.clone(),
        );
        registry.register(
            "usage_records_lost",
            "Usage records the writer could not keep up with, since start",
            lost_records.clone(),
        );
        Self {
            registry,
            invocations,
            errors,
            throttles,
            cold_starts,
            duration,
            init_duration,
            concurrent,
            environments,
            provisioned_utilization,
            async_depth,
            async_age,
            source_lag,
            memory_budget,
            memory_used,
            connections,
            lost_records,
            sources: RwLock::new(Vec::new()),
            scrape: Mutex::new(()),
        }
    }

    /// Adds a source of scrape-time gauges.
    pub fn add_source(&self, source: Arc<dyn GaugeSource>) {
        self.sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// The exposition text (`text/plain; version=0.0.4` compatible OpenMetrics text).
    pub fn render(&self) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        let mut readings = Vec::new();
        for s in self
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            s.read(&mut readings);
        }
        self.concurrent.clear();
        self.environments.clear();
        self.provisioned_utilization.clear();
        self.async_depth.clear();
        self.async_age.clear();
        self.source_lag.clear();
        for r in readings {
            match r {
                Reading::Environments {
                    function,
                    state,
                    count,
                } => {
                    if state == "busy" {
                        self.concurrent
                            .get_or_create(&function)
                            .inc_by(count as i64);
                    }
                    let l = StateLabels {
                        account: function.account,
                        function: function.function,
                        version: function.version,
                        state: state.to_string(),
                    };
                    self.environments.get_or_create(&l).inc_by(count as i64);
                }
                Reading::Provisioned {
                    function,
                    requested,
                    busy,
                } => {
                    let u = if requested == 0 {
                        0.0
                    } else {
                        busy as f64 / requested as f64
                    };
                    self.provisioned_utilization.get_or_create(&function).set(u);
                }
                Reading::AsyncQueue {
                    function,
                    depth,
                    oldest_age_seconds,
                } => {
                    self.async_depth.get_or_create(&function).set(depth as i64);
                    self.async_age
                        .get_or_create(&function)
                        .set(oldest_age_seconds);
                }
                Reading::SourceLag { source, lag } => {
                    self.source_lag.get_or_create(&source).set(lag as i64);
                }
                Reading::MemoryBudget { budget_mb, used_mb } => {
                    self.memory_budget.set(budget_mb as i64);
                    self.memory_used.set(used_mb as i64);
                }
                Reading::OpenConnections(n) => {
                    self.connections.set(n as i64);
                }
                Reading::UsageRecordsLost(n) => {
                    self.lost_records.set(n as i64);
                }
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("encoding metrics: {e}");
        }
        out
    }
}

impl UsageSink for Metrics {
    fn records(&self, batch: &[UsageRecord]) {
        // Label sets are built once per function version and outcome of the batch, not once
        // per record: a busy function's batch is thousands of records of one or two sets.
        let mut groups: std::collections::HashMap<(&str, &str, &str), Vec<&UsageRecord>> =
            std::collections::HashMap::new();
        for r in batch {
            groups
                .entry((&r.account_id, &r.function_name, &r.version))
                .or_default()
                .push(r);
        }
        for ((account, function, version), records) in groups {
            let f = FunctionLabels {
                account: account.to_string(),
                function: function.to_string(),
                version: version.to_string(),
            };
            let mut by_outcome: std::collections::HashMap<(&str, &str), u64> =
                std::collections::HashMap::new();
            let (mut throttles, mut errors, mut cold) = (0u64, 0u64, 0u64);
            let duration = self.duration.get_or_create_owned(&f);
            let init = self.init_duration.get_or_create_owned(&f);
            for r in &records {
                *by_outcome
                    .entry((r.source.as_str(), r.outcome.as_str()))
                    .or_default() += 1;
                if r.outcome == updraft_engine::UsageOutcome::Throttle {
                    throttles += 1;
                    continue;
                }
                errors += u64::from(r.outcome.is_error());
                cold += u64::from(r.cold_start);
                if let Some(ms) = r.init_duration_ms {
                    init.observe(ms / 1000.0);
                }
                duration.observe(r.duration_ms / 1000.0);
            }
            for ((source, outcome), n) in by_outcome {
                self.invocations
                    .get_or_create(&InvocationLabels {
                        account: f.account.clone(),
                        function: f.function.clone(),
                        version: f.version.clone(),
                        source: source.to_string(),
                        outcome: outcome.to_string(),
                    })
                    .inc_by(n);
            }
            if throttles > 0 {
                self.throttles.get_or_create(&f).inc_by(throttles);
            }
            if errors > 0 {
                self.errors.get_or_create(&f).inc_by(errors);
            }
            if cold > 0 {
                self.cold_starts.get_or_create(&f).inc_by(cold);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::tests::record;

    struct Fixed;
    impl GaugeSource for Fixed {
        fn read(&self, out: &mut Vec<Reading>) {
            let function = FunctionLabels {
                account: "1".into(),
                function: "f".into(),
                version: "$LATEST".into(),
            };
            out.push(Reading::Environments {
                function: function.clone(),
                state: "busy",
                count: 2,
            });
            out.push(Reading::Provisioned {
                function,
                requested: 4,
                busy: 1,
            });
            out.push(Reading::OpenConnections(3));
        }
    }

    #[test]
    fn records_and_gauges_reach_the_text() {
        let m = Metrics::new();
        m.add_source(Arc::new(Fixed));
        let mut fail = record("a", 1, 10, 128);
        fail.outcome = updraft_engine::UsageOutcome::Timeout;
        m.records(&[record("a", 0, 10, 128), fail]);
        let text = m.render();
        assert!(text.contains("updraft_errors_total{account=\"111111111111\",function=\"a\",version=\"$LATEST\"} 1"), "{text}");
        assert!(text.contains("updraft_duration_seconds_count{account=\"111111111111\",function=\"a\",version=\"$LATEST\"} 2"), "{text}");
        assert!(
            text.contains(
                "updraft_concurrent_executions{account=\"1\",function=\"f\",version=\"$LATEST\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("updraft_provisioned_concurrency_utilization{account=\"1\",function=\"f\",version=\"$LATEST\"} 0.25"), "{text}");
        assert!(text.contains("updraft_open_connections 3"), "{text}");
    }
}
