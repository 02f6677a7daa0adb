//! Call recordings (SPEC §7): one row per WAV file the media relay wrote,
//! linked to its CDR by `session_id`.
//!
//! The store keeps the metadata and the file's path relative to the
//! recordings directory; the files themselves are the binary's business
//! (it deletes a file after its row). Lists are tenant-scoped, newest
//! first, keyset-paged by `(started_at, id)`, and can be narrowed to a
//! time range, to calls where a number is caller or callee, and to one
//! user's own calls (a StandardUser's view).

use cdr::{Id, SessionId, TenantId, UnixMillis};

use crate::Store;
use crate::convert::{db_id, db_ms, db_u64, get_id, get_ms, get_u64};
use crate::db::{Conn, Row, args, with_conn, with_write_tx};
use crate::error::StoreError;

/// One stored recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    pub id: Id,
    pub tenant_id: TenantId,
    pub session_id: SessionId,
    pub caller: String,
    pub callee: String,
    pub started_at: UnixMillis,
    pub duration_ms: u64,
    pub size_bytes: u64,
    /// Relative to the recordings directory.
    pub path: String,
    pub created_at: UnixMillis,
}

/// What a list asks for; every field narrows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordingFilter {
    /// `started_at >= from`.
    pub from: Option<UnixMillis>,
    /// `started_at < to`.
    pub to: Option<UnixMillis>,
    /// Caller or callee is this number.
    pub number: Option<String>,
    /// Only calls this extension took part in (caller or callee).
    pub own: Option<String>,
    /// Keyset cursor: only rows older than this recording (by
    /// `(started_at, id)`).
    pub after: Option<(UnixMillis, Id)>,
}

const COLUMNS: &str = "id, tenant_id, session_id, caller, callee, started_at, duration_ms, size_bytes, path, created_at";

fn from_row(row: &impl Row) -> Result<Recording, StoreError> {
    Ok(Recording {
        id: get_id(row, "id")?,
        tenant_id: get_id(row, "tenant_id")?,
        session_id: get_id(row, "session_id")?,
        caller: row.text("caller")?,
        callee: row.text("callee")?,
        started_at: get_ms(row, "started_at")?,
        duration_ms: get_u64(row, "duration_ms")?,
        size_bytes: get_u64(row, "size_bytes")?,
        path: row.text("path")?,
        created_at: get_ms(row, "created_at")?,
    })
}

impl Store {
    /// Adds a recording; a second row for the same session is refused
    /// ([`StoreError::Conflict`]-like errors come back from the database).
    pub async fn insert_recording(&self, r: &Recording) -> Result<(), StoreError> {
        with_write_tx!(&self.pool, |conn| insert(conn, r))
    }

    /// A tenant's recordings, newest first, at most `limit`.
    pub async fn recordings(
        &self,
        tenant_id: TenantId,
        filter: &RecordingFilter,
        limit: u32,
    ) -> Result<Vec<Recording>, StoreError> {
        with_conn!(&self.pool, |conn| list(conn, tenant_id, filter, limit))
    }

    /// One recording of the tenant; `None` for another tenant's id.
    pub async fn recording(
        &self,
        tenant_id: TenantId,
        id: Id,
    ) -> Result<Option<Recording>, StoreError> {
        with_conn!(&self.pool, |conn| get(conn, tenant_id, id))
    }

    /// The recording of a session, whatever its tenant (the CDR link).
    pub async fn recording_of_session(
        &self,
        session_id: SessionId,
    ) -> Result<Option<Recording>, StoreError> {
        with_conn!(&self.pool, |conn| by_session(conn, session_id))
    }

    /// Deletes one recording's row and returns it (the caller deletes the
    /// file); `None` when the tenant has no such recording.
    pub async fn delete_recording(
        &self,
        tenant_id: TenantId,
        id: Id,
    ) -> Result<Option<Recording>, StoreError> {
        with_write_tx!(&self.pool, |conn| delete(conn, tenant_id, id))
    }

    /// Retention: deletes up to `limit` recordings created before `before`
    /// and returns them (oldest first) so their files can be deleted.
    pub async fn prune_recordings(
        &self,
        before: UnixMillis,
        limit: u32,
    ) -> Result<Vec<Recording>, StoreError> {
        with_write_tx!(&self.pool, |conn| prune(conn, before, limit))
    }
}

async fn insert(conn: &mut impl Conn, r: &Recording) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO recordings (id, tenant_id, session_id, caller, callee, started_at, \
         duration_ms, size_bytes, path, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &args![
            db_id("id", r.id)?,
            db_id("tenant_id", r.tenant_id.id())?,
            db_id("session_id", r.session_id.id())?,
            r.caller.as_str(),
            r.callee.as_str(),
            db_ms("started_at", r.started_at)?,
            db_u64("duration_ms", r.duration_ms)?,
            db_u64("size_bytes", r.size_bytes)?,
            r.path.as_str(),
            db_ms("created_at", r.created_at)?,
        ],
    )
    .await?;
    Ok(())
}

async fn list(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    f: &RecordingFilter,
    limit: u32,
) -> Result<Vec<Recording>, StoreError> {
    // One statement; an absent filter is a NULL parameter that matches
    // everything, so the SQL is fixed and always bound.
    const SQL: &str = "SELECT id, tenant_id, session_id, caller, callee, started_at, duration_ms, \
         size_bytes, path, created_at FROM recordings WHERE tenant_id = $1 \
         AND ($2 IS NULL OR started_at >= $2) AND ($3 IS NULL OR started_at < $3) \
         AND ($4 IS NULL OR caller = $4 OR callee = $4) \
         AND ($5 IS NULL OR caller = $5 OR callee = $5) \
         AND ($6 IS NULL OR started_at < $6 OR (started_at = $6 AND id < $7)) \
         ORDER BY started_at DESC, id DESC LIMIT $8";
    debug_assert!(SQL.contains(COLUMNS));
    let from = f.from.map(|t| db_ms("from", t)).transpose()?;
    let to = f.to.map(|t| db_ms("to", t)).transpose()?;
    let after_at = f.after.map(|(t, _)| db_ms("after", t)).transpose()?;
    let after_id = f.after.map(|(_, id)| db_id("after", id)).transpose()?;
    conn.fetch_all(
        SQL,
        &args![
            db_id("tenant_id", tenant_id.id())?,
            from,
            to,
            f.number.as_deref(),
            f.own.as_deref(),
            after_at,
            after_id,
            i64::from(limit),
        ],
    )
    .await?
    .iter()
    .map(from_row)
    .collect()
}

async fn get(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    id: Id,
) -> Result<Option<Recording>, StoreError> {
    conn.fetch_optional(
        "SELECT id, tenant_id, session_id, caller, callee, started_at, duration_ms, size_bytes, \
         path, created_at FROM recordings WHERE id = $1 AND tenant_id = $2",
        &args![db_id("id", id)?, db_id("tenant_id", tenant_id.id())?],
    )
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

async fn by_session(
    conn: &mut impl Conn,
    session_id: SessionId,
) -> Result<Option<Recording>, StoreError> {
    conn.fetch_optional(
        "SELECT id, tenant_id, session_id, caller, callee, started_at, duration_ms, size_bytes, \
         path, created_at FROM recordings WHERE session_id = $1",
        &args![db_id("session_id", session_id.id())?],
    )
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

async fn delete(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    id: Id,
) -> Result<Option<Recording>, StoreError> {
    let Some(r) = get(conn, tenant_id, id).await? else {
        return Ok(None);
    };
    conn.execute(
        "DELETE FROM recordings WHERE id = $1 AND tenant_id = $2",
        &args![db_id("id", id)?, db_id("tenant_id", tenant_id.id())?],
    )
    .await?;
    Ok(Some(r))
}

async fn prune(
    conn: &mut impl Conn,
    before: UnixMillis,
    limit: u32,
) -> Result<Vec<Recording>, StoreError> {
    let before = i64::try_from(before.0).unwrap_or(i64::MAX);
    let rows: Vec<Recording> = conn
        .fetch_all(
            "SELECT id, tenant_id, session_id, caller, callee, started_at, duration_ms, \
             size_bytes, path, created_at FROM recordings WHERE created_at < $1 \
             ORDER BY created_at, id LIMIT $2",
            &args![before, i64::from(limit)],
        )
        .await?
        .iter()
        .map(from_row)
        .collect::<Result<_, _>>()?;
    for r in &rows {
        conn.execute(
            "DELETE FROM recordings WHERE id = $1",
            &args![db_id("id", r.id)?],
        )
        .await?;
    }
    Ok(rows)
}
