//! Recording rows on both databases (`sqlite::<name>` and
//! `postgres::<name>`, see `common`): insert and read back, tenant scope,
//! filters and keyset paging, one row per session, delete, retention, and
//! a tenant's deletion taking its recordings along.

mod common;

use cdr::{Id, SessionId};
use common::*;
use store::{Recording, RecordingFilter};

on_both!(
    recordings_read_back_filter_page_and_stay_in_their_tenant,
    delete_retention_and_tenant_deletion_remove_rows,
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
