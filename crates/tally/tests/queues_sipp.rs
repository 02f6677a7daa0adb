//! IVRs and queues with SIPp as the caller (issue 14), its audio a pcap
//! the test writes (`common::pcap`: RTP with RFC 4733 digits, made with
//! the `media` crate) and SIPp plays (`play_pcap_audio`), on SQLite and,
//! when `TALLY_TEST_POSTGRES_URL` is set, PostgreSQL. Each flow reads the
//! CDR back over REST and the call's webhook events:
//!
//! 1. a carrier's call to a DID ringing IVR 500, the caller presses 2:
//!    queue 700, agent 102 (SIPp) answers;
//! 2. 101 calls the IVR, presses 9 (no such choice), then nothing: the
//!    timeout destination 103 answers;
//! 3. queue 701 with nobody logged in: after its 10 s max wait, the
//!    overflow 104 answers;
//! 4. 101 hangs up while queued (abandoned);
//! 5. 101 presses 1 in queue 704 (callback): the PBX hangs up; 105 logs
//!    in and is called first, then 101, both `queue_callback`.
//!
//! Each extension answers from one SIPp only (a SIPp gone leaves its
//! registration behind, which a later call would fork to).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::flows::{DEMO_DOMAIN, Demo, Hooks};
use common::pg::PgDatabase;
use common::{Sipp, TempDir, free_sip_port, sipp_available, wait_for_cdrs};
use serde_json::{Value, json};

fn media_config(dir: &Path) -> String {
    let slot = (std::process::id() % 300) as u16;
    let first = 50_000 + slot * 30 + 2;
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

/// `name` (under `tests/sipp/media/`) with its pcap: `keys` pressed over
/// `total_ms` of audio.
fn scenario(dir: &Path, name: &str, keys: &[(u32, char)], total_ms: u32) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pcap = dir.join(format!("caller-{n}.pcap"));
    common::pcap::digits(&pcap, keys, total_ms);
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/sipp/media")
        .join(name);
    let text = std::fs::read_to_string(src)
        .unwrap()
        .replace("PCAP_FILE", &pcap.display().to_string());
    let out = dir.join(format!("{n}-{name}"));
    std::fs::write(&out, text).unwrap();
    out.display().to_string()
}

/// 101 calls `to` with `scenario`, waiting `hold_ms` (`-d`) before its BYE.
fn call_from_101(demo: &Demo, scenario: &str, to: &str, hold_ms: u32) -> Sipp {
    Sipp::spawn(
        demo.server.sip,
        scenario,
        "u1",
        free_sip_port(),
        &[
            "-s",
            to,
            "-set",
            "caller",
            "101",
            "-au",
            "101",
            "-ap",
            &demo.password("101"),
            "-auth_uri",
            &format!("{to}@{DEMO_DOMAIN}"),
            "-d",
            &hold_ms.to_string(),
        ],
    )
}

fn done(sipp: Sipp, who: &str, demo: &Demo) {
    let (ok, log) = sipp.finish();
    assert!(ok, "SIPp {who}:\n{log}\n{}", demo.server.stderr());
}

/// The newest CDR whose callee is `callee`, once there are `n`, in full.
fn cdr(demo: &Demo, n: u64, callee: &str) -> Value {
    let admin = demo.admin();
    let until = Instant::now() + common::WAIT;
    loop {
        let list = wait_for_cdrs(&admin, n);
        if let Some(c) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["callee"] == callee)
        {
            let id = c["id"].as_str().unwrap();
            return admin.get(&format!("/api/cdrs/{id}")).json()["items"][0].clone();
        }
        assert!(Instant::now() < until, "no CDR to {callee}: {list}");
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

/// The call's webhook event types, in sequence order (all of them, once
/// its `call_cdr` arrived).
fn events(hooks: &Hooks, cdr: &Value) -> Vec<String> {
    let session = cdr["session_id"].as_str().unwrap();
    let until = Instant::now() + common::WAIT;
    loop {
        let mut events = hooks.of_session(session);
        events.sort_by_key(|e| e["sequence"].as_u64());
        let kinds: Vec<String> = events
            .iter()
            .map(|e| e["event_type"].as_str().unwrap_or_default().to_owned())
            .collect();
        if kinds.last().map(String::as_str) == Some("call_cdr") {
            return kinds;
        }
        assert!(Instant::now() < until, "no call_cdr event: {kinds:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn flows(dir: &Path, extra: &[&str]) {
    let config = media_config(dir);
    let demo = Demo::start(dir, &[&["--config", config.as_str()], extra].concat());
    let hooks = Hooks::subscribe(&demo);
    let admin = demo.admin();
    for body in [
        json!({"number": "700", "name": "Support", "agents": ["102"], "agent_timeout": 10}),
        json!({"number": "701", "name": "Night", "agents": ["102"], "max_wait": 10,
               "overflow": "104"}),
        json!({"number": "704", "name": "Callback", "agents": ["105"],
               "callback_attempts": 1}),
    ] {
        let r = admin.post_json("/api/queues", &body);
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let support = admin.get("/api/queues?top=10").json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = admin.post_json(
        &format!("/api/queues/{support}/login"),
        &json!({"extension": "102"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = admin.post_json(
        "/api/ivrs",
        &json!({"number": "500", "name": "Main", "menu": {"2": "700"}, "digit_timeout": 3,
                "retries": 1, "timeout_destination": "103"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);

    // 1. A carrier's call to the DID: the IVR (menu 1.8 s), 2 at 2.4 s,
    // queue 700, 102 answers; the caller hangs up at 6 s.
    let carrier_port = free_sip_port();
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
        &json!({"trunk_id": trunk, "did": did, "destination_type": "ivr",
                "destination": "500"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let agent = demo.phone("102", "uas.xml");
    let uac = scenario(dir, "carrier_pcap.xml", &[(2400, '2')], 3000);
    let carrier = Sipp::spawn(
        demo.server.sip,
        &uac,
        "u1",
        carrier_port,
        &["-s", did, "-d", "6000"],
    );
    done(carrier, "carrier", &demo);
    done(agent, "agent 102", &demo);
    let first = cdr(&demo, 1, "500");
    assert_eq!(
        (
            &first["direction"],
            &first["did_cid"],
            &first["call_status"]
        ),
        (&json!("INBOUND_CALL"), &json!(did), &json!("answered")),
        "{first}"
    );
    assert_eq!(
        brief(&first),
        [
            json!(["500", "normal_call", "answered", "referred"]),
            json!(["700", "normal_call", "answered", "referred"]),
            json!(["102", "queue_call", "answered", "caller_disconnect"]),
        ],
        "{first}"
    );
    assert_eq!(
        events(&hooks, &first),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_answer",
            "cdr_target_end",
            "call_update_info",
            "cdr_target_add",
            "cdr_target_answer",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_answer",
            "cdr_target_end",
            "cdr_target_end",
            "call_cdr",
        ]
    );

    // 2. 101 presses 9 at 2.4 s (no such choice: "invalid", the menu
    // again), then nothing: after the 3 s digit timeout, 103.
    let callee = demo.phone("103", "uas.xml");
    let uac = scenario(dir, "uac_pcap.xml", &[(2400, '9')], 3000);
    done(call_from_101(&demo, &uac, "500", 11_000), "101", &demo);
    done(callee, "103", &demo);
    let second = cdr(&demo, 2, "500");
    assert_eq!(
        brief(&second),
        [
            json!(["500", "normal_call", "answered", "referred"]),
            json!(["103", "normal_call", "answered", "caller_disconnect"]),
        ],
        "{second}"
    );
    // The 9 was heard: "invalid" (0.8 s) and the menu again (1.8 s) came
    // before the 3 s timeout, so the IVR held the call some 8 s (silence
    // alone: 4.8 s).
    let ivr_secs: u64 = second["call_targets"][0]["talk_duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ivr_secs >= 7,
        "the IVR held the call {ivr_secs} s: {second}"
    );
    assert_eq!(
        events(&hooks, &second),
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
            "call_cdr",
        ]
    );

    // 3. Queue 701, nobody logged in: after 10 s, the overflow 104.
    let overflow = demo.phone("104", "uas.xml");
    let uac = scenario(dir, "uac_pcap.xml", &[], 1000);
    done(call_from_101(&demo, &uac, "701", 12_500), "101", &demo);
    done(overflow, "104", &demo);
    let third = cdr(&demo, 3, "701");
    assert_eq!(
        brief(&third),
        [
            json!(["701", "normal_call", "answered", "referred"]),
            json!(["104", "normal_call", "answered", "caller_disconnect"]),
        ],
        "{third}"
    );
    let kinds = events(&hooks, &third);
    assert_eq!(
        (kinds.first().map(String::as_str), kinds.len()),
        (Some("call_start"), 10),
        "{kinds:?}"
    );

    // 4. 101 hangs up while queued in 701: abandoned.
    let uac = scenario(dir, "uac_pcap.xml", &[], 1000);
    done(call_from_101(&demo, &uac, "701", 2_000), "101", &demo);
    let items = wait_for_cdrs(&admin, 4);
    let id = items["items"][0]["id"].as_str().unwrap();
    let fourth = admin.get(&format!("/api/cdrs/{id}")).json()["items"][0].clone();
    assert_eq!(
        (&fourth["callee"], &fourth["call_status"]),
        (&json!("701"), &json!("answered")),
        "{fourth}"
    );
    assert_eq!(
        brief(&fourth),
        [json!([
            "701",
            "normal_call",
            "answered",
            "caller_disconnect"
        ])],
        "{fourth}"
    );
    assert_eq!(
        events(&hooks, &fourth),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_answer",
            "cdr_target_end",
            "call_cdr"
        ]
    );

    // 5. Callback: 101 (also registered, answered by SIPp) presses 1 in
    // 704 at 1.5 s; the PBX says goodbye and hangs up. 105 logs in: it
    // is called first (answers, hangs up after 1 s), then 101.
    let back = demo.phone("101", "uas.xml");
    let uac = scenario(dir, "uac_pcap_hung_up.xml", &[(1500, '1')], 2000);
    done(call_from_101(&demo, &uac, "704", 0), "101", &demo);
    let fifth = cdr(&demo, 5, "704");
    assert_eq!(
        brief(&fifth),
        [json!([
            "704",
            "normal_call",
            "answered",
            "callee_disconnect"
        ])],
        "{fifth}"
    );
    let agent = demo.phone("105", "uas_hangs_up.xml");
    let callback_queue = admin.get("/api/queues?top=10").json()["items"][2]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = admin.post_json(
        &format!("/api/queues/{callback_queue}/login"),
        &json!({"extension": "105"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    done(agent, "agent 105", &demo);
    done(back, "101 called back", &demo);
    let callback = cdr(&demo, 6, "101");
    assert_eq!(
        (&callback["caller"], &callback["direction"]),
        (&json!("105"), &json!("EXTENSION_CALL")),
        "{callback}"
    );
    assert_eq!(
        brief(&callback),
        [
            json!(["105", "queue_callback", "answered", "caller_disconnect"]),
            json!(["101", "queue_callback", "answered", "caller_disconnect"]),
        ],
        "{callback}"
    );
    assert_eq!(
        events(&hooks, &callback),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_answer",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_answer",
            "cdr_target_end",
            "cdr_target_end",
            "call_cdr",
        ]
    );
}

#[test]
fn ivr_and_queue_flows_with_sipp_callers_on_sqlite() {
    if !sipp_available("ivr_and_queue_flows_with_sipp_callers_on_sqlite") {
        return;
    }
    let dir = TempDir::new("queues-sipp");
    flows(dir.path(), &[]);
}

#[test]
fn ivr_and_queue_flows_with_sipp_callers_on_postgres() {
    if !sipp_available("ivr_and_queue_flows_with_sipp_callers_on_postgres") {
        return;
    }
    let Some(db) = PgDatabase::create("queues_sipp") else {
        return;
    };
    let dir = TempDir::new("queues-sipp-pg");
    flows(dir.path(), &["--database", &db.url]);
}
