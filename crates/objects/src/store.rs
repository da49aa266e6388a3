//! The object store's index (`<data-dir>/objects.db`, SQLite in WAL mode) over the bodies in
//! [`crate::blobs`]: buckets, object versions, multipart uploads and their parts.
//!
//! One mutex owns the connection, and the same lock orders body installs against body
//! removals: a body is renamed into place and indexed under it, and a body is removed only
//! under it once no row refers to it, so a concurrent upload of the same content never loses
//! its body. Every call blocks (disk): the wire module runs them on the blocking pool.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::blobs::{Blobs, Staged};
use crate::error::S3Error;

/// S3's limit on a key's UTF-8 length.
pub const MAX_KEY_BYTES: usize = 1024;

/// A bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub name: String,
    /// The owning account.
    pub account: String,
    pub region: String,
    pub created_ms: i64,
    /// `""` (never enabled), `Enabled` or `Suspended`.
    pub versioning: String,
    /// The bucket policy document, as the owner put it.
    pub policy: Option<String>,
    /// The notification configuration (the store's own JSON form).
    pub notification: Option<String>,
}

/// What an object carries besides its body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// `x-amz-meta-*` pairs, names lower-cased without the prefix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user: Vec<(String, String)>,
    /// The flexible checksum the object was uploaded with (algorithm name, base64 value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<(String, String)>,
    /// Parts count of a multipart object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
}

/// One version of an object (or a delete marker).
#[derive(Debug, Clone)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    /// `null` for the version written while versioning was off or suspended.
    pub version_id: String,
    pub latest: bool,
    pub delete_marker: bool,
    /// The body's digest (`None` for a delete marker).
    pub sha256: Option<String>,
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    pub modified_ms: i64,
    pub meta: ObjectMeta,
    pub tags: Vec<(String, String)>,
    /// Order of writes, for versions and notification sequencers.
    pub seq: i64,
}

/// What a delete did.
#[derive(Debug, Clone, Default)]
pub struct DeleteOutcome {
    pub version_id: Option<String>,
    pub delete_marker: bool,
    /// Whether anything existed to be deleted (a notification is sent only then).
    pub removed: bool,
}

/// A page of a listing.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<ObjectRecord>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or prefix returned (the next page starts after it).
    pub last: Option<String>,
}

/// A multipart upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub account: String,
    pub created_ms: i64,
    pub meta: ObjectMeta,
}

/// One uploaded part.
#[derive(Debug, Clone)]
pub struct Part {
    pub number: u32,
    pub sha256: String,
    pub size: u64,
    pub etag: String,
    pub modified_ms: i64,
    pub checksum: Option<(String, String)>,
}

/// Which condition a write is made under.
#[derive(Debug, Clone, Default)]
pub struct WriteCondition {
    /// `If-None-Match: *`: only when no current object exists.
    pub if_none_match_any: bool,
    /// `If-Match: <etag>`: only when the current object has this ETag.
    pub if_match: Option<String>,
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The object store's index and bodies.
pub struct ObjectStore {
    db: Mutex<Connection>,
    pub blobs: Blobs,
    seq: AtomicI64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS buckets(
  name TEXT PRIMARY KEY, account TEXT NOT NULL, region TEXT NOT NULL, created_ms INTEGER NOT NULL,
  versioning TEXT NOT NULL DEFAULT '', policy TEXT, notification TEXT);
CREATE TABLE IF NOT EXISTS objects(
  bucket TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL, seq INTEGER NOT NULL,
  latest INTEGER NOT NULL, delete_marker INTEGER NOT NULL, sha256 TEXT, size INTEGER NOT NULL,
  etag TEXT NOT NULL, modified_ms INTEGER NOT NULL, meta TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]',
  PRIMARY KEY(bucket, key, version_id));
CREATE INDEX IF NOT EXISTS objects_latest ON objects(bucket, latest, key);
CREATE INDEX IF NOT EXISTS objects_sha ON objects(sha256);
CREATE TABLE IF NOT EXISTS uploads(
  upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, account TEXT NOT NULL,
  created_ms INTEGER NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parts(
  upload_id TEXT NOT NULL, number INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
  etag TEXT NOT NULL, modified_ms INTEGER NOT NULL, checksum TEXT,
  PRIMARY KEY(upload_id, number));
CREATE INDEX IF NOT EXISTS parts_sha ON parts(sha256);
";

/// The columns of `objects`, in [`row_to_object`]'s order.
const OBJECT_COLS: &str = "bucket, key, version_id, latest, delete_marker, sha256, size, etag, modified_ms, meta, tags, seq";

fn row_to_object(r: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectRecord> {
    let meta: String = r.get(9)?;
    let tags: String = r.get(10)?;
    Ok(ObjectRecord {
        bucket: r.get(0)?,
        key: r.get(1)?,
        version_id: r.get(2)?,
        latest: r.get::<_, i64>(3)? != 0,
        delete_marker: r.get::<_, i64>(4)? != 0,
        sha256: r.get(5)?,
        size: r.get::<_, i64>(6)? as u64,
        etag: r.get(7)?,
        modified_ms: r.get(8)?,
        meta: serde_json::from_str(&meta).unwrap_or_default(),
        tags: serde_json::from_str(&tags).unwrap_or_default(),
        seq: r.get(11)?,
    })
}

fn row_to_bucket(r: &rusqlite::Row<'_>) -> rusqlite::Result<Bucket> {
    Ok(Bucket {
        name: r.get(0)?,
        account: r.get(1)?,
        region: r.get(2)?,
        created_ms: r.get(3)?,
        versioning: r.get(4)?,
        policy: r.get(5)?,
        notification: r.get(6)?,
    })
}

/// S3's bucket naming rules (the general-purpose bucket ones).
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && !name.split('.').all(|p| p.parse::<u8>().is_ok())
}

/// A random version id (S3's are opaque, URL-safe and 32 characters).
fn new_version_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

impl ObjectStore {
    /// Opens (creating) `<dir>/objects.db` and the bodies under `<dir>/objects/`, and sweeps
    /// bodies no row refers to (left by a stop between a body's rename and its index commit).
    pub fn open(dir: &Path) -> Result<Self, S3Error> {
        std::fs::create_dir_all(dir)?;
        let conn = Connection::open(dir.join("objects.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        let seq: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM objects", [], |r| {
            r.get(0)
        })?;
        let store = Self {
            db: Mutex::new(conn),
            blobs: Blobs::open(&dir.join("objects"))?,
            seq: AtomicI64::new(seq),
        };
        store.sweep()?;
        Ok(store)
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        match self.db.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The latest sequence number handed out (for records of removals).
    pub fn peek_seq(&self) -> i64 {
        self.seq.load(Ordering::SeqCst) + 1
    }

    fn next_seq(&self) -> i64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Removes every body that no object version and no part refers to.
    pub fn sweep(&self) -> Result<usize, S3Error> {
        let db = self.db();
        let mut removed = 0;
        for sha in self.blobs.all() {
            if !referenced(&db, &sha)? {
                self.blobs.remove(&sha);
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes the bodies of `shas` that nothing refers to any more (lock held by the caller).
    fn release(&self, db: &Connection, shas: &[String]) -> Result<(), S3Error> {
        for sha in shas {
            if !referenced(db, sha)? {
                self.blobs.remove(sha);
            }
        }
        Ok(())
    }

    // ---- buckets -------------------------------------------------------------------------

    pub fn create_bucket(&self, account: &str, name: &str, region: &str) -> Result<(), S3Error> {
        if !valid_bucket_name(name) {
            return Err(S3Error::new(
                "InvalidBucketName",
                400,
                "The specified bucket is not valid.",
            )
            .with("BucketName", name));
        }
        let db = self.db();
        if let Some(b) = get_bucket(&db, name)? {
            return Err(if b.account == account {
                S3Error::new(
                    "BucketAlreadyOwnedByYou",
                    409,
                    "Your previous request to create the named bucket succeeded and you already own it.",
                )
                .with("BucketName", name)
            } else {
                S3Error::new(
                    "BucketAlreadyExists",
                    409,
                    "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
                )
                .with("BucketName", name)
            });
        }
        db.execute(
            "INSERT INTO buckets(name, account, region, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![name, account, region, now_ms()],
        )?;
        Ok(())
    }

    pub fn bucket(&self, name: &str) -> Result<Bucket, S3Error> {
        get_bucket(&self.db(), name)?.ok_or_else(|| S3Error::no_such_bucket(name))
    }

    pub fn list_buckets(&self, account: &str) -> Result<Vec<Bucket>, S3Error> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT name, account, region, created_ms, versioning, policy, notification FROM buckets WHERE account = ?1 ORDER BY name",
        )?;
        let rows = st.query_map([account], row_to_bucket)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn delete_bucket(&self, name: &str) -> Result<(), S3Error> {
        let db = self.db();
        let objects: i64 = db.query_row(
            "SELECT COUNT(*) FROM (SELECT 1 FROM objects WHERE bucket = ?1 LIMIT 1)",
            [name],
            |r| r.get(0),
        )?;
        let uploads: i64 = db.query_row(
            "SELECT COUNT(*) FROM (SELECT 1 FROM uploads WHERE bucket = ?1 LIMIT 1)",
            [name],
            |r| r.get(0),
        )?;
        if objects + uploads > 0 {
            return Err(S3Error::new(
                "BucketNotEmpty",
                409,
                "The bucket you tried to delete is not empty",
            )
            .with("BucketName", name));
        }
        db.execute("DELETE FROM buckets WHERE name = ?1", [name])?;
        Ok(())
    }

    pub fn set_versioning(&self, name: &str, status: &str) -> Result<(), S3Error> {
        self.db().execute(
            "UPDATE buckets SET versioning = ?2 WHERE name = ?1",
            params![name, status],
        )?;
        Ok(())
    }

    pub fn set_policy(&self, name: &str, policy: Option<&str>) -> Result<(), S3Error> {
        self.db().execute(
            "UPDATE buckets SET policy = ?2 WHERE name = ?1",
            params![name, policy],
        )?;
        Ok(())
    }

    pub fn set_notification(&self, name: &str, config: Option<&str>) -> Result<(), S3Error> {
        self.db().execute(
            "UPDATE buckets SET notification = ?2 WHERE name = ?1",
            params![name, config],
        )?;
        Ok(())
    }

    // ---- objects -------------------------------------------------------------------------

    /// The current version of a key, or a given version.
    pub fn object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<Option<ObjectRecord>, S3Error> {
        let db = self.db();
        get_object(&db, bucket, key, version)
    }

    /// Installs a staged body and indexes it as the new current version of `key`.
    pub fn put_object(
        &self,
        bucket: &Bucket,
        key: &str,
        staged: &mut Staged,
        meta: ObjectMeta,
        tags: Vec<(String, String)>,
        cond: &WriteCondition,
    ) -> Result<ObjectRecord, S3Error> {
        let mut db = self.db();
        check_condition(&db, &bucket.name, key, cond)?;
        self.blobs.install(staged)?;
        let etag = staged.md5.clone();
        let rec = ObjectRecord {
            bucket: bucket.name.clone(),
            key: key.to_string(),
            version_id: String::new(),
            latest: true,
            delete_marker: false,
            sha256: Some(staged.sha256.clone()),
            size: staged.size,
            etag,
            modified_ms: now_ms(),
            meta,
            tags,
            seq: self.next_seq(),
        };
        self.insert_version(&mut db, bucket, rec)
    }

    /// Indexes a new current version over a body already stored (CopyObject): no bytes move.
    pub fn put_existing(
        &self,
        bucket: &Bucket,
        key: &str,
        source: &ObjectRecord,
        meta: ObjectMeta,
        tags: Vec<(String, String)>,
        cond: &WriteCondition,
    ) -> Result<ObjectRecord, S3Error> {
        let mut db = self.db();
        check_condition(&db, &bucket.name, key, cond)?;
        let sha = source
            .sha256
            .clone()
            .ok_or_else(|| S3Error::no_such_key(&source.key))?;
        // The source may have been deleted since it was read: its body must still be there.
        if !self.blobs.path(&sha).exists() {
            return Err(S3Error::no_such_key(&source.key));
        }
        let rec = ObjectRecord {
            bucket: bucket.name.clone(),
            key: key.to_string(),
            version_id: String::new(),
            latest: true,
            delete_marker: false,
            sha256: Some(sha),
            size: source.size,
            etag: source.etag.clone(),
            modified_ms: now_ms(),
            meta,
            tags,
            seq: self.next_seq(),
        };
        self.insert_version(&mut db, bucket, rec)
    }

    /// Writes `rec` as the key's current version under the bucket's versioning state, in one
    /// transaction; a replaced `null` version's body is released.
    fn insert_version(
        &self,
        db: &mut Connection,
        bucket: &Bucket,
        mut rec: ObjectRecord,
    ) -> Result<ObjectRecord, S3Error> {
        let versioning = current_versioning(db, &bucket.name)?;
        rec.version_id = if versioning == "Enabled" {
            new_version_id()
        } else {
            "null".to_string()
        };
        let tx = db.transaction()?;
        let replaced: Option<Option<String>> = tx
            .query_row(
                "SELECT sha256 FROM objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3",
                params![rec.bucket, rec.key, rec.version_id],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute(
            "DELETE FROM objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3",
            params![rec.bucket, rec.key, rec.version_id],
        )?;
        tx.execute(
            "UPDATE objects SET latest = 0 WHERE bucket = ?1 AND key = ?2 AND latest = 1",
            params![rec.bucket, rec.key],
        )?;
        tx.execute(
            &format!("INSERT INTO objects({OBJECT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
            params![
                rec.bucket,
                rec.key,
                rec.version_id,
                1,
                rec.delete_marker as i64,
                rec.sha256,
                rec.size as i64,
                rec.etag,
                rec.modified_ms,
                serde_json::to_string(&rec.meta).unwrap_or_default(),
                serde_json::to_string(&rec.tags).unwrap_or_default(),
                rec.seq,
            ],
        )?;
        tx.commit()?;
        if let Some(Some(old)) = replaced {
            self.release(db, &[old])?;
        }
        Ok(rec)
    }

    /// Deletes a key (a delete marker when versioning is on) or one version of it.
    pub fn delete_object(
        &self,
        bucket: &Bucket,
        key: &str,
        version: Option<&str>,
    ) -> Result<DeleteOutcome, S3Error> {
        let mut db = self.db();
        if let Some(v) = version {
            let Some(rec) = get_object(&db, &bucket.name, key, Some(v))? else {
                // Deleting a version that does not exist succeeds, as on S3.
                return Ok(DeleteOutcome {
                    version_id: Some(v.to_string()),
                    ..Default::default()
                });
            };
            let tx = db.transaction()?;
            tx.execute(
                "DELETE FROM objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3",
                params![bucket.name, key, v],
            )?;
            if rec.latest {
                tx.execute(
                    "UPDATE objects SET latest = 1 WHERE bucket = ?1 AND key = ?2 AND seq = (SELECT MAX(seq) FROM objects WHERE bucket = ?1 AND key = ?2)",
                    params![bucket.name, key],
                )?;
            }
            tx.commit()?;
            if let Some(sha) = rec.sha256 {
                self.release(&db, &[sha])?;
            }
            return Ok(DeleteOutcome {
                version_id: Some(v.to_string()),
                delete_marker: rec.delete_marker,
                removed: true,
            });
        }
        let versioning = current_versioning(&db, &bucket.name)?;
        if versioning.is_empty() {
            let old: Option<Option<String>> = db
                .query_row(
                    "SELECT sha256 FROM objects WHERE bucket = ?1 AND key = ?2 AND version_id = 'null'",
                    params![bucket.name, key],
                    |r| r.get(0),
                )
                .optional()?;
            db.execute(
                "DELETE FROM objects WHERE bucket = ?1 AND key = ?2 AND version_id = 'null'",
                params![bucket.name, key],
            )?;
            if let Some(Some(sha)) = &old {
                self.release(&db, std::slice::from_ref(sha))?;
            }
            return Ok(DeleteOutcome {
                removed: old.is_some(),
                ..Default::default()
            });
        }
        let marker = ObjectRecord {
            bucket: bucket.name.clone(),
            key: key.to_string(),
            version_id: String::new(),
            latest: true,
            delete_marker: true,
            sha256: None,
            size: 0,
            etag: String::new(),
            modified_ms: now_ms(),
            meta: ObjectMeta::default(),
            tags: Vec::new(),
            seq: self.next_seq(),
        };
        let rec = self.insert_version(&mut db, bucket, marker)?;
        Ok(DeleteOutcome {
            version_id: Some(rec.version_id),
            delete_marker: true,
            removed: true,
        })
    }

    pub fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version: &str,
        tags: &[(String, String)],
    ) -> Result<(), S3Error> {
        self.db().execute(
            "UPDATE objects SET tags = ?4 WHERE bucket = ?1 AND key = ?2 AND version_id = ?3",
            params![
                bucket,
                key,
                version,
                serde_json::to_string(tags).unwrap_or_default()
            ],
        )?;
        Ok(())
    }

    /// Current objects in key order after `after`, grouped by `delimiter` after `prefix`.
    pub fn list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> Result<Listing, S3Error> {
        let db = self.db();
        let mut out = Listing::default();
        let mut cursor = after.unwrap_or("").to_string();
        let mut inclusive = false;
        if let (Some(a), Some(d)) = (after, delimiter.filter(|d| !d.is_empty()))
            && let Some(rest) = a.strip_prefix(prefix)
            && rest.find(d).is_some_and(|i| i + d.len() == rest.len())
        {
            // The marker is a common prefix returned before: resume after everything under it.
            cursor = format!("{a}\u{10FFFF}");
        }
        if prefix > cursor.as_str() {
            cursor = prefix.to_string();
            inclusive = true;
        }
        let mut st = db.prepare(&format!(
            "SELECT {OBJECT_COLS} FROM objects WHERE bucket = ?1 AND latest = 1 AND delete_marker = 0 AND (key > ?2 OR (?3 AND key = ?2)) ORDER BY key LIMIT 256"
        ))?;
        let count = |o: &Listing| o.objects.len() + o.prefixes.len();
        'pages: loop {
            let rows: Vec<ObjectRecord> = st
                .query_map(params![bucket, cursor, inclusive], row_to_object)?
                .collect::<Result<_, _>>()?;
            inclusive = false;
            if rows.is_empty() {
                break;
            }
            for rec in rows {
                if !rec.key.starts_with(prefix) {
                    break 'pages;
                }
                if count(&out) >= max {
                    out.truncated = true;
                    break 'pages;
                }
                let rest = &rec.key[prefix.len()..];
                if let Some(d) = delimiter.filter(|d| !d.is_empty())
                    && let Some(i) = rest.find(d)
                {
                    let cp = format!("{prefix}{}", &rest[..i + d.len()]);
                    // Skip every key under this common prefix.
                    cursor = format!("{cp}\u{10FFFF}");
                    out.last = Some(cp.clone());
                    out.prefixes.push(cp);
                    continue 'pages;
                }
                cursor = rec.key.clone();
                out.last = Some(rec.key.clone());
                out.objects.push(rec);
            }
        }
        Ok(out)
    }

    /// Every version and delete marker, key order then newest first, after (`key`, `version`).
    pub fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after_key: Option<&str>,
        max: usize,
    ) -> Result<(Vec<ObjectRecord>, bool), S3Error> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {OBJECT_COLS} FROM objects WHERE bucket = ?1 AND key > ?2 AND substr(key, 1, ?4) = ?3 ORDER BY key, seq DESC LIMIT ?5"
        ))?;
        let rows: Vec<ObjectRecord> = st
            .query_map(
                params![
                    bucket,
                    after_key.unwrap_or(""),
                    prefix,
                    prefix.chars().count() as i64,
                    (max + 1) as i64
                ],
                row_to_object,
            )?
            .collect::<Result<_, _>>()?;
        let truncated = rows.len() > max;
        Ok((rows.into_iter().take(max).collect(), truncated))
    }

    // ---- multipart -----------------------------------------------------------------------

    pub fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        account: &str,
        meta: &ObjectMeta,
    ) -> Result<String, S3Error> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.db().execute(
            "INSERT INTO uploads(upload_id, bucket, key, account, created_ms, meta) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, bucket, key, account, now_ms(), serde_json::to_string(meta).unwrap_or_default()],
        )?;
        Ok(id)
    }

    pub fn upload(&self, bucket: &str, key: &str, id: &str) -> Result<Upload, S3Error> {
        let db = self.db();
        db.query_row(
            "SELECT upload_id, bucket, key, account, created_ms, meta FROM uploads WHERE upload_id = ?1 AND bucket = ?2 AND key = ?3",
            params![id, bucket, key],
            |r| {
                let meta: String = r.get(5)?;
                Ok(Upload {
                    upload_id: r.get(0)?,
                    bucket: r.get(1)?,
                    key: r.get(2)?,
                    account: r.get(3)?,
                    created_ms: r.get(4)?,
                    meta: serde_json::from_str(&meta).unwrap_or_default(),
                })
            },
        )
        .optional()?
        .ok_or_else(|| S3Error::no_such_upload(id))
    }

    pub fn list_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<Upload>, S3Error> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT upload_id, bucket, key, account, created_ms, meta FROM uploads WHERE bucket = ?1 ORDER BY key, created_ms",
        )?;
        let rows = st.query_map([bucket], |r| {
            let meta: String = r.get(5)?;
            Ok(Upload {
                upload_id: r.get(0)?,
                bucket: r.get(1)?,
                key: r.get(2)?,
                account: r.get(3)?,
                created_ms: r.get(4)?,
                meta: serde_json::from_str(&meta).unwrap_or_default(),
            })
        })?;
        let all: Vec<Upload> = rows.collect::<Result<_, _>>()?;
        Ok(all
            .into_iter()
            .filter(|u| u.key.starts_with(prefix))
            .collect())
    }

    /// Stores a part (replacing an earlier part of the same number).
    pub fn put_part(
        &self,
        upload: &Upload,
        number: u32,
        staged: &mut Staged,
        checksum: Option<(String, String)>,
    ) -> Result<Part, S3Error> {
        let db = self.db();
        // The upload may have been completed or aborted while the part came in.
        let alive: Option<i64> = db
            .query_row(
                "SELECT 1 FROM uploads WHERE upload_id = ?1",
                [&upload.upload_id],
                |r| r.get(0),
            )
            .optional()?;
        if alive.is_none() {
            return Err(S3Error::no_such_upload(&upload.upload_id));
        }
        self.blobs.install(staged)?;
        let old: Option<String> = db
            .query_row(
                "SELECT sha256 FROM parts WHERE upload_id = ?1 AND number = ?2",
                params![upload.upload_id, number],
                |r| r.get(0),
            )
            .optional()?;
        let part = Part {
            number,
            sha256: staged.sha256.clone(),
            size: staged.size,
            etag: staged.md5.clone(),
            modified_ms: now_ms(),
            checksum,
        };
        db.execute(
            "INSERT OR REPLACE INTO parts(upload_id, number, sha256, size, etag, modified_ms, checksum) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                upload.upload_id,
                number,
                part.sha256,
                part.size as i64,
                part.etag,
                part.modified_ms,
                part.checksum.as_ref().map(|c| serde_json::to_string(c).unwrap_or_default())
            ],
        )?;
        if let Some(old) = old {
            self.release(&db, &[old])?;
        }
        Ok(part)
    }

    pub fn parts(&self, upload_id: &str) -> Result<Vec<Part>, S3Error> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT number, sha256, size, etag, modified_ms, checksum FROM parts WHERE upload_id = ?1 ORDER BY number",
        )?;
        let rows = st.query_map([upload_id], |r| {
            let checksum: Option<String> = r.get(5)?;
            Ok(Part {
                number: r.get(0)?,
                sha256: r.get(1)?,
                size: r.get::<_, i64>(2)? as u64,
                etag: r.get(3)?,
                modified_ms: r.get(4)?,
                checksum: checksum.and_then(|c| serde_json::from_str(&c).ok()),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Drops an upload and its parts' bodies.
    pub fn abort_upload(&self, upload_id: &str) -> Result<(), S3Error> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let shas: Vec<String> = {
            let mut st = tx.prepare("SELECT sha256 FROM parts WHERE upload_id = ?1")?;
            st.query_map([upload_id], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let n = tx.execute("DELETE FROM uploads WHERE upload_id = ?1", [upload_id])?;
        tx.execute("DELETE FROM parts WHERE upload_id = ?1", [upload_id])?;
        tx.commit()?;
        if n == 0 {
            return Err(S3Error::no_such_upload(upload_id));
        }
        self.release(&db, &shas)?;
        Ok(())
    }

    /// Indexes the assembled body of a completed upload and drops the upload, in one
    /// transaction; the parts' bodies are released after it.
    pub fn complete_upload(
        &self,
        bucket: &Bucket,
        upload: &Upload,
        staged: &mut Staged,
        etag: String,
        meta: ObjectMeta,
    ) -> Result<ObjectRecord, S3Error> {
        let mut db = self.db();
        let alive: Option<i64> = db
            .query_row(
                "SELECT 1 FROM uploads WHERE upload_id = ?1",
                [&upload.upload_id],
                |r| r.get(0),
            )
            .optional()?;
        if alive.is_none() {
            return Err(S3Error::no_such_upload(&upload.upload_id));
        }
        self.blobs.install(staged)?;
        let rec = ObjectRecord {
            bucket: bucket.name.clone(),
            key: upload.key.clone(),
            version_id: String::new(),
            latest: true,
            delete_marker: false,
            sha256: Some(staged.sha256.clone()),
            size: staged.size,
            etag,
            modified_ms: now_ms(),
            meta,
            tags: Vec::new(),
            seq: self.next_seq(),
        };
        let rec = self.insert_version(&mut db, bucket, rec)?;
        let shas: Vec<String> = {
            let mut st = db.prepare("SELECT sha256 FROM parts WHERE upload_id = ?1")?;
            st.query_map([&upload.upload_id], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let tx = db.transaction()?;
        tx.execute(
            "DELETE FROM uploads WHERE upload_id = ?1",
            [&upload.upload_id],
        )?;
        tx.execute(
            "DELETE FROM parts WHERE upload_id = ?1",
            [&upload.upload_id],
        )?;
        tx.commit()?;
        self.release(&db, &shas)?;
        Ok(rec)
    }
}

fn referenced(db: &Connection, sha: &str) -> Result<bool, S3Error> {
    let n: i64 = db.query_row(
        "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM objects WHERE sha256 = ?1 LIMIT 1)) + (SELECT COUNT(*) FROM (SELECT 1 FROM parts WHERE sha256 = ?1 LIMIT 1))",
        [sha],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

fn get_bucket(db: &Connection, name: &str) -> Result<Option<Bucket>, S3Error> {
    Ok(db
        .query_row(
            "SELECT name, account, region, created_ms, versioning, policy, notification FROM buckets WHERE name = ?1",
            [name],
            row_to_bucket,
        )
        .optional()?)
}

fn current_versioning(db: &Connection, bucket: &str) -> Result<String, S3Error> {
    db.query_row(
        "SELECT versioning FROM buckets WHERE name = ?1",
        [bucket],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| S3Error::no_such_bucket(bucket))
}

fn get_object(
    db: &Connection,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<Option<ObjectRecord>, S3Error> {
    let r = match version {
        Some(v) => db
            .query_row(
                &format!("SELECT {OBJECT_COLS} FROM objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3"),
                params![bucket, key, v],
                row_to_object,
            )
            .optional()?,
        None => db
            .query_row(
                &format!("SELECT {OBJECT_COLS} FROM objects WHERE bucket = ?1 AND key = ?2 AND latest = 1"),
                params![bucket, key],
                row_to_object,
            )
            .optional()?,
    };
    Ok(r)
}

fn check_condition(
    db: &Connection,
    bucket: &str,
    key: &str,
    cond: &WriteCondition,
) -> Result<(), S3Error> {
    if !cond.if_none_match_any && cond.if_match.is_none() {
        return Ok(());
    }
    let cur = get_object(db, bucket, key, None)?.filter(|o| !o.delete_marker);
    if cond.if_none_match_any && cur.is_some() {
        return Err(S3Error::precondition_failed("If-None-Match"));
    }
    if let Some(want) = &cond.if_match {
        match cur {
            None => return Err(S3Error::no_such_key(key)),
            Some(o) if !etag_matches(want, &o.etag) => {
                return Err(S3Error::precondition_failed("If-Match"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether an `If-Match`/`If-None-Match` list names this ETag (quotes optional, `*` any).
pub fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').any(|e| {
        let e = e.trim().trim_start_matches("W/").trim_matches('"');
        e == "*" || e == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(store: &ObjectStore, bucket: &Bucket, key: &str, body: &[u8]) -> ObjectRecord {
        let mut w = store.blobs.writer(&[]).unwrap();
        w.write(body);
        let mut staged = w.finish().unwrap();
        store
            .put_object(
                bucket,
                key,
                &mut staged,
                ObjectMeta::default(),
                vec![],
                &WriteCondition::default(),
            )
            .unwrap()
    }

    #[test]
    fn copies_share_bodies_and_unreferenced_bodies_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        store
            .create_bucket("111111111111", "bk1", "us-east-1")
            .unwrap();
        let b = store.bucket("bk1").unwrap();
        let a = put(&store, &b, "a", b"same");
        let c = put(&store, &b, "../../c", b"same");
        assert_eq!(a.sha256, c.sha256);
        assert_eq!(store.blobs.all().len(), 1);
        store.delete_object(&b, "a", None).unwrap();
        assert_eq!(store.blobs.all().len(), 1);
        store.delete_object(&b, "../../c", None).unwrap();
        assert!(store.blobs.all().is_empty());
    }

    #[test]
    fn listing_groups_by_delimiter_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        store
            .create_bucket("111111111111", "bk1", "us-east-1")
            .unwrap();
        let b = store.bucket("bk1").unwrap();
        for k in ["a/1", "a/2", "b", "c/x/y", "d"] {
            put(&store, &b, k, k.as_bytes());
        }
        let l = store.list("bk1", "", Some("/"), None, 1000).unwrap();
        let keys: Vec<_> = l.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["b", "d"]);
        assert_eq!(l.prefixes, ["a/", "c/"]);
        let p1 = store.list("bk1", "", Some("/"), None, 2).unwrap();
        assert!(p1.truncated);
        assert_eq!(p1.last.as_deref(), Some("b"));
        let p2 = store
            .list("bk1", "", Some("/"), p1.last.as_deref(), 2)
            .unwrap();
        assert_eq!(p2.prefixes, ["c/"]);
        assert_eq!(p2.objects.len(), 1);
    }

    #[test]
    fn versions_and_delete_markers() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        store
            .create_bucket("111111111111", "bk1", "us-east-1")
            .unwrap();
        store.set_versioning("bk1", "Enabled").unwrap();
        let b = store.bucket("bk1").unwrap();
        let v1 = put(&store, &b, "k", b"one");
        let v2 = put(&store, &b, "k", b"two");
        assert_ne!(v1.version_id, v2.version_id);
        let d = store.delete_object(&b, "k", None).unwrap();
        assert!(d.delete_marker);
        assert!(
            store
                .object("bk1", "k", None)
                .unwrap()
                .unwrap()
                .delete_marker
        );
        store
            .delete_object(&b, "k", d.version_id.as_deref())
            .unwrap();
        let cur = store.object("bk1", "k", None).unwrap().unwrap();
        assert_eq!(cur.version_id, v2.version_id);
        let (all, _) = store.list_versions("bk1", "", None, 100).unwrap();
        assert_eq!(all.len(), 2);
    }
}
