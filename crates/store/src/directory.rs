//! The directory: tenants and their users (extensions).
//!
//! Only what the registrar and the CDR pipeline need today; trunks, rules,
//! ring groups and the rest of SPEC §7's provisioning come with the
//! features that use them.

use std::fmt;

use cdr::{Id, TenantId, UnixMillis};

use crate::convert::{db_id, db_ms, get_id, get_ms, get_u32};
use crate::db::{Conn, Row, args};
use crate::error::StoreError;

/// A ring timeout nobody configured (SPEC §3: per extension, default 30 s).
pub const DEFAULT_RING_TIMEOUT_SECS: u32 = 30;

/// One company, with its own SIP domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// Stored lowercase: SIP host names compare case-insensitively, so
    /// `Acme.Example` and `acme.example` are one tenant.
    pub sip_domain: String,
    pub created_at: UnixMillis,
}

/// An extension of a tenant.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: Id,
    pub tenant_id: TenantId,
    pub extension: String,
    pub display_name: String,
    /// Plaintext. Digest authentication needs the password or, per realm
    /// and algorithm, an HA1 that is just as good as the password to an
    /// attacker; keeping the password lets one record answer MD5 and
    /// SHA-256 challenges and survive a domain rename, and lets the
    /// console show it as PBX admins expect. Protect the database instead.
    pub sip_password: String,
    pub ring_timeout_secs: u32,
    pub enabled: bool,
    pub created_at: UnixMillis,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("extension", &self.extension)
            .field("display_name", &self.display_name)
            .field("sip_password", &"..")
            .field("ring_timeout_secs", &self.ring_timeout_secs)
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .finish()
    }
}

pub(crate) async fn create_tenant(conn: &mut impl Conn, tenant: &Tenant) -> Result<(), StoreError> {
    let domain = tenant.sip_domain.to_ascii_lowercase();
    conn.execute(
        "INSERT INTO tenants (id, name, sip_domain, created_at) VALUES ($1, $2, $3, $4)",
        &args![
            db_id("tenant_id", tenant.id.id())?,
            tenant.name.as_str(),
            domain.as_str(),
            db_ms("created_at", tenant.created_at)?,
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn tenant(
    conn: &mut impl Conn,
    id: TenantId,
) -> Result<Option<Tenant>, StoreError> {
    conn.fetch_optional(
        "SELECT id, name, sip_domain, created_at FROM tenants WHERE id = $1",
        &args![db_id("tenant_id", id.id())?],
    )
    .await?
    .map(|row| tenant_from_row(&row))
    .transpose()
}

pub(crate) async fn tenant_by_sip_domain(
    conn: &mut impl Conn,
    domain: &str,
) -> Result<Option<Tenant>, StoreError> {
    let domain = domain.to_ascii_lowercase();
    conn.fetch_optional(
        "SELECT id, name, sip_domain, created_at FROM tenants WHERE sip_domain = $1",
        &args![domain.as_str()],
    )
    .await?
    .map(|row| tenant_from_row(&row))
    .transpose()
}

fn tenant_from_row(row: &impl Row) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: get_id(row, "id")?,
        name: row.text("name")?,
        sip_domain: row.text("sip_domain")?,
        created_at: get_ms(row, "created_at")?,
    })
}

pub(crate) async fn create_user(conn: &mut impl Conn, user: &User) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO users (id, tenant_id, extension, display_name, sip_password, \
         ring_timeout_secs, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &args![
            db_id("user_id", user.id)?,
            db_id("tenant_id", user.tenant_id.id())?,
            user.extension.as_str(),
            user.display_name.as_str(),
            user.sip_password.as_str(),
            i64::from(user.ring_timeout_secs),
            user.enabled,
            db_ms("created_at", user.created_at)?,
        ],
    )
    .await?;
    Ok(())
}

/// Every tenant, by id.
pub(crate) async fn tenants(conn: &mut impl Conn) -> Result<Vec<Tenant>, StoreError> {
    conn.fetch_all(
        "SELECT id, name, sip_domain, created_at FROM tenants ORDER BY id",
        &args![],
    )
    .await?
    .iter()
    .map(tenant_from_row)
    .collect()
}

/// Every user of a tenant, by extension.
pub(crate) async fn users_of(
    conn: &mut impl Conn,
    tenant_id: TenantId,
) -> Result<Vec<User>, StoreError> {
    conn.fetch_all(
        "SELECT id, tenant_id, extension, display_name, sip_password, ring_timeout_secs, \
         enabled, created_at FROM users WHERE tenant_id = $1 ORDER BY extension",
        &args![db_id("tenant_id", tenant_id.id())?],
    )
    .await?
    .iter()
    .map(user_from_row)
    .collect()
}

fn user_from_row(row: &impl Row) -> Result<User, StoreError> {
    Ok(User {
        id: get_id(row, "id")?,
        tenant_id: get_id(row, "tenant_id")?,
        extension: row.text("extension")?,
        display_name: row.text("display_name")?,
        sip_password: row.text("sip_password")?,
        ring_timeout_secs: get_u32(row, "ring_timeout_secs")?,
        enabled: row.boolean("enabled")?,
        created_at: get_ms(row, "created_at")?,
    })
}

pub(crate) async fn user_by_extension(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    extension: &str,
) -> Result<Option<User>, StoreError> {
    conn.fetch_optional(
        "SELECT id, tenant_id, extension, display_name, sip_password, ring_timeout_secs, \
         enabled, created_at FROM users WHERE tenant_id = $1 AND extension = $2",
        &args![db_id("tenant_id", tenant_id.id())?, extension],
    )
    .await?
    .map(|row| user_from_row(&row))
    .transpose()
}
