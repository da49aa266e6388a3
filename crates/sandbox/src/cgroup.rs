//! Cgroups of execution environments, on cgroup v1 and v2 hosts alike.
//!
//! Each environment gets a directory `updraft/<id>` in every hierarchy that carries one of the
//! controllers Updraft needs (`memory`, `pids`). On a pure v2 host that is one directory in the
//! unified hierarchy; on a v1 or hybrid host (v2 mounted but without these controllers) it is
//! one directory per v1 hierarchy. Discovery reads `/proc/self/mountinfo` instead of assuming
//! mount points, so unusual layouts work too.
//!
//! The helper creates the directories and writes the limits; the environment's pid 1 moves
//! itself in (children inherit membership), while the helper stays outside so that killing the
//! cgroup never kills the process that reaps pid 1. The server only reads statistics, kills and
//! removes. Nothing here uses
//! `unsafe` except the `kill(2)` loop.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

/// Directory below each hierarchy's mount point that holds all environments.
pub(crate) const PARENT: &str = "updraft";

/// Controllers Updraft limits, weighs, accounts and freezes environments with. `cpuacct` and
/// `freezer` exist on v1 only: on v2 CPU usage (`cpu.stat`) and freezing (`cgroup.freeze`) are
/// part of every cgroup.
pub(crate) const WANTED: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "freezer"];

/// Controllers whose absence leaves something unenforced (warned about on every host).
const ENFORCING: [&str; 3] = ["memory", "pids", "cpu"];

/// `MemorySize` that buys one full core on Lambda: CPU weights and ceilings scale from it.
pub(crate) const MB_PER_CORE: u64 = 1769;

/// Lambda's largest share of CPU: six cores (at 10,240 MB).
pub(crate) const MAX_CORES: u64 = 6;

/// Period of the hard CPU ceiling, in microseconds (the kernel's default).
pub(crate) const CPU_PERIOD_US: u64 = 100_000;

/// Cgroup version of a hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Version {
    V1,
    V2,
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    pub(crate) version: Version,
    pub(crate) mount: PathBuf,
    /// For v1 the controllers bound to the hierarchy (from the mount options); for v2 empty
    /// until filled from `cgroup.controllers`.
    pub(crate) controllers: Vec<String>,
}

/// Unescapes the octal escapes (`\040` for space etc.) of mountinfo fields.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Finds the cgroup hierarchies in the text of `/proc/self/mountinfo`. When a hierarchy is
/// mounted more than once, the first mount wins.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.len() < 3 {
            continue;
        }
        let mount = PathBuf::from(unescape(left[4]));
        let h = match right[0] {
            "cgroup2" => Hierarchy {
                version: Version::V2,
                mount,
                controllers: Vec::new(),
            },
            "cgroup" => {
                let controllers: Vec<String> = right[2]
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                    .map(str::to_string)
                    .collect();
                Hierarchy {
                    version: Version::V1,
                    mount,
                    controllers,
                }
            }
            _ => continue,
        };
        let duplicate = out.iter().any(|o| {
            o.version == h.version && (h.version == Version::V2 || o.controllers == h.controllers)
        });
        if !duplicate {
            out.push(h);
        }
    }
    out
}

/// The hierarchies to use and, for each, which of the [`WANTED`] controllers it provides.
/// A v1 hierarchy wins over v2 for the same controller (on hybrid hosts the controller is
/// bound to v1 and absent from v2's `cgroup.controllers` anyway).
pub(crate) fn select(hierarchies: &[Hierarchy]) -> Vec<(Hierarchy, Vec<&'static str>)> {
    let mut out: Vec<(Hierarchy, Vec<&'static str>)> = Vec::new();
    for want in WANTED {
        let pick = hierarchies
            .iter()
            .find(|h| h.version == Version::V1 && h.controllers.iter().any(|c| c == want))
            .or_else(|| {
                hierarchies
                    .iter()
                    .find(|h| h.version == Version::V2 && h.controllers.iter().any(|c| c == want))
            });
        let Some(h) = pick else { continue };
        match out.iter_mut().find(|(o, _)| o.mount == h.mount) {
            Some((_, cs)) => cs.push(want),
            None => out.push((h.clone(), vec![want])),
        }
    }
    out
}

/// Reads the live hierarchies of this host, with v2 controllers filled in.
pub(crate) fn discover() -> Vec<Hierarchy> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut hs = parse_mountinfo(&text);
    for h in hs.iter_mut().filter(|h| h.version == Version::V2) {
        h.controllers = fs::read_to_string(h.mount.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
    }
    hs
}

/// The directory of one environment in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct EnvDir {
    pub(crate) version: Version,
    pub(crate) path: PathBuf,
    pub(crate) controllers: Vec<String>,
}

/// Where an environment's directory lives in a hierarchy.
pub(crate) fn env_path(mount: &Path, id: &str) -> PathBuf {
    mount.join(PARENT).join(id)
}

/// Limits written into an environment's cgroup.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) memory_bytes: u64,
    pub(crate) pids_max: u64,
    /// Lambda's hard CPU ceiling (MemorySize / 1,769 of a core) on top of the weight.
    pub(crate) cpu_ceiling: bool,
}

impl Limits {
    fn memory_mb(&self) -> u64 {
        (self.memory_bytes >> 20).max(1)
    }
}

/// v1 `cpu.shares` for a memory size: 1,024 (one plain task's weight) at one core's worth of
/// memory, in proportion otherwise (the kernel's range is 2 to 262,144).
pub(crate) fn cpu_shares(memory_mb: u64) -> u64 {
    (memory_mb.saturating_mul(1024) / MB_PER_CORE).clamp(2, 262_144)
}

/// v2 `cpu.weight` for a memory size: 100 (the default weight) at one core's worth of memory
/// (the kernel's range is 1 to 10,000).
pub(crate) fn cpu_weight(memory_mb: u64) -> u64 {
    (memory_mb.saturating_mul(100) / MB_PER_CORE).clamp(1, 10_000)
}

/// The hard ceiling's quota per [`CPU_PERIOD_US`]: MemorySize / 1,769 of a core, at most six
/// cores, at least the kernel's minimum of 1 ms.
pub(crate) fn cpu_quota_us(memory_mb: u64) -> u64 {
    (memory_mb.saturating_mul(CPU_PERIOD_US) / MB_PER_CORE).clamp(1000, MAX_CORES * CPU_PERIOD_US)
}

/// The files and values that enforce `limits` for one controller. Optional files (swap
/// accounting) are marked so a missing file is not an error.
pub(crate) fn limit_writes(
    version: Version,
    controller: &str,
    limits: Limits,
) -> Vec<(&'static str, String, bool)> {
    let mem = limits.memory_bytes.to_string();
    match (version, controller) {
        // memsw (memory + swap) must be written after the plain limit: the kernel refuses a
        // memsw limit below the memory limit.
        (Version::V1, "memory") => vec![
            ("memory.limit_in_bytes", mem.clone(), true),
            ("memory.memsw.limit_in_bytes", mem, false),
        ],
        // oom.group: an OOM kill takes the whole environment, as on Lambda, instead of
        // leaving a runtime whose worker process vanished.
        (Version::V2, "memory") => vec![
            ("memory.max", mem, true),
            ("memory.swap.max", "0".into(), false),
            ("memory.oom.group", "1".into(), false),
        ],
        (_, "pids") => vec![("pids.max", limits.pids_max.to_string(), true)],
        // Work-conserving by default: the weight only matters when CPUs are contended. The
        // ceiling is written either way so that a reused leftover directory loses an old one.
        (Version::V1, "cpu") => {
            let quota = if limits.cpu_ceiling {
                cpu_quota_us(limits.memory_mb()).to_string()
            } else {
                "-1".into()
            };
            vec![
                (
                    "cpu.shares",
                    cpu_shares(limits.memory_mb()).to_string(),
                    false,
                ),
                ("cpu.cfs_period_us", CPU_PERIOD_US.to_string(), false),
                ("cpu.cfs_quota_us", quota, false),
            ]
        }
        (Version::V2, "cpu") => {
            let quota = if limits.cpu_ceiling {
                cpu_quota_us(limits.memory_mb()).to_string()
            } else {
                "max".into()
            };
            vec![
                (
                    "cpu.weight",
                    cpu_weight(limits.memory_mb()).to_string(),
                    false,
                ),
                ("cpu.max", format!("{quota} {CPU_PERIOD_US}"), false),
            ]
        }
        _ => Vec::new(),
    }
}

fn write_file(path: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

/// Creates the environment's directories and writes the limits. Every problem becomes a
/// warning: a host without usable cgroups still runs environments, just unlimited.
pub(crate) fn setup(id: &str, limits: Limits, warnings: &mut Vec<String>) -> Vec<EnvDir> {
    let hs = discover();
    let chosen = select(&hs);
    for want in ENFORCING {
        if !chosen.iter().any(|(_, cs)| cs.contains(&want)) {
            warnings.push(format!(
                "cgroup: no {want} controller is mounted; {} not enforced",
                limit_name(want)
            ));
        }
    }
    let mut dirs = Vec::new();
    for (h, controllers) in chosen {
        match setup_one(&h, &controllers, id, limits, warnings) {
            Ok(dir) => dirs.push(dir),
            Err(e) => warnings.push(format!(
                "cgroup: cannot use {} for {}: {e}; {} not enforced",
                h.mount.display(),
                controllers.join("+"),
                controllers
                    .iter()
                    .map(|c| limit_name(c))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )),
        }
    }
    dirs
}

fn limit_name(controller: &str) -> &'static str {
    match controller {
        "memory" => "the memory limit",
        "pids" => "the process limit",
        "cpu" => "the CPU weight",
        "cpuacct" => "CPU accounting",
        _ => "freezing between invocations",
    }
}

fn setup_one(
    h: &Hierarchy,
    controllers: &[&'static str],
    id: &str,
    limits: Limits,
    warnings: &mut Vec<String>,
) -> io::Result<EnvDir> {
    let parent = h.mount.join(PARENT);
    fs::create_dir_all(&parent)?;
    if h.version == Version::V2 {
        // Controllers must be enabled in every ancestor's subtree_control for the leaf to get
        // their interface files. Already-enabled controllers make this a no-op.
        for dir in [&h.mount, &parent] {
            for c in controllers {
                // The CPU controller is optional on v2 (it cannot be enabled while the root
                // has realtime tasks, for one): memory and pids must not be lost with it.
                match write_file(&dir.join("cgroup.subtree_control"), &format!("+{c}")) {
                    Err(e) if *c == "cpu" => warnings.push(format!(
                        "cgroup: enabling cpu in {}: {e}; the CPU weight is not enforced",
                        dir.display()
                    )),
                    r => r?,
                }
            }
        }
    }
    let path = env_path(&h.mount, id);
    match fs::create_dir(&path) {
        Ok(()) => {}
        // A leftover of a crashed server with the same id: reuse it, limits are rewritten.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let dir = EnvDir {
        version: h.version,
        path: path.clone(),
        controllers: controllers.iter().map(|c| c.to_string()).collect(),
    };
    for c in controllers {
        for (file, value, required) in limit_writes(h.version, c, limits) {
            let p = path.join(file);
            if !required && !p.exists() {
                continue;
            }
            if let Err(e) = write_file(&p, &value) {
                if required {
                    let _ = fs::remove_dir(&path);
                    return Err(io::Error::new(e.kind(), format!("writing {file}: {e}")));
                }
                warnings.push(format!("cgroup: writing {}: {e}", p.display()));
            }
        }
    }
    Ok(dir)
}

/// Whether one of `dirs` carries `controller` (its limit is enforced once joined).
pub(crate) fn enforces(dirs: &[EnvDir], controller: &str) -> bool {
    dirs.iter()
        .any(|d| d.controllers.iter().any(|c| c == controller))
}

/// Moves the calling process into every directory ("0" names the writer itself, whatever pid
/// namespace it is in). Children inherit the membership.
pub(crate) fn join_self(dirs: &[EnvDir]) -> Result<(), String> {
    for d in dirs {
        write_file(&d.path.join("cgroup.procs"), "0")
            .map_err(|e| format!("joining {}: {e}", d.path.display()))?;
    }
    Ok(())
}

/// Moves the calling process (the server) into the `updraft` directory of every v1 hierarchy
/// carrying the `cpu` controller, where the environments' own directories are: server and
/// environments then form one group towards the rest of the host, and the server's threads are
/// plain tasks next to the environments' weighted groups (see "Tail latency" in
/// `docs/performance.md`). On v2 a cgroup with children under a controller may hold no process,
/// so the server stays where it is there. Returns what could not be done.
pub(crate) fn join_server_group() -> Vec<String> {
    let mut problems = Vec::new();
    for (h, cs) in select(&discover()) {
        if h.version != Version::V1 || !cs.contains(&"cpu") {
            continue;
        }
        let parent = h.mount.join(PARENT);
        let joined = fs::create_dir_all(&parent)
            .and_then(|()| write_file(&parent.join("cgroup.procs"), "0"));
        if let Err(e) = joined {
            problems.push(format!(
                "cgroup: the server cannot join {}: {e}; environments and server are scheduled \
                 as two groups",
                parent.display()
            ));
        }
    }
    problems
}

/// The file that freezes one environment: v1 `freezer.state` or v2 `cgroup.freeze`. Kept open
/// by the server so that a freeze or a thaw is one `write(2)`.
#[derive(Debug)]
pub(crate) struct Freezer {
    version: Version,
    file: fs::File,
}

impl Freezer {
    /// The freezer of an environment's directories, `None` when no hierarchy offers one.
    pub(crate) fn open(dirs: &[EnvDir]) -> Option<Freezer> {
        let (version, path) = freeze_file(dirs)?;
        let file = fs::OpenOptions::new().write(true).open(path).ok()?;
        Some(Freezer { version, file })
    }

    /// Stops every process of the environment. The kernel completes the freeze on its own
    /// (v1 passes through `FREEZING`); nothing here waits for it.
    pub(crate) fn freeze(&self) -> io::Result<()> {
        (&self.file).write_all(match self.version {
            Version::V1 => b"FROZEN",
            Version::V2 => b"1",
        })
    }

    /// Lets the processes run again.
    pub(crate) fn thaw(&self) -> io::Result<()> {
        (&self.file).write_all(match self.version {
            Version::V1 => b"THAWED",
            Version::V2 => b"0",
        })
    }
}

/// Where an environment is frozen: the v1 freezer hierarchy when there is one, else any of its
/// v2 directories (every non-root v2 cgroup can be frozen).
fn freeze_file(dirs: &[EnvDir]) -> Option<(Version, PathBuf)> {
    let v1 = dirs
        .iter()
        .find(|d| d.version == Version::V1 && d.controllers.iter().any(|c| c == "freezer"));
    match v1 {
        Some(d) => Some((Version::V1, d.path.join("freezer.state"))),
        None => dirs
            .iter()
            .find(|d| d.version == Version::V2)
            .map(|d| (Version::V2, d.path.join("cgroup.freeze")))
            .filter(|(_, p)| p.exists()),
    }
}

/// Removes environment directories that a server which died left behind: empty, and created
/// at least `min_age` ago (younger empty ones may belong to an environment being set up).
pub(crate) fn remove_stale(min_age: Duration) -> usize {
    let mut removed = 0;
    for (h, _) in select(&discover()) {
        let Ok(entries) = fs::read_dir(h.mount.join(PARENT)) else {
            continue;
        };
        for e in entries.flatten() {
            let is_env = e.file_type().is_ok_and(|t| t.is_dir())
                && e.file_name().to_str().is_some_and(crate::valid_id);
            if !is_env {
                continue;
            }
            let path = e.path();
            let old = fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            let empty =
                fs::read_to_string(path.join("cgroup.procs")).is_ok_and(|t| t.trim().is_empty());
            if old && empty && fs::remove_dir(&path).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// Parses `key value` lines (memory.events, memory.oom_control) into the value of `key`.
pub(crate) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok())?
    })
}

/// Whether the OOM killer acted in this memory cgroup, from the contents of its
/// `memory.oom_control` (v1) or `memory.events` (v2).
pub(crate) fn oom_from(version: Version, text: &str) -> bool {
    match version {
        Version::V2 => keyed_value(text, "oom_kill").unwrap_or(0) > 0,
        // `oom_kill` exists since Linux 4.13; older kernels only tell whether the group is
        // currently under OOM.
        Version::V1 => match keyed_value(text, "oom_kill") {
            Some(n) => n > 0,
            None => keyed_value(text, "under_oom").unwrap_or(0) > 0,
        },
    }
}

/// The cgroup directories of one environment, as seen from the server.
#[derive(Debug, Default)]
pub(crate) struct EnvCgroup {
    pub(crate) dirs: Vec<EnvDir>,
}

impl EnvCgroup {
    fn memory_dir(&self) -> Option<&EnvDir> {
        self.dirs
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == "memory"))
    }

    /// Pids listed in `cgroup.procs` of every directory.
    pub(crate) fn procs(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .dirs
            .iter()
            .filter_map(|d| fs::read_to_string(d.path.join("cgroup.procs")).ok())
            .flat_map(|t| {
                t.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Sends SIGKILL to every process of the environment, frozen or not.
    pub(crate) fn kill_all(&self) {
        self.kill_signals();
        // A frozen v1 task only acts on its pending SIGKILL once thawed (v2 lets fatal signals
        // through, where the thaw is harmless).
        if let Some((version, path)) = freeze_file(&self.dirs) {
            let _ = write_file(
                &path,
                match version {
                    Version::V1 => "THAWED",
                    Version::V2 => "0",
                },
            );
        }
    }

    fn kill_signals(&self) {
        // cgroup.kill (v2, Linux 5.14+) kills atomically, forks included.
        let mut need_loop = false;
        for d in &self.dirs {
            if d.version == Version::V1 || write_file(&d.path.join("cgroup.kill"), "1").is_err() {
                need_loop = true;
            }
        }
        if !need_loop {
            return;
        }
        // Otherwise processes may fork while we read the list; a few rounds catch the
        // stragglers, and the pid namespace teardown catches the rest.
        let mut signalled: Vec<i32> = Vec::new();
        for _ in 0..8 {
            let fresh: Vec<i32> = self
                .procs()
                .into_iter()
                .filter(|p| !signalled.contains(p))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for pid in fresh {
                // SAFETY: kill(2) with a pid read from this environment's cgroup; it only
                // sends a signal and touches no memory of ours.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                signalled.push(pid);
            }
        }
    }

    /// Sets a new memory limit on a live environment (a pre-warmed one given to a function).
    /// With cgroup v1 the memory+swap limit may never be below the memory limit, so it is
    /// written on both sides of the memory limit: the first write succeeds when the limit
    /// grows, the last when it shrinks.
    pub(crate) fn set_memory_limit(&self, bytes: u64) -> io::Result<()> {
        let Some(d) = self.memory_dir() else {
            return Ok(());
        };
        let limits = Limits {
            memory_bytes: bytes,
            pids_max: 0,
            cpu_ceiling: false,
        };
        let writes = limit_writes(d.version, "memory", limits);
        let (primary, value, _) = &writes[0];
        let memsw = d.path.join("memory.memsw.limit_in_bytes");
        let v1_swap = d.version == Version::V1 && memsw.exists();
        if v1_swap {
            let _ = write_file(&memsw, value);
        }
        write_file(&d.path.join(primary), value)
            .map_err(|e| io::Error::new(e.kind(), format!("writing {primary}: {e}")))?;
        if v1_swap {
            write_file(&memsw, value)
                .map_err(|e| io::Error::new(e.kind(), format!("writing memsw limit: {e}")))?;
        }
        Ok(())
    }

    /// Rewrites the CPU weight (and ceiling) for a new memory size (a pre-warmed environment
    /// given to a function).
    pub(crate) fn set_cpu(&self, memory_mb: u64, ceiling: bool) -> io::Result<()> {
        let limits = Limits {
            memory_bytes: memory_mb.saturating_mul(1 << 20),
            pids_max: 0,
            cpu_ceiling: ceiling,
        };
        for d in self
            .dirs
            .iter()
            .filter(|d| d.controllers.iter().any(|c| c == "cpu"))
        {
            for (file, value, _) in limit_writes(d.version, "cpu", limits) {
                let p = d.path.join(file);
                if p.exists() {
                    write_file(&p, &value)
                        .map_err(|e| io::Error::new(e.kind(), format!("writing {file}: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// CPU time the environment's processes used so far, in nanoseconds (v1
    /// `cpuacct.usage`, v2 `usage_usec` of `cpu.stat`).
    pub(crate) fn cpu_usage_ns(&self) -> Option<u64> {
        if let Some(d) = self
            .dirs
            .iter()
            .find(|d| d.version == Version::V1 && d.controllers.iter().any(|c| c == "cpuacct"))
        {
            return fs::read_to_string(d.path.join("cpuacct.usage"))
                .ok()?
                .trim()
                .parse()
                .ok();
        }
        let d = self.dirs.iter().find(|d| d.version == Version::V2)?;
        let text = fs::read_to_string(d.path.join("cpu.stat")).ok()?;
        keyed_value(&text, "usage_usec").map(|us| us.saturating_mul(1000))
    }

    /// Whether the memory cgroup hit its limit and the OOM killer acted.
    pub(crate) fn oom_killed(&self) -> bool {
        let Some(d) = self.memory_dir() else {
            return false;
        };
        let file = match d.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        fs::read_to_string(d.path.join(file))
            .map(|t| oom_from(d.version, &t))
            .unwrap_or(false)
    }

    /// Peak memory use in bytes.
    pub(crate) fn memory_peak(&self) -> Option<u64> {
        self.read_memory_number("memory.max_usage_in_bytes", "memory.peak")
    }

    /// A number from the memory controller's file `v1` or `v2`, whichever this cgroup has.
    fn read_memory_number(&self, v1: &str, v2: &str) -> Option<u64> {
        let d = self.memory_dir()?;
        let file = match d.version {
            Version::V1 => v1,
            Version::V2 => v2,
        };
        fs::read_to_string(d.path.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Memory in use now, in bytes (memory.usage_in_bytes v1 / memory.current v2): the
    /// processes' memory and the page cache charged to the environment.
    pub(crate) fn memory_current(&self) -> Option<u64> {
        self.read_memory_number("memory.usage_in_bytes", "memory.current")
    }

    /// Removes the directories; retries briefly while the last processes leave.
    pub(crate) fn remove(&mut self) {
        for d in self.dirs.drain(..) {
            let mut last = None;
            for attempt in 0..100u32 {
                match fs::remove_dir(&d.path) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
                thread::sleep(Duration::from_millis(u64::from(attempt.min(10)) + 1));
            }
            if let Some(e) = last {
                tracing::warn!(path = %d.path.display(), error = %e, "could not remove environment cgroup");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const PURE_V2: &str = "\
29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn parses_a_hybrid_host() {
        let hs = parse_mountinfo(HYBRID);
        let find = |c: &str| {
            hs.iter()
                .find(|h| h.controllers.iter().any(|x| x == c))
                .map(|h| h.mount.clone())
        };
        assert_eq!(find("memory"), Some("/sys/fs/cgroup/memory".into()));
        assert_eq!(find("pids"), Some("/sys/fs/cgroup/pids".into()));
        assert_eq!(find("cpuacct"), Some("/sys/fs/cgroup/cpu,cpuacct".into()));
        assert!(hs.iter().any(|h| h.version == Version::V2));
        // name=systemd is a named hierarchy, not a controller.
        assert!(
            !hs.iter()
                .any(|h| h.controllers.iter().any(|c| c.contains("systemd")))
        );
    }

    #[test]
    fn hybrid_uses_v1_for_both_controllers() {
        let mut hs = parse_mountinfo(HYBRID);
        // Even if the unified hierarchy claimed them, v1 wins.
        for h in hs.iter_mut().filter(|h| h.version == Version::V2) {
            h.controllers = vec!["memory".into(), "pids".into()];
        }
        let sel = select(&hs);
        assert_eq!(sel.len(), 3);
        assert!(sel.iter().all(|(h, _)| h.version == Version::V1));
        assert_eq!(sel[0].1, vec!["memory"]);
        assert_eq!(sel[1].1, vec!["pids"]);
        // cpu and cpuacct are mounted together: one directory serves both.
        assert_eq!(sel[2].1, vec!["cpu", "cpuacct"]);
    }

    #[test]
    fn pure_v2_uses_one_directory_for_both() {
        let mut hs = parse_mountinfo(PURE_V2);
        assert_eq!(hs.len(), 1);
        hs[0].controllers = "cpuset cpu io memory hugetlb pids rdma misc"
            .split(' ')
            .map(str::to_string)
            .collect();
        let sel = select(&hs);
        assert_eq!(sel.len(), 1);
        // Freezing and CPU usage need no controller on v2.
        assert_eq!(sel[0].1, vec!["memory", "pids", "cpu"]);
        assert_eq!(
            env_path(&sel[0].0.mount, "env-1"),
            PathBuf::from("/sys/fs/cgroup/updraft/env-1")
        );
    }

    #[test]
    fn v2_without_delegated_controllers_selects_nothing() {
        let hs = parse_mountinfo(PURE_V2);
        assert!(select(&hs).is_empty());
    }

    #[test]
    fn mount_points_with_spaces_are_unescaped() {
        let hs = parse_mountinfo("35 31 0:32 / /cg\\040root/memory rw - cgroup cgroup rw,memory\n");
        assert_eq!(hs[0].mount, PathBuf::from("/cg root/memory"));
    }

    #[test]
    fn limit_files_per_version() {
        let l = Limits {
            memory_bytes: 64 << 20,
            pids_max: 1024,
            cpu_ceiling: false,
        };
        let v1 = limit_writes(Version::V1, "memory", l);
        assert_eq!(v1[0], ("memory.limit_in_bytes", "67108864".into(), true));
        assert_eq!(v1[1].0, "memory.memsw.limit_in_bytes");
        let v2 = limit_writes(Version::V2, "memory", l);
        assert_eq!(v2[0], ("memory.max", "67108864".into(), true));
        assert_eq!(v2[1], ("memory.swap.max", "0".into(), false));
        assert_eq!(v2[2], ("memory.oom.group", "1".into(), false));
        assert_eq!(
            limit_writes(Version::V2, "pids", l),
            vec![("pids.max", "1024".into(), true)]
        );
    }

    #[test]
    fn cpu_follows_memory_size() {
        // One core's worth of memory is one plain task's weight; 128 MB gets 1/13.8 of it.
        assert_eq!(cpu_shares(1769), 1024);
        assert_eq!(cpu_shares(128), 74);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_weight(1769), 100);
        assert_eq!(cpu_weight(128), 7);
        assert_eq!(cpu_weight(10240), 578);
        // Lambda's ceiling: 7.2 % of a core at 128 MB, six cores at 10,240 MB.
        assert_eq!(cpu_quota_us(128), 7235);
        assert_eq!(cpu_quota_us(1769), 100_000);
        assert_eq!(cpu_quota_us(10240), 578_858);
        assert_eq!(cpu_quota_us(1_000_000), 600_000);
        let l = |ceiling| Limits {
            memory_bytes: 128 << 20,
            pids_max: 1024,
            cpu_ceiling: ceiling,
        };
        let v1 = limit_writes(Version::V1, "cpu", l(false));
        assert_eq!(v1[0], ("cpu.shares", "74".into(), false));
        assert_eq!(v1[2], ("cpu.cfs_quota_us", "-1".into(), false));
        let v1 = limit_writes(Version::V1, "cpu", l(true));
        assert_eq!(v1[2], ("cpu.cfs_quota_us", "7235".into(), false));
        let v2 = limit_writes(Version::V2, "cpu", l(true));
        assert_eq!(v2[0], ("cpu.weight", "7".into(), false));
        assert_eq!(v2[1], ("cpu.max", "7235 100000".into(), false));
        let v2 = limit_writes(Version::V2, "cpu", l(false));
        assert_eq!(v2[1], ("cpu.max", "max 100000".into(), false));
    }

    #[test]
    fn freezer_file_per_version() {
        let dir = |version, path: &str, cs: &[&str]| EnvDir {
            version,
            path: path.into(),
            controllers: cs.iter().map(|c| c.to_string()).collect(),
        };
        let v1 = [
            dir(Version::V1, "/cg/memory/updraft/e", &["memory"]),
            dir(Version::V1, "/cg/freezer/updraft/e", &["freezer"]),
        ];
        assert_eq!(
            freeze_file(&v1),
            Some((Version::V1, "/cg/freezer/updraft/e/freezer.state".into()))
        );
        assert_eq!(freeze_file(&v1[..1]), None);
    }

    #[test]
    fn oom_detection() {
        assert!(oom_from(
            Version::V2,
            "low 0\nhigh 0\nmax 31\noom 1\noom_kill 1\noom_group_kill 0\n"
        ));
        assert!(!oom_from(Version::V2, "low 0\nmax 3\noom 0\noom_kill 0\n"));
        assert!(oom_from(
            Version::V1,
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"
        ));
        assert!(!oom_from(
            Version::V1,
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"
        ));
        assert!(oom_from(Version::V1, "oom_kill_disable 0\nunder_oom 1\n"));
    }

    #[test]
    fn keyed_values() {
        assert_eq!(keyed_value("a 1\nbb 22\n", "bb"), Some(22));
        assert_eq!(keyed_value("a 1\n", "b"), None);
        assert_eq!(keyed_value("a x\n", "a"), None);
    }
}
