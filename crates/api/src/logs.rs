//! Routing glue for CloudWatch Logs (`X-Amz-Target: Logs_20140328.*`): the service and its
//! wire live in `updraft-logs`; this file only hands it the caller's account, on the blocking
//! pool, since every operation reads or writes files.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Whether a request is addressed to CloudWatch Logs.
pub(crate) fn is_logs(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.starts_with(updraft_logs::wire::TARGET_PREFIX))
}

/// Answers one Logs request of `account`.
pub(crate) async fn handle(
    store: Arc<updraft_logs::LogStore>,
    account: String,
    target: String,
    body: bytes::Bytes,
) -> Response {
    let r = tokio::task::spawn_blocking(move || {
        updraft_logs::wire::handle(&store, &account, &target, &body)
    })
    .await
    .unwrap_or_else(|e| {
        tracing::error!("logs request failed: {e}");
        updraft_logs::wire::WireResponse {
            status: 500,
            error_type: Some("ServiceUnavailableException"),
            body: br#"{"__type":"ServiceUnavailableException","message":"The service cannot complete the request."}"#.to_vec(),
        }
    });
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, r.body).into_response();
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static(updraft_logs::wire::CONTENT_TYPE),
    );
    if let Some(t) = r.error_type {
        h.insert("x-amzn-ErrorType", HeaderValue::from_static(t));
    }
    resp
}
