//! Secrets at rest against the real binary (issue 17), on SQLite and,
//! when `TALLY_TEST_POSTGRES_URL` is set, PostgreSQL: without a key the
//! start-up warns and rows are plaintext; with a key the next start seals
//! them, the raw rows no longer hold them, and the PBX still uses them (a
//! webhook with basic auth and a signing secret authenticates at a real
//! receiver, a register trunk answers a SIPp carrier's digest); a wrong
//! key or none for sealed rows stops the start with a clear error.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::pg::PgDatabase;
use common::{Http, Server, TempDir};
use delivery::webhook::Secret;
use serde_json::{Value, json};

const DOMAIN: &str = "sealed.example.com";
const HOOK_PASSWORD: &str = "hook-pass-4b1d9e";
const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CARRIER_PASSWORD: &str = "carrier-secret";
const KEY: &str = "5f0c8a3e1d2b4c6a7e9f0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4";
const OTHER_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// A webhook receiver that answers 200 only to the expected basic
/// credentials (401 otherwise) and keeps what it got.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
}

/// One request: its headers of interest (lowercase names) and body.
#[derive(Clone, Debug, Default)]
struct Got {
    headers: std::collections::HashMap<String, String>,
    body: Vec<u8>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got: Arc<Mutex<Vec<_>>> = Arc::default();
        let seen = Arc::clone(&got);
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("tally:{HOOK_PASSWORD}"))
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut got = Got::default();
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        got.headers
                            .insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                let len = got
                    .headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                got.body = vec![0u8; len];
                let _ = std::io::Read::read_exact(&mut reader, &mut got.body);
                let ok = got.headers.get("authorization") == Some(&expected);
                seen.lock().unwrap().push(got);
                let status = if ok { "200 OK" } else { "401 Unauthorized" };
                let mut out = stream;
                let _ = out.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        Receiver { addr, got }
    }
}

fn config(dir: &TempDir, database: Option<&str>, key: Option<&str>) -> String {
    let mut text = String::new();
    if let Some(url) = database {
        text.push_str(&format!("database = \"{url}\"\n"));
    }
    text.push_str("[webhooks]\nallow = [\"127.0.0.1/32\"]\n");
    if let Some(key) = key {
        let file = dir.path().join(format!("secret-{}.key", &key[..8]));
        std::fs::write(&file, format!("{key}\n")).unwrap();
        text.push_str(&format!(
            "[security]\nsecret_key_file = \"{}\"\n",
            file.display()
        ));
    }
    let path = dir
        .path()
        .join(format!("tally-{}.toml", key.unwrap_or("none")));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The secret columns as the database holds them.
fn raw_secrets(url: &str) -> String {
    let url = url.to_owned();
    std::thread::spawn(move || {
        use sqlx::Connection as _;
        const SQL: &str = "SELECT (SELECT password || '|' || secret FROM webhook_endpoints) \
                           || '|' || (SELECT password FROM trunks)";
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            if url.starts_with("postgres") {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query_scalar::<_, String>(SQL)
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            } else {
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query_scalar::<_, String>(SQL)
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
        })
    })
    .join()
    .unwrap()
}

/// Runs `tally serve` expecting it to refuse to start; returns its log.
fn refused_start(dir: &TempDir, config: &str) -> String {
    let log = dir.path().join("refused.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--config", config, "--sip-bind", "127.0.0.1", "--sip-port"])
        .arg(common::free_sip_port().to_string())
        .args(["--http-bind", "127.0.0.1", "--http-port"])
        .arg(common::free_tcp_port().to_string())
        .args(["--admin-password", common::ADMIN_PASSWORD])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + common::WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "tally started with the wrong key:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    std::fs::read_to_string(&log).unwrap()
}

fn send(http: &Http, method: &str, path: &str, body: &Value) -> common::http::Response {
    http.request(method, path, "application/json", &body.to_string())
}

fn trunk_registered(admin: &Http, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = admin.get(path).json()["status"]["registration"].clone();
        if state["registration"] == "registered" || state["registration"] == "failed" {
            return state;
        }
        assert!(Instant::now() < deadline, "registration stuck: {state}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn secrets_are_sealed_used_and_guarded(database: Option<&str>) {
    let dir = TempDir::new("secrets-at-rest");
    let url = database.map_or_else(
        || format!("sqlite:{}", dir.path().join("tally.db").display()),
        str::to_owned,
    );
    let receiver = Receiver::start();

    // 1. No key: a loud warning, and the secrets go in as they are.
    let server = Server::start(dir.path(), &["--config", &config(&dir, database, None)]);
    server.wait_stderr(|l| l.contains("WARN") && l.contains("PLAINTEXT"));
    let mut admin = server.admin();
    let tenant = admin.create_tenant("Sealed", DOMAIN);
    admin.tenant = Some(tenant);
    let hook = json!({"enabled": true, "url": format!("http://{}/hook", receiver.addr),
                      "auth": "BASIC", "username": "tally", "password": HOOK_PASSWORD,
                      "secret": SIGNING});
    let r = send(&admin, "PUT", "/api/tenant/cdr_event", &hook);
    assert_eq!(r.status, 200, "{}", r.body);
    let carrier_port = common::free_sip_port();
    let r = admin.post_json(
        "/api/trunks",
        &json!({"name": "carrier", "kind": "register", "host": "127.0.0.1",
                "port": carrier_port, "username": "15550100",
                "password": CARRIER_PASSWORD, "register_expires": 60}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let trunk = format!("/api/trunks/{}", r.json()["id"].as_str().unwrap());
    let raw = raw_secrets(&url);
    assert!(
        raw.contains(HOOK_PASSWORD) && raw.contains(SIGNING) && raw.contains(CARRIER_PASSWORD),
        "{raw}"
    );
    assert!(server.terminate().0.success());

    // 2. A key: the start-up seals the legacy rows; the PBX still uses
    // them. The carrier waits first, so the REGISTER sent at start-up
    // finds it.
    let carrier =
        common::sipp_available("secrets_are_sealed_used_and_guarded (trunk part)").then(|| {
            common::Sipp::spawn(
                "127.0.0.1:9".parse().unwrap(),
                "carrier_register.xml",
                "u1",
                carrier_port,
                &["-timeout", "40"],
            )
        });
    let keyed = config(&dir, database, Some(KEY));
    let server = Server::start(dir.path(), &["--config", &keyed]);
    server.wait_stderr(|l| l.contains("sealed with the secret key") && l.contains("secrets=3"));
    assert!(!server.stderr().contains("PLAINTEXT"));
    let raw = raw_secrets(&url);
    for secret in [HOOK_PASSWORD, SIGNING, CARRIER_PASSWORD] {
        assert!(!raw.contains(secret), "{secret} in {raw}");
    }
    assert_eq!(raw.matches("enc:v1:").count(), 3, "{raw}");
    let mut admin = server.admin();
    admin.tenant = Some(
        admin.get("/api/tenants").json()["items"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let r = admin.post_json("/api/tenant/webhook/test", &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["http_status"],
        200,
        "basic auth accepted: {}",
        r.body
    );
    // … and signed with the (sealed) signing secret.
    let got = receiver.got.lock().unwrap().last().cloned().unwrap();
    let h = |name: &str| got.headers.get(name).cloned().unwrap_or_default();
    assert!(
        Secret::parse(SIGNING).unwrap().verify(
            &h("webhook-id"),
            h("webhook-timestamp").parse().unwrap(),
            &got.body,
            &h("webhook-signature"),
        ),
        "{got:?}"
    );
    // The trunk answers the carrier's digest with the password it reads
    // back from its sealed row.
    if let Some(carrier) = carrier {
        let state = trunk_registered(&admin, &trunk);
        assert_eq!(state["registration"], "registered", "{state}");
        let (ok, log) = carrier.finish();
        assert!(ok, "{log}");
    }
    assert!(server.terminate().0.success());

    // 3. Another key, or none, for sealed rows: a clear refusal to start.
    let log = refused_start(&dir, &config(&dir, database, Some(OTHER_KEY)));
    assert!(
        log.contains("does not decrypt with the configured secret key"),
        "{log}"
    );
    assert!(log.contains("webhook_endpoints.password"), "{log}");
    let log = refused_start(&dir, &config(&dir, database, None));
    assert!(log.contains("no secret key is configured"), "{log}");
    // The rows are untouched: the right key still starts.
    let server = Server::start(dir.path(), &["--config", &keyed]);
    assert!(server.terminate().0.success());
}

#[test]
fn secrets_are_sealed_used_and_guarded_on_sqlite() {
    secrets_are_sealed_used_and_guarded(None);
}

#[test]
fn secrets_are_sealed_used_and_guarded_on_postgres() {
    let Some(db) = PgDatabase::create("secrets_are_sealed_used_and_guarded_on_postgres") else {
        return;
    };
    secrets_are_sealed_used_and_guarded(Some(&db.url));
}
