//! Webhook attempts by result, counted in this process for the binary's
//! Prometheus metrics (`tally_webhook_attempts_total{result}`). Process
//! wide: a node runs one dispatcher.

use std::sync::atomic::{AtomicU64, Ordering};

/// The results an attempt's log can show (see `schedule::Decision`), and
/// `unknown` for anything else.
pub const RESULTS: [&str; 12] = [
    "success",
    "http_error",
    "redirect",
    "not_found",
    "gone",
    "throttled",
    "timeout",
    "connect_error",
    "blocked",
    "tls_error",
    "protocol_error",
    "unknown",
];

static COUNTS: [AtomicU64; 12] = [const { AtomicU64::new(0) }; 12];

/// Counts one attempt with `result` (its log `outcome`).
pub(crate) fn attempted(result: &str) {
    let i = RESULTS
        .iter()
        .position(|r| *r == result)
        .unwrap_or(RESULTS.len() - 1);
    COUNTS[i].fetch_add(1, Ordering::Relaxed);
}

/// Every result with its count so far, in [`RESULTS`] order.
pub fn attempts() -> impl Iterator<Item = (&'static str, u64)> {
    RESULTS
        .iter()
        .zip(&COUNTS)
        .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_counted_by_result_and_strangers_as_unknown() {
        let count = |name: &str| attempts().find(|(r, _)| *r == name).unwrap().1;
        let (blocked, unknown) = (count("blocked"), count("unknown"));
        attempted("blocked");
        attempted("blocked");
        attempted("no such result");
        assert!(count("blocked") >= blocked + 2);
        assert!(count("unknown") > unknown);
    }
}
