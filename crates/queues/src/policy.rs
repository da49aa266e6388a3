//! Queue policy statements that grant AWS services (`events.amazonaws.com`, …) send rights, as
//! an SQS queue policy does on AWS for an EventBridge rule of another account.

use serde_json::Value;

/// `*` and `?` wildcards, as IAM's `ArnLike` and `StringLike` match.
fn like(pattern: &str, value: &str) -> bool {
    fn go(p: &[u8], v: &[u8]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), value.as_bytes())
}

/// A string or a list of strings, as policy fields may be.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether one statement's `Condition` holds for `source_arn` (only `aws:SourceArn` conditions
/// are known; a statement with any other condition does not apply).
fn condition_holds(cond: Option<&Value>, source_arn: &str) -> bool {
    let Some(cond) = cond else { return true };
    let Some(ops) = cond.as_object() else {
        return false;
    };
    ops.iter().all(|(op, keys)| {
        let Some(keys) = keys.as_object() else {
            return false;
        };
        keys.iter().all(|(k, v)| {
            if !k.eq_ignore_ascii_case("aws:SourceArn") {
                return false;
            }
            let wanted = strings(v);
            match op.as_str() {
                "ArnEquals" | "StringEquals" => wanted.contains(&source_arn),
                "ArnLike" | "StringLike" => wanted.iter().any(|p| like(p, source_arn)),
                _ => false,
            }
        })
    })
}

/// Whether the policy document lets `service` send messages for `source_arn`.
pub(crate) fn service_allowed(policy: &str, service: &str, source_arn: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => return false,
    };
    statements.iter().any(|s| {
        s.get("Effect").and_then(Value::as_str) == Some("Allow")
            && s.get("Principal")
                .and_then(|p| p.get("Service"))
                .is_some_and(|v| strings(v).contains(&service))
            && s.get("Action").is_none_or(|a| {
                strings(a)
                    .iter()
                    .any(|a| like(&a.to_ascii_lowercase(), "sqs:sendmessage") || *a == "*")
            })
            && condition_holds(s.get("Condition"), source_arn)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "arn:aws:events:us-east-1:111122223333:rule/default/r";

    #[test]
    fn service_statements() {
        let p = |cond: &str| {
            format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"Service":"events.amazonaws.com"}},"Action":"sqs:SendMessage","Resource":"*"{cond}}}]}}"#
            )
        };
        assert!(service_allowed(&p(""), "events.amazonaws.com", RULE));
        assert!(!service_allowed(&p(""), "s3.amazonaws.com", RULE));
        let eq = format!(r#","Condition":{{"ArnEquals":{{"aws:SourceArn":"{RULE}"}}}}"#);
        assert!(service_allowed(&p(&eq), "events.amazonaws.com", RULE));
        assert!(!service_allowed(
            &p(&eq),
            "events.amazonaws.com",
            "arn:aws:events:us-east-1:111122223333:rule/default/other"
        ));
        let like =
            r#","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:events:*:111122223333:rule/*"}}"#;
        assert!(service_allowed(&p(like), "events.amazonaws.com", RULE));
        assert!(!service_allowed(
            &p(like),
            "events.amazonaws.com",
            "arn:aws:events:us-east-1:444455556666:rule/default/r"
        ));
        let deny = r#"{"Statement":{"Effect":"Deny","Principal":{"Service":"events.amazonaws.com"},"Action":"sqs:*"}}"#;
        assert!(!service_allowed(deny, "events.amazonaws.com", RULE));
        let star = r#"{"Statement":{"Effect":"Allow","Principal":{"Service":["events.amazonaws.com"]},"Action":["sqs:*"]}}"#;
        assert!(service_allowed(star, "events.amazonaws.com", RULE));
        let recv = r#"{"Statement":{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"sqs:ReceiveMessage"}}"#;
        assert!(!service_allowed(recv, "events.amazonaws.com", RULE));
        assert!(!service_allowed("not json", "events.amazonaws.com", RULE));
    }
}
