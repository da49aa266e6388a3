//! Embedded Metric Format: metrics a function writes as JSON log lines (what Powertools'
//! metrics utilities emit), `{"_aws": {"Timestamp": ms, "CloudWatchMetrics": [{"Namespace": ..,
//! "Dimensions": [[names]], "Metrics": [{"Name", "Unit", "StorageResolution"}]}]}, <name>: value
//! or [values], <dimension>: value}`. A line that does not follow the format yields nothing.

use serde_json::Value;

use super::Point;
use super::store::{MetricId, StatSet};

/// Most metric points one line may yield (a line is at most 256 KB anyway).
const MAX_POINTS: usize = 1000;

/// The points of one EMF line; empty when it is not one.
pub(crate) fn points(line: &[u8], now_secs: i64) -> Vec<Point> {
    let Ok(doc) = serde_json::from_slice::<Value>(line) else {
        return Vec::new();
    };
    let Some(aws) = doc.get("_aws") else {
        return Vec::new();
    };
    let ts = aws
        .get("Timestamp")
        .and_then(Value::as_f64)
        .map(|ms| (ms / 1000.0) as i64)
        .unwrap_or(now_secs);
    let mut out = Vec::new();
    for directive in aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(ns) = directive.get("Namespace").and_then(Value::as_str) else {
            continue;
        };
        if ns.is_empty() || ns.starts_with("AWS/") || ns.len() > 255 {
            continue;
        }
        let dim_sets: Vec<Vec<(String, String)>> = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .filter_map(|names| {
                names
                    .iter()
                    .map(|n| {
                        let n = n.as_str()?;
                        let v = doc.get(n)?.as_str()?;
                        Some((n.to_string(), v.to_string()))
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .collect();
        let dim_sets = if dim_sets.is_empty() {
            vec![Vec::new()]
        } else {
            dim_sets
        };
        for m in directive
            .get("Metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = m.get("Name").and_then(Value::as_str) else {
                continue;
            };
            let values: Vec<f64> = match doc.get(name) {
                Some(Value::Number(n)) => n.as_f64().into_iter().collect(),
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_f64).collect(),
                _ => Vec::new(),
            };
            let Some(set) = values
                .iter()
                .filter(|v| v.is_finite())
                .map(|v| StatSet::one(*v))
                .reduce(|mut a, b| {
                    a.merge(&b);
                    a
                })
            else {
                continue;
            };
            let unit = m.get("Unit").and_then(Value::as_str).map(str::to_string);
            let high_res = m.get("StorageResolution").and_then(Value::as_f64) == Some(1.0);
            for dims in &dim_sets {
                if out.len() >= MAX_POINTS {
                    return out;
                }
                out.push(Point {
                    id: MetricId::new(ns, name, dims.clone()),
                    ts,
                    high_res,
                    unit: unit.clone(),
                    set,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_powertools_line_yields_its_points() {
        let line = br#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"Shop","Dimensions":[["service"],[]],"Metrics":[{"Name":"Orders","Unit":"Count"},{"Name":"Latency","Unit":"Milliseconds"}]}]},"service":"cart","Orders":2,"Latency":[10,30]}"#;
        let p = points(line, 0);
        assert_eq!(p.len(), 4);
        assert_eq!(
            p[0].id.dims,
            vec![("service".to_string(), "cart".to_string())]
        );
        assert_eq!(p[0].ts, 1_700_000_000);
        assert_eq!(p[3].set.count, 2.0);
        assert_eq!(p[3].set.max, 30.0);
        assert!(points(b"{\"_aws\": 1}", 0).is_empty());
        assert!(points(b"not json", 0).is_empty());
        let aws_ns = br#"{"_aws":{"CloudWatchMetrics":[{"Namespace":"AWS/Lambda","Metrics":[{"Name":"x"}]}]},"x":1}"#;
        assert!(points(aws_ns, 0).is_empty());
    }
}
