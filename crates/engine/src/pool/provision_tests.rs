//! Provisioned concurrency with runtimes running as plain host processes (the test launcher of
//! `tests.rs`).

use super::tests::{eventually, fixture_with, inv, json};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_environments_start_ahead_survive_the_reaper_and_stop_when_removed() {
    // A short keep-warm time: on-demand environments would be reaped within a few hundred ms.
    let fx = fixture_with(
        4096,
        100,
        Duration::from_millis(200),
        Duration::from_secs(5),
    );
    let spec = Arc::new(fx.spec("prov"));
    let mut usage = fx.engine.subscribe_usage();
    fx.engine.set_provisioned(spec.clone(), 2);
    fx.settled("prov", (2, 2)).await;
    let stats = fx.engine.provisioned_stats(&spec.function_arn);
    assert_eq!(stats.len(), 1);
    assert_eq!(
        (stats[0].requested, stats[0].allocated, stats[0].available),
        (2, 2, 2)
    );
    assert_eq!(stats[0].failure, None);
    assert_eq!(fx.engine.memory_in_use_mb(), 256, "the budget counts them");

    // Several keep-warm periods later they are all still there.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fx.stats("prov"), (2, 2));

    // An invocation takes one of them: no init of its own, and it sees how it was started.
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
    assert_eq!(
        body["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"],
        "provisioned-concurrency"
    );
    assert_eq!(body["count"], 1);
    let record = usage.recv().await.unwrap();
    assert!(record.init_duration_ms.is_none());
    fx.settled("prov", (2, 2)).await;

    // A provisioned environment that dies is replaced.
    let crashed = fx
        .engine
        .invoke(spec.clone(), inv(serde_json::json!({"op": "exit"}), false))
        .await
        .unwrap();
    assert_eq!(crashed.function_error, Some("Unhandled"));
    eventually("the dead environment to be replaced", || {
        fx.stats("prov") == (2, 2)
            && fx.engine.provisioned_stats(&spec.function_arn)[0].allocated == 2
    })
    .await;

    // Retiring the function's pools (a $LATEST update) leaves provisioned pools alone.
    fx.engine.retire(&spec.function_arn, Some("another"));
    assert_eq!(fx.stats("prov"), (2, 2));

    // Removing the provisioning stops them.
    fx.engine.set_provisioned(spec.clone(), 0);
    assert!(fx.engine.provisioned_stats(&spec.function_arn).is_empty());
    eventually("provisioned environments to stop", || {
        fx.engine.inner.memory_used_mb() == 0 && fx.stats("prov").1 == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lower_counts_release_the_surplus_and_on_demand_ones_are_separate() {
    let fx = fixture_with(4096, 100, Duration::from_secs(300), Duration::from_secs(5));
    let spec = Arc::new(fx.spec("shrink"));
    fx.engine.set_provisioned(spec.clone(), 3);
    fx.settled("shrink", (3, 3)).await;
    fx.engine.set_provisioned(spec.clone(), 1);
    fx.settled("shrink", (1, 1)).await;
    let stats = fx.engine.provisioned_stats(&spec.function_arn);
    assert_eq!((stats[0].requested, stats[0].allocated), (1, 1));

    // Two at once: one provisioned, one started on demand for the second caller.
    let (a, b) = tokio::join!(
        fx.engine.invoke(
            spec.clone(),
            inv(serde_json::json!({"op": "sleep", "s": 0.3}), false)
        ),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            fx.engine
                .invoke(
                    spec.clone(),
                    inv(
                        serde_json::json!({"env": ["AWS_LAMBDA_INITIALIZATION_TYPE"]}),
                        false,
                    ),
                )
                .await
        }
    );
    a.unwrap();
    assert_eq!(
        json(&b.unwrap())["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"],
        "on-demand"
    );
    fx.settled("shrink", (2, 2)).await;
    assert_eq!(
        fx.engine.provisioned_stats(&spec.function_arn)[0].allocated,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_inits_are_reported() {
    let fx = fixture_with(4096, 100, Duration::from_secs(300), Duration::from_secs(5));
    let mut spec = fx.spec("broken");
    spec.environment.push(("INIT_MODE".into(), "error".into()));
    let spec = Arc::new(spec);
    fx.engine.set_provisioned(spec.clone(), 1);
    eventually("the failure to be reported", || {
        fx.engine
            .provisioned_stats(&spec.function_arn)
            .first()
            .and_then(|s| s.failure.clone())
            .is_some_and(|f| f.contains("Runtime.TestInitError"))
    })
    .await;
    assert_eq!(
        fx.engine.provisioned_stats(&spec.function_arn)[0].allocated,
        0
    );
    fx.engine.set_provisioned(spec.clone(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_replaces_the_provisioned_set_of_a_function() {
    let fx = fixture_with(4096, 100, Duration::from_secs(300), Duration::from_secs(5));
    let mut v1 = fx.spec("sync");
    v1.version = "1".into();
    let v1 = Arc::new(v1);
    let mut v2 = (*v1).clone();
    v2.version = "2".into();
    v2.generation = "g2".into();
    let v2 = Arc::new(v2);
    fx.engine
        .sync_provisioned(&v1.function_arn, vec![(v1.clone(), 1)]);
    fx.settled("sync", (1, 1)).await;
    fx.engine
        .sync_provisioned(&v1.function_arn, vec![(v2.clone(), 2)]);
    eventually("version 2 to replace version 1", || {
        let stats = fx.engine.provisioned_stats(&v1.function_arn);
        stats.len() == 1 && stats[0].version == "2" && stats[0].allocated == 2
    })
    .await;
    fx.settled("sync", (2, 2)).await;
    fx.engine.sync_provisioned(&v1.function_arn, Vec::new());
    eventually("everything to stop", || fx.engine.memory_in_use_mb() == 0).await;
}
