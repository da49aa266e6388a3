//! Keep-alive in the engine: per function version, when idle environments stop and when one is
//! pre-warmed, and the counters that show what that costs and saves.
//!
//! The state of a function version ([`Warmth`]) is keyed on its ARN and version, not on a pool:
//! pools are per code generation and are forgotten once empty, which is exactly when a
//! function's history matters. Each pool holds its version's `Warmth`, so the invocation path
//! reaches it without a global lock.
//!
//! With the fixed policy an idle environment stops `idle_timeout` after its last invocation.
//! With the adaptive policy (see [`crate::keepalive`]) every invocation that finds its function
//! idle records the idle time, and the last invocation to end makes the function idle at `t` and
//! fixes its windows `P` (pre-warm) and `K` (keep-alive). Non-provisioned idle environments of
//! the function are then kept only in `[t + P - L, t + P + K)`, where `L` is the lead a pre-warm
//! needs: one and a half times the function's recent init duration (an average over its cold
//! starts and pre-warms). With `P > L` they stop at once, and at `t + P - L` the keeper tick
//! pre-warms one environment in the background (initialised without an invocation, like a
//! provisioned one, but `on-demand` and without a slot), so that it is ready at `t + P`; it
//! stops at `t + P + K` unless an invocation came. With `P ≤ L` a pre-warm would start at once:
//! the idle environments are kept instead. The paper's bins are minutes and its cold starts
//! seconds, so it needs no lead; with bins not much longer than an init, the lead is what makes
//! a pre-warm arrive in time. While the function has invocations in flight its idle
//! environments are kept. In both cases an environment that nobody used for `P + K` (the
//! whole horizon of the last decision) stops: after a burst a function that keeps calling
//! needs fewer environments than the burst started.
//!
//! Pre-warms never admit an invocation: they hold no account or reserved concurrency, and they
//! take memory only if the budget has it free (they never evict another function's
//! environments). An invocation that takes a pre-warmed environment is a warm start.
//!
//! The keeper tick also integrates the memory of idle, non-provisioned environments over time
//! (MiB·s of `MemorySize`), sampled each tick.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::{Inner, Pool};
use crate::env::Env;
use crate::keepalive::{Decision, IdleHistogram, KeepAliveMode};
use crate::{EngineStats, FunctionSpec, FunctionWarmthStats};

/// Longest time between two keeper ticks (the resolution of the idle-memory integral).
const MAX_TICK: Duration = Duration::from_millis(100);
/// Shortest time between two keeper ticks.
const MIN_TICK: Duration = Duration::from_millis(10);

/// Engine-wide counters (they outlive deleted functions).
#[derive(Default)]
pub(crate) struct Counters {
    cold: AtomicU64,
    warm: AtomicU64,
    prewarms: AtomicU64,
    prewarms_used: AtomicU64,
    /// MiB·ms of idle, non-provisioned environments.
    idle_mib_ms: AtomicU64,
    /// MiB of idle, non-provisioned environments at the last tick.
    idle_mb_now: AtomicU64,
}

/// Keep-alive state and counters of one function version.
pub(crate) struct Warmth {
    function_arn: String,
    version: String,
    cold: AtomicU64,
    warm: AtomicU64,
    prewarms: AtomicU64,
    prewarms_used: AtomicU64,
    idle_mib_ms: AtomicU64,
    /// Set while a pre-warmed environment waits in an idle list, so that the warm path looks at
    /// `state` only then.
    prewarm_waiting: AtomicBool,
    state: Mutex<State>,
}

/// What the adaptive policy knows of a function version.
struct State {
    hist: IdleHistogram,
    in_flight: u32,
    /// When the last invocation in flight ended, while none is.
    idle_since: Option<Instant>,
    /// The windows fixed when the function last became idle.
    decision: Option<Decision>,
    /// Whether this idle period's pre-warm has been started (or was not needed).
    prewarm_started: bool,
    /// When this idle period's pre-warm was started: the window opened then, whatever later
    /// init durations (a fast one shortens the lead) say.
    prewarm_at: Option<Instant>,
    /// The pre-warmed environment waiting for an invocation.
    prewarmed_env: Option<String>,
    /// The spec of the latest invocation: what a pre-warm starts.
    spec: Option<Arc<FunctionSpec>>,
    /// Running average of the init durations of the function's new environments.
    init: Duration,
}

impl State {
    /// The window `[start, end)` in which idle environments are kept, and whether a pre-warm
    /// is wanted at `start`; `None` while the function is busy or has never run.
    fn window(&self) -> Option<(Instant, Instant, bool)> {
        if self.in_flight > 0 {
            return None;
        }
        let (t, d) = (self.idle_since?, self.decision?);
        let lead = self.init * 3 / 2;
        let mut start = t + d.prewarm.saturating_sub(lead);
        if let Some(at) = self.prewarm_at {
            start = start.min(at);
        }
        Some((start, t + d.prewarm + d.keep_alive, start > t))
    }
}

impl Warmth {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Which of this version's idle environments the reaper keeps, at `now`.
    fn rule(&self, now: Instant, idle_timeout: Duration) -> Rule {
        let st = self.lock();
        // An environment unused for longer than the policy's whole horizon is not needed even
        // while the function is busy or inside its window: the function keeps calling, but on
        // other environments (the warmest idle one is always taken first).
        let horizon = st
            .decision
            .map_or(idle_timeout, |d| d.prewarm + d.keep_alive);
        if st.in_flight > 0 {
            return Rule::Keep(horizon);
        }
        match st.window() {
            Some((start, end, _)) if start <= now && now < end => Rule::Keep(horizon),
            Some(_) => Rule::Stop,
            // Never invoked since the engine started: the fixed policy applies.
            None => Rule::Ttl,
        }
    }
}

/// What the reaper does with a pool's idle, non-provisioned environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    /// Stop each one `idle_timeout` after its last use.
    Ttl,
    /// Keep those used within this time.
    Keep(Duration),
    /// Stop them all now.
    Stop,
}

impl Rule {
    /// Whether the idle environment `env` stops now under this rule (provisioned ones never do).
    pub(super) fn expires(self, env: &Env, now: Instant, idle_timeout: Duration) -> bool {
        if env.provisioned.is_some() {
            return false;
        }
        let unused = now.duration_since(env.last_used);
        match self {
            Rule::Ttl => unused >= idle_timeout,
            Rule::Keep(horizon) => unused >= horizon,
            Rule::Stop => true,
        }
    }
}

/// One invocation in flight, for the adaptive policy: dropping it when the invocation is over
/// makes the function idle if it was the last one.
pub(super) struct InFlight {
    warmth: Arc<Warmth>,
    idle_timeout: Duration,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut st = self.warmth.lock();
        st.in_flight = st.in_flight.saturating_sub(1);
        if st.in_flight == 0 {
            st.idle_since = Some(Instant::now());
            st.decision = Some(st.hist.decide(self.idle_timeout));
            st.prewarm_started = false;
            st.prewarm_at = None;
        }
    }
}

impl Inner {
    fn lock_warmth(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Warmth>>> {
        self.warmth.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keep-alive state of a function version, created on first use.
    pub(super) fn warmth_of(&self, function_arn: &str, version: &str) -> Arc<Warmth> {
        let mut map = self.lock_warmth();
        if let Some(w) = map.get(&(function_arn.to_string(), version.to_string())) {
            return w.clone();
        }
        let w = Arc::new(Warmth {
            function_arn: function_arn.to_string(),
            version: version.to_string(),
            cold: AtomicU64::new(0),
            warm: AtomicU64::new(0),
            prewarms: AtomicU64::new(0),
            prewarms_used: AtomicU64::new(0),
            idle_mib_ms: AtomicU64::new(0),
            prewarm_waiting: AtomicBool::new(false),
            state: Mutex::new(State {
                // Sized on the first idle period, so fixed-policy engines keep no histograms.
                hist: IdleHistogram::new(self.cfg.keep_alive.bin, 0),
                in_flight: 0,
                idle_since: None,
                decision: None,
                prewarm_started: false,
                prewarm_at: None,
                prewarmed_env: None,
                spec: None,
                init: Duration::ZERO,
            }),
        });
        map.insert((function_arn.to_string(), version.to_string()), w.clone());
        w
    }

    fn adaptive(&self) -> bool {
        self.cfg.keep_alive.mode == KeepAliveMode::Adaptive
    }

    /// An invocation of `pool` was admitted: with the adaptive policy, records the idle time
    /// that ends now and counts it in flight until the returned guard is dropped.
    pub(super) fn arrive(&self, pool: &Pool, spec: &Arc<FunctionSpec>) -> Option<InFlight> {
        if !self.adaptive() {
            return None;
        }
        let now = Instant::now();
        let mut st = pool.warmth.lock();
        if st.in_flight == 0
            && let Some(t) = st.idle_since.take()
        {
            if st.hist.samples() == 0 {
                st.hist = IdleHistogram::new(self.cfg.keep_alive.bin, self.cfg.keep_alive.bins);
            }
            st.hist.record(now.duration_since(t));
        }
        st.in_flight += 1;
        if st.spec.as_ref().is_none_or(|s| !Arc::ptr_eq(s, spec)) {
            st.spec = Some(spec.clone());
        }
        drop(st);
        Some(InFlight {
            warmth: pool.warmth.clone(),
            idle_timeout: self.cfg.idle_timeout,
        })
    }

    /// An invocation got an environment: `env_id` from the idle list (warm) or just started
    /// (cold).
    pub(super) fn count_start(&self, pool: &Pool, env_id: &str, cold: bool) {
        let w = &pool.warmth;
        if cold {
            w.cold.fetch_add(1, Ordering::Relaxed);
            self.counters.cold.fetch_add(1, Ordering::Relaxed);
            return;
        }
        w.warm.fetch_add(1, Ordering::Relaxed);
        self.counters.warm.fetch_add(1, Ordering::Relaxed);
        if w.prewarm_waiting.load(Ordering::Acquire) {
            let mut st = w.lock();
            if st.prewarmed_env.as_deref() == Some(env_id) {
                st.prewarmed_env = None;
                w.prewarm_waiting.store(false, Ordering::Release);
                w.prewarms_used.fetch_add(1, Ordering::Relaxed);
                self.counters.prewarms_used.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A new environment of `pool` finished its init in `took`.
    pub(super) fn note_init(&self, pool: &Pool, took: Duration) {
        if !self.adaptive() {
            return;
        }
        let mut st = pool.warmth.lock();
        st.init = if st.init.is_zero() {
            took
        } else {
            (st.init + took) / 2
        };
    }

    /// What the reaper does with `pool`'s idle environments now.
    pub(super) fn rule_for(&self, pool: &Pool, now: Instant) -> Rule {
        if self.adaptive() {
            pool.warmth.rule(now, self.cfg.idle_timeout)
        } else {
            Rule::Ttl
        }
    }

    /// Forgets the keep-alive state of a deleted function, or the pre-warm spec of generations
    /// other than `keep_generation` (a pre-warm must not start code that was replaced).
    pub(super) fn retire_warmth(&self, function_arn: &str, keep_generation: Option<&str>) {
        let mut map = self.lock_warmth();
        match keep_generation {
            None => map.retain(|(arn, _), _| arn != function_arn),
            Some(keep) => {
                for w in map.values().filter(|w| w.function_arn == function_arn) {
                    let mut st = w.lock();
                    if st.spec.as_ref().is_some_and(|s| s.generation != keep) {
                        st.spec = None;
                    }
                }
            }
        }
    }

    /// Stops the idle environments the policy no longer keeps. Unlike the reaper it takes the
    /// pools map only for reading (it forgets no pool), so it may run every tick without holding
    /// up invocations.
    fn release_expired(&self, now: Instant) {
        let mut expired = Vec::new();
        for pool in self.read_pools().values() {
            let rule = self.rule_for(pool, now);
            let mut idle = pool.lock_idle();
            let mut i = 0;
            while i < idle.len() {
                if rule.expires(&idle[i], now, self.cfg.idle_timeout) {
                    expired.push(idle.remove(i));
                } else {
                    i += 1;
                }
            }
        }
        drop(expired);
    }

    /// Adds `dt` of the current idle memory to the integrals.
    fn sample_idle_memory(&self, dt: Duration) {
        let dt_ms = dt.as_millis() as u64;
        let mut total = 0u64;
        for pool in self.read_pools().values() {
            let n = pool
                .lock_idle()
                .iter()
                .filter(|e| e.provisioned.is_none() && !e.is_dead())
                .count() as u64;
            let mb = n * pool.memory_mb;
            total += mb;
            if mb > 0 {
                pool.warmth
                    .idle_mib_ms
                    .fetch_add(mb * dt_ms, Ordering::Relaxed);
            }
        }
        self.counters.idle_mb_now.store(total, Ordering::Relaxed);
        self.counters
            .idle_mib_ms
            .fetch_add(total * dt_ms, Ordering::Relaxed);
    }

    /// Starts the pre-warms that are due: functions idle past the start of their window (pre-warm
    /// window less the lead), before its end, whose pool holds no idle environment.
    fn start_due_prewarms(self: &Arc<Self>, handle: &tokio::runtime::Handle, now: Instant) {
        let due: Vec<(Arc<Warmth>, Arc<FunctionSpec>)> = {
            let map = self.lock_warmth();
            map.values()
                .filter_map(|w| {
                    let mut st = w.lock();
                    let (start, end, wanted) = st.window()?;
                    if !wanted || st.prewarm_started || now < start || now >= end {
                        return None;
                    }
                    st.prewarm_started = true;
                    st.prewarm_at = Some(now);
                    Some((w.clone(), st.spec.clone()?))
                })
                .collect()
        };
        for (w, spec) in due {
            let pool = self.checkout(&spec);
            if pool.0.lock_idle().iter().any(|e| !e.is_dead()) {
                continue;
            }
            w.prewarms.fetch_add(1, Ordering::Relaxed);
            self.counters.prewarms.fetch_add(1, Ordering::Relaxed);
            let inner = self.clone();
            handle.spawn(async move {
                let t0 = Instant::now();
                match inner.start_ready(&pool.0, &spec, false).await {
                    Ok(mut env) => {
                        inner.note_init(&pool.0, t0.elapsed());
                        env.last_used = Instant::now();
                        let mut idle = pool.0.lock_idle();
                        if pool.0.retired.load(Ordering::Acquire) || inner.is_shutting_down() {
                            drop(idle);
                            drop(env);
                            return;
                        }
                        {
                            let mut st = w.lock();
                            st.prewarmed_env = Some(env.id.clone());
                            w.prewarm_waiting.store(true, Ordering::Release);
                        }
                        idle.push(env);
                    }
                    Err(reason) => tracing::debug!(
                        "pre-warm of {}:{} skipped: {reason}",
                        spec.function_name,
                        spec.version
                    ),
                }
            });
        }
    }

    /// Counters and per-version keep-alive state, for the admin API and benchmarks.
    pub(crate) fn stats(&self) -> EngineStats {
        let c = &self.counters;
        let mut functions: Vec<FunctionWarmthStats> = self
            .lock_warmth()
            .values()
            .map(|w| {
                let st = w.lock();
                FunctionWarmthStats {
                    function_arn: w.function_arn.clone(),
                    version: w.version.clone(),
                    cold_starts: w.cold.load(Ordering::Relaxed),
                    warm_starts: w.warm.load(Ordering::Relaxed),
                    prewarms_started: w.prewarms.load(Ordering::Relaxed),
                    prewarms_used: w.prewarms_used.load(Ordering::Relaxed),
                    idle_mib_seconds: w.idle_mib_ms.load(Ordering::Relaxed) as f64 / 1000.0,
                    idle_samples: st.hist.samples(),
                    idle_out_of_range: st.hist.out_of_range(),
                    decision: st.decision,
                }
            })
            .collect();
        functions.sort_by(|a, b| (&a.function_arn, &a.version).cmp(&(&b.function_arn, &b.version)));
        EngineStats {
            keep_alive: self.cfg.keep_alive,
            idle_timeout: self.cfg.idle_timeout,
            cold_starts: c.cold.load(Ordering::Relaxed),
            warm_starts: c.warm.load(Ordering::Relaxed),
            prewarms_started: c.prewarms.load(Ordering::Relaxed),
            prewarms_used: c.prewarms_used.load(Ordering::Relaxed),
            idle_mib_seconds: c.idle_mib_ms.load(Ordering::Relaxed) as f64 / 1000.0,
            idle_mb_now: c.idle_mb_now.load(Ordering::Relaxed),
            prewarmed: self.launcher.prewarm_stats(),
            functions,
        }
    }
}

/// Starts the keeper: a task that samples idle memory, starts due pre-warms, stops what the
/// adaptive policy releases, and runs the reaper.
/// It ends when the engine is dropped or shut down.
pub(crate) fn spawn_keeper(handle: &tokio::runtime::Handle, inner: &Arc<Inner>) {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let reap_every =
        (inner.cfg.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(10));
    let tick = match inner.cfg.keep_alive.mode {
        KeepAliveMode::Fixed => reap_every.min(MAX_TICK),
        // A quarter of a bin: windows are bin-sized, so they are kept to within a quarter bin.
        KeepAliveMode::Adaptive => (inner.cfg.keep_alive.bin / 4).clamp(MIN_TICK, MAX_TICK),
    };
    let handle2 = handle.clone();
    handle.spawn(async move {
        let mut timer = tokio::time::interval(tick);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sample = Instant::now();
        let mut last_reap = Instant::now();
        loop {
            timer.tick().await;
            let Some(inner) = weak.upgrade() else { return };
            if inner.is_shutting_down() {
                return;
            }
            let now = Instant::now();
            inner.sample_idle_memory(now.duration_since(last_sample));
            last_sample = now;
            if now.duration_since(last_reap) >= reap_every {
                inner.reap();
                last_reap = now;
            } else if inner.adaptive() {
                inner.release_expired(now);
            }
            if inner.adaptive() {
                inner.start_due_prewarms(&handle2, now);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle_state(t: Instant, prewarm_ms: u64, keep_ms: u64, init_ms: u64) -> State {
        State {
            hist: IdleHistogram::new(Duration::from_millis(100), 0),
            in_flight: 0,
            idle_since: Some(t),
            decision: Some(Decision {
                prewarm: Duration::from_millis(prewarm_ms),
                keep_alive: Duration::from_millis(keep_ms),
                fallback: false,
            }),
            prewarm_started: false,
            prewarm_at: None,
            prewarmed_env: None,
            spec: None,
            init: Duration::from_millis(init_ms),
        }
    }

    #[test]
    fn the_window_opens_early_by_the_prewarm_lead() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        // Lead 1.5 × 100 ms: the pre-warm starts at 850 ms, ready by 1 s; kept until 1.2 s.
        let st = idle_state(t, 1000, 200, 100);
        assert_eq!(st.window(), Some((t + ms(850), t + ms(1200), true)));
        // A lead longer than the pre-warm window: keep what is there, no pre-warm.
        let st = idle_state(t, 1000, 200, 800);
        assert_eq!(st.window(), Some((t, t + ms(1200), false)));
        // No pre-warm window (fallback or back-to-back calls): kept from the start.
        let st = idle_state(t, 0, 300, 0);
        assert_eq!(st.window(), Some((t, t + ms(300), false)));
    }

    #[test]
    fn a_started_pre_warm_keeps_its_window_when_the_lead_shrinks() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut st = idle_state(t, 1000, 200, 100);
        st.prewarm_started = true;
        st.prewarm_at = Some(t + ms(850));
        // The pre-warm itself initialised fast (a pre-built environment): the average init, and
        // with it the lead, drops; the environment it started must still be inside the window.
        st.init = ms(10);
        assert_eq!(st.window(), Some((t + ms(850), t + ms(1200), true)));
    }

    #[test]
    fn a_busy_or_new_function_has_no_window() {
        let t = Instant::now();
        let mut st = idle_state(t, 1000, 200, 100);
        st.in_flight = 1;
        assert_eq!(st.window(), None);
        st.in_flight = 0;
        st.idle_since = None;
        assert_eq!(st.window(), None);
    }
}
