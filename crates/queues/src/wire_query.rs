//! SQS's query protocol: form-encoded `Action=<Operation>&...` (in a POST body, or the query
//! string of a GET), sent to the queue URL or to `/`, answered in XML. Older SDKs and many
//! existing tools speak it.
//!
//! The form's flattened fields (`Attribute.1.Name`, `MessageAttribute.1.Value.StringValue`,
//! `SendMessageBatchRequestEntry.2.Id`, ...) are rebuilt into the JSON protocol's shape, so
//! `ops.rs` serves both protocols; the JSON answer is rendered back into SQS's XML.

use std::collections::BTreeMap;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::{CallContext, QueueError, Queues, WireResponse, ops};

/// Parts of the deepest form key kept (see `to_json`).
const MAX_KEY_DEPTH: usize = 8;

const XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
pub fn parse_form(text: &str) -> Vec<(String, String)> {
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (dec(k), dec(v)),
            None => (dec(p), String::new()),
        })
        .collect()
}

/// Serves one query-protocol request. `params` are the decoded form fields; `path_queue` the
/// queue URL the request was posted to, when its path names one.
pub async fn handle(
    qs: &Arc<Queues>,
    ctx: &CallContext,
    params: &[(String, String)],
    path_queue: Option<String>,
) -> WireResponse {
    let Some(action) = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.clone())
    else {
        return error(ctx, &QueueError::MissingParameter("Action".into()));
    };
    let mut input = to_json(params);
    if let (Value::Object(m), Some(url)) = (&mut input, path_queue)
        && !m.contains_key("QueueUrl")
    {
        m.insert("QueueUrl".into(), Value::String(url));
    }
    match ops::execute(qs, ctx, &action, &input).await {
        Ok(v) => WireResponse {
            status: 200,
            headers: vec![("content-type", "text/xml".into())],
            body: render(&action, &v, &ctx.request_id).into_bytes(),
        },
        Err(e) => error(ctx, &e),
    }
}

/// A tree of the form's dotted keys: numbers index lists.
#[derive(Default)]
struct Node {
    value: Option<String>,
    children: BTreeMap<String, Node>,
}

fn insert(node: &mut Node, path: &[&str], value: &str) {
    match path.split_first() {
        None => node.value = Some(value.to_string()),
        Some((head, rest)) => insert(
            node.children.entry((*head).to_string()).or_default(),
            rest,
            value,
        ),
    }
}

fn is_index(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit())
}

fn node_json(n: &Node) -> Value {
    if n.children.is_empty() {
        return Value::String(n.value.clone().unwrap_or_default());
    }
    if n.children.keys().all(|k| is_index(k)) {
        let mut items: Vec<(u64, &Node)> = n
            .children
            .iter()
            .map(|(k, v)| (k.parse().unwrap_or(0), v))
            .collect();
        items.sort_by_key(|(i, _)| *i);
        return Value::Array(items.into_iter().map(|(_, v)| node_json(v)).collect());
    }
    let mut m = Map::new();
    for (k, v) in &n.children {
        let (name, val) = normalize(k, node_json(v));
        m.insert(name, val);
    }
    Value::Object(m)
}

/// A list of `{Name|Key, Value}` pairs as a map.
fn pairs_to_map(v: Value, key: &str) -> Value {
    let mut m = Map::new();
    if let Value::Array(items) = v {
        for it in items {
            if let Some(k) = it.get(key).and_then(Value::as_str) {
                m.insert(
                    k.to_string(),
                    it.get("Value").cloned().unwrap_or(Value::Null),
                );
            }
        }
    }
    Value::Object(m)
}

fn as_list(v: Value) -> Value {
    match v {
        Value::Array(_) => v,
        other => Value::Array(vec![other]),
    }
}

/// The query protocol's member name and value → the JSON protocol's.
fn normalize(k: &str, v: Value) -> (String, Value) {
    match k {
        "Attribute" => ("Attributes".into(), pairs_to_map(v, "Name")),
        "MessageAttribute" => ("MessageAttributes".into(), pairs_to_map(v, "Name")),
        "MessageSystemAttribute" => ("MessageSystemAttributes".into(), pairs_to_map(v, "Name")),
        "Tag" => ("Tags".into(), pairs_to_map(v, "Key")),
        "AttributeName" => ("AttributeNames".into(), as_list(v)),
        "MessageAttributeName" => ("MessageAttributeNames".into(), as_list(v)),
        "MessageSystemAttributeName" => ("MessageSystemAttributeNames".into(), as_list(v)),
        "TagKey" => ("TagKeys".into(), as_list(v)),
        k if k.ends_with("BatchRequestEntry") => ("Entries".into(), as_list(v)),
        _ => (k.to_string(), v),
    }
}

fn to_json(params: &[(String, String)]) -> Value {
    let mut root = Node::default();
    for (k, v) in params {
        let path: Vec<&str> = k.split('.').collect();
        // SQS's deepest field is six parts deep
        // (`SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue`); a deeper key
        // is no field of any operation, and building it would recurse as deep as it is long.
        if path.len() > MAX_KEY_DEPTH {
            continue;
        }
        insert(&mut root, &path, v);
    }
    let mut out = node_json(&root);
    // CreateQueue's tags are `Tag.N.Key` in the query protocol and `tags` in JSON.
    if let Value::Object(m) = &mut out
        && m.get("Action").and_then(Value::as_str) == Some("CreateQueue")
        && let Some(t) = m.remove("Tags")
    {
        m.insert("tags".into(), t);
    }
    out
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\r' => o.push_str("&#xD;"),
            c => o.push(c),
        }
    }
    o
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => esc(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn map_entries(out: &mut String, tag: &str, key: &str, v: &Value) {
    if let Value::Object(m) = v {
        for (k, val) in m {
            out.push_str(&format!(
                "<{tag}><{key}>{}</{key}><Value>{}</Value></{tag}>",
                esc(k),
                scalar(val)
            ));
        }
    }
}

fn fields(out: &mut String, action: &str, v: &Value) {
    let Value::Object(m) = v else { return };
    for (k, val) in m {
        match (k.as_str(), val) {
            ("Attributes", _) => map_entries(out, "Attribute", "Name", val),
            ("Tags", _) => map_entries(out, "Tag", "Key", val),
            ("MessageAttributes", Value::Object(attrs)) => {
                for (name, a) in attrs {
                    out.push_str(&format!(
                        "<MessageAttribute><Name>{}</Name><Value>",
                        esc(name)
                    ));
                    fields(out, action, a);
                    out.push_str("</Value></MessageAttribute>");
                }
            }
            (_, Value::Array(items)) => {
                let tag = match (action, k.as_str()) {
                    (_, "QueueUrls" | "queueUrls") => "QueueUrl".to_string(),
                    (_, "Messages") => "Message".to_string(),
                    (_, "Failed") => "BatchResultErrorEntry".to_string(),
                    (_, "Results") => "ListMessageMoveTasksResultEntry".to_string(),
                    (a, "Successful") => format!("{a}ResultEntry"),
                    (_, other) => other.to_string(),
                };
                for it in items {
                    if it.is_object() {
                        out.push_str(&format!("<{tag}>"));
                        fields(out, action, it);
                        out.push_str(&format!("</{tag}>"));
                    } else {
                        out.push_str(&format!("<{tag}>{}</{tag}>", scalar(it)));
                    }
                }
            }
            (_, Value::Object(_)) => {
                out.push_str(&format!("<{k}>"));
                fields(out, action, val);
                out.push_str(&format!("</{k}>"));
            }
            _ => out.push_str(&format!("<{k}>{}</{k}>", scalar(val))),
        }
    }
}

fn render(action: &str, v: &Value, request_id: &str) -> String {
    let mut out = format!("<?xml version=\"1.0\"?><{action}Response xmlns=\"{XMLNS}\">");
    let mut inner = String::new();
    fields(&mut inner, action, v);
    if inner.is_empty() {
        out.push_str(&format!("<{action}Result/>"));
    } else {
        out.push_str(&format!("<{action}Result>{inner}</{action}Result>"));
    }
    out.push_str(&format!(
        "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        esc(request_id)
    ));
    out
}

/// The query protocol's error answer.
pub fn error(ctx: &CallContext, e: &QueueError) -> WireResponse {
    let w = e.wire();
    WireResponse {
        status: w.status,
        headers: vec![("content-type", "text/xml".into())],
        body: format!(
            "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message><Detail/></Error><RequestId>{}</RequestId></ErrorResponse>",
            w.fault,
            w.query_code,
            esc(&e.to_string()),
            esc(&ctx.request_id)
        )
        .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_become_the_json_shape() {
        let p = parse_form(
            "Action=SendMessageBatch&QueueUrl=http%3A%2F%2Fh%2F111122223333%2Fq\
             &SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=hi+there\
             &SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=City\
             &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=String\
             &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=Any\
             &SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=x",
        );
        let v = to_json(&p);
        assert_eq!(v["QueueUrl"], "http://h/111122223333/q");
        assert_eq!(v["Entries"][0]["MessageBody"], "hi there");
        assert_eq!(
            v["Entries"][0]["MessageAttributes"]["City"]["StringValue"],
            "Any"
        );
        assert_eq!(v["Entries"][1]["Id"], "b");
        let c = to_json(&parse_form(
            "Action=CreateQueue&QueueName=q&Attribute.1.Name=DelaySeconds&Attribute.1.Value=5&Tag.1.Key=k&Tag.1.Value=v&AttributeName.1=All",
        ));
        assert_eq!(c["Attributes"]["DelaySeconds"], "5");
        assert_eq!(c["tags"]["k"], "v");
        assert_eq!(c["AttributeNames"][0], "All");
    }

    #[test]
    fn hostile_keys_are_ignored_not_followed() {
        let deep = format!("Action=ListQueues&{}=x", "a.".repeat(1_000_000));
        let v = to_json(&parse_form(&deep));
        assert_eq!(v["Action"], "ListQueues");
        assert_eq!(v.as_object().unwrap().len(), 1);
        // Mixed index and name children, empty parts, huge indices: no panic, some shape.
        let odd = to_json(&parse_form(
            "Attribute.1.Name=a&Attribute.x=1&Attribute..=2&Tag.99999999999999999999.Key=k&=&&.",
        ));
        assert!(odd.is_object());
    }

    #[test]
    fn answers_render_as_sqs_xml() {
        let v = serde_json::json!({"Attributes": {"VisibilityTimeout": "30"}});
        let x = render("GetQueueAttributes", &v, "rid");
        assert!(x.contains("<GetQueueAttributesResult><Attribute><Name>VisibilityTimeout</Name><Value>30</Value></Attribute></GetQueueAttributesResult>"), "{x}");
        let v = serde_json::json!({"Successful": [{"Id": "a", "MessageId": "m"}], "Failed": []});
        let x = render("SendMessageBatch", &v, "rid");
        assert!(x.contains("<SendMessageBatchResultEntry><Id>a</Id><MessageId>m</MessageId></SendMessageBatchResultEntry>"), "{x}");
        let x = render("DeleteQueue", &serde_json::json!({}), "rid");
        assert!(x.contains("<DeleteQueueResult/>"));
    }
}
