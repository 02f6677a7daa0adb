//! Issue 17 finding 1, the token check: a store that cannot answer while a
//! bearer token is checked is `503 SERVICE_UNAVAILABLE` with `Retry-After`,
//! never `401` (which tells a client whose token is fine to sign in
//! again). The real binary runs on PostgreSQL through a loopback TCP proxy
//! the test cuts: pooled connections die and new ones are closed at once.
//! Needs `TALLY_TEST_POSTGRES_URL` (prints `SKIPPED` without it).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg::PgDatabase;
use common::{Server, TempDir};
use serde_json::json;

/// A TCP proxy to `upstream` that can be cut (every open connection shut,
/// new ones closed on accept) and restored.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            up: Arc::new(AtomicBool::new(true)),
            open: Arc::default(),
            stop: Arc::default(),
        };
        let (up, open, stop) = (proxy.up.clone(), proxy.open.clone(), proxy.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                if !up.load(Ordering::Relaxed) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut open = open.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        proxy
    }

    fn cut(&self) {
        self.up.store(false, Ordering::Relaxed);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL, and the URL with
/// `addr` in its place.
fn via(url: &str, addr: SocketAddr) -> (SocketAddr, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, rest) = rest.split_once('@').unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(host)
        .unwrap()
        .next()
        .unwrap();
    (upstream, format!("{scheme}://{user}@{addr}/{path}"))
}

#[test]
fn on_postgres_a_store_outage_during_the_token_check_is_503_never_401() {
    let test = "on_postgres_a_store_outage_during_the_token_check_is_503_never_401";
    let Some(db) = PgDatabase::create(test) else {
        return;
    };
    // The proxy's address is known once it runs; its upstream is the
    // database's server.
    let (upstream, _) = via(&db.url, "127.0.0.1:1".parse().unwrap());
    let proxy = Proxy::start(upstream);
    let (_, url) = via(&db.url, proxy.addr);
    let dir = TempDir::new("store-outage");
    let server = Server::start(dir.path(), &["--database", &url]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Outage", "outage.example.com");
    let r = admin.post_json(
        &format!("/api/tenants/{tenant}/users"),
        &json!({"extension": "100", "sip_password": "sip-secret-100",
                "password": "web-pass-100", "role": "Admin"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mut user = server.http();
    let r = user.form(
        "/api/login/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", "100"),
            ("password", "web-pass-100"),
            ("domain", "outage.example.com"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    user.token = Some(r.json()["access_token"].as_str().unwrap().to_owned());
    // What each may read: the system admin tenants, the tenant admin users.
    let reads = [
        ("system admin", &admin, "/api/tenants?top=1"),
        ("tenant admin", &user, "/api/users?top=1"),
    ];
    for (who, http, path) in reads {
        assert_eq!(http.get(path).status, 200, "{who}");
    }

    proxy.cut();
    for (who, http, path) in reads {
        for _ in 0..3 {
            let asked = Instant::now();
            let r = http.get(path);
            assert_eq!(
                (r.status, r.error_code().as_str()),
                (503, "SERVICE_UNAVAILABLE"),
                "{who}: {}",
                r.body
            );
            let retry = r
                .headers
                .iter()
                .find(|(k, _)| k == "retry-after")
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{who}: no Retry-After in {:?}", r.headers));
            assert!(retry.parse::<u64>().is_ok_and(|s| s > 0), "{retry}");
            assert!(
                asked.elapsed() < Duration::from_secs(20),
                "{who}: {:?}",
                asked.elapsed()
            );
        }
    }
    // A token that does not exist can't be told from a good one while the
    // store is down: also 503, not 401. No token at all is still 401.
    let mut stranger = server.http();
    stranger.token = Some("not-a-token".into());
    assert_eq!(stranger.get("/api/users").status, 503);
    assert_eq!(server.http().get("/api/users").status, 401);

    // The store comes back: the same tokens work again.
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = user.get("/api/users?top=1");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(Instant::now() < deadline, "the store never came back");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(admin.get("/api/tenants?top=1").status, 200);
}
