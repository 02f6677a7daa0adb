//! `/api/sessions` (call control, SPEC §7) against the real binary: roles,
//! tenant isolation, validation, and an originated call listed, read and
//! destroyed, its devices played by the test's own UDP phone (SIPp plays
//! a whole originated call in `call_flows.rs`). One server for the file.

mod common;

use common::{Http, Phone, Server, TempDir, wait_for_cdrs};
use serde_json::{Value, json};

const DOMAIN: &str = "acme.sessions.example";
const OTHER: &str = "other.sessions.example";

fn client(server: &Server, username: &str, password: &str, domain: &str) -> Http {
    let mut http = server.http();
    let r = http.form(
        "/api/login/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("domain", domain),
        ],
    );
    assert_eq!(r.status, 200, "sign-in of {username}: {}", r.body);
    http.token = Some(r.json()["access_token"].as_str().unwrap().to_owned());
    http
}

/// A tenant with `<prefix>1` Admin, `<prefix>2` QueueManager, `<prefix>3`
/// and `<prefix>4` StandardUser (SIP password `sip-secret-<ext>`, web password
/// `web-pass-<ext>`).
fn tenant(admin: &Http, name: &str, domain: &str, prefix: &str) -> String {
    let tenant = admin.create_tenant(name, domain);
    for (n, role) in [
        ("1", "Admin"),
        ("2", "QueueManager"),
        ("3", "StandardUser"),
        ("4", "StandardUser"),
    ] {
        let ext = format!("{prefix}{n}");
        let r = admin.post_json(
            &format!("/api/tenants/{tenant}/users"),
            &json!({
                "extension": ext,
                "sip_password": format!("sip-secret-{ext}"),
                "password": format!("web-pass-{ext}"),
                "role": role,
                "display_name": format!("User {ext}"),
            }),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    tenant
}

fn originate(http: &Http, body: Value) -> common::http::Response {
    http.post_json("/api/sessions", &body)
}

fn sessions(http: &Http) -> Value {
    let r = http.get("/api/sessions");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn sessions_are_role_checked_validated_tenant_scoped_listed_and_destroyed() {
    let dir = TempDir::new("sessions-api");
    let server = Server::start(dir.path(), &[]);
    let root = server.admin();
    let acme = tenant(&root, "Acme", DOMAIN, "10");
    tenant(&root, "Other", OTHER, "20");
    let admin = client(&server, "101", "web-pass-101", DOMAIN);
    let manager = client(&server, "102", "web-pass-102", DOMAIN);
    let user = client(&server, "103", "web-pass-103", DOMAIN);
    let other_admin = client(&server, "201", "web-pass-201", OTHER);
    let mut scoped = server.admin();
    scoped.tenant = Some(acme.clone());

    // 103's phone registers; nobody else does.
    let mut phone = Phone::new("103", "sip-secret-103", DOMAIN, server.sip);
    assert_eq!(phone.register(), 200);

    // Who may place calls, and as whom.
    assert_eq!(server.http().get("/api/sessions").status, 401);
    let r = originate(&manager, json!({"caller": "103", "callee": "101"}));
    assert_eq!(r.status, 403, "QueueManager: {}", r.body);
    let r = originate(&user, json!({"caller": "101", "callee": "103"}));
    assert_eq!(r.status, 403, "StandardUser as another: {}", r.body);
    assert_eq!(r.error_field(), "caller");
    let r = root.post_json("/api/sessions", &json!({"caller": "103", "callee": "101"}));
    assert_eq!(
        r.status, 400,
        "system admin without X-Tenant-Id: {}",
        r.body
    );
    assert_eq!(r.error_field(), "X-Tenant-Id");

    // Bad input answers clearly, names the field and places nothing.
    for (body, field) in [
        (json!({"callee": "101"}), "caller"),
        (json!({"caller": "103"}), "callee"),
        (json!({"caller": "999", "callee": "101"}), "caller"),
        (json!({"caller": "103", "callee": "999"}), "callee"),
        (json!({"caller": "103", "callee": "103"}), "callee"),
        (
            json!({"caller": "103", "callee": "101", "colour": "red"}),
            "colour",
        ),
        (json!({"caller": 103, "callee": "101"}), "caller"),
        (json!({"caller": "1 03", "callee": "101"}), "caller"),
        (
            json!({"caller": "103", "callee": "101", "user_data": "x".repeat(1025)}),
            "user_data",
        ),
        (
            json!({"caller": "103", "callee": "101", "caller_id": "a\nb"}),
            "caller_id",
        ),
        // Another tenant's numbers are unknown here.
        (json!({"caller": "201", "callee": "101"}), "caller"),
    ] {
        let r = originate(&admin, body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.error_code(), "VALIDATE_FAILED", "{body}");
        assert_eq!(r.error_field(), field, "{body}: {}", r.body);
    }
    // 101 has no registered device: nothing is placed, nothing recorded.
    let r = originate(&admin, json!({"caller": "101", "callee": "103"}));
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.error_code(), "CALLER_UNAVAILABLE");
    assert_eq!(r.error_field(), "caller");
    assert_eq!(sessions(&admin)["count"], 0);
    assert!(
        phone
            .try_recv(std::time::Duration::from_millis(200))
            .is_none()
    );

    // The StandardUser places a call as itself: its phone rings first.
    let r = originate(
        &user,
        json!({"caller": "103", "callee": "101", "user_data": "ticket-9"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let invite = phone.recv_request("INVITE");
    assert!(invite.body().is_empty(), "late offer to the caller");
    assert_eq!(invite.header_named("X-Session-Id"), Some(id.as_str()));
    phone.reply(&invite, 180, "ph103");

    // Listed for the tenant's readers, not for another tenant.
    let deadline = std::time::Instant::now() + common::WAIT;
    let list = loop {
        let list = sessions(&admin);
        if list["items"][0]["legs"][0]["state"] == "ringing" {
            break list;
        }
        assert!(std::time::Instant::now() < deadline, "{list}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(list["count"], 1, "{list}");
    let call = &list["items"][0];
    assert_eq!(call["id"], id.as_str());
    assert_eq!(call["caller"], "103");
    assert_eq!(call["callee"], "101");
    assert_eq!(call["state"], "ringing");
    assert_eq!(call["originated"], true);
    assert_eq!(call["user_data"], "ticket-9");
    assert_eq!(call["legs"].as_array().unwrap().len(), 1, "{call}");
    assert_eq!(call["legs"][0]["role"], "caller_device");
    assert_eq!(call["legs"][0]["number"], "103");
    assert!(call["legs"][0]["target_id"].is_string());
    for reader in [&manager, &user, &scoped] {
        assert_eq!(sessions(reader)["count"], 1);
        let r = reader.get(&format!("/api/sessions/{id}"));
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["id"], id.as_str());
    }
    assert_eq!(sessions(&other_admin)["count"], 0);
    assert_eq!(other_admin.get(&format!("/api/sessions/{id}")).status, 404);
    let r = other_admin.post_json(&format!("/api/sessions/{id}/destroy"), &json!({}));
    assert_eq!(r.status, 404, "another tenant's call: {}", r.body);
    assert_eq!(admin.get("/api/sessions/123").status, 404);
    assert_eq!(admin.get("/api/sessions/nope").status, 404);
    // 104 is a StandardUser who is not in the call.
    let outsider = client(&server, "104", "web-pass-104", DOMAIN);
    assert_eq!(sessions(&outsider)["count"], 0);
    assert_eq!(outsider.get(&format!("/api/sessions/{id}")).status, 404);
    let r = manager.post_json(&format!("/api/sessions/{id}/destroy"), &json!({}));
    assert_eq!(r.status, 403, "QueueManager destroy: {}", r.body);

    // Destroy: the ringing phone is CANCELled; the CDR follows.
    let r = admin.post_json(&format!("/api/sessions/{id}/destroy"), &json!({}));
    assert_eq!(r.status, 204, "{}", r.body);
    let cancel = phone.recv_request("CANCEL");
    phone.reply(&cancel, 200, "ph103");
    phone.reply(&invite, 487, "ph103");
    let r = admin.post_json(&format!("/api/sessions/{id}/destroy"), &json!({}));
    assert_eq!(r.status, 404, "destroyed twice: {}", r.body);
    assert_eq!(sessions(&admin)["count"], 0);
    let cdrs = wait_for_cdrs(&scoped, 1);
    let cdr = &cdrs["items"][0];
    assert_eq!(cdr["session_id"], id.as_str(), "{cdr}");
    assert_eq!(cdr["user_data"], "ticket-9", "{cdr}");
    assert_eq!(cdr["caller"], "103", "{cdr}");
    assert_eq!(cdr["callee"], "101", "{cdr}");
    assert_eq!(cdr["status_code"], 487, "{cdr}");
    let detail = scoped.get(&format!("/api/cdrs/{}", cdr["id"].as_str().unwrap()));
    let targets = detail.json()["items"][0]["call_targets"].clone();
    assert_eq!(targets.as_array().unwrap().len(), 1, "{targets}");
    assert_eq!(targets[0]["callee"], "103", "{targets}");
    assert_eq!(targets[0]["status_code"], 487, "{targets}");

    // Originating and destroying are audited.
    let audit = admin.get("/api/audit_logs").json();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"session.originate"), "{actions:?}");
    assert!(actions.contains(&"session.destroy"), "{actions:?}");
}
