//! Golden CDRs for the extension-to-extension rows of SPEC §3.
//!
//! Each test scripts one call with concrete millisecond times (deliberately
//! not on whole seconds, to pin the rounding: durations are differences of
//! the second-resolution times the record shows, SPEC §2) and asserts the
//! exact `call_cdr` object and the exact sequence of events.
//!
//! Times used (T0 = 2026-11-28T14:03:07.123Z = Unix second 1795874587):
//!
//! | offset  | moment         | Unix s     |
//! |---------|----------------|------------|
//! | +40     | 14:03:07.163   | 1795874587 |
//! | +210    | 14:03:07.333   | 1795874587 |
//! | +2480   | 14:03:09.603   | 1795874589 |
//! | +4321   | 14:03:11.444   | 1795874591 |
//! | +5870   | 14:03:12.993   | 1795874592 |
//! | +12400  | 14:03:19.523   | 1795874599 |
//! | +20000  | 14:03:27.123   | 1795874607 |
//! | +30210  | 14:03:37.333   | 1795874617 |
//! | +31999  | 14:03:39.122   | 1795874619 |
//! | +47777  | 14:03:54.900   | 1795874634 |
//! | +65500  | 14:04:12.623   | 1795874652 |

// The literal CDRs are deep for `json!`.
#![recursion_limit = "256"]

mod common;

use cdr::{CallEventKind, EndReason, NoAnswerCause};
use common::{Call, target_id};
use serde_json::{Value, json};

const SESSION: &str = "1179059904569151488";
const CDR: &str = "1179059904569151489";
const TENANT: &str = "883611252155219968";
/// `target_id(40)`: 102's desk phone.
const PHONE: &str = "1179059904736923648";
/// `target_id(41)`: 102's softphone app.
const APP: &str = "1179059904741117952";
const PHONE_URI: &str = "sip:102@10.0.0.7:5062";
const APP_URI: &str = "sip:102@198.51.100.23:61000;transport=tcp";

fn event_id(ordinal: u32) -> String {
    format!("105cdcbc-7cc0-8100-8000-{ordinal:012x}")
}

fn step(event_type: &str, time: &str, ordinal: u32, target: Option<&str>) -> Value {
    let mut key = json!({ "event_type": event_type, "time": time, "ordinal": ordinal });
    if let Some(target) = target {
        key["target_id"] = json!(target);
    }
    key
}

/// 101 calls 102's desk phone, which rings at +210 and answers at +5870.
fn answered_call() -> Call {
    let phone = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, phone, PHONE_URI)
        .ring(210, phone)
        .answer(5870, phone);
    call
}

#[test]
fn answered_and_caller_hangs_up() {
    let phone = target_id(40);
    let mut call = answered_call();
    call.end_target(65_500, phone, EndReason::CallerDisconnect)
        .end(65_500, 200, EndReason::CallerDisconnect);

    assert_eq!(
        call.timeline(),
        [
            step("call_start", "1795874587", 0, None),
            step("cdr_target_add", "1795874587", 1, Some(PHONE)),
            step("cdr_target_ringing", "1795874587", 2, Some(PHONE)),
            step("cdr_target_answer", "1795874592", 3, Some(PHONE)),
            step("cdr_target_end", "1795874652", 4, Some(PHONE)),
            step("call_cdr", "1795874652", 5, None),
        ]
    );
    assert_eq!(
        call.cdr_json(),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": "3c26a1f1e7b94f0a@10.0.0.5",
            "tenant_id": TENANT,
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
                "id": PHONE,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": PHONE_URI,
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

#[test]
fn answered_and_callee_hangs_up() {
    let phone = target_id(40);
    let mut call = answered_call();
    call.end_target(31_999, phone, EndReason::CalleeDisconnect)
        .end(32_001, 200, EndReason::CalleeDisconnect);

    assert_eq!(
        call.timeline(),
        [
            step("call_start", "1795874587", 0, None),
            step("cdr_target_add", "1795874587", 1, Some(PHONE)),
            step("cdr_target_ringing", "1795874587", 2, Some(PHONE)),
            step("cdr_target_answer", "1795874592", 3, Some(PHONE)),
            step("cdr_target_end", "1795874619", 4, Some(PHONE)),
            step("call_cdr", "1795874619", 5, None),
        ]
    );
    assert_eq!(
        call.cdr_json(),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": "3c26a1f1e7b94f0a@10.0.0.5",
            "tenant_id": TENANT,
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
                "id": PHONE,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": PHONE_URI,
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

#[test]
fn caller_cancels_while_callee_rings() {
    let phone = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, phone, PHONE_URI)
        .ring(210, phone)
        .no_answer(12_400, phone, NoAnswerCause::CallerCancelled)
        .end(12_410, 487, EndReason::Cancelled);

    assert_eq!(
        call.timeline(),
        [
            step("call_start", "1795874587", 0, None),
            step("cdr_target_add", "1795874587", 1, Some(PHONE)),
            step("cdr_target_ringing", "1795874587", 2, Some(PHONE)),
            step("cdr_target_noanswer", "1795874599", 3, Some(PHONE)),
            step("call_cdr", "1795874599", 4, None),
        ]
    );
    assert_eq!(
        call.cdr_json(),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": "3c26a1f1e7b94f0a@10.0.0.5",
            "tenant_id": TENANT,
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
                "id": PHONE,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": PHONE_URI,
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

/// 102 rejects with `code` after ringing; the PBX relays it to the caller.
fn rejected_call(code: u16) -> Call {
    let phone = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, phone, PHONE_URI)
        .ring(210, phone)
        .fail(2_480, phone, code)
        .end(2_490, code, EndReason::NotApplicable);
    call
}

fn rejected_cdr(code: u16) -> Value {
    json!({
        "event_type": "call_cdr",
        "session_id": SESSION,
        "cdr_id": CDR,
        "call_id": "3c26a1f1e7b94f0a@10.0.0.5",
        "tenant_id": TENANT,
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
        "ended_time": "1795874589",
        "ring_duration": "2",
        "talk_duration": 0,
        "call_status": "fail",
        "status_code": code.to_string(),
        "ended_reason": "None",
        "end_reason": "None",
        "user_data": "",
        "call_targets": [{
            "id": PHONE,
            "cdr_id": CDR,
            "direction": "ext",
            "call_type": "normal_call",
            "caller": "101",
            "callee": "102",
            "destination": PHONE_URI,
            "start_time": "1795874587",
            "ring_time": "1795874587",
            "answered_time": "0",
            "ended_time": "1795874589",
            "ring_duration": "2",
            "talk_duration": "0",
            "status": "noanswer",
            "status_code": code,
            "end_reason": "None",
            "did": "",
            "outbound_caller_id": "",
            "trunk_name": "",
        }],
        "event_id": event_id(4),
        "sequence": 5,
    })
}

#[test]
fn callee_rejects_busy_486() {
    let call = rejected_call(486);
    assert_eq!(
        call.timeline(),
        [
            step("call_start", "1795874587", 0, None),
            step("cdr_target_add", "1795874587", 1, Some(PHONE)),
            step("cdr_target_ringing", "1795874587", 2, Some(PHONE)),
            step("cdr_target_fail", "1795874589", 3, Some(PHONE)),
            step("call_cdr", "1795874589", 4, None),
        ]
    );
    assert_eq!(call.cdr_json(), rejected_cdr(486));
    assert_eq!(call.cdr_json()["status_code"], "486");
    assert_eq!(call.cdr_json()["call_targets"][0]["status_code"], 486);
}

#[test]
fn callee_declines_603() {
    let call = rejected_call(603);
    assert_eq!(
        call.timeline().last(),
        Some(&step("call_cdr", "1795874589", 4, None))
    );
    assert_eq!(
        call.timeline()[3],
        step("cdr_target_fail", "1795874589", 3, Some(PHONE))
    );
    assert_eq!(call.cdr_json(), rejected_cdr(603));
}

/// No target: the PBX answers the caller itself with `code` at +3 ms.
fn targetless_cdr(code: u16) -> Value {
    json!({
        "event_type": "call_cdr",
        "session_id": SESSION,
        "cdr_id": CDR,
        "call_id": "3c26a1f1e7b94f0a@10.0.0.5",
        "tenant_id": TENANT,
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
        "ring_time": "0",
        "answered_time": "0",
        "ended_time": "1795874587",
        "ring_duration": "0",
        "talk_duration": 0,
        "call_status": "fail",
        "status_code": code.to_string(),
        "ended_reason": "None",
        "end_reason": "None",
        "user_data": "",
        "call_targets": [],
        "event_id": event_id(1),
        "sequence": 2,
    })
}

#[test]
fn callee_unknown_404_has_no_target() {
    let mut call = Call::ext();
    call.end(3, 404, EndReason::NotApplicable);
    assert_eq!(
        call.timeline(),
        [
            step("call_start", "1795874587", 0, None),
            step("call_cdr", "1795874587", 1, None),
        ]
    );
    assert_eq!(call.cdr_json(), targetless_cdr(404));
}

#[test]
fn callee_not_registered_480_has_no_target() {
    let mut call = Call::ext();
    call.end(3, 480, EndReason::NotApplicable);
    assert_eq!(
        call.timeline(),
        [
            step("call_start", "1795874587", 0, None),
            step("call_cdr", "1795874587", 1, None),
        ]
    );
    assert_eq!(call.cdr_json(), targetless_cdr(480));
}

#[test]
fn callee_rings_out_408() {
    let phone = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, phone, PHONE_URI)
        .ring(210, phone)
        .no_answer(30_210, phone, NoAnswerCause::RingTimeout)
        .end(30_215, 408, EndReason::NotApplicable);

    assert_eq!(
        call.timeline(),
        [
            step("call_start", "1795874587", 0, None),
            step("cdr_target_add", "1795874587", 1, Some(PHONE)),
            step("cdr_target_ringing", "1795874587", 2, Some(PHONE)),
            step("cdr_target_noanswer", "1795874617", 3, Some(PHONE)),
            step("call_cdr", "1795874617", 4, None),
        ]
    );
    assert_eq!(
        call.cdr_json(),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": "3c26a1f1e7b94f0a@10.0.0.5",
            "tenant_id": TENANT,
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
                "id": PHONE,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": PHONE_URI,
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

#[test]
fn callee_registered_from_two_devices_forks_and_the_loser_is_noanswer() {
    let phone = target_id(40);
    let app = target_id(41);
    let mut call = Call::ext();
    call.add_102(40, phone, PHONE_URI)
        .add_102(41, app, APP_URI)
        .ring(210, phone)
        .ring(650, app)
        .answer(4_321, app)
        .no_answer(4_325, phone, NoAnswerCause::AnsweredElsewhere)
        .end_target(20_000, app, EndReason::CalleeDisconnect)
        .end(20_002, 200, EndReason::CalleeDisconnect);

    assert_eq!(
        call.timeline(),
        [
            step("call_start", "1795874587", 0, None),
            step("cdr_target_add", "1795874587", 1, Some(PHONE)),
            step("cdr_target_add", "1795874587", 2, Some(APP)),
            step("cdr_target_ringing", "1795874587", 3, Some(PHONE)),
            step("cdr_target_ringing", "1795874587", 4, Some(APP)),
            step("cdr_target_answer", "1795874591", 5, Some(APP)),
            step("cdr_target_noanswer", "1795874591", 6, Some(PHONE)),
            step("cdr_target_end", "1795874607", 7, Some(APP)),
            step("call_cdr", "1795874607", 8, None),
        ]
    );
    assert_eq!(
        call.cdr_json(),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": "3c26a1f1e7b94f0a@10.0.0.5",
            "tenant_id": TENANT,
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
            // The phone rang first.
            "ring_time": "1795874587",
            // The app answered.
            "answered_time": "1795874591",
            "ended_time": "1795874607",
            "ring_duration": "4",
            "talk_duration": 16,
            "call_status": "answered",
            "status_code": "0",
            "ended_reason": "callee_disconnect",
            "end_reason": "callee_disconnect",
            "user_data": "",
            "call_targets": [
                {
                    "id": PHONE,
                    "cdr_id": CDR,
                    "direction": "ext",
                    "call_type": "normal_call",
                    "caller": "101",
                    "callee": "102",
                    "destination": PHONE_URI,
                    "start_time": "1795874587",
                    "ring_time": "1795874587",
                    "answered_time": "0",
                    "ended_time": "1795874591",
                    "ring_duration": "4",
                    "talk_duration": "0",
                    "status": "noanswer",
                    "status_code": 0,
                    "end_reason": "None",
                    "did": "",
                    "outbound_caller_id": "",
                    "trunk_name": "",
                },
                {
                    "id": APP,
                    "cdr_id": CDR,
                    "direction": "ext",
                    "call_type": "normal_call",
                    "caller": "101",
                    "callee": "102",
                    "destination": APP_URI,
                    "start_time": "1795874587",
                    "ring_time": "1795874587",
                    "answered_time": "1795874591",
                    "ended_time": "1795874607",
                    "ring_duration": "4",
                    "talk_duration": "16",
                    "status": "answered",
                    "status_code": 0,
                    "end_reason": "callee_disconnect",
                    "did": "",
                    "outbound_caller_id": "",
                    "trunk_name": "",
                },
            ],
            "event_id": event_id(8),
            "sequence": 9,
        })
    );
}

#[test]
fn crash_recovery_closes_an_answered_call_at_its_last_activity() {
    let mut call = answered_call();
    call.apply(47_777, CallEventKind::SessionRecovered);

    assert_eq!(
        call.timeline(),
        [
            step("call_start", "1795874587", 0, None),
            step("cdr_target_add", "1795874587", 1, Some(PHONE)),
            step("cdr_target_ringing", "1795874587", 2, Some(PHONE)),
            step("cdr_target_answer", "1795874592", 3, Some(PHONE)),
            step("call_cdr", "1795874634", 4, None),
        ]
    );
    assert_eq!(
        call.cdr_json(),
        json!({
            "event_type": "call_cdr",
            "session_id": SESSION,
            "cdr_id": CDR,
            "call_id": "3c26a1f1e7b94f0a@10.0.0.5",
            "tenant_id": TENANT,
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
            "ended_time": "1795874634",
            "ring_duration": "5",
            "talk_duration": 42,
            "call_status": "answered",
            "status_code": "0",
            "ended_reason": "None",
            "end_reason": "None",
            "user_data": "",
            "recovered": true,
            "call_targets": [{
                "id": PHONE,
                "cdr_id": CDR,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "101",
                "callee": "102",
                "destination": PHONE_URI,
                "start_time": "1795874587",
                "ring_time": "1795874587",
                "answered_time": "1795874592",
                "ended_time": "1795874634",
                "ring_duration": "5",
                "talk_duration": "42",
                "status": "answered",
                "status_code": 0,
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

#[test]
fn crash_recovery_of_a_session_known_only_from_call_start() {
    let mut call = Call::ext();
    call.apply(1_500, CallEventKind::SessionRecovered);
    let mut expected = targetless_cdr(0);
    expected["call_status"] = json!("fail");
    expected["status_code"] = json!("0");
    expected["ended_time"] = json!("1795874588");
    expected["recovered"] = json!(true);
    assert_eq!(call.cdr_json(), expected);
}
