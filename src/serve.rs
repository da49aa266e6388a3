//! `updraft serve`: opens the data directory, loads the store, starts the engine and serves the
//! front door until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use rand::Rng;
use updraft_api::auth::KeyRing;
use updraft_control::accounts::{Accounts, MasterKey};
use updraft_control::code::{CodeLimits, CodeStore};
use updraft_control::{Change, ControlConfig, ControlPlane};
use updraft_engine::{Engine, EngineConfig, KeepAlive, KeepAliveMode};
use updraft_sigv4::Credentials;
use updraft_store::{Op, SqliteStore, Store};

/// Address the server listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9070";

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Directory for the database, code, logs and generated credentials.
    #[arg(long, env = "UPDRAFT_DATA_DIR", default_value = ".updraft")]
    data_dir: PathBuf,
    /// Region this node answers for.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Account-wide concurrency limit.
    #[arg(long, default_value_t = 1000)]
    account_concurrency: u32,
    /// Seconds an idle execution environment is kept warm (with `--keep-alive adaptive`: while a
    /// function's idle-time history is too short or says nothing useful).
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Keep-alive policy: `fixed` keeps every idle environment for `--idle-timeout`; `adaptive`
    /// learns each function's idle times and releases early and pre-warms before the next call.
    #[arg(long, value_enum, default_value_t = KeepAliveArg::Adaptive)]
    keep_alive: KeepAliveArg,
    /// Width of one bin of the adaptive keep-alive's idle-time histogram, in milliseconds.
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    keep_alive_bin_ms: u64,
    /// Bins of the adaptive keep-alive's idle-time histogram (idle times beyond bins × bin width
    /// count as out of range).
    #[arg(long, default_value_t = 240, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    keep_alive_bins: u64,
    /// Connections served at once (more wait in the accept backlog).
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Seconds a client has to send a complete request head.
    #[arg(long, default_value_t = 10)]
    header_read_timeout: u64,
    /// Seconds a client has to send a whole request body (a slower one is answered 408).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    body_read_timeout: u64,
    /// Request body bytes the node holds at once over all requests, in MiB (at least 70, the
    /// largest body); a request that finds no room within 2 s is answered 429.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(70..=1_048_576))]
    body_budget_mb: u64,
    /// Seconds a client may take nothing of a response that is ready for it before its
    /// connection is closed; a streamed response then goes on without it, so a reader that
    /// stops reading releases the function's environment and the buffered response.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    write_timeout: u64,
    /// Memory environments may hold, in MB (default: the host's memory): MemorySize while they
    /// run; idle ones count at their measured footprint when this runs short.
    #[arg(long)]
    memory_budget_mb: Option<u64>,
    /// Environments kept built and waiting, per runtime, so that cold starts skip building the
    /// sandbox and starting the interpreter (0 turns pre-warming off).
    #[arg(long, default_value_t = 1)]
    prewarm: usize,
    /// The most pre-warmed environments kept per runtime while cold starts call for them: the
    /// pool holds one per cold start of the last ten seconds, between `--prewarm` and this.
    #[arg(long, default_value_t = 8)]
    prewarm_max: usize,
    /// Freeze environments between invocations (cgroup freezer), as Lambda does: no code of a
    /// function runs while it waits for its next event. `--freeze false` lets them run.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    freeze: bool,
    /// Milliseconds an idle environment keeps running before it is frozen (0 to 1000): an
    /// invocation arriving within it skips the thaw.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1000))]
    freeze_grace_ms: u64,
    /// CPU of environments: `weight` shares contended CPUs in proportion to MemorySize and
    /// leaves idle ones usable; `lambda` adds Lambda's ceiling (MemorySize / 1,769 of a core,
    /// at most 6 cores).
    #[arg(long, value_enum, default_value_t = CpuLimitArg::Weight)]
    cpu_limit: CpuLimitArg,
    /// Run a runtime id on this interpreter, e.g. `--runtime python3.12=/opt/py312/bin/python3`
    /// (repeatable). Without it each id runs on an interpreter of its exact version found on
    /// `PATH` or installed with `updraft runtime install`, else on the nearest version, noted.
    #[arg(long = "runtime", value_name = "ID=PATH", value_parser = parse_runtime_override)]
    runtimes: Vec<(String, PathBuf)>,
    /// Refuse functions whose runtime id has no interpreter of exactly its version here
    /// (CreateFunction answers InvalidParameterValueException) instead of running them on the
    /// nearest version.
    #[arg(long)]
    strict_runtimes: bool,
    /// Seconds between passes that remove code packages no function or version refers to
    /// (0 turns collection off).
    #[arg(long, default_value_t = 600)]
    code_gc_interval: u64,
    /// Seconds a package must have been unreferenced before it is removed; keep it above the
    /// longest function timeout, since environments of replaced code drain with it mounted.
    #[arg(long, default_value_t = updraft_control::code_gc::DEFAULT_GRACE.as_secs())]
    code_gc_grace: u64,
    /// How long one minute of EventBridge `rate(…)` schedules lasts, in milliseconds (tests
    /// shorten it; `cron(…)` schedules always follow the real UTC clock).
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    schedule_minute_ms: u64,
    /// Log bytes the node keeps over all functions and groups, in MB (0: no cap); past it the
    /// oldest streams are removed first, and what is removed is counted.
    #[arg(long, default_value_t = 10_240)]
    logs_max_mb: u64,
    /// Milliseconds between passes of the logs sweeper (retention and the node's cap).
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(10..))]
    logs_sweep_ms: u64,
    /// Asynchronous deliveries (events, destinations) running at once; more wait in the durable
    /// queue, so a burst of events never takes all of the concurrency synchronous calls need.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    async_max_in_flight: u64,
    /// Milliseconds before the first retry of an event whose function failed; retry k waits k
    /// times this (Lambda: about one minute, then two).
    #[arg(long, default_value_t = 60_000)]
    async_retry_interval_ms: u64,
    /// Milliseconds before an event that was throttled (or met a system error) is tried again;
    /// doubled after each further throttle, up to `--async-backoff-max-ms`.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    async_backoff_initial_ms: u64,
    /// Longest wait between tries of a throttled event, in milliseconds.
    #[arg(long, default_value_t = 300_000, value_parser = clap::value_parser!(u64).range(1..))]
    async_backoff_max_ms: u64,
    /// Usage metering (usage records in `usage.db`, `/updraft/v1/usage`, metrics): `off`
    /// leaves the engine without a usage subscriber.
    #[arg(long, value_enum, default_value_t = MeteringArg::On)]
    metering: MeteringArg,
    /// Days usage records are kept.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=36_500))]
    usage_retention_days: u64,
    /// Price table (JSON, the shape of `crates/observe/src/prices.json`); default: Lambda's
    /// published US East prices.
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Also serve Prometheus `/metrics` without authentication on this address (e.g.
    /// 127.0.0.1:9464) for a scraper; on the front door `/metrics` needs root credentials.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MeteringArg {
    On,
    Off,
}

/// Collects unreferenced code packages every `interval` for the life of the process.
fn spawn_code_gc(control: Arc<ControlPlane>, interval: Duration, grace: Duration) -> Result<()> {
    std::thread::Builder::new()
        .name("code-gc".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                match updraft_control::code_gc::collect(&control, grace) {
                    Ok(r) if !r.removed.is_empty() => tracing::info!(
                        removed = r.removed.len(),
                        waiting = r.waiting,
                        in_use = r.referenced,
                        "code gc: removed unreferenced packages"
                    ),
                    Ok(r) => tracing::debug!(?r, "code gc: nothing to remove"),
                    Err(e) => tracing::warn!("code gc: {e}"),
                }
            }
        })
        .context("starting the code gc thread")?;
    Ok(())
}

/// Parses `--runtime ID=PATH`.
pub fn parse_runtime_override(arg: &str) -> Result<(String, PathBuf), String> {
    updraft_engine::RuntimeOptions::parse_override(arg)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CpuLimitArg {
    Weight,
    Lambda,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KeepAliveArg {
    Fixed,
    Adaptive,
}

/// Root credentials of this node: from the environment, or generated once into the data dir.
fn root_credentials(data_dir: &Path) -> Result<(Credentials, bool)> {
    let id = std::env::var("UPDRAFT_ACCESS_KEY_ID").ok();
    let secret = std::env::var("UPDRAFT_SECRET_ACCESS_KEY").ok();
    if let (Some(id), Some(secret)) = (id, secret) {
        return Ok((Credentials::new(id, secret), false));
    }
    let path = data_dir.join("credentials");
    if path.exists() {
        let creds = crate::client::read_credentials_file(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return Ok((creds, false));
    }
    let mut rng = rand::thread_rng();
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let id: String = std::iter::once("AKIA".to_string())
        .chain((0..16).map(|_| (UPPER[rng.gen_range(0..UPPER.len())] as char).to_string()))
        .collect();
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let secret: String = (0..40)
        .map(|_| SECRET[rng.gen_range(0..SECRET.len())] as char)
        .collect();
    let text = format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n");
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok((Credentials::new(id, secret), true))
}

/// A stable setting of this data dir, created on first start.
fn meta_or_create(store: &dyn Store, key: &str, make: impl FnOnce() -> String) -> Result<String> {
    if let Some(v) = store.get_meta(key)? {
        return Ok(v);
    }
    let v = make();
    store.apply(&[Op::PutMeta {
        key: key.to_string(),
        value: v.clone(),
    }])?;
    Ok(v)
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("UPDRAFT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let data_dir = args
        .data_dir
        .canonicalize()
        .context("resolving the data dir")?;
    let sqlite = Arc::new(SqliteStore::open(&data_dir.join("updraft.db"))?);
    let store: Arc<dyn Store> = sqlite.clone();
    let checkpoint_on_stop = sqlite.clone();
    let account_id = meta_or_create(&*store, "account_id", || {
        let mut rng = rand::thread_rng();
        format!(
            "{}{:011}",
            rng.gen_range(1..10),
            rng.gen_range(0..100_000_000_000u64)
        )
    })?;
    let code_secret = meta_or_create(&*store, "code_link_secret", || {
        let bytes: [u8; 32] = rand::thread_rng().r#gen();
        hex_encode(&bytes)
    })?;
    let (root, generated) = root_credentials(&data_dir)?;
    let master_path = data_dir.join("master.key");
    let (master, master_created) = MasterKey::load_or_create(&master_path)
        .with_context(|| format!("loading the master key {}", master_path.display()))?;
    if master_created {
        // The key is the only way to open stored secrets: losing it loses every account's keys.
        tracing::info!(path = %master_path.display(), "generated the master key; back it up with the database");
    }
    let accounts =
        Arc::new(Accounts::open(store.clone(), master, &account_id).context("loading accounts")?);
    let events = updraft_events::Events::open(
        &data_dir.join("events.db"),
        updraft_events::Settings {
            max_in_flight: args.async_max_in_flight as usize,
            backoff: updraft_events::Backoff {
                retry_interval: Duration::from_millis(args.async_retry_interval_ms),
                throttle_initial: Duration::from_millis(args.async_backoff_initial_ms),
                throttle_max: Duration::from_millis(
                    args.async_backoff_max_ms.max(args.async_backoff_initial_ms),
                ),
            },
            ..Default::default()
        },
    )
    .context("opening the event database")?;
    let code = CodeStore::open(data_dir.join("code"), CodeLimits::default())?;
    let control = Arc::new(ControlPlane::open(
        store.clone(),
        code,
        ControlConfig {
            region: args.region.clone(),
            account_concurrency: args.account_concurrency,
        },
    )?);

    if args.code_gc_interval > 0 {
        spawn_code_gc(
            control.clone(),
            Duration::from_secs(args.code_gc_interval),
            Duration::from_secs(args.code_gc_grace),
        )?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match updraft_sandbox::raise_open_files_limit() {
            Ok(n) if n < 16_384 => tracing::warn!(
                "open files are limited to {n}: at about seven per environment this node holds at \
                 most {} environments (raise the hard limit, e.g. LimitNOFILE= in a systemd unit)",
                n / 7
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
        }
        let mut cfg = EngineConfig::new(data_dir.clone(), std::env::current_exe()?);
        cfg.region = args.region.clone();
        cfg.account_concurrency = args.account_concurrency;
        cfg.idle_timeout = Duration::from_secs(args.idle_timeout);
        cfg.prewarm = args.prewarm;
        cfg.prewarm_max = args.prewarm_max;
        cfg.lifecycle = updraft_engine::LifecycleOptions {
            freeze: args.freeze,
            freeze_grace: Duration::from_millis(args.freeze_grace_ms),
            cpu_ceiling: args.cpu_limit == CpuLimitArg::Lambda,
        };
        cfg.runtimes = updraft_engine::RuntimeOptions {
            data_dir: None,
            overrides: args.runtimes.clone(),
            strict: args.strict_runtimes,
        };
        cfg.stream_write_timeout = Duration::from_secs(args.write_timeout);
        cfg.keep_alive = KeepAlive {
            mode: match args.keep_alive {
                KeepAliveArg::Fixed => KeepAliveMode::Fixed,
                KeepAliveArg::Adaptive => KeepAliveMode::Adaptive,
            },
            bin: Duration::from_millis(args.keep_alive_bin_ms),
            bins: args.keep_alive_bins as usize,
        };
        if let Some(m) = args.memory_budget_mb {
            cfg.memory_budget_mb = m;
        }
        // Disk-backed /tmp images of environments live with the node's other data.
        updraft_sandbox::set_scratch_dir(data_dir.join("scratch"));
        let engine = Engine::new(cfg)?;
        {
            let engine = engine.clone();
            control.subscribe(move |change| match change {
                Change::Updated {
                    function_arn,
                    latest_revision,
                } => engine.retire(function_arn, Some(latest_revision)),
                Change::Deleted { function_arn } => engine.retire(function_arn, None),
                // Provisioned concurrency is handed over below, once the front door's state
                // (its spec cache) exists.
                Change::Provisioned { .. } => {}
            });
        }
        let keys = Arc::new(KeyRing::default());
        {
            // Subscribe before loading so no change can fall between the two.
            let keys = keys.clone();
            accounts.subscribe(move |change| keys.apply(change));
        }
        for k in accounts.active_keys()? {
            keys.insert(
                &k.access_key_id,
                k.secret_access_key.expose(),
                &k.account_id,
            );
        }
        keys.insert(&root.access_key_id, &root.secret_access_key, &account_id);
        let state = updraft_api::AppState::new(
            control,
            engine.clone(),
            keys,
            accounts,
            Credentials::new("UPDRAFTCODELINK", code_secret),
            args.region.clone(),
            updraft_api::body::BodyLimits {
                read_timeout: Duration::from_secs(args.body_read_timeout),
                budget_bytes: usize::try_from(args.body_budget_mb * 1024 * 1024)
                    .unwrap_or(usize::MAX),
                ..Default::default()
            },
        );
        let queues = updraft_queues::Queues::open(&data_dir.join("queues.db"), &args.region)
            .context("opening the queue database")?;
        let _ = state.queues.set(queues.clone());
        let logs = Arc::new(updraft_logs::LogStore::new(
            engine.logs_dir(),
            args.region.clone(),
        ));
        logs.set_max_bytes(args.logs_max_mb.saturating_mul(1024 * 1024));
        updraft_engine::set_log_segment_bytes(updraft_logs::store::segment_bytes(logs.max_bytes()));
        updraft_logs::sweeper::spawn(&logs, Duration::from_millis(args.logs_sweep_ms))
            .context("starting the logs sweeper")?;
        let _ = state.logs.set(logs);
        let objects = updraft_objects::ObjectStore::open(&data_dir)
            .map_err(|e| anyhow::anyhow!("opening the object store: {e}"))?;
        let objects = Arc::new(objects);
        let s3 = updraft_objects::S3Service::new(objects.clone(), args.region.clone());
        let _ = state.objects.set(s3.clone());
        let _ = state
            .code_objects
            .set(Arc::new(crate::s3_glue::CodeFromObjects(objects)));
        if args.metering == MeteringArg::On {
            let prices = match &args.prices {
                Some(p) => updraft_observe::PriceTable::load(p)?,
                None => updraft_observe::PriceTable::default(),
            };
            let store = updraft_observe::UsageStore::open(&data_dir.join("usage.db"))
                .context("opening the usage database")?;
            let cloudwatch = Arc::new(
                updraft_observe::CloudWatch::open(store.clone())
                    .context("loading metrics from the usage database")?,
            );
            cloudwatch
                .start_emf_writer()
                .context("starting the metrics writer")?;
            engine.set_log_hook(cloudwatch.clone());
            crate::observe_glue::spawn_concurrency_sampler(engine.clone(), cloudwatch.clone())
                .context("starting the concurrency sampler")?;
            let metrics = Arc::new(updraft_observe::Metrics::new());
            metrics.add_source(Arc::new(crate::observe_glue::NodeGauges {
                engine: engine.clone(),
                control: state.control.clone(),
                usage: store.clone(),
            }));
            metrics.add_source(Arc::new(crate::observe_glue::AsyncGauges {
                engine: engine.clone(),
                events: events.clone(),
            }));
            store
                .spawn_writer(
                    engine.subscribe_usage(),
                    Duration::from_secs(args.usage_retention_days * 86_400),
                    vec![metrics.clone(), cloudwatch.clone()],
                )
                .context("starting the usage writer")?;
            if let Some(addr) = args.metrics_listen {
                crate::observe_glue::serve_metrics(addr, metrics.clone()).await?;
            }
            let _ = state.metrics.set(metrics);
            let _ = state.cloudwatch.set(cloudwatch);
            let _ = state.usage.set(Arc::new(updraft_observe::Usage {
                store,
                prices,
                dir: Arc::new(crate::observe_glue::Directory(state.control.clone())),
            }));
        }
        {
            // Provisioned pools are kept by `retire`; what a function wants provisioned is
            // handed to the engine again after every change that may alter it. A weak
            // reference: the control plane (which keeps the callback) is part of the state.
            let weak = Arc::downgrade(&state);
            state.control.subscribe(move |change| {
                let Some(state) = weak.upgrade() else { return };
                match change {
                    Change::Deleted { function_arn } => {
                        updraft_api::provisioned::sync(&state, function_arn);
                        // Pools whose provisioning just ended drain like the others.
                        state.engine.retire(function_arn, None);
                    }
                    Change::Provisioned { function_arn } => {
                        updraft_api::provisioned::sync(&state, function_arn);
                    }
                    Change::Updated { .. } => {}
                }
            });
            // The configurations survive restarts: provision them again.
            for function_arn in state.control.provisioned_functions() {
                updraft_api::provisioned::sync(&state, &function_arn);
            }
        }
        let eventbridge = Arc::new(
            updraft_eventbridge::EventBridge::open(
                sqlite,
                args.region.clone(),
                Arc::new(crate::events_glue::DurableDelivery(events.clone())),
                Arc::new(crate::events_glue::CheckedAtDelivery),
                Duration::from_millis(args.schedule_minute_ms),
            )
            .context("loading event buses and rules")?,
        );
        let _ = state.eventbridge.set(eventbridge.clone());
        {
            // A deleted function's event invoke configurations go with it.
            // (`Deleted` also reports a deleted version: only a function that is gone loses them.)
            let configs_of = events.clone();
            let weak = Arc::downgrade(&state);
            state.control.subscribe(move |change| {
                let (Change::Deleted { function_arn }, Some(state)) = (change, weak.upgrade())
                else {
                    return;
                };
                let parts: Vec<&str> = function_arn.split(':').collect();
                let (Some(account), Some(name)) = (parts.get(4), parts.get(6)) else {
                    return;
                };
                if state.control.get_configuration(account, name, None).is_ok() {
                    return;
                }
                if let Err(e) = configs_of.configs().delete_function(account, name, None) {
                    tracing::error!(error = %e, "removing event invoke configurations");
                }
            });
            let bus: Arc<dyn updraft_events::EventBusSink> =
                Arc::new(crate::events_glue::BusSink(eventbridge.clone()));
            let _ = state.events.set(updraft_api::async_invoke::AsyncInvoke {
                events: events.clone(),
                event_bus: Some(bus.clone()),
            });
            events.start(updraft_events::Targets {
                function: Arc::new(
                    updraft_api::async_invoke::FunctionTarget::new(
                        state.control.clone(),
                        engine.clone(),
                    )
                    .with_admission(crate::events_glue::rule_admission(state.control.clone())),
                ),
                event_bus: Some(Arc::new(updraft_events::EventBusTarget(bus))),
                queue: Some(Arc::new(crate::events_glue::QueueTarget(queues.clone()))),
            })?;
        }
        let mappings = updraft_mappings::Mappings::open(
            &data_dir.join("mappings.db"),
            Arc::new(crate::mappings_glue::QueueStore(queues.clone())),
            Arc::new(crate::mappings_glue::FunctionInvoker {
                control: state.control.clone(),
                target: updraft_api::async_invoke::FunctionTarget::new(
                    state.control.clone(),
                    engine.clone(),
                ),
            }),
            updraft_mappings::Settings::default(),
        )
        .context("loading event source mappings")?;
        let _ = state.mappings.set(mappings.clone());
        let _ = s3.notifier.set(Arc::new(crate::s3_glue::S3Notifier {
            control: state.control.clone(),
            queues: queues.clone(),
            events: events.clone(),
            region: args.region.clone(),
        }));
        let scheduler = tokio::spawn(updraft_eventbridge::scheduler::run(
            eventbridge,
            std::future::pending(),
        ));
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        report_startup(&engine, &data_dir, &account_id, addr, &root, generated);
        crate::http::serve(
            listener,
            updraft_api::router(state),
            crate::http::Limits {
                max_connections: args.max_connections,
                header_read_timeout: Duration::from_secs(args.header_read_timeout.max(1)),
                write_timeout: Duration::from_secs(args.write_timeout),
                ..Default::default()
            },
            {
                let queues = queues.clone();
                let mappings = mappings.clone();
                async move {
                    shutdown_signal().await;
                    mappings.stop_all();
                    queues.stop_polling();
                }
            },
        )
        .await;
        tracing::info!("shutting down");
        scheduler.abort();
        queues.flush().await;
        engine.shutdown().await;
        if let Err(e) = checkpoint_on_stop.checkpoint() {
            tracing::warn!("checkpointing the database at shutdown: {e}");
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn report_startup(
    engine: &Engine,
    data_dir: &Path,
    account_id: &str,
    addr: SocketAddr,
    root: &Credentials,
    generated: bool,
) {
    let runtimes = engine.runtimes();
    let available: Vec<String> = runtimes
        .iter()
        .filter(|r| r.available)
        .map(|r| match (&r.interpreter_version, r.exact) {
            (Some(v), true) => format!("{} ({v})", r.id),
            (Some(v), false) => format!("{} (on {v}!)", r.id),
            (None, _) => r.id.to_string(),
        })
        .collect();
    let unavailable: Vec<String> = engine
        .runtimes()
        .into_iter()
        .filter(|r| !r.available)
        .map(|r| r.id.to_string())
        .collect();
    for warning in updraft_sandbox::doctor().degraded() {
        tracing::warn!("isolation degraded: {warning}");
    }
    eprintln!("Updraft listening on http://{addr}");
    eprintln!("  data dir:   {}", data_dir.display());
    eprintln!("  account id: {account_id}");
    eprintln!("  master key: {}", data_dir.join("master.key").display());
    eprintln!("  runtimes:   {}", available.join(", "));
    if !unavailable.is_empty() {
        eprintln!("  not on this host: {}", unavailable.join(", "));
    }
    for r in runtimes.iter().filter(|r| r.available) {
        if let Some(note) = &r.note {
            eprintln!("  NOTE: {note}");
        }
    }
    if generated {
        eprintln!();
        eprintln!(
            "Generated root credentials in {} (mode 0600). Use them with:",
            data_dir.join("credentials").display()
        );
        eprintln!("  export AWS_ACCESS_KEY_ID={}", root.access_key_id);
        eprintln!("  export AWS_SECRET_ACCESS_KEY={}", root.secret_access_key);
        eprintln!("  aws --endpoint-url http://{addr} --region us-east-1 lambda list-functions");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
