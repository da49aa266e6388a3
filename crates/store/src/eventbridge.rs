//! Durable records of the EventBridge service: event buses and rules (a rule's document carries
//! its targets and tags, so one row changes per API call).
//!
//! Like the Lambda records, documents are opaque JSON owned by the service crate; the store only
//! keys them by (account, bus[, rule]).

use rusqlite::params;

use crate::{SqliteStore, StoreError};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS eb_buses (
    account_id TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (account_id, name));
CREATE TABLE IF NOT EXISTS eb_rules (
    account_id TEXT NOT NULL, bus TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (account_id, bus, name));
";

/// One change to the EventBridge records; a batch is atomic.
#[derive(Debug, Clone, PartialEq)]
pub enum EbOp {
    PutBus {
        account_id: String,
        name: String,
        doc: String,
    },
    /// Removes a bus and every rule on it.
    DeleteBus { account_id: String, name: String },
    PutRule {
        account_id: String,
        bus: String,
        name: String,
        doc: String,
    },
    DeleteRule {
        account_id: String,
        bus: String,
        name: String,
    },
}

/// A stored bus.
#[derive(Debug, Clone, PartialEq)]
pub struct BusRow {
    pub account_id: String,
    pub name: String,
    pub doc: String,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRow {
    pub account_id: String,
    pub bus: String,
    pub name: String,
    pub doc: String,
}

/// Every EventBridge record, for start-up.
#[derive(Debug, Clone, Default)]
pub struct EbSnapshot {
    pub buses: Vec<BusRow>,
    pub rules: Vec<RuleRow>,
}

/// The EventBridge service's durable backend.
pub trait EventBridgeStore: Send + Sync {
    /// Applies all operations atomically, in order.
    fn eb_apply(&self, ops: &[EbOp]) -> Result<(), StoreError>;
    /// Loads every bus and rule.
    fn eb_snapshot(&self) -> Result<EbSnapshot, StoreError>;
}

fn apply_one(tx: &rusqlite::Transaction<'_>, op: &EbOp) -> Result<(), rusqlite::Error> {
    match op {
        EbOp::PutBus {
            account_id,
            name,
            doc,
        } => tx.execute(
            "INSERT INTO eb_buses (account_id, name, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT(account_id, name) DO UPDATE SET doc = excluded.doc",
            params![account_id, name, doc],
        ),
        EbOp::DeleteBus { account_id, name } => {
            tx.execute(
                "DELETE FROM eb_rules WHERE account_id = ?1 AND bus = ?2",
                params![account_id, name],
            )?;
            tx.execute(
                "DELETE FROM eb_buses WHERE account_id = ?1 AND name = ?2",
                params![account_id, name],
            )
        }
        EbOp::PutRule {
            account_id,
            bus,
            name,
            doc,
        } => tx.execute(
            "INSERT INTO eb_rules (account_id, bus, name, doc) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(account_id, bus, name) DO UPDATE SET doc = excluded.doc",
            params![account_id, bus, name, doc],
        ),
        EbOp::DeleteRule {
            account_id,
            bus,
            name,
        } => tx.execute(
            "DELETE FROM eb_rules WHERE account_id = ?1 AND bus = ?2 AND name = ?3",
            params![account_id, bus, name],
        ),
    }
    .map(|_| ())
}

impl EventBridgeStore for SqliteStore {
    fn eb_apply(&self, ops: &[EbOp]) -> Result<(), StoreError> {
        crate::sqlite::apply_all(&mut *self.lock()?, ops, apply_one)
    }

    fn eb_snapshot(&self) -> Result<EbSnapshot, StoreError> {
        let conn = self.lock()?;
        let mut snap = EbSnapshot::default();
        let mut stmt = conn.prepare("SELECT account_id, name, doc FROM eb_buses")?;
        snap.buses = stmt
            .query_map([], |r| {
                Ok(BusRow {
                    account_id: r.get(0)?,
                    name: r.get(1)?,
                    doc: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT account_id, bus, name, doc FROM eb_rules")?;
        snap.rules = stmt
            .query_map([], |r| {
                Ok(RuleRow {
                    account_id: r.get(0)?,
                    bus: r.get(1)?,
                    name: r.get(2)?,
                    doc: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_survive_reopen_and_go_with_their_bus() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.eb_apply(&[
                EbOp::PutBus {
                    account_id: "111122223333".into(),
                    name: "orders".into(),
                    doc: "{}".into(),
                },
                EbOp::PutRule {
                    account_id: "111122223333".into(),
                    bus: "orders".into(),
                    name: "r1".into(),
                    doc: "{\"a\":1}".into(),
                },
                EbOp::PutRule {
                    account_id: "111122223333".into(),
                    bus: "default".into(),
                    name: "r1".into(),
                    doc: "{}".into(),
                },
            ])
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let snap = s.eb_snapshot().unwrap();
        assert_eq!(snap.buses.len(), 1);
        assert_eq!(snap.rules.len(), 2);
        s.eb_apply(&[EbOp::DeleteBus {
            account_id: "111122223333".into(),
            name: "orders".into(),
        }])
        .unwrap();
        let snap = s.eb_snapshot().unwrap();
        assert!(snap.buses.is_empty());
        assert_eq!(snap.rules.len(), 1);
        assert_eq!(snap.rules[0].bus, "default");
    }
}
