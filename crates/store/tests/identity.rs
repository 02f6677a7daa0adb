//! The identity tables on both databases (`sqlite::<name>` and
//! `postgres::<name>`, see `common`): tokens (expiry, rotation, reuse,
//! revocation, a race of two nodes), API keys, login throttling, the
//! audit log, and user/tenant changes that carry their registrations and
//! tokens with them.

mod common;

use cdr::{Id, UnixMillis};
use common::*;
use store::{
    AccessGrant, ApiKey, AuditEntry, NewToken, Refresh, Registration, Rotation, StoreError,
    TokenOwner,
};

on_both!(
    access_tokens_expire_and_carry_the_users_current_role,
    refresh_tokens_rotate_once_and_reuse_revokes_the_family,
    two_nodes_spending_one_refresh_token_rotate_it_once,
    api_keys_are_found_by_hash_touched_and_deleted,
    login_failures_count_in_a_window_and_lock,
    audit_entries_page_per_tenant_newest_first,
    user_changes_and_deletes_carry_registrations_and_tokens,
    deleting_a_tenant_removes_everything_it_owns,
    every_directory_write_moves_the_directory_version,
    a_tenant_kept_by_another_features_rows_is_not_deleted_at_all,
);

fn ms(t: u64) -> UnixMillis {
    at(t)
}

fn token<'a>(
    hash: &'a str,
    refresh: bool,
    family: &'a str,
    owner: TokenOwner,
    expires: u64,
) -> NewToken<'a> {
    NewToken {
        hash,
        refresh,
        family,
        owner,
        created_at: ms(0),
        expires_at: ms(expires),
        family_started_at: ms(0),
    }
}

async fn seeded(db: &TestDb) -> (store::Store, store::User) {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    let mut u = user(1, "101");
    u.role = "Admin".into();
    store.create_user(&u).await.expect("user");
    (store, u)
}

/// A rotation issuing `<n>-access` and `<n>-refresh`.
fn next(names: &(String, String)) -> Rotation<'_> {
    Rotation {
        access_hash: &names.0,
        refresh_hash: &names.1,
        access_expires_at: ms(1_000),
        refresh_expires_at: ms(5_000),
        family_lifetime_ms: 30 * 24 * 3600 * 1000,
    }
}

fn names(n: &str) -> (String, String) {
    (format!("{n}-access"), format!("{n}-refresh"))
}

fn owner(u: &store::User) -> TokenOwner {
    TokenOwner::User {
        tenant_id: u.tenant_id,
        user_id: u.id,
    }
}

async fn access_tokens_expire_and_carry_the_users_current_role(db: &TestDb) {
    let (store, u) = seeded(db).await;
    store
        .insert_tokens(&[
            token("a1", false, "f1", owner(&u), 1_000),
            token("r1", true, "f1", owner(&u), 5_000),
            token("sys", false, "f2", TokenOwner::SystemAdmin, 1_000),
        ])
        .await
        .unwrap();
    let grant = store.access_grant("a1", ms(999)).await.unwrap();
    assert_eq!(
        grant,
        Some(AccessGrant::User {
            tenant_id: u.tenant_id,
            user_id: u.id,
            role: "Admin".into(),
            enabled: true
        })
    );
    assert_eq!(
        store.access_grant("a1", ms(1_000)).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store.access_grant("r1", ms(0)).await.unwrap(),
        None,
        "a refresh token is no access token"
    );
    assert_eq!(store.access_grant("nope", ms(0)).await.unwrap(), None);
    assert_eq!(
        store.access_grant("sys", ms(0)).await.unwrap(),
        Some(AccessGrant::SystemAdmin)
    );

    // The role and state are read at each check.
    let mut changed = u.clone();
    changed.role = "StandardUser".into();
    changed.enabled = false;
    assert!(store.update_user(&changed).await.unwrap());
    assert_eq!(
        store.access_grant("a1", ms(0)).await.unwrap(),
        None,
        "a disabled user's tokens are revoked"
    );

    // Expired rows are removed; live ones stay.
    assert_eq!(store.remove_expired_tokens(ms(1_000)).await.unwrap(), 2);
    assert_eq!(store.remove_expired_tokens(ms(1_000)).await.unwrap(), 0);
}

async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family(db: &TestDb) {
    let (store, u) = seeded(db).await;
    let o = owner(&u);
    store
        .insert_tokens(&[
            token("a1", false, "f", o, 1_000),
            token("r1", true, "f", o, 5_000),
        ])
        .await
        .unwrap();
    let second = names("2");
    assert_eq!(
        store
            .redeem_refresh("r1", ms(10), &next(&second))
            .await
            .unwrap(),
        Refresh::Rotated {
            owner: o,
            family: "f".into()
        }
    );
    // Another sign-in of the same user, another family.
    store
        .insert_tokens(&[
            token("b1", false, "g", o, 1_000),
            token("s1", true, "g", o, 5_000),
        ])
        .await
        .unwrap();
    assert!(
        store
            .access_grant("2-access", ms(20))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.access_grant("2-access", ms(1_000)).await.unwrap(),
        None,
        "its own expiry"
    );

    let unused = names("unused");
    assert_eq!(
        store
            .redeem_refresh("r1", ms(20), &next(&unused))
            .await
            .unwrap(),
        Refresh::Reused { owner: o }
    );
    for t in ["a1", "2-access", "unused-access"] {
        assert_eq!(store.access_grant(t, ms(20)).await.unwrap(), None, "{t}");
    }
    assert_eq!(
        store
            .redeem_refresh("2-refresh", ms(20), &next(&unused))
            .await
            .unwrap(),
        Refresh::Invalid
    );
    assert!(
        store.access_grant("b1", ms(20)).await.unwrap().is_some(),
        "other family untouched"
    );

    // Expired and unknown refresh tokens are invalid, not reuses.
    assert_eq!(
        store
            .redeem_refresh("s1", ms(5_000), &next(&unused))
            .await
            .unwrap(),
        Refresh::Invalid
    );
    assert!(store.access_grant("b1", ms(20)).await.unwrap().is_some());
    assert_eq!(
        store
            .redeem_refresh("zzz", ms(0), &next(&unused))
            .await
            .unwrap(),
        Refresh::Invalid
    );
    assert_eq!(
        store.access_grant("unused-access", ms(20)).await.unwrap(),
        None
    );

    // Revoking by any token of a family ends it.
    assert!(store.revoke_token("b1", ms(30)).await.unwrap());
    assert_eq!(store.access_grant("b1", ms(30)).await.unwrap(), None);
    assert!(!store.revoke_token("zzz", ms(30)).await.unwrap());
}

async fn two_nodes_spending_one_refresh_token_rotate_it_once(db: &TestDb) {
    let (store, u) = seeded(db).await;
    let o = owner(&u);
    store
        .insert_tokens(&[token("r", true, "f", o, 5_000)])
        .await
        .unwrap();
    let other = db.open().await;
    let (first, second) = (names("a"), names("b"));
    let (first, second) = (next(&first), next(&second));
    let (a, b) = tokio::join!(
        store.redeem_refresh("r", ms(1), &first),
        other.redeem_refresh("r", ms(1), &second)
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let rotated = outcomes
        .iter()
        .filter(|r| matches!(r, Refresh::Rotated { .. }))
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
    assert!(
        outcomes.contains(&Refresh::Reused { owner: o }),
        "{outcomes:?}"
    );
    // The reuse revoked the family, the pair the winner stored included.
    for t in ["a-access", "b-access"] {
        assert_eq!(store.access_grant(t, ms(2)).await.unwrap(), None, "{t}");
    }
}

async fn api_keys_are_found_by_hash_touched_and_deleted(db: &TestDb) {
    let (store, _) = seeded(db).await;
    let key = ApiKey {
        id: Id::from_u64(7_000),
        tenant_id: tenant_id(1),
        name: "crm".into(),
        role: "QueueManager".into(),
        prefix: "tally_0123abcd".into(),
        created_at: ms(0),
        last_used_at: None,
    };
    store.create_api_key(&key, "hash-1").await.unwrap();
    let same_name = ApiKey {
        id: Id::from_u64(7_001),
        ..key.clone()
    };
    assert!(matches!(
        store.create_api_key(&same_name, "hash-2").await,
        Err(StoreError::Conflict(_))
    ));
    let elsewhere = ApiKey {
        id: Id::from_u64(7_002),
        tenant_id: tenant_id(2),
        ..key.clone()
    };
    store.create_api_key(&elsewhere, "hash-3").await.unwrap();
    let bad_role = ApiKey {
        id: Id::from_u64(7_003),
        name: "x".into(),
        role: "Root".into(),
        ..key.clone()
    };
    assert!(
        store.create_api_key(&bad_role, "hash-4").await.is_err(),
        "the role is checked"
    );

    assert_eq!(
        store.api_key_by_hash("hash-1").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.api_key_by_hash("hash-9").await.unwrap(), None);
    store.touch_api_key(key.id, ms(500)).await.unwrap();
    assert_eq!(
        store
            .api_key(tenant_id(1), key.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        Some(ms(500))
    );
    assert_eq!(
        store.api_key(tenant_id(2), key.id).await.unwrap(),
        None,
        "another tenant's id"
    );
    assert_eq!(store.api_keys(tenant_id(1)).await.unwrap().len(), 1);
    assert!(!store.delete_api_key(tenant_id(2), key.id).await.unwrap());
    assert!(store.delete_api_key(tenant_id(1), key.id).await.unwrap());
    assert_eq!(store.api_key_by_hash("hash-1").await.unwrap(), None);
    assert_eq!(store.api_keys(tenant_id(2)).await.unwrap().len(), 1);
}

async fn login_failures_count_in_a_window_and_lock(db: &TestDb) {
    let store = db.open().await;
    let lock = |n: u64| if n >= 3 { 1_000 * (n - 2) } else { 0 };
    for (n, t) in [(1, 0), (2, 10), (3, 20)] {
        assert_eq!(
            store
                .record_login_failure("acct", ms(t), 60_000, &lock)
                .await
                .unwrap(),
            n
        );
    }
    assert_eq!(store.login_lock("acct", ms(20)).await.unwrap(), 1_000);
    assert_eq!(store.login_lock("acct", ms(520)).await.unwrap(), 500);
    assert_eq!(store.login_lock("acct", ms(1_020)).await.unwrap(), 0);
    assert_eq!(
        store
            .record_login_failure("acct", ms(1_100), 60_000, &lock)
            .await
            .unwrap(),
        4
    );
    assert_eq!(store.login_lock("acct", ms(1_100)).await.unwrap(), 2_000);
    assert_eq!(store.login_lock("other", ms(1_100)).await.unwrap(), 0);
    // A failure after the window starts a new count (the old lock stays
    // until it ends).
    assert_eq!(
        store
            .record_login_failure("acct", ms(62_000), 60_000, &lock)
            .await
            .unwrap(),
        1
    );
    // Cleared by a success.
    store.clear_login_failures("acct").await.unwrap();
    assert_eq!(store.login_lock("acct", ms(62_000)).await.unwrap(), 0);
    assert_eq!(
        store
            .record_login_failure("acct", ms(62_001), 60_000, &lock)
            .await
            .unwrap(),
        1
    );
    // Stale counters are forgotten, locked or recent ones kept.
    for n in 0..3 {
        store
            .record_login_failure("locked", ms(62_000 + n), 60_000, &lock)
            .await
            .unwrap();
    }
    store
        .record_login_failure("stale", ms(0), 60_000, &lock)
        .await
        .unwrap();
    assert_eq!(
        store
            .remove_stale_login_failures(ms(62_000), ms(62_002))
            .await
            .unwrap(),
        1,
        "only the stale one"
    );
    assert_eq!(store.login_lock("locked", ms(62_002)).await.unwrap(), 1_000);
    assert_eq!(
        store
            .remove_stale_login_failures(ms(70_000), ms(70_000))
            .await
            .unwrap(),
        2
    );
}

async fn audit_entries_page_per_tenant_newest_first(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    let entry = |n: u64, tenant: Option<u64>| AuditEntry {
        id: Id::from_u64(10_000 + n),
        tenant_id: tenant.map(tenant_id),
        at: ms(n),
        actor: "system-admin".into(),
        action: format!("a{n}"),
        target: String::new(),
        source: "127.0.0.1".into(),
        detail: "{}".into(),
    };
    for n in 0..5 {
        store.append_audit(&entry(n, Some(1))).await.unwrap();
    }
    store.append_audit(&entry(5, Some(2))).await.unwrap();
    store.append_audit(&entry(6, None)).await.unwrap();
    assert_eq!(store.count_audit(Some(tenant_id(1))).await.unwrap(), 5);
    assert_eq!(store.count_audit(None).await.unwrap(), 1);
    let page = store.audit_page(Some(tenant_id(1)), 2, 1).await.unwrap();
    let actions: Vec<&str> = page.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["a3", "a2"]);
    assert_eq!(
        store.audit_page(None, 10, 0).await.unwrap(),
        vec![entry(6, None)]
    );
    assert_eq!(
        store.audit_page(Some(tenant_id(2)), 10, 0).await.unwrap(),
        vec![entry(5, Some(2))]
    );
}

fn registration(tenant: u64, extension: &str) -> Registration {
    Registration {
        tenant_id: tenant_id(tenant),
        extension: extension.into(),
        binding_key: format!("sip:{extension}@192.0.2.1"),
        contact_uri: format!("sip:{extension}@192.0.2.1"),
        instance_id: None,
        reg_id: None,
        q: None,
        received: "192.0.2.1:5060".into(),
        transport: "UDP".into(),
        path: Vec::new(),
        call_id: "c".into(),
        cseq: 1,
        user_agent: String::new(),
        expires_at: ms(3_600_000),
        updated_at: ms(0),
    }
}

async fn user_changes_and_deletes_carry_registrations_and_tokens(db: &TestDb) {
    let (store, u) = seeded(db).await;
    let mut v = user(1, "1020");
    v.username = Some("bob".into());
    store.create_user(&v).await.unwrap();
    store
        .upsert_registration(&registration(1, "101"))
        .await
        .unwrap();
    store
        .insert_tokens(&[token("a", false, "f", owner(&u), 9_000)])
        .await
        .unwrap();

    // Found by extension or username, only in its tenant.
    assert_eq!(
        store
            .user_by_login(tenant_id(1), "bob")
            .await
            .unwrap()
            .unwrap()
            .id,
        v.id
    );
    assert_eq!(
        store
            .user_by_login(tenant_id(1), "1020")
            .await
            .unwrap()
            .unwrap()
            .id,
        v.id
    );
    assert_eq!(
        store.user_by_login(tenant_id(2), "bob").await.unwrap(),
        None
    );
    assert_eq!(store.user(tenant_id(2), u.id).await.unwrap(), None);

    // Unique extension and username.
    let mut clash = u.clone();
    clash.extension = "1020".into();
    assert!(matches!(
        store.update_user(&clash).await,
        Err(StoreError::Conflict(_))
    ));
    let mut clash = u.clone();
    clash.username = Some("bob".into());
    assert!(matches!(
        store.update_user(&clash).await,
        Err(StoreError::Conflict(_))
    ));
    let mut foreign = u.clone();
    foreign.tenant_id = tenant_id(2);
    assert!(
        !store.update_user(&foreign).await.unwrap(),
        "matched by tenant too"
    );

    // A new number drops the old number's registrations.
    let mut renumbered = u.clone();
    renumbered.extension = "111".into();
    renumbered.forwarding = r#"[{"condition":"busy","destination":"102","enabled":true}]"#.into();
    renumbered.updated_at = ms(5);
    assert!(store.update_user(&renumbered).await.unwrap());
    assert!(
        store
            .live_registrations(tenant_id(1), "101", ms(0))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.user(tenant_id(1), u.id).await.unwrap(),
        Some(renumbered.clone())
    );
    assert!(
        store.access_grant("a", ms(0)).await.unwrap().is_some(),
        "an enabled user keeps its tokens"
    );

    // Deleted with its registrations and tokens; not from another tenant.
    store
        .upsert_registration(&registration(1, "111"))
        .await
        .unwrap();
    assert!(!store.delete_user(tenant_id(2), u.id).await.unwrap());
    assert!(store.delete_user(tenant_id(1), u.id).await.unwrap());
    assert!(!store.delete_user(tenant_id(1), u.id).await.unwrap());
    assert!(
        store
            .live_registrations(tenant_id(1), "111", ms(0))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.access_grant("a", ms(0)).await.unwrap(), None);
    assert_eq!(store.count_users(tenant_id(1)).await.unwrap(), 1);
}

async fn deleting_a_tenant_removes_everything_it_owns(db: &TestDb) {
    let (store, u) = seeded(db).await;
    store
        .upsert_registration(&registration(1, "101"))
        .await
        .unwrap();
    store
        .insert_tokens(&[token("a", false, "f", owner(&u), 9_000)])
        .await
        .unwrap();
    let key = ApiKey {
        id: Id::from_u64(7_000),
        tenant_id: tenant_id(1),
        name: "k".into(),
        role: "Admin".into(),
        prefix: "tally_".into(),
        created_at: ms(0),
        last_used_at: None,
    };
    store.create_api_key(&key, "h").await.unwrap();
    // A committed call of the tenant, and one of the other tenant.
    let writer = store.spawn_writer(store::WriterConfig::default());
    let mut ids = Ids::node(1);
    for tenant in [1, 2] {
        writer
            .commit(short_call(&mut ids, tenant, tenant * 1_000, "101"))
            .await
            .expect("commit");
    }

    assert_eq!(store.tenant_page(10, 0).await.unwrap().len(), 2);
    assert!(store.delete_tenant(tenant_id(1)).await.unwrap());
    assert!(!store.delete_tenant(tenant_id(1)).await.unwrap());
    assert_eq!(store.tenant(tenant_id(1)).await.unwrap(), None);
    assert_eq!(store.count_users(tenant_id(1)).await.unwrap(), 0);
    assert_eq!(store.count_cdrs(tenant_id(1)).await.unwrap(), 0);
    assert_eq!(
        store.count_cdrs(tenant_id(2)).await.unwrap(),
        1,
        "the other tenant keeps its CDR"
    );
    assert_eq!(store.api_key_by_hash("h").await.unwrap(), None);
    assert_eq!(store.access_grant("a", ms(0)).await.unwrap(), None);
    assert!(
        store
            .outbox_after(tenant_id(1), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .outbox_after(tenant_id(2), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Its domain can be used again.
    store.create_tenant(&tenant(1)).await.unwrap();
    assert_eq!(store.count_tenants().await.unwrap(), 2);
}

async fn every_directory_write_moves_the_directory_version(db: &TestDb) {
    let store = db.open().await;
    let mut last = store.directory_version().await.unwrap();
    let mut moved = |now: u64, what: &str| {
        assert!(now > last, "{what}: {now} after {last}");
        last = now;
    };
    store.create_tenant(&tenant(1)).await.unwrap();
    moved(store.directory_version().await.unwrap(), "create tenant");
    let u = user(1, "101");
    store.create_user(&u).await.unwrap();
    moved(store.directory_version().await.unwrap(), "create user");
    assert!(store.update_user(&u).await.unwrap());
    moved(store.directory_version().await.unwrap(), "update user");
    assert!(store.delete_user(tenant_id(1), u.id).await.unwrap());
    moved(store.directory_version().await.unwrap(), "delete user");
    assert!(store.update_tenant(&tenant(1)).await.unwrap());
    moved(store.directory_version().await.unwrap(), "update tenant");
    assert!(store.delete_tenant(tenant_id(1)).await.unwrap());
    moved(store.directory_version().await.unwrap(), "delete tenant");
    // A refused write moves nothing.
    store.create_tenant(&tenant(2)).await.unwrap();
    moved(store.directory_version().await.unwrap(), "create tenant");
    let before = store.directory_version().await.unwrap();
    assert!(store.create_tenant(&tenant(2)).await.is_err());
    assert_eq!(store.directory_version().await.unwrap(), before);
    // Readers see the users of every tenant at once.
    store.create_user(&user(2, "201")).await.unwrap();
    assert_eq!(store.all_users().await.unwrap().len(), 1);
}

/// Runs `sql` on its own connection (SQLite needs foreign keys on).
async fn raw(db: &TestDb, sql: &str) {
    use sqlx::Connection as _;
    if db.is_postgres() {
        let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    } else {
        use std::str::FromStr as _;
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(db.url())
            .unwrap()
            .foreign_keys(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    }
}

async fn a_tenant_kept_by_another_features_rows_is_not_deleted_at_all(db: &TestDb) {
    let (store, u) = seeded(db).await;
    // A feature table that refers to tenants without a cascade.
    raw(
        db,
        "CREATE TABLE keeper (tenant_id BIGINT NOT NULL REFERENCES tenants (id))",
    )
    .await;
    raw(
        db,
        &format!("INSERT INTO keeper (tenant_id) VALUES ({})", u.tenant_id),
    )
    .await;
    let before = store.directory_version().await.unwrap();
    assert!(matches!(
        store.delete_tenant(u.tenant_id).await,
        Err(StoreError::MissingReference(_))
    ));
    // All or nothing: the tenant and its users are still there.
    assert!(store.tenant(u.tenant_id).await.unwrap().is_some());
    assert_eq!(
        store.user(u.tenant_id, u.id).await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(store.directory_version().await.unwrap(), before);
}
