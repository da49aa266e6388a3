//! Lambda's parameter limits and patterns for function configuration.

use std::collections::BTreeMap;

use crate::error::{ControlError, Result};

/// Runtimes Lambda accepts for new functions and updates.
pub const SUPPORTED_RUNTIMES: &[&str] = &[
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "java8.al2",
    "java11",
    "java17",
    "java21",
    "java25",
    "dotnet8",
    "dotnet10",
    "ruby3.2",
    "ruby3.3",
    "ruby3.4",
    "provided",
    "provided.al2",
    "provided.al2023",
];

/// Runtimes Lambda knows but no longer accepts for creates and updates.
const DEPRECATED_RUNTIMES: &[&str] = &[
    "nodejs",
    "nodejs4.3",
    "nodejs4.3-edge",
    "nodejs6.10",
    "nodejs8.10",
    "nodejs10.x",
    "nodejs12.x",
    "nodejs14.x",
    "nodejs16.x",
    "java8",
    "python2.7",
    "python3.6",
    "python3.7",
    "python3.8",
    "dotnetcore1.0",
    "dotnetcore2.0",
    "dotnetcore2.1",
    "dotnetcore3.1",
    "dotnet6",
    "go1.x",
    "ruby2.5",
    "ruby2.7",
    "ruby4.0",
];

/// Upper bound of `MemorySize` in MB.
pub const MAX_MEMORY_MB: i64 = 10_240;
/// Upper bound of `Timeout` in seconds.
pub const MAX_TIMEOUT_S: i64 = 900;
/// Upper bound of the serialised environment variables.
pub const MAX_ENV_BYTES: usize = 4096;

fn constraint(value: impl std::fmt::Display, field: &str, what: &str) -> ControlError {
    ControlError::validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {what}"
    ))
}

pub fn runtime(r: &str) -> Result<()> {
    if SUPPORTED_RUNTIMES.contains(&r) {
        Ok(())
    } else if DEPRECATED_RUNTIMES.contains(&r) {
        Err(ControlError::invalid(format!(
            "The runtime parameter of {r} is no longer supported for creating or updating AWS Lambda \
             functions. We recommend you use a supported runtime while creating or updating functions."
        )))
    } else {
        // Lambda answers an unknown runtime with InvalidParameterValueException (not the
        // generic ValidationException), because the value may also be a runtime-version ARN.
        Err(ControlError::invalid(format!(
            "Value {r} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [{}] or be a valid ARN",
            SUPPORTED_RUNTIMES.join(", ")
        )))
    }
}

pub fn memory_size(m: i64) -> Result<u32> {
    if (128..=MAX_MEMORY_MB).contains(&m) {
        Ok(m as u32)
    } else if m < 128 {
        Err(ControlError::invalid(format!(
            "'MemorySize' value failed to satisfy constraint: Member must have value greater than or equal to 128 (got {m})"
        )))
    } else {
        Err(ControlError::invalid(format!(
            "'MemorySize' value failed to satisfy constraint: Member must have value less than or equal to {MAX_MEMORY_MB} (got {m})"
        )))
    }
}

pub fn timeout(t: i64) -> Result<u32> {
    if (1..=MAX_TIMEOUT_S).contains(&t) {
        Ok(t as u32)
    } else if t < 1 {
        Err(ControlError::invalid(format!(
            "'Timeout' value failed to satisfy constraint: Member must have value greater than or equal to 1 (got {t})"
        )))
    } else {
        Err(ControlError::invalid(format!(
            "'Timeout' value failed to satisfy constraint: Member must have value less than or equal to {MAX_TIMEOUT_S} (got {t})"
        )))
    }
}

pub fn ephemeral_storage(s: i64) -> Result<u32> {
    if (512..=10_240).contains(&s) {
        Ok(s as u32)
    } else {
        Err(ControlError::invalid(format!(
            "'EphemeralStorage.Size' value failed to satisfy constraint: Member must have value between 512 and 10240 (got {s})"
        )))
    }
}

/// Lambda's answer when a function would set aside more concurrency than the account can spare;
/// `what` names the parameter as Lambda's message does.
pub fn unreserved_minimum(what: &str, min_unreserved: u32) -> ControlError {
    ControlError::invalid(format!(
        "Specified {what} for function decreases account's UnreservedConcurrentExecution below its minimum value of [{min_unreserved}]."
    ))
}

/// `ReservedConcurrentExecutions`: at least 0 (the model's `Min`) and, on its own, at most what
/// the account can set aside while `min_unreserved` stays unreserved. Checked before any sum is
/// formed, so no caller-chosen value (up to `i64::MAX`) reaches the arithmetic of the account
/// check.
pub fn reserved_concurrency(n: i64, account_limit: u32, min_unreserved: u32) -> Result<u32> {
    if n < 0 {
        return Err(constraint(
            n,
            "reservedConcurrentExecutions",
            "Member must have value greater than or equal to 0",
        ));
    }
    let spare = account_limit.saturating_sub(min_unreserved);
    match u32::try_from(n) {
        Ok(n) if n <= spare => Ok(n),
        _ => Err(unreserved_minimum(
            "ReservedConcurrentExecutions",
            min_unreserved,
        )),
    }
}

/// `DeadLetterConfig.TargetArn`: an SQS queue or SNS topic ARN; empty means none.
pub fn dead_letter_target(arn: Option<&str>) -> Result<Option<String>> {
    let Some(arn) = arn.filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && (parts[2] == "sqs" || parts[2] == "sns")
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && !parts[5].is_empty();
    if ok {
        Ok(Some(arn.to_string()))
    } else {
        Err(ControlError::invalid(format!(
            "The provided target arn {arn} is invalid: a dead-letter target must be an Amazon SQS queue or Amazon SNS topic ARN."
        )))
    }
}

/// Handler: 0–128 characters without whitespace.
pub fn handler(h: &str) -> Result<()> {
    if h.len() <= 128 && !h.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(constraint(
            h,
            "handler",
            "Member must satisfy regular expression pattern: [^\\s]+",
        ))
    }
}

pub fn description(d: &str) -> Result<()> {
    if d.chars().count() <= 256 {
        Ok(())
    } else {
        Err(constraint(
            d,
            "description",
            "Member must have length less than or equal to 256",
        ))
    }
}

/// Role: `arn:aws:iam::<12 digits>:role/<path and name>`.
pub fn role(r: &str) -> Result<()> {
    let ok = (|| {
        let rest = r.strip_prefix("arn:")?;
        let (partition, rest) = rest.split_once(':')?;
        if !partition.starts_with("aws") {
            return None;
        }
        let rest = rest.strip_prefix("iam::")?;
        let (account, rest) = rest.split_once(':')?;
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let name = rest.strip_prefix("role")?;
        let name = name.strip_prefix('/').unwrap_or(name);
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-/".contains(c));
        valid.then_some(())
    })();
    ok.ok_or_else(|| {
        constraint(
            r,
            "role",
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
        )
    })
}

/// Environment variables: names `[a-zA-Z]([a-zA-Z0-9_])+`, no reserved names, 4 KB in total.
pub fn environment(vars: &BTreeMap<String, String>) -> Result<()> {
    for name in vars.keys() {
        let mut chars = name.chars();
        let ok = name.len() >= 2
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(constraint(
                name,
                "environment.variables",
                "Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+",
            ));
        }
        if RESERVED_ENV.contains(&name.as_str()) {
            return Err(ControlError::invalid(format!(
                "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {name}"
            )));
        }
    }
    let size = serde_json::to_string(vars).map(|s| s.len()).unwrap_or(0);
    if size > MAX_ENV_BYTES {
        return Err(ControlError::invalid(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {size} bytes"
        )));
    }
    Ok(())
}

/// Variables Lambda sets itself and refuses from users.
const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

pub fn architectures(a: &[String]) -> Result<()> {
    match a {
        [one] if one == "x86_64" || one == "arm64" => Ok(()),
        _ => Err(ControlError::validation(
            "1 validation error detected: Value at 'architectures' failed to satisfy constraint: \
             Member must have length less than or equal to 1, and each member must satisfy enum value set: [x86_64, arm64]",
        )),
    }
}

pub fn log_format(f: &str) -> Result<()> {
    if f == "Text" || f == "JSON" {
        Ok(())
    } else {
        Err(constraint(
            f,
            "loggingConfig.logFormat",
            "Member must satisfy enum value set: [JSON, Text]",
        ))
    }
}

pub fn log_level(field: &str, l: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&l) {
        Ok(())
    } else {
        Err(constraint(
            l,
            field,
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        ))
    }
}

pub fn log_group(g: &str) -> Result<()> {
    let ok = !g.is_empty()
        && g.len() <= 512
        && g.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_/#".contains(c));
    if ok {
        Ok(())
    } else {
        Err(constraint(
            g,
            "loggingConfig.logGroup",
            "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
        ))
    }
}

/// Alias name: `(?!^[0-9]+$)([a-zA-Z0-9-_]+)`, 1–128 characters.
pub fn alias_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 128
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !n.chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(constraint(
            n,
            "name",
            "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)",
        ))
    }
}

/// Tags: at most 50, keys 1–128 characters not starting with `aws:`, values ≤ 256.
pub fn tags(t: &BTreeMap<String, String>) -> Result<()> {
    if t.len() > 50 {
        return Err(ControlError::invalid(
            "Number of tags exceeds resource tag limit.",
        ));
    }
    for (k, v) in t {
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(ControlError::invalid(format!(
                "Tag key or value is invalid: {k}"
            )));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(ControlError::invalid(
                "Tag keys prefixed with 'aws:' are reserved for AWS use.",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn dead_letter_targets_are_queues_or_topics() {
        assert_eq!(dead_letter_target(None).unwrap(), None);
        assert_eq!(dead_letter_target(Some("")).unwrap(), None);
        for ok in [
            "arn:aws:sqs:us-east-1:123456789012:dlq",
            "arn:aws:sns:eu-west-1:123456789012:topic",
        ] {
            assert_eq!(dead_letter_target(Some(ok)).unwrap().as_deref(), Some(ok));
        }
        for bad in [
            "dlq",
            "arn:aws:lambda:us-east-1:123456789012:function:f",
            "arn:aws:sqs:us-east-1:1234:dlq",
            "arn:aws:sqs:us-east-1:123456789012:",
        ] {
            let e = dead_letter_target(Some(bad)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidParameter, "{bad}");
        }
    }

    #[test]
    fn runtimes() {
        assert!(runtime("python3.12").is_ok());
        assert!(runtime("provided.al2023").is_ok());
        assert_eq!(
            runtime("python2.7").unwrap_err().kind,
            ErrorKind::InvalidParameter
        );
        assert_eq!(
            runtime("cobol1").unwrap_err().kind,
            ErrorKind::InvalidParameter
        );
    }

    #[test]
    fn reserved_concurrency_range() {
        assert_eq!(reserved_concurrency(0, 1000, 100).unwrap(), 0);
        assert_eq!(reserved_concurrency(900, 1000, 100).unwrap(), 900);
        for (n, kind) in [
            (-1, ErrorKind::Validation),
            (i64::MIN, ErrorKind::Validation),
            (901, ErrorKind::InvalidParameter),
            (i64::from(u32::MAX), ErrorKind::InvalidParameter),
            (i64::from(u32::MAX) + 1, ErrorKind::InvalidParameter),
            (i64::MAX, ErrorKind::InvalidParameter),
        ] {
            assert_eq!(
                reserved_concurrency(n, 1000, 100).unwrap_err().kind,
                kind,
                "{n}"
            );
        }
        // An account whose limit is below the unreserved minimum can reserve nothing.
        assert_eq!(reserved_concurrency(0, 50, 100).unwrap(), 0);
        assert!(reserved_concurrency(1, 50, 100).is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(memory_size(128).unwrap(), 128);
        assert_eq!(memory_size(10_240).unwrap(), 10_240);
        assert!(memory_size(127).is_err());
        assert!(memory_size(10_241).is_err());
        assert!(timeout(0).is_err());
        assert!(timeout(901).is_err());
        assert_eq!(timeout(900).unwrap(), 900);
        assert!(ephemeral_storage(511).is_err());
        assert!(ephemeral_storage(10_241).is_err());
        // Values far outside the range are refused, not truncated into it.
        for n in [i64::MIN, -1, i64::from(u32::MAX) + 128, i64::MAX] {
            assert!(memory_size(n).is_err(), "{n}");
            assert!(timeout(n).is_err(), "{n}");
            assert!(ephemeral_storage(n).is_err(), "{n}");
        }
    }

    #[test]
    fn handlers_and_roles() {
        assert!(handler("app.handler").is_ok());
        assert!(handler("a b").is_err());
        assert!(handler(&"x".repeat(129)).is_err());
        assert!(role("arn:aws:iam::123456789012:role/lambda-role").is_ok());
        assert!(role("arn:aws:iam::123456789012:role/service-role/x.y@z").is_ok());
        assert!(role("not-an-arn").is_err());
        assert!(role("arn:aws:iam::1234:role/x").is_err());
        assert!(role("arn:aws:iam::123456789012:user/x").is_err());
    }

    #[test]
    fn environment_rules() {
        let mut env = BTreeMap::new();
        env.insert("GOOD_NAME".to_string(), "v".to_string());
        assert!(environment(&env).is_ok());
        env.insert("1BAD".to_string(), "v".to_string());
        assert_eq!(environment(&env).unwrap_err().kind, ErrorKind::Validation);
        let mut env = BTreeMap::new();
        env.insert("AWS_REGION".to_string(), "x".to_string());
        assert_eq!(
            environment(&env).unwrap_err().kind,
            ErrorKind::InvalidParameter
        );
        let mut env = BTreeMap::new();
        env.insert("BIG".to_string(), "x".repeat(4100));
        assert!(environment(&env).unwrap_err().message.contains("4KB"));
    }

    #[test]
    fn alias_names() {
        assert!(alias_name("live").is_ok());
        assert!(alias_name("v1-prod_2").is_ok());
        assert!(alias_name("123").is_err());
        assert!(alias_name("").is_err());
        assert!(alias_name("a:b").is_err());
    }

    #[test]
    fn tag_rules() {
        let mut t = BTreeMap::new();
        t.insert("team".to_string(), "core".to_string());
        assert!(tags(&t).is_ok());
        t.insert("aws:x".to_string(), "y".to_string());
        assert!(tags(&t).is_err());
        let many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(tags(&many).is_err());
    }
}
