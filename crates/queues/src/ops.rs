//! Every SQS operation, over a request in the JSON protocol's shape (`serde_json::Value`) and
//! answering in that shape. The query protocol's parser builds the same shape from form fields,
//! so both protocols share one implementation of each operation.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::model::AttrValue;
use crate::service::{Delivered, Queues, ReceiveInput, SendInput, SendOutput};
use crate::{CallContext, QueueError};

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn required<'a>(v: &'a Value, k: &str) -> Result<&'a str, QueueError> {
    s(v, k).ok_or_else(|| QueueError::MissingParameter(k.into()))
}

/// An integer given as a JSON number or (query protocol) a string.
fn int(v: &Value, k: &str) -> Result<Option<i64>, QueueError> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid_int(k, &n.to_string())),
        Some(Value::String(t)) => t.trim().parse().map(Some).map_err(|_| invalid_int(k, t)),
        Some(other) => Err(invalid_int(k, &other.to_string())),
    }
}

fn invalid_int(k: &str, v: &str) -> QueueError {
    QueueError::InvalidParameterValue(format!(
        "Value {v} for parameter {k} is invalid. Reason: must be an integer."
    ))
}

fn string_map(v: &Value, k: &str) -> Result<BTreeMap<String, String>, QueueError> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(a, b)| match b {
                Value::String(t) => Ok((a.clone(), t.clone())),
                other => Ok((a.clone(), other.to_string())),
            })
            .collect(),
        Some(_) => Err(QueueError::InvalidParameterValue(format!(
            "Value for parameter {k} is invalid."
        ))),
    }
}

fn string_list(v: &Value, k: &str) -> Vec<String> {
    match v.get(k) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(t)) => vec![t.clone()],
        _ => Vec::new(),
    }
}

fn attr_map(v: &Value, k: &str) -> Result<BTreeMap<String, AttrValue>, QueueError> {
    let Some(Value::Object(m)) = v.get(k) else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for (name, a) in m {
        let data_type = s(a, "DataType").ok_or_else(|| {
            QueueError::InvalidParameterValue(format!(
                "The message attribute '{name}' must contain non-empty message attribute type."
            ))
        })?;
        let binary = match s(a, "BinaryValue") {
            Some(b) => Some(STANDARD.decode(b).map_err(|_| {
                QueueError::InvalidParameterValue(format!(
                    "The message attribute '{name}' has an invalid binary value."
                ))
            })?),
            None => None,
        };
        out.insert(
            name.clone(),
            AttrValue {
                data_type: data_type.to_string(),
                string: s(a, "StringValue").map(str::to_string),
                binary,
            },
        );
    }
    Ok(out)
}

fn attr_json(a: &AttrValue) -> Value {
    let mut m = Map::new();
    m.insert("DataType".into(), json!(a.data_type));
    if let Some(t) = &a.string {
        m.insert("StringValue".into(), json!(t));
    }
    if let Some(b) = &a.binary {
        m.insert("BinaryValue".into(), json!(STANDARD.encode(b)));
    }
    Value::Object(m)
}

/// Splits a queue URL (`http://host/<account>/<name>`) into (account, name).
fn parse_url(url: &str) -> Result<(String, String), QueueError> {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
    let segs: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match segs.as_slice() {
        [.., account, name]
            if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Ok((account.to_string(), name.to_string()))
        }
        _ => Err(QueueError::InvalidAddress(url.to_string())),
    }
}

/// The queue a request names, after checking the caller may use it.
fn target(qs: &Queues, ctx: &CallContext, input: &Value) -> Result<(String, String), QueueError> {
    let (owner, name) = parse_url(required(input, "QueueUrl")?)?;
    qs.authorize(&ctx.account, &owner, &name)?;
    Ok((owner, name))
}

fn url(ctx: &CallContext, account: &str, name: &str) -> String {
    format!("http://{}/{account}/{name}", ctx.host)
}

/// Batch entry checks shared by the three batch operations.
fn batch_entries<'a>(input: &'a Value, entry_shape: &str) -> Result<&'a Vec<Value>, QueueError> {
    let entries = match input.get("Entries") {
        Some(Value::Array(a)) => a,
        _ => return Err(QueueError::EmptyBatchRequest(entry_shape.into())),
    };
    if entries.is_empty() {
        return Err(QueueError::EmptyBatchRequest(entry_shape.into()));
    }
    if entries.len() > 10 {
        return Err(QueueError::TooManyEntriesInBatchRequest(entries.len()));
    }
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        let id = s(e, "Id").ok_or_else(|| QueueError::MissingParameter("Id".into()))?;
        if id.is_empty()
            || id.len() > 80
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(QueueError::InvalidBatchEntryId);
        }
        if !seen.insert(id) {
            return Err(QueueError::BatchEntryIdsNotDistinct(id.into()));
        }
    }
    Ok(entries)
}

fn batch_error(id: &str, e: &QueueError) -> Value {
    let w = e.wire();
    json!({"Id": id, "SenderFault": w.fault == "Sender", "Code": w.query_code, "Message": e.to_string()})
}

fn send_input(e: &Value) -> Result<SendInput, QueueError> {
    let delay = int(e, "DelaySeconds")?;
    if let Some(d) = delay
        && !(0..=900).contains(&d)
    {
        return Err(QueueError::InvalidParameterValue(format!(
            "Value {d} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
        )));
    }
    Ok(SendInput {
        body: required(e, "MessageBody")?.to_string(),
        delay_seconds: delay.map(|d| d as u32),
        attributes: attr_map(e, "MessageAttributes")?,
        system_attributes: attr_map(e, "MessageSystemAttributes")?,
        group_id: s(e, "MessageGroupId").map(str::to_string),
        dedup_id: s(e, "MessageDeduplicationId").map(str::to_string),
    })
}

fn send_json(out: &SendOutput, mut m: Map<String, Value>) -> Value {
    m.insert("MessageId".into(), json!(out.message_id));
    m.insert("MD5OfMessageBody".into(), json!(out.md5_body));
    if let Some(a) = &out.md5_attributes {
        m.insert("MD5OfMessageAttributes".into(), json!(a));
    }
    if let Some(a) = &out.md5_system_attributes {
        m.insert("MD5OfMessageSystemAttributes".into(), json!(a));
    }
    if let Some(n) = &out.sequence_number {
        m.insert("SequenceNumber".into(), json!(n));
    }
    Value::Object(m)
}

fn message_json(d: &Delivered, system: &[String], user: &[String]) -> Value {
    let m = &d.message;
    let mut out = Map::new();
    out.insert("MessageId".into(), json!(m.doc.id));
    out.insert("ReceiptHandle".into(), json!(d.receipt_handle));
    out.insert("MD5OfBody".into(), json!(m.md5_body));
    out.insert("Body".into(), json!(m.doc.body));
    let all = system.iter().any(|n| n == "All");
    let want = |n: &str| all || system.iter().any(|x| x == n);
    let mut attrs = Map::new();
    let mut put = |n: &str, v: String| {
        if want(n) {
            attrs.insert(n.into(), json!(v));
        }
    };
    put("SenderId", m.doc.sender_id.clone());
    put("SentTimestamp", m.doc.sent.to_string());
    put("ApproximateReceiveCount", m.state.receive_count.to_string());
    if let Some(t) = m.state.first_receive {
        put("ApproximateFirstReceiveTimestamp", t.to_string());
    }
    if let Some(g) = &m.doc.group_id {
        put("MessageGroupId", g.clone());
        put("SequenceNumber", format!("{:020}", m.seq));
    }
    if let Some(dd) = &m.doc.dedup_id {
        put("MessageDeduplicationId", dd.clone());
    }
    if let Some(src) = &m.doc.dead_letter_source {
        put("DeadLetterQueueSourceArn", src.clone());
    }
    if let Some(t) = m
        .doc
        .system_attributes
        .get("AWSTraceHeader")
        .and_then(|a| a.string.clone())
    {
        put("AWSTraceHeader", t);
    }
    if !attrs.is_empty() {
        out.insert("Attributes".into(), Value::Object(attrs));
    }
    let all_user = user.iter().any(|n| n == "All" || n == ".*");
    let chosen: BTreeMap<&String, &AttrValue> = m
        .doc
        .attributes
        .iter()
        .filter(|(k, _)| {
            all_user
                || user.iter().any(|u| {
                    u == *k
                        || u.strip_suffix(".*")
                            .is_some_and(|p| k.starts_with(&format!("{p}.")))
                })
        })
        .collect();
    if !chosen.is_empty() {
        out.insert(
            "MD5OfMessageAttributes".into(),
            json!(crate::md5::md5_of_attributes(
                chosen.iter().map(|(k, v)| (*k, *v))
            )),
        );
        out.insert(
            "MessageAttributes".into(),
            Value::Object(
                chosen
                    .iter()
                    .map(|(k, v)| ((*k).clone(), attr_json(v)))
                    .collect(),
            ),
        );
    }
    Value::Object(out)
}

/// Runs one operation.
pub async fn execute(
    qs: &Arc<Queues>,
    ctx: &CallContext,
    op: &str,
    input: &Value,
) -> Result<Value, QueueError> {
    match op {
        "CreateQueue" => {
            let name = required(input, "QueueName")?;
            qs.create_queue(
                &ctx.account,
                name,
                string_map(input, "Attributes")?,
                string_map(input, "tags")?,
            )?;
            Ok(json!({"QueueUrl": url(ctx, &ctx.account, name)}))
        }
        "GetQueueUrl" => {
            let name = required(input, "QueueName")?;
            let owner = s(input, "QueueOwnerAWSAccountId").unwrap_or(&ctx.account);
            qs.authorize(&ctx.account, owner, name)?;
            Ok(json!({"QueueUrl": url(ctx, owner, name)}))
        }
        "ListQueues" => {
            let prefix = s(input, "QueueNamePrefix").unwrap_or("");
            let names = qs.list_queues(&ctx.account, prefix);
            let max = int(input, "MaxResults")?;
            if let Some(m) = max
                && !(1..=1000).contains(&m)
            {
                return Err(QueueError::InvalidParameterValue(format!(
                    "Value {m} for parameter MaxResults is invalid. Reason: MaxResults must be an integer between 1 and 1000."
                )));
            }
            let after = s(input, "NextToken").map(|t| {
                String::from_utf8(
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(t)
                        .unwrap_or_default(),
                )
                .unwrap_or_default()
            });
            let rest: Vec<&String> = names
                .iter()
                .filter(|n| after.as_ref().is_none_or(|a| n.as_str() > a.as_str()))
                .collect();
            let limit = max.map_or(1000, |m| m as usize);
            let page: Vec<&String> = rest.iter().take(limit).copied().collect();
            let mut out = Map::new();
            if !page.is_empty() {
                out.insert(
                    "QueueUrls".into(),
                    json!(
                        page.iter()
                            .map(|n| url(ctx, &ctx.account, n))
                            .collect::<Vec<_>>()
                    ),
                );
            }
            if max.is_some() && rest.len() > page.len() {
                let last = page.last().map(|s| s.as_str()).unwrap_or("");
                out.insert(
                    "NextToken".into(),
                    json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)),
                );
            }
            Ok(Value::Object(out))
        }
        "GetQueueAttributes" => {
            let (owner, name) = target(qs, ctx, input)?;
            let names = string_list(input, "AttributeNames");
            let attrs = qs.get_attributes(&owner, &name, &names)?;
            if attrs.is_empty() {
                return Ok(json!({}));
            }
            Ok(json!({"Attributes": attrs}))
        }
        "SetQueueAttributes" => {
            let (owner, name) = target(qs, ctx, input)?;
            qs.set_attributes(&owner, &name, string_map(input, "Attributes")?)?;
            Ok(json!({}))
        }
        "DeleteQueue" => {
            let (owner, name) = target(qs, ctx, input)?;
            qs.delete_queue(&owner, &name).await?;
            Ok(json!({}))
        }
        "PurgeQueue" => {
            let (owner, name) = target(qs, ctx, input)?;
            qs.purge(&owner, &name).await?;
            Ok(json!({}))
        }
        "TagQueue" => {
            let (owner, name) = target(qs, ctx, input)?;
            qs.retag(&owner, &name, string_map(input, "Tags")?, &[])?;
            Ok(json!({}))
        }
        "UntagQueue" => {
            let (owner, name) = target(qs, ctx, input)?;
            qs.retag(
                &owner,
                &name,
                BTreeMap::new(),
                &string_list(input, "TagKeys"),
            )?;
            Ok(json!({}))
        }
        "ListQueueTags" => {
            let (owner, name) = target(qs, ctx, input)?;
            let tags = qs.tags(&owner, &name)?;
            if tags.is_empty() {
                return Ok(json!({}));
            }
            Ok(json!({"Tags": tags}))
        }
        "ListDeadLetterSourceQueues" => {
            let (owner, name) = target(qs, ctx, input)?;
            let names = qs.dead_letter_sources(&owner, &name)?;
            Ok(json!({"queueUrls": names.iter().map(|n| url(ctx, &owner, n)).collect::<Vec<_>>()}))
        }
        "SendMessage" => {
            let (owner, name) = target(qs, ctx, input)?;
            let one = send_input(input)?;
            let mut r = qs
                .send(&owner, &name, &ctx.access_key_id, vec![one])
                .await?;
            let out = r.pop().ok_or(QueueError::Internal)??;
            Ok(send_json(&out, Map::new()))
        }
        "SendMessageBatch" => {
            let (owner, name) = target(qs, ctx, input)?;
            let entries = batch_entries(input, "SendMessageBatchRequestEntry")?;
            let mut inputs = Vec::new();
            let mut slots: Vec<Result<usize, QueueError>> = Vec::new();
            let mut total = 0usize;
            for e in entries {
                total += s(e, "MessageBody").map_or(0, str::len);
                match send_input(e) {
                    Ok(i) => {
                        slots.push(Ok(inputs.len()));
                        inputs.push(i);
                    }
                    Err(err) => slots.push(Err(err)),
                }
            }
            let max = crate::model::MAX_MESSAGE_SIZE as usize;
            if total > max {
                return Err(QueueError::BatchRequestTooLong(max));
            }
            let results = qs.send(&owner, &name, &ctx.access_key_id, inputs).await?;
            let mut ok = Vec::new();
            let mut failed = Vec::new();
            for (e, slot) in entries.iter().zip(slots) {
                let id = s(e, "Id").unwrap_or("");
                let r = slot.and_then(|i| results[i].clone());
                match r {
                    Ok(out) => {
                        let mut m = Map::new();
                        m.insert("Id".into(), json!(id));
                        ok.push(send_json(&out, m));
                    }
                    Err(err) => failed.push(batch_error(id, &err)),
                }
            }
            Ok(json!({"Successful": ok, "Failed": failed}))
        }
        "ReceiveMessage" => {
            let (owner, name) = target(qs, ctx, input)?;
            let max = int(input, "MaxNumberOfMessages")?.unwrap_or(1);
            if !(1..=10).contains(&max) {
                return Err(QueueError::InvalidParameterValue(format!(
                    "Value {max} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided."
                )));
            }
            let vis = int(input, "VisibilityTimeout")?;
            if let Some(v) = vis
                && !(0..=43_200).contains(&v)
            {
                return Err(QueueError::InvalidParameterValue(format!(
                    "Value {v} for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 and <= 43200, if provided."
                )));
            }
            let wait = int(input, "WaitTimeSeconds")?;
            if let Some(w) = wait
                && !(0..=20).contains(&w)
            {
                return Err(QueueError::InvalidParameterValue(format!(
                    "Value {w} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided."
                )));
            }
            let got = qs
                .receive(
                    &owner,
                    &name,
                    ReceiveInput {
                        max: max as usize,
                        visibility_timeout: vis.map(|v| v as u32),
                        wait_seconds: wait.map(|w| w as u32),
                        attempt_id: s(input, "ReceiveRequestAttemptId").map(str::to_string),
                    },
                )
                .await?;
            let mut system = string_list(input, "AttributeNames");
            system.extend(string_list(input, "MessageSystemAttributeNames"));
            let user = string_list(input, "MessageAttributeNames");
            if got.is_empty() {
                return Ok(json!({}));
            }
            Ok(
                json!({"Messages": got.iter().map(|d| message_json(d, &system, &user)).collect::<Vec<_>>()}),
            )
        }
        "DeleteMessage" => {
            let (owner, name) = target(qs, ctx, input)?;
            qs.delete(&owner, &name, required(input, "ReceiptHandle")?)
                .await?;
            Ok(json!({}))
        }
        "DeleteMessageBatch" => {
            let (owner, name) = target(qs, ctx, input)?;
            let entries = batch_entries(input, "DeleteMessageBatchRequestEntry")?;
            let mut handles = Vec::new();
            let mut slots = Vec::new();
            for e in entries {
                match s(e, "ReceiptHandle") {
                    Some(h) => {
                        slots.push(Ok(handles.len()));
                        handles.push(h);
                    }
                    None => slots.push(Err(QueueError::MissingParameter("ReceiptHandle".into()))),
                }
            }
            let results = qs.delete_batch(&owner, &name, &handles).await?;
            let mut ok = Vec::new();
            let mut failed = Vec::new();
            for (e, slot) in entries.iter().zip(slots) {
                let id = s(e, "Id").unwrap_or("");
                match slot.and_then(|i| results[i].clone()) {
                    Ok(()) => ok.push(json!({"Id": id})),
                    Err(err) => failed.push(batch_error(id, &err)),
                }
            }
            Ok(json!({"Successful": ok, "Failed": failed}))
        }
        "ChangeMessageVisibility" => {
            let (owner, name) = target(qs, ctx, input)?;
            let v = int(input, "VisibilityTimeout")?
                .ok_or_else(|| QueueError::MissingParameter("VisibilityTimeout".into()))?;
            qs.change_visibility(
                &owner,
                &name,
                required(input, "ReceiptHandle")?,
                v.clamp(0, u32::MAX as i64) as u32,
            )?;
            Ok(json!({}))
        }
        "ChangeMessageVisibilityBatch" => {
            let (owner, name) = target(qs, ctx, input)?;
            let entries = batch_entries(input, "ChangeMessageVisibilityBatchRequestEntry")?;
            let mut ok = Vec::new();
            let mut failed = Vec::new();
            for e in entries {
                let id = s(e, "Id").unwrap_or("");
                let r = (|| {
                    let v = int(e, "VisibilityTimeout")?.unwrap_or(0);
                    qs.change_visibility(
                        &owner,
                        &name,
                        required(e, "ReceiptHandle")?,
                        v.clamp(0, u32::MAX as i64) as u32,
                    )
                })();
                match r {
                    Ok(()) => ok.push(json!({"Id": id})),
                    Err(err) => failed.push(batch_error(id, &err)),
                }
            }
            Ok(json!({"Successful": ok, "Failed": failed}))
        }
        "StartMessageMoveTask" => {
            let source = required(input, "SourceArn")?;
            let per_second = int(input, "MaxNumberOfMessagesPerSecond")?;
            let handle = qs.start_move_task(
                &ctx.account,
                source,
                s(input, "DestinationArn"),
                per_second.map(|p| p.clamp(0, i64::from(u32::MAX)) as u32),
            )?;
            Ok(json!({"TaskHandle": handle}))
        }
        "CancelMessageMoveTask" => {
            let moved = qs.cancel_move_task(&ctx.account, required(input, "TaskHandle")?)?;
            Ok(json!({"ApproximateNumberOfMessagesMoved": moved}))
        }
        "ListMessageMoveTasks" => {
            let source = required(input, "SourceArn")?;
            let max = int(input, "MaxResults")?.unwrap_or(1);
            let tasks = qs.list_move_tasks(&ctx.account, source, max.max(1) as usize)?;
            let results: Vec<Value> = tasks
                .iter()
                .map(|t| {
                    let mut m = json!({
                        "Status": t.status,
                        "SourceArn": t.source_arn,
                        "ApproximateNumberOfMessagesMoved": t.moved,
                        "ApproximateNumberOfMessagesToMove": t.to_move,
                        "StartedTimestamp": t.started,
                    });
                    if let Some(d) = &t.destination_arn {
                        m["DestinationArn"] = json!(d);
                    }
                    if let Some(p) = t.max_per_second {
                        m["MaxNumberOfMessagesPerSecond"] = json!(p);
                    }
                    if t.status == "RUNNING" {
                        m["TaskHandle"] = json!(t.handle);
                    }
                    if let Some(f) = &t.failure {
                        m["FailureReason"] = json!(f);
                    }
                    m
                })
                .collect();
            Ok(json!({"Results": results}))
        }
        "AddPermission" | "RemovePermission" => Err(QueueError::UnsupportedOperation(format!(
            "{op} is not supported by Updraft; set the Policy attribute instead."
        ))),
        other => Err(QueueError::InvalidAction(other.to_string())),
    }
}
