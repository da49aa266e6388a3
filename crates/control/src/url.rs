//! Function URL configurations: the domain type, its validation and the url-id.
//!
//! A function (unqualified, meaning `$LATEST`) and each of its aliases can have one URL. The
//! url-id is random, stable for the life of the configuration, and the only thing a request to
//! the URL carries, so the control plane keeps an index from url-id to function in memory.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{ControlError, Result};

/// Length of a url-id, as on Lambda.
pub const URL_ID_LEN: usize = 32;

/// How requests to the URL are authenticated (`AuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UrlAuthType {
    /// Public: only the resource policy decides.
    #[serde(rename = "NONE")]
    None,
    /// SigV4-signed requests by principals the account or the resource policy allows.
    #[serde(rename = "AWS_IAM")]
    AwsIam,
}

impl UrlAuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            UrlAuthType::None => "NONE",
            UrlAuthType::AwsIam => "AWS_IAM",
        }
    }

    /// Parses the enum value, answering a violated enum as Lambda does.
    pub fn parse(s: &str, field: &str) -> Result<Self> {
        match s {
            "NONE" => Ok(UrlAuthType::None),
            "AWS_IAM" => Ok(UrlAuthType::AwsIam),
            other => Err(ControlError::validation(format!(
                "1 validation error detected: Value '{other}' at '{field}' failed to satisfy constraint: Member must satisfy enum value set: [AWS_IAM, NONE]"
            ))),
        }
    }
}

/// How the response travels back (`InvokeMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvokeMode {
    #[serde(rename = "BUFFERED")]
    Buffered,
    #[serde(rename = "RESPONSE_STREAM")]
    ResponseStream,
}

impl InvokeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InvokeMode::Buffered => "BUFFERED",
            InvokeMode::ResponseStream => "RESPONSE_STREAM",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "BUFFERED" => Ok(InvokeMode::Buffered),
            "RESPONSE_STREAM" => Ok(InvokeMode::ResponseStream),
            other => Err(ControlError::validation(format!(
                "1 validation error detected: Value '{other}' at 'invokeMode' failed to satisfy constraint: Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]"
            ))),
        }
    }
}

/// Cross-origin settings (`Cors`); fields the caller left out stay `None`, as Lambda echoes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cors {
    #[serde(default)]
    pub allow_credentials: Option<bool>,
    #[serde(default)]
    pub allow_headers: Option<Vec<String>>,
    #[serde(default)]
    pub allow_methods: Option<Vec<String>>,
    #[serde(default)]
    pub allow_origins: Option<Vec<String>>,
    #[serde(default)]
    pub expose_headers: Option<Vec<String>>,
    #[serde(default)]
    pub max_age: Option<i64>,
}

/// One function URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlConfig {
    /// 32 lowercase alphanumerics; the host label of the URL.
    pub url_id: String,
    pub auth_type: UrlAuthType,
    pub cors: Option<Cors>,
    pub invoke_mode: InvokeMode,
    /// ISO-8601 with microseconds, as Lambda prints URL timestamps.
    pub creation_time: String,
    pub last_modified_time: String,
}

/// Inputs of `CreateFunctionUrlConfig` / `UpdateFunctionUrlConfig`; `None` keeps (or defaults).
#[derive(Debug, Clone, Default)]
pub struct UrlInput {
    pub auth_type: Option<String>,
    pub cors: Option<Cors>,
    pub invoke_mode: Option<String>,
}

/// A fresh random url-id.
pub fn new_url_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..URL_ID_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Whether `s` has the shape of a url-id.
pub fn is_url_id(s: &str) -> bool {
    s.len() == URL_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `FunctionUrlQualifier`: an alias name (never a version number, never `$LATEST`).
pub fn validate_qualifier(q: &str) -> Result<()> {
    let ok = !q.is_empty()
        && q.len() <= 128
        && q.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !q.chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ControlError::validation(format!(
            "1 validation error detected: Value '{q}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)"
        )))
    }
}

fn list_limit(
    field: &str,
    list: &Option<Vec<String>>,
    max_items: usize,
    max_len: usize,
) -> Result<()> {
    let Some(items) = list else { return Ok(()) };
    if items.len() > max_items {
        return Err(ControlError::validation(format!(
            "1 validation error detected: Value '{items:?}' at 'cors.{field}' failed to satisfy constraint: Member must have length less than or equal to {max_items}"
        )));
    }
    if let Some(bad) = items.iter().find(|i| i.len() > max_len) {
        return Err(ControlError::validation(format!(
            "1 validation error detected: Value '{bad}' at 'cors.{field}' failed to satisfy constraint: Member must have length less than or equal to {max_len}"
        )));
    }
    Ok(())
}

/// Checks `Cors` against the service model's limits.
pub fn validate_cors(c: &Cors) -> Result<()> {
    list_limit("allowHeaders", &c.allow_headers, 100, 1024)?;
    list_limit("exposeHeaders", &c.expose_headers, 100, 1024)?;
    list_limit("allowMethods", &c.allow_methods, 6, 6)?;
    list_limit("allowOrigins", &c.allow_origins, 100, 253)?;
    if let Some(origins) = &c.allow_origins
        && origins.iter().any(String::is_empty)
    {
        return Err(ControlError::validation(
            "1 validation error detected: Value '' at 'cors.allowOrigins' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    if let Some(m) = c.max_age
        && !(0..=86_400).contains(&m)
    {
        return Err(ControlError::validation(format!(
            "1 validation error detected: Value '{m}' at 'cors.maxAge' failed to satisfy constraint: Member must have value between 0 and 86400"
        )));
    }
    Ok(())
}

/// Timestamp of URL configurations: `2024-01-31T12:00:00.123456Z`.
pub fn now_url_time() -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_ids_are_random_and_well_formed() {
        let a = new_url_id();
        let b = new_url_id();
        assert!(is_url_id(&a), "{a}");
        assert_ne!(a, b);
        assert!(!is_url_id("ABC"));
        assert!(!is_url_id(&"A".repeat(32)));
    }

    #[test]
    fn qualifiers_are_alias_names_only() {
        assert!(validate_qualifier("live").is_ok());
        assert!(validate_qualifier("v1-blue_2").is_ok());
        assert!(validate_qualifier("12").is_err());
        assert!(validate_qualifier("$LATEST").is_err());
        assert!(validate_qualifier("").is_err());
    }

    #[test]
    fn cors_limits() {
        let ok = Cors {
            allow_methods: Some(vec!["GET".into(), "POST".into()]),
            max_age: Some(300),
            ..Default::default()
        };
        assert!(validate_cors(&ok).is_ok());
        let long_method = Cors {
            allow_methods: Some(vec!["GETTING".into()]),
            ..Default::default()
        };
        assert!(validate_cors(&long_method).is_err());
        let age = Cors {
            max_age: Some(86_401),
            ..Default::default()
        };
        assert!(validate_cors(&age).is_err());
    }

    #[test]
    fn enums_round_trip() {
        assert_eq!(
            UrlAuthType::parse("NONE", "authType").unwrap(),
            UrlAuthType::None
        );
        assert!(UrlAuthType::parse("none", "authType").is_err());
        assert_eq!(
            InvokeMode::parse("RESPONSE_STREAM").unwrap().as_str(),
            "RESPONSE_STREAM"
        );
        assert_eq!(
            serde_json::to_string(&UrlAuthType::AwsIam).unwrap(),
            "\"AWS_IAM\""
        );
    }
}
