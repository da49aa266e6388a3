//! Freezing environments between invocations, as Lambda does: once the runtime has asked for
//! its next event, no code of the function runs (background threads, timers) until an event is
//! handed over again, when the environment is thawed.
//!
//! An idle environment is *parked*; after the grace period (0 by default) it is frozen unless
//! it was taken again meanwhile. Taking it *wakes* it: a thaw only when it really was frozen, so
//! a warm invocation arriving within the grace period costs no cgroup write at all. Freeze and
//! thaw are one `write(2)` each on a file the sandbox keeps open; the kernel completes a freeze
//! asynchronously. Killing a frozen environment works (the sandbox thaws after signalling).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::launcher::Sandboxed;

/// Longest accepted grace period before an idle environment is frozen: long enough to bridge
/// the gaps of a busy closed-loop client, short enough that an idle node is really idle.
pub const MAX_FREEZE_GRACE: Duration = Duration::from_millis(1000);

/// How environments live between invocations (operator settings of `updraft serve`).
#[derive(Debug, Clone, Copy)]
pub struct LifecycleOptions {
    /// Freeze environments between invocations (and provisioned ones after their init).
    pub freeze: bool,
    /// How long an idle environment keeps running before it is frozen (at most
    /// [`MAX_FREEZE_GRACE`]).
    pub freeze_grace: Duration,
    /// Lambda's hard CPU ceiling (MemorySize / 1,769 of a core) on top of the proportional
    /// weight every environment gets.
    pub cpu_ceiling: bool,
}

impl Default for LifecycleOptions {
    fn default() -> Self {
        LifecycleOptions {
            freeze: true,
            freeze_grace: Duration::ZERO,
            cpu_ceiling: false,
        }
    }
}

/// The freezing state of one environment, shared by whoever owns the environment and the
/// timer that freezes it after its grace period.
pub(crate) struct FreezeCtl {
    sandbox: Arc<dyn Sandboxed>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Counts parkings and wakings, so that a timer of an earlier parking does nothing.
    epoch: u64,
    idle: bool,
    frozen: bool,
}

impl FreezeCtl {
    pub(crate) fn new(sandbox: Arc<dyn Sandboxed>) -> Arc<FreezeCtl> {
        Arc::new(FreezeCtl {
            sandbox,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The runtime (and every extension) waits for its next event: the environment may be
    /// frozen. Returns the ticket [`FreezeCtl::freeze_if_parked`] needs.
    pub(crate) fn park(&self) -> u64 {
        let mut st = self.lock();
        st.epoch += 1;
        st.idle = true;
        st.epoch
    }

    /// Freezes the environment if it is still parked under `ticket`; returns whether it is
    /// frozen now.
    pub(crate) fn freeze_if_parked(&self, ticket: u64) -> bool {
        let mut st = self.lock();
        if st.idle && st.epoch == ticket && !st.frozen {
            st.frozen = self.sandbox.freeze();
        }
        st.frozen
    }

    /// An event is about to be handed over: thaw if frozen, and cancel a pending freeze.
    pub(crate) fn wake(&self) {
        let mut st = self.lock();
        st.epoch += 1;
        st.idle = false;
        if std::mem::take(&mut st.frozen) {
            self.sandbox.thaw();
        }
    }

    /// Whether the environment is frozen right now.
    #[cfg(test)]
    pub(crate) fn is_frozen(&self) -> bool {
        self.lock().frozen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts freezes and thaws instead of touching a cgroup.
    #[derive(Default)]
    struct Counting {
        freezes: AtomicUsize,
        thaws: AtomicUsize,
    }

    impl Sandboxed for Counting {
        fn take_runtime_api_listener(&mut self) -> Option<std::net::TcpListener> {
            None
        }
        fn take_runtime_api_unix_listener(&mut self) -> Option<std::os::unix::net::UnixListener> {
            None
        }
        fn take_stdout(&mut self) -> Option<std::os::fd::OwnedFd> {
            None
        }
        fn take_stderr(&mut self) -> Option<std::os::fd::OwnedFd> {
            None
        }
        fn kill(&self) {}
        fn wait(&self) -> updraft_sandbox::ExitInfo {
            updraft_sandbox::ExitInfo {
                code: Some(0),
                signal: None,
            }
        }
        fn memory_peak_bytes(&self) -> Option<u64> {
            None
        }
        fn memory_current_bytes(&self) -> Option<u64> {
            None
        }
        fn oom_killed(&self) -> bool {
            false
        }
        fn freeze(&self) -> bool {
            self.freezes.fetch_add(1, Ordering::SeqCst);
            true
        }
        fn thaw(&self) {
            self.thaws.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_parked_environment_freezes_and_thaws_once() {
        let sb = Arc::new(Counting::default());
        let ctl = FreezeCtl::new(sb.clone());
        let t = ctl.park();
        assert!(ctl.freeze_if_parked(t));
        assert!(
            ctl.freeze_if_parked(t),
            "a second timer does not freeze again"
        );
        assert_eq!(sb.freezes.load(Ordering::SeqCst), 1);
        ctl.wake();
        ctl.wake();
        assert_eq!(sb.thaws.load(Ordering::SeqCst), 1);
        assert!(!ctl.is_frozen());
    }

    #[test]
    fn taking_it_within_the_grace_period_costs_nothing() {
        let sb = Arc::new(Counting::default());
        let ctl = FreezeCtl::new(sb.clone());
        let stale = ctl.park();
        ctl.wake();
        assert!(
            !ctl.freeze_if_parked(stale),
            "the earlier parking's timer is void"
        );
        let again = ctl.park();
        assert!(!ctl.freeze_if_parked(stale));
        assert!(ctl.freeze_if_parked(again));
        assert_eq!(sb.freezes.load(Ordering::SeqCst), 1);
        assert_eq!(sb.thaws.load(Ordering::SeqCst), 0);
    }
}
