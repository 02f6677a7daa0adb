//! `WWW-Authenticate` / `Proxy-Authenticate` values.

use std::fmt;
use std::str::FromStr;

use super::params::{ParseError, Quoted, parse_digest};
use super::{Algorithm, Qop};

/// A digest challenge (RFC 3261 §22.4 `digest-cln`, RFC 7616 §3.3).
///
/// `userhash`, `charset` and unknown parameters are skipped when parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    /// The `domain` URIs, space-separated on the wire; usually empty in SIP.
    pub domain: Vec<String>,
    pub nonce: String,
    pub opaque: Option<String>,
    pub stale: bool,
    /// [`Algorithm::Md5`] when the parameter is absent.
    pub algorithm: Algorithm,
    /// The offered qop values, in the server's order; empty when the
    /// parameter is absent (an RFC 2069 challenge). Unknown values are
    /// skipped.
    pub qop: Vec<Qop>,
}

impl Challenge {
    /// Parses a header value such as
    /// `Digest realm="pbx", nonce="abc", algorithm=SHA-256, qop="auth"`.
    pub fn parse(value: &str) -> Result<Challenge, ParseError> {
        let mut realm = None;
        let mut domain = Vec::new();
        let mut nonce = None;
        let mut opaque = None;
        let mut stale = false;
        let mut algorithm = Algorithm::default();
        let mut qop = Vec::new();
        for p in parse_digest(value)? {
            let name = p.name;
            let v = p.value;
            if name.eq_ignore_ascii_case("realm") {
                realm = Some(v.into_owned());
            } else if name.eq_ignore_ascii_case("nonce") {
                nonce = Some(v.into_owned());
            } else if name.eq_ignore_ascii_case("domain") {
                domain = v.split_ascii_whitespace().map(str::to_owned).collect();
            } else if name.eq_ignore_ascii_case("opaque") {
                opaque = Some(v.into_owned());
            } else if name.eq_ignore_ascii_case("stale") {
                stale = if v.eq_ignore_ascii_case("true") {
                    true
                } else if v.eq_ignore_ascii_case("false") {
                    false
                } else {
                    return Err(ParseError::InvalidValue {
                        name: "stale",
                        value: v.into_owned(),
                    });
                };
            } else if name.eq_ignore_ascii_case("algorithm") {
                algorithm = v.parse()?;
            } else if name.eq_ignore_ascii_case("qop") {
                qop = v
                    .split(',')
                    .filter_map(|t| Qop::parse(t.trim_matches([' ', '\t'])))
                    .collect();
                if qop.is_empty() {
                    // Answering as if no qop were offered would be a
                    // downgrade the server did not ask for.
                    return Err(ParseError::InvalidValue {
                        name: "qop",
                        value: v.into_owned(),
                    });
                }
            }
        }
        Ok(Challenge {
            realm: realm.ok_or(ParseError::MissingParam("realm"))?,
            domain,
            nonce: nonce.ok_or(ParseError::MissingParam("nonce"))?,
            opaque,
            stale,
            algorithm,
            qop,
        })
    }
}

impl FromStr for Challenge {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Challenge::parse(s)
    }
}

/// The header value: quoted `realm`, `domain`, `nonce`, `opaque`, `qop`;
/// bare `stale` (only when true) and `algorithm` (always, as RFC 8760 asks).
impl fmt::Display for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest realm={}", Quoted(&self.realm))?;
        if !self.domain.is_empty() {
            write!(f, ", domain={}", Quoted(&self.domain.join(" ")))?;
        }
        write!(f, ", nonce={}", Quoted(&self.nonce))?;
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        write!(f, ", algorithm={}", self.algorithm)?;
        if !self.qop.is_empty() {
            let list: Vec<&str> = self.qop.iter().map(|q| q.as_str()).collect();
            write!(f, ", qop={}", Quoted(&list.join(",")))?;
        }
        Ok(())
    }
}
