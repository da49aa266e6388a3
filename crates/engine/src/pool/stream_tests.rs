//! Streamed responses through the pool: chunks forwarded in order and as they arrive, errors in
//! the trailers, buffered responses through the streaming API, streamed responses through the
//! plain API, limits and timeouts. The runtime is a small Python loop that writes the chunked
//! body of its `/response` by hand, so every byte on the wire is the test's choice.

use super::*;
use crate::launcher::host::HostLauncher;
use crate::{Engine, FunctionError, MAX_STREAMED_RESPONSE_BYTES, StreamEvent, StreamingInvocation};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;

const STREAM_RT: &str = r#"
import base64, http.client, json, os, sys, time

HOST, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
CONN = http.client.HTTPConnection(HOST, int(PORT))
PREFIX = "/2018-06-01/runtime/invocation/"


def call(method, path, body=None, headers=None):
    CONN.request(method, path, body=body, headers=headers or {})
    r = CONN.getresponse()
    return r.status, r.headers, r.read()


def stream(rid, chunks, gap, trailers=None, ctype="text/plain", die_after=None):
    CONN.putrequest("POST", PREFIX + rid + "/response")
    CONN.putheader("Content-Type", ctype)
    CONN.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
    CONN.putheader("Transfer-Encoding", "chunked")
    CONN.putheader("Trailer", "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body")
    CONN.endheaders()
    for i, c in enumerate(chunks):
        if i:
            time.sleep(gap)
        data = c.encode() if isinstance(c, str) else c
        CONN.send(b"%x\r\n" % len(data) + data + b"\r\n")
        if die_after is not None and i + 1 >= die_after:
            os._exit(3)
    end = b"0\r\n"
    for k, v in (trailers or {}).items():
        end += ("%s: %s\r\n" % (k, v)).encode()
    CONN.send(end + b"\r\n")
    r = CONN.getresponse()
    return r.status, r.read()


count = 0
while True:
    _, headers, body = call("GET", PREFIX + "next")
    rid = headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.loads(body or b"{}")
    count += 1
    op = event.get("op")
    if op == "stream":
        status, answer = stream(rid, event["chunks"], event.get("gap", 0))
        print("stream answered %d %s" % (status, answer.decode()), flush=True)
    elif op == "stream_error":
        err = {"errorType": "TestError", "errorMessage": "mid-stream"}
        trailers = {
            "Lambda-Runtime-Function-Error-Type": "TestError",
            "Lambda-Runtime-Function-Error-Body": base64.b64encode(json.dumps(err).encode()).decode(),
        }
        stream(rid, ["partial"], 0, trailers)
    elif op == "stream_big":
        status, answer = stream(rid, [b"x" * (1 << 20)] * event["mib"], 0)
        print("big answered %d %s" % (status, answer.decode()), flush=True)
    elif op == "stream_hang":
        CONN.putrequest("POST", PREFIX + rid + "/response")
        CONN.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
        CONN.putheader("Transfer-Encoding", "chunked")
        CONN.endheaders()
        CONN.send(b"1\r\na\r\n")
        time.sleep(3600)
    elif op == "stream_crash":
        stream(rid, ["a", "b"], 0.1, die_after=1)
    elif op == "error":
        err = {"errorType": "BufferedError", "errorMessage": "before any byte"}
        call("POST", PREFIX + rid + "/error", json.dumps(err), {"Lambda-Runtime-Function-Error-Type": "BufferedError"})
    else:
        call("POST", PREFIX + rid + "/response", json.dumps({"count": count}, separators=(",", ":")), {"Content-Type": "application/json"})
"#;

const BOOTSTRAP: &str = "#!/bin/sh\nexec python3 \"$LAMBDA_TASK_ROOT/rt.py\"\n";

struct Fixture {
    engine: Arc<Engine>,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    fixture_with(crate::DEFAULT_STREAM_WRITE_TIMEOUT)
}

fn fixture_with(stream_write_timeout: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EngineConfig::new(dir.path().join("data"), PathBuf::from("/nonexistent"));
    cfg.stream_write_timeout = stream_write_timeout;
    let engine = Engine::with_launcher(cfg, Arc::new(HostLauncher), Timings::default()).unwrap();
    Fixture { engine, dir }
}

impl Fixture {
    fn spec(&self, name: &str, timeout_s: u32) -> Arc<FunctionSpec> {
        let code = self.dir.path().join("code").join(name);
        std::fs::create_dir_all(&code).unwrap();
        std::fs::write(code.join("rt.py"), STREAM_RT).unwrap();
        let boot = code.join("bootstrap");
        std::fs::write(&boot, BOOTSTRAP).unwrap();
        std::fs::set_permissions(&boot, std::fs::Permissions::from_mode(0o755)).unwrap();
        Arc::new(FunctionSpec {
            account_id: "123456789012".into(),
            function_name: name.into(),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
            version: "$LATEST".into(),
            generation: "g1".into(),
            runtime: "provided.al2023".into(),
            handler: "ignored".into(),
            memory_mb: 128,
            timeout_s,
            ephemeral_mb: 512,
            environment: vec![],
            code_dir: code,
            opt_dir: None,
            reserved_concurrency: None,
            log_group: format!("/aws/lambda/{name}"),
            logging: Default::default(),
        })
    }

    async fn stream(&self, spec: &Arc<FunctionSpec>, event: Value) -> StreamingInvocation {
        self.engine
            .invoke_streaming(spec.clone(), inv(event))
            .await
            .unwrap()
    }
}

fn inv(event: Value) -> Invocation {
    Invocation {
        request_id: uuid::Uuid::new_v4().to_string(),
        payload: Bytes::from(event.to_string()),
        invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        client_context: None,
        cognito_identity: None,
        trace_id: None,
        want_log_tail: true,
        source: crate::InvocationSource::Sync,
    }
}

/// Every event until the channel closes, each with the time it arrived.
async fn drain(s: &mut StreamingInvocation) -> Vec<(StreamEvent, Instant)> {
    let mut out = Vec::new();
    while let Some(ev) = s.events.recv().await {
        out.push((ev, Instant::now()));
    }
    out
}

fn chunks(events: &[(StreamEvent, Instant)]) -> Vec<Bytes> {
    events
        .iter()
        .filter_map(|(e, _)| match e {
            StreamEvent::Chunk(b) => Some(b.clone()),
            StreamEvent::Complete { .. } => None,
        })
        .collect()
}

fn completion(events: &[(StreamEvent, Instant)]) -> (Option<FunctionError>, String) {
    let last = events.last().map(|(e, _)| e.clone());
    let Some(StreamEvent::Complete {
        function_error,
        log_tail,
    }) = last
    else {
        panic!("the last event is not Complete: {events:?}");
    };
    let completes = events
        .iter()
        .filter(|(e, _)| matches!(e, StreamEvent::Complete { .. }))
        .count();
    assert_eq!(completes, 1, "exactly one Complete");
    (
        function_error,
        String::from_utf8(log_tail.expect("a tail was asked for")).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_are_forwarded_in_order_as_they_arrive() {
    let fx = fixture();
    let spec = fx.spec("order", 10);
    let t0 = Instant::now();
    let mut s = fx
        .stream(
            &spec,
            json!({"op": "stream", "chunks": ["one", "two", "three"], "gap": 0.4}),
        )
        .await;
    assert!(s.streamed);
    assert_eq!(s.content_type.as_deref(), Some("text/plain"));
    assert_eq!(s.executed_version, "$LATEST");
    let events = drain(&mut s).await;
    let got: Vec<&[u8]> = events
        .iter()
        .filter_map(|(e, _)| match e {
            StreamEvent::Chunk(b) => Some(&b[..]),
            _ => None,
        })
        .collect();
    assert_eq!(got.concat(), b"onetwothree");
    assert_eq!(got.first().copied(), Some(&b"one"[..]));
    let first_at = events[0].1.duration_since(t0);
    let end_at = events.last().unwrap().1.duration_since(t0);
    // The first chunk does not wait for the rest (0.8 s of gaps) of the response.
    assert!(
        end_at >= first_at + Duration::from_millis(700),
        "first chunk at {first_at:?}, end at {end_at:?}"
    );
    let (error, tail) = completion(&events);
    assert_eq!(error, None);
    assert!(tail.contains("REPORT RequestId: "), "{tail}");
    // The runtime was told 202 once its body ended, and the environment is reused.
    let logs = fx.engine.read_logs("123456789012", "order", 0).unwrap();
    assert!(
        logs.iter()
            .any(|e| e.message == r#"stream answered 202 {"status":"OK"}"#),
        "{logs:?}"
    );
    let mut s = fx.stream(&spec, json!({})).await;
    let events = drain(&mut s).await;
    assert_eq!(chunks(&events), vec![Bytes::from_static(b"{\"count\":2}")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_report_an_error_after_the_first_byte() {
    let fx = fixture();
    let spec = fx.spec("trail", 10);
    let mut s = fx.stream(&spec, json!({"op": "stream_error"})).await;
    let events = drain(&mut s).await;
    assert_eq!(chunks(&events), vec![Bytes::from_static(b"partial")]);
    let (error, _) = completion(&events);
    let error = error.expect("a function error");
    assert_eq!(error.error_type, "TestError");
    let body: Value = serde_json::from_slice(&error.error_body).unwrap();
    assert_eq!(body["errorMessage"], "mid-stream");

    // Through the plain API the same response is a function error with the error document.
    let out = fx
        .engine
        .invoke(spec.clone(), inv(json!({"op": "stream_error"})))
        .await
        .unwrap();
    assert_eq!(out.function_error, Some("Unhandled"));
    let body: Value = serde_json::from_slice(&out.payload).unwrap();
    assert_eq!(body["errorType"], "TestError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_answers_come_through_the_streaming_api() {
    let fx = fixture();
    let spec = fx.spec("buffered", 10);
    let mut s = fx.stream(&spec, json!({})).await;
    assert!(!s.streamed);
    assert_eq!(s.content_type.as_deref(), Some("application/json"));
    let events = drain(&mut s).await;
    assert_eq!(chunks(&events), vec![Bytes::from_static(b"{\"count\":1}")]);
    assert_eq!(completion(&events).0, None);

    // An error posted before any byte: no chunk, the error in Complete.
    let mut s = fx.stream(&spec, json!({"op": "error"})).await;
    assert_eq!(s.content_type, None);
    let events = drain(&mut s).await;
    assert!(chunks(&events).is_empty());
    let error = completion(&events).0.expect("a function error");
    assert_eq!(error.error_type, "BufferedError");
    assert!(
        std::str::from_utf8(&error.error_body)
            .unwrap()
            .contains("before any byte")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_answers_are_collected_by_the_plain_api() {
    let fx = fixture();
    let spec = fx.spec("collect", 10);
    let out = fx
        .engine
        .invoke(
            spec.clone(),
            inv(json!({"op": "stream", "chunks": ["{\"a\":", "1}"], "gap": 0.05})),
        )
        .await
        .unwrap();
    assert_eq!(out.function_error, None);
    assert_eq!(&out.payload[..], b"{\"a\":1}");
    // Over the 6 MB of a buffered response: refused, and the environment survives.
    let out = fx
        .engine
        .invoke(spec.clone(), inv(json!({"op": "stream_big", "mib": 7})))
        .await
        .unwrap();
    assert_eq!(out.function_error, Some("Unhandled"));
    let body: Value = serde_json::from_slice(&out.payload).unwrap();
    assert_eq!(body["errorType"], "Function.ResponseSizeTooLarge");
    let out = fx
        .engine
        .invoke(spec.clone(), inv(json!({})))
        .await
        .unwrap();
    assert_eq!(&out.payload[..], b"{\"count\":3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_responses_stop_at_20_mib() {
    let fx = fixture();
    let spec = fx.spec("big", 30);
    // 7 MiB streams fine (over the buffered limit, under the streamed one).
    let mut s = fx
        .stream(&spec, json!({"op": "stream_big", "mib": 7}))
        .await;
    let events = drain(&mut s).await;
    let total: usize = chunks(&events).iter().map(Bytes::len).sum();
    assert_eq!(total, 7 << 20);
    assert_eq!(completion(&events).0, None);

    let mut s = fx
        .stream(&spec, json!({"op": "stream_big", "mib": 21}))
        .await;
    let events = drain(&mut s).await;
    let total: usize = chunks(&events).iter().map(Bytes::len).sum();
    assert!(total <= MAX_STREAMED_RESPONSE_BYTES, "{total}");
    let error = completion(&events).0.expect("a function error");
    assert_eq!(error.error_type, "Function.ResponseSizeTooLarge");
    assert!(
        std::str::from_utf8(&error.error_body)
            .unwrap()
            .contains("(20971520 bytes)")
    );
    let logs = fx.engine.read_logs("123456789012", "big", 0).unwrap();
    assert!(
        logs.iter()
            .any(|e| e.message.starts_with("big answered 413 ")),
        "{logs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_the_stream() {
    let fx = fixture();
    let spec = fx.spec("hang", 1);
    let t0 = Instant::now();
    let mut s = fx.stream(&spec, json!({"op": "stream_hang"})).await;
    let events = drain(&mut s).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(chunks(&events), vec![Bytes::from_static(b"a")]);
    let (error, tail) = completion(&events);
    let error = error.expect("a function error");
    assert_eq!(error.error_type, TIMEOUT_ERROR_TYPE);
    assert!(
        std::str::from_utf8(&error.error_body)
            .unwrap()
            .contains("Task timed out after 1.00 seconds")
    );
    assert!(tail.contains("\tStatus: timeout"), "{tail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_stream_is_an_exit_error() {
    let fx = fixture();
    let spec = fx.spec("crash", 10);
    let mut s = fx.stream(&spec, json!({"op": "stream_crash"})).await;
    let events = drain(&mut s).await;
    assert_eq!(chunks(&events), vec![Bytes::from_static(b"a")]);
    let error = completion(&events).0.expect("a function error");
    assert_eq!(error.error_type, "Runtime.ExitError");
    assert!(
        std::str::from_utf8(&error.error_body)
            .unwrap()
            .contains("exit status 3")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_does_not_stop_the_invocation() {
    let fx = fixture();
    let spec = fx.spec("gone", 10);
    let s = fx
        .stream(
            &spec,
            json!({"op": "stream", "chunks": ["a", "b", "c"], "gap": 0.1}),
        )
        .await;
    drop(s);
    for _ in 0..300 {
        let logs = fx.engine.read_logs("123456789012", "gone", 0).unwrap();
        if logs.iter().any(|e| e.message.starts_with("REPORT ")) {
            assert!(
                logs.iter()
                    .any(|e| e.message.starts_with("stream answered 202"))
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the invocation did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_releases_the_environment() {
    // The function may run for a minute; the reader stalls from the start.
    let fx = fixture_with(Duration::from_millis(300));
    let spec = fx.spec("stalled", 60);
    let chunk = "x".repeat(64 * 1024);
    let chunks: Vec<&str> = (0..64).map(|_| chunk.as_str()).collect();
    let s = fx
        .stream(&spec, json!({"op": "stream", "chunks": chunks, "gap": 0}))
        .await;
    // Far below the function's timeout: only the write timeout can end the wait this soon.
    for _ in 0..3000 {
        let logs = fx.engine.read_logs("123456789012", "stalled", 0).unwrap();
        if logs.iter().any(|e| e.message.starts_with("REPORT ")) {
            assert!(
                logs.iter()
                    .any(|e| e.message.starts_with("stream answered 202")),
                "the runtime's stream was not read to its end"
            );
            assert!(!logs.iter().any(|e| e.message.contains("Task timed out")));
            drop(s);
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the stalled reader kept the invocation running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_errors_not_streams() {
    let fx = fixture();
    let mut spec = (*fx.spec("refused", 10)).clone();
    spec.reserved_concurrency = Some(0);
    let r = fx
        .engine
        .invoke_streaming(Arc::new(spec), inv(json!({})))
        .await;
    assert!(matches!(r, Err(InvokeError::Throttled { reason }) if reason == THROTTLE_RESERVED));
}
