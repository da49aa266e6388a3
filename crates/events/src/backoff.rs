//! When a failed attempt is tried again: pure functions of the node's settings, the attempt
//! history and the clock, so they are tested without waiting.
//!
//! Lambda retries a function error or timeout about one minute, then two minutes later; it
//! retries throttles and system errors with exponential backoff until the event's maximum age.
//! The intervals are node settings so tests (and impatient operators) can shorten them.

use std::time::Duration;

/// The node's retry intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Retry `k` after a function error waits `k` × this (Lambda: about 1 min, then 2 min).
    pub retry_interval: Duration,
    /// First wait after a throttle or system error; doubled after each further one.
    pub throttle_initial: Duration,
    /// Longest wait after a throttle or system error.
    pub throttle_max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            retry_interval: Duration::from_secs(60),
            throttle_initial: Duration::from_secs(1),
            throttle_max: Duration::from_secs(300),
        }
    }
}

/// What to do after an attempt that did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this time (ms since the epoch).
    RetryAt(i64),
    /// Out of retries for function errors.
    RetriesExhausted,
    /// The event would be older than its maximum age before it could run again.
    EventAgeExceeded,
}

impl Backoff {
    /// After a function error: `failures` function errors so far (this one included).
    pub fn after_function_error(
        &self,
        failures: u32,
        max_retries: u32,
        now_ms: i64,
        expires_ms: i64,
    ) -> Next {
        if failures > max_retries {
            return Next::RetriesExhausted;
        }
        let at = now_ms.saturating_add(ms(self.retry_interval).saturating_mul(failures as i64));
        if at >= expires_ms {
            return Next::EventAgeExceeded;
        }
        Next::RetryAt(at)
    }

    /// After a throttle or system error: `throttles` of them so far (this one included). The
    /// last retry lands on the expiry itself, so an event is tried until its age runs out and
    /// no later.
    pub fn after_throttle(&self, throttles: u32, now_ms: i64, expires_ms: i64) -> Next {
        if now_ms >= expires_ms {
            return Next::EventAgeExceeded;
        }
        let shift = throttles.saturating_sub(1).min(30);
        let wait = ms(self.throttle_initial)
            .saturating_mul(1i64 << shift)
            .min(ms(self.throttle_max));
        Next::RetryAt(now_ms.saturating_add(wait).min(expires_ms))
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn function_errors_wait_one_then_two_minutes() {
        let b = Backoff::default();
        assert_eq!(
            b.after_function_error(1, 2, 0, 6 * HOUR),
            Next::RetryAt(60_000)
        );
        assert_eq!(
            b.after_function_error(2, 2, 0, 6 * HOUR),
            Next::RetryAt(120_000)
        );
        assert_eq!(
            b.after_function_error(3, 2, 0, 6 * HOUR),
            Next::RetriesExhausted
        );
        assert_eq!(
            b.after_function_error(1, 0, 0, 6 * HOUR),
            Next::RetriesExhausted
        );
    }

    #[test]
    fn a_retry_past_the_maximum_age_is_not_scheduled() {
        let b = Backoff::default();
        assert_eq!(
            b.after_function_error(1, 2, 0, 59_999),
            Next::EventAgeExceeded
        );
        assert_eq!(
            b.after_function_error(1, 2, 0, 60_001),
            Next::RetryAt(60_000)
        );
    }

    #[test]
    fn throttles_back_off_exponentially_up_to_the_cap_and_the_expiry() {
        let b = Backoff {
            retry_interval: Duration::from_secs(60),
            throttle_initial: Duration::from_millis(100),
            throttle_max: Duration::from_millis(1_000),
        };
        let waits: Vec<i64> = (1..=6)
            .map(|n| match b.after_throttle(n, 0, HOUR) {
                Next::RetryAt(t) => t,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1_000, 1_000]);
        // Never past the expiry; at or after it, the event is given up.
        assert_eq!(b.after_throttle(5, 10_000, 10_300), Next::RetryAt(10_300));
        assert_eq!(b.after_throttle(5, 10_300, 10_300), Next::EventAgeExceeded);
        // A huge count does not overflow.
        assert_eq!(b.after_throttle(u32::MAX, 0, HOUR), Next::RetryAt(1_000));
    }
}
