//! A PostgreSQL database of its own for one end-to-end test, on the server
//! `TALLY_TEST_POSTGRES_URL` names (its user must be allowed to create
//! databases), dropped when the value is dropped. Without the variable,
//! [`PgDatabase::create`] prints a `SKIPPED` line and returns `None`.

use std::sync::atomic::{AtomicU32, Ordering};

pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// The URL to give `tally serve --database`.
    pub url: String,
}

impl PgDatabase {
    pub fn create(test: &str) -> Option<PgDatabase> {
        let Ok(admin_url) = std::env::var("TALLY_TEST_POSTGRES_URL") else {
            println!(
                "SKIPPED {test}: TALLY_TEST_POSTGRES_URL is not set, this test did not run on PostgreSQL"
            );
            return None;
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "tally_e2e_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let base = admin_url
            .split_once('?')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let slash = base.rfind('/').expect("a database path in the URL");
        let url = format!("{}/{name}", &base[..slash]);
        execute(
            &admin_url,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        execute(&admin_url, &format!("CREATE DATABASE {name}"));
        Some(PgDatabase {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        execute(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs `sql` on a thread of its own with its own runtime, so it works
/// from plain tests and from inside a tokio test alike.
fn execute(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        use sqlx::Connection as _;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .expect("connect to TALLY_TEST_POSTGRES_URL");
            sqlx::raw_sql(&sql).execute(&mut conn).await.expect(&sql);
            let _ = conn.close().await;
        });
    })
    .join()
    .expect("PostgreSQL statement");
}
