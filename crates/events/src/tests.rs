//! The dispatcher against a scripted function target.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use super::*;

/// A function target whose functions answer as scripted, recording every delivery.
#[derive(Default)]
struct Script {
    /// Function ARN → outcome of each attempt (the last repeats).
    answers: Mutex<HashMap<String, Vec<Outcome>>>,
    seen: Mutex<Vec<Delivery>>,
}

impl DeliveryTarget for Arc<Script> {
    fn deliver(&self, d: Delivery) -> BoxFuture<'static, Outcome> {
        let arn = d.target.resource_arn().to_string();
        let n = {
            let mut seen = self.seen.lock().unwrap();
            seen.push(d.clone());
            seen.iter()
                .filter(|s| s.target.resource_arn() == arn)
                .count()
        };
        let answers = self.answers.lock().unwrap();
        let list = answers.get(&arn).cloned().unwrap_or_else(|| vec![ok()]);
        let out = list[(n - 1).min(list.len() - 1)].clone();
        Box::pin(async move { out })
    }
}

fn ok() -> Outcome {
    Outcome::Success {
        status: 200,
        executed_version: Some("$LATEST".into()),
        response: Bytes::from_static(b"{\"ok\":true}"),
    }
}

fn failure() -> Outcome {
    Outcome::FunctionError {
        status: 200,
        executed_version: Some("$LATEST".into()),
        function_error: "Unhandled".into(),
        response: Bytes::from_static(b"{\"errorMessage\":\"boom\",\"errorType\":\"Exception\"}"),
    }
}

const ACCOUNT: &str = "123456789012";

fn arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}")
}

fn invoke(name: &str, policy: Option<RetryPolicy>) -> NewWork {
    NewWork {
        target: Target::Function {
            account_id: ACCOUNT.into(),
            function_arn: arn(name),
            qualifier: None,
        },
        payload: Bytes::from_static(b"{\"k\":1}"),
        request_id: format!("req-{name}"),
        source: "invoke".into(),
        policy,
    }
}

fn fast() -> Settings {
    Settings {
        max_in_flight: 4,
        backoff: Backoff {
            retry_interval: Duration::from_millis(20),
            throttle_initial: Duration::from_millis(10),
            throttle_max: Duration::from_millis(50),
        },
        lease: Duration::from_secs(60),
        poll: Duration::from_millis(50),
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn deliveries_to(s: &Script, name: &str) -> Vec<Delivery> {
    let arn = arn(name);
    s.seen
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.target.resource_arn() == arn)
        .cloned()
        .collect()
}

fn start(settings: Settings) -> (tempfile::TempDir, Arc<Events>, Arc<Script>) {
    let dir = tempfile::tempdir().unwrap();
    let ev = Events::open(&dir.path().join("events.db"), settings).unwrap();
    let script = Arc::new(Script::default());
    ev.start(Targets {
        function: Arc::new(script.clone()),
        event_bus: None,
        queue: None,
    })
    .unwrap();
    (dir, ev, script)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_goes_to_the_on_success_function_with_lambdas_record() {
    let (_d, ev, s) = start(fast());
    ev.configs()
        .put(
            ACCOUNT,
            "src",
            None,
            EventInvokeConfig {
                max_retries: None,
                max_age_s: None,
                on_success: Some(arn("dest")),
                on_failure: None,
                last_modified: 0.0,
            },
        )
        .unwrap();
    ev.enqueue(vec![invoke("src", None)]).await.unwrap();
    until("the record", || !deliveries_to(&s, "dest").is_empty()).await;
    let d = deliveries_to(&s, "dest").remove(0);
    let rec: serde_json::Value = serde_json::from_slice(&d.payload).unwrap();
    assert_eq!(rec["version"], "1.0");
    assert_eq!(rec["requestContext"]["requestId"], "req-src");
    assert_eq!(
        rec["requestContext"]["functionArn"],
        format!("{}:$LATEST", arn("src"))
    );
    assert_eq!(rec["requestContext"]["condition"], "Success");
    assert_eq!(rec["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(rec["requestPayload"], serde_json::json!({"k": 1}));
    assert_eq!(rec["responseContext"]["statusCode"], 200);
    assert_eq!(rec["responseContext"]["executedVersion"], "$LATEST");
    assert_eq!(rec["responsePayload"], serde_json::json!({"ok": true}));
    assert_ne!(
        d.request_id, "req-src",
        "the record is an invocation of its own"
    );
    until("both done", || {
        ev.summary(&arn("dest"), 1).unwrap().pending == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_errors_are_retried_then_reach_on_failure() {
    let (_d, ev, s) = start(fast());
    s.answers
        .lock()
        .unwrap()
        .insert(arn("bad"), vec![failure()]);
    let policy = RetryPolicy {
        max_retries: 1,
        on_failure: Some(arn("dlq-fn")),
        ..RetryPolicy::default()
    };
    ev.enqueue(vec![invoke("bad", Some(policy))]).await.unwrap();
    until("the failure record", || {
        !deliveries_to(&s, "dlq-fn").is_empty()
    })
    .await;
    let tries = deliveries_to(&s, "bad");
    assert_eq!(tries.len(), 2, "one attempt and one retry");
    assert!(tries.iter().all(|t| t.request_id == "req-bad"));
    let rec: serde_json::Value =
        serde_json::from_slice(&deliveries_to(&s, "dlq-fn")[0].payload).unwrap();
    assert_eq!(rec["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(rec["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(rec["responseContext"]["functionError"], "Unhandled");
    assert_eq!(rec["responsePayload"]["errorMessage"], "boom");
    let sum = ev.summary(&arn("bad"), 10).unwrap();
    assert_eq!(sum.failed, 1);
    assert!(sum.items[0].last_error.as_deref().unwrap().contains("boom"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_do_not_count_as_retries_and_end_at_the_maximum_age() {
    let (_d, ev, s) = start(fast());
    s.answers.lock().unwrap().insert(
        arn("busy"),
        vec![Outcome::Throttled {
            reason: "ReservedFunctionConcurrentInvocationLimitExceeded".into(),
        }],
    );
    let policy = RetryPolicy {
        max_retries: 0,
        max_age_s: 1,
        on_failure: Some(arn("after")),
        ..RetryPolicy::default()
    };
    ev.enqueue(vec![invoke("busy", Some(policy))])
        .await
        .unwrap();
    until("the age record", || !deliveries_to(&s, "after").is_empty()).await;
    assert!(
        deliveries_to(&s, "busy").len() > 2,
        "a throttled event is tried until its age runs out, regardless of max_retries"
    );
    let rec: serde_json::Value =
        serde_json::from_slice(&deliveries_to(&s, "after")[0].payload).unwrap();
    assert_eq!(rec["requestContext"]["condition"], "EventAgeExceeded");
    assert!(rec.get("responseContext").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_deliveries_are_bounded() {
    struct Slow {
        now: Mutex<usize>,
        most: Mutex<usize>,
        done: Mutex<usize>,
    }
    impl DeliveryTarget for Arc<Slow> {
        fn deliver(&self, _d: Delivery) -> BoxFuture<'static, Outcome> {
            let me = self.clone();
            Box::pin(async move {
                {
                    let mut n = me.now.lock().unwrap();
                    *n += 1;
                    let mut m = me.most.lock().unwrap();
                    *m = (*m).max(*n);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                *me.now.lock().unwrap() -= 1;
                *me.done.lock().unwrap() += 1;
                ok()
            })
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let ev = Events::open(&dir.path().join("events.db"), fast()).unwrap();
    let slow = Arc::new(Slow {
        now: Mutex::new(0),
        most: Mutex::new(0),
        done: Mutex::new(0),
    });
    ev.start(Targets {
        function: Arc::new(slow.clone()),
        event_bus: None,
        queue: None,
    })
    .unwrap();
    ev.enqueue((0..40).map(|i| invoke(&format!("f{i}"), None)).collect())
        .await
        .unwrap();
    until("all delivered", || *slow.done.lock().unwrap() == 40).await;
    let most = *slow.most.lock().unwrap();
    assert!(
        most <= 4,
        "at most max_in_flight deliveries at once, saw {most}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_bus_destination_without_a_bus_service_is_given_up_visibly() {
    let (_d, ev, _s) = start(fast());
    let policy = RetryPolicy {
        on_success: Some(format!(
            "arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default"
        )),
        ..RetryPolicy::default()
    };
    ev.enqueue(vec![invoke("f", Some(policy))]).await.unwrap();
    let bus = format!("arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default");
    until("the bus item failed", || {
        ev.summary(&bus, 1).unwrap().failed == 1
    })
    .await;
}
