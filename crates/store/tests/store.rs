//! The store on both databases: each test body below runs as
//! `sqlite::<name>` and `postgres::<name>` (see `common`).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use cdr::{
    CallEventKind, CallStatus, CallType, CdrId, CdrRecord, Direction, EndReason, EventType, Id,
    NoAnswerCause, Quality, Recording, RerouteReason, SessionEnd, TargetEnd, WireProfile,
};
use common::*;
use serde_json::Value;
use store::{
    Backend, RecoveryScope, Registration, SessionEvents, Store, StoreError, StoreOptions,
    WriterConfig,
};

on_both!(
    migrations_apply_on_a_fresh_database_and_reopen_is_idempotent,
    directory_tenants_and_users,
    registrations_survive_a_restart_and_expire,
    group_commit_of_a_thousand_concurrent_sessions,
    crash_recovery_closes_each_open_session_once,
    recovery_respects_its_scope_and_now,
    every_cdr_field_round_trips,
    reads_are_isolated_per_tenant,
    paging_with_top_skip_and_after_is_stable_under_inserts,
    a_refused_command_fails_alone_and_leaves_no_gap,
    commands_are_checked_before_they_are_queued,
    lock_contention_is_retried_and_nothing_is_acknowledged_before_commit,
    exhausted_retries_fail_the_whole_batch_and_consume_no_sequence,
);

const ALL: u32 = 100_000;

fn outbox_json(payload: &str) -> Value {
    serde_json::from_str(payload).expect("outbox payload is JSON")
}

async fn migrations_apply_on_a_fresh_database_and_reopen_is_idempotent(db: &TestDb) {
    let store = db.open().await;
    assert_eq!(
        store.backend(),
        if db.is_postgres() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    );
    create_tenants(&store, [1]).await;
    store.close().await;

    // Second open of the same database: migrations already applied, data
    // kept, and the schema still works for writes.
    let store = db.open().await;
    assert_eq!(store.tenant(tenant_id(1)).await.unwrap(), Some(tenant(1)));
    create_tenants(&store, [2]).await;
    store.close().await;
    let store = db.open().await;
    assert!(store.tenant(tenant_id(2)).await.unwrap().is_some());
    // The sequence counter row the migration seeds is there exactly once.
    let writer = store.spawn_writer(WriterConfig::default());
    let committed = writer
        .commit(short_call(&mut Ids::node(1), 2, 0, "102"))
        .await
        .unwrap();
    assert_eq!(committed.sequences, vec![1, 2, 3, 4, 5]);
}

async fn directory_tenants_and_users(db: &TestDb) {
    let store = db.open().await;
    let mut acme = tenant(1);
    acme.sip_domain = "Acme.Example".into();
    acme.pickup_code = "*71".into();
    store.create_tenant(&acme).await.unwrap();
    let stored = store.tenant(tenant_id(1)).await.unwrap().unwrap();
    assert_eq!(stored.sip_domain, "acme.example", "domains are lowercased");
    assert_eq!(
        (
            stored.pickup_code.as_str(),
            stored.directed_pickup_prefix.as_str()
        ),
        ("*71", "**"),
        "feature codes (migration 0017)"
    );
    assert!(!stored.recording, "tenants are not recorded by default");
    let mut recorded = stored.clone();
    recorded.recording = true;
    store.update_tenant(&recorded).await.unwrap();
    assert!(
        store.tenant(tenant_id(1)).await.unwrap().unwrap().recording,
        "the tenant's recording flag (migration 0021)"
    );
    store.update_tenant(&stored).await.unwrap();
    assert_eq!(
        store.tenant_by_sip_domain("ACME.example").await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        store.tenant_by_sip_domain("other.example").await.unwrap(),
        None
    );
    assert_eq!(store.tenant(tenant_id(9)).await.unwrap(), None);

    // Same domain in another case: refused as a conflict.
    let mut clash = tenant(2);
    clash.sip_domain = "ACME.EXAMPLE".into();
    let error = store.create_tenant(&clash).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");

    let alice = user(1, "101");
    store.create_user(&alice).await.unwrap();
    assert_eq!(
        store.user_by_extension(tenant_id(1), "101").await.unwrap(),
        Some(alice.clone())
    );
    assert!(
        !format!("{alice:?}").contains("s3cret"),
        "Debug hides the password"
    );
    let mut twin = user(1, "101");
    twin.id = Id::from_u64(42);
    let error = store.create_user(&twin).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
    let error = store.create_user(&user(7, "101")).await.unwrap_err();
    assert!(
        matches!(error, StoreError::MissingReference(_)),
        "unknown tenant: {error}"
    );

    // The same extension in another tenant is another user.
    create_tenants(&store, [2]).await;
    assert_eq!(
        store.user_by_extension(tenant_id(2), "101").await.unwrap(),
        None
    );
    let mut bob = user(2, "101");
    bob.id = Id::from_u64(43);
    bob.ring_timeout_secs = 45;
    bob.max_concurrent_calls = Some(2);
    bob.pickup_group = "sales".into();
    bob.enabled = false;
    store.create_user(&bob).await.unwrap();

    // Listing, for loading the engine's directory at start-up.
    let tenants = store.tenants().await.unwrap();
    assert_eq!(tenants, vec![stored.clone(), tenant(2)]);
    let mut carol = user(1, "100");
    carol.id = Id::from_u64(44);
    store.create_user(&carol).await.unwrap();
    assert_eq!(
        store.users_of_tenant(tenant_id(1)).await.unwrap(),
        vec![carol, alice.clone()]
    );
    assert_eq!(
        store.users_of_tenant(tenant_id(2)).await.unwrap(),
        vec![bob.clone()]
    );
    assert!(
        store
            .users_of_tenant(tenant_id(9))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.user_by_extension(tenant_id(2), "101").await.unwrap(),
        Some(bob)
    );
}

fn binding(key: &str, expires_at: u64) -> Registration {
    Registration {
        tenant_id: tenant_id(1),
        extension: "101".into(),
        binding_key: key.into(),
        contact_uri: format!("sip:101@{key}:5062;transport=tcp"),
        instance_id: Some(format!("urn:uuid:{key}")),
        reg_id: Some(1),
        q: Some(500),
        received: "192.0.2.4:40312".into(),
        transport: "TCP".into(),
        path: Vec::new(), // round-trips with a Path in tests/nodes.rs
        call_id: format!("reg-{key}"),
        cseq: 7,
        user_agent: "Yealink T54W".into(),
        expires_at: at(expires_at),
        updated_at: at(0),
    }
}

async fn registrations_survive_a_restart_and_expire(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let error = store
        .upsert_registration(&binding("a", 60_000))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::MissingReference(_)),
        "binding for an unknown extension: {error}"
    );
    store.create_user(&user(1, "101")).await.unwrap();
    store
        .upsert_registration(&binding("a", 60_000))
        .await
        .unwrap();
    store
        .upsert_registration(&binding("b", 3_600_000))
        .await
        .unwrap();
    let mut plain = binding("c", 120_000);
    plain.instance_id = None;
    plain.reg_id = None;
    plain.q = None;
    store.upsert_registration(&plain).await.unwrap();
    // Refresh of "a": same key, new contact, CSeq and expiry.
    let mut refreshed = binding("a", 90_000);
    refreshed.contact_uri = "sip:101@198.51.100.9:5062".into();
    refreshed.cseq = 8;
    refreshed.q = Some(1000);
    store.upsert_registration(&refreshed).await.unwrap();

    store.close().await;
    let store = db.open().await;
    let live = store
        .live_registrations(tenant_id(1), "101", at(0))
        .await
        .unwrap();
    assert_eq!(
        live,
        vec![refreshed.clone(), binding("b", 3_600_000), plain.clone()]
    );
    assert_eq!(store.all_live_registrations(at(0)).await.unwrap(), live);

    // At +100 s "a" (90 s) has expired but is still stored until swept.
    assert_eq!(
        store
            .live_registrations(tenant_id(1), "101", at(100_000))
            .await
            .unwrap(),
        vec![binding("b", 3_600_000), plain.clone()]
    );
    assert_eq!(
        store
            .remove_expired_registrations(at(100_000))
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .remove_registration(tenant_id(1), "101", "c")
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_registration(tenant_id(1), "101", "c")
            .await
            .unwrap()
    );
    assert_eq!(
        store.all_live_registrations(at(0)).await.unwrap(),
        vec![binding("b", 3_600_000)]
    );
    assert_eq!(
        store
            .remove_registrations(tenant_id(1), "101")
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .all_live_registrations(at(0))
            .await
            .unwrap()
            .is_empty()
    );
}

/// The event types one answered call emits, in order.
const ANSWERED_CALL: [EventType; 6] = [
    EventType::CallStart,
    EventType::TargetAdd,
    EventType::TargetRinging,
    EventType::TargetAnswer,
    EventType::TargetEnd,
    EventType::CallCdr,
];

async fn group_commit_of_a_thousand_concurrent_sessions(db: &TestDb) {
    const SESSIONS: u64 = 1_000;
    const TENANTS: u64 = 7;
    let store = db.open().await;
    create_tenants(&store, 1..=TENANTS).await;
    let writer = store.spawn_writer(WriterConfig::default());
    let mut committed_watch = writer.committed_global_sequence();

    let mut ids = Ids::node(3);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..SESSIONS {
        let tenant = 1 + i % TENANTS;
        let offset = i * 7;
        let session = ids.session(offset);
        let target = ids.target(offset);
        let writer = writer.clone();
        calls.spawn(async move {
            let mut call = Script::new(session, tenant);
            let steps = [
                call.start(offset, session_start(session, tenant, "101", "102")),
                call.add(offset + 10, target_added(target, "102")),
                call.ring(offset + 20, target),
                call.answer(offset + 2_000, target),
                call.hang_up(offset + 60_000, target),
                call.end(offset + 60_000, 200, EndReason::CallerDisconnect),
            ];
            let mut sequences = Vec::new();
            for command in steps {
                // Each step waits for its commit, as a careful shard would;
                // a thousand of them wait at once.
                sequences.extend(writer.commit(command).await.expect("commit").sequences);
            }
            (session, tenant, sequences)
        });
    }
    let mut per_session = HashMap::new();
    while let Some(joined) = calls.join_next().await {
        let (session, tenant, sequences) = joined.unwrap();
        per_session.insert(session, (tenant, sequences));
    }
    assert_eq!(per_session.len() as u64, SESSIONS);

    let stats = writer.stats();
    let commands = SESSIONS * 6;
    eprintln!("group commit on {:?}: {stats:?}", store.backend());
    assert_eq!(stats.commands, commands);
    assert_eq!(stats.failed_commands, 0);
    assert!(
        stats.transactions * 5 <= commands,
        "{} transactions for {commands} commands",
        stats.transactions
    );

    // Every tenant's outbox: sequences exactly 1..=N, each session's events
    // in emission order, payloads carrying their row's sequence and id.
    let mut sessions_seen = 0;
    for tenant in 1..=TENANTS {
        let rows = store.outbox_after(tenant_id(tenant), 0, ALL).await.unwrap();
        let sessions_of_tenant = per_session.values().filter(|(t, _)| *t == tenant).count();
        assert_eq!(rows.len(), sessions_of_tenant * 6);
        assert!(
            rows.iter().zip(1..).all(|(row, n)| row.sequence == n),
            "tenant {tenant}: sequences are not 1..=N"
        );
        let mut by_session: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for row in &rows {
            assert_eq!(row.tenant_id, tenant_id(tenant));
            let json = outbox_json(&row.payload);
            assert_eq!(json["sequence"], row.sequence);
            assert_eq!(json["event_id"], row.event_id.as_str());
            assert_eq!(json["event_type"], row.event_type.as_str());
            assert_eq!(json["tenant_id"], tenant_id(tenant).to_string());
            by_session.entry(row.session_id).or_default().push(row);
        }
        for (session, rows) in &by_session {
            let types: Vec<_> = rows.iter().map(|r| r.event_type).collect();
            assert_eq!(types, ANSWERED_CALL, "session {session}");
            let sequences: Vec<_> = rows.iter().map(|r| r.sequence).collect();
            assert_eq!(per_session[session].1, sequences, "acks match rows");
        }
        sessions_seen += by_session.len();
        let cdrs = store.count_cdrs(tenant_id(tenant)).await.unwrap();
        assert_eq!(cdrs as usize, by_session.len(), "one CDR per session");
    }
    assert_eq!(sessions_seen as u64, SESSIONS);

    // The global tail: 1..=total in commit order, consistent with each
    // tenant's order.
    let all = store.outbox_since_global(0, ALL).await.unwrap();
    assert_eq!(all.len() as u64, commands);
    assert!(all.iter().zip(1..).all(|(row, n)| row.global_sequence == n));
    let mut last_per_tenant = HashMap::new();
    for row in &all {
        let last = last_per_tenant
            .insert(row.tenant_id, row.sequence)
            .unwrap_or(0);
        assert_eq!(row.sequence, last + 1, "global order follows tenant order");
    }
    let page = store.outbox_since_global(4_000, 10).await.unwrap();
    assert_eq!(page.first().map(|r| r.global_sequence), Some(4_001));
    assert_eq!(page.len(), 10);
    assert_eq!(*committed_watch.borrow_and_update(), commands);

    // Every CDR is there with its target, and nothing is left open.
    for (session, (tenant, _)) in per_session.iter().take(50) {
        let cdr = store
            .get_cdr(tenant_id(*tenant), session.cdr_id())
            .await
            .unwrap()
            .expect("cdr");
        assert_eq!(cdr.call_status, CallStatus::Answered);
        assert_eq!(cdr.targets.len(), 1);
        assert_eq!(cdr.targets[0].end_reason, EndReason::CallerDisconnect);
    }
    assert!(store.open_sessions().await.unwrap().is_empty());
}

async fn crash_recovery_closes_each_open_session_once(db: &TestDb) {
    let profile = WireProfile::tally();
    let config = WriterConfig {
        profile,
        ..WriterConfig::default()
    };
    let mut ids = Ids::node(5);
    let session = ids.session(0);
    let target = ids.target(0);
    let mut call = Script::new(session, 1);

    {
        let store = db.open().await;
        create_tenants(&store, [1]).await;
        let writer = store.spawn_writer(config.clone());
        writer
            .commit(call.start(0, session_start(session, 1, "101", "102")))
            .await
            .unwrap();
        writer
            .commit(call.add(15, target_added(target, "102")))
            .await
            .unwrap();
        writer.commit(call.ring(420, target)).await.unwrap();
        let open = store.open_sessions().await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].session_id, session);
        assert_eq!(open[0].started_at, at(0));
        assert_eq!(open[0].last_activity_at, at(420));
        // The node dies here: no session end.
        drop(writer);
        store.close().await;
    }

    // What a builder that saw the same events makes of a recovery.
    let mut expected = call.builder.clone();
    let expected_wire = expected
        .apply(cdr::CallEvent::new(
            at(420),
            CallEventKind::SessionRecovered,
        ))
        .unwrap();
    let expected_record = expected.record().unwrap().clone();

    let store = db.open().await;
    let writer = store.spawn_writer(config);
    let report = writer
        .recover_open_sessions(RecoveryScope::AllNodes, at(3_600_000))
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.recovered.len(), 1);
    let recovered = &report.recovered[0];
    assert_eq!(recovered.session_id, session);
    assert_eq!(recovered.cdr_id, session.cdr_id());
    assert_eq!(recovered.ended_at, at(420));
    assert_eq!(recovered.sequence, 4);

    let cdr = store
        .get_cdr(tenant_id(1), session.cdr_id())
        .await
        .unwrap()
        .expect("recovered cdr");
    assert_eq!(cdr, expected_record);
    assert!(cdr.recovered);
    assert_eq!(cdr.ended_reason, EndReason::NotApplicable);
    assert_eq!(cdr.ended_time, at(420), "ended at the last activity");
    assert_eq!(cdr.targets.len(), 1);
    assert_eq!(cdr.targets[0].end_reason, EndReason::NotApplicable);

    let rows = store.outbox_after(tenant_id(1), 0, ALL).await.unwrap();
    let types: Vec<_> = rows.iter().map(|r| r.event_type).collect();
    assert_eq!(
        types,
        [
            EventType::CallStart,
            EventType::TargetAdd,
            EventType::TargetRinging,
            EventType::CallCdr
        ]
    );
    let cdr_row = &rows[3];
    assert_eq!(cdr_row.sequence, 4);
    assert_eq!(
        cdr_row.payload,
        expected_wire[0].to_json(4, &profile).unwrap(),
        "the exact wire JSON"
    );
    let json = outbox_json(&cdr_row.payload);
    assert_eq!(json["recovered"], true);
    assert_eq!(json["ended_reason"], "None");
    assert!(store.open_sessions().await.unwrap().is_empty());

    // Idempotent: nothing left to recover, nothing written.
    let again = writer
        .recover_open_sessions(RecoveryScope::AllNodes, at(3_600_000))
        .await
        .unwrap();
    assert!(again.recovered.is_empty() && again.failed.is_empty());
    assert_eq!(
        store
            .outbox_after(tenant_id(1), 0, ALL)
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(store.count_cdrs(tenant_id(1)).await.unwrap(), 1);
}

async fn recovery_respects_its_scope_and_now(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let writer = store.spawn_writer(WriterConfig::default());
    let mut nodes = [Ids::node(1), Ids::node(2)];
    let mut open = Vec::new();
    for (node, offset) in [(0, 0), (1, 0), (0, 10_000)] {
        let session = nodes[node].session(offset);
        let mut call = Script::new(session, 1);
        writer
            .commit(call.start(offset, session_start(session, 1, "101", "102")))
            .await
            .unwrap();
        open.push(session);
    }

    // Node 1 restarting at +5 s: only its own session from before then.
    let report = writer
        .recover_open_sessions(RecoveryScope::Node(1), at(5_000))
        .await
        .unwrap();
    let recovered: Vec<_> = report.recovered.iter().map(|r| r.session_id).collect();
    assert_eq!(recovered, vec![open[0]]);
    let left: Vec<_> = store
        .open_sessions()
        .await
        .unwrap()
        .iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(left, vec![open[1], open[2]]);

    // A recovered call nobody answered is `fail` with "0" (cdr crate rule).
    let cdr = store
        .get_cdr(tenant_id(1), open[0].cdr_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cdr.call_status, CallStatus::Fail);
    assert_eq!(cdr.status_code, 0);
    assert!(cdr.targets.is_empty());

    let report = writer
        .recover_open_sessions(RecoveryScope::AllNodes, at(60_000))
        .await
        .unwrap();
    assert_eq!(report.recovered.len(), 2);
    assert!(store.open_sessions().await.unwrap().is_empty());
    let sequences: Vec<_> = store
        .outbox_after(tenant_id(1), 0, ALL)
        .await
        .unwrap()
        .iter()
        .map(|r| r.sequence)
        .collect();
    assert_eq!(sequences, (1..=6).collect::<Vec<_>>());
}

async fn every_cdr_field_round_trips(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let writer = store.spawn_writer(WriterConfig::default());
    let mut ids = Ids::node(9);
    let session = ids.session(0);
    let (first, second) = (ids.target(0), ids.target(0));
    let mut start = session_start(session, 1, "+4930123", "5000");
    start.direction = Direction::InboundOutbound;
    start.did = "4420".into();
    start.trunk_name = "carrier-a".into();
    start.outbound_caller_id = "+4420".into();
    start.user_data = "{\"crm\":\"x'; DROP TABLE cdrs; --\"}".into();
    let mut ring_group = target_added(first, "102");
    ring_group.call_type = CallType::RingGroup;
    let mut mobile = target_added(second, "+4917012345");
    mobile.trunk_name = "carrier-b".into();
    mobile.outbound_caller_id = "+4420".into();
    mobile.reroute_reason = Some(RerouteReason::ForwardingNoAnswer);

    let mut call = Script::new(session, 1);
    let command = call.step(vec![
        (0, CallEventKind::SessionStarted(Box::new(start))),
        (10, CallEventKind::TargetAdded(Box::new(ring_group))),
        (200, CallEventKind::TargetRinging { target: first }),
        (
            30_200,
            CallEventKind::TargetNoAnswer {
                target: first,
                cause: NoAnswerCause::RingTimeout,
            },
        ),
        (30_210, CallEventKind::TargetAdded(Box::new(mobile))),
        (31_000, CallEventKind::TargetAnswered { target: second }),
        (
            95_123,
            CallEventKind::TargetEnded(TargetEnd {
                target: second,
                reason: EndReason::CalleeDisconnect,
                cost: Some(0.0375),
                quality: Some(Quality {
                    codec: "PCMA".into(),
                    packets: 3_206,
                    lost: 4,
                    jitter_ms: 2.75,
                    mos: 4.31,
                }),
            }),
        ),
        (
            95_123,
            CallEventKind::SessionEnded(SessionEnd {
                status_code: 200,
                reason: EndReason::CalleeDisconnect,
                recording: Some(Recording {
                    id: Id::from_u64(1_179_059_904_569_999_999),
                    url: "https://pbx.example/api/recordings/1179059904569999999/download".into(),
                    duration: 64,
                }),
                recording_error: None,
            }),
        ),
    ]);
    let built = command.record().cloned().expect("closing command");
    let committed = writer.commit(command).await.unwrap();
    assert_eq!(committed.sequences, (1..=8).collect::<Vec<_>>());

    let stored = store
        .get_cdr(tenant_id(1), session.cdr_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, built);
    let listed = store.list_cdrs(tenant_id(1), 10, 0, None).await.unwrap();
    assert_eq!(listed, vec![built.clone()]);
    assert_eq!(
        serde_json::to_value(stored.rest_detail()).unwrap(),
        serde_json::to_value(built.rest_detail()).unwrap()
    );
    assert_eq!(
        serde_json::to_value(stored.rest_item()).unwrap()["reroute_reason"],
        "FORWARDING_NO_ANSWER"
    );
    assert!(store.open_sessions().await.unwrap().is_empty());
}

async fn reads_are_isolated_per_tenant(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    let writer = store.spawn_writer(WriterConfig::default());
    let mut ids = Ids::node(4);
    let mut of_tenant: HashMap<u64, Vec<CdrId>> = HashMap::new();
    for i in 0..9 {
        let tenant = if i % 3 == 0 { 2 } else { 1 };
        let command = short_call(&mut ids, tenant, i * 1_000, "102");
        of_tenant
            .entry(tenant)
            .or_default()
            .push(command.session_id.cdr_id());
        writer.commit(command).await.unwrap();
    }
    for (tenant, other) in [(1, 2), (2, 1)] {
        let listed = store
            .list_cdrs(tenant_id(tenant), 100, 0, None)
            .await
            .unwrap();
        let mut ids: Vec<_> = listed.iter().map(|c| c.cdr_id).collect();
        ids.sort();
        assert_eq!(ids, of_tenant[&tenant]);
        assert!(listed.iter().all(|c| c.tenant_id == tenant_id(tenant)));
        assert_eq!(
            store.count_cdrs(tenant_id(tenant)).await.unwrap(),
            of_tenant[&tenant].len() as u64
        );
        for foreign in &of_tenant[&other] {
            assert_eq!(
                store.get_cdr(tenant_id(tenant), *foreign).await.unwrap(),
                None
            );
            let error = store
                .list_cdrs(tenant_id(tenant), 10, 0, Some(*foreign))
                .await
                .unwrap_err();
            assert!(matches!(error, StoreError::UnknownCursor(_)), "{error}");
        }
        let rows = store.outbox_after(tenant_id(tenant), 0, ALL).await.unwrap();
        assert!(rows.iter().all(|r| r.tenant_id == tenant_id(tenant)));
        // Each tenant counts from 1, whatever the other did.
        assert_eq!(rows.first().map(|r| r.sequence), Some(1));
        assert_eq!(rows.len(), of_tenant[&tenant].len() * 5);
    }
    assert!(
        store
            .list_cdrs(tenant_id(3), 100, 0, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .outbox_after(tenant_id(3), 0, ALL)
            .await
            .unwrap()
            .is_empty()
    );
}

/// (started_at DESC, cdr_id DESC): the listing's order.
fn newest_first(cdrs: &mut [CdrRecord]) {
    cdrs.sort_by_key(|c| std::cmp::Reverse((c.start_time, c.cdr_id)));
}

async fn paging_with_top_skip_and_after_is_stable_under_inserts(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let writer = store.spawn_writer(WriterConfig::default());
    let mut ids = Ids::node(6);
    let mut initial = Vec::new();
    for i in 0..40u64 {
        // Pairs of calls share a start time: the cdr_id breaks the tie.
        let command = short_call(&mut ids, 1, 1_000_000 + (i / 2) * 1_000, "102");
        initial.push(command.record().cloned().unwrap());
        writer.commit(command).await.unwrap();
    }
    newest_first(&mut initial);
    let everything = store.list_cdrs(tenant_id(1), 100, 0, None).await.unwrap();
    assert_eq!(everything, initial);

    // top/skip pages add up to the whole listing.
    let mut paged = Vec::new();
    for page in 0.. {
        let rows = store
            .list_cdrs(tenant_id(1), 7, page * 7, None)
            .await
            .unwrap();
        if rows.is_empty() {
            break;
        }
        assert!(rows.len() <= 7);
        paged.extend(rows);
    }
    assert_eq!(paged, initial);
    assert!(
        store
            .list_cdrs(tenant_id(1), 0, 0, None)
            .await
            .unwrap()
            .is_empty()
    );

    // skip applies after the cursor.
    let cursor = initial[4].cdr_id;
    let after = store
        .list_cdrs(tenant_id(1), 7, 0, Some(cursor))
        .await
        .unwrap();
    assert_eq!(after, initial[5..12]);
    let skipped = store
        .list_cdrs(tenant_id(1), 5, 2, Some(cursor))
        .await
        .unwrap();
    assert_eq!(skipped, after[2..7]);

    // Walk with `after` while other calls end: newer calls, calls that
    // started long ago, calls in the middle of the range walked.
    let inserter = {
        let writer = writer.clone();
        let mut ids = Ids::node(7);
        tokio::spawn(async move {
            for i in 0..30u64 {
                let offset = match i % 3 {
                    0 => 5_000_000 + i * 1_000,
                    1 => i * 1_000,
                    _ => 1_000_000 + (i % 20) * 1_000,
                };
                writer
                    .commit(short_call(&mut ids, 1, offset, "103"))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut walked = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_cdrs(tenant_id(1), 5, 0, cursor).await.unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(last.cdr_id);
        walked.extend(page.iter().map(|c| (c.start_time, c.cdr_id)));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    inserter.await.unwrap();
    let unique: HashSet<_> = walked.iter().collect();
    assert_eq!(unique.len(), walked.len(), "no CDR twice");
    assert!(
        walked.windows(2).all(|w| w[0] > w[1]),
        "strictly newest first across pages"
    );
    let walked_ids: HashSet<_> = walked.iter().map(|(_, id)| *id).collect();
    assert!(
        initial.iter().all(|c| walked_ids.contains(&c.cdr_id)),
        "every CDR that existed when the walk began was seen"
    );
    assert_eq!(store.count_cdrs(tenant_id(1)).await.unwrap(), 70);
}

async fn a_refused_command_fails_alone_and_leaves_no_gap(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    // Linger so that everything queued below lands in one batch.
    let writer = store.spawn_writer(WriterConfig {
        linger: Duration::from_millis(200),
        ..WriterConfig::default()
    });
    let mut ids = Ids::node(8);
    let good: Vec<SessionEvents> = (0..4)
        .map(|i| short_call(&mut ids, 1, i * 1_000, "102"))
        .collect();
    // Tenant 99 does not exist: the foreign key refuses its rows.
    let poison = short_call(&mut ids, 99, 0, "102");
    let mut pending = Vec::new();
    for (i, command) in good.iter().cloned().enumerate() {
        if i == 2 {
            pending.push(writer.enqueue(poison.clone()).await.unwrap());
        }
        pending.push(writer.enqueue(command).await.unwrap());
    }
    let mut results = Vec::new();
    for p in pending {
        results.push(p.await);
    }
    let error = results.remove(2).unwrap_err();
    match &error {
        StoreError::CommitFailed { attempts, source } => {
            assert_eq!(*attempts, 1, "not retried: not transient");
            assert!(
                matches!(**source, StoreError::MissingReference(_)),
                "{source}"
            );
        }
        other => panic!("unexpected {other}"),
    }
    assert!(!error.is_transient());
    let sequences: Vec<_> = results
        .into_iter()
        .flat_map(|r| r.expect("innocent command committed").sequences)
        .collect();
    assert_eq!(
        sequences,
        (1..=20).collect::<Vec<_>>(),
        "gap-free, in order"
    );
    let stats = writer.stats();
    assert_eq!(stats.split_batches, 1, "{stats:?}");
    assert_eq!(stats.failed_commands, 1);
    assert_eq!(stats.commands, 4);
    assert!(
        store
            .outbox_after(tenant_id(99), 0, ALL)
            .await
            .unwrap()
            .is_empty()
    );

    // Events for a session whose CDR is committed are refused.
    let closed = good[0].session_id;
    let mut replay = Script::new(closed, 1);
    let error = writer
        .commit(replay.start(0, session_start(closed, 1, "101", "102")))
        .await
        .unwrap_err();
    match &error {
        StoreError::CommitFailed { source, .. } => {
            assert!(
                matches!(**source, StoreError::SessionClosed(s) if s == closed),
                "{source}"
            );
        }
        other => panic!("unexpected {other}"),
    }

    // The same events twice (a confused retry): refused by the event id.
    let session = ids.session(0);
    let mut call = Script::new(session, 1);
    let start = call.start(0, session_start(session, 1, "101", "102"));
    assert_eq!(
        writer.commit(start.clone()).await.unwrap().sequences,
        vec![21]
    );
    let error = writer.commit(start).await.unwrap_err();
    match &error {
        StoreError::CommitFailed { source, .. } => {
            assert!(matches!(**source, StoreError::Conflict(_)), "{source}");
        }
        other => panic!("unexpected {other}"),
    }
    let next = writer
        .commit(call.add(5, target_added(ids.target(0), "102")))
        .await
        .unwrap();
    assert_eq!(next.sequences, vec![22], "refusals consume no sequence");
    let journal = store.open_sessions().await.unwrap();
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].last_activity_at, at(5));
}

async fn commands_are_checked_before_they_are_queued(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    let writer = store.spawn_writer(WriterConfig::default());
    let mut ids = Ids::node(10);
    let call = short_call(&mut ids, 1, 0, "102");

    let mut wrong_session = call.clone();
    wrong_session.session_id = ids.session(0);
    let mut wrong_tenant = call.clone();
    wrong_tenant.tenant_id = tenant_id(2);
    let mut cdr_not_last = call.clone();
    cdr_not_last.wire.rotate_right(1);
    let mut without_events = short_call(&mut ids, 1, 0, "102");
    without_events.wire.pop();
    without_events.events.clear();
    for (what, command) in [
        ("wrong session", wrong_session),
        ("wrong tenant", wrong_tenant),
        ("call_cdr not last", cdr_not_last),
        ("wire without events", without_events),
    ] {
        let error = writer.enqueue(command).await.unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidCommand { .. }),
            "{what}: {error}"
        );
    }
    assert_eq!(writer.stats().commands + writer.stats().failed_commands, 0);
    // A command with nothing in it commits nothing.
    let empty = SessionEvents {
        session_id: call.session_id,
        tenant_id: call.tenant_id,
        events: Vec::new(),
        wire: Vec::new(),
    };
    assert!(writer.commit(empty).await.unwrap().sequences.is_empty());
    assert_eq!(
        writer.commit(call).await.unwrap().sequences,
        vec![1, 2, 3, 4, 5]
    );
    assert!(store.open_sessions().await.unwrap().is_empty());
}

async fn lock_contention_is_retried_and_nothing_is_acknowledged_before_commit(db: &TestDb) {
    let options = StoreOptions {
        lock_wait: Duration::from_millis(100),
        ..StoreOptions::default()
    };
    let store = db.open_with(&options).await;
    create_tenants(&store, [1]).await;
    let writer = store.spawn_writer(WriterConfig {
        max_attempts: 20,
        retry_backoff: Duration::from_millis(20),
        ..WriterConfig::default()
    });
    let mut ids = Ids::node(11);
    let holder = db.hold_write_lock(Duration::from_millis(700)).await;
    let locked_at = Instant::now();
    let command = short_call(&mut ids, 1, 0, "102");
    let committed = writer.commit(command.clone()).await.unwrap();
    let waited = locked_at.elapsed();
    holder.await.unwrap();
    assert!(
        waited >= Duration::from_millis(650),
        "acknowledged after {waited:?}, while another transaction held the lock"
    );
    assert_eq!(committed.sequences, vec![1, 2, 3, 4, 5]);
    assert!(writer.stats().retries >= 1, "{:?}", writer.stats());
    assert_eq!(
        store
            .get_cdr(tenant_id(1), command.session_id.cdr_id())
            .await
            .unwrap()
            .as_ref(),
        command.record()
    );
}

async fn exhausted_retries_fail_the_whole_batch_and_consume_no_sequence(db: &TestDb) {
    let options = StoreOptions {
        lock_wait: Duration::from_millis(50),
        ..StoreOptions::default()
    };
    let store = db.open_with(&options).await;
    create_tenants(&store, [1]).await;
    let writer = store.spawn_writer(WriterConfig {
        max_attempts: 3,
        retry_backoff: Duration::from_millis(10),
        linger: Duration::from_millis(100),
        ..WriterConfig::default()
    });
    let mut ids = Ids::node(12);
    let holder = db.hold_write_lock(Duration::from_millis(2_000)).await;
    let mut pending = Vec::new();
    for i in 0..3 {
        let command = short_call(&mut ids, 1, i * 1_000, "102");
        pending.push(writer.enqueue(command).await.unwrap());
    }
    for p in pending {
        match p.await.unwrap_err() {
            StoreError::CommitFailed { attempts, source } => {
                assert_eq!(attempts, 3);
                assert!(source.is_transient(), "{source}");
            }
            other => panic!("unexpected {other}"),
        }
    }
    let stats = writer.stats();
    assert_eq!(stats.failed_commands, 3, "{stats:?}");
    assert_eq!(stats.split_batches, 0, "transient: not split");
    holder.await.unwrap();

    assert!(store.outbox_since_global(0, ALL).await.unwrap().is_empty());
    assert_eq!(store.count_cdrs(tenant_id(1)).await.unwrap(), 0);
    let next = writer
        .commit(short_call(&mut ids, 1, 9_000, "102"))
        .await
        .unwrap();
    assert_eq!(
        next.sequences,
        vec![1, 2, 3, 4, 5],
        "the failed batch used no sequence"
    );
    let first = store.outbox_since_global(0, 1).await.unwrap();
    assert_eq!(first[0].global_sequence, 1);
}

#[tokio::test]
async fn unknown_url_schemes_are_refused() {
    for url in ["mysql://localhost/tally", "tally.db", ""] {
        match Store::open(url).await {
            Err(StoreError::UnsupportedUrl(given)) => assert_eq!(given, url),
            other => panic!("{url:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_sqlite_file_and_its_directory_are_created() {
    let db = TestDb::sqlite("create_file");
    let store = db.open().await;
    let path = db.url().trim_start_matches("sqlite://");
    assert!(std::path::Path::new(path).is_file(), "{path}");
    store.close().await;
}
