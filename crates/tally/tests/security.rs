//! The REST side of the security review (issue 17), against the real
//! binary: each test reproduces a finding and checks its fix.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Http, Server, TempDir};
use serde_json::json;

const DOMAIN: &str = "sec.example.com";

/// Starts the server with `config` as its TOML file.
fn start(dir: &TempDir, config: &str) -> Server {
    let path = dir.path().join("tally.toml");
    std::fs::write(&path, config).expect("config");
    let path = path.to_str().expect("utf-8 path").to_owned();
    Server::start(dir.path(), &["--config", &path])
}

/// A tenant with an `Admin` user `100` (web password `web-pass-100`);
/// returns the tenant id and that admin's client.
fn tenant_admin(server: &Server) -> (String, Http) {
    let admin = server.admin();
    let tenant = admin.create_tenant("Sec", DOMAIN);
    let r = admin.post_json(
        &format!("/api/tenants/{tenant}/users"),
        &json!({"extension": "100", "sip_password": "sip-secret-100",
                "password": "web-pass-100", "role": "Admin"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    (tenant, sign_in(server, "100", "web-pass-100"))
}

fn sign_in(server: &Server, user: &str, password: &str) -> Http {
    let mut http = server.http();
    let r = http.form(
        "/api/login/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
            ("domain", DOMAIN),
        ],
    );
    assert_eq!(r.status, 200, "sign-in of {user}: {}", r.body);
    http.token = Some(r.json()["access_token"].as_str().unwrap().to_owned());
    http
}

/// `rows` CDRs of `tenant` written straight into the SQLite file (the
/// server reads them like any other).
fn seed_cdrs(server: &Server, tenant: &str, rows: i64) {
    use sqlx::Connection as _;
    let url = format!("sqlite://{}", server.data_dir.join("tally.db").display());
    let tenant: i64 = tenant.parse().expect("tenant id");
    // Ids far above anything the server hands out, one per row.
    let sql = format!(
        "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {last}) \
         INSERT INTO cdrs (cdr_id, session_id, tenant_id, tenant_name, call_id, direction, \
         caller, caller_display_name, caller_domain, callee, callee_display_name, callee_domain, \
         did, trunk_name, outbound_caller_id, started_at, rang_at, answered_at, ended_at, \
         call_status, status_code, ended_reason, user_data, recording_id, recording_url, \
         recording_duration, recovered) \
         SELECT 9000000000000000000 + i * 2 + 1, 9000000000000000000 + i * 2, {tenant}, 'Sec', \
         'call-' || i, 'ext', '101', 'Caller with a longish display name', '{DOMAIN}', '102', \
         'Callee with a longish display name', '{DOMAIN}', '', '', '', \
         1767225600000 + i * 1000, 1767225600200 + i * 1000, 1767225601000 + i * 1000, \
         1767225660000 + i * 1000, 'answered', 0, 'caller_disconnect', '', NULL, NULL, NULL, \
         (1 = 0) FROM s",
        last = rows - 1
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
            sqlx::raw_sql(&sql).execute(&mut conn).await.expect("seed");
        });
}

/// Sends an export request and reads only its status line; the body is
/// never read.
fn export_never_read(server: &Server, token: &str) -> (TcpStream, u16) {
    let mut stream = TcpStream::connect(server.http).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /api/cdrs/export?format=csv HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).expect("status line");
    let status = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (stream, status)
}

/// Finding 1: ten exports over many CDRs that nobody reads must not starve
/// the store. Before the fix the exports took every pooled connection and
/// every other request waited 30 s, then answered 401.
#[test]
fn exports_nobody_reads_do_not_starve_other_requests() {
    const ROWS: i64 = 70_000;
    let dir = TempDir::new("sec-export-stall");
    let server = start(&dir, "[http]\nwrite_stall_secs = 2\n");
    let (tenant, admin) = tenant_admin(&server);
    seed_cdrs(&server, &tenant, ROWS);
    let token = admin.token.clone().unwrap();

    let exports: Vec<(TcpStream, u16)> = (0..10)
        .map(|_| export_never_read(&server, &token))
        .collect();
    let statuses: Vec<u16> = exports.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "two exports per tenant run at once: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        8,
        "the others are refused at once: {statuses:?}"
    );

    // Everything else answers promptly and correctly meanwhile.
    for _ in 0..3 {
        let asked = Instant::now();
        let r = admin.get("/api/cdrs?top=1");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["count"], ROWS);
        let r = admin.get("/api/users");
        assert_eq!(r.status, 200, "{}", r.body);
        let r = server.http().get("/api/users");
        assert_eq!(r.status, 401, "no token is still 401");
        sign_in(&server, "100", "web-pass-100");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "answers took {:?}",
            asked.elapsed()
        );
    }
    let refused = admin.get("/api/cdrs/export?format=csv");
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.error_code(), "TOO_MANY_EXPORTS");
    assert!(
        refused
            .headers
            .iter()
            .any(|(k, v)| k == "retry-after" && v.parse::<u64>().is_ok()),
        "{:?}",
        refused.headers
    );

    // The stalled exports give their slots back after the write deadline,
    // while their clients still hold the sockets: a new export runs whole.
    let started = Instant::now();
    let full = loop {
        let r = admin.get("/api/cdrs/export?format=csv");
        if r.status == 200 {
            break r;
        }
        assert_eq!(r.status, 429, "{}", r.body);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "stalled exports never released their slots"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        full.body.split_terminator("\r\n").count() as i64,
        ROWS + 1,
        "header and every row"
    );
    // A stalled socket is closed by the server.
    let (mut stalled, _) = exports.into_iter().next().unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match stalled.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(Instant::now() < deadline, "the stalled export never ended"),
        }
    }
    server.terminate();
}
