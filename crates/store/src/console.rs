//! Reads only the web console needs (DESIGN.md "The console"): a call's
//! events for its detail page and the webhook backlog for the dashboard.
//! Everything else the console shows comes from the queries the REST API
//! uses.

use cdr::{SessionId, TenantId};

use crate::Store;
use crate::convert::{db_id, get_u64};
use crate::db::{Conn, args, with_conn};
use crate::error::StoreError;
use crate::outbox::{OutboxEvent, from_row};

/// Most events one call's page lists (a call has a handful per target).
const MAX_SESSION_EVENTS: i64 = 1000;

impl Store {
    /// The session's events still in the outbox (retention may have pruned
    /// them), in `sequence` order; none for another tenant's session.
    pub async fn session_events(
        &self,
        tenant_id: TenantId,
        session_id: SessionId,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        with_conn!(&self.pool, |conn| session_events(
            conn, tenant_id, session_id
        ))
    }

    /// Deliveries of the tenant's webhook not yet delivered nor given up.
    pub async fn pending_webhook_deliveries(&self, tenant_id: TenantId) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| pending_deliveries(conn, tenant_id))
    }
}

async fn session_events(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    session_id: SessionId,
) -> Result<Vec<OutboxEvent>, StoreError> {
    conn.fetch_all(
        "SELECT tenant_id, sequence, global_sequence, event_id, event_type, session_id, \
         created_at, payload FROM outbox WHERE tenant_id = $1 AND session_id = $2 \
         ORDER BY sequence LIMIT $3",
        &args![
            db_id("tenant_id", tenant_id.id())?,
            db_id("session_id", session_id.id())?,
            MAX_SESSION_EVENTS,
        ],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

async fn pending_deliveries(conn: &mut impl Conn, tenant_id: TenantId) -> Result<u64, StoreError> {
    let row = conn
        .fetch_optional(
            "SELECT COUNT(*) AS n FROM webhook_deliveries \
             WHERE tenant_id = $1 AND status = 'pending'",
            &args![db_id("tenant_id", tenant_id.id())?],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
    get_u64(&row, "n")
}
