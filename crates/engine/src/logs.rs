//! Log streams: one file per execution environment, as Lambda has one CloudWatch log stream per
//! environment.
//!
//! Layout: `<data_dir>/logs/<account_id>/<function_name>/<stream file>` where the stream file is
//! the stream name (`2024/05/01/[$LATEST]0123...cdef`, as Lambda names streams) percent-encoded:
//! every byte outside `A-Z a-z 0-9 . _ -` becomes `%XX`, then `.log` is appended
//! (`2024%2F05%2F01%2F%5B%24LATEST%5D0123...cdef.log`). The mapping is reversible
//! ([`stream_name_from_file`]), so the file name alone carries the real stream name.
//!
//! Each line of a file is one log event: `<epoch milliseconds> <message>\n`. Messages are the lines
//! the runtime writes to stdout and stderr (split at `\n`; a very long line is split every 256 KiB,
//! like CloudWatch's event size limit) and the platform's own lines (`START`, `END`, `REPORT`,
//! timeouts), which are tab-separated exactly like Lambda's.
//!
//! Writes are few: the `START` line is held back and goes out with whatever is written next (the
//! runtime's first line, or `END` and `REPORT`, which are one write), so a quiet warm invocation
//! costs one `write(2)`; platform lines are formatted straight into the sink's buffer.
//!
//! Reads are bounded: [`read_logs_page`] merges a function's streams one page at a time (at most
//! 10,000 events and about 1 MB of messages, as CloudWatch's `FilterLogEvents`), reading each file
//! line by line from a position found by bisection on the timestamps, and returns a token for the
//! next page, so a long log never sits in memory whole.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;

use crate::EngineError;

/// Bytes of the tail returned for `LogType: Tail` (Lambda returns the last 4 KB).
pub const TAIL_BYTES: usize = 4096;
/// A line longer than this is cut into several events.
const MAX_EVENT_BYTES: usize = 256 * 1024;

/// One log event read back from a stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogEvent {
    pub timestamp_ms: u64,
    /// Stream name as Lambda would show it (`2024/05/01/[$LATEST]...`).
    pub stream: String,
    pub message: String,
}

/// Milliseconds since the epoch.
pub(crate) fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A Lambda log stream name: `YYYY/MM/DD/[<version>]<32 hex>`.
pub(crate) fn stream_name(now: SystemTime, version: &str, hex32: &str) -> String {
    let dt = time::OffsetDateTime::from(now);
    format!(
        "{:04}/{:02}/{:02}/[{version}]{hex32}",
        dt.year(),
        u8::from(dt.month()),
        dt.day()
    )
}

fn keep_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'
}

/// File name of a stream (see the module documentation).
pub fn stream_file_name(stream: &str) -> String {
    let mut out = String::with_capacity(stream.len() + 16);
    for &b in stream.as_bytes() {
        if keep_byte(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(".log");
    out
}

/// The stream name a file name stands for, `None` if it is not a stream file.
pub fn stream_name_from_file(file: &str) -> Option<String> {
    let enc = file.strip_suffix(".log")?;
    let bytes = enc.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = enc.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Account ids and function names become directory names: refuse anything that could climb out.
fn safe_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 170
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Directory of a log group's streams: `/aws/lambda/<function>` is the function's directory, any
/// other group (`LoggingConfig.LogGroup`) the directory `updraft-logs` names for it.
pub(crate) fn group_dir(
    logs_dir: &Path,
    account_id: &str,
    log_group: &str,
) -> Result<PathBuf, EngineError> {
    if !safe_component(account_id) {
        return Err(EngineError::InvalidName(account_id.to_string()));
    }
    if !updraft_logs::layout::valid_group_name(log_group) {
        return Err(EngineError::InvalidName(log_group.to_string()));
    }
    Ok(logs_dir
        .join(account_id)
        .join(updraft_logs::layout::group_dir(log_group)))
}

/// Directory of a function's streams.
pub(crate) fn function_dir(
    logs_dir: &Path,
    account_id: &str,
    function_name: &str,
) -> Result<PathBuf, EngineError> {
    for n in [account_id, function_name] {
        if !safe_component(n) {
            return Err(EngineError::InvalidName(n.to_string()));
        }
    }
    Ok(logs_dir.join(account_id).join(function_name))
}

/// Platform line written after the `REPORT` of an environment's first invocation when its
/// runtime id runs on a nearer interpreter version than it names.
pub(crate) const RUNTIME_NOTE: &str = "RUNTIME_NOTE";

/// The figures of a `REPORT` line.
pub(crate) struct Report<'a> {
    pub request_id: &'a str,
    pub duration_ms: f64,
    pub billed_ms: u64,
    pub memory_mb: u32,
    pub max_memory_used_mb: u64,
    pub init_duration_ms: Option<f64>,
    /// `Some(("timeout", None))`, `Some(("error", Some("Runtime.ExitError")))`, ...
    pub status: Option<(&'a str, Option<&'a str>)>,
    /// Time extensions worked after the runtime's answer (only with extensions).
    pub post_runtime_extensions_ms: Option<f64>,
}

/// `REPORT RequestId: <id>\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t
/// Max Memory Used: 40 MB[\tInit Duration: 12.34 ms][\tStatus: ...[\tError Type: ...]]`
#[cfg(test)]
pub(crate) fn report_line(r: &Report<'_>) -> String {
    let mut s = String::new();
    write_report(&mut s, r);
    s
}

/// Writes the `REPORT` line (see [`report_line`]) to `out`.
fn write_report(out: &mut impl std::fmt::Write, r: &Report<'_>) {
    let _ = write!(
        out,
        "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
        r.request_id, r.duration_ms, r.billed_ms, r.memory_mb, r.max_memory_used_mb
    );
    if let Some(init) = r.init_duration_ms {
        let _ = write!(out, "\tInit Duration: {init:.2} ms");
    }
    if let Some(post) = r.post_runtime_extensions_ms {
        let _ = write!(out, "\tPostRuntimeExtensionsDuration: {post:.2} ms");
    }
    if let Some((status, error_type)) = r.status {
        let _ = write!(out, "\tStatus: {status}");
        if let Some(t) = error_type {
            let _ = write!(out, "\tError Type: {t}");
        }
    }
}

/// The last `TAIL_BYTES` of `captured`.
pub(crate) fn tail(mut captured: Vec<u8>) -> Vec<u8> {
    if captured.len() > TAIL_BYTES {
        captured.drain(..captured.len() - TAIL_BYTES);
    }
    captured
}

/// A function's `LoggingConfig`, as the engine applies it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSettings {
    /// `LogFormat: JSON`: platform records are JSON objects and the runtime clients write JSON.
    pub json: bool,
    /// `ApplicationLogLevel` (JSON only): handed to the runtime clients, which filter by it.
    pub application_level: Option<String>,
    /// `SystemLogLevel` (JSON only): which platform records are written.
    pub system_level: Option<String>,
}

/// Ranks of the system log levels (`DEBUG` < `INFO` < `WARN`).
fn system_rank(level: Option<&str>) -> u8 {
    match level {
        Some("DEBUG") => 0,
        Some("WARN") => 2,
        _ => 1,
    }
}

/// `2024-05-01T12:00:00.123Z`, the time of Lambda's JSON platform records.
fn iso_ms(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Bytes a stream file may grow to before the environment goes on in a new stream (see
/// [`set_log_segment_bytes`]).
static SEGMENT_BYTES: AtomicU64 = AtomicU64::new(64 * 1024 * 1024);

/// Sets the size at which an environment's stream file is closed and a new stream started. The
/// logs sweeper removes whole files, oldest first, so a function that logs without pause must
/// leave closed files behind it for the node's cap to bite. One value for the node, set at
/// start-up; a process-wide setting because every sink of every pool shares it.
pub fn set_log_segment_bytes(bytes: u64) {
    SEGMENT_BYTES.store(bytes.max(4096), Ordering::Relaxed);
}

/// The stream that follows `path`'s: same directory and version, today's date, a fresh id.
fn next_segment(path: &Path) -> Option<PathBuf> {
    let name = stream_name_from_file(path.file_name()?.to_str()?)?;
    let open = name.find('[')?;
    let close = name.rfind(']')?;
    let version = name.get(open + 1..close)?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let next = stream_name(SystemTime::now(), version, &id);
    Some(path.with_file_name(stream_file_name(&next)))
}

struct SinkState {
    file: Option<File>,
    /// Platform records as JSON objects (`LogFormat: JSON`), and the least level written.
    json: bool,
    system_rank: u8,
    /// Events in `pending`.
    pending_lines: u64,
    /// Where `file` is, and how many bytes it holds, for starting the next segment.
    path: PathBuf,
    written: u64,
    /// Events formatted for the file and not written yet (a held-back `START`, or lines being
    /// gathered into one write).
    pending: Vec<u8>,
    /// Raw lines (no timestamps) of the current invocation, kept when a tail was asked for.
    capture: Option<Vec<u8>>,
    /// Written once, right after the next `REPORT`: the function runs on a nearer interpreter
    /// version than its runtime id names, and whoever reads its logs must see it.
    runtime_note: Option<String>,
}

/// Adapts a byte buffer to `fmt::Write`, so platform lines are formatted in place.
struct LineBuf<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for LineBuf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

impl SinkState {
    /// Adds one event stamped `ts` whose message `line` writes.
    fn append(&mut self, ts: u64, line: impl FnOnce(&mut LineBuf<'_>)) {
        let mut out = LineBuf(&mut self.pending);
        let _ = write!(out, "{ts} ");
        let from = out.0.len();
        line(&mut out);
        let to = out.0.len();
        self.pending.push(b'\n');
        self.pending_lines += 1;
        if let Some(cap) = self.capture.as_mut() {
            cap.extend_from_slice(&self.pending[from..to]);
            cap.push(b'\n');
            // Only the tail is ever returned; do not let a chatty function grow this without end.
            if cap.len() > 4 * TAIL_BYTES {
                cap.drain(..cap.len() - TAIL_BYTES);
            }
        }
    }

    /// Writes out what is pending.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.pending_lines);
        // At the node's cap the lines are dropped and counted: the pump never waits for room.
        if !updraft_logs::budget::budget().take(self.pending.len() as u64, lines) {
            self.pending.clear();
            return;
        }
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.write_all(&self.pending) {
                tracing::warn!("cannot write log stream: {e}");
                self.file = None;
            } else {
                self.written += self.pending.len() as u64;
            }
        }
        self.pending.clear();
        if self.written >= SEGMENT_BYTES.load(Ordering::Relaxed)
            && let Some(next) = next_segment(&self.path)
        {
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&next)
            {
                Ok(f) => {
                    self.file = Some(f);
                    self.path = next;
                    self.written = 0;
                }
                Err(e) => tracing::warn!("cannot open log stream {}: {e}", next.display()),
            }
        }
        // A burst of output must not pin a large buffer for the environment's life.
        if self.pending.capacity() > 64 * 1024 {
            self.pending.shrink_to(4096);
        }
    }
}

/// The writing end of one environment's stream. Shared by the stdout/stderr pumps and the platform;
/// a `std` mutex because writes are short and never await.
pub(crate) struct LogSink {
    state: Mutex<SinkState>,
    /// Sees every line of the function's own output (the Telemetry API's `function` stream).
    tap: std::sync::OnceLock<LineTap>,
    /// Where the function's Embedded Metric Format lines go (metrics), when anything listens.
    pub(crate) hook: Option<crate::metering::BoundHook>,
}

/// Called with each line a function writes.
pub(crate) type LineTap = Box<dyn Fn(&[u8]) + Send + Sync>;

impl LogSink {
    /// Opens (appending) the stream file; without a file the sink still captures tails.
    pub(crate) fn open(path: &Path) -> LogSink {
        let file = path
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
            });
        let written = file
            .as_ref()
            .ok()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        let file = match file {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!("cannot open log stream {}: {e}", path.display());
                None
            }
        };
        LogSink {
            state: Mutex::new(SinkState {
                file,
                json: false,
                system_rank: 1,
                pending_lines: 0,
                path: path.to_path_buf(),
                written,
                pending: Vec::new(),
                capture: None,
                runtime_note: None,
            }),
            tap: std::sync::OnceLock::new(),
            hook: None,
        }
    }

    /// Has `tap` called with each line the function writes (not the platform's lines).
    pub(crate) fn set_tap(&self, tap: LineTap) {
        let _ = self.tap.set(tap);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends events, all stamped now.
    pub(crate) fn write_lines<'a>(&self, lines: impl IntoIterator<Item = &'a [u8]>) {
        let tap = self.tap.get();
        self.write_tapped(lines, tap);
    }

    fn write_tapped<'a>(&self, lines: impl IntoIterator<Item = &'a [u8]>, tap: Option<&LineTap>) {
        let ts = epoch_ms(SystemTime::now());
        let mut st = self.lock();
        for line in lines {
            if let Some(tap) = tap {
                tap(line);
            }
            st.append(ts, |out| out.0.extend_from_slice(line));
        }
        st.flush();
    }

    /// Appends one platform line.
    pub(crate) fn platform(&self, line: &str) {
        self.write_tapped([line.as_bytes()], None);
    }

    /// Applies a function's `LoggingConfig` to the platform records written from now on.
    pub(crate) fn set_settings(&self, s: &LogSettings) {
        let mut st = self.lock();
        st.json = s.json;
        st.system_rank = system_rank(s.system_level.as_deref());
    }

    /// Holds back `START RequestId: <id> Version: <version>` (or, with JSON, a
    /// `platform.start` record) until the next write.
    pub(crate) fn start(&self, request_id: &str, version: &str) {
        let ts = epoch_ms(SystemTime::now());
        let mut st = self.lock();
        if !st.json {
            st.append(ts, |out| {
                let _ = write!(out, "START RequestId: {request_id} Version: {version}");
            });
        } else if st.system_rank <= 1 {
            let rec = serde_json::json!({
                "time": iso_ms(ts),
                "type": "platform.start",
                "record": {"requestId": request_id, "version": version},
            });
            st.append(ts, |out| {
                let _ = write!(out, "{rec}");
            });
        }
    }

    /// Appends `END RequestId: <id>` and the `REPORT` line, in one write (with JSON: a
    /// `platform.runtimeDone` record at `DEBUG` and `platform.report`, at `INFO`, or `WARN` when
    /// the invocation failed).
    pub(crate) fn end_and_report(&self, r: &Report<'_>) {
        let ts = epoch_ms(SystemTime::now());
        let mut st = self.lock();
        if st.json {
            let status = r.status.map_or("success", |s| s.0);
            if st.system_rank == 0 {
                let rec = serde_json::json!({
                    "time": iso_ms(ts),
                    "type": "platform.runtimeDone",
                    "record": {"requestId": r.request_id, "status": status},
                });
                st.append(ts, |out| {
                    let _ = write!(out, "{rec}");
                });
            }
            if st.system_rank <= 1 || status != "success" {
                let mut metrics = serde_json::json!({
                    "durationMs": (r.duration_ms * 100.0).round() / 100.0,
                    "billedDurationMs": r.billed_ms,
                    "memorySizeMB": r.memory_mb,
                    "maxMemoryUsedMB": r.max_memory_used_mb,
                });
                if let Some(init) = r.init_duration_ms {
                    metrics["initDurationMs"] = ((init * 100.0).round() / 100.0).into();
                }
                let mut record = serde_json::json!({
                    "requestId": r.request_id,
                    "metrics": metrics,
                    "status": status,
                });
                if let Some((_, Some(t))) = r.status {
                    record["errorType"] = t.into();
                }
                let rec = serde_json::json!({
                    "time": iso_ms(ts),
                    "type": "platform.report",
                    "record": record,
                });
                st.append(ts, |out| {
                    let _ = write!(out, "{rec}");
                });
            }
            st.flush();
            return;
        }
        st.append(ts, |out| {
            let _ = write!(out, "END RequestId: {}", r.request_id);
        });
        st.append(ts, |out| write_report(out, r));
        if let Some(note) = st.runtime_note.take() {
            st.append(ts, |out| {
                let _ = write!(out, "{RUNTIME_NOTE} {note}");
            });
        }
        st.flush();
    }

    /// Has `RUNTIME_NOTE <note>` written right after the next `REPORT` line.
    pub(crate) fn note_after_report(&self, note: &str) {
        self.lock().runtime_note = Some(note.to_string());
    }

    /// Starts (or restarts) capturing lines for a tail.
    pub(crate) fn begin_capture(&self) {
        self.lock().capture = Some(Vec::new());
    }

    /// Stops capturing; returns the last `TAIL_BYTES` captured.
    pub(crate) fn end_capture(&self) -> Option<Vec<u8>> {
        self.lock().capture.take().map(tail)
    }
}

impl Drop for LogSink {
    /// Writes out anything held back (a `START` whose invocation never got further).
    fn drop(&mut self) {
        self.state
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .flush();
    }
}

/// What a pump and a flush share: the bytes read but not yet written as whole lines, and a
/// duplicate of the pipe's (non-blocking) fd that a flush reads through.
struct PumpState {
    pending: Vec<u8>,
    buf: Vec<u8>,
    /// Reads the pipe directly: a flush must see data the reactor has not reported yet, which
    /// `try_read` would not (it trusts the cached readiness).
    direct: Option<File>,
}

/// A task copying one pipe of the runtime (stdout or stderr) into the sink, line by line.
pub(crate) struct Pump {
    state: Arc<Mutex<PumpState>>,
    sink: Arc<LogSink>,
    task: JoinHandle<()>,
}

impl Pump {
    /// Starts pumping `fd` (the read end of a pipe) into `sink`. Must run inside a tokio runtime.
    pub(crate) fn spawn(fd: OwnedFd, sink: Arc<LogSink>) -> std::io::Result<Pump> {
        use std::os::fd::AsFd;
        let direct = fd.as_fd().try_clone_to_owned().map(File::from).ok();
        let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?;
        let state = Arc::new(Mutex::new(PumpState {
            pending: Vec::new(),
            buf: vec![0u8; 16 * 1024],
            direct,
        }));
        let task = tokio::spawn(pump(rx, sink.clone(), state.clone()));
        Ok(Pump { state, sink, task })
    }

    /// Whether the pipe reached end of file (every writer is gone).
    pub(crate) fn finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Writes out what the pipe holds right now, including an unterminated last line. Never
    /// waits: the pipe is non-blocking, so this costs one `read(2)` when it is empty.
    fn flush(&self) {
        use std::io::Read;
        let mut st = lock_pump(&self.state);
        let PumpState {
            pending,
            buf,
            direct,
        } = &mut *st;
        if let Some(f) = direct.as_ref() {
            read_available(|b| (&*f).read(b), buf, pending);
        }
        emit_lines(pending, &self.sink, true);
    }
}

fn lock_pump(state: &Mutex<PumpState>) -> std::sync::MutexGuard<'_, PumpState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes every pump write out what its pipe holds right now (including an unterminated last line).
pub(crate) fn flush(pumps: &[Pump]) {
    for p in pumps {
        p.flush();
    }
}

/// Waits until every pump saw end of file, at most `max`.
pub(crate) async fn wait_eof(pumps: &[Pump], max: Duration) {
    let deadline = tokio::time::Instant::now() + max;
    while !pumps.iter().all(Pump::finished) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Splits complete lines off `pending` and writes them.
fn emit_lines(pending: &mut Vec<u8>, sink: &LogSink, include_partial: bool) {
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for (i, &b) in pending.iter().enumerate() {
        if b == b'\n' {
            lines.push(&pending[start..i]);
            start = i + 1;
        } else if i + 1 - start >= MAX_EVENT_BYTES {
            lines.push(&pending[start..=i]);
            start = i + 1;
        }
    }
    if include_partial && start < pending.len() {
        lines.push(&pending[start..]);
        start = pending.len();
    }
    if let Some(hook) = &sink.hook {
        for line in &lines {
            hook.offer(line);
        }
    }
    sink.write_lines(lines);
    pending.drain(..start);
}

/// Reads whatever the pipe holds without waiting, with `read`; `true` at end of file.
fn read_available(
    mut read: impl FnMut(&mut [u8]) -> std::io::Result<usize>,
    buf: &mut [u8],
    pending: &mut Vec<u8>,
) -> bool {
    loop {
        match read(buf) {
            Ok(0) => return true,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

async fn pump(
    rx: tokio::net::unix::pipe::Receiver,
    sink: Arc<LogSink>,
    state: Arc<Mutex<PumpState>>,
) {
    loop {
        if rx.readable().await.is_err() {
            emit_lines(&mut lock_pump(&state).pending, &sink, true);
            return;
        }
        let mut st = lock_pump(&state);
        let PumpState { pending, buf, .. } = &mut *st;
        let eof = read_available(|b| rx.try_read(b), buf, pending);
        emit_lines(pending, &sink, eof);
        if eof {
            return;
        }
    }
}

/// Largest page [`read_logs_page`] returns, in events (CloudWatch's `FilterLogEvents` limit).
pub const MAX_PAGE_EVENTS: usize = 10_000;
/// Largest page in message bytes (CloudWatch answers "as many events as fit in 1 MB"); a page
/// always holds at least one event, however long.
pub const MAX_PAGE_BYTES: usize = 1 << 20;
/// How far out of order timestamps within one stream may be (the stdout and stderr pumps stamp
/// their lines before taking the sink's lock, so one may land a moment after a later stamp).
/// Seeking and stopping early inside a stream leave this much room.
const STREAM_ORDER_SLACK_MS: u64 = 1_000;

/// One page of a function's log events and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    /// Oldest first.
    pub events: Vec<LogEvent>,
    /// Present when more events follow this page; pass it back to read the next one.
    pub next_token: Option<String>,
}

/// A position in a function's log. Events are ordered by timestamp, then stream file name, then
/// byte offset in that file, which is a total order that new events appended to any stream
/// never reorder. Tokens are `<ts>.<offset>.<stream file>` in hex, so they pass through query
/// strings untouched and are never used as a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    ts: u64,
    file: String,
    offset: u64,
}

impl Position {
    fn token(&self) -> String {
        hex_encode(format!("{}.{}.{}", self.ts, self.offset, self.file).as_bytes())
    }

    fn parse(token: &str) -> Option<Position> {
        let raw = String::from_utf8(hex_decode(token)?).ok()?;
        let mut parts = raw.splitn(3, '.');
        let ts = parts.next()?.parse().ok()?;
        let offset = parts.next()?.parse().ok()?;
        let file = parts.next()?.to_string();
        stream_name_from_file(&file)?;
        Some(Position { ts, file, offset })
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 2048 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An event read for a page, ordered by its position.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    at: Position,
    message: String,
}

/// The smallest events seen so far, within a page's count and byte limits.
struct PageHeap {
    heap: std::collections::BinaryHeap<Candidate>,
    bytes: usize,
    limit: usize,
    max_bytes: usize,
    /// The smallest position left out so far. Nothing at or after it may join the page any
    /// more (or the page would skip the events it left out); its presence means another page
    /// follows.
    cutoff: Option<Position>,
}

impl PageHeap {
    fn full(&self) -> bool {
        self.heap.len() >= self.limit || self.bytes >= self.max_bytes
    }

    /// A position past which nothing can join the page, once one is known.
    fn bound(&self) -> Option<&Position> {
        self.cutoff.as_ref().or_else(|| {
            self.full()
                .then(|| self.heap.peek().map(|c| &c.at))
                .flatten()
        })
    }

    fn exclude(&mut self, at: Position) {
        if self.cutoff.as_ref().is_none_or(|c| at < *c) {
            self.cutoff = Some(at);
        }
    }

    fn offer(&mut self, c: Candidate) {
        if self.bound().is_some_and(|b| c.at > *b) {
            self.exclude(c.at);
            return;
        }
        self.bytes += c.message.len();
        self.heap.push(c);
        while self.heap.len() > self.limit || (self.bytes > self.max_bytes && self.heap.len() > 1) {
            if let Some(dropped) = self.heap.pop() {
                self.bytes -= dropped.message.len();
                self.exclude(dropped.at);
            }
        }
    }
}

/// Reads one page of a function's log events at or after `since_ms`, oldest first, starting after
/// `token` (from the previous page) when given. At most `limit` events (capped at
/// [`MAX_PAGE_EVENTS`]) and about [`MAX_PAGE_BYTES`] of messages are held at any time; stream
/// files are read line by line from a position found by bisection, never whole.
pub fn read_logs_page(
    logs_dir: &Path,
    account_id: &str,
    function_name: &str,
    since_ms: u64,
    token: Option<&str>,
    limit: usize,
) -> Result<LogPage, EngineError> {
    let after = match token {
        Some(t) => Some(Position::parse(t).ok_or(EngineError::InvalidLogToken)?),
        None => None,
    };
    let dir = function_dir(logs_dir, account_id, function_name)?;
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LogPage {
                events: Vec::new(),
                next_token: None,
            });
        }
        Err(e) => return Err(EngineError::ReadLogs(dir, e)),
    };
    let floor = since_ms.max(after.as_ref().map_or(0, |p| p.ts));
    let mut page = PageHeap {
        heap: std::collections::BinaryHeap::new(),
        bytes: 0,
        limit: limit.clamp(1, MAX_PAGE_EVENTS),
        max_bytes: MAX_PAGE_BYTES,
        cutoff: None,
    };
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::ReadLogs(dir.clone(), e))?;
        let Ok(file) = entry.file_name().into_string() else {
            continue;
        };
        if stream_name_from_file(&file).is_none() {
            continue;
        }
        let path = entry.path();
        scan_stream(&path, file, floor, since_ms, after.as_ref(), &mut page)
            .map_err(|e| EngineError::ReadLogs(path, e))?;
    }
    let more = page.cutoff.is_some();
    let candidates = page.heap.into_sorted_vec();
    let next_token = more
        .then(|| candidates.last().map(|c| c.at.token()))
        .flatten();
    let events = candidates
        .into_iter()
        .map(|c| LogEvent {
            timestamp_ms: c.at.ts,
            stream: stream_name_from_file(&c.at.file).unwrap_or_default(),
            message: c.message,
        })
        .collect();
    Ok(LogPage { events, next_token })
}

/// Log events of a function at or after `since_ms`, oldest first: every page, chained. For
/// callers that know the log is small (tests); the API serves pages.
pub fn read_logs(
    logs_dir: &Path,
    account_id: &str,
    function_name: &str,
    since_ms: u64,
) -> Result<Vec<LogEvent>, EngineError> {
    let mut events = Vec::new();
    let mut token = None;
    loop {
        let page = read_logs_page(
            logs_dir,
            account_id,
            function_name,
            since_ms,
            token.as_deref(),
            MAX_PAGE_EVENTS,
        )?;
        events.extend(page.events);
        match page.next_token {
            Some(t) => token = Some(t),
            None => return Ok(events),
        }
    }
}

/// Offers the events of one stream file that may belong on the page.
fn scan_stream(
    path: &Path,
    file_name: String,
    floor: u64,
    since_ms: u64,
    after: Option<&Position>,
    page: &mut PageHeap,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Seek, SeekFrom};
    let file = File::open(path)?;
    let meta = file.metadata()?;
    // Every event is stamped before it is written, so nothing in a file is newer than its last
    // modification (give or take the slack, for coarse file timestamps).
    let modified = meta.modified().map(epoch_ms).unwrap_or(u64::MAX);
    if modified.saturating_add(STREAM_ORDER_SLACK_MS) < floor {
        return Ok(());
    }
    let start = seek_time(
        &file,
        meta.len(),
        floor.saturating_sub(STREAM_ORDER_SLACK_MS),
    )?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    reader.seek(SeekFrom::Start(start))?;
    let mut offset = start;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        // A line without its newline is still being written: it belongs to a later read.
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        let at = offset;
        offset += n as u64;
        let Some((ts, message)) = parse_line(&line[..n - 1]) else {
            continue;
        };
        if ts < since_ms {
            continue;
        }
        let pos = Position {
            ts,
            file: file_name.clone(),
            offset: at,
        };
        if after.is_some_and(|a| pos <= *a) {
            continue;
        }
        if let Some(bound) = page.bound()
            && ts > bound.ts.saturating_add(STREAM_ORDER_SLACK_MS)
        {
            // This event and everything further in this stream come after what the page can
            // still take.
            page.exclude(pos);
            return Ok(());
        }
        page.offer(Candidate {
            at: pos,
            message: String::from_utf8_lossy(message).into_owned(),
        });
    }
}

/// `<epoch ms> <message>`; `None` for a line that is not an event.
fn parse_line(line: &[u8]) -> Option<(u64, &[u8])> {
    let space = line.iter().position(|&b| b == b' ')?;
    let ts = std::str::from_utf8(&line[..space]).ok()?.parse().ok()?;
    Some((ts, &line[space + 1..]))
}

/// A line start in `file` (of `len` bytes) such that every line before it is stamped before
/// `target`, found by bisection over byte offsets. Lines that cannot be read as events make it
/// keep the earlier bound, so the answer is never past an event it should include.
fn seek_time(file: &File, len: u64, target: u64) -> std::io::Result<u64> {
    const LINEAR: u64 = 64 * 1024;
    let (mut lo, mut hi) = (0u64, len);
    while hi - lo > LINEAR {
        let mid = lo + (hi - lo) / 2;
        let start = next_line_start(file, mid, len)?;
        if start >= hi {
            hi = mid;
            continue;
        }
        match line_time(file, start)? {
            Some(ts) if ts < target => lo = start,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// The first line start at or after `at`.
fn next_line_start(file: &File, at: u64, len: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    if at == 0 {
        return Ok(0);
    }
    let mut pos = at - 1;
    let mut buf = [0u8; 4096];
    while pos < len {
        let n = file.read_at(&mut buf, pos)?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().position(|&b| b == b'\n') {
            return Ok(pos + i as u64 + 1);
        }
        pos += n as u64;
    }
    Ok(len)
}

/// The timestamp of the line starting at `at`, if it has one.
fn line_time(file: &File, at: u64) -> std::io::Result<Option<u64>> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, at)?;
    Ok(parse_line(&buf[..n]).map(|(ts, _)| ts))
}

/// Parses the events of one stream file into `out`.
#[cfg(test)]
pub(crate) fn parse_stream(data: &[u8], stream: &str, since_ms: u64, out: &mut Vec<LogEvent>) {
    for line in data.split(|&b| b == b'\n') {
        let Some((ts, message)) = parse_line(line) else {
            continue;
        };
        if ts < since_ms {
            continue;
        }
        out.push(LogEvent {
            timestamp_ms: ts,
            stream: stream.to_string(),
            message: String::from_utf8_lossy(message).into_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_look_like_lambda() {
        let t = UNIX_EPOCH + Duration::from_secs(1_714_521_600); // 2024-05-01
        let name = stream_name(t, "$LATEST", "0123456789abcdef0123456789abcdef");
        assert_eq!(name, "2024/05/01/[$LATEST]0123456789abcdef0123456789abcdef");
        assert_eq!(stream_name(t, "7", "ab"), "2024/05/01/[7]ab");
    }

    #[test]
    fn stream_file_names_round_trip() {
        let name = "2024/05/01/[$LATEST]0123456789abcdef";
        let file = stream_file_name(name);
        assert_eq!(file, "2024%2F05%2F01%2F%5B%24LATEST%5D0123456789abcdef.log");
        assert!(!file.contains('/'));
        assert_eq!(stream_name_from_file(&file).as_deref(), Some(name));
        assert_eq!(stream_name_from_file("x%2"), None);
        assert_eq!(stream_name_from_file("abc.txt"), None);
        assert_eq!(stream_name_from_file("a%zz.log"), None);
    }

    #[test]
    fn platform_lines_match_lambda() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.log");
        let sink = LogSink::open(&path);
        sink.begin_capture();
        sink.start("r1", "$LATEST");
        // START is held back until the next write.
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        let mut r = Report {
            request_id: "r1",
            duration_ms: 1.234,
            billed_ms: 2,
            memory_mb: 128,
            max_memory_used_mb: 40,
            init_duration_ms: None,
            status: None,
            post_runtime_extensions_ms: None,
        };
        assert_eq!(
            report_line(&r),
            "REPORT RequestId: r1\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 40 MB"
        );
        sink.end_and_report(&r);
        let tail = String::from_utf8(sink.end_capture().unwrap()).unwrap();
        assert_eq!(
            tail,
            format!(
                "START RequestId: r1 Version: $LATEST\nEND RequestId: r1\n{}\n",
                report_line(&r)
            )
        );
        let mut events = Vec::new();
        parse_stream(&std::fs::read(&path).unwrap(), "s", 0, &mut events);
        let messages: Vec<_> = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages[..2],
            ["START RequestId: r1 Version: $LATEST", "END RequestId: r1"]
        );
        r.init_duration_ms = Some(12.345);
        r.status = Some(("error", Some("Runtime.ExitError")));
        assert_eq!(
            report_line(&r),
            "REPORT RequestId: r1\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 40 MB\tInit Duration: 12.35 ms\tStatus: error\tError Type: Runtime.ExitError"
        );
    }

    #[test]
    fn json_platform_records_follow_the_system_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        let sink = LogSink::open(&path);
        sink.set_settings(&LogSettings {
            json: true,
            application_level: None,
            system_level: Some("DEBUG".into()),
        });
        sink.start("r1", "$LATEST");
        let r = Report {
            request_id: "r1",
            duration_ms: 1.234,
            billed_ms: 2,
            memory_mb: 128,
            max_memory_used_mb: 40,
            init_duration_ms: Some(5.0),
            status: None,
            post_runtime_extensions_ms: None,
        };
        sink.end_and_report(&r);
        sink.set_settings(&LogSettings {
            json: true,
            application_level: None,
            system_level: Some("WARN".into()),
        });
        sink.start("r2", "$LATEST");
        sink.end_and_report(&Report {
            request_id: "r2",
            status: Some(("timeout", None)),
            ..r
        });
        let mut ev = Vec::new();
        parse_stream(&std::fs::read(&path).unwrap(), "s", 0, &mut ev);
        let recs: Vec<serde_json::Value> = ev
            .iter()
            .map(|e| serde_json::from_str(&e.message).unwrap())
            .collect();
        let types: Vec<_> = recs.iter().map(|r| r["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "platform.start",
                "platform.runtimeDone",
                "platform.report",
                "platform.report"
            ]
        );
        assert_eq!(recs[2]["record"]["metrics"]["billedDurationMs"], 2);
        assert_eq!(recs[2]["record"]["metrics"]["initDurationMs"], 5.0);
        assert_eq!(recs[3]["record"]["status"], "timeout");
        assert!(recs[0]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn names_cannot_escape_the_logs_dir() {
        let d = Path::new("/logs");
        assert!(function_dir(d, "123456789012", "my-fn_1").is_ok());
        assert!(function_dir(d, "123456789012", "../etc").is_err());
        assert!(function_dir(d, "..", "f").is_err());
        assert!(function_dir(d, "1", "").is_err());
        assert!(function_dir(d, "1", "a/b").is_err());
    }

    #[test]
    fn runtime_note_follows_the_first_report_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(stream_file_name("2024/01/01/[1]ee"));
        let sink = LogSink::open(&path);
        sink.note_after_report("python3.12 runs on Python 3.11.2");
        let report = |id| Report {
            request_id: id,
            duration_ms: 1.0,
            billed_ms: 1,
            memory_mb: 128,
            max_memory_used_mb: 30,
            init_duration_ms: None,
            status: None,
            post_runtime_extensions_ms: None,
        };
        sink.end_and_report(&report("r1"));
        sink.end_and_report(&report("r2"));
        let data = std::fs::read(&path).unwrap();
        let mut ev = Vec::new();
        parse_stream(&data, "s", 0, &mut ev);
        let msgs: Vec<_> = ev.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs.len(), 5, "{msgs:?}");
        assert!(msgs[1].starts_with("REPORT RequestId: r1"));
        assert_eq!(msgs[2], "RUNTIME_NOTE python3.12 runs on Python 3.11.2");
        assert!(msgs[4].starts_with("REPORT RequestId: r2"));
    }

    #[test]
    fn sink_writes_stamped_lines_and_captures_a_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir
            .path()
            .join("a")
            .join(stream_file_name("2024/01/01/[1]ff"));
        let sink = LogSink::open(&path);
        sink.platform("before");
        sink.begin_capture();
        sink.platform("START RequestId: r Version: 1");
        sink.write_lines([&b"hello"[..], &b"world"[..]]);
        let tail = sink.end_capture().unwrap();
        assert_eq!(tail, b"START RequestId: r Version: 1\nhello\nworld\n");
        sink.platform("after");
        assert_eq!(sink.end_capture(), None);

        let data = std::fs::read(&path).unwrap();
        let mut ev = Vec::new();
        parse_stream(&data, "s", 0, &mut ev);
        let msgs: Vec<_> = ev.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            msgs,
            [
                "before",
                "START RequestId: r Version: 1",
                "hello",
                "world",
                "after"
            ]
        );
        let now = epoch_ms(SystemTime::now());
        assert!(
            ev.iter()
                .all(|e| e.timestamp_ms <= now && e.timestamp_ms + 60_000 > now)
        );
        let mut later = Vec::new();
        parse_stream(&data, "s", now + 1, &mut later);
        assert!(later.is_empty());
    }

    #[test]
    fn a_full_segment_goes_on_in_a_new_stream() {
        let dir = tempfile::tempdir().unwrap();
        let first = "2024/01/01/[$LATEST]0123456789abcdef0123456789abcdef";
        let path = dir.path().join(stream_file_name(first));
        assert!(next_segment(&dir.path().join("x.log")).is_none());
        let next = next_segment(&path).unwrap();
        let name = stream_name_from_file(next.file_name().unwrap().to_str().unwrap()).unwrap();
        assert!(name.contains("/[$LATEST]") && name != first, "{name}");
        assert_eq!(next.parent(), path.parent());
    }

    #[test]
    fn tail_keeps_the_last_4k() {
        let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let t = tail(big.clone());
        assert_eq!(t.len(), TAIL_BYTES);
        assert_eq!(&t[..], &big[big.len() - TAIL_BYTES..]);
        assert_eq!(tail(b"short".to_vec()), b"short");
    }

    #[test]
    fn capture_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::open(&dir.path().join("x.log"));
        sink.begin_capture();
        let line = vec![b'x'; 1000];
        for _ in 0..100 {
            sink.write_lines([&line[..]]);
        }
        sink.platform("REPORT last");
        let t = sink.end_capture().unwrap();
        assert_eq!(t.len(), TAIL_BYTES);
        assert!(t.ends_with(b"REPORT last\n"));
    }

    #[test]
    fn read_logs_merges_streams_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let fdir = function_dir(dir.path(), "123", "f").unwrap();
        std::fs::create_dir_all(&fdir).unwrap();
        std::fs::write(fdir.join(stream_file_name("s/[1]a")), "10 a1\n30 a2\n").unwrap();
        std::fs::write(
            fdir.join(stream_file_name("s/[1]b")),
            "20 b1\ngarbage\n40 b 2\n",
        )
        .unwrap();
        std::fs::write(fdir.join("not-a-stream.txt"), "15 x\n").unwrap();
        let ev = read_logs(dir.path(), "123", "f", 15).unwrap();
        let got: Vec<_> = ev
            .iter()
            .map(|e| (e.timestamp_ms, e.stream.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (20, "s/[1]b", "b1"),
                (30, "s/[1]a", "a2"),
                (40, "s/[1]b", "b 2")
            ]
        );
        assert!(
            read_logs(dir.path(), "123", "nobody", 0)
                .unwrap()
                .is_empty()
        );
        assert!(read_logs(dir.path(), "123", "../x", 0).is_err());
    }

    /// Writes `events` (timestamp, message) as stream `name` of function `f` of account `123`.
    fn write_stream(root: &Path, name: &str, events: &[(u64, String)]) {
        let fdir = function_dir(root, "123", "f").unwrap();
        std::fs::create_dir_all(&fdir).unwrap();
        let text: String = events.iter().map(|(t, m)| format!("{t} {m}\n")).collect();
        std::fs::write(fdir.join(stream_file_name(name)), text).unwrap();
    }

    /// Follows every page with `limit`, returning (timestamp, stream, message) and the page count.
    fn all_pages(root: &Path, since: u64, limit: usize) -> (Vec<(u64, String, String)>, usize) {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = read_logs_page(root, "123", "f", since, token.as_deref(), limit).unwrap();
            pages += 1;
            assert!(page.events.len() <= limit.max(1));
            out.extend(
                page.events
                    .into_iter()
                    .map(|e| (e.timestamp_ms, e.stream, e.message)),
            );
            match page.next_token {
                Some(t) => token = Some(t),
                None => return (out, pages),
            }
            assert!(pages < 100_000, "pagination does not end");
        }
    }

    #[test]
    fn pages_chain_to_the_whole_log_in_order() {
        let dir = tempfile::tempdir().unwrap();
        // Three streams with interleaved and equal timestamps, several events per millisecond.
        let mut expected = Vec::new();
        for (s, name) in ["s/[1]a", "s/[1]b", "s/[2]c"].iter().enumerate() {
            let events: Vec<_> = (0..300u64)
                .map(|i| (1_000 + i / 3 + s as u64, format!("{name} event {i}")))
                .collect();
            for (t, m) in &events {
                expected.push((*t, name.to_string(), m.clone()));
            }
            write_stream(dir.path(), name, &events);
        }
        // Oldest first; ties by stream, then by order within the stream.
        expected.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for limit in [1, 7, 100, 899, 900, 10_000] {
            let (got, pages) = all_pages(dir.path(), 0, limit);
            assert_eq!(got, expected, "limit {limit}");
            assert_eq!(pages, 900usize.div_ceil(limit), "limit {limit}");
        }
        let (got, _) = all_pages(dir.path(), 1_050, 13);
        let want: Vec<_> = expected.iter().filter(|e| e.0 >= 1_050).cloned().collect();
        assert_eq!(got, want);
        assert_eq!(read_logs(dir.path(), "123", "f", 0).unwrap().len(), 900);
    }

    #[test]
    fn long_streams_are_bisected_and_pages_stay_within_the_byte_limit() {
        let dir = tempfile::tempdir().unwrap();
        // 4 MiB of log in one stream: pages of 1 MiB, each read from a bisected start.
        let line = "x".repeat(4000);
        let events: Vec<_> = (0..1_000u64)
            .map(|i| (5_000 + i * 10, format!("{i} {line}")))
            .collect();
        write_stream(dir.path(), "s/[1]big", &events);
        let (got, pages) = all_pages(dir.path(), 0, MAX_PAGE_EVENTS);
        assert_eq!(got.len(), 1_000);
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, e)| e.0 == 5_000 + i as u64 * 10)
        );
        assert!(pages >= 4, "{pages} pages for 4 MB");
        let first = read_logs_page(dir.path(), "123", "f", 0, None, MAX_PAGE_EVENTS).unwrap();
        let bytes: usize = first.events.iter().map(|e| e.message.len()).sum();
        assert!(bytes <= MAX_PAGE_BYTES, "{bytes}");
        // A start far into the file is found without reading what precedes it.
        let fdir = function_dir(dir.path(), "123", "f").unwrap();
        let f = File::open(fdir.join(stream_file_name("s/[1]big"))).unwrap();
        let len = f.metadata().unwrap().len();
        let at = seek_time(&f, len, 5_000 + 900 * 10).unwrap();
        assert!(at > len / 2, "{at} of {len}");
        let (got, _) = all_pages(dir.path(), 5_000 + 900 * 10, 50);
        assert_eq!(got.len(), 100);
        assert_eq!(got[0].0, 5_000 + 900 * 10);
    }

    #[test]
    fn a_page_full_by_bytes_never_skips_the_small_events_after_it() {
        let dir = tempfile::tempdir().unwrap();
        // Large events fill the page by bytes; the short ones after them must wait for the next
        // page rather than slip in behind an event that was left out.
        let mut events: Vec<_> = (0..10u64)
            .map(|i| (100 + i, format!("big {i} {}", "b".repeat(200_000))))
            .collect();
        events.extend((0..50u64).map(|i| (110 + i / 10, format!("small {i}"))));
        write_stream(dir.path(), "s/[1]a", &events);
        write_stream(
            dir.path(),
            "s/[1]b",
            &(0..30u64)
                .map(|i| {
                    (
                        100 + i,
                        format!("other {i} {}", "o".repeat(i as usize * 9_000)),
                    )
                })
                .collect::<Vec<_>>(),
        );
        let mut want: Vec<_> = events
            .iter()
            .map(|(t, m)| (*t, "s/[1]a".to_string(), m.clone()))
            .collect();
        want.extend((0..30u64).map(|i| {
            (
                100 + i,
                "s/[1]b".to_string(),
                format!("other {i} {}", "o".repeat(i as usize * 9_000)),
            )
        }));
        want.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for limit in [3, 10, MAX_PAGE_EVENTS] {
            let (got, pages) = all_pages(dir.path(), 0, limit);
            assert_eq!(got.len(), want.len(), "limit {limit}");
            assert!(got == want, "limit {limit}");
            assert!(pages > 2, "limit {limit}: {pages} pages");
        }
    }

    #[test]
    fn one_event_larger_than_a_page_still_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let big = "y".repeat(MAX_PAGE_BYTES + 10);
        write_stream(
            dir.path(),
            "s/[1]a",
            &[(1, big.clone()), (2, big.clone()), (3, "small".into())],
        );
        let (got, pages) = all_pages(dir.path(), 0, 100);
        assert_eq!(pages, 3);
        assert_eq!(got.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(got[1].2, big);
    }

    #[test]
    fn unfinished_lines_and_bad_tokens() {
        let dir = tempfile::tempdir().unwrap();
        write_stream(dir.path(), "s/[1]a", &[(1, "one".into())]);
        let fdir = function_dir(dir.path(), "123", "f").unwrap();
        let path = fdir.join(stream_file_name("s/[1]a"));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"2 half-writ").unwrap();
        let (got, _) = all_pages(dir.path(), 0, 10);
        assert_eq!(got.len(), 1);
        f.write_all(b"ten\n").unwrap();
        let (got, _) = all_pages(dir.path(), 0, 10);
        assert_eq!(got[1].2, "half-written");
        for bad in ["zz", "abc", "00", &hex_encode(b"1.2.../etc/passwd")] {
            assert!(matches!(
                read_logs_page(dir.path(), "123", "f", 0, Some(bad), 10),
                Err(EngineError::InvalidLogToken)
            ));
        }
        let page = read_logs_page(dir.path(), "123", "nobody", 0, None, 10).unwrap();
        assert!(page.events.is_empty() && page.next_token.is_none());
    }

    #[tokio::test]
    async fn pump_splits_lines_and_flushes_partial_ones() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let sink = Arc::new(LogSink::open(&path));
        let (r, w) = std::io::pipe().unwrap();
        let pump = Pump::spawn(OwnedFd::from(r), sink.clone()).unwrap();
        let mut w = std::fs::File::from(OwnedFd::from(w));
        w.write_all(b"one\ntwo\nthr").unwrap();
        // A flush right after the write sees the bytes, whether or not the pump task ran.
        flush(std::slice::from_ref(&pump));
        let text = std::fs::read_to_string(&path).unwrap();
        let msgs: Vec<_> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        assert_eq!(msgs, ["one", "two", "thr"]);
        w.write_all(b"ee\n").unwrap();
        drop(w);
        wait_eof(std::slice::from_ref(&pump), Duration::from_secs(2)).await;
        assert!(pump.finished());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.lines().last().unwrap().ends_with(" ee"));
    }
}
