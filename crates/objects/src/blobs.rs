//! Object bodies on disk, content-addressed by SHA-256: `<root>/blobs/<2 hex>/<sha256>`.
//!
//! A body is streamed into `<root>/tmp/<uuid>` while MD5, SHA-256 and any requested checksum
//! run over it, fsynced, and only then renamed to its digest's name (a body already stored is
//! kept and the new copy dropped), so a name under `blobs/` always holds a whole body. The
//! index refers to a body only after the rename; bodies no index row refers to are removed by
//! [`crate::store::ObjectStore`] under its lock.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use md5::Digest as _;

use crate::checksum::{Algorithm, Hasher};
use crate::error::S3Error;

/// Gathered bytes are written out once this many are pending.
pub const WRITE_BUFFER: usize = 1 << 20;

/// The blob directory layout.
#[derive(Debug, Clone)]
pub struct Blobs {
    root: PathBuf,
}

impl Blobs {
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root.join("blobs"))?;
        let tmp = root.join("tmp");
        // Whatever was being written when the node stopped was never committed.
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// Where the body with this digest lives. The digest is ours (hex), never a client's text,
    /// so no key can name a path.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.root
            .join("blobs")
            .join(sha256.get(..2).unwrap_or("00"))
            .join(sha256)
    }

    pub fn writer(&self, checksums: &[Algorithm]) -> Result<BlobWriter, S3Error> {
        let tmp = self
            .root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let file = File::create(&tmp)?;
        Ok(BlobWriter {
            file: Some(file),
            tmp: Some(tmp),
            buf: Vec::new(),
            md5: md5::Md5::new(),
            sha256: sha2::Sha256::new(),
            checksums: checksums.iter().map(|a| (*a, a.hasher())).collect(),
            size: 0,
        })
    }

    /// Moves a finished, fsynced body into place under its digest.
    pub fn install(&self, staged: &mut Staged) -> std::io::Result<()> {
        let Some(tmp) = staged.tmp.take() else {
            return Ok(());
        };
        let dest = self.path(&staged.sha256);
        if dest.exists() {
            // The same content is stored already: the copy costs nothing.
            let _ = std::fs::remove_file(&tmp);
            return Ok(());
        }
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::rename(&tmp, &dest)
    }

    pub fn remove(&self, sha256: &str) {
        let _ = std::fs::remove_file(self.path(sha256));
    }

    /// Every stored digest (for the start-up sweep).
    pub fn all(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(dirs) = std::fs::read_dir(self.root.join("blobs")) else {
            return out;
        };
        for d in dirs.flatten() {
            if let Ok(files) = std::fs::read_dir(d.path()) {
                for f in files.flatten() {
                    if let Some(n) = f.file_name().to_str() {
                        out.push(n.to_string());
                    }
                }
            }
        }
        out
    }
}

/// A body being received.
pub struct BlobWriter {
    file: Option<File>,
    tmp: Option<PathBuf>,
    buf: Vec<u8>,
    md5: md5::Md5,
    sha256: sha2::Sha256,
    checksums: Vec<(Algorithm, Hasher)>,
    pub size: u64,
}

impl BlobWriter {
    /// Adds bytes of the body: hashed at once, gathered in memory until [`flush`](Self::flush).
    pub fn write(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.sha256.update(data);
        for (_, h) in &mut self.checksums {
            h.update(data);
        }
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
    }

    /// Bytes gathered and not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Writes what was gathered to the file. Blocking (disk).
    pub fn flush(&mut self) -> Result<(), S3Error> {
        self.flush_buf()
    }

    fn flush_buf(&mut self) -> Result<(), S3Error> {
        if !self.buf.is_empty()
            && let Some(f) = self.file.as_mut()
        {
            f.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes out and fsyncs the body; its digests are known from here on.
    pub fn finish(mut self) -> Result<Staged, S3Error> {
        self.flush_buf()?;
        let file = self
            .file
            .take()
            .ok_or_else(|| S3Error::internal("writer reused"))?;
        file.sync_all()?;
        drop(file);
        let sha256 = hex::encode(std::mem::take(&mut self.sha256).finalize());
        let md5 = hex::encode(std::mem::take(&mut self.md5).finalize());
        let checksums = std::mem::take(&mut self.checksums)
            .into_iter()
            .map(|(a, h)| (a, h.finish()))
            .collect();
        Ok(Staged {
            tmp: self.tmp.take(),
            sha256,
            md5,
            size: self.size,
            checksums,
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// A whole, fsynced body waiting to be installed and indexed. Dropped unused, it is removed.
pub struct Staged {
    tmp: Option<PathBuf>,
    pub sha256: String,
    /// Hex MD5: the ETag of a single-part upload.
    pub md5: String,
    pub size: u64,
    /// The checksums computed while the body came in (base64).
    pub checksums: Vec<(Algorithm, String)>,
}

impl Staged {
    pub fn checksum(&self, a: Algorithm) -> Option<&str> {
        self.checksums
            .iter()
            .find(|(x, _)| *x == a)
            .map(|(_, v)| v.as_str())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}
