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
use cdr::{EndReason, RecordingError, RecordingFailure, TenantId};
use sip::Message;
use sip::sdp::SessionDescription;

use super::effect::{Ctx, Effect};
use super::leg::{body_of, relayed_response};
use super::reroute::{MAX_HOPS, internal_number};
use super::{LegRef, Phase, Session};
use crate::directory::Directory;
use crate::media::{Anchored, MediaCommand, RecordingPlan, Side, anchor_sdp, party_from_sdp};
use crate::router::Route;
use sip::builder::ResponseBuilder;

impl Session {
    /// Decides whether this call is relayed (see [`crate::media`]) and, if
    /// so, reserves the relay's ports, opens it and tells it the caller's
    /// SDP. Runs before the first target is INVITEd. A recording that
    /// cannot be made is remembered for the CDR (`recording_error`).
    pub(super) fn anchor_media(&mut self, cx: &mut Ctx<'_>, route: &Route, leaves_by_trunk: bool) {
        if matches!(route, Route::NotFound) && !leaves_by_trunk {
            return; // refused at once: nothing to relay
        }
        let Some(caller) = &self.caller else {
            return;
        };
        let tenant = self.tenant.id;
        let dir = cx.dir.directory;
        let user_records = |ext: &str| dir.user(tenant, ext).is_some_and(|u| u.recording);
        let first = match route {
            Route::Extension { extension, .. }
            | Route::Busy { extension, .. }
            | Route::Unavailable { extension, .. } => Some(extension.as_str()),
            Route::Group(g) => Some(g.number.as_str()),
            // The PBX answers these itself; who they hand on to is decided
            // by the caller's keys or the queue's agents, not by routing, so
            // nobody is looked ahead to (the tenant's and the caller's flags
            // still count).
            Route::Ivr(_) | Route::Queue(_) | Route::AgentCode(_) | Route::NotFound => None,
        };
        // A group's number is nobody's: its members count when they answer.
        let recorded = dir.tenant_records(tenant)
            || first.is_some_and(user_records)
            || (self.trunk.inbound_name().is_empty() && user_records(&self.caller_party.user));
        let provisional = !recorded
            && first.is_some_and(|n| reaches_recording_user(dir, tenant, &self.tenant.domain, n));
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
        let wanted = recorded || provisional;
        let not_anchored = |reason, detail: &str| {
            wanted.then(|| RecordingError {
                reason,
                detail: detail.to_owned(),
            })
        };
        let Some(policy) = cx.sv.media else {
            let why = cx.sv.media_off.as_deref().unwrap_or("no media relay");
            let error = not_anchored(RecordingFailure::MediaOff, why);
            return self.recording_not_made(error, recorded);
        };
        if !policy.anchor.decide(wanted, caller_nat || callee_nat)
            && !self.app_needs_relay(cx, route)
        {
            let error = not_anchored(RecordingFailure::MediaOff, "media.anchor is \"never\"");
            return self.recording_not_made(error, recorded);
        }
        let Some(relay_ports) = cx.sv.relay_ports.as_mut() else {
            let error = not_anchored(RecordingFailure::MediaOff, "no media relay");
            return self.recording_not_made(error, recorded);
        };
        let Some(ports) = relay_ports.reserve(self.id) else {
            // Pool exhausted: the call goes on unrelayed.
            let error = not_anchored(
                RecordingFailure::NoPorts,
                "no free RTP port pair in media.rtp_ports",
            );
            return self.recording_not_made(error, recorded);
        };
        let recording = wanted.then(|| RecordingPlan {
            caller: self.caller_party.user.clone(),
            callee: self.callee_party.user.clone(),
            started_ms: self.started_ms,
            provisional,
        });
        self.recording.provisional = provisional;
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

    /// A recording that should be made cannot be (the call is not
    /// anchored): the CDR says why now if the call is recorded whoever
    /// answers, else only if a recording user answers.
    fn recording_not_made(&mut self, error: Option<RecordingError>, recorded: bool) {
        if recorded {
            self.recording.error = error;
        } else {
            self.recording.unanchored = error;
        }
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

    /// The call was answered: the relay's RTP timeout starts. When the
    /// one who answered records, a recording made in case is kept (or,
    /// when the call could not be anchored, the CDR says why there is
    /// none).
    pub(super) fn media_answered(&mut self, cx: &mut Ctx<'_>) {
        let answerer_records = match self.phase {
            Phase::Answered(b) => self.targets.get(b.callee).is_some_and(|t| {
                cx.dir
                    .directory
                    .user(self.tenant.id, &t.number)
                    .is_some_and(|u| u.recording)
            }),
            _ => false,
        };
        if answerer_records && let Some(error) = self.recording.unanchored.take() {
            self.recording.error = Some(error);
        }
        if self.media.is_none() {
            return;
        }
        cx.fx.push(Effect::Media(MediaCommand::Answered));
        if answerer_records && self.recording.provisional {
            self.recording.provisional = false;
            cx.fx.push(Effect::Media(MediaCommand::Record));
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

/// What a session knows about its recording (see [`crate::media`],
/// "Which calls are recorded").
#[derive(Debug, Default)]
pub(crate) struct Recording {
    /// Recorded in case: kept only if a recording user answers.
    provisional: bool,
    /// Why a recording would be missing if a recording user answered (the
    /// call is not anchored).
    unanchored: Option<RecordingError>,
    /// The CDR's `recording_error`, as far as the engine knows it.
    pub error: Option<RecordingError>,
}

impl Recording {
    /// A call the PBX does not relay (started over REST): if its tenant
    /// or one of `users` records, the CDR says why there is no recording.
    pub(super) fn not_relayed(cx: &Ctx<'_>, tenant: TenantId, users: [&str; 2]) -> Recording {
        let dir = cx.dir.directory;
        let wanted = dir.tenant_records(tenant)
            || users
                .iter()
                .any(|u| dir.user(tenant, u).is_some_and(|u| u.recording));
        Recording {
            error: wanted.then(|| RecordingError {
                reason: RecordingFailure::NotRelayed,
                detail: "calls started over REST are not relayed (RFC 3725 flow I)".to_owned(),
            }),
            ..Recording::default()
        }
    }
}

/// Whether a user who records can be reached from `number` (a user or a
/// ring group of `tenant`): its forwarding destinations, a group's
/// members and no-answer destination, and theirs in turn, at most
/// [`MAX_HOPS`] moves away. A disabled user answers nothing and forwards
/// nothing.
fn reaches_recording_user(dir: &Directory, tenant: TenantId, domain: &str, number: &str) -> bool {
    let mut seen: Vec<String> = Vec::new();
    let mut next = vec![(number.to_owned(), 0usize)];
    while let Some((number, hops)) = next.pop() {
        if seen.contains(&number) {
            continue;
        }
        seen.push(number.clone());
        let mut onward: Vec<&str> = Vec::new();
        if let Some(u) = dir.user(tenant, &number) {
            if !u.enabled {
                continue;
            }
            if u.recording {
                return true;
            }
            onward.extend(u.forwarding.destinations());
        } else if let Some(g) = dir.group(tenant, &number) {
            let member_records = |m: &crate::directory::Extension| {
                dir.user(tenant, m.as_str())
                    .is_some_and(|u| u.enabled && u.recording)
            };
            if g.members.iter().any(member_records) {
                return true;
            }
            onward.extend(g.no_answer.as_deref());
        }
        if hops < MAX_HOPS {
            next.extend(
                onward
                    .into_iter()
                    .filter_map(|d| internal_number(domain, d))
                    .map(|n| (n, hops + 1)),
            );
        }
    }
    false
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

impl Session {
    /// Re-anchoring (issue 11): a transfer or pickup re-bridges the call,
    /// and `body` comes from the party that is (or is about to be) on side
    /// `from`, signalling from `ip`. The relay learns it as that side's
    /// party (its latch cleared), and the party on the other side gets it
    /// rewritten to the relay's port for that side. Unchanged when the call
    /// is not anchored or the body is no SDP.
    pub(super) fn reanchored(
        &mut self,
        cx: &mut Ctx<'_>,
        body: Option<(String, Bytes)>,
        from: Side,
        ip: Option<IpAddr>,
    ) -> Option<(String, Bytes)> {
        if self.media.is_none() {
            return body;
        }
        if let (Some(sdp), Some(ip)) = (body.as_ref().and_then(|(ct, b)| sdp_of(ct, b)), ip) {
            let party = party_from_sdp(&sdp, ip);
            cx.fx.push(Effect::Media(MediaCommand::Party(from, party)));
        }
        self.rewritten(body, other_side(from))
    }
}

/// The relay side facing the other party.
pub(super) fn other_side(side: Side) -> Side {
    match side {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}
