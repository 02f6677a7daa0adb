//! Identity through the real binary: tenant users sign in (extension or
//! username + domain), the failures all look alike, tokens expire, rotate
//! and are revoked, API keys, login throttling, the audit log, the role
//! matrix of every identity and provisioning route, tenant isolation, and
//! provisioning that reaches the call engine (a deleted or disabled user
//! can no longer register or be called).

mod common;

use common::pg::PgDatabase;

use common::{Http, Phone, Server, TempDir};
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

    // Oversized credentials are refused before any work.
    let r = sign_in(&http, &"1".repeat(300), "x", Some(DOMAIN));
    assert_eq!((r.status, r.error_field().as_str()), (400, "username"));
    let r = sign_in(&http, "101", &"x".repeat(2000), Some(DOMAIN));
    assert_eq!((r.status, r.error_field().as_str()), (400, "password"));

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

fn token_pair(r: &common::http::Response) -> (String, String) {
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    (
        v["access_token"].as_str().unwrap().to_owned(),
        v["refresh_token"].as_str().unwrap().to_owned(),
    )
}

fn refresh(http: &Http, token: &str) -> common::http::Response {
    http.form(
        "/api/login/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
}

fn with_token(server: &Server, token: &str) -> Http {
    let mut http = server.http();
    http.token = Some(token.to_owned());
    http
}

#[test]
fn refresh_tokens_rotate_a_reused_one_revokes_its_sign_in_and_revoke_works() {
    let dir = TempDir::new("id-tokens");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    acme(&admin, DOMAIN);
    let http = server.http();

    let first = sign_in(&http, "101", "web-pass-101", Some(DOMAIN));
    assert_eq!(header(&first, "cache-control"), "no-store");
    let (access_a, refresh_a) = token_pair(&first);
    let (access_b, refresh_b) = token_pair(&refresh(&http, &refresh_a));
    assert_ne!(access_a, access_b);
    assert_ne!(refresh_a, refresh_b);
    assert_eq!(
        with_token(&server, &access_b).get("/api/tenant").status,
        200
    );

    // The spent refresh token again: refused, and the whole sign-in with it.
    let r = refresh(&http, &refresh_a);
    assert_eq!((r.status, r.error_code().as_str()), (400, "UNAUTHORIZED"));
    for token in [&access_a, &access_b] {
        assert_eq!(with_token(&server, token).get("/api/tenant").status, 401);
    }
    assert_eq!(refresh(&http, &refresh_b).status, 400);
    // Another sign-in of the same user is not affected.
    let (access_c, refresh_c) = token_pair(&sign_in(&http, "101", "web-pass-101", Some(DOMAIN)));
    let (access_d, _) = token_pair(&refresh(&http, &refresh_c));
    let other = user_client(&server, "102", "web-pass-102", DOMAIN);

    // Revoking an access token ends its sign-in (RFC 7009: 200 always).
    let r = http.form("/api/login/oauth/revoke", &[("token", &access_d)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        with_token(&server, &access_c).get("/api/tenant").status,
        401
    );
    assert_eq!(
        with_token(&server, &access_d).get("/api/tenant").status,
        401
    );
    assert_eq!(
        other.get("/api/tenant").status,
        200,
        "other users keep theirs"
    );
    let r = http.form("/api/login/oauth/revoke", &[("token", "not-a-token")]);
    assert_eq!(r.status, 200);
    let r = http.form(
        "/api/login/oauth/revoke",
        &[("token_type_hint", "access_token")],
    );
    assert_eq!((r.status, r.error_field().as_str()), (400, "token"));

    // The system admin's tokens are in the store: they survive a restart
    // and a garbage or refresh token is no access token.
    let (sys_access, sys_refresh) =
        token_pair(&sign_in(&http, "admin", common::ADMIN_PASSWORD, None));
    assert_eq!(
        with_token(&server, &sys_refresh).get("/api/tenants").status,
        401
    );
    let data = server.data_dir.clone();
    let (status, _) = server.terminate();
    assert!(status.success());
    let server = Server::start(&data, &[]);
    assert_eq!(
        with_token(&server, &sys_access).get("/api/tenants").status,
        200
    );
    assert_eq!(refresh(&server.http(), &sys_refresh).status, 200);

    // At rest the store holds hashes, never a token.
    let rows = sqlite_column(
        &data.join("tally.db"),
        "SELECT token_hash AS v FROM auth_tokens",
    );
    assert!(rows.len() >= 8, "{rows:?}");
    for token in [&access_a, &refresh_a, &sys_access, &sys_refresh] {
        assert!(!rows.contains(token));
    }
    assert!(rows.iter().all(|h| h.len() == 64));
}

/// One text column of every row of `sql` on a SQLite file.
fn sqlite_column(path: &std::path::Path, sql: &str) -> Vec<String> {
    use sqlx::{Connection as _, Row as _};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
            .await
            .expect("open the SQLite file");
        let rows = sqlx::query(sql).fetch_all(&mut conn).await.expect(sql);
        rows.iter().map(|r| r.get::<String, _>("v")).collect()
    })
}

#[test]
fn api_keys_are_shown_once_role_scoped_and_revocable() {
    let dir = TempDir::new("id-keys");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let (tenant, _) = acme(&admin, DOMAIN);
    let tenant_admin = user_client(&server, "101", "web-pass-101", DOMAIN);

    let r = tenant_admin.post_json(
        "/api/api_keys",
        &json!({"name": "crm", "role": "QueueManager"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(header(&r, "cache-control"), "no-store");
    let created = r.json();
    let secret = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("tally_") && secret.len() == 70,
        "{secret}"
    );
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["last_used_at"], Value::Null);

    // Listed and read without the secret.
    let list = tenant_admin.get("/api/api_keys");
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["count"], 1);
    assert!(!list.body.contains(&secret));
    assert!(
        !tenant_admin
            .get(&format!("/api/api_keys/{id}"))
            .body
            .contains(&secret)
    );

    // The key is a bearer token with its role: QueueManager reads the
    // tenant, may not manage users.
    let key = with_token(&server, &secret);
    let r = key.get("/api/tenant");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], tenant.as_str());
    assert_eq!(key.get("/api/users").status, 403);
    let r = tenant_admin.get(&format!("/api/api_keys/{id}"));
    assert!(r.json()["last_used_at"].is_string(), "{}", r.body);
    // The same secret with one digit changed is nobody.
    let mut forged = secret.clone();
    let last = if forged.ends_with('0') { "1" } else { "0" };
    forged.replace_range(forged.len() - 1.., last);
    assert_eq!(with_token(&server, &forged).get("/api/tenant").status, 401);

    // Names are unique in the tenant; fields are checked.
    let r = tenant_admin.post_json("/api/api_keys", &json!({"name": "crm", "role": "Admin"}));
    assert_eq!((r.status, r.error_field().as_str()), (409, "name"));
    let r = tenant_admin.post_json("/api/api_keys", &json!({"name": "x", "role": "Root"}));
    assert_eq!((r.status, r.error_field().as_str()), (400, "role"));
    let r = tenant_admin.post_json("/api/api_keys", &json!({"name": "", "role": "Admin"}));
    assert_eq!((r.status, r.error_field().as_str()), (400, "name"));
    let r = tenant_admin.post_json(
        "/api/api_keys",
        &json!({"name": "x", "role": "Admin", "scope": "all"}),
    );
    assert_eq!((r.status, r.error_field().as_str()), (400, "scope"));

    // An Admin key manages users; the system admin reaches keys with X-Tenant-Id.
    let r = tenant_admin.post_json(
        "/api/api_keys",
        &json!({"name": "provisioning", "role": "Admin"}),
    );
    let admin_key = with_token(&server, r.json()["key"].as_str().unwrap());
    assert_eq!(admin_key.get("/api/users").status, 200);
    let mut sys = server.admin();
    sys.tenant = Some(tenant.clone());
    assert_eq!(sys.get("/api/api_keys").json()["count"], 2);

    // Revoked: at once.
    let r = tenant_admin.request("DELETE", &format!("/api/api_keys/{id}"), "", "");
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(key.get("/api/tenant").status, 401);
    assert_eq!(tenant_admin.get(&format!("/api/api_keys/{id}")).status, 404);
    assert_eq!(
        tenant_admin
            .request("DELETE", &format!("/api/api_keys/{id}"), "", "")
            .status,
        404
    );
}

#[test]
fn repeated_failures_lock_the_account_then_the_address_with_retry_after() {
    let dir = TempDir::new("id-throttle");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    acme(&admin, DOMAIN);
    let http = server.http();

    for _ in 0..5 {
        assert_eq!(
            sign_in(&http, "101", "wrong-password", Some(DOMAIN)).status,
            400
        );
    }
    // Locked: even the right password is refused, with Retry-After.
    let r = sign_in(&http, "101", "web-pass-101", Some(DOMAIN));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "TOO_MANY_ATTEMPTS"),
        "{}",
        r.body
    );
    let retry: u64 = header(&r, "retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    // Other accounts from this address are not locked.
    assert_eq!(
        sign_in(&http, "102", "web-pass-102", Some(DOMAIN)).status,
        200
    );

    // The lock ends; the next failure locks for twice as long.
    let r = sign_in_when_unlocked(&http, "101", "wrong-password");
    assert_eq!(r.status, 400, "{}", r.body);
    let r = sign_in(&http, "101", "web-pass-101", Some(DOMAIN));
    assert_eq!(r.status, 429);
    let longer: u64 = header(&r, "retry-after").parse().unwrap();
    assert!(longer >= 2 && longer > retry.min(1), "{longer}");
    // A success clears the account's count.
    assert_eq!(
        sign_in_when_unlocked(&http, "101", "web-pass-101").status,
        200
    );
    assert_eq!(
        sign_in(&http, "101", "wrong-password", Some(DOMAIN)).status,
        400
    );
    assert_eq!(
        sign_in(&http, "101", "web-pass-101", Some(DOMAIN)).status,
        200
    );

    // The system admin's account is throttled the same way.
    for _ in 0..5 {
        assert_eq!(sign_in(&http, "admin", "wrong", None).status, 400);
    }
    assert_eq!(
        sign_in(&http, "admin", common::ADMIN_PASSWORD, None).status,
        429
    );

    // Twenty failures from one address (these many accounts) lock the
    // address: every account is refused from it.
    for n in 0..20 {
        let user = format!("nobody{n}");
        let r = sign_in(&http, &user, "wrong-password", Some(DOMAIN));
        assert!(r.status == 400 || r.status == 429, "{}", r.body);
        if r.status == 429 {
            break;
        }
    }
    let r = sign_in(&http, "103", "web-pass-103", Some(DOMAIN));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "TOO_MANY_ATTEMPTS")
    );
}

fn header(r: &common::http::Response, name: &str) -> String {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// Signs in as soon as the account's lock-out is over (bounded: a lock
/// of a few seconds at most).
fn sign_in_when_unlocked(http: &Http, user: &str, password: &str) -> common::http::Response {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = sign_in(http, user, password, Some(DOMAIN));
        if r.status != 429 || std::time::Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

fn actions(log: &Value) -> Vec<String> {
    log["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_audit_log_records_sign_ins_and_changes_per_tenant() {
    let dir = TempDir::new("id-audit");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let (tenant, ids) = acme(&admin, DOMAIN);
    let (other_tenant, _) = {
        let t = admin.create_tenant("Globex", "globex.example.com");
        let r = admin.post_json(
            &format!("/api/tenants/{t}/users"),
            &json!({"extension": "201", "sip_password": "sip-secret-201", "password": "web-pass-201", "role": "Admin"}),
        );
        assert_eq!(r.status, 201);
        (t, ())
    };
    let http = server.http();
    assert_eq!(
        sign_in(&http, "101", "wrong-password", Some(DOMAIN)).status,
        400
    );
    let tenant_admin = user_client(&server, "101", "web-pass-101", DOMAIN);
    let r = send(
        &tenant_admin,
        "PATCH",
        &format!("/api/users/{}", ids[1]),
        &json!({"display_name": "Bob"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        send(
            &tenant_admin,
            "PUT",
            "/api/tenant",
            &json!({"time_zone": "Europe/Paris"})
        )
        .status,
        200
    );

    let log = tenant_admin.get("/api/audit_logs");
    assert_eq!(log.status, 200, "{}", log.body);
    let log = log.json();
    let seen = actions(&log);
    for action in [
        "user.create",
        "login_failed",
        "login",
        "user.update",
        "tenant.update",
    ] {
        assert!(seen.contains(&action.to_owned()), "{action} in {seen:?}");
    }
    assert_eq!(log["count"].as_u64().unwrap() as usize, seen.len());
    // Newest first; each entry says who, what, from where.
    assert_eq!(seen[0], "tenant.update");
    let update = &log["items"][1];
    assert_eq!(update["actor"], format!("user:{}", ids[0]));
    assert_eq!(update["target"], format!("user:{}", ids[1]));
    assert_eq!(update["tenant_id"], tenant.as_str());
    assert_eq!(update["source"], "127.0.0.1");
    assert_eq!(update["detail"]["fields"], json!(["display_name"]));
    let failed = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "login_failed")
        .unwrap();
    assert_eq!(failed["actor"], "101");
    assert!(
        !failed.to_string().contains("wrong-password"),
        "no password in the log"
    );

    // Paging.
    let page = tenant_admin.get("/api/audit_logs?top=2&skip=1").json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["id"], log["items"][1]["id"]);
    assert_eq!(
        tenant_admin.get("/api/audit_logs?top=0").error_field(),
        "top"
    );

    // Another tenant's admin sees only its own; other roles none.
    let globex = user_client(&server, "201", "web-pass-201", "globex.example.com");
    let theirs = globex.get("/api/audit_logs").json();
    assert!(
        theirs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant_id"] == other_tenant.as_str())
    );
    assert!(!theirs.to_string().contains(&tenant));
    let queue_manager = user_client(&server, "102", "web-pass-102", DOMAIN);
    assert_eq!(queue_manager.get("/api/audit_logs").status, 403);

    // The system admin: system entries without X-Tenant-Id, a tenant's with it.
    let system = admin.get("/api/audit_logs").json();
    let seen = actions(&system);
    assert!(
        seen.contains(&"tenant.create".to_owned()) && seen.contains(&"login".to_owned()),
        "{seen:?}"
    );
    assert!(
        system["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant_id"].is_null())
    );
    let mut scoped = server.admin();
    scoped.tenant = Some(tenant.clone());
    // The queue manager's sign-in since.
    assert_eq!(
        scoped.get("/api/audit_logs").json()["count"],
        log["count"].as_u64().unwrap() + 1
    );
    scoped.tenant = Some("123".into());
    assert_eq!(scoped.get("/api/audit_logs").status, 404);
}

/// What the role matrix needs: a tenant with one user of each role, a
/// target user, an API key with the QueueManager role.
struct Matrix {
    admin: Http,
    /// The system admin with `X-Tenant-Id`.
    scoped: Http,
    tenant: String,
    target_user: String,
    key_id: String,
    n: std::cell::Cell<u32>,
}

impl Matrix {
    fn next(&self) -> u32 {
        self.n.set(self.n.get() + 1);
        self.n.get()
    }

    /// A user made for the row to delete.
    fn fresh_user(&self) -> String {
        let ext = format!("5{:03}", self.next());
        let r = self.admin.post_json(
            &format!("/api/tenants/{}/users", self.tenant),
            &json!({"extension": ext, "sip_password": "sip-secret-x"}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_owned()
    }
}

type Request = (&'static str, String, Value);

#[test]
fn role_matrix_of_every_identity_and_provisioning_route() {
    let dir = TempDir::new("id-matrix");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let (tenant, _) = acme(&admin, DOMAIN);
    let r = admin.post_json(
        &format!("/api/tenants/{tenant}/users"),
        &json!({"extension": "104", "sip_password": "sip-secret-104"}),
    );
    let target_user = r.json()["id"].as_str().unwrap().to_owned();
    let mut scoped = server.admin();
    scoped.tenant = Some(tenant.clone());
    let r = scoped.post_json(
        "/api/api_keys",
        &json!({"name": "qm", "role": "QueueManager"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let qm_key = r.json()["key"].as_str().unwrap().to_owned();
    let key_id = r.json()["id"].as_str().unwrap().to_owned();
    let mut scoped_too = server.admin();
    scoped_too.tenant = Some(tenant.clone());
    let m = Matrix {
        admin,
        scoped: scoped_too,
        tenant: tenant.clone(),
        target_user,
        key_id,
        n: std::cell::Cell::new(0),
    };

    // Principals, in the order of each row's expectations.
    let principals: Vec<(&str, Http)> = vec![
        ("SystemAdmin", scoped),
        ("Admin", user_client(&server, "101", "web-pass-101", DOMAIN)),
        (
            "QueueManager",
            user_client(&server, "102", "web-pass-102", DOMAIN),
        ),
        (
            "StandardUser",
            user_client(&server, "carol", "web-pass-103", DOMAIN),
        ),
        ("QueueManager key", with_token(&server, &qm_key)),
        ("no token", server.http()),
    ];
    const SYS: [bool; 5] = [true, false, false, false, false];
    const ADMINS: [bool; 5] = [true, true, false, false, false];
    const EVERYONE: [bool; 5] = [true, true, true, true, true];

    #[allow(clippy::type_complexity)]
    let rows: Vec<(&str, [bool; 5], u16, Box<dyn Fn(&Matrix) -> Request>)> = vec![
        (
            "list tenants",
            SYS,
            200,
            Box::new(|_| ("GET", "/api/tenants".into(), Value::Null)),
        ),
        (
            "create tenant",
            SYS,
            201,
            Box::new(|m| {
                let n = m.next();
                (
                    "POST",
                    "/api/tenants".into(),
                    json!({"name": format!("T{n}"), "sip_domain": format!("t{n}.matrix.example")}),
                )
            }),
        ),
        (
            "read tenant",
            SYS,
            200,
            Box::new(|m| ("GET", format!("/api/tenants/{}", m.tenant), Value::Null)),
        ),
        (
            "replace tenant",
            SYS,
            200,
            Box::new(|m| {
                (
                    "PUT",
                    format!("/api/tenants/{}", m.tenant),
                    json!({"name": "Acme", "sip_domain": DOMAIN}),
                )
            }),
        ),
        (
            "change tenant",
            SYS,
            200,
            Box::new(|m| {
                (
                    "PATCH",
                    format!("/api/tenants/{}", m.tenant),
                    json!({"time_zone": "UTC"}),
                )
            }),
        ),
        (
            "delete tenant",
            SYS,
            204,
            Box::new(|m| {
                let n = m.next();
                let id = m
                    .admin
                    .create_tenant("Doomed", &format!("doomed{n}.example"));
                ("DELETE", format!("/api/tenants/{id}"), Value::Null)
            }),
        ),
        (
            "list users by path",
            ADMINS,
            200,
            Box::new(|m| {
                (
                    "GET",
                    format!("/api/tenants/{}/users", m.tenant),
                    Value::Null,
                )
            }),
        ),
        (
            "create user by path",
            ADMINS,
            201,
            Box::new(|m| {
                let ext = format!("6{:03}", m.next());
                (
                    "POST",
                    format!("/api/tenants/{}/users", m.tenant),
                    json!({"extension": ext, "sip_password": "sip-secret-x"}),
                )
            }),
        ),
        (
            "read user by path",
            ADMINS,
            200,
            Box::new(|m| {
                (
                    "GET",
                    format!("/api/tenants/{}/users/{}", m.tenant, m.target_user),
                    Value::Null,
                )
            }),
        ),
        (
            "replace user by path",
            ADMINS,
            200,
            Box::new(|m| {
                (
                    "PUT",
                    format!("/api/tenants/{}/users/{}", m.tenant, m.target_user),
                    json!({"extension": "104", "sip_password": "sip-secret-104"}),
                )
            }),
        ),
        (
            "change user by path",
            ADMINS,
            200,
            Box::new(|m| {
                (
                    "PATCH",
                    format!("/api/tenants/{}/users/{}", m.tenant, m.target_user),
                    json!({"recording": true}),
                )
            }),
        ),
        (
            "delete user by path",
            ADMINS,
            204,
            Box::new(|m| {
                (
                    "DELETE",
                    format!("/api/tenants/{}/users/{}", m.tenant, m.fresh_user()),
                    Value::Null,
                )
            }),
        ),
        (
            "list users",
            ADMINS,
            200,
            Box::new(|_| ("GET", "/api/users".into(), Value::Null)),
        ),
        (
            "create user",
            ADMINS,
            201,
            Box::new(|m| {
                let ext = format!("7{:03}", m.next());
                (
                    "POST",
                    "/api/users".into(),
                    json!({"extension": ext, "sip_password": "sip-secret-x"}),
                )
            }),
        ),
        (
            "read user",
            ADMINS,
            200,
            Box::new(|m| ("GET", format!("/api/users/{}", m.target_user), Value::Null)),
        ),
        (
            "replace user",
            ADMINS,
            200,
            Box::new(|m| {
                (
                    "PUT",
                    format!("/api/users/{}", m.target_user),
                    json!({"extension": "104", "sip_password": "sip-secret-104"}),
                )
            }),
        ),
        (
            "change user",
            ADMINS,
            200,
            Box::new(|m| {
                (
                    "PATCH",
                    format!("/api/users/{}", m.target_user),
                    json!({"display_name": "Dave"}),
                )
            }),
        ),
        (
            "delete user",
            ADMINS,
            204,
            Box::new(|m| {
                (
                    "DELETE",
                    format!("/api/users/{}", m.fresh_user()),
                    Value::Null,
                )
            }),
        ),
        (
            "read own tenant",
            EVERYONE,
            200,
            Box::new(|_| ("GET", "/api/tenant".into(), Value::Null)),
        ),
        (
            "change own tenant",
            ADMINS,
            200,
            Box::new(|_| ("PUT", "/api/tenant".into(), json!({"name": "Acme"}))),
        ),
        (
            "list API keys",
            ADMINS,
            200,
            Box::new(|_| ("GET", "/api/api_keys".into(), Value::Null)),
        ),
        (
            "create API key",
            ADMINS,
            201,
            Box::new(|m| {
                (
                    "POST",
                    "/api/api_keys".into(),
                    json!({"name": format!("k{}", m.next()), "role": "StandardUser"}),
                )
            }),
        ),
        (
            "read API key",
            ADMINS,
            200,
            Box::new(|m| ("GET", format!("/api/api_keys/{}", m.key_id), Value::Null)),
        ),
        (
            "revoke API key",
            ADMINS,
            204,
            Box::new(|m| {
                let r = m.scoped.post_json(
                    "/api/api_keys",
                    &json!({"name": format!("doomed{}", m.next()), "role": "Admin"}),
                );
                assert_eq!(r.status, 201, "{}", r.body);
                (
                    "DELETE",
                    format!("/api/api_keys/{}", r.json()["id"].as_str().unwrap()),
                    Value::Null,
                )
            }),
        ),
        (
            "read audit log",
            ADMINS,
            200,
            Box::new(|_| ("GET", "/api/audit_logs".into(), Value::Null)),
        ),
    ];

    // Own profile: every tenant user; principals without a user have none.
    #[allow(clippy::type_complexity)]
    let profile_rows: Vec<(&str, [u16; 5], Request)> = vec![
        (
            "read own profile",
            [404, 200, 200, 200, 404],
            ("GET", "/api/user".into(), Value::Null),
        ),
        (
            "change own profile",
            [404, 200, 200, 200, 404],
            (
                "PATCH",
                "/api/user".into(),
                json!({"email": "me@acme.example.com"}),
            ),
        ),
    ];

    let mut failures = Vec::new();
    for (name, codes, (method, path, body)) in &profile_rows {
        for (i, (who, http)) in principals.iter().enumerate() {
            let r = http.request(method, path, "application/json", &body.to_string());
            let expected = codes.get(i).copied().unwrap_or(401);
            if r.status != expected {
                failures.push(format!(
                    "{name} as {who}: {} (expected {expected}): {}",
                    r.status, r.body
                ));
            }
        }
    }
    for (name, allowed, ok, request) in &rows {
        for (i, (who, http)) in principals.iter().enumerate() {
            let (method, path, body) = request(&m);
            let body = if body.is_null() {
                String::new()
            } else {
                body.to_string()
            };
            let r = http.request(method, &path, "application/json", &body);
            let expected = match allowed.get(i) {
                Some(true) => *ok,
                Some(false) => 403,
                None => 401,
            };
            if r.status != expected {
                failures.push(format!(
                    "{name} as {who}: {} (expected {expected}): {}",
                    r.status, r.body
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_tenant_never_reaches_another_tenants_resources() {
    let dir = TempDir::new("id-isolation");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let (acme_id, acme_users) = acme(&admin, DOMAIN);
    let (globex_id, globex_users) = acme(&admin, "globex.example.com");
    let mut globex_scoped = server.admin();
    globex_scoped.tenant = Some(globex_id.clone());
    let globex_key = globex_scoped
        .post_json("/api/api_keys", &json!({"name": "g", "role": "Admin"}))
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let acme_admin = user_client(&server, "101", "web-pass-101", DOMAIN);
    let foreign_user = &globex_users[1];

    let not_found: Vec<(&str, String, Value)> = vec![
        ("GET", format!("/api/users/{foreign_user}"), Value::Null),
        (
            "PUT",
            format!("/api/users/{foreign_user}"),
            json!({"extension": "102", "sip_password": "sip-secret-102"}),
        ),
        (
            "PATCH",
            format!("/api/users/{foreign_user}"),
            json!({"enabled": false}),
        ),
        ("DELETE", format!("/api/users/{foreign_user}"), Value::Null),
        (
            "GET",
            format!("/api/tenants/{globex_id}/users"),
            Value::Null,
        ),
        (
            "POST",
            format!("/api/tenants/{globex_id}/users"),
            json!({"extension": "999", "sip_password": "sip-secret-x"}),
        ),
        (
            "GET",
            format!("/api/tenants/{globex_id}/users/{foreign_user}"),
            Value::Null,
        ),
        (
            "PATCH",
            format!("/api/tenants/{globex_id}/users/{foreign_user}"),
            json!({"enabled": false}),
        ),
        (
            "DELETE",
            format!("/api/tenants/{globex_id}/users/{foreign_user}"),
            Value::Null,
        ),
        // Its own tenant in the path, another tenant's user.
        (
            "GET",
            format!("/api/tenants/{acme_id}/users/{foreign_user}"),
            Value::Null,
        ),
        ("GET", format!("/api/api_keys/{globex_key}"), Value::Null),
        ("DELETE", format!("/api/api_keys/{globex_key}"), Value::Null),
    ];
    for (method, path, body) in &not_found {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let r = acme_admin.request(method, path, "application/json", &body);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (404, "NOT_FOUND"),
            "{method} {path}: {}",
            r.body
        );
        assert!(!r.body.contains("globex"), "{}", r.body);
    }
    // Nothing of Globex changed.
    let r = globex_scoped.get(&format!("/api/users/{foreign_user}"));
    assert_eq!(r.json()["enabled"], true);
    assert_eq!(globex_scoped.get("/api/api_keys").json()["count"], 1);
    assert_eq!(globex_scoped.get("/api/users").json()["count"], 3);

    // Lists hold only the own tenant's rows; X-Tenant-Id is ignored for
    // tenant users.
    let mut sneaky = user_client(&server, "101", "web-pass-101", DOMAIN);
    sneaky.tenant = Some(globex_id.clone());
    let users = sneaky.get("/api/users").json();
    assert_eq!(users["count"], 3);
    for u in users["items"].as_array().unwrap() {
        assert_eq!(u["tenant_id"], acme_id.as_str());
        assert!(acme_users.contains(&u["id"].as_str().unwrap().to_owned()));
    }
    assert_eq!(sneaky.get("/api/tenant").json()["id"], acme_id.as_str());
    assert_eq!(sneaky.get("/api/api_keys").json()["count"], 0);
    // Its own tenant by path works like /api/users.
    assert_eq!(
        acme_admin
            .get(&format!("/api/tenants/{acme_id}/users"))
            .json()["count"],
        3
    );

    // The system admin: X-Tenant-Id picks the tenant, and a user of another
    // tenant is not found through it either.
    let mut sys = server.admin();
    sys.tenant = Some(acme_id.clone());
    assert_eq!(sys.get(&format!("/api/users/{foreign_user}")).status, 404);
    assert_eq!(
        sys.get(&format!("/api/tenants/{acme_id}/users/{foreign_user}"))
            .status,
        404
    );
    sys.tenant = None;
    let r = sys.get("/api/users");
    assert_eq!((r.status, r.error_field().as_str()), (400, "X-Tenant-Id"));
    sys.tenant = Some("4242".into());
    assert_eq!(sys.get("/api/users").status, 404);
    sys.tenant = Some("acme".into());
    assert_eq!(sys.get("/api/tenant").error_field(), "X-Tenant-Id");
}

#[test]
fn tenants_are_listed_paged_validated_updated_and_deleted() {
    let dir = TempDir::new("id-tenants");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let a = admin.create_tenant("A", "a.example.com");
    let b = admin.create_tenant("B", "b.example.com");
    let r = admin.post_json(
        "/api/tenants",
        &json!({"name": "C", "sip_domain": "c.example.com", "time_zone": "Europe/Paris", "retention_days": 90}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let c = r.json();
    assert_eq!(
        (c["time_zone"].as_str(), c["retention_days"].as_u64()),
        (Some("Europe/Paris"), Some(90))
    );

    let all = admin.get("/api/tenants").json();
    assert_eq!(all["count"], 3);
    let page = admin.get("/api/tenants?top=2").json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let rest = admin.get("/api/tenants?top=2&skip=2").json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["count"], 3);
    assert_eq!(admin.get("/api/tenants?top=101").error_field(), "top");
    assert_eq!(admin.get("/api/tenants?skip=-1").error_field(), "skip");
    let one = admin.get(&format!("/api/tenants/{a}")).json();
    assert_eq!(
        (one["time_zone"].as_str(), one["retention_days"].is_null()),
        (Some("UTC"), true)
    );
    // Call pickup feature codes: the defaults, then the tenant's own.
    assert_eq!(
        (
            one["pickup_code"].as_str(),
            one["directed_pickup_prefix"].as_str()
        ),
        (Some("*8"), Some("**"))
    );
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/tenants/{a}"),
        &json!({"pickup_code": "*71", "directed_pickup_prefix": "*72"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let one = admin.get(&format!("/api/tenants/{a}")).json();
    assert_eq!(
        (
            one["pickup_code"].as_str(),
            one["directed_pickup_prefix"].as_str()
        ),
        (Some("*71"), Some("*72"))
    );
    // The recording flag: off by default, switched on alone by a PATCH,
    // kept by a PATCH of another field, reset by a PUT without it.
    assert_eq!(one["recording"], false);
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/tenants/{a}"),
        &json!({"recording": true}),
    );
    assert_eq!((r.status, &r.json()["recording"]), (200, &json!(true)));
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/tenants/{a}"),
        &json!({"time_zone": "UTC"}),
    );
    assert_eq!(r.json()["recording"], true, "{}", r.body);
    let mut full = admin.get(&format!("/api/tenants/{a}")).json();
    for key in ["id", "created_at", "recording"] {
        full.as_object_mut().unwrap().remove(key);
    }
    let r = send(&admin, "PUT", &format!("/api/tenants/{a}"), &full);
    assert_eq!(r.json()["recording"], false, "{}", r.body);

    // Validation names the field.
    for (body, field) in [
        (
            json!({"name": "X", "sip_domain": "x.example.com", "time_zone": "Mars/Olympus"}),
            "time_zone",
        ),
        (
            json!({"name": "X", "sip_domain": "x.example.com", "time_zone": 3}),
            "time_zone",
        ),
        (
            json!({"name": "X", "sip_domain": "x.example.com", "retention_days": 0}),
            "retention_days",
        ),
        (
            json!({"name": "X", "sip_domain": "x.example.com", "retention_days": -5}),
            "retention_days",
        ),
        (
            json!({"name": "X", "sip_domain": "bad domain"}),
            "sip_domain",
        ),
        (json!({"sip_domain": "x.example.com"}), "name"),
        (
            json!({"name": "X", "sip_domain": "x.example.com", "pickup_code": "8"}),
            "pickup_code",
        ),
        (
            json!({"name": "X", "sip_domain": "x.example.com", "pickup_code": "*8#"}),
            "pickup_code",
        ),
        (
            json!({"name": "X", "sip_domain": "x.example.com", "directed_pickup_prefix": "*"}),
            "directed_pickup_prefix",
        ),
        (
            json!({"name": "X", "sip_domain": "x.example.com", "recording": "yes"}),
            "recording",
        ),
        (
            json!({"name": "X", "sip_domain": "x.example.com", "cdr_evnt": {}}),
            "cdr_evnt",
        ),
    ] {
        let r = admin.post_json("/api/tenants", &body);
        assert_eq!(
            (r.status, r.error_field()),
            (400, field.to_owned()),
            "{body}: {}",
            r.body
        );
    }
    // The domain is unique, on create and on update.
    let r = admin.post_json(
        "/api/tenants",
        &json!({"name": "X", "sip_domain": "A.example.com"}),
    );
    assert_eq!((r.status, r.error_field().as_str()), (409, "sip_domain"));
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/tenants/{b}"),
        &json!({"sip_domain": "a.example.com"}),
    );
    assert_eq!((r.status, r.error_field().as_str()), (409, "sip_domain"));

    // PATCH changes what it names; PUT resets what it does not.
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/tenants/{b}"),
        &json!({"time_zone": "America/New_York", "retention_days": 30}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["name"], "B");
    assert_eq!(r.json()["retention_days"], 30);
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/tenants/{b}"),
        &json!({"retention_days": null}),
    );
    assert!(r.json()["retention_days"].is_null());
    assert_eq!(r.json()["time_zone"], "America/New_York");
    let r = send(
        &admin,
        "PUT",
        &format!("/api/tenants/{b}"),
        &json!({"name": "Bee", "sip_domain": "bee.example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (
            r.json()["time_zone"].as_str(),
            r.json()["sip_domain"].as_str()
        ),
        (Some("UTC"), Some("bee.example.com"))
    );
    let r = send(
        &admin,
        "PUT",
        &format!("/api/tenants/{b}"),
        &json!({"name": "Bee"}),
    );
    assert_eq!((r.status, r.error_field().as_str()), (400, "sip_domain"));
    assert_eq!(
        admin.get(&format!("/api/tenants/{b}")).json()["name"],
        "Bee"
    );

    // The tenant's own view agrees, and its admin changes its settings.
    let r = admin.post_json(
        &format!("/api/tenants/{a}/users"),
        &json!({"extension": "101", "sip_password": "sip-secret-101", "password": "web-pass-101", "role": "Admin"}),
    );
    assert_eq!(r.status, 201);
    let tenant_admin = user_client(&server, "101", "web-pass-101", "a.example.com");
    let r = send(
        &tenant_admin,
        "PUT",
        "/api/tenant",
        &json!({"time_zone": "Asia/Tokyo"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.json()["name"].as_str(), r.json()["time_zone"].as_str()),
        (Some("A"), Some("Asia/Tokyo"))
    );
    let r = send(
        &tenant_admin,
        "PUT",
        "/api/tenant",
        &json!({"time_zone": "Asia/Atlantis"}),
    );
    assert_eq!((r.status, r.error_field().as_str()), (400, "time_zone"));
    let r = send(
        &tenant_admin,
        "PUT",
        "/api/tenant",
        &json!({"sip_domain": "bee.example.com"}),
    );
    // Only the system admin changes a SIP domain (security review,
    // finding 3; tests/security.rs).
    assert_eq!((r.status, r.error_field().as_str()), (403, "sip_domain"));
    assert_eq!(
        admin.get(&format!("/api/tenants/{a}")).json()["time_zone"],
        "Asia/Tokyo"
    );

    // Deleted: gone with its users (who can no longer sign in) and tokens.
    let r = admin.request("DELETE", &format!("/api/tenants/{a}"), "", "");
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(admin.get(&format!("/api/tenants/{a}")).status, 404);
    assert_eq!(tenant_admin.get("/api/tenant").status, 401);
    assert_eq!(
        sign_in(&server.http(), "101", "web-pass-101", Some("a.example.com")).status,
        400
    );
    assert_eq!(
        admin
            .request("DELETE", &format!("/api/tenants/{a}"), "", "")
            .status,
        404
    );
    assert_eq!(admin.get("/api/tenants/not-an-id").status, 404);
    assert_eq!(admin.get("/api/tenants").json()["count"], 2);
    // Its domain is free again.
    admin.create_tenant("A again", "a.example.com");
}

#[test]
fn users_are_validated_field_by_field_and_changed_with_put_and_patch() {
    let dir = TempDir::new("id-users");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let (_, ids) = acme(&admin, DOMAIN);
    let tenant_admin = user_client(&server, "101", "web-pass-101", DOMAIN);

    let base = json!({"extension": "200", "sip_password": "sip-secret-200"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, field) in [
        (with("extension", json!("2a0")), "extension"),
        (with("extension", json!(200)), "extension"),
        (with("sip_password", json!("short")), "sip_password"),
        (with("password", json!("short")), "password"),
        (with("username", json!("1abc")), "username"),
        (with("username", json!("a b")), "username"),
        (with("email", json!("not-an-address")), "email"),
        (with("role", json!("SystemAdmin")), "role"),
        (with("ring_timeout", json!(1)), "ring_timeout"),
        (with("ring_timeout", json!("30")), "ring_timeout"),
        (with("forwarding", json!({"always": "102"})), "forwarding"),
        (
            with(
                "forwarding",
                json!([{"condition": "sometimes", "destination": "102"}]),
            ),
            "forwarding",
        ),
        (
            with(
                "forwarding",
                json!([{"condition": "busy", "destination": "1 02"}]),
            ),
            "forwarding",
        ),
        (
            with(
                "forwarding",
                json!([{"condition": "busy", "destination": "102"}, {"condition": "busy", "destination": "103"}]),
            ),
            "forwarding",
        ),
        (
            with("max_concurrent_calls", json!(0)),
            "max_concurrent_calls",
        ),
        (
            with("max_concurrent_calls", json!(1001)),
            "max_concurrent_calls",
        ),
        (
            with("max_concurrent_calls", json!("2")),
            "max_concurrent_calls",
        ),
        (with("pickup_group", json!("sales team")), "pickup_group"),
        (with("pickup_group", json!("x".repeat(33))), "pickup_group"),
        (with("pickup_group", json!(7)), "pickup_group"),
        (with("recording", json!("yes")), "recording"),
        (with("enabled", json!(1)), "enabled"),
        (with("ring_timout", json!(30)), "ring_timout"),
        (json!({"sip_password": "sip-secret-200"}), "extension"),
        (json!([1, 2]), "body"),
    ] {
        let r = tenant_admin.post_json("/api/users", &body);
        assert_eq!(
            (r.status, r.error_field()),
            (400, field.to_owned()),
            "{body}: {}",
            r.body
        );
        assert_eq!(r.error_code(), "VALIDATE_FAILED");
    }
    let r = tenant_admin.request("POST", "/api/users", "application/json", "{not json");
    assert_eq!((r.status, r.error_field().as_str()), (400, "body"));

    // Every field, stored and echoed (forwarding normalised).
    let r = tenant_admin.post_json(
        "/api/users",
        &json!({
            "extension": "200", "sip_password": "sip-secret-200", "password": "web-pass-200",
            "username": "dave.smith", "display_name": "Dave", "email": "dave@acme.example.com",
            "role": "QueueManager", "ring_timeout": 45, "recording": true, "enabled": true,
            "max_concurrent_calls": 2, "pickup_group": "sales-1",
            "forwarding": [{"condition": "busy", "destination": "+15550100"},
                           {"condition": "no_answer", "destination": "sip:desk@acme.example.com", "enabled": false}],
        }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let dave = r.json();
    let id = dave["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            dave["username"].as_str(),
            dave["role"].as_str(),
            dave["ring_timeout"].as_u64(),
            dave["recording"].as_bool()
        ),
        (
            Some("dave.smith"),
            Some("QueueManager"),
            Some(45),
            Some(true)
        )
    );
    assert_eq!(
        dave["forwarding"],
        json!([{"condition": "busy", "destination": "+15550100", "enabled": true},
               {"condition": "no_answer", "destination": "sip:desk@acme.example.com", "enabled": false}])
    );
    assert_eq!(dave["max_concurrent_calls"], 2);
    assert_eq!(dave["pickup_group"], "sales-1");
    assert_eq!(tenant_admin.get(&format!("/api/users/{id}")).json(), dave);
    let listed = tenant_admin.get("/api/users").json();
    let listed = listed["items"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|u| u["id"] == dave["id"] && u["pickup_group"] == "sales-1")
    );
    assert!(
        listed
            .iter()
            .any(|u| u["extension"] == "101" && u["pickup_group"] == "")
    );

    // Unique extension and username in the tenant (409 naming the field).
    let r = tenant_admin.post_json("/api/users", &with("extension", json!("101")));
    assert_eq!((r.status, r.error_field().as_str()), (409, "extension"));
    let r = tenant_admin.post_json("/api/users", &with("username", json!("carol")));
    assert_eq!((r.status, r.error_field().as_str()), (409, "username"));
    let r = send(
        &tenant_admin,
        "PATCH",
        &format!("/api/users/{id}"),
        // A new number needs the SIP password again (its hash includes it).
        &json!({"extension": "102", "sip_password": "sip-secret-new"}),
    );
    assert_eq!((r.status, r.error_field().as_str()), (409, "extension"));
    let r = send(
        &tenant_admin,
        "PATCH",
        &format!("/api/users/{id}"),
        &json!({"username": "carol"}),
    );
    assert_eq!((r.status, r.error_field().as_str()), (409, "username"));
    // The same extension in another tenant is fine.
    let other = admin.create_tenant("Globex", "globex.example.com");
    admin.create_user(&other, "200", "sip-secret-200");

    // Dave signs in by username; PATCH keeps the rest, PUT resets it but
    // keeps the web password; a new web password ends Dave's sign-ins.
    let dave_client = user_client(&server, "dave.smith", "web-pass-200", DOMAIN);
    let r = send(
        &tenant_admin,
        "PATCH",
        &format!("/api/users/{id}"),
        &json!({"display_name": "David"}),
    );
    assert_eq!(
        (
            r.json()["display_name"].as_str(),
            r.json()["ring_timeout"].as_u64()
        ),
        (Some("David"), Some(45))
    );
    let r = send(
        &tenant_admin,
        "PUT",
        &format!("/api/users/{id}"),
        &json!({"extension": "201", "sip_password": "sip-secret-201"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let put = r.json();
    assert!(
        put["max_concurrent_calls"].is_null(),
        "PUT resets the limit: {put}"
    );
    assert_eq!(
        (
            put["extension"].as_str(),
            put["ring_timeout"].as_u64(),
            put["role"].as_str(),
            put["username"].is_null(),
            put["has_password"].as_bool()
        ),
        (
            Some("201"),
            Some(30),
            Some("StandardUser"),
            true,
            Some(true)
        )
    );
    assert_eq!(put["forwarding"], json!([]));
    assert_eq!(
        dave_client.get("/api/tenant").status,
        200,
        "a PUT without password keeps the sign-in"
    );
    let r = send(
        &tenant_admin,
        "PATCH",
        &format!("/api/users/{id}"),
        &json!({"password": "new-web-pass"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(dave_client.get("/api/tenant").status, 401);
    assert_eq!(
        sign_in(&server.http(), "201", "web-pass-200", Some(DOMAIN)).status,
        400
    );
    user_client(&server, "201", "new-web-pass", DOMAIN);
    let r = send(
        &tenant_admin,
        "PATCH",
        &format!("/api/users/{id}"),
        &json!({"password": null}),
    );
    assert_eq!(r.json()["has_password"], false);
    assert_eq!(
        sign_in(&server.http(), "201", "new-web-pass", Some(DOMAIN)).status,
        400
    );

    // A role change takes effect on live tokens at once.
    let bob = user_client(&server, "102", "web-pass-102", DOMAIN);
    assert_eq!(bob.get("/api/users").status, 403);
    let r = send(
        &tenant_admin,
        "PATCH",
        &format!("/api/users/{}", ids[1]),
        &json!({"role": "Admin"}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(bob.get("/api/users").status, 200);

    // Paging by extension.
    let all = tenant_admin.get("/api/users").json();
    assert_eq!(all["count"], 4);
    let exts: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["extension"].as_str().unwrap())
        .collect();
    assert_eq!(exts, ["101", "102", "103", "201"]);
    let page = tenant_admin.get("/api/users?top=1&skip=3").json();
    assert_eq!(page["items"][0]["extension"], "201");

    // Deleted: 204, then 404; its sign-in is gone.
    assert_eq!(
        tenant_admin
            .request("DELETE", &format!("/api/users/{}", ids[2]), "", "")
            .status,
        204
    );
    assert_eq!(
        tenant_admin.get(&format!("/api/users/{}", ids[2])).status,
        404
    );
    assert_eq!(
        sign_in(&server.http(), "carol", "web-pass-103", Some(DOMAIN)).status,
        400
    );
    assert_eq!(tenant_admin.get("/api/users/12345").status, 404);
    assert_eq!(tenant_admin.get("/api/users/x").status, 404);
}

/// 101 calls `to`; returns the final status, and whether `callee` saw the
/// INVITE (it answers 486, so no call stays up).
fn call_reaches(
    server: &Server,
    caller_password: &str,
    to: &str,
    callee: Option<Phone>,
) -> (u16, Option<Phone>) {
    let answering = callee.map(|callee| {
        std::thread::spawn(move || {
            let seen = callee.try_recv(std::time::Duration::from_secs(3));
            match seen {
                Some(invite) if invite.method().is_some_and(|m| m.as_str() == "INVITE") => {
                    callee.reply(&invite, 486, "busy");
                    (true, callee)
                }
                _ => (false, callee),
            }
        })
    });
    let caller = Phone::new("101", caller_password, DOMAIN, server.sip);
    let status = caller.invite(to, |_| {}).status;
    match answering {
        Some(t) => {
            let (seen, callee) = t.join().expect("callee thread");
            assert_eq!(seen, status == 486, "status {status}");
            (status, Some(callee))
        }
        None => (status, None),
    }
}

#[test]
fn changes_reach_the_call_engine_deleted_or_disabled_users_cannot_register_or_be_called() {
    let dir = TempDir::new("id-engine");
    let server = Server::start(dir.path(), &[]);
    let mut admin = server.admin();
    let tenant = admin.create_tenant("Acme", DOMAIN);
    let alice = admin.create_user(&tenant, "101", "sip-secret-101");
    let alice = alice["id"].as_str().unwrap().to_owned();
    let bob = admin.create_user(&tenant, "102", "sip-secret-102");
    let bob = bob["id"].as_str().unwrap().to_owned();
    admin.tenant = Some(tenant.clone());

    let mut phone = Phone::new("102", "sip-secret-102", DOMAIN, server.sip);
    assert_eq!(phone.register(), 200);
    let (status, callee) = call_reaches(&server, "sip-secret-101", "102", Some(phone));
    assert_eq!(status, 486, "102 is reachable");
    let mut phone = callee.unwrap();

    // Disabled: refused at REGISTER, not rung.
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/users/{bob}"),
        &json!({"enabled": false}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(phone.register(), 403);
    let (status, callee) = call_reaches(&server, "sip-secret-101", "102", Some(phone));
    assert_ne!(status, 486);
    assert!((400..500).contains(&status), "{status}");
    let mut phone = callee.unwrap();

    // Enabled again, with a new SIP password: the old one no longer works.
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/users/{bob}"),
        &json!({"enabled": true, "sip_password": "sip-secret-new"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(phone.register(), 403, "old SIP password");
    phone.password = "sip-secret-new".into();
    assert_eq!(phone.register(), 200);
    let (status, callee) = call_reaches(&server, "sip-secret-101", "102", Some(phone));
    assert_eq!(status, 486);
    let phone = callee.unwrap();
    drop(phone);

    // A new number (with the SIP password: its hash includes the number):
    // the old one is gone, the new one registers.
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/users/{bob}"),
        &json!({"extension": "112", "sip_password": "sip-secret-new"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        Phone::new("102", "sip-secret-new", DOMAIN, server.sip).register(),
        404
    );
    let mut phone = Phone::new("112", "sip-secret-new", DOMAIN, server.sip);
    assert_eq!(phone.register(), 200);

    // Deleted: cannot register, cannot be called.
    assert_eq!(
        admin
            .request("DELETE", &format!("/api/users/{bob}"), "", "")
            .status,
        204
    );
    assert_eq!(phone.register(), 404);
    let (status, _) = call_reaches(&server, "sip-secret-101", "112", None);
    assert_eq!(status, 404);
    // Whoever gets the number next is not reached at the old device.
    admin.create_user(&tenant, "112", "sip-secret-other");
    let (status, _) = call_reaches(&server, "sip-secret-101", "112", Some(phone));
    assert_eq!(status, 480, "no device of the new 112 is registered");

    // A new domain: phones must use it; a deleted tenant is unknown.
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/tenants/{tenant}"),
        &json!({"sip_domain": "acme2.example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        Phone::new("101", "sip-secret-101", DOMAIN, server.sip).register(),
        404
    );
    // The domain is the digest realm and only hashes are stored: 101's SIP
    // password must be set again before it registers under the new one.
    let mut moved = Phone::new("101", "sip-secret-101", "acme2.example.com", server.sip);
    assert_eq!(moved.register(), 403);
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/users/{alice}"),
        &json!({"sip_password": "sip-secret-101"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(moved.register(), 200);
    assert_eq!(
        admin
            .request("DELETE", &format!("/api/tenants/{tenant}"), "", "")
            .status,
        204
    );
    assert_eq!(moved.register(), 404);

    // And after a restart the store agrees with what the engine had.
    let data = server.data_dir.clone();
    let (status, _) = server.terminate();
    assert!(status.success());
    let server = Server::start(&data, &[]);
    assert_eq!(
        Phone::new("101", "sip-secret-101", "acme2.example.com", server.sip).register(),
        404
    );
}

/// How many times `server` reloaded its directory (its debug log).
fn reloads(server: &Server) -> usize {
    server.stderr().matches("directory reloaded").count()
}

/// Registers once `server` has reloaded its directory after `since`
/// reloads, until `done` accepts the status: a reload in flight when the
/// change was made may not hold it, the next one does (at most three
/// tries, bounded waits, so the registrar's failure throttle never
/// trips). Returns the last status.
fn register_after_reload(
    server: &Server,
    since: usize,
    phone: &mut Phone,
    done: impl Fn(u16) -> bool,
) -> u16 {
    let mut seen = since;
    let mut status = 0;
    for _ in 0..3 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while reloads(server) <= seen && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        seen = reloads(server);
        status = phone.register();
        if done(status) {
            break;
        }
    }
    status
}

#[test]
fn on_postgres_two_nodes_share_tokens_keys_lock_outs_and_the_directory() {
    let Some(db) =
        PgDatabase::create("on_postgres_two_nodes_share_tokens_keys_lock_outs_and_the_directory")
    else {
        return;
    };
    let (dir_a, dir_b) = (TempDir::new("id-pg-a"), TempDir::new("id-pg-b"));
    let a = Server::start(dir_a.path(), &["--database", &db.url, "--node", "1"]);
    let b = Server::start(dir_b.path(), &["--database", &db.url, "--node", "2"]);
    let admin_a = a.admin();
    acme(&admin_a, DOMAIN);

    // Signed in on A, served by B; refreshed on B, the spent token reused
    // on A revokes the sign-in on both.
    let (access, refresh_token) =
        token_pair(&sign_in(&a.http(), "101", "web-pass-101", Some(DOMAIN)));
    assert_eq!(with_token(&b, &access).get("/api/users").status, 200);
    let (access_2, _) = token_pair(&refresh(&b.http(), &refresh_token));
    assert_eq!(refresh(&a.http(), &refresh_token).status, 400);
    assert_eq!(with_token(&a, &access_2).get("/api/tenant").status, 401);
    assert_eq!(with_token(&b, &access).get("/api/tenant").status, 401);

    // The system admin's sign-in on A works on B.
    assert_eq!(
        with_token(&b, admin_a.token.as_deref().unwrap())
            .get("/api/tenants")
            .status,
        200
    );

    // An API key made on B works on A, and its revocation on A holds on B.
    let tenant_admin = user_client(&b, "101", "web-pass-101", DOMAIN);
    let r = tenant_admin.post_json("/api/api_keys", &json!({"name": "crm", "role": "Admin"}));
    assert_eq!(r.status, 201, "{}", r.body);
    let key = r.json()["key"].as_str().unwrap().to_owned();
    let key_id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(with_token(&a, &key).get("/api/users").json()["count"], 3);
    let mut a_admin_user = user_client(&a, "101", "web-pass-101", DOMAIN);
    assert_eq!(
        a_admin_user
            .request("DELETE", &format!("/api/api_keys/{key_id}"), "", "")
            .status,
        204
    );
    assert_eq!(with_token(&b, &key).get("/api/users").status, 401);

    // Failures on A lock the account on B.
    for _ in 0..5 {
        assert_eq!(
            sign_in(&a.http(), "102", "wrong-password", Some(DOMAIN)).status,
            400
        );
    }
    assert_eq!(
        sign_in(&b.http(), "102", "web-pass-102", Some(DOMAIN)).status,
        429
    );

    // Provisioning through A reaches A's engine at once, and B's at its
    // next directory sync.
    a_admin_user.tenant = None;
    let since = reloads(&b);
    let r = a_admin_user.post_json(
        "/api/users",
        &json!({"extension": "150", "sip_password": "sip-secret-150"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        Phone::new("150", "sip-secret-150", DOMAIN, a.sip).register(),
        200
    );
    let mut on_b = Phone::new("150", "sip-secret-150", DOMAIN, b.sip);
    assert_eq!(
        register_after_reload(&b, since, &mut on_b, |s| s == 200),
        200,
        "B learns of the new user"
    );
    let since = reloads(&b);
    let r = send(
        &a_admin_user,
        "PATCH",
        &format!("/api/users/{id}"),
        &json!({"enabled": false}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        register_after_reload(&b, since, &mut on_b, |s| s == 403),
        403,
        "B learns it is disabled"
    );
    let since = reloads(&b);
    let r = send(
        &a_admin_user,
        "PATCH",
        &format!("/api/users/{id}"),
        &json!({"enabled": true}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        register_after_reload(&b, since, &mut on_b, |s| s == 200),
        200
    );
    // Deleted through A: B refuses it, and no longer rings B's binding when
    // the number is given to someone else.
    let since = reloads(&b);
    assert_eq!(
        a_admin_user
            .request("DELETE", &format!("/api/users/{id}"), "", "")
            .status,
        204
    );
    assert_eq!(
        register_after_reload(&b, since, &mut on_b, |s| s == 404),
        404,
        "B learns it is gone"
    );
    let since = reloads(&b);
    let r = a_admin_user.post_json(
        "/api/users",
        &json!({"extension": "150", "sip_password": "sip-secret-new"}),
    );
    assert_eq!(r.status, 201);
    let mut newcomer = Phone::new("150", "sip-secret-new", DOMAIN, b.sip);
    assert_eq!(
        register_after_reload(&b, since, &mut newcomer, |s| s == 200),
        200
    );
    let caller = Phone::new("101", "sip-secret-101", DOMAIN, b.sip);
    let ringing = std::thread::spawn(move || {
        let invite = newcomer.recv_request("INVITE");
        newcomer.reply(&invite, 486, "busy");
    });
    assert_eq!(
        caller.invite("150", |_| {}).status,
        486,
        "only the new device rings"
    );
    ringing.join().expect("newcomer");
    assert!(
        on_b.try_recv(std::time::Duration::from_millis(200))
            .is_none(),
        "the old device stays silent"
    );
    let (status, _) = b.terminate();
    assert!(status.success());
    let (status, _) = a.terminate();
    assert!(status.success());
}

#[test]
fn users_edit_their_own_profile_and_change_their_password_with_the_current_one() {
    let dir = TempDir::new("id-profile");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let (tenant, ids) = acme(&admin, DOMAIN);
    let carol = user_client(&server, "carol", "web-pass-103", DOMAIN);
    let other = user_client(&server, "carol", "web-pass-103", DOMAIN);

    let me = carol.get("/api/user");
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(
        (me.json()["id"].as_str(), me.json()["role"].as_str()),
        (Some(ids[2].as_str()), Some("StandardUser"))
    );
    let r = send(
        &carol,
        "PATCH",
        "/api/user",
        &json!({"display_name": "Carol C", "forwarding": [{"condition": "always", "destination": "102"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["display_name"], "Carol C");
    assert_eq!(r.json()["forwarding"][0]["destination"], "102");
    // Role, number and SIP password stay the admin's.
    for field in ["role", "extension", "sip_password", "enabled"] {
        let r = send(&carol, "PATCH", "/api/user", &json!({ field: "Admin" }));
        assert_eq!((r.status, r.error_field()), (400, field.to_owned()));
    }
    // A new password needs the right current one.
    let r = send(
        &carol,
        "PATCH",
        "/api/user",
        &json!({"password": "carol-new-pass"}),
    );
    assert_eq!(
        (r.status, r.error_field().as_str()),
        (400, "current_password")
    );
    let r = send(
        &carol,
        "PATCH",
        "/api/user",
        &json!({"password": "carol-new-pass", "current_password": "guess"}),
    );
    assert_eq!(
        (r.status, r.error_field().as_str()),
        (400, "current_password")
    );
    let r = send(
        &carol,
        "PATCH",
        "/api/user",
        &json!({"password": "carol-new-pass", "current_password": "web-pass-103"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Every sign-in ends, this one too; the new password signs in.
    assert_eq!(carol.get("/api/user").status, 401);
    assert_eq!(other.get("/api/user").status, 401);
    assert_eq!(
        sign_in(&server.http(), "carol", "web-pass-103", Some(DOMAIN)).status,
        400
    );
    let carol = user_client(&server, "carol", "carol-new-pass", DOMAIN);
    assert_eq!(carol.get("/api/user").json()["display_name"], "Carol C");
    // The admin sees the change, and the system admin has no profile.
    assert_eq!(admin.get("/api/user").status, 404);
    let r = admin.get(&format!("/api/tenants/{tenant}/users/{}", ids[2]));
    assert_eq!(r.json()["display_name"], "Carol C");
}
