//! Lambda's control-plane operations on the wire.
//!
//! Each handler decodes Lambda's request shape, calls the control plane and renders Lambda's
//! answer. Control-plane calls that write block briefly on the store, so they run on the
//! blocking pool to keep the async workers (and with them the invoke path) free.

use std::sync::Arc;

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use updraft_control::CodeUpdate;
use updraft_sigv4::{RequestParts, SigningParams};

use crate::auth::{Caller, header_pairs, verify_error};
use crate::error::{ApiError, ApiResult, blocking, owned};
use crate::wire::{self, Phase};
use crate::{AppState, Incoming, empty, json};

/// How long a `Code.Location` link stays valid.
const CODE_LINK_SECS: u32 = 600;

/// Routes a Lambda API request (the path starts with an API date).
pub async fn handle(state: &Arc<AppState>, caller: &Caller, req: Incoming) -> Response {
    match route(state, caller, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(state: &Arc<AppState>, caller: &Caller, req: Incoming) -> ApiResult<Response> {
    let segs: Vec<&str> = req.segments.iter().skip(1).map(String::as_str).collect();
    let m = req.method.clone();
    match (m, segs.as_slice()) {
        (Method::GET, ["functions"]) => list_functions(state, caller, &req),
        (Method::POST, ["functions"]) => create_function(state, caller, req).await,
        (Method::GET, ["functions", f]) => get_function(state, caller, &req, f),
        (Method::DELETE, ["functions", f]) => {
            let (s, c, f, q) = owned(state, caller, f, req.param("Qualifier"));
            blocking(move || Ok(s.control.delete_function(&c.account_id, &f, q.as_deref())?))
                .await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::GET, ["functions", f, "configuration"]) => {
            let cfg =
                state
                    .control
                    .get_configuration(&caller.account_id, f, req.param("Qualifier"))?;
            Ok(config_response(
                state,
                caller,
                StatusCode::OK,
                &cfg,
                Phase::Settled,
            ))
        }
        (Method::PUT, ["functions", f, "configuration"]) => {
            let input = wire::parse_body::<wire::UpdateConfigWire>(&req.body)?.into_input()?;
            let note = runtime_note(state, input.runtime.as_deref())?;
            let (s, c, f, _) = owned(state, caller, f, None);
            let cfg =
                blocking(move || Ok(s.control.update_configuration(&c.account_id, &f, input)?))
                    .await?;
            let r = config_response(state, caller, StatusCode::OK, &cfg, Phase::Updating);
            Ok(with_runtime_note(r, &cfg.name, note))
        }
        (Method::PUT, ["functions", f, "code"]) => update_code(state, caller, &req, f).await,
        (Method::GET, ["functions", f, "versions"]) => {
            let page = state.control.list_versions(
                &caller.account_id,
                f,
                req.param("Marker"),
                max_items(&req)?,
            )?;
            let items: Vec<_> = page
                .items
                .iter()
                .map(|c| {
                    wire::function_configuration(
                        &state.region,
                        &caller.account_id,
                        c,
                        Phase::Settled,
                    )
                })
                .collect();
            Ok(listing("Versions", items, page.next_marker))
        }
        (Method::POST, ["functions", f, "versions"]) => {
            let input: wire::PublishVersionWire = wire::parse_body(&req.body)?;
            let (s, c, f, _) = owned(state, caller, f, None);
            let cfg = blocking(move || {
                Ok(s.control.publish_version(
                    &c.account_id,
                    &f,
                    input.code_sha256.as_deref(),
                    input.description,
                    input.revision_id.as_deref(),
                )?)
            })
            .await?;
            Ok(config_response(
                state,
                caller,
                StatusCode::CREATED,
                &cfg,
                Phase::Creating,
            ))
        }
        (Method::GET, ["functions", f, "aliases"]) => {
            let page = state.control.list_aliases(
                &caller.account_id,
                f,
                req.param("FunctionVersion"),
                req.param("Marker"),
                max_items(&req)?,
            )?;
            let name = function_name_of(f);
            let items: Vec<_> = page
                .items
                .iter()
                .map(|a| wire::alias_configuration(&state.region, &caller.account_id, &name, a))
                .collect();
            Ok(listing("Aliases", items, page.next_marker))
        }
        (Method::POST, ["functions", f, "aliases"]) => {
            let input: wire::AliasWire = wire::parse_body(&req.body)?;
            let name = wire::require(input.name, "name")?;
            let version = wire::require(input.function_version, "functionVersion")?;
            let weights = input
                .routing_config
                .map(|r| r.additional_version_weights)
                .unwrap_or_default();
            let (s, c, f, _) = owned(state, caller, f, None);
            let fname = function_name_of(&f);
            let alias = blocking(move || {
                Ok(s.control.create_alias(
                    &c.account_id,
                    &f,
                    &name,
                    &version,
                    input.description,
                    weights,
                )?)
            })
            .await?;
            Ok(json(
                StatusCode::CREATED,
                wire::alias_configuration(&state.region, &caller.account_id, &fname, &alias),
            ))
        }
        (Method::GET, ["functions", f, "aliases", a]) => {
            let alias = state.control.get_alias(&caller.account_id, f, a)?;
            Ok(json(
                StatusCode::OK,
                wire::alias_configuration(
                    &state.region,
                    &caller.account_id,
                    &function_name_of(f),
                    &alias,
                ),
            ))
        }
        (Method::PUT, ["functions", f, "aliases", a]) => {
            let input: wire::AliasWire = wire::parse_body(&req.body)?;
            let (s, c, f, _) = owned(state, caller, f, None);
            let a = a.to_string();
            let fname = function_name_of(&f);
            let alias = blocking(move || {
                Ok(s.control.update_alias(
                    &c.account_id,
                    &f,
                    &a,
                    input.function_version,
                    input.description,
                    input.routing_config.map(|r| r.additional_version_weights),
                    input.revision_id.as_deref(),
                )?)
            })
            .await?;
            Ok(json(
                StatusCode::OK,
                wire::alias_configuration(&state.region, &caller.account_id, &fname, &alias),
            ))
        }
        (Method::DELETE, ["functions", f, "aliases", a]) => {
            let (s, c, f, _) = owned(state, caller, f, None);
            let a = a.to_string();
            blocking(move || Ok(s.control.delete_alias(&c.account_id, &f, &a)?)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, ["functions", f, "url"]) => {
            crate::urls::create(state, caller, &req, f).await
        }
        (Method::GET, ["functions", f, "url"]) => crate::urls::get(state, caller, &req, f),
        (Method::PUT, ["functions", f, "url"]) => crate::urls::update(state, caller, &req, f).await,
        (Method::DELETE, ["functions", f, "url"]) => {
            crate::urls::delete(state, caller, &req, f).await
        }
        (Method::GET, ["functions", f, "urls"]) => {
            crate::urls::list_configs(state, caller, &req, f)
        }
        (Method::POST, ["functions", f, "policy"]) => {
            crate::policy::add(state, caller, &req, f).await
        }
        (Method::GET, ["functions", f, "policy"]) => crate::policy::get(state, caller, &req, f),
        (Method::DELETE, ["functions", f, "policy", sid]) => {
            crate::policy::remove(state, caller, &req, f, sid).await
        }
        (Method::POST, ["functions", f, "invocations"])
            if req.header("x-amz-invocation-type") == Some("Event") =>
        {
            let f = f.to_string();
            crate::async_invoke::invoke_event(state, caller, req, &f).await
        }
        (Method::POST, ["functions", f, "invocations"]) => {
            let f = f.to_string();
            crate::invoke::invoke(state, caller, req, &f).await
        }
        (Method::POST, ["functions", f, "invoke-async"]) => {
            let f = f.to_string();
            crate::async_invoke::invoke_async(state, caller, req, &f).await
        }
        (_, ["functions", f, "event-invoke-config", rest @ ..]) => {
            let f = f.to_string();
            crate::event_config::handle(state, caller, &req, &f, rest).await
        }
        (Method::POST, ["functions", f, "response-streaming-invocations"]) => {
            let f = f.to_string();
            crate::streaming::invoke_with_response_stream(state, caller, req, &f).await
        }
        (Method::PUT, ["functions", f, "concurrency"]) => {
            let input: wire::ConcurrencyWire = wire::parse_body(&req.body)?;
            let n = wire::require(
                input.reserved_concurrent_executions,
                "reservedConcurrentExecutions",
            )?;
            let (s, c, f, _) = owned(state, caller, f, None);
            let n = blocking(move || Ok(s.control.put_concurrency(&c.account_id, &f, n)?)).await?;
            Ok(json(
                StatusCode::OK,
                json!({ "ReservedConcurrentExecutions": n }),
            ))
        }
        (Method::GET, ["functions", f, "concurrency"]) => {
            let n = state.control.get_concurrency(&caller.account_id, f)?;
            Ok(json(
                StatusCode::OK,
                match n {
                    Some(n) => json!({ "ReservedConcurrentExecutions": n }),
                    None => json!({}),
                },
            ))
        }
        (Method::DELETE, ["functions", f, "concurrency"]) => {
            let (s, c, f, _) = owned(state, caller, f, None);
            blocking(move || Ok(s.control.delete_concurrency(&c.account_id, &f)?)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::PUT, ["functions", f, "provisioned-concurrency"]) => {
            crate::provisioned::put(state, caller, &req, f).await
        }
        (Method::GET, ["functions", f, "provisioned-concurrency"])
            if req.param("List").is_some() =>
        {
            crate::provisioned::list(state, caller, &req, f)
        }
        (Method::GET, ["functions", f, "provisioned-concurrency"]) => {
            crate::provisioned::get(state, caller, &req, f)
        }
        (Method::DELETE, ["functions", f, "provisioned-concurrency"]) => {
            crate::provisioned::delete(state, caller, &req, f).await
        }
        (Method::GET, ["account-settings"]) => {
            let u = state.control.account_usage(&caller.account_id)?;
            let limits = state.control.code_store().limits();
            Ok(json(
                StatusCode::OK,
                json!({
                    "AccountLimit": {
                        "TotalCodeSize": 80_530_636_800u64,
                        "CodeSizeUnzipped": limits.max_unzipped_bytes,
                        "CodeSizeZipped": limits.max_zip_bytes,
                        "ConcurrentExecutions": u.concurrency_limit,
                        "UnreservedConcurrentExecutions": u.unreserved_concurrency,
                    },
                    "AccountUsage": {
                        "TotalCodeSize": u.total_code_size,
                        "FunctionCount": u.function_count,
                    }
                }),
            ))
        }
        (_, ["layers", ..]) => crate::layers::route(state, caller, &req, &segs).await,
        (_, ["event-source-mappings", rest @ ..]) => {
            crate::mappings::handle(state, caller, &req, rest).await
        }
        (Method::GET, ["tags", arn]) => {
            let tags = state.control.list_tags(&caller.account_id, arn)?;
            Ok(json(StatusCode::OK, json!({ "Tags": tags })))
        }
        (Method::POST, ["tags", arn]) => {
            let input: wire::TagsWire = wire::parse_body(&req.body)?;
            let (s, c, arn, _) = owned(state, caller, arn, None);
            blocking(move || Ok(s.control.tag_resource(&c.account_id, &arn, input.tags)?)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::DELETE, ["tags", arn]) => {
            let keys = req.params("tagKeys");
            let (s, c, arn, _) = owned(state, caller, arn, None);
            blocking(move || Ok(s.control.untag_resource(&c.account_id, &arn, &keys)?)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(ApiError::unknown_operation()),
    }
}

/// The bare function name inside any accepted `FunctionName` form (for rendering alias ARNs).
fn function_name_of(f: &str) -> String {
    updraft_control::arn::parse_function_ref(f)
        .map(|r| r.name)
        .unwrap_or_else(|_| f.to_string())
}

pub(crate) fn max_items(req: &Incoming) -> ApiResult<Option<i64>> {
    req.param("MaxItems")
        .map(|m| {
            m.parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("Invalid MaxItems value: {m}")))
        })
        .transpose()
}

pub(crate) fn listing(key: &str, items: Vec<serde_json::Value>, next: Option<String>) -> Response {
    let mut v = json!({ key: items });
    if let Some(n) = next {
        v["NextMarker"] = json!(n);
    }
    json(StatusCode::OK, v)
}

fn config_response(
    state: &AppState,
    caller: &Caller,
    status: StatusCode,
    cfg: &updraft_control::model::FunctionConfig,
    phase: Phase,
) -> Response {
    json(
        status,
        wire::function_configuration(&state.region, &caller.account_id, cfg, phase),
    )
}

fn list_functions(state: &Arc<AppState>, caller: &Caller, req: &Incoming) -> ApiResult<Response> {
    let all = match req.param("FunctionVersion") {
        None => false,
        Some("ALL") => true,
        Some(v) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!(
                    "1 validation error detected: Value '{v}' at 'functionVersion' failed to satisfy constraint: Member must satisfy enum value set: [ALL]"
                ),
            ));
        }
    };
    let page = state.control.list_functions(
        &caller.account_id,
        all,
        req.param("Marker"),
        max_items(req)?,
    )?;
    let items: Vec<_> = page
        .items
        .iter()
        .map(|c| wire::function_configuration(&state.region, &caller.account_id, c, Phase::Settled))
        .collect();
    Ok(listing("Functions", items, page.next_marker))
}

async fn create_function(
    state: &Arc<AppState>,
    caller: &Caller,
    req: Incoming,
) -> ApiResult<Response> {
    let (s, c, _, _) = owned(state, caller, "", None);
    // A body can carry a 50 MB package in base64: parsing and decoding it, like extracting it,
    // is blocking work that must not hold an async worker.
    let body = req.body;
    let (latest, published, note) = blocking(move || {
        let objects = s.code_objects.get().cloned();
        let from = wire::CodeFrom {
            objects: objects.as_deref(),
            account: &c.account_id,
        };
        let input = wire::parse_body::<wire::CreateFunctionWire>(&body)?.into_input(&from)?;
        let note = runtime_note(&s, input.runtime.as_deref())?;
        let (latest, published) = s.control.create_function(&c.account_id, input)?;
        Ok((latest, published, note))
    })
    .await?;
    let cfg = published.unwrap_or(latest);
    let r = config_response(state, caller, StatusCode::CREATED, &cfg, Phase::Creating);
    Ok(with_runtime_note(r, &cfg.name, note))
}

/// Header with which CreateFunction and UpdateFunctionConfiguration tell Updraft's own CLI (and
/// any client that looks) that the runtime runs on a nearer version than it names.
pub const RUNTIME_NOTE_HEADER: &str = "x-updraft-runtime-note";

/// What this node says about a runtime a function is given: `Ok(Some(note))` when it runs on a
/// nearer version than it names, and, with `--strict-runtimes`, Lambda's
/// `InvalidParameterValueException` for one that cannot run exactly as named. Ids Lambda itself
/// refuses are left to the control plane's validation, which names them Lambda's way.
fn runtime_note(state: &AppState, runtime: Option<&str>) -> ApiResult<Option<String>> {
    let Some(rt) = runtime else { return Ok(None) };
    if updraft_control::validate::runtime(rt).is_err() {
        return Ok(None);
    }
    match state.engine.check_runtime(rt) {
        Ok(note) => Ok(note),
        Err(reason) if state.engine.strict_runtimes() => Err(ApiError::invalid(format!(
            "The runtime parameter of {rt} cannot be used on this Updraft node: {reason}"
        ))),
        Err(_) => Ok(None),
    }
}

fn with_runtime_note(mut r: Response, function: &str, note: Option<String>) -> Response {
    if let Some(note) = note {
        tracing::warn!(function, "{note}");
        if let Ok(v) = HeaderValue::from_str(&note) {
            r.headers_mut().insert(RUNTIME_NOTE_HEADER, v);
        }
    }
    r
}

async fn update_code(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    f: &str,
) -> ApiResult<Response> {
    let (s, c, f, _) = owned(state, caller, f, None);
    // As for CreateFunction: the base64 package is decoded on the blocking pool.
    let body = req.body.clone();
    let cfg = blocking(move || {
        let input: wire::UpdateCodeWire = wire::parse_body(&body)?;
        let objects = s.code_objects.get().cloned();
        let from = wire::CodeFrom {
            objects: objects.as_deref(),
            account: &c.account_id,
        };
        let zip = wire::decode_code(
            &wire::CodeInput {
                zip_file: input.zip_file,
                s3_bucket: input.s3_bucket,
                s3_key: input.s3_key,
                s3_object_version: input.s3_object_version,
                image_uri: input.image_uri,
            },
            &from,
        )?;
        let update = CodeUpdate {
            zip,
            publish: input.publish,
            dry_run: input.dry_run,
            revision_id: input.revision_id,
            architectures: input.architectures,
        };
        Ok(s.control.update_code(&c.account_id, &f, update)?)
    })
    .await?;
    Ok(config_response(
        state,
        caller,
        StatusCode::OK,
        &cfg,
        Phase::Updating,
    ))
}

fn get_function(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    f: &str,
) -> ApiResult<Response> {
    let d = state
        .control
        .get_function(&caller.account_id, f, req.param("Qualifier"))?;
    let location = code_link(state, &req.host, &d.config.code.sha256_hex)?;
    let mut v = json!({
        "Configuration": wire::function_configuration(&state.region, &caller.account_id, &d.config, Phase::Settled),
        "Code": { "RepositoryType": "S3", "Location": location },
    });
    if !d.tags.is_empty() {
        v["Tags"] = json!(d.tags);
    }
    if let Some(n) = d.reserved_concurrency {
        v["Concurrency"] = json!({ "ReservedConcurrentExecutions": n });
    }
    Ok(json(StatusCode::OK, v))
}

fn code_path(sha256_hex: &str) -> String {
    format!("/updraft/code/{sha256_hex}.zip")
}

/// A presigned, time-limited link to a stored zip, on the host the caller used.
pub(crate) fn code_link(state: &AppState, host: &str, sha256_hex: &str) -> ApiResult<String> {
    let path = code_path(sha256_hex);
    let headers = vec![("host".to_string(), host.to_string())];
    let query = updraft_sigv4::presign(
        &RequestParts {
            method: "GET",
            path: &path,
            query: "",
            headers: &headers,
        },
        CODE_LINK_SECS,
        &SigningParams {
            credentials: &state.code_link_key,
            region: &state.region,
            service: "lambda",
            time: time::OffsetDateTime::now_utc(),
        },
    )
    .map_err(ApiError::service)?;
    Ok(format!("http://{host}{path}?{query}"))
}

/// Serves `GET /updraft/code/<sha256>.zip` for links made by [`code_link`]. The zip (up to
/// 50 MB) is streamed from the file in chunks rather than read into memory first.
pub async fn download_code(
    state: &AppState,
    req: &Incoming,
    raw_path: &str,
    raw_query: &str,
) -> Response {
    let denied = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "Access denied",
        )
        .into_response()
    };
    if req.method != Method::GET || req.segments.len() != 3 {
        return denied();
    }
    let pairs = header_pairs(&req.headers);
    let verified = updraft_sigv4::verify(
        &RequestParts {
            method: "GET",
            path: raw_path,
            query: raw_query,
            headers: &pairs,
        },
        &updraft_sigv4::sha256_hex(b""),
        time::OffsetDateTime::now_utc(),
        |id| {
            (id == state.code_link_key.access_key_id)
                .then(|| state.code_link_key.secret_access_key.clone())
        },
    );
    if let Err(e) = verified {
        return verify_error(&e).into_response();
    }
    let Some(sha) = req.segments[2].strip_suffix(".zip") else {
        return denied();
    };
    let Some(path) = state.control.code_zip(sha) else {
        return ApiError::not_found("Code not found").into_response();
    };
    match stream_file(&path).await {
        Ok((len, body)) => {
            let mut resp = (StatusCode::OK, body).into_response();
            let headers = resp.headers_mut();
            headers.insert("content-type", HeaderValue::from_static("application/zip"));
            headers.insert("content-length", HeaderValue::from(len));
            resp
        }
        Err(e) => ApiError::service(e).into_response(),
    }
}

/// Chunks of a streamed file body.
const FILE_CHUNK_BYTES: usize = 64 * 1024;

/// Opens `path` and returns its length and a body that reads it chunk by chunk on a task (tokio's
/// file reads run on the blocking pool). Stored zips are immutable, so the length holds.
async fn stream_file(path: &std::path::Path) -> std::io::Result<(u64, axum::body::Body)> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let (mut tx, body) = http_body_util::channel::Channel::<bytes::Bytes, std::io::Error>::new(2);
    tokio::spawn(async move {
        loop {
            let mut buf = bytes::BytesMut::with_capacity(FILE_CHUNK_BYTES);
            match file.read_buf(&mut buf).await {
                Ok(0) => return,
                Ok(_) => {
                    if tx.send_data(buf.freeze()).await.is_err() {
                        return; // the client went away
                    }
                }
                Err(e) => {
                    tracing::warn!("reading a stored zip failed mid-download: {e}");
                    tx.abort(e);
                    return;
                }
            }
        }
    });
    Ok((len, axum::body::Body::new(body)))
}

/// `GET /updraft/v1/functions/{name}/logs?since_ms=N&limit=M&nextToken=T`: one page of the
/// function's log events, oldest first (for `updraft logs`). `nextToken` in the answer is present
/// when more events follow; passing it back reads the next page. `limit` is 1 to 10000
/// (default 10000), and a page holds about 1 MB of messages at most.
pub async fn function_logs(state: &Arc<AppState>, caller: &Caller, req: &Incoming) -> Response {
    match logs_page(state, caller, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn logs_page(state: &Arc<AppState>, caller: &Caller, req: &Incoming) -> ApiResult<Response> {
    let since = req
        .param("since_ms")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let limit = match req.param("limit") {
        None => updraft_engine::MAX_PAGE_EVENTS,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=updraft_engine::MAX_PAGE_EVENTS).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "limit must be between 1 and {}",
                    updraft_engine::MAX_PAGE_EVENTS
                ))
            })?,
    };
    let token = req.param("nextToken").map(str::to_string);
    let name = function_name_of(&req.segments[3]);
    state
        .control
        .get_configuration(&caller.account_id, &name, None)?;
    let (s, c) = (state.clone(), caller.clone());
    let page = blocking(move || {
        s.engine
            .read_logs_page(&c.account_id, &name, since, token.as_deref(), limit)
            .map_err(|e| match e {
                updraft_engine::EngineError::InvalidLogToken => {
                    ApiError::invalid("The specified nextToken is invalid.")
                }
                e => ApiError::service(e),
            })
    })
    .await?;
    let mut body = json!({ "events": page.events });
    if let Some(t) = page.next_token {
        body["nextToken"] = json!(t);
    }
    Ok(json(StatusCode::OK, body))
}
