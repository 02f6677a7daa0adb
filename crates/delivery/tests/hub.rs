//! The WebSocket hub against a real store and relay: resume without gap or
//! duplicate while commits continue, tenant isolation, retention and
//! `recovered`, overflow. On SQLite and PostgreSQL (`on_both!`).

#[path = "../../store/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use cdr::{TenantId, UnixMillis};
use common::{Ids, TestDb, create_tenants, short_call, tenant_id};
use delivery::{End, Hub, HubConfig, Relay, RelayConfig, Request, Retention, Subscription};
use store::{OutboxEvent, Store, StoreWriter, WriterConfig};

/// Longest wait for anything that should happen at once.
const WAIT: Duration = Duration::from_secs(10);
/// Events per `short_call`.
const PER_CALL: u64 = 5;

struct Bench {
    store: Store,
    writer: StoreWriter,
    relay: Relay,
    ids: Ids,
    offset: u64,
}

impl Bench {
    async fn new(db: &TestDb) -> Self {
        let store = db.open().await;
        create_tenants(&store, 1..=3).await;
        let writer = store.spawn_writer(WriterConfig::default());
        let relay = Relay::spawn(
            store.clone(),
            writer.committed_global_sequence(),
            RelayConfig::default(),
        )
        .await
        .expect("relay");
        Self {
            store,
            writer,
            relay,
            ids: Ids::node(1),
            offset: 0,
        }
    }

    fn hub(&self, queue: usize) -> Hub {
        Hub::new(
            self.store.clone(),
            self.relay.clone(),
            HubConfig {
                queue,
                overflow_after: Duration::from_millis(200),
                replay_page: 64,
            },
        )
    }

    /// Commits `n` whole calls of `tenant`, one command each.
    async fn calls(&mut self, tenant: u64, n: u64) {
        for _ in 0..n {
            self.offset += 1_000;
            let call = short_call(&mut self.ids, tenant, self.offset, "102");
            self.writer.commit(call).await.expect("commit");
        }
    }
}

async fn next(sub: &mut Subscription) -> Arc<OutboxEvent> {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("an event in time")
        .expect("the subscription is open")
}

/// Takes events until `tenant`'s `last`, checking each tenant's sequences
/// continue from `cursors` without gap or duplicate and that no other
/// tenant shows up.
async fn expect_through(
    sub: &mut Subscription,
    cursors: &mut [(TenantId, u64)],
    tenant: TenantId,
    last: u64,
) {
    loop {
        let event = next(sub).await;
        let cursor = cursors
            .iter_mut()
            .find(|(t, _)| *t == event.tenant_id)
            .unwrap_or_else(|| panic!("event of unsubscribed tenant {}", event.tenant_id));
        assert_eq!(
            event.sequence,
            cursor.1 + 1,
            "tenant {}: gap or duplicate",
            event.tenant_id
        );
        cursor.1 = event.sequence;
        let payload: serde_json::Value = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(payload["sequence"], event.sequence);
        assert_eq!(payload["tenant_id"], event.tenant_id.to_string());
        if event.tenant_id == tenant && event.sequence == last {
            return;
        }
    }
}

async fn resume_replays_the_missed_events_in_order_then_live(db: &TestDb) {
    let mut b = Bench::new(db).await;
    let hub = b.hub(1024);
    let t1 = tenant_id(1);

    // Live: tenant 1's first three calls; tenant 2's never show.
    let mut sub = hub.subscribe(Request::new([t1], None)).await.unwrap();
    assert!(sub.recovered);
    b.calls(2, 2).await;
    b.calls(1, 3).await;
    let mut cursors = vec![(t1, 0)];
    expect_through(&mut sub, &mut cursors, t1, 3 * PER_CALL).await;
    let last = cursors[0].1;

    // Disconnected while 100 calls complete (and tenant 2 keeps calling).
    drop(sub);
    for _ in 0..10 {
        b.calls(1, 10).await;
        b.calls(2, 1).await;
    }

    // Resume; more calls commit while the replay runs.
    let mut sub = hub.subscribe(Request::new([t1], Some(last))).await.unwrap();
    assert!(sub.recovered, "nothing was pruned");
    let first = next(&mut sub).await;
    assert_eq!(first.sequence, last + 1);
    let mut cursors = vec![(t1, last + 1)];
    let during = {
        let writer = b.writer.clone();
        let mut ids = Ids::node(2);
        tokio::spawn(async move {
            for i in 0..20 {
                let tenant = 1 + i % 2;
                writer
                    .commit(short_call(&mut ids, tenant, 5_000_000 + i * 1_000, "103"))
                    .await
                    .expect("commit");
            }
        })
    };
    expect_through(&mut sub, &mut cursors, t1, (3 + 100) * PER_CALL).await;
    during.await.unwrap();
    expect_through(&mut sub, &mut cursors, t1, (3 + 100 + 10) * PER_CALL).await;

    // Live again: the next event is the next call's first, nothing else.
    b.calls(2, 1).await;
    b.calls(1, 1).await;
    let event = next(&mut sub).await;
    assert_eq!((event.tenant_id, event.sequence), (t1, 113 * PER_CALL + 1));
    let stored = b.store.outbox_after(t1, 113 * PER_CALL, 1).await.unwrap();
    assert_eq!(stored[0].payload, event.payload, "the payload verbatim");
}

async fn several_tenants_replay_in_commit_order(db: &TestDb) {
    let mut b = Bench::new(db).await;
    let hub = b.hub(1024);
    for _ in 0..4 {
        b.calls(1, 2).await;
        b.calls(2, 3).await;
        b.calls(3, 1).await;
    }
    let mut request = Request::new([tenant_id(1), tenant_id(2)], Some(0));
    request.tenants.insert(tenant_id(2), Some(7));
    let mut sub = hub.subscribe(request).await.unwrap();
    assert!(sub.recovered);
    let mut cursors = vec![(tenant_id(1), 0), (tenant_id(2), 7)];
    let mut global = 0;
    for _ in 0..(8 * PER_CALL + 12 * PER_CALL - 7) {
        let event = next(&mut sub).await;
        assert!(event.global_sequence > global, "commit order");
        global = event.global_sequence;
        let cursor = cursors
            .iter_mut()
            .find(|(t, _)| *t == event.tenant_id)
            .expect("a subscribed tenant");
        assert_eq!(event.sequence, cursor.1 + 1);
        cursor.1 = event.sequence;
    }
    assert_eq!(cursors, [(tenant_id(1), 40), (tenant_id(2), 60)]);
    // Then live, tenant 3 still filtered out.
    b.calls(3, 1).await;
    b.calls(2, 1).await;
    let event = next(&mut sub).await;
    assert_eq!((event.tenant_id, event.sequence), (tenant_id(2), 61));
}

async fn retention_waits_for_the_webhook_fan_out(db: &TestDb) {
    let mut b = Bench::new(db).await;
    b.calls(1, 2).await; // 10 events
    let endpoint = store::WebhookEndpoint {
        tenant_id: tenant_id(1),
        enabled: true,
        url: "https://hooks.example.com/cdr".into(),
        auth: "DISABLE".into(),
        username: String::new(),
        password: String::new(),
        token: String::new(),
        secret: None,
        previous_secret: None,
        previous_secret_until: None,
        event_types: None,
        disabled_reason: None,
        disabled_at: None,
        failing_since: None,
        updated_at: UnixMillis(0),
    };
    b.store.put_webhook_endpoint(&endpoint).await.unwrap();
    // Not fanned out yet: nothing may go, however old.
    assert_eq!(
        b.store
            .outbox_prune(UnixMillis(u64::MAX), 100)
            .await
            .unwrap(),
        0
    );
    b.store.webhook_fan_out(1000, UnixMillis(1)).await.unwrap();
    assert_eq!(
        b.store
            .outbox_prune(UnixMillis(u64::MAX), 100)
            .await
            .unwrap(),
        10
    );
}

async fn retention_prunes_oldest_first_and_resume_says_not_recovered(db: &TestDb) {
    let mut b = Bench::new(db).await;
    let hub = b.hub(1024);
    let t1 = tenant_id(1);
    b.calls(1, 4).await; // sequences 1..=20
    b.calls(2, 2).await;

    // Retention never goes below two days, and keeps what is recent.
    assert!(Retention::days(1).is_err());
    let retention = Retention::days(2).unwrap();
    let now = UnixMillis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    assert_eq!(retention.prune(&b.store, now).await.unwrap(), 0);

    // Prune the oldest 12 rows (all of tenant 1's first 12).
    assert_eq!(
        b.store
            .outbox_prune(UnixMillis(u64::MAX), 12)
            .await
            .unwrap(),
        12
    );
    let left = b.store.outbox_after(t1, 0, 100).await.unwrap();
    assert_eq!(left.first().map(|e| e.sequence), Some(13));
    assert_eq!(b.store.outbox_last_sequence(t1).await.unwrap(), 20);

    // Asked from 5: 6..=12 are gone; what is left is replayed.
    let mut sub = hub.subscribe(Request::new([t1], Some(5))).await.unwrap();
    assert!(!sub.recovered);
    assert_eq!(next(&mut sub).await.sequence, 13);
    // Asked from 12 or later: nothing missing.
    for from in [12, 20, 25] {
        let sub = hub.subscribe(Request::new([t1], Some(from))).await.unwrap();
        assert!(sub.recovered, "from {from}");
    }
    // A tenant that never had an event is recovered from 0.
    let sub = hub
        .subscribe(Request::new([tenant_id(3)], Some(0)))
        .await
        .unwrap();
    assert!(sub.recovered);

    // Eight days later everything goes, and a resume from 20 still holds
    // (nothing after 20 existed), from 19 does not.
    let later = UnixMillis(now.0 + 8 * 24 * 3_600_000);
    assert_eq!(
        retention.prune(&b.store, later).await.unwrap(),
        20 - 12 + 10
    );
    assert!(b.store.outbox_after(t1, 0, 100).await.unwrap().is_empty());
    let sub = hub.subscribe(Request::new([t1], Some(20))).await.unwrap();
    assert!(sub.recovered);
    let mut sub = hub.subscribe(Request::new([t1], Some(19))).await.unwrap();
    assert!(!sub.recovered);
    // New events still arrive after the gap.
    b.calls(1, 1).await;
    assert_eq!(next(&mut sub).await.sequence, 21);
}

async fn a_consumer_that_does_not_take_its_events_overflows(db: &TestDb) {
    let mut b = Bench::new(db).await;
    // One call commits its five events at once: a queue of 8 takes a call.
    let hub = b.hub(8);
    let t1 = tenant_id(1);
    let mut slow = hub.subscribe(Request::new([t1], None)).await.unwrap();
    let mut fast = hub.subscribe(Request::new([t1], None)).await.unwrap();
    let mut cursors = vec![(t1, 0)];
    for n in 1..=3 {
        b.calls(1, 1).await;
        // The fast one keeps up; the slow one has 15 > 8 queued.
        expect_through(&mut fast, &mut cursors, t1, n * PER_CALL).await;
    }
    let end = tokio::time::timeout(WAIT, slow.overflowed())
        .await
        .expect("the slow subscription overflows");
    assert_eq!(end, End::Overflow);
    assert_eq!(end.close_code(), 4008);
    assert_eq!(
        slow.next().await.unwrap_err(),
        End::Overflow,
        "before the queued events"
    );
    b.calls(1, 1).await;
    expect_through(&mut fast, &mut cursors, t1, 4 * PER_CALL).await;
}

/// A relay that reads the outbox only when the test says so: it can be
/// made to broadcast an event before a subscription exists, or after the
/// subscription already replayed it from the store.
struct HeldRelay {
    relay: Relay,
    wake: tokio::sync::watch::Sender<u64>,
}

impl HeldRelay {
    fn spawn(store: &Store) -> Self {
        let (wake, wake_rx) = tokio::sync::watch::channel(0);
        let config = RelayConfig {
            poll: Duration::from_secs(3_600),
            ..RelayConfig::default()
        };
        let relay = Relay::spawn_after(store.clone(), wake_rx, config, 0);
        Self { relay, wake }
    }

    /// Reads the outbox now and waits until it broadcast through `global`.
    async fn release_through(&self, global: u64) {
        self.wake.send_modify(|n| *n += 1);
        let mut position = self.relay.position();
        tokio::time::timeout(WAIT, position.wait_for(|p| *p >= global))
            .await
            .expect("the relay reads in time")
            .expect("the relay runs");
    }
}

async fn the_handoff_from_replay_to_live_loses_and_repeats_nothing(db: &TestDb) {
    let mut b = Bench::new(db).await;
    let held = HeldRelay::spawn(&b.store);
    let t1 = tenant_id(1);
    let (store, relay) = (b.store.clone(), held.relay.clone());
    let hub = move |queue| {
        Hub::new(
            store.clone(),
            relay.clone(),
            HubConfig {
                queue,
                overflow_after: Duration::from_secs(5),
                replay_page: 64,
            },
        )
    };
    b.calls(1, 2).await; // 1..=10, not broadcast yet

    // Lost without the second read: the replay is held up by a client
    // that has not read yet (queue of 1) while 11..=15 commit and are
    // broadcast to nobody.
    let mut first = hub(1).subscribe(Request::new([t1], Some(0))).await.unwrap();
    b.calls(1, 1).await;
    held.release_through(15).await;
    let mut cursors = [(t1, 0)];
    expect_through(&mut first, &mut cursors, t1, 15).await;

    // Repeated without the cursor check: a subscription replays 16..=20
    // from the store, then the relay broadcasts them.
    b.calls(1, 1).await;
    let mut second = hub(64)
        .subscribe(Request::new([t1], Some(0)))
        .await
        .unwrap();
    let mut cursors2 = [(t1, 0)];
    expect_through(&mut second, &mut cursors2, t1, 20).await;
    tokio::time::timeout(WAIT, second.caught_up())
        .await
        .expect("live in time");
    held.release_through(20).await;
    b.calls(1, 1).await;
    held.release_through(25).await;
    expect_through(&mut second, &mut cursors2, t1, 25).await;
    expect_through(&mut first, &mut cursors, t1, 25).await;
}

async fn a_subscription_that_falls_behind_the_relay_lags(db: &TestDb) {
    let mut b = Bench::new(db).await;
    let held = HeldRelay::spawn(&b.store);
    // The relay keeps 2 events per receiver; the queue takes 1 and the
    // grace is long: the subscription falls behind the relay first.
    let relay = Relay::spawn_after(
        b.store.clone(),
        held.wake.subscribe(),
        RelayConfig {
            poll: Duration::from_secs(3_600),
            capacity: 2,
            ..RelayConfig::default()
        },
        0,
    );
    let hub = Hub::new(
        b.store.clone(),
        relay.clone(),
        HubConfig {
            queue: 1,
            overflow_after: Duration::from_secs(30),
            replay_page: 64,
        },
    );
    let mut sub = hub
        .subscribe(Request::new([tenant_id(1)], None))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, sub.caught_up()).await.unwrap();
    b.calls(1, 1).await;
    held.wake.send_modify(|n| *n += 1);
    let mut position = relay.position();
    tokio::time::timeout(WAIT, position.wait_for(|p| *p >= 5))
        .await
        .unwrap()
        .unwrap();
    let mut received = 0;
    let end = loop {
        match tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("in time")
        {
            Ok(_) => received += 1,
            Err(end) => break end,
        }
    };
    assert_eq!(end, End::Lagged);
    assert_eq!(end.close_code(), 4008);
    assert!(received < 5, "{received}");
}

on_both!(
    the_handoff_from_replay_to_live_loses_and_repeats_nothing,
    a_subscription_that_falls_behind_the_relay_lags,
    resume_replays_the_missed_events_in_order_then_live,
    several_tenants_replay_in_commit_order,
    retention_prunes_oldest_first_and_resume_says_not_recovered,
    retention_waits_for_the_webhook_fan_out,
    a_consumer_that_does_not_take_its_events_overflows,
);
