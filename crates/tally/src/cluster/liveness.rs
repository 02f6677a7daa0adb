//! Liveness and take-over: one task per node.
//!
//! Every `cluster.heartbeat_ms` the task writes this node's heartbeat and
//! looks for nodes silent for `cluster.lease_secs`; it takes each over
//! ([`store::StoreWriter::take_over_silent_nodes`]): the claim is one
//! conditional `UPDATE`, so of several survivors exactly one closes the
//! dead node's calls, each with a `recovered` CDR and its `call_cdr` in
//! the outbox, exactly as the dead node's own start-up recovery would.
//!
//! A node judges others only after its own beats have reached the
//! database, one heartbeat after the other, for a whole lease: after a
//! database outage (a restart) every row is stale, and a node that took
//! the others over at its first beat back would close calls that are
//! alive (the cluster test restarts PostgreSQL for longer than the lease).
//!
//! A node that finds its own row claimed was silent past the lease (a
//! stall, a partition from the database): its calls of that moment have
//! been closed by a survivor. It says so loudly and starts a new life
//! (its row is written again); what it still commits for those calls is
//! refused by the store (a session has one CDR), so nothing is delivered
//! twice.

use std::time::{Duration, Instant};

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
        // Since when this node's beats have all reached the database, one
        // heartbeat after the other, and when the last one did.
        let mut healthy_since: Option<Instant> = None;
        let mut last_beat: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if !self.beat().await {
                healthy_since = None;
                last_beat = None;
                continue;
            }
            // After the database was out of reach (for this node, or for
            // all: a restart), every node looks silent. Only a node that
            // has been beating for a whole lease may judge the others:
            // by then every live node has beaten too. A beat that came
            // long after the previous one (it waited for a connection
            // while the database was away) starts the count again.
            let now = Instant::now();
            if last_beat.is_none_or(|last| now - last > self.heartbeat * 2) {
                healthy_since = Some(now);
            }
            last_beat = Some(now);
            if healthy_since.is_none_or(|since| now - since < self.lease) {
                continue;
            }
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

    /// Writes the heartbeat; whether the database took it.
    async fn beat(&self) -> bool {
        let now = clock::unix_millis();
        match self.store.node_heartbeat(self.node, now).await {
            Ok(Heartbeat::Alive) => true,
            Ok(Heartbeat::TakenOver) => {
                tracing::error!(
                    node = self.node,
                    "this node was silent past the lease and another node closed its calls; \
                     starting a new life (what those calls still report is refused)"
                );
                match self.store.node_started(self.node, &self.address, now).await {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::warn!(%error, "cannot write this node's row");
                        false
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot write this node's heartbeat");
                false
            }
        }
    }
}
