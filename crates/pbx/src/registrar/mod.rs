//! The registrar: answers REGISTER (RFC 3261 §10.3) for every tenant and
//! writes the [`Location`].
//!
//! [`Registrar::handle_register`] takes one received REGISTER, with the time
//! (an [`Instant`] for expiries and throttling, Unix seconds for digest
//! nonces) and the transport address it came from, and returns a
//! [`RegisterOutcome`]: the response to send, the binding changes to persist
//! and the security events to log and count. [`Registrar::handle_timeout`]
//! sweeps expired bindings. Nothing here reads a clock, draws randomness or
//! touches a socket: the nonce key and a seed (digest salts, To tags) are
//! given at construction.
//!
//! # The steps, in order
//!
//! 1. The message must pass [`sip::validate::check_request`] (else `400`, or
//!    nothing when it cannot be answered: [`RegisterError::Unanswerable`]).
//! 2. Request-URI scheme `sip`/`sips` (else `416`); no `Require` option tags
//!    (Tally supports none for REGISTER: `420` with `Unsupported`).
//! 3. Tenant: the Request-URI host names a tenant domain, else the To host
//!    does (phones registering to the PBX's IP address).
//! 4. A (source, tenant, To user) blocked by the failure throttle gets `403`
//!    at once ([`RegistrarEvent::RefusedBlocked`]); nothing else is looked
//!    at. No tenant: `404`.
//! 5. User: the To user of that tenant. Unknown: `404`; disabled: `403`.
//! 6. Digest (RFC 3261 §22, RFC 8760): the `Authorization` for the tenant's
//!    realm (its domain). None: `401` with one challenge per algorithm of
//!    the tenant's offer (MD5 alone by default, [`DigestOffer`]), each with
//!    `qop="auth"`. Its `username` must be the To user (`403`), its `uri`
//!    the Request-URI (`400`). Right password on an expired nonce: `401`
//!    `stale=true`. A nonce this registrar did not mint (a restart with a new
//!    key, another node): a fresh `401`. Wrong password, replayed nonce
//!    count: `403`. No `qop`: `403` unless
//!    [`RegistrarConfig::allow_digest_without_qop`] (then each nonce
//!    answers once). A device challenged 3 times in a row without ever
//!    answering is reported ([`RegistrarEvent::ChallengesUnanswered`]).
//! 7. Contacts (RFC 3261 §10.3 steps 6–8): none is a query (`200` listing the
//!    bindings). `*` needs `Expires: 0` and no other Contact (else `400`) and
//!    removes all. Otherwise each contact's expiry is its `expires`
//!    parameter, else the `Expires` header, else `default_expires`; zero
//!    removes the binding, anything else below `min_expires` refuses the
//!    whole request with `423` and `Min-Expires`, above `max_expires` is
//!    shortened to it. The location applies the request all or nothing:
//!    same Call-ID with a CSeq not above the stored one is `500`; more live
//!    contacts than the per-user cap in one request is `403`.
//! 8. `200` with one Contact per live binding (`expires` = seconds left,
//!    `q` and `+sip.instance` echoed) and a `Date`.
//!
//! # Decisions
//!
//! - **What counts as a failure** for the throttle ([`AuthFailure`]):
//!   unknown domain, unknown user, wrong password, a `username` other than
//!   the To user, a replayed nonce count. Each says the peer does not hold
//!   valid credentials for an existing account; counting unknown users too
//!   slows extension scanners (SIPVicious and friends) as much as password
//!   guessers. Not counted: a missing `Authorization` (the normal first
//!   leg), an unknown or stale nonce (the peer may know the password), a
//!   malformed request, a disabled user, an answer without `qop` (logged).
//!   Failures count per (source, tenant, user) ([`FailureKey`]): spoofed
//!   UDP can no longer lock a whole address out. See the `throttle` module
//!   for the rule and [`ThrottleConfig`] for the window and the bounds.
//! - **`404` for unknown domains and users** as the issue asks, although it
//!   tells a scanner which extensions exist (INVITEs do not: they challenge
//!   unknown callers like known ones, see `engine::auth`).
//! - **The digest `uri` must name the Request-URI** (RFC 7616 §3.4.6), so
//!   credentials captured for one request line cannot be replayed on another.
//! - **One [`DigestServer`] per tenant**, its realm the tenant's domain,
//!   created on first use and replaced when the domain changes; all share the
//!   registrar's key, so a nonce only verifies for the realm it was minted for.
//! - **Why `500` for an out-of-order CSeq**: RFC 3261 §10.3 says the request
//!   "fails" without a code; `500` is what a phone treats as transient, and
//!   a phone sending an old CSeq on an existing Call-ID is out of step with
//!   itself, not unauthorised.
//! - **Configuration is normalised, not refused**: `max_expires` at least 1,
//!   `min_expires` at most `max_expires`, `default_expires` clamped between
//!   them, so every setting yields a working registrar.

mod path;
mod throttle;
mod unanswered;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cdr::TenantId;
use sip::auth::{Algorithm, Credentials, DigestServer, RejectReason, Verdict};
use sip::headers::Contact;
use sip::transport::Peer;
use sip::uri::{Host, Uri};
use sip::{HeaderName, Message, Method, ParseError, ResponseBuilder};

use crate::directory::{Directory, Tenant};
use crate::location::{
    Aor, BindingChange, BindingKey, BindingRecord, ContactUpdate, ImportReport, Location,
    LocationError, RegisterContacts, Registration,
};

use throttle::FailureThrottle;
pub use throttle::{FailureKey, MAX_USER_LEN, SourceKey, ThrottleConfig};
use unanswered::{Device, UnansweredChallenges};
pub use unanswered::{FORGET_AFTER, MAX_DEVICES, REPORT_AT};

/// Settings of a [`Registrar`]; [`Default`] gives the values the issue names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Expiry (seconds) of a contact with neither an `expires` parameter nor
    /// an `Expires` header.
    pub default_expires: u32,
    /// Shorter non-zero expiries are refused with `423 Interval Too Brief`.
    pub min_expires: u32,
    /// Longer expiries are shortened to this.
    pub max_expires: u32,
    /// Bindings one user may hold (see [`Location`] for what happens beyond).
    pub max_bindings_per_user: usize,
    /// Lifetime of a digest nonce.
    pub nonce_lifetime_secs: u64,
    /// The digest challenges offered, one per algorithm, in order (for
    /// REGISTER's 401 and INVITE's 407 alike), unless the tenant's domain has
    /// an offer of its own ([`Registrar::set_tenant_digest_offer`]).
    ///
    /// The default is MD5 alone: libre-based phones (Debian's baresip 1.0)
    /// abort authentication on any challenge whose algorithm is not MD5,
    /// even when an MD5 challenge is also offered, and many others (SIPp
    /// too) read only the first challenge. See DESIGN.md, "Digest
    /// algorithms", for the evidence and why SHA-256 is not remembered per
    /// device.
    pub digest_offer: DigestOffer,
    /// Whether answers without `qop` (RFC 2069 style) are accepted. Off by
    /// default: with `qop=auth` every answer carries a nonce count, so a
    /// captured answer cannot be replayed; legacy phones that ignore `qop`
    /// need this on, and then each nonce answers once.
    pub allow_digest_without_qop: bool,
    pub throttle: ThrottleConfig,
}

/// Which digest challenges a 401/407 carries, in order (see
/// [`RegistrarConfig::digest_offer`]). A closed set: the orders of MD5 and
/// SHA-256 that make sense (the `-sess` variants are answered, never
/// offered).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DigestOffer {
    /// MD5 only: every phone can answer, libre-based ones included.
    #[default]
    Md5Only,
    /// MD5, then SHA-256: phones reading only the first challenge use MD5,
    /// RFC 8760 phones may pick SHA-256. libre 1.0 refuses the whole 401.
    Md5ThenSha256,
    /// SHA-256, then MD5: RFC 8760's preference order.
    Sha256ThenMd5,
    /// SHA-256 only: phones without it cannot register.
    Sha256Only,
}

/// A `sip.digest_algorithms` list that is not one of the [`DigestOffer`]s.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestOfferError {
    #[error("unknown digest algorithm {0:?} (offer \"MD5\" and/or \"SHA-256\")")]
    Unknown(String),
    #[error("{0} is answered but not offered; offer \"MD5\" and/or \"SHA-256\"")]
    SessionVariant(Algorithm),
    #[error("the list is empty: no phone could authenticate")]
    Empty,
    #[error("{0} is listed twice")]
    Repeated(Algorithm),
}

impl DigestOffer {
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            DigestOffer::Md5Only => &[Algorithm::Md5],
            DigestOffer::Md5ThenSha256 => &[Algorithm::Md5, Algorithm::Sha256],
            DigestOffer::Sha256ThenMd5 => &[Algorithm::Sha256, Algorithm::Md5],
            DigestOffer::Sha256Only => &[Algorithm::Sha256],
        }
    }

    /// The offer a configuration list names, e.g. `["SHA-256", "MD5"]`
    /// (names as RFC 7616 spells them, any case).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<DigestOffer, DigestOfferError> {
        let mut algorithms = Vec::with_capacity(names.len());
        for name in names {
            let a: Algorithm = name
                .as_ref()
                .parse()
                .map_err(|_| DigestOfferError::Unknown(name.as_ref().to_owned()))?;
            if a.is_session() {
                return Err(DigestOfferError::SessionVariant(a));
            }
            if algorithms.contains(&a) {
                return Err(DigestOfferError::Repeated(a));
            }
            algorithms.push(a);
        }
        [
            DigestOffer::Md5Only,
            DigestOffer::Md5ThenSha256,
            DigestOffer::Sha256ThenMd5,
            DigestOffer::Sha256Only,
        ]
        .into_iter()
        .find(|o| o.algorithms() == algorithms.as_slice())
        .ok_or(DigestOfferError::Empty)
    }
}

impl std::fmt::Display for DigestOffer {
    /// `MD5, SHA-256`: the offered algorithms in order, for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.algorithms().iter().map(|a| a.as_str()).collect();
        f.write_str(&names.join(", "))
    }
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            default_expires: 3600,
            min_expires: 60,
            max_expires: 7200,
            max_bindings_per_user: crate::location::DEFAULT_MAX_BINDINGS_PER_USER,
            nonce_lifetime_secs: sip::auth::DEFAULT_NONCE_LIFETIME_SECS,
            digest_offer: DigestOffer::default(),
            allow_digest_without_qop: false,
            throttle: ThrottleConfig::default(),
        }
    }
}

impl RegistrarConfig {
    fn normalised(self) -> Self {
        let max_expires = self.max_expires.max(1);
        let min_expires = self.min_expires.min(max_expires);
        RegistrarConfig {
            max_expires,
            min_expires,
            default_expires: self.default_expires.clamp(min_expires.max(1), max_expires),
            ..self
        }
    }
}

/// Why a REGISTER failed to authenticate; counted against its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// Neither the Request-URI nor the To host is a tenant's domain.
    UnknownDomain,
    /// The To user is not a user of the tenant.
    UnknownUser,
    /// The credentials' `username` is not the To user.
    UsernameMismatch,
    /// The digest response is wrong.
    WrongPassword,
    /// A nonce count at or below one already accepted (a replay).
    ReplayedNonceCount,
    /// An answer without `qop=auth` while the registrar requires it
    /// ([`RegistrarConfig::allow_digest_without_qop`]). Logged, not counted:
    /// the phone may know the password.
    DigestWithoutQop,
    /// The user has no SIP password for the tenant's realm: never set, or
    /// the tenant's domain (the realm) changed since. Logged, not counted:
    /// an admin must set the password again.
    SipPasswordNotSet,
}

impl AuthFailure {
    /// A stable snake_case name, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::UnknownDomain => "unknown_domain",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::UsernameMismatch => "username_mismatch",
            AuthFailure::WrongPassword => "wrong_password",
            AuthFailure::ReplayedNonceCount => "replayed_nonce_count",
            AuthFailure::DigestWithoutQop => "digest_without_qop",
            AuthFailure::SipPasswordNotSet => "sip_password_not_set",
        }
    }
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something the runtime logs (once) and counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrarEvent {
    /// A REGISTER failed authentication.
    AuthFailed {
        source: SourceKey,
        reason: AuthFailure,
        /// The tenant, when the domain was known.
        tenant: Option<TenantId>,
        /// The To user the request named, when it had one.
        user: Option<String>,
    },
    /// This failure blocked the source for the user it named until
    /// `until` (see [`FailureKey`]).
    SourceBlocked {
        source: SourceKey,
        tenant: Option<TenantId>,
        user: String,
        until: Instant,
    },
    /// A REGISTER refused unread because its (source, user) is blocked.
    RefusedBlocked {
        source: SourceKey,
        tenant: Option<TenantId>,
        user: String,
        until: Instant,
    },
    /// A device of a known user was challenged `challenges` times in a row
    /// and never answered: it probably cannot compute any of the `offered`
    /// digests (see the `unanswered` module). Reported at 3, 30, 300, …
    ChallengesUnanswered {
        tenant: TenantId,
        user: String,
        device: Peer,
        /// `REGISTER` or `INVITE`: what the device kept sending.
        method: Method,
        challenges: u32,
        offered: DigestOffer,
    },
}

/// What to do after a REGISTER.
#[must_use]
#[derive(Debug)]
pub struct RegisterOutcome {
    /// The response to send back (over the transaction layer).
    pub response: Message,
    /// The user the request was about, once known (for logs).
    pub aor: Option<Aor>,
    /// Binding changes to persist, in order.
    pub changes: Vec<BindingChange>,
    pub events: Vec<RegistrarEvent>,
}

/// Why [`Registrar::handle_register`] produced no response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The caller handed over something other than a REGISTER request.
    #[error("not a REGISTER request")]
    NotRegister,
    /// Too broken to answer (no Via, From, To, Call-ID or CSeq to echo):
    /// drop it and count it.
    #[error("unanswerable request: {0}")]
    Unanswerable(ParseError),
    /// The response did not build; a bug, reported rather than panicking.
    #[error("response could not be built: {0}")]
    Response(ParseError),
}

/// The registrar of every tenant, with the location service it writes.
#[derive(Debug)]
pub struct Registrar {
    config: RegistrarConfig,
    location: Location,
    throttle: FailureThrottle,
    realms: HashMap<TenantId, DigestServer>,
    /// Normalised domain → the offer its tenant gets instead of the default.
    tenant_offers: HashMap<String, DigestOffer>,
    unanswered: UnansweredChallenges,
    nonce_key: [u8; 32],
    seed: u64,
    /// The To-tag generator.
    tags: cdr::SplitMix64,
}

impl Registrar {
    /// A registrar whose digest nonces are keyed by `nonce_key` (shared by
    /// the nodes of a cluster, so any of them verifies any nonce) and whose
    /// nonce salts and To tags derive from `seed` (random per process).
    pub fn new(config: RegistrarConfig, nonce_key: [u8; 32], seed: u64) -> Self {
        let config = config.normalised();
        Registrar {
            config,
            location: Location::new(config.max_bindings_per_user),
            throttle: FailureThrottle::new(config.throttle),
            realms: HashMap::new(),
            tenant_offers: HashMap::new(),
            unanswered: UnansweredChallenges::default(),
            nonce_key,
            seed,
            tags: cdr::SplitMix64::new(seed),
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Gives the tenant of `domain` its own digest offer (configuration
    /// `sip.tenant_digest_algorithms`). Keyed by domain, not tenant id,
    /// because that is what an operator writes; a renamed tenant falls back
    /// to the default until its new domain is configured.
    pub fn set_tenant_digest_offer(&mut self, domain: &str, offer: DigestOffer) {
        self.tenant_offers
            .insert(crate::directory::normalise_domain(domain), offer);
    }

    /// The digest challenges `tenant` gets, in order.
    pub fn digest_offer(&self, tenant: &Tenant) -> DigestOffer {
        self.tenant_offers
            .get(&crate::directory::normalise_domain(&tenant.domain))
            .copied()
            .unwrap_or(self.config.digest_offer)
    }

    /// The bindings, for routing ([`Location::lookup`]) and persistence
    /// ([`Location::export`]).
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Forgets a deleted or renumbered user's bindings (see
    /// [`Location::remove_user`]).
    pub fn forget_user(&mut self, tenant: TenantId, extension: &str) -> usize {
        self.location.remove_user(tenant, extension)
    }

    /// Forgets a deleted tenant's bindings.
    pub fn forget_tenant(&mut self, tenant: TenantId) -> usize {
        self.location.remove_tenant(tenant)
    }

    /// Restores persisted bindings after a restart, remaining lifetimes
    /// capped at `max_expires`.
    pub fn restore(
        &mut self,
        now: Instant,
        now_unix: u64,
        records: impl IntoIterator<Item = BindingRecord>,
    ) -> ImportReport {
        let max = Duration::from_secs(u64::from(self.config.max_expires));
        self.location.import(now, now_unix, max, records)
    }

    /// Applies bindings other nodes wrote to the shared store
    /// ([`Location::apply_shared`]), remaining lifetimes capped at
    /// `max_expires` as for a restore.
    pub fn apply_shared(
        &mut self,
        now: Instant,
        now_unix: u64,
        records: impl IntoIterator<Item = BindingRecord>,
    ) -> crate::location::SharedReport {
        let max = Duration::from_secs(u64::from(self.config.max_expires));
        self.location.apply_shared(now, now_unix, max, records)
    }

    /// (source, user) pairs the failure throttle remembers (a gauge for metrics; bounded
    /// by [`ThrottleConfig::max_sources`]).
    pub fn tracked_sources(&self) -> usize {
        self.throttle.tracked_sources()
    }

    /// Time passed: sweeps expired bindings (returned, to delete from the
    /// store) and throttle entries that no longer matter. Call every second
    /// or so.
    pub fn handle_timeout(&mut self, now: Instant, now_unix: u64) -> Vec<BindingChange> {
        self.throttle.sweep(now);
        self.unanswered.sweep(now);
        self.location.expire(now, now_unix)
    }

    /// Answers one REGISTER that arrived from `source` (see the module doc
    /// for the steps).
    pub fn handle_register(
        &mut self,
        directory: &Directory,
        now: Instant,
        now_unix: u64,
        source: Peer,
        request: &Message,
    ) -> Result<RegisterOutcome, RegisterError> {
        if request.method() != Some(&Method::Register) {
            return Err(RegisterError::NotRegister);
        }
        let tag = self.next_tag();
        if let Err(e) = sip::validate::check_request(request) {
            return match sip::validate::reject(request, &e, &tag) {
                Some(response) => Ok(RegisterOutcome {
                    response,
                    aor: None,
                    changes: Vec::new(),
                    events: Vec::new(),
                }),
                None => Err(RegisterError::Unanswerable(e)),
            };
        }
        let mut run = Run {
            request,
            tag,
            now,
            now_unix,
            source,
            key: SourceKey::of(source.addr.ip()),
            aor: None,
            changes: Vec::new(),
            events: Vec::new(),
        };
        let response = self.decide(directory, &mut run);
        Ok(RegisterOutcome {
            response: response.build().map_err(RegisterError::Response)?,
            aor: run.aor,
            changes: run.changes,
            events: run.events,
        })
    }

    fn decide(&mut self, directory: &Directory, run: &mut Run<'_>) -> ResponseBuilder {
        let req = run.request;
        // check_request has parsed the Request-URI and To; these `else`
        // branches only keep this function total.
        let (Some(Ok(ruri)), Ok(to)) = (req.request_uri(), req.to()) else {
            return run.reply(400, "Bad Request");
        };
        let Uri::Sip(ruri_sip) = ruri else {
            return run.reply(416, "Unsupported URI Scheme");
        };
        match req
            .tokens(HeaderName::Require)
            .collect::<Result<Vec<_>, _>>()
        {
            Err(_) => return run.reply(400, "Bad Request (invalid Require)"),
            Ok(tags) if !tags.is_empty() => {
                return run
                    .reply(420, "Bad Extension")
                    .header(HeaderName::Unsupported, tags.join(", "));
            }
            Ok(_) => {}
        }

        let to_sip = to.uri.sip();
        let user_part = to_sip
            .and_then(|u| u.user_unescaped())
            .and_then(|u| String::from_utf8(u.into_owned()).ok());
        let tenant = directory
            .tenant_by_domain(&host_text(&ruri_sip.host))
            .or_else(|| to_sip.and_then(|u| directory.tenant_by_domain(&host_text(&u.host))));
        let key = FailureKey::new(run.key, tenant.map(|t| t.id), user_part.as_deref());
        if let Some(until) = self.throttle.blocked_until(run.now, &key) {
            run.events.push(RegistrarEvent::RefusedBlocked {
                source: key.source,
                tenant: key.tenant,
                user: key.user,
                until,
            });
            return run.reply(403, "Forbidden (too many failed attempts)");
        }
        let Some(tenant) = tenant else {
            self.fail(run, &key, AuthFailure::UnknownDomain);
            return run.reply(404, "Not Found (unknown domain)");
        };
        let user = user_part
            .as_deref()
            .and_then(|ext| directory.user(tenant.id, ext));
        let Some(user) = user else {
            self.fail(run, &key, AuthFailure::UnknownUser);
            return run.reply(404, "Not Found");
        };
        let aor = Aor {
            tenant: tenant.id,
            extension: user.extension.clone(),
        };
        run.aor = Some(aor.clone());
        if !user.enabled {
            return run.reply(403, "Forbidden (user disabled)");
        }

        let credentials = match find_credentials(req, HeaderName::Authorization, &tenant.domain) {
            Ok(Some(c)) => c,
            Ok(None) => {
                let ext = aor.extension.as_str();
                if let Some(e) =
                    self.note_challenge(run.now, run.source, tenant, ext, Method::Register)
                {
                    run.events.push(e);
                }
                return self.challenge(run, tenant, false);
            }
            Err(e) => return run.reply(400, &bad_request(&format!("invalid Authorization: {e}"))),
        };
        self.note_answer(run.source, tenant.id, aor.extension.as_str());
        if credentials.username != aor.extension.as_str() {
            self.fail(run, &key, AuthFailure::UsernameMismatch);
            return run.reply(403, "Forbidden (username does not match the To user)");
        }
        if !credentials.uri_matches(ruri_sip.as_str()) {
            return run.reply(
                400,
                "Bad Request (digest uri does not match the Request-URI)",
            );
        }
        if !user.credentials.answer(&tenant.domain) {
            run.events.push(RegistrarEvent::AuthFailed {
                source: key.source,
                reason: AuthFailure::SipPasswordNotSet,
                tenant: key.tenant,
                user: Some(key.user),
            });
            return run.reply(
                403,
                "Forbidden (no SIP password for this domain; set it again)",
            );
        }
        let verdict = self.digest_server(tenant).verify(
            run.now_unix,
            Method::Register.as_str(),
            &credentials,
            user.credentials.secret(credentials.algorithm.hash()),
        );
        let failure = match verdict {
            Verdict::Ok => None,
            Verdict::Stale => return self.challenge(run, tenant, true),
            Verdict::Reject(RejectReason::InvalidNonce | RejectReason::RealmMismatch) => {
                return self.challenge(run, tenant, false);
            }
            Verdict::Reject(RejectReason::WrongResponse) => Some(AuthFailure::WrongPassword),
            Verdict::Reject(RejectReason::ReplayedNonceCount) => {
                Some(AuthFailure::ReplayedNonceCount)
            }
            Verdict::Reject(RejectReason::MissingQop) => {
                run.events.push(RegistrarEvent::AuthFailed {
                    source: key.source,
                    reason: AuthFailure::DigestWithoutQop,
                    tenant: key.tenant,
                    user: Some(key.user),
                });
                return run.reply(403, "Forbidden (digest without qop=auth)");
            }
            Verdict::Reject(
                r @ (RejectReason::AlgorithmMismatch
                | RejectReason::UnsupportedQop
                | RejectReason::SessionWithoutQop),
            ) => return run.reply(400, &bad_request(&r.to_string())),
            // A stored HA1 that is not a digest: a corrupt row.
            Verdict::Reject(
                RejectReason::Ha1AlgorithmMismatch | RejectReason::InvalidStoredHa1,
            ) => {
                return run.reply(500, "Server Internal Error");
            }
        };
        if let Some(failure) = failure {
            self.fail(run, &key, failure);
            return run.reply(403, "Forbidden");
        }

        let contacts = match self.contacts(req) {
            Ok(c) => c,
            Err(refusal) => return refusal.response(run, &self.config),
        };
        let Some(contacts) = contacts else {
            return self.ok(run, &aor); // a query
        };
        let (Ok(call_id), Ok(cseq)) = (req.call_id(), req.cseq()) else {
            return run.reply(400, "Bad Request");
        };
        let path = match path::route_set(req) {
            Ok(path) => path,
            Err(what) => return run.reply(400, &bad_request(what)),
        };
        let registration = Registration {
            call_id,
            cseq: cseq.seq,
            source: run.source,
            path,
            contacts,
        };
        match self
            .location
            .register(run.now, run.now_unix, &aor, registration)
        {
            Ok(changes) => {
                run.changes = changes;
                self.ok(run, &aor)
            }
            Err(LocationError::OutOfOrder { .. }) => {
                run.reply(500, "Server Internal Error (out-of-order CSeq)")
            }
            Err(LocationError::TooManyContacts { .. }) => {
                run.reply(403, "Forbidden (too many contacts)")
            }
        }
    }

    /// The request's contacts as location updates; `None` for a query.
    fn contacts(&self, req: &Message) -> Result<Option<RegisterContacts>, Refusal> {
        let contacts: Vec<Contact<'_>> = req
            .contacts()
            .collect::<Result<_, _>>()
            .map_err(|_| Refusal::Bad("invalid Contact"))?;
        let header_expires = req
            .seconds(HeaderName::Expires)
            .map_err(|_| Refusal::Bad("invalid Expires"))?;
        if contacts.is_empty() {
            return Ok(None);
        }
        if contacts.contains(&Contact::Wildcard) {
            if contacts.len() != 1 || header_expires != Some(0) {
                return Err(Refusal::Bad(
                    "Contact: * needs Expires: 0 and no other Contact",
                ));
            }
            return Ok(Some(RegisterContacts::RemoveAll));
        }
        let cfg = &self.config;
        let mut updates = Vec::with_capacity(contacts.len());
        let mut too_brief = false;
        for c in &contacts {
            let Some(addr) = c.addr() else {
                continue; // wildcards were handled above
            };
            let Uri::Sip(uri) = &addr.uri else {
                return Err(Refusal::Bad("Contact must be a sip: or sips: URI"));
            };
            let expires = c
                .expires()
                .map_err(|_| Refusal::Bad("invalid expires parameter"))?
                .or(header_expires)
                .unwrap_or(cfg.default_expires);
            too_brief |= expires != 0 && expires < cfg.min_expires;
            let q = c.q().map_err(|_| Refusal::Bad("invalid q parameter"))?;
            let instance = c
                .instance()
                .map(|i| i.into_owned())
                .filter(|i| !i.is_empty());
            updates.push(ContactUpdate {
                key: BindingKey::new(uri, instance.as_deref()),
                contact_uri: uri.as_str().to_owned(),
                instance,
                reg_id: c.reg_id(),
                q,
                expires: expires.min(cfg.max_expires),
            });
        }
        if too_brief {
            return Err(Refusal::TooBrief);
        }
        Ok(Some(RegisterContacts::Update(updates)))
    }

    /// `200 OK` listing the user's live bindings.
    fn ok(&self, run: &Run<'_>, aor: &Aor) -> ResponseBuilder {
        let mut b = run.reply(200, "OK");
        for binding in self
            .location
            .lookup(run.now, aor.tenant, aor.extension.as_str())
        {
            let mut value = format!(
                "<{}>;expires={}",
                binding.contact_uri,
                binding.remaining(run.now).as_secs()
            );
            if let Some(q) = binding.q {
                value.push_str(";q=");
                value.push_str(&format_q(q));
            }
            if let Some(instance) = &binding.instance {
                value.push_str(";+sip.instance=");
                value.push_str(&sip::text::quote(&format!("<{instance}>")));
            }
            b = b.header(HeaderName::Contact, value);
        }
        b.header(HeaderName::Date, sip::headers::format_date(run.now_unix))
    }

    /// `401` with one challenge per configured algorithm, in order.
    fn challenge(&mut self, run: &Run<'_>, tenant: &Tenant, stale: bool) -> ResponseBuilder {
        self.challenges(tenant, run.now_unix, stale)
            .into_iter()
            .fold(run.reply(401, "Unauthorized"), |b, c| {
                b.header(HeaderName::WwwAuthenticate, c)
            })
    }

    /// One challenge per configured algorithm, in the configured order; the
    /// call engine's 407 uses the same list.
    pub(crate) fn challenges(
        &mut self,
        tenant: &Tenant,
        now_unix: u64,
        stale: bool,
    ) -> Vec<sip::auth::Challenge> {
        let algorithms = self.digest_offer(tenant).algorithms();
        let server = self.digest_server(tenant);
        algorithms
            .iter()
            .map(|&a| server.challenge(now_unix, a, stale))
            .collect()
    }

    /// The digest server of `tenant`'s realm. The call engine challenges
    /// INVITEs with the same servers (one nonce-count table per realm,
    /// whatever the method), so a phone may answer either challenge.
    pub(crate) fn digest_server(&mut self, tenant: &Tenant) -> &mut DigestServer {
        let (key, seed, lifetime) = (self.nonce_key, self.seed, self.config.nonce_lifetime_secs);
        let qop_required = !self.config.allow_digest_without_qop;
        let fresh = || {
            DigestServer::new(tenant.domain.clone(), key)
                .with_salt_seed(seed)
                .with_nonce_lifetime_secs(lifetime)
                .with_qop_required(qop_required)
        };
        let server = self.realms.entry(tenant.id).or_insert_with(fresh);
        if server.realm() != tenant.domain {
            *server = fresh();
        }
        server
    }

    /// When `key` is refused by the failure throttle (shared with the call
    /// engine's INVITE authentication: one budget per source and user).
    pub(crate) fn blocked_until(&self, now: Instant, key: &FailureKey) -> Option<Instant> {
        self.throttle.blocked_until(now, key)
    }

    /// Counts an authentication failure of another method (INVITE) against
    /// `key`; returns the end of the block it started, if it did.
    pub(crate) fn record_failure(&mut self, now: Instant, key: &FailureKey) -> Option<Instant> {
        self.throttle.record_failure(now, key)
    }

    /// A known user's device was challenged (its request had no credentials
    /// for the realm); reports it when it keeps not answering.
    pub(crate) fn note_challenge(
        &mut self,
        now: Instant,
        peer: Peer,
        tenant: &Tenant,
        user: &str,
        method: Method,
    ) -> Option<RegistrarEvent> {
        let device = Device {
            addr: peer.addr,
            tenant: tenant.id,
            user: user.to_owned(),
        };
        let challenges = self.unanswered.challenged(now, device)?;
        Some(RegistrarEvent::ChallengesUnanswered {
            tenant: tenant.id,
            user: user.to_owned(),
            device: peer,
            method,
            challenges,
            offered: self.digest_offer(tenant),
        })
    }

    /// A known user's device answered a challenge (rightly or not).
    pub(crate) fn note_answer(&mut self, peer: Peer, tenant: TenantId, user: &str) {
        self.unanswered.answered(&Device {
            addr: peer.addr,
            tenant,
            user: user.to_owned(),
        });
    }

    /// Counts a failure against the request's (source, user).
    fn fail(&mut self, run: &mut Run<'_>, key: &FailureKey, reason: AuthFailure) {
        run.events.push(RegistrarEvent::AuthFailed {
            source: key.source,
            reason,
            tenant: key.tenant,
            user: Some(key.user.clone()),
        });
        if let Some(until) = self.throttle.record_failure(run.now, key) {
            run.events.push(RegistrarEvent::SourceBlocked {
                source: key.source,
                tenant: key.tenant,
                user: key.user.clone(),
                until,
            });
        }
    }

    /// A fresh To tag: tags from one seed never repeat within 2^64
    /// responses and do not look sequential.
    fn next_tag(&mut self) -> String {
        format!("{:016x}", self.tags.next_u64())
    }
}

/// One REGISTER being answered.
struct Run<'a> {
    request: &'a Message,
    tag: String,
    now: Instant,
    now_unix: u64,
    source: Peer,
    key: SourceKey,
    aor: Option<Aor>,
    changes: Vec<BindingChange>,
    events: Vec<RegistrarEvent>,
}

impl Run<'_> {
    fn reply(&self, code: u16, reason: &str) -> ResponseBuilder {
        ResponseBuilder::for_request(self.request, code, reason).to_tag(&self.tag)
    }
}

/// Why the contacts of a request were refused.
enum Refusal {
    Bad(&'static str),
    TooBrief,
}

impl Refusal {
    fn response(&self, run: &Run<'_>, config: &RegistrarConfig) -> ResponseBuilder {
        match self {
            Refusal::Bad(what) => run.reply(400, &bad_request(what)),
            Refusal::TooBrief => run
                .reply(423, "Interval Too Brief")
                .header(HeaderName::MinExpires, config.min_expires),
        }
    }
}

/// The credentials for `realm` in `header` (`Authorization` for REGISTER,
/// `Proxy-Authorization` for the engine's INVITEs): other realms and other
/// schemes are skipped (they are for someone else); a malformed Digest value
/// is an error.
pub(crate) fn find_credentials(
    req: &Message,
    header: HeaderName,
    realm: &str,
) -> Result<Option<Credentials>, sip::auth::ParseError> {
    for c in req.credentials(header) {
        match c {
            Ok(c) if c.realm == realm => return Ok(Some(c)),
            Ok(_) | Err(sip::auth::ParseError::UnsupportedScheme(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// A host as the directory spells domains (IPv6 in brackets).
fn host_text(host: &Host<'_>) -> String {
    host.to_string()
}

/// `Bad Request (<detail>)`, the detail cut to printable ASCII and 100
/// characters: it may quote what the peer sent.
fn bad_request(detail: &str) -> String {
    let detail: String = detail
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    format!("Bad Request ({detail})")
}

/// A `q` in thousandths as RFC 3261 §20.10 writes it: `0.5`, `1`, `0.125`.
fn format_q(q: u16) -> String {
    match q {
        0 => "0".to_owned(),
        1000.. => "1".to_owned(),
        q => format!("0.{q:03}").trim_end_matches('0').to_owned(),
    }
}

#[cfg(test)]
mod tests;
