//! Webhooks through the real binary: the `cdr_event` REST endpoints, a
//! real call's events arriving signed at a real HTTP receiver, and a
//! `kill -9` with deliveries pending, on SQLite and (when
//! `TALLY_TEST_POSTGRES_URL` is set) PostgreSQL.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::receiver::{Hit, Receiver};
use common::{Http, Server, TempDir, answered_call, wait_for_cdrs};
use delivery::webhook::Secret;
use serde_json::{Value, json};

const DOMAIN: &str = "hooks.example.com";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const LIMIT: Duration = Duration::from_secs(30);

fn config_file(dir: &TempDir, database: Option<&str>) -> String {
    let path = dir.path().join("tally.toml");
    let mut text = String::new();
    if let Some(url) = database {
        text.push_str(&format!("database = \"{url}\"\n"));
    }
    text.push_str(
        "[webhooks]\nallow = [\"127.0.0.1/32\"]\nretry_schedule_ms = [200, 300, 400, 500, 500, 500, 500, 500]\nlease_secs = 20\n",
    );
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn provision(server: &Server) -> (Http, String) {
    let mut admin = server.admin();
    let tenant = admin.create_tenant("Hooks", DOMAIN);
    admin.create_user(&tenant, "101", "s3cret-101");
    admin.create_user(&tenant, "102", "s3cret-102");
    admin.tenant = Some(tenant.clone());
    (admin, tenant)
}

fn put(admin: &Http, body: &Value) -> common::http::Response {
    admin.request(
        "PUT",
        "/api/tenant/cdr_event",
        "application/json",
        &body.to_string(),
    )
}

fn deliveries(admin: &Http) -> Value {
    let r = admin.get("/api/tenant/webhook/deliveries?top=100");
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn a_real_call_reaches_the_webhook_signed_and_the_api_manages_it() {
    let dir = TempDir::new("webhooks");
    let config = config_file(&dir, None);
    let server = Server::start(dir.path(), &["--config", &config]);
    let (mut admin, tenant) = provision(&server);
    let rx = Receiver::start("127.0.0.1:0".parse().unwrap(), 200);

    // Nothing configured yet.
    let r = admin.get("/api/tenant/cdr_event");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["enabled"], false);
    // Validation names the field; private addresses need the allow-list.
    for (body, field) in [
        (json!({"enabled": true}), "url"),
        (json!({"enabled": true, "url": "ftp://x.example/"}), "url"),
        (
            json!({"enabled": true, "url": "http://10.0.0.1/hook"}),
            "url",
        ),
        (
            json!({"enabled": true, "url": "https://x.example/", "auth": "BASIC"}),
            "username",
        ),
        (
            json!({"enabled": true, "url": "https://x.example/", "secret": "abc"}),
            "secret",
        ),
        (
            json!({"enabled": true, "url": "https://x.example/", "event_types": ["nope"]}),
            "event_types",
        ),
    ] {
        let r = put(&admin, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.error_code(), "VALIDATE_FAILED");
        assert_eq!(r.error_field(), field, "{body}");
    }
    let r = admin.request(
        "PUT",
        "/api/tenant/cdr_event",
        "application/json",
        "{not json",
    );
    assert_eq!(r.status, 400);
    // The system admin must name an existing tenant.
    admin.tenant = Some("1234".into());
    assert_eq!(admin.get("/api/tenant/cdr_event").status, 404);
    admin.tenant = None;
    assert_eq!(admin.get("/api/tenant/cdr_event").status, 400);
    assert_eq!(
        Http::new(server.http).get("/api/tenant/cdr_event").status,
        401
    );
    admin.tenant = Some(tenant.clone());

    let r = put(
        &admin,
        &json!({"enabled": true, "url": rx.url(), "secret": SECRET}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let view = r.json();
    assert_eq!(view["secret"], "********", "secrets never come back");
    assert_eq!(view["url"], rx.url());

    let session_id = answered_call(&server, DOMAIN);
    wait_for_cdrs(&admin, 1);
    rx.wait("the call_cdr", |hits| {
        hits.iter().any(|h| h.json()["event_type"] == "call_cdr")
    });
    let hits = rx.hits();
    let secret = Secret::parse(SECRET).unwrap();
    let mut sequences = Vec::new();
    for h in &hits {
        let body = h.json();
        assert_eq!(body["session_id"], session_id.as_str());
        assert_eq!(body["tenant_id"], tenant.as_str());
        assert_eq!(body["event_id"], h.id(), "webhook-id = event_id");
        let ts: u64 = h.headers["webhook-timestamp"].parse().unwrap();
        assert!(secret.verify(
            h.id(),
            ts,
            h.body.as_bytes(),
            &h.headers["webhook-signature"]
        ));
        assert_eq!(h.headers["content-type"], "application/json");
        sequences.push(body["sequence"].as_u64().unwrap());
    }
    sequences.sort();
    assert_eq!(
        sequences,
        (1..=hits.len() as u64).collect::<Vec<_>>(),
        "every event once"
    );
    let types: Vec<_> = hits
        .iter()
        .map(|h| h.json()["event_type"].as_str().unwrap().to_owned())
        .collect();
    for t in [
        "call_start",
        "cdr_target_add",
        "cdr_target_answer",
        "call_cdr",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
    let n = hits.len();

    // The delivery log.
    let d = deliveries(&admin);
    assert_eq!(d["count"], n);
    let item = &d["items"][0];
    assert_eq!(item["status"], "delivered");
    assert_eq!(item["log"][0]["outcome"], "success");
    assert_eq!(item["log"][0]["http_status"], 200);
    assert_eq!(item["log"][0]["response"], "ok");

    // Retry one, replay all: same webhook-ids again.
    let one = item["id"].as_str().unwrap().to_owned();
    let r = admin.post_json(
        &format!("/api/tenant/webhook/deliveries/{one}/retry"),
        &json!({}),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        admin
            .post_json("/api/tenant/webhook/deliveries/nope/retry", &json!({}))
            .status,
        404
    );
    rx.wait("the retry", |hits| hits.len() > n);
    let r = admin.post_json("/api/tenant/webhook/replay?from_sequence=0", &json!({}));
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["scheduled"], n);
    rx.wait("the replay", |hits| hits.len() > 2 * n);
    assert_eq!(rx.ids().len(), n, "replays carry the same webhook-id");
    assert_eq!(
        admin
            .post_json("/api/tenant/webhook/replay", &json!({}))
            .status,
        400
    );

    // A test event.
    let r = admin.post_json("/api/tenant/webhook/test", &json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = r.json();
    assert_eq!(sent["delivered"], true);
    assert_eq!(sent["http_status"], 200);
    assert!(rx.ids().contains(sent["event_id"].as_str().unwrap()));

    // 410: the endpoint is disabled, and GET says why.
    rx.status.store(410, Ordering::Relaxed);
    let r = admin.post_json(
        &format!("/api/tenant/webhook/deliveries/{one}/retry"),
        &json!({}),
    );
    assert_eq!(r.status, 202);
    let deadline = Instant::now() + LIMIT;
    loop {
        let v = admin.get("/api/tenant/cdr_event").json();
        if v["enabled"] == false {
            assert_eq!(v["disabled_reason"], "gone");
            assert_ne!(v["disabled_at"], "");
            break;
        }
        assert!(Instant::now() < deadline, "not disabled: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The same configuration is the `cdr_event` field of /api/tenant.
    let r = admin.get("/api/tenant");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["cdr_event"]["disabled_reason"], "gone");
    let put_tenant = |body: serde_json::Value| {
        admin.request("PUT", "/api/tenant", "application/json", &body.to_string())
    };
    let r =
        put_tenant(json!({"name": "Renamed", "cdr_event": {"enabled": true, "url": "ftp://x"}}));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_field(), "url");
    assert_ne!(
        admin.get("/api/tenant").json()["name"],
        "Renamed",
        "a refused cdr_event changes nothing"
    );
    let url = format!("http://{}/hook", rx.addr);
    let r = put_tenant(json!({"name": "Renamed", "cdr_event": {"enabled": true, "url": url}}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["name"], "Renamed");
    assert_eq!(v["cdr_event"]["enabled"], true);
    assert_eq!(v["cdr_event"]["url"], url);

    // A tenant with webhook configuration, deliveries and a log is
    // deleted with all of it.
    admin.tenant = None;
    let r = admin.request(
        "DELETE",
        &format!("/api/tenants/{tenant}"),
        "application/json",
        "",
    );
    assert!(
        r.status == 204 || r.status == 200,
        "{} {}",
        r.status,
        r.body
    );
    assert_eq!(admin.get(&format!("/api/tenants/{tenant}")).status, 404);

    let (status, _) = server.terminate();
    assert!(status.success());
}

/// Calls complete while the receiver is down or hangs; `kill -9`; the
/// receiver comes up; the restarted server delivers every pending event.
fn kill_9_with_deliveries_pending(database: Option<&str>) {
    let dir = TempDir::new("webhooks-kill");
    let config = config_file(&dir, database);
    let server = Server::start(dir.path(), &["--config", &config]);
    let (admin, tenant) = provision(&server);
    // The receiver accepts and holds every request: attempts in flight.
    let rx = Receiver::start("127.0.0.1:0".parse().unwrap(), 200);
    rx.hold.store(true, Ordering::Relaxed);
    let r = put(&admin, &json!({"enabled": true, "url": rx.url()}));
    assert_eq!(r.status, 200, "{}", r.body);
    answered_call(&server, DOMAIN);
    answered_call(&server, DOMAIN);
    wait_for_cdrs(&admin, 2);
    let total = deliveries(&admin)["count"].as_u64().unwrap();
    assert!(total >= 10, "two calls make at least 10 events");
    rx.wait("attempts in flight", |hits| !hits.is_empty());
    let before = rx.ids();
    server.kill();
    let addr = rx.addr;
    drop(rx);

    let rx = Receiver::start(addr, 200);
    let server = Server::start(dir.path(), &["--config", &config]);
    let mut admin = server.admin();
    admin.tenant = Some(tenant);
    rx.wait("every event after the restart", |hits| {
        hits.iter().map(Hit::id).collect::<HashSet<_>>().len() as u64 >= total
    });
    let after = rx.ids();
    assert_eq!(after.len() as u64, total, "nothing lost, nothing invented");
    assert!(
        before.is_subset(&after),
        "attempts cut by the kill come back with the same webhook-id"
    );
    let deadline = Instant::now() + LIMIT;
    loop {
        let d = deliveries(&admin);
        let items = d["items"].as_array().unwrap();
        if items.iter().all(|i| i["status"] == "delivered") {
            assert_eq!(items.len() as u64, total);
            break;
        }
        assert!(Instant::now() < deadline, "{d}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = server.terminate();
    assert!(status.success());
}

#[test]
fn kill_9_with_deliveries_pending_then_restart_delivers_everything() {
    kill_9_with_deliveries_pending(None);
}

#[test]
fn on_postgres_kill_9_with_deliveries_pending_then_restart_delivers_everything() {
    let Some(db) = common::pg::PgDatabase::create("on_postgres_kill_9_with_deliveries_pending")
    else {
        return;
    };
    kill_9_with_deliveries_pending(Some(&db.url));
}

/// Issue 17 finding 14: the allow-list of private ranges is per tenant.
/// With no node-wide allow-list, the system admin allows 127.0.0.0/8 to
/// tenant A only: A's webhook is accepted and delivered (a real call's
/// events and a test event), B's same kind of URL is refused when set and,
/// once its list is emptied again, by the guard at every attempt. A
/// tenant's Admin can neither read nor change its own list.
#[test]
fn private_ranges_are_allowed_per_tenant_by_the_system_admin_only() {
    let dir = TempDir::new("webhook-allow");
    let path = dir.path().join("tally.toml");
    let metrics_port = common::free_tcp_port();
    std::fs::write(
        &path,
        format!(
            "[webhooks]\nretry_schedule_ms = [200, 300, 400, 500, 500, 500, 500, 500]\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(dir.path(), &["--config", &path.display().to_string()]);
    let admin = server.admin();
    let a = admin.create_tenant("A", DOMAIN);
    admin.create_user(&a, "101", "s3cret-101");
    admin.create_user(&a, "102", "s3cret-102");
    let b = admin.create_tenant("B", "b.hooks.example.com");
    admin.create_user(&b, "101", "s3cret-101");
    admin.create_user(&b, "102", "s3cret-102");
    let rx_a = Receiver::start("127.0.0.1:0".parse().unwrap(), 200);
    let rx_b = Receiver::start("127.0.0.1:0".parse().unwrap(), 200);
    let allow = |http: &Http, tenant: &str, body: &Value| {
        http.request(
            "PUT",
            &format!("/api/tenants/{tenant}/webhook_allow"),
            "application/json",
            &body.to_string(),
        )
    };
    let hook = |tenant: &str, url: String| {
        let mut http = server.admin();
        http.tenant = Some(tenant.to_owned());
        put(&http, &json!({"enabled": true, "url": url}))
    };

    // Nothing allowed anywhere: loopback is refused for both.
    for (t, rx) in [(&a, &rx_a), (&b, &rx_b)] {
        let r = hook(t, rx.url());
        assert_eq!(
            (r.status, r.error_field()),
            (400, "url".into()),
            "{}",
            r.body
        );
    }
    // The system admin allows A (and B, for now).
    let r = allow(&admin, &a, &json!({"allow": ["127.0.0.0/8", "127.1.2.3"]}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({"allow": ["127.0.0.0/8", "127.1.2.3/32"]}));
    assert_eq!(
        admin.get(&format!("/api/tenants/{a}/webhook_allow")).json(),
        json!({"allow": ["127.0.0.0/8", "127.1.2.3/32"]})
    );
    assert_eq!(
        admin.get(&format!("/api/tenants/{b}/webhook_allow")).json(),
        json!({"allow": []})
    );
    assert_eq!(hook(&a, rx_a.url()).status, 200);
    assert_eq!(hook(&b, rx_b.url()).status, 400, "B is not allowed yet");
    assert_eq!(
        allow(&admin, &b, &json!({"allow": ["127.0.0.0/8"]})).status,
        200
    );
    assert_eq!(hook(&b, rx_b.url()).status, 200);
    // B's allowance is withdrawn: its stored URL is now refused at delivery.
    assert_eq!(allow(&admin, &b, &json!({"allow": []})).status, 200);

    // Validation and unknown tenants.
    for body in [
        json!({"allow": ["nope"]}),
        json!({"allow": ["10.0.0.0/33"]}),
        json!({"allow": "10.0.0.0/8"}),
        json!({"allow": [], "extra": 1}),
        json!({"allow": vec!["10.0.0.1"; 33]}),
    ] {
        let r = allow(&admin, &a, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.error_code(), "VALIDATE_FAILED", "{body}");
    }
    assert_eq!(allow(&admin, "1234", &json!({"allow": []})).status, 404);
    assert_eq!(admin.get("/api/tenants/1234/webhook_allow").status, 404);

    // A tenant Admin cannot touch its own list (or another's).
    let r = admin.post_json(
        &format!("/api/tenants/{a}/users"),
        &json!({"extension": "150", "sip_password": "s3cret-150",
                "password": "web-pass-150", "role": "Admin"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mut tenant_admin = server.http();
    let r = tenant_admin.form(
        "/api/login/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", "150"),
            ("password", "web-pass-150"),
            ("domain", DOMAIN),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    tenant_admin.token = Some(r.json()["access_token"].as_str().unwrap().to_owned());
    for tenant in [&a, &b] {
        let r = allow(&tenant_admin, tenant, &json!({"allow": ["0.0.0.0/0"]}));
        assert_eq!(r.status, 403, "{}", r.body);
        let r = tenant_admin.get(&format!("/api/tenants/{tenant}/webhook_allow"));
        assert_eq!(r.status, 403, "{}", r.body);
    }
    assert_eq!(
        admin.get(&format!("/api/tenants/{a}/webhook_allow")).json(),
        json!({"allow": ["127.0.0.0/8", "127.1.2.3/32"]}),
        "unchanged"
    );

    // Delivery: A's test event arrives, B's is refused by the guard.
    let test_event = |tenant: &str| {
        let mut http = server.admin();
        http.tenant = Some(tenant.to_owned());
        let r = http.post_json("/api/tenant/webhook/test", &json!({}));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let sent = test_event(&a);
    assert_eq!(
        (sent["delivered"].clone(), sent["http_status"].clone()),
        (json!(true), json!(200))
    );
    let sent = test_event(&b);
    assert_eq!(
        (sent["delivered"].clone(), sent["outcome"].clone()),
        (json!(false), json!("blocked")),
        "{sent}"
    );
    // And a real call's events: A's reach its receiver, B's are blocked.
    answered_call(&server, DOMAIN);
    answered_call(&server, "b.hooks.example.com");
    rx_a.wait("A's call_cdr", |hits| {
        hits.iter().any(|h| h.json()["event_type"] == "call_cdr")
    });
    let mut b_admin = server.admin();
    b_admin.tenant = Some(b.clone());
    let deadline = Instant::now() + LIMIT;
    loop {
        let v = deliveries(&b_admin);
        let blocked = v["items"].as_array().unwrap().iter().any(|d| {
            d["event_type"] == "call_cdr"
                && d["log"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|l| l["outcome"] == "blocked")
        });
        if blocked {
            break;
        }
        assert!(Instant::now() < deadline, "B's call_cdr not blocked: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(rx_b.hits().is_empty(), "B's receiver got {:?}", rx_b.hits());

    // The metrics count the attempts by result (A's test event and events
    // delivered, B's blocked ones).
    let metrics = Http::new(SocketAddr::from(([127, 0, 0, 1], metrics_port)));
    let r = metrics.get("/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    let scrape = prometheus_parse::Scrape::parse(r.body.lines().map(|l| Ok(l.to_owned())))
        .expect("a Prometheus text scrape");
    let attempts = |result: &str| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric.starts_with("tally_webhook_attempts")
                    && s.labels.get("result") == Some(result)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{other:?}"),
            })
            .unwrap_or_else(|| panic!("no tally_webhook_attempts{{result={result}}}"))
    };
    assert!(attempts("success") >= 2.0, "{}", r.body);
    assert!(attempts("blocked") >= 2.0, "{}", r.body);
    assert_eq!(attempts("gone"), 0.0);
}
