//! The SIP side of the security review (issue 17, findings 7 and 10) and
//! `/metrics`, against the real binary: forged large INVITEs must not draw
//! more bytes than they carry, a source past its transaction cap gets
//! `503` with `Retry-After`, and the metrics listener answers only who it should, in
//! a format a Prometheus parser reads, with values that move after a call.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Http, Server, TempDir, free_tcp_port};
use sip::Message;

const DOMAIN: &str = "limits.example.com";

/// A server started with `config` (TOML) and tenant `DOMAIN` with users
/// 101 and 102 (passwords `s3cret-101`, `s3cret-102`).
fn server(name: &str, config: &str) -> (TempDir, Server, Http) {
    let dir = TempDir::new(name);
    let path = dir.path().join("tally.toml");
    std::fs::write(&path, config).expect("config");
    let path = path.to_str().expect("utf-8").to_owned();
    let server = Server::start(dir.path(), &["--config", &path]);
    let mut admin = server.admin();
    let tenant = admin.create_tenant("Limits", DOMAIN);
    admin.create_user(&tenant, "101", "s3cret-101");
    admin.create_user(&tenant, "102", "s3cret-102");
    admin.tenant = Some(tenant);
    (dir, server, admin)
}

/// An out-of-dialog INVITE from 101 with no credentials: `vias` Via
/// headers, padded so the whole is about `size` bytes.
fn forged_invite(from: std::net::SocketAddr, n: usize, vias: usize, size: usize) -> String {
    let mut head = format!(
        "INVITE sip:102@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-forged{n};rport\r\n"
    );
    let tail = format!(
        "Max-Forwards: 70\r\nFrom: <sip:101@{DOMAIN}>;tag=f{n}\r\nTo: <sip:102@{DOMAIN}>\r\n\
         Call-ID: forged-{n}@test\r\nCSeq: 1 INVITE\r\nContact: <sip:101@{from}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let per_via = (size - head.len() - tail.len()) / (vias - 1);
    for i in 1..vias {
        let start = format!(
            "Via: SIP/2.0/UDP 10.{}.{}.1:5060;branch=z9hG4bK{i}x",
            i / 250,
            i % 250
        );
        let pad = per_via.saturating_sub(start.len() + 2);
        head.push_str(&start);
        head.push_str(&"p".repeat(pad));
        head.push_str("\r\n");
    }
    head + &tail
}

/// Sends `count` INVITEs shaped by `shape` from one socket, 50 ms apart,
/// listens `listen` more, and returns (bytes sent, bytes received, the
/// status codes received).
fn exchange(
    server: &Server,
    count: usize,
    listen: Duration,
    shape: impl Fn(std::net::SocketAddr, usize) -> String,
) -> (usize, usize, Vec<u16>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let local = socket.local_addr().expect("local");
    // Read while sending: 64 KB answers would overflow the socket buffer.
    let received = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let socket = socket.try_clone().expect("clone");
        let (received, done) = (Arc::clone(&received), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut codes = Vec::new();
            let mut buf = vec![0u8; 65_536];
            while !done.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    received.fetch_add(n, Ordering::Relaxed);
                    let status = Message::parse(bytes::Bytes::copy_from_slice(&buf[..n]))
                        .ok()
                        .and_then(|m| m.status())
                        .unwrap_or(0);
                    codes.push(status);
                }
            }
            codes
        })
    };
    let mut sent = 0;
    for n in 0..count {
        let invite = shape(local, n);
        socket.send_to(invite.as_bytes(), server.sip).expect("send");
        sent += invite.len();
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(listen);
    done.store(true, Ordering::Relaxed);
    let codes = reader.join().expect("reader");
    (sent, received.load(Ordering::Relaxed), codes)
}

#[test]
fn forged_large_invites_draw_no_more_bytes_than_they_carry() {
    let (_dir, server, _) = server("amplify", "");
    // 5 s: before the fix, a 100 Trying and a 407 at once, then the 407
    // again at 0.5, 1.5 and 3.5 s (Timer G).
    let listen = Duration::from_secs(5);
    // The review's shape: about 50 KB with 200 Vias.
    let (sent, received, codes) = exchange(&server, 4, listen, |from, n| {
        forged_invite(from, n, 200, 50_000)
    });
    eprintln!("50 KB INVITEs: sent {sent} bytes, Tally answered {received} ({codes:?})");
    assert!(
        received <= sent,
        "50 KB INVITEs: sent {sent} bytes, Tally answered {received} ({codes:?})"
    );
    assert!(
        !codes.contains(&100),
        "a 100 Trying to a refused INVITE: {codes:?}"
    );
    // The measure: 64 KB with 250 Vias.
    let (sent, received, codes) = exchange(&server, 4, listen, |from, n| {
        forged_invite(from, 100 + n, 250, 64_000)
    });
    eprintln!("64 KB INVITEs: sent {sent} bytes, Tally answered {received} ({codes:?})");
    assert!(
        received <= sent,
        "64 KB INVITEs: sent {sent} bytes, Tally answered {received} ({codes:?})"
    );
    // A small real INVITE is still challenged, once: the 407 fits its budget.
    let (_, _, codes) = exchange(&server, 1, Duration::from_millis(1_700), |from, n| {
        forged_invite(from, 200 + n, 2, 400)
    });
    assert_eq!(codes, [407], "a small INVITE gets its 407, once, no 100");
}

#[test]
fn a_source_past_its_transaction_cap_gets_503_with_retry_after() {
    let (_dir, server, _) = server("txn-cap", "[sip]\nmax_transactions_per_source = 3\n");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let local = socket.local_addr().expect("local");
    let mut answers = Vec::new();
    // Unanswered challenges stay (Timer H, 32 s) and hold their share.
    for n in 0..5 {
        let invite = forged_invite(local, n, 2, 400);
        socket.send_to(invite.as_bytes(), server.sip).expect("send");
        let mut buf = vec![0u8; 65_536];
        let len = socket.recv(&mut buf).expect("an answer");
        let m = Message::parse(bytes::Bytes::copy_from_slice(&buf[..len])).expect("parse");
        answers.push((
            m.status().unwrap_or(0),
            m.header_named("Retry-After").map(str::to_owned),
        ));
    }
    assert_eq!(
        answers,
        [
            (407, None),
            (407, None),
            (407, None),
            (503, Some("5".to_owned())),
            (503, Some("5".to_owned())),
        ]
    );
    // Another source is not affected.
    let other = UdpSocket::bind("127.0.0.2:0").expect("bind another loopback address");
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let invite = forged_invite(other.local_addr().expect("local"), 9, 2, 400);
    other.send_to(invite.as_bytes(), server.sip).expect("send");
    let mut buf = vec![0u8; 65_536];
    let len = other.recv(&mut buf).expect("an answer");
    let m = Message::parse(bytes::Bytes::copy_from_slice(&buf[..len])).expect("parse");
    assert_eq!(m.status(), Some(407));
}

/// One sample's value by metric name (with or without OpenMetrics'
/// `_total`) and labels.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| {
            (s.metric == name || s.metric == format!("{name}_total"))
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no {name} {labels:?} in {:?}", scrape.samples));
    match &sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        prometheus_parse::Value::Histogram(buckets) => {
            buckets.iter().map(|b| b.count).fold(0.0, f64::max)
        }
        other => panic!("{name}: {other:?}"),
    }
}

fn scrape(metrics: &Http) -> prometheus_parse::Scrape {
    let r = metrics.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    let lines = r.body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("a Prometheus text scrape")
}

#[test]
fn metrics_need_the_token_and_move_after_a_call() {
    let port = free_tcp_port();
    let token = "a-long-metrics-token-for-tests";
    let (_dir, server, admin) = server(
        "metrics",
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\nallow = []\ntoken = \"{token}\"\n"),
    );
    let mut metrics = Http::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    // Not on the public API, and not without the token.
    assert_eq!(server.http().get("/metrics").status, 404);
    assert_eq!(metrics.get("/metrics").status, 401);
    metrics.token = Some("a-wrong-metrics-token-for-tests".into());
    assert_eq!(metrics.get("/metrics").status, 401);
    metrics.token = Some(token.into());

    let before = scrape(&metrics);
    let calls = value(&before, "tally_calls_started", &[]);
    let commits = value(&before, "tally_cdr_commit_seconds", &[]);
    common::answered_call(&server, DOMAIN);
    common::wait_for_cdrs(&admin, 1);
    // The engine's figures are sampled once a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let s = scrape(&metrics);
        if value(&s, "tally_registrations", &[]) >= 1.0 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(value(&after, "tally_calls_started", &[]), calls + 1.0);
    assert!(value(&after, "tally_cdr_commit_seconds", &[]) > commits);
    assert_eq!(value(&after, "tally_registrations", &[]), 1.0);
    for kind in ["server", "client"] {
        value(&after, "tally_sip_transactions", &[("kind", kind)]);
    }
    for outcome in ["rejected", "dropped", "queue_full"] {
        value(
            &after,
            "tally_sip_transport_refused",
            &[("outcome", outcome)],
        );
    }
    value(&after, "tally_outbox_lag_events", &[]);
    value(&after, "tally_wsi_subscribers", &[]);
    value(&after, "tally_sip_tcp_connections", &[]);
    // The store's pools were waited for (the call's REST reads, at least),
    // and every webhook result is there (0 here: no webhook configured).
    assert!(
        value(&after, "tally_store_pool_acquires", &[])
            > value(&before, "tally_store_pool_acquires", &[])
    );
    assert!(value(&after, "tally_store_pool_wait_seconds", &[]) >= 0.0);
    assert_eq!(value(&after, "tally_store_pool_timeouts", &[]), 0.0);
    for result in delivery::webhook::stats::RESULTS {
        assert_eq!(
            value(&after, "tally_webhook_attempts", &[("result", result)]),
            0.0,
            "{result}"
        );
    }
}
