//! Metric math for `GetMetricData`: `+ - * /`, parentheses, numbers and the ids of other
//! queries (`m1+m2`, `m1/m2*100`, `(m1-m2)/m1`). Series combine point by point on the
//! timestamps both have; a number applies to every point.

use std::collections::BTreeMap;

/// A time series: timestamp (epoch seconds) to value.
pub type Series = BTreeMap<i64, f64>;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Id(String),
    Bin(Box<Expr>, char, Box<Expr>),
    Neg(Box<Expr>),
}

/// Parses an expression; the error is a message for the caller.
pub fn parse(src: &str) -> Result<Expr, String> {
    let tokens = tokenize(src)?;
    let mut p = Parser { t: &tokens, i: 0 };
    let e = p.sum()?;
    if p.i != tokens.len() {
        return Err(format!("Unexpected token in expression: {}", tokens[p.i]));
    }
    Ok(e)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Id(String),
    Op(char),
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Num(n) => write!(f, "{n}"),
            Tok::Id(s) => f.write_str(s),
            Tok::Op(c) => write!(f, "{c}"),
        }
    }
}

fn tokenize(src: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if "+-*/()".contains(c) {
            out.push(Tok::Op(c));
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == '.') {
                i += 1;
            }
            let text: String = b[s..i].iter().collect();
            out.push(Tok::Num(
                text.parse()
                    .map_err(|_| format!("Invalid number in expression: {text}"))?,
            ));
        } else if c.is_ascii_alphabetic() {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Tok::Id(b[s..i].iter().collect()));
        } else {
            return Err(format!("Unsupported character in expression: {c}"));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    t: &'a [Tok],
    i: usize,
}

impl Parser<'_> {
    fn peek_op(&self) -> Option<char> {
        match self.t.get(self.i) {
            Some(Tok::Op(c)) => Some(*c),
            _ => None,
        }
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut l = self.product()?;
        while let Some(op @ ('+' | '-')) = self.peek_op() {
            self.i += 1;
            let r = self.product()?;
            l = Expr::Bin(Box::new(l), op, Box::new(r));
        }
        Ok(l)
    }

    fn product(&mut self) -> Result<Expr, String> {
        let mut l = self.unary()?;
        while let Some(op @ ('*' | '/')) = self.peek_op() {
            self.i += 1;
            let r = self.unary()?;
            l = Expr::Bin(Box::new(l), op, Box::new(r));
        }
        Ok(l)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_op() == Some('-') {
            self.i += 1;
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, String> {
        let tok = self
            .t
            .get(self.i)
            .cloned()
            .ok_or_else(|| "Unexpected end of expression".to_string())?;
        self.i += 1;
        match tok {
            Tok::Num(n) => Ok(Expr::Num(n)),
            Tok::Id(s) => {
                if self.peek_op() == Some('(') {
                    return Err(format!("Unsupported function in expression: {s}"));
                }
                Ok(Expr::Id(s))
            }
            Tok::Op('(') => {
                let e = self.sum()?;
                if self.peek_op() != Some(')') {
                    return Err("Missing closing parenthesis in expression".into());
                }
                self.i += 1;
                Ok(e)
            }
            Tok::Op(c) => Err(format!("Unexpected token in expression: {c}")),
        }
    }
}

/// What an expression evaluates to.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    Series(Series),
}

fn apply(op: char, a: f64, b: f64) -> Option<f64> {
    let v = match op {
        '+' => a + b,
        '-' => a - b,
        '*' => a * b,
        _ => {
            if b == 0.0 {
                return None;
            }
            a / b
        }
    };
    v.is_finite().then_some(v)
}

/// Evaluates `e`, looking ids up with `lookup` (`None`: an unknown id).
pub fn eval(e: &Expr, lookup: &dyn Fn(&str) -> Option<Series>) -> Result<Value, String> {
    Ok(match e {
        Expr::Num(n) => Value::Scalar(*n),
        Expr::Id(id) => Value::Series(
            lookup(id).ok_or_else(|| format!("Unrecognized metric id in expression: {id}"))?,
        ),
        Expr::Neg(x) => match eval(x, lookup)? {
            Value::Scalar(n) => Value::Scalar(-n),
            Value::Series(s) => Value::Series(s.into_iter().map(|(t, v)| (t, -v)).collect()),
        },
        Expr::Bin(l, op, r) => match (eval(l, lookup)?, eval(r, lookup)?) {
            (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(apply(*op, a, b).unwrap_or(0.0)),
            (Value::Series(s), Value::Scalar(b)) => Value::Series(
                s.into_iter()
                    .filter_map(|(t, a)| apply(*op, a, b).map(|v| (t, v)))
                    .collect(),
            ),
            (Value::Scalar(a), Value::Series(s)) => Value::Series(
                s.into_iter()
                    .filter_map(|(t, b)| apply(*op, a, b).map(|v| (t, v)))
                    .collect(),
            ),
            (Value::Series(x), Value::Series(y)) => Value::Series(
                x.into_iter()
                    .filter_map(|(t, a)| y.get(&t).and_then(|b| apply(*op, a, *b)).map(|v| (t, v)))
                    .collect(),
            ),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, f64)]) -> Series {
        points.iter().copied().collect()
    }

    #[test]
    fn precedence_and_series_math() {
        let m1 = series(&[(0, 2.0), (60, 4.0)]);
        let m2 = series(&[(0, 1.0), (60, 0.0), (120, 5.0)]);
        let look = |id: &str| match id {
            "m1" => Some(m1.clone()),
            "m2" => Some(m2.clone()),
            _ => None,
        };
        let e = parse("m1+m2").unwrap();
        assert_eq!(
            eval(&e, &look).unwrap(),
            Value::Series(series(&[(0, 3.0), (60, 4.0)]))
        );
        let e = parse("m2/m1*100").unwrap();
        assert_eq!(
            eval(&e, &look).unwrap(),
            Value::Series(series(&[(0, 50.0), (60, 0.0)]))
        );
        // Division by zero drops the point.
        let e = parse("m1 / m2").unwrap();
        assert_eq!(eval(&e, &look).unwrap(), Value::Series(series(&[(0, 2.0)])));
        let e = parse("-(m1 - 1) * 2").unwrap();
        assert_eq!(
            eval(&e, &look).unwrap(),
            Value::Series(series(&[(0, -2.0), (60, -6.0)]))
        );
        assert!(eval(&parse("m3").unwrap(), &look).is_err());
        assert!(parse("m1 +").is_err());
        assert!(parse("SUM(m1)").is_err());
        assert!(parse("(m1").is_err());
    }
}
