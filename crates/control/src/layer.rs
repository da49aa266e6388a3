//! Lambda layers: the stored documents of layer versions, their permission statements, their
//! ARNs, and what a function keeps of each layer it uses.
//!
//! A layer is a name in an account with numbered, immutable versions; numbers are never reused,
//! so the layer's own document keeps the highest one ever published. A function records, for
//! every layer version it uses, the ARN and the content address of its package ([`LayerRef`]):
//! the function keeps working from those when the layer version is deleted, as on Lambda.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ControlError, Result};
use crate::model::CodeRef;

/// Lambda's limit on the layers one function may use.
pub const MAX_LAYERS: usize = 5;
/// The only action a layer version policy grants.
pub const GET_LAYER_VERSION: &str = "lambda:GetLayerVersion";

/// One published layer version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerVersion {
    pub account_id: String,
    pub name: String,
    pub version: u64,
    /// `arn:aws:lambda:<region>:<account>:layer:<name>`.
    pub layer_arn: String,
    pub description: String,
    /// ISO-8601 as Lambda prints it.
    pub created_date: String,
    pub compatible_runtimes: Vec<String>,
    pub compatible_architectures: Vec<String>,
    pub license_info: Option<String>,
    pub code: CodeRef,
    /// Total size of the extracted files, counted against a function's 250 MB.
    pub unzipped_size: u64,
    #[serde(default)]
    pub policy: LayerPolicy,
}

impl LayerVersion {
    /// `arn:aws:lambda:<region>:<account>:layer:<name>:<version>`.
    pub fn version_arn(&self) -> String {
        format!("{}:{}", self.layer_arn, self.version)
    }

    /// Whether the version matches `ListLayers`' and `ListLayerVersions`' filters (a filter
    /// matches only versions that name the value).
    pub fn matches(&self, runtime: Option<&str>, architecture: Option<&str>) -> bool {
        runtime.is_none_or(|r| self.compatible_runtimes.iter().any(|c| c == r))
            && architecture.is_none_or(|a| self.compatible_architectures.iter().any(|c| c == a))
    }

    /// Whether `caller` may use this version: its own account always; another account when a
    /// statement names it or everyone. A statement limited to an organization grants nothing
    /// here, because Updraft's accounts belong to no organization.
    pub fn usable_by(&self, caller: &str) -> bool {
        caller == self.account_id
            || self.policy.statements.iter().any(|s| {
                s.organization_id.is_none() && (s.principal == "*" || s.principal == caller)
            })
    }
}

/// A layer version's resource policy (`AddLayerVersionPermission`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerPolicy {
    pub statements: Vec<LayerStatement>,
    /// Changes with every added or removed statement.
    pub revision_id: String,
}

/// One statement: `lambda:GetLayerVersion` for an account or everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerStatement {
    pub sid: String,
    /// A 12-digit account id, or `*`.
    pub principal: String,
    pub organization_id: Option<String>,
}

/// What a function keeps of a layer version it uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    /// The layer version ARN, as given.
    pub arn: String,
    pub code: CodeRef,
    pub unzipped_size: u64,
}

/// The layer's own document: what outlives its versions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDoc {
    /// Highest version number ever published; numbers are never reused.
    pub last_version: u64,
}

/// `arn:aws:lambda:<region>:<account>:layer:<name>`.
pub fn layer_arn(region: &str, account_id: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account_id}:layer:{name}")
}

/// A layer name: 1 to 140 letters, digits, `-` and `_`.
pub fn valid_layer_name(s: &str) -> bool {
    (1..=140).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A `LayerName` parameter: a name, or a layer ARN (whose account and region it returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerNameRef {
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub name: String,
}

const LAYER_NAME_PATTERN: &str = "(arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+";
const LAYER_VERSION_ARN_PATTERN: &str = "((arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)|(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+))";

fn pattern_error(field: &str, value: &str, pattern: &str) -> ControlError {
    ControlError::validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}"
    ))
}

/// The parts of `arn:<partition>:lambda:<region>:<account>:layer:<name>[:<version>]`.
fn split_arn(arn: &str) -> Option<(String, String, String, Option<&str>)> {
    let parts: Vec<&str> = arn.split(':').collect();
    let (region, account, name, version) = match parts.as_slice() {
        ["arn", partition, "lambda", region, account, "layer", name] => partition
            .starts_with("aws")
            .then_some((region, account, name, None))?,
        [
            "arn",
            partition,
            "lambda",
            region,
            account,
            "layer",
            name,
            version,
        ] => partition
            .starts_with("aws")
            .then_some((region, account, name, Some(*version)))?,
        _ => return None,
    };
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    (region_ok && account_ok && valid_layer_name(name)).then(|| {
        (
            region.to_string(),
            account.to_string(),
            name.to_string(),
            version,
        )
    })
}

/// Parses a `LayerName` (a name or an unversioned layer ARN).
pub fn parse_layer_name(s: &str) -> Result<LayerNameRef> {
    if valid_layer_name(s) {
        return Ok(LayerNameRef {
            region: None,
            account_id: None,
            name: s.to_string(),
        });
    }
    match split_arn(s) {
        Some((region, account, name, None)) if s.len() <= 140 => Ok(LayerNameRef {
            region: Some(region),
            account_id: Some(account),
            name,
        }),
        _ => Err(pattern_error("layerName", s, LAYER_NAME_PATTERN)),
    }
}

/// A parsed layer version ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerVersionRef {
    pub region: String,
    pub account_id: String,
    pub name: String,
    pub version: u64,
}

/// Parses a layer version ARN; `field` names the parameter in the validation error.
pub fn parse_layer_version_arn(s: &str, field: &str) -> Result<LayerVersionRef> {
    let bad = || pattern_error(field, s, LAYER_VERSION_ARN_PATTERN);
    if s.len() > 2048 {
        return Err(bad());
    }
    let Some((region, account_id, name, Some(v))) = split_arn(s) else {
        return Err(bad());
    };
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let version = v.parse().map_err(|_| bad())?;
    Ok(LayerVersionRef {
        region,
        account_id,
        name,
        version,
    })
}

/// The content address of the `/opt` tree merged from these layers, in order: a digest of their
/// packages' addresses, so every function using the same list shares one tree.
pub fn opt_address(layers: &[LayerRef]) -> Option<String> {
    if layers.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    h.update(b"updraft /opt tree v1\n");
    for l in layers {
        h.update(l.code.sha256_hex.as_bytes());
        h.update(b"\n");
    }
    Some(hex::encode(h.finalize()))
}

/// Normalises a `Principal` of `AddLayerVersionPermission` to an account id or `*`.
pub fn parse_principal(p: &str) -> Result<String> {
    let account = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    if p == "*" || account(p) {
        return Ok(p.to_string());
    }
    if let Some(rest) = p.strip_prefix("arn:")
        && let [partition, "iam", "", id, "root"] = rest.split(':').collect::<Vec<_>>().as_slice()
        && partition.starts_with("aws")
        && account(id)
    {
        return Ok((*id).to_string());
    }
    Err(pattern_error(
        "principal",
        p,
        "\\d{12}|\\*|arn:(aws[a-zA-Z-]*):iam::\\d{12}:root",
    ))
}

/// Checks an `OrganizationId`.
pub fn check_organization_id(o: &str) -> Result<()> {
    let ok = o.strip_prefix("o-").is_some_and(|r| {
        (10..=32).contains(&r.len())
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(pattern_error("organizationId", o, "o-[a-z0-9]{10,32}"))
    }
}

/// Checks a `StatementId`.
pub fn check_statement_id(s: &str) -> Result<()> {
    let ok = (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(pattern_error("statementId", s, "([a-zA-Z0-9-_]+)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns() {
        assert_eq!(parse_layer_name("my-layer_1").unwrap().name, "my-layer_1");
        let r = parse_layer_name("arn:aws:lambda:us-east-1:123456789012:layer:libs").unwrap();
        assert_eq!(r.account_id.as_deref(), Some("123456789012"));
        assert_eq!(r.name, "libs");
        assert!(parse_layer_name("bad name").is_err());
        assert!(parse_layer_name("arn:aws:lambda:us-east-1:123456789012:layer:libs:1").is_err());

        let v =
            parse_layer_version_arn("arn:aws:lambda:us-east-1:123456789012:layer:libs:7", "arn")
                .unwrap();
        assert_eq!((v.name.as_str(), v.version), ("libs", 7));
        for bad in [
            "arn:aws:lambda:us-east-1:123456789012:layer:libs",
            "arn:aws:lambda:us-east-1:12345678901:layer:libs:1",
            "arn:aws:lambda:us-east-1:123456789012:function:libs:1",
            "arn:aws:lambda:us-east-1:123456789012:layer:libs:x",
        ] {
            let e = parse_layer_version_arn(bad, "layers").unwrap_err();
            assert!(e.message.contains("at 'layers'"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn principals_and_statement_checks() {
        assert_eq!(parse_principal("*").unwrap(), "*");
        assert_eq!(parse_principal("210987654321").unwrap(), "210987654321");
        assert_eq!(
            parse_principal("arn:aws:iam::210987654321:root").unwrap(),
            "210987654321"
        );
        assert!(parse_principal("arn:aws:iam::210987654321:user/x").is_err());
        assert!(check_organization_id("o-abcdefghij").is_ok());
        assert!(check_organization_id("o-short").is_err());
        assert!(check_statement_id("ok_id-1").is_ok());
        assert!(check_statement_id("no spaces").is_err());
    }

    fn version_with(statements: Vec<LayerStatement>) -> LayerVersion {
        LayerVersion {
            account_id: "111111111111".into(),
            name: "l".into(),
            version: 1,
            layer_arn: layer_arn("us-east-1", "111111111111", "l"),
            description: String::new(),
            created_date: String::new(),
            compatible_runtimes: vec!["python3.12".into()],
            compatible_architectures: vec![],
            license_info: None,
            code: CodeRef {
                sha256_hex: "a".repeat(64),
                code_sha256: String::new(),
                code_size: 1,
            },
            unzipped_size: 1,
            policy: LayerPolicy {
                statements,
                revision_id: String::new(),
            },
        }
    }

    #[test]
    fn usable_by_owner_named_accounts_and_everyone() {
        let stmt = |p: &str, org: Option<&str>| LayerStatement {
            sid: "s".into(),
            principal: p.into(),
            organization_id: org.map(str::to_string),
        };
        let private = version_with(vec![]);
        assert!(private.usable_by("111111111111"));
        assert!(!private.usable_by("222222222222"));
        assert!(version_with(vec![stmt("222222222222", None)]).usable_by("222222222222"));
        assert!(!version_with(vec![stmt("333333333333", None)]).usable_by("222222222222"));
        assert!(version_with(vec![stmt("*", None)]).usable_by("222222222222"));
        assert!(!version_with(vec![stmt("*", Some("o-abcdefghij"))]).usable_by("222222222222"));
        assert!(private.matches(Some("python3.12"), None));
        assert!(!private.matches(Some("nodejs20.x"), None));
        assert!(!private.matches(None, Some("x86_64")));
    }

    #[test]
    fn opt_address_depends_on_order() {
        let r = |c: char| LayerRef {
            arn: String::new(),
            code: CodeRef {
                sha256_hex: c.to_string().repeat(64),
                code_sha256: String::new(),
                code_size: 1,
            },
            unzipped_size: 1,
        };
        assert_eq!(opt_address(&[]), None);
        let ab = opt_address(&[r('a'), r('b')]).unwrap();
        assert_ne!(Some(ab.clone()), opt_address(&[r('b'), r('a')]));
        assert_eq!(ab.len(), 64);
    }
}
