//! Trunks reloaded after provisioning: a fresh [`super::load`] (trunks,
//! DID and outbound rules, outbound permissions, resolved hosts) replaces
//! the engine's through the shard (`Input::ReplaceTrunks`), and the live
//! registration and keep-alive tasks are reconciled with it.
//!
//! # Decisions
//!
//! - **The whole table, not a diff.** Loads are small (a tenant has a few
//!   trunks and rules) and a whole table cannot be half applied; the
//!   engine's `Trunks` is replaced in one input, so a call never routes
//!   with a rule naming a trunk of another load.
//! - **The API waits** for the shard to take the new table before it
//!   answers, as directory changes do: a DID created is routable the
//!   moment its `201` arrives. A reload that fails (the store unavailable)
//!   is logged; the change is committed and the next reload carries it.
//! - **One reload at a time** (a mutex): two changes in a row cannot hand
//!   the shard their loads in the wrong order.

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::shard::{Provision, ShardInput};

use super::live::{LiveStates, Supervisor};

/// Why a reload did not reach the engine.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("reading the trunks: {0}")]
    Store(#[from] store::StoreError),
    #[error("the shard has stopped")]
    ShardGone,
}

/// Reloads trunks into the shard and the live tasks.
pub struct TrunkReload {
    store: store::Store,
    shard: mpsc::Sender<ShardInput>,
    live: Mutex<Supervisor>,
    states: LiveStates,
    resolver: super::dns::Resolver,
}

impl TrunkReload {
    /// Starts the live tasks for `initial` (what the engine was given at
    /// start-up).
    pub fn new(
        store: store::Store,
        shard: mpsc::Sender<ShardInput>,
        mut live: Supervisor,
        resolver: super::dns::Resolver,
        initial: &pbx::trunk::Trunks,
    ) -> Self {
        // A trunk going down or up reaches the engine (it skips trunks
        // down), in the order the tasks saw it.
        let (reports, mut down) = mpsc::unbounded_channel();
        live.report_to(reports);
        let to_shard = shard.clone();
        tokio::spawn(async move {
            while let Some((id, is_down)) = down.recv().await {
                let (done, _) = oneshot::channel();
                let change = Provision::TrunkDown {
                    trunk: pbx::trunk::TrunkId(id),
                    down: is_down,
                };
                if to_shard
                    .send(ShardInput::Provision { change, done })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        live.reconcile(initial.all());
        let states = live.states();
        TrunkReload {
            store,
            shard,
            live: Mutex::new(live),
            states,
            resolver,
        }
    }

    /// The live tasks' states, for `GET /api/trunks/{id}`.
    pub fn states(&self) -> LiveStates {
        std::sync::Arc::clone(&self.states)
    }

    /// Loads the trunks again and hands them over (see the module docs).
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let mut live = self.live.lock().await;
        let trunks = super::load(&self.store, &self.resolver).await?;
        live.reconcile(trunks.all());
        let (done, applied) = oneshot::channel();
        let change = Provision::Trunks(Box::new(trunks));
        self.shard
            .send(ShardInput::Provision { change, done })
            .await
            .map_err(|_| ReloadError::ShardGone)?;
        applied
            .await
            .map_err(|_| ReloadError::ShardGone)?
            .map_err(|_| ReloadError::ShardGone)
    }

    /// Stops the live tasks.
    pub async fn shutdown(&self) {
        self.live.lock().await.shutdown().await;
    }
}
