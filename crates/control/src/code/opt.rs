//! `/opt` trees: the contents of a function's layers merged into one read-only directory.
//!
//! An environment sees its layers under `/opt`, later layers replacing what earlier ones put at
//! the same path. The merge is done once per distinct ordered list of layer packages, into
//! `root/opt/<address>/`, where the address is a digest of the packages' addresses in order
//! ([`crate::layer::opt_address`]); every function (and every environment) using the same list
//! shares the tree, which the sandbox bind-mounts read-only as `/opt` exactly as it mounts
//! `/var/task`. A cold start therefore pays for layers what it pays for the function's own code:
//! one bind mount, whatever the number of layers.
//!
//! Files are hard links to the extracted layer packages (same file system, no data copied), with
//! a plain copy where a link cannot be made; symlinks are recreated as they are (the code store
//! only keeps symlinks that resolve inside their own package, so inside `/opt` they stay inside
//! `/opt`). The tree is built in `root/tmp` and renamed into place, so a tree in `root/opt` is
//! always whole; a leftover of an interrupted merge is cleared with the rest of `root/tmp`.
//! Hard links also mean a merged tree stays intact if a layer package is later removed.

use super::*;

impl CodeStore {
    /// Where merged `/opt` trees live.
    pub(crate) fn opt_trees_dir(&self) -> PathBuf {
        self.root.join("opt")
    }

    /// The merged tree of an address, without touching the disk (for the invoke path).
    pub fn opt_dir(&self, address: &str) -> Option<PathBuf> {
        is_address(address).then(|| self.opt_trees_dir().join(address))
    }

    /// Total size of the files in a stored package, from its zip's central directory (what
    /// counts against Lambda's 250 MB limit of function plus layers).
    pub fn unzipped_size(&self, sha256_hex: &str) -> Result<u64, CodeError> {
        if !is_address(sha256_hex) {
            return Err(CodeError::InvalidAddress(sha256_hex.to_string()));
        }
        let path = self.zip_path(sha256_hex);
        let file = fs::File::open(&path).map_err(|source| CodeError::Inspect {
            path: path.clone(),
            source,
        })?;
        let mut archive =
            ZipArchive::new(file).map_err(|e| CodeError::InvalidZip(e.to_string()))?;
        let mut total: u64 = 0;
        for i in 0..archive.len() {
            let entry = archive
                .by_index_raw(i)
                .map_err(|e| CodeError::InvalidZip(e.to_string()))?;
            total = total.saturating_add(entry.size());
        }
        Ok(total)
    }

    /// Builds (once) the `/opt` tree of these layer packages, merged in order, and returns its
    /// address. Every package must be stored.
    pub fn merge_layers(&self, address: &str, packages: &[&str]) -> Result<PathBuf, CodeError> {
        let dest = self
            .opt_dir(address)
            .ok_or_else(|| CodeError::InvalidAddress(address.to_string()))?;
        if is_real_dir(&dest)? {
            return Ok(dest);
        }
        let opt = self.opt_trees_dir();
        fs::create_dir_all(&opt).map_err(|source| CodeError::CreateDir {
            path: opt.clone(),
            source,
        })?;
        let tmp = TempPath::new(self.tmp_dir().join(format!("opt.{}", unique())));
        fs::create_dir(&tmp.path).map_err(|source| CodeError::Extract {
            path: tmp.path.clone(),
            source,
        })?;
        for sha in packages {
            if !is_address(sha) {
                return Err(CodeError::InvalidAddress(sha.to_string()));
            }
            let tree = self.tree_path(sha);
            if !is_real_dir(&tree)? {
                return Err(CodeError::Inspect {
                    path: tree,
                    source: io::Error::new(io::ErrorKind::NotFound, "layer package missing"),
                });
            }
            overlay(&tree, &tmp.path)?;
        }
        match fs::rename(&tmp.path, &dest) {
            Ok(()) => {
                tmp.disarm();
                sync_dir(&opt)?;
            }
            // Another merge of the same list finished first: its tree is the same.
            Err(_) if is_real_dir(&dest)? => {}
            Err(source) => {
                return Err(CodeError::Commit {
                    path: dest.clone(),
                    source,
                });
            }
        }
        Ok(dest)
    }

    /// Removes a merged tree (garbage collection); removing one that does not exist succeeds.
    pub(crate) fn remove_opt_tree(&self, address: &str) -> Result<(), CodeError> {
        let Some(tree) = self.opt_dir(address) else {
            return Err(CodeError::InvalidAddress(address.to_string()));
        };
        let doomed = self
            .tmp_dir()
            .join(format!("opt.{address}.{}.removed", unique()));
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
}

/// Lays the contents of `src` over `dst`: directories merge, anything else replaces what was
/// there (a file over a directory replaces the whole directory, as a later layer's does on
/// Lambda).
fn overlay(src: &Path, dst: &Path) -> Result<(), CodeError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CodeError::Extract { path, source }
    };
    for entry in fs::read_dir(src).map_err(err(src))? {
        let entry = entry.map_err(err(src))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type().map_err(err(&from))?;
        let existing = fs::symlink_metadata(&to).ok().map(|m| m.file_type());
        if kind.is_dir() {
            match existing {
                Some(t) if t.is_dir() => {}
                Some(_) => {
                    fs::remove_file(&to).map_err(err(&to))?;
                    fs::create_dir(&to).map_err(err(&to))?;
                }
                None => fs::create_dir(&to).map_err(err(&to))?,
            }
            fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).map_err(err(&to))?;
            overlay(&from, &to)?;
            continue;
        }
        match existing {
            Some(t) if t.is_dir() => fs::remove_dir_all(&to).map_err(err(&to))?,
            Some(_) => fs::remove_file(&to).map_err(err(&to))?,
            None => {}
        }
        if kind.is_symlink() {
            let target = fs::read_link(&from).map_err(err(&from))?;
            std::os::unix::fs::symlink(&target, &to).map_err(err(&to))?;
        } else if fs::hard_link(&from, &to).is_err() {
            // Another file system or the link limit: copy (mode included).
            fs::copy(&from, &to).map_err(err(&to))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, body) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn later_layers_override_earlier_ones_and_trees_are_shared() {
        let dir = tempfile::tempdir().unwrap();
        let store = CodeStore::open(dir.path().join("code"), CodeLimits::default()).unwrap();
        let a = store
            .put_zip(&zip_of(&[
                ("python/shared.py", "A = 1\n"),
                ("python/only_a.py", "x\n"),
                ("bin/tool", "a"),
            ]))
            .unwrap();
        let b = store
            .put_zip(&zip_of(&[
                ("python/shared.py", "A = 2\n"),
                ("bin/tool/x", "b"),
            ]))
            .unwrap();
        let shas = [a.sha256_hex.as_str(), b.sha256_hex.as_str()];
        let tree = store.merge_layers(&"c".repeat(64), &shas).unwrap();
        let read = |p: &str| fs::read_to_string(tree.join(p)).unwrap();
        assert_eq!(read("python/shared.py"), "A = 2\n");
        assert_eq!(read("python/only_a.py"), "x\n");
        // A directory of a later layer replaces a file of an earlier one.
        assert_eq!(read("bin/tool/x"), "b");
        // Merging the same list again finds the tree.
        assert_eq!(store.merge_layers(&"c".repeat(64), &shas).unwrap(), tree);
        // Files are links, not copies.
        use std::os::unix::fs::MetadataExt;
        let linked = fs::metadata(tree.join("python/only_a.py")).unwrap();
        let original = fs::metadata(a.dir.join("python/only_a.py")).unwrap();
        assert_eq!(linked.ino(), original.ino());
        // Sizes come from the central directory.
        assert_eq!(store.unzipped_size(&a.sha256_hex).unwrap(), 6 + 2 + 1);
        store.remove_opt_tree(&"c".repeat(64)).unwrap();
        assert!(!tree.exists());
        assert!(store.merge_layers("nope", &shas).is_err());
    }
}
