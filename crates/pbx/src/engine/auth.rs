//! Who is calling: the checks an out-of-dialog INVITE passes before it
//! becomes a session, digest authentication (RFC 3261 §22.3, proxy style:
//! `407` + `Proxy-Authenticate`) above all.
//!
//! # Decisions
//!
//! - **Same machinery as REGISTER.** The challenges come from the
//!   registrar's per-tenant [`sip::auth::DigestServer`]s (realm = tenant
//!   domain, the tenant's digest offer: MD5 alone by default), so nonce
//!   counts are tracked once per realm whatever the method, and failures
//!   count in the registrar's throttle per (source, tenant, user): a source
//!   guessing a user's password with INVITEs is blocked for that user's
//!   REGISTERs too, and the other way round. A device of a known user that
//!   keeps sending INVITEs without answering the challenge is reported like
//!   a REGISTERing one (`RegistrarEvent::ChallengesUnanswered`).
//! - **Tenant**: the Request-URI host names a tenant domain, else the From
//!   host does (phones configured with the PBX's address as their proxy).
//! - **The caller is the From user**, which must be an enabled user of that
//!   tenant and the digest `username`. Registration is not required: an
//!   authenticated extension may call from a device that did not register.
//! - **Unknown callers are challenged like known ones** (security review,
//!   finding 12: `403` for unknown and `407` for known told a scanner which
//!   extensions exist). Their answer is verified against a secret no user
//!   can have (same work, same nonce handling: an unminted nonce is
//!   challenged again for both) and refused with the same `403` as a wrong
//!   password. A disabled user is challenged too, and told it is disabled
//!   only after answering with the right password. An unknown domain is
//!   still `403` at once: there is no realm to challenge with, and it tells
//!   nothing about extensions. Unknown domain, unknown caller, wrong
//!   password, username mismatch and replayed nonce counts are failures for
//!   the throttle, as for REGISTER.
//! - **Before authentication**, requests the engine could not carry out
//!   anyway are refused: `Require` with any option tag (`420`: Tally
//!   supports none), no Contact (`400`: the caller's dialog needs a remote
//!   target), `Max-Forwards: 0` (`483`), a non-SIP Request-URI (`416`).

use sip::auth::{DigestHash, RejectReason, UserSecret, Verdict};
use sip::builder::ResponseBuilder;
use sip::transport::Peer;
use sip::uri::Uri;
use sip::{HeaderName, Message, Method};

use super::{Engine, EngineEvent};
use crate::call::TenantInfo;
use crate::context::Clock;
use crate::directory::Tenant;
use crate::registrar::{AuthFailure, FailureKey, SourceKey};

/// What an unknown caller's answer is checked against: an HA1 no password
/// hashes to in practice (all zeros), so it never verifies, at the same
/// cost as a real user's.
const NO_CALLER_MD5_HA1: &str = "00000000000000000000000000000000";
const NO_CALLER_SHA256_HA1: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// What [`Engine::authenticate_invite`] decided.
pub(crate) enum InviteAuth {
    Caller(Caller),
    /// Answer the INVITE with this (a challenge, a refusal).
    Refused(ResponseBuilder),
}

/// An authenticated caller.
pub(crate) struct Caller {
    pub tenant: TenantInfo,
    /// User, display name (From's, else the directory's) and From host.
    pub party: cdr::Party,
}

impl Engine {
    /// Authenticates an out-of-dialog INVITE, or says how to answer it.
    pub(super) fn authenticate_invite(
        &mut self,
        clk: Clock,
        peer: Peer,
        req: &Message,
    ) -> InviteAuth {
        let tag = self.sv.ids.tag();
        let reply =
            |code: u16, reason: &str| ResponseBuilder::for_request(req, code, reason).to_tag(&tag);
        match req
            .tokens(HeaderName::Require)
            .collect::<Result<Vec<_>, _>>()
        {
            Err(_) => return InviteAuth::Refused(reply(400, "Bad Request (invalid Require)")),
            Ok(tags) if !tags.is_empty() => {
                return InviteAuth::Refused(
                    reply(420, "Bad Extension").header(HeaderName::Unsupported, tags.join(", ")),
                );
            }
            Ok(_) => {}
        }
        if req.contacts().next().is_none() {
            return InviteAuth::Refused(reply(400, "Bad Request (missing Contact)"));
        }
        if req.max_forwards().ok().flatten() == Some(0) {
            return InviteAuth::Refused(reply(483, "Too Many Hops"));
        }
        let (Some(Ok(ruri)), Ok(from)) = (req.request_uri(), req.from()) else {
            return InviteAuth::Refused(reply(400, "Bad Request"));
        };
        let Uri::Sip(ruri) = ruri else {
            return InviteAuth::Refused(reply(416, "Unsupported URI Scheme"));
        };
        let from_sip = from.uri.sip();
        let user_part = from_sip
            .and_then(|u| u.user_unescaped())
            .and_then(|u| String::from_utf8(u.into_owned()).ok());
        let tenant = self
            .directory
            .tenant_by_domain(&ruri.host.to_string())
            .or_else(|| from_sip.and_then(|u| self.directory.tenant_by_domain(&u.host.to_string())))
            .cloned();
        let key = FailureKey::new(
            SourceKey::of(peer.addr.ip()),
            tenant.as_ref().map(|t| t.id),
            user_part.as_deref(),
        );
        if let Some(until) = self.registrar.blocked_until(clk.now, &key) {
            self.event(EngineEvent::InviteRefusedBlocked {
                source: key.source,
                until,
            });
            return InviteAuth::Refused(reply(403, "Forbidden (too many failed attempts)"));
        }
        let Some(tenant) = tenant else {
            self.auth_failed(clk, &key, AuthFailure::UnknownDomain);
            return InviteAuth::Refused(reply(403, "Forbidden"));
        };
        // Unknown and disabled callers are challenged like everyone else, and
        // refused only after answering, with the same 403 as a wrong
        // password: the answers never tell which extensions exist.
        let user = user_part
            .as_deref()
            .and_then(|ext| self.directory.user(tenant.id, ext))
            .cloned();

        let credentials = match crate::registrar::find_credentials(
            req,
            HeaderName::ProxyAuthorization,
            &tenant.domain,
        ) {
            Ok(Some(c)) => c,
            Ok(None) => {
                if let Some(u) = &user
                    && let Some(e) = self.registrar.note_challenge(
                        clk.now,
                        peer,
                        &tenant,
                        u.extension.as_str(),
                        Method::Invite,
                    )
                {
                    self.event(EngineEvent::Registrar(e));
                }
                return InviteAuth::Refused(self.challenge(
                    clk,
                    &tenant,
                    false,
                    reply(407, "Proxy Authentication Required"),
                ));
            }
            Err(e) => {
                return InviteAuth::Refused(reply(
                    400,
                    &format!("Bad Request (invalid Proxy-Authorization: {e})")
                        .chars()
                        .filter(|c| c.is_ascii_graphic() || *c == ' ')
                        .take(120)
                        .collect::<String>(),
                ));
            }
        };
        if let Some(u) = &user {
            self.registrar
                .note_answer(peer, tenant.id, u.extension.as_str());
        }
        if Some(credentials.username.as_str()) != user_part.as_deref() {
            self.auth_failed(clk, &key, AuthFailure::UsernameMismatch);
            return InviteAuth::Refused(reply(
                403,
                "Forbidden (username does not match the From user)",
            ));
        }
        if !credentials.uri_matches(ruri.as_str()) {
            return InviteAuth::Refused(reply(
                400,
                "Bad Request (digest uri does not match the Request-URI)",
            ));
        }
        // A user without a SIP password for this realm (the tenant's
        // domain changed since it was set) is answered like an unknown one,
        // and logged with the reason.
        let unusable = match &user {
            None => Some(AuthFailure::UnknownUser),
            Some(u) if !u.credentials.answer(&tenant.domain) => {
                Some(AuthFailure::SipPasswordNotSet)
            }
            Some(_) => None,
        };
        // Their answer is checked against an HA1 nobody has, so it costs
        // the same work as a known one's and the nonce is judged the same
        // way.
        let hash = credentials.algorithm.hash();
        let secret = match (&user, unusable) {
            (Some(u), None) => u.credentials.secret(hash),
            _ => match hash {
                DigestHash::Md5 => UserSecret::Md5Ha1(NO_CALLER_MD5_HA1),
                DigestHash::Sha256 => UserSecret::Sha256Ha1(NO_CALLER_SHA256_HA1),
            },
        };
        let verdict = self.registrar.digest_server(&tenant).verify(
            clk.unix_secs(),
            "INVITE",
            &credentials,
            secret,
        );
        let failure = match verdict {
            Verdict::Ok | Verdict::Stale if unusable.is_some() => unusable,
            Verdict::Ok => None,
            Verdict::Stale => {
                return InviteAuth::Refused(self.challenge(
                    clk,
                    &tenant,
                    true,
                    reply(407, "Proxy Authentication Required"),
                ));
            }
            Verdict::Reject(RejectReason::InvalidNonce | RejectReason::RealmMismatch) => {
                return InviteAuth::Refused(self.challenge(
                    clk,
                    &tenant,
                    false,
                    reply(407, "Proxy Authentication Required"),
                ));
            }
            Verdict::Reject(_) if unusable.is_some() => unusable,
            Verdict::Reject(RejectReason::WrongResponse) => Some(AuthFailure::WrongPassword),
            Verdict::Reject(RejectReason::ReplayedNonceCount) => {
                Some(AuthFailure::ReplayedNonceCount)
            }
            Verdict::Reject(RejectReason::MissingQop) => {
                self.event(EngineEvent::InviteAuthFailed {
                    source: key.source,
                    reason: AuthFailure::DigestWithoutQop,
                    tenant: key.tenant,
                    user: Some(key.user.clone()),
                });
                return InviteAuth::Refused(reply(403, "Forbidden (digest without qop=auth)"));
            }
            Verdict::Reject(
                r @ (RejectReason::AlgorithmMismatch
                | RejectReason::UnsupportedQop
                | RejectReason::SessionWithoutQop),
            ) => return InviteAuth::Refused(reply(400, &format!("Bad Request ({r})"))),
            Verdict::Reject(
                RejectReason::Ha1AlgorithmMismatch | RejectReason::InvalidStoredHa1,
            ) => {
                return InviteAuth::Refused(reply(500, "Server Internal Error"));
            }
        };
        if let Some(failure) = failure {
            if failure == AuthFailure::SipPasswordNotSet {
                // Not a guess: the admin's to fix, not the throttle's.
                self.event(EngineEvent::InviteAuthFailed {
                    source: key.source,
                    reason: failure,
                    tenant: key.tenant,
                    user: Some(key.user.clone()),
                });
            } else {
                self.auth_failed(clk, &key, failure);
            }
            return InviteAuth::Refused(reply(403, "Forbidden"));
        }
        let Some(user) = user.filter(|u| u.enabled) else {
            // The right password of a disabled user: it may know why.
            return InviteAuth::Refused(reply(403, "Forbidden (user disabled)"));
        };
        let ext = user.extension.to_string();

        let display_name = match &from.display {
            Some(d) if !d.is_empty() => d.to_string(),
            _ => user.display_name.clone(),
        };
        let domain = from_sip.map(|u| u.host.to_string()).unwrap_or_default();
        InviteAuth::Caller(Caller {
            tenant: TenantInfo {
                id: tenant.id,
                name: tenant.name.clone(),
                domain: tenant.domain.clone(),
            },
            party: cdr::Party {
                user: ext,
                display_name,
                domain,
            },
        })
    }

    /// `407` with the registrar's challenges (same algorithms, same order).
    fn challenge(
        &mut self,
        clk: Clock,
        tenant: &Tenant,
        stale: bool,
        reply: ResponseBuilder,
    ) -> ResponseBuilder {
        self.registrar
            .challenges(tenant, clk.unix_secs(), stale)
            .into_iter()
            .fold(reply, |b, c| b.header(HeaderName::ProxyAuthenticate, c))
    }

    fn auth_failed(&mut self, clk: Clock, key: &FailureKey, reason: AuthFailure) {
        self.event(EngineEvent::InviteAuthFailed {
            source: key.source,
            reason,
            tenant: key.tenant,
            user: Some(key.user.clone()),
        });
        if let Some(until) = self.registrar.record_failure(clk.now, key) {
            self.event(EngineEvent::SourceBlocked {
                source: key.source,
                until,
            });
        }
    }
}
