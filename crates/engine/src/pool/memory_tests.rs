//! The node's memory budget counts idle environments at their measured footprint, with runtimes
//! running as plain host processes (the test launcher of `tests.rs`, whose footprint is the
//! process's resident set).

use super::tests::{eventually, fixture_with};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_environments_count_at_their_footprint_when_the_budget_is_short() {
    // Room for two environments at MemorySize 128, not three.
    let fx = fixture_with(260, 100, Duration::from_secs(300), Duration::from_secs(5));
    let specs: Vec<Arc<FunctionSpec>> = ["fpa", "fpb", "fpc"]
        .iter()
        .map(|n| Arc::new(fx.spec(n)))
        .collect();
    for s in &specs[..2] {
        fx.call(s, serde_json::json!({})).await.unwrap();
    }
    fx.settled("fpa", (1, 1)).await;
    fx.settled("fpb", (1, 1)).await;
    assert_eq!(fx.engine.inner.memory_used_mb(), 256);

    // The third needs 128: the two idle ones are counted at what they use instead of being
    // stopped.
    fx.call(&specs[2], serde_json::json!({})).await.unwrap();
    fx.settled("fpc", (1, 1)).await;
    assert_eq!(fx.stats("fpa"), (1, 1), "idle environment was kept");
    assert_eq!(fx.stats("fpb"), (1, 1), "idle environment was kept");
    let used = fx.engine.inner.memory_used_mb();
    assert!(used < 256 && used > 128, "budget in use: {used} MiB");

    // Running the first again counts it at 128 again; the third, idle by now, makes room.
    let before = json_pid(&fx, &specs[0]).await;
    assert_eq!(
        json_pid(&fx, &specs[0]).await,
        before,
        "the same warm environment ran"
    );
    for name in ["fpa", "fpb", "fpc"] {
        fx.settled(name, (1, 1)).await;
    }
    let used = fx.engine.inner.memory_used_mb();
    assert!(used <= 260, "budget exceeded: {used} MiB");

    // A function whose MemorySize does not fit even with everything counted at its footprint
    // still evicts.
    let mut big = fx.spec("fpbig");
    big.memory_mb = 240;
    fx.call(&Arc::new(big), serde_json::json!({}))
        .await
        .unwrap();
    eventually("an idle environment to be evicted", || {
        ["fpa", "fpb", "fpc"].iter().any(|n| fx.stats(n).1 == 0)
    })
    .await;
    assert!(fx.engine.inner.memory_used_mb() <= 260);
}

async fn json_pid(fx: &super::tests::Fixture, spec: &Arc<FunctionSpec>) -> serde_json::Value {
    let out = fx.call(spec, serde_json::json!({})).await.unwrap();
    super::tests::json(&out)["pid"].clone()
}
