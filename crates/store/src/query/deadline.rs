//! Deadlines on reads, so that a slow query or a client that stops reading
//! cannot hold a pooled connection for ever (security review, finding 1).
//!
//! * PostgreSQL: every connection has `statement_timeout` =
//!   [`StoreOptions::read_timeout`](crate::StoreOptions) (set at connect, in
//!   `db.rs`); an export raises it on its own connection only
//!   ([`PG_EXPORT_TIMEOUT`], reset after), to its
//!   [`ExportLimits::total`](crate::ExportLimits); an export stopped
//!   mid-stream closes its connection rather than drain it.
//! * SQLite has no statement timeout: a read arms a progress handler on its
//!   connection ([`arm_sqlite`]) that interrupts the statement
//!   (`SQLITE_INTERRUPT`) once the deadline passes. The handler is disarmed
//!   when the returned guard drops, synchronously, also when the read's
//!   future is cancelled, so a connection going back to the pool never
//!   carries an expired deadline to its next user (the writer included).
//!
//! An interrupted or timed-out read is [`StoreError::is_unavailable`]
//! (crate::StoreError::is_unavailable): the API answers 503.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnection;

/// `SELECT set_config('statement_timeout', $1, false)`: the export's own
/// statement timeout on its connection (a bound value, not SQL text; `SET`
/// takes no parameters), until [`PG_RESET_TIMEOUT`] puts the connection's
/// default back before it returns to the pool.
pub(crate) const PG_EXPORT_TIMEOUT: &str = "SELECT set_config('statement_timeout', $1, false)";
/// Back to the timeout the connection was opened with.
pub(crate) const PG_RESET_TIMEOUT: &str = "RESET statement_timeout";

/// SQLite virtual machine steps between two looks at the clock: about a
/// millisecond of work, so the check costs nothing and fires promptly.
const SQLITE_STEPS: i32 = 10_000;

/// Disarms the progress handler it was returned with when dropped.
#[must_use = "the deadline is disarmed when this guard drops"]
pub(crate) struct Armed(Arc<AtomicBool>);

impl Drop for Armed {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Interrupts whatever `conn` runs after `timeout` from now, until the
/// guard drops.
pub(crate) async fn arm_sqlite(
    conn: &mut SqliteConnection,
    timeout: Duration,
) -> Result<Armed, sqlx::Error> {
    let deadline = Instant::now() + timeout;
    let armed = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&armed);
    conn.lock_handle()
        .await?
        // `true` lets the statement go on.
        .set_progress_handler(SQLITE_STEPS, move || {
            !flag.load(Ordering::Relaxed) || Instant::now() < deadline
        });
    Ok(Armed(armed))
}

/// [`with_conn!`](crate::db::with_conn) for reads: on SQLite the
/// statement(s) of `$body` are interrupted after `$timeout`; PostgreSQL
/// connections carry their `statement_timeout` already.
macro_rules! with_read_conn {
    ($pool:expr, $timeout:expr, |$conn:ident| $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite(pool) => {
                let mut connection = $crate::db::waited(pool.acquire()).await?;
                let _armed = $crate::query::deadline::arm_sqlite(&mut connection, $timeout).await?;
                let $conn = &mut *connection;
                $body.await
            }
            $crate::db::Pool::Postgres(pool) => {
                let mut connection = $crate::db::waited(pool.acquire()).await?;
                let $conn = &mut *connection;
                $body.await
            }
        }
    };
}

/// [`with_read_conn!`] in one read-only snapshot (a deferred transaction
/// on SQLite's WAL, `REPEATABLE READ` on PostgreSQL, rolled back at the
/// end, also when the request is dropped), for reads of several
/// statements that must describe the same commits: a CDR page and its
/// `count` (a CDR committed between the two was counted but missing from
/// the page). `$body` must not write.
macro_rules! with_read_snapshot {
    ($pool:expr, $timeout:expr, |$conn:ident| $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite(pool) => {
                let mut connection = $crate::db::waited(pool.acquire()).await?;
                let _armed = $crate::query::deadline::arm_sqlite(&mut connection, $timeout).await?;
                let mut snapshot = sqlx::Connection::begin(&mut *connection).await?;
                let $conn = &mut *snapshot;
                $body.await
            }
            $crate::db::Pool::Postgres(pool) => {
                let mut connection = $crate::db::waited(pool.acquire()).await?;
                let mut snapshot = sqlx::Connection::begin(&mut *connection).await?;
                sqlx::Executor::execute(
                    &mut *snapshot,
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                )
                .await?;
                let $conn = &mut *snapshot;
                $body.await
            }
        }
    };
}
pub(crate) use with_read_conn;
pub(crate) use with_read_snapshot;
