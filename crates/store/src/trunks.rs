//! Trunks: a tenant's carrier accounts (issue 10). Their DID rules and
//! outbound rules are in [`crate::routing_rules`].
//!
//! The store keeps what the API validated; routing reads them through the
//! engine's `pbx::Trunks`, which the runtime fills from
//! [`Store::all_trunks`] and friends. Every write bumps the directory
//! version, so other nodes sharing the database reload them.
//!
//! The trunk's password is the PBX's own credential toward the carrier:
//! answering the carrier's digest challenges needs it back, so it is
//! sealed with the node's secret key when there is one (`secrets`), not
//! hashed. It is never returned by the API.

use cdr::{Id, TenantId, UnixMillis};

use crate::Store;
use crate::convert::{db_id, db_ms, db_u64, get_id, get_ms, get_u32};
use crate::db::{Conn, Row, args, with_conn, with_write_tx};
use crate::directory::bump_version;
use crate::error::StoreError;
use crate::secrets::{Sealer, trunk_place};

/// A carrier account of a tenant, as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Trunk {
    pub id: Id,
    pub tenant_id: TenantId,
    pub name: String,
    /// `register` or `ip`.
    pub kind: String,
    pub host: String,
    pub port: u16,
    /// `udp` or `tcp`.
    pub transport: String,
    pub username: String,
    pub auth_username: String,
    pub password: String,
    pub realm: String,
    pub from_domain: String,
    pub caller_id: String,
    pub country_code: String,
    pub max_calls: Option<u32>,
    pub outbound_proxy: Option<String>,
    /// Addresses and networks (`198.51.100.0/24`) of an `ip` trunk.
    pub source_addresses: Vec<String>,
    pub source_port: Option<u16>,
    pub register_expires: u32,
    pub enabled: bool,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

impl std::fmt::Debug for Trunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trunk")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &"..")
            .finish_non_exhaustive()
    }
}

/// What deleting a trunk did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrunkDeletion {
    /// Deleted, with its DID rules.
    Deleted,
    NotFound,
    /// Outbound rules use it (their names); nothing was deleted.
    InUse(Vec<String>),
}

const COLUMNS: &str = "id, tenant_id, name, kind, host, port, transport, username, \
     auth_username, password, realm, from_domain, caller_id, country_code, max_calls, \
     outbound_proxy, source_addresses, source_port, register_expires, enabled, created_at, \
     updated_at";

fn opt_u32(value: Option<u32>) -> Option<i64> {
    value.map(i64::from)
}

fn sources_json(trunk: &Trunk) -> String {
    serde_json::Value::from(trunk.source_addresses.clone()).to_string()
}

fn trunk_from_row(row: &impl Row, sealer: &Sealer) -> Result<Trunk, StoreError> {
    debug_assert!(COLUMNS.contains("register_expires"));
    let small = |column: &str, value: Option<i64>| -> Result<Option<u32>, StoreError> {
        value
            .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column} = {v}"))))
            .transpose()
    };
    let port = |column: &str, value: i64| {
        u16::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} = {value}")))
    };
    let sources: Vec<String> = serde_json::from_str(&row.text("source_addresses")?)
        .map_err(|e| StoreError::Corrupt(format!("source_addresses: {e}")))?;
    Ok(Trunk {
        id: get_id(row, "id")?,
        tenant_id: get_id(row, "tenant_id")?,
        name: row.text("name")?,
        kind: row.text("kind")?,
        host: row.text("host")?,
        port: port("port", row.int("port")?)?,
        transport: row.text("transport")?,
        username: row.text("username")?,
        auth_username: row.text("auth_username")?,
        password: sealer.open(&trunk_place(row.int("id")?), &row.text("password")?)?,
        realm: row.text("realm")?,
        from_domain: row.text("from_domain")?,
        caller_id: row.text("caller_id")?,
        country_code: row.text("country_code")?,
        max_calls: small("max_calls", row.opt_int("max_calls")?)?,
        outbound_proxy: row.opt_text("outbound_proxy")?,
        source_addresses: sources,
        source_port: row
            .opt_int("source_port")?
            .map(|p| port("source_port", p))
            .transpose()?,
        register_expires: get_u32(row, "register_expires")?,
        enabled: row.boolean("enabled")?,
        created_at: get_ms(row, "created_at")?,
        updated_at: get_ms(row, "updated_at")?,
    })
}

async fn insert(conn: &mut impl Conn, sealer: &Sealer, t: &Trunk) -> Result<(), StoreError> {
    let sources = sources_json(t);
    let id = db_id("trunk_id", t.id)?;
    let password = sealer.seal(&trunk_place(id), &t.password)?;
    conn.execute(
        "INSERT INTO trunks (id, tenant_id, name, kind, host, port, transport, username, \
         auth_username, password, realm, from_domain, caller_id, country_code, max_calls, \
         outbound_proxy, source_addresses, source_port, register_expires, enabled, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17, $18, $19, $20, $21, $22)",
        &args![
            id,
            db_id("tenant_id", t.tenant_id.id())?,
            t.name.as_str(),
            t.kind.as_str(),
            t.host.as_str(),
            i64::from(t.port),
            t.transport.as_str(),
            t.username.as_str(),
            t.auth_username.as_str(),
            password.as_str(),
            t.realm.as_str(),
            t.from_domain.as_str(),
            t.caller_id.as_str(),
            t.country_code.as_str(),
            opt_u32(t.max_calls),
            t.outbound_proxy.as_deref(),
            sources.as_str(),
            t.source_port.map(i64::from),
            i64::from(t.register_expires),
            t.enabled,
            db_ms("created_at", t.created_at)?,
            db_ms("updated_at", t.updated_at)?,
        ],
    )
    .await?;
    Ok(())
}

async fn update(conn: &mut impl Conn, sealer: &Sealer, t: &Trunk) -> Result<bool, StoreError> {
    let sources = sources_json(t);
    let id = db_id("trunk_id", t.id)?;
    let password = sealer.seal(&trunk_place(id), &t.password)?;
    let n = conn
        .execute(
            "UPDATE trunks SET name = $3, kind = $4, host = $5, port = $6, transport = $7, \
             username = $8, auth_username = $9, password = $10, realm = $11, \
             from_domain = $12, caller_id = $13, country_code = $14, max_calls = $15, \
             outbound_proxy = $16, source_addresses = $17, source_port = $18, \
             register_expires = $19, enabled = $20, updated_at = $21 \
             WHERE id = $1 AND tenant_id = $2",
            &args![
                id,
                db_id("tenant_id", t.tenant_id.id())?,
                t.name.as_str(),
                t.kind.as_str(),
                t.host.as_str(),
                i64::from(t.port),
                t.transport.as_str(),
                t.username.as_str(),
                t.auth_username.as_str(),
                password.as_str(),
                t.realm.as_str(),
                t.from_domain.as_str(),
                t.caller_id.as_str(),
                t.country_code.as_str(),
                opt_u32(t.max_calls),
                t.outbound_proxy.as_deref(),
                sources.as_str(),
                t.source_port.map(i64::from),
                i64::from(t.register_expires),
                t.enabled,
                db_ms("updated_at", t.updated_at)?,
            ],
        )
        .await?;
    Ok(n > 0)
}

async fn delete(
    conn: &mut impl Conn,
    tenant: TenantId,
    id: Id,
) -> Result<TrunkDeletion, StoreError> {
    let id = db_id("trunk_id", id)?;
    let tenant = db_id("tenant_id", tenant.id())?;
    let users: Vec<String> = conn
        .fetch_all(
            "SELECT DISTINCT r.name FROM outbound_rules r \
             JOIN outbound_rule_trunks rt ON rt.rule_id = r.id \
             WHERE rt.trunk_id = $1 AND r.tenant_id = $2 ORDER BY r.name",
            &args![id, tenant],
        )
        .await?
        .iter()
        .map(|row| row.text("name"))
        .collect::<Result<_, _>>()?;
    if !users.is_empty() {
        return Ok(TrunkDeletion::InUse(users));
    }
    conn.execute(
        "DELETE FROM inbound_rules WHERE trunk_id = $1 AND tenant_id = $2",
        &args![id, tenant],
    )
    .await?;
    let n = conn
        .execute(
            "DELETE FROM trunks WHERE id = $1 AND tenant_id = $2",
            &args![id, tenant],
        )
        .await?;
    Ok(if n > 0 {
        TrunkDeletion::Deleted
    } else {
        TrunkDeletion::NotFound
    })
}

pub(crate) async fn of_tenant(
    conn: &mut impl Conn,
    sealer: &Sealer,
    tenant: TenantId,
) -> Result<Vec<Trunk>, StoreError> {
    conn.fetch_all(
        "SELECT * FROM trunks WHERE tenant_id = $1 ORDER BY name, id",
        &args![db_id("tenant_id", tenant.id())?],
    )
    .await?
    .iter()
    .map(|row| trunk_from_row(row, sealer))
    .collect()
}

/// Deletes everything trunk-related of a tenant (its deletion).
pub(crate) async fn delete_tenant_rows(
    conn: &mut impl Conn,
    tenant: i64,
) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM outbound_rule_trunks WHERE rule_id IN \
         (SELECT id FROM outbound_rules WHERE tenant_id = $1)",
        "DELETE FROM outbound_rules WHERE tenant_id = $1",
        "DELETE FROM inbound_rules WHERE tenant_id = $1",
        "DELETE FROM trunks WHERE tenant_id = $1",
    ] {
        conn.execute(sql, &args![tenant]).await?;
    }
    Ok(())
}

impl Store {
    /// [`StoreError::Conflict`] if the tenant has a trunk of that name,
    /// [`StoreError::MissingReference`] if the tenant is unknown.
    pub async fn create_trunk(&self, trunk: &Trunk) -> Result<(), StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            insert(&mut *conn, &self.sealer, trunk).await?;
            bump_version(&mut *conn).await
        })
    }

    /// Replaces every field but the ids and `created_at`; `false` if the
    /// tenant has no such trunk.
    pub async fn update_trunk(&self, trunk: &Trunk) -> Result<bool, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let found = update(&mut *conn, &self.sealer, trunk).await?;
            bump_version(&mut *conn).await?;
            Ok::<bool, StoreError>(found)
        })
    }

    /// Deletes a trunk and its DID rules, unless an outbound rule uses it.
    pub async fn delete_trunk(
        &self,
        tenant: TenantId,
        id: Id,
    ) -> Result<TrunkDeletion, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let outcome = delete(&mut *conn, tenant, id).await?;
            if outcome == TrunkDeletion::Deleted {
                bump_version(&mut *conn).await?;
            }
            Ok::<TrunkDeletion, StoreError>(outcome)
        })
    }

    /// The tenant's trunk `id` (`None` for another tenant's).
    pub async fn trunk(&self, tenant: TenantId, id: Id) -> Result<Option<Trunk>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_optional(
                "SELECT * FROM trunks WHERE tenant_id = $1 AND id = $2",
                &args![db_id("tenant_id", tenant.id())?, db_id("trunk_id", id)?],
            )
            .await?
            .map(|row| trunk_from_row(&row, &self.sealer))
            .transpose()
        })
    }

    /// A page of the tenant's trunks, by name.
    pub async fn trunk_page(
        &self,
        tenant: TenantId,
        top: u32,
        skip: u64,
    ) -> Result<Vec<Trunk>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_all(
                "SELECT * FROM trunks WHERE tenant_id = $1 ORDER BY name, id LIMIT $2 OFFSET $3",
                &args![
                    db_id("tenant_id", tenant.id())?,
                    i64::from(top),
                    db_u64("skip", skip)?
                ],
            )
            .await?
            .iter()
            .map(|row| trunk_from_row(row, &self.sealer))
            .collect()
        })
    }

    pub async fn count_trunks(&self, tenant: TenantId) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| async {
            let row = conn
                .fetch_optional(
                    "SELECT COUNT(*) AS n FROM trunks WHERE tenant_id = $1",
                    &args![db_id("tenant_id", tenant.id())?],
                )
                .await?
                .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
            crate::convert::get_u64(&row, "n")
        })
    }

    /// Every trunk of a tenant, by name.
    pub async fn trunks_of_tenant(&self, tenant: TenantId) -> Result<Vec<Trunk>, StoreError> {
        with_conn!(&self.pool, |conn| of_tenant(conn, &self.sealer, tenant))
    }

    /// Every trunk of every tenant: what the engine loads at start-up.
    pub async fn all_trunks(&self) -> Result<Vec<Trunk>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_all("SELECT * FROM trunks ORDER BY tenant_id, name", &args![])
                .await?
                .iter()
                .map(|row| trunk_from_row(row, &self.sealer))
                .collect()
        })
    }
}
