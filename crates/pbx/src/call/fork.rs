//! The targets racing: one INVITE per contact, each in one [`TargetState`];
//! the first 2xx wins, the others are CANCELled (at their first provisional
//! if they have sent none, RFC 3261 §9.1); a 2xx after losing is ACKed and
//! hung up; when every target failed, the caller hears the best failure
//! (RFC 3261 §16.7).
//!
//! A target's CDR life (`TargetAdded` … one of `TargetAnswered`,
//! `TargetFailed`, `TargetNoAnswer`) ends exactly when it leaves the open
//! states ([`TargetState::is_open`]); its SIP life may go on (a CANCEL
//! awaiting its 487, a late 2xx to hang up).

use cdr::{
    CallEventKind, CallType, NoAnswerCause, RerouteReason, TargetAdded, TargetId, UnixMillis,
};
use sip::builder::{RequestBuilder, default_reason};
use sip::dialog::{Dialog, DialogState};
use sip::transaction::{TransactionEvent, TransactionId};
use sip::transport::Peer;
use sip::{HeaderName, Message, Method};

use super::bridge::Bridge;
use super::effect::Ctx;
use super::leg::{Leg, SentAck, send_bye};
use super::reroute::StageOutcome;
use super::{LegRef, Phase, Session, TxnRole};
use crate::context::{ALLOW, InternalError, Written};
use crate::router::Contact;

/// Where one target's INVITE stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetState {
    /// Sent; nothing back yet, so it cannot be CANCELled (RFC 3261 §9.1).
    Calling,
    /// A `100 Trying` came: cancellable, not ringing.
    Trying,
    /// A 18x came (`TargetRinging` was emitted).
    Early,
    /// Stopped before any provisional: CANCEL at the first one.
    CancelWanted,
    /// Stopped and CANCELled; its final response changes nothing.
    Cancelling,
    /// Won the race: bridged with the caller.
    Answered,
    /// Answered after it lost (to the winner, the caller's CANCEL, the ring
    /// timeout): ACKed and sent BYE.
    AnsweredLate,
    /// A final failure came (or the INVITE timed out, or its transport
    /// failed).
    Failed,
}

impl TargetState {
    /// Still in the race: no CDR end event yet.
    pub(crate) fn is_open(self) -> bool {
        matches!(
            self,
            TargetState::Calling | TargetState::Trying | TargetState::Early
        )
    }

    /// Its INVITE has no final response yet: a 2xx may still come, which
    /// the session must ACK and hang up (or a provisional, at which a
    /// wanted CANCEL goes).
    pub(crate) fn awaits_final(self) -> bool {
        self.is_open() || matches!(self, TargetState::CancelWanted | TargetState::Cancelling)
    }
}

#[derive(Debug)]
pub(super) struct Target {
    pub leg: Leg,
    pub id: TargetId,
    pub invite: Message,
    pub txn: TransactionId,
    pub state: TargetState,
    /// The number it was rung for, and the contact URI (`view.rs`).
    pub number: String,
    pub destination: String,
}

impl Session {
    /// INVITEs one contact of `extension` for this call: `TargetAdded`.
    pub(super) fn add_target(
        &mut self,
        cx: &mut Ctx<'_>,
        extension: &str,
        contact: Contact,
        max_forwards: u8,
        reroute_reason: Option<RerouteReason>,
        call_type: CallType,
    ) {
        let target_id = TargetId::from(cx.sv.snowflake.next_id(UnixMillis(cx.clk.unix_ms)));
        let call_id = cx.sv.ids.call_id();
        let tag = cx.sv.ids.tag();
        let local = cx.sv.local_parts(contact.peer.transport);
        // Who this target sees calling (`originate.rs`: the callee, to a
        // caller's device).
        let (from_user, display) = self.presented_to();
        let from = if display.is_empty() {
            format!("<sip:{from_user}@{}>;tag={tag}", self.tenant.domain)
        } else {
            format!(
                "{} <sip:{from_user}@{}>;tag={tag}",
                sip::text::quote(&display),
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
        // Through the proxy the device registered through (RFC 3327).
        for route in &contact.route {
            b = b.header(HeaderName::Route, route);
        }
        if let Some((ct, body)) = self.offer() {
            b = b.body(&ct, body);
        }
        let added = TargetAdded {
            target: target_id,
            call_type,
            caller: from_user,
            callee: extension.to_owned(),
            destination: contact.uri,
            trunk_name: String::new(),
            outbound_caller_id: String::new(),
            did: self.trunk.did().to_owned(),
            reroute_reason,
            user: cx.dir.user_id(self.tenant.id, extension),
        };
        self.launch_target(cx, contact.peer, (call_id, tag), b, added);
    }

    /// Sends a target's INVITE (`b`, in dialog `key`: its Call-ID and the
    /// PBX's From tag) to `peer` and opens the target: `TargetAdded`.
    /// False when the INVITE could not be sent (reported).
    pub(super) fn launch_target(
        &mut self,
        cx: &mut Ctx<'_>,
        peer: Peer,
        key: super::DialogKey,
        b: RequestBuilder,
        mut added: TargetAdded,
    ) -> bool {
        if self.is_queue_callback() {
            added.call_type = cdr::CallType::QueueCallback;
        }
        let index = self.targets.len();
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
        self.own(cx, txn, peer, TxnRole::TargetInvite(index));
        self.index(cx, key, LegRef::Target(index));
        self.push_target(Target {
            leg: Leg::new(peer),
            id: added.target,
            invite,
            txn,
            state: TargetState::Calling,
            number: added.callee.clone(),
            destination: added.destination.clone(),
        });
        cx.emit(CallEventKind::TargetAdded(Box::new(added)));
        true
    }

    pub(super) fn on_target_event(&mut self, cx: &mut Ctx<'_>, i: usize, event: TransactionEvent) {
        match event {
            TransactionEvent::Provisional(r) => self.target_provisional(cx, i, &r),
            TransactionEvent::Final(r) if r.status().is_some_and(|c| c < 300) => {
                self.target_2xx(cx, i, r)
            }
            // A carrier's challenge, answered once (`trunk.rs`).
            TransactionEvent::Final(r)
                if matches!(r.status(), Some(401 | 407)) && self.answer_challenge(cx, i, &r) => {}
            TransactionEvent::Final(r)
                if r.status().is_some_and(|c| c < 400)
                    && self.targets[i].state.is_open()
                    && self.phase == Phase::Ringing
                    && self.target_redirected(cx, i, &r) => {}
            TransactionEvent::Final(r) => {
                let code = r.status().unwrap_or(500);
                let reason = r
                    .reason_phrase()
                    .filter(|p| !p.is_empty())
                    .unwrap_or(default_reason(code))
                    .to_owned();
                self.target_failed(cx, i, code, reason);
            }
            // RFC 3261 §8.1.3.1: a timeout is a 408, a transport error a 503.
            TransactionEvent::Timeout(_) => {
                self.target_failed(cx, i, 408, default_reason(408).into())
            }
            TransactionEvent::TransportError => {
                self.target_failed(cx, i, 503, default_reason(503).into())
            }
            TransactionEvent::Ack(_) | TransactionEvent::Terminated => {}
        }
    }

    /// A 3xx from open target `i`: closes it and follows the redirect when
    /// `reroute.rs` can; false leaves it to fail as usual.
    fn target_redirected(&mut self, cx: &mut Ctx<'_>, i: usize, r: &Message) -> bool {
        let contact = r
            .contacts()
            .next()
            .and_then(Result::ok)
            .and_then(|c| match c {
                sip::headers::Contact::Addr(a) => Some(a.uri.as_str().to_owned()),
                sip::headers::Contact::Wildcard => None,
            });
        let t = &mut self.targets[i];
        let state = t.state;
        // Closed before the new stage starts, so it counts as over.
        t.state = TargetState::Failed;
        if self.follow_redirect(cx, i, contact) {
            if let Some(d) = self.targets[i].leg.dialog.as_mut()
                && d.state() == DialogState::Early
            {
                d.terminate();
            }
            return true;
        }
        self.targets[i].state = state;
        false
    }

    pub(super) fn target_provisional(&mut self, cx: &mut Ctx<'_>, i: usize, r: &Message) {
        let code = r.status().unwrap_or(100);
        let transfer = self.is_transfer_target(i);
        let t = &mut self.targets[i];
        match t.state {
            TargetState::CancelWanted => return self.send_cancel(cx, i),
            TargetState::Calling | TargetState::Trying | TargetState::Early
                if self.phase == Phase::Ringing || transfer => {}
            _ => return,
        }
        if code == 100 {
            if t.state == TargetState::Calling {
                t.state = TargetState::Trying;
            }
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
        if t.state != TargetState::Early {
            t.state = TargetState::Early;
            let target = t.id;
            cx.emit(CallEventKind::TargetRinging { target });
        }
        self.relay_provisional(cx, i, r);
    }

    pub(super) fn target_2xx(&mut self, cx: &mut Ctx<'_>, i: usize, ok: Message) {
        let transfer = self.is_transfer_target(i);
        let t = &mut self.targets[i];
        match t.state {
            TargetState::Answered | TargetState::AnsweredLate => {
                let same = t.leg.dialog.as_ref().is_some_and(|d| {
                    Some(d.id().remote_tag.as_str()) == ok.to().ok().and_then(|to| to.tag())
                });
                if !same {
                    // A second 2xx with another To tag: a fork downstream.
                    let (peer, invite) = (t.leg.peer, t.invite.clone());
                    self.ack_and_bye(cx, peer, &invite, &ok);
                } else if t.leg.owed_ack.is_none() {
                    // The callee missed our ACK. (While the ACK is still owed,
                    // the caller's ACK is awaited; nothing to do.)
                    t.leg.resend_ack(cx, &ok);
                }
            }
            state if state.is_open() && self.phase == Phase::Ringing => self.target_won(cx, i, ok),
            state if state.is_open() && transfer => self.transfer_answered(cx, i, ok),
            _ => {
                // Lost the race with the winner, the caller's CANCEL or the
                // ring timeout: take the call and hang it up.
                t.state = TargetState::AnsweredLate;
                let (peer, invite) = (t.leg.peer, t.invite.clone());
                if let Some((dialog, ack)) = self.ack_and_bye(cx, peer, &invite, &ok) {
                    let t = &mut self.targets[i];
                    t.leg.dialog = Some(dialog);
                    t.leg.last_ack = Some(Box::new(SentAck::new(&ack)));
                }
            }
        }
    }

    /// The first 2xx: target `i` is bridged with the caller, the others
    /// stop ringing.
    fn target_won(&mut self, cx: &mut Ctx<'_>, i: usize, ok: Message) {
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
                // A 2xx the PBX cannot build a dialog from (no Contact):
                // it cannot be ACKed properly, so the target failed.
                cx.internal(InternalError::Unusable2xx(e));
                self.target_failed(cx, i, 502, default_reason(502).into());
                return;
            }
        };
        let t = &mut self.targets[i];
        t.leg.dialog = Some(dialog);
        t.state = TargetState::Answered;
        let target = t.id;
        t.leg.owed_ack = Some(Box::new(ok.clone()));
        self.phase = Phase::Answered(Bridge::new(self.caller_leg(), i));
        self.timers.stop_ringing();
        self.group_member_answered(cx, i);
        cx.emit(CallEventKind::TargetAnswered { target });
        self.stop_all(cx, NoAnswerCause::AnsweredElsewhere);
        self.answer_caller(cx, &ok);
    }

    pub(super) fn target_failed(&mut self, cx: &mut Ctx<'_>, i: usize, code: u16, reason: String) {
        let transfer = self.is_transfer_target(i);
        let t = &mut self.targets[i];
        if let Some(d) = t.leg.dialog.as_mut()
            && d.state() == DialogState::Early
        {
            d.terminate();
        }
        let was_open = t.state.is_open();
        if was_open && transfer {
            return self.transfer_target_failed(cx, i, code);
        }
        if matches!(t.state, TargetState::CancelWanted | TargetState::Cancelling) || was_open {
            t.state = TargetState::Failed;
        }
        if !was_open || self.phase != Phase::Ringing {
            return;
        }
        let target = t.id;
        cx.emit(CallEventKind::TargetFailed {
            target,
            status_code: code,
        });
        self.failures.push((code, reason));
        if self.fail_over(cx, i, code) {
            return;
        }
        if self.targets.iter().all(|t| !t.state.is_open()) {
            let codes = self.failures[self.stage.first_failure..]
                .iter()
                .map(|(c, _)| *c);
            let outcome = StageOutcome::of_failures(codes);
            self.stage_over(cx, outcome);
        }
    }

    /// Stops ringing every open target (`TargetNoAnswer` with `cause`).
    pub(super) fn stop_all(&mut self, cx: &mut Ctx<'_>, cause: NoAnswerCause) {
        for j in 0..self.targets.len() {
            if self.targets[j].state.is_open() {
                let target = self.targets[j].id;
                cx.emit(CallEventKind::TargetNoAnswer { target, cause });
                self.stop_target(cx, j);
            }
        }
    }

    /// Fails every open target with `status_code` and CANCELs it (the PBX
    /// ends the call itself).
    pub(super) fn fail_all(&mut self, cx: &mut Ctx<'_>, status_code: u16) {
        for j in 0..self.targets.len() {
            if self.targets[j].state.is_open() {
                let target = self.targets[j].id;
                cx.emit(CallEventKind::TargetFailed {
                    target,
                    status_code,
                });
                self.stop_target(cx, j);
            }
        }
    }

    /// CANCELs open target `j`'s INVITE now, or at its first provisional.
    pub(super) fn stop_target(&mut self, cx: &mut Ctx<'_>, j: usize) {
        match self.targets[j].state {
            TargetState::Calling => self.targets[j].state = TargetState::CancelWanted,
            TargetState::Trying | TargetState::Early => self.send_cancel(cx, j),
            _ => {}
        }
    }

    /// The CANCEL for target `j`'s INVITE, which had a provisional.
    fn send_cancel(&mut self, cx: &mut Ctx<'_>, j: usize) {
        let t = &mut self.targets[j];
        t.state = TargetState::Cancelling;
        let (txn, peer) = (t.txn, t.leg.peer);
        match cx.sv.txns.cancel(cx.clk.now, txn) {
            Ok(cancel) => self.own(cx, cancel, peer, TxnRole::Cancel),
            Err(error) => cx.internal(InternalError::Refused {
                what: Written::Cancel,
                error,
            }),
        }
    }

    /// ACKs a 2xx the PBX does not want and hangs the dialog up; returns the
    /// dialog and the ACK, to answer retransmissions of the 2xx.
    fn ack_and_bye(
        &mut self,
        cx: &mut Ctx<'_>,
        peer: Peer,
        invite: &Message,
        ok: &Message,
    ) -> Option<(Dialog, Message)> {
        let mut dialog = match Dialog::uac(invite, ok) {
            Ok(d) => d,
            Err(e) => {
                cx.internal(InternalError::Unusable2xx(e));
                return None;
            }
        };
        let local = cx.sv.local_parts(peer.transport);
        let ack = dialog
            .ack(ok, &local.local())
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
        let ack = match ack {
            Ok(ack) => ack,
            Err(e) => {
                cx.internal(e);
                return None;
            }
        };
        cx.transmit(peer, ack.clone());
        if let Some(id) = send_bye(cx, peer, &mut dialog) {
            self.own(cx, id, peer, TxnRole::Bye);
        }
        Some((dialog, ack))
    }
}

/// The final response the caller gets when every target failed (see the
/// module decisions).
pub(super) fn best_failure(failures: &[(u16, String)]) -> (u16, String) {
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

    #[test]
    fn only_the_racing_states_are_open() {
        use TargetState::*;
        for s in [Calling, Trying, Early] {
            assert!(s.is_open(), "{s:?}");
        }
        for s in [CancelWanted, Cancelling, Answered, AnsweredLate, Failed] {
            assert!(!s.is_open(), "{s:?}");
        }
    }
}
