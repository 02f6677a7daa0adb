//! Ring groups (SPEC §3, "ring group"), played as SIP messages on the
//! virtual clock, with the exact `call_cdr` of each: no target for the
//! group, one `ring_group_call` target per member device rung, and the
//! group's number as the call's `callee`.
//!
//! Cast: 101 (Tom, 10.0.0.5) calls; 102 (Jason, desk phone at 10.0.0.7)
//! and 103 (Ann, 10.0.0.9) are members; 104 (Bob) never registers.
//! Group 600 "Sales" rings 102 then 103; group 601 "Support" rings 103.
//! The call starts at T0 (Unix second 1795874587).

#![recursion_limit = "512"]

mod common;

use std::time::Duration;

use cdr::RerouteReason;
use common::golden::{CALL_ID, CDR, DESK_URI, SESSION, call, cdr_of, event_id, golden, target};
use common::*;
use pbx::{Extension, ForwardCondition, Forwarding, RingGroup, RingStrategy, RoutingNotice};
use serde_json::{Value, json};
use sip::{Message, Method};

const ANN: &str = "10.0.0.9:5066";
const ANN_URI: &str = common::golden::ANN_URI;

/// Adds (or replaces) ring group `number` of the fixture's tenant.
fn group(
    bench: &mut Bench,
    number: &str,
    name: &str,
    strategy: RingStrategy,
    members: &[&str],
    no_answer: Option<&str>,
) {
    bench
        .engine
        .directory_mut()
        .upsert_group(RingGroup {
            tenant_id: tenant_id(),
            number: Extension::new(number),
            name: name.into(),
            strategy,
            members: members.iter().map(|m| Extension::new(*m)).collect(),
            member_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(25),
            no_answer: no_answer.map(str::to_owned),
        })
        .unwrap();
}

/// The standard cast plus 103 registered.
fn cast_with_ann() -> (Cast, Phone) {
    let mut cast = Cast::new();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    cast.bench.register(&mut ann);
    (cast, ann)
}

/// `phone` takes the INVITE it was sent and rings; returns its call and
/// the INVITE.
fn rings(bench: &mut Bench, phone: &mut Phone) -> (Call, Message) {
    let invite = bench.take_one(phone.peer);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    let call = phone.incoming(&invite);
    bench.send(phone.peer, &phone.respond(&call, &invite, 180, None));
    (call, invite)
}

/// The PBX CANCELs `phone`'s ringing INVITE; the phone ends it (200, 487).
fn cancelled(bench: &mut Bench, phone: &mut Phone, call: &Call, invite: &Message) {
    let cancel = bench.take_one(phone.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    bench.send(phone.peer, &phone.respond(call, &cancel, 200, None));
    bench.send(phone.peer, &phone.respond(call, invite, 487, None));
    assert!(is(&bench.take_one(phone.peer), Method::Ack), "487 ACKed");
}

/// `callee` answers; the caller ACKs, talks until `bye_at`, hangs up.
fn answer_talk_hang_up(
    bench: &mut Bench,
    caller: &mut Phone,
    a_call: &mut Call,
    (callee, b_call, invite): (&mut Phone, &Call, &Message),
    bye_at: i64,
) {
    answer(bench, caller, a_call, (callee, b_call, invite));
    talk_hang_up(bench, caller, a_call, (callee, b_call), bye_at);
}

/// `callee` answers; the caller ACKs.
fn answer(
    bench: &mut Bench,
    caller: &mut Phone,
    a_call: &mut Call,
    (callee, b_call, invite): (&mut Phone, &Call, &Message),
) {
    bench.send(
        callee.peer,
        &callee.respond(b_call, invite, 200, Some(SDP_B)),
    );
    let ok = bench
        .take(caller.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("the caller got the 200");
    a_call.confirm(&ok);
    bench.send(caller.peer, &caller.ack(a_call, &ok, None));
    assert!(is(&bench.take_one(callee.peer), Method::Ack));
}

/// The caller talks until `bye_at` and hangs up; the callee answers BYE.
fn talk_hang_up(
    bench: &mut Bench,
    caller: &mut Phone,
    a_call: &mut Call,
    (callee, b_call): (&mut Phone, &Call),
    bye_at: i64,
) {
    bench.at(bye_at);
    let bye = caller.request(a_call, "BYE", None);
    bench.send(caller.peer, &bye);
    assert_eq!(bench.take_one(caller.peer).status(), Some(200));
    let bye = bench.take_one(callee.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    bench.send(callee.peer, &callee.respond(b_call, &bye, 200, None));
}

/// ring_all: both members ring at once; 103 answers at +3200, 102 is
/// CANCELled (`noanswer`, 0: answered elsewhere); 101 hangs up at +20500.
#[test]
fn ring_all_answered() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    group(
        bench,
        "600",
        "Sales",
        RingStrategy::RingAll,
        &["102", "103"],
        None,
    );
    bench.at(-40);
    let mut a_call = bench.dial(alice, "600");
    let (b_call, b_invite) = rings(bench, bob);
    let (c_call, c_invite) = rings(bench, &mut ann);
    bench.at(3200);
    answer(bench, alice, &mut a_call, (&mut ann, &c_call, &c_invite));
    cancelled(bench, bob, &b_call, &b_invite);
    talk_hang_up(bench, alice, &mut a_call, (&mut ann, &c_call), 20_500);
    assert_eq!(
        bench.targets(),
        [("102".into(), None), ("103".into(), None)]
    );
    assert_eq!(
        bench.timeline(),
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
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("600", "Sales"),
            ("1795874587", "1795874587", "1795874590", "1795874607"),
            ("3", 17),
            ("answered", "0", "caller_disconnect"),
            vec![
                target(
                    ("1179059904569151490", CDR, "ring_group_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "0", "1795874590"),
                    ("3", "0"),
                    ("noanswer", 0, "None"),
                ),
                target(
                    ("1179059904569151491", CDR, "ring_group_call"),
                    ("103", ANN_URI),
                    ("1795874587", "1795874587", "1795874590", "1795874607"),
                    ("3", "17"),
                    ("answered", 0, "caller_disconnect"),
                ),
            ],
            9,
        ),
    );
}

/// hunt: 102 rings for its 10 s member timeout and is CANCELled (408);
/// then 103 rings and answers at +12000; 101 hangs up at +15000.
#[test]
fn hunt_first_member_no_answer_then_second_answers() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    group(
        bench,
        "600",
        "Sales",
        RingStrategy::Hunt,
        &["102", "103"],
        None,
    );
    bench.at(-40);
    let mut a_call = bench.dial(alice, "600");
    let (b_call, b_invite) = rings(bench, bob);
    assert!(bench.take(ann.peer).is_empty(), "103 waits its turn");
    bench.at(9_999);
    assert!(bench.take(bob.peer).is_empty());
    bench.at(10_000);
    cancelled(bench, bob, &b_call, &b_invite);
    let (c_call, c_invite) = rings(bench, &mut ann);
    bench.at(12_000);
    answer_talk_hang_up(
        bench,
        alice,
        &mut a_call,
        (&mut ann, &c_call, &c_invite),
        15_000,
    );
    assert_eq!(
        bench.targets(),
        [("102".into(), None), ("103".into(), None)]
    );
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("600", "Sales"),
            ("1795874587", "1795874587", "1795874599", "1795874602"),
            ("12", 3),
            ("answered", "0", "caller_disconnect"),
            vec![
                target(
                    ("1179059904569151490", CDR, "ring_group_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "0", "1795874597"),
                    ("10", "0"),
                    ("noanswer", 408, "None"),
                ),
                target(
                    ("1179059946512191488", CDR, "ring_group_call"),
                    ("103", ANN_URI),
                    ("1795874597", "1795874597", "1795874599", "1795874602"),
                    ("2", "3"),
                    ("answered", 0, "caller_disconnect"),
                ),
            ],
            9,
        ),
    );
}

/// hunt: a member whose devices all refuse (486) is the next member's
/// turn at once, not after its member timeout.
#[test]
fn hunt_moves_on_when_a_member_refuses() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    group(
        bench,
        "600",
        "Sales",
        RingStrategy::Hunt,
        &["102", "103"],
        None,
    );
    bench.at(-40);
    let a_call = bench.dial(alice, "600");
    let (b_call, b_invite) = rings(bench, bob);
    bench.at(2_000);
    bench.send(bob.peer, &bob.respond(&b_call, &b_invite, 486, None));
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    let (c_call, c_invite) = rings(bench, &mut ann);
    bench.at(3_000);
    bench.send(ann.peer, &ann.respond(&c_call, &c_invite, 603, None));
    assert!(is(&bench.take_one(ann.peer), Method::Ack));
    // No member left, none rang out: the best failure (RFC 3261 §16.7).
    let refusal = bench
        .take(alice.peer)
        .into_iter()
        .find(|m| m.status().is_some_and(|c| c >= 300))
        .expect("a final answer");
    assert_eq!(refusal.status(), Some(603));
    bench.send(alice.peer, &alice.ack_failure(&a_call, &refusal));
    let cdr = cdr_of(bench, 0);
    assert_eq!(cdr["call_status"], "fail");
    assert_eq!(cdr["status_code"], "603");
    let codes: Vec<&Value> = cdr["call_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["status_code"])
        .collect();
    assert_eq!(codes, [&json!(486), &json!(603)]);
}

/// round_robin: 102 answers the first call; the second call starts with
/// 103 (after the last answerer), who answers it.
#[test]
fn round_robin_starts_after_the_last_answerer() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    group(
        bench,
        "600",
        "Sales",
        RingStrategy::RoundRobin,
        &["102", "103"],
        None,
    );
    bench.at(-40);
    let mut a_call = bench.dial(alice, "600");
    let (b_call, b_invite) = rings(bench, bob);
    assert!(bench.take(ann.peer).is_empty());
    bench.at(1_000);
    answer_talk_hang_up(bench, alice, &mut a_call, (bob, &b_call, &b_invite), 4_000);
    assert!(bench.engine.active_calls().is_empty());

    // The second call: 103 first.
    bench.at(9_960);
    let mut a_call = bench.dial(alice, "600");
    assert!(
        bench.take(bob.peer).is_empty(),
        "102 answered last: not first"
    );
    let (c_call, c_invite) = rings(bench, &mut ann);
    bench.at(11_000);
    answer_talk_hang_up(
        bench,
        alice,
        &mut a_call,
        (&mut ann, &c_call, &c_invite),
        13_000,
    );
    assert_eq!(
        bench.targets(),
        [("102".into(), None), ("103".into(), None)]
    );
    let call_id = a_call.call_id.clone();
    let mut second = cdr_of(bench, 1);
    // Event ids are time-based: the second session's start at +10 s.
    assert_eq!(second["event_id"], "105cdcc6-40c0-8100-8000-000000000005");
    second["event_id"] = json!(event_id(5));
    golden(
        &second,
        call(
            ("1179059946512191488", "1179059946512191489", &call_id),
            ("600", "Sales"),
            ("1795874597", "1795874597", "1795874598", "1795874600"),
            ("1", 2),
            ("answered", "0", "caller_disconnect"),
            vec![target(
                (
                    "1179059946512191490",
                    "1179059946512191489",
                    "ring_group_call",
                ),
                ("103", ANN_URI),
                ("1795874597", "1795874597", "1795874598", "1795874600"),
                ("1", "2"),
                ("answered", 0, "caller_disconnect"),
            )],
            6,
        ),
    );
}

/// The group's 25 s timeout passes while ring_all rings 102: 102 is
/// CANCELled and the call goes to the no-answer destination, group 601
/// (a group may be one), whose member 103 answers.
#[test]
fn group_timeout_goes_to_the_no_answer_destination() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    group(
        bench,
        "600",
        "Sales",
        RingStrategy::RingAll,
        &["102"],
        Some("601"),
    );
    group(bench, "601", "Support", RingStrategy::Hunt, &["103"], None);
    bench.at(-40);
    let mut a_call = bench.dial(alice, "600");
    let (b_call, b_invite) = rings(bench, bob);
    bench.at(24_999);
    assert!(bench.take(bob.peer).is_empty());
    bench.at(25_000);
    cancelled(bench, bob, &b_call, &b_invite);
    let (c_call, c_invite) = rings(bench, &mut ann);
    bench.at(27_000);
    answer_talk_hang_up(
        bench,
        alice,
        &mut a_call,
        (&mut ann, &c_call, &c_invite),
        30_000,
    );
    assert_eq!(
        bench.targets(),
        [
            ("102".into(), None),
            ("103".into(), Some(RerouteReason::ForwardingNoAnswer))
        ]
    );
    let update = bench
        .json()
        .into_iter()
        .find(|e| e["event_type"] == "call_update_info")
        .expect("call_update_info");
    assert_eq!(update["callee"], "sip:601@acme.example", "{update}");
    assert_eq!(update["callee_display_name"], "Support");
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("600", "Sales"),
            ("1795874587", "1795874587", "1795874614", "1795874617"),
            ("27", 3),
            ("answered", "0", "caller_disconnect"),
            vec![
                target(
                    ("1179059904569151490", CDR, "ring_group_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "0", "1795874612"),
                    ("25", "0"),
                    ("noanswer", 408, "None"),
                ),
                target(
                    ("1179060009426751488", CDR, "ring_group_call"),
                    ("103", ANN_URI),
                    ("1795874612", "1795874612", "1795874614", "1795874617"),
                    ("2", "3"),
                    ("answered", 0, "caller_disconnect"),
                ),
            ],
            10,
        ),
    );
}

/// Without a no-answer destination a group that rings out ends `480`:
/// here its timeout (15 s) cuts 103's 10 s turn short.
#[test]
fn group_timeout_without_destination_is_480() {
    let (mut cast, ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    group(
        bench,
        "600",
        "Sales",
        RingStrategy::Hunt,
        &["102", "103"],
        None,
    );
    let d = bench.engine.directory_mut();
    let mut sales = d.group(tenant_id(), "600").unwrap().clone();
    sales.timeout = Duration::from_secs(15);
    d.upsert_group(sales).unwrap();
    bench.at(-40);
    let a_call = bench.dial(alice, "600");
    let (b_call, b_invite) = rings(bench, bob);
    bench.at(10_000);
    cancelled(bench, bob, &b_call, &b_invite);
    let mut ann = ann;
    let (c_call, c_invite) = rings(bench, &mut ann);
    bench.at(14_999);
    assert!(bench.take(ann.peer).is_empty());
    bench.at(15_000);
    cancelled(bench, &mut ann, &c_call, &c_invite);
    let refusal = bench
        .take(alice.peer)
        .into_iter()
        .find(|m| m.status().is_some_and(|c| c >= 300))
        .expect("a final answer");
    assert_eq!(refusal.status(), Some(480));
    bench.send(alice.peer, &alice.ack_failure(&a_call, &refusal));
    let cdr = cdr_of(bench, 0);
    assert_eq!(
        (&cdr["call_status"], &cdr["status_code"], &cdr["ended_time"]),
        // 480 is `fail` (cdr::CallStatus::of_unanswered): only 408 and 487
        // are `noanswer`.
        (&json!("fail"), &json!("480"), &json!("1795874602"))
    );
    assert_eq!(cdr["call_targets"].as_array().unwrap().len(), 2);
}

/// Every member busy: 102 is at its call limit (skipped, never rung),
/// 104 has no device (skipped), 103 refuses 486: the caller hears 486.
#[test]
fn every_member_busy() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    let d = bench.engine.directory_mut();
    let mut jason = d.user(tenant_id(), "102").unwrap().clone();
    jason.max_concurrent_calls = Some(0);
    d.upsert_user(jason).unwrap();
    group(
        bench,
        "600",
        "Sales",
        RingStrategy::Hunt,
        &["102", "103"],
        None,
    );
    bench.at(-40);
    let a_call = bench.dial(alice, "600");
    assert!(bench.take(bob.peer).is_empty(), "102 is at its limit");
    let (c_call, c_invite) = rings(bench, &mut ann);
    bench.at(1_500);
    bench.send(ann.peer, &ann.respond(&c_call, &c_invite, 486, None));
    assert!(is(&bench.take_one(ann.peer), Method::Ack));
    let refusal = bench
        .take(alice.peer)
        .into_iter()
        .find(|m| m.status().is_some_and(|c| c >= 300))
        .expect("a final answer");
    assert_eq!(refusal.status(), Some(486));
    bench.send(alice.peer, &alice.ack_failure(&a_call, &refusal));
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("600", "Sales"),
            ("1795874587", "1795874587", "0", "1795874588"),
            ("1", 0),
            ("fail", "486", "None"),
            vec![target(
                ("1179059904569151490", CDR, "ring_group_call"),
                ("103", ANN_URI),
                ("1795874587", "1795874587", "0", "1795874588"),
                ("1", "0"),
                ("noanswer", 486, "None"),
            )],
            5,
        ),
    );
}

/// Nobody can take the call: group 600's one member is at its limit,
/// nothing rings, the caller hears 486 at once. Group 601 (one member at
/// its limit, one without a device: neither busy nor unreachable) goes to
/// its no-answer destination, 103, as `FORWARDING_NO_ANSWER`.
#[test]
fn a_group_with_nobody_to_ring() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    let d = bench.engine.directory_mut();
    let mut jason = d.user(tenant_id(), "102").unwrap().clone();
    jason.max_concurrent_calls = Some(0);
    d.upsert_user(jason).unwrap();
    group(bench, "600", "Sales", RingStrategy::RingAll, &["102"], None);
    group(
        bench,
        "601",
        "Support",
        RingStrategy::RingAll,
        &["102", "104"],
        Some("103"),
    );
    bench.at(-40);
    let a_call = bench.dial(alice, "600");
    let refusal = bench.take_one(alice.peer);
    assert_eq!(refusal.status(), Some(486));
    bench.send(alice.peer, &alice.ack_failure(&a_call, &refusal));
    assert!(bench.take(bob.peer).is_empty());
    let cdr = cdr_of(bench, 0);
    assert_eq!(cdr["call_targets"], json!([]));
    assert_eq!(cdr["status_code"], "486");

    // Busy and unreachable together: neither; the destination takes it.
    bench.at(5_000);
    let mut a_call = bench.dial(alice, "601");
    let (c_call, c_invite) = rings(bench, &mut ann);
    bench.at(6_000);
    answer_talk_hang_up(
        bench,
        alice,
        &mut a_call,
        (&mut ann, &c_call, &c_invite),
        7_000,
    );
    assert_eq!(
        bench.targets(),
        [("103".into(), Some(RerouteReason::ForwardingNoAnswer))]
    );
    let cdr = cdr_of(bench, 1);
    assert_eq!(cdr["callee"], "601");
    assert_eq!(cdr["call_targets"][0]["call_type"], "normal_call");
}

/// A group is a forwarding destination: 104 (no device) forwards to 600;
/// both members ring with `FORWARDING_NOT_REACHABLE`, the caller's CDR
/// keeps 104 as its callee. A member's own forwarding does not apply.
#[test]
fn forwarding_to_a_group_and_members_rules_ignored() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    let d = bench.engine.directory_mut();
    for (ext, rule) in [
        ("104", (ForwardCondition::Unavailable, "600")),
        ("102", (ForwardCondition::Always, "104")),
    ] {
        let mut user = d.user(tenant_id(), ext).unwrap().clone();
        user.forwarding = Forwarding::default().with(rule.0, rule.1);
        d.upsert_user(user).unwrap();
    }
    group(
        bench,
        "600",
        "Sales",
        RingStrategy::RingAll,
        &["102", "103"],
        None,
    );
    bench.at(-40);
    let mut a_call = bench.dial(alice, "104");
    let (b_call, b_invite) = rings(bench, bob);
    let (c_call, c_invite) = rings(bench, &mut ann);
    bench.at(2_000);
    answer(bench, alice, &mut a_call, (bob, &b_call, &b_invite));
    cancelled(bench, &mut ann, &c_call, &c_invite);
    talk_hang_up(bench, alice, &mut a_call, (bob, &b_call), 3_000);
    let reason = Some(RerouteReason::ForwardingNotReachable);
    assert_eq!(
        bench.targets(),
        [("102".into(), reason), ("103".into(), reason)]
    );
    let cdr = bench.cdr();
    assert_eq!(cdr["callee"], "104");
    assert_eq!(cdr["call_targets"][0]["call_type"], "ring_group_call");
    assert_eq!(cdr["call_targets"][0]["status"], "answered");
}

/// A group whose no-answer destination is itself: the loop ends 482.
#[test]
fn a_group_looping_to_itself_ends_482() {
    let (mut cast, _ann) = cast_with_ann();
    let Cast { bench, alice, .. } = &mut cast;
    group(
        bench,
        "600",
        "Sales",
        RingStrategy::RingAll,
        &["104"],
        Some("600"),
    );
    bench.at(-40);
    let a_call = bench.dial(alice, "600");
    let answer = bench.take_one(alice.peer);
    assert_eq!(answer.status(), Some(482));
    bench.send(alice.peer, &alice.ack_failure(&a_call, &answer));
    assert!(matches!(
        bench.notices().as_slice(),
        [RoutingNotice::Loop { .. }]
    ));
    assert_eq!(bench.cdr()["status_code"], "482");
}

/// A member's 3xx is that device's failure (not followed: it would take
/// the call out of the group), and the caller, a member too, is not rung:
/// hunt goes from 102 straight to 103.
#[test]
fn a_members_redirect_is_not_followed_and_the_caller_is_not_rung() {
    let (mut cast, mut ann) = cast_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    group(
        bench,
        "600",
        "Sales",
        RingStrategy::Hunt,
        &["101", "102", "103"],
        None,
    );
    bench.at(-40);
    let mut a_call = bench.dial(alice, "600");
    let (b_call, b_invite) = rings(bench, bob);
    assert!(
        bench
            .take(alice.peer)
            .iter()
            .all(|m| !is(m, Method::Invite)),
        "the caller's own phone does not ring"
    );
    bench.at(1_000);
    let redirect = bob.respond(&b_call, &b_invite, 302, None).replace(
        "Content-Length",
        "Contact: <sip:104@acme.example>\r\nContent-Length",
    );
    bench.send(bob.peer, &redirect);
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    let (c_call, c_invite) = rings(bench, &mut ann);
    bench.at(2_000);
    answer_talk_hang_up(
        bench,
        alice,
        &mut a_call,
        (&mut ann, &c_call, &c_invite),
        3_000,
    );
    assert!(matches!(
        bench.notices().as_slice(),
        [RoutingNotice::RedirectNotFollowed {
            why: pbx::NotFollowed::RingGroupMember,
            ..
        }]
    ));
    assert_eq!(
        bench.targets(),
        [("102".into(), None), ("103".into(), None)]
    );
    let cdr = bench.cdr();
    assert_eq!(cdr["call_targets"][0]["status_code"], 302);
    assert_eq!(cdr["call_targets"][1]["status"], "answered");
}
