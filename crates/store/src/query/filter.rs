//! The `filter` language: a lexer and a recursive-descent parser into a
//! typed [`Expr`].
//!
//! ```text
//! expr     := and ( "or" and )*
//! and      := unary ( "and" unary )*
//! unary    := "not" unary | primary
//! primary  := "(" expr ")"
//!           | func "(" field "," string ")"          func: startswith endswith contains
//!           | field op literal                         op: eq ne gt ge lt le
//! literal  := 'single quoted' ('' is a quote) | integer | date-time | ENUM_NAME
//! ```
//!
//! Keywords (`and`, `eq`, `startswith`…) are case-insensitive; field names
//! are lowercase, as REST spells them. Every literal is checked against
//! its field's type here, so the compiler only ever sees well-typed
//! comparisons. Limits keep a hostile filter cheap to reject: at most
//! [`MAX_FILTER_BYTES`] of text, [`MAX_DEPTH`] nested parentheses or
//! `not`s, [`MAX_TERMS`] comparisons, [`MAX_LITERAL_CHARS`] per string.

use cdr::{CallStatus, Direction};

use super::QueryError;

pub const MAX_FILTER_BYTES: usize = 4096;
pub const MAX_DEPTH: usize = 32;
pub const MAX_TERMS: usize = 64;
pub const MAX_LITERAL_CHARS: usize = 256;

/// A filterable (and sortable) CDR field, by its REST name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Caller,
    Callee,
    StartedAt,
    EndedAt,
    Direction,
    StatusCode,
    DidCid,
    Trunk,
    SessionId,
    CallStatus,
}

/// What a field's literals are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Time,
    Int,
    Id,
    Direction,
    CallStatus,
}

impl Field {
    pub const ALL: [Field; 10] = [
        Field::Caller,
        Field::Callee,
        Field::StartedAt,
        Field::EndedAt,
        Field::Direction,
        Field::StatusCode,
        Field::DidCid,
        Field::Trunk,
        Field::SessionId,
        Field::CallStatus,
    ];

    /// The REST name.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Caller => "caller",
            Field::Callee => "callee",
            Field::StartedAt => "started_at",
            Field::EndedAt => "ended_at",
            Field::Direction => "direction",
            Field::StatusCode => "status_code",
            Field::DidCid => "did_cid",
            Field::Trunk => "trunk",
            Field::SessionId => "session_id",
            Field::CallStatus => "call_status",
        }
    }

    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The `cdrs` column (alias `c`) it reads. Constant text: the only
    /// way a field reaches SQL.
    pub(crate) const fn column(self) -> &'static str {
        match self {
            Field::Caller => "c.caller",
            Field::Callee => "c.callee",
            Field::StartedAt => "c.started_at",
            Field::EndedAt => "c.ended_at",
            Field::Direction => "c.direction",
            Field::StatusCode => "c.status_code",
            Field::DidCid => "c.did",
            Field::Trunk => "c.trunk_name",
            Field::SessionId => "c.session_id",
            Field::CallStatus => "c.call_status",
        }
    }

    /// The bare column name (as a result column).
    pub(crate) const fn bare_column(self) -> &'static str {
        match self {
            Field::Caller => "caller",
            Field::Callee => "callee",
            Field::StartedAt => "started_at",
            Field::EndedAt => "ended_at",
            Field::Direction => "direction",
            Field::StatusCode => "status_code",
            Field::DidCid => "did",
            Field::Trunk => "trunk_name",
            Field::SessionId => "session_id",
            Field::CallStatus => "call_status",
        }
    }

    pub(crate) const fn kind(self) -> Kind {
        match self {
            Field::Caller | Field::Callee | Field::DidCid | Field::Trunk => Kind::Text,
            Field::StartedAt | Field::EndedAt => Kind::Time,
            Field::StatusCode => Kind::Int,
            Field::SessionId => Kind::Id,
            Field::Direction => Kind::Direction,
            Field::CallStatus => Kind::CallStatus,
        }
    }

    fn expects(self) -> &'static str {
        match self.kind() {
            Kind::Text => "a string in single quotes",
            Kind::Time => "an ISO 8601 date-time with an offset, e.g. 2026-11-28T14:03:07Z",
            Kind::Int => "an integer from 0 to 999",
            Kind::Id => "a session id (decimal digits)",
            Kind::Direction => {
                "one of EXTENSION_CALL, INBOUND_CALL, OUTBOUND_CALL, INBOUND_OUTBOUND_CALL"
            }
            Kind::CallStatus => "one of answered, noanswer, fail",
        }
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn parse(word: &str) -> Option<Cmp> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Cmp::Eq,
            "ne" => Cmp::Ne,
            "gt" => Cmp::Gt,
            "ge" => Cmp::Ge,
            "lt" => Cmp::Lt,
            "le" => Cmp::Le,
            _ => return None,
        })
    }
}

/// A string function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextFn {
    StartsWith,
    EndsWith,
    Contains,
}

impl TextFn {
    fn parse(word: &str) -> Option<TextFn> {
        Some(match word.to_ascii_lowercase().as_str() {
            "startswith" => TextFn::StartsWith,
            "endswith" => TextFn::EndsWith,
            "contains" => TextFn::Contains,
            _ => return None,
        })
    }
}

/// A literal, typed by the field it is compared with.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    /// Unix milliseconds (negative before 1970).
    Time(i64),
    Int(i64),
    /// A session id, as the signed column holds it.
    Id(i64),
    Direction(Direction),
    CallStatus(CallStatus),
}

/// A parsed, typed filter expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Compare {
        field: Field,
        op: Cmp,
        value: Value,
    },
    Text {
        func: TextFn,
        field: Field,
        pattern: String,
    },
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    /// `[A-Za-z_][A-Za-z0-9_]*`
    Word(String),
    /// `'…'` with `''` unescaped.
    Str(String),
    /// Starts with a digit, `+` or `-`: an integer or a date-time.
    Bare(String),
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Word(w) => format!("'{}'", clip(w)),
        Tok::Str(s) => format!("the string '{}'", clip(s)),
        Tok::Bare(b) => format!("'{}'", clip(b)),
    }
}

/// At most 32 characters of user text in an error message.
fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(32).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

fn error(message: impl Into<String>) -> QueryError {
    QueryError::new("filter", message)
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, QueryError> {
    let mut tokens = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push((at, Tok::LParen));
                i += 1;
            }
            ')' => {
                tokens.push((at, Tok::RParen));
                i += 1;
            }
            ',' => {
                tokens.push((at, Tok::Comma));
                i += 1;
            }
            '\'' => {
                let mut value = String::new();
                let mut chars_in = 0;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(error(format!(
                                "the string starting at position {at} has no closing quote"
                            )));
                        }
                        Some((_, '\'')) if matches!(chars.get(i + 1), Some((_, '\''))) => {
                            value.push('\'');
                            i += 2;
                        }
                        Some((_, '\'')) => {
                            i += 1;
                            break;
                        }
                        Some((_, c)) => {
                            value.push(*c);
                            i += 1;
                        }
                    }
                    chars_in += 1;
                    if chars_in > MAX_LITERAL_CHARS {
                        return Err(error(format!(
                            "the string starting at position {at} is longer than \
                             {MAX_LITERAL_CHARS} characters"
                        )));
                    }
                }
                tokens.push((at, Tok::Str(value)));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().map(|(_, c)| c).collect();
                tokens.push((at, Tok::Word(word)));
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let start = i;
                while chars.get(i).is_some_and(|(_, c)| {
                    c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | '+')
                }) {
                    i += 1;
                }
                if i - start > 64 {
                    return Err(error(format!(
                        "the value at position {at} is longer than 64 characters"
                    )));
                }
                let word: String = chars[start..i].iter().map(|(_, c)| c).collect();
                tokens.push((at, Tok::Bare(word)));
            }
            other => {
                return Err(error(format!(
                    "unexpected character {other:?} at position {at}"
                )));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Tok)>,
    next: usize,
    end: usize,
    depth: usize,
    terms: usize,
}

/// Parses a `filter` value.
pub fn parse(text: &str) -> Result<Expr, QueryError> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(error(format!("is longer than {MAX_FILTER_BYTES} bytes")));
    }
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Err(error("is empty"));
    }
    let mut parser = Parser {
        tokens,
        next: 0,
        end: text.len(),
        depth: 0,
        terms: 0,
    };
    let expr = parser.or()?;
    match parser.peek() {
        None => Ok(expr),
        Some(tok) => Err(error(format!(
            "expected 'and', 'or' or the end at position {}, found {}",
            parser.position(),
            describe(tok)
        ))),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.next).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |(at, _)| *at)
    }

    fn bump(&mut self) -> Option<Tok> {
        let tok = self.tokens.get(self.next).map(|(_, t)| t.clone());
        self.next += 1;
        tok
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), QueryError> {
        let at = self.position();
        match self.bump() {
            Some(tok) if tok == want => Ok(()),
            Some(tok) => Err(error(format!(
                "expected {what} at position {at}, found {}",
                describe(&tok)
            ))),
            None => Err(error(format!(
                "expected {what} at position {at}, found the end"
            ))),
        }
    }

    fn deeper(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(error(format!(
                "nests deeper than {MAX_DEPTH} levels of parentheses and 'not'"
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut terms = vec![self.and()?];
        while self.keyword("or") {
            self.next += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut terms = vec![self.unary()?];
        while self.keyword("and") {
            self.next += 1;
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Expr::And(terms)
        })
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.keyword("not") {
            self.next += 1;
            self.deeper()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        let at = self.position();
        match self.bump() {
            Some(Tok::LParen) => {
                self.deeper()?;
                let inner = self.or()?;
                self.expect(Tok::RParen, "')'")?;
                self.depth -= 1;
                Ok(inner)
            }
            Some(Tok::Word(word)) => {
                self.terms += 1;
                if self.terms > MAX_TERMS {
                    return Err(error(format!("has more than {MAX_TERMS} comparisons")));
                }
                if let Some(func) = TextFn::parse(&word) {
                    self.function(func)
                } else {
                    let field = field(&word, at)?;
                    self.comparison(field)
                }
            }
            Some(tok) => Err(error(format!(
                "expected a field, a function or '(' at position {at}, found {}",
                describe(&tok)
            ))),
            None => Err(error(format!(
                "expected a field, a function or '(' at position {at}, found the end"
            ))),
        }
    }

    fn function(&mut self, func: TextFn) -> Result<Expr, QueryError> {
        self.expect(Tok::LParen, "'('")?;
        let at = self.position();
        let field = match self.bump() {
            Some(Tok::Word(word)) => field(&word, at)?,
            Some(tok) => {
                return Err(error(format!(
                    "expected a field at position {at}, found {}",
                    describe(&tok)
                )));
            }
            None => return Err(error(format!("expected a field at position {at}"))),
        };
        if field.kind() != Kind::Text {
            return Err(QueryError::field(
                field,
                "string functions apply to caller, callee, did_cid and trunk only",
            ));
        }
        self.expect(Tok::Comma, "','")?;
        let at = self.position();
        let pattern = match self.bump() {
            Some(Tok::Str(s)) => s,
            Some(tok) => {
                return Err(error(format!(
                    "expected a string in single quotes at position {at}, found {}",
                    describe(&tok)
                )));
            }
            None => return Err(error(format!("expected a string at position {at}"))),
        };
        self.expect(Tok::RParen, "')'")?;
        Ok(Expr::Text {
            func,
            field,
            pattern,
        })
    }

    fn comparison(&mut self, field: Field) -> Result<Expr, QueryError> {
        let at = self.position();
        let op = match self.bump() {
            Some(Tok::Word(w)) if Cmp::parse(&w).is_some() => Cmp::parse(&w).expect("checked"),
            Some(tok) => {
                return Err(error(format!(
                    "expected an operator (eq ne gt ge lt le) after {} at position {at}, found {}",
                    field.name(),
                    describe(&tok)
                )));
            }
            None => {
                return Err(error(format!(
                    "expected an operator (eq ne gt ge lt le) after {} at position {at}",
                    field.name()
                )));
            }
        };
        let at = self.position();
        let literal = self.bump().ok_or_else(|| {
            error(format!(
                "expected a value for {} at position {at}",
                field.name()
            ))
        })?;
        let value = typed(field, &literal)?;
        if matches!(field.kind(), Kind::Direction | Kind::CallStatus)
            && !matches!(op, Cmp::Eq | Cmp::Ne)
        {
            return Err(QueryError::field(field, "compares with eq and ne only"));
        }
        Ok(Expr::Compare { field, op, value })
    }
}

fn field(word: &str, at: usize) -> Result<Field, QueryError> {
    Field::parse(word).ok_or_else(|| {
        error(format!(
            "unknown field '{}' at position {at} (fields: {})",
            clip(word),
            Field::ALL.map(Field::name).join(", ")
        ))
    })
}

/// The literal as a value of `field`'s type.
fn typed(field: Field, literal: &Tok) -> Result<Value, QueryError> {
    let wrong = || {
        QueryError::field(
            field,
            format!("takes {}, not {}", field.expects(), describe(literal)),
        )
    };
    match (field.kind(), literal) {
        (Kind::Text, Tok::Str(s)) => Ok(Value::Text(s.clone())),
        (Kind::Time, Tok::Str(s) | Tok::Bare(s)) => {
            parse_time(s).map(Value::Time).ok_or_else(wrong)
        }
        (Kind::Int, Tok::Bare(s)) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=999).contains(n))
            .map(Value::Int)
            .ok_or_else(wrong),
        (Kind::Id, Tok::Str(s) | Tok::Bare(s)) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0 && s.bytes().all(|b| b.is_ascii_digit()))
            .map(Value::Id)
            .ok_or_else(wrong),
        (Kind::Direction, Tok::Str(s) | Tok::Word(s)) => Direction::parse_rest(s)
            .map(Value::Direction)
            .map_err(|_| wrong()),
        (Kind::CallStatus, Tok::Str(s) | Tok::Word(s)) => CallStatus::parse(s)
            .map(Value::CallStatus)
            .map_err(|_| wrong()),
        _ => Err(wrong()),
    }
}

/// An RFC 3339 / ISO 8601 date-time with an offset (`Z` or `±hh:mm`), as
/// Unix milliseconds; sub-millisecond digits are truncated.
pub fn parse_time(text: &str) -> Option<i64> {
    let timestamp: jiff::Timestamp = text.parse().ok()?;
    Some(timestamp.as_millisecond())
}
