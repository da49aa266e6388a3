//! EventBridge content filtering: an event pattern is parsed once into a [`Pattern`] and
//! matched against events (any JSON document) as often as needed.
//!
//! One matcher serves every place Updraft filters events (EventBridge rules, queue
//! `FilterCriteria`, object notifications), so the whole syntax lives here, pure and without I/O:
//! exact values (strings, numbers compared as numbers, booleans, `null`), `prefix` and `suffix`
//! (each optionally `equals-ignore-case`), `anything-but` (a value, a list, or a `prefix`,
//! `suffix`, `wildcard` or `equals-ignore-case` inside it), `numeric` ranges, `exists`,
//! `equals-ignore-case`, `wildcard`, `cidr` and `$or`.
//!
//! Semantics follow EventBridge's documentation: all fields of a pattern must match (AND), the
//! values listed for one field are alternatives (OR); when the event's field holds an array, the
//! field matches if any element does; a field that is absent matches only `{"exists": false}`.
//! Matching works on leaves: an object where the pattern expects a value counts as absent.

mod cidr;
mod wildcard;

use serde_json::{Map, Value};

pub use cidr::Cidr;

/// Why a pattern was refused. The text is the reason EventBridge gives after
/// "Event pattern is not valid. Reason: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, PatternError> {
    Err(PatternError(msg.into()))
}

/// A parsed event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    root: Node,
}

/// An object level of a pattern: every field must match, and one alternative of each `$or`.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    fields: Vec<(String, Field)>,
    ors: Vec<Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Nested(Node),
    /// Alternatives: the field matches when any of them does.
    Leaf(Vec<Matcher>),
}

/// A literal an event value is compared with.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

impl Literal {
    fn equals(&self, v: &Value) -> bool {
        match (self, v) {
            (Literal::Str(a), Value::String(b)) => a == b,
            (Literal::Num(a), Value::Number(b)) => b.as_f64().is_some_and(|b| b == *a),
            (Literal::Bool(a), Value::Bool(b)) => a == b,
            (Literal::Null, Value::Null) => true,
            _ => false,
        }
    }
}

/// How a string is compared.
#[derive(Debug, Clone, PartialEq)]
enum Text {
    Exact(String),
    IgnoreCase(String),
}

impl Text {
    fn prefix_of(&self, s: &str) -> bool {
        match self {
            Text::Exact(p) => s.starts_with(p.as_str()),
            Text::IgnoreCase(p) => s.to_lowercase().starts_with(p.as_str()),
        }
    }
    fn suffix_of(&self, s: &str) -> bool {
        match self {
            Text::Exact(p) => s.ends_with(p.as_str()),
            Text::IgnoreCase(p) => s.to_lowercase().ends_with(p.as_str()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Lt,
    Le,
    Eq,
    Gt,
    Ge,
}

/// What `anything-but` excludes.
#[derive(Debug, Clone, PartialEq)]
enum Excluded {
    Values(Vec<Literal>),
    Prefixes(Vec<Text>),
    Suffixes(Vec<Text>),
    Wildcards(Vec<wildcard::Wildcard>),
    IgnoreCase(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Equals(Literal),
    Prefix(Text),
    Suffix(Text),
    AnythingBut(Excluded),
    Numeric(Vec<(Cmp, f64)>),
    Exists(bool),
    EqualsIgnoreCase(String),
    Wildcard(wildcard::Wildcard),
    Cidr(Cidr),
}

impl Pattern {
    /// Parses a pattern given as JSON text.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return err(format!("Filter is not valid JSON: {e}")),
        };
        Self::from_value(&v)
    }

    /// Parses a pattern given as a JSON value.
    pub fn from_value(v: &Value) -> Result<Self, PatternError> {
        let Value::Object(o) = v else {
            return err("Filter is not an object");
        };
        Ok(Self {
            root: parse_node(o)?,
        })
    }

    /// Whether `event` matches this pattern.
    pub fn matches(&self, event: &Value) -> bool {
        match_node(&self.root, Some(event))
    }
}

fn parse_node(o: &Map<String, Value>) -> Result<Node, PatternError> {
    let mut node = Node {
        fields: Vec::new(),
        ors: Vec::new(),
    };
    for (key, v) in o {
        if key == "$or" {
            let Value::Array(alts) = v else {
                return err("It must be an Array followed with $or.");
            };
            let mut parsed = Vec::new();
            for alt in alts {
                let Value::Object(alt) = alt else {
                    return err("Only JSON object is allowed in array of $or relationship.");
                };
                parsed.push(parse_node(alt)?);
            }
            if alts.len() < 2 {
                return err("There must have at least 2 Objects in $or relationship.");
            }
            node.ors.push(parsed);
            continue;
        }
        let field = match v {
            Value::Object(inner) => Field::Nested(parse_node(inner)?),
            Value::Array(items) => {
                let matchers = items
                    .iter()
                    .map(parse_matcher)
                    .collect::<Result<Vec<_>, _>>()?;
                if matchers.is_empty() {
                    return err("Empty arrays are not allowed");
                }
                Field::Leaf(matchers)
            }
            _ => return err(format!("\"{key}\" must be an object or an array")),
        };
        node.fields.push((key.clone(), field));
    }
    if o.is_empty() {
        return err("Empty objects are not allowed");
    }
    Ok(node)
}

fn literal(v: &Value) -> Option<Literal> {
    match v {
        Value::String(s) => Some(Literal::Str(s.clone())),
        Value::Number(n) => n.as_f64().map(Literal::Num),
        Value::Bool(b) => Some(Literal::Bool(*b)),
        Value::Null => Some(Literal::Null),
        _ => None,
    }
}

/// A string, or a non-empty list of strings, as the value of `what`.
fn string_or_list(v: &Value, what: &str) -> Result<Vec<String>, PatternError> {
    let bad = || PatternError(format!("{what} match pattern must be a string"));
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

/// `"x"` or `{"equals-ignore-case": "x"}` as the value of `prefix` / `suffix`.
fn text_operand(v: &Value, op: &str) -> Result<Text, PatternError> {
    match v {
        Value::String(s) => Ok(Text::Exact(s.clone())),
        Value::Object(o) if o.len() == 1 => match o.get("equals-ignore-case") {
            Some(Value::String(s)) => Ok(Text::IgnoreCase(s.to_lowercase())),
            _ => err(format!(
                "Value of {op} must be a string or a valid json object"
            )),
        },
        _ => err(format!("{op} match pattern must be a string")),
    }
}

fn parse_matcher(v: &Value) -> Result<Matcher, PatternError> {
    let Value::Object(o) = v else {
        return literal(v).map(Matcher::Equals).ok_or_else(|| {
            PatternError("Match value must be String, number, true, false, or null".into())
        });
    };
    let Some((op, arg)) = o.iter().next() else {
        return err("Match expression name not found");
    };
    if o.len() != 1 {
        return err("Only one key allowed in match expression");
    }
    match op.as_str() {
        "prefix" => Ok(Matcher::Prefix(text_operand(arg, "prefix")?)),
        "suffix" => Ok(Matcher::Suffix(text_operand(arg, "suffix")?)),
        "equals-ignore-case" => match arg {
            Value::String(s) => Ok(Matcher::EqualsIgnoreCase(s.to_lowercase())),
            _ => err("equals-ignore-case match pattern must be a string"),
        },
        "wildcard" => match arg {
            Value::String(s) => Ok(Matcher::Wildcard(wildcard::Wildcard::parse(s)?)),
            _ => err("wildcard match pattern must be a string"),
        },
        "exists" => match arg {
            Value::Bool(b) => Ok(Matcher::Exists(*b)),
            _ => err("exists match pattern must be either true or false."),
        },
        "cidr" => match arg {
            Value::String(s) => Ok(Matcher::Cidr(Cidr::parse(s)?)),
            _ => err("prefix match pattern must be a string"),
        },
        "numeric" => parse_numeric(arg).map(Matcher::Numeric),
        "anything-but" => parse_anything_but(arg).map(Matcher::AnythingBut),
        other => err(format!("Unrecognized match type {other}")),
    }
}

fn parse_numeric(arg: &Value) -> Result<Vec<(Cmp, f64)>, PatternError> {
    let Value::Array(items) = arg else {
        return err("Value of numeric must be an array.");
    };
    fn op(v: Option<&Value>) -> Result<(Cmp, &str), PatternError> {
        let Some(Value::String(o)) = v else {
            return err(format!(
                "Invalid member in numeric match: {}",
                v.map(Value::to_string).unwrap_or_default()
            ));
        };
        Ok((
            match o.as_str() {
                "<" => Cmp::Lt,
                "<=" => Cmp::Le,
                "=" => Cmp::Eq,
                ">" => Cmp::Gt,
                ">=" => Cmp::Ge,
                other => return err(format!("Unrecognized numeric range operator: {other}")),
            },
            o.as_str(),
        ))
    }
    let num = |v: Option<&Value>, name: &str| -> Result<f64, PatternError> {
        v.and_then(Value::as_f64)
            .ok_or_else(|| PatternError(format!("Value of {name} must be numeric")))
    };
    let (first, name) = op(items.first())?;
    let name = if first == Cmp::Eq { "equals" } else { name };
    let bottom = num(items.get(1), name)?;
    let mut out = vec![(first, bottom)];
    if items.len() > 2 {
        if !matches!(first, Cmp::Gt | Cmp::Ge) {
            return err("Too many elements in numeric expression");
        }
        let (second, name) = match &items[2] {
            Value::String(o) if o == "<" => (Cmp::Lt, "<"),
            Value::String(o) if o == "<=" => (Cmp::Le, "<="),
            Value::String(o) => return err(format!("Bad numeric range operator: {o}")),
            other => return err(format!("Bad value in numeric range: {other}")),
        };
        let top = num(items.get(3), name)?;
        if items.len() > 4 {
            return err("Too many terms in numeric range expression");
        }
        if bottom >= top {
            return err("Bottom must be less than top");
        }
        out.push((second, top));
    }
    Ok(out)
}

fn parse_anything_but(arg: &Value) -> Result<Excluded, PatternError> {
    match arg {
        Value::Array(items) => {
            let strings = items.iter().all(Value::is_string);
            let numbers = items.iter().all(Value::is_number);
            if items
                .iter()
                .any(|i| !matches!(i, Value::String(_) | Value::Number(_)))
            {
                return err("Inside anything but list, start|null|boolean is not supported.");
            }
            if items.is_empty() || !(strings || numbers) {
                return err(
                    "Inside anything but list, either all values are number or string, mixed type is not supported",
                );
            }
            Ok(Excluded::Values(items.iter().filter_map(literal).collect()))
        }
        Value::String(_) | Value::Number(_) => {
            Ok(Excluded::Values(literal(arg).into_iter().collect()))
        }
        Value::Object(o) => {
            let Some((op, v)) = o.iter().next() else {
                return err("Anything-But expression name not found");
            };
            if o.len() != 1 {
                return err("Only one key allowed in match expression");
            }
            let texts = |what: &str| -> Result<Vec<String>, PatternError> {
                let list = string_or_list(v, what)?;
                if list.iter().any(String::is_empty) {
                    return err("Null prefix/suffix not allowed");
                }
                Ok(list)
            };
            match op.as_str() {
                "prefix" => Ok(Excluded::Prefixes(match v {
                    Value::Object(_) => vec![text_operand(v, "prefix")?],
                    _ => texts("prefix/suffix")?
                        .into_iter()
                        .map(Text::Exact)
                        .collect(),
                })),
                "suffix" => Ok(Excluded::Suffixes(match v {
                    Value::Object(_) => vec![text_operand(v, "suffix")?],
                    _ => texts("prefix/suffix")?
                        .into_iter()
                        .map(Text::Exact)
                        .collect(),
                })),
                "wildcard" => Ok(Excluded::Wildcards(
                    string_or_list(v, "wildcard")?
                        .iter()
                        .map(|s| wildcard::Wildcard::parse(s))
                        .collect::<Result<_, _>>()?,
                )),
                "equals-ignore-case" => Ok(Excluded::IgnoreCase(match v {
                    Value::Array(items)
                        if items.iter().all(Value::is_string) && !items.is_empty() =>
                    {
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_lowercase)
                            .collect()
                    }
                    Value::String(s) => vec![s.to_lowercase()],
                    _ => {
                        return err(
                            "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.",
                        );
                    }
                })),
                other => err(format!("Unsupported anything-but pattern: {other}")),
            }
        }
        _ => err("Value of anything-but must be an array or single string/number value."),
    }
}

/// The leaf values of a field: an array's leaf elements, or the value itself. Objects (and
/// arrays inside arrays) are not leaves.
fn leaves(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter(|i| !matches!(i, Value::Object(_) | Value::Array(_)))
            .collect(),
        Value::Object(_) => Vec::new(),
        other => vec![other],
    }
}

fn match_node(node: &Node, v: Option<&Value>) -> bool {
    // An array of objects matches a nested pattern when one of its objects does.
    if let Some(Value::Array(items)) = v {
        let objects: Vec<&Value> = items.iter().filter(|i| i.is_object()).collect();
        if !objects.is_empty() {
            return objects.into_iter().any(|o| match_node(node, Some(o)));
        }
    }
    let obj = v.and_then(Value::as_object);
    node.fields.iter().all(|(key, field)| {
        let child = obj.and_then(|o| o.get(key));
        match field {
            Field::Nested(inner) => match_node(inner, child),
            Field::Leaf(matchers) => {
                let vals = child.map(leaves).unwrap_or_default();
                matchers.iter().any(|m| match_leaf(m, &vals))
            }
        }
    }) && node
        .ors
        .iter()
        .all(|alts| alts.iter().any(|alt| match_node(alt, v)))
}

fn match_leaf(m: &Matcher, vals: &[&Value]) -> bool {
    match m {
        Matcher::Exists(want) => vals.is_empty() != *want,
        _ => vals.iter().any(|v| match_value(m, v)),
    }
}

fn match_value(m: &Matcher, v: &Value) -> bool {
    let s = v.as_str();
    match m {
        Matcher::Equals(lit) => lit.equals(v),
        Matcher::Prefix(t) => s.is_some_and(|s| t.prefix_of(s)),
        Matcher::Suffix(t) => s.is_some_and(|s| t.suffix_of(s)),
        Matcher::EqualsIgnoreCase(want) => s.is_some_and(|s| s.to_lowercase() == *want),
        Matcher::Wildcard(w) => s.is_some_and(|s| w.matches(s)),
        Matcher::Cidr(c) => s.is_some_and(|s| c.contains(s)),
        Matcher::Exists(_) => true,
        Matcher::Numeric(conds) => v.as_f64().is_some_and(|n| {
            conds.iter().all(|(c, x)| match c {
                Cmp::Lt => n < *x,
                Cmp::Le => n <= *x,
                Cmp::Eq => n == *x,
                Cmp::Gt => n > *x,
                Cmp::Ge => n >= *x,
            })
        }),
        Matcher::AnythingBut(ex) => match ex {
            Excluded::Values(lits) => !lits.iter().any(|l| l.equals(v)),
            Excluded::Prefixes(ps) => s.is_some_and(|s| !ps.iter().any(|p| p.prefix_of(s))),
            Excluded::Suffixes(ps) => s.is_some_and(|s| !ps.iter().any(|p| p.suffix_of(s))),
            Excluded::Wildcards(ws) => s.is_some_and(|s| !ws.iter().any(|w| w.matches(s))),
            Excluded::IgnoreCase(xs) => s.is_some_and(|s| {
                let l = s.to_lowercase();
                !xs.contains(&l)
            }),
        },
    }
}

#[cfg(test)]
mod tests;
