//! Reading the transactional outbox (for the delivery crate: the relay,
//! WebSocket replay on resume, the webhook replay endpoint).
//!
//! Rows are written only by the [`StoreWriter`](crate::StoreWriter), in the
//! transaction that commits the state they report.

use cdr::{EventType, SessionId, TenantId, UnixMillis};

use crate::convert::{db_id, db_u64, get_id, get_ms, get_spelled, get_u64};
use crate::db::{Conn, Row, args};
use crate::error::StoreError;

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

fn from_row(row: &impl Row) -> Result<OutboxEvent, StoreError> {
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
