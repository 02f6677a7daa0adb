//! The transaction timers of RFC 3261 §17 (Table 4) and RFC 6026 (L and M),
//! all derived from three base values.

use std::fmt;
use std::time::{Duration, Instant};

/// The base timer values (RFC 3261 §17.1.1.1, Table 4). Everything else is
/// derived from these, so an operator tunes three numbers, not twelve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; first retransmission interval. Default 500 ms.
    pub t1: Duration,
    /// Longest retransmission interval for non-INVITE requests and INVITE
    /// responses. Default 4 s.
    pub t2: Duration,
    /// Longest time a message may stay in the network. Default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Timer D on an unreliable transport (RFC 3261 §17.1.1.2: "at least 32
/// seconds", the longest time a server may keep retransmitting its final
/// response).
const TIMER_D_UNRELIABLE: Duration = Duration::from_secs(32);

/// A transaction timer, by its RFC name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE client: request retransmission (T1, doubling, no cap).
    A,
    /// INVITE client: give up waiting for any response (64·T1); started
    /// again when a CANCEL is sent, to give up waiting for the final
    /// response (§9.1).
    B,
    /// INVITE client: wait for final response retransmissions (32 s, 0 reliable).
    D,
    /// Non-INVITE client: request retransmission (T1, doubling, capped at T2).
    E,
    /// Non-INVITE client: give up waiting for a final response (64·T1).
    F,
    /// INVITE server: non-2xx final response retransmission (T1, doubling, capped at T2).
    G,
    /// INVITE server: give up waiting for the ACK (64·T1).
    H,
    /// INVITE server: absorb ACK retransmissions (T4, 0 reliable).
    I,
    /// Non-INVITE server: absorb request retransmissions (64·T1, 0 reliable).
    J,
    /// Non-INVITE client: absorb final response retransmissions (T4, 0 reliable).
    K,
    /// INVITE server, RFC 6026: absorb INVITE retransmissions after a 2xx (64·T1).
    L,
    /// INVITE client, RFC 6026: accept 2xx retransmissions and forks (64·T1).
    M,
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timer {self:?}")
    }
}

impl TimerConfig {
    /// How long `timer` runs when it is started on a transport of the given
    /// reliability, or `None` when it is not started at all: the
    /// retransmission timers (A, E, G) are not armed on reliable transports,
    /// and the absorbing timers (D, I, J, K) are zero there.
    pub fn initial(&self, timer: Timer, reliable: bool) -> Option<Duration> {
        let unless_reliable = |d: Duration| Some(if reliable { Duration::ZERO } else { d });
        match timer {
            Timer::A | Timer::E | Timer::G => (!reliable).then_some(self.t1),
            Timer::B | Timer::F | Timer::H | Timer::L | Timer::M => {
                Some(self.t1.saturating_mul(64))
            }
            Timer::D => unless_reliable(TIMER_D_UNRELIABLE),
            Timer::I | Timer::K => unless_reliable(self.t4),
            Timer::J => unless_reliable(self.t1.saturating_mul(64)),
        }
    }

    /// The interval after `current` for a retransmission timer: Timer A
    /// doubles without limit (it is bounded by Timer B), E and G double up to
    /// T2. A Timer E in the Proceeding state uses T2 outright; the caller
    /// passes that case as [`TimerConfig::t2`].
    pub fn backoff(&self, timer: Timer, current: Duration) -> Duration {
        let doubled = current.saturating_mul(2);
        match timer {
            Timer::A => doubled,
            _ => doubled.min(self.t2),
        }
    }
}

/// A timer that fired, as [`Schedule::take_due`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fired {
    /// A retransmission timer: the caller retransmits and re-arms it.
    Retransmit { timer: Timer, interval: Duration },
    /// Any other timer: a state change.
    Expired(Timer),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Retransmit {
    timer: Timer,
    at: Instant,
    interval: Duration,
}

/// The timers of one transaction. In every state of §17 at most one
/// retransmission timer and one other timer run together (A+B, E+F, G+H,
/// or one of D, I, J, K, L, M alone), so two slots are enough.
#[derive(Clone, Debug, Default)]
pub(crate) struct Schedule {
    retransmit: Option<Retransmit>,
    expiry: Option<(Timer, Instant)>,
}

impl Schedule {
    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        let r = self.retransmit.map(|r| r.at);
        let e = self.expiry.map(|(_, at)| at);
        match (r, e) {
            (Some(r), Some(e)) => Some(r.min(e)),
            (r, e) => r.or(e),
        }
    }

    /// Arms a retransmission timer to fire `interval` after `from`. A
    /// runtime that woke up late by more than an interval gets the next one
    /// counted from `now`, so it retransmits once rather than in a burst.
    pub(crate) fn arm_retransmit(
        &mut self,
        timer: Timer,
        from: Instant,
        interval: Duration,
        now: Instant,
    ) {
        let at = match from.checked_add(interval) {
            Some(at) if at > now => Some(at),
            _ => now.checked_add(interval),
        };
        self.retransmit = at.map(|at| Retransmit {
            timer,
            at,
            interval,
        });
    }

    /// Arms the state timer to fire `after` from `now`.
    pub(crate) fn arm_expiry(&mut self, timer: Timer, now: Instant, after: Duration) {
        // An overflowing deadline (an absurd T1) is a timer that never fires.
        self.expiry = now.checked_add(after).map(|at| (timer, at));
    }

    pub(crate) fn clear(&mut self) {
        *self = Schedule::default();
    }

    /// Takes the earliest timer due at `now`, if any; on a tie the state
    /// timer goes first (no point retransmitting into a timeout). A fired
    /// retransmission timer reports its deadline through `fired_at` so the
    /// caller can re-arm from it, keeping the schedule exact.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<(Fired, Instant)> {
        let r = self.retransmit.filter(|r| r.at <= now);
        let e = self.expiry.filter(|(_, at)| *at <= now);
        match (r, e) {
            (Some(r), Some((_, e_at))) if r.at < e_at => self.fire_retransmit(r),
            (_, Some((timer, at))) => {
                self.expiry = None;
                Some((Fired::Expired(timer), at))
            }
            (Some(r), None) => self.fire_retransmit(r),
            (None, None) => None,
        }
    }

    fn fire_retransmit(&mut self, r: Retransmit) -> Option<(Fired, Instant)> {
        self.retransmit = None;
        Some((
            Fired::Retransmit {
                timer: r.timer,
                interval: r.interval,
            },
            r.at,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_values() {
        let c = TimerConfig::default();
        let ms = Duration::from_millis;
        assert_eq!(c.initial(Timer::A, false), Some(ms(500)));
        assert_eq!(c.initial(Timer::A, true), None);
        assert_eq!(c.initial(Timer::G, true), None);
        assert_eq!(c.initial(Timer::B, true), Some(ms(32_000)));
        assert_eq!(c.initial(Timer::D, false), Some(ms(32_000)));
        assert_eq!(c.initial(Timer::D, true), Some(Duration::ZERO));
        assert_eq!(c.initial(Timer::I, false), Some(ms(5_000)));
        assert_eq!(c.initial(Timer::K, true), Some(Duration::ZERO));
        assert_eq!(c.initial(Timer::J, false), Some(ms(32_000)));
        assert_eq!(c.initial(Timer::J, true), Some(Duration::ZERO));
        assert_eq!(c.initial(Timer::L, true), Some(ms(32_000)));
        assert_eq!(c.initial(Timer::M, false), Some(ms(32_000)));
        assert_eq!(c.backoff(Timer::A, ms(4_000)), ms(8_000));
        assert_eq!(c.backoff(Timer::E, ms(2_000)), ms(4_000));
        assert_eq!(c.backoff(Timer::E, ms(4_000)), ms(4_000));
        assert_eq!(c.backoff(Timer::G, ms(4_000)), ms(4_000));
    }

    #[test]
    fn schedule_orders_and_catches_up() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = Schedule::default();
        s.arm_retransmit(Timer::A, t0, ms(500), t0);
        s.arm_expiry(Timer::B, t0, ms(500));
        assert_eq!(s.next(), Some(t0 + ms(500)));
        // A tie goes to the state timer.
        assert_eq!(
            s.take_due(t0 + ms(500)),
            Some((Fired::Expired(Timer::B), t0 + ms(500)))
        );
        assert!(matches!(
            s.take_due(t0 + ms(500)),
            Some((Fired::Retransmit { .. }, _))
        ));
        assert_eq!(s.take_due(t0 + ms(500)), None);
        // Late by more than an interval: counted from now.
        s.arm_retransmit(Timer::E, t0, ms(500), t0 + ms(2_000));
        assert_eq!(s.next(), Some(t0 + ms(2_500)));
        s.clear();
        assert_eq!(s.next(), None);
    }
}
