//! Call queues (issue 14, SPEC §3 "queue") on the virtual clock: the
//! queue is a target answered at once (music on hold), each agent rung is
//! a `queue_call` target, and the queue target ends `referred` when an
//! agent connects; a caller who hangs up while queued leaves the queue
//! target answered and `caller_disconnect`.
//!
//! Cast: 101 (Tom, 10.0.0.5) calls; agents 102 (Jason, 10.0.0.7) and 103
//! (Ann, 10.0.0.9); 104 (Bob, 10.0.0.11) calls too. Queue 700 "Support".
//! The relay is at 203.0.113.10.

#![recursion_limit = "512"]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::golden::{ANN_URI, CALL_ID, CDR, DESK_URI, SESSION, call, cdr_of, golden, target};
use common::*;
use pbx::media::{Anchor, MediaCommand, MediaPolicy, RelayPorts};
use pbx::{BuiltinPrompt, Extension, IvrDestination, PromptRef, Queue, QueueStrategy};
use serde_json::json;
use sip::{Message, Method};

const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
const ANN: &str = "10.0.0.9:5066";
const QUEUE_URI: &str = "sip:700@acme.example";

struct Ports(u16);

impl RelayPorts for Ports {
    fn reserve(&mut self, _: cdr::SessionId) -> Option<[u16; 2]> {
        self.0 += 4;
        Some([30_000 + self.0, 30_002 + self.0])
    }
}

fn support(strategy: QueueStrategy, logged_in: &[&str]) -> Queue {
    Queue {
        tenant_id: tenant_id(),
        number: Extension::new("700"),
        name: "Support".into(),
        strategy,
        agents: vec![Extension::new("102"), Extension::new("103")],
        logged_in: logged_in.iter().map(|a| Extension::new(*a)).collect(),
        agent_timeout: Duration::from_secs(15),
        wrap_up: Duration::from_secs(10),
        max_wait: None,
        max_length: None,
        overflow: None,
        moh: BuiltinPrompt::Moh.prompt(),
        announce_position: None,
        callback_attempts: None,
    }
}

/// The cast with a relay, 103 registered and `queue`.
fn cast_with(queue: Queue) -> (Cast, Phone) {
    let mut cast = Cast::new();
    cast.bench.engine.set_media(
        MediaPolicy {
            anchor: Anchor::Never,
            address: RELAY,
        },
        Box::new(Ports(0)),
    );
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    cast.bench.register(&mut ann);
    cast.bench
        .engine
        .directory_mut()
        .upsert_queue(queue)
        .unwrap();
    (cast, ann)
}

/// `caller` dials 700 at `at`; the queue answers at once; the caller
/// ACKs 30 ms later.
fn queued(bench: &mut Bench, caller: &mut Phone, at: i64) -> Call {
    answered_by_pbx(bench, caller, "700", at)
}

/// `caller` dials `number` at `at` - 40 ms; the PBX answers at once; the
/// caller ACKs 30 ms after `at`.
fn answered_by_pbx(bench: &mut Bench, caller: &mut Phone, number: &str, at: i64) -> Call {
    bench.at(at - 40);
    let mut a_call = bench.dial(caller, number);
    let ok = bench
        .take(caller.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("the queue answered");
    a_call.confirm(&ok);
    bench.at(at + 30);
    bench.send(caller.peer, &caller.ack(&mut a_call, &ok, None));
    a_call
}

fn invited(bench: &mut Bench, phone: &mut Phone) -> (Call, Message) {
    let invite = bench.take_one(phone.peer);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    let call = phone.incoming(&invite);
    bench.send(phone.peer, &phone.respond(&call, &invite, 180, None));
    (call, invite)
}

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

fn queue_target(ids: &[String], ended: &str, talk: &str, reason: &str) -> serde_json::Value {
    target(
        (&ids[0], CDR, "normal_call"),
        ("700", QUEUE_URI),
        ("1795874587", "1795874587", "1795874587", ended),
        ("0", talk),
        ("answered", 0, reason),
    )
}

#[test]
fn ring_all_rings_the_logged_in_agents_and_the_queue_ends_referred() {
    let (mut cast, mut ann) = cast_with(support(QueueStrategy::RingAll, &["102", "103"]));
    let Cast { bench, alice, bob } = &mut cast;
    let mut a_call = queued(bench, alice, 0);
    // Music on hold, after "please hold".
    assert!(bench.media.iter().any(|(_, c)| *c
        == MediaCommand::Play(pbx::apps::Playback {
            prompts: vec![
                PromptRef::Builtin(BuiltinPrompt::PleaseHold),
                PromptRef::Builtin(BuiltinPrompt::Moh)
            ],
            repeat: true,
            payload_type: 0,
            law: pbx::apps::G711::Pcmu,
            events: None,
        })));
    // Both agents at once (the dispatcher ran when the caller queued).
    let (b_call, b_invite) = invited(bench, bob);
    let (ann_call, ann_invite) = invited(bench, &mut ann);
    bench.at(3_000);
    bench.send(bob.peer, &bob.respond(&b_call, &b_invite, 200, Some(SDP_B)));
    assert!(is(&bench.take_one(bob.peer), Method::Ack), "ACKed at once");
    let cancel = bench.take_one(ann.peer);
    assert!(is(&cancel, Method::Cancel));
    bench.send(ann.peer, &ann.respond(&ann_call, &cancel, 200, None));
    bench.send(ann.peer, &ann.respond(&ann_call, &ann_invite, 487, None));
    assert_eq!(bench.media.last().unwrap().1, MediaCommand::Bridge);
    bench.at(8_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert!(is(&bench.take_one(bob.peer), Method::Bye));
    let ids = target_ids(bench);
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("700", "Support"),
            ("1795874587", "1795874587", "1795874587", "1795874595"),
            ("0", 8),
            ("answered", "0", "caller_disconnect"),
            vec![
                queue_target(&ids, "1795874590", "3", "referred"),
                target(
                    (&ids[1], CDR, "queue_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "1795874590", "1795874595"),
                    ("3", "5"),
                    ("answered", 0, "caller_disconnect"),
                ),
                target(
                    (&ids[2], CDR, "queue_call"),
                    ("103", ANN_URI),
                    ("1795874587", "1795874587", "0", "1795874590"),
                    ("3", "0"),
                    ("noanswer", 0, "None"),
                ),
            ],
            12,
        ),
    );
}

#[test]
fn round_robin_moves_on_when_an_agent_rings_out_and_skips_logged_out_agents() {
    let (mut cast, mut ann) = cast_with(support(QueueStrategy::RoundRobin, &["102", "103"]));
    let Cast { bench, alice, bob } = &mut cast;
    let _a_call = queued(bench, alice, 0);
    let (b_call, b_invite) = invited(bench, bob);
    assert!(bench.take(ann.peer).is_empty(), "one agent at a time");
    // 102 rings out after 15 s: CANCEL; then 103 is offered the caller.
    bench.at(15_000);
    let cancel = bench.take_one(bob.peer);
    assert!(is(&cancel, Method::Cancel));
    bench.send(bob.peer, &bob.respond(&b_call, &cancel, 200, None));
    bench.send(bob.peer, &bob.respond(&b_call, &b_invite, 487, None));
    let (ann_call, ann_invite) = invited(bench, &mut ann);
    bench.at(16_000);
    bench.send(
        ann.peer,
        &ann.respond(&ann_call, &ann_invite, 200, Some(SDP_B)),
    );
    let targets = bench.targets();
    assert_eq!(
        targets.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        ["700", "102", "103"]
    );
    // An agent logged out is not offered calls.
    let (mut cast, mut ann) = cast_with(support(QueueStrategy::RoundRobin, &["103"]));
    let Cast { bench, alice, bob } = &mut cast;
    let _a_call = queued(bench, alice, 0);
    assert!(bench.take(bob.peer).is_empty());
    let _ = invited(bench, &mut ann);
}

#[test]
fn a_caller_who_hangs_up_while_queued_is_abandoned() {
    let (mut cast, mut ann) = cast_with(support(QueueStrategy::RingAll, &["103"]));
    let Cast { bench, alice, .. } = &mut cast;
    let mut a_call = queued(bench, alice, 0);
    let (ann_call, ann_invite) = invited(bench, &mut ann);
    let waiting = |bench: &mut Bench| {
        bench.control(pbx::Control::QueueWaiting {
            tenant: tenant_id(),
            number: "700".into(),
        })
    };
    assert_eq!(waiting(bench), pbx::ControlReply::Waiting(1));
    bench.at(4_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let cancel = bench.take_one(ann.peer);
    assert!(is(&cancel, Method::Cancel));
    bench.send(ann.peer, &ann.respond(&ann_call, &cancel, 200, None));
    bench.send(ann.peer, &ann.respond(&ann_call, &ann_invite, 487, None));
    assert_eq!(
        waiting(bench),
        pbx::ControlReply::Waiting(0),
        "left the queue"
    );
    let ids = target_ids(bench);
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("700", "Support"),
            ("1795874587", "1795874587", "1795874587", "1795874591"),
            ("0", 4),
            ("answered", "0", "caller_disconnect"),
            vec![
                queue_target(&ids, "1795874591", "4", "caller_disconnect"),
                target(
                    (&ids[1], CDR, "queue_call"),
                    ("103", ANN_URI),
                    ("1795874587", "1795874587", "0", "1795874591"),
                    ("4", "0"),
                    ("noanswer", 487, "cancelled"),
                ),
            ],
            8,
        ),
    );
}

#[test]
fn no_agent_logged_in_overflows_after_max_wait() {
    let mut q = support(QueueStrategy::RingAll, &[]);
    q.max_wait = Some(Duration::from_secs(20));
    q.overflow = Some(IvrDestination::Number("102".into()));
    let (mut cast, _ann) = cast_with(q);
    let Cast { bench, alice, bob } = &mut cast;
    let mut a_call = queued(bench, alice, 0);
    bench.at(19_999);
    assert!(bench.take(bob.peer).is_empty(), "102 is no agent logged in");
    bench.at(20_000);
    let (b_call, b_invite) = invited(bench, bob);
    bench.at(21_000);
    bench.send(bob.peer, &bob.respond(&b_call, &b_invite, 200, Some(SDP_B)));
    bench.at(25_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    let cdr = bench.cdr();
    let brief: Vec<_> = cdr["call_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!([t["callee"], t["call_type"], t["status"], t["end_reason"]]))
        .collect();
    assert_eq!(
        brief,
        [
            json!(["700", "normal_call", "answered", "referred"]),
            json!(["102", "normal_call", "answered", "caller_disconnect"]),
        ]
    );
    // Without an overflow destination the PBX hangs up.
    let mut q = support(QueueStrategy::RingAll, &[]);
    q.max_wait = Some(Duration::from_secs(20));
    let (mut cast, _ann) = cast_with(q);
    let Cast { bench, alice, .. } = &mut cast;
    let _a_call = queued(bench, alice, 0);
    bench.at(20_000);
    assert!(bench.take(alice.peer).iter().any(|m| is(m, Method::Bye)));
    assert_eq!(bench.cdr()["ended_reason"], "callee_disconnect");
}

#[test]
fn a_full_queue_is_busy_and_a_freed_agent_waits_out_its_wrap_up() {
    let mut q = support(QueueStrategy::RingAll, &["103"]);
    q.max_length = Some(1);
    let (mut cast, mut ann) = cast_with(q);
    let mut carol = Phone::new("104", "Bob", udp("10.0.0.11:5060"));
    cast.bench.register(&mut carol);
    let Cast { bench, alice, .. } = &mut cast;
    let a_call = queued(bench, alice, 0);
    let (mut ann_call, ann_invite) = invited(bench, &mut ann);
    // A second caller while one waits: busy, no target.
    bench.at(1_000);
    let _c_call = bench.dial(&mut carol, "700");
    let busy = bench.take(carol.peer);
    assert!(busy.iter().any(|m| m.status() == Some(486)), "busy");
    // 103 takes the first call and hangs up at 5 s.
    bench.send(
        ann.peer,
        &ann.respond(&ann_call, &ann_invite, 200, Some(SDP_B)),
    );
    bench.at(5_000);
    let bye = ann.request(&mut ann_call, "BYE", None);
    bench.send(ann.peer, &bye);
    let _ = bench.take(alice.peer);
    let _ = a_call.cseq;
    // A new caller at 6 s waits until 103's 10 s wrap-up is over (15 s).
    let mut c_call = queued(bench, &mut carol, 6_000);
    bench.at(14_999);
    let early: Vec<_> = bench.take(ann.peer);
    assert!(!early.iter().any(|m| is(m, Method::Invite)), "in wrap-up");
    bench.at(15_000);
    let _ = invited(bench, &mut ann);
    bench.send(carol.peer, &carol.request(&mut c_call, "BYE", None));
}

/// The `Play` commands the relay got, in order, from `from` on.
fn plays(bench: &Bench, from: usize) -> Vec<Vec<PromptRef>> {
    bench.media[from..]
        .iter()
        .filter_map(|(_, c)| match c {
            MediaCommand::Play(p) => Some(p.prompts.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn waiting_callers_hear_their_position_every_20_s_then_the_music_again() {
    let mut q = support(QueueStrategy::RingAll, &[]);
    q.announce_position = Some(Duration::from_secs(20));
    let (mut cast, _ann) = cast_with(q);
    let mut carol = Phone::new("104", "Bob", udp("10.0.0.11:5060"));
    cast.bench.register(&mut carol);
    let Cast { bench, alice, .. } = &mut cast;
    let moh = PromptRef::Builtin(BuiltinPrompt::Moh);
    let mut a_call = queued(bench, alice, 0);
    let mut c_call = queued(bench, &mut carol, 5_000);
    let seen = bench.media.len();
    bench.at(19_900);
    assert_eq!(plays(bench, seen), Vec::<Vec<PromptRef>>::new());
    // 20 s after each joined: caller 1, then caller 2.
    bench.at(20_100);
    assert_eq!(plays(bench, seen), [vec![PromptRef::CallerNumber(1), moh]]);
    bench.at(25_100);
    assert_eq!(
        plays(bench, seen),
        [
            vec![PromptRef::CallerNumber(1), moh],
            vec![PromptRef::CallerNumber(2), moh]
        ]
    );
    // The first caller hangs up: the second is next in line.
    bench.at(30_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    let seen = bench.media.len();
    bench.at(44_900);
    assert_eq!(plays(bench, seen), Vec::<Vec<PromptRef>>::new());
    bench.at(45_100);
    assert_eq!(plays(bench, seen), [vec![PromptRef::CallerNumber(1), moh]]);
    bench.at(50_000);
    bench.send(carol.peer, &carol.request(&mut c_call, "BYE", None));
    // Announcements add nothing to the CDR: the queue target answered,
    // abandoned.
    let ids = target_ids(bench);
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("700", "Support"),
            ("1795874587", "1795874587", "1795874587", "1795874617"),
            ("0", 30),
            ("answered", "0", "caller_disconnect"),
            vec![queue_target(&ids, "1795874617", "30", "caller_disconnect")],
            5,
        ),
    );
    let durations: Vec<u128> = [1, 3, 10, 12]
        .map(|n| pbx::apps::caller_number_duration(n).as_millis())
        .to_vec();
    assert_eq!(durations, [1500, 2100, 5100, 2700]);
}

/// The golden of a callback call (its identity fields taken from
/// `actual`, checked for their shape): agent `agent` (`agent_name`) was
/// called first, then 101.
fn callback_golden(actual: &serde_json::Value, mut expected: serde_json::Value) {
    let session: u64 = actual["session_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        actual["cdr_id"],
        json!((session + 1).to_string()),
        "cdr_id = session_id + 1"
    );
    for key in ["session_id", "cdr_id", "call_id", "event_id"] {
        expected[key] = actual[key].clone();
    }
    let cdr_id = actual["cdr_id"].clone();
    for t in expected["call_targets"].as_array_mut().unwrap() {
        t["cdr_id"] = cdr_id.clone();
    }
    golden(actual, expected);
}

/// Logs `agents` in to 700 as the runtime does (a new directory).
fn log_in(bench: &mut Bench, mut queue: Queue, agents: &[&str]) {
    queue.logged_in = agents.iter().map(|a| Extension::new(*a)).collect();
    let mut directory = bench.engine.directory().clone();
    directory.upsert_queue(queue).unwrap();
    bench.input(pbx::Input::ReplaceDirectory(Box::new(directory)));
}

#[test]
fn a_caller_who_presses_1_is_called_back_agent_first_with_queue_callback_legs() {
    let mut q = support(QueueStrategy::RingAll, &[]);
    q.callback_attempts = Some(2);
    let (mut cast, mut ann) = cast_with(q.clone());
    let Cast { bench, alice, .. } = &mut cast;
    let a_call = queued(bench, alice, 0);
    let waiting = |bench: &mut Bench| {
        bench.control(pbx::Control::QueueCallbacks {
            tenant: tenant_id(),
            number: "700".into(),
        })
    };
    // 101 presses 1 at 3 s: goodbye, then the PBX hangs up.
    bench.at(3_000);
    let session = bench.media[0].0;
    bench.input(pbx::Input::Digit {
        session,
        digit: '1',
    });
    assert_eq!(
        bench.media.last().unwrap().1,
        MediaCommand::Play(pbx::apps::Playback {
            prompts: vec![PromptRef::Builtin(BuiltinPrompt::Goodbye)],
            repeat: false,
            payload_type: 0,
            law: pbx::apps::G711::Pcmu,
            events: None,
        })
    );
    bench.at(3_800);
    let bye = bench.take_one(alice.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    bench.send(alice.peer, &alice.respond(&a_call, &bye, 200, None));
    assert_eq!(
        waiting(bench),
        pbx::ControlReply::Callbacks {
            waiting: 1,
            dropped: 0
        },
        "the request keeps the caller's place"
    );
    let ids = target_ids(bench);
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("700", "Support"),
            ("1795874587", "1795874587", "1795874587", "1795874590"),
            ("0", 3),
            ("answered", "0", "callee_disconnect"),
            vec![queue_target(&ids, "1795874590", "3", "callee_disconnect")],
            5,
        ),
    );

    // 103 logs in at 10 s: the PBX calls 103 first (late offer, shown the
    // caller it will be connected to), then 101 with 103's offer.
    bench.at(10_000);
    log_in(bench, q, &["103"]);
    let invite = bench.take_one(ann.peer);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    assert!(invite.body().is_empty(), "late offer");
    let from = invite.header(sip::HeaderName::From).unwrap();
    assert!(from.starts_with("\"Tom\" <sip:101@acme.example>"), "{from}");
    let ann_call = ann.incoming(&invite);
    bench.send(ann.peer, &ann.respond(&ann_call, &invite, 180, None));
    bench.at(12_000);
    bench.send(ann.peer, &ann.respond(&ann_call, &invite, 200, Some(SDP_B)));
    let a_invite = bench.take_one(alice.peer);
    assert!(is(&a_invite, Method::Invite), "{}", a_invite.summary());
    assert_eq!(a_invite.body(), SDP_B.as_bytes(), "103's offer");
    let from = a_invite.header(sip::HeaderName::From).unwrap();
    assert!(
        from.starts_with("\"Support\" <sip:103@acme.example>"),
        "the queue's name: {from}"
    );
    let mut back = alice.incoming(&a_invite);
    bench.at(14_000);
    bench.send(
        alice.peer,
        &alice.respond(&back, &a_invite, 200, Some(SDP_A)),
    );
    assert!(
        is(&bench.take_one(ann.peer), Method::Ack),
        "103 ACKed with the answer"
    );
    // (101's INVITE was sent again while it did not answer.)
    assert!(bench.take(alice.peer).iter().any(|m| is(m, Method::Ack)));
    assert_eq!(
        waiting(bench),
        pbx::ControlReply::Callbacks {
            waiting: 0,
            dropped: 0
        },
        "done"
    );
    bench.at(20_000);
    bench.send(alice.peer, &alice.request(&mut back, "BYE", None));
    assert!(is(&bench.take_one(ann.peer), Method::Bye));
    let _ = a_call.cseq;
    let ids = target_ids(bench);
    let mut expected = call(
        ("", "", ""),
        ("101", "Tom"),
        ("1795874597", "1795874597", "1795874599", "1795874607"),
        ("2", 8),
        ("answered", "0", "callee_disconnect"),
        vec![
            target(
                (&ids[1], "", "queue_callback"),
                ("103", ANN_URI),
                ("1795874597", "1795874597", "1795874599", "1795874607"),
                ("2", "8"),
                ("answered", 0, "callee_disconnect"),
            ),
            target(
                (&ids[2], "", "queue_callback"),
                ("101", "sip:101@10.0.0.5:5060"),
                ("1795874599", "1795874601", "1795874601", "1795874607"),
                ("0", "6"),
                ("answered", 0, "callee_disconnect"),
            ),
        ],
        9,
    );
    expected["caller"] = json!("103");
    expected["caller_display_name"] = json!("Ann");
    for t in expected["call_targets"].as_array_mut().unwrap() {
        t["caller"] = json!("103");
    }
    expected["call_targets"][0]["caller"] = json!("101");
    callback_golden(&cdr_of(bench, 1), expected);
}

#[test]
fn a_callback_nobody_answers_is_tried_callback_attempts_times_then_dropped() {
    let mut q = support(QueueStrategy::RingAll, &["103"]);
    q.callback_attempts = Some(2);
    let (mut cast, mut ann) = cast_with(q);
    let Cast { bench, alice, .. } = &mut cast;
    let a_call = queued(bench, alice, 0);
    // 103 rings for 101, who presses 1: 103 is CANCELled.
    let (ann_call, ann_invite) = invited(bench, &mut ann);
    bench.at(2_000);
    let session = bench.media[0].0;
    bench.input(pbx::Input::Digit {
        session,
        digit: '1',
    });
    // 103 is free at once: the callback call rings it right away (its
    // first INVITE being CANCELled).
    let sent = bench.take(ann.peer);
    let [cancel, i1] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert!(is(cancel, Method::Cancel) && is(i1, Method::Invite));
    bench.send(ann.peer, &ann.respond(&ann_call, cancel, 200, None));
    bench.send(ann.peer, &ann.respond(&ann_call, &ann_invite, 487, None));
    let c1 = ann.incoming(i1);
    bench.send(ann.peer, &ann.respond(&c1, i1, 180, None));
    bench.at(2_800);
    let bye = bench.take_one(alice.peer);
    bench.send(alice.peer, &alice.respond(&a_call, &bye, 200, None));
    let _ = a_call.cseq;
    let ids = target_ids(bench);
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("700", "Support"),
            ("1795874587", "1795874587", "1795874587", "1795874589"),
            ("0", 2),
            ("answered", "0", "callee_disconnect"),
            vec![
                queue_target(&ids, "1795874589", "2", "callee_disconnect"),
                target(
                    (&ids[1], CDR, "queue_call"),
                    ("103", ANN_URI),
                    ("1795874587", "1795874587", "0", "1795874589"),
                    ("2", "0"),
                    ("noanswer", 487, "cancelled"),
                ),
            ],
            8,
        ),
    );
    // Attempt 1 rings out (the queue's 15 s agent timeout).
    bench.at(17_100);
    let cancel = bench
        .take(ann.peer)
        .into_iter()
        .find(|m| is(m, Method::Cancel))
        .expect("rung out: CANCEL");
    bench.send(ann.peer, &ann.respond(&c1, &cancel, 200, None));
    bench.send(ann.peer, &ann.respond(&c1, i1, 487, None));
    let attempt = cdr_of(bench, 1);
    assert_eq!(
        (
            &attempt["caller"],
            &attempt["callee"],
            &attempt["call_status"],
            &attempt["status_code"],
            &attempt["ended_reason"]
        ),
        (
            &json!("103"),
            &json!("101"),
            &json!("noanswer"),
            &json!("408"),
            &json!("None")
        ),
        "{attempt}"
    );
    assert_eq!(
        attempt["call_targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| json!([t["callee"], t["call_type"], t["status"], t["status_code"]]))
            .collect::<Vec<_>>(),
        [json!(["103", "queue_callback", "noanswer", 408])]
    );
    // Attempt 2, 30 s later: 103 refuses; the request is dropped.
    bench.at(46_900);
    let early = bench.take(ann.peer);
    assert!(
        !early.iter().any(|m| is(m, Method::Invite)),
        "30 s between attempts: {early:?}"
    );
    bench.at(47_100);
    let (c2, i2) = invited(bench, &mut ann);
    bench.send(ann.peer, &ann.respond(&c2, &i2, 486, None));
    assert!(
        bench
            .notices()
            .contains(&pbx::RoutingNotice::CallbackDropped {
                queue: "700".into(),
                number: "101".into()
            })
    );
    assert_eq!(
        bench.control(pbx::Control::QueueCallbacks {
            tenant: tenant_id(),
            number: "700".into(),
        }),
        pbx::ControlReply::Callbacks {
            waiting: 0,
            dropped: 1
        }
    );
    bench.at(200_000);
    assert!(
        !bench.take(ann.peer).iter().any(|m| is(m, Method::Invite)),
        "no third attempt"
    );
    assert!(bench.take(alice.peer).is_empty(), "101 was never called");
}

fn played_last(bench: &Bench) -> Vec<PromptRef> {
    plays(bench, 0).last().cloned().unwrap_or_default()
}

#[test]
fn an_agent_logs_in_and_out_with_its_feature_code_and_hears_it_confirmed() {
    let (mut cast, mut ann) = cast_with(support(QueueStrategy::RingAll, &[]));
    let Cast { bench, alice, .. } = &mut cast;
    // 103 dials *45700: answered at once, the rising confirmation, then
    // the PBX hangs up.
    let code = answered_by_pbx(bench, &mut ann, "*45700", 0);
    assert_eq!(
        played_last(bench),
        [PromptRef::Builtin(BuiltinPrompt::LoggedIn)]
    );
    bench.at(559);
    assert!(bench.take(ann.peer).is_empty(), "the confirmation plays");
    bench.at(600);
    let bye = bench.take_one(ann.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    bench.send(ann.peer, &ann.respond(&code, &bye, 200, None));
    let login = pbx::AgentLogin {
        tenant: tenant_id(),
        extension: "103".into(),
        queues: vec!["700".into()],
        on: true,
    };
    assert_eq!(
        bench.agent_logins,
        std::slice::from_ref(&login),
        "for the store"
    );
    let logged_in = |bench: &Bench| {
        bench
            .engine
            .directory()
            .queue(tenant_id(), "700")
            .unwrap()
            .logged_in
            .clone()
    };
    assert_eq!(logged_in(bench), [Extension::new("103")]);
    let actual = cdr_of(bench, 0);
    let ids = target_ids(bench);
    let mut expected = call(
        (SESSION, CDR, CALL_ID),
        ("*45700", ""),
        ("1795874587", "1795874587", "1795874587", "1795874587"),
        ("0", 0),
        ("answered", "0", "callee_disconnect"),
        vec![target(
            (&ids[0], CDR, "normal_call"),
            ("*45700", "sip:*45700@acme.example"),
            ("1795874587", "1795874587", "1795874587", "1795874587"),
            ("0", "0"),
            ("answered", 0, "callee_disconnect"),
        )],
        5,
    );
    expected["call_id"] = actual["call_id"].clone();
    expected["caller"] = json!("103");
    expected["caller_display_name"] = json!("Ann");
    expected["call_targets"][0]["caller"] = json!("103");
    golden(&actual, expected);

    // The dispatcher offers 103 a caller at once.
    let _a_call = queued(bench, alice, 2_000);
    let _ = invited(bench, &mut ann);

    // *46 (every queue): logged out, falling tones; *45701 names no queue
    // of 103: "invalid", nothing changes.
    let out = answered_by_pbx(bench, &mut ann, "*46", 5_000);
    assert_eq!(
        played_last(bench),
        [PromptRef::Builtin(BuiltinPrompt::LoggedOut)]
    );
    assert!(logged_in(bench).is_empty());
    bench.at(5_600);
    let bye = bench
        .take(ann.peer)
        .into_iter()
        .find(|m| is(m, Method::Bye))
        .expect("hung up after the confirmation");
    bench.send(ann.peer, &ann.respond(&out, &bye, 200, None));
    let _none = answered_by_pbx(bench, &mut ann, "*45701", 7_000);
    assert_eq!(
        played_last(bench),
        [PromptRef::Builtin(BuiltinPrompt::Invalid)]
    );
    assert_eq!(
        bench.agent_logins,
        [
            login,
            pbx::AgentLogin {
                tenant: tenant_id(),
                extension: "103".into(),
                queues: vec!["700".into()],
                on: false,
            }
        ]
    );
}
