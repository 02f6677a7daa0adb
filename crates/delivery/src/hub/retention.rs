//! Outbox retention: how long committed events stay readable for resume
//! (WebSocket `from_sequence`, SPEC §6) and replay (the webhook replay
//! endpoint, SPEC §5).
//!
//! One task per node deletes, every [`Retention::every`], the outbox rows
//! committed more than [`Retention::keep`] ago, oldest first, in batches
//! (see [`store::Store::outbox_prune`]). Several nodes sharing PostgreSQL
//! may all run it: the deletes are idempotent.
//!
//! `keep` defaults to 7 days (SPEC §6: "retention ≥ 7 days") and is never
//! below [`MIN_KEEP`], 2 days: a webhook event is retried for about 45
//! hours (SPEC §5) and its attempts read the row.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdr::UnixMillis;
use store::{Store, StoreError};
use tokio::task::JoinHandle;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest retention accepted: longer than the webhook retry span.
pub const MIN_KEEP: Duration = Duration::from_secs(2 * 24 * 60 * 60);

/// Rows deleted per statement.
const BATCH: u32 = 5_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// How long a committed event stays in the outbox.
    pub keep: Duration,
    /// How often the pruning task runs.
    pub every: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep: 7 * DAY,
            every: Duration::from_secs(10 * 60),
        }
    }
}

/// A retention shorter than the webhook retries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "outbox retention must be at least {} days (webhook retries span about 45 hours), got {days}",
    MIN_KEEP.as_secs() / DAY.as_secs()
)]
pub struct RetentionError {
    pub days: u32,
}

impl Retention {
    /// `days` of retention; refused below [`MIN_KEEP`].
    pub fn days(days: u32) -> Result<Self, RetentionError> {
        let keep = DAY * days;
        if keep < MIN_KEEP {
            return Err(RetentionError { days });
        }
        Ok(Self {
            keep,
            ..Self::default()
        })
    }

    /// `keep`, raised to [`MIN_KEEP`] if a caller built it lower.
    pub fn effective_keep(&self) -> Duration {
        self.keep.max(MIN_KEEP)
    }

    /// Deletes what is older than retention at `now`; returns how many rows.
    pub async fn prune(&self, store: &Store, now: UnixMillis) -> Result<u64, StoreError> {
        let keep = u64::try_from(self.effective_keep().as_millis()).unwrap_or(u64::MAX);
        let before = UnixMillis(now.0.saturating_sub(keep));
        let mut total = 0;
        loop {
            let n = store.outbox_prune(before, BATCH).await?;
            total += n;
            if n < u64::from(BATCH) {
                return Ok(total);
            }
            // Let the writer in between batches.
            tokio::task::yield_now().await;
        }
    }

    /// Runs [`Retention::prune`] now and then every [`Retention::every`],
    /// until the handle is aborted.
    pub fn spawn(self, store: Store) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.every.max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match self.prune(&store, wall_clock()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "outbox retention: old events deleted"),
                    Err(e) => tracing::warn!(error = %e, "outbox retention: prune failed"),
                }
            }
        })
    }
}

fn wall_clock() -> UnixMillis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    UnixMillis(ms)
}
