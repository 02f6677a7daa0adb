//! Throttling of sources that keep failing authentication.
//!
//! A source that fails `max_failures` times within `window` is refused (403)
//! for `cool_down`, without its credentials being looked at, so a password
//! cannot be guessed faster than that rate and a scanner learns nothing more.
//!
//! # Decisions
//!
//! - **A source is an IPv4 address or an IPv6 /64** ([`SourceKey`]): one
//!   IPv6 subscriber usually holds a whole /64, and keying by full address
//!   would let it rotate through 2^64 of them.
//! - **Fixed window from the first failure**: the window opens at a source's
//!   first failure and closes `window` later; the count restarts after it.
//!   Cheap (two fields per source) and exact enough for its purpose.
//! - **Success does not reset the count.** Otherwise a source holding one
//!   valid account could interleave successful REGISTERs with guesses at
//!   another. The cost: phones behind one NAT share a budget, so one phone
//!   with a wrong password can block its office for a cool-down; the
//!   thresholds are configuration for that reason.
//! - **Bounded**: at most `max_sources` entries. When full, entries with
//!   nothing to remember (window over, not blocked) are dropped, then the
//!   unblocked entry with the oldest window, and only then the block that
//!   ends soonest: an attacker spraying addresses evicts its own entries
//!   before anyone's block. Eviction scans the table (O(n)), only when full.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Settings of the failure throttle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures within `window` that block a source (at least 1).
    pub max_failures: u32,
    pub window: Duration,
    /// How long a blocked source is refused.
    pub cool_down: Duration,
    /// Sources remembered at once (at least 1).
    pub max_sources: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures: 5,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(300),
            max_sources: 10_000,
        }
    }
}

/// The unit a throttle counts failures of: an IPv4 address or an IPv6 /64
/// (IPv4-mapped IPv6 addresses count as IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey(IpAddr);

impl SourceKey {
    pub fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(v4) => SourceKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    SourceKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }

    /// The address (IPv4) or the first address of the /64 (IPv6).
    pub fn ip(&self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}"),
            IpAddr::V6(a) => write!(f, "{a}/64"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

impl Entry {
    fn is_blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|t| t > now)
    }

    /// Whether the entry still affects anything: blocked, or counting.
    fn matters(&self, now: Instant, window: Duration) -> bool {
        self.is_blocked(now) || now.saturating_duration_since(self.window_start) < window
    }
}

/// Failure counts and blocks per source.
#[derive(Clone, Debug)]
pub(crate) struct FailureThrottle {
    config: ThrottleConfig,
    /// Ordered, so eviction ties break the same way on every run.
    entries: BTreeMap<SourceKey, Entry>,
}

impl FailureThrottle {
    pub(crate) fn new(config: ThrottleConfig) -> Self {
        FailureThrottle {
            config: ThrottleConfig {
                max_failures: config.max_failures.max(1),
                max_sources: config.max_sources.max(1),
                ..config
            },
            entries: BTreeMap::new(),
        }
    }

    /// When the block on `source` ends, if it is blocked now.
    pub(crate) fn blocked_until(&self, now: Instant, source: SourceKey) -> Option<Instant> {
        self.entries
            .get(&source)
            .filter(|e| e.is_blocked(now))
            .and_then(|e| e.blocked_until)
    }

    /// Counts a failure; returns the end of the block it starts, if it does.
    pub(crate) fn record_failure(&mut self, now: Instant, source: SourceKey) -> Option<Instant> {
        if !self.entries.contains_key(&source) && self.entries.len() >= self.config.max_sources {
            self.make_room(now);
        }
        let window = self.config.window;
        let e = self.entries.entry(source).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
        });
        if now.saturating_duration_since(e.window_start) >= window {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures < self.config.max_failures {
            return None;
        }
        let until = now.checked_add(self.config.cool_down).unwrap_or(now);
        e.blocked_until = Some(until);
        e.failures = 0;
        e.window_start = now;
        Some(until)
    }

    /// Drops entries that no longer matter.
    pub(crate) fn sweep(&mut self, now: Instant) {
        let window = self.config.window;
        self.entries.retain(|_, e| e.matters(now, window));
    }

    pub(crate) fn tracked_sources(&self) -> usize {
        self.entries.len()
    }

    fn make_room(&mut self, now: Instant) {
        self.sweep(now);
        if self.entries.len() < self.config.max_sources {
            return;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, e)| !e.is_blocked(now))
            .min_by_key(|(_, e)| e.window_start)
            .or_else(|| self.entries.iter().min_by_key(|(_, e)| e.blocked_until))
            .map(|(k, _)| *k);
        if let Some(k) = victim {
            self.entries.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SourceKey {
        SourceKey::of(s.parse().unwrap())
    }

    fn throttle(max_sources: usize) -> FailureThrottle {
        FailureThrottle::new(ThrottleConfig {
            max_sources,
            ..ThrottleConfig::default()
        })
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(key("192.0.2.1").to_string(), "192.0.2.1");
    }

    #[test]
    fn blocks_after_max_failures_within_the_window() {
        let t0 = Instant::now();
        let mut t = throttle(100);
        let s = key("192.0.2.1");
        for i in 0..4 {
            assert_eq!(t.record_failure(t0 + Duration::from_secs(i), s), None);
        }
        let at = t0 + Duration::from_secs(10);
        let until = t.record_failure(at, s);
        assert_eq!(until, Some(at + Duration::from_secs(300)));
        assert_eq!(t.blocked_until(at, s), until);
        assert_eq!(t.blocked_until(at, key("192.0.2.2")), None);
        assert_eq!(t.blocked_until(at + Duration::from_secs(300), s), None);
    }

    #[test]
    fn failures_spread_over_windows_do_not_block() {
        let t0 = Instant::now();
        let mut t = throttle(100);
        let s = key("192.0.2.1");
        for i in 0..20 {
            assert_eq!(t.record_failure(t0 + Duration::from_secs(20 * i), s), None);
        }
    }

    #[test]
    fn bounded_and_blocks_are_evicted_last() {
        let t0 = Instant::now();
        let mut t = throttle(3);
        let victim = key("192.0.2.1");
        for _ in 0..5 {
            t.record_failure(t0, victim);
        }
        assert!(t.blocked_until(t0, victim).is_some());
        for i in 0..1000u32 {
            let ip = IpAddr::from((0xc633_6400u32 + i).to_be_bytes());
            t.record_failure(t0 + Duration::from_millis(u64::from(i)), SourceKey::of(ip));
            assert!(t.tracked_sources() <= 3);
        }
        assert!(t.blocked_until(t0, victim).is_some());
        t.sweep(t0 + Duration::from_secs(400));
        assert_eq!(t.tracked_sources(), 0);
    }
}
