//! Golden CDRs for SPEC §3's extension-to-extension rows, produced by the
//! call engine itself: each test plays one call as SIP messages with
//! concrete times, folds the engine's CallEvents with `cdr::Builder`, and
//! asserts the exact `call_cdr` object.
//!
//! Times (T0 = 2026-11-28T14:03:07.123Z, Unix second 1795874587): the
//! caller's first INVITE goes out at T0 − 40 ms and is challenged; the
//! authenticated INVITE arrives at T0, when the session starts.
//!
//! | offset  | Unix s     | what                          |
//! |---------|------------|-------------------------------|
//! | 0       | 1795874587 | INVITE arrives, targets added |
//! | +210    | 1795874587 | 180 Ringing                   |
//! | +4321   | 1795874591 | 486 / 603                     |
//! | +5870   | 1795874592 | 200 OK                        |
//! | +12400  | 1795874599 | CANCEL                        |
//! | +30000  | 1795874617 | ring timeout (30 s)           |
//! | +31999  | 1795874619 | callee's BYE                  |
//! | +65500  | 1795874652 | caller's BYE                  |
//!
//! Ids come from node 1's Snowflake: the session at T0 is
//! 1179059904569151488 (its cdr_id the next value), the targets added in
//! the same millisecond ...490 and ...491.

#![recursion_limit = "256"]

mod common;

use common::*;
use serde_json::{Value, json};
use sip::Method;

const SESSION: &str = "1179059904569151488";
const CDR: &str = "1179059904569151489";
const TENANT_ID: &str = "883611252155219968";
/// The first target added at T0 (102's desk phone).
const DESK: &str = "1179059904569151490";
/// The second (102's softphone app, in the two-devices test).
const APP: &str = "1179059904569151491";
const DESK_URI: &str = "sip:102@10.0.0.7:5062";
const APP_URI: &str = "sip:102@198.51.100.23:61000;transport=tcp";
const CALL_ID: &str = "3c26a1f1e7b94f0a@10.0.0.5";

fn event_id(ordinal: u32) -> String {
    format!("105cdcbc-7cc0-8100-8000-{ordinal:012x}")
}

fn timeline(bench: &Bench) -> Vec<String> {
    bench.timeline()
}

/// The `call_cdr`; then, 40 s later (past every transaction timer), the
/// engine holds nothing of the call any more and emitted nothing else.
fn cdr(bench: &mut Bench) -> Value {
    let cdr = bench.cdr();
    let events = bench.call_events.len();
    bench.at(bench.now + 40_000);
    assert_eq!(bench.engine.sessions(), 0, "the session is dropped");
    assert_eq!(bench.call_events.len(), events, "no event after call_cdr");
    cdr
}

/// A calls B, B answers, A hangs up.
#[test]
fn answered_and_caller_hangs_up() {
    let (mut cast, mut a_call, b_call) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(65_500);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(bob.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    bench.send(bob.peer, &bob.respond(&b_call, &bye, 200, None));

    assert_eq!(
        timeline(bench),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_answer",
            "cdr_target_end",
            "call_cdr"
        ]
    );
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": CALL_ID,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
            "start_time": "1795874587",
            "ring_time": "1795874587",
            "answered_time": "1795874592",
            "ended_time": "1795874652",
            "ring_duration": "5",
            // 652 - 592 as shown, although 59.63 s passed (SPEC §2).
            "talk_duration": 60,
            "call_status": "answered",
            "status_code": "0",
            "ended_reason": "caller_disconnect",
            "end_reason": "caller_disconnect",
            "user_data": "",
            "call_targets": [{
                "id": DESK,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": DESK_URI,
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
                "outbound_caller_id": "",
                "trunk_name": "",
            }],
            "event_id": event_id(5),
            "sequence": 6,
        })
    );
}

/// Same, B hangs up.
#[test]
fn answered_and_callee_hangs_up() {
    let (mut cast, a_call, mut b_call) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(31_999);
    let bye = bob.request(&mut b_call, "BYE", None);
    bench.send(bob.peer, &bye);
    assert_eq!(bench.take_one(bob.peer).status(), Some(200));
    let bye = bench.take_one(alice.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    bench.send(alice.peer, &alice.respond(&a_call, &bye, 200, None));

    assert_eq!(
        timeline(bench),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_answer",
            "cdr_target_end",
            "call_cdr"
        ]
    );
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": CALL_ID,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
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
            "call_targets": [{
                "id": DESK,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": DESK_URI,
                "start_time": "1795874587",
                "ring_time": "1795874587",
                "answered_time": "1795874592",
                "ended_time": "1795874619",
                "ring_duration": "5",
                "talk_duration": "27",
                "status": "answered",
                "status_code": 0,
                "end_reason": "callee_disconnect",
                "did": "",
                "outbound_caller_id": "",
                "trunk_name": "",
            }],
            "event_id": event_id(5),
            "sequence": 6,
        })
    );
}

/// A cancels while B rings.
#[test]
fn caller_cancels_while_callee_rings() {
    let (mut cast, a_call, b_call, invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(12_400);
    bench.send(alice.peer, &alice.cancel(&a_call));
    let answers: Vec<_> = bench.take(alice.peer).iter().map(|m| m.status()).collect();
    assert_eq!(answers, [Some(200), Some(487)]);
    let cancel = bench.take_one(bob.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    bench.send(bob.peer, &bob.respond(&b_call, &cancel, 200, None));
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 487, None));
    assert!(
        is(&bench.take_one(bob.peer), Method::Ack),
        "the 487 is ACKed"
    );

    assert_eq!(
        timeline(bench),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_noanswer",
            "call_cdr"
        ]
    );
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": CALL_ID,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
            "start_time": "1795874587",
            "ring_time": "1795874587",
            "answered_time": "0",
            "ended_time": "1795874599",
            "ring_duration": "12",
            "talk_duration": 0,
            "call_status": "noanswer",
            "status_code": "487",
            "ended_reason": "cancelled",
            "end_reason": "cancelled",
            "user_data": "",
            "call_targets": [{
                "id": DESK,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": DESK_URI,
                "start_time": "1795874587",
                "ring_time": "1795874587",
                "answered_time": "0",
                "ended_time": "1795874599",
                "ring_duration": "12",
                "talk_duration": "0",
                "status": "noanswer",
                "status_code": 487,
                "end_reason": "cancelled",
                "did": "",
                "outbound_caller_id": "",
                "trunk_name": "",
            }],
            "event_id": event_id(4),
            "sequence": 5,
        })
    );
}

/// B rejects with 486: relayed to A with its code.
#[test]
fn callee_rejects_486() {
    let (mut cast, _, b_call, invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(4321);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 486, None));
    assert!(
        is(&bench.take_one(bob.peer), Method::Ack),
        "the 486 is ACKed"
    );
    assert_eq!(bench.take_one(alice.peer).status(), Some(486));

    assert_eq!(
        timeline(bench),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_fail",
            "call_cdr"
        ]
    );
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": CALL_ID,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
            "start_time": "1795874587",
            "ring_time": "1795874587",
            "answered_time": "0",
            "ended_time": "1795874591",
            "ring_duration": "4",
            "talk_duration": 0,
            "call_status": "fail",
            "status_code": "486",
            "ended_reason": "None",
            "end_reason": "None",
            "user_data": "",
            "call_targets": [{
                "id": DESK,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": DESK_URI,
                "start_time": "1795874587",
                "ring_time": "1795874587",
                "answered_time": "0",
                "ended_time": "1795874591",
                "ring_duration": "4",
                "talk_duration": "0",
                "status": "noanswer",
                "status_code": 486,
                "end_reason": "None",
                "did": "",
                "outbound_caller_id": "",
                "trunk_name": "",
            }],
            "event_id": event_id(4),
            "sequence": 5,
        })
    );
}

/// B rejects with 603: relayed to A with its code.
#[test]
fn callee_rejects_603() {
    let (mut cast, _, b_call, invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(4321);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 603, None));
    assert!(
        is(&bench.take_one(bob.peer), Method::Ack),
        "the 603 is ACKed"
    );
    assert_eq!(bench.take_one(alice.peer).status(), Some(603));

    assert_eq!(
        timeline(bench),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_fail",
            "call_cdr"
        ]
    );
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": CALL_ID,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
            "start_time": "1795874587",
            "ring_time": "1795874587",
            "answered_time": "0",
            "ended_time": "1795874591",
            "ring_duration": "4",
            "talk_duration": 0,
            "call_status": "fail",
            "status_code": "603",
            "ended_reason": "None",
            "end_reason": "None",
            "user_data": "",
            "call_targets": [{
                "id": DESK,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": DESK_URI,
                "start_time": "1795874587",
                "ring_time": "1795874587",
                "answered_time": "0",
                "ended_time": "1795874591",
                "ring_duration": "4",
                "talk_duration": "0",
                "status": "noanswer",
                "status_code": 603,
                "end_reason": "None",
                "did": "",
                "outbound_caller_id": "",
                "trunk_name": "",
            }],
            "event_id": event_id(4),
            "sequence": 5,
        })
    );
}

/// B unknown: no target, `404`.
#[test]
fn callee_unknown_404() {
    let mut cast = Cast::new();
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(-40);
    let call = bench.dial(alice, "199");
    let answer = bench.take_one(alice.peer);
    assert_eq!(answer.status(), Some(404));
    bench.send(alice.peer, &alice.ack_failure(&call, &answer));

    assert_eq!(timeline(bench), ["call_start", "call_cdr"]);
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": CALL_ID,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "199",
            "callee_display_name": "",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
            "start_time": "1795874587",
            "ring_time": "0",
            "answered_time": "0",
            "ended_time": "1795874587",
            "ring_duration": "0",
            "talk_duration": 0,
            "call_status": "fail",
            "status_code": "404",
            "ended_reason": "None",
            "end_reason": "None",
            "user_data": "",
            "call_targets": [],
            "event_id": event_id(1),
            "sequence": 2,
        })
    );
}

/// B not registered: no target, `480`.
#[test]
fn callee_not_registered_480() {
    let mut cast = Cast::new();
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(-40);
    let call = bench.dial(alice, "104");
    let answer = bench.take_one(alice.peer);
    assert_eq!(answer.status(), Some(480));
    bench.send(alice.peer, &alice.ack_failure(&call, &answer));

    assert_eq!(timeline(bench), ["call_start", "call_cdr"]);
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": CALL_ID,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "104",
            "callee_display_name": "Bob",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
            "start_time": "1795874587",
            "ring_time": "0",
            "answered_time": "0",
            "ended_time": "1795874587",
            "ring_duration": "0",
            "talk_duration": 0,
            "call_status": "fail",
            "status_code": "480",
            "ended_reason": "None",
            "end_reason": "None",
            "user_data": "",
            "call_targets": [],
            "event_id": event_id(1),
            "sequence": 2,
        })
    );
}

/// B rings out: after 102's ring timeout (30 s) the PBX cancels the
/// target and answers A `408`.
#[test]
fn callee_rings_out_408() {
    let (mut cast, a_call, b_call, invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(29_999);
    assert!(bench.take(alice.peer).is_empty());
    assert!(bench.take(bob.peer).is_empty());
    bench.at(30_000);
    let timeout = bench.take_one(alice.peer);
    assert_eq!(timeout.status(), Some(408));
    bench.send(alice.peer, &alice.ack_failure(&a_call, &timeout));
    let cancel = bench.take_one(bob.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    bench.send(bob.peer, &bob.respond(&b_call, &cancel, 200, None));
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 487, None));

    assert_eq!(
        timeline(bench),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_noanswer",
            "call_cdr"
        ]
    );
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": CALL_ID,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
            "start_time": "1795874587",
            "ring_time": "1795874587",
            "answered_time": "0",
            "ended_time": "1795874617",
            "ring_duration": "30",
            "talk_duration": 0,
            "call_status": "noanswer",
            "status_code": "408",
            "ended_reason": "None",
            "end_reason": "None",
            "user_data": "",
            "call_targets": [{
                "id": DESK,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": DESK_URI,
                "start_time": "1795874587",
                "ring_time": "1795874587",
                "answered_time": "0",
                "ended_time": "1795874617",
                "ring_duration": "30",
                "talk_duration": "0",
                "status": "noanswer",
                "status_code": 408,
                "end_reason": "None",
                "did": "",
                "outbound_caller_id": "",
                "trunk_name": "",
            }],
            "event_id": event_id(4),
            "sequence": 5,
        })
    );
}

/// B registered from two devices: both ring, the app answers, the desk
/// phone is cancelled (`noanswer`, status 0, `None`); A hangs up later.
#[test]
fn callee_on_two_devices() {
    let mut cast = Cast::new();
    let Cast { bench, alice, bob } = &mut cast;
    let mut app = Phone::new("102", "Jason", tcp(BOB_APP));
    bench.register(&mut app);
    bench.at(-40);
    let mut a_call = bench.dial(alice, "102");
    let desk_invite = bench.take_one(bob.peer);
    let app_invite = bench.take_one(app.peer);
    let desk = bob.incoming(&desk_invite);
    let mut app_call = app.incoming(&app_invite);
    assert_eq!(desk_invite.request_uri_str(), Some(DESK_URI));
    assert_eq!(app_invite.request_uri_str(), Some(APP_URI));
    bench.at(210);
    bench.send(bob.peer, &bob.respond(&desk, &desk_invite, 180, None));
    bench.at(2480);
    bench.send(app.peer, &app.respond(&app_call, &app_invite, 180, None));
    assert_eq!(bench.take(alice.peer).len(), 2, "both 180s relayed");
    bench.at(5870);
    bench.send(
        app.peer,
        &app.respond(&app_call, &app_invite, 200, Some(SDP_B)),
    );
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200));
    let cancel = bench.take_one(bob.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    bench.send(bob.peer, &bob.respond(&desk, &cancel, 200, None));
    bench.send(bob.peer, &bob.respond(&desk, &desk_invite, 487, None));
    bench.at(5900);
    let ack = alice.ack(&mut a_call, &ok, None);
    bench.send(alice.peer, &ack);
    assert!(is(&bench.take_one(app.peer), Method::Ack));
    bench.at(65_500);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    let bye = bench.take_one(app.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    app_call.cseq = 100;
    bench.send(app.peer, &app.respond(&app_call, &bye, 200, None));

    assert_eq!(
        timeline(bench),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_ringing",
            "cdr_target_answer",
            "cdr_target_noanswer",
            "cdr_target_end",
            "call_cdr"
        ]
    );
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": CALL_ID,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
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
                "id": DESK,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": DESK_URI,
                "start_time": "1795874587",
                "ring_time": "1795874587",
                "answered_time": "0",
                "ended_time": "1795874592",
                "ring_duration": "5",
                "talk_duration": "0",
                "status": "noanswer",
                "status_code": 0,
                "end_reason": "None",
                "did": "",
                "outbound_caller_id": "",
                "trunk_name": "",
            }, {
                "id": APP,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": APP_URI,
                "start_time": "1795874587",
                "ring_time": "1795874589",
                "answered_time": "1795874592",
                "ended_time": "1795874652",
                "ring_duration": "3",
                "talk_duration": "60",
                "status": "answered",
                "status_code": 0,
                "end_reason": "caller_disconnect",
                "did": "",
                "outbound_caller_id": "",
                "trunk_name": "",
            }],
            "event_id": event_id(8),
            "sequence": 9,
        })
    );
}

/// The node stops during an answered call (`Input::HangUpAll` at +65500):
/// BYE to both phones, the call ends as answered with `None` for both
/// reasons: no party hung up, and it is a whole CDR, not a recovered one.
#[test]
fn answered_and_the_pbx_hangs_up_at_shutdown() {
    let (mut cast, a_call, b_call) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(65_500);
    assert_eq!(bench.engine.calls_in_progress(), 1);
    bench.hang_up_all();
    assert_eq!(bench.engine.calls_in_progress(), 0);
    let to_alice = bench.take_one(alice.peer);
    assert!(is(&to_alice, Method::Bye), "{}", to_alice.summary());
    assert_eq!(to_alice.call_id().unwrap(), a_call.call_id);
    let to_bob = bench.take_one(bob.peer);
    assert!(is(&to_bob, Method::Bye), "{}", to_bob.summary());
    assert_eq!(to_bob.call_id().unwrap(), b_call.call_id);
    bench.send(alice.peer, &alice.respond(&a_call, &to_alice, 200, None));
    bench.send(bob.peer, &bob.respond(&b_call, &to_bob, 200, None));

    assert_eq!(
        timeline(bench),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_answer",
            "cdr_target_end",
            "call_cdr"
        ]
    );
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": CALL_ID,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
            "start_time": "1795874587",
            "ring_time": "1795874587",
            "answered_time": "1795874592",
            "ended_time": "1795874652",
            "ring_duration": "5",
            "talk_duration": 60,
            "call_status": "answered",
            "status_code": "0",
            "ended_reason": "None",
            "end_reason": "None",
            "user_data": "",
            "call_targets": [{
                "id": DESK,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": DESK_URI,
                "start_time": "1795874587",
                "ring_time": "1795874587",
                "answered_time": "1795874592",
                "ended_time": "1795874652",
                "ring_duration": "5",
                "talk_duration": "60",
                "status": "answered",
                "status_code": 0,
                "end_reason": "None",
                "did": "",
                "outbound_caller_id": "",
                "trunk_name": "",
            }],
            "event_id": event_id(5),
            "sequence": 6,
        })
    );
}

/// The node stops while B rings (`Input::HangUpAll` at +12400): the caller
/// gets 503, the target a CANCEL (answered 487, ACKed); the target fails
/// with its own final code, 487 (not the caller's 503), and the call is
/// `fail`, "503", `None`.
#[test]
fn ringing_and_the_pbx_hangs_up_at_shutdown() {
    let (mut cast, a_call, b_call, invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(12_400);
    bench.hang_up_all();
    let to_alice = bench.take_one(alice.peer);
    assert_eq!(to_alice.status(), Some(503), "{}", to_alice.summary());
    bench.send(alice.peer, &alice.ack_failure(&a_call, &to_alice));
    let cancel = bench.take_one(bob.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    bench.send(bob.peer, &bob.respond(&b_call, &cancel, 200, None));
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 487, None));
    let ack = bench.take_one(bob.peer);
    assert!(is(&ack, Method::Ack), "{}", ack.summary());

    assert_eq!(
        timeline(bench),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_fail",
            "call_cdr"
        ]
    );
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": CALL_ID,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
            "start_time": "1795874587",
            "ring_time": "1795874587",
            "answered_time": "0",
            "ended_time": "1795874599",
            "ring_duration": "12",
            "talk_duration": 0,
            "call_status": "fail",
            "status_code": "503",
            "ended_reason": "None",
            "end_reason": "None",
            "user_data": "",
            "call_targets": [{
                "id": DESK,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": DESK_URI,
                "start_time": "1795874587",
                "ring_time": "1795874587",
                "answered_time": "0",
                "ended_time": "1795874599",
                "ring_duration": "12",
                "talk_duration": "0",
                "status": "noanswer",
                "status_code": 487,
                "end_reason": "None",
                "did": "",
                "outbound_caller_id": "",
                "trunk_name": "",
            }],
            "event_id": event_id(4),
            "sequence": 5,
        })
    );
}

/// B answers at +5870 without a 18x (auto-answer), A hangs up at +65500.
/// The target rang at its answer, and so did the call (SPEC §2); the
/// `call_start` names both parties by SIP URI, the target events carry
/// PortSIP's misspelt `destiantion` next to `destination` (SPEC §4).
#[test]
fn callee_answers_without_ringing() {
    let mut cast = Cast::new();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    let mut a_call = bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    let b_call = bob.incoming(&invite);
    bench.at(5870);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200));
    bench.at(5900);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    // The INVITE was retransmitted while nothing came back (no 100 from
    // this phone); then the ACK.
    let to_bob = bench.take(bob.peer);
    assert!(to_bob.last().is_some_and(|m| is(m, Method::Ack)));
    bench.at(65_500);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(bob.peer);
    bench.send(bob.peer, &bob.respond(&b_call, &bye, 200, None));

    assert_eq!(
        timeline(bench),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_answer",
            "cdr_target_end",
            "call_cdr"
        ]
    );
    let events = bench.json();
    assert_eq!(
        events[0],
        json!({
            "event_type": "call_start",
            "time": "1795874587",
            "session_id": SESSION,
            "cdr_id": CDR,
            "tenant_id": TENANT_ID,
            "direction": "ext",
            "call_id": CALL_ID,
            "caller": "sip:101@acme.example",
            "caller_display_name": "Tom",
            "callee": "sip:102@acme.example",
            "callee_display_name": "Jason",
            "did": "",
            "outbound_caller_id": "",
            "user_data": "",
            "event_id": event_id(0),
            "sequence": 1,
        })
    );
    assert_eq!(
        events[2],
        json!({
            "event_type": "cdr_target_answer",
            "time": "1795874592",
            "session_id": SESSION,
            "cdr_id": CDR,
            "tenant_id": TENANT_ID,
            "direction": "ext",
            "destination": DESK_URI,
            "destiantion": DESK_URI,
            "caller": "101",
            "callee": "102",
            "did": "",
            "outbound_caller_id": "",
            "target_id": DESK,
            "event_id": event_id(2),
            "sequence": 3,
        })
    );
    assert_eq!(
        cdr(bench),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": CALL_ID,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "101",
            "caller_display_name": "Tom",
            "caller_domain": "acme.example",
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
            "start_time": "1795874587",
            "ring_time": "1795874592",
            "answered_time": "1795874592",
            "ended_time": "1795874652",
            "ring_duration": "0",
            "talk_duration": 60,
            "call_status": "answered",
            "status_code": "0",
            "ended_reason": "caller_disconnect",
            "end_reason": "caller_disconnect",
            "user_data": "",
            "call_targets": [{
                "id": DESK,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": DESK_URI,
                "start_time": "1795874587",
                "ring_time": "1795874592",
                "answered_time": "1795874592",
                "ended_time": "1795874652",
                "ring_duration": "0",
                "talk_duration": "60",
                "status": "answered",
                "status_code": 0,
                "end_reason": "caller_disconnect",
                "did": "",
                "outbound_caller_id": "",
                "trunk_name": "",
            }],
            "event_id": event_id(4),
            "sequence": 5,
        })
    );
}
