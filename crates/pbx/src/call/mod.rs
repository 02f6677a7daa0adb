//! One B2BUA session: the caller's leg, the targets the PBX INVITEd for it,
//! and the CDR facts ([`cdr::CallEvent`]s) its life produces.
//!
//! # Legs and dialogs
//!
//! The PBX is a back-to-back user agent: it answers the caller's INVITE as
//! a UAS (the *caller leg*, one UAS [`Dialog`] under the caller's Call-ID
//! and a To tag of the PBX's) and calls each target as a UAC (one *target
//! leg* each, with a Call-ID, From tag and CSeq space of the PBX's own).
//! Nothing of one leg's dialog identity leaks into another. Every INVITE
//! the PBX sends, and every 2xx it returns to an INVITE, carries
//! `X-Session-Id` (SPEC §1).
//!
//! Requests the PBX sends on a leg go to the *peer* the leg's messages come
//! from (the caller's source address, a binding's REGISTER source), never
//! to an address resolved from a Contact: that is what reaches phones
//! behind NAT and reuses their TCP/TLS connections.
//!
//! # The life of a session
//!
//! ```text
//!              INVITE (authenticated, routed)
//!                      │ SessionStarted, TargetAdded per binding
//!                      ▼
//!   ┌──────────── Ringing ──────────────┐  404 / 480: no target, SessionEnded at once
//!   │ 18x: TargetRinging, relayed       │
//!   │ 4xx-6xx: TargetFailed; when all   │── CANCEL (or BYE) from the caller: 487,
//!   │   failed, the best one relayed    │   TargetNoAnswer(CallerCancelled), CANCELs
//!   │   (SessionEnded)                  │── ring timeout: 408, TargetNoAnswer(RingTimeout)
//!   └────────────┬──────────────────────┘
//!                │ first 2xx: TargetAnswered, 200 to the caller, CANCEL to the
//!                ▼ others (TargetNoAnswer(AnsweredElsewhere))
//!            Answered ── re-INVITE / UPDATE / INFO / MESSAGE relayed both ways
//!                │ BYE from either side: 200, BYE to the other,
//!                ▼ TargetEnded + SessionEnded (caller_ / callee_disconnect)
//!              Over ── lingers until its transactions end, then dropped
//! ```
//!
//! # The shape of the code
//!
//! Files by concern, so "what happens when a forked target loses the race"
//! is found by its name:
//!
//! - `mod.rs` (here): the [`Session`], the entry points the engine calls,
//!   and the plumbing shared by the rest;
//! - `caller.rs`: the caller leg (the UAS side): provisionals relayed to
//!   it, its final answer, its CANCEL;
//! - `group.rs`: ring groups: which members ring when (ring all, hunt,
//!   round robin), and where an unanswered group call goes;
//! - `fork.rs`: the targets racing: one `TargetState` each, the
//!   winner, cancelling the losers, the best failure, a late 2xx;
//! - `bridge.rs`: the answered pair: in-dialog requests relayed both ways,
//!   re-INVITE glare, owed ACKs, BYE and the end of the call;
//! - `unacked.rs`: 2xx retransmission until the ACK (RFC 3261 §13.3.1.4);
//! - `trunk.rs`: trunk legs: the trunk and DID of a call from a carrier,
//!   the outbound call (its trunks in order, a carrier's challenge answered
//!   once, failover);
//! - `timer.rs`: the session's named timers, one [`Timer`] variant and one
//!   arm in [`Session::on_timeout`] each;
//! - `effect.rs`: the one-way [`Effect`]s a session hands the engine (CDR
//!   facts, transmits, routes for its transactions and dialogs): a session
//!   never writes the engine's indexes or output itself;
//! - `originate.rs`: REST-originated calls: the caller's devices are the
//!   first targets, the one that answers is the bridge's caller side;
//! - `view.rs`: what `GET /api/sessions` shows of a call;
//! - `transfer.rs`: blind transfer (REFER): checks, NOTIFYs, the new
//!   target rung with a late offer and joined by a re-INVITE of the party
//!   left, the referrer released;
//! - `transfer_route.rs`: where a transfer rings C (an extension, a ring
//!   group, a number out by a trunk);
//! - `attended.rs`: attended transfer (REFER with Replaces): one session
//!   hands its target's leg over, the other adopts it (the engine decides);
//! - `pickup.rs`: call pickup and INVITE with Replaces: a phone's own
//!   INVITE takes a party's place (the engine decides which).
//!
//! Seams for what comes next: a feature that reroutes a call (forwarding,
//! a followed 3xx, a ring-group step, pickup) adds targets to the same
//! fork with [`Session::add_target`] once the earlier ones are over; one that
//! re-bridges (a transfer) changes the [`Bridge`]'s callee (a
//! REST-originated call bridges a target as its caller side, see
//! `originate.rs`); a trunk attempt is a target whose contact is the
//! trunk's (`trunk.rs`); media anchoring rewrites the bodies where
//! `body_of` copies them from leg to leg.
//!
//! # Decisions
//!
//! - **SDP passes through.** Offers and answers are copied from leg to leg
//!   (INVITE, 18x, 2xx, ACK, re-INVITE, UPDATE), so media flows end to end.
//!   A late offer (INVITE without SDP) works because the ACK is relayed
//!   too: the callee's 2xx is ACKed when the caller's ACK arrives, with the
//!   caller's answer. Several devices sending early media (183 with SDP)
//!   all reach the caller's one early dialog. An anchored call (`media.rs`,
//!   [`crate::media`]) gets each body rewritten to the relay as it crosses.
//! - **The 2xx to an INVITE is retransmitted by the session** (RFC 3261
//!   §13.3.1.4: T1 doubling to T2) until its ACK; with no ACK 64·T1 after
//!   it, the call is torn down with BYE on both legs.
//! - **A leg that vanishes ends the call.** No ACK for a 2xx, no response
//!   (or a transport error, `408`, `481`) to a relayed in-dialog request:
//!   RFC 3261 §12.2.1.2 says the dialog is gone; the session ends with BYE
//!   to whatever is left, `TargetEnded`/`SessionEnded` with `None` (no
//!   party hung up: SPEC §2's "failed / not applicable").
//! - **A session ends when its BYE arrives**, not when the BYE the PBX
//!   relays is answered: both legs are over the moment BYE is sent (RFC
//!   3261 §15.1.1). A BYE that times out or meets a transport error cannot
//!   hold the CDR back.
//! - **Cancelling a target that has not answered anything yet** waits for
//!   its first provisional (RFC 3261 §9.1); a target that answers 2xx after
//!   losing (a race with the winner, the caller's CANCEL or the ring
//!   timeout) is ACKed and sent BYE at once.
//! - **The caller hears the best failure** when every target failed (RFC
//!   3261 §16.7): a 6xx if any, else the first response of the lowest
//!   class. A 6xx does not stop the other devices (a user declining on the
//!   desk phone may still pick up on the softphone). Codes that only make
//!   sense hop by hop are not relayed: 3xx (the PBX follows those it can,
//!   see `reroute.rs`; the others are failures), 401/407 (a device challenging the PBX) and 503 become
//!   `480`.
//! - **Before the answer, only the caller's CANCEL or BYE, and OPTIONS,
//!   are handled in dialog**; other in-dialog requests on an early dialog
//!   get `501` (with forking there is no single leg to relay them to).
//! - **Re-INVITE glare** (both sides at once, or one while another is in
//!   progress) is answered `491` (RFC 3261 §14.1).

mod agent_code;
mod app;
mod attended;
mod bridge;
mod caller;
mod effect;
mod fork;
mod group;
mod ivr;
mod leg;
mod media;
mod originate;
mod pickup;
mod queue;
mod queue_book;
mod queue_callback;
mod reroute;
mod timer;
mod transfer;
mod transfer_route;
mod trunk;
mod unacked;
mod view;

use std::collections::HashMap;

use cdr::{
    CallEventKind, Direction, EndReason, Party, SessionEnd, SessionId, SessionStart, TenantId,
};
use sip::builder::ResponseBuilder;
use sip::dialog::Dialog;
use sip::transaction::{TransactionEvent, TransactionId};
use sip::transport::Peer;
use sip::{HeaderName, Message, Method};

use crate::context::ALLOW;
use crate::router::Route;

pub use agent_code::AgentCodeCall;
use bridge::{Bridge, Relay};
use caller::Caller;
pub(crate) use effect::{Ctx, DialogKey, Effect, Lookup};
use fork::Target;
pub(crate) use group::LastAnswered;
use leg::Leg;
pub(crate) use leg::SentAck;
pub(crate) use originate::{Origin, Originate};
pub(crate) use pickup::Newcomer;
pub(crate) use queue::Callback;
pub(crate) use queue_book::{Offer, QueueBook};
pub(crate) use queue_callback::CallbackLeg;
pub use reroute::{NotFollowed, RoutingNotice};
use timer::{Timer, TimerTable};
pub use transfer::{RELEASE_AFTER, TransferOnFailure};
pub(crate) use trunk::{Inbound, OutboundCall, TrunkUse, leaves_by_trunk};
pub use view::{LegRole, LegState, LegView, SessionState, SessionView};

/// The tenant a session belongs to, as the CDR names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TenantInfo {
    pub id: TenantId,
    pub name: String,
    pub domain: String,
}

/// Everything known when an authenticated INVITE has been routed.
pub(crate) struct Start {
    pub session_id: SessionId,
    pub tenant: TenantInfo,
    pub caller: Party,
    /// The Request-URI user, for the CDR's `callee` when it matches nobody.
    pub dialled: String,
    pub peer: Peer,
    pub invite: Message,
    /// The INVITE's server transaction.
    pub server: TransactionId,
    pub route: Route,
    /// Decided once, at routing (SPEC §3).
    pub direction: Direction,
    /// The trunk and DID of a call from a trunk.
    pub inbound: Option<Inbound>,
    /// A number no extension has that an outbound rule takes: rung through
    /// trunks instead of `route` (`trunk.rs`).
    pub outbound: Option<OutboundCall>,
}

/// One leg of a session, as the engine's dialog index names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LegRef {
    Caller,
    Target(usize),
}

/// Why a session owns a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxnRole {
    /// The caller's INVITE (its server transaction); a CANCEL names it.
    CallerInvite,
    /// The INVITE to target `n`.
    TargetInvite(usize),
    /// An in-dialog request relayed from the other leg.
    Relay,
    /// A CANCEL or BYE the PBX sent; its outcome changes nothing.
    Cancel,
    Bye,
    /// A NOTIFY of a REFER's subscription (`transfer.rs`); its outcome
    /// changes nothing.
    Notify,
    /// The re-INVITE that joins the party left in a transfer with the
    /// transfer's target (`transfer.rs`).
    TransferJoin,
    /// The re-INVITE without SDP asking an attended transfer's adopted
    /// target for an offer (`attended.rs`).
    TransferOffer,
    /// The re-INVITE putting a picker's (or a Replaces newcomer's) offer
    /// to the party it joins (`pickup.rs`).
    PickupJoin,
}

/// Where the call as a whole is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Targets are racing (or none was started and the caller is being
    /// refused).
    Ringing,
    /// A target answered: the caller and that target are bridged.
    Answered(Bridge),
    /// `SessionEnded` was emitted.
    Over,
}

/// One B2BUA call. See the module documentation.
#[derive(Debug)]
pub(crate) struct Session {
    id: SessionId,
    tenant: TenantInfo,
    caller_party: Party,
    /// The first destination (the CDR's `callee`).
    callee_party: Party,
    /// When the session started (Unix ms), for [`Session::view`].
    started_ms: u64,
    /// The caller's INVITE, answered as a UAS; `None` for a call the PBX
    /// originated (`origin`), whose caller is one of its targets.
    caller: Option<Caller>,
    /// A REST-originated call (see `originate.rs`).
    /// Boxed: only calls the PBX places (REST, queue callbacks) have one
    /// (issue 18: memory per live call).
    origin: Option<Box<Origin>>,
    targets: Vec<Target>,
    phase: Phase,
    timers: TimerTable,
    /// Final failures of the targets, in arrival order.
    failures: Vec<(u16, String)>,
    /// The destination ringing now (see `reroute.rs`).
    stage: reroute::Stage,
    /// How many times the call was moved on, and the numbers it rang.
    hops: usize,
    visited: Vec<String>,
    /// How many 3xx were followed.
    redirects: usize,
    relays: HashMap<TransactionId, Relay>,
    dialog_keys: Vec<DialogKey>,
    /// The trunks the call came in by and leaves by (`trunk.rs`).
    trunk: trunk::TrunkLegs,
    /// The transfer in progress and the legs transfers took out of the
    /// call (`transfer.rs`).
    xfer: transfer::Transfers,
    /// The media relay, when the call is anchored (`media.rs`).
    media: Option<crate::media::Anchored>,
    /// Whether the call is recorded, and why not (`media.rs`).
    recording: media::Recording,
    /// A picker (or Replaces newcomer) joining the call (`pickup.rs`).
    pickup: pickup::Pickup,
    /// What the PBX answered itself: an IVR (`app.rs`, `ivr.rs`).
    apps: LazyApps,
}

/// A session's [`app::Apps`], allocated the first time they are written:
/// most calls never meet an IVR or a queue, and inline they made every
/// session ~290 bytes larger (issue 18: memory per live call). Reads of
/// a session that has none see [`NO_APPS`]; `app.rs`, `ivr.rs` and
/// `queue.rs` use it as if it were the `Apps` itself.
#[derive(Debug, Default)]
struct LazyApps(Option<Box<app::Apps>>);

static NO_APPS: app::Apps = app::Apps {
    answer: None,
    current: None,
    entries: 0,
};

impl std::ops::Deref for LazyApps {
    type Target = app::Apps;

    fn deref(&self) -> &app::Apps {
        self.0.as_deref().unwrap_or(&NO_APPS)
    }
}

impl std::ops::DerefMut for LazyApps {
    fn deref_mut(&mut self) -> &mut app::Apps {
        self.0.get_or_insert_with(Box::default)
    }
}

impl Session {
    /// Starts the session for an authenticated, routed INVITE: the CDR's
    /// `SessionStarted`, then either an immediate failure (`404`, `480`) or
    /// one target per contact.
    pub(crate) fn start(cx: &mut Ctx<'_>, start: Start) -> Session {
        let Start {
            session_id,
            tenant,
            caller,
            dialled,
            peer,
            invite,
            server,
            route,
            direction,
            inbound,
            outbound,
        } = start;
        let call_id = invite.call_id().map(str::to_owned).unwrap_or_default();
        let callee = match &route {
            Route::Extension {
                extension,
                display_name,
                ..
            }
            | Route::Unavailable {
                extension,
                display_name,
                ..
            }
            | Route::Busy {
                extension,
                display_name,
                ..
            } => Party {
                user: extension.clone(),
                display_name: display_name.clone(),
                domain: tenant.domain.clone(),
            },
            Route::Group(group) => Party {
                user: group.number.to_string(),
                display_name: group.name.clone(),
                domain: tenant.domain.clone(),
            },
            Route::Ivr(ivr) => Party {
                user: ivr.number.to_string(),
                display_name: ivr.name.clone(),
                domain: tenant.domain.clone(),
            },
            Route::Queue(q) => Party {
                user: q.number.to_string(),
                display_name: q.name.clone(),
                domain: tenant.domain.clone(),
            },
            Route::AgentCode(c) => Party {
                user: c.code.clone(),
                display_name: String::new(),
                domain: tenant.domain.clone(),
            },
            Route::NotFound => Party {
                user: outbound.as_ref().map_or(dialled, |o| o.number.clone()),
                display_name: String::new(),
                domain: tenant.domain.clone(),
            },
        };
        let tag = cx.sv.ids.tag();
        let mut s = Session {
            id: session_id,
            tenant,
            caller_party: caller,
            callee_party: callee.clone(),
            started_ms: cx.clk.unix_ms,
            caller: Some(Caller::new(Leg::new(peer), invite, server, tag.clone())),
            origin: None,
            targets: Vec::new(),
            phase: Phase::Ringing,
            timers: TimerTable::default(),
            failures: Vec::new(),
            stage: reroute::Stage::default(),
            hops: 0,
            visited: Vec::new(),
            redirects: 0,
            relays: HashMap::new(),
            dialog_keys: Vec::new(),
            trunk: trunk::TrunkLegs::new(inbound),
            xfer: Default::default(),
            media: None,
            recording: Default::default(),
            pickup: Default::default(),
            apps: Default::default(),
        };
        s.own(cx, server, peer, TxnRole::CallerInvite);
        s.index(cx, (call_id.clone(), tag), LegRef::Caller);
        cx.emit(CallEventKind::SessionStarted(Box::new(SessionStart {
            session_id,
            tenant_id: s.tenant.id,
            tenant_name: s.tenant.name.clone(),
            call_id,
            direction,
            caller: s.caller_party.clone(),
            callee: callee.clone(),
            did: s.trunk.did().to_owned(),
            trunk_name: s.trunk.inbound_name().to_owned(),
            outbound_caller_id: String::new(),
            user_data: String::new(),
            // A carrier's caller is nobody's extension, whatever its number.
            caller_user: match s.trunk.inbound_name() {
                "" => cx.dir.user_id(s.tenant.id, &s.caller_party.user),
                _ => None,
            },
            callee_user: match route {
                Route::NotFound => None,
                _ => cx.dir.user_id(s.tenant.id, &callee.user),
            },
        })));
        s.anchor_media(cx, &route, outbound.is_some());
        if let Some(call) = outbound {
            s.ring_outbound(cx, call, None);
            return s;
        }
        if !matches!(route, Route::NotFound) {
            s.visited.push(callee.user.clone());
        }
        s.ring_route(cx, route, None);
        s
    }

    /// Adds `target` at the end of `targets`, which grows one slot at a
    /// time: most calls have one or two targets, and a doubling `Vec`
    /// keeps room for four from the first push (a `Target` is ~600 bytes;
    /// issue 18: memory per live call).
    fn push_target(&mut self, target: Target) {
        self.targets.reserve_exact(1);
        self.targets.push(target);
    }

    pub(crate) fn tenant_id(&self) -> TenantId {
        self.tenant.id
    }

    /// The dialogs of this session in the engine's index.
    pub(crate) fn dialog_keys(&self) -> &[DialogKey] {
        &self.dialog_keys
    }

    /// When [`Session::on_timeout`] must next run.
    pub(crate) fn next_deadline(&self) -> Option<std::time::Instant> {
        self.timers.next()
    }

    /// The users this call counts against now (the router's
    /// `max_concurrent_calls`): the caller, and the destination ringing
    /// or answered; nobody once the call is over.
    pub(crate) fn holds(&self) -> [Option<&str>; 2] {
        if self.is_over() {
            return [None, None];
        }
        let caller = self.caller_party.user.as_str();
        // While an originated call rings the caller, the stage is the caller.
        let stage = match &self.stage.group {
            Some(group) => group.holding(),
            None => Some(self.stage.extension.as_str()),
        }
        .filter(|e| !e.is_empty() && *e != caller);
        [Some(caller), stage]
    }

    /// `SessionEnded` was emitted (it may still absorb retransmissions).
    pub(crate) fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// Ended, and nothing left that needs the session: the engine drops
    /// it. What is still in flight needs only the transaction layer: a
    /// final response it retransmits until the ACK (Timer G/H), a BYE or
    /// CANCEL the PBX sent (their answers change nothing now), a request
    /// retransmission it answers again (Timer J). What does need the
    /// session: a 2xx the PBX sent and must see ACKed (`unacked`), and a
    /// target INVITE without its final response, since a 2xx crossing the
    /// CANCEL must be ACKed and hung up. Dropping at once, rather than
    /// when the last transaction ends (32 s for UDP), keeps memory to the
    /// calls in progress (issue 18).
    pub(crate) fn is_finished(&self) -> bool {
        self.phase == Phase::Over
            && self.legs().all(|l| l.unacked.is_none())
            && !self.targets.iter().any(|t| t.state.awaits_final())
    }

    /// The ACKs the PBX sent for targets' 2xx, by INVITE transaction:
    /// once the session is dropped the engine keeps them (and only them)
    /// until those transactions end, to answer a 2xx retransmitted because
    /// an ACK was lost (RFC 6026's Accepted state).
    pub(crate) fn lingering_acks(
        &self,
    ) -> impl Iterator<Item = (TransactionId, Peer, SentAck)> + '_ {
        self.targets.iter().filter_map(|t| {
            Some((
                t.txn,
                t.leg.peer,
                SentAck::clone(t.leg.last_ack.as_deref()?),
            ))
        })
    }

    /// The PBX ends the call itself (it is stopping): BYE on both legs of
    /// an answered call (`TargetEnded` and `SessionEnded` with `None`, as
    /// when a leg vanishes); for a call still ringing, every open target
    /// is CANCELled and fails with its own final answer to that, 487 (SPEC
    /// §2: not the 503 the caller gets), and the caller gets `503 Service
    /// Unavailable` (`SessionEnded` 503, `None`): the call is `fail`, not
    /// `noanswer`, because nobody gave up on it.
    pub(crate) fn hang_up_all(&mut self, cx: &mut Ctx<'_>) {
        match self.phase {
            Phase::Answered(b) => self.end_answered(cx, b, EndReason::NotApplicable, None),
            Phase::Ringing => {
                self.fail_all(cx, 487);
                self.fail_caller(cx, 503, "Service Unavailable", EndReason::NotApplicable);
            }
            Phase::Over => {}
        }
    }

    /// `POST /api/sessions/{id}/destroy`: the PBX ends the call as in
    /// [`Session::hang_up_all`], except that a caller still waiting gets
    /// `487 Request Terminated` (its request was ended, not refused for
    /// want of service): a ringing call ends `noanswer`, `"487"`, `None`,
    /// each target CANCELled with its own 487.
    pub(crate) fn destroy(&mut self, cx: &mut Ctx<'_>) {
        match self.phase {
            Phase::Ringing => {
                self.fail_all(cx, 487);
                self.fail_caller(cx, 487, "Request Terminated", EndReason::NotApplicable);
            }
            _ => self.hang_up_all(cx),
        }
    }

    /// An owned transaction ended.
    pub(crate) fn txn_terminated(&mut self, id: TransactionId) {
        self.relays.remove(&id);
    }

    /// An event of a transaction this session owns.
    pub(crate) fn on_txn_event(
        &mut self,
        cx: &mut Ctx<'_>,
        id: TransactionId,
        role: TxnRole,
        event: TransactionEvent,
    ) {
        match role {
            TxnRole::TargetInvite(i) if self.is_caller_device(i) => {
                self.on_device_event(cx, i, event)
            }
            TxnRole::TargetInvite(i) => self.on_target_event(cx, i, event),
            TxnRole::Relay => self.on_relay_event(cx, id, event),
            TxnRole::TransferJoin => self.on_join_event(cx, id, event),
            TxnRole::TransferOffer => self.on_offer_event(cx, id, event),
            TxnRole::PickupJoin => self.on_pickup_join_event(cx, id, event),
            TxnRole::CallerInvite | TxnRole::Cancel | TxnRole::Bye | TxnRole::Notify => {}
        }
    }

    /// A request inside one of this session's dialogs.
    pub(crate) fn on_request(
        &mut self,
        cx: &mut Ctx<'_>,
        leg: LegRef,
        id: TransactionId,
        request: Message,
    ) {
        let Some(method) = request.method().cloned() else {
            return;
        };
        let checked = match self.leg_mut(leg).and_then(|l| l.dialog.as_mut()) {
            None => Err(481),
            Some(d) => d.receive_request(&request).map_err(|e| e.status_code()),
        };
        if let Err(code) = checked {
            cx.reply(id, &request, code);
            return;
        }
        match method {
            Method::Bye => {
                cx.reply(id, &request, 200);
                self.on_bye(cx, leg);
            }
            Method::Options => {
                let b = ResponseBuilder::reply(&request, 200).header(HeaderName::Allow, ALLOW);
                cx.respond(id, b);
            }
            Method::Invite | Method::Update | Method::Info | Method::Message
                if leg == LegRef::Caller && self.in_app() =>
            {
                self.app_request(cx, id, request)
            }
            Method::Invite | Method::Update | Method::Info | Method::Message => {
                self.relay_request(cx, leg, id, request)
            }
            // The PBX subscribes to nothing (RFC 6665 §4.1.3).
            Method::Notify => cx.reply(id, &request, 481),
            Method::Other(_) => cx.reply(id, &request, 501),
            _ => {
                let b = ResponseBuilder::reply(&request, 405).header(HeaderName::Allow, ALLOW);
                cx.respond(id, b);
            }
        }
    }

    /// Time passed: each due timer, in the table's order.
    pub(crate) fn on_timeout(&mut self, cx: &mut Ctx<'_>) {
        let mut gave_up = false;
        for (timer, at) in self.timers.expired(cx.clk.now) {
            match timer {
                Timer::RingTimeout => {
                    if self.phase == Phase::Ringing {
                        self.ring_timed_out(cx);
                    }
                }
                Timer::GroupTimeout => self.group_timed_out(cx),
                Timer::GroupStep => self.group_step_timed_out(cx, at),
                Timer::Retransmit2xx(side) => self.retransmit_2xx(cx, side, at),
                Timer::AckTimeout(side) => gave_up |= self.ack_timed_out(side),
                Timer::TransferRing => self.transfer_ring_timed_out(cx),
                Timer::TransferRelease => self.release_referrers(cx),
                Timer::App => self.app_timer(cx),
                Timer::QueueAgent => self.queue_agents_timed_out(cx),
                Timer::QueueAnnounce => self.queue_announce(cx),
            }
        }
        if gave_up {
            // RFC 3261 §13.3.1.4: no ACK 64·T1 after the 2xx.
            self.abandon(cx);
        }
    }

    // ----- plumbing --------------------------------------------------------

    /// `SessionEnded` with the final response the caller got; every timer
    /// stops.
    fn end(&mut self, cx: &mut Ctx<'_>, status_code: u16, reason: EndReason) {
        if self.phase == Phase::Over {
            return;
        }
        self.phase = Phase::Over;
        self.timers.stop_ringing();
        self.pickup_call_over(cx);
        cx.emit(CallEventKind::SessionEnded(SessionEnd {
            status_code,
            reason,
            recording: None,
            recording_error: self.recording.error.take(),
        }));
        self.media_stop(cx);
    }

    fn own(&mut self, cx: &mut Ctx<'_>, txn: TransactionId, peer: Peer, role: TxnRole) {
        cx.fx.push(Effect::Own { txn, peer, role });
    }

    fn index(&mut self, cx: &mut Ctx<'_>, key: DialogKey, leg: LegRef) {
        cx.fx.push(Effect::Index {
            key: key.clone(),
            leg,
        });
        // One slot per leg, not a doubling `Vec`'s four (issue 18).
        self.dialog_keys.reserve_exact(1);
        self.dialog_keys.push(key);
    }

    /// Max-Forwards for the INVITEs this call sends (RFC 3261 §16.6: one
    /// less than the caller's, at most 70).
    fn max_forwards(&self) -> u8 {
        self.caller
            .as_ref()
            .and_then(|c| c.invite.max_forwards().ok().flatten())
            .map_or(70, |m| m.saturating_sub(1).min(70))
    }

    fn legs(&self) -> impl Iterator<Item = &Leg> {
        self.caller
            .iter()
            .map(|c| &c.leg)
            .chain(self.targets.iter().map(|t| &t.leg))
    }

    fn leg_mut(&mut self, leg: LegRef) -> Option<&mut Leg> {
        match leg {
            LegRef::Caller => self.caller.as_mut().map(|c| &mut c.leg),
            LegRef::Target(i) => self.targets.get_mut(i).map(|t| &mut t.leg),
        }
    }

    /// The dialog of `leg`, if it has one.
    fn dialog_mut(&mut self, leg: LegRef) -> Option<&mut Dialog> {
        self.leg_mut(leg).and_then(|l| l.dialog.as_mut())
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    /// What every live call holds inline, boxed in the engine's map and in
    /// its `targets` (`cdr`'s builder has its own; issue 18: 100,000 answered calls in < 1 GiB). A
    /// field that pushes these up belongs behind a `Box` when most calls
    /// leave it empty (see `LazyApps`, `Transfers::active`).
    #[test]
    fn a_live_call_stays_within_its_memory_budget() {
        assert!(
            size_of::<super::Session>() <= 1_600,
            "{}",
            size_of::<super::Session>()
        );
        assert!(
            size_of::<super::Target>() <= 600,
            "{}",
            size_of::<super::Target>()
        );
    }
}
