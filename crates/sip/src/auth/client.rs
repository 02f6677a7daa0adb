//! The answering side: credentials for a carrier's 401/407.

use std::collections::VecDeque;
use std::fmt;

use super::compute::{QopInputs, ha1, response};
use super::params::has_control_char;
use super::{Algorithm, Challenge, Credentials, DigestHash, Qop, QopParams};

/// Realms whose current nonce and count a client remembers. A trunk account
/// talks to one or two; a hostile peer inventing realms costs at most this.
const REMEMBERED_REALMS: usize = 16;

/// Why a challenge cannot be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("challenge offers only qop auth-int, which is not supported")]
    UnsupportedQop,
    #[error("{0} challenge without qop: a session algorithm needs a cnonce")]
    SessionWithoutQop(Algorithm),
    #[error("cnonce is empty")]
    EmptyCnonce,
    #[error("{0} contains a control character")]
    ControlCharacter(&'static str),
    #[error("nonce count exhausted for this nonce")]
    NonceCountExhausted,
}

/// Answers challenges for one account (a trunk's username and password).
///
/// Remembers, per realm, the last nonce answered and its count, so that
/// requests reusing a challenge (a REGISTER refresh answered pre-emptively,
/// or an INVITE after a REGISTER in the same realm) send `nc` 2, 3, ...
pub struct DigestClient {
    username: String,
    password: String,
    counts: VecDeque<NonceCount>,
}

struct NonceCount {
    realm: String,
    nonce: String,
    nc: u32,
}

impl fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestClient")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl DigestClient {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        DigestClient {
            username: username.into(),
            password: password.into(),
            counts: VecDeque::new(),
        }
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// Credentials for a request of `method` to `uri` (the Request-URI, as it
    /// will appear in the request line) answering `challenge`. `cnonce` is
    /// fresh randomness from the caller; it is used only when the challenge
    /// offers qop, which is then `auth`. Put the result in `Authorization`
    /// for a 401, `Proxy-Authorization` for a 407.
    pub fn respond(
        &mut self,
        challenge: &Challenge,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Result<Credentials, ClientError> {
        for (name, value) in [
            ("username", &*self.username),
            ("uri", uri),
            ("cnonce", cnonce),
        ] {
            if has_control_char(value) {
                return Err(ClientError::ControlCharacter(name));
            }
        }
        let algorithm = challenge.algorithm;
        let qop = match answerable_qop(challenge)? {
            None => None,
            Some(qop) => {
                if cnonce.is_empty() {
                    return Err(ClientError::EmptyCnonce);
                }
                Some(QopParams {
                    qop,
                    cnonce: cnonce.to_owned(),
                    nc: self.next_count(&challenge.realm, &challenge.nonce)?,
                })
            }
        };
        let inputs = qop.as_ref().map(|q| QopInputs {
            qop: q.qop,
            nc: q.nc,
            cnonce: &q.cnonce,
        });
        let ha1 = ha1(
            algorithm.hash(),
            &self.username,
            &challenge.realm,
            &self.password,
        );
        let response = response(
            algorithm,
            &ha1,
            &challenge.nonce,
            method,
            uri,
            inputs.as_ref(),
        );
        Ok(Credentials {
            username: self.username.clone(),
            realm: challenge.realm.clone(),
            nonce: challenge.nonce.clone(),
            uri: uri.to_owned(),
            response,
            algorithm,
            opaque: challenge.opaque.clone(),
            qop,
        })
    }

    /// The count for the next use of `nonce` in `realm`: 1 for a nonce not
    /// seen before (which replaces the realm's previous one).
    fn next_count(&mut self, realm: &str, nonce: &str) -> Result<u32, ClientError> {
        let i = self.counts.iter().position(|c| c.realm == realm);
        let entry = match i.and_then(|i| self.counts.remove(i)) {
            Some(entry) if entry.nonce == nonce => {
                let nc = entry
                    .nc
                    .checked_add(1)
                    .ok_or(ClientError::NonceCountExhausted)?;
                NonceCount { nc, ..entry }
            }
            _ => NonceCount {
                realm: realm.to_owned(),
                nonce: nonce.to_owned(),
                nc: 1,
            },
        };
        let nc = entry.nc;
        if self.counts.len() >= REMEMBERED_REALMS {
            self.counts.pop_front();
        }
        self.counts.push_back(entry);
        Ok(nc)
    }
}

/// The qop a client answers `challenge` with: `auth` when offered, none for
/// an RFC 2069 challenge.
fn answerable_qop(challenge: &Challenge) -> Result<Option<Qop>, ClientError> {
    if challenge.qop.is_empty() {
        if challenge.algorithm.is_session() {
            return Err(ClientError::SessionWithoutQop(challenge.algorithm));
        }
        return Ok(None);
    }
    if challenge.qop.contains(&Qop::Auth) {
        Ok(Some(Qop::Auth))
    } else {
        Err(ClientError::UnsupportedQop)
    }
}

/// Among the challenges of one response (several `WWW-Authenticate` or
/// `Proxy-Authenticate` values), the one to answer: SHA-256 over MD5 (RFC
/// 8760 §2.4), the server's order among equals, skipping those
/// [`DigestClient::respond`] would refuse. A response challenging for
/// several realms (proxies in series) needs one answer per realm: group by
/// `realm` first.
pub fn strongest_challenge(challenges: &[Challenge]) -> Option<&Challenge> {
    let strength = |c: &Challenge| match c.algorithm.hash() {
        DigestHash::Sha256 => 2,
        DigestHash::Md5 => 1,
    };
    challenges
        .iter()
        .filter(|c| answerable_qop(c).is_ok())
        .fold(None, |best: Option<&Challenge>, c| match best {
            Some(b) if strength(b) >= strength(c) => Some(b),
            _ => Some(c),
        })
}
