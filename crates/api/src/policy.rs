//! Resource-based policy operations on the wire: `AddPermission`, `RemovePermission`,
//! `GetPolicy`, with statements rendered in IAM's policy language exactly as Lambda shows them.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use updraft_control::policy::{PermissionInput, Policy, Principal, Statement};

use crate::auth::Caller;
use crate::error::{ApiResult, blocking, owned};
use crate::{AppState, Incoming, empty, json};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddPermissionWire {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    source_arn: Option<String>,
    source_account: Option<String>,
    event_source_token: Option<String>,
    revision_id: Option<String>,
    #[serde(rename = "PrincipalOrgID")]
    principal_org_id: Option<String>,
    function_url_auth_type: Option<String>,
    invoked_via_function_url: Option<bool>,
}

fn principal_json(p: &Principal) -> Value {
    match p {
        Principal::Any => json!("*"),
        Principal::Account(a) => json!({ "AWS": format!("arn:aws:iam::{a}:root") }),
        Principal::Arn(arn) => json!({ "AWS": arn }),
        Principal::Service(s) => json!({ "Service": s }),
    }
}

/// Renders one statement (`Sid`, `Effect`, `Principal`, `Action`, `Resource`, `Condition`).
pub fn statement_json(s: &Statement) -> Value {
    let mut m = Map::new();
    m.insert("Sid".into(), json!(s.sid));
    m.insert("Effect".into(), json!("Allow"));
    m.insert("Principal".into(), principal_json(&s.principal));
    m.insert("Action".into(), json!(s.action));
    m.insert("Resource".into(), json!(s.resource));
    let mut string_equals = Map::new();
    if let Some(a) = &s.source_account {
        string_equals.insert("AWS:SourceAccount".into(), json!(a));
    }
    if let Some(t) = s.url_auth_type {
        string_equals.insert("lambda:FunctionUrlAuthType".into(), json!(t.as_str()));
    }
    if let Some(o) = &s.principal_org_id {
        string_equals.insert("aws:PrincipalOrgID".into(), json!(o));
    }
    if let Some(t) = &s.event_source_token {
        string_equals.insert("lambda:EventSourceToken".into(), json!(t));
    }
    let mut condition = Map::new();
    if !string_equals.is_empty() {
        condition.insert("StringEquals".into(), Value::Object(string_equals));
    }
    if let Some(arn) = &s.source_arn {
        condition.insert("ArnLike".into(), json!({ "AWS:SourceArn": arn }));
    }
    if let Some(b) = s.invoked_via_function_url {
        condition.insert(
            "Bool".into(),
            json!({ "lambda:InvokedViaFunctionUrl": b.to_string() }),
        );
    }
    if !condition.is_empty() {
        m.insert("Condition".into(), Value::Object(condition));
    }
    Value::Object(m)
}

/// Renders a whole policy document.
pub fn policy_json(p: &Policy) -> Value {
    json!({
        "Version": "2012-10-17",
        "Id": "default",
        "Statement": p.statements.iter().map(statement_json).collect::<Vec<_>>(),
    })
}

/// `AddPermission`: `201 {"Statement": "<statement as a JSON string>"}`.
pub async fn add(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    f: &str,
) -> ApiResult<Response> {
    let w: AddPermissionWire = crate::wire::parse_body(&req.body)?;
    let input = PermissionInput {
        statement_id: crate::wire::require(w.statement_id, "statementId")?,
        action: crate::wire::require(w.action, "action")?,
        principal: crate::wire::require(w.principal, "principal")?,
        source_arn: w.source_arn,
        source_account: w.source_account,
        event_source_token: w.event_source_token,
        principal_org_id: w.principal_org_id,
        url_auth_type: w.function_url_auth_type,
        invoked_via_function_url: w.invoked_via_function_url,
        revision_id: w.revision_id,
        policy_size: Some(|p| policy_json(p).to_string().len()),
    };
    let (s, c, f, q) = owned(state, caller, f, req.param("Qualifier"));
    let statement = blocking(move || {
        Ok(s.control
            .add_permission(&c.account_id, &f, q.as_deref(), input)?)
    })
    .await?;
    Ok(json(
        StatusCode::CREATED,
        json!({ "Statement": statement_json(&statement).to_string() }),
    ))
}

/// `RemovePermission`.
pub async fn remove(
    state: &Arc<AppState>,
    caller: &Caller,
    req: &Incoming,
    f: &str,
    sid: &str,
) -> ApiResult<Response> {
    let (s, c, f, q) = owned(state, caller, f, req.param("Qualifier"));
    let sid = sid.to_string();
    let rev = req.param("RevisionId").map(str::to_string);
    blocking(move || {
        Ok(s.control
            .remove_permission(&c.account_id, &f, q.as_deref(), &sid, rev.as_deref())?)
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `GetPolicy`: `{"Policy": "<policy as a JSON string>", "RevisionId": ...}`.
pub fn get(state: &Arc<AppState>, caller: &Caller, req: &Incoming, f: &str) -> ApiResult<Response> {
    let p = state
        .control
        .get_policy(&caller.account_id, f, req.param("Qualifier"))?;
    Ok(json(
        StatusCode::OK,
        json!({ "Policy": policy_json(&p).to_string(), "RevisionId": p.revision_id }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use updraft_control::policy::build_statement;

    const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

    #[test]
    fn public_url_statement_shape() {
        let s = build_statement(
            &PermissionInput {
                statement_id: "FunctionURLAllowPublicAccess".into(),
                action: "lambda:InvokeFunctionUrl".into(),
                principal: "*".into(),
                url_auth_type: Some("NONE".into()),
                ..Default::default()
            },
            FN,
        )
        .unwrap();
        assert_eq!(
            statement_json(&s),
            json!({
                "Sid": "FunctionURLAllowPublicAccess",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "lambda:InvokeFunctionUrl",
                "Resource": FN,
                "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}},
            })
        );
    }

    #[test]
    fn account_and_service_statements() {
        let acct = build_statement(
            &PermissionInput {
                statement_id: "x".into(),
                action: "lambda:InvokeFunction".into(),
                principal: "210987654321".into(),
                ..Default::default()
            },
            FN,
        )
        .unwrap();
        let v = statement_json(&acct);
        assert_eq!(
            v["Principal"],
            json!({"AWS": "arn:aws:iam::210987654321:root"})
        );
        assert!(v.get("Condition").is_none());
        let svc = build_statement(
            &PermissionInput {
                statement_id: "s3".into(),
                action: "lambda:InvokeFunction".into(),
                principal: "s3.amazonaws.com".into(),
                source_arn: Some("arn:aws:s3:::bucket".into()),
                source_account: Some("123456789012".into()),
                ..Default::default()
            },
            &format!("{FN}:live"),
        )
        .unwrap();
        let v = statement_json(&svc);
        assert_eq!(v["Principal"], json!({"Service": "s3.amazonaws.com"}));
        assert_eq!(v["Resource"], format!("{FN}:live"));
        assert_eq!(
            v["Condition"],
            json!({
                "StringEquals": {"AWS:SourceAccount": "123456789012"},
                "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket"},
            })
        );
    }
}
