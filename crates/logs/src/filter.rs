//! CloudWatch Logs filter patterns, compiled once per request and matched against each message.
//!
//! Supported forms:
//! - empty: every event;
//! - terms: `ERROR timeout` (every term), `"exact phrase"`, `-term` (must be absent), `?a ?b`
//!   (at least one of them); terms are case-sensitive substrings, as on CloudWatch;
//! - JSON: `{ $.level = "ERROR" }`, `{ $.latency > 100 }`, `{ $.a.b[0] != "x*" }`,
//!   `{ $.x IS NULL }`, `{ $.x NOT EXISTS }`, `{ $.ok IS TRUE }`, joined by `&&` and `||` with
//!   parentheses; `*` in a string value is a wildcard; an event that is not a JSON object never
//!   matches;
//! - space-delimited: `[ip, user, ..., status = 404, size > 1000]`: fields split at spaces
//!   (a `"…"` or `[…]` field is one field), `...` stands for any number of fields.

use serde_json::Value;

/// A pattern CloudWatch would refuse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid filter pattern: {0}")]
pub struct PatternError(pub String);

fn bad(msg: impl Into<String>) -> PatternError {
    PatternError(msg.into())
}

/// A compiled filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All,
    Terms(Terms),
    /// A JSON expression and the texts any matching message must contain (its keys and exact
    /// string values), checked before a message is parsed: most lines of a large log are turned
    /// away by a substring search instead of a JSON parse.
    Json(Expr, Vec<String>),
    Delimited(Vec<Field>),
}

/// Texts every message matching `e` contains verbatim: the last key of each selector that must
/// be present and exact (wildcard-free) string values compared with `=`. Values that JSON
/// would escape are left out, and so are keys or values on one side of an `||` only.
fn required_texts(e: &Expr, out: &mut Vec<String>) {
    let plain = |t: &str| !t.chars().any(|c| c == '"' || c == '\\' || c.is_control());
    let key = |sel: &[Step], out: &mut Vec<String>| {
        if let Some(Step::Key(k)) = sel.last()
            && plain(k)
        {
            out.push(format!("\"{k}\""));
        }
    };
    match e {
        Expr::And(a, b) => {
            required_texts(a, out);
            required_texts(b, out);
        }
        Expr::Or(..) | Expr::NotExists(_) => {}
        Expr::Cmp(sel, op, want) => {
            key(sel, out);
            if let (Op::Eq, Operand::Str(s)) = (op, want)
                && !s.contains('*')
                && plain(s)
            {
                out.push(s.clone());
            }
        }
        Expr::IsNull(sel) | Expr::IsBool(sel, _) => key(sel, out),
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Terms {
    all: Vec<String>,
    none: Vec<String>,
    any: Vec<String>,
}

/// A JSON pattern's expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Vec<Step>, Op, Operand),
    IsNull(Vec<Step>),
    NotExists(Vec<Step>),
    IsBool(Vec<Step>, bool),
}

/// One step of a selector: `.name` or `[index]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Num(f64),
    Str(String),
}

/// A field of a space-delimited pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// `...`: any number of fields.
    Ellipsis,
    /// A named field, with an optional condition.
    Named(Option<(Op, Operand)>),
}

impl Filter {
    /// Compiles `pattern`.
    pub fn parse(pattern: &str) -> Result<Filter, PatternError> {
        let p = pattern.trim();
        if p.is_empty() {
            return Ok(Filter::All);
        }
        if let Some(inner) = p.strip_prefix('{') {
            let inner = inner
                .strip_suffix('}')
                .ok_or_else(|| bad("a JSON pattern must end with '}'"))?;
            let mut lx = Lexer::new(inner);
            let e = parse_or(&mut lx)?;
            lx.skip_ws();
            if !lx.done() {
                return Err(bad(format!("unexpected text at '{}'", lx.rest())));
            }
            let mut texts = Vec::new();
            required_texts(&e, &mut texts);
            return Ok(Filter::Json(e, texts));
        }
        if let Some(inner) = p.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| bad("a space-delimited pattern must end with ']'"))?;
            return parse_delimited(inner).map(Filter::Delimited);
        }
        parse_terms(p).map(Filter::Terms)
    }

    /// Whether `message` matches.
    pub fn matches(&self, message: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::Terms(t) => {
                t.all.iter().all(|w| message.contains(w.as_str()))
                    && !t.none.iter().any(|w| message.contains(w.as_str()))
                    && (t.any.is_empty() || t.any.iter().any(|w| message.contains(w.as_str())))
            }
            Filter::Json(e, texts) => {
                let body = message.trim_start();
                if !body.starts_with('{') || !texts.iter().all(|t| body.contains(t.as_str())) {
                    return false;
                }
                match serde_json::from_str::<Value>(body) {
                    Ok(v @ Value::Object(_)) => eval(e, &v),
                    _ => false,
                }
            }
            Filter::Delimited(fields) => match_delimited(fields, message),
        }
    }
}

fn parse_terms(p: &str) -> Result<Terms, PatternError> {
    let mut t = Terms::default();
    let mut chars = p.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let (kind, start) = match c {
            '-' | '?' => {
                chars.next();
                (Some(c), i + 1)
            }
            _ => (None, i),
        };
        let word = if p[start..].starts_with('"') {
            chars.next();
            let mut s = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            s.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => s.push(c),
                }
            }
            if !closed {
                return Err(bad("unterminated quoted term"));
            }
            s
        } else {
            let mut s = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                s.push(c);
                chars.next();
            }
            s
        };
        if word.is_empty() {
            continue;
        }
        match kind {
            Some('-') => t.none.push(word),
            Some('?') => t.any.push(word),
            _ => t.all.push(word),
        }
    }
    Ok(t)
}

struct Lexer<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Self {
        Lexer { s, at: 0 }
    }
    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }
    fn done(&self) -> bool {
        self.at >= self.s.len()
    }
    fn skip_ws(&mut self) {
        let r = self.rest();
        self.at += r.len() - r.trim_start().len();
    }
    fn eat(&mut self, tok: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(tok) {
            self.at += tok.len();
            true
        } else {
            false
        }
    }
    /// Eats a case-insensitive keyword followed by a non-word character.
    fn eat_word(&mut self, w: &str) -> bool {
        self.skip_ws();
        let r = self.rest();
        if r.len() >= w.len()
            && r[..w.len()].eq_ignore_ascii_case(w)
            && !r[w.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            self.at += w.len();
            true
        } else {
            false
        }
    }
}

fn parse_or(lx: &mut Lexer<'_>) -> Result<Expr, PatternError> {
    let mut left = parse_and(lx)?;
    while lx.eat("||") {
        let right = parse_and(lx)?;
        left = Expr::Or(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn parse_and(lx: &mut Lexer<'_>) -> Result<Expr, PatternError> {
    let mut left = parse_atom(lx)?;
    while lx.eat("&&") {
        let right = parse_atom(lx)?;
        left = Expr::And(Box::new(left), Box::new(right));
    }
    Ok(left)
}

fn parse_atom(lx: &mut Lexer<'_>) -> Result<Expr, PatternError> {
    if lx.eat("(") {
        let e = parse_or(lx)?;
        if !lx.eat(")") {
            return Err(bad("missing ')'"));
        }
        return Ok(e);
    }
    let sel = parse_selector(lx)?;
    if lx.eat_word("IS") {
        if lx.eat_word("NULL") {
            return Ok(Expr::IsNull(sel));
        }
        if lx.eat_word("TRUE") {
            return Ok(Expr::IsBool(sel, true));
        }
        if lx.eat_word("FALSE") {
            return Ok(Expr::IsBool(sel, false));
        }
        return Err(bad("IS must be followed by NULL, TRUE or FALSE"));
    }
    if lx.eat_word("NOT") {
        if lx.eat_word("EXISTS") {
            return Ok(Expr::NotExists(sel));
        }
        return Err(bad("NOT must be followed by EXISTS"));
    }
    let op = parse_op(lx)?;
    let value = parse_operand(lx)?;
    if matches!(value, Operand::Str(_)) && !matches!(op, Op::Eq | Op::Ne) {
        return Err(bad("strings compare only with = and !="));
    }
    Ok(Expr::Cmp(sel, op, value))
}

fn parse_op(lx: &mut Lexer<'_>) -> Result<Op, PatternError> {
    for (tok, op) in [
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("=", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
    ] {
        if lx.eat(tok) {
            return Ok(op);
        }
    }
    Err(bad(format!("expected a comparison at '{}'", lx.rest())))
}

fn parse_selector(lx: &mut Lexer<'_>) -> Result<Vec<Step>, PatternError> {
    if !lx.eat("$") {
        return Err(bad(format!("expected a selector ($.…) at '{}'", lx.rest())));
    }
    let mut steps = Vec::new();
    loop {
        let r = lx.rest();
        if let Some(after) = r.strip_prefix('.') {
            let n = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '@'))
                .unwrap_or(after.len());
            if n == 0 {
                return Err(bad("empty selector step"));
            }
            steps.push(Step::Key(after[..n].to_string()));
            lx.at += 1 + n;
        } else if let Some(after) = r.strip_prefix('[') {
            let end = after.find(']').ok_or_else(|| bad("missing ']'"))?;
            let i = after[..end]
                .trim()
                .parse()
                .map_err(|_| bad("array index must be a number"))?;
            steps.push(Step::Index(i));
            lx.at += end + 2;
        } else {
            break;
        }
    }
    if steps.is_empty() {
        return Err(bad("a selector needs at least one field"));
    }
    Ok(steps)
}

fn parse_operand(lx: &mut Lexer<'_>) -> Result<Operand, PatternError> {
    lx.skip_ws();
    let r = lx.rest();
    if let Some(after) = r.strip_prefix('"') {
        let mut s = String::new();
        let mut it = after.char_indices();
        while let Some((i, c)) = it.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = it.next() {
                        s.push(n);
                    }
                }
                '"' => {
                    lx.at += 1 + i + 1;
                    return Ok(Operand::Str(s));
                }
                c => s.push(c),
            }
        }
        return Err(bad("unterminated string"));
    }
    let n = r
        .find(|c: char| c.is_whitespace() || c == ')' || c == '&' || c == '|')
        .unwrap_or(r.len());
    if n == 0 {
        return Err(bad("missing value"));
    }
    let word = &r[..n];
    lx.at += n;
    Ok(match word.parse::<f64>() {
        Ok(v) => Operand::Num(v),
        Err(_) => Operand::Str(word.to_string()),
    })
}

fn select<'v>(v: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    let mut cur = v;
    for s in steps {
        cur = match (s, cur) {
            (Step::Key(k), Value::Object(m)) => m.get(k)?,
            (Step::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// `*` matches any run of characters; everything else literally.
fn wildcard(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    if !text.ends_with(last) {
        return false;
    }
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn compare(value: Option<&Value>, op: Op, want: &Operand) -> bool {
    match want {
        Operand::Num(n) => {
            let got = match value {
                Some(Value::Number(x)) => x.as_f64(),
                _ => None,
            };
            let Some(g) = got else {
                return op == Op::Ne && value.is_some();
            };
            match op {
                Op::Eq => g == *n,
                Op::Ne => g != *n,
                Op::Lt => g < *n,
                Op::Le => g <= *n,
                Op::Gt => g > *n,
                Op::Ge => g >= *n,
            }
        }
        Operand::Str(s) => {
            let text = match value {
                Some(Value::String(x)) => x.clone(),
                Some(Value::Number(x)) => x.to_string(),
                Some(Value::Bool(b)) => b.to_string(),
                _ => return op == Op::Ne && value.is_some(),
            };
            let eq = wildcard(s, &text);
            if op == Op::Eq { eq } else { !eq }
        }
    }
}

fn eval(e: &Expr, v: &Value) -> bool {
    match e {
        Expr::And(a, b) => eval(a, v) && eval(b, v),
        Expr::Or(a, b) => eval(a, v) || eval(b, v),
        Expr::Cmp(sel, op, want) => compare(select(v, sel), *op, want),
        Expr::IsNull(sel) => matches!(select(v, sel), Some(Value::Null)),
        Expr::NotExists(sel) => select(v, sel).is_none(),
        Expr::IsBool(sel, b) => select(v, sel) == Some(&Value::Bool(*b)),
    }
}

fn parse_delimited(inner: &str) -> Result<Vec<Field>, PatternError> {
    let mut fields = Vec::new();
    for raw in inner.split(',') {
        let f = raw.trim();
        if f.is_empty() {
            return Err(bad("empty field in a space-delimited pattern"));
        }
        if f == "..." {
            fields.push(Field::Ellipsis);
            continue;
        }
        let mut lx = Lexer::new(f);
        let n = f
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(f.len());
        if n == 0 {
            return Err(bad(format!("a field needs a name: '{f}'")));
        }
        lx.at = n;
        lx.skip_ws();
        if lx.done() {
            fields.push(Field::Named(None));
            continue;
        }
        let op = parse_op(&mut lx)?;
        let value = parse_operand(&mut lx)?;
        lx.skip_ws();
        if !lx.done() {
            return Err(bad(format!("unexpected text at '{}'", lx.rest())));
        }
        fields.push(Field::Named(Some((op, value))));
    }
    Ok(fields)
}

/// Splits a message into space-delimited fields; `"…"` and `[…]` are one field each.
fn split_fields(message: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = message.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' {
            i += 1;
            continue;
        }
        let (open, close) = match b[i] {
            b'"' => (true, b'"'),
            b'[' => (true, b']'),
            _ => (false, b' '),
        };
        if open {
            let start = i + 1;
            let end = b[start..]
                .iter()
                .position(|&c| c == close)
                .map_or(b.len(), |p| start + p);
            out.push(&message[start..end]);
            i = end + 1;
        } else {
            let start = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            out.push(&message[start..i]);
        }
    }
    out
}

fn field_matches(cond: &Option<(Op, Operand)>, text: &str) -> bool {
    match cond {
        None => true,
        Some((op, want @ Operand::Num(_))) => match text.parse::<f64>() {
            Ok(n) => compare(Some(&Value::from(n)), *op, want),
            Err(_) => false,
        },
        Some((op, want)) => compare(Some(&Value::String(text.to_string())), *op, want),
    }
}

fn match_delimited(fields: &[Field], message: &str) -> bool {
    let parts = split_fields(message);
    fn go(fields: &[Field], parts: &[&str]) -> bool {
        match fields.split_first() {
            None => parts.is_empty(),
            Some((Field::Ellipsis, rest)) => (0..=parts.len()).any(|skip| go(rest, &parts[skip..])),
            Some((Field::Named(cond), rest)) => match parts.split_first() {
                Some((p, more)) => field_matches(cond, p) && go(rest, more),
                None => false,
            },
        }
    }
    go(fields, &parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, msg: &str) -> bool {
        Filter::parse(p).unwrap().matches(msg)
    }

    #[test]
    fn terms_phrases_exclusions_and_alternatives() {
        assert!(m("", "anything"));
        assert!(m("ERROR", "an ERROR here"));
        assert!(!m("ERROR", "an error here"));
        assert!(m("ERROR db", "ERROR in db"));
        assert!(!m("ERROR db", "ERROR in cache"));
        assert!(m("\"in db\"", "ERROR in db"));
        assert!(!m("\"in db\"", "in the db"));
        assert!(m("ERROR -cache", "ERROR in db"));
        assert!(!m("ERROR -cache", "ERROR in cache"));
        assert!(m("?WARN ?ERROR", "ERROR x"));
        assert!(m("?WARN ?ERROR", "WARN x"));
        assert!(!m("?WARN ?ERROR", "INFO x"));
        assert!(Filter::parse("\"open").is_err());
    }

    #[test]
    fn json_patterns() {
        let line = r#"{"level":"ERROR","latency":150,"user":{"id":"u-42","tags":["a","b"]},"ok":true,"gone":null}"#;
        assert!(m(r#"{ $.level = "ERROR" }"#, line));
        assert!(m(r#"{$.level="ERR*"}"#, line));
        assert!(!m(r#"{ $.level = "INFO" }"#, line));
        assert!(m(r#"{ $.level != "INFO" }"#, line));
        assert!(m("{ $.latency > 100 }", line));
        assert!(!m("{ $.latency < 100 }", line));
        assert!(m("{ $.latency >= 150 && $.latency <= 150 }", line));
        assert!(m(r#"{ $.level = "INFO" || $.latency = 150 }"#, line));
        assert!(m(
            r#"{ ($.level = "INFO" || $.latency = 150) && $.user.id = "u-42" }"#,
            line
        ));
        assert!(m(r#"{ $.user.tags[1] = "b" }"#, line));
        assert!(m("{ $.gone IS NULL }", line));
        assert!(m("{ $.missing NOT EXISTS }", line));
        assert!(!m("{ $.level NOT EXISTS }", line));
        assert!(m("{ $.ok IS TRUE }", line));
        assert!(!m("{ $.latency > 100 }", "latency 150 not json"));
        assert!(!m("{ $.latency > 100 }", r#"{"latency":"slow"}"#));
        assert!(m(r#"{ $.level = ERROR }"#, line));
        // The texts checked before parsing never turn away a match.
        assert!(m(r#"{ $.level = "ERROR" && $.user.id = "u-42" }"#, line));
        assert!(!m(r#"{ $.level = "ERROR" }"#, r#"{"lvl":"ERROR"}"#));
        assert!(m(r#"{ $.missing NOT EXISTS || $.level = "X" }"#, line));
        let Filter::Json(_, texts) =
            Filter::parse(r#"{ $.a.level = "ERROR" && $.n > 1 }"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(texts, ["\"level\"", "ERROR", "\"n\""]);
        for bad in [
            "{ $.a = ",
            "{ $.a > \"x\" }",
            "{ level = 1 }",
            "{ $.a = 1",
            "{ $.a = 1 } x",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn space_delimited_patterns() {
        let line =
            r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /a.gif HTTP/1.0" 404 1534"#;
        assert!(m(
            "[ip, id, user, timestamp, request, status_code = 404, size]",
            line
        ));
        assert!(m("[ip, ..., status_code = 404, size > 1000]", line));
        assert!(!m("[ip, ..., status_code = 200, size]", line));
        assert!(m("[ip = 127.0.0.*, ...]", line));
        assert!(!m("[a, b]", line));
    }
}
