//! Wiring of metering into this node: the usage report learns functions' architectures and
//! tags from the control plane through `FunctionDirectory`; `/metrics` reads the engine's
//! pools, the node's memory budget and connections, and the durable event path's queues.

use std::collections::BTreeMap;
use std::sync::Arc;

use updraft_control::ControlPlane;
use updraft_engine::Engine;
use updraft_events::Events;
use updraft_observe::metrics::FunctionLabels;
use updraft_observe::{FunctionDirectory, GaugeSource, Reading};

/// Answers from the control plane's in-memory view.
pub struct Directory(pub Arc<ControlPlane>);

impl FunctionDirectory for Directory {
    fn architecture(&self, account_id: &str, function: &str) -> Option<String> {
        let d = self.0.get_function(account_id, function, None).ok()?;
        d.config.architectures.first().cloned()
    }

    fn tags(&self, account_id: &str, function: &str) -> BTreeMap<String, String> {
        self.0
            .get_function(account_id, function, None)
            .map(|d| d.tags)
            .unwrap_or_default()
    }
}

/// `arn:aws:lambda:<region>:<account>:function:<name>` → (account, name).
fn account_and_name(arn: &str) -> (String, String) {
    let parts: Vec<&str> = arn.split(':').collect();
    (
        parts.get(4).copied().unwrap_or_default().to_string(),
        parts.get(6).copied().unwrap_or_default().to_string(),
    )
}

fn labels(arn: &str, version: &str) -> FunctionLabels {
    let (account, function) = account_and_name(arn);
    FunctionLabels {
        account,
        function,
        version: version.to_string(),
    }
}

/// The engine's pools, provisioned environments and memory budget, and the front door's
/// connections.
pub struct NodeGauges {
    pub engine: Arc<Engine>,
    pub control: Arc<ControlPlane>,
    pub usage: Arc<updraft_observe::UsageStore>,
}

impl GaugeSource for NodeGauges {
    fn read(&self, out: &mut Vec<Reading>) {
        for p in self.engine.pool_stats() {
            let f = labels(&p.function_arn, &p.version);
            let busy = p.live.saturating_sub(p.idle) as u64;
            out.push(Reading::Environments {
                function: f.clone(),
                state: "idle",
                count: p.idle as u64,
            });
            out.push(Reading::Environments {
                function: f,
                state: "busy",
                count: busy,
            });
        }
        for arn in self.control.provisioned_functions() {
            for s in self.engine.provisioned_stats(&arn) {
                out.push(Reading::Provisioned {
                    function: labels(&s.function_arn, &s.version),
                    requested: u64::from(s.requested),
                    busy: u64::from(s.allocated.saturating_sub(s.available)),
                });
            }
        }
        out.push(Reading::MemoryBudget {
            budget_mb: self.engine.memory_budget_mb(),
            used_mb: self.engine.memory_in_use_mb(),
        });
        out.push(Reading::OpenConnections(
            crate::http::open_connections() as u64
        ));
        out.push(Reading::UsageRecordsLost(self.usage.lost()));
    }
}

/// Items listed per function when looking for the oldest waiting event.
const AGE_SCAN: usize = 1000;

/// Depth and oldest event of each function's asynchronous queue (functions with environments
/// on this node).
pub struct AsyncGauges {
    pub engine: Arc<Engine>,
    pub events: Arc<Events>,
}

impl GaugeSource for AsyncGauges {
    fn read(&self, out: &mut Vec<Reading>) {
        let mut seen = std::collections::BTreeSet::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        for p in self.engine.pool_stats() {
            if !seen.insert(p.function_arn.clone()) {
                continue;
            }
            let Ok(s) = self.events.summary(&p.function_arn, AGE_SCAN) else {
                continue;
            };
            let depth = s.pending + s.in_flight + s.retrying;
            // Items come newest first: the oldest is known when the list holds them all.
            let oldest = (depth as usize <= s.items.len())
                .then(|| {
                    s.items
                        .iter()
                        .filter(|i| i.state != updraft_events::State::Failed)
                        .map(|i| i.created_at_ms)
                        .min()
                })
                .flatten();
            out.push(Reading::AsyncQueue {
                function: labels(&p.function_arn, "$LATEST"),
                depth,
                oldest_age_seconds: oldest
                    .map(|t| (now - t).max(0) as f64 / 1000.0)
                    .unwrap_or(0.0),
            });
        }
    }
}

/// Serves `/metrics` (and nothing else) without authentication on `addr`, for a scraper the
/// operator points at it.
pub async fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: Arc<updraft_observe::Metrics>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding --metrics-listen {addr}"))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move {
                let text = tokio::task::spawn_blocking(move || m.render())
                    .await
                    .unwrap_or_default();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        updraft_observe::metrics::CONTENT_TYPE,
                    )],
                    text,
                )
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics listener: {e}");
        }
    });
    Ok(())
}

/// Samples the engine's running executions once a second into CloudWatch's
/// `ConcurrentExecutions` (per function and per account), for the life of the process.
pub fn spawn_concurrency_sampler(
    engine: Arc<Engine>,
    cloudwatch: Arc<updraft_observe::CloudWatch>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("concurrency-sampler".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let mut running: std::collections::BTreeMap<(String, String), u64> =
                    Default::default();
                for p in engine.pool_stats() {
                    let (account, function) = account_and_name(&p.function_arn);
                    *running.entry((account, function)).or_default() +=
                        p.live.saturating_sub(p.idle) as u64;
                }
                let samples: Vec<(String, String, u64)> =
                    running.into_iter().map(|((a, f), n)| (a, f, n)).collect();
                cloudwatch.sample_concurrency(&samples);
            }
        })?;
    Ok(())
}
