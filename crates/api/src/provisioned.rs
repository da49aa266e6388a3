//! Provisioned concurrency on the wire (`/2019-09-30/functions/{name}/provisioned-concurrency`),
//! and [`sync`], which hands the control plane's configurations to the engine.
//!
//! The control plane keeps what was requested; the engine keeps the environments. A
//! configuration's `Status` comes from the engine's counts for the version it provisions:
//! `READY` once as many environments as requested are initialised, `FAILED` (with the reason)
//! while starting them fails, `IN_PROGRESS` otherwise. When two aliases provision the same
//! version, each shows the version's counts capped at its own request.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_control::provisioned::ProvisionedView;
use updraft_engine::ProvisionedStats;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, blocking};
use crate::{AppState, Incoming, empty, json};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutWire {
    provisioned_concurrent_executions: Option<i64>,
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "ProvisionedConcurrencyConfigNotFoundException",
        "No Provisioned Concurrency Config found for this function",
    )
}

/// A configuration in Lambda's shape; `with_arn` adds `FunctionArn` (list items carry it).
fn render(view: &ProvisionedView, stats: &[ProvisionedStats], with_arn: bool) -> Value {
    let requested = view.config.requested;
    let pool = stats.iter().find(|s| s.version == view.version);
    let allocated = pool.map_or(0, |s| s.allocated.min(requested));
    let available = pool.map_or(0, |s| s.available.min(requested));
    let failure = pool.and_then(|s| s.failure.clone());
    let mut v = json!({
        "RequestedProvisionedConcurrentExecutions": requested,
        "AvailableProvisionedConcurrentExecutions": available,
        "AllocatedProvisionedConcurrentExecutions": allocated,
        "LastModified": view.config.last_modified,
    });
    if allocated >= requested {
        v["Status"] = json!("READY");
    } else if let Some(reason) = failure {
        v["Status"] = json!("FAILED");
        v["StatusReason"] = json!(reason);
    } else {
        v["Status"] = json!("IN_PROGRESS");
    }
    if with_arn {
        v["FunctionArn"] = json!(view.function_arn);
    }
    v
}

fn unqualified_arn(state: &AppState, caller: &Caller, view: &ProvisionedView) -> String {
    updraft_control::arn::function_arn(&state.region, &caller.account_id, &view.function_name)
}

/// `PUT …/provisioned-concurrency?Qualifier=`.
pub(crate) async fn put(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    f: &str,
) -> ApiResult<Response> {
    let input: PutWire = crate::wire::parse_body(&req.body)?;
    let n = crate::wire::require(
        input.provisioned_concurrent_executions,
        "provisionedConcurrentExecutions",
    )?;
    let (s, c) = (state.clone(), caller.clone());
    let (f, q) = (f.to_string(), req.param("Qualifier").map(str::to_string));
    let view = blocking(move || {
        Ok(s.control
            .put_provisioned(&c.account_id, &f, q.as_deref(), n)?)
    })
    .await?;
    let stats = state
        .engine
        .provisioned_stats(&unqualified_arn(state, caller, &view));
    Ok(json(StatusCode::ACCEPTED, render(&view, &stats, false)))
}

/// `GET …/provisioned-concurrency?Qualifier=`.
pub(crate) fn get(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    f: &str,
) -> ApiResult<Response> {
    let view = state
        .control
        .get_provisioned(&caller.account_id, f, req.param("Qualifier"))?
        .ok_or_else(not_found)?;
    let stats = state
        .engine
        .provisioned_stats(&unqualified_arn(state, caller, &view));
    Ok(json(StatusCode::OK, render(&view, &stats, false)))
}

/// `DELETE …/provisioned-concurrency?Qualifier=`.
pub(crate) async fn delete(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    f: &str,
) -> ApiResult<Response> {
    let (s, c) = (state.clone(), caller.clone());
    let (f, q) = (f.to_string(), req.param("Qualifier").map(str::to_string));
    blocking(move || {
        Ok(s.control
            .delete_provisioned(&c.account_id, &f, q.as_deref())?)
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `GET …/provisioned-concurrency?List=ALL`.
pub(crate) fn list(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    f: &str,
) -> ApiResult<Response> {
    let max_items = req
        .param("MaxItems")
        .map(|m| {
            m.parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("Invalid MaxItems value: {m}")))
        })
        .transpose()?;
    let page =
        state
            .control
            .list_provisioned(&caller.account_id, f, req.param("Marker"), max_items)?;
    let stats = page
        .items
        .first()
        .map(|v| {
            state
                .engine
                .provisioned_stats(&unqualified_arn(state, caller, v))
        })
        .unwrap_or_default();
    let items: Vec<Value> = page.items.iter().map(|v| render(v, &stats, true)).collect();
    let mut v = json!({ "ProvisionedConcurrencyConfigs": items });
    if let Some(m) = page.next_marker {
        v["NextMarker"] = json!(m);
    }
    Ok(json(StatusCode::OK, v))
}

/// Hands the engine what `function_arn` (unqualified) wants provisioned now: called on start for
/// every such function and after every control-plane change of one.
pub fn sync(state: &AppState, function_arn: &str) {
    let targets = state
        .control
        .provisioned_targets(function_arn)
        .into_iter()
        .map(|t| (state.spec_cache.get(&t.resolved), t.count))
        .collect();
    state.engine.sync_provisioned(function_arn, targets);
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_control::provisioned::ProvisionedConfig;

    fn view(requested: u32) -> ProvisionedView {
        ProvisionedView {
            function_name: "f".into(),
            qualifier: "live".into(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f:live".into(),
            version: "1".into(),
            config: ProvisionedConfig {
                requested,
                last_modified: "2024-01-01T00:00:00.000+0000".into(),
            },
        }
    }

    fn stats(allocated: u32, failure: Option<&str>) -> Vec<ProvisionedStats> {
        vec![ProvisionedStats {
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            version: "1".into(),
            generation: "g".into(),
            requested: 2,
            allocated,
            available: allocated,
            failure: failure.map(str::to_string),
        }]
    }

    #[test]
    fn status_follows_the_engine() {
        let v = render(&view(2), &[], false);
        assert_eq!(v["Status"], "IN_PROGRESS");
        assert_eq!(v["AllocatedProvisionedConcurrentExecutions"], 0);
        assert!(v.get("FunctionArn").is_none());
        let v = render(&view(2), &stats(1, None), true);
        assert_eq!(v["Status"], "IN_PROGRESS");
        assert_eq!(v["FunctionArn"], view(2).function_arn);
        let v = render(&view(2), &stats(2, None), false);
        assert_eq!(v["Status"], "READY");
        assert_eq!(v["AvailableProvisionedConcurrentExecutions"], 2);
        assert_eq!(v["RequestedProvisionedConcurrentExecutions"], 2);
        let v = render(
            &view(2),
            &stats(0, Some("FUNCTION_ERROR_INIT_FAILURE: x")),
            false,
        );
        assert_eq!(v["Status"], "FAILED");
        assert_eq!(v["StatusReason"], "FUNCTION_ERROR_INIT_FAILURE: x");
        // Another alias's share never shows as this one's.
        let v = render(&view(1), &stats(2, None), false);
        assert_eq!(v["AllocatedProvisionedConcurrentExecutions"], 1);
    }
}
