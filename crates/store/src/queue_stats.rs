//! Queue statistics from the CDRs (issue 14): a queue's calls are the
//! CDR targets named by its number that the PBX answered itself (the
//! queue target, `normal_call`, answered at once). Answered: the queue
//! target ended `referred` and an agent (`queue_call`) answered; abandoned:
//! it ended `caller_disconnect`. The wait is the queue target's life
//! (answered → ended). Keyed by the queue's number: calls to a number a
//! deleted queue had before count under it.

use cdr::{TenantId, UnixMillis};

use crate::Store;
use crate::convert::{db_id, db_ms, get_opt_u64, get_u64};
use crate::db::{Conn, Row, args, with_conn};
use crate::error::StoreError;

/// What [`Store::queue_stats`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Callers an agent answered.
    pub answered: u64,
    /// Callers who hung up while queued.
    pub abandoned: u64,
    /// Callers who left another way (overflow, max wait, shutdown).
    pub other: u64,
    /// Mean and longest wait of every caller counted (ms).
    pub average_wait_ms: u64,
    pub longest_wait_ms: u64,
    /// Answered within the service level.
    pub answered_within: u64,
}

/// Rows read at most (the window's calls beyond are not counted).
const MAX_ROWS: i64 = 100_000;

impl Store {
    /// Statistics of queue `number` of `tenant` for calls started in
    /// `[from, to)`; `service_level_ms` is the wait an answer counts
    /// within.
    pub async fn queue_stats(
        &self,
        tenant: TenantId,
        number: &str,
        (from, to): (UnixMillis, UnixMillis),
        service_level_ms: u64,
    ) -> Result<QueueStats, StoreError> {
        with_conn!(&self.pool, |conn| async {
            let rows = conn
                .fetch_all(
                    "SELECT t.answered_at, t.ended_at, t.end_reason, \
                     (SELECT COUNT(*) FROM cdr_targets a WHERE a.cdr_id = t.cdr_id \
                      AND a.call_type = 'queue_call' AND a.answered_at IS NOT NULL) AS agents \
                     FROM cdr_targets t JOIN cdrs c ON c.cdr_id = t.cdr_id \
                     WHERE c.tenant_id = $1 AND t.callee = $2 AND t.call_type = 'normal_call' \
                     AND t.answered_at IS NOT NULL AND t.started_at >= $3 AND t.started_at < $4 \
                     LIMIT $5",
                    &args![
                        db_id("tenant_id", tenant.id())?,
                        number,
                        db_ms("from", from)?,
                        db_ms("to", to)?,
                        MAX_ROWS
                    ],
                )
                .await?;
            let mut s = QueueStats::default();
            let mut total: u64 = 0;
            for row in &rows {
                let answered_at = get_opt_u64(row, "answered_at")?.unwrap_or(0);
                let wait = get_u64(row, "ended_at")?.saturating_sub(answered_at);
                let reason = row.text("end_reason")?;
                match reason.as_str() {
                    "referred" if get_u64(row, "agents")? > 0 => {
                        s.answered += 1;
                        if wait <= service_level_ms {
                            s.answered_within += 1;
                        }
                    }
                    "caller_disconnect" => s.abandoned += 1,
                    _ => s.other += 1,
                }
                total += wait;
                s.longest_wait_ms = s.longest_wait_ms.max(wait);
            }
            if !rows.is_empty() {
                s.average_wait_ms = total / rows.len() as u64;
            }
            Ok::<QueueStats, StoreError>(s)
        })
    }
}
