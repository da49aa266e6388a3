//! Resource-based policies of functions: statements added by `AddPermission`, and their
//! evaluation.
//!
//! Evaluation is a pure function of a policy and a request description ([`allows`],
//! [`evaluate`]), so Function URLs and cross-account calls decide the same way and the rules are
//! unit-tested without a server. Only `Allow` statements exist (Lambda's `AddPermission` adds no
//! others), so a request is allowed when any statement matches it and denied otherwise.
//!
//! Function URLs follow Lambda's current rule (announced for URLs created from October 2025, and
//! for every URL once the exception for older ones ended in November 2026): a request through a
//! URL needs both `lambda:InvokeFunctionUrl` and `lambda:InvokeFunction` ([`url_invoke_allowed`]);
//! the latter is usually granted with the condition `lambda:InvokedViaFunctionUrl`, which holds
//! only for requests that came through a URL.
//!
//! A policy document may not exceed [`MAX_POLICY_BYTES`] ([`check_length`]). Its size is that of
//! Lambda's JSON rendering, which only the front door knows, so the caller passes a measure.

use serde::{Deserialize, Serialize};

use crate::error::{ControlError, Result};
use crate::url::UrlAuthType;

/// Who a statement grants to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Principal {
    /// `*`: everyone, signed or not.
    Any,
    /// An account (given as its id or as `arn:aws:iam::<id>:root`).
    Account(String),
    /// Another IAM principal ARN (a user or role); kept as given.
    Arn(String),
    /// A service principal such as `s3.amazonaws.com`.
    Service(String),
}

/// One `Allow` statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub sid: String,
    /// `lambda:InvokeFunction`, `lambda:InvokeFunctionUrl`, `lambda:*`, `*`, ...
    pub action: String,
    pub principal: Principal,
    /// The function ARN, qualified when the permission was added with a qualifier.
    pub resource: String,
    #[serde(default)]
    pub source_arn: Option<String>,
    #[serde(default)]
    pub source_account: Option<String>,
    #[serde(default)]
    pub url_auth_type: Option<UrlAuthType>,
    #[serde(default)]
    pub invoked_via_function_url: Option<bool>,
    #[serde(default)]
    pub principal_org_id: Option<String>,
    #[serde(default)]
    pub event_source_token: Option<String>,
}

/// A function's (or one qualifier's) policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub statements: Vec<Statement>,
    /// Changes with every added or removed statement (`RevisionId` of `GetPolicy`).
    pub revision_id: String,
}

/// Lambda's limit on a function's (or one version's or alias's) resource-based policy: 20 KB.
pub const MAX_POLICY_BYTES: usize = 20 * 1024;

/// Measures a policy document as Lambda renders it (`GetPolicy`'s `Policy` string), in bytes.
pub type PolicySize = fn(&Policy) -> usize;

/// Refuses a policy whose document `size` measures over [`MAX_POLICY_BYTES`], with Lambda's
/// `PolicyLengthExceededException` message.
pub fn check_length(policy: &Policy, size: Option<PolicySize>) -> Result<()> {
    let Some(size) = size else { return Ok(()) };
    let len = size(policy);
    if len > MAX_POLICY_BYTES {
        return Err(ControlError::new(
            crate::ErrorKind::PolicyLengthExceeded,
            format!("The final policy size ({len}) is bigger than the limit ({MAX_POLICY_BYTES})."),
        ));
    }
    Ok(())
}

/// Inputs of `AddPermission`, already decoded from the wire.
#[derive(Debug, Clone, Default)]
pub struct PermissionInput {
    pub statement_id: String,
    pub action: String,
    pub principal: String,
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
    pub event_source_token: Option<String>,
    pub principal_org_id: Option<String>,
    pub url_auth_type: Option<String>,
    pub invoked_via_function_url: Option<bool>,
    pub revision_id: Option<String>,
    /// How to measure the resulting policy against [`MAX_POLICY_BYTES`]; `None` does not check.
    pub policy_size: Option<PolicySize>,
}

/// Who is asking, for evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester<'a> {
    /// No signature (a public Function URL request).
    Anonymous,
    /// A signed request by a key of this account.
    Account(&'a str),
    /// A service acting for a resource (event sources, notifications).
    Service(&'a str),
}

/// A request to check against a policy.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub action: &'a str,
    pub requester: Requester<'a>,
    pub source_arn: Option<&'a str>,
    pub source_account: Option<&'a str>,
    /// The URL's `AuthType` when the request came through a Function URL.
    pub url_auth_type: Option<&'a str>,
}

fn validation(field: &str, value: &str, constraint: &str) -> ControlError {
    ControlError::validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    ))
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The account of `arn:aws:iam::<account>:root`.
fn root_account(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:")?;
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    match parts.as_slice() {
        [partition, "iam", "", acct, "root"]
            if partition.starts_with("aws") && is_account(acct) =>
        {
            Some(acct)
        }
        _ => None,
    }
}

/// Parses `Principal` in the forms `AddPermission` takes.
pub fn parse_principal(p: &str) -> Result<Principal> {
    if p.is_empty() || p.chars().any(char::is_whitespace) {
        return Err(validation(
            "principal",
            p,
            "Member must satisfy regular expression pattern: [^\\s]+",
        ));
    }
    if p == "*" {
        return Ok(Principal::Any);
    }
    if is_account(p) {
        return Ok(Principal::Account(p.to_string()));
    }
    if let Some(acct) = root_account(p) {
        return Ok(Principal::Account(acct.to_string()));
    }
    if p.starts_with("arn:") && p.split(':').nth(2) == Some("iam") {
        return Ok(Principal::Arn(p.to_string()));
    }
    let service_like = p.contains('.')
        && p.split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if service_like {
        return Ok(Principal::Service(p.to_string()));
    }
    Err(ControlError::invalid(
        "The provided principal was invalid. Please check the principal and try again.",
    ))
}

/// Validates an `AddPermission` request and builds its statement for `resource`.
pub fn build_statement(input: &PermissionInput, resource: &str) -> Result<Statement> {
    let sid = &input.statement_id;
    if sid.is_empty()
        || sid.len() > 100
        || !sid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(validation(
            "statementId",
            sid,
            "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)",
        ));
    }
    let action = &input.action;
    let action_ok = action == "*"
        || action == "lambda:*"
        || action
            .strip_prefix("lambda:")
            .is_some_and(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_alphabetic()));
    if !action_ok {
        return Err(validation(
            "action",
            action,
            "Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])",
        ));
    }
    let principal = parse_principal(&input.principal)?;
    if let Some(a) = &input.source_account
        && !is_account(a)
    {
        return Err(validation(
            "sourceAccount",
            a,
            "Member must satisfy regular expression pattern: \\d{12}",
        ));
    }
    if let Some(arn) = &input.source_arn {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        if parts.len() < 6
            || parts[0] != "arn"
            || !parts[1].starts_with("aws")
            || parts[2].is_empty()
        {
            return Err(validation(
                "sourceArn",
                arn,
                "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:([a-z]{2}(-gov)?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)",
            ));
        }
    }
    let url_auth_type = input
        .url_auth_type
        .as_deref()
        .map(|t| UrlAuthType::parse(t, "functionUrlAuthType"))
        .transpose()?;
    if let Some(org) = &input.principal_org_id {
        let ok = org.len() >= 12
            && org.len() <= 34
            && org.strip_prefix("o-").is_some_and(|r| {
                r.len() >= 10
                    && r.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
        if !ok {
            return Err(validation(
                "principalOrgID",
                org,
                "Member must satisfy regular expression pattern: o-[a-z0-9]{10,32}",
            ));
        }
    }
    Ok(Statement {
        sid: sid.clone(),
        action: action.clone(),
        principal,
        resource: resource.to_string(),
        source_arn: input.source_arn.clone(),
        source_account: input.source_account.clone(),
        url_auth_type,
        invoked_via_function_url: input.invoked_via_function_url,
        principal_org_id: input.principal_org_id.clone(),
        event_source_token: input.event_source_token.clone(),
    })
}

/// IAM's `ArnLike`: `*` matches any run of characters and `?` any one character.
pub fn arn_like(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    // Iterative wildcard match with backtracking to the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

fn action_matches(granted: &str, wanted: &str) -> bool {
    granted == "*"
        || granted.eq_ignore_ascii_case("lambda:*")
        || granted.eq_ignore_ascii_case(wanted)
}

fn principal_matches(granted: &Principal, who: Requester<'_>) -> bool {
    match (granted, who) {
        (Principal::Any, _) => true,
        (Principal::Account(a), Requester::Account(b)) => a == b,
        (Principal::Service(s), Requester::Service(t)) => s.eq_ignore_ascii_case(t),
        // Callers act as their account's root; user and role principals never match them.
        _ => false,
    }
}

fn conditions_hold(s: &Statement, r: &AccessRequest<'_>) -> bool {
    if let Some(want) = &s.source_arn
        && !r.source_arn.is_some_and(|got| arn_like(want, got))
    {
        return false;
    }
    if let Some(want) = &s.source_account
        && r.source_account != Some(want.as_str())
    {
        return false;
    }
    if let Some(want) = s.url_auth_type
        && r.url_auth_type != Some(want.as_str())
    {
        return false;
    }
    if let Some(want) = s.invoked_via_function_url
        && want != r.url_auth_type.is_some()
    {
        return false;
    }
    // Updraft has no organizations and no event-source tokens: such conditions never hold.
    s.principal_org_id.is_none() && s.event_source_token.is_none()
}

/// Whether one statement allows the request.
pub fn statement_allows(s: &Statement, r: &AccessRequest<'_>) -> bool {
    action_matches(&s.action, r.action)
        && principal_matches(&s.principal, r.requester)
        && conditions_hold(s, r)
}

/// Whether any statement of `policy` allows the request.
pub fn evaluate(policy: &Policy, r: &AccessRequest<'_>) -> bool {
    policy.statements.iter().any(|s| statement_allows(s, r))
}

/// Whether a request through a Function URL with `auth_type` may invoke the function: the policy
/// must allow both `lambda:InvokeFunctionUrl` and `lambda:InvokeFunction` (Lambda's current rule
/// for function URLs). `principal_account` is the signing account, `None` for an unsigned request.
pub fn url_invoke_allowed(
    policy: &Policy,
    principal_account: Option<&str>,
    auth_type: UrlAuthType,
) -> bool {
    ["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"]
        .iter()
        .all(|action| {
            allows(
                policy,
                action,
                principal_account,
                None,
                None,
                Some(auth_type.as_str()),
            )
        })
}

/// Whether `policy` allows `action` to the caller: `principal_account` is the signing account,
/// `None` for an unsigned request; `url_auth_type` is set when the request came through a
/// Function URL with that `AuthType`.
pub fn allows(
    policy: &Policy,
    action: &str,
    principal_account: Option<&str>,
    source_arn: Option<&str>,
    source_account: Option<&str>,
    url_auth_type: Option<&str>,
) -> bool {
    evaluate(
        policy,
        &AccessRequest {
            action,
            requester: match principal_account {
                Some(a) => Requester::Account(a),
                None => Requester::Anonymous,
            },
            source_arn,
            source_account,
            url_auth_type,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

    fn stmt(f: impl FnOnce(&mut PermissionInput)) -> Statement {
        let mut i = PermissionInput {
            statement_id: "s1".into(),
            action: "lambda:InvokeFunctionUrl".into(),
            principal: "*".into(),
            ..Default::default()
        };
        f(&mut i);
        build_statement(&i, FN).unwrap()
    }

    fn policy(statements: Vec<Statement>) -> Policy {
        Policy {
            statements,
            revision_id: "r".into(),
        }
    }

    #[test]
    fn url_requests_need_invoke_function_url_and_invoke_function() {
        let url_stmt = stmt(|i| i.url_auth_type = Some("NONE".into()));
        let via_url = stmt(|i| {
            i.statement_id = "s2".into();
            i.action = "lambda:InvokeFunction".into();
            i.invoked_via_function_url = Some(true);
        });
        let only_url = policy(vec![url_stmt.clone()]);
        assert!(!url_invoke_allowed(&only_url, None, UrlAuthType::None));
        let only_invoke = policy(vec![via_url.clone()]);
        assert!(!url_invoke_allowed(&only_invoke, None, UrlAuthType::None));
        let both = policy(vec![url_stmt, via_url]);
        assert!(url_invoke_allowed(&both, None, UrlAuthType::None));
        // The InvokedViaFunctionUrl statement opens the URL, not the Invoke API.
        assert!(!allows(
            &both,
            "lambda:InvokeFunction",
            None,
            None,
            None,
            None
        ));
        // An AWS_IAM URL is not opened to others by statements conditioned on NONE.
        assert!(!url_invoke_allowed(
            &both,
            Some("210987654321"),
            UrlAuthType::AwsIam
        ));
        let other = "210987654321";
        let cross = policy(vec![
            stmt(|i| {
                i.principal = other.into();
                i.url_auth_type = Some("AWS_IAM".into());
            }),
            stmt(|i| {
                i.statement_id = "s2".into();
                i.principal = other.into();
                i.action = "lambda:InvokeFunction".into();
            }),
        ]);
        assert!(url_invoke_allowed(&cross, Some(other), UrlAuthType::AwsIam));
        assert!(!url_invoke_allowed(
            &cross,
            Some("111111111111"),
            UrlAuthType::AwsIam
        ));
    }

    #[test]
    fn policy_length_is_limited_to_20_kb() {
        let p = policy(vec![stmt(|_| {})]);
        assert!(check_length(&p, None).is_ok());
        assert!(check_length(&p, Some(|_| MAX_POLICY_BYTES)).is_ok());
        let e = check_length(&p, Some(|_| MAX_POLICY_BYTES + 1)).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::PolicyLengthExceeded);
        assert_eq!(
            e.message,
            "The final policy size (20481) is bigger than the limit (20480)."
        );
    }

    #[test]
    fn public_url_needs_the_none_condition() {
        let p = policy(vec![stmt(|i| i.url_auth_type = Some("NONE".into()))]);
        assert!(allows(
            &p,
            "lambda:InvokeFunctionUrl",
            None,
            None,
            None,
            Some("NONE")
        ));
        // Not for plain Invoke, nor for another action, nor for an IAM URL.
        assert!(!allows(
            &p,
            "lambda:InvokeFunctionUrl",
            None,
            None,
            None,
            None
        ));
        assert!(!allows(
            &p,
            "lambda:InvokeFunction",
            None,
            None,
            None,
            Some("NONE")
        ));
        assert!(!allows(
            &p,
            "lambda:InvokeFunctionUrl",
            None,
            None,
            None,
            Some("AWS_IAM")
        ));
        assert!(!allows(
            &Policy::default(),
            "lambda:InvokeFunctionUrl",
            None,
            None,
            None,
            Some("NONE")
        ));
    }

    #[test]
    fn account_principals() {
        let p = policy(vec![stmt(|i| {
            i.principal = "arn:aws:iam::210987654321:root".into();
            i.action = "lambda:*".into();
        })]);
        assert_eq!(
            p.statements[0].principal,
            Principal::Account("210987654321".into())
        );
        assert!(allows(
            &p,
            "lambda:InvokeFunction",
            Some("210987654321"),
            None,
            None,
            None
        ));
        assert!(!allows(
            &p,
            "lambda:InvokeFunction",
            Some("111111111111"),
            None,
            None,
            None
        ));
        assert!(!allows(&p, "lambda:InvokeFunction", None, None, None, None));
    }

    #[test]
    fn service_principal_with_source_conditions() {
        let p = policy(vec![stmt(|i| {
            i.principal = "s3.amazonaws.com".into();
            i.action = "lambda:InvokeFunction".into();
            i.source_arn = Some("arn:aws:s3:::bucket-*".into());
            i.source_account = Some("123456789012".into());
        })]);
        let req = |arn: Option<&'static str>, acct: Option<&'static str>| AccessRequest {
            action: "lambda:InvokeFunction",
            requester: Requester::Service("s3.amazonaws.com"),
            source_arn: arn,
            source_account: acct,
            url_auth_type: None,
        };
        assert!(evaluate(
            &p,
            &req(Some("arn:aws:s3:::bucket-a"), Some("123456789012"))
        ));
        assert!(!evaluate(
            &p,
            &req(Some("arn:aws:s3:::other"), Some("123456789012"))
        ));
        assert!(!evaluate(&p, &req(Some("arn:aws:s3:::bucket-a"), None)));
        assert!(!evaluate(&p, &req(None, Some("123456789012"))));
        // An account principal is not the service.
        assert!(!allows(
            &p,
            "lambda:InvokeFunction",
            Some("123456789012"),
            Some("arn:aws:s3:::bucket-a"),
            Some("123456789012"),
            None
        ));
    }

    #[test]
    fn invoked_via_function_url_condition() {
        let p = policy(vec![stmt(|i| {
            i.action = "lambda:InvokeFunction".into();
            i.invoked_via_function_url = Some(true);
        })]);
        assert!(allows(
            &p,
            "lambda:InvokeFunction",
            None,
            None,
            None,
            Some("NONE")
        ));
        assert!(!allows(&p, "lambda:InvokeFunction", None, None, None, None));
    }

    #[test]
    fn arn_like_wildcards() {
        assert!(arn_like("arn:aws:s3:::b*", "arn:aws:s3:::bucket"));
        assert!(arn_like("arn:aws:s3:::b?cket", "arn:aws:s3:::bucket"));
        assert!(arn_like("*", "anything"));
        assert!(arn_like("a*b*c", "axxbyyc"));
        assert!(!arn_like("a*b*c", "axxbyy"));
        assert!(!arn_like("arn:aws:s3:::b", "arn:aws:s3:::bucket"));
    }

    #[test]
    fn input_validation() {
        let base = PermissionInput {
            statement_id: "ok".into(),
            action: "lambda:InvokeFunction".into(),
            principal: "*".into(),
            ..Default::default()
        };
        let bad = |f: fn(&mut PermissionInput)| {
            let mut i = base.clone();
            f(&mut i);
            build_statement(&i, FN).unwrap_err().kind
        };
        use crate::ErrorKind::*;
        assert_eq!(bad(|i| i.statement_id = "a b".into()), Validation);
        assert_eq!(bad(|i| i.action = "s3:GetObject".into()), Validation);
        assert_eq!(bad(|i| i.principal = "nobody".into()), InvalidParameter);
        assert_eq!(bad(|i| i.source_account = Some("12".into())), Validation);
        assert_eq!(bad(|i| i.url_auth_type = Some("OPEN".into())), Validation);
        assert!(build_statement(&base, FN).is_ok());
    }
}
