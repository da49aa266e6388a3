//! Bucket policies: who besides the owner may do what. Only what cross-account sharing needs
//! is evaluated: `Allow`/`Deny` statements, `Principal` (`*`, account ids, `arn:aws:iam::<id>:root`),
//! `Action` (`s3:*`, `s3:Get*`, exact names) and `Resource` (bucket and object ARNs with `*`
//! and `?`). An explicit deny wins; the owner is always allowed.

use serde_json::Value;

use crate::error::S3Error;

/// Checks a policy document when it is put: S3's `MalformedPolicy` for what cannot be read.
pub fn validate(doc: &str) -> Result<(), S3Error> {
    let malformed = |m: &str| S3Error::new("MalformedPolicy", 400, m.to_string());
    let v: Value = serde_json::from_str(doc)
        .map_err(|_| malformed("Policies must be valid JSON and the first byte must be '{'"))?;
    let statements = match v.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => return Err(malformed("Missing required field Statement")),
    };
    for s in &statements {
        match s.get("Effect").and_then(Value::as_str) {
            Some("Allow" | "Deny") => {}
            _ => return Err(malformed("Invalid effect")),
        }
        if s.get("Principal").is_none() {
            return Err(malformed("Missing required field Principal"));
        }
        if s.get("Action").is_none() {
            return Err(malformed("Missing required field Action"));
        }
        if s.get("Resource").is_none() {
            return Err(malformed("Missing required field Resource"));
        }
    }
    Ok(())
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `*` and `?` wildcard matching, case-sensitive.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn principal_matches(principal: &Value, account: &str) -> bool {
    let one = |p: &str| {
        p == "*"
            || p == account
            || p == format!("arn:aws:iam::{account}:root")
            || p.starts_with(&format!("arn:aws:iam::{account}:"))
    };
    match principal {
        Value::String(s) => one(s),
        Value::Object(m) => strings(m.get("AWS")).into_iter().any(one),
        _ => false,
    }
}

/// Whether `policy` lets `account` do `action` (`s3:GetObject`) on `resource` (an ARN).
pub fn allows(policy: &str, account: &str, action: &str, resource: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    let statements = match v.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => return false,
    };
    let mut allowed = false;
    for s in &statements {
        let Some(principal) = s.get("Principal") else {
            continue;
        };
        if !principal_matches(principal, account) {
            continue;
        }
        let action_ok = strings(s.get("Action"))
            .into_iter()
            .any(|a| wildcard(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()));
        let resource_ok = strings(s.get("Resource"))
            .into_iter()
            .any(|r| wildcard(r, resource));
        if !(action_ok && resource_ok) {
            continue;
        }
        match s.get("Effect").and_then(Value::as_str) {
            Some("Deny") => return false,
            Some("Allow") => allowed = true,
            _ => {}
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_account_read() {
        let p = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":["s3:GetObject"],"Resource":"arn:aws:s3:::shared/*"}]}"#;
        validate(p).unwrap();
        assert!(allows(
            p,
            "222222222222",
            "s3:GetObject",
            "arn:aws:s3:::shared/a/b"
        ));
        assert!(!allows(
            p,
            "222222222222",
            "s3:PutObject",
            "arn:aws:s3:::shared/a/b"
        ));
        assert!(!allows(
            p,
            "333333333333",
            "s3:GetObject",
            "arn:aws:s3:::shared/a/b"
        ));
        assert!(!allows(
            p,
            "222222222222",
            "s3:GetObject",
            "arn:aws:s3:::other/a"
        ));
        assert!(validate("{}").is_err());
        assert!(wildcard("s3:get*", "s3:getobject"));
    }
}
