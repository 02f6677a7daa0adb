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
//! # Decisions
//!
//! - **SDP passes through.** Offers and answers are copied from leg to leg
//!   (INVITE, 18x, 2xx, ACK, re-INVITE, UPDATE), so media flows end to end.
//!   A late offer (INVITE without SDP) works because the ACK is relayed
//!   too: the callee's 2xx is ACKed when the caller's ACK arrives, with the
//!   caller's answer. Several devices sending early media (183 with SDP)
//!   all reach the caller's one early dialog; anchoring media will fix that.
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
//!   sense hop by hop are not relayed: 3xx (the PBX does not follow
//!   redirects yet), 401/407 (a device challenging the PBX) and 503 become
//!   `480`.
//! - **Before the answer, only the caller's CANCEL or BYE, and OPTIONS,
//!   are handled in dialog**; other in-dialog requests on an early dialog
//!   get `501` (with forking there is no single leg to relay them to).
//! - **Re-INVITE glare** (both sides at once, or one while another is in
//!   progress) is answered `491` (RFC 3261 §14.1).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cdr::{
    CallEvent, CallEventKind, CallType, Direction, EndReason, NoAnswerCause, Party, SessionEnd,
    SessionId, SessionStart, TargetAdded, TargetEnd, TargetId, TenantId, UnixMillis,
};
use sip::builder::{RequestBuilder, ResponseBuilder, default_reason};
use sip::dialog::{Dialog, DialogState};
use sip::transaction::{TransactionEvent, TransactionId};
use sip::transport::{Peer, Transport};
use sip::{HeaderName, Message, Method};

use crate::engine::{ALLOW, Clock, DialogKey, Output, Owner, Shared};
use crate::router::{Contact, Route};

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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Ringing,
    /// Target `n` answered.
    Answered(usize),
    /// `SessionEnded` was emitted.
    Over,
}

/// A 2xx to an INVITE the PBX sent on a leg, retransmitted until its ACK.
#[derive(Debug)]
struct Unacked {
    response: Message,
    cseq: u32,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

impl Unacked {
    fn new(
        response: Message,
        cseq: u32,
        now: Instant,
        timers: sip::transaction::TimerConfig,
    ) -> Self {
        Unacked {
            response,
            cseq,
            next: now + timers.t1,
            interval: timers.t1,
            give_up: now + timers.t1.saturating_mul(64),
        }
    }
}

/// What the caller leg and the target legs have in common.
#[derive(Debug)]
struct Leg {
    peer: Peer,
    dialog: Option<Dialog>,
    /// The 2xx the PBX sent on this leg, until the leg ACKs it.
    unacked: Option<Unacked>,
    /// A 2xx this leg sent to an INVITE the PBX relayed to it, not ACKed
    /// yet: the ACK goes when the other leg's ACK arrives.
    owed_ack: Option<Message>,
    /// The last ACK sent on this leg, sent again if its 2xx comes again.
    last_ack: Option<Message>,
    /// An INVITE transaction of the dialog is in progress (glare).
    invite_busy: bool,
}

impl Leg {
    fn new(peer: Peer) -> Self {
        Leg {
            peer,
            dialog: None,
            unacked: None,
            owed_ack: None,
            last_ack: None,
            invite_busy: false,
        }
    }
}

#[derive(Debug)]
struct Caller {
    leg: Leg,
    invite: Message,
    server: TransactionId,
    /// The PBX's To tag on this leg.
    tag: String,
    final_sent: bool,
}

#[derive(Debug)]
struct Target {
    leg: Leg,
    id: TargetId,
    invite: Message,
    txn: TransactionId,
    /// A provisional came: the INVITE can be cancelled (RFC 3261 §9.1).
    proceeding: bool,
    /// A final response came, or the INVITE gave up.
    finished: bool,
    rang: bool,
    /// Won the call.
    answered: bool,
    /// Answered after losing, and was sent ACK and BYE.
    hung_up_late: bool,
    /// No CDR end event (NoAnswer, Failed, Ended) yet.
    open: bool,
    /// Cancel at the first provisional.
    cancel_wanted: bool,
    cancel_sent: bool,
}

/// An in-dialog request relayed from one leg to the other.
#[derive(Debug)]
struct Relay {
    /// The server transaction of the request as received.
    server: TransactionId,
    request: Message,
    from: LegRef,
    to: LegRef,
    /// The final response was relayed back.
    done: bool,
}

/// One B2BUA call. See the module documentation.
#[derive(Debug)]
pub(crate) struct Session {
    id: SessionId,
    tenant: TenantInfo,
    caller_party: Party,
    caller: Caller,
    targets: Vec<Target>,
    phase: Phase,
    ring_deadline: Option<Instant>,
    /// Final failures of the targets, in arrival order.
    failures: Vec<(u16, String)>,
    relays: HashMap<TransactionId, Relay>,
    /// Owned transactions not terminated yet.
    live_txns: usize,
    dialog_keys: Vec<DialogKey>,
}

impl Session {
    /// Starts the session for an authenticated, routed INVITE: the CDR's
    /// `SessionStarted`, then either an immediate failure (`404`, `480`) or
    /// one target per contact.
    pub(crate) fn start(sh: &mut Shared, clk: Clock, start: Start) -> Session {
        let Start {
            session_id,
            tenant,
            caller,
            dialled,
            peer,
            invite,
            server,
            route,
        } = start;
        let call_id = invite.call_id().map(str::to_owned).unwrap_or_default();
        let max_forwards = invite
            .max_forwards()
            .ok()
            .flatten()
            .map_or(70, |m| m.saturating_sub(1).min(70));
        let callee = match &route {
            Route::Extension {
                extension,
                display_name,
                ..
            }
            | Route::Unavailable {
                extension,
                display_name,
            } => Party {
                user: extension.clone(),
                display_name: display_name.clone(),
                domain: tenant.domain.clone(),
            },
            Route::NotFound => Party {
                user: dialled,
                display_name: String::new(),
                domain: tenant.domain.clone(),
            },
        };
        let tag = sh.ids.tag();
        let mut s = Session {
            id: session_id,
            tenant,
            caller_party: caller,
            caller: Caller {
                leg: Leg::new(peer),
                invite,
                server,
                tag: tag.clone(),
                final_sent: false,
            },
            targets: Vec::new(),
            phase: Phase::Ringing,
            ring_deadline: None,
            failures: Vec::new(),
            relays: HashMap::new(),
            live_txns: 0,
            dialog_keys: Vec::new(),
        };
        s.own(sh, server, peer, TxnRole::CallerInvite);
        s.index(sh, (call_id.clone(), tag), LegRef::Caller);
        s.emit(
            sh,
            clk,
            CallEventKind::SessionStarted(Box::new(SessionStart {
                session_id,
                tenant_id: s.tenant.id,
                tenant_name: s.tenant.name.clone(),
                call_id,
                direction: Direction::Extension,
                caller: s.caller_party.clone(),
                callee,
                did: String::new(),
                trunk_name: String::new(),
                outbound_caller_id: String::new(),
                user_data: String::new(),
            })),
        );
        match route {
            Route::NotFound => s.fail_caller(sh, clk, 404, "Not Found", EndReason::NotApplicable),
            Route::Unavailable { .. } => s.fail_caller(
                sh,
                clk,
                480,
                "Temporarily Unavailable",
                EndReason::NotApplicable,
            ),
            Route::Extension {
                extension,
                ring_timeout,
                contacts,
                ..
            } => {
                for contact in contacts {
                    s.add_target(sh, clk, &extension, contact, max_forwards);
                }
                if s.targets.is_empty() {
                    s.fail_caller(
                        sh,
                        clk,
                        480,
                        "Temporarily Unavailable",
                        EndReason::NotApplicable,
                    );
                } else {
                    s.ring_deadline = Some(clk.now + ring_timeout);
                }
            }
        }
        s
    }

    /// The dialogs of this session in the engine's index.
    pub(crate) fn dialog_keys(&self) -> &[DialogKey] {
        &self.dialog_keys
    }

    /// When [`Session::on_timeout`] must next run.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let unacked = self
            .legs()
            .filter_map(|l| l.unacked.as_ref())
            .map(|u| u.next.min(u.give_up));
        self.ring_deadline.into_iter().chain(unacked).min()
    }

    /// `SessionEnded` was emitted (it may still absorb retransmissions).
    pub(crate) fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    /// The PBX ends the call itself (it is stopping): BYE on both legs of
    /// an answered call (`TargetEnded` and `SessionEnded` with `None`, as
    /// when a leg vanishes); for a call still ringing, every open target
    /// fails with 503 and is CANCELled, and the caller gets `503 Service
    /// Unavailable` (`SessionEnded` 503, `None`): the call is `fail`, not
    /// `noanswer`, because nobody gave up on it.
    pub(crate) fn hang_up_all(&mut self, sh: &mut Shared, clk: Clock) {
        match self.phase {
            Phase::Answered(w) => self.end_answered(sh, clk, w, EndReason::NotApplicable, None),
            Phase::Ringing => {
                for j in 0..self.targets.len() {
                    if self.targets[j].open {
                        self.targets[j].open = false;
                        let target = self.targets[j].id;
                        self.emit(
                            sh,
                            clk,
                            CallEventKind::TargetFailed {
                                target,
                                status_code: 503,
                            },
                        );
                        self.stop_target(sh, clk, j);
                    }
                }
                self.fail_caller(
                    sh,
                    clk,
                    503,
                    "Service Unavailable",
                    EndReason::NotApplicable,
                );
            }
            Phase::Over => {}
        }
    }

    /// Ended, and nothing of it in flight: the engine may drop it.
    pub(crate) fn is_finished(&self) -> bool {
        self.phase == Phase::Over && self.live_txns == 0 && self.legs().all(|l| l.unacked.is_none())
    }

    /// An owned transaction ended.
    pub(crate) fn txn_terminated(&mut self, id: TransactionId) {
        self.live_txns = self.live_txns.saturating_sub(1);
        self.relays.remove(&id);
    }

    /// An event of a transaction this session owns.
    pub(crate) fn on_txn_event(
        &mut self,
        sh: &mut Shared,
        clk: Clock,
        id: TransactionId,
        role: TxnRole,
        event: TransactionEvent,
    ) {
        match role {
            TxnRole::TargetInvite(i) => self.on_target_event(sh, clk, i, event),
            TxnRole::Relay => self.on_relay_event(sh, clk, id, event),
            TxnRole::CallerInvite | TxnRole::Cancel | TxnRole::Bye => {}
        }
    }

    /// The caller's CANCEL (RFC 3261 §9.2): `200` to it and, while nobody
    /// answered, `487` to the INVITE and CANCEL to every target.
    pub(crate) fn on_cancel(
        &mut self,
        sh: &mut Shared,
        clk: Clock,
        id: TransactionId,
        cancel: &Message,
    ) {
        let ok = ResponseBuilder::reply(cancel, 200).to_tag(&self.caller.tag);
        sh.respond(clk, Some(self.id), id, ok);
        if self.phase == Phase::Ringing && !self.caller.final_sent {
            self.caller_gave_up(sh, clk);
        }
    }

    /// A request inside one of this session's dialogs.
    pub(crate) fn on_request(
        &mut self,
        sh: &mut Shared,
        clk: Clock,
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
            self.reply(sh, clk, id, &request, code);
            return;
        }
        match method {
            Method::Bye => {
                self.reply(sh, clk, id, &request, 200);
                self.on_bye(sh, clk, leg);
            }
            Method::Options => {
                let b = ResponseBuilder::reply(&request, 200).header(HeaderName::Allow, ALLOW);
                sh.respond(clk, Some(self.id), id, b);
            }
            Method::Invite | Method::Update | Method::Info | Method::Message => {
                self.relay_request(sh, clk, leg, id, request)
            }
            Method::Other(_) => self.reply(sh, clk, id, &request, 501),
            _ => {
                let b = ResponseBuilder::reply(&request, 405).header(HeaderName::Allow, ALLOW);
                sh.respond(clk, Some(self.id), id, b);
            }
        }
    }

    /// An ACK on one of this session's dialogs: the ACK for a 2xx the PBX
    /// sent on that leg, relayed (with its SDP) as the ACK the other leg's
    /// 2xx is owed.
    pub(crate) fn on_ack(&mut self, sh: &mut Shared, leg: LegRef, ack: &Message) {
        let Ok(cseq) = ack.cseq() else {
            return;
        };
        let Some(l) = self.leg_mut(leg) else {
            return;
        };
        if let Some(d) = l.dialog.as_mut()
            && d.receive_request(ack).is_err()
        {
            return;
        }
        if l.unacked.as_ref().is_none_or(|u| u.cseq != cseq.seq) {
            return; // a retransmitted ACK, or one for a 2xx long settled
        }
        l.unacked = None;
        if let Some(other) = self.other(leg) {
            self.send_owed_ack(sh, other, body_of(ack));
        }
    }

    /// A 2xx to an INVITE that arrived after its transaction ended: the
    /// peer missed the PBX's ACK, which is sent again.
    pub(crate) fn on_stray_2xx(&mut self, sh: &mut Shared, leg: LegRef, ok: &Message) {
        if let Some(l) = self.leg_mut(leg) {
            resend_ack(sh, l, ok);
        }
    }

    /// Time passed: the ring timeout, 2xx retransmissions and the end of
    /// the wait for their ACK.
    pub(crate) fn on_timeout(&mut self, sh: &mut Shared, clk: Clock) {
        if self.ring_deadline.is_some_and(|at| at <= clk.now) {
            self.ring_deadline = None;
            if self.phase == Phase::Ringing {
                self.stop_all(sh, clk, NoAnswerCause::RingTimeout);
                self.fail_caller(sh, clk, 408, "Request Timeout", EndReason::NotApplicable);
            }
        }
        let t2 = sh.timers.t2;
        let mut gave_up = false;
        let legs = std::iter::once(&mut self.caller.leg)
            .chain(self.targets.iter_mut().map(|t| &mut t.leg));
        for l in legs {
            let Some(u) = l.unacked.as_mut() else {
                continue;
            };
            if u.give_up <= clk.now {
                l.unacked = None;
                gave_up = true;
                continue;
            }
            if u.next <= clk.now {
                sh.out.push_back(Output::Transmit {
                    peer: l.peer,
                    message: u.response.clone(),
                });
                u.interval = u.interval.saturating_mul(2).min(t2);
                u.next = match u.next.checked_add(u.interval) {
                    Some(at) if at > clk.now => at,
                    _ => clk.now + u.interval,
                };
            }
        }
        if gave_up {
            // RFC 3261 §13.3.1.4: no ACK 64·T1 after the 2xx.
            self.abandon(sh, clk);
        }
    }

    // ----- targets -------------------------------------------------------

    fn add_target(
        &mut self,
        sh: &mut Shared,
        clk: Clock,
        extension: &str,
        contact: Contact,
        max_forwards: u8,
    ) {
        let index = self.targets.len();
        let target_id = TargetId::from(sh.snowflake.next_id(UnixMillis(clk.unix_ms)));
        let call_id = sh.ids.call_id();
        let tag = sh.ids.tag();
        let local = sh.local_parts(contact.peer.transport);
        let display = &self.caller_party.display_name;
        let from = if display.is_empty() {
            format!(
                "<sip:{}@{}>;tag={tag}",
                self.caller_party.user, self.tenant.domain
            )
        } else {
            format!(
                "{} <sip:{}@{}>;tag={tag}",
                sip::text::quote(display),
                self.caller_party.user,
                self.tenant.domain
            )
        };
        let mut b = RequestBuilder::new(Method::Invite, &contact.uri)
            .header(HeaderName::Via, local.via())
            .header(HeaderName::MaxForwards, max_forwards)
            .header(HeaderName::From, from)
            .header(
                HeaderName::To,
                format!("<sip:{extension}@{}>", self.tenant.domain),
            )
            .header(HeaderName::CallId, &call_id)
            .header(HeaderName::CSeq, "1 INVITE")
            .header(HeaderName::Contact, &local.contact)
            .header(HeaderName::Allow, ALLOW)
            .header(HeaderName::XSessionId, self.id);
        if let Some((ct, body)) = body_of(&self.caller.invite) {
            b = b.body(&ct, body);
        }
        let invite = match b.build() {
            Ok(m) => m,
            Err(e) => {
                sh.internal(
                    Some(self.id),
                    format!("INVITE to {} does not build: {e}", contact.uri),
                );
                return;
            }
        };
        let txn = match sh.txns.send_request(clk.now, contact.peer, invite.clone()) {
            Ok(id) => id,
            Err(e) => {
                sh.internal(
                    Some(self.id),
                    format!("INVITE to {} refused: {e}", contact.uri),
                );
                return;
            }
        };
        self.own(sh, txn, contact.peer, TxnRole::TargetInvite(index));
        self.index(sh, (call_id, tag), LegRef::Target(index));
        self.targets.push(Target {
            leg: Leg::new(contact.peer),
            id: target_id,
            invite,
            txn,
            proceeding: false,
            finished: false,
            rang: false,
            answered: false,
            hung_up_late: false,
            open: true,
            cancel_wanted: false,
            cancel_sent: false,
        });
        self.emit(
            sh,
            clk,
            CallEventKind::TargetAdded(Box::new(TargetAdded {
                target: target_id,
                call_type: CallType::Normal,
                caller: self.caller_party.user.clone(),
                callee: extension.to_owned(),
                destination: contact.uri,
                trunk_name: String::new(),
                outbound_caller_id: String::new(),
                did: String::new(),
                reroute_reason: None,
            })),
        );
    }

    fn on_target_event(&mut self, sh: &mut Shared, clk: Clock, i: usize, event: TransactionEvent) {
        match event {
            TransactionEvent::Provisional(r) => self.target_provisional(sh, clk, i, &r),
            TransactionEvent::Final(r) if r.status().is_some_and(|c| c < 300) => {
                self.target_2xx(sh, clk, i, r)
            }
            TransactionEvent::Final(r) => {
                let code = r.status().unwrap_or(500);
                let reason = r
                    .reason_phrase()
                    .filter(|p| !p.is_empty())
                    .unwrap_or(default_reason(code))
                    .to_owned();
                self.target_failed(sh, clk, i, code, reason);
            }
            // RFC 3261 §8.1.3.1: a timeout is a 408, a transport error a 503.
            TransactionEvent::Timeout(_) => {
                self.target_failed(sh, clk, i, 408, default_reason(408).into())
            }
            TransactionEvent::TransportError => {
                self.target_failed(sh, clk, i, 503, default_reason(503).into())
            }
            TransactionEvent::Ack(_) | TransactionEvent::Terminated => {}
        }
    }

    fn target_provisional(&mut self, sh: &mut Shared, clk: Clock, i: usize, r: &Message) {
        let t = &mut self.targets[i];
        t.proceeding = true;
        if t.cancel_wanted {
            self.send_cancel(sh, clk, i);
            return;
        }
        let code = r.status().unwrap_or(100);
        if code == 100 || !t.open || self.phase != Phase::Ringing {
            return;
        }
        if r.to().is_ok_and(|to| to.tag().is_some()) {
            match t.leg.dialog.as_mut() {
                None => t.leg.dialog = Dialog::uac(&t.invite, r).ok(),
                Some(d) => {
                    // Another To tag is another fork downstream: keep the first.
                    let _ = d.receive_response(r);
                }
            }
        }
        if !t.rang {
            t.rang = true;
            let target = t.id;
            self.emit(sh, clk, CallEventKind::TargetRinging { target });
        }
        self.relay_provisional(sh, clk, r);
    }

    /// A 18x relayed to the caller, in the caller leg's one early dialog.
    fn relay_provisional(&mut self, sh: &mut Shared, clk: Clock, r: &Message) {
        if self.caller.final_sent {
            return;
        }
        let code = r.status().unwrap_or(180);
        let reason = r.reason_phrase().unwrap_or(default_reason(code));
        let mut b = ResponseBuilder::for_request(&self.caller.invite, code, reason)
            .to_tag(&self.caller.tag)
            .header(
                HeaderName::Contact,
                sh.contact(self.caller.leg.peer.transport),
            );
        if let Some((ct, body)) = body_of(r) {
            b = b.body(&ct, body);
        }
        if let Some(sent) = sh.respond(clk, Some(self.id), self.caller.server, b) {
            self.caller_response_sent(sh, &sent);
        }
    }

    fn target_2xx(&mut self, sh: &mut Shared, clk: Clock, i: usize, ok: Message) {
        let t = &mut self.targets[i];
        if t.answered || t.hung_up_late {
            let same = t.leg.dialog.as_ref().is_some_and(|d| {
                Some(d.id().remote_tag.as_str()) == ok.to().ok().and_then(|to| to.tag())
            });
            if !same {
                // A second 2xx with another To tag: a fork downstream.
                let (peer, invite) = (t.leg.peer, t.invite.clone());
                self.ack_and_bye(sh, clk, peer, &invite, &ok);
            } else if t.leg.owed_ack.is_none() {
                // The callee missed our ACK. (While the ACK is still owed,
                // the caller's ACK is awaited; nothing to do.)
                resend_ack(sh, &mut t.leg, &ok);
            }
            return;
        }
        t.finished = true;
        if self.phase != Phase::Ringing || !t.open {
            // Lost the race with the winner, the caller's CANCEL or the
            // ring timeout: take the call and hang it up.
            t.hung_up_late = true;
            let (peer, invite) = (t.leg.peer, t.invite.clone());
            if let Some((dialog, ack)) = self.ack_and_bye(sh, clk, peer, &invite, &ok) {
                let t = &mut self.targets[i];
                t.leg.dialog = Some(dialog);
                t.leg.last_ack = Some(ack);
            }
            return;
        }
        // The winner.
        let dialog = match t.leg.dialog.take() {
            Some(mut d)
                if Some(d.id().remote_tag.as_str()) == ok.to().ok().and_then(|to| to.tag()) =>
            {
                d.receive_response(&ok).map(|()| d)
            }
            _ => Dialog::uac(&t.invite, &ok),
        };
        let dialog = match dialog {
            Ok(d) => d,
            Err(e) => {
                // A 2xx the PBX cannot build a dialog from (no Contact):
                // it cannot be ACKed properly, so the target failed.
                sh.internal(Some(self.id), format!("unusable 2xx from a target: {e}"));
                self.target_failed(sh, clk, i, 502, default_reason(502).into());
                return;
            }
        };
        let t = &mut self.targets[i];
        t.leg.dialog = Some(dialog);
        t.answered = true;
        t.open = false;
        let target = t.id;
        t.leg.owed_ack = Some(ok.clone());
        self.phase = Phase::Answered(i);
        self.ring_deadline = None;
        self.emit(sh, clk, CallEventKind::TargetAnswered { target });
        for j in 0..self.targets.len() {
            if self.targets[j].open {
                self.targets[j].open = false;
                let target = self.targets[j].id;
                self.emit(
                    sh,
                    clk,
                    CallEventKind::TargetNoAnswer {
                        target,
                        cause: NoAnswerCause::AnsweredElsewhere,
                    },
                );
                self.stop_target(sh, clk, j);
            }
        }
        let mut b = ResponseBuilder::for_request(&self.caller.invite, 200, "OK")
            .to_tag(&self.caller.tag)
            .header(
                HeaderName::Contact,
                sh.contact(self.caller.leg.peer.transport),
            )
            .header(HeaderName::Allow, ALLOW)
            .header(HeaderName::XSessionId, self.id);
        if let Some((ct, body)) = body_of(&ok) {
            b = b.body(&ct, body);
        }
        self.caller.final_sent = true;
        if let Some(sent) = sh.respond(clk, Some(self.id), self.caller.server, b) {
            self.caller_response_sent(sh, &sent);
            let cseq = self.caller.invite.cseq().map_or(0, |c| c.seq);
            self.caller.leg.unacked = Some(Unacked::new(sent, cseq, clk.now, sh.timers));
        }
    }

    fn target_failed(&mut self, sh: &mut Shared, clk: Clock, i: usize, code: u16, reason: String) {
        let t = &mut self.targets[i];
        t.finished = true;
        if let Some(d) = t.leg.dialog.as_mut()
            && d.state() == DialogState::Early
        {
            d.terminate();
        }
        if !t.open || self.phase != Phase::Ringing {
            return;
        }
        t.open = false;
        let target = t.id;
        self.emit(
            sh,
            clk,
            CallEventKind::TargetFailed {
                target,
                status_code: code,
            },
        );
        self.failures.push((code, reason));
        if self.targets.iter().all(|t| !t.open) {
            let (code, reason) = best_failure(&self.failures);
            self.fail_caller(sh, clk, code, &reason, EndReason::NotApplicable);
        }
    }

    /// Stops ringing every open target (`TargetNoAnswer` with `cause`).
    fn stop_all(&mut self, sh: &mut Shared, clk: Clock, cause: NoAnswerCause) {
        for j in 0..self.targets.len() {
            if self.targets[j].open {
                self.targets[j].open = false;
                let target = self.targets[j].id;
                self.emit(sh, clk, CallEventKind::TargetNoAnswer { target, cause });
                self.stop_target(sh, clk, j);
            }
        }
    }

    /// CANCELs target `j`'s INVITE now, or at its first provisional.
    fn stop_target(&mut self, sh: &mut Shared, clk: Clock, j: usize) {
        let t = &mut self.targets[j];
        if t.finished {
            return;
        }
        if t.proceeding {
            self.send_cancel(sh, clk, j);
        } else {
            t.cancel_wanted = true;
        }
    }

    fn send_cancel(&mut self, sh: &mut Shared, clk: Clock, j: usize) {
        let t = &mut self.targets[j];
        if t.cancel_sent || t.finished {
            return;
        }
        t.cancel_sent = true;
        let (txn, peer) = (t.txn, t.leg.peer);
        match sh.txns.cancel(clk.now, txn) {
            Ok(cancel) => self.own(sh, cancel, peer, TxnRole::Cancel),
            Err(e) => sh.internal(Some(self.id), format!("CANCEL refused: {e}")),
        }
    }

    /// ACKs a 2xx the PBX does not want and hangs the dialog up; returns the
    /// dialog and the ACK, to answer retransmissions of the 2xx.
    fn ack_and_bye(
        &mut self,
        sh: &mut Shared,
        clk: Clock,
        peer: Peer,
        invite: &Message,
        ok: &Message,
    ) -> Option<(Dialog, Message)> {
        let mut dialog = match Dialog::uac(invite, ok) {
            Ok(d) => d,
            Err(e) => {
                sh.internal(
                    Some(self.id),
                    format!("unusable 2xx from a losing target: {e}"),
                );
                return None;
            }
        };
        let local = sh.local_parts(peer.transport);
        let ack = match dialog.ack(ok, &local.local()).and_then(|b| Ok(b.build()?)) {
            Ok(ack) => ack,
            Err(e) => {
                sh.internal(Some(self.id), format!("ACK does not build: {e}"));
                return None;
            }
        };
        sh.out.push_back(Output::Transmit {
            peer,
            message: ack.clone(),
        });
        if let Some(id) = send_bye(sh, clk, self.id, peer, &mut dialog) {
            self.own(sh, id, peer, TxnRole::Bye);
        }
        Some((dialog, ack))
    }

    // ----- the caller ----------------------------------------------------

    /// The caller cancelled (CANCEL, or BYE on the early dialog).
    fn caller_gave_up(&mut self, sh: &mut Shared, clk: Clock) {
        self.stop_all(sh, clk, NoAnswerCause::CallerCancelled);
        self.fail_caller(sh, clk, 487, "Request Terminated", EndReason::Cancelled);
    }

    /// Sends the caller a final failure and ends the session.
    fn fail_caller(
        &mut self,
        sh: &mut Shared,
        clk: Clock,
        code: u16,
        reason: &str,
        why: EndReason,
    ) {
        if !self.caller.final_sent {
            self.caller.final_sent = true;
            let b = ResponseBuilder::for_request(&self.caller.invite, code, reason)
                .to_tag(&self.caller.tag);
            if let Some(sent) = sh.respond(clk, Some(self.id), self.caller.server, b)
                && let Some(d) = self.caller.leg.dialog.as_mut()
            {
                let _ = d.response_sent(&sent);
            }
        }
        self.end(sh, clk, code, why);
    }

    /// A tagged response sent on the caller leg: creates its dialog, or
    /// moves it on.
    fn caller_response_sent(&mut self, sh: &mut Shared, sent: &Message) {
        match self.caller.leg.dialog.as_mut() {
            Some(d) => {
                let _ = d.response_sent(sent);
            }
            None => {
                let tls = matches!(
                    self.caller.leg.peer.transport,
                    Transport::Tls | Transport::Wss
                );
                let seq = sh.ids.first_cseq();
                match Dialog::uas(&self.caller.invite, sent, tls, seq) {
                    Ok(d) => self.caller.leg.dialog = Some(d),
                    Err(e) => sh.internal(Some(self.id), format!("caller dialog: {e}")),
                }
            }
        }
    }

    // ----- the answered call ---------------------------------------------

    fn on_bye(&mut self, sh: &mut Shared, clk: Clock, leg: LegRef) {
        match (self.phase, leg) {
            (Phase::Answered(w), LegRef::Caller) => {
                self.end_answered(sh, clk, w, EndReason::CallerDisconnect, Some(leg))
            }
            (Phase::Answered(w), LegRef::Target(i)) if i == w => {
                self.end_answered(sh, clk, w, EndReason::CalleeDisconnect, Some(leg))
            }
            (Phase::Ringing, LegRef::Caller) => self.caller_gave_up(sh, clk),
            // A losing or ended leg: its BYE was answered, nothing else.
            _ => {}
        }
    }

    /// The answered call ends: `TargetEnded` and `SessionEnded` with
    /// `reason`, BYE to every leg but the one that hung up (`by`).
    fn end_answered(
        &mut self,
        sh: &mut Shared,
        clk: Clock,
        w: usize,
        reason: EndReason,
        by: Option<LegRef>,
    ) {
        let target = self.targets[w].id;
        self.emit(
            sh,
            clk,
            CallEventKind::TargetEnded(TargetEnd {
                target,
                reason,
                cost: None,
                quality: None,
            }),
        );
        self.end(sh, clk, 200, reason);
        self.caller.leg.unacked = None;
        self.targets[w].leg.unacked = None;
        for leg in [LegRef::Caller, LegRef::Target(w)] {
            if by != Some(leg) {
                self.hang_up(sh, clk, leg);
            }
        }
    }

    /// A leg vanished: end the answered call with `None`.
    fn abandon(&mut self, sh: &mut Shared, clk: Clock) {
        if let Phase::Answered(w) = self.phase {
            self.end_answered(sh, clk, w, EndReason::NotApplicable, None);
        }
    }

    /// BYE on `leg` (after the ACK it is owed, if any).
    fn hang_up(&mut self, sh: &mut Shared, clk: Clock, leg: LegRef) {
        self.send_owed_ack(sh, leg, None);
        let id = self.id;
        let Some(l) = self.leg_mut(leg) else {
            return;
        };
        let peer = l.peer;
        let Some(d) = l.dialog.as_mut() else {
            return;
        };
        if d.state() == DialogState::Terminated {
            return;
        }
        if let Some(txn) = send_bye(sh, clk, id, peer, d) {
            self.own(sh, txn, peer, TxnRole::Bye);
        }
    }

    /// The ACK `leg` is owed for its 2xx, with `body` (the other leg's
    /// answer, for a late offer).
    fn send_owed_ack(&mut self, sh: &mut Shared, leg: LegRef, body: Option<(String, Bytes)>) {
        let id = self.id;
        let Some(l) = self.leg_mut(leg) else {
            return;
        };
        let Some(ok) = l.owed_ack.take() else {
            return;
        };
        let Some(d) = l.dialog.as_ref() else {
            return;
        };
        let local = sh.local_parts(l.peer.transport);
        let ack = d.ack(&ok, &local.local()).and_then(|b| {
            let b = match body {
                Some((ct, body)) => b.body(&ct, body),
                None => b,
            };
            Ok(b.build()?)
        });
        match ack {
            Ok(ack) => {
                sh.out.push_back(Output::Transmit {
                    peer: l.peer,
                    message: ack.clone(),
                });
                l.last_ack = Some(ack);
            }
            Err(e) => sh.internal(Some(id), format!("ACK does not build: {e}")),
        }
    }

    /// Relays an in-dialog request to the other leg of the answered call.
    fn relay_request(
        &mut self,
        sh: &mut Shared,
        clk: Clock,
        from: LegRef,
        server: TransactionId,
        request: Message,
    ) {
        let Some(to) = self.other(from) else {
            let code = if self.phase == Phase::Over { 481 } else { 501 };
            self.reply(sh, clk, server, &request, code);
            return;
        };
        let method = request.method().cloned().unwrap_or(Method::Info);
        let is_invite = method == Method::Invite;
        if is_invite
            && self
                .legs_pair(from, to)
                .is_some_and(|(a, b)| a.invite_busy || b.invite_busy)
        {
            self.reply(sh, clk, server, &request, 491);
            return;
        }
        let session = self.id;
        let Some(l) = self.leg_mut(to) else {
            return;
        };
        let peer = l.peer;
        let Some(d) = l.dialog.as_mut() else {
            self.reply(sh, clk, server, &request, 481);
            return;
        };
        let local = sh.local_parts(peer.transport);
        let built = d.request(method.clone(), &local.local()).and_then(|mut b| {
            if is_invite {
                b = b
                    .header(HeaderName::Allow, ALLOW)
                    .header(HeaderName::XSessionId, session);
            }
            for name in ["Content-Disposition", "Info-Package"] {
                if let Some(v) = request.header_named(name) {
                    b = b.header_named(name, v);
                }
            }
            if let Some((ct, body)) = body_of(&request) {
                b = b.body(&ct, body);
            }
            Ok(b.build()?)
        });
        let txn = built.map_err(|e| e.to_string()).and_then(|m| {
            sh.txns
                .send_request(clk.now, peer, m)
                .map_err(|e| e.to_string())
        });
        let txn = match txn {
            Ok(txn) => txn,
            Err(e) => {
                sh.internal(Some(session), format!("relayed {method} refused: {e}"));
                self.reply(sh, clk, server, &request, 500);
                return;
            }
        };
        self.own(sh, txn, peer, TxnRole::Relay);
        if is_invite && let Some((a, b)) = self.legs_pair(from, to) {
            a.invite_busy = true;
            b.invite_busy = true;
        }
        self.relays.insert(
            txn,
            Relay {
                server,
                request,
                from,
                to,
                done: false,
            },
        );
    }

    fn on_relay_event(
        &mut self,
        sh: &mut Shared,
        clk: Clock,
        txn: TransactionId,
        event: TransactionEvent,
    ) {
        let Some(relay) = self.relays.get(&txn) else {
            return;
        };
        let (server, from, to, done) = (relay.server, relay.from, relay.to, relay.done);
        let request = relay.request.clone();
        let is_invite = request.method() == Some(&Method::Invite);
        match event {
            TransactionEvent::Provisional(r) => {
                if is_invite && !done && r.status().is_some_and(|c| c > 100) {
                    sh.respond(clk, Some(self.id), server, relayed_response(&request, &r));
                }
            }
            TransactionEvent::Final(r) => {
                let code = r.status().unwrap_or(500);
                let success = (200..300).contains(&code);
                if let Some(d) = self.leg_mut(to).and_then(|l| l.dialog.as_mut()) {
                    let _ = d.receive_response(&r);
                }
                if done {
                    if is_invite
                        && success
                        && let Some(l) = self.leg_mut(to)
                        && l.owed_ack.is_none()
                    {
                        resend_ack(sh, l, &r);
                    }
                    return;
                }
                if let Some(relay) = self.relays.get_mut(&txn) {
                    relay.done = true;
                }
                let mut b = relayed_response(&request, &r);
                let from_peer = self.leg_mut(from).map(|l| l.peer);
                if success
                    && (is_invite || request.method() == Some(&Method::Update))
                    && let Some(peer) = from_peer
                {
                    b = b.header(HeaderName::Contact, sh.contact(peer.transport));
                }
                if success && is_invite {
                    b = b
                        .header(HeaderName::Allow, ALLOW)
                        .header(HeaderName::XSessionId, self.id);
                }
                let sent = sh.respond(clk, Some(self.id), server, b);
                if is_invite {
                    if let Some((a, b)) = self.legs_pair(from, to) {
                        a.invite_busy = false;
                        b.invite_busy = false;
                    }
                    if success {
                        if let Some(l) = self.leg_mut(to) {
                            l.owed_ack = Some(r);
                        }
                        if self.phase == Phase::Over {
                            // The call ended meanwhile: ACK at once.
                            self.send_owed_ack(sh, to, None);
                        } else if let (Some(sent), Some(l)) = (sent, self.leg_mut(from)) {
                            let cseq = request.cseq().map_or(0, |c| c.seq);
                            l.unacked = Some(Unacked::new(sent, cseq, clk.now, sh.timers));
                        }
                    }
                }
                if matches!(code, 408 | 481) {
                    self.abandon(sh, clk);
                }
            }
            TransactionEvent::Timeout(_) | TransactionEvent::TransportError => {
                if !done {
                    if let Some(relay) = self.relays.get_mut(&txn) {
                        relay.done = true;
                    }
                    let b = ResponseBuilder::reply(&request, 408);
                    sh.respond(clk, Some(self.id), server, b);
                    if let Some((a, b)) = self.legs_pair(from, to) {
                        a.invite_busy = false;
                        b.invite_busy = false;
                    }
                }
                self.abandon(sh, clk);
            }
            TransactionEvent::Ack(_) | TransactionEvent::Terminated => {}
        }
    }

    // ----- plumbing --------------------------------------------------------

    /// `SessionEnded` with the final response the caller got.
    fn end(&mut self, sh: &mut Shared, clk: Clock, status_code: u16, reason: EndReason) {
        if self.phase == Phase::Over {
            return;
        }
        self.phase = Phase::Over;
        self.ring_deadline = None;
        self.emit(
            sh,
            clk,
            CallEventKind::SessionEnded(SessionEnd {
                status_code,
                reason,
                recording: None,
            }),
        );
    }

    fn emit(&self, sh: &mut Shared, clk: Clock, kind: CallEventKind) {
        sh.out.push_back(Output::CallEvent {
            session: self.id,
            tenant: self.tenant.id,
            event: CallEvent::new(UnixMillis(clk.unix_ms), kind),
        });
    }

    fn reply(&self, sh: &mut Shared, clk: Clock, id: TransactionId, request: &Message, code: u16) {
        sh.respond(
            clk,
            Some(self.id),
            id,
            ResponseBuilder::reply(request, code),
        );
    }

    fn own(&mut self, sh: &mut Shared, id: TransactionId, peer: Peer, role: TxnRole) {
        sh.owners.insert(
            id,
            Owner {
                session: self.id,
                peer,
                role,
            },
        );
        self.live_txns += 1;
    }

    fn index(&mut self, sh: &mut Shared, key: DialogKey, leg: LegRef) {
        sh.dialogs.insert(key.clone(), (self.id, leg));
        self.dialog_keys.push(key);
    }

    fn legs(&self) -> impl Iterator<Item = &Leg> {
        std::iter::once(&self.caller.leg).chain(self.targets.iter().map(|t| &t.leg))
    }

    fn leg_mut(&mut self, leg: LegRef) -> Option<&mut Leg> {
        match leg {
            LegRef::Caller => Some(&mut self.caller.leg),
            LegRef::Target(i) => self.targets.get_mut(i).map(|t| &mut t.leg),
        }
    }

    /// Both legs of the answered call, in the order asked.
    fn legs_pair(&mut self, a: LegRef, b: LegRef) -> Option<(&mut Leg, &mut Leg)> {
        match (a, b) {
            (LegRef::Caller, LegRef::Target(i)) => {
                let t = self.targets.get_mut(i)?;
                Some((&mut self.caller.leg, &mut t.leg))
            }
            (LegRef::Target(i), LegRef::Caller) => {
                let t = self.targets.get_mut(i)?;
                Some((&mut t.leg, &mut self.caller.leg))
            }
            _ => None,
        }
    }

    /// The leg a request on `leg` is relayed to: the other side of the
    /// answered call.
    fn other(&self, leg: LegRef) -> Option<LegRef> {
        match (self.phase, leg) {
            (Phase::Answered(w), LegRef::Caller) => Some(LegRef::Target(w)),
            (Phase::Answered(w), LegRef::Target(i)) if i == w => Some(LegRef::Caller),
            _ => None,
        }
    }
}

/// BYE in `dialog`, in a client transaction of its own.
fn send_bye(
    sh: &mut Shared,
    clk: Clock,
    session: SessionId,
    peer: Peer,
    dialog: &mut Dialog,
) -> Option<TransactionId> {
    let local = sh.local_parts(peer.transport);
    let bye = dialog
        .bye(&local.local())
        .map_err(|e| e.to_string())
        .and_then(|b| b.build().map_err(|e| e.to_string()))
        .and_then(|m| {
            sh.txns
                .send_request(clk.now, peer, m)
                .map_err(|e| e.to_string())
        });
    match bye {
        Ok(id) => Some(id),
        Err(e) => {
            sh.internal(Some(session), format!("BYE not sent: {e}"));
            None
        }
    }
}

/// Sends `leg`'s last ACK again if it acknowledged `ok` (same To tag and CSeq).
fn resend_ack(sh: &mut Shared, leg: &mut Leg, ok: &Message) {
    let Some(ack) = &leg.last_ack else {
        return;
    };
    let tag = |m: &Message| m.to().ok().and_then(|t| t.tag().map(str::to_owned));
    let seq = |m: &Message| m.cseq().ok().map(|c| c.seq);
    if tag(ack) == tag(ok) && seq(ack) == seq(ok) {
        sh.out.push_back(Output::Transmit {
            peer: leg.peer,
            message: ack.clone(),
        });
    }
}

/// The Content-Type and body of a message that has one.
fn body_of(m: &Message) -> Option<(String, Bytes)> {
    if m.body().is_empty() {
        return None;
    }
    let ct = m.content_type().unwrap_or("application/sdp").to_owned();
    Some((ct, m.body_bytes()))
}

/// `request`'s response carrying `r`'s code, reason phrase and body.
fn relayed_response(request: &Message, r: &Message) -> ResponseBuilder {
    let code = r.status().unwrap_or(500);
    let reason = r.reason_phrase().unwrap_or(default_reason(code));
    let b = ResponseBuilder::for_request(request, code, reason);
    match body_of(r) {
        Some((ct, body)) => b.body(&ct, body),
        None => b,
    }
}

/// The final response the caller gets when every target failed (see the
/// module decisions).
fn best_failure(failures: &[(u16, String)]) -> (u16, String) {
    let class = failures.iter().map(|(c, _)| c / 100).min();
    let pick = failures
        .iter()
        .find(|(c, _)| *c >= 600)
        .or_else(|| failures.iter().find(|(c, _)| Some(c / 100) == class));
    match pick {
        None | Some((300..=399 | 401 | 407 | 503, _)) => (480, default_reason(480).to_owned()),
        Some((code, reason)) => (*code, reason.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(list: &[u16]) -> u16 {
        let failures: Vec<(u16, String)> = list.iter().map(|&c| (c, String::new())).collect();
        best_failure(&failures).0
    }

    #[test]
    fn best_failure_follows_rfc_3261_16_7() {
        assert_eq!(f(&[486]), 486);
        assert_eq!(f(&[486, 603]), 603);
        assert_eq!(f(&[486, 480]), 486);
        assert_eq!(f(&[500, 486]), 486);
        assert_eq!(f(&[302]), 480);
        assert_eq!(f(&[407]), 480);
        assert_eq!(f(&[503]), 480);
        assert_eq!(f(&[]), 480);
    }
}
