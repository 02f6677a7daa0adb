//! Retransmission of a trunk client's request over UDP (RFC 3261
//! §17.1.2.2, Timer E): the registration client and the OPTIONS probes
//! send their request again at T1, 2·T1, … up to T2 until an answer
//! arrives or their own deadline (Timer F, 64·T1 for a REGISTER) passes.
//! A provisional answer moves the interval to T2 at once (the Proceeding
//! state). Over TCP nothing is retransmitted: the transport delivers or
//! fails.

use std::time::{Duration, Instant};

use sip::message::Message;
use sip::transaction::{Timer, TimerConfig};

/// The request in flight and when it goes again.
#[derive(Clone, Debug)]
pub(crate) struct Retransmit {
    message: Message,
    interval: Duration,
    at: Instant,
}

impl Retransmit {
    /// `message` just sent at `now`; `None` on a reliable transport.
    pub(crate) fn start(message: &Message, reliable: bool, now: Instant) -> Option<Retransmit> {
        let first = TimerConfig::default().initial(Timer::E, reliable)?;
        Some(Retransmit {
            message: message.clone(),
            interval: first,
            at: now + first,
        })
    }

    /// When the request goes again.
    pub(crate) fn at(&self) -> Instant {
        self.at
    }

    /// The copy to send if its time has come (and the next time set).
    pub(crate) fn due(&mut self, now: Instant) -> Option<Message> {
        if now < self.at {
            return None;
        }
        self.interval = TimerConfig::default().backoff(Timer::E, self.interval);
        self.at = now + self.interval;
        Some(self.message.clone())
    }

    /// A provisional answer: from now on every T2.
    pub(crate) fn proceeding(&mut self, now: Instant) {
        let t2 = TimerConfig::default().t2;
        if self.interval < t2 {
            self.interval = t2;
            self.at = now + t2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Message {
        sip::builder::RequestBuilder::new(sip::Method::Options, "sip:carrier.example")
            .header(
                sip::HeaderName::Via,
                "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr",
            )
            .header(sip::HeaderName::From, "<sip:k@192.0.2.1>;tag=1")
            .header(sip::HeaderName::To, "<sip:carrier.example>")
            .header(sip::HeaderName::CallId, "r1")
            .header(sip::HeaderName::CSeq, "1 OPTIONS")
            .build()
            .unwrap()
    }

    #[test]
    fn udp_doubles_up_to_t2_and_tcp_never_retransmits() {
        let t0 = Instant::now();
        assert!(Retransmit::start(&options(), true, t0).is_none());
        let mut r = Retransmit::start(&options(), false, t0).unwrap();
        assert!(r.due(t0 + Duration::from_millis(499)).is_none());
        let mut now = t0;
        let mut gaps = Vec::new();
        for _ in 0..6 {
            let next = r.at();
            gaps.push(next - now);
            now = next;
            assert_eq!(r.due(now).unwrap().call_id().ok(), Some("r1"));
        }
        let ms: Vec<u128> = gaps.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 4000, 4000]);
        let mut p = Retransmit::start(&options(), false, t0).unwrap();
        p.proceeding(t0 + Duration::from_millis(100));
        assert_eq!(
            p.at(),
            t0 + Duration::from_millis(4100),
            "T2 once proceeding"
        );
    }
}
