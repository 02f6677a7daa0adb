//! Call pickup (SPEC §3 "call pickup"): 101 calls 102, whose desk phone
//! rings from +210; 103 (Ann), in 102's pickup group, dials `*8` (or
//! `**102`) and takes the call. Played on the virtual clock: the SIP
//! exchange, the exact `call_cdr`, refusals (nothing changes) and two
//! pickers at once (exactly one wins).
//!
//! Times: the call starts at +0 (Unix s 1795874587); Ann's authenticated
//! INVITE at +3040 (…590); 101 hangs up at +20000 (…607).

#![recursion_limit = "256"]

mod common;

use common::golden::*;
use common::*;
use serde_json::json;
use sip::{Message, Method};

const ANN: &str = "10.0.0.9:5066";
const DAN: &str = "10.0.0.11:5070";
const SDP_C: &str = "v=0\r\no=103 3 3 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=sendrecv\r\n";
const SDP_A2: &str = "v=0\r\no=101 2 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n";

fn id_at(offset: i64, seq: u64) -> String {
    let ms = (T0 as i64 + offset - 1_514_764_800_000) as u64;
    ((ms << 22) | (1 << 12) | seq).to_string()
}

/// Puts `ext` in pickup group `group`.
fn group(bench: &mut Bench, ext: &str, group: &str) {
    let d = bench.engine.directory_mut();
    let mut u = d.user(tenant_id(), ext).unwrap().clone();
    u.pickup_group = group.into();
    d.upsert_user(u).unwrap();
}

/// 102 rings (desk phone), 102 and 103 in group "sales", 103 registered.
fn ringing_with_ann() -> (Cast, Phone, Call, Call, Message) {
    let (mut cast, a_call, b_call, invite) = ringing();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    cast.bench.register(&mut ann);
    group(&mut cast.bench, "102", "sales");
    group(&mut cast.bench, "103", "sales");
    (cast, ann, a_call, b_call, invite)
}

/// `phone` dials `number` offering `sdp`: the 407, then the authenticated
/// INVITE 40 ms later.
fn dial_with(bench: &mut Bench, phone: &mut Phone, number: &str, sdp: Option<&str>) -> Call {
    let mut call = phone.call(number, sdp);
    bench.send(phone.peer, &phone.invite(&mut call, None));
    let challenge = bench.take_one(phone.peer);
    assert_eq!(challenge.status(), Some(407), "{}", challenge.summary());
    bench.send(phone.peer, &phone.ack_failure(&call, &challenge));
    bench.at(bench.now + 40);
    let text = phone.invite(&mut call, Some(&challenge));
    bench.send(phone.peer, &text);
    call
}

/// The final response among what `peer` got (provisionals skipped).
fn final_of(bench: &mut Bench, peer: sip::transport::Peer) -> Message {
    bench
        .take(peer)
        .into_iter()
        .find(|m| m.status().is_some_and(|s| s >= 200))
        .expect("a final response")
}

/// Bob's desk answers the PBX's CANCEL and its INVITE's 487.
fn bob_cancelled(bench: &mut Bench, bob: &Phone, b_call: &Call, invite: &Message) {
    let cancel = bench.take_one(bob.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    bench.send(bob.peer, &bob.respond(b_call, &cancel, 200, None));
    bench.send(bob.peer, &bob.respond(b_call, invite, 487, None));
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
}

#[test]
fn group_pickup_takes_the_ringing_call() {
    let (mut cast, mut ann, mut a_call, b_call, invite) = ringing_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(3_000);
    let mut c_call = dial_with(bench, &mut ann, "*8", Some(SDP_C));
    bob_cancelled(bench, bob, &b_call, &invite);
    // A's INVITE is answered with an inactive answer to its offer.
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200), "{}", ok.summary());
    let held = sip::sdp::SessionDescription::parse(ok.body()).unwrap();
    assert!(held.is_hold(), "{}", String::from_utf8_lossy(ok.body()));
    assert!(bench.take(ann.peer).iter().all(|m| m.status() == Some(100)));
    bench.at(3_100);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    // At A's ACK, A is re-INVITEd with Ann's offer.
    let reinvite = bench.take_one(alice.peer);
    assert!(is(&reinvite, Method::Invite), "{}", reinvite.summary());
    assert_eq!(reinvite.body(), SDP_C.as_bytes());
    bench.send(
        alice.peer,
        &alice.respond(&a_call, &reinvite, 200, Some(SDP_A2)),
    );
    let ok = bench.take_one(ann.peer);
    assert_eq!(ok.status(), Some(200), "{}", ok.summary());
    assert_eq!(ok.body(), SDP_A2.as_bytes());
    assert!(ok.header_named("X-Session-Id").is_some());
    bench.send(ann.peer, &ann.ack(&mut c_call, &ok, None));
    assert!(is(&bench.take_one(alice.peer), Method::Ack));
    // 101 hangs up: Ann gets BYE on her own dialog.
    bench.at(20_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(ann.peer);
    assert!(is(&bye, Method::Bye));
    assert_eq!(bye.call_id().unwrap(), c_call.call_id);

    let mut picker = target(
        (&id_at(3_040, 0), CDR, "normal_call"),
        ("103", ANN_URI),
        ("1795874590", "1795874590", "1795874590", "1795874607"),
        ("0", "17"),
        ("answered", 0, "caller_disconnect"),
    );
    picker["caller"] = json!("101");
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("102", "Jason"),
            ("1795874587", "1795874587", "1795874590", "1795874607"),
            ("3", 17),
            ("answered", "0", "caller_disconnect"),
            vec![
                target(
                    ("1179059904569151490", CDR, "normal_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "0", "1795874590"),
                    ("3", "0"),
                    ("noanswer", 0, "replaced"),
                ),
                picker,
            ],
            9,
        ),
    );
    // One session: the picker's INVITE has no CDR of its own.
    let sessions: std::collections::HashSet<_> =
        bench.call_events.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(sessions.len(), 1);
    // call_update_info names the picker.
    let updates: Vec<_> = bench
        .call_events
        .iter()
        .filter_map(|(_, _, e)| match &e.kind {
            cdr::CallEventKind::IdentityChanged { callee, .. } => callee.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].user, "103");
    assert_eq!(updates[0].domain, DOMAIN);
}

/// `**102` without SDP: A's re-INVITE asks for an offer, which Ann gets
/// in her 200 and answers in her ACK; the ACK to A carries the answer.
#[test]
fn directed_pickup_with_a_late_offer() {
    let (mut cast, mut ann, mut a_call, b_call, invite) = ringing_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(3_000);
    let mut c_call = dial_with(bench, &mut ann, "**102", None);
    bob_cancelled(bench, bob, &b_call, &invite);
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200));
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    let reinvite = bench.take_one(alice.peer);
    assert!(is(&reinvite, Method::Invite) && reinvite.body().is_empty());
    bench.send(
        alice.peer,
        &alice.respond(&a_call, &reinvite, 200, Some(SDP_A2)),
    );
    let ok = final_of(bench, ann.peer);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.body(), SDP_A2.as_bytes(), "A's offer");
    bench.send(ann.peer, &ann.ack(&mut c_call, &ok, Some(SDP_C)));
    let ack = bench.take_one(alice.peer);
    assert!(is(&ack, Method::Ack));
    assert_eq!(ack.body(), SDP_C.as_bytes(), "Ann's answer");
    // Ann hangs up: callee_disconnect.
    bench.at(9_000);
    bench.send(ann.peer, &ann.request(&mut c_call, "BYE", None));
    assert_eq!(bench.take_one(ann.peer).status(), Some(200));
    assert!(is(&bench.take_one(alice.peer), Method::Bye));
    let cdr = cdr_of(bench, 0);
    assert_eq!(cdr["ended_reason"], "callee_disconnect");
    let t = &cdr["call_targets"];
    assert_eq!(
        json!([
            t[0]["end_reason"],
            t[1]["callee"],
            t[1]["status"],
            t[1]["end_reason"]
        ]),
        json!(["replaced", "103", "answered", "callee_disconnect"])
    );
}

/// Refusals answer 403/404 and change nothing: 102 still rings, answers,
/// and the CDR is a plain call to 102.
#[test]
fn refused_pickups_change_nothing() {
    let (mut cast, mut ann, mut a_call, b_call, invite) = ringing_with_ann();
    let mut dan = Phone::new("104", "Bob", udp(DAN));
    cast.bench.register(&mut dan);
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(3_000);
    // 104 is in no group.
    dial_with(bench, &mut dan, "*8", Some(SDP_C));
    assert_eq!(final_of(bench, dan.peer).status(), Some(403));
    // 104 in another group: neither group nor directed pickup reach 102.
    group(bench, "104", "support");
    dial_with(bench, &mut dan, "*8", Some(SDP_C));
    assert_eq!(final_of(bench, dan.peer).status(), Some(404));
    dial_with(bench, &mut dan, "**102", Some(SDP_C));
    assert_eq!(final_of(bench, dan.peer).status(), Some(403));
    // No such extension; an extension of the group that is not ringing.
    dial_with(bench, &mut ann, "**199", Some(SDP_C));
    assert_eq!(final_of(bench, ann.peer).status(), Some(404));
    group(bench, "104", "sales");
    dial_with(bench, &mut ann, "**104", Some(SDP_C));
    assert_eq!(final_of(bench, ann.peer).status(), Some(404));
    // The caller cannot pick up its own call.
    group(bench, "101", "sales");
    dial_with(bench, alice, "*8", Some(SDP_C));
    assert_eq!(final_of(bench, alice.peer).status(), Some(404));
    assert!(bench.take(bob.peer).is_empty(), "102 still rings");
    bench.at(6_000);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ok = final_of(bench, alice.peer);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.body(), SDP_B.as_bytes());
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    bench.at(9_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    let cdr = cdr_of(bench, 0);
    assert_eq!(cdr["call_targets"].as_array().unwrap().len(), 1);
    assert_eq!(cdr["call_targets"][0]["end_reason"], "caller_disconnect");
    let sessions: std::collections::HashSet<_> =
        bench.call_events.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(sessions.len(), 1, "refused pickups leave no CDR");
}

/// Two pickers in the same instant: the engine takes inputs one at a
/// time, the first picks the call up and the second finds nothing.
#[test]
fn two_pickers_at_once_exactly_one_wins() {
    let (mut cast, mut ann, _a_call, b_call, invite) = ringing_with_ann();
    let mut dan = Phone::new("104", "Bob", udp(DAN));
    cast.bench.register(&mut dan);
    group(&mut cast.bench, "104", "sales");
    let Cast { bench, bob, alice } = &mut cast;
    bench.at(3_000);
    let mut calls = Vec::new();
    let mut challenges = Vec::new();
    for phone in [&mut ann, &mut dan] {
        let mut call = phone.call("*8", Some(SDP_C));
        bench.send(phone.peer, &phone.invite(&mut call, None));
        let ch = bench.take_one(phone.peer);
        bench.send(phone.peer, &phone.ack_failure(&call, &ch));
        calls.push(call);
        challenges.push(ch);
    }
    bench.at(3_040);
    // Both authenticated INVITEs arrive before anything else happens.
    let texts: Vec<String> = [&mut ann, &mut dan]
        .into_iter()
        .zip(calls.iter_mut().zip(&challenges))
        .map(|(p, (c, ch))| p.invite(c, Some(ch)))
        .collect();
    bench.send(ann.peer, &texts[0]);
    bench.send(dan.peer, &texts[1]);
    assert_eq!(final_of(bench, dan.peer).status(), Some(404), "the second");
    bob_cancelled(bench, bob, &b_call, &invite);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    assert!(bench.take(ann.peer).iter().all(|m| m.status() == Some(100)));
    let added: Vec<_> = bench.targets().into_iter().map(|(c, _)| c).collect();
    assert_eq!(added, ["102", "103"]);
}

/// The caller hangs up before the join completes: the picker's INVITE is
/// answered 487, and the CDR closes.
#[test]
fn the_caller_leaving_before_the_join_answers_the_picker_487() {
    let (mut cast, mut ann, mut a_call, b_call, invite) = ringing_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(3_000);
    dial_with(bench, &mut ann, "*8", Some(SDP_C));
    bob_cancelled(bench, bob, &b_call, &invite);
    let ok = bench.take_one(alice.peer);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    let reinvite = bench.take_one(alice.peer);
    assert!(is(&reinvite, Method::Invite));
    bench.at(3_500);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    let got = bench.take(alice.peer);
    assert!(got.iter().any(|m| m.status() == Some(200)));
    assert_eq!(final_of(bench, ann.peer).status(), Some(487));
    let cdr = cdr_of(bench, 0);
    assert_eq!(cdr["ended_reason"], "caller_disconnect");
    assert_eq!(cdr["call_targets"][1]["end_reason"], "caller_disconnect");
}

/// Feature codes are the tenant's: with its own codes, `*8` is an
/// ordinary number again (no such extension: 404 from routing, a CDR).
#[test]
fn a_tenant_sets_its_own_feature_codes() {
    let (mut cast, mut ann, _a_call, b_call, invite) = ringing_with_ann();
    let Cast { bench, bob, alice } = &mut cast;
    bench.engine.directory_mut().set_feature_codes(
        tenant_id(),
        pbx::FeatureCodes {
            group_pickup: "*7".into(),
            directed_pickup: "*9".into(),
            ..Default::default()
        },
    );
    bench.at(3_000);
    dial_with(bench, &mut ann, "*8", Some(SDP_C));
    assert_eq!(final_of(bench, ann.peer).status(), Some(404));
    assert!(bench.take(bob.peer).is_empty());
    dial_with(bench, &mut ann, "*9102", Some(SDP_C));
    bob_cancelled(bench, bob, &b_call, &invite);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
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

/// `phone` INVITEs 102 offering SDP_C with `replaces` (a BLF pickup: the
/// phone's key for 102 names the dialog it saw ringing), authenticated.
fn blf_pickup(bench: &mut Bench, phone: &mut Phone, replaces: &str) -> Call {
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

/// Ann (102's pickup group) presses her BLF key for 102 while it rings:
/// INVITE with `Replaces` naming Bob's ringing dialog, its to-tag the
/// PBX's, `early-only`. A directed pickup: Bob's target ends `replaced`,
/// Ann is a new answered target, one CDR.
#[test]
fn a_replaces_naming_a_ringing_device_picks_the_call_up() {
    let (mut cast, mut ann, mut a_call, b_call, invite) = ringing_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(3_000);
    let replaces = format!(
        "{};to-tag={};from-tag={};early-only",
        b_call.call_id,
        tag_of(&b_call.remote),
        tag_of(&b_call.local)
    );
    let mut c_call = blf_pickup(bench, &mut ann, &replaces);
    bob_cancelled(bench, bob, &b_call, &invite);
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200), "{}", ok.summary());
    bench.at(3_100);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    let reinvite = bench.take_one(alice.peer);
    assert!(is(&reinvite, Method::Invite), "{}", reinvite.summary());
    assert_eq!(reinvite.body(), SDP_C.as_bytes());
    bench.send(
        alice.peer,
        &alice.respond(&a_call, &reinvite, 200, Some(SDP_A2)),
    );
    let ok = final_of(bench, ann.peer);
    assert_eq!(ok.status(), Some(200), "{}", ok.summary());
    assert_eq!(ok.body(), SDP_A2.as_bytes());
    bench.send(ann.peer, &ann.ack(&mut c_call, &ok, None));
    assert!(is(&bench.take_one(alice.peer), Method::Ack));
    bench.at(20_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(ann.peer);
    assert!(is(&bye, Method::Bye));
    assert_eq!(bye.call_id().unwrap(), c_call.call_id);

    let mut picker = target(
        (&id_at(3_040, 0), CDR, "normal_call"),
        ("103", ANN_URI),
        ("1795874590", "1795874590", "1795874590", "1795874607"),
        ("0", "17"),
        ("answered", 0, "caller_disconnect"),
    );
    picker["caller"] = json!("101");
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("102", "Jason"),
            ("1795874587", "1795874587", "1795874590", "1795874607"),
            ("3", 17),
            ("answered", "0", "caller_disconnect"),
            vec![
                target(
                    ("1179059904569151490", CDR, "normal_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "0", "1795874590"),
                    ("3", "0"),
                    ("noanswer", 0, "replaced"),
                ),
                picker,
            ],
            9,
        ),
    );
    let sessions: std::collections::HashSet<_> =
        bench.call_events.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(sessions.len(), 1, "the picker's INVITE has no CDR");
}

/// The same dialog named from the device's side (its own tag as the
/// to-tag, the PBX's as the from-tag) and without `early-only`, as some
/// phones write it: picked up all the same.
#[test]
fn a_replaces_with_the_tags_the_other_way_round_picks_up_too() {
    let (mut cast, mut ann, mut a_call, b_call, invite) = ringing_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(3_000);
    let replaces = format!(
        "{};to-tag={};from-tag={}",
        b_call.call_id,
        tag_of(&b_call.local),
        tag_of(&b_call.remote)
    );
    blf_pickup(bench, &mut ann, &replaces);
    bob_cancelled(bench, bob, &b_call, &invite);
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200), "{}", ok.summary());
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    assert!(is(&bench.take_one(alice.peer), Method::Invite));
    let ended: Vec<_> = bench
        .call_events
        .iter()
        .filter_map(|(_, _, e)| match &e.kind {
            cdr::CallEventKind::TargetEnded(t) => Some(t.reason),
            _ => None,
        })
        .collect();
    assert_eq!(ended, [cdr::EndReason::Replaced]);
    assert_eq!(
        bench
            .targets()
            .into_iter()
            .map(|(c, _)| c)
            .collect::<Vec<_>>(),
        ["102", "103"]
    );
}

/// A BLF pickup has `**102`'s rules: a picker in no group or another
/// group is refused `403`, the caller may not take its own call; an
/// unknown dialog is `481`; nothing changes (102 still rings and
/// answers). `early-only` naming an answered dialog is `486`.
#[test]
fn refused_blf_pickups_change_nothing() {
    let (mut cast, mut ann, mut a_call, b_call, invite) = ringing_with_ann();
    let mut dan = Phone::new("104", "Bob", udp(DAN));
    cast.bench.register(&mut dan);
    let Cast { bench, alice, bob } = &mut cast;
    let named = |early_only: bool| {
        format!(
            "{};to-tag={};from-tag={}{}",
            b_call.call_id,
            tag_of(&b_call.remote),
            tag_of(&b_call.local),
            if early_only { ";early-only" } else { "" }
        )
    };
    bench.at(3_000);
    blf_pickup(bench, &mut dan, &named(true));
    let r = final_of(bench, dan.peer);
    assert_eq!(
        (r.status(), r.reason_phrase()),
        (Some(403), Some("Not In A Pickup Group"))
    );
    group(bench, "104", "support");
    blf_pickup(bench, &mut dan, &named(false));
    let r = final_of(bench, dan.peer);
    assert_eq!(
        (r.status(), r.reason_phrase()),
        (Some(403), Some("Not In Your Pickup Group"))
    );
    group(bench, "101", "sales");
    blf_pickup(bench, alice, &named(false));
    let r = final_of(bench, alice.peer);
    assert_eq!(r.status(), Some(403), "{}", r.summary());
    let unknown = format!("{};to-tag=nope;from-tag=nada", b_call.call_id);
    blf_pickup(bench, &mut ann, &unknown);
    assert_eq!(final_of(bench, ann.peer).status(), Some(481));
    assert!(bench.take(bob.peer).is_empty(), "102 still rings");

    bench.at(6_000);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ok = final_of(bench, alice.peer);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    // Answered now: early-only is 486, and the call goes on.
    bench.at(7_000);
    blf_pickup(bench, &mut ann, &named(true));
    assert_eq!(final_of(bench, ann.peer).status(), Some(486));
    assert!(bench.take(bob.peer).is_empty());
    bench.at(9_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    let cdr = cdr_of(bench, 0);
    assert_eq!(cdr["call_targets"].as_array().unwrap().len(), 1);
    assert_eq!(cdr["call_targets"][0]["end_reason"], "caller_disconnect");
}
