//! Hashed SIP credentials against the real binary (issue 17): the store
//! keeps digest HA1s, never the SIP password; rows from before migration
//! 0007 are hashed at start-up; a domain change (the digest realm) or a new
//! extension needs the password again, and the API says so.

mod common;

use std::path::Path;

use serde_json::json;

use common::{Http, Phone, Server, TempDir};

const DOMAIN: &str = "acme.example";

/// Runs `sql` on the server's SQLite file; returns column `v` of each row.
fn sqlite(data_dir: &Path, sql: &str) -> Vec<String> {
    use sqlx::{Connection as _, Row as _};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let path = data_dir.join("tally.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
            .await
            .expect("open the SQLite file");
        let rows = sqlx::query(sql).fetch_all(&mut conn).await.expect(sql);
        rows.iter()
            .map(|r| r.try_get::<String, _>("v").unwrap_or_default())
            .collect()
    })
}

fn patch(http: &Http, path: &str, body: serde_json::Value) -> common::http::Response {
    http.request("PATCH", path, "application/json", &body.to_string())
}

#[test]
fn the_store_holds_digest_hashes_never_the_sip_password() {
    let dir = TempDir::new("sipcred-hashes");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Acme", DOMAIN);
    let user = admin.create_user(&tenant, "101", "sip-secret-101");
    assert_eq!(user["sip_password_set"], true, "{user}");
    let mut phone = Phone::new("101", "sip-secret-101", DOMAIN, server.sip);
    assert_eq!(phone.register(), 200);
    let rows = sqlite(
        dir.path(),
        "SELECT sip_password || '|' || sip_realm || '|' || sip_ha1_md5 || '|' || \
         sip_ha1_sha256 AS v FROM users",
    );
    assert_eq!(rows.len(), 1);
    let parts: Vec<&str> = rows[0].split('|').collect();
    assert_eq!(parts[0], "", "no plaintext");
    assert_eq!(parts[1], DOMAIN);
    assert_eq!((parts[2].len(), parts[3].len()), (32, 64));
    assert!(!rows[0].contains("sip-secret-101"));
    let mut wrong = Phone::new("101", "sip-secret-999", DOMAIN, server.sip);
    assert_eq!(wrong.register(), 403);
}

/// A database written before migration 0007 holds plaintext passwords; the
/// next start replaces them with their HA1s, and the phones keep working.
#[test]
fn plaintext_sip_passwords_are_hashed_at_start_up() {
    let dir = TempDir::new("sipcred-migrate");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Acme", DOMAIN);
    admin.create_user(&tenant, "101", "sip-secret-101");
    let (status, _) = server.terminate();
    assert!(status.success());
    // The row as 0007 leaves an older one: the password, no hashes.
    sqlite(
        dir.path(),
        "UPDATE users SET sip_password = 'old-secret-101', sip_realm = '', \
         sip_ha1_md5 = '', sip_ha1_sha256 = '' RETURNING '' AS v",
    );

    let server = Server::start(dir.path(), &[]);
    server.wait_stderr(|l| l.contains("SIP passwords replaced by their digest hashes"));
    let mut phone = Phone::new("101", "old-secret-101", DOMAIN, server.sip);
    assert_eq!(phone.register(), 200);
    let rows = sqlite(
        dir.path(),
        "SELECT sip_password || '|' || sip_realm AS v FROM users",
    );
    assert_eq!(rows, [format!("|{DOMAIN}")]);
}

/// The digest realm is the tenant's domain and the HA1s include it: after
/// a domain change the users need their SIP passwords again, the API says
/// which, and the phones are told why (not blocked by the throttle).
#[test]
fn a_domain_change_needs_the_sip_passwords_again() {
    let dir = TempDir::new("sipcred-rename");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Acme", DOMAIN);
    let user = admin.create_user(&tenant, "101", "sip-secret-101");
    let user_id = user["id"].as_str().expect("id").to_owned();
    let user_path = format!("/api/tenants/{tenant}/users/{user_id}");

    let r = patch(
        &admin,
        &format!("/api/tenants/{tenant}"),
        json!({"sip_domain": "new.example"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = admin.get(&user_path);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sip_password_set"], false, "{}", r.body);
    server.wait_stderr(|l| {
        l.contains("no SIP password for this domain") && l.contains("extensions=101")
    });
    // Several tries with the right old password: refused with the reason,
    // never blocked (the throttle counts guesses, not this).
    for _ in 0..6 {
        let mut phone = Phone::new("101", "sip-secret-101", "new.example", server.sip);
        let response = phone.register_response(300);
        assert_eq!(response.status(), Some(403));
        assert_eq!(
            response.reason_phrase(),
            Some("Forbidden (no SIP password for this domain; set it again)")
        );
    }

    let r = patch(
        &admin,
        &user_path,
        json!({"sip_password": "sip-secret-new"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sip_password_set"], true, "{}", r.body);
    let mut phone = Phone::new("101", "sip-secret-new", "new.example", server.sip);
    assert_eq!(phone.register(), 200);
}

/// The HA1s include the extension: renumbering without the password would
/// leave a user that can never authenticate, so the API refuses it.
#[test]
fn a_new_extension_needs_the_sip_password_too() {
    let dir = TempDir::new("sipcred-renumber");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Acme", DOMAIN);
    let user = admin.create_user(&tenant, "101", "sip-secret-101");
    let path = format!(
        "/api/tenants/{tenant}/users/{}",
        user["id"].as_str().expect("id")
    );
    let r = patch(&admin, &path, json!({"extension": "111"}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_code(), "VALIDATE_FAILED", "{}", r.body);
    assert_eq!(r.error_field(), "sip_password", "{}", r.body);
    let r = patch(
        &admin,
        &path,
        json!({"extension": "111", "sip_password": "sip-secret-111"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut phone = Phone::new("111", "sip-secret-111", DOMAIN, server.sip);
    assert_eq!(phone.register(), 200);
    // Other changes keep the hashes.
    let r = patch(&admin, &path, json!({"display_name": "Alice"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sip_password_set"], true, "{}", r.body);
    assert_eq!(phone.register(), 200);
}
