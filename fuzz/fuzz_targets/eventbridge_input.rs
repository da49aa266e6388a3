//! What any EventBridge caller can send: an event pattern (`PutRule`, `TestEventPattern`) matched
//! against an event, a schedule expression asked for its next fire times, and a target's
//! `InputPath` / `InputTransformer` applied to an event. The input is up to three NUL-separated
//! parts. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use time::Duration;
use time::macros::datetime;
use updraft_eventbridge::schedule::Schedule;
use updraft_eventbridge::transform::{JsonPath, RuleFacts, Transformer};
use updraft_pattern::Pattern;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let first = parts.next().unwrap_or("");
    let second = parts.next().unwrap_or("");
    let third = parts.next().unwrap_or("");
    let event: Option<serde_json::Value> = serde_json::from_str(second).ok();

    if let Ok(p) = Pattern::parse(first)
        && let Some(ev) = &event
    {
        let _ = p.matches(ev);
    }

    if let Ok(s) = Schedule::parse(first) {
        let anchor = datetime!(2026-01-01 00:00:00 UTC);
        for now in [
            anchor,
            datetime!(2026-12-31 23:59:59 UTC),
            datetime!(2199-12-31 23:58:00 UTC),
        ] {
            for minute in [Duration::minutes(1), Duration::milliseconds(10)] {
                if let Some(next) = s.next_after(anchor, now, minute) {
                    // A next fire is always later, and asking again from it moves on.
                    assert!(next > now, "{first}: {next} is not after {now}");
                    if let Some(again) = s.next_after(anchor, next, minute) {
                        assert!(again > next, "{first}: {again} is not after {next}");
                    }
                }
            }
        }
    }

    if let Ok(path) = JsonPath::parse(first)
        && let Some(ev) = &event
    {
        let _ = path.select(ev);
    }

    if let (Ok(t), Some(ev)) = (
        Transformer::new(vec![("k".into(), first.to_string())], third.to_string()),
        &event,
    ) {
        let out = t.apply(
            ev,
            &RuleFacts {
                rule_arn: "arn:aws:events:us-east-1:111122223333:rule/r",
                rule_name: "r",
                ingestion_time: "2026-01-01T00:00:00Z",
            },
        );
        // A template without placeholders comes out as written.
        if !third.contains('<') {
            assert_eq!(out, third);
        }
    }
});
