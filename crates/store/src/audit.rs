//! The audit log: who signed in (or failed to), and who changed what.
//!
//! Entries carry the tenant they belong to (`None`: a system entry, such
//! as the system admin's own actions or a failed sign-in to an unknown
//! domain). They hold no foreign key: an entry outlives the user, key or
//! tenant it names.

use cdr::{Id, TenantId, UnixMillis};

use crate::convert::{db_id, db_ms, db_u64, get_id, get_ms, get_u64};
use crate::db::{Conn, Row, args};
use crate::error::StoreError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: Id,
    pub tenant_id: Option<TenantId>,
    pub at: UnixMillis,
    /// Who: `system-admin`, `user:<id>`, `api-key:<id>`, or for a failed
    /// sign-in the name that was tried.
    pub actor: String,
    /// What: `login`, `login_failed`, `user.create`, `tenant.update`…
    pub action: String,
    /// On what: `user:<id>`, `tenant:<id>`… (may be empty).
    pub target: String,
    /// The client's address, when known.
    pub source: String,
    /// More, as a JSON object.
    pub detail: String,
}

pub(crate) async fn append(conn: &mut impl Conn, e: &AuditEntry) -> Result<(), StoreError> {
    let tenant = e
        .tenant_id
        .map(|t| db_id("tenant_id", t.id()))
        .transpose()?;
    conn.execute(
        "INSERT INTO audit_logs (id, tenant_id, at, actor, action, target, source, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &args![
            db_id("audit_id", e.id)?,
            tenant,
            db_ms("at", e.at)?,
            e.actor.as_str(),
            e.action.as_str(),
            e.target.as_str(),
            e.source.as_str(),
            e.detail.as_str(),
        ],
    )
    .await?;
    Ok(())
}

fn from_row(row: &impl Row) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: get_id(row, "id")?,
        tenant_id: row
            .opt_int("tenant_id")?
            .map(|_| get_id(row, "tenant_id"))
            .transpose()?,
        at: get_ms(row, "at")?,
        actor: row.text("actor")?,
        action: row.text("action")?,
        target: row.text("target")?,
        source: row.text("source")?,
        detail: row.text("detail")?,
    })
}

/// A tenant's entries (`None`: the system entries), newest first.
pub(crate) async fn page(
    conn: &mut impl Conn,
    tenant_id: Option<TenantId>,
    top: u32,
    skip: u64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = match tenant_id {
        Some(t) => {
            conn.fetch_all(
                "SELECT * FROM audit_logs WHERE tenant_id = $1 ORDER BY id DESC \
                 LIMIT $2 OFFSET $3",
                &args![
                    db_id("tenant_id", t.id())?,
                    i64::from(top),
                    db_u64("skip", skip)?
                ],
            )
            .await?
        }
        None => {
            conn.fetch_all(
                "SELECT * FROM audit_logs WHERE tenant_id IS NULL ORDER BY id DESC \
                 LIMIT $1 OFFSET $2",
                &args![i64::from(top), db_u64("skip", skip)?],
            )
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

pub(crate) async fn count(
    conn: &mut impl Conn,
    tenant_id: Option<TenantId>,
) -> Result<u64, StoreError> {
    let row = match tenant_id {
        Some(t) => {
            conn.fetch_optional(
                "SELECT COUNT(*) AS n FROM audit_logs WHERE tenant_id = $1",
                &args![db_id("tenant_id", t.id())?],
            )
            .await?
        }
        None => {
            conn.fetch_optional(
                "SELECT COUNT(*) AS n FROM audit_logs WHERE tenant_id IS NULL",
                &args![],
            )
            .await?
        }
    }
    .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
    get_u64(&row, "n")
}
