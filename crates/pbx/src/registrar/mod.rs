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
//! 2. A source blocked by the failure throttle gets `403` at once
//!    ([`RegistrarEvent::RefusedBlocked`]); nothing else is looked at.
//! 3. Request-URI scheme `sip`/`sips` (else `416`); no `Require` option tags
//!    (Tally supports none for REGISTER: `420` with `Unsupported`).
//! 4. Tenant: the Request-URI host names a tenant domain, else the To host
//!    does (phones registering to the PBX's IP address). Neither: `404`.
//! 5. User: the To user of that tenant. Unknown: `404`; disabled: `403`.
//! 6. Digest (RFC 3261 §22, RFC 8760): the `Authorization` for the tenant's
//!    realm (its domain). None: `401` with two challenges, SHA-256 first, then
//!    MD5. Its `username` must be the To user (`403`), its `uri` the
//!    Request-URI (`400`). Right password on an expired nonce: `401`
//!    `stale=true`. A nonce this registrar did not mint (a restart with a new
//!    key, another node): a fresh `401`. Wrong password, replayed nonce
//!    count: `403`.
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
//!   malformed request, a disabled user. See [`ThrottleConfig`] for the
//!   source unit, the window and the bounds.
//! - **`404` for unknown domains and users** as the issue asks, although it
//!   tells a scanner which extensions exist; the throttle limits how fast.
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

mod throttle;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cdr::TenantId;
use sip::auth::{Algorithm, Credentials, DigestServer, RejectReason, UserSecret, Verdict};
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
pub use throttle::{SourceKey, ThrottleConfig};

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
    /// REGISTER's 401 and INVITE's 407 alike).
    ///
    /// The default is MD5 first, then SHA-256. RFC 8760 §2.4 wants the
    /// preferred algorithm first, but many deployed phones (and SIPp) read
    /// only the first challenge and speak only MD5, so SHA-256 first locks
    /// them out; an RFC 8760 phone still finds SHA-256 offered. Operators
    /// whose phones all speak SHA-256 put it first (or alone).
    pub digest_offer: DigestOffer,
    pub throttle: ThrottleConfig,
}

/// Which digest challenges a 401/407 carries, in order (see
/// [`RegistrarConfig::digest_offer`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DigestOffer {
    /// MD5, then SHA-256: every phone can answer.
    #[default]
    Md5ThenSha256,
    /// SHA-256, then MD5: RFC 8760's preference order.
    Sha256ThenMd5,
    /// SHA-256 only: phones without it cannot register.
    Sha256Only,
}

impl DigestOffer {
    pub fn algorithms(self) -> &'static [Algorithm] {
        match self {
            DigestOffer::Md5ThenSha256 => &[Algorithm::Md5, Algorithm::Sha256],
            DigestOffer::Sha256ThenMd5 => &[Algorithm::Sha256, Algorithm::Md5],
            DigestOffer::Sha256Only => &[Algorithm::Sha256],
        }
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
    /// This failure blocked the source until `until`.
    SourceBlocked { source: SourceKey, until: Instant },
    /// A REGISTER refused unread because its source is blocked.
    RefusedBlocked { source: SourceKey, until: Instant },
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
            nonce_key,
            seed,
            tags: cdr::SplitMix64::new(seed),
        }
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
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

    /// Sources the failure throttle remembers (a gauge for metrics; bounded
    /// by [`ThrottleConfig::max_sources`]).
    pub fn tracked_sources(&self) -> usize {
        self.throttle.tracked_sources()
    }

    /// Time passed: sweeps expired bindings (returned, to delete from the
    /// store) and throttle entries that no longer matter. Call every second
    /// or so.
    pub fn handle_timeout(&mut self, now: Instant, now_unix: u64) -> Vec<BindingChange> {
        self.throttle.sweep(now);
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
        if let Some(until) = self.throttle.blocked_until(run.now, run.key) {
            run.events.push(RegistrarEvent::RefusedBlocked {
                source: run.key,
                until,
            });
            return run.reply(403, "Forbidden (too many failed attempts)");
        }
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
        let Some(tenant) = tenant else {
            self.fail(run, AuthFailure::UnknownDomain, None, user_part);
            return run.reply(404, "Not Found (unknown domain)");
        };
        let user = user_part
            .as_deref()
            .and_then(|ext| directory.user(tenant.id, ext));
        let Some(user) = user else {
            self.fail(run, AuthFailure::UnknownUser, Some(tenant.id), user_part);
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
            Ok(None) => return self.challenge(run, tenant, false),
            Err(e) => return run.reply(400, &bad_request(&format!("invalid Authorization: {e}"))),
        };
        if credentials.username != aor.extension.as_str() {
            let user = Some(aor.extension.to_string());
            self.fail(run, AuthFailure::UsernameMismatch, Some(tenant.id), user);
            return run.reply(403, "Forbidden (username does not match the To user)");
        }
        if !credentials.uri_matches(ruri_sip.as_str()) {
            return run.reply(
                400,
                "Bad Request (digest uri does not match the Request-URI)",
            );
        }
        let verdict = self.digest_server(tenant).verify(
            run.now_unix,
            Method::Register.as_str(),
            &credentials,
            UserSecret::Password(&user.password),
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
            Verdict::Reject(
                r @ (RejectReason::AlgorithmMismatch
                | RejectReason::UnsupportedQop
                | RejectReason::SessionWithoutQop),
            ) => return run.reply(400, &bad_request(&r.to_string())),
            // Only stored HA1s can be malformed; the directory holds passwords.
            Verdict::Reject(
                RejectReason::Ha1AlgorithmMismatch | RejectReason::InvalidStoredHa1,
            ) => {
                return run.reply(500, "Server Internal Error");
            }
        };
        if let Some(failure) = failure {
            self.fail(
                run,
                failure,
                Some(tenant.id),
                Some(aor.extension.to_string()),
            );
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
        let registration = Registration {
            call_id,
            cseq: cseq.seq,
            source: run.source,
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
        let algorithms = self.config.digest_offer.algorithms();
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
        let fresh = || {
            DigestServer::new(tenant.domain.clone(), key)
                .with_salt_seed(seed)
                .with_nonce_lifetime_secs(lifetime)
        };
        let server = self.realms.entry(tenant.id).or_insert_with(fresh);
        if server.realm() != tenant.domain {
            *server = fresh();
        }
        server
    }

    /// When `source` is refused by the failure throttle (shared with the
    /// call engine's INVITE authentication: one budget per source).
    pub(crate) fn blocked_until(&self, now: Instant, source: SourceKey) -> Option<Instant> {
        self.throttle.blocked_until(now, source)
    }

    /// Counts an authentication failure of another method (INVITE) against
    /// `source`; returns the end of the block it started, if it did.
    pub(crate) fn record_failure(&mut self, now: Instant, source: SourceKey) -> Option<Instant> {
        self.throttle.record_failure(now, source)
    }

    /// Counts a failure against the request's source.
    fn fail(
        &mut self,
        run: &mut Run<'_>,
        reason: AuthFailure,
        tenant: Option<TenantId>,
        user: Option<String>,
    ) {
        run.events.push(RegistrarEvent::AuthFailed {
            source: run.key,
            reason,
            tenant,
            user,
        });
        if let Some(until) = self.throttle.record_failure(run.now, run.key) {
            run.events.push(RegistrarEvent::SourceBlocked {
                source: run.key,
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
mod tests {
    use super::*;

    #[test]
    fn q_values_are_written_as_rfc_3261_does() {
        assert_eq!(format_q(0), "0");
        assert_eq!(format_q(1), "0.001");
        assert_eq!(format_q(500), "0.5");
        assert_eq!(format_q(750), "0.75");
        assert_eq!(format_q(125), "0.125");
        assert_eq!(format_q(1000), "1");
    }

    #[test]
    fn config_is_normalised() {
        let c = RegistrarConfig {
            default_expires: 10,
            min_expires: 9000,
            max_expires: 0,
            ..RegistrarConfig::default()
        }
        .normalised();
        assert_eq!((c.min_expires, c.default_expires, c.max_expires), (1, 1, 1));
        let c = RegistrarConfig {
            default_expires: 30,
            ..RegistrarConfig::default()
        }
        .normalised();
        assert_eq!(c.default_expires, 60);
    }

    #[test]
    fn to_tags_differ() {
        let mut r = Registrar::new(RegistrarConfig::default(), [1; 32], 42);
        let a = r.next_tag();
        let b = r.next_tag();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn reason_details_are_sanitised() {
        assert_eq!(bad_request("a\u{7}b\u{e9}"), "Bad Request (a?b?)");
        assert_eq!(
            bad_request(&"x".repeat(500)).len(),
            "Bad Request ()".len() + 100
        );
    }
}
