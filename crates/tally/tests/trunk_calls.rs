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
    provision(&demo, carrier_port);

    // Out: 101 dials a national number; the carrier answers.
    let carrier = Sipp::spawn(demo.server.sip, "uas.xml", "u1", carrier_port, &[]);
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
