//! Recording rows on both databases (`sqlite::<name>` and
//! `postgres::<name>`, see `common`): insert and read back, tenant scope,
//! filters and keyset paging, one row per session, delete, retention, and
//! a tenant's deletion taking its recordings along; a CDR's
//! `recording_error` (migration 0021) when a recording is missing.

mod common;

use cdr::{
    CallEventKind, EndReason, EventType, Id, RecordingError, RecordingFailure, SessionEnd,
    SessionId, TargetEnd,
};
use common::*;
use serde_json::Value;
use store::{Recording, RecordingFilter, WriterConfig};

on_both!(
    recordings_read_back_filter_page_and_stay_in_their_tenant,
    delete_retention_and_tenant_deletion_remove_rows,
    a_missing_recording_says_why,
);

fn recording(tenant: u64, n: u64, caller: &str, callee: &str, started: u64) -> Recording {
    let session = 950_000_000_000_000_000 + tenant * 1000 + n;
    Recording {
        id: Id::from_u64(session + 5),
        tenant_id: tenant_id(tenant),
        session_id: SessionId::from(Id::from_u64(session)),
        caller: caller.into(),
        callee: callee.into(),
        started_at: at(started),
        duration_ms: 12_345 + n,
        size_bytes: 44 + 32 * 12_345,
        path: format!("{}/{session}.wav", tenant_id(tenant)),
        created_at: at(started + 13_000),
    }
}

async fn recordings_read_back_filter_page_and_stay_in_their_tenant(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    let rows = [
        recording(1, 1, "101", "102", 1_000),
        recording(1, 2, "102", "103", 2_000),
        recording(1, 3, "104", "101", 3_000),
        recording(2, 1, "101", "102", 1_500),
    ];
    for r in &rows {
        store.insert_recording(r).await.unwrap();
    }
    // The same session twice is refused.
    let mut again = rows[0].clone();
    again.id = Id::from_u64(1);
    assert!(store.insert_recording(&again).await.is_err());

    let all = store
        .recordings(tenant_id(1), &RecordingFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(all, vec![rows[2].clone(), rows[1].clone(), rows[0].clone()]);
    assert_eq!(
        store.recording(tenant_id(1), rows[0].id).await.unwrap(),
        Some(rows[0].clone())
    );
    // Another tenant's id is not found.
    assert_eq!(
        store.recording(tenant_id(2), rows[0].id).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .recording_of_session(rows[3].session_id)
            .await
            .unwrap(),
        Some(rows[3].clone())
    );

    let list = |f: RecordingFilter, limit| {
        let store = store.clone();
        async move {
            store
                .recordings(tenant_id(1), &f, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.started_at)
                .collect::<Vec<_>>()
        }
    };
    let time = RecordingFilter {
        from: Some(at(1_500)),
        to: Some(at(3_000)),
        ..Default::default()
    };
    assert_eq!(list(time, 100).await, vec![at(2_000)]);
    let number = RecordingFilter {
        number: Some("101".into()),
        ..Default::default()
    };
    assert_eq!(list(number, 100).await, vec![at(3_000), at(1_000)]);
    let own = RecordingFilter {
        own: Some("103".into()),
        ..Default::default()
    };
    assert_eq!(list(own, 100).await, vec![at(2_000)]);
    // Keyset paging: two pages of two and one.
    assert_eq!(
        list(RecordingFilter::default(), 2).await,
        vec![at(3_000), at(2_000)]
    );
    let next = RecordingFilter {
        after: Some((rows[1].started_at, rows[1].id)),
        ..Default::default()
    };
    assert_eq!(list(next, 2).await, vec![at(1_000)]);
}

async fn delete_retention_and_tenant_deletion_remove_rows(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    let rows = [
        recording(1, 1, "101", "102", 1_000),
        recording(1, 2, "101", "102", 100_000),
        recording(2, 1, "101", "102", 2_000),
    ];
    for r in &rows {
        store.insert_recording(r).await.unwrap();
    }
    // Delete is tenant-scoped and returns the row (for its file).
    assert_eq!(
        store
            .delete_recording(tenant_id(2), rows[0].id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .delete_recording(tenant_id(1), rows[1].id)
            .await
            .unwrap(),
        Some(rows[1].clone())
    );
    assert_eq!(
        store
            .delete_recording(tenant_id(1), rows[1].id)
            .await
            .unwrap(),
        None
    );
    // Retention takes what was created before the cut, oldest first.
    let pruned = store.prune_recordings(at(14_500), 10).await.unwrap();
    assert_eq!(pruned, vec![rows[0].clone()]);
    assert!(
        store
            .prune_recordings(at(14_500), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The tenant's deletion takes the rest of its recordings along.
    assert!(store.delete_tenant(tenant_id(2)).await.unwrap());
    assert_eq!(
        store
            .recording_of_session(rows[2].session_id)
            .await
            .unwrap(),
        None
    );
}

/// A call that was to be recorded and is not: the CDR's
/// `recording_error` (migration 0021) reads back as written, on the event,
/// the stored row and the REST detail; a CDR without one has none.
async fn a_missing_recording_says_why(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let writer = store.spawn_writer(WriterConfig::default());
    let mut ids = Ids::node(5);
    let session = ids.session(0);
    let target = ids.target(0);
    let mut script = Script::new(session, 1);
    let error = RecordingError {
        reason: RecordingFailure::Unwritable,
        detail: "Permission denied (os error 13): /var/lib/tally/recordings/1".into(),
    };
    let command = script.step(vec![
        (
            0,
            CallEventKind::SessionStarted(Box::new(session_start(session, 1, "101", "102"))),
        ),
        (
            5,
            CallEventKind::TargetAdded(Box::new(target_added(target, "102"))),
        ),
        (900, CallEventKind::TargetAnswered { target }),
        (
            9_000,
            CallEventKind::TargetEnded(TargetEnd {
                target,
                reason: EndReason::CallerDisconnect,
                cost: None,
                quality: None,
            }),
        ),
        (
            9_000,
            CallEventKind::SessionEnded(SessionEnd {
                status_code: 200,
                reason: EndReason::CallerDisconnect,
                recording: None,
                recording_error: Some(error.clone()),
            }),
        ),
    ]);
    let built = command.record().cloned().expect("closing command");
    assert_eq!(built.recording_error, Some(error.clone()));
    let committed = writer.commit(command).await.unwrap();
    let stored = store
        .get_cdr(tenant_id(1), session.cdr_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, built);
    let detail = serde_json::to_value(stored.rest_detail()).unwrap();
    assert_eq!(
        detail["recording_error"],
        serde_json::json!({"reason": "unwritable", "detail": error.detail})
    );
    assert!(detail.get("recording").is_none(), "{detail}");
    assert!(
        serde_json::to_value(stored.rest_item())
            .unwrap()
            .get("recording_error")
            .is_none(),
        "list items have no recording link, nor its error"
    );
    let cdr_event = store
        .outbox_after(tenant_id(1), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == EventType::CallCdr)
        .expect("call_cdr in the outbox");
    let json: Value = serde_json::from_str(&cdr_event.payload).unwrap();
    assert_eq!(json["recording_error"]["reason"], "unwritable", "{json}");
    assert!(committed.sequences.len() >= 4);

    // An ordinary call has neither.
    let plain = short_call(&mut ids, 1, 20_000, "103");
    let cdr_id = plain.session_id.cdr_id();
    writer.commit(plain).await.unwrap();
    let stored = store.get_cdr(tenant_id(1), cdr_id).await.unwrap().unwrap();
    assert_eq!(stored.recording_error, None);
}
