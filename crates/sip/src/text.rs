//! Lexical helpers shared by every header parser: linear white space, tokens,
//! quoted strings, comma lists and `;name=value` parameter lists (RFC 3261 §25.1).
//!
//! Everything here works on `&str` slices of the received buffer and allocates
//! only when a quoted string or an escape actually has to be decoded.

use std::borrow::Cow;

use crate::error::ValueError;

/// Character classes of RFC 3261 §25.1, one bit each, looked up in a table:
/// the scanners below test a byte with one load and one mask.
pub(crate) mod class {
    pub const TOKEN: u8 = 1;
    pub const WS: u8 = 2;
    /// `user` of a SIP URI: unreserved / escaped / user-unreserved.
    pub const USER: u8 = 4;
    /// `password` of a SIP URI.
    pub const PASSWORD: u8 = 8;
    /// Host names and IPv4 addresses: alphanumerics, `-`, `.`.
    pub const HOST: u8 = 16;
    /// Parameter names: token and `paramchar` (uri-parameter) characters.
    pub const PARAM: u8 = 32;
    /// Unquoted parameter values: PARAM plus host characters (`[` `]` `:`
    /// are already in PARAM) and `@`.
    pub const PVALUE: u8 = 64;
    /// `hname`/`hvalue` characters of URI headers, with `=` and `&`.
    pub const URI_HEADER: u8 = 128;
}

const fn build_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mark = matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        );
        let mut c = 0;
        if alnum
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            c |= class::TOKEN;
        }
        if b == b' ' || b == b'\t' {
            c |= class::WS;
        }
        if alnum
            || mark
            || matches!(
                b,
                b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
            )
        {
            c |= class::USER;
        }
        if alnum || mark || matches!(b, b'%' | b'&' | b'=' | b'+' | b'$' | b',') {
            c |= class::PASSWORD;
        }
        if alnum || b == b'-' || b == b'.' {
            c |= class::HOST;
        }
        let param = alnum
            || mark
            || matches!(
                b,
                b'%' | b'+' | b'`' | b'[' | b']' | b'/' | b':' | b'&' | b'$'
            );
        if param {
            c |= class::PARAM;
        }
        if param || b == b'@' {
            c |= class::PVALUE;
        }
        if alnum
            || mark
            || matches!(
                b,
                b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=' | b'&'
            )
        {
            c |= class::URI_HEADER;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CLASSES: [u8; 256] = build_classes();

/// Whether `b` is in class `c` (one of the [`class`] bits).
#[inline(always)]
pub(crate) fn is(b: u8, c: u8) -> bool {
    CLASSES[b as usize] & c != 0
}

/// Length of the prefix of `s` whose bytes are all in class `c`.
#[inline]
pub(crate) fn span(s: &[u8], c: u8) -> usize {
    let mut i = 0;
    while i < s.len() && is(s[i], c) {
        i += 1;
    }
    i
}

/// Whether every byte of `s` is in class `c`.
#[inline]
pub(crate) fn all(s: &str, c: u8) -> bool {
    span(s.as_bytes(), c) == s.len()
}

/// Position of `needle` in `hay`. Header values and URIs are short: below
/// 64 bytes a plain loop beats the setup cost of the vectorised `memchr`.
#[inline]
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    if hay.len() < 64 {
        hay.iter().position(|&c| c == needle)
    } else {
        memchr::memchr(needle, hay)
    }
}

/// RFC 3261 LWS characters after unfolding (folded CRLFs were already turned into
/// spaces by the message parser).
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

#[inline]
pub(crate) fn skip_ws(s: &str) -> &str {
    &s[span(s.as_bytes(), class::WS)..]
}

#[inline]
pub(crate) fn trim_ws(s: &str) -> &str {
    let s = skip_ws(s);
    let b = s.as_bytes();
    let mut end = b.len();
    while end > 0 && is_ws(b[end - 1]) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && all(s, class::TOKEN)
}

/// Scans a quoted string starting at `s[0] == '"'`; returns the byte index just
/// past the closing quote.
pub(crate) fn quoted_end(s: &str) -> Result<usize, ValueError> {
    let b = s.as_bytes();
    debug_assert_eq!(b.first(), Some(&b'"'));
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(ValueError::UnterminatedQuote)
}

/// Decodes the inside of a quoted string (without its quotes): `\x` → `x`.
pub(crate) fn unquote(inner: &str) -> Cow<'_, str> {
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes `s` as a quoted string, escaping `"` and `\`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Finds the first occurrence of `needle` in `s` that is outside quoted strings
/// and outside `<…>`.
pub(crate) fn find_unquoted(s: &str, needle: u8) -> Result<Option<usize>, ValueError> {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        let k = match memchr::memchr3(needle, b'"', b'<', &b[i..]) {
            Some(j) => i + j,
            None => return Ok(None),
        };
        match b[k] {
            c if c == needle => return Ok(Some(k)),
            b'"' => i = k + quoted_end(&s[k..])?,
            _ => {
                // Inside <…> nothing is special until the '>'.
                let gt = find_byte(&b[k..], b'>').ok_or(ValueError::UnterminatedAngle)?;
                i = k + gt + 1;
            }
        }
    }
}

/// Splits a header value into its comma-separated elements (RFC 3261 §7.3.1),
/// respecting quoted strings and `<…>`. Empty elements are skipped.
pub(crate) struct CommaSplit<'a> {
    rest: Option<&'a str>,
}

impl<'a> CommaSplit<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        CommaSplit { rest: Some(s) }
    }
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = Result<&'a str, ValueError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rest = self.rest?;
            let (item, tail) = match find_unquoted(rest, b',') {
                Ok(Some(i)) => (&rest[..i], Some(&rest[i + 1..])),
                Ok(None) => (rest, None),
                Err(e) => {
                    self.rest = None;
                    return Some(Err(e));
                }
            };
            self.rest = tail;
            let item = trim_ws(item);
            if !item.is_empty() {
                return Some(Ok(item));
            }
        }
    }
}

/// A `;name[=value]` parameter list, kept as the raw text and validated once.
///
/// Lookups scan the text again: parameter lists are short and most are read
/// once or not at all, so an index would cost more than it saves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

/// One parameter: its name and, when it has one, its value with surrounding
/// quotes removed but escapes kept (use [`Param::value_unquoted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a str,
    pub value: Option<&'a str>,
    quoted: bool,
}

impl<'a> Param<'a> {
    /// The value with quoted-string escapes decoded.
    pub fn value_unquoted(&self) -> Option<Cow<'a, str>> {
        self.value.map(|v| {
            if self.quoted {
                unquote(v)
            } else {
                Cow::Borrowed(v)
            }
        })
    }
    pub fn is_quoted(&self) -> bool {
        self.quoted
    }
}

impl<'a> Params<'a> {
    /// Validates `raw`, which starts at the first `;` (or is empty).
    pub(crate) fn parse(raw: &'a str) -> Result<Self, ValueError> {
        Self::parse_finding(raw, "").map(|(p, _)| p)
    }

    /// Validates `raw` and, in the same pass, finds the parameter `name` (a
    /// lower-case name; `""` finds nothing): what Via's branch and a
    /// name-addr's tag are read with.
    pub(crate) fn parse_finding(
        raw: &'a str,
        name: &str,
    ) -> Result<(Self, Option<Option<&'a str>>), ValueError> {
        let p = Params { raw };
        let mut found = None;
        if raw.is_empty() {
            return Ok((p, None));
        }
        for item in p.iter_checked() {
            let item = item?;
            if found.is_none() && !name.is_empty() && item.name.eq_ignore_ascii_case(name) {
                found = Some(item.value);
            }
        }
        Ok((p, found))
    }

    /// The raw text, starting with `;` when not empty.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Iterates over the parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = Param<'a>> + 'a {
        // Validated at construction: errors cannot occur here.
        self.iter_checked().filter_map(Result::ok)
    }

    /// The first parameter named `name` (case-insensitive): `Some(None)` when it
    /// has no value, `None` when absent.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    pub fn param(&self, name: &str) -> Option<Param<'a>> {
        self.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn iter_checked(&self) -> ParamIter<'a> {
        ParamIter { rest: self.raw }
    }
}

struct ParamIter<'a> {
    rest: &'a str,
}

impl<'a> ParamIter<'a> {
    fn fail(&mut self, what: &'static str) -> Option<Result<Param<'a>, ValueError>> {
        self.rest = "";
        Some(Err(ValueError::Unexpected(what)))
    }
}

/// Index of the first byte at or after `i` that is not LWS.
#[inline(always)]
fn ws_from(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// Index of the first byte at or after `i` that is not in class `c`.
#[inline(always)]
fn span_from(b: &[u8], mut i: usize, c: u8) -> usize {
    while i < b.len() && is(b[i], c) {
        i += 1;
    }
    i
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Result<Param<'a>, ValueError>;

    /// Works on byte offsets: every offset it slices at follows an ASCII
    /// byte, so the slices are valid `str`s.
    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest;
        let b = s.as_bytes();
        let mut i = ws_from(b, 0);
        if i == b.len() {
            self.rest = "";
            return None;
        }
        if b[i] != b';' {
            return self.fail("expected ';' before a parameter");
        }
        let name_start = ws_from(b, i + 1);
        let name_end = span_from(b, name_start, class::PARAM);
        if name_end == name_start {
            return self.fail("empty parameter name");
        }
        let name = &s[name_start..name_end];
        i = ws_from(b, name_end);
        match b.get(i) {
            Some(b'=') => {}
            None | Some(b';') => {
                self.rest = &s[i..];
                return Some(Ok(Param {
                    name,
                    value: None,
                    quoted: false,
                }));
            }
            Some(_) => return self.fail("invalid character in a parameter name"),
        }
        let v = ws_from(b, i + 1);
        let (value, end, quoted) = if b.get(v) == Some(&b'"') {
            match quoted_end(&s[v..]) {
                Ok(len) => (&s[v + 1..v + len - 1], v + len, true),
                Err(e) => {
                    self.rest = "";
                    return Some(Err(e));
                }
            }
        } else {
            let end = span_from(b, v, class::PVALUE);
            if end == v {
                return self.fail("empty parameter value");
            }
            (&s[v..end], end, false)
        };
        let after = ws_from(b, end);
        if after < b.len() && b[after] != b';' {
            return self.fail(if quoted {
                "garbage after a quoted parameter"
            } else {
                "invalid character in a parameter value"
            });
        }
        self.rest = &s[end..];
        Some(Ok(Param {
            name,
            value: Some(value),
            quoted,
        }))
    }
}

/// Decodes `%HH` escapes (RFC 3261 §19.1.2). Invalid escapes are an error.
pub fn unescape(s: &str) -> Result<Cow<'_, [u8]>, ValueError> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s.as_bytes()));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).and_then(|c| (*c as char).to_digit(16));
            let lo = b.get(i + 2).and_then(|c| (*c as char).to_digit(16));
            match (hi, lo) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err(ValueError::BadEscape),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(Cow::Owned(out))
}

/// Parses a decimal number with no sign, leading zeros allowed (`0068`), and no
/// overflow of `u32`.
pub(crate) fn parse_u32(s: &str) -> Result<u32, ValueError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::NotANumber);
    }
    let digits = &s[s.bytes().take_while(|&b| b == b'0').count()..];
    if digits.len() > 10 {
        return Err(ValueError::NumberTooLarge);
    }
    digits
        .parse::<u64>()
        .ok()
        .or(if digits.is_empty() { Some(0) } else { None })
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(ValueError::NumberTooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_split_respects_quotes_and_angles() {
        let v: Vec<_> = CommaSplit::new(r#""a, b" <sip:x@y;p=1,2>, <sip:z>;q=1 , ,"#)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(v, vec![r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z>;q=1"]);
    }

    #[test]
    fn params_with_lws_and_quotes() {
        let p = Params::parse(r#" ;   tag    = 1918181833n ; lr; x="a;b\"c""#).unwrap();
        assert_eq!(p.get("TAG"), Some(Some("1918181833n")));
        assert_eq!(p.get("lr"), Some(None));
        let x = p.param("x").unwrap();
        assert_eq!(x.value_unquoted().unwrap(), "a;b\"c");
        assert_eq!(p.get("nope"), None);
    }

    #[test]
    fn params_reject_garbage() {
        assert!(Params::parse(";a=\"unterminated").is_err());
        assert!(Params::parse(";=x").is_err());
        assert!(Params::parse(";a=b c").is_err());
        assert!(Params::parse("x").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32("0068"), Ok(68));
        assert_eq!(parse_u32("0"), Ok(0));
        assert_eq!(parse_u32("4294967295"), Ok(u32::MAX));
        assert!(parse_u32("4294967296").is_err());
        assert!(parse_u32("-1").is_err());
        assert!(parse_u32("").is_err());
        assert!(parse_u32("00000000000000000000001").is_ok());
    }

    #[test]
    fn escapes() {
        assert_eq!(&*unescape("%75se%72").unwrap(), b"user");
        assert_eq!(&*unescape("null-%00-null").unwrap(), b"null-\0-null");
        assert!(unescape("%7").is_err());
        assert!(unescape("%zz").is_err());
    }

    #[test]
    fn quoting_round_trips() {
        let q = quote(r#"J Rosenberg \""#);
        assert_eq!(q, r#""J Rosenberg \\\"""#);
        assert_eq!(unquote(&q[1..q.len() - 1]), r#"J Rosenberg \""#);
    }
}
