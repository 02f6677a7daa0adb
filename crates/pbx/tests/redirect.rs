//! A target answering 3xx (SPEC §3: "target answers with 3xx and the PBX
//! follows it"), played as SIP messages on the virtual clock: the
//! redirecting target ends `redirected`, the new contact rings as a target
//! with `reroute_reason: REDIRECT`, and what is not followed (a loop,
//! outside the tenant) ends the call cleanly.
//!
//! Cast: 101 (Tom) calls 102 (Jason, desk phone at 10.0.0.7); 103 (Ann)
//! answers at 10.0.0.9.

mod common;

use cdr::RerouteReason;
use common::golden::*;
use common::*;
use pbx::{NotFollowed, RoutingNotice};
use serde_json::{Value, json};
use sip::{Message, Method};

const ANN: &str = "10.0.0.9:5066";

/// `phone`'s 302 to `request`, sending the caller to `contact`.
fn redirect(phone: &Phone, call: &Call, request: &Message, contact: &str) -> String {
    phone.respond(call, request, 302, None).replace(
        "Content-Length: 0",
        &format!("Contact: <{contact}>\r\nContent-Length: 0"),
    )
}

/// Each target's `[callee, status, status_code, end_reason]`.
fn target_summary(cdr: &Value) -> Vec<Value> {
    cdr["call_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!([t["callee"], t["status"], t["status_code"], t["end_reason"]]))
        .collect()
}

/// 102 rings, then answers 302 to 103: 103 rings and answers.
#[test]
fn a_302_is_followed_inside_the_tenant() {
    let mut cast = Cast::new();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    cast.bench.register(&mut ann);
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    let mut a_call = bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    let b_call = bob.incoming(&invite);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 180, None));
    bench.at(1000);
    bench.send(
        bob.peer,
        &redirect(bob, &b_call, &invite, &format!("sip:103@{DOMAIN}")),
    );
    assert!(
        is(&bench.take_one(bob.peer), Method::Ack),
        "the 302 is ACKed"
    );
    let invite = bench.take_one(ann.peer);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    let c_call = ann.incoming(&invite);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 180, None));
    bench.at(3000);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 200, Some(SDP_B)));
    let ok = bench
        .take(alice.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("the caller gets the 200");
    assert!(
        bench
            .sent_to(alice.peer)
            .iter()
            .all(|m| m.status() != Some(302)),
        "the 302 is not relayed"
    );
    a_call.confirm(&ok);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    let _ack = bench.take_one(ann.peer);
    bench.at(8000);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    let bye = bench.take_one(ann.peer);
    bench.send(ann.peer, &ann.respond(&c_call, &bye, 200, None));

    assert_eq!(
        bench.targets(),
        [
            ("102".into(), None),
            ("103".into(), Some(RerouteReason::Redirect))
        ]
    );
    let cdr = bench.cdr();
    assert_eq!(
        (
            cdr["callee"].as_str(),
            cdr["call_status"].as_str(),
            cdr["ended_reason"].as_str()
        ),
        (Some("102"), Some("answered"), Some("caller_disconnect"))
    );
    let t = target_summary(&cdr);
    assert_eq!(t[0][3], "redirected", "{cdr}");
    assert_eq!(t[1], json!(["103", "answered", 0, "caller_disconnect"]));
    let update = bench
        .json()
        .into_iter()
        .find(|e| e["event_type"] == "call_update_info")
        .expect("call_update_info names the new callee");
    assert_eq!(update["callee_display_name"], "Ann");
    assert!(bench.notices().is_empty());
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
                    ("noanswer", 0, "redirected"),
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

/// 102 redirects to 103, 103 back to 102: the second 302 is not
/// followed; the caller hears 480 and the CDR closes.
#[test]
fn a_redirect_loop_ends_cleanly() {
    let mut cast = Cast::new();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    cast.bench.register(&mut ann);
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    let a_call = bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    let b_call = bob.incoming(&invite);
    bench.send(
        bob.peer,
        &redirect(bob, &b_call, &invite, &format!("sip:103@{DOMAIN}")),
    );
    let invite = bench.take_one(ann.peer);
    let c_call = ann.incoming(&invite);
    bench.send(
        ann.peer,
        &redirect(&ann, &c_call, &invite, &format!("sip:102@{DOMAIN}")),
    );
    let answer = bench
        .take(alice.peer)
        .into_iter()
        .find(|m| m.status().is_some_and(|s| s >= 300))
        .expect("a final answer");
    assert_eq!(answer.status(), Some(480));
    bench.send(alice.peer, &alice.ack_failure(&a_call, &answer));
    assert_eq!(
        bench.notices(),
        [RoutingNotice::RedirectNotFollowed {
            from: "103".into(),
            contact: format!("sip:102@{DOMAIN}"),
            why: NotFollowed::Loop
        }]
    );
    let cdr = bench.cdr();
    assert_eq!(
        (cdr["call_status"].as_str(), cdr["status_code"].as_str()),
        (Some("fail"), Some("480"))
    );
    let t = target_summary(&cdr);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0][3], "redirected");
    assert_eq!(t[1][2], 302, "{cdr}");
}

/// A redirect out of the tenant is not followed (no trunks yet).
#[test]
fn a_redirect_outside_the_tenant_is_a_failure() {
    let (mut cast, a_call, b_call, invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.send(
        bob.peer,
        &redirect(bob, &b_call, &invite, "sip:+15550100@carrier.example"),
    );
    let answer = bench
        .take(alice.peer)
        .into_iter()
        .find(|m| m.status().is_some_and(|s| s >= 300))
        .expect("a final answer");
    assert_eq!(answer.status(), Some(480));
    bench.send(alice.peer, &alice.ack_failure(&a_call, &answer));
    assert_eq!(
        bench.notices(),
        [RoutingNotice::RedirectNotFollowed {
            from: "102".into(),
            contact: "sip:+15550100@carrier.example".into(),
            why: NotFollowed::OutsideTenant
        }]
    );
    assert_eq!(bench.targets(), [("102".into(), None)]);
}
