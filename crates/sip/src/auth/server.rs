//! The challenging side: stateless nonces and bounded replay protection.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::compute::{QopInputs, constant_time_eq, ha1, hex, is_hex, response};
use super::{Algorithm, Challenge, Credentials, DigestHash, Qop};

/// How long a nonce answers before it turns [`Verdict::Stale`].
pub const DEFAULT_NONCE_LIFETIME_SECS: u64 = 300;
/// How many live nonces a server remembers nonce counts for.
pub const DEFAULT_MAX_TRACKED_NONCES: usize = 100_000;

/// The count recorded for a nonce answered without qop: above every real
/// count, so the nonce cannot be answered again, with or without qop.
const SINGLE_USE: u32 = u32::MAX;
/// Domain separation for the nonce MAC, should the key ever serve elsewhere.
const NONCE_LABEL: &[u8] = b"tally/sip/digest-nonce/v1";
const TAG_LEN: usize = 16;
/// issued_at (8) + salt (8) + algorithm (1) + tag.
const NONCE_LEN: usize = 8 + 8 + 1 + TAG_LEN;

/// What the directory knows about the user named in the credentials.
#[derive(Clone, Copy)]
pub enum UserSecret<'a> {
    /// The plaintext password.
    Password(&'a str),
    /// `MD5(username:realm:password)` in hex ([`super::ha1`]); answers `MD5`
    /// and `MD5-sess` credentials.
    Md5Ha1(&'a str),
    /// `SHA-256(username:realm:password)` in hex; answers `SHA-256` and
    /// `SHA-256-sess` credentials.
    Sha256Ha1(&'a str),
}

impl fmt::Debug for UserSecret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UserSecret::Password(_) => "Password(..)",
            UserSecret::Md5Ha1(_) => "Md5Ha1(..)",
            UserSecret::Sha256Ha1(_) => "Sha256Ha1(..)",
        })
    }
}

/// The outcome of [`DigestServer::verify`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The request is authenticated.
    Ok,
    /// The password is right but the nonce has expired (or its replay record
    /// was evicted): challenge again with `stale=true`.
    Stale,
    /// Not authenticated: challenge again (or answer 403, the caller's call).
    Reject(RejectReason),
}

/// Why [`DigestServer::verify`] refused credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    #[error("credentials are for another realm")]
    RealmMismatch,
    #[error("nonce was not issued by this server for this realm")]
    InvalidNonce,
    #[error("algorithm differs from the one the nonce was issued for")]
    AlgorithmMismatch,
    #[error("qop auth-int is not supported")]
    UnsupportedQop,
    #[error("session algorithm used without qop")]
    SessionWithoutQop,
    #[error("answer without qop=auth, which this server requires")]
    MissingQop,
    #[error("stored HA1 is for another hash than the credentials' algorithm")]
    Ha1AlgorithmMismatch,
    #[error("stored HA1 is not a hex digest of the right length")]
    InvalidStoredHa1,
    #[error("response digest does not match")]
    WrongResponse,
    #[error("nonce count did not increase")]
    ReplayedNonceCount,
}

/// Mints challenges for one realm and verifies the answers.
///
/// Nonces carry their own issue time and MAC, so any node holding the same
/// key (and realm) can verify them; the nonce-count table that stops replays
/// is per server, bounded, and rebuilt from nothing after a restart (a nonce
/// first seen by a fresh server is simply tracked from then on).
pub struct DigestServer {
    realm: String,
    /// HMAC-SHA256 already keyed; cloned for each nonce.
    mac: Hmac<Sha256>,
    lifetime: u64,
    max_tracked: usize,
    /// Whether answers without `qop` are refused ([`RejectReason::MissingQop`]).
    qop_required: bool,
    next_salt: u64,
    /// `(issued_at, tag)` of each live nonce answered, to the highest nc
    /// accepted ([`SINGLE_USE`] for a nonce answered without qop). Ordered by issue time so expiry and eviction pop the front.
    counts: BTreeMap<(u64, [u8; TAG_LEN]), u32>,
    /// The largest key ever evicted while live: an untracked nonce at or
    /// below it may have been answered before, so it is treated as stale.
    evicted_up_to: Option<(u64, [u8; TAG_LEN])>,
}

impl fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("lifetime", &self.lifetime)
            .field("max_tracked", &self.max_tracked)
            .field("tracked", &self.counts.len())
            .finish_non_exhaustive()
    }
}

/// A nonce this server minted, decoded.
struct Nonce {
    issued_at: u64,
    salt: u64,
    algorithm: Algorithm,
    tag: [u8; TAG_LEN],
}

impl DigestServer {
    /// A server for `realm` whose nonces are keyed by `key`, which the
    /// runtime draws from the OS at start-up (or shares between the nodes of
    /// a cluster).
    pub fn new(realm: impl Into<String>, key: [u8; 32]) -> Self {
        // HMAC pads a key shorter than the block with zeros (RFC 2104 §2), so
        // this is HMAC with `key` itself, built without a fallible call.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&key);
        DigestServer {
            realm: realm.into(),
            mac: Hmac::<Sha256>::new(&block.into()),
            lifetime: DEFAULT_NONCE_LIFETIME_SECS,
            max_tracked: DEFAULT_MAX_TRACKED_NONCES,
            qop_required: true,
            next_salt: 0,
            counts: BTreeMap::new(),
            evicted_up_to: None,
        }
    }

    /// Nonce lifetime in seconds (at least 1).
    pub fn with_nonce_lifetime_secs(mut self, secs: u64) -> Self {
        self.lifetime = secs.max(1);
        self
    }

    /// Whether answers without `qop` are refused (the default). Off for
    /// legacy phones that ignore `qop="auth"`: their answers are then
    /// accepted once per nonce (a second use is [`Verdict::Stale`], so the
    /// phone is re-challenged and a captured answer cannot be replayed).
    pub fn with_qop_required(mut self, required: bool) -> Self {
        self.qop_required = required;
        self
    }

    /// Cap on the nonce-count table (at least 1).
    pub fn with_max_tracked_nonces(mut self, max: usize) -> Self {
        self.max_tracked = max.max(1);
        self
    }

    /// Start of the per-nonce salt counter. Nodes sharing a key should use
    /// distinct seeds (a random one per process is fine), so that no two of
    /// them ever mint the same nonce in the same second.
    pub fn with_salt_seed(mut self, seed: u64) -> Self {
        self.next_salt = seed;
        self
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// How many nonces the replay table holds; never above the cap.
    pub fn tracked_nonces(&self) -> usize {
        self.counts.len()
    }

    /// A fresh challenge offering `algorithm` with `qop="auth"`. Offer
    /// several (SHA-256 first, then MD5, RFC 8760 §2.4) by calling this once
    /// per algorithm and sending one header each. The caller may set
    /// `domain` and `opaque` on the result; `verify` looks at neither.
    pub fn challenge(
        &mut self,
        now_unix_secs: u64,
        algorithm: Algorithm,
        stale: bool,
    ) -> Challenge {
        self.expire(now_unix_secs);
        let salt = self.next_salt;
        self.next_salt = self.next_salt.wrapping_add(1);
        let mut tag = [0u8; TAG_LEN];
        let full = self
            .keyed(now_unix_secs, salt, algorithm)
            .finalize()
            .into_bytes();
        tag.copy_from_slice(&full[..TAG_LEN]);
        let nonce = Nonce {
            issued_at: now_unix_secs,
            salt,
            algorithm,
            tag,
        };
        Challenge {
            realm: self.realm.clone(),
            domain: Vec::new(),
            nonce: nonce.encode(),
            opaque: None,
            stale,
            algorithm,
            qop: vec![Qop::Auth],
        }
    }

    /// Checks `credentials` sent with a request of `method` against the
    /// user's `secret` (the caller looked the user up by
    /// `credentials.username` and compares `credentials.uri` with the
    /// Request-URI itself, see [`Credentials::uri_matches`]). For a username
    /// the directory does not know, answer exactly as for
    /// [`RejectReason::WrongResponse`], so usernames cannot be probed.
    ///
    /// Order matters: a response is checked before the nonce's age, so
    /// [`Verdict::Stale`] is only ever said to someone who knows the
    /// password, and the nonce count is recorded only for correct responses,
    /// so forged requests cannot burn a client's counts.
    pub fn verify(
        &mut self,
        now_unix_secs: u64,
        method: &str,
        credentials: &Credentials,
        secret: UserSecret<'_>,
    ) -> Verdict {
        self.expire(now_unix_secs);
        let c = credentials;
        if c.realm != self.realm {
            return Verdict::Reject(RejectReason::RealmMismatch);
        }
        let qop = match &c.qop {
            None if c.algorithm.is_session() => {
                return Verdict::Reject(RejectReason::SessionWithoutQop);
            }
            None if self.qop_required => return Verdict::Reject(RejectReason::MissingQop),
            None => None,
            Some(q) if q.qop == Qop::Auth => Some(QopInputs {
                qop: q.qop,
                nc: q.nc,
                cnonce: &q.cnonce,
            }),
            Some(_) => return Verdict::Reject(RejectReason::UnsupportedQop),
        };
        let Some(nonce) = self.open(&c.nonce) else {
            return Verdict::Reject(RejectReason::InvalidNonce);
        };
        if nonce.algorithm != c.algorithm {
            return Verdict::Reject(RejectReason::AlgorithmMismatch);
        }
        let hash = c.algorithm.hash();
        let ha1 = match (secret, hash) {
            (UserSecret::Password(password), _) => ha1(hash, &c.username, &self.realm, password),
            (UserSecret::Md5Ha1(stored), DigestHash::Md5)
            | (UserSecret::Sha256Ha1(stored), DigestHash::Sha256) => {
                if !is_hex(stored, hash.hex_len()) {
                    return Verdict::Reject(RejectReason::InvalidStoredHa1);
                }
                stored.to_ascii_lowercase()
            }
            _ => return Verdict::Reject(RejectReason::Ha1AlgorithmMismatch),
        };
        let expected = response(c.algorithm, &ha1, &c.nonce, method, &c.uri, qop.as_ref());
        let got = c.response.to_ascii_lowercase();
        if !constant_time_eq(expected.as_bytes(), got.as_bytes()) {
            return Verdict::Reject(RejectReason::WrongResponse);
        }
        if is_expired(nonce.issued_at, now_unix_secs, self.lifetime) {
            return Verdict::Stale;
        }
        match qop {
            // Without qop there is no count to tell a replay from a retry, so
            // the nonce answers once (RFC 2069 compatibility).
            None => self.record_single_use((nonce.issued_at, nonce.tag)),
            Some(q) => self.record_count((nonce.issued_at, nonce.tag), q.nc),
        }
    }

    /// Accepts the first use of a nonce answered without qop; a later use
    /// is [`Verdict::Stale`]: the phone is challenged again with a fresh
    /// nonce, a replayed answer gets nowhere.
    fn record_single_use(&mut self, key: (u64, [u8; TAG_LEN])) -> Verdict {
        if self.counts.contains_key(&key) || self.evicted_up_to.is_some_and(|floor| key <= floor) {
            return Verdict::Stale;
        }
        self.track(key, SINGLE_USE);
        Verdict::Ok
    }

    /// Accepts `nc` for the nonce `key` if it is above every count seen.
    fn record_count(&mut self, key: (u64, [u8; TAG_LEN]), nc: u32) -> Verdict {
        if let Some(highest) = self.counts.get_mut(&key) {
            if nc <= *highest {
                return Verdict::Reject(RejectReason::ReplayedNonceCount);
            }
            *highest = nc;
            return Verdict::Ok;
        }
        if self.evicted_up_to.is_some_and(|floor| key <= floor) {
            return Verdict::Stale;
        }
        if nc == 0 {
            return Verdict::Reject(RejectReason::ReplayedNonceCount);
        }
        self.track(key, nc);
        Verdict::Ok
    }

    /// Remembers `nc` for a nonce not in the table, evicting the oldest
    /// entries when full (see the module doc).
    fn track(&mut self, key: (u64, [u8; TAG_LEN]), nc: u32) {
        while self.counts.len() >= self.max_tracked {
            let Some((evicted, _)) = self.counts.pop_first() else {
                break;
            };
            self.evicted_up_to = self.evicted_up_to.max(Some(evicted));
        }
        self.counts.insert(key, nc);
    }

    /// Drops the table's expired entries; each entry is dropped once, so the
    /// cost is amortised over the calls that inserted them.
    fn expire(&mut self, now: u64) {
        while let Some(entry) = self.counts.first_entry() {
            if !is_expired(entry.key().0, now, self.lifetime) {
                break;
            }
            entry.remove();
        }
    }

    /// The MAC over a nonce's fields, ready to finalize or verify.
    fn keyed(&self, issued_at: u64, salt: u64, algorithm: Algorithm) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(NONCE_LABEL);
        mac.update(&issued_at.to_be_bytes());
        mac.update(&salt.to_be_bytes());
        mac.update(&[algorithm_code(algorithm)]);
        mac.update(self.realm.as_bytes());
        mac
    }

    /// Decodes `text` and checks its MAC; `None` for anything not minted by
    /// this server for this realm.
    fn open(&self, text: &str) -> Option<Nonce> {
        let nonce = Nonce::decode(text)?;
        self.keyed(nonce.issued_at, nonce.salt, nonce.algorithm)
            .verify_truncated_left(&nonce.tag)
            .ok()?;
        Some(nonce)
    }
}

impl Nonce {
    fn encode(&self) -> String {
        let mut bytes = [0u8; NONCE_LEN];
        bytes[..8].copy_from_slice(&self.issued_at.to_be_bytes());
        bytes[8..16].copy_from_slice(&self.salt.to_be_bytes());
        bytes[16] = algorithm_code(self.algorithm);
        bytes[17..].copy_from_slice(&self.tag);
        hex(&bytes)
    }

    fn decode(text: &str) -> Option<Nonce> {
        let bytes = decode_hex::<NONCE_LEN>(text)?;
        let (issued_at, rest) = bytes.split_first_chunk::<8>()?;
        let (salt, rest) = rest.split_first_chunk::<8>()?;
        let (&code, tag) = rest.split_first()?;
        Some(Nonce {
            issued_at: u64::from_be_bytes(*issued_at),
            salt: u64::from_be_bytes(*salt),
            algorithm: algorithm_from_code(code)?,
            tag: tag.try_into().ok()?,
        })
    }
}

fn is_expired(issued_at: u64, now: u64, lifetime: u64) -> bool {
    // A nonce from the future (a clock stepped back) counts as fresh.
    now.saturating_sub(issued_at) >= lifetime
}

fn algorithm_code(a: Algorithm) -> u8 {
    match a {
        Algorithm::Md5 => 1,
        Algorithm::Md5Sess => 2,
        Algorithm::Sha256 => 3,
        Algorithm::Sha256Sess => 4,
    }
}

fn algorithm_from_code(code: u8) -> Option<Algorithm> {
    Some(match code {
        1 => Algorithm::Md5,
        2 => Algorithm::Md5Sess,
        3 => Algorithm::Sha256,
        4 => Algorithm::Sha256Sess,
        _ => return None,
    })
}

/// Exactly `2 * N` lowercase hex digits (the only spelling we mint).
fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    fn digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_encoding_round_trips() {
        let n = Nonce {
            issued_at: 1_700_000_000,
            salt: u64::MAX,
            algorithm: Algorithm::Sha256Sess,
            tag: [0xab; TAG_LEN],
        };
        let text = n.encode();
        assert_eq!(text.len(), 2 * NONCE_LEN);
        let back = Nonce::decode(&text).expect("own encoding decodes");
        assert_eq!(back.issued_at, n.issued_at);
        assert_eq!(back.salt, n.salt);
        assert_eq!(back.algorithm, n.algorithm);
        assert_eq!(back.tag, n.tag);
    }

    #[test]
    fn nonce_decoding_is_strict() {
        let good = Nonce {
            issued_at: 1,
            salt: 2,
            algorithm: Algorithm::Md5,
            tag: [0xfe; TAG_LEN],
        }
        .encode();
        assert!(Nonce::decode(&good).is_some());
        assert!(Nonce::decode(&good.to_ascii_uppercase()).is_none());
        assert!(Nonce::decode(&good[1..]).is_none());
        assert!(Nonce::decode(&format!("{good}00")).is_none());
        let mut bad_code = good.clone();
        bad_code.replace_range(32..34, "09");
        assert!(Nonce::decode(&bad_code).is_none());
        assert!(Nonce::decode("").is_none());
        assert!(Nonce::decode(&"é".repeat(NONCE_LEN)).is_none());
    }

    #[test]
    fn mac_covers_realm() {
        let key = [7u8; 32];
        let mut a = DigestServer::new("a.example", key);
        let b = DigestServer::new("b.example", key);
        let ch = a.challenge(100, Algorithm::Md5, false);
        assert!(a.open(&ch.nonce).is_some());
        assert!(b.open(&ch.nonce).is_none());
    }

    #[test]
    fn nonce_count_zero_is_refused() {
        let mut s = DigestServer::new("r", [3; 32]);
        let ch = s.challenge(10, Algorithm::Md5, false);
        let q = QopInputs {
            qop: Qop::Auth,
            nc: 0,
            cnonce: "c",
        };
        let h = ha1(DigestHash::Md5, "u", "r", "p");
        let c = Credentials {
            username: "u".into(),
            realm: "r".into(),
            nonce: ch.nonce.clone(),
            uri: "sip:r".into(),
            response: response(Algorithm::Md5, &h, &ch.nonce, "REGISTER", "sip:r", Some(&q)),
            algorithm: Algorithm::Md5,
            opaque: None,
            qop: Some(super::super::QopParams {
                qop: Qop::Auth,
                cnonce: "c".into(),
                nc: 0,
            }),
        };
        assert_eq!(
            s.verify(10, "REGISTER", &c, UserSecret::Password("p")),
            Verdict::Reject(RejectReason::ReplayedNonceCount)
        );
        assert_eq!(s.tracked_nonces(), 0);
    }

    #[test]
    fn salt_makes_nonces_unique_within_a_second() {
        let mut s = DigestServer::new("r", [1; 32]);
        let a = s.challenge(5, Algorithm::Md5, false);
        let b = s.challenge(5, Algorithm::Md5, false);
        assert_ne!(a.nonce, b.nonce);
    }
}
