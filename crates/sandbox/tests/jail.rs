//! End-to-end tests that start real environments.
//!
//! The test binary is its own jail helper: started as `<binary> __jail` it runs
//! [`updraft_sandbox::jail_main`], exactly as the `updraft` binary does. Otherwise it runs the
//! cases below, each spawning jails with `std::env::current_exe()` as the helper. As root all
//! cases run; without root only those that work through a user namespace (no cgroups), and
//! none when user namespaces are unavailable. The one case that needs the server *not* to be
//! root runs, as root, in a copy of this binary started as an unprivileged user.
//!
//! Cases that need Python use the `python3` found on `PATH` (a pyenv shim or a venv resolves to
//! the real interpreter, whose prefix is mounted read-only into the jail). A developer's machine
//! may lack root, user namespaces or Python, and the cases that need them are skipped; with
//! `CI=true` every such skip is a failure, since CI provides all of them.
//!
//! Run one case: `cargo test -p updraft-sandbox --test jail -- <substring of its name>`.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use updraft_sandbox::{
    Assignment, ExitInfo, Jail, JailSpec, RUNTIME_API_SOCKET_NAME, SandboxError, Start, Step,
    abstract_socket_addr, doctor, jail_main, spawn,
};

const CASE_TIMEOUT: Duration = Duration::from_secs(120);

type Case = fn(&Ctx) -> Result<(), String>;

struct Ctx {
    helper: PathBuf,
    code: tempfile::TempDir,
    /// Scratch directory of this test process (inside `code`'s sibling temp dir).
    scratch: PathBuf,
    _scratch_root: tempfile::TempDir,
    python: Option<HostPython>,
}

/// The host's `python3` as a jail sees it.
struct HostPython {
    /// The real executable (not a shim or a venv's link).
    executable: PathBuf,
    /// `sys.base_prefix`: the installation the jail needs mounted, unless it lies under `/usr`,
    /// which every jail has.
    prefix: PathBuf,
}

impl HostPython {
    /// Asks the `python3` on `PATH` where it really lives.
    fn find() -> Option<HostPython> {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import os, sys; print(os.path.realpath(sys.executable)); print(sys.base_prefix)",
            ])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8(out.stdout).ok()?;
        let mut lines = text.lines();
        let executable = PathBuf::from(lines.next()?);
        let prefix = PathBuf::from(lines.next()?);
        (executable.is_absolute() && prefix.is_absolute())
            .then_some(HostPython { executable, prefix })
    }

    /// The read-only mounts the jail needs for this interpreter.
    fn ro_paths(&self) -> Vec<PathBuf> {
        if self.prefix.starts_with("/usr") {
            Vec::new()
        } else {
            vec![self.prefix.clone()]
        }
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique_id(name: &str) -> String {
    format!(
        "t{}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst),
        name
    )
}

impl Ctx {
    fn spec(&self, name: &str, argv: &[&str]) -> JailSpec {
        JailSpec {
            id: unique_id(name),
            code_dir: self.code.path().to_path_buf(),
            runtime_dir: None,
            opt_dir: None,
            ro_paths: self
                .python
                .as_ref()
                .map(HostPython::ro_paths)
                .unwrap_or_default(),
            tmp_mb: 16,
            memory_mb: 128,
            pids_max: 64,
            cpu_ceiling: false,
            nofile: 1024,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![
                ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
                ("LANG".into(), "C.UTF-8".into()),
                ("UPDRAFT_TEST".into(), "1".into()),
            ],
            cwd: "/var/task".into(),
            start: Start::Now,
        }
    }

    fn sh(&self, name: &str, script: &str) -> JailSpec {
        self.spec(name, &["/bin/sh", "-c", script])
    }

    fn python(&self, name: &str, code: &str) -> Result<JailSpec, String> {
        let py = self.python.as_ref().ok_or("python3 is not on PATH")?;
        let py = py.executable.to_str().ok_or("python path")?;
        Ok(self.spec(name, &[py, "-c", code]))
    }

    fn spawn(&self, spec: &JailSpec) -> Result<Jail, String> {
        spawn(spec, &self.helper).map_err(|e| format!("spawn failed: {e}"))
    }
}

fn collect(fd: Option<OwnedFd>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        if let Some(fd) = fd {
            let _ = std::fs::File::from(fd).read_to_string(&mut s);
        }
        s
    })
}

struct Output {
    exit: ExitInfo,
    stdout: String,
    stderr: String,
}

fn run(ctx: &Ctx, spec: &JailSpec) -> Result<Output, String> {
    let mut jail = ctx.spawn(spec)?;
    let out = collect(jail.take_stdout());
    let err = collect(jail.take_stderr());
    let exit = jail.wait();
    drop(jail);
    Ok(Output {
        exit,
        stdout: out.join().map_err(|_| "stdout reader")?,
        stderr: err.join().map_err(|_| "stderr reader")?,
    })
}

fn run_ok(ctx: &Ctx, spec: &JailSpec) -> Result<String, String> {
    let o = run(ctx, spec)?;
    if o.exit.code != Some(0) {
        return Err(format!(
            "exited with {}; stdout: {:?}; stderr: {:?}",
            o.exit, o.stdout, o.stderr
        ));
    }
    Ok(o.stdout)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

// ---- cases ---------------------------------------------------------------------------------

fn runs_as_the_sandbox_user(ctx: &Ctx) -> Result<(), String> {
    let out = run_ok(ctx, &ctx.sh("uid", "id -u; id -g; id -G; id -un"))?;
    check(out == "993\n990\n990\nsbx_user1051\n", || {
        format!("got {out:?}")
    })
}

fn stdout_stderr_and_exit_code_are_captured(ctx: &Ctx) -> Result<(), String> {
    let o = run(ctx, &ctx.sh("io", "echo out; echo err >&2; exit 3"))?;
    check(o.exit.code == Some(3), || format!("exit {}", o.exit))?;
    check(o.stdout == "out\n", || format!("stdout {:?}", o.stdout))?;
    check(o.stderr == "err\n", || format!("stderr {:?}", o.stderr))
}

fn code_is_read_only_and_only_tmp_is_writable(ctx: &Ctx) -> Result<(), String> {
    let script = "\
        cat /var/task/handler.txt; \
        for p in /var/task/x /usr/x /x /etc/x /opt/x /var/x /dev/x /proc/sys/kernel/hostname; do \
            (echo hi > $p) 2>/dev/null && echo \"writable: $p\"; \
        done; \
        echo data > /tmp/ok && cat /tmp/ok; \
        echo shm > /dev/shm/ok && cat /dev/shm/ok; \
        echo discard > /dev/null && head -c 5 /dev/zero | wc -c";
    let out = run_ok(ctx, &ctx.sh("ro", script))?;
    check(out == "handler code\ndata\nshm\n5\n", || {
        format!("got {out:?}")
    })
}

fn tmp_is_limited_to_tmp_mb(ctx: &Ctx) -> Result<(), String> {
    let mut spec = ctx.sh(
        "tmpfull",
        "dd if=/dev/zero of=/tmp/big bs=1M count=20 2>&1; echo rc=$?; df -m /tmp | tail -1",
    );
    spec.tmp_mb = 8;
    let out = run_ok(ctx, &spec)?;
    check(out.contains("No space left on device"), || {
        format!("got {out:?}")
    })?;
    check(out.contains("rc=1"), || format!("got {out:?}"))?;
    // ext4 needs room for its metadata, so a disk-backed /tmp is a little larger than tmp_mb
    // (what the function can store is about tmp_mb); a tmpfs is exactly tmp_mb.
    let size: u64 = out
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or(format!("no df line: {out:?}"))?;
    check((8..=13).contains(&size), || {
        format!("df shows {size} MB for tmp_mb 8: {out:?}")
    })
}

/// Loop devices whose backing file lies in `dir`.
fn loops_backed_by(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        let backing = std::fs::read_to_string(e.path().join("loop/backing_file"));
        if let Ok(b) = backing
            && b.trim().starts_with(dir.to_str().unwrap_or("/nonexistent"))
        {
            found.push(format!("{}: {}", e.file_name().to_string_lossy(), b.trim()));
        }
    }
    found
}

/// Files in the scratch dir other than the templates.
fn scratch_leftovers(ctx: &Ctx) -> Vec<String> {
    std::fs::read_dir(&ctx.scratch)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "templates")
        .collect()
}

/// Regression: /tmp was a tmpfs charged to the memory cgroup, so a 128 MB function writing
/// 400 MB to /tmp was OOM-killed. Now /tmp is disk: the write succeeds, the cap is tmp_mb
/// (ENOSPC), and nothing is left once the environment ends.
fn tmp_is_disk_not_memory(ctx: &Ctx) -> Result<(), String> {
    let mut spec = ctx.sh(
        "tmpdisk",
        "grep ' /tmp ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1; \
         stat -c '%a' /tmp; ls -A /tmp | wc -l; \
         dd if=/dev/zero of=/tmp/a bs=1M count=400 2>/dev/null; echo a=$?; \
         dd if=/dev/zero of=/tmp/b bs=1M count=212 2>&1 | grep -o 'No space left on device'; \
         echo b=$?; rm /tmp/a /tmp/b; echo done",
    );
    spec.memory_mb = 128;
    spec.tmp_mb = 512;
    let mut jail = ctx.spawn(&spec)?;
    let out = collect(jail.take_stdout());
    let err = collect(jail.take_stderr());
    let during = loops_backed_by(&ctx.scratch);
    let exit = jail.wait();
    let oom = jail.oom_killed();
    let stdout = out.join().map_err(|_| "stdout")?;
    let stderr = err.join().map_err(|_| "stderr")?;
    check(!jail.warnings().iter().any(|w| w.contains("/tmp")), || {
        format!("warnings: {:?}", jail.warnings())
    })?;
    drop(jail);
    check(exit.code == Some(0) && !oom, || {
        format!("exit {exit}, oom {oom}, stdout {stdout:?}, stderr {stderr:?}")
    })?;
    let want = "ext4\n1777\n0\na=0\nNo space left on device\nb=0\ndone\n";
    check(stdout == want, || format!("got {stdout:?}, want {want:?}"))?;
    check(during.len() == 1 && during[0].contains("(deleted)"), || {
        format!("loop devices while running: {during:?}")
    })?;
    // The loop device goes away with the environment's mount namespace.
    let start = Instant::now();
    let mut left = loops_backed_by(&ctx.scratch);
    while !left.is_empty() && start.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(20));
        left = loops_backed_by(&ctx.scratch);
    }
    check(left.is_empty(), || format!("loop devices left: {left:?}"))?;
    let files = scratch_leftovers(ctx);
    check(files.is_empty(), || format!("scratch dir holds {files:?}"))
}

fn proc_shows_only_the_jail(ctx: &Ctx) -> Result<(), String> {
    let out = run_ok(
        ctx,
        &ctx.sh(
            "proc",
            "echo $$; cat /proc/1/comm; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '",
        ),
    )?;
    let lines: Vec<&str> = out.lines().collect();
    check(lines.first() == Some(&"1"), || {
        format!("shell is not pid 1: {out:?}")
    })?;
    check(lines.get(1) == Some(&"sh"), || {
        format!("pid 1 is not sh: {out:?}")
    })?;
    let pids: Vec<u32> = lines
        .get(2)
        .unwrap_or(&"")
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    check(
        pids.first() == Some(&1) && pids.len() <= 5 && pids.iter().all(|p| *p < 50),
        || format!("unexpected processes: {pids:?}"),
    )
}

fn host_paths_are_invisible(ctx: &Ctx) -> Result<(), String> {
    let script = "\
        for p in /work /root/.bashrc /root/.cargo /etc/shadow /etc/gshadow /sys/kernel /home /boot /var/lib /run; do \
            test -e $p && echo \"visible: $p\"; \
        done; \
        ls / | tr '\\n' ' '; echo; ls -A /root | tr '\\n' ' '; echo; cat /etc/passwd";
    let out = run_ok(ctx, &ctx.sh("hidden", script))?;
    check(!out.contains("visible:"), || {
        format!("host paths visible: {out:?}")
    })?;
    check(out.contains("sbx_user1051:x:993:990:"), || {
        format!("passwd: {out:?}")
    })?;
    let root_listing = out.lines().nth(1).unwrap_or("");
    // An interpreter installed under /root (pyenv's ~/.pyenv) is mounted there, and only it.
    let expected = ctx
        .python
        .as_ref()
        .and_then(|p| p.prefix.strip_prefix("/root").ok())
        .and_then(|rest| rest.components().next())
        .map(|c| format!("{} ", c.as_os_str().to_string_lossy()))
        .unwrap_or_default();
    check(root_listing == expected, || {
        format!("/root lists {root_listing:?}")
    })
}

fn hostname_is_the_environment_id(ctx: &Ctx) -> Result<(), String> {
    let spec = ctx.sh(
        "host",
        "hostname; cat /proc/sys/kernel/hostname; cat /etc/hostname",
    );
    let want = format!("{0}\n{0}\n{0}\n", spec.id);
    let out = run_ok(ctx, &spec)?;
    check(out == want, || format!("got {out:?}, want {want:?}"))
}

fn privileges_are_dropped(ctx: &Ctx) -> Result<(), String> {
    let out = run_ok(
        ctx,
        &ctx.sh(
            "status",
            "grep -E '^(Seccomp|NoNewPrivs|Cap(Inh|Prm|Eff|Bnd|Amb)):' /proc/self/status",
        ),
    )?;
    for want in [
        "Seccomp:\t2",
        "NoNewPrivs:\t1",
        "CapInh:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapAmb:\t0000000000000000",
    ] {
        check(out.contains(want), || {
            format!("missing {want:?} in {out:?}")
        })?;
    }
    Ok(())
}

fn environment_and_limits_are_exact(ctx: &Ctx) -> Result<(), String> {
    let mut spec = ctx.sh(
        "env",
        "tr '\\0' '\\n' < /proc/1/environ; \
         grep -E 'Max (open files|processes)' /proc/self/limits | awk '{print $(NF-2), $(NF-1)}'; \
         pwd; umask; ls /proc/self/fd | tr '\\n' ' '",
    );
    spec.nofile = 777;
    spec.pids_max = 99;
    let out = run_ok(ctx, &spec)?;
    // The pids cgroup caps processes (as root); RLIMIT_NPROC is then lifted as far as the
    // host allows instead of adding up all environments of uid 993.
    let nproc_line = out.lines().nth(3).unwrap_or("").to_string();
    let nproc_ok = if is_root() {
        let (soft, hard) = nproc_line.split_once(' ').unwrap_or(("", ""));
        soft == hard && (soft == "unlimited" || soft.parse::<u64>().is_ok_and(|n| n >= 99 * 16))
    } else {
        nproc_line == "99 99"
    };
    check(nproc_ok, || format!("max processes {nproc_line:?}"))?;
    let out = out.replacen(&format!("{nproc_line}\n"), "", 1);
    let want = "PATH=/usr/local/bin:/usr/bin:/bin\nLANG=C.UTF-8\nUPDRAFT_TEST=1\n777 777\n/var/task\n0022\n0 1 2 3 ";
    check(out == want, || format!("got {out:?}, want {want:?}"))
}

fn seccomp_denies_dangerous_syscalls(ctx: &Ctx) -> Result<(), String> {
    let code = r#"
import ctypes, json, os, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *a):
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(x) for x in a])
    return 0 if r >= 0 else ctypes.get_errno()
r = {
  "keyctl": sc(250, 0, 0),
  "add_key": sc(248, 0, 0, 0, 0, 0),
  "mount": sc(165, 0, 0, 0, 0, 0),
  "umount2": sc(166, 0, 0),
  "unshare_user": sc(272, 0x10000000),
  "setns": sc(308, 0, 0),
  "ptrace": sc(101, 0, 0, 0, 0),
  "bpf": sc(321, 0, 0, 0),
  "perf_event_open": sc(298, 0, 0, 0, 0, 0),
  "userfaultfd": sc(323, 0),
  "io_uring_setup": sc(425, 1, 0),
  "clone_newuser": sc(56, 0x10000000 | 17, 0, 0, 0, 0),
  "clone3": sc(435, 0, 0),
  "tiocsti_high_bits": sc(16, 0, 0x5412 | (1 << 32), 0),
  "personality_no_aslr": sc(135, 0x0040000),
  "personality_query": sc(135, 0xffffffff),
  "settimeofday": sc(164, 0, 0),
}
t = threading.Thread(target=lambda: None); t.start(); t.join()
pid = os.fork()
if pid == 0:
    os._exit(7)
r["fork_child_exit"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
r["subprocess"] = subprocess.run(["/bin/true"]).returncode
print(json.dumps(r, sort_keys=True))
"#;
    let out = run_ok(ctx, &ctx.python("seccomp", code)?)?;
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).map_err(|e| format!("{e}: {out}"))?;
    let eperm = libc::EPERM as i64;
    for k in [
        "keyctl",
        "add_key",
        "mount",
        "umount2",
        "unshare_user",
        "setns",
        "ptrace",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "io_uring_setup",
        "clone_newuser",
        "tiocsti_high_bits",
        "personality_no_aslr",
        "settimeofday",
    ] {
        check(v[k].as_i64() == Some(eperm), || {
            format!("{k}: {} (want EPERM)", v[k])
        })?;
    }
    check(v["clone3"].as_i64() == Some(libc::ENOSYS as i64), || {
        format!("clone3: {}", v["clone3"])
    })?;
    check(v["personality_query"] == 0, || {
        format!("personality query: {}", v["personality_query"])
    })?;
    check(v["fork_child_exit"] == 7, || {
        format!("fork: {}", v["fork_child_exit"])
    })?;
    check(v["subprocess"] == 0, || {
        format!("subprocess: {}", v["subprocess"])
    })
}

fn accept_within(listener: &TcpListener, limit: Duration) -> Result<TcpStream, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).map_err(|e| e.to_string())?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() > limit {
                    return Err("no connection from the jail".into());
                }
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn runtime_api_listener_is_private_to_the_environment(ctx: &Ctx) -> Result<(), String> {
    let code = "import socket\n\
        s = socket.create_connection(('127.0.0.1', 9001), timeout=10)\n\
        s.sendall(b'hello from jail')\n\
        print(s.recv(100).decode())\n";
    let spec = ctx.python("api", code)?;
    let mut jail = ctx.spawn(&spec)?;
    let out = collect(jail.take_stdout());
    let err = collect(jail.take_stderr());
    let listener = jail.take_runtime_api_listener().ok_or("no listener")?;
    check(jail.take_runtime_api_listener().is_none(), || {
        "listener taken twice".into()
    })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    check(addr.to_string() == "127.0.0.1:9001", || {
        format!("bound at {addr}")
    })?;

    // From the host's network namespace, 127.0.0.1:9001 is somebody else (or nobody).
    let from_host = TcpStream::connect_timeout(&addr, Duration::from_millis(500));
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    if from_host.is_ok() {
        thread::sleep(Duration::from_millis(100));
    }
    let leaked = listener.accept().is_ok();
    check(!leaked, || {
        "a host connection reached the environment's listener".into()
    })?;

    let conn = accept_within(&listener, Duration::from_secs(20))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    answer_the_jail(conn, &jail, out, err)
}

/// Reads the jail's `hello from jail`, answers `pong`, and checks that the jail printed it and
/// exited 0.
fn answer_the_jail(
    mut conn: impl Read + Write,
    jail: &Jail,
    out: thread::JoinHandle<String>,
    err: thread::JoinHandle<String>,
) -> Result<(), String> {
    let mut buf = [0u8; 15];
    conn.read_exact(&mut buf).map_err(|e| e.to_string())?;
    check(&buf == b"hello from jail", || format!("read {buf:?}"))?;
    conn.write_all(b"pong").map_err(|e| e.to_string())?;
    drop(conn);
    let exit = jail.wait();
    let stdout = out.join().map_err(|_| "stdout")?;
    let stderr = err.join().map_err(|_| "stderr")?;
    check(exit.code == Some(0) && stdout == "pong\n", || {
        format!("exit {exit}, stdout {stdout:?}, stderr {stderr:?}")
    })
}

fn runtime_api_unix_socket_is_private_to_the_environment(ctx: &Ctx) -> Result<(), String> {
    let code = "import socket\n\
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
        s.settimeout(10)\n\
        s.connect('\\0updraft-runtime-api'.ljust(108, '\\0'))\n\
        s.sendall(b'hello from jail')\n\
        print(s.recv(100).decode())\n";
    let spec = ctx.python("apiunix", code)?;
    let mut jail = ctx.spawn(&spec)?;
    let out = collect(jail.take_stdout());
    let err = collect(jail.take_stderr());
    let listener = jail
        .take_runtime_api_unix_listener()
        .ok_or("no unix listener")?;
    check(jail.take_runtime_api_unix_listener().is_none(), || {
        "unix listener taken twice".into()
    })?;

    // The abstract name belongs to the environment's network namespace: from the host's, the
    // same name is somebody else's (or nobody's), never this listener.
    let name = abstract_socket_addr(RUNTIME_API_SOCKET_NAME).map_err(|e| e.to_string())?;
    let from_host = UnixStream::connect_addr(&name);
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    if from_host.is_ok() {
        thread::sleep(Duration::from_millis(100));
    }
    let leaked = listener.accept().is_ok();
    check(!leaked, || {
        "a host connection reached the environment's unix listener".into()
    })?;

    let start = Instant::now();
    let (conn, _) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() > Duration::from_secs(20) {
                    return Err("no connection from the jail".into());
                }
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    conn.set_nonblocking(false).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    answer_the_jail(conn, &jail, out, err)
}

fn loopback_is_the_only_interface(ctx: &Ctx) -> Result<(), String> {
    let out = run_ok(
        ctx,
        &ctx.sh("net", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"),
    )?;
    check(out == "lo\n", || format!("interfaces: {out:?}"))
}

fn memory_hog_is_oom_killed(ctx: &Ctx) -> Result<(), String> {
    let mut spec = ctx.python("oom", "x = b'\\x01' * (300 << 20)\nprint('survived')")?;
    spec.memory_mb = 64;
    let mut jail = ctx.spawn(&spec)?;
    let out = collect(jail.take_stdout());
    let err = collect(jail.take_stderr());
    let exit = jail.wait();
    let stdout = out.join().map_err(|_| "stdout")?;
    let _ = err.join();
    check(exit.signal == Some(libc::SIGKILL), || {
        format!("exit {exit}, stdout {stdout:?}")
    })?;
    check(jail.oom_killed(), || "oom_killed() is false".into())?;
    let peak = jail.memory_peak_bytes().ok_or("no memory peak")?;
    check(peak > 32 << 20 && peak <= 65 << 20, || {
        format!("peak {peak}")
    })
}

fn small_programs_are_not_oom_killed(ctx: &Ctx) -> Result<(), String> {
    let jail = ctx.spawn(&ctx.sh("nooom", "exit 0"))?;
    let exit = jail.wait();
    check(exit.code == Some(0) && !jail.oom_killed(), || {
        format!("exit {exit}")
    })
}

fn cgroup_limits_are_written(ctx: &Ctx) -> Result<(), String> {
    let mut spec = ctx.spec("cg", &["/bin/sleep", "1000"]);
    spec.memory_mb = 96;
    spec.pids_max = 50;
    let jail = ctx.spawn(&spec)?;
    let paths = jail.cgroup_paths();
    check(!paths.is_empty(), || "no cgroup".into())?;
    let mut saw_mem = false;
    let mut saw_pids = false;
    for p in &paths {
        check(p.ends_with(format!("updraft/{}", spec.id)), || {
            format!("path {}", p.display())
        })?;
        for (file, want) in [
            ("memory.limit_in_bytes", (96u64 << 20).to_string()),
            ("memory.max", (96u64 << 20).to_string()),
            ("pids.max", "50".to_string()),
        ] {
            if let Ok(v) = std::fs::read_to_string(p.join(file)) {
                check(v.trim() == want, || format!("{file} = {v:?}, want {want}"))?;
                saw_mem |= file.starts_with("memory");
                saw_pids |= file == "pids.max";
            }
        }
        let procs = std::fs::read_to_string(p.join("cgroup.procs")).unwrap_or_default();
        // Only the environment (sleep as pid 1); the helper stays outside.
        check(procs.lines().count() == 1, || {
            format!("cgroup.procs in {}: {procs:?}", p.display())
        })?;
    }
    check(saw_mem && saw_pids, || {
        format!("limits not found in {paths:?}")
    })?;
    drop(jail);
    for p in &paths {
        check(!p.exists(), || format!("{} left behind", p.display()))?;
    }
    Ok(())
}

/// The host pids of the environment's processes, from its first cgroup (every hierarchy lists
/// the same ones).
fn environment_pids(jail: &Jail) -> Vec<i32> {
    jail.cgroup_paths()
        .first()
        .and_then(|p| std::fs::read_to_string(p.join("cgroup.procs")).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// Fields 5 and 6 of `/proc/<pid>/stat`: process group and session.
fn pgrp_and_session(pid: &str) -> Result<(i32, i32), String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    match (
        f.get(2).and_then(|v| v.parse().ok()),
        f.get(3).and_then(|v| v.parse().ok()),
    ) {
        (Some(pgrp), Some(sid)) => Ok((pgrp, sid)),
        _ => Err(format!("cannot parse {stat:?}")),
    }
}

fn own_process_group_in_the_servers_session(ctx: &Ctx) -> Result<(), String> {
    let spec = ctx.spec("pgrp", &["/bin/sleep", "1000"]);
    let jail = ctx.spawn(&spec)?;
    let pid = environment_pids(&jail)
        .first()
        .map(i32::to_string)
        .ok_or("no process in the environment's cgroup")?;
    let (pgrp, sid) = pgrp_and_session(&pid)?;
    let (_, our_sid) = pgrp_and_session("self")?;
    check(pgrp.to_string() == pid, || {
        format!("pid {pid} is in process group {pgrp}, not its own")
    })?;
    // A session per environment would make each one a CPU scheduling group of its own on hosts
    // with autogroup scheduling.
    check(sid == our_sid, || {
        format!("pid {pid} is in session {sid}, the server in {our_sid}")
    })?;
    let group = |p: &str| std::fs::read_to_string(format!("/proc/{p}/autogroup")).ok();
    check(group(&pid) == group("self"), || {
        format!(
            "autogroup {:?}, the server's {:?}",
            group(&pid),
            group("self")
        )
    })
}

fn kill_ends_a_sleeping_environment_promptly(ctx: &Ctx) -> Result<(), String> {
    let jail = std::sync::Arc::new(ctx.spawn(&ctx.spec("kill", &["/bin/sleep", "1000"]))?);
    let waiter = {
        let j = jail.clone();
        thread::spawn(move || j.wait())
    };
    thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    jail.kill();
    let exit = waiter.join().map_err(|_| "waiter panicked")?;
    let took = t0.elapsed();
    check(took < Duration::from_secs(2), || {
        format!("kill took {took:?}")
    })?;
    check(exit.signal == Some(libc::SIGKILL), || {
        format!("exit {exit}")
    })?;
    // Harmless on a dead environment, and wait keeps answering.
    jail.kill();
    check(jail.wait() == exit, || "second wait differs".into())
}

fn dropping_the_jail_kills_everything(ctx: &Ctx) -> Result<(), String> {
    // A background child that ignores SIGTERM and outlives its parent's exec.
    let jail = ctx.spawn(&ctx.sh("drop", "trap '' TERM; sleep 1000 & sleep 1000"))?;
    thread::sleep(Duration::from_millis(200));
    let procs = environment_pids(&jail);
    check(procs.len() == 3, || {
        format!("expected sh and two sleeps: {procs:?}")
    })?;
    drop(jail);
    thread::sleep(Duration::from_millis(100));
    for pid in procs {
        // SAFETY: signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        check(!alive, || {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            format!(
                "pid {pid} survived the drop: {cmd:?} {}",
                status.lines().take(8).collect::<Vec<_>>().join("; ")
            )
        })?;
    }
    Ok(())
}

fn exec_failure_names_the_step(ctx: &Ctx) -> Result<(), String> {
    match spawn(
        &ctx.spec("noexec", &["/nonexistent/bootstrap"]),
        &ctx.helper,
    ) {
        Err(SandboxError::Setup {
            step: Step::Exec,
            message,
        }) => check(
            message.contains("/nonexistent/bootstrap") && message.contains("ENOENT"),
            || format!("message {message:?}"),
        ),
        Err(e) => Err(format!("wrong error: {e}")),
        Ok(_) => Err("spawned a missing program".into()),
    }
}

fn missing_code_dir_fails_in_mounts(ctx: &Ctx) -> Result<(), String> {
    let mut spec = ctx.sh("nocode", "true");
    spec.code_dir = "/nonexistent/code".into();
    match spawn(&spec, &ctx.helper) {
        Err(SandboxError::Setup {
            step: Step::Mounts,
            message,
        }) => check(
            message.contains("code_dir /nonexistent/code does not exist"),
            || format!("message {message:?}"),
        ),
        Err(e) => Err(format!("wrong error: {e}")),
        Ok(_) => Err("spawned without code".into()),
    }
}

fn devices_and_mounts_look_right(ctx: &Ctx) -> Result<(), String> {
    let out = run_ok(
        ctx,
        &ctx.sh(
            "dev",
            "ls -A /dev | tr '\\n' ' '; echo; head -c 8 /dev/urandom | wc -c; \
             awk '{print $5, substr($6, 1, 2)}' /proc/self/mountinfo | sort",
        ),
    )?;
    let mut lines = out.lines();
    let devs = lines.next().unwrap_or("");
    check(
        devs == "fd full null random shm stderr stdin stdout urandom zero ",
        || format!("/dev has {devs:?}"),
    )?;
    check(lines.next() == Some("8"), || format!("urandom: {out:?}"))?;
    let mounts: Vec<&str> = lines.collect();
    for want in [
        "/ ro",
        "/var/task ro",
        "/usr ro",
        "/tmp rw",
        "/proc rw",
        "/proc/sys ro",
        "/dev ro",
        "/dev/shm rw",
    ] {
        check(mounts.contains(&want), || {
            format!("missing mount {want:?} in {mounts:?}")
        })?;
    }
    Ok(())
}

fn pids_limit_holds(ctx: &Ctx) -> Result<(), String> {
    let code = "import os, time\n\
        pids, err = [], None\n\
        for i in range(40):\n\
        \x20   try:\n\
        \x20       pid = os.fork()\n\
        \x20   except OSError as e:\n\
        \x20       err = e.errno\n\
        \x20       break\n\
        \x20   if pid == 0:\n\
        \x20       time.sleep(30)\n\
        \x20       os._exit(0)\n\
        \x20   pids.append(pid)\n\
        print(len(pids), err)\n";
    let mut spec = ctx.python("pids", code)?;
    spec.pids_max = 16;
    let out = run_ok(ctx, &spec)?;
    let mut it = out.split_whitespace();
    let forked: usize = it
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or(format!("output {out:?}"))?;
    let errno = it.next().unwrap_or("");
    check(forked < 16 && errno == libc::EAGAIN.to_string(), || {
        format!("forked {forked} children with pids_max 16 (errno {errno})")
    })
}

/// Starts `n` threads that stay alive, reports how many started over the Runtime API socket,
/// waits for "go", then prints `<started> <error>`.
const THREADS: &str = r#"
import socket, sys, threading
threading.stack_size(256 * 1024)
go = threading.Event()
started, err, ts = 0, None, []
for i in range(int(sys.argv[1])):
    t = threading.Thread(target=go.wait)
    try:
        t.start()
    except RuntimeError as e:
        err = str(e)
        break
    ts.append(t)
    started += 1
s = socket.create_connection(('127.0.0.1', 9001), timeout=60)
s.sendall(b'%d\n' % started)
s.recv(10)
go.set()
for t in ts:
    t.join()
print(started, err)
"#;

fn thread_env(ctx: &Ctx, name: &str, n: u32) -> Result<(Jail, TcpStream, u32), String> {
    let mut spec = ctx.python(name, THREADS)?;
    spec.argv.push(n.to_string());
    spec.pids_max = 1024;
    spec.memory_mb = 512;
    let mut jail = ctx.spawn(&spec)?;
    let listener = jail.take_runtime_api_listener().ok_or("no listener")?;
    let conn = accept_within(&listener, Duration::from_secs(60))?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::BufReader::new(&conn)
        .read_line(&mut line)
        .map_err(|e| format!("{name}: {e}"))?;
    let started = line
        .trim()
        .parse()
        .map_err(|_| format!("{name}: reported {line:?}"))?;
    Ok((jail, conn, started))
}

fn finish_thread_env(jail: Jail, mut conn: TcpStream) -> Result<String, String> {
    let mut jail = jail;
    let out = collect(jail.take_stdout());
    let err = collect(jail.take_stderr());
    conn.write_all(b"go").map_err(|e| e.to_string())?;
    let exit = jail.wait();
    let stdout = out.join().map_err(|_| "stdout")?;
    let stderr = err.join().map_err(|_| "stderr")?;
    check(exit.code == Some(0), || {
        format!("exit {exit}, stdout {stdout:?}, stderr {stderr:?}")
    })?;
    Ok(stdout)
}

/// Regression: RLIMIT_NPROC is per uid host-wide and every environment is uid 993, so threads
/// of unrelated environments used to add up against each one's limit.
fn threads_are_limited_per_environment_not_per_uid(ctx: &Ctx) -> Result<(), String> {
    // Three environments hold 400 threads each at the same time: 1,200 tasks of uid 993 in
    // total, more than any one environment's cap of 1,024.
    let results: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|i| s.spawn(move || thread_env(ctx, &format!("thr{i}"), 400)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    let mut envs = Vec::new();
    for r in results {
        envs.push(r?);
    }
    for (_, _, started) in &envs {
        check(*started == 400, || {
            format!("started {started} of 400 threads while three environments ran")
        })?;
    }
    for (jail, conn, _) in envs {
        let out = finish_thread_env(jail, conn)?;
        check(out == "400 None\n", || format!("printed {out:?}"))?;
    }
    // One environment alone stops at its own cap.
    let (jail, conn, started) = thread_env(ctx, "thrcap", 1100)?;
    let out = finish_thread_env(jail, conn)?;
    check(
        (1000..1024).contains(&started) && out.contains("can't start new thread"),
        || format!("started {started} of 1100 with pids_max 1024: {out:?}"),
    )
}

fn environments_run_side_by_side(ctx: &Ctx) -> Result<(), String> {
    let specs: Vec<JailSpec> = (0..3)
        .map(|i| {
            ctx.sh(
                &format!("par{i}"),
                &format!("sleep 0.3; hostname; echo {i}"),
            )
        })
        .collect();
    let handles: Vec<_> = specs
        .into_iter()
        .map(|s| {
            let helper = ctx.helper.clone();
            thread::spawn(move || -> Result<(String, String), String> {
                let mut jail = spawn(&s, &helper).map_err(|e| e.to_string())?;
                check(jail.take_runtime_api_listener().is_some(), || {
                    "no listener".into()
                })?;
                let out = collect(jail.take_stdout());
                jail.wait();
                Ok((s.id, out.join().map_err(|_| "stdout")?))
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let (id, out) = h.join().map_err(|_| "thread panicked")??;
        check(out == format!("{id}\n{i}\n"), || {
            format!("env {i}: {out:?}")
        })?;
    }
    Ok(())
}

fn doctor_reports_full_isolation_as_root(_ctx: &Ctx) -> Result<(), String> {
    let r = doctor();
    println!("{r}");
    check(r.degraded().is_empty(), || {
        format!("degraded: {:?}", r.degraded())
    })
}

fn node_and_java_start(ctx: &Ctx) -> Result<(), String> {
    let mut ran = 0;
    if Path::new("/usr/bin/node").exists() {
        let out = run_ok(
            ctx,
            &ctx.spec(
                "node",
                &[
                    "/usr/bin/node",
                    "-e",
                    "const w = new (require('worker_threads').Worker)('1', {eval: true}); \
                     w.on('exit', () => console.log('node', require('os').userInfo().uid))",
                ],
            ),
        )?;
        check(out == "node 993\n", || format!("node printed {out:?}"))?;
        ran += 1;
    }
    if Path::new("/usr/bin/java").exists() {
        let mut spec = ctx.sh("java", "java -Xshare:off -version 2>&1 | head -1");
        spec.memory_mb = 512;
        let out = run_ok(ctx, &spec)?;
        check(out.contains("version"), || format!("java printed {out:?}"))?;
        ran += 1;
    }
    check(ran > 0, || "neither node nor java is installed".into())
}

/// Started as `<test binary> __orphan <code dir>`: spawns an environment and exits without
/// dropping it, as a crashing server would; prints the environment's cgroup directories.
fn orphan_main(code_dir: &str) -> ! {
    let spec = JailSpec {
        id: unique_id("orphan"),
        code_dir: code_dir.into(),
        runtime_dir: None,
        opt_dir: None,
        ro_paths: vec![],
        tmp_mb: 8,
        memory_mb: 64,
        pids_max: 16,
        cpu_ceiling: false,
        nofile: 64,
        argv: vec!["/bin/sleep".into(), "1000".into()],
        env: vec![],
        cwd: "/".into(),
        start: Start::Now,
    };
    let helper = std::env::current_exe().expect("current_exe");
    match spawn(&spec, &helper) {
        Ok(jail) => {
            for p in jail.cgroup_paths() {
                println!("{}", p.display());
            }
            let _ = std::io::stdout().flush();
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}

fn a_dead_server_takes_its_environments_along(ctx: &Ctx) -> Result<(), String> {
    let out = std::process::Command::new(&ctx.helper)
        .arg("__orphan")
        .arg(ctx.code.path())
        .output()
        .map_err(|e| e.to_string())?;
    check(out.status.success(), || {
        format!(
            "orphan run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let paths: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    check(!paths.is_empty(), || "no cgroup reported".into())?;
    let start = Instant::now();
    let mut left = String::new();
    while start.elapsed() < Duration::from_secs(5) {
        left = paths
            .iter()
            .map(|p| std::fs::read_to_string(p.join("cgroup.procs")).unwrap_or_default())
            .collect();
        if left.trim().is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    check(left.trim().is_empty(), || {
        format!("still running: {left:?}")
    })?;
    // What the next server start does (with a margin of a minute instead of two seconds; the
    // margin spares environments of other servers that are being set up right now).
    thread::sleep(Duration::from_secs(2));
    updraft_sandbox::remove_stale_cgroups(Duration::from_secs(2));
    for p in &paths {
        check(!p.exists(), || format!("{} not cleaned up", p.display()))?;
    }
    Ok(())
}

/// Start time of an environment with a disk-backed /tmp and, interleaved so both see the same
/// host load, with the tmpfs fallback (a scratch dir that cannot be created).
fn spawn_time_is_reported(ctx: &Ctx) -> Result<(), String> {
    let mut disk = Vec::new();
    let mut tmpfs = Vec::new();
    let result = (|| -> Result<(), String> {
        for i in 0..40 {
            let with_disk = i % 2 == 0;
            updraft_sandbox::set_scratch_dir(if with_disk {
                ctx.scratch.clone()
            } else {
                PathBuf::from("/proc/no-scratch-here")
            });
            let mut spec = ctx.spec(&format!("time{i}"), &["/bin/true"]);
            spec.tmp_mb = 512;
            let t0 = Instant::now();
            let jail = ctx.spawn(&spec)?;
            let took = t0.elapsed();
            let exit = jail.wait();
            check(exit.code == Some(0), || format!("exit {exit}"))?;
            let fell_back = jail.warnings().iter().any(|w| w.contains("/tmp"));
            check(fell_back != with_disk, || {
                format!("disk {with_disk}, warnings {:?}", jail.warnings())
            })?;
            if with_disk { &mut disk } else { &mut tmpfs }.push(took);
        }
        Ok(())
    })();
    updraft_sandbox::set_scratch_dir(ctx.scratch.clone());
    result?;
    let stats = |v: &mut Vec<Duration>| {
        v.sort();
        let mean = v.iter().sum::<Duration>() / v.len() as u32;
        (v[0], v[v.len() / 2], mean, v[v.len() - 1])
    };
    let (dmin, dmed, dmean, dmax) = stats(&mut disk);
    let (tmin, tmed, tmean, tmax) = stats(&mut tmpfs);
    println!(
        "spawn with disk /tmp (20 runs, tmp_mb 512): min {dmin:?} median {dmed:?} mean {dmean:?} max {dmax:?}"
    );
    println!(
        "spawn with tmpfs /tmp (20 runs, tmp_mb 512): min {tmin:?} median {tmed:?} mean {tmean:?} max {tmax:?}"
    );
    check(dmed < Duration::from_secs(1), || {
        format!("median spawn time {dmed:?}")
    })
}

// ---- pre-warmed environments -----------------------------------------------------------------

fn assignment(ctx: &Ctx, argv: &[&str]) -> Assignment {
    Assignment {
        code_dir: ctx.code.path().to_path_buf(),
        memory_mb: 96,
        cpu_ceiling: false,
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("GREETING".into(), "assigned".into()),
        ],
        cwd: "/var/task".into(),
        opt_dir: None,
    }
}

fn memory_limit_of(jail: &Jail) -> Option<u64> {
    jail.cgroup_paths().iter().find_map(|p| {
        ["memory.limit_in_bytes", "memory.max"]
            .iter()
            .find_map(|f| std::fs::read_to_string(p.join(f)).ok())
            .and_then(|v| v.trim().parse().ok())
    })
}

fn deferred_environment_runs_its_assignment(ctx: &Ctx) -> Result<(), String> {
    let empty = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut spec = ctx.spec("deferred", &[]);
    spec.code_dir = empty.path().to_path_buf();
    spec.start = Start::Deferred;
    spec.env = vec![("GREETING".into(), "template".into())];
    let mut jail = ctx.spawn(&spec)?;
    check(jail.is_unassigned(), || {
        "not waiting for an assignment".into()
    })?;
    check(jail.try_wait().is_none(), || {
        "exited before its assignment".into()
    })?;
    let out = collect(jail.take_stdout());
    let err = collect(jail.take_stderr());
    let script = "cat handler.txt; echo $GREETING; pwd; id -u; \
                  (echo x > /var/task/w) 2>/dev/null || echo read-only";
    jail.assign(&assignment(ctx, &["/bin/sh", "-c", script]))
        .map_err(|e| format!("assign: {e}"))?;
    check(memory_limit_of(&jail) == Some(96 << 20), || {
        format!("memory limit {:?}", memory_limit_of(&jail))
    })?;
    check(!jail.is_unassigned(), || "still unassigned".into())?;
    let again = jail.assign(&assignment(ctx, &["/bin/true"]));
    check(matches!(again, Err(SandboxError::Protocol(_))), || {
        format!("second assignment: {again:?}")
    })?;
    let exit = jail.wait();
    drop(jail);
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    check(exit.code == Some(0), || {
        format!("exit {exit}: {out:?} {err:?}")
    })?;
    check(
        out == "handler code\nassigned\n/var/task\n993\nread-only\n",
        || format!("got {out:?}, stderr {err:?}"),
    )
}

fn assignment_mounts_layers_on_opt(ctx: &Ctx) -> Result<(), String> {
    let empty = tempfile::tempdir().map_err(|e| e.to_string())?;
    let layers = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::create_dir(layers.path().join("bin")).map_err(|e| e.to_string())?;
    std::fs::write(layers.path().join("bin/note"), "from a layer\n").map_err(|e| e.to_string())?;
    let mut spec = ctx.spec("deferred-opt", &[]);
    spec.code_dir = empty.path().to_path_buf();
    spec.start = Start::Deferred;
    let mut jail = ctx.spawn(&spec)?;
    let out = collect(jail.take_stdout());
    let script = "cat /opt/bin/note; (echo x > /opt/w) 2>/dev/null || echo read-only";
    let mut a = assignment(ctx, &["/bin/sh", "-c", script]);
    a.opt_dir = Some(layers.path().to_path_buf());
    jail.assign(&a).map_err(|e| format!("assign: {e}"))?;
    let exit = jail.wait();
    drop(jail);
    let out = out.join().unwrap_or_default();
    check(
        exit.code == Some(0) && out == "from a layer\nread-only\n",
        || format!("exit {exit}: {out:?}"),
    )
}

fn deferred_environment_reports_a_failed_exec(ctx: &Ctx) -> Result<(), String> {
    let empty = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut spec = ctx.spec("deferred-bad", &[]);
    spec.code_dir = empty.path().to_path_buf();
    spec.start = Start::Deferred;
    let mut jail = ctx.spawn(&spec)?;
    let e = jail
        .assign(&assignment(ctx, &["/var/task/missing"]))
        .err()
        .ok_or("a missing program was assigned")?;
    check(
        matches!(&e, SandboxError::Setup { step: Step::Exec, message } if message.contains("missing")),
        || format!("got {e}"),
    )
}

fn template_environment_reads_its_assignment(ctx: &Ctx) -> Result<(), String> {
    let empty = tempfile::tempdir().map_err(|e| e.to_string())?;
    // Stands in for a runtime client: starts, shows what it sees, then waits on its assignment.
    let script = "echo \"before: $(ls -A /var/task) $GREETING\"; \
                  cat <&$_UPDRAFT_ASSIGNMENT_FD; echo; cd /var/task && cat handler.txt";
    let mut spec = ctx.sh("template", script);
    spec.code_dir = empty.path().to_path_buf();
    spec.start = Start::Template;
    spec.env.push(("GREETING".into(), "template".into()));
    let mut jail = ctx.spawn(&spec)?;
    let mut stdout =
        std::io::BufReader::new(std::fs::File::from(jail.take_stdout().ok_or("no stdout")?));
    // The template's first line is written before the assignment is sent.
    let mut first = String::new();
    stdout.read_line(&mut first).map_err(|e| e.to_string())?;
    check(first == "before:  template\n", || format!("got {first:?}"))?;
    jail.assign(&assignment(ctx, &[]))
        .map_err(|e| format!("assign: {e}"))?;
    let exit = jail.wait();
    drop(jail);
    let mut out = String::new();
    stdout.read_to_string(&mut out).map_err(|e| e.to_string())?;
    check(exit.code == Some(0), || format!("exit {exit}: {out:?}"))?;
    let lines: Vec<&str> = std::iter::once("").chain(out.lines()).collect();
    let sent: serde_json::Value = serde_json::from_str(lines.get(1).unwrap_or(&""))
        .map_err(|e| format!("assignment line: {e}: {out:?}"))?;
    check(sent["cwd"] == "/var/task", || format!("got {sent}"))?;
    check(
        sent["env"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p[0] == "GREETING" && p[1] == "assigned")),
        || format!("got {sent}"),
    )?;
    check(lines.get(2) == Some(&"handler code"), || {
        format!("got {out:?}")
    })
}

fn only_prewarmed_environments_take_assignments(ctx: &Ctx) -> Result<(), String> {
    let mut jail = ctx.spawn(&ctx.spec("plain", &["/bin/sleep", "1000"]))?;
    let e = jail.assign(&assignment(ctx, &["/bin/true"]));
    check(matches!(e, Err(SandboxError::Protocol(_))), || {
        format!("got {e:?}")
    })?;
    let mut bad = assignment(ctx, &["/bin/true"]);
    bad.code_dir = PathBuf::from("relative/code");
    let e = jail.assign(&bad);
    check(matches!(e, Err(SandboxError::InvalidSpec(_))), || {
        format!("got {e:?}")
    })
}

/// What a case needs beyond user namespaces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing: runs unprivileged too (through a user namespace).
    Nothing,
    /// Root: cgroups on a host without delegation.
    Root,
    /// A `python3` on `PATH`.
    Python,
    /// Both.
    RootAndPython,
}

fn degradation_is_reported_without_root(ctx: &Ctx) -> Result<(), String> {
    let mut jail = ctx.spawn(&ctx.sh("degraded", "id -u"))?;
    let out = collect(jail.take_stdout());
    let exit = jail.wait();
    let stdout = out.join().map_err(|_| "stdout")?;
    check(exit.code == Some(0) && stdout == "993\n", || {
        format!("{exit} {stdout:?}")
    })?;
    let w = jail.warnings().join("; ");
    check(w.contains("not running as root"), || {
        format!("warnings: {w:?}")
    })
}

/// Runs one case in a copy of this binary started as `nobody`: a case about running without
/// root cannot run in a root process. The copy sits in a directory anyone may enter, so the
/// checkout's own permissions do not matter.
fn run_case_unprivileged(name: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod: {e}"))?;
    let exe = dir.path().join("jail-unprivileged");
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    std::fs::copy(&me, &exe).map_err(|e| format!("copy {}: {e}", me.display()))?;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod: {e}"))?;
    let out = std::process::Command::new(&exe)
        .arg(name)
        .uid(NOBODY)
        .gid(NOBODY)
        .current_dir("/")
        .env("HOME", "/nonexistent")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("start {}: {e}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    check(
        out.status.success() && stdout.contains(&format!("test {name} ... ok")),
        || format!("{}; stdout: {stdout:?}; stderr: {stderr:?}", out.status),
    )
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("__jail") {
        jail_main();
    }
    if std::env::args().nth(1).as_deref() == Some("__orphan") {
        orphan_main(&std::env::args().nth(2).unwrap_or_default());
    }
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let ci = std::env::var("CI")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && !doctor().passed("user namespaces") {
        if ci {
            println!("jail tests cannot run: they need root or user namespaces, and CI=true");
            println!("0 passed, 1 failed, 0 skipped");
            std::process::exit(1);
        }
        println!("jail tests skipped: they need root or user namespaces");
        return;
    }
    let code = tempfile::tempdir().expect("tempdir");
    std::fs::write(code.path().join("handler.txt"), "handler code\n").expect("write code");
    // On disk (not the host's /tmp, which may be a tmpfs), so /tmp images are real disk.
    let scratch_root = tempfile::tempdir_in("/var/tmp").expect("scratch tempdir");
    let scratch = scratch_root.path().join("scratch");
    updraft_sandbox::set_scratch_dir(&scratch);
    let ctx = std::sync::Arc::new(Ctx {
        helper: std::env::current_exe().expect("current_exe"),
        code,
        scratch,
        _scratch_root: scratch_root,
        python: HostPython::find(),
    });
    if !root {
        println!("not root: running the cases that work through a user namespace");
    }

    use Need::*;
    let cases: &[(&str, Case, Need)] = &[
        (
            "runs_as_the_sandbox_user",
            runs_as_the_sandbox_user,
            Nothing,
        ),
        (
            "stdout_stderr_and_exit_code_are_captured",
            stdout_stderr_and_exit_code_are_captured,
            Nothing,
        ),
        (
            "code_is_read_only_and_only_tmp_is_writable",
            code_is_read_only_and_only_tmp_is_writable,
            Nothing,
        ),
        (
            "tmp_is_limited_to_tmp_mb",
            tmp_is_limited_to_tmp_mb,
            Nothing,
        ),
        ("tmp_is_disk_not_memory", tmp_is_disk_not_memory, Root),
        (
            "proc_shows_only_the_jail",
            proc_shows_only_the_jail,
            Nothing,
        ),
        (
            "host_paths_are_invisible",
            host_paths_are_invisible,
            Nothing,
        ),
        (
            "hostname_is_the_environment_id",
            hostname_is_the_environment_id,
            Nothing,
        ),
        ("privileges_are_dropped", privileges_are_dropped, Nothing),
        (
            "deferred_environment_runs_its_assignment",
            deferred_environment_runs_its_assignment,
            Root,
        ),
        (
            "deferred_environment_reports_a_failed_exec",
            deferred_environment_reports_a_failed_exec,
            Root,
        ),
        (
            "assignment_mounts_layers_on_opt",
            assignment_mounts_layers_on_opt,
            Root,
        ),
        (
            "template_environment_reads_its_assignment",
            template_environment_reads_its_assignment,
            Root,
        ),
        (
            "only_prewarmed_environments_take_assignments",
            only_prewarmed_environments_take_assignments,
            Nothing,
        ),
        (
            "environment_and_limits_are_exact",
            environment_and_limits_are_exact,
            Nothing,
        ),
        (
            "seccomp_denies_dangerous_syscalls",
            seccomp_denies_dangerous_syscalls,
            Python,
        ),
        (
            "runtime_api_listener_is_private_to_the_environment",
            runtime_api_listener_is_private_to_the_environment,
            Python,
        ),
        (
            "runtime_api_unix_socket_is_private_to_the_environment",
            runtime_api_unix_socket_is_private_to_the_environment,
            Python,
        ),
        (
            "loopback_is_the_only_interface",
            loopback_is_the_only_interface,
            Nothing,
        ),
        (
            "memory_hog_is_oom_killed",
            memory_hog_is_oom_killed,
            RootAndPython,
        ),
        (
            "small_programs_are_not_oom_killed",
            small_programs_are_not_oom_killed,
            Root,
        ),
        ("cgroup_limits_are_written", cgroup_limits_are_written, Root),
        (
            "own_process_group_in_the_servers_session",
            own_process_group_in_the_servers_session,
            Root,
        ),
        (
            "kill_ends_a_sleeping_environment_promptly",
            kill_ends_a_sleeping_environment_promptly,
            Nothing,
        ),
        (
            "dropping_the_jail_kills_everything",
            dropping_the_jail_kills_everything,
            Root,
        ),
        (
            "exec_failure_names_the_step",
            exec_failure_names_the_step,
            Nothing,
        ),
        (
            "missing_code_dir_fails_in_mounts",
            missing_code_dir_fails_in_mounts,
            Nothing,
        ),
        (
            "devices_and_mounts_look_right",
            devices_and_mounts_look_right,
            Nothing,
        ),
        ("pids_limit_holds", pids_limit_holds, RootAndPython),
        (
            "threads_are_limited_per_environment_not_per_uid",
            threads_are_limited_per_environment_not_per_uid,
            RootAndPython,
        ),
        (
            "environments_run_side_by_side",
            environments_run_side_by_side,
            Nothing,
        ),
        (
            "a_dead_server_takes_its_environments_along",
            a_dead_server_takes_its_environments_along,
            Root,
        ),
        ("node_and_java_start", node_and_java_start, Nothing),
        ("spawn_time_is_reported", spawn_time_is_reported, Nothing),
        (
            "doctor_reports_full_isolation_as_root",
            doctor_reports_full_isolation_as_root,
            Root,
        ),
        (
            "degradation_is_reported_without_root",
            degradation_is_reported_without_root,
            Nothing,
        ),
    ];

    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (name, case, need) in cases {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let needs_root = matches!(need, Root | RootAndPython);
        let needs_python = matches!(need, Python | RootAndPython);
        let skip = if needs_root && !root {
            Some("needs root")
        } else if needs_python && ctx.python.is_none() {
            Some("needs python3 on PATH")
        } else {
            None
        };
        if let Some(why) = skip {
            if ci {
                failed += 1;
                println!("test {name} ... FAILED: {why}, and CI=true requires every case to run");
            } else {
                skipped += 1;
                println!("test {name} ... skipped ({why})");
            }
            continue;
        }
        if root && *name == "degradation_is_reported_without_root" {
            let t0 = Instant::now();
            match run_case_unprivileged(name) {
                Ok(()) => {
                    passed += 1;
                    println!(
                        "test {name} ... ok, as an unprivileged user ({:?})",
                        t0.elapsed()
                    );
                }
                Err(e) => {
                    failed += 1;
                    println!("test {name} ... FAILED as an unprivileged user: {e}");
                }
            }
            continue;
        }
        let (tx, rx) = mpsc::channel();
        let c = ctx.clone();
        let case = *case;
        thread::spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&c)))
                .unwrap_or_else(|_| Err("panicked".into()));
            let _ = tx.send(r);
        });
        let t0 = Instant::now();
        let result = rx
            .recv_timeout(CASE_TIMEOUT)
            .unwrap_or_else(|_| Err(format!("timed out after {CASE_TIMEOUT:?}")));
        match result {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({:?})", t0.elapsed());
            }
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED: {e}");
            }
        }
        let _ = std::io::stdout().flush();
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    // Removes the temporary code and scratch directories (exit skips destructors); a case
    // that timed out may still hold a reference, then they stay.
    drop(ctx);
    if failed > 0 {
        std::process::exit(1);
    }
}
