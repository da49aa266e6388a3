//! The sweeper: removes streams whose group's retention has ended, and keeps the node's logs
//! under `--logs-max-mb` by removing the oldest streams first, counting what it drops.
//!
//! It works on whole stream files. The engine starts a new stream file for an environment once
//! its current one passes a segment size, so even a function that logs without pause leaves
//! closed, removable files behind it; the file being written is the newest and is removed last.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use crate::read;
use crate::store::{LogStore, now_ms, stream_files};

/// What one sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub expired_files: u64,
    pub capped_files: u64,
    pub capped_bytes: u64,
}

/// Counts the events (lines) of a file, for the drop counters.
fn count_lines(path: &std::path::Path) -> u64 {
    let Ok(mut f) = File::open(path) else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    while let Ok(k) = f.read(&mut buf) {
        if k == 0 {
            break;
        }
        n += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    n
}

impl LogStore {
    /// One pass: retention first, then the cap.
    pub fn sweep(&self) -> Swept {
        let mut swept = Swept::default();
        let now = now_ms();
        let mut all: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        for account in self.accounts() {
            let Ok(groups) = std::fs::read_dir(&account) else {
                continue;
            };
            for g in groups.flatten() {
                let dir = g.path();
                if !dir.is_dir() {
                    continue;
                }
                let cutoff = LogStore::meta_of(&dir)
                    .retention_days
                    .map(|d| now.saturating_sub(u64::from(d) * 86_400_000));
                for (_, path) in stream_files(&dir) {
                    let Ok(f) = File::open(&path) else { continue };
                    let Ok(m) = f.metadata() else { continue };
                    if let Some(cut) = cutoff {
                        // Expired when its newest event is older than the retention period.
                        let last = read::first_last(&f, m.len()).ok().and_then(|fl| fl.1);
                        let modified = m
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_millis() as u64);
                        let newest = last.unwrap_or(modified);
                        if newest < cut && m.len() > 0 {
                            let lines = count_lines(&path);
                            if std::fs::remove_file(&path).is_ok() {
                                swept.expired_files += 1;
                                self.drops()
                                    .expired_events
                                    .fetch_add(lines, Ordering::Relaxed);
                            }
                            continue;
                        }
                    }
                    all.push((
                        m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        m.len(),
                        path,
                    ));
                }
            }
        }
        let max = self.max_bytes();
        let mut total: u64 = all.iter().map(|f| f.1).sum();
        let granted = |total: u64| {
            if max > 0 {
                crate::budget::budget().grant(max.saturating_sub(total));
            }
        };
        // Down to 90 % of the cap: writers are granted the rest, so the node never holds more
        // than the cap, and room for new lines is made by removing old ones.
        let target = max / 10 * 9;
        if max > 0 && total > target {
            all.sort_by_key(|a| a.0);
            for (_, len, path) in all {
                if total <= target {
                    break;
                }
                let lines = count_lines(&path);
                if std::fs::remove_file(&path).is_ok() {
                    total -= len;
                    swept.capped_files += 1;
                    swept.capped_bytes += len;
                    self.drops().cap_events.fetch_add(lines, Ordering::Relaxed);
                    self.drops().cap_bytes.fetch_add(len, Ordering::Relaxed);
                }
            }
            tracing::warn!(
                dropped_lines = crate::budget::budget().dropped_lines(),
                removed_files = swept.capped_files,
                removed_bytes = swept.capped_bytes,
                cap_bytes = max,
                "logs over the node's cap: removed the oldest streams"
            );
        }
        granted(total);
        swept
    }
}

/// Runs [`LogStore::sweep`] at once, then every `every` (or sooner when writers run out of
/// allowance) on a thread of its own, until the store is dropped.
pub fn spawn(
    store: &Arc<LogStore>,
    every: Duration,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let weak: Weak<LogStore> = Arc::downgrade(store);
    std::thread::Builder::new()
        .name("logs-sweeper".into())
        .spawn(move || {
            loop {
                {
                    let Some(store) = weak.upgrade() else { return };
                    store.sweep();
                }
                // A writer that runs out of allowance wakes the sweeper before its time.
                crate::budget::budget().wait_for_shortage(every);
            }
        })
}
