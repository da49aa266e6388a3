//! A disk-backed `/tmp`: an ext4 image per environment, attached to a loop device.
//!
//! A tmpfs `/tmp` lives in memory, and its pages are charged to the environment's memory
//! cgroup: a 128 MB function writing 400 MB to `/tmp` would be OOM-killed. On Lambda `/tmp` is
//! disk. Here each environment gets a file system of its own, `tmp_mb` in size, whose page cache
//! is ordinary reclaimable file cache that the kernel writes back instead of killing the
//! function. A full disk ends in `ENOSPC`, as on Lambda.
//!
//! Formatting costs tens of milliseconds, so it happens once per size: a template image is
//! made with `mkfs.ext4` in `<scratch>/templates/` and each environment gets a sparse copy of it
//! (only the few hundred kilobytes of metadata are copied). The copy is attached to a loop
//! device with auto-clear, then unlinked at once: the loop device keeps the
//! open file alive, and when the environment's mount namespace goes away, the mount, the loop
//! device and the file all disappear. Nothing is left behind even when the server crashes.
//!
//! All of this needs real root (loop devices and ext4 mounts are not available inside a user
//! namespace); otherwise `/tmp` stays a tmpfs and a warning says so.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::sys::{self, LoopDevice};

/// Where per-environment images and templates go when the server did not choose a directory.
/// `/var/tmp` is disk on every common distribution and survives reboots only as garbage we
/// clean up.
pub const DEFAULT_SCRATCH_DIR: &str = "/var/tmp/updraft-scratch";

/// Subdirectory of the scratch directory holding the formatted templates.
const TEMPLATES: &str = "templates";

/// Bumped whenever the mkfs options change, so old templates are not reused.
const TEMPLATE_VERSION: u32 = 2;

/// Where mkfs.ext4 may live (the helper runs with an empty environment, so no PATH lookup).
const MKFS: [&str; 4] = [
    "/usr/sbin/mkfs.ext4",
    "/sbin/mkfs.ext4",
    "/usr/bin/mkfs.ext4",
    "/bin/mkfs.ext4",
];

/// Mount options of the ext4 `/tmp`. `noinit_itable`: the templates are made with lazy inode
/// table initialisation, and zeroing the tables in the background would cost every environment
/// megabytes of writes for nothing.
pub(crate) const MOUNT_OPTIONS: &str = "noinit_itable";

static SCRATCH: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Sets the directory where environments' `/tmp` images are created (for the server:
/// `<data_dir>/scratch`). Applies to every later [`spawn`](crate::spawn) of this process;
/// without a call, [`DEFAULT_SCRATCH_DIR`] is used.
pub fn set_scratch_dir(dir: impl Into<PathBuf>) {
    *SCRATCH.lock().unwrap_or_else(PoisonError::into_inner) = Some(dir.into());
}

/// The scratch directory in effect.
pub fn scratch_dir() -> PathBuf {
    SCRATCH
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SCRATCH_DIR))
}

/// Size of the image for a `/tmp` of `tmp_mb` MiB: the inode tables (256 bytes per 16 KiB,
/// 1/64 of the disk) come on top, so the file system's size (`df`, `statvfs().f_blocks`) is
/// `tmp_mb` as on Lambda, within a few hundred KiB of bitmaps. Of that, ext4 holds back 2 %
/// (at most 16 MiB) for delayed allocation, so a little less can be written.
pub(crate) fn image_bytes(tmp_mb: u64) -> u64 {
    (tmp_mb + tmp_mb.div_ceil(64)) << 20
}

/// The mkfs.ext4 binary, if installed.
pub(crate) fn mkfs() -> Option<PathBuf> {
    MKFS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Arguments of mkfs.ext4 for a template: the same layout at every size (`-T default`: 4 KiB
/// blocks, one inode per 16 KiB), no journal (a scratch disk that dies with its environment
/// needs no crash consistency), no blocks reserved for growing it, lazy inode tables, no
/// discard of the sparse file, no blocks reserved for root.
pub(crate) fn mkfs_args(image: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "-q",
        "-F",
        "-T",
        "default",
        "-O",
        "^has_journal,^resize_inode",
        "-E",
        "lazy_itable_init=1,nodiscard",
        "-m",
        "0",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(image.into());
    args
}

fn mkdir_private(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The template for `bytes`, made on first use. Concurrent helpers may race to make it; each
/// formats its own temporary file and renames it into place, so a template that exists is
/// always complete.
fn template(scratch: &Path, mkfs: &Path, bytes: u64) -> Result<PathBuf, String> {
    let dir = scratch.join(TEMPLATES);
    let path = dir.join(format!("ext4-v{TEMPLATE_VERSION}-{bytes}.img"));
    if path.is_file() {
        return Ok(path);
    }
    mkdir_private(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".ext4-{bytes}.{}.tmp", std::process::id()));
    let made = (|| {
        let f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| format!("creating {}: {e}", tmp.display()))?;
        f.set_len(bytes)
            .map_err(|e| format!("sizing {}: {e}", tmp.display()))?;
        drop(f);
        // Its output must not reach the runtime's log pipes (our stdout and stderr).
        let out = Command::new(mkfs)
            .args(mkfs_args(&tmp))
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", mkfs.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}): {}",
                mkfs.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        fs::rename(&tmp, &path).map_err(|e| format!("renaming {}: {e}", tmp.display()))
    })();
    if made.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    made.map(|()| path)
}

/// Makes the environment's image and attaches it to a loop device. The image file is already
/// unlinked when this returns: the loop device holds it.
pub(crate) fn prepare(scratch: &Path, id: &str, tmp_mb: u64) -> Result<LoopDevice, String> {
    let mkfs = mkfs().ok_or("mkfs.ext4 is not installed")?;
    mkdir_private(scratch).map_err(|e| format!("creating {}: {e}", scratch.display()))?;
    let bytes = image_bytes(tmp_mb);
    let template = template(scratch, &mkfs, bytes)?;
    let image = scratch.join(format!("{id}.img"));
    // A leftover of a helper that died between copy and unlink.
    let _ = fs::remove_file(&image);
    let attached = (|| {
        let src = fs::File::open(&template)
            .map_err(|e| format!("opening {}: {e}", template.display()))?;
        let dst = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&image)
            .map_err(|e| format!("creating {}: {e}", image.display()))?;
        sys::copy_sparse(&src, &dst, bytes)
            .map_err(|e| format!("copying the template to {}: {e}", image.display()))?;
        sys::loop_attach(dst.as_fd()).map_err(|e| format!("attaching a loop device: {e}"))
    })();
    let _ = fs::remove_file(&image);
    attached
}

/// Removes per-environment images a crashed helper left behind (older than `min_age`, so
/// images of environments being set up right now are spared), and templates of an older
/// format. Current templates stay.
pub(crate) fn remove_stale(scratch: &Path, min_age: Duration) -> usize {
    let mut removed = 0;
    let current = format!("ext4-v{TEMPLATE_VERSION}-");
    for e in fs::read_dir(scratch.join(TEMPLATES))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("ext4-v")
            && !name.starts_with(&current)
            && fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    let Ok(entries) = fs::read_dir(scratch) else {
        return removed;
    };
    for e in entries.flatten() {
        let p = e.path();
        let is_image =
            p.extension().is_some_and(|x| x == "img") && e.file_type().is_ok_and(|t| t.is_file());
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age);
        if is_image && old && fs::remove_file(&p).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Why a disk-backed `/tmp` cannot work on this host, if it cannot (for `doctor`).
pub(crate) fn unavailable(root: bool) -> Option<String> {
    if !root {
        return Some("needs root (loop devices and ext4 mounts)".into());
    }
    if mkfs().is_none() {
        return Some("mkfs.ext4 is not installed".into());
    }
    if !fs::read_to_string("/proc/filesystems")
        .is_ok_and(|t| t.lines().any(|l| l.trim_end().ends_with("ext4")))
    {
        return Some("the kernel has no ext4".into());
    }
    if let Err(e) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
    {
        return Some(format!("/dev/loop-control: {e}"));
    }
    None
}

/// Whether `dir` (or its nearest existing ancestor) is on a tmpfs, where a disk image would
/// live in memory after all.
pub(crate) fn on_tmpfs(dir: &Path) -> bool {
    let mut p = Some(dir);
    while let Some(d) = p {
        if let Ok(st) = nix::sys::statfs::statfs(d) {
            return st.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC;
        }
        p = d.parent();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_leaves_room_for_the_inode_tables() {
        assert_eq!(image_bytes(512), 520 << 20);
        assert_eq!(image_bytes(700), 711 << 20);
        assert_eq!(image_bytes(1), 2 << 20);
        for mb in [1, 8, 64, 512, 10240] {
            let b = image_bytes(mb);
            assert!(b >= (mb << 20) + (mb << 20) / 64, "{mb}: {b}");
            assert!(b <= (mb << 20) + (mb << 20) / 64 + (1 << 20), "{mb}: {b}");
        }
    }

    #[test]
    fn mkfs_options_are_the_fast_ones() {
        let args: Vec<String> = mkfs_args(Path::new("/s/t.img"))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("-O ^has_journal,^resize_inode"), "{joined}");
        assert!(joined.contains("-T default"), "{joined}");
        assert!(joined.contains("lazy_itable_init=1"), "{joined}");
        assert!(joined.contains("-m 0"), "{joined}");
        assert_eq!(args.last().map(String::as_str), Some("/s/t.img"));
    }

    #[test]
    fn scratch_dir_defaults_and_can_be_set() {
        // The only test touching the global.
        assert_eq!(scratch_dir(), PathBuf::from(DEFAULT_SCRATCH_DIR));
        set_scratch_dir("/data/scratch");
        assert_eq!(scratch_dir(), PathBuf::from("/data/scratch"));
        *SCRATCH.lock().unwrap() = None;
    }

    #[test]
    fn sparse_copy_keeps_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src_path = dir.path().join("src");
        let len = 64u64 << 20;
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = fs::File::create(&src_path).unwrap();
            f.set_len(len).unwrap();
            f.write_all(b"head").unwrap();
            f.seek(SeekFrom::Start(40 << 20)).unwrap();
            f.write_all(&[7u8; 8192]).unwrap();
        }
        let src = fs::File::open(&src_path).unwrap();
        let dst_path = dir.path().join("dst");
        let dst = fs::File::create(&dst_path).unwrap();
        sys::copy_sparse(&src, &dst, len).unwrap();
        drop(dst);
        let got = fs::read(&dst_path).unwrap();
        let want = fs::read(&src_path).unwrap();
        assert_eq!(got.len() as u64, len);
        assert!(got == want, "contents differ");
        use std::os::unix::fs::MetadataExt;
        let blocks = fs::metadata(&dst_path).unwrap().blocks();
        // 512-byte blocks: far less than the 64 MiB the file spans.
        assert!(
            blocks * 512 < 4 << 20,
            "copy is not sparse: {blocks} blocks"
        );
    }

    #[test]
    fn stale_images_are_removed_templates_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("env-1.img"), b"x").unwrap();
        fs::create_dir(dir.path().join(TEMPLATES)).unwrap();
        let current = dir
            .path()
            .join(TEMPLATES)
            .join(format!("ext4-v{TEMPLATE_VERSION}-1.img"));
        let old = dir.path().join(TEMPLATES).join("ext4-v0-1.img");
        fs::write(&current, b"x").unwrap();
        fs::write(&old, b"x").unwrap();
        // The outdated template goes at once; the image only once it is old enough.
        assert_eq!(remove_stale(dir.path(), Duration::from_secs(3600)), 1);
        assert!(!old.exists());
        assert_eq!(remove_stale(dir.path(), Duration::ZERO), 1);
        assert!(!dir.path().join("env-1.img").exists());
        assert!(current.exists());
    }
}
