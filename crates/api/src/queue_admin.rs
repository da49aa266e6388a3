//! Operators' read-only view of the caller's queues (`updraft queue ls`, `updraft queue peek`):
//! `GET /updraft/v1/queues` lists them with their counts, `GET /updraft/v1/queues/{name}/messages`
//! shows messages without receiving them (no visibility or receive-count change).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, Incoming, json};

/// Most messages one peek shows.
pub const MAX_PEEK: usize = 100;

fn queues(state: &AppState) -> ApiResult<&Arc<updraft_queues::Queues>> {
    state
        .queues
        .get()
        .ok_or_else(|| ApiError::service("the queue service is not running"))
}

fn no_such_queue(name: &str) -> ApiError {
    ApiError::not_found(format!("Queue not found: {name}"))
}

/// `GET /updraft/v1/queues`.
pub fn list(state: &AppState, caller: &Caller) -> ApiResult<Response> {
    let qs = queues(state)?;
    let wanted = [
        "QueueArn",
        "FifoQueue",
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    .map(String::from);
    let mut out = Vec::new();
    for name in qs.list_queues(&caller.account_id, "") {
        // A queue deleted between the listing and this read is simply left out.
        let Ok(a) = qs.get_attributes(&caller.account_id, &name, &wanted) else {
            continue;
        };
        let n = |k: &str| a.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        out.push(json!({
            "Name": name,
            "Arn": a.get("QueueArn"),
            "Fifo": a.get("FifoQueue").is_some_and(|v| v == "true"),
            "Visible": n("ApproximateNumberOfMessages"),
            "InFlight": n("ApproximateNumberOfMessagesNotVisible"),
            "Delayed": n("ApproximateNumberOfMessagesDelayed"),
        }));
    }
    Ok(json(StatusCode::OK, json!({ "Queues": out })))
}

/// `GET /updraft/v1/queues/{name}/messages?max=N`.
pub fn peek(state: &AppState, caller: &Caller, req: &Incoming, name: &str) -> ApiResult<Response> {
    let qs = queues(state)?;
    let max = match req.param("max") {
        None => 10,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PEEK).contains(n))
            .ok_or_else(|| ApiError::invalid(format!("max must be between 1 and {MAX_PEEK}")))?,
    };
    let got = qs
        .peek(&caller.account_id, name, max)
        .map_err(|_| no_such_queue(name))?;
    let messages: Vec<Value> = got
        .iter()
        .map(|(m, state)| {
            let mut v = json!({
                "MessageId": m.doc.id,
                "State": state,
                "Body": m.doc.body,
                "SentTimestamp": m.doc.sent,
                "ReceiveCount": m.state.receive_count,
                "MessageAttributes": m.doc.attributes.keys().collect::<Vec<_>>(),
            });
            if let Some(g) = &m.doc.group_id {
                v["MessageGroupId"] = json!(g);
            }
            v
        })
        .collect();
    Ok(json(StatusCode::OK, json!({ "Messages": messages })))
}
