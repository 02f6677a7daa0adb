//! The transaction layer's defences (module `sip::transaction`,
//! "Amplification" and "Caps"): what a spoofed UDP source can draw from a
//! server transaction, and how many it can hold.

use std::time::{Duration, Instant};

use sip::builder::ViaValue;
use sip::header::HeaderName;
use sip::transaction::{
    Limit, Output, REPLY_FLOOR, Received, TimerConfig, TransactionLimits, Transactions,
    overload_response, reply_fits,
};
use sip::transport::{Peer, Transport};
use sip::{Message, Method, RequestBuilder, ResponseBuilder};

fn peer(transport: Transport, ip: &str) -> Peer {
    Peer::new(transport, format!("{ip}:5060").parse().unwrap())
}

/// An INVITE with `vias` Via headers, each padded to about `via_len` bytes.
fn invite(branch: &str, vias: usize, via_len: usize) -> Message {
    let mut b = RequestBuilder::new(Method::Invite, "sip:200@pbx.example.com").header(
        HeaderName::Via,
        ViaValue {
            transport: "UDP",
            sent_by: "10.0.0.7:5060",
            branch,
        },
    );
    for i in 1..vias {
        let pad = "p".repeat(via_len.saturating_sub(60));
        b = b.header(
            HeaderName::Via,
            format!(
                "SIP/2.0/UDP 10.9.{}.{}:5060;branch=z9hG4bK{i}{pad}",
                i / 250,
                i % 250
            ),
        );
    }
    b.header(HeaderName::From, "<sip:100@pbx.example.com>;tag=ph1")
        .header(HeaderName::To, "<sip:200@pbx.example.com>")
        .header(HeaderName::CallId, format!("{branch}@10.0.0.7"))
        .header(HeaderName::CSeq, "1 INVITE")
        .header(HeaderName::Contact, "<sip:100@10.0.0.7:5060>")
        .build()
        .unwrap()
}

/// A challenge the way the engine builds one: every Via copied, plus two
/// `Proxy-Authenticate`s.
fn challenge(req: &Message) -> Message {
    ResponseBuilder::reply(req, 407)
        .to_tag("pbx1")
        .header(
            HeaderName::ProxyAuthenticate,
            format!(
                "Digest realm=\"pbx.example.com\", nonce=\"{}\", algorithm=SHA-256, qop=\"auth\"",
                "n".repeat(64)
            ),
        )
        .header(
            HeaderName::ProxyAuthenticate,
            format!(
                "Digest realm=\"pbx.example.com\", nonce=\"{}\", algorithm=MD5, qop=\"auth\"",
                "n".repeat(64)
            ),
        )
        .build()
        .unwrap()
}

fn sent_bytes(txns: &mut Transactions) -> (Vec<u16>, usize) {
    let mut codes = Vec::new();
    let mut bytes = 0;
    while let Some((_, out)) = txns.poll_output() {
        if let Output::Transmit { message, .. } = out {
            codes.push(message.status().unwrap_or(0));
            bytes += message.as_bytes().len();
        }
    }
    (codes, bytes)
}

fn new_request(r: Received) -> sip::transaction::TransactionId {
    match r {
        Received::Request { id, .. } => id,
        other => panic!("expected a new request, got {other:?}"),
    }
}

#[test]
fn a_challenge_goes_alone_once_and_is_not_retransmitted_on_timer_g() {
    let t0 = Instant::now();
    let mut txns = Transactions::new(TimerConfig::default());
    let req = invite("z9hG4bKa", 1, 0);
    let from = peer(Transport::Udp, "198.51.100.7");
    let id = new_request(txns.receive(t0, from, req.clone()).unwrap());
    // The TU challenges before the table is polled: no 100 Trying.
    txns.respond(t0, id, challenge(&req)).unwrap();
    assert_eq!(sent_bytes(&mut txns).0, [407]);
    // Nothing on Timer G: only Timer H is left, 64·T1 later.
    assert_eq!(txns.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    // The client retransmits its INVITE: each copy gets the 407 again.
    txns.receive(t0 + Duration::from_millis(500), from, req.clone())
        .unwrap();
    assert_eq!(sent_bytes(&mut txns).0, [407]);
    txns.handle_timeout(t0 + Duration::from_secs(32));
    assert_eq!(sent_bytes(&mut txns).0, Vec::<u16>::new());
    assert!(txns.is_empty());
}

#[test]
fn an_invite_the_tu_takes_on_gets_100_and_its_rejection_is_retransmitted() {
    let t0 = Instant::now();
    let mut txns = Transactions::new(TimerConfig::default());
    let req = invite("z9hG4bKb", 1, 0);
    let from = peer(Transport::Udp, "198.51.100.7");
    let id = new_request(txns.receive(t0, from, req.clone()).unwrap());
    assert_eq!(sent_bytes(&mut txns).0, [100]);
    let busy = ResponseBuilder::reply(&req, 486)
        .to_tag("pbx2")
        .build()
        .unwrap();
    txns.respond(t0 + Duration::from_secs(1), id, busy).unwrap();
    assert_eq!(sent_bytes(&mut txns).0, [486]);
    // After a provisional the client waits quietly: Timer G resends.
    assert_eq!(txns.poll_timeout(), Some(t0 + Duration::from_millis(1_500)));
}

#[test]
fn a_huge_forged_invite_draws_no_more_bytes_than_it_carries() {
    let t0 = Instant::now();
    let mut txns = Transactions::new(TimerConfig::default());
    let from = peer(Transport::Udp, "198.51.100.7");
    // 240 Vias, about 64 KB: the 407 copies them all and adds challenges.
    let req = invite("z9hG4bKc", 240, 268);
    let received = req.as_bytes().len();
    assert!(received > 60_000, "{received}");
    let id = new_request(txns.receive(t0, from, req.clone()).unwrap());
    let refusal = challenge(&req);
    assert!(
        refusal.as_bytes().len() > received,
        "the test needs a larger 407"
    );
    txns.respond(t0, id, refusal).unwrap();
    let (codes, sent) = sent_bytes(&mut txns);
    assert_eq!((codes.as_slice(), sent), ([].as_slice(), 0));
    assert_eq!(txns.stats().suppressed, 1);
    // Retransmissions get nothing either, and nothing fires on timers.
    txns.receive(t0 + Duration::from_millis(500), from, req)
        .unwrap();
    txns.handle_timeout(t0 + Duration::from_secs(40));
    assert_eq!(sent_bytes(&mut txns).1, 0);
    assert!(txns.is_empty());
}

#[test]
fn a_small_forged_retransmission_does_not_draw_a_large_response() {
    let t0 = Instant::now();
    let mut txns = Transactions::new(TimerConfig::default());
    let from = peer(Transport::Udp, "198.51.100.7");
    let big = invite("z9hG4bKd", 40, 256);
    let id = new_request(txns.receive(t0, from, big.clone()).unwrap());
    // A rejection within the big request's budget goes out.
    let busy = ResponseBuilder::reply(&big, 486)
        .to_tag("pbx3")
        .build()
        .unwrap();
    let busy_len = busy.as_bytes().len();
    assert!(busy_len > REPLY_FLOOR);
    txns.respond(t0, id, busy).unwrap();
    assert_eq!(sent_bytes(&mut txns).0, [486]);
    // The same key in a 1-Via copy: the 486 would be an amplifier.
    let small = invite("z9hG4bKd", 1, 0);
    assert!(small.as_bytes().len() < REPLY_FLOOR);
    assert!(matches!(
        txns.receive(t0 + Duration::from_millis(100), from, small).unwrap(),
        Received::Existing(i) if i == id
    ));
    assert_eq!(sent_bytes(&mut txns).1, 0);
    // The real retransmission is answered.
    txns.receive(t0 + Duration::from_millis(200), from, big)
        .unwrap();
    assert_eq!(sent_bytes(&mut txns).1, busy_len);
}

#[test]
fn reliable_transports_and_small_replies_are_not_budgeted() {
    assert!(reply_fits(Transport::Tcp, 100, 100_000));
    assert!(reply_fits(Transport::Tls, 100, 100_000));
    assert!(reply_fits(Transport::Udp, 300, REPLY_FLOOR));
    assert!(!reply_fits(Transport::Udp, 300, REPLY_FLOOR + 1));
    assert!(reply_fits(Transport::Udp, 5_000, 5_000));
    assert!(!reply_fits(Transport::Udp, 5_000, 5_001));
}

#[test]
fn server_transactions_are_capped_per_source_and_in_total() {
    let t0 = Instant::now();
    let limits = TransactionLimits {
        max_server: 5,
        max_server_per_source: 3,
        retry_after: Duration::from_secs(7),
    };
    let mut txns = Transactions::with_limits(TimerConfig::default(), limits);
    let a = peer(Transport::Udp, "198.51.100.7");
    for n in 0..3 {
        new_request(
            txns.receive(t0, a, invite(&format!("z9hG4bKa{n}"), 1, 0))
                .unwrap(),
        );
    }
    let fourth = invite("z9hG4bKa3", 1, 0);
    let Received::Overloaded {
        request,
        limit: Limit::PerSource,
        retry_after,
    } = txns.receive(t0, a, fourth.clone()).unwrap()
    else {
        panic!("the fourth from one source is refused");
    };
    assert_eq!(txns.len(), 3);
    let r = overload_response(&request, "t1", retry_after, a.transport).unwrap();
    assert_eq!(r.status(), Some(503));
    assert_eq!(r.header(HeaderName::RetryAfter), Some("7"));
    assert!(r.to().unwrap().tag().is_some());
    // An IPv6 source counts by /64: another address of it shares the cap.
    let v6a = Peer::new(Transport::Udp, "[2001:db8:1:2::1]:5060".parse().unwrap());
    let v6b = Peer::new(Transport::Udp, "[2001:db8:1:2::99]:5060".parse().unwrap());
    new_request(txns.receive(t0, v6a, invite("z9hG4bKv0", 1, 0)).unwrap());
    new_request(txns.receive(t0, v6b, invite("z9hG4bKv1", 1, 0)).unwrap());
    // Five in all: another source is refused by the total.
    let b = peer(Transport::Udp, "203.0.113.9");
    assert!(matches!(
        txns.receive(t0, b, invite("z9hG4bKb0", 1, 0)).unwrap(),
        Received::Overloaded {
            limit: Limit::Total,
            ..
        }
    ));
    let stats = txns.stats();
    assert_eq!(
        (stats.server, stats.refused_per_source, stats.refused_total),
        (5, 1, 1)
    );
    // Retransmissions of held requests still reach their transactions.
    assert!(matches!(
        txns.receive(t0, a, invite("z9hG4bKa0", 1, 0)).unwrap(),
        Received::Existing(_)
    ));
}

#[test]
fn ended_transactions_free_their_source_share() {
    let t0 = Instant::now();
    let limits = TransactionLimits {
        max_server: 100,
        max_server_per_source: 1,
        retry_after: Duration::from_secs(5),
    };
    let mut txns = Transactions::with_limits(TimerConfig::default(), limits);
    let a = peer(Transport::Tcp, "198.51.100.7");
    let first = invite("z9hG4bKe0", 1, 0);
    let id = new_request(txns.receive(t0, a, first.clone()).unwrap());
    assert!(matches!(
        txns.receive(t0, a, invite("z9hG4bKe1", 1, 0)).unwrap(),
        Received::Overloaded { .. }
    ));
    // A 2xx over TCP ends in Accepted after Timer L; a 486 after the ACK.
    let busy = ResponseBuilder::reply(&first, 486)
        .to_tag("x")
        .build()
        .unwrap();
    txns.respond(t0, id, busy.clone()).unwrap();
    let ack = sip::transaction::ack_for_failure(&first, &busy).unwrap();
    txns.receive(t0, a, ack).unwrap();
    sent_bytes(&mut txns);
    assert!(txns.is_empty());
    new_request(txns.receive(t0, a, invite("z9hG4bKe2", 1, 0)).unwrap());
}
