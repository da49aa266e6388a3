//! The server side of an execution environment: [`spawn`] and the [`Jail`] handle.
//!
//! The server never forks itself into a jail: it starts the helper binary with a fresh exec
//! (`helper_exe __jail`), passing the helper's end of a unix socket pair as fd 3 and the write
//! ends of the runtime's stdout/stderr pipes as fds 1 and 2. Every descriptor the server opens is
//! close-on-exec, so nothing else reaches the helper.
//!
//! A [`Jail`] owns the helper process; dropping it kills the environment, reaps the helper and
//! removes the cgroup directories. Calls on a dead environment are harmless.

use std::collections::HashSet;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socketpair, sockopt};
use nix::sys::time::TimeVal;

use crate::cgroup::{EnvCgroup, Freezer};
use crate::helper::CONTROL_FD;
use crate::protocol::{self, HelperMsg, MAX_MESSAGE, ServerMsg, SetupRequest};
use crate::{Assignment, ExitInfo, JailSpec, SandboxError, Start, Step, sys};

/// How long the helper may take from start to exec of the runtime.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Empty environment cgroups (and `/tmp` images) older than this are leftovers (setup takes
/// well under a second).
const STALE_CGROUP_AGE: Duration = Duration::from_secs(60);

/// A running environment.
pub struct Jail {
    id: String,
    /// Runtime API listener inside the environment's network namespace (taken once).
    listener: Option<TcpListener>,
    /// The same API on the environment's abstract Unix socket (taken once).
    unix_listener: Option<UnixListener>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// Our end of the control socket; closing it tells the helper to kill the environment.
    control: Option<OwnedFd>,
    helper_pid: u32,
    /// Names the environment's pid 1 (sent by the helper); killing it ends the pid namespace
    /// while the helper survives to reap it.
    pid1_pidfd: Option<OwnedFd>,
    /// Signals the helper without the risk of hitting a recycled pid after it was reaped.
    helper_pidfd: Option<OwnedFd>,
    /// Fallback guard for kernels without pidfds: set once the helper is reaped.
    reaped: AtomicBool,
    /// `wait` holds this while blocked; `kill` never takes it, so both can run concurrently.
    helper: Mutex<HelperState>,
    cgroup: EnvCgroup,
    /// Freezes the environment between invocations; `None` where the host has no freezer.
    freezer: Option<Freezer>,
    /// One request and its answer at a time on the control socket after setup.
    control_lock: Mutex<()>,
    warnings: Vec<String>,
    /// A pre-warmed environment that has not been given to a function yet.
    unassigned: bool,
}

struct HelperState {
    child: Child,
    exit: Option<ExitInfo>,
}

impl std::fmt::Debug for Jail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jail")
            .field("id", &self.id)
            .field("helper_pid", &self.helper_pid)
            .field("cgroups", &self.cgroup_paths())
            .finish_non_exhaustive()
    }
}

impl Jail {
    /// The listener bound at 127.0.0.1:9001 inside the environment's own network namespace
    /// (received from the jail helper over SCM_RIGHTS). Taken once; blocking mode.
    pub fn take_runtime_api_listener(&mut self) -> Option<TcpListener> {
        self.listener.take()
    }

    /// The listener on the abstract Unix socket
    /// [`RUNTIME_API_SOCKET_NAME`](crate::RUNTIME_API_SOCKET_NAME) inside the environment's own
    /// network namespace. Taken once; blocking mode.
    pub fn take_runtime_api_unix_listener(&mut self) -> Option<UnixListener> {
        self.unix_listener.take()
    }

    /// Read end of the runtime's stdout pipe (taken once).
    pub fn take_stdout(&mut self) -> Option<OwnedFd> {
        self.stdout.take()
    }

    /// Read end of the runtime's stderr pipe (taken once).
    pub fn take_stderr(&mut self) -> Option<OwnedFd> {
        self.stderr.take()
    }

    /// The environment id of the spec.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Host pid of the jail helper (the parent of the environment's pid 1).
    pub fn helper_pid(&self) -> u32 {
        self.helper_pid
    }

    /// The environment's cgroup directories (empty when cgroups are unavailable).
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.cgroup.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// Isolation steps that were degraded for this environment (already logged once per
    /// process as warnings).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Kills every process of the environment: cgroup-wide, and pid 1, whose death ends the
    /// whole pid namespace. The helper then reaps pid 1 and exits the same way, which is what
    /// [`Jail::wait`] reports. Idempotent, harmless when dead.
    pub fn kill(&self) {
        self.cgroup.kill_all();
        if let Some(fd) = &self.pid1_pidfd {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            return;
        }
        // Before setup finished (or without pidfds) pid 1 is only reachable through the
        // helper, whose death takes pid 1 along (parent-death signal).
        match &self.helper_pidfd {
            Some(fd) => {
                let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            }
            None => {
                if !self.reaped.load(Ordering::SeqCst) {
                    // SAFETY: kill(2) only sends a signal; the pid is our unreaped child, so it
                    // cannot have been recycled.
                    unsafe { libc::kill(self.helper_pid as libc::pid_t, libc::SIGKILL) };
                }
            }
        }
    }

    /// A TCP connection to `127.0.0.1:port` inside the environment's own network namespace,
    /// made by the helper (which lives there) and passed back: how the server reaches a
    /// listener of the environment, such as a Telemetry API subscriber. Blocking (briefly).
    pub fn connect_in_env(&self, port: u16) -> Result<std::net::TcpStream, SandboxError> {
        let _one = self
            .control_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let control = self.control_clone()?;
        let payload = serde_json::to_vec(&ServerMsg::Connect { port })
            .map_err(|e| SandboxError::InvalidSpec(e.to_string()))?;
        protocol::send(control.as_fd(), &payload, None).map_err(SandboxError::SendSpec)?;
        let (msg, fd) = recv_before(self, &control, Instant::now() + Duration::from_secs(5))?;
        match (msg, fd) {
            (HelperMsg::Connected, Some(fd)) => Ok(std::net::TcpStream::from(fd)),
            (HelperMsg::NotConnected { message }, _) => Err(SandboxError::Protocol(format!(
                "connecting to port {port} in the environment: {message}"
            ))),
            (other, _) => Err(SandboxError::Protocol(format!(
                "{other:?} in answer to a connection request"
            ))),
        }
    }

    /// Asks the runtime (pid 1 of the environment) to stop with SIGTERM, the first step of
    /// Lambda's shutdown; [`Jail::kill`] follows after the grace period. Harmless when dead.
    pub fn terminate(&self) {
        if let Some(fd) = &self.pid1_pidfd {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGTERM);
        }
    }

    /// Blocks until the environment has exited; returns how (the runtime's exit code, or the
    /// signal that killed it). Callable from a blocking thread while another thread calls
    /// [`Jail::kill`]; later calls return the same result.
    pub fn wait(&self) -> ExitInfo {
        let mut st = self.helper.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = &st.exit {
            return e.clone();
        }
        let info = match st.child.wait() {
            Ok(s) => ExitInfo {
                code: s.code(),
                signal: s.signal(),
            },
            Err(_) => ExitInfo {
                code: None,
                signal: None,
            },
        };
        self.reaped.store(true, Ordering::SeqCst);
        st.exit = Some(info.clone());
        info
    }

    /// Non-blocking [`Jail::wait`]: `Some` once the environment has exited.
    pub fn try_wait(&self) -> Option<ExitInfo> {
        let mut st = self.helper.try_lock().ok()?;
        if let Some(e) = &st.exit {
            return Some(e.clone());
        }
        let s = st.child.try_wait().ok()??;
        let info = ExitInfo {
            code: s.code(),
            signal: s.signal(),
        };
        self.reaped.store(true, Ordering::SeqCst);
        st.exit = Some(info.clone());
        Some(info)
    }

    /// Peak memory of the environment's cgroup in bytes (memory.max_usage_in_bytes v1 /
    /// memory.peak v2); `None` without a memory cgroup.
    pub fn memory_peak_bytes(&self) -> Option<u64> {
        self.cgroup.memory_peak()
    }

    /// Memory the environment uses right now in bytes (memory.usage_in_bytes v1 /
    /// memory.current v2); `None` without a memory cgroup.
    pub fn memory_current_bytes(&self) -> Option<u64> {
        self.cgroup.memory_current()
    }

    /// Whether the cgroup hit its memory limit and the OOM killer acted.
    pub fn oom_killed(&self) -> bool {
        self.cgroup.oom_killed()
    }

    /// Whether the environment can be frozen ([`Jail::freeze`] does something).
    pub fn can_freeze(&self) -> bool {
        self.freezer.is_some()
    }

    /// Freezes every process of the environment (cgroup v1 freezer / v2 `cgroup.freeze`): no
    /// code of it runs until [`Jail::thaw`]. One `write(2)`; the kernel finishes the freeze
    /// asynchronously. Killing a frozen environment works ([`Jail::kill`] thaws after
    /// signalling).
    pub fn freeze(&self) -> io::Result<()> {
        match &self.freezer {
            Some(f) => f.freeze(),
            None => Ok(()),
        }
    }

    /// Lets a frozen environment run again; harmless when it is not frozen.
    pub fn thaw(&self) -> io::Result<()> {
        match &self.freezer {
            Some(f) => f.thaw(),
            None => Ok(()),
        }
    }

    /// CPU time used by every process of the environment so far, in nanoseconds; `None`
    /// without CPU accounting.
    pub fn cpu_usage_ns(&self) -> Option<u64> {
        self.cgroup.cpu_usage_ns()
    }

    /// Whether this is a pre-warmed environment still waiting for [`Jail::assign`].
    pub fn is_unassigned(&self) -> bool {
        self.unassigned
    }

    /// Gives a pre-warmed environment (spawned with [`Start::Deferred`] or [`Start::Template`])
    /// to one function: sets its memory limit, mounts `code_dir` read-only, `nosuid` and
    /// `nodev` on its `/var/task` (and `opt_dir` the same way on its `/opt`), and hands over
    /// argv, environment and working directory. Only
    /// once per environment; on any error the environment is unusable (drop it). Blocking.
    pub fn assign(&mut self, a: &Assignment) -> Result<(), SandboxError> {
        a.validate()?;
        if !std::mem::replace(&mut self.unassigned, false) {
            return Err(SandboxError::Protocol(
                "not a pre-warmed environment, or assigned already".into(),
            ));
        }
        let step = |e: io::Error| SandboxError::Setup {
            step: Step::Assign,
            message: e.to_string(),
        };
        // A pre-warmed environment may have been frozen while it waited.
        self.thaw().map_err(step)?;
        self.cgroup
            .set_memory_limit(a.memory_mb.saturating_mul(1 << 20))
            .map_err(step)?;
        self.cgroup
            .set_cpu(a.memory_mb, a.cpu_ceiling)
            .map_err(step)?;
        // The mount is cloned here, in the host's mount namespace, where the code directory is
        // visible; the helper, inside the environment's namespace, only attaches it.
        let clone = |dir: &std::path::Path| {
            sys::clone_tree_read_only(dir).map_err(|e| SandboxError::Setup {
                step: Step::Assign,
                message: format!("cloning {}: {e}", dir.display()),
            })
        };
        let tree = clone(&a.code_dir)?;
        let layers = a.opt_dir.as_deref().map(clone).transpose()?;
        let msg = ServerMsg::Assign {
            memory_mb: a.memory_mb,
            argv: a.argv.clone(),
            env: a.env.clone(),
            cwd: a.cwd.clone(),
            opt: layers.is_some(),
        };
        let payload =
            serde_json::to_vec(&msg).map_err(|e| SandboxError::InvalidSpec(e.to_string()))?;
        let control = self.control_clone()?;
        let fds: Vec<_> = std::iter::once(tree.as_raw_fd())
            .chain(layers.as_ref().map(|l| l.as_raw_fd()))
            .collect();
        protocol::send_fds(control.as_fd(), &payload, &fds).map_err(SandboxError::SendSpec)?;
        drop(tree);
        drop(layers);
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let (msg, _fd) = recv_before(self, &control, deadline)?;
        match msg {
            HelperMsg::Assigned { warnings } => {
                note(self, warnings);
                Ok(())
            }
            HelperMsg::Failed { step, message } => Err(SandboxError::Setup { step, message }),
            other => Err(SandboxError::Protocol(format!(
                "{other:?} in answer to an assignment"
            ))),
        }
    }

    fn control_clone(&self) -> Result<OwnedFd, SandboxError> {
        let Some(control) = self.control.as_ref() else {
            return Err(SandboxError::Protocol("control socket missing".into()));
        };
        control
            .as_fd()
            .try_clone_to_owned()
            .map_err(SandboxError::Control)
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        self.control.take();
        self.kill();
        self.wait();
        self.cgroup.remove();
    }
}

/// Whether this host can pre-warm environments (see [`Start`]): the server runs as root (the
/// helper must attach a mount made in the host's namespace) and the kernel has the new mount
/// API (`open_tree`, `mount_setattr`, `move_mount`: Linux 5.12). Probed once.
pub fn prewarm_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        nix::unistd::Uid::effective().is_root() && sys::clone_tree_read_only(Path::new("/")).is_ok()
    })
}

/// Logs each distinct degradation once per process, however many environments hit it.
fn warn_once(warnings: &[String]) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    let seen = seen.get_or_insert_with(HashSet::new);
    for w in warnings {
        if seen.insert(w.clone()) {
            tracing::warn!("sandbox degraded: {w}");
        }
    }
}

fn io_err(e: nix::errno::Errno) -> io::Error {
    io::Error::from(e)
}

/// Spawns `helper_exe __jail` (the Updraft binary itself), passes the spec, waits until the
/// Runtime API listener arrived and the runtime was exec'd (or an error came back), and returns
/// the [`Jail`]. Blocking: call it from a blocking thread.
pub fn spawn(spec: &JailSpec, helper_exe: &Path) -> Result<Jail, SandboxError> {
    spec.validate()?;
    static CLEANUP: Once = Once::new();
    CLEANUP.call_once(|| {
        warn_once(&crate::cgroup::join_server_group());
        let n = crate::remove_stale_cgroups(STALE_CGROUP_AGE);
        if n > 0 {
            tracing::info!(
                removed = n,
                "removed cgroups left behind by an earlier server"
            );
        }
    });
    let scratch_dir = crate::tmpdisk::scratch_dir();
    static CLEANUP_SCRATCH: Once = Once::new();
    CLEANUP_SCRATCH.call_once(|| {
        let n = crate::tmpdisk::remove_stale(&scratch_dir, STALE_CGROUP_AGE);
        if n > 0 {
            tracing::info!(
                removed = n,
                "removed /tmp images left behind by an earlier server"
            );
        }
    });
    let request = SetupRequest {
        spec: spec.clone(),
        scratch_dir,
    };
    let payload =
        serde_json::to_vec(&request).map_err(|e| SandboxError::InvalidSpec(e.to_string()))?;
    if payload.len() > MAX_MESSAGE {
        return Err(SandboxError::InvalidSpec(format!(
            "spec is {} bytes, more than {MAX_MESSAGE}",
            payload.len()
        )));
    }

    let (control, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| SandboxError::ControlSocket(io_err(e)))?;
    // Well above 0-2 and 3, so rewiring stdio and fd 3 in the child cannot clobber it.
    let theirs = {
        let low = theirs;
        sys::dup_cloexec_min(low.as_fd(), 10).map_err(SandboxError::ControlSocket)?
    };
    let (out_r, out_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SandboxError::OutputPipes(io_err(e)))?;
    let (err_r, err_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SandboxError::OutputPipes(io_err(e)))?;

    let theirs_raw = theirs.as_raw_fd();
    let mut cmd = Command::new(helper_exe);
    cmd.arg("__jail")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        // Terminal signals aimed at the server must not hit environments; the server decides
        // their lifetime.
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec; dup2 and close_range are
    // plain system calls (async-signal-safe) and nothing here allocates. dup2 clears
    // close-on-exec on the new fd 3 only; close_range marks everything above it close-on-exec,
    // which also covers descriptors the server itself inherited without the flag.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(theirs_raw, CONTROL_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::syscall(
                libc::SYS_close_range,
                (CONTROL_FD + 1) as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| SandboxError::SpawnHelper {
        exe: helper_exe.to_path_buf(),
        source,
    })?;
    // Closes our copies of the pipes' write ends and of the helper's socket end, so end of
    // stream arrives when the helper side is gone.
    drop(cmd);
    drop(theirs);

    let helper_pid = child.id();
    let mut jail = Jail {
        id: spec.id.clone(),
        listener: None,
        unix_listener: None,
        stdout: Some(out_r),
        stderr: Some(err_r),
        control: Some(control),
        helper_pid,
        pid1_pidfd: None,
        helper_pidfd: sys::pidfd_open(helper_pid as libc::pid_t).ok(),
        reaped: AtomicBool::new(false),
        helper: Mutex::new(HelperState { child, exit: None }),
        cgroup: EnvCgroup::default(),
        freezer: None,
        control_lock: Mutex::new(()),
        warnings: Vec::new(),
        unassigned: spec.start != Start::Now,
    };
    // From here on, returning an error drops `jail`, which kills and reaps the helper and
    // removes whatever cgroup it reported.
    handshake(&mut jail, &payload)?;
    Ok(jail)
}

/// A helper that died early shows up as a broken or reset socket, not as end of stream.
fn gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET))
}

/// Receives the helper's next message, waiting until `deadline` at most.
fn recv_before(
    jail: &Jail,
    control: &OwnedFd,
    deadline: Instant,
) -> Result<(HelperMsg, Option<OwnedFd>), SandboxError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(SandboxError::SetupTimeout(SETUP_TIMEOUT));
    }
    let tv = TimeVal::new(
        left.as_secs() as libc::time_t,
        left.subsec_micros().max(1) as libc::suseconds_t,
    );
    setsockopt(control, sockopt::ReceiveTimeout, &tv)
        .map_err(|e| SandboxError::Control(io_err(e)))?;
    let got = match protocol::recv(control.as_fd()) {
        Ok(g) => g,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            return Err(SandboxError::SetupTimeout(SETUP_TIMEOUT));
        }
        Err(e) if gone(&e) => return Err(SandboxError::HelperExited(jail.wait())),
        Err(e) => return Err(SandboxError::Control(e)),
    };
    if got.data.is_empty() {
        return Err(SandboxError::HelperExited(jail.wait()));
    }
    let msg: HelperMsg = serde_json::from_slice(&got.data)
        .map_err(|e| SandboxError::Protocol(format!("undecodable message: {e}")))?;
    Ok((msg, got.fd))
}

fn handshake(jail: &mut Jail, payload: &[u8]) -> Result<(), SandboxError> {
    let control = jail.control_clone()?;
    match protocol::send(control.as_fd(), payload, None) {
        Ok(()) => {}
        Err(e) if gone(&e) => return Err(SandboxError::HelperExited(jail.wait())),
        Err(e) => return Err(SandboxError::SendSpec(e)),
    }
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        let (msg, fd) = recv_before(jail, &control, deadline)?;
        match msg {
            HelperMsg::Cgroup { dirs, mut warnings } => {
                jail.freezer = Freezer::open(&dirs);
                if jail.freezer.is_none() && !dirs.is_empty() {
                    warnings.push(
                        "cgroup: no freezer; environments keep running between invocations".into(),
                    );
                }
                jail.cgroup.dirs = dirs;
                note(jail, warnings);
            }
            HelperMsg::Listener { warnings } => {
                let fd = fd.ok_or_else(|| {
                    SandboxError::Protocol("listener message without a descriptor".into())
                })?;
                jail.listener = Some(TcpListener::from(fd));
                note(jail, warnings);
            }
            HelperMsg::UnixListener { warnings } => {
                let fd = fd.ok_or_else(|| {
                    SandboxError::Protocol("unix listener message without a descriptor".into())
                })?;
                jail.unix_listener = Some(UnixListener::from(fd));
                note(jail, warnings);
            }
            HelperMsg::Ready { warnings } => {
                jail.pid1_pidfd = fd;
                note(jail, warnings);
                if jail.listener.is_none() || jail.unix_listener.is_none() {
                    return Err(SandboxError::Protocol(
                        "ready before the listeners arrived".into(),
                    ));
                }
                return Ok(());
            }
            HelperMsg::Failed { step, message } => {
                return Err(SandboxError::Setup { step, message });
            }
            HelperMsg::Assigned { .. } | HelperMsg::Connected | HelperMsg::NotConnected { .. } => {
                return Err(SandboxError::Protocol(
                    "answer to a request before ready".into(),
                ));
            }
        }
    }
}

fn note(jail: &mut Jail, warnings: Vec<String>) {
    warn_once(&warnings);
    jail.warnings.extend(warnings);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::spec;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn jail_is_send_and_sync() {
        assert_send_sync::<Jail>();
    }

    #[test]
    fn invalid_specs_never_start_a_helper() {
        let mut s = spec();
        s.id = "../x".into();
        let e = spawn(&s, Path::new("/nonexistent/helper")).unwrap_err();
        assert!(matches!(e, SandboxError::InvalidSpec(_)), "{e}");
    }

    #[test]
    fn a_missing_helper_is_reported() {
        let e = spawn(&spec(), Path::new("/nonexistent/helper")).unwrap_err();
        assert!(matches!(e, SandboxError::SpawnHelper { .. }), "{e}");
    }

    #[test]
    fn a_helper_that_exits_early_is_reported_with_its_status() {
        // /bin/false ignores the protocol and exits 1 at once.
        let e = spawn(&spec(), Path::new("/bin/false")).unwrap_err();
        match e {
            SandboxError::HelperExited(info) => assert_eq!(info.code, Some(1)),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn the_helper_gets_only_stdio_and_the_control_socket() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("fds");
        let script = dir.path().join("helper");
        // ls lists its own descriptors: 0-2, the control socket 3, and 4 for the directory
        // it is reading.
        std::fs::write(
            &script,
            format!("#!/bin/sh\nls /proc/self/fd > {}\nexit 3\n", out.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let _open_here = std::fs::File::open("/dev/null").unwrap();
        let e = spawn(&spec(), &script).unwrap_err();
        assert!(
            matches!(
                e,
                SandboxError::HelperExited(ExitInfo { code: Some(3), .. })
            ),
            "{e}"
        );
        let fds: Vec<String> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(fds, ["0", "1", "2", "3", "4"]);
    }
}
