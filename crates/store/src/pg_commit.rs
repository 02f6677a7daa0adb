//! The group commit on PostgreSQL: the transaction `commit.rs` writes,
//! in a fixed number of statements per batch instead of about ten per
//! command.
//!
//! On PostgreSQL every statement is a round trip to the server, which the
//! writer's one connection waits for. Statement by statement, a call's
//! commands cost about fifteen round trips, and at about 1,000 calls/s the
//! writer spent all its time waiting for them: CDRs fell behind the calls
//! (bench/README.md, issue 18). Here each kind of row of the whole batch
//! goes in one statement whose values are bound as arrays (one array per
//! column, `UNNEST`ed into rows), so a batch of any size costs the same
//! round trips: `BEGIN`, the sequence counters (global, then one per
//! tenant), the sessions, the outbox rows, the journal, the CDRs, their
//! targets, the two deletes of closed sessions' open state, `COMMIT`.
//! sqlx prepares each statement once per connection.
//!
//! The outcome is the one `commit::write_batch` gives, command by command:
//!
//! * rows are the same, sequences are taken in batch order;
//! * a session touched by several commands of the batch is upserted once
//!   (started when the first command says, last activity the latest);
//! * journal ordinals continue the session's journal in batch order (the
//!   statement's own rows are not visible to its `MAX(ordinal)`);
//! * a command for a session whose CDR is committed is refused
//!   ([`StoreError::SessionClosed`]), and so is one that follows the
//!   command closing its session in the same batch: the writer then
//!   commits the batch's commands one by one, where the order decides;
//! * any refused row fails the whole statement, hence the batch, which the
//!   writer splits the same way.
//!
//! SQLite keeps the statement-per-row path: its statements run in place
//! on the writer's thread and cost no round trip (`lite.rs`).

use std::collections::{HashMap, HashSet};

use cdr::{CdrRecord, WireProfile};
use sqlx::PgConnection;

use crate::cdrs::{cdr_row, target_row};
use crate::commit::{Assigned, Prepared, counter_value, reserve};
use crate::convert::db_id;
use crate::db::Arg;
use crate::error::StoreError;

/// Sessions opened or moved forward; the ones whose CDR exists are left
/// out of `RETURNING`.
const UPSERT_SESSIONS: &str = "INSERT INTO sessions (session_id, tenant_id, started_at, \
     last_activity_at) \
     SELECT u.session_id, u.tenant_id, u.started_at, u.last_activity_at \
     FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[]) \
     AS u (session_id, tenant_id, started_at, last_activity_at) \
     WHERE NOT EXISTS (SELECT 1 FROM cdrs WHERE cdrs.session_id = u.session_id) \
     ON CONFLICT (session_id) DO UPDATE SET last_activity_at = CASE \
     WHEN excluded.last_activity_at > sessions.last_activity_at \
     THEN excluded.last_activity_at ELSE sessions.last_activity_at END \
     RETURNING session_id";

const INSERT_OUTBOX: &str = "INSERT INTO outbox (tenant_id, sequence, global_sequence, event_id, \
     event_type, session_id, created_at, payload) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], \
     $6::BIGINT[], $7::BIGINT[], $8::TEXT[])";

/// `k`: the event's place among the batch's events of its session.
const INSERT_JOURNAL: &str = "INSERT INTO session_events (session_id, ordinal, event) \
     SELECT u.session_id, u.k + COALESCE((SELECT MAX(e.ordinal) + 1 FROM session_events e \
     WHERE e.session_id = u.session_id), 0), u.event \
     FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[]) AS u (session_id, k, event)";

/// The columns of `cdrs::cdr_row`, in its order.
const INSERT_CDRS: &str = "INSERT INTO cdrs (cdr_id, session_id, tenant_id, tenant_name, call_id, \
     direction, caller, caller_display_name, caller_domain, callee, callee_display_name, \
     callee_domain, did, trunk_name, outbound_caller_id, started_at, rang_at, answered_at, \
     ended_at, call_status, status_code, ended_reason, user_data, recording_id, recording_url, \
     recording_duration, recovered, reroute_reason, caller_user_id, callee_user_id, \
     recording_error_reason, recording_error_detail) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], \
     $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::TEXT[], \
     $13::TEXT[], $14::TEXT[], $15::TEXT[], $16::BIGINT[], $17::BIGINT[], $18::BIGINT[], \
     $19::BIGINT[], $20::TEXT[], $21::BIGINT[], $22::TEXT[], $23::TEXT[], $24::BIGINT[], \
     $25::TEXT[], $26::BIGINT[], $27::BOOLEAN[], $28::TEXT[], $29::BIGINT[], $30::BIGINT[], \
     $31::TEXT[], $32::TEXT[])";

/// The columns of `cdrs::target_row`, in its order.
const INSERT_TARGETS: &str = "INSERT INTO cdr_targets (cdr_id, ordinal, target_id, call_type, \
     caller, callee, destination, started_at, rang_at, answered_at, ended_at, status_code, \
     end_reason, trunk_name, outbound_caller_id, did, reroute_reason, cost, quality_codec, \
     quality_packets, quality_lost, quality_jitter_ms, quality_mos, user_id) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], \
     $6::TEXT[], $7::TEXT[], $8::BIGINT[], $9::BIGINT[], $10::BIGINT[], $11::BIGINT[], \
     $12::BIGINT[], $13::TEXT[], $14::TEXT[], $15::TEXT[], $16::TEXT[], $17::TEXT[], \
     $18::DOUBLE PRECISION[], $19::TEXT[], $20::BIGINT[], $21::BIGINT[], \
     $22::DOUBLE PRECISION[], $23::DOUBLE PRECISION[], $24::BIGINT[])";

const DELETE_JOURNALS: &str = "DELETE FROM session_events WHERE session_id = ANY($1::BIGINT[])";
const DELETE_SESSIONS: &str = "DELETE FROM sessions WHERE session_id = ANY($1::BIGINT[])";

/// Writes `batch` (in order) into the open transaction on `conn`; the
/// PostgreSQL twin of `commit::write_batch` (same lock order: the
/// sequence counters are reserved first, by `commit::reserve`).
pub(crate) async fn write_batch(
    conn: &mut PgConnection,
    batch: &[&Prepared],
    profile: &WireProfile,
    now: i64,
) -> Result<Assigned, StoreError> {
    refuse_use_after_close(batch)?;
    let mut counters = reserve(&mut *conn, batch).await?;

    // Sessions: one row each, in order of first appearance.
    let mut opened: Vec<[i64; 4]> = Vec::new();
    let mut opened_at: HashMap<i64, usize> = HashMap::new();
    // Outbox rows: owned text first, rows over it below.
    let mut outbox: Vec<(i64, i64, i64, String, &'static str, i64, String)> = Vec::new();
    let mut journal: Vec<(i64, i64, &str)> = Vec::new();
    let mut journaled: HashMap<i64, i64> = HashMap::new();
    let mut closing: Vec<(i64, &CdrRecord)> = Vec::new();
    let mut sequences = Vec::with_capacity(batch.len());
    for p in batch {
        let record = p.command.record();
        if record.is_none() && !p.command.wire.is_empty() {
            match opened_at.get(&p.session) {
                Some(&i) => opened[i][3] = opened[i][3].max(p.last_at),
                None => {
                    opened_at.insert(p.session, opened.len());
                    opened.push([p.session, p.tenant, p.first_at, p.last_at]);
                }
            }
        }
        let mut assigned = Vec::with_capacity(p.command.wire.len());
        for wire in &p.command.wire {
            let (seq, global) = counters.take(p.tenant)?;
            let seq_u64 = counter_value("tenant_sequences.last_sequence", seq)?;
            outbox.push((
                p.tenant,
                seq,
                global,
                wire.event_id().to_string(),
                wire.event_type().as_str(),
                p.session,
                wire.to_json(seq_u64, profile)?,
            ));
            assigned.push(seq_u64);
        }
        match record {
            Some(record) => closing.push((p.session, record)),
            None => {
                let k = journaled.entry(p.session).or_default();
                for event in &p.journal {
                    journal.push((p.session, *k, event.as_str()));
                    *k += 1;
                }
            }
        }
        sequences.push(assigned);
    }

    if !opened.is_empty() {
        let rows: Vec<[Arg<'_>; 4]> = opened
            .iter()
            .map(|row| row.map(|v| Arg::Int(Some(v))))
            .collect();
        let touched: HashSet<i64> = bind_columns(UPSERT_SESSIONS, &rows)?
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| sqlx::Row::try_get::<i64, _>(row, 0))
            .collect::<Result<_, _>>()?;
        if let Some(closed) = batch
            .iter()
            .find(|p| opened_at.contains_key(&p.session) && !touched.contains(&p.session))
        {
            return Err(StoreError::SessionClosed(closed.command.session_id));
        }
    }
    if !outbox.is_empty() {
        let rows: Vec<[Arg<'_>; 8]> = outbox
            .iter()
            .map(
                |(tenant, seq, global, event_id, event_type, session, payload)| {
                    [
                        Arg::Int(Some(*tenant)),
                        Arg::Int(Some(*seq)),
                        Arg::Int(Some(*global)),
                        Arg::Text(Some(event_id)),
                        Arg::Text(Some(event_type)),
                        Arg::Int(Some(*session)),
                        Arg::Int(Some(now)),
                        Arg::Text(Some(payload)),
                    ]
                },
            )
            .collect();
        execute_columns(conn, INSERT_OUTBOX, &rows).await?;
    }
    if !journal.is_empty() {
        let rows: Vec<[Arg<'_>; 3]> = journal
            .iter()
            .map(|(session, k, event)| {
                [
                    Arg::Int(Some(*session)),
                    Arg::Int(Some(*k)),
                    Arg::Text(Some(event)),
                ]
            })
            .collect();
        execute_columns(conn, INSERT_JOURNAL, &rows).await?;
    }
    if !closing.is_empty() {
        let cdrs = closing
            .iter()
            .map(|(_, record)| cdr_row(record))
            .collect::<Result<Vec<_>, _>>()?;
        execute_columns(conn, INSERT_CDRS, &cdrs).await?;
        let mut targets = Vec::new();
        for (_, record) in &closing {
            let cdr_id = db_id("cdr_id", record.cdr_id.id())?;
            for (ordinal, target) in (0_i64..).zip(&record.targets) {
                targets.push(target_row(cdr_id, ordinal, target)?);
            }
        }
        if !targets.is_empty() {
            execute_columns(conn, INSERT_TARGETS, &targets).await?;
        }
        let sessions: Vec<i64> = closing.iter().map(|(session, _)| *session).collect();
        for delete in [DELETE_JOURNALS, DELETE_SESSIONS] {
            sqlx::query(delete)
                .bind(&sessions)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(Assigned {
        sequences,
        last_global: counters.last_global()?,
    })
}

/// A command after the one that closed its session, in the same batch,
/// is refused as it would be in a transaction of its own (and the writer
/// then commits the batch command by command). Rows for such a command
/// would otherwise be written before the close that ought to refuse them.
fn refuse_use_after_close(batch: &[&Prepared]) -> Result<(), StoreError> {
    let mut closed = HashSet::new();
    for p in batch {
        if closed.contains(&p.session) {
            return Err(StoreError::SessionClosed(p.command.session_id));
        }
        if p.command.record().is_some() {
            closed.insert(p.session);
        }
    }
    Ok(())
}

/// One column of a multi-row statement: the values of one `$n` array.
enum Column<'a> {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<&'a str>>),
    Real(Vec<Option<f64>>),
    Bool(Vec<bool>),
}

/// `sql` with `rows` bound column by column (`$n` is the array of every
/// row's `n`th value). Each column takes the type of its first row's value;
/// the rows come from one row function, so a column never mixes types
/// (refused as a protocol error if one did).
fn bind_columns<'a, const N: usize>(
    sql: &'static str,
    rows: &[[Arg<'a>; N]],
) -> Result<sqlx::query::Query<'a, sqlx::Postgres, sqlx::postgres::PgArguments>, sqlx::Error> {
    let mut columns: Vec<Column<'a>> = match rows.first() {
        Some(first) => first
            .iter()
            .map(|arg| match arg {
                Arg::Int(_) => Column::Int(Vec::with_capacity(rows.len())),
                Arg::Text(_) => Column::Text(Vec::with_capacity(rows.len())),
                Arg::Real(_) => Column::Real(Vec::with_capacity(rows.len())),
                Arg::Bool(_) => Column::Bool(Vec::with_capacity(rows.len())),
                // No batch writes blobs; refused below as a type mix.
                Arg::Bytes(_) => Column::Int(Vec::new()),
            })
            .collect(),
        None => (0..N).map(|_| Column::Int(Vec::new())).collect(),
    };
    for row in rows {
        for (n, (column, arg)) in columns.iter_mut().zip(row).enumerate() {
            match (column, *arg) {
                (Column::Int(values), Arg::Int(value)) => values.push(value),
                (Column::Text(values), Arg::Text(value)) => values.push(value),
                (Column::Real(values), Arg::Real(value)) => values.push(value),
                (Column::Bool(values), Arg::Bool(value)) => values.push(value),
                _ => {
                    return Err(sqlx::Error::Protocol(format!(
                        "column ${} mixes value types",
                        n + 1
                    )));
                }
            }
        }
    }
    Ok(columns
        .into_iter()
        .fold(sqlx::query(sql), |query, column| match column {
            Column::Int(values) => query.bind(values),
            Column::Text(values) => query.bind(values),
            Column::Real(values) => query.bind(values),
            Column::Bool(values) => query.bind(values),
        }))
}

async fn execute_columns<const N: usize>(
    conn: &mut PgConnection,
    sql: &'static str,
    rows: &[[Arg<'_>; N]],
) -> Result<u64, sqlx::Error> {
    Ok(bind_columns(sql, rows)?
        .execute(conn)
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_that_mixes_types_is_refused() {
        let rows = [[Arg::Int(Some(1))], [Arg::Text(Some("x"))]];
        let error = bind_columns("SELECT 1", &rows).err().expect("refused");
        assert!(error.to_string().contains("$1 mixes"), "{error}");
        let same = [[Arg::Int(Some(1))], [Arg::Int(None)]];
        assert!(bind_columns("SELECT 1", &same).is_ok());
    }
}
