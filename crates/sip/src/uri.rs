//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), parsed as views into the
//! message buffer. Other schemes (RFC 4475 §3.3.2–3.3.4) are kept as opaque
//! absolute URIs so that a message carrying one still parses.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::ValueError;
use crate::text::{Params, all, class, is, span, unescape};

/// A parsed URI. `as_str` gives the exact text it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uri<'a> {
    Sip(SipUri<'a>),
    Tel(TelUri<'a>),
    /// Any other `scheme:…` absolute URI, unparsed beyond its scheme.
    Other {
        scheme: &'a str,
        raw: &'a str,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, still %-escaped (see [`SipUri::user_unescaped`]).
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub host: Host<'a>,
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// The `?h=v&…` part, without the `?`.
    pub headers: Option<&'a str>,
    raw: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelUri<'a> {
    /// The number, e.g. `+1-201-555-0123` or `7042`.
    pub number: &'a str,
    pub params: Params<'a>,
    raw: &'a str,
}

/// A host: a domain name (as written), an IPv4 address or an IPv6 reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    Name(&'a str),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl Host<'_> {
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

impl<'a> Uri<'a> {
    /// Parses a whole URI. Leading or trailing white space is an error
    /// (RFC 4475 §3.1.2.14): the caller trims what the grammar allows.
    pub fn parse(s: &'a str) -> Result<Uri<'a>, ValueError> {
        let b = s.as_bytes();
        // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
        let mut i = 0;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'+' | b'-' | b'.')) {
            i += 1;
        }
        if i == 0 || !b[0].is_ascii_alphabetic() {
            return Err(ValueError::BadUri("invalid scheme"));
        }
        if b.get(i) != Some(&b':') {
            return Err(ValueError::BadUri("no scheme"));
        }
        let scheme = &s[..i];
        let rest = &s[i + 1..];
        match scheme.len() {
            3 if scheme.eq_ignore_ascii_case("sip") => {
                Ok(Uri::Sip(SipUri::parse_after_scheme(s, rest, false)?))
            }
            4 if scheme.eq_ignore_ascii_case("sips") => {
                Ok(Uri::Sip(SipUri::parse_after_scheme(s, rest, true)?))
            }
            3 if scheme.eq_ignore_ascii_case("tel") => {
                Ok(Uri::Tel(TelUri::parse_after_scheme(s, rest)?))
            }
            _ => {
                if rest.is_empty() {
                    return Err(ValueError::BadUri("empty URI after scheme"));
                }
                if rest
                    .bytes()
                    .any(|b| b <= b' ' || b == 0x7f || b == b'<' || b == b'>' || b == b'"')
                {
                    return Err(ValueError::BadUri("forbidden character"));
                }
                Ok(Uri::Other { scheme, raw: s })
            }
        }
    }

    /// The text this URI was parsed from.
    pub fn as_str(&self) -> &'a str {
        match self {
            Uri::Sip(u) => u.raw,
            Uri::Tel(u) => u.raw,
            Uri::Other { raw, .. } => raw,
        }
    }

    pub fn sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user (SIP) or number (tel): what a PBX routes on.
    pub fn user(&self) -> Option<&'a str> {
        match self {
            Uri::Sip(u) => u.user,
            Uri::Tel(t) => Some(t.number),
            Uri::Other { .. } => None,
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'a> SipUri<'a> {
    fn parse_after_scheme(raw: &'a str, rest: &'a str, secure: bool) -> Result<Self, ValueError> {
        // The user part may hold '?' and ';' (RFC 3261 §25.1 user-unreserved),
        // but no part may hold an unescaped '@': the first '@' ends userinfo.
        let (user, password, after_user) = match crate::text::find_byte(rest.as_bytes(), b'@') {
            Some(at) => {
                let userinfo = &rest[..at];
                let ub = userinfo.as_bytes();
                let ulen = span(ub, class::USER);
                let (u, p) = match ub.get(ulen) {
                    None => (userinfo, None),
                    Some(b':') => (&userinfo[..ulen], Some(&userinfo[ulen + 1..])),
                    Some(_) => return Err(ValueError::BadUri("invalid character in user")),
                };
                if u.is_empty() {
                    return Err(ValueError::BadUri("empty user"));
                }
                if let Some(p) = p
                    && !all(p, class::PASSWORD)
                {
                    return Err(ValueError::BadUri("invalid character in password"));
                }
                check_escapes(u)?;
                (Some(u), p, &rest[at + 1..])
            }
            None => (None, None, rest),
        };
        let (host, port, tail) = parse_hostport(after_user)?;
        let (params, headers) = match crate::text::find_byte(tail.as_bytes(), b'?') {
            Some(q) => (&tail[..q], Some(&tail[q + 1..])),
            None => (tail, None),
        };
        if params.as_bytes().first().is_some_and(|&b| b != b';') {
            return Err(ValueError::BadUri("invalid character after host"));
        }
        // URI parameters are never quoted strings (RFC 3261 §19.1.1); the
        // parameter grammar then keeps out white space and controls.
        if params.as_bytes().contains(&b'"') {
            return Err(ValueError::BadUri("forbidden character"));
        }
        let params = Params::parse(params)?;
        if let Some(h) = headers {
            if h.is_empty() || !all(h, class::URI_HEADER) {
                return Err(ValueError::BadUri("invalid URI headers"));
            }
            check_escapes(h)?;
        }
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
            raw,
        })
    }

    /// The user part with %-escapes decoded (it may hold any byte, even NUL:
    /// RFC 4475 §3.1.1.4).
    pub fn user_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        // Validated at parse: unescape cannot fail here.
        self.user.and_then(|u| unescape(u).ok())
    }

    /// `transport` parameter, lower-cased meaning left to the caller.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }

    /// Loose routing (`;lr`).
    pub fn lr(&self) -> bool {
        self.params.contains("lr")
    }

    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The port, or the scheme's default (5060, 5061 for sips).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.secure { 5061 } else { 5060 })
    }
}

impl<'a> TelUri<'a> {
    fn parse_after_scheme(raw: &'a str, rest: &'a str) -> Result<Self, ValueError> {
        let (number, params) = match rest.find(';') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let digits = number.strip_prefix('+').unwrap_or(number);
        if digits.is_empty()
            || !digits.bytes().all(|b| {
                b.is_ascii_hexdigit() || matches!(b, b'*' | b'#' | b'-' | b'.' | b'(' | b')')
            })
        {
            return Err(ValueError::BadUri("invalid telephone number"));
        }
        Ok(TelUri {
            number,
            params: Params::parse(params)?,
            raw,
        })
    }

    pub fn as_str(&self) -> &'a str {
        self.raw
    }
}

/// Parses `host[:port]` followed by an optional `;params` tail, which is returned
/// unparsed.
pub(crate) fn parse_hostport(s: &str) -> Result<(Host<'_>, Option<u16>, &str), ValueError> {
    let b = s.as_bytes();
    let (host, after) = if b.first() == Some(&b'[') {
        let end = crate::text::find_byte(b, b']').ok_or(ValueError::BadHost)?;
        let addr: Ipv6Addr = s[1..end].parse().map_err(|_| ValueError::BadHost)?;
        (Host::V6(addr), end + 1)
    } else {
        let end = host_end(b)?;
        (parse_host(&s[..end])?, end)
    };
    if b.get(after) == Some(&b':') {
        let p = &b[after + 1..];
        // port = 1*DIGIT: leading zeros are allowed (`005060` is 5060).
        let n = p.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(ValueError::BadPort);
        }
        let mut port: u32 = 0;
        for &d in &p[..n] {
            port = port * 10 + u32::from(d - b'0');
            if port > u32::from(u16::MAX) {
                return Err(ValueError::BadPort);
            }
        }
        let port = u16::try_from(port).map_err(|_| ValueError::BadPort)?;
        Ok((host, Some(port), &s[after + 1 + n..]))
    } else {
        Ok((host, None, &s[after..]))
    }
}

/// Checks that every `%` starts a valid `%HH` escape.
fn check_escapes(s: &str) -> Result<(), ValueError> {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(j) = crate::text::find_byte(&b[i..], b'%') {
        let k = i + j;
        if !(b.get(k + 1).is_some_and(u8::is_ascii_hexdigit)
            && b.get(k + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return Err(ValueError::BadEscape);
        }
        i = k + 3;
    }
    Ok(())
}

/// Dotted-quad IPv4 (four decimal octets, no leading-zero forms longer than
/// three digits). Faster than `str::parse` on the per-message path.
fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut n = 0;
    let mut val: u32 = 0;
    let mut digits = 0;
    for &c in b {
        if c == b'.' {
            if digits == 0 || n == 3 {
                return None;
            }
            octets[n] = u8::try_from(val).ok()?;
            n += 1;
            val = 0;
            digits = 0;
        } else if c.is_ascii_digit() {
            digits += 1;
            if digits > 3 {
                return None;
            }
            val = val * 10 + u32::from(c - b'0');
        } else {
            return None;
        }
    }
    if digits == 0 || n != 3 {
        return None;
    }
    octets[3] = u8::try_from(val).ok()?;
    Some(Ipv4Addr::from(octets))
}

/// Length of the host name or IPv4 address at the start of `b`, checking in
/// the same pass that no label is empty (no leading, doubled dot).
fn host_end(b: &[u8]) -> Result<usize, ValueError> {
    let mut prev_dot = true;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'.' {
            if prev_dot {
                return Err(ValueError::BadHost);
            }
            prev_dot = true;
        } else if is(c, class::HOST) {
            prev_dot = false;
        } else {
            break;
        }
        i += 1;
    }
    Ok(i)
}

fn parse_host(s: &str) -> Result<Host<'_>, ValueError> {
    let b = s.as_bytes();
    if b.is_empty() || b[0] == b'-' {
        return Err(ValueError::BadHost);
    }
    // Only a name whose last label starts with a digit can be an IPv4
    // address (a top label must start with a letter, RFC 3261 §25.1).
    let last_label = b.iter().rposition(|&c| c == b'.').map_or(0, |i| i + 1);
    if b.get(last_label).is_some_and(u8::is_ascii_digit) {
        return parse_ipv4(b).map(Host::V4).ok_or(ValueError::BadHost);
    }
    Ok(Host::Name(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn full_sip_uri() {
        let u = sip(
            "sips:alice:secret@atlanta.com:5071;transport=tcp;lr?subject=project%20x&priority=urgent",
        );
        assert!(u.secure);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Host::Name("atlanta.com"));
        assert_eq!(u.port, Some(5071));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.lr());
        assert_eq!(u.headers, Some("subject=project%20x&priority=urgent"));
    }

    #[test]
    fn ipv6_reference_and_default_port() {
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.host, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5070));
        let u = sip("sip:bob@[::1]");
        assert_eq!(u.port_or_default(), 5060);
        assert_eq!(u.host.to_string(), "[::1]");
        assert!(Uri::parse("sip:[2001:db8::10").is_err());
        assert!(Uri::parse("sip:[zz::1]").is_err());
    }

    #[test]
    fn user_with_semicolon_and_escapes() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, Host::Name("example.com"));
        let u = sip("sip:null-%00-null@example.com");
        assert_eq!(&*u.user_unescaped().unwrap(), b"null-\0-null");
    }

    #[test]
    fn tel_and_other_schemes() {
        match Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap() {
            Uri::Tel(t) => {
                assert_eq!(t.number, "+1-201-555-0123");
                assert_eq!(t.params.get("phone-context"), Some(Some("example.com")));
            }
            other => panic!("{other:?}"),
        }
        match Uri::parse("kingkong:i_am_a_gorilla").unwrap() {
            Uri::Other { scheme, .. } => assert_eq!(scheme, "kingkong"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn leading_zeros_in_ports_and_octets() {
        let u = sip("sip:a@192.0.2.01:005060");
        assert_eq!(u.host, Host::V4("192.0.2.1".parse().unwrap()));
        assert_eq!(u.port, Some(5060));
        assert!(Uri::parse("sip:a@h:0065536").is_err());
        assert!(Uri::parse("sip:a@255.255.2-o").is_err());
    }

    #[test]
    fn rejects_bad_uris() {
        for bad in [
            "sip:",
            "sip:@host",
            "sip:user@",
            "sip:user@host:99999",
            "sip:user@host:",
            "sip:user@ho st",
            "sip:user@example.com ",
            "sip:a@b..c",
            "sip:a@999.1.1.1",
            "noscheme",
            "1sip:a@b",
            "sip:a%zz@b",
            "sip:a@b?",
            "tel:",
            "<sip:a@b>",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad} parsed");
        }
    }
}
