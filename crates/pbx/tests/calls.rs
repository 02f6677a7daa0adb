//! Call flows through the engine, message by message.

mod common;

use common::*;
use sip::{HeaderName, Method};

#[test]
fn answered_call_caller_hangs_up() {
    let Cast {
        mut bench,
        mut alice,
        mut bob,
    } = Cast::new();
    bench.at(-40);
    let mut a_call = bench.dial(&mut alice, "102");
    let invite = bench.take_one(bob.peer);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    let mut b_call = bob.incoming(&invite);
    bench.at(210);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 180, None));
    let ringing = bench.take_one(alice.peer);
    assert_eq!(ringing.status(), Some(180));
    bench.at(5870);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.body(), SDP_B.as_bytes());
    assert!(ok.header(HeaderName::XSessionId).is_some());
    bench.at(5900);
    let ack = alice.ack(&mut a_call, &ok, None);
    bench.send(alice.peer, &ack);
    let relayed_ack = bench.take_one(bob.peer);
    assert!(is(&relayed_ack, Method::Ack), "{}", relayed_ack.summary());
    b_call.cseq = 100;
    bench.at(65_500);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    let bye_ok = bench.take_one(alice.peer);
    assert_eq!(bye_ok.status(), Some(200));
    let bye_b = bench.take_one(bob.peer);
    assert!(is(&bye_b, Method::Bye), "{}", bye_b.summary());
    bench.send(bob.peer, &bob.respond(&b_call, &bye_b, 200, None));
    println!("{:#}", bench.cdr());
    println!("{:?}", bench.engine_events);
}
