//! Asynchronous invocation on the wire: `Invoke` with `InvocationType: Event`, the legacy
//! `InvokeAsync`, the function delivery target the dispatcher runs functions through, and the
//! `/updraft/v1/functions/{name}/events` listing behind `updraft events`.
//!
//! An event is answered `202` only after the event path has committed it; if it cannot be
//! stored the caller gets a `5xx` and nothing was queued. The synchronous invoke path is not
//! touched: it never reaches this module.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use updraft_control::{ControlPlane, ErrorKind};
use updraft_engine::{Engine, Invocation, InvokeError};
use updraft_events::{
    BoxFuture, Delivery, DeliveryTarget, EventBusSink, Events, NewWork, Outcome, Target,
};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, blocking};
use crate::invoke::{SpecCache, rand_unit};
use crate::{AppState, Incoming, empty, json};

/// Largest `Invoke` payload with `InvocationType: Event`, as on Lambda.
pub const MAX_EVENT_PAYLOAD: usize = 1024 * 1024;
/// Largest `InvokeAsync` payload, as on Lambda.
pub const MAX_INVOKE_ASYNC_PAYLOAD: usize = 256 * 1024;
/// Items `GET /updraft/v1/functions/{name}/events` lists (the counts cover all of them).
const EVENTS_LISTED: usize = 100;

/// What the front door needs of the event path.
pub struct AsyncInvoke {
    pub events: Arc<Events>,
    /// The event bus service, when the node runs one; without it, event-bus destinations are
    /// refused when configured.
    pub event_bus: Option<Arc<dyn EventBusSink>>,
}

fn too_large(limit: usize, operation: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestTooLargeException",
        format!("Request must be smaller than {limit} bytes for the {operation} operation"),
    )
}

/// Checks and stores one asynchronous invocation; returns once it is durable.
async fn accept(
    state: &AppState,
    caller: &Caller,
    req: Incoming,
    function_name: &str,
    limit: usize,
    operation: &str,
) -> ApiResult<()> {
    if req.body.len() > limit {
        return Err(too_large(limit, operation));
    }
    crate::invoke::check_json_payload(&req.body)?;
    let qualifier = req
        .param("Qualifier")
        .filter(|q| !q.is_empty())
        .map(str::to_string);
    // Resolving checks that the function, version or alias exists and, for another account's
    // function, that its resource policy lets the caller invoke it; the version an alias routes
    // to is picked when the event runs.
    let resolved = state.control.resolve(
        &caller.account_id,
        function_name,
        qualifier.as_deref(),
        rand_unit(),
    )?;
    let qualifier = qualifier.or_else(|| {
        updraft_control::arn::parse_function_ref(function_name)
            .ok()
            .and_then(|r| r.qualifier)
    });
    let Some(ai) = state.events.get() else {
        return Err(ApiError::service("the event path is not started"));
    };
    let work = NewWork {
        target: Target::Function {
            account_id: resolved.account_id.clone(),
            function_arn: resolved.function_arn.clone(),
            qualifier: qualifier.filter(|q| q != "$LATEST"),
        },
        payload: if req.body.is_empty() {
            bytes::Bytes::from_static(b"{}")
        } else {
            req.body
        },
        request_id: req.request_id,
        source: "invoke".into(),
        policy: None,
    };
    // An event that was not stored must not be answered 202: a failed commit (a full disk) is
    // the caller's 500.
    ai.events
        .enqueue(vec![work])
        .await
        .map_err(ApiError::service)?;
    Ok(())
}

/// `POST /2015-03-31/functions/{name}/invocations` with `X-Amz-Invocation-Type: Event`.
pub async fn invoke_event(
    state: &Arc<AppState>,
    caller: &Caller,
    req: Incoming,
    function_name: &str,
) -> ApiResult<Response> {
    accept(
        state,
        caller,
        req,
        function_name,
        MAX_EVENT_PAYLOAD,
        "InvokeFunction",
    )
    .await?;
    Ok(empty(StatusCode::ACCEPTED))
}

/// `POST /2014-11-13/functions/{name}/invoke-async/` (deprecated, still served by Lambda).
pub async fn invoke_async(
    state: &Arc<AppState>,
    caller: &Caller,
    req: Incoming,
    function_name: &str,
) -> ApiResult<Response> {
    accept(
        state,
        caller,
        req,
        function_name,
        MAX_INVOKE_ASYNC_PAYLOAD,
        "InvokeAsync",
    )
    .await?;
    Ok(json(StatusCode::ACCEPTED, json!({ "Status": 202 })))
}

/// `GET /updraft/v1/functions/{name}/events`: the function's pending, in-flight, retrying and
/// failed events (for `updraft events`).
pub async fn function_events(state: &Arc<AppState>, caller: &Caller, req: &Incoming) -> Response {
    let name = req.segments[3].clone();
    let resolved = match state.control.resolve(&caller.account_id, &name, None, 0.0) {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // Another account's function may be invocable by the caller, but its events are its owner's.
    if resolved.account_id != caller.account_id {
        return ApiError::not_found(format!("Function not found: {}", resolved.function_arn))
            .into_response();
    }
    let Some(ai) = state.events.get() else {
        return ApiError::service("the event path is not started").into_response();
    };
    let events = ai.events.clone();
    let arn = resolved.function_arn.clone();
    let summary = blocking(move || {
        events
            .summary(&arn, EVENTS_LISTED)
            .map_err(ApiError::service)
    })
    .await;
    match summary {
        Ok(s) => json(
            StatusCode::OK,
            json!({
                "FunctionArn": resolved.function_arn,
                "Pending": s.pending,
                "InFlight": s.in_flight,
                "Retrying": s.retrying,
                "Failed": s.failed,
                "Events": s.items,
            }),
        ),
        Err(e) => e.into_response(),
    }
}

/// The `Delivery::source` of an event source mapping's batches.
pub const EVENT_SOURCE_MAPPING: &str = "event-source-mapping";

/// Runs functions for the dispatcher: resolves the target as its owner would invoke it and calls
/// the engine's one invoke entry point, which counts it against the same account, reserved and
/// provisioned concurrency as synchronous calls.
#[derive(Clone)]
pub struct FunctionTarget {
    control: Arc<ControlPlane>,
    engine: Arc<Engine>,
    /// Its own cache of engine specs, so the front door's stays the sync path's alone.
    specs: Arc<SpecCache>,
    /// Asked before each delivery whether its source may invoke the function (EventBridge rules
    /// need the function's resource policy to allow them); a refusal ends the item as failed,
    /// with the reason, where `updraft events` shows it.
    admission: Option<Arc<Admission>>,
}

/// `(qualified function ARN, source) → Ok, or why the source may not invoke it`.
pub type Admission = dyn Fn(&str, &str) -> Result<(), String> + Send + Sync;

impl FunctionTarget {
    pub fn new(control: Arc<ControlPlane>, engine: Arc<Engine>) -> Self {
        Self {
            control,
            engine,
            specs: Arc::new(SpecCache::default()),
            admission: None,
        }
    }

    /// Checks every delivery with `admission` before it runs.
    pub fn with_admission(mut self, admission: Arc<Admission>) -> Self {
        self.admission = Some(admission);
        self
    }

    async fn run(self, d: Delivery) -> Outcome {
        let Target::Function {
            account_id,
            function_arn,
            qualifier,
        } = &d.target
        else {
            return Outcome::Gone {
                reason: "not a function target".into(),
            };
        };
        if let Some(admit) = &self.admission {
            let qualified = match qualifier {
                Some(q) => format!("{function_arn}:{q}"),
                None => function_arn.clone(),
            };
            if let Err(reason) = admit(&qualified, &d.source) {
                return Outcome::Gone { reason };
            }
        }
        let resolved =
            match self
                .control
                .resolve(account_id, function_arn, qualifier.as_deref(), rand_unit())
            {
                Ok(r) => r,
                Err(e) if e.kind == ErrorKind::NotFound => {
                    return Outcome::Gone { reason: e.message };
                }
                Err(e) => return Outcome::Throttled { reason: e.message },
            };
        let spec = self.specs.get(&resolved);
        let invoked_function_arn = match qualifier {
            Some(q) => format!("{function_arn}:{q}"),
            None => function_arn.clone(),
        };
        let inv = Invocation {
            request_id: d.request_id.clone(),
            payload: d.payload.clone(),
            invoked_function_arn,
            client_context: None,
            cognito_identity: None,
            trace_id: None,
            want_log_tail: false,
            // Usage records tell a queue poller's batches from the durable path's events.
            source: if d.source == EVENT_SOURCE_MAPPING {
                updraft_engine::InvocationSource::EventSource
            } else {
                updraft_engine::InvocationSource::Async
            },
        };
        match self.engine.invoke(spec, inv).await {
            Ok(out) => match out.function_error {
                None => Outcome::Success {
                    status: 200,
                    executed_version: Some(out.executed_version),
                    response: out.payload,
                },
                Some(fe) => Outcome::FunctionError {
                    status: 200,
                    executed_version: Some(out.executed_version),
                    function_error: fe.to_string(),
                    response: out.payload,
                },
            },
            Err(InvokeError::Throttled { reason }) => Outcome::Throttled {
                reason: reason.to_string(),
            },
            Err(InvokeError::RuntimeUnavailable(r)) => Outcome::Gone {
                reason: format!("the runtime {r} is not available on this node"),
            },
            Err(InvokeError::ShuttingDown) => Outcome::Throttled {
                reason: "the node is shutting down".into(),
            },
            Err(InvokeError::Internal(m)) => Outcome::Throttled { reason: m },
        }
    }
}

impl DeliveryTarget for FunctionTarget {
    fn deliver(&self, d: Delivery) -> BoxFuture<'static, Outcome> {
        Box::pin(self.clone().run(d))
    }

    fn dead_letter(&self, target: &Target) -> Option<String> {
        let Target::Function {
            account_id,
            function_arn,
            qualifier,
        } = target
        else {
            return None;
        };
        self.control
            .get_configuration(account_id, function_arn, qualifier.as_deref())
            .ok()
            .and_then(|c| c.dead_letter_target.clone())
    }
}
