//! The mappings' own SQLite file (`<data-dir>/mappings.db`, WAL): one row per mapping, its
//! settings and state as one JSON document. Writes are rare (management calls and state
//! changes) and each is committed before it is answered.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, params};

use crate::MappingError;
use crate::model::Mapping;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mappings (
    uuid TEXT PRIMARY KEY, account_id TEXT NOT NULL, doc TEXT NOT NULL);
";

/// The mappings table.
pub struct MappingDb {
    /// One connection: every call finishes without awaiting.
    conn: Mutex<Connection>,
}

impl MappingDb {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, MappingError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Self::init(conn)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self, MappingError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Self, MappingError> {
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding it leaves the connection usable: SQLite rolls back on its own.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every stored mapping.
    pub fn load(&self) -> Result<Vec<Mapping>, MappingError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT doc FROM mappings ORDER BY uuid")?;
        let docs = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        docs.iter()
            .map(|d| serde_json::from_str(d).map_err(MappingError::from))
            .collect()
    }

    /// Writes (inserts or replaces) a mapping.
    pub fn put(&self, m: &Mapping) -> Result<(), MappingError> {
        let doc = serde_json::to_string(m)?;
        self.lock().execute(
            "INSERT INTO mappings (uuid, account_id, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT(uuid) DO UPDATE SET doc = excluded.doc",
            params![m.uuid, m.account_id, doc],
        )?;
        Ok(())
    }

    /// Removes a mapping.
    pub fn delete(&self, uuid: &str) -> Result<(), MappingError> {
        self.lock()
            .execute("DELETE FROM mappings WHERE uuid = ?1", params![uuid])?;
        Ok(())
    }
}
