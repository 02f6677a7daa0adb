//! Ring groups on both databases: CRUD within a tenant, one extension
//! space shared with users (either way), references checked before
//! anything is written, tenant deletion taking the groups with it.

mod common;

use cdr::{Id, UnixMillis};
use common::*;
use store::{RingGroup, RingGroupWrite, StoreError};

on_both!(
    ring_groups_round_trip_and_stay_in_their_tenant,
    ring_groups_share_the_extension_space_with_users,
    ring_group_references_are_checked_before_writing,
);

fn group(id: u64, tenant: u64, number: &str, members: &[&str]) -> RingGroup {
    RingGroup {
        id: Id::from_u64(950_000 + id),
        tenant_id: tenant_id(tenant),
        number: number.into(),
        name: format!("group {number}"),
        strategy: "hunt".into(),
        members: members.iter().map(|m| m.to_string()).collect(),
        member_timeout_secs: 15,
        timeout_secs: 60,
        no_answer: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

/// Tenants 1 and 2; users 101, 102 in tenant 1, 201 in tenant 2.
async fn seeded(db: &TestDb) -> store::Store {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    for (n, tenant, ext) in [(1, 1, "101"), (2, 1, "102"), (3, 2, "201")] {
        let mut u = user(tenant, ext);
        u.id = Id::from_u64(600_000 + n);
        store.create_user(&u).await.expect("user");
    }
    store
}

async fn ring_groups_round_trip_and_stay_in_their_tenant(db: &TestDb) {
    let store = seeded(db).await;
    let g = group(1, 1, "600", &["102", "101"]);
    let version = store.directory_version().await.unwrap();
    assert_eq!(
        store.create_ring_group(&g).await.unwrap(),
        RingGroupWrite::Written
    );
    assert!(store.directory_version().await.unwrap() > version);
    assert_eq!(
        store.ring_group(g.tenant_id, g.id).await.unwrap(),
        Some(g.clone())
    );
    assert_eq!(store.ring_group(tenant_id(2), g.id).await.unwrap(), None);
    let mut changed = g.clone();
    changed.strategy = "round_robin".into();
    changed.members = vec!["101".into()];
    changed.no_answer = Some("102".into());
    changed.updated_at = UnixMillis(at(0).0 + 5);
    assert_eq!(
        store.update_ring_group(&changed).await.unwrap(),
        RingGroupWrite::Written
    );
    assert_eq!(
        store.ring_group_page(tenant_id(1), 10, 0).await.unwrap(),
        vec![changed.clone()]
    );
    // Another tenant's id is not found, and changes nothing.
    let mut foreign = changed.clone();
    foreign.tenant_id = tenant_id(2);
    foreign.members = vec!["201".into()];
    foreign.no_answer = None;
    assert_eq!(
        store.update_ring_group(&foreign).await.unwrap(),
        RingGroupWrite::NotFound
    );
    assert_eq!(
        store.delete_ring_group(tenant_id(2), g.id).await.unwrap(),
        store::RingGroupDeletion::NotFound
    );
    assert_eq!(store.count_ring_groups(tenant_id(1)).await.unwrap(), 1);
    assert_eq!(store.count_ring_groups(tenant_id(2)).await.unwrap(), 0);
    // The same number in another tenant is another group.
    let theirs = group(2, 2, "600", &["201"]);
    assert_eq!(
        store.create_ring_group(&theirs).await.unwrap(),
        RingGroupWrite::Written
    );
    assert_eq!(store.all_ring_groups().await.unwrap().len(), 2);
    assert_eq!(
        store.delete_ring_group(tenant_id(1), g.id).await.unwrap(),
        store::RingGroupDeletion::Deleted
    );
    assert_eq!(store.ring_group(tenant_id(1), g.id).await.unwrap(), None);
    // Deleting a tenant takes its groups.
    store.delete_tenant(tenant_id(2)).await.unwrap();
    assert!(store.all_ring_groups().await.unwrap().is_empty());
}

async fn ring_groups_share_the_extension_space_with_users(db: &TestDb) {
    let store = seeded(db).await;
    // A user's extension is not a group number…
    assert_eq!(
        store
            .create_ring_group(&group(1, 1, "101", &["102"]))
            .await
            .unwrap(),
        RingGroupWrite::NumberTaken
    );
    let g = group(2, 1, "600", &["102"]);
    store.create_ring_group(&g).await.unwrap();
    // …nor another group's…
    assert_eq!(
        store
            .create_ring_group(&group(3, 1, "600", &["101"]))
            .await
            .unwrap(),
        RingGroupWrite::NumberTaken
    );
    // …and a group's number is no user's, created or renumbered.
    let mut u = user(1, "600");
    u.id = Id::from_u64(600_010);
    assert!(matches!(
        store.create_user(&u).await,
        Err(StoreError::NumberTaken(n)) if n == "600"
    ));
    let mut renumbered = store
        .user_by_extension(tenant_id(1), "101")
        .await
        .unwrap()
        .unwrap();
    renumbered.extension = "600".into();
    assert!(matches!(
        store.update_user(&renumbered).await,
        Err(StoreError::NumberTaken(_))
    ));
    // A group keeps its own number on update.
    let mut same = g.clone();
    same.name = "renamed".into();
    assert_eq!(
        store.update_ring_group(&same).await.unwrap(),
        RingGroupWrite::Written
    );
}

async fn ring_group_references_are_checked_before_writing(db: &TestDb) {
    let store = seeded(db).await;
    let version = store.directory_version().await.unwrap();
    // A member of another tenant is unknown here.
    assert_eq!(
        store
            .create_ring_group(&group(1, 1, "600", &["101", "201"]))
            .await
            .unwrap(),
        RingGroupWrite::UnknownMember("201".into())
    );
    let mut g = group(2, 1, "601", &["101"]);
    g.no_answer = Some("699".into());
    assert_eq!(
        store.create_ring_group(&g).await.unwrap(),
        RingGroupWrite::UnknownDestination("699".into())
    );
    // The group itself is not a destination it can refer to.
    g.no_answer = Some("601".into());
    assert_eq!(
        store.create_ring_group(&g).await.unwrap(),
        RingGroupWrite::UnknownDestination("601".into())
    );
    assert_eq!(store.directory_version().await.unwrap(), version);
    assert_eq!(store.count_ring_groups(tenant_id(1)).await.unwrap(), 0);
    // Another group and a user are.
    g.no_answer = Some("102".into());
    store.create_ring_group(&g).await.unwrap();
    let mut h = group(3, 1, "602", &["102"]);
    h.no_answer = Some("601".into());
    assert_eq!(
        store.create_ring_group(&h).await.unwrap(),
        RingGroupWrite::Written
    );
}
