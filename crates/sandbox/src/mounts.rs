//! The root filesystem of an environment: a plan of mount operations, and its executor.
//!
//! [`plan`] is pure: it looks at the host only through the [`Host`] trait, so the layout (what
//! is visible, what is writable, where) is unit-tested against a fake host. [`execute`] performs
//! the operations below a fresh tmpfs, in the jail's private mount namespace, before
//! `pivot_root` makes that tmpfs `/`.
//!
//! Layout (jail paths):
//! - `/usr`, `/lib*`, `/bin`, `/sbin`: read-only binds of the host's, or the same symlinks on
//!   merged-`/usr` hosts;
//! - `/etc`: only the files in [`ETC`], plus generated `passwd`, `group`, `hosts`, `hostname`;
//! - `/var/task`, `/var/runtime`, `/opt`: read-only binds of the code, runtime and layer dirs;
//! - every `ro_paths` entry read-only at its own (canonical) path;
//! - `/tmp`: a size-limited ext4 on the environment's own loop device (see `tmpdisk`), or a
//!   size-limited tmpfs where that is unavailable; the only writable place besides `/dev/shm`;
//! - `/proc`: a new proc of the jail's pid namespace, `/proc/sys` read-only;
//! - `/dev`: a read-only tmpfs with `null`, `zero`, `full`, `random`, `urandom`, `shm`, `fd`.
//!
//! Everything else of the host is absent: the root itself is a tmpfs that is remounted
//! read-only after the pivot.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::statvfs::{FsFlags, statvfs};

use crate::{JailSpec, SANDBOX_GID, SANDBOX_UID, SANDBOX_USER};

/// Host directories shown read-only at the same path (or recreated as symlinks).
pub(crate) const SYSTEM_DIRS: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
];

/// How an `/etc` entry gets into the jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EtcSource {
    /// Bound read-only from the host when it exists (file or directory).
    Host,
    /// Written by Updraft.
    Generated,
}

/// The `/etc` of the jail, with the reason each entry is there. Nothing else of the host's
/// `/etc` is visible.
pub(crate) const ETC: &[(&str, EtcSource, &str)] = &[
    ("ld.so.cache", EtcSource::Host, "dynamic linker cache"),
    ("ld.so.conf", EtcSource::Host, "dynamic linker search path"),
    (
        "ld.so.conf.d",
        EtcSource::Host,
        "dynamic linker search path",
    ),
    ("localtime", EtcSource::Host, "time zone"),
    ("timezone", EtcSource::Host, "time zone name"),
    ("resolv.conf", EtcSource::Host, "name resolution"),
    ("host.conf", EtcSource::Host, "name resolution"),
    ("nsswitch.conf", EtcSource::Host, "name service order"),
    ("gai.conf", EtcSource::Host, "getaddrinfo preferences"),
    ("services", EtcSource::Host, "getservbyname"),
    ("protocols", EtcSource::Host, "getprotobyname"),
    ("ssl", EtcSource::Host, "TLS trust store and openssl config"),
    ("pki", EtcSource::Host, "TLS trust store (RHEL family)"),
    ("ca-certificates", EtcSource::Host, "TLS trust store"),
    ("ca-certificates.conf", EtcSource::Host, "TLS trust store"),
    (
        "crypto-policies",
        EtcSource::Host,
        "openssl config (RHEL family)",
    ),
    (
        "alternatives",
        EtcSource::Host,
        "symlink targets of /usr/bin (Debian family)",
    ),
    ("mime.types", EtcSource::Host, "MIME type guessing"),
    (
        "mono",
        EtcSource::Host,
        "Mono's machine.config and DllMap (the C# runtimes)",
    ),
    ("os-release", EtcSource::Host, "platform identification"),
    ("passwd", EtcSource::Generated, "sandbox user only"),
    ("group", EtcSource::Generated, "sandbox group only"),
    (
        "hosts",
        EtcSource::Generated,
        "localhost and the environment's hostname",
    ),
    (
        "hostname",
        EtcSource::Generated,
        "the environment's hostname",
    ),
];

/// Prefix of `/etc` directories holding JDK configuration that `/usr/lib/jvm` links into
/// (Debian family); all are shown so Java runtimes start.
pub(crate) const ETC_JAVA_PREFIX: &str = "java-";

/// Device nodes bound from the host's `/dev`.
pub(crate) const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// Host directories where the new root's tmpfs may be mounted (in the private mount namespace,
/// invisible to the host). The first existing one that holds no bind source wins.
pub(crate) const ROOT_MOUNTPOINTS: [&str; 7] = [
    "/run", "/tmp", "/var/tmp", "/mnt", "/media", "/srv", "/home",
];

/// Mount flags of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Flags {
    pub(crate) readonly: bool,
    pub(crate) nosuid: bool,
    pub(crate) nodev: bool,
    pub(crate) noexec: bool,
}

impl Flags {
    const RO: Flags = Flags {
        readonly: true,
        nosuid: true,
        nodev: true,
        noexec: false,
    };
    const DEVICE: Flags = Flags {
        readonly: false,
        nosuid: true,
        nodev: false,
        noexec: true,
    };

    fn ms(self) -> MsFlags {
        let mut f = MsFlags::empty();
        f.set(MsFlags::MS_RDONLY, self.readonly);
        f.set(MsFlags::MS_NOSUID, self.nosuid);
        f.set(MsFlags::MS_NODEV, self.nodev);
        f.set(MsFlags::MS_NOEXEC, self.noexec);
        f
    }
}

/// Whether a bind mount target is a directory or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Dir,
    File,
}

/// One step of building the root. `path`/`dst` are jail paths; `src` is a host path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Dir {
        path: PathBuf,
        mode: u32,
    },
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
    File {
        path: PathBuf,
        contents: String,
        mode: u32,
    },
    Bind {
        src: PathBuf,
        dst: PathBuf,
        kind: NodeKind,
        flags: Flags,
    },
    Tmpfs {
        dst: PathBuf,
        options: String,
        flags: Flags,
    },
    /// A block device (the environment's loop-mounted ext4 image) holding a file system
    /// that becomes world-writable (mode 1777, like a tmpfs with `mode=1777`). If it cannot be
    /// mounted, a tmpfs with `fallback` options takes its place, with a warning.
    Disk {
        dst: PathBuf,
        device: PathBuf,
        fstype: &'static str,
        options: &'static str,
        flags: Flags,
        fallback: String,
    },
    Proc {
        dst: PathBuf,
    },
    /// Bind a jail path onto itself and make it read-only (`/proc/sys`).
    ReadOnlySelf {
        path: PathBuf,
    },
    /// Make an existing mount read-only once everything below it is in place.
    ReadOnly {
        path: PathBuf,
    },
}

/// What a host path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostKind {
    Dir,
    File,
    CharDevice,
    Symlink(PathBuf),
    Other,
    Missing,
}

/// The host as the planner sees it.
pub(crate) trait Host {
    /// Kind of `p` itself (symlinks are not followed).
    fn lstat(&self, p: &Path) -> HostKind;
    /// Canonical path of `p` and the kind of what it points to, if it exists.
    fn resolve(&self, p: &Path) -> Option<(PathBuf, HostKind)>;
    /// Names in directory `p`.
    fn list(&self, p: &Path) -> Vec<String>;
}

/// The real host.
pub(crate) struct RealHost;

fn kind_of(md: &fs::Metadata) -> HostKind {
    use std::os::unix::fs::FileTypeExt;
    let t = md.file_type();
    if t.is_dir() {
        HostKind::Dir
    } else if t.is_file() {
        HostKind::File
    } else if t.is_char_device() {
        HostKind::CharDevice
    } else {
        HostKind::Other
    }
}

impl Host for RealHost {
    fn lstat(&self, p: &Path) -> HostKind {
        match fs::symlink_metadata(p) {
            Ok(md) if md.file_type().is_symlink() => match fs::read_link(p) {
                Ok(t) => HostKind::Symlink(t),
                Err(_) => HostKind::Other,
            },
            Ok(md) => kind_of(&md),
            Err(_) => HostKind::Missing,
        }
    }

    fn resolve(&self, p: &Path) -> Option<(PathBuf, HostKind)> {
        let real = fs::canonicalize(p).ok()?;
        let md = fs::metadata(&real).ok()?;
        Some((real, kind_of(&md)))
    }

    fn list(&self, p: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Contents of the generated `/etc/passwd`.
pub(crate) fn passwd() -> String {
    format!(
        "root:x:0:0:root:/root:/sbin/nologin\n\
         {SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_GID}::/home/{SANDBOX_USER}:/sbin/nologin\n\
         nobody:x:65534:65534:nobody:/:/sbin/nologin\n"
    )
}

/// Contents of the generated `/etc/group`.
pub(crate) fn group() -> String {
    format!("root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_GID}:\nnobody:x:65534:\n")
}

/// A mounted directory in the plan and what may be placed below it.
struct Mounted {
    path: PathBuf,
    /// The host directory at the same path: anything below is already visible.
    identity: bool,
    /// Directories may be created below it (a tmpfs of ours).
    nestable: bool,
}

struct Builder<'a, H: Host> {
    host: &'a H,
    ops: Vec<Op>,
    dirs: BTreeSet<PathBuf>,
    mounted: Vec<Mounted>,
}

impl<H: Host> Builder<'_, H> {
    fn ensure_dir(&mut self, p: &Path) {
        let mut cur = PathBuf::from("/");
        for c in p.components().skip(1) {
            cur.push(c);
            if !self.dirs.contains(&cur) {
                self.ops.push(Op::Dir {
                    path: cur.clone(),
                    mode: 0o755,
                });
                self.dirs.insert(cur.clone());
            }
        }
    }

    fn bind(&mut self, src: PathBuf, dst: PathBuf, kind: NodeKind, flags: Flags) {
        if let Some(parent) = dst.parent() {
            self.ensure_dir(parent);
        }
        if kind == NodeKind::Dir {
            self.dirs.insert(dst.clone());
            self.mounted.push(Mounted {
                identity: src == dst,
                nestable: false,
                path: dst.clone(),
            });
        }
        self.ops.push(Op::Bind {
            src,
            dst,
            kind,
            flags,
        });
    }

    fn tmpfs(&mut self, dst: &str, options: String, flags: Flags) {
        let dst = PathBuf::from(dst);
        self.ensure_dir(&dst);
        self.mounted.push(Mounted {
            path: dst.clone(),
            identity: false,
            nestable: true,
        });
        self.ops.push(Op::Tmpfs {
            dst,
            options,
            flags,
        });
    }

    /// The innermost planned mount containing `p`.
    fn mount_of(&self, p: &Path) -> Option<&Mounted> {
        self.mounted
            .iter()
            .filter(|m| p.starts_with(&m.path))
            .max_by_key(|m| m.path.components().count())
    }

    /// A required host directory (code, runtime, layers).
    fn host_dir(&self, what: &str, p: &Path) -> Result<PathBuf, String> {
        match self.host.resolve(p) {
            Some((real, HostKind::Dir)) => Ok(real),
            Some(_) => Err(format!("{what} {} is not a directory", p.display())),
            None => Err(format!("{what} {} does not exist", p.display())),
        }
    }
}

/// Plans the root filesystem of `spec`. Errors name the offending spec path.
pub(crate) fn plan(spec: &JailSpec, host: &impl Host) -> Result<Vec<Op>, String> {
    let mut b = Builder {
        host,
        ops: Vec::new(),
        dirs: BTreeSet::from([PathBuf::from("/")]),
        mounted: Vec::new(),
    };

    for name in SYSTEM_DIRS {
        let p = PathBuf::from(name);
        match host.lstat(&p) {
            HostKind::Dir => b.bind(p.clone(), p, NodeKind::Dir, Flags::RO),
            HostKind::Symlink(target) => b.ops.push(Op::Symlink { path: p, target }),
            _ => {}
        }
    }

    b.ensure_dir(Path::new("/etc"));
    let hostname = spec.hostname();
    for (name, source, _why) in ETC {
        let path = Path::new("/etc").join(name);
        match source {
            EtcSource::Generated => {
                let contents = match *name {
                    "passwd" => passwd(),
                    "group" => group(),
                    "hosts" => format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost\n"),
                    _ => format!("{hostname}\n"),
                };
                b.ops.push(Op::File {
                    path,
                    contents,
                    mode: 0o644,
                });
            }
            EtcSource::Host => match host.resolve(&path) {
                Some((real, HostKind::Dir)) => b.bind(real, path, NodeKind::Dir, Flags::RO),
                Some((real, HostKind::File)) => b.bind(real, path, NodeKind::File, Flags::RO),
                _ => {}
            },
        }
    }
    for name in host.list(Path::new("/etc")) {
        if name.starts_with(ETC_JAVA_PREFIX) {
            let path = Path::new("/etc").join(&name);
            if let Some((real, HostKind::Dir)) = host.resolve(&path) {
                b.bind(real, path, NodeKind::Dir, Flags::RO);
            }
        }
    }

    let code = b.host_dir("code_dir", &spec.code_dir)?;
    b.bind(code, "/var/task".into(), NodeKind::Dir, Flags::RO);
    if let Some(rt) = &spec.runtime_dir {
        let rt = b.host_dir("runtime_dir", rt)?;
        b.bind(rt, "/var/runtime".into(), NodeKind::Dir, Flags::RO);
    }
    match &spec.opt_dir {
        Some(opt) => {
            let opt = b.host_dir("opt_dir", opt)?;
            b.bind(opt, "/opt".into(), NodeKind::Dir, Flags::RO);
        }
        None => b.ensure_dir(Path::new("/opt")),
    }

    let writable = Flags {
        readonly: false,
        nosuid: true,
        nodev: true,
        noexec: false,
    };
    b.tmpfs("/tmp", format!("size={}m,mode=1777", spec.tmp_mb), writable);

    b.ensure_dir(Path::new("/proc"));
    b.ops.push(Op::Proc {
        dst: "/proc".into(),
    });
    b.mounted.push(Mounted {
        path: "/proc".into(),
        identity: false,
        nestable: false,
    });
    b.ops.push(Op::ReadOnlySelf {
        path: "/proc/sys".into(),
    });

    b.tmpfs(
        "/dev",
        "size=64k,mode=755".into(),
        Flags {
            readonly: false,
            nosuid: true,
            nodev: true,
            noexec: true,
        },
    );
    for dev in DEVICES {
        let p = Path::new("/dev").join(dev);
        if host.lstat(&p) == HostKind::CharDevice {
            b.ops.push(Op::Bind {
                src: p.clone(),
                dst: p,
                kind: NodeKind::File,
                flags: Flags::DEVICE,
            });
        }
    }
    b.ops.push(Op::Tmpfs {
        dst: "/dev/shm".into(),
        options: format!("size={}m,mode=1777", spec.memory_mb),
        flags: Flags {
            readonly: false,
            nosuid: true,
            nodev: true,
            noexec: true,
        },
    });
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        b.ops.push(Op::Symlink {
            path: Path::new("/dev").join(name),
            target: target.into(),
        });
    }
    b.ops.push(Op::ReadOnly {
        path: "/dev".into(),
    });
    b.mounted.retain(|m| m.path != Path::new("/dev"));
    b.mounted.push(Mounted {
        path: "/dev".into(),
        identity: false,
        nestable: false,
    });

    // Parents before children, so a later bind never hides an earlier one.
    let mut ro: Vec<&PathBuf> = spec.ro_paths.iter().collect();
    ro.sort_by_key(|p| p.components().count());
    for p in ro {
        let Some((real, kind)) = host.resolve(p) else {
            return Err(format!("ro path {} does not exist", p.display()));
        };
        let kind = match kind {
            HostKind::Dir => NodeKind::Dir,
            HostKind::File => NodeKind::File,
            _ => {
                return Err(format!(
                    "ro path {} is neither a file nor a directory",
                    p.display()
                ));
            }
        };
        if real == Path::new("/") || real.starts_with("/sys") {
            return Err(format!("ro path {} would expose the host", p.display()));
        }
        // Bound over a jail directory, it would hide what the jail put there (/var/task
        // below /var, the generated passwd below /etc, ...).
        let hides = b
            .mounted
            .iter()
            .any(|m| m.path != real && m.path.starts_with(&real))
            || b.ops.iter().any(|o| match o {
                Op::File { path, .. } => path.starts_with(&real),
                _ => false,
            });
        if hides {
            return Err(format!(
                "ro path {} would hide part of the jail's own layout",
                p.display()
            ));
        }
        if let Some(m) = b.mount_of(&real) {
            if m.identity {
                continue; // already visible through a read-only bind of an ancestor
            }
            if !m.nestable || m.path == Path::new("/dev") {
                return Err(format!(
                    "ro path {} lies inside the jail's {}",
                    p.display(),
                    m.path.display()
                ));
            }
        }
        b.bind(real.clone(), real.clone(), kind, Flags::RO);
        // Keep the spelled path working when it went through a symlink, where possible.
        if *p != real
            && !b.dirs.contains(p)
            && b.mount_of(p).is_none_or(|m| m.nestable)
            && !b
                .ops
                .iter()
                .any(|o| matches!(o, Op::Symlink { path, .. } if path == p))
            && let Some(parent) = p.parent()
        {
            b.ensure_dir(parent);
            b.ops.push(Op::Symlink {
                path: p.clone(),
                target: real,
            });
        }
    }
    Ok(b.ops)
}

/// Replaces the planned tmpfs at `/tmp` with the ext4 file system on `device`, keeping its
/// flags and falling back to the same tmpfs if the mount fails.
pub(crate) fn use_disk_tmp(ops: &mut [Op], device: &Path) {
    for op in ops.iter_mut() {
        if let Op::Tmpfs {
            dst,
            options,
            flags,
        } = op
            && dst == Path::new("/tmp")
        {
            *op = Op::Disk {
                dst: dst.clone(),
                device: device.to_path_buf(),
                fstype: "ext4",
                options: crate::tmpdisk::MOUNT_OPTIONS,
                flags: *flags,
                fallback: options.clone(),
            };
        }
    }
}

/// Picks the host directory to mount the new root's tmpfs on: the first existing candidate
/// that does not contain any bind source (the tmpfs would hide it).
pub(crate) fn pick_root_mountpoint(ops: &[Op], host: &impl Host) -> Option<PathBuf> {
    let sources: Vec<&Path> = ops
        .iter()
        .filter_map(|o| match o {
            Op::Bind { src, .. } => Some(src.as_path()),
            _ => None,
        })
        .collect();
    ROOT_MOUNTPOINTS
        .iter()
        .map(PathBuf::from)
        .find(|c| host.lstat(c) == HostKind::Dir && !sources.iter().any(|s| s.starts_with(c)))
}

/// A host path below the new root for jail path `p`.
fn under(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

fn errno(what: String) -> impl FnOnce(nix::errno::Errno) -> String {
    move |e| format!("{what}: {e}")
}

/// Flags the kernel keeps on a mount: a bind remount must repeat them (inside a user
/// namespace it is refused otherwise).
fn locked_flags(path: &Path) -> MsFlags {
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (st_flag, ms_flag) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(st_flag) {
            out |= ms_flag;
        }
    }
    out
}

/// Changes the per-mount flags of the mount at `target`.
pub(crate) fn remount(target: &Path, flags: MsFlags) -> Result<(), String> {
    let all = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | locked_flags(target);
    mount(None::<&str>, target, None::<&str>, all, None::<&str>).map_err(errno(format!(
        "remounting {} ({flags:?})",
        target.display()
    )))
}

fn mkdir(path: &Path, mode: u32) -> Result<(), String> {
    match fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => return Ok(()),
        Err(e) => return Err(format!("creating {}: {e}", path.display())),
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

/// Mounts the disk of an [`Op::Disk`] and prepares its root directory like a tmpfs `/tmp`.
fn mount_disk(
    at: &Path,
    device: &Path,
    fstype: &str,
    options: &str,
    flags: Flags,
) -> Result<(), String> {
    mount(Some(device), at, Some(fstype), flags.ms(), Some(options)).map_err(errno(format!(
        "mounting {} ({fstype}) on {}",
        device.display(),
        at.display()
    )))?;
    fs::set_permissions(at, fs::Permissions::from_mode(0o1777))
        .map_err(|e| format!("chmod {}: {e}", at.display()))?;
    // mkfs creates lost+found; a fresh /tmp is empty.
    match fs::remove_dir(at.join("lost+found")) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(format!("removing lost+found from {}: {e}", at.display()))
        }
        _ => Ok(()),
    }
}

/// Performs `ops` below `root` (a fresh tmpfs mount point in the jail's mount namespace).
/// Returns warnings about steps that fell back to something weaker.
pub(crate) fn execute(ops: &[Op], root: &Path) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    for op in ops {
        match op {
            Op::Dir { path, mode } => mkdir(&under(root, path), *mode)?,
            Op::Symlink { path, target } => {
                let at = under(root, path);
                std::os::unix::fs::symlink(target, &at)
                    .map_err(|e| format!("symlink {}: {e}", at.display()))?;
            }
            Op::File {
                path,
                contents,
                mode,
            } => {
                let at = under(root, path);
                fs::write(&at, contents).map_err(|e| format!("writing {}: {e}", at.display()))?;
                fs::set_permissions(&at, fs::Permissions::from_mode(*mode))
                    .map_err(|e| format!("chmod {}: {e}", at.display()))?;
            }
            Op::Bind {
                src,
                dst,
                kind,
                flags,
            } => {
                let at = under(root, dst);
                match kind {
                    NodeKind::Dir => mkdir(&at, 0o755)?,
                    NodeKind::File => {
                        fs::OpenOptions::new()
                            .write(true)
                            .create(true)
                            .truncate(false)
                            .mode(0o444)
                            .open(&at)
                            .map_err(|e| format!("creating {}: {e}", at.display()))?;
                    }
                }
                // Not recursive: mounts below a bound host directory stay hidden rather than
                // appearing writable.
                mount(Some(src), &at, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(
                    errno(format!("binding {} to {}", src.display(), dst.display())),
                )?;
                remount(&at, flags.ms())?;
            }
            Op::Tmpfs {
                dst,
                options,
                flags,
            } => {
                let at = under(root, dst);
                mkdir(&at, 0o755)?;
                mount(
                    Some("tmpfs"),
                    &at,
                    Some("tmpfs"),
                    flags.ms(),
                    Some(options.as_str()),
                )
                .map_err(errno(format!("mounting tmpfs on {}", dst.display())))?;
            }
            Op::Disk {
                dst,
                device,
                fstype,
                options,
                flags,
                fallback,
            } => {
                let at = under(root, dst);
                mkdir(&at, 0o755)?;
                if let Err(e) = mount_disk(&at, device, fstype, options, *flags) {
                    let _ = umount2(&at, MntFlags::MNT_DETACH);
                    warnings.push(format!(
                        "{e}; {} is a tmpfs instead, whose contents count against the memory \
                         limit",
                        dst.display()
                    ));
                    mount(
                        Some("tmpfs"),
                        &at,
                        Some("tmpfs"),
                        flags.ms(),
                        Some(fallback.as_str()),
                    )
                    .map_err(errno(format!("mounting tmpfs on {}", dst.display())))?;
                }
            }
            Op::Proc { dst } => {
                let at = under(root, dst);
                mkdir(&at, 0o555)?;
                mount(
                    Some("proc"),
                    &at,
                    Some("proc"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                    None::<&str>,
                )
                .map_err(errno(format!("mounting proc on {}", dst.display())))?;
            }
            Op::ReadOnlySelf { path } => {
                let at = under(root, path);
                mount(
                    Some(&at),
                    &at,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(errno(format!("binding {} onto itself", path.display())))?;
                remount(
                    &at,
                    MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                )?;
            }
            Op::ReadOnly { path } => {
                let at = under(root, path);
                remount(
                    &at,
                    MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                )?;
            }
        }
    }
    Ok(warnings)
}

/// Makes `root` the root of this mount namespace and detaches the old one, so no path leads
/// back to the host's filesystem. Then makes the new root read-only.
pub(crate) fn pivot(root: &Path) -> Result<(), String> {
    nix::unistd::chdir(root).map_err(errno(format!("chdir {}", root.display())))?;
    // pivot_root(".", ".") stacks the old root on top of the new one at "/", which the
    // following detach removes; no directory for the old root is needed.
    nix::unistd::pivot_root(".", ".").map_err(errno("pivot_root".into()))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(errno("detaching the old root".into()))?;
    nix::unistd::chdir("/").map_err(errno("chdir /".into()))?;
    remount(
        Path::new("/"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::spec;
    use std::collections::BTreeMap;

    /// A host described by a map of path -> kind; directories are listed by prefix.
    struct FakeHost(BTreeMap<PathBuf, HostKind>);

    impl FakeHost {
        fn merged_usr() -> FakeHost {
            let mut m = BTreeMap::new();
            let mut put = |p: &str, k: HostKind| {
                m.insert(PathBuf::from(p), k);
            };
            put("/usr", HostKind::Dir);
            put("/bin", HostKind::Symlink("usr/bin".into()));
            put("/sbin", HostKind::Symlink("usr/sbin".into()));
            put("/lib", HostKind::Symlink("usr/lib".into()));
            put("/lib64", HostKind::Symlink("usr/lib64".into()));
            put("/etc", HostKind::Dir);
            put("/etc/ld.so.cache", HostKind::File);
            put("/etc/ssl", HostKind::Dir);
            put(
                "/etc/localtime",
                HostKind::Symlink("/usr/share/zoneinfo/UTC".into()),
            );
            put("/usr/share/zoneinfo/UTC", HostKind::File);
            put("/etc/shadow", HostKind::File);
            put("/etc/java-17-openjdk", HostKind::Dir);
            put("/data/code/abc", HostKind::Dir);
            put("/data/runtimes/python", HostKind::Dir);
            put("/dev/null", HostKind::CharDevice);
            put("/dev/zero", HostKind::CharDevice);
            put("/dev/urandom", HostKind::CharDevice);
            put("/root", HostKind::Dir);
            put("/root/.pyenv/versions/3.11.7", HostKind::Dir);
            put(
                "/opt/py",
                HostKind::Symlink("/root/.pyenv/versions/3.11.7".into()),
            );
            put("/run", HostKind::Dir);
            put("/tmp", HostKind::Dir);
            put("/tmp/x", HostKind::Dir);
            FakeHost(m)
        }
    }

    impl Host for FakeHost {
        fn lstat(&self, p: &Path) -> HostKind {
            self.0.get(p).cloned().unwrap_or(HostKind::Missing)
        }
        fn resolve(&self, p: &Path) -> Option<(PathBuf, HostKind)> {
            match self.0.get(p)? {
                HostKind::Symlink(t) => {
                    let t = if t.is_absolute() {
                        t.clone()
                    } else {
                        p.parent()?.join(t)
                    };
                    self.resolve(&t)
                }
                k => Some((p.to_path_buf(), k.clone())),
            }
        }
        fn list(&self, p: &Path) -> Vec<String> {
            self.0
                .keys()
                .filter(|k| k.parent() == Some(p))
                .filter_map(|k| Some(k.file_name()?.to_str()?.to_string()))
                .collect()
        }
    }

    fn binds(ops: &[Op]) -> Vec<(String, String, NodeKind, Flags)> {
        ops.iter()
            .filter_map(|o| match o {
                Op::Bind {
                    src,
                    dst,
                    kind,
                    flags,
                } => Some((
                    src.display().to_string(),
                    dst.display().to_string(),
                    *kind,
                    *flags,
                )),
                _ => None,
            })
            .collect()
    }

    fn bind_of<'a>(
        b: &'a [(String, String, NodeKind, Flags)],
        dst: &str,
    ) -> Option<&'a (String, String, NodeKind, Flags)> {
        b.iter().find(|x| x.1 == dst)
    }

    #[test]
    fn merged_usr_gets_symlinks_and_a_read_only_usr() {
        let ops = plan(&spec(), &FakeHost::merged_usr()).unwrap();
        assert!(ops.contains(&Op::Symlink {
            path: "/lib".into(),
            target: "usr/lib".into()
        }));
        assert!(ops.contains(&Op::Symlink {
            path: "/bin".into(),
            target: "usr/bin".into()
        }));
        let b = binds(&ops);
        let usr = bind_of(&b, "/usr").unwrap();
        assert_eq!(usr.0, "/usr");
        assert!(usr.3.readonly && usr.3.nosuid && usr.3.nodev);
        // Absent on the host: neither bound nor linked.
        assert!(
            !ops.iter()
                .any(|o| matches!(o, Op::Symlink { path, .. } if path == Path::new("/lib32")))
        );
        assert!(bind_of(&b, "/lib32").is_none());
    }

    #[test]
    fn code_runtime_and_opt() {
        let mut s = spec();
        s.opt_dir = Some("/tmp/x".into());
        let ops = plan(&s, &FakeHost::merged_usr()).unwrap();
        let b = binds(&ops);
        let task = bind_of(&b, "/var/task").unwrap();
        assert_eq!(task.0, "/data/code/abc");
        assert!(task.3.readonly);
        assert_eq!(
            bind_of(&b, "/var/runtime").unwrap().0,
            "/data/runtimes/python"
        );
        assert_eq!(bind_of(&b, "/opt").unwrap().0, "/tmp/x");
        // /var must be created before /var/task is bound.
        let var = ops
            .iter()
            .position(|o| matches!(o, Op::Dir { path, .. } if path == Path::new("/var")))
            .unwrap();
        let task = ops
            .iter()
            .position(|o| matches!(o, Op::Bind { dst, .. } if dst == Path::new("/var/task")))
            .unwrap();
        assert!(var < task);
    }

    #[test]
    fn missing_code_dir_is_an_error() {
        let mut s = spec();
        s.code_dir = "/nope".into();
        let e = plan(&s, &FakeHost::merged_usr()).unwrap_err();
        assert!(e.contains("code_dir /nope does not exist"), "{e}");
    }

    #[test]
    fn tmp_is_a_sized_writable_tmpfs_and_nothing_else_is_writable() {
        let mut s = spec();
        s.tmp_mb = 700;
        let ops = plan(&s, &FakeHost::merged_usr()).unwrap();
        let tmp = ops
            .iter()
            .find_map(|o| match o {
                Op::Tmpfs {
                    dst,
                    options,
                    flags,
                } if dst == Path::new("/tmp") => Some((options.clone(), *flags)),
                _ => None,
            })
            .unwrap();
        assert_eq!(tmp.0, "size=700m,mode=1777");
        assert!(!tmp.1.readonly && tmp.1.nosuid && tmp.1.nodev);
        // Every host bind except device nodes is read-only.
        for (src, dst, _, flags) in binds(&ops) {
            if src.starts_with("/dev/") {
                assert!(flags.nosuid && flags.noexec && !flags.readonly, "{dst}");
            } else {
                assert!(flags.readonly, "{src} -> {dst} is writable");
            }
        }
        // /dev is made read-only after its content is in place.
        let last_dev = ops
            .iter()
            .rposition(|o| match o {
                Op::Bind { dst, .. } | Op::Tmpfs { dst, .. } => dst.starts_with("/dev/"),
                Op::Symlink { path, .. } => path.starts_with("/dev/"),
                _ => false,
            })
            .unwrap();
        let ro = ops
            .iter()
            .position(|o| matches!(o, Op::ReadOnly { path } if path == Path::new("/dev")))
            .unwrap();
        assert!(ro > last_dev);
    }

    #[test]
    fn etc_has_only_listed_entries_and_generated_users() {
        let ops = plan(&spec(), &FakeHost::merged_usr()).unwrap();
        let b = binds(&ops);
        assert_eq!(bind_of(&b, "/etc/ld.so.cache").unwrap().2, NodeKind::File);
        assert_eq!(bind_of(&b, "/etc/ssl").unwrap().2, NodeKind::Dir);
        // A symlinked file is bound from its target.
        assert_eq!(
            bind_of(&b, "/etc/localtime").unwrap().0,
            "/usr/share/zoneinfo/UTC"
        );
        assert!(bind_of(&b, "/etc/java-17-openjdk").is_some());
        assert!(bind_of(&b, "/etc/shadow").is_none());
        let passwd = ops
            .iter()
            .find_map(|o| match o {
                Op::File { path, contents, .. } if path == Path::new("/etc/passwd") => {
                    Some(contents.clone())
                }
                _ => None,
            })
            .unwrap();
        assert!(passwd.contains("sbx_user1051:x:993:990:"));
        assert!(!passwd.contains("root:x:0:0:root:/root:/bin/bash"));
        let hosts = ops
            .iter()
            .find_map(|o| match o {
                Op::File { path, contents, .. } if path == Path::new("/etc/hosts") => {
                    Some(contents.clone())
                }
                _ => None,
            })
            .unwrap();
        assert!(hosts.contains("localhost env-1"));
    }

    #[test]
    fn ro_paths_get_parents_and_symlinks() {
        let mut s = spec();
        s.ro_paths = vec!["/opt/py".into(), "/root/.pyenv/versions/3.11.7".into()];
        s.opt_dir = None;
        let ops = plan(&s, &FakeHost::merged_usr()).unwrap();
        let b = binds(&ops);
        let py: Vec<_> = b
            .iter()
            .filter(|x| x.1 == "/root/.pyenv/versions/3.11.7")
            .collect();
        assert_eq!(py.len(), 1, "bound once although named twice");
        assert!(py[0].3.readonly);
        for d in ["/root", "/root/.pyenv", "/root/.pyenv/versions"] {
            assert!(
                ops.contains(&Op::Dir {
                    path: d.into(),
                    mode: 0o755
                }),
                "{d}"
            );
        }
        // /opt is an empty jail directory here, so the spelled path can be a symlink.
        assert!(ops.contains(&Op::Symlink {
            path: "/opt/py".into(),
            target: "/root/.pyenv/versions/3.11.7".into()
        }));
    }

    #[test]
    fn ro_paths_covered_by_usr_are_skipped_and_dangerous_ones_refused() {
        let mut host = FakeHost::merged_usr();
        host.0.insert("/usr/lib/jvm".into(), HostKind::Dir);
        let mut s = spec();
        s.ro_paths = vec!["/usr/lib/jvm".into()];
        let ops = plan(&s, &host).unwrap();
        assert!(bind_of(&binds(&ops), "/usr/lib/jvm").is_none());

        host.0.insert("/".into(), HostKind::Dir);
        for bad in ["/", "/data/code/abc"] {
            let mut s = spec();
            s.ro_paths = vec![bad.into()];
            if bad == "/data/code/abc" {
                // Bound at its own path it is fine; below /var/task it would not be.
                plan(&s, &host).unwrap();
            } else {
                assert!(plan(&s, &host).is_err(), "{bad}");
            }
        }
        let mut s = spec();
        s.ro_paths = vec!["/nonexistent".into()];
        assert!(plan(&s, &host).unwrap_err().contains("does not exist"));
    }

    #[test]
    fn ro_paths_may_not_hide_the_jail_layout() {
        let mut host = FakeHost::merged_usr();
        host.0.insert("/var".into(), HostKind::Dir);
        for bad in ["/var", "/etc", "/etc/passwd"] {
            host.0.entry(bad.into()).or_insert(HostKind::Dir);
            let mut s = spec();
            s.ro_paths = vec![bad.into()];
            let e = plan(&s, &host).unwrap_err();
            assert!(e.contains("would hide"), "{bad}: {e}");
        }
        // Below a jail mount that is not a host directory at the same path: refused.
        host.0.insert("/proc/1".into(), HostKind::Dir);
        let mut s = spec();
        s.ro_paths = vec!["/proc/1".into()];
        assert!(plan(&s, &host).unwrap_err().contains("lies inside"));
    }

    #[test]
    fn disk_tmp_replaces_only_the_tmp_tmpfs() {
        let mut ops = plan(&spec(), &FakeHost::merged_usr()).unwrap();
        let before = ops.clone();
        use_disk_tmp(&mut ops, Path::new("/dev/loop7"));
        let disk: Vec<&Op> = ops
            .iter()
            .filter(|o| matches!(o, Op::Disk { .. }))
            .collect();
        assert_eq!(disk.len(), 1);
        match disk[0] {
            Op::Disk {
                dst,
                device,
                fstype,
                flags,
                fallback,
                ..
            } => {
                assert_eq!(dst, Path::new("/tmp"));
                assert_eq!(device, Path::new("/dev/loop7"));
                assert_eq!(*fstype, "ext4");
                assert!(!flags.readonly && flags.nosuid && flags.nodev);
                assert_eq!(fallback, "size=512m,mode=1777");
            }
            _ => unreachable!(),
        }
        // Everything else, /dev/shm's tmpfs included, is untouched and in the same order.
        assert_eq!(ops.len(), before.len());
        for (a, b) in ops.iter().zip(&before) {
            if !matches!(a, Op::Disk { .. }) {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn proc_sys_and_dev() {
        let ops = plan(&spec(), &FakeHost::merged_usr()).unwrap();
        assert!(ops.contains(&Op::Proc {
            dst: "/proc".into()
        }));
        assert!(ops.contains(&Op::ReadOnlySelf {
            path: "/proc/sys".into()
        }));
        let b = binds(&ops);
        assert!(bind_of(&b, "/dev/null").is_some());
        // /dev/full does not exist on the fake host.
        assert!(bind_of(&b, "/dev/full").is_none());
        assert!(ops.contains(&Op::Symlink {
            path: "/dev/fd".into(),
            target: "/proc/self/fd".into()
        }));
    }

    #[test]
    fn root_mountpoint_avoids_bind_sources() {
        let host = FakeHost::merged_usr();
        let ops = plan(&spec(), &host).unwrap();
        assert_eq!(pick_root_mountpoint(&ops, &host), Some("/run".into()));
        let mut s = spec();
        s.ro_paths = vec!["/run".into()];
        // /run itself as a source: the next candidate is used.
        let mut host = FakeHost::merged_usr();
        host.0.insert("/run".into(), HostKind::Dir);
        let ops = plan(&s, &host).unwrap();
        assert_eq!(pick_root_mountpoint(&ops, &host), Some("/tmp".into()));
    }
}
