//! Lambda's event source mapping operations on the wire (`/2015-03-31/event-source-mappings/…`):
//! decode the request, resolve the function, call `updraft_mappings::Mappings`, render
//! `EventSourceMappingConfiguration`.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_mappings::{Mapping, MappingError, MappingInput, MappingUpdate, Mappings};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, blocking};
use crate::{AppState, Incoming, json, wire};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScalingWire {
    maximum_concurrency: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FilterWire {
    pattern: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FilterCriteriaWire {
    filters: Option<Vec<FilterWire>>,
}

/// The request body of Create and Update (Update has no `EventSourceArn`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MappingWire {
    event_source_arn: Option<String>,
    function_name: Option<String>,
    enabled: Option<bool>,
    batch_size: Option<u32>,
    maximum_batching_window_in_seconds: Option<u32>,
    function_response_types: Option<Vec<String>>,
    scaling_config: Option<ScalingWire>,
    filter_criteria: Option<FilterCriteriaWire>,
    /// Parameters of stream and broker sources, refused for a queue.
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

/// Stream and broker parameters Lambda refuses for an SQS source.
const NOT_FOR_QUEUES: &[&str] = &[
    "StartingPosition",
    "StartingPositionTimestamp",
    "ParallelizationFactor",
    "DestinationConfig",
    "MaximumRecordAgeInSeconds",
    "BisectBatchOnFunctionError",
    "MaximumRetryAttempts",
    "TumblingWindowInSeconds",
    "Topics",
    "Queues",
    "SelfManagedEventSource",
    "SelfManagedKafkaEventSourceConfig",
    "AmazonManagedKafkaEventSourceConfig",
    "DocumentDBEventSourceConfig",
    "ProvisionedPollerConfig",
];

impl MappingWire {
    fn refuse_other(&self) -> ApiResult<()> {
        for k in NOT_FOR_QUEUES {
            if self.other.get(*k).is_some_and(|v| !v.is_null()) {
                return Err(ApiError::invalid(format!(
                    "Unsupported {k} parameter for given event source mapping type."
                )));
            }
        }
        Ok(())
    }

    fn filters(&self) -> Option<Vec<String>> {
        self.filter_criteria.as_ref().map(|c| {
            c.filters
                .iter()
                .flatten()
                .filter_map(|f| f.pattern.clone())
                .collect()
        })
    }

    /// `ScalingConfig`: `Some(None)` when given empty (which removes the limit).
    fn concurrency(&self) -> Option<Option<u32>> {
        self.scaling_config.as_ref().map(|s| s.maximum_concurrency)
    }
}

fn service(state: &AppState) -> ApiResult<Arc<Mappings>> {
    state
        .mappings
        .get()
        .cloned()
        .ok_or_else(|| ApiError::service("event source mappings are not running"))
}

fn error(e: MappingError) -> ApiError {
    match e {
        MappingError::Invalid(m) => ApiError::invalid(m),
        MappingError::Validation(m) => {
            ApiError::new(StatusCode::BAD_REQUEST, "ValidationException", m)
        }
        MappingError::NotFound(m) => ApiError::not_found(m),
        MappingError::Conflict(m) => {
            ApiError::new(StatusCode::CONFLICT, "ResourceConflictException", m)
        }
        MappingError::InUse(m) => {
            ApiError::new(StatusCode::BAD_REQUEST, "ResourceInUseException", m)
        }
        e @ (MappingError::Store(_) | MappingError::Document(_)) => ApiError::service(e),
    }
}

/// The (qualified) ARN of `FunctionName` and, when it must exist (in the caller's account), its
/// timeout.
fn function_arn(
    state: &AppState,
    caller: &Caller,
    f: &str,
    must_exist: bool,
) -> ApiResult<(String, u32)> {
    let r = updraft_control::arn::parse_function_ref(f)?;
    if r.account_id
        .as_deref()
        .is_some_and(|a| a != caller.account_id)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "An event source mapping can only be made for a function of the caller's account.",
        ));
    }
    let timeout = if must_exist {
        state
            .control
            .get_configuration(&caller.account_id, &r.name, r.qualifier.as_deref())?
            .timeout
    } else {
        0
    };
    let base = updraft_control::arn::function_arn(&state.region, &caller.account_id, &r.name);
    let arn = match r.qualifier {
        Some(q) => format!("{base}:{q}"),
        None => base,
    };
    Ok((arn, timeout))
}

/// Lambda's `EventSourceMappingConfiguration`.
fn render(region: &str, m: &Mapping) -> Value {
    let mut v = json!({
        "UUID": m.uuid,
        "BatchSize": m.batch_size,
        "MaximumBatchingWindowInSeconds": m.window_seconds,
        "EventSourceArn": m.event_source_arn,
        "FunctionArn": m.function_arn,
        "LastModified": m.last_modified_ms as f64 / 1000.0,
        "LastProcessingResult": m.last_result,
        "State": m.state.as_str(),
        "StateTransitionReason": m.state_reason,
        "FunctionResponseTypes": if m.report_batch_item_failures {
            vec![updraft_mappings::model::REPORT_BATCH_ITEM_FAILURES]
        } else {
            vec![]
        },
        "EventSourceMappingArn": format!(
            "arn:aws:lambda:{region}:{}:event-source-mapping:{}", m.account_id, m.uuid
        ),
    });
    if let Some(c) = m.maximum_concurrency {
        v["ScalingConfig"] = json!({ "MaximumConcurrency": c });
    }
    if !m.filters.is_empty() {
        let filters: Vec<Value> = m.filters.iter().map(|p| json!({ "Pattern": p })).collect();
        v["FilterCriteria"] = json!({ "Filters": filters });
    }
    v
}

/// Routes `event-source-mappings[/UUID]`.
pub async fn handle(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    rest: &[&str],
) -> ApiResult<Response> {
    let svc = service(state)?;
    let region = state.region.clone();
    let account = caller.account_id.clone();
    match (&req.method, rest) {
        (&Method::POST, [] | [""]) => {
            let w: MappingWire = wire::parse_body(&req.body)?;
            w.refuse_other()?;
            let source = wire::require(w.event_source_arn.clone(), "EventSourceArn")?;
            let f = wire::require(w.function_name.clone(), "FunctionName")?;
            let (function_arn, function_timeout) = function_arn(state, caller, &f, true)?;
            let input = MappingInput {
                event_source_arn: source,
                function_arn,
                function_timeout,
                enabled: w.enabled,
                batch_size: w.batch_size,
                window_seconds: w.maximum_batching_window_in_seconds,
                function_response_types: w.function_response_types.clone(),
                maximum_concurrency: w.concurrency(),
                filters: w.filters(),
            };
            let m = blocking(move || svc.create(&account, input).map_err(error)).await?;
            Ok(json(StatusCode::ACCEPTED, render(&region, &m)))
        }
        (&Method::GET, [] | [""]) => {
            let f = req
                .param("FunctionName")
                .map(|f| function_arn(state, caller, f, false).map(|(arn, _)| arn))
                .transpose()?;
            let max = req
                .param("MaxItems")
                .map(|m| {
                    m.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=10_000).contains(n))
                        .ok_or_else(|| ApiError::invalid(format!("Invalid MaxItems value: {m}")))
                })
                .transpose()?;
            let (items, next) = svc.list(
                &account,
                req.param("EventSourceArn"),
                f.as_deref(),
                req.param("Marker"),
                max,
            );
            let mut v = json!({
                "EventSourceMappings": items.iter().map(|m| render(&region, m)).collect::<Vec<_>>(),
            });
            if let Some(n) = next {
                v["NextMarker"] = json!(n);
            }
            Ok(json(StatusCode::OK, v))
        }
        (&Method::GET, [uuid]) => {
            let m = svc.get(&account, uuid).map_err(error)?;
            Ok(json(StatusCode::OK, render(&region, &m)))
        }
        (&Method::PUT, [uuid]) => {
            let w: MappingWire = wire::parse_body(&req.body)?;
            w.refuse_other()?;
            if w.event_source_arn.is_some() {
                return Err(ApiError::invalid(
                    "The event source of a mapping cannot be changed.",
                ));
            }
            let upd = MappingUpdate {
                function: w
                    .function_name
                    .as_deref()
                    .map(|f| function_arn(state, caller, f, true))
                    .transpose()?,
                enabled: w.enabled,
                batch_size: w.batch_size,
                window_seconds: w.maximum_batching_window_in_seconds,
                function_response_types: w.function_response_types.clone(),
                maximum_concurrency: w.concurrency(),
                filters: w.filters(),
            };
            let uuid = uuid.to_string();
            let m = blocking(move || svc.update(&account, &uuid, upd).map_err(error)).await?;
            Ok(json(StatusCode::ACCEPTED, render(&region, &m)))
        }
        (&Method::DELETE, [uuid]) => {
            let uuid = uuid.to_string();
            let m = blocking(move || svc.delete(&account, &uuid).map_err(error)).await?;
            Ok(json(StatusCode::ACCEPTED, render(&region, &m)))
        }
        _ => Err(ApiError::unknown_operation()),
    }
}
