//! Pool and invocation-flow tests with runtimes running as plain host processes (no jail), driven
//! by a small Python runtime loop (`tests/fixtures/rt.py`) started by a `provided` bootstrap.

use super::*;
use crate::launcher::host::HostLauncher;
use crate::{Engine, LogEvent};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;

const RT_PY: &str = include_str!("../../tests/fixtures/rt.py");
const BOOTSTRAP: &str = "#!/bin/sh\nexec python3 \"$LAMBDA_TASK_ROOT/rt.py\"\n";

pub(super) struct Fixture {
    pub(super) engine: Arc<Engine>,
    dir: tempfile::TempDir,
}

pub(super) fn fixture_with(
    budget_mb: u64,
    concurrency: u32,
    idle: Duration,
    init_timeout: Duration,
) -> Fixture {
    let timings = Timings {
        init_timeout,
        ..Timings::default()
    };
    fixture_timed(budget_mb, concurrency, idle, timings)
}

fn fixture_timed(budget_mb: u64, concurrency: u32, idle: Duration, timings: Timings) -> Fixture {
    fixture_config(timings, |cfg| {
        cfg.memory_budget_mb = budget_mb;
        cfg.account_concurrency = concurrency;
        cfg.idle_timeout = idle;
    })
}

/// A fixture whose engine configuration `edit` adjusts.
pub(super) fn fixture_config(timings: Timings, edit: impl FnOnce(&mut EngineConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EngineConfig::new(dir.path().join("data"), PathBuf::from("/nonexistent"));
    edit(&mut cfg);
    let engine = Engine::with_launcher(cfg, Arc::new(HostLauncher), timings).unwrap();
    Fixture { engine, dir }
}

fn fixture() -> Fixture {
    fixture_with(4096, 100, Duration::from_secs(300), Duration::from_secs(5))
}

impl Fixture {
    fn code(&self, name: &str) -> PathBuf {
        let code = self.dir.path().join("code").join(name);
        std::fs::create_dir_all(&code).unwrap();
        std::fs::write(code.join("rt.py"), RT_PY).unwrap();
        let boot = code.join("bootstrap");
        std::fs::write(&boot, BOOTSTRAP).unwrap();
        std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o755)).unwrap();
        code
    }

    pub(super) fn spec(&self, name: &str) -> FunctionSpec {
        FunctionSpec {
            account_id: "123456789012".into(),
            function_name: name.into(),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
            version: "$LATEST".into(),
            generation: "g1".into(),
            runtime: "provided.al2023".into(),
            handler: "ignored".into(),
            memory_mb: 128,
            timeout_s: 3,
            ephemeral_mb: 512,
            environment: vec![("GREETING".into(), "hello".into())],
            code_dir: self.code(name),
            opt_dir: None,
            reserved_concurrency: None,
            log_group: format!("/aws/lambda/{name}"),
            logging: Default::default(),
        }
    }

    pub(super) async fn call(
        &self,
        spec: &Arc<FunctionSpec>,
        event: Value,
    ) -> Result<InvokeOutcome, InvokeError> {
        self.engine.invoke(spec.clone(), inv(event, false)).await
    }

    fn logs(&self, name: &str) -> Vec<LogEvent> {
        self.engine.read_logs("123456789012", name, 0).unwrap()
    }

    /// Waits until the pool of `name` has these (idle, live) counts: the caller gets its answer
    /// before the environment is back in its pool.
    pub(super) async fn settled(&self, name: &str, want: (usize, usize)) {
        eventually(&format!("{name} to have (idle, live) = {want:?}"), || {
            self.stats(name) == want
        })
        .await;
    }

    pub(super) fn stats(&self, name: &str) -> (usize, usize) {
        self.engine
            .pool_stats()
            .iter()
            .filter(|s| s.function_arn.ends_with(&format!(":{name}")))
            .fold((0, 0), |(i, l), s| (i + s.idle, l + s.live))
    }
}

pub(super) fn inv(event: Value, tail: bool) -> Invocation {
    Invocation {
        request_id: uuid::Uuid::new_v4().to_string(),
        payload: Bytes::from(event.to_string()),
        invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        client_context: None,
        cognito_identity: None,
        trace_id: None,
        want_log_tail: tail,
        source: crate::InvocationSource::Sync,
    }
}

pub(super) fn json(out: &InvokeOutcome) -> Value {
    serde_json::from_slice(&out.payload)
        .unwrap_or_else(|e| panic!("payload {:?}: {e}", String::from_utf8_lossy(&out.payload)))
}

pub(super) async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_reporting_out_of_memory_is_replaced() {
    let fx = fixture();
    let spec = Arc::new(fx.spec("oom"));
    let first = json(&fx.call(&spec, serde_json::json!({})).await.unwrap());
    let out = fx
        .call(&spec, serde_json::json!({"op": "oom"}))
        .await
        .unwrap();
    assert_eq!(out.function_error, Some("Unhandled"));
    assert_eq!(json(&out)["errorType"], "Runtime.OutOfMemory");
    let after = json(&fx.call(&spec, serde_json::json!({})).await.unwrap());
    assert_eq!(after["count"], 1, "a fresh environment");
    assert_ne!(after["pid"], first["pid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_reuse_keeps_state_and_reports_init_once() {
    let fx = fixture();
    let spec = Arc::new(fx.spec("warm"));
    let mut usage = fx.engine.subscribe_usage();
    let a = json(
        &fx.call(
            &spec,
            serde_json::json!({"env": ["GREETING", "AWS_LAMBDA_FUNCTION_NAME"]}),
        )
        .await
        .unwrap(),
    );
    let b = json(&fx.call(&spec, serde_json::json!({})).await.unwrap());
    assert_eq!(a["count"], 1);
    assert_eq!(b["count"], 2);
    assert_eq!(a["pid"], b["pid"]);
    assert_eq!(a["env"]["GREETING"], "hello");
    assert_eq!(a["env"]["AWS_LAMBDA_FUNCTION_NAME"], "warm");
    assert_eq!(a["headers"]["Content-Type"], "application/json");
    assert!(
        a["headers"]["Lambda-Runtime-Trace-Id"]
            .as_str()
            .unwrap()
            .starts_with("Root=1-")
    );
    let deadline = a["headers"]["Lambda-Runtime-Deadline-Ms"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    let now = epoch_ms(SystemTime::now());
    assert!(
        deadline > now && deadline <= now + 3000,
        "deadline {deadline} now {now}"
    );
    fx.settled("warm", (1, 1)).await;

    let first = usage.recv().await.unwrap();
    let second = usage.recv().await.unwrap();
    assert_eq!(first.outcome, UsageOutcome::Success);
    assert!(first.init_duration_ms.is_some());
    assert!(second.init_duration_ms.is_none());
    assert_eq!(second.billed_duration_ms, billed_ms(second.duration_ms));
    assert_eq!(second.memory_mb, 128);

    let logs = fx.logs("warm");
    let reports: Vec<_> = logs
        .iter()
        .filter(|e| e.message.starts_with("REPORT "))
        .collect();
    assert_eq!(reports.len(), 2);
    assert!(reports[0].message.contains("\tInit Duration: "));
    assert!(!reports[1].message.contains("Init Duration"));
    assert!(logs.iter().any(|e| e.message == "init mode="));
    assert!(logs.iter().all(|e| e.stream.contains("/[$LATEST]")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_tail_spans_start_to_report() {
    let fx = fixture();
    let spec = Arc::new(fx.spec("tail"));
    let i = inv(serde_json::json!({"op": "noisy", "lines": 3}), true);
    let rid = i.request_id.clone();
    let out = fx.engine.invoke(spec.clone(), i).await.unwrap();
    let tail = String::from_utf8(out.log_tail.unwrap()).unwrap();
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines[0], format!("START RequestId: {rid} Version: $LATEST"));
    assert!(lines.contains(&"line 2"), "{tail}");
    assert!(lines.contains(&"to stderr"), "{tail}");
    assert_eq!(lines[lines.len() - 2], format!("END RequestId: {rid}"));
    assert!(lines[lines.len() - 1].starts_with(&format!("REPORT RequestId: {rid}\tDuration: ")));
    assert!(
        !tail.contains("init mode"),
        "init output is not part of the tail"
    );

    // Without a request for it there is no tail, and a large log is cut to 4 KiB.
    let out = fx.call(&spec, serde_json::json!({})).await.unwrap();
    assert!(out.log_tail.is_none());
    let out = fx
        .engine
        .invoke(
            spec.clone(),
            inv(serde_json::json!({"op": "noisy", "lines": 2000}), true),
        )
        .await
        .unwrap();
    let tail = out.log_tail.unwrap();
    assert_eq!(tail.len(), 4096);
    assert!(
        String::from_utf8_lossy(&tail)
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("REPORT ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_and_the_next_call_gets_a_fresh_environment() {
    let fx = fixture();
    let mut spec = fx.spec("slow");
    spec.timeout_s = 1;
    let spec = Arc::new(spec);
    let warm = json(&fx.call(&spec, serde_json::json!({})).await.unwrap());
    let t0 = Instant::now();
    let i = inv(serde_json::json!({"op": "sleep", "s": 10}), true);
    let rid = i.request_id.clone();
    let out = fx.engine.invoke(spec.clone(), i).await.unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(1600),
        "{took:?}"
    );
    assert_eq!(out.function_error, Some("Unhandled"));
    let v = json(&out);
    let msg = v["errorMessage"].as_str().unwrap();
    assert!(
        msg.ends_with(&format!(" {rid} Task timed out after 1.00 seconds")),
        "{msg}"
    );
    assert_eq!(v.as_object().unwrap().len(), 1);
    let tail = String::from_utf8(out.log_tail.unwrap()).unwrap();
    assert!(tail.contains("Task timed out after 1.00 seconds"));
    assert!(tail.contains("\tStatus: timeout"));

    let after = json(&fx.call(&spec, serde_json::json!({})).await.unwrap());
    assert_eq!(after["count"], 1);
    assert_ne!(after["pid"], warm["pid"]);
    eventually("the timed-out environment to go", || {
        fx.stats("slow") == (1, 1)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_report_exit_errors_and_replace_the_environment() {
    let fx = fixture();
    let spec = Arc::new(fx.spec("crash"));
    let i = inv(serde_json::json!({"op": "exit", "code": 3}), false);
    let rid = i.request_id.clone();
    let out = fx.engine.invoke(spec.clone(), i).await.unwrap();
    assert_eq!(out.function_error, Some("Unhandled"));
    assert_eq!(
        std::str::from_utf8(&out.payload).unwrap(),
        format!(
            r#"{{"errorType":"Runtime.ExitError","errorMessage":"RequestId: {rid} Error: Runtime exited with error: exit status 3"}}"#
        )
    );
    let out = fx
        .call(&spec, serde_json::json!({"op": "kill"}))
        .await
        .unwrap();
    let v = json(&out);
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: signal: killed")
    );
    let ok = json(&fx.call(&spec, serde_json::json!({})).await.unwrap());
    assert_eq!(ok["count"], 1);
    let logs = fx.logs("crash");
    assert!(logs.iter().any(|e| {
        e.message
            .ends_with("\tStatus: error\tError Type: Runtime.ExitError")
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_errors_keep_the_environment() {
    let fx = fixture();
    let spec = Arc::new(fx.spec("errs"));
    let mut usage = fx.engine.subscribe_usage();
    let out = fx
        .call(&spec, serde_json::json!({"op": "error"}))
        .await
        .unwrap();
    assert_eq!(out.function_error, Some("Unhandled"));
    let v = json(&out);
    assert_eq!(v["errorType"], "TestError");
    assert_eq!(v["errorMessage"], "boom");
    assert_eq!(
        usage.recv().await.unwrap().outcome,
        UsageOutcome::FunctionError
    );
    let ok = json(&fx.call(&spec, serde_json::json!({})).await.unwrap());
    assert_eq!(ok["count"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_response_fails_but_keeps_the_environment() {
    let fx = fixture();
    let spec = Arc::new(fx.spec("big"));
    let out = fx
        .call(&spec, serde_json::json!({"op": "big"}))
        .await
        .unwrap();
    assert_eq!(out.function_error, Some("Unhandled"));
    assert_eq!(
        std::str::from_utf8(&out.payload).unwrap(),
        r#"{"errorMessage":"Response payload size exceeded maximum allowed payload size (6291556 bytes).","errorType":"Function.ResponseSizeTooLarge"}"#
    );
    let ok = json(&fx.call(&spec, serde_json::json!({})).await.unwrap());
    assert_eq!(ok["count"], 2);
    assert!(
        fx.logs("big")
            .iter()
            .any(|e| e.message.starts_with("response refused 413"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_twice_is_an_invalid_state_transition() {
    let fx = fixture();
    let spec = Arc::new(fx.spec("twice"));
    let out = fx
        .engine
        .invoke(spec.clone(), inv(serde_json::json!({"op": "twice"}), true))
        .await
        .unwrap();
    assert_eq!(json(&out), serde_json::json!({"first": true}));
    let tail = String::from_utf8(out.log_tail.unwrap()).unwrap();
    assert!(tail.contains("second post 403 "), "{tail}");
    assert!(tail.contains("InvalidStateTransition"), "{tail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_failures_are_unhandled_outcomes() {
    let fx = fixture_with(
        4096,
        100,
        Duration::from_secs(300),
        Duration::from_millis(800),
    );
    let mut usage = fx.engine.subscribe_usage();

    let mut spec = fx.spec("initerr");
    spec.environment.push(("INIT_MODE".into(), "error".into()));
    let out = fx
        .engine
        .invoke(Arc::new(spec), inv(serde_json::json!({}), true))
        .await
        .unwrap();
    assert_eq!(out.function_error, Some("Unhandled"));
    let v = json(&out);
    assert_eq!(v["errorType"], "Runtime.TestInitError");
    assert_eq!(v["errorMessage"], "bad init");
    let tail = String::from_utf8(out.log_tail.unwrap()).unwrap();
    assert!(tail.contains("init failed on purpose"), "{tail}");
    assert!(tail.contains("INIT_REPORT Init Duration: "), "{tail}");
    assert!(
        tail.contains("\tStatus: error\tError Type: Runtime.TestInitError"),
        "{tail}"
    );
    let rec = usage.recv().await.unwrap();
    assert_eq!(rec.outcome, UsageOutcome::InitError);
    assert_eq!(rec.billed_duration_ms, 0);
    assert!(rec.init_duration_ms.is_some());
    eventually("the failed environment to go", || {
        fx.stats("initerr").1 == 0
    })
    .await;

    let mut spec = fx.spec("initexit");
    spec.environment.push(("INIT_MODE".into(), "exit".into()));
    let i = inv(serde_json::json!({}), false);
    let rid = i.request_id.clone();
    let out = fx.engine.invoke(Arc::new(spec), i).await.unwrap();
    assert_eq!(
        std::str::from_utf8(&out.payload).unwrap(),
        format!(
            r#"{{"errorType":"Runtime.ExitError","errorMessage":"RequestId: {rid} Error: Runtime exited with error: exit status 3"}}"#
        )
    );

    let mut spec = fx.spec("inithang");
    spec.environment.push(("INIT_MODE".into(), "hang".into()));
    let t0 = Instant::now();
    let out = fx
        .engine
        .invoke(Arc::new(spec), inv(serde_json::json!({}), false))
        .await
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(json(&out)["errorType"], "Runtime.InitError");
    eventually("the hung environment to go", || fx.stats("inithang").1 == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_invocations_get_parallel_environments() {
    let fx = fixture();
    let spec = Arc::new(fx.spec("par"));
    let ev = serde_json::json!({"op": "sleep", "s": 0.5});
    let (a, b) = tokio::join!(fx.call(&spec, ev.clone()), fx.call(&spec, ev.clone()));
    let (a, b) = (json(&a.unwrap()), json(&b.unwrap()));
    assert_ne!(a["pid"], b["pid"]);
    fx.settled("par", (2, 2)).await;
    assert_eq!(fx.engine.inner.memory_used_mb(), 256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_and_account_concurrency_throttle() {
    let fx = fixture_with(4096, 2, Duration::from_secs(300), Duration::from_secs(5));
    let mut off = fx.spec("off");
    off.reserved_concurrency = Some(0);
    let err = fx
        .call(&Arc::new(off), serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, InvokeError::Throttled { reason } if reason == THROTTLE_RESERVED));

    let mut one = fx.spec("one");
    one.reserved_concurrency = Some(1);
    let one = Arc::new(one);
    // The limit counts every version of the function.
    let mut v1 = (*one).clone();
    v1.version = "1".into();
    let v1 = Arc::new(v1);
    let slow = serde_json::json!({"op": "sleep", "s": 0.6});
    let (a, b) = tokio::join!(fx.call(&one, slow.clone()), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        fx.call(&v1, serde_json::json!({})).await
    });
    assert!(a.is_ok());
    assert!(matches!(b, Err(InvokeError::Throttled { reason }) if reason == THROTTLE_RESERVED));

    let spec = Arc::new(fx.spec("acct"));
    let (a, b, c) = tokio::join!(
        fx.call(&spec, slow.clone()),
        fx.call(&spec, slow.clone()),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            fx.call(&spec, serde_json::json!({})).await
        }
    );
    assert!(a.is_ok() && b.is_ok());
    assert!(matches!(c, Err(InvokeError::Throttled { reason }) if reason == THROTTLE_ACCOUNT));
    // Permits come back.
    assert!(fx.call(&spec, serde_json::json!({})).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_budget_evicts_idle_environments_then_throttles() {
    let fx = fixture_with(256, 100, Duration::from_secs(300), Duration::from_secs(5));
    let a = Arc::new(fx.spec("mema"));
    fx.call(&a, serde_json::json!({})).await.unwrap();
    fx.settled("mema", (1, 1)).await;
    let mut b = fx.spec("memb");
    b.memory_mb = 256;
    let b = Arc::new(b);
    fx.call(&b, serde_json::json!({})).await.unwrap();
    assert_eq!(
        fx.stats("mema").0,
        0,
        "idle environment of another pool was evicted"
    );
    assert_eq!(fx.engine.inner.memory_used_mb(), 256);
    let slow = serde_json::json!({"op": "sleep", "s": 0.5});
    let (x, y) = tokio::join!(fx.call(&b, slow.clone()), async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        fx.call(&a, serde_json::json!({})).await
    });
    assert!(x.is_ok());
    assert!(matches!(y, Err(InvokeError::Throttled { reason }) if reason == THROTTLE_CAPACITY));

    // A function larger than the whole budget is refused without stopping anything.
    let mut huge = fx.spec("memhuge");
    huge.memory_mb = 512;
    let r = fx.call(&Arc::new(huge), serde_json::json!({})).await;
    assert!(matches!(r, Err(InvokeError::Throttled { reason }) if reason == THROTTLE_CAPACITY));
    fx.settled("memb", (1, 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retire_drains_old_generations_after_busy_ones_finish() {
    let fx = fixture();
    let g1 = Arc::new(fx.spec("gen"));
    fx.call(&g1, serde_json::json!({})).await.unwrap();
    let (busy, _) = tokio::join!(
        fx.call(&g1, serde_json::json!({"op": "sleep", "s": 0.5})),
        async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let mut g2 = (*g1).clone();
            g2.generation = "g2".into();
            fx.call(&Arc::new(g2), serde_json::json!({})).await.unwrap();
            fx.engine.retire(&g1.function_arn, Some("g2"));
        }
    );
    assert!(busy.is_ok(), "a busy environment finishes its invocation");
    let stats = fx.engine.pool_stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].generation, "g2");
    assert_eq!(stats[0].idle, 1);
    eventually("old environments to stop", || {
        fx.engine.inner.memory_used_mb() == 128
    })
    .await;
    fx.engine.retire(&g1.function_arn, None);
    assert!(fx.engine.pool_stats().is_empty());
    eventually("all environments to stop", || {
        fx.engine.inner.memory_used_mb() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_environments_are_reaped() {
    let fx = fixture_with(
        4096,
        100,
        Duration::from_millis(200),
        Duration::from_secs(5),
    );
    let spec = Arc::new(fx.spec("reap"));
    fx.call(&spec, serde_json::json!({})).await.unwrap();
    fx.settled("reap", (1, 1)).await;
    eventually("the idle environment to be reaped", || {
        fx.engine.pool_stats().is_empty()
    })
    .await;
    // The pool is forgotten under the lock; the environment (and its memory) just after.
    eventually("its memory to be returned", || {
        fx.engine.inner.memory_used_mb() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_busy_environments_and_refuses_work() {
    let fx = fixture();
    let spec = Arc::new(fx.spec("bye"));
    let (busy, _) = tokio::join!(
        fx.call(&spec, serde_json::json!({"op": "sleep", "s": 5})),
        async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            fx.engine.shutdown().await;
        }
    );
    let busy = busy.unwrap();
    assert_eq!(busy.function_error, Some("Unhandled"));
    assert!(json(&busy)["errorType"] == "Runtime.ExitError");
    assert!(matches!(
        fx.call(&spec, serde_json::json!({})).await,
        Err(InvokeError::ShuttingDown)
    ));
    assert_eq!(fx.engine.inner.capacity.live_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_runtimes_are_unavailable() {
    let fx = fixture();
    let mut spec = fx.spec("ruby");
    spec.runtime = "ruby3.3".into();
    let err = fx
        .call(&Arc::new(spec), serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, InvokeError::RuntimeUnavailable(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_metadata_reaches_the_runtime() {
    let fx = fixture();
    let spec = Arc::new(fx.spec("meta"));
    let mut i = inv(serde_json::json!({}), false);
    i.invoked_function_arn = format!("{}:prod", spec.function_arn);
    i.trace_id =
        Some("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1".into());
    i.client_context = Some(
        base64::engine::general_purpose::STANDARD.encode(b"{\n \"custom\": {\"k\": \"v\"}\n}"),
    );
    i.cognito_identity =
        Some(r#"{"cognitoIdentityId":"id","cognitoIdentityPoolId":"pool"}"#.into());
    let v = json(&fx.engine.invoke(spec.clone(), i).await.unwrap());
    let h = &v["headers"];
    assert_eq!(
        h["Lambda-Runtime-Invoked-Function-Arn"],
        format!("{}:prod", spec.function_arn)
    );
    assert_eq!(
        h["Lambda-Runtime-Trace-Id"],
        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    );
    assert_eq!(
        h["Lambda-Runtime-Client-Context"],
        r#"{"custom":{"k":"v"}}"#
    );
    assert_eq!(
        h["Lambda-Runtime-Cognito-Identity"],
        r#"{"cognitoIdentityId":"id","cognitoIdentityPoolId":"pool"}"#
    );
}

#[test]
fn client_context_is_decoded_when_it_is_base64_json() {
    let enc = base64::engine::general_purpose::STANDARD.encode(br#"{"a": 1}"#);
    assert_eq!(decode_client_context(&enc), r#"{"a":1}"#);
    assert_eq!(decode_client_context("not base64!"), "not base64!");
}

#[test]
fn generated_trace_ids_look_like_xray() {
    let t = new_trace_id();
    let root = t.strip_prefix("Root=1-").unwrap();
    let (time, rest) = root.split_once('-').unwrap();
    assert_eq!(time.len(), 8);
    let (id, sampled) = rest.split_once(';').unwrap();
    assert_eq!(id.len(), 24);
    assert_eq!(sampled, "Sampled=0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_invocation_still_runs_to_its_end() {
    let fx = fixture();
    let spec = Arc::new(fx.spec("gone"));
    let call = fx.call(&spec, serde_json::json!({"op": "sleep", "s": 0.3}));
    assert!(
        tokio::time::timeout(Duration::from_millis(100), call)
            .await
            .is_err()
    );
    eventually("the environment to finish and go idle", || {
        fx.stats("gone") == (1, 1)
    })
    .await;
    assert!(
        fx.logs("gone")
            .iter()
            .any(|e| e.message.starts_with("REPORT "))
    );
    let v = json(&fx.call(&spec, serde_json::json!({})).await.unwrap());
    assert_eq!(v["count"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_do_not_wait_for_the_next_request_and_finishing_environments_are_reused() {
    let timings = Timings {
        barrier: Duration::from_secs(5),
        finishing_wait: Duration::from_secs(5),
        ..Timings::default()
    };
    let fx = fixture_timed(4096, 100, Duration::from_secs(300), timings);
    let spec = Arc::new(fx.spec("linger"));
    fx.call(&spec, serde_json::json!({})).await.unwrap();
    fx.settled("linger", (1, 1)).await;

    // The runtime asks for more work 0.8 s after answering: the caller does not wait for that.
    let t = Instant::now();
    let a = json(
        &fx.call(&spec, serde_json::json!({"op": "linger", "s": 0.8}))
            .await
            .unwrap(),
    );
    assert!(
        t.elapsed() < Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(a["count"], 2);
    assert_eq!(fx.stats("linger"), (0, 1), "the environment is finishing");

    // The next invocation waits for the finishing environment instead of starting another.
    let b = json(&fx.call(&spec, serde_json::json!({})).await.unwrap());
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(b["count"], 3);
    assert_eq!(b["pid"], a["pid"]);
    fx.settled("linger", (1, 1)).await;

    // A log tail must end with END and REPORT, so that answer waits for them.
    let t = Instant::now();
    let out = fx
        .engine
        .invoke(
            spec.clone(),
            inv(serde_json::json!({"op": "linger", "s": 0.5}), true),
        )
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    let tail = String::from_utf8(out.log_tail.unwrap()).unwrap();
    let lines: Vec<&str> = tail.lines().collect();
    assert!(lines[0].starts_with("START RequestId: "), "{tail}");
    assert!(
        lines[lines.len() - 2].starts_with("END RequestId: "),
        "{tail}"
    );
    assert!(
        lines[lines.len() - 1].starts_with("REPORT RequestId: "),
        "{tail}"
    );
}
