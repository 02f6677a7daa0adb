//! The shared grammar of challenge and credentials values (RFC 3261 §25.1,
//! §22.4):
//!
//! ```text
//! value       = LWS? "Digest" LWS auth-param *(COMMA auth-param)
//! auth-param  = token EQUAL ( token / quoted-string )
//! ```
//!
//! `LWS` is spaces and tabs, optionally after one CRLF (a folded line);
//! `EQUAL` and `COMMA` may have LWS on both sides. Empty list elements
//! (`a=1,,b=2`) are tolerated as RFC 7230 §7 asks. Parameter names are
//! case-insensitive; values keep their case.

use std::borrow::Cow;
use std::fmt;

/// More parameters than any real header carries; bounds the duplicate check.
const MAX_PARAMS: usize = 64;

/// Why a challenge or credentials value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty header value")]
    Empty,
    #[error("authentication scheme {0:?} is not Digest")]
    UnsupportedScheme(String),
    #[error("{what} at byte {at}")]
    Syntax { at: usize, what: &'static str },
    #[error("more than {MAX_PARAMS} parameters")]
    TooManyParams,
    #[error("parameter {0:?} appears more than once")]
    DuplicateParam(String),
    #[error("required parameter {0} is missing")]
    MissingParam(&'static str),
    #[error("parameter {name} has an invalid value {value:?}")]
    InvalidValue { name: &'static str, value: String },
    #[error("algorithm {0:?} is not supported")]
    UnsupportedAlgorithm(String),
}

/// One `name=value` pair, value unquoted and unescaped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Param<'a> {
    pub name: &'a str,
    pub value: Cow<'a, str>,
}

/// Splits a `Digest ...` value into its parameters, in order.
pub(crate) fn parse_digest(input: &str) -> Result<Vec<Param<'_>>, ParseError> {
    let mut cur = Cursor { s: input, pos: 0 };
    cur.skip_lws();
    if cur.at_end() {
        return Err(ParseError::Empty);
    }
    let scheme = cur.token();
    if !scheme.eq_ignore_ascii_case("Digest") {
        if scheme.is_empty() {
            return Err(cur.error("expected authentication scheme"));
        }
        return Err(ParseError::UnsupportedScheme(scheme.to_owned()));
    }
    let before = cur.pos;
    cur.skip_lws();
    if !cur.at_end() && cur.pos == before {
        return Err(cur.error("expected whitespace after Digest"));
    }

    let mut params: Vec<Param<'_>> = Vec::new();
    // Whether a comma separates the previous parameter from the next one.
    let mut separated = true;
    loop {
        cur.skip_lws();
        match cur.peek() {
            None => break,
            Some(b',') => {
                cur.pos += 1;
                separated = true;
                continue;
            }
            Some(_) if !separated => return Err(cur.error("expected ',' between parameters")),
            Some(_) => {}
        }
        let name = cur.token();
        if name.is_empty() {
            return Err(cur.error("expected parameter name"));
        }
        cur.skip_lws();
        if cur.peek() != Some(b'=') {
            return Err(cur.error("expected '=' after parameter name"));
        }
        cur.pos += 1;
        cur.skip_lws();
        let value = if cur.peek() == Some(b'"') {
            cur.quoted_string()?
        } else {
            let token = cur.token();
            if token.is_empty() {
                return Err(cur.error("expected token or quoted string"));
            }
            Cow::Borrowed(token)
        };
        if params.iter().any(|p| p.name.eq_ignore_ascii_case(name)) {
            return Err(ParseError::DuplicateParam(name.to_owned()));
        }
        if params.len() == MAX_PARAMS {
            return Err(ParseError::TooManyParams);
        }
        params.push(Param { name, value });
        separated = false;
    }
    Ok(params)
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn error(&self, what: &'static str) -> ParseError {
        ParseError::Syntax { at: self.pos, what }
    }

    fn skip_lws(&mut self) {
        let b = self.s.as_bytes();
        loop {
            match b.get(self.pos..) {
                Some([b' ' | b'\t', ..]) => self.pos += 1,
                Some([b'\r', b'\n', b' ' | b'\t', ..]) => self.pos += 3,
                _ => return,
            }
        }
    }

    /// The longest run of token characters; empty when none.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_token_char) {
            self.pos += 1;
        }
        // Token characters are ASCII, so both ends are char boundaries.
        self.s.get(start..self.pos).unwrap_or("")
    }

    /// A quoted string starting at the current `"`, unescaped.
    fn quoted_string(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let open = self.pos;
        let b = self.s.as_bytes();
        let mut i = open + 1;
        let mut chunk = i;
        let mut owned: Option<String> = None;
        // Every delimiter is ASCII, so `chunk` and `i` always sit on char
        // boundaries and the slices below cannot fail.
        while let Some(&c) = b.get(i) {
            match c {
                b'"' => {
                    self.pos = i + 1;
                    let tail = self.s.get(chunk..i).unwrap_or("");
                    return Ok(match owned {
                        None => Cow::Borrowed(tail),
                        Some(mut s) => {
                            s.push_str(tail);
                            Cow::Owned(s)
                        }
                    });
                }
                b'\\' => {
                    let Some(&next) = b.get(i + 1) else { break };
                    if is_forbidden_char(char::from(next)) {
                        return Err(ParseError::Syntax {
                            at: i + 1,
                            what: "control character in quoted string",
                        });
                    }
                    owned
                        .get_or_insert_with(String::new)
                        .push_str(self.s.get(chunk..i).unwrap_or(""));
                    chunk = i + 1;
                    // Step over an escaped ASCII character so that `\"` does
                    // not close the string; a non-ASCII one is simply copied
                    // with the next chunk.
                    i += if next.is_ascii() { 2 } else { 1 };
                }
                c if is_forbidden_char(char::from(c)) => {
                    return Err(ParseError::Syntax {
                        at: i,
                        what: "control character in quoted string",
                    });
                }
                _ => i += 1,
            }
        }
        Err(ParseError::Syntax {
            at: open,
            what: "unterminated quoted string",
        })
    }
}

/// RFC 3261 `token` characters.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Writes `"value"`, escaping `"` and `\`.
///
/// A control character (other than tab) cannot appear in a quoted string,
/// and CR or LF would let a value break out of its header line; the only
/// way such a value gets here is a hand-built one, so each is written as
/// U+FFFD: the digest then fails instead of the message being corrupted.
pub(crate) struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        let mut rest = self.0;
        while let Some(i) = rest.find(|c: char| c == '"' || c == '\\' || is_forbidden_char(c)) {
            let (plain, special) = rest.split_at(i);
            f.write_str(plain)?;
            // Every special character is ASCII.
            let (c, tail) = special.split_at(1);
            if c == "\"" || c == "\\" {
                f.write_str("\\")?;
                f.write_str(c)?;
            } else {
                f.write_str("\u{fffd}")?;
            }
            rest = tail;
        }
        f.write_str(rest)?;
        f.write_str("\"")
    }
}

/// Whether `s` holds a character no header value may carry (see [`Quoted`]).
pub(crate) fn has_control_char(s: &str) -> bool {
    s.chars().any(is_forbidden_char)
}

fn is_forbidden_char(c: char) -> bool {
    c.is_ascii_control() && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(input: &str) -> Vec<(String, String)> {
        match parse_digest(input) {
            Ok(ps) => ps
                .into_iter()
                .map(|p| (p.name.to_owned(), p.value.into_owned()))
                .collect(),
            Err(e) => panic!("{input:?}: {e}"),
        }
    }

    #[test]
    fn tokens_and_quoted_strings() {
        assert_eq!(
            pairs(r#"Digest a=b, c="d e""#),
            [("a".into(), "b".into()), ("c".into(), "d e".into())]
        );
    }

    #[test]
    fn escapes_are_removed() {
        assert_eq!(
            pairs(r#"Digest u="a\"b\\c\d""#),
            [("u".into(), r#"a"b\cd"#.into())]
        );
    }

    #[test]
    fn lws_and_folding() {
        assert_eq!(
            pairs("  digest\ta = \"x\"\r\n ,\r\n\tb\t=\ty  "),
            [("a".into(), "x".into()), ("b".into(), "y".into())]
        );
    }

    #[test]
    fn empty_list_elements_are_tolerated() {
        assert_eq!(
            pairs("Digest ,a=1,, b=2,"),
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn utf8_inside_quotes() {
        assert_eq!(
            pairs("Digest realm=\"Zürich ☎\""),
            [("realm".into(), "Zürich ☎".into())]
        );
    }

    #[test]
    fn syntax_errors() {
        for (input, what) in [
            ("Digest a", "expected '=' after parameter name"),
            ("Digest a=", "expected token or quoted string"),
            ("Digest a=\"x", "unterminated quoted string"),
            ("Digest a=\"x\\", "unterminated quoted string"),
            ("Digest a=b c=d", "expected ',' between parameters"),
            ("Digest =b", "expected parameter name"),
            ("Digest a=\"x\ny\"", "control character in quoted string"),
            ("Digest a=\"x\\\ry\"", "control character in quoted string"),
            ("Digest a=b\r\nc=d", "expected ',' between parameters"),
            ("Digest;a=b", "expected whitespace after Digest"),
            ("\"Digest\"", "expected authentication scheme"),
        ] {
            match parse_digest(input) {
                Err(ParseError::Syntax { what: got, .. }) => assert_eq!(got, what, "{input:?}"),
                other => panic!("{input:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn scheme_and_duplicates() {
        assert_eq!(parse_digest("   "), Err(ParseError::Empty));
        assert_eq!(
            parse_digest("Basic dXNlcjpwYXNz"),
            Err(ParseError::UnsupportedScheme("Basic".into()))
        );
        assert_eq!(
            parse_digest("Digest Nonce=a, nonce=\"b\""),
            Err(ParseError::DuplicateParam("nonce".into()))
        );
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=v")).collect();
        assert_eq!(
            parse_digest(&format!("Digest {}", many.join(","))),
            Err(ParseError::TooManyParams)
        );
    }

    #[test]
    fn quoting_never_breaks_the_line() {
        assert_eq!(
            Quoted("a\r\nVia: evil\u{0}\tb").to_string(),
            "\"a\u{fffd}\u{fffd}Via: evil\u{fffd}\tb\""
        );
        assert!(has_control_char("a\nb"));
        assert!(!has_control_char("a\tb é"));
    }

    #[test]
    fn quoting_round_trips() {
        for v in ["plain", r#"with "quotes""#, r"back\slash", "", "\"\\\""] {
            let header = format!("Digest v={}", Quoted(v));
            assert_eq!(pairs(&header), [("v".into(), v.into())]);
        }
    }
}
