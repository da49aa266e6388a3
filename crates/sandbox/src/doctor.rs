//! Probes of what isolation this host can provide, for `updraft doctor` and a startup warning.
//!
//! Namespace, mount and pivot probes run in a forked child, because they change the calling
//! process irreversibly. [`doctor`] is called from the multi-threaded server, so the child only
//! makes allocation-free system calls on data prepared before the fork. Cgroup probes create
//! and remove a directory next to where environments' cgroups go.

use std::ffi::{CStr, CString};
use std::fmt;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Uid, chdir, fork, mkdir, pipe2, pivot_root, write};

use crate::cgroup::{self, Version};
use crate::mounts::ROOT_MOUNTPOINTS;
use crate::sys;

/// One probed isolation step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// What was probed.
    pub name: String,
    /// Whether it works.
    pub ok: bool,
    /// Whether environments lose isolation when it does not work.
    pub required: bool,
    /// Details (paths, errors).
    pub detail: String,
    /// What a failure means for environments.
    pub consequence: String,
}

/// Which isolation steps work on this host.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IsolationReport {
    /// Whether the server runs as root.
    pub root: bool,
    /// Cgroup version environments use: "v1", "v2", "v1+v2" or none.
    pub cgroup_version: Option<String>,
    /// Every probe, in jail step order.
    pub checks: Vec<Check>,
}

impl IsolationReport {
    /// One line per isolation step this host cannot do, with its consequence; empty when
    /// environments are fully isolated.
    pub fn degraded(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.required && !c.ok)
            .map(|c| format!("{}: {} ({})", c.name, c.consequence, c.detail))
            .collect()
    }

    /// Whether a check of this name passed.
    pub fn passed(&self, name: &str) -> bool {
        self.checks.iter().any(|c| c.name == name && c.ok)
    }
}

impl fmt::Display for IsolationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "sandbox isolation (running as {}, cgroup {}):",
            if self.root { "root" } else { "non-root" },
            self.cgroup_version.as_deref().unwrap_or("unavailable")
        )?;
        for c in &self.checks {
            let mark = match (c.ok, c.required) {
                (true, _) => "ok  ",
                (false, true) => "FAIL",
                (false, false) => "n/a ",
            };
            write!(f, "  {mark}  {}", c.name)?;
            if !c.detail.is_empty() {
                write!(f, " ({})", c.detail)?;
            }
            if !c.ok && c.required {
                write!(f, ": {}", c.consequence)?;
            }
            writeln!(f)?;
        }
        let d = self.degraded();
        if d.is_empty() {
            writeln!(f, "environments are fully isolated")
        } else {
            writeln!(f, "{} isolation step(s) degraded", d.len())
        }
    }
}

// Result bits of the forked probe.
const USERNS: u32 = 1 << 0;
const MOUNT_NS: u32 = 1 << 1;
const UTS_NS: u32 = 1 << 2;
const IPC_NS: u32 = 1 << 3;
const NET_NS: u32 = 1 << 4;
const LOOPBACK: u32 = 1 << 5;
const PID_NS: u32 = 1 << 6;
const TMPFS: u32 = 1 << 7;
const PIVOT: u32 = 1 << 8;
const PROC: u32 = 1 << 9;
const PROBED: u32 = 1 << 31;

/// Everything the probe child needs, allocated before the fork.
struct ProbeInput {
    root: bool,
    mountpoint: Option<CString>,
    proc_dir: Option<CString>,
    uid_map: CString,
    gid_map: CString,
}

fn write_file(path: &CStr, data: &[u8]) -> bool {
    match open(path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => write(&fd, data).is_ok(),
        Err(_) => false,
    }
}

/// The probe child's work. Only allocation-free system calls: the parent may be
/// multi-threaded, and another thread may have held the allocator lock at fork time.
fn probe_in_child(input: &ProbeInput) -> u32 {
    let mut bits = PROBED;
    if !input.root {
        if unshare(CloneFlags::CLONE_NEWUSER).is_err() {
            return bits;
        }
        bits |= USERNS;
        let _ = write_file(c"/proc/self/setgroups", b"deny");
        let _ = write_file(c"/proc/self/uid_map", input.uid_map.as_bytes());
        let _ = write_file(c"/proc/self/gid_map", input.gid_map.as_bytes());
    }
    if unshare(CloneFlags::CLONE_NEWNS).is_ok()
        && mount(
            None::<&CStr>,
            c"/",
            None::<&CStr>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&CStr>,
        )
        .is_ok()
    {
        bits |= MOUNT_NS;
    }
    for (flag, bit) in [
        (CloneFlags::CLONE_NEWUTS, UTS_NS),
        (CloneFlags::CLONE_NEWIPC, IPC_NS),
        (CloneFlags::CLONE_NEWNET, NET_NS),
        (CloneFlags::CLONE_NEWPID, PID_NS),
    ] {
        if unshare(flag).is_ok() {
            bits |= bit;
        }
    }
    if bits & NET_NS != 0 && sys::loopback_up().is_ok() {
        bits |= LOOPBACK;
    }
    let (Some(mp), Some(proc_dir)) = (&input.mountpoint, &input.proc_dir) else {
        return bits;
    };
    if bits & MOUNT_NS == 0 {
        return bits;
    }
    if mount(
        Some(c"tmpfs"),
        mp.as_c_str(),
        Some(c"tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(c"size=64k"),
    )
    .is_err()
    {
        return bits;
    }
    bits |= TMPFS;
    // Before the pivot: inside a user namespace, proc may only be mounted while a fully
    // visible proc is still attached (as the jail does it).
    if bits & PID_NS != 0 && mkdir(proc_dir.as_c_str(), Mode::from_bits_truncate(0o755)).is_ok() {
        // The first child after unsharing a pid namespace is its pid 1; proc must be mounted
        // from inside the namespace.
        // SAFETY: the grandchild only makes allocation-free system calls and then _exits.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                let ok = mount(
                    Some(c"proc"),
                    proc_dir.as_c_str(),
                    Some(c"proc"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                    None::<&CStr>,
                )
                .is_ok();
                // SAFETY: ends the grandchild without running any of the parent's cleanup.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            Ok(ForkResult::Parent { child }) => {
                if let Ok(WaitStatus::Exited(_, 0)) = waitpid(child, None) {
                    bits |= PROC;
                }
            }
            Err(_) => {}
        }
    }
    if chdir(mp.as_c_str()).is_ok()
        && pivot_root(c".", c".").is_ok()
        && umount2(c".", MntFlags::MNT_DETACH).is_ok()
        && chdir(c"/").is_ok()
    {
        bits |= PIVOT;
    }
    bits
}

fn run_probe(input: &ProbeInput) -> u32 {
    let Ok((r, w)): Result<(OwnedFd, OwnedFd), _> = pipe2(OFlag::O_CLOEXEC) else {
        return 0;
    };
    // SAFETY: the child runs only allocation-free system calls on data prepared before the
    // fork (see probe_in_child) and leaves with _exit.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(r);
            let bits = probe_in_child(input);
            let _ = write(w.as_fd(), &bits.to_ne_bytes());
            // SAFETY: _exit skips the parent's atexit handlers and destructors, which must not
            // run in this copy of a multi-threaded process.
            unsafe { libc::_exit(0) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(w);
            let mut buf = [0u8; 4];
            let got = nix::unistd::read(&r, &mut buf).unwrap_or(0);
            let _ = waitpid(child, None);
            if got == 4 { u32::from_ne_bytes(buf) } else { 0 }
        }
        Err(_) => 0,
    }
}

fn probe_cgroup_controller(
    chosen: &[(cgroup::Hierarchy, Vec<&'static str>)],
    want: &str,
) -> (bool, String) {
    let Some((h, _)) = chosen.iter().find(|(_, cs)| cs.contains(&want)) else {
        return (false, format!("no {want} controller mounted"));
    };
    let version = match h.version {
        Version::V1 => "v1",
        Version::V2 => "v2",
    };
    let parent = h.mount.join(cgroup::PARENT);
    let attempt = || -> std::io::Result<()> {
        fs::create_dir_all(&parent)?;
        if h.version == Version::V2 {
            for dir in [&h.mount, &parent] {
                fs::write(dir.join("cgroup.subtree_control"), format!("+{want}"))?;
            }
        }
        let probe = parent.join(format!(".doctor-{}", std::process::id()));
        fs::create_dir(&probe)?;
        let file = match (h.version, want) {
            (Version::V1, "memory") => "memory.limit_in_bytes",
            (Version::V2, "memory") => "memory.max",
            (Version::V1, "cpu") => "cpu.shares",
            (Version::V2, "cpu") => "cpu.weight",
            (_, "freezer") => "freezer.state",
            _ => "pids.max",
        };
        let has = probe.join(file).exists();
        fs::remove_dir(&probe)?;
        if has {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("{file} missing")))
        }
    };
    match attempt() {
        Ok(()) => (true, format!("{version} at {}", parent.display())),
        Err(e) => (false, format!("{version} at {}: {e}", parent.display())),
    }
}

/// Whether environments can be frozen: the v1 freezer controller, else the v2 `cgroup.freeze`
/// file every non-root v2 cgroup has (Linux 5.2+).
fn probe_freezer(chosen: &[(cgroup::Hierarchy, Vec<&'static str>)]) -> (bool, String) {
    if chosen.iter().any(|(_, cs)| cs.contains(&"freezer")) {
        return probe_cgroup_controller(chosen, "freezer");
    }
    let Some((h, _)) = chosen.iter().find(|(h, _)| h.version == Version::V2) else {
        return (
            false,
            "no freezer controller mounted and no cgroup v2 in use".into(),
        );
    };
    let parent = h.mount.join(cgroup::PARENT);
    let probe = parent.join(format!(".doctor-freeze-{}", std::process::id()));
    let attempt = || -> std::io::Result<bool> {
        fs::create_dir_all(&parent)?;
        fs::create_dir(&probe)?;
        let has = probe.join("cgroup.freeze").exists();
        fs::remove_dir(&probe)?;
        Ok(has)
    };
    match attempt() {
        Ok(true) => (true, format!("v2 cgroup.freeze at {}", parent.display())),
        Ok(false) => (false, "cgroup.freeze missing (Linux before 5.2)".into()),
        Err(e) => (false, format!("v2 at {}: {e}", parent.display())),
    }
}

/// Probes which isolation steps work on this host.
pub fn doctor() -> IsolationReport {
    let root = Uid::effective().is_root();
    let mountpoint = ROOT_MOUNTPOINTS
        .iter()
        .find(|p| Path::new(p).is_dir())
        .map(|p| p.to_string());
    let input = ProbeInput {
        root,
        proc_dir: mountpoint
            .as_ref()
            .and_then(|m| CString::new(format!("{m}/p")).ok()),
        mountpoint: mountpoint.and_then(|m| CString::new(m).ok()),
        uid_map: CString::new(format!("{} {} 1", crate::SANDBOX_UID, Uid::current()))
            .unwrap_or_default(),
        gid_map: CString::new(format!(
            "{} {} 1",
            crate::SANDBOX_GID,
            nix::unistd::Gid::current()
        ))
        .unwrap_or_default(),
    };
    let bits = run_probe(&input);
    let probed = bits & PROBED != 0;
    let ns_detail = |bit: u32| -> String {
        if !probed {
            "probe did not run".into()
        } else if bits & bit != 0 {
            String::new()
        } else if !root && bits & USERNS == 0 {
            "needs root or user namespaces".into()
        } else {
            "refused by the kernel".into()
        }
    };
    let mut checks = Vec::new();
    let mut add = |name: &str, ok: bool, required: bool, detail: String, consequence: &str| {
        checks.push(Check {
            name: name.into(),
            ok,
            required,
            detail,
            consequence: consequence.into(),
        })
    };
    add(
        "running as root",
        root,
        false,
        if root {
            String::new()
        } else {
            format!("uid {}", Uid::effective())
        },
        "environments rely on a user namespace and on delegated cgroups",
    );
    add(
        "user namespaces",
        root || bits & USERNS != 0,
        !root,
        if root {
            "not needed as root".into()
        } else {
            ns_detail(USERNS)
        },
        "environments cannot be started at all",
    );
    for (name, bit, consequence) in [
        (
            "mount namespace",
            MOUNT_NS,
            "environments cannot be started at all",
        ),
        (
            "pid namespace",
            PID_NS,
            "environments cannot be started at all",
        ),
        (
            "network namespace",
            NET_NS,
            "environments cannot be started at all",
        ),
        (
            "loopback in the new network namespace",
            LOOPBACK,
            "the Runtime API listener cannot be bound",
        ),
        (
            "ipc namespace",
            IPC_NS,
            "environments cannot be started at all",
        ),
        (
            "uts namespace",
            UTS_NS,
            "environments cannot be started at all",
        ),
        ("tmpfs", TMPFS, "no root filesystem can be assembled"),
        ("pivot_root", PIVOT, "no root filesystem can be assembled"),
        (
            "proc in a new pid namespace",
            PROC,
            "no /proc inside environments",
        ),
    ] {
        add(name, bits & bit != 0, true, ns_detail(bit), consequence);
    }
    let hs = cgroup::discover();
    let chosen = cgroup::select(&hs);
    let mut versions: Vec<&str> = chosen
        .iter()
        .map(|(h, _)| match h.version {
            Version::V1 => "v1",
            Version::V2 => "v2",
        })
        .collect();
    versions.dedup();
    let (mem_ok, mem_detail) = probe_cgroup_controller(&chosen, "memory");
    add(
        "cgroup memory controller",
        mem_ok,
        true,
        mem_detail,
        "memory limits are not enforced and OOM kills are not detected",
    );
    let (pids_ok, pids_detail) = probe_cgroup_controller(&chosen, "pids");
    add(
        "cgroup pids controller",
        pids_ok,
        true,
        pids_detail,
        "only RLIMIT_NPROC (per uid, shared by all environments) limits processes",
    );
    let (cpu_ok, cpu_detail) = probe_cgroup_controller(&chosen, "cpu");
    add(
        "cgroup cpu controller",
        cpu_ok,
        true,
        cpu_detail,
        "CPU is not shared in proportion to memory, and --cpu-limit lambda has no effect",
    );
    let (freeze_ok, freeze_detail) = probe_freezer(&chosen);
    add(
        "cgroup freezer",
        freeze_ok,
        true,
        freeze_detail,
        "environments are not frozen between invocations: their background threads keep \
         using CPU while idle",
    );
    let scratch = crate::tmpdisk::scratch_dir();
    let disk = crate::tmpdisk::unavailable(root);
    let on_tmpfs = disk.is_none() && crate::tmpdisk::on_tmpfs(&scratch);
    add(
        "disk-backed /tmp",
        disk.is_none() && !on_tmpfs,
        true,
        match (&disk, on_tmpfs) {
            (Some(why), _) => why.clone(),
            (None, true) => format!("scratch dir {} is on a tmpfs", scratch.display()),
            (None, false) => format!("ext4 images in {}", scratch.display()),
        },
        "/tmp is a tmpfs counted against the function's memory: writing more than its memory \
         size to /tmp ends in an OOM kill instead of ENOSPC",
    );
    add(
        "seccomp filters",
        sys::seccomp_available(),
        true,
        String::new(),
        "environments cannot be started (the filter is mandatory)",
    );
    add(
        "unprivileged uid 993",
        root || bits & USERNS != 0,
        true,
        if root {
            String::new()
        } else {
            "mapped to the server's uid through a user namespace".into()
        },
        "environments cannot be started at all",
    );
    IsolationReport {
        root,
        cgroup_version: (!versions.is_empty()).then(|| versions.join("+")),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checks: Vec<(bool, bool)>) -> IsolationReport {
        IsolationReport {
            root: false,
            cgroup_version: None,
            checks: checks
                .into_iter()
                .enumerate()
                .map(|(i, (ok, required))| Check {
                    name: format!("step {i}"),
                    ok,
                    required,
                    detail: "d".into(),
                    consequence: "c".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn degraded_lists_failed_required_steps_only() {
        let r = report(vec![(true, true), (false, true), (false, false)]);
        assert_eq!(r.degraded(), vec!["step 1: c (d)".to_string()]);
        let text = r.to_string();
        assert!(text.contains("FAIL  step 1"), "{text}");
        assert!(text.contains("n/a   step 2"), "{text}");
        assert!(text.contains("1 isolation step(s) degraded"), "{text}");
        assert!(report(vec![(true, true)]).degraded().is_empty());
    }

    #[test]
    fn report_serialises() {
        let r = report(vec![(true, true)]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["checks"][0]["ok"], true);
    }

    #[test]
    fn live_probe_matches_privileges() {
        let r = doctor();
        assert_eq!(r.root, Uid::effective().is_root());
        assert!(r.passed("seccomp filters") == sys::seccomp_available());
        if r.root {
            // As root every namespace step is available on any kernel Updraft supports.
            for name in [
                "mount namespace",
                "pid namespace",
                "network namespace",
                "tmpfs",
                "pivot_root",
                "proc in a new pid namespace",
            ] {
                assert!(r.passed(name), "{name} failed:\n{r}");
            }
        }
    }
}
