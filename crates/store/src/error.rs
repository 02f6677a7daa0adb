//! `StoreError`: everything the store can answer instead of a result.

use std::sync::Arc;

use cdr::SessionId;

/// Why a store operation failed.
///
/// Constraint violations are told apart from other database errors
/// ([`StoreError::Conflict`], [`StoreError::MissingReference`]) because the
/// API answers them differently (409 and 404/400) and because the writer
/// never retries them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: expected sqlite:… or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot create the directory of the SQLite database {path}: {source}")]
    CreateDirectory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A unique constraint refused the row (a tenant's SIP domain, an
    /// extension, an `event_id`, a session's second CDR…).
    #[error("already exists: {0}")]
    Conflict(#[source] sqlx::Error),
    /// The number is a ring group's: users and ring groups share a
    /// tenant's extension space (the API answers 409).
    #[error("number {0} is a ring group's in this tenant")]
    NumberTaken(String),
    /// A foreign key refused the row (an unknown tenant or extension).
    #[error("refers to a row that does not exist: {0}")]
    MissingReference(#[source] sqlx::Error),
    /// A number does not fit the column it goes to (ids above 2^63 - 1,
    /// which no Snowflake produces before 2087, or counters above it).
    #[error("{field} = {value} does not fit a 64-bit signed column")]
    OutOfRange { field: &'static str, value: u64 },
    /// A stored secret cannot be sealed or opened: no key, or not the key
    /// it was sealed with (module `secrets`).
    #[error("stored secret: {0}")]
    Secret(String),
    /// A row holds something this version cannot read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A command given to the writer contradicts itself; nothing of it was
    /// written.
    #[error("invalid command for session {session}: {reason}")]
    InvalidCommand { session: SessionId, reason: String },
    /// Events for a session whose CDR is already committed.
    #[error("session {0} already has its CDR")]
    SessionClosed(SessionId),
    #[error(transparent)]
    Encode(#[from] cdr::EncodeError),
    /// The `after` cursor of a CDR listing names no CDR of that tenant.
    #[error("unknown CDR cursor {0}")]
    UnknownCursor(cdr::CdrId),
    /// A read (an export) ran past its deadline and was stopped.
    #[error("the read ran past its deadline of {0:?}")]
    Deadline(std::time::Duration),
    /// The writer task is gone (its store was closed, or the runtime is
    /// shutting down); the command was not committed.
    #[error("the store writer has stopped")]
    WriterClosed,
    /// The transaction carrying the command failed and was retried as long
    /// as the error looked transient; nothing of the command was committed.
    #[error("commit failed after {attempts} attempt(s): {source}")]
    CommitFailed {
        attempts: u32,
        #[source]
        source: Arc<StoreError>,
    },
}

impl StoreError {
    /// Sorts a driver error into the variants above.
    pub(crate) fn from_sqlx(error: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &error {
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation => Self::Conflict(error),
                ErrorKind::ForeignKeyViolation => Self::MissingReference(error),
                _ => Self::Database(error),
            },
            _ => Self::Database(error),
        }
    }

    /// Whether trying the same transaction again may succeed: lock waits
    /// that timed out, serialization failures and deadlocks, lost
    /// connections. Constraint violations and bad data are not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(error) => is_transient_sqlx(error),
            Self::CommitFailed { source, .. } => source.is_transient(),
            _ => false,
        }
    }
}

impl StoreError {
    /// Whether the database could not serve the request in time (no pooled
    /// connection free before the acquire timeout, the pool closed, the
    /// connection lost, or a read cancelled by its deadline): the API
    /// answers 503 with `Retry-After`, never as if the request were wrong.
    pub fn is_unavailable(&self) -> bool {
        use sqlx::error::DatabaseError as _;
        match self {
            Self::Database(error) => match error {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
                sqlx::Error::Database(db) => {
                    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                        // query_canceled (statement_timeout), the
                        // connection exception class, too_many_connections.
                        let code = pg.code();
                        code == "57014" || code == "53300" || code.starts_with("08")
                    } else {
                        // SQLITE_INTERRUPT: the progress handler of a read
                        // deadline stopped the statement.
                        db.try_downcast_ref::<sqlx::sqlite::SqliteError>()
                            .and_then(|e| e.code())
                            .and_then(|code| code.parse::<i32>().ok())
                            .is_some_and(|code| code & 0xff == 9)
                    }
                }
                _ => false,
            },
            Self::CommitFailed { source, .. } => source.is_unavailable(),
            Self::WriterClosed | Self::Deadline(_) => true,
            _ => false,
        }
    }
}

fn is_transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                // SQLSTATE: serialization_failure, deadlock_detected,
                // lock_not_available (lock_timeout), query_canceled
                // (statement_timeout), and the connection exception class.
                let code = pg.code();
                matches!(code, "40001" | "40P01" | "55P03" | "57014") || code.starts_with("08")
            } else {
                // SQLite extended result codes (sqlx's SqliteError and the
                // writer's own connection, `lite.rs`, both give them); the
                // primary code is the low byte: SQLITE_BUSY (5, with
                // BUSY_SNAPSHOT, BUSY_TIMEOUT…) and SQLITE_LOCKED (6).
                db.code()
                    .and_then(|code| code.parse::<i32>().ok())
                    .is_some_and(|code| matches!(code & 0xff, 5 | 6))
            }
        }
        _ => false,
    }
}

/// `?` on driver errors inside the crate.
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::from_sqlx(error)
    }
}
