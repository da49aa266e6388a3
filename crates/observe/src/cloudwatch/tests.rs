use serde_json::json;

use super::*;
use crate::usage::tests::record;

fn cw_with_invocations(n: u64, t0_ms: u64) -> CloudWatch {
    let cw = CloudWatch::in_memory();
    let batch: Vec<UsageRecord> = (0..n).map(|i| record("f", t0_ms + i, 10, 128)).collect();
    cw.records(&batch);
    cw
}

fn map_get<'a>(o: &'a Out, key: &str) -> &'a Out {
    match o {
        Out::Map(m) => &m.iter().find(|(k, _)| *k == key).unwrap().1,
        _ => panic!("not a map: {o:?}"),
    }
}

#[test]
fn statistics_of_lambda_invocations() {
    let now = now_secs();
    let t0 = (now - now.rem_euclid(60) - 120) as u64 * 1000;
    let cw = cw_with_invocations(3, t0);
    let input = json!({
        "Namespace": "AWS/Lambda", "MetricName": "Invocations",
        "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
        "StartTime": now - 600, "EndTime": now + 60, "Period": 60, "Statistics": ["Sum", "SampleCount"],
    });
    let out = cw
        .call("111111111111", "GetMetricStatistics", &input)
        .unwrap();
    let Out::List(points) = map_get(&out, "Datapoints") else {
        panic!()
    };
    assert_eq!(points.len(), 1);
    assert_eq!(map_get(&points[0], "Sum"), &Out::Num(3.0));
    assert_eq!(map_get(&points[0], "Unit"), &Out::Str("Count".into()));
    // Another account, another dimension value or another name: empty, not an error.
    for (acct, f, name) in [
        ("222222222222", "f", "Invocations"),
        ("111111111111", "g", "Invocations"),
        ("111111111111", "f", "Nope"),
    ] {
        let mut i = input.clone();
        i["Dimensions"][0]["Value"] = json!(f);
        i["MetricName"] = json!(name);
        let out = cw.call(acct, "GetMetricStatistics", &i).unwrap();
        assert_eq!(map_get(&out, "Datapoints"), &Out::List(vec![]));
    }
}

#[test]
fn validation_errors_are_cloudwatchs() {
    let cw = CloudWatch::in_memory();
    let base = json!({"Namespace": "N", "MetricName": "m", "StartTime": 1000, "EndTime": 2000, "Period": 60, "Statistics": ["Sum"]});
    let mut bad_period = base.clone();
    bad_period["Period"] = json!(61);
    assert_eq!(
        cw.call("1", "GetMetricStatistics", &bad_period)
            .unwrap_err()
            .code,
        "InvalidParameterValue"
    );
    let mut reversed = base.clone();
    reversed["StartTime"] = json!(3000);
    let e = cw.call("1", "GetMetricStatistics", &reversed).unwrap_err();
    assert_eq!(
        e.message,
        "The parameter StartTime must be less than the parameter EndTime."
    );
    let mut no_stats = base.clone();
    no_stats.as_object_mut().unwrap().remove("Statistics");
    assert_eq!(
        cw.call("1", "GetMetricStatistics", &no_stats)
            .unwrap_err()
            .code,
        "InvalidParameterCombination"
    );
    let mut bad_stat = base.clone();
    bad_stat["Statistics"] = json!(["Median"]);
    assert_eq!(
        cw.call("1", "GetMetricStatistics", &bad_stat)
            .unwrap_err()
            .code,
        "InvalidParameterValue"
    );
    let mut no_ns = base.clone();
    no_ns.as_object_mut().unwrap().remove("Namespace");
    let e = cw.call("1", "GetMetricStatistics", &no_ns).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        ("MissingParameter", "The parameter Namespace is required.")
    );
    let mut too_many = base.clone();
    too_many["EndTime"] = json!(1000 + 60 * 1441);
    assert_eq!(
        cw.call("1", "GetMetricStatistics", &too_many)
            .unwrap_err()
            .code,
        "InvalidParameterCombination"
    );
}

#[test]
fn put_then_get_metric_data_with_math() {
    let cw = CloudWatch::in_memory();
    let now = now_secs();
    let ts = now - now.rem_euclid(60) - 60;
    let put = json!({"Namespace": "App", "MetricData": [
        {"MetricName": "ok", "Value": 3, "Timestamp": ts},
        {"MetricName": "ok", "Value": 1, "Timestamp": ts + 1},
        {"MetricName": "all", "StatisticValues": {"SampleCount": 2, "Sum": 8, "Minimum": 1, "Maximum": 7}, "Timestamp": ts},
    ]});
    cw.call("1", "PutMetricData", &put).unwrap();
    let q = |id: &str, name: &str| json!({"Id": id, "MetricStat": {"Metric": {"Namespace": "App", "MetricName": name}, "Period": 60, "Stat": "Sum"}, "ReturnData": false});
    let input = json!({"StartTime": ts - 60, "EndTime": now + 60, "MetricDataQueries": [
        q("m1", "ok"), q("m2", "all"),
        {"Id": "e1", "Expression": "m1/m2*100"},
        {"Id": "e2", "Expression": "m1+m2", "Label": "both"},
    ]});
    let out = cw.call("1", "GetMetricData", &input).unwrap();
    let Out::List(results) = map_get(&out, "MetricDataResults") else {
        panic!()
    };
    assert_eq!(results.len(), 2);
    assert_eq!(
        map_get(&results[0], "Values"),
        &Out::List(vec![Out::Num(50.0)])
    );
    assert_eq!(
        map_get(&results[1], "Values"),
        &Out::List(vec![Out::Num(12.0)])
    );
    assert_eq!(map_get(&results[1], "Label"), &Out::Str("both".into()));
    assert_eq!(
        map_get(&results[1], "Timestamps"),
        &Out::List(vec![Out::Time(ts)])
    );
    // ListMetrics sees both, filtered by name.
    let out = cw
        .call(
            "1",
            "ListMetrics",
            &json!({"Namespace": "App", "MetricName": "ok"}),
        )
        .unwrap();
    let Out::List(m) = map_get(&out, "Metrics") else {
        panic!()
    };
    assert_eq!(m.len(), 1);
    // Bad puts.
    let e = cw
        .call(
            "1",
            "PutMetricData",
            &json!({"Namespace": "AWS/Lambda", "MetricData": [{"MetricName": "x", "Value": 1}]}),
        )
        .unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    let e = cw.call("1", "PutMetricData", &json!({"Namespace": "A", "MetricData": [{"MetricName": "x", "Value": 1, "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}]})).unwrap_err();
    assert_eq!(e.code, "InvalidParameterCombination");
    let e = cw.call("1", "PutMetricData", &json!({"Namespace": "A", "MetricData": [{"MetricName": "x", "Value": 1, "Timestamp": now - 30 * 86400}]})).unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    let e = cw.call("1", "GetMetricData", &json!({"StartTime": 1, "EndTime": 2, "MetricDataQueries": [{"Id": "M1", "Expression": "1"}]})).unwrap_err();
    assert_eq!(e.code, "ValidationError");
}

#[test]
fn durable_points_and_lambda_metrics_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let usage = UsageStore::open(&dir.path().join("u.db")).unwrap();
    let now_ms = crate::now_ms();
    usage.write(&[record("f", now_ms - 5000, 10, 128)]).unwrap();
    let cw = CloudWatch::open(usage.clone()).unwrap();
    cw.call(
        "111111111111",
        "PutMetricData",
        &json!({"Namespace": "App", "MetricData": [{"MetricName": "m", "Value": 2}]}),
    )
    .unwrap();
    drop(cw);
    let cw = CloudWatch::open(usage).unwrap();
    let out = cw.call("111111111111", "ListMetrics", &json!({})).unwrap();
    let Out::List(m) = map_get(&out, "Metrics") else {
        panic!()
    };
    let names: Vec<&Out> = m.iter().map(|x| map_get(x, "MetricName")).collect();
    assert!(names.contains(&&Out::Str("m".into())));
    assert!(names.contains(&&Out::Str("Invocations".into())));
}

#[test]
fn a_merged_batch_equals_record_by_record() {
    let now = now_secs();
    let t0 = (now - now.rem_euclid(60) - 60) as u64 * 1000;
    let mut batch: Vec<UsageRecord> = (0..5).map(|i| record("f", t0 + i, 10 + i, 128)).collect();
    batch[1].outcome = updraft_engine::UsageOutcome::FunctionError;
    batch[3].outcome = updraft_engine::UsageOutcome::Timeout;
    batch[4].outcome = updraft_engine::UsageOutcome::Throttle;
    let merged = CloudWatch::in_memory();
    merged.records(&batch);
    let single = CloudWatch::in_memory();
    for r in &batch {
        single.store.add_usage(r);
    }
    for metric in ["Invocations", "Errors", "Throttles", "Duration"] {
        let input = json!({
            "Namespace": "AWS/Lambda", "MetricName": metric,
            "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
            "StartTime": now - 600, "EndTime": now + 60, "Period": 60,
            "Statistics": ["Sum", "SampleCount", "Minimum", "Maximum"],
        });
        let a = merged
            .call("111111111111", "GetMetricStatistics", &input)
            .unwrap();
        let b = single
            .call("111111111111", "GetMetricStatistics", &input)
            .unwrap();
        assert_eq!(a, b, "{metric}");
    }
    let input = json!({
        "Namespace": "AWS/Lambda", "MetricName": "Errors", "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
        "StartTime": now - 600, "EndTime": now + 60, "Period": 60, "Statistics": ["Sum", "SampleCount"],
    });
    let out = merged
        .call("111111111111", "GetMetricStatistics", &input)
        .unwrap();
    let Out::List(p) = map_get(&out, "Datapoints") else {
        panic!()
    };
    assert_eq!(
        (map_get(&p[0], "Sum"), map_get(&p[0], "SampleCount")),
        (&Out::Num(2.0), &Out::Num(4.0))
    );
}

#[test]
fn concurrency_samples_keep_the_peak() {
    let cw = CloudWatch::in_memory();
    cw.sample_concurrency(&[("1".into(), "f".into(), 2), ("1".into(), "g".into(), 1)]);
    cw.sample_concurrency(&[("1".into(), "f".into(), 5), ("1".into(), "g".into(), 0)]);
    let now = now_secs();
    let q = |dims: serde_json::Value| {
        json!({
            "Namespace": "AWS/Lambda", "MetricName": "ConcurrentExecutions", "Dimensions": dims,
            "StartTime": now - 120, "EndTime": now + 60, "Period": 300, "Statistics": ["Maximum"],
        })
    };
    let out = cw
        .call(
            "1",
            "GetMetricStatistics",
            &q(json!([{"Name": "FunctionName", "Value": "f"}])),
        )
        .unwrap();
    let Out::List(p) = map_get(&out, "Datapoints") else {
        panic!()
    };
    assert_eq!(map_get(&p[0], "Maximum"), &Out::Num(5.0));
    let out = cw.call("1", "GetMetricStatistics", &q(json!([]))).unwrap();
    let Out::List(p) = map_get(&out, "Datapoints") else {
        panic!()
    };
    assert_eq!(map_get(&p[0], "Maximum"), &Out::Num(5.0));
}
