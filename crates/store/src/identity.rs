//! Who may use the REST API: the system admin's password hash, bearer
//! tokens (access and refresh, rotated, with reuse detection), tenant API
//! keys, and login throttling counters. Shared by every node on
//! PostgreSQL, so a token issued by one node works on the others and a
//! lock-out holds cluster-wide.
//!
//! Tokens and keys are stored as the hex SHA-256 of their text, computed
//! by the caller: a copy of the database gives nobody a usable token. A
//! fast hash is enough because tokens are 256-bit random values, not
//! passwords (nothing to brute-force).

use cdr::{Id, TenantId, UnixMillis};

use crate::convert::{db_id, db_ms, get_id, get_ms, get_u64};
use crate::db::{Conn, Row, args, with_conn, with_write_tx};
use crate::error::StoreError;

// System accounts ----------------------------------------------------------------

pub(crate) async fn system_password_hash(
    conn: &mut impl Conn,
    username: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .fetch_optional(
            "SELECT password_hash FROM system_accounts WHERE username = $1",
            &args![username],
        )
        .await?
        .map(|row| row.text("password_hash"))
        .transpose()?)
}

pub(crate) async fn set_system_password_hash(
    conn: &mut impl Conn,
    username: &str,
    hash: &str,
    now: UnixMillis,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO system_accounts (username, password_hash, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (username) DO UPDATE SET password_hash = $2, updated_at = $3",
        &args![username, hash, db_ms("updated_at", now)?],
    )
    .await?;
    Ok(())
}

// Tokens -----------------------------------------------------------------------

/// Whom a token was issued to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenOwner {
    SystemAdmin,
    User { tenant_id: TenantId, user_id: Id },
}

/// An access or refresh token to store.
#[derive(Clone, Debug)]
pub struct NewToken<'a> {
    /// Hex SHA-256 of the token.
    pub hash: &'a str,
    pub refresh: bool,
    /// Shared by a login's tokens and all their rotations.
    pub family: &'a str,
    pub owner: TokenOwner,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    /// When the family's sign-in happened (its absolute lifetime counts
    /// from here; a rotation copies it).
    pub family_started_at: UnixMillis,
}

/// A live access token's owner, with the user's current role and state (a
/// role change or a disabled user takes effect at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessGrant {
    SystemAdmin,
    User {
        tenant_id: TenantId,
        user_id: Id,
        role: String,
        enabled: bool,
    },
}

/// The pair a rotation issues, stored in the same transaction that spends
/// the refresh token (so a concurrent reuse revokes it too).
#[derive(Clone, Debug)]
pub struct Rotation<'a> {
    pub access_hash: &'a str,
    pub refresh_hash: &'a str,
    pub access_expires_at: UnixMillis,
    pub refresh_expires_at: UnixMillis,
    /// The absolute lifetime of a sign-in: past `family_started_at` + this,
    /// its refresh tokens are refused and new tokens never outlive it.
    pub family_lifetime_ms: u64,
}

/// What presenting a refresh token did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// The token was live and is now spent; the [`Rotation`]'s pair is
    /// stored in its family.
    Rotated { owner: TokenOwner, family: String },
    /// The token had been spent already: its family (every token of the
    /// login) is now revoked.
    Reused { owner: TokenOwner },
    /// Unknown, expired or revoked.
    Invalid,
}

pub(crate) async fn insert_token(conn: &mut impl Conn, t: &NewToken<'_>) -> Result<(), StoreError> {
    let (tenant, user) = match t.owner {
        TokenOwner::SystemAdmin => (None, None),
        TokenOwner::User { tenant_id, user_id } => (
            Some(db_id("tenant_id", tenant_id.id())?),
            Some(db_id("user_id", user_id)?),
        ),
    };
    conn.execute(
        "INSERT INTO auth_tokens (token_hash, kind, family, tenant_id, user_id, created_at, \
         expires_at, family_started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &args![
            t.hash,
            if t.refresh { "refresh" } else { "access" },
            t.family,
            tenant,
            user,
            db_ms("created_at", t.created_at)?,
            db_ms("expires_at", t.expires_at)?,
            db_ms("family_started_at", t.family_started_at)?,
        ],
    )
    .await?;
    Ok(())
}

fn owner_from_row(row: &impl Row) -> Result<TokenOwner, StoreError> {
    Ok(match (row.opt_int("tenant_id")?, row.opt_int("user_id")?) {
        (Some(_), Some(_)) => TokenOwner::User {
            tenant_id: get_id(row, "tenant_id")?,
            user_id: get_id(row, "user_id")?,
        },
        (None, None) => TokenOwner::SystemAdmin,
        _ => return Err(StoreError::Corrupt("token with half an owner".into())),
    })
}

pub(crate) async fn access_grant(
    conn: &mut impl Conn,
    hash: &str,
    now: UnixMillis,
) -> Result<Option<AccessGrant>, StoreError> {
    let Some(row) = conn
        .fetch_optional(
            "SELECT t.tenant_id, t.user_id, u.role, u.enabled FROM auth_tokens t \
             LEFT JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.kind = 'access' AND t.revoked_at IS NULL \
             AND t.expires_at > $2",
            &args![hash, db_ms("now", now)?],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(match owner_from_row(&row)? {
        TokenOwner::SystemAdmin => AccessGrant::SystemAdmin,
        TokenOwner::User { tenant_id, user_id } => AccessGrant::User {
            tenant_id,
            user_id,
            role: row.text("role")?,
            enabled: row.boolean("enabled")?,
        },
    }))
}

/// Spends a refresh token and stores the next pair, in the caller's write
/// transaction (so two nodes cannot both spend it, and a reuse detected by
/// another node revokes the new pair too).
pub(crate) async fn redeem_refresh(
    conn: &mut impl Conn,
    hash: &str,
    now: UnixMillis,
    next: &Rotation<'_>,
) -> Result<Refresh, StoreError> {
    let created_at = now;
    let now = db_ms("now", now)?;
    let Some(row) = conn
        .fetch_optional(
            "SELECT family, tenant_id, user_id, created_at, expires_at, used_at, revoked_at, \
             family_started_at FROM auth_tokens WHERE token_hash = $1 AND kind = 'refresh'",
            &args![hash],
        )
        .await?
    else {
        return Ok(Refresh::Invalid);
    };
    let owner = owner_from_row(&row)?;
    let family = row.text("family")?;
    if row.opt_int("revoked_at")?.is_some() || row.int("expires_at")? <= now {
        return Ok(Refresh::Invalid);
    }
    if row.opt_int("used_at")?.is_some() {
        revoke_family(conn, &family, now).await?;
        return Ok(Refresh::Reused { owner });
    }
    let started = match row.opt_int("family_started_at")? {
        Some(at) => at,
        None => row.int("created_at")?,
    };
    let lifetime = i64::try_from(next.family_lifetime_ms).unwrap_or(i64::MAX);
    let family_ends = started.saturating_add(lifetime);
    if now >= family_ends {
        // The sign-in is over: sign in again.
        revoke_family(conn, &family, now).await?;
        return Ok(Refresh::Invalid);
    }
    let spent = conn
        .execute(
            "UPDATE auth_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL",
            &args![hash, now],
        )
        .await?;
    if spent == 0 {
        // Spent by a concurrent transaction (PostgreSQL read committed):
        // a reuse all the same.
        revoke_family(conn, &family, now).await?;
        return Ok(Refresh::Reused { owner });
    }
    for (hash, refresh, expires_at) in [
        (next.access_hash, false, next.access_expires_at),
        (next.refresh_hash, true, next.refresh_expires_at),
    ] {
        insert_token(
            conn,
            &NewToken {
                hash,
                refresh,
                family: &family,
                owner,
                created_at,
                expires_at: UnixMillis(expires_at.0.min(u64::try_from(family_ends).unwrap_or(0))),
                family_started_at: UnixMillis(u64::try_from(started).unwrap_or(0)),
            },
        )
        .await?;
    }
    Ok(Refresh::Rotated { owner, family })
}

async fn revoke_family(conn: &mut impl Conn, family: &str, now: i64) -> Result<u64, StoreError> {
    Ok(conn
        .execute(
            "UPDATE auth_tokens SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL",
            &args![family, now],
        )
        .await?)
}

/// Revokes the token's whole family (its login: access and refresh
/// tokens and their rotations); `false` if no such token.
pub(crate) async fn revoke_token(
    conn: &mut impl Conn,
    hash: &str,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let Some(row) = conn
        .fetch_optional(
            "SELECT family FROM auth_tokens WHERE token_hash = $1",
            &args![hash],
        )
        .await?
    else {
        return Ok(false);
    };
    revoke_family(conn, &row.text("family")?, db_ms("now", now)?).await?;
    Ok(true)
}

/// Revokes every token of a user (disabled, password changed).
pub(crate) async fn revoke_user_tokens(
    conn: &mut impl Conn,
    user_id: Id,
    now: UnixMillis,
) -> Result<u64, StoreError> {
    Ok(conn
        .execute(
            "UPDATE auth_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            &args![db_id("user_id", user_id)?, db_ms("now", now)?],
        )
        .await?)
}

/// Revokes every token of the system admin (its password was reset).
pub(crate) async fn revoke_system_admin_tokens(
    conn: &mut impl Conn,
    now: UnixMillis,
) -> Result<u64, StoreError> {
    Ok(conn
        .execute(
            "UPDATE auth_tokens SET revoked_at = $1 \
             WHERE tenant_id IS NULL AND user_id IS NULL AND revoked_at IS NULL",
            &args![db_ms("now", now)?],
        )
        .await?)
}

/// Whether a token with this hash is stored (live or not): an unknown
/// token is answered without opening a write transaction (finding 9).
pub(crate) async fn token_exists(conn: &mut impl Conn, hash: &str) -> Result<bool, StoreError> {
    Ok(conn
        .fetch_optional(
            "SELECT 1 AS one FROM auth_tokens WHERE token_hash = $1",
            &args![hash],
        )
        .await?
        .is_some())
}

/// Forgets tokens that expired before `now`.
pub(crate) async fn remove_expired_tokens(
    conn: &mut impl Conn,
    now: UnixMillis,
) -> Result<u64, StoreError> {
    Ok(conn
        .execute(
            "DELETE FROM auth_tokens WHERE expires_at <= $1",
            &args![db_ms("now", now)?],
        )
        .await?)
}

// API keys ---------------------------------------------------------------------

/// A tenant's API key, without the key (only its hash is stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Id,
    pub tenant_id: TenantId,
    /// Unique in the tenant.
    pub name: String,
    /// `Admin`, `QueueManager` or `StandardUser`.
    pub role: String,
    /// The key's first characters, to recognise it in a list.
    pub prefix: String,
    pub created_at: UnixMillis,
    pub last_used_at: Option<UnixMillis>,
}

const API_KEY_COLUMNS: &str = "id, tenant_id, name, role, prefix, created_at, last_used_at";

fn api_key_from_row(row: &impl Row) -> Result<ApiKey, StoreError> {
    debug_assert!(API_KEY_COLUMNS.contains("last_used_at"));
    Ok(ApiKey {
        id: get_id(row, "id")?,
        tenant_id: get_id(row, "tenant_id")?,
        name: row.text("name")?,
        role: row.text("role")?,
        prefix: row.text("prefix")?,
        created_at: get_ms(row, "created_at")?,
        last_used_at: crate::convert::get_opt_ms(row, "last_used_at")?,
    })
}

pub(crate) async fn create_api_key(
    conn: &mut impl Conn,
    key: &ApiKey,
    hash: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO api_keys (id, tenant_id, name, role, key_hash, prefix, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &args![
            db_id("api_key_id", key.id)?,
            db_id("tenant_id", key.tenant_id.id())?,
            key.name.as_str(),
            key.role.as_str(),
            hash,
            key.prefix.as_str(),
            db_ms("created_at", key.created_at)?,
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn api_keys_of(
    conn: &mut impl Conn,
    tenant_id: TenantId,
) -> Result<Vec<ApiKey>, StoreError> {
    conn.fetch_all(
        "SELECT id, tenant_id, name, role, prefix, created_at, last_used_at FROM api_keys \
         WHERE tenant_id = $1 ORDER BY name",
        &args![db_id("tenant_id", tenant_id.id())?],
    )
    .await?
    .iter()
    .map(api_key_from_row)
    .collect()
}

pub(crate) async fn api_key(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    id: Id,
) -> Result<Option<ApiKey>, StoreError> {
    conn.fetch_optional(
        "SELECT id, tenant_id, name, role, prefix, created_at, last_used_at FROM api_keys \
         WHERE tenant_id = $1 AND id = $2",
        &args![
            db_id("tenant_id", tenant_id.id())?,
            db_id("api_key_id", id)?
        ],
    )
    .await?
    .map(|row| api_key_from_row(&row))
    .transpose()
}

pub(crate) async fn api_key_by_hash(
    conn: &mut impl Conn,
    hash: &str,
) -> Result<Option<ApiKey>, StoreError> {
    conn.fetch_optional(
        "SELECT id, tenant_id, name, role, prefix, created_at, last_used_at FROM api_keys \
         WHERE key_hash = $1",
        &args![hash],
    )
    .await?
    .map(|row| api_key_from_row(&row))
    .transpose()
}

pub(crate) async fn touch_api_key(
    conn: &mut impl Conn,
    id: Id,
    now: UnixMillis,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE api_keys SET last_used_at = $2 WHERE id = $1",
        &args![db_id("api_key_id", id)?, db_ms("now", now)?],
    )
    .await?;
    Ok(())
}

pub(crate) async fn delete_api_key(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    id: Id,
) -> Result<bool, StoreError> {
    Ok(conn
        .execute(
            "DELETE FROM api_keys WHERE tenant_id = $1 AND id = $2",
            &args![
                db_id("tenant_id", tenant_id.id())?,
                db_id("api_key_id", id)?
            ],
        )
        .await?
        > 0)
}

// Login throttling -------------------------------------------------------------

/// How long `key` is locked out after `now` (ms), 0 if it is not.
pub(crate) async fn login_lock(
    conn: &mut impl Conn,
    key: &str,
    now: UnixMillis,
) -> Result<u64, StoreError> {
    let now = db_ms("now", now)?;
    Ok(conn
        .fetch_optional(
            "SELECT locked_until FROM login_failures WHERE throttle_key = $1",
            &args![key],
        )
        .await?
        .map(|row| row.int("locked_until"))
        .transpose()?
        .map_or(0, |until| u64::try_from(until - now).unwrap_or(0)))
}

/// Counts one more failure for `key` (starting over when the last one is
/// older than `window_ms`), in the caller's write transaction, and sets
/// the lock-out `lock_ms(failures)` decides. Returns the failure count.
pub(crate) async fn record_login_failure(
    conn: &mut impl Conn,
    key: &str,
    now: UnixMillis,
    window_ms: u64,
    lock_ms: &(dyn Fn(u64) -> u64 + Sync),
) -> Result<u64, StoreError> {
    let now_db = db_ms("now", now)?;
    let window_start = now_db.saturating_sub(i64::try_from(window_ms).unwrap_or(i64::MAX));
    let row = conn
        .fetch_optional(
            "INSERT INTO login_failures (throttle_key, failures, locked_until, updated_at) \
             VALUES ($1, 1, 0, $2) ON CONFLICT (throttle_key) DO UPDATE SET \
             failures = CASE WHEN login_failures.updated_at < $3 THEN 1 \
             ELSE login_failures.failures + 1 END, updated_at = $2 \
             RETURNING failures",
            &args![key, now_db, window_start],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("upsert returned no row".into()))?;
    let failures = get_u64(&row, "failures")?;
    let lock = lock_ms(failures);
    if lock > 0 {
        let until = now_db.saturating_add(i64::try_from(lock).unwrap_or(i64::MAX));
        conn.execute(
            "UPDATE login_failures SET locked_until = $2 WHERE throttle_key = $1",
            &args![key, until],
        )
        .await?;
    }
    Ok(failures)
}

pub(crate) async fn clear_login_failures(
    conn: &mut impl Conn,
    key: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM login_failures WHERE throttle_key = $1",
        &args![key],
    )
    .await?;
    Ok(())
}

/// Forgets the counter `key` and every counter whose key starts with
/// `prefix` (an account's per-address counters).
pub(crate) async fn clear_login_failures_with_prefix(
    conn: &mut impl Conn,
    key: &str,
    prefix: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM login_failures WHERE throttle_key = $1 \
         OR substr(throttle_key, 1, length($2)) = $2",
        &args![key, prefix],
    )
    .await?;
    Ok(())
}

/// Forgets counters whose last failure is older than `before` and whose
/// lock-out has ended by `now`.
pub(crate) async fn remove_stale_login_failures(
    conn: &mut impl Conn,
    before: UnixMillis,
    now: UnixMillis,
) -> Result<u64, StoreError> {
    Ok(conn
        .execute(
            "DELETE FROM login_failures WHERE updated_at < $1 AND locked_until <= $2",
            &args![db_ms("before", before)?, db_ms("now", now)?],
        )
        .await?)
}

/// The identity part of the store's API (sign-ins, tokens, API keys,
/// lock-out counters), over the functions above.
impl crate::Store {
    /// The system account's argon2id hash, if it is stored.
    pub async fn system_password_hash(&self, username: &str) -> Result<Option<String>, StoreError> {
        with_conn!(&self.pool, |conn| system_password_hash(conn, username))
    }

    pub async fn set_system_password_hash(
        &self,
        username: &str,
        hash: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        with_conn!(&self.pool, |conn| set_system_password_hash(
            conn, username, hash, now
        ))
    }

    /// Stores an access and a refresh token together.
    pub async fn insert_tokens(&self, tokens: &[NewToken<'_>]) -> Result<(), StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            for t in tokens {
                insert_token(&mut *conn, t).await?;
            }
            Ok::<(), StoreError>(())
        })
    }

    /// The owner of a live access token (by its hash).
    pub async fn access_grant(
        &self,
        hash: &str,
        now: UnixMillis,
    ) -> Result<Option<AccessGrant>, StoreError> {
        with_conn!(&self.pool, |conn| access_grant(conn, hash, now))
    }

    /// Spends a refresh token (by its hash) and stores `next` in its
    /// family, in one transaction; see [`Refresh`].
    pub async fn redeem_refresh(
        &self,
        hash: &str,
        now: UnixMillis,
        next: &Rotation<'_>,
    ) -> Result<Refresh, StoreError> {
        // Unauthenticated callers: no write lock for a token that does not
        // exist (security review, finding 9).
        if !with_conn!(&self.pool, |conn| token_exists(conn, hash))? {
            return Ok(Refresh::Invalid);
        }
        with_write_tx!(&self.pool, |conn| redeem_refresh(conn, hash, now, next))
    }

    /// Revokes every token of the system admin; how many were live.
    pub async fn revoke_system_admin_tokens(&self, now: UnixMillis) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| revoke_system_admin_tokens(conn, now))
    }

    /// Revokes a token's family; `false` if the token is unknown.
    pub async fn revoke_token(&self, hash: &str, now: UnixMillis) -> Result<bool, StoreError> {
        if !with_conn!(&self.pool, |conn| token_exists(conn, hash))? {
            return Ok(false);
        }
        with_write_tx!(&self.pool, |conn| revoke_token(conn, hash, now))
    }

    /// Revokes every token of a user.
    pub async fn revoke_user_tokens(
        &self,
        user_id: Id,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| revoke_user_tokens(conn, user_id, now))
    }

    pub async fn remove_expired_tokens(&self, now: UnixMillis) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| remove_expired_tokens(conn, now))
    }

    /// Fails with [`StoreError::Conflict`] if the tenant has a key of that
    /// name.
    pub async fn create_api_key(&self, key: &ApiKey, hash: &str) -> Result<(), StoreError> {
        with_conn!(&self.pool, |conn| create_api_key(conn, key, hash))
    }

    /// A tenant's API keys, by name.
    pub async fn api_keys(&self, tenant_id: TenantId) -> Result<Vec<ApiKey>, StoreError> {
        with_conn!(&self.pool, |conn| api_keys_of(conn, tenant_id))
    }

    pub async fn api_key(&self, tenant_id: TenantId, id: Id) -> Result<Option<ApiKey>, StoreError> {
        with_conn!(&self.pool, |conn| api_key(conn, tenant_id, id))
    }

    pub async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        with_conn!(&self.pool, |conn| api_key_by_hash(conn, hash))
    }

    /// Records that a key was used at `now`.
    pub async fn touch_api_key(&self, id: Id, now: UnixMillis) -> Result<(), StoreError> {
        with_conn!(&self.pool, |conn| touch_api_key(conn, id, now))
    }

    /// Revokes (deletes) a key; `false` if the tenant has no such key.
    pub async fn delete_api_key(&self, tenant_id: TenantId, id: Id) -> Result<bool, StoreError> {
        with_conn!(&self.pool, |conn| delete_api_key(conn, tenant_id, id))
    }

    /// How many milliseconds `key` stays locked out after `now` (0: not
    /// locked).
    pub async fn login_lock(&self, key: &str, now: UnixMillis) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| login_lock(conn, key, now))
    }

    /// Counts a failed sign-in for `key` (a new count when the previous
    /// failure is older than `window_ms`) and locks it out for
    /// `lock_ms(failures)` milliseconds; returns the count.
    pub async fn record_login_failure(
        &self,
        key: &str,
        now: UnixMillis,
        window_ms: u64,
        lock_ms: &(dyn Fn(u64) -> u64 + Sync),
    ) -> Result<u64, StoreError> {
        with_write_tx!(&self.pool, |conn| record_login_failure(
            conn, key, now, window_ms, lock_ms
        ))
    }

    /// Forgets failure counts older than `before` whose lock-out is over
    /// at `now`; returns how many.
    pub async fn remove_stale_login_failures(
        &self,
        before: UnixMillis,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| remove_stale_login_failures(
            conn, before, now
        ))
    }

    pub async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        with_conn!(&self.pool, |conn| clear_login_failures(conn, key))
    }

    /// Forgets the counter `key` and every counter whose key starts with
    /// `prefix`.
    pub async fn clear_login_failures_with_prefix(
        &self,
        key: &str,
        prefix: &str,
    ) -> Result<(), StoreError> {
        with_conn!(&self.pool, |conn| {
            clear_login_failures_with_prefix(conn, key, prefix)
        })
    }
}
