//! INVITE with Replaces from a phone (RFC 3891): some phones complete an
//! attended transfer this way instead of a REFER. B (102), answered with
//! A (101) in S1, consulted C (103) in S2; C's phone sends the PBX an
//! INVITE whose Replaces names B's S1 dialog: the same result as REFER
//! with Replaces (`attended.rs`). A Replaces naming nothing gets `481`.
//!
//! Times: S1 answered at +5870; S2 starts at +8040, answered at +9000;
//! C's authenticated INVITE at +10040 (Unix s 1795874597); 101 hangs up
//! at +20000 (…607).

#![recursion_limit = "256"]

mod common;

use common::golden::*;
use common::*;
use serde_json::json;
use sip::headers::Replaces;
use sip::{Message, Method};

const ANN: &str = "10.0.0.9:5066";
const SDP_C: &str = "v=0\r\no=103 3 3 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=sendrecv\r\n";
const SDP_A2: &str = "v=0\r\no=101 2 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n";

fn id_at(offset: i64, seq: u64) -> String {
    let ms = (T0 as i64 + offset - 1_514_764_800_000) as u64;
    ((ms << 22) | (1 << 12) | seq).to_string()
}

fn tag_of(header: &str) -> String {
    header
        .split(";tag=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// S1 answered (101 ↔ 102) and S2 answered (102 → 103).
fn consulted() -> (Cast, Phone, [Call; 4]) {
    let (mut cast, a_call, b_call) = answered();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    let Cast { bench, bob, .. } = &mut cast;
    bench.register(&mut ann);
    bench.at(8_000);
    let mut b2 = bench.dial(bob, "103");
    let invite = bench.take_one(ann.peer);
    let c_call = ann.incoming(&invite);
    bench.at(9_000);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 200, Some(SDP_C)));
    let ok = bench
        .take(bob.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    bench.send(bob.peer, &bob.ack(&mut b2, &ok, None));
    assert!(bench.take(ann.peer).iter().any(|m| is(m, Method::Ack)));
    (cast, ann, [a_call, b_call, b2, c_call])
}

/// `phone`'s INVITE to `number` with `replaces`, authenticated (the 407
/// first); returns its call.
fn invite_replacing(bench: &mut Bench, phone: &mut Phone, replaces: &Replaces) -> Call {
    let mut call = phone.call("102", Some(SDP_C));
    let with = |text: String| {
        text.replacen(
            "Content-Type:",
            &format!("Replaces: {replaces}\r\nContent-Type:"),
            1,
        )
    };
    bench.send(phone.peer, &with(phone.invite(&mut call, None)));
    let challenge = bench.take_one(phone.peer);
    assert_eq!(challenge.status(), Some(407), "{}", challenge.summary());
    bench.send(phone.peer, &phone.ack_failure(&call, &challenge));
    bench.at(bench.now + 40);
    let text = with(phone.invite(&mut call, Some(&challenge)));
    bench.send(phone.peer, &text);
    call
}

/// B's S1 dialog as the PBX names it (its tag is the to-tag).
fn s1_dialog(b_call: &Call) -> Replaces {
    Replaces {
        call_id: b_call.call_id.clone(),
        to_tag: tag_of(&b_call.remote),
        from_tag: tag_of(&b_call.local),
        early_only: false,
    }
}

fn answer(bench: &mut Bench, phone: &Phone, call: &Call, m: &Message) {
    bench.send(phone.peer, &phone.respond(call, m, 200, None));
}

#[test]
fn invite_with_replaces_completes_an_attended_transfer() {
    let (mut cast, mut ann, [mut a_call, b_call, b2, c_call]) = consulted();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let mut c_new = invite_replacing(bench, &mut ann, &s1_dialog(&b_call));
    // B's S1 leg and S2 leg are hung up; C's S2 leg too.
    let got = bench.take(bob.peer);
    let byes: Vec<&str> = got
        .iter()
        .filter(|m| is(m, Method::Bye))
        .map(|m| m.call_id().unwrap())
        .collect();
    assert_eq!(byes.len(), 2, "{got:?}");
    assert!(byes.contains(&b_call.call_id.as_str()));
    assert!(byes.contains(&b2.call_id.as_str()));
    for m in got.iter().filter(|m| is(m, Method::Bye)) {
        let call = if m.call_id().ok() == Some(b_call.call_id.as_str()) {
            &b_call
        } else {
            &b2
        };
        answer(bench, bob, call, m);
    }
    let got = bench.take(ann.peer);
    let old_bye = got
        .iter()
        .find(|m| is(m, Method::Bye))
        .expect("C's S2 leg hung up");
    assert_eq!(old_bye.call_id().unwrap(), c_call.call_id);
    answer(bench, &ann, &c_call, old_bye);
    // A is re-INVITEd with C's offer; A's answer reaches C in its 200.
    let reinvite = bench.take_one(alice.peer);
    assert!(is(&reinvite, Method::Invite), "{}", reinvite.summary());
    assert_eq!(reinvite.body(), SDP_C.as_bytes());
    bench.at(10_100);
    bench.send(
        alice.peer,
        &alice.respond(&a_call, &reinvite, 200, Some(SDP_A2)),
    );
    let ok = bench
        .take(ann.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    assert_eq!(ok.body(), SDP_A2.as_bytes());
    bench.send(ann.peer, &ann.ack(&mut c_new, &ok, None));
    assert!(is(&bench.take_one(alice.peer), Method::Ack));
    bench.at(20_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(ann.peer);
    assert!(is(&bye, Method::Bye));
    assert_eq!(bye.call_id().unwrap(), c_new.call_id);

    let mut c = target(
        (&id_at(10_040, 0), CDR, "normal_call"),
        ("103", ANN_URI),
        ("1795874597", "1795874597", "1795874597", "1795874607"),
        ("0", "10"),
        ("answered", 0, "caller_disconnect"),
    );
    c["caller"] = json!("101");
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("102", "Jason"),
            ("1795874587", "1795874587", "1795874592", "1795874607"),
            ("5", 15),
            ("answered", "0", "caller_disconnect"),
            vec![
                target(
                    ("1179059904569151490", CDR, "normal_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "1795874592", "1795874597"),
                    ("5", "5"),
                    ("answered", 0, "attended_transfer_complete"),
                ),
                c,
            ],
            10,
        ),
    );
    let s2 = cdr_of(bench, 1);
    assert_eq!(
        json!([
            s2["caller"],
            s2["callee"],
            s2["ended_reason"],
            s2["ended_time"],
            s2["call_targets"][0]["end_reason"],
            s2["call_targets"].as_array().unwrap().len()
        ]),
        json!([
            "102",
            "103",
            "attended_transfer_complete",
            "1795874597",
            "replaced",
            1
        ])
    );
}

/// A Replaces naming no dialog of the PBX: `481`, and both calls go on.
#[test]
fn a_replaces_naming_an_unknown_dialog_is_481() {
    let (mut cast, mut ann, [mut a_call, b_call, _b2, _c_call]) = consulted();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let mut unknown = s1_dialog(&b_call);
    unknown.to_tag = "not-ours".into();
    invite_replacing(bench, &mut ann, &unknown);
    let r = bench
        .take(ann.peer)
        .into_iter()
        .find(|m| m.status().is_some_and(|s| s >= 200))
        .unwrap();
    assert_eq!(r.status(), Some(481), "{}", r.summary());
    assert!(bench.take(bob.peer).is_empty(), "nothing changed");
    assert!(bench.take(alice.peer).is_empty());
    bench.at(20_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    assert_eq!(cdr_of(bench, 0)["ended_reason"], "caller_disconnect");
    assert_eq!(
        cdr_of(bench, 0)["call_targets"].as_array().unwrap().len(),
        1
    );
}

/// A Replaces from a phone that was in no call with the named party: it
/// just takes the party's place, which ends `replaced`.
#[test]
fn a_replaces_without_a_consultation_replaces_the_party() {
    let (mut cast, a_call, b_call) = answered();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    let Cast { bench, alice, bob } = &mut cast;
    bench.register(&mut ann);
    bench.at(10_000);
    invite_replacing(bench, &mut ann, &s1_dialog(&b_call));
    let bye = bench.take_one(bob.peer);
    assert!(is(&bye, Method::Bye));
    answer(bench, bob, &b_call, &bye);
    let reinvite = bench.take_one(alice.peer);
    assert!(is(&reinvite, Method::Invite));
    let _ = a_call;
    let events: Vec<_> = bench
        .call_events
        .iter()
        .filter_map(|(_, _, e)| match &e.kind {
            cdr::CallEventKind::TargetEnded(t) => Some(t.reason),
            _ => None,
        })
        .collect();
    assert_eq!(events, [cdr::EndReason::Replaced]);
}

/// A Replaces naming the caller's leg: the newcomer takes the caller's
/// side (the callee is re-INVITEd), and `call_update_info` names it as
/// the caller.
#[test]
fn a_replaces_of_the_caller_leg_changes_the_caller() {
    let (mut cast, a_call, b_call) = answered();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    let Cast { bench, alice, bob } = &mut cast;
    bench.register(&mut ann);
    bench.at(10_000);
    let a_leg = Replaces {
        call_id: a_call.call_id.clone(),
        to_tag: tag_of(&a_call.remote),
        from_tag: tag_of(&a_call.local),
        early_only: false,
    };
    invite_replacing(bench, &mut ann, &a_leg);
    let bye = bench.take_one(alice.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    let reinvite = bench.take_one(bob.peer);
    assert!(is(&reinvite, Method::Invite), "{}", reinvite.summary());
    assert_eq!(reinvite.body(), SDP_C.as_bytes());
    bench.send(bob.peer, &bob.respond(&b_call, &reinvite, 200, Some(SDP_B)));
    let ok = bench
        .take(ann.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    assert_eq!(ok.body(), SDP_B.as_bytes());
    let updates: Vec<_> = bench
        .call_events
        .iter()
        .filter_map(|(_, _, e)| match &e.kind {
            cdr::CallEventKind::IdentityChanged { caller, callee } => {
                Some((caller.as_ref().map(|p| p.user.clone()), callee.is_none()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(updates, [(Some("103".to_owned()), true)]);
}
