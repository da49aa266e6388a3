//! Provisioned concurrency configurations: the domain types and the pure checks.
//!
//! A configuration belongs to a qualifier of a function: a published version number or an alias
//! name (never `$LATEST`). It is kept in the function's stored document, next to the document's
//! own fields, so it survives restarts. An alias's configuration provisions the alias's primary
//! version only (routing weights to a second version are not provisioned). The operations live
//! on [`crate::ControlPlane`]; this module holds what they decide with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ControlError, Result};
use crate::model::Alias;

/// One stored configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedConfig {
    /// `ProvisionedConcurrentExecutions` as requested.
    pub requested: u32,
    /// When the configuration was last written, as Lambda prints dates.
    pub last_modified: String,
}

/// A configuration as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedView {
    pub function_name: String,
    /// The version number or alias name the configuration belongs to.
    pub qualifier: String,
    /// The function ARN qualified with `qualifier`.
    pub function_arn: String,
    /// The version whose environments are provisioned (the alias's primary version for an alias).
    pub version: String,
    pub config: ProvisionedConfig,
}

/// The part of a stored function document that holds the configurations (the rest is
/// [`crate::model::FunctionDoc`]); older documents without it read as none.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct StoredProvisioned {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provisioned_concurrency: BTreeMap<String, ProvisionedConfig>,
}

/// Lambda's answer to a configuration on `$LATEST` (or on an alias that points at it).
pub const UNPUBLISHED: &str =
    "Provisioned Concurrency Configs cannot be applied to unpublished function versions.";

/// The version a configuration of `qualifier` provisions: the qualifier itself for a version,
/// the primary version for an alias; `None` when the alias does not exist.
pub(crate) fn target_version(qualifier: &str, aliases: &BTreeMap<String, Alias>) -> Option<String> {
    if !qualifier.is_empty() && qualifier.bytes().all(|b| b.is_ascii_digit()) {
        Some(qualifier.to_string())
    } else {
        aliases.get(qualifier).map(|a| a.function_version.clone())
    }
}

/// `ProvisionedConcurrentExecutions` must be at least 1 (the model's `Min`); a value no account
/// could ever set aside is refused as the account check would refuse it, before any sum is formed.
pub(crate) fn check_count(n: i64) -> Result<u32> {
    if n < 1 {
        return Err(ControlError::validation(format!(
            "1 validation error detected: Value '{n}' at 'provisionedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 1"
        )));
    }
    u32::try_from(n).map_err(|_| {
        crate::validate::unreserved_minimum(
            "ConcurrentExecutions",
            crate::MIN_UNRESERVED_CONCURRENCY,
        )
    })
}

/// An alias and the version it points at may not both have a configuration: checks that a
/// configuration of `qualifier` (targeting `version`) would not overlap another one.
pub(crate) fn check_overlap(
    qualifier: &str,
    version: &str,
    configs: &BTreeMap<String, ProvisionedConfig>,
    aliases: &BTreeMap<String, Alias>,
) -> Result<()> {
    for other in configs.keys().filter(|q| q.as_str() != qualifier) {
        let other_version = target_version(other, aliases);
        let other_is_version = other.bytes().all(|b| b.is_ascii_digit());
        let this_is_version = qualifier.bytes().all(|b| b.is_ascii_digit());
        // Two aliases may share a version; a version and an alias on it may not.
        if other_version.as_deref() == Some(version) && (other_is_version || this_is_version) {
            let (alias, v) = if this_is_version {
                (other.as_str(), qualifier)
            } else {
                (qualifier, other.as_str())
            };
            return Err(ControlError::conflict(format!(
                "Alias {alias} is pointing to function version {v} which already has a provisioned concurrency configuration; an alias and the version it points to cannot both have one."
            )));
        }
    }
    Ok(())
}

/// Requested provisioned concurrency per provisioned version (aliases counted on their primary
/// version), skipping configurations whose alias is gone.
pub(crate) fn per_version(
    configs: &BTreeMap<String, ProvisionedConfig>,
    aliases: &BTreeMap<String, Alias>,
) -> BTreeMap<String, u32> {
    let mut out: BTreeMap<String, u32> = BTreeMap::new();
    for (q, c) in configs {
        if let Some(v) = target_version(q, aliases).filter(|v| v != "$LATEST") {
            let slot = out.entry(v).or_default();
            *slot = slot.saturating_add(c.requested);
        }
    }
    out
}

/// Sum of a function's requested provisioned concurrency.
pub(crate) fn total(configs: &BTreeMap<String, ProvisionedConfig>) -> u32 {
    configs
        .values()
        .fold(0u32, |acc, c| acc.saturating_add(c.requested))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(name: &str, version: &str) -> (String, Alias) {
        (
            name.to_string(),
            Alias {
                name: name.to_string(),
                function_version: version.to_string(),
                description: String::new(),
                additional_version_weights: BTreeMap::new(),
                revision_id: "r".to_string(),
            },
        )
    }

    fn cfg(n: u32) -> ProvisionedConfig {
        ProvisionedConfig {
            requested: n,
            last_modified: "t".to_string(),
        }
    }

    #[test]
    fn aliases_target_their_primary_version() {
        let aliases: BTreeMap<_, _> = [alias("live", "3")].into_iter().collect();
        assert_eq!(target_version("2", &aliases).as_deref(), Some("2"));
        assert_eq!(target_version("live", &aliases).as_deref(), Some("3"));
        assert_eq!(target_version("gone", &aliases), None);
    }

    #[test]
    fn counts_below_one_are_refused() {
        assert!(check_count(0).is_err());
        assert!(check_count(-3).is_err());
        assert_eq!(check_count(5).unwrap(), 5);
        assert_eq!(
            check_count(i64::MAX).unwrap_err().kind,
            crate::ErrorKind::InvalidParameter
        );
    }

    #[test]
    fn an_alias_and_its_version_cannot_both_be_provisioned() {
        let aliases: BTreeMap<_, _> = [alias("live", "3"), alias("beta", "3")]
            .into_iter()
            .collect();
        let mut configs = BTreeMap::new();
        configs.insert("live".to_string(), cfg(2));
        let e = check_overlap("3", "3", &configs, &aliases).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Conflict);
        // Another alias on the same version, or another version, is fine.
        assert!(check_overlap("beta", "3", &configs, &aliases).is_ok());
        assert!(check_overlap("4", "4", &configs, &aliases).is_ok());
        // Rewriting the same qualifier is not an overlap with itself.
        assert!(check_overlap("live", "3", &configs, &aliases).is_ok());
        configs.clear();
        configs.insert("3".to_string(), cfg(1));
        assert!(check_overlap("live", "3", &configs, &aliases).is_err());
    }

    #[test]
    fn per_version_sums_aliases_on_their_version() {
        let aliases: BTreeMap<_, _> = [alias("live", "3"), alias("beta", "3")]
            .into_iter()
            .collect();
        let configs: BTreeMap<_, _> = [
            ("live".to_string(), cfg(2)),
            ("beta".to_string(), cfg(1)),
            ("5".to_string(), cfg(4)),
            ("gone".to_string(), cfg(9)),
        ]
        .into_iter()
        .collect();
        let v = per_version(&configs, &aliases);
        assert_eq!(v.get("3"), Some(&3));
        assert_eq!(v.get("5"), Some(&4));
        assert_eq!(v.len(), 2);
        assert_eq!(total(&configs), 16);
    }
}
