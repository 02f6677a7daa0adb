//! The caller leg: the PBX as the UAS of the caller's INVITE. Provisionals
//! from the targets reach it in its one early dialog; it gets exactly one
//! final answer (the winner's 2xx, the best failure, 487 when it cancels,
//! 408 at the ring timeout, 503 at shutdown); its CANCEL (or BYE while
//! nobody answered) stops every target.

use bytes::Bytes;
use cdr::{EndReason, NoAnswerCause};
use sip::builder::{ResponseBuilder, default_reason};
use sip::dialog::Dialog;
use sip::transaction::TransactionId;
use sip::transport::Transport;
use sip::{HeaderName, Message};

use super::bridge::Side;
use super::effect::Ctx;
use super::leg::{Leg, body_of};
use super::{LegRef, Phase, Session};
use crate::context::{ALLOW, InternalError};
use crate::media::Side as MediaSide;

/// Where the caller's INVITE stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CallerState {
    /// No final response yet: provisionals may still be relayed.
    Waiting,
    /// The winner's 2xx was relayed.
    Answered,
    /// A final failure was sent.
    Refused,
}

#[derive(Debug)]
pub(super) struct Caller {
    pub leg: Leg,
    pub invite: Message,
    pub server: TransactionId,
    /// The PBX's To tag on this leg.
    pub tag: String,
    pub state: CallerState,
}

impl Caller {
    pub(super) fn new(leg: Leg, invite: Message, server: TransactionId, tag: String) -> Self {
        Caller {
            leg,
            invite,
            server,
            tag,
            state: CallerState::Waiting,
        }
    }
}

impl Session {
    /// The caller's CANCEL (RFC 3261 §9.2): `200` to it and, while nobody
    /// answered, `487` to the INVITE and CANCEL to every target.
    pub(crate) fn on_cancel(&mut self, cx: &mut Ctx<'_>, id: TransactionId, cancel: &Message) {
        let Some(caller) = &self.caller else {
            return;
        };
        let ok = ResponseBuilder::reply(cancel, 200).to_tag(&caller.tag);
        let waiting = caller.state == CallerState::Waiting;
        cx.respond(id, ok);
        if self.phase == Phase::Ringing && waiting {
            self.caller_gave_up(cx);
        }
    }

    /// The caller cancelled (CANCEL, or BYE on the early dialog).
    pub(super) fn caller_gave_up(&mut self, cx: &mut Ctx<'_>) {
        self.stop_all(cx, NoAnswerCause::CallerCancelled);
        self.fail_caller(cx, 487, "Request Terminated", EndReason::Cancelled);
    }

    /// A 18x from target `i` relayed to the caller, in the caller leg's one
    /// early dialog.
    pub(super) fn relay_provisional(&mut self, cx: &mut Ctx<'_>, i: usize, r: &Message) {
        let from_ip = self.targets[i].leg.peer.addr.ip();
        let body = self.carry(cx, r, MediaSide::B, from_ip);
        let Some(caller) = self
            .caller
            .as_ref()
            .filter(|c| c.state == CallerState::Waiting)
        else {
            return;
        };
        let code = r.status().unwrap_or(180);
        let reason = r.reason_phrase().unwrap_or(default_reason(code));
        let mut b = ResponseBuilder::for_request(&caller.invite, code, reason)
            .to_tag(&caller.tag)
            .header(
                HeaderName::Contact,
                cx.sv.contact(caller.leg.peer.transport),
            );
        if let Some((ct, body)) = body {
            b = b.body(&ct, body);
        }
        if let Some(sent) = cx.respond(caller.server, b) {
            self.caller_response_sent(cx, &sent);
        }
    }

    /// The winner's 2xx (`ok`), relayed to the caller and repeated until
    /// its ACK.
    pub(super) fn answer_caller(&mut self, cx: &mut Ctx<'_>, ok: &Message) {
        if self.caller.is_none() {
            return self.bridge_originated(cx, ok);
        }
        if self.answered_by_pbx() {
            return self.app_bridged(cx, ok);
        }
        let callee = match self.phase {
            Phase::Answered(b) => LegRef::Target(b.callee),
            _ => LegRef::Caller,
        };
        let body = match self.peer_ip(callee) {
            Some(ip) if callee != LegRef::Caller => self.carry(cx, ok, MediaSide::B, ip),
            _ => body_of(ok),
        };
        self.media_answered(cx);
        self.answer_caller_with(cx, body);
    }

    /// The caller's 200 with `body`, repeated until its ACK.
    pub(super) fn answer_caller_with(&mut self, cx: &mut Ctx<'_>, body: Option<(String, Bytes)>) {
        let Some(caller) = self.caller.as_mut() else {
            return;
        };
        let mut b = ResponseBuilder::for_request(&caller.invite, 200, "OK")
            .to_tag(&caller.tag)
            .header(
                HeaderName::Contact,
                cx.sv.contact(caller.leg.peer.transport),
            )
            .header(HeaderName::Allow, ALLOW)
            .header(HeaderName::XSessionId, self.id);
        if let Some((ct, body)) = body {
            b = b.body(&ct, body);
        }
        caller.state = CallerState::Answered;
        let cseq = caller.invite.cseq().map_or(0, |c| c.seq);
        if let Some(sent) = cx.respond(caller.server, b) {
            self.caller_response_sent(cx, &sent);
            self.await_ack(cx, Side::Caller, sent, cseq);
        }
    }

    /// Sends the caller a final failure and ends the session.
    pub(super) fn fail_caller(
        &mut self,
        cx: &mut Ctx<'_>,
        code: u16,
        reason: &str,
        why: EndReason,
    ) {
        if self.in_app() {
            // The PBX answered the caller: no final failure can reach it.
            return self.app_hang_up(cx, EndReason::NotApplicable);
        }
        let Some(caller) = self.caller.as_mut() else {
            return self.originated_over(cx, code, why);
        };
        if caller.state == CallerState::Waiting {
            caller.state = CallerState::Refused;
            let b = ResponseBuilder::for_request(&caller.invite, code, reason).to_tag(&caller.tag);
            if let Some(sent) = cx.respond(caller.server, b)
                && let Some(d) = caller.leg.dialog.as_mut()
            {
                let _ = d.response_sent(&sent);
            }
        }
        self.end(cx, code, why);
    }

    /// A tagged response sent on the caller leg: creates its dialog, or
    /// moves it on.
    fn caller_response_sent(&mut self, cx: &mut Ctx<'_>, sent: &Message) {
        let Some(caller) = self.caller.as_mut() else {
            return;
        };
        match caller.leg.dialog.as_mut() {
            Some(d) => {
                let _ = d.response_sent(sent);
            }
            None => {
                let tls = matches!(caller.leg.peer.transport, Transport::Tls | Transport::Wss);
                let seq = cx.sv.ids.first_cseq();
                match Dialog::uas(&caller.invite, sent, tls, seq) {
                    Ok(d) => caller.leg.dialog = Some(d),
                    Err(e) => cx.internal(InternalError::CallerDialog(e)),
                }
            }
        }
    }
}
