//! A table of patterns × events for every operator, with cases from EventBridge's content
//! filtering documentation and from its documented semantics.

use serde_json::{Value, json};

use super::*;

/// The EC2 state-change event the documentation's examples filter.
fn ec2_event() -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "111122223333",
        "time": "2017-12-22T18:43:48Z",
        "region": "us-west-1",
        "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
        "detail": {
            "instance-id": "i-1234567890abcdef0",
            "state": "terminated",
            "c-count": 5,
            "d-count": 3,
            "x-limit": 301.8,
            "source-ip": "10.0.0.123",
            "source-ipv6": "2001:db8:0:0:0:0:0:1",
            "filename": "archive/2024/report.png",
            "tags": ["prod", "web"],
            "owner": null,
            "enabled": true,
            "location": {"city": "Seattle"},
            "items": [{"kind": "a", "size": 1}, {"kind": "b", "size": 7}]
        }
    })
}

fn check(cases: &[(Value, bool)]) {
    let event = ec2_event();
    for (i, (pattern, want)) in cases.iter().enumerate() {
        let p = Pattern::from_value(pattern)
            .unwrap_or_else(|e| panic!("case {i}: {pattern} refused: {e}"));
        assert_eq!(p.matches(&event), *want, "case {i}: {pattern}");
    }
}

#[test]
fn exact_values_and_arrays() {
    check(&[
        (json!({"source": ["aws.ec2"]}), true),
        (json!({"source": ["aws.s3"]}), false),
        (json!({"source": ["aws.s3", "aws.ec2"]}), true),
        (
            json!({"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]}),
            true,
        ),
        (
            json!({"source": ["aws.ec2"], "detail-type": ["other"]}),
            false,
        ),
        (json!({"detail": {"state": ["terminated"]}}), true),
        (json!({"detail": {"state": ["running", "pending"]}}), false),
        // Case matters.
        (json!({"detail": {"state": ["Terminated"]}}), false),
        // Numbers compare as numbers: 5 == 5.0, "5" is a string.
        (json!({"detail": {"c-count": [5]}}), true),
        (json!({"detail": {"c-count": [5.0]}}), true),
        (json!({"detail": {"c-count": ["5"]}}), false),
        (json!({"detail": {"enabled": [true]}}), true),
        (json!({"detail": {"enabled": [false]}}), false),
        // null matches a null value, not an absent field.
        (json!({"detail": {"owner": [null]}}), true),
        (json!({"detail": {"missing": [null]}}), false),
        // An array value matches when any element does.
        (json!({"detail": {"tags": ["web"]}}), true),
        (json!({"detail": {"tags": ["dev"]}}), false),
        (
            json!({"resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"]}),
            true,
        ),
        // Nested objects, and arrays of objects.
        (json!({"detail": {"location": {"city": ["Seattle"]}}}), true),
        (json!({"detail": {"location": {"city": ["Boston"]}}}), false),
        (json!({"detail": {"items": {"kind": ["b"]}}}), true),
        (json!({"detail": {"items": {"kind": ["c"]}}}), false),
        // An object where a value is expected is no value.
        (json!({"detail": {"location": ["Seattle"]}}), false),
    ]);
}

#[test]
fn prefix_and_suffix() {
    check(&[
        (json!({"detail": {"state": [{"prefix": "term"}]}}), true),
        (json!({"detail": {"state": [{"prefix": "run"}]}}), false),
        (json!({"detail": {"state": [{"prefix": "TERM"}]}}), false),
        (
            json!({"detail": {"state": [{"prefix": {"equals-ignore-case": "TERM"}}]}}),
            true,
        ),
        (json!({"detail": {"filename": [{"suffix": ".png"}]}}), true),
        (json!({"detail": {"filename": [{"suffix": ".jpg"}]}}), false),
        (
            json!({"detail": {"filename": [{"suffix": {"equals-ignore-case": ".PNG"}}]}}),
            true,
        ),
        (json!({"time": [{"prefix": "2017-12-22"}]}), true),
        // Prefix never matches numbers.
        (json!({"detail": {"c-count": [{"prefix": "5"}]}}), false),
        // Alternatives mix operators and literals.
        (
            json!({"detail": {"state": ["running", {"prefix": "ter"}]}}),
            true,
        ),
    ]);
}

#[test]
fn anything_but() {
    check(&[
        (
            json!({"detail": {"state": [{"anything-but": "initializing"}]}}),
            true,
        ),
        (
            json!({"detail": {"state": [{"anything-but": "terminated"}]}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}),
            true,
        ),
        (
            json!({"detail": {"state": [{"anything-but": ["stopped", "terminated"]}]}}),
            false,
        ),
        (json!({"detail": {"c-count": [{"anything-but": 0}]}}), true),
        (
            json!({"detail": {"c-count": [{"anything-but": [5, 6]}]}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}),
            true,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"prefix": "term"}}]}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"prefix": ["init", "term"]}}]}}),
            false,
        ),
        (
            json!({"detail": {"filename": [{"anything-but": {"suffix": ".txt"}}]}}),
            true,
        ),
        (
            json!({"detail": {"filename": [{"anything-but": {"suffix": ".png"}}]}}),
            false,
        ),
        (
            json!({"detail": {"filename": [{"anything-but": {"wildcard": "*/2024/*"}}]}}),
            false,
        ),
        (
            json!({"detail": {"filename": [{"anything-but": {"wildcard": ["*/2023/*", "*.gif"]}}]}}),
            true,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"equals-ignore-case": ["TERMINATED"]}}]}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"equals-ignore-case": "Running"}}]}}),
            true,
        ),
        // anything-but needs the field to be there.
        (
            json!({"detail": {"missing": [{"anything-but": "x"}]}}),
            false,
        ),
        // On an array, one element that is not excluded is enough.
        (
            json!({"detail": {"tags": [{"anything-but": "prod"}]}}),
            true,
        ),
        (
            json!({"detail": {"tags": [{"anything-but": ["prod", "web"]}]}}),
            false,
        ),
    ]);
}

#[test]
fn numeric() {
    check(&[
        (
            json!({"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}}),
            true,
        ),
        (
            json!({"detail": {"c-count": [{"numeric": [">", 0, "<", 5]}]}}),
            false,
        ),
        (
            json!({"detail": {"d-count": [{"numeric": ["<", 10]}]}}),
            true,
        ),
        (
            json!({"detail": {"x-limit": [{"numeric": ["=", 301.8]}]}}),
            true,
        ),
        (
            json!({"detail": {"x-limit": [{"numeric": [">=", 302]}]}}),
            false,
        ),
        (
            json!({"detail": {"x-limit": [{"numeric": [">=", 300, "<", 302]}]}}),
            true,
        ),
        // Strings are not numbers.
        (json!({"detail": {"state": [{"numeric": [">", 0]}]}}), false),
        (
            json!({"detail": {"missing": [{"numeric": [">", 0]}]}}),
            false,
        ),
    ]);
}

#[test]
fn exists() {
    check(&[
        (json!({"detail": {"state": [{"exists": true}]}}), true),
        (json!({"detail": {"state": [{"exists": false}]}}), false),
        (json!({"detail": {"missing": [{"exists": false}]}}), true),
        (json!({"detail": {"missing": [{"exists": true}]}}), false),
        (json!({"detail": {"owner": [{"exists": true}]}}), true),
        // Only leaves exist: an object field does not.
        (json!({"detail": {"location": [{"exists": true}]}}), false),
        (
            json!({"detail": {"location": {"city": [{"exists": true}]}}}),
            true,
        ),
        // A missing parent: every field below it is absent.
        (json!({"nothere": {"deep": [{"exists": false}]}}), true),
        (json!({"nothere": {"deep": [{"exists": true}]}}), false),
    ]);
}

#[test]
fn equals_ignore_case_wildcard_cidr() {
    check(&[
        (
            json!({"detail-type": [{"equals-ignore-case": "ec2 instance state-change notification"}]}),
            true,
        ),
        (
            json!({"detail-type": [{"equals-ignore-case": "ec2 instance"}]}),
            false,
        ),
        (
            json!({"detail": {"filename": [{"wildcard": "archive/*/report.png"}]}}),
            true,
        ),
        (
            json!({"detail": {"filename": [{"wildcard": "*.png"}]}}),
            true,
        ),
        (
            json!({"detail": {"filename": [{"wildcard": "archive/*"}]}}),
            true,
        ),
        (
            json!({"detail": {"filename": [{"wildcard": "*/2023/*"}]}}),
            false,
        ),
        (
            json!({"detail": {"filename": [{"wildcard": "archive/2024/report.png"}]}}),
            true,
        ),
        (
            json!({"detail": {"filename": [{"wildcard": "archive"}]}}),
            false,
        ),
        (
            json!({"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}),
            true,
        ),
        (
            json!({"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}),
            false,
        ),
        (
            json!({"detail": {"source-ip": [{"cidr": "0.0.0.0/0"}]}}),
            true,
        ),
        (
            json!({"detail": {"source-ipv6": [{"cidr": "2001:db8::/32"}]}}),
            true,
        ),
        (
            json!({"detail": {"source-ipv6": [{"cidr": "2001:db9::/32"}]}}),
            false,
        ),
        (
            json!({"detail": {"source-ip": [{"cidr": "2001:db8::/32"}]}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"cidr": "10.0.0.0/8"}]}}),
            false,
        ),
    ]);
}

#[test]
fn or() {
    check(&[
        (
            json!({"detail": {"$or": [{"c-count": [{"numeric": [">", 0, "<=", 5]}]}, {"d-count": [{"numeric": ["<", 10]}]}]}}),
            true,
        ),
        (
            json!({"detail": {"$or": [{"c-count": [{"numeric": [">", 9]}]}, {"d-count": [{"numeric": ["<", 10]}]}]}}),
            true,
        ),
        (
            json!({"detail": {"$or": [{"c-count": [{"numeric": [">", 9]}]}, {"d-count": [{"numeric": [">", 10]}]}]}}),
            false,
        ),
        // $or at the top, with siblings that must all hold too.
        (
            json!({"source": ["aws.ec2"], "$or": [{"detail": {"state": ["running"]}}, {"detail-type": [{"prefix": "EC2"}]}]}),
            true,
        ),
        (
            json!({"source": ["aws.s3"], "$or": [{"detail": {"state": ["terminated"]}}, {"detail-type": [{"prefix": "EC2"}]}]}),
            false,
        ),
        (
            json!({"$or": [{"detail": {"state": ["running"]}}, {"detail": {"state": ["pending"]}}]}),
            false,
        ),
    ]);
}

#[test]
fn refused_patterns() {
    for (text, reason) in [
        ("not json", "Filter is not valid JSON"),
        ("[1]", "Filter is not an object"),
        ("{}", "Empty objects are not allowed"),
        (r#"{"detail": {}}"#, "Empty objects are not allowed"),
        (r#"{"source": []}"#, "Empty arrays are not allowed"),
        (
            r#"{"detail": {"slug": "x"}}"#,
            "\"slug\" must be an object or an array",
        ),
        (
            r#"{"source": [{"prefix": 5}]}"#,
            "prefix match pattern must be a string",
        ),
        (
            r#"{"source": [{"suffix": 5}]}"#,
            "suffix match pattern must be a string",
        ),
        (
            r#"{"source": [{"nope": "x"}]}"#,
            "Unrecognized match type nope",
        ),
        (r#"{"source": [{}]}"#, "Match expression name not found"),
        (
            r#"{"source": [{"prefix": "a", "suffix": "b"}]}"#,
            "Only one key allowed in match expression",
        ),
        (
            r#"{"n": [{"numeric": ">"}]}"#,
            "Value of numeric must be an array.",
        ),
        (
            r#"{"n": [{"numeric": [">", "x"]}]}"#,
            "Value of > must be numeric",
        ),
        (
            r#"{"n": [{"numeric": ["=", "x"]}]}"#,
            "Value of equals must be numeric",
        ),
        (
            r#"{"n": [{"numeric": [1, 2]}]}"#,
            "Invalid member in numeric match: 1",
        ),
        (
            r#"{"n": [{"numeric": ["~", 1]}]}"#,
            "Unrecognized numeric range operator: ~",
        ),
        (
            r#"{"n": [{"numeric": ["<", 1, ">", 0]}]}"#,
            "Too many elements in numeric expression",
        ),
        (
            r#"{"n": [{"numeric": [">", 0, ">", 1]}]}"#,
            "Bad numeric range operator: >",
        ),
        (
            r#"{"n": [{"numeric": [">", 0, "<", 1, "<", 2]}]}"#,
            "Too many terms in numeric range expression",
        ),
        (
            r#"{"n": [{"numeric": [">", 5, "<", 1]}]}"#,
            "Bottom must be less than top",
        ),
        (
            r#"{"n": [{"numeric": [">"]}]}"#,
            "Value of > must be numeric",
        ),
        (
            r#"{"n": [{"exists": "yes"}]}"#,
            "exists match pattern must be either true or false.",
        ),
        (
            r#"{"n": [{"anything-but": [true]}]}"#,
            "Inside anything but list, start|null|boolean is not supported.",
        ),
        (
            r#"{"n": [{"anything-but": ["a", 1]}]}"#,
            "mixed type is not supported",
        ),
        (
            r#"{"n": [{"anything-but": []}]}"#,
            "mixed type is not supported",
        ),
        (
            r#"{"n": [{"anything-but": null}]}"#,
            "Value of anything-but must be an array or single string/number value.",
        ),
        (
            r#"{"n": [{"anything-but": {"numeric": [">", 1]}}]}"#,
            "Unsupported anything-but pattern: numeric",
        ),
        (
            r#"{"n": [{"anything-but": {"prefix": ""}}]}"#,
            "Null prefix/suffix not allowed",
        ),
        (
            r#"{"n": [{"anything-but": {"prefix": 1}}]}"#,
            "prefix/suffix match pattern must be a string",
        ),
        (
            r#"{"n": [{"anything-but": {"equals-ignore-case": 1}}]}"#,
            "Inside anything-but/equals-ignore-case list",
        ),
        (
            r#"{"n": [{"wildcard": "a**b"}]}"#,
            "Consecutive wildcard characters at pos 2",
        ),
        (
            r#"{"n": [{"wildcard": 1}]}"#,
            "wildcard match pattern must be a string",
        ),
        (
            r#"{"n": [{"equals-ignore-case": 1}]}"#,
            "equals-ignore-case match pattern must be a string",
        ),
        (r#"{"n": [{"cidr": "10.0.0.0"}]}"#, "Malformed CIDR"),
        (
            r#"{"n": [{"cidr": "10.0.0.0/33"}]}"#,
            "Invalid prefix length",
        ),
        (r#"{"n": [{"cidr": "10.0.0.300/8"}]}"#, "Invalid IP address"),
        (
            r#"{"$or": [{"a": ["b"]}]}"#,
            "There must have at least 2 Objects in $or relationship.",
        ),
        (
            r#"{"$or": {"a": ["b"]}}"#,
            "It must be an Array followed with $or.",
        ),
        (
            r#"{"$or": [{"a": ["b"]}, 1]}"#,
            "Only JSON object is allowed in array of $or relationship.",
        ),
        (
            r#"{"n": [[1]]}"#,
            "Match value must be String, number, true, false, or null",
        ),
    ] {
        let e = Pattern::parse(text).expect_err(text);
        assert!(e.0.contains(reason), "{text}: {e}");
    }
}

#[test]
fn wildcard_escapes_and_backtracking() {
    let w = wildcard::Wildcard::parse(r"a\*b*").unwrap();
    assert!(w.matches("a*bcd"));
    assert!(!w.matches("axbcd"));
    let w = wildcard::Wildcard::parse("*ab*ab").unwrap();
    assert!(w.matches("xxabyyabab"));
    assert!(!w.matches("xxabyyaba"));
    assert!(wildcard::Wildcard::parse("").unwrap().matches(""));
    assert!(!wildcard::Wildcard::parse("").unwrap().matches("a"));
}
