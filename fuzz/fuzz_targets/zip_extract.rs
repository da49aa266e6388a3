//! Code packages: `CodeStore::put_zip` on arbitrary bytes, as any caller of `CreateFunction` can
//! upload them.
//!
//! Properties, besides never panicking:
//! - after an error, the store and its surroundings hold exactly what they held before;
//! - after success, every extracted entry is a directory, a regular file or a symlink that resolves
//!   (following the tree's own links, as the kernel would) inside the tree; nothing appeared
//!   outside `trees/<hex>` and `zips/<hex>.zip`; storing the same bytes again is idempotent.
//!
//! The store lives under the temporary directory (`TMPDIR`; scripts/fuzz.sh points it at a tmpfs)
//! and every stored artifact is removed again, so the disk does not fill however long the run.
#![no_main]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use updraft_control::code::{CodeLimits, CodeStore};

struct Setup {
    /// Kept for its lifetime: the directory holding everything below.
    _dir: tempfile::TempDir,
    /// A sibling of the store root: anything written here escaped the store.
    outside: PathBuf,
    root: PathBuf,
    store: CodeStore,
}

static SETUP: LazyLock<Setup> = LazyLock::new(|| {
    let dir = tempfile::Builder::new()
        .prefix("updraft-fuzz-zip.")
        .tempdir()
        .expect("create the temporary directory");
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).expect("create the outside directory");
    let root = dir.path().join("store");
    let store = CodeStore::open(&root, CodeLimits::default()).expect("open the code store");
    Setup {
        _dir: dir,
        outside,
        root,
        store,
    }
});

/// Every path below `dir` (relative), with a letter for its kind: d, f, l or ? (anything else).
fn listing(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let entry = entry.expect("read a directory entry");
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).expect("stat an entry");
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                'd'
            } else if ft.is_file() {
                'f'
            } else if ft.is_symlink() {
                'l'
            } else {
                '?'
            };
            let rel = path.strip_prefix(base).expect("entry below its base");
            out.insert(format!("{kind} {}", rel.display()));
            if ft.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// Resolves `rel` inside `tree` on the real file system, following symlinks as the kernel would,
/// and tells whether resolution ever climbs above `tree` or reaches an absolute target. Paths that
/// do not exist resolve lexically; a loop stops (the kernel answers ELOOP, which is safe).
fn escapes(tree: &Path, rel: &Path) -> bool {
    let mut resolved: Vec<std::ffi::OsString> = Vec::new();
    let mut pending: Vec<std::ffi::OsString> = rel
        .components()
        .rev()
        .map(|c| c.as_os_str().to_owned())
        .collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match Path::new(&part).components().next() {
            Some(Component::CurDir) | None => {}
            Some(Component::ParentDir) => {
                if resolved.pop().is_none() {
                    return true;
                }
            }
            Some(Component::RootDir) | Some(Component::Prefix(_)) => return true,
            Some(Component::Normal(name)) => {
                resolved.push(name.to_owned());
                let here: PathBuf = std::iter::once(tree.as_os_str().to_owned())
                    .chain(resolved.iter().cloned())
                    .collect();
                let Ok(meta) = fs::symlink_metadata(&here) else {
                    continue;
                };
                if !meta.file_type().is_symlink() {
                    continue;
                }
                hops += 1;
                if hops > 40 {
                    return false;
                }
                resolved.pop();
                let target = fs::read_link(&here).expect("read a symlink");
                if target.is_absolute() {
                    return true;
                }
                pending.extend(target.components().rev().map(|c| c.as_os_str().to_owned()));
            }
        }
    }
    false
}

fuzz_target!(|data: &[u8]| {
    let s = &*SETUP;
    let before = listing(&s.root);
    let result = s.store.put_zip(data);
    let after = listing(&s.root);
    assert!(
        listing(&s.outside).is_empty(),
        "something was written outside the store"
    );
    let artifact = match result {
        Err(e) => {
            // Every failure is answered to the caller.
            let _ = (e.lambda_message(), e.lambda_error_type(), e.http_status());
            assert_eq!(
                before, after,
                "a refused package left something behind ({e})"
            );
            return;
        }
        Ok(a) => a,
    };

    let tree_rel = format!("trees/{}", artifact.sha256_hex);
    let zip_rel = format!("zips/{}.zip", artifact.sha256_hex);
    let marker_rel = format!("complete/{}", artifact.sha256_hex);
    for entry in after.difference(&before) {
        let (_, rel) = entry.split_once(' ').expect("kind and path");
        assert!(
            rel == zip_rel
                || rel == marker_rel
                || rel == tree_rel
                || rel.starts_with(&format!("{tree_rel}/")),
            "an accepted package left {entry:?} outside its tree"
        );
    }
    assert_eq!(
        fs::read(&artifact.zip_path).expect("read the stored zip"),
        data
    );
    for entry in listing(&artifact.dir) {
        let (kind, rel) = entry.split_once(' ').expect("kind and path");
        assert!(kind != "?", "special file {rel:?} in an extracted tree");
        assert!(
            !escapes(&artifact.dir, Path::new(rel)),
            "{rel:?} resolves outside the extracted tree"
        );
    }
    let again = s
        .store
        .put_zip(data)
        .expect("storing the same package again");
    assert_eq!(again, artifact);

    s.store
        .remove(&artifact.sha256_hex)
        .expect("remove the artifact");
    assert_eq!(listing(&s.root), before, "remove left something behind");
});
