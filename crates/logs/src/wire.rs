//! CloudWatch Logs' JSON 1.1 protocol: `POST /` with `X-Amz-Target: Logs_20140328.<Operation>`
//! and an `application/x-amz-json-1.1` body; answers are JSON with the same content type, errors
//! `{"__type": …, "message": …}` with status 400 (500 for internal errors).
//!
//! The front door authenticates and routes here with the caller's account; every operation is
//! confined to that account's groups, so one account never reads another's logs.

use serde_json::{Map, Value, json};

use crate::filter::Filter;
use crate::store::{FilterQuery, LogStore, LogsError, MAX_EVENTS, now_ms};

/// The content type of requests and answers.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// The target prefix this module answers.
pub const TARGET_PREFIX: &str = "Logs_20140328.";
/// Largest `PutLogEvents` batch: message bytes plus 26 bytes per event, as CloudWatch counts.
pub const MAX_BATCH_BYTES: usize = 1_048_576;

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

fn invalid(message: impl AsRef<str>) -> WireResponse {
    error("InvalidParameterException", 400, message.as_ref())
}

impl From<LogsError> for WireResponse {
    fn from(e: LogsError) -> Self {
        let msg = e.to_string();
        match e {
            LogsError::GroupNotFound | LogsError::StreamNotFound => {
                error("ResourceNotFoundException", 400, &msg)
            }
            LogsError::GroupExists | LogsError::StreamExists => {
                error("ResourceAlreadyExistsException", 400, &msg)
            }
            LogsError::InvalidParameter(_) => invalid(msg),
            LogsError::Io(path, err) => {
                tracing::error!(path = %path.display(), "logs storage error: {err}");
                error(
                    "ServiceUnavailableException",
                    500,
                    "The service cannot complete the request.",
                )
            }
        }
    }
}

type R<T> = Result<T, WireResponse>;

fn opt_str<'a>(o: &'a Map<String, Value>, k: &str) -> R<Option<&'a str>> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(error(
            "SerializationException",
            400,
            &format!("{k} must be a string"),
        )),
    }
}

fn req_str<'a>(o: &'a Map<String, Value>, k: &str) -> R<&'a str> {
    opt_str(o, k)?.ok_or_else(|| {
        invalid(format!(
            "1 validation error detected: Value null at '{k}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn opt_u64(o: &Map<String, Value>, k: &str) -> R<Option<u64>> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) => Ok(Some(v)),
            None => Err(invalid(format!(
                "1 validation error detected: Value '{n}' at '{k}' failed to satisfy constraint: Member must have value greater than or equal to 0"
            ))),
        },
        Some(_) => Err(error(
            "SerializationException",
            400,
            &format!("{k} must be a number"),
        )),
    }
}

fn opt_bool(o: &Map<String, Value>, k: &str) -> bool {
    o.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn limit(o: &Map<String, Value>, max: u64, default: u64) -> R<usize> {
    match opt_u64(o, "limit")? {
        None => Ok(default as usize),
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        Some(n) => Err(invalid(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value {}",
            if n == 0 {
                "greater than or equal to 1".to_string()
            } else {
                format!("less than or equal to {max}")
            }
        ))),
    }
}

/// The group a request names: `logGroupName`, or `logGroupIdentifier` (a name or an ARN). An
/// ARN of another account names nothing this caller can see.
fn group_of<'a>(o: &'a Map<String, Value>, account: &str) -> R<&'a str> {
    let name = opt_str(o, "logGroupName")?;
    let ident = opt_str(o, "logGroupIdentifier")?;
    match (name, ident) {
        (Some(_), Some(_)) => Err(invalid(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
        )),
        (Some(n), None) => Ok(n),
        (None, Some(id)) => match id.strip_prefix("arn:") {
            Some(rest) => {
                // arn:<partition>:logs:<region>:<account>:log-group:<name>[:*]
                let parts: Vec<&str> = rest.splitn(6, ':').collect();
                if parts.len() != 6 || parts[1] != "logs" || parts[4] != "log-group" {
                    return Err(invalid(format!("Invalid log group ARN: {id}")));
                }
                if parts[3] != account {
                    return Err(LogsError::GroupNotFound.into());
                }
                Ok(parts[5].strip_suffix(":*").unwrap_or(parts[5]))
            }
            None => Ok(id),
        },
        (None, None) => Err(invalid(
            "Should provide either a log group name or a log group identifier.",
        )),
    }
}

fn group_arn(store: &LogStore, account: &str, name: &str) -> String {
    format!("arn:aws:logs:{}:{account}:log-group:{name}", store.region)
}

/// Answers one request of `account`. `target` is the whole `X-Amz-Target` header.
pub fn handle(store: &LogStore, account: &str, target: &str, body: &[u8]) -> WireResponse {
    let Some(op) = target.strip_prefix(TARGET_PREFIX) else {
        return error("UnknownOperationException", 400, "Unknown operation");
    };
    let input: Map<String, Value> = if body.is_empty() {
        Map::new()
    } else {
        match serde_json::from_slice(body) {
            Ok(Value::Object(m)) => m,
            _ => {
                return error(
                    "SerializationException",
                    400,
                    "The request body is not a JSON object",
                );
            }
        }
    };
    let r = match op {
        "CreateLogGroup" => create_group(store, account, &input),
        "DeleteLogGroup" => delete_group(store, account, &input),
        "DescribeLogGroups" => describe_groups(store, account, &input),
        "CreateLogStream" => create_stream(store, account, &input),
        "DescribeLogStreams" => describe_streams(store, account, &input),
        "PutLogEvents" => put_events(store, account, &input),
        "GetLogEvents" => get_events(store, account, &input),
        "FilterLogEvents" => filter_events(store, account, &input),
        "PutRetentionPolicy" => retention(store, account, &input, true),
        "DeleteRetentionPolicy" => retention(store, account, &input, false),
        _ => Err(error(
            "UnknownOperationException",
            400,
            &format!("Operation {op} is not supported by Updraft"),
        )),
    };
    r.unwrap_or_else(|e| e)
}

fn create_group(store: &LogStore, account: &str, o: &Map<String, Value>) -> R<WireResponse> {
    let name = req_str(o, "logGroupName")?;
    store.create_group(account, name)?;
    Ok(ok(json!({})))
}

fn delete_group(store: &LogStore, account: &str, o: &Map<String, Value>) -> R<WireResponse> {
    let name = req_str(o, "logGroupName")?;
    store.delete_group(account, name)?;
    Ok(ok(json!({})))
}

fn retention(
    store: &LogStore,
    account: &str,
    o: &Map<String, Value>,
    put: bool,
) -> R<WireResponse> {
    let name = req_str(o, "logGroupName")?;
    let days = if put {
        let d = opt_u64(o, "retentionInDays")?.ok_or_else(|| {
            invalid("1 validation error detected: Value null at 'retentionInDays' failed to satisfy constraint: Member must not be null")
        })?;
        Some(u32::try_from(d).unwrap_or(u32::MAX))
    } else {
        None
    };
    store.set_retention(account, name, days)?;
    Ok(ok(json!({})))
}

/// A page token over names: the hex of the last name returned.
fn name_token(name: &str) -> String {
    name.bytes().map(|b| format!("{b:02x}")).collect()
}

fn after_token(t: Option<&str>) -> R<Option<String>> {
    let Some(t) = t else { return Ok(None) };
    let bad = || invalid("The specified nextToken is invalid.");
    if !t.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes.ok_or_else(bad)?)
        .map(Some)
        .map_err(|_| bad())
}

fn describe_groups(store: &LogStore, account: &str, o: &Map<String, Value>) -> R<WireResponse> {
    let prefix = opt_str(o, "logGroupNamePrefix")?;
    let pattern = opt_str(o, "logGroupNamePattern")?;
    if prefix.is_some() && pattern.is_some() {
        return Err(invalid(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
        ));
    }
    let limit = limit(o, 50, 50)?;
    let after = after_token(opt_str(o, "nextToken")?)?;
    let groups = store.list_groups(account, prefix)?;
    let mut rows = Vec::new();
    let mut next = None;
    for g in groups {
        if after.as_ref().is_some_and(|a| g.name <= *a) {
            continue;
        }
        if pattern.is_some_and(|p| !g.name.to_lowercase().contains(&p.to_lowercase())) {
            continue;
        }
        if rows.len() == limit {
            next = rows
                .last()
                .and_then(|r: &Value| r["logGroupName"].as_str().map(name_token));
            break;
        }
        let arn = group_arn(store, account, &g.name);
        let mut row = json!({
            "logGroupName": g.name,
            "creationTime": g.meta.creation_ms,
            "metricFilterCount": 0,
            "arn": format!("{arn}:*"),
            "logGroupArn": arn,
            "storedBytes": g.stored_bytes,
            "logGroupClass": "STANDARD",
            "deletionProtectionEnabled": false,
        });
        if let Some(d) = g.meta.retention_days {
            row["retentionInDays"] = d.into();
        }
        rows.push(row);
    }
    let mut out = json!({"logGroups": rows});
    if let Some(t) = next {
        out["nextToken"] = t.into();
    }
    Ok(ok(out))
}

fn describe_streams(store: &LogStore, account: &str, o: &Map<String, Value>) -> R<WireResponse> {
    let group = group_of(o, account)?;
    let prefix = opt_str(o, "logStreamNamePrefix")?;
    let order_by_time = match opt_str(o, "orderBy")? {
        None | Some("LogStreamName") => false,
        Some("LastEventTime") => {
            if prefix.is_some() {
                return Err(invalid(
                    "Cannot order by LastEventTime with a logStreamNamePrefix.",
                ));
            }
            true
        }
        Some(other) => {
            return Err(invalid(format!(
                "1 validation error detected: Value '{other}' at 'orderBy' failed to satisfy constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]"
            )));
        }
    };
    let descending = opt_bool(o, "descending");
    let limit = limit(o, 50, 50)?;
    let mut streams = store.list_streams(account, group, prefix)?;
    if order_by_time {
        streams.sort_by(|a, b| {
            (a.last_event_ms.unwrap_or(0), &a.name).cmp(&(b.last_event_ms.unwrap_or(0), &b.name))
        });
    }
    if descending {
        streams.reverse();
    }
    // Tokens carry the index of the next stream in this order (the listing is re-read per page).
    let start = match opt_str(o, "nextToken")? {
        None => 0,
        Some(t) => t
            .strip_prefix("i/")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| invalid("The specified nextToken is invalid."))?,
    };
    let arn = group_arn(store, account, group);
    let rows: Vec<Value> = streams
        .iter()
        .skip(start)
        .take(limit)
        .map(|s| {
            let mut row = json!({
                "logStreamName": s.name,
                "creationTime": s.creation_ms,
                "arn": format!("{arn}:log-stream:{}", s.name),
                "storedBytes": s.stored_bytes,
            });
            if let Some(t) = s.first_event_ms {
                row["firstEventTimestamp"] = t.into();
            }
            if let Some(t) = s.last_event_ms {
                row["lastEventTimestamp"] = t.into();
            }
            if let Some(t) = s.last_ingestion_ms {
                row["lastIngestionTime"] = t.into();
            }
            row
        })
        .collect();
    let mut out = json!({"logStreams": rows});
    if start + limit < streams.len() {
        out["nextToken"] = format!("i/{}", start + limit).into();
    }
    Ok(ok(out))
}

fn create_stream(store: &LogStore, account: &str, o: &Map<String, Value>) -> R<WireResponse> {
    let group = req_str(o, "logGroupName")?;
    let stream = req_str(o, "logStreamName")?;
    store.create_stream(account, group, stream)?;
    Ok(ok(json!({})))
}

fn put_events(store: &LogStore, account: &str, o: &Map<String, Value>) -> R<WireResponse> {
    let group = req_str(o, "logGroupName")?;
    let stream = req_str(o, "logStreamName")?;
    let Some(Value::Array(items)) = o.get("logEvents") else {
        return Err(invalid(
            "1 validation error detected: Value null at 'logEvents' failed to satisfy constraint: Member must not be null",
        ));
    };
    if items.is_empty() || items.len() > MAX_EVENTS {
        return Err(invalid(format!(
            "1 validation error detected: Value '{}' at 'logEvents' failed to satisfy constraint: Member must have length between 1 and {MAX_EVENTS}",
            items.len()
        )));
    }
    let mut events = Vec::with_capacity(items.len());
    let mut size = 0usize;
    for it in items {
        let e = it
            .as_object()
            .ok_or_else(|| invalid("logEvents must be objects"))?;
        let ts = opt_u64(e, "timestamp")?.ok_or_else(|| {
            invalid("1 validation error detected: Value null at 'logEvents.member.timestamp' failed to satisfy constraint: Member must not be null")
        })?;
        let msg = req_str(e, "message")?;
        if msg.is_empty() {
            return Err(invalid(
                "1 validation error detected: Value '' at 'logEvents.member.message' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ));
        }
        size += msg.len() + 26;
        events.push((ts, msg));
    }
    if size > MAX_BATCH_BYTES {
        return Err(invalid(format!(
            "Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES}"
        )));
    }
    if events.windows(2).any(|w| w[1].0 < w[0].0) {
        return Err(invalid(
            "Log events in a single PutLogEvents request must be in chronological order.",
        ));
    }
    if let (Some(f), Some(l)) = (events.first(), events.last())
        && l.0 - f.0 > 86_400_000
    {
        return Err(invalid(
            "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
        ));
    }
    // CloudWatch accepts events from 14 days ago (or the group's retention) to 2 hours ahead and
    // reports the rest by index.
    let now = now_ms();
    let meta = store.group_meta(account, group)?;
    let too_old = now.saturating_sub(14 * 86_400_000);
    let expired = meta
        .retention_days
        .map(|d| now.saturating_sub(u64::from(d) * 86_400_000));
    let too_new = now + 2 * 3_600_000;
    let mut info = Map::new();
    let old_end = events.iter().rposition(|e| e.0 < too_old);
    let expired_end = expired.and_then(|x| events.iter().rposition(|e| e.0 < x));
    let new_start = events.iter().position(|e| e.0 > too_new);
    if let Some(i) = old_end {
        info.insert("tooOldLogEventEndIndex".into(), (i + 1).into());
    }
    if let Some(i) = expired_end {
        info.insert("expiredLogEventEndIndex".into(), (i + 1).into());
    }
    if let Some(i) = new_start {
        info.insert("tooNewLogEventStartIndex".into(), i.into());
    }
    let from = old_end.max(expired_end).map_or(0, |i| i + 1);
    let to = new_start.unwrap_or(events.len());
    if from < to {
        store.put_events(account, group, stream, &events[from..to])?;
    } else if !store
        .list_streams(account, group, Some(stream))?
        .iter()
        .any(|s| s.name == stream)
    {
        return Err(LogsError::StreamNotFound.into());
    }
    let mut out = json!({"nextSequenceToken": format!("{:056}", now)});
    if !info.is_empty() {
        out["rejectedLogEventsInfo"] = Value::Object(info);
    }
    Ok(ok(out))
}

fn get_events(store: &LogStore, account: &str, o: &Map<String, Value>) -> R<WireResponse> {
    let group = group_of(o, account)?;
    let stream = req_str(o, "logStreamName")?;
    let start = opt_u64(o, "startTime")?;
    let end = opt_u64(o, "endTime")?;
    let limit = limit(o, MAX_EVENTS as u64, MAX_EVENTS as u64)?;
    let token = opt_str(o, "nextToken")?;
    let page = store.get_events(
        account,
        group,
        stream,
        start,
        end,
        token,
        limit,
        opt_bool(o, "startFromHead"),
    )?;
    let events: Vec<Value> = page
        .events
        .into_iter()
        .map(|e| json!({"timestamp": e.ts, "message": e.message, "ingestionTime": e.ts}))
        .collect();
    Ok(ok(json!({
        "events": events,
        "nextForwardToken": page.forward,
        "nextBackwardToken": page.backward,
    })))
}

fn filter_events(store: &LogStore, account: &str, o: &Map<String, Value>) -> R<WireResponse> {
    let group = group_of(o, account)?;
    let streams: Option<Vec<String>> = match o.get("logStreamNames") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| invalid("logStreamNames must be strings"))?,
        ),
        Some(_) => return Err(invalid("logStreamNames must be a list")),
    };
    let prefix = opt_str(o, "logStreamNamePrefix")?;
    if streams.is_some() && prefix.is_some() {
        return Err(invalid(
            "logStreamNames and logStreamNamePrefix are mutually exclusive",
        ));
    }
    let pattern = opt_str(o, "filterPattern")?.unwrap_or("");
    if pattern.len() > 1024 {
        return Err(invalid(
            "1 validation error detected: Value at 'filterPattern' failed to satisfy constraint: Member must have length less than or equal to 1024",
        ));
    }
    let filter = Filter::parse(pattern).map_err(|e| invalid(e.to_string()))?;
    let (start, end) = (opt_u64(o, "startTime")?, opt_u64(o, "endTime")?);
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        return Err(invalid(
            "endTime must be greater than or equal to startTime",
        ));
    }
    let q = FilterQuery {
        streams: streams.as_deref(),
        prefix,
        start,
        end,
        filter: &filter,
        token: opt_str(o, "nextToken")?,
        limit: limit(o, MAX_EVENTS as u64, MAX_EVENTS as u64)?,
    };
    let page = store.filter_events(account, group, &q)?;
    let events: Vec<Value> = page
        .events
        .into_iter()
        .map(|e| {
            json!({
                "logStreamName": e.stream,
                "timestamp": e.ts,
                "message": e.message,
                "ingestionTime": e.ts,
                "eventId": e.event_id,
            })
        })
        .collect();
    let searched: Vec<Value> = page
        .searched
        .into_iter()
        .map(|s| json!({"logStreamName": s, "searchedCompletely": true}))
        .collect();
    let mut out = json!({"events": events, "searchedLogStreams": searched});
    if let Some(t) = page.next_token {
        out["nextToken"] = t.into();
    }
    Ok(ok(out))
}
