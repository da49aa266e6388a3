//! Environment pools and the invocation flow.
//!
//! One pool per (function ARN, version, generation). An environment goes Init → Idle ⇄ Busy →
//! Shutdown: an invocation takes the most recently used idle environment of its pool (warmest
//! caches) or starts a new one, so parallel invocations get parallel environments.
//!
//! Admission, in order, each failure a throttle as on Lambda:
//! 1. account concurrency: a semaphore of `account_concurrency` permits, one per running invocation
//!    (`ConcurrentInvocationLimitExceeded`);
//! 2. reserved concurrency: running invocations are counted per function ARN across its versions;
//!    with `reserved_concurrency = Some(n)` the (n+1)-th is refused and `Some(0)` refuses all
//!    (`ReservedFunctionConcurrentInvocationLimitExceeded`);
//! 3. the node's memory budget, only when a new environment is needed: the sum of `MemorySize` of
//!    live environments may not exceed `memory_budget_mb`. When it would, idle environments of
//!    other pools are stopped, least recently used first; if that is not enough the invocation is
//!    refused with `CapacityLimitExceeded` (Updraft's own reason: the node is full of busy
//!    environments).
//!
//! Failures of the function are outcomes, not errors, exactly as Lambda reports them: an init
//! error, an exit before the first `/next`, or no `/next` within the init timeout (10 s) fail the
//! invocation and discard the environment; a timeout kills the environment (the next invocation
//! gets a fresh one); a crash mid-invocation discards it. Handler errors keep the environment.
//!
//! Responses reach the caller through a [`Sink`](stream::Sink): `invoke` collects a streamed
//! response into one payload, `invoke_streaming` forwards every chunk as the runtime writes it
//! (see `stream`). Either way the invocation's timeout ends the response.
//!
//! The caller gets its answer as soon as the runtime has answered (unless it asked for the log
//! tail, which must end with `END` and `REPORT`); the environment then finishes in the
//! background: it waits for the runtime's next `/next`, writes `END`/`REPORT` and goes back to
//! its pool. Meanwhile it counts as *finishing*, and an invocation of the same pool that finds no
//! idle environment waits for it (at most `finishing_wait`) instead of starting a new one.
//!
//! A background reaper stops idle environments when the keep-alive policy says so (`keep`: after
//! `idle_timeout`, or per function from its idle-time histogram, with pre-warms) and forgets
//! empty pools. Provisioned environments (see `provision`) are ordinary idle environments of their pool
//! that the reaper, memory eviction and `retire` leave alone. Locks are `std` locks held for a few instructions and never across an await; the lock
//! order is pools map → one pool's idle list → capacity. The warm path takes the pools map for
//! reading only, and counts running invocations with atomics (no lock shared between functions).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast, oneshot};
use updraft_sandbox::{ExitInfo, JailSpec};

use self::stream::Sink;
use crate::env::{Capacity, Env, EnvLaunch, MemoryLease};
use crate::envvars::{EnvContext, lambda_environment};
use crate::launcher::Launcher;
use crate::logs::{self, Report, epoch_ms};
use crate::messages;
use crate::metering::{UsageOutcome, UsageRecord, billed_ms, qualifier_of};
use crate::runtime_api::telemetry::Stream;
use crate::runtime_api::{Assigned, RuntimeEvent, StreamedError};
use crate::runtimes::{self, Launch, RuntimeRegistry};
use crate::{
    EngineConfig, FunctionSpec, Invocation, InvokeError, InvokeOutcome, PoolStats,
    THROTTLE_ACCOUNT, THROTTLE_CAPACITY, THROTTLE_RESERVED,
};

/// `/tmp` Lambda includes in the price of an invocation.
const FREE_EPHEMERAL_MB: u32 = 512;

/// Time limits of the platform.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timings {
    /// A new environment must call `/next` within this time (Lambda's on-demand init limit).
    pub init_timeout: Duration,
    /// After a response, how long to wait for the runtime's next `/next` (which shows it flushed
    /// its output) before writing `END`/`REPORT` anyway.
    pub barrier: Duration,
    /// How long the log pumps may take to write out what the pipes hold.
    pub drain: Duration,
    /// How long an invocation that finds no idle environment waits for a finishing one (answered,
    /// not yet back in its pool) before it starts a new environment.
    pub finishing_wait: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            init_timeout: Duration::from_secs(10),
            barrier: Duration::from_millis(100),
            drain: Duration::from_millis(50),
            finishing_wait: Duration::from_millis(100),
        }
    }
}

/// Processes and open files allowed in each environment (Lambda's limits).
const PIDS_MAX: u64 = 1024;
const NOFILE: u64 = 1024;

/// Records kept for a slow usage subscriber before it starts losing the oldest.
const USAGE_CHANNEL: usize = 16384;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PoolKey {
    function_arn: String,
    version: String,
    generation: String,
}

/// A pool key as borrowed parts, so that the warm path looks a pool up without building a key.
trait PoolKeyView {
    fn parts(&self) -> (&str, &str, &str);
}

impl PoolKeyView for PoolKey {
    fn parts(&self) -> (&str, &str, &str) {
        (&self.function_arn, &self.version, &self.generation)
    }
}

impl PoolKeyView for (&str, &str, &str) {
    fn parts(&self) -> (&str, &str, &str) {
        *self
    }
}

impl Hash for PoolKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl<'a> Borrow<dyn PoolKeyView + 'a> for PoolKey {
    fn borrow(&self) -> &(dyn PoolKeyView + 'a) {
        self
    }
}

impl Hash for dyn PoolKeyView + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts().hash(h);
    }
}

impl PartialEq for dyn PoolKeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn PoolKeyView + '_ {}

/// The environments of one function version generation.
pub(crate) struct Pool {
    key: PoolKey,
    /// Idle environments, least recently used first.
    idle: Mutex<Vec<Env>>,
    /// Environments alive (initialising, idle or busy); shared with each environment.
    live: Arc<AtomicUsize>,
    /// Invocations currently holding this pool.
    users: AtomicUsize,
    /// Set (under the `idle` lock) when the pool is drained: environments coming back stop.
    retired: AtomicBool,
    /// Environments whose caller has its answer but which are not back in `idle` yet.
    finishing: AtomicUsize,
    /// Told whenever a finishing environment is back in `idle` or gone.
    returned: Notify,
    /// Running invocations of the pool's function (all versions and generations share it), for
    /// reserved concurrency.
    running: Arc<AtomicU32>,
    /// Provisioned concurrency of the pool.
    provision: provision::PoolProvision,
    /// Keep-alive state of the pool's function version (shared by its generations).
    warmth: Arc<keep::Warmth>,
    /// `MemorySize` of the pool's environments, for the idle-memory integral.
    memory_mb: u64,
}

impl Pool {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Env>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The warmest idle environment that is still alive.
    fn take_idle(&self) -> Option<Env> {
        let mut dead = Vec::new();
        let found = {
            let mut idle = self.lock_idle();
            loop {
                match idle.pop() {
                    Some(env) if env.is_dead() => dead.push(env),
                    other => break other,
                }
            }
        };
        drop(dead);
        found
    }

    /// An idle environment, or one that is finishing within `wait`; `None` means start one.
    async fn take_or_wait(&self, wait: Duration) -> Option<Env> {
        if let Some(env) = self.take_idle() {
            return Some(env);
        }
        // An environment is pushed to `idle` before it stops counting as finishing: after
        // seeing none finishing, one more look finds any that came back meanwhile.
        if self.finishing.load(Ordering::SeqCst) == 0 {
            return self.take_idle();
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.returned.notified();
            tokio::pin!(notified);
            // Registered before looking again, so a return in between is not missed.
            notified.as_mut().enable();
            if let Some(env) = self.take_idle() {
                return Some(env);
            }
            if self.finishing.load(Ordering::SeqCst) == 0 {
                return self.take_idle();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.take_idle();
            }
        }
    }

    /// Marks the pool retired and takes its idle environments (the caller drops them).
    fn retire(&self) -> Vec<Env> {
        let mut idle = self.lock_idle();
        self.retired.store(true, Ordering::Release);
        std::mem::take(&mut *idle)
    }
}

/// Holds a pool for one invocation (the reaper never forgets a pool that is in use).
struct PoolUse(Arc<Pool>);

impl Drop for PoolUse {
    fn drop(&mut self) {
        self.0.users.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One running invocation counted against its function's reserved concurrency.
struct ReservedUse(Arc<AtomicU32>);

impl ReservedUse {
    /// Counts one more running invocation, unless `limit` are running already.
    fn try_new(running: &Arc<AtomicU32>, limit: Option<u32>) -> Option<ReservedUse> {
        let mut n = running.load(Ordering::Acquire);
        loop {
            if limit.is_some_and(|l| n >= l) {
                return None;
            }
            match running.compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(ReservedUse(running.clone())),
                Err(now) => n = now,
            }
        }
    }
}

impl Drop for ReservedUse {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An invocation polled in its caller's task until the caller has its answer; dropping it hands
/// what is left to a task of its own.
struct RunToEnd(Option<Pin<Box<dyn Future<Output = ()> + Send + 'static>>>);

impl RunToEnd {
    /// Polls the invocation once. A panic inside it ends it (its reply sender is dropped, so the
    /// caller gets an internal error) without unwinding into the caller's connection.
    fn poll_step(&mut self, cx: &mut Context<'_>) {
        let Some(fut) = self.0.as_mut() else { return };
        match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => {}
            Ok(Poll::Ready(())) => self.0 = None,
            Err(_) => {
                tracing::error!("invocation panicked");
                self.0 = None;
            }
        }
    }
}

impl Drop for RunToEnd {
    fn drop(&mut self) {
        if let Some(fut) = self.0.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(fut);
        }
    }
}

/// What admitted an invocation; dropped as soon as its caller has the answer.
struct Admission {
    _account: OwnedSemaphorePermit,
    _reserved: ReservedUse,
}

/// Counts an environment as finishing (answered, not yet back in its pool) while it lives.
struct Finishing<'a>(&'a Pool);

impl<'a> Finishing<'a> {
    fn new(pool: &'a Pool) -> Self {
        pool.finishing.fetch_add(1, Ordering::SeqCst);
        Finishing(pool)
    }
}

impl Drop for Finishing<'_> {
    fn drop(&mut self) {
        self.0.finishing.fetch_sub(1, Ordering::SeqCst);
        self.0.returned.notify_waiters();
    }
}

/// The state shared by the engine's handle, invocations and the reaper.
pub(crate) struct Inner {
    pub cfg: EngineConfig,
    pub registry: RuntimeRegistry,
    pub logs_dir: PathBuf,
    pub usage: broadcast::Sender<UsageRecord>,
    /// Receives Embedded Metric Format lines of functions' output (set once at start-up).
    pub log_hook: std::sync::OnceLock<Arc<dyn crate::metering::LogLineHook>>,
    pub launcher: Arc<dyn Launcher>,
    timings: Timings,
    account: Arc<Semaphore>,
    pools: RwLock<HashMap<PoolKey, Arc<Pool>>>,
    /// Running invocations per unqualified function ARN, shared by the function's pools (each
    /// pool holds its counter; entries whose pools are all gone are forgotten by the reaper).
    running: Mutex<HashMap<String, Weak<AtomicU32>>>,
    capacity: Arc<Capacity>,
    shutting_down: AtomicBool,
    /// Pools with provisioned concurrency, each with its provisioner's handle.
    provisioners: Mutex<HashMap<PoolKey, provision::Provisioner>>,
    /// Keep-alive state per (function ARN, version); outlives the pools.
    warmth: Mutex<HashMap<(String, String), Arc<keep::Warmth>>>,
    counters: keep::Counters,
    ro_paths: Vec<PathBuf>,
    path_dirs: Vec<PathBuf>,
}

enum ColdStart {
    Ready(Env, Duration),
    Failed(Ended),
}

/// How an invocation on a ready environment ended.
pub(crate) enum Finish {
    /// A buffered response, with the runtime's `Content-Type`.
    Response(Bytes, Option<String>),
    /// A posted error (body in Lambda's shape) and its error type.
    Error(Bytes, String),
    /// The response exceeded this limit (bytes).
    TooLarge(usize),
    /// A streamed response ended: what was collected (empty when it was forwarded) and the error
    /// the runtime reported in its trailers.
    Streamed {
        collected: Bytes,
        error: Option<StreamedError>,
    },
    Exited(ExitInfo),
    Timeout,
}

/// What an invocation produced, with the error type behind `function_error` (which the public
/// outcome reduces to `Unhandled`).
pub(crate) struct Ended {
    pub outcome: InvokeOutcome,
    pub error_type: Option<String>,
}

/// Error type reported for a timed-out invocation (Lambda's name for it).
pub(crate) const TIMEOUT_ERROR_TYPE: &str = "Sandbox.Timedout";

/// How an init phase ended.
enum InitEnd {
    Ready,
    Error(Option<String>, Bytes),
    Exited(ExitInfo),
}

impl Inner {
    pub(crate) fn new(
        cfg: EngineConfig,
        registry: RuntimeRegistry,
        launcher: Arc<dyn Launcher>,
        timings: Timings,
    ) -> Arc<Inner> {
        let permits = (cfg.account_concurrency as usize).min(Semaphore::MAX_PERMITS);
        let (usage, _) = broadcast::channel(USAGE_CHANNEL);
        Arc::new(Inner {
            logs_dir: cfg.data_dir.join("logs"),
            ro_paths: registry.ro_paths(),
            path_dirs: registry.path_dirs(),
            capacity: Capacity::new(cfg.memory_budget_mb),
            account: Arc::new(Semaphore::new(permits)),
            cfg,
            registry,
            usage,
            launcher,
            timings,
            pools: RwLock::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            provisioners: Mutex::new(HashMap::new()),
            warmth: Mutex::new(HashMap::new()),
            counters: keep::Counters::default(),
            log_hook: std::sync::OnceLock::new(),
        })
    }

    /// The log hook bound to `spec`'s function, if one is set.
    pub(crate) fn bound_log_hook(&self, spec: &FunctionSpec) -> Option<crate::metering::BoundHook> {
        self.log_hook.get().map(|hook| crate::metering::BoundHook {
            hook: hook.clone(),
            account_id: Arc::from(spec.account_id.as_str()),
            function_name: Arc::from(spec.function_name.as_str()),
        })
    }

    fn lock_pools(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<PoolKey, Arc<Pool>>> {
        self.pools.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read_pools(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PoolKey, Arc<Pool>>> {
        self.pools.read().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<AtomicU32>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Runs one invocation and resolves as soon as its result is known. The invocation is polled
    /// by the caller's own task (no hand-off to another task on the way to the environment and
    /// back); whatever is left of it when the caller stops polling (the environment finishing
    /// after the answer, or the whole invocation when the caller went away) goes on in a task of
    /// its own, so an invocation always runs to its end.
    pub(crate) async fn invoke(
        self: &Arc<Self>,
        spec: Arc<FunctionSpec>,
        inv: Invocation,
    ) -> Result<InvokeOutcome, InvokeError> {
        let (tx, mut rx) = oneshot::channel();
        let inner = self.clone();
        let mut run = RunToEnd(Some(Box::pin(async move {
            inner.invoke_into(spec, inv, Sink::Collect(Some(tx))).await;
        })));
        let answer = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = Pin::new(&mut rx).poll(cx) {
                return Poll::Ready(r);
            }
            run.poll_step(cx);
            // A run that ended has answered (or dropped its sender): `rx` is ready then.
            Pin::new(&mut rx).poll(cx)
        })
        .await;
        drop(run);
        answer.unwrap_or_else(|_| {
            Err(InvokeError::Internal(
                "invocation task ended without an answer".to_string(),
            ))
        })
    }

    /// Runs one invocation whose response is forwarded to `f` (see `Engine::invoke_streaming`).
    pub(crate) async fn invoke_streaming(
        self: &Arc<Self>,
        spec: Arc<FunctionSpec>,
        inv: Invocation,
        f: stream::Forwarder,
    ) {
        self.invoke_into(spec, inv, Sink::Forward(f)).await;
    }

    /// Runs one invocation whose response and result go to `sink` (the result exactly once).
    pub(crate) async fn invoke_into(
        self: &Arc<Self>,
        spec: Arc<FunctionSpec>,
        inv: Invocation,
        mut sink: Sink,
    ) {
        if let Err(e) = self.try_invoke(&spec, inv, &mut sink).await {
            sink.finish(Err(e));
        }
    }

    /// Admits and runs one invocation; an error means it was refused before anything ran.
    async fn try_invoke(
        self: &Arc<Self>,
        spec: &Arc<FunctionSpec>,
        inv: Invocation,
        sink: &mut Sink,
    ) -> Result<(), InvokeError> {
        if self.is_shutting_down() {
            return Err(InvokeError::ShuttingDown);
        }
        let launch = self
            .registry
            .launch_for(&spec.runtime)
            .map_err(InvokeError::RuntimeUnavailable)?;
        if spec.reserved_concurrency == Some(0) {
            return Err(self.throttled(spec, &inv, THROTTLE_RESERVED));
        }
        let account = self
            .account
            .clone()
            .try_acquire_owned()
            .map_err(|_| self.throttled(spec, &inv, THROTTLE_ACCOUNT))?;
        let pool = self.checkout(spec);
        let reserved = ReservedUse::try_new(&pool.0.running, spec.reserved_concurrency)
            .ok_or_else(|| self.throttled(spec, &inv, THROTTLE_RESERVED))?;
        let admission = Admission {
            _account: account,
            _reserved: reserved,
        };
        // Held until the invocation is over, environment back in its pool included.
        let _in_flight = self.arrive(&pool.0, spec);
        let started = SystemTime::now();
        let mut warm = pool.0.take_or_wait(self.timings.finishing_wait).await;
        if let Some(env) = warm.as_mut()
            && !self.regrow(env, &pool.0.key)
        {
            // No room to let it run at its MemorySize: the cold-start path throttles.
            warm = None;
        }
        let (env, init) = match warm {
            Some(env) => {
                self.count_start(&pool.0, &env.id, false);
                (env, None)
            }
            None => match self
                .cold_start(&pool.0, spec, &launch, &inv, started)
                .await
                .map_err(|e| match e {
                    InvokeError::Throttled { reason } => self.throttled(spec, &inv, reason),
                    other => other,
                })? {
                ColdStart::Ready(env, init) => (env, Some(init)),
                ColdStart::Failed(ended) => {
                    drop(admission);
                    sink.finish(Ok(ended));
                    return Ok(());
                }
            },
        };
        self.run(&pool.0, env, spec, inv, init, started, sink, admission)
            .await;
        Ok(())
    }

    fn checkout(&self, spec: &FunctionSpec) -> PoolUse {
        let view = (
            spec.function_arn.as_str(),
            spec.version.as_str(),
            spec.generation.as_str(),
        );
        let found = self
            .read_pools()
            .get(&view as &dyn PoolKeyView)
            .map(|pool| {
                pool.users.fetch_add(1, Ordering::AcqRel);
                pool.clone()
            });
        if let Some(pool) = found {
            return PoolUse(pool);
        }
        let mut pools = self.lock_pools();
        let pool = match pools.get(&view as &dyn PoolKeyView) {
            Some(pool) => pool.clone(),
            None => {
                let pool = Arc::new(Pool {
                    key: PoolKey {
                        function_arn: spec.function_arn.clone(),
                        version: spec.version.clone(),
                        generation: spec.generation.clone(),
                    },
                    idle: Mutex::new(Vec::new()),
                    live: Arc::new(AtomicUsize::new(0)),
                    users: AtomicUsize::new(0),
                    retired: AtomicBool::new(false),
                    finishing: AtomicUsize::new(0),
                    returned: Notify::new(),
                    running: self.running_counter(&spec.function_arn),
                    provision: provision::PoolProvision::default(),
                    warmth: self.warmth_of(&spec.function_arn, &spec.version),
                    memory_mb: u64::from(spec.memory_mb),
                });
                pools.insert(pool.key.clone(), pool.clone());
                pool
            }
        };
        pool.users.fetch_add(1, Ordering::AcqRel);
        PoolUse(pool)
    }

    /// The running-invocations counter of a function, shared by all its pools.
    fn running_counter(&self, function_arn: &str) -> Arc<AtomicU32> {
        let mut map = self.lock_running();
        if let Some(c) = map.get(function_arn).and_then(Weak::upgrade) {
            return c;
        }
        let c = Arc::new(AtomicU32::new(0));
        map.insert(function_arn.to_string(), Arc::downgrade(&c));
        c
    }

    fn put_back(&self, pool: &Pool, mut env: Env) {
        env.last_used = Instant::now();
        let mut idle = pool.lock_idle();
        let surplus = env
            .provisioned
            .as_mut()
            .is_some_and(|slot| slot.release_if_surplus(pool.provision.want()));
        if surplus || pool.retired.load(Ordering::Acquire) || self.is_shutting_down() {
            drop(idle);
            drop(env);
            return;
        }
        idle.push(env);
    }

    /// Reserves memory for a new environment of `own` while the budget is short: first by
    /// counting idle environments at their measured footprint instead of their `MemorySize`, then
    /// by evicting idle environments of other pools (least recently used first).
    fn reserve_memory(&self, mb: u64, own: &PoolKey) -> Result<MemoryLease, InvokeError> {
        if mb > self.cfg.memory_budget_mb {
            // Evicting everything would not make room: do not stop anything in vain.
            return Err(InvokeError::Throttled {
                reason: THROTTLE_CAPACITY,
            });
        }
        self.with_room(own, || self.capacity.try_reserve(mb))
            .ok_or(InvokeError::Throttled {
                reason: THROTTLE_CAPACITY,
            })
    }

    /// Lets an idle environment that was counted at its footprint count at its `MemorySize`
    /// again before it runs, making room the way [`Inner::reserve_memory`] does.
    fn regrow(&self, env: &mut Env, own: &PoolKey) -> bool {
        self.with_room(own, || env.regrow().then_some(())).is_some()
    }

    /// Retries `attempt` (a share of the memory budget) while room can be made: first by
    /// counting idle environments at their footprint (once), then by evicting idle environments
    /// of pools other than `own`, least recently used first.
    fn with_room<T>(&self, own: &PoolKey, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
        let mut shrunk = false;
        loop {
            if let Some(got) = attempt() {
                return Some(got);
            }
            if !std::mem::replace(&mut shrunk, true) && self.shrink_idle() > 0 {
                continue;
            }
            if !self.evict_one(own) {
                return None;
            }
        }
    }

    /// Counts every idle environment of the node at its measured footprint (see
    /// [`Env::shrink_to_footprint`]); returns the MiB given back. Runs only when the budget is
    /// short, never on a warm invocation.
    fn shrink_idle(&self) -> u64 {
        let pools = self.read_pools();
        let mut freed = 0;
        for pool in pools.values() {
            for env in pool.lock_idle().iter_mut() {
                freed += env.shrink_to_footprint();
            }
        }
        if freed > 0 {
            tracing::debug!(
                "memory budget: idle environments counted at their footprint, {freed} MiB freed"
            );
        }
        freed
    }

    /// Stops the least recently used idle, not provisioned environment of a pool other than
    /// `own`; `false` when there is none.
    fn evict_one(&self, own: &PoolKey) -> bool {
        {
            let victim = {
                let pools = self.read_pools();
                let mut best: Option<(&Arc<Pool>, Instant)> = None;
                for (key, pool) in pools.iter() {
                    if key == own {
                        continue;
                    }
                    // Provisioned environments are kept: they are what the budget was promised to.
                    let idle = pool.lock_idle();
                    if let Some(oldest) = idle.iter().find(|e| e.provisioned.is_none())
                        && best.is_none_or(|(_, t)| oldest.last_used < t)
                    {
                        best = Some((pool, oldest.last_used));
                    }
                }
                best.and_then(|(pool, _)| {
                    let mut idle = pool.lock_idle();
                    let at = idle.iter().position(|e| e.provisioned.is_none())?;
                    Some(idle.remove(at))
                })
            };
            match victim {
                Some(env) => {
                    tracing::debug!("memory budget: stopping idle environment {}", env.id);
                    drop(env);
                    true
                }
                None => false,
            }
        }
    }

    fn jail_spec(
        &self,
        spec: &FunctionSpec,
        launch: &Launch,
        id: &str,
        stream: &str,
        provisioned: bool,
    ) -> JailSpec {
        let env = lambda_environment(
            spec,
            &EnvContext {
                region: &self.cfg.region,
                log_stream: stream,
                family: launch.family,
                path_dirs: &self.path_dirs,
                provisioned,
            },
        );
        let mut jail = JailSpec {
            id: id.to_string(),
            code_dir: spec.code_dir.clone(),
            runtime_dir: launch
                .client_dir
                .as_deref()
                .map(|d| runtimes::client_dir(&self.cfg.data_dir, d)),
            opt_dir: spec.opt_dir.clone(),
            ro_paths: self.ro_paths.clone(),
            tmp_mb: u64::from(spec.ephemeral_mb),
            memory_mb: u64::from(spec.memory_mb),
            pids_max: PIDS_MAX,
            cpu_ceiling: self.cfg.lifecycle.cpu_ceiling,
            nofile: NOFILE,
            argv: runtimes::with_layer_bootstrap(
                &exec_wrapped(launch, launch.argv_for(spec.memory_mb), &env),
                spec,
            ),
            env,
            cwd: "/var/task".to_string(),
            start: updraft_sandbox::Start::Now,
        };
        jail.argv = crate::env::with_external_extensions(
            std::mem::take(&mut jail.argv),
            jail.opt_dir.as_deref(),
        );
        jail
    }

    async fn cold_start(
        self: &Arc<Self>,
        pool: &Arc<Pool>,
        spec: &FunctionSpec,
        launch: &Launch,
        inv: &Invocation,
        started: SystemTime,
    ) -> Result<ColdStart, InvokeError> {
        let memory = self.reserve_memory(u64::from(spec.memory_mb), &pool.key)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let stream = logs::stream_name(SystemTime::now(), &spec.version, &id);
        let dir = logs::group_dir(&self.logs_dir, &spec.account_id, &spec.log_group)
            .map_err(|e| InvokeError::Internal(e.to_string()))?;
        let jail = self.jail_spec(spec, launch, &id, &stream, false);
        let t0 = Instant::now();
        let mut env = Env::launch(EnvLaunch {
            launcher: self.launcher.clone(),
            jail,
            log_path: dir.join(logs::stream_file_name(&stream)),
            capture: inv.want_log_tail,
            memory,
            capacity: self.capacity.clone(),
            pool_live: pool.live.clone(),
            freeze: self.cfg.lifecycle.freeze,
            account_id: spec.account_id.clone(),
            log_hook: self.bound_log_hook(spec),
        })
        .await
        .map_err(|e| {
            tracing::error!("cannot start environment for {}: {e}", spec.function_name);
            InvokeError::Internal(format!("cannot start execution environment: {e}"))
        })?;
        env.log.set_settings(&spec.logging);
        if let Some(note) = &launch.note {
            env.log.note_after_report(note);
        }
        if self.is_shutting_down() {
            return Err(InvokeError::ShuttingDown);
        }
        self.count_start(pool, &env.id, true);

        let end = tokio::time::timeout(self.timings.init_timeout, wait_ready(&mut env)).await;
        let init = t0.elapsed();
        let (payload, error_type, status) = match end {
            Ok(InitEnd::Ready) => {
                self.note_init(pool, init);
                publish_init_done(&env, "on-demand", init);
                return Ok(ColdStart::Ready(env, init));
            }
            Ok(InitEnd::Error(error_type, body)) => {
                // A runtime usually prints its reason and exits right after reporting: let it.
                let _ = tokio::time::timeout(self.timings.barrier, async {
                    while !matches!(env.event().await, Some(RuntimeEvent::Exited(_)) | None) {}
                })
                .await;
                env.kill().await;
                env.drain_logs_after_exit(self.timings.drain).await;
                let et = error_type
                    .clone()
                    .unwrap_or_else(|| "Runtime.Unknown".to_string());
                (
                    messages::posted_error_body(body, error_type.as_deref()),
                    et,
                    "error",
                )
            }
            Ok(InitEnd::Exited(info)) => {
                env.drain_logs_after_exit(self.timings.drain).await;
                let (p, et) = messages::exit_payload(&inv.request_id, &info, env.oom_killed());
                (p, et.to_string(), "error")
            }
            Err(_) => {
                env.kill().await;
                env.drain_logs_after_exit(self.timings.drain).await;
                let limit = self.timings.init_timeout.as_secs_f64();
                (
                    messages::init_timeout_payload(&inv.request_id, limit),
                    "Runtime.InitError".to_string(),
                    "timeout",
                )
            }
        };
        let init_ms = init.as_secs_f64() * 1000.0;
        let mut init_report =
            format!("INIT_REPORT Init Duration: {init_ms:.2} ms\tPhase: init\tStatus: {status}");
        if status == "error" {
            init_report.push_str(&format!("\tError Type: {error_type}"));
        }
        env.log.platform(&init_report);
        env.log.start(&inv.request_id, &spec.version);
        let max_mem = env.max_memory_used_mb(true);
        env.log.end_and_report(&Report {
            request_id: &inv.request_id,
            duration_ms: 0.0,
            billed_ms: 0,
            memory_mb: spec.memory_mb,
            max_memory_used_mb: max_mem,
            init_duration_ms: Some(init_ms),
            status: Some((status, Some(&error_type))),
            post_runtime_extensions_ms: None,
        });
        let log_tail = env.log.end_capture();
        self.meter(
            spec,
            inv,
            started,
            0.0,
            max_mem,
            Some(init_ms),
            env.provisioned.is_some(),
            UsageOutcome::InitError,
            None,
        );
        drop(env);
        Ok(ColdStart::Failed(Ended {
            outcome: InvokeOutcome {
                payload,
                function_error: Some("Unhandled"),
                log_tail: inv.want_log_tail.then(|| log_tail.unwrap_or_default()),
                executed_version: spec.version.clone(),
            },
            error_type: Some(error_type),
        }))
    }

    /// Runs one invocation on a ready environment and hands the result to `sink`: right after
    /// the runtime's answer when no log tail is wanted (the environment then finishes in the
    /// background of this task), otherwise once `END` and `REPORT` are written. The environment
    /// goes back to `pool` when it may be reused.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        pool: &Pool,
        mut env: Env,
        spec: &FunctionSpec,
        inv: Invocation,
        init: Option<Duration>,
        started: SystemTime,
        sink: &mut Sink,
        admission: Admission,
    ) {
        let stale_exit = env.drain_stale();
        if inv.want_log_tail {
            env.log.begin_capture();
        }
        env.log.start(&inv.request_id, &spec.version);
        env.wake();
        env.telemetry()
            .publish(Stream::Platform, "platform.start", || {
                serde_json::json!({
                    "requestId": inv.request_id,
                    "version": spec.version,
                    "tracing": {"type": "X-Amzn-Trace-Id", "value": inv.trace_id},
                })
            });
        let timeout = Duration::from_secs(u64::from(spec.timeout_s.max(1)));
        let dispatched = Instant::now();
        let deadline = dispatched + timeout;
        let assigned = Assigned {
            request_id: inv.request_id.clone(),
            payload: inv.payload.clone(),
            deadline_ms: epoch_ms(SystemTime::now()) + timeout.as_millis() as u64,
            invoked_function_arn: inv.invoked_function_arn.clone(),
            trace_id: inv.trace_id.clone().unwrap_or_else(new_trace_id),
            client_context: inv.client_context.as_deref().map(decode_client_context),
            cognito_identity: inv.cognito_identity.clone(),
        };
        let finish = match stale_exit {
            Some(info) => Finish::Exited(info),
            None if !env.assign(assigned) => Finish::Exited(ExitInfo {
                code: None,
                signal: None,
            }),
            None => wait_finish(&mut env, &inv.request_id, deadline, sink).await,
        };
        let duration = dispatched.elapsed();
        let mut status: Option<(&str, Option<&str>)> = None;
        let mut error_type_owned = None;
        let mut error_type: Option<String> = None;
        // Whether the runtime answered (it then asks for more work with `/next`).
        let mut answered = true;
        // Whether the answer says the environment cannot go on.
        let mut fatal = false;
        let (payload, function_error, outcome) = match finish {
            Finish::Response(body, content_type) => {
                // A streaming caller gets a buffered response as soon as it is there.
                let body = sink.deliver_buffered(body, content_type);
                (body, None, UsageOutcome::Success)
            }
            Finish::Streamed {
                collected,
                error: None,
            } => (collected, None, UsageOutcome::Success),
            Finish::Streamed { error: Some(e), .. } => {
                error_type = Some(e.error_type);
                (e.body, Some("Unhandled"), UsageOutcome::FunctionError)
            }
            Finish::Error(body, et) => {
                // A runtime that reports its own memory exhausted (the Java client on an
                // OutOfMemoryError) is ending: its environment is replaced, never reused.
                fatal = et == messages::OUT_OF_MEMORY;
                error_type = Some(et);
                (body, Some("Unhandled"), UsageOutcome::FunctionError)
            }
            Finish::TooLarge(limit) => {
                error_type = Some(messages::RESPONSE_TOO_LARGE.to_string());
                (
                    messages::response_too_large_payload_of(limit),
                    Some("Unhandled"),
                    UsageOutcome::FunctionError,
                )
            }
            Finish::Exited(info) => {
                answered = false;
                env.drain_logs_after_exit(self.timings.drain).await;
                let oom = env.oom_killed();
                let (p, et) = messages::exit_payload(&inv.request_id, &info, oom);
                error_type_owned = Some(et);
                error_type = Some(et.to_string());
                let outcome = if oom {
                    UsageOutcome::OutOfMemory
                } else {
                    UsageOutcome::Crash
                };
                (p, Some("Unhandled"), outcome)
            }
            Finish::Timeout => {
                answered = false;
                error_type = Some(TIMEOUT_ERROR_TYPE.to_string());
                env.kill().await;
                env.drain_logs_after_exit(self.timings.drain).await;
                let line =
                    messages::timeout_message(SystemTime::now(), &inv.request_id, spec.timeout_s);
                env.log.platform(&line);
                status = Some(("timeout", None));
                (
                    messages::timeout_payload(&line),
                    Some("Unhandled"),
                    UsageOutcome::Timeout,
                )
            }
        };
        if let Some(et) = error_type_owned {
            status = Some(("error", Some(et)));
        }
        let mut ended = Some(Ended {
            outcome: InvokeOutcome {
                payload,
                function_error,
                log_tail: None,
                executed_version: spec.version.clone(),
            },
            error_type,
        });
        let mut admission = Some(admission);
        let mut finishing = None;
        if answered && !inv.want_log_tail {
            // The caller has all it asked for: answer now, finish the environment afterwards.
            finishing = Some(Finishing::new(pool));
            drop(admission.take());
            if let Some(ended) = ended.take() {
                sink.finish(Ok(ended));
            }
        }
        let answered_at = Instant::now();
        // A runtime that ran out of memory is replaced, not reused.
        let (mut reusable, mut waiting) = if answered && !fatal {
            self.after_answer(&mut env, deadline).await
        } else {
            (false, false)
        };
        // With extensions the invocation is complete only when every one of them asked for
        // its next event: the time after the runtime's answer is theirs, billed and limited by
        // the function's timeout as on Lambda.
        let mut post_ext_ms = None;
        if answered && env.extension_count() > 0 {
            if waiting {
                post_ext_ms = Some(answered_at.elapsed().as_secs_f64() * 1000.0);
            } else if Instant::now() >= deadline && !env.is_dead() {
                reusable = false;
                env.kill().await;
                env.drain_logs_after_exit(self.timings.drain).await;
                let line =
                    messages::timeout_message(SystemTime::now(), &inv.request_id, spec.timeout_s);
                env.log.platform(&line);
                status = Some(("timeout", None));
                post_ext_ms = Some(answered_at.elapsed().as_secs_f64() * 1000.0);
            }
            if let Some(why) = env.extension_failure() {
                tracing::warn!("environment {} is replaced: {why}", env.id);
                reusable = false;
                waiting = false;
            }
        }
        let duration_ms = duration.as_secs_f64() * 1000.0;
        let billed_total_ms = duration_ms + post_ext_ms.unwrap_or(0.0);
        let telemetry_status = match (status, outcome) {
            (Some(("timeout", _)), _) => "timeout",
            (_, UsageOutcome::Success) => "success",
            (_, UsageOutcome::Crash) => "failure",
            _ => "error",
        };
        env.telemetry()
            .publish(Stream::Platform, "platform.runtimeDone", || {
                serde_json::json!({
                    "requestId": inv.request_id,
                    "status": telemetry_status,
                    "metrics": {"durationMs": duration_ms},
                })
            });
        let init_ms = init.map(|d| d.as_secs_f64() * 1000.0);
        // A cold start or a failure gets a fresh reading; quick warm invocations in a row may
        // share one (see `Env::max_memory_used_mb`).
        let fresh = init.is_some() || outcome != UsageOutcome::Success;
        let max_mem = env.max_memory_used_mb(fresh);
        env.log.end_and_report(&Report {
            request_id: &inv.request_id,
            duration_ms,
            billed_ms: billed_ms(billed_total_ms),
            memory_mb: spec.memory_mb,
            max_memory_used_mb: max_mem,
            init_duration_ms: init_ms,
            status,
            post_runtime_extensions_ms: post_ext_ms,
        });
        let log_tail = env.log.end_capture();
        env.telemetry()
            .publish(Stream::Platform, "platform.report", || {
                let mut metrics = serde_json::json!({
                    "durationMs": duration_ms,
                    "billedDurationMs": billed_ms(billed_total_ms),
                    "memorySizeMB": spec.memory_mb,
                    "maxMemoryUsedMB": max_mem,
                });
                if let Some(ms) = init_ms {
                    metrics["initDurationMs"] = ms.into();
                }
                if let Some(ms) = post_ext_ms {
                    metrics["postRuntimeExtensionsDurationMs"] = ms.into();
                }
                serde_json::json!({
                    "requestId": inv.request_id,
                    "status": telemetry_status,
                    "metrics": metrics,
                })
            });
        let provisioned = env.provisioned.is_some();
        self.meter(
            spec,
            &inv,
            started,
            duration_ms,
            max_mem,
            init_ms,
            provisioned,
            outcome,
            post_ext_ms,
        );
        if let Some(mut ended) = ended.take() {
            ended.outcome.log_tail = inv.want_log_tail.then(|| log_tail.unwrap_or_default());
            drop(admission.take());
            sink.finish(Ok(ended));
        }
        // Parked before it is back in the pool, so that an invocation taking it at once
        // cancels the freeze.
        let parked = (reusable && waiting)
            .then(|| env.freeze_ctl())
            .flatten()
            .map(|ctl| (ctl.park(), ctl));
        if reusable {
            self.put_back(pool, env);
        } else {
            drop(env);
        }
        drop(finishing);
        if let Some((ticket, ctl)) = parked {
            let grace = self.cfg.lifecycle.freeze_grace;
            if !grace.is_zero() {
                tokio::time::sleep(grace).await;
            }
            ctl.freeze_if_parked(ticket);
        }
    }

    /// After the runtime answered: wait for its next `/next` (it flushes its output before asking
    /// for more work), then let the pumps catch up. Returns whether the environment is reusable
    /// and whether its runtime is known to wait for its next event (it may be frozen then).
    async fn after_answer(&self, env: &mut Env, deadline: Instant) -> (bool, bool) {
        // Extensions may work on after the runtime's answer, up to the invocation's deadline.
        let wait = if env.extension_count() > 0 {
            deadline.saturating_duration_since(Instant::now())
        } else {
            self.timings.barrier
        };
        let barrier = tokio::time::timeout(wait, async {
            loop {
                match env.event().await {
                    Some(RuntimeEvent::Next) => return true,
                    Some(RuntimeEvent::Exited(_)) | None => return false,
                    Some(_) => continue,
                }
            }
        })
        .await;
        let waiting = barrier == Ok(true);
        let alive = barrier.unwrap_or(true) && !env.is_dead();
        if alive {
            env.flush_logs();
        } else {
            env.drain_logs_after_exit(self.timings.drain).await;
        }
        (alive, waiting && alive)
    }

    #[allow(clippy::too_many_arguments)]
    fn meter(
        &self,
        spec: &FunctionSpec,
        inv: &Invocation,
        started: SystemTime,
        duration_ms: f64,
        max_memory_used_mb: u64,
        init_duration_ms: Option<f64>,
        provisioned: bool,
        outcome: UsageOutcome,
        post_runtime_extensions_ms: Option<f64>,
    ) {
        // Metering off (no subscriber): the record's allocations are skipped.
        if self.usage.receiver_count() == 0 {
            return;
        }
        let _ = self.usage.send(UsageRecord {
            request_id: inv.request_id.clone(),
            account_id: spec.account_id.clone(),
            function_name: spec.function_name.clone(),
            function_arn: spec.function_arn.clone(),
            version: spec.version.clone(),
            qualifier: qualifier_of(&inv.invoked_function_arn),
            source: inv.source,
            started_at_ms: epoch_ms(started),
            duration_ms,
            // An environment that never got ready, or a throttled call, never ran the
            // invocation: nothing to bill.
            billed_duration_ms: if matches!(
                outcome,
                UsageOutcome::InitError | UsageOutcome::Throttle
            ) {
                0
            } else {
                billed_ms(duration_ms + post_runtime_extensions_ms.unwrap_or(0.0))
            },
            memory_mb: spec.memory_mb,
            max_memory_used_mb,
            init_duration_ms,
            cold_start: init_duration_ms.is_some(),
            ephemeral_extra_mb: if outcome == UsageOutcome::Throttle {
                0
            } else {
                spec.ephemeral_mb.saturating_sub(FREE_EPHEMERAL_MB)
            },
            provisioned,
            outcome,
            post_runtime_extensions_duration_ms: post_runtime_extensions_ms,
        });
    }

    /// Records a throttled invocation (it never reaches `run`) and returns its error.
    fn throttled(
        &self,
        spec: &FunctionSpec,
        inv: &Invocation,
        reason: &'static str,
    ) -> InvokeError {
        // Nothing ran: no duration, memory or storage to bill.
        self.meter(
            spec,
            inv,
            SystemTime::now(),
            0.0,
            0,
            None,
            false,
            UsageOutcome::Throttle,
            None,
        );
        InvokeError::Throttled { reason }
    }

    pub(crate) fn retire(&self, function_arn: &str, keep_generation: Option<&str>) {
        let retired: Vec<Arc<Pool>> = {
            let mut pools = self.lock_pools();
            // Provisioned pools stay: only `set_provisioned` stops them.
            let keys: Vec<PoolKey> = pools
                .iter()
                .filter(|(k, p)| {
                    k.function_arn == function_arn
                        && Some(k.generation.as_str()) != keep_generation
                        && p.provision.want() == 0
                })
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter().filter_map(|k| pools.remove(k)).collect()
        };
        let envs: Vec<Env> = retired.iter().flat_map(|p| p.retire()).collect();
        drop(envs);
        self.retire_warmth(function_arn, keep_generation);
    }

    pub(crate) async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.stop_provisioners();
        let launcher = self.launcher.clone();
        let _ = tokio::task::spawn_blocking(move || launcher.shutdown()).await;
        let pools: Vec<Arc<Pool>> = self.lock_pools().drain().map(|(_, p)| p).collect();
        let envs: Vec<Env> = pools.iter().flat_map(|p| p.retire()).collect();
        drop(envs);
        let capacity = self.capacity.clone();
        let _ = tokio::task::spawn_blocking(move || capacity.kill_all()).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.capacity.live_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops idle environments the keep-alive policy no longer keeps, and forgets unused empty
    /// pools.
    fn reap(&self) {
        let now = Instant::now();
        let ttl = self.cfg.idle_timeout;
        let mut expired = Vec::new();
        {
            let mut pools = self.lock_pools();
            pools.retain(|_, pool| {
                let before = expired.len();
                let rule = self.rule_for(pool, now);
                let mut idle = pool.lock_idle();
                let mut i = 0;
                while i < idle.len() {
                    if idle[i].is_dead() || rule.expires(&idle[i], now, ttl) {
                        expired.push(idle.remove(i));
                    } else {
                        i += 1;
                    }
                }
                // The environments reaped just now still count as live until they are dropped.
                let reaped_here = expired.len() - before;
                let unused = idle.is_empty()
                    && pool.users.load(Ordering::Acquire) == 0
                    && pool.live.load(Ordering::Acquire) <= reaped_here;
                !unused
            });
        }
        drop(expired);
        self.lock_running().retain(|_, c| c.strong_count() > 0);
    }

    pub(crate) fn pool_stats(&self) -> Vec<PoolStats> {
        let pools = self.read_pools();
        let mut out: Vec<PoolStats> = pools
            .values()
            .map(|p| PoolStats {
                function_arn: p.key.function_arn.clone(),
                version: p.key.version.clone(),
                generation: p.key.generation.clone(),
                idle: p.lock_idle().len(),
                live: p.live.load(Ordering::Acquire),
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.function_arn, &a.version, &a.generation).cmp(&(
                &b.function_arn,
                &b.version,
                &b.generation,
            ))
        });
        out
    }

    pub(crate) fn memory_used_mb(&self) -> u64 {
        self.capacity.used_mb()
    }
}

/// The runtime's command line, behind the function's `AWS_LAMBDA_EXEC_WRAPPER` script when it
/// names one: Lambda runs the wrapper with the runtime's command as its arguments (managed
/// runtimes only; a custom runtime's `bootstrap` is its own wrapper).
fn exec_wrapped(launch: &Launch, argv: Vec<String>, env: &[(String, String)]) -> Vec<String> {
    let wrapper = env
        .iter()
        .find(|(k, v)| k == "AWS_LAMBDA_EXEC_WRAPPER" && !v.is_empty())
        .map(|(_, v)| v.clone());
    match wrapper {
        Some(w) if launch.client_dir.is_some() => std::iter::once(w).chain(argv).collect(),
        _ => argv,
    }
}

/// Tells the Telemetry API's subscribers that the init phase is over.
pub(crate) fn publish_init_done(env: &Env, kind: &'static str, init: Duration) {
    let t = env.telemetry();
    t.publish(
        Stream::Platform,
        "platform.initRuntimeDone",
        || serde_json::json!({"initializationType": kind, "phase": "init", "status": "success"}),
    );
    t.publish(Stream::Platform, "platform.initReport", || {
        serde_json::json!({
            "initializationType": kind,
            "phase": "init",
            "status": "success",
            "metrics": {"durationMs": init.as_secs_f64() * 1000.0},
        })
    });
}

/// Waits for the end of an environment's init phase.
async fn wait_ready(env: &mut Env) -> InitEnd {
    loop {
        match env.event().await {
            Some(RuntimeEvent::Next) => return InitEnd::Ready,
            Some(RuntimeEvent::InitError {
                error_type, body, ..
            }) => {
                return InitEnd::Error(error_type, body);
            }
            Some(RuntimeEvent::Exited(info)) => return InitEnd::Exited(info),
            None => {
                return InitEnd::Exited(ExitInfo {
                    code: None,
                    signal: None,
                });
            }
            Some(_) => continue,
        }
    }
}

/// Waits for the answer to `request_id`, the runtime's exit, or the deadline. A streamed answer
/// is read here to its end, chunk by chunk, into `sink`.
async fn wait_finish(
    env: &mut Env,
    request_id: &str,
    deadline: Instant,
    sink: &mut Sink,
) -> Finish {
    let deadline = tokio::time::Instant::from_std(deadline);
    loop {
        tokio::select! {
            ev = env.event() => match ev {
                Some(RuntimeEvent::Response { request_id: id, content_type, body, .. }) if id == request_id => {
                    return Finish::Response(body, content_type);
                }
                Some(RuntimeEvent::Streaming { request_id: id, content_type, body }) if id == request_id => {
                    match stream::pump(body, content_type, sink, deadline).await {
                        // The connection broke mid-body: the runtime's exit (or the deadline)
                        // tells what happened.
                        None => continue,
                        Some(finish) => return finish,
                    }
                }
                Some(RuntimeEvent::Error { request_id: id, error_type, body, .. }) if id == request_id => {
                    let et = posted_error_type(error_type.as_deref(), &body);
                    return Finish::Error(messages::posted_error_body(body, error_type.as_deref()), et);
                }
                Some(RuntimeEvent::ResponseTooLarge { request_id: id }) if id == request_id => {
                    return Finish::TooLarge(crate::MAX_PAYLOAD_BYTES);
                }
                Some(RuntimeEvent::Exited(info)) => return Finish::Exited(info),
                None => return Finish::Exited(ExitInfo { code: None, signal: None }),
                Some(_) => continue,
            },
            _ = tokio::time::sleep_until(deadline) => return Finish::Timeout,
        }
    }
}

/// The error type of a posted error: the runtime's header, else the body's `errorType`, else
/// Lambda's `Unhandled`.
fn posted_error_type(header: Option<&str>, body: &[u8]) -> String {
    header
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()?
                .get("errorType")?
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "Unhandled".to_string())
}

/// An X-Ray trace header for invocations that came without one (Lambda always sends one).
fn new_trace_id() -> String {
    let r = (u128::from(random_u64()) << 32) | u128::from(random_u64() as u32);
    let secs = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("Root=1-{secs:08x}-{r:024x};Sampled=0")
}

thread_local! {
    /// SplitMix64 state, seeded once per thread from the OS.
    static RANDOM: std::cell::Cell<u64> = std::cell::Cell::new(uuid::Uuid::new_v4().as_u64_pair().0);
}

/// A fast non-cryptographic random number: request and trace ids must be unique, not
/// unguessable, and the OS's generator would cost a system call on every invocation (the front
/// door uses it too, for request ids and alias routing).
pub fn random_u64() -> u64 {
    RANDOM.with(|state| {
        let x = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// `X-Amz-Client-Context` is base64 JSON; the runtime gets the JSON, on one line. Anything that is
/// not base64 JSON is passed on as given.
pub(crate) fn decode_client_context(raw: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|v| v.to_string())
        .unwrap_or_else(|| raw.to_string())
}

pub(crate) mod keep;
pub(crate) mod provision;
pub(crate) mod stream;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod stream_tests;

#[cfg(test)]
mod provision_tests;

#[cfg(test)]
mod memory_tests;

#[cfg(test)]
mod keep_tests;
