//! One execution environment: the sandboxed runtime process, its Runtime API server, the pumps
//! copying its stdout/stderr into its log stream, and a thread that waits for it to exit.
//!
//! An [`Env`] is owned by exactly one party at a time (the invocation using it, or its pool's idle
//! list), so nothing inside needs a lock except what the server and pumps share. Dropping an `Env`
//! stops it: the Runtime API server and its connections are aborted, every process of the jail is
//! killed, and its share of the node's memory budget is given back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use updraft_sandbox::{ExitInfo, JailSpec};

use crate::freeze::FreezeCtl;
use crate::launcher::{Launcher, Sandboxed};
use crate::logs::{self, LogSink, Pump};
use crate::runtime_api::extensions::FunctionInfo;
use crate::runtime_api::{self, Assigned, RuntimeApi, RuntimeEvent};

/// The node's memory budget and the registry of every live environment (so that shutdown can kill
/// busy ones too). `std` mutexes: held for a few instructions, never across an await.
pub(crate) struct Capacity {
    budget_mb: u64,
    used_mb: Mutex<u64>,
    live: Mutex<HashMap<String, Arc<dyn Sandboxed>>>,
}

impl Capacity {
    pub(crate) fn new(budget_mb: u64) -> Arc<Capacity> {
        Arc::new(Capacity {
            budget_mb,
            used_mb: Mutex::new(0),
            live: Mutex::new(HashMap::new()),
        })
    }

    /// Reserves `mb` of the budget, `None` if it does not fit.
    pub(crate) fn try_reserve(self: &Arc<Self>, mb: u64) -> Option<MemoryLease> {
        let mut used = self.used_mb.lock().unwrap_or_else(|p| p.into_inner());
        if *used + mb > self.budget_mb {
            return None;
        }
        *used += mb;
        Some(MemoryLease {
            capacity: self.clone(),
            mb,
        })
    }

    /// Charges `mb` to the budget whether or not it fits: for memory already taken (the Runtime
    /// API server holding an environment's answer), which the budget must show so that new
    /// environments are not started on top of it.
    pub(crate) fn charge(self: &Arc<Self>, mb: u64) -> MemoryLease {
        *self.used_mb.lock().unwrap_or_else(|p| p.into_inner()) += mb;
        MemoryLease {
            capacity: self.clone(),
            mb,
        }
    }

    pub(crate) fn used_mb(&self) -> u64 {
        *self.used_mb.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, id: &str, sandbox: Arc<dyn Sandboxed>) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), sandbox);
    }

    fn unregister(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    pub(crate) fn live_count(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Kills every live environment (blocking; call from a blocking thread).
    pub(crate) fn kill_all(&self) {
        let all: Vec<_> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for sandbox in all {
            sandbox.kill();
        }
    }
}

/// A share of the memory budget, returned when dropped.
pub(crate) struct MemoryLease {
    capacity: Arc<Capacity>,
    mb: u64,
}

impl MemoryLease {
    /// Changes the share to `mb`: always possible downwards, upwards only while the budget has
    /// room (returns whether the share is `mb` now).
    pub(crate) fn resize(&mut self, mb: u64) -> bool {
        let mut used = self
            .capacity
            .used_mb
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if mb > self.mb && *used + (mb - self.mb) > self.capacity.budget_mb {
            return false;
        }
        *used = used.saturating_sub(self.mb) + mb;
        self.mb = mb;
        true
    }

    /// Changes the share to `mb` whether or not the budget has room (see [`Capacity::charge`]).
    pub(crate) fn force_resize(&mut self, mb: u64) {
        let mut used = self
            .capacity
            .used_mb
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(self.mb) + mb;
        self.mb = mb;
    }

    pub(crate) fn mb(&self) -> u64 {
        self.mb
    }
}

impl Drop for MemoryLease {
    fn drop(&mut self) {
        let mut used = self
            .capacity
            .used_mb
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(self.mb);
    }
}

/// Counts one environment in its pool for as long as it lives.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(counter: Arc<AtomicUsize>) -> Counted {
        counter.fetch_add(1, Ordering::AcqRel);
        Counted(counter)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Marks an environment as one of its pool's provisioned environments: counted in the pool's
/// allocated provisioned concurrency while it lives. Dropping it (the environment stopped or
/// died) tells the pool's provisioner, which starts a replacement.
pub(crate) struct ProvisionedSlot {
    allocated: Arc<AtomicUsize>,
    wake: Arc<Notify>,
    held: bool,
}

impl ProvisionedSlot {
    pub(crate) fn new(allocated: Arc<AtomicUsize>, wake: Arc<Notify>) -> ProvisionedSlot {
        allocated.fetch_add(1, Ordering::AcqRel);
        ProvisionedSlot {
            allocated,
            wake,
            held: true,
        }
    }

    /// Gives the slot up when the pool holds more than `want` provisioned environments (the
    /// requested count went down); returns whether it did. Check and decrement are one step, so
    /// environments released at the same time never take the count below `want`.
    pub(crate) fn release_if_surplus(&mut self, want: usize) -> bool {
        if !self.held {
            return false;
        }
        let mut n = self.allocated.load(Ordering::Acquire);
        loop {
            if n <= want {
                return false;
            }
            match self.allocated.compare_exchange_weak(
                n,
                n - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.held = false;
                    return true;
                }
                Err(now) => n = now,
            }
        }
    }
}

impl Drop for ProvisionedSlot {
    fn drop(&mut self) {
        if self.held {
            self.allocated.fetch_sub(1, Ordering::AcqRel);
            self.wake.notify_one();
        }
    }
}

/// Everything needed to start an environment.
pub(crate) struct EnvLaunch {
    pub launcher: Arc<dyn Launcher>,
    pub jail: JailSpec,
    pub log_path: PathBuf,
    /// Capture the init phase's output for a tail (a cold start asked for `LogType: Tail`).
    pub capture: bool,
    pub memory: MemoryLease,
    pub capacity: Arc<Capacity>,
    pub pool_live: Arc<AtomicUsize>,
    /// Freeze the environment whenever it waits for its next event.
    pub freeze: bool,
    /// The function's account, which extensions may ask for when they register.
    pub account_id: String,
    /// Embedded Metric Format lines of the function's output go here.
    pub log_hook: Option<crate::metering::BoundHook>,
}

/// A started execution environment.
pub(crate) struct Env {
    pub id: String,
    pub log: Arc<LogSink>,
    pub last_used: Instant,
    /// Always `Some` until dropped (taken so that the jail's last reference is released off the
    /// async threads).
    sandbox: Option<Arc<dyn Sandboxed>>,
    next_tx: mpsc::Sender<Assigned>,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    pumps: Vec<Pump>,
    server: Option<JoinHandle<()>>,
    /// Set by the waiting thread as soon as the processes are gone.
    dead: Arc<AtomicBool>,
    capacity: Arc<Capacity>,
    /// The last reading of the peak memory (MiB) and when it was taken.
    peak: Option<(Instant, u64)>,
    /// `Some` for a provisioned environment: the idle reaper and memory eviction leave it alone.
    pub provisioned: Option<ProvisionedSlot>,
    /// The function's `MemorySize`: what the lease holds while the environment may run.
    full_mb: u64,
    /// Counted at its measured footprint instead of `full_mb` (only while idle).
    shrunk: bool,
    memory: MemoryLease,
    /// `Some` when the environment is frozen while it waits for events.
    freeze: Option<Arc<FreezeCtl>>,
    /// The environment's Runtime API state, for its extensions.
    api: Arc<RuntimeApi>,
    _counted: Counted,
}

/// Lambda's whole shutdown phase when extensions are registered: SHUTDOWN to the extensions,
/// then the runtime's SIGTERM grace, then SIGKILL.
const SHUTDOWN_LIMIT: Duration = Duration::from_millis(2000);

/// Of [`SHUTDOWN_LIMIT`], what the runtime gets between SIGTERM and SIGKILL (Lambda reserves
/// 300 ms, 500 ms with an internal extension; the rest goes to the extensions).
const RUNTIME_TERM_GRACE: Duration = Duration::from_millis(500);

/// The runtime's command line behind a launcher that first starts every external extension
/// (each executable in `/opt/extensions`) in the background, as Lambda does before the runtime;
/// unchanged when the layers bring none.
pub(crate) fn with_external_extensions(
    argv: Vec<String>,
    opt_dir: Option<&std::path::Path>,
) -> Vec<String> {
    if external_extensions(opt_dir) == 0 {
        return argv;
    }
    extensions_launcher(argv)
}

/// `argv` behind the shell that starts every external extension first.
fn extensions_launcher(argv: Vec<String>) -> Vec<String> {
    let script = "for x in /opt/extensions/*; do [ -f \"$x\" ] && [ -x \"$x\" ] && \"$x\" & done; exec \"$@\"";
    ["/bin/sh", "-c", script, "updraft-extensions"]
        .into_iter()
        .map(str::to_string)
        .chain(argv)
        .collect()
}

/// `argv` as a function whose layers bring external extensions starts it.
#[cfg(test)]
pub(crate) fn with_external_extensions_for_test(argv: Vec<String>) -> Vec<String> {
    extensions_launcher(argv)
}

/// External extensions of a layer set: the executables in `<opt>/extensions`, which Lambda
/// starts before the runtime and waits for in the init phase.
pub(crate) fn external_extensions(opt_dir: Option<&std::path::Path>) -> usize {
    use std::os::unix::fs::PermissionsExt;
    let Some(dir) = opt_dir else { return 0 };
    std::fs::read_dir(dir.join("extensions"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.metadata()
                        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                })
                .count()
        })
        .unwrap_or(0)
}

/// A peak memory reading younger than this is reported again instead of read anew: reading the
/// cgroup costs an open, a read and a close, a tenth of the node's CPU per warm invocation when
/// invocations come back to back. The peak only grows, so a reused reading can only be low, by
/// what the environment allocated in the last instant.
const PEAK_REFRESH: Duration = Duration::from_millis(100);

impl Env {
    /// Builds the jail and wires its Runtime API, pumps and exit watcher. The runtime is running
    /// (in its init phase) when this returns.
    pub(crate) async fn launch(req: EnvLaunch) -> Result<Env, String> {
        let mut sink = LogSink::open(&req.log_path);
        sink.hook = req.log_hook;
        let log = Arc::new(sink);
        if req.capture {
            log.begin_capture();
        }
        let id = req.jail.id.clone();
        let var = |k: &str| {
            req.jail
                .env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let info = FunctionInfo {
            function_name: var("AWS_LAMBDA_FUNCTION_NAME"),
            function_version: var("AWS_LAMBDA_FUNCTION_VERSION"),
            handler: var("_HANDLER"),
            account_id: req.account_id.clone(),
        };
        let expected = external_extensions(req.jail.opt_dir.as_deref());
        let launcher = req.launcher.clone();
        let jail = req.jail;
        let mut sandbox = tokio::task::spawn_blocking(move || launcher.launch(&jail))
            .await
            .map_err(|e| format!("environment start task failed: {e}"))??;
        let listener = sandbox.take_runtime_api_listener();
        let unix_listener = sandbox.take_runtime_api_unix_listener();
        let stdout = sandbox.take_stdout();
        let stderr = sandbox.take_stderr();
        let sandbox: Arc<dyn Sandboxed> = Arc::from(sandbox);
        req.capacity.register(&id, sandbox.clone());

        let (ev_tx, events) = mpsc::unbounded_channel();
        let (api, next_tx) = RuntimeApi::new(ev_tx.clone(), Some(req.capacity.clone()));
        let function_name = info.function_name.clone();
        let function_version = info.function_version.clone();
        api.extensions.set_function(info);
        api.extensions.expect(expected);
        let connect_via = sandbox.clone();
        api.telemetry
            .set_connector(Arc::new(move |port| connect_via.connect_in_env(port)));
        api.telemetry.open_init_backlog();
        api.telemetry.publish(
            runtime_api::telemetry::Stream::Platform,
            "platform.initStart",
            || {
                serde_json::json!({
                    "initializationType": "on-demand",
                    "phase": "init",
                    "functionName": function_name,
                    "functionVersion": function_version,
                })
            },
        );
        let tap_api = api.clone();
        log.set_tap(Box::new(move |line| tap_api.telemetry.function_line(line)));
        // From here on, dropping `env` on an error path kills the jail.
        let mut env = Env {
            id,
            log,
            last_used: Instant::now(),
            sandbox: Some(sandbox),
            next_tx,
            events,
            pumps: Vec::new(),
            server: None,
            dead: Arc::new(AtomicBool::new(false)),
            capacity: req.capacity,
            peak: None,
            provisioned: None,
            full_mb: req.memory.mb(),
            shrunk: false,
            memory: req.memory,
            freeze: None,
            api: api.clone(),
            _counted: Counted::new(req.pool_live),
        };
        let listener = listener.ok_or("sandbox returned no runtime api listener")?;
        env.server = Some(
            runtime_api::serve(listener, unix_listener, api)
                .map_err(|e| format!("runtime api listener: {e}"))?,
        );
        for fd in [stdout, stderr].into_iter().flatten() {
            match Pump::spawn(fd, env.log.clone()) {
                Ok(p) => env.pumps.push(p),
                Err(e) => tracing::warn!("environment {}: cannot read runtime output: {e}", env.id),
            }
        }
        let sandbox = env.sandbox.clone().ok_or("environment lost its sandbox")?;
        if req.freeze {
            env.freeze = Some(FreezeCtl::new(sandbox.clone()));
        }
        let dead = env.dead.clone();
        std::thread::Builder::new()
            .name(format!("env-wait-{}", &env.id[..env.id.len().min(8)]))
            .stack_size(64 * 1024)
            .spawn(move || {
                let info = sandbox.wait();
                dead.store(true, Ordering::Release);
                let _ = ev_tx.send(RuntimeEvent::Exited(info));
            })
            .map_err(|e| format!("cannot start environment watcher: {e}"))?;
        Ok(env)
    }

    /// Whether the environment's processes are gone.
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Next event of the environment; `None` once nothing can send any more.
    pub(crate) async fn event(&mut self) -> Option<RuntimeEvent> {
        self.events.recv().await
    }

    /// Discards events left over from earlier invocations; returns the exit if one is among them.
    pub(crate) fn drain_stale(&mut self) -> Option<ExitInfo> {
        while let Ok(ev) = self.events.try_recv() {
            if let RuntimeEvent::Exited(info) = ev {
                return Some(info);
            }
        }
        None
    }

    /// The environment's freezing state, for parking it once its runtime waits for an event.
    pub(crate) fn freeze_ctl(&self) -> Option<Arc<FreezeCtl>> {
        self.freeze.clone()
    }

    /// Freezes the environment now (its runtime waits for its first event).
    pub(crate) fn freeze_now(&self) {
        if let Some(f) = &self.freeze {
            f.freeze_if_parked(f.park());
        }
    }

    /// Thaws the environment if it is frozen: it is about to get an event.
    pub(crate) fn wake(&self) {
        if let Some(f) = &self.freeze {
            f.wake();
        }
    }

    /// The environment's Telemetry API subscriptions, to publish platform records to.
    pub(crate) fn telemetry(&self) -> &runtime_api::telemetry::Telemetry {
        &self.api.telemetry
    }

    /// Extensions registered in the environment.
    pub(crate) fn extension_count(&self) -> usize {
        self.api.extensions.count()
    }

    /// Why the environment must be replaced because of an extension, if it must.
    pub(crate) fn extension_failure(&self) -> Option<String> {
        self.api.extensions.failure()
    }

    /// Hands an invocation to the runtime's (current or next) `/next`.
    pub(crate) fn assign(&self, a: Assigned) -> bool {
        self.next_tx.try_send(a).is_ok()
    }

    /// Kills the environment's processes and waits until the kill is done.
    pub(crate) async fn kill(&self) {
        if let Some(sandbox) = self.sandbox.clone() {
            let _ = tokio::task::spawn_blocking(move || sandbox.kill()).await;
        }
    }

    /// Peak memory so far in MiB, rounded up (0 when unknown). Read anew when `fresh` is set or
    /// the last reading is older than [`PEAK_REFRESH`].
    pub(crate) fn max_memory_used_mb(&mut self, fresh: bool) -> u64 {
        const MIB: u64 = 1024 * 1024;
        if !fresh
            && let Some((at, mb)) = self.peak
            && at.elapsed() < PEAK_REFRESH
        {
            return mb;
        }
        let read = self
            .sandbox
            .as_ref()
            .and_then(|s| s.memory_peak_bytes())
            .map(|b| b.div_ceil(MIB))
            .unwrap_or(0);
        let mb = read.max(self.peak.map_or(0, |(_, mb)| mb));
        self.peak = Some((Instant::now(), mb));
        mb
    }

    pub(crate) fn oom_killed(&self) -> bool {
        self.sandbox.as_ref().is_some_and(|s| s.oom_killed())
    }

    /// For an idle environment: counts it in the node's budget at the memory it uses now (its
    /// cgroup's usage) instead of its `MemorySize`, which it can only need again once it runs.
    /// Returns the MiB given back (0 when already counted so, or when usage is unknown).
    pub(crate) fn shrink_to_footprint(&mut self) -> u64 {
        const MIB: u64 = 1024 * 1024;
        if self.shrunk {
            return 0;
        }
        let Some(bytes) = self.sandbox.as_ref().and_then(|s| s.memory_current_bytes()) else {
            return 0;
        };
        let footprint = bytes.div_ceil(MIB).clamp(1, self.full_mb);
        let before = self.memory.mb();
        if footprint >= before || !self.memory.resize(footprint) {
            return 0;
        }
        self.shrunk = true;
        before - footprint
    }

    /// Counts the environment at its full `MemorySize` again, before it runs; `false` when the
    /// budget has no room for that now.
    pub(crate) fn regrow(&mut self) -> bool {
        if !self.shrunk {
            return true;
        }
        if !self.memory.resize(self.full_mb) {
            return false;
        }
        self.shrunk = false;
        true
    }

    /// Writes out what the runtime has written so far.
    pub(crate) fn flush_logs(&self) {
        logs::flush(&self.pumps);
    }

    /// Waits for the runtime's output pipes to close (after it exited), then flushes.
    pub(crate) async fn drain_logs_after_exit(&self, max: Duration) {
        logs::wait_eof(&self.pumps, max).await;
        logs::flush(&self.pumps);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.capacity.unregister(&self.id);
        let server = self.server.take();
        let Some(sandbox) = self.sandbox.take() else {
            if let Some(server) = server {
                server.abort();
            }
            return;
        };
        if !self.is_dead()
            && self.api.extensions.count() > 0
            && let Ok(h) = tokio::runtime::Handle::try_current()
        {
            // Lambda's shutdown phase: the Runtime API keeps serving while the extensions
            // get SHUTDOWN, then the runtime gets SIGTERM, then everything is killed.
            let api = self.api.clone();
            let freeze = self.freeze.clone();
            h.spawn(async move {
                if let Some(f) = &freeze {
                    f.wake();
                }
                let deadline = tokio::time::Instant::now() + SHUTDOWN_LIMIT;
                let deadline_ms = logs::epoch_ms(std::time::SystemTime::now())
                    + SHUTDOWN_LIMIT.as_millis() as u64;
                if api.extensions.queue_shutdown("spindown", deadline_ms) > 0 {
                    let ext_deadline = deadline - RUNTIME_TERM_GRACE;
                    while !api.extensions.all_waiting()
                        && tokio::time::Instant::now() < ext_deadline
                    {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                sandbox.terminate();
                tokio::time::sleep_until(
                    deadline.min(tokio::time::Instant::now() + RUNTIME_TERM_GRACE),
                )
                .await;
                if let Some(server) = server {
                    server.abort();
                }
                let _ = tokio::task::spawn_blocking(move || sandbox.kill()).await;
            });
            return;
        }
        if let Some(server) = server {
            server.abort();
        }
        // Killing (and, with the last reference, removing the cgroup) touches the file system and
        // waits for processes: keep it off async threads.
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(move || sandbox.kill());
            }
            Err(_) => sandbox.kill(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_extensions_start_before_the_runtime() {
        use std::os::unix::fs::PermissionsExt;
        let opt = tempfile::tempdir().unwrap();
        let argv = vec!["/var/task/bootstrap".to_string()];
        assert_eq!(with_external_extensions(argv.clone(), None), argv);
        assert_eq!(
            with_external_extensions(argv.clone(), Some(opt.path())),
            argv
        );
        std::fs::create_dir(opt.path().join("extensions")).unwrap();
        let ext = opt.path().join("extensions/probe");
        std::fs::write(&ext, "#!/bin/sh\n").unwrap();
        // Not executable: Lambda does not start it either.
        assert_eq!(external_extensions(Some(opt.path())), 0);
        std::fs::set_permissions(&ext, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(external_extensions(Some(opt.path())), 1);
        let wrapped = with_external_extensions(argv.clone(), Some(opt.path()));
        assert_eq!(wrapped[..2], ["/bin/sh", "-c"]);
        assert!(wrapped[2].contains("/opt/extensions/*"));
        assert_eq!(wrapped.last().unwrap(), "/var/task/bootstrap");
    }

    #[test]
    fn memory_budget_is_reserved_and_returned() {
        let cap = Capacity::new(1000);
        let a = cap.try_reserve(600).unwrap();
        assert!(cap.try_reserve(500).is_none());
        let b = cap.try_reserve(400).unwrap();
        assert_eq!(cap.used_mb(), 1000);
        drop(a);
        assert_eq!(cap.used_mb(), 400);
        assert!(cap.try_reserve(600).is_some());
        drop(b);
        assert_eq!(cap.used_mb(), 0);
    }

    #[test]
    fn leases_shrink_always_and_grow_only_within_the_budget() {
        let cap = Capacity::new(300);
        let mut a = cap.try_reserve(128).unwrap();
        let _b = cap.try_reserve(128).unwrap();
        assert!(a.resize(12));
        assert_eq!((a.mb(), cap.used_mb()), (12, 140));
        let _c = cap.try_reserve(150).unwrap();
        assert!(!a.resize(128), "no room to grow back");
        assert_eq!((a.mb(), cap.used_mb()), (12, 290));
        assert!(a.resize(22));
        assert_eq!(cap.used_mb(), 300);
        drop(a);
        assert_eq!(cap.used_mb(), 278);
    }
}
