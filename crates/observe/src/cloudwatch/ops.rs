//! The operations, over one neutral input shape (a JSON value shaped like the JSON protocol's
//! input, which each wire module builds from its own encoding) and one neutral output ([`Out`],
//! which knows which values are timestamps, for the encoders).

use std::collections::BTreeMap;

use serde_json::Value;

use super::expr;
use super::store::{MetricId, StatSet};
use super::{CloudWatch, CwError};

/// An answer before encoding.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Map(Vec<(&'static str, Out)>),
    List(Vec<Out>),
    Str(String),
    Num(f64),
    /// Epoch seconds.
    Time(i64),
}

const STATISTICS: [&str; 5] = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"];
/// Most datapoints one `GetMetricStatistics` may return.
const MAX_DATAPOINTS: i64 = 1440;
/// Most datapoints per metric in one `GetMetricData` answer.
const MAX_DATA_POINTS_PER_QUERY: i64 = 100_800;
/// How far in the past and future `PutMetricData` accepts timestamps.
const PUT_PAST_SECS: i64 = 14 * 86_400;
const PUT_FUTURE_SECS: i64 = 2 * 3600;

fn text<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn list<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// A number, or a number in a string (the query protocol's form fields).
fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A timestamp: epoch seconds (JSON, CBOR) or ISO 8601 (query).
fn timestamp(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok().or_else(|| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
        }),
        _ => None,
    }
}

fn required<'a>(v: &'a Value, k: &str) -> Result<&'a Value, CwError> {
    v.get(k)
        .filter(|x| !x.is_null())
        .ok_or_else(|| CwError::missing(k))
}

fn dims_of(v: &Value) -> Result<Vec<(String, String)>, CwError> {
    let mut out = Vec::new();
    for (i, d) in list(v, "Dimensions").iter().enumerate() {
        let (Some(n), Some(val)) = (text(d, "Name"), text(d, "Value")) else {
            return Err(CwError::missing(&format!(
                "Dimensions.member.{}.{}",
                i + 1,
                if text(d, "Name").is_none() {
                    "Name"
                } else {
                    "Value"
                }
            )));
        };
        out.push((n.to_string(), val.to_string()));
    }
    if out.len() > 30 {
        return Err(CwError::invalid(
            "The collection Dimensions must not have a size greater than 30.",
        ));
    }
    Ok(out)
}

fn dims_out(dims: &[(String, String)]) -> Out {
    Out::List(
        dims.iter()
            .map(|(n, v)| {
                Out::Map(vec![
                    ("Name", Out::Str(n.clone())),
                    ("Value", Out::Str(v.clone())),
                ])
            })
            .collect(),
    )
}

fn check_period(period: f64, field: &str, validation: bool) -> Result<i64, CwError> {
    let p = period as i64;
    let ok = period.fract() == 0.0 && p >= 1 && (matches!(p, 1 | 5 | 10 | 30) || p % 60 == 0);
    if ok {
        Ok(p)
    } else {
        let msg = format!("The parameter {field} must be 1, 5, 10, 30, or a multiple of 60.");
        Err(if validation {
            CwError::validation(msg)
        } else {
            CwError::invalid(msg)
        })
    }
}

/// Start of the first period: whole minutes for periods of a minute or more.
fn align(start: f64, period: i64) -> i64 {
    let step = period.min(60);
    let s = start.floor() as i64;
    s - s.rem_euclid(step)
}

/// Buckets merged into periods: period start to statistics.
fn per_period(points: &[(i64, StatSet)], start: i64, period: i64) -> BTreeMap<i64, StatSet> {
    let mut out: BTreeMap<i64, StatSet> = BTreeMap::new();
    for (t, s) in points {
        let p = start + (t - start).div_euclid(period) * period;
        out.entry(p).and_modify(|x| x.merge(s)).or_insert(*s);
    }
    out
}

impl CloudWatch {
    pub(super) fn get_metric_statistics(
        &self,
        account: &str,
        input: &Value,
    ) -> Result<Out, CwError> {
        let ns = required(input, "Namespace")?.as_str().unwrap_or_default();
        let name = required(input, "MetricName")?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let start = timestamp(Some(required(input, "StartTime")?))
            .ok_or_else(|| CwError::invalid("The parameter StartTime must be a timestamp."))?;
        let end = timestamp(Some(required(input, "EndTime")?))
            .ok_or_else(|| CwError::invalid("The parameter EndTime must be a timestamp."))?;
        let period = check_period(
            number(Some(required(input, "Period")?))
                .ok_or_else(|| CwError::invalid("The parameter Period must be a number."))?,
            "Period",
            false,
        )?;
        let stats = list(input, "Statistics");
        let extended = list(input, "ExtendedStatistics");
        if stats.is_empty() && extended.is_empty() {
            return Err(CwError::combination(
                "Must specify either Statistics or ExtendedStatistics, but not both.",
            ));
        }
        if !stats.is_empty() && !extended.is_empty() {
            return Err(CwError::combination(
                "Must specify either Statistics or ExtendedStatistics, but not both.",
            ));
        }
        if !extended.is_empty() {
            return Err(CwError::invalid(
                "ExtendedStatistics (percentiles) are not kept by this server; use Statistics.",
            ));
        }
        let mut wanted = Vec::new();
        for (i, s) in stats.iter().enumerate() {
            match s.as_str().filter(|s| STATISTICS.contains(s)) {
                Some(s) => wanted.push(s),
                None => {
                    return Err(CwError::invalid(format!(
                        "The parameter Statistics.member.{} must be a value in the set [ SampleCount, Average, Sum, Minimum, Maximum ].",
                        i + 1
                    )));
                }
            }
        }
        if start >= end {
            return Err(CwError::invalid(
                "The parameter StartTime must be less than the parameter EndTime.",
            ));
        }
        let first = align(start, period);
        let count = ((end.ceil() as i64 - first) + period - 1) / period;
        if count > MAX_DATAPOINTS {
            return Err(CwError::combination(format!(
                "You have requested up to {count} datapoints, which exceeds the limit of {MAX_DATAPOINTS}. You may reduce the datapoints requested by increasing Period, or decreasing the time range."
            )));
        }
        let id = MetricId::new(ns, &name, dims_of(input)?);
        let want_unit = text(input, "Unit");
        let (unit, points) = self.store.range(account, &id, first, end.ceil() as i64);
        let unit_matches = want_unit.is_none() || want_unit == unit.as_deref();
        let mut datapoints = Vec::new();
        if unit_matches {
            for (t, s) in per_period(&points, first, period) {
                let mut m = vec![("Timestamp", Out::Time(t))];
                for w in &wanted {
                    let key: &'static str = STATISTICS
                        .iter()
                        .find(|x| *x == w)
                        .copied()
                        .unwrap_or("Sum");
                    m.push((key, Out::Num(s.stat(w).unwrap_or(0.0))));
                }
                m.push((
                    "Unit",
                    Out::Str(unit.clone().unwrap_or_else(|| "None".into())),
                ));
                datapoints.push(Out::Map(m));
            }
        }
        Ok(Out::Map(vec![
            ("Label", Out::Str(name)),
            ("Datapoints", Out::List(datapoints)),
        ]))
    }

    pub(super) fn get_metric_data(&self, account: &str, input: &Value) -> Result<Out, CwError> {
        let queries = list(input, "MetricDataQueries");
        if required(input, "MetricDataQueries").is_err() || queries.is_empty() {
            return Err(CwError::missing("MetricDataQueries"));
        }
        if queries.len() > 500 {
            return Err(CwError::validation(
                "The collection MetricDataQueries must not have a size greater than 500.",
            ));
        }
        let start = timestamp(Some(required(input, "StartTime")?))
            .ok_or_else(|| CwError::validation("The parameter StartTime must be a timestamp."))?;
        let end = timestamp(Some(required(input, "EndTime")?))
            .ok_or_else(|| CwError::validation("The parameter EndTime must be a timestamp."))?;
        if start >= end {
            return Err(CwError::validation(
                "The parameter StartTime must be less than the parameter EndTime.",
            ));
        }
        let ascending = text(input, "ScanBy") == Some("TimestampAscending");
        // First pass: validate, and compute every metric query's series.
        let mut series: BTreeMap<String, expr::Series> = BTreeMap::new();
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, q) in queries.iter().enumerate() {
            let n = i + 1;
            let id = text(q, "Id")
                .ok_or_else(|| CwError::missing(&format!("MetricDataQueries.member.{n}.Id")))?;
            let valid_id = id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_id {
                return Err(CwError::validation(format!(
                    "The value {id} for parameter MetricDataQueries.member.{n}.Id is not matching the expected pattern ^[a-z][a-zA-Z0-9_]*$."
                )));
            }
            if !seen.insert(id.to_string()) {
                return Err(CwError::validation(format!(
                    "The values for parameter id in MetricDataQueries are not unique. Duplicate: {id}"
                )));
            }
            let stat = q.get("MetricStat").filter(|v| !v.is_null());
            let expression = text(q, "Expression");
            match (stat, expression) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(CwError::validation(format!(
                        "Exactly one element of MetricStat or Expression must be specified for MetricDataQueries.member.{n}."
                    )));
                }
                (Some(ms), None) => {
                    let metric = ms.get("Metric").ok_or_else(|| {
                        CwError::missing(&format!("MetricDataQueries.member.{n}.MetricStat.Metric"))
                    })?;
                    let period = check_period(
                        number(ms.get("Period")).ok_or_else(|| {
                            CwError::missing(&format!(
                                "MetricDataQueries.member.{n}.MetricStat.Period"
                            ))
                        })?,
                        &format!("MetricDataQueries.member.{n}.MetricStat.Period"),
                        true,
                    )?;
                    let stat_name = text(ms, "Stat").ok_or_else(|| {
                        CwError::missing(&format!("MetricDataQueries.member.{n}.MetricStat.Stat"))
                    })?;
                    if !STATISTICS.contains(&stat_name) {
                        return Err(CwError::validation(format!(
                            "The value {stat_name} for parameter MetricDataQueries.member.{n}.MetricStat.Stat is not supported; use SampleCount, Average, Sum, Minimum or Maximum."
                        )));
                    }
                    let first = align(start, period);
                    if (end.ceil() as i64 - first) / period > MAX_DATA_POINTS_PER_QUERY {
                        return Err(CwError::validation(
                            "The time range and period of a query ask for more than 100,800 datapoints.",
                        ));
                    }
                    let ns = text(metric, "Namespace").unwrap_or_default();
                    let name = text(metric, "MetricName").unwrap_or_default();
                    let mid = MetricId::new(ns, name, dims_of(metric)?);
                    let (unit, points) = self.store.range(account, &mid, first, end.ceil() as i64);
                    let unit_ok = text(ms, "Unit").is_none_or(|u| Some(u) == unit.as_deref());
                    let s: expr::Series = if unit_ok {
                        per_period(&points, first, period)
                            .into_iter()
                            .map(|(t, s)| (t, s.stat(stat_name).unwrap_or(0.0)))
                            .collect()
                    } else {
                        expr::Series::new()
                    };
                    series.insert(id.to_string(), s);
                    labels.insert(id.to_string(), name.to_string());
                }
                (None, Some(_)) => {
                    labels.insert(id.to_string(), id.to_string());
                }
            }
        }
        // Second pass: expressions (in order, so later ones can use earlier ones).
        let mut results = Vec::new();
        for (i, q) in queries.iter().enumerate() {
            let id = text(q, "Id").unwrap_or_default().to_string();
            if let Some(src) = text(q, "Expression") {
                let e = expr::parse(src).map_err(|m| {
                    CwError::validation(format!(
                        "Error in expression '{id}' (MetricDataQueries.member.{}): {m}",
                        i + 1
                    ))
                })?;
                let lookup = |name: &str| series.get(name).cloned();
                let v = expr::eval(&e, &lookup)
                    .map_err(|m| CwError::validation(format!("Error in expression '{id}': {m}")))?;
                let s = match v {
                    expr::Value::Series(s) => s,
                    // A constant has a value at every period of the window; without a period
                    // to spread it over, it is reported once, at the start.
                    expr::Value::Scalar(x) => [(start.floor() as i64, x)].into_iter().collect(),
                };
                series.insert(id.clone(), s);
            }
            if q.get("ReturnData").and_then(Value::as_bool) == Some(false)
                || q.get("ReturnData").and_then(Value::as_str) == Some("false")
            {
                continue;
            }
            let s = series.get(&id).cloned().unwrap_or_default();
            let mut points: Vec<(i64, f64)> = s.into_iter().collect();
            if !ascending {
                points.reverse();
            }
            let label = text(q, "Label")
                .map(str::to_string)
                .or_else(|| labels.get(&id).cloned())
                .unwrap_or_else(|| id.clone());
            results.push(Out::Map(vec![
                ("Id", Out::Str(id)),
                ("Label", Out::Str(label)),
                (
                    "Timestamps",
                    Out::List(points.iter().map(|(t, _)| Out::Time(*t)).collect()),
                ),
                (
                    "Values",
                    Out::List(points.iter().map(|(_, v)| Out::Num(*v)).collect()),
                ),
                ("StatusCode", Out::Str("Complete".into())),
            ]));
        }
        Ok(Out::Map(vec![
            ("MetricDataResults", Out::List(results)),
            ("Messages", Out::List(Vec::new())),
        ]))
    }

    pub(super) fn list_metrics(&self, account: &str, input: &Value) -> Result<Out, CwError> {
        let ns = text(input, "Namespace");
        let name = text(input, "MetricName");
        let mut filters = Vec::new();
        for (i, d) in list(input, "Dimensions").iter().enumerate() {
            let n = text(d, "Name")
                .ok_or_else(|| CwError::missing(&format!("Dimensions.member.{}.Name", i + 1)))?;
            filters.push((n.to_string(), text(d, "Value").map(str::to_string)));
        }
        if filters.len() > 10 {
            return Err(CwError::invalid(
                "The collection Dimensions must not have a size greater than 10.",
            ));
        }
        let recent = match text(input, "RecentlyActive") {
            None => None,
            Some("PT3H") => Some(super::now_secs() - 3 * 3600),
            Some(other) => {
                return Err(CwError::invalid(format!(
                    "The value {other} for parameter RecentlyActive is not valid; it must be PT3H."
                )));
            }
        };
        let metrics = self.store.list(account, |id| {
            ns.is_none_or(|n| n == id.namespace)
                && name.is_none_or(|n| n == id.name)
                && filters.iter().all(|(fname, fval)| {
                    id.dims
                        .iter()
                        .any(|(dn, dv)| dn == fname && fval.as_ref().is_none_or(|v| v == dv))
                })
        });
        let page = 500;
        let from: usize = match text(input, "NextToken") {
            None => 0,
            Some(t) => t.parse().map_err(|_| CwError::next_token())?,
        };
        let listed: Vec<_> = metrics
            .into_iter()
            .filter(|(_, last)| recent.is_none_or(|r| *last >= r))
            .collect();
        let mut out = vec![(
            "Metrics",
            Out::List(
                listed
                    .iter()
                    .skip(from)
                    .take(page)
                    .map(|(id, _)| {
                        Out::Map(vec![
                            ("Namespace", Out::Str(id.namespace.clone())),
                            ("MetricName", Out::Str(id.name.clone())),
                            ("Dimensions", dims_out(&id.dims)),
                        ])
                    })
                    .collect(),
            ),
        )];
        if listed.len() > from + page {
            out.push(("NextToken", Out::Str((from + page).to_string())));
        }
        Ok(Out::Map(out))
    }

    pub(super) fn put_metric_data(&self, account: &str, input: &Value) -> Result<Out, CwError> {
        let ns = required(input, "Namespace")?.as_str().unwrap_or_default();
        if ns.is_empty() || ns.len() > 255 || ns.starts_with(':') {
            return Err(CwError::invalid(format!(
                "The value {ns} for parameter Namespace is invalid."
            )));
        }
        if ns.starts_with("AWS/") {
            return Err(CwError::invalid(
                "The value AWS/ for parameter Namespace is invalid.",
            ));
        }
        let data = list(input, "MetricData");
        if data.is_empty() {
            return Err(CwError::missing("MetricData"));
        }
        if data.len() > 1000 {
            return Err(CwError::invalid(
                "The collection MetricData must not have a size greater than 1000.",
            ));
        }
        let now = super::now_secs();
        let mut points = Vec::new();
        for (i, d) in data.iter().enumerate() {
            let n = i + 1;
            let field = |f: &str| format!("MetricData.member.{n}.{f}");
            let name =
                text(d, "MetricName").ok_or_else(|| CwError::missing(&field("MetricName")))?;
            let dims = dims_of(d)?;
            let ts = match d.get("Timestamp").filter(|v| !v.is_null()) {
                None => now,
                Some(v) => timestamp(Some(v)).ok_or_else(|| {
                    CwError::invalid(format!(
                        "The parameter {} must be a timestamp.",
                        field("Timestamp")
                    ))
                })? as i64,
            };
            if ts < now - PUT_PAST_SECS || ts > now + PUT_FUTURE_SECS {
                return Err(CwError::invalid(format!(
                    "The parameter {} must specify a time no more than two weeks in the past and no more than two hours in the future.",
                    field("Timestamp")
                )));
            }
            let resolution = number(d.get("StorageResolution")).unwrap_or(60.0);
            if resolution != 1.0 && resolution != 60.0 {
                return Err(CwError::invalid(format!(
                    "The value {resolution} for parameter {} is not valid; it must be 1 or 60.",
                    field("StorageResolution")
                )));
            }
            let value = d.get("Value").filter(|v| !v.is_null());
            let statistic = d.get("StatisticValues").filter(|v| !v.is_null());
            let values = list(d, "Values");
            let set = match (value, statistic, values.is_empty()) {
                (Some(_), Some(_), _) => {
                    return Err(CwError::combination(format!(
                        "The parameters {} and {} are mutually exclusive and you have specified both.",
                        field("Value"),
                        field("StatisticValues")
                    )));
                }
                (Some(_), None, false) | (None, Some(_), false) => {
                    return Err(CwError::combination(format!(
                        "The parameters {} and {} are mutually exclusive and you have specified both.",
                        field("Values"),
                        if value.is_some() {
                            field("Value")
                        } else {
                            field("StatisticValues")
                        }
                    )));
                }
                (Some(v), None, true) => {
                    let x = finite(number(Some(v)), &field("Value"))?;
                    StatSet::one(x)
                }
                (None, Some(s), true) => {
                    let get = |k: &str| {
                        finite(
                            number(s.get(k)),
                            &format!("{}.{k}", field("StatisticValues")),
                        )
                    };
                    let set = StatSet {
                        count: get("SampleCount")?,
                        sum: get("Sum")?,
                        min: get("Minimum")?,
                        max: get("Maximum")?,
                    };
                    if set.count <= 0.0 || set.min > set.max {
                        return Err(CwError::invalid(format!(
                            "The parameter {} must have SampleCount above 0 and Minimum no greater than Maximum.",
                            field("StatisticValues")
                        )));
                    }
                    set
                }
                (None, None, false) => {
                    let counts = list(d, "Counts");
                    if !counts.is_empty() && counts.len() != values.len() {
                        return Err(CwError::invalid(format!(
                            "The parameters {} and {} must be of the same size.",
                            field("Values"),
                            field("Counts")
                        )));
                    }
                    let mut set: Option<StatSet> = None;
                    for (j, v) in values.iter().enumerate() {
                        let x = finite(number(Some(v)), &field("Values"))?;
                        let c = match counts.get(j) {
                            Some(c) => finite(number(Some(c)), &field("Counts"))?,
                            None => 1.0,
                        };
                        let one = StatSet {
                            count: c,
                            sum: x * c,
                            min: x,
                            max: x,
                        };
                        match set.as_mut() {
                            Some(s) => s.merge(&one),
                            None => set = Some(one),
                        }
                    }
                    set.unwrap_or_else(|| StatSet::one(0.0))
                }
                (None, None, true) => {
                    return Err(CwError::missing(&field("Value")));
                }
            };
            points.push(super::Point {
                id: MetricId::new(ns, name, dims),
                ts,
                high_res: resolution == 1.0,
                unit: text(d, "Unit").map(str::to_string),
                set,
            });
        }
        self.put_points(account, points)?;
        Ok(Out::Map(Vec::new()))
    }
}

fn finite(v: Option<f64>, field: &str) -> Result<f64, CwError> {
    match v {
        Some(x) if x.is_finite() => Ok(x),
        _ => Err(CwError::invalid(format!(
            "The value for parameter {field} is not a valid number."
        ))),
    }
}
