//! CDR query benchmark (a report, not a CI check): see README.md here.
//!
//! Seeds one tenant with N CDRs (one target each) plus two other tenants
//! with N/10 each, by bulk SQL (`INSERT … SELECT` over a generated series;
//! the secondary indexes are dropped first and rebuilt from their own
//! definitions afterwards, as a bulk load would), then measures through
//! `store::Store`:
//!
//! * first page: `started_at` in a 7-day window and `caller eq` one
//!   extension, newest first, `top=100`, `count=false`;
//! * the same with `count=true`;
//! * deep page: no filter, newest first, `after=<id>` of a row about half
//!   way through the tenant;
//! * export: a 30-day window as CSV and as JSONL, rows/s.
//!
//! Usage: `cargo run --release -p store --example cdr_query_bench --
//! <database url> <rows> [--reuse]`.

use std::time::{Duration, Instant};

use cdr::{CdrId, Id, TenantId, UnixMillis};
use futures_util::StreamExt as _;
use sqlx::Connection as _;
use store::query::{Filter, OrderBy};
use store::{Backend, CdrQuery, CdrScope, ExportFormat, ExportZone, Store, StoreOptions, Tenant};

/// 2026-01-01T00:00:00Z.
const T_START: i64 = 1_767_225_600_000;
/// One call every 3 s per tenant: 10 M calls span 347 days.
const STEP_MS: i64 = 3_000;
/// The Snowflake epoch (2018-01-01T00:00:00Z).
const SNOWFLAKE_EPOCH: i64 = 1_514_764_800_000;
const EXTENSIONS: i64 = 1_000;

fn tenant_id(n: u64) -> TenantId {
    TenantId::from(Id::from_u64(883_611_252_155_219_968 + n))
}

/// The INSERT … SELECT of `count` CDRs of tenant `n` over the series `i`,
/// `source` producing `i`. Tenant `n`'s times are offset by `n` ms so every
/// id is unique. 60 % extension calls (callers 1000–1999), 10 % inbound
/// (DIDs), 30 % outbound; a quarter unanswered.
fn cdr_insert(source: &str, tenant: i64, n: i64) -> String {
    let started = format!("({T_START} + i * {STEP_MS} + {n})");
    format!(
        "INSERT INTO cdrs (cdr_id, session_id, tenant_id, tenant_name, call_id, direction, \
         caller, caller_display_name, caller_domain, callee, callee_display_name, callee_domain, \
         did, trunk_name, outbound_caller_id, started_at, rang_at, answered_at, ended_at, \
         call_status, status_code, ended_reason, user_data, recording_id, recording_url, \
         recording_duration, recovered) \
         SELECT ((({started}) - {SNOWFLAKE_EPOCH}) * 4194304) + 4097, \
         ((({started}) - {SNOWFLAKE_EPOCH}) * 4194304) + 4096, {tenant}, 'bench', \
         'call-' || CAST(i AS TEXT), \
         CASE WHEN i % 10 < 6 THEN 'ext' WHEN i % 10 = 6 THEN 'in' ELSE 'out' END, \
         CASE WHEN i % 10 = 6 THEN '+4930' || CAST((i * 7919) % 100000 AS TEXT) \
              ELSE CAST(1000 + (i * 7) % {EXTENSIONS} AS TEXT) END, \
         'User', 'bench.example', \
         CASE WHEN i % 10 < 7 THEN CAST(1000 + (i * 13) % {EXTENSIONS} AS TEXT) \
              ELSE '+4989' || CAST((i * 104729) % 1000000 AS TEXT) END, \
         'Callee', 'bench.example', \
         CASE WHEN i % 10 = 6 THEN '+4930555' || CAST(i % 10 AS TEXT) ELSE '' END, \
         CASE WHEN i % 10 >= 6 THEN 'trunk1' ELSE '' END, '', \
         {started}, {started} + 200, \
         CASE WHEN i % 4 = 0 THEN NULL ELSE {started} + 4000 END, \
         {started} + 4000 + (i % 600) * 1000, \
         CASE WHEN i % 4 = 0 THEN 'noanswer' ELSE 'answered' END, \
         CASE WHEN i % 4 = 0 THEN 487 ELSE 0 END, \
         CASE WHEN i % 4 = 0 THEN 'cancelled' ELSE 'caller_disconnect' END, \
         '', NULL, NULL, NULL, (1 = 0) FROM {source}"
    )
}

fn target_insert(source: &str, n: i64) -> String {
    let started = format!("({T_START} + i * {STEP_MS} + {n})");
    format!(
        "INSERT INTO cdr_targets (cdr_id, ordinal, target_id, call_type, caller, callee, \
         destination, started_at, rang_at, answered_at, ended_at, status_code, end_reason, \
         trunk_name, outbound_caller_id, did, reroute_reason, cost, quality_codec, \
         quality_packets, quality_lost, quality_jitter_ms, quality_mos) \
         SELECT ((({started}) - {SNOWFLAKE_EPOCH}) * 4194304) + 4097, 0, \
         ((({started}) - {SNOWFLAKE_EPOCH}) * 4194304) + 4098, 'normal_call', 'c', \
         CAST(1000 + (i * 13) % {EXTENSIONS} AS TEXT), 'sip:x@10.0.0.7:5062', \
         {started}, {started} + 200, \
         CASE WHEN i % 4 = 0 THEN NULL ELSE {started} + 4000 END, \
         {started} + 4000 + (i % 600) * 1000, CASE WHEN i % 4 = 0 THEN 487 ELSE 0 END, \
         CASE WHEN i % 4 = 0 THEN 'cancelled' ELSE 'caller_disconnect' END, \
         CASE WHEN i % 10 >= 6 THEN 'trunk1' ELSE '' END, '', '', NULL, NULL, NULL, NULL, NULL, \
         NULL, NULL FROM {source}"
    )
}

fn series(backend: Backend, from: i64, to: i64) -> String {
    match backend {
        Backend::Sqlite => format!(
            "(WITH RECURSIVE s(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM s WHERE i < {to}) \
             SELECT i FROM s) AS series"
        ),
        Backend::Postgres => format!("generate_series({from}::BIGINT, {to}::BIGINT) AS series(i)"),
    }
}

/// Runs raw SQL on a fresh connection (seeding only).
async fn raw(url: &str, backend: Backend, statements: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            for s in statements {
                out.push(
                    sqlx::query_as::<_, (String,)>(s)
                        .fetch_all(&mut conn)
                        .await
                        .map(|rows| rows.into_iter().map(|r| r.0).collect())
                        .unwrap_or_default(),
                );
            }
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            for s in statements {
                out.push(
                    sqlx::query_as::<_, (String,)>(s)
                        .fetch_all(&mut conn)
                        .await
                        .map(|rows| rows.into_iter().map(|r| r.0).collect())
                        .unwrap_or_default(),
                );
            }
        }
    }
    out
}

async fn exec(url: &str, backend: Backend, sql: &str) {
    match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
    }
}

async fn seed(url: &str, store: &Store, rows: i64) {
    let backend = store.backend();
    for n in 1..=3u64 {
        store
            .create_tenant(&Tenant::new(
                tenant_id(n),
                &format!("bench{n}"),
                &format!("bench{n}.example"),
                UnixMillis(T_START as u64),
            ))
            .await
            .unwrap();
    }
    // The secondary indexes of cdrs and cdr_targets, by their own DDL.
    let (list, names) = match backend {
        Backend::Sqlite => (
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
             AND tbl_name IN ('cdrs', 'cdr_targets')",
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
             AND tbl_name IN ('cdrs', 'cdr_targets')",
        ),
        Backend::Postgres => (
            "SELECT indexdef FROM pg_indexes WHERE tablename IN ('cdrs', 'cdr_targets') \
             AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'",
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('cdrs', 'cdr_targets') \
             AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'",
        ),
    };
    let found = raw(url, backend, &[list.to_owned(), names.to_owned()]).await;
    let (ddl, names) = (&found[0], &found[1]);
    println!("indexes: {names:?}");
    for name in names {
        exec(url, backend, &format!("DROP INDEX {name}")).await;
    }
    let t = Instant::now();
    let chunk = 1_000_000;
    for (n, count) in [(1, rows), (2, rows / 10), (3, rows / 10)] {
        let tenant = tenant_id(n).id().as_u64() as i64;
        let mut from = 0;
        while from < count {
            let to = (from + chunk).min(count) - 1;
            let source = series(backend, from, to);
            exec(
                url,
                backend,
                &format!(
                    "BEGIN; {}; {}; COMMIT;",
                    cdr_insert(&source, tenant, n as i64),
                    target_insert(&source, n as i64)
                ),
            )
            .await;
            from = to + 1;
        }
        println!("tenant {n}: {count} CDRs seeded at {:.1?}", t.elapsed());
    }
    for statement in ddl {
        exec(url, backend, statement).await;
    }
    let analyze: &[&str] = match backend {
        Backend::Sqlite => &["ANALYZE"],
        // One statement each: VACUUM cannot run in a transaction block.
        Backend::Postgres => &["VACUUM ANALYZE cdrs", "VACUUM ANALYZE cdr_targets"],
    };
    for statement in analyze {
        exec(url, backend, statement).await;
    }
    println!("indexes rebuilt, analyzed at {:.1?}", t.elapsed());
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    let p50 = percentile(&mut samples, 0.50);
    let p99 = percentile(&mut samples, 0.99);
    let max = *samples.last().unwrap();
    println!(
        "{name:<44} n={:<4} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}

/// A small deterministic PRNG (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as i64
    }
}

/// CPU seconds this process has used (user + system), from
/// `/proc/self/stat` (Linux; 0 elsewhere): on a shared machine, rows per
/// CPU-second says more about the code than rows per wall-second.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses).
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / 100.0
}

fn rfc3339(ms: i64) -> String {
    UnixMillis(ms as u64).to_rfc3339()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).expect("database url").clone();
    let rows: i64 = args.get(2).expect("rows").parse().expect("rows");
    let reuse = args.iter().any(|a| a == "--reuse");
    let iterations = 200;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());

    let store = Store::open_with(&url, &StoreOptions::default())
        .await
        .unwrap();
    if !reuse {
        seed(&url, &store, rows).await;
    }
    let backend = store.backend();
    println!("backend {backend:?}, {rows} CDRs in the measured tenant");
    let tenant = tenant_id(1);
    let span = rows * STEP_MS;
    let week = 7 * 24 * 3600 * 1000;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    for count in [false, true] {
        let mut samples = Vec::new();
        let mut returned = 0;
        for _ in 0..iterations {
            let from = T_START + rng.next((span - week).max(1));
            let caller = 1000 + rng.next(EXTENSIONS);
            let filter = format!(
                "started_at ge {} and started_at lt {} and caller eq '{caller}'",
                rfc3339(from),
                rfc3339(from + week)
            );
            let query = CdrQuery {
                filter: Some(Filter::parse(&filter).unwrap()),
                count,
                ..CdrQuery::default()
            };
            if samples.is_empty() {
                let plan = store
                    .explain_cdr_page(tenant, &CdrScope::Tenant, &query)
                    .await
                    .unwrap();
                println!("plan: {plan:?}");
            }
            let t = Instant::now();
            let page = store
                .query_cdrs(tenant, &CdrScope::Tenant, &query)
                .await
                .unwrap();
            samples.push(t.elapsed());
            returned += page.records.len();
        }
        report(
            &format!("first page, 7 days + caller, count={count}"),
            samples,
        );
        println!("  (mean rows per page: {})", returned / iterations);
    }

    // Deep pages: cursors around the middle of the tenant.
    let mut samples = Vec::new();
    for _ in 0..iterations {
        let i = rows / 4 + rng.next(rows / 2);
        let started = T_START + i * STEP_MS + 1;
        let cursor = CdrId::from(Id::from_u64(
            (((started - SNOWFLAKE_EPOCH) << 22) + 4097) as u64,
        ));
        let query = CdrQuery {
            after: Some(cursor),
            count: false,
            ..CdrQuery::default()
        };
        if samples.is_empty() {
            let plan = store
                .explain_cdr_page(tenant, &CdrScope::Tenant, &query)
                .await
                .unwrap();
            println!("plan: {plan:?}");
        }
        let t = Instant::now();
        let page = store
            .query_cdrs(tenant, &CdrScope::Tenant, &query)
            .await
            .unwrap();
        samples.push(t.elapsed());
        assert_eq!(page.records.len(), 100);
    }
    report("deep page via after (no filter)", samples);

    let mut samples = Vec::new();
    for _ in 0..iterations {
        let i = rows / 4 + rng.next(rows / 2);
        let started = T_START + i * STEP_MS + 1;
        let cursor = CdrId::from(Id::from_u64(
            (((started - SNOWFLAKE_EPOCH) << 22) + 4097) as u64,
        ));
        let query = CdrQuery {
            filter: Some(Filter::parse("direction eq 'OUTBOUND_CALL'").unwrap()),
            order: OrderBy::default(),
            after: Some(cursor),
            count: false,
            ..CdrQuery::default()
        };
        let t = Instant::now();
        store
            .query_cdrs(tenant, &CdrScope::Tenant, &query)
            .await
            .unwrap();
        samples.push(t.elapsed());
    }
    report("deep page via after + direction filter", samples);

    let month = 30 * 24 * 3600 * 1000;
    let from = T_START + span / 2;
    let filter = format!(
        "started_at ge {} and started_at lt {}",
        rfc3339(from),
        rfc3339(from + month)
    );
    for format in [ExportFormat::Csv, ExportFormat::Jsonl] {
        let query = CdrQuery {
            filter: Some(Filter::parse(&filter).unwrap()),
            ..CdrQuery::default()
        };
        let zone = ExportZone::named("Europe/Berlin").unwrap();
        let cpu = cpu_seconds();
        let t = Instant::now();
        let mut stream = store
            .export_cdrs(
                tenant,
                CdrScope::Tenant,
                query,
                format,
                zone,
                store::ExportSlots::new(1, 1, store::ExportLimits::default())
                    .try_acquire(tenant)
                    .unwrap(),
            )
            .unwrap();
        let (mut bytes, mut lines) = (0usize, 0usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            bytes += chunk.len();
            lines += chunk.iter().filter(|b| **b == b'\n').count();
        }
        let elapsed = t.elapsed();
        let cpu = cpu_seconds() - cpu;
        let rows = lines - usize::from(format == ExportFormat::Csv);
        println!(
            "export {format:?}: {rows} rows, {:.1} MB in {:.2} s = {:.0} rows/s \
             ({cpu:.2} CPU-s in this process = {:.0} rows per CPU-s)",
            bytes as f64 / 1e6,
            elapsed.as_secs_f64(),
            rows as f64 / elapsed.as_secs_f64(),
            rows as f64 / cpu.max(0.01)
        );
    }
}
