//! Calls through trunks end to end (issue 10, step 4): a SIPp "carrier"
//! on a loopback port, provisioned over REST as an `ip` trunk (its live
//! task and the engine take it without a restart), receives an outbound
//! call from a SIPp extension, then sends a call to a DID that rings a
//! SIPp extension; both CDRs are read back over REST with their
//! direction, DID and trunk. On SQLite, and on PostgreSQL when
//! `TALLY_TEST_POSTGRES_URL` is set.

mod common;

use std::path::Path;

use common::flows::Demo;
use common::pg::PgDatabase;
use common::{Sipp, TempDir, free_sip_port, sipp_available, wait_for_cdrs};
use serde_json::{Value, json};

const DID: &str = "+33123456789";

/// Provisions the carrier (trunk, DID rule to 102, outbound rule for
/// national numbers) over REST; returns nothing the flow needs but the
/// port the carrier uses.
fn provision(demo: &Demo, carrier_port: u16) {
    let admin = demo.admin();
    let r = admin.post_json(
        "/api/trunks",
        &json!({
            "name": "sipp-carrier",
            "kind": "ip",
            "host": "127.0.0.1",
            "port": carrier_port,
            "transport": "udp",
            "source_addresses": ["127.0.0.1"],
            "source_port": carrier_port,
            "country_code": "33",
        }),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let trunk = r.json()["id"].as_str().unwrap().to_owned();
    let r = admin.post_json(
        "/api/inbound_rules",
        &json!({"trunk_id": trunk, "did": DID, "destination": "102"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = admin.post_json(
        "/api/outbound_rules",
        &json!({"name": "national", "pattern": "0ZXXXXXXXX", "strip_digits": 1,
                "prepend": "+33", "trunks": [trunk], "caller_id": "+33100000101"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

fn cdr_with(cdrs: &Value, direction: &str) -> Value {
    cdrs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["direction"] == direction)
        .unwrap_or_else(|| panic!("no {direction} CDR in {cdrs}"))
        .clone()
}

fn out_and_in(dir: &Path, extra: &[&str]) {
    let demo = Demo::start(dir, extra);
    let carrier_port = free_sip_port();
    // The carrier is up before the trunk exists: the trunk's first OPTIONS
    // keep-alive (sent at once) is answered (`carrier_uas.xml`: a SIPp
    // "call" of its own, hence `-m 2` with the INVITE) and never
    // retransmitted into the call; the next probe is 30 s away.
    let carrier = Sipp::spawn(
        demo.server.sip,
        "carrier_uas.xml",
        "u1",
        carrier_port,
        &["-m", "2"],
    );
    provision(&demo, carrier_port);

    // Out: 101 dials a national number; the carrier answers.
    demo.call("uac.xml", "101", "0612345678");
    let (ok, log) = carrier.finish();
    assert!(ok, "carrier:\n{log}\n{}", demo.server.stderr());
    assert!(
        log.contains("INVITE sip:+33612345678@127.0.0.1:"),
        "the rewritten number at the trunk's host:\n{log}"
    );
    assert!(
        log.contains("+33100000101@127.0.0.1"),
        "the caller ID:\n{log}"
    );

    // In: the carrier calls the DID; 102 answers.
    let phone = demo.phone("102", "uas.xml");
    let (ok, log) = Sipp::spawn(
        demo.server.sip,
        "carrier_uac.xml",
        "u1",
        carrier_port,
        &["-s", DID],
    )
    .finish();
    assert!(ok, "carrier call:\n{log}\n{}", demo.server.stderr());
    let (ok, log) = phone.finish();
    assert!(ok, "102:\n{log}");

    let admin = demo.admin();
    let cdrs = wait_for_cdrs(&admin, 2);
    let out = cdr_with(&cdrs, "OUTBOUND_CALL");
    assert_eq!(out["caller"], "101", "{out}");
    assert_eq!(out["callee"], "+33612345678", "{out}");
    assert_eq!(out["call_status"], "answered", "{out}");
    assert_eq!(out["trunk"], "sipp-carrier", "{out}");
    assert_eq!(out["did_cid"], "", "{out}");
    let inbound = cdr_with(&cdrs, "INBOUND_CALL");
    assert_eq!(inbound["caller"], "+33612345678", "{inbound}");
    assert_eq!(inbound["callee"], "102", "{inbound}");
    assert_eq!(inbound["call_status"], "answered", "{inbound}");
    assert_eq!(inbound["did_cid"], DID, "{inbound}");
    assert_eq!(inbound["trunk"], "sipp-carrier", "{inbound}");
    let (status, _) = demo.server.terminate();
    assert!(status.success());
}

#[test]
fn sipp_carrier_takes_an_outbound_call_and_delivers_a_did() {
    if !sipp_available("sipp_carrier_takes_an_outbound_call_and_delivers_a_did") {
        return;
    }
    let dir = TempDir::new("trunk-calls");
    out_and_in(dir.path(), &[]);
}

#[test]
fn on_postgres_sipp_carrier_takes_an_outbound_call_and_delivers_a_did() {
    let test = "on_postgres_sipp_carrier_takes_an_outbound_call_and_delivers_a_did";
    if !sipp_available(test) {
        return;
    }
    let Some(db) = PgDatabase::create(test) else {
        return;
    };
    let dir = TempDir::new("trunk-calls-pg");
    out_and_in(dir.path(), &["--database", &db.url]);
}

/// A trunk whose registration fails is down: outbound routing skips it
/// without an INVITE and the next trunk of the rule takes the call. The
/// "carriers" are the test's own UDP sockets: the first refuses every
/// REGISTER (403) and would refuse an INVITE (503, which fails over, so a
/// regression shows as an INVITE it saw); the second answers 486.
#[test]
fn a_trunk_whose_registration_failed_is_skipped_by_outbound_routing() {
    use std::net::UdpSocket;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let dir = TempDir::new("trunk-down");
    let server = common::Server::start(dir.path(), &[]);
    let mut admin = server.admin();
    let tenant = admin.create_tenant("Down", "down.example");
    admin.create_user(&tenant, "101", "sip-secret-101");
    admin.tenant = Some(tenant);

    // Each carrier answers what it gets, for at most 20 s. The register
    // trunk's carrier is on 127.0.0.2: a register trunk claims every
    // source its host resolves to, and the phone calls from 127.0.0.1.
    let carrier = |ip: &str, invite_status: u16, register_status: u16| {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(20);
            let mut buf = vec![0u8; 65_535];
            while Instant::now() < end {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(m) = sip::Message::parse(buf[..n].to_vec()) else {
                    continue;
                };
                let Some(method) = m.method().map(|m| m.as_str().to_owned()) else {
                    continue;
                };
                log.lock().unwrap().push(method.clone());
                let code = match method.as_str() {
                    "INVITE" => invite_status,
                    "REGISTER" => register_status,
                    "ACK" => continue,
                    _ => 200,
                };
                let r = sip::ResponseBuilder::reply(&m, code)
                    .to_tag("carrier")
                    .build()
                    .unwrap();
                let _ = socket.send_to(r.as_bytes(), from);
            }
        });
        (port, seen)
    };
    let (bad_port, bad_seen) = carrier("127.0.0.2", 503, 403);
    let (good_port, good_seen) = carrier("127.0.0.1", 486, 200);
    let trunk = |body: Value| {
        let r = admin.post_json("/api/trunks", &body);
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["id"].as_str().unwrap().to_owned()
    };
    let bad = trunk(json!({"name": "refuses-register", "kind": "register",
        "host": "127.0.0.2", "port": bad_port, "username": "acct", "password": "pw"}));
    let good = trunk(
        json!({"name": "ip-carrier", "kind": "ip", "host": "127.0.0.1",
        "port": good_port, "source_addresses": ["127.0.0.1"], "source_port": good_port}),
    );
    let r = admin.post_json(
        "/api/outbound_rules",
        &json!({"name": "all", "pattern": "0.", "trunks": [bad, good]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);

    // The registration fails at once (403): the trunk is down.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = admin.get(&format!("/api/trunks/{bad}")).json();
        if state["status"]["registration"]["registration"] == "failed" {
            break;
        }
        assert!(Instant::now() < deadline, "never failed: {state}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The engine hears of it through the shard, right after.
    std::thread::sleep(Duration::from_millis(200));
    let phone = common::Phone::new("101", "sip-secret-101", "down.example", server.sip);
    let call = phone.invite("0612345678", |_| {});
    assert_eq!(call.status, 486, "the second trunk answered");
    assert!(
        !bad_seen.lock().unwrap().iter().any(|m| m == "INVITE"),
        "the trunk down got an INVITE: {:?}",
        bad_seen.lock().unwrap()
    );
    assert!(good_seen.lock().unwrap().iter().any(|m| m == "INVITE"));
}
