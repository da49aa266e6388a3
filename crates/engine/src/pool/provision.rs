//! Provisioned concurrency: a number of initialised environments a pool keeps at all times.
//!
//! [`Inner::set_provisioned`] gives a pool a requested count and starts its *provisioner*, a
//! background task (never on an invocation's path) that starts environments until the pool holds
//! that many, and starts a replacement whenever one goes away (a crash, a timeout, an init that
//! failed). Each environment it starts runs with `AWS_LAMBDA_INITIALIZATION_TYPE` set to
//! `provisioned-concurrency` and carries a [`ProvisionedSlot`]; once ready it joins the pool's idle
//! list, where invocations take it like any other idle environment. The reaper, memory eviction
//! and `retire` leave provisioned environments (and the pools that have them) alone; the memory
//! budget counts them like any environment.
//!
//! A lower count releases idle surplus environments at once and busy ones when they come back;
//! a count of 0 ends the provisioner and stops the provisioned environments the same way. A
//! provisioner whose environments fail to start records the reason and tries again with a
//! growing delay (up to [`MAX_RETRY`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::{InitEnd, Inner, Pool, PoolKey, PoolUse, wait_ready};
use crate::env::{Env, EnvLaunch, ProvisionedSlot};
use crate::logs;
use crate::{FunctionSpec, ProvisionedStats};

/// How often a provisioner looks for dead idle environments when nothing woke it.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// First delay after a failed start; it doubles on every failure in a row.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest delay between attempts after failures.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The provisioned-concurrency state of one pool.
#[derive(Default)]
pub(crate) struct PoolProvision {
    /// Requested provisioned environments (0: none).
    want: AtomicU32,
    /// Provisioned environments alive and initialised (idle or busy).
    allocated: Arc<AtomicUsize>,
    /// Wakes the provisioner: the count changed or a provisioned environment went away.
    wake: Arc<Notify>,
    /// Why the last attempt to start an environment failed, while failures go on.
    failure: Mutex<Option<String>>,
}

impl PoolProvision {
    pub(crate) fn want(&self) -> usize {
        self.want.load(Ordering::Acquire) as usize
    }

    fn allocated(&self) -> usize {
        self.allocated.load(Ordering::Acquire)
    }

    fn lock_failure(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running provisioner, as the engine keeps it.
pub(crate) struct Provisioner {
    /// Keeps the pool known to the engine (the reaper never forgets a pool in use).
    pool: PoolUse,
    /// Tells this provisioner's task to end (a newer one may take over the same pool).
    cancelled: Arc<AtomicBool>,
}

impl Provisioner {
    fn stop(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.pool.0.provision.want.store(0, Ordering::Release);
        self.pool.0.provision.wake.notify_one();
    }
}

impl Inner {
    fn lock_provisioners(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Provisioner>> {
        self.provisioners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `count` initialised environments for `spec`'s pool (0 removes the provisioning and
    /// stops its environments). Returns at once; the environments start in the background.
    pub(crate) fn set_provisioned(
        self: &Arc<Self>,
        handle: &tokio::runtime::Handle,
        spec: Arc<FunctionSpec>,
        count: u32,
    ) {
        let key = PoolKey {
            function_arn: spec.function_arn.clone(),
            version: spec.version.clone(),
            generation: spec.generation.clone(),
        };
        if count == 0 {
            self.remove_provisioned(&key);
            return;
        }
        // Lock order: provisioners → pools map → one pool's idle list.
        let mut provisioners = self.lock_provisioners();
        if self.is_shutting_down() {
            return;
        }
        if let Some(p) = provisioners.get(&key) {
            let pool = p.pool.0.clone();
            drop(provisioners);
            pool.provision.want.store(count, Ordering::Release);
            pool.provision.wake.notify_one();
            self.release_surplus(&pool);
            return;
        }
        let pool = self.checkout(&spec);
        pool.0.provision.want.store(count, Ordering::Release);
        *pool.0.provision.lock_failure() = None;
        let cancelled = Arc::new(AtomicBool::new(false));
        handle.spawn(provision_loop(
            Arc::downgrade(self),
            pool.0.clone(),
            spec,
            cancelled.clone(),
        ));
        provisioners.insert(key, Provisioner { pool, cancelled });
    }

    /// Ends the provisioning of one pool and stops its provisioned environments.
    fn remove_provisioned(&self, key: &PoolKey) {
        let Some(p) = self.lock_provisioners().remove(key) else {
            return;
        };
        p.stop();
        self.release_surplus(&p.pool.0);
    }

    /// Makes `targets` the whole provisioned concurrency of `function_arn`: each target as
    /// [`Inner::set_provisioned`] sets it, and every other provisioned pool of the function
    /// removed.
    pub(crate) fn sync_provisioned(
        self: &Arc<Self>,
        handle: &tokio::runtime::Handle,
        function_arn: &str,
        targets: Vec<(Arc<FunctionSpec>, u32)>,
    ) {
        let stale: Vec<PoolKey> = self
            .lock_provisioners()
            .keys()
            .filter(|k| {
                k.function_arn == function_arn
                    && !targets.iter().any(|(s, n)| {
                        *n > 0
                            && s.function_arn == k.function_arn
                            && s.version == k.version
                            && s.generation == k.generation
                    })
            })
            .cloned()
            .collect();
        for key in &stale {
            self.remove_provisioned(key);
        }
        for (spec, count) in targets {
            self.set_provisioned(handle, spec, count);
        }
    }

    /// Ends every provisioner (on shutdown).
    pub(crate) fn stop_provisioners(&self) {
        let all: Vec<Provisioner> = self.lock_provisioners().drain().map(|(_, p)| p).collect();
        for p in &all {
            p.stop();
        }
    }

    /// Provisioned-concurrency counts of every provisioned pool of `function_arn`.
    pub(crate) fn provisioned_stats(&self, function_arn: &str) -> Vec<ProvisionedStats> {
        let provisioners = self.lock_provisioners();
        let mut out: Vec<ProvisionedStats> = provisioners
            .iter()
            .filter(|(k, _)| k.function_arn == function_arn)
            .map(|(k, p)| {
                let pool = &p.pool.0;
                let available = pool
                    .lock_idle()
                    .iter()
                    .filter(|e| e.provisioned.is_some() && !e.is_dead())
                    .count();
                ProvisionedStats {
                    function_arn: k.function_arn.clone(),
                    version: k.version.clone(),
                    generation: k.generation.clone(),
                    requested: pool.provision.want() as u32,
                    allocated: pool.provision.allocated() as u32,
                    available: available as u32,
                    failure: pool.provision.lock_failure().clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.version, &a.generation).cmp(&(&b.version, &b.generation)));
        out
    }

    /// Stops idle provisioned environments beyond the requested count (busy ones are released
    /// when they come back, in `put_back`).
    fn release_surplus(&self, pool: &Pool) {
        let want = pool.provision.want();
        let released: Vec<Env> = {
            let mut idle = pool.lock_idle();
            let mut out = Vec::new();
            let mut i = 0;
            while i < idle.len() {
                let surplus = idle[i]
                    .provisioned
                    .as_mut()
                    .is_some_and(|slot| slot.release_if_surplus(want));
                if surplus {
                    out.push(idle.remove(i));
                } else {
                    i += 1;
                }
            }
            out
        };
        drop(released);
    }

    /// Drops idle environments of the pool whose processes are gone, so that their slots free up.
    fn prune_dead(&self, pool: &Pool) {
        let dead: Vec<Env> = {
            let mut idle = pool.lock_idle();
            let mut out = Vec::new();
            let mut i = 0;
            while i < idle.len() {
                if idle[i].is_dead() {
                    out.push(idle.remove(i));
                } else {
                    i += 1;
                }
            }
            out
        };
        drop(dead);
    }

    /// Starts one environment off the invocation path and waits for its init to end: a
    /// provisioned one (`provisioned`: it may evict other pools' idle environments to fit the
    /// memory budget) or a pre-warmed one (only if the budget has room as it is). `Err` is the
    /// reason, in the words `StatusReason` shows.
    pub(super) async fn start_ready(
        self: &Arc<Self>,
        pool: &Arc<Pool>,
        spec: &FunctionSpec,
        provisioned: bool,
    ) -> Result<Env, String> {
        let launch = self
            .registry
            .launch_for(&spec.runtime)
            .map_err(|e| format!("runtime unavailable: {e}"))?;
        let mb = u64::from(spec.memory_mb);
        let memory = if provisioned {
            self.reserve_memory(mb, &pool.key).ok()
        } else {
            self.capacity.try_reserve(mb)
        }
        .ok_or_else(|| "not enough memory left on this node".to_string())?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let stream = logs::stream_name(SystemTime::now(), &spec.version, &id);
        let dir = logs::group_dir(&self.logs_dir, &spec.account_id, &spec.log_group)
            .map_err(|e| format!("cannot open log stream: {e}"))?;
        let jail = self.jail_spec(spec, &launch, &id, &stream, provisioned);
        let t0 = Instant::now();
        let mut env = Env::launch(EnvLaunch {
            launcher: self.launcher.clone(),
            jail,
            log_path: dir.join(logs::stream_file_name(&stream)),
            capture: false,
            memory,
            capacity: self.capacity.clone(),
            pool_live: pool.live.clone(),
            freeze: self.cfg.lifecycle.freeze,
            account_id: spec.account_id.clone(),
            log_hook: self.bound_log_hook(spec),
        })
        .await
        .map_err(|e| format!("cannot start execution environment: {e}"))?;
        env.log.set_settings(&spec.logging);
        let end = tokio::time::timeout(self.timings.init_timeout, wait_ready(&mut env)).await;
        let (status, reason) = match end {
            Ok(InitEnd::Ready) => {
                super::publish_init_done(
                    &env,
                    if provisioned {
                        "provisioned-concurrency"
                    } else {
                        "on-demand"
                    },
                    t0.elapsed(),
                );
                // Provisioned and pre-warmed environments wait frozen, as on Lambda.
                env.freeze_now();
                return Ok(env);
            }
            Ok(InitEnd::Error(error_type, _)) => {
                let _ = tokio::time::timeout(self.timings.barrier, async {
                    while !matches!(
                        env.event().await,
                        Some(crate::runtime_api::RuntimeEvent::Exited(_)) | None
                    ) {}
                })
                .await;
                env.kill().await;
                let et = error_type.unwrap_or_else(|| "Runtime.Unknown".to_string());
                ("error", format!("FUNCTION_ERROR_INIT_FAILURE: {et}"))
            }
            Ok(InitEnd::Exited(info)) => (
                "error",
                format!(
                    "FUNCTION_ERROR_INIT_FAILURE: the runtime exited during init ({})",
                    match (info.code, info.signal) {
                        (Some(c), _) => format!("exit status {c}"),
                        (_, Some(s)) => format!("signal {s}"),
                        _ => "unknown".to_string(),
                    }
                ),
            ),
            Err(_) => {
                env.kill().await;
                (
                    "timeout",
                    format!(
                        "FUNCTION_ERROR_INIT_FAILURE: init did not finish within {} s",
                        self.timings.init_timeout.as_secs()
                    ),
                )
            }
        };
        env.drain_logs_after_exit(self.timings.drain).await;
        let init_ms = t0.elapsed().as_secs_f64() * 1000.0;
        env.log.platform(&format!(
            "INIT_REPORT Init Duration: {init_ms:.2} ms\tPhase: init\tStatus: {status}"
        ));
        tracing::warn!(
            "{} environment of {}:{} failed: {reason}",
            if provisioned {
                "provisioned"
            } else {
                "pre-warmed"
            },
            spec.function_name,
            spec.version
        );
        Err(reason)
    }

    /// Hands a ready provisioned environment to its pool's idle list, unless it is not wanted
    /// any more.
    fn add_provisioned(&self, pool: &Pool, mut env: Env, cancelled: &AtomicBool) {
        env.last_used = Instant::now();
        env.provisioned = Some(ProvisionedSlot::new(
            pool.provision.allocated.clone(),
            pool.provision.wake.clone(),
        ));
        let mut idle = pool.lock_idle();
        let surplus = env
            .provisioned
            .as_mut()
            .is_some_and(|slot| slot.release_if_surplus(pool.provision.want()));
        if surplus
            || cancelled.load(Ordering::Acquire)
            || pool.retired.load(Ordering::Acquire)
            || self.is_shutting_down()
        {
            drop(idle);
            drop(env);
            return;
        }
        idle.push(env);
    }
}

/// The provisioner of one pool: keeps `want` provisioned environments alive until cancelled.
async fn provision_loop(
    weak: Weak<Inner>,
    pool: Arc<Pool>,
    spec: Arc<FunctionSpec>,
    cancelled: Arc<AtomicBool>,
) {
    let mut retry = FIRST_RETRY;
    loop {
        if cancelled.load(Ordering::Acquire) {
            return;
        }
        let Some(inner) = weak.upgrade() else { return };
        if inner.is_shutting_down() {
            return;
        }
        inner.prune_dead(&pool);
        let missing = pool
            .provision
            .want()
            .saturating_sub(pool.provision.allocated());
        let mut failed = false;
        if missing > 0 {
            let mut starts = JoinSet::new();
            for _ in 0..missing {
                let (inner, pool, spec) = (inner.clone(), pool.clone(), spec.clone());
                starts.spawn(async move { inner.start_ready(&pool, &spec, true).await });
            }
            while let Some(started) = starts.join_next().await {
                match started {
                    Ok(Ok(env)) => inner.add_provisioned(&pool, env, &cancelled),
                    Ok(Err(reason)) => {
                        failed = true;
                        *pool.provision.lock_failure() = Some(reason);
                    }
                    Err(e) => {
                        failed = true;
                        *pool.provision.lock_failure() =
                            Some(format!("environment start task failed: {e}"));
                    }
                }
            }
            if !failed {
                *pool.provision.lock_failure() = None;
                retry = FIRST_RETRY;
            }
        }
        drop(inner);
        let wait = if failed {
            let w = retry;
            retry = (retry * 2).min(MAX_RETRY);
            w
        } else {
            CHECK_EVERY
        };
        if failed {
            // Only the delay ends a wait after a failure: a wake-up must not turn it into a
            // tight retry loop.
            tokio::time::sleep(wait).await;
        } else {
            tokio::select! {
                _ = pool.provision.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
