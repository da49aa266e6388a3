//! The syscalls a runtime may make at all, each with the reason it is allowed.
//!
//! Derived from what the supported runtimes actually call (`strace -f -c` of python3 with
//! threads, subprocesses, asyncio, ssl, sqlite and multiprocessing; node 20 with worker threads,
//! child processes, http and fs; the JVM 17 with a thread pool, sockets and GC; `/bin/sh` with
//! pipelines and coreutils; a tokio server), widened by the calls of the same families that
//! libc and language runtimes pick depending on version (`*at` variants, vectored I/O, timer and
//! event descriptors), with Docker's default profile read as a cross-check. A syscall that is
//! not listed fails with `ENOSYS`, as on a kernel that lacks it, so libc and runtimes fall
//! back; the calls this crate explicitly denies (`seccomp::RULES`) fail with `EPERM`.
//!
//! Some allowed calls are further restricted by argument in `seccomp::RULES` (`clone`,
//! `ioctl`, `personality`, `socket`). Privileged operations stay listed when the kernel itself
//! refuses them without the capability the runtime no longer has (`setgroups`, `chown` to
//! another user, `mknod` of a device): they fail with `EPERM` exactly as for any unprivileged
//! user.

/// One allowed syscall.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Allowed {
    /// The syscall's name (as in `man 2`).
    pub(crate) name: &'static str,
    /// Its number on this architecture.
    pub(crate) nr: i64,
    /// Why a runtime needs it.
    pub(crate) reason: &'static str,
}

/// Strips the `SYS_` of a libc constant's name.
const fn syscall_name(sys: &'static str) -> &'static str {
    sys.split_at(4).1
}

macro_rules! allow {
    ($sys:ident, $reason:literal) => {
        Allowed {
            name: syscall_name(stringify!($sys)),
            nr: libc::$sys as i64,
            reason: $reason,
        }
    };
    ($name:literal = $nr:expr, $reason:literal) => {
        Allowed {
            name: $name,
            nr: $nr,
            reason: $reason,
        }
    };
}

/// Syscalls of every architecture. Numbers from 424 on are the same on all architectures
/// Updraft supports; the ones libc does not name yet are written out.
pub(crate) const ALLOWED: &[Allowed] = &[
    // ---- files and descriptors
    allow!(SYS_read, "basic I/O"),
    allow!(SYS_write, "basic I/O"),
    allow!(SYS_readv, "vectored I/O"),
    allow!(SYS_writev, "vectored I/O (logging, HTTP)"),
    allow!(SYS_pread64, "positioned I/O (sqlite, JVM class loading)"),
    allow!(SYS_pwrite64, "positioned I/O"),
    allow!(SYS_preadv, "positioned vectored I/O"),
    allow!(SYS_pwritev, "positioned vectored I/O"),
    allow!(SYS_preadv2, "positioned vectored I/O with flags (libuv)"),
    allow!(SYS_pwritev2, "positioned vectored I/O with flags"),
    allow!(SYS_openat, "opening files"),
    allow!(SYS_openat2, "opening files with resolve restrictions"),
    allow!(SYS_close, "closing descriptors"),
    allow!(
        SYS_close_range,
        "closing descriptors before exec (subprocess)"
    ),
    allow!(SYS_lseek, "file offsets; SEEK_DATA/SEEK_HOLE"),
    allow!(SYS_fstat, "file metadata"),
    allow!(SYS_newfstatat, "file metadata"),
    allow!(SYS_statx, "file metadata (glibc, node)"),
    allow!(SYS_statfs, "free space (df, os.statvfs)"),
    allow!(SYS_fstatfs, "free space of an open file"),
    allow!(SYS_faccessat, "permission checks"),
    allow!(SYS_faccessat2, "permission checks (glibc 2.33+)"),
    allow!(SYS_getdents64, "listing directories"),
    allow!(SYS_getcwd, "current directory"),
    allow!(SYS_chdir, "changing directory"),
    allow!(SYS_fchdir, "changing directory"),
    allow!(SYS_mkdirat, "creating directories in /tmp"),
    allow!(SYS_unlinkat, "removing files in /tmp"),
    allow!(SYS_renameat, "renaming files"),
    allow!(SYS_renameat2, "renaming files (atomic replace)"),
    allow!(SYS_linkat, "hard links"),
    allow!(SYS_symlinkat, "symbolic links"),
    allow!(SYS_readlinkat, "resolving symbolic links"),
    allow!(SYS_fchmod, "file modes"),
    allow!(SYS_fchmodat, "file modes"),
    allow!("fchmodat2" = 452, "file modes (glibc 2.39+)"),
    allow!(
        SYS_fchown,
        "file ownership; only to itself without capabilities"
    ),
    allow!(
        SYS_fchownat,
        "file ownership; only to itself without capabilities"
    ),
    allow!(SYS_truncate, "resizing files"),
    allow!(SYS_ftruncate, "resizing files (sqlite, shared memory)"),
    allow!(SYS_fallocate, "preallocating files"),
    allow!(SYS_fsync, "durability of writes (sqlite)"),
    allow!(SYS_fdatasync, "durability of writes (sqlite)"),
    allow!(SYS_sync_file_range, "partial write-back"),
    allow!(SYS_syncfs, "flushing one file system"),
    allow!(SYS_flock, "advisory locks (pip, sqlite)"),
    allow!(SYS_fcntl, "descriptor flags and record locks"),
    allow!(SYS_dup, "duplicating descriptors"),
    allow!(SYS_dup3, "duplicating descriptors (subprocess)"),
    allow!(SYS_fadvise64, "read-ahead hints (coreutils, JVM)"),
    allow!(SYS_readahead, "read-ahead"),
    allow!(SYS_utimensat, "file times (touch, shutil.copystat)"),
    allow!(
        SYS_mknodat,
        "FIFOs and sockets; device nodes need CAP_MKNOD and /tmp is nodev"
    ),
    allow!(SYS_umask, "file creation mask"),
    allow!(SYS_getxattr, "extended attributes (ls, cp)"),
    allow!(SYS_lgetxattr, "extended attributes (ls, cp)"),
    allow!(SYS_fgetxattr, "extended attributes"),
    allow!(SYS_listxattr, "extended attributes"),
    allow!(SYS_llistxattr, "extended attributes"),
    allow!(SYS_flistxattr, "extended attributes"),
    allow!(SYS_setxattr, "extended attributes (user namespace only)"),
    allow!(SYS_lsetxattr, "extended attributes (user namespace only)"),
    allow!(SYS_fsetxattr, "extended attributes (user namespace only)"),
    allow!(SYS_removexattr, "extended attributes"),
    allow!(SYS_lremovexattr, "extended attributes"),
    allow!(SYS_fremovexattr, "extended attributes"),
    allow!(SYS_copy_file_range, "in-kernel copies (shutil, cp)"),
    allow!(SYS_sendfile, "in-kernel copies to sockets (static files)"),
    allow!(SYS_splice, "pipe transfers"),
    allow!(SYS_tee, "pipe transfers"),
    allow!(SYS_vmsplice, "pipe transfers"),
    allow!(SYS_inotify_init1, "file watching (node fs.watch)"),
    allow!(SYS_inotify_add_watch, "file watching"),
    allow!(SYS_inotify_rm_watch, "file watching"),
    allow!(
        SYS_ioctl,
        "terminal and socket queries; TIOCSTI/TIOCLINUX are denied by argument"
    ),
    allow!(SYS_io_setup, "Linux AIO (libaio users)"),
    allow!(SYS_io_destroy, "Linux AIO"),
    allow!(SYS_io_submit, "Linux AIO"),
    allow!(SYS_io_cancel, "Linux AIO"),
    allow!(SYS_io_getevents, "Linux AIO"),
    allow!(
        SYS_memfd_create,
        "anonymous files (JIT code, shared memory)"
    ),
    // ---- memory
    allow!(SYS_brk, "heap"),
    allow!(SYS_mmap, "memory mappings"),
    allow!(SYS_munmap, "memory mappings"),
    allow!(SYS_mremap, "growing mappings (realloc)"),
    allow!(SYS_mprotect, "memory protection (JIT, loader)"),
    allow!(SYS_madvise, "memory hints (allocators, GC)"),
    allow!(SYS_msync, "flushing file mappings"),
    allow!(SYS_mincore, "residency checks (JVM)"),
    allow!(SYS_mlock, "locking pages, bounded by RLIMIT_MEMLOCK"),
    allow!(SYS_mlock2, "locking pages, bounded by RLIMIT_MEMLOCK"),
    allow!(SYS_munlock, "unlocking pages"),
    allow!(SYS_mlockall, "locking pages, bounded by RLIMIT_MEMLOCK"),
    allow!(SYS_munlockall, "unlocking pages"),
    allow!(SYS_membarrier, "process-wide barriers (JVM, .NET, liburcu)"),
    allow!(SYS_pkey_alloc, "memory protection keys (glibc, node)"),
    allow!(SYS_pkey_free, "memory protection keys"),
    allow!(SYS_pkey_mprotect, "memory protection keys"),
    allow!(
        SYS_mbind,
        "NUMA policy of its own memory (JVM -XX:+UseNUMA)"
    ),
    allow!(SYS_get_mempolicy, "NUMA policy of its own memory"),
    allow!(SYS_set_mempolicy, "NUMA policy of its own memory"),
    allow!(SYS_mseal, "sealing its own mappings (hardening)"),
    // ---- processes and threads
    allow!(
        SYS_clone,
        "threads and fork; namespace flags are denied by argument"
    ),
    allow!(SYS_execve, "running programs (subprocess, shell)"),
    allow!(SYS_execveat, "running programs"),
    allow!(SYS_exit, "ending a thread"),
    allow!(SYS_exit_group, "ending the process"),
    allow!(SYS_wait4, "reaping children"),
    allow!(SYS_waitid, "reaping children"),
    allow!(SYS_kill, "signals within its own pid namespace"),
    allow!(SYS_tkill, "signals to its own threads"),
    allow!(SYS_tgkill, "signals to its own threads (JVM safepoints)"),
    allow!(SYS_rt_sigaction, "signal handlers"),
    allow!(SYS_rt_sigprocmask, "signal masks"),
    allow!(SYS_rt_sigreturn, "returning from signal handlers"),
    allow!(SYS_rt_sigsuspend, "waiting for signals (shell)"),
    allow!(SYS_rt_sigpending, "pending signals"),
    allow!(SYS_rt_sigtimedwait, "waiting for signals"),
    allow!(SYS_rt_sigqueueinfo, "queued signals within the environment"),
    allow!(
        SYS_rt_tgsigqueueinfo,
        "queued signals within the environment"
    ),
    allow!(SYS_sigaltstack, "signal stacks (Go, Rust, JVM)"),
    allow!(SYS_signalfd4, "signals as descriptors"),
    allow!(SYS_set_tid_address, "thread start-up"),
    allow!(SYS_set_robust_list, "thread start-up (robust futexes)"),
    allow!(SYS_get_robust_list, "robust futexes"),
    allow!(SYS_futex, "locks and condition variables"),
    allow!(SYS_futex_waitv, "waiting on several futexes"),
    allow!("futex_wake" = 454, "futex2 locks"),
    allow!("futex_wait" = 455, "futex2 locks"),
    allow!("futex_requeue" = 456, "futex2 locks"),
    allow!(
        SYS_rseq,
        "restartable sequences (glibc 2.35+ thread start-up)"
    ),
    allow!(SYS_gettid, "thread ids"),
    allow!(SYS_getpid, "process ids"),
    allow!(SYS_getppid, "process ids"),
    allow!(SYS_getpgid, "process groups"),
    allow!(SYS_setpgid, "process groups (shell job control)"),
    allow!(SYS_getsid, "sessions"),
    allow!(SYS_setsid, "sessions (daemonising children)"),
    allow!(SYS_getuid, "identity"),
    allow!(SYS_geteuid, "identity"),
    allow!(SYS_getgid, "identity"),
    allow!(SYS_getegid, "identity"),
    allow!(SYS_getresuid, "identity"),
    allow!(SYS_getresgid, "identity"),
    allow!(SYS_getgroups, "identity"),
    allow!(
        SYS_setuid,
        "identity changes; only to itself without CAP_SETUID"
    ),
    allow!(
        SYS_setgid,
        "identity changes; only to itself without CAP_SETGID"
    ),
    allow!(SYS_setreuid, "identity changes; only to itself"),
    allow!(SYS_setregid, "identity changes; only to itself"),
    allow!(SYS_setresuid, "identity changes; only to itself"),
    allow!(SYS_setresgid, "identity changes; only to itself"),
    allow!(SYS_setfsuid, "identity changes; only to itself"),
    allow!(SYS_setfsgid, "identity changes; only to itself"),
    allow!(SYS_setgroups, "fails with EPERM without CAP_SETGID"),
    allow!(SYS_capget, "capability queries (shell, JVM)"),
    allow!(SYS_capset, "dropping capabilities; none can be gained"),
    allow!(
        SYS_prctl,
        "thread names, no_new_privs, dumpable; privileged options need capabilities"
    ),
    allow!(
        SYS_personality,
        "persona queries; only Linux personas, by argument"
    ),
    allow!(SYS_sched_yield, "spin locks"),
    allow!(SYS_sched_getaffinity, "CPU count (nproc, os.cpus, JVM)"),
    allow!(SYS_sched_setaffinity, "pinning its own threads"),
    allow!(SYS_sched_getparam, "scheduling queries"),
    allow!(
        SYS_sched_setparam,
        "scheduling of its own threads; real-time needs CAP_SYS_NICE"
    ),
    allow!(SYS_sched_getscheduler, "scheduling queries"),
    allow!(
        SYS_sched_setscheduler,
        "scheduling of its own threads; real-time needs CAP_SYS_NICE"
    ),
    allow!(SYS_sched_get_priority_max, "scheduling queries"),
    allow!(SYS_sched_get_priority_min, "scheduling queries"),
    allow!(SYS_sched_rr_get_interval, "scheduling queries"),
    allow!(SYS_sched_getattr, "scheduling queries"),
    allow!(
        SYS_sched_setattr,
        "scheduling of its own threads; real-time needs CAP_SYS_NICE"
    ),
    allow!(SYS_getpriority, "nice values"),
    allow!(SYS_setpriority, "lowering its own priority"),
    allow!(SYS_ioprio_get, "I/O priority"),
    allow!(SYS_ioprio_set, "lowering its own I/O priority"),
    allow!(SYS_getrlimit, "resource limits"),
    allow!(SYS_setrlimit, "lowering resource limits"),
    allow!(SYS_prlimit64, "resource limits (glibc)"),
    allow!(SYS_getrusage, "resource usage"),
    allow!(SYS_times, "process times"),
    allow!(SYS_uname, "kernel version and hostname"),
    allow!(SYS_sysinfo, "memory and uptime (JVM, node os.totalmem)"),
    allow!(SYS_getcpu, "current CPU (allocators)"),
    allow!(SYS_pidfd_open, "waiting for its own children (Python 3.9+)"),
    allow!(
        SYS_pidfd_send_signal,
        "signalling its own children without pid races"
    ),
    allow!(
        SYS_seccomp,
        "adding filters of its own; only restricts further"
    ),
    allow!(SYS_landlock_create_ruleset, "restricting itself further"),
    allow!(SYS_landlock_add_rule, "restricting itself further"),
    allow!(SYS_landlock_restrict_self, "restricting itself further"),
    allow!(SYS_restart_syscall, "restarting interrupted sleeps"),
    allow!(SYS_getrandom, "randomness (hash seeds, TLS)"),
    // ---- time
    allow!(SYS_clock_gettime, "reading clocks"),
    allow!(SYS_clock_getres, "clock resolution"),
    allow!(SYS_clock_nanosleep, "sleeping"),
    allow!(SYS_nanosleep, "sleeping"),
    allow!(SYS_gettimeofday, "reading the clock"),
    allow!(SYS_getitimer, "interval timers"),
    allow!(SYS_setitimer, "interval timers (signal.setitimer)"),
    allow!(SYS_timer_create, "POSIX timers (JVM, profilers)"),
    allow!(SYS_timer_settime, "POSIX timers"),
    allow!(SYS_timer_gettime, "POSIX timers"),
    allow!(SYS_timer_getoverrun, "POSIX timers"),
    allow!(SYS_timer_delete, "POSIX timers"),
    allow!(SYS_timerfd_create, "timers as descriptors (event loops)"),
    allow!(SYS_timerfd_settime, "timers as descriptors"),
    allow!(SYS_timerfd_gettime, "timers as descriptors"),
    // ---- event loops
    allow!(
        SYS_epoll_create1,
        "event loops (libuv, asyncio, tokio, JVM)"
    ),
    allow!(SYS_epoll_ctl, "event loops"),
    allow!(SYS_epoll_pwait, "event loops"),
    allow!(SYS_epoll_pwait2, "event loops with nanosecond timeouts"),
    allow!(SYS_eventfd2, "wake-ups across threads (libuv, tokio)"),
    allow!(SYS_ppoll, "waiting for descriptors"),
    allow!(SYS_pselect6, "waiting for descriptors"),
    allow!(SYS_pipe2, "pipes (subprocess, shell)"),
    // ---- IPC, private to the environment's IPC namespace
    allow!(
        SYS_shmget,
        "System V shared memory (IPC namespace of its own)"
    ),
    allow!(SYS_shmat, "System V shared memory"),
    allow!(SYS_shmdt, "System V shared memory"),
    allow!(SYS_shmctl, "System V shared memory"),
    allow!(SYS_semget, "System V semaphores (IPC namespace of its own)"),
    allow!(SYS_semop, "System V semaphores"),
    allow!(SYS_semtimedop, "System V semaphores"),
    allow!(SYS_semctl, "System V semaphores"),
    allow!(
        SYS_msgget,
        "System V message queues (IPC namespace of its own)"
    ),
    allow!(SYS_msgsnd, "System V message queues"),
    allow!(SYS_msgrcv, "System V message queues"),
    allow!(SYS_msgctl, "System V message queues"),
    allow!(
        SYS_mq_open,
        "POSIX message queues (IPC namespace of its own)"
    ),
    allow!(SYS_mq_unlink, "POSIX message queues"),
    allow!(SYS_mq_timedsend, "POSIX message queues"),
    allow!(SYS_mq_timedreceive, "POSIX message queues"),
    allow!(SYS_mq_notify, "POSIX message queues"),
    allow!(SYS_mq_getsetattr, "POSIX message queues"),
    // ---- sockets (loopback only: the network namespace has nothing else)
    allow!(
        SYS_socket,
        "sockets; only unix, IPv4, IPv6 and netlink, by argument"
    ),
    allow!(SYS_socketpair, "connected unix sockets (multiprocessing)"),
    allow!(SYS_bind, "servers on loopback"),
    allow!(SYS_listen, "servers on loopback"),
    allow!(SYS_accept, "servers on loopback"),
    allow!(SYS_accept4, "servers on loopback"),
    allow!(SYS_connect, "the Runtime API and loopback clients"),
    allow!(SYS_getsockname, "socket addresses"),
    allow!(SYS_getpeername, "socket addresses"),
    allow!(SYS_sendto, "sending data"),
    allow!(SYS_recvfrom, "receiving data"),
    allow!(SYS_sendmsg, "sending data and descriptors"),
    allow!(SYS_recvmsg, "receiving data and descriptors"),
    allow!(SYS_sendmmsg, "batched sends (DNS resolvers)"),
    allow!(SYS_recvmmsg, "batched receives"),
    allow!(SYS_setsockopt, "socket options"),
    allow!(SYS_getsockopt, "socket options"),
    allow!(SYS_shutdown, "half-closing connections"),
];

/// The legacy x86_64 syscalls that newer architectures replaced with the `*at` and `*2`
/// variants above; glibc, musl, Go and the JVM still call many of them on x86_64.
#[cfg(target_arch = "x86_64")]
pub(crate) const ALLOWED_X86_64: &[Allowed] = &[
    allow!(SYS_open, "opening files (legacy)"),
    allow!(SYS_creat, "creating files (legacy)"),
    allow!(SYS_stat, "file metadata (legacy)"),
    allow!(SYS_lstat, "file metadata (legacy)"),
    allow!(SYS_access, "permission checks (legacy)"),
    allow!(SYS_getdents, "listing directories (legacy)"),
    allow!(SYS_mkdir, "creating directories (legacy)"),
    allow!(SYS_rmdir, "removing directories (legacy)"),
    allow!(SYS_unlink, "removing files (legacy)"),
    allow!(SYS_rename, "renaming files (legacy)"),
    allow!(SYS_link, "hard links (legacy)"),
    allow!(SYS_symlink, "symbolic links (legacy)"),
    allow!(SYS_readlink, "resolving symbolic links (legacy)"),
    allow!(SYS_chmod, "file modes (legacy)"),
    allow!(SYS_chown, "file ownership (legacy)"),
    allow!(SYS_lchown, "file ownership (legacy)"),
    allow!(SYS_utime, "file times (legacy)"),
    allow!(SYS_utimes, "file times (legacy)"),
    allow!(SYS_futimesat, "file times (legacy)"),
    allow!(SYS_mknod, "FIFOs and sockets (legacy)"),
    allow!(SYS_dup2, "duplicating descriptors (shell redirections)"),
    allow!(SYS_pipe, "pipes (legacy)"),
    allow!(SYS_select, "waiting for descriptors (legacy)"),
    allow!(SYS_poll, "waiting for descriptors (legacy)"),
    allow!(SYS_epoll_create, "event loops (legacy)"),
    allow!(SYS_epoll_wait, "event loops (legacy)"),
    allow!(SYS_eventfd, "wake-ups (legacy)"),
    allow!(SYS_signalfd, "signals as descriptors (legacy)"),
    allow!(SYS_inotify_init, "file watching (legacy)"),
    allow!(SYS_fork, "fork (legacy)"),
    allow!(SYS_vfork, "spawning programs (posix_spawn, node, JVM)"),
    allow!(SYS_pause, "waiting for signals (legacy)"),
    allow!(SYS_alarm, "alarm signals (legacy)"),
    allow!(SYS_time, "reading the clock (legacy)"),
    allow!(SYS_getpgrp, "process groups (shell)"),
    allow!(SYS_arch_prctl, "thread-local storage set-up"),
];

/// Every allowed syscall of this architecture.
pub(crate) fn allowed() -> impl Iterator<Item = &'static Allowed> {
    #[cfg(target_arch = "x86_64")]
    let extra = ALLOWED_X86_64.iter();
    #[cfg(not(target_arch = "x86_64"))]
    let extra = [].iter();
    ALLOWED.iter().chain(extra)
}
