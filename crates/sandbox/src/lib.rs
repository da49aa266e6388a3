//! Execution-environment isolation for Updraft.
//!
//! This is the only crate in the workspace allowed to use `unsafe` and raw syscalls. It turns a
//! [`JailSpec`] into a running, isolated process tree:
//!
//! 1. the server calls [`spawn`], which re-executes the Updraft binary in jail mode
//!    (`updraft __jail`, entry point [`jail_main`]) instead of forking the multi-threaded server;
//! 2. the jail helper creates a cgroup with the function's memory and pids limits, unshares
//!    mount, pid, ipc, uts and network namespaces, brings up loopback, binds the environment's
//!    Runtime API listener at `127.0.0.1:9001` *inside* the new network namespace and hands the
//!    listening socket back to the server over a unix socket (`SCM_RIGHTS`), so only that
//!    environment can reach its own Runtime API;
//! 3. its child, pid 1 of the new pid namespace, joins the cgroup, assembles a root from
//!    read-only bind mounts, a size-limited disk-backed `/tmp`, a fresh `/proc` and a minimal `/dev`,
//!    pivots into it, sets rlimits, `no_new_privs`, an unprivileged uid without capabilities
//!    and a seccomp filter, then `exec`s the runtime.
//!
//! The steps are written down in order in `docs/jail.md`. Where the host cannot do a step, the
//! step is skipped with a loud warning and reported by [`doctor`].
//!
//! Module map:
//! - [`jail`](crate::Jail): the server side ([`spawn`], [`Jail`]);
//! - `helper`: the jail helper and pid 1, everything that runs in the re-executed binary;
//! - `mounts`: the root filesystem as a plan of mount operations (pure) and its executor;
//! - `cgroup`: cgroup v1 / v2 discovery, limits, membership, kill and statistics;
//! - `seccomp`, `seccomp_allow`: the syscall allow and deny lists as reviewed data, compiled
//!   to BPF;
//! - `protocol`: messages between server and helper over the control socket;
//! - `doctor`: probes of what this host can do;
//! - `tmpdisk`: the disk-backed `/tmp` (an ext4 image per environment on a loop device);
//! - `sys`: thin wrappers around the raw syscalls nothing else wraps.

mod cgroup;
mod doctor;
mod helper;
mod jail;
mod mounts;
mod protocol;
mod seccomp;
mod seccomp_allow;
mod sys;
mod tmpdisk;

use std::fmt;
use std::io;
use std::path::{Component, PathBuf};
use std::time::Duration;

pub use doctor::{Check, IsolationReport, doctor};
pub use helper::jail_main;
pub use jail::{Jail, SETUP_TIMEOUT, prewarm_supported, spawn};
pub use seccomp::{allowed_syscalls, denied_syscalls};
pub use tmpdisk::{DEFAULT_SCRATCH_DIR, scratch_dir, set_scratch_dir};

/// Everything needed to start one execution environment.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JailSpec {
    /// Unique id of the environment; names its cgroup and hostname.
    pub id: String,
    /// Extracted function package, mounted read-only at `/var/task`.
    pub code_dir: PathBuf,
    /// Updraft's runtime client files, mounted read-only at `/var/runtime`.
    pub runtime_dir: Option<PathBuf>,
    /// Layers, mounted read-only at `/opt` (may be absent).
    pub opt_dir: Option<PathBuf>,
    /// Extra host paths made visible read-only at the same path (interpreter prefixes etc.).
    pub ro_paths: Vec<PathBuf>,
    /// Size of the writable `/tmp` in MiB (a disk of its own, see [`set_scratch_dir`]).
    pub tmp_mb: u64,
    /// Memory limit in MiB (cgroup).
    pub memory_mb: u64,
    /// Process/thread limit (cgroup pids and RLIMIT_NPROC).
    pub pids_max: u64,
    /// Adds Lambda's hard CPU ceiling (MemorySize / 1,769 of a core) to the CPU weight every
    /// environment gets in proportion to its memory.
    #[serde(default)]
    pub cpu_ceiling: bool,
    /// Open file limit (RLIMIT_NOFILE).
    pub nofile: u64,
    /// Absolute program path inside the jail, followed by its arguments.
    pub argv: Vec<String>,
    /// Complete environment of the runtime process.
    pub env: Vec<(String, String)>,
    /// Working directory inside the jail (normally `/var/task`).
    pub cwd: String,
    /// Whether the runtime starts now or after an [`Assignment`] (a pre-warmed environment).
    #[serde(default)]
    pub start: Start,
}

/// When an environment's runtime starts.
///
/// A pre-warmed environment ([`Start::Deferred`] or [`Start::Template`]) is built completely
/// (namespaces, cgroup, root, `/tmp`, listener, credentials, seccomp) before any function is
/// known, with an empty directory at `/var/task`; [`Jail::assign`] later gives it to exactly one
/// function: the helper mounts that function's code read-only on `/var/task`, sets its memory
/// limit and passes argv, environment and working directory on the *assignment pipe*. The
/// environment is that function's for the rest of its life, so nothing is ever shared between
/// functions.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// Exec `argv` as soon as the jail is built.
    #[default]
    Now,
    /// Build the jail, then wait: pid 1 reads argv, environment and working directory from the
    /// assignment and execs them (`argv` of the spec is ignored). For runtimes that are the
    /// function's own program (`provided.*`).
    Deferred,
    /// Exec `argv` at once with the assignment pipe's read end on fd 3 (and
    /// [`ASSIGNMENT_FD_VAR`] set): a runtime client that loads its interpreter and itself, then
    /// reads the assignment (a JSON object with `argv`, `env` as `[name, value]` pairs and
    /// `cwd`), sets the function's environment, changes directory and only then loads the function.
    Template,
}

/// Environment variable that tells a runtime template where its assignment arrives.
pub const ASSIGNMENT_FD_VAR: &str = "_UPDRAFT_ASSIGNMENT_FD";

/// The function a pre-warmed environment is given (see [`Start`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Assignment {
    /// Extracted function package, mounted read-only at `/var/task`.
    pub code_dir: PathBuf,
    /// Memory limit in MiB (cgroup); the CPU weight follows it.
    pub memory_mb: u64,
    /// Adds Lambda's hard CPU ceiling (see [`JailSpec::cpu_ceiling`]).
    #[serde(default)]
    pub cpu_ceiling: bool,
    /// Program and arguments ([`Start::Deferred`]); a template already runs its program.
    pub argv: Vec<String>,
    /// Complete environment of the runtime.
    pub env: Vec<(String, String)>,
    /// Working directory inside the jail.
    pub cwd: String,
    /// The function's layers, mounted read-only at `/opt` (over the pre-warmed jail's empty one).
    #[serde(default)]
    pub opt_dir: Option<PathBuf>,
}

impl Assignment {
    /// The same checks as [`JailSpec::validate`] for the parts an assignment carries.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let bad = |m: String| Err(SandboxError::InvalidSpec(m));
        for (what, p) in std::iter::once(("code_dir", &self.code_dir))
            .chain(self.opt_dir.iter().map(|p| ("opt_dir", p)))
        {
            if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
                return bad(format!(
                    "{what} {} is not a plain absolute path",
                    p.display()
                ));
            }
        }
        if self.memory_mb == 0 {
            return bad("memory_mb must be greater than zero".into());
        }
        check_program(&self.argv, &self.env, &self.cwd)
    }
}

/// What execve will be given: an absolute program path (when there is one), an absolute working
/// directory, no NUL bytes (they become C strings) and usable variable names.
fn check_program(argv: &[String], env: &[(String, String)], cwd: &str) -> Result<(), SandboxError> {
    let bad = |m: String| Err(SandboxError::InvalidSpec(m));
    if let Some(p) = argv.first()
        && !p.starts_with('/')
    {
        return bad(format!("argv[0] {p:?} is not an absolute path"));
    }
    if !cwd.starts_with('/') {
        return bad(format!("cwd {cwd:?} is not an absolute path"));
    }
    let strings = argv
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(cwd))
        .chain(env.iter().map(|(_, v)| v.as_str()));
    if strings.into_iter().any(|s| s.contains('\0')) {
        return bad("argv, env or cwd contains a NUL byte".into());
    }
    for (k, _) in env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return bad(format!("invalid environment variable name {k:?}"));
        }
    }
    Ok(())
}

/// Longest accepted environment id: it becomes a cgroup directory name and the hostname, and
/// hostnames are limited to 64 bytes.
pub const MAX_ID_LEN: usize = 64;

impl JailSpec {
    /// Checks everything that can be checked without touching the host: the id is usable as a
    /// directory name and hostname, paths are absolute, limits are non-zero, strings carry no
    /// NUL bytes (they become C strings).
    pub fn validate(&self) -> Result<(), SandboxError> {
        let bad = |m: String| Err(SandboxError::InvalidSpec(m));
        if !valid_id(&self.id) {
            return bad(format!(
                "id {:?} must be 1 to {MAX_ID_LEN} characters of [A-Za-z0-9._-] and not start with a dot",
                self.id
            ));
        }
        let mut host_paths = vec![("code_dir", &self.code_dir)];
        if let Some(p) = &self.runtime_dir {
            host_paths.push(("runtime_dir", p));
        }
        if let Some(p) = &self.opt_dir {
            host_paths.push(("opt_dir", p));
        }
        for p in &self.ro_paths {
            host_paths.push(("ro_paths", p));
        }
        for (what, p) in host_paths {
            if !p.is_absolute() {
                return bad(format!("{what} {} is not an absolute path", p.display()));
            }
            if p.components().any(|c| c == Component::ParentDir) {
                return bad(format!("{what} {} contains '..'", p.display()));
            }
            if p.as_os_str().as_encoded_bytes().contains(&0) {
                return bad(format!("{what} contains a NUL byte"));
            }
        }
        for (what, v) in [
            ("tmp_mb", self.tmp_mb),
            ("memory_mb", self.memory_mb),
            ("pids_max", self.pids_max),
            ("nofile", self.nofile),
        ] {
            if v == 0 {
                return bad(format!("{what} must be greater than zero"));
            }
        }
        if self.argv.is_empty() && self.start != Start::Deferred {
            return bad("argv is empty".into());
        }
        check_program(&self.argv, &self.env, &self.cwd)
    }

    /// The hostname the environment sees (the id, which [`JailSpec::validate`] keeps short).
    pub fn hostname(&self) -> &str {
        &self.id
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Raises the calling process's soft limit of open files to its hard limit and returns the new
/// limit. The server holds about seven descriptors per environment (Runtime API listener, control
/// socket, output pipes, pidfds), so the common default of 1,024 would cap a node at about a
/// hundred and forty environments.
pub fn raise_open_files_limit() -> io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard)
}

/// Removes cgroup directories of environments whose server died without cleaning up: empty
/// ones created at least `min_age` ago. [`spawn`] does this once per process with a minute's
/// margin; returns how many were removed.
pub fn remove_stale_cgroups(min_age: Duration) -> usize {
    cgroup::remove_stale(min_age)
}

/// How an environment ended: the exit code of its runtime, or the signal that killed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code when the runtime exited normally.
    pub code: Option<i32>,
    /// Signal number when the runtime (or the whole environment) was killed.
    pub signal: Option<i32>,
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit status {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => f.write_str("unknown exit"),
        }
    }
}

/// The setup steps of a jail, in the order they run. A failed step is reported back to
/// [`spawn`] as [`SandboxError::Setup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Reading the spec from the control socket.
    ReadSpec,
    /// Entering a user namespace (only when not running as root).
    UserNamespace,
    /// Creating the cgroup, writing limits, joining it.
    Cgroup,
    /// Unsharing mount, pid, ipc, uts and network namespaces.
    Unshare,
    /// Bringing up `lo` in the new network namespace.
    Loopback,
    /// Binding the Runtime API listener and sending it to the server.
    Listener,
    /// Forking pid 1 of the new pid namespace.
    Fork,
    /// Setting the hostname.
    Hostname,
    /// Assembling the root filesystem.
    Mounts,
    /// Switching to the new root.
    PivotRoot,
    /// Setting resource limits.
    Rlimits,
    /// Moving into a process group of its own.
    ProcessGroup,
    /// Setting `no_new_privs`.
    NoNewPrivs,
    /// Dropping capabilities (bounding, ambient, effective, permitted, inheritable).
    Capabilities,
    /// Switching to the unprivileged uid and gid.
    Credentials,
    /// Changing to the working directory.
    Chdir,
    /// Installing the seccomp filter.
    Seccomp,
    /// Executing the runtime.
    Exec,
    /// Giving a pre-warmed environment to a function (mounting its code, setting its limits).
    Assign,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Step::ReadSpec => "read-spec",
            Step::UserNamespace => "user-namespace",
            Step::Cgroup => "cgroup",
            Step::Unshare => "unshare",
            Step::Loopback => "loopback",
            Step::Listener => "listener",
            Step::Fork => "fork",
            Step::Hostname => "hostname",
            Step::Mounts => "mounts",
            Step::PivotRoot => "pivot-root",
            Step::Rlimits => "rlimits",
            Step::ProcessGroup => "process-group",
            Step::NoNewPrivs => "no-new-privs",
            Step::Capabilities => "capabilities",
            Step::Credentials => "credentials",
            Step::Chdir => "chdir",
            Step::Seccomp => "seccomp",
            Step::Exec => "exec",
            Step::Assign => "assign",
        };
        f.write_str(s)
    }
}

/// Errors of [`spawn`], one variant per failed step on the server side; failures inside the
/// jail arrive as [`SandboxError::Setup`] naming the [`Step`].
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec is unusable (see [`JailSpec::validate`]).
    #[error("invalid jail spec: {0}")]
    InvalidSpec(String),
    /// The unix socket pair to the helper could not be created.
    #[error("creating the control socket: {0}")]
    ControlSocket(#[source] io::Error),
    /// The stdout/stderr pipes could not be created.
    #[error("creating the output pipes: {0}")]
    OutputPipes(#[source] io::Error),
    /// The helper binary could not be started.
    #[error("starting jail helper {}: {source}", exe.display())]
    SpawnHelper {
        /// The helper binary.
        exe: PathBuf,
        /// Why it did not start.
        source: io::Error,
    },
    /// The spec could not be sent to the helper.
    #[error("sending the spec to the jail helper: {0}")]
    SendSpec(#[source] io::Error),
    /// Receiving from the helper failed.
    #[error("receiving from the jail helper: {0}")]
    Control(#[source] io::Error),
    /// The helper sent something that does not follow the protocol.
    #[error("unexpected message from the jail helper: {0}")]
    Protocol(String),
    /// The helper went away before the runtime was started.
    #[error("jail helper exited during setup ({0})")]
    HelperExited(ExitInfo),
    /// The helper did not report success or failure in time.
    #[error("jail setup did not finish within {0:?}")]
    SetupTimeout(Duration),
    /// A setup step inside the jail failed.
    #[error("jail setup failed at step {step}: {message}")]
    Setup {
        /// The step that failed.
        step: Step,
        /// What went wrong.
        message: String,
    },
}

/// Uid the runtime runs as; Lambda's `sbx_user1051`.
pub const SANDBOX_UID: u32 = 993;
/// Gid the runtime runs as.
pub const SANDBOX_GID: u32 = 990;
/// Name of the sandbox user in the jail's `/etc/passwd`.
pub const SANDBOX_USER: &str = "sbx_user1051";
/// Address of the Runtime API inside every environment.
pub const RUNTIME_API_ADDR: &str = "127.0.0.1:9001";
/// Name of the abstract Unix socket on which the Runtime API is also served inside every
/// environment. Abstract names belong to a network namespace, so each environment has its own
/// and no other environment (nor the host) can reach it; there is no file to mount or protect.
/// The same API as [`RUNTIME_API_ADDR`] without TCP's per-message cost, for runtime clients
/// that know of it (Updraft's own); the official clients keep speaking TCP. The socket's
/// address is this name padded, see [`abstract_socket_addr`].
pub const RUNTIME_API_SOCKET_NAME: &str = "updraft-runtime-api";

/// Bytes of an abstract name: `sun_path` (108 bytes) less its leading NUL.
const ABSTRACT_NAME_LEN: usize = 107;

/// The address of the abstract Unix socket `name`, padded with NULs to the whole of `sun_path`.
/// The kernel compares abstract names over the address length the caller gives, and Node.js's
/// libuv (Node.js 20) always gives the whole `sockaddr_un`, so a socket that Node.js can reach
/// must be bound with the padded name; other clients connect to it with the padded name too.
pub fn abstract_socket_addr(name: &str) -> io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    if name.len() > ABSTRACT_NAME_LEN || name.as_bytes().contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "abstract socket name {name:?} is not {ABSTRACT_NAME_LEN} bytes or less without NUL"
            ),
        ));
    }
    let mut padded = [0u8; ABSTRACT_NAME_LEN];
    padded[..name.len()].copy_from_slice(name.as_bytes());
    std::os::unix::net::SocketAddr::from_abstract_name(padded)
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::{JailSpec, Start};
    use std::path::PathBuf;

    pub(crate) fn spec() -> JailSpec {
        JailSpec {
            id: "env-1".into(),
            code_dir: PathBuf::from("/data/code/abc"),
            runtime_dir: Some(PathBuf::from("/data/runtimes/python")),
            opt_dir: None,
            ro_paths: vec![],
            tmp_mb: 512,
            memory_mb: 128,
            pids_max: 1024,
            cpu_ceiling: false,
            nofile: 1024,
            argv: vec!["/usr/bin/python3".into(), "-u".into()],
            env: vec![("PATH".into(), "/usr/bin".into())],
            cwd: "/var/task".into(),
            start: Start::Now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::spec;

    #[test]
    fn abstract_names_are_padded_to_the_whole_sun_path() {
        use std::os::linux::net::SocketAddrExt;
        let addr = abstract_socket_addr("abc").unwrap();
        let name = addr.as_abstract_name().unwrap();
        assert_eq!(name.len(), 107);
        assert_eq!(&name[..3], b"abc");
        assert!(name[3..].iter().all(|&b| b == 0));
        assert!(abstract_socket_addr(&"x".repeat(107)).is_ok());
        assert!(abstract_socket_addr(&"x".repeat(108)).is_err());
        assert!(abstract_socket_addr("a\0b").is_err());
    }

    #[test]
    fn valid_spec_passes() {
        spec().validate().unwrap();
    }

    #[test]
    fn rejects_bad_ids() {
        for id in ["", ".", "..", ".hidden", "a/b", "a b", &"x".repeat(65), "é"] {
            let mut s = spec();
            s.id = id.to_string();
            assert!(
                matches!(s.validate(), Err(SandboxError::InvalidSpec(_))),
                "{id:?} accepted"
            );
        }
        let mut s = spec();
        s.id = "x".repeat(64);
        s.validate().unwrap();
    }

    #[test]
    fn rejects_relative_and_dotdot_paths() {
        let mut s = spec();
        s.code_dir = "code".into();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.ro_paths = vec!["/usr/../root".into()];
        assert!(s.validate().is_err());
    }

    #[test]
    fn rejects_zero_limits_and_bad_argv() {
        let mut s = spec();
        s.memory_mb = 0;
        assert!(s.validate().is_err());
        let mut s = spec();
        s.argv.clear();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.argv[0] = "python3".into();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.env.push(("A=B".into(), "x".into()));
        assert!(s.validate().is_err());
        let mut s = spec();
        s.argv.push("a\0b".into());
        assert!(s.validate().is_err());
    }

    #[test]
    fn spec_round_trips_through_json() {
        let s = spec();
        let text = serde_json::to_string(&s).unwrap();
        let back: JailSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(back.id, s.id);
        assert_eq!(back.env, s.env);
        assert_eq!(back.runtime_dir, s.runtime_dir);
    }

    #[test]
    fn error_names_the_step() {
        let e = SandboxError::Setup {
            step: Step::PivotRoot,
            message: "EINVAL".into(),
        };
        assert_eq!(
            e.to_string(),
            "jail setup failed at step pivot-root: EINVAL"
        );
        let json = serde_json::to_string(&Step::NoNewPrivs).unwrap();
        assert_eq!(json, "\"no-new-privs\"");
    }
}
