//! Who is calling: the checks an out-of-dialog INVITE passes before it
//! becomes a session, digest authentication (RFC 3261 §22.3, proxy style:
//! `407` + `Proxy-Authenticate`) above all.
//!
//! # Decisions
//!
//! - **Same machinery as REGISTER.** The challenges come from the
//!   registrar's per-tenant [`sip::auth::DigestServer`]s (realm = tenant
//!   domain, SHA-256 offered first, then MD5), so nonce counts are tracked
//!   once per realm whatever the method, and failures count against the
//!   registrar's throttle: a source guessing passwords with INVITEs is
//!   blocked for REGISTER too, and the other way round.
//! - **Tenant**: the Request-URI host names a tenant domain, else the From
//!   host does (phones configured with the PBX's address as their proxy).
//! - **The caller is the From user**, which must be an enabled user of that
//!   tenant and the digest `username`. Registration is not required: an
//!   authenticated extension may call from a device that did not register.
//! - **`403` for an unknown domain or caller**, not `404`: the INVITE is
//!   refused because of who sends it, and the answer should not tell a
//!   scanner which extensions exist. Unknown domain, unknown caller, wrong
//!   password, username mismatch and replayed nonce counts are failures for
//!   the throttle, as for REGISTER.
//! - **Before authentication**, requests the engine could not carry out
//!   anyway are refused: `Require` with any option tag (`420`: Tally
//!   supports none), no Contact (`400`: the caller's dialog needs a remote
//!   target), `Max-Forwards: 0` (`483`), a non-SIP Request-URI (`416`).

use sip::auth::{RejectReason, UserSecret, Verdict};
use sip::builder::ResponseBuilder;
use sip::transport::Peer;
use sip::uri::Uri;
use sip::{HeaderName, Message};

use super::{Engine, EngineEvent};
use crate::call::TenantInfo;
use crate::context::Clock;
use crate::directory::Tenant;
use crate::registrar::{AuthFailure, SourceKey};

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
        let key = SourceKey::of(peer.addr.ip());
        if let Some(until) = self.registrar.blocked_until(clk.now, key) {
            self.event(EngineEvent::InviteRefusedBlocked { source: key, until });
            return InviteAuth::Refused(reply(403, "Forbidden (too many failed attempts)"));
        }

        let from_sip = from.uri.sip();
        let user_part = from_sip
            .and_then(|u| u.user_unescaped())
            .and_then(|u| String::from_utf8(u.into_owned()).ok());
        let tenant = self
            .directory
            .tenant_by_domain(&ruri.host.to_string())
            .or_else(|| from_sip.and_then(|u| self.directory.tenant_by_domain(&u.host.to_string())))
            .cloned();
        let Some(tenant) = tenant else {
            self.auth_failed(clk, key, AuthFailure::UnknownDomain, None, user_part);
            return InviteAuth::Refused(reply(403, "Forbidden"));
        };
        let user = user_part
            .as_deref()
            .and_then(|ext| self.directory.user(tenant.id, ext))
            .cloned();
        let Some(user) = user else {
            self.auth_failed(
                clk,
                key,
                AuthFailure::UnknownUser,
                Some(tenant.id),
                user_part,
            );
            return InviteAuth::Refused(reply(403, "Forbidden"));
        };
        if !user.enabled {
            return InviteAuth::Refused(reply(403, "Forbidden (user disabled)"));
        }

        let credentials = match crate::registrar::find_credentials(
            req,
            HeaderName::ProxyAuthorization,
            &tenant.domain,
        ) {
            Ok(Some(c)) => c,
            Ok(None) => {
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
        let ext = user.extension.to_string();
        if credentials.username != ext {
            self.auth_failed(
                clk,
                key,
                AuthFailure::UsernameMismatch,
                Some(tenant.id),
                Some(ext),
            );
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
        let verdict = self.registrar.digest_server(&tenant).verify(
            clk.unix_secs(),
            "INVITE",
            &credentials,
            UserSecret::Password(&user.password),
        );
        let failure = match verdict {
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
            Verdict::Reject(RejectReason::WrongResponse) => Some(AuthFailure::WrongPassword),
            Verdict::Reject(RejectReason::ReplayedNonceCount) => {
                Some(AuthFailure::ReplayedNonceCount)
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
            self.auth_failed(clk, key, failure, Some(tenant.id), Some(ext));
            return InviteAuth::Refused(reply(403, "Forbidden"));
        }

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

    fn auth_failed(
        &mut self,
        clk: Clock,
        source: SourceKey,
        reason: AuthFailure,
        tenant: Option<cdr::TenantId>,
        user: Option<String>,
    ) {
        self.event(EngineEvent::InviteAuthFailed {
            source,
            reason,
            tenant,
            user,
        });
        if let Some(until) = self.registrar.record_failure(clk.now, source) {
            self.event(EngineEvent::SourceBlocked { source, until });
        }
    }
}
