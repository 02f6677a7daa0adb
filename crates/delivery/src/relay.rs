//! The outbox relay: one task per process that follows the outbox by
//! `global_sequence` and broadcasts every committed event, in commit order,
//! to in-process subscribers (the WebSocket hub, the webhook dispatcher's
//! wake-up).
//!
//! It wakes when the local [`store::StoreWriter`] reports a commit (its
//! `committed_global_sequence` watch) and also polls every
//! [`RelayConfig::poll`], which picks up what other nodes commit to a
//! shared PostgreSQL.
//!
//! Live only: it starts after the last event committed before it started.
//! Consumers that must not miss anything keep their own durable cursor and
//! read the store ([`store::Store::outbox_after`],
//! [`store::Store::outbox_since_global`]); the broadcast is the fast path
//! and a wake-up. A subscriber that falls more than
//! [`RelayConfig::capacity`] events behind gets
//! [`broadcast::error::RecvError::Lagged`] and must catch up from the store
//! (the WebSocket hub closes such a connection with 4008, SPEC §6).

use std::sync::Arc;
use std::time::Duration;

use store::{OutboxEvent, Store, StoreError};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// How the relay reads and buffers.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Read the outbox at least this often even without a local commit.
    pub poll: Duration,
    /// Most events read per query.
    pub batch: u32,
    /// Events a subscriber may fall behind before it lags.
    pub capacity: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            batch: 1000,
            capacity: 16_384,
        }
    }
}

/// A running relay. Cheap to clone; the task stops when `wake`'s sender
/// (the writer) is gone and every handle is dropped, or on [`Relay::stop`].
#[derive(Clone, Debug)]
pub struct Relay {
    events: broadcast::Sender<Arc<OutboxEvent>>,
    position: watch::Receiver<u64>,
    task: Arc<JoinHandle<()>>,
}

impl Relay {
    /// Starts following the outbox after what is committed now.
    pub async fn spawn(
        store: Store,
        wake: watch::Receiver<u64>,
        config: RelayConfig,
    ) -> Result<Self, StoreError> {
        let start = store.outbox_last_global_sequence().await?;
        Ok(Self::spawn_after(store, wake, config, start))
    }

    /// Starts following the outbox after `global_sequence` `start`.
    pub fn spawn_after(
        store: Store,
        wake: watch::Receiver<u64>,
        config: RelayConfig,
        start: u64,
    ) -> Self {
        let (events, _) = broadcast::channel(config.capacity.max(1));
        let (position_tx, position) = watch::channel(start);
        let task = tokio::spawn(run(store, wake, config, start, events.clone(), position_tx));
        Relay {
            events,
            position,
            task: Arc::new(task),
        }
    }

    /// Every event committed from now on, in `global_sequence` order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<OutboxEvent>> {
        self.events.subscribe()
    }

    /// The `global_sequence` of the last event broadcast: an event with a
    /// higher one reaches a subscriber that subscribes now.
    pub fn position(&self) -> watch::Receiver<u64> {
        self.position.clone()
    }

    /// Stops the task (pending reads are abandoned; nothing is lost, the
    /// outbox is durable).
    pub fn stop(&self) {
        self.task.abort();
    }
}

async fn run(
    store: Store,
    mut wake: watch::Receiver<u64>,
    config: RelayConfig,
    mut cursor: u64,
    events: broadcast::Sender<Arc<OutboxEvent>>,
    position: watch::Sender<u64>,
) {
    let mut writer_gone = false;
    let mut failures = 0u32;
    loop {
        match store.outbox_since_global(cursor, config.batch).await {
            Ok(batch) => {
                failures = 0;
                let full = batch.len() == config.batch as usize;
                for event in batch {
                    cursor = event.global_sequence;
                    // No receiver is not an error: nobody listens yet.
                    let _ = events.send(Arc::new(event));
                }
                position.send_replace(cursor);
                if full {
                    continue;
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(error = %e, failures, "outbox relay: read failed, retrying");
                }
            }
        }
        if writer_gone {
            tokio::time::sleep(config.poll).await;
            continue;
        }
        tokio::select! {
            changed = wake.changed() => {
                if changed.is_err() {
                    writer_gone = true;
                }
            }
            () = tokio::time::sleep(config.poll) => {}
        }
    }
}
