//! Server transactions (RFC 3261 §17.2, RFC 6026) on a virtual clock.

use std::time::{Duration, Instant};

use sip::builder::ViaValue;
use sip::header::HeaderName;
use sip::transaction::{
    Input, Output, ServerTransaction, State, TimerConfig, TransactionError, TransactionEvent,
    ack_for_failure,
};
use sip::transport::{Peer, Transport};
use sip::{Message, Method, RequestBuilder, ResponseBuilder};

fn peer(transport: Transport) -> Peer {
    Peer::new(transport, "198.51.100.7:41234".parse().unwrap())
}

fn request(method: Method) -> Message {
    let mut b = RequestBuilder::new(method.clone(), "sip:200@pbx.example.com")
        .header(
            HeaderName::Via,
            ViaValue {
                transport: "UDP",
                sent_by: "10.0.0.7:5060",
                branch: "z9hG4bKphone1",
            },
        )
        .header(HeaderName::MaxForwards, 70)
        .header(HeaderName::From, "<sip:100@pbx.example.com>;tag=ph1")
        .header(HeaderName::To, "<sip:200@pbx.example.com>")
        .header(HeaderName::CallId, "call-1@10.0.0.7")
        .header(HeaderName::CSeq, format!("1 {method}"))
        .header(HeaderName::Timestamp, "54");
    if method == Method::Invite {
        b = b.header(HeaderName::Contact, "<sip:100@10.0.0.7:5060>");
    }
    b.build().unwrap()
}

fn reply(req: &Message, code: u16) -> Message {
    ResponseBuilder::reply(req, code)
        .to_tag("pbx1")
        .build()
        .unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn describe(out: &Output) -> String {
    match out {
        Output::Transmit { message, .. } => match message.method() {
            Some(m) => format!("tx {m}"),
            None => format!("tx {}", message.status().unwrap_or(0)),
        },
        Output::Event(TransactionEvent::Timeout(t)) => format!("ev Timeout({t:?})"),
        Output::Event(TransactionEvent::Ack(_)) => "ev Ack".to_owned(),
        Output::Event(e) => format!("ev {e:?}"),
    }
}

fn drain(t: &mut ServerTransaction) -> Vec<String> {
    std::iter::from_fn(|| t.poll_output())
        .map(|o| describe(&o))
        .collect()
}

/// Runs the timers up to `until` (or until none is left).
fn run_timers(t: &mut ServerTransaction, t0: Instant, until: Duration) -> Vec<(u64, String)> {
    let mut log = Vec::new();
    while let Some(at) = t.poll_timeout() {
        if at > t0 + until {
            break;
        }
        t.handle_timeout(at);
        for what in drain(t) {
            log.push(((at - t0).as_millis() as u64, what));
        }
    }
    log
}

fn times(log: &[(u64, String)], what: &str) -> Vec<u64> {
    log.iter()
        .filter(|(_, w)| w == what)
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn invite_is_answered_100_at_once_and_retransmissions_get_the_last_provisional() {
    let t0 = Instant::now();
    let invite = request(Method::Invite);
    let mut t =
        ServerTransaction::new(peer(Transport::Udp), &invite, TimerConfig::default()).unwrap();
    assert_eq!(t.state(), State::Proceeding);
    let out: Vec<_> = std::iter::from_fn(|| t.poll_output()).collect();
    let [
        Output::Transmit {
            peer: p,
            message: trying,
        },
    ] = &out[..]
    else {
        panic!("expected the 100: {out:?}");
    };
    // Back to where the request came from, not to the Via's 10.0.0.7.
    assert_eq!(*p, peer(Transport::Udp));
    assert_eq!(trying.status(), Some(100));
    assert_eq!(trying.to().unwrap().tag(), None);
    assert_eq!(trying.header(HeaderName::Timestamp), Some("54"));
    // No timer runs in Proceeding: the TU owns the pace.
    assert_eq!(t.poll_timeout(), None);

    t.handle_input(t0 + ms(500), Input::Received(invite.clone()))
        .unwrap();
    assert_eq!(drain(&mut t), ["tx 100"]);
    t.handle_input(t0 + ms(600), Input::Respond(reply(&invite, 180)))
        .unwrap();
    assert_eq!(drain(&mut t), ["tx 180"]);
    t.handle_input(t0 + ms(1_500), Input::Received(invite.clone()))
        .unwrap();
    assert_eq!(drain(&mut t), ["tx 180"]);
    assert_eq!(t.last_response().unwrap().status(), Some(180));
}

#[test]
fn invite_non_2xx_is_retransmitted_on_timer_g_until_timer_h() {
    let t0 = Instant::now();
    let invite = request(Method::Invite);
    let mut t =
        ServerTransaction::new(peer(Transport::Udp), &invite, TimerConfig::default()).unwrap();
    drain(&mut t);
    t.handle_input(t0 + ms(1_000), Input::Respond(reply(&invite, 486)))
        .unwrap();
    assert_eq!(t.state(), State::Completed);
    assert_eq!(drain(&mut t), ["tx 486"]);
    let log = run_timers(&mut t, t0, Duration::from_secs(100));
    // Timer G: T1, 2·T1, 4·T1, then T2, counted from the 486 at 1000.
    assert_eq!(
        times(&log, "tx 486"),
        [
            1_500, 2_500, 4_500, 8_500, 12_500, 16_500, 20_500, 24_500, 28_500, 32_500
        ]
    );
    // Timer H: 64·T1 after the 486, and the TU is told.
    assert_eq!(times(&log, "ev Timeout(H)"), [33_000]);
    assert_eq!(log.last().unwrap(), &(33_000, "ev Terminated".to_owned()));
}

#[test]
fn invite_non_2xx_ack_confirms_then_timer_i() {
    let t0 = Instant::now();
    let invite = request(Method::Invite);
    let mut t =
        ServerTransaction::new(peer(Transport::Udp), &invite, TimerConfig::default()).unwrap();
    drain(&mut t);
    let busy = reply(&invite, 486);
    t.handle_input(t0 + ms(1_000), Input::Respond(busy.clone()))
        .unwrap();
    drain(&mut t);
    // The INVITE again while Completed: the 486 again.
    t.handle_input(t0 + ms(1_200), Input::Received(invite.clone()))
        .unwrap();
    assert_eq!(drain(&mut t), ["tx 486"]);
    let log = run_timers(&mut t, t0, ms(2_000));
    assert_eq!(log, [(1_500, "tx 486".to_owned())]);

    let ack = ack_for_failure(&invite, &busy).unwrap();
    t.handle_input(t0 + ms(2_100), Input::Received(ack.clone()))
        .unwrap();
    assert_eq!(t.state(), State::Confirmed);
    // Absorbed: the TU never sees the ACK for its non-2xx.
    assert!(drain(&mut t).is_empty());
    t.handle_input(t0 + ms(2_200), Input::Received(ack))
        .unwrap();
    t.handle_input(t0 + ms(2_300), Input::Received(invite))
        .unwrap();
    assert!(drain(&mut t).is_empty());
    // Timer I = T4 after the ACK; no Timer G any more.
    let log = run_timers(&mut t, t0, Duration::from_secs(100));
    assert_eq!(log, [(7_100, "ev Terminated".to_owned())]);
}

#[test]
fn invite_non_2xx_over_tcp() {
    let t0 = Instant::now();
    let invite = request(Method::Invite);
    let mut t =
        ServerTransaction::new(peer(Transport::Tcp), &invite, TimerConfig::default()).unwrap();
    drain(&mut t);
    let busy = reply(&invite, 480);
    t.handle_input(t0 + ms(1_000), Input::Respond(busy.clone()))
        .unwrap();
    drain(&mut t);
    // No Timer G on a reliable transport; Timer H still guards the ACK.
    assert_eq!(t.poll_timeout(), Some(t0 + ms(33_000)));
    // Timer I is zero: the ACK ends the transaction.
    t.handle_input(
        t0 + ms(1_050),
        Input::Received(ack_for_failure(&invite, &busy).unwrap()),
    )
    .unwrap();
    assert_eq!(drain(&mut t), ["ev Terminated"]);
    assert_eq!(t.state(), State::Terminated);
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn invite_2xx_moves_to_accepted_absorbs_retransmissions_and_passes_the_ack_up_until_timer_l() {
    let t0 = Instant::now();
    let invite = request(Method::Invite);
    let mut t =
        ServerTransaction::new(peer(Transport::Udp), &invite, TimerConfig::default()).unwrap();
    drain(&mut t);
    let ok = reply(&invite, 200);
    t.handle_input(t0 + ms(4_000), Input::Respond(ok.clone()))
        .unwrap();
    assert_eq!(t.state(), State::Accepted);
    assert_eq!(drain(&mut t), ["tx 200"]);
    // The transaction does not retransmit a 2xx: only Timer L runs.
    assert_eq!(t.poll_timeout(), Some(t0 + ms(36_000)));
    // An INVITE retransmission is absorbed (RFC 6026 §7.1), not a new call.
    t.handle_input(t0 + ms(4_100), Input::Received(invite.clone()))
        .unwrap();
    assert!(drain(&mut t).is_empty());
    // The TU's own 2xx retransmissions go out.
    t.handle_input(t0 + ms(4_500), Input::Respond(ok)).unwrap();
    assert_eq!(drain(&mut t), ["tx 200"]);
    // Not a provisional, not a non-2xx after a 2xx.
    assert_eq!(
        t.handle_input(t0 + ms(4_600), Input::Respond(reply(&invite, 180))),
        Err(TransactionError::ResponseNotAllowed {
            status: 180,
            state: State::Accepted
        })
    );
    assert!(
        t.handle_input(t0 + ms(4_600), Input::Respond(reply(&invite, 500)))
            .is_err()
    );
    // An ACK that matched this transaction (same branch) goes up, each copy.
    let ack = RequestBuilder::new(Method::Ack, "sip:200@pbx.example.com")
        .header(HeaderName::Via, invite.header(HeaderName::Via).unwrap())
        .header(HeaderName::From, invite.header(HeaderName::From).unwrap())
        .header(HeaderName::To, "<sip:200@pbx.example.com>;tag=pbx1")
        .header(HeaderName::CallId, "call-1@10.0.0.7")
        .header(HeaderName::CSeq, "1 ACK")
        .build()
        .unwrap();
    t.handle_input(t0 + ms(4_700), Input::Received(ack.clone()))
        .unwrap();
    t.handle_input(t0 + ms(4_800), Input::Received(ack))
        .unwrap();
    assert_eq!(drain(&mut t), ["ev Ack", "ev Ack"]);
    assert_eq!(t.state(), State::Accepted);
    let log = run_timers(&mut t, t0, Duration::from_secs(100));
    assert_eq!(log, [(36_000, "ev Terminated".to_owned())]);
}

#[test]
fn non_invite_absorbs_then_retransmits_its_final_until_timer_j() {
    let t0 = Instant::now();
    let bye = request(Method::Bye);
    let mut t = ServerTransaction::new(peer(Transport::Udp), &bye, TimerConfig::default()).unwrap();
    assert_eq!(t.state(), State::Trying);
    // No automatic 100 for non-INVITE.
    assert!(drain(&mut t).is_empty());
    // Trying: nothing to send again yet.
    t.handle_input(t0 + ms(500), Input::Received(bye.clone()))
        .unwrap();
    assert!(drain(&mut t).is_empty());
    t.handle_input(t0 + ms(600), Input::Respond(reply(&bye, 200)))
        .unwrap();
    assert_eq!(t.state(), State::Completed);
    assert_eq!(drain(&mut t), ["tx 200"]);
    t.handle_input(t0 + ms(1_500), Input::Received(bye.clone()))
        .unwrap();
    assert_eq!(drain(&mut t), ["tx 200"]);
    // One final response only.
    assert_eq!(
        t.handle_input(t0 + ms(1_600), Input::Respond(reply(&bye, 500))),
        Err(TransactionError::ResponseNotAllowed {
            status: 500,
            state: State::Completed
        })
    );
    // Timer J = 64·T1 after the final response.
    let log = run_timers(&mut t, t0, Duration::from_secs(100));
    assert_eq!(log, [(32_600, "ev Terminated".to_owned())]);
    assert_eq!(
        t.handle_input(t0 + ms(40_000), Input::Respond(reply(&bye, 200))),
        Err(TransactionError::Terminated)
    );
}

#[test]
fn non_invite_provisional_then_final_over_tcp() {
    let t0 = Instant::now();
    let reg = request(Method::Register);
    let mut t = ServerTransaction::new(peer(Transport::Tcp), &reg, TimerConfig::default()).unwrap();
    t.handle_input(
        t0,
        Input::Respond(ResponseBuilder::reply(&reg, 100).build().unwrap()),
    )
    .unwrap();
    assert_eq!(t.state(), State::Proceeding);
    t.handle_input(t0 + ms(10), Input::Received(reg.clone()))
        .unwrap();
    assert_eq!(drain(&mut t), ["tx 100", "tx 100"]);
    // Timer J is zero on TCP.
    t.handle_input(t0 + ms(20), Input::Respond(reply(&reg, 200)))
        .unwrap();
    assert_eq!(drain(&mut t), ["tx 200", "ev Terminated"]);
}

#[test]
fn transport_errors() {
    let t0 = Instant::now();
    let invite = request(Method::Invite);
    // Proceeding (and Completed): the TU is told and the transaction ends.
    let mut t =
        ServerTransaction::new(peer(Transport::Tls), &invite, TimerConfig::default()).unwrap();
    drain(&mut t);
    t.handle_input(t0, Input::TransportError).unwrap();
    assert_eq!(drain(&mut t), ["ev TransportError", "ev Terminated"]);
    // Accepted: the TU is told, the transaction stays to absorb INVITEs.
    let mut t =
        ServerTransaction::new(peer(Transport::Tls), &invite, TimerConfig::default()).unwrap();
    t.handle_input(t0, Input::Respond(reply(&invite, 200)))
        .unwrap();
    drain(&mut t);
    t.handle_input(t0 + ms(1), Input::TransportError).unwrap();
    assert_eq!(drain(&mut t), ["ev TransportError"]);
    assert_eq!(t.state(), State::Accepted);
    // A response that is not one.
    assert_eq!(
        t.handle_input(t0, Input::Respond(invite.clone())),
        Err(TransactionError::NotAResponse)
    );
    // An ACK starts no transaction.
    let ack = ack_for_failure(&invite, &reply(&invite, 486)).unwrap();
    assert!(ServerTransaction::new(peer(Transport::Udp), &ack, TimerConfig::default()).is_err());
}

/// Issue 18 (memory per call): a transaction lingering to absorb
/// retransmissions keeps only what that needs. Completed keeps the final
/// response's bytes (and sends exactly them again), Accepted only the 2xx's
/// To tag, Confirmed nothing.
#[test]
fn lingering_transactions_keep_only_what_retransmissions_need() {
    let t0 = Instant::now();
    let config = TimerConfig::default();

    // Non-INVITE, Completed for Timer J: the same bytes on every copy.
    let bye = request(Method::Bye);
    let mut t = ServerTransaction::new(peer(Transport::Udp), &bye, config).unwrap();
    let ok = reply(&bye, 200);
    t.handle_input(t0, Input::Respond(ok.clone())).unwrap();
    drain(&mut t);
    assert_eq!(t.state(), State::Completed);
    assert_eq!(t.sent_to_tag(), Some("pbx1"));
    t.handle_input(t0 + ms(400), Input::Received(bye.clone()))
        .unwrap();
    let resent: Vec<_> = std::iter::from_fn(|| t.poll_output()).collect();
    match resent.as_slice() {
        [Output::Transmit { message, .. }] => assert_eq!(message.as_bytes(), ok.as_bytes()),
        other => panic!("{other:?}"),
    }

    // INVITE answered 2xx: Accepted keeps the tag, never the response.
    let invite = request(Method::Invite);
    let mut t = ServerTransaction::new(peer(Transport::Udp), &invite, config).unwrap();
    // The 100 Trying goes out (and is kept) at the first poll.
    drain(&mut t);
    assert_eq!(t.last_response().and_then(|r| r.status()), Some(100));
    t.handle_input(t0, Input::Respond(reply(&invite, 200)))
        .unwrap();
    drain(&mut t);
    assert_eq!(t.state(), State::Accepted);
    assert!(t.last_response().is_none());
    assert_eq!(t.sent_to_tag(), Some("pbx1"));

    // INVITE answered non-2xx, then ACKed: Confirmed keeps nothing.
    let mut t = ServerTransaction::new(peer(Transport::Udp), &invite, config).unwrap();
    let busy = reply(&invite, 486);
    t.handle_input(t0, Input::Respond(busy.clone())).unwrap();
    assert_eq!(
        t.last_response().map(|r| r.as_bytes().clone()),
        Some(busy.as_bytes().clone())
    );
    let ack = ack_for_failure(&invite, &busy).unwrap();
    t.handle_input(t0 + ms(100), Input::Received(ack)).unwrap();
    drain(&mut t);
    assert_eq!(t.state(), State::Confirmed);
    assert!(t.last_response().is_none());
    assert_eq!(t.sent_to_tag(), None);
}
