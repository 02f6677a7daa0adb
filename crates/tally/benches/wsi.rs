//! Benchmark (a report, not a test): N concurrent `/wsi` subscribers of one
//! tenant receiving every event while calls complete at a steady rate on
//! the real binary. Measures, per subscriber and call, the time from the
//! caller sending BYE to that subscriber receiving the call's `call_cdr`
//! (SIP processing, group commit, relay, hub, WebSocket), and the server's
//! resident memory. See bench/wsi/README.md for the commands and figures.
//!
//! Settings (environment): `WSI_BENCH_SUBSCRIBERS` (1000), `WSI_BENCH_CALLS`
//! (300), `WSI_BENCH_RATE` (calls per second, 10).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, Http, Phone, TempDir, free_sip_port};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const DOMAIN: &str = "bench.wsi.example";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU time of a process so far, in seconds (Linux
/// reports it in clock ticks, 100 per second).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// One subscriber: connects, signs in with the token, subscribes, then
/// records when each `call_cdr` arrives.
async fn subscriber(
    http: SocketAddr,
    token: String,
    tenant: String,
    calls: usize,
    ready: Arc<AtomicUsize>,
) -> (usize, Vec<(String, Instant)>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/wsi"))
        .await
        .expect("connect");
    for command in [
        json!({"command": "auth", "access_token": token}),
        json!({"command": "subscribe", "topics": ["global_cdr_events"], "tenants": [tenant]}),
    ] {
        ws.send(Message::text(command.to_string())).await.unwrap();
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    assert_eq!(v["status"], 0, "{v}");
                    break;
                }
                Some(Ok(_)) => continue,
                other => panic!("setup: {other:?}"),
            }
        }
    }
    ready.fetch_add(1, Ordering::SeqCst);
    let mut events = 0;
    let mut cdrs = Vec::with_capacity(calls);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while cdrs.len() < calls {
        let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(other) => panic!("subscriber: {other:?}"),
            Err(_) => break,
        };
        let Message::Text(text) = frame else { continue };
        let at = Instant::now();
        events += 1;
        // Only the call_cdr events are parsed: the clients share the
        // machine with the server being measured.
        if text.as_str().contains("\"event_type\":\"call_cdr\"") {
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            cdrs.push((v["call_id"].as_str().unwrap_or_default().to_owned(), at));
        }
    }
    (events, cdrs)
}

fn main() {
    let subscribers = setting("WSI_BENCH_SUBSCRIBERS", 1000);
    let calls = setting("WSI_BENCH_CALLS", 300);
    let rate = setting("WSI_BENCH_RATE", 10).max(1);

    let dir = TempDir::new("wsi-bench");
    let (sip_port, http_port) = (free_sip_port(), free_sip_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--sip-bind",
            "127.0.0.1",
            "--sip-port",
            &sip_port.to_string(),
        ])
        .args([
            "--http-bind",
            "127.0.0.1",
            "--http-port",
            &http_port.to_string(),
        ])
        .args(["--admin-password", ADMIN_PASSWORD])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start tally");
    let pid = child.id();
    let sip = SocketAddr::from(([127, 0, 0, 1], sip_port));
    let http = SocketAddr::from(([127, 0, 0, 1], http_port));
    let started = Instant::now();
    while std::net::TcpStream::connect(http).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "tally did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut admin = Http::new(http);
    admin.login(ADMIN_PASSWORD);
    let tenant = admin.create_tenant("Bench", DOMAIN);
    admin.create_user(&tenant, "101", "s3cret-101");
    admin.create_user(&tenant, "102", "s3cret-102");
    let token = admin.token.clone().expect("token");
    let (rss_idle, _) = memory(pid);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ready = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..subscribers)
        .map(|_| {
            runtime.spawn(subscriber(
                http,
                token.clone(),
                tenant.clone(),
                calls,
                Arc::clone(&ready),
            ))
        })
        .collect();
    let setup = Instant::now();
    while ready.load(Ordering::SeqCst) < subscribers {
        assert!(
            setup.elapsed() < Duration::from_secs(120),
            "subscribers not ready"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let setup = setup.elapsed();
    let (rss_subscribed, _) = memory(pid);

    // Calls at a steady rate: 101 calls 102, answered at once, hung up at
    // once; the BYE's send time is the reference.
    let mut callee = Phone::new("102", "s3cret-102", DOMAIN, sip);
    assert_eq!(callee.register(), 200);
    let caller = Phone::new("101", "s3cret-101", DOMAIN, sip);
    let answering = std::thread::spawn(move || {
        for _ in 0..calls {
            let invite = callee.recv_request("INVITE");
            callee.reply(&invite, 200, "b1");
            let _ack = callee.recv_request("ACK");
            let bye = callee.recv_request("BYE");
            callee.reply(&bye, 200, "b1");
        }
    });
    let mut bye_sent = HashMap::with_capacity(calls);
    let cpu_before = cpu_seconds(pid);
    let client_cpu_before = cpu_seconds(std::process::id());
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let load = Instant::now();
    for i in 0..calls {
        let due = load + period * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut call = caller.invite("102", |_| {});
        assert_eq!(call.status, 200);
        caller.ack(&call, "102");
        bye_sent.insert(call.call_id.clone(), Instant::now());
        assert_eq!(caller.bye(&mut call, "102"), 200);
    }
    let load = load.elapsed();
    answering.join().unwrap();

    let results: Vec<_> = runtime.block_on(async {
        let mut all = Vec::with_capacity(clients.len());
        for c in clients {
            all.push(c.await.expect("subscriber"));
        }
        all
    });
    let (rss_end, rss_peak) = memory(pid);
    let cpu = cpu_seconds(pid) - cpu_before;
    let client_cpu = cpu_seconds(std::process::id()) - client_cpu_before;
    let _ = child.kill();
    let _ = child.wait();

    let mut latencies: Vec<Duration> = Vec::with_capacity(subscribers * calls);
    let mut missing = 0;
    let mut events = Vec::with_capacity(results.len());
    for (n, cdrs) in &results {
        events.push(*n);
        missing += calls - cdrs.len();
        for (call_id, at) in cdrs {
            let sent = bye_sent.get(call_id).expect("a call of ours");
            latencies.push(at.saturating_duration_since(*sent));
        }
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    let total: usize = events.iter().sum();
    println!("subscribers            {subscribers}");
    println!(
        "calls                  {calls} at {rate}/s (load took {:.1} s)",
        load.as_secs_f64()
    );
    println!(
        "events per subscriber  min {} max {}",
        events.iter().min().unwrap_or(&0),
        events.iter().max().unwrap_or(&0)
    );
    println!(
        "frames delivered       {total} ({:.0}/s)",
        total as f64 / load.as_secs_f64()
    );
    println!("call_cdr missing       {missing}");
    println!(
        "BYE -> call_cdr (ms)   p50 {:.2}  p99 {:.2}  max {:.2}  (n = {})",
        pct(0.50),
        pct(0.99),
        pct(1.0),
        latencies.len()
    );
    println!("subscribe all          {:.2} s", setup.as_secs_f64());
    println!(
        "server CPU             {cpu:.1} s during the load ({:.0} % of one core)",
        100.0 * cpu / load.as_secs_f64()
    );
    println!(
        "bench client CPU       {client_cpu:.1} s ({:.0} % of one core: the subscribers and the phones)",
        100.0 * client_cpu / load.as_secs_f64()
    );
    println!(
        "server RSS (MiB)       idle {rss_idle:.1}  subscribed {rss_subscribed:.1}  end {rss_end:.1}  peak {rss_peak:.1}"
    );
}
