//! The location shared across nodes (issue 15; DESIGN.md "More than one
//! machine"). Kamailio spreads calls by Call-ID, so a call may land on a
//! node that did not take the callee's REGISTER: every node persists its
//! binding changes (`bindings::persist`, removals as tombstones) and
//! follows the other nodes' from the store with this task, so that each
//! node's location holds every phone. Requests to a phone carry the
//! REGISTER's Path as their Route: they go through the Kamailio the
//! phone registered through, from whichever node.
//!
//! Every [`SHARED_LOCATION_POLL`] the task reads the rows written since
//! its cursor, less [`OVERLAP`] (rows are stamped by the writing node's
//! clock and committed a little after: re-reading a window is cheap and
//! idempotent, missing a row is not), and hands them to the shard, whose
//! registrar keeps the newest of each binding
//! (`pbx::Location::apply_shared`). Once a minute it deletes tombstones
//! old enough that every node has read them.

use std::time::Duration;

use cdr::UnixMillis;
use store::Store;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock;
use crate::shard::ShardInput;

/// How often a node reads the other nodes' binding changes: the longest a
/// phone that just registered elsewhere is unknown here.
pub const SHARED_LOCATION_POLL: Duration = Duration::from_millis(500);
/// How far behind the cursor each read starts.
const OVERLAP: u64 = 5_000;
/// How long a tombstone is kept.
const TOMBSTONE_KEPT: u64 = 60_000;

/// Follows the shared location until `stop`. Starts from `since`: the
/// moment the registrations were restored at start-up.
pub async fn follow(
    store: Store,
    shard: mpsc::Sender<ShardInput>,
    since: UnixMillis,
    mut stop: watch::Receiver<bool>,
) {
    let mut cursor = since.0;
    let mut tick = tokio::time::interval(SHARED_LOCATION_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut swept = clock::unix_ms();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let rows = match store
            .registrations_updated_since(UnixMillis(cursor.saturating_sub(OVERLAP)))
            .await
        {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "cannot read the shared location");
                continue;
            }
        };
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            cursor = cursor.max(row.updated_at.0);
            let (tenant, extension) = (row.tenant_id, row.extension.clone());
            match crate::bindings::from_store(row) {
                Ok(record) => records.push(record),
                Err(error) => {
                    tracing::warn!(tenant_id = %tenant, %extension, %error, "shared registration skipped")
                }
            }
        }
        if !records.is_empty() {
            let (reply, answer) = oneshot::channel();
            let command = pbx::Control::SharedBindings(records);
            if shard
                .send(ShardInput::Control { command, reply })
                .await
                .is_err()
            {
                return;
            }
            if let Ok(pbx::ControlReply::SharedBindings(report)) = answer.await
                && (report.applied > 0 || report.removed > 0 || report.rejected > 0)
            {
                tracing::debug!(
                    applied = report.applied,
                    removed = report.removed,
                    rejected = report.rejected,
                    "shared location followed"
                );
            }
        }
        let now = clock::unix_ms();
        if now.saturating_sub(swept) >= TOMBSTONE_KEPT {
            swept = now;
            if let Err(error) = store
                .remove_expired_registrations(UnixMillis(now.saturating_sub(TOMBSTONE_KEPT)))
                .await
            {
                tracing::warn!(%error, "cannot sweep expired registrations");
            }
        }
    }
}
