//! Ring groups over REST against the real binary (issue 9), on SQLite
//! and, when `TALLY_TEST_POSTGRES_URL` is set, PostgreSQL: CRUD with
//! defaults, field-by-field validation, one extension space shared with
//! users (a clash is a 409 either way), members and destinations of
//! another tenant refused, tenant isolation and roles. The calls a group
//! rings are in `call_flows.rs` (SIPp) and `pbx/tests/ring_groups.rs`.

mod common;

use common::pg::PgDatabase;
use common::{Http, Server, TempDir};
use serde_json::{Value, json};

const DOMAIN: &str = "groups.example.com";

fn send(http: &Http, method: &str, path: &str, body: &Value) -> common::http::Response {
    http.request(method, path, "application/json", &body.to_string())
}

fn create(http: &Http, body: &Value) -> Value {
    let r = http.post_json("/api/ring_groups", body);
    assert_eq!(r.status, 201, "POST /api/ring_groups {body}: {}", r.body);
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
    let tenant = admin.create_tenant("Groups", DOMAIN);
    let other = admin.create_tenant("Other", "other.groups.example.com");
    for ext in ["101", "102", "103"] {
        admin.create_user(&tenant, ext, &format!("sip-secret-{ext}"));
    }
    admin.create_user(&other, "201", "sip-secret-201");
    admin.tenant = Some(tenant.clone());

    // Created with the defaults.
    let sales = create(
        &admin,
        &json!({"number": "600", "name": "Sales", "members": ["102", "101"]}),
    );
    assert_eq!(sales["strategy"], "ring_all");
    assert_eq!(sales["members"], json!(["102", "101"]), "order kept");
    assert_eq!(sales["member_timeout"], 20);
    assert_eq!(sales["timeout"], 60);
    assert_eq!(sales["no_answer"], Value::Null);
    assert_eq!(sales["tenant_id"], tenant.as_str());
    let support = create(
        &admin,
        &json!({"number": "601", "name": "Support", "strategy": "hunt",
                "members": ["103"], "member_timeout": 5, "timeout": 30,
                "no_answer": "600"}),
    );
    assert_eq!(support["no_answer"], "600", "a group may be a destination");
    let sales_path = format!("/api/ring_groups/{}", sales["id"].as_str().unwrap());
    let support_path = format!("/api/ring_groups/{}", support["id"].as_str().unwrap());
    assert_eq!(admin.get(&sales_path).json(), sales);
    let list = admin.get("/api/ring_groups").json();
    assert_eq!(list["count"], 2);
    assert_eq!(list["items"][0]["number"], "600", "by number");
    assert_eq!(
        admin.get("/api/ring_groups?top=1&skip=1").json()["items"][0]["number"],
        "601"
    );

    // Every mistake names its field, and writes nothing.
    let bad = |patch: Value| {
        let mut body = json!({"number": "610", "name": "Bad", "members": ["101"]});
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        refused(&admin, "POST", "/api/ring_groups", &body)
    };
    assert_eq!(bad(json!({"members": []})), "members", "no members");
    assert_eq!(bad(json!({"members": null})), "members");
    assert_eq!(
        bad(json!({"members": ["109"]})),
        "members",
        "unknown member"
    );
    assert_eq!(
        bad(json!({"members": ["201"]})),
        "members",
        "another tenant's member"
    );
    assert_eq!(bad(json!({"members": ["101", "101"]})), "members");
    assert_eq!(bad(json!({"members": ["abc"]})), "members");
    assert_eq!(bad(json!({"members": "101"})), "members");
    assert_eq!(bad(json!({"number": "6a0"})), "number");
    assert_eq!(bad(json!({"number": null})), "number");
    assert_eq!(bad(json!({"name": ""})), "name");
    assert_eq!(bad(json!({"strategy": "random"})), "strategy");
    assert_eq!(bad(json!({"member_timeout": 1})), "member_timeout");
    assert_eq!(bad(json!({"timeout": 7200})), "timeout");
    assert_eq!(bad(json!({"no_answer": "699"})), "no_answer");
    assert_eq!(bad(json!({"no_answer": "610"})), "no_answer", "itself");
    assert_eq!(bad(json!({"no_answer": "201"})), "no_answer");
    assert_eq!(bad(json!({"colour": "red"})), "colour");
    assert_eq!(admin.get("/api/ring_groups").json()["count"], 2);

    // One extension space: a group number clashes with a user's extension
    // or another group's, and a user cannot take a group's number.
    for number in ["101", "601"] {
        let r = admin.post_json(
            "/api/ring_groups",
            &json!({"number": number, "name": "Clash", "members": ["101"]}),
        );
        assert_eq!(
            (r.status, r.error_code(), r.error_field()),
            (409, "ALREADY_EXISTS".to_owned(), "number".to_owned()),
            "{number}: {}",
            r.body
        );
    }
    let r = admin.post_json(
        &format!("/api/tenants/{tenant}/users"),
        &json!({"extension": "600", "sip_password": "sip-secret-600"}),
    );
    assert_eq!(r.status, 409, "a user on a group's number: {}", r.body);
    // The same number in another tenant is fine.
    let mut theirs = server.admin();
    theirs.tenant = Some(other.clone());
    let their_group = create(
        &theirs,
        &json!({"number": "600", "name": "Theirs", "members": ["201"]}),
    );

    // PATCH changes what it names; PUT replaces (defaults for the rest).
    let r = send(
        &admin,
        "PATCH",
        &sales_path,
        &json!({"strategy": "round_robin", "no_answer": "103"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let patched = r.json();
    assert_eq!(patched["strategy"], "round_robin");
    assert_eq!(patched["members"], json!(["102", "101"]));
    assert_eq!(patched["no_answer"], "103");
    assert_eq!(patched["created_at"], sales["created_at"]);
    assert_eq!(
        refused(&admin, "PATCH", &sales_path, &json!({"members": ["201"]})),
        "members"
    );
    assert_eq!(
        refused(&admin, "PATCH", &sales_path, &json!({"no_answer": "600"})),
        "no_answer"
    );
    let r = send(&admin, "PATCH", &sales_path, &json!({"number": "601"}));
    assert_eq!(r.status, 409, "{}", r.body);
    let r = send(
        &admin,
        "PUT",
        &support_path,
        &json!({"number": "602", "name": "Support", "members": ["103", "102"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let put = r.json();
    assert_eq!(
        (
            &put["number"],
            &put["strategy"],
            &put["timeout"],
            &put["no_answer"]
        ),
        (&json!("602"), &json!("ring_all"), &json!(60), &Value::Null)
    );
    assert_eq!(admin.get(&sales_path).json()["no_answer"], "103");

    // Tenant isolation: another tenant's group is not found, whatever
    // the verb, and its list is its own.
    let their_path = format!("/api/ring_groups/{}", their_group["id"].as_str().unwrap());
    assert_eq!(admin.get(&their_path).status, 404);
    assert_eq!(
        send(&admin, "PATCH", &their_path, &json!({"name": "x"})).status,
        404
    );
    assert_eq!(
        admin
            .request("DELETE", &their_path, "application/json", "")
            .status,
        404
    );
    assert_eq!(theirs.get("/api/ring_groups").json()["count"], 1);
    assert_eq!(theirs.get(&sales_path).status, 404);
    assert_eq!(admin.get("/api/ring_groups/not-an-id").status, 404);

    // A DID may ring a group (destination_type ring_group), checked like
    // an extension: a number no group has is refused, naming the field.
    let trunk = admin.post_json(
        "/api/trunks",
        &json!({"name": "carrier", "kind": "ip", "host": "192.0.2.1",
                "source_addresses": ["192.0.2.1"]}),
    );
    assert_eq!(trunk.status, 201, "{}", trunk.body);
    let trunk = trunk.json()["id"].as_str().unwrap().to_owned();
    let did = |number: &str, kind: &str| {
        admin.post_json(
            "/api/inbound_rules",
            &json!({"trunk_id": trunk, "did": "+4930555", "destination_type": kind,
                    "destination": number}),
        )
    };
    let r = did("698", "ring_group");
    assert_eq!(
        (r.status, r.error_field().as_str()),
        (400, "destination"),
        "{}",
        r.body
    );
    let r = did("602", "voicemail");
    assert_eq!(
        (r.status, r.error_field().as_str()),
        (400, "destination_type"),
        "{}",
        r.body
    );
    // A ring group's number is no queue.
    let r = did("602", "queue");
    assert_eq!(
        (r.status, r.error_field().as_str()),
        (400, "destination"),
        "{}",
        r.body
    );
    let r = did("600", "ring_group");
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["destination_type"], "ring_group");
    let rule = r.json()["id"].as_str().unwrap().to_owned();
    // A group a DID rings cannot be deleted: calls would find nobody.
    let r = admin.request("DELETE", &sales_path, "application/json", "");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "IN_USE"),
        "{}",
        r.body
    );
    assert!(r.body.contains("+4930555"), "names the DID: {}", r.body);
    let r = admin.request("DELETE", &format!("/api/inbound_rules/{rule}"), "", "");
    assert_eq!(r.status, 204, "{}", r.body);

    // Delete.
    let r = admin.request("DELETE", &sales_path, "application/json", "");
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(admin.get(&sales_path).status, 404);
    assert_eq!(admin.get("/api/ring_groups").json()["count"], 1);
    // Its number is free for a user now.
    admin.create_user(&tenant, "600", "sip-secret-600");
}

#[test]
fn ring_groups_are_provisioned_validated_and_isolated() {
    let dir = TempDir::new("ring-groups-rest");
    let server = Server::start(dir.path(), &[]);
    provisioning(&server);
}

#[test]
fn on_postgres_ring_groups_are_provisioned_validated_and_isolated() {
    let Some(db) =
        PgDatabase::create("on_postgres_ring_groups_are_provisioned_validated_and_isolated")
    else {
        return;
    };
    let dir = TempDir::new("ring-groups-rest-pg");
    let server = Server::start(dir.path(), &["--database", &db.url]);
    provisioning(&server);
}

#[test]
fn only_admins_manage_ring_groups() {
    let dir = TempDir::new("ring-groups-roles");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Roles", DOMAIN);
    for (ext, role) in [("201", "Admin"), ("203", "StandardUser")] {
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
    let body = json!({"number": "600", "name": "Mine", "members": ["201", "203"]});
    let group = create(&client("201"), &body);
    let path = format!("/api/ring_groups/{}", group["id"].as_str().unwrap());
    let user = client("203");
    assert_eq!(user.get("/api/ring_groups").status, 403);
    assert_eq!(user.get(&path).status, 403);
    assert_eq!(user.post_json("/api/ring_groups", &body).status, 403);
    // The system admin needs X-Tenant-Id to say which tenant.
    let mut system = server.admin();
    assert_ne!(system.get("/api/ring_groups").status, 200);
    system.tenant = Some(tenant);
    assert_eq!(system.get(&path).json()["name"], "Mine");
    assert_eq!(server.http().get("/api/ring_groups").status, 401);
}
