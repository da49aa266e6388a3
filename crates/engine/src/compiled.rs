//! Runtime clients compiled on the node (Java's with `javac`, C#'s with `mcs`): built once per
//! interpreter into `<data_dir>/runtimes/<name>/`, in a private temporary directory first and
//! renamed into place, so that a half-built client is never seen and two processes building the
//! same one at once both end with a whole one.

use std::path::Path;
use std::process::Command;

/// Makes sure `<data_dir>/runtimes/<name>/` holds a client whose `marker` file exists, running
/// `build` into a temporary directory when it does not; returns `name`. Blocking.
pub(crate) fn ensure(
    data_dir: &Path,
    name: String,
    marker: &str,
    build: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<String, String> {
    let runtimes = data_dir.join("runtimes");
    let target = runtimes.join(&name);
    if target.join(marker).exists() {
        return Ok(name);
    }
    let tmp = runtimes.join(format!(".{name}.{}", std::process::id()));
    let _ = remove(&tmp);
    let result = build(&tmp).and_then(|()| {
        std::fs::rename(&tmp, &target).or_else(|e| {
            // Another process finished the same build first: theirs is as good as ours.
            if target.join(marker).exists() {
                Ok(())
            } else {
                Err(format!("{}: {e}", target.display()))
            }
        })
    });
    let _ = remove(&tmp);
    result.map(|()| name)
}

/// Leaves a built client readable by the jail's unprivileged user and writable by nobody.
pub(crate) fn seal(dir: &Path) -> Result<(), String> {
    let chmod = Command::new("chmod")
        .args(["-R", "a+rX,a-w"])
        .arg(dir)
        .status()
        .map_err(|e| format!("cannot run chmod: {e}"))?;
    if !chmod.success() {
        return Err(format!("chmod of {} failed", dir.display()));
    }
    Ok(())
}

/// Removes a (possibly sealed) directory tree.
fn remove(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let _ = Command::new("chmod").args(["-R", "u+w"]).arg(dir).status();
    std::fs::remove_dir_all(dir)
}
