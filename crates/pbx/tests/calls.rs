//! Call flows through the engine, message by message: what each leg sees,
//! retransmissions, legs that vanish, in-dialog relays and races.

mod common;

use cdr::{CallEventKind, EndReason};
use common::*;
use sip::{HeaderName, Message, Method};

const HOLD: &str = "v=0\r\no=101 1 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=sendonly\r\n";
const HELD: &str = "v=0\r\no=102 7 8 IN IP4 10.0.0.7\r\ns=-\r\nc=IN IP4 10.0.0.7\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\na=recvonly\r\n";

fn session_id(bench: &Bench) -> String {
    bench.call_events[0].0.to_string()
}

fn kinds(bench: &Bench) -> Vec<&'static str> {
    bench
        .call_events
        .iter()
        .map(|(_, _, e)| e.kind.name())
        .collect()
}

fn session_end(bench: &Bench) -> (u16, EndReason) {
    match &bench.call_events.last().unwrap().2.kind {
        CallEventKind::SessionEnded(end) => (end.status_code, end.reason),
        other => panic!("last event is {}", other.name()),
    }
}

fn statuses(msgs: &[Message]) -> Vec<Option<u16>> {
    msgs.iter().map(Message::status).collect()
}

#[test]
fn legs_are_separate_dialogs_tagged_with_the_session_id() {
    let mut cast = Cast::new();
    let Cast { bench, alice, bob } = &mut cast;
    let mut app = Phone::new("102", "Jason", tcp(BOB_APP));
    bench.register(&mut app);
    bench.at(-40);
    let mut a_call = bench.dial(alice, "102");
    let session = session_id(bench);
    let desk = bench.take_one(bob.peer);
    let soft = bench.take_one(app.peer);
    let caller_tag = a_call.local.rsplit("tag=").next().unwrap().to_owned();
    let mut call_ids = vec![a_call.call_id.clone()];
    for (invite, transport) in [(&desk, "UDP"), (&soft, "TCP")] {
        assert!(is(invite, Method::Invite));
        assert_eq!(
            invite.header(HeaderName::XSessionId),
            Some(session.as_str())
        );
        let via = invite.via().unwrap();
        assert!(
            via.branch().unwrap().starts_with("z9hG4bK"),
            "{:?}",
            via.branch()
        );
        assert_eq!(via.transport, transport);
        assert_eq!(via.sent_by(), PBX);
        let from = invite.from().unwrap();
        assert_ne!(
            from.tag(),
            Some(caller_tag.as_str()),
            "the PBX's own From tag"
        );
        assert_eq!(from.display.as_deref(), Some("Tom"));
        assert_eq!(from.uri.user(), Some("101"));
        assert_eq!(invite.to().unwrap().tag(), None);
        assert_eq!(invite.cseq().unwrap().seq, 1);
        assert_eq!(invite.body(), SDP_A.as_bytes(), "the offer passes through");
        assert!(contact_uri(invite).contains(PBX));
        call_ids.push(invite.call_id().unwrap().to_owned());
    }
    call_ids.sort();
    call_ids.dedup();
    assert_eq!(call_ids.len(), 3, "every leg has its own Call-ID");

    let soft_call = app.incoming(&soft);
    bench.at(1000);
    bench.send(app.peer, &app.respond(&soft_call, &soft, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.header(HeaderName::XSessionId), Some(session.as_str()));
    assert_eq!(ok.call_id().unwrap(), a_call.call_id);
    assert_eq!(ok.body(), SDP_B.as_bytes(), "the answer passes through");
    assert!(ok.to().unwrap().tag().is_some());
    assert!(contact_uri(&ok).contains(PBX));
    let ack = alice.ack(&mut a_call, &ok, None);
    bench.send(alice.peer, &ack);
    let relayed = bench.take_one(app.peer);
    assert!(is(&relayed, Method::Ack));
    assert_eq!(relayed.call_id().unwrap(), soft.call_id().unwrap());
    assert_eq!(relayed.cseq().unwrap().seq, 1);
}

#[test]
fn lost_200_is_retransmitted_until_the_ack() {
    let (mut cast, mut a_call, b_call, invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.lose(alice.peer, |m| m.status() == Some(200));
    bench.at(5870);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    assert!(bench.take(alice.peer).is_empty(), "the first 200 was lost");
    bench.at(6369);
    assert!(bench.take(alice.peer).is_empty());
    bench.at(6370);
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200), "retransmitted after T1");
    assert!(
        bench.take(bob.peer).is_empty(),
        "no ACK before the caller's"
    );
    let ack = alice.ack(&mut a_call, &ok, None);
    bench.send(alice.peer, &ack);
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    bench.at(40_000);
    assert!(bench.take(alice.peer).is_empty(), "no 200 after the ACK");
    assert!(bench.take(bob.peer).is_empty());
}

#[test]
fn lost_ack_from_the_caller_is_recovered_by_the_200_retransmission() {
    let (mut cast, mut a_call, b_call, invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(5870);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    let _lost = alice.ack(&mut a_call, &ok, None);
    // T1 doubling: 6370, 7370, 9370...
    for at in [6370, 7370, 9370] {
        bench.at(at);
        assert_eq!(statuses(&bench.take(alice.peer)), [Some(200)], "at {at}");
    }
    let ack = alice.ack(&mut a_call, &ok, None);
    bench.send(alice.peer, &ack);
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    // A retransmitted ACK changes nothing.
    bench.send(alice.peer, &ack);
    assert!(bench.take(bob.peer).is_empty());
}

#[test]
fn callee_retransmitting_its_200_gets_the_ack_again() {
    let (mut cast, _, b_call) = answered();
    let Cast { bench, bob, .. } = &mut cast;
    // Bob did not get the ACK: his 200 comes again (same text as before).
    let invite = bench
        .sent_to(bob.peer)
        .into_iter()
        .find(|m| is(m, Method::Invite))
        .unwrap()
        .clone();
    bench.at(6370);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ack = bench.take_one(bob.peer);
    assert!(is(&ack, Method::Ack));
    assert_eq!(ack.cseq().unwrap().seq, 1);
}

#[test]
fn caller_invite_retransmission_is_absorbed() {
    let mut cast = Cast::new();
    let Cast { bench, alice, bob } = &mut cast;
    let mut call = alice.call("102", Some(SDP_A));
    let first = alice.invite(&mut call, None);
    bench.send(alice.peer, &first);
    let challenge = bench.take_one(alice.peer);
    bench.send(alice.peer, &first);
    assert_eq!(statuses(&bench.take(alice.peer)), [Some(407)], "407 again");
    bench.send(alice.peer, &alice.ack_failure(&call, &challenge));
    let invite = alice.invite(&mut call, Some(&challenge));
    bench.send(alice.peer, &invite);
    let to_bob = bench.take_one(bob.peer);
    assert!(is(&to_bob, Method::Invite));
    // Bob's 100 Trying stops the PBX's own retransmissions (Timer A).
    let b_call = bob.incoming(&to_bob);
    bench.send(bob.peer, &bob.respond(&b_call, &to_bob, 100, None));
    bench.at(-59_500);
    bench.send(alice.peer, &invite);
    let again = bench.take(alice.peer);
    assert!(
        again.is_empty(),
        "only 100 Trying again: {:?}",
        again.iter().map(Message::summary).collect::<Vec<_>>()
    );
    assert!(bench.take(bob.peer).is_empty(), "no second target");
    assert_eq!(bench.engine.sessions(), 1);
    assert_eq!(kinds(bench), ["session_started", "target_added"]);
}

#[test]
fn no_ack_for_the_200_ends_the_call_after_64_t1() {
    let (mut cast, _, b_call, invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(5870);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    bench.at(5870 + 31_999);
    let retransmitted = bench.take(alice.peer);
    assert!(retransmitted.len() >= 8, "{}", retransmitted.len());
    assert!(retransmitted.iter().all(|m| m.status() == Some(200)));
    assert!(bench.take(bob.peer).is_empty());
    bench.at(5870 + 32_000);
    let bye = bench.take_one(alice.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    let to_bob = bench.take(bob.peer);
    assert!(is(&to_bob[0], Method::Ack), "Bob's 200 is ACKed first");
    assert!(is(&to_bob[1], Method::Bye));
    assert_eq!(session_end(bench), (200, EndReason::NotApplicable));
    let cdr = bench.cdr();
    assert_eq!(cdr["call_status"], "answered");
    assert_eq!(cdr["ended_reason"], "None");
    assert_eq!(cdr["call_targets"][0]["end_reason"], "None");
    assert_eq!(cdr["ended_time"], "1795874624");
    // The BYEs are never answered: the session still goes away.
    bench.at(5870 + 80_000);
    assert_eq!(bench.engine.sessions(), 0);
}

#[test]
fn transport_error_on_the_relayed_bye_still_ends_the_call() {
    let (mut cast, mut a_call, _) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    assert!(is(&bench.take_one(bob.peer), Method::Bye));
    bench.transport_error(bob.peer);
    assert_eq!(session_end(bench), (200, EndReason::CallerDisconnect));
    bench.cdr();
    bench.at(50_000);
    assert_eq!(bench.engine.sessions(), 0);
}

#[test]
fn bye_never_answered_still_ends_the_call() {
    let (mut cast, _, mut b_call) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let bye = bob.request(&mut b_call, "BYE", None);
    bench.send(bob.peer, &bye);
    assert_eq!(bench.take_one(bob.peer).status(), Some(200));
    assert_eq!(session_end(bench), (200, EndReason::CalleeDisconnect));
    // The session is dropped at once (nothing of it needs more than the
    // transaction layer); the BYE to Alice is still retransmitted.
    assert_eq!(bench.engine.sessions(), 0, "dropped when the call ends");
    bench.at(41_999);
    let byes = bench.take(alice.peer);
    assert!(
        byes.len() > 1 && byes.iter().all(|m| is(m, Method::Bye)),
        "retransmitted"
    );
    bench.at(42_000);
    assert_eq!(
        bench.engine.transactions(),
        0,
        "the BYE timed out (Timer F)"
    );
    assert_eq!(bench.cdr()["ended_time"], "1795874597");
}

/// An ended call keeps no session while its transactions finish: a
/// retransmitted BYE is answered again, the PBX's own BYE is retransmitted
/// and its late 200 absorbed, all by the transaction layer (issue 18:
/// memory is kept to the calls in progress, not 32 s more per call).
#[test]
fn an_ended_call_is_dropped_at_once_and_its_transactions_still_answer() {
    let (mut cast, mut a_call, b_call) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let to_bob = bench.take_one(bob.peer);
    assert!(is(&to_bob, Method::Bye));
    assert_eq!(session_end(bench), (200, EndReason::CallerDisconnect));
    assert_eq!(bench.engine.sessions(), 0, "dropped when the call ends");
    // Alice did not hear the 200: her BYE again, the same 200 again.
    bench.at(10_500);
    bench.send(alice.peer, &bye);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    // The PBX's BYE goes again until Bob answers; his 200 changes nothing.
    bench.at(10_600);
    assert!(is(&bench.take_one(bob.peer), Method::Bye), "retransmitted");
    bench.send(bob.peer, &bob.respond(&b_call, &to_bob, 200, None));
    bench.at(60_000);
    assert!(bench.take(bob.peer).is_empty());
    assert!(bench.take(alice.peer).is_empty());
    assert_eq!(bench.engine.transactions(), 0, "every transaction ended");
    assert_eq!(bench.cdr()["ended_reason"], "caller_disconnect");
}

/// What the engine keeps of a dropped call is the ACK its answered target
/// got (its bytes, To tag and CSeq): a 200 repeated because that ACK was
/// lost gets the very same ACK again, and a 200 it does not acknowledge
/// gets nothing.
#[test]
fn a_200_repeated_after_the_call_was_dropped_gets_the_same_ack() {
    let (mut cast, mut a_call, b_call) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    let sent = |method: Method| {
        bench
            .sent_to(bob.peer)
            .into_iter()
            .find(|m| is(m, method.clone()))
            .unwrap()
            .clone()
    };
    let (invite, ack) = (sent(Method::Invite), sent(Method::Ack));
    bench.at(10_000);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    assert!(is(&bench.take_one(bob.peer), Method::Bye));
    assert_eq!(bench.engine.sessions(), 0, "dropped when the call ends");
    bench.at(10_100);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let again = bench.take_one(bob.peer);
    assert!(is(&again, Method::Ack));
    assert_eq!(again.as_bytes(), ack.as_bytes(), "the same ACK");
    // A 200 from another fork of the INVITE (another To tag) is not the
    // one that ACK acknowledges.
    let mut forked = b_call.clone();
    forked.local = forked.local.replace(";tag=", ";tag=fork-");
    bench.send(bob.peer, &bob.respond(&forked, &invite, 200, Some(SDP_B)));
    assert!(bench.take(bob.peer).is_empty(), "nothing for another tag");
}

#[test]
fn hold_and_unhold_reinvites_are_relayed_both_ways() {
    let (mut cast, mut a_call, mut b_call) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    let session = session_id(bench);
    // Alice holds.
    bench.at(10_000);
    let reinvite = alice.request(&mut a_call, "INVITE", Some(("application/sdp", HOLD)));
    bench.send(alice.peer, &reinvite);
    let to_bob = bench.take_one(bob.peer);
    assert!(is(&to_bob, Method::Invite));
    assert_eq!(to_bob.body(), HOLD.as_bytes());
    assert_eq!(
        to_bob.header(HeaderName::XSessionId),
        Some(session.as_str())
    );
    assert_eq!(to_bob.call_id().unwrap(), b_call.call_id);
    assert_eq!(
        to_bob.cseq().unwrap().seq,
        2,
        "the PBX's own CSeq on Bob's leg"
    );
    bench.send(bob.peer, &bob.respond(&b_call, &to_bob, 200, Some(HELD)));
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.body(), HELD.as_bytes());
    assert_eq!(ok.header(HeaderName::XSessionId), Some(session.as_str()));
    let ack = alice.ack(&mut a_call, &ok, None);
    bench.send(alice.peer, &ack);
    let ack = bench.take_one(bob.peer);
    assert!(is(&ack, Method::Ack));
    assert_eq!(ack.cseq().unwrap().seq, 2);
    // Bob resumes (a re-INVITE from the callee's side).
    bench.at(20_000);
    let reinvite = bob.request(&mut b_call, "INVITE", Some(("application/sdp", SDP_B)));
    bench.send(bob.peer, &reinvite);
    let to_alice = bench.take_one(alice.peer);
    assert!(is(&to_alice, Method::Invite));
    assert_eq!(to_alice.call_id().unwrap(), a_call.call_id);
    assert_eq!(to_alice.body(), SDP_B.as_bytes());
    bench.send(
        alice.peer,
        &alice.respond(&a_call, &to_alice, 200, Some(SDP_A)),
    );
    let ok = bench.take_one(bob.peer);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.body(), SDP_A.as_bytes());
    let ack = bob.ack(&mut b_call.clone(), &ok, None);
    bench.send(bob.peer, &ack);
    assert!(is(&bench.take_one(alice.peer), Method::Ack));
    // Still one call, still up.
    assert_eq!(
        kinds(bench),
        [
            "session_started",
            "target_added",
            "target_ringing",
            "target_answered"
        ]
    );
}

#[test]
fn update_and_info_are_relayed() {
    let (mut cast, mut a_call, mut b_call) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let info = alice.request(
        &mut a_call,
        "INFO",
        Some(("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")),
    );
    bench.send(alice.peer, &info);
    let to_bob = bench.take_one(bob.peer);
    assert!(is(&to_bob, Method::Info));
    assert_eq!(to_bob.content_type(), Some("application/dtmf-relay"));
    assert_eq!(to_bob.body(), b"Signal=5\r\nDuration=160\r\n");
    bench.send(bob.peer, &bob.respond(&b_call, &to_bob, 200, None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));

    let update = bob.request(&mut b_call, "UPDATE", Some(("application/sdp", HELD)));
    bench.send(bob.peer, &update);
    let to_alice = bench.take_one(alice.peer);
    assert!(is(&to_alice, Method::Update));
    assert_eq!(to_alice.body(), HELD.as_bytes());
    bench.send(
        alice.peer,
        &alice.respond(&a_call, &to_alice, 200, Some(SDP_A)),
    );
    let ok = bench.take_one(bob.peer);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.body(), SDP_A.as_bytes());
    assert!(contact_uri(&ok).contains(PBX));

    // A failure is relayed with its code.
    let info = alice.request(&mut a_call, "INFO", Some(("application/x-unknown", "?")));
    bench.send(alice.peer, &info);
    let to_bob = bench.take_one(bob.peer);
    bench.send(bob.peer, &bob.respond(&b_call, &to_bob, 415, None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(415));

    // OPTIONS in the dialog is answered by the PBX itself.
    let options = alice.request(&mut a_call, "OPTIONS", None);
    bench.send(alice.peer, &options);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    assert!(bench.take(bob.peer).is_empty());
}

#[test]
fn reinvite_glare_gets_491() {
    let (mut cast, mut a_call, mut b_call) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let reinvite = alice.request(&mut a_call, "INVITE", Some(("application/sdp", HOLD)));
    bench.send(alice.peer, &reinvite);
    assert!(is(&bench.take_one(bob.peer), Method::Invite));
    let crossing = bob.request(&mut b_call, "INVITE", Some(("application/sdp", SDP_B)));
    bench.send(bob.peer, &crossing);
    assert_eq!(bench.take_one(bob.peer).status(), Some(491));
}

#[test]
fn late_offer_is_completed_in_the_relayed_ack() {
    let mut cast = Cast::new();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(0);
    let mut call = alice.call("102", None);
    let text = alice.invite(&mut call, None);
    bench.send(alice.peer, &text);
    let challenge = bench.take_one(alice.peer);
    bench.send(alice.peer, &alice.ack_failure(&call, &challenge));
    let text = alice.invite(&mut call, Some(&challenge));
    bench.send(alice.peer, &text);
    let invite = bench.take_one(bob.peer);
    assert!(invite.body().is_empty(), "no offer in the INVITE");
    let b_call = bob.incoming(&invite);
    bench.at(400);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.body(), SDP_B.as_bytes(), "the offer in the 200");
    let ack = alice.ack(&mut call, &ok, Some(SDP_A));
    bench.send(alice.peer, &ack);
    let relayed = bench.take_one(bob.peer);
    assert!(is(&relayed, Method::Ack));
    assert_eq!(relayed.body(), SDP_A.as_bytes(), "the answer in the ACK");
    assert_eq!(relayed.content_type(), Some("application/sdp"));
}

#[test]
fn early_media_183_is_relayed_with_its_sdp() {
    let mut cast = Cast::new();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    let b_call = bob.incoming(&invite);
    bench.at(300);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 183, Some(SDP_B)));
    let progress = bench.take_one(alice.peer);
    assert_eq!(progress.status(), Some(183));
    assert_eq!(progress.body(), SDP_B.as_bytes());
    assert!(progress.to().unwrap().tag().is_some());
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 180, None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(180));
    assert_eq!(
        kinds(bench),
        ["session_started", "target_added", "target_ringing"],
        "ringing is reported once"
    );
}

#[test]
fn cancel_reaches_a_silent_target_after_its_first_provisional() {
    let mut cast = Cast::new();
    let Cast { bench, alice, bob } = &mut cast;
    let mut app = Phone::new("102", "Jason", tcp(BOB_APP));
    bench.register(&mut app);
    bench.at(-40);
    let a_call = bench.dial(alice, "102");
    let desk_invite = bench.take_one(bob.peer);
    let app_invite = bench.take_one(app.peer);
    let desk = bob.incoming(&desk_invite);
    let app_call = app.incoming(&app_invite);
    bench.at(210);
    bench.send(bob.peer, &bob.respond(&desk, &desk_invite, 180, None));
    bench.at(1000);
    bench.send(alice.peer, &alice.cancel(&a_call));
    assert_eq!(
        statuses(&bench.take(alice.peer)),
        [Some(180), Some(200), Some(487)]
    );
    assert!(is(&bench.take_one(bob.peer), Method::Cancel));
    assert!(
        bench.take(app.peer).is_empty(),
        "no CANCEL before a provisional"
    );
    bench.at(1500);
    bench.send(app.peer, &app.respond(&app_call, &app_invite, 100, None));
    let cancel = bench.take_one(app.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    bench.send(app.peer, &app.respond(&app_call, &cancel, 200, None));
    bench.send(app.peer, &app.respond(&app_call, &app_invite, 487, None));
    let cdr = bench.cdr();
    assert_eq!(cdr["status_code"], "487");
    for t in 0..2 {
        assert_eq!(cdr["call_targets"][t]["status_code"], 487);
        assert_eq!(cdr["call_targets"][t]["end_reason"], "cancelled");
    }
}

#[test]
fn a_target_answering_after_the_cancel_is_acked_and_hung_up() {
    let (mut cast, a_call, b_call, invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(12_400);
    bench.send(alice.peer, &alice.cancel(&a_call));
    assert!(is(&bench.take_one(bob.peer), Method::Cancel));
    // Bob's 200 crossed the CANCEL.
    bench.at(12_410);
    let ok = bob.respond(&b_call, &invite, 200, Some(SDP_B));
    bench.send(bob.peer, &ok);
    let to_bob = bench.take(bob.peer);
    assert!(is(&to_bob[0], Method::Ack), "{}", to_bob[0].summary());
    assert!(is(&to_bob[1], Method::Bye), "{}", to_bob[1].summary());
    assert_eq!(
        statuses(&bench.take(alice.peer)),
        [Some(200), Some(487)],
        "CANCEL's 200, INVITE's 487"
    );
    // Bob's 200 again: the same ACK, no second BYE.
    bench.send(bob.peer, &ok);
    let again = bench.take_one(bob.peer);
    assert!(is(&again, Method::Ack));
    assert_eq!(bench.cdr()["call_targets"][0]["end_reason"], "cancelled");
}

#[test]
fn one_device_busy_the_other_answers() {
    let mut cast = Cast::new();
    let Cast { bench, alice, bob } = &mut cast;
    let mut app = Phone::new("102", "Jason", tcp(BOB_APP));
    bench.register(&mut app);
    bench.at(-40);
    bench.dial(alice, "102");
    let desk_invite = bench.take_one(bob.peer);
    let app_invite = bench.take_one(app.peer);
    let desk = bob.incoming(&desk_invite);
    let app_call = app.incoming(&app_invite);
    bench.at(1000);
    bench.send(bob.peer, &bob.respond(&desk, &desk_invite, 486, None));
    assert!(
        bench.take(alice.peer).is_empty(),
        "the 486 is not relayed yet"
    );
    bench.at(3000);
    bench.send(
        app.peer,
        &app.respond(&app_call, &app_invite, 200, Some(SDP_B)),
    );
    assert_eq!(statuses(&bench.take(alice.peer)), [Some(200)]);
    assert_eq!(
        kinds(bench),
        [
            "session_started",
            "target_added",
            "target_added",
            "target_failed",
            "target_answered"
        ]
    );
}

#[test]
fn every_device_failing_relays_the_best_failure() {
    let mut cast = Cast::new();
    let Cast { bench, alice, bob } = &mut cast;
    let mut app = Phone::new("102", "Jason", tcp(BOB_APP));
    bench.register(&mut app);
    bench.at(-40);
    bench.dial(alice, "102");
    let desk_invite = bench.take_one(bob.peer);
    let app_invite = bench.take_one(app.peer);
    let desk = bob.incoming(&desk_invite);
    let app_call = app.incoming(&app_invite);
    bench.at(1000);
    bench.send(bob.peer, &bob.respond(&desk, &desk_invite, 486, None));
    bench.send(app.peer, &app.respond(&app_call, &app_invite, 603, None));
    assert_eq!(statuses(&bench.take(alice.peer)), [Some(603)], "6xx wins");
    assert_eq!(bench.cdr()["status_code"], "603");
}

#[test]
fn a_relayed_request_nobody_answers_ends_the_call() {
    let (mut cast, mut a_call, _) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let info = alice.request(
        &mut a_call,
        "INFO",
        Some(("application/dtmf-relay", "Signal=1\r\n")),
    );
    bench.send(alice.peer, &info);
    assert!(is(&bench.take_one(bob.peer), Method::Info));
    bench.at(42_000);
    let to_alice = bench.take(alice.peer);
    assert_eq!(to_alice[0].status(), Some(408), "{}", to_alice[0].summary());
    assert!(is(&to_alice[1], Method::Bye));
    assert_eq!(session_end(bench), (200, EndReason::NotApplicable));
}

#[test]
fn ring_timeout_is_the_callees_own() {
    let mut cast = Cast::new();
    let Cast { bench, alice, .. } = &mut cast;
    let mut ann = Phone::new("103", "Ann", udp("10.0.0.8:5060"));
    bench.register(&mut ann);
    bench.at(-40);
    bench.dial(alice, "103");
    let invite = bench.take_one(ann.peer);
    let call = ann.incoming(&invite);
    bench.send(ann.peer, &ann.respond(&call, &invite, 180, None));
    bench.at(19_999);
    assert_eq!(statuses(&bench.take(alice.peer)), [Some(180)]);
    bench.at(20_000);
    assert_eq!(statuses(&bench.take(alice.peer)), [Some(408)]);
    assert!(is(&bench.take_one(ann.peer), Method::Cancel));
}

#[test]
fn bye_on_the_early_dialog_cancels_the_call() {
    let (mut cast, mut a_call, _, _) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    // The 180 gave Alice the early dialog's To tag and the PBX's Contact.
    let ringing = bench
        .sent_to(alice.peer)
        .into_iter()
        .find(|m| m.status() == Some(180))
        .unwrap()
        .clone();
    a_call.confirm(&ringing);
    bench.at(3000);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    assert_eq!(statuses(&bench.take(alice.peer)), [Some(200), Some(487)]);
    assert!(is(&bench.take_one(bob.peer), Method::Cancel));
    assert_eq!(session_end(bench), (487, EndReason::Cancelled));
}

#[test]
fn an_ack_reusing_the_reinvites_branch_is_still_relayed() {
    let (mut cast, mut a_call, b_call) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let reinvite = alice.request(&mut a_call, "INVITE", Some(("application/sdp", HOLD)));
    let branch_via = reinvite
        .lines()
        .find(|l| l.starts_with("Via: "))
        .unwrap()
        .to_owned();
    bench.send(alice.peer, &reinvite);
    let to_bob = bench.take_one(bob.peer);
    bench.send(bob.peer, &bob.respond(&b_call, &to_bob, 200, Some(HELD)));
    let ok = bench.take_one(alice.peer);
    let ack = alice.ack(&mut a_call, &ok, None);
    let ack: String = ack
        .lines()
        .map(|l| {
            if l.starts_with("Via: ") {
                branch_via.as_str()
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n");
    bench.send(alice.peer, &ack);
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    bench.at(20_000);
    assert!(
        bench.take(alice.peer).is_empty(),
        "the 200 is not retransmitted"
    );
}

/// The CDR records the users' ids, not only their numbers (issue 17
/// finding 11): the caller's and the first destination's on the session,
/// each extension leg's on its target; an unknown number has none.
#[test]
fn session_and_targets_carry_the_users_ids() {
    let mut cast = Cast::new();
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(-40);
    let _call = bench.dial(alice, "102");
    let mut started = None;
    let mut targets = Vec::new();
    for (_, _, e) in &bench.call_events {
        match &e.kind {
            CallEventKind::SessionStarted(s) => started = Some((s.caller_user, s.callee_user)),
            CallEventKind::TargetAdded(t) => targets.push((t.callee.clone(), t.user)),
            _ => {}
        }
    }
    assert_eq!(started, Some((Some(user_id("101")), Some(user_id("102")))));
    assert!(!targets.is_empty());
    for (callee, user) in targets {
        assert_eq!(callee, "102");
        assert_eq!(user, Some(user_id("102")));
    }

    let mut cast = Cast::new();
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(-40);
    let _call = bench.dial(alice, "555");
    let CallEventKind::SessionStarted(s) = &bench.call_events[0].2.kind else {
        panic!("first event is not session_started");
    };
    assert_eq!((s.caller_user, s.callee_user), (Some(user_id("101")), None));
}

/// A caller asking for `sips:` (RFC 3261 §26.2.2) rings only the callee's
/// devices bound over TLS; with none, the call is unreachable (480).
#[test]
fn a_sips_call_rings_only_devices_bound_over_tls() {
    let mut cast = Cast::new();
    let Cast { bench, alice, bob } = &mut cast;
    let tls_peer =
        sip::transport::Peer::new(sip::transport::Transport::Tls, BOB_APP.parse().unwrap());
    let mut app = Phone::new("102", "Jason", tls_peer);
    bench.register(&mut app);
    let sips_call = |bench: &mut Bench, alice: &mut Phone| {
        let mut call = alice.call("102", Some(SDP_A));
        call.ruri = call.ruri.replacen("sip:", "sips:", 1);
        let text = alice.invite(&mut call, None);
        bench.send(alice.peer, &text);
        let challenge = bench.take_one(alice.peer);
        assert_eq!(challenge.status(), Some(407), "{}", challenge.summary());
        bench.send(alice.peer, &alice.ack_failure(&call, &challenge));
        let text = alice.invite(&mut call, Some(&challenge));
        bench.send(alice.peer, &text);
        call
    };
    bench.at(-40);
    sips_call(bench, alice);
    assert!(
        bench.take(bob.peer).is_empty(),
        "the UDP desk phone is not rung"
    );
    let invite = bench.take_one(app.peer);
    assert!(is(&invite, Method::Invite));

    // Without a TLS device: unreachable.
    let mut cast = Cast::new();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    let call = sips_call(bench, alice);
    assert!(bench.take(bob.peer).is_empty());
    let refused = bench.take_one(alice.peer);
    assert_eq!(refused.status(), Some(480), "{}", refused.summary());
    bench.send(alice.peer, &alice.ack_failure(&call, &refused));
}
