//! Throttling of accounts that keep failing authentication from one source.
//!
//! A (source, account) pair that fails `max_failures` times within `window`
//! is refused (403) for `cool_down`, without its credentials being looked
//! at, so a password cannot be guessed faster than that rate from one
//! address.
//!
//! # Decisions
//!
//! - **The unit is (source, tenant, user)** ([`FailureKey`]), not the source
//!   alone. UDP sources are spoofable: counting per source let five forged
//!   packets naming any user, known or not, lock a victim's phone or a
//!   whole office NAT out. Now a forged failure can only block the pair it
//!   names. Failures for unknown users and unknown domains are counted the
//!   same way, under the name they gave, so they block only that
//!   (source, non-existent user) pair, which nobody uses: a source is never
//!   locked out by unknown-user traffic alone, and a blocked pair looks the
//!   same whether the user exists or not. What is left: someone who knows
//!   an extension and spoofs its phone's address can still block that one
//!   phone for a cool-down (TCP, which cannot be spoofed, avoids it), and a
//!   guesser spreading over many sources is slowed per source only.
//! - **A source is an IPv4 address or an IPv6 /64** ([`SourceKey`]): one
//!   IPv6 subscriber usually holds a whole /64, and keying by full address
//!   would let it rotate through 2^64 of them.
//! - **Fixed window from the first failure**: the window opens at a pair's
//!   first failure and closes `window` later; the count restarts after it.
//!   Cheap (two fields per pair) and exact enough for its purpose.
//! - **Success does not reset the count**: a correct answer proves nothing
//!   about the failures before it (a phone and a guesser behind one NAT),
//!   and the window ends them anyway.
//! - **Bounded**: at most `max_sources` entries (pairs). When full, entries
//!   with nothing to remember (window over, not blocked) are dropped, then
//!   the unblocked entry with the oldest window, and only then the block
//!   that ends soonest: an attacker spraying addresses or names evicts its
//!   own entries before anyone's block. Eviction scans the table (O(n)),
//!   only when full. User names are cut to [`MAX_USER_LEN`] bytes, so an
//!   entry's size is bounded too.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use cdr::TenantId;

/// Longest user name kept in a [`FailureKey`]; longer ones are cut (they
/// are not extensions anyway).
pub const MAX_USER_LEN: usize = 64;

/// Settings of the failure throttle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures within `window` that block a source (at least 1).
    pub max_failures: u32,
    pub window: Duration,
    /// How long a blocked pair is refused.
    pub cool_down: Duration,
    /// (source, account) pairs remembered at once (at least 1).
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

/// What the throttle counts failures of: one source asking for one
/// account (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FailureKey {
    pub source: SourceKey,
    /// `None` when the domain named no tenant.
    pub tenant: Option<TenantId>,
    /// The user the request named (To for REGISTER, From for INVITE), as
    /// given, cut to [`MAX_USER_LEN`] bytes; empty when it named none.
    pub user: String,
}

impl FailureKey {
    pub fn new(source: SourceKey, tenant: Option<TenantId>, user: Option<&str>) -> FailureKey {
        let mut user = user.unwrap_or_default();
        if user.len() > MAX_USER_LEN {
            let mut end = MAX_USER_LEN;
            while !user.is_char_boundary(end) {
                end -= 1;
            }
            user = &user[..end];
        }
        FailureKey {
            source,
            tenant,
            user: user.to_owned(),
        }
    }
}

impl fmt::Display for FailureKey {
    /// `101 from 192.0.2.1`, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} from {}", self.user, self.source)
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

/// Failure counts and blocks per (source, account).
#[derive(Clone, Debug)]
pub(crate) struct FailureThrottle {
    config: ThrottleConfig,
    /// Ordered, so eviction ties break the same way on every run.
    entries: BTreeMap<FailureKey, Entry>,
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

    /// When the block on `key` ends, if it is blocked now.
    pub(crate) fn blocked_until(&self, now: Instant, key: &FailureKey) -> Option<Instant> {
        self.entries
            .get(key)
            .filter(|e| e.is_blocked(now))
            .and_then(|e| e.blocked_until)
    }

    /// Counts a failure; returns the end of the block it starts, if it does.
    pub(crate) fn record_failure(&mut self, now: Instant, key: &FailureKey) -> Option<Instant> {
        if !self.entries.contains_key(key) && self.entries.len() >= self.config.max_sources {
            self.make_room(now);
        }
        let window = self.config.window;
        let e = self.entries.entry(key.clone()).or_insert(Entry {
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
            .map(|(k, _)| k.clone());
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

    fn pair(source: &str, user: &str) -> FailureKey {
        FailureKey::new(key(source), None, Some(user))
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
        let s = pair("192.0.2.1", "101");
        for i in 0..4 {
            assert_eq!(t.record_failure(t0 + Duration::from_secs(i), &s), None);
        }
        let at = t0 + Duration::from_secs(10);
        let until = t.record_failure(at, &s);
        assert_eq!(until, Some(at + Duration::from_secs(300)));
        assert_eq!(t.blocked_until(at, &s), until);
        assert_eq!(t.blocked_until(at, &pair("192.0.2.2", "101")), None);
        assert_eq!(t.blocked_until(at, &pair("192.0.2.1", "102")), None);
        assert_eq!(t.blocked_until(at + Duration::from_secs(300), &s), None);
    }

    #[test]
    fn user_names_are_cut_on_a_character_boundary() {
        let long = "é".repeat(100);
        let k = FailureKey::new(key("192.0.2.1"), None, Some(&long));
        assert!(k.user.len() <= MAX_USER_LEN && !k.user.is_empty());
        assert_eq!(FailureKey::new(key("192.0.2.1"), None, None).user, "");
    }

    #[test]
    fn failures_spread_over_windows_do_not_block() {
        let t0 = Instant::now();
        let mut t = throttle(100);
        let s = pair("192.0.2.1", "101");
        for i in 0..20 {
            assert_eq!(t.record_failure(t0 + Duration::from_secs(20 * i), &s), None);
        }
    }

    #[test]
    fn bounded_and_blocks_are_evicted_last() {
        let t0 = Instant::now();
        let mut t = throttle(3);
        let victim = pair("192.0.2.1", "101");
        for _ in 0..5 {
            t.record_failure(t0, &victim);
        }
        assert!(t.blocked_until(t0, &victim).is_some());
        for i in 0..1000u32 {
            let ip = IpAddr::from((0xc633_6400u32 + i).to_be_bytes());
            let sprayed = FailureKey::new(SourceKey::of(ip), None, Some("101"));
            t.record_failure(t0 + Duration::from_millis(u64::from(i)), &sprayed);
            // Names sprayed from the victim's own address, too.
            let named = pair("192.0.2.1", &format!("x{i}"));
            t.record_failure(t0 + Duration::from_millis(u64::from(i)), &named);
            assert!(t.tracked_sources() <= 3);
        }
        assert!(t.blocked_until(t0, &victim).is_some());
        t.sweep(t0 + Duration::from_secs(400));
        assert_eq!(t.tracked_sources(), 0);
    }
}
