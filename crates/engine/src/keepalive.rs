//! Adaptive keep-alive: how long an idle function's environments stay warm, learnt from the
//! function's own idle times.
//!
//! This is the *hybrid histogram policy* of Shahrad et al., "Serverless in the Wild" (USENIX ATC
//! 2020). For every function version the engine records each idle time: from the moment the
//! function becomes idle (no invocation in flight) to the arrival of its next invocation. The
//! times go into a histogram of `bins` bins of `bin` width, plus a count of times beyond its
//! range. When the function becomes idle, [`IdleHistogram::decide`] turns the histogram into two
//! windows:
//! - *pre-warm*: the 5th percentile of the idle times, rounded down to a bin edge, less 10 %.
//!   For that long after becoming idle the function is not expected back, so it holds no
//!   environment;
//! - *keep-alive*: the 99th percentile, rounded up to a bin edge, plus 10 %, less the pre-warm
//!   window. For that long after the pre-warm window one environment is kept ready.
//!
//! The histogram is trusted only when it says something: with fewer than [`MIN_SAMPLES`] samples,
//! when its bin counts are spread evenly (coefficient of variation below [`MIN_CV`], the paper's
//! test) or when most idle times fall beyond its range, the decision is the fixed keep-alive of
//! the engine's configuration (no pre-warm, `idle_timeout` of keep-alive). The paper predicts
//! out-of-range idle times with a time-series model instead; Updraft keeps the fixed policy
//! there, which is what it did before.
//!
//! One departure from the paper: a window without pre-warm (the function may come back at once)
//! keeps its environment no longer than the fixed keep-alive would. Such functions are the bursty
//! and sporadic ones whose 99th percentile is a long quiet period; keeping an environment through
//! each of them costs more idle memory than the cold starts it saves, and `idle_timeout` is the
//! operator's bound on how long an idle environment may hold memory. Functions that come back
//! only after a while (a pre-warm window) are where the policy saves both.
//!
//! Everything here is pure: time comes in as durations, nothing is started or stopped.

use std::time::Duration;

/// Idle times recorded before the histogram is trusted.
pub const MIN_SAMPLES: u64 = 5;
/// Coefficient of variation of the bin counts below which the histogram is not representative.
pub const MIN_CV: f64 = 2.0;
/// Percentile of the idle times that ends the pre-warm window.
const PREWARM_PERCENTILE: f64 = 0.05;
/// Percentile of the idle times that ends the keep-alive window.
const KEEP_PERCENTILE: f64 = 0.99;
/// Safety margin applied to both windows (pre-warm earlier, keep longer), in tenths: 10 %.
const MARGIN_TENTHS: u32 = 1;

/// How the engine decides how long idle environments stay warm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveMode {
    /// Every idle environment is stopped `idle_timeout` after its last invocation.
    Fixed,
    /// Per function version, from the histogram of its idle times (falling back to `Fixed`
    /// while the histogram says nothing useful).
    Adaptive,
}

/// The keep-alive setting of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAlive {
    pub mode: KeepAliveMode,
    /// Width of one histogram bin (the paper's is one minute).
    pub bin: Duration,
    /// Bins in the histogram; idle times beyond `bin × bins` are counted as out of range.
    pub bins: usize,
}

impl Default for KeepAlive {
    /// Adaptive keep-alive (on the replayed trace of `bench/keepalive.py` it halves the
    /// cold-start rate of the fixed policy and holds less idle memory); the histogram shape of the
    /// paper (240 one-minute bins, four hours).
    fn default() -> Self {
        KeepAlive {
            mode: KeepAliveMode::Adaptive,
            bin: Duration::from_secs(60),
            bins: 240,
        }
    }
}

/// What to do with a function once it becomes idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// How long after becoming idle the function holds no environment (0: keep the ones it has).
    pub prewarm: Duration,
    /// How long after the pre-warm window an environment is kept ready.
    pub keep_alive: Duration,
    /// Whether this is the fixed keep-alive because the histogram was not trusted.
    pub fallback: bool,
}

impl Decision {
    /// The fixed policy: keep what is there for `idle_timeout`.
    pub fn fixed(idle_timeout: Duration) -> Decision {
        Decision {
            prewarm: Duration::ZERO,
            keep_alive: idle_timeout,
            fallback: true,
        }
    }
}

/// Idle times of one function version.
#[derive(Debug, Clone)]
pub struct IdleHistogram {
    bin: Duration,
    counts: Vec<u64>,
    out_of_range: u64,
    total: u64,
}

impl IdleHistogram {
    /// An empty histogram of `bins` bins of `bin` width (a zero width or count is taken as 1 ms
    /// or 1 bin, so that every idle time has a place).
    pub fn new(bin: Duration, bins: usize) -> IdleHistogram {
        IdleHistogram {
            bin: bin.max(Duration::from_millis(1)),
            counts: vec![0; bins.max(1)],
            out_of_range: 0,
            total: 0,
        }
    }

    /// Records one idle time.
    pub fn record(&mut self, idle: Duration) {
        let i = (idle.as_nanos() / self.bin.as_nanos()) as usize;
        match self.counts.get_mut(i) {
            Some(c) => *c += 1,
            None => self.out_of_range += 1,
        }
        self.total += 1;
    }

    /// Idle times recorded, in range or not.
    pub fn samples(&self) -> u64 {
        self.total
    }

    /// Idle times longer than the histogram's range.
    pub fn out_of_range(&self) -> u64 {
        self.out_of_range
    }

    /// Coefficient of variation (standard deviation over mean) of the in-range bin counts; 0 for
    /// an empty histogram.
    pub fn cv(&self) -> f64 {
        let n = self.counts.len() as f64;
        let sum: u64 = self.counts.iter().sum();
        if sum == 0 {
            return 0.0;
        }
        let mean = sum as f64 / n;
        let var = self
            .counts
            .iter()
            .map(|&c| (c as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        var.sqrt() / mean
    }

    /// Whether the windows may be taken from this histogram (see the module's documentation).
    pub fn representative(&self) -> bool {
        self.total >= MIN_SAMPLES && self.out_of_range * 2 < self.total && self.cv() >= MIN_CV
    }

    /// The bin holding the `q`-quantile of all idle times; `None` when it lies beyond the range.
    fn quantile_bin(&self, q: f64) -> Option<usize> {
        // The smallest bin whose cumulative count reaches q of all samples (out-of-range ones
        // count as larger than every bin).
        let want = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(i);
            }
        }
        None
    }

    /// The windows for a function that just became idle; `idle_timeout` is the fixed keep-alive
    /// used when the histogram is not trusted.
    pub fn decide(&self, idle_timeout: Duration) -> Decision {
        if !self.representative() {
            return Decision::fixed(idle_timeout);
        }
        let range = self.bin * self.counts.len() as u32;
        let head = self
            .quantile_bin(PREWARM_PERCENTILE)
            .map_or(range, |i| self.bin * i as u32);
        let tail = self
            .quantile_bin(KEEP_PERCENTILE)
            .map_or(range, |i| self.bin * (i as u32 + 1));
        // Integer arithmetic on nanoseconds, so that bin edges give exact windows.
        let prewarm = head * (10 - MARGIN_TENTHS) / 10;
        let end = tail * (10 + MARGIN_TENTHS) / 10;
        let mut keep_alive = end.saturating_sub(prewarm);
        if prewarm.is_zero() {
            keep_alive = keep_alive.min(idle_timeout);
        }
        Decision {
            prewarm,
            keep_alive,
            fallback: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn hist_of(bin_ms: u64, bins: usize, idle_ms: &[u64]) -> IdleHistogram {
        let mut h = IdleHistogram::new(MS * bin_ms as u32, bins);
        for &t in idle_ms {
            h.record(MS * t as u32);
        }
        h
    }

    #[test]
    fn idle_times_land_in_their_bins_and_beyond_the_range() {
        let h = hist_of(100, 10, &[0, 99, 100, 999, 1000, 5000]);
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[9], 1);
        assert_eq!(h.out_of_range(), 2);
        assert_eq!(h.samples(), 6);
    }

    #[test]
    fn too_few_samples_fall_back_to_the_fixed_keep_alive() {
        let h = hist_of(100, 240, &[1000, 1000, 1000, 1000]);
        assert!(!h.representative());
        assert_eq!(
            h.decide(Duration::from_secs(7)),
            Decision::fixed(Duration::from_secs(7))
        );
        let h = hist_of(100, 240, &[1000; 5]);
        assert!(h.representative());
        assert!(!h.decide(Duration::from_secs(7)).fallback);
    }

    #[test]
    fn a_regular_period_gives_a_prewarm_and_a_short_keep_alive() {
        // Idle 1.0–1.09 s every time: bin 10 (1.0–1.1 s) with 100 ms bins.
        let h = hist_of(100, 240, &[1000, 1020, 1050, 1090, 1010, 1030, 1070, 1000]);
        let d = h.decide(Duration::from_secs(60));
        assert!(!d.fallback);
        // p5 = bin 10 → 1.0 s, less 10 %.
        assert_eq!(d.prewarm, Duration::from_millis(900));
        // p99 = bin 10 → rounded up to 1.1 s, plus 10 % = 1.21 s, less the pre-warm.
        assert_eq!(d.keep_alive, Duration::from_millis(1210 - 900));
    }

    #[test]
    fn back_to_back_calls_keep_the_environment_without_prewarm() {
        let mut idle = vec![5u64; 50];
        idle.extend([250, 260]);
        let h = hist_of(100, 240, &idle);
        let d = h.decide(Duration::from_secs(60));
        assert!(!d.fallback);
        assert_eq!(d.prewarm, Duration::ZERO);
        // p99 of 52 samples is the 52nd: bin 2 → 300 ms, + 10 %.
        assert_eq!(d.keep_alive, Duration::from_millis(330));
    }

    #[test]
    fn evenly_spread_idle_times_are_not_representative() {
        // One sample in every bin: CV 0.
        let idle: Vec<u64> = (0..240).map(|i| i * 100 + 50).collect();
        let h = hist_of(100, 240, &idle);
        assert!(h.cv() < 1e-9);
        assert!(h.decide(Duration::from_secs(3)).fallback);
        // Two peaks far apart: representative, and the windows span both.
        let mut idle = vec![500u64; 10];
        idle.extend([20_000; 10]);
        let h = hist_of(100, 240, &idle);
        assert!(h.cv() >= MIN_CV, "cv {}", h.cv());
        let d = h.decide(Duration::from_secs(3));
        assert_eq!(d.prewarm, Duration::from_millis(450));
        assert_eq!(d.keep_alive, Duration::from_millis(20_100 * 11 / 10 - 450));
    }

    #[test]
    fn without_prewarm_the_keep_alive_is_at_most_the_fixed_one() {
        // Bursts with quiet periods of about 20 s in between: the 99th percentile is a quiet
        // period, but the function may come back at once, so the fixed keep-alive bounds it.
        let mut idle = vec![50u64; 40];
        idle.extend([19_000, 20_000, 21_000]);
        let h = hist_of(100, 240, &idle);
        let d = h.decide(Duration::from_secs(1));
        assert!(!d.fallback);
        assert_eq!(d.prewarm, Duration::ZERO);
        assert_eq!(d.keep_alive, Duration::from_secs(1));
        // With a pre-warm window the keep-alive window is the policy's own.
        let mut idle = vec![2_000u64; 40];
        idle.extend([4_000, 4_000]);
        let d = hist_of(100, 240, &idle).decide(Duration::from_secs(1));
        assert_eq!(d.prewarm, Duration::from_millis(1800));
        assert_eq!(d.keep_alive, Duration::from_millis(4100 * 11 / 10 - 1800));
    }

    #[test]
    fn mostly_out_of_range_falls_back() {
        let h = hist_of(100, 10, &[5000, 6000, 7000, 50, 50, 50]);
        assert_eq!(h.out_of_range(), 3);
        assert!(!h.representative());
        assert!(h.decide(Duration::from_secs(1)).fallback);
        // A minority beyond the range: the keep-alive runs to the end of the range.
        let h = hist_of(100, 10, &[5000, 50, 50, 50, 50, 50, 50, 50]);
        let d = h.decide(Duration::from_secs(2));
        assert!(!d.fallback);
        assert_eq!(d.prewarm, Duration::ZERO);
        assert_eq!(d.keep_alive, Duration::from_millis(1100));
    }

    #[test]
    fn cv_of_one_peak_grows_with_the_bin_count() {
        let h = hist_of(100, 240, &[150; 20]);
        assert!((h.cv() - 239f64.sqrt()).abs() < 1e-6);
        assert_eq!(hist_of(100, 240, &[]).cv(), 0.0);
    }

    #[test]
    fn degenerate_shapes_are_usable() {
        let mut h = IdleHistogram::new(Duration::ZERO, 0);
        h.record(Duration::ZERO);
        h.record(Duration::from_secs(1));
        assert_eq!(h.samples(), 2);
        assert_eq!(h.out_of_range(), 1);
    }
}
