//! Devices that are challenged again and again and never answer: the
//! registrar's way to tell an admin why a phone does not register.
//!
//! A phone that cannot compute any of the offered digests (libre 1.0 and a
//! SHA-256 challenge, a phone that wants a realm it is not given) usually
//! gives up silently and sends the same unauthenticated request later. The
//! PBX sees only a stream of challenged requests from one device, each
//! looking like the normal first leg of a digest exchange. This counts
//! them per device (transport address and user) until the device answers
//! a challenge, and reports the device when its streak reaches
//! [`REPORT_AT`], then at every tenfold (30, 300, …), so a phone stuck for
//! days gives a handful of log lines, not one per retry.
//!
//! Bounded: at most [`MAX_DEVICES`] devices are followed; when full, the
//! one challenged longest ago is forgotten. Devices silent for
//! [`FORGET_AFTER`] are swept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cdr::TenantId;

/// Unanswered challenges in a row after which a device is reported.
pub const REPORT_AT: u32 = 3;
/// Devices followed at once.
pub const MAX_DEVICES: usize = 10_000;
/// A device not challenged for this long starts a new streak.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// One device: where its requests come from and the user they name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Device {
    pub addr: SocketAddr,
    pub tenant: TenantId,
    pub user: String,
}

#[derive(Clone, Copy, Debug)]
struct Streak {
    challenges: u32,
    last: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct UnansweredChallenges {
    devices: HashMap<Device, Streak>,
}

impl UnansweredChallenges {
    /// `device` was challenged because its request carried no credentials
    /// for the realm. Returns the streak's length when it is one to report.
    pub(crate) fn challenged(&mut self, now: Instant, device: Device) -> Option<u32> {
        if !self.devices.contains_key(&device) && self.devices.len() >= MAX_DEVICES {
            self.sweep(now);
            if self.devices.len() >= MAX_DEVICES
                && let Some(oldest) = self
                    .devices
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(d, _)| d.clone())
            {
                self.devices.remove(&oldest);
            }
        }
        let streak = self.devices.entry(device).or_insert(Streak {
            challenges: 0,
            last: now,
        });
        if now.saturating_duration_since(streak.last) >= FORGET_AFTER {
            streak.challenges = 0;
        }
        streak.challenges = streak.challenges.saturating_add(1);
        streak.last = now;
        is_reported(streak.challenges).then_some(streak.challenges)
    }

    /// `device` answered a challenge (rightly or not): it speaks digest.
    pub(crate) fn answered(&mut self, device: &Device) {
        self.devices.remove(device);
    }

    pub(crate) fn sweep(&mut self, now: Instant) {
        self.devices
            .retain(|_, s| now.saturating_duration_since(s.last) < FORGET_AFTER);
    }
}

/// 3, 30, 300, …
fn is_reported(n: u32) -> bool {
    let mut at = REPORT_AT;
    loop {
        if n == at {
            return true;
        }
        if n < at {
            return false;
        }
        match at.checked_mul(10) {
            Some(next) => at = next,
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(port: u16) -> Device {
        Device {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            tenant: TenantId::from(cdr::Id::from_u64(1)),
            user: "101".into(),
        }
    }

    #[test]
    fn reported_at_three_then_every_tenfold() {
        let reported: Vec<u32> = (1..=400).filter(|&n| is_reported(n)).collect();
        assert_eq!(reported, [3, 30, 300]);
    }

    #[test]
    fn an_answer_ends_the_streak_and_devices_are_apart() {
        let t0 = Instant::now();
        let mut u = UnansweredChallenges::default();
        assert_eq!(u.challenged(t0, device(1)), None);
        assert_eq!(u.challenged(t0, device(1)), None);
        assert_eq!(u.challenged(t0, device(2)), None);
        u.answered(&device(2));
        assert_eq!(u.challenged(t0, device(1)), Some(3));
        u.answered(&device(1));
        assert_eq!(u.challenged(t0, device(1)), None);
        assert_eq!(u.challenged(t0, device(1)), None);
        // A long silence starts over.
        assert_eq!(u.challenged(t0 + FORGET_AFTER, device(1)), None);
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut u = UnansweredChallenges::default();
        for i in 0..(MAX_DEVICES as u32 + 500) {
            let mut d = device(1);
            d.user = i.to_string();
            let _ = u.challenged(t0 + Duration::from_millis(u64::from(i)), d);
        }
        assert_eq!(u.devices.len(), MAX_DEVICES);
        u.sweep(t0 + FORGET_AFTER + Duration::from_secs(60));
        assert!(u.devices.is_empty());
    }
}
