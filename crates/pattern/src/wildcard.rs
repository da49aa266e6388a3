//! `wildcard` patterns: `*` stands for any run of characters (including none); `\*` and `\\`
//! are a literal star and backslash.

use crate::PatternError;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    Star,
}

/// A parsed wildcard pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wildcard {
    tokens: Vec<Token>,
}

impl Wildcard {
    pub(crate) fn parse(s: &str) -> Result<Self, PatternError> {
        let mut tokens = Vec::new();
        let mut chars = s.chars().enumerate();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e @ ('*' | '\\'))) => tokens.push(Token::Char(e)),
                    _ => {
                        return Err(PatternError(format!("Invalid escape character at pos {i}")));
                    }
                },
                '*' => {
                    if tokens.last() == Some(&Token::Star) {
                        return Err(PatternError(format!(
                            "Consecutive wildcard characters at pos {i}"
                        )));
                    }
                    tokens.push(Token::Star);
                }
                c => tokens.push(Token::Char(c)),
            }
        }
        Ok(Self { tokens })
    }

    /// Greedy matching with one backtrack point (the last star), linear in practice.
    pub(crate) fn matches(&self, s: &str) -> bool {
        let text: Vec<char> = s.chars().collect();
        let (mut p, mut t) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::Char(c)) if *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                Some(Token::Star) => {
                    star = Some((p, t));
                    p += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|t| *t == Token::Star)
    }
}
