//! The service over an in-memory store, with a recording delivery path.

use std::sync::Mutex as StdMutex;

use updraft_store::SqliteStore;

use super::*;
use crate::delivery::{BoxFuture, DeliveryError};

#[derive(Default)]
struct Recorder(StdMutex<Vec<Delivery>>);

impl EventDelivery for Recorder {
    fn enqueue(&self, d: Vec<Delivery>) -> BoxFuture<'_, Result<(), DeliveryError>> {
        self.0.lock().unwrap().extend(d);
        Box::pin(async { Ok(()) })
    }
}

/// Allows every function whose name does not start with `locked`.
struct Policy;

impl FunctionPermissions for Policy {
    fn allows_events(&self, arn: &str, _: &str, _: &str) -> Result<(), String> {
        if arn.contains(":function:locked") {
            Err("no statement allows events.amazonaws.com".into())
        } else {
            Ok(())
        }
    }
}

const ACCT: &str = "111122223333";

fn fixture() -> (Arc<EventBridge>, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let eb = EventBridge::open(
        Arc::new(SqliteStore::in_memory().unwrap()),
        "us-east-1".into(),
        rec.clone(),
        Arc::new(Policy),
        std::time::Duration::from_millis(100),
    )
    .unwrap();
    (Arc::new(eb), rec)
}

fn fn_target(id: &str, name: &str) -> Target {
    Target {
        id: id.into(),
        arn: format!("arn:aws:lambda:us-east-1:{ACCT}:function:{name}"),
        role_arn: None,
        input: None,
        input_path: None,
        input_transformer: None,
        max_attempts: None,
        max_age_secs: None,
    }
}

fn event(source: &str) -> NewEvent {
    NewEvent {
        source: Some(source.into()),
        detail_type: Some("Order Placed".into()),
        detail: Some(r#"{"amount": 12}"#.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn matching_rules_reach_allowed_targets_only() {
    let (eb, rec) = fixture();
    let rule = |name: &str, pattern: &str| PutRule {
        name: name.into(),
        event_pattern: Some(pattern.into()),
        ..Default::default()
    };
    eb.put_rule(ACCT, rule("shop", r#"{"source": ["shop"]}"#))
        .unwrap();
    eb.put_rule(ACCT, rule("other", r#"{"source": ["other"]}"#))
        .unwrap();
    eb.put_targets(
        ACCT,
        None,
        "shop",
        vec![fn_target("a", "f1"), fn_target("b", "locked1")],
    )
    .unwrap();
    eb.put_targets(ACCT, None, "other", vec![fn_target("a", "f2")])
        .unwrap();
    let out = eb
        .put_internal(ACCT, None, vec![event("shop"), NewEvent::default()])
        .await
        .unwrap();
    assert!(matches!(out[0], PutOutcome::Accepted(_)));
    assert!(matches!(&out[1], PutOutcome::Failed { code, .. } if code == "InvalidArgument"));
    let got = rec.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].target_arn.ends_with(":function:f1"));
    assert_eq!(
        got[0].source_arn,
        format!("arn:aws:events:us-east-1:{ACCT}:rule/shop")
    );
    let ev: Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(ev["detail"]["amount"], 12);
    assert_eq!(ev["account"], ACCT);
}

#[tokio::test]
async fn errors_store_nothing() {
    let (eb, _) = fixture();
    let e = eb
        .put_rule(
            ACCT,
            PutRule {
                name: "r".into(),
                event_pattern: Some("{\"a\": 1}".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.kind, EbErrorKind::InvalidEventPattern);
    let e = eb
        .put_rule(
            ACCT,
            PutRule {
                name: "r".into(),
                schedule_expression: Some("rate(1 minutes)".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.message, "Parameter ScheduleExpression is not valid.");
    assert!(
        eb.list_rules(ACCT, None, None, None, 100)
            .unwrap()
            .0
            .is_empty()
    );
    let e = eb.describe_rule(ACCT, Some("nope"), "r").unwrap_err();
    assert_eq!(e.message, "Event bus nope does not exist.");
    let e = eb.describe_rule(ACCT, None, "r").unwrap_err();
    assert_eq!(e.message, "Rule r does not exist on EventBus default.");
}

#[tokio::test]
async fn schedules_fire_with_the_scheduled_event_shape() {
    let (eb, rec) = fixture();
    eb.put_rule(
        ACCT,
        PutRule {
            name: "tick".into(),
            schedule_expression: Some("rate(1 minute)".into()),
            ..Default::default()
        },
    )
    .unwrap();
    eb.put_targets(ACCT, None, "tick", vec![fn_target("a", "f")])
        .unwrap();
    let later = now() + Duration::milliseconds(150);
    let next = eb.fire_due(later).await.unwrap();
    assert!(next > later);
    let got = rec.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let ev: Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!(ev["detail-type"], "Scheduled Event");
    assert_eq!(ev["source"], "aws.events");
    assert_eq!(
        ev["resources"][0],
        format!("arn:aws:events:us-east-1:{ACCT}:rule/tick")
    );
    assert_eq!(ev["detail"], json!({}));
    // Disabled rules do not fire.
    eb.set_rule_state(ACCT, None, "tick", false).unwrap();
    assert_eq!(eb.fire_due(later + Duration::seconds(10)).await, None);
}
