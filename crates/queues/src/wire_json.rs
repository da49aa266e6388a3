//! SQS's JSON protocol (`application/x-amz-json-1.0`, `X-Amz-Target: AmazonSQS.<Operation>`),
//! what current boto3, the aws CLI and SDK v3 send. Errors carry `__type`
//! (`com.amazonaws.sqs#<Shape>`) and, because SQS is "query compatible", the legacy code in
//! `x-amzn-query-error: <Code>;<Sender|Receiver>`, which botocore turns back into the modelled
//! exception.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::{CallContext, QueueError, Queues, WireResponse, ops};

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// Serves one JSON-protocol request; `target` is the `X-Amz-Target` header.
pub async fn handle(
    qs: &Arc<Queues>,
    ctx: &CallContext,
    target: &str,
    body: &[u8],
) -> WireResponse {
    let Some(op) = target.strip_prefix("AmazonSQS.") else {
        return error(&QueueError::InvalidAction(target.to_string()));
    };
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return error(&QueueError::InvalidParameterValue(
                    "The request body is not a valid JSON object.".into(),
                ));
            }
        }
    };
    match ops::execute(qs, ctx, op, &input).await {
        Ok(v) => WireResponse {
            status: 200,
            headers: vec![("content-type", CONTENT_TYPE.into())],
            body: serde_json::to_vec(&v).unwrap_or_default(),
        },
        Err(e) => error(&e),
    }
}

/// The JSON protocol's error answer.
pub fn error(e: &QueueError) -> WireResponse {
    let w = e.wire();
    WireResponse {
        status: w.status,
        headers: vec![
            ("content-type", CONTENT_TYPE.into()),
            (
                "x-amzn-query-error",
                format!("{};{}", w.query_code, w.fault),
            ),
        ],
        body: serde_json::to_vec(&json!({
            "__type": format!("com.amazonaws.sqs#{}", w.shape),
            "message": e.to_string(),
        }))
        .unwrap_or_default(),
    }
}
