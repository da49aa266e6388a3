//! End-to-end tests of the engine with real jails: functions run in Updraft's sandbox, started by
//! re-executing this very test binary as the jail helper (`<exe> __jail`), the way the server
//! re-executes `updraft __jail`.
//!
//! A plain `main` (no libtest harness) so that `__jail` can be dispatched before anything else.
//! Run all cases with `cargo test -p updraft-engine --test jail`, or some of them by passing
//! substrings of their names after `--`. Prints `N passed, M failed`; exits non-zero on failure.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use updraft_engine::{
    Engine, EngineConfig, FunctionSpec, Invocation, InvokeError, InvokeOutcome, THROTTLE_RESERVED,
};

const RT_PY: &str = include_str!("fixtures/rt.py");
const SHELL_BOOTSTRAP: &str = include_str!("fixtures/bootstrap.sh");

type CaseResult = Result<(), String>;
type Case = for<'a> fn(&'a Ctx) -> Pin<Box<dyn Future<Output = CaseResult> + 'a>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), |ctx| Box::pin($name(ctx)) as Pin<Box<dyn Future<Output = CaseResult> + '_>>)),*]
    };
}

const CASES: &[(&str, Case)] = cases![
    provided_shell_runtime_echoes,
    provided_bootstrap_finds_python_on_path,
    python_warm_reuse_keeps_globals,
    python_timeout_then_recovery,
    python_unhandled_error_shape,
    python_init_error,
    python_crash_mid_invocation,
    python_out_of_memory,
    parallel_invocations_start_two_environments,
    reserved_concurrency_zero_throttles,
    log_tail_contains_start_and_report,
    node_handler_runs,
    warm_invocations_are_fast,
];

struct Ctx {
    engine: Arc<Engine>,
    root: PathBuf,
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("__jail") {
        updraft_sandbox::jail_main();
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (passed, failed) = rt.block_on(run(&filters));
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(filters: &[String]) -> (usize, usize) {
    let root = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot create a temporary directory: {e}");
            return (0, 1);
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in CASES {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        // A fresh engine per case: pools, budgets and concurrency do not leak between cases.
        let dir = root.path().join(name);
        let ctx = match new_ctx(&dir) {
            Ok(c) => c,
            Err(e) => {
                println!("test {name} ... FAILED: {e}");
                failed += 1;
                continue;
            }
        };
        let t0 = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(60), case(&ctx)).await;
        ctx.engine.shutdown().await;
        match result {
            Ok(Ok(())) => {
                println!("test {name} ... ok ({:.2} s)", t0.elapsed().as_secs_f64());
                passed += 1;
            }
            Ok(Err(e)) => {
                println!("test {name} ... FAILED: {e}");
                failed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED: took longer than 60 s");
                failed += 1;
            }
        }
    }
    (passed, failed)
}

fn new_ctx(dir: &Path) -> Result<Ctx, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cfg = EngineConfig::new(dir.join("data"), exe);
    cfg.memory_budget_mb = 4096;
    let engine = Engine::new(cfg).map_err(|e| e.to_string())?;
    Ok(Ctx {
        engine,
        root: dir.to_path_buf(),
    })
}

fn check(cond: bool, what: impl FnOnce() -> String) -> CaseResult {
    if cond { Ok(()) } else { Err(what()) }
}

impl Ctx {
    /// Writes a code directory readable by the jail's unprivileged user.
    fn code(&self, name: &str, files: &[(&str, &str, u32)]) -> Result<PathBuf, String> {
        let dir = self.root.join("code").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        for (file, text, mode) in files {
            let p = dir.join(file);
            std::fs::write(&p, text).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
                .map_err(|e| e.to_string())?;
        }
        // The directories above the code must be traversable by that user too.
        let mut dirs = vec![dir.clone(), self.root.join("code"), self.root.clone()];
        dirs.extend(self.root.parent().map(Path::to_path_buf));
        for d in dirs {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
        }
        Ok(dir)
    }

    fn spec(&self, name: &str, runtime: &str, handler: &str, code_dir: PathBuf) -> FunctionSpec {
        FunctionSpec {
            account_id: "123456789012".into(),
            function_name: name.into(),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
            version: "$LATEST".into(),
            generation: "g1".into(),
            runtime: runtime.into(),
            handler: handler.into(),
            memory_mb: 256,
            timeout_s: 5,
            ephemeral_mb: 64,
            environment: vec![("GREETING".into(), "hello".into())],
            code_dir,
            opt_dir: None,
            reserved_concurrency: None,
            log_group: format!("/aws/lambda/{name}"),
            logging: Default::default(),
        }
    }

    async fn invoke(
        &self,
        spec: &Arc<FunctionSpec>,
        event: Value,
        tail: bool,
    ) -> Result<InvokeOutcome, String> {
        self.engine
            .invoke(spec.clone(), invocation(event, tail))
            .await
            .map_err(|e| format!("invoke failed: {e}"))
    }

    fn python(&self, name: &str, app: &str) -> Result<Arc<FunctionSpec>, String> {
        let code = self.code(name, &[("app.py", app, 0o644)])?;
        Ok(Arc::new(self.spec(name, "python3.12", "app.handler", code)))
    }

    fn live(&self, name: &str) -> usize {
        self.engine
            .pool_stats()
            .iter()
            .filter(|s| s.function_arn.ends_with(&format!(":{name}")))
            .map(|s| s.live)
            .sum()
    }
}

fn invocation(event: Value, tail: bool) -> Invocation {
    Invocation {
        request_id: uuid::Uuid::new_v4().to_string(),
        payload: Bytes::from(event.to_string()),
        invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        client_context: None,
        cognito_identity: None,
        trace_id: None,
        want_log_tail: tail,
        source: updraft_engine::InvocationSource::Sync,
    }
}

fn payload(out: &InvokeOutcome) -> Result<Value, String> {
    serde_json::from_slice(&out.payload).map_err(|e| {
        format!(
            "payload {:?} is not JSON: {e}",
            String::from_utf8_lossy(&out.payload)
        )
    })
}

fn ok_payload(out: &InvokeOutcome) -> Result<Value, String> {
    check(out.function_error.is_none(), || {
        format!("function failed: {}", String::from_utf8_lossy(&out.payload))
    })?;
    payload(out)
}

async fn provided_shell_runtime_echoes(ctx: &Ctx) -> CaseResult {
    let code = ctx.code("shell", &[("bootstrap", SHELL_BOOTSTRAP, 0o755)])?;
    let spec = Arc::new(ctx.spec("shell", "provided.al2023", "none", code));
    for i in 0..2 {
        let v = ok_payload(&ctx.invoke(&spec, json!({"n": i}), false).await?)?;
        check(v == json!({"shell": true, "event": {"n": i}}), || {
            format!("got {v}")
        })?;
    }
    check(ctx.live("shell") == 1, || {
        "expected one warm environment".into()
    })
}

async fn provided_bootstrap_finds_python_on_path(ctx: &Ctx) -> CaseResult {
    let boot = "#!/bin/sh\nexec python3 \"$LAMBDA_TASK_ROOT/rt.py\"\n";
    let code = ctx.code(
        "pyboot",
        &[("bootstrap", boot, 0o755), ("rt.py", RT_PY, 0o644)],
    )?;
    let spec = Arc::new(ctx.spec("pyboot", "provided.al2", "none", code));
    let names = [
        "GREETING",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "LAMBDA_TASK_ROOT",
        "AWS_EXECUTION_ENV",
        "TZ",
    ];
    let v = ok_payload(&ctx.invoke(&spec, json!({"env": names}), false).await?)?;
    let env = &v["env"];
    check(env["GREETING"] == "hello", || format!("env {env}"))?;
    check(env["AWS_LAMBDA_FUNCTION_NAME"] == "pyboot", || {
        format!("env {env}")
    })?;
    check(env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001", || {
        format!("env {env}")
    })?;
    check(env["LAMBDA_TASK_ROOT"] == "/var/task", || {
        format!("env {env}")
    })?;
    check(env["AWS_EXECUTION_ENV"].is_null(), || format!("env {env}"))?;
    check(env["TZ"] == ":UTC", || format!("env {env}"))?;
    check(v["headers"]["Content-Type"] == "application/json", || {
        format!("headers {}", v["headers"])
    })
}

const COUNTER_APP: &str = r#"
import os, time
count = 0

def handler(event, context):
    global count
    count += 1
    print("handling", count)
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit") is not None:
        os._exit(event["exit"])
    return {"count": count, "request_id": context.aws_request_id, "event": event}
"#;

async fn python_warm_reuse_keeps_globals(ctx: &Ctx) -> CaseResult {
    let spec = ctx.python("counter", COUNTER_APP)?;
    let mut usage = ctx.engine.subscribe_usage();
    for n in 1..=3 {
        let v = ok_payload(&ctx.invoke(&spec, json!({"n": n}), false).await?)?;
        check(v["count"] == n && v["event"]["n"] == n, || {
            format!("call {n} got {v}")
        })?;
    }
    let first = usage.recv().await.map_err(|e| e.to_string())?;
    check(first.init_duration_ms.is_some(), || {
        "first call is a cold start".into()
    })?;
    let second = usage.recv().await.map_err(|e| e.to_string())?;
    check(second.init_duration_ms.is_none(), || {
        "second call is warm".into()
    })?;
    check(ctx.live("counter") == 1, || {
        "one environment served all calls".into()
    })
}

async fn python_timeout_then_recovery(ctx: &Ctx) -> CaseResult {
    let code = ctx.code("sleepy", &[("app.py", COUNTER_APP, 0o644)])?;
    let mut spec = ctx.spec("sleepy", "python3.12", "app.handler", code);
    spec.timeout_s = 1;
    let spec = Arc::new(spec);
    ok_payload(&ctx.invoke(&spec, json!({}), false).await?)?;
    let t0 = Instant::now();
    let inv = invocation(json!({"sleep": 30}), true);
    let rid = inv.request_id.clone();
    let out = ctx
        .engine
        .invoke(spec.clone(), inv)
        .await
        .map_err(|e| e.to_string())?;
    let took = t0.elapsed();
    check(took < Duration::from_millis(1600), || {
        format!("timeout took {took:?}")
    })?;
    check(out.function_error == Some("Unhandled"), || {
        "timeout is Unhandled".into()
    })?;
    let v = payload(&out)?;
    let msg = v["errorMessage"].as_str().unwrap_or_default();
    check(
        msg.ends_with(&format!("{rid} Task timed out after 1.00 seconds")),
        || format!("message {msg:?}"),
    )?;
    let v = ok_payload(&ctx.invoke(&spec, json!({}), false).await?)?;
    check(v["count"] == 1, || {
        format!("a fresh environment after a timeout, got {v}")
    })
}

async fn python_unhandled_error_shape(ctx: &Ctx) -> CaseResult {
    let app = "def handler(event, context):\n    raise ValueError('bad input')\n";
    let spec = ctx.python("raises", app)?;
    let out = ctx.invoke(&spec, json!({}), false).await?;
    check(out.function_error == Some("Unhandled"), || {
        "error is Unhandled".into()
    })?;
    let v = payload(&out)?;
    check(v["errorType"] == "ValueError", || format!("got {v}"))?;
    check(v["errorMessage"] == "bad input", || format!("got {v}"))?;
    check(v["stackTrace"].is_array(), || format!("got {v}"))
}

async fn python_init_error(ctx: &Ctx) -> CaseResult {
    let app = "import no_such_module_here\n\ndef handler(event, context):\n    return 1\n";
    let spec = ctx.python("badimport", app)?;
    let out = ctx.invoke(&spec, json!({}), true).await?;
    check(out.function_error == Some("Unhandled"), || {
        "init error is Unhandled".into()
    })?;
    let v = payload(&out)?;
    check(v["errorType"] == "Runtime.ImportModuleError", || {
        format!("got {v}")
    })?;
    let tail = String::from_utf8_lossy(out.log_tail.as_deref().unwrap_or_default()).into_owned();
    check(tail.contains("REPORT RequestId: "), || {
        format!("tail {tail}")
    })
}

async fn python_crash_mid_invocation(ctx: &Ctx) -> CaseResult {
    let spec = ctx.python("crasher", COUNTER_APP)?;
    let inv = invocation(json!({"exit": 2}), false);
    let rid = inv.request_id.clone();
    let out = ctx
        .engine
        .invoke(spec.clone(), inv)
        .await
        .map_err(|e| e.to_string())?;
    let want = format!(
        r#"{{"errorType":"Runtime.ExitError","errorMessage":"RequestId: {rid} Error: Runtime exited with error: exit status 2"}}"#
    );
    let got = String::from_utf8_lossy(&out.payload);
    check(got == want, || format!("got {got}"))?;
    let v = ok_payload(&ctx.invoke(&spec, json!({}), false).await?)?;
    check(v["count"] == 1, || {
        format!("a fresh environment after a crash, got {v}")
    })
}

async fn python_out_of_memory(ctx: &Ctx) -> CaseResult {
    let app = "def handler(event, context):\n    hog = bytearray(600 * 1024 * 1024)\n    return len(hog)\n";
    let code = ctx.code("hog", &[("app.py", app, 0o644)])?;
    let mut spec = ctx.spec("hog", "python3.12", "app.handler", code);
    spec.memory_mb = 128;
    let spec = Arc::new(spec);
    let out = ctx.invoke(&spec, json!({}), false).await?;
    check(out.function_error == Some("Unhandled"), || {
        format!(
            "over the memory limit must fail, got {}",
            String::from_utf8_lossy(&out.payload)
        )
    })?;
    let v = payload(&out)?;
    let t = v["errorType"].as_str().unwrap_or_default();
    println!("    over the limit: {v}");
    // A MemoryError raised by Python itself is a handled outcome of the limit too.
    check(
        t == "Runtime.OutOfMemory" || t == "Runtime.ExitError" || t == "MemoryError",
        || format!("got {v}"),
    )
}

async fn parallel_invocations_start_two_environments(ctx: &Ctx) -> CaseResult {
    let spec = ctx.python("twins", COUNTER_APP)?;
    let (a, b) = tokio::join!(
        ctx.invoke(&spec, json!({"sleep": 0.5}), false),
        ctx.invoke(&spec, json!({"sleep": 0.5}), false)
    );
    let (a, b) = (ok_payload(&a?)?, ok_payload(&b?)?);
    check(a["count"] == 1 && b["count"] == 1, || {
        format!("got {a} and {b}")
    })?;
    check(ctx.live("twins") == 2, || {
        format!("live environments: {}", ctx.live("twins"))
    })
}

async fn reserved_concurrency_zero_throttles(ctx: &Ctx) -> CaseResult {
    let code = ctx.code("disabled", &[("app.py", COUNTER_APP, 0o644)])?;
    let mut spec = ctx.spec("disabled", "python3.12", "app.handler", code);
    spec.reserved_concurrency = Some(0);
    let r = ctx
        .engine
        .invoke(Arc::new(spec), invocation(json!({}), false))
        .await;
    check(
        matches!(r, Err(InvokeError::Throttled { reason }) if reason == THROTTLE_RESERVED),
        || format!("got {r:?}"),
    )
}

async fn log_tail_contains_start_and_report(ctx: &Ctx) -> CaseResult {
    let spec = ctx.python("tail", COUNTER_APP)?;
    let inv = invocation(json!({}), true);
    let rid = inv.request_id.clone();
    let out = ctx
        .engine
        .invoke(spec.clone(), inv)
        .await
        .map_err(|e| e.to_string())?;
    let tail = String::from_utf8_lossy(out.log_tail.as_deref().unwrap_or_default()).into_owned();
    check(
        tail.starts_with(&format!("START RequestId: {rid} Version: $LATEST")),
        || format!("tail {tail}"),
    )?;
    check(tail.contains("handling 1"), || format!("tail {tail}"))?;
    check(tail.contains(&format!("END RequestId: {rid}")), || {
        format!("tail {tail}")
    })?;
    check(
        tail.contains(&format!("REPORT RequestId: {rid}\tDuration: ")),
        || format!("tail {tail}"),
    )?;
    check(tail.contains("\tInit Duration: "), || {
        format!("tail {tail}")
    })?;
    check(!tail.contains("Max Memory Used: 0 MB"), || {
        format!("memory is measured: {tail}")
    })?;
    let events = ctx
        .engine
        .read_logs("123456789012", "tail", 0)
        .map_err(|e| e.to_string())?;
    check(
        events.iter().any(|e| e.message.starts_with("REPORT ")),
        || "REPORT stored in the stream".into(),
    )
}

async fn node_handler_runs(ctx: &Ctx) -> CaseResult {
    let app = "let count = 0;\nexport const handler = async (event, context) => {\n  count += 1;\n  console.log('node handling', count);\n  return { count, event, fn: context.functionName };\n};\n";
    let code = ctx.code("nodefn", &[("index.mjs", app, 0o644)])?;
    let spec = Arc::new(ctx.spec("nodefn", "nodejs20.x", "index.handler", code));
    let a = ok_payload(&ctx.invoke(&spec, json!({"x": 1}), false).await?)?;
    let b = ok_payload(&ctx.invoke(&spec, json!({"x": 2}), false).await?)?;
    check(a["count"] == 1 && b["count"] == 2, || {
        format!("got {a} and {b}")
    })?;
    check(a["fn"] == "nodefn" && b["event"]["x"] == 2, || {
        format!("got {a} and {b}")
    })
}

async fn warm_invocations_are_fast(ctx: &Ctx) -> CaseResult {
    let spec = ctx.python("fast", "def handler(event, context):\n    return event\n")?;
    ok_payload(&ctx.invoke(&spec, json!({}), false).await?)?;
    let mut times = Vec::new();
    for i in 0..200 {
        let t0 = Instant::now();
        let v = ok_payload(&ctx.invoke(&spec, json!({"i": i}), false).await?)?;
        times.push(t0.elapsed());
        check(v["i"] == i, || format!("got {v}"))?;
    }
    times.sort();
    let p50 = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];
    println!("    warm invoke (engine only): p50 {p50:?}, p99 {p99:?}");
    check(p50 < Duration::from_millis(20), || format!("p50 {p50:?}"))
}
