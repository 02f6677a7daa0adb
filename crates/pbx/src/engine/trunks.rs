//! The engine's side of trunks: INVITEs from carriers (the source address
//! decides the trunk, the DID rule the destination), the trunks and rules
//! the runtime hands over ([`super::Input::ReplaceTrunks`]), and the calls in
//! progress per trunk and per tenant's outbound calls, counted from what
//! each session holds (like [`crate::router::ActiveCalls`]).
//!
//! # Decisions
//!
//! - **Trunk traffic is recognised before authentication, by source
//!   only** ([`crate::routing::route_inbound`]): a source an enabled trunk
//!   claims is never challenged (carriers do not answer digest), a known
//!   source with no DID rule for the number gets `404`, and a trunk at its
//!   `max_calls` gets `503`. A source no trunk claims goes on as any
//!   INVITE: its Request-URI names no tenant domain, so authentication
//!   refuses it with `403` and counts it in the throttle (the issue's
//!   "logged and throttled"); a phone of a tenant is challenged as before.
//! - **A carrier's INVITE is checked like a phone's** for what the engine
//!   cannot carry out (no Contact: `400`; `Max-Forwards: 0`: `483`).
//! - **The CDR** of a call from a trunk: `direction` `in` (`in2out` when
//!   its destination forwards every call out by a trunk, or the DID rule
//!   names an outside number), `caller` the carrier's From user, `callee`
//!   the DID rule's extension (the rewritten number for an outside one),
//!   `did` the user part of the carrier's To, `trunk_name` the trunk the
//!   call came in by (the trunk it leaves by is its target's).

use cdr::{Direction, SessionId, TenantId};
use sip::builder::ResponseBuilder;
use sip::transaction::TransactionId;
use sip::transport::Peer;
use sip::{HeaderName, Message};

use super::{Clock, Engine, EngineEvent};
use crate::call::{Ctx, Inbound, Session, Start, TenantInfo, TrunkUse, leaves_by_trunk};
use crate::router::Route;
use crate::routing::{InboundRoute, route_inbound};
use crate::trunk::{InboundDestination, TrunkCalls, Trunks};

/// Why a carrier's INVITE was refused (the status says how).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrunkRefusal {
    #[error("no DID rule takes the number")]
    NoRule,
    #[error("the trunk is at its max_calls")]
    AtLimit,
    #[error("the DID rule's tenant is not in the directory")]
    NoTenant,
}

/// The user part of a SIP URI header value, unescaped.
fn user_of(uri: Option<&sip::uri::SipUri>) -> String {
    uri.and_then(|u| u.user_unescaped())
        .and_then(|u| String::from_utf8(u.into_owned()).ok())
        .unwrap_or_default()
}

impl Engine {
    /// The trunks and rules calls are routed with, for the runtime to fill
    /// at start-up.
    pub fn trunks_mut(&mut self) -> &mut Trunks {
        &mut self.trunks
    }

    pub fn trunks(&self) -> &Trunks {
        &self.trunks
    }

    /// Calls through each trunk, and each tenant's outbound calls; for
    /// tests and metrics.
    pub fn trunk_calls(&self) -> &TrunkCalls {
        &self.trunk_calls
    }

    /// [`super::Input::ReplaceTrunks`].
    pub(super) fn replace_trunks(&mut self, trunks: Trunks) {
        self.trunk_calls.keep_only(&trunks);
        self.trunks = trunks;
    }

    /// A new INVITE: when an enabled trunk claims its source, it is that
    /// carrier's call (answered or started here, `None`); else the request
    /// comes back for authentication.
    pub(super) fn trunk_invite(
        &mut self,
        clk: Clock,
        peer: Peer,
        id: TransactionId,
        request: Message,
    ) -> Option<Message> {
        let called = user_of(
            request
                .request_uri()
                .and_then(Result::ok)
                .as_ref()
                .and_then(|u| u.sip()),
        );
        let to_user = request
            .to()
            .map(|to| user_of(to.uri.sip()))
            .unwrap_or_default();
        let (trunk, rule) = match route_inbound(&self.trunks, peer.addr, &called, &to_user) {
            InboundRoute::UnknownSource => return Some(request),
            InboundRoute::NoRule { trunk } => {
                let trunk = trunk.name.clone();
                self.refuse_trunk_call(clk, id, &request, peer, trunk, TrunkRefusal::NoRule);
                return None;
            }
            InboundRoute::Routed { trunk, rule } => (trunk.clone(), rule.clone()),
        };
        let tag = self.sv.ids.tag();
        if request.contacts().next().is_none() {
            let b = ResponseBuilder::for_request(&request, 400, "Bad Request (missing Contact)");
            self.respond(clk, id, b.to_tag(tag));
            return None;
        }
        if request.max_forwards().ok().flatten() == Some(0) {
            let b = ResponseBuilder::for_request(&request, 483, "Too Many Hops");
            self.respond(clk, id, b.to_tag(tag));
            return None;
        }
        let Some(tenant) = self.directory.tenant(trunk.tenant_id).cloned() else {
            self.refuse_trunk_call(clk, id, &request, peer, trunk.name, TrunkRefusal::NoTenant);
            return None;
        };
        if self.trunk_calls.at_limit(&trunk) {
            self.refuse_trunk_call(clk, id, &request, peer, trunk.name, TrunkRefusal::AtLimit);
            return None;
        }
        let number = rule.destination.number().to_owned();
        let (caller, did) = match (request.from(), request.to()) {
            (Ok(from), Ok(to)) => {
                let from_sip = from.uri.sip();
                let caller = cdr::Party {
                    user: user_of(from_sip),
                    display_name: from
                        .display
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    domain: from_sip.map(|u| u.host.to_string()).unwrap_or_default(),
                };
                (caller, user_of(to.uri.sip()))
            }
            _ => {
                let b = ResponseBuilder::for_request(&request, 400, "Bad Request");
                self.respond(clk, id, b.to_tag(tag));
                return None;
            }
        };
        let tenant = TenantInfo {
            id: tenant.id,
            name: tenant.name,
            domain: tenant.domain,
        };
        let session_id = self.sv.snowflake.next_session(cdr::UnixMillis(clk.unix_ms));
        let dir = lookup!(self);
        let (route, outbound, direction) = match &rule.destination {
            // Out again by the outbound rules, as if an extension of the
            // tenant dialled it (no extension filter applies, nobody's
            // permission: the tenant's limit and the trunks' do). No rule
            // takes the number: `404`, like a number nobody has.
            InboundDestination::External(_) => {
                let call = dir.outbound(tenant.id, None, None, &number);
                let direction = match call {
                    Some(_) => Direction::InboundOutbound,
                    None => Direction::Inbound,
                };
                (Route::NotFound, call, direction)
            }
            _ => {
                let route = dir.route(clk.now, tenant.id, &number);
                let direction = match leaves_by_trunk(&dir, &tenant, &route) {
                    true => Direction::InboundOutbound,
                    false => Direction::Inbound,
                };
                (route, None, direction)
            }
        };
        let mut cx = Ctx {
            clk,
            sv: &mut self.sv,
            dir,
            fx: &mut self.effects,
        };
        let session = Session::start(
            &mut cx,
            Start {
                session_id,
                tenant,
                caller,
                dialled: number,
                peer,
                invite: request,
                server: id,
                route,
                direction,
                inbound: Some(Inbound {
                    trunk: trunk.id,
                    trunk_name: trunk.name,
                    did,
                }),
                outbound,
            },
        );
        self.apply(session_id, session.tenant_id());
        self.sessions.insert(session_id, Box::new(session));
        self.settle(session_id);
        None
    }

    fn refuse_trunk_call(
        &mut self,
        clk: Clock,
        id: TransactionId,
        request: &Message,
        peer: Peer,
        trunk: String,
        why: TrunkRefusal,
    ) {
        let (code, reason) = match why {
            TrunkRefusal::NoRule | TrunkRefusal::NoTenant => (404, "Not Found"),
            TrunkRefusal::AtLimit => (503, "Service Unavailable (trunk call limit)"),
        };
        let tag = self.sv.ids.tag();
        let mut b = ResponseBuilder::for_request(request, code, reason).to_tag(tag);
        if code == 503 {
            b = b.header(HeaderName::RetryAfter, 5);
        }
        self.respond(clk, id, b);
        self.event(EngineEvent::TrunkCallRefused {
            peer,
            trunk,
            reason: why,
        });
    }

    /// Moves session `id`'s counts in [`TrunkCalls`] to the trunks it
    /// holds now (`held`, from [`Session::trunks_held`]).
    pub(super) fn count_trunks(&mut self, id: SessionId, tenant: TenantId, held: TrunkUse) {
        let old = self.trunk_held.remove(&id).unwrap_or_default();
        if old == held {
            if held != TrunkUse::default() {
                self.trunk_held.insert(id, held);
            }
            return;
        }
        for (use_, add) in [(old, false), (held, true)] {
            for trunk in [use_.inbound, use_.outbound].into_iter().flatten() {
                self.trunk_calls.trunk(trunk, add);
            }
            if use_.outbound.is_some() {
                self.trunk_calls.tenant(tenant, add);
            }
        }
        if held != TrunkUse::default() {
            self.trunk_held.insert(id, held);
        }
    }
}
