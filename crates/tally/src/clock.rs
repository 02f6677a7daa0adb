//! The two readings of "now" the sans-IO cores take (DESIGN.md, "Sans-IO
//! cores"): a monotonic [`Instant`] for timers, Unix milliseconds for
//! records.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cdr::UnixMillis;

pub fn now() -> (Instant, u64) {
    (Instant::now(), unix_ms())
}

pub fn unix_ms() -> u64 {
    // A clock before 1970 is a broken clock; 0 keeps records ordered.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub fn unix_millis() -> UnixMillis {
    UnixMillis(unix_ms())
}
