//! The embedded SQLite backend, the single-node default.
//!
//! One connection behind a `std::sync::Mutex`: every call finishes without awaiting, and SQLite
//! serialises writers anyway, so a pool would buy nothing. WAL mode lets readers in other
//! processes (backups, `sqlite3` by hand) work while the server writes.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    AccessKeyRow, AccountRow, AliasRow, FunctionRow, LayerRow, LayerVersionRow, Op, Snapshot,
    Store, StoreError, VersionRow,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (account_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS functions (
    account_id TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (account_id, name));
CREATE TABLE IF NOT EXISTS versions (
    account_id TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (account_id, name, version));
CREATE TABLE IF NOT EXISTS aliases (
    account_id TEXT NOT NULL, name TEXT NOT NULL, alias TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (account_id, name, alias));
CREATE TABLE IF NOT EXISTS layers (
    account_id TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (account_id, name));
CREATE TABLE IF NOT EXISTS layer_versions (
    account_id TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (account_id, name, version));
";

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and migrates it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::init(open_wal(Some(path))?)
    }

    /// Copies the write-ahead log into the database file and empties it. A node calls it when it
    /// stops: background threads may still hold the store, so closing the connection (which
    /// would checkpoint) is not something shutdown can count on.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(open_wal(None)?)
    }

    fn init(conn: Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(StoreError::Migrate)?;
        conn.execute_batch(SCHEMA).map_err(StoreError::Migrate)?;
        conn.execute_batch(crate::eventbridge::SCHEMA)
            .map_err(StoreError::Migrate)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }
}

fn apply_one(tx: &rusqlite::Transaction<'_>, op: &Op) -> Result<(), rusqlite::Error> {
    match op {
        Op::PutMeta { key, value } => tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        ),
        Op::PutAccount { account_id, doc } => tx.execute(
            "INSERT INTO accounts (account_id, doc) VALUES (?1, ?2)
             ON CONFLICT(account_id) DO UPDATE SET doc = excluded.doc",
            params![account_id, doc],
        ),
        Op::PutAccessKey {
            access_key_id,
            account_id,
            doc,
        } => tx.execute(
            "INSERT INTO access_keys (access_key_id, account_id, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT(access_key_id) DO UPDATE SET account_id = excluded.account_id, doc = excluded.doc",
            params![access_key_id, account_id, doc],
        ),
        Op::DeleteAccessKey { access_key_id } => tx.execute(
            "DELETE FROM access_keys WHERE access_key_id = ?1",
            params![access_key_id],
        ),
        Op::PutFunction {
            account_id,
            name,
            doc,
        } => tx.execute(
            "INSERT INTO functions (account_id, name, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT(account_id, name) DO UPDATE SET doc = excluded.doc",
            params![account_id, name, doc],
        ),
        Op::DeleteFunction { account_id, name } => {
            tx.execute(
                "DELETE FROM aliases WHERE account_id = ?1 AND name = ?2",
                params![account_id, name],
            )?;
            tx.execute(
                "DELETE FROM versions WHERE account_id = ?1 AND name = ?2",
                params![account_id, name],
            )?;
            tx.execute(
                "DELETE FROM functions WHERE account_id = ?1 AND name = ?2",
                params![account_id, name],
            )
        }
        Op::PutVersion {
            account_id,
            name,
            version,
            doc,
        } => tx.execute(
            "INSERT INTO versions (account_id, name, version, doc) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(account_id, name, version) DO UPDATE SET doc = excluded.doc",
            params![account_id, name, *version as i64, doc],
        ),
        Op::DeleteVersion {
            account_id,
            name,
            version,
        } => tx.execute(
            "DELETE FROM versions WHERE account_id = ?1 AND name = ?2 AND version = ?3",
            params![account_id, name, *version as i64],
        ),
        Op::PutAlias {
            account_id,
            name,
            alias,
            doc,
        } => tx.execute(
            "INSERT INTO aliases (account_id, name, alias, doc) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(account_id, name, alias) DO UPDATE SET doc = excluded.doc",
            params![account_id, name, alias, doc],
        ),
        Op::DeleteAlias {
            account_id,
            name,
            alias,
        } => tx.execute(
            "DELETE FROM aliases WHERE account_id = ?1 AND name = ?2 AND alias = ?3",
            params![account_id, name, alias],
        ),
        Op::PutLayer {
            account_id,
            name,
            doc,
        } => tx.execute(
            "INSERT INTO layers (account_id, name, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT(account_id, name) DO UPDATE SET doc = excluded.doc",
            params![account_id, name, doc],
        ),
        Op::PutLayerVersion {
            account_id,
            name,
            version,
            doc,
        } => tx.execute(
            "INSERT INTO layer_versions (account_id, name, version, doc) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(account_id, name, version) DO UPDATE SET doc = excluded.doc",
            params![account_id, name, *version as i64, doc],
        ),
        Op::DeleteLayerVersion {
            account_id,
            name,
            version,
        } => tx.execute(
            "DELETE FROM layer_versions WHERE account_id = ?1 AND name = ?2 AND version = ?3",
            params![account_id, name, *version as i64],
        ),
    }
    .map(|_| ())
}

/// Opens a database file (`None`: in memory) in WAL mode with `synchronous = NORMAL`, which keeps
/// commits durable across a process crash (kill -9); only a power loss can lose the last
/// transactions, which FULL would cost an fsync per commit to avoid.
pub(crate) fn open_wal(path: Option<&Path>) -> Result<Connection, StoreError> {
    let opened = match path {
        Some(p) => Connection::open(p),
        None => Connection::open_in_memory(),
    };
    let conn = opened.map_err(|source| StoreError::Open {
        path: path.map_or(":memory:".into(), |p| p.display().to_string()),
        source,
    })?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(StoreError::Migrate)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(StoreError::Migrate)?;
    Ok(conn)
}

/// Applies `ops` in one transaction, in order: all of them or, on the first error, none.
pub(crate) fn apply_all<T>(
    conn: &mut Connection,
    ops: &[T],
    apply_one: impl Fn(&rusqlite::Transaction<'_>, &T) -> rusqlite::Result<()>,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for op in ops {
        apply_one(&tx, op)?;
    }
    tx.commit()?;
    Ok(())
}

impl Store for SqliteStore {
    fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        apply_all(&mut *self.lock()?, ops, apply_one)
    }

    fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock()?;
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let conn = self.lock()?;
        let mut snap = Snapshot::default();
        let mut stmt = conn.prepare("SELECT account_id, doc FROM accounts")?;
        snap.accounts = stmt
            .query_map([], |r| {
                Ok(AccountRow {
                    account_id: r.get(0)?,
                    doc: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT access_key_id, account_id, doc FROM access_keys")?;
        snap.access_keys = stmt
            .query_map([], |r| {
                Ok(AccessKeyRow {
                    access_key_id: r.get(0)?,
                    account_id: r.get(1)?,
                    doc: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT account_id, name, doc FROM functions")?;
        snap.functions = stmt
            .query_map([], |r| {
                Ok(FunctionRow {
                    account_id: r.get(0)?,
                    name: r.get(1)?,
                    doc: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT account_id, name, version, doc FROM versions")?;
        snap.versions = stmt
            .query_map([], |r| {
                Ok(VersionRow {
                    account_id: r.get(0)?,
                    name: r.get(1)?,
                    version: r.get::<_, i64>(2)? as u64,
                    doc: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT account_id, name, alias, doc FROM aliases")?;
        snap.aliases = stmt
            .query_map([], |r| {
                Ok(AliasRow {
                    account_id: r.get(0)?,
                    name: r.get(1)?,
                    alias: r.get(2)?,
                    doc: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT account_id, name, doc FROM layers")?;
        snap.layers = stmt
            .query_map([], |r| {
                Ok(LayerRow {
                    account_id: r.get(0)?,
                    name: r.get(1)?,
                    doc: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT account_id, name, version, doc FROM layer_versions")?;
        snap.layer_versions = stmt
            .query_map([], |r| {
                Ok(LayerVersionRow {
                    account_id: r.get(0)?,
                    name: r.get(1)?,
                    version: r.get::<_, i64>(2)? as u64,
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

    fn put_fn(name: &str, doc: &str) -> Op {
        Op::PutFunction {
            account_id: "111122223333".into(),
            name: name.into(),
            doc: doc.into(),
        }
    }

    #[test]
    fn apply_and_snapshot_round_trip() {
        let s = SqliteStore::in_memory().unwrap();
        s.apply(&[
            put_fn("a", "{}"),
            Op::PutVersion {
                account_id: "111122223333".into(),
                name: "a".into(),
                version: 1,
                doc: "{\"v\":1}".into(),
            },
            Op::PutAlias {
                account_id: "111122223333".into(),
                name: "a".into(),
                alias: "live".into(),
                doc: "{}".into(),
            },
        ])
        .unwrap();
        s.apply(&[put_fn("a", "{\"x\":2}")]).unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.functions.len(), 1);
        assert_eq!(snap.functions[0].doc, "{\"x\":2}");
        assert_eq!(snap.versions[0].version, 1);
        assert_eq!(snap.aliases[0].alias, "live");
    }

    #[test]
    fn layers_and_their_versions_round_trip() {
        let s = SqliteStore::in_memory().unwrap();
        let acct = "111122223333".to_string();
        let version = |v: u64| Op::PutLayerVersion {
            account_id: acct.clone(),
            name: "libs".into(),
            version: v,
            doc: format!("{{\"v\":{v}}}"),
        };
        s.apply(&[
            Op::PutLayer {
                account_id: acct.clone(),
                name: "libs".into(),
                doc: "{\"last\":2}".into(),
            },
            version(1),
            version(2),
        ])
        .unwrap();
        s.apply(&[Op::DeleteLayerVersion {
            account_id: acct.clone(),
            name: "libs".into(),
            version: 1,
        }])
        .unwrap();
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.layers.len(), 1);
        assert_eq!(snap.layers[0].doc, "{\"last\":2}");
        assert_eq!(snap.layer_versions.len(), 1);
        assert_eq!(snap.layer_versions[0].version, 2);
    }

    #[test]
    fn delete_function_cascades() {
        let s = SqliteStore::in_memory().unwrap();
        s.apply(&[
            put_fn("a", "{}"),
            Op::PutVersion {
                account_id: "111122223333".into(),
                name: "a".into(),
                version: 1,
                doc: "{}".into(),
            },
        ])
        .unwrap();
        s.apply(&[Op::DeleteFunction {
            account_id: "111122223333".into(),
            name: "a".into(),
        }])
        .unwrap();
        let snap = s.snapshot().unwrap();
        assert!(snap.functions.is_empty() && snap.versions.is_empty());
    }

    #[test]
    fn failed_batch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
        // A batch whose second statement fails must roll back the first.
        let conn = s.lock().unwrap();
        conn.execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON versions BEGIN SELECT RAISE(ABORT, 'no'); END;",
        )
        .unwrap();
        drop(conn);
        let err = s.apply(&[
            put_fn("a", "{}"),
            Op::PutVersion {
                account_id: "111122223333".into(),
                name: "a".into(),
                version: 1,
                doc: "{}".into(),
            },
        ]);
        assert!(err.is_err());
        assert!(s.snapshot().unwrap().functions.is_empty());
    }

    #[test]
    fn meta_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.apply(&[Op::PutMeta {
                key: "account_id".into(),
                value: "123456789012".into(),
            }])
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(
            s.get_meta("account_id").unwrap().as_deref(),
            Some("123456789012")
        );
        assert_eq!(s.get_meta("missing").unwrap(), None);
    }
}
