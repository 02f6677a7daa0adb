//! Personal CDR sync tokens (SPEC §7, PortSIP's
//! `/api/user/cdrs/sync_tokens` and `…/{token}/diff`).
//!
//! A token is a stored bookmark in the tenant's commit order: the outbox
//! `sequence` up to which its user has seen changes. Every CDR is
//! committed together with its `call_cdr` outbox row, whose per-tenant
//! `sequence` is gap-free and visible in commit order (see `commit.rs`), so
//! "CDRs whose `call_cdr` sequence is above the bookmark" is exactly "what
//! was committed since", with no race against a CDR of a long call that
//! started before the last diff and ended after it (an order by `cdr_id` or
//! `started_at` would miss it).
//!
//! * Creating a token without `date_from` bookmarks the tenant's current
//!   sequence: its first diff holds the calls committed after it. With
//!   `date_from`, the bookmark is the start of the outbox and the token
//!   keeps a lower bound on `started_at`: the first diff holds the user's
//!   calls since that date (bounded by [`DIFF_WINDOW`] per diff).
//! * A diff answers `CREATED` for each of the user's CDRs in the window
//!   (nested `items:[CDR]`, PortSIP's shape) and a **new** token for the
//!   next diff; the old token stays valid until it expires, so a client
//!   that lost a response can ask again. A diff examines at most
//!   [`DIFF_WINDOW`] committed calls of the tenant; `has_more` (a Tally
//!   addition) says the next token has more to give at once.
//! * Tally never changes a committed CDR, so there is no `UPDATED`;
//!   `DELETED` would come from retention, which does not delete yet.
//! * A token is forgotten (the API answers 403, and the client starts a
//!   full sync) when it is unknown, belongs to another user, is older than
//!   [`TOKEN_TTL_MS`], or when the outbox no longer holds the changes after
//!   its bookmark.

use cdr::{CdrRecord, Id, TenantId};

use crate::cdrs;
use crate::convert::db_id;
use crate::db::{Conn, Row, args};
use crate::error::StoreError;
use crate::query::compile::{self, DynConn, Sql};

/// How long a token lives after it was issued: 30 days.
pub const TOKEN_TTL_MS: i64 = 30 * 24 * 60 * 60 * 1000;
/// Committed calls of the tenant one diff examines at most.
pub const DIFF_WINDOW: i64 = 5_000;

/// One diff: the next token and the user's CDRs created since the last.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncDiff {
    pub token: String,
    /// In commit order, with their targets.
    pub created: Vec<CdrRecord>,
    /// The window was full: the next token already has more.
    pub has_more: bool,
}

/// Stores a new token for `user_id`; `date_from` (Unix ms) asks for the
/// user's calls since then. Drops expired tokens on the way.
pub(crate) async fn create(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    user_id: Id,
    token: &str,
    date_from: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    let tenant = db_id("tenant_id", tenant_id.id())?;
    conn.execute(
        "DELETE FROM cdr_sync_tokens WHERE created_at < $1",
        &args![now - TOKEN_TTL_MS],
    )
    .await?;
    let position = match date_from {
        Some(_) => 0,
        None => last_sequence(conn, tenant).await?,
    };
    conn.execute(
        "INSERT INTO cdr_sync_tokens (token, tenant_id, user_id, position, date_from, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &args![
            token,
            tenant,
            db_id("user_id", user_id)?,
            position,
            date_from,
            now
        ],
    )
    .await?;
    Ok(())
}

async fn last_sequence(conn: &mut impl Conn, tenant: i64) -> Result<i64, StoreError> {
    Ok(conn
        .fetch_optional(
            "SELECT last_sequence FROM tenant_sequences WHERE tenant_id = $1",
            &args![tenant],
        )
        .await?
        .map(|row| row.int("last_sequence"))
        .transpose()?
        .unwrap_or(0))
}

/// The diff of `token` for the user; `None` if the token
/// is forgotten (see the module docs). `next_token` is stored as the
/// token of the answer.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn diff(
    conn: &mut impl DynConn,
    tenant_id: TenantId,
    user_id: Id,
    token: &str,
    next_token: &str,
    now: i64,
) -> Result<Option<SyncDiff>, StoreError> {
    let tenant = db_id("tenant_id", tenant_id.id())?;
    let user = db_id("user_id", user_id)?;
    let Some(row) = conn
        .fetch_optional(
            "SELECT position, date_from FROM cdr_sync_tokens \
             WHERE token = $1 AND tenant_id = $2 AND user_id = $3 AND created_at >= $4",
            &args![token, tenant, user, now - TOKEN_TTL_MS],
        )
        .await?
    else {
        return Ok(None);
    };
    let position = row.int("position")?;
    let date_from = row.opt_int("date_from")?;
    // Read before the window: every sequence up to it is visible.
    let upto = last_sequence(conn, tenant).await?;
    if upto > position {
        let oldest = conn
            .fetch_optional(
                "SELECT MIN(sequence) AS m FROM outbox WHERE tenant_id = $1",
                &args![tenant],
            )
            .await?
            .map(|row| row.opt_int("m"))
            .transpose()?
            .flatten();
        if oldest.is_none_or(|oldest| oldest > position + 1) {
            return Ok(None);
        }
    }
    // The window: the tenant's next committed calls, at most DIFF_WINDOW.
    let window = conn
        .fetch_all(
            "SELECT sequence FROM outbox WHERE tenant_id = $1 AND sequence > $2 \
             AND sequence <= $3 AND event_type = 'call_cdr' ORDER BY sequence LIMIT $4",
            &args![tenant, position, upto, DIFF_WINDOW],
        )
        .await?;
    let has_more = i64::try_from(window.len()).unwrap_or(i64::MAX) >= DIFF_WINDOW;
    let next_position = match window.last() {
        Some(last) if has_more => last.int("sequence")?,
        _ => upto,
    };

    let mut sql = Sql::new();
    sql.push(cdrs::SELECT_WITH_TARGETS)
        .push(
            "FROM outbox o JOIN cdrs c ON c.session_id = o.session_id \
             LEFT JOIN cdr_targets t ON t.cdr_id = c.cdr_id \
             WHERE o.tenant_id = ",
        )
        .bind_int(tenant)
        .push(" AND o.sequence > ")
        .bind_int(position)
        .push(" AND o.sequence <= ")
        .bind_int(next_position)
        .push(" AND o.event_type = 'call_cdr' AND c.tenant_id = ")
        .bind_int(tenant);
    compile::push_own_row(&mut sql, user_id);
    if let Some(date_from) = date_from {
        sql.push(" AND c.started_at >= ").bind_int(date_from);
    }
    sql.push(" ORDER BY o.sequence, t.ordinal");
    let rows = conn.fetch_all_sql(&sql).await?;
    let created = cdrs::group(&rows)?;

    conn.execute(
        "INSERT INTO cdr_sync_tokens (token, tenant_id, user_id, position, date_from, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &args![next_token, tenant, user, next_position, date_from, now],
    )
    .await?;
    Ok(Some(SyncDiff {
        token: next_token.to_owned(),
        created,
        has_more,
    }))
}
