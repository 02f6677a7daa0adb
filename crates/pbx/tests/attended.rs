//! Attended transfer (SPEC §3 "attended transfer"): B, answered with A in
//! S1, consults C in its own call S2, then REFERs S1 with Replaces naming
//! its S2 dialog. Played on the virtual clock; the exact `call_cdr` of both
//! sessions, and the REFERs the engine refuses.
//!
//! Times: S1 answered at +5870 (101 → 102); 102 dials 103 at +8000 (S2
//! starts at +8040), 103 answers at +9000; the REFER at +10000 (Unix s
//! 1795874597) joins 101 with 103; 102 hangs up S1 at +13500; 101 hangs
//! up at +20000 (…607).

#![recursion_limit = "256"]

mod common;

use common::golden::*;
use common::*;
use serde_json::json;
use sip::dialog::refer_to_with_replaces;
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

/// S1 answered (101 ↔ 102) and S2 answered (102 → 103): the phones'
/// calls (A's, B's in S1, B's in S2, C's in S2).
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
    // (After INVITE retransmissions: C sent no 100.)
    assert!(bench.take(ann.peer).iter().any(|m| is(m, Method::Ack)));
    (cast, ann, [a_call, b_call, b2, c_call])
}

/// B's REFER on S1 whose Replaces names `b2` (B's S2 dialog as B sees it:
/// the PBX's tag is the to-tag).
fn refer_with_replaces(bob: &mut Phone, b_call: &mut Call, b2: &Call) -> String {
    let replaces = Replaces {
        call_id: b2.call_id.clone(),
        to_tag: tag_of(&b2.remote),
        from_tag: tag_of(&b2.local),
        early_only: false,
    };
    let refer_to = refer_to_with_replaces("sip:103@acme.example", &replaces);
    bob.request(b_call, "REFER", None).replacen(
        "Content-Length:",
        &format!("Refer-To: {refer_to}\r\nContent-Length:"),
        1,
    )
}

fn answer(bench: &mut Bench, phone: &Phone, call: &Call, m: &Message) {
    bench.send(phone.peer, &phone.respond(call, m, 200, None));
}

#[test]
fn attended_transfer_joins_a_with_c() {
    let (mut cast, mut ann, [mut a_call, mut b_call, b2, mut c_call]) = consulted();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let refer = refer_with_replaces(bob, &mut b_call, &b2);
    bench.send(bob.peer, &refer);
    let got = bench.take(bob.peer);
    let summary: Vec<String> = got.iter().map(Message::summary).collect();
    assert_eq!(got[0].status(), Some(202), "{summary:?}");
    assert!(is(&got[1], Method::Notify), "{summary:?}");
    assert!(got[1].body().starts_with(b"SIP/2.0 100 Trying"));
    assert!(
        is(&got[2], Method::Bye),
        "B's S2 leg is hung up: {summary:?}"
    );
    answer(bench, bob, &b_call, &got[1]);
    answer(bench, bob, &b2, &got[2]);
    // C is asked for an offer on its S2 dialog.
    let reinvite = bench.take_one(ann.peer);
    assert!(is(&reinvite, Method::Invite) && reinvite.body().is_empty());
    assert_eq!(
        reinvite.call_id().unwrap(),
        c_call.call_id,
        "C's own dialog"
    );
    bench.send(ann.peer, &ann.respond(&c_call, &reinvite, 200, Some(SDP_C)));
    let a_reinvite = bench.take_one(alice.peer);
    assert_eq!(a_reinvite.body(), SDP_C.as_bytes());
    bench.at(10_050);
    bench.send(
        alice.peer,
        &alice.respond(&a_call, &a_reinvite, 200, Some(SDP_A2)),
    );
    assert!(is(&bench.take_one(alice.peer), Method::Ack));
    let ack = bench.take_one(ann.peer);
    assert!(is(&ack, Method::Ack));
    assert_eq!(ack.body(), SDP_A2.as_bytes());
    let n = bench.take_one(bob.peer);
    assert!(n.body().starts_with(b"SIP/2.0 200 OK"), "{:?}", n.body());
    answer(bench, bob, &b_call, &n);
    bench.at(13_500);
    let bye = bob.request(&mut b_call, "BYE", None);
    bench.send(bob.peer, &bye);
    assert_eq!(bench.take_one(bob.peer).status(), Some(200));
    bench.at(20_000);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(ann.peer);
    assert!(is(&bye, Method::Bye));
    assert_eq!(bye.call_id().unwrap(), c_call.call_id);
    bench.send(ann.peer, &ann.respond(&c_call, &bye, 200, None));
    let _ = &mut c_call;
    let _ = &mut ann;

    let mut c = target(
        (&id_at(10_000, 0), CDR, "normal_call"),
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
                    ("1795874587", "1795874587", "1795874592", "1795874600"),
                    ("5", "8"),
                    ("answered", 0, "attended_transfer_complete"),
                ),
                c,
            ],
            10,
        ),
    );
    let s2 = cdr_of(bench, 1);
    assert_eq!(s2["caller"], "102");
    assert_eq!(s2["callee"], "103");
    assert_eq!(s2["ended_reason"], "attended_transfer_complete");
    assert_eq!(s2["end_reason"], "attended_transfer_complete");
    assert_eq!(s2["call_status"], "answered");
    assert_eq!(s2["ended_time"], "1795874597");
    let t = &s2["call_targets"][0];
    assert_eq!(
        json!([
            t["callee"],
            t["status"],
            t["answered_time"],
            t["ended_time"],
            t["end_reason"]
        ]),
        json!(["103", "answered", "1795874596", "1795874597", "replaced"])
    );
    assert_eq!(s2["call_targets"].as_array().unwrap().len(), 1);
    // call_update_info fires in S1, naming C.
    let updates: Vec<_> = bench
        .call_events
        .iter()
        .filter_map(|(s, _, e)| match &e.kind {
            cdr::CallEventKind::IdentityChanged { callee, .. } => {
                Some((s.to_string(), callee.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].0, SESSION);
    assert_eq!(updates[0].1.as_ref().unwrap().user, "103");
}

/// A Replaces naming no dialog of the PBX: 404, no NOTIFY, S1 goes on.
#[test]
fn replaces_naming_an_unknown_dialog_is_refused() {
    let (mut cast, _ann, [mut a_call, mut b_call, mut b2, _c_call]) = consulted();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    b2.call_id = "nobody@nowhere".into();
    let refer = refer_with_replaces(bob, &mut b_call, &b2);
    bench.send(bob.peer, &refer);
    let r = bench.take_one(bob.peer);
    assert_eq!(r.status(), Some(404), "{}", r.summary());
    assert!(bench.take(udp(ANN)).is_empty());
    bench.at(20_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    assert!(is(&bench.take_one(bob.peer), Method::Bye));
    assert_eq!(cdr_of(bench, 0)["ended_reason"], "caller_disconnect");
}

/// A consultation C placed to B (C the caller of S2, B its target; RFC
/// 5589 lets either side place it): C's caller leg moves to S1 like a
/// target would. 103 dials 102 at +8000 (S2 from +8040), 102 answers at
/// +9000; the REFER at +10000 joins 101 with 103 on 103's own S2 dialog.
/// S1 as when B placed the consultation; S2 ends
/// `attended_transfer_complete` with its one target, 102, ended
/// `attended_transfer_complete` (C has no target in S2 to end `replaced`).
#[test]
fn a_consultation_c_placed_is_transferred_too() {
    let (mut cast, mut a_call, mut b_call) = answered();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    let Cast { bench, alice, bob } = &mut cast;
    bench.register(&mut ann);
    bench.at(8_000);
    let mut c2 = bench.dial(&mut ann, "102");
    let invite = bench.take_one(bob.peer);
    let b2 = bob.incoming(&invite);
    bench.at(9_000);
    bench.send(bob.peer, &bob.respond(&b2, &invite, 200, Some(SDP_B)));
    let ok = bench
        .take(ann.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    bench.send(ann.peer, &ann.ack(&mut c2, &ok, Some(SDP_C)));
    let _ = bench.take(bob.peer);
    bench.at(10_000);
    let refer = refer_with_replaces(bob, &mut b_call, &b2);
    bench.send(bob.peer, &refer);
    let got = bench.take(bob.peer);
    let summary: Vec<String> = got.iter().map(Message::summary).collect();
    assert_eq!(got[0].status(), Some(202), "{summary:?}");
    assert!(is(&got[1], Method::Notify), "{summary:?}");
    assert!(is(&got[2], Method::Bye), "B's S2 leg: {summary:?}");
    assert_eq!(got[2].call_id().unwrap(), b2.call_id);
    answer(bench, bob, &b_call, &got[1]);
    answer(bench, bob, &b2, &got[2]);
    // C is asked for an offer on the dialog it placed.
    let reinvite = bench.take_one(ann.peer);
    assert!(is(&reinvite, Method::Invite) && reinvite.body().is_empty());
    assert_eq!(reinvite.call_id().unwrap(), c2.call_id, "C's own dialog");
    bench.send(ann.peer, &ann.respond(&c2, &reinvite, 200, Some(SDP_C)));
    let a_reinvite = bench.take_one(alice.peer);
    assert_eq!(a_reinvite.body(), SDP_C.as_bytes());
    bench.at(10_050);
    bench.send(
        alice.peer,
        &alice.respond(&a_call, &a_reinvite, 200, Some(SDP_A2)),
    );
    assert!(is(&bench.take_one(alice.peer), Method::Ack));
    let ack = bench.take_one(ann.peer);
    assert!(is(&ack, Method::Ack), "{}", ack.summary());
    assert_eq!(ack.body(), SDP_A2.as_bytes());
    let n = bench.take_one(bob.peer);
    assert!(n.body().starts_with(b"SIP/2.0 200 OK"), "{:?}", n.body());
    answer(bench, bob, &b_call, &n);
    bench.at(13_500);
    let bye = bob.request(&mut b_call, "BYE", None);
    bench.send(bob.peer, &bye);
    assert_eq!(bench.take_one(bob.peer).status(), Some(200));
    // A and C talk: C's INFO reaches A.
    bench.at(15_000);
    let info = ann.request(
        &mut c2,
        "INFO",
        Some(("application/dtmf-relay", "Signal=5\r\n")),
    );
    bench.send(ann.peer, &info);
    let relayed = bench.take_one(alice.peer);
    assert!(is(&relayed, Method::Info), "{}", relayed.summary());
    bench.send(alice.peer, &alice.respond(&a_call, &relayed, 200, None));
    assert_eq!(bench.take_one(ann.peer).status(), Some(200));
    bench.at(20_000);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(ann.peer);
    assert!(is(&bye, Method::Bye));
    assert_eq!(bye.call_id().unwrap(), c2.call_id);
    bench.send(ann.peer, &ann.respond(&c2, &bye, 200, None));

    let mut c = target(
        (&id_at(10_000, 0), CDR, "normal_call"),
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
                    ("1795874587", "1795874587", "1795874592", "1795874600"),
                    ("5", "8"),
                    ("answered", 0, "attended_transfer_complete"),
                ),
                c,
            ],
            10,
        ),
    );
    let s2 = cdr_of(bench, 1);
    let (s2_session, s2_cdr) = (id_at(8_040, 0), id_at(8_040, 1));
    golden(
        &s2,
        json!({
            "event_type": "call_cdr",
            "session_id": s2_session,
            "cdr_id": s2_cdr,
            "call_id": c2.call_id,
            "tenant_id": TENANT_ID,
            "tenant_name": "acme",
            "direction": "ext",
            "caller": "103",
            "caller_display_name": "Ann",
            "caller_domain": "acme.example",
            "callee": "102",
            "callee_display_name": "Jason",
            "callee_domain": "acme.example",
            "did": "",
            "did_cid": "",
            "outbound_caller_id": "",
            "trunk_name": "",
            "start_time": "1795874595",
            "ring_time": "1795874596",
            "answered_time": "1795874596",
            "ended_time": "1795874597",
            // No 18x: it rang when it answered (SPEC §2).
            "ring_duration": "0",
            "talk_duration": 1,
            "call_status": "answered",
            "status_code": "0",
            "ended_reason": "attended_transfer_complete",
            "end_reason": "attended_transfer_complete",
            "user_data": "",
            "call_targets": [{
                "id": id_at(8_040, 2),
                "cdr_id": s2_cdr,
                "direction": "ext",
                "call_type": "normal_call",
                "caller": "103",
                "callee": "102",
                "destination": DESK_URI,
                "start_time": "1795874595",
                "ring_time": "1795874596",
                "answered_time": "1795874596",
                "ended_time": "1795874597",
                "ring_duration": "0",
                "talk_duration": "1",
                "status": "answered",
                "status_code": 0,
                "end_reason": "attended_transfer_complete",
                "did": "",
                "outbound_caller_id": "",
                "trunk_name": "",
            }],
            "event_id": s2["event_id"],
            "sequence": s2["sequence"],
        }),
    );
    // call_update_info fires in S1 only, naming C.
    let updates: Vec<_> = bench
        .call_events
        .iter()
        .filter_map(|(s, _, e)| match &e.kind {
            cdr::CallEventKind::IdentityChanged { callee, .. } => {
                Some((s.to_string(), callee.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(updates[0].0, SESSION);
    assert_eq!(updates[0].1.as_ref().unwrap().user, "103");
}
