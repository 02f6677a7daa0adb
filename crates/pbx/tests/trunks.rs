//! Calls through trunks (issue 10, step 4), played on the virtual-clock
//! bench with the exact `call_cdr` each one ends in: a carrier's call to a
//! DID answered by an extension (`in`), an extension's call out through a
//! trunk that challenges once (`out`), failover from a trunk answering
//! 503 to the next, a DID forwarded out again (`in2out`), and the
//! refusals (unknown source, no DID rule, outbound not allowed, a second
//! challenge).
//!
//! Fixture (besides `common`'s tenant and phones): carrier A sends from
//! and listens on 198.51.100.50:5060 (`ip` trunk `carrier-a`, source
//! 198.51.100.0/24, country code 33), carrier B listens on
//! 192.0.2.80:5070 (`carrier-b`). DID `+33123456789` rings 102. Outbound
//! rule `national`: `0ZXXXXXXXX`, strip 1, prepend `+33`, trunks A then B.
//! Times as in `golden.rs`: the session starts at T0.

#![recursion_limit = "256"]

mod common;
mod trunk_fixture;

use cdr::Id;
use common::*;
use pbx::trunk::{DidMatch, InboundDestination, InboundRule, TrunkId, Trunks, UserOutbound};
use pbx::{EngineEvent, Extension, Input, TrunkRefusal};
use serde_json::json;
use sip::auth::{Algorithm, Credentials, DigestServer, UserSecret, Verdict};
use sip::{HeaderName, Message, Method};
use trunk_fixture::*;

/// The carrier calls DID +33123456789; 102 rings at +210, answers at
/// +5870; the carrier hangs up at +31999.
#[test]
fn a_did_rings_its_extension_and_the_cdr_says_in() {
    let mut cast = cast(|_, _| {});
    let Cast { bench, bob, .. } = &mut cast;
    let mut a = carrier(CARRIER_A);
    let mut c_call = carrier_call(EXTERNAL, DID);
    bench.at(0);
    // No challenge: the carrier is known by its address.
    let invite = a.invite(&mut c_call, None);
    bench.send(a.peer, &invite);
    let to_bob = bench.take_one(bob.peer);
    assert!(is(&to_bob, Method::Invite), "{}", to_bob.summary());
    assert_eq!(to_bob.request_uri_str(), Some("sip:102@10.0.0.7:5062"));
    let b_call = bob.incoming(&to_bob);
    bench.at(210);
    bench.send(bob.peer, &bob.respond(&b_call, &to_bob, 180, None));
    assert_eq!(bench.take_one(a.peer).status(), Some(180));
    bench.at(5870);
    bench.send(bob.peer, &bob.respond(&b_call, &to_bob, 200, Some(SDP_A)));
    let ok = bench.take_one(a.peer);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        bench.engine.trunk_calls().of(TrunkId(Id::from_u64(1))),
        1,
        "the call counts against its trunk"
    );
    bench.at(5900);
    bench.send(a.peer, &a.ack(&mut c_call, &ok, None));
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    bench.at(31_999);
    bench.send(a.peer, &a.request(&mut c_call, "BYE", None));
    assert_eq!(bench.take_one(a.peer).status(), Some(200));
    let bye = bench.take_one(bob.peer);
    bench.send(bob.peer, &bob.respond(&b_call, &bye, 200, None));

    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": "a84b4c76e66710@198.51.100.50",
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "in",
            "caller": EXTERNAL,
            "caller_display_name": "",
            "caller_domain": "198.51.100.50",
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": DID,
            "did_cid": DID,
            "outbound_caller_id": "",
            "trunk_name": "carrier-a",
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
                "direction": "in",
                "call_type": "normal_call",
                "caller": EXTERNAL,
                "callee": "102",
                "destination": "sip:102@10.0.0.7:5062",
                "start_time": "1795874587",
                "ring_time": "1795874587",
                "answered_time": "1795874592",
                "ended_time": "1795874619",
                "ring_duration": "5",
                "talk_duration": "27",
                "status": "answered",
                "status_code": 0,
                "end_reason": "caller_disconnect",
                "did": DID,
                "outbound_caller_id": "",
                "trunk_name": "",
            }],
            "event_id": "105cdcbc-7cc0-8100-8000-000000000005",
            "sequence": 6,
        })
    );
}

/// 101 dials 0612345678 at T0; carrier A challenges (407), the PBX answers
/// once with the trunk's account; A rings at +210, answers at +5870; 101
/// hangs up at +65500.
#[test]
fn an_extension_dials_out_through_a_trunk_that_challenges_once() {
    let mut cast = cast(|_, _| {});
    let Cast { bench, alice, .. } = &mut cast;
    let mut a = carrier(CARRIER_A);
    let mut server = DigestServer::new("carrier.example", [9; 32]);
    bench.at(-40);
    let mut a_call = bench.dial(alice, "0612345678");
    let first = bench.take_one(a.peer);
    assert_eq!(
        first.request_uri_str(),
        Some("sip:+33612345678@198.51.100.50")
    );
    assert_eq!(
        first.from().unwrap().uri.to_string(),
        "sip:+33100000101@sip.carrier.example",
        "the caller ID presented, at the trunk's from-domain"
    );
    assert_eq!(
        first.to().unwrap().uri.to_string(),
        "sip:+33612345678@198.51.100.50"
    );
    let first_call = a.incoming(&first);
    bench.at(20);
    let challenge = server.challenge(1_795_874_587, Algorithm::Md5, false);
    let refused = with_header(
        a.respond(&first_call, &first, 407, None),
        &format!("Proxy-Authenticate: {challenge}"),
    );
    bench.send(a.peer, &refused);
    let mut sent = bench.take(a.peer);
    assert_eq!(sent.len(), 2, "the ACK of the 407 and the new INVITE");
    assert!(is(&sent[0], Method::Ack));
    let second = sent.remove(1);
    assert!(is(&second, Method::Invite));
    assert_eq!(second.call_id(), first.call_id(), "the same dialog");
    assert_eq!(second.cseq().unwrap().seq, 2);
    assert_ne!(
        second.via().unwrap().branch(),
        first.via().unwrap().branch()
    );
    let creds = Credentials::parse(second.header(HeaderName::ProxyAuthorization).unwrap()).unwrap();
    assert_eq!(creds.username, "acct77");
    assert_eq!(
        server.verify(
            1_795_874_587,
            "INVITE",
            &creds,
            UserSecret::Password("carrier-secret")
        ),
        Verdict::Ok
    );
    let b_call = a.incoming(&second);
    bench.at(210);
    bench.send(a.peer, &a.respond(&b_call, &second, 180, None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(180));
    bench.at(5870);
    bench.send(a.peer, &a.respond(&b_call, &second, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200));
    let trunk_a = TrunkId(Id::from_u64(1));
    assert_eq!(bench.engine.trunk_calls().of(trunk_a), 1);
    assert_eq!(bench.engine.trunk_calls().outbound(tenant_id()), 1);
    bench.at(5900);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    assert!(is(&bench.take_one(a.peer), Method::Ack));
    bench.at(65_500);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(a.peer);
    bench.send(a.peer, &a.respond(&b_call, &bye, 200, None));

    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": "3c26a1f1e7b94f0a@10.0.0.5",
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "out",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "+33612345678",
            "callee_display_name": "",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "+33100000101",
            "trunk_name": "carrier-a",
            "start_time": "1795874587",
            "ring_time": "1795874587",
            "answered_time": "1795874592",
            "ended_time": "1795874652",
            "ring_duration": "5",
            "talk_duration": 60,
            "call_status": "answered",
            "status_code": "0",
            "ended_reason": "caller_disconnect",
            "end_reason": "caller_disconnect",
            "user_data": "",
            "call_targets": [{
                "id": FIRST_TARGET,
                "cdr_id": CDR,
                "direction": "out",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "+33612345678",
                "destination": "sip:+33612345678@198.51.100.50",
                "start_time": "1795874587",
                "ring_time": "1795874587",
                "answered_time": "1795874592",
                "ended_time": "1795874652",
                "ring_duration": "5",
                "talk_duration": "60",
                "status": "answered",
                "status_code": 0,
                "end_reason": "caller_disconnect",
                "did": "",
                "outbound_caller_id": "+33100000101",
                "trunk_name": "carrier-a",
            }],
            "event_id": "105cdcbc-7cc0-8100-8000-000000000005",
            "sequence": 6,
        })
    );
}

/// Carrier A answers 503 at +20; carrier B (port 5070) takes the call,
/// rings at +210, answers at +5870; B hangs up at +31999.
#[test]
fn a_trunk_answering_503_fails_over_to_the_next() {
    let mut cast = cast(|_, _| {});
    let Cast { bench, alice, .. } = &mut cast;
    let mut a = carrier(CARRIER_A);
    let mut b = carrier(CARRIER_B);
    bench.at(-40);
    let a_call = bench.dial(alice, "0612345678");
    let to_a = bench.take_one(a.peer);
    let a_side = a.incoming(&to_a);
    bench.at(20);
    bench.send(a.peer, &a.respond(&a_side, &to_a, 503, None));
    assert!(is(&bench.take_one(a.peer), Method::Ack));
    let to_b = bench.take_one(b.peer);
    assert_eq!(
        to_b.request_uri_str(),
        Some("sip:+33612345678@192.0.2.80:5070")
    );
    assert!(
        bench.take(alice.peer).is_empty(),
        "the caller hears nothing of the failed trunk"
    );
    let mut b_side = b.incoming(&to_b);
    bench.at(210);
    bench.send(b.peer, &b.respond(&b_side, &to_b, 180, None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(180));
    bench.at(5870);
    bench.send(b.peer, &b.respond(&b_side, &to_b, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    let mut a_call = a_call;
    bench.at(5900);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    assert!(is(&bench.take_one(b.peer), Method::Ack));
    assert_eq!(bench.engine.trunk_calls().of(TrunkId(Id::from_u64(1))), 0);
    assert_eq!(bench.engine.trunk_calls().of(TrunkId(Id::from_u64(2))), 1);
    bench.at(31_999);
    bench.send(b.peer, &b.request(&mut b_side, "BYE", None));
    assert_eq!(bench.take_one(b.peer).status(), Some(200));
    let bye = bench.take_one(alice.peer);
    bench.send(alice.peer, &alice.respond(&a_call, &bye, 200, None));

    let target = |id: &str, trunk: &str, uri: &str, answered: bool| {
        let (ring, answer, end, ring_d, talk, code, reason) = if answered {
            (
                "1795874587",
                "1795874592",
                "1795874619",
                "5",
                "27",
                0,
                "callee_disconnect",
            )
        } else {
            ("0", "0", "1795874587", "0", "0", 503, "None")
        };
        json!({
            "id": id,
            "cdr_id": CDR,
            "direction": "out",
            "call_type": "normal_call",
            "caller": "101",
            "callee": "+33612345678",
            "destination": uri,
            "start_time": "1795874587",
            "ring_time": ring,
            "answered_time": answer,
            "ended_time": end,
            "ring_duration": ring_d,
            "talk_duration": talk,
            "status": if answered { "answered" } else { "noanswer" },
            "status_code": code,
            "end_reason": reason,
            "did": "",
            "outbound_caller_id": "+33100000101",
            "trunk_name": trunk,
        })
    };
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": "3c26a1f1e7b94f0a@10.0.0.5",
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "out",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "+33612345678",
            "callee_display_name": "",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "+33100000101",
            // SPEC §2: the first trunk leg.
            "trunk_name": "carrier-a",
            "start_time": "1795874587",
            "ring_time": "1795874587",
            "answered_time": "1795874592",
            "ended_time": "1795874619",
            "ring_duration": "5",
            "talk_duration": 27,
            "call_status": "answered",
            "status_code": "0",
            "ended_reason": "callee_disconnect",
            "end_reason": "callee_disconnect",
            "user_data": "",
            "call_targets": [
                target(FIRST_TARGET, "carrier-a", "sip:+33612345678@198.51.100.50", false),
                target(
                    // Added at +20 ms.
                    "1179059904653037568",
                    "carrier-b",
                    "sip:+33612345678@192.0.2.80:5070",
                    true
                ),
            ],
            "event_id": "105cdcbc-7cc0-8100-8000-000000000007",
            "sequence": 8,
        })
    );
}

/// An INVITE for the DID from an address no trunk claims: 403, no call,
/// counted by the throttle; the same from carrier A for a number without a
/// DID rule: 404, no challenge either way.
#[test]
fn an_unknown_source_is_refused_403_and_a_number_without_did_404() {
    let mut cast = cast(|_, _| {});
    let bench = &mut cast.bench;
    let mut stranger = carrier("203.0.113.99:5060");
    let mut call = carrier_call(EXTERNAL, DID);
    bench.at(0);
    bench.send(stranger.peer, &stranger.invite(&mut call, None));
    let refused = bench.take_one(stranger.peer);
    assert_eq!(refused.status(), Some(403), "{}", refused.summary());
    assert!(refused.header(HeaderName::ProxyAuthenticate).is_none());
    assert!(
        bench.engine_events.iter().any(|e| matches!(
            e,
            EngineEvent::InviteAuthFailed {
                reason: pbx::registrar::AuthFailure::UnknownDomain,
                ..
            }
        )),
        "logged and counted: {:?}",
        bench.engine_events
    );

    let mut a = carrier(CARRIER_A);
    let mut call = carrier_call(EXTERNAL, "+33999999999");
    bench.send(a.peer, &a.invite(&mut call, None));
    let not_found = bench.take_one(a.peer);
    assert_eq!(not_found.status(), Some(404), "{}", not_found.summary());
    assert!(not_found.header(HeaderName::ProxyAuthenticate).is_none());
    assert_eq!(refusals(bench), [TrunkRefusal::NoRule]);
    assert!(bench.call_events.is_empty(), "no call was started");
    assert_eq!(bench.engine.sessions(), 0);
}

/// 102 forwards every call to 0698765432: the carrier's call to the DID
/// leaves again by carrier A (`in2out`); answered at +5870, the carrier
/// that called hangs up at +31999.
#[test]
fn a_did_forwarded_to_an_external_number_goes_out_in2out() {
    let mut cast = cast(|_, _| {});
    let Cast { bench, .. } = &mut cast;
    forward_102(bench, "0698765432");
    // The carrier calls from another of its addresses.
    let mut caller = carrier("198.51.100.51:5060");
    let mut out = carrier(CARRIER_A);
    let mut c_call = carrier_call(EXTERNAL, DID);
    bench.at(0);
    bench.send(caller.peer, &caller.invite(&mut c_call, None));
    let to_out = bench.take_one(out.peer);
    assert_eq!(
        to_out.request_uri_str(),
        Some("sip:+33698765432@198.51.100.50")
    );
    // No caller ID is configured for 102 or the rule: the trunk account.
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
    assert_eq!(bench.engine.trunk_calls().of(TrunkId(Id::from_u64(1))), 2);
    assert_eq!(bench.engine.trunk_calls().outbound(tenant_id()), 1);
    bench.at(31_999);
    bench.send(caller.peer, &caller.request(&mut c_call, "BYE", None));
    assert_eq!(bench.take_one(caller.peer).status(), Some(200));
    let bye = bench.take_one(out.peer);
    bench.send(out.peer, &out.respond(&o_call, &bye, 200, None));

    let json = bench.json();
    let update = json
        .iter()
        .find(|e| e["event_type"] == "call_update_info")
        .expect("call_update_info");
    assert_eq!(update["callee"], "sip:+33698765432@acme.example");
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": "a84b4c76e66710@198.51.100.50",
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "in2out",
            "caller": EXTERNAL,
            "caller_display_name": "",
            "caller_domain": "198.51.100.50",
            // SPEC §2: the first destination inside the PBX.
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": DID,
            "did_cid": DID,
            "outbound_caller_id": "",
            "trunk_name": "carrier-a",
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
                "did": DID,
                "outbound_caller_id": "",
                "trunk_name": "carrier-a",
            }],
            "event_id": "105cdcbc-7cc0-8100-8000-000000000006",
            "sequence": 7,
        })
    );
}

#[test]
fn a_user_not_allowed_out_is_refused_403_with_a_reason_and_a_fail_cdr() {
    let mut cast = cast(|_, policy| {
        policy.users.insert(
            Extension::new("101"),
            UserOutbound {
                allowed: false,
                caller_id: String::new(),
            },
        );
    });
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(-40);
    bench.dial(alice, "0612345678");
    assert!(bench.take(udp(CARRIER_A)).is_empty(), "no trunk is tried");
    let (refused, status) = refused_call(bench, alice.peer);
    assert_eq!(refused.status(), Some(403));
    assert_eq!(refused.reason_phrase(), Some("Outbound Calls Not Allowed"));
    assert_eq!(status, ("fail".into(), "403".into()));
    assert_eq!(bench.cdr()["direction"], "out");
    assert_eq!(bench.cdr()["call_targets"], json!([]));
}

#[test]
fn the_tenant_limit_and_trunk_limits_refuse_before_any_invite() {
    let mut cast = cast(|list, policy| {
        policy.max_outbound_calls = Some(0);
        list[1].max_calls = Some(0);
    });
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(-40);
    bench.dial(alice, "0612345678");
    let (refused, status) = refused_call(bench, alice.peer);
    assert_eq!(refused.status(), Some(403));
    assert_eq!(refused.reason_phrase(), Some("Outbound Call Limit Reached"));
    assert_eq!(status, ("fail".into(), "403".into()));

    // Without the tenant limit, trunk B (at its limit) is skipped: A's
    // 503 leaves nothing to fail over to.
    let mut cast2 = cast_with_limits();
    let Cast { bench, alice, .. } = &mut cast2;
    bench.at(-40);
    bench.dial(alice, "0612345678");
    let mut a = carrier(CARRIER_A);
    let to_a = bench.take_one(a.peer);
    let side = a.incoming(&to_a);
    bench.send(a.peer, &a.respond(&side, &to_a, 503, None));
    assert!(bench.take(udp(CARRIER_B)).is_empty(), "B is at its limit");
    let (refused, status) = refused_call(bench, alice.peer);
    // 503 is hop-by-hop: the caller hears 480 (RFC 3261 §16.7).
    assert_eq!(refused.status(), Some(480));
    assert_eq!(status, ("fail".into(), "480".into()));
}

fn cast_with_limits() -> Cast {
    cast(|list, _| list[1].max_calls = Some(0))
}

#[test]
fn a_second_challenge_fails_the_attempt_without_failover() {
    let mut cast = cast(|_, _| {});
    let Cast { bench, alice, .. } = &mut cast;
    let mut a = carrier(CARRIER_A);
    let mut server = DigestServer::new("carrier.example", [9; 32]);
    bench.at(-40);
    bench.dial(alice, "0612345678");
    let mut invite = bench.take_one(a.peer);
    for round in 0..2 {
        let side = a.incoming(&invite);
        let challenge = server.challenge(1_795_874_587, Algorithm::Md5, false);
        let text = with_header(
            a.respond(&side, &invite, 401, None),
            &format!("WWW-Authenticate: {challenge}"),
        );
        bench.send(a.peer, &text);
        let sent = bench.take(a.peer);
        if round == 0 {
            assert_eq!(sent.len(), 2, "ACK and the INVITE with credentials");
            assert!(sent[1].header(HeaderName::Authorization).is_some());
            invite = sent[1].clone();
        } else {
            assert_eq!(
                sent.len(),
                1,
                "only the ACK: the challenge is not answered again"
            );
        }
    }
    assert!(
        bench.take(udp(CARRIER_B)).is_empty(),
        "401 does not fail over"
    );
    let (refused, status) = refused_call(bench, alice.peer);
    assert_eq!(refused.status(), Some(480));
    assert_eq!(status, ("fail".into(), "480".into()));
    assert_eq!(bench.cdr()["call_targets"][0]["status_code"], 401);
}

#[test]
fn a_carrier_that_never_answers_fails_over_then_the_call_fails_cleanly() {
    let mut cast = cast(|_, _| {});
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(-40);
    bench.dial(alice, "0612345678");
    assert!(is(&bench.take_one(udp(CARRIER_A)), Method::Invite));
    // Timer B (64·T1 = 32 s): A is as good as gone, B is tried.
    bench.at(32_100);
    let to_b: Vec<Message> = bench.take(udp(CARRIER_B));
    assert!(to_b.iter().any(|m| is(m, Method::Invite)), "B is tried");
    bench.at(64_200);
    let (refused, status) = refused_call(bench, alice.peer);
    assert_eq!(refused.status(), Some(480));
    assert_eq!(status, ("fail".into(), "480".into()));
    let targets = bench.cdr()["call_targets"].clone();
    assert_eq!(targets[0]["status_code"], 408);
    assert_eq!(targets[1]["status_code"], 408);
    assert!(bench.engine.trunk_calls().is_empty());
}

#[test]
fn trunks_replaced_at_run_time_route_the_next_call() {
    let mut cast = Cast::new();
    let Cast { bench, .. } = &mut cast;
    let mut a = carrier(CARRIER_A);
    let mut call = carrier_call(EXTERNAL, DID);
    bench.at(0);
    bench.send(a.peer, &a.invite(&mut call, None));
    assert_eq!(bench.take_one(a.peer).status(), Some(403), "no trunk yet");
    bench.input(Input::ReplaceTrunks(Box::new(trunks(|_, _| {}))));
    let mut call = carrier_call(EXTERNAL, DID);
    call.call_id = "second@198.51.100.50".into();
    bench.send(a.peer, &a.invite(&mut call, None));
    assert!(is(&bench.take_one(udp(BOB_DESK)), Method::Invite));
}

/// A trunk the live side reports down (registration failed, keep-alives
/// unanswered) is skipped without an INVITE; back up, it is tried first
/// again; every trunk down refuses the call before any INVITE (`503 No
/// Trunk Available`, as when every trunk is at its limit).
#[test]
fn a_trunk_reported_down_is_skipped_until_it_is_up_again() {
    let mut cast = cast(|_, _| {});
    let Cast { bench, alice, .. } = &mut cast;
    let (first, second) = (TrunkId(Id::from_u64(1)), TrunkId(Id::from_u64(2)));
    bench.input(Input::TrunkDown {
        trunk: first,
        down: true,
    });
    bench.at(-40);
    let first_call = bench.dial(alice, "0612345678");
    assert!(
        bench.take(udp(CARRIER_A)).is_empty(),
        "A is down: no INVITE"
    );
    let to_b = bench.take_one(udp(CARRIER_B));
    assert!(is(&to_b, Method::Invite));
    let mut b = carrier(CARRIER_B);
    let side = b.incoming(&to_b);
    bench.send(b.peer, &b.respond(&side, &to_b, 486, None));
    assert!(is(&bench.take_one(b.peer), Method::Ack));
    let busy = bench.take_one(alice.peer);
    assert_eq!(busy.status(), Some(486));
    bench.send(alice.peer, &alice.ack_failure(&first_call, &busy));

    // Both down: refused at once.
    bench.input(Input::TrunkDown {
        trunk: second,
        down: true,
    });
    bench.at(1_000);
    let mut second_call = bench.dial(alice, "0612345678");
    let refused = bench.take_one(alice.peer);
    assert_eq!(refused.status(), Some(503), "{}", refused.summary());
    assert_eq!(refused.reason_phrase(), Some("No Trunk Available"));
    bench.send(alice.peer, &alice.ack_failure(&second_call, &refused));
    assert!(bench.take(udp(CARRIER_A)).is_empty());
    assert!(bench.take(udp(CARRIER_B)).is_empty());

    // A is up again: it is tried first.
    bench.input(Input::TrunkDown {
        trunk: first,
        down: false,
    });
    bench.at(2_000);
    second_call.call_id = "third@pbx-test".into();
    bench.dial(alice, "0612345678");
    assert!(is(&bench.take_one(udp(CARRIER_A)), Method::Invite));
    assert!(bench.engine.trunk_calls().is_down(second));
    assert!(!bench.engine.trunk_calls().is_down(first));
}

/// A DID whose destination is a ring group rings the group's members: the
/// CDR is `in`, its callee the group's number, the members'
/// `ring_group_call` targets carry the DID.
#[test]
fn a_did_to_a_ring_group_rings_its_members() {
    let mut cast = cast(|_, _| {});
    let Cast { bench, bob, .. } = &mut cast;
    bench
        .engine
        .directory_mut()
        .upsert_group(pbx::RingGroup {
            tenant_id: tenant_id(),
            number: Extension::new("600"),
            name: "Sales".into(),
            strategy: pbx::RingStrategy::RingAll,
            members: vec![Extension::new("102")],
            member_timeout: std::time::Duration::from_secs(10),
            timeout: std::time::Duration::from_secs(25),
            no_answer: None,
        })
        .unwrap();
    let list = vec![trunk(
        1,
        "carrier-a",
        "198.51.100.50",
        5060,
        &["198.51.100.0/24"],
    )];
    let did = InboundRule {
        id: Id::from_u64(12),
        trunk_id: list[0].id,
        did: pbx::routing::normalise(DID, "33"),
        matching: DidMatch::Exact,
        destination: InboundDestination::RingGroup(Extension::new("600")),
    };
    let mut table = Trunks::new();
    table.replace_tenant(tenant_id(), list, vec![did], vec![]);
    bench.input(Input::ReplaceTrunks(Box::new(table)));

    let mut a = carrier(CARRIER_A);
    let mut c_call = carrier_call(EXTERNAL, DID);
    bench.at(0);
    bench.send(a.peer, &a.invite(&mut c_call, None));
    let to_bob = bench.take_one(bob.peer);
    assert!(is(&to_bob, Method::Invite), "{}", to_bob.summary());
    let b_call = bob.incoming(&to_bob);
    bench.at(200);
    bench.send(bob.peer, &bob.respond(&b_call, &to_bob, 486, None));
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    let busy = bench.take_one(a.peer);
    assert_eq!(busy.status(), Some(486));
    bench.send(a.peer, &a.ack_failure(&c_call, &busy));
    let cdr = bench.cdr();
    assert_eq!(cdr["direction"], "in", "{cdr}");
    assert_eq!(cdr["callee"], "600", "{cdr}");
    assert_eq!(cdr["did"], DID, "{cdr}");
    let target = &cdr["call_targets"][0];
    assert_eq!(target["call_type"], "ring_group_call", "{cdr}");
    assert_eq!(target["did"], cdr["did"], "{cdr}");
}
