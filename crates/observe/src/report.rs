//! Usage reports: the usage store summed over a time window, grouped by function, account,
//! version, a tag, day or hour, and priced with the [`PriceTable`].
//!
//! SQLite does the heavy sums once per (account, function, version, provisioned, hour); the
//! grouping the caller asked for is then done here over those few partial rows, which is also
//! where tags (current tags of the function, from the [`FunctionDirectory`]) join in.
//!
//! On-demand duration tiers apply to an account's monthly GB-seconds per architecture, as on
//! Lambda: the GB-seconds the account used earlier in the window's first month count toward
//! the tier, and when a window's usage spans a tier bound its cost is shared out in proportion
//! to GB-seconds. The monthly free tier is never subtracted.

use std::collections::{BTreeMap, HashMap};

use rusqlite::params;
use serde::Serialize;

use crate::ObserveError;
use crate::prices::PriceTable;
use crate::usage::UsageStore;

const HOUR_MS: u64 = 3_600_000;
/// Lambda's `GB` in GB-seconds is 1024 MB.
const MB_MS_PER_GB_SECOND: f64 = 1024.0 * 1000.0;

/// What the report groups by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Function,
    Account,
    Version,
    /// A tag key: functions without it form one `(untagged)` row.
    Tag(String),
    Day,
    Hour,
}

impl GroupBy {
    pub fn parse(s: &str) -> Result<Self, ObserveError> {
        Ok(match s {
            "function" => GroupBy::Function,
            "account" => GroupBy::Account,
            "version" => GroupBy::Version,
            "day" => GroupBy::Day,
            "hour" => GroupBy::Hour,
            _ => match s.strip_prefix("tag:") {
                Some(k) if !k.is_empty() => GroupBy::Tag(k.to_string()),
                _ => {
                    return Err(ObserveError::Invalid(format!(
                        "by must be function, account, version, tag:KEY, day or hour, not {s:?}"
                    )));
                }
            },
        })
    }

    fn name(&self) -> String {
        match self {
            GroupBy::Function => "function".into(),
            GroupBy::Account => "account".into(),
            GroupBy::Version => "version".into(),
            GroupBy::Tag(k) => format!("tag:{k}"),
            GroupBy::Day => "day".into(),
            GroupBy::Hour => "hour".into(),
        }
    }
}

/// What a report needs to know about functions that usage records do not carry.
pub trait FunctionDirectory: Send + Sync {
    /// `x86_64` or `arm64`; `None` for a function that no longer exists (priced as x86_64).
    fn architecture(&self, account_id: &str, function: &str) -> Option<String>;
    /// The function's tags now (empty when it no longer exists).
    fn tags(&self, account_id: &str, function: &str) -> BTreeMap<String, String>;
}

/// One report request.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub since_ms: u64,
    /// Exclusive.
    pub until_ms: u64,
    pub by: GroupBy,
    /// `Some` restricts the report to one account (every non-root caller's own).
    pub account: Option<String>,
}

/// Sums of one row (or the total).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Sums {
    /// Invocations that ran (throttles are not requests: Lambda does not bill them).
    pub requests: u64,
    pub billed_ms: u64,
    #[serde(rename = "GBSeconds")]
    pub gb_seconds: f64,
    /// GB-seconds served by provisioned environments (included in `GBSeconds`).
    #[serde(rename = "ProvisionedGBSeconds")]
    pub provisioned_gb_seconds: f64,
    /// Configured `/tmp` above 512 MB times billed duration.
    #[serde(rename = "EphemeralGBSeconds")]
    pub ephemeral_gb_seconds: f64,
    pub cost: f64,
    pub throttles: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub out_of_memory: u64,
    pub cold_starts: u64,
    pub duration_ms: f64,
    #[serde(skip)]
    mb_ms: u64,
    #[serde(skip)]
    prov_mb_ms: u64,
    #[serde(skip)]
    eph_mb_ms: u64,
}

impl Sums {
    fn add(&mut self, o: &Sums) {
        self.requests += o.requests;
        self.billed_ms += o.billed_ms;
        self.throttles += o.throttles;
        self.errors += o.errors;
        self.timeouts += o.timeouts;
        self.out_of_memory += o.out_of_memory;
        self.cold_starts += o.cold_starts;
        self.duration_ms += o.duration_ms;
        self.mb_ms += o.mb_ms;
        self.prov_mb_ms += o.prov_mb_ms;
        self.eph_mb_ms += o.eph_mb_ms;
        self.cost += o.cost;
    }

    /// GB-seconds from the exact integer MB-millisecond sums.
    fn finish(&mut self) {
        self.gb_seconds = self.mb_ms as f64 / MB_MS_PER_GB_SECOND;
        self.provisioned_gb_seconds = self.prov_mb_ms as f64 / MB_MS_PER_GB_SECOND;
        self.ephemeral_gb_seconds = self.eph_mb_ms as f64 / MB_MS_PER_GB_SECOND;
    }
}

/// One group of the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// The group's name (`function`: the name, `account` the id, `version` `name:version`, ...).
    #[serde(rename = "Key")]
    pub key: String,
    /// The dimensions behind the key (`Account`, `Function`, `Version`, `Tag`, `Day`, `Hour`).
    #[serde(flatten)]
    pub dims: BTreeMap<String, String>,
    #[serde(flatten)]
    pub sums: Sums,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    pub since: String,
    pub until: String,
    pub by: String,
    pub currency: String,
    pub price_source: String,
    pub rows: Vec<Row>,
    pub total: Sums,
}

/// One partial row as SQLite sums it.
struct Partial {
    account: String,
    function: String,
    version: String,
    provisioned: bool,
    hour: u64,
    sums: Sums,
}

fn query_partials(store: &UsageStore, q: &UsageQuery) -> Result<Vec<Partial>, ObserveError> {
    let conn = store.conn();
    let mut stmt = conn
        .prepare_cached(
            "SELECT account, function, version, provisioned, started_ms / 3600000,
                SUM(outcome != 'throttle'), SUM(billed_ms), SUM(billed_ms * memory_mb),
                SUM(billed_ms * ephemeral_mb), SUM(outcome = 'throttle'),
                SUM(outcome NOT IN ('success', 'throttle')), SUM(outcome = 'timeout'),
                SUM(outcome = 'oom'), SUM(cold), SUM(duration_ms)
             FROM usage
             WHERE started_ms >= ?1 AND started_ms < ?2 AND (?3 IS NULL OR account = ?3)
             GROUP BY account, function, version, provisioned, started_ms / 3600000",
        )
        .map_err(ObserveError::db)?;
    let rows = stmt
        .query_map(
            params![q.since_ms as i64, q.until_ms as i64, q.account],
            |r| {
                let provisioned: bool = r.get(3)?;
                let mb_ms = r.get::<_, i64>(7)? as u64;
                Ok(Partial {
                    account: r.get(0)?,
                    function: r.get(1)?,
                    version: r.get(2)?,
                    provisioned,
                    hour: r.get::<_, i64>(4)? as u64,
                    sums: Sums {
                        requests: r.get::<_, i64>(5)? as u64,
                        billed_ms: r.get::<_, i64>(6)? as u64,
                        mb_ms,
                        prov_mb_ms: if provisioned { mb_ms } else { 0 },
                        eph_mb_ms: r.get::<_, i64>(8)? as u64,
                        throttles: r.get::<_, i64>(9)? as u64,
                        errors: r.get::<_, i64>(10)? as u64,
                        timeouts: r.get::<_, i64>(11)? as u64,
                        out_of_memory: r.get::<_, i64>(12)? as u64,
                        cold_starts: r.get::<_, i64>(13)? as u64,
                        duration_ms: r.get(14)?,
                        ..Sums::default()
                    },
                })
            },
        )
        .map_err(ObserveError::db)?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(ObserveError::db)
}

/// On-demand MB-ms per (account, function) earlier in the month `since_ms` falls in.
fn month_offsets(
    store: &UsageStore,
    q: &UsageQuery,
) -> Result<HashMap<(String, String), u64>, ObserveError> {
    let start = month_start_ms(q.since_ms);
    if start >= q.since_ms {
        return Ok(HashMap::new());
    }
    let conn = store.conn();
    let mut stmt = conn
        .prepare_cached(
            "SELECT account, function, SUM(billed_ms * memory_mb) FROM usage
             WHERE started_ms >= ?1 AND started_ms < ?2 AND provisioned = 0
               AND (?3 IS NULL OR account = ?3)
             GROUP BY account, function",
        )
        .map_err(ObserveError::db)?;
    let rows = stmt
        .query_map(params![start as i64, q.since_ms as i64, q.account], |r| {
            Ok(((r.get(0)?, r.get(1)?), r.get::<_, i64>(2)? as u64))
        })
        .map_err(ObserveError::db)?;
    rows.collect::<Result<HashMap<_, _>, _>>()
        .map_err(ObserveError::db)
}

/// Builds the report.
pub fn report(
    store: &UsageStore,
    prices: &PriceTable,
    dir: &dyn FunctionDirectory,
    q: &UsageQuery,
) -> Result<Report, ObserveError> {
    if q.until_ms <= q.since_ms {
        return Err(ObserveError::Invalid("until must be after since".into()));
    }
    let partials = query_partials(store, q)?;
    let offsets = month_offsets(store, q)?;
    let mut arch_cache: HashMap<(String, String), String> = HashMap::new();
    let mut tag_cache: HashMap<(String, String), BTreeMap<String, String>> = HashMap::new();
    let mut arch_of = |a: &str, f: &str| -> String {
        arch_cache
            .entry((a.to_string(), f.to_string()))
            .or_insert_with(|| {
                dir.architecture(a, f)
                    .unwrap_or_else(|| "x86_64".to_string())
            })
            .clone()
    };

    // On-demand MB-ms per (account, arch, month) in the window, and the offset before it.
    let mut window: HashMap<(String, String, u64), u64> = HashMap::new();
    let mut before: HashMap<(String, String, u64), u64> = HashMap::new();
    let first_month = month_start_ms(q.since_ms);
    for ((a, f), mb_ms) in &offsets {
        let arch = arch_of(a, f);
        *before.entry((a.clone(), arch, first_month)).or_default() += mb_ms;
    }
    // (group key, its dimensions, the partial row, its architecture, its month)
    type Keyed = (String, BTreeMap<String, String>, Partial, String, u64);
    let mut keyed: Vec<Keyed> = Vec::new();
    for p in partials {
        let arch = arch_of(&p.account, &p.function);
        let month = month_start_ms(p.hour * HOUR_MS);
        if !p.provisioned {
            *window
                .entry((p.account.clone(), arch.clone(), month))
                .or_default() += p.sums.mb_ms;
        }
        let (key, dims) = group_key(&q.by, &p, &mut tag_cache, dir);
        keyed.push((key, dims, p, arch, month));
    }

    let mut groups: BTreeMap<String, Row> = BTreeMap::new();
    for (key, dims, p, arch, month) in keyed {
        let ap = prices.arch(&arch);
        let mut s = p.sums;
        let gbs = s.mb_ms as f64 / MB_MS_PER_GB_SECOND;
        let eph = s.eph_mb_ms as f64 / MB_MS_PER_GB_SECOND;
        let duration = if p.provisioned {
            gbs * ap.provisioned_duration
        } else {
            let am = (p.account.clone(), arch.clone(), month);
            let off = *before.get(&am).unwrap_or(&0) as f64 / MB_MS_PER_GB_SECOND;
            let total = *window.get(&am).unwrap_or(&0) as f64 / MB_MS_PER_GB_SECOND;
            match ap.flat_price(off, off + total) {
                Some(price) => gbs * price,
                None if total > 0.0 => ap.tiered(off, off + total) * (gbs / total),
                None => 0.0,
            }
        };
        s.cost = prices.requests(s.requests) + duration + eph * prices.ephemeral_gb_second;
        let row = groups.entry(key.clone()).or_insert_with(|| Row {
            key,
            dims,
            sums: Sums::default(),
        });
        row.sums.add(&s);
    }
    let mut total = Sums::default();
    let mut rows: Vec<Row> = groups.into_values().collect();
    for r in &mut rows {
        r.sums.finish();
        total.add(&r.sums);
    }
    total.finish();
    Ok(Report {
        since: rfc3339(q.since_ms),
        until: rfc3339(q.until_ms),
        by: q.by.name(),
        currency: prices.currency.clone(),
        price_source: prices.source.clone(),
        rows,
        total,
    })
}

fn group_key(
    by: &GroupBy,
    p: &Partial,
    tags: &mut HashMap<(String, String), BTreeMap<String, String>>,
    dir: &dyn FunctionDirectory,
) -> (String, BTreeMap<String, String>) {
    let mut dims = BTreeMap::new();
    let key = match by {
        GroupBy::Account => {
            dims.insert("Account".into(), p.account.clone());
            p.account.clone()
        }
        GroupBy::Function => {
            dims.insert("Account".into(), p.account.clone());
            dims.insert("Function".into(), p.function.clone());
            format!("{}/{}", p.account, p.function)
        }
        GroupBy::Version => {
            dims.insert("Account".into(), p.account.clone());
            dims.insert("Function".into(), p.function.clone());
            dims.insert("Version".into(), p.version.clone());
            format!("{}/{}:{}", p.account, p.function, p.version)
        }
        GroupBy::Tag(k) => {
            let t = tags
                .entry((p.account.clone(), p.function.clone()))
                .or_insert_with(|| dir.tags(&p.account, &p.function));
            let v = t.get(k).cloned().unwrap_or_else(|| "(untagged)".into());
            dims.insert("Tag".into(), v.clone());
            v
        }
        GroupBy::Day => {
            let d = rfc3339(p.hour * HOUR_MS)[..10].to_string();
            dims.insert("Day".into(), d.clone());
            d
        }
        GroupBy::Hour => {
            let h = rfc3339(p.hour * HOUR_MS);
            dims.insert("Hour".into(), h.clone());
            h
        }
    };
    (key, dims)
}

/// Epoch ms of the first instant of the UTC month `ms` falls in.
pub fn month_start_ms(ms: u64) -> u64 {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64) else {
        return 0;
    };
    let Ok(first) = time::Date::from_calendar_date(t.year(), t.month(), 1) else {
        return 0;
    };
    (first.midnight().assume_utc().unix_timestamp().max(0) as u64) * 1000
}

/// `YYYY-MM-DDTHH:MM:SSZ` of epoch ms (seconds precision).
pub fn rfc3339(ms: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&f).unwrap_or_default()
}

/// A time parameter: epoch milliseconds, or RFC 3339 (`2026-12-07T10:00:00Z`), or a date.
pub fn parse_time(s: &str) -> Result<u64, ObserveError> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let bad = || ObserveError::Invalid(format!("bad time {s:?}: use epoch ms or RFC 3339"));
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return u64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad());
    }
    let f = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s, &f).map_err(|_| bad())?;
    u64::try_from(d.midnight().assume_utc().unix_timestamp() * 1000).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::tests::record;

    struct Dir;
    impl FunctionDirectory for Dir {
        fn architecture(&self, _: &str, f: &str) -> Option<String> {
            Some(if f == "arm" { "arm64" } else { "x86_64" }.into())
        }
        fn tags(&self, _: &str, f: &str) -> BTreeMap<String, String> {
            let mut t = BTreeMap::new();
            if f != "arm" {
                t.insert("team".into(), format!("t-{f}"));
            }
            t
        }
    }

    fn store() -> (tempfile::TempDir, std::sync::Arc<UsageStore>) {
        let dir = tempfile::tempdir().unwrap();
        let s = UsageStore::open(&dir.path().join("u.db")).unwrap();
        (dir, s)
    }

    const T0: u64 = 1_796_000_000_000; // 2026-11-30

    #[test]
    fn sums_and_costs_follow_the_arithmetic() {
        let (_d, s) = store();
        let mut thr = record("a", T0 + 2, 0, 128);
        thr.outcome = updraft_engine::UsageOutcome::Throttle;
        s.write(&[
            record("a", T0, 101, 128),
            record("a", T0 + 1, 203, 128),
            thr,
        ])
        .unwrap();
        s.write(&[record("arm", T0, 1000, 1024)]).unwrap();
        let p = PriceTable::default();
        let q = UsageQuery {
            since_ms: T0,
            until_ms: T0 + 10,
            by: GroupBy::Function,
            account: None,
        };
        let r = report(&s, &p, &Dir, &q).unwrap();
        assert_eq!(r.rows.len(), 2);
        let a = &r.rows[0].sums;
        assert_eq!((a.requests, a.billed_ms, a.throttles), (2, 304, 1));
        let gbs = (304 * 128) as f64 / 1_024_000.0;
        assert_eq!(a.gb_seconds, gbs);
        assert!((a.cost - (2.0 * 0.2 / 1e6 + gbs * 0.0000166667)).abs() < 1e-15);
        let arm = &r.rows[1].sums;
        assert!((arm.cost - (0.2 / 1e6 + 1.0 * 0.0000133334)).abs() < 1e-15);
        assert_eq!(r.total.requests, 3);
    }

    #[test]
    fn groups_by_tag_day_and_account_filter() {
        let (_d, s) = store();
        let mut other = record("b", T0, 10, 128);
        other.account_id = "222222222222".into();
        s.write(&[record("a", T0, 10, 128), record("arm", T0, 10, 128), other])
            .unwrap();
        let p = PriceTable::default();
        let mut q = UsageQuery {
            since_ms: T0,
            until_ms: T0 + HOUR_MS,
            by: GroupBy::parse("tag:team").unwrap(),
            account: Some("111111111111".into()),
        };
        let r = report(&s, &p, &Dir, &q).unwrap();
        let keys: Vec<&str> = r.rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["(untagged)", "t-a"]);
        q.by = GroupBy::Day;
        q.account = None;
        let r = report(&s, &p, &Dir, &q).unwrap();
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0].sums.requests, 3);
        assert_eq!(r.rows[0].key, rfc3339(T0)[..10]);
    }

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("1000").unwrap(), 1000);
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert!(parse_time("yesterday").is_err());
        assert!(GroupBy::parse("tag:").is_err());
        assert_eq!(month_start_ms(86_400_000 * 40), 86_400_000 * 31);
    }
}
