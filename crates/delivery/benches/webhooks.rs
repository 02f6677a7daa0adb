//! Webhook delivery benchmarks (a report, never a test): see
//! benches/README.md for the commands and the figures.
//!
//! 1. Throughput: N events committed through the real `StoreWriter`
//!    (whole calls, 5 events each) while the endpoint is off; then the
//!    endpoint is turned on and the clock runs until a loopback HTTP
//!    receiver has N distinct `webhook-id`s, every request signed.
//! 2. Latency: calls committed at a steady rate (one 5-event command per
//!    call; 100 calls/s = 500 events/s); for every event, the time from the
//!    writer acknowledging the commit to the receiver reading the request.
//!
//! Runs on SQLite (a temp file), and on PostgreSQL too when
//! `TALLY_TEST_POSTGRES_URL` is set.

#[path = "../../store/tests/common/mod.rs"]
mod common;
#[path = "../tests/receiver/mod.rs"]
mod receiver;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Ids, TestDb, create_tenants, short_call, tenant_id};
use delivery::webhook::{AllowList, ClientConfig, Dispatcher, DispatcherConfig, EndpointConfig};
use receiver::{Receiver, Reply};
use serde_json::json;
use store::WriterConfig;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn setup(
    db: &TestDb,
    enabled: bool,
) -> (store::Store, store::StoreWriter, Dispatcher, Receiver) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let writer = store.spawn_writer(WriterConfig::default());
    let mut config = DispatcherConfig::new(
        1,
        ClientConfig::new(AllowList::parse(&["127.0.0.1/32"]).unwrap()),
    );
    config.concurrency = env("BENCH_CONCURRENCY", 16) as usize;
    config.poll = Duration::from_millis(200);
    let dispatcher = Dispatcher::start(store.clone(), writer.committed_global_sequence(), config)
        .await
        .unwrap();
    let rx = Receiver::start(|_, _| Reply::status(200)).await;
    configure(&store, &dispatcher, &rx, enabled).await;
    (store, writer, dispatcher, rx)
}

async fn configure(store: &store::Store, dispatcher: &Dispatcher, rx: &Receiver, enabled: bool) {
    let body = json!({"enabled": enabled, "url": rx.url("/hook"), "secret": SECRET});
    let allow = AllowList::parse(&["127.0.0.1/32"]).unwrap();
    let config = EndpointConfig::from_json(&body, None, &allow).unwrap();
    let previous = store.webhook_endpoint(tenant_id(1)).await.unwrap();
    let row = config.to_stored(tenant_id(1), previous.as_ref(), cdr::UnixMillis(now_ms()));
    store.put_webhook_endpoint(&row).await.unwrap();
    dispatcher.endpoint_changed(tenant_id(1));
}

async fn throughput(db: &TestDb, label: &str) {
    if std::env::var("BENCH_SKIP_THROUGHPUT").is_ok() {
        return;
    }
    let events = env("BENCH_EVENTS", 20_000);
    let (store, writer, dispatcher, rx) = setup(db, false).await;
    // Commit with the endpoint off (the fan-out creates nothing), then
    // turn it on and replay everything: the clock measures fan-in of the
    // backlog, signing, sending and recording.
    let mut ids = Ids::node(1);
    let calls = events / 5;
    for i in 0..calls {
        writer
            .commit(short_call(&mut ids, 1, i * 10, "102"))
            .await
            .unwrap();
    }
    // Let the fan-out pass over them (endpoint off: nothing created).
    store
        .webhook_fan_out(u32::MAX, cdr::UnixMillis(now_ms()))
        .await
        .unwrap();
    configure(&store, &dispatcher, &rx, true).await;
    let started = Instant::now();
    let scheduled = store
        .replay_webhooks(
            tenant_id(1),
            0,
            None,
            cdr::UnixMillis(now_ms()),
            u32::MAX,
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    dispatcher.deliveries_due(tenant_id(1));
    assert_eq!(scheduled, events);
    let deadline = Instant::now() + Duration::from_secs(600);
    while (rx.count() as u64) < events {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    // Wait until every outcome is recorded too.
    loop {
        let pending = store.webhook_deliveries(tenant_id(1), 1, 0).await.unwrap();
        if pending
            .iter()
            .all(|d| d.status == store::DeliveryStatus::Delivered)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let recorded = started.elapsed();
    println!(
        "{label}: throughput: {events} signed deliveries in {:.2} s = {:.0}/s (all outcomes recorded after {:.2} s), concurrency {}",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64(),
        recorded.as_secs_f64(),
        env("BENCH_CONCURRENCY", 16)
    );
    assert_eq!(rx.distinct_ids().len() as u64, events);
    dispatcher.stop(Duration::from_secs(1)).await;
}

async fn latency(db: &TestDb, label: &str) {
    let rate = env("BENCH_EVENTS_PER_SEC", 500);
    let secs = env("BENCH_SECS", 10);
    let (store, writer, dispatcher, rx) = setup(db, true).await;
    let committed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut ids = Ids::node(1);
    let calls_per_sec = rate / 5;
    let period = Duration::from_secs(1) / calls_per_sec as u32;
    let total = calls_per_sec * secs;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut pending = tokio::task::JoinSet::new();
    let writer = Arc::new(writer);
    for i in 0..total {
        tick.tick().await;
        let call = short_call(&mut ids, 1, i * 10, "102");
        let event_ids: Vec<String> = call.wire.iter().map(|w| w.event_id().to_string()).collect();
        let writer = Arc::clone(&writer);
        let committed = Arc::clone(&committed);
        pending.spawn(async move {
            writer.commit(call).await.unwrap();
            let at = Instant::now();
            let mut c = committed.lock().unwrap();
            for id in event_ids {
                c.insert(id, at);
            }
        });
    }
    while pending.join_next().await.is_some() {}
    let events = total * 5;
    let deadline = Instant::now() + Duration::from_secs(120);
    while (rx.count() as u64) < events {
        assert!(
            Instant::now() < deadline,
            "timed out: {} of {events}",
            rx.count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut lat: Vec<f64> = {
        let committed = committed.lock().unwrap();
        rx.requests()
            .iter()
            .map(|r| {
                let c = committed[r.webhook_id()];
                r.at.saturating_duration_since(c).as_secs_f64() * 1000.0
            })
            .collect()
    };
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "{label}: latency at {rate} events/s for {secs} s ({} events): commit -> received p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        p(0.50),
        p(0.90),
        p(0.99),
        lat[lat.len() - 1]
    );
    // Retried deliveries (a first attempt that failed) would explain a tail.
    let mut retried = HashMap::<String, usize>::new();
    let mut skip = 0;
    loop {
        let page = store
            .webhook_deliveries(tenant_id(1), 100, skip)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        skip += page.len() as u64;
        for d in page.iter().filter(|d| d.log.len() > 1) {
            *retried.entry(d.log[0].outcome.clone()).or_default() += 1;
        }
    }
    if !retried.is_empty() {
        println!("{label}: first attempts that failed: {retried:?}");
    }
    dispatcher.stop(Duration::from_secs(1)).await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let only = std::env::var("BENCH_ONLY").unwrap_or_default();
        if only.is_empty() || only == "sqlite" {
            throughput(&TestDb::sqlite("bench_throughput"), "sqlite").await;
            latency(&TestDb::sqlite("bench_latency"), "sqlite").await;
        }
        if only.is_empty() || only == "postgres" {
            if let Some(db) = TestDb::postgres("bench_throughput").await {
                throughput(&db, "postgres").await;
            }
            if let Some(db) = TestDb::postgres("bench_latency").await {
                latency(&db, "postgres").await;
            }
        }
    });
}
