//! The node's write allowance for logs: how many more bytes writers may append before the
//! sweeper has made room again.
//!
//! The sweeper measures what is on disk and grants the difference to the cap; every writer
//! (the engine's log sinks) takes its bytes from the grant before it writes. A writer that finds
//! the grant spent drops what it was about to write, counts it, and wakes the sweeper, so a
//! function that logs gigabytes loses lines instead of filling the disk, and never waits: the
//! pump that drains its pipe goes on reading. One allowance per process, because the sinks of
//! every pool share it and the engine creates them far from where the node is configured.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The process-wide allowance (see the module documentation).
pub struct WriteBudget {
    /// Off until a cap is set: then every write is allowed.
    enabled: AtomicBool,
    /// Bytes writers may still append.
    allowance: AtomicI64,
    dropped_lines: AtomicU64,
    dropped_bytes: AtomicU64,
    /// Set by a writer that found the allowance spent; the sweeper waits on it.
    wake: Mutex<bool>,
    wake_cv: Condvar,
}

static BUDGET: WriteBudget = WriteBudget {
    enabled: AtomicBool::new(false),
    allowance: AtomicI64::new(0),
    dropped_lines: AtomicU64::new(0),
    dropped_bytes: AtomicU64::new(0),
    wake: Mutex::new(false),
    wake_cv: Condvar::new(),
};

/// The process's allowance.
pub fn budget() -> &'static WriteBudget {
    &BUDGET
}

impl WriteBudget {
    /// Takes `bytes` (`lines` events) from the allowance; `false` when they must be dropped
    /// (they are counted then).
    pub fn take(&self, bytes: u64, lines: u64) -> bool {
        if !self.enabled.load(Ordering::Relaxed) {
            return true;
        }
        let b = i64::try_from(bytes).unwrap_or(i64::MAX);
        if self.allowance.fetch_sub(b, Ordering::Relaxed) >= b {
            return true;
        }
        self.allowance.fetch_add(b, Ordering::Relaxed);
        self.dropped_lines.fetch_add(lines, Ordering::Relaxed);
        self.dropped_bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut w = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        *w = true;
        self.wake_cv.notify_one();
        false
    }

    /// The sweeper's grant: writers may append `bytes` more from now on.
    pub fn grant(&self, bytes: u64) {
        self.allowance
            .store(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::Relaxed);
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Waits until a writer runs short or `timeout` passes.
    pub fn wait_for_shortage(&self, timeout: Duration) {
        let w = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        let (mut w, _) = self
            .wake_cv
            .wait_timeout_while(w, timeout, |woken| !*woken)
            .unwrap_or_else(|p| p.into_inner());
        *w = false;
    }

    /// Lines writers dropped because the node's logs were at their cap, since start.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines.load(Ordering::Relaxed)
    }

    /// Bytes writers dropped, since start.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes.load(Ordering::Relaxed)
    }
}
