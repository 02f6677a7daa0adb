//! Call queues against the real binary (issue 14), on SQLite and, when
//! `TALLY_TEST_POSTGRES_URL` is set, PostgreSQL.
//!
//! - REST: CRUD with defaults, validation naming the field, one extension
//!   space with users and IVRs, an agent of another tenant refused, agents
//!   logging in and out (an extension that is no agent refused, another
//!   tenant's queue 404, nothing half-changed).
//! - Calls (the test's own RTP phone as the caller, SIPp as the agent):
//!   the caller hears music on hold, agent 102 (logged in over REST)
//!   answers: the queue target `referred`, 102 a `queue_call`; a caller
//!   who hangs up while queued (nobody logged in) is abandoned: the queue
//!   target answered and `caller_disconnect`; with no agent and a 2 s
//!   max wait the call overflows to 103. CDRs over REST and webhook
//!   events.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::flows::{Demo, Hooks};
use common::pg::PgDatabase;
use common::rtp_caller::Caller;
use common::{Server, TempDir, sipp_available, wait_for_cdrs};
use media::tone::dominant;
use serde_json::{Value, json};

fn refused(r: &common::http::Response, field: &str) {
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_code(), "VALIDATE_FAILED", "{}", r.body);
    assert_eq!(r.error_field(), field, "{}", r.body);
}

fn provisioning(server: &Server) {
    let mut admin = server.admin();
    let tenant = admin.create_tenant("Queues", "queues.example.com");
    let other = admin.create_tenant("Other", "other.queues.example.com");
    for ext in ["101", "102", "103"] {
        admin.create_user(&tenant, ext, &format!("sip-secret-{ext}"));
    }
    admin.create_user(&other, "201", "sip-secret-201");
    let mut other_admin = server.admin();
    other_admin.tenant = Some(other.clone());
    admin.tenant = Some(tenant.clone());

    let r = admin.post_json(
        "/api/queues",
        &json!({"number": "700", "name": "Support", "agents": ["102", "103"]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let q = r.json();
    assert_eq!(q["strategy"], "ring_all");
    assert_eq!(q["agent_timeout"], 20);
    assert_eq!(q["wrap_up"], 10);
    assert_eq!(q["max_wait"], Value::Null);
    assert_eq!(q["logged_in"], json!([]), "agents start logged out");
    assert_eq!(q["announce_position"], 0, "no position announcements");
    let one = format!("/api/queues/{}", q["id"].as_str().unwrap());
    let bad = |body: Value, field: &str| refused(&admin.post_json("/api/queues", &body), field);
    bad(
        json!({"number": "71", "name": "A", "agents": ["201"]}),
        "agents",
    );
    bad(json!({"number": "71", "name": "A", "agents": []}), "agents");
    bad(
        json!({"number": "71", "name": "A", "agents": ["102", "102"]}),
        "agents",
    );
    bad(
        json!({"number": "71", "name": "A", "agents": ["102"], "strategy": "random"}),
        "strategy",
    );
    bad(
        json!({"number": "71", "name": "A", "agents": ["102"], "max_wait": 1}),
        "max_wait",
    );
    bad(
        json!({"number": "71", "name": "A", "agents": ["102"], "announce_position": 5}),
        "announce_position",
    );
    bad(
        json!({"number": "71", "name": "A", "agents": ["102"], "overflow": "999"}),
        "overflow",
    );
    bad(
        json!({"number": "71", "name": "A", "agents": ["102"], "overflow": "71"}),
        "overflow",
    );
    let r = admin.post_json(
        "/api/queues",
        &json!({"number": "101", "name": "A", "agents": ["102"]}),
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let r = admin.post_json("/api/ivrs", &json!({"number": "700", "name": "Clash"}));
    assert_eq!(
        r.status, 409,
        "an IVR cannot take a queue's number: {}",
        r.body
    );

    // Login and logout.
    let r = admin.post_json(&format!("{one}/login"), &json!({"extension": "102"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["logged_in"], json!(["102"]));
    let r = admin.post_json(&format!("{one}/login"), &json!({"extension": "101"}));
    refused(&r, "extension");
    // Another tenant's admin (and its agent 201) cannot reach this queue.
    let r = other_admin.post_json(&format!("{one}/login"), &json!({"extension": "201"}));
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        admin.get(&one).json()["logged_in"],
        json!(["102"]),
        "unchanged"
    );
    let r = admin.post_json(&format!("{one}/logout"), &json!({"extension": "102"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["logged_in"], json!([]));
    // PATCH keeps the rest; removing an agent logs it out.
    admin.post_json(&format!("{one}/login"), &json!({"extension": "103"}));
    let r = admin.request(
        "PATCH",
        &one,
        "application/json",
        &json!({"agents": ["102"], "strategy": "longest_idle"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.json()["logged_in"].clone(), r.json()["strategy"].clone()),
        (json!([]), json!("longest_idle"))
    );
    assert_eq!(other_admin.get(&one).status, 404);
    let r = admin.request("DELETE", &one, "application/json", "");
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(admin.get(&one).status, 404);
}

#[test]
fn queues_over_rest_on_sqlite() {
    let dir = TempDir::new("queues-rest");
    provisioning(&Server::start(dir.path(), &[]));
}

#[test]
fn queues_over_rest_on_postgres() {
    let Some(db) = PgDatabase::create("queues_rest") else {
        return;
    };
    let dir = TempDir::new("queues-rest-pg");
    provisioning(&Server::start(dir.path(), &["--database", &db.url]));
}

// ----- calls ----------------------------------------------------------------

fn media_config(dir: &Path) -> String {
    let slot = (std::process::id() % 300) as u16;
    let first = 50_000 + slot * 30 + 15;
    let path = dir.join("media.toml");
    std::fs::write(
        &path,
        format!(
            "[media]\nrtp_ports = \"{first}-{}\"\nanchor = \"auto\"\nrtp_timeout_secs = 60\n\n\
             [webhooks]\nallow = [\"127.0.0.1/32\"]\n",
            first + 13
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Whether some 100 ms of `pcm` is one of the music on hold's notes.
fn hears_music(pcm: &[i16]) -> bool {
    let notes = [523.0, 659.0, 784.0];
    pcm.chunks_exact(800).any(|b| {
        dominant(b, &[425.0, 523.0, 600.0, 659.0, 784.0, 800.0], 8_000, 0.6)
            .is_some_and(|f| notes.contains(&f))
    })
}

fn cdr_of_call(demo: &Demo, n: u64, call_id: &str) -> Value {
    let admin = demo.admin();
    let until = Instant::now() + common::WAIT;
    loop {
        let list = wait_for_cdrs(&admin, n);
        if let Some(c) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["call_id"] == call_id)
        {
            let id = c["id"].as_str().unwrap();
            return admin.get(&format!("/api/cdrs/{id}")).json()["items"][0].clone();
        }
        assert!(Instant::now() < until, "no CDR of {call_id}: {list}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn brief(cdr: &Value) -> Vec<Value> {
    cdr["call_targets"]
        .as_array()
        .unwrap_or_else(|| panic!("no targets: {cdr}"))
        .iter()
        .map(|t| json!([t["callee"], t["call_type"], t["status"], t["end_reason"]]))
        .collect()
}

fn queue_calls(dir: &Path, extra: &[&str]) {
    let config = media_config(dir);
    let demo = Demo::start(dir, &[&["--config", config.as_str()], extra].concat());
    let hooks = Hooks::subscribe(&demo);
    let admin = demo.admin();
    let r = admin.post_json(
        "/api/queues",
        &json!({"number": "700", "name": "Support", "agents": ["102"], "agent_timeout": 10}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let support = format!("/api/queues/{}", r.json()["id"].as_str().unwrap());
    let r = admin.post_json(
        "/api/queues",
        &json!({"number": "701", "name": "Night", "agents": ["102"], "max_wait": 10,
                "overflow": "103"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);

    // 1. Nobody logged in: the caller hears music, then hangs up
    // (abandoned).
    let mut caller = Caller::new(&demo);
    let mut call = caller.call("700");
    let heard = caller.listen(2.5);
    assert!(
        hears_music(&heard),
        "music on hold ({} samples)",
        heard.len()
    );
    assert_eq!(caller.phone.bye(&mut call, "700"), 200);
    let cdr = cdr_of_call(&demo, 1, &call.call_id);
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert_eq!(
        brief(&cdr),
        [json!([
            "700",
            "normal_call",
            "answered",
            "caller_disconnect"
        ])],
        "abandoned: {cdr}"
    );

    // 2. 102 logs in over REST and answers: a queue_call target, the queue
    // target referred.
    let agent = demo.phone("102", "uas.xml");
    let r = admin.post_json(&format!("{support}/login"), &json!({"extension": "102"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let mut caller = Caller::new(&demo);
    let mut call = caller.call("700");
    let _ = caller.listen(1.0);
    assert_eq!(caller.phone.bye(&mut call, "700"), 200);
    let (ok, log) = agent.finish();
    assert!(ok, "SIPp agent:\n{log}\n{}", demo.server.stderr());
    let cdr = cdr_of_call(&demo, 2, &call.call_id);
    assert_eq!(
        brief(&cdr),
        [
            json!(["700", "normal_call", "answered", "referred"]),
            json!(["102", "queue_call", "answered", "caller_disconnect"]),
        ],
        "{cdr}"
    );
    let events = hooks.of_session(cdr["session_id"].as_str().unwrap());
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds.first(), Some(&"call_start"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"call_cdr"), "{kinds:?}");

    // 3. Queue 701 has nobody logged in and waits 10 s at most: overflow
    // to 103.
    let overflow = demo.phone("103", "uas.xml");
    let mut caller = Caller::new(&demo);
    let mut call = caller.call("701");
    let _ = caller.listen(12.0);
    assert_eq!(caller.phone.bye(&mut call, "701"), 200);
    let (ok, log) = overflow.finish();
    assert!(ok, "SIPp 103:\n{log}\n{}", demo.server.stderr());
    let cdr = cdr_of_call(&demo, 3, &call.call_id);
    assert_eq!(
        brief(&cdr),
        [
            json!(["701", "normal_call", "answered", "referred"]),
            json!(["103", "normal_call", "answered", "caller_disconnect"]),
        ],
        "{cdr}"
    );

    // Statistics: 700 had one abandoned and one answered call, nobody
    // waits now; 701's overflow is neither.
    let s = admin.get(&format!("{support}/stats")).json();
    assert_eq!(
        (&s["waiting"], &s["answered"], &s["abandoned"], &s["other"]),
        (&json!(0), &json!(1), &json!(1), &json!(0)),
        "{s}"
    );
    assert!(
        s["longest_wait"].as_u64().unwrap() >= 2,
        "the abandoned caller waited: {s}"
    );
    assert_eq!(s["service_level"]["answered_within"], 1, "{s}");
    assert_eq!(s["service_level"]["percent"], 100.0, "{s}");
    let r = admin.get(&format!("{support}/stats?service_level=0"));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_field(), "service_level");
    let r = admin.get(&format!(
        "{support}/stats?from=2030-01-01T00:00:00Z&to=2029-01-01T00:00:00Z"
    ));
    assert_eq!(r.error_field(), "from", "{}", r.body);
    let none = admin
        .get(&format!("{support}/stats?to=2020-01-01T00:00:00Z"))
        .json();
    assert_eq!(
        (&none["answered"], &none["abandoned"]),
        (&json!(0), &json!(0)),
        "{none}"
    );

    // 4. A DID rule rings a queue: the carrier's call is answered at once
    // (nobody logged in to 702), the carrier hangs up (abandoned), and the
    // rule keeps the queue from being deleted.
    let r = admin.post_json(
        "/api/queues",
        &json!({"number": "702", "name": "Sales", "agents": ["102"]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let sales = format!("/api/queues/{}", r.json()["id"].as_str().unwrap());
    let carrier_port = common::free_sip_port();
    let r = admin.post_json(
        "/api/trunks",
        &json!({"name": "carrier", "kind": "ip", "host": "127.0.0.1", "port": carrier_port,
                "transport": "udp", "source_addresses": ["127.0.0.1"],
                "source_port": carrier_port, "country_code": "33"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let trunk = r.json()["id"].as_str().unwrap().to_owned();
    let did = "+33198765400";
    let r = admin.post_json(
        "/api/inbound_rules",
        &json!({"trunk_id": trunk, "did": did, "destination_type": "queue",
                "destination": "702"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = admin.post_json(
        "/api/inbound_rules",
        &json!({"trunk_id": trunk, "did": "+33198765401", "destination_type": "queue",
                "destination": "102"}),
    );
    assert_eq!(r.status, 400, "102 is no queue: {}", r.body);
    let (ok, log) = common::Sipp::spawn(
        demo.server.sip,
        "carrier_uac.xml",
        "u1",
        carrier_port,
        &["-s", did],
    )
    .finish();
    assert!(ok, "carrier call:\n{log}\n{}", demo.server.stderr());
    let list = wait_for_cdrs(&admin, 4);
    let inbound = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["direction"] == "INBOUND_CALL")
        .unwrap_or_else(|| panic!("no inbound CDR: {list}"))
        .clone();
    let id = inbound["id"].as_str().unwrap();
    let cdr = admin.get(&format!("/api/cdrs/{id}")).json()["items"][0].clone();
    assert_eq!(
        (&cdr["callee"], &cdr["did_cid"], &cdr["direction"]),
        (&json!("702"), &json!(did), &json!("INBOUND_CALL")),
        "{cdr}"
    );
    assert_eq!(
        brief(&cdr),
        [json!([
            "702",
            "normal_call",
            "answered",
            "caller_disconnect"
        ])],
        "{cdr}"
    );
    let r = admin.request("DELETE", &sales, "application/json", "");
    assert_eq!(r.status, 409, "{}", r.body);

    // 5. Position announcements every 15 s: the caller (first in line)
    // hears the chime, then one pip ("caller number 1"), then the music.
    let r = admin.post_json(
        "/api/queues",
        &json!({"number": "703", "name": "Announced", "agents": ["102"],
                "announce_position": 15}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["announce_position"], 15);
    let mut caller = Caller::new(&demo);
    let mut call = caller.call("703");
    let heard = caller.listen(19.0);
    assert_eq!(caller.phone.bye(&mut call, "703"), 200);
    let tones = tones_of(&heard);
    let chime = tones
        .iter()
        .position(|t| *t == Some(950.0))
        .unwrap_or_else(|| panic!("no chime in {} frames", tones.len()));
    assert!(
        chime as f64 * 0.02 >= 14.0,
        "announced after 15 s, not at {chime}"
    );
    let after: Vec<Option<f64>> = tones[chime..].to_vec();
    let pips = after
        .windows(2)
        .take(100)
        .filter(|w| w[0] != Some(1400.0) && w[1] == Some(1400.0))
        .count();
    assert_eq!(pips, 1, "caller number 1: {after:?}");
    assert!(
        hears_music(&heard[(chime + 100) * 160..]),
        "then the music again"
    );
}

/// The tone of each 20 ms of `pcm` among the prompts' (music, chime,
/// pip), if one dominates.
fn tones_of(pcm: &[i16]) -> Vec<Option<f64>> {
    pcm.chunks_exact(160)
        .map(|f| dominant(f, &[523.0, 659.0, 784.0, 800.0, 950.0, 1400.0], 8_000, 0.6))
        .collect()
}

#[test]
fn queue_calls_on_sqlite() {
    if !sipp_available("queue_calls_on_sqlite") {
        return;
    }
    let dir = TempDir::new("queue-calls");
    queue_calls(dir.path(), &[]);
}

#[test]
fn queue_calls_on_postgres() {
    if !sipp_available("queue_calls_on_postgres") {
        return;
    }
    let Some(db) = PgDatabase::create("queue_calls") else {
        return;
    };
    let dir = TempDir::new("queue-calls-pg");
    queue_calls(dir.path(), &["--database", &db.url]);
}

// ----- callback -------------------------------------------------------------

/// 101 waits in a queue offering callback with nobody logged in, presses 1
/// (RFC 4733), hears goodbye and is hung up; 102 logs in: the PBX calls
/// 102 (SIPp), then 101, and bridges them. Both CDRs over REST, the
/// callback's webhook events.
fn queue_callback(dir: &Path, extra: &[&str]) {
    let config = media_config(dir);
    let demo = Demo::start(dir, &[&["--config", config.as_str()], extra].concat());
    let hooks = Hooks::subscribe(&demo);
    let admin = demo.admin();
    let r = admin.post_json(
        "/api/queues",
        &json!({"number": "704", "name": "Callback", "agents": ["102"],
                "callback_attempts": 2}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["callback_attempts"], 2);
    let queue = format!("/api/queues/{}", r.json()["id"].as_str().unwrap());
    let r = admin.request(
        "PATCH",
        &queue,
        "application/json",
        &json!({"callback_attempts": 9}).to_string(),
    );
    refused(&r, "callback_attempts");

    let mut caller = Caller::new(&demo);
    assert_eq!(caller.phone.register(), 200);
    let call = caller.call("704");
    let _ = caller.listen(1.5);
    caller.press('1');
    let bye = caller.phone.recv_request("BYE");
    caller.phone.reply(&bye, 200, "");
    let first = cdr_of_call(&demo, 1, &call.call_id);
    assert_eq!(
        (&first["call_status"], &first["end_reason"]),
        (&json!("answered"), &json!("CALLEE_DISCONNECTED")),
        "{first}"
    );
    assert_eq!(
        brief(&first),
        [json!([
            "704",
            "normal_call",
            "answered",
            "callee_disconnect"
        ])],
        "{first}"
    );
    let s = admin.get(&format!("{queue}/stats")).json();
    assert_eq!(
        (&s["waiting"], &s["callbacks_waiting"]),
        (&json!(1), &json!(1)),
        "the request waits: {s}"
    );

    // 102 logs in: called first, then 101.
    let agent = demo.phone("102", "uas.xml");
    let r = admin.post_json(&format!("{queue}/login"), &json!({"extension": "102"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let invite = caller.phone.recv_request("INVITE");
    assert!(
        invite
            .header(sip::HeaderName::From)
            .is_some_and(|f| f.contains("Callback")),
        "shown the queue's name: {}",
        invite.summary()
    );
    caller.phone.reply(&invite, 200, "back1");
    let _ack = caller.phone.recv_request("ACK");
    std::thread::sleep(Duration::from_millis(500));
    let mut back = common::phone::Outgoing {
        call_id: invite.call_id().unwrap().to_owned(),
        from_tag: "back1".into(),
        to_tag: invite.from().unwrap().tag().unwrap().to_owned(),
        remote_target: common::phone::contact_uri(&invite).unwrap(),
        cseq: 1,
        status: 200,
    };
    assert_eq!(caller.phone.bye(&mut back, "102"), 200);
    let (ok, log) = agent.finish();
    assert!(ok, "SIPp agent:\n{log}\n{}", demo.server.stderr());
    // The callback's call_id is its first INVITE's (to 102).
    let items = wait_for_cdrs(&admin, 2);
    let callback = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["call_id"] != call.call_id.as_str())
        .unwrap_or_else(|| panic!("no callback CDR: {items}"))
        .clone();
    let id = callback["id"].as_str().unwrap();
    let callback = admin.get(&format!("/api/cdrs/{id}")).json()["items"][0].clone();
    assert_eq!(
        (
            &callback["caller"],
            &callback["callee"],
            &callback["direction"],
            &callback["call_status"],
            &callback["end_reason"]
        ),
        (
            &json!("102"),
            &json!("101"),
            &json!("EXTENSION_CALL"),
            &json!("answered"),
            &json!("CALLEE_DISCONNECTED")
        ),
        "{callback}"
    );
    assert_eq!(
        brief(&callback),
        [
            json!(["102", "queue_callback", "answered", "callee_disconnect"]),
            json!(["101", "queue_callback", "answered", "callee_disconnect"]),
        ],
        "{callback}"
    );
    let events = hooks.of_session(callback["session_id"].as_str().unwrap());
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_answer",
            "cdr_target_add",
            "cdr_target_answer",
            "cdr_target_end",
            "cdr_target_end",
            "call_cdr"
        ],
        "{events:?}"
    );
    let s = admin.get(&format!("{queue}/stats")).json();
    assert_eq!(
        (
            &s["waiting"],
            &s["callbacks_waiting"],
            &s["callbacks_dropped"]
        ),
        (&json!(0), &json!(0), &json!(0)),
        "{s}"
    );
    agent_codes(&demo, &mut caller);
}

/// 101 logs in to queue 705 with `*45705` and out of every queue with
/// `*46`: the PBX answers, plays the confirmation (rising 1000 → 1300 Hz;
/// falling) and hangs up; the state is in the store (REST shows it).
fn agent_codes(demo: &Demo, caller: &mut Caller) {
    let admin = demo.admin();
    let t = admin.get("/api/tenant").json();
    assert_eq!(
        (&t["agent_login_code"], &t["agent_logout_code"]),
        (&json!("*45"), &json!("*46")),
        "{t}"
    );
    let r = admin.request(
        "PUT",
        "/api/tenant",
        "application/json",
        &json!({"agent_login_code": "45"}).to_string(),
    );
    refused(&r, "agent_login_code");
    let r = admin.post_json(
        "/api/queues",
        &json!({"number": "705", "name": "Codes", "agents": ["101", "102"]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let codes = format!("/api/queues/{}", r.json()["id"].as_str().unwrap());
    let logged_in = |want: Value| {
        let until = Instant::now() + common::WAIT;
        loop {
            let q = admin.get(&codes).json();
            if q["logged_in"] == want {
                return;
            }
            assert!(Instant::now() < until, "logged_in {want}: {q}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    for (n, (code, tones, state)) in [
        ("*45705", [1000.0, 1300.0], json!(["101"])),
        ("*46", [1300.0, 1000.0], json!([])),
    ]
    .into_iter()
    .enumerate()
    {
        let call = caller.call(code);
        let heard = caller.listen(0.5);
        let bye = caller.phone.recv_request("BYE");
        caller.phone.reply(&bye, 200, "");
        let order: Vec<f64> = heard
            .chunks_exact(800)
            .filter_map(|b| dominant(b, &[1000.0, 1300.0], 8_000, 0.6))
            .fold(Vec::new(), |mut v, f| {
                if v.last() != Some(&f) {
                    v.push(f);
                }
                v
            });
        assert_eq!(order, tones, "{code}: the confirmation");
        logged_in(state);
        let cdr = cdr_of_call(demo, 3 + n as u64, &call.call_id);
        assert_eq!(
            brief(&cdr),
            [json!([
                code,
                "normal_call",
                "answered",
                "callee_disconnect"
            ])],
            "{cdr}"
        );
    }
}

#[test]
fn queue_callback_and_agent_codes_on_sqlite() {
    if !sipp_available("queue_callback_and_agent_codes_on_sqlite") {
        return;
    }
    let dir = TempDir::new("queue-callback");
    queue_callback(dir.path(), &[]);
}

#[test]
fn queue_callback_and_agent_codes_on_postgres() {
    if !sipp_available("queue_callback_and_agent_codes_on_postgres") {
        return;
    }
    let Some(db) = PgDatabase::create("queue_callback") else {
        return;
    };
    let dir = TempDir::new("queue-callback-pg");
    queue_callback(dir.path(), &["--database", &db.url]);
}
