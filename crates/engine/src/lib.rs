//! Updraft's execution engine: it turns an invocation of a function version into a run inside an
//! isolated execution environment that speaks the real Lambda Runtime API.
//!
//! Components, each in its own module:
//! - `runtimes`: the registry of Lambda runtime ids (`python3.12`, `nodejs20.x`,
//!   `provided.al2023`, ...) and how each is started on this host (which interpreter, which argv,
//!   which host paths the jail must see); listed by [`Engine::runtimes`].
//! - `runtime_install`: `updraft runtime install nodejsNN.x`, an exact Node.js release from the
//!   npm registry's per-platform packages, unpacked where `runtimes` finds it.
//! - `envvars`: the environment of the runtime process, built the way Lambda builds it.
//! - `runtime_api`: one HTTP server per environment (`/2018-06-01/runtime/...`), served on the
//!   listener the sandbox created inside the environment's own network namespace; streamed
//!   responses (`Lambda-Runtime-Function-Response-Mode: streaming`) are handed on unread.
//! - `pool`: one pool of environments per (function, version, generation); admission (account and
//!   reserved concurrency, the node's memory budget), cold starts, warm reuse, timeouts, crashes,
//!   idle reaping and retirement; `pool::provision` keeps provisioned environments
//!   ([`Engine::set_provisioned`]).
//! - `env`: one execution environment: the jail, its Runtime API server, its log pumps and the
//!   thread that notices its exit.
//! - `logs`: per-environment log stream files with Lambda's `START`/`END`/`REPORT` lines, the tail
//!   returned for `LogType: Tail`, and reading events back for the API.
//! - `metering`: one [`UsageRecord`] per invocation, published on a broadcast channel.
//! - `launcher` / `prewarm`: how environments are started: built on demand, or taken from the
//!   environments `prewarm` keeps built per runtime before their function is known and assigned
//!   to it on a cold start.
//! - `freeze`: environments frozen between invocations (after an optional grace period) and thawed
//!   when an event is handed over ([`LifecycleOptions`]); the Extensions and Telemetry APIs live in
//!   `runtime_api/extensions.rs` and `runtime_api/telemetry.rs`.
//! - `keepalive`: the keep-alive policies (fixed, and adaptive from per-function idle-time
//!   histograms, with pre-warming); `pool::keep` applies them and counts cold and warm starts,
//!   pre-warms and idle memory ([`Engine::stats`]).
//!
//! Architecture invariants: the engine speaks domain types (AWS wire shapes of the public API live
//! at the front door; only the Runtime API, which runtimes inside the jail call, has its wire shape
//! here); the invoke path never touches a database; no `unsafe` here (isolation is the sandbox
//! crate's job, reached through the `launcher` seam).

mod compiled;
mod dotnet;
mod env;
mod envvars;
mod freeze;
mod jvm;
pub mod keepalive;
mod launcher;
mod logs;
mod messages;
mod metering;
mod pool;
mod prewarm;
mod runtime_api;
pub mod runtime_install;
mod runtimes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use freeze::{LifecycleOptions, MAX_FREEZE_GRACE};
pub use keepalive::{Decision, KeepAlive, KeepAliveMode};
pub use logs::{
    LogEvent, LogPage, LogSettings, MAX_PAGE_EVENTS, read_logs, read_logs_page,
    set_log_segment_bytes, stream_file_name, stream_name_from_file,
};
pub use metering::{InvocationSource, LogLineHook, UsageOutcome, UsageRecord};
pub use runtime_api::{MAX_PAYLOAD_BYTES, MAX_STREAMED_RESPONSE_BYTES};
// The pure head-of-request parts of the Runtime API, public for the fuzz targets only.
pub use pool::random_u64;
pub use prewarm::PrewarmStats;
#[doc(hidden)]
pub use runtime_api::{RuntimeRoute, StreamedError, route as runtime_route, trailer_error};
pub use runtimes::{RuntimeInfo, RuntimeOptions, installed_dir};

/// How the engine of one node is set up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The engine writes `runtimes/` (runtime client files) and `logs/` (log streams) below it.
    pub data_dir: PathBuf,
    /// Region reported to functions (`AWS_REGION`, `AWS_DEFAULT_REGION`).
    pub region: String,
    /// Concurrent invocations of the whole account on this node (Lambda's default is 1000).
    pub account_concurrency: u32,
    /// How long an idle environment is kept warm before it is stopped (with the adaptive
    /// keep-alive: while a function's idle-time histogram is not trusted).
    pub idle_timeout: Duration,
    /// The keep-alive policy (see [`keepalive`]).
    pub keep_alive: KeepAlive,
    /// Memory the node's environments may hold, in MiB: each counts at its `MemorySize` while it
    /// starts or runs; when the budget runs short, idle ones count at what their cgroup is charged
    /// (they need their `MemorySize` again only to run, and get it back first), then the least
    /// recently used idle ones are stopped.
    pub memory_budget_mb: u64,
    /// The `updraft` executable, re-executed as `updraft __jail` to build each environment.
    pub helper_exe: PathBuf,
    /// Pre-warmed environments kept ready per runtime (0: every cold start builds its
    /// environment); see `prewarm`. Needs root and Linux 5.12.
    pub prewarm: usize,
    /// The most pre-warmed environments kept per runtime while cold starts call for them (the
    /// pool grows from `prewarm` with the cold starts of the last ten seconds).
    pub prewarm_max: usize,
    /// Operator overrides and strictness of the runtime id → interpreter mapping (`data_dir` is
    /// filled in from the field above).
    pub runtimes: RuntimeOptions,
    /// How long a streamed response may wait for its reader to take the next piece: a reader
    /// that takes nothing for this long is treated as gone (the rest of the response is read and
    /// dropped, so the environment is released when the function ends, not at its timeout).
    pub stream_write_timeout: Duration,
    /// Freezing between invocations and CPU ceilings (see `freeze`).
    pub lifecycle: LifecycleOptions,
}

impl EngineConfig {
    /// A configuration with Lambda's defaults: region `us-east-1`, account concurrency 1000,
    /// 300 s fixed keep-warm, and a memory budget of the host's total memory (8 GiB when unknown).
    pub fn new(data_dir: PathBuf, helper_exe: PathBuf) -> Self {
        EngineConfig {
            data_dir,
            region: "us-east-1".to_string(),
            account_concurrency: 1000,
            idle_timeout: Duration::from_secs(300),
            keep_alive: KeepAlive::default(),
            memory_budget_mb: host_memory_mb().unwrap_or(8192),
            helper_exe,
            prewarm: 1,
            prewarm_max: 8,
            runtimes: RuntimeOptions::default(),
            stream_write_timeout: DEFAULT_STREAM_WRITE_TIMEOUT,
            lifecycle: LifecycleOptions::default(),
        }
    }
}

/// Default of [`EngineConfig::stream_write_timeout`]: long enough for a reader on a slow link,
/// short next to the 15 minutes a function may run.
pub const DEFAULT_STREAM_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Total memory of the host in MiB, from `/proc/meminfo`.
pub fn host_memory_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Everything the engine needs to know about one function version to run it.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub account_id: String,
    pub function_name: String,
    /// Unqualified ARN; reserved concurrency is counted per this ARN across versions.
    pub function_arn: String,
    /// `"$LATEST"` or `"1"`, `"2"`, ...
    pub version: String,
    /// Changes whenever code or configuration of this version changes (the RevisionId); a new
    /// generation gets a new pool, and [`Engine::retire`] drains the old ones.
    pub generation: String,
    /// Lambda runtime id: `python3.12`, `nodejs20.x`, `provided.al2023`, ...
    pub runtime: String,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub ephemeral_mb: u32,
    /// The function's own environment variables.
    pub environment: Vec<(String, String)>,
    /// Extracted package (read-only), mounted at `/var/task`.
    pub code_dir: PathBuf,
    /// The function's layers merged into one tree (read-only), mounted at `/opt`.
    pub opt_dir: Option<PathBuf>,
    /// `Some(0)` means the function is disabled (every invocation is throttled).
    pub reserved_concurrency: Option<u32>,
    /// `"/aws/lambda/<name>"`, or the group `LoggingConfig.LogGroup` names.
    pub log_group: String,
    /// The rest of `LoggingConfig`: format and levels.
    pub logging: LogSettings,
}

/// One synchronous invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub payload: bytes::Bytes,
    /// ARN as invoked (with the qualifier if one was given).
    pub invoked_function_arn: String,
    /// `X-Amz-Client-Context` as sent by the client (base64 JSON); the Runtime API hands the runtime
    /// the decoded JSON, as Lambda does.
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    /// X-Ray trace header; one is generated when absent (Lambda always sends one).
    pub trace_id: Option<String>,
    /// `LogType: Tail`.
    pub want_log_tail: bool,
    /// Who asked (a usage dimension).
    pub source: InvocationSource,
}

/// What an invocation produced. Function failures (handler errors, init errors, timeouts, crashes)
/// are outcomes with `function_error`, as on Lambda, not [`InvokeError`]s.
#[derive(Debug, Clone)]
pub struct InvokeOutcome {
    pub payload: bytes::Bytes,
    /// `Some("Unhandled")` when the function failed.
    pub function_error: Option<&'static str>,
    /// The last 4 KiB of this invocation's log (`START` .. `REPORT`), raw bytes (not base64).
    pub log_tail: Option<Vec<u8>>,
    pub executed_version: String,
}

/// One event of a streaming invocation: any number of `Chunk`s, then exactly one `Complete`, then
/// the channel closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// Response bytes, in order, as the runtime wrote them (never empty).
    Chunk(bytes::Bytes),
    /// The end of the invocation.
    Complete {
        /// Why the function failed, if it did: an error the runtime reported (posted before the
        /// first byte or in the trailers after it), a timeout, a crash, an init failure or a
        /// response over the limit. Bytes already sent as chunks stay sent.
        function_error: Option<FunctionError>,
        /// As [`InvokeOutcome::log_tail`]: `Some` exactly when `want_log_tail` was set.
        log_tail: Option<Vec<u8>>,
    },
}

/// A function failure as a streaming invocation reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// `Lambda-Runtime-Function-Error-Type` as the runtime gave it (`Error`, `TypeError`, ...), else
    /// the body's `errorType`, else `Unhandled`; the platform's own failures use
    /// `Sandbox.Timedout`, `Runtime.ExitError`, `Runtime.OutOfMemory`,
    /// `Function.ResponseSizeTooLarge` or the init error's type.
    pub error_type: String,
    /// The error document, JSON in Lambda's shape (`{"errorMessage":…,"errorType":…}`), as
    /// [`InvokeOutcome::payload`] would carry it.
    pub error_body: bytes::Bytes,
}

/// A streaming invocation that has begun to answer. Returned by [`Engine::invoke_streaming`].
#[derive(Debug)]
pub struct StreamingInvocation {
    /// The version that runs (`"$LATEST"`, `"1"`, ...).
    pub executed_version: String,
    /// `Content-Type` the runtime gave its response (`application/octet-stream` is the default of
    /// Lambda's streaming runtimes; `application/vnd.awslambda.http-integration-response` means
    /// the body starts with the HTTP prelude: JSON metadata then 8 NUL bytes). `None` when the
    /// invocation ended before any response (an error, timeout or crash; see `Complete`).
    pub content_type: Option<String>,
    /// Whether the runtime streamed its response (`false` for a buffered response, which comes as
    /// one chunk, and when there was no response).
    pub streamed: bool,
    /// The events, in order. Dropping the receiver does not stop the invocation: the rest of the
    /// response is read and dropped.
    pub events: tokio::sync::mpsc::Receiver<StreamEvent>,
}

/// Events buffered between a streaming invocation and its reader before the runtime's writes wait.
const STREAM_CHANNEL: usize = 16;

/// Reasons an invocation could not be run at all.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// `reason` is `ConcurrentInvocationLimitExceeded` (account concurrency),
    /// `ReservedFunctionConcurrentInvocationLimitExceeded` (reserved concurrency of the function) or
    /// `CapacityLimitExceeded` (the node's memory budget is used up by busy environments).
    #[error("rate exceeded: {reason}")]
    Throttled { reason: &'static str },
    /// The runtime id is unknown or its interpreter is not on this host.
    #[error("runtime unavailable: {0}")]
    RuntimeUnavailable(String),
    /// The engine is shutting down and accepts no new invocations.
    #[error("engine is shutting down")]
    ShuttingDown,
    /// The environment could not be built (sandbox failure) or another platform fault.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Reason string of [`InvokeError::Throttled`] for the account concurrency limit.
pub const THROTTLE_ACCOUNT: &str = "ConcurrentInvocationLimitExceeded";
/// Reason string of [`InvokeError::Throttled`] for a function's reserved concurrency.
pub const THROTTLE_RESERVED: &str = "ReservedFunctionConcurrentInvocationLimitExceeded";
/// Reason string of [`InvokeError::Throttled`] for the node's memory budget.
pub const THROTTLE_CAPACITY: &str = "CapacityLimitExceeded";

/// Failures of engine setup and of reading logs.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("engine must be created inside a tokio runtime")]
    NoRuntime,
    #[error("cannot create directory {0}: {1}")]
    CreateDir(PathBuf, std::io::Error),
    #[error("cannot write runtime client {0}: {1}")]
    WriteRuntimeClient(PathBuf, std::io::Error),
    #[error("invalid name {0:?}")]
    InvalidName(String),
    #[error("cannot read log stream {0}: {1}")]
    ReadLogs(PathBuf, std::io::Error),
    #[error("invalid log pagination token")]
    InvalidLogToken,
    #[error("cannot start the pre-warming thread: {0}")]
    Prewarm(std::io::Error),
}

/// Counts of one pool's environments, for `ls`, metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    pub function_arn: String,
    pub version: String,
    pub generation: String,
    /// Environments waiting for work.
    pub idle: usize,
    /// All environments of the pool that are alive (initialising, idle or busy).
    pub live: usize,
}

/// Provisioned-concurrency counts of one pool, for the API's status of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedStats {
    pub function_arn: String,
    pub version: String,
    pub generation: String,
    /// Environments requested with [`Engine::set_provisioned`].
    pub requested: u32,
    /// Provisioned environments alive and initialised (idle or busy).
    pub allocated: u32,
    /// Provisioned environments idle right now, ready for an invocation.
    pub available: u32,
    /// Why starting an environment failed, while the failures go on (`None` once one starts).
    pub failure: Option<String>,
}

/// Engine-wide counters of starts, pre-warms and idle memory since the engine started, with
/// every function version's share and its keep-alive state.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineStats {
    pub keep_alive: KeepAlive,
    pub idle_timeout: Duration,
    /// Invocations that started an environment of their own.
    pub cold_starts: u64,
    /// Invocations that took an idle environment (pre-warmed and provisioned ones included).
    pub warm_starts: u64,
    /// Environments started by the adaptive keep-alive ahead of an expected invocation.
    pub prewarms_started: u64,
    /// Pre-warmed environments that an invocation took.
    pub prewarms_used: u64,
    /// Integral over time of the `MemorySize` of idle, non-provisioned environments (MiB·s),
    /// sampled by the keeper tick.
    pub idle_mib_seconds: f64,
    /// `MemorySize` of idle, non-provisioned environments at the last tick (MiB).
    pub idle_mb_now: u64,
    /// Environments built before their function was known (`--prewarm`); `None` when off.
    pub prewarmed: Option<PrewarmStats>,
    pub functions: Vec<FunctionWarmthStats>,
}

/// One function version's part of [`EngineStats`].
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionWarmthStats {
    pub function_arn: String,
    pub version: String,
    pub cold_starts: u64,
    pub warm_starts: u64,
    pub prewarms_started: u64,
    pub prewarms_used: u64,
    pub idle_mib_seconds: f64,
    /// Idle times recorded (adaptive keep-alive only).
    pub idle_samples: u64,
    /// Of those, the ones beyond the histogram's range.
    pub idle_out_of_range: u64,
    /// The windows of the current or last idle period (adaptive keep-alive).
    pub decision: Option<Decision>,
}

/// The engine of one node. Create it once with [`Engine::new`] inside a tokio runtime.
pub struct Engine {
    inner: Arc<pool::Inner>,
    handle: tokio::runtime::Handle,
}

impl Engine {
    /// Probes the host's interpreters, writes the embedded runtime clients to
    /// `<data_dir>/runtimes/{python,node}/`, creates `<data_dir>/logs/` and starts the keeper
    /// (idle reaper, pre-warms, idle-memory sampling).
    /// Must be called inside a tokio runtime.
    pub fn new(cfg: EngineConfig) -> Result<Arc<Engine>, EngineError> {
        let launcher: Arc<dyn launcher::Launcher> = if cfg.prewarm == 0 {
            Arc::new(launcher::JailLauncher::new(cfg.helper_exe.clone()))
        } else if !updraft_sandbox::prewarm_supported() {
            tracing::warn!(
                "pre-warmed environments need root and Linux 5.12 (open_tree, move_mount): every \
                 cold start builds its environment"
            );
            Arc::new(launcher::JailLauncher::new(cfg.helper_exe.clone()))
        } else {
            // What /var/task shows in an environment that waits for its function.
            let placeholder = cfg.data_dir.join("runtimes").join("empty");
            std::fs::create_dir_all(&placeholder)
                .map_err(|e| EngineError::CreateDir(placeholder.clone(), e))?;
            Arc::new(
                prewarm::PrewarmLauncher::new(
                    cfg.helper_exe.clone(),
                    placeholder,
                    cfg.prewarm,
                    cfg.prewarm_max,
                )
                .map_err(EngineError::Prewarm)?,
            )
        };
        Self::with_launcher(cfg, launcher, pool::Timings::default())
    }

    pub(crate) fn with_launcher(
        cfg: EngineConfig,
        launcher: Arc<dyn launcher::Launcher>,
        timings: pool::Timings,
    ) -> Result<Arc<Engine>, EngineError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| EngineError::NoRuntime)?;
        let registry = runtimes::RuntimeRegistry::discover(&RuntimeOptions {
            data_dir: Some(cfg.data_dir.clone()),
            ..cfg.runtimes.clone()
        });
        runtimes::install_clients(&cfg.data_dir)?;
        let logs_dir = cfg.data_dir.join("logs");
        std::fs::create_dir_all(&logs_dir)
            .map_err(|e| EngineError::CreateDir(logs_dir.clone(), e))?;
        let inner = pool::Inner::new(cfg, registry, launcher, timings);
        pool::keep::spawn_keeper(&handle, &inner);
        Ok(Arc::new(Engine { inner, handle }))
    }

    /// Every runtime id Updraft knows, whether it can run here and the interpreter it uses.
    pub fn runtimes(&self) -> Vec<RuntimeInfo> {
        self.inner.registry.infos()
    }

    /// Whether functions may use `runtime` on this node: `Ok(Some(note))` when it runs on a
    /// nearer version than it names (the note says which, to be shown to the user), `Err` with
    /// the reason when it cannot run (unknown, no interpreter, or `--strict-runtimes` refusing
    /// a nearer version).
    pub fn check_runtime(&self, runtime: &str) -> Result<Option<String>, String> {
        self.inner.registry.check(runtime)
    }

    /// Whether functions whose runtime cannot run exactly as named are refused
    /// (`--strict-runtimes`) rather than created with a note.
    pub fn strict_runtimes(&self) -> bool {
        self.inner.cfg.runtimes.strict
    }

    /// Runs one invocation: takes a warm environment of the function version or starts one, hands
    /// it the event, and waits for its response, error, crash or timeout. The invocation runs to
    /// its end even if the caller stops waiting (a client that hangs up does not kill the
    /// environment mid-invocation, as on Lambda). Resolves as soon as the runtime has answered;
    /// the environment writes `END`/`REPORT` and returns to its pool afterwards (with
    /// `want_log_tail`, whose tail must hold them, it resolves after them).
    pub async fn invoke(
        &self,
        spec: Arc<FunctionSpec>,
        inv: Invocation,
    ) -> Result<InvokeOutcome, InvokeError> {
        self.inner.invoke(spec, inv).await
    }

    /// Runs one invocation and hands its response on as it is produced. Resolves once the function
    /// starts answering (the runtime opened its streamed response, posted a buffered one, or the
    /// invocation ended without one), or with an [`InvokeError`] when it cannot run at all
    /// (throttled, unknown runtime, shutting down, environment not started): those errors never
    /// arrive through the stream.
    ///
    /// A streamed response (`Lambda-Runtime-Function-Response-Mode: streaming`) arrives chunk by
    /// chunk as the runtime writes it, limited to [`MAX_STREAMED_RESPONSE_BYTES`]; an error in
    /// its trailers, a timeout, a crash or a response over the limit ends the stream with
    /// `Complete { function_error: Some(..) }`. A buffered response arrives as one chunk. The
    /// function's timeout bounds the whole response, whatever the reader's pace.
    pub async fn invoke_streaming(
        &self,
        spec: Arc<FunctionSpec>,
        inv: Invocation,
    ) -> Result<StreamingInvocation, InvokeError> {
        let (tx, events) = tokio::sync::mpsc::channel(STREAM_CHANNEL);
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        let executed_version = spec.version.clone();
        let inner = self.inner.clone();
        let write_timeout = inner.cfg.stream_write_timeout;
        tokio::spawn(async move {
            inner
                .invoke_streaming(
                    spec,
                    inv,
                    pool::stream::Forwarder::new(tx, head_tx, write_timeout),
                )
                .await;
        });
        match head_rx.await {
            Ok(Ok(head)) => Ok(StreamingInvocation {
                executed_version,
                content_type: head.content_type,
                streamed: head.streamed,
                events,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(InvokeError::Internal(
                "streaming invocation task ended without an answer".to_string(),
            )),
        }
    }

    /// Drains (stops once idle) all environments of this function whose generation differs from
    /// `keep_generation`, or all of them if `None`. Busy environments finish their invocation first.
    /// Pools with provisioned concurrency are kept (see [`Engine::set_provisioned`]).
    pub fn retire(&self, function_arn: &str, keep_generation: Option<&str>) {
        self.inner.retire(function_arn, keep_generation);
    }

    /// Keeps `count` initialised environments of `spec`'s (function, version, generation) pool:
    /// they start in the background (never on an invocation's path) with
    /// `AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`, invocations of that pool take
    /// them like any idle environment, the idle reaper and memory eviction never stop them, and
    /// one that dies is replaced. [`Engine::retire`] leaves a provisioned pool alone. A lower
    /// count stops the surplus (busy ones once their invocation ends); `0` removes the
    /// provisioning and stops its environments. The memory budget counts them.
    pub fn set_provisioned(&self, spec: Arc<FunctionSpec>, count: u32) {
        self.inner.set_provisioned(&self.handle, spec, count);
    }

    /// Makes `targets` (spec and count, as for [`Engine::set_provisioned`]) the whole
    /// provisioned concurrency of `function_arn` (unqualified): pools of the function that are
    /// provisioned but not among the targets stop being provisioned.
    pub fn sync_provisioned(&self, function_arn: &str, targets: Vec<(Arc<FunctionSpec>, u32)>) {
        self.inner
            .sync_provisioned(&self.handle, function_arn, targets);
    }

    /// Counts of every provisioned pool of `function_arn` (unqualified), by version.
    pub fn provisioned_stats(&self, function_arn: &str) -> Vec<ProvisionedStats> {
        self.inner.provisioned_stats(function_arn)
    }

    /// Stops every environment (busy ones are killed; their invocations fail) and refuses new
    /// invocations. Waits up to a few seconds for the environments to be gone.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
    }

    /// `<data_dir>/logs`; streams are at `<logs_dir>/<account>/<function_name>/<stream file>.log`
    /// (see [`stream_file_name`]).
    pub fn logs_dir(&self) -> PathBuf {
        self.inner.logs_dir.clone()
    }

    /// Log events of a function at or after `since_ms` (epoch milliseconds), oldest first.
    pub fn read_logs(
        &self,
        account_id: &str,
        function_name: &str,
        since_ms: u64,
    ) -> Result<Vec<LogEvent>, EngineError> {
        read_logs(&self.inner.logs_dir, account_id, function_name, since_ms)
    }

    /// One page of a function's log events at or after `since_ms`, after `token` (see
    /// [`read_logs_page`]).
    pub fn read_logs_page(
        &self,
        account_id: &str,
        function_name: &str,
        since_ms: u64,
        token: Option<&str>,
        limit: usize,
    ) -> Result<LogPage, EngineError> {
        read_logs_page(
            &self.inner.logs_dir,
            account_id,
            function_name,
            since_ms,
            token,
            limit,
        )
    }

    /// A receiver of one [`UsageRecord`] per finished invocation (throttled invocations produce
    /// none). A receiver that falls more than 16384 records behind loses the oldest ones
    /// (`RecvError::Lagged`).
    pub fn subscribe_usage(&self) -> tokio::sync::broadcast::Receiver<UsageRecord> {
        self.inner.usage.subscribe()
    }

    /// Environment counts of every pool.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.inner.pool_stats()
    }

    /// Cold and warm starts, pre-warms and idle memory so far, in total and per function version.
    pub fn stats(&self) -> EngineStats {
        self.inner.stats()
    }

    /// How long a streamed response waits for a reader that takes nothing (see
    /// [`EngineConfig::stream_write_timeout`]); the front door gives its writes the same limit.
    pub fn stream_write_timeout(&self) -> Duration {
        self.inner.cfg.stream_write_timeout
    }

    /// Sets where Embedded Metric Format lines of functions' output go (once; environments
    /// started afterwards use it).
    pub fn set_log_hook(&self, hook: std::sync::Arc<dyn LogLineHook>) {
        let _ = self.inner.log_hook.set(hook);
    }

    /// The node's memory budget for environments, in MiB.
    pub fn memory_budget_mb(&self) -> u64 {
        self.inner.cfg.memory_budget_mb
    }

    /// Memory the live environments are counted at, in MiB (out of `memory_budget_mb`).
    pub fn memory_in_use_mb(&self) -> u64 {
        self.inner.memory_used_mb()
    }

    /// What pre-warming did so far (`None` when environments are not pre-warmed).
    pub fn prewarm_stats(&self) -> Option<PrewarmStats> {
        self.inner.launcher.prewarm_stats()
    }
}

/// Probes the host's interpreters and lists every runtime id with its availability, without
/// starting an engine (for `updraft doctor`).
pub fn probe_runtimes(opts: &RuntimeOptions) -> Vec<RuntimeInfo> {
    runtimes::RuntimeRegistry::discover(opts).infos()
}
