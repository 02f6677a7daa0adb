//! `GET /api/cdrs/export`: every matching CDR as CSV or JSON Lines,
//! streamed with constant memory.
//!
//! The statement's rows are read as the database sends them (sqlx streams
//! both backends' rows; nothing collects them) by a task that formats them
//! into chunks of about [`CHUNK_BYTES`] and hands them over a channel of
//! [`CHANNEL_CHUNKS`] slots: memory is bounded by the chunk size times the
//! slots, whatever the row count, and a slow client slows the query down
//! instead of filling memory. A client that goes away drops the receiver;
//! the task's next send fails and it drops the row stream, which ends the
//! query. An error after the first chunk can only end the stream with an
//! `Err` (the HTTP status has been sent): the client sees a truncated
//! transfer, never a short file that looks complete.
//!
//! # Limits (security review, finding 1)
//!
//! An export holds a pooled connection while it runs, so it is bounded
//! three ways ([`ExportLimits`], [`ExportSlots`]):
//! * a client that takes nothing for [`ExportLimits::stall`] loses the
//!   export: the task stops waiting, drops the row stream and gives the
//!   connection back (the HTTP layer closes the stalled socket on its own
//!   write deadline);
//! * the whole export ends after [`ExportLimits::total`]: PostgreSQL's
//!   `statement_timeout` for the export's transaction, a progress handler on
//!   SQLite (`query::deadline`), and a timer around both;
//! * at most `per_tenant` exports of one tenant and `total` in all run at
//!   once; the API answers the next one 429 with `Retry-After`, so exports
//!   can never take every connection of the pool.
//!
//! Rows are the list items of `GET /api/cdrs`, read without the targets:
//! the call's `reroute_reason` (its first rerouted target's) is kept on the
//! `cdrs` row at commit (migration 0005), which the export reads instead.
//!
//! * JSON Lines: one [`cdr::CdrRecord::rest_item`] object per line, times
//!   in UTC exactly as REST spells them.
//! * CSV (RFC 4180, CRLF, header row): the same fields, times in the
//!   tenant's time zone with their offset (`2026-11-28T15:03:07.123+01:00`,
//!   as PortSIP's console shows times), empty when the moment did not
//!   happen. A cell that a spreadsheet would run as a formula (starting
//!   with `=`, `@`, a tab or CR, or `+`/`-` not followed by a digit) is
//!   prefixed with `'`; phone numbers like `+4930…` stay as they are.
//!
//! Time zones come from `jiff` with its bundled IANA database
//! (`tzdb-bundle-always`): conversions do not depend on the host's
//! `/usr/share/zoneinfo` (absent in minimal containers), and jiff is
//! maintained, small with default features off, and correct across DST
//! transitions.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdr::{CdrRecord, RerouteReason, TenantId, UnixMillis};
use futures_util::StreamExt as _;
use futures_util::stream::Stream;

use crate::cdrs;
use crate::db::{Backend, Pool, Row};
use crate::error::StoreError;
use crate::query::compile::{self, Sql};
use crate::query::deadline;
use crate::query::{CdrQuery, CdrScope};

/// Bytes per chunk handed to the body (flushed when a row crosses it).
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the query task and the response body.
pub const CHANNEL_CHUNKS: usize = 4;

/// Deadlines of one export (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportLimits {
    /// The longest the client may take nothing before the export stops.
    pub stall: Duration,
    /// The longest an export may run.
    pub total: Duration,
}

impl Default for ExportLimits {
    fn default() -> Self {
        Self {
            stall: Duration::from_secs(30),
            total: Duration::from_secs(15 * 60),
        }
    }
}

/// Exports running at once, per tenant and in all.
#[derive(Debug)]
pub struct ExportSlots {
    per_tenant: usize,
    total: usize,
    /// The deadlines of every export run in these slots.
    limits: ExportLimits,
    running: Mutex<Running>,
}

#[derive(Debug, Default)]
struct Running {
    all: usize,
    by_tenant: HashMap<TenantId, usize>,
}

impl ExportSlots {
    /// At least one of each.
    pub fn new(per_tenant: usize, total: usize, limits: ExportLimits) -> Arc<Self> {
        Arc::new(Self {
            per_tenant: per_tenant.max(1),
            total: total.max(1),
            limits,
            running: Mutex::new(Running::default()),
        })
    }

    /// A slot for one export of `tenant`, or `None` when the tenant or
    /// the node runs as many as allowed.
    pub fn try_acquire(self: &Arc<Self>, tenant: TenantId) -> Option<ExportSlot> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mine = running.by_tenant.get(&tenant).copied().unwrap_or(0);
        if mine >= self.per_tenant || running.all >= self.total {
            return None;
        }
        running.all += 1;
        running.by_tenant.insert(tenant, mine + 1);
        Some(ExportSlot {
            slots: Arc::clone(self),
            tenant,
        })
    }
}

/// One running export; its slot is free again when this drops (when the
/// export's task ends, whatever the client does).
#[derive(Debug)]
pub struct ExportSlot {
    slots: Arc<ExportSlots>,
    tenant: TenantId,
}

impl ExportSlot {
    /// The deadlines of the export run in this slot.
    pub fn limits(&self) -> ExportLimits {
        self.slots.limits
    }
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        let mut running = self.slots.running.lock().unwrap_or_else(|e| e.into_inner());
        running.all = running.all.saturating_sub(1);
        if let Some(n) = running.by_tenant.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.by_tenant.remove(&self.tenant);
            }
        }
    }
}

/// The export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

impl ExportFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(Self::Csv),
            "jsonl" => Some(Self::Jsonl),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Jsonl => "application/jsonl; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
        }
    }
}

/// A time zone for CSV times: an IANA name from the bundled database.
#[derive(Clone, Debug)]
pub struct ExportZone(jiff::tz::TimeZone);

/// The name is not in the IANA time zone database.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?}")]
pub struct UnknownZone(pub String);

impl ExportZone {
    pub fn utc() -> Self {
        Self(jiff::tz::TimeZone::UTC)
    }

    /// `Europe/Berlin`, `America/New_York`, `UTC`…
    pub fn named(name: &str) -> Result<Self, UnknownZone> {
        jiff::tz::TimeZone::get(name)
            .map(Self)
            .map_err(|_| UnknownZone(name.to_owned()))
    }

    /// `2026-11-28T15:03:07.123+01:00`; `""` for `None`.
    pub fn format(&self, at: Option<UnixMillis>, out: &mut String) {
        let Some(at) = at else { return };
        let Ok(ms) = i64::try_from(at.as_millis()) else {
            return;
        };
        let Ok(timestamp) = jiff::Timestamp::from_millisecond(ms) else {
            return;
        };
        let offset = self.0.to_offset(timestamp);
        let dt = offset.to_datetime(timestamp);
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.millisecond()
        );
        let seconds = offset.seconds();
        let sign = if seconds < 0 { '-' } else { '+' };
        let seconds = seconds.unsigned_abs();
        let _ = write!(out, "{sign}{:02}:{:02}", seconds / 3600, seconds / 60 % 60);
    }
}

/// The CSV header.
pub const CSV_COLUMNS: [&str; 23] = [
    "id",
    "session_id",
    "call_id",
    "direction",
    "caller",
    "caller_display_name",
    "caller_domain",
    "callee",
    "callee_display_name",
    "callee_domain",
    "started_at",
    "rang_at",
    "answered_at",
    "ended_at",
    "duration",
    "call_status",
    "status_code",
    "end_reason",
    "reroute_reason",
    "did_cid",
    "trunk",
    "outbound_caller_id",
    "user_data",
];

/// The statement: the call columns and the computed reroute reason.
fn statement(backend: Backend, tenant: i64, scope: &CdrScope, query: &CdrQuery) -> Sql {
    let mut sql = Sql::new();
    sql.push(
        "SELECT c.cdr_id, c.session_id, c.tenant_id, c.tenant_name, c.call_id, c.direction, \
         c.caller, c.caller_display_name, c.caller_domain, c.callee, c.callee_display_name, \
         c.callee_domain, c.did, c.trunk_name, c.outbound_caller_id, c.started_at, c.rang_at, \
         c.answered_at, c.ended_at, c.call_status, c.status_code, c.ended_reason, c.user_data, \
         c.recording_id, c.recording_url, c.recording_duration, c.recovered, \
         c.recording_error_reason, c.recording_error_detail, \
         c.caller_user_id, c.callee_user_id, c.reroute_reason FROM cdrs c WHERE ",
    );
    compile::push_where(&mut sql, backend, tenant, scope, query);
    compile::push_order(&mut sql, &query.order);
    sql
}

/// Formats records into chunks.
struct Writer {
    format: ExportFormat,
    zone: ExportZone,
    buffer: String,
    cell: String,
}

impl Writer {
    fn new(format: ExportFormat, zone: ExportZone) -> Self {
        let mut buffer = String::with_capacity(CHUNK_BYTES + 4096);
        if format == ExportFormat::Csv {
            buffer.push_str(&CSV_COLUMNS.join(","));
            buffer.push_str("\r\n");
        }
        Self {
            format,
            zone,
            buffer,
            cell: String::new(),
        }
    }

    fn row(
        &mut self,
        record: &CdrRecord,
        reroute: Option<RerouteReason>,
    ) -> Result<(), StoreError> {
        match self.format {
            ExportFormat::Jsonl => {
                let line = serde_json::to_string(&record.rest_item_with_reroute(reroute))
                    .map_err(|e| StoreError::Corrupt(format!("cannot spell a CDR: {e}")))?;
                self.buffer.push_str(&line);
                self.buffer.push('\n');
            }
            ExportFormat::Csv => self.csv_row(record, reroute),
        }
        Ok(())
    }

    fn csv_row(&mut self, r: &CdrRecord, reroute: Option<RerouteReason>) {
        let texts: [&str; 8] = [
            r.call_id.as_str(),
            r.direction.rest_spelling(),
            r.caller.user.as_str(),
            r.caller.display_name.as_str(),
            r.caller.domain.as_str(),
            r.callee.user.as_str(),
            r.callee.display_name.as_str(),
            r.callee.domain.as_str(),
        ];
        let _ = write!(self.buffer, "{},{}", r.cdr_id, r.session_id);
        for text in texts {
            self.buffer.push(',');
            push_cell(&mut self.buffer, text);
        }
        for at in [
            Some(r.start_time),
            r.ring_time,
            r.answered_time,
            Some(r.ended_time),
        ] {
            self.buffer.push(',');
            self.cell.clear();
            self.zone.format(at, &mut self.cell);
            self.buffer.push_str(&self.cell);
        }
        let _ = write!(
            self.buffer,
            ",{},{},{},{},{}",
            r.talk_duration(),
            r.call_status.as_str(),
            r.status_code,
            r.ended_reason.rest_spelling(),
            reroute.map_or("", RerouteReason::rest_spelling)
        );
        for text in [
            r.did.as_str(),
            r.trunk_name.as_str(),
            r.outbound_caller_id.as_str(),
            r.user_data.as_str(),
        ] {
            self.buffer.push(',');
            push_cell(&mut self.buffer, text);
        }
        self.buffer.push_str("\r\n");
    }

    fn full(&self) -> bool {
        self.buffer.len() >= CHUNK_BYTES
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.buffer, String::with_capacity(CHUNK_BYTES + 4096)).into_bytes()
    }
}

/// One CSV cell: quoted when it holds `,` `"` CR or LF (quotes doubled),
/// `'`-prefixed when a spreadsheet would run it as a formula.
pub fn push_cell(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let formula = match bytes.first() {
        Some(b'=' | b'@' | b'\t' | b'\r') => true,
        Some(b'+' | b'-') => !bytes.get(1).is_some_and(u8::is_ascii_digit),
        _ => false,
    };
    let quote = formula || text.contains([',', '"', '\r', '\n']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for c in text.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

fn reroute_of(row: &impl Row) -> Result<Option<RerouteReason>, StoreError> {
    row.opt_text("reroute_reason")?
        .map(|text| {
            RerouteReason::parse_rest(&text)
                .map_err(|e| StoreError::Corrupt(format!("reroute_reason: {e}")))
        })
        .transpose()
}

type Sender = tokio::sync::mpsc::Sender<Result<Vec<u8>, StoreError>>;

/// Hands one chunk to the body; `false` when the client went away or took
/// nothing for `stall`.
async fn hand_over(tx: &Sender, chunk: Vec<u8>, stall: Duration) -> bool {
    match tokio::time::timeout(stall, tx.send(Ok(chunk))).await {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            tracing::info!(?stall, "CDR export stopped: the client reads nothing");
            false
        }
    }
}

/// Reads the statement's rows into `writer`, sending each full chunk;
/// `Ok(false)` when the receiver went away or stalled.
macro_rules! pump {
    ($conn:expr, $db:ty, $sql:expr, $writer:expr, $tx:expr, $stall:expr) => {{
        let mut rows = $sql.query::<$db>().fetch($conn);
        let mut open = true;
        while let Some(row) = rows.next().await {
            let row = row?;
            let record = cdrs::cdr_from_row(&row)?;
            $writer.row(&record, reroute_of(&row)?)?;
            if $writer.full() && !hand_over($tx, $writer.take(), $stall).await {
                open = false;
                break;
            }
        }
        Ok::<bool, StoreError>(open)
    }};
}

/// Starts the export on the current runtime; the stream yields the body's
/// chunks. The task holds `slot` until it ends.
pub(crate) fn start(
    pool: Pool,
    tenant: i64,
    scope: CdrScope,
    query: CdrQuery,
    format: ExportFormat,
    zone: ExportZone,
    slot: ExportSlot,
) -> impl Stream<Item = Result<Vec<u8>, StoreError>> + Send + Unpin + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
    let limits = slot.limits();
    tokio::spawn(async move {
        let _slot = slot;
        let sql = statement(pool.backend(), tenant, &scope, &query);
        let mut writer = Writer::new(format, zone);
        let result = tokio::time::timeout(limits.total, run(&pool, &sql, &mut writer, &tx, limits))
            .await
            .unwrap_or(Err(StoreError::Deadline(limits.total)));
        match result {
            Ok(true) => {
                if !writer.buffer.is_empty() {
                    hand_over(&tx, writer.take(), limits.stall).await;
                }
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "CDR export failed");
                let _ = tokio::time::timeout(limits.stall, tx.send(Err(error))).await;
            }
        }
    });
    let mut rx = rx;
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn run(
    pool: &Pool,
    sql: &Sql,
    writer: &mut Writer,
    tx: &Sender,
    limits: ExportLimits,
) -> Result<bool, StoreError> {
    match pool {
        Pool::Sqlite(pool) => {
            let mut conn = crate::db::waited(pool.acquire()).await?;
            let _armed = deadline::arm_sqlite(&mut conn, limits.total).await?;
            pump!(&mut *conn, sqlx::Sqlite, sql, writer, tx, limits.stall)
        }
        Pool::Postgres(pool) => {
            let mut conn = crate::db::waited(pool.acquire()).await?;
            let timeout = format!("{}ms", limits.total.as_millis().max(1));
            sqlx::query(deadline::PG_EXPORT_TIMEOUT)
                .bind(timeout)
                .execute(&mut *conn)
                .await?;
            let result = pump!(&mut *conn, sqlx::Postgres, sql, writer, tx, limits.stall);
            if let Ok(true) = result {
                sqlx::query(deadline::PG_RESET_TIMEOUT)
                    .execute(&mut *conn)
                    .await?;
            } else {
                // Stopped mid-stream: back in the pool, the connection
                // would first read every row the server still sends.
                // Closing it ends the query on the server at once; the
                // pool opens another when it needs one.
                drop(conn.detach());
            }
            result
        }
    }
}
