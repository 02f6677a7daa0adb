//! Liveness and take-over of a dead node's calls (issue 15), on both
//! databases (see `common`). SQLite has one node in production; the
//! statements are the same, so the claim logic is checked there too.

mod common;

use std::collections::HashSet;

use cdr::{EventType, SessionId, UnixMillis};
use common::*;
use store::{Heartbeat, RecoveryScope, Registration, Store, StoreWriter, WriterConfig};

on_both!(
    heartbeats_keep_a_node_unclaimable_and_a_claim_is_won_once,
    a_survivor_closes_a_dead_nodes_calls_once_and_spares_its_own,
    racing_survivors_and_the_returning_node_close_each_call_once,
    bindings_are_shared_with_their_path_and_removals_are_tombstones,
);

const LEASE: u64 = 15_000;
const ALL: u32 = 100_000;

/// Node `node` carries `calls` open calls of tenant 1 started at
/// `offset`, the first one answered; returns their sessions.
async fn open_calls(writer: &StoreWriter, node: u16, offset: u64, calls: usize) -> Vec<SessionId> {
    let mut ids = Ids::node(node);
    let mut sessions = Vec::new();
    for n in 0..calls {
        let start = offset + n as u64 * 10;
        let session = ids.session(start);
        let target = ids.target(start);
        let mut call = Script::new(session, 1);
        writer
            .commit(call.start(start, session_start(session, 1, "101", "102")))
            .await
            .unwrap();
        writer
            .commit(call.add(start + 5, target_added(target, "102")))
            .await
            .unwrap();
        writer.commit(call.ring(start + 100, target)).await.unwrap();
        if n == 0 {
            writer
                .commit(call.answer(start + 900, target))
                .await
                .unwrap();
        }
        sessions.push(session);
    }
    sessions
}

/// How many `call_cdr` rows the outbox holds for `session`.
async fn call_cdrs(store: &Store, session: SessionId) -> usize {
    store
        .outbox_after(tenant_id(1), 0, ALL)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == EventType::CallCdr && e.session_id == session)
        .count()
}

fn ms(offset: u64) -> UnixMillis {
    at(offset)
}

async fn heartbeats_keep_a_node_unclaimable_and_a_claim_is_won_once(db: &TestDb) {
    let store = db.open().await;
    store.node_started(1, "10.0.0.1:5060", ms(0)).await.unwrap();
    store.node_started(2, "10.0.0.2:5060", ms(0)).await.unwrap();
    // Node 1 beats at +10 s: at +20 s it is within the lease.
    assert_eq!(
        store.node_heartbeat(1, ms(10_000)).await.unwrap(),
        Heartbeat::Alive
    );
    let cutoff = |now: u64| ms(now - LEASE);
    assert!(
        !store
            .claim_silent_node(1, 2, cutoff(20_000), ms(20_000))
            .await
            .unwrap(),
        "a node that beat within the lease is not claimable"
    );
    // Silent since +10 s: at +26 s node 2 claims it, node 3 then cannot.
    assert!(
        store
            .claim_silent_node(1, 2, cutoff(26_000), ms(26_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_silent_node(1, 3, cutoff(26_001), ms(26_001))
            .await
            .unwrap(),
        "a fresh claim is not taken again"
    );
    // The claimed node learns it at its next beat.
    assert_eq!(
        store.node_heartbeat(1, ms(27_000)).await.unwrap(),
        Heartbeat::TakenOver
    );
    // A claim older than the lease with nothing finished (the claimant
    // died half-way) may be taken again.
    assert!(
        store
            .claim_silent_node(1, 3, cutoff(42_000), ms(42_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_take_over(1, 2, ms(26_000), ms(42_001))
            .await
            .unwrap(),
        "the old claimant cannot finish a claim it lost"
    );
    assert!(
        store
            .finish_take_over(1, 3, ms(42_000), ms(42_002))
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_silent_node(1, 2, cutoff(99_000), ms(99_000))
            .await
            .unwrap(),
        "a finished take-over is not claimed again"
    );
    // Node 1 comes back: its row is its own again.
    store
        .node_started(1, "10.0.0.1:5060", ms(100_000))
        .await
        .unwrap();
    assert_eq!(
        store.node_heartbeat(1, ms(101_000)).await.unwrap(),
        Heartbeat::Alive
    );
    let rows = store.nodes().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].node, 1);
    assert_eq!(rows[0].started_at, ms(100_000));
    assert_eq!(rows[0].heartbeat_at, ms(101_000));
    assert_eq!(
        (rows[0].claimed_by, rows[0].claimed_at, rows[0].closed_at),
        (None, None, None)
    );
    assert_eq!(rows[1].address, "10.0.0.2:5060");
}

async fn a_survivor_closes_a_dead_nodes_calls_once_and_spares_its_own(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let writer = store.spawn_writer(WriterConfig::default());
    store.node_started(1, "a", ms(0)).await.unwrap();
    store.node_started(2, "b", ms(0)).await.unwrap();
    let dead = open_calls(&writer, 1, 1_000, 3).await;
    let alive = open_calls(&writer, 2, 1_000, 2).await;
    // Node 1 beat last at +2 s, node 2 keeps beating.
    store.node_heartbeat(1, ms(2_000)).await.unwrap();
    store.node_heartbeat(2, ms(17_000)).await.unwrap();

    let early = writer
        .take_over_silent_nodes(2, LEASE, ms(16_000))
        .await
        .unwrap();
    assert!(early.is_empty(), "within the lease nothing is taken over");

    let taken = writer
        .take_over_silent_nodes(2, LEASE, ms(17_500))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].node, 1);
    assert!(taken[0].finished);
    assert!(taken[0].report.failed.is_empty());
    let closed: HashSet<_> = taken[0]
        .report
        .recovered
        .iter()
        .map(|r| r.session_id)
        .collect();
    assert_eq!(closed, dead.iter().copied().collect());
    for (n, session) in dead.iter().enumerate() {
        let cdr = store
            .get_cdr(tenant_id(1), session.cdr_id())
            .await
            .unwrap()
            .expect("the dead node's call has its CDR");
        assert!(cdr.recovered);
        let last = 1_000 + n as u64 * 10 + if n == 0 { 900 } else { 100 };
        assert_eq!(cdr.ended_time, ms(last), "ended at the last activity");
        assert_eq!(call_cdrs(&store, *session).await, 1);
    }
    // The survivor's own calls are untouched.
    let open: Vec<_> = store
        .open_sessions()
        .await
        .unwrap()
        .iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(open, alive);

    // Nothing is taken over twice.
    let again = writer
        .take_over_silent_nodes(2, LEASE, ms(60_000))
        .await
        .unwrap();
    assert!(again.iter().all(|t| t.node != 1));

    // Node 1 comes back: it finds its calls closed and closes nothing.
    store.node_started(1, "a", ms(70_000)).await.unwrap();
    let report = writer
        .recover_open_sessions(RecoveryScope::Node(1), ms(70_000))
        .await
        .unwrap();
    assert!(report.recovered.is_empty() && report.failed.is_empty());
    assert_eq!(store.count_cdrs(tenant_id(1)).await.unwrap(), 3);
    for session in &dead {
        assert_eq!(call_cdrs(&store, *session).await, 1);
    }
}

async fn racing_survivors_and_the_returning_node_close_each_call_once(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let setup = store.spawn_writer(WriterConfig::default());
    store.node_started(1, "a", ms(0)).await.unwrap();
    let dead = open_calls(&setup, 1, 1_000, 20).await;
    drop(setup);
    // Two survivors and the dead node restarting, each with its own
    // writer (as three processes would have), all at once.
    let (w2, w3, w1) = (
        store.spawn_writer(WriterConfig::default()),
        store.spawn_writer(WriterConfig::default()),
        store.spawn_writer(WriterConfig::default()),
    );
    let now = ms(60_000);
    let (t2, t3, own) = tokio::join!(
        w2.take_over_silent_nodes(2, LEASE, now),
        w3.take_over_silent_nodes(3, LEASE, now),
        w1.recover_open_sessions(RecoveryScope::Node(1), now),
    );
    let (t2, t3, own) = (t2.unwrap(), t3.unwrap(), own.unwrap());
    assert_eq!(
        t2.len() + t3.len(),
        1,
        "exactly one survivor wins the claim: {t2:?} {t3:?}"
    );
    // Whoever closed a session, it was closed once: one CDR, one call_cdr.
    let closed_by_takeover: usize = t2.iter().chain(&t3).map(|t| t.report.recovered.len()).sum();
    assert_eq!(closed_by_takeover + own.recovered.len(), dead.len());
    assert_eq!(
        store.count_cdrs(tenant_id(1)).await.unwrap(),
        dead.len() as u64
    );
    for session in &dead {
        assert_eq!(call_cdrs(&store, *session).await, 1, "{session}");
    }
    assert!(store.open_sessions().await.unwrap().is_empty());
}

fn binding(key: &str, updated_at: u64, expires_at: u64) -> Registration {
    Registration {
        tenant_id: tenant_id(1),
        extension: "101".into(),
        binding_key: key.into(),
        contact_uri: format!("sip:101@{key}:5062"),
        instance_id: None,
        reg_id: None,
        q: None,
        received: "127.0.0.1:5070".into(),
        transport: "UDP".into(),
        path: vec!["<sip:127.0.0.1:5070;lr;received=sip:10.0.0.7:5062>".into()],
        call_id: format!("reg-{key}"),
        cseq: 1,
        user_agent: String::new(),
        expires_at: ms(expires_at),
        updated_at: ms(updated_at),
    }
}

async fn bindings_are_shared_with_their_path_and_removals_are_tombstones(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    store.create_user(&user(1, "101")).await.unwrap();
    // Node A persists two bindings, node B polls.
    store
        .upsert_registration(&binding("a", 1_000, 60_000))
        .await
        .unwrap();
    store
        .upsert_registration(&binding("b", 2_000, 60_000))
        .await
        .unwrap();
    let seen = store.registrations_updated_since(ms(0)).await.unwrap();
    assert_eq!(
        seen,
        vec![binding("a", 1_000, 60_000), binding("b", 2_000, 60_000)]
    );
    assert_eq!(
        store.registrations_updated_since(ms(1_000)).await.unwrap(),
        vec![binding("b", 2_000, 60_000)],
        "only what was written after the cursor"
    );
    // A unregisters "a": the row stays, expired, for the others to read.
    assert!(
        store
            .tombstone_registration(tenant_id(1), "101", "a", ms(3_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .tombstone_registration(tenant_id(1), "101", "a", ms(3_500))
            .await
            .unwrap(),
        "a tombstone is not written twice"
    );
    let after = store.registrations_updated_since(ms(2_000)).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].binding_key, "a");
    assert_eq!(
        (after[0].expires_at, after[0].updated_at),
        (ms(3_000), ms(3_000))
    );
    let live: Vec<_> = store
        .all_live_registrations(ms(3_000))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.binding_key)
        .collect();
    assert_eq!(live, ["b"]);
    // The sweep deletes tombstones once everyone had time to read them.
    assert_eq!(
        store.remove_expired_registrations(ms(3_000)).await.unwrap(),
        1
    );
    assert!(
        store
            .registrations_updated_since(ms(2_000))
            .await
            .unwrap()
            .is_empty()
    );
}
