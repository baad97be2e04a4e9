//! Subscription filters, evaluated on the broker (RocketMQ's): a tag expression (`a || b`,
//! `*`), decided from the consume-queue entry's tag hash without reading the record, or an
//! SQL92 expression over the message's properties (`region = 'eu' AND amount > 5`).
//!
//! The SQL dialect is RocketMQ's subset: numeric comparison (`=`, `<>`, `!=`, `<`, `<=`, `>`,
//! `>=`), `BETWEEN`, `IN`, `IS [NOT] NULL`, `AND`, `OR`, `NOT`, string equality, `TRUE` /
//! `FALSE`, parentheses; plus `LIKE` with `%` and `_` (JMS selectors have it). Keywords are
//! case-insensitive. Identifiers name message headers (user properties); `TAGS` also names
//! the message's tag. A missing property is NULL, and comparisons with NULL are unknown, as in
//! SQL: `NOT (a > 5)` does not match a message without `a`. Values are compared as numbers
//! when the literal is a number (a header `"7"` is 7), as text when it is a string.

use super::error::{CoreError, CoreResult};
use super::message::{tag_hash, tag_of, Properties, Value};

/// A consumer group's filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    /// The expression as given (two subscriptions share a group only with the same text).
    pub source: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Tag names and their hashes.
    Tags(Vec<(String, u64)>),
    Sql(Expr),
}

/// Consume arguments (AMQP) and subscription headers (STOMP) naming a filter: SQL92 in
/// `selector` (ActiveMQ's STOMP header) or `x-selector`; tags in `x-stream-filter` (RabbitMQ
/// streams' name: text `a || b`, or a list of tags).
pub const SQL_ARGS: [&str; 2] = ["selector", "x-selector"];
/// See [`SQL_ARGS`].
pub const TAG_ARGS: [&str; 1] = ["x-stream-filter"];

impl Filter {
    /// The filter a consumer's arguments or headers ask for (see [`SQL_ARGS`]), if any.
    ///
    /// # Errors
    /// `Invalid` for a bad expression, or for both a selector and tags.
    pub fn from_args(get: impl Fn(&str) -> Option<Value>) -> CoreResult<Option<Filter>> {
        let sql = SQL_ARGS.iter().find_map(|k| get(k));
        let tags = TAG_ARGS.iter().find_map(|k| get(k));
        match (sql, tags) {
            (Some(_), Some(_)) => Err(CoreError::Invalid(
                "give a selector or tags, not both".into(),
            )),
            (Some(v), None) => {
                let text = v
                    .as_str_lossy()
                    .ok_or_else(|| CoreError::Invalid("a selector must be text".into()))?;
                Filter::sql(&text).map(Some)
            }
            (None, Some(Value::List(items))) => {
                let names: Vec<String> = items.iter().filter_map(Value::as_str_lossy).collect();
                Filter::tags(&names.join(" || "))
            }
            (None, Some(v)) => {
                let text = v
                    .as_str_lossy()
                    .ok_or_else(|| CoreError::Invalid("tags must be text or a list".into()))?;
                Filter::tags(&text)
            }
            (None, None) => Ok(None),
        }
    }

    /// A tag expression: tags separated by `||` (`*` or empty: every message, so `None`).
    ///
    /// # Errors
    /// `Invalid` for an empty tag between `||`.
    pub fn tags(expr: &str) -> CoreResult<Option<Filter>> {
        let expr = expr.trim();
        if expr.is_empty() || expr == "*" {
            return Ok(None);
        }
        let mut tags = Vec::new();
        for t in expr.split("||").map(str::trim) {
            if t.is_empty() {
                return Err(CoreError::Invalid(format!(
                    "tag expression '{expr}': empty tag"
                )));
            }
            tags.push((t.to_string(), tag_hash(Some(t))));
        }
        Ok(Some(Filter {
            source: format!("TAG:{expr}"),
            kind: Kind::Tags(tags),
        }))
    }

    /// An SQL92 expression over message properties (see the module docs).
    ///
    /// # Errors
    /// `Invalid` with what is wrong and where.
    pub fn sql(expr: &str) -> CoreResult<Filter> {
        let tokens =
            lex(expr).map_err(|e| CoreError::Invalid(format!("selector '{expr}': {e}")))?;
        let mut p = Parser { tokens, pos: 0 };
        let e = p
            .or()
            .and_then(|e| match p.peek() {
                None => Ok(e),
                Some(t) => Err(format!("unexpected {t:?}")),
            })
            .map_err(|e| CoreError::Invalid(format!("selector '{expr}': {e}")))?;
        Ok(Filter {
            source: format!("SQL:{}", expr.trim()),
            kind: Kind::Sql(e),
        })
    }

    /// Whether a consume-queue entry with this tag hash may match (false: skip the record
    /// without reading it).
    pub(crate) fn may_match(&self, entry_tag_hash: u64) -> bool {
        match &self.kind {
            Kind::Tags(tags) => tags.iter().any(|(_, h)| *h == entry_tag_hash),
            Kind::Sql(_) => true,
        }
    }

    /// Whether a message matches (for tags: the tag itself, against hash collisions).
    pub(crate) fn matches(&self, p: &Properties) -> bool {
        match &self.kind {
            Kind::Tags(tags) => tag_of(p).is_some_and(|t| tags.iter().any(|(n, _)| n == t)),
            Kind::Sql(e) => e.eval(p) == Some(true),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Num(f64),
    Str(String),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Const(bool),
    Compare(String, Cmp, Lit),
    Between(String, f64, f64, bool),
    In(String, Vec<Lit>, bool),
    IsNull(String, bool),
    Like(String, String, bool),
}

/// A property's value as text or number (`None`: NULL).
fn property(p: &Properties, name: &str) -> Option<Value> {
    if let Some(v) = p.header(name) {
        return Some(v.clone());
    }
    if name == "TAGS" {
        return tag_of(p).map(|t| Value::Str(t.to_string()));
    }
    None
}

fn as_num(v: &Value) -> Option<f64> {
    match v {
        Value::I64(n) => Some(*n as f64),
        Value::U64(n) => Some(*n as f64),
        Value::F64(f) => Some(*f),
        other => other.as_str_lossy()?.trim().parse().ok(),
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        other => match other.as_str_lossy()?.as_str() {
            s if s.eq_ignore_ascii_case("true") => Some(true),
            s if s.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        },
    }
}

fn compare(v: &Value, op: Cmp, lit: &Lit) -> Option<bool> {
    use std::cmp::Ordering;
    let ord = match lit {
        Lit::Num(n) => as_num(v)?.partial_cmp(n)?,
        Lit::Str(s) => {
            let t = v.as_str_lossy()?;
            // Strings compare for equality only (RocketMQ's rule).
            return match op {
                Cmp::Eq => Some(t == *s),
                Cmp::Ne => Some(t != *s),
                _ => None,
            };
        }
        Lit::Bool(b) => {
            let x = as_bool(v)?;
            return match op {
                Cmp::Eq => Some(x == *b),
                Cmp::Ne => Some(x != *b),
                _ => None,
            };
        }
    };
    Some(match op {
        Cmp::Eq => ord == Ordering::Equal,
        Cmp::Ne => ord != Ordering::Equal,
        Cmp::Lt => ord == Ordering::Less,
        Cmp::Le => ord != Ordering::Greater,
        Cmp::Gt => ord == Ordering::Greater,
        Cmp::Ge => ord != Ordering::Less,
    })
}

fn like(text: &str, pattern: &str) -> bool {
    fn go(t: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(t.get(i..).unwrap_or_default(), rest)),
            Some(('_', rest)) => t.split_first().is_some_and(|(_, tr)| go(tr, rest)),
            Some((c, rest)) => t
                .split_first()
                .is_some_and(|(x, tr)| x == c && go(tr, rest)),
        }
    }
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    go(&t, &p)
}

impl Expr {
    /// SQL's three-valued logic: `None` is unknown.
    fn eval(&self, p: &Properties) -> Option<bool> {
        match self {
            Expr::Or(a, b) => match (a.eval(p), b.eval(p)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::And(a, b) => match (a.eval(p), b.eval(p)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Not(a) => a.eval(p).map(|x| !x),
            Expr::Const(b) => Some(*b),
            Expr::Compare(name, op, lit) => compare(&property(p, name)?, *op, lit),
            Expr::Between(name, lo, hi, neg) => {
                let n = as_num(&property(p, name)?)?;
                Some((*lo <= n && n <= *hi) != *neg)
            }
            Expr::In(name, list, neg) => {
                let v = property(p, name)?;
                let mut unknown = false;
                for l in list {
                    match compare(&v, Cmp::Eq, l) {
                        Some(true) => return Some(!neg),
                        Some(false) => {}
                        None => unknown = true,
                    }
                }
                (!unknown).then_some(*neg)
            }
            Expr::IsNull(name, neg) => Some(property(p, name).is_none() != *neg),
            Expr::Like(name, pat, neg) => {
                let t = property(p, name)?.as_str_lossy()?;
                Some(like(&t, pat) != *neg)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = s.char_indices().peekable();
    while let Some(&(i, c)) = it.peek() {
        match c {
            c if c.is_whitespace() => {
                it.next();
            }
            '(' | ')' | ',' => {
                it.next();
                out.push(match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    _ => Tok::Comma,
                });
            }
            '\'' => {
                it.next();
                let mut text = String::new();
                loop {
                    match it.next() {
                        Some((_, '\'')) if it.peek().is_some_and(|(_, c)| *c == '\'') => {
                            it.next();
                            text.push('\'');
                        }
                        Some((_, '\'')) => break,
                        Some((_, c)) => text.push(c),
                        None => return Err(format!("unterminated string at {i}")),
                    }
                }
                out.push(Tok::Str(text));
            }
            '=' | '<' | '>' | '!' => {
                it.next();
                let next = it.peek().map(|(_, c)| *c);
                let op = match (c, next) {
                    ('<', Some('=')) => "<=",
                    ('>', Some('=')) => ">=",
                    ('<', Some('>')) => "<>",
                    ('!', Some('=')) => "!=",
                    ('=', _) => "=",
                    ('<', _) => "<",
                    ('>', _) => ">",
                    _ => return Err(format!("unexpected '!' at {i}")),
                };
                if op.len() == 2 {
                    it.next();
                }
                out.push(Tok::Op(op));
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let mut text = String::new();
                text.push(c);
                it.next();
                while let Some(&(_, d)) = it.peek() {
                    if d.is_ascii_alphanumeric() || d == '.' {
                        text.push(d);
                        it.next();
                    } else {
                        break;
                    }
                }
                let n = text
                    .parse::<f64>()
                    .map_err(|_| format!("bad number '{text}' at {i}"))?;
                out.push(Tok::Num(n));
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let mut text = String::new();
                while let Some(&(_, d)) = it.peek() {
                    if d.is_alphanumeric() || matches!(d, '_' | '$' | '.' | '-') {
                        text.push(d);
                        it.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Ident(text));
            }
            other => return Err(format!("unexpected '{other}' at {i}")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), String> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(format!("expected {kw}, found {:?}", self.peek()))
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.keyword("OR") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.not()?;
        while self.keyword("AND") {
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.predicate()
    }

    fn number(&mut self) -> Result<f64, String> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(n),
            t => Err(format!("expected a number, found {t:?}")),
        }
    }

    fn literal(&mut self) -> Result<Lit, String> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(Lit::Num(n)),
            Some(Tok::Str(s)) => Ok(Lit::Str(s)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("true") => Ok(Lit::Bool(true)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("false") => Ok(Lit::Bool(false)),
            t => Err(format!("expected a value, found {t:?}")),
        }
    }

    fn predicate(&mut self) -> Result<Expr, String> {
        let name = match self.next() {
            Some(Tok::LParen) => {
                let e = self.or()?;
                return match self.next() {
                    Some(Tok::RParen) => Ok(e),
                    t => Err(format!("expected ')', found {t:?}")),
                };
            }
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("true") => return Ok(Expr::Const(true)),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("false") => {
                return Ok(Expr::Const(false))
            }
            Some(Tok::Ident(s)) => s,
            t => return Err(format!("expected a property name, found {t:?}")),
        };
        if self.keyword("IS") {
            let neg = self.keyword("NOT");
            self.expect_keyword("NULL")?;
            return Ok(Expr::IsNull(name, neg));
        }
        let neg = self.keyword("NOT");
        if self.keyword("BETWEEN") {
            let lo = self.number()?;
            self.expect_keyword("AND")?;
            let hi = self.number()?;
            return Ok(Expr::Between(name, lo, hi, neg));
        }
        if self.keyword("IN") {
            if self.next() != Some(Tok::LParen) {
                return Err("expected '(' after IN".into());
            }
            let mut list = vec![self.literal()?];
            loop {
                match self.next() {
                    Some(Tok::Comma) => list.push(self.literal()?),
                    Some(Tok::RParen) => break,
                    t => return Err(format!("expected ',' or ')', found {t:?}")),
                }
            }
            return Ok(Expr::In(name, list, neg));
        }
        if self.keyword("LIKE") {
            return match self.next() {
                Some(Tok::Str(p)) => Ok(Expr::Like(name, p, neg)),
                t => Err(format!("expected a pattern string, found {t:?}")),
            };
        }
        if neg {
            return Err("expected BETWEEN, IN or LIKE after NOT".into());
        }
        let op = match self.next() {
            Some(Tok::Op("=")) => Cmp::Eq,
            Some(Tok::Op("<>" | "!=")) => Cmp::Ne,
            Some(Tok::Op("<")) => Cmp::Lt,
            Some(Tok::Op("<=")) => Cmp::Le,
            Some(Tok::Op(">")) => Cmp::Gt,
            Some(Tok::Op(">=")) => Cmp::Ge,
            t => return Err(format!("expected a comparison after '{name}', found {t:?}")),
        };
        Ok(Expr::Compare(name, op, self.literal()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(h: &[(&str, &str)], tag: Option<&str>) -> Properties {
        Properties {
            headers: h
                .iter()
                .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
                .collect(),
            tag: tag.map(str::to_string),
            ..Properties::default()
        }
    }

    fn sql(e: &str, h: &[(&str, &str)]) -> bool {
        Filter::sql(e).unwrap().matches(&props(h, None))
    }

    #[test]
    fn tag_expressions() {
        assert!(Filter::tags("*").unwrap().is_none());
        assert!(Filter::tags(" ").unwrap().is_none());
        assert!(Filter::tags("a || ").is_err());
        let f = Filter::tags("created || paid").unwrap().unwrap();
        assert!(f.may_match(tag_hash(Some("paid"))));
        assert!(!f.may_match(tag_hash(Some("shipped"))));
        assert!(!f.may_match(0));
        assert!(f.matches(&props(&[], Some("created"))));
        assert!(f.matches(&props(&[("x-tag", "paid")], None)));
        assert!(!f.matches(&props(&[], None)));
    }

    #[test]
    fn sql92_subset() {
        let h = [("a", "7"), ("region", "eu"), ("price", "12.5")];
        assert!(sql("a > 5 AND region = 'eu'", &h));
        assert!(!sql("a > 7", &h));
        assert!(sql("a >= 7 and a <= 7 and a <> 8 and a != 9", &h));
        assert!(sql("price BETWEEN 10 AND 13", &h));
        assert!(sql("a NOT BETWEEN 8 AND 9", &h));
        assert!(sql("region IN ('us', 'eu')", &h));
        assert!(sql("region NOT IN ('us', 'cn')", &h));
        assert!(sql("missing IS NULL AND region IS NOT NULL", &h));
        assert!(sql("region LIKE 'e_' AND region NOT LIKE 'u%'", &h));
        assert!(sql("(a < 0 OR region = 'eu') AND NOT region = 'us'", &h));
        assert!(sql("TRUE", &h));
        // NULL is unknown, and NOT unknown is unknown.
        assert!(!sql("missing > 1", &h));
        assert!(!sql("NOT (missing > 1)", &h));
        assert!(sql("missing > 1 OR a = 7", &h));
        // Text that is not a number never compares as one.
        assert!(!sql("region > 1", &h));
        assert!(sql("name = 'it''s'", &[("name", "it's")]));
        assert!(Filter::sql("TAGS = 'x'")
            .unwrap()
            .matches(&props(&[], Some("x"))));
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        for bad in [
            "a >",
            "a = 'x",
            "(a = 1",
            "a IN 1",
            "a BETWEEN 1",
            "a ! 1",
            "= 3",
            "a = 1 b",
        ] {
            let e = Filter::sql(bad).unwrap_err().to_string();
            assert!(e.contains("selector"), "{bad}: {e}");
        }
    }
}
