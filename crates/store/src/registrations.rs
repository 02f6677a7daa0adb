//! The location service's bindings, kept so that a restart does not make
//! every phone unreachable until it re-registers.
//!
//! The registrar owns the rules (RFC 3261 §10.3: Call-ID/CSeq ordering,
//! expiry bounds, RFC 5626 instance matching); the store keeps what it
//! decided, keyed by the `binding_key` it chose.

use cdr::{TenantId, UnixMillis};

use crate::convert::{db_id, db_ms, get_id, get_ms, get_u32};
use crate::db::{Conn, Row, args};
use crate::error::StoreError;

/// One binding of an extension to a contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub tenant_id: TenantId,
    pub extension: String,
    /// What identifies this binding among the extension's bindings: the
    /// RFC 5626 `+sip.instance` (with `reg-id`) when the device sent one,
    /// else the normalised Contact URI.
    pub binding_key: String,
    pub contact_uri: String,
    pub instance_id: Option<String>,
    pub reg_id: Option<u32>,
    /// The Contact's `q` in thousandths (`q=0.5` → 500), when it had one.
    pub q: Option<u16>,
    /// Source address of the REGISTER (`ip:port`): where requests go when
    /// the contact is behind NAT.
    pub received: String,
    pub transport: String,
    /// The REGISTER's Path (RFC 3327), one `<uri>` per proxy, nearest the
    /// registrar first; empty when it came directly.
    pub path: Vec<String>,
    pub call_id: String,
    pub cseq: u32,
    pub user_agent: String,
    pub expires_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// Inserts or replaces the binding with the same key.
pub(crate) async fn upsert(conn: &mut impl Conn, r: &Registration) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO registrations (tenant_id, extension, binding_key, contact_uri, instance_id, \
         reg_id, q, received, transport, call_id, cseq, user_agent, expires_at, updated_at, path) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
         ON CONFLICT (tenant_id, extension, binding_key) DO UPDATE SET \
         contact_uri = excluded.contact_uri, instance_id = excluded.instance_id, \
         reg_id = excluded.reg_id, q = excluded.q, received = excluded.received, transport = excluded.transport, \
         call_id = excluded.call_id, cseq = excluded.cseq, user_agent = excluded.user_agent, \
         expires_at = excluded.expires_at, updated_at = excluded.updated_at, path = excluded.path",
        &args![
            db_id("tenant_id", r.tenant_id.id())?,
            r.extension.as_str(),
            r.binding_key.as_str(),
            r.contact_uri.as_str(),
            r.instance_id.as_deref(),
            r.reg_id.map(i64::from),
            r.q.map(i64::from),
            r.received.as_str(),
            r.transport.as_str(),
            r.call_id.as_str(),
            i64::from(r.cseq),
            r.user_agent.as_str(),
            db_ms("expires_at", r.expires_at)?,
            db_ms("updated_at", r.updated_at)?,
            join_path(&r.path)?.as_str(),
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn remove(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    extension: &str,
    binding_key: &str,
) -> Result<bool, StoreError> {
    let removed = conn
        .execute(
            "DELETE FROM registrations WHERE tenant_id = $1 AND extension = $2 AND binding_key = $3",
            &args![db_id("tenant_id", tenant_id.id())?, extension, binding_key],
        )
        .await?;
    Ok(removed > 0)
}

pub(crate) async fn remove_all(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    extension: &str,
) -> Result<u64, StoreError> {
    Ok(conn
        .execute(
            "DELETE FROM registrations WHERE tenant_id = $1 AND extension = $2",
            &args![db_id("tenant_id", tenant_id.id())?, extension],
        )
        .await?)
}

pub(crate) async fn live_of(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    extension: &str,
    now: UnixMillis,
) -> Result<Vec<Registration>, StoreError> {
    conn.fetch_all(
        "SELECT tenant_id, extension, binding_key, contact_uri, instance_id, reg_id, q, received, \
         transport, call_id, cseq, user_agent, expires_at, updated_at, path FROM registrations \
         WHERE tenant_id = $1 AND extension = $2 AND expires_at > $3 ORDER BY binding_key",
        &args![
            db_id("tenant_id", tenant_id.id())?,
            extension,
            db_ms("now", now)?
        ],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

pub(crate) async fn live(
    conn: &mut impl Conn,
    now: UnixMillis,
) -> Result<Vec<Registration>, StoreError> {
    conn.fetch_all(
        "SELECT tenant_id, extension, binding_key, contact_uri, instance_id, reg_id, q, received, \
         transport, call_id, cseq, user_agent, expires_at, updated_at, path FROM registrations \
         WHERE expires_at > $1 ORDER BY tenant_id, extension, binding_key",
        &args![db_ms("now", now)?],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

pub(crate) async fn remove_expired(
    conn: &mut impl Conn,
    now: UnixMillis,
) -> Result<u64, StoreError> {
    Ok(conn
        .execute(
            "DELETE FROM registrations WHERE expires_at <= $1",
            &args![db_ms("now", now)?],
        )
        .await?)
}

/// Path elements one per line: a header value has no line breaks once
/// parsed, so the join cannot be ambiguous; one with a break is refused.
fn join_path(path: &[String]) -> Result<String, StoreError> {
    if path
        .iter()
        .any(|p| p.contains(['\r', '\n']) || p.is_empty())
    {
        return Err(StoreError::Corrupt(format!(
            "a Path element with a line break or empty: {path:?}"
        )));
    }
    Ok(path.join("\n"))
}

/// Every row written after `after` (live or not: a removal on a node
/// sharing the database is a row whose expiry has passed), oldest write
/// first.
pub(crate) async fn updated_since(
    conn: &mut impl Conn,
    after: UnixMillis,
) -> Result<Vec<Registration>, StoreError> {
    conn.fetch_all(
        "SELECT tenant_id, extension, binding_key, contact_uri, instance_id, reg_id, q, received, \
         transport, call_id, cseq, user_agent, expires_at, updated_at, path FROM registrations \
         WHERE updated_at > $1 ORDER BY updated_at, tenant_id, extension, binding_key",
        &args![db_ms("after", after)?],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Marks a binding removed without deleting its row (its expiry becomes
/// `now`), so other nodes sharing the database see the removal.
pub(crate) async fn tombstone(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    extension: &str,
    binding_key: &str,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let now = db_ms("now", now)?;
    let updated = conn
        .execute(
            "UPDATE registrations SET expires_at = $4, updated_at = $4 \
             WHERE tenant_id = $1 AND extension = $2 AND binding_key = $3 AND expires_at > $4",
            &args![
                db_id("tenant_id", tenant_id.id())?,
                extension,
                binding_key,
                now
            ],
        )
        .await?;
    Ok(updated > 0)
}

fn from_row(row: &impl Row) -> Result<Registration, StoreError> {
    Ok(Registration {
        tenant_id: get_id(row, "tenant_id")?,
        extension: row.text("extension")?,
        binding_key: row.text("binding_key")?,
        contact_uri: row.text("contact_uri")?,
        instance_id: row.opt_text("instance_id")?,
        reg_id: row
            .opt_int("reg_id")?
            .map(|v| {
                u32::try_from(v)
                    .map_err(|_| StoreError::Corrupt(format!("reg_id = {v} out of range")))
            })
            .transpose()?,
        q: row
            .opt_int("q")?
            .map(|v| {
                u16::try_from(v)
                    .ok()
                    .filter(|q| *q <= 1000)
                    .ok_or_else(|| StoreError::Corrupt(format!("q = {v} out of range")))
            })
            .transpose()?,
        received: row.text("received")?,
        transport: row.text("transport")?,
        path: row
            .text("path")?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        call_id: row.text("call_id")?,
        cseq: get_u32(row, "cseq")?,
        user_agent: row.text("user_agent")?,
        expires_at: get_ms(row, "expires_at")?,
        updated_at: get_ms(row, "updated_at")?,
    })
}
