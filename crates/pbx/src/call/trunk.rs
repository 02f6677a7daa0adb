//! Calls through trunks, the session's side: the DID and trunk of a call
//! that came in from a carrier, and the outbound leg of a call that leaves
//! by one (an extension dialling out, or a forward to an external number).
//!
//! ```text
//! outbound rule ─▶ OutboundCall { number, trunks (available, in order) }
//!                     │ a refusal (user, tenant limit, no trunk): 403/503, no target
//!                     ▼
//!     trunk 1: INVITE sip:{number}@{host} ── 401/407 ─▶ answered once (CSeq 2, same target)
//!                     │ 408, 5xx, no answer, transport error
//!                     ▼ (TargetFailed with its code)
//!     trunk 2: INVITE ... ── 2xx: bridged like any target
//! ```
//!
//! # Decisions
//!
//! - **A trunk attempt is a target** like an extension's device (DESIGN.md:
//!   "a trunk is a target whose contact is the trunk's"): same fork, same
//!   bridge, same CDR events, with `trunk_name` and `outbound_caller_id`
//!   on its `TargetAdded`. Each trunk tried is its own target with its own
//!   `status_code`; a trunk skipped before any INVITE (at its `max_calls`,
//!   or its address unknown) has none.
//! - **The carrier's challenge is answered once per attempt** with the
//!   trunk's credentials (the strongest digest it offers, in the trunk's
//!   realm when one is set): the INVITE is sent again in the same dialog
//!   with CSeq 2 and a new branch, and the target stays the same. A second
//!   challenge is that attempt's failure (401/407 do not fail over; the
//!   caller hears `480`, like any challenge from a target).
//! - **Failover** follows [`crate::routing::fails_over`]: 408 (and no
//!   answer at all), 5xx and a transport error (counted as 503) try the
//!   next trunk of the rule; another 4xx or a 6xx is the far end's answer
//!   and ends the stage like a device's refusal. When no trunk is left the
//!   caller hears `480 Temporarily Unavailable` (a `fail` CDR), not the
//!   last carrier's 408 or 503: nobody rang out, and 503 is hop by hop.
//! - **Who may dial out**: the caller's `outbound_allowed` and the tenant's
//!   `max_outbound_calls` (calls held by sessions now); for a forward to an
//!   external number, the forwarding user's. A refusal answers the caller
//!   with its own status and reason phrase and no target is created.
//! - **The From** of an outbound INVITE names the caller ID presented (the
//!   rule's, else the user's, else the trunk's), else the trunk's account
//!   user name, else the caller; its host is the trunk's from-domain (else
//!   its host).
//! - **An outbound call rings for [`OUTBOUND_RING_TIMEOUT`]** at most: there
//!   is no user whose ring timeout applies.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use cdr::{
    CallEventKind, CallType, EndReason, Party, RerouteReason, TargetAdded, TargetId, TenantId,
    UnixMillis,
};
use sip::auth::{Challenge, DigestClient, strongest_challenge};
use sip::builder::RequestBuilder;
use sip::transport::{Peer, Transport};
use sip::{HeaderName, Method};

use super::effect::{Ctx, Effect, Lookup};
use super::fork::TargetState;
use super::reroute::{Stage, internal_number};
use super::{LegRef, Phase, RoutingNotice, Session, TenantInfo, TxnRole};
use crate::context::{ALLOW, InternalError, Written};
use crate::directory::{ForwardCondition, Forwarding};
use crate::router::Route;
use crate::routing::outbound::Availability;
use crate::routing::{Attempt, OutboundRefusal, caller_id, fails_over, may_dial_out, select_rule};
use crate::trunk::{Trunk, TrunkId, TrunkTransport};

/// How long an outbound call rings before the caller hears `408`.
pub const OUTBOUND_RING_TIMEOUT: Duration = Duration::from_secs(120);

/// A call that came in from a carrier: its trunk and the DID it was for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Inbound {
    pub trunk: TrunkId,
    pub trunk_name: String,
    /// The user part of the carrier's To (the CDR's `did`).
    pub did: String,
}

/// One trunk an outbound call may take.
#[derive(Clone, Debug)]
pub(crate) struct OutboundTrunk {
    pub trunk: Trunk,
    /// Where its INVITE goes; `None`: not resolved (skipped).
    pub destination: Option<SocketAddr>,
    /// The caller ID presented on it (`""`: none configured).
    pub caller_id: String,
}

/// An outbound call as routing decided it: the number to send and the
/// trunks to try, or why it may not go out.
#[derive(Clone, Debug)]
pub(crate) struct OutboundCall {
    /// The dialled number after the rule's rewrite (the CDR's `callee`).
    pub number: String,
    pub trunks: Vec<OutboundTrunk>,
    pub refusal: Option<OutboundRefusal>,
}

/// The trunks a session holds now, for the engine's counts
/// ([`crate::trunk::TrunkCalls`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TrunkUse {
    pub inbound: Option<TrunkId>,
    /// The trunk of the outbound attempt ringing or answered.
    pub outbound: Option<TrunkId>,
}

/// What an outbound INVITE is rebuilt from when it is sent again with
/// credentials.
#[derive(Clone, Debug)]
struct InviteParts {
    ruri: String,
    from: String,
    to: String,
    call_id: String,
    max_forwards: u8,
    transport: Transport,
}

/// One target that is a trunk attempt.
#[derive(Debug)]
struct TrunkAttempt {
    /// Index into the outbound call's trunks.
    trunk: usize,
    challenged: bool,
    parts: InviteParts,
}

/// The outbound call being placed.
#[derive(Debug)]
struct OutLeg {
    call: OutboundCall,
    /// The next trunk to try.
    next: usize,
    reason: Option<RerouteReason>,
}

/// A session's trunks: the one it came in by, the outbound call it places,
/// and which of its targets are trunk attempts.
#[derive(Debug, Default)]
pub(super) struct TrunkLegs {
    inbound: Option<Inbound>,
    /// Boxed: only calls out by a trunk have one (issue 18).
    out: Option<Box<OutLeg>>,
    attempts: HashMap<usize, TrunkAttempt>,
}

impl TrunkLegs {
    pub(super) fn new(inbound: Option<Inbound>) -> Self {
        TrunkLegs {
            inbound,
            ..TrunkLegs::default()
        }
    }

    /// The DID of a call from a trunk, else `""`.
    pub(super) fn did(&self) -> &str {
        self.inbound.as_ref().map_or("", |i| i.did.as_str())
    }

    /// The trunk a call came in by, else `""`.
    pub(super) fn inbound_name(&self) -> &str {
        self.inbound.as_ref().map_or("", |i| i.trunk_name.as_str())
    }
}

impl Lookup<'_> {
    /// The outbound call `dialled` makes in `tenant`, if an outbound rule
    /// takes it: `rule_caller` is the extension the rules' "from these
    /// extensions" filter sees (`None` for a call from a trunk), `user` the
    /// one whose permission and caller ID apply.
    pub(crate) fn outbound(
        &self,
        tenant: TenantId,
        rule_caller: Option<&str>,
        user: Option<&str>,
        dialled: &str,
    ) -> Option<OutboundCall> {
        let plan = select_rule(self.trunks, tenant, rule_caller, dialled)?;
        let policy = self.trunks.outbound_policy(tenant);
        let settings = match (policy, user) {
            (Some(p), Some(u)) => p.user(u),
            _ => Default::default(),
        };
        let limit = policy.and_then(|p| p.max_outbound_calls);
        let mut refusal =
            may_dial_out(settings.allowed, self.trunk_calls.outbound(tenant), limit).err();
        // A trunk whose name resolved to several servers (SRV targets,
        // several addresses) is one attempt per server, in order: failing
        // over within a trunk is failing over like between trunks.
        let trunks: Vec<OutboundTrunk> = plan
            .trunks
            .iter()
            .filter(|t| self.trunk_calls.availability(t) == Availability::Available)
            .flat_map(|t| {
                let caller_id = caller_id(plan.rule, &settings.caller_id, t, "").to_owned();
                let destinations = self.trunks.destinations(t);
                let destinations = match destinations.is_empty() {
                    true => vec![None],
                    false => destinations.into_iter().map(Some).collect(),
                };
                destinations
                    .into_iter()
                    .map(move |destination| OutboundTrunk {
                        trunk: (*t).clone(),
                        destination,
                        caller_id: caller_id.clone(),
                    })
            })
            .collect();
        if refusal.is_none() && trunks.is_empty() {
            refusal = Some(OutboundRefusal::NoTrunk);
        }
        Some(OutboundCall {
            number: plan.number,
            trunks,
            refusal,
        })
    }
}

/// Whether a call from a trunk routed as `route` leaves by a trunk at once
/// (its destination forwards every call to an external number an outbound
/// rule takes): the call is then `in2out` (SPEC §2; the direction is
/// decided at routing, so a forward decided later leaves it `in`).
pub(crate) fn leaves_by_trunk(dir: &Lookup<'_>, tenant: &TenantInfo, route: &Route) -> bool {
    let Route::Extension { forwarding, .. } = route else {
        return false;
    };
    let Some(destination) = forwarding.to(ForwardCondition::Always) else {
        return false;
    };
    let number = match internal_number(&tenant.domain, destination) {
        Some(n) if dir.directory.user(tenant.id, &n).is_some() => return false,
        Some(n) => n,
        None => return false,
    };
    select_rule(dir.trunks, tenant.id, None, &number).is_some()
}

impl Session {
    /// The trunks this session holds now (none once it is over).
    pub(crate) fn trunks_held(&self) -> TrunkUse {
        if self.is_over() {
            return TrunkUse::default();
        }
        let outbound = self
            .trunk
            .attempts
            .iter()
            .filter(|(i, _)| {
                self.targets.get(**i).is_some_and(|t| {
                    t.state.is_open()
                        || t.state == TargetState::CancelWanted
                        || matches!(self.phase, Phase::Answered(b)
                            if b.callee == **i || b.caller == LegRef::Target(**i))
                })
            })
            .map(|(_, a)| a.trunk)
            .max()
            .and_then(|n| self.trunk.out.as_ref().map(|o| o.call.trunks[n].trunk.id));
        TrunkUse {
            inbound: self.trunk.inbound.as_ref().map(|i| i.trunk),
            outbound,
        }
    }

    /// Rings `call` through its trunks (a new stage), or refuses it.
    pub(super) fn ring_outbound(
        &mut self,
        cx: &mut Ctx<'_>,
        call: OutboundCall,
        reason: Option<RerouteReason>,
    ) {
        self.stage = Stage {
            extension: String::new(),
            forwarding: Forwarding::default(),
            first_failure: self.failures.len(),
            group: None,
        };
        self.visited.push(call.number.clone());
        if let Some(refusal) = call.refusal {
            cx.fx.push(Effect::Notice(RoutingNotice::OutboundRefused {
                number: call.number,
                refusal,
            }));
            return self.fail_caller(
                cx,
                refusal.status(),
                &refusal.to_string(),
                EndReason::NotApplicable,
            );
        }
        self.trunk.out = Some(Box::new(OutLeg {
            call,
            next: 0,
            reason,
        }));
        if !self.next_trunk(cx) {
            let refusal = OutboundRefusal::NoTrunk;
            return self.fail_caller(
                cx,
                refusal.status(),
                &refusal.to_string(),
                EndReason::NotApplicable,
            );
        }
        self.timers.set(
            super::Timer::RingTimeout,
            cx.clk.now + OUTBOUND_RING_TIMEOUT,
        );
    }

    /// A forward to `destination`, which no extension of the tenant has:
    /// out by the outbound rules, else `404`.
    pub(super) fn forward_external(
        &mut self,
        cx: &mut Ctx<'_>,
        reason: RerouteReason,
        from: String,
        destination: &str,
    ) {
        let rule_caller = match self.trunk.inbound {
            Some(_) => None,
            None => Some(from.as_str()),
        };
        let call = internal_number(&self.tenant.domain, destination).and_then(|n| {
            cx.dir
                .outbound(self.tenant.id, rule_caller, Some(&from), &n)
        });
        let Some(call) = call else {
            cx.fx
                .push(Effect::Notice(RoutingNotice::ExternalWithoutTrunk {
                    from,
                    destination: destination.to_owned(),
                }));
            return self.fail_caller(cx, 404, "Not Found", EndReason::NotApplicable);
        };
        cx.emit(CallEventKind::IdentityChanged {
            caller: None,
            callee: Some(Party {
                user: call.number.clone(),
                display_name: String::new(),
                domain: self.tenant.domain.clone(),
            }),
        });
        self.ring_outbound(cx, call, Some(reason));
    }

    /// A blind transfer to a number outside (`transfer_route.rs`): `call`
    /// is this session's outbound call, its first trunk that can be tried
    /// INVITEd; false when none could be.
    pub(super) fn ring_trunks(&mut self, cx: &mut Ctx<'_>, call: OutboundCall) -> bool {
        self.visited.push(call.number.clone());
        self.trunk.out = Some(Box::new(OutLeg {
            call,
            next: 0,
            reason: None,
        }));
        self.next_trunk(cx)
    }

    /// Whether target `i` is a trunk attempt.
    pub(super) fn is_trunk_attempt(&self, i: usize) -> bool {
        self.trunk.attempts.contains_key(&i)
    }

    /// Whether this call already places an outbound call.
    pub(super) fn leaves_by_trunk_already(&self) -> bool {
        self.trunk.out.is_some()
    }

    /// INVITEs the next trunk that can be tried; false when none is left.
    fn next_trunk(&mut self, cx: &mut Ctx<'_>) -> bool {
        loop {
            let Some(out) = self.trunk.out.as_mut() else {
                return false;
            };
            let index = out.next;
            let Some(candidate) = out.call.trunks.get(index) else {
                return false;
            };
            out.next += 1;
            if candidate.destination.is_none() {
                let trunk = candidate.trunk.name.clone();
                cx.fx
                    .push(Effect::Notice(RoutingNotice::TrunkUnresolved { trunk }));
                continue;
            }
            if self.add_trunk_target(cx, index) {
                return true;
            }
        }
    }

    /// The INVITE of trunk `index` of the outbound call: a new target.
    fn add_trunk_target(&mut self, cx: &mut Ctx<'_>, index: usize) -> bool {
        let Some(out) = self.trunk.out.as_ref() else {
            return false;
        };
        let candidate = &out.call.trunks[index];
        let (trunk, number) = (&candidate.trunk, &out.call.number);
        let Some(destination) = candidate.destination else {
            return false;
        };
        let transport = match trunk.transport {
            TrunkTransport::Udp => Transport::Udp,
            TrunkTransport::Tcp => Transport::Tcp,
        };
        let host = match trunk.port {
            5060 => trunk.host.clone(),
            port => format!("{}:{port}", trunk.host),
        };
        let ruri = match transport {
            Transport::Udp => format!("sip:{number}@{host}"),
            _ => format!("sip:{number}@{host};transport=tcp"),
        };
        // Who calls: the caller, or the party a transfer leaves in the call.
        let (calling, display) = self.transfer_presented().unwrap_or_else(|| {
            (
                self.caller_party.user.clone(),
                self.caller_party.display_name.clone(),
            )
        });
        let from_user = [
            candidate.caller_id.as_str(),
            trunk.username.as_str(),
            calling.as_str(),
        ]
        .into_iter()
        .find(|u| !u.is_empty())
        .unwrap_or_default();
        let tag = cx.sv.ids.tag();
        let display = &display;
        let from = match display.is_empty() {
            true => format!("<sip:{from_user}@{}>;tag={tag}", trunk.from_host()),
            false => format!(
                "{} <sip:{from_user}@{}>;tag={tag}",
                sip::text::quote(display),
                trunk.from_host()
            ),
        };
        let parts = InviteParts {
            ruri: ruri.clone(),
            from,
            to: format!("<sip:{number}@{}>", trunk.host),
            call_id: cx.sv.ids.call_id(),
            max_forwards: self.max_forwards(),
            transport,
        };
        let added = TargetAdded {
            target: TargetId::from(cx.sv.snowflake.next_id(UnixMillis(cx.clk.unix_ms))),
            call_type: CallType::Normal,
            caller: calling.clone(),
            callee: number.clone(),
            destination: ruri,
            trunk_name: trunk.name.clone(),
            outbound_caller_id: candidate.caller_id.clone(),
            did: self.trunk.did().to_owned(),
            reroute_reason: out.reason,
            user: None,
        };
        let b = self.trunk_invite(cx, &parts, 1, None);
        let target = self.targets.len();
        let peer = Peer::new(transport, destination);
        let key = (parts.call_id.clone(), tag);
        if !self.launch_target(cx, peer, key, b, added) {
            return false;
        }
        self.trunk.attempts.insert(
            target,
            TrunkAttempt {
                trunk: index,
                challenged: false,
                parts,
            },
        );
        true
    }

    /// An outbound INVITE with CSeq `cseq` and, when answering a
    /// challenge, its credentials.
    fn trunk_invite(
        &self,
        cx: &mut Ctx<'_>,
        parts: &InviteParts,
        cseq: u32,
        auth: Option<(HeaderName, String)>,
    ) -> RequestBuilder {
        let local = cx.sv.local_parts(parts.transport);
        let mut b = RequestBuilder::new(Method::Invite, &parts.ruri)
            .header(HeaderName::Via, local.via())
            .header(HeaderName::MaxForwards, parts.max_forwards)
            .header(HeaderName::From, &parts.from)
            .header(HeaderName::To, &parts.to)
            .header(HeaderName::CallId, &parts.call_id)
            .header(HeaderName::CSeq, format!("{cseq} INVITE"))
            .header(HeaderName::Contact, &local.contact)
            .header(HeaderName::Allow, ALLOW)
            .header(HeaderName::XSessionId, self.id);
        if let Some((name, value)) = auth {
            b = b.header(name, value);
        }
        if let Some((ct, body)) = self.offer() {
            b = b.body(&ct, body);
        }
        b
    }

    /// Target `i` answered 401/407: when it is a trunk attempt not
    /// challenged yet, its INVITE goes again with the trunk's credentials
    /// (true); else the challenge is the target's failure (false).
    pub(super) fn answer_challenge(
        &mut self,
        cx: &mut Ctx<'_>,
        i: usize,
        response: &sip::Message,
    ) -> bool {
        let ringing = self.phase == Phase::Ringing || self.is_transfer_target(i);
        if !ringing || !self.targets[i].state.is_open() {
            return false;
        }
        let Some(out) = self.trunk.out.as_ref() else {
            return false;
        };
        let Some(attempt) = self.trunk.attempts.get(&i).filter(|a| !a.challenged) else {
            return false;
        };
        let trunk = &out.call.trunks[attempt.trunk].trunk;
        let (asked, answer) = match response.status() {
            Some(401) => (HeaderName::WwwAuthenticate, HeaderName::Authorization),
            _ => (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            ),
        };
        let challenges: Vec<Challenge> = response
            .challenges(asked)
            .filter_map(Result::ok)
            .filter(|c| trunk.realm.is_empty() || c.realm == trunk.realm)
            .collect();
        let Some(challenge) = strongest_challenge(&challenges) else {
            return false;
        };
        let cnonce = format!("{:016x}", cx.sv.ids.next_u64());
        let mut client = DigestClient::new(trunk.auth_user(), trunk.password.clone());
        let Ok(credentials) = client.respond(challenge, "INVITE", &attempt.parts.ruri, &cnonce)
        else {
            return false;
        };
        let parts = attempt.parts.clone();
        let b = self.trunk_invite(cx, &parts, 2, Some((answer, credentials.to_string())));
        let invite = match b.build() {
            Ok(m) => m,
            Err(error) => {
                cx.internal(InternalError::Unbuildable {
                    what: Written::Invite,
                    error,
                });
                return false;
            }
        };
        let peer = self.targets[i].leg.peer;
        let txn = match cx.sv.txns.send_request(cx.clk.now, peer, invite.clone()) {
            Ok(id) => id,
            Err(error) => {
                cx.internal(InternalError::Refused {
                    what: Written::Invite,
                    error,
                });
                return false;
            }
        };
        if let Some(a) = self.trunk.attempts.get_mut(&i) {
            a.challenged = true;
        }
        self.own(cx, txn, peer, TxnRole::TargetInvite(i));
        let t = &mut self.targets[i];
        t.invite = invite;
        t.txn = txn;
        // Nothing came back on the new transaction yet: a CANCEL waits for
        // its first provisional (RFC 3261 §9.1).
        t.state = TargetState::Calling;
        t.leg.dialog = None;
        true
    }

    /// Target `i` failed with `code`: when it is a trunk attempt and the
    /// code fails over, the next trunk is INVITEd, or with none left the
    /// caller hears `480` (true: the failure is handled).
    pub(super) fn fail_over(&mut self, cx: &mut Ctx<'_>, i: usize, code: u16) -> bool {
        let transfer = self.is_transfer_target(i);
        if !(self.phase == Phase::Ringing || transfer)
            || !self.trunk.attempts.contains_key(&i)
            || !fails_over(Attempt::Rejected(code))
        {
            return false;
        }
        if !self.next_trunk(cx) {
            if transfer {
                // As the caller would: no trunk left is `480`.
                self.transfer_failed(cx, 480);
            } else {
                self.fail_caller(cx, 480, "Temporarily Unavailable", EndReason::NotApplicable);
            }
        }
        true
    }
}
