//! Cross-node wake-ups for the outbox relay (issue 15): PostgreSQL
//! `LISTEN/NOTIFY` on channel [`OUTBOX_CHANNEL`].
//!
//! A node that committed outbox rows says so ([`Store::notify_outbox`],
//! the payload is its last `global_sequence`); every node listens
//! ([`Store::outbox_listener`]) and wakes its relay, which reads the
//! outbox as always. The notification carries nothing else: the outbox
//! stays the only source of events, so a lost notification delays an
//! event by at most the relay's poll, and resume by `sequence` is
//! untouched. On SQLite (one node) both are no-ops.

use sqlx::postgres::PgListener;

use crate::Store;
use crate::db::Pool;
use crate::error::StoreError;

/// The notification channel.
pub const OUTBOX_CHANNEL: &str = "tally_outbox";

/// A connection listening on [`OUTBOX_CHANNEL`] (`None` inside on SQLite:
/// nothing ever arrives).
pub struct OutboxListener(Option<PgListener>);

impl OutboxListener {
    /// The next notification's `global_sequence` (0 if its payload is not
    /// a number). A lost connection is reopened by sqlx, and the
    /// notifications sent meanwhile are lost: the caller's poll covers
    /// them. Never returns on SQLite.
    pub async fn recv(&mut self) -> Result<u64, StoreError> {
        match &mut self.0 {
            Some(listener) => {
                let n = listener.recv().await?;
                Ok(n.payload().parse().unwrap_or(0))
            }
            None => std::future::pending().await,
        }
    }
}

impl Store {
    /// Tells the other nodes that the outbox has rows up to `global`.
    pub async fn notify_outbox(&self, global: u64) -> Result<(), StoreError> {
        if let Pool::Postgres(pool) = &self.pool {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(OUTBOX_CHANNEL)
                .bind(global.to_string())
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Listens for [`Store::notify_outbox`] of every node (its own too).
    pub async fn outbox_listener(&self) -> Result<OutboxListener, StoreError> {
        match &self.pool {
            Pool::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(OUTBOX_CHANNEL).await?;
                Ok(OutboxListener(Some(listener)))
            }
            Pool::Sqlite(_) => Ok(OutboxListener(None)),
        }
    }
}
