//! Identity through the real binary: tenant users sign in (extension or
//! username + domain), the failures all look alike, tokens expire, rotate
//! and are revoked, API keys, login throttling, the audit log, the role
//! matrix of every identity and provisioning route, tenant isolation, and
//! provisioning that reaches the call engine (a deleted or disabled user
//! can no longer register or be called).

mod common;

use common::{Http, Server, TempDir};
use serde_json::{Value, json};

const DOMAIN: &str = "acme.example.com";

fn sign_in(
    http: &Http,
    username: &str,
    password: &str,
    domain: Option<&str>,
) -> common::http::Response {
    let mut fields = vec![
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
    ];
    if let Some(d) = domain {
        fields.push(("domain", d));
    }
    http.form("/api/login/oauth/token", &fields)
}

/// A client signed in as `username` of `domain`.
fn user_client(server: &Server, username: &str, password: &str, domain: &str) -> Http {
    let mut http = server.http();
    let r = sign_in(&http, username, password, Some(domain));
    assert_eq!(r.status, 200, "sign-in of {username}: {}", r.body);
    http.token = Some(r.json()["access_token"].as_str().unwrap().to_owned());
    http
}

fn send(http: &Http, method: &str, path: &str, body: &Value) -> common::http::Response {
    http.request(method, path, "application/json", &body.to_string())
}

/// A tenant with users 101 (Admin), 102 (QueueManager), 103
/// (StandardUser, username `carol`), each with web password
/// `web-pass-<ext>`. Returns the tenant id and the users' ids.
fn acme(admin: &Http, domain: &str) -> (String, Vec<String>) {
    let tenant = admin.create_tenant("Acme", domain);
    let mut ids = Vec::new();
    for (ext, role, username) in [
        ("101", "Admin", None),
        ("102", "QueueManager", None),
        ("103", "StandardUser", Some("carol")),
    ] {
        let r = admin.post_json(
            &format!("/api/tenants/{tenant}/users"),
            &json!({
                "extension": ext,
                "sip_password": format!("sip-secret-{ext}"),
                "password": format!("web-pass-{ext}"),
                "role": role,
                "username": username,
                "email": format!("u{ext}@acme.example.com"),
            }),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let user = r.json();
        assert_eq!(user["role"], role);
        assert_eq!(user["has_password"], true);
        assert!(user.get("password").is_none() && user.get("sip_password").is_none());
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    (tenant, ids)
}

#[test]
fn tenant_users_sign_in_and_every_failure_looks_the_same() {
    let dir = TempDir::new("id-signin");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let (tenant, ids) = acme(&admin, DOMAIN);
    let http = server.http();

    // By extension number, by username; the domain in any case.
    let admin_user = user_client(&server, "101", "web-pass-101", DOMAIN);
    let r = admin_user.get("/api/tenant");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], tenant.as_str());
    let carol = user_client(&server, "carol", "web-pass-103", "ACME.example.com");
    assert_eq!(carol.get("/api/tenant").status, 200);

    // Wrong password, unknown user, unknown domain, SIP password instead of
    // the web password, a system admin's name in a tenant: one answer.
    let failures = [
        ("101", "wrong-password", Some(DOMAIN)),
        ("199", "web-pass-101", Some(DOMAIN)),
        ("101", "web-pass-101", Some("nowhere.example.com")),
        ("101", "sip-secret-101", Some(DOMAIN)),
        ("admin", common::ADMIN_PASSWORD, Some(DOMAIN)),
        ("101", "web-pass-101", None),
    ];
    let mut bodies = Vec::new();
    for (user, password, domain) in failures {
        let r = sign_in(&http, user, password, domain);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "UNAUTHORIZED"),
            "{user} {domain:?}: {}",
            r.body
        );
        bodies.push(r.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");

    // A disabled user cannot sign in, and its live token stops working.
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/tenants/{tenant}/users/{}", ids[2]),
        &json!({"enabled": false}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["enabled"], false);
    assert_eq!(carol.get("/api/tenant").status, 401);
    let r = sign_in(&http, "carol", "web-pass-103", Some(DOMAIN));
    assert_eq!((r.status, r.body.clone()), (400, bodies[0].clone()));

    // A user without a web password cannot sign in at all.
    let r = admin.post_json(
        &format!("/api/tenants/{tenant}/users"),
        &json!({"extension": "104", "sip_password": "sip-secret-104"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["has_password"], false);
    assert_eq!(r.json()["role"], "StandardUser");
    assert_eq!(
        sign_in(&http, "104", "sip-secret-104", Some(DOMAIN)).status,
        400
    );
}
