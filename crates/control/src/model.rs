//! The control plane's domain model and its durable documents.
//!
//! A function is one [`FunctionDoc`] (its `$LATEST` configuration plus function-wide settings),
//! any number of immutable published [`FunctionConfig`] versions, and [`Alias`]es. These are
//! serialised as the store's opaque documents; the AWS wire shapes live in the front door.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The code package a configuration points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRef {
    /// Hex SHA-256: the content address in the code store.
    pub sha256_hex: String,
    /// base64 SHA-256, as Lambda reports `CodeSha256`.
    pub code_sha256: String,
    /// Zip size in bytes.
    pub code_size: u64,
}

/// Logging settings (`LoggingConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logging {
    pub log_format: String,
    pub application_log_level: Option<String>,
    pub system_log_level: Option<String>,
    pub log_group: String,
}

/// One version's configuration: `$LATEST` (mutable) or a published number (immutable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionConfig {
    pub name: String,
    /// `$LATEST` or a version number.
    pub version: String,
    pub runtime: Option<String>,
    pub role: String,
    pub handler: Option<String>,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    /// `None` when no `Environment` was ever set, as Lambda omits it then.
    pub environment: Option<BTreeMap<String, String>>,
    pub ephemeral_storage: u32,
    pub logging: Logging,
    pub tracing_mode: String,
    pub architectures: Vec<String>,
    pub code: CodeRef,
    /// ISO-8601 as Lambda prints it: `2024-01-31T12:00:00.000+0000`.
    pub last_modified: String,
    pub revision_id: String,
    /// `DeadLetterConfig.TargetArn`: where failed asynchronous invocations go (SQS or SNS).
    #[serde(default)]
    pub dead_letter_target: Option<String>,
    /// Layers in order (`Layers`), each with the package it had when it was added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<crate::layer::LayerRef>,
}

impl FunctionConfig {
    /// Whether two configurations would behave identically (what `PublishVersion` compares
    /// to decide that nothing changed since the last published version).
    pub fn same_content(&self, other: &FunctionConfig) -> bool {
        self.runtime == other.runtime
            && self.role == other.role
            && self.handler == other.handler
            && self.timeout == other.timeout
            && self.memory_size == other.memory_size
            && self.environment == other.environment
            && self.ephemeral_storage == other.ephemeral_storage
            && self.logging == other.logging
            && self.tracing_mode == other.tracing_mode
            && self.architectures == other.architectures
            && self.code == other.code
            && self.dead_letter_target == other.dead_letter_target
            && self.layers == other.layers
    }
}

/// Function-wide state stored in the function's row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionDoc {
    pub latest: FunctionConfig,
    pub tags: BTreeMap<String, String>,
    pub reserved_concurrency: Option<u32>,
    /// Highest version number ever published; numbers are never reused.
    pub last_version: u64,
    /// Function URLs by qualifier (`""` for the unqualified function, else an alias name).
    #[serde(default)]
    pub urls: BTreeMap<String, crate::url::UrlConfig>,
    /// Resource policies by qualifier (`""` for the function itself, else a version or alias).
    #[serde(default)]
    pub policies: BTreeMap<String, crate::policy::Policy>,
}

/// An alias (`AliasConfiguration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    pub name: String,
    pub function_version: String,
    pub description: String,
    /// Additional version → weight (0.0..=1.0) for weighted routing.
    pub additional_version_weights: BTreeMap<String, f64>,
    pub revision_id: String,
}

/// A function with everything that belongs to it, as kept in memory.
#[derive(Debug, Clone)]
pub struct FunctionEntry {
    pub doc: FunctionDoc,
    pub versions: BTreeMap<u64, FunctionConfig>,
    pub aliases: BTreeMap<String, Alias>,
}

/// A function's identity in the account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionKey {
    pub account_id: String,
    pub name: String,
}
