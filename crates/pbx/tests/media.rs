//! Media anchoring on the virtual clock: when the engine relays a call,
//! the SDP each party receives (the relay's address, codecs unchanged), the
//! commands the runtime's relay gets, and that every end path stops it.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cdr::{CallEventKind, EndReason, SessionId};
use common::*;
use pbx::media::{Anchor, MediaCommand, MediaPolicy, Party, RecordingPlan, RelayPorts, Side};
use pbx::{Extension, ForwardCondition, Forwarding, Input, RingGroup, RingStrategy};
use serde_json::json;
use sip::sdp::SessionDescription;
use sip::{Message, Method};

const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));

/// Ports handed out in order, `free` pairs of pairs at most; what was
/// reserved is shared with the test.
#[derive(Clone, Default)]
struct Ports {
    free: Arc<Mutex<usize>>,
    reserved: Arc<Mutex<Vec<SessionId>>>,
}

impl RelayPorts for Ports {
    fn reserve(&mut self, session: SessionId) -> Option<[u16; 2]> {
        let mut free = self.free.lock().unwrap();
        if *free == 0 {
            return None;
        }
        *free -= 1;
        let mut reserved = self.reserved.lock().unwrap();
        reserved.push(session);
        let base = 30_000 + 4 * reserved.len() as u16;
        Some([base, base + 2])
    }
}

fn with_media(anchor: Anchor, free: usize) -> (Cast, Ports) {
    let mut cast = Cast::new();
    let ports = Ports::default();
    *ports.free.lock().unwrap() = free;
    cast.bench.engine.set_media(
        MediaPolicy {
            anchor,
            address: RELAY,
        },
        Box::new(ports.clone()),
    );
    (cast, ports)
}

fn set_recording(cast: &mut Cast, ext: &str) {
    let d = cast.bench.engine.directory_mut();
    let mut u = d.user(tenant_id(), ext).unwrap().clone();
    u.recording = true;
    d.upsert_user(u).unwrap();
}

/// (address, audio port, payload types) of a message's SDP.
fn audio(m: &Message) -> (IpAddr, u16, Vec<String>) {
    let sdp = SessionDescription::parse(m.body()).expect("an SDP body");
    let a = sdp.media.iter().find(|m| m.media == "audio").unwrap();
    let ip = sdp.media_connection(a).and_then(|c| c.ip()).unwrap();
    (ip, a.port, a.formats.clone())
}

fn party(rtp: &str, codecs: &[(u8, &str)]) -> Party {
    let rtp: std::net::SocketAddr = rtp.parse().unwrap();
    Party {
        rtp: Some(rtp),
        rtcp: Some(std::net::SocketAddr::new(rtp.ip(), rtp.port() + 1)),
        behind_nat: false,
        codecs: codecs
            .iter()
            .map(|(pt, n)| (*pt, (*n).to_owned()))
            .collect(),
    }
}

fn commands(bench: &Bench) -> Vec<MediaCommand> {
    bench.media.iter().map(|(_, c)| c.clone()).collect()
}

/// 101 dials 102 with `sdp`; 102 rings and answers with SDP_B; 101 ACKs.
/// Returns the INVITE and 200 the phones got.
fn call(cast: &mut Cast, sdp: &str) -> (Call, Call, Message, Message) {
    let Cast { bench, alice, bob } = cast;
    bench.at(-40);
    let mut a_call = alice.call("102", Some(sdp));
    let text = alice.invite(&mut a_call, None);
    bench.send(alice.peer, &text);
    let challenge = bench.take_one(alice.peer);
    bench.send(alice.peer, &alice.ack_failure(&a_call, &challenge));
    bench.at(0);
    let text = alice.invite(&mut a_call, Some(&challenge));
    bench.send(alice.peer, &text);
    let invite = bench.take_one(bob.peer);
    assert!(is(&invite, Method::Invite));
    let b_call = bob.incoming(&invite);
    bench.at(200);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200));
    bench.at(230);
    let ack = alice.ack(&mut a_call, &ok, None);
    bench.send(alice.peer, &ack);
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    (a_call, b_call, invite, ok)
}

#[test]
fn always_anchors_both_legs_and_stops_with_the_session() {
    let (mut cast, ports) = with_media(Anchor::Always, 4);
    let (mut a_call, _b_call, invite, ok) = call(&mut cast, SDP_A);
    // Bob is offered the relay's side B, Alice answered with side A;
    // codecs are what each party wrote.
    assert_eq!(
        audio(&invite),
        (RELAY, 30_006, vec!["0".into(), "8".into()])
    );
    assert_eq!(audio(&ok), (RELAY, 30_004, vec!["0".into()]));
    assert!(!String::from_utf8_lossy(invite.body()).contains("10.0.0.5"));
    assert!(!String::from_utf8_lossy(ok.body()).contains("10.0.0.7"));
    let session = ports.reserved.lock().unwrap()[0];
    assert!(cast.bench.media.iter().all(|(s, _)| *s == session));
    assert_eq!(
        commands(&cast.bench),
        vec![
            MediaCommand::Open {
                ports: [30_004, 30_006],
                recording: None
            },
            MediaCommand::Party(Side::A, party("10.0.0.5:4000", &[(0, "PCMU"), (8, "PCMA")])),
            MediaCommand::Party(Side::B, party("10.0.0.7:5004", &[(0, "PCMU")])),
            MediaCommand::Answered,
        ]
    );
    // Alice hangs up: the relay stops in the step that ends the session,
    // after its SessionEnded.
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    assert!(is(&bench.take_one(bob.peer), Method::Bye));
    assert_eq!(bench.media.last().unwrap().1, MediaCommand::Stop);
    assert_eq!(
        bench
            .media
            .iter()
            .filter(|(_, c)| *c == MediaCommand::Stop)
            .count(),
        1
    );
    let cdr = bench.cdr();
    assert_eq!(cdr["ended_reason"], "caller_disconnect");
}

#[test]
fn auto_relays_only_recorded_or_natted_calls() {
    // Nobody records, SDP matches the signalling source: end to end.
    let (mut cast, ports) = with_media(Anchor::Auto, 4);
    let (_, _, invite, ok) = call(&mut cast, SDP_A);
    assert_eq!(audio(&invite).0, "10.0.0.5".parse::<IpAddr>().unwrap());
    assert_eq!(audio(&ok).0, "10.0.0.7".parse::<IpAddr>().unwrap());
    assert!(cast.bench.media.is_empty());
    assert!(ports.reserved.lock().unwrap().is_empty());

    // The caller's SDP names a private address its INVITE did not come
    // from: behind NAT, relayed, and the relay is told so.
    let (mut cast, _) = cast_auto();
    let natted = SDP_A.replace("10.0.0.5", "192.168.1.20");
    let (_, _, invite, ok) = call(&mut cast, &natted);
    assert_eq!(audio(&invite).0, RELAY);
    assert_eq!(audio(&ok).0, RELAY);
    let mut expected = party("192.168.1.20:4000", &[(0, "PCMU"), (8, "PCMA")]);
    expected.behind_nat = true;
    assert!(commands(&cast.bench).contains(&MediaCommand::Party(Side::A, expected)));

    // The callee records: relayed and recorded, with what the row needs.
    let (mut cast, _) = cast_auto();
    set_recording(&mut cast, "102");
    let (_, _, invite, _) = call(&mut cast, SDP_A);
    assert_eq!(audio(&invite).0, RELAY);
    match &commands(&cast.bench)[0] {
        MediaCommand::Open {
            recording: Some(plan),
            ..
        } => {
            assert_eq!((plan.caller.as_str(), plan.callee.as_str()), ("101", "102"));
            assert_eq!(plan.started_ms, T0);
            assert!(!plan.provisional, "the first destination records");
        }
        other => panic!("expected a recorded Open, got {other:?}"),
    }
}

fn cast_auto() -> (Cast, Ports) {
    with_media(Anchor::Auto, 4)
}

#[test]
fn never_and_an_exhausted_pool_leave_sdp_alone() {
    let (mut cast, ports) = with_media(Anchor::Never, 4);
    set_recording(&mut cast, "101");
    let (_, _, invite, _) = call(&mut cast, SDP_A);
    assert_eq!(audio(&invite).1, 4000);
    assert!(cast.bench.media.is_empty() && ports.reserved.lock().unwrap().is_empty());

    // Always, but no port left: the call goes on unrelayed.
    let (mut cast, _) = with_media(Anchor::Always, 0);
    let (_, _, invite, ok) = call(&mut cast, SDP_A);
    assert_eq!(audio(&invite).1, 4000);
    assert_eq!(audio(&ok).1, 5004);
    assert!(cast.bench.media.is_empty());
}

#[test]
fn reinvite_and_late_offer_are_rewritten_both_ways() {
    // A late offer: no SDP in the INVITE, Bob offers in the 200, Alice
    // answers in the ACK.
    let (mut cast, _) = with_media(Anchor::Always, 4);
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    let mut a_call = alice.call("102", None);
    let text = alice.invite(&mut a_call, None);
    bench.send(alice.peer, &text);
    let challenge = bench.take_one(alice.peer);
    bench.send(alice.peer, &alice.ack_failure(&a_call, &challenge));
    bench.at(0);
    let text = alice.invite(&mut a_call, Some(&challenge));
    bench.send(alice.peer, &text);
    let invite = bench.take_one(bob.peer);
    assert!(invite.body().is_empty());
    let mut b_call = bob.incoming(&invite);
    bench.at(100);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    assert_eq!(audio(&ok), (RELAY, 30_004, vec!["0".into()]));
    bench.at(130);
    let ack = alice.ack(&mut a_call, &ok, Some(SDP_A));
    bench.send(alice.peer, &ack);
    let b_ack = bench.take_one(bob.peer);
    assert!(is(&b_ack, Method::Ack));
    assert_eq!(audio(&b_ack), (RELAY, 30_006, vec!["0".into(), "8".into()]));
    assert!(commands(bench).contains(&MediaCommand::Party(
        Side::A,
        party("10.0.0.5:4000", &[(0, "PCMU"), (8, "PCMA")])
    )));

    // Bob moves his audio with a re-INVITE: Alice sees the relay, the
    // relay learns Bob's new port; Alice's answer reaches Bob rewritten.
    bench.at(5_000);
    let moved = SDP_B
        .replace("5004", "6000")
        .replace("o=102 7 7", "o=102 7 8");
    let reinvite = bob.request(&mut b_call, "INVITE", Some(("application/sdp", &moved)));
    bench.send(bob.peer, &reinvite);
    let to_alice = bench.take_one(alice.peer);
    assert!(is(&to_alice, Method::Invite));
    assert_eq!(audio(&to_alice), (RELAY, 30_004, vec!["0".into()]));
    assert!(commands(bench).contains(&MediaCommand::Party(
        Side::B,
        party("10.0.0.7:6000", &[(0, "PCMU")])
    )));
    let mut a_in = alice.incoming(&to_alice);
    a_in.confirm(&to_alice);
    bench.send(
        alice.peer,
        &alice.respond(&a_in, &to_alice, 200, Some(SDP_A)),
    );
    let ok_to_bob = bench
        .take(bob.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("the 200 relayed to Bob");
    assert_eq!(audio(&ok_to_bob).0, RELAY);
    assert_eq!(audio(&ok_to_bob).1, 30_006);
}

#[test]
fn rtp_timeout_hangs_up_both_legs_with_a_cdr() {
    let (mut cast, ports) = with_media(Anchor::Always, 4);
    call(&mut cast, SDP_A);
    let session = ports.reserved.lock().unwrap()[0];
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(60_230);
    bench.input(Input::MediaTimeout { session });
    assert!(is(&bench.take_one(alice.peer), Method::Bye));
    assert!(is(&bench.take_one(bob.peer), Method::Bye));
    assert_eq!(bench.media.last().unwrap().1, MediaCommand::Stop);
    let cdr = bench.cdr();
    assert_eq!(cdr["ended_reason"], "None");
    assert_eq!(cdr["call_status"], "answered");
    assert_eq!(cdr["call_targets"][0]["end_reason"], "None");
    // A timeout for a session that is gone changes nothing.
    bench.input(Input::MediaTimeout { session });
    assert!(bench.take(alice.peer).is_empty());
}

#[test]
fn every_unanswered_end_stops_the_relay() {
    // The caller cancels while Bob rings.
    let (mut cast, _) = with_media(Anchor::Always, 4);
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    let a_call = bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    let b_call = bob.incoming(&invite);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 180, Some(SDP_B)));
    let ringing = bench.take_one(alice.peer);
    // Early media goes through the relay too.
    assert_eq!(audio(&ringing).0, RELAY);
    bench.at(2_000);
    bench.send(alice.peer, &alice.cancel(&a_call));
    let stops = |b: &Bench| {
        b.media
            .iter()
            .filter(|(_, c)| *c == MediaCommand::Stop)
            .count()
    };
    assert_eq!(stops(bench), 1);
    assert!(
        bench
            .session_events()
            .iter()
            .any(|e| matches!(&e.kind, CallEventKind::SessionEnded(end) if end.reason == EndReason::Cancelled))
    );

    // Bob busy: refused, stopped.
    let (mut cast, _) = with_media(Anchor::Always, 4);
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    let b_call = bob.incoming(&invite);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 486, None));
    assert_eq!(
        bench
            .take(alice.peer)
            .iter()
            .filter_map(Message::status)
            .collect::<Vec<_>>(),
        vec![486]
    );
    assert_eq!(stops(bench), 1);

    // A number nobody has: refused before anything is reserved.
    let (mut cast, ports) = with_media(Anchor::Always, 4);
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(-40);
    bench.dial(alice, "999");
    assert_eq!(bench.take_one(alice.peer).status(), Some(404));
    assert!(bench.media.is_empty() && ports.reserved.lock().unwrap().is_empty());
}

// ----- which calls are recorded, and why a recording is missing ---------

const ANN: &str = "10.0.0.9:5066";

/// Whether `bench`'s relay was asked to keep a provisional recording.
fn kept(bench: &Bench) -> bool {
    commands(bench).contains(&MediaCommand::Record)
}

/// The plan the relay was opened with (`None`: not recorded; panics when
/// the call was not anchored).
fn plan_of(bench: &Bench) -> Option<RecordingPlan> {
    match commands(bench).first() {
        Some(MediaCommand::Open { recording, .. }) => recording.clone(),
        other => panic!("expected an Open first, got {other:?}"),
    }
}

/// Alice hangs up an answered call; returns the `call_cdr`.
fn hang_up(cast: &mut Cast, a_call: &mut Call) -> serde_json::Value {
    let Cast { bench, alice, .. } = cast;
    bench.at(bench.now + 10_000);
    let bye = alice.request(a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    bench.cdr()
}

/// Sets `ext`'s forwarding rules.
fn forward(cast: &mut Cast, ext: &str, condition: ForwardCondition, to: &str) {
    let d = cast.bench.engine.directory_mut();
    let mut u = d.user(tenant_id(), ext).unwrap().clone();
    u.forwarding = Forwarding::default().with(condition, to);
    d.upsert_user(u).unwrap();
}

/// The cast plus 103 (Ann) registered.
fn with_ann(anchor: Anchor, free: usize) -> (Cast, Ports, Phone) {
    let (mut cast, ports) = with_media(anchor, free);
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    cast.bench.register(&mut ann);
    (cast, ports, ann)
}

/// 101 dials `number`; 102 rings and never answers; after its 30 s ring
/// timeout the call moves to Ann, who answers; 101 ACKs.
fn forwarded_to_ann(cast: &mut Cast, ann: &mut Phone, number: &str) -> Call {
    let Cast { bench, alice, bob } = cast;
    bench.at(-40);
    let mut a_call = bench.dial(alice, number);
    let invite = bench.take_one(bob.peer);
    let b_call = bob.incoming(&invite);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 180, None));
    bench.at(30_500);
    let to_ann = bench
        .take(ann.peer)
        .into_iter()
        .find(|m| is(m, Method::Invite))
        .expect("the call moved to Ann");
    let c_call = ann.incoming(&to_ann);
    bench.at(31_000);
    bench.send(ann.peer, &ann.respond(&c_call, &to_ann, 200, Some(SDP_B)));
    let ok = bench
        .take(alice.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("the 200 to Alice");
    a_call.confirm(&ok);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    a_call
}

#[test]
fn a_recording_that_cannot_be_made_says_why_in_the_cdr() {
    // media.anchor = "never", the caller records.
    let (mut cast, _) = with_media(Anchor::Never, 4);
    set_recording(&mut cast, "101");
    let (mut a_call, ..) = call(&mut cast, SDP_A);
    let cdr = hang_up(&mut cast, &mut a_call);
    assert_eq!(
        cdr["recording_error"],
        json!({"reason": "media_off", "detail": "media.anchor is \"never\""}),
        "{cdr}"
    );
    assert!(cdr.get("recording").is_none());

    // No relay at all (no media.address): the runtime's reason.
    let mut cast = Cast::new();
    cast.bench
        .engine
        .set_media_off("no media.address could be found");
    set_recording(&mut cast, "102");
    let (mut a_call, ..) = call(&mut cast, SDP_A);
    let cdr = hang_up(&mut cast, &mut a_call);
    assert_eq!(cdr["recording_error"]["reason"], "media_off", "{cdr}");
    assert_eq!(
        cdr["recording_error"]["detail"],
        "no media.address could be found"
    );

    // The port pool is exhausted: the call goes on unrelayed, unrecorded.
    let (mut cast, _) = with_media(Anchor::Auto, 0);
    set_recording(&mut cast, "102");
    let (mut a_call, ..) = call(&mut cast, SDP_A);
    assert!(cast.bench.media.is_empty());
    let cdr = hang_up(&mut cast, &mut a_call);
    assert_eq!(cdr["recording_error"]["reason"], "no_ports", "{cdr}");

    // Nothing to record: no error, whatever the pool.
    let (mut cast, _) = with_media(Anchor::Always, 0);
    let (mut a_call, ..) = call(&mut cast, SDP_A);
    let cdr = hang_up(&mut cast, &mut a_call);
    assert!(cdr.get("recording_error").is_none(), "{cdr}");
    // Anchored and recorded: the engine knows of no error (the runtime
    // adds its own).
    let (mut cast, _) = with_media(Anchor::Auto, 4);
    set_recording(&mut cast, "102");
    let (mut a_call, ..) = call(&mut cast, SDP_A);
    let cdr = hang_up(&mut cast, &mut a_call);
    assert!(cdr.get("recording_error").is_none(), "{cdr}");
}

#[test]
fn a_recording_tenant_records_every_call() {
    let (mut cast, _) = with_media(Anchor::Auto, 4);
    cast.bench
        .engine
        .directory_mut()
        .set_tenant_recording(tenant_id(), true);
    let (_, _, invite, _) = call(&mut cast, SDP_A);
    assert_eq!(audio(&invite).0, RELAY, "anchored");
    let plan = plan_of(&cast.bench).expect("recorded");
    assert!(!plan.provisional);
    assert_eq!((plan.caller.as_str(), plan.callee.as_str()), ("101", "102"));

    // Switched off again: neither anchored nor recorded.
    let (mut cast, _) = with_media(Anchor::Auto, 4);
    let d = cast.bench.engine.directory_mut();
    d.set_tenant_recording(tenant_id(), true);
    d.set_tenant_recording(tenant_id(), false);
    let (_, _, invite, _) = call(&mut cast, SDP_A);
    assert_eq!(audio(&invite).0, "10.0.0.5".parse::<IpAddr>().unwrap());
    assert!(cast.bench.media.is_empty());
}

#[test]
fn a_forward_to_a_recording_user_is_recorded_when_that_user_answers() {
    // 102 forwards unanswered calls to 103, who records: anchored from
    // the start, recorded in case, kept when Ann answers.
    let (mut cast, _, mut ann) = with_ann(Anchor::Auto, 4);
    set_recording(&mut cast, "103");
    forward(&mut cast, "102", ForwardCondition::NoAnswer, "103");
    let mut a_call = forwarded_to_ann(&mut cast, &mut ann, "102");
    let plan = plan_of(&cast.bench).expect("recorded in case");
    assert!(plan.provisional);
    assert_eq!(
        plan.callee, "102",
        "the CDR's callee: the first destination"
    );
    let cmds = commands(&cast.bench);
    let answered = cmds.iter().position(|c| *c == MediaCommand::Answered);
    let record = cmds.iter().position(|c| *c == MediaCommand::Record);
    assert!(
        answered.is_some() && record > answered,
        "Record follows the answer: {cmds:?}"
    );
    let cdr = hang_up(&mut cast, &mut a_call);
    assert!(cdr.get("recording_error").is_none(), "{cdr}");

    // The same plan, but 102 answers: the recording is not kept.
    let (mut cast, _, _) = with_ann(Anchor::Auto, 4);
    set_recording(&mut cast, "103");
    forward(&mut cast, "102", ForwardCondition::NoAnswer, "103");
    let (_, _, invite, _) = call(&mut cast, SDP_A);
    assert_eq!(audio(&invite).0, RELAY, "anchored in case");
    assert!(plan_of(&cast.bench).unwrap().provisional);
    assert!(!kept(&cast.bench));

    // Nobody on the way records: not anchored.
    let (mut cast, _, mut ann) = with_ann(Anchor::Auto, 4);
    forward(&mut cast, "102", ForwardCondition::NoAnswer, "103");
    forwarded_to_ann(&mut cast, &mut ann, "102");
    assert!(cast.bench.media.is_empty());

    // Two hops away (102 → 104 → 103) still counts.
    let (mut cast, _, _) = with_ann(Anchor::Auto, 4);
    set_recording(&mut cast, "103");
    forward(&mut cast, "102", ForwardCondition::Busy, "104");
    forward(&mut cast, "104", ForwardCondition::Unavailable, "103");
    call(&mut cast, SDP_A);
    assert!(plan_of(&cast.bench).unwrap().provisional);

    // A disabled user neither answers nor forwards.
    let (mut cast, _, _) = with_ann(Anchor::Auto, 4);
    set_recording(&mut cast, "103");
    forward(&mut cast, "102", ForwardCondition::Busy, "104");
    forward(&mut cast, "104", ForwardCondition::Unavailable, "103");
    let d = cast.bench.engine.directory_mut();
    let mut u = d.user(tenant_id(), "104").unwrap().clone();
    u.enabled = false;
    d.upsert_user(u).unwrap();
    call(&mut cast, SDP_A);
    assert!(cast.bench.media.is_empty());
}

#[test]
fn a_ring_group_member_who_records_keeps_the_recording_when_it_answers() {
    let (mut cast, _, mut ann) = with_ann(Anchor::Auto, 4);
    set_recording(&mut cast, "103");
    cast.bench
        .engine
        .directory_mut()
        .upsert_group(RingGroup {
            tenant_id: tenant_id(),
            number: Extension::new("600"),
            name: "Sales".into(),
            strategy: RingStrategy::RingAll,
            members: vec![Extension::new("102"), Extension::new("103")],
            member_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(25),
            no_answer: None,
        })
        .unwrap();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    let mut a_call = bench.dial(alice, "600");
    let plan = plan_of(bench).expect("recorded in case");
    assert!(plan.provisional);
    assert_eq!(plan.callee, "600");
    let to_bob = bench.take_one(bob.peer);
    let to_ann = bench.take_one(ann.peer);
    let b_call = bob.incoming(&to_bob);
    let c_call = ann.incoming(&to_ann);
    bench.send(bob.peer, &bob.respond(&b_call, &to_bob, 180, None));
    bench.at(2_000);
    bench.send(ann.peer, &ann.respond(&c_call, &to_ann, 200, Some(SDP_B)));
    let ok = bench
        .take(alice.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("the 200 to Alice");
    a_call.confirm(&ok);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    assert!(kept(bench), "{:?}", commands(bench));
}

#[test]
fn a_forward_to_a_recording_user_that_cannot_be_anchored_says_why_if_answered() {
    // No port: the CDR says why only when the recording user answers.
    let (mut cast, _, mut ann) = with_ann(Anchor::Auto, 0);
    set_recording(&mut cast, "103");
    forward(&mut cast, "102", ForwardCondition::NoAnswer, "103");
    let mut a_call = forwarded_to_ann(&mut cast, &mut ann, "102");
    assert!(cast.bench.media.is_empty());
    let cdr = hang_up(&mut cast, &mut a_call);
    assert_eq!(cdr["recording_error"]["reason"], "no_ports", "{cdr}");

    let (mut cast, _, _) = with_ann(Anchor::Auto, 0);
    set_recording(&mut cast, "103");
    forward(&mut cast, "102", ForwardCondition::NoAnswer, "103");
    let (mut a_call, ..) = call(&mut cast, SDP_A);
    let cdr = hang_up(&mut cast, &mut a_call);
    assert!(cdr.get("recording_error").is_none(), "102 answered: {cdr}");
}

#[test]
fn a_call_started_over_rest_is_not_relayed_and_says_so_when_it_should_be_recorded() {
    for (records, expected) in [(true, Some("not_relayed")), (false, None)] {
        let (mut cast, ports) = with_media(Anchor::Auto, 4);
        if records {
            set_recording(&mut cast, "102");
        }
        let Cast { bench, alice, .. } = &mut cast;
        let reply = bench.control(pbx::Control::Originate(pbx::Originate {
            tenant: tenant_id(),
            caller: "101".into(),
            callee: "102".into(),
            user_data: String::new(),
            caller_id: None,
        }));
        assert!(
            matches!(reply, pbx::ControlReply::Originated(Ok(_))),
            "{reply:?}"
        );
        let invite = bench.take_one(alice.peer);
        let a_in = alice.incoming(&invite);
        bench.at(1_000);
        bench.send(alice.peer, &alice.respond(&a_in, &invite, 486, None));
        let cdr = bench.cdr();
        assert_eq!(cdr["recording_error"]["reason"].as_str(), expected, "{cdr}");
        assert!(bench.media.is_empty() && ports.reserved.lock().unwrap().is_empty());
    }
}
