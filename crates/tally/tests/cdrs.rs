//! CDR queries over REST against the real binary: the query options, the
//! role rules of `/api/cdrs*` and `/api/user/cdrs*` (own calls only), the
//! export in the tenant's time zone, personal sync tokens, and tenant
//! isolation.

mod common;

use common::http::Response;
use common::{Http, Phone, Server, TempDir, answered_call};
use serde_json::{Value, json};

const DOMAIN: &str = "cdrs.example.com";

/// A client signed in as extension `ext` of `domain` (web password
/// `web-<ext>`).
fn user_client(server: &Server, ext: &str, domain: &str) -> Http {
    let mut http = server.http();
    let password = format!("web-pass-{ext}");
    let r = http.form(
        "/api/login/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", ext),
            ("password", &password),
            ("domain", domain),
        ],
    );
    assert_eq!(r.status, 200, "sign-in of {ext}: {}", r.body);
    http.token = Some(r.json()["access_token"].as_str().unwrap().to_owned());
    http
}

/// Creates the user and returns its id.
fn create_user(admin: &Http, tenant: &str, ext: &str, role: &str) -> String {
    let r = admin.post_json(
        &format!("/api/tenants/{tenant}/users"),
        &json!({
            "extension": ext,
            "sip_password": format!("s3cret-{ext}"),
            "password": format!("web-pass-{ext}"),
            "role": role,
        }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_owned()
}

fn validate_field(r: &Response) -> String {
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "VALIDATE_FAILED"),
        "{}",
        r.body
    );
    r.error_field()
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {v}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_default()
}

#[test]
fn cdr_queries_roles_export_and_sync_over_rest() {
    let dir = TempDir::new("cdr-queries");
    let server = Server::start(dir.path(), &[]);
    let mut admin = server.admin();
    let r = admin.post_json(
        "/api/tenants",
        &json!({"name": "Q", "sip_domain": DOMAIN, "time_zone": "Europe/Berlin"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let tenant = r.json()["id"].as_str().unwrap().to_owned();
    let mut user_ids = std::collections::HashMap::new();
    for (ext, role) in [
        ("101", "Admin"),
        ("102", "QueueManager"),
        ("103", "StandardUser"),
        ("104", "StandardUser"),
    ] {
        user_ids.insert(ext, create_user(&admin, &tenant, ext, role));
    }
    let other = admin.create_tenant("Other", "other.example.com");
    create_user(&admin, &other, "101", "Admin");

    let tenant_admin = user_client(&server, "101", DOMAIN);
    let queue_manager = user_client(&server, "102", DOMAIN);
    let u103 = user_client(&server, "103", DOMAIN);
    let u104 = user_client(&server, "104", DOMAIN);
    let other_admin = user_client(&server, "101", "other.example.com");

    // 104's sync token, made before any call.
    let r = u104.request("POST", "/api/user/cdrs/sync_tokens", "", "");
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.json()["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 32);

    // Call A: 101 -> 102, answered. Call B: 103 -> 104, not registered.
    answered_call(&server, DOMAIN);
    let caller = Phone::new("103", "s3cret-103", DOMAIN, server.sip);
    let failed = caller.invite("104", |_| {}).status;
    assert!(failed >= 400, "{failed}");
    admin.tenant = Some(tenant.clone());
    let all = common::wait_for_cdrs(&admin, 2);
    let all_ids = ids(&all);
    let (call_b, call_a) = (all_ids[0].clone(), all_ids[1].clone());
    assert_eq!(all["items"][0]["caller"], "103");
    assert_eq!(all["items"][1]["caller"], "101");

    // Query options.
    let get = |http: &Http, path: &str| {
        let r = http.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    };
    let v = get(&tenant_admin, "/api/cdrs?filter=caller%20eq%20'103'");
    assert_eq!(
        (v["count"].clone(), ids(&v)),
        (json!(1), vec![call_b.clone()])
    );
    let v = get(
        &tenant_admin,
        "/api/cdrs?filter=status_code%20ge%20400%20and%20startswith(callee,'10')&count=false",
    );
    assert_eq!(ids(&v), vec![call_b.clone()]);
    assert!(v.get("count").is_none(), "{v}");
    let v = get(&tenant_admin, "/api/cdrs?orderby=caller%20asc&top=1");
    assert_eq!(
        (v["count"].clone(), ids(&v)),
        (json!(2), vec![call_a.clone()])
    );
    let v = get(&tenant_admin, &format!("/api/cdrs?after={call_b}"));
    assert_eq!(ids(&v), vec![call_a.clone()]);
    let v = get(&tenant_admin, "/api/cdrs?search=104");
    assert_eq!(ids(&v), vec![call_b.clone()]);
    let v = get(
        &queue_manager,
        "/api/cdrs?filter=call_status%20eq%20answered",
    );
    assert_eq!(ids(&v), vec![call_a.clone()]);
    for (query, field) in [
        ("filter=caller%20eq", "filter"),
        ("filter=caller%20eq%20'1'%20or%201%3D1", "filter"),
        ("filter=nope%20eq%201", "filter"),
        ("filter=status_code%20eq%20'486'", "filter"),
        ("orderby=caller%20up", "orderby"),
        ("top=0", "top"),
        ("count=maybe", "count"),
        ("search=1%202%203%204%205%206%207%208%209", "search"),
        ("after=12", "after"),
    ] {
        let r = tenant_admin.get(&format!("/api/cdrs?{query}"));
        assert_eq!(validate_field(&r), field, "{query}");
    }

    // Roles of /api/cdrs*: Admin, QueueManager, system admin; not users.
    for path in [
        "/api/cdrs".to_owned(),
        format!("/api/cdrs/{call_a}"),
        "/api/cdrs/export?format=csv".to_owned(),
    ] {
        for (who, http) in [("admin", &tenant_admin), ("queue manager", &queue_manager)] {
            assert_eq!(http.get(&path).status, 200, "{who} {path}");
        }
        let r = u103.get(&path);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (403, "FORBIDDEN"),
            "{path}"
        );
        assert_eq!(admin.get(&path).status, 200, "system admin {path}");
    }
    // Another tenant sees none of it: 404 for the id, nothing listed.
    assert_eq!(other_admin.get(&format!("/api/cdrs/{call_a}")).status, 404);
    assert_eq!(
        get(&other_admin, "/api/cdrs"),
        json!({"count": 0, "items": []})
    );
    let v = get(
        &other_admin,
        &format!(
            "/api/cdrs?filter=session_id%20eq%20'{}'",
            all["items"][1]["session_id"].as_str().unwrap()
        ),
    );
    assert_eq!(v["count"], 0);
    let r = other_admin.get(&format!("/api/cdrs?after={call_a}"));
    assert_eq!(validate_field(&r), "after");

    // Own CDRs: placed, received, rung.
    for (who, http, want) in [
        ("101", &tenant_admin, vec![call_a.clone()]),
        ("102", &queue_manager, vec![call_a.clone()]),
        ("103", &u103, vec![call_b.clone()]),
        ("104", &u104, vec![call_b.clone()]),
        ("other 101", &other_admin, vec![]),
    ] {
        let v = get(http, "/api/user/cdrs");
        assert_eq!(ids(&v), want, "{who}");
        assert_eq!(v["count"], want.len(), "{who}");
    }
    let v = get(&u103, "/api/user/cdrs?filter=caller%20eq%20'101'");
    assert_eq!(v["count"], 0);
    let v = get(&u103, &format!("/api/user/cdrs/{call_b}"));
    assert_eq!(
        v["items"]["id"],
        call_b.as_str(),
        "an object, PortSIP's shape"
    );
    assert!(v["items"].get("call_targets").is_none());
    assert_eq!(u103.get(&format!("/api/user/cdrs/{call_a}")).status, 404);
    assert_eq!(
        other_admin.get(&format!("/api/user/cdrs/{call_b}")).status,
        404
    );
    assert_eq!(u103.get("/api/user/cdrs/x").status, 404);
    let r = u103.get("/api/user/cdrs?top=500");
    assert_eq!(validate_field(&r), "top");
    // The system admin has no extension.
    admin.tenant = None;
    let r = admin.get("/api/user/cdrs");
    assert_eq!((r.status, r.error_code().as_str()), (403, "FORBIDDEN"));
    admin.tenant = Some(tenant.clone());

    // Sync: 104's token sees call B once.
    let diff = |http: &Http, token: &str| {
        http.request(
            "POST",
            &format!("/api/user/cdrs/sync_tokens/{token}/diff"),
            "",
            "",
        )
    };
    let r = diff(&u104, &token);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["items"][0]["id"], call_b.as_str());
    assert_eq!(v["items"][0]["change_type"], "CREATED");
    assert_eq!(v["items"][0]["items"][0]["callee"], "104");
    assert_eq!(v["has_more"], false);
    let next = v["token"].as_str().unwrap().to_owned();
    assert_ne!(next, token);
    let v = diff(&u104, &next).json();
    assert_eq!(v["items"], json!([]));
    for (who, http, token) in [
        ("unknown", &u104, "no-such-token".to_owned()),
        ("another user's", &u103, next.clone()),
        ("the system admin", &admin, next.clone()),
    ] {
        let r = diff(http, &token);
        assert_eq!(r.status, 403, "{who}: {}", r.body);
        let code = r.error_code();
        assert!(
            code == "INVALID_SYNC_TOKEN" || code == "FORBIDDEN",
            "{who}: {code}"
        );
    }
    let r = u104.request(
        "POST",
        "/api/user/cdrs/sync_tokens?date_from=2000-01-01T00:00:00Z",
        "",
        "",
    );
    assert_eq!(r.status, 201);
    let since = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(ids(&diff(&u104, &since).json()), vec![call_b.clone()]);
    let r = u104.request(
        "POST",
        "/api/user/cdrs/sync_tokens?date_from=yesterday",
        "",
        "",
    );
    assert_eq!(validate_field(&r), "date_from");

    // Export: CSV in Berlin time, JSON Lines in UTC, same filter rules.
    let r = tenant_admin.get("/api/cdrs/export?format=csv");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r, "content-type"), "text/csv; charset=utf-8");
    assert!(header(&r, "content-disposition").contains(".csv"));
    let lines: Vec<&str> = r.body.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 3, "{}", r.body);
    assert!(lines[0].starts_with("id,session_id,call_id,direction,caller,"));
    assert!(lines[1].starts_with(&format!("{call_b},")));
    let started_utc = all["items"][0]["started_at"].as_str().unwrap();
    let berlin = berlin_time(started_utc);
    assert!(lines[1].contains(&berlin), "{} lacks {berlin}", lines[1]);
    let r = tenant_admin.get("/api/cdrs/export?format=jsonl&filter=caller%20eq%20'101'");
    assert_eq!(r.status, 200);
    assert_eq!(
        header(&r, "content-type"),
        "application/jsonl; charset=utf-8"
    );
    let rows: Vec<Value> = r
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0], all["items"][1], "the list item, UTC");
    for (query, field) in [
        ("", "format"),
        ("format=xml", "format"),
        ("format=csv&top=5", "top"),
        ("format=csv&after=1", "after"),
        ("format=csv&filter=(", "filter"),
    ] {
        let r = tenant_admin.get(&format!("/api/cdrs/export?{query}"));
        assert_eq!(validate_field(&r), field, "{query}");
    }

    // A reused extension (issue 17 finding 11): 103, who placed call B, is
    // deleted and a new user gets 103. The new user's own CDRs are empty
    // (list, detail, sync); the old call stays in the tenant's CDRs, and
    // still 104's.
    let r = admin.request(
        "DELETE",
        &format!("/api/tenants/{tenant}/users/{}", user_ids["103"]),
        "",
        "",
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let new_id = create_user(&admin, &tenant, "103", "StandardUser");
    assert_ne!(new_id, user_ids["103"]);
    let new103 = user_client(&server, "103", DOMAIN);
    assert_eq!(
        get(&new103, "/api/user/cdrs"),
        json!({"count": 0, "items": []}),
        "the new 103 sees nothing of the old 103's calls"
    );
    assert_eq!(new103.get(&format!("/api/user/cdrs/{call_b}")).status, 404);
    let r = new103.request(
        "POST",
        "/api/user/cdrs/sync_tokens?date_from=2000-01-01T00:00:00Z",
        "",
        "",
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let since = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(diff(&new103, &since).json()["items"], json!([]));
    let v = get(&tenant_admin, "/api/cdrs?filter=caller%20eq%20'103'");
    assert_eq!(ids(&v), vec![call_b.clone()], "the admin still has it");
    assert_eq!(ids(&get(&u104, "/api/user/cdrs")), vec![call_b.clone()]);
}

/// An RFC 3339 UTC time as Europe/Berlin wall time with its offset.
fn berlin_time(utc: &str) -> String {
    let at: jiff::Timestamp = utc.parse().unwrap();
    let zone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let hours = zone.to_offset(at).seconds() / 3600;
    let text = format!(
        "{}+{hours:02}:00",
        zone.to_datetime(at).strftime("%Y-%m-%dT%H:%M:%S%.3f")
    );
    assert!(
        text.ends_with("+01:00") || text.ends_with("+02:00"),
        "{text}"
    );
    text
}
