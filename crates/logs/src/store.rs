//! [`LogStore`]: log groups and streams as directories and append-only files (see [`crate::layout`]),
//! each group's settings in a small JSON file beside its streams.
//!
//! Why files and not a database: the engine appends a function's output to its stream with one
//! `write(2)` per burst, from the task that drains the function's pipe, and nothing on that path
//! waits for an index or a transaction. The index a read needs is the file itself: events are
//! appended in timestamp order, so a start time is found by bisection, and a stream's first and
//! last timestamps are its first and last lines. Deleting the oldest data is unlinking whole
//! files, which the engine makes cheap by starting a new stream file once one grows past a
//! segment size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::filter::Filter;
use crate::layout::{self, GROUP_META};
use crate::read::{self, ORDER_SLACK_MS, RawEvent, Step};

/// Largest page of events, in events (CloudWatch's limit).
pub const MAX_EVENTS: usize = 10_000;
/// Largest page of events in message bytes (CloudWatch answers "up to 1 MB").
pub const MAX_PAGE_BYTES: usize = 1 << 20;
/// Largest event, as CloudWatch and Lambda split them.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// The retention periods CloudWatch accepts, in days.
pub const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// The size at which the engine starts a new stream file for an environment, for a node cap of
/// `max_bytes` (0: none): small enough that the cap is kept in steps of a sixteenth, never below
/// 64 KiB nor above 64 MiB.
pub fn segment_bytes(max_bytes: u64) -> u64 {
    if max_bytes == 0 {
        return 64 << 20;
    }
    (max_bytes / 16).clamp(64 << 10, 64 << 20)
}

/// What went wrong, in the terms CloudWatch Logs answers with.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("The specified log group does not exist.")]
    GroupNotFound,
    #[error("The specified log stream does not exist.")]
    StreamNotFound,
    #[error("The specified log group already exists")]
    GroupExists,
    #[error("The specified log stream already exists")]
    StreamExists,
    #[error("{0}")]
    InvalidParameter(String),
    #[error("cannot read or write logs under {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

type R<T> = Result<T, LogsError>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogsError + '_ {
    move |e| LogsError::Io(path.to_path_buf(), e)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn ms(t: std::io::Result<SystemTime>) -> Option<u64> {
    t.ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
}

/// A group's settings (`.group.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupMeta {
    pub creation_ms: u64,
    pub retention_days: Option<u32>,
}

/// A group as `DescribeLogGroups` shows it.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub name: String,
    pub meta: GroupMeta,
    pub stored_bytes: u64,
}

/// A stream as `DescribeLogStreams` shows it.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub name: String,
    pub creation_ms: u64,
    pub first_event_ms: Option<u64>,
    pub last_event_ms: Option<u64>,
    pub last_ingestion_ms: Option<u64>,
    pub stored_bytes: u64,
}

/// An event as the read operations return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub stream: String,
    pub ts: u64,
    pub message: String,
    /// Unique within the group: timestamp, stream and offset.
    pub event_id: String,
}

/// A page of `GetLogEvents`.
#[derive(Debug)]
pub struct StreamPage {
    pub events: Vec<Event>,
    pub forward: String,
    pub backward: String,
}

/// A page of `FilterLogEvents`.
#[derive(Debug)]
pub struct FilterPage {
    pub events: Vec<Event>,
    pub searched: Vec<String>,
    pub next_token: Option<String>,
}

/// Which events a `FilterLogEvents` call wants.
pub struct FilterQuery<'a> {
    pub streams: Option<&'a [String]>,
    pub prefix: Option<&'a str>,
    pub start: Option<u64>,
    pub end: Option<u64>,
    pub filter: &'a Filter,
    pub token: Option<&'a str>,
    pub limit: usize,
}

/// What the sweeper and the writers have dropped, for the node's metrics.
#[derive(Debug, Default)]
pub struct Drops {
    /// Events removed to keep the node under its cap (`--logs-max-mb`), oldest streams first.
    pub cap_events: AtomicU64,
    /// Bytes removed for the cap.
    pub cap_bytes: AtomicU64,
    /// Events removed because their group's retention period ended.
    pub expired_events: AtomicU64,
}

/// Every account's log groups under one directory.
pub struct LogStore {
    root: PathBuf,
    pub region: String,
    /// Serialises the rare writers: group settings, group creation and deletion, `PutLogEvents`.
    writers: Mutex<()>,
    /// The node-wide cap in bytes (0: none).
    max_bytes: AtomicU64,
    drops: Drops,
}

/// Position of an event in a group: the order every multi-stream read follows (timestamp, then
/// stream file, then offset), which appends never reorder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    ts: u64,
    file: String,
    offset: u64,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 4096 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Position {
    fn token(&self) -> String {
        hex(format!("{}.{}.{}", self.ts, self.offset, self.file).as_bytes())
    }

    fn parse(token: &str) -> Option<Position> {
        let raw = String::from_utf8(unhex(token)?).ok()?;
        let mut parts = raw.splitn(3, '.');
        let ts = parts.next()?.parse().ok()?;
        let offset = parts.next()?.parse().ok()?;
        let file = parts.next()?.to_string();
        layout::stream_name_from_file(&file)?;
        Some(Position { ts, file, offset })
    }
}

/// A 64-bit FNV-1a hash, to tell streams apart inside event ids.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn event_id(ts: u64, file: &str, offset: u64) -> String {
    format!("{ts:020}{:020}{offset:016}", fnv(file))
}

impl LogStore {
    /// A store over `root` (`<data-dir>/logs`).
    pub fn new(root: PathBuf, region: String) -> LogStore {
        LogStore {
            root,
            region,
            writers: Mutex::new(()),
            max_bytes: AtomicU64::new(0),
            drops: Drops::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Sets the node-wide cap (0: none).
    pub fn set_max_bytes(&self, bytes: u64) {
        self.max_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.load(Ordering::Relaxed)
    }

    /// The drop counters (for `/metrics`).
    pub fn drops(&self) -> &Drops {
        &self.drops
    }

    /// Events dropped to keep the node under its cap, since start.
    pub fn dropped_events(&self) -> u64 {
        self.drops.cap_events.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn account_dir(&self, account: &str) -> R<PathBuf> {
        if !layout::valid_account(account) {
            return Err(LogsError::InvalidParameter(format!(
                "invalid account id {account}"
            )));
        }
        Ok(self.root.join(account))
    }

    fn group_path(&self, account: &str, group: &str) -> R<PathBuf> {
        if !layout::valid_group_name(group) {
            return Err(LogsError::InvalidParameter(format!(
                "1 validation error detected: Value '{group}' at 'logGroupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"
            )));
        }
        Ok(self.account_dir(account)?.join(layout::group_dir(group)))
    }

    /// The directory of an existing group.
    fn existing_group(&self, account: &str, group: &str) -> R<PathBuf> {
        let dir = self.group_path(account, group)?;
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(LogsError::GroupNotFound)
        }
    }

    fn stream_path(&self, dir: &Path, stream: &str) -> R<PathBuf> {
        if !layout::valid_stream_name(stream) {
            return Err(LogsError::InvalidParameter(format!(
                "1 validation error detected: Value '{stream}' at 'logStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]*"
            )));
        }
        Ok(dir.join(layout::stream_file(stream)))
    }

    fn read_meta(dir: &Path) -> GroupMeta {
        let parsed = std::fs::read(dir.join(GROUP_META))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        match parsed {
            Some(v) => GroupMeta {
                creation_ms: v["creationTime"].as_u64().unwrap_or(0),
                retention_days: v["retentionInDays"].as_u64().map(|d| d as u32),
            },
            // A group the engine created by writing to it: its directory's age stands in.
            None => GroupMeta {
                creation_ms: std::fs::metadata(dir)
                    .ok()
                    .and_then(|m| ms(m.created()).or(ms(m.modified())))
                    .unwrap_or(0),
                retention_days: None,
            },
        }
    }

    fn write_meta(dir: &Path, meta: &GroupMeta) -> R<()> {
        let mut v = serde_json::json!({"creationTime": meta.creation_ms});
        if let Some(d) = meta.retention_days {
            v["retentionInDays"] = d.into();
        }
        let tmp = dir.join(".group.json.tmp");
        std::fs::write(&tmp, v.to_string()).map_err(io(&tmp))?;
        std::fs::rename(&tmp, dir.join(GROUP_META)).map_err(io(dir))
    }

    /// A group's settings, if it exists.
    pub fn group_meta(&self, account: &str, group: &str) -> R<GroupMeta> {
        let dir = self.existing_group(account, group)?;
        Ok(Self::read_meta(&dir))
    }

    /// `CreateLogGroup`.
    pub fn create_group(&self, account: &str, group: &str) -> R<()> {
        let dir = self.group_path(account, group)?;
        let _g = self.lock();
        if dir.is_dir() {
            return Err(LogsError::GroupExists);
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Self::write_meta(
            &dir,
            &GroupMeta {
                creation_ms: now_ms(),
                retention_days: None,
            },
        )
    }

    /// `DeleteLogGroup`: the directory is moved aside at once and removed after.
    pub fn delete_group(&self, account: &str, group: &str) -> R<()> {
        let dir = self.existing_group(account, group)?;
        let _g = self.lock();
        let trash = self.root.join(".trash");
        std::fs::create_dir_all(&trash).map_err(io(&trash))?;
        let aside = trash.join(format!("{}-{}", now_ms(), fnv(&dir.to_string_lossy())));
        std::fs::rename(&dir, &aside).map_err(io(&dir))?;
        std::fs::remove_dir_all(&aside).map_err(io(&aside))
    }

    /// `PutRetentionPolicy` (`Some`) and `DeleteRetentionPolicy` (`None`).
    pub fn set_retention(&self, account: &str, group: &str, days: Option<u32>) -> R<()> {
        if let Some(d) = days
            && !RETENTION_DAYS.contains(&d)
        {
            return Err(LogsError::InvalidParameter(format!(
                "1 validation error detected: Value '{d}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: {RETENTION_DAYS:?}"
            )));
        }
        let dir = self.existing_group(account, group)?;
        let _g = self.lock();
        let mut meta = Self::read_meta(&dir);
        meta.retention_days = days;
        Self::write_meta(&dir, &meta)
    }

    /// Groups of `account` whose names start with `prefix`, by name.
    pub fn list_groups(&self, account: &str, prefix: Option<&str>) -> R<Vec<GroupInfo>> {
        let adir = self.account_dir(account)?;
        let entries = match std::fs::read_dir(&adir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LogsError::Io(adir, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(name) = entry
                .file_name()
                .to_str()
                .and_then(layout::group_name_from_dir)
            else {
                continue;
            };
            if prefix.is_some_and(|p| !name.starts_with(p)) || !entry.path().is_dir() {
                continue;
            }
            let dir = entry.path();
            let stored_bytes = stream_files(&dir)
                .values()
                .filter_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum();
            out.push(GroupInfo {
                name,
                meta: Self::read_meta(&dir),
                stored_bytes,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Streams of a group whose names start with `prefix`, by name.
    pub fn list_streams(
        &self,
        account: &str,
        group: &str,
        prefix: Option<&str>,
    ) -> R<Vec<StreamInfo>> {
        let dir = self.existing_group(account, group)?;
        let mut out = Vec::new();
        for (name, path) in stream_files(&dir) {
            if prefix.is_some_and(|p| !name.starts_with(p)) {
                continue;
            }
            let Ok(f) = File::open(&path) else { continue };
            let Ok(m) = f.metadata() else { continue };
            let (first, last) = read::first_last(&f, m.len()).unwrap_or((None, None));
            out.push(StreamInfo {
                name,
                creation_ms: ms(m.created()).or(first).unwrap_or(0),
                first_event_ms: first,
                last_event_ms: last,
                last_ingestion_ms: ms(m.modified()),
                stored_bytes: m.len(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `CreateLogStream`.
    pub fn create_stream(&self, account: &str, group: &str, stream: &str) -> R<()> {
        let dir = self.existing_group(account, group)?;
        let path = self.stream_path(&dir, stream)?;
        let _g = self.lock();
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(LogsError::StreamExists),
            Err(e) => Err(LogsError::Io(path, e)),
        }
    }

    /// `PutLogEvents`: appends `events` (already checked for order and age) in one write. A
    /// newline inside a message is stored as `\r` (one line is one event); a message longer than
    /// [`MAX_EVENT_BYTES`] is cut into several events.
    pub fn put_events(
        &self,
        account: &str,
        group: &str,
        stream: &str,
        events: &[(u64, &str)],
    ) -> R<()> {
        let dir = self.existing_group(account, group)?;
        let path = self.stream_path(&dir, stream)?;
        if !path.is_file() {
            return Err(LogsError::StreamNotFound);
        }
        let mut buf = Vec::with_capacity(events.iter().map(|e| e.1.len() + 24).sum());
        for (ts, msg) in events {
            for piece in split_event(msg.as_bytes()) {
                buf.extend_from_slice(ts.to_string().as_bytes());
                buf.push(b' ');
                buf.extend(piece.iter().map(|&b| if b == b'\n' { b'\r' } else { b }));
                buf.push(b'\n');
            }
        }
        let lines = buf.iter().filter(|&&b| b == b'\n').count() as u64;
        if !crate::budget::budget().take(buf.len() as u64, lines) {
            // Accepted and dropped, as a function's own lines are when the node is at its cap.
            return Ok(());
        }
        let _g = self.lock();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(&buf).map_err(io(&path))
    }

    /// The earliest timestamp a read may return in a group (its retention).
    fn retention_floor(dir: &Path) -> u64 {
        match Self::read_meta(dir).retention_days {
            Some(d) => now_ms().saturating_sub(u64::from(d) * 86_400_000),
            None => 0,
        }
    }

    /// `GetLogEvents`: one page of one stream. Tokens are `f/<offset>` (read on from there) and
    /// `b/<offset>` (read back from there).
    #[allow(clippy::too_many_arguments)]
    pub fn get_events(
        &self,
        account: &str,
        group: &str,
        stream: &str,
        start: Option<u64>,
        end: Option<u64>,
        token: Option<&str>,
        limit: usize,
        start_from_head: bool,
    ) -> R<StreamPage> {
        let dir = self.existing_group(account, group)?;
        let path = self.stream_path(&dir, stream)?;
        let file = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LogsError::StreamNotFound,
            _ => LogsError::Io(path.clone(), e),
        })?;
        let len = file.metadata().map_err(io(&path))?.len();
        let floor = start.unwrap_or(0).max(Self::retention_floor(&dir));
        let end = end.unwrap_or(u64::MAX);
        let limit = limit.clamp(1, MAX_EVENTS);
        let file_name = layout::stream_file(stream);
        let lo =
            read::seek_time(&file, len, floor.saturating_sub(ORDER_SLACK_MS)).map_err(io(&path))?;
        let bad_token =
            || LogsError::InvalidParameter("The specified nextToken is invalid.".into());
        let (forward, at) = match token {
            None => (start_from_head, if start_from_head { lo } else { len }),
            Some(t) => {
                let (dir, off) = t.split_once('/').ok_or_else(bad_token)?;
                let off: u64 = off.parse().map_err(|_| bad_token())?;
                match dir {
                    "f" => (true, off.clamp(lo, len)),
                    "b" => (false, off.clamp(lo, len)),
                    _ => return Err(bad_token()),
                }
            }
        };
        let in_range = |e: &RawEvent| e.ts >= floor && e.ts < end;
        let mut picked: Vec<RawEvent> = Vec::new();
        if forward {
            let mut bytes = 0usize;
            read::scan(&file, at, len, |e| {
                if e.ts >= end.saturating_add(ORDER_SLACK_MS) {
                    return false;
                }
                if in_range(&e) {
                    bytes += e.message.len();
                    picked.push(e);
                }
                picked.len() < limit && bytes < MAX_PAGE_BYTES
            })
            .map_err(io(&path))?;
        } else {
            // Read ever larger windows back from `at` until they hold a page.
            let mut window = 256 * 1024u64;
            loop {
                let from = at.saturating_sub(window).max(lo);
                let from = if from == lo {
                    lo
                } else {
                    next_line(&file, from, at).map_err(io(&path))?
                };
                let mut got = Vec::new();
                read::scan(&file, from, at, |e| {
                    if in_range(&e) {
                        got.push(e);
                    }
                    true
                })
                .map_err(io(&path))?;
                if got.len() >= limit || from == lo {
                    let mut bytes = 0usize;
                    let mut keep = 0;
                    for e in got.iter().rev() {
                        if keep == limit || (keep > 0 && bytes + e.message.len() > MAX_PAGE_BYTES) {
                            break;
                        }
                        bytes += e.message.len();
                        keep += 1;
                    }
                    picked = got.split_off(got.len() - keep);
                    break;
                }
                window *= 4;
            }
        }
        let fwd = picked.last().map_or(at, |e| e.end);
        let bwd = picked.first().map_or(at, |e| e.offset);
        let events = picked
            .into_iter()
            .map(|e| Event {
                stream: stream.to_string(),
                event_id: event_id(e.ts, &file_name, e.offset),
                ts: e.ts,
                message: e.message,
            })
            .collect();
        Ok(StreamPage {
            events,
            forward: format!("f/{fwd}"),
            backward: format!("b/{bwd}"),
        })
    }

    /// `FilterLogEvents`: matching events of a group's streams, oldest first across streams.
    pub fn filter_events(&self, account: &str, group: &str, q: &FilterQuery<'_>) -> R<FilterPage> {
        let dir = self.existing_group(account, group)?;
        let after = match q.token {
            Some(t) => Some(Position::parse(t).ok_or_else(|| {
                LogsError::InvalidParameter("The specified nextToken is invalid.".into())
            })?),
            None => None,
        };
        let since = q.start.unwrap_or(0).max(Self::retention_floor(&dir));
        let end = q.end.unwrap_or(u64::MAX);
        let floor = since.max(after.as_ref().map_or(0, |p| p.ts));
        let limit = q.limit.clamp(1, MAX_EVENTS);
        let mut candidates: Vec<(Position, String)> = Vec::new();
        let mut more = false;
        let mut cut_bound: Option<Position> = None;
        let mut searched = Vec::new();
        for (name, path) in stream_files(&dir) {
            if let Some(list) = q.streams
                && !list.contains(&name)
            {
                continue;
            }
            if q.prefix.is_some_and(|p| !name.starts_with(p)) {
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            searched.push(name);
            // Nothing in a file is newer than its last write.
            if ms(meta.modified()).is_some_and(|m| m.saturating_add(ORDER_SLACK_MS) < floor) {
                continue;
            }
            let file_name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let start = read::seek_time(&file, meta.len(), floor.saturating_sub(ORDER_SLACK_MS))
                .map_err(io(&path))?;
            let mut taken = 0usize;
            let mut bytes = 0usize;
            let mut last: Option<Position> = None;
            let mut cut = false;
            read::scan_filtered(
                &file,
                start,
                |at, ts, msg| {
                    if ts >= end.saturating_add(ORDER_SLACK_MS) {
                        return Step::Stop;
                    }
                    if ts < since || ts >= end {
                        return Step::Skip;
                    }
                    if let Some(a) = &after
                        && (ts, file_name.as_str(), at) <= (a.ts, a.file.as_str(), a.offset)
                    {
                        return Step::Skip;
                    }
                    let text = String::from_utf8_lossy(msg);
                    if q.filter.matches(&text) {
                        Step::Take
                    } else {
                        Step::Skip
                    }
                },
                |e| {
                    if taken >= limit || bytes >= MAX_PAGE_BYTES {
                        cut = true;
                        return false;
                    }
                    taken += 1;
                    bytes += e.message.len();
                    let at = Position {
                        ts: e.ts,
                        file: file_name.clone(),
                        offset: e.offset,
                    };
                    last = Some(at.clone());
                    candidates.push((at, e.message));
                    true
                },
            )
            .map_err(io(&path))?;
            if cut && let Some(l) = last {
                more = true;
                // Events of this stream after `l` were not read: nothing later may be on this
                // page, or the next page would start past them.
                if cut_bound.as_ref().is_none_or(|b| l < *b) {
                    cut_bound = Some(l);
                }
            }
        }
        candidates.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(b) = &cut_bound {
            candidates.retain(|c| c.0 <= *b);
        }
        // One page: at most `limit` events and about a megabyte, oldest first.
        let mut bytes = 0usize;
        let mut keep = 0;
        for (_, m) in &candidates {
            if keep == limit || (keep > 0 && bytes + m.len() > MAX_PAGE_BYTES) {
                more = true;
                break;
            }
            bytes += m.len();
            keep += 1;
        }
        candidates.truncate(keep);
        // When some stream was cut short, nothing past its last taken event is certain to be
        // in order, so the page ends at the earliest such cut.
        let next_token = (more && !candidates.is_empty()).then(|| candidates[keep - 1].0.token());
        let events = candidates
            .into_iter()
            .map(|(p, message)| Event {
                stream: layout::stream_name_from_file(&p.file).unwrap_or_default(),
                event_id: event_id(p.ts, &p.file, p.offset),
                ts: p.ts,
                message,
            })
            .collect();
        Ok(FilterPage {
            events,
            searched,
            next_token,
        })
    }

    /// Every account directory, for the sweeper.
    pub(crate) fn accounts(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.root)
            .map(|it| {
                it.flatten()
                    .filter(|e| e.file_name().to_str().is_some_and(layout::valid_account))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn meta_of(dir: &Path) -> GroupMeta {
        Self::read_meta(dir)
    }
}

/// The first line start at or after `at`, never past `limit`.
fn next_line(file: &File, at: u64, limit: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut pos = at.saturating_sub(1);
    let mut buf = [0u8; 4096];
    while pos < limit {
        let n = file.read_at(&mut buf, pos)?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            return Ok((pos + i as u64 + 1).min(limit));
        }
        pos += n as u64;
    }
    Ok(limit)
}

/// The stream files of a group directory, by stream name.
pub(crate) fn stream_files(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Some(name) = e
                .file_name()
                .to_str()
                .and_then(layout::stream_name_from_file)
            {
                out.insert(name, e.path());
            }
        }
    }
    out
}

/// Cuts a message into events of at most [`MAX_EVENT_BYTES`], on character boundaries.
pub fn split_event(msg: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = msg;
    let mut first = true;
    std::iter::from_fn(move || {
        if rest.is_empty() && !first {
            return None;
        }
        first = false;
        let mut n = rest.len().min(MAX_EVENT_BYTES);
        // Do not split inside a UTF-8 sequence.
        while n < rest.len() && n > 0 && (rest[n] & 0xC0) == 0x80 {
            n -= 1;
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCT: &str = "123456789012";

    fn store_with_streams(streams: &[(&str, Vec<(u64, String)>)]) -> (tempfile::TempDir, LogStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::new(dir.path().to_path_buf(), "us-east-1".into());
        store.create_group(ACCT, "/g").unwrap();
        for (name, events) in streams {
            store.create_stream(ACCT, "/g", name).unwrap();
            let evs: Vec<(u64, &str)> = events.iter().map(|(t, m)| (*t, m.as_str())).collect();
            store.put_events(ACCT, "/g", name, &evs).unwrap();
        }
        (dir, store)
    }

    fn filter_all(store: &LogStore, pattern: &str, limit: usize) -> (Vec<(u64, String)>, usize) {
        let filter = Filter::parse(pattern).unwrap();
        let (mut out, mut token, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let q = FilterQuery {
                streams: None,
                prefix: None,
                start: None,
                end: None,
                filter: &filter,
                token: token.as_deref(),
                limit,
            };
            let page = store.filter_events(ACCT, "/g", &q).unwrap();
            pages += 1;
            assert!(page.events.len() <= limit);
            out.extend(page.events.into_iter().map(|e| (e.ts, e.message)));
            match page.next_token {
                Some(t) => token = Some(t),
                None => return (out, pages),
            }
            assert!(pages < 10_000);
        }
    }

    #[test]
    fn filter_pages_interleave_streams_in_time_order_without_gaps() {
        // Stream a is dense, stream b sparse: a page cut short in a must not skip b's events.
        let a: Vec<_> = (0..300u64).map(|i| (1_000 + i, format!("a {i}"))).collect();
        let b: Vec<_> = (0..30u64)
            .map(|i| (1_000 + i * 10, format!("b {i}")))
            .collect();
        let (_d, store) = store_with_streams(&[("a", a.clone()), ("b", b.clone())]);
        let mut want: Vec<_> = a.iter().chain(b.iter()).cloned().collect();
        want.sort_by_key(|x| (x.0, x.1.starts_with('b')));
        for limit in [1, 7, 50, 330, 10_000] {
            let (got, _) = filter_all(&store, "", limit);
            assert_eq!(got, want, "limit {limit}");
        }
        let (got, _) = filter_all(&store, "b", 4);
        assert_eq!(got, b);
    }

    #[test]
    fn get_events_pages_both_ways() {
        let ev: Vec<_> = (0..25u64).map(|i| (500 + i, format!("e{i}"))).collect();
        let (_d, store) = store_with_streams(&[("s", ev)]);
        let get = |token: Option<&str>, head: bool| {
            store
                .get_events(ACCT, "/g", "s", None, None, token, 10, head)
                .unwrap()
        };
        let names = |p: &StreamPage| {
            p.events
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
        };
        let last = get(None, false);
        assert_eq!(
            names(&last),
            (15..25).map(|i| format!("e{i}")).collect::<Vec<_>>()
        );
        let before = get(Some(&last.backward), false);
        assert_eq!(
            names(&before),
            (5..15).map(|i| format!("e{i}")).collect::<Vec<_>>()
        );
        let first = get(Some(&before.backward), false);
        assert_eq!(
            names(&first),
            (0..5).map(|i| format!("e{i}")).collect::<Vec<_>>()
        );
        let head = get(None, true);
        assert_eq!(names(&head)[0], "e0");
        let end = get(Some(&last.forward), true);
        assert!(end.events.is_empty());
        assert_eq!(end.forward, last.forward);
        assert!(matches!(
            store.get_events(ACCT, "/g", "s", None, None, Some("f/x"), 10, true),
            Err(LogsError::InvalidParameter(_))
        ));
    }

    #[test]
    fn accounts_see_only_their_own_groups() {
        let (_d, store) = store_with_streams(&[("s", vec![(1, "x".into())])]);
        assert!(matches!(
            store.list_streams("210987654321", "/g", None),
            Err(LogsError::GroupNotFound)
        ));
        assert!(store.list_groups("210987654321", None).unwrap().is_empty());
        assert!(store.list_groups("../etc", None).is_err());
        assert_eq!(store.list_groups(ACCT, None).unwrap().len(), 1);
    }

    #[test]
    fn sweeper_removes_expired_streams_and_keeps_the_cap() {
        let now = now_ms();
        let old = now - 3 * 86_400_000;
        let (_d, store) = store_with_streams(&[
            ("old", vec![(old, "ancient".into())]),
            ("new", vec![(now, "fresh".into())]),
        ]);
        store.set_retention(ACCT, "/g", Some(1)).unwrap();
        let swept = store.sweep();
        assert_eq!(swept.expired_files, 1);
        let names: Vec<_> = store
            .list_streams(ACCT, "/g", None)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["new"]);
        assert!(matches!(
            store.set_retention(ACCT, "/g", Some(2)),
            Err(LogsError::InvalidParameter(_))
        ));
        assert_eq!(split_event(&vec![b'x'; MAX_EVENT_BYTES + 5]).count(), 2);
        assert_eq!(split_event(b"").count(), 1);
    }
}
