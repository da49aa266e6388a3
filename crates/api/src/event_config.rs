//! `Put/Get/Update/Delete/ListFunctionEventInvokeConfig(s)` on the wire
//! (`/2019-09-25/functions/{name}/event-invoke-config[/list]`).
//!
//! The configurations are kept by the event path (`updraft_events::Configs`), not by the control
//! plane; the control plane is asked only whether the function, version or alias exists and, for
//! a function destination, whether the caller may invoke it.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_control::ErrorKind;
use updraft_events::{DestinationArn, EventInvokeConfig};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, blocking};
use crate::{AppState, Incoming, empty, json};

/// The model's pattern of `DestinationArn`, checked by hand (no regex crate at the front door).
fn destination_pattern_ok(arn: &str) -> bool {
    if arn.is_empty() {
        return true;
    }
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[1][3..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !parts[2].is_empty()
        && parts[2]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && (parts[4].is_empty()
            || (parts[4].len() == 12 && parts[4].bytes().all(|b| b.is_ascii_digit())))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DestinationWire {
    destination: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DestinationConfigWire {
    on_success: Option<DestinationWire>,
    on_failure: Option<DestinationWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigWire {
    maximum_retry_attempts: Option<i64>,
    maximum_event_age_in_seconds: Option<i64>,
    destination_config: Option<DestinationConfigWire>,
}

/// Routes `…/event-invoke-config` (`rest` is empty) and `…/event-invoke-config/list`.
pub async fn handle(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    function: &str,
    rest: &[&str],
) -> ApiResult<Response> {
    match (&req.method, rest) {
        (&Method::GET, ["list"]) => list(state, caller, req, function),
        (&Method::PUT, []) => put(state, caller, req, function, false).await,
        (&Method::POST, []) => put(state, caller, req, function, true).await,
        (&Method::GET, []) => get(state, caller, req, function),
        (&Method::DELETE, []) => delete(state, caller, req, function).await,
        _ => Err(ApiError::unknown_operation()),
    }
}

fn configs(state: &AppState) -> ApiResult<&updraft_events::Configs> {
    state
        .events
        .get()
        .map(|e| e.events.configs())
        .ok_or_else(|| ApiError::service("the event path is not started"))
}

/// A function reference resolved to (name, qualifier or `None` for `$LATEST`), checked to exist.
struct Target {
    name: String,
    qualifier: Option<String>,
    /// `arn:aws:lambda:<region>:<account>:function:<name>`.
    function_arn: String,
}

impl Target {
    fn qualified_arn(&self) -> String {
        format!(
            "{}:{}",
            self.function_arn,
            self.qualifier.as_deref().unwrap_or("$LATEST")
        )
    }
}

/// Parses `FunctionName` and `Qualifier`; `must_exist` asks the control plane whether the
/// function (and its version or alias) exists.
fn target(
    state: &AppState,
    caller: &Caller,
    req: &Incoming,
    function: &str,
    must_exist: bool,
) -> ApiResult<Target> {
    let r = updraft_control::arn::parse_function_ref(function)?;
    let qualifier = req
        .param("Qualifier")
        .filter(|q| !q.is_empty())
        .map(str::to_string)
        .or(r.qualifier.clone());
    if must_exist {
        state
            .control
            .get_configuration(&caller.account_id, function, qualifier.as_deref())
            .map_err(|e| match e.kind {
                ErrorKind::NotFound => ApiError::not_found("The function doesn't exist."),
                _ => ApiError::from(e),
            })?;
    }
    Ok(Target {
        function_arn: format!(
            "arn:aws:lambda:{}:{}:function:{}",
            state.region, caller.account_id, r.name
        ),
        name: r.name,
        qualifier: qualifier.filter(|q| q != "$LATEST"),
    })
}

fn no_config(t: &Target) -> ApiError {
    ApiError::not_found(format!(
        "The function {} doesn't have an EventInvokeConfig",
        t.qualified_arn()
    ))
}

fn render(function_arn: &str, qualifier: &str, c: &EventInvokeConfig) -> Value {
    let dest = |d: &Option<String>| match d {
        Some(arn) => json!({ "Destination": arn }),
        None => json!({}),
    };
    let mut v = json!({
        "LastModified": c.last_modified,
        "FunctionArn": format!("{function_arn}:{qualifier}"),
        "DestinationConfig": {
            "OnSuccess": dest(&c.on_success),
            "OnFailure": dest(&c.on_failure),
        },
    });
    if let Some(n) = c.max_retries {
        v["MaximumRetryAttempts"] = json!(n);
    }
    if let Some(n) = c.max_age_s {
        v["MaximumEventAgeInSeconds"] = json!(n);
    }
    v
}

fn range_error(field: &str, value: i64, min: i64, max: i64) -> Option<ApiError> {
    let constraint = if value < min {
        format!("Member must have value greater than or equal to {min}")
    } else if value > max {
        format!("Member must have value less than or equal to {max}")
    } else {
        return None;
    };
    Some(ApiError::new(
        StatusCode::BAD_REQUEST,
        "ValidationException",
        format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ),
    ))
}

/// Checks one destination: Lambda's pattern, a kind of resource Lambda can deliver to, and for a
/// function that it exists, is not the function itself, and may be invoked by the caller.
fn check_destination(
    state: &AppState,
    caller: &Caller,
    t: &Target,
    field: &str,
    arn: &str,
) -> ApiResult<bool> {
    if !destination_pattern_ok(arn) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!(
                "1 validation error detected: Value '{arn}' at 'destinationConfig.{field}.destination' failed to satisfy constraint: Member must satisfy regular expression pattern: $|kafka://([^.]([a-zA-Z0-9\\-_.]{{0,248}}))|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:((eusc-)?[a-z]{{2}}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{{1}})?:(\\d{{12}})?:(.*)"
            ),
        ));
    }
    let invalid = || ApiError::invalid(format!("The destination ARN {arn} is invalid."));
    match DestinationArn::parse(arn) {
        None => Ok(false),
        Some(DestinationArn::Function {
            account_id,
            function_arn,
            ..
        }) => {
            if account_id == caller.account_id && function_arn == t.function_arn {
                return Err(ApiError::invalid(
                    "You can't specify the function as a destination for itself.",
                ));
            }
            // Resolving as the caller applies the destination's resource policy when it belongs
            // to another account.
            state
                .control
                .resolve(&caller.account_id, arn, None, 0.0)
                .map_err(|_| invalid())?;
            Ok(true)
        }
        Some(DestinationArn::EventBus { .. }) => {
            let available = state.events.get().is_some_and(|e| e.event_bus.is_some());
            if !available {
                return Err(ApiError::invalid(format!(
                    "The destination ARN {arn} is invalid: this Updraft node runs no event bus service."
                )));
            }
            Ok(true)
        }
        // Queues and topics are accepted; they are delivered once a queue service exists.
        Some(DestinationArn::Queue { .. }) => Ok(true),
    }
}

async fn put(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    function: &str,
    merge: bool,
) -> ApiResult<Response> {
    let input: ConfigWire = crate::wire::parse_body(&req.body)?;
    if input.maximum_retry_attempts.is_none()
        && input.maximum_event_age_in_seconds.is_none()
        && input.destination_config.is_none()
    {
        return Err(ApiError::invalid(
            "You must specify at least one of error handling or destination setting.",
        ));
    }
    if let Some(e) = input
        .maximum_retry_attempts
        .and_then(|n| range_error("maximumRetryAttempts", n, 0, 2))
    {
        return Err(e);
    }
    if let Some(e) = input
        .maximum_event_age_in_seconds
        .and_then(|n| range_error("maximumEventAgeInSeconds", n, 60, 21_600))
    {
        return Err(e);
    }
    let t = target(state, caller, req, function, true)?;
    let current = configs(state)?.get(&caller.account_id, &t.name, t.qualifier.as_deref());
    if merge && current.is_none() {
        return Err(no_config(&t));
    }
    // `Some(None)`: the destination is given and empty (removed); `None`: not given.
    let (on_success, on_failure) = match &input.destination_config {
        None => (None, None),
        Some(d) => {
            let pick = |w: &Option<DestinationWire>| {
                w.as_ref()
                    .map(|w| w.destination.clone().filter(|s| !s.is_empty()))
            };
            (pick(&d.on_success), pick(&d.on_failure))
        }
    };
    let mut valid = true;
    for (field, arn) in [("onSuccess", &on_success), ("onFailure", &on_failure)] {
        if let Some(Some(arn)) = arn {
            valid &= check_destination(state, caller, &t, field, arn)?;
        }
    }
    if !valid {
        let part = |kind: &str, d: &Option<Option<String>>| match d {
            Some(Some(arn)) => format!("{kind}(destination={arn})"),
            _ => "null".to_string(),
        };
        return Err(ApiError::invalid(format!(
            "The provided destination config DestinationConfig(onSuccess={}, onFailure={}) is invalid.",
            part("OnSuccess", &on_success),
            part("OnFailure", &on_failure)
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as f64 / 1000.0)
        .unwrap_or(0.0);
    // Put replaces the whole configuration; Update keeps what it does not name.
    let base = current.filter(|_| merge).unwrap_or(EventInvokeConfig {
        max_retries: None,
        max_age_s: None,
        on_success: None,
        on_failure: None,
        last_modified: now,
    });
    let cfg = EventInvokeConfig {
        max_retries: input
            .maximum_retry_attempts
            .map(|n| n as u32)
            .or(base.max_retries),
        max_age_s: input
            .maximum_event_age_in_seconds
            .map(|n| n as u64)
            .or(base.max_age_s),
        on_success: on_success.unwrap_or(base.on_success),
        on_failure: on_failure.unwrap_or(base.on_failure),
        last_modified: now,
    };
    let (s, account, name, q, c) = (
        state.clone(),
        caller.account_id.clone(),
        t.name.clone(),
        t.qualifier.clone(),
        cfg.clone(),
    );
    blocking(move || {
        configs(&s)?
            .put(&account, &name, q.as_deref(), c)
            .map_err(ApiError::service)
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        render(
            &t.function_arn,
            t.qualifier.as_deref().unwrap_or("$LATEST"),
            &cfg,
        ),
    ))
}

fn get(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    function: &str,
) -> ApiResult<Response> {
    let t = target(state, caller, req, function, false)?;
    let cfg = configs(state)?
        .get(&caller.account_id, &t.name, t.qualifier.as_deref())
        .ok_or_else(|| no_config(&t))?;
    Ok(json(
        StatusCode::OK,
        render(
            &t.function_arn,
            t.qualifier.as_deref().unwrap_or("$LATEST"),
            &cfg,
        ),
    ))
}

async fn delete(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    function: &str,
) -> ApiResult<Response> {
    let t = target(state, caller, req, function, false)?;
    let (s, account, name, q) = (
        state.clone(),
        caller.account_id.clone(),
        t.name.clone(),
        t.qualifier.clone(),
    );
    let removed = blocking(move || {
        configs(&s)?
            .delete(&account, &name, q.as_deref())
            .map_err(ApiError::service)
    })
    .await?;
    if !removed {
        return Err(no_config(&t));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

fn list(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    function: &str,
) -> ApiResult<Response> {
    let max = match req.param("MaxItems") {
        None => 50,
        Some(m) => {
            let n: i64 = m
                .parse()
                .map_err(|_| ApiError::invalid(format!("Invalid MaxItems value: {m}")))?;
            if let Some(e) = range_error("maxItems", n, 1, 50) {
                return Err(e);
            }
            n as usize
        }
    };
    let t = target(state, caller, req, function, true)?;
    let all = configs(state)?.list(&caller.account_id, &t.name);
    let start = match req.param("Marker") {
        None => 0,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|&i| i <= all.len())
            .ok_or_else(|| ApiError::invalid(format!("Invalid marker: {m}")))?,
    };
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(max)
        .map(|(q, c)| render(&t.function_arn, q, c))
        .collect();
    let mut v = json!({ "FunctionEventInvokeConfigs": page });
    if start + max < all.len() {
        v["NextMarker"] = json!((start + max).to_string());
    }
    Ok(json(StatusCode::OK, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_pattern() {
        for ok in [
            "",
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            "arn:aws:sqs:us-east-1:123456789012:q",
            "arn:aws-cn:events:cn-north-1:123456789012:event-bus/default",
            "arn:aws:dynamodb:us-east-1:123456789012:table/t",
        ] {
            assert!(destination_pattern_ok(ok), "{ok}");
        }
        for bad in [
            "not-an-arn",
            "arn:gcp:sqs:x:123456789012:q",
            "arn:aws:sqs:us-east-1:12:q",
        ] {
            assert!(!destination_pattern_ok(bad), "{bad}");
        }
    }
}
