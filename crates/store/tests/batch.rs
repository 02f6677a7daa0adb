//! Many commands of the same sessions in one writer transaction: what one
//! batch commits equals what the commands would commit one by one (on
//! PostgreSQL the batch goes in one statement per kind of row,
//! `pg_commit.rs`). Each body runs as `sqlite::<name>` and
//! `postgres::<name>`.

mod common;

use std::time::Duration;

use cdr::{CallEventKind, EndReason, EventType};
use common::*;
use store::{PendingCommit, RecoveryScope, SessionEvents, StoreError, WriterConfig};

on_both!(
    one_batch_carries_whole_calls_and_journals_in_order,
    events_after_a_close_in_the_same_batch_fail_alone,
);

const ALL: u32 = 100_000;

/// Queues `commands` in order; a long linger makes them one batch.
async fn queue(writer: &store::StoreWriter, commands: Vec<SessionEvents>) -> Vec<PendingCommit> {
    let mut pending = Vec::new();
    for command in commands {
        pending.push(writer.enqueue(command).await.expect("queued"));
    }
    pending
}

async fn one_batch_carries_whole_calls_and_journals_in_order(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    let writer = store.spawn_writer(WriterConfig {
        linger: Duration::from_millis(300),
        ..WriterConfig::default()
    });
    let mut ids = Ids::node(11);
    // `done`: a whole call in tenant 1. `open`: tenant 2, still ringing.
    // `later`: tenant 1, started in this batch, rung in the next one.
    let (done, open, later) = (ids.session(0), ids.session(1), ids.session(2));
    let (done_t, open_t, later_t) = (ids.target(0), ids.target(1), ids.target(2));
    let mut a = Script::new(done, 1);
    let mut b = Script::new(open, 2);
    let mut c = Script::new(later, 1);
    let first = vec![
        a.start(0, session_start(done, 1, "101", "102")),
        b.start(2, session_start(open, 2, "201", "202")),
        a.add(5, target_added(done_t, "102")),
        c.step(vec![
            (
                7,
                CallEventKind::SessionStarted(Box::new(session_start(later, 1, "103", "104"))),
            ),
            (
                8,
                CallEventKind::TargetAdded(Box::new(target_added(later_t, "104"))),
            ),
        ]),
        b.add(9, target_added(open_t, "202")),
        a.ring(100, done_t),
        b.ring(150, open_t),
        a.answer(900, done_t),
        a.hang_up(5_000, done_t),
        a.end(5_001, 200, EndReason::CallerDisconnect),
    ];
    // Per tenant, the batch's wire events in queue order: 1, 2, 3...
    let mut next = std::collections::HashMap::new();
    let expected: Vec<Vec<u64>> = first
        .iter()
        .map(|command| {
            let n = next.entry(command.tenant_id).or_insert(0u64);
            command
                .wire
                .iter()
                .map(|_| {
                    *n += 1;
                    *n
                })
                .collect()
        })
        .collect();
    let tenant1_rows = next[&store_tenant(1)];
    let mut sequences = Vec::new();
    for pending in queue(&writer, first).await {
        sequences.push(pending.await.expect("committed").sequences);
    }
    let stats = writer.stats();
    assert_eq!(
        (stats.transactions, stats.largest_batch, stats.split_batches),
        (1, 10, 0),
        "one transaction: {stats:?}"
    );
    assert_eq!(sequences, expected, "gap-free per tenant, in queue order");
    assert_eq!(
        store.get_cdr(store_tenant(1), done.cdr_id()).await.unwrap(),
        a.builder.record().cloned(),
        "the CDR as the builder made it"
    );
    let mut sessions = store.open_sessions().await.unwrap();
    sessions.sort_by_key(|s| s.session_id);
    let seen: Vec<_> = sessions
        .iter()
        .map(|s| (s.session_id, s.started_at, s.last_activity_at))
        .collect();
    let mut expected = vec![(open, at(2), at(150)), (later, at(7), at(8))];
    expected.sort_by_key(|s| s.0);
    assert_eq!(seen, expected, "the closed session's open state is gone");

    // The next batch continues `later`'s journal after its two events.
    let ring = c.ring(300, later_t);
    let ring_rows = ring.wire.len() as u64;
    writer.commit(ring).await.unwrap();

    // Recovery replays each journal in order: a hole, a duplicate or a
    // swap would make the builder refuse it or give another CDR.
    let report = writer
        .recover_open_sessions(RecoveryScope::AllNodes, at(3_600_000))
        .await
        .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.recovered.len(), 2);
    for (script, tenant) in [(&b, 2), (&c, 1)] {
        let mut expected = script.builder.clone();
        let last = if tenant == 2 { at(150) } else { at(300) };
        expected
            .apply(cdr::CallEvent::new(last, CallEventKind::SessionRecovered))
            .unwrap();
        assert_eq!(
            store
                .get_cdr(store_tenant(tenant), script.session_id.cdr_id())
                .await
                .unwrap(),
            expected.record().cloned(),
            "recovered from its journal"
        );
    }
    assert!(store.open_sessions().await.unwrap().is_empty());
    let rows = store.outbox_after(store_tenant(1), 0, ALL).await.unwrap();
    assert_eq!(
        rows.iter().map(|row| row.sequence).collect::<Vec<_>>(),
        (1..=tenant1_rows + ring_rows + 1).collect::<Vec<_>>(),
        "gap-free across the batches and the recovery"
    );
    let cdrs: Vec<_> = rows
        .iter()
        .filter(|row| row.event_type == EventType::CallCdr)
        .map(|row| row.session_id)
        .collect();
    assert_eq!(cdrs, [done, later]);
}

async fn events_after_a_close_in_the_same_batch_fail_alone(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let writer = store.spawn_writer(WriterConfig {
        linger: Duration::from_millis(300),
        ..WriterConfig::default()
    });
    let mut ids = Ids::node(12);
    let (closed, other) = (ids.session(0), ids.session(1));
    let (closed_t, other_t) = (ids.target(0), ids.target(1));
    let mut a = Script::new(closed, 1);
    let mut b = Script::new(other, 1);
    let start = a.start(0, session_start(closed, 1, "101", "102"));
    let add = a.add(5, target_added(closed_t, "102"));
    // Made before the end, queued after it: events for a closed session.
    let late = a.ring(100, closed_t);
    let answer = a.answer(120, closed_t);
    let hang_up = a.hang_up(150, closed_t);
    let end = a.end(200, 200, EndReason::CallerDisconnect);
    let commands = vec![
        start,
        add,
        answer,
        hang_up,
        end,
        late,
        b.start(300, session_start(other, 1, "103", "104")),
        b.add(305, target_added(other_t, "104")),
    ];
    let committed_rows: u64 = commands
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .map(|(_, command)| command.wire.len() as u64)
        .sum();
    let mut results = Vec::new();
    for pending in queue(&writer, commands).await {
        results.push(pending.await.map(|c| c.sequences));
    }
    let late_error = results.remove(5).unwrap_err();
    match &late_error {
        StoreError::CommitFailed { source, .. } => assert!(
            matches!(**source, StoreError::SessionClosed(s) if s == closed),
            "{source}"
        ),
        other => panic!("unexpected {other}"),
    }
    let sequences: Vec<u64> = results
        .into_iter()
        .flat_map(|r| r.expect("the others commit"))
        .collect();
    assert_eq!(
        sequences,
        (1..=committed_rows).collect::<Vec<_>>(),
        "the refusal leaves no gap"
    );
    let stats = writer.stats();
    assert_eq!(stats.split_batches, 1, "{stats:?}");
    assert_eq!((stats.commands, stats.failed_commands), (7, 1));
    let open = store.open_sessions().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].session_id, other);
    assert_eq!(
        store
            .get_cdr(store_tenant(1), closed.cdr_id())
            .await
            .unwrap(),
        a.builder.record().cloned(),
        "the close committed"
    );
    let rows = store.outbox_after(store_tenant(1), 0, ALL).await.unwrap();
    assert!(
        rows.iter()
            .all(|row| !(row.session_id == closed && row.event_type == EventType::TargetRinging)),
        "nothing of the refused command"
    );
}

fn store_tenant(n: u64) -> cdr::TenantId {
    tenant_id(n)
}
