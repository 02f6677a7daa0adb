//! REST-originated calls (`POST /api/sessions`, SPEC §7): the PBX calls
//! the caller first, then the callee, and bridges them (third-party call
//! control, RFC 3725).
//!
//! ```text
//!  PBX ── INVITE (no SDP) ──▶ each caller device     TargetAdded per device (the CDR's first targets)
//!      ◀── 200 (offer) ─────  the first to answer    TargetAnswered; the other devices CANCELled
//!      ── INVITE (offer) ───▶ callee, routed as a call from the caller (forwarding applies)
//!      ◀── 200 (answer) ────  callee                  TargetAnswered
//!      ── ACK (answer) ─────▶ caller device; ACK ──▶ callee: bridged
//! ```
//!
//! The caller's devices are targets `0..devices` of the session: they race
//! like any fork (`fork.rs`), with the caller's ring timeout, but a 3xx
//! from one is its failure (a redirect would ring someone else in the
//! caller's place) and the caller's forwarding rules do not apply (the
//! call is placed *for* the caller, not *to* it). There is no caller leg
//! (`Session::caller` is `None`): once a device answers, the bridge's
//! caller side is that target ([`super::bridge::Bridge::caller`]), and the
//! callee's stage is rung exactly as a call the caller dialled.
//!
//! # Decisions
//!
//! - **Offer/answer: late offer to the caller.** The caller's devices are
//!   INVITEd without SDP; the answering device's 200 carries the offer,
//!   which goes to the callee in its INVITE; the callee's 200 answer goes
//!   in the ACK to the caller's device, and the callee is ACKed at once.
//!   Media flows end to end with no media server (RFC 3725 flow I). The
//!   cost: the caller's device repeats its 200 until the ACK and gives up
//!   after 64·T1 (32 s) with a BYE, so a callee that rings longer loses the
//!   call (`caller_disconnect`); the default ring timeout (30 s) fits.
//! - **Ending before the callee answers** (its stage failed or rang out,
//!   the call is destroyed, the node stops): the device's 200 is ACKed
//!   with an answer that rejects every offered stream (port 0, RFC 3264
//!   §6; RFC 3261 §13.2.2.4 wants a valid answer in that ACK), then BYE.
//! - **The CDR.** `caller`/`callee` are the two numbers, `direction` is
//!   `ext`, `user_data` is echoed, `call_id` is the Call-ID of the first
//!   INVITE the PBX sent (to the caller's first device). The caller's
//!   devices are the first targets (`caller`: the callee's number, which
//!   their From shows, so the phone says whom it will be connected to);
//!   the callee's targets follow. A device answering makes the call
//!   `answered` (SPEC §2: the first target that answered): when the callee
//!   then fails (busy, no answer, unknown), the call is `answered`,
//!   `status_code "0"`, `ended_reason: None`, the caller's target ends
//!   `None` and the callee's target carries the failure. When no device
//!   answers, the call is `noanswer`/`fail` with the caller's outcome
//!   (`408` ring timeout, the devices' best failure) and no callee target.
//! - **The caller hangs up while the callee rings** (BYE from its device):
//!   the callee's targets are CANCELled (`cancelled`, 487), the caller's
//!   target and the call end `caller_disconnect`.

use bytes::Bytes;
use cdr::{
    CallEvent, CallEventKind, Direction, EndReason, NoAnswerCause, Party, SessionId, SessionStart,
    TargetEnd, UnixMillis,
};
use sip::Message;
use sip::builder::default_reason;
use sip::dialog::Dialog;
use sip::transaction::TransactionEvent;

use super::effect::{Ctx, Effect};
use super::fork::TargetState;
use super::leg::body_of;
use super::timer::{Timer, TimerTable};
use super::{LegRef, Phase, Session, TenantInfo};
use crate::context::InternalError;
use crate::directory::Forwarding;
use crate::router::{Contact, Route};

/// What the engine checked before originating a call.
pub(crate) struct Originate {
    pub session_id: SessionId,
    pub tenant: TenantInfo,
    pub caller: Party,
    pub callee: Party,
    /// The caller's live devices and ring timeout.
    pub contacts: Vec<Contact>,
    pub ring_timeout: std::time::Duration,
    pub user_data: String,
    /// The display name the callee sees (default: the caller's).
    pub caller_id: Option<String>,
    /// A queue's callback call (`queue_callback.rs`): every target is a
    /// `queue_callback` one.
    pub queue_callback: Option<super::queue_callback::CallbackLeg>,
}

/// What a REST-originated session keeps about its origin.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    /// Targets `0..devices` are the caller's devices.
    devices: usize,
    /// The caller's device that answered (bridged once the callee answers).
    answered: Option<usize>,
    caller_id: Option<String>,
    pub user_data: String,
    pub queue_callback: Option<super::queue_callback::CallbackLeg>,
}

impl Origin {
    /// The caller's device that answered, if one did.
    pub(super) fn answered_device(&self) -> Option<usize> {
        self.answered
    }
}

impl Session {
    /// Starts a REST-originated call: `SessionStarted`, then an INVITE
    /// without SDP to each of the caller's devices.
    pub(crate) fn originate(cx: &mut Ctx<'_>, o: Originate) -> Session {
        let Originate {
            session_id,
            tenant,
            caller,
            callee,
            contacts,
            ring_timeout,
            user_data,
            caller_id,
            queue_callback,
        } = o;
        let direction = match &queue_callback {
            Some(leg) if leg.external => Direction::Outbound,
            _ => Direction::Extension,
        };
        let recording =
            super::media::Recording::not_relayed(cx, tenant.id, [&caller.user, &callee.user]);
        let mut s = Session {
            id: session_id,
            tenant,
            caller_party: caller.clone(),
            callee_party: callee.clone(),
            started_ms: cx.clk.unix_ms,
            caller: None,
            origin: Some(Box::new(Origin {
                devices: 0,
                answered: None,
                caller_id,
                user_data: user_data.clone(),
                queue_callback,
            })),
            targets: Vec::new(),
            phase: Phase::Ringing,
            timers: TimerTable::default(),
            failures: Vec::new(),
            stage: Default::default(),
            hops: 0,
            // Forwarding from the callee back to the caller is a loop.
            visited: vec![caller.user.clone()],
            redirects: 0,
            relays: Default::default(),
            trunk: super::trunk::TrunkLegs::new(None),
            dialog_keys: Vec::new(),
            xfer: Default::default(),
            // RFC 3725 flow I: media end to end, never anchored.
            media: None,
            recording,
            pickup: Default::default(),
            apps: Default::default(),
        };
        let at = cx.fx.len();
        let route = Route::Extension {
            extension: caller.user.clone(),
            display_name: caller.display_name.clone(),
            ring_timeout,
            contacts,
            forwarding: Forwarding::default(),
        };
        s.ring_route(cx, route, None);
        if let Some(o) = s.origin.as_mut() {
            o.devices = s.targets.len();
        }
        // The CDR's call_id is the first INVITE's, known only once it is
        // built: the start goes before the targets' facts it preceded.
        let call_id = s
            .targets
            .first()
            .and_then(|t| t.invite.call_id().ok())
            .unwrap_or_default()
            .to_owned();
        let caller_user = cx.dir.user_id(s.tenant.id, &caller.user);
        let callee_user = cx.dir.user_id(s.tenant.id, &callee.user);
        let start = CallEventKind::SessionStarted(Box::new(SessionStart {
            session_id,
            tenant_id: s.tenant.id,
            tenant_name: s.tenant.name.clone(),
            call_id,
            direction,
            caller,
            callee,
            did: String::new(),
            trunk_name: String::new(),
            outbound_caller_id: String::new(),
            user_data,
            caller_user,
            callee_user,
        }));
        let event = CallEvent::new(UnixMillis(cx.clk.unix_ms), start);
        cx.fx.insert(at, Effect::CallEvent(event));
        s
    }

    /// Target `i` is one of the caller's devices of an originated call.
    pub(super) fn is_caller_device(&self, i: usize) -> bool {
        self.origin.as_ref().is_some_and(|o| i < o.devices)
    }

    /// Target `i` is the caller's device that answered.
    pub(super) fn is_answered_device(&self, i: usize) -> bool {
        self.origin.as_ref().is_some_and(|o| o.answered == Some(i))
    }

    /// The leg on the bridge's caller side.
    pub(super) fn caller_leg(&self) -> LegRef {
        match self.origin.as_ref().and_then(|o| o.answered) {
            Some(j) => LegRef::Target(j),
            None => LegRef::Caller,
        }
    }

    /// The user and display name a new target's INVITE shows as calling:
    /// the caller's (or the `caller_id` asked for), except to the caller's
    /// own devices, which are shown the callee.
    pub(super) fn presented_to(&self) -> (String, String) {
        if let Some(shown) = self.transfer_presented() {
            return shown;
        }
        match self.origin.as_deref() {
            Some(o) if o.answered.is_none() => (
                self.callee_party.user.clone(),
                self.callee_party.display_name.clone(),
            ),
            Some(Origin {
                caller_id: Some(shown),
                ..
            }) => (self.caller_party.user.clone(), shown.clone()),
            _ => (
                self.caller_party.user.clone(),
                self.caller_party.display_name.clone(),
            ),
        }
    }

    /// The SDP offer new targets get: the caller's INVITE's, or the 200 of
    /// the caller's device that answered (none while ringing the caller).
    pub(super) fn offer(&self) -> Option<(String, Bytes)> {
        if self.transfer_rings() {
            // Late offer: C's 200 offers, the remaining party answers.
            return None;
        }
        if self.answered_by_pbx() {
            return self.app_offer();
        }
        match (&self.caller, &self.origin) {
            (Some(c), _) => self.rewritten(body_of(&c.invite), crate::media::Side::B),
            (None, Some(o)) => o
                .answered
                .and_then(|j| self.targets[j].leg.owed_ack.as_deref())
                .and_then(body_of),
            (None, None) => None,
        }
    }

    /// An event of the INVITE to caller's device `i`.
    pub(super) fn on_device_event(&mut self, cx: &mut Ctx<'_>, i: usize, event: TransactionEvent) {
        let racing = self.targets[i].state.is_open()
            && self.phase == Phase::Ringing
            && self.origin.as_ref().is_some_and(|o| o.answered.is_none());
        match event {
            TransactionEvent::Final(r) if r.status().is_some_and(|c| c < 300) && racing => {
                self.device_answered(cx, i, r)
            }
            // Not followed: a redirect would ring someone in the caller's place.
            TransactionEvent::Final(r) if r.status().is_some_and(|c| (300..400).contains(&c)) => {
                let code = r.status().unwrap_or(480);
                let reason = r.reason_phrase().unwrap_or(default_reason(code)).to_owned();
                self.target_failed(cx, i, code, reason)
            }
            event => self.on_target_event(cx, i, event),
        }
    }

    /// The first of the caller's devices answered (its 200 holds the
    /// offer): the other devices stop, and the callee is rung.
    fn device_answered(&mut self, cx: &mut Ctx<'_>, i: usize, ok: Message) {
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
                self.target_failed(cx, i, 502, default_reason(502).into());
                return;
            }
        };
        t.leg.dialog = Some(dialog);
        t.state = TargetState::Answered;
        t.leg.owed_ack = Some(Box::new(ok));
        let target = t.id;
        if let Some(o) = self.origin.as_mut() {
            o.answered = Some(i);
        }
        self.timers.stop(Timer::RingTimeout);
        cx.emit(CallEventKind::TargetAnswered { target });
        self.stop_all(cx, NoAnswerCause::AnsweredElsewhere);
        let callee = self.callee_party.user.clone();
        self.visited.push(callee.clone());
        if self.calls_back_outside() {
            // A queue's callback to a number outside: out by the outbound
            // rules, as if the agent dialled it.
            let agent = self.caller_party.user.clone();
            match cx
                .dir
                .outbound(self.tenant.id, Some(&agent), Some(&agent), &callee)
            {
                Some(call) => return self.ring_outbound(cx, call, None),
                None => return self.ring_route(cx, Route::NotFound, None),
            }
        }
        let route = cx.dir.route(cx.clk.now, self.tenant.id, &callee);
        self.ring_route(cx, route, None);
    }

    /// A queue's callback call to a number outside the tenant.
    fn calls_back_outside(&self) -> bool {
        self.origin
            .as_ref()
            .and_then(|o| o.queue_callback.as_ref())
            .is_some_and(|leg| leg.external)
    }

    /// Every target of a queue's callback call is a `queue_callback` one.
    pub(super) fn is_queue_callback(&self) -> bool {
        self.origin
            .as_ref()
            .is_some_and(|o| o.queue_callback.is_some())
    }

    /// The callee answered (`ok`, with its SDP answer): the caller's device
    /// gets its ACK with that answer, the callee its ACK; they are bridged.
    pub(super) fn bridge_originated(&mut self, cx: &mut Ctx<'_>, ok: &Message) {
        let Phase::Answered(b) = self.phase else {
            return;
        };
        self.send_owed_ack(cx, b.caller, body_of(ok));
        self.send_owed_ack(cx, LegRef::Target(b.callee), None);
        self.callback_connected(cx);
    }

    /// An originated call ends before the callee answered (`code` is what
    /// an inbound caller would have heard). With no device answered, the
    /// call ends with it; else the device is ACKed with an answer
    /// rejecting its offer and sent BYE, and the call, answered, ends
    /// `why` (`None` unless the caller gave up).
    pub(super) fn originated_over(&mut self, cx: &mut Ctx<'_>, code: u16, why: EndReason) {
        let Some(j) = self.origin.as_ref().and_then(|o| o.answered) else {
            return self.end(cx, code, why);
        };
        let why = match why {
            EndReason::Cancelled => EndReason::NotApplicable,
            why => why,
        };
        let reject = self.targets[j]
            .leg
            .owed_ack
            .as_deref()
            .and_then(body_of)
            .map(|(ct, offer)| (ct, reject_answer(&offer)));
        self.send_owed_ack(cx, LegRef::Target(j), reject);
        let target = self.targets[j].id;
        cx.emit(CallEventKind::TargetEnded(TargetEnd {
            target,
            reason: why,
            cost: None,
            quality: None,
        }));
        self.end(cx, 200, why);
        self.hang_up(cx, LegRef::Target(j));
    }

    /// The caller's device that answered hung up while the callee rang.
    pub(super) fn device_hung_up(&mut self, cx: &mut Ctx<'_>, j: usize) {
        // Its BYE ends the dialog: no ACK is owed any more.
        self.targets[j].leg.owed_ack = None;
        self.timers.stop(Timer::RingTimeout);
        self.stop_all(cx, NoAnswerCause::CallerCancelled);
        let target = self.targets[j].id;
        cx.emit(CallEventKind::TargetEnded(TargetEnd {
            target,
            reason: EndReason::CallerDisconnect,
            cost: None,
            quality: None,
        }));
        self.end(cx, 200, EndReason::CallerDisconnect);
    }
}

/// An SDP answer rejecting every stream of `offer` (RFC 3264 §6: port 0,
/// the offer's formats repeated), for a 2xx the PBX must ACK but cannot
/// use.
pub(super) fn reject_answer(offer: &[u8]) -> Bytes {
    let text = String::from_utf8_lossy(offer);
    let mut out =
        String::from("v=0\r\no=tally 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n");
    for line in text.lines() {
        let Some(m) = line.trim_end().strip_prefix("m=") else {
            continue;
        };
        let mut fields = m.split(' ');
        let media = fields.next().unwrap_or("audio");
        let _port = fields.next();
        let rest: Vec<&str> = fields.collect();
        out.push_str(&format!("m={media} 0 {}\r\n", rest.join(" ")));
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::reject_answer;

    #[test]
    fn the_rejecting_answer_keeps_each_stream_with_port_zero() {
        let offer = b"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
                      m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n\
                      m=video 4002 RTP/AVP 96\r\n";
        let answer = String::from_utf8(reject_answer(offer).to_vec()).unwrap();
        assert_eq!(
            answer,
            "v=0\r\no=tally 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
             m=audio 0 RTP/AVP 0 8 101\r\nm=video 0 RTP/AVP 96\r\n"
        );
        let parsed = sip::sdp::SessionDescription::parse(answer.as_bytes());
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}
