//! Client transactions (RFC 3261 §17.1, RFC 6026) on a virtual clock: every
//! transmission and event is checked at the exact instant it happens.

use std::time::{Duration, Instant};

use sip::builder::ViaValue;
use sip::header::HeaderName;
use sip::transaction::{
    ClientTransaction, Input, KeyError, Output, State, TimerConfig, TransactionError,
    TransactionEvent,
};
use sip::transport::{Peer, Transport};
use sip::{Message, Method, RequestBuilder, ResponseBuilder};

const BRANCH: &str = "z9hG4bK776asdhds";

fn peer(transport: Transport) -> Peer {
    Peer::new(transport, "192.0.2.20:5060".parse().unwrap())
}

fn request(method: Method, transport: Transport) -> Message {
    let mut b = RequestBuilder::new(method.clone(), "sip:bob@biloxi.example.com")
        .header(
            HeaderName::Via,
            ViaValue {
                transport: transport.as_str(),
                sent_by: "pbx.example.com:5060",
                branch: BRANCH,
            },
        )
        .header(HeaderName::Route, "<sip:edge1.example.com;lr>")
        .header(HeaderName::Route, "<sip:edge2.example.com;lr>")
        .header(HeaderName::MaxForwards, 70)
        .header(
            HeaderName::From,
            "Alice <sip:alice@atlanta.example.com>;tag=1928301774",
        )
        .header(HeaderName::To, "Bob <sip:bob@biloxi.example.com>")
        .header(HeaderName::CallId, "a84b4c76e66710@pbx.example.com")
        .header(HeaderName::CSeq, format!("314159 {method}"));
    if method == Method::Invite {
        b = b.header(HeaderName::Contact, "<sip:alice@192.0.2.10:5060>");
    }
    b.build().unwrap()
}

fn reply(req: &Message, code: u16, tag: &str) -> Message {
    ResponseBuilder::reply(req, code)
        .to_tag(tag)
        .build()
        .unwrap()
}

fn drain(t: &mut ClientTransaction) -> Vec<Output> {
    std::iter::from_fn(|| t.poll_output()).collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What happened, by milliseconds since `t0`: `"tx INVITE"`, `"ev Timeout(B)"`.
fn describe(at: Duration, out: &Output) -> (u64, String) {
    let what = match out {
        Output::Transmit { message, .. } => match message.method() {
            Some(m) => format!("tx {m}"),
            None => format!("tx {}", message.status().unwrap_or(0)),
        },
        Output::Event(TransactionEvent::Timeout(t)) => format!("ev Timeout({t:?})"),
        Output::Event(TransactionEvent::Provisional(m)) => {
            format!("ev Provisional {}", m.status().unwrap())
        }
        Output::Event(TransactionEvent::Final(m)) => format!("ev Final {}", m.status().unwrap()),
        Output::Event(e) => format!("ev {e:?}"),
    };
    (at.as_millis() as u64, what)
}

/// Runs the transaction's timers until it has none left (or `until`),
/// recording every output.
fn run_timers(t: &mut ClientTransaction, t0: Instant, until: Duration) -> Vec<(u64, String)> {
    let mut log = Vec::new();
    while let Some(at) = t.poll_timeout() {
        if at > t0 + until {
            break;
        }
        t.handle_timeout(at);
        for out in drain(t) {
            log.push(describe(at - t0, &out));
        }
    }
    log
}

fn transmits_at(log: &[(u64, String)], what: &str) -> Vec<u64> {
    log.iter()
        .filter(|(_, w)| w == what)
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn invite_over_udp_retransmits_on_timer_a_doubling_until_timer_b() {
    let t0 = Instant::now();
    let mut t = ClientTransaction::new(
        t0,
        peer(Transport::Udp),
        request(Method::Invite, Transport::Udp),
        TimerConfig::default(),
    )
    .unwrap();
    assert_eq!(t.state(), State::Calling);
    let first = drain(&mut t);
    assert_eq!(first.len(), 1);
    assert!(
        matches!(&first[0], Output::Transmit { peer: p, message } if *p == peer(Transport::Udp) && message.method() == Some(&Method::Invite))
    );
    assert_eq!(t.poll_timeout(), Some(t0 + ms(500)));

    let log = run_timers(&mut t, t0, Duration::from_secs(100));
    // Intervals T1, 2·T1, 4·T1, 8·T1, 16·T1, 32·T1: no cap at T2 for Timer A.
    assert_eq!(
        transmits_at(&log, "tx INVITE"),
        [500, 1_500, 3_500, 7_500, 15_500, 31_500]
    );
    let tail: Vec<_> = log
        .iter()
        .filter(|(_, w)| w.starts_with("ev"))
        .cloned()
        .collect();
    assert_eq!(
        tail,
        [
            (32_000, "ev Timeout(B)".to_owned()),
            (32_000, "ev Terminated".to_owned())
        ]
    );
    assert_eq!(t.state(), State::Terminated);
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn invite_over_tcp_is_not_retransmitted_but_times_out() {
    let t0 = Instant::now();
    let mut t = ClientTransaction::new(
        t0,
        peer(Transport::Tcp),
        request(Method::Invite, Transport::Tcp),
        TimerConfig::default(),
    )
    .unwrap();
    assert_eq!(drain(&mut t).len(), 1);
    assert_eq!(t.poll_timeout(), Some(t0 + ms(32_000)));
    let log = run_timers(&mut t, t0, Duration::from_secs(100));
    assert_eq!(
        log,
        [
            (32_000, "ev Timeout(B)".to_owned()),
            (32_000, "ev Terminated".to_owned())
        ]
    );
}

#[test]
fn non_invite_over_udp_retransmits_on_timer_e_capped_at_t2_until_timer_f() {
    let t0 = Instant::now();
    let mut t = ClientTransaction::new(
        t0,
        peer(Transport::Udp),
        request(Method::Options, Transport::Udp),
        TimerConfig::default(),
    )
    .unwrap();
    assert_eq!(t.state(), State::Trying);
    assert_eq!(drain(&mut t).len(), 1);
    let log = run_timers(&mut t, t0, Duration::from_secs(100));
    // Intervals 500, 1000, 2000, then T2 = 4000 for ever.
    assert_eq!(
        transmits_at(&log, "tx OPTIONS"),
        [
            500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500
        ]
    );
    assert_eq!(transmits_at(&log, "ev Timeout(F)"), [32_000]);
    assert_eq!(log.last().unwrap(), &(32_000, "ev Terminated".to_owned()));
}

#[test]
fn non_invite_after_a_provisional_retransmits_every_t2() {
    let t0 = Instant::now();
    let req = request(Method::Options, Transport::Udp);
    let mut t = ClientTransaction::new(
        t0,
        peer(Transport::Udp),
        req.clone(),
        TimerConfig::default(),
    )
    .unwrap();
    drain(&mut t);
    t.handle_timeout(t0 + ms(500));
    assert_eq!(drain(&mut t).len(), 1);
    // The 100 arrives at 1000; the Timer E already armed (1500) still fires,
    // and every interval after it is T2.
    t.handle_input(t0 + ms(1_000), Input::Received(reply(&req, 100, "x")))
        .unwrap();
    assert_eq!(t.state(), State::Proceeding);
    let out = drain(&mut t);
    assert!(
        matches!(&out[..], [Output::Event(TransactionEvent::Provisional(m))] if m.status() == Some(100))
    );
    let log = run_timers(&mut t, t0, Duration::from_secs(100));
    assert_eq!(
        transmits_at(&log, "tx OPTIONS"),
        [1_500, 5_500, 9_500, 13_500, 17_500, 21_500, 25_500, 29_500]
    );
    assert_eq!(transmits_at(&log, "ev Timeout(F)"), [32_000]);
}

#[test]
fn non_invite_final_response_then_timer_k() {
    let t0 = Instant::now();
    let req = request(Method::Options, Transport::Udp);
    let mut t = ClientTransaction::new(
        t0,
        peer(Transport::Udp),
        req.clone(),
        TimerConfig::default(),
    )
    .unwrap();
    drain(&mut t);
    t.handle_input(t0 + ms(200), Input::Received(reply(&req, 200, "x")))
        .unwrap();
    assert_eq!(t.state(), State::Completed);
    let out = drain(&mut t);
    assert!(
        matches!(&out[..], [Output::Event(TransactionEvent::Final(m))] if m.status() == Some(200))
    );
    // Retransmissions of the final response are absorbed.
    t.handle_input(t0 + ms(700), Input::Received(reply(&req, 200, "x")))
        .unwrap();
    assert!(drain(&mut t).is_empty());
    // Timer K = T4 from the final response; no more retransmissions.
    assert_eq!(t.poll_timeout(), Some(t0 + ms(5_200)));
    let log = run_timers(&mut t, t0, Duration::from_secs(100));
    assert_eq!(log, [(5_200, "ev Terminated".to_owned())]);

    // Over TCP Timer K is zero: the final response ends the transaction.
    let req = request(Method::Options, Transport::Tcp);
    let mut t = ClientTransaction::new(
        t0,
        peer(Transport::Tcp),
        req.clone(),
        TimerConfig::default(),
    )
    .unwrap();
    drain(&mut t);
    t.handle_input(t0 + ms(200), Input::Received(reply(&req, 404, "x")))
        .unwrap();
    let out: Vec<_> = drain(&mut t).iter().map(|o| describe(ms(200), o)).collect();
    assert_eq!(
        out,
        [
            (200, "ev Final 404".to_owned()),
            (200, "ev Terminated".to_owned())
        ]
    );
    assert_eq!(t.state(), State::Terminated);
}

#[test]
fn invite_non_2xx_is_acked_by_the_transaction_and_absorbed_until_timer_d() {
    let t0 = Instant::now();
    let invite = request(Method::Invite, Transport::Udp);
    let mut t = ClientTransaction::new(
        t0,
        peer(Transport::Udp),
        invite.clone(),
        TimerConfig::default(),
    )
    .unwrap();
    drain(&mut t);
    t.handle_input(
        t0 + ms(100),
        Input::Received(ResponseBuilder::reply(&invite, 100).build().unwrap()),
    )
    .unwrap();
    assert_eq!(t.state(), State::Proceeding);
    assert_eq!(drain(&mut t).len(), 1);
    // Proceeding: neither Timer A nor Timer B runs.
    assert_eq!(t.poll_timeout(), None);

    let busy = reply(&invite, 486, "b0b");
    t.handle_input(t0 + ms(2_000), Input::Received(busy.clone()))
        .unwrap();
    assert_eq!(t.state(), State::Completed);
    let out = drain(&mut t);
    assert_eq!(out.len(), 2);
    let Output::Transmit {
        peer: p,
        message: ack,
    } = &out[0]
    else {
        panic!("expected the ACK first: {out:?}");
    };
    assert!(
        matches!(&out[1], Output::Event(TransactionEvent::Final(m)) if m.status() == Some(486))
    );
    assert_eq!(*p, peer(Transport::Udp));

    // §17.1.1.3.
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.request_uri_str(), invite.request_uri_str());
    assert_eq!(
        ack.header_lines(HeaderName::Via).collect::<Vec<_>>(),
        [invite.header(HeaderName::Via).unwrap()]
    );
    assert_eq!(ack.via().unwrap().branch(), Some(BRANCH));
    assert_eq!(
        ack.header_lines(HeaderName::Route).collect::<Vec<_>>(),
        invite.header_lines(HeaderName::Route).collect::<Vec<_>>()
    );
    assert_eq!(
        ack.header(HeaderName::From),
        invite.header(HeaderName::From)
    );
    assert_eq!(ack.header(HeaderName::To), busy.header(HeaderName::To));
    assert_eq!(ack.to().unwrap().tag(), Some("b0b"));
    assert_eq!(ack.call_id().unwrap(), invite.call_id().unwrap());
    let cseq = ack.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (314159, Method::Ack));
    assert_eq!(ack.max_forwards().unwrap(), Some(70));
    assert!(ack.header(HeaderName::Contact).is_none());
    assert!(ack.body().is_empty());

    // The 486 again: our ACK was lost. The ACK goes again, the TU hears nothing.
    t.handle_input(t0 + ms(2_500), Input::Received(busy.clone()))
        .unwrap();
    let out = drain(&mut t);
    assert!(
        matches!(&out[..], [Output::Transmit { message, .. }] if message.as_bytes() == ack.as_bytes())
    );
    // Timer D: 32 s after the first final response.
    assert_eq!(t.poll_timeout(), Some(t0 + ms(34_000)));
    let log = run_timers(&mut t, t0, Duration::from_secs(100));
    assert_eq!(log, [(34_000, "ev Terminated".to_owned())]);
}

#[test]
fn invite_non_2xx_over_tcp_ends_at_once() {
    let t0 = Instant::now();
    let invite = request(Method::Invite, Transport::Tcp);
    let mut t = ClientTransaction::new(
        t0,
        peer(Transport::Tcp),
        invite.clone(),
        TimerConfig::default(),
    )
    .unwrap();
    drain(&mut t);
    t.handle_input(t0 + ms(40), Input::Received(reply(&invite, 603, "x")))
        .unwrap();
    let out: Vec<_> = drain(&mut t).iter().map(|o| describe(ms(40), o)).collect();
    assert_eq!(
        out,
        [
            (40, "tx ACK".to_owned()),
            (40, "ev Final 603".to_owned()),
            (40, "ev Terminated".to_owned())
        ]
    );
}

#[test]
fn invite_2xx_moves_to_accepted_passes_every_2xx_up_until_timer_m() {
    let t0 = Instant::now();
    let invite = request(Method::Invite, Transport::Udp);
    let mut t = ClientTransaction::new(
        t0,
        peer(Transport::Udp),
        invite.clone(),
        TimerConfig::default(),
    )
    .unwrap();
    drain(&mut t);
    t.handle_input(t0 + ms(100), Input::Received(reply(&invite, 180, "fork1")))
        .unwrap();
    t.handle_input(t0 + ms(150), Input::Received(reply(&invite, 180, "fork1")))
        .unwrap();
    let out: Vec<_> = drain(&mut t).iter().map(|o| describe(ms(100), o)).collect();
    assert_eq!(out.len(), 2, "every provisional goes up: {out:?}");

    let ok = reply(&invite, 200, "fork1");
    t.handle_input(t0 + ms(3_000), Input::Received(ok.clone()))
        .unwrap();
    assert_eq!(t.state(), State::Accepted);
    let out = drain(&mut t);
    // No ACK from the transaction for a 2xx: that is the TU's (dialog) job.
    assert!(
        matches!(&out[..], [Output::Event(TransactionEvent::Final(m))] if m.status() == Some(200))
    );
    // A retransmission and a second fork both go up; a late non-2xx does not.
    t.handle_input(t0 + ms(3_500), Input::Received(ok)).unwrap();
    t.handle_input(
        t0 + ms(3_600),
        Input::Received(reply(&invite, 200, "fork2")),
    )
    .unwrap();
    t.handle_input(
        t0 + ms(3_700),
        Input::Received(reply(&invite, 486, "fork3")),
    )
    .unwrap();
    t.handle_input(
        t0 + ms(3_800),
        Input::Received(reply(&invite, 180, "fork3")),
    )
    .unwrap();
    let tags: Vec<_> = drain(&mut t)
        .into_iter()
        .map(|o| match o {
            Output::Event(TransactionEvent::Final(m)) => m.to().unwrap().tag().unwrap().to_owned(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(tags, ["fork1", "fork2"]);
    // Timer M = 64·T1 from the first 2xx.
    let log = run_timers(&mut t, t0, Duration::from_secs(100));
    assert_eq!(log, [(35_000, "ev Terminated".to_owned())]);
}

#[test]
fn transport_error_ends_the_transaction() {
    let t0 = Instant::now();
    let mut t = ClientTransaction::new(
        t0,
        peer(Transport::Tcp),
        request(Method::Invite, Transport::Tcp),
        TimerConfig::default(),
    )
    .unwrap();
    drain(&mut t);
    t.handle_input(t0 + ms(5), Input::TransportError).unwrap();
    let out: Vec<_> = drain(&mut t).iter().map(|o| describe(ms(5), o)).collect();
    assert_eq!(
        out,
        [
            (5, "ev TransportError".to_owned()),
            (5, "ev Terminated".to_owned())
        ]
    );
    assert_eq!(t.poll_timeout(), None);
    // Nothing after the end.
    t.handle_input(t0 + ms(6), Input::TransportError).unwrap();
    assert!(drain(&mut t).is_empty());
}

#[test]
fn refused_requests_and_inputs() {
    let t0 = Instant::now();
    let cfg = TimerConfig::default();
    let ack = RequestBuilder::new(Method::Ack, "sip:bob@biloxi.example.com")
        .header(
            HeaderName::Via,
            "SIP/2.0/UDP pbx.example.com;branch=z9hG4bKack1",
        )
        .build()
        .unwrap();
    assert_eq!(
        ClientTransaction::new(t0, peer(Transport::Udp), ack, cfg).unwrap_err(),
        TransactionError::Key(KeyError::AckIsNotATransaction)
    );
    let legacy = Message::parse(
        String::from_utf8(request(Method::Options, Transport::Udp).as_bytes().to_vec())
            .unwrap()
            .replace(BRANCH, "z9hG4bK")
            .into_bytes(),
    )
    .unwrap();
    assert_eq!(
        ClientTransaction::new(t0, peer(Transport::Udp), legacy, cfg).unwrap_err(),
        TransactionError::Key(KeyError::NotRfc3261Branch("z9hG4bK".into()))
    );
    let req = request(Method::Options, Transport::Udp);
    let mut t = ClientTransaction::new(t0, peer(Transport::Udp), req.clone(), cfg).unwrap();
    assert_eq!(
        t.handle_input(t0, Input::Respond(reply(&req, 200, "x"))),
        Err(TransactionError::NotAServerTransaction)
    );
    assert_eq!(t.poll_timeout(), Some(t0 + ms(500)));
}

#[test]
fn a_cancelled_invite_gives_up_64_t1_after_the_cancel() {
    let t0 = Instant::now();
    let invite = request(Method::Invite, Transport::Udp);
    let mut t = ClientTransaction::new(
        t0,
        peer(Transport::Udp),
        invite.clone(),
        TimerConfig::default(),
    )
    .unwrap();
    drain(&mut t);
    // §9.1: no CANCEL before a provisional response.
    assert_eq!(
        t.handle_input(t0 + ms(100), Input::CancelSent),
        Err(TransactionError::NotCancellable {
            state: State::Calling
        })
    );
    t.handle_input(t0 + ms(200), Input::Received(reply(&invite, 180, "b")))
        .unwrap();
    drain(&mut t);
    assert_eq!(t.poll_timeout(), None);
    t.handle_input(t0 + ms(10_000), Input::CancelSent).unwrap();
    assert_eq!(t.poll_timeout(), Some(t0 + ms(42_000)));
    // Another provisional or another CANCEL does not move the guard.
    t.handle_input(t0 + ms(11_000), Input::Received(reply(&invite, 183, "b")))
        .unwrap();
    t.handle_input(t0 + ms(12_000), Input::CancelSent).unwrap();
    assert_eq!(drain(&mut t).len(), 1);
    assert_eq!(t.poll_timeout(), Some(t0 + ms(42_000)));
    let log = run_timers(&mut t, t0, Duration::from_secs(100));
    assert_eq!(
        log,
        [
            (42_000, "ev Timeout(B)".to_owned()),
            (42_000, "ev Terminated".to_owned())
        ]
    );
}

/// Issue 18 (memory per call): once the final response is in, the
/// transaction lingers only to absorb retransmissions and no longer holds
/// the request; a non-2xx's retransmission still gets the same ACK.
#[test]
fn the_request_is_dropped_once_the_final_response_arrives() {
    let t0 = Instant::now();
    let config = TimerConfig::default();

    let invite = request(Method::Invite, Transport::Udp);
    let mut t = ClientTransaction::new(t0, peer(Transport::Udp), invite.clone(), config).unwrap();
    assert!(t.request().is_some());
    t.handle_input(t0 + ms(10), Input::Received(reply(&invite, 180, "b1")))
        .unwrap();
    assert!(t.request().is_some(), "Proceeding: a CANCEL needs it");
    t.handle_input(t0 + ms(20), Input::Received(reply(&invite, 200, "b1")))
        .unwrap();
    assert_eq!(t.state(), State::Accepted);
    assert!(t.request().is_none());

    let mut t = ClientTransaction::new(t0, peer(Transport::Udp), invite.clone(), config).unwrap();
    let busy = reply(&invite, 486, "b2");
    t.handle_input(t0 + ms(10), Input::Received(busy.clone()))
        .unwrap();
    assert_eq!(t.state(), State::Completed);
    assert!(t.request().is_none());
    let first_ack = drain(&mut t).into_iter().find_map(|o| match o {
        Output::Transmit { message, .. } if message.method() == Some(&Method::Ack) => {
            Some(message.as_bytes().clone())
        }
        _ => None,
    });
    t.handle_input(t0 + ms(600), Input::Received(busy)).unwrap();
    let again = drain(&mut t).into_iter().find_map(|o| match o {
        Output::Transmit { message, .. } => Some(message.as_bytes().clone()),
        _ => None,
    });
    assert!(first_ack.is_some());
    assert_eq!(again, first_ack, "the same ACK for the retransmitted 486");
}
