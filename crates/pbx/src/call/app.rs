//! The PBX answering a call itself (issue 14): an *application* target
//! (an IVR today) that answers at once with the relay's SDP, plays audio
//! to the caller (side A of the relay), hears the caller's digits (RFC
//! 4733 reported by the relay as `Input::Digit`, or SIP INFO), and hands
//! the call on.
//!
//! # The CDR (SPEC §3, "IVR")
//!
//! The application is a target (`TargetAdded`, then `TargetAnswered` in
//! the same step: it rang at its answer); when it hands the call on it
//! ends `referred` and the next destination's devices are new targets of
//! the same session (`call_update_info` names the new callee). The caller
//! hanging up while it listens ends it `caller_disconnect`; the PBX
//! hanging up (goodbye) ends it `callee_disconnect`.
//!
//! # Media
//!
//! The caller's 200 carries an SDP the PBX writes: the relay's side A,
//! the first G.711 codec of the caller's offer and its telephone-event
//! (RFC 4733), nothing else; an offer without G.711 is refused `488`. A
//! caller without an offer gets PCMU and telephone-event 101 in the 200
//! and answers in its ACK. The next destination is offered the same
//! codec on side B (the relay does not transcode), so a device that
//! cannot take it fails the stage (`488`). While the application holds
//! the call the relay plays to the caller and drops side B's audio; the
//! destination's 2xx is ACKed at once (the caller answered long ago) and
//! the relay bridges.
//!
//! # After the caller is answered
//!
//! The session stays in `Phase::Ringing` while the next destination
//! rings, with the caller answered: what would send the caller a final
//! failure (every device busy, a loop, the PBX stopping) hangs the call up
//! with BYE instead (`ended_reason` `None`), and the caller's BYE stops
//! what rings (`cancelled`) and ends the call `caller_disconnect`.

use std::fmt::Write as _;

use bytes::Bytes;
use cdr::{CallEventKind, CallType, EndReason, NoAnswerCause, RerouteReason, TargetAdded};
use cdr::{TargetEnd, TargetId, UnixMillis};
use sip::builder::ResponseBuilder;
use sip::sdp::SessionDescription;
use sip::transaction::TransactionId;
use sip::{HeaderName, Message, Method};

use super::bridge::Side;
use super::caller::CallerState;
use super::effect::{Ctx, Effect};
use super::leg::body_of;
use super::timer::Timer;
use super::{LegRef, Phase, Session};
use crate::apps::{G711, Playback, PromptRef};
use crate::context::ALLOW;
use crate::media::{MediaCommand, Side as MediaSide, party_from_sdp};

/// What the PBX answered the caller with (kept for the session).
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub payload_type: u8,
    pub law: G711,
    pub events: Option<u8>,
}

/// The application holding the call now.
#[derive(Debug)]
pub(super) struct App {
    pub target: TargetId,
    pub number: String,
    pub kind: AppKind,
}

#[derive(Debug)]
pub(super) enum AppKind {
    Ivr(super::ivr::IvrRun),
    Queue(super::queue::QueueRun),
    /// An agent's feature code confirming (`agent_code.rs`).
    AgentCode,
}

/// The session's applications (see the module doc).
#[derive(Debug, Default)]
pub(super) struct Apps {
    pub answer: Option<Answer>,
    pub current: Option<App>,
    /// IVRs entered by this call (bounded by `apps::MAX_IVR_ENTRIES`).
    pub entries: usize,
}

impl Session {
    /// The PBX answered the caller's INVITE itself (an IVR did).
    pub(super) fn answered_by_pbx(&self) -> bool {
        self.apps.answer.is_some()
    }

    /// The caller is answered by the PBX and bridged with nobody.
    pub(super) fn in_app(&self) -> bool {
        self.answered_by_pbx() && self.phase == Phase::Ringing
    }

    /// Whether the caller can be answered with the relay's SDP: `Ok(None)`
    /// when it already was, the codec to answer with, or the status the
    /// caller must get instead (`480`: the call is not relayed; `488`: its
    /// offer has no G.711).
    pub(super) fn app_can_answer(&self) -> Result<Option<Answer>, u16> {
        if self.answered_by_pbx() {
            return Ok(None);
        }
        let (Some(_), Some(caller)) = (&self.media, &self.caller) else {
            return Err(480);
        };
        if caller.state != CallerState::Waiting {
            return Err(480);
        }
        let offer = body_of(&caller.invite).and_then(|(ct, b)| sdp(&ct, &b));
        match &offer {
            Some(sdp) => choose_codec(sdp).map(Some).ok_or(488),
            None => Ok(Some(Answer {
                payload_type: 0,
                law: G711::Pcmu,
                events: Some(101),
            })),
        }
    }

    /// Answers the caller with `answer` (from [`Session::app_can_answer`]).
    pub(super) fn app_answer(&mut self, cx: &mut Ctx<'_>, answer: Answer) {
        let Some(relay) = self.media.clone() else {
            return;
        };
        let body = answer_sdp(&answer, relay.address, relay.ports[0], self.id);
        self.apps.answer = Some(answer);
        self.media_answered(cx);
        self.answer_caller_with(cx, Some(("application/sdp".into(), body)));
    }

    /// The SDP the next destination is offered: the caller's codec on the
    /// relay's side B.
    pub(super) fn app_offer(&self) -> Option<(String, Bytes)> {
        let (answer, relay) = (self.apps.answer.as_ref()?, self.media.as_ref()?);
        let body = answer_sdp(answer, relay.address, relay.ports[1], self.id);
        Some(("application/sdp".into(), body))
    }

    /// The relay plays `prompts` to the caller (`repeat`: the last loops).
    pub(super) fn play(&mut self, cx: &mut Ctx<'_>, prompts: Vec<PromptRef>, repeat: bool) {
        let Some(a) = &self.apps.answer else {
            return;
        };
        let playback = Playback {
            prompts,
            repeat,
            payload_type: a.payload_type,
            law: a.law,
            events: a.events,
        };
        cx.fx.push(Effect::Media(MediaCommand::Play(playback)));
    }

    /// Opens the application target for `number` (answered at once).
    pub(super) fn app_target(
        &mut self,
        cx: &mut Ctx<'_>,
        number: &str,
        reason: Option<RerouteReason>,
    ) -> TargetId {
        let target = TargetId::from(cx.sv.snowflake.next_id(UnixMillis(cx.clk.unix_ms)));
        let (caller, _) = self.presented_to();
        cx.emit(CallEventKind::TargetAdded(Box::new(TargetAdded {
            target,
            call_type: CallType::Normal,
            caller,
            callee: number.to_owned(),
            destination: format!("sip:{number}@{}", self.tenant.domain),
            trunk_name: String::new(),
            outbound_caller_id: String::new(),
            did: self.trunk.did().to_owned(),
            reroute_reason: reason,
            user: None,
        })));
        cx.emit(CallEventKind::TargetAnswered { target });
        target
    }

    /// The application target ends with `reason`; its timer stops.
    pub(super) fn app_end(&mut self, cx: &mut Ctx<'_>, reason: EndReason) {
        self.timers.stop(Timer::App);
        if let Some(app) = self.apps.current.take() {
            if matches!(app.kind, AppKind::Queue(_)) {
                self.timers.stop(Timer::QueueAgent);
                self.timers.stop(Timer::QueueAnnounce);
                cx.fx.push(Effect::Queue(super::queue::QueueEffect::Leave));
            }
            cx.emit(CallEventKind::TargetEnded(TargetEnd {
                target: app.target,
                reason,
                cost: None,
                quality: None,
            }));
        }
    }

    /// The application hands the call to `number` (routed as `route`): it
    /// ends `referred` and the number rings as the next stage.
    pub(super) fn app_hand_off(
        &mut self,
        cx: &mut Ctx<'_>,
        number: String,
        route: crate::router::Route,
    ) {
        self.app_end(cx, EndReason::Referred);
        let display_name = match &route {
            crate::router::Route::Extension { display_name, .. }
            | crate::router::Route::Unavailable { display_name, .. }
            | crate::router::Route::Busy { display_name, .. } => display_name.clone(),
            crate::router::Route::Group(g) => g.name.clone(),
            crate::router::Route::Ivr(i) => i.name.clone(),
            crate::router::Route::Queue(q) => q.name.clone(),
            crate::router::Route::NotFound | crate::router::Route::AgentCode(_) => String::new(),
        };
        self.timers.stop_ringing();
        if !matches!(
            route,
            crate::router::Route::Ivr(_) | crate::router::Route::Queue(_)
        ) {
            self.visited.push(number.clone());
            // Ringback while the destination rings.
            self.play(
                cx,
                vec![PromptRef::Builtin(crate::BuiltinPrompt::Ringback)],
                true,
            );
        }
        cx.emit(CallEventKind::IdentityChanged {
            caller: None,
            callee: Some(cdr::Party {
                user: number,
                display_name,
                domain: self.tenant.domain.clone(),
            }),
        });
        self.ring_route(cx, route, None);
    }

    /// The PBX hangs up a caller it answered: what is open ends, BYE, the
    /// session ends with `reason` (`callee_disconnect` after goodbye,
    /// `None` when the next destination failed or the PBX stops).
    pub(super) fn app_hang_up(&mut self, cx: &mut Ctx<'_>, reason: EndReason) {
        self.app_end(cx, reason);
        self.fail_all(cx, 487);
        self.acked(Side::Caller);
        self.end(cx, 200, reason);
        self.hang_up(cx, LegRef::Caller);
    }

    /// The caller hung up while the PBX held the call.
    pub(super) fn app_caller_bye(&mut self, cx: &mut Ctx<'_>) {
        self.app_end(cx, EndReason::CallerDisconnect);
        self.stop_all(cx, NoAnswerCause::CallerCancelled);
        self.acked(Side::Caller);
        self.end(cx, 200, EndReason::CallerDisconnect);
    }

    /// The caller's ACK for the PBX's 200: its answer (late offer) goes to
    /// the relay.
    pub(super) fn app_acked(&mut self, cx: &mut Ctx<'_>, ack: &Message) {
        self.acked(Side::Caller);
        let Some(ip) = self.peer_ip(LegRef::Caller) else {
            return;
        };
        if let Some(sdp) = body_of(ack).and_then(|(ct, b)| sdp(&ct, &b)) {
            let party = party_from_sdp(&sdp, ip);
            cx.fx
                .push(Effect::Media(MediaCommand::Party(MediaSide::A, party)));
        }
    }

    /// The destination's 2xx while the PBX held the caller: ACKed at once
    /// (without SDP: it answered the PBX's offer), the relay bridges.
    pub(super) fn app_bridged(&mut self, cx: &mut Ctx<'_>, ok: &Message) {
        let Phase::Answered(b) = self.phase else {
            return;
        };
        // A queue's agent answered: the queue target ends `referred`.
        self.queue_connected(cx, b.callee);
        if let Some(ip) = self.peer_ip(LegRef::Target(b.callee)) {
            let _ = self.carry(cx, ok, MediaSide::B, ip);
        }
        self.send_owed_ack(cx, LegRef::Target(b.callee), None);
        cx.fx.push(Effect::Media(MediaCommand::Bridge));
    }

    /// An in-dialog request from the caller while the PBX holds the call:
    /// digits by INFO, a re-INVITE or UPDATE answered with the PBX's SDP
    /// (the caller's new SDP goes to the relay).
    pub(super) fn app_request(&mut self, cx: &mut Ctx<'_>, id: TransactionId, request: Message) {
        let method = request.method().cloned();
        if matches!(method, Some(Method::Invite | Method::Update)) {
            if let Some(ip) = self.peer_ip(LegRef::Caller)
                && let Some(sdp) = body_of(&request).and_then(|(ct, b)| sdp(&ct, &b))
            {
                let party = party_from_sdp(&sdp, ip);
                cx.fx
                    .push(Effect::Media(MediaCommand::Party(MediaSide::A, party)));
            }
            let Some((ct, body)) = self.app_offer_for_caller() else {
                return cx.reply(id, &request, 488);
            };
            let Some(caller) = self.caller.as_ref() else {
                return cx.reply(id, &request, 481);
            };
            let b = ResponseBuilder::reply(&request, 200)
                .header(
                    HeaderName::Contact,
                    cx.sv.contact(caller.leg.peer.transport),
                )
                .header(HeaderName::Allow, ALLOW)
                .body(&ct, body);
            let cseq = request.cseq().map_or(0, |c| c.seq);
            if let Some(sent) = cx.respond(id, b)
                && method == Some(Method::Invite)
            {
                self.await_ack(cx, Side::Caller, sent, cseq);
            }
            return;
        }
        if method == Some(Method::Info) {
            let digits = info_digits(&request);
            cx.reply(id, &request, if digits.is_some() { 200 } else { 415 });
            for d in digits.into_iter().flatten() {
                self.on_digit(cx, d);
            }
            return;
        }
        cx.reply(id, &request, 200);
    }

    /// The PBX's SDP for the caller (side A), again.
    fn app_offer_for_caller(&self) -> Option<(String, Bytes)> {
        let (answer, relay) = (self.apps.answer.as_ref()?, self.media.as_ref()?);
        let body = answer_sdp(answer, relay.address, relay.ports[0], self.id);
        Some(("application/sdp".into(), body))
    }

    /// Whether the call must be relayed whatever `media.anchor` says: its
    /// first destination is an IVR, or one of its forwarding rules (a ring
    /// group's no-answer destination) names one. Deeper chains are not
    /// looked at: an IVR reached there without a relay is unreachable.
    pub(super) fn app_needs_relay(&self, cx: &Ctx<'_>, route: &crate::router::Route) -> bool {
        use crate::directory::ForwardCondition as C;
        use crate::router::Route;
        let is_ivr = |d: &str| {
            super::reroute::internal_number(&self.tenant.domain, d).is_some_and(|n| {
                let dir = cx.dir.directory;
                dir.ivr(self.tenant.id, &n).is_some() || dir.queue(self.tenant.id, &n).is_some()
            })
        };
        let forwarding = match route {
            Route::Ivr(_) | Route::Queue(_) | Route::AgentCode(_) => return true,
            Route::Group(g) => return g.no_answer.as_deref().is_some_and(is_ivr),
            Route::Extension { forwarding, .. }
            | Route::Unavailable { forwarding, .. }
            | Route::Busy { forwarding, .. } => forwarding,
            Route::NotFound => return false,
        };
        [C::Always, C::Busy, C::NoAnswer, C::Unavailable]
            .into_iter()
            .filter_map(|c| forwarding.to(c))
            .any(is_ivr)
    }

    /// A digit the caller pressed (relay or INFO).
    pub(crate) fn on_digit(&mut self, cx: &mut Ctx<'_>, digit: char) {
        if !self.in_app() {
            return;
        }
        match self.apps.current.as_ref().map(|a| &a.kind) {
            Some(AppKind::Ivr(_)) => self.ivr_digit(cx, digit),
            Some(AppKind::Queue(_)) => self.queue_digit(cx, digit),
            Some(AppKind::AgentCode) | None => {}
        }
    }

    /// [`Timer::App`].
    pub(super) fn app_timer(&mut self, cx: &mut Ctx<'_>) {
        if !self.in_app() {
            return;
        }
        match self.apps.current.as_ref().map(|a| &a.kind) {
            Some(AppKind::Ivr(_)) => self.ivr_timer(cx),
            Some(AppKind::Queue(_)) => self.queue_waited_too_long(cx),
            Some(AppKind::AgentCode) => self.app_hang_up(cx, EndReason::CalleeDisconnect),
            None => {}
        }
    }
}

/// The digits of a SIP INFO: `application/dtmf-relay` (`Signal=5`) or
/// `application/dtmf` (`5`); `None` for another body.
fn info_digits(request: &Message) -> Option<Vec<char>> {
    let ct = request.content_type()?.split(';').next()?.trim();
    let text = std::str::from_utf8(request.body()).ok()?;
    let valid = |c: char| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D');
    if ct.eq_ignore_ascii_case("application/dtmf-relay") {
        let signal = text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?;
        let c = signal.chars().next()?.to_ascii_uppercase();
        return (signal.len() == 1 && valid(c)).then(|| vec![c]);
    }
    if ct.eq_ignore_ascii_case("application/dtmf") {
        let c = text.trim().chars().next()?.to_ascii_uppercase();
        return (text.trim().len() == 1 && valid(c)).then(|| vec![c]);
    }
    None
}

fn sdp(content_type: &str, body: &[u8]) -> Option<SessionDescription> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    ct.eq_ignore_ascii_case("application/sdp")
        .then(|| SessionDescription::parse(body).ok())
        .flatten()
}

/// The first G.711 codec of the offer's first audio section and its
/// telephone-event at 8 kHz.
fn choose_codec(sdp: &SessionDescription) -> Option<Answer> {
    let m = sdp
        .media
        .iter()
        .find(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)?;
    let codecs = m.codecs();
    let (payload_type, law) = codecs.iter().find_map(|(pt, map)| {
        let name = map.as_ref().map(|m| m.encoding.as_str());
        match (pt, name) {
            (_, Some(n)) if n.eq_ignore_ascii_case("PCMU") => Some((*pt, G711::Pcmu)),
            (_, Some(n)) if n.eq_ignore_ascii_case("PCMA") => Some((*pt, G711::Pcma)),
            (0, None) => Some((0, G711::Pcmu)),
            (8, None) => Some((8, G711::Pcma)),
            _ => None,
        }
    })?;
    let events = codecs.iter().find_map(|(pt, map)| {
        map.as_ref()
            .filter(|m| m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000)
            .map(|_| *pt)
    });
    Some(Answer {
        payload_type,
        law,
        events,
    })
}

/// The SDP the PBX writes for a party of an application call.
fn answer_sdp(a: &Answer, ip: std::net::IpAddr, port: u16, session: cdr::SessionId) -> Bytes {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = String::with_capacity(256);
    let _ = write!(
        s,
        "v=0\r\no=tally {session} 1 IN {family} {ip}\r\ns=tally\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {}",
        a.payload_type
    );
    if let Some(e) = a.events {
        let _ = write!(s, " {e}");
    }
    let _ = write!(
        s,
        "\r\na=rtpmap:{} {}/8000\r\n",
        a.payload_type,
        a.law.name()
    );
    if let Some(e) = a.events {
        let _ = write!(
            s,
            "a=rtpmap:{e} telephone-event/8000\r\na=fmtp:{e} 0-15\r\n"
        );
    }
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_g711_codec_and_its_events_are_chosen() {
        let offer = "v=0\r\no=a 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 9 8 0 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
        let sdp = SessionDescription::parse(offer.as_bytes()).unwrap();
        let a = choose_codec(&sdp).unwrap();
        assert_eq!(
            (a.payload_type, a.law, a.events),
            (8, G711::Pcma, Some(101))
        );
        let g722_only = offer.replace(" 9 8 0 101", " 9");
        let sdp = SessionDescription::parse(g722_only.as_bytes()).unwrap();
        assert!(choose_codec(&sdp).is_none());
        let text = answer_sdp(
            &a,
            "203.0.113.10".parse().unwrap(),
            30000,
            cdr::SessionId::from(cdr::Id::from_u64(7)),
        );
        let parsed = SessionDescription::parse(&text).unwrap();
        let p = party_from_sdp(&parsed, "203.0.113.10".parse().unwrap());
        assert_eq!(p.rtp, Some("203.0.113.10:30000".parse().unwrap()));
        assert_eq!(
            p.codecs,
            vec![(8, "PCMA".into()), (101, "telephone-event".into())]
        );
    }

    #[test]
    fn info_bodies() {
        let info = |ct: &str, body: &str| {
            let text = format!(
                "INFO sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@b>;tag=2\r\nCall-ID: c\r\nCSeq: 2 INFO\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            info_digits(&Message::parse(text.into_bytes()).unwrap())
        };
        assert_eq!(
            info("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
            Some(vec!['5'])
        );
        assert_eq!(
            info("application/dtmf-relay", "Signal= #\r\n"),
            Some(vec!['#'])
        );
        assert_eq!(info("application/dtmf", "9"), Some(vec!['9']));
        assert_eq!(info("application/dtmf-relay", "Signal=x\r\n"), None);
        assert_eq!(info("text/plain", "5"), None);
    }
}
