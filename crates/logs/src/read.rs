//! Reading stream files: one event per line, `<epoch ms> <message>\n`, appended in (nearly)
//! timestamp order. Starts are found by bisection on the timestamps, so a read touches the part of
//! a file it returns, never the whole file.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

/// How far out of order timestamps within one stream may be (the engine's stdout and stderr
/// pumps stamp lines before they take the stream's lock).
pub const ORDER_SLACK_MS: u64 = 1_000;

/// One event read from a stream file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// Byte offset of the event's line in its file.
    pub offset: u64,
    /// Byte offset just past the line.
    pub end: u64,
    pub ts: u64,
    pub message: String,
}

/// `<epoch ms> <message>`; `None` for a line that is not an event.
pub fn parse_line(line: &[u8]) -> Option<(u64, &[u8])> {
    let space = line.iter().position(|&b| b == b' ')?;
    let ts = std::str::from_utf8(&line[..space]).ok()?.parse().ok()?;
    Some((ts, &line[space + 1..]))
}

/// The first line start at or after `at`.
fn next_line_start(file: &File, at: u64, len: u64) -> std::io::Result<u64> {
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
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, at)?;
    Ok(parse_line(&buf[..n]).map(|(ts, _)| ts))
}

/// A line start such that every line before it is stamped before `target` (bisection; lines
/// that are not events keep the earlier bound, so the answer never skips an event it should
/// include).
pub fn seek_time(file: &File, len: u64, target: u64) -> std::io::Result<u64> {
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

/// The position of the last `\n` before `before`, if any.
fn rfind_newline(file: &File, before: u64) -> std::io::Result<Option<u64>> {
    let mut end = before;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let from = end.saturating_sub(buf.len() as u64);
        let n = (end - from) as usize;
        file.read_exact_at(&mut buf[..n], from)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(Some(from + i as u64));
        }
        end = from;
    }
    Ok(None)
}

/// The timestamps of the first and the last complete event of a file.
pub fn first_last(file: &File, len: u64) -> std::io::Result<(Option<u64>, Option<u64>)> {
    let Some(last_nl) = rfind_newline(file, len)? else {
        return Ok((None, None));
    };
    let first = line_time(file, 0)?;
    let start = rfind_newline(file, last_nl)?.map_or(0, |p| p + 1);
    Ok((first, line_time(file, start)?))
}

/// Reads the events of lines starting in `[from, to)`, calling `each` for every one; `each`
/// returns `false` to stop. A line without its newline is still being written and is left for
/// a later read.
pub fn scan(
    file: &File,
    from: u64,
    to: u64,
    mut each: impl FnMut(RawEvent) -> bool,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    reader.seek(SeekFrom::Start(from))?;
    let mut offset = from;
    let mut line = Vec::with_capacity(256);
    while offset < to {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        let at = offset;
        offset += n as u64;
        let Some((ts, message)) = parse_line(&line[..n - 1]) else {
            continue;
        };
        let ev = RawEvent {
            offset: at,
            end: offset,
            ts,
            message: String::from_utf8_lossy(message).into_owned(),
        };
        if !each(ev) {
            return Ok(());
        }
    }
    Ok(())
}

/// Like [`scan`], but hands out raw bytes and lets the caller decide before a `String` is made:
/// `keep(offset, ts, message)` is asked first, and only events it keeps are built. The filter path's
/// inner loop: most lines of a large log are rejected here without an allocation.
pub fn scan_filtered(
    file: &File,
    from: u64,
    mut keep: impl FnMut(u64, u64, &[u8]) -> Step,
    mut each: impl FnMut(RawEvent) -> bool,
) -> std::io::Result<()> {
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    reader.seek(SeekFrom::Start(from))?;
    let mut offset = from;
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        let at = offset;
        offset += n as u64;
        let Some((ts, message)) = parse_line(&line[..n - 1]) else {
            continue;
        };
        match keep(at, ts, message) {
            Step::Skip => continue,
            Step::Stop => return Ok(()),
            Step::Take => {}
        }
        let ev = RawEvent {
            offset: at,
            end: offset,
            ts,
            message: String::from_utf8_lossy(message).into_owned(),
        };
        if !each(ev) {
            return Ok(());
        }
    }
}

/// What [`scan_filtered`] does with one line.
pub enum Step {
    Take,
    Skip,
    Stop,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(lines: &str) -> (tempfile::NamedTempFile, File) {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        t.write_all(lines.as_bytes()).unwrap();
        let f = File::open(t.path()).unwrap();
        (t, f)
    }

    #[test]
    fn first_and_last_events() {
        let (_t, f) = file_with("10 a\n20 b\n30 c\n40 unfinished");
        let len = f.metadata().unwrap().len();
        assert_eq!(first_last(&f, len).unwrap(), (Some(10), Some(30)));
        let (_t, f) = file_with("10 only\n");
        assert_eq!(first_last(&f, 8).unwrap(), (Some(10), Some(10)));
        let long = format!("1 {}\n2 {}\n", "x".repeat(10_000), "y".repeat(10_000));
        let (_t, f) = file_with(&long);
        assert_eq!(
            first_last(&f, long.len() as u64).unwrap(),
            (Some(1), Some(2))
        );
    }

    #[test]
    fn bisection_finds_a_start_before_the_target() {
        let text: String = (0..100_000u64)
            .map(|i| format!("{} line {i}\n", 1000 + i))
            .collect();
        let (_t, f) = file_with(&text);
        let len = text.len() as u64;
        let at = seek_time(&f, len, 1000 + 90_000).unwrap();
        assert!(at > len / 2);
        let mut first = None;
        scan(&f, at, len, |e| {
            if e.ts >= 1000 + 90_000 {
                first = Some(e.ts);
                return false;
            }
            true
        })
        .unwrap();
        assert_eq!(first, Some(1000 + 90_000));
    }
}
