//! The metric store: per account, namespace, metric name and dimension set, statistic sets
//! (count, sum, minimum, maximum) per minute, or per second for high-resolution data.
//!
//! It lives in memory. It is made durable without a store of its own: the `AWS/Lambda`
//! namespace is recomputed at start from the usage records in `usage.db` (the same records
//! that built it), and `PutMetricData` points are written to `usage.db`'s `metric_data` table
//! before they are acknowledged and loaded back at start. Points older than
//! [`RETENTION_SECS`] are dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use updraft_engine::{UsageOutcome, UsageRecord};

/// How long points are kept (CloudWatch keeps 1-minute data for 15 days).
pub const RETENTION_SECS: i64 = 15 * 86_400;

/// Count, sum, minimum and maximum of the values in one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatSet {
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl StatSet {
    pub fn one(v: f64) -> Self {
        Self {
            count: 1.0,
            sum: v,
            min: v,
            max: v,
        }
    }

    pub fn merge(&mut self, o: &StatSet) {
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// One of CloudWatch's statistics (`Sum`, `Average`, ...); `None` for an unknown one.
    pub fn stat(&self, name: &str) -> Option<f64> {
        Some(match name {
            "SampleCount" => self.count,
            "Sum" => self.sum,
            "Minimum" => self.min,
            "Maximum" => self.max,
            "Average" => {
                if self.count == 0.0 {
                    0.0
                } else {
                    self.sum / self.count
                }
            }
            _ => return None,
        })
    }
}

/// A metric's identity within an account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricId {
    pub namespace: String,
    pub name: String,
    /// Sorted by name (CloudWatch treats dimension sets as sets).
    pub dims: Vec<(String, String)>,
}

impl MetricId {
    pub fn new(namespace: &str, name: &str, mut dims: Vec<(String, String)>) -> Self {
        dims.sort();
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            dims,
        }
    }
}

#[derive(Debug, Default)]
struct Series {
    unit: Option<String>,
    /// Bucket start (epoch seconds) to its statistics.
    buckets: BTreeMap<i64, StatSet>,
    /// Newest point, for `ListMetrics`' `RecentlyActive`.
    last_seen: i64,
}

/// All metrics of the node.
#[derive(Default)]
pub struct MetricStore {
    inner: Mutex<HashMap<String, HashMap<MetricId, Series>>>,
}

impl MetricStore {
    /// Adds one statistic set at `ts` (epoch seconds); `high_res` keeps the second.
    pub fn add(
        &self,
        account: &str,
        id: MetricId,
        ts: i64,
        high_res: bool,
        unit: Option<&str>,
        s: StatSet,
    ) {
        let bucket = if high_res { ts } else { ts - ts.rem_euclid(60) };
        let mut all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let series = all
            .entry(account.to_string())
            .or_default()
            .entry(id)
            .or_default();
        if let Some(u) = unit
            && series.unit.is_none()
        {
            series.unit = Some(u.to_string());
        }
        series.last_seen = series.last_seen.max(ts);
        series
            .buckets
            .entry(bucket)
            .and_modify(|b| b.merge(&s))
            .or_insert(s);
    }

    /// The buckets of one metric between `start` (inclusive) and `end` (exclusive), with its unit.
    pub fn range(
        &self,
        account: &str,
        id: &MetricId,
        start: i64,
        end: i64,
    ) -> (Option<String>, Vec<(i64, StatSet)>) {
        let all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(series) = all.get(account).and_then(|m| m.get(id)) else {
            return (None, Vec::new());
        };
        let points = series
            .buckets
            .range(start..end)
            .map(|(t, s)| (*t, *s))
            .collect();
        (series.unit.clone(), points)
    }

    /// Every metric of `account` (with its newest point's time) that `keep` accepts.
    pub fn list(&self, account: &str, keep: impl Fn(&MetricId) -> bool) -> Vec<(MetricId, i64)> {
        let all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(MetricId, i64)> = all
            .get(account)
            .map(|m| {
                m.iter()
                    .filter(|(id, _)| keep(id))
                    .map(|(id, s)| (id.clone(), s.last_seen))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Drops buckets older than the retention.
    pub fn expire(&self, now: i64) {
        let cutoff = now - RETENTION_SECS;
        let mut all = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for m in all.values_mut() {
            m.retain(|_, s| {
                s.buckets = s.buckets.split_off(&cutoff);
                !s.buckets.is_empty()
            });
        }
    }

    /// [`MetricStore::add_usage`] for a batch: records of the same function, qualifier,
    /// version, outcome class and minute are merged first, so a busy function's batch costs a
    /// few store updates, not a dozen per record.
    pub fn add_usage_batch(&self, batch: &[UsageRecord]) {
        type Key<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, i64, u8);
        let mut groups: HashMap<Key<'_>, (UsageRecord, StatSet, u64)> = HashMap::new();
        for r in batch {
            let minute = (r.started_at_ms / 60_000) as i64;
            let class = if r.outcome == UsageOutcome::Throttle {
                0
            } else if r.outcome.is_error() {
                1
            } else {
                2
            };
            let key = (
                r.account_id.as_str(),
                r.function_name.as_str(),
                r.qualifier.as_deref(),
                r.version.as_str(),
                minute,
                class,
            );
            match groups.get_mut(&key) {
                Some((_, d, n)) => {
                    d.merge(&StatSet::one(r.duration_ms));
                    *n += 1;
                }
                None => {
                    groups.insert(key, (r.clone(), StatSet::one(r.duration_ms), 1));
                }
            }
        }
        for (_, (r, duration, n)) in groups {
            self.add_usage_merged(&r, duration, n as f64);
        }
    }

    /// The `AWS/Lambda` points of one usage record, as Lambda publishes them: `Invocations`,
    /// `Errors`, `Duration` (or `Throttles`), account-wide and per `FunctionName`, per
    /// `FunctionName` + `Resource` (the name, or `name:qualifier`), and per `FunctionName` +
    /// `ExecutedVersion` for published versions.
    pub fn add_usage(&self, r: &UsageRecord) {
        self.add_usage_merged(r, StatSet::one(r.duration_ms), 1.0);
    }

    /// `n` records like `r` (same function, qualifier, version, outcome class and minute) whose
    /// durations are `duration`.
    fn add_usage_merged(&self, r: &UsageRecord, duration: StatSet, n: f64) {
        let ts = (r.started_at_ms / 1000) as i64;
        let resource = match &r.qualifier {
            Some(q) => format!("{}:{q}", r.function_name),
            None => r.function_name.clone(),
        };
        let f = || ("FunctionName".to_string(), r.function_name.clone());
        let mut sets = vec![
            vec![],
            vec![f()],
            vec![f(), ("Resource".to_string(), resource)],
        ];
        if r.version != "$LATEST" {
            sets.push(vec![
                f(),
                ("ExecutedVersion".to_string(), r.version.clone()),
            ]);
        }
        // n points of value 1 (or 0) merged: count n, sum n (or 0).
        let ones = |v: f64| StatSet {
            count: n,
            sum: v * n,
            min: v,
            max: v,
        };
        let mut points: Vec<(&str, &str, StatSet)> = Vec::with_capacity(3);
        if r.outcome == UsageOutcome::Throttle {
            points.push(("Throttles", "Count", ones(1.0)));
        } else {
            points.push(("Invocations", "Count", ones(1.0)));
            points.push((
                "Errors",
                "Count",
                ones(if r.outcome.is_error() { 1.0 } else { 0.0 }),
            ));
            points.push(("Duration", "Milliseconds", duration));
        }
        for dims in sets {
            for (name, unit, set) in &points {
                self.add(
                    &r.account_id,
                    MetricId::new("AWS/Lambda", name, dims.clone()),
                    ts,
                    false,
                    Some(unit),
                    *set,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_merge_per_minute_and_accounts_stay_apart() {
        let s = MetricStore::default();
        let id = MetricId::new(
            "N",
            "m",
            vec![("b".into(), "2".into()), ("a".into(), "1".into())],
        );
        s.add("1", id.clone(), 120, false, None, StatSet::one(3.0));
        s.add("1", id.clone(), 150, false, None, StatSet::one(5.0));
        s.add("1", id.clone(), 185, false, None, StatSet::one(1.0));
        let (_, pts) = s.range("1", &id, 0, 1000);
        assert_eq!(pts.len(), 2);
        assert_eq!(pts[0].0, 120);
        assert_eq!(pts[0].1.stat("Average"), Some(4.0));
        assert_eq!(pts[0].1.stat("Maximum"), Some(5.0));
        assert!(s.range("2", &id, 0, 1000).1.is_empty());
        // Dimension order does not matter.
        let same = MetricId::new(
            "N",
            "m",
            vec![("a".into(), "1".into()), ("b".into(), "2".into())],
        );
        assert_eq!(s.range("1", &same, 0, 1000).1.len(), 2);
        s.expire(180 + RETENTION_SECS);
        assert_eq!(s.range("1", &id, 0, 1000).1.len(), 1);
    }
}
