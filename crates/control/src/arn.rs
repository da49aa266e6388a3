//! Function identifiers as Lambda accepts them.
//!
//! Every API that takes a `FunctionName` accepts a bare name (`my-fn`), a partial ARN
//! (`123456789012:function:my-fn`) or a full ARN (`arn:aws:lambda:us-east-1:123456789012:function:my-fn`),
//! each optionally followed by `:qualifier` (`$LATEST`, a version number or an alias).

use crate::error::{ControlError, Result};

/// A parsed `FunctionName` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    pub name: String,
    /// Account named in an ARN form, if any.
    pub account_id: Option<String>,
    /// Region named in a full ARN, if any.
    pub region: Option<String>,
    /// Qualifier written into the identifier, if any.
    pub qualifier: Option<String>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Whether `s` is a valid bare function name (1–64 of `[a-zA-Z0-9-_]`).
pub fn valid_function_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(is_name_char)
}

/// Whether `s` is a valid qualifier: `$LATEST`, a version number or an alias name.
pub fn valid_qualifier(s: &str) -> bool {
    s == "$LATEST" || (!s.is_empty() && s.len() <= 128 && s.chars().all(is_name_char))
}

fn valid_region(s: &str) -> bool {
    // `[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d` as in the service model.
    let parts: Vec<&str> = s.split('-').collect();
    let n = parts.len();
    if !(3..=4).contains(&n) {
        return false;
    }
    let two = parts[0].len() == 2 && parts[0].chars().all(|c| c.is_ascii_lowercase());
    let last = parts[n - 1].len() == 1 && parts[n - 1].chars().all(|c| c.is_ascii_digit());
    let word = !parts[n - 2].is_empty() && parts[n - 2].chars().all(|c| c.is_ascii_lowercase());
    let mid = n == 3 || parts[1] == "gov" || parts[1].starts_with("iso");
    two && last && word && mid
}

fn valid_account(s: &str) -> bool {
    s.len() == 12 && s.chars().all(|c| c.is_ascii_digit())
}

fn validation_error(value: &str) -> ControlError {
    ControlError::validation(format!(
        "1 validation error detected: Value '{value}' at 'functionName' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: \
         (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{{2}}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{{1}}:)?(\\d{{12}}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
    ))
}

/// Parses a `FunctionName` parameter in any of Lambda's accepted forms.
pub fn parse_function_ref(input: &str) -> Result<FunctionRef> {
    if input.is_empty() || input.len() > 140 {
        return Err(validation_error(input));
    }
    let parts: Vec<&str> = input.split(':').collect();
    let (account, region, name, qualifier) = if parts[0] == "arn" {
        // arn:partition:lambda:region:account:function:name[:qualifier]
        if !(7..=8).contains(&parts.len())
            || !parts[1].starts_with("aws")
            || parts[2] != "lambda"
            || parts[5] != "function"
        {
            return Err(validation_error(input));
        }
        (
            Some(parts[4]),
            Some(parts[3]),
            parts[6],
            parts.get(7).copied(),
        )
    } else if parts.len() >= 3 && parts[1] == "function" {
        // account:function:name[:qualifier]
        if parts.len() > 4 {
            return Err(validation_error(input));
        }
        (Some(parts[0]), None, parts[2], parts.get(3).copied())
    } else {
        // name[:qualifier]
        if parts.len() > 2 {
            return Err(validation_error(input));
        }
        (None, None, parts[0], parts.get(1).copied())
    };
    if account.is_some_and(|a| !valid_account(a))
        || region.is_some_and(|r| !valid_region(r))
        || !valid_function_name(name)
        || qualifier.is_some_and(|q| !valid_qualifier(q))
    {
        return Err(validation_error(input));
    }
    Ok(FunctionRef {
        name: name.to_string(),
        account_id: account.map(str::to_string),
        region: region.map(str::to_string),
        qualifier: qualifier.map(str::to_string),
    })
}

/// The unqualified ARN of a function.
pub fn function_arn(region: &str, account_id: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account_id}:function:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_name() {
        let r = parse_function_ref("my-fn_1").unwrap();
        assert_eq!(r.name, "my-fn_1");
        assert_eq!(r.account_id, None);
        assert_eq!(r.qualifier, None);
    }

    #[test]
    fn name_with_qualifier() {
        let r = parse_function_ref("f:$LATEST").unwrap();
        assert_eq!(r.qualifier.as_deref(), Some("$LATEST"));
        let r = parse_function_ref("f:live").unwrap();
        assert_eq!(r.qualifier.as_deref(), Some("live"));
    }

    #[test]
    fn partial_arn() {
        let r = parse_function_ref("123456789012:function:f:7").unwrap();
        assert_eq!(r.account_id.as_deref(), Some("123456789012"));
        assert_eq!(r.name, "f");
        assert_eq!(r.qualifier.as_deref(), Some("7"));
    }

    #[test]
    fn full_arn() {
        let r = parse_function_ref("arn:aws:lambda:us-east-1:123456789012:function:f").unwrap();
        assert_eq!(r.region.as_deref(), Some("us-east-1"));
        assert_eq!(r.account_id.as_deref(), Some("123456789012"));
        assert_eq!(r.qualifier, None);
        let r =
            parse_function_ref("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:prod")
                .unwrap();
        assert_eq!(r.qualifier.as_deref(), Some("prod"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "bad name!",
            "a:b:c",
            "arn:aws:s3:us-east-1:123456789012:function:f",
            "arn:aws:lambda:us-east-1:1234:function:f",
            "arn:aws:lambda:USEAST:123456789012:function:f",
            "123456789012:function:f:1:2",
            "f:bad$q",
            &"x".repeat(65),
        ] {
            let e = parse_function_ref(bad).unwrap_err();
            assert_eq!(e.kind, crate::ErrorKind::Validation, "{bad}");
        }
    }

    #[test]
    fn arn_format() {
        assert_eq!(
            function_arn("us-east-1", "123456789012", "f"),
            "arn:aws:lambda:us-east-1:123456789012:function:f"
        );
    }
}
