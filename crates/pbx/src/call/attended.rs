//! Attended transfer (RFC 5589 §7, RFC 3891 Replaces): B, in call S1 with
//! A, consulted C in a call of its own, S2, and REFERs S1 with a Refer-To
//! whose Replaces names its S2 dialog. The engine decides across the two
//! sessions (`engine/transfer.rs`); each session only does its own part:
//!
//! ```text
//!  S1: REFER checked, 202, NOTIFY 100            (accept_attended)
//!  S2: C's leg handed over: C ends `replaced`,   (hand_off)
//!      B `attended_transfer_complete`, S2 ends `attended_transfer_complete`,
//!      BYE to B's S2 leg
//!  S1: C adopted as a new target, answered now   (adopt)
//!      re-INVITE C (no SDP) ─▶ 200 (C's offer) ─▶ re-INVITE A (offer)
//!      ─▶ 200 (answer) ─▶ ACK C (answer), ACK A: A↔C; call_update_info;
//!      NOTIFY 200 to B; B ends `attended_transfer_complete` at its BYE
//! ```
//!
//! Decisions: the consultation may have been placed by B (C is S2's
//! target) or by C (C is S2's caller, B its target). Either way S2's C
//! leg moves to S1 and B's S2 leg gets BYE; S2 ends
//! `attended_transfer_complete`. S2's CDR: when C was S2's target, C's
//! target ends `replaced` (SPEC §3); when C placed S2, C is S2's caller and
//! has no target there, so S2's one target, B, ends
//! `attended_transfer_complete` (B handed the call on) and S2's `caller`
//! stays C. S2's relay, if any, stops (C's media moves with the join). The
//! join is
//! blind transfer's (`transfer.rs`): the PBX writes no SDP, C offers in the
//! 200 to a re-INVITE without SDP, A answers in its own re-INVITE's 200. A
//! C that refuses the re-INVITE is hung up and the transfer fails as a
//! blind one does (NOTIFY with the code, recall or hang up).

use cdr::{
    CallEventKind, CallType, EndReason, Party, SessionEnd, TargetAdded, TargetEnd, UnixMillis,
};
use sip::transaction::{TransactionEvent, TransactionId};
use sip::transport::Peer;
use sip::{HeaderName, Message};

use super::effect::{Ctx, DialogKey};
use super::fork::{Target, TargetState};
use super::leg::{Leg, body_of};
use super::transfer::{Refusal, Transfer};
use super::{LegRef, Phase, Session, TxnRole};
use crate::context::{ALLOW, InternalError, Written};
use sip::builder::ResponseBuilder;

/// C's leg, taken out of S2 for S1.
#[derive(Debug)]
pub(crate) struct HandOff {
    leg: Leg,
    invite: Message,
    txn: TransactionId,
    number: String,
    destination: String,
    key: DialogKey,
}

impl Session {
    /// The leg on the other side of `leg` in this answered call (C), when
    /// it can be handed to another session: `leg` a party of the bridge,
    /// nothing else under way.
    pub(crate) fn replaceable(&self, leg: LegRef) -> Result<LegRef, (u16, &'static str)> {
        let Phase::Answered(b) = self.phase else {
            return Err((404, "Replaced Dialog Not Found"));
        };
        if self.xfer.active.is_some() || self.pickup_joining() {
            return Err((491, "Request Pending"));
        }
        match leg {
            l if l == b.caller => Ok(LegRef::Target(b.callee)),
            LegRef::Target(i) if i == b.callee => match b.caller {
                LegRef::Caller if self.caller.is_none() => Err((404, "Replaced Dialog Not Found")),
                c => Ok(c),
            },
            _ => Err((404, "Replaced Dialog Not Found")),
        }
    }

    /// S1's part of accepting a REFER with Replaces on `leg`: checks, 202,
    /// NOTIFY 100, a transfer waiting for C's leg. False when refused (the
    /// 4xx was sent).
    pub(crate) fn accept_attended(
        &mut self,
        cx: &mut Ctx<'_>,
        leg: LegRef,
        peer: Peer,
        id: TransactionId,
        refer: &Message,
        other: Result<(), (u16, &'static str)>,
    ) -> bool {
        let checked = match self.leg_mut(leg).and_then(|l| l.dialog.as_mut()) {
            None => Err(481),
            Some(d) => d.receive_request(refer).map_err(|e| e.status_code()),
        };
        if let Err(code) = checked {
            cx.reply(id, refer, code);
            return false;
        }
        let b = match self
            .check_referrer(leg, peer)
            .and_then(|b| other.map(|()| b).map_err(|(c, w)| Refusal(c, w)))
        {
            Ok(b) => b,
            Err(Refusal(code, why)) => {
                cx.respond(id, ResponseBuilder::for_request(refer, code, why));
                return false;
            }
        };
        cx.respond(
            id,
            ResponseBuilder::reply(refer, 202).header(HeaderName::Allow, ALLOW),
        );
        let (remaining, presented) = self.remaining_of(cx, b, leg);
        self.xfer.active = Some(Box::new(Transfer {
            offering: None,
            referrer: leg,
            remaining,
            refer_id: refer.cseq().map_or(1, |c| c.seq),
            first: self.targets.len(),
            first_failure: self.failures.len(),
            party: Party::default(),
            presented,
            previous_stage: self.stage.clone(),
            joining: None,
            referrer_gone: false,
            reason: EndReason::AttendedTransferComplete,
        }));
        self.notify_referrer(cx, "SIP/2.0 100 Trying", false);
        true
    }

    /// S2's part: C's leg `c` is handed over (a target ends `replaced`),
    /// B's leg `leg` is hung up (a target ends
    /// `attended_transfer_complete`), and the session ends
    /// `attended_transfer_complete`.
    pub(crate) fn hand_off(&mut self, cx: &mut Ctx<'_>, leg: LegRef, c: LegRef) -> Option<HandOff> {
        let Phase::Answered(_) = self.phase else {
            return None;
        };
        let handoff = match c {
            LegRef::Target(c) => self.hand_off_target(cx, c)?,
            LegRef::Caller => self.hand_off_caller()?,
        };
        if let LegRef::Target(j) = leg {
            let target = self.targets[j].id;
            cx.emit(CallEventKind::TargetEnded(TargetEnd {
                target,
                reason: EndReason::AttendedTransferComplete,
                cost: None,
                quality: None,
            }));
        }
        self.acked(super::bridge::Side::Caller);
        self.acked(super::bridge::Side::Callee);
        self.phase = Phase::Over;
        self.timers.stop_ringing();
        cx.emit(CallEventKind::SessionEnded(SessionEnd {
            status_code: 200,
            reason: EndReason::AttendedTransferComplete,
            recording: None,
            recording_error: None,
        }));
        self.media_stop(cx);
        self.hang_up(cx, leg);
        Some(handoff)
    }

    /// C placed the consultation: its caller leg (a UAS dialog) leaves.
    fn hand_off_caller(&mut self) -> Option<HandOff> {
        let number = self.caller_party.user.clone();
        let caller = self.caller.as_mut()?;
        let key = caller.leg.dialog.as_ref().map(|d| {
            let id = d.id();
            (id.call_id.clone(), id.local_tag.clone())
        })?;
        let destination = caller
            .invite
            .contacts()
            .next()
            .and_then(|c| match c {
                Ok(sip::headers::Contact::Addr(a)) => Some(a.uri.to_string()),
                _ => None,
            })
            .unwrap_or_default();
        let peer = caller.leg.peer;
        let mut leg_c = std::mem::replace(&mut caller.leg, Leg::new(peer));
        // S2 stops retransmitting its 2xx; the leg goes on acknowledged.
        leg_c.unacked = None;
        let handoff = HandOff {
            leg: leg_c,
            invite: caller.invite.clone(),
            txn: caller.server,
            number,
            destination,
            key: key.clone(),
        };
        self.dialog_keys.retain(|k| *k != key);
        Some(handoff)
    }

    /// B placed the consultation: C's target leg leaves, ending `replaced`.
    fn hand_off_target(&mut self, cx: &mut Ctx<'_>, c: usize) -> Option<HandOff> {
        let t = &mut self.targets[c];
        let key = t.leg.dialog.as_ref().map(|d| {
            let id = d.id();
            (id.call_id.clone(), id.local_tag.clone())
        })?;
        let peer = t.leg.peer;
        let leg_c = std::mem::replace(&mut t.leg, Leg::new(peer));
        let handoff = HandOff {
            leg: leg_c,
            invite: t.invite.clone(),
            txn: t.txn,
            number: t.number.clone(),
            destination: t.destination.clone(),
            key: key.clone(),
        };
        self.dialog_keys.retain(|k| *k != key);
        let target = t.id;
        cx.emit(CallEventKind::TargetEnded(TargetEnd {
            target,
            reason: EndReason::Replaced,
            cost: None,
            quality: None,
        }));
        Some(handoff)
    }

    /// S1 adopts C's leg: a new target, answered now, re-INVITEd without
    /// SDP for its offer (the join follows as in a blind transfer).
    pub(crate) fn adopt(&mut self, cx: &mut Ctx<'_>, h: HandOff) {
        let Some(presented) = self.xfer.active.as_ref().map(|t| t.presented.clone()) else {
            return;
        };
        let i = self.targets.len();
        let target = cdr::TargetId::from(cx.sv.snowflake.next_id(UnixMillis(cx.clk.unix_ms)));
        let display_name = cx
            .dir
            .directory
            .user(self.tenant.id, &h.number)
            .map(|u| u.display_name.clone())
            .unwrap_or_default();
        let added = TargetAdded {
            target,
            call_type: CallType::Normal,
            caller: presented.0,
            callee: h.number.clone(),
            destination: h.destination.clone(),
            trunk_name: String::new(),
            outbound_caller_id: String::new(),
            did: self.trunk.did().to_owned(),
            reroute_reason: None,
            user: cx.dir.user_id(self.tenant.id, &h.number),
        };
        self.index(cx, h.key, LegRef::Target(i));
        self.push_target(Target {
            leg: h.leg,
            id: target,
            invite: h.invite,
            txn: h.txn,
            state: TargetState::Answered,
            number: h.number.clone(),
            destination: h.destination,
        });
        if let Some(t) = self.xfer.active.as_mut() {
            t.party = Party {
                user: h.number,
                display_name,
                domain: self.tenant.domain.clone(),
            };
            self.stage.extension = t.party.user.clone();
        }
        cx.emit(CallEventKind::TargetAdded(Box::new(added)));
        cx.emit(CallEventKind::TargetAnswered { target });
        self.offer_from(cx, i);
    }

    /// The attended transfer could not take C after all (S2 went away).
    pub(crate) fn attended_lost(&mut self, cx: &mut Ctx<'_>) {
        self.transfer_failed(cx, 481);
    }

    /// Re-INVITE without SDP to adopted target `c`: its 200 offers.
    fn offer_from(&mut self, cx: &mut Ctx<'_>, c: usize) {
        let session = self.id;
        let l = &mut self.targets[c].leg;
        let peer = l.peer;
        let Some(d) = l.dialog.as_mut() else {
            return self.transfer_failed(cx, 481);
        };
        let local = cx.sv.local_parts(peer.transport);
        let what = Written::Relayed(sip::Method::Invite);
        let sent = d
            .reinvite(&local.local(), None)
            .map_err(|error| InternalError::Dialog {
                what: what.clone(),
                error,
            })
            .and_then(|b| {
                b.header(HeaderName::Allow, ALLOW)
                    .header(HeaderName::XSessionId, session)
                    .build()
                    .map_err(|error| InternalError::Unbuildable {
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
                self.own(cx, txn, peer, TxnRole::TransferOffer);
                if let Phase::Answered(b) = &mut self.phase {
                    b.reinvite = Some(txn);
                }
                if let Some(t) = self.xfer.active.as_mut() {
                    t.offering = Some((c, txn));
                }
            }
            Err(e) => {
                cx.internal(e);
                self.drop_answered_target(cx, c, EndReason::NotApplicable);
                self.transfer_failed(cx, 500);
            }
        }
    }

    /// An event of the re-INVITE asking adopted C for an offer.
    pub(super) fn on_offer_event(
        &mut self,
        cx: &mut Ctx<'_>,
        txn: TransactionId,
        event: TransactionEvent,
    ) {
        let offering = self.xfer.active.as_ref().and_then(|t| t.offering);
        let Some((c, _)) = offering.filter(|(_, o)| *o == txn) else {
            if let TransactionEvent::Final(r) = event {
                self.targets.iter().for_each(|t| t.leg.resend_ack(cx, &r));
            }
            return;
        };
        let failed = match event {
            TransactionEvent::Final(r) if r.status().is_some_and(|s| s < 300) => {
                if let Some(t) = self.xfer.active.as_mut() {
                    t.offering = None;
                }
                if let Phase::Answered(b) = &mut self.phase {
                    b.reinvite = None;
                }
                let l = &mut self.targets[c].leg;
                if let Some(d) = l.dialog.as_mut() {
                    let _ = d.receive_response(&r);
                }
                let offer = body_of(&r);
                l.owed_ack = Some(Box::new(r));
                return self.join(cx, c, offer);
            }
            TransactionEvent::Final(r) => r.status().unwrap_or(500),
            TransactionEvent::Timeout(_) => 408,
            TransactionEvent::TransportError => 503,
            _ => return,
        };
        if let Some(t) = self.xfer.active.as_mut() {
            t.offering = None;
        }
        if let Phase::Answered(b) = &mut self.phase {
            b.reinvite = None;
        }
        let target = self.targets[c].id;
        cx.emit(CallEventKind::TargetEnded(TargetEnd {
            target,
            reason: EndReason::NotApplicable,
            cost: None,
            quality: None,
        }));
        self.hang_up(cx, LegRef::Target(c));
        self.transfer_failed(cx, failed);
    }
}
