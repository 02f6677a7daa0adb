//! Trunks and routing rules over REST against the real binary (issue 10),
//! on SQLite and, when `TALLY_TEST_POSTGRES_URL` is set, PostgreSQL:
//! CRUD, field-by-field validation, the password never returned, rules
//! naming a missing trunk or extension refused with nothing written, a
//! trunk in use kept, tenant isolation and roles.

mod common;

use common::pg::PgDatabase;
use common::{Http, Server, TempDir};
use serde_json::{Value, json};

const DOMAIN: &str = "trunks.example.com";

fn send(http: &Http, method: &str, path: &str, body: &Value) -> common::http::Response {
    http.request(method, path, "application/json", &body.to_string())
}

fn register_trunk(name: &str) -> Value {
    json!({
        "name": name,
        "kind": "register",
        "host": "SIP.Carrier.Example",
        "username": "15550100",
        "password": "carrier-secret",
        "caller_id": "+15550100",
        "country_code": "1",
        "max_calls": 4,
    })
}

fn ip_trunk(name: &str) -> Value {
    json!({
        "name": name,
        "kind": "ip",
        "host": "198.51.100.10",
        "transport": "tcp",
        "source_addresses": ["198.51.100.0/24", "2001:db8::1"],
        "source_port": 5060,
    })
}

/// Creates a trunk, asserting 201; returns it.
fn create(http: &Http, path: &str, body: &Value) -> Value {
    let r = http.post_json(path, body);
    assert_eq!(r.status, 201, "POST {path}: {}", r.body);
    r.json()
}

/// The field a refused request names.
fn refused(http: &Http, method: &str, path: &str, body: &Value) -> String {
    let r = send(http, method, path, body);
    assert_eq!(r.status, 400, "{method} {path} {body}: {}", r.body);
    assert_eq!(r.error_code(), "VALIDATE_FAILED", "{}", r.body);
    r.error_field()
}

fn provisioning(server: &Server) {
    let mut admin = server.admin();
    let tenant = admin.create_tenant("Trunks", DOMAIN);
    let other = admin.create_tenant("Other", "other.trunks.example.com");
    admin.create_user(&tenant, "101", "sip-secret-101");
    admin.create_user(&tenant, "102", "sip-secret-102");
    admin.tenant = Some(tenant.clone());

    // Trunks: created with defaults, the password never shown.
    let a = create(&admin, "/api/trunks", &register_trunk("carrier-a"));
    assert_eq!(a["host"], "sip.carrier.example");
    assert_eq!(a["port"], 5060);
    assert_eq!(a["transport"], "udp");
    assert_eq!(a["register_expires"], 3600);
    assert_eq!(a["enabled"], true);
    assert_eq!(a["has_password"], true);
    assert!(!a.to_string().contains("carrier-secret"), "{a}");
    let b = create(&admin, "/api/trunks", &ip_trunk("carrier-b"));
    assert_eq!(
        b["source_addresses"],
        json!(["198.51.100.0/24", "2001:db8::1"])
    );
    assert_eq!(b["has_password"], false);
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let list = admin.get("/api/trunks").json();
    assert_eq!(list["count"], 2);
    assert_eq!(list["items"][0]["name"], "carrier-a");
    assert!(!list.to_string().contains("carrier-secret"));
    let r = admin.post_json("/api/trunks", &register_trunk("carrier-a"));
    assert_eq!(
        (r.status, r.error_field()),
        (409, "name".to_owned()),
        "{}",
        r.body
    );

    // Every mistake names its field.
    let bad = |patch: Value| {
        let mut body = register_trunk("bad");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        refused(&admin, "POST", "/api/trunks", &body)
    };
    assert_eq!(bad(json!({"kind": "peer"})), "kind");
    assert_eq!(bad(json!({"host": "not a host!"})), "host");
    assert_eq!(bad(json!({"port": 70000})), "port");
    assert_eq!(bad(json!({"transport": "sctp"})), "transport");
    assert_eq!(bad(json!({"max_calls": 0})), "max_calls");
    assert_eq!(bad(json!({"caller_id": "555-CALL"})), "caller_id");
    assert_eq!(bad(json!({"country_code": "+1"})), "country_code");
    assert_eq!(
        bad(json!({"outbound_proxy": "proxy.example:0"})),
        "outbound_proxy"
    );
    assert_eq!(bad(json!({"register_expires": 10})), "register_expires");
    assert_eq!(
        bad(json!({"source_addresses": ["10.0.0.1/8"]})),
        "source_addresses"
    );
    assert_eq!(
        bad(json!({"source_addresses": "10.0.0.1"})),
        "source_addresses"
    );
    assert_eq!(bad(json!({"password": ""})), "password");
    assert_eq!(bad(json!({"username": null})), "username");
    assert_eq!(bad(json!({"nmae": "typo"})), "nmae");
    assert_eq!(
        refused(
            &admin,
            "POST",
            "/api/trunks",
            &json!({"name": "x", "kind": "ip", "host": "h.example"})
        ),
        "source_addresses"
    );
    assert_eq!(
        admin.get("/api/trunks").json()["count"],
        2,
        "nothing written"
    );

    // PATCH changes what it names; PUT resets the rest but keeps the password.
    let path_a = format!("/api/trunks/{a_id}");
    let r = send(
        &admin,
        "PATCH",
        &path_a,
        &json!({"max_calls": null, "outbound_proxy": "[2001:db8::5]:5070"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["max_calls"], Value::Null);
    assert_eq!(r.json()["outbound_proxy"], "[2001:db8::5]:5070");
    assert_eq!(r.json()["caller_id"], "+15550100");
    let r = send(
        &admin,
        "PUT",
        &path_a,
        &json!({"name": "carrier-a", "kind": "register", "host": "sip.carrier.example", "username": "15550100"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["caller_id"], "");
    assert_eq!(r.json()["outbound_proxy"], Value::Null);
    assert_eq!(r.json()["has_password"], true, "PUT keeps the password");
    assert_eq!(
        refused(&admin, "PATCH", &path_a, &json!({"kind": "ip"})),
        "source_addresses"
    );
    let r = send(&admin, "PATCH", &path_a, &json!({"name": "carrier-b"}));
    assert_eq!(r.status, 409, "{}", r.body);

    // DID rules: the trunk and extension must be the tenant's.
    let did = create(
        &admin,
        "/api/inbound_rules",
        &json!({"trunk_id": a_id, "did": "+15550100", "destination": "101"}),
    );
    assert_eq!(did["match"], "exact");
    assert_eq!(did["destination_type"], "extension");
    let did_id = did["id"].as_str().unwrap();
    assert_eq!(
        refused(
            &admin,
            "POST",
            "/api/inbound_rules",
            &json!({"trunk_id": "12345", "did": "1", "destination": "101"})
        ),
        "trunk_id"
    );
    assert_eq!(
        refused(
            &admin,
            "POST",
            "/api/inbound_rules",
            &json!({"trunk_id": a_id, "did": "1", "destination": "999"})
        ),
        "destination"
    );
    assert_eq!(
        refused(
            &admin,
            "POST",
            "/api/inbound_rules",
            &json!({"trunk_id": a_id, "did": "12a", "destination": "101"})
        ),
        "did"
    );
    assert_eq!(
        refused(
            &admin,
            "POST",
            "/api/inbound_rules",
            &json!({"trunk_id": a_id, "did": "1", "match": "regex", "destination": "101"})
        ),
        "match"
    );
    let r = admin.post_json(
        "/api/inbound_rules",
        &json!({"trunk_id": a_id, "did": "+15550100", "destination": "102"}),
    );
    assert_eq!(
        (r.status, r.error_field()),
        (409, "did".to_owned()),
        "{}",
        r.body
    );
    create(
        &admin,
        "/api/inbound_rules",
        &json!({"trunk_id": b_id, "did": "1555", "match": "prefix", "destination": "102"}),
    );
    assert_eq!(admin.get("/api/inbound_rules").json()["count"], 2);
    let of_a = admin
        .get(&format!("/api/inbound_rules?trunk_id={a_id}"))
        .json();
    assert_eq!(of_a["count"], 1);
    assert_eq!(of_a["items"][0]["id"], did_id);
    let r = send(
        &admin,
        "PATCH",
        &format!("/api/inbound_rules/{did_id}"),
        &json!({"destination": "102"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["destination"], "102");

    // Outbound rules: patterns parsed, trunks checked, order kept.
    let out = create(
        &admin,
        "/api/outbound_rules",
        &json!({"name": "national", "pattern": "9NXXXXXX", "strip_digits": 1, "trunks": [a_id, b_id]}),
    );
    assert_eq!(out["priority"], 10);
    assert_eq!(out["trunks"], json!([a_id, b_id]));
    let intl = create(
        &admin,
        "/api/outbound_rules",
        &json!({"name": "international", "pattern": "_900.", "prepend": "+", "strip_digits": 3,
                "from_extensions": ["101"], "caller_id": "+15550199", "trunks": [b_id], "priority": 5}),
    );
    assert_eq!(intl["pattern"], "900.");
    let order: Vec<String> = admin.get("/api/outbound_rules").json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, ["international", "national"]);
    let rule = |patch: Value| {
        let mut body = json!({"name": "r", "pattern": "X.", "trunks": [a_id]});
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let r = admin.post_json("/api/outbound_rules", &rule(json!({"pattern": "9[12"})));
    assert_eq!(r.error_field(), "pattern");
    assert!(r.body.contains("position 1"), "{}", r.body);
    assert_eq!(
        refused(
            &admin,
            "POST",
            "/api/outbound_rules",
            &rule(json!({"pattern": "9.1"}))
        ),
        "pattern"
    );
    assert_eq!(
        refused(
            &admin,
            "POST",
            "/api/outbound_rules",
            &rule(json!({"trunks": []}))
        ),
        "trunks"
    );
    assert_eq!(
        refused(
            &admin,
            "POST",
            "/api/outbound_rules",
            &rule(json!({"trunks": [a_id, a_id]}))
        ),
        "trunks"
    );
    assert_eq!(
        refused(
            &admin,
            "POST",
            "/api/outbound_rules",
            &rule(json!({"trunks": ["424242"]}))
        ),
        "trunks"
    );
    assert_eq!(
        refused(
            &admin,
            "POST",
            "/api/outbound_rules",
            &rule(json!({"from_extensions": ["555"]}))
        ),
        "from_extensions"
    );
    assert_eq!(
        refused(
            &admin,
            "POST",
            "/api/outbound_rules",
            &rule(json!({"strip_digits": 40}))
        ),
        "strip_digits"
    );
    assert_eq!(
        refused(
            &admin,
            "POST",
            "/api/outbound_rules",
            &rule(json!({"prepend": "0x"}))
        ),
        "prepend"
    );
    assert_eq!(
        admin.get("/api/outbound_rules").json()["count"],
        2,
        "nothing written"
    );
    let r = admin.post_json("/api/outbound_rules", &rule(json!({"name": "national"})));
    assert_eq!((r.status, r.error_field()), (409, "name".to_owned()));

    // A trunk an outbound rule uses stays; once free, it goes with its DIDs.
    let r = send(
        &admin,
        "DELETE",
        &format!("/api/trunks/{b_id}"),
        &Value::Null,
    );
    assert_eq!(
        (r.status, r.error_code()),
        (409, "IN_USE".to_owned()),
        "{}",
        r.body
    );
    assert!(r.body.contains("international"), "{}", r.body);
    let r = send(
        &admin,
        "PUT",
        &format!("/api/outbound_rules/{}", out["id"].as_str().unwrap()),
        &json!({"name": "national", "pattern": "9NXXXXXX", "trunks": [a_id]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["strip_digits"],
        0,
        "PUT resets what it does not name"
    );
    assert_eq!(r.json()["priority"], 10, "PUT keeps the priority");
    let intl_path = format!("/api/outbound_rules/{}", intl["id"].as_str().unwrap());
    assert_eq!(send(&admin, "DELETE", &intl_path, &Value::Null).status, 204);
    assert_eq!(send(&admin, "GET", &intl_path, &Value::Null).status, 404);
    assert_eq!(
        send(
            &admin,
            "DELETE",
            &format!("/api/trunks/{b_id}"),
            &Value::Null
        )
        .status,
        204
    );
    assert_eq!(
        admin.get("/api/inbound_rules").json()["count"],
        1,
        "b's DID went with it"
    );

    // Who may dial out.
    let users = admin.get("/api/users").json();
    let u101 = users["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/users/{u101}/outbound");
    let r = admin.get(&path);
    assert_eq!(r.json()["outbound_allowed"], true, "{}", r.body);
    let r = send(
        &admin,
        "PUT",
        &path,
        &json!({"outbound_allowed": false, "outbound_caller_id": "+15550101"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(admin.get(&path).json()["outbound_allowed"], false);
    assert_eq!(
        refused(&admin, "PUT", &path, &json!({"outbound_caller_id": "abc"})),
        "outbound_caller_id"
    );
    assert_eq!(
        admin.get("/api/tenant/outbound").json()["max_outbound_calls"],
        Value::Null
    );
    let r = send(
        &admin,
        "PUT",
        "/api/tenant/outbound",
        &json!({"max_outbound_calls": 3}),
    );
    assert_eq!(r.json()["max_outbound_calls"], 3, "{}", r.body);
    assert_eq!(
        refused(
            &admin,
            "PUT",
            "/api/tenant/outbound",
            &json!({"max_outbound_calls": 0})
        ),
        "max_outbound_calls"
    );

    // Another tenant sees none of it; its ids are 404, not 403.
    let mut theirs = server.admin();
    theirs.tenant = Some(other.clone());
    assert_eq!(theirs.get("/api/trunks").json()["count"], 0);
    assert_eq!(theirs.get(&path_a).status, 404);
    assert_eq!(
        theirs.get(&format!("/api/inbound_rules/{did_id}")).status,
        404
    );
    assert_eq!(send(&theirs, "DELETE", &path_a, &Value::Null).status, 404);
    assert_eq!(theirs.get(&path).status, 404);
    assert_eq!(
        refused(
            &theirs,
            "POST",
            "/api/outbound_rules",
            &json!({"name": "x", "pattern": "X.", "trunks": [a_id]})
        ),
        "trunks",
        "another tenant's trunk is unknown"
    );
    let mut nobody = server.admin();
    nobody.tenant = None;
    assert_eq!(nobody.get("/api/trunks").error_field(), "X-Tenant-Id");

    // The audit log has every change.
    let log = admin.get("/api/audit_logs?top=100").json().to_string();
    for action in [
        "trunk.create",
        "trunk.update",
        "trunk.delete",
        "inbound_rule.create",
        "outbound_rule.create",
        "outbound_rule.delete",
        "user.outbound",
        "tenant.outbound",
    ] {
        assert!(log.contains(action), "{action} not audited");
    }
}

#[test]
fn trunks_and_rules_are_provisioned_validated_and_isolated() {
    let dir = TempDir::new("trunks-rest");
    let server = Server::start(dir.path(), &[]);
    provisioning(&server);
}

#[test]
fn on_postgres_trunks_and_rules_are_provisioned_validated_and_isolated() {
    let Some(db) =
        PgDatabase::create("on_postgres_trunks_and_rules_are_provisioned_validated_and_isolated")
    else {
        return;
    };
    let dir = TempDir::new("trunks-rest-pg");
    let server = Server::start(dir.path(), &["--database", &db.url]);
    provisioning(&server);
}

#[test]
fn only_admins_manage_trunks() {
    let dir = TempDir::new("trunks-roles");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Roles", DOMAIN);
    for (ext, role) in [
        ("201", "Admin"),
        ("202", "QueueManager"),
        ("203", "StandardUser"),
    ] {
        let r = admin.post_json(
            &format!("/api/tenants/{tenant}/users"),
            &json!({"extension": ext, "sip_password": format!("sip-secret-{ext}"),
                    "password": format!("web-password-{ext}"), "role": role}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let client = |ext: &str| {
        let mut http = server.http();
        let r = http.form(
            "/api/login/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", ext),
                ("password", &format!("web-password-{ext}")),
                ("domain", DOMAIN),
            ],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        http.token = Some(r.json()["access_token"].as_str().unwrap().to_owned());
        http
    };
    let tenant_admin = client("201");
    create(&tenant_admin, "/api/trunks", &register_trunk("mine"));
    for ext in ["202", "203"] {
        let http = client(ext);
        for path in [
            "/api/trunks",
            "/api/inbound_rules",
            "/api/outbound_rules",
            "/api/tenant/outbound",
        ] {
            assert_eq!(http.get(path).status, 403, "{ext} GET {path}");
        }
        assert_eq!(
            http.post_json("/api/trunks", &register_trunk("theirs"))
                .status,
            403
        );
    }
    assert_eq!(server.http().get("/api/trunks").status, 401);
}

/// A tally serving one tenant with a `register` trunk toward a SIPp
/// carrier on `carrier_port` (registering from its creation, no restart).
/// Returns the server, an admin client scoped to the tenant, and the
/// trunk's path.
fn registering_to(dir: &TempDir, carrier_port: u16) -> (Server, Http, String) {
    let server = Server::start(dir.path(), &[]);
    let mut admin = server.admin();
    admin.tenant = Some(admin.create_tenant("Carrier", DOMAIN));
    let trunk = create(
        &admin,
        "/api/trunks",
        &json!({"name": "sipp", "kind": "register", "host": "127.0.0.1", "port": carrier_port,
                "username": "15550100", "password": "carrier-secret", "register_expires": 60}),
    );
    let path = format!("/api/trunks/{}", trunk["id"].as_str().unwrap());
    (server, admin, path)
}

/// Polls the trunk's live registration state until `done` holds (bounded).
fn wait_for_registration(
    admin: &Http,
    path: &str,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let r = admin.get(path);
        assert_eq!(r.status, 200, "{}", r.body);
        let state = r.json()["status"]["registration"].clone();
        if done(&state) {
            return state;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "registration state stuck at {state}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_register_trunk_answers_the_carriers_challenge_and_registers() {
    if !common::sipp_available("a_register_trunk_answers_the_carriers_challenge_and_registers") {
        return;
    }
    let dir = TempDir::new("trunk-register");
    let carrier_port = common::free_sip_port();
    // The carrier waits first, so the REGISTER sent at start-up finds it.
    let target: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let carrier = common::Sipp::spawn(
        target,
        "carrier_register.xml",
        "u1",
        carrier_port,
        &["-timeout", "40"],
    );
    let (server, admin, path) = registering_to(&dir, carrier_port);
    let state = wait_for_registration(&admin, &path, 20, |s| {
        s["registration"] == "registered" || s["registration"] == "failed"
    });
    assert_eq!(state["registration"], "registered", "{state}");
    assert_eq!(state["failures"], 0);
    let left = state["seconds_left"].as_u64().unwrap();
    assert!((50..=60).contains(&left), "{state}");
    let (ok, log) = carrier.finish();
    assert!(ok, "{log}");
    assert!(log.contains("Authorization: Digest"), "{log}");
    // An ip trunk has no registration.
    let ip = create(&admin, "/api/trunks", &ip_trunk("by-address"));
    let r = admin.get(&format!("/api/trunks/{}", ip["id"].as_str().unwrap()));
    assert_eq!(r.json()["status"]["registration"], Value::Null);
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn a_failing_carrier_is_retried_with_growing_back_off() {
    if !common::sipp_available("a_failing_carrier_is_retried_with_growing_back_off") {
        return;
    }
    let dir = TempDir::new("trunk-register-503");
    let carrier_port = common::free_sip_port();
    let target: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let carrier = common::Sipp::spawn(
        target,
        "carrier_register_503.xml",
        "u1",
        carrier_port,
        &["-timeout", "80"],
    );
    let (server, admin, path) = registering_to(&dir, carrier_port);
    let first = wait_for_registration(&admin, &path, 20, |s| s["failures"] == 1);
    assert_eq!(first["registration"], "failed");
    assert!(
        first["last_error"].as_str().unwrap().contains("503"),
        "{first}"
    );
    let left = first["seconds_left"].as_u64().unwrap();
    assert!((25..=30).contains(&left), "first back-off 30 s: {first}");
    let second = wait_for_registration(&admin, &path, 45, |s| s["failures"] == 2);
    let left = second["seconds_left"].as_u64().unwrap();
    assert!((55..=60).contains(&left), "second back-off 60 s: {second}");
    let (ok, log) = carrier.finish();
    assert!(ok, "{log}");
    let (status, _) = server.terminate();
    assert!(status.success());
}

/// A carrier that answers every request 200 (the OPTIONS keep-alive), on
/// a thread that stops when `stop` is set or after `secs`.
fn answering_carrier(
    secs: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (u16, std::thread::JoinHandle<usize>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let answered = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let (mut buf, mut answered) = (vec![0u8; 65_535], 0);
        while std::time::Instant::now() < deadline
            && !stop.load(std::sync::atomic::Ordering::Relaxed)
        {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let copied: Vec<&str> = request
                .lines()
                .filter(|l| {
                    ["Via:", "From:", "To:", "Call-ID:", "CSeq:"]
                        .iter()
                        .any(|h| l.starts_with(h))
                })
                .collect();
            let response = format!(
                "SIP/2.0 200 OK\r\n{}\r\nContent-Length: 0\r\n\r\n",
                copied.join("\r\n")
            );
            socket.send_to(response.as_bytes(), from).unwrap();
            answered += 1;
        }
        answered
    });
    (port, answered)
}

#[test]
fn options_keep_alive_shows_an_answering_carrier_up_with_its_round_trip() {
    let dir = TempDir::new("trunk-options");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (carrier_port, carrier) = answering_carrier(60, std::sync::Arc::clone(&stop));
    let server = Server::start(dir.path(), &[]);
    let mut admin = server.admin();
    let tenant = admin.create_tenant("Options", DOMAIN);
    admin.tenant = Some(tenant.clone());
    let mut body = ip_trunk("answering");
    body["host"] = json!("127.0.0.1");
    body["port"] = json!(carrier_port);
    body["transport"] = json!("udp");
    // Running from its creation: no restart needed.
    let trunk = create(&admin, "/api/trunks", &body);
    let path = format!("/api/trunks/{}", trunk["id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        let status = admin.get(&path).json()["status"].clone();
        if status["options"]["state"] == "up" || std::time::Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(status["options"]["state"], "up", "{status}");
    assert!(
        status["options"]["rtt_ms"]
            .as_u64()
            .is_some_and(|ms| ms < 5_000),
        "{status}"
    );
    assert_eq!(
        status["registration"],
        Value::Null,
        "an ip trunk does not register"
    );
    // Disabled: its task stops and its live state goes.
    let r = send(&admin, "PATCH", &path, &json!({"enabled": false}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(admin.get(&path).json()["status"], Value::Null);
    let (exit, _) = server.terminate();
    assert!(exit.success());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(carrier.join().unwrap() >= 1);
}
