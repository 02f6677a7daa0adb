//! Many calls at once through one engine: 200 calls between distinct pairs
//! of extensions, started over 20 s, each with an outcome drawn from a
//! seeded generator (answered and hung up by either side, rejected,
//! cancelled, rung out, unknown number), their messages interleaved in
//! time. Invariants: every session's CallEvents fold into exactly one CDR
//! with the expected outcome, the engine ends up holding nothing, and it
//! reports no internal error.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use cdr::{Builder, SessionId};
use common::*;
use pbx::{Extension, User};
use sip::{Message, Method};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    CallerHangsUp,
    CalleeHangsUp,
    Rejected,
    Cancelled,
    RingsOut,
    Unknown,
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Dial,
    Authenticate,
    Ring,
    Answer,
    Ack,
    Hangup,
    FinishHangup,
    Reject,
    FinishReject,
    Cancel,
    FinishCancel,
    FinishRingOut,
    FinishUnknown,
}

struct Leg {
    outcome: Outcome,
    caller: Phone,
    callee: Phone,
    a: Option<Call>,
    b: Option<Call>,
    invite: Option<Message>,
}

/// Reproducible draws.
struct Rng(cdr::SplitMix64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }
}

fn find(bench: &mut Bench, phone: &Phone, what: impl Fn(&Message) -> bool) -> Message {
    let all = bench.take(phone.peer);
    all.iter().find(|m| what(m)).cloned().unwrap_or_else(|| {
        panic!(
            "{} got {:?}",
            phone.user,
            all.iter().map(Message::summary).collect::<Vec<_>>()
        )
    })
}

#[test]
fn two_hundred_interleaved_calls_each_end_in_one_cdr() {
    const CALLS: usize = 200;
    let mut bench = Bench::new();
    let mut rng = Rng(cdr::SplitMix64::new(2026));
    let mut legs = Vec::new();
    let mut plan: BTreeMap<(i64, usize), Step> = BTreeMap::new();
    bench.at(-60_000);
    for i in 0..CALLS {
        let (a, b) = (format!("{}", 2000 + 2 * i), format!("{}", 2001 + 2 * i));
        for ext in [&a, &b] {
            bench
                .engine
                .directory_mut()
                .upsert_user(User {
                    tenant_id: tenant_id(),
                    id: user_id(ext),
                    extension: Extension::new(ext.as_str()),
                    display_name: format!("User {ext}"),
                    credentials: pbx::SipCredentials::from_password(ext, DOMAIN, &password(ext)),
                    ring_timeout: Duration::from_secs(30),
                    enabled: true,
                    forwarding: Default::default(),
                    max_concurrent_calls: None,
                    recording: false,
                    pickup_group: String::new(),
                })
                .unwrap();
        }
        let caller = Phone::new(
            &a,
            "",
            udp(&format!("10.1.{}.{}:5060", i / 200, i % 200 + 1)),
        );
        let mut callee = Phone::new(
            &b,
            "",
            udp(&format!("10.2.{}.{}:5060", i / 200, i % 200 + 1)),
        );
        let outcome = match rng.below(6) {
            0 => Outcome::CallerHangsUp,
            1 => Outcome::CalleeHangsUp,
            2 => Outcome::Rejected,
            3 => Outcome::Cancelled,
            4 => Outcome::RingsOut,
            _ => Outcome::Unknown,
        };
        bench.register(&mut callee);
        let start = rng.below(20_000) as i64;
        plan.insert((start, i), Step::Dial);
        legs.push(Leg {
            outcome,
            caller,
            callee,
            a: None,
            b: None,
            invite: None,
        });
    }
    while let Some(((at, i), step)) = plan.pop_first() {
        bench.at(at);
        let leg = &mut legs[i];
        let mut next = |dt: i64, s: Step| {
            plan.insert((at + dt, i), s);
        };
        match step {
            Step::Dial => {
                let number = if leg.outcome == Outcome::Unknown {
                    "9999".to_owned()
                } else {
                    leg.callee.user.clone()
                };
                let mut call = leg.caller.call(&number, Some(SDP_A));
                let text = leg.caller.invite(&mut call, None);
                bench.send(leg.caller.peer, &text);
                leg.a = Some(call);
                next(40, Step::Authenticate);
            }
            Step::Authenticate => {
                let challenge = find(&mut bench, &leg.caller, |m| m.status() == Some(407));
                let call = leg.a.as_mut().unwrap();
                bench.send(leg.caller.peer, &leg.caller.ack_failure(call, &challenge));
                let text = leg.caller.invite(call, Some(&challenge));
                bench.send(leg.caller.peer, &text);
                if leg.outcome == Outcome::Unknown {
                    next(20, Step::FinishUnknown);
                } else {
                    next(60, Step::Ring);
                }
            }
            Step::FinishUnknown => {
                let nf = find(&mut bench, &leg.caller, |m| m.status() == Some(404));
                let text = leg.caller.ack_failure(leg.a.as_ref().unwrap(), &nf);
                bench.send(leg.caller.peer, &text);
            }
            Step::Ring => {
                let invite = find(&mut bench, &leg.callee, |m| is(m, Method::Invite));
                let call = leg.callee.incoming(&invite);
                bench.send(
                    leg.callee.peer,
                    &leg.callee.respond(&call, &invite, 180, None),
                );
                leg.b = Some(call);
                leg.invite = Some(invite);
                let wait = 500 + rng.below(10_000) as i64;
                match leg.outcome {
                    Outcome::CallerHangsUp | Outcome::CalleeHangsUp => next(wait, Step::Answer),
                    Outcome::Rejected => next(wait, Step::Reject),
                    Outcome::Cancelled => next(wait, Step::Cancel),
                    Outcome::RingsOut => next(30_100, Step::FinishRingOut),
                    Outcome::Unknown => unreachable!(),
                }
            }
            Step::Answer => {
                let (b, invite) = (leg.b.as_ref().unwrap(), leg.invite.as_ref().unwrap());
                bench.send(
                    leg.callee.peer,
                    &leg.callee.respond(b, invite, 200, Some(SDP_B)),
                );
                next(30, Step::Ack);
            }
            Step::Ack => {
                let ok = find(&mut bench, &leg.caller, |m| m.status() == Some(200));
                let ack = leg.caller.ack(leg.a.as_mut().unwrap(), &ok, None);
                bench.send(leg.caller.peer, &ack);
                find(&mut bench, &leg.callee, |m| is(m, Method::Ack));
                next(1000 + rng.below(60_000) as i64, Step::Hangup);
            }
            Step::Hangup => {
                if leg.outcome == Outcome::CallerHangsUp {
                    let bye = leg.caller.request(leg.a.as_mut().unwrap(), "BYE", None);
                    bench.send(leg.caller.peer, &bye);
                } else {
                    let bye = leg.callee.request(leg.b.as_mut().unwrap(), "BYE", None);
                    bench.send(leg.callee.peer, &bye);
                }
                next(20, Step::FinishHangup);
            }
            Step::FinishHangup => {
                let (hanger, other, other_call) = if leg.outcome == Outcome::CallerHangsUp {
                    (&leg.caller, &leg.callee, leg.b.as_ref().unwrap())
                } else {
                    (&leg.callee, &leg.caller, leg.a.as_ref().unwrap())
                };
                find(&mut bench, hanger, |m| m.status() == Some(200));
                let bye = find(&mut bench, other, |m| is(m, Method::Bye));
                bench.send(other.peer, &other.respond(other_call, &bye, 200, None));
            }
            Step::Reject => {
                let (b, invite) = (leg.b.as_ref().unwrap(), leg.invite.as_ref().unwrap());
                bench.send(leg.callee.peer, &leg.callee.respond(b, invite, 486, None));
                next(20, Step::FinishReject);
            }
            Step::FinishReject => {
                let busy = find(&mut bench, &leg.caller, |m| m.status() == Some(486));
                let text = leg.caller.ack_failure(leg.a.as_ref().unwrap(), &busy);
                bench.send(leg.caller.peer, &text);
            }
            Step::Cancel => {
                let text = leg.caller.cancel(leg.a.as_ref().unwrap());
                bench.send(leg.caller.peer, &text);
                next(20, Step::FinishCancel);
            }
            Step::FinishCancel | Step::FinishRingOut => {
                let code = if matches!(step, Step::FinishCancel) {
                    487
                } else {
                    408
                };
                let final_ = find(&mut bench, &leg.caller, |m| {
                    m.status() == Some(code) && m.cseq().unwrap().method == Method::Invite
                });
                let text = leg.caller.ack_failure(leg.a.as_ref().unwrap(), &final_);
                bench.send(leg.caller.peer, &text);
                let cancel = find(&mut bench, &leg.callee, |m| is(m, Method::Cancel));
                let (b, invite) = (leg.b.as_ref().unwrap(), leg.invite.as_ref().unwrap());
                bench.send(leg.callee.peer, &leg.callee.respond(b, &cancel, 200, None));
                bench.send(leg.callee.peer, &leg.callee.respond(b, invite, 487, None));
            }
        }
    }
    bench.at(bench.now + 60_000);
    assert_eq!(bench.engine.sessions(), 0, "every session dropped");

    // Fold each session's events; match sessions to calls by the caller.
    let mut builders: BTreeMap<SessionId, Builder> = BTreeMap::new();
    for (session, _, event) in &bench.call_events {
        let kind = event.kind.name();
        builders
            .entry(*session)
            .or_default()
            .apply(event.clone())
            .unwrap_or_else(|e| panic!("session {session}: builder refused {kind}: {e}"));
    }
    assert_eq!(builders.len(), CALLS, "one session per call");
    let by_caller: HashMap<String, &cdr::CdrRecord> = builders
        .values()
        .map(|b| b.record().expect("every session ended"))
        .map(|r| (r.caller.user.clone(), r))
        .collect();
    let mut seen = HashMap::new();
    for leg in &legs {
        let r = by_caller[&leg.caller.user];
        let expected = match leg.outcome {
            Outcome::CallerHangsUp => ("answered", 0, "caller_disconnect"),
            Outcome::CalleeHangsUp => ("answered", 0, "callee_disconnect"),
            Outcome::Rejected => ("fail", 486, "None"),
            Outcome::Cancelled => ("noanswer", 487, "cancelled"),
            Outcome::RingsOut => ("noanswer", 408, "None"),
            Outcome::Unknown => ("fail", 404, "None"),
        };
        let got = (
            r.call_status.as_str(),
            r.status_code,
            r.ended_reason.event_spelling(),
        );
        assert_eq!(got, expected, "{:?} from {}", leg.outcome, leg.caller.user);
        *seen.entry(format!("{:?}", leg.outcome)).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 6, "every outcome drawn: {seen:?}");
    let dropped: Vec<_> = bench
        .engine_events
        .iter()
        .filter(|e| matches!(e, pbx::EngineEvent::Dropped { .. }))
        .collect();
    assert!(dropped.is_empty(), "{dropped:?}");
}
