//! Pre-warmed environments: cold starts without building a sandbox or starting an interpreter
//! on the invocation's path.
//!
//! [`PrewarmLauncher`] keeps, per *template key*, a few environments that are already complete
//! jails (namespaces, cgroup, root, `/tmp`, listener, credentials, seccomp) with an empty
//! `/var/task`. For the Python and Node.js runtimes they also already run the interpreter with
//! Updraft's runtime client loaded ([`Start::Template`]); for `provided.*` and Java runtimes pid 1
//! waits to exec the function's own bootstrap, or the JVM with the function's heap and
//! `JAVA_TOOL_OPTIONS` ([`Start::Deferred`]). A cold start takes one and
//! [`Jail::assign`]s it to the function: its code is mounted, its memory limit set, its
//! environment handed over, and the runtime goes on from there (importing the handler). A
//! background thread refills what was taken, off every invocation's path.
//!
//! What is shared: nothing. Every pre-warmed environment is a jail of its own, used by exactly one
//! function for the rest of its life; the interpreter in it was started for it alone (its own
//! address-space layout and hash seeds, unlike a forked zygote whose children share them). Only
//! the moment of creation moves earlier.
//!
//! A template key is everything of a [`JailSpec`] that must be fixed before the function is
//! known: the program, runtime client, interpreter paths, `/tmp` size, limits, and the variables
//! an interpreter reads while it starts (`PATH`, `PYTHONPATH`, `NODE_PATH`, ...). A function whose
//! own variables could change how the interpreter starts (`PYTHON*`, `NODE_*`, `LD_*`, ...), or
//! that has layers, always gets a freshly built environment. Keys nobody asked for within
//! [`UNUSED_KEY_TTL`] are dropped with their environments; environments waiting in a template
//! are not counted against the node's memory budget (a handful per runtime, ~10 MiB each for
//! Python).
//!
//! How many wait per key follows demand: at least `--prewarm`, and up to `--prewarm-max` when that
//! many cold starts of the key arrived within [`DEMAND_WINDOW`]. A burst of new functions or of
//! scale-outs therefore finds the pool grown by the cold starts before it, instead of one
//! environment replaced one cold start too late; once the window passes without demand the
//! extras are stopped again.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use updraft_sandbox::{Assignment, Jail, JailSpec, Start};

use crate::launcher::{JailLauncher, Launcher, Sandboxed};

/// Memory limit of an environment while it waits; an assignment sets the function's own.
const WAITING_MEMORY_MB: u64 = 128;
/// A template key nobody asked for within this long is dropped, with its environments.
pub(crate) const UNUSED_KEY_TTL: Duration = Duration::from_secs(600);
/// How long a refill waits after a cold start took an environment: long enough for that cold
/// start's own init (a few milliseconds) not to share the CPU with tens of milliseconds of
/// building, short enough that a burst of cold starts finds the replacement ready (measured on a
/// two-CPU node: 100 ms made back-to-back cold starts four times slower, none made single ones
/// 1-3 ms slower). After a miss the refill starts at once: that cold start builds its own
/// environment anyway, and delaying on every miss would starve the refill under a steady stream.
const REFILL_DELAY: Duration = Duration::from_millis(15);
/// First pause after a failed refill; it doubles on every failure in a row.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Cold starts of a key within this long size its pool: the pool holds as many environments as
/// arrived in the window (between the minimum and the maximum per key). Ten seconds spans a burst
/// of deployments or a scale-out, and lets an idle pool shrink back soon after.
pub(crate) const DEMAND_WINDOW: Duration = Duration::from_secs(10);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Variables a template is started with (their values are part of its key); the assignment
/// replaces the whole environment, but these were read when the interpreter started.
const TEMPLATE_VARS: &[&str] = &[
    "PATH",
    "LD_LIBRARY_PATH",
    "LANG",
    "TZ",
    "PYTHONPATH",
    "NODE_PATH",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// The runtime clients that start before their function is known and wait for it.
const WAITING_CLIENTS: &[&str] = &["/var/runtime/bootstrap.py", "/var/runtime/bootstrap.mjs"];

/// Function variables that may change how an interpreter starts: such a function gets an
/// environment of its own.
const STARTUP_PREFIXES: &[&str] = &["PYTHON", "NODE_", "LD_", "LC_", "MALLOC_", "GLIBC_", "UV_"];
const STARTUP_VARS: &[&str] = &["AWS_LAMBDA_EXEC_WRAPPER", "LANGUAGE", "TZDIR"];

/// What a pre-warmed environment must have in common with the function it is given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TemplateKey {
    start: Start,
    argv: Vec<String>,
    runtime_dir: Option<PathBuf>,
    ro_paths: Vec<PathBuf>,
    tmp_mb: u64,
    pids_max: u64,
    nofile: u64,
    env: Vec<(String, String)>,
}

/// The template key of `spec`, or `None` when the function must get a freshly built environment.
fn template_key(spec: &JailSpec) -> Option<TemplateKey> {
    if spec.start != Start::Now {
        return None;
    }
    // Layers arrive with the assignment, mounted over the pre-warmed jail's empty `/opt`, which
    // would hide any host path shown below `/opt`.
    if spec.opt_dir.is_some() && spec.ro_paths.iter().any(|p| p.starts_with("/opt")) {
        return None;
    }
    // Updraft's Python and Node.js clients can wait for their function; any other program (the
    // function's own bootstrap, or a JVM, whose heap and options are the function's) is started
    // once the environment is assigned.
    // A function whose layers bring external extensions starts them from a shell before its
    // runtime (`env::with_external_extensions`): that shell must run after the assignment, so
    // such a function gets a jail whose pid 1 waits, never an already running interpreter.
    let extensions_first = spec.argv.first().is_some_and(|a| a == "/bin/sh");
    let waits = !extensions_first
        && spec.runtime_dir.is_some()
        && spec
            .argv
            .iter()
            .any(|a| WAITING_CLIENTS.contains(&a.as_str()));
    let start = if waits {
        Start::Template
    } else {
        Start::Deferred
    };
    let mut env = Vec::new();
    if start == Start::Template {
        for (k, v) in &spec.env {
            if TEMPLATE_VARS.contains(&k.as_str()) {
                env.push((k.clone(), v.clone()));
            } else if STARTUP_VARS.contains(&k.as_str())
                || STARTUP_PREFIXES.iter().any(|p| k.starts_with(p))
            {
                return None;
            }
        }
        env.sort();
    }
    Some(TemplateKey {
        start,
        argv: if start == Start::Template {
            spec.argv.clone()
        } else {
            Vec::new()
        },
        runtime_dir: spec.runtime_dir.clone(),
        ro_paths: spec.ro_paths.clone(),
        tmp_mb: spec.tmp_mb,
        pids_max: spec.pids_max,
        nofile: spec.nofile,
        env,
    })
}

/// The spec a pre-warmed environment of `key` is built from.
fn template_spec(key: &TemplateKey, id: String, placeholder: &Path) -> JailSpec {
    JailSpec {
        id,
        code_dir: placeholder.to_path_buf(),
        runtime_dir: key.runtime_dir.clone(),
        opt_dir: None,
        ro_paths: key.ro_paths.clone(),
        tmp_mb: key.tmp_mb,
        memory_mb: WAITING_MEMORY_MB,
        pids_max: key.pids_max,
        cpu_ceiling: false,
        nofile: key.nofile,
        argv: key.argv.clone(),
        env: key.env.clone(),
        cwd: "/var/task".to_string(),
        start: key.start,
    }
}

/// Counts of what pre-warming did, for benchmarks and `updraft doctor`-like reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrewarmStats {
    /// Pre-warmed environments started in the background.
    pub built: u64,
    /// Cold starts served by a pre-warmed environment.
    pub used: u64,
    /// Cold starts that found none ready for their key (or were not eligible).
    pub missed: u64,
    /// Pre-warmed environments ready right now.
    pub ready: u64,
}

struct Slot {
    ready: Vec<Jail>,
    last_demand: Instant,
    /// When the recent cold starts of this key asked for an environment (within
    /// [`DEMAND_WINDOW`], at most `max_per_key` of them).
    demand: VecDeque<Instant>,
    failures: u32,
    next_try: Instant,
    /// A refill for this key is being built right now.
    building: bool,
}

struct State {
    slots: HashMap<TemplateKey, Slot>,
    shutdown: bool,
}

struct Shared {
    helper: JailLauncher,
    placeholder: PathBuf,
    per_key: usize,
    max_per_key: usize,
    state: Mutex<State>,
    wake: Condvar,
    built: AtomicU64,
    used: AtomicU64,
    missed: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many environments `slot` should hold now.
    fn target(&self, slot: &Slot, now: Instant) -> usize {
        pool_target(&slot.demand, now, self.per_key, self.max_per_key)
    }
}

/// The pool size the cold starts in `demand` call for at `now`: one environment per cold start
/// within [`DEMAND_WINDOW`], between `min` and `max`.
fn pool_target(demand: &VecDeque<Instant>, now: Instant, min: usize, max: usize) -> usize {
    let recent = demand
        .iter()
        .rev()
        .take_while(|t| now.saturating_duration_since(**t) < DEMAND_WINDOW)
        .count();
    recent.clamp(min, max.max(min))
}

/// A [`Launcher`] that serves cold starts from pre-warmed environments when it can, and builds
/// a fresh one otherwise.
pub(crate) struct PrewarmLauncher {
    shared: Arc<Shared>,
}

impl PrewarmLauncher {
    /// At least `per_key` and, while cold starts call for them, up to `max_per_key` environments
    /// are kept ready for every template key in use; `placeholder` is an empty directory (what
    /// `/var/task` shows until an assignment). Starts the refill thread.
    pub(crate) fn new(
        helper_exe: PathBuf,
        placeholder: PathBuf,
        per_key: usize,
        max_per_key: usize,
    ) -> std::io::Result<PrewarmLauncher> {
        let shared = Arc::new(Shared {
            helper: JailLauncher::new(helper_exe),
            placeholder,
            per_key,
            max_per_key: max_per_key.max(per_key),
            state: Mutex::new(State {
                slots: HashMap::new(),
                shutdown: false,
            }),
            wake: Condvar::new(),
            built: AtomicU64::new(0),
            used: AtomicU64::new(0),
            missed: AtomicU64::new(0),
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("prewarm".into())
            .spawn(move || refill_loop(&worker))?;
        Ok(PrewarmLauncher { shared })
    }

    /// Takes a ready environment of `key`, noting the demand either way.
    fn take(&self, key: TemplateKey) -> Option<Jail> {
        let mut dead = Vec::new();
        let taken = {
            let mut st = self.shared.lock();
            let max = self.shared.max_per_key;
            let slot = st.slots.entry(key).or_insert_with(|| Slot {
                ready: Vec::new(),
                last_demand: Instant::now(),
                demand: VecDeque::with_capacity(max),
                failures: 0,
                next_try: Instant::now(),
                building: false,
            });
            let now = Instant::now();
            slot.last_demand = now;
            if slot.demand.len() >= max {
                slot.demand.pop_front();
            }
            slot.demand.push_back(now);
            let mut found = None;
            while let Some(jail) = slot.ready.pop() {
                if jail.try_wait().is_none() {
                    found = Some(jail);
                    slot.next_try = slot.next_try.max(Instant::now() + REFILL_DELAY);
                    break;
                }
                dead.push(jail);
            }
            found
        };
        self.shared.wake.notify_one();
        drop(dead);
        taken
    }
}

impl Launcher for PrewarmLauncher {
    fn launch(&self, spec: &JailSpec) -> Result<Box<dyn Sandboxed>, String> {
        if let Some(key) = template_key(spec)
            && let Some(mut jail) = self.take(key)
        {
            let assignment = Assignment {
                code_dir: spec.code_dir.clone(),
                memory_mb: spec.memory_mb,
                cpu_ceiling: spec.cpu_ceiling,
                argv: spec.argv.clone(),
                env: spec.env.clone(),
                cwd: spec.cwd.clone(),
                opt_dir: spec.opt_dir.clone(),
            };
            match jail.assign(&assignment) {
                Ok(()) => {
                    self.shared.used.fetch_add(1, Ordering::Relaxed);
                    return Ok(Box::new(jail));
                }
                Err(e) => {
                    tracing::warn!("pre-warmed environment {} refused: {e}", jail.id());
                }
            }
        }
        self.shared.missed.fetch_add(1, Ordering::Relaxed);
        self.shared.helper.launch(spec)
    }

    fn shutdown(&self) {
        let slots: Vec<Slot> = {
            let mut st = self.shared.lock();
            st.shutdown = true;
            st.slots.drain().map(|(_, s)| s).collect()
        };
        self.shared.wake.notify_all();
        drop(slots);
    }

    fn prewarm_stats(&self) -> Option<PrewarmStats> {
        let ready = self
            .shared
            .lock()
            .slots
            .values()
            .map(|s| s.ready.len() as u64)
            .sum();
        Some(PrewarmStats {
            built: self.shared.built.load(Ordering::Relaxed),
            used: self.shared.used.load(Ordering::Relaxed),
            missed: self.shared.missed.load(Ordering::Relaxed),
            ready,
        })
    }
}

/// A fresh, unique environment id for a pre-warmed environment.
fn next_id() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("pw-{}-{n}", std::process::id())
}

/// Builds what was taken, one environment at a time (on a two-core node a burst of parallel
/// builds would slow the invocations running beside them), and drops unused keys.
fn refill_loop(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.shutdown {
            return;
        }
        let now = Instant::now();
        let stale: Vec<TemplateKey> = st
            .slots
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_demand) >= UNUSED_KEY_TTL && !s.building)
            .map(|(k, _)| k.clone())
            .collect();
        if !stale.is_empty() {
            let dropped: Vec<Slot> = stale.iter().filter_map(|k| st.slots.remove(k)).collect();
            drop(st);
            drop(dropped);
            st = shared.lock();
            continue;
        }
        // Demand has passed: stop the environments beyond what the recent cold starts call for.
        let mut surplus = Vec::new();
        for slot in st.slots.values_mut() {
            let target = pool_target(&slot.demand, now, shared.per_key, shared.max_per_key);
            while slot.ready.len() > target {
                // The oldest waiting environment goes first.
                surplus.push(slot.ready.remove(0));
            }
        }
        if !surplus.is_empty() {
            drop(st);
            drop(surplus);
            st = shared.lock();
            continue;
        }
        // The key furthest below its target is refilled first.
        let want = st
            .slots
            .iter()
            .filter(|(_, s)| s.next_try <= now && !s.building)
            .filter_map(|(k, s)| {
                let short = shared.target(s, now).checked_sub(s.ready.len())?;
                (short > 0).then_some((short, k))
            })
            .max_by_key(|(short, _)| *short)
            .map(|(_, k)| k.clone());
        let Some(key) = want else {
            let grown = st.slots.values().any(|s| s.ready.len() > shared.per_key);
            let wait = st
                .slots
                .values()
                .filter(|s| s.ready.len() < shared.target(s, now))
                .map(|s| s.next_try.saturating_duration_since(now))
                .min()
                .unwrap_or(UNUSED_KEY_TTL)
                // A grown pool is looked at again soon, to shrink once its demand has passed.
                .min(if grown {
                    Duration::from_secs(1)
                } else {
                    UNUSED_KEY_TTL
                })
                .max(Duration::from_millis(10));
            st = shared
                .wake
                .wait_timeout(st, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        };
        if let Some(slot) = st.slots.get_mut(&key) {
            slot.building = true;
        }
        drop(st);
        let spec = template_spec(&key, next_id(), &shared.placeholder);
        let built = shared.helper.spawn(&spec);
        st = shared.lock();
        let Some(slot) = st.slots.get_mut(&key) else {
            // The key was dropped meanwhile (shutdown): stop the environment outside the lock.
            drop(st);
            drop(built);
            st = shared.lock();
            continue;
        };
        slot.building = false;
        match built {
            Ok(jail) => {
                shared.built.fetch_add(1, Ordering::Relaxed);
                slot.failures = 0;
                slot.ready.push(jail);
            }
            Err(e) => {
                slot.failures += 1;
                let pause = FIRST_RETRY
                    .saturating_mul(1 << slot.failures.min(8))
                    .min(MAX_RETRY);
                slot.next_try = Instant::now() + pause;
                tracing::warn!("pre-warming an environment failed (retry in {pause:?}): {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(runtime_dir: Option<&str>, env: &[(&str, &str)]) -> JailSpec {
        JailSpec {
            id: "env-1".into(),
            code_dir: "/data/code/abc".into(),
            runtime_dir: runtime_dir.map(PathBuf::from),
            opt_dir: None,
            ro_paths: vec!["/opt/python".into()],
            tmp_mb: 512,
            memory_mb: 256,
            pids_max: 1024,
            cpu_ceiling: false,
            nofile: 1024,
            argv: vec![
                "/usr/bin/python3".into(),
                "/var/runtime/bootstrap.py".into(),
            ],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cwd: "/var/task".into(),
            start: Start::Now,
        }
    }

    #[test]
    fn runtime_clients_become_templates_with_their_startup_variables_only() {
        let s = spec(
            Some("/data/runtimes/python"),
            &[
                ("PATH", "/usr/bin"),
                ("PYTHONPATH", "/var/runtime"),
                ("_HANDLER", "app.handler"),
                ("GREETING", "hi"),
            ],
        );
        let key = template_key(&s).unwrap();
        assert_eq!(key.start, Start::Template);
        assert_eq!(key.argv, s.argv);
        assert_eq!(
            key.env,
            [
                ("PATH".to_string(), "/usr/bin".to_string()),
                ("PYTHONPATH".to_string(), "/var/runtime".to_string())
            ]
        );
        // Two functions that differ only in their own variables share a key.
        let other = spec(
            Some("/data/runtimes/python"),
            &[
                ("PYTHONPATH", "/var/runtime"),
                ("PATH", "/usr/bin"),
                ("_HANDLER", "other.main"),
            ],
        );
        assert_eq!(template_key(&other), Some(key.clone()));
        let t = template_spec(&key, "pw-1".into(), Path::new("/data/empty"));
        assert_eq!(t.start, Start::Template);
        assert_eq!(t.code_dir, PathBuf::from("/data/empty"));
        assert_eq!(t.memory_mb, WAITING_MEMORY_MB);
        t.validate().unwrap();
    }

    #[test]
    fn variables_read_at_interpreter_start_rule_templates_out() {
        for var in [
            "PYTHONHASHSEED",
            "NODE_OPTIONS",
            "LD_PRELOAD",
            "LC_ALL",
            "AWS_LAMBDA_EXEC_WRAPPER",
            "MALLOC_ARENA_MAX",
        ] {
            let s = spec(Some("/data/runtimes/node"), &[(var, "x")]);
            assert_eq!(template_key(&s), None, "{var}");
        }
        // Layers come with the assignment: a layered function shares the layer-less template,
        // unless the jail shows a host path below /opt, which the layers' mount would hide.
        let mut plain = spec(Some("/data/runtimes/node"), &[]);
        plain.ro_paths = vec!["/usr/lib/node".into()];
        let mut layered = plain.clone();
        layered.opt_dir = Some("/data/layers/1".into());
        assert!(template_key(&plain).is_some());
        assert_eq!(template_key(&layered), template_key(&plain));
        layered.ro_paths.push("/opt/node".into());
        assert_eq!(template_key(&layered), None);
    }

    #[test]
    fn the_pool_follows_recent_cold_starts_between_its_bounds() {
        let now = Instant::now();
        let mut demand = VecDeque::new();
        assert_eq!(pool_target(&demand, now, 1, 8), 1);
        for i in 0..5u64 {
            demand.push_back(now - Duration::from_millis(100 * i));
        }
        demand.make_contiguous().sort();
        assert_eq!(pool_target(&demand, now, 1, 8), 5);
        assert_eq!(pool_target(&demand, now, 1, 3), 3);
        assert_eq!(pool_target(&demand, now, 6, 8), 6);
        // A maximum below the minimum keeps the minimum.
        assert_eq!(pool_target(&demand, now, 2, 1), 2);
        // Once the window has passed, the pool shrinks back to its minimum.
        assert_eq!(pool_target(&demand, now + DEMAND_WINDOW, 1, 8), 1);
        let later = now + DEMAND_WINDOW - Duration::from_millis(150);
        assert_eq!(pool_target(&demand, later, 1, 8), 2);
    }

    #[test]
    fn runtimes_started_behind_external_extensions_are_deferred() {
        let mut s = spec(Some("/data/runtimes/python"), &[("PATH", "/usr/bin")]);
        let template = template_key(&s).unwrap();
        assert_eq!(template.start, Start::Template);
        // Layers mount over `/opt`: the host shows nothing below it to this function.
        s.ro_paths = vec!["/usr/lib/python3".into()];
        s.opt_dir = Some("/data/code/opt/abc".into());
        s.argv = crate::env::with_external_extensions_for_test(s.argv.clone());
        let key = template_key(&s).unwrap();
        assert_eq!(key.start, Start::Deferred);
    }

    #[test]
    fn custom_runtimes_are_deferred_whatever_their_variables() {
        let mut s = spec(None, &[("LD_PRELOAD", "/var/task/x.so"), ("A", "b")]);
        s.argv = vec!["/var/task/bootstrap".into()];
        let key = template_key(&s).unwrap();
        assert_eq!(key.start, Start::Deferred);
        assert!(key.argv.is_empty() && key.env.is_empty());
        let t = template_spec(&key, "pw-2".into(), Path::new("/data/empty"));
        t.validate().unwrap();
    }

    #[test]
    fn different_interpreters_or_limits_do_not_share() {
        let a = spec(Some("/data/runtimes/python"), &[("PATH", "/usr/bin")]);
        let mut b = a.clone();
        b.tmp_mb = 1024;
        assert_ne!(template_key(&a), template_key(&b));
        let mut c = a.clone();
        c.argv[0] = "/usr/local/bin/python3".into();
        assert_ne!(template_key(&a), template_key(&c));
        let d = spec(Some("/data/runtimes/python"), &[("PATH", "/mine")]);
        assert_ne!(template_key(&a), template_key(&d));
    }
}
