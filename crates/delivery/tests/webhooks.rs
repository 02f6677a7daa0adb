//! The webhook dispatcher end to end: store (SQLite, and PostgreSQL when
//! `TALLY_TEST_POSTGRES_URL` is set) → dispatcher → a real HTTP receiver
//! on loopback. Calls are committed through the real `StoreWriter`.

#[path = "../../store/tests/common/mod.rs"]
mod common;
mod receiver;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Ids, TestDb, create_tenants, short_call, tenant_id};
use delivery::webhook::guard::StaticResolver;
use delivery::webhook::{
    AllowList, ClientConfig, Dispatcher, DispatcherConfig, EndpointConfig, RetryPolicy, Secret,
};
use receiver::{Receiver, Reply, wait_until};
use serde_json::{Value, json};
use store::{DeliveryStatus, Store, StoreWriter, WriterConfig};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const LIMIT: Duration = Duration::from_secs(30);

fn schedule(ms: &[u64]) -> RetryPolicy {
    RetryPolicy {
        delays: ms.iter().map(|m| Duration::from_millis(*m)).collect(),
        ..RetryPolicy::default()
    }
}

struct Harness {
    store: Store,
    writer: StoreWriter,
    dispatcher: Option<Dispatcher>,
    ids: Ids,
    offset: u64,
}

impl Harness {
    async fn start(db: &TestDb, tenants: &[u64], policy: RetryPolicy) -> Harness {
        Harness::start_with(db, tenants, policy, |_| {}).await
    }

    async fn start_with(
        db: &TestDb,
        tenants: &[u64],
        policy: RetryPolicy,
        tweak: impl FnOnce(&mut DispatcherConfig),
    ) -> Harness {
        let store = db.open().await;
        create_tenants(&store, tenants.iter().copied()).await;
        let writer = store.spawn_writer(WriterConfig::default());
        let mut client = ClientConfig::new(AllowList::parse(&["127.0.0.1/32"]).unwrap());
        client.connect_timeout = Duration::from_secs(1);
        client.total_timeout = Duration::from_secs(3);
        let mut config = DispatcherConfig::new(1, client);
        config.policy = policy;
        config.poll = Duration::from_millis(100);
        config.scan = Duration::from_millis(300);
        tweak(&mut config);
        let dispatcher =
            Dispatcher::start(store.clone(), writer.committed_global_sequence(), config)
                .await
                .unwrap();
        Harness {
            store,
            writer,
            dispatcher: Some(dispatcher),
            ids: Ids::node(1),
            offset: 0,
        }
    }

    fn dispatcher(&self) -> &Dispatcher {
        self.dispatcher.as_ref().unwrap()
    }

    async fn configure(&self, tenant: u64, body: Value) {
        let allow = AllowList::parse(&["127.0.0.1/32"]).unwrap();
        let config = EndpointConfig::from_json(&body, None, &allow).unwrap();
        let id = tenant_id(tenant);
        let previous = self.store.webhook_endpoint(id).await.unwrap();
        let row = config.to_stored(id, previous.as_ref(), cdr::UnixMillis(now_ms()));
        self.store.put_webhook_endpoint(&row).await.unwrap();
        self.dispatcher().endpoint_changed(id);
    }

    /// Commits `n` whole calls (5 events each) for `tenant`.
    async fn calls(&mut self, tenant: u64, n: usize) {
        for _ in 0..n {
            self.offset += 100;
            let call = short_call(&mut self.ids, tenant, self.offset, "102");
            self.writer.commit(call).await.unwrap();
        }
    }

    async fn stop(mut self) {
        if let Some(d) = self.dispatcher.take() {
            d.stop(Duration::from_secs(1)).await;
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn endpoint(url: &str) -> Value {
    json!({ "enabled": true, "url": url })
}

async fn retries_follow_the_schedule_until_success(db: &TestDb) {
    // Every event is refused three times, then accepted.
    let rx = Receiver::start(|r, earlier| {
        let seen = earlier
            .iter()
            .filter(|e| e.webhook_id() == r.webhook_id())
            .count();
        Reply::status(if seen < 3 { 500 } else { 200 }).with_body(if seen < 3 {
            "busy"
        } else {
            "ok"
        })
    })
    .await;
    let delays = [300, 600, 900, 2000, 2000, 2000, 2000, 2000];
    let mut h = Harness::start(db, &[1], schedule(&delays)).await;
    let mut body = endpoint(&rx.url("/hook"));
    body["secret"] = json!(SECRET);
    body["event_types"] = json!(["call_start", "call_cdr"]);
    h.configure(1, body).await;
    h.calls(1, 2).await;
    // 2 calls × 2 types = 4 events × 4 requests.
    wait_until(LIMIT, "16 requests", || rx.count() >= 16).await;
    let deliveries = h
        .store
        .webhook_deliveries(tenant_id(1), 100, 0)
        .await
        .unwrap();
    wait_until(LIMIT, "4 delivered", || true).await;
    let mut delivered = 0;
    for _ in 0..200 {
        let d = h
            .store
            .webhook_deliveries(tenant_id(1), 100, 0)
            .await
            .unwrap();
        delivered = d
            .iter()
            .filter(|d| d.status == DeliveryStatus::Delivered)
            .count();
        if delivered == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(delivered, 4, "{deliveries:#?}");
    let requests = rx.requests();
    let secret = Secret::parse(SECRET).unwrap();
    let mut per_id: HashMap<String, Vec<&receiver::Received>> = HashMap::new();
    for r in &requests {
        // Standard Webhooks: the signature covers id, timestamp and body.
        let ts: u64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
        assert!(secret.verify(
            r.webhook_id(),
            ts,
            r.body.as_bytes(),
            r.header("webhook-signature").unwrap()
        ));
        assert_eq!(
            r.json()["event_id"],
            r.webhook_id(),
            "webhook-id is the event_id"
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        per_id.entry(r.webhook_id().to_owned()).or_default().push(r);
    }
    assert_eq!(per_id.len(), 4);
    let types: HashSet<String> = requests
        .iter()
        .map(|r| r.json()["event_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        HashSet::from(["call_start".to_owned(), "call_cdr".to_owned()]),
        "the filter holds"
    );
    for (_, attempts) in per_id {
        assert_eq!(attempts.len(), 4, "exactly 3 failures and one success");
    }
    // The log: four attempts per delivery, spaced by the schedule (±20 %).
    let deliveries = h
        .store
        .webhook_deliveries(tenant_id(1), 100, 0)
        .await
        .unwrap();
    for d in &deliveries {
        let outcomes: Vec<_> = d.log.iter().map(|l| l.outcome.as_str()).collect();
        assert_eq!(
            outcomes,
            ["http_error", "http_error", "http_error", "success"],
            "{d:#?}"
        );
        assert_eq!(d.attempts, 4);
        assert_eq!(d.last_http_status, Some(200));
        assert_eq!(d.log[0].http_status, Some(500));
        assert_eq!(d.log[0].response.as_deref(), Some("busy"));
        assert_eq!(d.log[3].response.as_deref(), Some("ok"));
        for (i, pair) in d.log.windows(2).enumerate() {
            let scheduled = pair[0].next_attempt_at.expect("a retry is scheduled").0;
            let after_end = scheduled - (pair[0].at.0 + pair[0].duration_ms.unwrap());
            let lo = delays[i] * 8 / 10;
            let hi = delays[i] * 12 / 10 + 1;
            assert!(
                (lo..=hi).contains(&after_end),
                "delay {i}: {after_end} ms not within {lo}..{hi}"
            );
            assert!(
                pair[1].at.0 >= scheduled,
                "attempt {} ran before its time",
                i + 2
            );
            assert!(
                pair[1].at.0 - scheduled < 3000,
                "attempt {} ran late",
                i + 2
            );
        }
        assert_eq!(d.log[3].next_attempt_at, None);
    }
    h.stop().await;
}

async fn receiver_down_then_up_gets_every_event(db: &TestDb) {
    // Reserve a port, then leave it closed: connections are refused.
    let addr = Receiver::ok().await.shut_down();
    let delays = [200, 400, 800, 1000, 1000, 1000, 1000, 1000];
    let mut h = Harness::start(db, &[1], schedule(&delays)).await;
    h.configure(1, endpoint(&format!("http://{addr}/down")))
        .await;
    h.calls(1, 1000).await;
    // Wait until failures are logged, so the receiver really was down.
    for _ in 0..500 {
        let d = h
            .store
            .webhook_deliveries(tenant_id(1), 1, 4999)
            .await
            .unwrap();
        if d.first().is_some_and(|d| d.attempts >= 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed = h
        .store
        .webhook_deliveries(tenant_id(1), 1, 4999)
        .await
        .unwrap();
    assert_eq!(failed[0].log[0].outcome, "connect_error", "{failed:#?}");
    let rx = Receiver::start_on(
        addr,
        Arc::new(|_: &receiver::Received, _: &[receiver::Received]| {
            Box::pin(async { Reply::status(200) }) as _
        }),
    )
    .await;
    wait_until(Duration::from_secs(60), "5000 distinct events", || {
        rx.distinct_ids().len() >= 5000
    })
    .await;
    let cdrs: HashSet<String> = rx
        .requests()
        .iter()
        .filter(|r| r.json()["event_type"] == "call_cdr")
        .map(|r| r.webhook_id().to_owned())
        .collect();
    assert_eq!(cdrs.len(), 1000, "every call_cdr arrived");
    assert_eq!(rx.distinct_ids().len(), 5000);
    h.stop().await;
}

async fn not_found_stops_gone_disables_redirects_fail(db: &TestDb) {
    let rx = Receiver::start(|r, _| match r.path.as_str() {
        "/missing" => Reply::status(404).with_body("no such hook"),
        "/gone" => Reply::status(410),
        "/moved" => Reply::status(302).with_header("location", "/elsewhere"),
        _ => Reply::status(200),
    })
    .await;
    let mut h = Harness::start(
        db,
        &[1, 2, 3],
        schedule(&[150, 150, 150, 150, 150, 150, 150, 150]),
    )
    .await;
    let only_cdr = |path: &str| {
        let mut b = endpoint(&rx.url(path));
        b["event_types"] = json!(["call_cdr"]);
        b
    };
    h.configure(1, only_cdr("/missing")).await;
    h.configure(2, only_cdr("/gone")).await;
    h.configure(3, only_cdr("/moved")).await;
    h.calls(1, 1).await;
    h.calls(2, 1).await;
    h.calls(3, 1).await;
    let done = |d: &[store::Delivery]| d.iter().all(|d| d.status != DeliveryStatus::Pending);
    let mut by_tenant = HashMap::new();
    for _ in 0..1000 {
        by_tenant.clear();
        for t in [1, 2, 3] {
            by_tenant.insert(
                t,
                h.store
                    .webhook_deliveries(tenant_id(t), 100, 0)
                    .await
                    .unwrap(),
            );
        }
        if done(&by_tenant[&1])
            && done(&by_tenant[&3])
            && !by_tenant[&3].is_empty()
            && by_tenant[&2]
                .iter()
                .any(|d| d.status == DeliveryStatus::Failed)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 404: one attempt, the event stops, the endpoint stays on.
    let d = &by_tenant[&1];
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].status, d[0].attempts), (DeliveryStatus::Failed, 1));
    assert_eq!(d[0].log[0].outcome, "not_found");
    assert_eq!(d[0].log[0].response.as_deref(), Some("no such hook"));
    assert!(
        h.store
            .webhook_endpoint(tenant_id(1))
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    // 410: the endpoint is disabled and logged; a later call's event is
    // never sent to it.
    let ep = h
        .store
        .webhook_endpoint(tenant_id(2))
        .await
        .unwrap()
        .unwrap();
    assert!(!ep.enabled);
    assert_eq!(ep.disabled_reason.as_deref(), Some("gone"));
    let gone = &by_tenant[&2];
    assert_eq!(gone.len(), 1);
    let kinds: Vec<_> = gone[0]
        .log
        .iter()
        .map(|l| (l.kind.as_str(), l.outcome.as_str()))
        .collect();
    assert_eq!(kinds, [("attempt", "gone"), ("endpoint_disabled", "gone")]);
    h.calls(2, 1).await;
    h.store
        .webhook_fan_out(1000, cdr::UnixMillis(now_ms()))
        .await
        .unwrap();
    assert_eq!(
        h.store
            .count_webhook_deliveries(tenant_id(2))
            .await
            .unwrap(),
        1
    );
    // 302: every attempt failed as a redirect, the Location never fetched.
    let d = &by_tenant[&3];
    assert_eq!((d[0].status, d[0].attempts), (DeliveryStatus::Failed, 9));
    assert!(
        d[0].log
            .iter()
            .all(|l| l.outcome == "redirect" && l.http_status == Some(302))
    );
    assert!(rx.requests().iter().all(|r| r.path != "/elsewhere"));
    let counts = |p: &str| rx.requests().iter().filter(|r| r.path == p).count();
    assert_eq!(
        (counts("/missing"), counts("/gone"), counts("/moved")),
        (1, 1, 9)
    );
    h.stop().await;
}

async fn private_addresses_are_refused_unless_allow_listed(db: &TestDb) {
    let rx = Receiver::ok().await;
    let port = rx.addr.port();
    let resolver = StaticResolver(HashMap::from([
        (
            "internal.test".to_owned(),
            vec!["10.0.0.1".parse::<IpAddr>().unwrap()],
        ),
        (
            "mixed.test".to_owned(),
            vec!["10.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
        ),
    ]));
    let mut h = Harness::start_with(db, &[1, 2], schedule(&[100; 8]), |c| {
        c.client.resolver = Arc::new(resolver);
    })
    .await;
    h.configure(1, endpoint(&format!("http://internal.test:{port}/one")))
        .await;
    h.configure(2, endpoint(&format!("http://mixed.test:{port}/two")))
        .await;
    h.calls(1, 1).await;
    h.calls(2, 1).await;
    wait_until(LIMIT, "tenant 2's 5 events", || rx.count() >= 5).await;
    let mut refused = Vec::new();
    for _ in 0..500 {
        refused = h
            .store
            .webhook_deliveries(tenant_id(1), 100, 0)
            .await
            .unwrap();
        if refused.iter().all(|d| d.attempts >= 2) && refused.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for d in &refused {
        assert!(d.log.iter().all(|l| l.outcome == "blocked"), "{d:#?}");
        assert!(d.last_error.as_deref().unwrap().contains("10.0.0.1"));
    }
    // Only 127.0.0.1 (allow-listed) was dialled for mixed.test; nothing
    // ever reached the receiver for internal.test.
    assert!(rx.requests().iter().all(|r| r.path == "/two"));
    h.stop().await;
}

async fn digest_basic_and_bearer_authenticate(db: &TestDb) {
    use sip::auth::{Algorithm, Credentials, DigestServer, UserSecret, Verdict};
    let server = Arc::new(std::sync::Mutex::new(DigestServer::new("hooks", [7; 32])));
    let rx = {
        let server = Arc::clone(&server);
        Receiver::start(move |r, _| {
            let now = now_ms() / 1000;
            match r.path.as_str() {
                "/digest" | "/digest-wrong" => {
                    let mut server = server.lock().unwrap();
                    let ok = r
                        .header("authorization")
                        .and_then(|a| Credentials::parse(a).ok())
                        .map(|c| {
                            c.username == "tally"
                                && server.verify(now, "POST", &c, UserSecret::Password("pw"))
                                    == Verdict::Ok
                        })
                        .unwrap_or(false);
                    if ok {
                        Reply::status(204)
                    } else {
                        let sha = server.challenge(now, Algorithm::Sha256, false);
                        let md5 = server.challenge(now, Algorithm::Md5, false);
                        Reply::status(401)
                            .with_header("www-authenticate", &sha.to_string())
                            .with_header("www-authenticate", &md5.to_string())
                    }
                }
                "/basic" if r.header("authorization") == Some("Basic dGFsbHk6cHc=") => {
                    Reply::status(200)
                }
                "/bearer" if r.header("authorization") == Some("Bearer tok-123") => {
                    Reply::status(200)
                }
                _ => Reply::status(401),
            }
        })
        .await
    };
    let mut h = Harness::start(db, &[1, 2, 3, 4], schedule(&[100; 8])).await;
    let with = |path: &str, auth: Value| {
        let mut b = endpoint(&rx.url(path));
        for (k, v) in auth.as_object().unwrap() {
            b[k] = v.clone();
        }
        b["event_types"] = json!(["call_cdr"]);
        b
    };
    h.configure(
        1,
        with(
            "/digest",
            json!({"auth": "DIGEST", "username": "tally", "password": "pw"}),
        ),
    )
    .await;
    h.configure(
        2,
        with(
            "/basic",
            json!({"auth": "BASIC", "username": "tally", "password": "pw"}),
        ),
    )
    .await;
    h.configure(
        3,
        with("/bearer", json!({"auth": "BEARER", "token": "tok-123"})),
    )
    .await;
    h.configure(
        4,
        with(
            "/digest-wrong",
            json!({"auth": "DIGEST", "username": "tally", "password": "wrong"}),
        ),
    )
    .await;
    // Tenant 1's two events one after the other, so the second can reuse
    // the first one's challenge.
    h.calls(1, 1).await;
    let digest = |rx: &Receiver| {
        rx.requests()
            .into_iter()
            .filter(|r| r.path == "/digest")
            .collect::<Vec<_>>()
    };
    wait_until(LIMIT, "the first digest exchange", || {
        digest(&rx).len() >= 2
    })
    .await;
    // Longer than the harness's scan (300 ms): the worker reloads the
    // endpoint in between, and must keep its digest state (same
    // credentials) rather than draw a second 401.
    tokio::time::sleep(Duration::from_millis(400)).await;
    h.calls(1, 1).await;
    for t in 2..=4 {
        h.calls(t, 2).await;
    }
    let status = |d: &[store::Delivery]| d.iter().map(|d| d.status).collect::<Vec<_>>();
    let mut all = Vec::new();
    for _ in 0..500 {
        all.clear();
        for t in 1..=3 {
            all.push(
                h.store
                    .webhook_deliveries(tenant_id(t), 10, 0)
                    .await
                    .unwrap(),
            );
        }
        if all
            .iter()
            .all(|d| status(d) == [DeliveryStatus::Delivered; 2])
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for d in &all {
        assert_eq!(status(d), [DeliveryStatus::Delivered; 2], "{d:#?}");
    }
    // Digest: one 401, then the SHA-256 challenge answered (nc=1) and
    // reused for the next event (nc=2) without a new round trip.
    let auths: Vec<Option<String>> = digest(&rx)
        .iter()
        .map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(auths.len(), 3, "{auths:?}");
    assert_eq!(auths[0], None);
    for (a, nc) in auths[1..].iter().zip(["nc=00000001", "nc=00000002"]) {
        let a = a.as_deref().unwrap();
        assert!(
            a.starts_with("Digest ") && a.contains("algorithm=SHA-256") && a.contains(nc),
            "{a}"
        );
    }
    let wrong = h
        .store
        .webhook_deliveries(tenant_id(4), 10, 0)
        .await
        .unwrap();
    assert!(wrong.iter().all(|d| d.status != DeliveryStatus::Delivered));
    assert!(
        wrong
            .iter()
            .flat_map(|d| &d.log)
            .all(|l| l.http_status == Some(401))
    );
    h.stop().await;
}

async fn a_slow_endpoint_does_not_delay_other_tenants(db: &TestDb) {
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let rx = Receiver::start_async(Arc::new(
        move |r: &receiver::Received, _: &[receiver::Received]| {
            let slow = r.path == "/slow";
            let mut release = release_rx.clone();
            Box::pin(async move {
                if slow {
                    let _ = release.wait_for(|r| *r).await;
                }
                Reply::status(200)
            }) as _
        },
    ))
    .await;
    let mut h = Harness::start_with(db, &[1, 2], schedule(&[100; 8]), |c| {
        c.concurrency = 4;
        c.client.total_timeout = Duration::from_secs(20);
    })
    .await;
    h.configure(1, endpoint(&rx.url("/slow"))).await;
    h.configure(2, endpoint(&rx.url("/fast"))).await;
    h.calls(1, 20).await;
    h.calls(2, 20).await;
    let fast = |rx: &Receiver| rx.requests().iter().filter(|r| r.path == "/fast").count();
    let slow_count = |rx: &Receiver| rx.requests().iter().filter(|r| r.path == "/slow").count();
    // Tenant 2 gets everything while tenant 1's first attempts hang.
    wait_until(
        LIMIT,
        "tenant 2's 100 events and tenant 1's 4 stuck attempts",
        || fast(&rx) >= 100 && slow_count(&rx) >= 4,
    )
    .await;
    let slow_seen = slow_count(&rx);
    assert_eq!(slow_seen, 4, "the slow endpoint holds exactly its 4 slots");
    let slow = h
        .store
        .webhook_deliveries(tenant_id(1), 200, 0)
        .await
        .unwrap();
    assert!(slow.iter().all(|d| d.status == DeliveryStatus::Pending));
    release_tx.send(true).unwrap();
    wait_until(LIMIT, "tenant 1's 100 events", || {
        rx.requests().iter().filter(|r| r.path == "/slow").count() >= 100
    })
    .await;
    h.stop().await;
}

async fn replay_retry_and_test_events(db: &TestDb) {
    let rx = Receiver::ok().await;
    let mut h = Harness::start(db, &[1], schedule(&[100; 8])).await;
    h.calls(1, 1).await; // before any endpoint: never sent
    // Make sure it is fanned out (to nobody) before the endpoint exists.
    h.store
        .webhook_fan_out(1000, cdr::UnixMillis(now_ms()))
        .await
        .unwrap();
    let mut body = endpoint(&rx.url("/hook"));
    body["secret"] = json!(SECRET);
    h.configure(1, body).await;
    h.calls(1, 1).await;
    wait_until(LIMIT, "5 events", || rx.count() >= 5).await;
    let first: HashSet<String> = rx.distinct_ids();
    assert_eq!(first.len(), 5);
    // Replay from sequence 0: the 5 delivered again (same ids) and the 5
    // committed before the endpoint existed.
    let n = h
        .store
        .replay_webhooks(
            tenant_id(1),
            0,
            None,
            cdr::UnixMillis(now_ms()),
            10_000,
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(n, 10);
    h.dispatcher().deliveries_due(tenant_id(1));
    wait_until(LIMIT, "15 requests", || rx.count() >= 15).await;
    let ids = rx.distinct_ids();
    assert_eq!(ids.len(), 10);
    assert!(first.is_subset(&ids), "replays carry the same webhook-id");
    // Retry one delivery by its event id.
    let one = first.iter().next().unwrap().clone();
    assert!(
        h.store
            .retry_webhook_delivery(tenant_id(1), &one, cdr::UnixMillis(now_ms()))
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .retry_webhook_delivery(tenant_id(2), &one, cdr::UnixMillis(now_ms()))
            .await
            .unwrap()
    );
    h.dispatcher().deliveries_due(tenant_id(1));
    wait_until(LIMIT, "16 requests", || rx.count() >= 16).await;
    // The receiver has answered; the recorder logs the attempt after that,
    // in its own batch: wait for the third log entry (bounded).
    let deadline = std::time::Instant::now() + LIMIT;
    let d = loop {
        let d = h
            .store
            .webhook_delivery(tenant_id(1), &one)
            .await
            .unwrap()
            .unwrap();
        if d.log.len() >= 3 || std::time::Instant::now() >= deadline {
            break d;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let triggers: Vec<_> = d.log.iter().map(|l| l.trigger.as_str()).collect();
    assert_eq!(triggers, ["scheduled", "manual", "manual"]);
    // A test event: sent once, signed, logged.
    let sent = h.dispatcher().send_test(tenant_id(1)).await.unwrap();
    assert!(sent.delivered);
    assert_eq!(sent.http_status, Some(200));
    let last = rx.requests().pop().unwrap();
    assert_eq!(last.webhook_id(), sent.event_id);
    assert_eq!(last.json()["event_type"], "test");
    let ts: u64 = last.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!(Secret::parse(SECRET).unwrap().verify(
        &sent.event_id,
        ts,
        last.body.as_bytes(),
        last.header("webhook-signature").unwrap()
    ));
    assert!(
        h.dispatcher().send_test(tenant_id(2)).await.is_err(),
        "no endpoint"
    );
    h.stop().await;
}

async fn a_restart_sends_what_was_pending_with_the_same_id(db: &TestDb) {
    // The first receiver answers slowly: attempts are in flight when the
    // dispatcher stops without waiting for them.
    let slow = Receiver::start(|_, _| Reply {
        delay: Some(Duration::from_secs(5)),
        ..Reply::status(200)
    })
    .await;
    let addr = slow.addr;
    let mut h = Harness::start(db, &[1], schedule(&[100; 8])).await;
    h.configure(1, endpoint(&format!("http://{addr}/hook")))
        .await;
    h.calls(1, 10).await;
    wait_until(LIMIT, "attempts in flight", || slow.count() >= 10).await;
    let before = slow.distinct_ids();
    h.dispatcher.take().unwrap().stop(Duration::ZERO).await;
    drop(slow);
    let rx = Receiver::start_on(
        addr,
        Arc::new(|_: &receiver::Received, _: &[receiver::Received]| {
            Box::pin(async { Reply::status(200) }) as _
        }),
    )
    .await;
    let mut client = ClientConfig::new(AllowList::parse(&["127.0.0.1/32"]).unwrap());
    client.total_timeout = Duration::from_secs(3);
    let mut config = DispatcherConfig::new(1, client);
    config.policy = schedule(&[100; 8]);
    config.poll = Duration::from_millis(100);
    let again = Dispatcher::start(
        h.store.clone(),
        h.writer.committed_global_sequence(),
        config,
    )
    .await
    .unwrap();
    wait_until(LIMIT, "all 50 events after the restart", || {
        rx.distinct_ids().len() >= 50
    })
    .await;
    let after = rx.distinct_ids();
    assert!(
        before.is_subset(&after),
        "interrupted attempts are resent with the same webhook-id"
    );
    let all = h
        .store
        .webhook_deliveries(tenant_id(1), 100, 0)
        .await
        .unwrap();
    assert_eq!(all.len(), 50);
    again.stop(Duration::from_secs(1)).await;
}

async fn https_is_verified(db: &TestDb) {
    use delivery::webhook::client::{AuthState, Client, parse_pem_roots, tls_config};
    let rx = Receiver::start_tls(|_, _| Reply::status(200)).await;
    let port = rx.addr.port();
    let loopback: IpAddr = "127.0.0.1".parse().unwrap();
    let resolver = StaticResolver(HashMap::from([
        ("localhost".to_owned(), vec![loopback]),
        ("impostor.test".to_owned(), vec![loopback]),
    ]));
    let roots = parse_pem_roots(include_bytes!("tls/ca.pem")).unwrap();
    let resolver = Arc::new(resolver);
    let mut h = Harness::start_with(db, &[1, 2, 3], schedule(&[100; 8]), |c| {
        c.client.resolver = resolver.clone();
        c.client.tls = tls_config(&roots);
    })
    .await;
    h.configure(1, endpoint(&format!("https://localhost:{port}/by-name")))
        .await;
    h.configure(2, endpoint(&format!("https://127.0.0.1:{port}/by-address")))
        .await;
    // The certificate does not name impostor.test.
    h.configure(
        3,
        endpoint(&format!("https://impostor.test:{port}/wrong-name")),
    )
    .await;
    for t in 1..=3 {
        h.calls(t, 1).await;
    }
    wait_until(LIMIT, "10 HTTPS deliveries", || rx.count() >= 10).await;
    let mut wrong = Vec::new();
    for _ in 0..500 {
        wrong = h
            .store
            .webhook_deliveries(tenant_id(3), 10, 0)
            .await
            .unwrap();
        if wrong.len() == 5 && wrong.iter().all(|d| d.attempts >= 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        wrong.iter().all(|d| d.log[0].outcome == "tls_error"),
        "{wrong:#?}"
    );
    assert!(rx.requests().iter().all(|r| r.path != "/wrong-name"));
    // Without the test CA, only the public roots: refused.
    let mut config = ClientConfig::new(AllowList::parse(&["127.0.0.1/32"]).unwrap());
    config.resolver = resolver;
    let err = Client::new(config)
        .post(
            &format!("https://localhost:{port}/").parse().unwrap(),
            &[],
            bytes::Bytes::from_static(b"{}"),
            &AuthState::None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.outcome(), "tls_error", "{err}");
    h.stop().await;
}

async fn five_days_of_failures_disable_the_endpoint(db: &TestDb) {
    let rx = Receiver::start(|_, _| Reply::status(500)).await;
    let mut policy = schedule(&[100; 8]);
    // "Five days", shortened.
    policy.auto_disable_after = Duration::from_millis(400);
    let mut h = Harness::start(db, &[1], policy).await;
    let mut body = endpoint(&rx.url("/down"));
    body["event_types"] = json!(["call_cdr"]);
    h.configure(1, body).await;
    h.calls(1, 1).await;
    let mut ep = None;
    for _ in 0..500 {
        ep = h.store.webhook_endpoint(tenant_id(1)).await.unwrap();
        if ep.as_ref().is_some_and(|e| !e.enabled) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ep = ep.unwrap();
    assert!(!ep.enabled);
    assert_eq!(ep.disabled_reason.as_deref(), Some("failing"));
    let d = &h
        .store
        .webhook_deliveries(tenant_id(1), 10, 0)
        .await
        .unwrap()[0];
    assert_eq!(d.status, DeliveryStatus::Failed);
    let last = d.log.last().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.outcome.as_str()),
        ("endpoint_disabled", "failing")
    );
    assert!(d.attempts >= 4, "failures over 400 ms at 100 ms apart");
    // Later events are not sent to a disabled endpoint.
    let seen = rx.count();
    h.calls(1, 1).await;
    h.store
        .webhook_fan_out(1000, cdr::UnixMillis(now_ms()))
        .await
        .unwrap();
    assert_eq!(
        h.store
            .count_webhook_deliveries(tenant_id(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(rx.count(), seen);
    h.stop().await;
}

async fn two_nodes_share_the_work_and_send_each_event_once(db: &TestDb) {
    let rx = Receiver::ok().await;
    let mut h = Harness::start(db, &[1, 2], schedule(&[100; 8])).await;
    // A second node: its own dispatcher (owner node-2) on the same database,
    // woken only by its poll and scan.
    let mut client = ClientConfig::new(AllowList::parse(&["127.0.0.1/32"]).unwrap());
    client.total_timeout = Duration::from_secs(3);
    let mut config = DispatcherConfig::new(2, client);
    config.policy = schedule(&[100; 8]);
    config.poll = Duration::from_millis(50);
    config.scan = Duration::from_millis(50);
    let (_quiet, never) = tokio::sync::watch::channel(0);
    let other = Dispatcher::start(h.store.clone(), never, config)
        .await
        .unwrap();
    h.configure(1, endpoint(&rx.url("/one"))).await;
    h.configure(2, endpoint(&rx.url("/two"))).await;
    other.endpoint_changed(tenant_id(1));
    other.endpoint_changed(tenant_id(2));
    for _ in 0..40 {
        h.calls(1, 1).await;
        h.calls(2, 1).await;
    }
    wait_until(LIMIT, "400 events", || rx.distinct_ids().len() >= 400).await;
    let mut delivered = 0;
    for _ in 0..500 {
        delivered = 0;
        for t in [1, 2] {
            let d = h
                .store
                .webhook_deliveries(tenant_id(t), 100, 0)
                .await
                .unwrap();
            let d2 = h
                .store
                .webhook_deliveries(tenant_id(t), 100, 100)
                .await
                .unwrap();
            delivered += d
                .iter()
                .chain(&d2)
                .filter(|d| d.status == DeliveryStatus::Delivered)
                .count();
        }
        if delivered == 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(delivered, 400);
    assert_eq!(rx.count(), 400, "no event was sent twice");
    // Each tenant's endpoint got its own tenant's events, and only those.
    for r in rx.requests() {
        let want = if r.path == "/one" {
            tenant_id(1)
        } else {
            tenant_id(2)
        };
        assert_eq!(r.json()["tenant_id"], want.to_string(), "{}", r.path);
    }
    other.stop(Duration::from_secs(1)).await;
    h.stop().await;
}

async fn slow_answers_time_out_and_the_log_keeps_4_kib(db: &TestDb) {
    let big = "x".repeat(10_000);
    let rx = Receiver::start(move |r, _| match r.path.as_str() {
        "/slow" => Reply {
            delay: Some(Duration::from_secs(3)),
            ..Reply::status(200)
        },
        _ => Reply::status(500).with_body(&big),
    })
    .await;
    let mut h = Harness::start_with(db, &[1, 2], schedule(&[100; 8]), |c| {
        c.client.total_timeout = Duration::from_millis(500);
    })
    .await;
    let only_cdr = |path: &str| {
        let mut b = endpoint(&rx.url(path));
        b["event_types"] = json!(["call_cdr"]);
        b
    };
    h.configure(1, only_cdr("/slow")).await;
    h.configure(2, only_cdr("/big")).await;
    h.calls(1, 1).await;
    h.calls(2, 1).await;
    let (mut slow, mut big) = (Vec::new(), Vec::new());
    for _ in 0..500 {
        slow = h
            .store
            .webhook_deliveries(tenant_id(1), 10, 0)
            .await
            .unwrap();
        big = h
            .store
            .webhook_deliveries(tenant_id(2), 10, 0)
            .await
            .unwrap();
        if slow.iter().chain(&big).all(|d| d.attempts >= 1) && slow.len() + big.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attempt = &slow[0].log[0];
    assert_eq!(attempt.outcome, "timeout", "{slow:#?}");
    assert!(attempt.duration_ms.unwrap() >= 450 && attempt.duration_ms.unwrap() < 2000);
    assert_eq!(
        slow[0].status,
        DeliveryStatus::Pending,
        "a timeout is retried"
    );
    let attempt = &big[0].log[0];
    assert_eq!(attempt.http_status, Some(500));
    assert_eq!(
        attempt.response.as_ref().unwrap().len(),
        4096,
        "the first 4 KiB"
    );
    h.stop().await;
}

async fn retry_after_is_honoured_for_503(db: &TestDb) {
    let rx = Receiver::start(|_, earlier| {
        if earlier.is_empty() {
            Reply::status(503).with_header("retry-after", "1")
        } else {
            Reply::status(200)
        }
    })
    .await;
    let mut h = Harness::start(db, &[1], schedule(&[100; 8])).await;
    let mut body = endpoint(&rx.url("/busy"));
    body["event_types"] = json!(["call_cdr"]);
    h.configure(1, body).await;
    h.calls(1, 1).await;
    wait_until(LIMIT, "the second attempt", || rx.count() >= 2).await;
    let mut d = Vec::new();
    for _ in 0..500 {
        d = h
            .store
            .webhook_deliveries(tenant_id(1), 10, 0)
            .await
            .unwrap();
        if d.first()
            .is_some_and(|d| d.status == DeliveryStatus::Delivered)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = &d[0].log;
    assert_eq!(log[0].outcome, "throttled");
    let first_end = log[0].at.0 + log[0].duration_ms.unwrap();
    let waited = log[0].next_attempt_at.unwrap().0 - first_end;
    assert_eq!(waited, 1000, "Retry-After: 1 replaces the 100 ms schedule");
    assert!(log[1].at.0 >= log[0].next_attempt_at.unwrap().0);
    assert_eq!(log[1].outcome, "success");
    h.stop().await;
}

on_both!(
    retry_after_is_honoured_for_503,
    slow_answers_time_out_and_the_log_keeps_4_kib,
    two_nodes_share_the_work_and_send_each_event_once,
    https_is_verified,
    five_days_of_failures_disable_the_endpoint,
    retries_follow_the_schedule_until_success,
    receiver_down_then_up_gets_every_event,
    not_found_stops_gone_disables_redirects_fail,
    private_addresses_are_refused_unless_allow_listed,
    digest_basic_and_bearer_authenticate,
    a_slow_endpoint_does_not_delay_other_tenants,
    replay_retry_and_test_events,
    a_restart_sends_what_was_pending_with_the_same_id,
);
