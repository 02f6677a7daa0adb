//! Reading the transactional outbox (for the delivery crate: the relay,
//! WebSocket replay on resume, the webhook replay endpoint).
//!
//! Rows are written only by the [`StoreWriter`](crate::StoreWriter), in the
//! transaction that commits the state they report, and deleted only by
//! retention ([`Store::outbox_prune`]), oldest first: what is left is always
//! a suffix of the outbox in `global_sequence` order, and so, per tenant, a
//! suffix in `sequence` order. A reader that resumes after `sequence` N can
//! therefore tell whether it missed anything: the first stored event after N
//! is N + 1, or the tenant never had more than N
//! ([`Store::outbox_last_sequence`]).

use cdr::{EventType, SessionId, TenantId, UnixMillis};

use crate::Store;
use crate::convert::{db_id, db_u64, get_id, get_ms, get_spelled, get_u64};
use crate::db::{Conn, Row, args, with_conn, with_write_tx};
use crate::error::StoreError;

impl Store {
    /// Retention: deletes up to `limit` of the oldest outbox rows (in
    /// `global_sequence` order) committed before `before`, and returns how
    /// many it deleted. It stops at the first row committed at or after
    /// `before`, so the rows left are always a suffix of the outbox, even
    /// when nodes with skewed clocks share a database. Call it again while
    /// it returns `limit`: small batches keep the write lock short. While a
    /// webhook endpoint is enabled it never deletes an event the webhook
    /// fan-out has not copied yet.
    pub async fn outbox_prune(&self, before: UnixMillis, limit: u32) -> Result<u64, StoreError> {
        // Any time past what the column holds is "after every row".
        let before = i64::try_from(before.0).unwrap_or(i64::MAX);
        let last = with_conn!(&self.pool, |conn| prunable_prefix(conn, before, limit))?;
        match last {
            Some(last) => with_write_tx!(&self.pool, |conn| delete_through(conn, last)),
            None => Ok(0),
        }
    }

    /// The tenant's last assigned `sequence` (0 before its first event),
    /// whether or not the row is still stored.
    pub async fn outbox_last_sequence(&self, tenant_id: TenantId) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| last_sequence(conn, tenant_id))
    }
}

/// The highest `global_sequence` of the oldest rows, up to `limit` of them,
/// that were all committed before `before`.
async fn prunable_prefix(
    conn: &mut impl Conn,
    before: i64,
    limit: u32,
) -> Result<Option<i64>, StoreError> {
    let rows = conn
        .fetch_all(
            // Never past what the webhook fan-out has copied into its own
            // deliveries while some endpoint is enabled: an event must not
            // be pruned before every tenant's webhook has its copy (a node
            // down for longer than the retention would otherwise lose the
            // events committed just before it stopped).
            "SELECT global_sequence, created_at FROM outbox \
             WHERE NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) \
             OR global_sequence <= (SELECT last_global_sequence FROM webhook_cursor WHERE id = 1) \
             ORDER BY global_sequence LIMIT $1",
            &args![i64::from(limit)],
        )
        .await?;
    let mut last = None;
    for row in &rows {
        if row.int("created_at")? >= before {
            break;
        }
        last = Some(row.int("global_sequence")?);
    }
    Ok(last)
}

async fn delete_through(conn: &mut impl Conn, last_global: i64) -> Result<u64, StoreError> {
    Ok(conn
        .execute(
            "DELETE FROM outbox WHERE global_sequence <= $1",
            &args![last_global],
        )
        .await?)
}

async fn last_sequence(conn: &mut impl Conn, tenant_id: TenantId) -> Result<u64, StoreError> {
    match conn
        .fetch_optional(
            "SELECT last_sequence FROM tenant_sequences WHERE tenant_id = $1",
            &args![db_id("tenant_id", tenant_id.id())?],
        )
        .await?
    {
        Some(row) => get_u64(&row, "last_sequence"),
        None => Ok(0),
    }
}

/// One committed event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEvent {
    pub tenant_id: TenantId,
    /// Per tenant: 1, 2, 3… with no gaps (SPEC §4's `sequence`).
    pub sequence: u64,
    /// Across all tenants: 1, 2, 3… with no gaps, in commit order. The
    /// relay's cursor: a reader that has seen `n` has seen everything
    /// committed before it.
    pub global_sequence: u64,
    /// The `event_id` inside the payload (UUID text).
    pub event_id: String,
    pub event_type: EventType,
    pub session_id: SessionId,
    /// When the row was committed (not when the event happened: that is
    /// the payload's `time`).
    pub created_at: UnixMillis,
    /// The event exactly as delivered: one JSON object with `sequence` and
    /// `event_id` inside ([`cdr::WireEvent::to_json`]).
    pub payload: String,
}

pub(crate) async fn after(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    after_sequence: u64,
    limit: u32,
) -> Result<Vec<OutboxEvent>, StoreError> {
    conn.fetch_all(
        "SELECT tenant_id, sequence, global_sequence, event_id, event_type, session_id, \
         created_at, payload FROM outbox WHERE tenant_id = $1 AND sequence > $2 \
         ORDER BY sequence LIMIT $3",
        &args![
            db_id("tenant_id", tenant_id.id())?,
            db_u64("after_sequence", after_sequence)?,
            i64::from(limit),
        ],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

pub(crate) async fn since_global(
    conn: &mut impl Conn,
    after_global_sequence: u64,
    limit: u32,
) -> Result<Vec<OutboxEvent>, StoreError> {
    conn.fetch_all(
        "SELECT tenant_id, sequence, global_sequence, event_id, event_type, session_id, \
         created_at, payload FROM outbox WHERE global_sequence > $1 \
         ORDER BY global_sequence LIMIT $2",
        &args![
            db_u64("after_global_sequence", after_global_sequence)?,
            i64::from(limit),
        ],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

pub(crate) async fn last_global(conn: &mut impl Conn) -> Result<u64, StoreError> {
    let row = conn
        .fetch_optional(
            "SELECT last_sequence FROM global_sequence WHERE id = 1",
            &args![],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("global_sequence has no row".into()))?;
    get_u64(&row, "last_sequence")
}

pub(crate) fn from_row(row: &impl Row) -> Result<OutboxEvent, StoreError> {
    Ok(OutboxEvent {
        tenant_id: get_id(row, "tenant_id")?,
        sequence: get_u64(row, "sequence")?,
        global_sequence: get_u64(row, "global_sequence")?,
        event_id: row.text("event_id")?,
        event_type: get_spelled(row, "event_type", EventType::parse)?,
        session_id: get_id(row, "session_id")?,
        created_at: get_ms(row, "created_at")?,
        payload: row.text("payload")?,
    })
}
