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

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
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

struct SinkState {
    file: Option<File>,
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
        if let Some(f) = self.file.as_mut()
            && let Err(e) = f.write_all(&self.pending)
        {
            tracing::warn!("cannot write log stream: {e}");
            self.file = None;
        }
        self.pending.clear();
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
}

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
                pending: Vec::new(),
                capture: None,
                runtime_note: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends events, all stamped now.
    pub(crate) fn write_lines<'a>(&self, lines: impl IntoIterator<Item = &'a [u8]>) {
        let ts = epoch_ms(SystemTime::now());
        let mut st = self.lock();
        for line in lines {
            st.append(ts, |out| out.0.extend_from_slice(line));
        }
        st.flush();
    }

    /// Appends one platform line.
    pub(crate) fn platform(&self, line: &str) {
        self.write_lines([line.as_bytes()]);
    }

    /// Holds back `START RequestId: <id> Version: <version>` until the next write.
    pub(crate) fn start(&self, request_id: &str, version: &str) {
        let ts = epoch_ms(SystemTime::now());
        self.lock().append(ts, |out| {
            let _ = write!(out, "START RequestId: {request_id} Version: {version}");
        });
    }

    /// Appends `END RequestId: <id>` and the `REPORT` line, in one write.
    pub(crate) fn end_and_report(&self, r: &Report<'_>) {
        let ts = epoch_ms(SystemTime::now());
        let mut st = self.lock();
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

/// Log events of a function at or after `since_ms`, oldest first (events of the same millisecond
/// keep their order within a stream).
pub fn read_logs(
    logs_dir: &Path,
    account_id: &str,
    function_name: &str,
    since_ms: u64,
) -> Result<Vec<LogEvent>, EngineError> {
    let dir = function_dir(logs_dir, account_id, function_name)?;
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EngineError::ReadLogs(dir, e)),
    };
    let mut events = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::ReadLogs(dir.clone(), e))?;
        let name = entry.file_name();
        let Some(stream) = name.to_str().and_then(stream_name_from_file) else {
            continue;
        };
        let path = entry.path();
        let data = std::fs::read(&path).map_err(|e| EngineError::ReadLogs(path.clone(), e))?;
        parse_stream(&data, &stream, since_ms, &mut events);
    }
    events.sort_by_key(|e| e.timestamp_ms);
    Ok(events)
}

/// Parses the events of one stream file into `out`.
pub(crate) fn parse_stream(data: &[u8], stream: &str, since_ms: u64, out: &mut Vec<LogEvent>) {
    for line in data.split(|&b| b == b'\n') {
        let Some(space) = line.iter().position(|&b| b == b' ') else {
            continue;
        };
        let Some(ts) = std::str::from_utf8(&line[..space])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if ts < since_ms {
            continue;
        }
        out.push(LogEvent {
            timestamp_ms: ts,
            stream: stream.to_string(),
            message: String::from_utf8_lossy(&line[space + 1..]).into_owned(),
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
