//! Test harness: a fresh database per test on either backend, and scripted
//! calls driven through a real `cdr::Builder`.
//!
//! Every test body is an `async fn(&TestDb)`; [`on_both!`] makes a
//! `sqlite::name` and a `postgres::name` test of it. SQLite always runs (a
//! file in a fresh directory under the system temp dir). PostgreSQL runs
//! when `TALLY_TEST_POSTGRES_URL` names a server whose user may create
//! databases: each test gets its own `CREATE DATABASE tally_test_…`, dropped
//! when the test ends. Without the variable the PostgreSQL tests print a
//! `SKIPPED` line straight to the terminal (past the test harness' output
//! capture) and return.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdr::{
    Builder, CallEvent, CallEventKind, CallType, Direction, EndReason, Id, NoAnswerCause, Party,
    SessionEnd, SessionId, SessionStart, Snowflake, TargetAdded, TargetEnd, TargetId, TenantId,
    UnixMillis,
};
use sqlx::Connection;
use store::{SessionEvents, Store, StoreOptions, Tenant, User};

pub const POSTGRES_URL_VAR: &str = "TALLY_TEST_POSTGRES_URL";

/// 2026-11-28T14:03:07.123Z.
pub const T0: u64 = 1_795_874_587_123;

pub fn at(offset_ms: u64) -> UnixMillis {
    UnixMillis(T0 + offset_ms)
}

/// Makes `sqlite::$name` and `postgres::$name` tests of `async fn
/// $name(db: &TestDb)`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::TestDb::sqlite(stringify!($name));
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::TestDb::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

enum Kind {
    Sqlite { dir: PathBuf },
    Postgres { admin_url: String, database: String },
}

/// A fresh, empty database for one test; removed on drop.
pub struct TestDb {
    kind: Kind,
    url: String,
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestDb {
    pub fn sqlite(test: &str) -> Self {
        let dir = std::env::temp_dir()
            .join("tally-store-tests")
            .join(format!("{test}_{}", unique_suffix()));
        // The store creates the directory itself; the test checks that too.
        let url = format!("sqlite://{}", dir.join("data").join("tally.db").display());
        Self {
            kind: Kind::Sqlite { dir },
            url,
        }
    }

    pub async fn postgres(test: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            // Straight to the terminal: the harness captures `eprintln!`
            // of passing tests, and a skip must not look like a pass.
            let line = format!(
                "SKIPPED postgres::{test}: {POSTGRES_URL_VAR} is not set, this test did not run on PostgreSQL\n"
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            return None;
        };
        let database = format!("tally_test_{test}_{}", unique_suffix()).to_ascii_lowercase();
        assert!(
            database
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to TALLY_TEST_POSTGRES_URL");
        // DDL takes no parameters; the name is checked to be [a-z0-9_].
        sqlx::raw_sql(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        let url = with_database(&admin_url, &database);
        Some(Self {
            kind: Kind::Postgres {
                admin_url,
                database,
            },
            url,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open store")
    }

    pub async fn open_with(&self, options: &StoreOptions) -> Store {
        Store::open_with(&self.url, options)
            .await
            .expect("open store")
    }

    /// Holds the write lock every outbox transaction needs (the
    /// `global_sequence` row; all of SQLite) from another connection for
    /// `hold`, then rolls back. Returns once the lock is taken.
    pub async fn hold_write_lock(&self, hold: Duration) -> tokio::task::JoinHandle<()> {
        let (locked_tx, locked) = tokio::sync::oneshot::channel();
        let url = self.url.clone();
        let postgres = self.is_postgres();
        let task = tokio::spawn(async move {
            const LOCK: &str =
                "UPDATE global_sequence SET last_sequence = last_sequence WHERE id = 1";
            if postgres {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                let mut tx = conn.begin().await.unwrap();
                sqlx::query(LOCK).execute(&mut *tx).await.unwrap();
                let _ = locked_tx.send(());
                tokio::time::sleep(hold).await;
                tx.rollback().await.unwrap();
            } else {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url).unwrap();
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .unwrap();
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
                sqlx::query(LOCK).execute(&mut *tx).await.unwrap();
                let _ = locked_tx.send(());
                tokio::time::sleep(hold).await;
                tx.rollback().await.unwrap();
            }
        });
        locked.await.expect("lock taken");
        task
    }
}

/// `admin_url` with its database path replaced by `database`.
fn with_database(admin_url: &str, database: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[host_start..]
        .find('/')
        .map_or(base.len(), |i| host_start + i);
    format!("{}/{database}{query}", &base[..path_start])
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.kind {
            Kind::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Kind::Postgres {
                admin_url,
                database,
            } => {
                // Drop is synchronous and may run inside the test's runtime:
                // do the async cleanup on a thread with its own runtime.
                let admin_url = admin_url.clone();
                let sql = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
                let cleanup = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("cleanup runtime");
                    runtime.block_on(async move {
                        if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                            let _ = sqlx::raw_sql(&sql).execute(&mut admin).await;
                            let _ = admin.close().await;
                        }
                    });
                });
                let _ = cleanup.join();
            }
        }
    }
}

// Directory fixtures ----------------------------------------------------------

pub fn tenant_id(n: u64) -> TenantId {
    TenantId::from(Id::from_u64(883_611_252_155_219_968 + n))
}

pub fn tenant(n: u64) -> Tenant {
    Tenant::new(
        tenant_id(n),
        &format!("tenant{n}"),
        &format!("t{n}.example"),
        at(0),
    )
}

pub async fn create_tenants(store: &Store, tenants: impl IntoIterator<Item = u64>) {
    for n in tenants {
        store
            .create_tenant(&tenant(n))
            .await
            .expect("create tenant");
    }
}

/// Stand-in HA1s for `realm` (the store stores them, never computes them).
pub fn sip_hashes(realm: &str) -> store::SipHashes {
    store::SipHashes {
        realm: realm.to_owned(),
        md5: "a".repeat(32),
        sha256: "b".repeat(64),
    }
}

pub fn user(tenant: u64, extension: &str) -> User {
    User {
        display_name: format!("User {extension}"),
        ..User::new(
            Id::from_u64(900_000_000_000_000_000 + tenant * 10_000 + extension.len() as u64),
            tenant_id(tenant),
            extension,
            sip_hashes(&format!("t{tenant}.example")),
            at(0),
        )
    }
}

// Scripted calls --------------------------------------------------------------

/// Hands out session and target ids like one node of the cluster would.
pub struct Ids(Snowflake);

impl Ids {
    pub fn node(node: u16) -> Self {
        Self(Snowflake::new(node).expect("node"))
    }

    pub fn session(&mut self, offset_ms: u64) -> SessionId {
        self.0.next_session(at(offset_ms))
    }

    pub fn target(&mut self, offset_ms: u64) -> TargetId {
        TargetId::from(self.0.next(at(offset_ms)))
    }
}

fn party(user: &str, domain: &str) -> Party {
    Party {
        user: user.into(),
        display_name: format!("User {user}"),
        domain: domain.into(),
    }
}

pub fn session_start(session: SessionId, tenant: u64, caller: &str, callee: &str) -> SessionStart {
    let domain = format!("t{tenant}.example");
    SessionStart {
        session_id: session,
        tenant_id: tenant_id(tenant),
        tenant_name: format!("tenant{tenant}"),
        call_id: format!("{session}@10.0.0.5"),
        direction: Direction::Extension,
        caller: party(caller, &domain),
        callee: party(callee, &domain),
        did: String::new(),
        trunk_name: String::new(),
        outbound_caller_id: String::new(),
        user_data: String::new(),
        caller_user: None,
        callee_user: None,
    }
}

pub fn target_added(target: TargetId, callee: &str) -> TargetAdded {
    TargetAdded {
        target,
        call_type: CallType::Normal,
        caller: "101".into(),
        callee: callee.into(),
        destination: format!("sip:{callee}@10.0.0.7:5062"),
        trunk_name: String::new(),
        outbound_caller_id: String::new(),
        did: String::new(),
        reroute_reason: None,
        user: None,
    }
}

/// One session being scripted: each step applies events to the session's
/// builder and returns the writer command the engine would send.
pub struct Script {
    pub builder: Builder,
    pub session_id: SessionId,
    pub tenant_id: TenantId,
}

impl Script {
    pub fn new(session_id: SessionId, tenant: u64) -> Self {
        Self {
            builder: Builder::new(),
            session_id,
            tenant_id: tenant_id(tenant),
        }
    }

    /// Applies `(offset_ms, kind)` events and wraps them in one command.
    pub fn step(&mut self, events: Vec<(u64, CallEventKind)>) -> SessionEvents {
        let mut command = SessionEvents {
            session_id: self.session_id,
            tenant_id: self.tenant_id,
            events: Vec::new(),
            wire: Vec::new(),
        };
        for (offset, kind) in events {
            let event = CallEvent::new(at(offset), kind);
            let wire = self
                .builder
                .apply(event.clone())
                .unwrap_or_else(|e| panic!("builder refused {event:?}: {e}"));
            command.events.push(event);
            command.wire.extend(wire);
        }
        command
    }

    pub fn start(&mut self, offset: u64, start: SessionStart) -> SessionEvents {
        self.step(vec![(
            offset,
            CallEventKind::SessionStarted(Box::new(start)),
        )])
    }

    pub fn add(&mut self, offset: u64, added: TargetAdded) -> SessionEvents {
        self.step(vec![(offset, CallEventKind::TargetAdded(Box::new(added)))])
    }

    pub fn ring(&mut self, offset: u64, target: TargetId) -> SessionEvents {
        self.step(vec![(offset, CallEventKind::TargetRinging { target })])
    }

    pub fn answer(&mut self, offset: u64, target: TargetId) -> SessionEvents {
        self.step(vec![(offset, CallEventKind::TargetAnswered { target })])
    }

    pub fn hang_up(&mut self, offset: u64, target: TargetId) -> SessionEvents {
        self.step(vec![(
            offset,
            CallEventKind::TargetEnded(TargetEnd {
                target,
                reason: EndReason::CallerDisconnect,
                cost: None,
                quality: None,
            }),
        )])
    }

    pub fn end(&mut self, offset: u64, status_code: u16, reason: EndReason) -> SessionEvents {
        self.step(vec![(
            offset,
            CallEventKind::SessionEnded(SessionEnd {
                status_code,
                reason,
                recording: None,
                recording_error: None,
            }),
        )])
    }
}

/// A whole unanswered call (start, one target that rings out, end) as ONE
/// command, started at `offset` ms after T0.
pub fn short_call(ids: &mut Ids, tenant: u64, offset: u64, callee: &str) -> SessionEvents {
    let session = ids.session(offset);
    let target = ids.target(offset);
    let mut script = Script::new(session, tenant);
    script.step(vec![
        (
            offset,
            CallEventKind::SessionStarted(Box::new(session_start(session, tenant, "101", callee))),
        ),
        (
            offset + 5,
            CallEventKind::TargetAdded(Box::new(target_added(target, callee))),
        ),
        (offset + 50, CallEventKind::TargetRinging { target }),
        (
            offset + 30_000,
            CallEventKind::TargetNoAnswer {
                target,
                cause: NoAnswerCause::RingTimeout,
            },
        ),
        (
            offset + 30_001,
            CallEventKind::SessionEnded(SessionEnd {
                status_code: 408,
                reason: EndReason::NotApplicable,
                recording: None,
                recording_error: None,
            }),
        ),
    ])
}
