//! Blind transfer (RFC 3515 REFER; RFC 5589 practice): a party of the
//! answered call (the caller leg or the bridged target) REFERs it to a
//! number of the tenant, and the PBX calls that number as a new target of
//! the same session.
//!
//! ```text
//!  B ── REFER (Refer-To: C) ──▶ PBX       checked (below); 202, NOTIFY "100 Trying"
//!        PBX ── INVITE (no SDP) ──▶ C      TargetAdded per device of C (A↔B still bridged)
//!        PBX ◀── 200 (C's offer) ── C      TargetAnswered (other devices of C CANCELled)
//!  A ◀── re-INVITE (C's offer) ── PBX
//!  A ── 200 (answer) ──▶ PBX ── ACK (answer) ──▶ C, ACK ──▶ A: A↔C bridged,
//!        call_update_info, NOTIFY "200 OK" (terminated) to B
//!  B ── BYE ──▶ PBX                        B's target ends blind_transfer_complete
//! ```
//!
//! # Decisions
//!
//! - **Policy: `blind_transfer_complete`, never `referred`.** The PBX does
//!   not tear B down on accepting the REFER: B stays bridged with A (which
//!   it normally holds) while C rings, because the NOTIFY reporting C's
//!   final status needs B's dialog, and a failed transfer is recalled to B
//!   (below). B's target ends `blind_transfer_complete` when B hangs up
//!   after its REFER was accepted, at its BYE (before or after the NOTIFY
//!   200: phones that do not wait for the NOTIFY hand the call on all the
//!   same), or when the PBX releases it itself: [`RELEASE_AFTER`] after
//!   the NOTIFY 200 if B has not hung up (BYE from the PBX, same reason).
//! - **Offer/answer: late offer to C, then a re-INVITE of A** (RFC 3725
//!   flow I, as `originate.rs`). C is INVITEd without SDP; its 200 holds
//!   C's offer, which goes to A in a re-INVITE; A's answer goes to C in the
//!   ACK. The PBX writes no SDP of its own and both ends get a fresh,
//!   valid offer/answer exchange (A's re-INVITE also takes it off hold).
//!   A re-INVITE A refuses (or that times out) fails the transfer: C is
//!   ACKed with an answer rejecting its streams and sent BYE.
//! - **C fails** (every device refused, its ring timeout, or A's
//!   re-INVITE failed): B gets a NOTIFY with C's final status line
//!   (terminated). With `transfer.on_failure = "recall"` (the default)
//!   and B still up, the call simply stays A↔B (B resumes it); with
//!   `"hangup"`, or when B is gone, the PBX hangs up what is left and the
//!   session ends `None`. C's failure is its own target's.
//! - **`call_update_info` fires when the parties change**, at the join:
//!   the callee becomes C (and, when the caller referred, the caller
//!   becomes B, the party left in the call). A transfer that fails changes
//!   no identity.
//! - **What is checked** (each refusal is a 4xx and the call goes on):
//!   the REFER comes from a leg of the answered pair and from that leg's
//!   peer (`403`); no transfer or relayed re-INVITE is in progress (`491`,
//!   try again); exactly one Refer-To that parses (`400`); its user part
//!   is not a party of this call (`403`) and routes (`transfer_route.rs`):
//!   an extension of the tenant (with a registered device, or it fails at
//!   once: accepted, the NOTIFY says 480 or 486), a ring group, or a
//!   number an outbound rule takes out by a trunk (the referrer's
//!   permission and the tenant's limits checked: `403`/`503`); else `404`.
//! - **Glare and races**: a REFER while a re-INVITE is relayed gets `491`;
//!   a re-INVITE from either side while C's join is in flight gets `491`
//!   (the join owns the bridge's re-INVITE slot); A hanging up while C
//!   rings CANCELs C (`cancelled`, 487) and ends the call as usual; a 2xx
//!   from C after that is ACKed and hung up like any late 2xx.

use std::time::Duration;

use cdr::{CallEventKind, EndReason, NoAnswerCause, Party, TargetEnd};
use sip::builder::{ResponseBuilder, default_reason};
use sip::dialog::{Dialog, DialogState};
use sip::headers::ReferTo;
use sip::transaction::{TransactionEvent, TransactionId};
use sip::transport::Peer;
use sip::uri::Uri;
use sip::{HeaderName, Message};

use super::bridge::Bridge;
use super::effect::Ctx;
use super::fork::TargetState;
use super::leg::{SentAck, body_of};
use super::reroute::Stage;
use super::timer::Timer;
use super::transfer_route::Destination;
use super::{LegRef, Phase, Session, TxnRole};
use crate::context::{ALLOW, InternalError, Written};

/// How long the PBX waits for the referrer's BYE after the NOTIFY that
/// reported the transfer's 200 before it hangs the referrer up itself.
pub const RELEASE_AFTER: Duration = Duration::from_secs(5);

/// `transfer.on_failure`: what a failed transfer leaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TransferOnFailure {
    /// The call goes back to the referrer, if it is still up (it never
    /// left the bridge); else it ends.
    #[default]
    Recall,
    /// The call ends.
    Hangup,
}

/// The transfer in progress.
#[derive(Debug)]
pub(super) struct Transfer {
    /// Attended: the adopted target's offer re-INVITE is in flight.
    pub offering: Option<(usize, TransactionId)>,
    /// The leg that sent the REFER (B).
    pub referrer: LegRef,
    /// The leg that stays in the call (A).
    pub remaining: LegRef,
    /// The REFER's CSeq: the `id` of its NOTIFYs' Event.
    pub refer_id: u32,
    /// C's targets are `first..` of the session's targets.
    pub first: usize,
    /// Index of C's first failure in `Session::failures`.
    pub first_failure: usize,
    /// C as `call_update_info` names it.
    pub party: Party,
    /// Who C's INVITE shows as calling (the party staying in the call).
    pub presented: (String, String),
    /// The stage before C rang (restored if C fails).
    pub previous_stage: Stage,
    /// C answered (target `c`) and the remaining leg's re-INVITE (`txn`)
    /// is in flight.
    pub joining: Option<(usize, TransactionId)>,
    /// The referrer hung up while C was being reached.
    pub referrer_gone: bool,
    /// Why the referrer's leg ends.
    pub reason: EndReason,
}

/// What a session keeps about transfers: the one in progress, and the legs
/// a transfer took out of the call.
#[derive(Debug, Default)]
pub(super) struct Transfers {
    /// Boxed: most calls are never transferred, and inline a `Transfer`
    /// made every session ~470 bytes larger (issue 18: memory per live
    /// call).
    pub active: Option<Box<Transfer>>,
    /// Legs whose part in the call is over (their CDR target ended): the
    /// bridge and the call's end leave them alone.
    ended: Vec<LegRef>,
    /// Referrers released by a completed transfer whose BYE is awaited
    /// (their CDR target still open), with the reason they will end with.
    lingering: Vec<(LegRef, EndReason)>,
}

impl Transfers {
    /// `leg` has left the call through a transfer.
    pub(super) fn is_ended(&self, leg: LegRef) -> bool {
        self.ended.contains(&leg)
    }
}

/// Why a REFER is refused.
pub(super) struct Refusal(pub u16, pub &'static str);

impl Session {
    /// Target `i` is one of the devices a transfer is calling.
    pub(super) fn is_transfer_target(&self, i: usize) -> bool {
        self.xfer.active.as_ref().is_some_and(|t| i >= t.first)
    }

    /// Who a transfer's target sees calling, while one rings.
    pub(super) fn transfer_presented(&self) -> Option<(String, String)> {
        self.xfer.active.as_ref().map(|t| t.presented.clone())
    }

    /// A transfer's targets are INVITEd without SDP (late offer).
    pub(super) fn transfer_rings(&self) -> bool {
        self.xfer.active.is_some()
    }

    /// A REFER on `leg` from `peer` (its Refer-To without Replaces; the
    /// engine handles attended transfers): checked, then 202 and C rung.
    pub(crate) fn on_refer(
        &mut self,
        cx: &mut Ctx<'_>,
        leg: LegRef,
        peer: Peer,
        id: TransactionId,
        refer: Message,
    ) {
        let checked = match self.leg_mut(leg).and_then(|l| l.dialog.as_mut()) {
            None => Err(481),
            Some(d) => d.receive_request(&refer).map_err(|e| e.status_code()),
        };
        if let Err(code) = checked {
            return cx.reply(id, &refer, code);
        }
        match self.check_refer(cx, leg, peer, &refer) {
            Err(Refusal(code, why)) => {
                cx.respond(id, ResponseBuilder::for_request(&refer, code, why));
            }
            Ok((b, number, destination)) => {
                cx.respond(
                    id,
                    ResponseBuilder::reply(&refer, 202).header(HeaderName::Allow, ALLOW),
                );
                let refer_id = refer.cseq().map_or(1, |c| c.seq);
                self.start_transfer(cx, b, leg, refer_id, number, destination);
            }
        }
    }

    /// The REFER's checks (see the module decisions): the bridge, the
    /// number and where it rings (`transfer_route.rs`).
    fn check_refer(
        &self,
        cx: &Ctx<'_>,
        leg: LegRef,
        peer: Peer,
        refer: &Message,
    ) -> Result<(Bridge, String, Destination), Refusal> {
        let b = self.check_referrer(leg, peer)?;
        let number = refer_number(refer)?;
        let parties = [
            self.leg_number(b.caller),
            self.leg_number(LegRef::Target(b.callee)),
        ];
        if parties
            .iter()
            .any(|p| p.as_deref() == Some(number.as_str()))
        {
            return Err(Refusal(403, "Already In This Call"));
        }
        let destination = self.transfer_destination(cx, leg, &number)?;
        Ok((b, number, destination))
    }

    /// A REFER may come from `leg` (from `peer`) now: a party of the
    /// answered pair, and no transfer or re-INVITE in progress.
    pub(super) fn check_referrer(&self, leg: LegRef, peer: Peer) -> Result<Bridge, Refusal> {
        let Phase::Answered(b) = self.phase else {
            return Err(Refusal(403, "Not In An Answered Call"));
        };
        let in_bridge = leg == b.caller || leg == LegRef::Target(b.callee);
        let from_peer = self.legs_of(leg).is_some_and(|l| l.peer == peer);
        if !in_bridge || !from_peer || self.xfer.is_ended(leg) {
            return Err(Refusal(403, "Not A Party Of This Call"));
        }
        if self.xfer.active.is_some() || b.reinvite.is_some() {
            return Err(Refusal(491, "Request Pending"));
        }
        Ok(b)
    }

    /// The number a leg of the bridge is (the caller's, or the target's).
    pub(super) fn leg_number(&self, leg: LegRef) -> Option<String> {
        match leg {
            LegRef::Caller => Some(self.caller_party.user.clone()),
            LegRef::Target(i) => self.targets.get(i).map(|t| t.number.clone()),
        }
    }

    pub(super) fn legs_of(&self, leg: LegRef) -> Option<&super::leg::Leg> {
        match leg {
            LegRef::Caller => self.caller.as_ref().map(|c| &c.leg),
            LegRef::Target(i) => self.targets.get(i).map(|t| &t.leg),
        }
    }

    /// The REFER was accepted: NOTIFY 100, then C rung.
    fn start_transfer(
        &mut self,
        cx: &mut Ctx<'_>,
        b: Bridge,
        referrer: LegRef,
        refer_id: u32,
        number: String,
        destination: Destination,
    ) {
        let (remaining, presented) = self.remaining_of(cx, b, referrer);
        let display_name = destination.display_name();
        let stage = Stage {
            extension: match &destination {
                Destination::Trunk(_) => String::new(),
                Destination::Route(_) => number.clone(),
            },
            first_failure: self.failures.len(),
            ..Stage::default()
        };
        self.xfer.active = Some(Box::new(Transfer {
            referrer,
            remaining,
            refer_id,
            first: self.targets.len(),
            first_failure: self.failures.len(),
            party: Party {
                user: match &destination {
                    Destination::Trunk(call) => call.number.clone(),
                    Destination::Route(_) => number.clone(),
                },
                display_name,
                domain: self.tenant.domain.clone(),
            },
            presented,
            previous_stage: std::mem::replace(&mut self.stage, stage),
            joining: None,
            offering: None,
            referrer_gone: false,
            reason: EndReason::BlindTransferComplete,
        }));
        self.notify_referrer(cx, "SIP/2.0 100 Trying", false);
        self.ring_transfer(cx, destination);
    }

    /// A NOTIFY of the REFER's implicit subscription to the referrer, if
    /// it is still there; `last` terminates the subscription.
    pub(super) fn notify_referrer(&mut self, cx: &mut Ctx<'_>, status_line: &str, last: bool) {
        let Some(t) = self.xfer.active.as_ref() else {
            return;
        };
        if t.referrer_gone {
            return;
        }
        let (leg, refer_id) = (t.referrer, t.refer_id);
        let Some(l) = self.leg_mut(leg) else {
            return;
        };
        let peer = l.peer;
        let Some(d) = l.dialog.as_mut() else {
            return;
        };
        let state = if last {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        };
        let local = cx.sv.local_parts(peer.transport);
        let what = Written::Relayed(sip::Method::Notify);
        let sent = d
            .refer_notify(&local.local(), Some(refer_id), state, status_line)
            .map_err(|error| InternalError::Dialog {
                what: what.clone(),
                error,
            })
            .and_then(|b| {
                b.build().map_err(|error| InternalError::Unbuildable {
                    what: what.clone(),
                    error,
                })
            })
            .and_then(|m| {
                cx.sv
                    .txns
                    .send_request(cx.clk.now, peer, m)
                    .map_err(|error| InternalError::Refused { what, error })
            });
        match sent {
            Ok(txn) => self.own(cx, txn, peer, TxnRole::Notify),
            Err(e) => cx.internal(e),
        }
    }

    /// A transfer's target answered (`ok` holds its offer): the others
    /// stop, and the remaining party is re-INVITEd with that offer.
    pub(super) fn transfer_answered(&mut self, cx: &mut Ctx<'_>, i: usize, ok: Message) {
        let t = &mut self.targets[i];
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
                cx.internal(InternalError::Unusable2xx(e));
                return self.transfer_target_failed(cx, i, 502);
            }
        };
        t.leg.dialog = Some(dialog);
        t.state = TargetState::Answered;
        t.leg.owed_ack = Some(Box::new(ok.clone()));
        let target = t.id;
        self.timers.stop(Timer::TransferRing);
        self.timers.stop(Timer::GroupStep);
        self.timers.stop(Timer::GroupTimeout);
        if self.stage.group.is_some() {
            // A ring group: C is the member who answered.
            self.group_member_answered(cx, i);
            let member = self.targets[i].number.clone();
            let display_name = cx
                .dir
                .directory
                .user(self.tenant.id, &member)
                .map(|u| u.display_name.clone())
                .unwrap_or_default();
            if let Some(t) = self.xfer.active.as_mut() {
                t.party.user = member;
                t.party.display_name = display_name;
            }
        }
        cx.emit(CallEventKind::TargetAnswered { target });
        let first = self.xfer.active.as_ref().map_or(i, |t| t.first);
        for j in first..self.targets.len() {
            if j != i && self.targets[j].state.is_open() {
                let target = self.targets[j].id;
                cx.emit(CallEventKind::TargetNoAnswer {
                    target,
                    cause: NoAnswerCause::AnsweredElsewhere,
                });
                self.stop_target(cx, j);
            }
        }
        self.join(cx, i, body_of(&ok));
    }

    /// Re-INVITEs the remaining party with `offer` (C's), to join it with
    /// target `c` when it answers.
    pub(super) fn join(
        &mut self,
        cx: &mut Ctx<'_>,
        c: usize,
        offer: Option<(String, bytes::Bytes)>,
    ) {
        let Some(remaining) = self.xfer.active.as_ref().map(|t| t.remaining) else {
            return;
        };
        // An anchored call: C takes the side facing the remaining party.
        let c_side = super::media::other_side(self.media_side(remaining));
        let c_ip = self.peer_ip(LegRef::Target(c));
        let offer = self.reanchored(cx, offer, c_side, c_ip);
        let session = self.id;
        let Some(l) = self.leg_mut(remaining) else {
            return;
        };
        let peer = l.peer;
        let Some(d) = l.dialog.as_mut() else {
            return self.join_failed(cx, 481);
        };
        let local = cx.sv.local_parts(peer.transport);
        let what = Written::Relayed(sip::Method::Invite);
        let sent = d
            .reinvite(&local.local(), None)
            .map_err(|error| InternalError::Dialog {
                what: what.clone(),
                error,
            })
            .and_then(|mut b| {
                b = b
                    .header(HeaderName::Allow, ALLOW)
                    .header(HeaderName::XSessionId, session);
                if let Some((ct, body)) = offer {
                    b = b.body(&ct, body);
                }
                b.build().map_err(|error| InternalError::Unbuildable {
                    what: what.clone(),
                    error,
                })
            })
            .and_then(|m| {
                cx.sv
                    .txns
                    .send_request(cx.clk.now, peer, m)
                    .map_err(|error| InternalError::Refused { what, error })
            });
        match sent {
            Ok(txn) => {
                self.own(cx, txn, peer, TxnRole::TransferJoin);
                if let Phase::Answered(b) = &mut self.phase {
                    b.reinvite = Some(txn);
                }
                if let Some(t) = self.xfer.active.as_mut() {
                    t.joining = Some((c, txn));
                }
            }
            Err(e) => {
                cx.internal(e);
                self.join_failed(cx, 500);
            }
        }
    }

    /// An event of the remaining party's re-INVITE.
    pub(super) fn on_join_event(
        &mut self,
        cx: &mut Ctx<'_>,
        txn: TransactionId,
        event: TransactionEvent,
    ) {
        let joining = self.xfer.active.as_ref().and_then(|t| t.joining);
        let Some((c, _)) = joining.filter(|(_, j)| *j == txn) else {
            // Over: a retransmitted 2xx is ACKed again.
            if let TransactionEvent::Final(r) = event
                && r.status().is_some_and(|s| s < 300)
            {
                self.join_2xx_again(cx, &r);
            }
            return;
        };
        match event {
            TransactionEvent::Final(r) if r.status().is_some_and(|s| s < 300) => {
                self.joined(cx, c, r)
            }
            TransactionEvent::Final(r) => self.join_failed(cx, r.status().unwrap_or(500)),
            TransactionEvent::Timeout(_) => self.join_failed(cx, 408),
            TransactionEvent::TransportError => self.join_failed(cx, 503),
            _ => {}
        }
    }

    fn join_2xx_again(&mut self, cx: &mut Ctx<'_>, ok: &Message) {
        if let Phase::Answered(b) = self.phase {
            for leg in [b.caller, LegRef::Target(b.callee)] {
                if let Some(l) = self.leg_mut(leg) {
                    l.resend_ack(cx, ok);
                }
            }
        }
    }

    /// The remaining party answered the re-INVITE: it is ACKed, C gets its
    /// ACK with the answer, the bridge is A↔C, and the referrer is told.
    fn joined(&mut self, cx: &mut Ctx<'_>, c: usize, ok: Message) {
        let Some(t) = self.xfer.active.take() else {
            return;
        };
        if let Some(l) = self.leg_mut(t.remaining) {
            let peer = l.peer;
            if let Some(d) = l.dialog.as_mut() {
                let _ = d.receive_response(&ok);
                let local = cx.sv.local_parts(peer.transport);
                let ack = d
                    .ack(&ok, &local.local())
                    .map_err(|error| InternalError::Dialog {
                        what: Written::Ack,
                        error,
                    })
                    .and_then(|b| {
                        b.build().map_err(|error| InternalError::Unbuildable {
                            what: Written::Ack,
                            error,
                        })
                    });
                match ack {
                    Ok(ack) => {
                        cx.transmit(peer, ack.clone());
                        l.last_ack = Some(Box::new(SentAck::new(&ack)));
                    }
                    Err(e) => cx.internal(e),
                }
            }
        }
        let (side, ip) = (self.media_side(t.remaining), self.peer_ip(t.remaining));
        let answer = self.reanchored(cx, body_of(&ok), side, ip);
        self.send_owed_ack(cx, LegRef::Target(c), answer);
        // The new pair: C takes the referrer's side.
        let bridge = match t.remaining {
            LegRef::Caller => Bridge::new(LegRef::Caller, c),
            LegRef::Target(r) if t.referrer == LegRef::Caller => Bridge::new(LegRef::Target(c), r),
            LegRef::Target(_) => Bridge::new(t.remaining, c),
        };
        self.phase = Phase::Answered(bridge);
        let caller = (t.referrer == LegRef::Caller).then(|| Party {
            user: t.presented.0.clone(),
            display_name: t.presented.1.clone(),
            domain: self.tenant.domain.clone(),
        });
        cx.emit(CallEventKind::IdentityChanged {
            caller,
            callee: Some(t.party.clone()),
        });
        let referrer_gone = t.referrer_gone;
        let (referrer, reason) = (t.referrer, t.reason);
        self.xfer.active = Some(t);
        self.notify_referrer(cx, "SIP/2.0 200 OK", true);
        self.xfer.active = None;
        if !referrer_gone {
            self.xfer.lingering.push((referrer, reason));
            self.timers
                .set(Timer::TransferRelease, cx.clk.now + RELEASE_AFTER);
        }
    }

    /// The remaining party refused the re-INVITE (or vanished): C, which
    /// answered, is ACKed with a rejecting answer and hung up; the
    /// transfer failed with `code`.
    fn join_failed(&mut self, cx: &mut Ctx<'_>, code: u16) {
        if let Phase::Answered(b) = &mut self.phase {
            b.reinvite = None;
        }
        let joining = self.xfer.active.as_mut().and_then(|t| t.joining.take());
        if let Some((c, _)) = joining {
            self.drop_answered_target(cx, c, EndReason::NotApplicable);
        }
        self.transfer_failed(cx, code);
    }

    /// The `remaining` leg and who C should see calling, for a transfer
    /// whose referrer is `referrer` in bridge `b`.
    pub(super) fn remaining_of(
        &self,
        cx: &Ctx<'_>,
        b: Bridge,
        referrer: LegRef,
    ) -> (LegRef, (String, String)) {
        let remaining = if referrer == b.caller {
            LegRef::Target(b.callee)
        } else {
            b.caller
        };
        let presented = match remaining {
            LegRef::Target(i) => {
                let t = &self.targets[i];
                let display = cx
                    .dir
                    .directory
                    .user(self.tenant.id, &t.number)
                    .map(|u| u.display_name.clone())
                    .unwrap_or_default();
                (t.number.clone(), display)
            }
            LegRef::Caller => self.presented_to(),
        };
        (remaining, presented)
    }

    /// Ends answered target `c` that is not bridged: its 2xx ACKed with an
    /// answer rejecting its offer, BYE, `TargetEnded` with `reason`.
    pub(super) fn drop_answered_target(&mut self, cx: &mut Ctx<'_>, c: usize, reason: EndReason) {
        let reject = self.targets[c]
            .leg
            .owed_ack
            .as_deref()
            .and_then(body_of)
            .map(|(ct, offer)| (ct, super::originate::reject_answer(&offer)));
        self.send_owed_ack(cx, LegRef::Target(c), reject);
        let target = self.targets[c].id;
        cx.emit(CallEventKind::TargetEnded(TargetEnd {
            target,
            reason,
            cost: None,
            quality: None,
        }));
        self.hang_up(cx, LegRef::Target(c));
    }

    /// Open transfer target `i` failed with `code`: when none is left, so
    /// did the transfer.
    pub(super) fn transfer_target_failed(&mut self, cx: &mut Ctx<'_>, i: usize, code: u16) {
        let t = &mut self.targets[i];
        if let Some(d) = t.leg.dialog.as_mut()
            && d.state() == DialogState::Early
        {
            d.terminate();
        }
        t.state = TargetState::Failed;
        let target = t.id;
        cx.emit(CallEventKind::TargetFailed {
            target,
            status_code: code,
        });
        self.failures.push((code, default_reason(code).to_owned()));
        if self.fail_over(cx, i, code) {
            return; // the next trunk (or none left: failed)
        }
        let first = self.xfer.active.as_ref().map_or(i, |t| t.first);
        if self.targets[first..].iter().all(|t| !t.state.is_open()) {
            if self.stage.group.is_some() {
                // The group's next member, or the group is over.
                return self.group_step_failed(cx);
            }
            let from = self.xfer.active.as_ref().map_or(0, |t| t.first_failure);
            let (code, _) = super::fork::best_failure(&self.failures[from..]);
            self.transfer_failed(cx, code);
        }
    }

    /// C's ring timeout: its devices stop ringing, the transfer failed.
    pub(super) fn transfer_ring_timed_out(&mut self, cx: &mut Ctx<'_>) {
        let Some(first) = self.xfer.active.as_ref().map(|t| t.first) else {
            return;
        };
        for j in first..self.targets.len() {
            if self.targets[j].state.is_open() {
                let target = self.targets[j].id;
                cx.emit(CallEventKind::TargetNoAnswer {
                    target,
                    cause: NoAnswerCause::RingTimeout,
                });
                self.stop_target(cx, j);
            }
        }
        self.transfer_failed(cx, 408);
    }

    /// The transfer failed with `code`: the referrer is told; the call is
    /// recalled to it, or ends (see the module decisions).
    pub(super) fn transfer_failed(&mut self, cx: &mut Ctx<'_>, code: u16) {
        self.timers.stop(Timer::TransferRing);
        self.timers.stop(Timer::GroupStep);
        let line = format!("SIP/2.0 {code} {}", default_reason(code));
        self.notify_referrer(cx, &line, true);
        let Some(t) = self.xfer.active.take() else {
            return;
        };
        self.stage = t.previous_stage;
        let recall = cx.sv.transfer_on_failure == TransferOnFailure::Recall && !t.referrer_gone;
        if !recall && let Phase::Answered(b) = self.phase {
            self.end_answered(cx, b, EndReason::NotApplicable, None);
        }
    }

    /// A BYE on `leg` that a transfer accounts for (true: handled, the
    /// call goes on).
    pub(super) fn transfer_bye(&mut self, cx: &mut Ctx<'_>, leg: LegRef) -> bool {
        if let Some(k) = self.xfer.lingering.iter().position(|(l, _)| *l == leg) {
            let (_, reason) = self.xfer.lingering.remove(k);
            self.end_referrer(cx, leg, reason);
            if self.xfer.lingering.is_empty() {
                self.timers.stop(Timer::TransferRelease);
            }
            return true;
        }
        let Some(t) = self.xfer.active.as_mut() else {
            return self.xfer.is_ended(leg);
        };
        if t.referrer != leg || t.referrer_gone {
            return false;
        }
        t.referrer_gone = true;
        let reason = t.reason;
        self.end_referrer(cx, leg, reason);
        true
    }

    /// The referrer's part is over: its target ends with `reason`.
    fn end_referrer(&mut self, cx: &mut Ctx<'_>, leg: LegRef, reason: EndReason) {
        self.xfer.ended.push(leg);
        if let Some(l) = self.leg_mut(leg) {
            l.owed_ack = None;
        }
        if let LegRef::Target(i) = leg {
            let target = self.targets[i].id;
            cx.emit(CallEventKind::TargetEnded(TargetEnd {
                target,
                reason,
                cost: None,
                quality: None,
            }));
        }
    }

    /// [`RELEASE_AFTER`] passed: referrers that did not hang up are.
    pub(super) fn release_referrers(&mut self, cx: &mut Ctx<'_>) {
        for (leg, reason) in std::mem::take(&mut self.xfer.lingering) {
            self.end_referrer(cx, leg, reason);
            self.hang_up(cx, leg);
        }
    }

    /// The answered call is ending (`reason`): whatever a transfer still
    /// has open ends with it, before the bridge's legs.
    pub(super) fn transfer_call_ended(&mut self, cx: &mut Ctx<'_>, reason: EndReason) {
        self.timers.stop(Timer::TransferRing);
        self.timers.stop(Timer::TransferRelease);
        if let Some(mut t) = self.xfer.active.take() {
            if let Some((c, _)) = t.joining.take().or(t.offering.take()) {
                self.drop_answered_target(cx, c, reason);
            }
            for j in t.first..self.targets.len() {
                if self.targets[j].state.is_open() {
                    let target = self.targets[j].id;
                    let kind = match reason {
                        EndReason::CallerDisconnect | EndReason::CalleeDisconnect => {
                            CallEventKind::TargetNoAnswer {
                                target,
                                cause: NoAnswerCause::CallerCancelled,
                            }
                        }
                        _ => CallEventKind::TargetFailed {
                            target,
                            status_code: 487,
                        },
                    };
                    cx.emit(kind);
                    self.stop_target(cx, j);
                }
            }
        }
        for (leg, why) in std::mem::take(&mut self.xfer.lingering) {
            self.end_referrer(cx, leg, why);
            self.hang_up(cx, leg);
        }
    }
}

/// The number a REFER's Refer-To names: its one Refer-To must parse, be a
/// SIP URI with a user part, without Replaces (the engine's).
fn refer_number(refer: &Message) -> Result<String, Refusal> {
    let mut lines = refer.header_lines(HeaderName::ReferTo);
    let Some(value) = lines.next() else {
        return Err(Refusal(400, "Missing Refer-To"));
    };
    if lines.next().is_some() {
        return Err(Refusal(400, "More Than One Refer-To"));
    }
    let parsed = ReferTo::parse(value).map_err(|_| Refusal(400, "Bad Refer-To"))?;
    if parsed.replaces.is_some() {
        return Err(Refusal(400, "Bad Refer-To"));
    }
    let user = match &parsed.target.uri {
        Uri::Sip(u) => u.user_unescaped(),
        _ => None,
    };
    user.and_then(|u| String::from_utf8(u.into_owned()).ok())
        .filter(|u| !u.is_empty())
        .ok_or(Refusal(400, "Refer-To Names No Number"))
}
