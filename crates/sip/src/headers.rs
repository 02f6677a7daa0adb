//! Typed views of header values. Each type borrows from the message and is
//! parsed only when a caller asks for it; a value that does not match its
//! grammar is an error, never a guess.

use std::borrow::Cow;
use std::fmt;

use crate::error::ValueError;
use crate::message::Method;
use crate::text::{
    Params, find_unquoted, is_token, is_ws, parse_u32, quoted_end, skip_ws, trim_ws, unescape,
    unquote,
};
use crate::uri::{Host, Uri, parse_hostport};

/// The RFC 3261 branch magic cookie.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// `SIP` (protocol name) and `2.0` (version).
    pub protocol: &'a str,
    pub version: &'a str,
    /// `UDP`, `TCP`, `TLS`, `WS`, `WSS`, `SCTP` or any other token.
    pub transport: &'a str,
    pub host: Host<'a>,
    pub port: Option<u16>,
    pub params: Params<'a>,
    branch: Option<&'a str>,
}

fn take_token(s: &str) -> Result<(&str, &str), ValueError> {
    let n = crate::text::span(s.as_bytes(), crate::text::class::TOKEN);
    if n == 0 {
        return Err(ValueError::Unexpected("expected a token"));
    }
    Ok((&s[..n], &s[n..]))
}

fn expect<'a>(s: &'a str, c: char, what: &'static str) -> Result<&'a str, ValueError> {
    skip_ws(s)
        .strip_prefix(c)
        .map(skip_ws)
        .ok_or(ValueError::Unexpected(what))
}

impl<'a> Via<'a> {
    pub fn parse(v: &'a str) -> Result<Via<'a>, ValueError> {
        let (protocol, rest) = take_token(trim_ws(v))?;
        let rest = expect(rest, '/', "expected '/' after the protocol name")?;
        let (version, rest) = take_token(rest)?;
        let rest = expect(rest, '/', "expected '/' after the protocol version")?;
        let (transport, rest) = take_token(rest)?;
        if !rest.as_bytes().first().is_some_and(|&b| is_ws(b)) {
            return Err(ValueError::Unexpected(
                "expected white space before sent-by",
            ));
        }
        let rest = skip_ws(rest);
        // sent-by allows LWS around the colon.
        let host_end = if rest.as_bytes().first() == Some(&b'[') {
            crate::text::find_byte(rest.as_bytes(), b']')
                .map(|i| i + 1)
                .ok_or(ValueError::BadHost)?
        } else {
            crate::text::span(rest.as_bytes(), crate::text::class::HOST)
        };
        let (host, _, _) = parse_hostport(&rest[..host_end])?;
        let mut tail = skip_ws(&rest[host_end..]);
        let mut port = None;
        if let Some(p) = tail.strip_prefix(':') {
            let p = skip_ws(p);
            let n = p.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return Err(ValueError::BadPort);
            }
            port = Some(
                parse_u32(&p[..n])
                    .ok()
                    .and_then(|v| u16::try_from(v).ok())
                    .ok_or(ValueError::BadPort)?,
            );
            tail = &p[n..];
        }
        let (params, branch) = Params::parse_finding(tail, "branch")?;
        let branch = branch.flatten();
        if let Some(b) = branch
            && !is_token(b)
        {
            return Err(ValueError::Unexpected("branch is not a token"));
        }
        Ok(Via {
            protocol,
            version,
            transport,
            host,
            port,
            params,
            branch,
        })
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }

    /// Whether the branch starts with the RFC 3261 magic cookie (and so can be
    /// used alone as a transaction id).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// `rport` (RFC 3581): `None` when absent, `Some(None)` when present
    /// without a value (the request asks for it to be filled in).
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// `host[:port]` as the sender wrote it.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }

    pub fn is_transport(&self, t: &str) -> bool {
        self.transport.eq_ignore_ascii_case(t)
    }
}

/// `name-addr` or `addr-spec` with header parameters: From, To, Contact,
/// Route, Record-Route, Refer-To, Referred-By, P-Asserted-Identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name, unquoted and unescaped.
    pub display: Option<Cow<'a, str>>,
    pub uri: Uri<'a>,
    /// Header parameters (after the `>`, or after an addr-spec).
    pub params: Params<'a>,
    /// Whether the URI was enclosed in `<>`.
    pub bracketed: bool,
    tag: Option<&'a str>,
}

impl<'a> NameAddr<'a> {
    pub fn parse(v: &'a str) -> Result<NameAddr<'a>, ValueError> {
        let s = trim_ws(v);
        if s.is_empty() {
            return Err(ValueError::Empty);
        }
        let (display, after_display) = if s.as_bytes()[0] == b'<' {
            (None, s)
        } else if s.starts_with('"') {
            let end = quoted_end(s)?;
            let rest = skip_ws(&s[end..]);
            if !rest.starts_with('<') {
                return Err(ValueError::Unexpected("quoted display name without <URI>"));
            }
            (Some(unquote(&s[1..end - 1])), rest)
        } else if let Some(lt) = find_unquoted(s, b'<')?.filter(|&lt| {
            // A '<' that comes before any ';' belongs to a name-addr.
            crate::text::find_byte(&s.as_bytes()[..lt], b';').is_none()
        }) {
            let name = trim_ws(&s[..lt]);
            if name.is_empty() {
                (None, &s[lt..])
            } else {
                // Unquoted display name: tokens separated by LWS (RFC 4475 §3.1.2.15).
                if !name
                    .split([' ', '\t'])
                    .filter(|w| !w.is_empty())
                    .all(is_token)
                {
                    return Err(ValueError::Unexpected("display name must be quoted"));
                }
                (Some(Cow::Borrowed(name)), &s[lt..])
            }
        } else {
            (None, s)
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let gt = crate::text::find_byte(inner.as_bytes(), b'>')
                .ok_or(ValueError::UnterminatedAngle)?;
            let uri = Uri::parse(&inner[..gt])?;
            let (params, tag) = Params::parse_finding(&inner[gt + 1..], "tag")?;
            Ok(NameAddr {
                display,
                uri,
                params,
                bracketed: true,
                tag: tag.flatten(),
            })
        } else {
            // addr-spec: the URI ends at the first ';', and may not hold ',',
            // '?' or ';' of its own (RFC 3261 §20, RFC 4475 §3.1.2.13).
            let (uri, params) = match crate::text::find_byte(after_display.as_bytes(), b';') {
                Some(i) => (&after_display[..i], &after_display[i..]),
                None => (after_display, ""),
            };
            let uri = trim_ws(uri);
            if uri.contains(['?', ',']) {
                return Err(ValueError::Unexpected(
                    "URI with '?' or ',' must be enclosed in <>",
                ));
            }
            let (params, tag) = Params::parse_finding(params, "tag")?;
            Ok(NameAddr {
                display,
                uri: Uri::parse(uri)?,
                params,
                bracketed: false,
                tag: tag.flatten(),
            })
        }
    }

    pub fn tag(&self) -> Option<&'a str> {
        self.tag
    }
}

/// Writes the canonical form: `"Display" <uri>;params`.
impl fmt::Display for NameAddr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{} ", crate::text::quote(d))?;
        }
        write!(f, "<{}>{}", self.uri, self.params.as_str())
    }
}

/// One Contact value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (remove every binding, RFC 3261 §10.2.2).
    Wildcard,
    Addr(NameAddr<'a>),
}

impl<'a> Contact<'a> {
    pub fn parse(v: &'a str) -> Result<Contact<'a>, ValueError> {
        if trim_ws(v) == "*" {
            return Ok(Contact::Wildcard);
        }
        NameAddr::parse(v).map(Contact::Addr)
    }

    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Wildcard => None,
            Contact::Addr(a) => Some(a),
        }
    }

    /// The `expires` parameter; a malformed value is an error.
    pub fn expires(&self) -> Result<Option<u32>, ValueError> {
        match self.addr().and_then(|a| a.params.get("expires")) {
            None => Ok(None),
            Some(None) => Err(ValueError::Empty),
            Some(Some(v)) => parse_u32(v).map(Some),
        }
    }

    /// `q` as thousandths (`q=0.5` → 500), RFC 3261 §20.10.
    pub fn q(&self) -> Result<Option<u16>, ValueError> {
        let Some(Some(v)) = self.addr().and_then(|a| a.params.get("q")) else {
            return Ok(None);
        };
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::Unexpected("invalid q value"));
        }
        let whole = match int {
            "0" => 0,
            "1" if frac.bytes().all(|b| b == b'0') => 1000,
            _ => return Err(ValueError::Unexpected("invalid q value")),
        };
        let mut thousandths = 0u16;
        for (i, b) in frac.bytes().enumerate() {
            thousandths += u16::from(b - b'0') * [100, 10, 1][i];
        }
        Ok(Some(whole + thousandths))
    }

    /// `+sip.instance` (RFC 5626), without its quotes and angle brackets.
    pub fn instance(&self) -> Option<Cow<'a, str>> {
        let p = self.addr()?.params.param("+sip.instance")?;
        let v = p.value_unquoted()?;
        Some(match v {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim_start_matches('<').trim_end_matches('>')),
            Cow::Owned(o) => Cow::Owned(o.trim_start_matches('<').trim_end_matches('>').to_owned()),
        })
    }

    /// `reg-id` (RFC 5626).
    pub fn reg_id(&self) -> Option<u32> {
        self.addr()?
            .params
            .get("reg-id")
            .flatten()
            .and_then(|v| parse_u32(v).ok())
    }
}

/// CSeq: sequence number and method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(v: &str) -> Result<CSeq, ValueError> {
        let v = trim_ws(v);
        let n = v.bytes().take_while(u8::is_ascii_digit).count();
        let seq = parse_u32(&v[..n])?;
        // RFC 3261 §8.1.1.5: less than 2**31.
        if seq >= 1 << 31 {
            return Err(ValueError::NumberTooLarge);
        }
        let rest = &v[n..];
        if !rest.starts_with([' ', '\t']) {
            return Err(ValueError::Unexpected(
                "expected white space after the sequence number",
            ));
        }
        let method =
            Method::from_token(trim_ws(rest)).ok_or(ValueError::Unexpected("invalid method"))?;
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Call-ID: `word ["@" word]`, no white space.
pub fn parse_call_id(v: &str) -> Result<&str, ValueError> {
    if v.is_empty() {
        return Err(ValueError::Empty);
    }
    // Branch-free, so the compiler vectorises it: this runs on every message.
    let (mut ats, mut bad) = (0usize, false);
    for &b in v.as_bytes() {
        ats += usize::from(b == b'@');
        bad |= b <= b' ' || b == 0x7f;
    }
    if bad || ats > 1 {
        return Err(ValueError::Unexpected("invalid Call-ID"));
    }
    Ok(v)
}

/// Max-Forwards: 0–255, leading zeros allowed.
pub fn parse_max_forwards(v: &str) -> Result<u8, ValueError> {
    let n = parse_u32(v)?;
    u8::try_from(n).map_err(|_| ValueError::NumberTooLarge)
}

/// Replaces (RFC 3891), as a header or embedded in a Refer-To URI. Owned,
/// because the embedded form must be unescaped first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    pub early_only: bool,
}

impl Replaces {
    pub fn parse(v: &str) -> Result<Replaces, ValueError> {
        let v = trim_ws(v);
        let (call_id, params) = match v.find(';') {
            Some(i) => (trim_ws(&v[..i]), &v[i..]),
            None => (v, ""),
        };
        let call_id = parse_call_id(call_id)?;
        let params = Params::parse(params)?;
        let need = |n: &'static str| {
            params
                .param(n)
                .and_then(|p| p.value_unquoted())
                .map(Cow::into_owned)
                .ok_or(ValueError::Unexpected(n))
        };
        Ok(Replaces {
            call_id: call_id.to_owned(),
            to_tag: need("to-tag")?,
            from_tag: need("from-tag")?,
            early_only: params.contains("early-only"),
        })
    }
}

impl fmt::Display for Replaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};to-tag={};from-tag={}",
            self.call_id, self.to_tag, self.from_tag
        )?;
        if self.early_only {
            f.write_str(";early-only")?;
        }
        Ok(())
    }
}

/// Refer-To (RFC 3515) with an embedded Replaces (RFC 3891 §7) decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferTo<'a> {
    pub target: NameAddr<'a>,
    pub replaces: Option<Replaces>,
}

impl<'a> ReferTo<'a> {
    pub fn parse(v: &'a str) -> Result<ReferTo<'a>, ValueError> {
        let target = NameAddr::parse(v)?;
        let mut replaces = None;
        if let Uri::Sip(u) = &target.uri
            && let Some(h) = u.headers
        {
            for pair in h.split('&') {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                if name.eq_ignore_ascii_case("replaces") {
                    let decoded = unescape(value)?;
                    let text = std::str::from_utf8(&decoded)
                        .map_err(|_| ValueError::Unexpected("Replaces is not UTF-8"))?;
                    replaces = Some(Replaces::parse(text)?);
                }
            }
        }
        Ok(ReferTo { target, replaces })
    }
}

/// Who refreshes a session (RFC 4028).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

/// Session-Expires (RFC 4028).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionExpires {
    pub seconds: u32,
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    pub fn parse(v: &str) -> Result<SessionExpires, ValueError> {
        let v = trim_ws(v);
        let (secs, params) = match v.find(';') {
            Some(i) => (trim_ws(&v[..i]), &v[i..]),
            None => (v, ""),
        };
        let params = Params::parse(params)?;
        let refresher = match params.get("refresher") {
            None => None,
            Some(Some(r)) if r.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
            Some(Some(r)) if r.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
            Some(_) => return Err(ValueError::Unexpected("refresher must be uac or uas")),
        };
        Ok(SessionExpires {
            seconds: parse_u32(secs)?,
            refresher,
        })
    }
}

/// Retry-After (RFC 3261 §20.33): seconds, an optional comment, `duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter {
    pub seconds: u32,
    pub duration: Option<u32>,
}

impl RetryAfter {
    pub fn parse(v: &str) -> Result<RetryAfter, ValueError> {
        let v = trim_ws(v);
        let n = v.bytes().take_while(u8::is_ascii_digit).count();
        let seconds = parse_u32(&v[..n])?;
        let mut rest = skip_ws(&v[n..]);
        if rest.starts_with('(') {
            // A comment, possibly nested.
            let mut depth = 0usize;
            let mut end = None;
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            rest = skip_ws(&rest[end.ok_or(ValueError::Unexpected("unterminated comment"))?..]);
        }
        let params = Params::parse(rest)?;
        let duration = match params.get("duration") {
            None => None,
            Some(Some(d)) => Some(parse_u32(d)?),
            Some(None) => return Err(ValueError::Empty),
        };
        Ok(RetryAfter { seconds, duration })
    }
}

/// A media type (`Content-Type`, RFC 3261 §20.15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaType<'a> {
    pub kind: &'a str,
    pub subtype: &'a str,
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    pub fn parse(v: &'a str) -> Result<MediaType<'a>, ValueError> {
        let (kind, rest) = take_token(trim_ws(v))?;
        let rest = expect(rest, '/', "expected '/' in a media type")?;
        let (subtype, rest) = take_token(rest)?;
        Ok(MediaType {
            kind,
            subtype,
            params: Params::parse(rest)?,
        })
    }

    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// Date (RFC 3261 §20.17): an RFC 1123 date in GMT. Returns Unix seconds.
pub fn parse_date(v: &str) -> Result<i64, ValueError> {
    let bad = ValueError::Unexpected("invalid date");
    let v = trim_ws(v);
    let (wkday, rest) = v.split_once(',').ok_or(bad.clone())?;
    if !["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&wkday) {
        return Err(bad);
    }
    let parts: Vec<&str> = rest.split(' ').filter(|p| !p.is_empty()).collect();
    let [day, month, year, time, zone] = parts[..] else {
        return Err(bad);
    };
    if zone != "GMT" || day.len() != 2 || year.len() != 4 || time.len() != 8 {
        return Err(bad);
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month).ok_or(bad.clone())? as i64 + 1;
    let num = |s: &str| -> Result<i64, ValueError> {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().map_err(|_| ValueError::NotANumber)
        } else {
            Err(ValueError::NotANumber)
        }
    };
    let day = num(day)?;
    let year = num(year)?;
    let t: Vec<&str> = time.split(':').collect();
    let [h, m, s] = t[..] else {
        return Err(bad);
    };
    let (h, m, s) = (num(h)?, num(m)?, num(s)?);
    let days_in_month = match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day < 1 || day > days_in_month || h > 23 || m > 59 || s > 60 {
        return Err(bad);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Writes a Date value (RFC 3261 §20.17, RFC 1123 in GMT) for Unix seconds;
/// the inverse of [`parse_date`].
pub fn format_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm), in u64:
    // shifted to the era starting 0000-03-01 so no value is negative.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_everywhere() {
        let v = Via::parse("SIP  /   2.0   /UDP    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!((v.protocol, v.version, v.transport), ("SIP", "2.0", "UDP"));
        assert_eq!(v.host, Host::V4("192.0.2.2".parse().unwrap()));
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
        let v =
            Via::parse("SIP/2.0/TCP spindle.example.com   ;   branch  =   z9hG4bK9ikj8").unwrap();
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        assert!(v.has_rfc3261_branch());
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9]:5070;rport;received=192.0.2.1").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("192.0.2.1"));
        assert_eq!(v.sent_by(), "[2001:db8::9]:5070");
        let v = Via::parse("SIP/2.0/UDP host : 5062;rport=1234").unwrap();
        assert_eq!(v.port, Some(5062));
        assert_eq!(v.rport(), Some(Some(1234)));
        assert!(
            !Via::parse("SIP/2.0/UDP host;branch=z9hG4bK")
                .unwrap()
                .has_rfc3261_branch()
        );
        for bad in [
            "SIP/2.0 host",
            "SIP/2.0/UDP",
            "SIP/2.0/UDPhost",
            "SIP/2.0/UDP host:x",
            "SIP/2.0/UDP host;branch=",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(a.display.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(a.tag(), Some("98asjd8"));
        let a = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(a.display.as_deref(), Some("caller"));
        let a = NameAddr::parse("sip:user@example.com;tag=1").unwrap();
        assert!(!a.bracketed);
        assert_eq!(a.tag(), Some("1"));
        assert_eq!(a.uri.user(), Some("user"));
        let a = NameAddr::parse("Bob <sip:bob@biloxi.com;transport=tcp>").unwrap();
        assert_eq!(a.to_string(), r#""Bob" <sip:bob@biloxi.com;transport=tcp>"#);
        assert!(NameAddr::parse(r#""unterminated <sip:a@b>"#).is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@bell-tel.com>").is_err());
        assert!(NameAddr::parse("< sip:a@b >").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:x%3E").is_err());
        assert!(NameAddr::parse("").is_err());
    }

    #[test]
    fn contact_params() {
        let c = Contact::parse(r#"<sip:101@192.0.2.4:5062;transport=udp>;expires=3600;q=0.7;+sip.instance="<urn:uuid:0001>";reg-id=1"#).unwrap();
        assert_eq!(c.expires(), Ok(Some(3600)));
        assert_eq!(c.q(), Ok(Some(700)));
        assert_eq!(c.instance().as_deref(), Some("urn:uuid:0001"));
        assert_eq!(c.reg_id(), Some(1));
        assert_eq!(Contact::parse(" * ").unwrap(), Contact::Wildcard);
        let c = Contact::parse("<sip:a@b>;expires=280297596632815").unwrap();
        assert!(c.expires().is_err());
        assert!(Contact::parse("<sip:a@b>;q=2").unwrap().q().is_err());
        assert_eq!(
            Contact::parse("<sip:a@b>;q=1.000").unwrap().q(),
            Ok(Some(1000))
        );
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(CSeq::parse("0009  INVITE").unwrap().seq, 9);
        assert!(CSeq::parse("36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("1INVITE").is_err());
        assert!(CSeq::parse("1 ").is_err());
    }

    #[test]
    fn refer_to_with_replaces() {
        let r = ReferTo::parse("<sip:carol@chicago.example.com?Replaces=12345%40192.168.118.3%3Bto-tag%3D12345%3Bfrom-tag%3D5FFE-3994>").unwrap();
        let rep = r.replaces.unwrap();
        assert_eq!(rep.call_id, "12345@192.168.118.3");
        assert_eq!(rep.to_tag, "12345");
        assert_eq!(rep.from_tag, "5FFE-3994");
        assert!(Replaces::parse("abc@h;to-tag=1").is_err());
        assert_eq!(
            Replaces::parse("abc@h;from-tag=2;to-tag=1;early-only")
                .unwrap()
                .to_string(),
            "abc@h;to-tag=1;from-tag=2;early-only"
        );
    }

    #[test]
    fn session_expires_retry_after_media_type() {
        let s = SessionExpires::parse("1800;refresher=uac").unwrap();
        assert_eq!((s.seconds, s.refresher), (1800, Some(Refresher::Uac)));
        assert!(SessionExpires::parse("1800;refresher=x").is_err());
        let r = RetryAfter::parse("18000;duration=3600").unwrap();
        assert_eq!((r.seconds, r.duration), (18000, Some(3600)));
        let r = RetryAfter::parse("120 (I'm in a (meeting))").unwrap();
        assert_eq!(r.seconds, 120);
        assert!(RetryAfter::parse("949302838503028349304023988").is_err());
        let m = MediaType::parse("application/SDP ; charset=utf-8").unwrap();
        assert!(m.is("application", "sdp"));
        assert!(MediaType::parse("application").is_err());
    }

    #[test]
    fn formatted_dates_round_trip() {
        assert_eq!(format_date(1_289_690_940), "Sat, 13 Nov 2010 23:29:00 GMT");
        assert_eq!(format_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(format_date(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        for t in (0..4_000_000_000u64).step_by(86_399 * 37) {
            let text = format_date(t);
            assert_eq!(parse_date(&text), Ok(t as i64), "{text}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_date("Sat, 13 Nov 2010 23:29:00 GMT"),
            Ok(1_289_690_940)
        );
        assert_eq!(
            parse_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            Ok(1_709_164_800)
        );
        assert!(parse_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(parse_date("Fri, 30 Feb 2010 16:00:00 GMT").is_err());
        assert!(parse_date("garbage").is_err());
    }
}
