//! Lambda's SQS event record, and the view of it that `FilterCriteria` patterns see.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::QueueMessage;

/// One record of `{"Records": [...]}` in Lambda's shape (message attributes in Lambda's
/// casing: `stringValue`, `binaryValue`, `stringListValues`, `binaryListValues`, `dataType`).
pub fn sqs_record(m: &QueueMessage, source_arn: &str, region: &str) -> Value {
    let attributes: Map<String, Value> = m
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let message_attributes: Map<String, Value> = m
        .message_attributes
        .iter()
        .map(|(k, a)| {
            let mut v = Map::new();
            if let Some(s) = &a.string {
                v.insert("stringValue".into(), json!(s));
            }
            if let Some(b) = &a.binary {
                v.insert(
                    "binaryValue".into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(b)),
                );
            }
            v.insert("stringListValues".into(), json!([]));
            v.insert("binaryListValues".into(), json!([]));
            v.insert("dataType".into(), json!(a.data_type));
            (k.clone(), Value::Object(v))
        })
        .collect();
    let mut r = Map::new();
    r.insert("messageId".into(), json!(m.message_id));
    r.insert("receiptHandle".into(), json!(m.receipt_handle));
    r.insert("body".into(), json!(m.body));
    r.insert("attributes".into(), Value::Object(attributes));
    r.insert(
        "messageAttributes".into(),
        Value::Object(message_attributes),
    );
    if let Some(md5) = &m.md5_of_attributes {
        r.insert("md5OfMessageAttributes".into(), json!(md5));
    }
    r.insert("md5OfBody".into(), json!(m.md5_of_body));
    r.insert("eventSource".into(), json!("aws:sqs"));
    r.insert("eventSourceARN".into(), json!(source_arn));
    r.insert("awsRegion".into(), json!(region));
    Value::Object(r)
}

/// What filter patterns are matched against: the record, its `body` parsed when it is JSON
/// (a plain-text body stays a string, so only patterns on strings can match it).
pub fn filter_view(record: &Value) -> Value {
    let mut v = record.clone();
    if let Some(body) = v.get("body").and_then(Value::as_str)
        && let Ok(parsed) = serde_json::from_str::<Value>(body)
        && parsed.is_object()
    {
        v["body"] = parsed;
    }
    v
}

/// The ids a function reported as failed with `ReportBatchItemFailures`, or `None` when the
/// response is not a valid report (Lambda then treats the whole batch as failed). An empty or
/// missing list, or a `null` response, means every record succeeded.
pub fn batch_item_failures(response: &[u8], batch_ids: &[&str]) -> Option<Vec<String>> {
    let v: Value = match serde_json::from_slice(response) {
        Ok(v) => v,
        // Anything that is not JSON (or nothing at all) reports no failure.
        Err(_) => return Some(Vec::new()),
    };
    let Some(obj) = v.as_object() else {
        return Some(Vec::new());
    };
    let list = match obj.get("batchItemFailures") {
        None | Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return None,
    };
    let mut ids = Vec::with_capacity(list.len());
    for item in list {
        let id = item.get("itemIdentifier").and_then(Value::as_str)?;
        if id.is_empty() || !batch_ids.contains(&id) {
            return None;
        }
        ids.push(id.to_string());
    }
    Some(ids)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::MessageAttr;

    fn message() -> QueueMessage {
        let mut attrs = BTreeMap::new();
        attrs.insert("ApproximateReceiveCount".into(), "1".into());
        let mut ma = BTreeMap::new();
        ma.insert(
            "colour".into(),
            MessageAttr {
                data_type: "String".into(),
                string: Some("blue".into()),
                binary: None,
            },
        );
        ma.insert(
            "raw".into(),
            MessageAttr {
                data_type: "Binary".into(),
                string: None,
                binary: Some(vec![1, 2, 3]),
            },
        );
        QueueMessage {
            message_id: "id-1".into(),
            receipt_handle: "rh".into(),
            body: r#"{"kind":"order","n":3}"#.into(),
            md5_of_body: "m".into(),
            md5_of_attributes: Some("a".into()),
            attributes: attrs,
            message_attributes: ma,
        }
    }

    #[test]
    fn record_shape() {
        let r = sqs_record(
            &message(),
            "arn:aws:sqs:us-east-1:111122223333:q",
            "us-east-1",
        );
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["eventSourceARN"], "arn:aws:sqs:us-east-1:111122223333:q");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
        assert_eq!(r["messageAttributes"]["colour"]["stringValue"], "blue");
        assert_eq!(r["messageAttributes"]["colour"]["dataType"], "String");
        assert_eq!(r["messageAttributes"]["raw"]["binaryValue"], "AQID");
        assert_eq!(r["messageAttributes"]["raw"]["stringListValues"], json!([]));
        assert_eq!(r["body"], r#"{"kind":"order","n":3}"#);
        let v = filter_view(&r);
        assert_eq!(v["body"]["kind"], "order");
        let p = updraft_pattern::Pattern::parse(r#"{"body":{"kind":["order"]}}"#).unwrap();
        assert!(p.matches(&v));
        let p = updraft_pattern::Pattern::parse(r#"{"body":{"kind":["other"]}}"#).unwrap();
        assert!(!p.matches(&v));
    }

    #[test]
    fn failure_reports() {
        let ids = ["a", "b"];
        assert_eq!(batch_item_failures(b"null", &ids), Some(vec![]));
        assert_eq!(batch_item_failures(b"", &ids), Some(vec![]));
        assert_eq!(
            batch_item_failures(br#"{"batchItemFailures":[]}"#, &ids),
            Some(vec![])
        );
        assert_eq!(
            batch_item_failures(br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &ids),
            Some(vec!["b".to_string()])
        );
        assert_eq!(
            batch_item_failures(br#"{"batchItemFailures":[{"itemIdentifier":"z"}]}"#, &ids),
            None
        );
        assert_eq!(
            batch_item_failures(br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, &ids),
            None
        );
        assert_eq!(
            batch_item_failures(br#"{"batchItemFailures":[{}]}"#, &ids),
            None
        );
    }
}
