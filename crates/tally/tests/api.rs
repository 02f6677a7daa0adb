//! The REST API of the real binary: login, provisioning (validation, 409),
//! CDR reads, tenant isolation, and a clean exit on SIGTERM.

mod common;

use common::{Server, TempDir};
use serde_json::json;

#[test]
fn login_tokens_and_errors_have_the_spec_shapes() {
    let dir = TempDir::new("login");
    let server = Server::start(dir.path(), &[]);
    let http = server.http();

    let r = http.form(
        "/api/login/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", common::ADMIN_PASSWORD),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 1800);
    assert!(v["access_token"].as_str().is_some_and(|t| t.len() >= 32));
    let refresh = v["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();

    // A refresh token gives a new pair, once.
    let r = http.form(
        "/api/login/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = http.form(
        "/api/login/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    );
    assert_eq!((r.status, r.error_code().as_str()), (400, "UNAUTHORIZED"));

    // Wrong password: PortSIP's answer.
    let r = http.form(
        "/api/login/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", "admin"),
            ("password", "nope"),
        ],
    );
    assert_eq!((r.status, r.error_code().as_str()), (400, "UNAUTHORIZED"));
    // A missing field is named.
    let r = http.form(
        "/api/login/oauth/token",
        &[("grant_type", "password"), ("username", "admin")],
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "VALIDATE_FAILED")
    );
    assert_eq!(r.error_field(), "password");

    // No token, a bad token: 401.
    let r = http.get("/api/cdrs");
    assert_eq!((r.status, r.error_code().as_str()), (401, "UNAUTHORIZED"));
    let mut bad = server.http();
    bad.token = Some("0".repeat(64));
    let r = bad.get("/api/cdrs");
    assert_eq!(r.status, 401);

    // Unknown routes and methods keep the error shape.
    let admin = server.admin();
    let r = admin.get("/api/nothing-here");
    assert_eq!((r.status, r.error_code().as_str()), (404, "NOT_FOUND"));
    let r = admin.request("DELETE", "/api/cdrs", "", "");
    assert_eq!(r.status, 405);
    r.error_code();

    let (status, took) = server.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(took.as_secs() < 5, "exit took {took:?}");
}

#[test]
fn provisioning_validates_each_field_and_refuses_duplicates() {
    let dir = TempDir::new("provision");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();

    let r = admin.post_json(
        "/api/tenants",
        &json!({ "name": "Acme", "sip_domain": "Acme.Example.com" }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let tenant = r.json();
    assert_eq!(tenant["sip_domain"], "acme.example.com");
    assert_eq!(tenant["name"], "Acme");
    let id = tenant["id"]
        .as_str()
        .expect("id is a decimal string")
        .to_owned();
    assert!(id.parse::<u64>().is_ok());

    let r = admin.get(&format!("/api/tenants/{id}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["sip_domain"], "acme.example.com");

    // Domains compare without case: a duplicate.
    let r = admin.post_json(
        "/api/tenants",
        &json!({ "name": "Other", "sip_domain": "ACME.example.com" }),
    );
    assert_eq!((r.status, r.error_code().as_str()), (409, "ALREADY_EXISTS"));
    assert_eq!(r.error_field(), "sip_domain");

    for (body, field) in [
        (json!({ "sip_domain": "b.example.com" }), "name"),
        (json!({ "name": "B" }), "sip_domain"),
        (
            json!({ "name": "B", "sip_domain": "not a domain" }),
            "sip_domain",
        ),
        (json!({ "name": 5, "sip_domain": "b.example.com" }), "name"),
        (
            json!({ "name": "B", "sip_domain": "b.example.com", "color": "red" }),
            "color",
        ),
    ] {
        let r = admin.post_json("/api/tenants", &body);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "VALIDATE_FAILED"),
            "{body}"
        );
        assert_eq!(r.error_field(), field, "{body}: {}", r.body);
    }
    let r = admin.request("POST", "/api/tenants", "application/json", "{not json");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "VALIDATE_FAILED")
    );

    let users = format!("/api/tenants/{id}/users");
    let r = admin.post_json(
        &users,
        &json!({ "extension": "101", "sip_password": "s3cret-101", "display_name": "Alice" }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let user = r.json();
    assert_eq!(user["extension"], "101");
    assert_eq!(user["display_name"], "Alice");
    assert_eq!(user["ring_timeout"], 30, "default ring timeout");
    assert_eq!(user["enabled"], true);
    assert_eq!(user["tenant_id"], id.as_str());
    assert!(
        user.get("sip_password").is_none(),
        "the password is not echoed"
    );

    let r = admin.post_json(
        &users,
        &json!({ "extension": "102", "sip_password": "s3cret-102", "ring_timeout": 45 }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["ring_timeout"], 45);

    let r = admin.post_json(
        &users,
        &json!({ "extension": "101", "sip_password": "another-one" }),
    );
    assert_eq!((r.status, r.error_code().as_str()), (409, "ALREADY_EXISTS"));
    assert_eq!(r.error_field(), "extension");

    for (body, field) in [
        (json!({ "sip_password": "s3cret-103" }), "extension"),
        (
            json!({ "extension": "10a", "sip_password": "s3cret-103" }),
            "extension",
        ),
        (json!({ "extension": "103" }), "sip_password"),
        (
            json!({ "extension": "103", "sip_password": "short" }),
            "sip_password",
        ),
        (
            json!({ "extension": "103", "sip_password": "s3cret-103", "ring_timeout": 0 }),
            "ring_timeout",
        ),
        (
            json!({ "extension": "103", "sip_password": "s3cret-103", "ring_timeout": "30" }),
            "ring_timeout",
        ),
        (
            json!({ "extension": "103", "sip_password": "s3cret-103", "ring_timout": 30 }),
            "ring_timout",
        ),
        (
            json!({ "extension": "103", "sip_password": "s3cret-103", "enabled": "yes" }),
            "enabled",
        ),
        (
            json!({ "extension": "103", "sip_password": "s3cret-103", "display_name": "A \"B\"" }),
            "display_name",
        ),
    ] {
        let r = admin.post_json(&users, &body);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "VALIDATE_FAILED"),
            "{body}"
        );
        assert_eq!(r.error_field(), field, "{body}: {}", r.body);
    }

    // An unknown tenant: 404.
    let r = admin.post_json(
        "/api/tenants/123/users",
        &json!({ "extension": "101", "sip_password": "s3cret-101" }),
    );
    assert_eq!((r.status, r.error_code().as_str()), (404, "NOT_FOUND"));
    let r = admin.get("/api/tenants/123");
    assert_eq!(r.status, 404);
}

#[test]
fn cdrs_are_tenant_scoped() {
    let dir = TempDir::new("cdrs");
    let server = Server::start(dir.path(), &[]);
    let mut admin = server.admin();
    let a = admin.create_tenant("A", "a.example.com");

    // The system admin must name the tenant.
    let r = admin.get("/api/cdrs");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "VALIDATE_FAILED")
    );
    assert_eq!(r.error_field(), "X-Tenant-Id");

    admin.tenant = Some(a.clone());
    let r = admin.get("/api/cdrs");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({ "count": 0, "items": [] }));
    let r = admin.get("/api/cdrs?top=10&skip=5");
    assert_eq!(r.status, 200);
    for (query, field) in [
        ("top=0", "top"),
        ("top=101", "top"),
        ("skip=-1", "skip"),
        ("top=x", "top"),
        ("filter=caller%20eq", "filter"),
    ] {
        let r = admin.get(&format!("/api/cdrs?{query}"));
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "VALIDATE_FAILED"),
            "{query}"
        );
        assert_eq!(r.error_field(), field);
    }
    let r = admin.get("/api/cdrs/1179280944981344257");
    assert_eq!((r.status, r.error_code().as_str()), (404, "NOT_FOUND"));
    let r = admin.get("/api/cdrs/not-an-id");
    assert_eq!(r.status, 404);

    // A tenant that does not exist: 404, like another tenant's resource.
    admin.tenant = Some("1179280944981344256".into());
    let r = admin.get("/api/cdrs");
    assert_eq!((r.status, r.error_code().as_str()), (404, "NOT_FOUND"));
    admin.tenant = Some("abc".into());
    let r = admin.get("/api/cdrs");
    assert_eq!((r.status, r.error_field().as_str()), (400, "X-Tenant-Id"));
}

#[test]
fn first_start_prints_a_generated_admin_password_once() {
    let dir = TempDir::new("first-start");
    // No --admin-password: the harness passes one, so start by hand.
    let data = dir.path().join("data");
    let sip = common::free_sip_port();
    let http = common::free_tcp_port();
    let log = dir.path().join("stderr.log");
    let run = |expect_password: bool| {
        let stderr = std::fs::File::create(&log).expect("stderr file");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
            .args([
                "serve",
                "--sip-bind",
                "127.0.0.1",
                "--http-bind",
                "127.0.0.1",
            ])
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--sip-port",
                &sip.to_string(),
                "--http-port",
                &http.to_string(),
            ])
            .env_remove("TALLY_ADMIN_PASSWORD")
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start");
        let logged = || std::fs::read_to_string(&log).unwrap_or_default();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], http));
        let deadline = std::time::Instant::now() + common::WAIT;
        // Ready when it answers HTTP and is still ours (alive): a port
        // another process holds would otherwise pass for it.
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(std::time::Instant::now() < deadline, "HTTP never came up");
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("tally exited early ({status}): {}", logged());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let status = child.wait().expect("wait");
        assert!(status.success(), "{status}: {}", logged());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut out)
            .expect("read");
        let line = out.lines().find(|l| l.contains("System admin created"));
        assert_eq!(line.is_some(), expect_password, "{out:?}");
        line.and_then(|l| l.split('"').nth(3)).map(str::to_owned)
    };
    let password = run(true).expect("a password");
    assert!(password.len() >= 16, "{password}");
    assert_eq!(run(false), None, "printed only once");
    // The generated password works.
    let server = Server::start(&data, &[]);
    let mut http = server.http();
    // The harness passes --admin-password, which resets it; the reset one works.
    http.login(common::ADMIN_PASSWORD);
}
