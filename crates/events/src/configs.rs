//! Event invoke configurations (Lambda's `FunctionEventInvokeConfig`): per function and
//! qualifier, the retry and age limits and the success and failure destinations of its
//! asynchronous invocations.
//!
//! They live in the event database, beside the work they govern, and in memory: the dispatcher
//! reads them at every decision without touching the disk.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::store::{EventsError, SqliteWorkStore};
use crate::work::{DEFAULT_MAX_AGE_S, DEFAULT_MAX_RETRIES, RetryPolicy};

/// One function's (or version's, or alias's) asynchronous invocation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventInvokeConfig {
    /// Unset: Lambda's default (2).
    pub max_retries: Option<u32>,
    /// Unset: Lambda's default (21,600 s).
    pub max_age_s: Option<u64>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    /// Seconds since the epoch, with milliseconds.
    pub last_modified: f64,
}

/// (account, function name, qualifier); the qualifier is `$LATEST` for the unqualified function.
type Key = (String, String, String);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS invoke_configs (
    account_id TEXT NOT NULL, name TEXT NOT NULL, qualifier TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (account_id, name, qualifier));
";

/// The configurations, in memory with write-through to the event database.
pub struct Configs {
    db: Arc<SqliteWorkStore>,
    map: RwLock<BTreeMap<Key, EventInvokeConfig>>,
}

fn key(account: &str, name: &str, qualifier: Option<&str>) -> Key {
    (
        account.to_string(),
        name.to_string(),
        qualifier.unwrap_or("$LATEST").to_string(),
    )
}

impl Configs {
    /// Loads every stored configuration.
    pub fn open(db: Arc<SqliteWorkStore>) -> Result<Self, EventsError> {
        let map = db.with_reader(|c| {
            c.execute_batch(SCHEMA)?;
            let mut stmt =
                c.prepare("SELECT account_id, name, qualifier, doc FROM invoke_configs")?;
            let rows = stmt.query_map([], |r| {
                Ok(((r.get(0)?, r.get(1)?, r.get(2)?), r.get::<_, String>(3)?))
            })?;
            let mut map = BTreeMap::new();
            for row in rows {
                let (k, doc) = row?;
                map.insert(k, serde_json::from_str(&doc)?);
            }
            Ok(map)
        })?;
        Ok(Self {
            db,
            map: RwLock::new(map),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Key, EventInvokeConfig>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The configuration of (function, qualifier), if one was put.
    pub fn get(
        &self,
        account: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Option<EventInvokeConfig> {
        self.read().get(&key(account, name, qualifier)).cloned()
    }

    /// Stores a configuration (replacing any).
    pub fn put(
        &self,
        account: &str,
        name: &str,
        qualifier: Option<&str>,
        cfg: EventInvokeConfig,
    ) -> Result<(), EventsError> {
        let k = key(account, name, qualifier);
        let doc = serde_json::to_string(&cfg)?;
        // The write lock is held across the write so two writers cannot reorder memory and disk.
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.db.with_reader(|c| {
            c.execute(
                "INSERT INTO invoke_configs (account_id, name, qualifier, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(account_id, name, qualifier) DO UPDATE SET doc = excluded.doc",
                params![k.0, k.1, k.2, doc],
            )?;
            Ok(())
        })?;
        map.insert(k, cfg);
        Ok(())
    }

    /// Removes a configuration; `false` when there was none.
    pub fn delete(
        &self,
        account: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<bool, EventsError> {
        let k = key(account, name, qualifier);
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&k) {
            return Ok(false);
        }
        self.db.with_reader(|c| {
            c.execute(
                "DELETE FROM invoke_configs WHERE account_id = ?1 AND name = ?2 AND qualifier = ?3",
                params![k.0, k.1, k.2],
            )?;
            Ok(())
        })?;
        map.remove(&k);
        Ok(true)
    }

    /// Removes every configuration of a function (it was deleted), or of one of its versions or
    /// aliases when `qualifier` is given.
    pub fn delete_function(
        &self,
        account: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), EventsError> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.db.with_reader(|c| {
            match qualifier {
                None => c.execute(
                    "DELETE FROM invoke_configs WHERE account_id = ?1 AND name = ?2",
                    params![account, name],
                )?,
                Some(q) => c.execute(
                    "DELETE FROM invoke_configs WHERE account_id = ?1 AND name = ?2 AND qualifier = ?3",
                    params![account, name, q],
                )?,
            };
            Ok(())
        })?;
        map.retain(|k, _| !(k.0 == account && k.1 == name && qualifier.is_none_or(|q| k.2 == q)));
        Ok(())
    }

    /// A function's configurations by qualifier, in qualifier order.
    pub fn list(&self, account: &str, name: &str) -> Vec<(String, EventInvokeConfig)> {
        self.read()
            .iter()
            .filter(|(k, _)| k.0 == account && k.1 == name)
            .map(|(k, v)| (k.2.clone(), v.clone()))
            .collect()
    }

    /// The retry policy of an asynchronous invocation of (function, qualifier): its
    /// configuration, or Lambda's defaults, with the function's dead-letter target.
    pub fn policy(
        &self,
        account: &str,
        name: &str,
        qualifier: Option<&str>,
        dead_letter: Option<String>,
    ) -> RetryPolicy {
        let cfg = self.get(account, name, qualifier);
        RetryPolicy {
            max_retries: cfg
                .as_ref()
                .and_then(|c| c.max_retries)
                .unwrap_or(DEFAULT_MAX_RETRIES),
            max_age_s: cfg
                .as_ref()
                .and_then(|c| c.max_age_s)
                .unwrap_or(DEFAULT_MAX_AGE_S),
            on_success: cfg.as_ref().and_then(|c| c.on_success.clone()),
            on_failure: cfg.as_ref().and_then(|c| c.on_failure.clone()),
            dead_letter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_survive_a_reopen_and_default_to_lambdas_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        {
            let c = Configs::open(SqliteWorkStore::open(&path).unwrap()).unwrap();
            let p = c.policy("1", "f", None, None);
            assert_eq!((p.max_retries, p.max_age_s), (2, 21_600));
            c.put(
                "1",
                "f",
                Some("live"),
                EventInvokeConfig {
                    max_retries: Some(0),
                    max_age_s: None,
                    on_success: None,
                    on_failure: Some("arn:aws:lambda:us-east-1:1:function:g".into()),
                    last_modified: 1.5,
                },
            )
            .unwrap();
            c.put(
                "1",
                "f",
                None,
                EventInvokeConfig {
                    max_retries: None,
                    max_age_s: Some(60),
                    on_success: None,
                    on_failure: None,
                    last_modified: 1.0,
                },
            )
            .unwrap();
        }
        let c = Configs::open(SqliteWorkStore::open(&path).unwrap()).unwrap();
        let live = c.policy("1", "f", Some("live"), Some("dlq".into()));
        assert_eq!(live.max_retries, 0);
        assert_eq!(live.max_age_s, 21_600);
        assert_eq!(live.dead_letter.as_deref(), Some("dlq"));
        assert_eq!(c.policy("1", "f", Some("$LATEST"), None).max_age_s, 60);
        assert_eq!(c.list("1", "f").len(), 2);
        c.delete_function("1", "f", None).unwrap();
        assert!(c.list("1", "f").is_empty());
        assert!(!c.delete("1", "f", None).unwrap());
    }
}
