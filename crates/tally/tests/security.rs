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

/// `request` sent from `source` (a loopback address of its own), read
/// whole; returns the status and the body.
fn request_from(server: &Server, source: [u8; 4], request: &str) -> (u16, String) {
    let addr = server.http;
    let request = request.to_owned();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind(std::net::SocketAddr::from((source, 0)))
                .expect("bind a loopback source");
            let mut stream = tokio::time::timeout(Duration::from_secs(10), socket.connect(addr))
                .await
                .expect("connect in time")
                .expect("connect");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
                .await
                .expect("answer in time")
                .unwrap();
            let text = String::from_utf8_lossy(&raw).into_owned();
            let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            let body = text
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_owned())
                .unwrap_or_default();
            (status, body)
        })
}

/// A tenant user's sign-in form, sent from `source`.
fn sign_in_from(server: &Server, source: [u8; 4], user: &str, password: &str) -> u16 {
    let body = format!("grant_type=password&username={user}&password={password}&domain={DOMAIN}");
    let request = format!(
        "POST /api/login/oauth/token HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    request_from(server, source, &request).0
}

/// Finding 6: failures from one address lock that address out of the
/// account, not the account's owner elsewhere. Before the fix five wrong
/// passwords from anywhere made the right one answer 429 for everybody.
#[test]
fn a_lock_out_does_not_refuse_the_owner_from_another_address() {
    let dir = TempDir::new("sec-lockout");
    let server = start(&dir, "");
    let _ = tenant_admin(&server);
    let attacker = [127, 0, 0, 2];
    let owner = [127, 0, 0, 3];
    for _ in 0..6 {
        let status = sign_in_from(&server, attacker, "100", "wrong-password");
        assert!(status == 400 || status == 429, "{status}");
    }
    // The failing address is refused, even with the right password.
    assert_eq!(sign_in_from(&server, attacker, "100", "web-pass-100"), 429);
    // The owner, elsewhere, gets in (after at most a short delay)...
    let asked = Instant::now();
    assert_eq!(sign_in_from(&server, owner, "100", "web-pass-100"), 200);
    assert!(asked.elapsed() < Duration::from_secs(10));
    // ...and a wrong password from a clean address is still only a failure.
    assert_eq!(
        sign_in_from(&server, [127, 0, 0, 4], "100", "wrong-again"),
        400
    );
}

/// Finding 6 and 5: a restart with `--admin-password` clears the system
/// admin's lock; a new password revokes every system-admin token, the
/// same password keeps them.
#[test]
fn an_admin_password_reset_revokes_its_tokens_and_clears_its_lock() {
    let dir = TempDir::new("sec-admin-reset");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    assert_eq!(admin.get("/api/tenants").status, 200);
    // Lock the admin account out from this address.
    for _ in 0..7 {
        let r = server.http().form(
            "/api/login/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", "wrong"),
            ],
        );
        assert!(r.status == 400 || r.status == 429, "{}", r.status);
    }
    let locked = server.http().form(
        "/api/login/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", common::ADMIN_PASSWORD),
        ],
    );
    assert_eq!(locked.status, 429, "{}", locked.body);
    server.terminate();

    // Same password: the lock is gone, the old token still works.
    let server = Server::start(dir.path(), &[]);
    assert_eq!(admin_at(&server, &admin).get("/api/tenants").status, 200);
    let _fresh = server.admin();
    server.terminate();

    // A new password: every token of the old one is revoked.
    let server = Server::start_as(dir.path(), "another-admin-password", &[]);
    let old = admin_at(&server, &admin);
    let r = old.get("/api/tenants");
    assert_eq!(r.status, 401, "{}", r.body);
    let mut fresh = server.http();
    fresh.login("another-admin-password");
    assert_eq!(fresh.get("/api/tenants").status, 200);
}

/// `client`'s token, aimed at `server`.
fn admin_at(server: &Server, client: &Http) -> Http {
    let mut http = server.http();
    http.token = client.token.clone();
    http
}

/// Finding 5: a sign-in ends after `[identity] session_lifetime_secs`,
/// however often it is refreshed. Before the fix a refresh token chain
/// lived for ever.
#[test]
fn refreshes_do_not_outlive_the_sign_in() {
    let dir = TempDir::new("sec-session-lifetime");
    let server = start(&dir, "[identity]\nsession_lifetime_secs = 8\n");
    let signed_in = Instant::now();
    let r = server.http().form(
        "/api/login/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", common::ADMIN_PASSWORD),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert!(v["expires_in"].as_u64().is_some());
    let mut refresh = v["refresh_token"].as_str().unwrap().to_owned();
    // Refresh every 2 s; the chain dies 8 s after the sign-in.
    let ended = loop {
        std::thread::sleep(Duration::from_secs(2));
        let r = server.http().form(
            "/api/login/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        );
        if r.status != 200 {
            assert_eq!(
                (r.status, r.error_code().as_str()),
                (400, "UNAUTHORIZED"),
                "{}",
                r.body
            );
            break signed_in.elapsed();
        }
        refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();
        assert!(
            signed_in.elapsed() < Duration::from_secs(30),
            "a refresh still worked after the sign-in's lifetime"
        );
    };
    assert!(ended >= Duration::from_secs(7), "ended after {ended:?}");
}

/// Finding 3: only the system admin changes a tenant's SIP domain, and an
/// IP address needs the system setting. Before the fix a tenant admin
/// could name its tenant `127.0.0.1` and capture other tenants' phones.
#[test]
fn only_the_system_admin_sets_sip_domains_and_ip_domains_need_the_setting() {
    let dir = TempDir::new("sec-sip-domain");
    let server = start(&dir, "");
    let (tenant, tenant_admin) = tenant_admin(&server);
    let put = |http: &Http, body: serde_json::Value| {
        http.request("PUT", "/api/tenant", "application/json", &body.to_string())
    };
    let r = put(&tenant_admin, json!({"sip_domain": "127.0.0.1"}));
    assert_eq!(
        (r.status, r.error_field().as_str()),
        (403, "sip_domain"),
        "{}",
        r.body
    );
    let r = put(&tenant_admin, json!({"sip_domain": "other.example.com"}));
    assert_eq!(r.status, 403, "{}", r.body);
    // Its own domain sent back (GET then PUT) and other fields are fine.
    let r = put(
        &tenant_admin,
        json!({"sip_domain": DOMAIN, "name": "Renamed"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sip_domain"], DOMAIN);

    let mut system = server.admin();
    let r = system.request(
        "PATCH",
        &format!("/api/tenants/{tenant}"),
        "application/json",
        &json!({"sip_domain": "127.0.0.1"}).to_string(),
    );
    assert_eq!(
        (r.status, r.error_field().as_str()),
        (400, "sip_domain"),
        "{}",
        r.body
    );
    system.tenant = Some(tenant.clone());
    let r = put(&system, json!({"sip_domain": "moved.example.com"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = system.post_json(
        "/api/tenants",
        &json!({"name": "IP", "sip_domain": "10.0.0.1"}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    server.terminate();

    let server = start(&dir, "[identity]\nallow_ip_sip_domains = true\n");
    let r = server.admin().post_json(
        "/api/tenants",
        &json!({"name": "IP", "sip_domain": "10.0.0.1"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

/// A `/wsi` client authenticated with `auth` and subscribed to its
/// tenant's events; returns the socket.
async fn wsi_session(
    server: &Server,
    auth: serde_json::Value,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let stream = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{}/wsi", server.http), stream)
        .await
        .expect("handshake");
    for command in [
        auth,
        json!({"command": "subscribe", "topics": ["cdr_events"]}),
    ] {
        ws.send(Message::text(command.to_string())).await.unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("an answer")
                .expect("open")
                .expect("a frame");
            if let Message::Text(text) = frame {
                let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                assert_eq!(v["status"], 0, "{v}");
                break;
            }
        }
    }
    ws
}

/// Waits for the close frame; its code.
async fn close_code(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    within: Duration,
) -> Option<u16> {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next()).await.ok()?;
        match frame {
            Some(Ok(Message::Close(Some(close)))) => return Some(close.code.into()),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

/// Finding 4: `/wsi` sessions are checked again when identities change.
/// Before the fix a disabled user, a revoked token or a deleted API key
/// kept receiving events.
#[test]
fn wsi_sessions_close_with_4001_when_their_credential_goes() {
    let dir = TempDir::new("sec-wsi-revalidate");
    let server = start(&dir, "[wsi]\nrevalidate_secs = 3600\n");
    let (tenant, tenant_admin) = tenant_admin(&server);
    let admin = server.admin();
    let r = tenant_admin.post_json("/api/api_keys", &json!({"name": "k", "role": "Admin"}));
    assert_eq!(r.status, 201, "{}", r.body);
    let key_id = r.json()["id"].as_str().unwrap().to_owned();
    let key = r.json()["key"].as_str().unwrap().to_owned();
    let user_id = admin.get(&format!("/api/tenants/{tenant}/users")).json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = tenant_admin.token.clone().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // The periodic check is an hour away: only the change can close.
        let mut by_key = wsi_session(&server, json!({"command": "auth", "access_token": key})).await;
        let mut by_token =
            wsi_session(&server, json!({"command": "auth", "access_token": token})).await;
        let mut by_password = wsi_session(
            &server,
            json!({"command": "auth", "username": "100", "password": "web-pass-100", "domain": DOMAIN}),
        )
        .await;
        // Nothing changed: nobody is closed.
        assert_eq!(close_code(&mut by_key, Duration::from_millis(500)).await, None);

        let r = tenant_admin.request("DELETE", &format!("/api/api_keys/{key_id}"), "", "");
        assert_eq!(r.status, 204, "{}", r.body);
        assert_eq!(close_code(&mut by_key, Duration::from_secs(5)).await, Some(4001));

        let r = admin.request(
            "PATCH",
            &format!("/api/tenants/{tenant}/users/{user_id}"),
            "application/json",
            &json!({"enabled": false}).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(close_code(&mut by_token, Duration::from_secs(5)).await, Some(4001));
        assert_eq!(close_code(&mut by_password, Duration::from_secs(5)).await, Some(4001));
    });
}

/// Finding 4: another node's change (here: straight in the database) is
/// seen by the periodic check.
#[test]
fn wsi_sessions_are_checked_again_periodically() {
    let dir = TempDir::new("sec-wsi-periodic");
    let server = start(&dir, "[wsi]\nrevalidate_secs = 1\n");
    let (_, tenant_admin) = tenant_admin(&server);
    let token = tenant_admin.token.clone().unwrap();
    let url = format!("sqlite://{}", server.data_dir.join("tally.db").display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection as _;
        let mut ws = wsi_session(&server, json!({"command": "auth", "access_token": token})).await;
        assert_eq!(close_code(&mut ws, Duration::from_millis(1500)).await, None);
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("UPDATE auth_tokens SET revoked_at = 1")
            .execute(&mut db)
            .await
            .unwrap();
        assert_eq!(
            close_code(&mut ws, Duration::from_secs(5)).await,
            Some(4001)
        );
    });
}

/// HTTPS for the API when a certificate is configured (rustls, ring): a
/// client trusting the CA gets the API over TLS; plain HTTP on that port
/// gets nothing. The start-up log shows the open-file limit (finding 10).
#[test]
fn the_api_speaks_https_with_a_configured_certificate() {
    let tls = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../delivery/tests/tls");
    let dir = TempDir::new("sec-https");
    let server = start(
        &dir,
        &format!(
            "[http]\ntls_cert_file = {:?}\ntls_key_file = {:?}\n",
            tls.join("server.pem"),
            tls.join("server.key")
        ),
    );
    server.wait_stderr(|l| l.contains("RLIMIT_NOFILE") && l.contains("files="));
    let ca = std::fs::read(tls.join("ca.pem")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let get = |path: &str| {
        rt.block_on(async {
            use rustls::pki_types::pem::PemObject as _;
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
                roots.add(cert.unwrap()).unwrap();
            }
            let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
            let tcp = tokio::net::TcpStream::connect(server.http).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut stream =
                tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
                    .await
                    .expect("handshake in time")
                    .expect("handshake");
            stream
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
            let mut raw = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
            String::from_utf8_lossy(&raw).into_owned()
        })
    };
    let answer = get("/api/openapi.json");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert!(answer.contains("\"openapi\""));
    // The console's cookies are `Secure` over HTTPS.
    let page = get("/console/sign-in");
    let cookies: Vec<&str> = page
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .collect();
    assert!(!cookies.is_empty(), "{page}");
    assert!(
        cookies.iter().all(|c| c.contains("; Secure")),
        "{cookies:?}"
    );

    // Plain HTTP on the HTTPS port: no answer an HTTP client would take.
    let mut plain = TcpStream::connect(server.http).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain
        .write_all(b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = plain.read_to_end(&mut raw);
    assert!(!raw.starts_with(b"HTTP/1.1 200"));
}

/// Finding 10: a client that opens a connection and sends no complete
/// request header is disconnected after `http.header_read_secs`.
#[test]
fn a_client_that_sends_no_headers_is_disconnected() {
    let dir = TempDir::new("sec-header-timeout");
    let server = start(&dir, "[http]\nheader_read_secs = 1\n");
    let mut slow = TcpStream::connect(server.http).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    slow.write_all(b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut raw = Vec::new();
    let _ = slow.read_to_end(&mut raw);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "held for {:?}",
        started.elapsed()
    );
    // Other clients are served meanwhile and after.
    assert_eq!(server.http().get("/api/openapi.json").status, 200);
}
