//! Updraft's durable event path: everything that runs a function (or delivers an event) without
//! a caller waiting goes through here, so it is built and proven once.
//!
//! Components:
//! - `work`: the work item, its [`Target`] and its [`RetryPolicy`].
//! - `store`: the [`WorkStore`] trait (one table, one claim query, completions fenced by owner
//!   and attempt) and [`SqliteWorkStore`], whose writer thread group-commits every write.
//! - `configs`: event invoke configurations per function and qualifier ([`Configs`]).
//! - `targets`: the [`DeliveryTarget`] trait and the [`EventBusSink`] an event bus service
//!   implements; destination ARNs.
//! - `dispatch`: the background dispatcher: bounded in-flight deliveries, retries, give-ups.
//! - `backoff`: when a failed attempt runs again (pure).
//! - `record`: Lambda's destination records and dead-letter attributes.
//!
//! Architecture invariants: an item is acknowledged to its producer only after the transaction
//! that stores it committed ([`Events::enqueue`]); an attempt's end is recorded only by the
//! current lease holder; the dispatcher never blocks the synchronous invoke path (it is bounded
//! and treats throttles as a reason to wait).

mod backoff;
mod configs;
mod dispatch;
pub mod record;
mod store;
mod targets;
mod work;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

pub use backoff::{Backoff, Next};
pub use configs::{Configs, EventInvokeConfig};
pub use store::{BoxFuture, EventsError, SqliteWorkStore, WorkStore};
pub use targets::{
    Delivery, DeliveryTarget, DestinationArn, EventBusSink, EventBusTarget, Outcome, SinkError,
    Targets,
};
pub use work::{
    Claimed, DEFAULT_MAX_AGE_S, DEFAULT_MAX_RETRIES, Finish, ItemView, NewWork, RetryPolicy, State,
    Summary, Target, TargetKind,
};

/// The node's settings for the durable path.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Deliveries running at once on this node.
    pub max_in_flight: usize,
    /// Retry intervals.
    pub backoff: Backoff,
    /// How long a claim holds an item: longer than the longest function timeout (15 minutes),
    /// or a slow but live delivery would be taken over.
    pub lease: Duration,
    /// Longest idle wait between claims (new work wakes the dispatcher at once).
    pub poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_in_flight: 16,
            backoff: Backoff::default(),
            lease: Duration::from_secs(16 * 60),
            poll: Duration::from_secs(1),
        }
    }
}

/// What the dispatcher shares with the handle.
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn WorkStore>,
    pub(crate) configs: Configs,
    pub(crate) notify: Notify,
    pub(crate) settings: Settings,
    /// This process's lease owner name: `<node id>/<start time>`.
    pub(crate) owner: String,
    /// `<node id>/`: the prefix of every lease this node ever held.
    node_prefix: String,
}

/// The durable path of one node.
pub struct Events {
    inner: Arc<Inner>,
}

impl Events {
    /// Opens (creating if needed) the event database at `path`.
    pub fn open(path: &Path, settings: Settings) -> Result<Arc<Events>, EventsError> {
        let db = SqliteWorkStore::open(path)?;
        let node_id = match db.get_meta("node_id")? {
            Some(id) => id,
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                db.put_meta("node_id", &id)?;
                id
            }
        };
        let configs = Configs::open(db.clone())?;
        let node_prefix = format!("{node_id}/");
        let owner = format!("{node_prefix}{}", store::now_ms());
        Ok(Arc::new(Events {
            inner: Arc::new(Inner {
                store: db,
                configs,
                notify: Notify::new(),
                settings,
                owner,
                node_prefix,
            }),
        }))
    }

    /// Stores the items durably (one group commit) and wakes the dispatcher. When this returns
    /// `Ok`, the items survive a crash; on `Err` none of them was stored.
    ///
    /// This is the entry point for every producer: `Invoke` with `InvocationType: Event`,
    /// EventBridge rule targets, schedules. The returned ids are the items' store ids.
    pub async fn enqueue(&self, items: Vec<NewWork>) -> Result<Vec<i64>, EventsError> {
        let ids = self.inner.store.enqueue(items).await?;
        self.inner.notify.notify_one();
        Ok(ids)
    }

    /// The event invoke configurations.
    pub fn configs(&self) -> &Configs {
        &self.inner.configs
    }

    /// Counts and the newest `limit` items of one target resource (a function's unqualified ARN).
    pub fn summary(&self, resource_arn: &str, limit: usize) -> Result<Summary, EventsError> {
        self.inner.store.summary(resource_arn, limit)
    }

    /// Starts the dispatcher on the current tokio runtime, after taking back the leases this
    /// node held before it (re)started: nothing works on them any more.
    pub fn start(&self, targets: Targets) -> Result<tokio::task::JoinHandle<()>, EventsError> {
        let released = self.inner.store.release(&self.inner.node_prefix)?;
        if released > 0 {
            tracing::info!(
                released,
                "events: recovered work that was in flight at the last stop"
            );
        }
        Ok(tokio::spawn(dispatch::run(self.inner.clone(), targets)))
    }
}

#[cfg(test)]
mod tests;
