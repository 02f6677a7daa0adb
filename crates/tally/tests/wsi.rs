//! `GET /wsi` on the real binary with a real WebSocket client
//! (tokio-tungstenite): authentication and its failures, subscription
//! rights, resume after 100 calls (SQLite and PostgreSQL), tenant
//! isolation, and a slow consumer closed with 4008.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Http, Phone, Server, TempDir, WAIT, wait_for_cdrs};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

const DOMAIN_A: &str = "a.wsi.example";
const DOMAIN_B: &str = "b.wsi.example";

/// One WebSocket client.
struct Wsi {
    ws: WebSocketStream<TcpStream>,
}

/// What the server sent: a JSON text frame or a close.
#[derive(Debug)]
enum Frame {
    Json(Value),
    Close(Option<CloseFrame>),
}

impl Wsi {
    async fn connect(http: SocketAddr) -> Wsi {
        Self::connect_with(http, None).await
    }

    /// Connects with an optional small receive buffer (a client that
    /// reads slowly fills it fast).
    async fn connect_with(http: SocketAddr, recv_buffer: Option<u32>) -> Wsi {
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let stream = tokio::time::timeout(WAIT, socket.connect(http))
            .await
            .expect("connect in time")
            .expect("connect");
        let (ws, response) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async(format!("ws://{http}/wsi"), stream),
        )
        .await
        .expect("handshake in time")
        .expect("handshake");
        assert_eq!(response.status(), 101);
        Wsi { ws }
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    /// The next JSON frame or close (pings and pongs skipped).
    async fn frame(&mut self) -> Frame {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time");
            match m {
                Some(Ok(Message::Text(t))) => {
                    return Frame::Json(serde_json::from_str(t.as_str()).expect("JSON"));
                }
                Some(Ok(Message::Close(c))) => return Frame::Close(c),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    async fn json(&mut self) -> Value {
        match self.frame().await {
            Frame::Json(v) => v,
            Frame::Close(c) => panic!("closed: {c:?}"),
        }
    }

    async fn command(&mut self, v: Value) -> Value {
        self.send(v).await;
        self.json().await
    }

    async fn close_code(&mut self) -> u16 {
        loop {
            match self.frame().await {
                Frame::Close(c) => return c.map_or(1005, |c| c.code.into()),
                Frame::Json(_) => continue,
            }
        }
    }

    /// Signed in as the system admin, with a password.
    async fn admin(http: SocketAddr) -> Wsi {
        let mut wsi = Wsi::connect(http).await;
        let r = wsi
            .command(json!({"command": "auth", "username": "admin", "password": ADMIN_PASSWORD}))
            .await;
        assert_eq!(r["status"], 0, "{r}");
        wsi
    }
}

fn provision(server: &Server) -> (String, String) {
    let admin = server.admin();
    let a = admin.create_tenant("A", DOMAIN_A);
    let b = admin.create_tenant("B", DOMAIN_B);
    for t in [&a, &b] {
        admin.create_user(t, "101", "s3cret-101");
        admin.create_user(t, "102", "s3cret-102");
    }
    (a, b)
}

/// `n` answered calls 101 → 102 in `domain`, one after the other, each
/// answered at once and hung up at once.
fn calls(sip: SocketAddr, domain: &str, n: usize) {
    let mut callee = Phone::new("102", "s3cret-102", domain, sip);
    assert_eq!(callee.register(), 200);
    let caller = Phone::new("101", "s3cret-101", domain, sip);
    let answering = std::thread::spawn(move || {
        for _ in 0..n {
            let invite = callee.recv_request("INVITE");
            callee.reply(&invite, 200, "b1");
            let _ack = callee.recv_request("ACK");
            let bye = callee.recv_request("BYE");
            callee.reply(&bye, 200, "b1");
        }
    });
    for _ in 0..n {
        let mut call = caller.invite("102", |_| {});
        assert_eq!(call.status, 200);
        caller.ack(&call, "102");
        assert_eq!(caller.bye(&mut call, "102"), 200);
    }
    answering.join().expect("callee thread");
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking part")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsi_auth_refuses_wrong_passwords_and_tokens() {
    let dir = TempDir::new("wsi-auth");
    let server = Server::start(dir.path(), &[]);

    let mut wsi = Wsi::connect(server.http).await;
    let r = wsi
        .command(json!({"command": "subscribe", "topics": ["global_cdr_events"], "tenants": ["1"]}))
        .await;
    assert_eq!(
        r,
        json!({"command": "subscribe", "status": -1, "error": "not authenticated"})
    );
    let r = wsi.command(json!({"command": "nope"})).await;
    assert_eq!(r["status"], -1);
    wsi.send(json!("not an object")).await;
    assert_eq!(wsi.json().await["status"], -1);
    for attempt in 1..=3 {
        let bad = if attempt == 2 {
            json!({"command": "auth", "access_token": "not-a-token"})
        } else {
            json!({"command": "auth", "username": "admin", "password": "wrong"})
        };
        let r = wsi.command(bad).await;
        assert_eq!(r["command"], "auth");
        assert_eq!(r["status"], -1, "{r}");
        assert!(r["error"].is_string(), "{r}");
        assert!(r.get("id").is_none(), "{r}");
    }
    assert_eq!(wsi.close_code().await, 1008, "the third failure closes");

    // The right password; then the REST token works too.
    let mut wsi = Wsi::connect(server.http).await;
    let r = wsi
        .command(json!({"command": "auth", "username": "admin", "password": ADMIN_PASSWORD, "domain": ""}))
        .await;
    assert_eq!(r["command"], "auth");
    assert_eq!(r["status"], 0, "{r}");
    assert!(
        r["id"].as_str().is_some_and(|id| id.parse::<u64>().is_ok()),
        "{r}"
    );
    let r = wsi
        .command(json!({"command": "auth", "username": "admin", "password": ADMIN_PASSWORD}))
        .await;
    assert_eq!(r["status"], -1, "already authenticated: {r}");

    let token = server.admin().token.expect("token");
    let mut wsi = Wsi::connect(server.http).await;
    let r = wsi
        .command(json!({"command": "auth", "access_token": token}))
        .await;
    assert_eq!(r["status"], 0, "{r}");
    // An unknown domain is a failed login, not a different answer.
    let mut wsi = Wsi::connect(server.http).await;
    let r = wsi
        .command(json!({"command": "auth", "username": "admin", "password": ADMIN_PASSWORD, "domain": "nowhere.example"}))
        .await;
    assert_eq!(r["status"], -1, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsi_auth_must_come_in_time() {
    let dir = TempDir::new("wsi-timeout");
    let server = Server::start(dir.path(), &[]);
    let mut wsi = Wsi::connect(server.http).await;
    let started = Instant::now();
    // The server gives 10 s; the client waits for its close (bounded).
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(20), wsi.ws.next()).await {
            Ok(Some(Ok(Message::Close(c)))) => break c.map_or(1005, |c| c.code.into()),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close: {other:?}"),
        }
    };
    assert_eq!(code, 1008);
    assert!(started.elapsed() >= Duration::from_secs(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsi_refuses_unauthorised_and_malformed_subscriptions() {
    let dir = TempDir::new("wsi-topics");
    let server = Server::start(dir.path(), &[]);
    let a = server.admin().create_tenant("A", DOMAIN_A);
    let mut wsi = Wsi::admin(server.http).await;
    for (bad, error) in [
        (
            json!({"topics": ["cdr_events"]}),
            "topic cdr_events is not allowed",
        ),
        (
            json!({"topics": ["global_cdr_events"]}),
            "global_cdr_events needs a non-empty tenants list",
        ),
        (
            json!({"topics": ["global_cdr_events"], "tenants": ["883611252155219968"]}),
            "unknown tenant 883611252155219968",
        ),
        (
            json!({"topics": ["extension_events"], "tenants": [a]}),
            "unknown topic \"extension_events\"",
        ),
        (json!({"topics": []}), "topics must be a non-empty array"),
        (
            json!({"topics": ["global_cdr_events"], "tenants": [a], "from_sequence": "x"}),
            "from_sequence must be a non-negative integer",
        ),
    ] {
        let mut command = bad.clone();
        command["command"] = json!("subscribe");
        let r = wsi.command(command).await;
        assert_eq!(
            r,
            json!({"command": "subscribe", "status": -1, "error": error}),
            "{bad}"
        );
    }
    // The connection is still usable after refusals.
    let r = wsi
        .command(json!({"command": "subscribe", "topics": ["global_cdr_events"], "tenants": [a]}))
        .await;
    assert_eq!(r["status"], 0, "{r}");
    assert!(r.get("recovered").is_none(), "no resume asked: {r}");
    let r = wsi.command(json!({"command": "unsubscribe"})).await;
    assert_eq!(r["status"], 0, "{r}");
}

/// A subscriber sees two calls, disconnects while 100 calls complete (and
/// tenant B calls too), resumes from its last `sequence`: exactly the
/// missed events, in order, then live ones; never one of tenant B's.
async fn resume_after_100_calls(extra: &[&str]) {
    let dir = TempDir::new("wsi-resume");
    let server = Server::start(dir.path(), extra);
    let (a, b) = provision(&server);

    let mut wsi = Wsi::admin(server.http).await;
    let r = wsi
        .command(json!({"command": "subscribe", "topics": ["global_cdr_events"], "tenants": [a]}))
        .await;
    assert_eq!(r["status"], 0, "{r}");
    let s = server.sip;
    blocking(move || calls(s, DOMAIN_A, 2)).await;
    let mut last = 0;
    let mut cdrs = 0;
    while cdrs < 2 {
        let event = wsi.json().await;
        assert_eq!(event["tenant_id"], a.as_str(), "{event}");
        let sequence = event["sequence"].as_u64().expect("sequence");
        assert_eq!(sequence, last + 1, "{event}");
        last = sequence;
        cdrs += u32::from(event["event_type"] == "call_cdr");
    }
    drop(wsi);

    let (s, http, tenant_a) = (server.sip, server.http, a.clone());
    blocking(move || {
        calls(s, DOMAIN_A, 50);
        calls(s, DOMAIN_B, 5);
        calls(s, DOMAIN_A, 50);
        let mut admin = Http::new(http);
        admin.login(ADMIN_PASSWORD);
        admin.tenant = Some(tenant_a);
        wait_for_cdrs(&admin, 102);
    })
    .await;

    // Resume with a REST token, as an integration would.
    let token = server.admin().token.expect("token");
    let mut wsi = Wsi::connect(server.http).await;
    let r = wsi
        .command(json!({"command": "auth", "access_token": token}))
        .await;
    assert_eq!(r["status"], 0, "{r}");
    let r = wsi
        .command(json!({"command": "subscribe", "topics": ["global_cdr_events"], "tenants": [a], "from_sequence": last}))
        .await;
    assert_eq!(r["status"], 0, "{r}");
    assert_eq!(r["recovered"], true, "{r}");
    let mut sessions = std::collections::HashSet::new();
    while sessions.len() < 100 {
        let event = wsi.json().await;
        assert_eq!(event["tenant_id"], a.as_str(), "tenant B leaked: {event}");
        let sequence = event["sequence"].as_u64().expect("sequence");
        assert_eq!(sequence, last + 1, "gap or duplicate: {event}");
        last = sequence;
        if event["event_type"] == "call_cdr" {
            assert!(sessions.insert(event["session_id"].as_str().unwrap().to_owned()));
        }
    }
    // Live: the next call's events follow without gap, first its start.
    let s = server.sip;
    blocking(move || calls(s, DOMAIN_B, 1)).await;
    let s = server.sip;
    blocking(move || calls(s, DOMAIN_A, 1)).await;
    let event = wsi.json().await;
    assert_eq!(event["tenant_id"], a.as_str(), "{event}");
    assert_eq!(event["event_type"], "call_start", "{event}");
    assert_eq!(event["sequence"], last + 1, "{event}");
    let _ = b;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsi_resume_after_100_calls_on_sqlite() {
    resume_after_100_calls(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsi_resume_after_100_calls_on_postgres() {
    let Some(db) = common::pg::PgDatabase::create("wsi_resume_after_100_calls_on_postgres") else {
        return;
    };
    resume_after_100_calls(&["--database", &db.url]).await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsi_slow_consumer_is_closed_with_4008() {
    let dir = TempDir::new("wsi-slow");
    let config = dir.path().join("tally.toml");
    std::fs::write(&config, "[wsi]\nsend_queue = 64\n").unwrap();
    let server = Server::start(dir.path(), &["--config", config.to_str().unwrap()]);
    let (a, _) = provision(&server);

    // A reader that keeps up is never closed; one that stops reading is.
    let mut fast = Wsi::admin(server.http).await;
    let mut slow = Wsi::connect_with(server.http, Some(4096)).await;
    let r = slow
        .command(json!({"command": "auth", "username": "admin", "password": ADMIN_PASSWORD}))
        .await;
    assert_eq!(r["status"], 0, "{r}");
    for wsi in [&mut fast, &mut slow] {
        let r = wsi
            .command(
                json!({"command": "subscribe", "topics": ["global_cdr_events"], "tenants": [a]}),
            )
            .await;
        assert_eq!(r["status"], 0, "{r}");
    }
    // The fast reader drains in the background.
    let reader = tokio::spawn(async move {
        let mut last = 0;
        loop {
            match fast.frame().await {
                Frame::Json(event) => {
                    assert_eq!(event["sequence"], last + 1, "{event}");
                    last += 1;
                }
                Frame::Close(c) => return (last, c),
            }
        }
    });
    // Calls until the kernel's buffers and the queue of 64 are full (bounded).
    let s = server.sip;
    let mut made = 0;
    let mut closed = None;
    while made < 3_000 && closed.is_none() {
        blocking(move || calls(s, DOMAIN_A, 25)).await;
        made += 25;
        // The server says when it gives up on the slow one (reading the
        // socket to find out would drain it).
        if server.stderr().contains("code=4008") {
            closed = Some(made);
        }
    }
    let made = closed.unwrap_or_else(|| panic!("not closed after {made} calls"));
    eprintln!("slow consumer closed after {made} calls");
    // The slow client finds its backlog, then the close frame with 4008.
    let mut last = 0;
    let code = loop {
        match slow.frame().await {
            Frame::Json(event) => {
                assert_eq!(event["sequence"], last + 1, "in order up to the close");
                last += 1;
            }
            Frame::Close(c) => break c.map_or(1005, |c| c.code.into()),
        }
    };
    assert_eq!(code, 4008);
    assert!(last > 0);
    assert!(!reader.is_finished(), "the fast reader is still subscribed");
    reader.abort();
}

/// A tenant with SIP users 101 (web sign-in, `Admin`), 102 (web sign-in,
/// `QueueManager`) and 103 (`StandardUser`); web passwords `web-pass-<ext>`.
fn tenant_with_roles(admin: &Http, name: &str, domain: &str) -> String {
    let tenant = admin.create_tenant(name, domain);
    for (ext, role) in [
        ("101", "Admin"),
        ("102", "QueueManager"),
        ("103", "StandardUser"),
    ] {
        let r = admin.post_json(
            &format!("/api/tenants/{tenant}/users"),
            &json!({
                "extension": ext,
                "sip_password": format!("s3cret-{ext}"),
                "password": format!("web-pass-{ext}"),
                "role": role,
            }),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    tenant
}

/// Signed in as a tenant user with its web password.
async fn tenant_user(http: SocketAddr, ext: &str, domain: &str) -> Wsi {
    let mut wsi = Wsi::connect(http).await;
    let r = wsi
        .command(json!({"command": "auth", "username": ext, "password": format!("web-pass-{ext}"), "domain": domain}))
        .await;
    assert_eq!(r["status"], 0, "{ext}@{domain}: {r}");
    wsi
}

/// Events until `tenant`'s `call_cdr` number `cdrs`, each checked to be
/// the tenant's next `sequence`; returns the last sequence.
async fn follow(wsi: &mut Wsi, tenant: &str, mut last: u64, mut cdrs: usize) -> u64 {
    while cdrs > 0 {
        let event = wsi.json().await;
        assert_eq!(
            event["tenant_id"], tenant,
            "another tenant's event: {event}"
        );
        assert_eq!(event["sequence"], last + 1, "{event}");
        last += 1;
        if event["event_type"] == "call_cdr" {
            cdrs -= 1;
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsi_tenant_admins_get_their_own_tenant_only() {
    let dir = TempDir::new("wsi-tenants");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let a = tenant_with_roles(&admin, "A", DOMAIN_A);
    let b = tenant_with_roles(&admin, "B", DOMAIN_B);

    // Sign-in failures: wrong web password, the SIP password, no domain.
    for (username, password, domain) in [
        ("101", "web-pass-nope", Some(DOMAIN_A)),
        ("101", "s3cret-101", Some(DOMAIN_A)),
        ("101", "web-pass-101", None),
        (
            "101",
            "web-pass-101",
            Some(DOMAIN_B.replace('b', "c").as_str()),
        ),
    ] {
        let mut wsi = Wsi::connect(server.http).await;
        let mut command = json!({"command": "auth", "username": username, "password": password});
        if let Some(d) = domain {
            command["domain"] = json!(d);
        }
        let r = wsi.command(command).await;
        assert_eq!(r["status"], -1, "{username} {password} {domain:?}: {r}");
    }

    // Rights: a tenant Admin has cdr_events of its own tenant, nothing else;
    // the other roles have nothing.
    let mut admin_a = tenant_user(server.http, "101", DOMAIN_A).await;
    for (bad, error) in [
        (
            json!({"topics": ["cdr_events"], "tenants": [b]}),
            "topic cdr_events is not allowed",
        ),
        (
            json!({"topics": ["global_cdr_events"], "tenants": [a]}),
            "topic global_cdr_events is not allowed",
        ),
    ] {
        let mut command = bad.clone();
        command["command"] = json!("subscribe");
        let r = admin_a.command(command).await;
        assert_eq!(
            r,
            json!({"command": "subscribe", "status": -1, "error": error}),
            "{bad}"
        );
    }
    for ext in ["102", "103"] {
        let mut wsi = tenant_user(server.http, ext, DOMAIN_A).await;
        let r = wsi
            .command(json!({"command": "subscribe", "topics": ["cdr_events"]}))
            .await;
        assert_eq!(r["status"], -1, "{ext}: {r}");
    }
    let r = admin_a
        .command(json!({"command": "subscribe", "topics": ["cdr_events"], "tenants": [a]}))
        .await;
    assert_eq!(r["status"], 0, "{r}");
    let mut admin_b = tenant_user(server.http, "101", DOMAIN_B).await;
    let r = admin_b
        .command(json!({"command": "subscribe", "topics": ["cdr_events"]}))
        .await;
    assert_eq!(r["status"], 0, "{r}");
    // An Admin API key of tenant A, as an integration would use it.
    let mut key_client = Http::new(server.http);
    let r = key_client.form(
        "/api/login/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", "101"),
            ("password", "web-pass-101"),
            ("domain", DOMAIN_A),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    key_client.token = Some(r.json()["access_token"].as_str().unwrap().to_owned());
    let r = key_client.post_json("/api/api_keys", &json!({"name": "crm", "role": "Admin"}));
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.json()["key"].as_str().unwrap().to_owned();
    let mut by_key = Wsi::connect(server.http).await;
    let r = by_key
        .command(json!({"command": "auth", "access_token": key}))
        .await;
    assert_eq!(r["status"], 0, "{r}");
    let r = by_key
        .command(json!({"command": "subscribe", "topics": ["cdr_events"]}))
        .await;
    assert_eq!(r["status"], 0, "{r}");

    // Calls in both tenants, interleaved: each side sees its own only.
    let sip = server.sip;
    blocking(move || {
        calls(sip, DOMAIN_A, 2);
        calls(sip, DOMAIN_B, 3);
        calls(sip, DOMAIN_A, 1);
    })
    .await;
    let last_a = follow(&mut admin_a, &a, 0, 3).await;
    assert_eq!(follow(&mut by_key, &a, 0, 3).await, last_a);
    let last_b = follow(&mut admin_b, &b, 0, 3).await;
    // Nothing of B is queued behind A's events: B calls, then A, and A's
    // admin's next event is A's.
    blocking(move || {
        calls(sip, DOMAIN_B, 1);
        calls(sip, DOMAIN_A, 1);
    })
    .await;
    let end_a = follow(&mut admin_a, &a, last_a, 1).await;
    follow(&mut admin_b, &b, last_b, 1).await;

    // A tenant admin resumes too.
    let mut again = tenant_user(server.http, "101", DOMAIN_A).await;
    let r = again
        .command(json!({"command": "subscribe", "topics": ["cdr_events"], "from_sequence": last_a}))
        .await;
    assert_eq!(
        (r["status"].clone(), r["recovered"].clone()),
        (json!(0), json!(true)),
        "{r}"
    );
    assert_eq!(follow(&mut again, &a, last_a, 1).await, end_a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsi_connections_close_with_1001_when_the_server_stops() {
    let dir = TempDir::new("wsi-stop");
    let server = Server::start(dir.path(), &[]);
    let (a, _) = provision(&server);
    let mut subscribed = Wsi::admin(server.http).await;
    let r = subscribed
        .command(json!({"command": "subscribe", "topics": ["global_cdr_events"], "tenants": [a]}))
        .await;
    assert_eq!(r["status"], 0, "{r}");
    let mut signed_in = Wsi::admin(server.http).await;
    let mut anonymous = Wsi::connect(server.http).await;
    server.send_term();
    for wsi in [&mut subscribed, &mut signed_in, &mut anonymous] {
        assert_eq!(wsi.close_code().await, 1001);
    }
    let (status, _) = blocking(move || server.wait_exit()).await;
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsi_pings_and_closes_a_client_that_went_silent() {
    let dir = TempDir::new("wsi-ping");
    let config = dir.path().join("tally.toml");
    std::fs::write(&config, "[wsi]\nping_secs = 1\n").unwrap();
    let server = Server::start(dir.path(), &["--config", config.to_str().unwrap()]);
    let mut alive = Wsi::admin(server.http).await;
    let mut silent = Wsi::admin(server.http).await;

    // A client that reads answers the pings (tungstenite does, on read)
    // and stays connected.
    let mut pings = 0;
    while pings < 4 {
        match tokio::time::timeout(WAIT, alive.ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("expected pings, got {other:?}"),
        }
    }
    // One that read nothing for those four seconds sent no pong: it finds
    // the pings, then the close.
    let mut seen = 0;
    let code = loop {
        match tokio::time::timeout(WAIT, silent.ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Ping(_))) => seen += 1,
            Some(Ok(Message::Close(c))) => break c.map_or(1005, |c| c.code.into()),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, 1001);
    assert!(seen >= 1, "{seen} pings before the close");
    // The reader is still served.
    let r = alive
        .command(json!({"command": "subscribe", "topics": ["global_cdr_events"], "tenants": ["1"]}))
        .await;
    assert_eq!(r["status"], -1, "an unknown tenant, but an answer: {r}");
}
