//! Call pickup, and INVITE with Replaces: a *newcomer*, a phone that sent
//! the PBX an INVITE of its own, takes a party's place in another call.
//! The engine decides which call and which party (`engine/pickup.rs`);
//! the session only does its part:
//!
//! ```text
//!  pickup (the call rings B; P dialled *8 or **B)      take_ringing
//!    B's targets end `replaced` (CANCEL), the others as losers;
//!    P a new target, answered now; call_update_info (callee P)
//!    A ◀── 200 (an inactive answer to A's offer) ── PBX
//!    A ── ACK ──▶ PBX
//!    A ◀── re-INVITE (P's offer) ── PBX               invite_other
//!    A ── 200 (answer) ──▶ PBX ── 200 (answer) ──▶ P
//!    P ── ACK ──▶ PBX ── ACK ──▶ A: A↔P
//!
//!  Replaces (X names B's leg of an answered call A↔B)  take_answered
//!    B ends `reason` (BYE); X a new target, answered now;
//!    then the re-INVITE of A as above
//! ```
//!
//! Decisions: the picker's (or X's) INVITE is no session of its own and
//! has no CDR: it becomes a target of the call it joins, so the call's one
//! CDR tells the whole story (SPEC §3, "call pickup"). The PBX writes SDP
//! only once, the inactive answer that lets A's INVITE be answered before
//! the newcomer's offer can reach A (A's INVITE offered first, and the
//! newcomer's INVITE offers too; RFC 3264 allows neither answer to be the
//! other's offer). A newcomer without SDP gets A's offer in its 200 and
//! answers in its ACK (a re-INVITE of A without SDP). A that refuses the
//! re-INVITE ends the call (`None`), the newcomer hearing A's code.

use bytes::Bytes;
use cdr::{
    CallEventKind, CallType, EndReason, NoAnswerCause, Party, TargetAdded, TargetEnd, TargetId,
    UnixMillis,
};
use sip::builder::ResponseBuilder;
use sip::dialog::Dialog;
use sip::transaction::{TransactionEvent, TransactionId};
use sip::transport::{Peer, Transport};
use sip::{HeaderName, Message};

use super::bridge::{Bridge, Side};
use super::caller::CallerState;
use super::effect::Ctx;
use super::fork::{Target, TargetState};
use super::leg::{Leg, body_of};
use super::{LegRef, Phase, Session, TxnRole};
use crate::context::{ALLOW, InternalError, Written};

/// A phone's INVITE that takes a party's place in a call.
#[derive(Debug)]
pub(crate) struct Newcomer {
    pub peer: Peer,
    pub invite: Message,
    /// Its server transaction.
    pub server: TransactionId,
    /// The PBX's To tag for its dialog.
    pub tag: String,
    /// Its user (extension) and display name.
    pub party: Party,
}

/// The newcomer whose INVITE is not answered yet.
#[derive(Debug)]
pub(super) struct Joining {
    /// Its target.
    target: usize,
    server: TransactionId,
    invite: Message,
    tag: String,
    /// The re-INVITE of the other party, once sent.
    reinvite: Option<TransactionId>,
    /// The other party's INVITE is answered but not ACKed yet: the
    /// re-INVITE waits for the ACK (RFC 3261 §14.1).
    awaits_ack: bool,
}

/// What a session keeps of a pickup or a Replaces in progress.
#[derive(Debug, Default)]
pub(super) struct Pickup {
    /// Boxed: rare, and ~300 bytes inline in every session (issue 18).
    joining: Option<Box<Joining>>,
}

impl Session {
    /// The extensions this call is ringing now (targets that sent a 18x),
    /// when it can be picked up: ringing, from a caller leg (not a call
    /// the PBX originated), no pickup already under way.
    pub(crate) fn ringing_extensions(&self) -> Vec<&str> {
        let waiting = self
            .caller
            .as_ref()
            .is_some_and(|c| c.state == CallerState::Waiting);
        if self.phase != Phase::Ringing || !waiting || self.pickup.joining.is_some() {
            return Vec::new();
        }
        let mut out: Vec<&str> = self
            .targets
            .iter()
            .filter(|t| t.state == TargetState::Early)
            .map(|t| t.number.as_str())
            .collect();
        out.dedup();
        out
    }

    /// The extension of `leg` when it is a device this call is ringing
    /// (it sent a 18x) and the call can be picked up: what an INVITE with
    /// Replaces naming that early dialog picks up.
    pub(crate) fn early_target(&self, leg: LegRef) -> Option<String> {
        let LegRef::Target(i) = leg else {
            return None;
        };
        let t = self.targets.get(i)?;
        (t.state == TargetState::Early && self.ringing_extensions().contains(&t.number.as_str()))
            .then(|| t.number.clone())
    }

    /// A newcomer is joining this call.
    pub(super) fn pickup_joining(&self) -> bool {
        self.pickup.joining.is_some()
    }

    /// Whether `user` is this call's caller.
    pub(crate) fn is_caller(&self, user: &str) -> bool {
        self.caller_party.user == user
    }

    /// Pickup: `who` takes the call ringing `extension` (which
    /// [`Session::ringing_extensions`] listed). The targets of `extension`
    /// end `replaced`, the others as losers; `who` is a new answered
    /// target; the caller is answered and, at its ACK, re-INVITEd with
    /// the picker's offer.
    pub(crate) fn take_ringing(&mut self, cx: &mut Ctx<'_>, extension: &str, who: Newcomer) {
        for j in 0..self.targets.len() {
            if !self.targets[j].state.is_open() {
                continue;
            }
            let target = self.targets[j].id;
            if self.targets[j].number == extension {
                cx.emit(CallEventKind::TargetEnded(TargetEnd {
                    target,
                    reason: EndReason::Replaced,
                    cost: None,
                    quality: None,
                }));
            } else {
                let cause = NoAnswerCause::AnsweredElsewhere;
                cx.emit(CallEventKind::TargetNoAnswer { target, cause });
            }
            self.stop_target(cx, j);
        }
        self.timers.stop_ringing();
        self.stage.group = None;
        let i = self.adopt_newcomer(cx, &who, false);
        self.phase = Phase::Answered(Bridge::new(LegRef::Caller, i));
        // A's offer gets an inactive answer now; P's offer goes to A in a
        // re-INVITE at A's ACK. Without an offer from A, P's offer (or
        // none: refused by the engine) goes in the 200 and A answers in
        // its ACK.
        let a_offer = self.caller.as_ref().and_then(|c| body_of(&c.invite));
        let (body, awaits_ack) = match a_offer {
            Some((_, offer)) => (Some(("application/sdp".into(), hold_answer(&offer))), true),
            None => {
                let (side, ip) = (self.media_side(LegRef::Target(i)), Some(who.peer.addr.ip()));
                (self.reanchored(cx, body_of(&who.invite), side, ip), false)
            }
        };
        self.pickup.joining = Some(Box::new(Joining {
            target: i,
            server: who.server,
            invite: who.invite,
            tag: who.tag,
            reinvite: None,
            awaits_ack,
        }));
        self.answer_caller_with(cx, body);
        // A relayed call's RTP timeout starts with the answer, as when a
        // target answers.
        self.media_answered(cx);
    }

    /// Replaces: `who` takes the place of `leg`, a side of the answered
    /// call, which ends with `reason` (BYE); the other side is re-INVITEd
    /// with `who`'s offer. `491` (nothing changed) while another
    /// re-INVITE or transfer is under way.
    pub(crate) fn take_answered(
        &mut self,
        cx: &mut Ctx<'_>,
        leg: LegRef,
        reason: EndReason,
        who: Newcomer,
    ) -> Result<(), (u16, &'static str)> {
        let Phase::Answered(b) = self.phase else {
            return Err((481, "Call/Transaction Does Not Exist"));
        };
        if b.reinvite.is_some() || self.xfer.active.is_some() || self.pickup.joining.is_some() {
            return Err((491, "Request Pending"));
        }
        let other = match leg {
            LegRef::Target(i) if i == b.callee => b.caller,
            l if l == b.caller => LegRef::Target(b.callee),
            _ => return Err((481, "Call/Transaction Does Not Exist")),
        };
        if let LegRef::Target(j) = leg {
            let target = self.targets[j].id;
            cx.emit(CallEventKind::TargetEnded(TargetEnd {
                target,
                reason,
                cost: None,
                quality: None,
            }));
        }
        self.hang_up(cx, leg);
        let i = self.adopt_newcomer(cx, &who, leg == b.caller);
        // The newcomer is the callee side from now on, the other party
        // the caller side.
        self.phase = Phase::Answered(Bridge::new(other, i));
        self.pickup.joining = Some(Box::new(Joining {
            target: i,
            server: who.server,
            invite: who.invite,
            tag: who.tag,
            reinvite: None,
            awaits_ack: false,
        }));
        self.invite_other(cx);
        Ok(())
    }

    /// Whether the caller's INVITE carried an offer (a picker without
    /// one cannot be joined to a caller without one).
    pub(crate) fn caller_offered(&self) -> bool {
        self.caller
            .as_ref()
            .is_some_and(|c| body_of(&c.invite).is_some())
    }

    /// The numbers of the two sides of the answered call, with the legs.
    pub(crate) fn answered_sides(&self) -> Option<[(LegRef, String); 2]> {
        let Phase::Answered(b) = self.phase else {
            return None;
        };
        let callee = LegRef::Target(b.callee);
        Some([
            (b.caller, self.leg_number(b.caller)?),
            (callee, self.leg_number(callee)?),
        ])
    }

    /// The consultation call an INVITE with Replaces completed (RFC 5589
    /// practice): `newcomer`'s leg ends `replaced`, the other side
    /// `attended_transfer_complete`, both get BYE, and the call ends
    /// `attended_transfer_complete`, as when a REFER completes it
    /// (`attended.rs`).
    pub(crate) fn consultation_done(&mut self, cx: &mut Ctx<'_>, newcomer: LegRef) {
        let Phase::Answered(b) = self.phase else {
            return;
        };
        for leg in [b.caller, LegRef::Target(b.callee)] {
            if let LegRef::Target(j) = leg {
                let reason = if leg == newcomer {
                    EndReason::Replaced
                } else {
                    EndReason::AttendedTransferComplete
                };
                let target = self.targets[j].id;
                cx.emit(CallEventKind::TargetEnded(TargetEnd {
                    target,
                    reason,
                    cost: None,
                    quality: None,
                }));
            }
        }
        self.acked(Side::Caller);
        self.acked(Side::Callee);
        self.end(cx, 200, EndReason::AttendedTransferComplete);
        for leg in [b.caller, LegRef::Target(b.callee)] {
            self.hang_up(cx, leg);
        }
    }

    /// `who` as a new target, answered now, with `call_update_info`
    /// naming it as the callee, or as the caller when it replaced the
    /// caller's side.
    fn adopt_newcomer(&mut self, cx: &mut Ctx<'_>, who: &Newcomer, as_caller: bool) -> usize {
        let i = self.targets.len();
        let target = TargetId::from(cx.sv.snowflake.next_id(UnixMillis(cx.clk.unix_ms)));
        let destination = who
            .invite
            .contacts()
            .next()
            .and_then(|c| match c {
                Ok(sip::headers::Contact::Addr(a)) => Some(a.uri.to_string()),
                _ => None,
            })
            .unwrap_or_default();
        let number = who.party.user.clone();
        let added = TargetAdded {
            target,
            call_type: CallType::Normal,
            caller: self.presented_to().0,
            callee: number.clone(),
            destination: destination.clone(),
            trunk_name: String::new(),
            outbound_caller_id: String::new(),
            did: self.trunk.did().to_owned(),
            reroute_reason: None,
            user: cx.dir.user_id(self.tenant.id, &number),
        };
        let call_id = who.invite.call_id().unwrap_or_default().to_owned();
        self.index(cx, (call_id, who.tag.clone()), LegRef::Target(i));
        self.push_target(Target {
            leg: Leg::new(who.peer),
            id: target,
            invite: who.invite.clone(),
            txn: who.server,
            state: TargetState::Answered,
            number: number.clone(),
            destination,
        });
        if !as_caller {
            self.stage.extension = number;
        }
        cx.emit(CallEventKind::TargetAdded(Box::new(added)));
        cx.emit(CallEventKind::TargetAnswered { target });
        let party = Party {
            domain: self.tenant.domain.clone(),
            ..who.party.clone()
        };
        let (caller, callee) = match as_caller {
            true => (Some(party), None),
            false => (None, Some(party)),
        };
        cx.emit(CallEventKind::IdentityChanged { caller, callee });
        i
    }

    /// The ACK of `leg` arrived: a pickup waiting for the caller's ACK
    /// re-INVITEs it now; one that answered the caller with the picker's
    /// offer answers the picker with the ACK's answer.
    pub(super) fn pickup_acked(&mut self, cx: &mut Ctx<'_>, leg: LegRef, ack: &Message) {
        let Phase::Answered(b) = self.phase else {
            return;
        };
        let Some(j) = self.pickup.joining.as_mut() else {
            return;
        };
        if leg != b.caller || j.reinvite.is_some() {
            return;
        }
        if j.awaits_ack {
            j.awaits_ack = false;
            return self.invite_other(cx);
        }
        if let Some(j) = self.pickup.joining.take() {
            let (side, ip) = (self.media_side(b.caller), self.peer_ip(b.caller));
            let answer = self.reanchored(cx, body_of(ack), side, ip);
            self.answer_newcomer(cx, *j, answer);
        }
    }

    /// The other party's re-INVITE, with the newcomer's offer (or none).
    fn invite_other(&mut self, cx: &mut Ctx<'_>) {
        let (Phase::Answered(b), Some(j)) = (self.phase, self.pickup.joining.as_ref()) else {
            return;
        };
        let newcomer = LegRef::Target(j.target);
        let offer = body_of(&j.invite);
        let (side, ip) = (self.media_side(newcomer), self.peer_ip(newcomer));
        let offer = self.reanchored(cx, offer, side, ip).map(|(_, body)| body);
        let session = self.id;
        let Some(l) = self.leg_mut(b.caller) else {
            return;
        };
        let peer = l.peer;
        let Some(d) = l.dialog.as_mut() else {
            return self.newcomer_failed(cx, 481);
        };
        let local = cx.sv.local_parts(peer.transport);
        let what = Written::Relayed(sip::Method::Invite);
        let sent = d
            .reinvite(&local.local(), offer)
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
                self.own(cx, txn, peer, TxnRole::PickupJoin);
                if let Phase::Answered(b) = &mut self.phase {
                    b.reinvite = Some(txn);
                }
                if let Some(j) = self.pickup.joining.as_mut() {
                    j.reinvite = Some(txn);
                }
            }
            Err(e) => {
                cx.internal(e);
                self.newcomer_failed(cx, 500);
            }
        }
    }

    /// An event of the other party's re-INVITE.
    pub(super) fn on_pickup_join_event(
        &mut self,
        cx: &mut Ctx<'_>,
        txn: TransactionId,
        event: TransactionEvent,
    ) {
        let ours = self
            .pickup
            .joining
            .as_ref()
            .is_some_and(|j| j.reinvite == Some(txn));
        let Phase::Answered(b) = self.phase else {
            return;
        };
        if !ours {
            // A 2xx again after the join (our ACK was lost).
            if let TransactionEvent::Final(r) = event
                && let Some(l) = self.leg_mut(b.caller)
            {
                l.resend_ack(cx, &r);
            }
            return;
        }
        let code = match event {
            TransactionEvent::Final(r) if r.status().is_some_and(|s| s < 300) => {
                if let Phase::Answered(b) = &mut self.phase {
                    b.reinvite = None;
                }
                let (side, ip) = (self.media_side(b.caller), self.peer_ip(b.caller));
                let body = self.reanchored(cx, body_of(&r), side, ip);
                if let Some(l) = self.leg_mut(b.caller) {
                    if let Some(d) = l.dialog.as_mut() {
                        let _ = d.receive_response(&r);
                    }
                    // ACKed when the newcomer ACKs (with its answer when
                    // A offered).
                    l.owed_ack = Some(Box::new(r));
                }
                if let Some(j) = self.pickup.joining.take() {
                    self.answer_newcomer(cx, *j, body);
                }
                return;
            }
            TransactionEvent::Final(r) => r.status().unwrap_or(500),
            TransactionEvent::Timeout(_) => 408,
            TransactionEvent::TransportError => 503,
            _ => return,
        };
        if let Phase::Answered(b) = &mut self.phase {
            b.reinvite = None;
        }
        self.newcomer_failed(cx, code);
    }

    /// The newcomer's 200 with `body` (the other party's answer or offer):
    /// its dialog starts, repeated until its ACK.
    fn answer_newcomer(&mut self, cx: &mut Ctx<'_>, j: Joining, body: Option<(String, Bytes)>) {
        let Phase::Answered(_) = self.phase else {
            return;
        };
        let peer = self.targets[j.target].leg.peer;
        let mut b = ResponseBuilder::for_request(&j.invite, 200, "OK")
            .to_tag(&j.tag)
            .header(HeaderName::Contact, cx.sv.contact(peer.transport))
            .header(HeaderName::Allow, ALLOW)
            .header(HeaderName::XSessionId, self.id);
        if let Some((ct, body)) = body {
            b = b.body(&ct, body);
        }
        let Some(sent) = cx.respond(j.server, b) else {
            return self.abandon(cx);
        };
        let tls = matches!(peer.transport, Transport::Tls | Transport::Wss);
        let seq = cx.sv.ids.first_cseq();
        match Dialog::uas(&j.invite, &sent, tls, seq) {
            Ok(d) => self.targets[j.target].leg.dialog = Some(d),
            Err(e) => cx.internal(InternalError::CallerDialog(e)),
        }
        let cseq = j.invite.cseq().map_or(0, |c| c.seq);
        self.await_ack(cx, Side::Callee, sent, cseq);
    }

    /// The join failed (the other party refused its re-INVITE): the
    /// newcomer hears `code`, and the call ends (`None`).
    fn newcomer_failed(&mut self, cx: &mut Ctx<'_>, code: u16) {
        if let Some(j) = self.pickup.joining.take() {
            refuse_newcomer(cx, &j, code);
        }
        self.abandon(cx);
    }

    /// The call ended while a newcomer waited: it hears `487`.
    pub(super) fn pickup_call_over(&mut self, cx: &mut Ctx<'_>) {
        if let Some(j) = self.pickup.joining.take() {
            refuse_newcomer(cx, &j, 487);
        }
    }
}

fn refuse_newcomer(cx: &mut Ctx<'_>, j: &Joining, code: u16) {
    let code = if code < 300 { 500 } else { code };
    let reason = sip::builder::default_reason(code);
    let b = ResponseBuilder::for_request(&j.invite, code, reason).to_tag(&j.tag);
    cx.respond(j.server, b);
}

/// An SDP answer to `offer` that accepts each stream inactive (RFC 3264
/// §6: same m-lines in order, the first format offered, `a=inactive`, no
/// address): what answers the caller's INVITE when a picker takes it,
/// before the picker's own offer can be put to the caller.
pub(super) fn hold_answer(offer: &[u8]) -> Bytes {
    let text = String::from_utf8_lossy(offer);
    let mut out =
        String::from("v=0\r\no=tally 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n");
    let mut format: Option<String> = None;
    for line in text.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            if format.is_some() {
                out.push_str("a=inactive\r\n");
            }
            let mut fields = m.split(' ');
            let media = fields.next().unwrap_or("audio");
            // A stream the offer rejects stays rejected (RFC 3264 §6).
            let port = match fields.next() {
                Some("0") => 0,
                _ => 9,
            };
            let proto = fields.next().unwrap_or("RTP/AVP");
            let first = fields.next().unwrap_or("0").to_owned();
            out.push_str(&format!("m={media} {port} {proto} {first}\r\n"));
            format = Some(first);
        } else if let Some(f) = &format {
            for attr in ["a=rtpmap:", "a=fmtp:"] {
                if line
                    .strip_prefix(attr)
                    .is_some_and(|rest| rest.split(' ').next() == Some(f.as_str()))
                {
                    out.push_str(line);
                    out.push_str("\r\n");
                }
            }
        }
    }
    if format.is_some() {
        out.push_str("a=inactive\r\n");
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::hold_answer;

    #[test]
    fn the_hold_answer_keeps_each_stream_inactive_with_its_first_format() {
        let offer = b"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
                      m=audio 4000 RTP/AVP 96 0 101\r\na=rtpmap:96 opus/48000/2\r\n\
                      a=fmtp:96 useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\n\
                      m=video 4002 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n";
        let answer = String::from_utf8(hold_answer(offer).to_vec()).unwrap();
        assert_eq!(
            answer,
            "v=0\r\no=tally 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
             m=audio 9 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 useinbandfec=1\r\n\
             a=inactive\r\nm=video 9 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\na=inactive\r\n"
        );
        let parsed = sip::sdp::SessionDescription::parse(answer.as_bytes()).unwrap();
        assert!(parsed.is_hold(), "{parsed:?}");
        let rejected = b"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
                         m=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 97\r\n";
        let answer = String::from_utf8(hold_answer(rejected).to_vec()).unwrap();
        assert!(answer.contains("m=audio 9 RTP/AVP 0\r\n"), "{answer}");
        assert!(answer.contains("m=video 0 RTP/AVP 97\r\n"), "{answer}");
    }
}
