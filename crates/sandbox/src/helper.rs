//! The jail helper: everything that runs in the re-executed Updraft binary (`updraft __jail`).
//!
//! It is a fresh, single-threaded process, so it may unshare namespaces and fork freely, which
//! the multi-threaded server must not. Two processes take part:
//!
//! - the **helper** stays outside the new pid namespace and outside the cgroup. It reads the
//!   spec from fd 3, creates the cgroup and writes its limits, unshares the namespaces, brings up `lo`, binds the Runtime API
//!   listeners (TCP `127.0.0.1:9001` and an abstract Unix socket) and sends them to the server, forks pid 1, relays pid 1's setup result, then
//!   supervises: it kills pid 1 when the server goes away and exits like pid 1 did (same exit
//!   code, or killed by the same signal);
//! - **pid 1** of the new pid namespace joins the cgroup, builds and enters the new root, drops every privilege,
//!   installs seccomp and execs the runtime. It reports to the helper over a close-on-exec
//!   pipe: end of file without a message means the exec succeeded.
//!
//! Neither writes to stdout or stderr: those are the runtime's log pipes.

use std::convert::Infallible;
use std::fmt::Display;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, kill, raise, signal, sigprocmask};
use nix::sys::stat::{Mode, SFlag, fstat, umask};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork, pipe2, setpgid, setresgid, setresuid};

use crate::mounts::{self, RealHost};
use crate::protocol::{self, HelperMsg, PipeAssignment, ServerMsg, SetupRequest};
use crate::{
    ASSIGNMENT_FD_VAR, JailSpec, RUNTIME_API_ADDR, RUNTIME_API_SOCKET_NAME, SANDBOX_GID,
    SANDBOX_UID, Start, Step, cgroup, seccomp, sys, tmpdisk,
};

/// Where [`spawn`](crate::spawn) puts the helper's end of the control socket.
pub(crate) const CONTROL_FD: RawFd = 3;

/// Where a runtime template finds the assignment pipe.
const ASSIGNMENT_FD: RawFd = 3;

/// Size of the tmpfs that becomes `/`: it only holds directories, symlinks and a few small
/// generated files.
const ROOT_TMPFS_OPTIONS: &str = "size=4m,mode=755";

/// Entry point of jail mode; `updraft __jail` calls it. Never returns.
///
/// Must be called before the program starts any thread (the namespaces it unshares apply to
/// single-threaded processes only) and with the control socket on fd 3, as [`crate::spawn`]
/// arranges.
pub fn jail_main() -> ! {
    let code = run();
    std::process::exit(code)
}

/// A failed step, reported to the server as [`HelperMsg::Failed`].
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Failure {
    step: Step,
    message: String,
}

fn fail<E: Display>(step: Step, what: &'static str) -> impl FnOnce(E) -> Failure {
    move |e| Failure {
        step,
        message: if what.is_empty() {
            e.to_string()
        } else {
            format!("{what}: {e}")
        },
    }
}

fn run() -> i32 {
    // SAFETY: F_GETFD only queries the flags of descriptor 3, open or not.
    if unsafe { libc::fcntl(CONTROL_FD, libc::F_GETFD) } < 0 {
        eprintln!("updraft __jail is started by the server; it needs its control socket on fd 3");
        return 2;
    }
    // SAFETY: the server placed the control socket on fd 3 for this process and nothing else
    // in this freshly exec'd program owns it.
    let ctl = unsafe { OwnedFd::from_raw_fd(CONTROL_FD) };
    let is_socket = fstat(&ctl)
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK)
        .unwrap_or(false);
    if !is_socket {
        eprintln!("updraft __jail: fd 3 is not the control socket");
        return 2;
    }
    let _ = fcntl(&ctl, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    // Whatever else the server leaked into us must not reach the runtime.
    let _ = sys::cloexec_from(CONTROL_FD + 1);
    let req = match read_request(&ctl) {
        Ok(r) => r,
        Err(f) => return report_failure(&ctl, f),
    };
    match helper(&ctl, &req.spec, &req.scratch_dir) {
        Ok(code) => code,
        Err(f) => report_failure(&ctl, f),
    }
}

fn report_failure(ctl: &OwnedFd, f: Failure) -> i32 {
    let msg = HelperMsg::Failed {
        step: f.step,
        message: f.message,
    };
    let _ = protocol::send_msg(ctl.as_fd(), &msg, None);
    1
}

fn read_request(ctl: &OwnedFd) -> Result<SetupRequest, Failure> {
    let got = protocol::recv(ctl.as_fd()).map_err(fail(Step::ReadSpec, "receiving"))?;
    if got.data.is_empty() {
        return Err(Failure {
            step: Step::ReadSpec,
            message: "control socket closed before a spec arrived".into(),
        });
    }
    let req: SetupRequest =
        serde_json::from_slice(&got.data).map_err(fail(Step::ReadSpec, "parsing"))?;
    req.spec.validate().map_err(fail(Step::ReadSpec, ""))?;
    if !req.scratch_dir.is_absolute() {
        return Err(Failure {
            step: Step::ReadSpec,
            message: format!("scratch dir {} is not absolute", req.scratch_dir.display()),
        });
    }
    Ok(req)
}

/// The environment's disk-backed `/tmp`, or a warning why it stays a tmpfs.
fn tmp_disk(
    spec: &JailSpec,
    scratch: &Path,
    root: bool,
    warnings: &mut Vec<String>,
) -> Option<sys::LoopDevice> {
    const FALLBACK: &str = "/tmp is a tmpfs whose contents count against the memory limit \
                            (writing more than memory_mb ends in an OOM kill, not ENOSPC)";
    if let Some(why) = tmpdisk::unavailable(root) {
        warnings.push(format!("disk-backed /tmp unavailable: {why}; {FALLBACK}"));
        return None;
    }
    match tmpdisk::prepare(scratch, &spec.id, spec.tmp_mb) {
        Ok(dev) => {
            if tmpdisk::on_tmpfs(scratch) {
                warnings.push(format!(
                    "scratch dir {} is on a tmpfs, so /tmp lives in memory after all",
                    scratch.display()
                ));
            }
            Some(dev)
        }
        Err(e) => {
            warnings.push(format!("disk-backed /tmp failed: {e}; {FALLBACK}"));
            None
        }
    }
}

fn helper(ctl: &OwnedFd, spec: &JailSpec, scratch: &Path) -> Result<i32, Failure> {
    let mut warnings = Vec::new();
    let root = Uid::effective().is_root();

    let limits = cgroup::Limits {
        memory_bytes: spec.memory_mb.saturating_mul(1 << 20),
        pids_max: spec.pids_max,
        cpu_ceiling: spec.cpu_ceiling,
    };
    let dirs = cgroup::setup(&spec.id, limits, &mut warnings);
    let msg = HelperMsg::Cgroup {
        dirs: dirs.clone(),
        warnings: std::mem::take(&mut warnings),
    };
    protocol::send_msg(ctl.as_fd(), &msg, None).map_err(fail(Step::Cgroup, "reporting"))?;

    // Before the namespaces: loop devices are attached from the host's view.
    let tmp = tmp_disk(spec, scratch, root, &mut warnings);

    if !root {
        enter_user_namespace().map_err(fail(
            Step::UserNamespace,
            "not running as root and no user namespace available",
        ))?;
        warnings.push(
            "not running as root: environments use a user namespace, so the runtime's uid 993 \
             is the server's own uid on the host"
                .into(),
        );
    }

    // Identifies the host's root, to make sure the code of an assignment is never mounted
    // anywhere but inside the environment (see `assign`).
    let host_root = root_identity().map_err(fail(Step::Unshare, "stat /"))?;

    // No core dumps of the helper, and no ptrace of it by same-uid processes. Only now: a
    // non-dumpable process cannot write its own /proc/self/uid_map.
    let _ = nix::sys::prctl::set_dumpable(false);

    unshare(
        CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWNET,
    )
    .map_err(fail(Step::Unshare, "unshare(mount, pid, ipc, uts, net)"))?;
    sys::loopback_up().map_err(fail(Step::Loopback, "bringing up lo"))?;
    let listener = TcpListener::bind(RUNTIME_API_ADDR)
        .map_err(fail(Step::Listener, "binding 127.0.0.1:9001"))?;
    let msg = HelperMsg::Listener {
        warnings: std::mem::take(&mut warnings),
    };
    protocol::send_msg(ctl.as_fd(), &msg, Some(listener.as_raw_fd()))
        .map_err(fail(Step::Listener, "sending the listener"))?;
    drop(listener);
    let name = crate::abstract_socket_addr(RUNTIME_API_SOCKET_NAME)
        .map_err(fail(Step::Listener, "naming the Runtime API socket"))?;
    let unix_listener = UnixListener::bind_addr(&name)
        .map_err(fail(Step::Listener, "binding the Runtime API socket"))?;
    let msg = HelperMsg::UnixListener {
        warnings: Vec::new(),
    };
    protocol::send_msg(ctl.as_fd(), &msg, Some(unix_listener.as_raw_fd()))
        .map_err(fail(Step::Listener, "sending the Runtime API socket"))?;
    drop(unix_listener);

    let (status_r, status_w) = pipe2(OFlag::O_CLOEXEC).map_err(fail(Step::Fork, "pipe"))?;
    let assignment = match spec.start {
        Start::Now => None,
        Start::Deferred | Start::Template => {
            Some(pipe2(OFlag::O_CLOEXEC).map_err(fail(Step::Fork, "assignment pipe"))?)
        }
    };
    // Lets pid 1 notice a helper that died before pid 1 armed its parent-death signal.
    let self_pidfd = sys::pidfd_open(std::process::id() as libc::pid_t).ok();
    // SAFETY: this process is a fresh exec that started no threads, so the child is a full
    // copy that may allocate and run arbitrary code.
    match unsafe { fork() }.map_err(fail(Step::Fork, "fork"))? {
        ForkResult::Child => {
            drop(status_r);
            let assignment_r = assignment.map(|(r, _w)| r);
            let status = StatusPipe(status_w);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pid1(
                    spec,
                    &dirs,
                    !root,
                    tmp.as_ref().map(|d| d.path.as_path()),
                    self_pidfd.as_ref(),
                    assignment_r.as_ref(),
                    &status,
                )
            }));
            let failure = match result {
                Ok(Err(f)) => f,
                Ok(Ok(never)) => match never {},
                Err(_) => Failure {
                    step: Step::Exec,
                    message: "pid 1 panicked during setup".into(),
                },
            };
            status.line(&StatusLine::Failed(failure));
            // SAFETY: _exit ends pid 1 without unwinding into the helper's code or running
            // exit handlers that belong to the helper.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            drop(status_w);
            // Pid 1 holds its own descriptor until its mount holds the device; from then on the
            // mount alone keeps it, and its end detaches the device (auto-clear).
            drop(tmp);
            let assignment_w = assignment.map(|(_r, w)| w);
            let mut status = io::BufReader::new(std::fs::File::from(status_r));
            let failure = read_status(&mut status, &mut warnings);
            if let Some(f) = failure {
                let _ = kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                return Err(f);
            }
            // The server signals pid 1 through this pidfd, never the helper, so the helper is
            // always there to reap pid 1 (a killed helper would leave pid 1 to the host's init).
            let child_pidfd = sys::pidfd_open(child.as_raw()).ok();
            let msg = HelperMsg::Ready { warnings };
            let fd = child_pidfd.as_ref().map(|f| f.as_raw_fd());
            if protocol::send_msg(ctl.as_fd(), &msg, fd).is_err() {
                let _ = kill(child, Signal::SIGKILL);
            }
            let pending = assignment_w.map(|pipe| Pending {
                pipe,
                // A deferred pid 1 still has to exec; its status pipe tells whether it did.
                status: (spec.start == Start::Deferred).then_some(status),
                host_root,
            });
            Ok(supervise(ctl, child, child_pidfd, pending))
        }
    }
}

/// Maps the sandbox uid/gid to the caller's own ids in a new user namespace, which grants the
/// capabilities the remaining steps need without being root on the host.
fn enter_user_namespace() -> io::Result<()> {
    let uid = Uid::current();
    let gid = Gid::current();
    unshare(CloneFlags::CLONE_NEWUSER)?;
    // setgroups must be denied before an unprivileged gid_map write (Linux >= 3.19).
    match std::fs::write("/proc/self/setgroups", "deny") {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::write("/proc/self/uid_map", format!("{SANDBOX_UID} {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("{SANDBOX_GID} {gid} 1"))?;
    Ok(())
}

/// One line pid 1 writes to the helper.
#[derive(serde::Serialize, serde::Deserialize)]
enum StatusLine {
    Warn(String),
    Failed(Failure),
    /// A deferred pid 1 is set up and waits for its assignment.
    Parked,
}

/// Reads pid 1's report up to end of file (it exec'd or died) or `Parked`; returns the failure
/// it reported, if any.
fn read_status(
    status: &mut io::BufReader<std::fs::File>,
    warnings: &mut Vec<String>,
) -> Option<Failure> {
    use std::io::BufRead;
    let mut failure = None;
    let mut line = String::new();
    loop {
        line.clear();
        match status.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                failure = Some(Failure {
                    step: Step::Exec,
                    message: format!("reading pid 1's setup report: {e}"),
                });
                break;
            }
        }
        match serde_json::from_str::<StatusLine>(line.trim_end()) {
            Ok(StatusLine::Warn(w)) => warnings.push(w),
            Ok(StatusLine::Failed(f)) => failure = Some(f),
            Ok(StatusLine::Parked) => break,
            Err(e) => {
                failure = Some(Failure {
                    step: Step::Exec,
                    message: format!("garbled setup report from pid 1: {e}"),
                })
            }
        }
    }
    failure
}

/// Device and inode of the calling process's root directory.
fn root_identity() -> nix::Result<(u64, u64)> {
    let st = nix::sys::stat::stat("/")?;
    Ok((st.st_dev, st.st_ino))
}

struct StatusPipe(OwnedFd);

impl StatusPipe {
    fn line(&self, l: &StatusLine) {
        let Ok(mut text) = serde_json::to_string(l) else {
            return;
        };
        text.push('\n');
        let mut buf = text.as_bytes();
        while !buf.is_empty() {
            match nix::unistd::write(&self.0, buf) {
                Ok(n) => buf = &buf[n..],
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
    }
}

/// Arms SIGKILL on helper death. Must be repeated after a credential change, which clears it.
fn die_with_helper(helper: Option<&OwnedFd>) -> Result<(), Failure> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(fail(Step::Fork, "PR_SET_PDEATHSIG"))?;
    // getppid() is 0 for a parent in an ancestor pid namespace, so liveness is checked on the
    // helper's pidfd instead: readable means it has exited.
    if let Some(fd) = helper
        && let Ok([r]) = sys::poll_readable([fd.as_raw_fd()], 0)
        && r != 0
    {
        return Err(Failure {
            step: Step::Fork,
            message: "jail helper exited".into(),
        });
    }
    Ok(())
}

fn set_limit(res: Resource, value: u64, status: &StatusPipe) -> Result<(), Failure> {
    match setrlimit(res, value, value) {
        Ok(()) => Ok(()),
        // Without root the hard limit cannot be raised; stay at the host's.
        Err(nix::errno::Errno::EPERM) => {
            let (_, hard) = getrlimit(res).map_err(fail(Step::Rlimits, "getrlimit"))?;
            status.line(&StatusLine::Warn(format!(
                "{res:?} limited to the host's {hard} instead of {value}"
            )));
            setrlimit(res, value.min(hard), hard).map_err(fail(Step::Rlimits, "setrlimit"))
        }
        Err(e) => Err(fail(Step::Rlimits, "setrlimit")(e)),
    }
}

/// Caps processes and threads. RLIMIT_NPROC counts every process of a uid host-wide, and all
/// environments share uid 993, so as a per-environment cap it would add up the threads of
/// unrelated functions (a hundred Node.js environments with ten threads each exhaust a limit of
/// 1,024). The pids cgroup counts exactly this environment's tasks, so when it is enforced,
/// RLIMIT_NPROC is lifted; only without it does RLIMIT_NPROC stand in, with a warning.
fn process_limit(pids_max: u64, pids_cgroup: bool, status: &StatusPipe) -> Result<(), Failure> {
    if !pids_cgroup {
        status.line(&StatusLine::Warn(format!(
            "no pids cgroup: RLIMIT_NPROC = {pids_max} limits processes instead, and it counts \
             the processes of every environment together (they share uid {SANDBOX_UID})"
        )));
        return set_limit(Resource::RLIMIT_NPROC, pids_max, status);
    }
    let inf = libc::RLIM_INFINITY;
    if setrlimit(Resource::RLIMIT_NPROC, inf, inf).is_err() {
        // Without CAP_SYS_RESOURCE the hard limit cannot be raised; its value is what the
        // host grants the uid anyway.
        let (_, hard) =
            getrlimit(Resource::RLIMIT_NPROC).map_err(fail(Step::Rlimits, "getrlimit"))?;
        setrlimit(Resource::RLIMIT_NPROC, hard, hard).map_err(fail(Step::Rlimits, "setrlimit"))?;
        // Lambda's 1,024 for a handful of environments at once is what the host must allow.
        if hard < pids_max.saturating_mul(16) {
            status.line(&StatusLine::Warn(format!(
                "RLIMIT_NPROC stays at the host's {hard}, shared by every environment of uid \
                 {SANDBOX_UID}"
            )));
        }
    }
    Ok(())
}

fn pid1(
    spec: &JailSpec,
    cgroups: &[cgroup::EnvDir],
    userns: bool,
    tmp_device: Option<&Path>,
    helper: Option<&OwnedFd>,
    assignment: Option<&OwnedFd>,
    status: &StatusPipe,
) -> Result<Infallible, Failure> {
    die_with_helper(helper)?;
    // First, so that everything pid 1 does and starts is limited and accounted.
    let joined = match cgroup::join_self(cgroups) {
        Ok(()) => true,
        Err(e) => {
            status.line(&StatusLine::Warn(format!(
                "cgroup: {e}; memory and process limits not enforced"
            )));
            false
        }
    };
    let pids_cgroup = joined && cgroup::enforces(cgroups, "pids");
    nix::unistd::sethostname(spec.hostname()).map_err(fail(Step::Hostname, "sethostname"))?;

    // Exact modes come from the mount plan, not from the inherited umask.
    umask(Mode::empty());
    // Nothing mounted from here on may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(fail(Step::Mounts, "making / private"))?;
    let mut ops = mounts::plan(spec, &RealHost).map_err(fail(Step::Mounts, ""))?;
    if let Some(dev) = tmp_device {
        mounts::use_disk_tmp(&mut ops, dev);
    }
    let root = mounts::pick_root_mountpoint(&ops, &RealHost).ok_or_else(|| Failure {
        step: Step::Mounts,
        message: format!(
            "no directory to build the root on (tried {})",
            mounts::ROOT_MOUNTPOINTS.join(", ")
        ),
    })?;
    mount(
        Some("tmpfs"),
        &root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(ROOT_TMPFS_OPTIONS),
    )
    .map_err(fail(Step::Mounts, "mounting the root tmpfs"))?;
    for w in mounts::execute(&ops, &root).map_err(fail(Step::Mounts, ""))? {
        status.line(&StatusLine::Warn(w));
    }
    mounts::pivot(&root).map_err(fail(Step::PivotRoot, ""))?;

    set_limit(Resource::RLIMIT_NOFILE, spec.nofile, status)?;
    process_limit(spec.pids_max, pids_cgroup, status)?;

    // A process group of its own, so that job control on a terminal the server runs in (Ctrl-C
    // signals the server's foreground group) does not reach the environment. Not a session of
    // its own: where the kernel groups tasks by session for CPU scheduling
    // (`kernel.sched_autogroup_enabled`, on in many distributions' kernels), each environment
    // then became a scheduling group of its own, and under load a runtime could wait hundreds of
    // milliseconds for a CPU while its invocation waited with it (docs/performance.md). The
    // terminal stays out of reach: stdin is /dev/null, no descriptor of it is inherited, and the
    // jail's /dev has no tty through which to open it.
    setpgid(Pid::from_raw(0), Pid::from_raw(0)).map_err(fail(Step::ProcessGroup, "setpgid"))?;
    nix::sys::prctl::set_no_new_privs().map_err(fail(Step::NoNewPrivs, "PR_SET_NO_NEW_PRIVS"))?;
    sys::drop_bounding_set(sys::last_cap())
        .map_err(fail(Step::Capabilities, "clearing the bounding set"))?;

    if !userns {
        nix::unistd::setgroups(&[]).map_err(fail(Step::Credentials, "setgroups"))?;
    }
    let gid = Gid::from_raw(SANDBOX_GID);
    let uid = Uid::from_raw(SANDBOX_UID);
    setresgid(gid, gid, gid).map_err(fail(Step::Credentials, "setresgid"))?;
    setresuid(uid, uid, uid).map_err(fail(Step::Credentials, "setresuid"))?;
    die_with_helper(helper)?;
    // The uid switch from root already emptied effective and permitted; this also empties
    // the inheritable and ambient sets (and covers the user-namespace case, where the uid did
    // not change from 0).
    sys::clear_capabilities().map_err(fail(Step::Capabilities, "capset"))?;

    umask(Mode::from_bits_truncate(0o022));
    nix::unistd::chdir(Path::new(&spec.cwd)).map_err(fail(Step::Chdir, "chdir"))?;

    // The helper is a Rust program, which ignores SIGPIPE; ignored signals survive exec.
    // SAFETY: installing SIG_DFL involves no handler code.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.map_err(fail(Step::Exec, "SIGPIPE"))?;
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(fail(Step::Exec, "signal mask"))?;

    let missing_pipe = || Failure {
        step: Step::Exec,
        message: "no assignment pipe".into(),
    };
    let mut extra_env = None;
    if spec.start == Start::Template {
        let pipe = assignment.ok_or_else(missing_pipe)?;
        place_for_exec(pipe, ASSIGNMENT_FD)?;
        extra_env = Some(format!("{ASSIGNMENT_FD_VAR}={ASSIGNMENT_FD}"));
    }

    seccomp::install().map_err(fail(Step::Seccomp, ""))?;
    if spec.start == Start::Deferred {
        // Everything above is the environment, built before any function is known; what runs
        // in it arrives now.
        let pipe = assignment.ok_or_else(missing_pipe)?;
        status.line(&StatusLine::Parked);
        let a = read_assignment(pipe)?;
        nix::unistd::chdir(Path::new(&a.cwd)).map_err(fail(Step::Chdir, "chdir"))?;
        return Err(exec(&a.argv, &a.env, None));
    }
    Err(exec(&spec.argv, &spec.env, extra_env))
}

/// Execs `argv` with `env` (and `extra`, a `NAME=value`); returns only why it could not.
fn exec(argv: &[String], env: &[(String, String)], extra: Option<String>) -> Failure {
    let cstr = |s: &str| std::ffi::CString::new(s).map_err(fail(Step::Exec, "NUL in argument"));
    let converted = || -> Result<_, Failure> {
        let args = argv
            .iter()
            .map(|a| cstr(a))
            .collect::<Result<Vec<_>, _>>()?;
        let mut vars = env
            .iter()
            .map(|(k, v)| cstr(&format!("{k}={v}")))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(e) = &extra {
            vars.push(cstr(e)?);
        }
        Ok((args, vars))
    };
    let (args, vars) = match converted() {
        Ok(c) => c,
        Err(f) => return f,
    };
    let Some(program) = args.first() else {
        return Failure {
            step: Step::Exec,
            message: "no program to run".into(),
        };
    };
    let err = nix::unistd::execve(program, &args, &vars).unwrap_err();
    Failure {
        step: Step::Exec,
        message: format!("{}: {err}", argv[0]),
    }
}

/// Puts `fd` on descriptor `target` without close-on-exec, so the runtime inherits it there.
fn place_for_exec(fd: &OwnedFd, target: RawFd) -> Result<(), Failure> {
    if fd.as_raw_fd() == target {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))
            .map_err(fail(Step::Exec, "assignment pipe flags"))?;
        return Ok(());
    }
    // SAFETY: dup2 onto a fixed number replaces whatever pid 1 had there (an inherited copy of
    // the control socket, which pid 1 must not keep anyway); the new descriptor is not
    // close-on-exec.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(fail(Step::Exec, "placing the assignment pipe")(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Reads the assignment pipe to its end and parses what it carried.
fn read_assignment(pipe: &OwnedFd) -> Result<PipeAssignment, Failure> {
    let mut text = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match nix::unistd::read(pipe, &mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(fail(Step::Assign, "reading the assignment")(e)),
        }
    }
    serde_json::from_slice(&text).map_err(fail(Step::Assign, "parsing the assignment"))
}

/// What a pre-warmed environment still needs: the write end of its assignment pipe and, for a
/// deferred one, pid 1's status pipe.
struct Pending {
    pipe: OwnedFd,
    status: Option<io::BufReader<std::fs::File>>,
    host_root: (u64, u64),
}

/// Carries out one assignment: mounts the code (and the layers' tree on `/opt`), hands argv and
/// environment over, and for a deferred environment waits until pid 1 exec'd.
fn assign(
    pending: Pending,
    msg: ServerMsg,
    code: Option<OwnedFd>,
    layers: Option<OwnedFd>,
) -> Result<Vec<String>, Failure> {
    let ServerMsg::Assign {
        argv,
        env,
        cwd,
        opt,
        ..
    } = msg
    else {
        return Err(Failure {
            step: Step::Assign,
            message: "not an assignment".into(),
        });
    };
    if opt != layers.is_some() {
        return Err(Failure {
            step: Step::Assign,
            message: "assignment without the layers' mount it announced".into(),
        });
    }
    let code = code.ok_or_else(|| Failure {
        step: Step::Assign,
        message: "assignment without the code's mount".into(),
    })?;
    // pivot_root moved the helper's root along with pid 1's (both were the namespace's root);
    // should it ever not have, "/var/task" would name the host's, so refuse.
    let root = root_identity().map_err(fail(Step::Assign, "stat /"))?;
    if root == pending.host_root {
        return Err(Failure {
            step: Step::Assign,
            message: "the helper is not inside the environment's root".into(),
        });
    }
    sys::move_mount_to(code.as_fd(), c"/var/task")
        .map_err(fail(Step::Assign, "mounting the code on /var/task"))?;
    drop(code);
    // A pre-warmed jail has an empty /opt (its spec had no layers), which this covers.
    if let Some(layers) = layers {
        sys::move_mount_to(layers.as_fd(), c"/opt")
            .map_err(fail(Step::Assign, "mounting the layers on /opt"))?;
    }
    let text = serde_json::to_vec(&PipeAssignment { argv, env, cwd })
        .map_err(fail(Step::Assign, "encoding"))?;
    let mut pipe = std::fs::File::from(pending.pipe);
    std::io::Write::write_all(&mut pipe, &text)
        .map_err(fail(Step::Assign, "writing the assignment"))?;
    // End of file tells the reader the assignment is complete.
    drop(pipe);
    let mut warnings = Vec::new();
    if let Some(mut status) = pending.status
        && let Some(f) = read_status(&mut status, &mut warnings)
    {
        return Err(f);
    }
    Ok(warnings)
}

/// Waits for pid 1 while watching the control socket; returns the helper's exit code.
fn supervise(
    ctl: &OwnedFd,
    child: Pid,
    child_pidfd: Option<OwnedFd>,
    mut pending: Option<Pending>,
) -> i32 {
    if let Some(pidfd) = child_pidfd {
        let mut watch = ctl.as_raw_fd();
        while let Ok([c, p]) = sys::poll_readable([watch, pidfd.as_raw_fd()], -1) {
            if p != 0 {
                break;
            }
            if c == 0 {
                continue;
            }
            // After Ready the server sends at most one assignment; end of stream (or anything
            // else) means it dropped the environment or died.
            let got = protocol::recv(ctl.as_fd());
            let msg = got.as_ref().ok().and_then(|g| {
                (!g.data.is_empty())
                    .then(|| serde_json::from_slice::<ServerMsg>(&g.data).ok())
                    .flatten()
            });
            // The helper lives in the environment's network namespace: a socket it connects
            // reaches the environment's own loopback, whoever uses it afterwards.
            if let Some(ServerMsg::Connect { port }) = msg {
                let (reply, fd) = match std::net::TcpStream::connect(("127.0.0.1", port)) {
                    Ok(s) => (HelperMsg::Connected, Some(OwnedFd::from(s))),
                    Err(e) => (
                        HelperMsg::NotConnected {
                            message: e.to_string(),
                        },
                        None,
                    ),
                };
                let raw = fd.as_ref().map(|f| f.as_raw_fd());
                if protocol::send_msg(ctl.as_fd(), &reply, raw).is_ok() {
                    continue;
                }
            } else if let (Some(msg), Some(p)) = (msg, pending.take()) {
                let (fd, opt) = got.ok().map_or((None, None), |g| (g.fd, g.second_fd));
                let reply = match assign(p, msg, fd, opt) {
                    Ok(warnings) => HelperMsg::Assigned { warnings },
                    Err(f) => HelperMsg::Failed {
                        step: f.step,
                        message: f.message,
                    },
                };
                let failed = matches!(reply, HelperMsg::Failed { .. });
                if protocol::send_msg(ctl.as_fd(), &reply, None).is_ok() && !failed {
                    continue;
                }
            }
            let _ = kill(child, Signal::SIGKILL);
            watch = -1;
        }
    }
    let status = loop {
        match waitpid(child, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other,
        }
    };
    match status {
        Ok(WaitStatus::Exited(_, code)) => code,
        Ok(WaitStatus::Signaled(_, sig, _)) => die_like(sig),
        _ => 1,
    }
}

/// Ends the helper by the signal that ended pid 1, so the server sees the runtime's own fate.
fn die_like(sig: Signal) -> i32 {
    // SAFETY: restoring the default disposition involves no handler code.
    let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    let _ = raise(sig);
    // Signals whose default action is not to terminate end up here.
    128 + sig as i32
}
