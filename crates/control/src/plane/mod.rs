//! The control-plane service: every Lambda management operation.
//!
//! All state is one immutable [`State`] value behind an `Arc`. Readers (the invoke path among
//! them) take the current `Arc` and never wait on a writer: the pointer is swapped under a lock
//! held only for the copy. Writers take turns on a writer mutex, build the next state from the
//! current one, persist it, and only then publish it, so the store sees changes in the order of
//! the published states and a commit (or a WAL checkpoint's fsync) stalls only other writers.
//! Nothing a writer does before it publishes is visible, so a writer that fails or panics
//! half-way leaves the state as it was and the next writer carries on.
//!
//! The operations are split by resource, each file one `impl ControlPlane` over the shared
//! state: `functions` (functions, tags, account usage), `versions` (versions and aliases),
//! `resolve` (the invoke path), `urls`, `policies`, `concurrency` (reserved and provisioned) and
//! `layers` (layer versions, their policies, and functions' `Layers`).
//! This file holds the state, the writer's turn and the helpers they share. A new resource
//! is a new file: its data goes in [`Entry`] (persisted in the function document by
//! `put_function_op`) and its writes go through [`ControlPlane::change_doc`] or a [`WriteTurn`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use updraft_store::{Op, Store};

use crate::arn::{FunctionRef, function_arn, parse_function_ref};
use crate::code::{CodeArtifact, CodeError, CodeStore};
use crate::error::{ControlError, ErrorKind, Result};
use crate::model::{Alias, CodeRef, FunctionConfig, FunctionDoc, FunctionKey, Logging};
use crate::policy::{PermissionInput, Policy, Statement};
use crate::provisioned::{self, ProvisionedConfig, ProvisionedView, StoredProvisioned};
use crate::url::{InvokeMode, UrlAuthType, UrlConfig, UrlInput};
use crate::validate;

mod concurrency;
mod functions;
#[cfg(test)]
mod layer_tests;
mod layers;
mod policies;
mod resolve;
#[cfg(test)]
mod tests;
mod urls;
mod versions;

pub use concurrency::ProvisionedTarget;
pub use functions::{
    AccountUsage, CodeUpdate, ConfigUpdate, CreateFunction, FunctionDetails, LoggingInput,
};
pub use layers::{LayerPermissionInput, PublishLayer};
pub use resolve::Resolved;
pub use urls::{UrlTarget, UrlView};

/// Default account-wide concurrency limit, as on Lambda.
pub const DEFAULT_ACCOUNT_CONCURRENCY: u32 = 1000;
/// Lambda keeps this much concurrency unreserved in every account.
pub const MIN_UNRESERVED_CONCURRENCY: u32 = 100;

/// A function as kept in memory.
#[derive(Debug, Clone)]
struct Entry {
    latest: Arc<FunctionConfig>,
    tags: BTreeMap<String, String>,
    reserved_concurrency: Option<u32>,
    last_version: u64,
    versions: BTreeMap<u64, Arc<FunctionConfig>>,
    aliases: BTreeMap<String, Alias>,
    /// Function URLs by qualifier (`""` = unqualified).
    urls: BTreeMap<String, UrlConfig>,
    /// Resource policies by qualifier (`""` = the function itself).
    policies: BTreeMap<String, Policy>,
    /// Provisioned concurrency configurations by qualifier (a version number or an alias name).
    provisioned: BTreeMap<String, ProvisionedConfig>,
}

impl Entry {
    fn doc(&self) -> FunctionDoc {
        FunctionDoc {
            latest: (*self.latest).clone(),
            tags: self.tags.clone(),
            reserved_concurrency: self.reserved_concurrency,
            last_version: self.last_version,
            urls: self.urls.clone(),
            policies: self.policies.clone(),
        }
    }
}

/// Everything the control plane knows, as one value that is never changed once published.
#[derive(Debug, Clone, Default)]
struct State {
    functions: HashMap<FunctionKey, Arc<Entry>>,
    /// url-id → (function, qualifier key), so a URL request finds its function without a scan.
    url_index: HashMap<String, (FunctionKey, String)>,
    /// Layers and their live versions (`layers.rs`).
    layers: layers::LayerIndex,
}

impl State {
    fn get(&self, key: &FunctionKey) -> Option<&Entry> {
        self.functions.get(key).map(|e| &**e)
    }

    fn contains_key(&self, key: &FunctionKey) -> bool {
        self.functions.contains_key(key)
    }

    fn iter(&self) -> impl Iterator<Item = (&FunctionKey, &Entry)> {
        self.functions.iter().map(|(k, e)| (k, &**e))
    }

    /// Replaces (or removes, with `None`) one function, keeping the url-id index in step.
    fn set(&mut self, key: FunctionKey, entry: Option<Entry>) {
        if let Some(old) = self.functions.get(&key) {
            for u in old.urls.values() {
                self.url_index.remove(&u.url_id);
            }
        }
        match entry {
            Some(e) => {
                for (q, u) in &e.urls {
                    self.url_index
                        .insert(u.url_id.clone(), (key.clone(), q.clone()));
                }
                self.functions.insert(key, Arc::new(e));
            }
            None => {
                self.functions.remove(&key);
            }
        }
    }
}

/// A writer's turn: the writer mutex is held for its lifetime, so writers persist and publish
/// one at a time. It reads as the state it started from plus its own published changes.
struct WriteTurn<'a> {
    plane: &'a ControlPlane,
    // Held, never read: it is what makes the turn exclusive.
    _turn: MutexGuard<'a, ()>,
    state: Arc<State>,
}

impl std::ops::Deref for WriteTurn<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl WriteTurn<'_> {
    /// Publishes `entry` as the function's new entry. Call only after the change is persisted.
    fn insert(&mut self, key: FunctionKey, entry: Entry) {
        self.publish(key, Some(entry));
    }

    /// Publishes the function's removal. Call only after the removal is persisted.
    fn remove(&mut self, key: &FunctionKey) {
        self.publish(key.clone(), None);
    }

    fn publish(&mut self, key: FunctionKey, entry: Option<Entry>) {
        // The published state is shared with readers, so this copies the map (of `Arc`s),
        // never an entry.
        Arc::make_mut(&mut self.state).set(key, entry);
        self.plane.swap(self.state.clone());
    }
}

/// What changed, for subscribers such as the engine (which drains stale environments).
#[derive(Debug, Clone)]
pub enum Change {
    /// `$LATEST` got new code or configuration, or concurrency changed.
    Updated {
        function_arn: String,
        latest_revision: String,
    },
    /// The function (or one of its versions) is gone.
    Deleted { function_arn: String },
    /// The provisioned concurrency the function wants changed (a configuration was written or
    /// deleted, or an alias that has one moved or went away); see
    /// [`ControlPlane::provisioned_targets`].
    Provisioned { function_arn: String },
}

type Listener = Box<dyn Fn(&Change) + Send + Sync>;

/// A page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

/// Settings of the control plane.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    pub region: String,
    pub account_concurrency: u32,
}

/// The Lambda control plane.
pub struct ControlPlane {
    store: Arc<dyn Store>,
    code: CodeStore,
    config: ControlConfig,
    /// The published state. The lock is held only to copy or replace the pointer, never
    /// across anything that can fail or block.
    current: RwLock<Arc<State>>,
    /// Serialises writers, so the store sees their changes in the order they are published.
    /// It guards no data (a writer's work is private until it publishes), so a writer that
    /// panicked leaves nothing inconsistent behind and the poison flag is ignored.
    writer: Mutex<()>,
    listeners: RwLock<Vec<Listener>>,
}

fn now_lambda() -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_default()
}

fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn code_error(e: CodeError) -> ControlError {
    match e.http_status() {
        413 => ControlError::new(ErrorKind::EntityTooLarge, e.lambda_message()),
        400 => ControlError::invalid(e.lambda_message()),
        _ => ControlError::service(e),
    }
}

fn parse_version_number(q: &str) -> Option<u64> {
    if !q.is_empty() && q.chars().all(|c| c.is_ascii_digit()) {
        q.parse().ok()
    } else {
        None
    }
}

/// Operations whose pages are smaller than the general 10,000 accept fewer `MaxItems`.
fn max_items_at_most(max_items: Option<i64>, limit: i64) -> Result<()> {
    match max_items {
        Some(m) if !(1..=limit).contains(&m) => Err(ControlError::validation(format!(
            "1 validation error detected: Value '{m}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and {limit}"
        ))),
        _ => Ok(()),
    }
}

fn paginate<T: Clone>(
    items: Vec<(String, T)>,
    marker: Option<&str>,
    max_items: Option<i64>,
) -> Result<Page<T>> {
    let max = match max_items {
        None => 50,
        Some(m) if (1..=10_000).contains(&m) => m as usize,
        Some(m) => {
            return Err(ControlError::validation(format!(
                "1 validation error detected: Value '{m}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 10000"
            )));
        }
    };
    let start = match marker {
        None | Some("") => 0,
        Some(m) => {
            let decoded =
                decode_marker(m).ok_or_else(|| ControlError::invalid("Invalid marker value."))?;
            items.partition_point(|(k, _)| k.as_str() <= decoded.as_str())
        }
    };
    let rest = &items[start.min(items.len())..];
    let page: Vec<(String, T)> = rest.iter().take(max).cloned().collect();
    let next_marker = if rest.len() > max {
        page.last().map(|(k, _)| encode_marker(k))
    } else {
        None
    };
    Ok(Page {
        items: page.into_iter().map(|(_, v)| v).collect(),
        next_marker,
    })
}

// Markers are opaque to callers; hex keeps them URL- and JSON-safe without escaping.
fn encode_marker(key: &str) -> String {
    hex::encode(key.as_bytes())
}

fn decode_marker(m: &str) -> Option<String> {
    String::from_utf8(hex::decode(m).ok()?).ok()
}

// Sort keys: `$LATEST` first, then versions by number.
fn version_sort_key(name: &str, version: &str) -> String {
    match parse_version_number(version) {
        Some(n) => format!("{name}\u{1}{n:020}"),
        None => format!("{name}\u{0}"),
    }
}

const NO_SUCH_RESOURCE: &str = "The resource you requested does not exist.";

impl ControlPlane {
    /// Loads every function from the store into memory.
    pub fn open(store: Arc<dyn Store>, code: CodeStore, config: ControlConfig) -> Result<Self> {
        let snap = store.snapshot()?;
        let mut state: HashMap<FunctionKey, Entry> = HashMap::new();
        for row in snap.functions {
            let doc: FunctionDoc = serde_json::from_str(&row.doc).map_err(ControlError::service)?;
            let extra: StoredProvisioned =
                serde_json::from_str(&row.doc).map_err(ControlError::service)?;
            state.insert(
                FunctionKey {
                    account_id: row.account_id,
                    name: row.name,
                },
                Entry {
                    latest: Arc::new(doc.latest),
                    tags: doc.tags,
                    reserved_concurrency: doc.reserved_concurrency,
                    last_version: doc.last_version,
                    versions: BTreeMap::new(),
                    aliases: BTreeMap::new(),
                    urls: doc.urls,
                    policies: doc.policies,
                    provisioned: extra.provisioned_concurrency,
                },
            );
        }
        for row in snap.versions {
            let key = FunctionKey {
                account_id: row.account_id,
                name: row.name,
            };
            let cfg: FunctionConfig =
                serde_json::from_str(&row.doc).map_err(ControlError::service)?;
            if let Some(e) = state.get_mut(&key) {
                e.versions.insert(row.version, Arc::new(cfg));
            }
        }
        for row in snap.aliases {
            let key = FunctionKey {
                account_id: row.account_id,
                name: row.name,
            };
            let alias: Alias = serde_json::from_str(&row.doc).map_err(ControlError::service)?;
            if let Some(e) = state.get_mut(&key) {
                e.aliases.insert(row.alias, alias);
            }
        }
        let mut loaded = State {
            layers: layers::load(snap.layers, snap.layer_versions)?,
            ..State::default()
        };
        for (key, e) in state {
            loaded.set(key, Some(e));
        }
        let plane = Self {
            store,
            code,
            config,
            current: RwLock::new(Arc::new(loaded)),
            writer: Mutex::new(()),
            listeners: RwLock::new(Vec::new()),
        };
        plane.ensure_opt_trees();
        Ok(plane)
    }

    /// Region this node answers for.
    pub fn region(&self) -> &str {
        &self.config.region
    }

    /// The code store (for downloads of stored zips).
    pub fn code_store(&self) -> &CodeStore {
        &self.code
    }

    /// Registers a callback run after each committed change.
    pub fn subscribe(&self, f: impl Fn(&Change) + Send + Sync + 'static) {
        // A push cannot leave the list half-written, so a poisoned lock is still usable.
        self.listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(f));
    }

    fn notify(&self, change: Change) {
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        for f in listeners.iter() {
            f(&change);
        }
    }

    /// The published state: a pointer copy, never a wait on a writer's persistence.
    fn read(&self) -> Arc<State> {
        // The lock only ever guards a pointer copy or store, which cannot panic half-way.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn swap(&self, next: Arc<State>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
    }

    /// Waits for the writers before this one, then starts from the newest published state.
    /// Infallible; it returns `Result` so call sites read like every other step.
    fn write(&self) -> Result<WriteTurn<'_>> {
        let turn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(WriteTurn {
            plane: self,
            _turn: turn,
            state: self.read(),
        })
    }

    fn arn(&self, account_id: &str, name: &str) -> String {
        function_arn(&self.config.region, account_id, name)
    }

    /// Parses `FunctionName` and checks that it names this account and region.
    fn parse(&self, account_id: &str, function_name: &str) -> Result<FunctionRef> {
        let r = parse_function_ref(function_name)?;
        if let Some(acct) = &r.account_id
            && acct != account_id
        {
            return Err(ControlError::new(
                ErrorKind::AccessDenied,
                format!(
                    "User is not authorized to access function {} of account {acct}",
                    r.name
                ),
            ));
        }
        if let Some(region) = &r.region
            && region != &self.config.region
        {
            return Err(ControlError::invalid(format!(
                "Region {region} in the function ARN does not match this endpoint's region {}",
                self.config.region
            )));
        }
        Ok(r)
    }

    /// Combines a qualifier written into the name with the `Qualifier` parameter.
    fn qualifier(r: &FunctionRef, param: Option<&str>) -> Result<Option<String>> {
        let param = param.filter(|q| !q.is_empty());
        match (&r.qualifier, param) {
            (Some(a), Some(b)) if a != b => Err(ControlError::invalid(
                "The derived qualifier from the function name does not match the specified qualifier.",
            )),
            (Some(a), _) => Ok(Some(a.clone())),
            (None, Some(b)) => {
                if !crate::arn::valid_qualifier(b) {
                    return Err(ControlError::validation(format!(
                        "1 validation error detected: Value '{b}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)"
                    )));
                }
                Ok(Some(b.to_string()))
            }
            (None, None) => Ok(None),
        }
    }

    fn not_found(&self, account_id: &str, name: &str, qualifier: Option<&str>) -> ControlError {
        let arn = self.arn(account_id, name);
        match qualifier {
            Some(q) => ControlError::not_found(format!("Function not found: {arn}:{q}")),
            None => ControlError::not_found(format!("Function not found: {arn}")),
        }
    }

    fn persist(&self, ops: &[Op]) -> Result<()> {
        self.store.apply(ops).map_err(ControlError::from)
    }

    /// Changes one function's document: `f` checks and edits a copy, which is persisted and
    /// only then replaces the in-memory entry, so a refused edit or a failed write changes
    /// nothing. Returns what `f` returned.
    fn change_doc<T>(
        &self,
        account_id: &str,
        name: &str,
        f: impl FnOnce(&mut Entry) -> Result<T>,
    ) -> Result<T> {
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, name)?;
        let key = key.clone();
        let mut entry = entry.clone();
        let out = f(&mut entry)?;
        self.persist(&[Self::put_function_op(&key, &entry)?])?;
        state.insert(key, entry);
        Ok(out)
    }

    fn put_function_op(key: &FunctionKey, entry: &Entry) -> Result<Op> {
        /// The function document with the provisioned-concurrency configurations beside its
        /// own fields.
        #[derive(serde::Serialize)]
        struct Stored<'a> {
            #[serde(flatten)]
            doc: FunctionDoc,
            #[serde(flatten)]
            provisioned: &'a StoredProvisioned,
        }
        let provisioned = StoredProvisioned {
            provisioned_concurrency: entry.provisioned.clone(),
        };
        let stored = Stored {
            doc: entry.doc(),
            provisioned: &provisioned,
        };
        Ok(Op::PutFunction {
            account_id: key.account_id.clone(),
            name: key.name.clone(),
            doc: serde_json::to_string(&stored).map_err(ControlError::service)?,
        })
    }

    fn lookup<'a>(
        &self,
        state: &'a State,
        account_id: &str,
        name: &str,
    ) -> Result<(&'a FunctionKey, &'a Entry)> {
        state
            .functions
            .get_key_value(&FunctionKey {
                account_id: account_id.to_string(),
                name: name.to_string(),
            })
            .map(|(k, e)| (k, &**e))
            .ok_or_else(|| self.not_found(account_id, name, None))
    }

    /// The configuration a qualifier designates (aliases resolve to their primary version).
    fn config_for(
        &self,
        account_id: &str,
        entry: &Entry,
        qualifier: Option<&str>,
    ) -> Result<Arc<FunctionConfig>> {
        let name = &entry.latest.name;
        match qualifier {
            None | Some("$LATEST") => Ok(entry.latest.clone()),
            Some(q) => {
                if let Some(n) = parse_version_number(q) {
                    entry
                        .versions
                        .get(&n)
                        .cloned()
                        .ok_or_else(|| self.not_found(account_id, name, Some(q)))
                } else if let Some(a) = entry.aliases.get(q) {
                    self.config_for(account_id, entry, Some(&a.function_version))
                } else {
                    Err(self.not_found(account_id, name, Some(q)))
                }
            }
        }
    }

    fn check_revision(current: &str, wanted: Option<&str>) -> Result<()> {
        match wanted {
            Some(w) if w != current => Err(ControlError::precondition(
                "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
            )),
            _ => Ok(()),
        }
    }

    fn unqualified(r: &FunctionRef) -> Result<()> {
        if r.qualifier.is_some() {
            Err(ControlError::invalid(
                "Unqualified function name expected; this operation does not accept a version or alias.",
            ))
        } else {
            Ok(())
        }
    }

    fn qualified_arn(&self, account_id: &str, name: &str, q: &str) -> String {
        if q.is_empty() {
            self.arn(account_id, name)
        } else {
            format!("{}:{q}", self.arn(account_id, name))
        }
    }
}

impl ControlError {
    fn with_arn_hint(mut self, arn: &str) -> Self {
        self.message = format!("{} ({arn})", self.message);
        self
    }
}
