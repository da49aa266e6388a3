//! What a target receives: the whole event, a constant `Input`, the part of the event an
//! `InputPath` selects, or an `InputTransformer`'s template filled from the event.
//!
//! Paths are the JSONPath subset EventBridge documents for targets: `$`, `$.a.b`, `$.a[0]`,
//! `$['a b']`.

use serde_json::Value;

/// A path or template EventBridge would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransformError(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A parsed JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath(Vec<Step>);

impl JsonPath {
    pub fn parse(s: &str) -> Result<Self, TransformError> {
        let bad = || TransformError(format!("Invalid JSONPath: {s}"));
        let rest = s.strip_prefix('$').ok_or_else(bad)?;
        let b = rest.as_bytes();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'.' => {
                    let start = i + 1;
                    let mut j = start;
                    while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                        j += 1;
                    }
                    if j == start {
                        return Err(bad());
                    }
                    steps.push(Step::Key(rest[start..j].to_string()));
                    i = j;
                }
                b'[' => {
                    let end = rest[i..].find(']').ok_or_else(bad)? + i;
                    let inner = &rest[i + 1..end];
                    if let Some(q) = inner.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
                        steps.push(Step::Key(q.to_string()));
                    } else {
                        steps.push(Step::Index(inner.parse().map_err(|_| bad())?));
                    }
                    i = end + 1;
                }
                _ => return Err(bad()),
            }
        }
        Ok(Self(steps))
    }

    /// The selected value, if the event has it.
    pub fn select<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        let mut cur = v;
        for s in &self.0 {
            cur = match s {
                Step::Key(k) => cur.get(k.as_str())?,
                Step::Index(i) => cur.get(*i)?,
            };
        }
        Some(cur)
    }
}

/// What a matched rule hands one target, derived from the event.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetInput {
    /// The event itself.
    Event,
    /// `Input`: constant JSON text.
    Constant(String),
    /// `InputPath`.
    Path(JsonPath),
    /// `InputTransformer`.
    Transformer(Transformer),
}

/// Facts about the rule a template may name (`<aws.events.rule-arn>` and friends).
pub struct RuleFacts<'a> {
    pub rule_arn: &'a str,
    pub rule_name: &'a str,
    pub ingestion_time: &'a str,
}

/// A parsed `InputTransformer`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transformer {
    paths: Vec<(String, JsonPath)>,
    template: String,
}

const RESERVED: [&str; 5] = [
    "aws.events.rule-arn",
    "aws.events.rule-name",
    "aws.events.event.ingestion-time",
    "aws.events.event",
    "aws.events.event.json",
];

impl Transformer {
    pub fn new(paths: Vec<(String, String)>, template: String) -> Result<Self, TransformError> {
        if paths.len() > 100 {
            return Err(TransformError(
                "InputPathsMap has more than 100 entries".into(),
            ));
        }
        let mut parsed = Vec::new();
        for (k, p) in paths {
            if RESERVED.contains(&k.as_str()) {
                return Err(TransformError(format!(
                    "InputTransformer key {k} is reserved"
                )));
            }
            parsed.push((k, JsonPath::parse(&p)?));
        }
        Ok(Self {
            paths: parsed,
            template,
        })
    }

    /// Fills the template: a placeholder inside a JSON string receives the value's text (a
    /// string without its quotes), one outside a string receives the value as JSON; a path the
    /// event lacks gives an empty string inside quotes and `null` outside.
    pub fn apply(&self, event: &Value, facts: &RuleFacts<'_>) -> String {
        let lookup = |name: &str| -> Option<Value> {
            match name {
                "aws.events.rule-arn" => Some(Value::String(facts.rule_arn.into())),
                "aws.events.rule-name" => Some(Value::String(facts.rule_name.into())),
                "aws.events.event.ingestion-time" => {
                    Some(Value::String(facts.ingestion_time.into()))
                }
                "aws.events.event" | "aws.events.event.json" => Some(event.clone()),
                _ => self
                    .paths
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, p)| p.select(event).cloned().unwrap_or(Value::Null)),
            }
        };
        let t = &self.template;
        let mut out = String::with_capacity(t.len());
        let mut in_string = false;
        let mut escaped = false;
        let mut i = 0;
        while i < t.len() {
            let c = t[i..].chars().next().unwrap_or('\0');
            if c == '<'
                && let Some(end) = t[i + 1..].find('>')
                && let name = &t[i + 1..i + 1 + end]
                && !name.is_empty()
                && let Some(v) = lookup(name)
            {
                if in_string {
                    let text = match &v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    let quoted = Value::String(text).to_string();
                    out.push_str(&quoted[1..quoted.len() - 1]);
                } else {
                    out.push_str(&v.to_string());
                }
                i += end + 2;
                continue;
            }
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
            }
            out.push(c);
            i += c.len_utf8();
        }
        out
    }
}

impl TargetInput {
    /// The payload for one target.
    pub fn render(&self, event: &Value, facts: &RuleFacts<'_>) -> Vec<u8> {
        match self {
            TargetInput::Event => event.to_string().into_bytes(),
            TargetInput::Constant(s) => s.clone().into_bytes(),
            TargetInput::Path(p) => p
                .select(event)
                .map(|v| v.to_string())
                .unwrap_or_else(|| "null".into())
                .into_bytes(),
            TargetInput::Transformer(t) => t.apply(event, facts).into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event() -> Value {
        json!({
            "id": "e1", "source": "shop", "detail-type": "Order",
            "detail": {"instance": "i-123", "state": "running", "count": 3,
                       "tags": ["a", "b"], "nested": {"x": 1}, "quote": "say \"hi\""}
        })
    }

    fn facts() -> RuleFacts<'static> {
        RuleFacts {
            rule_arn: "arn:aws:events:us-east-1:111122223333:rule/r",
            rule_name: "r",
            ingestion_time: "2026-12-07T14:00:00Z",
        }
    }

    fn t(paths: &[(&str, &str)], template: &str) -> String {
        Transformer::new(
            paths
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            template.into(),
        )
        .unwrap()
        .apply(&event(), &facts())
    }

    #[test]
    fn paths() {
        let e = event();
        assert_eq!(JsonPath::parse("$").unwrap().select(&e), Some(&e));
        assert_eq!(
            JsonPath::parse("$.detail.state").unwrap().select(&e),
            Some(&json!("running"))
        );
        assert_eq!(
            JsonPath::parse("$.detail.tags[1]").unwrap().select(&e),
            Some(&json!("b"))
        );
        assert_eq!(
            JsonPath::parse("$['detail-type']").unwrap().select(&e),
            Some(&json!("Order"))
        );
        assert_eq!(JsonPath::parse("$.detail.none").unwrap().select(&e), None);
        for bad in ["detail", "$..a", "$.a[x]", "$.a[0"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn transformer_templates() {
        // The documentation's example: values inside strings lose their quotes.
        assert_eq!(
            t(
                &[
                    ("instance", "$.detail.instance"),
                    ("state", "$.detail.state")
                ],
                r#""<instance> is in state <state>""#
            ),
            r#""i-123 is in state running""#
        );
        // Outside strings, values are JSON.
        assert_eq!(
            t(
                &[
                    ("state", "$.detail.state"),
                    ("count", "$.detail.count"),
                    ("tags", "$.detail.tags"),
                    ("n", "$.detail.nested")
                ],
                r#"{"s": <state>, "c": <count>, "t": <tags>, "n": <n>}"#
            ),
            r#"{"s": "running", "c": 3, "t": ["a","b"], "n": {"x":1}}"#
        );
        // Quotes inside values are escaped; missing paths are empty or null.
        assert_eq!(
            t(
                &[("q", "$.detail.quote"), ("m", "$.detail.none")],
                r#"{"q": "<q>", "m": <m>, "e": "<m>"}"#
            ),
            r#"{"q": "say \"hi\"", "m": null, "e": ""}"#
        );
        // Reserved variables; unknown placeholders and escaped quotes stay as written.
        let out = t(
            &[],
            r#"{"arn": "<aws.events.rule-arn>", "name": "<aws.events.rule-name>", "ev": <aws.events.event.json>, "k": "a\"<x>"}"#,
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["arn"], "arn:aws:events:us-east-1:111122223333:rule/r");
        assert_eq!(v["name"], "r");
        assert_eq!(v["ev"]["id"], "e1");
        assert_eq!(v["k"], "a\"<x>");
        assert!(
            Transformer::new(vec![("aws.events.event".into(), "$".into())], "x".into()).is_err()
        );
    }

    #[test]
    fn inputs() {
        let e = event();
        assert_eq!(
            TargetInput::Event.render(&e, &facts()),
            e.to_string().into_bytes()
        );
        assert_eq!(
            TargetInput::Constant(r#"{"k":1}"#.into()).render(&e, &facts()),
            br#"{"k":1}"#
        );
        assert_eq!(
            TargetInput::Path(JsonPath::parse("$.detail.nested").unwrap()).render(&e, &facts()),
            br#"{"x":1}"#
        );
    }
}
