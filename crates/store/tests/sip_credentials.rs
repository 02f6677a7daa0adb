//! SIP credentials in the store (issue 17, "Hashed SIP credentials"): the
//! HA1s round-trip, a domain change forgets the HA1s of the old realm, and
//! rows from before migration 0007 are found by their plaintext and
//! replaced once, on SQLite and PostgreSQL.

mod common;

use common::*;
use store::SipHashes;

on_both!(
    sip_hashes_are_stored_and_read_back_never_a_password,
    a_domain_change_forgets_the_hashes_of_the_old_realm,
    plaintext_rows_from_before_the_migration_are_replaced_once,
);

async fn sip_hashes_are_stored_and_read_back_never_a_password(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let mut u = user(1, "101");
    store.create_user(&u).await.unwrap();
    let back = store.user(u.tenant_id, u.id).await.unwrap().unwrap();
    assert_eq!(back.sip, sip_hashes("t1.example"));
    assert!(back.sip.is_set_for("T1.example"));
    assert!(!back.sip.is_set_for("t2.example"));
    assert!(!format!("{back:?}").contains(&"a".repeat(32)), "{back:?}");
    u.sip = SipHashes {
        realm: "t1.example".into(),
        md5: "c".repeat(32),
        sha256: "d".repeat(64),
    };
    assert!(store.update_user(&u).await.unwrap());
    assert_eq!(
        store.user(u.tenant_id, u.id).await.unwrap().unwrap().sip,
        u.sip
    );
    // Nothing in plaintext.
    assert!(store.plaintext_sip_passwords().await.unwrap().is_empty());
}

async fn a_domain_change_forgets_the_hashes_of_the_old_realm(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    for (t, ext) in [(1, "101"), (1, "1002"), (2, "201")] {
        store.create_user(&user(t, ext)).await.unwrap();
    }
    // Other settings change: the hashes stay.
    let mut t1 = tenant(1);
    t1.name = "Renamed".into();
    assert!(store.update_tenant(&t1).await.unwrap());
    let users = store.users_of_tenant(tenant_id(1)).await.unwrap();
    assert!(users.iter().all(|u| u.sip.is_set_for("t1.example")));
    // The domain (the realm) changes: they are forgotten, in that tenant.
    t1.sip_domain = "new.example".into();
    assert!(store.update_tenant(&t1).await.unwrap());
    for u in store.users_of_tenant(tenant_id(1)).await.unwrap() {
        assert_eq!(u.sip, SipHashes::default(), "{}", u.extension);
    }
    let other = store.users_of_tenant(tenant_id(2)).await.unwrap();
    assert_eq!(other[0].sip, sip_hashes("t2.example"));
}

async fn plaintext_rows_from_before_the_migration_are_replaced_once(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let u = user(1, "101");
    store.create_user(&u).await.unwrap();
    store.create_user(&user(1, "1002")).await.unwrap();
    // A row as migration 0007 leaves an older one: password, no hashes.
    raw(
        db,
        &format!(
            "UPDATE users SET sip_password = 'old-secret', sip_realm = '', sip_ha1_md5 = '', \
             sip_ha1_sha256 = '' WHERE id = {}",
            u.id.as_u64()
        ),
    )
    .await;
    let found = store.plaintext_sip_passwords().await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let p = &found[0];
    assert_eq!(
        (
            p.user_id,
            p.tenant_id,
            p.extension.as_str(),
            p.realm.as_str()
        ),
        (u.id, tenant_id(1), "101", "t1.example")
    );
    assert_eq!(p.password, "old-secret");
    assert!(!format!("{p:?}").contains("old-secret"));
    let version = store.directory_version().await.unwrap();
    let hashes = sip_hashes("t1.example");
    assert!(
        store
            .replace_plaintext_sip_password(p, &hashes)
            .await
            .unwrap()
    );
    assert!(store.directory_version().await.unwrap() > version);
    assert_eq!(
        store.user(u.tenant_id, u.id).await.unwrap().unwrap().sip,
        hashes
    );
    assert!(store.plaintext_sip_passwords().await.unwrap().is_empty());
    // A second node racing on the same row writes nothing.
    assert!(
        !store
            .replace_plaintext_sip_password(p, &hashes)
            .await
            .unwrap()
    );
}

/// Runs `sql` on its own connection.
async fn raw(db: &TestDb, sql: &str) {
    use sqlx::Connection as _;
    if db.is_postgres() {
        let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    } else {
        let mut conn = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    }
}
