//! What a finished asynchronous invocation leaves behind: Lambda's destination record and the
//! dead-letter message attributes.

use serde_json::{Value, json};
use time::macros::format_description;

use crate::work::Claimed;

/// Why a record is sent (`requestContext.condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Success,
    RetriesExhausted,
    EventAgeExceeded,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "Success",
            Condition::RetriesExhausted => "RetriesExhausted",
            Condition::EventAgeExceeded => "EventAgeExceeded",
        }
    }

    /// The `detail-type` of the record on an event bus.
    pub fn detail_type(self) -> &'static str {
        match self {
            Condition::Success => "Lambda Function Invocation Result - Success",
            _ => "Lambda Function Invocation Result - Failure",
        }
    }
}

/// The last response of the function, for `responseContext` and `responsePayload`.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub executed_version: Option<String>,
    pub function_error: Option<String>,
    pub payload: bytes::Bytes,
}

fn as_json(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// `2019-11-14T18:16:05.568Z`: always three digits of milliseconds, as Lambda writes them.
fn timestamp(t: time::OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_default()
}

/// Lambda's invocation record for a destination.
pub fn destination_record(
    item: &Claimed,
    condition: Condition,
    response: Option<&Response>,
) -> Value {
    let timestamp = timestamp(time::OffsetDateTime::now_utc());
    let mut record = json!({
        "version": "1.0",
        "timestamp": timestamp,
        "requestContext": {
            "requestId": item.request_id,
            "functionArn": item.target.qualified_function_arn().unwrap_or_default(),
            "condition": condition.as_str(),
            "approximateInvokeCount": item.attempt,
        },
        "requestPayload": as_json(&item.payload),
    });
    if let Some(r) = response {
        let mut ctx = json!({ "statusCode": r.status });
        if let Some(v) = &r.executed_version {
            ctx["executedVersion"] = json!(v);
        }
        if let Some(fe) = &r.function_error {
            ctx["functionError"] = json!(fe);
        }
        record["responseContext"] = ctx;
        record["responsePayload"] = as_json(&r.payload);
    }
    record
}

/// The message attributes Lambda puts on a dead-letter message.
pub fn dead_letter_attributes(
    item: &Claimed,
    error_code: &str,
    error_message: &str,
) -> Vec<(String, String)> {
    // Lambda keeps the first kilobyte of the message.
    let mut msg = error_message.to_string();
    if msg.len() > 1024 {
        let mut cut = 1024;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    vec![
        ("RequestID".to_string(), item.request_id.clone()),
        ("ErrorCode".to_string(), error_code.to_string()),
        ("ErrorMessage".to_string(), msg),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_three_digits_of_milliseconds() {
        let t = time::macros::datetime!(2026-12-07 15:09:55.990 UTC);
        assert_eq!(timestamp(t), "2026-12-07T15:09:55.990Z");
        let t = time::macros::datetime!(2019-11-14 18:16:05.000_9 UTC);
        assert_eq!(timestamp(t), "2019-11-14T18:16:05.000Z");
    }
}
