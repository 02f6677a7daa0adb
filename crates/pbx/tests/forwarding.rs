//! Forwarding (SPEC §3: "forward on no answer / busy / unavailable /
//! always"), played as SIP messages on the virtual clock: which devices
//! ring, what the caller hears, and the exact `call_cdr` with a target per
//! destination, plus the REST `reroute_reason` each target carries.
//!
//! Cast: 101 (Tom) calls 102 (Jason, desk phone at 10.0.0.7); 103 (Ann,
//! ring timeout 20 s) answers forwarded calls from 10.0.0.9; 104 (Bob) is
//! never registered.

#![recursion_limit = "256"]

mod common;

use cdr::RerouteReason;
use common::golden::*;
use common::*;
use pbx::{ForwardCondition, Forwarding, RoutingNotice};
use serde_json::{Value, json};
use sip::{Message, Method};

const ANN: &str = "10.0.0.9:5066";

/// Sets `ext`'s forwarding rules.
fn forward(bench: &mut Bench, ext: &str, rules: &[(ForwardCondition, &str)]) {
    let d = bench.engine.directory_mut();
    let mut user = d.user(tenant_id(), ext).expect("fixture user").clone();
    user.forwarding = rules
        .iter()
        .fold(Forwarding::default(), |f, (c, dest)| f.with(*c, dest));
    d.upsert_user(user).unwrap();
}

/// The standard cast plus 103 registered.
fn cast_with_ann() -> (Cast, Phone) {
    let mut cast = Cast::new();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    cast.bench.register(&mut ann);
    (cast, ann)
}

/// `phone` gets an INVITE: it rings at once, and answers `after` ms later.
/// Returns its call and the INVITE.
fn rings_and_answers(bench: &mut Bench, phone: &mut Phone, after: i64) -> (Call, Message) {
    let invite = bench.take_one(phone.peer);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    let mut call = phone.incoming(&invite);
    bench.send(phone.peer, &phone.respond(&call, &invite, 180, None));
    bench.at(bench.now + after);
    bench.send(phone.peer, &phone.respond(&call, &invite, 200, Some(SDP_B)));
    let _ = &mut call;
    (call, invite)
}

/// The caller takes the 200 (ACKs it), talks `talk` ms, hangs up; the
/// callee answers the BYE.
fn talk_and_hang_up(
    bench: &mut Bench,
    caller: &mut Phone,
    a_call: &mut Call,
    callee: &mut Phone,
    b_call: &Call,
    talk: i64,
) {
    let responses = bench.take(caller.peer);
    let ok = responses
        .iter()
        .find(|m| m.status() == Some(200))
        .expect("the caller got a 200")
        .clone();
    a_call.confirm(&ok);
    bench.send(caller.peer, &caller.ack(a_call, &ok, None));
    let _ack = bench.take_one(callee.peer);
    bench.at(bench.now + talk);
    let bye = caller.request(a_call, "BYE", None);
    bench.send(caller.peer, &bye);
    assert_eq!(bench.take_one(caller.peer).status(), Some(200));
    let bye = bench.take_one(callee.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    bench.send(callee.peer, &callee.respond(b_call, &bye, 200, None));
}

/// The call-level fields a forwarded call's CDR must show, and each
/// target's `(callee, status, status_code, end_reason)`.
fn summary(cdr: &Value) -> (Value, Vec<Value>) {
    let call = json!({
        "callee": cdr["callee"],
        "call_status": cdr["call_status"],
        "status_code": cdr["status_code"],
        "ended_reason": cdr["ended_reason"],
    });
    let targets = cdr["call_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!([t["callee"], t["status"], t["status_code"], t["end_reason"]]))
        .collect();
    (call, targets)
}

/// 102 forwards every call to 103: 102's phone never rings.
#[test]
fn forward_always() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    forward(bench, "102", &[(ForwardCondition::Always, "103")]);
    bench.at(-40);
    let mut a_call = bench.dial(alice, "102");
    assert!(bench.take(bob.peer).is_empty(), "102 does not ring");
    let (b_call, _) = rings_and_answers(bench, &mut ann, 3000);
    talk_and_hang_up(bench, alice, &mut a_call, &mut ann, &b_call, 10_000);

    assert_eq!(
        bench.timeline(),
        [
            "call_start",
            "call_update_info",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_answer",
            "cdr_target_end",
            "call_cdr"
        ]
    );
    assert_eq!(
        bench.targets(),
        [("103".into(), Some(RerouteReason::ForwardingUnconditional))]
    );
    let (call, targets) = summary(&bench.cdr());
    assert_eq!(
        call,
        json!({"callee": "102", "call_status": "answered", "status_code": "0", "ended_reason": "caller_disconnect"})
    );
    assert_eq!(
        targets,
        [json!(["103", "answered", 0, "caller_disconnect"])]
    );
    let update = bench
        .json()
        .into_iter()
        .find(|e| e["event_type"] == "call_update_info")
        .unwrap();
    assert_eq!(update["callee"], "sip:103@acme.example", "{update}");
    assert_eq!(update["callee_display_name"], "Ann");
    // The exact call_cdr.
    golden(
        &cdr_of(bench, 0),
        common::golden::call(
            (SESSION, CDR, CALL_ID),
            ("102", "Jason"),
            ("1795874587", "1795874587", "1795874590", "1795874600"),
            ("3", 10),
            ("answered", "0", "caller_disconnect"),
            vec![target(
                ("1179059904569151490", CDR, "normal_call"),
                ("103", ANN_URI),
                ("1795874587", "1795874587", "1795874590", "1795874600"),
                ("3", "10"),
                ("answered", 0, "caller_disconnect"),
            )],
            7,
        ),
    );
}

/// 102 answers 486: the call goes on to 103, who answers.
#[test]
fn forward_on_busy() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    forward(bench, "102", &[(ForwardCondition::Busy, "103")]);
    bench.at(-40);
    let mut a_call = bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    let b_call = bob.incoming(&invite);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 180, None));
    bench.at(1000);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 486, None));
    assert!(
        is(&bench.take_one(bob.peer), Method::Ack),
        "the 486 is ACKed"
    );
    assert!(
        bench
            .take(alice.peer)
            .iter()
            .all(|m| m.status() != Some(486)),
        "the caller does not hear the 486"
    );
    let (c_call, _) = rings_and_answers(bench, &mut ann, 2000);
    talk_and_hang_up(bench, alice, &mut a_call, &mut ann, &c_call, 5000);

    assert_eq!(
        bench.targets(),
        [
            ("102".into(), None),
            ("103".into(), Some(RerouteReason::ForwardingBusy))
        ]
    );
    let (call, targets) = summary(&bench.cdr());
    assert_eq!(
        call,
        json!({"callee": "102", "call_status": "answered", "status_code": "0", "ended_reason": "caller_disconnect"})
    );
    assert_eq!(
        targets,
        [
            json!(["102", "noanswer", 486, "None"]),
            json!(["103", "answered", 0, "caller_disconnect"])
        ]
    );
    // The exact call_cdr.
    golden(
        &cdr_of(bench, 0),
        common::golden::call(
            (SESSION, CDR, CALL_ID),
            ("102", "Jason"),
            ("1795874587", "1795874587", "1795874590", "1795874595"),
            ("3", 5),
            ("answered", "0", "caller_disconnect"),
            vec![
                target(
                    ("1179059904569151490", CDR, "normal_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "0", "1795874588"),
                    ("1", "0"),
                    ("noanswer", 486, "None"),
                ),
                target(
                    ("1179059908763455488", CDR, "normal_call"),
                    ("103", ANN_URI),
                    ("1795874588", "1795874588", "1795874590", "1795874595"),
                    ("2", "5"),
                    ("answered", 0, "caller_disconnect"),
                ),
            ],
            10,
        ),
    );
}

/// 102 rings out its 30 s: CANCEL to 102, then 103 rings.
#[test]
fn forward_on_no_answer() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    forward(bench, "102", &[(ForwardCondition::NoAnswer, "103")]);
    bench.at(-40);
    let mut a_call = bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    let b_call = bob.incoming(&invite);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 180, None));
    bench.at(30_000);
    let cancel = bench.take_one(bob.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    bench.send(bob.peer, &bob.respond(&b_call, &cancel, 200, None));
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 487, None));
    assert!(
        bench
            .take(alice.peer)
            .iter()
            .all(|m| m.status() != Some(408)),
        "the caller hears no 408"
    );
    let (c_call, _) = rings_and_answers(bench, &mut ann, 4000);
    talk_and_hang_up(bench, alice, &mut a_call, &mut ann, &c_call, 1000);

    let (call, targets) = summary(&bench.cdr());
    assert_eq!(call["call_status"], "answered");
    assert_eq!(
        targets,
        [
            json!(["102", "noanswer", 408, "None"]),
            json!(["103", "answered", 0, "caller_disconnect"])
        ]
    );
    assert_eq!(
        bench.targets()[1].1,
        Some(RerouteReason::ForwardingNoAnswer)
    );
    // The exact call_cdr.
    golden(
        &cdr_of(bench, 0),
        common::golden::call(
            (SESSION, CDR, CALL_ID),
            ("102", "Jason"),
            ("1795874587", "1795874587", "1795874621", "1795874622"),
            ("34", 1),
            ("answered", "0", "caller_disconnect"),
            vec![
                target(
                    ("1179059904569151490", CDR, "normal_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "0", "1795874617"),
                    ("30", "0"),
                    ("noanswer", 408, "None"),
                ),
                target(
                    ("1179060030398271488", CDR, "normal_call"),
                    ("103", ANN_URI),
                    ("1795874617", "1795874617", "1795874621", "1795874622"),
                    ("4", "1"),
                    ("answered", 0, "caller_disconnect"),
                ),
            ],
            10,
        ),
    );
}

/// 104 has no device: its unavailable rule sends the call to 103, whose
/// own ring timeout (20 s) then applies; nobody answers: 408.
#[test]
fn forward_when_unavailable_then_ring_out() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, .. } = &mut cast;
    forward(bench, "104", &[(ForwardCondition::Unavailable, "103")]);
    bench.at(-40);
    let a_call = bench.dial(alice, "104");
    let invite = bench.take_one(ann.peer);
    let c_call = ann.incoming(&invite);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 180, None));
    bench.at(19_999);
    assert!(
        bench
            .take(alice.peer)
            .iter()
            .all(|m| m.status() != Some(408))
    );
    bench.at(20_000);
    let timeout = bench
        .take(alice.peer)
        .into_iter()
        .find(|m| m.status() == Some(408))
        .expect("408 after 103's 20 s");
    bench.send(alice.peer, &alice.ack_failure(&a_call, &timeout));
    let cancel = bench.take_one(ann.peer);
    bench.send(ann.peer, &ann.respond(&c_call, &cancel, 200, None));
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 487, None));

    let (call, targets) = summary(&bench.cdr());
    assert_eq!(
        call,
        json!({"callee": "104", "call_status": "noanswer", "status_code": "408", "ended_reason": "None"})
    );
    assert_eq!(targets, [json!(["103", "noanswer", 408, "None"])]);
    assert_eq!(
        bench.targets(),
        [("103".into(), Some(RerouteReason::ForwardingNotReachable))]
    );
    // The exact call_cdr.
    golden(
        &cdr_of(bench, 0),
        common::golden::call(
            (SESSION, CDR, CALL_ID),
            ("104", "Bob"),
            ("1795874587", "1795874587", "0", "1795874607"),
            ("20", 0),
            ("noanswer", "408", "None"),
            vec![target(
                ("1179059904569151490", CDR, "normal_call"),
                ("103", ANN_URI),
                ("1795874587", "1795874587", "0", "1795874607"),
                ("20", "0"),
                ("noanswer", 408, "None"),
            )],
            6,
        ),
    );
}

/// A chain of two: 102 always → 104 (no device) unavailable → 103.
#[test]
fn forward_chain_of_two() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    forward(bench, "102", &[(ForwardCondition::Always, "104")]);
    forward(
        bench,
        "104",
        &[(ForwardCondition::Unavailable, "sip:103@acme.example")],
    );
    bench.at(-40);
    let mut a_call = bench.dial(alice, "102");
    assert!(bench.take(bob.peer).is_empty());
    let (c_call, _) = rings_and_answers(bench, &mut ann, 1000);
    talk_and_hang_up(bench, alice, &mut a_call, &mut ann, &c_call, 1000);

    assert_eq!(
        bench.targets(),
        [("103".into(), Some(RerouteReason::ForwardingNotReachable))]
    );
    let updates: Vec<Value> = bench
        .json()
        .into_iter()
        .filter(|e| e["event_type"] == "call_update_info")
        .map(|e| e["callee"].clone())
        .collect();
    assert_eq!(
        updates,
        [json!("sip:104@acme.example"), json!("sip:103@acme.example")]
    );
    assert_eq!(bench.cdr()["callee"], "102");
    // The exact call_cdr.
    golden(
        &cdr_of(bench, 0),
        common::golden::call(
            (SESSION, CDR, CALL_ID),
            ("102", "Jason"),
            ("1795874587", "1795874587", "1795874588", "1795874589"),
            ("1", 1),
            ("answered", "0", "caller_disconnect"),
            vec![target(
                ("1179059904569151490", CDR, "normal_call"),
                ("103", ANN_URI),
                ("1795874587", "1795874587", "1795874588", "1795874589"),
                ("1", "1"),
                ("answered", 0, "caller_disconnect"),
            )],
            8,
        ),
    );
}

/// 102 and 103 forward to each other: the loop ends the call 482, with a
/// CDR, and the engine says why.
#[test]
fn forward_loop_ends_482() {
    let (mut cast, ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    forward(bench, "102", &[(ForwardCondition::Always, "103")]);
    forward(bench, "103", &[(ForwardCondition::Always, "102")]);
    bench.at(-40);
    let a_call = bench.dial(alice, "102");
    let answer = bench.take_one(alice.peer);
    assert_eq!(answer.status(), Some(482));
    bench.send(alice.peer, &alice.ack_failure(&a_call, &answer));
    assert!(bench.take(bob.peer).is_empty());
    assert!(bench.take(ann.peer).is_empty());

    let (call, targets) = summary(&bench.cdr());
    assert_eq!(
        call,
        json!({"callee": "102", "call_status": "fail", "status_code": "482", "ended_reason": "None"})
    );
    assert!(targets.is_empty());
    assert_eq!(
        bench.notices(),
        [RoutingNotice::Loop {
            from: "103".into(),
            destination: "102".into()
        }]
    );
    // The exact call_cdr.
    golden(
        &cdr_of(bench, 0),
        common::golden::call(
            (SESSION, CDR, CALL_ID),
            ("102", "Jason"),
            ("1795874587", "0", "0", "1795874587"),
            ("0", 0),
            ("fail", "482", "None"),
            vec![],
            3,
        ),
    );
}

/// A forward to an external number no outbound rule takes (this fixture
/// has no trunks) is 404 with a notice; with a rule it leaves by a trunk
/// (`trunks.rs`, `in2out`).
#[test]
fn forward_to_an_external_number_without_an_outbound_rule_is_404() {
    let mut cast = Cast::new();
    let Cast { bench, alice, .. } = &mut cast;
    forward(
        bench,
        "104",
        &[(ForwardCondition::Unavailable, "+4930123456")],
    );
    bench.at(-40);
    let a_call = bench.dial(alice, "104");
    let answer = bench.take_one(alice.peer);
    assert_eq!(answer.status(), Some(404));
    bench.send(alice.peer, &alice.ack_failure(&a_call, &answer));
    assert_eq!(bench.cdr()["status_code"], "404");
    assert_eq!(
        bench.notices(),
        [RoutingNotice::ExternalWithoutTrunk {
            from: "104".into(),
            destination: "+4930123456".into()
        }]
    );
}

/// Mixed failures (one device busy, one unreachable) forward nowhere: the
/// caller hears the best failure.
#[test]
fn mixed_failures_do_not_forward() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    let mut app = Phone::new("102", "Jason", tcp(BOB_APP));
    bench.register(&mut app);
    forward(
        bench,
        "102",
        &[
            (ForwardCondition::Busy, "103"),
            (ForwardCondition::Unavailable, "103"),
        ],
    );
    bench.at(-40);
    let a_call = bench.dial(alice, "102");
    let desk_invite = bench.take_one(bob.peer);
    let desk = bob.incoming(&desk_invite);
    let app_invite = bench.take_one(app.peer);
    let app_call = app.incoming(&app_invite);
    bench.send(bob.peer, &bob.respond(&desk, &desk_invite, 486, None));
    bench.send(app.peer, &app.respond(&app_call, &app_invite, 480, None));
    let answer = bench
        .take(alice.peer)
        .into_iter()
        .find(|m| m.status().is_some_and(|c| c >= 300))
        .unwrap();
    assert_eq!(answer.status(), Some(486));
    bench.send(alice.peer, &alice.ack_failure(&a_call, &answer));
    assert!(bench.take(ann.peer).is_empty(), "103 never rings");
    let _ = &mut ann;
}

/// Sets `ext`'s concurrent-call limit.
fn limit(bench: &mut Bench, ext: &str, max: Option<u32>) {
    let d = bench.engine.directory_mut();
    let mut user = d.user(tenant_id(), ext).expect("fixture user").clone();
    user.max_concurrent_calls = max;
    d.upsert_user(user).unwrap();
}

/// 102 may be in one call, and is (with 101): a call from 103 is busy
/// without ringing 102, so 102's busy rule sends it to 104. Without the
/// rule 103 hears 486; once the first call ends, 102 rings again.
#[test]
fn busy_at_the_concurrent_call_limit() {
    let (mut cast, mut a_call, b_call) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    let active = |bench: &Bench, ext: &str| bench.engine.active_calls().of(tenant_id(), ext);
    assert_eq!((active(bench, "101"), active(bench, "102")), (1, 1));
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    let mut dave = Phone::new("104", "Bob", udp("10.0.0.11:5070"));
    bench.register(&mut ann);
    bench.register(&mut dave);
    limit(bench, "102", Some(1));
    forward(bench, "102", &[(ForwardCondition::Busy, "104")]);

    bench.at(7000);
    let c_call = bench.dial(&mut ann, "102");
    assert!(bench.take(bob.peer).is_empty(), "102 is not rung");
    let invite = bench.take_one(dave.peer);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    let d_call = dave.incoming(&invite);
    assert_eq!(active(bench, "102"), 1, "a call forwarded away holds 104");
    assert_eq!(active(bench, "104"), 1);
    bench.send(dave.peer, &dave.respond(&d_call, &invite, 486, None));
    assert!(is(&bench.take_one(dave.peer), Method::Ack));
    let busy = bench
        .take(ann.peer)
        .into_iter()
        .find(|m| m.status().is_some_and(|s| s >= 300))
        .expect("103 hears the final answer");
    assert_eq!(busy.status(), Some(486));
    bench.send(ann.peer, &ann.ack_failure(&c_call, &busy));
    assert_eq!(active(bench, "104"), 0);

    // No rule: 486 at once, and no target at all.
    forward(bench, "102", &[]);
    bench.at(8000);
    let c_call = bench.dial(&mut ann, "102");
    let busy = bench.take_one(ann.peer);
    assert_eq!(busy.status(), Some(486), "{}", busy.summary());
    bench.send(ann.peer, &ann.ack_failure(&c_call, &busy));
    assert!(bench.take(bob.peer).is_empty());
    assert_eq!(
        bench.targets(),
        [
            ("102".into(), None),
            ("104".into(), Some(RerouteReason::ForwardingBusy))
        ]
    );

    // The first call ends: 102 is free again.
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    let bye = bench.take_one(bob.peer);
    bench.send(bob.peer, &bob.respond(&b_call, &bye, 200, None));
    assert_eq!((active(bench, "101"), active(bench, "102")), (0, 0));
    bench.at(9000);
    let _ = bench.dial(&mut ann, "102");
    let invite = bench.take_one(bob.peer);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    assert_eq!(active(bench, "102"), 1);
}

/// No limit (the default): 102 rings for a second call while in one.
#[test]
fn no_call_limit_by_default() {
    let (mut cast, _a_call, _b_call) = answered();
    let Cast { bench, bob, .. } = &mut cast;
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    bench.register(&mut ann);
    bench.at(7000);
    let _ = bench.dial(&mut ann, "102");
    let invite = bench.take_one(bob.peer);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    assert_eq!(bench.engine.active_calls().of(tenant_id(), "102"), 2);
}
