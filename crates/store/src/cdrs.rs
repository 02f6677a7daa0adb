//! CDR rows: written once at session end, read by REST.
//!
//! Every field of [`CdrRecord`] and [`TargetRecord`] has its own column, so
//! a record reads back exactly as the builder made it and every field can
//! be filtered on. Enums are stored in their event spellings (direction in
//! the classic vocabulary) and parsed back with the cdr crate's parsers.

use cdr::{
    CallStatus, CallType, CdrId, CdrRecord, Direction, DirectionVocabulary, EndReason, Party,
    Quality, Recording, RecordingError, RecordingFailure, RerouteReason, TargetRecord, TenantId,
};

use crate::convert::{
    db_id, db_ms, db_opt_ms, db_u64, get_id, get_ms, get_opt_id, get_opt_ms, get_opt_u64,
    get_spelled, get_u16, get_u64,
};
use crate::db::{Arg, Backend, Conn, Row, args};
use crate::error::StoreError;
use crate::query::compile::{self, DynConn, Sql};
use crate::query::{CdrQuery, CdrScope};

/// `INSERT INTO cdrs`: the column list of [`cdr_row`], in its order.
const INSERT_CDR: &str = "INSERT INTO cdrs (cdr_id, session_id, tenant_id, tenant_name, call_id, \
     direction, caller, caller_display_name, caller_domain, callee, callee_display_name, \
     callee_domain, did, trunk_name, outbound_caller_id, started_at, rang_at, answered_at, \
     ended_at, call_status, status_code, ended_reason, user_data, recording_id, recording_url, \
     recording_duration, recovered, reroute_reason, caller_user_id, callee_user_id, \
     recording_error_reason, recording_error_detail) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
     $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32)";

/// `INSERT INTO cdr_targets`: the column list of [`target_row`], in its
/// order.
const INSERT_TARGET: &str = "INSERT INTO cdr_targets (cdr_id, ordinal, target_id, call_type, \
     caller, callee, destination, started_at, rang_at, answered_at, ended_at, status_code, \
     end_reason, trunk_name, outbound_caller_id, did, reroute_reason, cost, quality_codec, \
     quality_packets, quality_lost, quality_jitter_ms, quality_mos, user_id) VALUES ($1, $2, \
     $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
     $22, $23, $24)";

pub(crate) async fn insert(conn: &mut impl Conn, r: &CdrRecord) -> Result<(), StoreError> {
    let row = cdr_row(r)?;
    conn.execute(INSERT_CDR, &row).await?;
    let cdr_id = db_id("cdr_id", r.cdr_id.id())?;
    for (ordinal, t) in (0_i64..).zip(&r.targets) {
        conn.execute(INSERT_TARGET, &target_row(cdr_id, ordinal, t)?)
            .await?;
    }
    Ok(())
}

/// The values of one `cdrs` row, in the column order of [`INSERT_CDR`]
/// (and of the PostgreSQL batch insert, `pg_commit.rs`).
pub(crate) fn cdr_row(r: &CdrRecord) -> Result<[Arg<'_>; 32], StoreError> {
    let cdr_id = db_id("cdr_id", r.cdr_id.id())?;
    let recording_id = r
        .recording
        .as_ref()
        .map(|rec| db_id("recording.id", rec.id))
        .transpose()?;
    let recording_duration = r
        .recording
        .as_ref()
        .map(|rec| db_u64("recording.duration", rec.duration))
        .transpose()?;
    Ok(args![
        cdr_id,
        db_id("session_id", r.session_id.id())?,
        db_id("tenant_id", r.tenant_id.id())?,
        r.tenant_name.as_str(),
        r.call_id.as_str(),
        r.direction.event_spelling(DirectionVocabulary::Classic),
        r.caller.user.as_str(),
        r.caller.display_name.as_str(),
        r.caller.domain.as_str(),
        r.callee.user.as_str(),
        r.callee.display_name.as_str(),
        r.callee.domain.as_str(),
        r.did.as_str(),
        r.trunk_name.as_str(),
        r.outbound_caller_id.as_str(),
        db_ms("start_time", r.start_time)?,
        db_opt_ms("ring_time", r.ring_time)?,
        db_opt_ms("answered_time", r.answered_time)?,
        db_ms("ended_time", r.ended_time)?,
        r.call_status.as_str(),
        i64::from(r.status_code),
        r.ended_reason.event_spelling(),
        r.user_data.as_str(),
        recording_id,
        r.recording.as_ref().map(|rec| rec.url.as_str()),
        recording_duration,
        r.recovered,
        r.reroute_reason().map(RerouteReason::rest_spelling),
        r.caller_user
            .map(|id| db_id("caller_user", id))
            .transpose()?,
        r.callee_user
            .map(|id| db_id("callee_user", id))
            .transpose()?,
        r.recording_error.as_ref().map(|e| e.reason.as_str()),
        r.recording_error.as_ref().map(|e| e.detail.as_str()),
    ])
}

/// The values of one `cdr_targets` row, in the column order of
/// [`INSERT_TARGET`] (and of the PostgreSQL batch insert).
pub(crate) fn target_row(
    cdr_id: i64,
    ordinal: i64,
    t: &TargetRecord,
) -> Result<[Arg<'_>; 24], StoreError> {
    let q = t.quality.as_ref();
    Ok(args![
        cdr_id,
        ordinal,
        db_id("target_id", t.id.id())?,
        t.call_type.as_str(),
        t.caller.as_str(),
        t.callee.as_str(),
        t.destination.as_str(),
        db_ms("target start_time", t.start_time)?,
        db_opt_ms("target ring_time", t.ring_time)?,
        db_opt_ms("target answered_time", t.answered_time)?,
        db_ms("target ended_time", t.ended_time)?,
        i64::from(t.status_code),
        t.end_reason.event_spelling(),
        t.trunk_name.as_str(),
        t.outbound_caller_id.as_str(),
        t.did.as_str(),
        t.reroute_reason.map(RerouteReason::rest_spelling),
        t.cost,
        q.map(|q| q.codec.as_str()),
        q.map(|q| db_u64("quality.packets", q.packets))
            .transpose()?,
        q.map(|q| db_u64("quality.lost", q.lost)).transpose()?,
        q.map(|q| q.jitter_ms),
        q.map(|q| q.mos),
        t.user.map(|id| db_id("target user", id)).transpose()?,
    ])
}

/// The columns every read selects: the call (`c`) and, through a LEFT
/// JOIN, its targets (`t`, prefixed `t_`, NULL for a call without any).
/// A macro so that it can be `concat!`ed into `&'static str` statements.
macro_rules! select_cdr_with_targets {
    () => {
        "SELECT c.cdr_id, c.session_id, c.tenant_id, c.tenant_name, c.call_id, c.direction, \
         c.caller, c.caller_display_name, c.caller_domain, c.callee, c.callee_display_name, \
         c.callee_domain, c.did, c.trunk_name, c.outbound_caller_id, c.started_at, c.rang_at, \
         c.answered_at, c.ended_at, c.call_status, c.status_code, c.ended_reason, c.user_data, \
         c.recording_id, c.recording_url, c.recording_duration, c.recovered, \
         c.recording_error_reason, c.recording_error_detail, \
         c.caller_user_id, c.callee_user_id, t.ordinal AS t_ordinal, t.target_id AS t_target_id, t.call_type AS t_call_type, \
         t.caller AS t_caller, t.callee AS t_callee, t.destination AS t_destination, \
         t.started_at AS t_started_at, t.rang_at AS t_rang_at, t.answered_at AS t_answered_at, \
         t.ended_at AS t_ended_at, t.status_code AS t_status_code, t.end_reason AS t_end_reason, \
         t.trunk_name AS t_trunk_name, t.outbound_caller_id AS t_outbound_caller_id, \
         t.did AS t_did, t.reroute_reason AS t_reroute_reason, t.cost AS t_cost, \
         t.quality_codec AS t_quality_codec, t.quality_packets AS t_quality_packets, \
         t.quality_lost AS t_quality_lost, t.quality_jitter_ms AS t_quality_jitter_ms, \
         t.quality_mos AS t_quality_mos, t.user_id AS t_user_id "
    };
}

/// A page of one tenant's CDRs, newest first. Selected and joined in one
/// statement so the page and its targets come from one snapshot.
const LIST: &str = concat!(
    select_cdr_with_targets!(),
    "FROM (SELECT cdr_id FROM cdrs WHERE tenant_id = $1 \
     ORDER BY started_at DESC, cdr_id DESC LIMIT $2 OFFSET $3) page \
     JOIN cdrs c ON c.cdr_id = page.cdr_id \
     LEFT JOIN cdr_targets t ON t.cdr_id = c.cdr_id \
     ORDER BY c.started_at DESC, c.cdr_id DESC, t.ordinal"
);

/// The same page, keyset-bounded: strictly after the cursor row in
/// (started_at DESC, cdr_id DESC) order.
const LIST_AFTER: &str = concat!(
    select_cdr_with_targets!(),
    "FROM (SELECT cdr_id FROM cdrs WHERE tenant_id = $1 \
     AND (started_at < $4 OR (started_at = $4 AND cdr_id < $5)) \
     ORDER BY started_at DESC, cdr_id DESC LIMIT $2 OFFSET $3) page \
     JOIN cdrs c ON c.cdr_id = page.cdr_id \
     LEFT JOIN cdr_targets t ON t.cdr_id = c.cdr_id \
     ORDER BY c.started_at DESC, c.cdr_id DESC, t.ordinal"
);

/// The select list of [`select_cdr_with_targets!`] as a fragment for
/// [`Sql`].
pub(crate) const SELECT_WITH_TARGETS: &str = select_cdr_with_targets!();

const GET: &str = concat!(
    select_cdr_with_targets!(),
    "FROM cdrs c LEFT JOIN cdr_targets t ON t.cdr_id = c.cdr_id \
     WHERE c.tenant_id = $1 AND c.cdr_id = $2 ORDER BY t.ordinal"
);

pub(crate) async fn list(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    top: u32,
    skip: u64,
    after: Option<CdrId>,
) -> Result<Vec<CdrRecord>, StoreError> {
    let tenant = db_id("tenant_id", tenant_id.id())?;
    let limit = i64::from(top);
    let offset = db_u64("skip", skip)?;
    let rows = match after {
        None => conn.fetch_all(LIST, &args![tenant, limit, offset]).await?,
        Some(cursor) => {
            let cursor_id = db_id("after", cursor.id())?;
            let started_at = conn
                .fetch_optional(
                    "SELECT started_at FROM cdrs WHERE tenant_id = $1 AND cdr_id = $2",
                    &args![tenant, cursor_id],
                )
                .await?
                .ok_or(StoreError::UnknownCursor(cursor))?
                .int("started_at")?;
            conn.fetch_all(
                LIST_AFTER,
                &args![tenant, limit, offset, started_at, cursor_id],
            )
            .await?
        }
    };
    group(&rows)
}

pub(crate) async fn get(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    cdr_id: CdrId,
) -> Result<Option<CdrRecord>, StoreError> {
    let rows = conn
        .fetch_all(
            GET,
            &args![
                db_id("tenant_id", tenant_id.id())?,
                db_id("cdr_id", cdr_id.id())?
            ],
        )
        .await?;
    Ok(group(&rows)?.pop())
}

pub(crate) async fn count(conn: &mut impl Conn, tenant_id: TenantId) -> Result<u64, StoreError> {
    let row = conn
        .fetch_optional(
            "SELECT COUNT(*) AS n FROM cdrs WHERE tenant_id = $1",
            &args![db_id("tenant_id", tenant_id.id())?],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("COUNT(*) returned no row".into()))?;
    get_u64(&row, "n")
}

/// One page of a [`CdrQuery`]: the records (with their targets) and, when
/// asked, how many rows match in all.
#[derive(Clone, Debug, PartialEq)]
pub struct CdrPage {
    pub count: Option<u64>,
    pub records: Vec<CdrRecord>,
}

/// Runs `query` in `tenant_id` for `scope`. The page's ids and their
/// targets come from one statement (one snapshot); the count, when asked,
/// from a second one.
pub(crate) async fn query(
    conn: &mut impl DynConn,
    backend: Backend,
    tenant_id: TenantId,
    scope: &CdrScope,
    query: &CdrQuery,
) -> Result<CdrPage, StoreError> {
    let tenant = db_id("tenant_id", tenant_id.id())?;
    let cursor = match query.after {
        None => None,
        Some(after) => {
            let statement =
                compile::cursor_statement(&query.order, tenant, db_id("after", after.id())?);
            let row = conn
                .fetch_optional_sql(&statement)
                .await?
                .ok_or(StoreError::UnknownCursor(after))?;
            Some(compile::read_cursor(&query.order, &row)?)
        }
    };
    let mut sql = Sql::new();
    sql.push(SELECT_WITH_TARGETS).push("FROM (");
    compile::push_page_ids(&mut sql, backend, tenant, scope, query, cursor.as_ref());
    sql.push(
        ") page JOIN cdrs c ON c.cdr_id = page.cdr_id \
         LEFT JOIN cdr_targets t ON t.cdr_id = c.cdr_id",
    );
    compile::push_order(&mut sql, &query.order);
    sql.push(", t.ordinal");
    let rows = conn.fetch_all_sql(&sql).await?;
    let records = group(&rows)?;
    let count = if query.count {
        let row = conn
            .fetch_optional_sql(&compile::count(backend, tenant, scope, query))
            .await?
            .ok_or_else(|| StoreError::Corrupt("COUNT(*) returned no row".into()))?;
        Some(get_u64(&row, "n")?)
    } else {
        None
    };
    Ok(CdrPage { count, records })
}

/// The database's plan for the statement that selects a page's ids
/// (SQLite's `EXPLAIN QUERY PLAN` details, PostgreSQL's `EXPLAIN`), one
/// line per step: what the index tests and the benchmark check.
pub(crate) async fn explain_page(
    conn: &mut impl DynConn,
    backend: Backend,
    tenant_id: TenantId,
    scope: &CdrScope,
    query: &CdrQuery,
) -> Result<Vec<String>, StoreError> {
    let tenant = db_id("tenant_id", tenant_id.id())?;
    let cursor = match query.after {
        None => None,
        Some(after) => {
            let statement =
                compile::cursor_statement(&query.order, tenant, db_id("after", after.id())?);
            let row = conn
                .fetch_optional_sql(&statement)
                .await?
                .ok_or(StoreError::UnknownCursor(after))?;
            Some(compile::read_cursor(&query.order, &row)?)
        }
    };
    let mut sql = Sql::new();
    let column = match backend {
        Backend::Sqlite => {
            sql.push("EXPLAIN QUERY PLAN ");
            "detail"
        }
        Backend::Postgres => {
            sql.push("EXPLAIN ");
            "QUERY PLAN"
        }
    };
    compile::push_page_ids(&mut sql, backend, tenant, scope, query, cursor.as_ref());
    let rows = conn.fetch_all_sql(&sql).await?;
    rows.iter()
        .map(|row| row.text(column).map_err(StoreError::from))
        .collect()
}

/// The extension of user `user_id` in the tenant, if it exists.
pub(crate) async fn user_extension(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    user_id: cdr::Id,
) -> Result<Option<String>, StoreError> {
    let row = conn
        .fetch_optional(
            "SELECT extension FROM users WHERE tenant_id = $1 AND id = $2",
            &args![
                db_id("tenant_id", tenant_id.id())?,
                db_id("user_id", user_id)?
            ],
        )
        .await?;
    row.map(|row| row.text("extension"))
        .transpose()
        .map_err(Into::into)
}

/// Folds call-plus-target rows (ordered by call, then target) into records.
pub(crate) fn group(rows: &[impl Row]) -> Result<Vec<CdrRecord>, StoreError> {
    let mut records: Vec<CdrRecord> = Vec::new();
    for row in rows {
        let cdr_id: CdrId = get_id(row, "cdr_id")?;
        if records.last().is_none_or(|last| last.cdr_id != cdr_id) {
            records.push(cdr_from_row(row)?);
        }
        if row.opt_int("t_ordinal")?.is_some()
            && let Some(record) = records.last_mut()
        {
            record.targets.push(target_from_row(row)?);
        }
    }
    Ok(records)
}

pub(crate) fn cdr_from_row(row: &impl Row) -> Result<CdrRecord, StoreError> {
    let recording = match row.opt_int("recording_id")? {
        None => None,
        Some(_) => Some(Recording {
            id: get_id(row, "recording_id")?,
            url: row.opt_text("recording_url")?.unwrap_or_default(),
            duration: get_opt_u64(row, "recording_duration")?.unwrap_or_default(),
        }),
    };
    let recording_error = match row.opt_text("recording_error_reason")? {
        None => None,
        Some(reason) => Some(RecordingError {
            reason: RecordingFailure::parse(&reason)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            detail: row.opt_text("recording_error_detail")?.unwrap_or_default(),
        }),
    };
    Ok(CdrRecord {
        session_id: get_id(row, "session_id")?,
        cdr_id: get_id(row, "cdr_id")?,
        tenant_id: get_id(row, "tenant_id")?,
        tenant_name: row.text("tenant_name")?,
        call_id: row.text("call_id")?,
        direction: get_spelled(row, "direction", Direction::parse_event)?,
        caller: Party {
            user: row.text("caller")?,
            display_name: row.text("caller_display_name")?,
            domain: row.text("caller_domain")?,
        },
        callee: Party {
            user: row.text("callee")?,
            display_name: row.text("callee_display_name")?,
            domain: row.text("callee_domain")?,
        },
        did: row.text("did")?,
        trunk_name: row.text("trunk_name")?,
        outbound_caller_id: row.text("outbound_caller_id")?,
        start_time: get_ms(row, "started_at")?,
        ring_time: get_opt_ms(row, "rang_at")?,
        answered_time: get_opt_ms(row, "answered_at")?,
        ended_time: get_ms(row, "ended_at")?,
        call_status: get_spelled(row, "call_status", CallStatus::parse)?,
        status_code: get_u16(row, "status_code")?,
        ended_reason: get_spelled(row, "ended_reason", EndReason::parse_event)?,
        user_data: row.text("user_data")?,
        recording,
        recording_error,
        recovered: row.boolean("recovered")?,
        targets: Vec::new(),
        caller_user: get_opt_id(row, "caller_user_id")?,
        callee_user: get_opt_id(row, "callee_user_id")?,
    })
}

fn target_from_row(row: &impl Row) -> Result<TargetRecord, StoreError> {
    let quality = match row.opt_text("t_quality_codec")? {
        None => None,
        Some(codec) => Some(Quality {
            codec,
            packets: get_opt_u64(row, "t_quality_packets")?.unwrap_or_default(),
            lost: get_opt_u64(row, "t_quality_lost")?.unwrap_or_default(),
            jitter_ms: row.opt_real("t_quality_jitter_ms")?.unwrap_or_default(),
            mos: row.opt_real("t_quality_mos")?.unwrap_or_default(),
        }),
    };
    let reroute_reason = match row.opt_text("t_reroute_reason")? {
        None => None,
        Some(text) => Some(
            RerouteReason::parse_rest(&text)
                .map_err(|e| StoreError::Corrupt(format!("t_reroute_reason: {e}")))?,
        ),
    };
    Ok(TargetRecord {
        id: get_id(row, "t_target_id")?,
        call_type: get_spelled(row, "t_call_type", CallType::parse)?,
        caller: row.text("t_caller")?,
        callee: row.text("t_callee")?,
        destination: row.text("t_destination")?,
        start_time: get_ms(row, "t_started_at")?,
        ring_time: get_opt_ms(row, "t_rang_at")?,
        answered_time: get_opt_ms(row, "t_answered_at")?,
        ended_time: get_ms(row, "t_ended_at")?,
        status_code: get_u16(row, "t_status_code")?,
        end_reason: get_spelled(row, "t_end_reason", EndReason::parse_event)?,
        trunk_name: row.text("t_trunk_name")?,
        outbound_caller_id: row.text("t_outbound_caller_id")?,
        did: row.text("t_did")?,
        reroute_reason,
        cost: row.opt_real("t_cost")?,
        quality,
        user: get_opt_id(row, "t_user_id")?,
    })
}
