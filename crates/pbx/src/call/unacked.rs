//! 2xx retransmission (RFC 3261 §13.3.1.4): a 2xx the PBX sends to an
//! INVITE is its own to repeat, T1 doubling up to T2, until the ACK comes;
//! 64·T1 without one and the leg is gone. Each side of the bridge has its
//! two timers ([`Timer::Retransmit2xx`], [`Timer::AckTimeout`]).

use std::time::{Duration, Instant};

use sip::Message;

use super::bridge::Side;
use super::effect::Ctx;
use super::leg::Leg;
use super::timer::Timer;
use super::{Phase, Session};

/// A 2xx to an INVITE the PBX sent on a leg, retransmitted until its ACK.
#[derive(Debug)]
pub(super) struct Unacked {
    response: Message,
    /// The INVITE's CSeq, which its ACK repeats.
    pub cseq: u32,
    interval: Duration,
}

impl Session {
    /// The leg on `side` of the answered call.
    pub(super) fn side_mut(&mut self, side: Side) -> Option<&mut Leg> {
        match (side, self.phase) {
            (Side::Caller, Phase::Answered(b)) => self.leg_mut(b.caller),
            (Side::Caller, _) => self.caller.as_mut().map(|c| &mut c.leg),
            (Side::Callee, Phase::Answered(b)) => {
                self.targets.get_mut(b.callee).map(|t| &mut t.leg)
            }
            (Side::Callee, _) => None,
        }
    }

    /// `sent` (a 2xx to the INVITE with `cseq`) went out on `side`: repeat
    /// it until its ACK.
    pub(super) fn await_ack(&mut self, cx: &mut Ctx<'_>, side: Side, sent: Message, cseq: u32) {
        let t1 = cx.sv.timers.t1;
        let Some(leg) = self.side_mut(side) else {
            return;
        };
        leg.unacked = Some(Box::new(Unacked {
            response: sent,
            cseq,
            interval: t1,
        }));
        self.timers.set(Timer::Retransmit2xx(side), cx.clk.now + t1);
        self.timers
            .set(Timer::AckTimeout(side), cx.clk.now + t1.saturating_mul(64));
    }

    /// The ACK for `side`'s 2xx came (or the call ended): stop repeating it.
    pub(super) fn acked(&mut self, side: Side) {
        if let Some(leg) = self.side_mut(side) {
            leg.unacked = None;
        }
        self.timers.stop(Timer::Retransmit2xx(side));
        self.timers.stop(Timer::AckTimeout(side));
    }

    /// [`Timer::Retransmit2xx`], due at `due`.
    pub(super) fn retransmit_2xx(&mut self, cx: &mut Ctx<'_>, side: Side, due: Instant) {
        let (now, t2) = (cx.clk.now, cx.sv.timers.t2);
        let Some(leg) = self.side_mut(side) else {
            return;
        };
        let peer = leg.peer;
        let Some(u) = leg.unacked.as_mut() else {
            return;
        };
        cx.transmit(peer, u.response.clone());
        u.interval = u.interval.saturating_mul(2).min(t2);
        let next = match due.checked_add(u.interval) {
            Some(at) if at > now => at,
            _ => now + u.interval,
        };
        self.timers.set(Timer::Retransmit2xx(side), next);
    }

    /// [`Timer::AckTimeout`]: whether a 2xx was still waiting (the leg is
    /// then gone and the call must end).
    pub(super) fn ack_timed_out(&mut self, side: Side) -> bool {
        let waiting = self
            .side_mut(side)
            .is_some_and(|leg| leg.unacked.take().is_some());
        self.timers.stop(Timer::Retransmit2xx(side));
        waiting
    }
}
