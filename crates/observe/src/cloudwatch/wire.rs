//! CloudWatch's three protocols, each turned into the operations' neutral input and back:
//!
//! - Smithy RPC v2 CBOR: `POST /service/GraniteServiceVersion20100801/operation/<Op>`,
//!   `Content-Type: application/cbor`, answers with `smithy-protocol: rpc-v2-cbor`;
//!   timestamps are CBOR tag 1 (epoch seconds).
//! - AWS JSON 1.0: `X-Amz-Target: GraniteServiceVersion20100801.<Op>`; timestamps are epoch
//!   seconds.
//! - Query: a form post with `Action=<Op>`, lists as `Name.member.N`, answered in XML with
//!   ISO 8601 timestamps.
//!
//! CloudWatch is "query compatible": JSON and CBOR errors carry the model's shape in `__type`
//! and the query code in `x-amzn-query-error: <Code>;<Sender|Receiver>`, which SDKs report.

use serde_json::{Map, Value};

use super::{CloudWatch, CwError, Out};

pub const TARGET_PREFIX: &str = "GraniteServiceVersion20100801.";
pub const CBOR_PATH_PREFIX: &str = "/service/GraniteServiceVersion20100801/operation/";
const XMLNS: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";

/// An encoded answer.
#[derive(Debug)]
pub struct WireResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

fn query_error_header(e: &CwError) -> (&'static str, String) {
    ("x-amzn-query-error", format!("{};{}", e.code, e.fault))
}

// ------------------------------------------------------------------------------------- JSON

/// AWS JSON 1.0: `target` is the `X-Amz-Target` header.
pub fn handle_json(cw: &CloudWatch, account: &str, target: &str, body: &[u8]) -> WireResponse {
    let op = target.strip_prefix(TARGET_PREFIX).unwrap_or(target);
    let input: Value = if body.is_empty() {
        Value::Object(Map::new())
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return json_error(&CwError::new_serialization());
            }
        }
    };
    match cw.call(account, op, &input) {
        Ok(out) => WireResponse {
            status: 200,
            content_type: "application/x-amz-json-1.0",
            headers: Vec::new(),
            body: serde_json::to_vec(&to_json(&out)).unwrap_or_default(),
        },
        Err(e) => json_error(&e),
    }
}

fn to_json(o: &Out) -> Value {
    match o {
        Out::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
        Out::List(l) => Value::Array(l.iter().map(to_json).collect()),
        Out::Str(s) => Value::String(s.clone()),
        Out::Num(n) => serde_json::Number::from_f64(*n)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Out::Time(t) => Value::from(*t),
    }
}

fn json_error(e: &CwError) -> WireResponse {
    let body = serde_json::json!({
        "__type": format!("com.amazonaws.cloudwatch#{}", e.shape),
        "message": e.message,
    });
    WireResponse {
        status: e.status,
        content_type: "application/x-amz-json-1.0",
        headers: vec![query_error_header(e)],
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

impl CwError {
    fn new_serialization() -> Self {
        CwError::new(
            "SerializationException",
            "SerializationException",
            400,
            "The request body could not be read.".into(),
        )
    }
}

// ------------------------------------------------------------------------------------- CBOR

/// Smithy RPC v2 CBOR: `op` is the last path segment.
pub fn handle_cbor(cw: &CloudWatch, account: &str, op: &str, body: &[u8]) -> WireResponse {
    let input = if body.is_empty() {
        Value::Object(Map::new())
    } else {
        match ciborium::from_reader::<ciborium::Value, _>(body) {
            Ok(v) => match from_cbor(v) {
                v @ Value::Object(_) => v,
                _ => return cbor_error(&CwError::new_serialization()),
            },
            Err(_) => return cbor_error(&CwError::new_serialization()),
        }
    };
    match cw.call(account, op, &input) {
        Ok(out) => cbor_response(200, &to_cbor(&out), Vec::new()),
        Err(e) => cbor_error(&e),
    }
}

fn from_cbor(v: ciborium::Value) -> Value {
    use ciborium::Value as C;
    match v {
        C::Integer(i) => {
            let n: i128 = i.into();
            i64::try_from(n)
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(n as f64))
        }
        C::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        C::Text(s) => Value::String(s),
        C::Bool(b) => Value::Bool(b),
        C::Null => Value::Null,
        // Tag 1 is a timestamp in epoch seconds: the operations read it as a number.
        C::Tag(_, inner) => from_cbor(*inner),
        C::Array(a) => Value::Array(a.into_iter().map(from_cbor).collect()),
        C::Map(m) => Value::Object(
            m.into_iter()
                .filter_map(|(k, v)| match k {
                    C::Text(k) => Some((k, from_cbor(v))),
                    _ => None,
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

fn to_cbor(o: &Out) -> ciborium::Value {
    use ciborium::Value as C;
    match o {
        Out::Map(m) => C::Map(
            m.iter()
                .map(|(k, v)| (C::Text(k.to_string()), to_cbor(v)))
                .collect(),
        ),
        Out::List(l) => C::Array(l.iter().map(to_cbor).collect()),
        Out::Str(s) => C::Text(s.clone()),
        Out::Num(n) => C::Float(*n),
        Out::Time(t) => C::Tag(1, Box::new(C::Integer((*t).into()))),
    }
}

fn cbor_response(
    status: u16,
    v: &ciborium::Value,
    mut headers: Vec<(&'static str, String)>,
) -> WireResponse {
    let mut body = Vec::new();
    if let Err(e) = ciborium::into_writer(v, &mut body) {
        tracing::error!("encoding CBOR: {e}");
    }
    headers.push(("smithy-protocol", "rpc-v2-cbor".into()));
    WireResponse {
        status,
        content_type: "application/cbor",
        headers,
        body,
    }
}

fn cbor_error(e: &CwError) -> WireResponse {
    use ciborium::Value as C;
    let v = C::Map(vec![
        (
            C::Text("__type".into()),
            C::Text(format!("com.amazonaws.cloudwatch#{}", e.shape)),
        ),
        (C::Text("message".into()), C::Text(e.message.clone())),
    ]);
    cbor_response(e.status, &v, vec![query_error_header(e)])
}

// ------------------------------------------------------------------------------------ query

/// Query protocol: the form body (`Action=...&...`).
pub fn handle_query(
    cw: &CloudWatch,
    account: &str,
    form: &[(String, String)],
    request_id: &str,
) -> WireResponse {
    let action = form
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let input = form_to_value(form);
    match cw.call(account, action, &input) {
        Ok(out) => {
            let mut xml = format!("<{action}Response xmlns=\"{XMLNS}\">");
            if !matches!(&out, Out::Map(m) if m.is_empty()) {
                xml.push_str(&format!("<{action}Result>"));
                if let Out::Map(m) = &out {
                    for (k, v) in m {
                        write_xml(&mut xml, k, v);
                    }
                }
                xml.push_str(&format!("</{action}Result>"));
            }
            xml.push_str(&format!(
                "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
                escape(request_id)
            ));
            WireResponse {
                status: 200,
                content_type: "text/xml",
                headers: Vec::new(),
                body: xml.into_bytes(),
            }
        }
        Err(e) => query_error(&e, request_id),
    }
}

/// The query protocol's error document.
pub fn query_error(e: &CwError, request_id: &str) -> WireResponse {
    let xml = format!(
        "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        e.fault,
        e.code,
        escape(&e.message),
        escape(request_id)
    );
    WireResponse {
        status: e.status,
        content_type: "text/xml",
        headers: Vec::new(),
        body: xml.into_bytes(),
    }
}

fn write_xml(out: &mut String, name: &str, v: &Out) {
    out.push_str(&format!("<{name}>"));
    match v {
        Out::Map(m) => {
            for (k, v) in m {
                write_xml(out, k, v);
            }
        }
        Out::List(l) => {
            for item in l {
                write_xml(out, "member", item);
            }
        }
        Out::Str(s) => out.push_str(&escape(s)),
        Out::Num(n) => out.push_str(&n.to_string()),
        Out::Time(t) => out.push_str(&crate::report::rfc3339(*t as u64 * 1000)),
    }
    out.push_str(&format!("</{name}>"));
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// `Dimensions.member.1.Name=x` → `{"Dimensions": [{"Name": "x"}]}`.
pub fn form_to_value(form: &[(String, String)]) -> Value {
    let mut root = Value::Object(Map::new());
    for (k, v) in form {
        if k == "Action" || k == "Version" {
            continue;
        }
        let parts: Vec<&str> = k.split('.').collect();
        insert(&mut root, &parts, v);
    }
    root
}

fn insert(node: &mut Value, path: &[&str], value: &str) {
    let Some((first, rest)) = path.split_first() else {
        *node = Value::String(value.to_string());
        return;
    };
    if *first == "member" {
        let Some((idx, rest)) = rest.split_first() else {
            return;
        };
        let Ok(i) = idx.parse::<usize>() else { return };
        if i == 0 || i > 10_000 {
            return;
        }
        if !node.is_array() {
            *node = Value::Array(Vec::new());
        }
        if let Value::Array(a) = node {
            while a.len() < i {
                a.push(Value::Null);
            }
            insert(&mut a[i - 1], rest, value);
        }
        return;
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let Value::Object(m) = node {
        let child = m.entry(first.to_string()).or_insert(Value::Null);
        insert(child, rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_become_nested_values() {
        let form: Vec<(String, String)> = [
            ("Action", "GetMetricStatistics"),
            ("Namespace", "AWS/Lambda"),
            ("Dimensions.member.1.Name", "FunctionName"),
            ("Dimensions.member.1.Value", "f"),
            ("Statistics.member.2", "Average"),
            ("Statistics.member.1", "Sum"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let v = form_to_value(&form);
        assert_eq!(
            v,
            serde_json::json!({
                "Namespace": "AWS/Lambda",
                "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
                "Statistics": ["Sum", "Average"],
            })
        );
    }

    #[test]
    fn errors_carry_the_query_code_in_every_protocol() {
        let cw = CloudWatch::in_memory();
        let r = handle_json(
            &cw,
            "1",
            "GraniteServiceVersion20100801.PutMetricData",
            b"{}",
        );
        assert_eq!(r.status, 400);
        assert!(
            r.headers
                .contains(&("x-amzn-query-error", "MissingParameter;Sender".into()))
        );
        let r = handle_cbor(&cw, "1", "Nope", &[0xa0]);
        assert_eq!(r.status, 400);
        let r = handle_query(&cw, "1", &[("Action".into(), "ListMetrics".into())], "rid");
        assert_eq!(r.status, 200);
        let body = String::from_utf8(r.body).unwrap();
        assert!(body.starts_with("<ListMetricsResponse"), "{body}");
    }
}
