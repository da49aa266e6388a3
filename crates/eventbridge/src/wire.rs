//! EventBridge's JSON 1.1 protocol: `POST /` with `X-Amz-Target: AWSEvents.<Operation>` and an
//! `application/x-amz-json-1.1` body; answers are JSON with the same content type, errors
//! `{"__type": …, "message": …}` with status 400 (500 for internal errors).
//!
//! The front door authenticates and routes here; this module owns every field name.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::EventBridge;
use crate::model::{InputTransformerDoc, Target};
use crate::service::{EbError, EbErrorKind, NewEvent, PutOutcome, PutRule};

/// The content type of requests and answers.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Largest `PutEvents` request, counted as AWS counts entry sizes.
pub const MAX_PUT_EVENTS_BYTES: usize = 256 * 1024;

/// An answer to send.
#[derive(Debug, Clone, PartialEq)]
pub struct WireResponse {
    pub status: u16,
    /// The error's type, also sent as `x-amzn-ErrorType`.
    pub error_type: Option<&'static str>,
    pub body: Vec<u8>,
}

fn ok(v: Value) -> WireResponse {
    WireResponse {
        status: 200,
        error_type: None,
        body: v.to_string().into_bytes(),
    }
}

fn error(kind: &'static str, status: u16, message: &str) -> WireResponse {
    WireResponse {
        status,
        error_type: Some(kind),
        body: json!({"__type": kind, "message": message})
            .to_string()
            .into_bytes(),
    }
}

impl From<EbError> for WireResponse {
    fn from(e: EbError) -> Self {
        let (kind, status) = match e.kind {
            EbErrorKind::ResourceNotFound => ("ResourceNotFoundException", 400),
            EbErrorKind::ResourceAlreadyExists => ("ResourceAlreadyExistsException", 400),
            EbErrorKind::InvalidEventPattern => ("InvalidEventPatternException", 400),
            EbErrorKind::Validation => ("ValidationException", 400),
            EbErrorKind::LimitExceeded => ("LimitExceededException", 400),
            EbErrorKind::Internal => ("InternalException", 500),
        };
        error(kind, status, &e.message)
    }
}

type R<T> = Result<T, EbError>;

fn constraint(field: &str, value: &str, c: &str) -> EbError {
    EbError::validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {c}"
    ))
}

fn opt_str<'a>(o: &'a Map<String, Value>, k: &str) -> R<Option<&'a str>> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EbError::validation(format!(
            "Start of structure or map found where not expected for {k}."
        ))),
    }
}

fn req_str<'a>(o: &'a Map<String, Value>, k: &str, field: &str) -> R<&'a str> {
    opt_str(o, k)?.ok_or_else(|| constraint(field, "null", "Member must not be null"))
}

fn max_len(field: &str, v: Option<&str>, max: usize) -> R<()> {
    match v {
        Some(s) if s.chars().count() > max => Err(constraint(
            field,
            s,
            &format!("Member must have length less than or equal to {max}"),
        )),
        _ => Ok(()),
    }
}

/// `[\.\-_A-Za-z0-9]+` of 1..=64 (rule names, target ids).
fn name(field: &str, v: &str) -> R<()> {
    if v.is_empty() || v.len() > 64 {
        return Err(constraint(
            field,
            v,
            "Member must have length less than or equal to 64",
        ));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(constraint(
            field,
            v,
            "Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+",
        ));
    }
    Ok(())
}

fn bus_name(field: &str, v: &str) -> R<()> {
    if v.is_empty() || v.len() > 256 {
        return Err(constraint(
            field,
            v,
            "Member must have length less than or equal to 256",
        ));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/'))
    {
        return Err(constraint(
            field,
            v,
            "Member must satisfy regular expression pattern: [/\\.\\-_A-Za-z0-9]+",
        ));
    }
    Ok(())
}

fn tags(o: &Map<String, Value>) -> R<Vec<(String, String)>> {
    let Some(Value::Array(items)) = o.get("Tags") else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|t| {
            let t = t
                .as_object()
                .ok_or_else(|| EbError::validation("Tags must be objects."))?;
            Ok((
                req_str(t, "Key", "tags.member.key")?.to_string(),
                req_str(t, "Value", "tags.member.value")?.to_string(),
            ))
        })
        .collect()
}

fn tags_json(t: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Array(
        t.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

fn target_of(t: &Value) -> R<Target> {
    let o = t
        .as_object()
        .ok_or_else(|| EbError::validation("Targets must be objects."))?;
    let id = req_str(o, "Id", "targets.member.id")?;
    name("targets.member.id", id)?;
    let arn = req_str(o, "Arn", "targets.member.arn")?;
    max_len("targets.member.arn", Some(arn), 1600)?;
    let input = opt_str(o, "Input")?;
    max_len("targets.member.input", input, 8192)?;
    let input_path = opt_str(o, "InputPath")?;
    max_len("targets.member.inputPath", input_path, 256)?;
    let input_transformer = match o.get("InputTransformer") {
        Some(Value::Object(x)) => {
            let template = req_str(
                x,
                "InputTemplate",
                "targets.member.inputTransformer.inputTemplate",
            )?;
            let mut paths = Vec::new();
            if let Some(Value::Object(m)) = x.get("InputPathsMap") {
                for (k, v) in m {
                    let v = v.as_str().ok_or_else(|| {
                        EbError::validation("InputPathsMap values must be strings.")
                    })?;
                    paths.push((k.clone(), v.to_string()));
                }
            }
            Some(InputTransformerDoc {
                paths,
                template: template.to_string(),
            })
        }
        _ => None,
    };
    let retry = o.get("RetryPolicy").and_then(Value::as_object);
    let max_attempts = retry
        .and_then(|r| r.get("MaximumRetryAttempts"))
        .and_then(Value::as_u64);
    if max_attempts.is_some_and(|n| n > 185) {
        return Err(constraint(
            "targets.member.retryPolicy.maximumRetryAttempts",
            &max_attempts.unwrap_or_default().to_string(),
            "Member must have value less than or equal to 185",
        ));
    }
    let max_age = retry
        .and_then(|r| r.get("MaximumEventAgeInSeconds"))
        .and_then(Value::as_u64);
    if max_age.is_some_and(|n| !(60..=86400).contains(&n)) {
        return Err(constraint(
            "targets.member.retryPolicy.maximumEventAgeInSeconds",
            &max_age.unwrap_or_default().to_string(),
            "Member must have value between 60 and 86400",
        ));
    }
    Ok(Target {
        id: id.into(),
        arn: arn.into(),
        role_arn: opt_str(o, "RoleArn")?.map(str::to_string),
        input: input.map(str::to_string),
        input_path: input_path.map(str::to_string),
        input_transformer,
        // Attempts in Updraft count the first one; the policy counts retries.
        max_attempts: max_attempts.map(|n| n as u32 + 1),
        max_age_secs: max_age.map(|n| n as u32),
    })
}

fn target_json(t: &Target) -> Value {
    let mut v = json!({"Id": t.id, "Arn": t.arn});
    if let Some(x) = &t.role_arn {
        v["RoleArn"] = json!(x);
    }
    if let Some(x) = &t.input {
        v["Input"] = json!(x);
    }
    if let Some(x) = &t.input_path {
        v["InputPath"] = json!(x);
    }
    if let Some(x) = &t.input_transformer {
        let mut m = Map::new();
        for (k, p) in &x.paths {
            m.insert(k.clone(), json!(p));
        }
        v["InputTransformer"] = json!({"InputPathsMap": m, "InputTemplate": x.template});
    }
    if t.max_attempts.is_some() || t.max_age_secs.is_some() {
        let mut r = Map::new();
        if let Some(n) = t.max_attempts {
            r.insert("MaximumRetryAttempts".into(), json!(n.saturating_sub(1)));
        }
        if let Some(n) = t.max_age_secs {
            r.insert("MaximumEventAgeInSeconds".into(), json!(n));
        }
        v["RetryPolicy"] = Value::Object(r);
    }
    v
}

fn limit(o: &Map<String, Value>) -> R<usize> {
    match o.get("Limit").and_then(Value::as_i64) {
        None => Ok(100),
        Some(n) if (1..=100).contains(&n) => Ok(n as usize),
        Some(n) => Err(constraint(
            "limit",
            &n.to_string(),
            "Member must have value between 1 and 100",
        )),
    }
}

/// The size AWS counts for one `PutEvents` entry.
fn entry_size(o: &Map<String, Value>) -> usize {
    let s = |k: &str| o.get(k).and_then(Value::as_str).map_or(0, str::len);
    let resources: usize = o.get("Resources").and_then(Value::as_array).map_or(0, |r| {
        r.iter().filter_map(Value::as_str).map(str::len).sum()
    });
    (if o.contains_key("Time") { 14 } else { 0 })
        + s("Source")
        + s("DetailType")
        + s("Detail")
        + resources
}

fn new_event(o: &Map<String, Value>) -> R<NewEvent> {
    let time = match o.get("Time") {
        Some(Value::Number(n)) => n
            .as_f64()
            .and_then(|f| OffsetDateTime::from_unix_timestamp(f as i64).ok()),
        _ => None,
    };
    let bus = opt_str(o, "EventBusName")?;
    Ok(NewEvent {
        source: opt_str(o, "Source")?.map(str::to_string),
        detail_type: opt_str(o, "DetailType")?.map(str::to_string),
        detail: opt_str(o, "Detail")?.map(str::to_string),
        resources: o
            .get("Resources")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        time,
        bus: bus.map(str::to_string),
    })
}

async fn put_events(eb: &EventBridge, account: &str, o: &Map<String, Value>) -> R<Value> {
    let Some(Value::Array(entries)) = o.get("Entries") else {
        return Err(constraint("entries", "null", "Member must not be null"));
    };
    if entries.is_empty() || entries.len() > 10 {
        return Err(constraint(
            "entries",
            &format!("[{} entries]", entries.len()),
            "Member must have length less than or equal to 10",
        ));
    }
    let mut events = Vec::new();
    let mut size = 0;
    for e in entries {
        let e = e
            .as_object()
            .ok_or_else(|| EbError::validation("Entries must be objects."))?;
        size += entry_size(e);
        events.push(new_event(e)?);
    }
    if size > MAX_PUT_EVENTS_BYTES {
        return Err(EbError::validation(
            "Total size of the entries in the request is over the limit.",
        ));
    }
    let outcomes = eb.put_internal(account, None, events).await?;
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, PutOutcome::Failed { .. }))
        .count();
    let entries: Vec<Value> = outcomes
        .into_iter()
        .map(|o| match o {
            PutOutcome::Accepted(id) => json!({"EventId": id}),
            PutOutcome::Failed { code, message } => {
                json!({"ErrorCode": code, "ErrorMessage": message})
            }
        })
        .collect();
    Ok(json!({"FailedEntryCount": failed, "Entries": entries}))
}

/// Management operations: synchronous, run on the blocking pool (they write the store).
fn manage(eb: &EventBridge, account: &str, op: &str, o: &Map<String, Value>) -> R<Value> {
    let bus = opt_str(o, "EventBusName")?;
    if let Some(b) = bus {
        max_len("eventBusName", Some(b), 1600)?;
    }
    match op {
        "CreateEventBus" => {
            let n = req_str(o, "Name", "name")?;
            bus_name("name", n)?;
            let description = opt_str(o, "Description")?;
            max_len("description", description, 512)?;
            let arn = eb.create_bus(account, n, description.map(str::to_string), tags(o)?)?;
            let mut v = json!({"EventBusArn": arn});
            if let Some(d) = description {
                v["Description"] = json!(d);
            }
            Ok(v)
        }
        "DeleteEventBus" => {
            eb.delete_bus(account, req_str(o, "Name", "name")?)?;
            Ok(json!({}))
        }
        "DescribeEventBus" => eb.describe_bus(account, opt_str(o, "Name")?),
        "ListEventBuses" => {
            let lim = limit(o)?;
            let all = eb.list_buses(account, opt_str(o, "NamePrefix")?);
            let start = opt_str(o, "NextToken")?
                .and_then(|t| t.parse::<usize>().ok())
                .unwrap_or(0);
            let page: Vec<Value> = all.iter().skip(start).take(lim).cloned().collect();
            let mut v = json!({"EventBuses": page});
            if start + lim < all.len() {
                v["NextToken"] = json!((start + lim).to_string());
            }
            Ok(v)
        }
        "PutRule" => {
            let n = req_str(o, "Name", "name")?;
            name("name", n)?;
            let pattern = opt_str(o, "EventPattern")?;
            max_len("eventPattern", pattern, 4096)?;
            let schedule = opt_str(o, "ScheduleExpression")?;
            max_len("scheduleExpression", schedule, 256)?;
            let description = opt_str(o, "Description")?;
            max_len("description", description, 512)?;
            let arn = eb.put_rule(
                account,
                PutRule {
                    name: n.into(),
                    bus: bus.map(str::to_string),
                    event_pattern: pattern.map(str::to_string),
                    schedule_expression: schedule.map(str::to_string),
                    state: opt_str(o, "State")?.map(str::to_string),
                    description: description.map(str::to_string),
                    role_arn: opt_str(o, "RoleArn")?.map(str::to_string),
                    tags: tags(o)?,
                },
            )?;
            Ok(json!({"RuleArn": arn}))
        }
        "DescribeRule" => eb.describe_rule(account, bus, req_str(o, "Name", "name")?),
        "ListRules" => {
            let (rules, next) = eb.list_rules(
                account,
                bus,
                opt_str(o, "NamePrefix")?,
                opt_str(o, "NextToken")?,
                limit(o)?,
            )?;
            let mut v = json!({"Rules": rules});
            if let Some(n) = next {
                v["NextToken"] = json!(n);
            }
            Ok(v)
        }
        "DeleteRule" => {
            let force = o.get("Force").and_then(Value::as_bool).unwrap_or(false);
            eb.delete_rule(account, bus, req_str(o, "Name", "name")?, force)?;
            Ok(json!({}))
        }
        "EnableRule" | "DisableRule" => {
            eb.set_rule_state(
                account,
                bus,
                req_str(o, "Name", "name")?,
                op == "EnableRule",
            )?;
            Ok(json!({}))
        }
        "PutTargets" => {
            let rule = req_str(o, "Rule", "rule")?;
            let Some(Value::Array(items)) = o.get("Targets") else {
                return Err(constraint("targets", "null", "Member must not be null"));
            };
            if items.is_empty() || items.len() > 10 {
                return Err(constraint(
                    "targets",
                    &format!("[{} targets]", items.len()),
                    "Member must have length less than or equal to 10",
                ));
            }
            let targets = items.iter().map(target_of).collect::<R<Vec<_>>>()?;
            let failed = eb.put_targets(account, bus, rule, targets)?;
            let entries: Vec<Value> = failed
                .iter()
                .map(|(id, code, msg)| json!({"TargetId": id, "ErrorCode": code, "ErrorMessage": msg}))
                .collect();
            Ok(json!({"FailedEntryCount": entries.len(), "FailedEntries": entries}))
        }
        "ListTargetsByRule" => {
            let targets = eb.list_targets(account, bus, req_str(o, "Rule", "rule")?)?;
            let lim = limit(o)?;
            let start = opt_str(o, "NextToken")?
                .and_then(|t| t.parse::<usize>().ok())
                .unwrap_or(0);
            let page: Vec<Value> = targets
                .iter()
                .skip(start)
                .take(lim)
                .map(target_json)
                .collect();
            let mut v = json!({"Targets": page});
            if start + lim < targets.len() {
                v["NextToken"] = json!((start + lim).to_string());
            }
            Ok(v)
        }
        "ListRuleNamesByTarget" => {
            let names = eb.rules_by_target(account, bus, req_str(o, "TargetArn", "targetArn")?)?;
            let lim = limit(o)?;
            let start = opt_str(o, "NextToken")?
                .and_then(|t| t.parse::<usize>().ok())
                .unwrap_or(0);
            let page: Vec<&String> = names.iter().skip(start).take(lim).collect();
            let mut v = json!({"RuleNames": page});
            if start + lim < names.len() {
                v["NextToken"] = json!((start + lim).to_string());
            }
            Ok(v)
        }
        "RemoveTargets" => {
            let rule = req_str(o, "Rule", "rule")?;
            let ids: Vec<String> = o
                .get("Ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if ids.is_empty() {
                return Err(constraint("ids", "null", "Member must not be null"));
            }
            eb.remove_targets(account, bus, rule, &ids)?;
            Ok(json!({"FailedEntryCount": 0, "FailedEntries": []}))
        }
        "TestEventPattern" => {
            let pattern = req_str(o, "EventPattern", "eventPattern")?;
            let event = req_str(o, "Event", "event")?;
            Ok(json!({"Result": EventBridge::test_pattern(pattern, event)?}))
        }
        "TagResource" => {
            eb.tag(account, req_str(o, "ResourceARN", "resourceARN")?, tags(o)?)?;
            Ok(json!({}))
        }
        "UntagResource" => {
            let keys: Vec<String> = o
                .get("TagKeys")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            eb.untag(account, req_str(o, "ResourceARN", "resourceARN")?, &keys)?;
            Ok(json!({}))
        }
        "ListTagsForResource" => {
            let t = eb.list_tags(account, req_str(o, "ResourceARN", "resourceARN")?)?;
            Ok(json!({"Tags": tags_json(&t)}))
        }
        _ => Err(EbError::new(EbErrorKind::Internal, "unreachable")),
    }
}

const MANAGE: &[&str] = &[
    "CreateEventBus",
    "DeleteEventBus",
    "DescribeEventBus",
    "ListEventBuses",
    "PutRule",
    "DescribeRule",
    "ListRules",
    "DeleteRule",
    "EnableRule",
    "DisableRule",
    "PutTargets",
    "ListTargetsByRule",
    "ListRuleNamesByTarget",
    "RemoveTargets",
    "TestEventPattern",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
];

/// Answers one request: `target` is the `X-Amz-Target` header, `account` the caller's.
pub async fn handle(
    eb: &Arc<EventBridge>,
    account: &str,
    target: &str,
    body: &[u8],
) -> WireResponse {
    let Some(op) = target.strip_prefix("AWSEvents.") else {
        return error("UnknownOperationException", 400, "");
    };
    let parsed: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => {
                return error(
                    "SerializationException",
                    400,
                    "Start of structure or map found where not expected.",
                );
            }
        }
    };
    let Value::Object(o) = parsed else {
        return error(
            "SerializationException",
            400,
            "Start of structure or map found where not expected.",
        );
    };
    let result = if op == "PutEvents" {
        put_events(eb, account, &o).await
    } else if MANAGE.contains(&op) {
        let (eb, account, op) = (eb.clone(), account.to_string(), op.to_string());
        match tokio::task::spawn_blocking(move || manage(&eb, &account, &op, &o)).await {
            Ok(r) => r,
            Err(e) => Err(EbError::new(EbErrorKind::Internal, format!("{e}"))),
        }
    } else {
        return error("UnknownOperationException", 400, "");
    };
    match result {
        Ok(v) => ok(v),
        Err(e) => e.into(),
    }
}
