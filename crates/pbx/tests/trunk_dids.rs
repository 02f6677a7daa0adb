//! DIDs whose rule names an outside number (issue 10: "a DID routed to an
//! external number becomes `in2out`"), on the virtual-clock bench with
//! the exact `call_cdr`: carrier B's call to such a DID leaves again by
//! the outbound rules through carrier A; the call-level `trunk_name` is
//! the trunk it came in by (SPEC §2: the first trunk leg), its target's
//! the one it left by. A number no outbound rule takes is `404`, and a
//! tenant at its outbound limit refuses it, neither with a trunk leg.
//!
//! Fixture: `trunk_fixture` (carriers A and B, rule `national`), plus a
//! DID `+33987654321` on carrier B whose rule sends it to `0698765432`.

#![recursion_limit = "256"]

mod common;
mod trunk_fixture;

use cdr::Id;
use common::*;
use pbx::Input;
use pbx::trunk::{DidMatch, InboundDestination, InboundRule, TrunkId, Trunks};
use serde_json::json;
use sip::Method;
use trunk_fixture::*;

const OUT_DID: &str = "+33987654321";

/// The fixture with carrier B's DID to `outside` added.
fn with_outside_did(bench: &mut Bench, outside: &str, max_outbound: Option<u32>) {
    let mut table: Trunks = trunks(|_, policy| policy.max_outbound_calls = max_outbound);
    let b = table.all().find(|t| t.name == "carrier-b").unwrap().clone();
    let a = table.all().find(|t| t.name == "carrier-a").unwrap().clone();
    let mut inbound: Vec<InboundRule> = table.inbound_rules(a.id).to_vec();
    inbound.push(InboundRule {
        id: Id::from_u64(12),
        trunk_id: b.id,
        did: pbx::routing::normalise(OUT_DID, "33"),
        matching: DidMatch::Exact,
        destination: InboundDestination::External(outside.into()),
    });
    let outbound = table.outbound_rules(tenant_id()).to_vec();
    let policy = table.outbound_policy(tenant_id()).cloned().unwrap();
    table.replace_tenant(tenant_id(), vec![a, b], inbound, outbound);
    table.set_outbound_policy(tenant_id(), policy);
    bench.input(Input::ReplaceTrunks(Box::new(table)));
}

/// Carrier B's side of a call to `did`.
fn carrier_b_call(did: &str) -> Call {
    let mut call = carrier_call(EXTERNAL, did);
    call.call_id = "b84b4c76e66710@192.0.2.80".into();
    call.local = format!("<sip:{EXTERNAL}@192.0.2.80>;tag=c4b");
    call
}

/// Carrier B calls the DID at T0; it leaves by carrier A, which rings at
/// +210 and answers at +5870; carrier B hangs up at +31999.
#[test]
fn a_did_to_an_outside_number_leaves_by_the_outbound_rules_in2out() {
    let mut cast = Cast::new();
    let Cast { bench, .. } = &mut cast;
    with_outside_did(bench, "0698765432", None);
    let mut caller = carrier(CARRIER_B);
    let mut out = carrier(CARRIER_A);
    let mut c_call = carrier_b_call(OUT_DID);
    bench.at(0);
    bench.send(caller.peer, &caller.invite(&mut c_call, None));
    let to_out = bench.take_one(out.peer);
    assert_eq!(
        to_out.request_uri_str(),
        Some("sip:+33698765432@198.51.100.50")
    );
    // No caller ID configured anywhere: the trunk account.
    assert_eq!(
        to_out.from().unwrap().uri.to_string(),
        "sip:acct77@sip.carrier.example"
    );
    let o_call = out.incoming(&to_out);
    bench.at(210);
    bench.send(out.peer, &out.respond(&o_call, &to_out, 180, None));
    assert_eq!(bench.take_one(caller.peer).status(), Some(180));
    bench.at(5870);
    bench.send(out.peer, &out.respond(&o_call, &to_out, 200, Some(SDP_A)));
    let ok = bench.take_one(caller.peer);
    bench.at(5900);
    bench.send(caller.peer, &caller.ack(&mut c_call, &ok, None));
    assert!(is(&bench.take_one(out.peer), Method::Ack));
    // Counted on both trunks, and as one outbound call of the tenant.
    assert_eq!(bench.engine.trunk_calls().of(TrunkId(Id::from_u64(1))), 1);
    assert_eq!(bench.engine.trunk_calls().of(TrunkId(Id::from_u64(2))), 1);
    assert_eq!(bench.engine.trunk_calls().outbound(tenant_id()), 1);
    bench.at(31_999);
    bench.send(caller.peer, &caller.request(&mut c_call, "BYE", None));
    assert_eq!(bench.take_one(caller.peer).status(), Some(200));
    let bye = bench.take_one(out.peer);
    bench.send(out.peer, &out.respond(&o_call, &bye, 200, None));

    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": "b84b4c76e66710@192.0.2.80",
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "in2out",
            "caller": EXTERNAL,
            "caller_display_name": "",
            "caller_domain": "192.0.2.80",
            // No destination inside the PBX: the number after rewriting,
            // as for an `out` call.
            "callee": "+33698765432",
            "callee_display_name": "",
            "callee_domain": "acme.example",
            "did": OUT_DID,
            "did_cid": OUT_DID,
            "outbound_caller_id": "",
            // The trunk the call came in by; the target has the other.
            "trunk_name": "carrier-b",
            "start_time": "1795874587",
            "ring_time": "1795874587",
            "answered_time": "1795874592",
            "ended_time": "1795874619",
            "ring_duration": "5",
            "talk_duration": 27,
            "call_status": "answered",
            "status_code": "0",
            "ended_reason": "caller_disconnect",
            "end_reason": "caller_disconnect",
            "user_data": "",
            "call_targets": [{
                "id": FIRST_TARGET,
                "cdr_id": CDR,
                "direction": "in2out",
                "call_type": "normal_call",
                "caller": EXTERNAL,
                "callee": "+33698765432",
                "destination": "sip:+33698765432@198.51.100.50",
                "start_time": "1795874587",
                "ring_time": "1795874587",
                "answered_time": "1795874592",
                "ended_time": "1795874619",
                "ring_duration": "5",
                "talk_duration": "27",
                "status": "answered",
                "status_code": 0,
                "end_reason": "caller_disconnect",
                "did": OUT_DID,
                "outbound_caller_id": "",
                "trunk_name": "carrier-a",
            }],
            "event_id": "105cdcbc-7cc0-8100-8000-000000000005",
            "sequence": 6,
        })
    );
}

/// An outside number no outbound rule takes: `404`, a `fail` CDR with
/// direction `in` (nothing left by a trunk), no target.
#[test]
fn a_did_to_an_outside_number_no_rule_takes_is_404() {
    let mut cast = Cast::new();
    let Cast { bench, .. } = &mut cast;
    with_outside_did(bench, "12345", None);
    let mut caller = carrier(CARRIER_B);
    let mut c_call = carrier_b_call(OUT_DID);
    bench.at(0);
    bench.send(caller.peer, &caller.invite(&mut c_call, None));
    let (refused, status) = refused_call(bench, caller.peer);
    assert_eq!(refused.status(), Some(404));
    assert_eq!(status, ("fail".to_owned(), "404".to_owned()));
    let cdr = cdr(bench);
    assert_eq!(cdr["direction"], "in");
    assert_eq!(cdr["trunk_name"], "carrier-b");
    assert_eq!(cdr["did"], OUT_DID);
    assert_eq!(cdr["call_targets"], json!([]));
}

/// The tenant at its outbound limit (0 here): refused `403` with the
/// reason phrase before any INVITE, a `fail` CDR.
#[test]
fn a_did_to_an_outside_number_counts_against_the_tenants_outbound_limit() {
    let mut cast = Cast::new();
    let Cast { bench, .. } = &mut cast;
    with_outside_did(bench, "0698765432", Some(0));
    let mut caller = carrier(CARRIER_B);
    let out = carrier(CARRIER_A);
    let mut c_call = carrier_b_call(OUT_DID);
    bench.at(0);
    bench.send(caller.peer, &caller.invite(&mut c_call, None));
    let (refused, status) = refused_call(bench, caller.peer);
    assert_eq!(refused.status(), Some(403));
    assert!(
        refused.reason_phrase().is_some_and(|p| p != "Forbidden"),
        "{}",
        refused.summary()
    );
    assert_eq!(status.0, "fail");
    assert!(bench.take(out.peer).is_empty(), "no INVITE to the carrier");
    let cdr = cdr(bench);
    assert_eq!(cdr["direction"], "in2out");
    assert_eq!(cdr["call_targets"], json!([]));
}
