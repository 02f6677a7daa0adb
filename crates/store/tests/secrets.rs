//! Secrets at rest on both databases: webhook passwords, tokens and
//! signing secrets and trunk passwords are sealed under the node's key
//! (the raw rows do not hold them), read back through the store, refuse
//! to open under another key or none, and plaintext rows from before the
//! key are read, then sealed by the start-up pass.

mod common;

use cdr::Id;
use common::*;
use store::{SecretKey, StoreError, Trunk, WebhookEndpoint};

on_both!(
    sealed_rows_hide_the_secrets_and_read_back,
    a_wrong_key_or_none_is_a_clear_error,
    plaintext_rows_are_read_then_sealed_at_start_up,
);

const SECRETS: [&str; 5] = [
    "basic-pass-7f3a",
    "bearer-tok-91c2",
    "whsec_signing-5d7e",
    "whsec_previous-0b44",
    "carrier-pass-e83d",
];

fn key(n: u8) -> SecretKey {
    SecretKey::from_bytes([n; 32])
}

fn endpoint(tenant: u64) -> WebhookEndpoint {
    WebhookEndpoint {
        tenant_id: tenant_id(tenant),
        enabled: true,
        url: "https://hooks.example/cdr".into(),
        auth: "BASIC".into(),
        username: "tally".into(),
        password: SECRETS[0].into(),
        token: SECRETS[1].into(),
        secret: Some(SECRETS[2].into()),
        previous_secret: Some(SECRETS[3].into()),
        previous_secret_until: Some(at(60_000)),
        event_types: None,
        disabled_reason: None,
        disabled_at: None,
        failing_since: None,
        updated_at: at(0),
    }
}

fn trunk(tenant: u64) -> Trunk {
    Trunk {
        id: Id::from_u64(710_000),
        tenant_id: tenant_id(tenant),
        name: "carrier".into(),
        kind: "register".into(),
        host: "sip.carrier.example".into(),
        port: 5060,
        transport: "udp".into(),
        username: "acct".into(),
        auth_username: String::new(),
        password: SECRETS[4].into(),
        realm: String::new(),
        from_domain: String::new(),
        caller_id: String::new(),
        country_code: "33".into(),
        max_calls: None,
        outbound_proxy: None,
        source_addresses: vec![],
        source_port: None,
        register_expires: 3600,
        enabled: true,
        created_at: at(0),
        updated_at: at(0),
    }
}

/// The secret columns of both tables as the database holds them.
async fn raw_rows(db: &TestDb) -> String {
    use sqlx::Connection as _;
    const SQL: &str = "SELECT (SELECT password || '|' || token || '|' || secret || '|' || \
                       previous_secret FROM webhook_endpoints) || '|' || \
                       (SELECT password FROM trunks)";
    if db.is_postgres() {
        let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
        sqlx::query_scalar::<_, String>(SQL)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    } else {
        let mut conn = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
        sqlx::query_scalar::<_, String>(SQL)
            .fetch_one(&mut conn)
            .await
            .unwrap()
    }
}

async fn write_secrets(store: &store::Store) {
    create_tenants(store, [1]).await;
    store.put_webhook_endpoint(&endpoint(1)).await.unwrap();
    store.create_trunk(&trunk(1)).await.unwrap();
}

async fn assert_reads_back(store: &store::Store) {
    let e = store.webhook_endpoint(tenant_id(1)).await.unwrap().unwrap();
    assert_eq!(e, endpoint(1));
    let t = store
        .trunk(tenant_id(1), trunk(1).id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.password, SECRETS[4]);
    assert_eq!(store.all_trunks().await.unwrap()[0].password, SECRETS[4]);
    assert_eq!(store.webhook_endpoints().await.unwrap()[0], endpoint(1));
}

fn assert_sealed(raw: &str) {
    for secret in SECRETS {
        assert!(!raw.contains(secret), "{secret} in the raw row: {raw}");
    }
    let parts: Vec<&str> = raw.split('|').collect();
    assert_eq!(parts.len(), 5, "{raw}");
    assert!(parts.iter().all(|p| store::is_sealed(p)), "{raw}");
}

async fn sealed_rows_hide_the_secrets_and_read_back(db: &TestDb) {
    let store = db.open().await.with_secret_key(Some(&key(1)));
    assert!(store.seals_secrets());
    write_secrets(&store).await;
    assert_sealed(&raw_rows(db).await);
    assert_reads_back(&store).await;
    // Rewriting keeps them sealed (with fresh nonces).
    let before = raw_rows(db).await;
    store.put_webhook_endpoint(&endpoint(1)).await.unwrap();
    store.update_trunk(&trunk(1)).await.unwrap();
    let after = raw_rows(db).await;
    assert_sealed(&after);
    assert_ne!(before, after);
    assert_reads_back(&store).await;
    // The fan-out needs no secret: it works whatever the key.
    let report = store.seal_secrets().await.unwrap();
    assert_eq!((report.sealed_before, report.sealed_now), (5, 0));
}

async fn a_wrong_key_or_none_is_a_clear_error(db: &TestDb) {
    let store = db.open().await.with_secret_key(Some(&key(1)));
    write_secrets(&store).await;
    for other in [
        db.open().await.with_secret_key(Some(&key(2))),
        db.open().await,
    ] {
        let err = other.seal_secrets().await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Secret(_)), "{text}");
        assert!(text.contains("webhook_endpoints.password"), "{text}");
        let err = other.webhook_endpoint(tenant_id(1)).await.unwrap_err();
        assert!(matches!(err, StoreError::Secret(_)), "{err}");
        let err = other.all_trunks().await.unwrap_err();
        assert!(err.to_string().contains("trunks.password"), "{err}");
        other.close().await;
    }
    // Nothing was rewritten by the failed checks.
    assert_sealed(&raw_rows(db).await);
    assert_reads_back(&store).await;
}

async fn plaintext_rows_are_read_then_sealed_at_start_up(db: &TestDb) {
    // Written by a node without a key: plaintext, and said so.
    let plain = db.open().await;
    write_secrets(&plain).await;
    let raw = raw_rows(db).await;
    assert!(SECRETS.iter().all(|s| raw.contains(s)), "{raw}");
    let report = plain.seal_secrets().await.unwrap();
    assert_eq!((report.plaintext, report.sealed_now), (5, 0));
    plain.close().await;

    // A key arrives: the legacy rows read as they are …
    let store = db.open().await.with_secret_key(Some(&key(3)));
    assert_reads_back(&store).await;
    // … and the start-up pass seals them, once.
    let report = store.seal_secrets().await.unwrap();
    assert_eq!(
        (report.sealed_now, report.sealed_before, report.plaintext),
        (5, 0, 0)
    );
    assert_sealed(&raw_rows(db).await);
    assert_reads_back(&store).await;
    let again = store.seal_secrets().await.unwrap();
    assert_eq!((again.sealed_now, again.sealed_before), (0, 5));
}
