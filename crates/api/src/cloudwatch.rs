//! Routing glue for the CloudWatch metrics subset (`crates/observe`): which requests are
//! CloudWatch's (a `GraniteServiceVersion20100801.*` target, the Smithy RPC v2 CBOR path, or
//! anything signed for `monitoring`), and the answer's HTTP form. The protocols themselves live
//! in `updraft_observe::cloudwatch::wire`.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use updraft_observe::cloudwatch::wire::{self, WireResponse};

use crate::auth::Caller;
use crate::{AppState, Incoming};

/// Whether a request addresses CloudWatch.
pub fn is_cloudwatch(service: &str, raw_path: &str, headers: &axum::http::HeaderMap) -> bool {
    service == "monitoring"
        || raw_path.starts_with(wire::CBOR_PATH_PREFIX)
        || headers
            .get("x-amz-target")
            .and_then(|t| t.to_str().ok())
            .is_some_and(|t| t.starts_with(wire::TARGET_PREFIX))
}

pub async fn handle(
    state: &Arc<AppState>,
    caller: &Caller,
    incoming: Incoming,
    raw_path: &str,
    raw_query: &str,
) -> Response {
    let Some(cw) = state.cloudwatch.get().cloned() else {
        let e = updraft_observe::cloudwatch::CwError::unknown_operation("(metering is off)");
        return into_response(wire::query_error(&e, &incoming.request_id));
    };
    let account = caller.account_id.clone();
    let target = incoming.header("x-amz-target").map(str::to_string);
    let cbor_op = raw_path
        .strip_prefix(wire::CBOR_PATH_PREFIX)
        .map(str::to_string);
    let form = if target.is_none() && cbor_op.is_none() {
        let mut f = crate::parse_query(raw_query);
        f.extend(crate::parse_query(
            &String::from_utf8_lossy(&incoming.body).replace('+', " "),
        ));
        Some(f)
    } else {
        None
    };
    let request_id = incoming.request_id.clone();
    let body = incoming.body.clone();
    // PutMetricData commits to SQLite before it answers: off the async workers.
    let answer = tokio::task::spawn_blocking(move || match (cbor_op, target, form) {
        (Some(op), _, _) => wire::handle_cbor(&cw, &account, &op, &body),
        (None, Some(t), _) => wire::handle_json(&cw, &account, &t, &body),
        (None, None, f) => wire::handle_query(&cw, &account, &f.unwrap_or_default(), &request_id),
    })
    .await;
    match answer {
        Ok(r) => into_response(r),
        Err(e) => {
            tracing::error!("cloudwatch handler: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn into_response(r: WireResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, r.body).into_response();
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static(r.content_type));
    for (k, v) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    resp
}
