//! `Authorization` / `Proxy-Authorization` values.

use std::fmt;
use std::str::FromStr;

use super::compute::is_hex;
use super::params::{ParseError, Quoted, parse_digest};
use super::{Algorithm, Qop};

/// A digest answer (RFC 3261 §22.4 `digest-response`, RFC 7616 §3.4).
///
/// `userhash`, `username*` and unknown parameters are skipped when parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    /// The `uri` parameter: the digest covers it, the request line is
    /// compared with it by the caller ([`Credentials::uri_matches`]).
    pub uri: String,
    /// Lowercase hex once parsed.
    pub response: String,
    /// [`Algorithm::Md5`] when the parameter is absent.
    pub algorithm: Algorithm,
    pub opaque: Option<String>,
    /// `qop`, `cnonce` and `nc`, which come together or not at all.
    pub qop: Option<QopParams>,
}

/// The parameters an answer to a qop challenge carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QopParams {
    pub qop: Qop,
    pub cnonce: String,
    /// The nonce count, `nc` on the wire as 8 lowercase hex digits.
    pub nc: u32,
}

impl Credentials {
    /// Parses a header value such as
    /// `Digest username="101", realm="pbx", nonce="abc", uri="sip:pbx",
    /// response="...", qop=auth, cnonce="xyz", nc=00000001`.
    ///
    /// Refuses a `response` that is not a digest of the algorithm's length,
    /// an `nc` that is not 8 lowercase hex digits, and a session algorithm
    /// without qop. Without `qop`, stray `cnonce`/`nc` are ignored.
    pub fn parse(value: &str) -> Result<Credentials, ParseError> {
        let mut username = None;
        let mut realm = None;
        let mut nonce = None;
        let mut uri = None;
        let mut response = None;
        let mut algorithm = Algorithm::default();
        let mut opaque = None;
        let mut qop = None;
        let mut cnonce = None;
        let mut nc = None;
        for p in parse_digest(value)? {
            let name = p.name;
            let v = p.value;
            if name.eq_ignore_ascii_case("username") {
                username = Some(v.into_owned());
            } else if name.eq_ignore_ascii_case("realm") {
                realm = Some(v.into_owned());
            } else if name.eq_ignore_ascii_case("nonce") {
                nonce = Some(v.into_owned());
            } else if name.eq_ignore_ascii_case("uri") {
                uri = Some(v.into_owned());
            } else if name.eq_ignore_ascii_case("response") {
                response = Some(v.into_owned());
            } else if name.eq_ignore_ascii_case("algorithm") {
                algorithm = v.parse()?;
            } else if name.eq_ignore_ascii_case("opaque") {
                opaque = Some(v.into_owned());
            } else if name.eq_ignore_ascii_case("qop") {
                qop = Some(Qop::parse(&v).ok_or_else(|| ParseError::InvalidValue {
                    name: "qop",
                    value: v.into_owned(),
                })?);
            } else if name.eq_ignore_ascii_case("cnonce") {
                cnonce = Some(v.into_owned());
            } else if name.eq_ignore_ascii_case("nc") {
                nc = Some(parse_nc(&v).ok_or_else(|| ParseError::InvalidValue {
                    name: "nc",
                    value: v.into_owned(),
                })?);
            }
        }

        let mut response = response.ok_or(ParseError::MissingParam("response"))?;
        if !is_hex(&response, algorithm.hash().hex_len()) {
            return Err(ParseError::InvalidValue {
                name: "response",
                value: response,
            });
        }
        response.make_ascii_lowercase();
        let qop = match qop {
            Some(qop) => Some(QopParams {
                qop,
                cnonce: cnonce.ok_or(ParseError::MissingParam("cnonce"))?,
                nc: nc.ok_or(ParseError::MissingParam("nc"))?,
            }),
            None if algorithm.is_session() => return Err(ParseError::MissingParam("qop")),
            None => None,
        };
        Ok(Credentials {
            username: username.ok_or(ParseError::MissingParam("username"))?,
            realm: realm.ok_or(ParseError::MissingParam("realm"))?,
            nonce: nonce.ok_or(ParseError::MissingParam("nonce"))?,
            uri: uri.ok_or(ParseError::MissingParam("uri"))?,
            response,
            algorithm,
            opaque,
            qop,
        })
    }

    /// Whether the `uri` parameter names the request's Request-URI (RFC 3261
    /// §22.4 leaves this check to the server; in Tally the registrar and the
    /// B2BUA call this, [`super::DigestServer::verify`] does not).
    ///
    /// Equal after trimming and lowercasing the scheme and the host part
    /// (after the scheme and any user part, up to the first `;` or `?`); user part,
    /// parameters and headers must match exactly. Clients copy the
    /// Request-URI verbatim, so this only forgives case in the
    /// case-insensitive parts.
    pub fn uri_matches(&self, request_uri: &str) -> bool {
        let (a_scheme, a_user, a_host, a_rest) = split_uri(self.uri.trim());
        let (b_scheme, b_user, b_host, b_rest) = split_uri(request_uri.trim());
        a_scheme.eq_ignore_ascii_case(b_scheme)
            && a_user == b_user
            && a_host.eq_ignore_ascii_case(b_host)
            && a_rest == b_rest
    }
}

/// `(scheme, user part with '@', host[:port], rest)`; a URI without scheme
/// is all host.
fn split_uri(uri: &str) -> (&str, &str, &str, &str) {
    let (scheme, after) = match uri.split_once(':') {
        Some((s, a)) if !s.is_empty() && !s.contains(['@', ';', '?', '/']) => (s, a),
        _ => ("", uri),
    };
    let host_end = after.find([';', '?']).unwrap_or(after.len());
    let (user_and_host, rest) = after.split_at(host_end);
    let (user, host) = match user_and_host.rfind('@') {
        Some(at) => user_and_host.split_at(at + 1),
        None => ("", user_and_host),
    };
    (scheme, user, host, rest)
}

/// 8 lowercase hex digits (RFC 2617 `8LHEX`): the response digest covers the
/// literal text, so it must be the one canonical spelling.
fn parse_nc(s: &str) -> Option<u32> {
    if s.len() == 8 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

impl FromStr for Credentials {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Credentials::parse(s)
    }
}

/// The header value: quoted `username`, `realm`, `nonce`, `uri`, `response`,
/// `cnonce`, `opaque`; bare `algorithm`, `qop`, `nc` (RFC 3261 §25.1).
impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            Quoted(&self.username),
            Quoted(&self.realm),
            Quoted(&self.nonce),
            Quoted(&self.uri),
            Quoted(&self.response),
            self.algorithm,
        )?;
        if let Some(q) = &self.qop {
            write!(f, ", cnonce={}", Quoted(&q.cnonce))?;
        }
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        if let Some(q) = &self.qop {
            write!(f, ", qop={}, nc={:08x}", q.qop, q.nc)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nc_is_eight_lowercase_hex_digits() {
        assert_eq!(parse_nc("00000001"), Some(1));
        assert_eq!(parse_nc("0000000a"), Some(10));
        assert_eq!(parse_nc("ffffffff"), Some(u32::MAX));
        for bad in ["1", "0000000A", "000000001", "+0000001", "0000000g", ""] {
            assert_eq!(parse_nc(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn uri_split() {
        assert_eq!(
            split_uri("sip:101@Demo.Tally.Local:5060;transport=udp"),
            ("sip", "101@", "Demo.Tally.Local:5060", ";transport=udp")
        );
        assert_eq!(
            split_uri("sip:demo.tally.local"),
            ("sip", "", "demo.tally.local", "")
        );
        assert_eq!(
            split_uri("/dir/index.html"),
            ("", "", "/dir/index.html", "")
        );
    }
}
