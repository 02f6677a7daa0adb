//! The directory: tenants and their users (extensions), with what the
//! REST identity needs (roles, web password hashes, settings).
//!
//! Trunks, rules and ring groups have modules of their own; the rest of
//! SPEC §7's provisioning comes with the features that use them.

use std::fmt;

use cdr::{Id, TenantId, UnixMillis};

use crate::convert::{db_id, db_ms, db_u64, get_id, get_ms, get_u32};
use crate::db::{Conn, Row, args};
use crate::error::StoreError;

/// A ring timeout nobody configured (SPEC §3: per extension, default 30 s).
pub const DEFAULT_RING_TIMEOUT_SECS: u32 = 30;

/// A tenant's time zone nobody configured.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// The default group pickup code.
pub const DEFAULT_PICKUP_CODE: &str = "*8";
/// The default directed pickup prefix (`**102` picks up 102's call).
pub const DEFAULT_DIRECTED_PICKUP_PREFIX: &str = "**";
/// The default queue agents' login and logout feature codes.
pub const DEFAULT_AGENT_LOGIN_CODE: &str = "*45";
pub const DEFAULT_AGENT_LOGOUT_CODE: &str = "*46";

/// One company, with its own SIP domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// Stored lowercase: SIP host names compare case-insensitively, so
    /// `Acme.Example` and `acme.example` are one tenant.
    pub sip_domain: String,
    /// IANA time zone name (`Europe/Paris`), `UTC` by default: CSV exports
    /// and reports show times in it. The API validates it.
    pub time_zone: String,
    /// CDRs older than this many days may be purged; `None` keeps them.
    pub retention_days: Option<u32>,
    /// Call pickup feature codes (migration 0017): group pickup (`*8`),
    /// and the directed pickup prefix followed by an extension (`**`).
    pub pickup_code: String,
    pub directed_pickup_prefix: String,
    /// Queue agents' login and logout feature codes (migration 0026):
    /// alone, every queue of the agent; followed by a queue's number, that
    /// queue (`*45`, `*46`).
    pub agent_login_code: String,
    pub agent_logout_code: String,
    /// Every call of the tenant is recorded (migration 0021).
    pub recording: bool,
    pub created_at: UnixMillis,
}

impl Tenant {
    /// A tenant with the default settings.
    pub fn new(id: TenantId, name: &str, sip_domain: &str, created_at: UnixMillis) -> Self {
        Tenant {
            id,
            name: name.to_owned(),
            sip_domain: sip_domain.to_owned(),
            time_zone: DEFAULT_TIME_ZONE.to_owned(),
            retention_days: None,
            pickup_code: DEFAULT_PICKUP_CODE.to_owned(),
            directed_pickup_prefix: DEFAULT_DIRECTED_PICKUP_PREFIX.to_owned(),
            agent_login_code: DEFAULT_AGENT_LOGIN_CODE.to_owned(),
            agent_logout_code: DEFAULT_AGENT_LOGOUT_CODE.to_owned(),
            recording: false,
            created_at,
        }
    }
}

/// An extension of a tenant, and the person (or desk) behind it.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: Id,
    pub tenant_id: TenantId,
    pub extension: String,
    pub display_name: String,
    /// The digest HA1s of the SIP password, never the password itself
    /// (DESIGN.md, "SIP passwords are stored as digest HA1s").
    pub sip: SipHashes,
    pub ring_timeout_secs: u32,
    /// A disabled user can neither register, be called nor sign in.
    pub enabled: bool,
    /// `Admin`, `QueueManager` or `StandardUser` (SPEC §7; the database
    /// refuses anything else).
    pub role: String,
    pub email: String,
    /// An optional sign-in name besides the extension number, unique in
    /// the tenant.
    pub username: Option<String>,
    /// The web (REST) password as an argon2id PHC string; `None`: this
    /// user cannot sign in to the API. Separate from the SIP password.
    pub password_hash: Option<String>,
    /// Forwarding rules, a JSON array (validated by the API; applied by
    /// the engine in a later issue).
    pub forwarding: String,
    /// How many calls the user may be in at once (as caller or callee);
    /// at the limit a call to it is busy. `None`: no limit.
    pub max_concurrent_calls: Option<u32>,
    /// Call pickup group (`""`: none; migration 0017).
    pub pickup_group: String,
    /// Whether this user's calls are recorded.
    pub recording: bool,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// What the store keeps of a SIP password: `H(extension:realm:password)`
/// for MD5 and for SHA-256 (RFC 7616), in lowercase hex, and the realm
/// they were computed for, as Kamailio's `ha1`/`ha1b` columns do. Empty
/// (the default): no SIP password is set, the user cannot authenticate.
/// The store does not hash: the caller computes them (the binary, with
/// `sip::auth::ha1`, the one place digest arithmetic lives).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SipHashes {
    /// The digest realm (the tenant's SIP domain when they were computed).
    pub realm: String,
    pub md5: String,
    pub sha256: String,
}

impl SipHashes {
    /// Whether a SIP password is set (and answers challenges of `realm`).
    pub fn is_set_for(&self, realm: &str) -> bool {
        !self.md5.is_empty() && self.realm.eq_ignore_ascii_case(realm)
    }
}

/// The hashes stay out of logs: each is as good as the password for its
/// realm.
impl fmt::Debug for SipHashes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipHashes")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl User {
    /// A `StandardUser` with no web password, no forwarding, no recording.
    pub fn new(
        id: Id,
        tenant_id: TenantId,
        extension: &str,
        sip: SipHashes,
        created_at: UnixMillis,
    ) -> Self {
        User {
            id,
            tenant_id,
            extension: extension.to_owned(),
            display_name: String::new(),
            sip,
            ring_timeout_secs: DEFAULT_RING_TIMEOUT_SECS,
            enabled: true,
            role: "StandardUser".to_owned(),
            email: String::new(),
            username: None,
            password_hash: None,
            forwarding: "[]".to_owned(),
            max_concurrent_calls: None,
            pickup_group: String::new(),
            recording: false,
            created_at,
            updated_at: created_at,
        }
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("extension", &self.extension)
            .field("display_name", &self.display_name)
            .field("sip", &self.sip)
            .field("ring_timeout_secs", &self.ring_timeout_secs)
            .field("enabled", &self.enabled)
            .field("role", &self.role)
            .field("email", &self.email)
            .field("username", &self.username)
            .field("password_hash", &self.password_hash.as_ref().map(|_| ".."))
            .field("forwarding", &self.forwarding)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("pickup_group", &self.pickup_group)
            .field("recording", &self.recording)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Marks the directory changed (in the caller's transaction).
pub(crate) async fn bump_version(conn: &mut impl Conn) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE directory_version SET version = version + 1 WHERE id = 1",
        &args![],
    )
    .await?;
    Ok(())
}

pub(crate) async fn version(conn: &mut impl Conn) -> Result<u64, StoreError> {
    let row = conn
        .fetch_optional(
            "SELECT version FROM directory_version WHERE id = 1",
            &args![],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("directory_version has no row".into()))?;
    crate::convert::get_u64(&row, "version")
}

/// Every user of every tenant, by tenant and extension.
pub(crate) async fn all_users(conn: &mut impl Conn) -> Result<Vec<User>, StoreError> {
    conn.fetch_all(
        "SELECT * FROM users ORDER BY tenant_id, extension",
        &args![],
    )
    .await?
    .iter()
    .map(user_from_row)
    .collect()
}

const TENANT_COLUMNS: &str = "id, name, sip_domain, time_zone, retention_days, pickup_code, directed_pickup_prefix, agent_login_code, agent_logout_code, recording, created_at";

fn opt_days(days: Option<u32>) -> Option<i64> {
    days.map(i64::from)
}

pub(crate) async fn create_tenant(conn: &mut impl Conn, tenant: &Tenant) -> Result<(), StoreError> {
    let domain = tenant.sip_domain.to_ascii_lowercase();
    conn.execute(
        "INSERT INTO tenants (id, name, sip_domain, time_zone, retention_days, created_at, \
         pickup_code, directed_pickup_prefix, recording, agent_login_code, agent_logout_code) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &args![
            db_id("tenant_id", tenant.id.id())?,
            tenant.name.as_str(),
            domain.as_str(),
            tenant.time_zone.as_str(),
            opt_days(tenant.retention_days),
            db_ms("created_at", tenant.created_at)?,
            tenant.pickup_code.as_str(),
            tenant.directed_pickup_prefix.as_str(),
            tenant.recording,
            tenant.agent_login_code.as_str(),
            tenant.agent_logout_code.as_str(),
        ],
    )
    .await?;
    Ok(())
}

/// Replaces name, domain and settings; `false` if there is no such tenant.
pub(crate) async fn update_tenant(
    conn: &mut impl Conn,
    tenant: &Tenant,
) -> Result<bool, StoreError> {
    let domain = tenant.sip_domain.to_ascii_lowercase();
    let n = conn
        .execute(
            "UPDATE tenants SET name = $2, sip_domain = $3, time_zone = $4, retention_days = $5, \
             pickup_code = $6, directed_pickup_prefix = $7, recording = $8, \
             agent_login_code = $9, agent_logout_code = $10 WHERE id = $1",
            &args![
                db_id("tenant_id", tenant.id.id())?,
                tenant.name.as_str(),
                domain.as_str(),
                tenant.time_zone.as_str(),
                opt_days(tenant.retention_days),
                tenant.pickup_code.as_str(),
                tenant.directed_pickup_prefix.as_str(),
                tenant.recording,
                tenant.agent_login_code.as_str(),
                tenant.agent_logout_code.as_str(),
            ],
        )
        .await?;
    if n > 0 {
        // The digest realm is the domain: HA1s computed for another realm
        // can no longer answer a challenge. Forget them, so the API shows
        // which users need their SIP password again (a rename cannot
        // recompute them: the store never had the passwords).
        conn.execute(
            "UPDATE users SET sip_realm = '', sip_ha1_md5 = '', sip_ha1_sha256 = '' \
             WHERE tenant_id = $1 AND sip_realm <> $2",
            &args![db_id("tenant_id", tenant.id.id())?, domain.as_str()],
        )
        .await?;
    }
    Ok(n > 0)
}

/// Deletes a tenant with everything it owns, in the caller's transaction.
/// Tables of features that do not cascade make it fail with
/// [`StoreError::MissingReference`].
pub(crate) async fn delete_tenant(conn: &mut impl Conn, id: TenantId) -> Result<bool, StoreError> {
    let id = db_id("tenant_id", id.id())?;
    crate::trunks::delete_tenant_rows(conn, id).await?;
    crate::ring_groups::delete_tenant_rows(conn, id).await?;
    crate::queues::delete_tenant_rows(conn, id).await?;
    crate::ivrs::delete_tenant_rows(conn, id).await?;
    for sql in [
        "DELETE FROM cdr_targets WHERE cdr_id IN (SELECT cdr_id FROM cdrs WHERE tenant_id = $1)",
        "DELETE FROM cdrs WHERE tenant_id = $1",
        "DELETE FROM session_events WHERE session_id IN \
         (SELECT session_id FROM sessions WHERE tenant_id = $1)",
        "DELETE FROM sessions WHERE tenant_id = $1",
        "DELETE FROM outbox WHERE tenant_id = $1",
        "DELETE FROM tenant_sequences WHERE tenant_id = $1",
        "DELETE FROM registrations WHERE tenant_id = $1",
        "DELETE FROM auth_tokens WHERE tenant_id = $1",
        "DELETE FROM api_keys WHERE tenant_id = $1",
        "DELETE FROM webhook_log WHERE tenant_id = $1",
        "DELETE FROM webhook_deliveries WHERE tenant_id = $1",
        "DELETE FROM webhook_endpoints WHERE tenant_id = $1",
        "DELETE FROM recordings WHERE tenant_id = $1",
        "DELETE FROM users WHERE tenant_id = $1",
    ] {
        conn.execute(sql, &args![id]).await?;
    }
    let n = conn
        .execute("DELETE FROM tenants WHERE id = $1", &args![id])
        .await?;
    Ok(n > 0)
}

pub(crate) async fn tenant(
    conn: &mut impl Conn,
    id: TenantId,
) -> Result<Option<Tenant>, StoreError> {
    conn.fetch_optional(
        "SELECT id, name, sip_domain, time_zone, retention_days, pickup_code, \
         directed_pickup_prefix, agent_login_code, agent_logout_code, recording, created_at \
         FROM tenants WHERE id = $1",
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
        "SELECT id, name, sip_domain, time_zone, retention_days, pickup_code, \
         directed_pickup_prefix, agent_login_code, agent_logout_code, recording, created_at \
         FROM tenants WHERE sip_domain = $1",
        &args![domain.as_str()],
    )
    .await?
    .map(|row| tenant_from_row(&row))
    .transpose()
}

fn tenant_from_row(row: &impl Row) -> Result<Tenant, StoreError> {
    debug_assert!(TENANT_COLUMNS.contains("retention_days"));
    Ok(Tenant {
        id: get_id(row, "id")?,
        name: row.text("name")?,
        sip_domain: row.text("sip_domain")?,
        time_zone: row.text("time_zone")?,
        retention_days: row
            .opt_int("retention_days")?
            .map(|d| {
                u32::try_from(d).map_err(|_| StoreError::Corrupt(format!("retention_days = {d}")))
            })
            .transpose()?,
        pickup_code: row.text("pickup_code")?,
        directed_pickup_prefix: row.text("directed_pickup_prefix")?,
        agent_login_code: row.text("agent_login_code")?,
        agent_logout_code: row.text("agent_logout_code")?,
        recording: row.boolean("recording")?,
        created_at: get_ms(row, "created_at")?,
    })
}

/// Every tenant, by id.
pub(crate) async fn tenants(conn: &mut impl Conn) -> Result<Vec<Tenant>, StoreError> {
    conn.fetch_all(
        "SELECT id, name, sip_domain, time_zone, retention_days, pickup_code, \
         directed_pickup_prefix, agent_login_code, agent_logout_code, recording, created_at \
         FROM tenants ORDER BY id",
        &args![],
    )
    .await?
    .iter()
    .map(tenant_from_row)
    .collect()
}

/// A page of tenants, by id.
pub(crate) async fn tenant_page(
    conn: &mut impl Conn,
    top: u32,
    skip: u64,
) -> Result<Vec<Tenant>, StoreError> {
    conn.fetch_all(
        "SELECT id, name, sip_domain, time_zone, retention_days, pickup_code, \
         directed_pickup_prefix, agent_login_code, agent_logout_code, recording, created_at \
         FROM tenants ORDER BY id LIMIT $1 OFFSET $2",
        &args![i64::from(top), db_u64("skip", skip)?],
    )
    .await?
    .iter()
    .map(tenant_from_row)
    .collect()
}

pub(crate) async fn count_tenants(conn: &mut impl Conn) -> Result<u64, StoreError> {
    let row = conn
        .fetch_optional("SELECT COUNT(*) AS n FROM tenants", &args![])
        .await?
        .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
    crate::convert::get_u64(&row, "n")
}

pub(crate) async fn create_user(conn: &mut impl Conn, user: &User) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO users (id, tenant_id, extension, display_name, sip_password, \
         ring_timeout_secs, enabled, role, email, username, password_hash, forwarding, \
         recording, created_at, updated_at, sip_realm, sip_ha1_md5, sip_ha1_sha256, max_concurrent_calls, \
         pickup_group) \
         VALUES ($1, $2, $3, $4, '', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        &args![
            db_id("user_id", user.id)?,
            db_id("tenant_id", user.tenant_id.id())?,
            user.extension.as_str(),
            user.display_name.as_str(),
            i64::from(user.ring_timeout_secs),
            user.enabled,
            user.role.as_str(),
            user.email.as_str(),
            user.username.as_deref(),
            user.password_hash.as_deref(),
            user.forwarding.as_str(),
            user.recording,
            db_ms("created_at", user.created_at)?,
            db_ms("updated_at", user.updated_at)?,
            user.sip.realm.as_str(),
            user.sip.md5.as_str(),
            user.sip.sha256.as_str(),
            user.max_concurrent_calls.map(i64::from),
            user.pickup_group.as_str(),
        ],
    )
    .await?;
    Ok(())
}

/// Replaces every field but the ids and `created_at`, in the caller's
/// transaction; `false` if the tenant has no such user. A new extension
/// number drops the old number's registrations (its phones must register
/// again, under the new number).
pub(crate) async fn update_user(conn: &mut impl Conn, user: &User) -> Result<bool, StoreError> {
    let id = db_id("user_id", user.id)?;
    let tenant = db_id("tenant_id", user.tenant_id.id())?;
    conn.execute(
        "DELETE FROM registrations WHERE tenant_id = $1 AND extension = \
         (SELECT extension FROM users WHERE id = $2 AND tenant_id = $1 AND extension <> $3)",
        &args![tenant, id, user.extension.as_str()],
    )
    .await?;
    let n = conn
        .execute(
            "UPDATE users SET extension = $3, display_name = $4, sip_password = '', \
             ring_timeout_secs = $5, enabled = $6, role = $7, email = $8, username = $9, \
             password_hash = $10, forwarding = $11, recording = $12, updated_at = $13, \
             sip_realm = $14, sip_ha1_md5 = $15, sip_ha1_sha256 = $16, max_concurrent_calls = $17, \
             pickup_group = $18 WHERE id = $1 AND tenant_id = $2",
            &args![
                id,
                tenant,
                user.extension.as_str(),
                user.display_name.as_str(),
                i64::from(user.ring_timeout_secs),
                user.enabled,
                user.role.as_str(),
                user.email.as_str(),
                user.username.as_deref(),
                user.password_hash.as_deref(),
                user.forwarding.as_str(),
                user.recording,
                db_ms("updated_at", user.updated_at)?,
                user.sip.realm.as_str(),
                user.sip.md5.as_str(),
                user.sip.sha256.as_str(),
                user.max_concurrent_calls.map(i64::from),
                user.pickup_group.as_str(),
            ],
        )
        .await?;
    Ok(n > 0)
}

/// Deletes a user, its registrations and its tokens, in the caller's
/// transaction; `false` if the tenant has no such user.
pub(crate) async fn delete_user(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    id: Id,
) -> Result<bool, StoreError> {
    let id = db_id("user_id", id)?;
    let tenant = db_id("tenant_id", tenant_id.id())?;
    conn.execute(
        "DELETE FROM registrations WHERE tenant_id = $1 AND extension = \
         (SELECT extension FROM users WHERE id = $2 AND tenant_id = $1)",
        &args![tenant, id],
    )
    .await?;
    conn.execute("DELETE FROM auth_tokens WHERE user_id = $1", &args![id])
        .await?;
    let n = conn
        .execute(
            "DELETE FROM users WHERE id = $1 AND tenant_id = $2",
            &args![id, tenant],
        )
        .await?;
    Ok(n > 0)
}

/// Every user of a tenant, by extension.
pub(crate) async fn users_of(
    conn: &mut impl Conn,
    tenant_id: TenantId,
) -> Result<Vec<User>, StoreError> {
    conn.fetch_all(
        "SELECT * FROM users WHERE tenant_id = $1 ORDER BY extension",
        &args![db_id("tenant_id", tenant_id.id())?],
    )
    .await?
    .iter()
    .map(user_from_row)
    .collect()
}

/// A page of a tenant's users, by extension.
pub(crate) async fn user_page(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    top: u32,
    skip: u64,
) -> Result<Vec<User>, StoreError> {
    conn.fetch_all(
        "SELECT * FROM users WHERE tenant_id = $1 ORDER BY extension, id LIMIT $2 OFFSET $3",
        &args![
            db_id("tenant_id", tenant_id.id())?,
            i64::from(top),
            db_u64("skip", skip)?
        ],
    )
    .await?
    .iter()
    .map(user_from_row)
    .collect()
}

pub(crate) async fn count_users(
    conn: &mut impl Conn,
    tenant_id: TenantId,
) -> Result<u64, StoreError> {
    let row = conn
        .fetch_optional(
            "SELECT COUNT(*) AS n FROM users WHERE tenant_id = $1",
            &args![db_id("tenant_id", tenant_id.id())?],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
    crate::convert::get_u64(&row, "n")
}

fn user_from_row(row: &impl Row) -> Result<User, StoreError> {
    Ok(User {
        id: get_id(row, "id")?,
        tenant_id: get_id(row, "tenant_id")?,
        extension: row.text("extension")?,
        display_name: row.text("display_name")?,
        sip: SipHashes {
            realm: row.text("sip_realm")?,
            md5: row.text("sip_ha1_md5")?,
            sha256: row.text("sip_ha1_sha256")?,
        },
        ring_timeout_secs: get_u32(row, "ring_timeout_secs")?,
        enabled: row.boolean("enabled")?,
        role: row.text("role")?,
        email: row.text("email")?,
        username: row.opt_text("username")?,
        password_hash: row.opt_text("password_hash")?,
        forwarding: row.text("forwarding")?,
        max_concurrent_calls: row
            .opt_int("max_concurrent_calls")?
            .map(|n| {
                u32::try_from(n)
                    .map_err(|_| StoreError::Corrupt(format!("max_concurrent_calls = {n}")))
            })
            .transpose()?,
        pickup_group: row.text("pickup_group")?,
        recording: row.boolean("recording")?,
        created_at: get_ms(row, "created_at")?,
        updated_at: get_ms(row, "updated_at")?,
    })
}

pub(crate) async fn user_by_extension(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    extension: &str,
) -> Result<Option<User>, StoreError> {
    conn.fetch_optional(
        "SELECT * FROM users WHERE tenant_id = $1 AND extension = $2",
        &args![db_id("tenant_id", tenant_id.id())?, extension],
    )
    .await?
    .map(|row| user_from_row(&row))
    .transpose()
}

pub(crate) async fn user(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    id: Id,
) -> Result<Option<User>, StoreError> {
    conn.fetch_optional(
        "SELECT * FROM users WHERE tenant_id = $1 AND id = $2",
        &args![db_id("tenant_id", tenant_id.id())?, db_id("user_id", id)?],
    )
    .await?
    .map(|row| user_from_row(&row))
    .transpose()
}

/// The user who signs in as `login`: its extension number or its username.
pub(crate) async fn user_by_login(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    login: &str,
) -> Result<Option<User>, StoreError> {
    conn.fetch_optional(
        "SELECT * FROM users WHERE tenant_id = $1 AND (extension = $2 OR username = $2) \
         ORDER BY CASE WHEN extension = $2 THEN 0 ELSE 1 END LIMIT 1",
        &args![db_id("tenant_id", tenant_id.id())?, login],
    )
    .await?
    .map(|row| user_from_row(&row))
    .transpose()
}
