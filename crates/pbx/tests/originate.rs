//! REST-originated calls (`POST /api/sessions`, SPEC §3's last row), on
//! the virtual clock: the PBX rings the caller's devices first, then the
//! callee, and bridges them with a late offer (`call/originate.rs`). Each
//! test asserts the exact `call_cdr`.
//!
//! | offset  | Unix s     | what                                        |
//! |---------|------------|---------------------------------------------|
//! | 0       | 1795874587 | POST /api/sessions: INVITE to 101's phone    |
//! | +210    | 1795874587 | 101 rings                                   |
//! | +3000   | 1795874590 | 101 answers (offer): INVITE to 102          |
//! | +3400   | 1795874590 | 102 rings                                   |
//! | +5870   | 1795874592 | 102 answers (answer): ACKs to both          |
//! | +31999  | 1795874619 | 102 hangs up                                |

#![recursion_limit = "256"]

mod common;

use common::*;
use pbx::{
    Control, ControlReply, LegRole, LegState, Originate, OriginateError, SessionState, SessionView,
};
use serde_json::{Value, json};
use sip::{HeaderName, Message, Method};

const SESSION: &str = "1179059904569151488";
const CDR: &str = "1179059904569151489";
const TENANT_ID: &str = "883611252155219968";
/// 101's phone, INVITEd at T0.
const ALICE_TARGET: &str = "1179059904569151490";
/// 102's desk phone, INVITEd when 101 answered (+3000).
const BOB_TARGET: &str = "1179059917152063488";
const ALICE_URI: &str = "sip:101@10.0.0.5:5060";
const BOB_URI: &str = "sip:102@10.0.0.7:5062";

fn originate(bench: &mut Bench, caller: &str, callee: &str) -> ControlReply {
    bench.control(Control::Originate(Originate {
        tenant: tenant_id(),
        caller: caller.into(),
        callee: callee.into(),
        user_data: "crm-ticket-4711".into(),
        caller_id: None,
    }))
}

fn sessions(bench: &mut Bench) -> Vec<SessionView> {
    match bench.control(Control::ListSessions {
        tenant: tenant_id(),
    }) {
        ControlReply::Sessions(v) => v,
        other => panic!("{other:?}"),
    }
}

/// The states of the one call in progress and of its legs.
fn states(bench: &mut Bench) -> (SessionState, Vec<(LegRole, String, LegState)>) {
    let all = sessions(bench);
    assert_eq!(all.len(), 1, "{all:?}");
    let v = &all[0];
    let legs = v
        .legs
        .iter()
        .map(|l| (l.role, l.number.clone(), l.state))
        .collect();
    (v.state, legs)
}

/// The `call_cdr`; then, 40 s later, nothing of the call is left.
fn cdr(bench: &mut Bench) -> Value {
    let cdr = bench.cdr();
    let events = bench.call_events.len();
    bench.at(bench.now + 40_000);
    assert_eq!(bench.engine.sessions(), 0, "the session is dropped");
    assert_eq!(bench.call_events.len(), events, "no event after call_cdr");
    assert!(sessions(bench).is_empty());
    cdr
}

/// The call is placed at T0; 101's phone rings at +210. Returns 101's
/// side of the call and the INVITE it got.
fn caller_ringing() -> (Cast, Call, Message) {
    let mut cast = Cast::new();
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(0);
    let reply = originate(bench, "101", "102");
    assert_eq!(
        reply,
        ControlReply::Originated(Ok(cdr::SessionId::from(cdr::Id::from_u64(
            SESSION.parse().unwrap()
        ))))
    );
    let invite = bench.take_one(alice.peer);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    // Late offer; the phone is shown whom it will be connected to.
    assert!(
        invite.body().is_empty(),
        "no SDP in the INVITE to the caller"
    );
    let from = invite.header(HeaderName::From).unwrap();
    assert!(
        from.starts_with("\"Jason\" <sip:102@acme.example>"),
        "{from}"
    );
    assert_eq!(invite.header_named("X-Session-Id"), Some(SESSION));
    let a_call = alice.incoming(&invite);
    bench.at(210);
    bench.send(alice.peer, &alice.respond(&a_call, &invite, 180, None));
    (cast, a_call, invite)
}

/// ... 101 answers at +3000 with its offer, which 102's phone gets in its
/// INVITE; 102 rings at +3400.
fn callee_ringing() -> (Cast, Call, Message, Call, Message) {
    let (mut cast, a_call, a_invite) = caller_ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(3000);
    bench.send(
        alice.peer,
        &alice.respond(&a_call, &a_invite, 200, Some(SDP_A)),
    );
    assert!(
        bench.take(alice.peer).is_empty(),
        "no ACK before the callee answers"
    );
    let b_invite = bench.take_one(bob.peer);
    assert!(is(&b_invite, Method::Invite), "{}", b_invite.summary());
    assert_eq!(b_invite.body(), SDP_A.as_bytes(), "the caller's offer");
    let from = b_invite.header(HeaderName::From).unwrap();
    assert!(from.starts_with("\"Tom\" <sip:101@acme.example>"), "{from}");
    let b_call = bob.incoming(&b_invite);
    bench.at(3400);
    bench.send(bob.peer, &bob.respond(&b_call, &b_invite, 180, None));
    assert!(bench.take(alice.peer).is_empty());
    (cast, a_call, a_invite, b_call, b_invite)
}

/// ... 102 answers at +5870: 101's phone gets the answer in its ACK.
fn bridged() -> (Cast, Call, Call) {
    let (mut cast, a_call, _, b_call, b_invite) = callee_ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(5870);
    bench.send(bob.peer, &bob.respond(&b_call, &b_invite, 200, Some(SDP_B)));
    let ack = bench.take_one(alice.peer);
    assert!(is(&ack, Method::Ack), "{}", ack.summary());
    assert_eq!(ack.body(), SDP_B.as_bytes(), "the callee's answer");
    let ack = bench.take_one(bob.peer);
    assert!(is(&ack, Method::Ack), "{}", ack.summary());
    assert!(ack.body().is_empty());
    (cast, a_call, b_call)
}

/// The call-level fields every originated call shares.
fn call_fields() -> Value {
    json!({
        "event_type": "call_cdr",
        "session_id": SESSION,
        "cdr_id": CDR,
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
        "user_data": "crm-ticket-4711",
    })
}

fn with(base: Value, more: Value) -> Value {
    let mut out = base;
    for (k, v) in more.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

fn target(more: Value) -> Value {
    with(
        json!({
            "cdr_id": CDR,
            "direction": "ext",
            "call_type": "normal_call",
            "did": "",
            "outbound_caller_id": "",
            "trunk_name": "",
        }),
        more,
    )
}

/// The Call-ID of the INVITE to 101's phone, the CDR's `call_id`.
fn first_call_id(bench: &Bench) -> String {
    bench
        .sent_to(udp(ALICE))
        .into_iter()
        .find(|m| is(m, Method::Invite))
        .unwrap()
        .call_id()
        .unwrap()
        .to_owned()
}

/// Both answer, the callee hangs up.
#[test]
fn originated_answered_and_callee_hangs_up() {
    let (mut cast, a_call, mut b_call) = bridged();
    let Cast { bench, alice, bob } = &mut cast;
    assert_eq!(
        states(bench),
        (
            SessionState::Answered,
            vec![
                (LegRole::CallerDevice, "101".into(), LegState::Answered),
                (LegRole::Callee, "102".into(), LegState::Answered),
            ]
        )
    );
    bench.at(31_999);
    let bye = bob.request(&mut b_call, "BYE", None);
    bench.send(bob.peer, &bye);
    assert_eq!(bench.take_one(bob.peer).status(), Some(200));
    let bye = bench.take_one(alice.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    bench.send(alice.peer, &alice.respond(&a_call, &bye, 200, None));

    assert_eq!(
        bench.timeline(),
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
            "call_cdr"
        ]
    );
    let start = &bench.json()[0];
    assert_eq!(start["user_data"], "crm-ticket-4711");
    assert_eq!(start["caller"], "sip:101@acme.example");
    assert_eq!(start["callee"], "sip:102@acme.example");
    let call_id = first_call_id(bench);
    assert_eq!(
        cdr(bench),
        with(
            call_fields(),
            json!({
                "call_id": call_id,
                "ring_time": "1795874587",
                "answered_time": "1795874590",
                "ended_time": "1795874619",
                "ring_duration": "3",
                "talk_duration": 29,
                "call_status": "answered",
                "status_code": "0",
                "ended_reason": "callee_disconnect",
                "end_reason": "callee_disconnect",
                "call_targets": [
                    target(json!({
                        "id": ALICE_TARGET,
                        "caller": "102",
                        "callee": "101",
                        "destination": ALICE_URI,
                        "start_time": "1795874587",
                        "ring_time": "1795874587",
                        "answered_time": "1795874590",
                        "ended_time": "1795874619",
                        "ring_duration": "3",
                        "talk_duration": "29",
                        "status": "answered",
                        "status_code": 0,
                        "end_reason": "callee_disconnect",
                    })),
                    target(json!({
                        "id": BOB_TARGET,
                        "caller": "101",
                        "callee": "102",
                        "destination": BOB_URI,
                        "start_time": "1795874590",
                        "ring_time": "1795874590",
                        "answered_time": "1795874592",
                        "ended_time": "1795874619",
                        "ring_duration": "2",
                        "talk_duration": "27",
                        "status": "answered",
                        "status_code": 0,
                        "end_reason": "callee_disconnect",
                    })),
                ],
                "event_id": "105cdcbc-7cc0-8100-8000-000000000009",
                "sequence": 10,
            })
        )
    );
}

/// The caller answers, the callee is busy: the caller's phone gets an ACK
/// rejecting its offer, then BYE; the call was answered (by the caller).
#[test]
fn originated_with_the_callee_busy() {
    let (mut cast, a_call, _, b_call, b_invite) = callee_ringing();
    let Cast { bench, alice, bob } = &mut cast;
    assert_eq!(
        states(bench),
        (
            SessionState::CallingCallee,
            vec![
                (LegRole::CallerDevice, "101".into(), LegState::Answered),
                (LegRole::Callee, "102".into(), LegState::Ringing),
            ]
        )
    );
    bench.at(4321);
    bench.send(bob.peer, &bob.respond(&b_call, &b_invite, 486, None));
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    let to_alice = bench.take(alice.peer);
    let kinds: Vec<String> = to_alice.iter().map(Message::summary).collect();
    assert_eq!(to_alice.len(), 2, "{kinds:?}");
    assert!(is(&to_alice[0], Method::Ack), "{kinds:?}");
    let answer = String::from_utf8(to_alice[0].body().to_vec()).unwrap();
    assert!(answer.contains("m=audio 0 RTP/AVP 0 8"), "{answer}");
    assert!(is(&to_alice[1], Method::Bye), "{kinds:?}");
    bench.send(alice.peer, &alice.respond(&a_call, &to_alice[1], 200, None));
    assert_eq!(
        bench.timeline(),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_answer",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_fail",
            "cdr_target_end",
            "call_cdr"
        ]
    );

    let call_id = first_call_id(bench);
    assert_eq!(
        cdr(bench),
        with(
            call_fields(),
            json!({
                "call_id": call_id,
                "ring_time": "1795874587",
                "answered_time": "1795874590",
                "ended_time": "1795874591",
                "ring_duration": "3",
                "talk_duration": 1,
                "call_status": "answered",
                "status_code": "0",
                "ended_reason": "None",
                "end_reason": "None",
                "call_targets": [
                    target(json!({
                        "id": ALICE_TARGET,
                        "caller": "102",
                        "callee": "101",
                        "destination": ALICE_URI,
                        "start_time": "1795874587",
                        "ring_time": "1795874587",
                        "answered_time": "1795874590",
                        "ended_time": "1795874591",
                        "ring_duration": "3",
                        "talk_duration": "1",
                        "status": "answered",
                        "status_code": 0,
                        "end_reason": "None",
                    })),
                    target(json!({
                        "id": BOB_TARGET,
                        "caller": "101",
                        "callee": "102",
                        "destination": BOB_URI,
                        "start_time": "1795874590",
                        "ring_time": "1795874590",
                        "answered_time": "0",
                        "ended_time": "1795874591",
                        "ring_duration": "1",
                        "talk_duration": "0",
                        "status": "noanswer",
                        "status_code": 486,
                        "end_reason": "None",
                    })),
                ],
                "event_id": "105cdcbc-7cc0-8100-8000-000000000008",
                "sequence": 9,
            })
        )
    );
}

/// Nobody picks up the caller's phone: 408 at its ring timeout (30 s);
/// the callee is never called.
#[test]
fn originated_and_the_caller_does_not_answer() {
    let (mut cast, a_call, a_invite) = caller_ringing();
    let Cast { bench, alice, bob } = &mut cast;
    assert_eq!(
        states(bench),
        (
            SessionState::Ringing,
            vec![(LegRole::CallerDevice, "101".into(), LegState::Ringing)]
        )
    );
    bench.at(30_000);
    let cancel = bench.take_one(alice.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    bench.send(alice.peer, &alice.respond(&a_call, &cancel, 200, None));
    bench.send(alice.peer, &alice.respond(&a_call, &a_invite, 487, None));
    assert!(is(&bench.take_one(alice.peer), Method::Ack));
    assert!(
        bench.take(bob.peer).is_empty(),
        "the callee is never called"
    );
    assert_eq!(
        bench.timeline(),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_noanswer",
            "call_cdr"
        ]
    );

    let call_id = first_call_id(bench);
    assert_eq!(
        cdr(bench),
        with(
            call_fields(),
            json!({
                "call_id": call_id,
                "ring_time": "1795874587",
                "answered_time": "0",
                "ended_time": "1795874617",
                "ring_duration": "30",
                "talk_duration": 0,
                "call_status": "noanswer",
                "status_code": "408",
                "ended_reason": "None",
                "end_reason": "None",
                "call_targets": [
                    target(json!({
                        "id": ALICE_TARGET,
                        "caller": "102",
                        "callee": "101",
                        "destination": ALICE_URI,
                        "start_time": "1795874587",
                        "ring_time": "1795874587",
                        "answered_time": "0",
                        "ended_time": "1795874617",
                        "ring_duration": "30",
                        "talk_duration": "0",
                        "status": "noanswer",
                        "status_code": 408,
                        "end_reason": "None",
                    })),
                ],
                "event_id": "105cdcbc-7cc0-8100-8000-000000000004",
                "sequence": 5,
            })
        )
    );
}

/// `POST /api/sessions/{id}/destroy` on the bridged call: BYE to both
/// phones, the CDR ends `None` (no party hung up).
#[test]
fn destroying_an_originated_call() {
    let (mut cast, a_call, b_call) = bridged();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(12_400);
    let id = sessions(bench)[0].id;
    let other_tenant = cdr::TenantId::from(cdr::Id::from_u64(1));
    assert_eq!(
        bench.control(Control::Destroy {
            tenant: other_tenant,
            id
        }),
        ControlReply::Destroyed(false),
        "another tenant's call is not found"
    );
    assert_eq!(
        bench.control(Control::Destroy {
            tenant: tenant_id(),
            id
        }),
        ControlReply::Destroyed(true)
    );
    for (phone, call) in [(&*alice, &a_call), (&*bob, &b_call)] {
        let bye = bench.take_one(phone.peer);
        assert!(is(&bye, Method::Bye), "{}", bye.summary());
        bench.send(phone.peer, &phone.respond(call, &bye, 200, None));
    }
    assert_eq!(
        bench.control(Control::Destroy {
            tenant: tenant_id(),
            id
        }),
        ControlReply::Destroyed(false),
        "an ended call is not destroyed twice"
    );

    let call_id = first_call_id(bench);
    let cdr = cdr(bench);
    assert_eq!(
        cdr,
        with(
            call_fields(),
            json!({
                "call_id": call_id,
                "ring_time": "1795874587",
                "answered_time": "1795874590",
                "ended_time": "1795874599",
                "ring_duration": "3",
                "talk_duration": 9,
                "call_status": "answered",
                "status_code": "0",
                "ended_reason": "None",
                "end_reason": "None",
                "call_targets": [
                    target(json!({
                        "id": ALICE_TARGET,
                        "caller": "102",
                        "callee": "101",
                        "destination": ALICE_URI,
                        "start_time": "1795874587",
                        "ring_time": "1795874587",
                        "answered_time": "1795874590",
                        "ended_time": "1795874599",
                        "ring_duration": "3",
                        "talk_duration": "9",
                        "status": "answered",
                        "status_code": 0,
                        "end_reason": "None",
                    })),
                    target(json!({
                        "id": BOB_TARGET,
                        "caller": "101",
                        "callee": "102",
                        "destination": BOB_URI,
                        "start_time": "1795874590",
                        "ring_time": "1795874590",
                        "answered_time": "1795874592",
                        "ended_time": "1795874599",
                        "ring_duration": "2",
                        "talk_duration": "7",
                        "status": "answered",
                        "status_code": 0,
                        "end_reason": "None",
                    })),
                ],
                "event_id": "105cdcbc-7cc0-8100-8000-000000000009",
                "sequence": 10,
            })
        )
    );
}

/// Destroying an ordinary call while it rings: CANCEL to the target, 487
/// to the caller; the call is `noanswer`, `"487"`, `None`.
#[test]
fn destroying_a_ringing_call() {
    let (mut cast, a_call, b_call, b_invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    let all = sessions(bench);
    assert_eq!(all.len(), 1);
    assert!(!all[0].originated);
    assert_eq!(all[0].state, SessionState::Ringing);
    assert_eq!(
        all[0]
            .legs
            .iter()
            .map(|l| (l.role, l.state))
            .collect::<Vec<_>>(),
        [
            (LegRole::Caller, LegState::Ringing),
            (LegRole::Callee, LegState::Ringing)
        ]
    );
    bench.at(12_400);
    let id = all[0].id;
    assert_eq!(
        bench.control(Control::Destroy {
            tenant: tenant_id(),
            id
        }),
        ControlReply::Destroyed(true)
    );
    let refused = bench.take_one(alice.peer);
    assert_eq!(refused.status(), Some(487));
    bench.send(alice.peer, &alice.ack_failure(&a_call, &refused));
    let cancel = bench.take_one(bob.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    bench.send(bob.peer, &bob.respond(&b_call, &cancel, 200, None));
    bench.send(bob.peer, &bob.respond(&b_call, &b_invite, 487, None));
    assert!(is(&bench.take_one(bob.peer), Method::Ack));

    let cdr = cdr(bench);
    assert_eq!(cdr["call_status"], "noanswer");
    assert_eq!(cdr["status_code"], "487");
    assert_eq!(cdr["end_reason"], "None");
    assert_eq!(cdr["user_data"], "");
    assert_eq!(cdr["call_targets"][0]["status_code"], 487);
    assert_eq!(cdr["call_targets"][0]["end_reason"], "None");
}

/// Refusals change nothing: no INVITE, no CDR fact.
#[test]
fn originate_refusals_send_nothing() {
    let mut cast = Cast::new();
    let Cast { bench, .. } = &mut cast;
    bench.at(0);
    let wire = bench.wire.len();
    for (caller, callee, why) in [
        ("999", "102", OriginateError::UnknownCaller),
        ("101", "999", OriginateError::UnknownCallee),
        ("101", "101", OriginateError::CalleeIsCaller),
        // 104 never registers.
        ("104", "102", OriginateError::CallerUnavailable),
    ] {
        assert_eq!(
            originate(bench, caller, callee),
            ControlReply::Originated(Err(why)),
            "{caller} → {callee}"
        );
    }
    let unknown = bench.control(Control::Originate(Originate {
        tenant: cdr::TenantId::from(cdr::Id::from_u64(1)),
        caller: "101".into(),
        callee: "102".into(),
        user_data: String::new(),
        caller_id: None,
    }));
    assert_eq!(
        unknown,
        ControlReply::Originated(Err(OriginateError::UnknownTenant))
    );
    bench.input(pbx::Input::Drain {
        grace: std::time::Duration::from_secs(5),
    });
    assert_eq!(
        originate(bench, "101", "102"),
        ControlReply::Originated(Err(OriginateError::NotAccepting))
    );
    assert_eq!(bench.wire.len(), wire, "nothing was sent");
    assert!(bench.call_events.is_empty(), "nothing was recorded");
    assert_eq!(bench.engine.sessions(), 0);
}

/// The caller hangs up while the callee rings: the callee's phone is
/// CANCELled; both the caller's target and the call end
/// `caller_disconnect`.
#[test]
fn the_caller_hangs_up_while_the_callee_rings() {
    let (mut cast, mut a_call, _, b_call, b_invite) = callee_ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(4321);
    // The phone never got its ACK; it gives up with BYE (here early).
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let cancel = bench.take_one(bob.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    bench.send(bob.peer, &bob.respond(&b_call, &cancel, 200, None));
    bench.send(bob.peer, &bob.respond(&b_call, &b_invite, 487, None));
    assert!(is(&bench.take_one(bob.peer), Method::Ack));

    let cdr = cdr(bench);
    assert_eq!(cdr["call_status"], "answered");
    assert_eq!(cdr["end_reason"], "caller_disconnect");
    assert_eq!(cdr["call_targets"][0]["end_reason"], "caller_disconnect");
    assert_eq!(cdr["call_targets"][1]["status_code"], 487);
    assert_eq!(cdr["call_targets"][1]["end_reason"], "cancelled");
}
