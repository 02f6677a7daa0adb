//! Liveness and take-over: one task per node.
//!
//! Every `cluster.heartbeat_ms` the task writes this node's heartbeat and
//! looks for nodes silent for `cluster.lease_secs`; it takes each over
//! ([`store::StoreWriter::take_over_silent_nodes`]): the claim is one
//! conditional `UPDATE`, so of several survivors exactly one closes the
//! dead node's calls, each with a `recovered` CDR and its `call_cdr` in
//! the outbox, exactly as the dead node's own start-up recovery would.
//!
//! A node that finds its own row claimed was silent past the lease (a
//! stall, a partition from the database): its calls of that moment have
//! been closed by a survivor. It says so loudly and starts a new life
//! (its row is written again); what it still commits for those calls is
//! refused by the store (a session has one CDR), so nothing is delivered
//! twice.

use std::time::Duration;

use store::{Heartbeat, Store, StoreWriter};
use tokio::sync::watch;

use crate::clock;

/// What the liveness task needs.
pub struct Liveness {
    pub store: Store,
    pub writer: StoreWriter,
    pub node: u16,
    pub address: String,
    pub heartbeat: Duration,
    pub lease: Duration,
}

impl Liveness {
    /// Writes this node's row (start of a life); call before the start-up
    /// recovery, so a survivor's claim on the previous life is cleared.
    pub async fn start(&self) -> anyhow::Result<()> {
        self.store
            .node_started(self.node, &self.address, clock::unix_millis())
            .await?;
        Ok(())
    }

    /// Beats and takes over until `stop`.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            self.beat().await;
            match self
                .writer
                .take_over_silent_nodes(self.node, lease_ms, clock::unix_millis())
                .await
            {
                Ok(taken) => {
                    for t in taken {
                        for r in &t.report.recovered {
                            tracing::warn!(dead_node = t.node, session_id = %r.session_id, tenant_id = %r.tenant_id, cdr_id = %r.cdr_id, "call of a dead node closed with a recovered CDR");
                        }
                        for (session_id, error) in &t.report.failed {
                            tracing::error!(dead_node = t.node, %session_id, %error, "call of a dead node could not be closed; retried after the lease");
                        }
                        tracing::warn!(
                            dead_node = t.node,
                            closed = t.report.recovered.len(),
                            finished = t.finished,
                            "took over a node silent past the lease"
                        );
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot look for silent nodes"),
            }
        }
    }

    async fn beat(&self) {
        let now = clock::unix_millis();
        match self.store.node_heartbeat(self.node, now).await {
            Ok(Heartbeat::Alive) => {}
            Ok(Heartbeat::TakenOver) => {
                tracing::error!(
                    node = self.node,
                    "this node was silent past the lease and another node closed its calls; \
                     starting a new life (what those calls still report is refused)"
                );
                if let Err(error) = self.store.node_started(self.node, &self.address, now).await {
                    tracing::warn!(%error, "cannot write this node's row");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot write this node's heartbeat"),
        }
    }
}
