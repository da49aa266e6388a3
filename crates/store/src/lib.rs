//! Durable metadata store for Updraft.
//!
//! The control plane owns the typed model and keeps it in memory; this crate only makes it
//! durable. Records are opaque JSON documents keyed by (account, function[, version | alias]),
//! so a second backend (PostgreSQL, for clusters) implements the same small [`Store`] trait
//! without knowing Lambda's shapes. Every change is a list of [`Op`]s applied in one
//! transaction, which keeps multi-row changes (publish a version and bump the function's
//! counter) atomic on every backend.

mod eventbridge;
pub mod queues;
mod sqlite;

pub use eventbridge::{BusRow, EbOp, EbSnapshot, EventBridgeStore, RuleRow};
pub use queues::QueueDb;
pub use sqlite::SqliteStore;

/// One change to apply; a batch of them is atomic.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert or replace a process-wide setting (account id, node secrets, ...).
    PutMeta { key: String, value: String },
    /// Insert or replace an account.
    PutAccount { account_id: String, doc: String },
    /// Insert or replace an access key (secret already protected by the caller).
    PutAccessKey {
        access_key_id: String,
        account_id: String,
        doc: String,
    },
    /// Remove an access key.
    DeleteAccessKey { access_key_id: String },
    /// Insert or replace a function's unversioned document.
    PutFunction {
        account_id: String,
        name: String,
        doc: String,
    },
    /// Remove a function with all its versions and aliases.
    DeleteFunction { account_id: String, name: String },
    /// Insert or replace one published version.
    PutVersion {
        account_id: String,
        name: String,
        version: u64,
        doc: String,
    },
    /// Remove one published version.
    DeleteVersion {
        account_id: String,
        name: String,
        version: u64,
    },
    /// Insert or replace an alias.
    PutAlias {
        account_id: String,
        name: String,
        alias: String,
        doc: String,
    },
    /// Remove an alias.
    DeleteAlias {
        account_id: String,
        name: String,
        alias: String,
    },
    /// Insert or replace a layer's own document (what outlives its versions, such as the
    /// highest version number ever published).
    PutLayer {
        account_id: String,
        name: String,
        doc: String,
    },
    /// Insert or replace one layer version.
    PutLayerVersion {
        account_id: String,
        name: String,
        version: u64,
        doc: String,
    },
    /// Remove one layer version.
    DeleteLayerVersion {
        account_id: String,
        name: String,
        version: u64,
    },
}

/// A stored function document.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionRow {
    pub account_id: String,
    pub name: String,
    pub doc: String,
}

/// A stored version document.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRow {
    pub account_id: String,
    pub name: String,
    pub version: u64,
    pub doc: String,
}

/// A stored alias document.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasRow {
    pub account_id: String,
    pub name: String,
    pub alias: String,
    pub doc: String,
}

/// A stored layer document.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRow {
    pub account_id: String,
    pub name: String,
    pub doc: String,
}

/// A stored layer version document.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerVersionRow {
    pub account_id: String,
    pub name: String,
    pub version: u64,
    pub doc: String,
}

/// A stored account document.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRow {
    pub account_id: String,
    pub doc: String,
}

/// A stored access key.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessKeyRow {
    pub access_key_id: String,
    pub account_id: String,
    pub doc: String,
}

/// Everything the control plane needs to rebuild its in-memory view at start-up.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub accounts: Vec<AccountRow>,
    pub access_keys: Vec<AccessKeyRow>,
    pub functions: Vec<FunctionRow>,
    pub versions: Vec<VersionRow>,
    pub aliases: Vec<AliasRow>,
    pub layers: Vec<LayerRow>,
    pub layer_versions: Vec<LayerVersionRow>,
}

/// Errors of a store backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[source] rusqlite::Error),
    #[error("database query failed: {0}")]
    Query(#[from] rusqlite::Error),
    #[error("the database lock was poisoned by a panic")]
    Poisoned,
}

/// A durable backend. Calls block briefly (local disk or one network round trip); they are
/// never made on the invoke hot path.
pub trait Store: Send + Sync {
    /// Applies all operations atomically, in order.
    fn apply(&self, ops: &[Op]) -> Result<(), StoreError>;
    /// Reads one setting.
    fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Loads every record.
    fn snapshot(&self) -> Result<Snapshot, StoreError>;
}
