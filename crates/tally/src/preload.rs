//! Reads the whole directory (tenants and users) at start-up, to fill the
//! engine's in-memory [`pbx::Directory`].
//!
//! This is the one place the binary reads tables itself: the store has no
//! listing of tenants and users yet (`Store::tenant`,
//! `Store::tenant_by_sip_domain` and `Store::user_by_extension` look up one
//! at a time). When it gains `Store::tenants()` and `Store::users()`, this
//! module becomes two calls and the `sqlx` dependency goes. The columns
//! read are the store's `tenants` and `users` tables (migration 0001), the
//! same on SQLite and PostgreSQL.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use cdr::{Id, TenantId};
use sqlx::Connection as _;

/// A directory snapshot: tenants, then users.
pub struct Snapshot {
    pub tenants: Vec<pbx::Tenant>,
    pub users: Vec<pbx::User>,
}

type TenantRow = (i64, String, String);
type UserRow = (i64, String, String, String, i64, bool);

const TENANTS: &str = "SELECT id, name, sip_domain FROM tenants ORDER BY id";
const USERS: &str = "SELECT tenant_id, extension, display_name, sip_password, \
                     ring_timeout_secs, enabled FROM users ORDER BY tenant_id, extension";

/// Reads the snapshot over one short-lived connection (the store has
/// already opened and migrated the database).
pub async fn load(url: &str) -> anyhow::Result<Snapshot> {
    let (tenants, users): (Vec<TenantRow>, Vec<UserRow>) = if url.starts_with("sqlite:") {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?.read_only(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
        let t = sqlx::query_as(TENANTS).fetch_all(&mut conn).await?;
        let u = sqlx::query_as(USERS).fetch_all(&mut conn).await?;
        conn.close().await?;
        (t, u)
    } else {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)?;
        let mut conn = sqlx::PgConnection::connect_with(&options).await?;
        let t = sqlx::query_as(TENANTS).fetch_all(&mut conn).await?;
        let u = sqlx::query_as(USERS).fetch_all(&mut conn).await?;
        conn.close().await?;
        (t, u)
    };
    let tenants = tenants
        .into_iter()
        .map(|(id, name, domain)| {
            Ok(pbx::Tenant {
                id: tenant_id(id)?,
                name,
                domain,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let users = users
        .into_iter()
        .map(
            |(tenant, extension, display_name, password, ring_timeout, enabled)| {
                let secs = u64::try_from(ring_timeout)
                    .with_context(|| format!("ring_timeout_secs = {ring_timeout}"))?;
                Ok(pbx::User {
                    tenant_id: tenant_id(tenant)?,
                    extension: pbx::Extension::new(extension),
                    display_name,
                    password,
                    ring_timeout: Duration::from_secs(secs),
                    enabled,
                })
            },
        )
        .collect::<anyhow::Result<_>>()?;
    Ok(Snapshot { tenants, users })
}

fn tenant_id(raw: i64) -> anyhow::Result<TenantId> {
    let raw = u64::try_from(raw).with_context(|| format!("negative tenant id {raw}"))?;
    Ok(TenantId::from(Id::from_u64(raw)))
}
