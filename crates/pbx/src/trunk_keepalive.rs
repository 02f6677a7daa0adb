//! OPTIONS keep-alive of a trunk, sans-IO: is the carrier answering, and
//! how fast? Routing skips a trunk that is down
//! ([`crate::routing::Availability::Down`]).
//!
//! # Decisions
//!
//! - **Any response means up**, 404, 405 and 501 included: the question is
//!   whether the carrier's SIP stack is there, not whether it likes
//!   OPTIONS.
//! - **Down after two probes in a row go unanswered** (each gets
//!   [`PROBE_TIMEOUT`]): one lost datagram must not take a trunk out of
//!   routing. Up again at the first answer.
//! - Probes every [`INTERVAL`]; the first at start. Over UDP a probe is
//!   sent again until answered (Timer E, [`crate::trunk_retransmit`]):
//!   at 0, 0.5, 1.5 and 3.5 s within its [`PROBE_TIMEOUT`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sip::builder::RequestBuilder;
use sip::header::HeaderName;
use sip::message::{Message, Method};

use crate::ids::IdSource;
use crate::trunk::{Trunk, TrunkTransport};
use crate::trunk_retransmit::Retransmit;

/// Time between probes.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// How long a probe waits for its answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Unanswered probes in a row that make a trunk down.
pub const MISSES_FOR_DOWN: u32 = 2;

/// What the probes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reachability {
    /// No probe answered or missed twice yet.
    Unknown,
    /// The last probe was answered after `rtt`.
    Up {
        rtt: Duration,
    },
    Down,
}

/// What the runtime must do.
#[derive(Clone, Debug, PartialEq)]
pub enum KeepAliveOutput {
    /// Boxed: a message is large, and most outputs are not messages.
    Send(Box<Message>),
    Changed(Reachability),
}

/// The OPTIONS probes of one trunk.
#[derive(Debug)]
pub struct KeepAlive {
    target: String,
    via: String,
    from: String,
    call_id: String,
    from_tag: String,
    ids: IdSource,
    cseq: u32,
    /// The probe in flight: its CSeq, when it left, when it times out.
    waiting: Option<(u32, Instant, Instant)>,
    next_probe: Instant,
    misses: u32,
    state: Reachability,
    reliable: bool,
    retransmit: Option<Retransmit>,
    out: VecDeque<KeepAliveOutput>,
}

impl KeepAlive {
    /// Probes `trunk` from `sent_by` (`host:port` for Via), first at `now`.
    pub fn new(trunk: &Trunk, sent_by: &str, seed: u64, now: Instant) -> Self {
        let (transport, param) = match trunk.transport {
            TrunkTransport::Udp => ("UDP", ""),
            TrunkTransport::Tcp => ("TCP", ";transport=tcp"),
        };
        let host = if trunk.host.contains(':') {
            format!("[{}]", trunk.host)
        } else {
            trunk.host.clone()
        };
        let mut ids = IdSource::new(seed);
        KeepAlive {
            target: format!("sip:{host}:{}{param}", trunk.port),
            via: format!("SIP/2.0/{transport} {sent_by}"),
            from: format!("<sip:keepalive@{sent_by}>"),
            call_id: ids.call_id(),
            from_tag: ids.tag(),
            cseq: ids.first_cseq(),
            ids,
            waiting: None,
            next_probe: now,
            misses: 0,
            state: Reachability::Unknown,
            reliable: trunk.transport != TrunkTransport::Udp,
            retransmit: None,
            out: VecDeque::new(),
        }
    }

    pub fn state(&self) -> Reachability {
        self.state
    }

    pub fn poll_output(&mut self) -> Option<KeepAliveOutput> {
        self.out.pop_front()
    }

    /// The Call-ID of every probe: the runtime routes answers by it.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(match (self.waiting, &self.retransmit) {
            (Some((_, _, deadline)), Some(r)) => deadline.min(r.at()),
            (Some((_, _, deadline)), None) => deadline,
            (None, _) => self.next_probe,
        })
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.waiting {
            Some((_, _, deadline)) if now >= deadline => {
                self.waiting = None;
                self.retransmit = None;
                self.misses = self.misses.saturating_add(1);
                if self.misses >= MISSES_FOR_DOWN {
                    self.set(Reachability::Down);
                }
            }
            None if now >= self.next_probe => self.probe(now),
            Some(_) => {
                if let Some(again) = self.retransmit.as_mut().and_then(|r| r.due(now)) {
                    self.out.push_back(KeepAliveOutput::Send(Box::new(again)));
                }
            }
            _ => {}
        }
    }

    /// A response; `false` if it answers no probe in flight.
    pub fn handle_response(&mut self, now: Instant, response: &Message) -> bool {
        let Some((cseq, sent, _)) = self.waiting else {
            return false;
        };
        let ours = response.is_response()
            && response.call_id().ok() == Some(self.call_id.as_str())
            && response
                .cseq()
                .is_ok_and(|c| c.seq == cseq && c.method == Method::Options);
        if !ours {
            return false;
        }
        if response.status().is_some_and(|s| s < 200) {
            if let Some(r) = self.retransmit.as_mut() {
                r.proceeding(now);
            }
            return true;
        }
        self.waiting = None;
        self.retransmit = None;
        self.misses = 0;
        self.set(Reachability::Up {
            rtt: now.saturating_duration_since(sent),
        });
        true
    }

    fn set(&mut self, state: Reachability) {
        // An RTT that moved is news too: the API shows the latest.
        if self.state != state {
            self.state = state;
            self.out.push_back(KeepAliveOutput::Changed(state));
        }
    }

    fn probe(&mut self, now: Instant) {
        self.cseq = self.cseq.wrapping_add(1).max(1);
        self.next_probe = now + INTERVAL;
        let branch = self.ids.branch();
        let built = RequestBuilder::new(Method::Options, &self.target)
            .header(
                HeaderName::Via,
                format!("{};branch={branch};rport", self.via),
            )
            .header(HeaderName::MaxForwards, 70)
            .header(
                HeaderName::From,
                format!("{};tag={}", self.from, self.from_tag),
            )
            .header(HeaderName::To, format!("<{}>", self.target))
            .header(HeaderName::CallId, &self.call_id)
            .header(HeaderName::CSeq, format!("{} OPTIONS", self.cseq))
            .build();
        // The request is made of values checked at provisioning; should it
        // still not build, the probe counts as unanswered.
        if let Ok(message) = built {
            self.retransmit = Retransmit::start(&message, self.reliable, now);
            self.out.push_back(KeepAliveOutput::Send(Box::new(message)));
        }
        self.waiting = Some((self.cseq, now, now + PROBE_TIMEOUT));
    }
}

#[cfg(test)]
mod tests {
    use sip::builder::ResponseBuilder;

    use super::*;
    use crate::routing::inbound::tests::trunk;
    use crate::trunk::TrunkKind;

    fn probe(k: &mut KeepAlive, now: Instant) -> Message {
        k.handle_timeout(now);
        match k.poll_output() {
            Some(KeepAliveOutput::Send(m)) => *m,
            other => panic!("expected an OPTIONS, got {other:?}"),
        }
    }

    #[test]
    fn a_hand_written_answer_parses_and_counts() {
        let t0 = Instant::now();
        let t = trunk(1, 10, TrunkKind::Ip, &["192.0.2.1"]);
        let mut k = KeepAlive::new(&t, "127.0.0.1:41460", 3, t0);
        let request = String::from_utf8(probe(&mut k, t0).as_bytes().to_vec()).unwrap();
        let copied: Vec<&str> = request
            .lines()
            .filter(|l| {
                ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                    .iter()
                    .any(|h| l.starts_with(h))
            })
            .collect();
        let text = format!(
            "SIP/2.0 200 OK\r\n{}\r\nContent-Length: 0\r\n\r\n",
            copied.join("\r\n")
        );
        let response = Message::parse(text.into_bytes()).unwrap();
        assert!(k.handle_response(t0, &response));
        assert!(matches!(k.state(), Reachability::Up { .. }));
    }

    #[test]
    fn answers_make_it_up_with_rtt_and_two_misses_make_it_down() {
        let t0 = Instant::now();
        let t = trunk(1, 10, TrunkKind::Ip, &["192.0.2.1"]);
        let mut k = KeepAlive::new(&t, "192.0.2.9:5060", 3, t0);
        assert_eq!(k.state(), Reachability::Unknown);
        let first = probe(&mut k, t0);
        assert_eq!(first.request_uri_str(), Some("sip:carrier.example:5060"));
        // A 405 is an answer: the carrier is there.
        let answer = ResponseBuilder::reply(&first, 405).build().unwrap();
        assert!(k.handle_response(t0 + Duration::from_millis(40), &answer));
        assert_eq!(
            k.poll_output(),
            Some(KeepAliveOutput::Changed(Reachability::Up {
                rtt: Duration::from_millis(40)
            }))
        );
        assert!(!k.handle_response(t0, &answer), "answered already");
        assert_eq!(k.poll_timeout(), Some(t0 + INTERVAL));
        // One miss is not enough.
        let second = probe(&mut k, t0 + INTERVAL);
        k.handle_timeout(t0 + INTERVAL + PROBE_TIMEOUT);
        assert!(matches!(k.state(), Reachability::Up { .. }));
        // A late answer to the missed probe changes nothing.
        let late = ResponseBuilder::reply(&second, 200).build().unwrap();
        assert!(!k.handle_response(t0 + INTERVAL + PROBE_TIMEOUT, &late));
        probe(&mut k, t0 + INTERVAL * 2);
        k.handle_timeout(t0 + INTERVAL * 2 + PROBE_TIMEOUT);
        assert_eq!(k.state(), Reachability::Down);
        assert_eq!(
            k.poll_output(),
            Some(KeepAliveOutput::Changed(Reachability::Down))
        );
        let fourth = probe(&mut k, t0 + INTERVAL * 3);
        let ok = ResponseBuilder::reply(&fourth, 200).build().unwrap();
        k.handle_response(t0 + INTERVAL * 3 + Duration::from_millis(5), &ok);
        assert!(
            matches!(k.state(), Reachability::Up { .. }),
            "up at the first answer"
        );
    }

    #[test]
    fn udp_probes_are_sent_again_until_answered_and_tcp_ones_are_not() {
        let t0 = Instant::now();
        let t = trunk(1, 10, TrunkKind::Ip, &["192.0.2.1"]);
        let mut k = KeepAlive::new(&t, "192.0.2.9:5060", 3, t0);
        let first = probe(&mut k, t0);
        let mut copies = Vec::new();
        while let Some(at) = k.poll_timeout().filter(|at| *at < t0 + PROBE_TIMEOUT) {
            k.handle_timeout(at);
            match k.poll_output() {
                Some(KeepAliveOutput::Send(m)) => {
                    assert_eq!(m.as_bytes(), first.as_bytes(), "the same probe");
                    copies.push(at - t0);
                }
                other => panic!("{other:?}"),
            }
        }
        let ms: Vec<u128> = copies.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [500, 1500, 3500]);
        // Answered (late, to a copy): up, and nothing more is sent.
        let ok = ResponseBuilder::reply(&first, 200).build().unwrap();
        assert!(k.handle_response(t0 + Duration::from_millis(3600), &ok));
        assert!(matches!(k.state(), Reachability::Up { .. }));
        assert_eq!(k.poll_timeout(), Some(t0 + INTERVAL));
        // Over TCP: one copy, then only the probe's deadline.
        let mut t = t;
        t.transport = TrunkTransport::Tcp;
        let mut k = KeepAlive::new(&t, "192.0.2.9:5060", 3, t0);
        let first = probe(&mut k, t0);
        assert_eq!(
            first.request_uri_str(),
            Some("sip:carrier.example:5060;transport=tcp")
        );
        assert_eq!(k.poll_timeout(), Some(t0 + PROBE_TIMEOUT));
    }
}
