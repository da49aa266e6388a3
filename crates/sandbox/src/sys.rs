//! Thin wrappers around the raw syscalls that neither `std` nor `nix` wraps.
//!
//! Each function does one syscall (or a fixed short sequence) and turns the result into an
//! `io::Result`; the policy of when to call them lives in `helper` and `jail`. Everything here
//! is async-signal-safe (no allocation) unless its doc says otherwise, so the probes in
//! `doctor` can call it in a forked child of a multi-threaded process.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `pidfd_open(2)`: a descriptor that names exactly this process, immune to pid reuse.
pub(crate) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1; no memory is
    // shared with the kernel.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: on success the kernel returned a fresh descriptor (close-on-exec by definition of
    // pidfd_open) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`: signals the process named by `pidfd`; ESRCH once it has exited.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: null siginfo is allowed (the kernel fills a SI_USER siginfo); flags must be 0.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

/// Marks every descriptor from `low` upwards close-on-exec, so nothing the process inherited
/// by accident reaches the runtime. Falls back to walking `/proc/self/fd` (allocates) on
/// kernels without `close_range` (before 5.11).
pub(crate) fn cloexec_from(low: RawFd) -> io::Result<()> {
    // SAFETY: close_range only changes descriptor flags in our own table.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            low as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= low)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on a descriptor number only alters its flag (EBADF is harmless for
        // the directory descriptor read_dir already closed).
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Duplicates `fd` to the lowest free number >= `min`, close-on-exec.
pub(crate) fn dup_cloexec_min(fd: BorrowedFd<'_>, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor and touches no memory.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Sets `IFF_UP` on the loopback interface of the current network namespace (a fresh network
/// namespace starts with `lo` down).
pub(crate) fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain socket() call; the result is checked below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `sock` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value (empty name, zero flags).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the interface name from and writes the flags into `req`,
    // which lives for the whole call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFFLAGS the flags member of the union is the initialised one.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads `req`, which is valid for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes every capability up to `last_cap` from the bounding set, so no later exec can
/// regain one (needs CAP_SETPCAP, held by root before the uid switch).
pub(crate) fn drop_bounding_set(last_cap: u32) -> io::Result<()> {
    for cap in 0..=last_cap {
        // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            // EINVAL: the kernel does not know this capability; nothing to drop.
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Clears the ambient set and sets effective, permitted and inheritable capabilities to empty.
/// Lowering capabilities never needs privilege, so this works after the uid switch too.
pub(crate) fn clear_capabilities() -> io::Result<()> {
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no pointers.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // EINVAL: kernel older than 4.3 has no ambient set, so nothing to clear.
    if ret < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return Err(io::Error::last_os_error());
    }
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: version 3 capset reads one header and two data structs, both valid for the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    })?;
    Ok(())
}

/// Highest capability number the running kernel knows.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// Waits up to `timeout_ms` (-1: forever) until one of `fds` is readable or hung up; returns
/// the `revents` of each (all zero on timeout). Negative fds are ignored.
pub(crate) fn poll_readable<const N: usize>(
    fds: [RawFd; N],
    timeout_ms: libc::c_int,
) -> io::Result<[libc::c_short; N]> {
    let mut pfds = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    loop {
        // SAFETY: `pfds` is a valid array of N pollfd for the duration of the call.
        let ret = unsafe { libc::poll(pfds.as_mut_ptr(), N as libc::nfds_t, timeout_ms) };
        if ret >= 0 {
            return Ok(pfds.map(|p| p.revents));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

// Loop device interface of linux/loop.h, which libc does not carry.
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
/// Detach the device when its last user (the mount) goes away.
const LO_FLAGS_AUTOCLEAR: u32 = 4;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device: its node and an open descriptor. The device detaches itself when
/// the last descriptor and the last mount of it are gone.
#[derive(Debug)]
pub(crate) struct LoopDevice {
    pub(crate) path: std::path::PathBuf,
    /// Keeps the device attached until someone else (the mount) holds it.
    _fd: OwnedFd,
}

fn open_rw(path: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: open with a valid NUL-terminated path; the result is checked.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn loop_info(flags: u32) -> LoopInfo64 {
    LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: flags,
        lo_file_name: [0; 64],
        lo_crypt_name: [0; 64],
        lo_encrypt_key: [0; 32],
        lo_init: [0; 2],
    }
}

/// Binds `backing` to `dev` with auto-clear. LOOP_CONFIGURE does it in one step (Linux 5.8);
/// older kernels get LOOP_SET_FD plus LOOP_SET_STATUS64.
///
/// Buffered, not LO_FLAGS_DIRECT_IO: direct I/O would spare the host a second cached copy of
/// `/tmp` data, but its first read flushes the freshly copied image to disk synchronously, which
/// put 10 to 20 ms on every environment start on a busy host.
fn loop_configure(dev: &OwnedFd, backing: BorrowedFd<'_>) -> io::Result<()> {
    let flags = LO_FLAGS_AUTOCLEAR;
    let cfg = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: 0,
        info: loop_info(flags),
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads one loop_config, which lives for the whole call.
    let ret = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_CONFIGURE as _,
            &cfg as *const LoopConfig,
        )
    };
    if ret == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::ENOTTY) | Some(libc::EINVAL)) {
        return Err(err);
    }
    // SAFETY: LOOP_SET_FD takes the backing descriptor as an integer argument.
    if unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_SET_FD as _,
            backing.as_raw_fd() as libc::c_ulong,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    let info = loop_info(LO_FLAGS_AUTOCLEAR);
    // SAFETY: LOOP_SET_STATUS64 reads one loop_info64 that lives for the call.
    if unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_SET_STATUS64 as _,
            &info as *const LoopInfo64,
        )
    } < 0
    {
        let err = io::Error::last_os_error();
        // SAFETY: LOOP_CLR_FD takes no argument; undoes the SET_FD above.
        unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD as _, 0) };
        return Err(err);
    }
    Ok(())
}

/// Attaches `backing` to a free loop device. Needs CAP_SYS_ADMIN in the initial user namespace.
pub(crate) fn loop_attach(backing: BorrowedFd<'_>) -> io::Result<LoopDevice> {
    let ctl = open_rw(c"/dev/loop-control")?;
    let mut last = io::Error::from_raw_os_error(libc::EBUSY);
    // Another process may grab the device between GET_FREE and CONFIGURE: try again.
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = std::path::PathBuf::from(format!("/dev/loop{n}"));
        let cpath = std::ffi::CString::new(format!("/dev/loop{n}"))
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let dev = open_rw(&cpath)?;
        let attached = loop_configure(&dev, backing);
        match attached {
            Ok(()) => return Ok(LoopDevice { path, _fd: dev }),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Copies `src` into `dst` (both `len` bytes long) skipping holes, so a sparse file stays
/// sparse: only the data extents found with SEEK_DATA / SEEK_HOLE are copied, in the kernel.
pub(crate) fn copy_sparse(src: &std::fs::File, dst: &std::fs::File, len: u64) -> io::Result<()> {
    dst.set_len(len)?;
    let mut pos: libc::off_t = 0;
    while (pos as u64) < len {
        // SAFETY: lseek only moves the file offset of our own descriptor.
        let data = unsafe { libc::lseek(src.as_raw_fd(), pos, libc::SEEK_DATA) };
        if data < 0 {
            let err = io::Error::last_os_error();
            // ENXIO: no data after `pos`, the rest is a hole.
            return if err.raw_os_error() == Some(libc::ENXIO) {
                Ok(())
            } else {
                Err(err)
            };
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(src.as_raw_fd(), data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let (mut off_in, mut off_out) = (data, data);
        while off_in < hole {
            // SAFETY: both offsets are valid for the call; the kernel copies between our two
            // descriptors without touching our memory.
            let n = unsafe {
                libc::copy_file_range(
                    src.as_raw_fd(),
                    &mut off_in,
                    dst.as_raw_fd(),
                    &mut off_out,
                    (hole - off_in) as usize,
                    0,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
        }
        pos = hole;
    }
    Ok(())
}

/// Whether the kernel can install seccomp filters that return an errno.
pub(crate) fn seccomp_available() -> bool {
    let action: u32 = libc::SECCOMP_RET_ERRNO;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL only reads the u32 behind the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    };
    ret == 0
}

// The new mount API of linux/mount.h (Linux 5.2; mount_setattr 5.12), which libc exposes only
// as syscall numbers on this target.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached, read-only, `nosuid`, `nodev` bind mount of the directory `path`
/// (`open_tree(OPEN_TREE_CLONE)` then `mount_setattr`): a mount that belongs to no namespace
/// until [`move_mount_to`] attaches it, which another process (the jail helper, inside an
/// environment's mount namespace) may do with the descriptor. Allocates (the path).
pub(crate) fn clone_tree_read_only(path: &std::path::Path) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call; the flags ask
    // for a new close-on-exec descriptor and touch no memory of ours.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    })?;
    // SAFETY: on success the kernel returned a fresh descriptor that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the empty path with AT_EMPTY_PATH names the descriptor itself; `attr` is a valid
    // mount_attr whose size is passed along, read by the kernel during the call only.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(tree)
}

/// Attaches the detached mount `tree` (from [`clone_tree_read_only`]) on top of `target` in the
/// caller's mount namespace. `target` must be a NUL-terminated absolute path.
pub(crate) fn move_mount_to(tree: BorrowedFd<'_>, target: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: both strings are valid NUL-terminated strings for the duration of the call; the
    // empty source path with MOVE_MOUNT_F_EMPTY_PATH names the descriptor itself.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn pidfd_names_a_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = pidfd_open(child.id() as i32).unwrap();
        pidfd_send_signal(fd.as_fd(), libc::SIGKILL).unwrap();
        let st = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGKILL));
        // Reaped: signalling through the pidfd must not hit another process.
        assert_eq!(
            pidfd_send_signal(fd.as_fd(), libc::SIGKILL)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ESRCH)
        );
    }

    #[test]
    fn dup_goes_above_the_minimum_and_is_cloexec() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let d = dup_cloexec_min(f.as_fd(), 100).unwrap();
        assert!(d.as_raw_fd() >= 100);
        let flags = nix::fcntl::fcntl(&d, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn last_cap_is_plausible() {
        let c = last_cap();
        assert!((30..=63).contains(&c), "{c}");
    }
}
