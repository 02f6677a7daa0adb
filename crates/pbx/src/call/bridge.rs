//! The answered call: the caller leg bridged with the winning target.
//! In-dialog requests (re-INVITE, UPDATE, INFO, MESSAGE) are relayed from
//! one side to the other with their bodies; a re-INVITE while another is in
//! progress gets `491` (glare, RFC 3261 §14.1); a 2xx a side sent to a
//! relayed INVITE is ACKed when the other side's ACK arrives (owed ACKs:
//! late offers work); BYE from either side ends the call, and a side that
//! vanishes (a relayed request unanswered, `408`/`481`, no ACK for a 2xx)
//! ends it too.

use cdr::{CallEventKind, EndReason, TargetEnd};
use sip::builder::ResponseBuilder;
use sip::dialog::DialogState;
use sip::transaction::{TransactionEvent, TransactionId};
use sip::{HeaderName, Message, Method};

use super::effect::Ctx;
use super::leg::{SentAck, body_of, send_bye};
use super::{LegRef, Phase, Session, TxnRole};
use crate::context::{ALLOW, InternalError, Written};

/// One side of the bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// The caller leg.
    Caller,
    /// The bridged target's leg.
    Callee,
}

/// The answered pair. A transfer re-bridges by changing `callee`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bridge {
    /// The caller's leg: the caller leg, or (a REST-originated call) the
    /// caller's device that answered, one of the targets.
    pub caller: LegRef,
    /// The target bridged with the caller.
    pub callee: usize,
    /// A relayed re-INVITE is in progress (its client transaction): another
    /// one from either side meanwhile is glare. A transfer's join holds it
    /// too (`transfer.rs`).
    pub(super) reinvite: Option<TransactionId>,
}

impl Bridge {
    pub(super) fn new(caller: LegRef, callee: usize) -> Self {
        Bridge {
            caller,
            callee,
            reinvite: None,
        }
    }
}

/// An in-dialog request relayed from one leg to the other.
#[derive(Debug)]
pub(super) struct Relay {
    /// The server transaction of the request as received.
    server: TransactionId,
    request: Message,
    from: LegRef,
    to: LegRef,
    /// The final response was relayed back.
    done: bool,
}

impl Session {
    /// The leg a request on `leg` is relayed to: the other side of the
    /// answered call.
    fn other(&self, leg: LegRef) -> Option<LegRef> {
        match (self.phase, leg) {
            (Phase::Answered(b), leg) if leg == b.caller => Some(LegRef::Target(b.callee)),
            (Phase::Answered(b), LegRef::Target(i)) if i == b.callee => Some(b.caller),
            _ => None,
        }
        // A referrer that hung up while its transfer went on.
        .filter(|other| !self.xfer.is_ended(*other))
    }

    /// The side `leg` is on, while bridged.
    fn side_of(&self, leg: LegRef) -> Option<Side> {
        match (self.phase, leg) {
            (Phase::Answered(b), leg) if leg == b.caller => Some(Side::Caller),
            (Phase::Answered(b), LegRef::Target(i)) if i == b.callee => Some(Side::Callee),
            _ => None,
        }
    }

    /// An ACK on one of this session's dialogs: the ACK for a 2xx the PBX
    /// sent on that leg, relayed (with its SDP) as the ACK the other leg's
    /// 2xx is owed.
    pub(crate) fn on_ack(&mut self, cx: &mut Ctx<'_>, leg: LegRef, ack: &Message) {
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
        if let Some(side) = self.side_of(leg) {
            self.acked(side);
        }
        if leg == LegRef::Caller && self.in_app() {
            self.app_acked(cx, ack);
        }
        if let Some(other) = self.other(leg) {
            let body = match self.peer_ip(leg) {
                Some(ip) => self.carry(cx, ack, self.media_side(leg), ip),
                None => body_of(ack),
            };
            self.send_owed_ack(cx, other, body);
        }
        self.pickup_acked(cx, leg, ack);
    }

    /// A 2xx to an INVITE that arrived after its transaction ended: the
    /// peer missed the PBX's ACK, which is sent again.
    pub(crate) fn on_stray_2xx(&mut self, cx: &mut Ctx<'_>, leg: LegRef, ok: &Message) {
        if let Some(l) = self.leg_mut(leg) {
            l.resend_ack(cx, ok);
        }
    }

    pub(super) fn on_bye(&mut self, cx: &mut Ctx<'_>, leg: LegRef) {
        if self.transfer_bye(cx, leg) {
            return;
        }
        match (self.phase, leg) {
            (Phase::Answered(b), leg) if leg == b.caller => {
                self.end_answered(cx, b, EndReason::CallerDisconnect, Some(leg))
            }
            (Phase::Answered(b), LegRef::Target(i)) if i == b.callee => {
                self.end_answered(cx, b, EndReason::CalleeDisconnect, Some(leg))
            }
            (Phase::Ringing, LegRef::Caller) if self.in_app() => self.app_caller_bye(cx),
            (Phase::Ringing, LegRef::Caller) => self.caller_gave_up(cx),
            (Phase::Ringing, LegRef::Target(i)) if self.is_answered_device(i) => {
                self.device_hung_up(cx, i)
            }
            // A losing or ended leg: its BYE was answered, nothing else.
            _ => {}
        }
    }

    /// The answered call ends: `TargetEnded` and `SessionEnded` with
    /// `reason`, BYE to every leg but the one that hung up (`by`).
    pub(super) fn end_answered(
        &mut self,
        cx: &mut Ctx<'_>,
        b: Bridge,
        reason: EndReason,
        by: Option<LegRef>,
    ) {
        self.transfer_call_ended(cx, reason);
        let caller_target = match b.caller {
            LegRef::Target(j) if !self.xfer.is_ended(b.caller) => Some(self.targets[j].id),
            _ => None,
        };
        let callee_target =
            (!self.xfer.is_ended(LegRef::Target(b.callee))).then(|| self.targets[b.callee].id);
        for target in caller_target.into_iter().chain(callee_target) {
            cx.emit(CallEventKind::TargetEnded(TargetEnd {
                target,
                reason,
                cost: None,
                quality: None,
            }));
        }
        self.acked(Side::Caller);
        self.acked(Side::Callee);
        self.end(cx, 200, reason);
        for leg in [b.caller, LegRef::Target(b.callee)] {
            if by != Some(leg) && !self.xfer.is_ended(leg) {
                self.hang_up(cx, leg);
            }
        }
    }

    /// A leg vanished: end the answered call with `None`.
    pub(super) fn abandon(&mut self, cx: &mut Ctx<'_>) {
        if let Phase::Answered(b) = self.phase {
            self.end_answered(cx, b, EndReason::NotApplicable, None);
        } else if self.in_app() {
            self.app_hang_up(cx, EndReason::NotApplicable);
        }
    }

    /// BYE on `leg` (after the ACK it is owed, if any).
    pub(super) fn hang_up(&mut self, cx: &mut Ctx<'_>, leg: LegRef) {
        self.send_owed_ack(cx, leg, None);
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
        if let Some(txn) = send_bye(cx, peer, d) {
            self.own(cx, txn, peer, TxnRole::Bye);
        }
    }

    /// The ACK `leg` is owed for its 2xx, with `body` (the other leg's
    /// answer, for a late offer).
    pub(super) fn send_owed_ack(
        &mut self,
        cx: &mut Ctx<'_>,
        leg: LegRef,
        body: Option<(String, bytes::Bytes)>,
    ) {
        let Some(l) = self.leg_mut(leg) else {
            return;
        };
        let Some(ok) = l.owed_ack.take() else {
            return;
        };
        let Some(d) = l.dialog.as_ref() else {
            return;
        };
        let local = cx.sv.local_parts(l.peer.transport);
        let ack = d
            .ack(&ok, &local.local())
            .map_err(|error| InternalError::Dialog {
                what: Written::Ack,
                error,
            })
            .and_then(|b| {
                let b = match body {
                    Some((ct, body)) => b.body(&ct, body),
                    None => b,
                };
                b.build().map_err(|error| InternalError::Unbuildable {
                    what: Written::Ack,
                    error,
                })
            });
        match ack {
            Ok(ack) => {
                cx.transmit(l.peer, ack.clone());
                l.last_ack = Some(Box::new(SentAck::new(&ack)));
            }
            Err(e) => cx.internal(e),
        }
    }

    /// Relays an in-dialog request to the other leg of the answered call.
    pub(super) fn relay_request(
        &mut self,
        cx: &mut Ctx<'_>,
        from: LegRef,
        server: TransactionId,
        request: Message,
    ) {
        let Some(to) = self.other(from) else {
            let code = if self.phase == Phase::Over { 481 } else { 501 };
            cx.reply(server, &request, code);
            return;
        };
        let method = request.method().cloned().unwrap_or(Method::Info);
        let is_invite = method == Method::Invite;
        if is_invite && matches!(self.phase, Phase::Answered(b) if b.reinvite.is_some()) {
            cx.reply(server, &request, 491);
            return;
        }
        let session = self.id;
        let body = match self.peer_ip(from) {
            Some(ip) => self.carry(cx, &request, self.media_side(from), ip),
            None => body_of(&request),
        };
        let Some(l) = self.leg_mut(to) else {
            return;
        };
        let peer = l.peer;
        let Some(d) = l.dialog.as_mut() else {
            cx.reply(server, &request, 481);
            return;
        };
        let local = cx.sv.local_parts(peer.transport);
        let what = Written::Relayed(method.clone());
        let built = d
            .request(method, &local.local())
            .map_err(|error| InternalError::Dialog {
                what: what.clone(),
                error,
            })
            .and_then(|mut b| {
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
                if let Some((ct, body)) = body {
                    b = b.body(&ct, body);
                }
                b.build().map_err(|error| InternalError::Unbuildable {
                    what: what.clone(),
                    error,
                })
            });
        let txn = built.and_then(|m| {
            cx.sv
                .txns
                .send_request(cx.clk.now, peer, m)
                .map_err(|error| InternalError::Refused {
                    what: what.clone(),
                    error,
                })
        });
        let txn = match txn {
            Ok(txn) => txn,
            Err(e) => {
                cx.internal(e);
                cx.reply(server, &request, 500);
                return;
            }
        };
        self.own(cx, txn, peer, TxnRole::Relay);
        if is_invite && let Phase::Answered(b) = &mut self.phase {
            b.reinvite = Some(txn);
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

    /// The relayed re-INVITE is over: another may start.
    fn reinvite_over(&mut self) {
        if let Phase::Answered(b) = &mut self.phase {
            b.reinvite = None;
        }
    }

    pub(super) fn on_relay_event(
        &mut self,
        cx: &mut Ctx<'_>,
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
                    let b = self.relayed_with_media(cx, &request, &r, to);
                    cx.respond(server, b);
                }
            }
            TransactionEvent::Final(r) => {
                let code = r.status().unwrap_or(500);
                let success = (200..300).contains(&code);
                if let Some(d) = self.dialog_mut(to) {
                    let _ = d.receive_response(&r);
                }
                if done {
                    if is_invite
                        && success
                        && let Some(l) = self.leg_mut(to)
                        && l.owed_ack.is_none()
                    {
                        l.resend_ack(cx, &r);
                    }
                    return;
                }
                if let Some(relay) = self.relays.get_mut(&txn) {
                    relay.done = true;
                }
                let mut b = self.relayed_with_media(cx, &request, &r, to);
                let from_peer = self.leg_mut(from).map(|l| l.peer);
                if success
                    && (is_invite || request.method() == Some(&Method::Update))
                    && let Some(peer) = from_peer
                {
                    b = b.header(HeaderName::Contact, cx.sv.contact(peer.transport));
                }
                if success && is_invite {
                    b = b
                        .header(HeaderName::Allow, ALLOW)
                        .header(HeaderName::XSessionId, self.id);
                }
                let sent = cx.respond(server, b);
                if is_invite {
                    self.reinvite_over();
                    if success {
                        if let Some(l) = self.leg_mut(to) {
                            l.owed_ack = Some(Box::new(r));
                        }
                        if self.phase == Phase::Over {
                            // The call ended meanwhile: ACK at once.
                            self.send_owed_ack(cx, to, None);
                        } else if let (Some(sent), Some(side)) = (sent, self.side_of(from)) {
                            let cseq = request.cseq().map_or(0, |c| c.seq);
                            self.await_ack(cx, side, sent, cseq);
                        }
                    }
                }
                if matches!(code, 408 | 481) {
                    self.abandon(cx);
                }
            }
            TransactionEvent::Timeout(_) | TransactionEvent::TransportError => {
                if !done {
                    if let Some(relay) = self.relays.get_mut(&txn) {
                        relay.done = true;
                    }
                    cx.respond(server, ResponseBuilder::reply(&request, 408));
                    if is_invite {
                        self.reinvite_over();
                    }
                }
                self.abandon(cx);
            }
            TransactionEvent::Ack(_) | TransactionEvent::Terminated => {}
        }
    }
}
