//! The operator's account API under `/updraft/admin/v1/`.
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
//!
//! A secret leaves the node exactly once, in the answer that creates it.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use updraft_control::accounts::{Account, KeyMaterial};

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
