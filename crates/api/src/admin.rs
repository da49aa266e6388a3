//! The operator's API under `/updraft/admin/v1/`: accounts and access keys, and the engine's
//! keep-alive counters.
//!
//! Only keys of the root account may call it; any other account is refused with
//! `AccessDeniedException` before the path is even looked at, so the API's shape is not
//! revealed to tenants. Requests are SigV4-signed like every other call (the CLI signs for the
//! `lambda` service).
//!
//! | method   | path                                   | answer                                  |
//! |----------|----------------------------------------|-----------------------------------------|
//! | `POST`   | `accounts` `{"Name"}`                  | 201 `{AccountId, AccessKeyId, SecretAccessKey}` |
//! | `GET`    | `accounts`                             | `{Accounts: [...]}`, no secrets         |
//! | `GET`    | `accounts/{id}`                        | the account                             |
//! | `POST`   | `accounts/{id}/disable`                | the account, now `Disabled`             |
//! | `POST`   | `accounts/{id}/keys`                   | 201 `{AccountId, AccessKeyId, SecretAccessKey}` |
//! | `GET`    | `accounts/{id}/keys`                   | `{AccessKeys: [...]}`, ids only         |
//! | `DELETE` | `accounts/{id}/keys/{AccessKeyId}`     | 204                                     |
//! | `GET`    | `engine/stats`                         | keep-alive and pre-warming counters, see [`stats_json`] |
//!
//! A secret leaves the node exactly once, in the answer that creates it.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use updraft_control::accounts::{Account, KeyMaterial};
use updraft_engine::{EngineStats, KeepAliveMode};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, blocking};
use crate::{AppState, Incoming, empty, json};

/// Routes a request whose path starts with `/updraft/admin`.
pub async fn handle(state: &Arc<AppState>, caller: &Caller, req: Incoming) -> Response {
    if caller.account_id != state.accounts.root_account_id() {
        tracing::info!(
            account_id = %caller.account_id,
            access_key_id = %caller.access_key_id,
            "admin API refused to a non-root account"
        );
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "Only the root account may manage accounts",
        )
        .into_response();
    }
    match route(state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(state: &Arc<AppState>, req: Incoming) -> ApiResult<Response> {
    let segs: Vec<&str> = req.segments.iter().skip(2).map(String::as_str).collect();
    let s = state.clone();
    match (req.method.clone(), segs.as_slice()) {
        (Method::POST, ["v1", "accounts"]) => {
            let name = account_name(&req.body)?;
            let (_, key) = blocking(move || Ok(s.accounts.create_account(&name)?)).await?;
            Ok(json(StatusCode::CREATED, key_json(&key)))
        }
        (Method::GET, ["v1", "accounts"]) => {
            let accounts = state.accounts.list_accounts()?;
            Ok(json(
                StatusCode::OK,
                json!({ "Accounts": accounts.iter().map(account_json).collect::<Vec<_>>() }),
            ))
        }
        (Method::GET, ["v1", "accounts", id]) => {
            let account = state.accounts.get_account(id)?;
            Ok(json(StatusCode::OK, account_json(&account)))
        }
        (Method::POST, ["v1", "accounts", id, "disable"]) => {
            let id = id.to_string();
            let account = blocking(move || Ok(s.accounts.disable_account(&id)?)).await?;
            Ok(json(StatusCode::OK, account_json(&account)))
        }
        (Method::POST, ["v1", "accounts", id, "keys"]) => {
            let id = id.to_string();
            let key = blocking(move || Ok(s.accounts.create_key(&id)?)).await?;
            Ok(json(StatusCode::CREATED, key_json(&key)))
        }
        (Method::GET, ["v1", "accounts", id, "keys"]) => {
            let keys = state.accounts.list_keys(id)?;
            Ok(json(
                StatusCode::OK,
                json!({
                    "AccessKeys": keys.iter().map(|k| json!({
                        "AccessKeyId": k.access_key_id,
                        "CreatedAt": k.created,
                    })).collect::<Vec<_>>()
                }),
            ))
        }
        (Method::GET, ["v1", "engine", "stats"]) => {
            Ok(json(StatusCode::OK, stats_json(&state.engine.stats())))
        }
        (Method::DELETE, ["v1", "accounts", id, "keys", key]) => {
            let (id, key) = (id.to_string(), key.to_string());
            blocking(move || Ok(s.accounts.delete_key(&id, &key)?)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(ApiError::unknown_operation()),
    }
}

/// `Name` of a create-account request.
fn account_name(body: &[u8]) -> ApiResult<String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_content("Could not parse request body into json"))?;
    match v.get("Name") {
        Some(Value::String(n)) => Ok(n.clone()),
        Some(_) => Err(ApiError::invalid("Name must be a string")),
        None => Err(ApiError::invalid("Name is required")),
    }
}

fn account_json(a: &Account) -> Value {
    json!({
        "AccountId": a.account_id,
        "Name": a.name,
        "Status": a.status.as_str(),
        "CreatedAt": a.created,
        "Root": a.root,
    })
}

/// The engine's counters since it started: cold and warm starts, pre-warms, the integral of
/// idle environments' `MemorySize` (MiB·s) and the idle MiB right now, in total and per function
/// version with its keep-alive windows (adaptive keep-alive, while the function is idle).
fn stats_json(s: &EngineStats) -> Value {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    json!({
        "KeepAlive": {
            "Mode": match s.keep_alive.mode {
                KeepAliveMode::Fixed => "fixed",
                KeepAliveMode::Adaptive => "adaptive",
            },
            "BinMs": ms(s.keep_alive.bin),
            "Bins": s.keep_alive.bins,
            "IdleTimeoutMs": ms(s.idle_timeout),
        },
        "ColdStarts": s.cold_starts,
        "WarmStarts": s.warm_starts,
        "PrewarmsStarted": s.prewarms_started,
        "PrewarmsUsed": s.prewarms_used,
        "IdleMiBSeconds": s.idle_mib_seconds,
        "IdleMiBNow": s.idle_mb_now,
        "PrewarmedEnvironments": s.prewarmed.map(|p| json!({
            "Built": p.built,
            "Used": p.used,
            "Missed": p.missed,
            "Ready": p.ready,
        })),
        "Functions": s.functions.iter().map(|f| json!({
            "FunctionArn": f.function_arn,
            "Version": f.version,
            "ColdStarts": f.cold_starts,
            "WarmStarts": f.warm_starts,
            "PrewarmsStarted": f.prewarms_started,
            "PrewarmsUsed": f.prewarms_used,
            "IdleMiBSeconds": f.idle_mib_seconds,
            "IdleSamples": f.idle_samples,
            "IdleOutOfRange": f.idle_out_of_range,
            "Window": f.decision.map(|d| json!({
                "PrewarmMs": ms(d.prewarm),
                "KeepAliveMs": ms(d.keep_alive),
                "Fallback": d.fallback,
            })),
        })).collect::<Vec<_>>(),
    })
}

fn key_json(k: &KeyMaterial) -> Value {
    json!({
        "AccountId": k.account_id,
        "AccessKeyId": k.access_key_id,
        "SecretAccessKey": k.secret_access_key.expose(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_render_counters_and_windows() {
        let stats = EngineStats {
            keep_alive: updraft_engine::KeepAlive {
                mode: KeepAliveMode::Adaptive,
                bin: std::time::Duration::from_millis(100),
                bins: 240,
            },
            idle_timeout: std::time::Duration::from_secs(1),
            cold_starts: 2,
            warm_starts: 7,
            prewarms_started: 3,
            prewarms_used: 2,
            idle_mib_seconds: 12.5,
            idle_mb_now: 128,
            prewarmed: Some(updraft_engine::PrewarmStats {
                built: 4,
                used: 3,
                missed: 1,
                ready: 1,
            }),
            functions: vec![updraft_engine::FunctionWarmthStats {
                function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
                version: "$LATEST".into(),
                cold_starts: 2,
                warm_starts: 7,
                prewarms_started: 3,
                prewarms_used: 2,
                idle_mib_seconds: 12.5,
                idle_samples: 8,
                idle_out_of_range: 0,
                decision: Some(updraft_engine::Decision {
                    prewarm: std::time::Duration::from_millis(810),
                    keep_alive: std::time::Duration::from_millis(290),
                    fallback: false,
                }),
            }],
        };
        let v = stats_json(&stats);
        assert_eq!(v["KeepAlive"]["Mode"], "adaptive");
        assert_eq!(v["KeepAlive"]["BinMs"], 100);
        assert_eq!(v["KeepAlive"]["IdleTimeoutMs"], 1000);
        assert_eq!(v["ColdStarts"], 2);
        assert_eq!(v["PrewarmsUsed"], 2);
        assert_eq!(v["IdleMiBSeconds"], 12.5);
        assert_eq!(v["Functions"][0]["Window"]["PrewarmMs"], 810);
        assert_eq!(v["Functions"][0]["Window"]["Fallback"], false);
        assert_eq!(v["PrewarmedEnvironments"]["Used"], 3);
        assert_eq!(v["PrewarmedEnvironments"]["Missed"], 1);
    }

    #[test]
    fn names_are_read_from_json() {
        assert_eq!(account_name(br#"{"Name":"team-a"}"#).unwrap(), "team-a");
        assert_eq!(
            account_name(b"{}").unwrap_err().code,
            "InvalidParameterValueException"
        );
        assert_eq!(
            account_name(br#"{"Name":3}"#).unwrap_err().code,
            "InvalidParameterValueException"
        );
        assert_eq!(
            account_name(b"nope").unwrap_err().code,
            "InvalidRequestContentException"
        );
    }
}
