//! Content-addressed store for function code packages.
//!
//! A package is stored once per SHA-256 of its zip bytes (the digest Lambda reports, base64
//! encoded, as `CodeSha256`): the zip itself under `root/zips/<hex>.zip`, served back for
//! `GetFunction` downloads, and its extracted tree under `root/trees/<hex>/`, mounted read-only
//! as `/var/task` (or `/opt` for layers). Packages come from untrusted callers, so extraction is
//! written for hostile input:
//!
//! * Every entry is checked before anything is written: names with `..` components, absolute
//!   names, Windows drive prefixes, NUL bytes or backslash-separated traversal are refused, as
//!   are duplicate entries, entries nested under a file or a symlink of the same archive, and
//!   special files (devices, fifos, sockets).
//! * Symlinks are kept, as Lambda keeps them, when their target is relative and resolves inside
//!   the package. Resolution is done against the archive's own entries exactly as the kernel
//!   would walk it (following earlier symlinks, so `d/s -> ..` plus `d/t -> s/..` is caught),
//!   because a purely lexical check can be fooled by chained links. Loops are refused.
//! * Symlinks are created only after every file and directory is written, and files are created
//!   with `O_CREAT | O_EXCL` (which never follows a symlink) under directories checked to be real
//!   directories, so nothing can be written through a link.
//! * Zip bombs: the declared uncompressed total is checked before extraction, and the bytes
//!   actually inflated are counted while extracting, stopping as soon as the running total passes
//!   the limit. An entry whose inflated size differs from its declared size is refused as corrupt.
//! * Modes are normalised: directories 0755, files 0644, or 0755 when the archive gives the file
//!   any execute bit (a custom runtime's `bootstrap`). Set-id and sticky bits are dropped; files
//!   belong to the server's user.
//!
//! Durability: a `kill -9` or a power loss at any moment leaves either the old state or the new
//! one. Extraction happens in a fresh directory under `root/tmp`, so a rejected package leaves
//! nothing behind. Every extracted file and directory is fsynced there, then the package is
//! committed in this order, each rename followed by an fsync of the directory it lands in:
//!
//! 1. the zip, written to `root/tmp`, fsynced and renamed to `root/zips/<hex>.zip`: from here on
//!    the tree can always be rebuilt from it;
//! 2. the tree, renamed to `root/trees/<hex>/`;
//! 3. an empty completion marker `root/complete/<hex>`.
//!
//! The marker lives beside the tree rather than inside it so that `/var/task` shows exactly the
//! package, as on Lambda. A tree without its marker is never trusted: [`CodeStore::open`] removes
//! it and rebuilds it from its zip (as it does for a zip whose tree is missing), and
//! [`CodeStore::put_zip`] rebuilds it. An artifact exists when its zip, tree and marker do.
//!
//! One [`CodeStore`] is expected per root: [`CodeStore::open`] clears leftovers of interrupted
//! work from `root/tmp`. Callers serialise [`CodeStore::remove`] against uploads of the same
//! digest (garbage collection only removes code no function refers to).
//!
//! Debug builds read `UPDRAFT_FAILPOINT`: naming one of [`FAILPOINTS`] ends the process at that
//! step of storing a package, without running any destructor, so tests can crash it there.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, OpenOptions};
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod opt;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use zip::ZipArchive;

/// Lambda's limits for a zip package uploaded directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeLimits {
    /// Largest accepted zip, in bytes (Lambda: 50 MiB).
    pub max_zip_bytes: u64,
    /// Largest total size of the extracted files, in bytes (Lambda: 250 MiB).
    pub max_unzipped_bytes: u64,
    /// Largest number of archive entries; Lambda states none, but each costs memory to check.
    pub max_entries: u64,
}

impl Default for CodeLimits {
    fn default() -> Self {
        Self {
            max_zip_bytes: 52_428_800,
            max_unzipped_bytes: 262_144_000,
            max_entries: 100_000,
        }
    }
}

/// A stored, extracted code package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeArtifact {
    /// Content address: lowercase hex of the SHA-256 of the zip bytes.
    pub sha256_hex: String,
    /// Base64 of the same digest, exactly as Lambda returns `CodeSha256`.
    pub code_sha256: String,
    /// Zip length in bytes (`CodeSize`).
    pub code_size: u64,
    /// The extracted tree.
    pub dir: PathBuf,
    /// The stored zip.
    pub zip_path: PathBuf,
}

/// Why a package was refused or could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("zip is {size} bytes, more than the limit of {limit} bytes")]
    ZipTooLarge { size: u64, limit: u64 },
    #[error("unzipped size exceeds the limit of {limit} bytes")]
    UnzippedTooLarge { limit: u64 },
    #[error("zip has {count} entries, more than the limit of {limit}")]
    TooManyEntries { count: u64, limit: u64 },
    #[error("zip contains no files")]
    EmptyZip,
    #[error("invalid zip: {0}")]
    InvalidZip(String),
    #[error("unsafe entry name in zip: {0}")]
    UnsafePath(String),
    #[error("symlink escapes the package: {0}")]
    SymlinkEscape(String),
    #[error("duplicate zip entry: {0}")]
    DuplicateEntry(String),
    #[error("invalid code address {0:?}")]
    InvalidAddress(String),
    #[error("create code store directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("clear stale temporary {path}")]
    ClearTmp {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("inspect stored code {path}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("extract to {path}")]
    Extract {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("write zip {path}")]
    WriteZip {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("move {path} into place")]
    Commit {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("remove stored code {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

const COULD_NOT_UNZIP: &str =
    "Could not unzip uploaded file. Please check your file, then try to upload again.";

impl CodeError {
    /// The message Lambda gives for this failure; never reveals server paths.
    pub fn lambda_message(&self) -> String {
        match self {
            // Lambda's own 413 names the size of the whole (base64) request; the API layer,
            // which knows the operation, may prefer that wording.
            CodeError::ZipTooLarge { limit, .. } => {
                format!("Zipped size must be smaller than {limit} bytes")
            }
            CodeError::UnzippedTooLarge { limit } => {
                format!("Unzipped size must be smaller than {limit} bytes")
            }
            CodeError::EmptyZip => "Uploaded file must be a non-empty zip".to_string(),
            CodeError::TooManyEntries { .. }
            | CodeError::InvalidZip(_)
            | CodeError::UnsafePath(_)
            | CodeError::SymlinkEscape(_)
            | CodeError::DuplicateEntry(_) => COULD_NOT_UNZIP.to_string(),
            CodeError::InvalidAddress(_)
            | CodeError::CreateDir { .. }
            | CodeError::ClearTmp { .. }
            | CodeError::Inspect { .. }
            | CodeError::Extract { .. }
            | CodeError::WriteZip { .. }
            | CodeError::Commit { .. }
            | CodeError::Remove { .. } => {
                "An internal error occurred while storing code".to_string()
            }
        }
    }

    /// The Lambda error type (`__type`) for this failure.
    pub fn lambda_error_type(&self) -> &'static str {
        match self.http_status() {
            413 => "RequestEntityTooLargeException",
            400 => "InvalidParameterValueException",
            _ => "ServiceException",
        }
    }

    /// The HTTP status Lambda answers with for this failure.
    pub fn http_status(&self) -> u16 {
        match self {
            CodeError::ZipTooLarge { .. } => 413,
            CodeError::UnzippedTooLarge { .. }
            | CodeError::TooManyEntries { .. }
            | CodeError::EmptyZip
            | CodeError::InvalidZip(_)
            | CodeError::UnsafePath(_)
            | CodeError::SymlinkEscape(_)
            | CodeError::DuplicateEntry(_) => 400,
            _ => 500,
        }
    }
}

/// The steps of [`CodeStore::put_zip`] at which a debug build can be made to stop (see the
/// module documentation), in the order they are reached.
pub const FAILPOINTS: &[&str] = &[
    "code-store:after-extract",
    "code-store:after-zip-rename",
    "code-store:after-tree-rename",
    "code-store:after-marker",
];

/// Exit status of a process stopped by a failpoint.
pub const FAILPOINT_EXIT_CODE: i32 = 86;

/// Ends the process at once when `UPDRAFT_FAILPOINT` names `step`. `process::exit` runs no
/// destructor (so no temporary is cleaned up), which leaves the disk as a `kill -9` would.
#[cfg(debug_assertions)]
fn failpoint(step: &str) {
    if std::env::var_os("UPDRAFT_FAILPOINT").is_some_and(|v| v == step) {
        eprintln!("updraft: failpoint {step} reached, exiting");
        std::process::exit(FAILPOINT_EXIT_CODE);
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
fn failpoint(_step: &str) {}

/// The code store rooted at one directory.
#[derive(Debug)]
pub struct CodeStore {
    root: PathBuf,
    limits: CodeLimits,
    /// Uploads in flight, which garbage collection must not race (see `code_gc`).
    gc: crate::code_gc::CodeGc,
    /// Serialises the commit phase of uploads (extraction runs outside it), so that two uploads
    /// of the same bytes never take turns replacing each other's tree.
    commit: Mutex<()>,
}

impl CodeStore {
    /// Opens (creating if needed) the store at `root`, clears leftovers of interrupted uploads
    /// from `root/tmp`, and recovers from an interrupted commit: a tree without its completion
    /// marker is removed, and every stored zip without a complete tree gets it rebuilt.
    pub fn open(root: impl Into<PathBuf>, limits: CodeLimits) -> Result<Self, CodeError> {
        let store = Self {
            root: root.into(),
            limits,
            gc: Default::default(),
            commit: Mutex::new(()),
        };
        for dir in [
            store.root.clone(),
            store.zips_dir(),
            store.trees_dir(),
            store.complete_dir(),
            store.tmp_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(|source| CodeError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        }
        store.clear_tmp()?;
        store.recover()?;
        Ok(store)
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> CodeLimits {
        self.limits
    }

    /// The garbage collector's view of uploads in flight (see `code_gc`).
    pub fn gc(&self) -> &crate::code_gc::CodeGc {
        &self.gc
    }

    /// Validates and stores a zip package. Idempotent: storing the same bytes again returns the
    /// same artifact without extracting again (unless its tree is incomplete, which is then
    /// rebuilt). A package that is refused leaves nothing new in the store.
    pub fn put_zip(&self, zip: &[u8]) -> Result<CodeArtifact, CodeError> {
        let size = zip.len() as u64;
        if size > self.limits.max_zip_bytes {
            return Err(CodeError::ZipTooLarge {
                size,
                limit: self.limits.max_zip_bytes,
            });
        }
        if zip.is_empty() {
            return Err(CodeError::EmptyZip);
        }
        let sha256_hex = hex::encode(Sha256::digest(zip));
        let zip_path = self.zip_path(&sha256_hex);
        if self.is_complete(&sha256_hex)? && is_regular_file(&zip_path)? {
            return Ok(self.artifact(sha256_hex, size));
        }

        // Extraction validates the package, so it runs before anything is committed.
        let tmp_tree = TempPath::new(self.tmp_dir().join(format!("{sha256_hex}.{}", unique())));
        extract(zip, &self.limits, &tmp_tree.path)?;
        failpoint("code-store:after-extract");

        let _commit = self.commit.lock().unwrap_or_else(|p| p.into_inner());
        if !is_regular_file(&zip_path)? {
            let tmp = TempPath::new(
                self.tmp_dir()
                    .join(format!("{sha256_hex}.{}.zip", unique())),
            );
            write_zip(&tmp.path, zip)?;
            fs::rename(&tmp.path, &zip_path).map_err(|source| CodeError::Commit {
                path: zip_path.clone(),
                source,
            })?;
            tmp.disarm();
            sync_dir(&self.zips_dir())?;
        }
        failpoint("code-store:after-zip-rename");
        if !self.is_complete(&sha256_hex)? {
            self.commit_tree(&sha256_hex, tmp_tree)?;
        }
        Ok(self.artifact(sha256_hex, size))
    }

    /// Moves a fully written and fsynced tree into place, replacing an incomplete one, then
    /// writes its completion marker. The caller holds `self.commit`.
    fn commit_tree(&self, sha256_hex: &str, tmp_tree: TempPath) -> Result<(), CodeError> {
        let tree = self.tree_path(sha256_hex);
        if is_real_dir(&tree)? {
            self.discard_tree(sha256_hex)?;
        }
        fs::rename(&tmp_tree.path, &tree).map_err(|source| CodeError::Commit {
            path: tree.clone(),
            source,
        })?;
        tmp_tree.disarm();
        sync_dir(&self.trees_dir())?;
        failpoint("code-store:after-tree-rename");
        let marker = self.marker_path(sha256_hex);
        let err = |source| CodeError::Commit {
            path: marker.clone(),
            source,
        };
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&marker)
            .and_then(|f| f.sync_all())
            .map_err(err)?;
        sync_dir(&self.complete_dir())?;
        failpoint("code-store:after-marker");
        Ok(())
    }

    /// Removes a tree (and its marker) at once by moving it aside first.
    fn discard_tree(&self, sha256_hex: &str) -> Result<(), CodeError> {
        let marker = self.marker_path(sha256_hex);
        match fs::remove_file(&marker) {
            Ok(()) => sync_dir(&self.complete_dir())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CodeError::Remove {
                    path: marker,
                    source,
                });
            }
        }
        let tree = self.tree_path(sha256_hex);
        let doomed = self
            .tmp_dir()
            .join(format!("{sha256_hex}.{}.removed", unique()));
        match fs::rename(&tree, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(CodeError::Remove { path: tree, source }),
        }
        fs::remove_dir_all(&doomed).map_err(|source| CodeError::Remove {
            path: doomed.clone(),
            source,
        })
    }

    /// Whether the tree of `sha256_hex` exists and carries its completion marker.
    fn is_complete(&self, sha256_hex: &str) -> Result<bool, CodeError> {
        Ok(is_real_dir(&self.tree_path(sha256_hex))?
            && is_regular_file(&self.marker_path(sha256_hex))?)
    }

    /// Start-up recovery (see [`CodeStore::open`]). A zip that cannot be rebuilt from is
    /// reported and left alone: the functions using it fail to start, the others run.
    fn recover(&self) -> Result<(), CodeError> {
        for name in list_dir(&self.trees_dir())? {
            if is_address(&name) && !self.is_complete(&name)? {
                tracing::warn!(sha256 = %name, "removing a code tree without its completion marker");
                self.discard_tree(&name)?;
            }
        }
        for name in list_dir(&self.complete_dir())? {
            if is_address(&name) && !is_real_dir(&self.tree_path(&name))? {
                let marker = self.marker_path(&name);
                fs::remove_file(&marker).map_err(|source| CodeError::Remove {
                    path: marker,
                    source,
                })?;
            }
        }
        for name in list_dir(&self.zips_dir())? {
            let Some(sha256_hex) = name.strip_suffix(".zip").filter(|s| is_address(s)) else {
                continue;
            };
            if self.is_complete(sha256_hex)? {
                continue;
            }
            if let Err(e) = self.rebuild(sha256_hex) {
                tracing::error!(sha256 = %sha256_hex, "cannot rebuild a code tree from its zip: {e}");
            }
        }
        Ok(())
    }

    /// Extracts the stored zip of `sha256_hex` again and commits the tree.
    fn rebuild(&self, sha256_hex: &str) -> Result<(), CodeError> {
        let zip_path = self.zip_path(sha256_hex);
        let zip = fs::read(&zip_path).map_err(|source| CodeError::Inspect {
            path: zip_path.clone(),
            source,
        })?;
        if hex::encode(Sha256::digest(&zip)) != sha256_hex {
            return Err(CodeError::InvalidZip(format!(
                "{} does not match its digest",
                zip_path.display()
            )));
        }
        let tmp_tree = TempPath::new(self.tmp_dir().join(format!("{sha256_hex}.{}", unique())));
        extract(&zip, &self.limits, &tmp_tree.path)?;
        let _commit = self.commit.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_complete(sha256_hex)? {
            return Ok(());
        }
        tracing::info!(sha256 = %sha256_hex, "rebuilt a code tree from its zip");
        self.commit_tree(sha256_hex, tmp_tree)
    }

    /// The stored artifact with this content address, if it exists. Anything other than 64
    /// lowercase hex characters is never looked up.
    pub fn get(&self, sha256_hex: &str) -> Option<CodeArtifact> {
        if !is_address(sha256_hex) {
            return None;
        }
        let tree = self.tree_path(sha256_hex);
        let zip_meta = fs::symlink_metadata(self.zip_path(sha256_hex)).ok()?;
        let tree_meta = fs::symlink_metadata(&tree).ok()?;
        let marker_meta = fs::symlink_metadata(self.marker_path(sha256_hex)).ok()?;
        if !zip_meta.file_type().is_file()
            || !tree_meta.file_type().is_dir()
            || !marker_meta.file_type().is_file()
        {
            return None;
        }
        Some(self.artifact(sha256_hex.to_string(), zip_meta.len()))
    }

    /// Removes an artifact (zip and tree). Removing one that does not exist succeeds.
    pub fn remove(&self, sha256_hex: &str) -> Result<(), CodeError> {
        if !is_address(sha256_hex) {
            return Err(CodeError::InvalidAddress(sha256_hex.to_string()));
        }
        // The zip goes first: without it `get` no longer reports the artifact.
        let zip_path = self.zip_path(sha256_hex);
        match fs::remove_file(&zip_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CodeError::Remove {
                    path: zip_path,
                    source,
                });
            }
        }
        // The marker goes before the tree, and the tree is moved aside first, so it disappears
        // at once rather than file by file.
        self.discard_tree(sha256_hex)?;
        // Merged `/opt` trees share the address space (see `opt`).
        self.remove_opt_tree(sha256_hex)
    }

    fn artifact(&self, sha256_hex: String, code_size: u64) -> CodeArtifact {
        let digest = hex::decode(&sha256_hex).unwrap_or_default();
        CodeArtifact {
            code_sha256: base64::engine::general_purpose::STANDARD.encode(digest),
            code_size,
            dir: self.tree_path(&sha256_hex),
            zip_path: self.zip_path(&sha256_hex),
            sha256_hex,
        }
    }

    fn clear_tmp(&self) -> Result<(), CodeError> {
        let tmp = self.tmp_dir();
        let entries = fs::read_dir(&tmp).map_err(|source| CodeError::ClearTmp {
            path: tmp.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| CodeError::ClearTmp {
                path: tmp.clone(),
                source,
            })?;
            let path = entry.path();
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let result = if is_dir {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            result.map_err(|source| CodeError::ClearTmp { path, source })?;
        }
        Ok(())
    }

    pub(crate) fn zips_dir(&self) -> PathBuf {
        self.root.join("zips")
    }

    pub(crate) fn trees_dir(&self) -> PathBuf {
        self.root.join("trees")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn complete_dir(&self) -> PathBuf {
        self.root.join("complete")
    }

    fn marker_path(&self, sha256_hex: &str) -> PathBuf {
        self.complete_dir().join(sha256_hex)
    }

    fn zip_path(&self, sha256_hex: &str) -> PathBuf {
        self.zips_dir().join(format!("{sha256_hex}.zip"))
    }

    /// Where the extracted tree of a content address lives, without touching the disk (for the
    /// invoke path, which must not pay for `stat` calls; a missing tree fails the sandbox start).
    pub fn tree_dir(&self, sha256_hex: &str) -> Option<PathBuf> {
        is_address(sha256_hex).then(|| self.tree_path(sha256_hex))
    }

    fn tree_path(&self, sha256_hex: &str) -> PathBuf {
        self.trees_dir().join(sha256_hex)
    }
}

fn is_address(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn unique() -> String {
    format!("{}.{:016x}", std::process::id(), rand::random::<u64>())
}

fn is_real_dir(path: &Path) -> Result<bool, CodeError> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(m.file_type().is_dir()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(CodeError::Inspect {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn is_regular_file(path: &Path) -> Result<bool, CodeError> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(m.file_type().is_file()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(CodeError::Inspect {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Makes the entries of `dir` (creations, renames, removals) durable.
fn sync_dir(dir: &Path) -> Result<(), CodeError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| CodeError::Commit {
            path: dir.to_path_buf(),
            source,
        })
}

/// The names in `dir` (names that are not UTF-8 are never ours and are skipped).
fn list_dir(dir: &Path) -> Result<Vec<String>, CodeError> {
    let err = |source| CodeError::Inspect {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(err)? {
        if let Ok(name) = entry.map_err(err)?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

fn write_zip(path: &Path, zip: &[u8]) -> Result<(), CodeError> {
    let err = |source| CodeError::WriteZip {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(zip).map_err(err)?;
    file.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(err)?;
    // The zip is the durable copy a tree can always be rebuilt from.
    file.sync_all().map_err(err)
}

/// A temporary file or directory removed on drop unless it was moved into place.
struct TempPath {
    path: PathBuf,
    armed: bool,
}

impl TempPath {
    fn new(path: PathBuf) -> Self {
        Self { path, armed: true }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // After a successful rename the path no longer exists and this is a no-op.
        let _ = match fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_dir() => fs::remove_dir_all(&self.path),
            Ok(_) => fs::remove_file(&self.path),
            Err(_) => Ok(()),
        };
    }
}

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
/// Linux's limits for one name and for a whole path.
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;
/// Linux follows at most this many symlinks while resolving one path.
const MAX_SYMLINK_HOPS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File { executable: bool },
    Dir,
    Symlink,
}

#[derive(Debug)]
struct Entry {
    index: usize,
    /// Normalised relative path: components joined by `/`, no `.`, `..` or empty components.
    path: String,
    kind: Kind,
    declared_size: u64,
}

/// Validates the whole archive, then extracts it into `dest` (which must not exist yet).
fn extract(zip: &[u8], limits: &CodeLimits, dest: &Path) -> Result<(), CodeError> {
    let mut archive = ZipArchive::new(Cursor::new(zip))
        .map_err(|e| CodeError::InvalidZip(format!("read archive: {e}")))?;

    let records = central_record_count(zip, archive.central_directory_start());
    let count = records.max(archive.len() as u64);
    if count > limits.max_entries {
        return Err(CodeError::TooManyEntries {
            count,
            limit: limits.max_entries,
        });
    }
    // The zip reader keeps one entry per exact name, so a repeated name only shows up as
    // more central directory records than entries.
    if records > archive.len() as u64 {
        return Err(CodeError::DuplicateEntry(
            "the central directory repeats a name".to_string(),
        ));
    }

    let entries = read_entries(&mut archive)?;
    if !entries.iter().any(|e| matches!(e.kind, Kind::File { .. })) {
        return Err(CodeError::EmptyZip);
    }
    let declared = entries
        .iter()
        .try_fold(0u64, |sum, e| sum.checked_add(e.declared_size));
    if declared.is_none_or(|total| total > limits.max_unzipped_bytes) {
        return Err(CodeError::UnzippedTooLarge {
            limit: limits.max_unzipped_bytes,
        });
    }
    check_layout(&entries)?;

    let mut inflated = 0u64;
    let mut targets = HashMap::new();
    for entry in entries.iter().filter(|e| e.kind == Kind::Symlink) {
        let target = read_symlink_target(&mut archive, entry, &mut inflated, limits)?;
        targets.insert(entry.path.clone(), target);
    }
    for link in targets.keys() {
        check_symlink(link, &targets)?;
    }

    Extractor::new(dest)?.run(&mut archive, &entries, &targets, &mut inflated, limits)
}

/// Counts the central directory records that actually follow `start`, independently of the
/// zip reader, which merges records with the same name.
fn central_record_count(zip: &[u8], start: u64) -> u64 {
    const SIGNATURE: &[u8] = b"PK\x01\x02";
    const FIXED: usize = 46;
    let Ok(mut at) = usize::try_from(start) else {
        return 0;
    };
    let mut count = 0;
    while let Some(header) = zip.get(at..at.saturating_add(FIXED)) {
        if &header[..4] != SIGNATURE {
            break;
        }
        let field = |o: usize| usize::from(u16::from_le_bytes([header[o], header[o + 1]]));
        count += 1;
        at += FIXED + field(28) + field(30) + field(32);
    }
    count
}

fn read_entries(archive: &mut ZipArchive<Cursor<&[u8]>>) -> Result<Vec<Entry>, CodeError> {
    let mut entries = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let file = archive
            .by_index_raw(index)
            .map_err(|e| CodeError::InvalidZip(format!("read entry {index}: {e}")))?;
        if file.encrypted() {
            return Err(CodeError::InvalidZip(format!(
                "entry {:?} is encrypted",
                file.name()
            )));
        }
        if file.name_raw().contains(&0) {
            return Err(CodeError::UnsafePath(format!(
                "entry {:?} has a NUL byte in its name",
                file.name()
            )));
        }
        let (path, dir_by_name) = normalize_name(file.name())?;
        let mode = file.unix_mode().unwrap_or(0);
        let kind = match mode & S_IFMT {
            S_IFLNK => Kind::Symlink,
            S_IFDIR => Kind::Dir,
            _ if dir_by_name => Kind::Dir,
            0 | S_IFREG => Kind::File {
                executable: mode & 0o111 != 0,
            },
            other => {
                return Err(CodeError::UnsafePath(format!(
                    "entry {:?} is a special file (type {other:o})",
                    file.name()
                )));
            }
        };
        if path.is_empty() && kind != Kind::Dir {
            return Err(CodeError::UnsafePath(format!(
                "entry {:?} has no name",
                file.name()
            )));
        }
        entries.push(Entry {
            index,
            path,
            kind,
            declared_size: file.size(),
        });
    }
    Ok(entries)
}

/// Turns an entry name into a relative path, refusing anything that could leave the package.
/// Backslashes count as separators since some Windows tools write them.
fn normalize_name(name: &str) -> Result<(String, bool), CodeError> {
    let unsafe_path = |why: &str| CodeError::UnsafePath(format!("{name:?}: {why}"));
    if name.contains('\0') {
        return Err(unsafe_path("NUL byte"));
    }
    let unified = name.replace('\\', "/");
    if unified.starts_with('/') {
        return Err(unsafe_path("absolute path"));
    }
    let bytes = unified.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(unsafe_path("drive prefix"));
    }
    if unified.len() > PATH_MAX {
        return Err(unsafe_path("name too long"));
    }
    let mut parts = Vec::new();
    for part in unified.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_path("parent directory component")),
            _ if part.len() > NAME_MAX => return Err(unsafe_path("component too long")),
            _ => parts.push(part),
        }
    }
    Ok((parts.join("/"), unified.ends_with('/')))
}

/// Refuses duplicates and entries nested under a file or a symlink of the same archive: the
/// latter is how a link entry followed by `link/file` writes outside the tree.
fn check_layout(entries: &[Entry]) -> Result<(), CodeError> {
    let mut kinds: HashMap<&str, Kind> = HashMap::with_capacity(entries.len());
    for entry in entries.iter().filter(|e| !e.path.is_empty()) {
        match kinds.get(entry.path.as_str()) {
            Some(Kind::Dir) if entry.kind == Kind::Dir => {}
            Some(_) => return Err(CodeError::DuplicateEntry(entry.path.clone())),
            None => {
                kinds.insert(&entry.path, entry.kind);
            }
        }
    }
    for entry in entries {
        for (at, _) in entry.path.match_indices('/') {
            let ancestor = &entry.path[..at];
            match kinds.get(ancestor) {
                Some(Kind::Symlink) => {
                    return Err(CodeError::SymlinkEscape(format!(
                        "{:?} is inside symlink {ancestor:?}",
                        entry.path
                    )));
                }
                Some(Kind::File { .. }) => {
                    return Err(CodeError::DuplicateEntry(format!(
                        "{:?} is inside file {ancestor:?}",
                        entry.path
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn read_symlink_target(
    archive: &mut ZipArchive<Cursor<&[u8]>>,
    entry: &Entry,
    inflated: &mut u64,
    limits: &CodeLimits,
) -> Result<String, CodeError> {
    let file = archive
        .by_index(entry.index)
        .map_err(|e| CodeError::InvalidZip(format!("open entry {:?}: {e}", entry.path)))?;
    let mut raw = Vec::new();
    file.take(PATH_MAX as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| CodeError::InvalidZip(format!("read entry {:?}: {e}", entry.path)))?;
    *inflated = inflated.saturating_add(raw.len() as u64);
    if *inflated > limits.max_unzipped_bytes {
        return Err(CodeError::UnzippedTooLarge {
            limit: limits.max_unzipped_bytes,
        });
    }
    let escape = |why: &str| CodeError::SymlinkEscape(format!("{:?}: {why}", entry.path));
    if raw.is_empty() || raw.len() > PATH_MAX {
        return Err(CodeError::InvalidZip(format!(
            "symlink {:?} has an empty or overlong target",
            entry.path
        )));
    }
    let target = String::from_utf8(raw).map_err(|_| {
        CodeError::InvalidZip(format!("symlink {:?} target is not UTF-8", entry.path))
    })?;
    if target.contains('\0') {
        return Err(CodeError::UnsafePath(format!(
            "symlink {:?} target has a NUL byte",
            entry.path
        )));
    }
    if target.starts_with('/') {
        return Err(escape("absolute target"));
    }
    if target.contains('\\') {
        // Linux reads a backslash literally, other tools as a separator: refuse the ambiguity.
        return Err(escape("backslash in target"));
    }
    Ok(target)
}

/// Resolves `link` the way the kernel would inside the finished tree, following the archive's
/// other symlinks, and fails if resolution ever climbs above the package root.
fn check_symlink(link: &str, targets: &HashMap<String, String>) -> Result<(), CodeError> {
    let escape = || CodeError::SymlinkEscape(format!("{link:?} points outside the package"));
    // Directories resolved so far; every entry in it is a real directory, never a link.
    let mut resolved: Vec<&str> = link.split('/').collect();
    resolved.pop();
    let mut pending: VecDeque<&str> = VecDeque::new();
    let mut hops = 1;
    let first = targets.get(link).ok_or_else(escape)?;
    pending.extend(first.split('/'));
    while let Some(part) = pending.pop_front() {
        match part {
            "" | "." => {}
            ".." => {
                if resolved.pop().is_none() {
                    return Err(escape());
                }
            }
            name => {
                resolved.push(name);
                let here = resolved.join("/");
                if let Some(target) = targets.get(&here) {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(CodeError::InvalidZip(format!(
                            "symlink {link:?} does not resolve (loop)"
                        )));
                    }
                    resolved.pop();
                    for next in target.split('/').rev() {
                        pending.push_front(next);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Writes validated entries into a fresh directory; the caller removes it on failure.
struct Extractor {
    root: PathBuf,
    made_dirs: HashSet<String>,
    /// Regular files written, fsynced together once extraction is done.
    files: Vec<PathBuf>,
    buf: Vec<u8>,
}

impl Extractor {
    fn new(dest: &Path) -> Result<Self, CodeError> {
        fs::create_dir(dest).map_err(|source| CodeError::Extract {
            path: dest.to_path_buf(),
            source,
        })?;
        set_mode(dest, 0o755)?;
        Ok(Self {
            root: dest.to_path_buf(),
            made_dirs: HashSet::new(),
            files: Vec::new(),
            buf: vec![0; 64 * 1024],
        })
    }

    fn run(
        mut self,
        archive: &mut ZipArchive<Cursor<&[u8]>>,
        entries: &[Entry],
        targets: &HashMap<String, String>,
        inflated: &mut u64,
        limits: &CodeLimits,
    ) -> Result<(), CodeError> {
        for entry in entries {
            match entry.kind {
                Kind::Dir => self.make_dirs(&entry.path)?,
                Kind::File { executable } => {
                    self.write_file(archive, entry, executable, inflated, limits)?
                }
                Kind::Symlink => {}
            }
        }
        // Links last: no file is ever opened under a path that already holds one.
        for (link, target) in targets {
            if let Some((parent, _)) = link.rsplit_once('/') {
                self.make_dirs(parent)?;
            }
            let path = self.root.join(link);
            std::os::unix::fs::symlink(target, &path)
                .map_err(|source| CodeError::Extract { path, source })?;
        }
        // Every file's data and every directory's entries (files, links and subdirectories) are
        // made durable before the tree can be renamed into place.
        let mut paths = std::mem::take(&mut self.files);
        paths.extend(self.made_dirs.iter().map(|d| self.root.join(d)));
        paths.push(self.root.clone());
        sync_paths(&paths)
    }

    /// Creates `rel` and its ancestors as real directories (never following a link).
    fn make_dirs(&mut self, rel: &str) -> Result<(), CodeError> {
        if rel.is_empty() {
            return Ok(());
        }
        let ends = rel
            .match_indices('/')
            .map(|(at, _)| at)
            .chain(std::iter::once(rel.len()));
        for end in ends {
            let prefix = &rel[..end];
            if self.made_dirs.contains(prefix) {
                continue;
            }
            let path = self.root.join(prefix);
            match fs::create_dir(&path) {
                Ok(()) => set_mode(&path, 0o755)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let is_dir = fs::symlink_metadata(&path)
                        .map(|m| m.file_type().is_dir())
                        .unwrap_or(false);
                    if !is_dir {
                        return Err(CodeError::DuplicateEntry(prefix.to_string()));
                    }
                }
                Err(source) => return Err(CodeError::Extract { path, source }),
            }
            self.made_dirs.insert(prefix.to_string());
        }
        Ok(())
    }

    fn write_file(
        &mut self,
        archive: &mut ZipArchive<Cursor<&[u8]>>,
        entry: &Entry,
        executable: bool,
        inflated: &mut u64,
        limits: &CodeLimits,
    ) -> Result<(), CodeError> {
        if let Some((parent, _)) = entry.path.rsplit_once('/') {
            self.make_dirs(parent)?;
        }
        let path = self.root.join(&entry.path);
        let io_err = |source| CodeError::Extract {
            path: path.clone(),
            source,
        };
        // create_new is O_CREAT|O_EXCL: it fails on any existing name, links included.
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err)?;
        let mut file = archive
            .by_index(entry.index)
            .map_err(|e| CodeError::InvalidZip(format!("open entry {:?}: {e}", entry.path)))?;
        let mut written = 0u64;
        loop {
            let n = match file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(CodeError::InvalidZip(format!(
                        "read entry {:?}: {e}",
                        entry.path
                    )));
                }
            };
            // Declared sizes are never trusted: what really inflates is what counts.
            *inflated = inflated.saturating_add(n as u64);
            if *inflated > limits.max_unzipped_bytes {
                return Err(CodeError::UnzippedTooLarge {
                    limit: limits.max_unzipped_bytes,
                });
            }
            written += n as u64;
            out.write_all(&self.buf[..n]).map_err(io_err)?;
        }
        if written != entry.declared_size {
            return Err(CodeError::InvalidZip(format!(
                "entry {:?} inflates to {written} bytes but declares {}",
                entry.path, entry.declared_size
            )));
        }
        let mode = if executable { 0o755 } else { 0o644 };
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err)?;
        self.files.push(path);
        Ok(())
    }
}

/// fsyncs every path, several at a time: the filesystem's journal commits concurrent fsyncs
/// together, so a package of thousands of files costs a few journal commits rather than one each.
/// The work is waiting on the disk, not the CPU, hence more threads than cores.
fn sync_paths(paths: &[PathBuf]) -> Result<(), CodeError> {
    const WORKERS: usize = 16;
    let sync = |path: &PathBuf| {
        fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|source| CodeError::Extract {
                path: path.clone(),
                source,
            })
    };
    if paths.len() <= 2 {
        return paths.iter().try_for_each(sync);
    }
    let chunk = paths.len().div_ceil(WORKERS);
    std::thread::scope(|s| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().try_for_each(sync)))
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join().unwrap_or_else(|_| {
                Err(CodeError::Extract {
                    path: PathBuf::new(),
                    source: io::Error::other("an fsync worker panicked"),
                })
            })
        })
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), CodeError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| {
        CodeError::Extract {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    enum E<'a> {
        File(&'a str, &'a [u8], u32),
        Dir(&'a str),
        Link(&'a str, &'a str),
    }

    fn build(entries: &[E]) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        let base = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        for e in entries {
            match e {
                E::File(name, data, mode) => {
                    w.start_file(*name, base.unix_permissions(*mode)).unwrap();
                    w.write_all(data).unwrap();
                }
                E::Dir(name) => w.add_directory(*name, base).unwrap(),
                E::Link(name, target) => w.add_symlink(*name, *target, base).unwrap(),
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn u16_at(b: &[u8], at: usize) -> usize {
        usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// Offsets of every central directory record (zips without a trailing comment).
    fn central_records(zip: &[u8]) -> Vec<usize> {
        let eocd = zip.len() - 22;
        assert_eq!(&zip[eocd..eocd + 4], b"PK\x05\x06");
        let count = u16_at(zip, eocd + 10);
        let mut at = u32_at(zip, eocd + 16) as usize;
        let mut out = Vec::new();
        for _ in 0..count {
            assert_eq!(&zip[at..at + 4], b"PK\x01\x02");
            out.push(at);
            at += 46 + u16_at(zip, at + 28) + u16_at(zip, at + 30) + u16_at(zip, at + 32);
        }
        out
    }

    fn record_name(zip: &[u8], rec: usize) -> &[u8] {
        &zip[rec + 46..rec + 46 + u16_at(zip, rec + 28)]
    }

    /// Rewrites the declared uncompressed size of every entry, in both headers.
    fn patch_sizes(zip: &mut [u8], size: u32) {
        for rec in central_records(zip) {
            zip[rec + 24..rec + 28].copy_from_slice(&size.to_le_bytes());
            let local = u32_at(zip, rec + 42) as usize;
            assert_eq!(&zip[local..local + 4], b"PK\x03\x04");
            zip[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
        }
    }

    /// Sets a raw unix mode (type and permission bits) on the named entry.
    fn patch_mode(zip: &mut [u8], name: &str, mode: u32) {
        let rec = central_records(zip)
            .into_iter()
            .find(|&r| record_name(zip, r) == name.as_bytes())
            .unwrap();
        zip[rec + 5] = 3; // made by: Unix
        zip[rec + 38..rec + 42].copy_from_slice(&(mode << 16).to_le_bytes());
    }

    /// Renames an entry in both headers; the new name must have the same length.
    fn patch_name(zip: &mut [u8], from: &str, to: &str) {
        assert_eq!(from.len(), to.len());
        let rec = central_records(zip)
            .into_iter()
            .find(|&r| record_name(zip, r) == from.as_bytes())
            .unwrap();
        zip[rec + 46..rec + 46 + to.len()].copy_from_slice(to.as_bytes());
        let local = u32_at(zip, rec + 42) as usize;
        zip[local + 30..local + 30 + to.len()].copy_from_slice(to.as_bytes());
    }

    struct Fixture {
        base: tempfile::TempDir,
        store: CodeStore,
    }

    impl Fixture {
        fn new() -> Self {
            Self::with_limits(CodeLimits::default())
        }

        fn with_limits(limits: CodeLimits) -> Self {
            let base = tempfile::tempdir().unwrap();
            let store = CodeStore::open(base.path().join("store"), limits).unwrap();
            Self { base, store }
        }

        fn root(&self) -> PathBuf {
            self.base.path().join("store")
        }

        /// Every path under the base directory (store and its neighbours).
        fn snapshot(&self) -> Vec<PathBuf> {
            fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
                for entry in fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    out.push(path.clone());
                    if fs::symlink_metadata(&path).unwrap().is_dir() {
                        walk(&path, out);
                    }
                }
            }
            let mut out = Vec::new();
            walk(self.base.path(), &mut out);
            out.sort();
            out
        }

        /// Puts a zip that must be refused, and checks that nothing at all was written.
        fn reject(&self, zip: &[u8]) -> CodeError {
            let before = self.snapshot();
            let err = self
                .store
                .put_zip(zip)
                .expect_err("hostile zip was accepted");
            assert_eq!(
                before,
                self.snapshot(),
                "rejection left files behind: {err}"
            );
            for sub in ["trees", "tmp", "zips"] {
                assert_eq!(fs::read_dir(self.root().join(sub)).unwrap().count(), 0);
            }
            assert!(!self.base.path().join("evil").exists());
            err
        }
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn valid_zip_round_trip() {
        let fx = Fixture::new();
        let zip = build(&[
            E::File("index.py", b"def handler(e, c):\n    return 1\n", 0o644),
            E::File("bootstrap", b"#!/bin/sh\necho hi\n", 0o755),
            E::File("bin/tool", b"tool", 0o700),
            E::Dir("empty/"),
            E::File("lib/util/helpers.py", b"X = 1\n", 0o600),
            E::Link("current", "lib/util"),
            E::Link("lib/up", "../index.py"),
        ]);
        let art = fx.store.put_zip(&zip).unwrap();
        let d = &art.dir;
        assert_eq!(
            fs::read(d.join("index.py")).unwrap(),
            b"def handler(e, c):\n    return 1\n"
        );
        assert_eq!(
            fs::read(d.join("bootstrap")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        assert_eq!(fs::read(d.join("lib/util/helpers.py")).unwrap(), b"X = 1\n");
        assert_eq!(mode_of(&d.join("index.py")), 0o644);
        assert_eq!(mode_of(&d.join("bootstrap")), 0o755);
        assert_eq!(mode_of(&d.join("bin/tool")), 0o755);
        assert_eq!(mode_of(&d.join("lib/util/helpers.py")), 0o644);
        for dir in ["", "empty", "bin", "lib", "lib/util"] {
            assert_eq!(mode_of(&d.join(dir)), 0o755, "{dir}");
        }
        assert_eq!(
            fs::read_link(d.join("current")).unwrap(),
            Path::new("lib/util")
        );
        assert_eq!(fs::read(d.join("current/helpers.py")).unwrap(), b"X = 1\n");
        assert_eq!(
            fs::read(d.join("lib/up")).unwrap(),
            fs::read(d.join("index.py")).unwrap()
        );
        assert_eq!(fs::read(&art.zip_path).unwrap(), zip);
        assert_eq!(fx.store.get(&art.sha256_hex), Some(art.clone()));
        assert_eq!(fs::read_dir(fx.root().join("tmp")).unwrap().count(), 0);
        assert_eq!(art.dir, fx.root().join("trees").join(&art.sha256_hex));
    }

    #[test]
    fn special_mode_bits_are_dropped() {
        let fx = Fixture::new();
        let mut zip = build(&[
            E::File("suid", b"a", 0o755),
            E::File("sgid", b"b", 0o644),
            E::File("sticky", b"c", 0o644),
        ]);
        patch_mode(&mut zip, "suid", S_IFREG | 0o4755);
        patch_mode(&mut zip, "sgid", S_IFREG | 0o2644);
        patch_mode(&mut zip, "sticky", S_IFREG | 0o1611);
        let art = fx.store.put_zip(&zip).unwrap();
        assert_eq!(mode_of(&art.dir.join("suid")), 0o755);
        assert_eq!(mode_of(&art.dir.join("sgid")), 0o644);
        assert_eq!(mode_of(&art.dir.join("sticky")), 0o755);
        let me = fs::metadata(fx.root()).unwrap().uid();
        assert_eq!(fs::metadata(art.dir.join("suid")).unwrap().uid(), me);
    }

    #[test]
    fn code_sha256_is_base64_of_sha256() {
        let fx = Fixture::new();
        let zip = build(&[E::File("a.txt", b"hello", 0o644)]);
        let art = fx.store.put_zip(&zip).unwrap();
        let mut h = Sha256::new();
        h.update(&zip);
        let digest = h.finalize();
        assert_eq!(
            art.code_sha256,
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        assert_eq!(art.code_sha256.len(), 44);
        assert_eq!(art.sha256_hex, hex::encode(digest));
        assert_eq!(art.code_size, zip.len() as u64);
    }

    #[test]
    fn put_is_idempotent_without_reextracting() {
        let fx = Fixture::new();
        let zip = build(&[E::File("a.txt", b"1", 0o644), E::File("b.txt", b"2", 0o644)]);
        let first = fx.store.put_zip(&zip).unwrap();
        // A second extraction would bring this file back.
        fs::remove_file(first.dir.join("b.txt")).unwrap();
        let second = fx.store.put_zip(&zip).unwrap();
        assert_eq!(first, second);
        assert!(!second.dir.join("b.txt").exists());
        assert_eq!(fs::read_dir(fx.root().join("trees")).unwrap().count(), 1);
        assert_eq!(fs::read_dir(fx.root().join("zips")).unwrap().count(), 1);
        assert_eq!(fs::read_dir(fx.root().join("tmp")).unwrap().count(), 0);
        let other = build(&[E::File("a.txt", b"other", 0o644)]);
        assert_ne!(
            fx.store.put_zip(&other).unwrap().sha256_hex,
            first.sha256_hex
        );
    }

    #[test]
    fn concurrent_puts_of_the_same_zip_agree() {
        let fx = Fixture::new();
        let zip = build(&[E::File("a.txt", b"same", 0o644)]);
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4).map(|_| s.spawn(|| fx.store.put_zip(&zip))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let first = results[0].as_ref().unwrap();
        for r in &results {
            assert_eq!(r.as_ref().unwrap(), first);
        }
        assert_eq!(fs::read(first.dir.join("a.txt")).unwrap(), b"same");
        assert_eq!(fs::read_dir(fx.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn get_and_remove() {
        let fx = Fixture::new();
        let zip = build(&[E::File("a.txt", b"x", 0o644)]);
        let art = fx.store.put_zip(&zip).unwrap();
        for bad in [
            "",
            "../trees",
            &art.sha256_hex[..63],
            &art.sha256_hex.to_uppercase(),
            &format!("{}/", &art.sha256_hex[..63]),
        ] {
            assert_eq!(fx.store.get(bad), None, "{bad}");
            assert!(matches!(
                fx.store.remove(bad),
                Err(CodeError::InvalidAddress(_))
            ));
        }
        assert_eq!(fx.store.get(&"0".repeat(64)), None);
        fx.store.remove(&art.sha256_hex).unwrap();
        assert_eq!(fx.store.get(&art.sha256_hex), None);
        assert!(!art.dir.exists() && !art.zip_path.exists());
        fx.store.remove(&art.sha256_hex).unwrap();
        assert_eq!(fs::read_dir(fx.root().join("tmp")).unwrap().count(), 0);
        assert_eq!(fx.store.put_zip(&zip).unwrap(), art);
    }

    #[test]
    fn tree_without_marker_is_rebuilt_from_the_zip() {
        let fx = Fixture::new();
        let zip = build(&[
            E::File("index.py", b"print(1)\n", 0o644),
            E::File("lib/util.py", b"X = 2\n", 0o644),
        ]);
        let art = fx.store.put_zip(&zip).unwrap();
        let marker = fx.root().join("complete").join(&art.sha256_hex);
        assert!(marker.is_file());
        // What a commit cut short (or a tree from before markers existed) looks like: the tree
        // is in place, possibly incomplete, and carries no marker.
        fs::remove_file(&marker).unwrap();
        fs::remove_file(art.dir.join("lib/util.py")).unwrap();
        fs::write(art.dir.join("stray"), b"left over").unwrap();
        assert_eq!(fx.store.get(&art.sha256_hex), None);

        let store = CodeStore::open(fx.root(), CodeLimits::default()).unwrap();
        assert_eq!(fs::read(art.dir.join("lib/util.py")).unwrap(), b"X = 2\n");
        assert_eq!(fs::read(art.dir.join("index.py")).unwrap(), b"print(1)\n");
        assert!(!art.dir.join("stray").exists());
        assert!(marker.is_file());
        assert_eq!(store.get(&art.sha256_hex), Some(art.clone()));
        assert_eq!(fs::read_dir(fx.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn put_rebuilds_a_tree_without_marker() {
        let fx = Fixture::new();
        let zip = build(&[E::File("a.txt", b"1", 0o644), E::File("b.txt", b"2", 0o644)]);
        let art = fx.store.put_zip(&zip).unwrap();
        fs::remove_file(fx.root().join("complete").join(&art.sha256_hex)).unwrap();
        fs::remove_file(art.dir.join("b.txt")).unwrap();
        assert_eq!(fx.store.put_zip(&zip).unwrap(), art);
        assert_eq!(fs::read(art.dir.join("b.txt")).unwrap(), b"2");
        assert_eq!(fx.store.get(&art.sha256_hex), Some(art));
        assert_eq!(fs::read_dir(fx.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn open_rebuilds_missing_trees_and_drops_orphan_markers() {
        let fx = Fixture::new();
        let zip = build(&[E::File("a.txt", b"kept in the zip", 0o644)]);
        let art = fx.store.put_zip(&zip).unwrap();
        // The zip was committed but the process died before the tree was: rebuilt.
        fs::remove_file(fx.root().join("complete").join(&art.sha256_hex)).unwrap();
        fs::remove_dir_all(&art.dir).unwrap();
        // A marker whose tree is gone and whose zip is gone too: dropped.
        let orphan = "ab".repeat(32);
        fs::write(fx.root().join("complete").join(&orphan), b"").unwrap();
        let store = CodeStore::open(fx.root(), CodeLimits::default()).unwrap();
        assert_eq!(store.get(&art.sha256_hex), Some(art.clone()));
        assert_eq!(fs::read(art.dir.join("a.txt")).unwrap(), b"kept in the zip");
        assert!(!fx.root().join("complete").join(&orphan).exists());
    }

    #[test]
    fn a_zip_that_does_not_match_its_name_is_not_rebuilt() {
        let fx = Fixture::new();
        let art = fx
            .store
            .put_zip(&build(&[E::File("a.txt", b"a", 0o644)]))
            .unwrap();
        fs::remove_file(fx.root().join("complete").join(&art.sha256_hex)).unwrap();
        fs::write(&art.zip_path, build(&[E::File("b.txt", b"b", 0o644)])).unwrap();
        let store = CodeStore::open(fx.root(), CodeLimits::default()).unwrap();
        assert_eq!(store.get(&art.sha256_hex), None);
        assert!(!art.dir.exists());
    }

    #[test]
    fn open_clears_stale_temporaries() {
        let fx = Fixture::new();
        fs::create_dir(fx.root().join("tmp/half")).unwrap();
        fs::write(fx.root().join("tmp/half/file"), b"x").unwrap();
        fs::write(fx.root().join("tmp/half.zip"), b"x").unwrap();
        CodeStore::open(fx.root(), CodeLimits::default()).unwrap();
        assert_eq!(fs::read_dir(fx.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn rejects_parent_traversal() {
        let fx = Fixture::new();
        for name in [
            "../evil",
            "a/../../evil",
            "a/b/../c",
            "..\\evil",
            "a\\..\\..\\evil",
            "./..",
        ] {
            let zip = build(&[
                E::File("ok.txt", b"ok", 0o644),
                E::File(name, b"pwn", 0o644),
            ]);
            let err = fx.reject(&zip);
            assert!(matches!(err, CodeError::UnsafePath(_)), "{name}: {err}");
            assert_eq!(err.lambda_message(), COULD_NOT_UNZIP);
        }
    }

    #[test]
    fn rejects_absolute_drive_and_nul_names() {
        let fx = Fixture::new();
        let target = format!("/etc/updraft-code-test-{:016x}", rand::random::<u64>());
        for name in [
            target.as_str(),
            "C:\\evil",
            "c:/evil",
            "\\\\server\\share\\evil",
            "a\0b",
        ] {
            let zip = build(&[E::File(name, b"pwn", 0o644)]);
            let err = fx.reject(&zip);
            assert!(matches!(err, CodeError::UnsafePath(_)), "{name:?}: {err}");
        }
        assert!(!Path::new(&target).exists());
    }

    #[test]
    fn rejects_escaping_symlinks() {
        let fx = Fixture::new();
        let cases: Vec<Vec<E>> = vec![
            vec![E::Link("passwd", "/etc/passwd")],
            vec![E::Link("up", "../..")],
            vec![E::Link("up", "..")],
            vec![E::Link("a/b/up", "../../../x")],
            // Lexically `d/s/..` is `d`, but `d/s` is a link to the root, so it is the parent.
            vec![E::Link("d/s", ".."), E::Link("d/t", "s/..")],
            vec![E::Link("win", "..\\..\\evil")],
        ];
        for mut entries in cases {
            entries.push(E::File("ok.txt", b"ok", 0o644));
            let err = fx.reject(&build(&entries));
            assert!(matches!(err, CodeError::SymlinkEscape(_)), "{err}");
            assert_eq!(err.lambda_message(), COULD_NOT_UNZIP);
        }
    }

    #[test]
    fn symlink_loops_are_refused() {
        let fx = Fixture::new();
        let zip = build(&[
            E::File("ok.txt", b"ok", 0o644),
            E::Link("a", "b"),
            E::Link("b", "a"),
        ]);
        assert!(matches!(fx.reject(&zip), CodeError::InvalidZip(_)));
    }

    #[test]
    fn rejects_writing_through_a_symlink() {
        let fx = Fixture::new();
        let outside = fx.base.path().join("outside");
        fs::create_dir(&outside).unwrap();
        // A link inside the package is fine on its own; writing through it is not.
        let zip = build(&[
            E::Dir("sub/"),
            E::Link("link", "sub"),
            E::File("link/evil", b"pwn", 0o644),
        ]);
        assert!(matches!(fx.reject(&zip), CodeError::SymlinkEscape(_)));
        let zip = build(&[
            E::Link("link", outside.to_str().unwrap()),
            E::File("link/evil", b"pwn", 0o644),
        ]);
        assert!(matches!(fx.reject(&zip), CodeError::SymlinkEscape(_)));
        assert!(!outside.join("evil").exists());
    }

    #[test]
    fn rejects_duplicates_and_conflicts() {
        let fx = Fixture::new();
        let mut zip = build(&[E::File("a.txt", b"1", 0o644), E::File("b.txt", b"2", 0o644)]);
        patch_name(&mut zip, "b.txt", "a.txt");
        assert!(matches!(fx.reject(&zip), CodeError::DuplicateEntry(_)));
        for entries in [
            vec![
                E::File("a.txt", b"1", 0o644),
                E::File("./a.txt", b"2", 0o644),
            ],
            vec![E::File("a", b"1", 0o644), E::File("a/b", b"2", 0o644)],
            vec![E::Dir("a/"), E::File("a", b"1", 0o644)],
            vec![E::File("x", b"1", 0o644), E::Link("a", "x"), E::Dir("a/")],
        ] {
            assert!(matches!(
                fx.reject(&build(&entries)),
                CodeError::DuplicateEntry(_)
            ));
        }
    }

    #[test]
    fn repeated_directory_entries_are_harmless() {
        let fx = Fixture::new();
        let zip = build(&[E::Dir("d/"), E::Dir("./d/"), E::File("d/f", b"f", 0o644)]);
        let art = fx.store.put_zip(&zip).unwrap();
        assert_eq!(fs::read(art.dir.join("d/f")).unwrap(), b"f");
    }

    #[test]
    fn rejects_special_files() {
        let fx = Fixture::new();
        for kind in [0o010_000, 0o020_000, 0o060_000, 0o140_000] {
            let mut zip = build(&[E::File("ok.txt", b"ok", 0o644), E::File("dev", b"", 0o644)]);
            patch_mode(&mut zip, "dev", kind | 0o644);
            assert!(
                matches!(fx.reject(&zip), CodeError::UnsafePath(_)),
                "{kind:o}"
            );
        }
    }

    fn small_limits() -> CodeLimits {
        CodeLimits {
            max_zip_bytes: 1 << 20,
            max_unzipped_bytes: 1 << 20,
            max_entries: 100,
        }
    }

    #[test]
    fn rejects_by_declared_size_before_extracting() {
        let fx = Fixture::with_limits(small_limits());
        let zip = build(&[E::File("big", &vec![0u8; 2 << 20], 0o644)]);
        assert!(matches!(
            fx.reject(&zip),
            CodeError::UnzippedTooLarge { .. }
        ));
        // Small content that only claims to be large: only the declared check can refuse it.
        let mut zip = build(&[E::File("small", b"tiny", 0o644)]);
        patch_sizes(&mut zip, 0x7fff_0000);
        let err = fx.reject(&zip);
        assert!(matches!(err, CodeError::UnzippedTooLarge { limit } if limit == 1 << 20));
    }

    #[test]
    fn counts_inflated_bytes_when_headers_lie() {
        let limits = small_limits();
        let fx = Fixture::with_limits(limits);
        let zeros = vec![0u8; 16 << 20];
        // Headers claim just under the limit; the stream inflates to sixteen times it.
        let mut zip = build(&[E::File("bomb", &zeros, 0o644)]);
        assert!(zip.len() < 64 * 1024);
        patch_sizes(&mut zip, (limits.max_unzipped_bytes - 100) as u32);
        let err = fx.reject(&zip);
        assert!(matches!(err, CodeError::UnzippedTooLarge { .. }), "{err}");
        // Headers claiming ten bytes: the same, however small the claim.
        patch_sizes(&mut zip, 10);
        let err = fx.reject(&zip);
        assert!(matches!(err, CodeError::UnzippedTooLarge { .. }), "{err}");
        // A lie that stays under the limit is still a corrupt archive.
        let mut zip = build(&[E::File("liar", &zeros[..1 << 19], 0o644)]);
        patch_sizes(&mut zip, 10);
        assert!(matches!(fx.reject(&zip), CodeError::InvalidZip(_)));
    }

    #[test]
    fn running_total_stops_the_entry_that_crosses_the_limit() {
        let limits = CodeLimits {
            max_unzipped_bytes: 3000,
            ..small_limits()
        };
        let fx = Fixture::with_limits(limits);
        let chunk = vec![7u8; 1000];
        let entries = [
            E::File("a", &chunk, 0o644),
            E::File("b", &chunk, 0o644),
            E::File("c", &chunk, 0o644),
            E::File("d", &chunk, 0o644),
        ];
        // Declared total 3000 fits, but `d` claims nothing and inflates to 1000 more.
        let mut zip = build(&entries);
        let rec = central_records(&zip)[3];
        zip[rec + 24..rec + 28].copy_from_slice(&0u32.to_le_bytes());
        let err = fx.reject(&zip);
        assert!(
            matches!(err, CodeError::UnzippedTooLarge { limit: 3000 }),
            "{err}"
        );
        // The same package with honest sizes is caught before extraction.
        let err = fx.reject(&build(&entries));
        assert!(
            matches!(err, CodeError::UnzippedTooLarge { limit: 3000 }),
            "{err}"
        );
        fx.store.put_zip(&build(&entries[..3])).unwrap();
    }

    #[test]
    fn rejects_too_many_entries() {
        let fx = Fixture::with_limits(CodeLimits {
            max_entries: 3,
            ..CodeLimits::default()
        });
        let names = ["a", "b", "c", "d"];
        let entries: Vec<_> = names.iter().map(|n| E::File(n, b"x", 0o644)).collect();
        let err = fx.reject(&build(&entries));
        assert!(matches!(
            err,
            CodeError::TooManyEntries { count: 4, limit: 3 }
        ));
        fx.store.put_zip(&build(&entries[..3])).unwrap();
    }

    #[test]
    fn rejects_oversized_zip() {
        let fx = Fixture::with_limits(CodeLimits {
            max_zip_bytes: 100,
            ..CodeLimits::default()
        });
        let zip = build(&[E::File("a", &[1u8; 512], 0o644), E::File("b", b"b", 0o644)]);
        let err = fx.reject(&zip);
        assert!(
            matches!(err, CodeError::ZipTooLarge { size, limit: 100 } if size == zip.len() as u64)
        );
        assert_eq!(err.http_status(), 413);
        assert_eq!(err.lambda_error_type(), "RequestEntityTooLargeException");
    }

    #[test]
    fn rejects_non_zip_and_empty_archives() {
        let fx = Fixture::new();
        let err = fx.reject(b"this is not a zip file at all, just some bytes");
        assert!(matches!(err, CodeError::InvalidZip(_)));
        assert_eq!(err.lambda_message(), COULD_NOT_UNZIP);
        assert_eq!(err.lambda_error_type(), "InvalidParameterValueException");
        let mut truncated = build(&[E::File("a", &[5u8; 4096], 0o644)]);
        truncated.truncate(truncated.len() / 2);
        assert!(matches!(fx.reject(&truncated), CodeError::InvalidZip(_)));
        assert!(matches!(fx.reject(b""), CodeError::EmptyZip));
        assert!(matches!(fx.reject(&build(&[])), CodeError::EmptyZip));
        let err = fx.reject(&build(&[E::Dir("only/"), E::Dir("dirs/")]));
        assert!(matches!(err, CodeError::EmptyZip));
        assert_eq!(
            err.lambda_message(),
            "Uploaded file must be a non-empty zip"
        );
    }

    #[test]
    fn corrupt_entry_data_is_refused() {
        let fx = Fixture::new();
        let mut zip = build(&[E::File("a", b"some text that deflates", 0o644)]);
        let rec = central_records(&zip)[0];
        zip[rec + 16] ^= 0xff; // crc32 in the central directory
        assert!(matches!(fx.reject(&zip), CodeError::InvalidZip(_)));
    }

    #[test]
    fn lambda_messages() {
        let limits = CodeLimits::default();
        assert_eq!(limits.max_zip_bytes, 52_428_800);
        assert_eq!(limits.max_unzipped_bytes, 262_144_000);
        let err = CodeError::UnzippedTooLarge {
            limit: limits.max_unzipped_bytes,
        };
        assert_eq!(
            err.lambda_message(),
            "Unzipped size must be smaller than 262144000 bytes"
        );
        assert_eq!(err.http_status(), 400);
        let io = CodeError::Extract {
            path: "/srv/secret".into(),
            source: io::Error::other("disk full"),
        };
        assert!(!io.lambda_message().contains("/srv"));
        assert_eq!(io.lambda_error_type(), "ServiceException");
        assert_eq!(io.http_status(), 500);
    }

    #[test]
    fn store_still_works_after_rejections() {
        let fx = Fixture::with_limits(small_limits());
        let mut bomb = build(&[E::File("bomb", &vec![0u8; 4 << 20], 0o644)]);
        patch_sizes(&mut bomb, 1000);
        fx.reject(&bomb);
        fx.reject(&build(&[E::File("../evil", b"x", 0o644)]));
        let art = fx
            .store
            .put_zip(&build(&[E::File("ok", b"ok", 0o644)]))
            .unwrap();
        assert_eq!(fs::read(art.dir.join("ok")).unwrap(), b"ok");
    }
}
