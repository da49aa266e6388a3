//! `Invoke` on the wire: Lambda's headers in, the engine's outcome out.
//!
//! The hot path: the function is resolved from the control plane's memory, its engine spec comes
//! from a cache keyed by revision, and the payload travels as `Bytes` without copies. No
//! database is touched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use updraft_control::Resolved;
use updraft_engine::{FunctionSpec, Invocation, InvokeError, random_u64};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::{AppState, Incoming, empty};

/// Largest `X-Amz-Client-Context` Lambda accepts (base64 text).
const MAX_CLIENT_CONTEXT: usize = 3583;

/// Cache key: the configuration's revision and the function's reserved concurrency (which
/// changes without a new revision).
type SpecKey = (String, Option<u32>);

/// Engine specs by [`SpecKey`], so warm invocations build none.
#[derive(Default)]
pub struct SpecCache {
    specs: Mutex<HashMap<SpecKey, Arc<FunctionSpec>>>,
}

impl SpecCache {
    /// The engine spec of a resolved function (also used by the binary's event delivery).
    pub fn get(&self, r: &Resolved) -> Arc<FunctionSpec> {
        let key = (r.config.revision_id.clone(), r.reserved_concurrency);
        let mut specs = match self.specs.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if let Some(s) = specs.get(&key) {
            return s.clone();
        }
        // Stale revisions are never asked for again; keep the map from growing without bound.
        if specs.len() > 4096 {
            specs.clear();
        }
        let c = &r.config;
        let spec = Arc::new(FunctionSpec {
            account_id: r.account_id.clone(),
            function_name: c.name.clone(),
            function_arn: r.function_arn.clone(),
            version: r.executed_version.clone(),
            generation: c.revision_id.clone(),
            runtime: c.runtime.clone().unwrap_or_default(),
            handler: c.handler.clone().unwrap_or_default(),
            memory_mb: c.memory_size,
            timeout_s: c.timeout,
            ephemeral_mb: c.ephemeral_storage,
            environment: c
                .environment
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            code_dir: r.code_dir.clone(),
            opt_dir: r.opt_dir.clone(),
            reserved_concurrency: r.reserved_concurrency,
            log_group: c.logging.log_group.clone(),
            logging: updraft_engine::LogSettings {
                json: c.logging.log_format == "JSON",
                application_level: c.logging.application_log_level.clone(),
                system_level: c.logging.system_log_level.clone(),
            },
        });
        specs.insert(key, spec.clone());
        spec
    }
}

pub(crate) fn engine_error(e: InvokeError) -> ApiError {
    match e {
        InvokeError::Throttled { reason } => {
            let mut err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "Rate Exceeded.",
            );
            err.extra = Some(("Reason", reason.to_string()));
            err
        }
        InvokeError::RuntimeUnavailable(r) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "InvalidRuntimeException",
            format!(
                "The runtime parameter of {r} is not available on this Updraft node. Run `updraft doctor` to list the runtimes it has."
            ),
        ),
        InvokeError::ShuttingDown => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceException",
            "The node is shutting down.",
        ),
        InvokeError::Internal(msg) => ApiError::service(msg),
    }
}

/// What `Invoke` and `InvokeWithResponseStream` decide before a function runs.
pub(crate) enum Prepared {
    /// `InvocationType: DryRun`: everything checked, nothing run.
    DryRun,
    /// Run this invocation on this function.
    Run(Arc<FunctionSpec>, Invocation),
}

/// Lambda refuses a payload that is not JSON before any function runs (or any event is stored).
pub(crate) fn check_json_payload(body: &[u8]) -> ApiResult<()> {
    if body.is_empty() {
        return Ok(());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(|_| ())
        .map_err(|e| {
            ApiError::bad_content(format!(
                "Could not parse request body into json: Could not parse payload into json: {e}"
            ))
        })
}

/// Checks an invoke request's headers and payload, resolves the function and builds the
/// engine's invocation. `invocation_types` are the types the operation accepts (for its
/// validation message); `Event` invocations never reach it (they take the durable path).
pub(crate) fn prepare(
    state: &AppState,
    caller: &Caller,
    req: Incoming,
    function_name: &str,
    invocation_types: &[&str],
) -> ApiResult<Prepared> {
    let invocation_type = req
        .header("x-amz-invocation-type")
        .unwrap_or("RequestResponse");
    let want_tail = match req.header("x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{other}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [None, Tail]"
                ),
            ));
        }
    };
    let client_context = req.header("x-amz-client-context").map(str::to_string);
    if let Some(cc) = &client_context {
        if cc.len() > MAX_CLIENT_CONTEXT {
            return Err(ApiError::invalid(format!(
                "Client context must be smaller than {MAX_CLIENT_CONTEXT} bytes."
            )));
        }
        if base64::engine::general_purpose::STANDARD
            .decode(cc)
            .is_err()
        {
            return Err(ApiError::invalid(
                "Client context must be a valid Base64-encoded JSON object.",
            ));
        }
    }
    check_json_payload(&req.body)?;
    let resolved = state.control.resolve(
        &caller.account_id,
        function_name,
        req.param("Qualifier"),
        rand_unit(),
    )?;
    match invocation_type {
        "RequestResponse" => {}
        "DryRun" => return Ok(Prepared::DryRun),
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                    invocation_types.join(", ")
                ),
            ));
        }
    }
    let spec = state.spec_cache.get(&resolved);
    let trace_id = req.header("x-amzn-trace-id").map(str::to_string);
    let qualifier = req
        .param("Qualifier")
        .filter(|q| !q.is_empty())
        .map(str::to_string)
        .or_else(|| {
            updraft_control::arn::parse_function_ref(function_name)
                .ok()
                .and_then(|r| r.qualifier)
        });
    let invoked_function_arn = match qualifier {
        Some(q) => format!("{}:{q}", resolved.function_arn),
        None => resolved.function_arn.clone(),
    };
    Ok(Prepared::Run(
        spec,
        Invocation {
            request_id: req.request_id.clone(),
            payload: req.body,
            invoked_function_arn,
            client_context,
            cognito_identity: None,
            trace_id,
            want_log_tail: want_tail,
            source: updraft_engine::InvocationSource::Sync,
        },
    ))
}

/// `POST /2015-03-31/functions/{name}/invocations`.
pub async fn invoke(
    state: &Arc<AppState>,
    caller: &Caller,
    req: Incoming,
    function_name: &str,
) -> ApiResult<Response> {
    let (spec, invocation) = match prepare(
        state,
        caller,
        req,
        function_name,
        &["Event", "RequestResponse", "DryRun"],
    )? {
        Prepared::DryRun => return Ok(empty(StatusCode::NO_CONTENT)),
        Prepared::Run(spec, inv) => (spec, inv),
    };
    let outcome = state
        .engine
        .invoke(spec, invocation)
        .await
        .map_err(engine_error)?;
    let mut resp = (StatusCode::OK, outcome.payload).into_response();
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&outcome.executed_version) {
        h.insert("x-amz-executed-version", v);
    }
    if let Some(fe) = outcome.function_error {
        h.insert("x-amz-function-error", HeaderValue::from_static(fe));
    }
    if let Some(tail) = outcome.log_tail {
        let b64 = base64::engine::general_purpose::STANDARD.encode(tail);
        if let Ok(v) = HeaderValue::from_str(&b64) {
            h.insert("x-amz-log-result", v);
        }
    }
    Ok(resp)
}

/// A uniform random number in [0, 1) for weighted alias routing.
pub(crate) fn rand_unit() -> f64 {
    // Weighted routing needs no cryptographic quality: 53 bits of the fast generator.
    let bits = random_u64() >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// A request id in the shape of a version 4 UUID, as Lambda's are.
pub(crate) fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&random_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&random_u64().to_le_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_v4_uuids() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 4);
            assert_eq!(id.len(), 36);
        }
        let r = rand_unit();
        assert!((0.0..1.0).contains(&r));
    }
}
