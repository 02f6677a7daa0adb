//! Nodes sharing one database (issue 15): liveness and the take-over of a
//! dead node's calls.
//!
//! Each node owns the row of its Snowflake node id in `nodes` (migration
//! 0023): it writes the row at start ([`Store::node_started`], which also
//! clears any claim a survivor left on it) and bumps `heartbeat_at` every
//! few seconds ([`Store::node_heartbeat`]). A survivor that finds a row
//! silent for longer than the lease takes the dead node's calls over
//! ([`StoreWriter::take_over_silent_nodes`]):
//!
//! 1. **Claim**, with one conditional `UPDATE` on the dead node's row
//!    (still silent, not finished, not claimed by someone alive). The
//!    database applies it to the row once: of two survivors racing, the
//!    second's `UPDATE` re-reads the row after the first committed, finds
//!    the claim and changes nothing, so it closes nothing.
//! 2. **Close** the dead node's open sessions exactly as the start-up
//!    recovery does ([`StoreWriter::recover_orphans`] scoped to that node):
//!    `recovered: true`, `ended_time` = last activity, `call_cdr` in the
//!    outbox, all in the writer's transactions.
//! 3. **Finish**: `closed_at` is set (only while the claim is still ours),
//!    so the row is not claimed again. If some session could not be
//!    closed, the row stays unfinished; once the claim is older than the
//!    lease, anyone may claim it again (also when the claimant died
//!    half-way).
//!
//! Beneath the claim, the CDR's unique `session_id` and the journal
//! deleted in the CDR's own transaction make closing a session idempotent:
//! a node that comes back while it is being taken over, and recovers its
//! own sessions at start, cannot give a session a second CDR or a second
//! `call_cdr`.
//!
//! Times are the nodes' own clocks (Unix ms), so the nodes' clocks must
//! agree to well within the lease (NTP does it; the lease is seconds).

use cdr::UnixMillis;

use crate::Store;
use crate::convert::{db_ms, get_ms, get_opt_ms, get_u16};
use crate::db::{Conn, Row, args, with_conn};
use crate::error::StoreError;
use crate::recovery::{RecoveryReport, RecoveryScope};
use crate::writer::StoreWriter;

/// One node's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    pub node: u16,
    /// Where the node answers SIP (`host:port`), for operators.
    pub address: String,
    pub started_at: UnixMillis,
    pub heartbeat_at: UnixMillis,
    /// The survivor that claimed the node's calls, and when.
    pub claimed_by: Option<u16>,
    pub claimed_at: Option<UnixMillis>,
    /// When the take-over finished (every open session closed).
    pub closed_at: Option<UnixMillis>,
}

/// What a heartbeat found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    /// The row is ours and alive.
    Alive,
    /// Another node claimed the row (this node was silent past the lease,
    /// so its calls were closed by someone else), or the row is gone.
    TakenOver,
}

/// One dead node taken over by [`StoreWriter::take_over_silent_nodes`].
#[derive(Debug)]
pub struct TakeOver {
    pub node: u16,
    /// The sessions closed, and those that could not be (left for a later
    /// claim).
    pub report: RecoveryReport,
    /// `closed_at` was written: nothing is left to take over.
    pub finished: bool,
}

impl Store {
    /// This node (re)starts: its row says so, and any claim on it from a
    /// previous life is cleared (the claimant's closing is idempotent
    /// against this node's own start-up recovery).
    pub async fn node_started(
        &self,
        node: u16,
        address: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        with_conn!(&self.pool, |conn| started(conn, node, address, now))
    }

    /// Bumps this node's heartbeat, unless another node has claimed it.
    pub async fn node_heartbeat(
        &self,
        node: u16,
        now: UnixMillis,
    ) -> Result<Heartbeat, StoreError> {
        with_conn!(&self.pool, |conn| heartbeat(conn, node, now))
    }

    /// Every node's row, by node id.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        with_conn!(&self.pool, |conn| all(conn))
    }

    /// Claims `dead`'s calls for `me` if its heartbeat is older than
    /// `cutoff` and nobody holds a claim on it newer than `cutoff`; `true`
    /// if this call won the claim.
    pub async fn claim_silent_node(
        &self,
        dead: u16,
        me: u16,
        cutoff: UnixMillis,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        with_conn!(&self.pool, |conn| claim(conn, dead, me, cutoff, now))
    }

    /// Marks `dead` as taken over, if `me`'s claim made at `claimed_at` is
    /// still the one on it.
    pub async fn finish_take_over(
        &self,
        dead: u16,
        me: u16,
        claimed_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        with_conn!(&self.pool, |conn| finish(conn, dead, me, claimed_at, now))
    }
}

impl StoreWriter {
    /// Takes over every node other than `me` silent for `lease` or longer
    /// at `now`: claims it, closes its open sessions as the start-up
    /// recovery does, and marks it finished. Returns what it took over;
    /// a node another survivor claimed is not in the list.
    pub async fn take_over_silent_nodes(
        &self,
        me: u16,
        lease_ms: u64,
        now: UnixMillis,
    ) -> Result<Vec<TakeOver>, StoreError> {
        let cutoff = UnixMillis(now.0.saturating_sub(lease_ms));
        let mut done = Vec::new();
        for row in self.store.nodes().await? {
            let claimable = row.node != me
                && row.heartbeat_at < cutoff
                && row.closed_at.is_none()
                && row.claimed_at.is_none_or(|at| at < cutoff);
            if !claimable
                || !self
                    .store
                    .claim_silent_node(row.node, me, cutoff, now)
                    .await?
            {
                continue;
            }
            // `now` bounds nothing here: the dead node touched nothing
            // since its last heartbeat, long before.
            let report = self
                .recover_orphans(RecoveryScope::Node(row.node), now, &Default::default())
                .await?;
            let finished = report.failed.is_empty()
                && self.store.finish_take_over(row.node, me, now, now).await?;
            done.push(TakeOver {
                node: row.node,
                report,
                finished,
            });
        }
        Ok(done)
    }
}

async fn started(
    conn: &mut impl Conn,
    node: u16,
    address: &str,
    now: UnixMillis,
) -> Result<(), StoreError> {
    let now = db_ms("now", now)?;
    conn.execute(
        "INSERT INTO nodes (node_id, address, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (node_id) DO UPDATE SET address = excluded.address, \
         started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, \
         claimed_by = NULL, claimed_at = NULL, closed_at = NULL",
        &args![i64::from(node), address, now],
    )
    .await?;
    Ok(())
}

async fn heartbeat(
    conn: &mut impl Conn,
    node: u16,
    now: UnixMillis,
) -> Result<Heartbeat, StoreError> {
    let updated = conn
        .execute(
            "UPDATE nodes SET heartbeat_at = $2 WHERE node_id = $1 AND claimed_by IS NULL",
            &args![i64::from(node), db_ms("now", now)?],
        )
        .await?;
    Ok(match updated {
        0 => Heartbeat::TakenOver,
        _ => Heartbeat::Alive,
    })
}

async fn claim(
    conn: &mut impl Conn,
    dead: u16,
    me: u16,
    cutoff: UnixMillis,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    // One statement, so the check and the write are one step for the
    // database: a concurrent claim is seen (PostgreSQL re-evaluates the
    // WHERE on the row the other transaction committed; SQLite has one
    // writer at a time).
    let claimed = conn
        .execute(
            "UPDATE nodes SET claimed_by = $2, claimed_at = $4 \
             WHERE node_id = $1 AND heartbeat_at < $3 AND closed_at IS NULL \
             AND (claimed_at IS NULL OR claimed_at < $3)",
            &args![
                i64::from(dead),
                i64::from(me),
                db_ms("cutoff", cutoff)?,
                db_ms("now", now)?
            ],
        )
        .await?;
    Ok(claimed == 1)
}

async fn finish(
    conn: &mut impl Conn,
    dead: u16,
    me: u16,
    claimed_at: UnixMillis,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let finished = conn
        .execute(
            "UPDATE nodes SET closed_at = $4 \
             WHERE node_id = $1 AND claimed_by = $2 AND claimed_at = $3",
            &args![
                i64::from(dead),
                i64::from(me),
                db_ms("claimed_at", claimed_at)?,
                db_ms("now", now)?
            ],
        )
        .await?;
    Ok(finished == 1)
}

async fn all(conn: &mut impl Conn) -> Result<Vec<NodeRow>, StoreError> {
    conn.fetch_all(
        "SELECT node_id, address, started_at, heartbeat_at, claimed_by, claimed_at, closed_at \
         FROM nodes ORDER BY node_id",
        &[],
    )
    .await?
    .iter()
    .map(|row| {
        let opt_node = |column: &str| -> Result<Option<u16>, StoreError> {
            row.opt_int(column)?
                .map(|v| {
                    u16::try_from(v)
                        .map_err(|_| StoreError::Corrupt(format!("{column} = {v} out of range")))
                })
                .transpose()
        };
        Ok(NodeRow {
            node: get_u16(row, "node_id")?,
            address: row.text("address")?,
            started_at: get_ms(row, "started_at")?,
            heartbeat_at: get_ms(row, "heartbeat_at")?,
            claimed_by: opt_node("claimed_by")?,
            claimed_at: get_opt_ms(row, "claimed_at")?,
            closed_at: get_opt_ms(row, "closed_at")?,
        })
    })
    .collect()
}
