//! The runtime's seccomp policy, as reviewed data.
//!
//! Two tables make the policy:
//! - the allow list ([`ALLOWED`](crate::seccomp_allow::ALLOWED), in `seccomp_allow.rs`): the
//!   syscalls a runtime may make at all, each with its reason. Anything else fails with
//!   `ENOSYS`, as on a kernel without that syscall, so libc and runtimes fall back instead of
//!   failing hard (new syscalls stay unavailable until reviewed);
//! - the deny list ([`RULES`]): calls that attack the kernel, other processes or the sandbox
//!   itself, each with its reason. They fail with `EPERM` (or the errno the entry names), also
//!   where the allow list admits the syscall in general and only some arguments are refused
//!   (`clone` with namespace flags, `ioctl` TIOCSTI, `personality`, `socket` families).
//!
//! Denied calls return an errno instead of killing the process, so a runtime that probes for a
//! feature degrades the way it would on a kernel without it.
//!
//! The tables compile to BPF programs, installed in this order (for the same action the kernel
//! lets the most recently installed program's errno win, so the deny list's `EPERM` overrides
//! the allow list's `ENOSYS`):
//! 1. on x86_64, a guard that refuses x32-ABI syscall numbers (bit 30 set);
//! 2. the allow list: match allows, anything else `ENOSYS`;
//! 3. one program per errno of the deny list (a filter has one match action): every
//!    [`Action::Eperm`] rule, every [`Action::Enosys`] rule, every [`Action::Eafnosupport`] rule.
//!
//! Every program first checks the audit architecture; a syscall from another ABI (for example
//! 32-bit `int 0x80` on x86_64) kills the process.

use std::collections::BTreeMap;

use crate::seccomp_allow::allowed;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

/// What a matching syscall returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Fail with EPERM, as for a missing privilege.
    Eperm,
    /// Fail with ENOSYS, as on a kernel without the syscall; libc then falls back.
    Enosys,
    /// Fail with EAFNOSUPPORT, as on a kernel without that address family.
    Eafnosupport,
}

/// Which calls of a syscall are denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Args {
    /// Every call.
    Any,
    /// Calls whose flags (argument 0) ask for any new namespace.
    NamespaceFlags,
    /// Calls whose request (argument 1, the low 32 bits the kernel uses) is one of these.
    IoctlRequest(&'static [u64]),
    /// Calls whose persona (argument 0) is none of these.
    PersonalityExcept(&'static [u64]),
    /// Calls whose address family (argument 0) is none of these.
    FamilyExcept(&'static [u64]),
}

/// One entry of the policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub(crate) name: &'static str,
    pub(crate) nr: i64,
    pub(crate) args: Args,
    pub(crate) action: Action,
    pub(crate) reason: &'static str,
}

/// Namespace flags of clone(2); CLONE_NEWTIME is absent because in clone(2) its bit is part of
/// the exit signal (it is only valid for unshare and clone3, both denied outright).
pub(crate) const NAMESPACE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// Terminal ioctls that inject input or reach the console.
// The casts are no-ops on glibc but not on musl, where `libc::Ioctl` is `c_int`.
#[allow(clippy::unnecessary_cast)]
pub(crate) const DENIED_IOCTLS: [u64; 2] = [libc::TIOCSTI as u64, libc::TIOCLINUX as u64];

/// Personas a runtime may select: Linux, its 32-bit variant, the 2.6-uname variants, and the
/// query value 0xffffffff. Others (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...) weaken ASLR or
/// memory protections.
pub(crate) const ALLOWED_PERSONAS: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Address families a runtime may open sockets of: unix (local IPC, multiprocessing), IPv4
/// and IPv6 (the Runtime API and loopback), netlink (getifaddrs, used by node's
/// os.networkInterfaces and by resolvers; it only sees the environment's own network
/// namespace). Others (AF_PACKET, AF_VSOCK, AF_ALG, AF_KEY, AF_TIPC, AF_RDS, Bluetooth, ...)
/// are kernel attack surface no function needs.
pub(crate) const ALLOWED_FAMILIES: [u64; 4] = [
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
    libc::AF_NETLINK as u64,
];

macro_rules! rule {
    ($name:ident, $args:expr, $action:ident, $reason:literal) => {
        Rule {
            name: stringify!($name),
            nr: paste_nr!($name),
            args: $args,
            action: Action::$action,
            reason: $reason,
        }
    };
}

macro_rules! paste_nr {
    (keyctl) => {
        libc::SYS_keyctl
    };
    (add_key) => {
        libc::SYS_add_key
    };
    (request_key) => {
        libc::SYS_request_key
    };
    (bpf) => {
        libc::SYS_bpf
    };
    (perf_event_open) => {
        libc::SYS_perf_event_open
    };
    (kexec_load) => {
        libc::SYS_kexec_load
    };
    (kexec_file_load) => {
        libc::SYS_kexec_file_load
    };
    (init_module) => {
        libc::SYS_init_module
    };
    (finit_module) => {
        libc::SYS_finit_module
    };
    (delete_module) => {
        libc::SYS_delete_module
    };
    (open_by_handle_at) => {
        libc::SYS_open_by_handle_at
    };
    (name_to_handle_at) => {
        libc::SYS_name_to_handle_at
    };
    (process_vm_readv) => {
        libc::SYS_process_vm_readv
    };
    (process_vm_writev) => {
        libc::SYS_process_vm_writev
    };
    (process_madvise) => {
        libc::SYS_process_madvise
    };
    (pidfd_getfd) => {
        libc::SYS_pidfd_getfd
    };
    (ptrace) => {
        libc::SYS_ptrace
    };
    (kcmp) => {
        libc::SYS_kcmp
    };
    (userfaultfd) => {
        libc::SYS_userfaultfd
    };
    (mount) => {
        libc::SYS_mount
    };
    (umount2) => {
        libc::SYS_umount2
    };
    (pivot_root) => {
        libc::SYS_pivot_root
    };
    (chroot) => {
        libc::SYS_chroot
    };
    (fsopen) => {
        libc::SYS_fsopen
    };
    (fsconfig) => {
        libc::SYS_fsconfig
    };
    (fsmount) => {
        libc::SYS_fsmount
    };
    (fspick) => {
        libc::SYS_fspick
    };
    (move_mount) => {
        libc::SYS_move_mount
    };
    (open_tree) => {
        libc::SYS_open_tree
    };
    (mount_setattr) => {
        libc::SYS_mount_setattr
    };
    (unshare) => {
        libc::SYS_unshare
    };
    (setns) => {
        libc::SYS_setns
    };
    (clone) => {
        libc::SYS_clone
    };
    (clone3) => {
        libc::SYS_clone3
    };
    (swapon) => {
        libc::SYS_swapon
    };
    (swapoff) => {
        libc::SYS_swapoff
    };
    (reboot) => {
        libc::SYS_reboot
    };
    (sethostname) => {
        libc::SYS_sethostname
    };
    (setdomainname) => {
        libc::SYS_setdomainname
    };
    (clock_settime) => {
        libc::SYS_clock_settime
    };
    (clock_adjtime) => {
        libc::SYS_clock_adjtime
    };
    (adjtimex) => {
        libc::SYS_adjtimex
    };
    (settimeofday) => {
        libc::SYS_settimeofday
    };
    (acct) => {
        libc::SYS_acct
    };
    (quotactl) => {
        libc::SYS_quotactl
    };
    (syslog) => {
        libc::SYS_syslog
    };
    (vhangup) => {
        libc::SYS_vhangup
    };
    (fanotify_init) => {
        libc::SYS_fanotify_init
    };
    (io_uring_setup) => {
        libc::SYS_io_uring_setup
    };
    (io_uring_enter) => {
        libc::SYS_io_uring_enter
    };
    (io_uring_register) => {
        libc::SYS_io_uring_register
    };
    (personality) => {
        libc::SYS_personality
    };
    (socket) => {
        libc::SYS_socket
    };
    (ioctl) => {
        libc::SYS_ioctl
    };
    (iopl) => {
        libc::SYS_iopl
    };
    (ioperm) => {
        libc::SYS_ioperm
    };
    (uselib) => {
        libc::SYS_uselib
    };
    (_sysctl) => {
        libc::SYS__sysctl
    };
}

/// The deny list. Keep one line of reason per entry; reviewers read this table, not the BPF.
pub(crate) const RULES: &[Rule] = &[
    // Kernel keyrings are not namespaced: keys of other tenants and the host.
    rule!(
        keyctl,
        Args::Any,
        Eperm,
        "kernel keyrings are shared with the host"
    ),
    rule!(
        add_key,
        Args::Any,
        Eperm,
        "kernel keyrings are shared with the host"
    ),
    rule!(
        request_key,
        Args::Any,
        Eperm,
        "kernel keyrings are shared with the host"
    ),
    rule!(
        bpf,
        Args::Any,
        Eperm,
        "eBPF is a large kernel attack surface"
    ),
    rule!(
        perf_event_open,
        Args::Any,
        Eperm,
        "performance counters leak host activity and have a history of exploits"
    ),
    rule!(kexec_load, Args::Any, Eperm, "loads a new kernel"),
    rule!(kexec_file_load, Args::Any, Eperm, "loads a new kernel"),
    rule!(init_module, Args::Any, Eperm, "loads kernel modules"),
    rule!(finit_module, Args::Any, Eperm, "loads kernel modules"),
    rule!(delete_module, Args::Any, Eperm, "unloads kernel modules"),
    rule!(
        open_by_handle_at,
        Args::Any,
        Eperm,
        "opens files by handle, bypassing the mount namespace (shocker)"
    ),
    rule!(
        name_to_handle_at,
        Args::Any,
        Eperm,
        "companion of open_by_handle_at"
    ),
    rule!(
        process_vm_readv,
        Args::Any,
        Eperm,
        "reads another process's memory"
    ),
    rule!(
        process_vm_writev,
        Args::Any,
        Eperm,
        "writes another process's memory"
    ),
    rule!(
        process_madvise,
        Args::Any,
        Eperm,
        "acts on another process's memory"
    ),
    rule!(
        pidfd_getfd,
        Args::Any,
        Eperm,
        "steals another process's file descriptors"
    ),
    rule!(
        ptrace,
        Args::Any,
        Eperm,
        "controls other processes; frequent source of escapes"
    ),
    rule!(
        kcmp,
        Args::Any,
        Eperm,
        "inspects other processes' kernel state"
    ),
    rule!(
        userfaultfd,
        Args::Any,
        Eperm,
        "stalls the kernel at will, a staple of race exploits"
    ),
    rule!(mount, Args::Any, Eperm, "changes the filesystem layout"),
    rule!(umount2, Args::Any, Eperm, "changes the filesystem layout"),
    rule!(
        pivot_root,
        Args::Any,
        Eperm,
        "changes the filesystem layout"
    ),
    rule!(chroot, Args::Any, Eperm, "changes the filesystem layout"),
    rule!(fsopen, Args::Any, Eperm, "new mount API"),
    rule!(fsconfig, Args::Any, Eperm, "new mount API"),
    rule!(fsmount, Args::Any, Eperm, "new mount API"),
    rule!(fspick, Args::Any, Eperm, "new mount API"),
    rule!(move_mount, Args::Any, Eperm, "new mount API"),
    rule!(open_tree, Args::Any, Eperm, "new mount API"),
    rule!(mount_setattr, Args::Any, Eperm, "new mount API"),
    rule!(
        unshare,
        Args::Any,
        Eperm,
        "new namespaces (user namespaces above all) widen the kernel attack surface"
    ),
    rule!(setns, Args::Any, Eperm, "joins other namespaces"),
    rule!(
        clone,
        Args::NamespaceFlags,
        Eperm,
        "new namespaces through clone; plain fork and threads stay allowed"
    ),
    rule!(
        clone3,
        Args::Any,
        Enosys,
        "its flags live in memory a filter cannot read; ENOSYS makes libc fall back to clone"
    ),
    rule!(swapon, Args::Any, Eperm, "host swap configuration"),
    rule!(swapoff, Args::Any, Eperm, "host swap configuration"),
    rule!(reboot, Args::Any, Eperm, "host power state"),
    rule!(
        sethostname,
        Args::Any,
        Eperm,
        "the hostname is set by the sandbox"
    ),
    rule!(
        setdomainname,
        Args::Any,
        Eperm,
        "the domain name is set by the sandbox"
    ),
    rule!(
        clock_settime,
        Args::Any,
        Eperm,
        "the clock is not namespaced"
    ),
    rule!(
        clock_adjtime,
        Args::Any,
        Eperm,
        "the clock is not namespaced"
    ),
    rule!(adjtimex, Args::Any, Eperm, "the clock is not namespaced"),
    rule!(
        settimeofday,
        Args::Any,
        Eperm,
        "the clock is not namespaced"
    ),
    rule!(acct, Args::Any, Eperm, "host process accounting"),
    rule!(quotactl, Args::Any, Eperm, "host disk quotas"),
    rule!(
        syslog,
        Args::Any,
        Eperm,
        "the kernel log leaks host activity and addresses"
    ),
    rule!(vhangup, Args::Any, Eperm, "terminal control"),
    rule!(
        fanotify_init,
        Args::Any,
        Eperm,
        "watches filesystems beyond the sandbox"
    ),
    rule!(
        io_uring_setup,
        Args::Any,
        Eperm,
        "io_uring bypasses this filter and is a frequent exploit vector"
    ),
    rule!(
        io_uring_enter,
        Args::Any,
        Eperm,
        "io_uring bypasses this filter and is a frequent exploit vector"
    ),
    rule!(
        io_uring_register,
        Args::Any,
        Eperm,
        "io_uring bypasses this filter and is a frequent exploit vector"
    ),
    rule!(
        personality,
        Args::PersonalityExcept(&ALLOWED_PERSONAS),
        Eperm,
        "other personas disable ASLR or NX"
    ),
    rule!(
        ioctl,
        Args::IoctlRequest(&DENIED_IOCTLS),
        Eperm,
        "TIOCSTI/TIOCLINUX inject keystrokes into a terminal"
    ),
    rule!(
        socket,
        Args::FamilyExcept(&ALLOWED_FAMILIES),
        Eafnosupport,
        "rarely used address families are kernel attack surface"
    ),
    #[cfg(target_arch = "x86_64")]
    rule!(iopl, Args::Any, Eperm, "raw I/O port access"),
    #[cfg(target_arch = "x86_64")]
    rule!(ioperm, Args::Any, Eperm, "raw I/O port access"),
    #[cfg(target_arch = "x86_64")]
    rule!(uselib, Args::Any, Eperm, "obsolete loader path"),
    #[cfg(target_arch = "x86_64")]
    rule!(_sysctl, Args::Any, Eperm, "obsolete binary sysctl"),
];

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    // Dword: the kernel reads these arguments as 32-bit values, so a check on the low half
    // cannot be dodged by setting the high half.
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(|e| e.to_string())
}

fn rules_for(args: Args) -> Result<Vec<SeccompRule>, String> {
    let one = |c: Vec<SeccompCondition>| SeccompRule::new(c).map_err(|e| e.to_string());
    match args {
        Args::Any => Ok(Vec::new()),
        Args::NamespaceFlags => NAMESPACE_FLAGS
            .iter()
            .map(|&f| one(vec![cond(0, SeccompCmpOp::MaskedEq(f), f)?]))
            .collect(),
        Args::IoctlRequest(reqs) => reqs
            .iter()
            .map(|&r| one(vec![cond(1, SeccompCmpOp::Eq, r)?]))
            .collect(),
        Args::PersonalityExcept(allowed) | Args::FamilyExcept(allowed) => Ok(vec![one(allowed
            .iter()
            .map(|&p| cond(0, SeccompCmpOp::Ne, p))
            .collect::<Result<_, _>>()?)?]),
    }
}

// Classic BPF opcodes for the hand-written x32 guard.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Refuses x32 syscall numbers on x86_64 (ENOSYS, as on kernels built without x32).
fn x32_guard() -> BpfProgram {
    vec![
        insn(BPF_LD_W_ABS, 0, 0, 4),
        insn(BPF_JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        insn(BPF_LD_W_ABS, 0, 0, 0),
        insn(BPF_JGE_K, 0, 1, X32_SYSCALL_BIT),
        insn(
            BPF_RET_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        insn(BPF_RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Compiles [`RULES`] into the programs to install, in order.
pub(crate) fn compile() -> Result<Vec<BpfProgram>, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let mut programs = Vec::new();
    if cfg!(target_arch = "x86_64") {
        programs.push(x32_guard());
    }
    let allow: BTreeMap<i64, Vec<SeccompRule>> = allowed().map(|a| (a.nr, Vec::new())).collect();
    let filter = SeccompFilter::new(
        allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| e.to_string())?;
    programs.push(BpfProgram::try_from(filter).map_err(|e| e.to_string())?);
    for (action, errno) in [
        (Action::Eperm, libc::EPERM),
        (Action::Enosys, libc::ENOSYS),
        (Action::Eafnosupport, libc::EAFNOSUPPORT),
    ] {
        let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for r in RULES.iter().filter(|r| r.action == action) {
            map.entry(r.nr).or_default().extend(rules_for(r.args)?);
        }
        if map.is_empty() {
            continue;
        }
        let filter = SeccompFilter::new(
            map,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch,
        )
        .map_err(|e| e.to_string())?;
        programs.push(BpfProgram::try_from(filter).map_err(|e| e.to_string())?);
    }
    Ok(programs)
}

/// The deny list as (syscall, condition, reason) lines, for documentation and `updraft doctor`.
pub fn denied_syscalls() -> Vec<(&'static str, String, &'static str)> {
    RULES
        .iter()
        .map(|r| {
            let when = match r.args {
                Args::Any => "always".to_string(),
                Args::NamespaceFlags => "with namespace flags".to_string(),
                Args::IoctlRequest(reqs) => format!(
                    "request {}",
                    reqs.iter()
                        .map(|r| format!("{r:#x}"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
                Args::PersonalityExcept(_) => "unless a Linux persona or a query".to_string(),
                Args::FamilyExcept(_) => "unless unix, IPv4, IPv6 or netlink".to_string(),
            };
            let errno = match r.action {
                Action::Eperm => "EPERM",
                Action::Enosys => "ENOSYS",
                Action::Eafnosupport => "EAFNOSUPPORT",
            };
            (r.name, format!("{when}, {errno}"), r.reason)
        })
        .collect()
}

/// The allow list as (syscall, reason) lines: every syscall a runtime may make at all (some
/// only with the arguments [`denied_syscalls`] leaves). Anything else fails with `ENOSYS`.
pub fn allowed_syscalls() -> Vec<(&'static str, &'static str)> {
    allowed().map(|a| (a.name, a.reason)).collect()
}

/// Installs the policy on the calling process (all threads). Needs `no_new_privs` or
/// CAP_SYS_ADMIN.
pub(crate) fn install() -> Result<(), String> {
    for prog in compile()? {
        seccompiler::apply_filter_all_threads(&prog).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF seccomp program over a `seccomp_data` built from the arguments,
    /// supporting the instructions seccompiler and the guard emit.
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(&nr.to_ne_bytes());
        data.extend_from_slice(&arch.to_ne_bytes());
        data.extend_from_slice(&0u64.to_ne_bytes());
        for a in args {
            data.extend_from_slice(&a.to_ne_bytes());
        }
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        loop {
            let i = &prog[pc];
            pc += 1;
            match i.code {
                0x20 => {
                    let k = i.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                0x54 => acc &= i.k,
                0x05 => pc += i.k as usize,
                0x15 | 0x25 | 0x35 => {
                    let hit = match i.code {
                        0x15 => acc == i.k,
                        0x25 => acc > i.k,
                        _ => acc >= i.k,
                    };
                    pc += usize::from(if hit { i.jt } else { i.jf });
                }
                0x06 => return i.k,
                c => panic!("unsupported BPF opcode {c:#x}"),
            }
        }
    }

    /// The kernel's verdict for stacked filters: the action with the lowest value as a signed
    /// 32-bit number wins (kill < errno < allow).
    fn verdict(progs: &[BpfProgram], nr: i64, args: [u64; 6]) -> u32 {
        let arch = if cfg!(target_arch = "x86_64") {
            AUDIT_ARCH_X86_64
        } else {
            0xc000_00b7
        };
        // The kernel runs the most recently installed program first and keeps the first
        // result of the most restrictive action.
        progs
            .iter()
            .rev()
            .map(|p| run(p, arch, nr as u32, args))
            .min_by_key(|r| (r & libc::SECCOMP_RET_ACTION_FULL) as i32)
            .unwrap()
    }

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

    #[test]
    fn every_rule_has_a_reason_and_no_syscall_is_listed_twice() {
        let mut seen = std::collections::BTreeSet::new();
        for r in RULES {
            assert!(!r.reason.trim().is_empty(), "{} has no reason", r.name);
            assert!(seen.insert(r.nr), "{} listed twice", r.name);
        }
        for required in [
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "open_by_handle_at",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
            "userfaultfd",
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "swapon",
            "swapoff",
            "reboot",
            "clock_settime",
            "clock_adjtime",
            "adjtimex",
            "settimeofday",
            "personality",
            "ioctl",
            "clone",
            "clone3",
        ] {
            assert!(
                RULES.iter().any(|r| r.name == required),
                "{required} missing"
            );
        }
    }

    #[test]
    fn denied_calls_fail_and_ordinary_calls_pass() {
        let progs = compile().unwrap();
        let z = [0u64; 6];
        assert_eq!(verdict(&progs, libc::SYS_keyctl, z), EPERM);
        assert_eq!(verdict(&progs, libc::SYS_mount, z), EPERM);
        assert_eq!(verdict(&progs, libc::SYS_ptrace, z), EPERM);
        assert_eq!(verdict(&progs, libc::SYS_unshare, z), EPERM);
        assert_eq!(verdict(&progs, libc::SYS_clone3, z), ENOSYS);
        for ok in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_mmap,
            libc::SYS_execve,
            libc::SYS_seccomp,
        ] {
            assert_eq!(verdict(&progs, ok, z), ALLOW, "syscall {ok}");
        }
    }

    const EAFNOSUPPORT: u32 = libc::SECCOMP_RET_ERRNO | libc::EAFNOSUPPORT as u32;

    #[test]
    fn allow_list_has_reasons_and_no_duplicates() {
        let mut seen = std::collections::BTreeMap::new();
        for a in allowed() {
            assert!(!a.reason.trim().is_empty(), "{} has no reason", a.name);
            assert!(
                !a.name.is_empty()
                    && a.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "bad name {:?}",
                a.name
            );
            if let Some(other) = seen.insert(a.nr, a.name) {
                panic!("{} and {other} share number {}", a.name, a.nr);
            }
        }
        // Denied outright means never allowed: a reviewer reads one answer per syscall.
        for r in RULES.iter().filter(|r| r.args == Args::Any) {
            assert!(
                !seen.contains_key(&r.nr),
                "{} is both allowed and denied",
                r.name
            );
        }
        // Those denied only by argument must be allowed in general.
        for r in RULES.iter().filter(|r| r.args != Args::Any) {
            assert!(seen.contains_key(&r.nr), "{} is not allowed at all", r.name);
        }
    }

    /// Syscalls observed with `strace -f -c` while python3, node 20, the JVM, /bin/sh and a
    /// tokio server ran typical work (see seccomp_allow.rs); the runtimes must keep them.
    #[cfg(target_arch = "x86_64")]
    const OBSERVED: &[i64] = &[
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_access,
        libc::SYS_arch_prctl,
        libc::SYS_bind,
        libc::SYS_brk,
        libc::SYS_capget,
        libc::SYS_chdir,
        libc::SYS_chmod,
        libc::SYS_clock_getres,
        libc::SYS_clock_nanosleep,
        libc::SYS_clone,
        libc::SYS_close,
        libc::SYS_close_range,
        libc::SYS_connect,
        libc::SYS_dup2,
        libc::SYS_epoll_create1,
        libc::SYS_epoll_ctl,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_wait,
        libc::SYS_eventfd2,
        libc::SYS_execve,
        libc::SYS_faccessat2,
        libc::SYS_fadvise64,
        libc::SYS_fchdir,
        libc::SYS_fchown,
        libc::SYS_fcntl,
        libc::SYS_flock,
        libc::SYS_fstat,
        libc::SYS_fsync,
        libc::SYS_ftruncate,
        libc::SYS_futex,
        libc::SYS_getcwd,
        libc::SYS_getdents64,
        libc::SYS_getegid,
        libc::SYS_geteuid,
        libc::SYS_getgid,
        libc::SYS_getgroups,
        libc::SYS_getpeername,
        libc::SYS_getpgrp,
        libc::SYS_getpid,
        libc::SYS_getppid,
        libc::SYS_getrandom,
        libc::SYS_getrusage,
        libc::SYS_getsockname,
        libc::SYS_getsockopt,
        libc::SYS_gettid,
        libc::SYS_getuid,
        libc::SYS_getxattr,
        libc::SYS_ioctl,
        libc::SYS_kill,
        libc::SYS_lgetxattr,
        libc::SYS_link,
        libc::SYS_linkat,
        libc::SYS_listen,
        libc::SYS_lseek,
        libc::SYS_madvise,
        libc::SYS_mkdir,
        libc::SYS_mmap,
        libc::SYS_mprotect,
        libc::SYS_munmap,
        libc::SYS_newfstatat,
        libc::SYS_openat,
        libc::SYS_pipe2,
        libc::SYS_pkey_alloc,
        libc::SYS_poll,
        libc::SYS_prctl,
        libc::SYS_pread64,
        libc::SYS_prlimit64,
        libc::SYS_pwrite64,
        libc::SYS_read,
        libc::SYS_readlink,
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
        libc::SYS_rename,
        libc::SYS_rmdir,
        libc::SYS_rseq,
        libc::SYS_rt_sigaction,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigsuspend,
        libc::SYS_sched_getaffinity,
        libc::SYS_sched_yield,
        libc::SYS_seccomp,
        libc::SYS_sendfile,
        libc::SYS_sendto,
        libc::SYS_set_robust_list,
        libc::SYS_set_tid_address,
        libc::SYS_setpgid,
        libc::SYS_setsockopt,
        libc::SYS_shutdown,
        libc::SYS_sigaltstack,
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_statfs,
        libc::SYS_statx,
        libc::SYS_sysinfo,
        libc::SYS_timer_create,
        libc::SYS_timer_settime,
        libc::SYS_umask,
        libc::SYS_uname,
        libc::SYS_unlink,
        libc::SYS_unlinkat,
        libc::SYS_utimensat,
        libc::SYS_vfork,
        libc::SYS_wait4,
        libc::SYS_write,
        libc::SYS_writev,
    ];

    #[cfg(target_arch = "x86_64")]
    #[test]
    #[allow(clippy::unnecessary_cast)] // see DENIED_IOCTLS
    fn observed_runtime_syscalls_are_allowed() {
        let progs = compile().unwrap();
        for &nr in OBSERVED {
            // Plain arguments: AF_UNIX for socket, persona 0, no clone flags, FIONREAD.
            let args = if nr == libc::SYS_ioctl {
                [0, libc::FIONREAD as u64, 0, 0, 0, 0]
            } else {
                [libc::AF_UNIX as u64, 0, 0, 0, 0, 0]
            };
            let args = if nr == libc::SYS_personality || nr == libc::SYS_clone {
                [0; 6]
            } else {
                args
            };
            assert_eq!(verdict(&progs, nr, args), ALLOW, "syscall {nr}");
        }
    }

    #[test]
    fn unknown_syscalls_fail_with_enosys_and_denied_ones_with_eperm() {
        let progs = compile().unwrap();
        let z = [0u64; 6];
        // Not allowed, not denied: as if the kernel lacked it.
        for nr in [
            libc::SYS_sync,
            libc::SYS_lookup_dcookie,
            libc::SYS_remap_file_pages,
            libc::SYS_migrate_pages,
            libc::SYS_memfd_secret,
            999,
        ] {
            assert_eq!(verdict(&progs, nr, z), ENOSYS, "syscall {nr}");
        }
        // Denied explicitly: EPERM wins over the allow list's ENOSYS.
        for nr in [
            libc::SYS_keyctl,
            libc::SYS_bpf,
            libc::SYS_mount,
            libc::SYS_setns,
            libc::SYS_userfaultfd,
            libc::SYS_io_uring_setup,
            libc::SYS_process_vm_readv,
        ] {
            assert_eq!(verdict(&progs, nr, z), EPERM, "syscall {nr}");
        }
    }

    #[test]
    fn sockets_only_of_the_allowed_families() {
        let progs = compile().unwrap();
        for f in ALLOWED_FAMILIES {
            assert_eq!(verdict(&progs, libc::SYS_socket, [f, 1, 0, 0, 0, 0]), ALLOW);
        }
        for f in [
            libc::AF_PACKET,
            libc::AF_VSOCK,
            libc::AF_ALG,
            libc::AF_KEY,
            libc::AF_BLUETOOTH,
        ] {
            assert_eq!(
                verdict(&progs, libc::SYS_socket, [f as u64, 1, 0, 0, 0, 0]),
                EAFNOSUPPORT,
                "family {f}"
            );
        }
        // High bits do not smuggle a family past the check (the kernel reads an int).
        assert_eq!(
            verdict(
                &progs,
                libc::SYS_socket,
                [libc::AF_VSOCK as u64 | (1 << 32), 1, 0, 0, 0, 0]
            ),
            EAFNOSUPPORT
        );
    }

    #[test]
    fn clone_is_allowed_for_threads_and_fork_but_not_namespaces() {
        let progs = compile().unwrap();
        let thread_flags = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        assert_eq!(
            verdict(&progs, libc::SYS_clone, [thread_flags, 0, 0, 0, 0, 0]),
            ALLOW
        );
        let fork_flags =
            (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) as u64 | libc::SIGCHLD as u64;
        assert_eq!(
            verdict(&progs, libc::SYS_clone, [fork_flags, 0, 0, 0, 0, 0]),
            ALLOW
        );
        for f in NAMESPACE_FLAGS {
            assert_eq!(
                verdict(&progs, libc::SYS_clone, [fork_flags | f, 0, 0, 0, 0, 0]),
                EPERM,
                "flag {f:#x}"
            );
        }
    }

    #[test]
    #[allow(clippy::unnecessary_cast)] // see DENIED_IOCTLS
    fn tiocsti_is_denied_even_with_high_bits_set() {
        let progs = compile().unwrap();
        let sti = libc::TIOCSTI as u64;
        assert_eq!(
            verdict(&progs, libc::SYS_ioctl, [0, sti, 0, 0, 0, 0]),
            EPERM
        );
        // The kernel truncates the request to 32 bits, so must the filter.
        assert_eq!(
            verdict(&progs, libc::SYS_ioctl, [0, sti | (1 << 32), 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(
            verdict(
                &progs,
                libc::SYS_ioctl,
                [0, libc::TIOCLINUX as u64, 0, 0, 0, 0]
            ),
            EPERM
        );
        assert_eq!(
            verdict(
                &progs,
                libc::SYS_ioctl,
                [1, libc::TCGETS as u64, 0, 0, 0, 0]
            ),
            ALLOW
        );
        assert_eq!(
            verdict(
                &progs,
                libc::SYS_ioctl,
                [1, libc::FIONREAD as u64, 0, 0, 0, 0]
            ),
            ALLOW
        );
    }

    #[test]
    fn personality_allows_only_harmless_personas() {
        let progs = compile().unwrap();
        for p in ALLOWED_PERSONAS {
            assert_eq!(
                verdict(&progs, libc::SYS_personality, [p, 0, 0, 0, 0, 0]),
                ALLOW
            );
        }
        let addr_no_randomize = 0x0040000;
        assert_eq!(
            verdict(
                &progs,
                libc::SYS_personality,
                [addr_no_randomize, 0, 0, 0, 0, 0]
            ),
            EPERM
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_numbers_and_foreign_arches_are_refused() {
        let progs = compile().unwrap();
        let x32_read = u64::from(X32_SYSCALL_BIT) as i64;
        assert_eq!(verdict(&progs, x32_read, [0; 6]), ENOSYS);
        // A 32-bit (i386) syscall: the arch check of the deny filters kills the process.
        let i386 = 0x4000_0003;
        let killed = progs
            .iter()
            .map(|p| run(p, i386, 0, [0; 6]))
            .min_by_key(|r| (r & libc::SECCOMP_RET_ACTION_FULL) as i32)
            .unwrap();
        assert_eq!(killed, libc::SECCOMP_RET_KILL_PROCESS);
    }
}
