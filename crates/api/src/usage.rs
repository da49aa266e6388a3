//! `GET /updraft/v1/usage?since&until&by&account`: the usage report behind `updraft usage`;
//! `GET /metrics`: the Prometheus text, for the root account only (a scraper without SigV4 uses
//! `--metrics-listen`).
//! The root account sees every account (or one, with `account=`); any other account sees only
//! its own usage, whatever it asks for.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use updraft_observe::{GroupBy, ObserveError, UsageQuery, report};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, blocking};
use crate::{AppState, Incoming};

/// Default window: the current month so far.
fn query_of(state: &AppState, caller: &Caller, req: &Incoming) -> ApiResult<UsageQuery> {
    let bad = |e: ObserveError| ApiError::invalid(e.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let until = match req.param("until") {
        Some(s) => report::parse_time(s).map_err(bad)?,
        None => now + 1,
    };
    let since = match req.param("since") {
        Some(s) => report::parse_time(s).map_err(bad)?,
        None => report::month_start_ms(now),
    };
    let by = GroupBy::parse(req.param("by").unwrap_or("function")).map_err(bad)?;
    let root = caller.account_id == state.accounts.root_account_id();
    let account = if root {
        req.param("account").map(str::to_string)
    } else {
        Some(caller.account_id.clone())
    };
    Ok(UsageQuery {
        since_ms: since,
        until_ms: until,
        by,
        account,
    })
}

pub async fn usage(state: &Arc<AppState>, caller: &Caller, req: &Incoming) -> Response {
    match answer(state, caller, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn answer(state: &Arc<AppState>, caller: &Caller, req: &Incoming) -> ApiResult<Response> {
    let Some(usage) = state.usage.get().cloned() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "Metering is off on this node (--metering off)",
        ));
    };
    let q = query_of(state, caller, req)?;
    let report = blocking(move || {
        usage.report(&q).map_err(|e| match e {
            ObserveError::Invalid(m) => ApiError::invalid(m),
            other => ApiError::service(other),
        })
    })
    .await?;
    Ok(axum::Json(report).into_response())
}

pub async fn metrics(state: &Arc<AppState>, caller: &Caller) -> Response {
    if caller.account_id != state.accounts.root_account_id() {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "Only the root account may read the node's metrics",
        )
        .into_response();
    }
    let Some(m) = state.metrics.get().cloned() else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            "Metering is off on this node (--metering off)",
        )
        .into_response();
    };
    match blocking(move || Ok(m.render())).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                updraft_observe::metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
