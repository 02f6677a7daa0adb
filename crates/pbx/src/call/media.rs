//! Media anchoring in a session (rules in [`crate::media`]): the decision
//! when the call starts, the SDP rewrite where bodies cross from leg to
//! leg, and the relay's life (opened at the start, answered with the call,
//! stopped with `SessionEnded`).
//!
//! Side A is the caller leg, side B the target legs: every target is
//! offered side B's port, and the answer or early SDP of whichever target
//! sent it last describes party B (the winner's 2xx last of all).

use std::net::IpAddr;

use bytes::Bytes;
use cdr::EndReason;
use sip::Message;
use sip::sdp::SessionDescription;

use super::effect::{Ctx, Effect};
use super::leg::{body_of, relayed_response};
use super::{LegRef, Phase, Session};
use crate::media::{Anchored, MediaCommand, RecordingPlan, Side, anchor_sdp, party_from_sdp};
use crate::router::Route;
use sip::builder::ResponseBuilder;

impl Session {
    /// Decides whether this call is relayed (see [`crate::media`]) and, if
    /// so, reserves the relay's ports, opens it and tells it the caller's
    /// SDP. Runs before the first target is INVITEd.
    pub(super) fn anchor_media(&mut self, cx: &mut Ctx<'_>, route: &Route, leaves_by_trunk: bool) {
        let Some(policy) = cx.sv.media else {
            return;
        };
        if matches!(route, Route::NotFound) && !leaves_by_trunk {
            return; // refused at once: nothing to relay
        }
        let Some(caller) = &self.caller else {
            return;
        };
        let tenant = self.tenant.id;
        let user_records = |ext: &str| {
            cx.dir
                .directory
                .user(tenant, ext)
                .is_some_and(|u| u.recording)
        };
        let recorded = match route {
            Route::Extension { extension, .. }
            | Route::Busy { extension, .. }
            | Route::Unavailable { extension, .. } => user_records(extension),
            _ => false,
        } || (self.trunk.inbound_name().is_empty()
            && user_records(&self.caller_party.user));
        let source = caller.leg.peer.addr.ip();
        let caller_sdp = body_of(&caller.invite).and_then(|(ct, body)| sdp_of(&ct, &body));
        let caller_nat = caller_sdp
            .as_ref()
            .is_some_and(|sdp| party_from_sdp(sdp, source).behind_nat);
        let callee_nat = match route {
            Route::Extension { contacts, .. } => contacts.iter().any(|c| {
                sip::uri::Uri::parse(&c.uri)
                    .ok()
                    .and_then(|u| u.sip().and_then(|s| s.host.ip()))
                    .is_some_and(|ip| ip.to_canonical() != c.peer.addr.ip().to_canonical())
            }),
            _ => false,
        };
        if !policy.anchor.decide(recorded, caller_nat || callee_nat)
            && !self.app_needs_relay(cx, route)
        {
            return;
        }
        let Some(relay_ports) = cx.sv.relay_ports.as_mut() else {
            return;
        };
        let Some(ports) = relay_ports.reserve(self.id) else {
            return; // pool exhausted: the call goes on unrelayed
        };
        let recording = recorded.then(|| RecordingPlan {
            caller: self.caller_party.user.clone(),
            callee: self.callee_party.user.clone(),
            started_ms: self.started_ms,
        });
        cx.fx
            .push(Effect::Media(MediaCommand::Open { ports, recording }));
        if let Some(sdp) = caller_sdp {
            let party = party_from_sdp(&sdp, source);
            cx.fx
                .push(Effect::Media(MediaCommand::Party(Side::A, party)));
        }
        self.media = Some(Anchored {
            ports,
            address: policy.address,
        });
    }

    /// `body` as the party on side `to` must receive it: the relay's side
    /// `to` in place of the other party's address. Unchanged when the call
    /// is not anchored or the body is no SDP with audio.
    pub(super) fn rewritten(
        &self,
        body: Option<(String, Bytes)>,
        to: Side,
    ) -> Option<(String, Bytes)> {
        let (ct, bytes) = body?;
        let Some(a) = &self.media else {
            return Some((ct, bytes));
        };
        let Some(mut sdp) = sdp_of(&ct, &bytes) else {
            return Some((ct, bytes));
        };
        if !anchor_sdp(&mut sdp, a.address, a.ports[to as usize]) {
            return Some((ct, bytes));
        }
        Some((ct, Bytes::from(sdp.to_bytes())))
    }

    /// The body of `m`, sent by the party on side `from` (from
    /// `signalling_ip`), as the other party must receive it; the relay
    /// learns the sender's new SDP.
    pub(super) fn carry(
        &mut self,
        cx: &mut Ctx<'_>,
        m: &Message,
        from: Side,
        signalling_ip: IpAddr,
    ) -> Option<(String, Bytes)> {
        let body = body_of(m);
        if self.media.is_none() {
            return body;
        }
        if let Some(sdp) = body.as_ref().and_then(|(ct, b)| sdp_of(ct, b)) {
            let party = party_from_sdp(&sdp, signalling_ip);
            cx.fx.push(Effect::Media(MediaCommand::Party(from, party)));
        }
        let to = match from {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        self.rewritten(body, to)
    }

    /// The relay side of `leg` in the answered call: the bridge's caller
    /// is A, everything else B.
    pub(super) fn media_side(&self, leg: LegRef) -> Side {
        match self.phase {
            Phase::Answered(b) if b.caller == leg => Side::A,
            _ if leg == LegRef::Caller => Side::A,
            _ => Side::B,
        }
    }

    /// The signalling source of `leg`.
    pub(super) fn peer_ip(&self, leg: LegRef) -> Option<IpAddr> {
        match leg {
            LegRef::Caller => self.caller.as_ref().map(|c| c.leg.peer.addr.ip()),
            LegRef::Target(i) => self.targets.get(i).map(|t| t.leg.peer.addr.ip()),
        }
    }

    /// The call was answered: the relay's RTP timeout starts.
    pub(super) fn media_answered(&mut self, cx: &mut Ctx<'_>) {
        if self.media.is_some() {
            cx.fx.push(Effect::Media(MediaCommand::Answered));
        }
    }

    /// The session ended: the relay stops (once) and its report completes
    /// the CDR (the runtime holds the session's last facts until then).
    pub(super) fn media_stop(&mut self, cx: &mut Ctx<'_>) {
        if self.media.take().is_some() {
            cx.fx.push(Effect::Media(MediaCommand::Stop));
        }
    }

    /// The relay saw no RTP for `media.rtp_timeout_secs`: the call is
    /// dead. It ends as when a leg vanishes: BYE on both legs,
    /// `TargetEnded`/`SessionEnded` with `None` (nobody hung up).
    pub(crate) fn media_timed_out(&mut self, cx: &mut Ctx<'_>) {
        if let Phase::Answered(b) = self.phase {
            self.end_answered(cx, b, EndReason::NotApplicable, None);
        } else if self.in_app() {
            self.app_hang_up(cx, EndReason::NotApplicable);
        }
    }
}

/// `body` parsed as SDP, when its type says it is SDP.
fn sdp_of(content_type: &str, body: &[u8]) -> Option<SessionDescription> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if !ct.eq_ignore_ascii_case("application/sdp") {
        return None;
    }
    SessionDescription::parse(body).ok()
}

impl Session {
    /// [`relayed_response`] for a response to a request relayed to leg
    /// `to`, its SDP (if any) rewritten for the leg it goes back to.
    pub(super) fn relayed_with_media(
        &mut self,
        cx: &mut Ctx<'_>,
        request: &Message,
        r: &Message,
        to: LegRef,
    ) -> ResponseBuilder {
        let b = relayed_response(request, r);
        if self.media.is_none() {
            return b;
        }
        let Some(ip) = self.peer_ip(to) else {
            return b;
        };
        match self.carry(cx, r, self.media_side(to), ip) {
            Some((ct, body)) => b.body(&ct, body),
            None => b,
        }
    }
}
