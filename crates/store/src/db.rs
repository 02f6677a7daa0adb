//! The two backends behind one set of SQL.
//!
//! Every statement in this crate is a `&'static str` written once with
//! `$1`, `$2`… placeholders: PostgreSQL's native form, and a form SQLite
//! accepts too (`$NNN` is a named parameter there, which sqlx binds by its
//! number). Values are always bound, never spliced into SQL text; taking
//! `&'static str` makes a `format!`-built statement a type error.
//!
//! Queries are written against the small [`Conn`] trait, which both
//! drivers' connections implement, so each query is type-checked once and
//! runs natively on either pool (no `Any` driver, whose type mapping is
//! lossy). The only per-backend code is here: connecting, the migrations,
//! and how a write transaction begins.

use std::borrow::Cow;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection as _};

use crate::error::StoreError;

/// A value bound to one `$n` placeholder. Typed even when NULL, because
/// PostgreSQL wants to know the type of every parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Real(Option<f64>),
    Bool(bool),
    Bytes(Option<&'a [u8]>),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(Some(value))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Arg::Int(value)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Arg::Text(value)
    }
}

impl From<Option<f64>> for Arg<'_> {
    fn from(value: Option<f64>) -> Self {
        Arg::Real(value)
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(value: &'a [u8]) -> Self {
        Arg::Bytes(Some(value))
    }
}

impl From<bool> for Arg<'_> {
    fn from(value: bool) -> Self {
        Arg::Bool(value)
    }
}

/// `[a, b, c]` as `[Arg; N]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        [$($crate::db::Arg::from($value)),*]
    };
}
pub(crate) use args;

/// A connection (or an open transaction on one) of either backend.
///
/// The futures are `Send` so the writer task can hold them across awaits.
pub(crate) trait Conn: Send {
    type Row: Row + Send;

    /// Runs a statement; returns the number of rows it changed.
    fn execute<'a>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a;

    fn fetch_all<'a>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a;

    fn fetch_optional<'a>(
        &'a mut self,
        sql: &'static str,
        args: &'a [Arg<'a>],
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'a;
}

/// Typed column access by name. Integers are always `BIGINT`/`INTEGER`
/// (i64) in both schemas, so one integer accessor serves every column.
pub(crate) trait Row {
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn opt_real(&self, column: &str) -> Result<Option<f64>, sqlx::Error>;
    fn boolean(&self, column: &str) -> Result<bool, sqlx::Error>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

macro_rules! impl_backend {
    ($conn:ty, $row:ty, $db:ty) => {
        impl Conn for $conn {
            type Row = $row;

            fn execute<'a>(
                &'a mut self,
                sql: &'static str,
                args: &'a [Arg<'a>],
            ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
                async move {
                    let done = bind::<$db>(sql, args).execute(&mut *self).await?;
                    Ok(done.rows_affected())
                }
            }

            fn fetch_all<'a>(
                &'a mut self,
                sql: &'static str,
                args: &'a [Arg<'a>],
            ) -> impl Future<Output = Result<Vec<$row>, sqlx::Error>> + Send + 'a {
                async move { bind::<$db>(sql, args).fetch_all(&mut *self).await }
            }

            fn fetch_optional<'a>(
                &'a mut self,
                sql: &'static str,
                args: &'a [Arg<'a>],
            ) -> impl Future<Output = Result<Option<$row>, sqlx::Error>> + Send + 'a {
                async move { bind::<$db>(sql, args).fetch_optional(&mut *self).await }
            }
        }

        impl Row for $row {
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_real(&self, column: &str) -> Result<Option<f64>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn boolean(&self, column: &str) -> Result<bool, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
            fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
                sqlx::Row::try_get(self, column)
            }
        }
    };
}

/// `sqlx::query(sql)` with `args` bound in order.
fn bind<'a, DB>(
    sql: &'static str,
    args: &'a [Arg<'a>],
) -> sqlx::query::Query<'a, DB, <DB as sqlx::Database>::Arguments<'a>>
where
    DB: sqlx::Database,
    Option<i64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<&'a str>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<f64>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<&'a [u8]>: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    args.iter().fold(sqlx::query(sql), |query, arg| match *arg {
        Arg::Int(value) => query.bind(value),
        Arg::Text(value) => query.bind(value),
        Arg::Real(value) => query.bind(value),
        Arg::Bool(value) => query.bind(value),
        Arg::Bytes(value) => query.bind(value),
    })
}

impl_backend!(SqliteConnection, SqliteRow, sqlx::Sqlite);
impl_backend!(PgConnection, PgRow, sqlx::Postgres);

/// Which database a [`Store`](crate::Store) runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How [`Store::open_with`](crate::Store::open_with) connects.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Pool size. SQLite in WAL mode reads concurrently and writes one at a
    /// time; PostgreSQL takes what it is given.
    pub max_connections: u32,
    /// How long a statement waits for another transaction's lock before it
    /// fails (and the writer retries): SQLite's `busy_timeout`, PostgreSQL's
    /// `lock_timeout`.
    pub lock_wait: Duration,
    /// How long a request waits for a pooled connection before it fails
    /// with [`StoreError::is_unavailable`] (the API's 503). 30 s (sqlx's
    /// default): the webhook dispatcher and the writer share the pool and
    /// wait through bursts on PostgreSQL; exports are capped below the
    /// pool size so they cannot starve it. Lower it once the writer has a
    /// connection of its own.
    pub acquire_timeout: Duration,
    /// The longest a read statement may run: PostgreSQL's
    /// `statement_timeout` on every connection, a progress-handler
    /// deadline on SQLite's query paths (`query::deadline`). Exports have
    /// their own, longer limit.
    pub read_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            lock_wait: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Where the store writer opens its own connection: never one of the
/// pool's, so readers (an export that does not finish, a burst of API
/// requests) can never starve CDR commits of a connection.
#[derive(Clone, Debug)]
pub(crate) enum WriterTarget {
    Sqlite { path: PathBuf, lock_wait: Duration },
    Postgres(Box<PgConnectOptions>),
}

impl Pool {
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(options.lock_wait)
                .foreign_keys(true)
                .disable_statement_logging();
            create_parent_directory(connect.get_filename())?;
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            migrator(SQLITE_MIGRATIONS).await?.run(&pool).await?;
            Ok(Self::Sqlite(pool))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let lock_timeout_ms = options.lock_wait.as_millis().max(1);
            let base = PgConnectOptions::from_str(url)?
                .application_name("tally")
                .options([("lock_timeout", lock_timeout_ms)])
                .disable_statement_logging();
            // Migrations run on a connection of their own, without the
            // pool's read `statement_timeout` (an index build on a large
            // table may take minutes).
            let mut migrating = base.connect().await?;
            migrator(POSTGRES_MIGRATIONS)
                .await?
                .run(&mut migrating)
                .await?;
            migrating.close().await?;
            let connect =
                base.options([("statement_timeout", options.read_timeout.as_millis().max(1))]);
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            Ok(Self::Postgres(pool))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// `lock_wait`: the `busy_timeout` the pool's SQLite connections got
    /// (PostgreSQL's `lock_timeout` is in its connect options).
    pub(crate) fn writer_target(&self, lock_wait: Duration) -> WriterTarget {
        match self {
            Self::Sqlite(pool) => WriterTarget::Sqlite {
                path: pool.connect_options().get_filename().to_path_buf(),
                lock_wait,
            },
            Self::Postgres(pool) => {
                WriterTarget::Postgres(Box::new((*pool.connect_options()).clone()))
            }
        }
    }

    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// `sqlite://data/tally.db` should work on a fresh machine: make `data/`.
fn create_parent_directory(file: &Path) -> Result<(), StoreError> {
    let in_memory = file.as_os_str().is_empty() || file.as_os_str() == ":memory:";
    match file.parent() {
        Some(dir) if !in_memory && !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::CreateDirectory {
                path: dir.display().to_string(),
                source,
            }),
        _ => Ok(()),
    }
}

static POOL_ACQUIRED: AtomicU64 = AtomicU64::new(0);
static POOL_WAIT_MICROS: AtomicU64 = AtomicU64::new(0);
static POOL_TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// How the pools of this process were waited for (the binary's metrics):
/// pooled connections handed out (or refused), the time spent waiting for
/// them (for a SQLite write, `BEGIN IMMEDIATE`'s wait for the write lock
/// included), and the waits that ended at the acquire timeout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolWaits {
    pub acquired: u64,
    pub waited: Duration,
    pub timed_out: u64,
}

/// The counts so far (see [`PoolWaits`]).
pub fn pool_waits() -> PoolWaits {
    PoolWaits {
        acquired: POOL_ACQUIRED.load(Ordering::Relaxed),
        waited: Duration::from_micros(POOL_WAIT_MICROS.load(Ordering::Relaxed)),
        timed_out: POOL_TIMEOUTS.load(Ordering::Relaxed),
    }
}

/// Awaits a pool acquisition (or a transaction's begin), counting it in
/// [`pool_waits`].
pub(crate) async fn waited<T>(
    acquire: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    let started = std::time::Instant::now();
    let result = acquire.await;
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    POOL_ACQUIRED.fetch_add(1, Ordering::Relaxed);
    POOL_WAIT_MICROS.fetch_add(micros, Ordering::Relaxed);
    if matches!(result, Err(sqlx::Error::PoolTimedOut)) {
        POOL_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
    }
    result
}

/// Runs `$body` with `$conn` bound to a pooled connection of whichever
/// backend `$pool` is; `$body` is compiled once per backend.
macro_rules! with_conn {
    ($pool:expr, |$conn:ident| $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite(pool) => {
                let mut connection = $crate::db::waited(pool.acquire()).await?;
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
pub(crate) use with_conn;

/// Runs `$body` in a write transaction and commits it if `$body` returned
/// `Ok`. SQLite begins `IMMEDIATE` so the write lock is taken (and waited
/// for, up to `busy_timeout`) at `BEGIN` rather than failing mid-way.
macro_rules! with_write_tx {
    ($pool:expr, |$conn:ident| $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite(pool) => {
                let mut tx = $crate::db::waited(pool.begin_with("BEGIN IMMEDIATE")).await?;
                let $conn = &mut *tx;
                let value = $body.await?;
                tx.commit().await?;
                Ok(value)
            }
            $crate::db::Pool::Postgres(pool) => {
                let mut tx = $crate::db::waited(pool.begin()).await?;
                let $conn = &mut *tx;
                let value = $body.await?;
                tx.commit().await?;
                Ok(value)
            }
        }
    };
}
pub(crate) use with_write_tx;

/// One migration: version, description, SQL.
type Embedded = &'static [(i64, &'static str, &'static str)];

/// The migrations, compiled into the binary. Each backend has its own DDL
/// (types differ); versions and descriptions are kept in lockstep (a test
/// checks it, and that every file in the directories is listed here).
pub(crate) const SQLITE_MIGRATIONS: Embedded = &[
    (
        1,
        "schema",
        include_str!("../migrations/sqlite/0001_schema.sql"),
    ),
    (
        2,
        "registration_q",
        include_str!("../migrations/sqlite/0002_registration_q.sql"),
    ),
    (
        3,
        "identity",
        include_str!("../migrations/sqlite/0003_identity.sql"),
    ),
    (
        4,
        "webhooks",
        include_str!("../migrations/sqlite/0004_webhooks.sql"),
    ),
    (
        5,
        "cdr_queries",
        include_str!("../migrations/sqlite/0005_cdr_queries.sql"),
    ),
    (
        6,
        "max_concurrent_calls",
        include_str!("../migrations/sqlite/0006_max_concurrent_calls.sql"),
    ),
    (
        7,
        "sip_ha1",
        include_str!("../migrations/sqlite/0007_sip_ha1.sql"),
    ),
    (
        8,
        "token_families",
        include_str!("../migrations/sqlite/0008_token_families.sql"),
    ),
    (
        9,
        "recordings",
        include_str!("../migrations/sqlite/0009_recordings.sql"),
    ),
    (
        10,
        "console",
        include_str!("../migrations/sqlite/0010_console.sql"),
    ),
    (
        11,
        "trunks",
        include_str!("../migrations/sqlite/0011_trunks.sql"),
    ),
    (
        12,
        "outbound_permissions",
        include_str!("../migrations/sqlite/0012_outbound_permissions.sql"),
    ),
    (
        13,
        "ring_groups",
        include_str!("../migrations/sqlite/0013_ring_groups.sql"),
    ),
    (
        14,
        "cdr_users",
        include_str!("../migrations/sqlite/0014_cdr_users.sql"),
    ),
    (
        15,
        "tenant_webhook_allow",
        include_str!("../migrations/sqlite/0015_tenant_webhook_allow.sql"),
    ),
    (
        16,
        "did_to_ring_group",
        include_str!("../migrations/sqlite/0016_did_to_ring_group.sql"),
    ),
    (
        17,
        "pickup",
        include_str!("../migrations/sqlite/0017_pickup.sql"),
    ),
    (
        18,
        "prompts_ivrs",
        include_str!("../migrations/sqlite/0018_prompts_ivrs.sql"),
    ),
    (
        19,
        "did_to_ivr",
        include_str!("../migrations/sqlite/0019_did_to_ivr.sql"),
    ),
    (
        20,
        "queues",
        include_str!("../migrations/sqlite/0020_queues.sql"),
    ),
    (
        21,
        "recording_settings",
        include_str!("../migrations/sqlite/0021_recording_settings.sql"),
    ),
    (
        22,
        "did_to_external",
        include_str!("../migrations/sqlite/0022_did_to_external.sql"),
    ),
    (
        23,
        "cluster_nodes",
        include_str!("../migrations/sqlite/0023_cluster_nodes.sql"),
    ),
    (
        24,
        "registration_path",
        include_str!("../migrations/sqlite/0024_registration_path.sql"),
    ),
    (
        25,
        "queue_announcements",
        include_str!("../migrations/sqlite/0025_queue_announcements.sql"),
    ),
    (
        26,
        "queue_callback_agent_codes",
        include_str!("../migrations/sqlite/0026_queue_callback_agent_codes.sql"),
    ),
];
pub(crate) const POSTGRES_MIGRATIONS: Embedded = &[
    (
        1,
        "schema",
        include_str!("../migrations/postgres/0001_schema.sql"),
    ),
    (
        2,
        "registration_q",
        include_str!("../migrations/postgres/0002_registration_q.sql"),
    ),
    (
        3,
        "identity",
        include_str!("../migrations/postgres/0003_identity.sql"),
    ),
    (
        4,
        "webhooks",
        include_str!("../migrations/postgres/0004_webhooks.sql"),
    ),
    (
        5,
        "cdr_queries",
        include_str!("../migrations/postgres/0005_cdr_queries.sql"),
    ),
    (
        6,
        "max_concurrent_calls",
        include_str!("../migrations/postgres/0006_max_concurrent_calls.sql"),
    ),
    (
        7,
        "sip_ha1",
        include_str!("../migrations/postgres/0007_sip_ha1.sql"),
    ),
    (
        8,
        "token_families",
        include_str!("../migrations/postgres/0008_token_families.sql"),
    ),
    (
        9,
        "recordings",
        include_str!("../migrations/postgres/0009_recordings.sql"),
    ),
    (
        10,
        "console",
        include_str!("../migrations/postgres/0010_console.sql"),
    ),
    (
        11,
        "trunks",
        include_str!("../migrations/postgres/0011_trunks.sql"),
    ),
    (
        12,
        "outbound_permissions",
        include_str!("../migrations/postgres/0012_outbound_permissions.sql"),
    ),
    (
        13,
        "ring_groups",
        include_str!("../migrations/postgres/0013_ring_groups.sql"),
    ),
    (
        14,
        "cdr_users",
        include_str!("../migrations/postgres/0014_cdr_users.sql"),
    ),
    (
        15,
        "tenant_webhook_allow",
        include_str!("../migrations/postgres/0015_tenant_webhook_allow.sql"),
    ),
    (
        16,
        "did_to_ring_group",
        include_str!("../migrations/postgres/0016_did_to_ring_group.sql"),
    ),
    (
        17,
        "pickup",
        include_str!("../migrations/postgres/0017_pickup.sql"),
    ),
    (
        18,
        "prompts_ivrs",
        include_str!("../migrations/postgres/0018_prompts_ivrs.sql"),
    ),
    (
        19,
        "did_to_ivr",
        include_str!("../migrations/postgres/0019_did_to_ivr.sql"),
    ),
    (
        20,
        "queues",
        include_str!("../migrations/postgres/0020_queues.sql"),
    ),
    (
        21,
        "recording_settings",
        include_str!("../migrations/postgres/0021_recording_settings.sql"),
    ),
    (
        22,
        "did_to_external",
        include_str!("../migrations/postgres/0022_did_to_external.sql"),
    ),
    (
        23,
        "cluster_nodes",
        include_str!("../migrations/postgres/0023_cluster_nodes.sql"),
    ),
    (
        24,
        "registration_path",
        include_str!("../migrations/postgres/0024_registration_path.sql"),
    ),
    (
        25,
        "queue_announcements",
        include_str!("../migrations/postgres/0025_queue_announcements.sql"),
    ),
    (
        26,
        "queue_callback_agent_codes",
        include_str!("../migrations/postgres/0026_queue_callback_agent_codes.sql"),
    ),
];

#[derive(Debug)]
struct EmbeddedMigrations(Embedded);

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        let migrations = self
            .0
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

async fn migrator(migrations: Embedded) -> Result<Migrator, StoreError> {
    Ok(Migrator::new(EmbeddedMigrations(migrations)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(backend: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn listed(migrations: Embedded) -> Vec<String> {
        migrations
            .iter()
            .map(|(version, description, _)| format!("{version:04}_{description}.sql"))
            .collect()
    }

    #[test]
    fn every_migration_file_is_embedded_and_both_backends_agree() {
        assert_eq!(listed(SQLITE_MIGRATIONS), files("sqlite"));
        assert_eq!(listed(POSTGRES_MIGRATIONS), files("postgres"));
        assert_eq!(listed(SQLITE_MIGRATIONS), listed(POSTGRES_MIGRATIONS));
    }
}
