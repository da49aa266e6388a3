//! The seam between the engine and the sandbox: a [`Launcher`] turns a `JailSpec` into a running
//! [`Sandboxed`] environment. In production that is `updraft_sandbox::spawn` (namespaces, cgroup,
//! seccomp, ...); the engine's own unit tests use a launcher that runs the runtime as a plain host
//! process, so pool logic is tested without privileges.

use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use updraft_sandbox::{ExitInfo, Jail, JailSpec};

/// A running environment, as the engine needs it. Implementations are `Send + Sync`: `wait` blocks
/// on one thread while `kill` may be called from another.
pub(crate) trait Sandboxed: Send + Sync {
    fn take_runtime_api_listener(&mut self) -> Option<TcpListener>;
    /// The same API on a Unix socket, for the runtime clients that look for one.
    fn take_runtime_api_unix_listener(&mut self) -> Option<UnixListener>;
    fn take_stdout(&mut self) -> Option<OwnedFd>;
    fn take_stderr(&mut self) -> Option<OwnedFd>;
    /// Kills every process of the environment; harmless when already dead.
    fn kill(&self);
    /// Blocks until the environment has exited.
    fn wait(&self) -> ExitInfo;
    fn memory_peak_bytes(&self) -> Option<u64>;
    /// Memory the environment uses right now, in bytes.
    fn memory_current_bytes(&self) -> Option<u64>;
    fn oom_killed(&self) -> bool;
    /// Freezes every process of the environment; `false` when it cannot be frozen here.
    fn freeze(&self) -> bool {
        false
    }
    /// Lets a frozen environment run again.
    fn thaw(&self) {}
    /// Asks the runtime to stop (SIGTERM); `kill` follows after a grace period.
    fn terminate(&self) {}
    /// A connection to `127.0.0.1:port` inside the environment (a Telemetry API listener).
    fn connect_in_env(&self, port: u16) -> Result<std::net::TcpStream, String> {
        std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())
    }
}

/// Starts environments. `launch` blocks (the engine calls it in `spawn_blocking`).
pub(crate) trait Launcher: Send + Sync {
    fn launch(&self, spec: &JailSpec) -> Result<Box<dyn Sandboxed>, String>;
    /// Stops whatever the launcher keeps running besides the environments it handed out.
    fn shutdown(&self) {}
    /// What pre-warming did, for launchers that pre-warm.
    fn prewarm_stats(&self) -> Option<crate::prewarm::PrewarmStats> {
        None
    }
}

/// Starts environments with Updraft's sandbox, re-executing `helper_exe __jail`.
pub(crate) struct JailLauncher {
    helper_exe: PathBuf,
}

impl JailLauncher {
    pub(crate) fn new(helper_exe: PathBuf) -> Self {
        JailLauncher { helper_exe }
    }

    /// Builds an environment and hands out the [`Jail`] itself (a pre-warmed one, which is
    /// assigned later). Blocking.
    pub(crate) fn spawn(&self, spec: &JailSpec) -> Result<Jail, updraft_sandbox::SandboxError> {
        updraft_sandbox::spawn(spec, &self.helper_exe)
    }
}

impl Launcher for JailLauncher {
    fn launch(&self, spec: &JailSpec) -> Result<Box<dyn Sandboxed>, String> {
        self.spawn(spec)
            .map(|j| Box::new(j) as Box<dyn Sandboxed>)
            .map_err(|e| e.to_string())
    }
}

impl Sandboxed for Jail {
    fn take_runtime_api_listener(&mut self) -> Option<TcpListener> {
        Jail::take_runtime_api_listener(self)
    }
    fn take_runtime_api_unix_listener(&mut self) -> Option<UnixListener> {
        Jail::take_runtime_api_unix_listener(self)
    }
    fn take_stdout(&mut self) -> Option<OwnedFd> {
        Jail::take_stdout(self)
    }
    fn take_stderr(&mut self) -> Option<OwnedFd> {
        Jail::take_stderr(self)
    }
    fn kill(&self) {
        Jail::kill(self)
    }
    fn wait(&self) -> ExitInfo {
        Jail::wait(self)
    }
    fn memory_peak_bytes(&self) -> Option<u64> {
        Jail::memory_peak_bytes(self)
    }
    fn memory_current_bytes(&self) -> Option<u64> {
        Jail::memory_current_bytes(self)
    }
    fn oom_killed(&self) -> bool {
        Jail::oom_killed(self)
    }
    fn freeze(&self) -> bool {
        if !self.can_freeze() {
            return false;
        }
        match Jail::freeze(self) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("environment {}: cannot freeze: {e}", self.id());
                false
            }
        }
    }
    fn terminate(&self) {
        Jail::terminate(self)
    }
    fn connect_in_env(&self, port: u16) -> Result<std::net::TcpStream, String> {
        Jail::connect_in_env(self, port).map_err(|e| e.to_string())
    }
    fn thaw(&self) {
        if let Err(e) = Jail::thaw(self) {
            tracing::warn!("environment {}: cannot thaw: {e}", self.id());
        }
    }
}

/// Runs the runtime as an ordinary host process: `/var/task` and `/var/runtime` in argv and in the
/// well-known variables are rewritten to the host directories, and the Runtime API listens on an
/// ephemeral loopback port and, when the spec names a Unix socket, on an abstract socket of a
/// name unique to the environment (the host's network namespace is shared by every test). No
/// isolation at all: for tests only.
#[cfg(test)]
pub(crate) mod host {
    use super::*;
    use crate::envvars::RUNTIME_API_SOCKET_VAR;
    use std::process::{Child, Command, Stdio};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    pub(crate) struct HostLauncher;

    struct HostProcess {
        child: Mutex<Child>,
        listener: Option<TcpListener>,
        unix_listener: Option<UnixListener>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    }

    fn rewrite(s: &str, spec: &JailSpec) -> String {
        let mut out = s.replace("/var/task", &spec.code_dir.to_string_lossy());
        if let Some(rt) = &spec.runtime_dir {
            out = out.replace("/var/runtime", &rt.to_string_lossy());
        }
        out
    }

    impl Launcher for HostLauncher {
        fn launch(&self, spec: &JailSpec) -> Result<Box<dyn Sandboxed>, String> {
            let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let wants_unix = spec.env.iter().any(|(k, _)| k == RUNTIME_API_SOCKET_VAR);
            let (unix_listener, unix_name) = if wants_unix {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let name = format!(
                    "updraft-test-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                );
                let sa = updraft_sandbox::abstract_socket_addr(&name).map_err(|e| e.to_string())?;
                let l = UnixListener::bind_addr(&sa).map_err(|e| e.to_string())?;
                (Some(l), format!("@{name}"))
            } else {
                (None, String::new())
            };
            let argv: Vec<String> = spec.argv.iter().map(|a| rewrite(a, spec)).collect();
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..])
                .env_clear()
                .current_dir(&spec.code_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in &spec.env {
                let v = match k.as_str() {
                    "AWS_LAMBDA_RUNTIME_API" => addr.to_string(),
                    RUNTIME_API_SOCKET_VAR => unix_name.clone(),
                    "LAMBDA_TASK_ROOT" | "LAMBDA_RUNTIME_DIR" | "PYTHONPATH" => rewrite(v, spec),
                    _ => v.clone(),
                };
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", argv[0]))?;
            let stdout = child.stdout.take().map(OwnedFd::from);
            let stderr = child.stderr.take().map(OwnedFd::from);
            Ok(Box::new(HostProcess {
                child: Mutex::new(child),
                listener: Some(listener),
                unix_listener,
                stdout,
                stderr,
            }))
        }
    }

    impl Sandboxed for HostProcess {
        fn take_runtime_api_listener(&mut self) -> Option<TcpListener> {
            self.listener.take()
        }
        fn take_runtime_api_unix_listener(&mut self) -> Option<UnixListener> {
            self.unix_listener.take()
        }
        fn take_stdout(&mut self) -> Option<OwnedFd> {
            self.stdout.take()
        }
        fn take_stderr(&mut self) -> Option<OwnedFd> {
            self.stderr.take()
        }
        fn kill(&self) {
            let _ = self.child.lock().unwrap().kill();
        }
        fn wait(&self) -> ExitInfo {
            use std::os::unix::process::ExitStatusExt;
            loop {
                // Poll so that the lock is free for kill() in between.
                if let Ok(Some(st)) = self.child.lock().unwrap().try_wait() {
                    return ExitInfo {
                        code: st.code(),
                        signal: st.signal(),
                    };
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        fn memory_peak_bytes(&self) -> Option<u64> {
            None
        }
        /// The process's resident set, standing in for a cgroup's usage.
        fn memory_current_bytes(&self) -> Option<u64> {
            let pid = self.child.lock().unwrap().id();
            let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
            let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
            Some(pages * 4096)
        }
        fn oom_killed(&self) -> bool {
            false
        }
    }
}
