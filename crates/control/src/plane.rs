//! The control-plane service: every Lambda management operation.
//!
//! All state lives in one `RwLock`ed map. Writers hold the write lock while they persist, so
//! the store sees changes in the same order as memory does; readers (the invoke path among
//! them) never wait on the database, only on an in-memory write that is already under way.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use updraft_store::{Op, Store};

use crate::arn::{FunctionRef, function_arn, parse_function_ref};
use crate::code::{CodeArtifact, CodeError, CodeStore};
use crate::error::{ControlError, ErrorKind, Result};
use crate::model::{Alias, CodeRef, FunctionConfig, FunctionDoc, FunctionKey, Logging};
use crate::policy::{PermissionInput, Policy, Statement};
use crate::provisioned::{self, ProvisionedConfig, ProvisionedView, StoredProvisioned};
use crate::url::{InvokeMode, UrlAuthType, UrlConfig, UrlInput};
use crate::validate;

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

/// Inputs of `CreateFunction`, already decoded from the wire.
#[derive(Debug, Default, Clone)]
pub struct CreateFunction {
    pub name: String,
    pub runtime: Option<String>,
    pub role: String,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<BTreeMap<String, String>>,
    pub ephemeral_storage: Option<i64>,
    pub logging: Option<LoggingInput>,
    pub tracing_mode: Option<String>,
    pub architectures: Option<Vec<String>>,
    pub tags: BTreeMap<String, String>,
    pub publish: bool,
    pub zip: Vec<u8>,
    /// `DeadLetterConfig.TargetArn`; empty means none.
    pub dead_letter_target: Option<String>,
}

/// `LoggingConfig` as given by the caller.
#[derive(Debug, Default, Clone)]
pub struct LoggingInput {
    pub log_format: Option<String>,
    pub application_log_level: Option<String>,
    pub system_log_level: Option<String>,
    pub log_group: Option<String>,
}

/// Inputs of `UpdateFunctionConfiguration`; `None` keeps the current value.
#[derive(Debug, Default, Clone)]
pub struct ConfigUpdate {
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<BTreeMap<String, String>>,
    pub ephemeral_storage: Option<i64>,
    pub logging: Option<LoggingInput>,
    pub tracing_mode: Option<String>,
    pub revision_id: Option<String>,
    /// `DeadLetterConfig.TargetArn`; `Some("")` removes it.
    pub dead_letter_target: Option<String>,
}

/// Inputs of `UpdateFunctionCode`.
#[derive(Debug, Default, Clone)]
pub struct CodeUpdate {
    pub zip: Vec<u8>,
    pub publish: bool,
    pub dry_run: bool,
    pub revision_id: Option<String>,
    pub architectures: Option<Vec<String>>,
}

/// `GetFunction`'s answer.
#[derive(Debug, Clone)]
pub struct FunctionDetails {
    pub config: Arc<FunctionConfig>,
    pub tags: BTreeMap<String, String>,
    pub reserved_concurrency: Option<u32>,
}

/// A function resolved for invocation.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub account_id: String,
    pub function_arn: String,
    pub config: Arc<FunctionConfig>,
    /// The version that runs (an alias resolves to one of its versions).
    pub executed_version: String,
    pub reserved_concurrency: Option<u32>,
    pub code_dir: PathBuf,
}

/// Account-wide numbers for `GetAccountSettings`.
#[derive(Debug, Clone)]
pub struct AccountUsage {
    pub function_count: u64,
    pub total_code_size: u64,
    pub concurrency_limit: u32,
    pub unreserved_concurrency: u32,
}

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
    state: RwLock<HashMap<FunctionKey, Entry>>,
    /// url-id → (function, qualifier key), so a URL request finds its function without a scan.
    /// Written only while the state's write lock is held.
    url_index: RwLock<HashMap<String, (FunctionKey, String)>>,
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
        let mut url_index = HashMap::new();
        for (key, e) in &state {
            for (q, u) in &e.urls {
                url_index.insert(u.url_id.clone(), (key.clone(), q.clone()));
            }
        }
        Ok(Self {
            store,
            code,
            config,
            state: RwLock::new(state),
            url_index: RwLock::new(url_index),
            listeners: RwLock::new(Vec::new()),
        })
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
        if let Ok(mut l) = self.listeners.write() {
            l.push(Box::new(f));
        }
    }

    fn notify(&self, change: Change) {
        if let Ok(l) = self.listeners.read() {
            for f in l.iter() {
                f(&change);
            }
        }
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, HashMap<FunctionKey, Entry>>> {
        self.state
            .read()
            .map_err(|_| ControlError::service("state lock poisoned"))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, HashMap<FunctionKey, Entry>>> {
        self.state
            .write()
            .map_err(|_| ControlError::service("state lock poisoned"))
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

    fn store_code(&self, zip: &[u8]) -> Result<CodeArtifact> {
        if zip.is_empty() {
            return Err(ControlError::invalid(
                "Could not unzip uploaded file. Please check your file, then try to upload again.",
            ));
        }
        self.code.put_zip(zip).map_err(code_error)
    }

    fn logging(
        input: Option<&LoggingInput>,
        current: Option<&Logging>,
        name: &str,
    ) -> Result<Logging> {
        let mut l = current.cloned().unwrap_or_else(|| Logging {
            log_format: "Text".into(),
            application_log_level: None,
            system_log_level: None,
            log_group: format!("/aws/lambda/{name}"),
        });
        if let Some(i) = input {
            if let Some(f) = &i.log_format {
                validate::log_format(f)?;
                l.log_format = f.clone();
            }
            if let Some(a) = &i.application_log_level {
                validate::log_level(
                    "loggingConfig.applicationLogLevel",
                    a,
                    &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"],
                )?;
                l.application_log_level = Some(a.clone());
            }
            if let Some(s) = &i.system_log_level {
                validate::log_level(
                    "loggingConfig.systemLogLevel",
                    s,
                    &["DEBUG", "INFO", "WARN"],
                )?;
                l.system_log_level = Some(s.clone());
            }
            if let Some(g) = &i.log_group {
                validate::log_group(g)?;
                l.log_group = g.clone();
            }
        }
        if l.log_format == "Text"
            && (l.application_log_level.is_some() || l.system_log_level.is_some())
        {
            return Err(ControlError::invalid(
                "Log levels can only be set when LogFormat is JSON.",
            ));
        }
        Ok(l)
    }

    /// `CreateFunction`. Returns `$LATEST` and, with `Publish`, version 1.
    pub fn create_function(
        &self,
        account_id: &str,
        input: CreateFunction,
    ) -> Result<(Arc<FunctionConfig>, Option<Arc<FunctionConfig>>)> {
        if !crate::arn::valid_function_name(&input.name) {
            // CreateFunction also accepts ARN forms of the name.
            let r = self.parse(account_id, &input.name)?;
            if r.qualifier.is_some() {
                return Err(ControlError::invalid(
                    "Unqualified function name expected; the function name cannot include a version or alias.",
                ));
            }
            return self.create_function(
                account_id,
                CreateFunction {
                    name: r.name,
                    ..input
                },
            );
        }
        let runtime = input.runtime.clone();
        match &runtime {
            Some(r) => validate::runtime(r)?,
            None => {
                return Err(ControlError::invalid(
                    "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
                ));
            }
        }
        let handler = input.handler.clone().ok_or_else(|| {
            ControlError::invalid(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
            )
        })?;
        validate::handler(&handler)?;
        validate::role(&input.role)?;
        let description = input.description.clone().unwrap_or_default();
        validate::description(&description)?;
        let timeout = validate::timeout(input.timeout.unwrap_or(3))?;
        let memory = validate::memory_size(input.memory_size.unwrap_or(128))?;
        let ephemeral = validate::ephemeral_storage(input.ephemeral_storage.unwrap_or(512))?;
        if let Some(env) = &input.environment {
            validate::environment(env)?;
        }
        let architectures = input
            .architectures
            .clone()
            .unwrap_or_else(|| vec!["x86_64".into()]);
        validate::architectures(&architectures)?;
        let tracing_mode = input
            .tracing_mode
            .clone()
            .unwrap_or_else(|| "PassThrough".into());
        if tracing_mode != "PassThrough" && tracing_mode != "Active" {
            return Err(ControlError::validation(format!(
                "1 validation error detected: Value '{tracing_mode}' at 'tracingConfig.mode' failed to satisfy constraint: Member must satisfy enum value set: [Active, PassThrough]"
            )));
        }
        validate::tags(&input.tags)?;
        let dead_letter_target = validate::dead_letter_target(input.dead_letter_target.as_deref())?;
        let logging = Self::logging(input.logging.as_ref(), None, &input.name)?;
        let key = FunctionKey {
            account_id: account_id.to_string(),
            name: input.name.clone(),
        };
        if self.read()?.contains_key(&key) {
            return Err(self.exists_error(account_id, &input.name));
        }
        let artifact = self.store_code(&input.zip)?;
        let latest = FunctionConfig {
            name: input.name.clone(),
            version: "$LATEST".into(),
            runtime,
            role: input.role,
            handler: Some(handler),
            description,
            timeout,
            memory_size: memory,
            environment: input.environment,
            ephemeral_storage: ephemeral,
            logging,
            tracing_mode,
            architectures,
            code: CodeRef {
                sha256_hex: artifact.sha256_hex,
                code_sha256: artifact.code_sha256,
                code_size: artifact.code_size,
            },
            last_modified: now_lambda(),
            revision_id: new_revision(),
            dead_letter_target,
        };
        let mut entry = Entry {
            latest: Arc::new(latest),
            tags: input.tags,
            reserved_concurrency: None,
            last_version: 0,
            versions: BTreeMap::new(),
            aliases: BTreeMap::new(),
            urls: BTreeMap::new(),
            policies: BTreeMap::new(),
            provisioned: BTreeMap::new(),
        };
        let mut published = None;
        let mut ops = Vec::new();
        if input.publish {
            let v = Self::new_version(&mut entry, None);
            ops.push(Self::put_version_op(&key, 1, &v)?);
            published = Some(v);
        }
        ops.insert(0, Self::put_function_op(&key, &entry)?);
        let mut state = self.write()?;
        if state.contains_key(&key) {
            return Err(self.exists_error(account_id, &input.name));
        }
        self.persist(&ops)?;
        let latest = entry.latest.clone();
        state.insert(key, entry);
        Ok((latest, published))
    }

    fn exists_error(&self, account_id: &str, name: &str) -> ControlError {
        ControlError::conflict(format!("Function already exist: {name}"))
            .with_arn_hint(&self.arn(account_id, name))
    }

    fn put_version_op(key: &FunctionKey, n: u64, cfg: &FunctionConfig) -> Result<Op> {
        Ok(Op::PutVersion {
            account_id: key.account_id.clone(),
            name: key.name.clone(),
            version: n,
            doc: serde_json::to_string(cfg).map_err(ControlError::service)?,
        })
    }

    /// Publishes `$LATEST` as the next version number in `entry`.
    fn new_version(entry: &mut Entry, description: Option<String>) -> Arc<FunctionConfig> {
        entry.last_version += 1;
        let n = entry.last_version;
        let mut cfg = (*entry.latest).clone();
        cfg.version = n.to_string();
        cfg.revision_id = new_revision();
        cfg.last_modified = now_lambda();
        if let Some(d) = description {
            cfg.description = d;
        }
        let cfg = Arc::new(cfg);
        entry.versions.insert(n, cfg.clone());
        // Publishing changes $LATEST's revision too, as on Lambda.
        let mut latest = (*entry.latest).clone();
        latest.revision_id = new_revision();
        entry.latest = Arc::new(latest);
        cfg
    }

    fn lookup<'a>(
        &self,
        state: &'a HashMap<FunctionKey, Entry>,
        account_id: &str,
        name: &str,
    ) -> Result<(&'a FunctionKey, &'a Entry)> {
        state
            .get_key_value(&FunctionKey {
                account_id: account_id.to_string(),
                name: name.to_string(),
            })
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

    /// `GetFunction`.
    pub fn get_function(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionDetails> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::qualifier(&r, qualifier)?;
        let state = self.read()?;
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let config = self.config_for(account_id, entry, q.as_deref())?;
        Ok(FunctionDetails {
            config,
            tags: entry.tags.clone(),
            reserved_concurrency: entry.reserved_concurrency,
        })
    }

    /// `GetFunctionConfiguration`.
    pub fn get_configuration(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<Arc<FunctionConfig>> {
        Ok(self
            .get_function(account_id, function_name, qualifier)?
            .config)
    }

    /// Resolves a function for invocation, choosing a version by alias weights.
    ///
    /// `caller_account` may invoke another account's function (named by ARN) when that
    /// function's resource policy, or its qualifier's, allows `lambda:InvokeFunction` to it.
    pub fn resolve(
        &self,
        caller_account: &str,
        function_name: &str,
        qualifier: Option<&str>,
        random: f64,
    ) -> Result<Resolved> {
        let owner = match parse_function_ref(function_name)?.account_id {
            Some(a) if a != caller_account => a,
            _ => caller_account.to_string(),
        };
        let account_id = owner.as_str();
        let r = self.parse(account_id, function_name)?;
        let q = Self::qualifier(&r, qualifier)?;
        let state = self.read()?;
        let (_, entry) = self.lookup(&state, account_id, &r.name).map_err(|e| {
            if owner != caller_account {
                self.cross_account_denied(caller_account, account_id, &r.name)
            } else {
                e
            }
        })?;
        if owner != caller_account {
            let mut policy = entry.policies.get("").cloned().unwrap_or_default();
            if let Some(p) = q.as_deref().and_then(|q| entry.policies.get(q)) {
                policy.statements.extend(p.statements.iter().cloned());
            }
            if !crate::policy::allows(
                &policy,
                "lambda:InvokeFunction",
                Some(caller_account),
                None,
                None,
                None,
            ) {
                return Err(self.cross_account_denied(caller_account, account_id, &r.name));
            }
        }
        let version = match q.as_deref() {
            None | Some("$LATEST") => "$LATEST".to_string(),
            Some(v) if parse_version_number(v).is_some() => v.to_string(),
            Some(a) => {
                let alias = entry
                    .aliases
                    .get(a)
                    .ok_or_else(|| self.not_found(account_id, &r.name, Some(a)))?;
                let mut pick = alias.function_version.clone();
                let mut acc = 0.0;
                for (v, w) in &alias.additional_version_weights {
                    acc += w;
                    if random < acc {
                        pick = v.clone();
                        break;
                    }
                }
                pick
            }
        };
        let config = self.config_for(account_id, entry, Some(&version))?;
        let code_dir = self
            .code
            .tree_dir(&config.code.sha256_hex)
            .ok_or_else(|| ControlError::service("invalid code address in configuration"))?;
        Ok(Resolved {
            account_id: account_id.to_string(),
            function_arn: self.arn(account_id, &r.name),
            config,
            executed_version: version,
            reserved_concurrency: entry.reserved_concurrency,
            code_dir,
        })
    }

    fn cross_account_denied(&self, caller: &str, owner: &str, name: &str) -> ControlError {
        ControlError::new(
            ErrorKind::AccessDenied,
            format!(
                "User: arn:aws:iam::{caller}:root is not authorized to perform: lambda:InvokeFunction on resource: {} because no resource-based policy allows the lambda:InvokeFunction action",
                self.arn(owner, name)
            ),
        )
    }

    /// `ListFunctions`.
    pub fn list_functions(
        &self,
        account_id: &str,
        all_versions: bool,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<Arc<FunctionConfig>>> {
        let state = self.read()?;
        let mut items: Vec<(String, Arc<FunctionConfig>)> = Vec::new();
        for (k, e) in state.iter().filter(|(k, _)| k.account_id == account_id) {
            items.push((version_sort_key(&k.name, "$LATEST"), e.latest.clone()));
            if all_versions {
                for (n, v) in &e.versions {
                    items.push((version_sort_key(&k.name, &n.to_string()), v.clone()));
                }
            }
        }
        drop(state);
        items.sort_by(|a, b| a.0.cmp(&b.0));
        paginate(items, marker, max_items)
    }

    /// `ListVersionsByFunction`.
    pub fn list_versions(
        &self,
        account_id: &str,
        function_name: &str,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<Arc<FunctionConfig>>> {
        let r = self.parse(account_id, function_name)?;
        let state = self.read()?;
        let (_, e) = self.lookup(&state, account_id, &r.name)?;
        let mut items = vec![(version_sort_key("", "$LATEST"), e.latest.clone())];
        for (n, v) in &e.versions {
            items.push((version_sort_key("", &n.to_string()), v.clone()));
        }
        drop(state);
        paginate(items, marker, max_items)
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

    /// Applies a change to `$LATEST` (and optionally publishes), persisting atomically.
    fn update_latest(
        &self,
        account_id: &str,
        name: &str,
        revision_id: Option<&str>,
        publish: bool,
        change: impl FnOnce(&mut FunctionConfig) -> Result<()>,
    ) -> Result<Arc<FunctionConfig>> {
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, name)?;
        let key = key.clone();
        Self::check_revision(&entry.latest.revision_id, revision_id)?;
        let mut entry = entry.clone();
        let mut latest = (*entry.latest).clone();
        change(&mut latest)?;
        latest.last_modified = now_lambda();
        latest.revision_id = new_revision();
        entry.latest = Arc::new(latest);
        let mut ops = Vec::new();
        let result = if publish {
            let v = self.publish_if_changed(&mut entry, None);
            if let Some((n, cfg)) = &v.1 {
                ops.push(Self::put_version_op(&key, *n, cfg)?);
            }
            v.0
        } else {
            entry.latest.clone()
        };
        ops.insert(0, Self::put_function_op(&key, &entry)?);
        self.persist(&ops)?;
        let change = Change::Updated {
            function_arn: self.arn(account_id, name),
            latest_revision: entry.latest.revision_id.clone(),
        };
        state.insert(key, entry);
        drop(state);
        self.notify(change);
        Ok(result)
    }

    /// Publishes unless `$LATEST` equals the newest version; returns the version config and,
    /// when one was created, its number for persistence.
    fn publish_if_changed(
        &self,
        entry: &mut Entry,
        description: Option<String>,
    ) -> (Arc<FunctionConfig>, Option<(u64, Arc<FunctionConfig>)>) {
        if let Some((_, last)) = entry.versions.iter().next_back()
            && last.same_content(&entry.latest)
        {
            return (last.clone(), None);
        }
        let v = Self::new_version(entry, description);
        (v.clone(), Some((entry.last_version, v)))
    }

    /// `UpdateFunctionCode`.
    pub fn update_code(
        &self,
        account_id: &str,
        function_name: &str,
        input: CodeUpdate,
    ) -> Result<Arc<FunctionConfig>> {
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        if let Some(a) = &input.architectures {
            validate::architectures(a)?;
        }
        {
            let state = self.read()?;
            let (_, e) = self.lookup(&state, account_id, &r.name)?;
            Self::check_revision(&e.latest.revision_id, input.revision_id.as_deref())?;
        }
        let artifact = self.store_code(&input.zip)?;
        if input.dry_run {
            let state = self.read()?;
            let (_, e) = self.lookup(&state, account_id, &r.name)?;
            let mut cfg = (*e.latest).clone();
            cfg.code = CodeRef {
                sha256_hex: artifact.sha256_hex,
                code_sha256: artifact.code_sha256,
                code_size: artifact.code_size,
            };
            return Ok(Arc::new(cfg));
        }
        self.update_latest(
            account_id,
            &r.name,
            input.revision_id.as_deref(),
            input.publish,
            |cfg| {
                cfg.code = CodeRef {
                    sha256_hex: artifact.sha256_hex,
                    code_sha256: artifact.code_sha256,
                    code_size: artifact.code_size,
                };
                if let Some(a) = input.architectures {
                    cfg.architectures = a;
                }
                Ok(())
            },
        )
    }

    /// `UpdateFunctionConfiguration`.
    pub fn update_configuration(
        &self,
        account_id: &str,
        function_name: &str,
        input: ConfigUpdate,
    ) -> Result<Arc<FunctionConfig>> {
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        let revision = input.revision_id.clone();
        self.update_latest(account_id, &r.name, revision.as_deref(), false, |cfg| {
            if let Some(rt) = input.runtime {
                validate::runtime(&rt)?;
                cfg.runtime = Some(rt);
            }
            if let Some(role) = input.role {
                validate::role(&role)?;
                cfg.role = role;
            }
            if let Some(h) = input.handler {
                validate::handler(&h)?;
                cfg.handler = Some(h);
            }
            if let Some(d) = input.description {
                validate::description(&d)?;
                cfg.description = d;
            }
            if let Some(t) = input.timeout {
                cfg.timeout = validate::timeout(t)?;
            }
            if let Some(m) = input.memory_size {
                cfg.memory_size = validate::memory_size(m)?;
            }
            if let Some(env) = input.environment {
                validate::environment(&env)?;
                cfg.environment = Some(env);
            }
            if let Some(s) = input.ephemeral_storage {
                cfg.ephemeral_storage = validate::ephemeral_storage(s)?;
            }
            if let Some(l) = input.logging {
                cfg.logging = Self::logging(Some(&l), Some(&cfg.logging), &cfg.name)?;
            }
            if let Some(t) = input.tracing_mode {
                if t != "PassThrough" && t != "Active" {
                    return Err(ControlError::validation(format!(
                        "1 validation error detected: Value '{t}' at 'tracingConfig.mode' failed to satisfy constraint: Member must satisfy enum value set: [Active, PassThrough]"
                    )));
                }
                cfg.tracing_mode = t;
            }
            if let Some(d) = input.dead_letter_target {
                cfg.dead_letter_target = validate::dead_letter_target(Some(&d))?;
            }
            Ok(())
        })
    }

    /// `PublishVersion`.
    pub fn publish_version(
        &self,
        account_id: &str,
        function_name: &str,
        code_sha256: Option<&str>,
        description: Option<String>,
        revision_id: Option<&str>,
    ) -> Result<Arc<FunctionConfig>> {
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        if let Some(d) = &description {
            validate::description(d)?;
        }
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        if let Some(sha) = code_sha256
            && sha != entry.latest.code.code_sha256
        {
            return Err(ControlError::invalid(format!(
                "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.",
                entry.latest.code.code_sha256
            )));
        }
        Self::check_revision(&entry.latest.revision_id, revision_id)?;
        let mut entry = entry.clone();
        let (cfg, created) = self.publish_if_changed(&mut entry, description);
        if let Some((n, v)) = &created {
            self.persist(&[
                Self::put_function_op(&key, &entry)?,
                Self::put_version_op(&key, *n, v)?,
            ])?;
            state.insert(key, entry);
        }
        Ok(cfg)
    }

    /// `DeleteFunction` (whole function, or one version with `Qualifier`).
    pub fn delete_function(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<()> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::qualifier(&r, qualifier)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        let arn = self.arn(account_id, &r.name);
        match q.as_deref() {
            None => {
                self.persist(&[Op::DeleteFunction {
                    account_id: key.account_id.clone(),
                    name: key.name.clone(),
                }])?;
                state.remove(&key);
                self.reindex_urls(&key, None);
            }
            Some("$LATEST") => {
                return Err(ControlError::invalid(
                    "$LATEST version cannot be deleted without deleting the function.",
                ));
            }
            Some(q) => {
                let n = parse_version_number(q).ok_or_else(|| {
                    ControlError::invalid(format!(
                        "Deletion of aliases is not supported by DeleteFunction; use DeleteAlias (got qualifier {q})."
                    ))
                })?;
                if !entry.versions.contains_key(&n) {
                    return Err(self.not_found(account_id, &r.name, Some(q)));
                }
                let users: Vec<&str> = entry
                    .aliases
                    .values()
                    .filter(|a| {
                        a.function_version == q || a.additional_version_weights.contains_key(q)
                    })
                    .map(|a| a.name.as_str())
                    .collect();
                if !users.is_empty() {
                    return Err(ControlError::conflict(format!(
                        "Unable to delete version because the following aliases reference it: [{}]",
                        users.join(", ")
                    )));
                }
                let mut entry = entry.clone();
                entry.versions.remove(&n);
                let mut ops = vec![Op::DeleteVersion {
                    account_id: key.account_id.clone(),
                    name: key.name.clone(),
                    version: n,
                }];
                // A version's policy and provisioned concurrency go with it.
                let had_policy = entry.policies.remove(q).is_some();
                let had_provisioned = entry.provisioned.remove(q).is_some();
                if had_policy || had_provisioned {
                    ops.push(Self::put_function_op(&key, &entry)?);
                }
                self.persist(&ops)?;
                state.insert(key, entry);
            }
        }
        drop(state);
        self.notify(Change::Deleted { function_arn: arn });
        Ok(())
    }

    fn check_alias_target(
        &self,
        account_id: &str,
        entry: &Entry,
        version: &str,
        weights: &BTreeMap<String, f64>,
    ) -> Result<()> {
        if version != "$LATEST" {
            let n = parse_version_number(version).ok_or_else(|| {
                ControlError::validation(format!(
                    "1 validation error detected: Value '{version}' at 'functionVersion' failed to satisfy constraint: Member must satisfy regular expression pattern: (\\$LATEST|[0-9]+)"
                ))
            })?;
            if !entry.versions.contains_key(&n) {
                return Err(self.not_found(account_id, &entry.latest.name, Some(version)));
            }
        }
        if weights.len() > 1 {
            return Err(ControlError::invalid(
                "Number of items in AdditionalVersionWeights cannot be greater than 1",
            ));
        }
        for (v, w) in weights {
            if !(0.0..=1.0).contains(w) || w.is_nan() {
                return Err(ControlError::validation(format!(
                    "1 validation error detected: Value '{w}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0]"
                )));
            }
            if v == version {
                return Err(ControlError::invalid(format!(
                    "Invalid function version {v}. Function version {v} is already included in routing configuration."
                )));
            }
            if version == "$LATEST" {
                return Err(ControlError::invalid(
                    "$LATEST is not supported for an alias pointing to more than 1 version",
                ));
            }
            let n = parse_version_number(v).ok_or_else(|| {
                ControlError::validation(format!(
                    "1 validation error detected: Value '{v}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [0-9]+]"
                ))
            })?;
            if !entry.versions.contains_key(&n) {
                return Err(self.not_found(account_id, &entry.latest.name, Some(v)));
            }
        }
        Ok(())
    }

    fn put_alias_op(key: &FunctionKey, alias: &Alias) -> Result<Op> {
        Ok(Op::PutAlias {
            account_id: key.account_id.clone(),
            name: key.name.clone(),
            alias: alias.name.clone(),
            doc: serde_json::to_string(alias).map_err(ControlError::service)?,
        })
    }

    /// `CreateAlias`.
    pub fn create_alias(
        &self,
        account_id: &str,
        function_name: &str,
        name: &str,
        function_version: &str,
        description: Option<String>,
        weights: BTreeMap<String, f64>,
    ) -> Result<Alias> {
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        validate::alias_name(name)?;
        let description = description.unwrap_or_default();
        validate::description(&description)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        if entry.aliases.contains_key(name) {
            return Err(ControlError::conflict(format!(
                "Alias already exists: {}:{name}",
                self.arn(account_id, &r.name)
            )));
        }
        self.check_alias_target(account_id, entry, function_version, &weights)?;
        let alias = Alias {
            name: name.to_string(),
            function_version: function_version.to_string(),
            description,
            additional_version_weights: weights,
            revision_id: new_revision(),
        };
        self.persist(&[Self::put_alias_op(&key, &alias)?])?;
        let mut entry = entry.clone();
        entry.aliases.insert(name.to_string(), alias.clone());
        state.insert(key, entry);
        Ok(alias)
    }

    fn alias_not_found(&self, account_id: &str, function: &str, alias: &str) -> ControlError {
        ControlError::not_found(format!(
            "Alias not found: {}:{alias}",
            self.arn(account_id, function)
        ))
    }

    /// `GetAlias`.
    pub fn get_alias(&self, account_id: &str, function_name: &str, name: &str) -> Result<Alias> {
        let r = self.parse(account_id, function_name)?;
        let state = self.read()?;
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        entry
            .aliases
            .get(name)
            .cloned()
            .ok_or_else(|| self.alias_not_found(account_id, &r.name, name))
    }

    /// `ListAliases`, optionally only those pointing at `function_version`.
    pub fn list_aliases(
        &self,
        account_id: &str,
        function_name: &str,
        function_version: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<Alias>> {
        let r = self.parse(account_id, function_name)?;
        let state = self.read()?;
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let items: Vec<(String, Alias)> = entry
            .aliases
            .values()
            .filter(|a| function_version.is_none_or(|v| a.function_version == v))
            .map(|a| (a.name.clone(), a.clone()))
            .collect();
        drop(state);
        paginate(items, marker, max_items)
    }

    /// `UpdateAlias`.
    #[allow(clippy::too_many_arguments)]
    pub fn update_alias(
        &self,
        account_id: &str,
        function_name: &str,
        name: &str,
        function_version: Option<String>,
        description: Option<String>,
        weights: Option<BTreeMap<String, f64>>,
        revision_id: Option<&str>,
    ) -> Result<Alias> {
        let r = self.parse(account_id, function_name)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        let current = entry
            .aliases
            .get(name)
            .ok_or_else(|| self.alias_not_found(account_id, &r.name, name))?;
        Self::check_revision(&current.revision_id, revision_id)?;
        let mut alias = current.clone();
        if let Some(v) = function_version {
            alias.function_version = v;
        }
        if let Some(d) = description {
            validate::description(&d)?;
            alias.description = d;
        }
        if let Some(w) = weights {
            alias.additional_version_weights = w;
        }
        self.check_alias_target(
            account_id,
            entry,
            &alias.function_version,
            &alias.additional_version_weights,
        )?;
        let moved = entry.provisioned.contains_key(name)
            && alias.function_version != current.function_version;
        if moved {
            if alias.function_version == "$LATEST" {
                return Err(ControlError::invalid(provisioned::UNPUBLISHED));
            }
            provisioned::check_overlap(
                name,
                &alias.function_version,
                &entry.provisioned,
                &entry.aliases,
            )?;
        }
        alias.revision_id = new_revision();
        self.persist(&[Self::put_alias_op(&key, &alias)?])?;
        let mut entry = entry.clone();
        entry.aliases.insert(name.to_string(), alias.clone());
        state.insert(key, entry);
        drop(state);
        if moved {
            self.notify(Change::Provisioned {
                function_arn: self.arn(account_id, &r.name),
            });
        }
        Ok(alias)
    }

    /// `DeleteAlias`.
    pub fn delete_alias(&self, account_id: &str, function_name: &str, name: &str) -> Result<()> {
        let r = self.parse(account_id, function_name)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        if !entry.aliases.contains_key(name) {
            // Lambda answers DeleteAlias of a missing alias with success.
            return Ok(());
        }
        let mut entry = entry.clone();
        entry.aliases.remove(name);
        let mut ops = vec![Op::DeleteAlias {
            account_id: key.account_id.clone(),
            name: key.name.clone(),
            alias: name.to_string(),
        }];
        // The alias's URL, policy and provisioned concurrency go with it, as on Lambda.
        let had_url = entry.urls.remove(name).is_some();
        let had_policy = entry.policies.remove(name).is_some();
        let had_provisioned = entry.provisioned.remove(name).is_some();
        if had_url || had_policy || had_provisioned {
            ops.push(Self::put_function_op(&key, &entry)?);
        }
        self.persist(&ops)?;
        if had_url {
            self.reindex_urls(&key, Some(&entry));
        }
        state.insert(key, entry);
        drop(state);
        if had_provisioned {
            self.notify(Change::Provisioned {
                function_arn: self.arn(account_id, &r.name),
            });
        }
        Ok(())
    }

    fn reserved_total(state: &HashMap<FunctionKey, Entry>, account_id: &str, except: &str) -> u32 {
        state
            .iter()
            .filter(|(k, _)| k.account_id == account_id && k.name != except)
            .filter_map(|(_, e)| e.reserved_concurrency)
            .sum()
    }

    /// Concurrency set aside by the account's functions other than `except`: a function's
    /// reserved concurrency, or its provisioned concurrency when it reserves none.
    fn committed_total(state: &HashMap<FunctionKey, Entry>, account_id: &str, except: &str) -> u64 {
        state
            .iter()
            .filter(|(k, _)| k.account_id == account_id && k.name != except)
            .map(|(_, e)| {
                u64::from(
                    e.reserved_concurrency
                        .unwrap_or_else(|| provisioned::total(&e.provisioned)),
                )
            })
            .sum()
    }

    /// `PutFunctionConcurrency`.
    pub fn put_concurrency(
        &self,
        account_id: &str,
        function_name: &str,
        reserved: i64,
    ) -> Result<u32> {
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        if reserved < 0 {
            return Err(ControlError::validation(format!(
                "1 validation error detected: Value '{reserved}' at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 0"
            )));
        }
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        let provisioned_here = provisioned::total(&entry.provisioned);
        if reserved < i64::from(provisioned_here) {
            return Err(ControlError::invalid(format!(
                "ReservedConcurrentExecutions ({reserved}) must not be less than the function's provisioned concurrency ({provisioned_here})."
            )));
        }
        let others = Self::committed_total(&state, account_id, &r.name);
        let limit = self.config.account_concurrency;
        if others as i64 + reserved > limit.saturating_sub(MIN_UNRESERVED_CONCURRENCY) as i64 {
            return Err(ControlError::invalid(format!(
                "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{MIN_UNRESERVED_CONCURRENCY}]."
            )));
        }
        let mut entry = entry.clone();
        entry.reserved_concurrency = Some(reserved as u32);
        self.persist(&[Self::put_function_op(&key, &entry)?])?;
        let change = Change::Updated {
            function_arn: self.arn(account_id, &r.name),
            latest_revision: entry.latest.revision_id.clone(),
        };
        state.insert(key, entry);
        drop(state);
        self.notify(change);
        Ok(reserved as u32)
    }

    /// `GetFunctionConcurrency`.
    pub fn get_concurrency(&self, account_id: &str, function_name: &str) -> Result<Option<u32>> {
        let r = self.parse(account_id, function_name)?;
        let state = self.read()?;
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        Ok(entry.reserved_concurrency)
    }

    /// `DeleteFunctionConcurrency`.
    pub fn delete_concurrency(&self, account_id: &str, function_name: &str) -> Result<()> {
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        let latest_revision = self.change_doc(account_id, &r.name, |e| {
            e.reserved_concurrency = None;
            Ok(e.latest.revision_id.clone())
        })?;
        self.notify(Change::Updated {
            function_arn: self.arn(account_id, &r.name),
            latest_revision,
        });
        Ok(())
    }

    /// `GetAccountSettings`.
    pub fn account_usage(&self, account_id: &str) -> Result<AccountUsage> {
        let state = self.read()?;
        let mut count = 0;
        let mut seen = std::collections::HashSet::new();
        let mut total = 0;
        for (_, e) in state.iter().filter(|(k, _)| k.account_id == account_id) {
            count += 1;
            for cfg in std::iter::once(&e.latest).chain(e.versions.values()) {
                if seen.insert(cfg.code.sha256_hex.clone()) {
                    total += cfg.code.code_size;
                }
            }
        }
        let reserved = Self::reserved_total(&state, account_id, "");
        Ok(AccountUsage {
            function_count: count,
            total_code_size: total,
            concurrency_limit: self.config.account_concurrency,
            unreserved_concurrency: self.config.account_concurrency.saturating_sub(reserved),
        })
    }

    /// Finds the function a taggable resource ARN names.
    fn tag_target(&self, account_id: &str, resource: &str) -> Result<String> {
        let r = self.parse(account_id, resource)?;
        if r.region.is_none() {
            return Err(ControlError::invalid(format!(
                "Invalid resource ARN: {resource}"
            )));
        }
        if r.qualifier.is_some() {
            return Err(ControlError::invalid(
                "Tags are not supported on function versions or aliases; use the unqualified function ARN.",
            ));
        }
        Ok(r.name)
    }

    /// `TagResource`.
    pub fn tag_resource(
        &self,
        account_id: &str,
        resource: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<()> {
        let name = self.tag_target(account_id, resource)?;
        self.change_doc(account_id, &name, |e| {
            e.tags.extend(tags);
            validate::tags(&e.tags)
        })?;
        Ok(())
    }

    /// `UntagResource`.
    pub fn untag_resource(&self, account_id: &str, resource: &str, keys: &[String]) -> Result<()> {
        let name = self.tag_target(account_id, resource)?;
        self.change_doc(account_id, &name, |e| {
            for k in keys {
                e.tags.remove(k);
            }
            Ok(())
        })?;
        Ok(())
    }

    /// `ListTags`.
    pub fn list_tags(&self, account_id: &str, resource: &str) -> Result<BTreeMap<String, String>> {
        let name = self.tag_target(account_id, resource)?;
        let state = self.read()?;
        let (_, entry) = self.lookup(&state, account_id, &name)?;
        Ok(entry.tags.clone())
    }

    /// Path of a stored zip, if its content address is known.
    pub fn code_zip(&self, sha256_hex: &str) -> Option<PathBuf> {
        self.code.get(sha256_hex).map(|a| a.zip_path)
    }
}

/// A Function URL configuration with the function it belongs to.
#[derive(Debug, Clone)]
pub struct UrlView {
    pub function_name: String,
    /// The alias the URL points at; `None` for the unqualified function (`$LATEST`).
    pub qualifier: Option<String>,
    /// The function ARN, qualified with the alias when there is one.
    pub function_arn: String,
    pub config: UrlConfig,
}

/// Everything a request to a Function URL needs, resolved from memory.
#[derive(Debug, Clone)]
pub struct UrlTarget {
    pub account_id: String,
    pub function_name: String,
    pub qualifier: Option<String>,
    pub function_arn: String,
    pub config: UrlConfig,
    /// The statements that govern the URL: the function's own policy and the alias's.
    pub policy: Policy,
}

const NO_SUCH_RESOURCE: &str = "The resource you requested does not exist.";

impl ControlPlane {
    /// Rewrites the url-id index entries of one function (`None`: the function is gone).
    /// Called with the state's write lock held.
    fn reindex_urls(&self, key: &FunctionKey, entry: Option<&Entry>) {
        let Ok(mut index) = self.url_index.write() else {
            return;
        };
        index.retain(|_, (k, _)| k != key);
        if let Some(e) = entry {
            for (q, u) in &e.urls {
                index.insert(u.url_id.clone(), (key.clone(), q.clone()));
            }
        }
    }

    fn qualified_arn(&self, account_id: &str, name: &str, q: &str) -> String {
        if q.is_empty() {
            self.arn(account_id, name)
        } else {
            format!("{}:{q}", self.arn(account_id, name))
        }
    }

    /// The qualifier key of a URL operation: `""` or an existing alias's name.
    fn url_key(r: &FunctionRef, param: Option<&str>) -> Result<String> {
        match Self::qualifier(r, param)? {
            None => Ok(String::new()),
            Some(q) => {
                crate::url::validate_qualifier(&q)?;
                Ok(q)
            }
        }
    }

    fn check_alias_exists(&self, account_id: &str, entry: &Entry, q: &str) -> Result<()> {
        if q.is_empty() || entry.aliases.contains_key(q) {
            Ok(())
        } else {
            Err(self.not_found(account_id, &entry.latest.name, Some(q)))
        }
    }

    fn url_view(&self, account_id: &str, name: &str, q: &str, config: &UrlConfig) -> UrlView {
        UrlView {
            function_name: name.to_string(),
            qualifier: (!q.is_empty()).then(|| q.to_string()),
            function_arn: self.qualified_arn(account_id, name, q),
            config: config.clone(),
        }
    }

    /// `CreateFunctionUrlConfig`.
    pub fn create_url_config(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
        input: UrlInput,
    ) -> Result<UrlView> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::url_key(&r, qualifier)?;
        let auth_type = match &input.auth_type {
            Some(a) => UrlAuthType::parse(a, "authType")?,
            None => {
                return Err(ControlError::validation(
                    "1 validation error detected: Value null at 'authType' failed to satisfy constraint: Member must not be null",
                ));
            }
        };
        if let Some(c) = &input.cors {
            crate::url::validate_cors(c)?;
        }
        let invoke_mode = match &input.invoke_mode {
            Some(m) => InvokeMode::parse(m)?,
            None => InvokeMode::Buffered,
        };
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        self.check_alias_exists(account_id, entry, &q)?;
        if entry.urls.contains_key(&q) {
            return Err(ControlError::conflict(format!(
                "Failed to create function url config for [functionArn = {}]. Error message:  FunctionUrlConfig exists for this Lambda function",
                self.qualified_arn(account_id, &r.name, &q)
            )));
        }
        let mut url_id = crate::url::new_url_id();
        while self
            .url_index
            .read()
            .map(|i| i.contains_key(&url_id))
            .unwrap_or(false)
        {
            url_id = crate::url::new_url_id();
        }
        let now = crate::url::now_url_time();
        let config = UrlConfig {
            url_id,
            auth_type,
            cors: input.cors,
            invoke_mode,
            creation_time: now.clone(),
            last_modified_time: now,
        };
        let mut entry = entry.clone();
        entry.urls.insert(q.clone(), config.clone());
        self.persist(&[Self::put_function_op(&key, &entry)?])?;
        self.reindex_urls(&key, Some(&entry));
        state.insert(key, entry);
        Ok(self.url_view(account_id, &r.name, &q, &config))
    }

    /// `GetFunctionUrlConfig`.
    pub fn get_url_config(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<UrlView> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::url_key(&r, qualifier)?;
        let state = self.read()?;
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let config = entry
            .urls
            .get(&q)
            .ok_or_else(|| ControlError::not_found(NO_SUCH_RESOURCE))?;
        Ok(self.url_view(account_id, &r.name, &q, config))
    }

    /// `UpdateFunctionUrlConfig`: only the given fields change.
    pub fn update_url_config(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
        input: UrlInput,
    ) -> Result<UrlView> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::url_key(&r, qualifier)?;
        let auth_type = input
            .auth_type
            .as_deref()
            .map(|a| UrlAuthType::parse(a, "authType"))
            .transpose()?;
        if let Some(c) = &input.cors {
            crate::url::validate_cors(c)?;
        }
        let invoke_mode = input
            .invoke_mode
            .as_deref()
            .map(InvokeMode::parse)
            .transpose()?;
        let config = self.change_doc(account_id, &r.name, |entry| {
            let config = entry
                .urls
                .get_mut(&q)
                .ok_or_else(|| ControlError::not_found(NO_SUCH_RESOURCE))?;
            if let Some(a) = auth_type {
                config.auth_type = a;
            }
            if let Some(c) = input.cors {
                config.cors = Some(c);
            }
            if let Some(m) = invoke_mode {
                config.invoke_mode = m;
            }
            config.last_modified_time = crate::url::now_url_time();
            Ok(config.clone())
        })?;
        Ok(self.url_view(account_id, &r.name, &q, &config))
    }

    /// `DeleteFunctionUrlConfig`.
    pub fn delete_url_config(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<()> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::url_key(&r, qualifier)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        if !entry.urls.contains_key(&q) {
            return Err(ControlError::not_found(NO_SUCH_RESOURCE));
        }
        let mut entry = entry.clone();
        entry.urls.remove(&q);
        self.persist(&[Self::put_function_op(&key, &entry)?])?;
        self.reindex_urls(&key, Some(&entry));
        state.insert(key, entry);
        Ok(())
    }

    /// `ListFunctionUrlConfigs` (at most 50 a page).
    pub fn list_url_configs(
        &self,
        account_id: &str,
        function_name: &str,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<UrlView>> {
        max_items_at_most(max_items, 50)?;
        let r = self.parse(account_id, function_name)?;
        let state = self.read()?;
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let items: Vec<(String, UrlView)> = entry
            .urls
            .iter()
            .map(|(q, c)| (q.clone(), self.url_view(account_id, &r.name, q, c)))
            .collect();
        drop(state);
        paginate(items, marker, max_items)
    }

    /// Finds the function behind a url-id (memory only; the URL request path).
    pub fn resolve_url(&self, url_id: &str) -> Option<UrlTarget> {
        let (key, q) = self.url_index.read().ok()?.get(url_id).cloned()?;
        let state = self.read().ok()?;
        let entry = state.get(&key)?;
        let config = entry.urls.get(&q)?.clone();
        let mut policy = entry.policies.get("").cloned().unwrap_or_default();
        if !q.is_empty()
            && let Some(p) = entry.policies.get(&q)
        {
            policy.statements.extend(p.statements.iter().cloned());
        }
        Some(UrlTarget {
            account_id: key.account_id.clone(),
            function_name: key.name.clone(),
            qualifier: (!q.is_empty()).then(|| q.clone()),
            function_arn: self.qualified_arn(&key.account_id, &key.name, &q),
            config,
            policy,
        })
    }

    /// The qualifier key of a policy operation: `""`, an existing version or an existing alias.
    fn policy_key(&self, account_id: &str, entry: &Entry, q: Option<&str>) -> Result<String> {
        match q {
            None => Ok(String::new()),
            Some("$LATEST") => Err(ControlError::invalid(
                "We currently do not support adding policies for $LATEST.",
            )),
            Some(q) => {
                let exists = match parse_version_number(q) {
                    Some(n) => entry.versions.contains_key(&n),
                    None => entry.aliases.contains_key(q),
                };
                if exists {
                    Ok(q.to_string())
                } else {
                    Err(self.not_found(account_id, &entry.latest.name, Some(q)))
                }
            }
        }
    }

    /// `AddPermission`: returns the added statement.
    pub fn add_permission(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
        input: PermissionInput,
    ) -> Result<Statement> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::qualifier(&r, qualifier)?;
        self.change_doc(account_id, &r.name, |entry| {
            let pk = self.policy_key(account_id, entry, q.as_deref())?;
            let resource = self.qualified_arn(account_id, &r.name, &pk);
            let statement = crate::policy::build_statement(&input, &resource)?;
            let latest_revision = &entry.latest.revision_id;
            let policy = entry.policies.entry(pk).or_default();
            // RevisionId may be the policy's (from GetPolicy) or the function's (from GetFunction).
            if let Some(want) = &input.revision_id
                && *want != policy.revision_id
                && want != latest_revision
            {
                return Err(ControlError::precondition(
                    "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the latest Revision Id",
                ));
            }
            if policy.statements.iter().any(|s| s.sid == statement.sid) {
                return Err(ControlError::conflict(format!(
                    "The statement id ({}) provided already exists. Please provide a new statement id, or remove the existing statement.",
                    statement.sid
                )));
            }
            policy.statements.push(statement.clone());
            policy.revision_id = new_revision();
            Ok(statement)
        })
    }

    /// `RemovePermission`.
    pub fn remove_permission(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
        statement_id: &str,
        revision_id: Option<&str>,
    ) -> Result<()> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::qualifier(&r, qualifier)?;
        self.change_doc(account_id, &r.name, |entry| {
            let pk = self.policy_key(account_id, entry, q.as_deref())?;
            let latest_revision = &entry.latest.revision_id;
            let policy = entry.policies.get_mut(&pk).ok_or_else(|| {
                ControlError::not_found("No policy is associated with the given resource.")
            })?;
            if let Some(want) = revision_id
                && want != policy.revision_id
                && want != latest_revision
            {
                return Err(ControlError::precondition(
                    "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the latest Revision Id",
                ));
            }
            let before = policy.statements.len();
            policy.statements.retain(|s| s.sid != statement_id);
            if policy.statements.len() == before {
                return Err(ControlError::not_found(format!(
                    "Statement {statement_id} is not found in resource policy."
                )));
            }
            if policy.statements.is_empty() {
                entry.policies.remove(&pk);
            } else {
                policy.revision_id = new_revision();
            }
            Ok(())
        })
    }

    /// `GetPolicy`: the policy of the function or of one version or alias.
    pub fn get_policy(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<Policy> {
        let r = self.parse(account_id, function_name)?;
        let q = Self::qualifier(&r, qualifier)?;
        let state = self.read()?;
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let pk = match q.as_deref() {
            Some("$LATEST") => String::new(),
            other => self.policy_key(account_id, entry, other)?,
        };
        entry
            .policies
            .get(&pk)
            .cloned()
            .ok_or_else(|| ControlError::not_found(NO_SUCH_RESOURCE))
    }
}

impl ControlError {
    fn with_arn_hint(mut self, arn: &str) -> Self {
        self.message = format!("{} ({arn})", self.message);
        self
    }
}

/// One version a function wants provisioned, resolved as for an invocation.
#[derive(Debug, Clone)]
pub struct ProvisionedTarget {
    pub resolved: Resolved,
    /// Environments wanted: the version's own configuration plus those of aliases whose primary
    /// version it is.
    pub count: u32,
}

impl ControlPlane {
    /// The version number or alias a provisioned-concurrency operation names (required; never
    /// `$LATEST`) and the version it provisions.
    fn provisioned_qualifier(
        &self,
        account_id: &str,
        entry: &Entry,
        r: &FunctionRef,
        param: Option<&str>,
    ) -> Result<(String, String)> {
        let q = Self::qualifier(r, param)?.ok_or_else(|| {
            ControlError::invalid(
                "A qualifier (a function version or an alias) is required for provisioned concurrency.",
            )
        })?;
        if q == "$LATEST" {
            return Err(ControlError::invalid(provisioned::UNPUBLISHED));
        }
        let version = provisioned::target_version(&q, &entry.aliases)
            .ok_or_else(|| self.not_found(account_id, &r.name, Some(&q)))?;
        if version == "$LATEST" {
            return Err(ControlError::invalid(provisioned::UNPUBLISHED));
        }
        let exists =
            parse_version_number(&version).is_some_and(|n| entry.versions.contains_key(&n));
        if !exists {
            return Err(self.not_found(account_id, &r.name, Some(&q)));
        }
        Ok((q, version))
    }

    fn provisioned_view(
        &self,
        account_id: &str,
        entry: &Entry,
        q: &str,
        config: &ProvisionedConfig,
    ) -> ProvisionedView {
        let name = &entry.latest.name;
        ProvisionedView {
            function_name: name.clone(),
            qualifier: q.to_string(),
            function_arn: self.qualified_arn(account_id, name, q),
            version: provisioned::target_version(q, &entry.aliases).unwrap_or_default(),
            config: config.clone(),
        }
    }

    /// `PutProvisionedConcurrencyConfig`.
    pub fn put_provisioned(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
        requested: i64,
    ) -> Result<ProvisionedView> {
        let r = self.parse(account_id, function_name)?;
        let requested = provisioned::check_count(requested)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        let (q, version) = self.provisioned_qualifier(account_id, entry, &r, qualifier)?;
        provisioned::check_overlap(&q, &version, &entry.provisioned, &entry.aliases)?;
        let mut entry = entry.clone();
        entry.provisioned.insert(
            q.clone(),
            ProvisionedConfig {
                requested,
                last_modified: now_lambda(),
            },
        );
        let total = provisioned::total(&entry.provisioned);
        match entry.reserved_concurrency {
            Some(reserved) if total > reserved => {
                return Err(ControlError::invalid(format!(
                    "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function ({reserved})."
                )));
            }
            Some(_) => {}
            None => {
                let others = Self::committed_total(&state, account_id, &r.name);
                let limit = self.config.account_concurrency;
                if others + u64::from(total)
                    > u64::from(limit.saturating_sub(MIN_UNRESERVED_CONCURRENCY))
                {
                    return Err(ControlError::invalid(format!(
                        "Specified ConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{MIN_UNRESERVED_CONCURRENCY}]."
                    )));
                }
            }
        }
        self.persist(&[Self::put_function_op(&key, &entry)?])?;
        let view = self.provisioned_view(account_id, &entry, &q, &entry.provisioned[&q]);
        state.insert(key, entry);
        drop(state);
        self.notify(Change::Provisioned {
            function_arn: self.arn(account_id, &r.name),
        });
        Ok(view)
    }

    /// `GetProvisionedConcurrencyConfig`; `None` when the qualifier has no configuration.
    pub fn get_provisioned(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<Option<ProvisionedView>> {
        let r = self.parse(account_id, function_name)?;
        let state = self.read()?;
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let (q, _) = self.provisioned_qualifier(account_id, entry, &r, qualifier)?;
        Ok(entry
            .provisioned
            .get(&q)
            .map(|c| self.provisioned_view(account_id, entry, &q, c)))
    }

    /// `DeleteProvisionedConcurrencyConfig` (deleting a configuration that does not exist
    /// succeeds).
    pub fn delete_provisioned(
        &self,
        account_id: &str,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<()> {
        let r = self.parse(account_id, function_name)?;
        let mut state = self.write()?;
        let (key, entry) = self.lookup(&state, account_id, &r.name)?;
        let key = key.clone();
        let (q, _) = self.provisioned_qualifier(account_id, entry, &r, qualifier)?;
        if !entry.provisioned.contains_key(&q) {
            return Ok(());
        }
        let mut entry = entry.clone();
        entry.provisioned.remove(&q);
        self.persist(&[Self::put_function_op(&key, &entry)?])?;
        state.insert(key, entry);
        drop(state);
        self.notify(Change::Provisioned {
            function_arn: self.arn(account_id, &r.name),
        });
        Ok(())
    }

    /// `ListProvisionedConcurrencyConfigs`.
    pub fn list_provisioned(
        &self,
        account_id: &str,
        function_name: &str,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<ProvisionedView>> {
        max_items_at_most(max_items, 50)?;
        let r = self.parse(account_id, function_name)?;
        Self::unqualified(&r)?;
        let state = self.read()?;
        let (_, entry) = self.lookup(&state, account_id, &r.name)?;
        let items: Vec<(String, ProvisionedView)> = entry
            .provisioned
            .iter()
            .map(|(q, c)| (q.clone(), self.provisioned_view(account_id, entry, q, c)))
            .collect();
        drop(state);
        paginate(items, marker, max_items)
    }

    fn targets_of(&self, key: &FunctionKey, entry: &Entry) -> Vec<ProvisionedTarget> {
        let mut out = Vec::new();
        for (version, count) in provisioned::per_version(&entry.provisioned, &entry.aliases) {
            let Some(config) = parse_version_number(&version).and_then(|n| entry.versions.get(&n))
            else {
                continue;
            };
            let Some(code_dir) = self.code.tree_dir(&config.code.sha256_hex) else {
                tracing::error!(
                    "invalid code address in configuration of {}:{version}",
                    key.name
                );
                continue;
            };
            out.push(ProvisionedTarget {
                resolved: Resolved {
                    account_id: key.account_id.clone(),
                    function_arn: self.arn(&key.account_id, &key.name),
                    config: config.clone(),
                    executed_version: version,
                    reserved_concurrency: entry.reserved_concurrency,
                    code_dir,
                },
                count,
            });
        }
        out
    }

    /// What a function wants provisioned, by version (empty when the function is gone or wants
    /// nothing). `function_arn` is the unqualified ARN a [`Change`] carries.
    pub fn provisioned_targets(&self, function_arn: &str) -> Vec<ProvisionedTarget> {
        let Ok(r) = parse_function_ref(function_arn) else {
            return Vec::new();
        };
        let Some(account_id) = r.account_id else {
            return Vec::new();
        };
        let Ok(state) = self.read() else {
            return Vec::new();
        };
        let key = FunctionKey {
            account_id,
            name: r.name,
        };
        state
            .get(&key)
            .map(|e| self.targets_of(&key, e))
            .unwrap_or_default()
    }

    /// Unqualified ARNs of every function with provisioned concurrency (to provision on start).
    pub fn provisioned_functions(&self) -> Vec<String> {
        let Ok(state) = self.read() else {
            return Vec::new();
        };
        let mut out: Vec<String> = state
            .iter()
            .filter(|(_, e)| !e.provisioned.is_empty())
            .map(|(k, _)| self.arn(&k.account_id, &k.name))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use updraft_store::SqliteStore;

    const ACCT: &str = "123456789012";

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, body) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn plane(dir: &std::path::Path) -> ControlPlane {
        let store = Arc::new(SqliteStore::open(&dir.join("db.sqlite")).unwrap());
        let code = CodeStore::open(dir.join("code"), Default::default()).unwrap();
        ControlPlane::open(
            store,
            code,
            ControlConfig {
                region: "us-east-1".into(),
                account_concurrency: 1000,
            },
        )
        .unwrap()
    }

    fn create(p: &ControlPlane, name: &str) -> Arc<FunctionConfig> {
        p.create_function(
            ACCT,
            CreateFunction {
                name: name.into(),
                runtime: Some("python3.12".into()),
                role: "arn:aws:iam::123456789012:role/r".into(),
                handler: Some("app.handler".into()),
                zip: zip_of(&[("app.py", "def handler(e, c):\n    return e\n")]),
                ..Default::default()
            },
        )
        .unwrap()
        .0
    }

    #[test]
    fn create_get_and_conflict() {
        let d = tempfile::tempdir().unwrap();
        let p = plane(d.path());
        let c = create(&p, "f1");
        assert_eq!(c.timeout, 3);
        assert_eq!(c.memory_size, 128);
        assert_eq!(c.logging.log_group, "/aws/lambda/f1");
        let got = p
            .get_function(
                ACCT,
                "arn:aws:lambda:us-east-1:123456789012:function:f1",
                None,
            )
            .unwrap();
        assert_eq!(got.config.revision_id, c.revision_id);
        let err = p
            .create_function(
                ACCT,
                CreateFunction {
                    name: "f1".into(),
                    runtime: Some("python3.12".into()),
                    role: "arn:aws:iam::123456789012:role/r".into(),
                    handler: Some("app.handler".into()),
                    zip: zip_of(&[("app.py", "x")]),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(
            p.get_function(ACCT, "nope", None).unwrap_err().kind,
            ErrorKind::NotFound
        );
    }

    #[test]
    fn versions_aliases_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        {
            let p = plane(d.path());
            create(&p, "f");
            let v1 = p.publish_version(ACCT, "f", None, None, None).unwrap();
            assert_eq!(v1.version, "1");
            // Nothing changed: the same version comes back.
            let again = p.publish_version(ACCT, "f", None, None, None).unwrap();
            assert_eq!(again.version, "1");
            p.update_configuration(
                ACCT,
                "f",
                ConfigUpdate {
                    timeout: Some(10),
                    ..Default::default()
                },
            )
            .unwrap();
            let v2 = p.publish_version(ACCT, "f", None, None, None).unwrap();
            assert_eq!(v2.version, "2");
            assert_eq!(v2.timeout, 10);
            let mut w = BTreeMap::new();
            w.insert("2".to_string(), 0.25);
            p.create_alias(ACCT, "f", "live", "1", None, w).unwrap();
            assert_eq!(
                p.delete_function(ACCT, "f", Some("1")).unwrap_err().kind,
                ErrorKind::Conflict
            );
        }
        let p = plane(d.path());
        let versions = p.list_versions(ACCT, "f", None, None).unwrap();
        let names: Vec<_> = versions.items.iter().map(|v| v.version.clone()).collect();
        assert_eq!(names, ["$LATEST", "1", "2"]);
        let a = p.get_alias(ACCT, "f", "live").unwrap();
        assert_eq!(a.additional_version_weights.get("2"), Some(&0.25));
        // Weighted routing picks the additional version below its weight.
        assert_eq!(
            p.resolve(ACCT, "f:live", None, 0.1)
                .unwrap()
                .executed_version,
            "2"
        );
        assert_eq!(
            p.resolve(ACCT, "f:live", None, 0.9)
                .unwrap()
                .executed_version,
            "1"
        );
    }

    #[test]
    fn revision_preconditions() {
        let d = tempfile::tempdir().unwrap();
        let p = plane(d.path());
        create(&p, "f");
        let err = p
            .update_configuration(
                ACCT,
                "f",
                ConfigUpdate {
                    revision_id: Some("wrong".into()),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::PreconditionFailed);
        let err = p
            .publish_version(ACCT, "f", Some("bogus"), None, None)
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
    }

    #[test]
    fn pagination_walks_everything_once() {
        let d = tempfile::tempdir().unwrap();
        let p = plane(d.path());
        for i in 0..5 {
            create(&p, &format!("fn{i}"));
        }
        let mut marker = None;
        let mut seen = Vec::new();
        loop {
            let page = p
                .list_functions(ACCT, false, marker.as_deref(), Some(2))
                .unwrap();
            seen.extend(page.items.iter().map(|c| c.name.clone()));
            match page.next_marker {
                Some(m) => marker = Some(m),
                None => break,
            }
        }
        assert_eq!(seen, ["fn0", "fn1", "fn2", "fn3", "fn4"]);
    }

    #[test]
    fn provisioned_configs_are_checked_kept_and_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        {
            let p = plane(d.path());
            create(&p, "f");
            p.publish_version(ACCT, "f", None, None, None).unwrap();
            p.create_alias(ACCT, "f", "live", "1", None, BTreeMap::new())
                .unwrap();
            p.create_alias(ACCT, "f", "dev", "$LATEST", None, BTreeMap::new())
                .unwrap();
            let changes = Arc::new(std::sync::Mutex::new(Vec::new()));
            {
                let changes = changes.clone();
                p.subscribe(move |c| {
                    if let Change::Provisioned { function_arn } = c {
                        changes.lock().unwrap().push(function_arn.clone());
                    }
                });
            }
            let e = p
                .put_provisioned(ACCT, "f", Some("$LATEST"), 1)
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidParameter);
            assert_eq!(e.message, provisioned::UNPUBLISHED);
            let e = p.put_provisioned(ACCT, "f", Some("dev"), 1).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidParameter);
            let e = p.put_provisioned(ACCT, "f", Some("1"), 0).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Validation);
            let e = p.put_provisioned(ACCT, "f", Some("7"), 1).unwrap_err();
            assert_eq!(e.kind, ErrorKind::NotFound);
            assert!(p.get_provisioned(ACCT, "f", Some("1")).unwrap().is_none());

            let v = p.put_provisioned(ACCT, "f", Some("1"), 2).unwrap();
            assert_eq!(v.function_arn, format!("{}:1", p.arn(ACCT, "f")));
            assert_eq!(v.config.requested, 2);
            assert_eq!(changes.lock().unwrap().len(), 1);
            // The alias on version 1 conflicts with version 1's configuration.
            let e = p.put_provisioned(ACCT, "f", Some("live"), 1).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Conflict);
            // The account keeps 100 unreserved.
            let e = p.put_provisioned(ACCT, "f", Some("1"), 901).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidParameter);
            assert!(e.message.contains("[100]"), "{}", e.message);
            // Reserved concurrency may not drop below the provisioned.
            assert!(p.put_concurrency(ACCT, "f", 1).is_err());
            p.put_concurrency(ACCT, "f", 2).unwrap();
            assert!(p.put_provisioned(ACCT, "f", Some("1"), 3).is_err());
            p.delete_concurrency(ACCT, "f").unwrap();

            let targets = p.provisioned_targets(&p.arn(ACCT, "f"));
            assert_eq!(targets.len(), 1);
            assert_eq!(targets[0].resolved.executed_version, "1");
            assert_eq!(targets[0].count, 2);
            assert_eq!(p.provisioned_functions(), vec![p.arn(ACCT, "f")]);
            let page = p.list_provisioned(ACCT, "f", None, None).unwrap();
            assert_eq!(page.items.len(), 1);
        }
        let p = plane(d.path());
        let got = p.get_provisioned(ACCT, "f", Some("1")).unwrap().unwrap();
        assert_eq!(got.config.requested, 2);
        p.delete_provisioned(ACCT, "f", Some("1")).unwrap();
        assert!(p.get_provisioned(ACCT, "f", Some("1")).unwrap().is_none());
        assert!(p.provisioned_targets(&p.arn(ACCT, "f")).is_empty());
        // An alias's configuration provisions its version, and goes with the alias.
        p.put_provisioned(ACCT, "f", Some("live"), 1).unwrap();
        let targets = p.provisioned_targets(&p.arn(ACCT, "f"));
        assert_eq!(targets[0].resolved.executed_version, "1");
        p.delete_alias(ACCT, "f", "live").unwrap();
        assert!(
            p.list_provisioned(ACCT, "f", None, None)
                .unwrap()
                .items
                .is_empty()
        );
    }

    #[test]
    fn reserved_concurrency_keeps_100_unreserved() {
        let d = tempfile::tempdir().unwrap();
        let p = plane(d.path());
        create(&p, "f");
        assert_eq!(p.put_concurrency(ACCT, "f", 900).unwrap(), 900);
        assert_eq!(
            p.put_concurrency(ACCT, "f", 901).unwrap_err().kind,
            ErrorKind::InvalidParameter
        );
        assert_eq!(p.account_usage(ACCT).unwrap().unreserved_concurrency, 100);
    }

    #[test]
    fn hostile_zip_leaves_no_function() {
        let d = tempfile::tempdir().unwrap();
        let p = plane(d.path());
        let err = p
            .create_function(
                ACCT,
                CreateFunction {
                    name: "evil".into(),
                    runtime: Some("python3.12".into()),
                    role: "arn:aws:iam::123456789012:role/r".into(),
                    handler: Some("app.handler".into()),
                    zip: zip_of(&[("../../evil.py", "x")]),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
        assert_eq!(
            p.get_function(ACCT, "evil", None).unwrap_err().kind,
            ErrorKind::NotFound
        );
    }

    #[test]
    fn url_configs_index_and_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        let id;
        {
            let p = plane(d.path());
            create(&p, "f");
            let input = UrlInput {
                auth_type: Some("NONE".into()),
                ..Default::default()
            };
            let v = p.create_url_config(ACCT, "f", None, input.clone()).unwrap();
            id = v.config.url_id.clone();
            assert!(crate::url::is_url_id(&id));
            assert_eq!(v.config.invoke_mode, InvokeMode::Buffered);
            assert_eq!(
                p.create_url_config(ACCT, "f", None, input.clone())
                    .unwrap_err()
                    .kind,
                ErrorKind::Conflict
            );
            // Aliases must exist; versions and $LATEST are not URL qualifiers.
            assert_eq!(
                p.create_url_config(ACCT, "f", Some("live"), input.clone())
                    .unwrap_err()
                    .kind,
                ErrorKind::NotFound
            );
            assert_eq!(
                p.create_url_config(ACCT, "f", Some("1"), input.clone())
                    .unwrap_err()
                    .kind,
                ErrorKind::Validation
            );
            p.publish_version(ACCT, "f", None, None, None).unwrap();
            p.create_alias(ACCT, "f", "live", "1", None, BTreeMap::new())
                .unwrap();
            let a = p.create_url_config(ACCT, "f", Some("live"), input).unwrap();
            assert_eq!(a.function_arn, format!("{}:live", p.arn(ACCT, "f")));
            let t = p.resolve_url(&a.config.url_id).unwrap();
            assert_eq!(t.qualifier.as_deref(), Some("live"));
            // Deleting the alias deletes its URL.
            p.delete_alias(ACCT, "f", "live").unwrap();
            assert!(p.resolve_url(&a.config.url_id).is_none());
        }
        let p = plane(d.path());
        let t = p.resolve_url(&id).unwrap();
        assert_eq!(t.function_name, "f");
        assert_eq!(t.config.auth_type, UrlAuthType::None);
        let u = p
            .update_url_config(
                ACCT,
                "f",
                None,
                UrlInput {
                    auth_type: Some("AWS_IAM".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(u.config.url_id, id, "the url-id is stable across updates");
        assert_eq!(
            p.list_url_configs(ACCT, "f", None, None)
                .unwrap()
                .items
                .len(),
            1
        );
        p.delete_url_config(ACCT, "f", None).unwrap();
        assert!(p.resolve_url(&id).is_none());
        assert_eq!(
            p.delete_url_config(ACCT, "f", None).unwrap_err().kind,
            ErrorKind::NotFound
        );
        p.create_url_config(
            ACCT,
            "f",
            None,
            UrlInput {
                auth_type: Some("NONE".into()),
                ..Default::default()
            },
        )
        .unwrap();
        p.delete_function(ACCT, "f", None).unwrap();
        assert!(p.url_index.read().unwrap().is_empty());
    }

    #[test]
    fn permissions_add_remove_and_govern_urls() {
        let d = tempfile::tempdir().unwrap();
        let p = plane(d.path());
        create(&p, "f");
        let url = p
            .create_url_config(
                ACCT,
                "f",
                None,
                UrlInput {
                    auth_type: Some("NONE".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let public = |p: &ControlPlane| {
            let t = p.resolve_url(&url.config.url_id).unwrap();
            crate::policy::allows(
                &t.policy,
                "lambda:InvokeFunctionUrl",
                None,
                None,
                None,
                Some("NONE"),
            )
        };
        assert!(!public(&p));
        assert_eq!(
            p.get_policy(ACCT, "f", None).unwrap_err().kind,
            ErrorKind::NotFound
        );
        let input = PermissionInput {
            statement_id: "public".into(),
            action: "lambda:InvokeFunctionUrl".into(),
            principal: "*".into(),
            url_auth_type: Some("NONE".into()),
            ..Default::default()
        };
        let s = p.add_permission(ACCT, "f", None, input.clone()).unwrap();
        assert_eq!(s.resource, p.arn(ACCT, "f"));
        assert!(public(&p));
        assert_eq!(
            p.add_permission(ACCT, "f", None, input.clone())
                .unwrap_err()
                .kind,
            ErrorKind::Conflict
        );
        assert_eq!(
            p.add_permission(ACCT, "f", Some("$LATEST"), input.clone())
                .unwrap_err()
                .kind,
            ErrorKind::InvalidParameter
        );
        let stale = PermissionInput {
            statement_id: "other".into(),
            revision_id: Some("stale".into()),
            ..input.clone()
        };
        assert_eq!(
            p.add_permission(ACCT, "f", None, stale).unwrap_err().kind,
            ErrorKind::PreconditionFailed
        );
        let policy = p.get_policy(ACCT, "f", None).unwrap();
        assert_eq!(policy.statements.len(), 1);
        assert_eq!(
            p.remove_permission(ACCT, "f", None, "nope", None)
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        p.remove_permission(ACCT, "f", None, "public", Some(&policy.revision_id))
            .unwrap();
        assert!(!public(&p));
        assert_eq!(
            p.get_policy(ACCT, "f", None).unwrap_err().kind,
            ErrorKind::NotFound
        );
    }
}
