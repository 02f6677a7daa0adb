//! IVRs and prompts against the real binary (issue 14), on SQLite and,
//! when `TALLY_TEST_POSTGRES_URL` is set, PostgreSQL.
//!
//! - REST: prompt uploads (8 and 16 kHz accepted; not a WAV, stereo,
//!   another rate, too long refused naming `body`; a name used twice
//!   409), IVR CRUD with defaults, validation naming the field, one
//!   extension space with users and ring groups, another tenant's prompt
//!   or number refused, a prompt an IVR plays not deletable, tenant
//!   isolation.
//! - Calls: the caller is the test's own UDP phone (it must hear the
//!   prompts: it records what the relay sends and looks for each prompt's
//!   tone, and it sends RFC 4733 telephone-events built with the `media`
//!   crate); the agent 102 is SIPp (`uas.xml`). A call to IVR 500 hears
//!   the menu (600 Hz), presses 1 and is handed to 102 (the IVR target
//!   `referred`, 102 answered); a call to IVR 501 presses 7, hears
//!   "invalid" (1100 Hz), chooses nothing and is hung up by the PBX
//!   (`callee_disconnect`). Each CDR is read over REST and its webhook
//!   events checked in order.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::flows::{Demo, Hooks};
use common::pg::PgDatabase;
use common::rtp_caller::Caller;
use common::{Http, Server, TempDir, sipp_available, wait_for_cdrs};
use media::tone::dominant;
use serde_json::{Value, json};

// ----- REST -----------------------------------------------------------------

fn wav(rate: u32, channels: u16, secs: f64) -> Vec<u8> {
    let n = (f64::from(rate) * secs) as usize * usize::from(channels);
    let mut w =
        media::wav::WavWriter::new(std::io::Cursor::new(Vec::new()), channels, rate).unwrap();
    w.write_samples(&vec![1000i16; n]).unwrap();
    w.finish().unwrap().into_inner()
}

fn upload(http: &Http, name: &str, body: &[u8]) -> common::http::Response {
    http.request_bytes(
        "POST",
        &format!("/api/prompts?name={name}"),
        "audio/wav",
        body,
    )
}

fn refused(r: &common::http::Response, field: &str) {
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_code(), "VALIDATE_FAILED", "{}", r.body);
    assert_eq!(r.error_field(), field, "{}", r.body);
}

fn provisioning(server: &Server) {
    let mut admin = server.admin();
    let tenant = admin.create_tenant("Ivrs", "ivr.example.com");
    let other = admin.create_tenant("Other", "other.ivr.example.com");
    for ext in ["101", "102"] {
        admin.create_user(&tenant, ext, &format!("sip-secret-{ext}"));
    }
    admin.create_user(&other, "201", "sip-secret-201");
    let mut other_admin = server.admin();
    other_admin.tenant = Some(other.clone());
    let foreign = upload(&other_admin, "theirs", &wav(8000, 1, 0.5));
    assert_eq!(foreign.status, 201, "{}", foreign.body);
    let foreign = foreign.json()["id"].as_str().unwrap().to_owned();
    admin.tenant = Some(tenant.clone());

    // Prompts: 8 and 16 kHz mono PCM16; durations from the samples.
    let hello = upload(&admin, "hello", &wav(8000, 1, 1.5));
    assert_eq!(hello.status, 201, "{}", hello.body);
    let hello = hello.json();
    assert_eq!(hello["duration_ms"], 1500, "{hello}");
    assert_eq!(hello["tenant_id"], tenant.as_str());
    let wide = upload(&admin, "wide", &wav(16000, 1, 1.0));
    assert_eq!(wide.status, 201, "{}", wide.body);
    assert_eq!(wide.json()["duration_ms"], 1000);
    // Bad uploads name the body and say what is wrong; nothing is written.
    let r = upload(&admin, "mp3", b"ID3\x03\x00 not a wav at all");
    refused(&r, "body");
    assert!(r.body.contains("not a WAV"), "{}", r.body);
    let r = upload(&admin, "stereo", &wav(8000, 2, 0.5));
    refused(&r, "body");
    assert!(r.body.contains("mono"), "{}", r.body);
    let r = upload(&admin, "cd", &wav(44100, 1, 0.2));
    refused(&r, "body");
    assert!(r.body.contains("8000 or 16000"), "{}", r.body);
    let r = upload(&admin, "long", &wav(8000, 1, 121.0));
    refused(&r, "body");
    assert!(r.body.contains("120 s"), "{}", r.body);
    refused(
        &admin.request_bytes("POST", "/api/prompts", "audio/wav", &wav(8000, 1, 0.5)),
        "name",
    );
    let r = upload(&admin, "hello", &wav(8000, 1, 0.5));
    assert_eq!(r.status, 409, "{}", r.body);
    let list = admin.get("/api/prompts").json();
    assert_eq!(list["count"], 2, "{list}");

    // IVRs: created with the defaults.
    let hello_id = hello["id"].as_str().unwrap();
    let r = admin.post_json(
        "/api/ivrs",
        &json!({"number": "500", "name": "Main", "greeting_prompt_id": hello_id,
                "menu": {"1": "102", "9": "hangup"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let main = r.json();
    assert_eq!(main["digit_timeout"], 5);
    assert_eq!(main["retries"], 2);
    assert_eq!(main["dial_by_extension"], false);
    assert_eq!(main["timeout_destination"], Value::Null);
    assert_eq!(main["menu"], json!({"1": "102", "9": "hangup"}));
    let one = format!("/api/ivrs/{}", main["id"].as_str().unwrap());
    // Field by field.
    let bad = |body: Value, field: &str| {
        let r = admin.post_json("/api/ivrs", &body);
        refused(&r, field);
    };
    bad(json!({"number": "5x0", "name": "A"}), "number");
    bad(json!({"number": "510", "name": ""}), "name");
    bad(
        json!({"number": "510", "name": "A", "menu": {"12": "102"}}),
        "menu",
    );
    bad(
        json!({"number": "510", "name": "A", "menu": {"1": "nobody"}}),
        "menu",
    );
    bad(
        json!({"number": "510", "name": "A", "menu": {"1": "510"}}),
        "menu",
    );
    bad(
        json!({"number": "510", "name": "A", "menu": {"1": "999"}}),
        "menu",
    );
    bad(
        json!({"number": "510", "name": "A", "menu": {"1": "201"}}),
        "menu",
    );
    bad(
        json!({"number": "510", "name": "A", "timeout_destination": "999"}),
        "timeout_destination",
    );
    bad(
        json!({"number": "510", "name": "A", "digit_timeout": 0}),
        "digit_timeout",
    );
    bad(
        json!({"number": "510", "name": "A", "retries": 9}),
        "retries",
    );
    bad(
        json!({"number": "510", "name": "A", "greeting_prompt_id": foreign}),
        "greeting_prompt_id",
    );
    // One extension space: users, ring groups and IVRs.
    let r = admin.post_json("/api/ivrs", &json!({"number": "101", "name": "Clash"}));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "ALREADY_EXISTS"),
        "{}",
        r.body
    );
    let r = admin.post_json("/api/ivrs", &json!({"number": "500", "name": "Twice"}));
    assert_eq!(r.status, 409, "{}", r.body);
    let r = admin.post_json(
        &format!("/api/tenants/{tenant}/users"),
        &json!({"extension": "500", "sip_password": "sip-secret-500"}),
    );
    assert_eq!(
        r.status, 409,
        "a user cannot take an IVR's number: {}",
        r.body
    );
    let r = admin.post_json(
        "/api/ring_groups",
        &json!({"number": "500", "name": "G", "members": ["101"]}),
    );
    assert_eq!(
        r.status, 409,
        "a group cannot take an IVR's number: {}",
        r.body
    );
    // An IVR may lead to another IVR.
    let r = admin.post_json(
        "/api/ivrs",
        &json!({"number": "501", "name": "Sub", "menu": {"0": "500"}, "timeout_destination": "hangup",
                "dial_by_extension": true, "digit_timeout": 2, "retries": 0}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // PATCH changes what it names; PUT resets the rest.
    let r = admin.request(
        "PATCH",
        &one,
        "application/json",
        &json!({"retries": 1}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.json()["retries"].clone(), r.json()["menu"]["1"].clone()),
        (json!(1), json!("102"))
    );
    let r = admin.request(
        "PUT",
        &one,
        "application/json",
        &json!({"number": "500", "name": "Main"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["menu"], json!({}), "{}", r.body);
    assert_eq!(r.json()["greeting_prompt_id"], Value::Null, "{}", r.body);
    // A played prompt cannot go; once nobody plays it, it can.
    let r = admin.request(
        "PATCH",
        &one,
        "application/json",
        &json!({"greeting_prompt_id": hello_id}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let prompt = format!("/api/prompts/{hello_id}");
    let r = admin.request("DELETE", &prompt, "application/json", "");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "IN_USE"),
        "{}",
        r.body
    );
    // Another tenant sees none of it.
    assert_eq!(other_admin.get(&one).status, 404);
    assert_eq!(other_admin.get(&prompt).status, 404);
    assert_eq!(other_admin.get("/api/ivrs").json()["count"], 0);
    assert_eq!(admin.get("/api/ivrs").json()["count"], 2);
    let r = admin.request("DELETE", &one, "application/json", "");
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(admin.get(&one).status, 404);
    let r = admin.request("DELETE", &prompt, "application/json", "");
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(admin.get(&prompt).status, 404);
}

#[test]
fn prompts_and_ivrs_over_rest_on_sqlite() {
    let dir = TempDir::new("ivr-rest");
    let server = Server::start(dir.path(), &[]);
    provisioning(&server);
}

#[test]
fn prompts_and_ivrs_over_rest_on_postgres() {
    let Some(db) = PgDatabase::create("ivr_rest") else {
        return;
    };
    let dir = TempDir::new("ivr-rest-pg");
    let server = Server::start(dir.path(), &["--database", &db.url]);
    provisioning(&server);
}

// ----- calls ----------------------------------------------------------------

const MENU_HZ: f64 = 600.0;
const INVALID_HZ: f64 = 1100.0;
const RINGBACK_HZ: f64 = 425.0;
/// The tenant's own greeting (an upload).
const GREETING_HZ: f64 = 1000.0;
const DID: &str = "+33198765432";

/// A relay port range of this test's own (50000–59999) and a long RTP
/// timeout (the test's phone is silent).
fn media_config(dir: &Path) -> String {
    let slot = (std::process::id() % 300) as u16;
    let first = 50_000 + slot * 30;
    let path = dir.join("media.toml");
    std::fs::write(
        &path,
        format!(
            "[media]\nrtp_ports = \"{first}-{}\"\nanchor = \"auto\"\nrtp_timeout_secs = 60\n\n\
             [webhooks]\nallow = [\"127.0.0.1/32\"]\n",
            first + 29
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Whether some 100 ms of `pcm` is clearly `hz`.
fn hears(pcm: &[i16], hz: f64) -> bool {
    pcm.chunks_exact(800).any(|b| {
        dominant(
            b,
            &[RINGBACK_HZ, 500.0, MENU_HZ, 800.0, GREETING_HZ, INVALID_HZ],
            8_000,
            0.6,
        ) == Some(hz)
    })
}

fn create_ivr(demo: &Demo, body: Value) {
    let r = demo.admin().post_json("/api/ivrs", &body);
    assert_eq!(r.status, 201, "{}", r.body);
}

/// The `n`th CDR (1-based, newest first in the list) once there are `n`.
fn nth_cdr(demo: &Demo, n: u64, callee: &str) -> Value {
    let admin = demo.admin();
    let list = wait_for_cdrs(&admin, n);
    let item = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["callee"] == callee)
        .unwrap_or_else(|| panic!("no CDR to {callee}: {list}"))
        .clone();
    let id = item["id"].as_str().unwrap();
    admin.get(&format!("/api/cdrs/{id}")).json()["items"][0].clone()
}

fn brief(cdr: &Value) -> Vec<Value> {
    cdr["call_targets"]
        .as_array()
        .unwrap_or_else(|| panic!("no targets: {cdr}"))
        .iter()
        .map(|t| json!([t["callee"], t["call_type"], t["status"], t["end_reason"]]))
        .collect()
}

/// Every webhook event of `session`, once none is missing (they may
/// arrive out of order: the `call_cdr` is not the last to arrive).
fn session_events(hooks: &Hooks, session: &str) -> Vec<Value> {
    let until = Instant::now() + common::WAIT;
    loop {
        let events = hooks.of_session(session);
        let seq = |e: &Value| e["sequence"].as_u64().unwrap_or(0);
        let span = events.last().map_or(0, seq) + 1 - events.first().map_or(1, seq);
        if events.len() as u64 == span || Instant::now() > until {
            return events;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn ivr_calls(dir: &Path, extra: &[&str]) {
    let config = media_config(dir);
    let demo = Demo::start(dir, &[&["--config", config.as_str()], extra].concat());
    let hooks = Hooks::subscribe(&demo);
    create_ivr(
        &demo,
        json!({"number": "500", "name": "Main", "menu": {"1": "102", "9": "hangup"}}),
    );
    create_ivr(
        &demo,
        json!({"number": "501", "name": "Sub", "menu": {"1": "102"}, "digit_timeout": 1,
               "retries": 0, "timeout_destination": "hangup"}),
    );

    // 1. The menu, 1, the agent answers, the caller hangs up.
    let agent = demo.phone("102", "uas.xml");
    let mut caller = Caller::new(&demo);
    let mut call = caller.call("500");
    let heard = caller.listen(1.0);
    assert!(
        hears(&heard, MENU_HZ),
        "the caller hears the menu ({} samples)",
        heard.len()
    );
    caller.press('1');
    // Ringback while 102 rings and answers (SIPp answers at once).
    let _ = caller.listen(1.0);
    assert_eq!(caller.phone.bye(&mut call, "500"), 200);
    let (ok, log) = agent.finish();
    assert!(ok, "SIPp uas.xml:\n{log}\n{}", demo.server.stderr());
    let cdr = nth_cdr(&demo, 1, "500");
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert_eq!(cdr["end_reason"], "CALLER_DISCONNECTED", "{cdr}");
    assert_eq!(
        brief(&cdr),
        [
            json!(["500", "normal_call", "answered", "referred"]),
            json!(["102", "normal_call", "answered", "caller_disconnect"]),
        ],
        "{cdr}"
    );
    let t = &cdr["call_targets"][0];
    assert_eq!(
        t["ring_time"], t["answered_time"],
        "the IVR rang at its answer: {cdr}"
    );
    let events = session_events(&hooks, cdr["session_id"].as_str().unwrap());
    assert_eq!(
        kinds(&events),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_answer",
            "cdr_target_end",
            "call_update_info",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_answer",
            "cdr_target_end",
            "call_cdr"
        ],
        "{events:?}"
    );

    // 2. An invalid choice, then nothing: "invalid", goodbye, the PBX
    // hangs up.
    let mut caller = Caller::new(&demo);
    let _call = caller.call("501");
    caller.press('7');
    let heard = caller.listen(1.5);
    assert!(hears(&heard, INVALID_HZ), "the caller hears \"invalid\"");
    let bye = caller.phone.recv_request("BYE");
    caller.phone.reply(&bye, 200, "");
    let cdr = nth_cdr(&demo, 2, "501");
    assert_eq!(cdr["end_reason"], "CALLEE_DISCONNECTED", "{cdr}");
    assert_eq!(
        brief(&cdr),
        [json!([
            "501",
            "normal_call",
            "answered",
            "callee_disconnect"
        ])],
        "{cdr}"
    );
    let events = session_events(&hooks, cdr["session_id"].as_str().unwrap());
    assert_eq!(
        kinds(&events),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_answer",
            "cdr_target_end",
            "call_cdr"
        ],
        "{events:?}"
    );

    // 3. The tenant's own greeting (a 16 kHz upload) is what the caller
    // hears; the caller hangs up in the menu.
    let mut pcm = vec![0i16; 16_000];
    media::tone::Tone::sine(GREETING_HZ, 0.4, 16_000).fill(&mut pcm);
    let mut w = media::wav::WavWriter::new(std::io::Cursor::new(Vec::new()), 1, 16_000).unwrap();
    w.write_samples(&pcm).unwrap();
    let r = upload(&demo.admin(), "welcome", &w.finish().unwrap().into_inner());
    assert_eq!(r.status, 201, "{}", r.body);
    let prompt = r.json()["id"].as_str().unwrap().to_owned();
    create_ivr(
        &demo,
        json!({"number": "502", "name": "Welcome", "greeting_prompt_id": prompt}),
    );
    let mut caller = Caller::new(&demo);
    let mut call = caller.call("502");
    let heard = caller.listen(0.8);
    assert!(
        hears(&heard, GREETING_HZ),
        "the caller hears the tenant's greeting"
    );
    assert!(!hears(&heard, MENU_HZ), "not the built-in menu");
    assert_eq!(caller.phone.bye(&mut call, "502"), 200);
    let cdr = nth_cdr(&demo, 3, "502");
    assert_eq!(
        brief(&cdr),
        [json!([
            "502",
            "normal_call",
            "answered",
            "caller_disconnect"
        ])],
        "{cdr}"
    );

    // 4. A DID rule rings the IVR: a carrier's call is answered at once.
    let carrier_port = common::free_sip_port();
    let admin = demo.admin();
    let r = admin.post_json(
        "/api/trunks",
        &json!({"name": "carrier", "kind": "ip", "host": "127.0.0.1", "port": carrier_port,
                "transport": "udp", "source_addresses": ["127.0.0.1"],
                "source_port": carrier_port, "country_code": "33"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let trunk = r.json()["id"].as_str().unwrap().to_owned();
    let r = admin.post_json(
        "/api/inbound_rules",
        &json!({"trunk_id": trunk, "did": DID, "destination_type": "ivr", "destination": "500"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = admin.post_json(
        "/api/inbound_rules",
        &json!({"trunk_id": trunk, "did": "+33100000000", "destination_type": "ivr",
                "destination": "102"}),
    );
    assert_eq!(r.status, 400, "102 is no IVR: {}", r.body);
    let (ok, log) = common::Sipp::spawn(
        demo.server.sip,
        "carrier_uac.xml",
        "u1",
        carrier_port,
        &["-s", DID],
    )
    .finish();
    assert!(ok, "carrier call:\n{log}\n{}", demo.server.stderr());
    let list = wait_for_cdrs(&admin, 4);
    let id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["direction"] == "INBOUND_CALL")
        .unwrap_or_else(|| panic!("no inbound CDR: {list}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cdr = admin.get(&format!("/api/cdrs/{id}")).json()["items"][0].clone();
    assert_eq!(cdr["callee"], "500", "{cdr}");
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert_eq!(
        brief(&cdr),
        [json!([
            "500",
            "normal_call",
            "answered",
            "caller_disconnect"
        ])],
        "{cdr}"
    );
    // The DID rule keeps the IVR from being deleted.
    let ivrs = admin.get("/api/ivrs").json();
    let main = ivrs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["number"] == "500")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = admin.request(
        "DELETE",
        &format!("/api/ivrs/{main}"),
        "application/json",
        "",
    );
    assert_eq!(r.status, 409, "{}", r.body);
}

#[test]
fn ivr_calls_on_sqlite() {
    if !sipp_available("ivr_calls_on_sqlite") {
        return;
    }
    let dir = TempDir::new("ivr-calls");
    ivr_calls(dir.path(), &[]);
}

#[test]
fn ivr_calls_on_postgres() {
    if !sipp_available("ivr_calls_on_postgres") {
        return;
    }
    let Some(db) = PgDatabase::create("ivr_calls") else {
        return;
    };
    let dir = TempDir::new("ivr-calls-pg");
    ivr_calls(dir.path(), &["--database", &db.url]);
}
