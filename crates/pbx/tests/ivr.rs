//! IVRs (issue 14, SPEC §3 "IVR") on the virtual clock, with the exact
//! `call_cdr` of each: the IVR is a target answered at once (it rang at
//! its answer), it ends `referred` when the caller's choice hands the call
//! on, and the next destination's devices are new targets.
//!
//! Cast: 101 (Tom, 10.0.0.5) calls; 102 (Jason, desk phone at 10.0.0.7)
//! answers. IVR 500 "Main menu": 1 → 102, 2 → 103 (never registered),
//! 9 → hang up; retries 1; digit timeout 5 s. The relay is at
//! 203.0.113.10, ports 30004 (A) and 30006 (B).

#![recursion_limit = "512"]

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::golden::{CALL_ID, CDR, DESK_URI, SESSION, call, cdr_of, golden, target};
use common::*;
use pbx::apps::{G711, Playback};
use pbx::media::{Anchor, MediaCommand, MediaPolicy, RelayPorts, Side};
use pbx::{BuiltinPrompt, Extension, Input, Ivr, IvrDestination, PromptRef, RoutingNotice};
use serde_json::json;
use sip::sdp::SessionDescription;
use sip::{Message, Method};

const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
const IVR_URI: &str = "sip:500@acme.example";

struct Ports(u16);

impl RelayPorts for Ports {
    fn reserve(&mut self, _: cdr::SessionId) -> Option<[u16; 2]> {
        self.0 += 4;
        Some([30_000 + self.0, 30_002 + self.0])
    }
}

fn menu(number: &str, keys: &[(char, IvrDestination)]) -> Ivr {
    Ivr {
        tenant_id: tenant_id(),
        number: Extension::new(number),
        name: "Main menu".into(),
        greeting: BuiltinPrompt::Menu.prompt(),
        invalid: BuiltinPrompt::Invalid.prompt(),
        menu: keys.iter().cloned().collect::<BTreeMap<_, _>>(),
        dial_by_extension: false,
        digit_timeout: Duration::from_secs(5),
        retries: 1,
        timeout_destination: None,
    }
}

fn main_menu() -> Ivr {
    menu(
        "500",
        &[
            ('1', IvrDestination::Number("102".into())),
            ('2', IvrDestination::Number("103".into())),
            ('9', IvrDestination::HangUp),
        ],
    )
}

/// The cast with a relay and IVR `ivr`.
fn cast_with(ivrs: &[Ivr], media: bool) -> Cast {
    let mut cast = Cast::new();
    if media {
        cast.bench.engine.set_media(
            MediaPolicy {
                anchor: Anchor::Never,
                address: RELAY,
            },
            Box::new(Ports(0)),
        );
    }
    for ivr in ivrs {
        cast.bench
            .engine
            .directory_mut()
            .upsert_ivr(ivr.clone())
            .unwrap();
    }
    cast
}

fn session(bench: &Bench) -> cdr::SessionId {
    bench.media[0].0
}

fn digit(bench: &mut Bench, at: i64, d: char) {
    bench.at(at);
    let session = session(bench);
    bench.input(Input::Digit { session, digit: d });
}

fn plays(prompts: &[BuiltinPrompt]) -> MediaCommand {
    MediaCommand::Play(Playback {
        prompts: prompts.iter().map(|p| PromptRef::Builtin(*p)).collect(),
        repeat: false,
        payload_type: 0,
        law: G711::Pcmu,
        events: None,
    })
}

fn ringback() -> MediaCommand {
    MediaCommand::Play(Playback {
        prompts: vec![PromptRef::Builtin(BuiltinPrompt::Ringback)],
        repeat: true,
        payload_type: 0,
        law: G711::Pcmu,
        events: None,
    })
}

/// (address, port, formats) of a message's audio.
fn audio(m: &Message) -> (IpAddr, u16, Vec<String>) {
    let sdp = SessionDescription::parse(m.body()).expect("an SDP body");
    let a = sdp.media.iter().find(|m| m.media == "audio").unwrap();
    let ip = sdp.media_connection(a).and_then(|c| c.ip()).unwrap();
    (ip, a.port, a.formats.clone())
}

/// 101 dials `number` at 0; the IVR answers at once; 101 ACKs at +30.
fn dial_ivr(cast: &mut Cast, number: &str) -> Call {
    let Cast { bench, alice, .. } = cast;
    bench.at(-40);
    let mut a_call = bench.dial(alice, number);
    let ok = bench
        .take(alice.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("the IVR answered");
    assert_eq!(audio(&ok), (RELAY, 30_004, vec!["0".into()]));
    assert!(ok.header(sip::HeaderName::XSessionId).is_some());
    a_call.confirm(&ok);
    bench.at(30);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    a_call
}

fn ivr_target(
    ring_answered: &str,
    ended: &str,
    talk: &str,
    end_reason: &str,
    id: &str,
) -> serde_json::Value {
    target(
        (id, CDR, "normal_call"),
        ("500", IVR_URI),
        (ring_answered, ring_answered, ring_answered, ended),
        ("0", talk),
        ("answered", 0, end_reason),
    )
}

#[test]
fn press_1_hands_the_call_to_102_and_the_ivr_ends_referred() {
    let mut cast = cast_with(&[main_menu()], true);
    let mut a_call = dial_ivr(&mut cast, "500");
    let Cast { bench, alice, bob } = &mut cast;
    // The greeting is over at 1.8 s; the caller presses 1 at 2.5 s.
    digit(bench, 2_500, '1');
    let invite = bench.take_one(bob.peer);
    assert!(is(&invite, Method::Invite));
    // 102 is offered the caller's codec on the relay's side B.
    assert_eq!(audio(&invite), (RELAY, 30_006, vec!["0".into()]));
    let b_call = bob.incoming(&invite);
    bench.at(2_700);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 180, None));
    bench.at(4_100);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    // ACKed at once: the caller answered long ago, and hears nothing new.
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    assert!(bench.take(alice.peer).is_empty());
    bench.at(9_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert!(is(&bench.take_one(bob.peer), Method::Bye));
    let commands: Vec<MediaCommand> = bench.media.iter().map(|(_, c)| c.clone()).collect();
    assert!(matches!(
        commands[0],
        MediaCommand::Open {
            recording: None,
            ..
        }
    ));
    assert_eq!(
        commands[2..],
        [
            MediaCommand::Answered,
            plays(&[BuiltinPrompt::Menu]),
            MediaCommand::Quiet,
            ringback(),
            MediaCommand::Party(Side::B, party_b()),
            MediaCommand::Bridge,
            MediaCommand::Stop,
        ]
    );
    let ids = target_ids(bench);
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("500", "Main menu"),
            ("1795874587", "1795874587", "1795874587", "1795874596"),
            ("0", 9),
            ("answered", "0", "caller_disconnect"),
            vec![
                ivr_target("1795874587", "1795874589", "2", "referred", &ids[0]),
                target(
                    (&ids[1], CDR, "normal_call"),
                    ("102", DESK_URI),
                    ("1795874589", "1795874589", "1795874591", "1795874596"),
                    ("2", "5"),
                    ("answered", 0, "caller_disconnect"),
                ),
            ],
            10,
        ),
    );
}

fn party_b() -> pbx::media::Party {
    pbx::media::Party {
        rtp: Some("10.0.0.7:5004".parse().unwrap()),
        rtcp: Some("10.0.0.7:5005".parse().unwrap()),
        behind_nat: false,
        codecs: vec![(0, "PCMU".into())],
    }
}

/// The ids of the targets added, in order (Snowflakes of node 1 at the
/// virtual time each was added).
fn target_ids(bench: &Bench) -> Vec<String> {
    bench
        .call_events
        .iter()
        .filter_map(|(_, _, e)| match &e.kind {
            cdr::CallEventKind::TargetAdded(t) => Some(t.target.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_invalid_digit_replays_the_menu_then_the_timeout_says_goodbye() {
    let mut ivr = main_menu();
    ivr.timeout_destination = Some(IvrDestination::HangUp);
    let mut cast = cast_with(&[ivr], true);
    let _a_call = dial_ivr(&mut cast, "500");
    let Cast { bench, alice, .. } = &mut cast;
    // 7 is no choice: "invalid", then the menu again.
    digit(bench, 1_000, '7');
    assert_eq!(
        bench.media.last().unwrap().1,
        plays(&[BuiltinPrompt::Invalid, BuiltinPrompt::Menu])
    );
    // Invalid (0.8 s) + menu (1.8 s) + 5 s from 1 s: the timeout at 8.6 s
    // goes to the timeout destination: goodbye (0.8 s), then BYE.
    bench.at(9_000);
    assert_eq!(
        bench.media.last().unwrap().1,
        plays(&[BuiltinPrompt::Goodbye])
    );
    assert!(bench.take(alice.peer).is_empty());
    bench.at(9_400);
    let bye = bench.take_one(alice.peer);
    assert!(is(&bye, Method::Bye));
    assert_eq!(bench.media.last().unwrap().1, MediaCommand::Stop);
    let ids = target_ids(bench);
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("500", "Main menu"),
            ("1795874587", "1795874587", "1795874587", "1795874596"),
            ("0", 9),
            ("answered", "0", "callee_disconnect"),
            vec![ivr_target(
                "1795874587",
                "1795874596",
                "9",
                "callee_disconnect",
                &ids[0],
            )],
            5,
        ),
    );
}

#[test]
fn no_choice_without_timeout_destination_retries_then_hangs_up() {
    let mut cast = cast_with(&[main_menu()], true);
    let _a_call = dial_ivr(&mut cast, "500");
    let Cast { bench, alice, .. } = &mut cast;
    // 6.8 s: the menu again (retry 1 of 1); 13.6 s: goodbye; 14.4 s: BYE.
    bench.at(7_000);
    assert_eq!(
        bench
            .media
            .iter()
            .filter(|(_, c)| *c == plays(&[BuiltinPrompt::Menu]))
            .count(),
        2
    );
    bench.at(14_000);
    assert_eq!(
        bench.media.last().unwrap().1,
        plays(&[BuiltinPrompt::Goodbye])
    );
    bench.at(14_400);
    assert!(is(&bench.take_one(alice.peer), Method::Bye));
    assert_eq!(bench.cdr()["ended_reason"], "callee_disconnect");
}

#[test]
fn the_caller_hanging_up_in_the_menu_ends_the_ivr_caller_disconnect() {
    let mut cast = cast_with(&[main_menu()], true);
    let mut a_call = dial_ivr(&mut cast, "500");
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(3_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let ids = target_ids(bench);
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("500", "Main menu"),
            ("1795874587", "1795874587", "1795874587", "1795874590"),
            ("0", 3),
            ("answered", "0", "caller_disconnect"),
            vec![ivr_target(
                "1795874587",
                "1795874590",
                "3",
                "caller_disconnect",
                &ids[0],
            )],
            5,
        ),
    );
}

#[test]
fn info_digits_dial_by_extension_and_an_unreachable_choice_hangs_up() {
    let mut ivr = main_menu();
    ivr.dial_by_extension = true;
    ivr.menu.remove(&'1');
    let mut cast = cast_with(&[ivr], true);
    let mut a_call = dial_ivr(&mut cast, "500");
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(2_000);
    for d in ["1", "0", "2"] {
        let body = format!("Signal={d}\r\nDuration=160\r\n");
        let info = alice.request(&mut a_call, "INFO", Some(("application/dtmf-relay", &body)));
        bench.send(alice.peer, &info);
        assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    }
    // An INFO with another body is refused and changes nothing.
    let info = alice.request(&mut a_call, "INFO", Some(("text/plain", "1")));
    bench.send(alice.peer, &info);
    assert_eq!(bench.take_one(alice.peer).status(), Some(415));
    // The extension is complete at the digit timeout (5 s after the last).
    bench.at(6_900);
    assert!(bench.take(bob.peer).is_empty());
    bench.at(7_000);
    let invite = bench.take_one(bob.peer);
    assert!(is(&invite, Method::Invite));
    // 102 is busy: the caller cannot be refused any more; the PBX hangs up.
    let b_call = bob.incoming(&invite);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 486, None));
    let from_pbx = bench.take(alice.peer);
    assert!(
        from_pbx.iter().any(|m| is(m, Method::Bye)),
        "BYE to the caller"
    );
    let cdr = bench.cdr();
    assert_eq!(
        (
            cdr["call_status"].as_str(),
            cdr["status_code"].as_str(),
            cdr["ended_reason"].as_str()
        ),
        (Some("answered"), Some("0"), Some("None"))
    );
    let targets = cdr["call_targets"].as_array().unwrap();
    assert_eq!(targets[0]["end_reason"], "referred");
    assert_eq!(
        (&targets[1]["callee"], &targets[1]["status_code"]),
        (&json!("102"), &json!(486))
    );
}

#[test]
fn an_ivr_loop_is_bounded() {
    // 500's timeout goes to 501, 501's back to 500: without the bound the
    // call would go round for ever.
    let mut a = menu("500", &[]);
    a.timeout_destination = Some(IvrDestination::Number("501".into()));
    let mut b = menu("501", &[]);
    b.timeout_destination = Some(IvrDestination::Number("500".into()));
    let mut cast = cast_with(&[a, b], true);
    let _a_call = dial_ivr(&mut cast, "500");
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(120_000);
    assert!(bench.take(alice.peer).iter().any(|m| is(m, Method::Bye)));
    assert_eq!(
        bench.notices(),
        vec![RoutingNotice::TooManyHops {
            hops: pbx::apps::MAX_IVR_ENTRIES
        }]
    );
    let cdr = bench.cdr();
    let targets = cdr["call_targets"].as_array().unwrap();
    assert_eq!(targets.len(), pbx::apps::MAX_IVR_ENTRIES);
    assert!(targets[..7].iter().all(|t| t["end_reason"] == "referred"));
    assert_eq!(targets[7]["end_reason"], "callee_disconnect");
    assert_eq!(cdr["ended_reason"], "callee_disconnect");
}

#[test]
fn an_ivr_is_reached_by_forwarding_and_answers_then() {
    let mut cast = cast_with(&[main_menu()], true);
    {
        let d = cast.bench.engine.directory_mut();
        let mut u = d.user(tenant_id(), "104").unwrap().clone();
        u.forwarding = pbx::Forwarding::default().with(pbx::ForwardCondition::Unavailable, "500");
        d.upsert_user(u).unwrap();
    }
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(-40);
    let mut a_call = bench.dial(alice, "104");
    let ok = bench
        .take(alice.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("the IVR answered");
    assert_eq!(audio(&ok).0, RELAY);
    assert_eq!(
        bench.targets(),
        vec![(
            "500".into(),
            Some(cdr::RerouteReason::ForwardingNotReachable)
        )]
    );
    a_call.confirm(&ok);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    bench.at(1_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    let cdr = bench.cdr();
    assert_eq!(cdr["callee"], "104");
    assert_eq!(cdr["call_targets"][0]["callee"], "500");
    assert_eq!(cdr["call_targets"][0]["end_reason"], "caller_disconnect");
}

#[test]
fn refusals_an_offer_without_g711_and_a_call_without_relay() {
    let mut cast = cast_with(&[main_menu()], true);
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(-40);
    let g722 = SDP_A.replace("RTP/AVP 0 8", "RTP/AVP 9");
    let mut a_call = alice.call("500", Some(&g722));
    let text = alice.invite(&mut a_call, None);
    bench.send(alice.peer, &text);
    let challenge = bench.take_one(alice.peer);
    bench.send(alice.peer, &alice.ack_failure(&a_call, &challenge));
    bench.at(0);
    let text = alice.invite(&mut a_call, Some(&challenge));
    bench.send(alice.peer, &text);
    assert_eq!(bench.take_one(alice.peer).status(), Some(488));
    let cdr = bench.cdr();
    assert_eq!(
        (cdr["call_status"].as_str(), cdr["status_code"].as_str()),
        (Some("fail"), Some("488"))
    );

    // No relay (no media address): the IVR cannot answer: 480.
    let mut cast = cast_with(&[main_menu()], false);
    let Cast { bench, alice, .. } = &mut cast;
    bench.at(-40);
    let _ = bench.dial(alice, "500");
    assert_eq!(bench.take_one(alice.peer).status(), Some(480));
    assert_eq!(bench.cdr()["call_targets"], json!([]));
}

#[test]
fn the_last_invalid_choice_hears_invalid_then_goodbye() {
    let mut ivr = main_menu();
    ivr.retries = 0;
    let mut cast = cast_with(&[ivr], true);
    let _a_call = dial_ivr(&mut cast, "500");
    let Cast { bench, alice, .. } = &mut cast;
    digit(bench, 1_000, '7');
    assert_eq!(
        bench.media.last().unwrap().1,
        plays(&[BuiltinPrompt::Invalid, BuiltinPrompt::Goodbye])
    );
    // Both prompts (0.8 s each) play out before the BYE.
    bench.at(2_599);
    assert!(bench.take(alice.peer).is_empty());
    bench.at(2_600);
    assert!(is(&bench.take_one(alice.peer), Method::Bye));
    assert_eq!(bench.cdr()["ended_reason"], "callee_disconnect");
}
