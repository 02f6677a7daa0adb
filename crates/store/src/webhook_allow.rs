//! A tenant's webhook allow-list (issue 17 finding 14): the non-public
//! CIDR blocks its webhook may reach on top of the node's `[webhooks]
//! allow`. The system admin sets it; the delivery crate parses and
//! enforces it. Stored space-separated in `tenants.webhook_allow`
//! (migration 0015).

use cdr::TenantId;

use crate::Store;
use crate::convert::db_id;
use crate::db::{Conn, Row, args, with_conn};
use crate::error::StoreError;

impl Store {
    /// The tenant's extra allow-list entries, in the order set; `None` if
    /// the tenant does not exist.
    pub async fn tenant_webhook_allow(
        &self,
        tenant_id: TenantId,
    ) -> Result<Option<Vec<String>>, StoreError> {
        with_conn!(&self.pool, |conn| get(conn, tenant_id))
    }

    /// Replaces the tenant's list; `false` if the tenant does not exist.
    /// The caller has parsed each entry as a CIDR block (white space inside
    /// one would split it in two when read back).
    pub async fn set_tenant_webhook_allow(
        &self,
        tenant_id: TenantId,
        entries: &[String],
    ) -> Result<bool, StoreError> {
        let text = entries.join(" ");
        with_conn!(&self.pool, |conn| set(conn, tenant_id, &text))
    }
}

async fn get(conn: &mut impl Conn, tenant_id: TenantId) -> Result<Option<Vec<String>>, StoreError> {
    let row = conn
        .fetch_optional(
            "SELECT webhook_allow FROM tenants WHERE id = $1",
            &args![db_id("tenant_id", tenant_id.id())?],
        )
        .await?;
    row.map(|row| {
        row.text("webhook_allow")
            .map(|text| text.split_whitespace().map(str::to_owned).collect())
    })
    .transpose()
    .map_err(Into::into)
}

async fn set(conn: &mut impl Conn, tenant_id: TenantId, text: &str) -> Result<bool, StoreError> {
    let changed = conn
        .execute(
            "UPDATE tenants SET webhook_allow = $1 WHERE id = $2",
            &args![text, db_id("tenant_id", tenant_id.id())?],
        )
        .await?;
    Ok(changed > 0)
}
