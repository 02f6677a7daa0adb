//! Cross-node fan-out for `/wsi` and the console's live rows (issue 15;
//! DESIGN.md "More than one machine", where the choice of PostgreSQL
//! `LISTEN/NOTIFY` over NATS JetStream is measured and argued).
//!
//! The outbox stays the source of truth; fan-out only wakes relays. Two
//! tasks per node:
//!
//! - **announce**: each time this node's writer commits (its
//!   `committed_global_sequence` moves), one `NOTIFY` with the last
//!   `global_sequence`. Commits in a burst coalesce (a `watch` keeps only
//!   the latest), so it costs one statement per wake, not per event.
//! - **wake**: the relay's wake-up is this node's commits and every
//!   node's notifications, merged into one `watch`. The relay then reads
//!   the outbox after its cursor as always, so an event reaches a
//!   subscriber on any node in one notification plus one read, and the
//!   order, the gap-free `sequence` and resume are the relay's as before.
//!
//! A notification lost (listener reconnecting, database restarting) only
//! costs latency: the relay still polls every 500 ms.

use std::time::Duration;

use store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Starts both tasks; returns the relay's merged wake-up and the tasks.
pub fn start(
    store: &Store,
    mut committed: watch::Receiver<u64>,
) -> (watch::Receiver<u64>, Vec<JoinHandle<()>>) {
    let (wake_tx, wake) = watch::channel(*committed.borrow());
    let announce = {
        let store = store.clone();
        let mut committed = committed.clone();
        tokio::spawn(async move {
            while committed.changed().await.is_ok() {
                let last = *committed.borrow_and_update();
                if let Err(error) = store.notify_outbox(last).await {
                    tracing::debug!(%error, "cannot notify the other nodes of a commit");
                }
            }
        })
    };
    let listen = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let mut listener = match store.outbox_listener().await {
                    Ok(listener) => listener,
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        if failures == 1 || failures.is_power_of_two() {
                            tracing::warn!(%error, "cannot listen for other nodes' commits; retrying");
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                failures = 0;
                loop {
                    tokio::select! {
                        got = listener.recv() => match got {
                            Ok(global) => {
                                wake_tx.send_modify(|w| *w = (*w).max(global));
                            }
                            Err(error) => {
                                tracing::warn!(%error, "listening for other nodes' commits failed; reconnecting");
                                break;
                            }
                        },
                        changed = committed.changed() => match changed {
                            Ok(()) => {
                                let last = *committed.borrow_and_update();
                                wake_tx.send_modify(|w| *w = (*w).max(last));
                            }
                            // The writer is gone: so is this node's relay's
                            // reason to be woken.
                            Err(_) => return,
                        },
                    }
                }
            }
        })
    };
    (wake, vec![announce, listen])
}
