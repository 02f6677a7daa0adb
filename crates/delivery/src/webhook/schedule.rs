//! What an attempt's result means (SPEC §5), with no I/O: the caller
//! passes the time, the endpoint's failure clock and a random source, and
//! gets back the delivery's next state.
//!
//! - 2xx: delivered; the endpoint is healthy again.
//! - 404: the event stops (PortSIP's rule); 410: the event stops and the
//!   endpoint is disabled (`gone`).
//! - 3xx: a failure (redirects are never followed: the vetted address is
//!   the only one dialled).
//! - 429 and 503 with `Retry-After` (seconds or an HTTP date): the next
//!   attempt waits that long (at least 1 s, at most 24 h) instead of the
//!   schedule's delay; it still counts as an attempt.
//! - Anything else (other status, timeout, refused connection, TLS error,
//!   an address the SSRF guard refuses): retried after the schedule's
//!   next delay, ±20 % jitter, until the schedule is used up (9 attempts
//!   over about 45 hours), then failed.
//! - Every failure starts or continues the endpoint's failure clock; once
//!   it has run for [`RetryPolicy::auto_disable_after`] (5 days) with no
//!   success, the endpoint is disabled (`failing`).

use std::time::{Duration, SystemTime};

use store::{DeliveryStatus, EndpointChange};

/// The retry schedule and its limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the 2nd, 3rd, … attempt.
    pub delays: Vec<Duration>,
    /// ± this many percent of each delay, drawn per retry.
    pub jitter_percent: u32,
    /// Disable an endpoint that has only failed for this long.
    pub auto_disable_after: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// SPEC §5: 5 s, 1 min, 5 min, 30 min, 2 h, 6 h, 12 h, 24 h.
    fn default() -> Self {
        const MIN: u64 = 60;
        const HOUR: u64 = 3600;
        RetryPolicy {
            delays: [
                5,
                MIN,
                5 * MIN,
                30 * MIN,
                2 * HOUR,
                6 * HOUR,
                12 * HOUR,
                24 * HOUR,
            ]
            .into_iter()
            .map(Duration::from_secs)
            .collect(),
            jitter_percent: 20,
            auto_disable_after: Duration::from_secs(5 * 24 * HOUR),
            max_retry_after: Duration::from_secs(24 * HOUR),
        }
    }
}

/// Why an attempt got no HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptError {
    /// Connect (5 s) or the whole attempt (15 s) took too long.
    Timeout(&'static str),
    Connect(String),
    /// The SSRF guard refused every address.
    Blocked(String),
    Tls(String),
    /// The peer broke HTTP, or the request could not be built.
    Protocol(String),
}

impl AttemptError {
    pub fn outcome(&self) -> &'static str {
        match self {
            AttemptError::Timeout(_) => "timeout",
            AttemptError::Connect(_) => "connect_error",
            AttemptError::Blocked(_) => "blocked",
            AttemptError::Tls(_) => "tls_error",
            AttemptError::Protocol(_) => "protocol_error",
        }
    }
}

impl std::fmt::Display for AttemptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttemptError::Timeout(what) => write!(f, "{what} timed out"),
            AttemptError::Connect(e) => write!(f, "connect: {e}"),
            AttemptError::Blocked(e) => write!(f, "refused by the SSRF guard: {e}"),
            AttemptError::Tls(e) => write!(f, "TLS: {e}"),
            AttemptError::Protocol(e) => write!(f, "HTTP: {e}"),
        }
    }
}

/// The HTTP answer, as far as policy cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The raw `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

/// The decision for one finished attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub status: DeliveryStatus,
    /// Unix ms of the next attempt, when `status` is pending.
    pub next_attempt_at: Option<u64>,
    pub endpoint: EndpointChange,
    /// The log's `outcome`: `success`, `http_error`, `redirect`,
    /// `not_found`, `gone`, `throttled`, or an [`AttemptError::outcome`].
    pub outcome: &'static str,
}

/// A source of randomness for jitter (injected so tests are exact).
pub trait Rng {
    fn next_u64(&mut self) -> u64;
}

/// The workspace's SplitMix64: small, fast, good enough for jitter.
pub use cdr::SplitMix64;

/// A [`SplitMix64`] seeded from the OS, for production jitter.
pub fn jitter_rng() -> SplitMix64 {
    let mut seed = [0u8; 8];
    // Jitter is not a secret: a clock-seeded fallback is fine.
    if getrandom::getrandom(&mut seed).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        seed = nanos.to_le_bytes();
    }
    SplitMix64::new(u64::from_le_bytes(seed))
}

impl Rng for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        SplitMix64::next_u64(self)
    }
}

impl RetryPolicy {
    /// `delay` ± `jitter_percent`, uniformly (in whole milliseconds).
    pub fn jittered(&self, delay: Duration, rng: &mut impl Rng) -> Duration {
        let ms = delay.as_millis() as u64;
        let spread = u64::from(self.jitter_percent.min(100)) * 2;
        // factor in per mille: 1000 - 10·p … 1000 + 10·p
        let low = 1000 - spread * 5;
        let factor = low + rng.next_u64() % (spread * 10 + 1);
        Duration::from_millis(ms.saturating_mul(factor) / 1000)
    }

    /// How many attempts an event gets in all.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The next state after attempt number `attempt` (1 for the first)
    /// ended with `result` at `now_ms`; `failing_since` is the endpoint's
    /// failure clock before this attempt.
    pub fn decide(
        &self,
        attempt: u32,
        result: &Result<Answer, AttemptError>,
        now_ms: u64,
        failing_since: Option<u64>,
        rng: &mut impl Rng,
    ) -> Decision {
        let (outcome, retry_after) = match result {
            Ok(a) if (200..300).contains(&a.status) => {
                return Decision {
                    status: DeliveryStatus::Delivered,
                    next_attempt_at: None,
                    endpoint: if failing_since.is_some() {
                        EndpointChange::Healthy
                    } else {
                        EndpointChange::Unchanged
                    },
                    outcome: "success",
                };
            }
            Ok(a) if a.status == 404 => {
                return self.stop(now_ms, failing_since, "not_found", None);
            }
            Ok(a) if a.status == 410 => {
                return self.stop(now_ms, failing_since, "gone", Some("gone"));
            }
            Ok(a) if (300..400).contains(&a.status) => ("redirect", None),
            Ok(a) if a.status == 429 || a.status == 503 => (
                "throttled",
                a.retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, now_ms)),
            ),
            Ok(_) => ("http_error", None),
            Err(e) => (e.outcome(), None),
        };
        let endpoint = self.failure_clock(now_ms, failing_since);
        if matches!(endpoint, EndpointChange::Disable { .. }) {
            return Decision {
                status: DeliveryStatus::Failed,
                next_attempt_at: None,
                endpoint,
                outcome,
            };
        }
        let Some(delay) = self.delays.get(attempt.saturating_sub(1) as usize) else {
            return Decision {
                status: DeliveryStatus::Failed,
                next_attempt_at: None,
                endpoint,
                outcome,
            };
        };
        let wait = match retry_after {
            Some(asked) => asked.clamp(Duration::from_secs(1), self.max_retry_after),
            None => self.jittered(*delay, rng),
        };
        Decision {
            status: DeliveryStatus::Pending,
            next_attempt_at: Some(now_ms.saturating_add(wait.as_millis() as u64)),
            endpoint,
            outcome,
        }
    }

    fn stop(
        &self,
        now_ms: u64,
        failing_since: Option<u64>,
        outcome: &'static str,
        disable: Option<&str>,
    ) -> Decision {
        let endpoint = match disable {
            Some(reason) => EndpointChange::Disable {
                reason: reason.to_owned(),
            },
            None => self.failure_clock(now_ms, failing_since),
        };
        Decision {
            status: DeliveryStatus::Failed,
            next_attempt_at: None,
            endpoint,
            outcome,
        }
    }

    fn failure_clock(&self, now_ms: u64, failing_since: Option<u64>) -> EndpointChange {
        match failing_since {
            None => EndpointChange::Failing {
                at: cdr::UnixMillis(now_ms),
            },
            Some(since)
                if now_ms.saturating_sub(since) >= self.auto_disable_after.as_millis() as u64 =>
            {
                EndpointChange::Disable {
                    reason: "failing".to_owned(),
                }
            }
            Some(_) => EndpointChange::Unchanged,
        }
    }
}

/// `Retry-After`: delta-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now_ms: u64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Duration::from_millis(at_ms.saturating_sub(now_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(u64);
    impl Rng for Fixed {
        fn next_u64(&mut self) -> u64 {
            self.0
        }
    }

    const NOW: u64 = 1_795_874_587_000;

    fn status(code: u16) -> Result<Answer, AttemptError> {
        Ok(Answer {
            status: code,
            retry_after: None,
        })
    }

    #[test]
    fn the_production_schedule_is_specs() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = p.delays.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [5, 60, 300, 1800, 7200, 21600, 43200, 86400]);
        assert_eq!(p.max_attempts(), 9);
        let total: u64 = secs.iter().sum();
        assert_eq!(total, 44 * 3600 + 36 * 60 + 5, "about 45 hours");
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_reaches_both_ends() {
        let p = RetryPolicy::default();
        let d = Duration::from_secs(300);
        assert_eq!(p.jittered(d, &mut Fixed(0)), Duration::from_secs(240));
        assert_eq!(p.jittered(d, &mut Fixed(400)), Duration::from_secs(360));
        assert_eq!(p.jittered(d, &mut Fixed(200)), d);
        let mut rng = SplitMix64::new(7);
        for _ in 0..10_000 {
            let j = p.jittered(d, &mut rng);
            assert!(j >= Duration::from_secs(240) && j <= Duration::from_secs(360));
        }
    }

    #[test]
    fn failures_follow_the_schedule_then_fail() {
        let p = RetryPolicy::default();
        let mut rng = Fixed(200); // no jitter
        for (attempt, delay) in p.delays.iter().enumerate() {
            let d = p.decide(attempt as u32 + 1, &status(500), NOW, Some(NOW), &mut rng);
            assert_eq!(d.status, DeliveryStatus::Pending);
            assert_eq!(d.next_attempt_at, Some(NOW + delay.as_millis() as u64));
            assert_eq!(d.outcome, "http_error");
        }
        let last = p.decide(9, &status(500), NOW, Some(NOW), &mut rng);
        assert_eq!(last.status, DeliveryStatus::Failed);
        assert_eq!(last.next_attempt_at, None);
    }

    #[test]
    fn success_clears_the_failure_clock() {
        let p = RetryPolicy::default();
        let d = p.decide(3, &status(204), NOW, Some(NOW - 1000), &mut Fixed(0));
        assert_eq!(d.status, DeliveryStatus::Delivered);
        assert_eq!(d.endpoint, EndpointChange::Healthy);
        let d = p.decide(1, &status(200), NOW, None, &mut Fixed(0));
        assert_eq!(d.endpoint, EndpointChange::Unchanged);
        let d = p.decide(1, &status(500), NOW, None, &mut Fixed(0));
        assert_eq!(
            d.endpoint,
            EndpointChange::Failing {
                at: cdr::UnixMillis(NOW)
            }
        );
    }

    #[test]
    fn not_found_stops_and_gone_disables() {
        let p = RetryPolicy::default();
        let d = p.decide(1, &status(404), NOW, None, &mut Fixed(0));
        assert_eq!((d.status, d.outcome), (DeliveryStatus::Failed, "not_found"));
        assert!(!matches!(d.endpoint, EndpointChange::Disable { .. }));
        let d = p.decide(1, &status(410), NOW, None, &mut Fixed(0));
        assert_eq!((d.status, d.outcome), (DeliveryStatus::Failed, "gone"));
        assert_eq!(
            d.endpoint,
            EndpointChange::Disable {
                reason: "gone".into()
            }
        );
    }

    #[test]
    fn redirects_are_failures_that_retry() {
        let p = RetryPolicy::default();
        for code in [301, 302, 307, 308] {
            let d = p.decide(1, &status(code), NOW, None, &mut Fixed(200));
            assert_eq!((d.status, d.outcome), (DeliveryStatus::Pending, "redirect"));
            assert_eq!(d.next_attempt_at, Some(NOW + 5000));
        }
    }

    #[test]
    fn retry_after_replaces_the_delay_for_429_and_503_only() {
        let p = RetryPolicy::default();
        let answer = |code, v: &str| {
            Ok(Answer {
                status: code,
                retry_after: Some(v.to_owned()),
            })
        };
        let d = p.decide(1, &answer(429, "120"), NOW, None, &mut Fixed(0));
        assert_eq!(d.next_attempt_at, Some(NOW + 120_000));
        assert_eq!(d.outcome, "throttled");
        let d = p.decide(1, &answer(503, "0"), NOW, None, &mut Fixed(0));
        assert_eq!(d.next_attempt_at, Some(NOW + 1000), "at least a second");
        let d = p.decide(1, &answer(503, "9999999"), NOW, None, &mut Fixed(0));
        assert_eq!(d.next_attempt_at, Some(NOW + 86_400_000), "at most a day");
        // An HTTP date 90 s after NOW.
        let date =
            httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_millis(NOW + 90_000));
        let d = p.decide(1, &answer(503, &date), NOW, None, &mut Fixed(0));
        assert_eq!(d.next_attempt_at, Some(NOW + 90_000));
        // Garbage: the schedule.
        let d = p.decide(1, &answer(429, "soon"), NOW, None, &mut Fixed(200));
        assert_eq!(d.next_attempt_at, Some(NOW + 5000));
        // Not honoured on a 500.
        let d = p.decide(1, &answer(500, "120"), NOW, None, &mut Fixed(200));
        assert_eq!(d.next_attempt_at, Some(NOW + 5000));
    }

    #[test]
    fn five_days_of_failures_disable_the_endpoint() {
        let p = RetryPolicy::default();
        let day = 86_400_000;
        let d = p.decide(2, &status(500), NOW, Some(NOW - 5 * day + 1), &mut Fixed(0));
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(d.endpoint, EndpointChange::Unchanged);
        let err = Err(AttemptError::Timeout("request"));
        let d = p.decide(2, &err, NOW, Some(NOW - 5 * day), &mut Fixed(0));
        assert_eq!(
            d.endpoint,
            EndpointChange::Disable {
                reason: "failing".into()
            }
        );
        assert_eq!(d.status, DeliveryStatus::Failed);
        assert_eq!(d.outcome, "timeout");
    }

    #[test]
    fn transport_errors_are_named() {
        let p = RetryPolicy::default();
        for (e, name) in [
            (AttemptError::Connect("refused".into()), "connect_error"),
            (AttemptError::Blocked("10.0.0.1".into()), "blocked"),
            (AttemptError::Tls("bad cert".into()), "tls_error"),
            (AttemptError::Protocol("eof".into()), "protocol_error"),
        ] {
            let d = p.decide(1, &Err(e), NOW, None, &mut Fixed(0));
            assert_eq!((d.status, d.outcome), (DeliveryStatus::Pending, name));
        }
    }
}
