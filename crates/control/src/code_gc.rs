//! Garbage collection of code packages that nothing refers to any more.
//!
//! Packages are content-addressed and shared, so `UpdateFunctionCode` and `DeleteFunction` leave
//! the old zip and tree behind. A collection pass removes the packages that neither a function's
//! `$LATEST` nor any of its published versions refers to, nor any layer version (nor a function's
//! copy of a layer version that has since been deleted: it keeps working for the function), nor a
//! merged `/opt` tree some configuration uses (`root/opt/<address>`), under two safety rules:
//!
//! * **Never an upload's package.** An upload stores its zip first and writes the function record
//!   that refers to it afterwards; between the two the package is referenced by nothing. Every
//!   upload holds an [`UploadGuard`] from before it stores the zip until its record is in the
//!   control plane's memory. A pass removes nothing while any upload is in flight, and nothing if
//!   an upload started after the pass took its snapshot of the referenced set; removal happens
//!   with the guard's lock held, so no upload can start until it is over (an upload of the same
//!   bytes then stores them anew). Hashing the zip a second time to pin single addresses would
//!   cost a full read of up to 50 MB per upload; a busy node merely waits for a quiet moment.
//! * **Never code an environment may still run.** Environments of replaced code drain after
//!   their last invocation (up to the 900 s timeout), with the old tree mounted. A package is
//!   removed only once it has been seen unreferenced for the grace period (in memory, so a
//!   restart starts the clock again), which must exceed the longest invocation.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::code::{CodeError, CodeStore};
use crate::plane::ControlPlane;

/// The default grace period: longer than Lambda's 900 s maximum timeout plus draining.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30 * 60);

/// Uploads in flight and the memory of packages seen unreferenced; one per code store.
#[derive(Debug, Default)]
pub struct CodeGc {
    state: Arc<Mutex<GcState>>,
}

#[derive(Debug, Default)]
struct GcState {
    /// Uploads between storing their zip and recording the function that refers to it.
    in_flight: usize,
    /// Uploads ever started; a pass compares it before and after its snapshot.
    started: u64,
    /// When each unreferenced package was first seen unreferenced.
    unreferenced_since: HashMap<String, Instant>,
}

/// Held by an upload until the record referring to its package is in memory (see the module
/// docs); dropping it ends the upload.
#[derive(Debug)]
pub struct UploadGuard {
    state: Arc<Mutex<GcState>>,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        lock(&self.state).in_flight -= 1;
    }
}

fn lock(state: &Mutex<GcState>) -> MutexGuard<'_, GcState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Content addresses removed.
    pub removed: Vec<String>,
    /// Unreferenced packages kept because their grace period has not passed.
    pub waiting: usize,
    /// Packages kept because something refers to them.
    pub referenced: usize,
    /// The pass removed nothing because an upload was in flight or started meanwhile.
    pub deferred: bool,
}

impl CodeGc {
    /// Marks the start of an upload; hold the guard until its record is written.
    pub fn upload(&self) -> UploadGuard {
        let mut st = lock(&self.state);
        st.in_flight += 1;
        st.started += 1;
        UploadGuard {
            state: self.state.clone(),
        }
    }
}

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("reading the functions: {0}")]
    Control(#[from] crate::ControlError),
    #[error(transparent)]
    Code(#[from] CodeError),
}

/// Runs one pass over `plane`'s code store: removes packages unreferenced for at least `grace`.
pub fn collect(plane: &ControlPlane, grace: Duration) -> Result<GcReport, GcError> {
    collect_at(plane, grace, Instant::now(), || {})
}

/// [`collect`] at `now`; `between` runs after the snapshot and before removal (a test seam for
/// an upload that races the pass).
fn collect_at(
    plane: &ControlPlane,
    grace: Duration,
    now: Instant,
    between: impl FnOnce(),
) -> Result<GcReport, GcError> {
    let code = plane.code_store();
    let gc = code.gc();
    let started = {
        let st = lock(&gc.state);
        if st.in_flight > 0 {
            return Ok(GcReport {
                deferred: true,
                ..Default::default()
            });
        }
        st.started
    };
    let referenced = plane.referenced_code()?;
    let stored = stored_addresses(code)?;
    between();
    let mut report = GcReport::default();
    let mut st = lock(&gc.state);
    if st.in_flight > 0 || st.started != started {
        report.deferred = true;
        return Ok(report);
    }
    st.unreferenced_since.retain(|a, _| stored.contains(a));
    for address in &stored {
        if referenced.contains(address) {
            st.unreferenced_since.remove(address);
            report.referenced += 1;
            continue;
        }
        let since = *st.unreferenced_since.entry(address.clone()).or_insert(now);
        if now.saturating_duration_since(since) < grace {
            report.waiting += 1;
            continue;
        }
        // Still under the lock: no upload of these bytes can begin until the package is gone.
        code.remove(address)?;
        st.unreferenced_since.remove(address);
        report.removed.push(address.clone());
    }
    report.removed.sort();
    Ok(report)
}

/// Every content address with a zip or a tree in the store (a tree without its zip is what an
/// interrupted upload leaves).
fn stored_addresses(code: &CodeStore) -> Result<HashSet<String>, CodeError> {
    let mut out = HashSet::new();
    for (dir, suffix) in [
        (code.zips_dir(), ".zip"),
        (code.trees_dir(), ""),
        (code.opt_trees_dir(), ""),
    ] {
        let entries = match std::fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            r => r.map_err(|source| inspect(&dir, source))?,
        };
        for e in entries {
            let e = e.map_err(|source| inspect(&dir, source))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(address) = name.strip_suffix(suffix)
                && address.len() == 64
                && address
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                out.insert(address.to_string());
            }
        }
    }
    Ok(out)
}

fn inspect(path: &Path, source: std::io::Error) -> CodeError {
    CodeError::Inspect {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::CodeStore;
    use crate::plane::{CodeUpdate, ControlConfig, CreateFunction};
    use std::io::Write;
    use updraft_store::SqliteStore;

    const ACCT: &str = "123456789012";
    const HOUR: Duration = Duration::from_secs(3600);

    fn zip_of(body: &str) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("app.py", zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(body.as_bytes()).unwrap();
        w.finish().unwrap().into_inner()
    }

    fn plane(dir: &Path) -> ControlPlane {
        let store = Arc::new(SqliteStore::open(&dir.join("db.sqlite")).unwrap());
        let code = CodeStore::open(dir.join("code"), Default::default()).unwrap();
        let config = ControlConfig {
            region: "us-east-1".into(),
            account_concurrency: 1000,
        };
        ControlPlane::open(store, code, config).unwrap()
    }

    fn create(p: &ControlPlane, name: &str, body: &str, publish: bool) -> String {
        let (latest, _) = p
            .create_function(
                ACCT,
                CreateFunction {
                    name: name.into(),
                    runtime: Some("python3.12".into()),
                    role: "arn:aws:iam::123456789012:role/r".into(),
                    handler: Some("app.handler".into()),
                    publish,
                    zip: zip_of(body),
                    ..Default::default()
                },
            )
            .unwrap();
        latest.code.sha256_hex.clone()
    }

    fn update(p: &ControlPlane, name: &str, body: &str) -> String {
        let cfg = p
            .update_code(
                ACCT,
                name,
                CodeUpdate {
                    zip: zip_of(body),
                    ..Default::default()
                },
            )
            .unwrap();
        cfg.code.sha256_hex.clone()
    }

    #[test]
    fn removes_only_unreferenced_packages_after_the_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        let p = plane(dir.path());
        let v1 = create(&p, "f", "one", true); // $LATEST and version 1
        let latest = update(&p, "f", "two"); // version 1 still has "one"
        let replaced = create(&p, "g", "three", false);
        let g_now = update(&p, "g", "four");
        let deleted = create(&p, "h", "five", false);
        p.delete_function(ACCT, "h", None).unwrap();

        let t0 = Instant::now();
        let first = collect_at(&p, HOUR, t0, || {}).unwrap();
        assert_eq!(first.removed, Vec::<String>::new());
        assert_eq!((first.waiting, first.referenced), (2, 3));
        let early = collect_at(&p, HOUR, t0 + HOUR / 2, || {}).unwrap();
        assert!(early.removed.is_empty());
        let done = collect_at(&p, HOUR, t0 + HOUR, || {}).unwrap();
        let mut gone = vec![replaced.clone(), deleted.clone()];
        gone.sort();
        assert_eq!(done.removed, gone);
        let code = p.code_store();
        for a in [&v1, &latest, &g_now] {
            assert!(code.get(a).is_some(), "{a} is in use and must stay");
        }
        for a in [&replaced, &deleted] {
            assert!(code.get(a).is_none());
            assert!(!code.trees_dir().join(a).exists());
        }
        // The version goes: its package is garbage once its grace period has passed too.
        p.delete_function(ACCT, "f", Some("1")).unwrap();
        let t1 = t0 + 2 * HOUR;
        assert!(collect_at(&p, HOUR, t1, || {}).unwrap().removed.is_empty());
        assert_eq!(
            collect_at(&p, HOUR, t1 + HOUR, || {}).unwrap().removed,
            [v1]
        );
    }

    #[test]
    fn an_upload_in_flight_is_never_collected() {
        let dir = tempfile::tempdir().unwrap();
        let p = plane(dir.path());
        let code = p.code_store();
        // An upload that stored its zip and has not written its record yet.
        let guard = code.gc().upload();
        let a = code.put_zip(&zip_of("uploading")).unwrap().sha256_hex;
        let t0 = Instant::now();
        let r = collect_at(&p, Duration::ZERO, t0, || {}).unwrap();
        assert!(r.deferred && r.removed.is_empty());
        assert!(code.get(&a).is_some());
        drop(guard);
        // Its record never came (the request failed): now it is garbage.
        assert_eq!(
            collect_at(&p, Duration::ZERO, t0, || {}).unwrap().removed,
            [a]
        );
    }

    #[test]
    fn an_upload_that_starts_during_a_pass_defers_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = plane(dir.path());
        let old = create(&p, "f", "old", false);
        update(&p, "f", "new");
        // The same bytes as the unreferenced package are uploaded again while the pass runs: the
        // store finds them present, so only the pass's deferral keeps them.
        let r = collect_at(&p, Duration::ZERO, Instant::now(), || {
            let again = create(&p, "g", "old", false);
            assert_eq!(again, old);
        })
        .unwrap();
        assert!(r.deferred && r.removed.is_empty());
        assert!(p.code_store().get(&old).is_some());
        let r = collect_at(&p, Duration::ZERO, Instant::now(), || {}).unwrap();
        assert!(!r.deferred && r.removed.is_empty() && r.referenced == 2);
    }

    #[test]
    fn concurrent_uploads_and_passes_never_lose_a_referenced_package() {
        let dir = tempfile::tempdir().unwrap();
        let p = Arc::new(plane(dir.path()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let collector = {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut removed = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    removed += collect(&p, Duration::ZERO).unwrap().removed.len();
                }
                removed
            })
        };
        for i in 0..40 {
            let name = format!("f{i}");
            create(&p, &name, &format!("v{i}"), false);
            // Every other function replaces its code: the first package becomes garbage.
            if i % 2 == 0 {
                update(&p, &name, &format!("w{i}"));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        collector.join().unwrap();
        for a in p.referenced_code().unwrap() {
            assert!(
                p.code_store().get(&a).is_some(),
                "referenced {a} was removed"
            );
        }
        let last = collect(&p, Duration::ZERO).unwrap();
        assert_eq!(last.referenced, 40);
    }
}
