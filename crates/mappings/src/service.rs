//! [`Mappings`]: every event source mapping of the node, its stored settings and its pollers.
//!
//! The mappings live in memory behind one `std::sync::Mutex` (no `.await` while it is held),
//! written through to [`MappingDb`] before a call is answered. Each enabled mapping has one
//! running poll group ([`crate::poller`]); a change of settings stops the group and starts a
//! fresh one with the new settings, which first settles the state (`Creating`, `Enabling`,
//! `Updating` → `Enabled`; `Disabling` → `Disabled`), as Lambda's mappings move.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::model::{
    self, DEFAULT_BATCH_SIZE, Mapping, MappingInput, MappingState, MappingUpdate, parse_queue_arn,
};
use crate::store::MappingDb;
use crate::{Invoker, MappingError, QueueSource, SourceError};

/// `LastProcessingResult` before any batch.
pub const NO_RECORDS: &str = "No records processed";
/// Why a mapping changed state: a caller asked.
pub const USER_INITIATED: &str = "USER_INITIATED";
/// Longest page of `ListEventSourceMappings`.
pub const MAX_LIST_ITEMS: usize = 100;

/// How the pollers behave.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Poll loops a mapping starts with (more are added while batches come back full).
    pub initial_pollers: u32,
    /// Concurrent batches of a mapping without `ScalingConfig.MaximumConcurrency`.
    pub default_max_concurrency: u32,
    /// Long-poll wait of an empty queue, seconds.
    pub wait_seconds: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            initial_pollers: 2,
            default_max_concurrency: 1_000,
            wait_seconds: 20,
        }
    }
}

struct Entry {
    mapping: Mapping,
    /// Stops the running poll group; dropped (or sent `true`) when the mapping changes.
    stop: Option<watch::Sender<bool>>,
}

/// All event source mappings of the node.
pub struct Mappings {
    entries: Mutex<HashMap<String, Entry>>,
    db: MappingDb,
    pub(crate) queues: Arc<dyn QueueSource>,
    pub(crate) invoker: Arc<dyn Invoker>,
    pub(crate) settings: Settings,
    /// Where poll groups run; management calls arrive on the blocking pool.
    runtime: tokio::runtime::Handle,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn not_found() -> MappingError {
    MappingError::NotFound("The resource you requested does not exist.".into())
}

/// Why a queue cannot be a mapping's source, in Lambda's words.
fn source_error(e: SourceError) -> MappingError {
    match e {
        SourceError::NoSuchQueue => MappingError::Invalid(
            "Error occurred while ReceiveMessage. SQS Error Code: AWS.SimpleQueueService.NonExistentQueue. SQS Error Message: The specified queue does not exist."
                .into(),
        ),
        SourceError::AccessDenied(_) => MappingError::Invalid(
            "The function execution role does not have permissions to call ReceiveMessage on SQS"
                .into(),
        ),
        SourceError::Other(m) => MappingError::Invalid(m),
    }
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Mappings {
    /// Opens the mappings database, settles mappings a stop left between states and starts the
    /// poll groups of the enabled ones. Call inside the Tokio runtime.
    pub fn open(
        path: &Path,
        queues: Arc<dyn QueueSource>,
        invoker: Arc<dyn Invoker>,
        settings: Settings,
    ) -> Result<Arc<Self>, MappingError> {
        Self::start(MappingDb::open(path)?, queues, invoker, settings)
    }

    /// As [`Mappings::open`], over an in-memory database (tests).
    pub fn in_memory(
        queues: Arc<dyn QueueSource>,
        invoker: Arc<dyn Invoker>,
        settings: Settings,
    ) -> Result<Arc<Self>, MappingError> {
        Self::start(MappingDb::in_memory()?, queues, invoker, settings)
    }

    fn start(
        db: MappingDb,
        queues: Arc<dyn QueueSource>,
        invoker: Arc<dyn Invoker>,
        settings: Settings,
    ) -> Result<Arc<Self>, MappingError> {
        let stored = db.load()?;
        let this = Arc::new(Self {
            entries: Mutex::new(HashMap::new()),
            db,
            queues,
            invoker,
            settings,
            runtime: tokio::runtime::Handle::current(),
        });
        for mut m in stored {
            if m.state == MappingState::Deleting {
                this.db.delete(&m.uuid)?;
                continue;
            }
            if m.state.transitional() {
                m.state = m.state.settled(m.enabled);
                this.db.put(&m)?;
            }
            let uuid = m.uuid.clone();
            this.lock().insert(
                uuid.clone(),
                Entry {
                    mapping: m,
                    stop: None,
                },
            );
            this.restart(&uuid);
        }
        Ok(this)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Nothing panics while holding it; if something did, the map is still whole.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the running poll group of `uuid` (if any) and starts one with its current settings.
    fn restart(self: &Arc<Self>, uuid: &str) {
        let (tx, rx) = watch::channel(false);
        let mapping = {
            let mut entries = self.lock();
            let Some(e) = entries.get_mut(uuid) else {
                return;
            };
            if let Some(old) = e.stop.replace(tx) {
                let _ = old.send(true);
            }
            e.mapping.clone()
        };
        let this = self.clone();
        self.runtime
            .spawn(async move { crate::poller::run(this, mapping, rx).await });
    }

    /// Moves a transitional state to the settled one (the poll group calls it when it starts).
    pub(crate) fn settle(&self, uuid: &str) {
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(uuid) else {
            return;
        };
        if !e.mapping.state.transitional() || e.mapping.state == MappingState::Deleting {
            return;
        }
        e.mapping.state = e.mapping.state.settled(e.mapping.enabled);
        e.mapping.last_modified_ms = now_ms();
        if let Err(err) = self.db.put(&e.mapping) {
            tracing::error!(uuid, error = %err, "event source mapping: storing its state");
        }
    }

    /// Records `LastProcessingResult` (stored only when it changes, so a busy mapping does not
    /// write per batch).
    pub(crate) fn note_result(&self, uuid: &str, result: &str) {
        let mut entries = self.lock();
        let Some(e) = entries.get_mut(uuid) else {
            return;
        };
        if e.mapping.last_result == result {
            return;
        }
        e.mapping.last_result = result.to_string();
        if let Err(err) = self.db.put(&e.mapping) {
            tracing::error!(uuid, error = %err, "event source mapping: storing its result");
        }
    }

    /// Stops every poll group (the node is stopping). Batches being invoked finish first.
    pub fn stop_all(&self) {
        for e in self.lock().values_mut() {
            if let Some(tx) = e.stop.take() {
                let _ = tx.send(true);
            }
        }
    }

    /// `CreateEventSourceMapping`. The function has been resolved by the caller.
    pub fn create(
        self: &Arc<Self>,
        account: &str,
        input: MappingInput,
    ) -> Result<Mapping, MappingError> {
        if parse_queue_arn(&input.event_source_arn).is_none() {
            return Err(MappingError::Invalid(format!(
                "Unrecognized event source, must be an Amazon SQS queue ARN: {}",
                input.event_source_arn
            )));
        }
        let info = self
            .queues
            .info(&input.event_source_arn, account)
            .map_err(source_error)?;
        model::check_visibility(info.visibility_timeout, input.function_timeout)?;
        let mapping = Mapping {
            uuid: new_uuid(),
            account_id: account.to_string(),
            event_source_arn: input.event_source_arn,
            function_arn: input.function_arn,
            batch_size: input.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
            window_seconds: input.window_seconds.unwrap_or(0),
            report_batch_item_failures: model::response_types(
                input.function_response_types.as_deref().unwrap_or(&[]),
            )?,
            maximum_concurrency: input.maximum_concurrency.flatten(),
            filters: input.filters.unwrap_or_default(),
            enabled: input.enabled.unwrap_or(true),
            state: MappingState::Creating,
            state_reason: USER_INITIATED.into(),
            last_modified_ms: now_ms(),
            last_result: NO_RECORDS.into(),
        };
        model::check(&mapping, info.fifo)?;
        {
            let mut entries = self.lock();
            if let Some(other) = entries.values().find(|e| {
                e.mapping.event_source_arn == mapping.event_source_arn
                    && e.mapping.function_arn == mapping.function_arn
            }) {
                return Err(MappingError::Conflict(format!(
                    "An event source mapping with SQS arn (\" {} \") and function (\" {} \") already exists. Please update or delete the existing mapping with UUID {}",
                    mapping.event_source_arn,
                    function_name(&mapping.function_arn),
                    other.mapping.uuid
                )));
            }
            self.db.put(&mapping)?;
            entries.insert(
                mapping.uuid.clone(),
                Entry {
                    mapping: mapping.clone(),
                    stop: None,
                },
            );
        }
        self.restart(&mapping.uuid);
        Ok(mapping)
    }

    /// `GetEventSourceMapping`.
    pub fn get(&self, account: &str, uuid: &str) -> Result<Mapping, MappingError> {
        self.lock()
            .get(uuid)
            .filter(|e| e.mapping.account_id == account)
            .map(|e| e.mapping.clone())
            .ok_or_else(not_found)
    }

    /// `ListEventSourceMappings`: the account's mappings in UUID order, optionally of one
    /// source and one function (an unqualified function ARN also matches its qualified
    /// mappings), a page at a time.
    pub fn list(
        &self,
        account: &str,
        source_arn: Option<&str>,
        function_arn: Option<&str>,
        marker: Option<&str>,
        max_items: Option<usize>,
    ) -> (Vec<Mapping>, Option<String>) {
        let mut all: Vec<Mapping> = self
            .lock()
            .values()
            .map(|e| &e.mapping)
            .filter(|m| m.account_id == account)
            .filter(|m| source_arn.is_none_or(|s| m.event_source_arn == s))
            .filter(|m| {
                function_arn.is_none_or(|f| {
                    m.function_arn == f || m.function_arn.starts_with(&format!("{f}:"))
                })
            })
            .filter(|m| marker.is_none_or(|k| m.uuid.as_str() > k))
            .cloned()
            .collect();
        all.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        let limit = max_items.unwrap_or(MAX_LIST_ITEMS).clamp(1, MAX_LIST_ITEMS);
        let next = (all.len() > limit).then(|| all[limit - 1].uuid.clone());
        all.truncate(limit);
        (all, next)
    }

    /// `UpdateEventSourceMapping`.
    pub fn update(
        self: &Arc<Self>,
        account: &str,
        uuid: &str,
        upd: MappingUpdate,
    ) -> Result<Mapping, MappingError> {
        let current = self.get(account, uuid)?;
        if current.state.transitional() {
            return Err(MappingError::InUse(format!(
                "Cannot update the event source mapping because it is in use. Its state is {}.",
                current.state.as_str()
            )));
        }
        let info = self
            .queues
            .info(&current.event_source_arn, account)
            .map_err(source_error)?;
        let mut m = current.clone();
        if let Some((f, timeout)) = upd.function {
            model::check_visibility(info.visibility_timeout, timeout)?;
            m.function_arn = f;
        }
        if let Some(b) = upd.batch_size {
            m.batch_size = b;
        }
        if let Some(w) = upd.window_seconds {
            m.window_seconds = w;
        }
        if let Some(t) = upd.function_response_types {
            m.report_batch_item_failures = model::response_types(&t)?;
        }
        if let Some(c) = upd.maximum_concurrency {
            m.maximum_concurrency = c;
        }
        if let Some(f) = upd.filters {
            m.filters = f;
        }
        if let Some(e) = upd.enabled {
            m.enabled = e;
        }
        model::check(&m, info.fifo)?;
        m.state = match (current.enabled, m.enabled) {
            (false, true) => MappingState::Enabling,
            (true, false) => MappingState::Disabling,
            _ => MappingState::Updating,
        };
        m.state_reason = USER_INITIATED.into();
        m.last_modified_ms = now_ms();
        {
            let mut entries = self.lock();
            let e = entries.get_mut(uuid).ok_or_else(not_found)?;
            if e.mapping.state.transitional() {
                return Err(MappingError::InUse(
                    "Cannot update the event source mapping because it is in use.".into(),
                ));
            }
            self.db.put(&m)?;
            e.mapping = m.clone();
        }
        self.restart(uuid);
        Ok(m)
    }

    /// `DeleteEventSourceMapping`: answers the mapping in `Deleting`; its poll group stops
    /// (a batch being invoked finishes) and the mapping is gone.
    pub fn delete(&self, account: &str, uuid: &str) -> Result<Mapping, MappingError> {
        let mut entries = self.lock();
        let e = entries
            .get(uuid)
            .filter(|e| e.mapping.account_id == account)
            .ok_or_else(not_found)?;
        if matches!(
            e.mapping.state,
            MappingState::Creating | MappingState::Deleting
        ) {
            return Err(MappingError::InUse(format!(
                "Cannot delete the event source mapping because it is in use. Its state is {}.",
                e.mapping.state.as_str()
            )));
        }
        self.db.delete(uuid)?;
        let mut e = entries.remove(uuid).ok_or_else(not_found)?;
        if let Some(tx) = e.stop.take() {
            let _ = tx.send(true);
        }
        e.mapping.state = MappingState::Deleting;
        e.mapping.state_reason = USER_INITIATED.into();
        e.mapping.last_modified_ms = now_ms();
        Ok(e.mapping)
    }

    /// Whether the mapping still exists (a poll group stops when it is gone).
    pub(crate) fn exists(&self, uuid: &str) -> bool {
        self.lock().contains_key(uuid)
    }
}

/// The function name inside a function ARN (for messages).
fn function_name(arn: &str) -> &str {
    arn.split(':').nth(6).unwrap_or(arn)
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
