//! The session's named timers (quinn-proto's `Timer`/`TimerTable`, str0m's
//! timeout `Reason`): one [`Timer`] variant per reason a session wakes up,
//! one deadline slot each, and one match arm per variant in
//! `Session::on_timeout`. The engine indexes only the earliest deadline.
//!
//! A feature that needs a timer adds a variant here and its arm there
//! (ring groups added [`Timer::GroupTimeout`] and [`Timer::GroupStep`]).

use std::time::Instant;

use super::bridge::Side;

/// Why a session wakes up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The callee's ring timeout: stop ringing, `408` to the caller.
    RingTimeout,
    /// A ring group's `timeout`: its members stop ringing, the call goes
    /// to its no-answer destination (or `480`).
    GroupTimeout,
    /// A hunt or round-robin group's `member_timeout`: the member ringing
    /// now stops, the next one rings.
    GroupStep,
    /// Send the 2xx on `Side` again (RFC 3261 §13.3.1.4: T1 doubling to T2).
    Retransmit2xx(Side),
    /// No ACK for the 2xx on `Side` 64·T1 after it: the leg is gone.
    AckTimeout(Side),
    /// A blind transfer's target rang out (its ring timeout).
    TransferRing,
    /// A referrer that has not hung up after its transfer completed is
    /// released by the PBX (`transfer::RELEASE_AFTER`).
    TransferRelease,
    /// An application's next step (`ivr.rs`: digit timeout, goodbye
    /// over; `queue.rs`: the longest wait).
    App,
    /// The agents a queue rings rang out (`queue.rs`).
    QueueAgent,
    /// A waiting caller's next position announcement (`queue.rs`).
    QueueAnnounce,
}

impl Timer {
    /// Every timer, in the order [`TimerTable::expired`] reports those due
    /// at the same time: giving up on an ACK comes before sending the 2xx
    /// once more.
    const ALL: [Timer; 12] = [
        Timer::RingTimeout,
        Timer::GroupTimeout,
        Timer::GroupStep,
        Timer::AckTimeout(Side::Caller),
        Timer::Retransmit2xx(Side::Caller),
        Timer::AckTimeout(Side::Callee),
        Timer::Retransmit2xx(Side::Callee),
        Timer::TransferRing,
        Timer::TransferRelease,
        Timer::App,
        Timer::QueueAgent,
        Timer::QueueAnnounce,
    ];

    fn slot(self) -> usize {
        match self {
            Timer::RingTimeout => 0,
            Timer::GroupTimeout => 1,
            Timer::GroupStep => 2,
            Timer::AckTimeout(Side::Caller) => 3,
            Timer::Retransmit2xx(Side::Caller) => 4,
            Timer::AckTimeout(Side::Callee) => 5,
            Timer::Retransmit2xx(Side::Callee) => 6,
            Timer::TransferRing => 7,
            Timer::TransferRelease => 8,
            Timer::App => 9,
            Timer::QueueAgent => 10,
            Timer::QueueAnnounce => 11,
        }
    }
}

/// One deadline per [`Timer`].
#[derive(Clone, Debug, Default)]
pub(crate) struct TimerTable {
    at: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer.slot()] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.at[timer.slot()] = None;
    }

    /// Stops the timers of a destination ringing (a stage is over: the
    /// call was answered, ended or moved on).
    pub(crate) fn stop_ringing(&mut self) {
        for timer in [Timer::RingTimeout, Timer::GroupTimeout, Timer::GroupStep] {
            self.stop(timer);
        }
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer.slot()]
    }

    /// The earliest deadline, for the engine's index.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// The timers due at `now` with their deadlines, in [`Timer::ALL`]
    /// order, stopped.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<(Timer, Instant)> {
        let mut due = Vec::new();
        for timer in Timer::ALL {
            if let Some(at) = self.get(timer).filter(|at| *at <= now) {
                self.stop(timer);
                due.push((timer, at));
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_table_reports_due_timers_in_order_and_keeps_the_others() {
        let t0 = Instant::now();
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.set(
            Timer::AckTimeout(Side::Callee),
            t0 + Duration::from_millis(5),
        );
        table.set(Timer::RingTimeout, t0 + Duration::from_millis(5));
        table.set(
            Timer::Retransmit2xx(Side::Caller),
            t0 + Duration::from_millis(9),
        );
        assert_eq!(table.next(), Some(t0 + Duration::from_millis(5)));
        assert_eq!(table.expired(t0), vec![]);
        let at = t0 + Duration::from_millis(5);
        assert_eq!(
            table.expired(at + Duration::from_millis(1)),
            vec![
                (Timer::RingTimeout, at),
                (Timer::AckTimeout(Side::Callee), at)
            ]
        );
        assert_eq!(table.next(), Some(t0 + Duration::from_millis(9)));
        table.stop(Timer::Retransmit2xx(Side::Caller));
        assert_eq!(table.next(), None);
    }
}
