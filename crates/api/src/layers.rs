//! Layer operations on the wire (`/2018-10-31/layers/…`): `PublishLayerVersion`,
//! `GetLayerVersion`, `GetLayerVersionByArn`, `ListLayers`, `ListLayerVersions`,
//! `DeleteLayerVersion`, `AddLayerVersionPermission`, `RemoveLayerVersionPermission` and
//! `GetLayerVersionPolicy`. Thin: decoding, the control plane's call, Lambda's rendering.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use updraft_control::layer::{GET_LAYER_VERSION, LayerStatement, LayerVersion};
use updraft_control::{LayerPermissionInput, PublishLayer};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, blocking, owned};
use crate::wire::{self, CodeInput};
use crate::{AppState, Incoming, empty, json};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishLayerWire {
    content: Option<CodeInput>,
    description: Option<String>,
    compatible_runtimes: Option<Vec<String>>,
    compatible_architectures: Option<Vec<String>>,
    license_info: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddLayerPermissionWire {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    organization_id: Option<String>,
}

/// Routes a request whose path (after the API date) starts with `layers`.
pub async fn route(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    segs: &[&str],
) -> ApiResult<Response> {
    match (&req.method, segs) {
        (&Method::GET, ["layers"]) if req.param("find") == Some("LayerVersion") => {
            let arn = wire::require(req.param("Arn").map(str::to_string), "arn")?;
            let v = state
                .control
                .get_layer_version_by_arn(&caller.account_id, &arn)?;
            Ok(json(StatusCode::OK, layer_version_json(state, req, &v)?))
        }
        (&Method::GET, ["layers"]) => {
            let page = state.control.list_layers(
                &caller.account_id,
                req.param("CompatibleRuntime"),
                req.param("CompatibleArchitecture"),
                req.param("Marker"),
                crate::lambda::max_items(req)?,
            )?;
            let items: Vec<Value> = page
                .items
                .iter()
                .map(|v| {
                    json!({
                        "LayerName": v.name,
                        "LayerArn": v.layer_arn,
                        "LatestMatchingVersion": version_item(v),
                    })
                })
                .collect();
            Ok(crate::lambda::listing("Layers", items, page.next_marker))
        }
        (&Method::POST, ["layers", name, "versions"]) => publish(state, caller, req, name).await,
        (&Method::GET, ["layers", name, "versions"]) => {
            let page = state.control.list_layer_versions(
                &caller.account_id,
                name,
                req.param("CompatibleRuntime"),
                req.param("CompatibleArchitecture"),
                req.param("Marker"),
                crate::lambda::max_items(req)?,
            )?;
            let items: Vec<Value> = page.items.iter().map(|v| version_item(v)).collect();
            Ok(crate::lambda::listing(
                "LayerVersions",
                items,
                page.next_marker,
            ))
        }
        (&Method::GET, ["layers", name, "versions", n]) => {
            let v =
                state
                    .control
                    .get_layer_version(&caller.account_id, name, version_number(n)?)?;
            Ok(json(StatusCode::OK, layer_version_json(state, req, &v)?))
        }
        (&Method::DELETE, ["layers", name, "versions", n]) => {
            let n = version_number(n)?;
            let (s, c, name, _) = owned(state, caller, name, None);
            blocking(move || Ok(s.control.delete_layer_version(&c.account_id, &name, n)?)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (&Method::POST, ["layers", name, "versions", n, "policy"]) => {
            let w: AddLayerPermissionWire = wire::parse_body(&req.body)?;
            let input = LayerPermissionInput {
                statement_id: wire::require(w.statement_id, "statementId")?,
                action: wire::require(w.action, "action")?,
                principal: wire::require(w.principal, "principal")?,
                organization_id: w.organization_id,
                revision_id: req.param("RevisionId").map(str::to_string),
            };
            let n = version_number(n)?;
            let (s, c, name, _) = owned(state, caller, name, None);
            let (v, statement) = blocking(move || {
                Ok(s.control
                    .add_layer_version_permission(&c.account_id, &name, n, input)?)
            })
            .await?;
            Ok(json(
                StatusCode::CREATED,
                json!({
                    "Statement": statement_json(&statement, &v.version_arn()).to_string(),
                    "RevisionId": v.policy.revision_id,
                }),
            ))
        }
        (&Method::GET, ["layers", name, "versions", n, "policy"]) => {
            let v = state.control.get_layer_version_policy(
                &caller.account_id,
                name,
                version_number(n)?,
            )?;
            Ok(json(
                StatusCode::OK,
                json!({ "Policy": policy_json(&v).to_string(), "RevisionId": v.policy.revision_id }),
            ))
        }
        (&Method::DELETE, ["layers", name, "versions", n, "policy", sid]) => {
            let n = version_number(n)?;
            let (s, c, name, _) = owned(state, caller, name, None);
            let sid = sid.to_string();
            let rev = req.param("RevisionId").map(str::to_string);
            blocking(move || {
                Ok(s.control.remove_layer_version_permission(
                    &c.account_id,
                    &name,
                    n,
                    &sid,
                    rev.as_deref(),
                )?)
            })
            .await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(ApiError::unknown_operation()),
    }
}

async fn publish(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    name: &str,
) -> ApiResult<Response> {
    let (s, c, name, _) = owned(state, caller, name, None);
    // As for CreateFunction: a 50 MB package in base64 is decoded and stored on the blocking pool.
    let body = req.body.clone();
    let v = blocking(move || {
        let w: PublishLayerWire = wire::parse_body(&body)?;
        let content = w.content.ok_or_else(|| wire::missing("content"))?;
        // Content.S3Bucket/S3Key/S3ObjectVersion read the package from this node's object store,
        // with the caller's own right to read it, as CreateFunction's Code does.
        let objects = s.code_objects.get().cloned();
        let from = wire::CodeFrom {
            objects: objects.as_deref(),
            account: &c.account_id,
        };
        let zip = wire::decode_code(&content, &from)?;
        Ok(s.control.publish_layer_version(
            &c.account_id,
            PublishLayer {
                layer_name: name,
                description: w.description,
                compatible_runtimes: w.compatible_runtimes,
                compatible_architectures: w.compatible_architectures,
                license_info: w.license_info,
                zip,
            },
        )?)
    })
    .await?;
    Ok(json(
        StatusCode::CREATED,
        layer_version_json(state, req, &v)?,
    ))
}

fn version_number(n: &str) -> ApiResult<i64> {
    n.parse::<i64>().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!("1 validation error detected: Value '{n}' at 'versionNumber' failed to satisfy constraint: Member must be a number"),
        )
    })
}

/// The fields a version shows in listings (`LayerVersionsListItem`).
fn version_item(v: &LayerVersion) -> Value {
    let mut m = json!({
        "LayerVersionArn": v.version_arn(),
        "Version": v.version,
        "Description": v.description,
        "CreatedDate": v.created_date,
        "CompatibleRuntimes": v.compatible_runtimes,
        "CompatibleArchitectures": v.compatible_architectures,
    });
    if let Some(l) = &v.license_info {
        m["LicenseInfo"] = json!(l);
    }
    m
}

/// `GetLayerVersionResponse` (also `PublishLayerVersion`'s answer).
fn layer_version_json(state: &AppState, req: &Incoming, v: &LayerVersion) -> ApiResult<Value> {
    let mut m = version_item(v);
    m["LayerArn"] = json!(v.layer_arn);
    m["Content"] = json!({
        "Location": crate::lambda::code_link(state, &req.host, &v.code.sha256_hex)?,
        "CodeSha256": v.code.code_sha256,
        "CodeSize": v.code.code_size,
    });
    Ok(m)
}

/// One statement as Lambda renders it.
fn statement_json(s: &LayerStatement, resource: &str) -> Value {
    let principal = if s.principal == "*" {
        json!("*")
    } else {
        json!({ "AWS": format!("arn:aws:iam::{}:root", s.principal) })
    };
    let mut v = json!({
        "Sid": s.sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": GET_LAYER_VERSION,
        "Resource": resource,
    });
    if let Some(org) = &s.organization_id {
        v["Condition"] = json!({ "StringEquals": { "aws:PrincipalOrgID": org } });
    }
    v
}

/// A layer version's policy document.
fn policy_json(v: &LayerVersion) -> Value {
    let arn = v.version_arn();
    json!({
        "Version": "2012-10-17",
        "Id": "default",
        "Statement": v
            .policy
            .statements
            .iter()
            .map(|s| statement_json(s, &arn))
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_render_as_lambda_shows_them() {
        let arn = "arn:aws:lambda:us-east-1:123456789012:layer:libs:1";
        let account = LayerStatement {
            sid: "xaccount".into(),
            principal: "210987654321".into(),
            organization_id: None,
        };
        assert_eq!(
            statement_json(&account, arn),
            json!({
                "Sid": "xaccount",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
                "Action": "lambda:GetLayerVersion",
                "Resource": arn,
            })
        );
        let org = LayerStatement {
            sid: "org".into(),
            principal: "*".into(),
            organization_id: Some("o-abcdefghij".into()),
        };
        let v = statement_json(&org, arn);
        assert_eq!(v["Principal"], json!("*"));
        assert_eq!(
            v["Condition"],
            json!({"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}})
        );
    }
}
