//! The CDR writer's own SQLite connection: [`Conn`] on a `rusqlite`
//! connection, so the group-commit SQL in `commit.rs` runs unchanged, in
//! place, on the writer's thread.
//!
//! Why not a pooled sqlx connection (DESIGN.md, "How `store/` does it"):
//! sqlx's SQLite driver runs each connection on a worker thread of its own
//! and sends every statement there and back through channels, so a batch
//! of N statements cost N round trips and 2N thread wake-ups, and the
//! wake-ups, not SQLite, were most of the writer's CPU. Here the thread
//! that owns the batch runs the statements itself: one wake-up per batch.
//! Both crates link the same `libsqlite3-sys`, so there is one SQLite in
//! the binary and the file is shared with the pool as any two connections
//! share it (WAL; `BEGIN IMMEDIATE` takes the write lock).
//!
//! The futures of [`Conn`] never wait: each completes on its first poll.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{OpenFlags, Statement};
use sqlx::error::{DatabaseError, ErrorKind};

use crate::db::{Arg, Conn, Row};

/// Prepared statements kept per connection: the writer uses about ten.
const STATEMENT_CACHE: usize = 64;

/// A SQLite error as sqlx would report it, so [`crate::StoreError`]
/// classifies both drivers' errors with one rule (constraint kinds, and the
/// extended result code for "transient").
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct LiteError {
    /// SQLite's extended result code.
    code: i32,
    message: String,
}

impl DatabaseError for LiteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        // The extended constraint codes (sqlite3.h, SQLITE_CONSTRAINT_*).
        match self.code {
            2067 | 1555 => ErrorKind::UniqueViolation,
            787 => ErrorKind::ForeignKeyViolation,
            1299 => ErrorKind::NotNullViolation,
            275 => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

fn to_sqlx(error: rusqlite::Error) -> sqlx::Error {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            sqlx::Error::Database(Box::new(LiteError {
                code: failure.extended_code,
                message: message.unwrap_or_else(|| failure.to_string()),
            }))
        }
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// One SQLite connection, used by one thread at a time.
pub(crate) struct LiteConn {
    conn: rusqlite::Connection,
}

impl std::fmt::Debug for LiteConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiteConn").finish_non_exhaustive()
    }
}

impl LiteConn {
    /// Opens the database file the pool opened (it exists and is migrated:
    /// the pool came first), with the pool's settings: WAL,
    /// `synchronous = NORMAL`, foreign keys, `busy_timeout = lock_wait`.
    pub(crate) fn open(path: &Path, lock_wait: Duration) -> Result<Self, sqlx::Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(to_sqlx)?;
        conn.busy_timeout(lock_wait).map_err(to_sqlx)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(to_sqlx)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self { conn })
    }

    /// `BEGIN IMMEDIATE`: the write lock is taken (and waited for, up to
    /// `busy_timeout`) here rather than failing half-way.
    pub(crate) fn begin(&mut self) -> Result<(), sqlx::Error> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(to_sqlx)
    }

    pub(crate) fn commit(&mut self) -> Result<(), sqlx::Error> {
        self.conn.execute_batch("COMMIT").map_err(to_sqlx)
    }

    /// Rolls back if a transaction is open (a failed `COMMIT` may have
    /// left one, or SQLite may have rolled back already).
    pub(crate) fn rollback(&mut self) {
        if !self.conn.is_autocommit()
            && let Err(error) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(%error, "SQLite rollback failed");
        }
    }

    fn prepare(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
    ) -> Result<rusqlite::CachedStatement<'_>, sqlx::Error> {
        let mut statement = self.conn.prepare_cached(sql).map_err(to_sqlx)?;
        bind(&mut statement, args)?;
        Ok(statement)
    }

    fn run_execute(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64, sqlx::Error> {
        let mut statement = self.prepare(sql, args)?;
        let changed = statement.raw_execute().map_err(to_sqlx)?;
        Ok(changed as u64)
    }

    fn run_fetch(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
        limit: usize,
    ) -> Result<Vec<LiteRow>, sqlx::Error> {
        let mut statement = self.prepare(sql, args)?;
        let columns: Arc<[String]> = statement
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(to_sqlx)? {
            if out.len() == limit {
                // Step the statement to its end anyway: a DML statement with
                // RETURNING finishes its work only then.
                continue;
            }
            let values = (0..columns.len())
                .map(|i| row.get_ref(i).map(Value::from).map_err(to_sqlx))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(LiteRow {
                columns: Arc::clone(&columns),
                values,
            });
        }
        Ok(out)
    }
}

/// Binds `args` to the statement's `$n` parameters by name: SQLite numbers
/// parameters in order of first appearance, which need not be `n`.
fn bind(statement: &mut Statement<'_>, args: &[Arg<'_>]) -> Result<(), sqlx::Error> {
    for index in 1..=statement.parameter_count() {
        let n = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=args.len()).contains(n))
            .ok_or_else(|| {
                sqlx::Error::Protocol(format!(
                    "SQLite parameter {index} is not one of $1..${}",
                    args.len()
                ))
            })?;
        let result = match args[n - 1] {
            Arg::Int(value) => statement.raw_bind_parameter(index, value),
            Arg::Text(value) => statement.raw_bind_parameter(index, value),
            Arg::Real(value) => statement.raw_bind_parameter(index, value),
            Arg::Bool(value) => statement.raw_bind_parameter(index, i64::from(value)),
            Arg::Bytes(value) => statement.raw_bind_parameter(index, value),
        };
        result.map_err(to_sqlx)?;
    }
    Ok(())
}

impl Conn for LiteConn {
    type Row = LiteRow;

    fn execute<'a>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        std::future::ready(self.run_execute(sql, args))
    }

    fn fetch_all<'a>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<Vec<LiteRow>, sqlx::Error>> + Send + 'a {
        std::future::ready(self.run_fetch(sql, args, usize::MAX))
    }

    fn fetch_optional<'a>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<Option<LiteRow>, sqlx::Error>> + Send + 'a {
        std::future::ready(
            self.run_fetch(sql, args, 1)
                .map(|rows| rows.into_iter().next()),
        )
    }
}

/// A row read out of a statement (rusqlite's rows borrow it).
#[derive(Debug)]
pub(crate) struct LiteRow {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl LiteRow {
    fn value(&self, column: &str) -> Result<ValueRef<'_>, sqlx::Error> {
        self.columns
            .iter()
            .position(|c| c == column)
            .map(|i| ValueRef::from(&self.values[i]))
            .ok_or_else(|| sqlx::Error::ColumnNotFound(column.to_owned()))
    }
}

fn mismatch(column: &str, wanted: &str, got: ValueRef<'_>) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: format!("expected {wanted}, found {:?}", got.data_type()).into(),
    }
}

impl Row for LiteRow {
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.opt_int(column)?
            .ok_or_else(|| mismatch(column, "an integer", ValueRef::Null))
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        match self.value(column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) => Ok(Some(v)),
            other => Err(mismatch(column, "an integer", other)),
        }
    }

    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.opt_text(column)?
            .ok_or_else(|| mismatch(column, "text", ValueRef::Null))
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        match self.value(column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => {
                String::from_utf8(bytes.to_vec())
                    .map(Some)
                    .map_err(|e| sqlx::Error::ColumnDecode {
                        index: column.to_owned(),
                        source: Box::new(e),
                    })
            }
            other => Err(mismatch(column, "text", other)),
        }
    }

    fn opt_real(&self, column: &str) -> Result<Option<f64>, sqlx::Error> {
        match self.value(column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Real(v) => Ok(Some(v)),
            ValueRef::Integer(v) => Ok(Some(v as f64)),
            other => Err(mismatch(column, "a real", other)),
        }
    }

    fn boolean(&self, column: &str) -> Result<bool, sqlx::Error> {
        match self.value(column)? {
            ValueRef::Integer(v) => Ok(v != 0),
            other => Err(mismatch(column, "a boolean", other)),
        }
    }

    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        match self.value(column)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(bytes) => Ok(Some(bytes.to_vec())),
            other => Err(mismatch(column, "a blob", other)),
        }
    }
}
