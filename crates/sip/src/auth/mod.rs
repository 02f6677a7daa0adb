//! SIP digest authentication (RFC 3261 §22, RFC 7616 algorithms, RFC 8760 for
//! SIP), sans-IO.
//!
//! # Place in Tally
//!
//! Two sides of the PBX use this module:
//!
//! - **Challenging** (`pbx`'s registrar and the B2BUA): a REGISTER or INVITE
//!   without valid credentials is answered 401 (`WWW-Authenticate`) or 407
//!   (`Proxy-Authenticate`) carrying a [`Challenge`] minted by a
//!   [`DigestServer`]; the retried request's `Authorization` /
//!   `Proxy-Authorization` value is parsed into [`Credentials`], the caller
//!   looks the user up in the directory and hands its [`UserSecret`] to
//!   [`DigestServer::verify`], which returns a [`Verdict`].
//! - **Answering** (the trunk client registering to or calling through a
//!   carrier): a carrier's 401/407 challenges are parsed, the strongest is
//!   picked with [`strongest_challenge`], and a [`DigestClient`] (one per
//!   trunk account) turns it into [`Credentials`] for the retried request.
//!
//! Like the rest of the `sip` crate nothing here reads a clock or draws
//! randomness: the caller passes `now` (Unix seconds), the server key and the
//! client cnonce. Header values are passed in as `&str` (the text after
//! `WWW-Authenticate:` and friends); which header to put a value in is the
//! caller's business, the values are the same for 401 and 407.
//!
//! # Decisions
//!
//! - **One [`DigestServer`] per realm.** In Tally a realm is a tenant's SIP
//!   domain; the server owns that realm's nonce-count table, so tenants never
//!   share replay state and one tenant's flood cannot evict another's nonces.
//!   Servers of different realms may share the key: nonces are bound to their
//!   realm by the MAC.
//! - **Stateless nonces.** A nonce is the hex encoding of
//!   `issued_at (u64 BE) ‖ salt (u64 BE) ‖ algorithm (u8) ‖ tag (16 bytes)`
//!   where `tag` is HMAC-SHA256(key, label ‖ issued_at ‖ salt ‖ algorithm ‖
//!   realm) truncated to 128 bits. Any nonce the server did not mint (flipped
//!   bit, other key, other realm) is rejected; an expired nonce answered with
//!   the right password is [`Verdict::Stale`], so the caller re-challenges
//!   with `stale=true` and the phone retries silently. The salt is a counter
//!   started from a caller-chosen seed ([`DigestServer::with_salt_seed`]);
//!   nodes that share a key should use distinct seeds so their nonces differ.
//!   The algorithm is bound into the nonce, so a client cannot answer a
//!   SHA-256 challenge with MD5.
//! - **qop.** The server always offers `qop="auth"` and, by default,
//!   refuses answers without it ([`RejectReason::MissingQop`]): without a
//!   nonce count nothing tells a replayed answer from a fresh one. Servers
//!   built [`DigestServer::with_qop_required`]`(false)` accept RFC 2069
//!   answers for legacy phones, with the non-session algorithms only, and
//!   each nonce once: a second use is [`Verdict::Stale`], so the phone is
//!   re-challenged and a captured answer is worth nothing. `auth-int` is
//!   parsed but never offered nor answered: the server rejects it
//!   ([`RejectReason::UnsupportedQop`]) and the client refuses challenges
//!   that offer only it ([`ClientError::UnsupportedQop`]). Session
//!   algorithms (`MD5-sess`, `SHA-256-sess`) require qop, because their HA1
//!   needs a cnonce.
//! - **Replay protection.** With `qop=auth` the server remembers, for each
//!   live nonce, the highest `nc` it accepted; `nc` must strictly increase.
//!   The table is bounded ([`DigestServer::with_max_tracked_nonces`], 100 000
//!   by default): expired entries are dropped on every call (each entry once,
//!   so the cost is amortised), and when it is still full the entry of the
//!   oldest nonce is evicted and every nonce at or below it that is not in
//!   the table is answered [`Verdict::Stale`] from then on. Eviction
//!   therefore costs a client a re-challenge, never opens a replay.
//! - **Request-URI check belongs to the caller.** The server verifies the
//!   digest over the `uri` parameter the client sent; whether that URI names
//!   the same resource as the request line is checked by the registrar with
//!   [`Credentials::uri_matches`].
//! - **Unknown parameters are skipped** (`userhash`, `charset`, `username*`,
//!   extensions), not stored; a parameter given twice (known or not) is an
//!   error, as is a header with more than 64 parameters.
//! - Digests are compared in constant time; stored HA1s are passed per hash
//!   ([`UserSecret::Md5Ha1`], [`UserSecret::Sha256Ha1`]) and computed with
//!   [`ha1`].

mod challenge;
mod client;
mod compute;
mod credentials;
mod params;
mod server;

use std::fmt;
use std::str::FromStr;

pub use challenge::Challenge;
pub use client::{ClientError, DigestClient, strongest_challenge};
pub use compute::ha1;
pub use credentials::{Credentials, QopParams};
pub use params::ParseError;
pub use server::{
    DEFAULT_MAX_TRACKED_NONCES, DEFAULT_NONCE_LIFETIME_SECS, DigestServer, RejectReason,
    UserSecret, Verdict,
};

/// The hash function behind an [`Algorithm`]; a stored HA1 depends only on
/// this, not on whether the session variant is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestHash {
    Md5,
    Sha256,
}

impl DigestHash {
    /// Length of a digest in lowercase hex.
    pub fn hex_len(self) -> usize {
        match self {
            DigestHash::Md5 => 32,
            DigestHash::Sha256 => 64,
        }
    }
}

/// The `algorithm` parameter. Absent means [`Algorithm::Md5`] (RFC 3261).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    #[default]
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    /// The wire spelling (RFC 7616 §6.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    pub fn hash(self) -> DigestHash {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => DigestHash::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => DigestHash::Sha256,
        }
    }

    /// Whether HA1 is re-keyed with the nonce and cnonce (`-sess`).
    pub fn is_session(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = ParseError;

    /// Case-insensitive, as the token comparison in RFC 7616 §3.3.
    fn from_str(s: &str) -> Result<Self, ParseError> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| ParseError::UnsupportedAlgorithm(s.to_owned()))
    }
}

/// A quality-of-protection value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// Authentication only; the one Tally offers and answers.
    Auth,
    /// Authentication with integrity of the body; parsed, never supported.
    AuthInt,
}

impl Qop {
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }

    fn parse(s: &str) -> Option<Qop> {
        if s.eq_ignore_ascii_case("auth") {
            Some(Qop::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
