//! Keep-alive policies on real pools, with runtimes running as plain host processes (the test
//! launcher of `tests.rs`) and bins of 100 ms.

use super::tests::{eventually, fixture_config, inv, json};
use super::*;
use crate::keepalive::{Decision, KeepAlive, KeepAliveMode};
use crate::{EngineStats, FunctionWarmthStats};

const BIN: Duration = Duration::from_millis(100);

fn adaptive(idle_timeout: Duration) -> super::tests::Fixture {
    fixture_config(Timings::default(), |cfg| {
        cfg.idle_timeout = idle_timeout;
        cfg.keep_alive = KeepAlive {
            mode: KeepAliveMode::Adaptive,
            bin: BIN,
            bins: 40,
        };
    })
}

fn function<'a>(stats: &'a EngineStats, name: &str) -> &'a FunctionWarmthStats {
    stats
        .functions
        .iter()
        .find(|f| f.function_arn.ends_with(&format!(":{name}")))
        .unwrap_or_else(|| panic!("no stats for {name}: {stats:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regular_function_is_released_early_and_prewarmed_before_its_next_call() {
    // The fixed keep-alive would keep the environment for five minutes.
    let fx = adaptive(Duration::from_secs(300));
    let spec = Arc::new(fx.spec("tick"));
    let mut usage = fx.engine.subscribe_usage();

    // Learning: six calls 950 ms apart give five idle times in the 900–1000 ms bin. Until the
    // fifth, the histogram is not trusted and the environment is kept (fixed keep-alive).
    for i in 0..6 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(950)).await;
        }
        fx.engine
            .invoke(spec.clone(), inv(serde_json::json!({}), false))
            .await
            .unwrap();
        let record = usage.recv().await.unwrap();
        assert_eq!(record.init_duration_ms.is_some(), i == 0, "call {i}");
    }
    let stats = fx.engine.stats();
    assert_eq!((stats.cold_starts, stats.warm_starts), (1, 5));
    assert_eq!(stats.prewarms_started, 0);

    // Idle now, with a trusted histogram: the environment stops at once...
    fx.settled("tick", (0, 0)).await;
    let f = fx.engine.stats();
    let d = function(&f, "tick")
        .decision
        .expect("a decision while idle");
    assert!(!d.fallback, "{d:?}");
    assert_eq!(function(&f, "tick").idle_samples, 5);
    // p5 in the 900 ms bin (or the one below it when a sleep ended early), less 10 %.
    assert!(
        d.prewarm == Duration::from_millis(810) || d.prewarm == Duration::from_millis(720),
        "{d:?}"
    );
    // ...and one is pre-warmed before the next call is due.
    fx.settled("tick", (1, 1)).await;
    let s = fx.engine.stats();
    assert_eq!(s.prewarms_started, 1);
    assert_eq!(s.prewarms_used, 0);

    let out = fx
        .engine
        .invoke(
            spec.clone(),
            inv(
                serde_json::json!({"env": ["AWS_LAMBDA_INITIALIZATION_TYPE"]}),
                false,
            ),
        )
        .await
        .unwrap();
    let body = json(&out);
    // A fresh runtime (the count starts again), started as on-demand, yet no init on this call.
    assert_eq!(body["count"], 1);
    assert_eq!(body["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
    let record = usage.recv().await.unwrap();
    assert!(record.init_duration_ms.is_none());
    let s = fx.engine.stats();
    assert_eq!((s.cold_starts, s.warm_starts), (1, 6));
    assert_eq!(s.prewarms_used, 1);
    assert_eq!(function(&s, "tick").prewarms_used, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_history_keeps_the_fixed_keep_alive() {
    let fx = adaptive(Duration::from_millis(600));
    let spec = Arc::new(fx.spec("rare"));
    for i in 0..3 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        fx.engine
            .invoke(spec.clone(), inv(serde_json::json!({}), false))
            .await
            .unwrap();
    }
    // Two idle times: the fixed keep-alive decides, the environment waits for a call.
    fx.settled("rare", (1, 1)).await;
    let s = fx.engine.stats();
    let f = function(&s, "rare");
    assert_eq!(f.idle_samples, 2);
    assert_eq!(
        f.decision,
        Some(Decision::fixed(Duration::from_millis(600)))
    );
    assert_eq!((f.cold_starts, f.warm_starts), (1, 2));
    // It goes once `idle_timeout` has passed, with no pre-warm after it.
    fx.settled("rare", (0, 0)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fx.stats("rare"), (0, 0));
    let s = fx.engine.stats();
    assert_eq!(s.prewarms_started, 0);
    // The environment was idle for about `idle_timeout`: 128 MiB × ~0.6 s (plus the gaps).
    assert!(s.idle_mib_seconds > 0.0, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixed_policy_counts_starts_and_idle_memory() {
    let fx = fixture_config(Timings::default(), |cfg| {
        cfg.idle_timeout = Duration::from_millis(400);
        cfg.keep_alive.mode = KeepAliveMode::Fixed;
    });
    let spec = Arc::new(fx.spec("plain"));
    for _ in 0..3 {
        fx.engine
            .invoke(spec.clone(), inv(serde_json::json!({}), false))
            .await
            .unwrap();
    }
    fx.settled("plain", (1, 1)).await;
    fx.settled("plain", (0, 0)).await;
    let s = fx.engine.stats();
    assert_eq!(s.keep_alive.mode, KeepAliveMode::Fixed);
    assert_eq!((s.cold_starts, s.warm_starts), (1, 2));
    let f = function(&s, "plain");
    assert_eq!((f.cold_starts, f.warm_starts), (1, 2));
    // No histogram is kept by the fixed policy.
    assert_eq!((f.idle_samples, f.decision), (0, None));
    assert!(f.idle_mib_seconds > 0.0);
    // The gauge follows at the next tick.
    eventually("no idle memory", || fx.engine.stats().idle_mb_now == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_unused_for_the_whole_horizon_stops_while_the_function_keeps_calling() {
    // Fallback decision while learning: keep-alive 500 ms, so the horizon is 500 ms.
    let fx = adaptive(Duration::from_millis(500));
    let spec = Arc::new(fx.spec("busy"));
    let slow = || inv(serde_json::json!({"op": "sleep", "s": 0.2}), false);
    let (a, b) = tokio::join!(
        fx.engine.invoke(spec.clone(), slow()),
        fx.engine.invoke(spec.clone(), slow())
    );
    a.unwrap();
    b.unwrap();
    fx.settled("busy", (2, 2)).await;
    // Calls every 50 ms: the function is never idle for long, so its window never closes, but
    // they all land on the warmest environment and the other one is not needed.
    for _ in 0..24 {
        fx.engine
            .invoke(spec.clone(), inv(serde_json::json!({}), false))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One environment left (the last call's may still be on its way back to the pool).
    fx.settled("busy", (1, 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prewarm_never_evicts_another_function() {
    // Room for exactly one environment of 128 MB.
    let fx = fixture_config(Timings::default(), |cfg| {
        cfg.memory_budget_mb = 128;
        cfg.idle_timeout = Duration::from_secs(300);
        cfg.keep_alive.mode = KeepAliveMode::Adaptive;
    });
    let other = Arc::new(fx.spec("other"));
    fx.engine
        .invoke(other.clone(), inv(serde_json::json!({}), false))
        .await
        .unwrap();
    fx.settled("other", (1, 1)).await;
    let spec = Arc::new(fx.spec("wanting"));
    let inner = &fx.engine.inner;
    let pool = inner.checkout(&spec);
    let err = inner
        .start_ready(&pool.0, &spec, false)
        .await
        .err()
        .expect("no room for a pre-warm");
    assert!(err.contains("memory"), "{err}");
    assert_eq!(fx.stats("other"), (1, 1));
    // A provisioned start, by contrast, makes room.
    let env = inner.start_ready(&pool.0, &spec, true).await.unwrap();
    assert_eq!(fx.stats("other"), (0, 0));
    drop(env);
}
