//! The runtime registry: which Lambda runtime ids this host can run, and how each one is started.
//!
//! Interpreters are found once at startup. `python3` is looked up on `PATH` and run once to learn
//! its real executable and `sys.base_prefix` (a pyenv shim or a venv resolves to the real
//! installation); `node` is looked up on `PATH` and resolved through symlinks. Every `python3.x`
//! id runs on the host's Python and every `nodejs*.x` id on the host's Node.js; `provided*`
//! runs the package's own `/var/task/bootstrap`. Java is listed but unavailable: Updraft has no Java
//! runtime client yet.
//!
//! Whatever the runtime, the discovered interpreter prefixes are made visible in every jail (at the
//! same path) and their `bin` directories are put on `PATH`, so a `provided.al2023` bootstrap can
//! `exec python3 ...` or `exec node ...`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::EngineError;

/// The Python runtime client, served to functions at `/var/runtime/bootstrap.py`.
const PYTHON_CLIENT: &str = include_str!("../runtimes/python/bootstrap.py");
/// The Node.js runtime client, served to functions at `/var/runtime/bootstrap.mjs`.
const NODE_CLIENT: &str = include_str!("../runtimes/node/bootstrap.mjs");
/// A module the Node.js client loads while it waits in a pre-warmed environment.
const NODE_WARMUP: &str = include_str!("../runtimes/node/warmup.cjs");

/// Every runtime id Updraft knows, in the order `Engine::runtimes` lists them.
pub(crate) const KNOWN_RUNTIMES: &[&str] = &[
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "java8.al2",
    "java11",
    "java17",
    "java21",
    "provided",
    "provided.al2",
    "provided.al2023",
];

/// Families of runtimes that start the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Python,
    Node,
    Java,
    Provided,
}

impl Family {
    /// The family of a Lambda runtime id, `None` for ids Updraft does not know.
    pub(crate) fn of(runtime: &str) -> Option<Family> {
        if !KNOWN_RUNTIMES.contains(&runtime) {
            return None;
        }
        Some(if runtime.starts_with("python") {
            Family::Python
        } else if runtime.starts_with("nodejs") {
            Family::Node
        } else if runtime.starts_with("java") {
            Family::Java
        } else {
            Family::Provided
        })
    }
}

/// One runtime id as `Engine::runtimes` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeInfo {
    /// Lambda runtime id, e.g. `python3.12`.
    pub id: String,
    /// Whether functions with this runtime can run on this host.
    pub available: bool,
    /// The program started in the jail: the host interpreter, or `/var/task/bootstrap`.
    pub interpreter: Option<PathBuf>,
    /// Version of the interpreter (`3.11.7`, `v20.20.2`), when there is one.
    pub interpreter_version: Option<String>,
    /// Why the runtime is unavailable.
    pub reason: Option<String>,
}

/// An interpreter found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interpreter {
    /// Real path of the executable (symlinks resolved).
    pub exe: PathBuf,
    /// Installation prefix, made visible read-only inside jails.
    pub prefix: PathBuf,
    /// Directory put on `PATH` inside jails.
    pub bin_dir: PathBuf,
    pub version: String,
}

/// How to start one runtime id.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub family: Family,
    pub argv: Vec<String>,
    /// Name of the `<data_dir>/runtimes/<name>` directory mounted at `/var/runtime`.
    pub client_dir: Option<&'static str>,
}

/// The interpreters of this host and what they make available.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeRegistry {
    python: Result<Interpreter, String>,
    node: Result<Interpreter, String>,
}

/// Program text run by the host's `python3` to describe itself, one fact per line.
const PYTHON_PROBE: &str = "import sys; print(sys.executable); print(sys.base_prefix); print('%d.%d.%d' % sys.version_info[:3])";

impl RuntimeRegistry {
    /// Finds `python3` and `node` on the server's `PATH`.
    pub(crate) fn discover() -> Self {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let python = match which("python3", &path) {
            Some(p) => probe_python(&p),
            None => Err("python3 not found on PATH".to_string()),
        };
        let node = match which("node", &path) {
            Some(p) => probe_node(&p),
            None => Err("node not found on PATH".to_string()),
        };
        if let Err(e) = &python {
            tracing::warn!("python runtimes unavailable: {e}");
        }
        if let Err(e) = &node {
            tracing::warn!("node.js runtimes unavailable: {e}");
        }
        RuntimeRegistry { python, node }
    }

    #[cfg(test)]
    pub(crate) fn from_parts(
        python: Result<Interpreter, String>,
        node: Result<Interpreter, String>,
    ) -> Self {
        RuntimeRegistry { python, node }
    }

    fn interpreter(&self, family: Family) -> Result<Option<&Interpreter>, String> {
        match family {
            Family::Python => self.python.as_ref().map(Some).map_err(Clone::clone),
            Family::Node => self.node.as_ref().map(Some).map_err(Clone::clone),
            Family::Java => Err("no Java runtime client in this Updraft build".to_string()),
            Family::Provided => Ok(None),
        }
    }

    /// How to start `runtime`, or why it cannot run here.
    pub(crate) fn launch_for(&self, runtime: &str) -> Result<Launch, String> {
        let family = Family::of(runtime).ok_or_else(|| format!("unknown runtime {runtime:?}"))?;
        let interp = self
            .interpreter(family)
            .map_err(|e| format!("{runtime}: {e}"))?;
        let (argv, client_dir) = match (family, interp) {
            (Family::Python, Some(i)) => (
                vec![path_string(&i.exe), "/var/runtime/bootstrap.py".to_string()],
                Some("python"),
            ),
            (Family::Node, Some(i)) => (
                vec![
                    path_string(&i.exe),
                    "/var/runtime/bootstrap.mjs".to_string(),
                ],
                Some("node"),
            ),
            _ => (vec!["/var/task/bootstrap".to_string()], None),
        };
        Ok(Launch {
            family,
            argv,
            client_dir,
        })
    }

    /// Interpreter prefixes every jail must see (system `/usr` is part of every jail already).
    pub(crate) fn ro_paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for i in [&self.python, &self.node].into_iter().flatten() {
            let p = &i.prefix;
            if p.as_os_str().is_empty() || p == Path::new("/") || p == Path::new("/usr") {
                continue;
            }
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// Interpreter `bin` directories to put on `PATH` ahead of the system directories.
    pub(crate) fn path_dirs(&self) -> Vec<PathBuf> {
        let system = ["/usr/local/bin", "/usr/bin", "/bin", "/opt/bin"];
        let mut out: Vec<PathBuf> = Vec::new();
        for i in [&self.python, &self.node].into_iter().flatten() {
            let d = &i.bin_dir;
            if d.as_os_str().is_empty() || system.iter().any(|s| d == Path::new(s)) {
                continue;
            }
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    /// All known runtime ids with their availability.
    pub(crate) fn infos(&self) -> Vec<RuntimeInfo> {
        KNOWN_RUNTIMES
            .iter()
            .map(|id| {
                let family = Family::of(id).unwrap_or(Family::Provided);
                match self.interpreter(family) {
                    Ok(Some(i)) => RuntimeInfo {
                        id: id.to_string(),
                        available: true,
                        interpreter: Some(i.exe.clone()),
                        interpreter_version: Some(i.version.clone()),
                        reason: None,
                    },
                    Ok(None) => RuntimeInfo {
                        id: id.to_string(),
                        available: true,
                        interpreter: Some(PathBuf::from("/var/task/bootstrap")),
                        interpreter_version: None,
                        reason: None,
                    },
                    Err(reason) => RuntimeInfo {
                        id: id.to_string(),
                        available: false,
                        interpreter: None,
                        interpreter_version: None,
                        reason: Some(reason),
                    },
                }
            })
            .collect()
    }
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The first executable file called `name` in the directories of `path`.
pub(crate) fn which(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn probe_python(python: &Path) -> Result<Interpreter, String> {
    let out = Command::new(python)
        .args(["-I", "-c", PYTHON_PROBE])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} exited with {}: {}",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_python_probe(&String::from_utf8_lossy(&out.stdout))
}

/// Reads the output of [`PYTHON_PROBE`]: executable, base prefix, version.
pub(crate) fn parse_python_probe(stdout: &str) -> Result<Interpreter, String> {
    let mut lines = stdout.lines().map(str::trim);
    let exe = lines.next().filter(|l| !l.is_empty());
    let prefix = lines.next().filter(|l| !l.is_empty());
    let version = lines.next().filter(|l| !l.is_empty());
    let (Some(exe), Some(prefix), Some(version)) = (exe, prefix, version) else {
        return Err(format!("unexpected python probe output {stdout:?}"));
    };
    let exe = PathBuf::from(exe);
    if !exe.is_absolute() {
        return Err(format!("python reports a relative executable {exe:?}"));
    }
    let bin_dir = exe
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("python executable {exe:?} has no directory"))?;
    let real = std::fs::canonicalize(&exe).unwrap_or_else(|_| exe.clone());
    Ok(Interpreter {
        exe: real,
        prefix: PathBuf::from(prefix),
        bin_dir,
        version: version.to_string(),
    })
}

fn probe_node(node: &Path) -> Result<Interpreter, String> {
    let real = std::fs::canonicalize(node).map_err(|e| format!("{}: {e}", node.display()))?;
    let out = Command::new(&real)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", real.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --version exited with {}",
            real.display(),
            out.status
        ));
    }
    node_interpreter(real, String::from_utf8_lossy(&out.stdout).trim())
}

/// Describes a Node.js executable at `real` (symlinks resolved): its prefix is the parent of its
/// `bin` directory.
pub(crate) fn node_interpreter(real: PathBuf, version: &str) -> Result<Interpreter, String> {
    let bin_dir = real
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("node executable {real:?} has no directory"))?;
    let prefix = bin_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| bin_dir.clone());
    if !version.starts_with('v') {
        return Err(format!("unexpected node --version output {version:?}"));
    }
    Ok(Interpreter {
        exe: real,
        prefix,
        bin_dir,
        version: version.to_string(),
    })
}

/// Writes the embedded runtime clients to `<data_dir>/runtimes/{python,node}/`, read-only
/// (files 0444, directories 0555) so that they are readable by the jail's unprivileged user and
/// can never be changed from inside.
pub(crate) fn install_clients(data_dir: &Path) -> Result<(), EngineError> {
    install_client(data_dir, "python", "bootstrap.py", PYTHON_CLIENT)?;
    install_client(data_dir, "node", "bootstrap.mjs", NODE_CLIENT)?;
    install_client(data_dir, "node", "warmup.cjs", NODE_WARMUP)
}

/// Directory of one runtime client below `data_dir`.
pub(crate) fn client_dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("runtimes").join(name)
}

fn install_client(data_dir: &Path, name: &str, file: &str, text: &str) -> Result<(), EngineError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = client_dir(data_dir, name);
    std::fs::create_dir_all(&dir).map_err(|e| EngineError::CreateDir(dir.clone(), e))?;
    let target = dir.join(file);
    if std::fs::read(&target).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    let werr = |e| EngineError::WriteRuntimeClient(target.clone(), e);
    // The directory is read-only after installation; open it up just long enough to replace the
    // file atomically (a jail starting right now sees the old or the new file, never half of one).
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).map_err(werr)?;
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).map_err(werr)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444)).map_err(werr)?;
    std::fs::rename(&tmp, &target).map_err(werr)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).map_err(werr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interp(prefix: &str, bin: &str, exe: &str) -> Interpreter {
        Interpreter {
            exe: exe.into(),
            prefix: prefix.into(),
            bin_dir: bin.into(),
            version: "x".into(),
        }
    }

    #[test]
    fn parses_python_probe() {
        let i = parse_python_probe("/opt/py/bin/python3\n/opt/py\n3.11.7\n").unwrap();
        assert_eq!(i.prefix, PathBuf::from("/opt/py"));
        assert_eq!(i.bin_dir, PathBuf::from("/opt/py/bin"));
        assert_eq!(i.version, "3.11.7");
        assert!(parse_python_probe("/opt/py/bin/python3\n").is_err());
        assert!(parse_python_probe("python3\n/opt\n3.1.1\n").is_err());
    }

    #[test]
    fn node_prefix_is_parent_of_bin() {
        let i = node_interpreter("/opt/node/bin/node".into(), "v20.1.0").unwrap();
        assert_eq!(i.prefix, PathBuf::from("/opt/node"));
        assert_eq!(i.bin_dir, PathBuf::from("/opt/node/bin"));
        assert!(node_interpreter("/usr/bin/node".into(), "garbage").is_err());
    }

    #[test]
    fn families_of_runtime_ids() {
        assert_eq!(Family::of("python3.12"), Some(Family::Python));
        assert_eq!(Family::of("nodejs22.x"), Some(Family::Node));
        assert_eq!(Family::of("java21"), Some(Family::Java));
        assert_eq!(Family::of("provided.al2023"), Some(Family::Provided));
        assert_eq!(Family::of("python2.7"), None);
        assert_eq!(Family::of("ruby3.3"), None);
    }

    #[test]
    fn launch_argv_per_family() {
        let reg = RuntimeRegistry::from_parts(
            Ok(interp("/opt/py", "/opt/py/bin", "/opt/py/bin/python3.11")),
            Err("node not found on PATH".into()),
        );
        let py = reg.launch_for("python3.12").unwrap();
        assert_eq!(
            py.argv,
            ["/opt/py/bin/python3.11", "/var/runtime/bootstrap.py"]
        );
        assert_eq!(py.client_dir, Some("python"));
        let custom = reg.launch_for("provided.al2023").unwrap();
        assert_eq!(custom.argv, ["/var/task/bootstrap"]);
        assert_eq!(custom.client_dir, None);
        assert!(
            reg.launch_for("nodejs20.x")
                .unwrap_err()
                .contains("node not found")
        );
        assert!(reg.launch_for("java17").is_err());
        assert!(
            reg.launch_for("cobol")
                .unwrap_err()
                .contains("unknown runtime")
        );
    }

    #[test]
    fn ro_paths_and_path_dirs_skip_system_dirs() {
        let reg = RuntimeRegistry::from_parts(
            Ok(interp(
                "/root/.pyenv/versions/3.11.7",
                "/root/.pyenv/versions/3.11.7/bin",
                "/x",
            )),
            Ok(interp("/usr", "/usr/bin", "/usr/bin/node")),
        );
        assert_eq!(
            reg.ro_paths(),
            [PathBuf::from("/root/.pyenv/versions/3.11.7")]
        );
        assert_eq!(
            reg.path_dirs(),
            [PathBuf::from("/root/.pyenv/versions/3.11.7/bin")]
        );
        let infos = reg.infos();
        assert_eq!(infos.len(), KNOWN_RUNTIMES.len());
        let node = infos.iter().find(|i| i.id == "nodejs20.x").unwrap();
        assert!(node.available);
        assert_eq!(node.interpreter, Some(PathBuf::from("/usr/bin/node")));
        let java = infos.iter().find(|i| i.id == "java21").unwrap();
        assert!(!java.available && java.reason.is_some());
    }

    #[test]
    fn which_finds_executables_only() {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let path = std::ffi::OsString::from(format!("/nonexistent:{}", dir.path().display()));
        assert_eq!(which("tool", &path), None);
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(which("tool", &path), Some(exe));
    }

    #[test]
    fn installs_clients_read_only_and_idempotently() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        install_clients(dir.path()).unwrap();
        install_clients(dir.path()).unwrap();
        let py = client_dir(dir.path(), "python").join("bootstrap.py");
        assert_eq!(std::fs::read_to_string(&py).unwrap(), PYTHON_CLIENT);
        assert_eq!(py.metadata().unwrap().permissions().mode() & 0o777, 0o444);
        let nd = client_dir(dir.path(), "node");
        assert_eq!(nd.metadata().unwrap().permissions().mode() & 0o777, 0o555);
        assert!(nd.join("bootstrap.mjs").exists());
    }
}
