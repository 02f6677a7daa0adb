//! Matching messages to transactions (RFC 3261 §17.1.3, §17.2.3, §9.2),
//! with RFC 4475's RFC 2543-era messages, through the `Transactions` table.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sip::builder::ViaValue;
use sip::header::HeaderName;
use sip::transaction::{
    KeyError, Output, Received, Side, State, TimerConfig, TransactionError, TransactionEvent,
    TransactionKey, Transactions, ack_for_failure, cancel_for,
};
use sip::transport::{Peer, Transport};
use sip::{Message, Method, RequestBuilder, ResponseBuilder};

fn rfc4475(name: &str) -> Message {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/rfc4475")
        .join(format!("{name}.dat"));
    Message::parse(std::fs::read(&p).unwrap()).unwrap()
}

fn phone() -> Peer {
    Peer::new(Transport::Udp, "198.51.100.7:5060".parse().unwrap())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn invite(branch: &str, sent_by: &str) -> Message {
    RequestBuilder::new(Method::Invite, "sip:bob@biloxi.example.com")
        .header(
            HeaderName::Via,
            ViaValue {
                transport: "UDP",
                sent_by,
                branch,
            },
        )
        .header(
            HeaderName::Via,
            "SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKupstream",
        )
        .header(HeaderName::Route, "<sip:edge.example.com;lr>")
        .header(HeaderName::MaxForwards, 69)
        .header(
            HeaderName::From,
            "Alice <sip:alice@atlanta.example.com>;tag=1928301774",
        )
        .header(HeaderName::To, "Bob <sip:bob@biloxi.example.com>")
        .header(
            HeaderName::CallId,
            "a84b4c76e66710@pc33.atlanta.example.com",
        )
        .header(HeaderName::CSeq, "314159 INVITE")
        .header(HeaderName::Contact, "<sip:alice@pc33.atlanta.example.com>")
        .build()
        .unwrap()
}

fn edit(m: &Message, from: &str, to: &str) -> Message {
    let text = String::from_utf8(m.as_bytes().to_vec()).unwrap();
    assert!(text.contains(from), "{from}");
    Message::parse(text.replacen(from, to, 1).into_bytes()).unwrap()
}

fn events(txns: &mut Transactions) -> Vec<String> {
    std::iter::from_fn(|| txns.poll_output())
        .map(|(_, out)| match out {
            Output::Transmit { message, .. } => match message.method() {
                Some(m) => format!("tx {m}"),
                None => format!("tx {}", message.status().unwrap()),
            },
            Output::Event(TransactionEvent::Ack(_)) => "ev Ack".to_owned(),
            Output::Event(TransactionEvent::Provisional(m)) => {
                format!("ev Provisional {}", m.status().unwrap())
            }
            Output::Event(TransactionEvent::Final(m)) => {
                format!("ev Final {}", m.status().unwrap())
            }
            Output::Event(e) => format!("ev {e:?}"),
        })
        .collect()
}

#[test]
fn server_keys_follow_branch_sent_by_and_method() {
    let inv = invite("z9hG4bK74bf9", "pc33.atlanta.example.com");
    let key = TransactionKey::server(&inv).unwrap();
    assert_eq!(key.side(), Side::Server);
    assert!(!key.is_rfc2543());
    // A retransmission, whatever else changed (here Max-Forwards).
    assert_eq!(
        TransactionKey::server(&edit(&inv, "Max-Forwards: 69", "Max-Forwards: 12")).unwrap(),
        key
    );
    // Host names compare case-insensitively.
    assert_eq!(
        TransactionKey::server(&edit(&inv, "pc33.atlanta", "PC33.Atlanta")).unwrap(),
        key
    );
    // Same branch from another sent-by: another transaction.
    assert_ne!(
        TransactionKey::server(&edit(
            &inv,
            "pc33.atlanta.example.com;",
            "pc34.atlanta.example.com;"
        ))
        .unwrap(),
        key
    );
    assert_ne!(
        TransactionKey::server(&edit(
            &inv,
            "atlanta.example.com;branch",
            "atlanta.example.com:5070;branch"
        ))
        .unwrap(),
        key
    );
    // Another branch: another transaction.
    assert_ne!(
        TransactionKey::server(&edit(&inv, "z9hG4bK74bf9", "z9hG4bK74bf8")).unwrap(),
        key
    );
    // The ACK for a non-2xx matches the INVITE; the CANCEL has its own
    // transaction and targets the INVITE's.
    let ack = ack_for_failure(
        &inv,
        &ResponseBuilder::reply(&inv, 486)
            .to_tag("t")
            .build()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(TransactionKey::server(&ack).unwrap(), key);
    let cancel = cancel_for(&inv).unwrap();
    assert_ne!(TransactionKey::server(&cancel).unwrap(), key);
    assert_eq!(TransactionKey::cancel_target(&cancel).unwrap(), key);
    assert_eq!(
        TransactionKey::cancel_target(&inv),
        Err(KeyError::NotACancel)
    );
}

#[test]
fn client_keys_follow_branch_and_cseq_method() {
    let inv = invite("z9hG4bK74bf9", "pc33.atlanta.example.com");
    let key = TransactionKey::client(&inv).unwrap();
    assert_eq!(key.side(), Side::Client);
    let ringing = ResponseBuilder::reply(&inv, 180)
        .to_tag("t")
        .build()
        .unwrap();
    assert_eq!(TransactionKey::response(&ringing).unwrap(), key);
    // The CANCEL shares the branch; its responses carry CSeq CANCEL.
    let cancel = cancel_for(&inv).unwrap();
    let cancel_ok = ResponseBuilder::reply(&cancel, 200)
        .to_tag("t")
        .build()
        .unwrap();
    assert_ne!(TransactionKey::response(&cancel_ok).unwrap(), key);
    assert_eq!(
        TransactionKey::response(&cancel_ok).unwrap(),
        TransactionKey::client(&cancel).unwrap()
    );
    // Server and client keys of one message never collide.
    assert_ne!(TransactionKey::server(&inv).unwrap(), key);
    assert_eq!(TransactionKey::response(&inv), Err(KeyError::NotAResponse));
    assert_eq!(TransactionKey::client(&ringing), Err(KeyError::NotARequest));
}

#[test]
fn badbranch_is_not_an_rfc3261_branch() {
    // RFC 4475 §3.1.2.4 (badbranch.dat): the branch is exactly the cookie.
    let m = rfc4475("badbranch");
    assert_eq!(m.via().unwrap().branch(), Some("z9hG4bK"));
    let key = TransactionKey::server(&m).unwrap();
    assert!(key.is_rfc2543(), "matched by the RFC 2543 rule");
    assert_eq!(
        TransactionKey::client(&m),
        Err(KeyError::NotRfc3261Branch("z9hG4bK".into()))
    );
    // It still works as a transaction: the retransmission is absorbed.
    let t0 = Instant::now();
    let mut txns = Transactions::new(TimerConfig::default());
    let Received::Request { id, .. } = txns.receive(t0, phone(), m.clone()).unwrap() else {
        panic!("a new request");
    };
    assert!(
        matches!(txns.receive(t0 + ms(500), phone(), m).unwrap(), Received::Existing(i) if i == id)
    );
    assert!(events(&mut txns).is_empty());
}

#[test]
fn rfc2543_invite_retransmission_ack_and_cancel() {
    // RFC 4475 §3.4.1 (inv2543.dat): no branch, no From tag.
    let inv = rfc4475("inv2543");
    assert_eq!(inv.via().unwrap().branch(), None);
    let key = TransactionKey::server(&inv).unwrap();
    assert!(key.is_rfc2543());
    // Each of the RFC 2543 identity fields matters.
    for (from, to) in [
        (
            "INVITE sip:UserB@example.com",
            "INVITE sip:UserC@example.com",
        ),
        ("Call-ID: inv2543.1717", "Call-ID: inv2543.1718"),
        ("CSeq: 56 INVITE", "CSeq: 57 INVITE"),
        (
            "Via: SIP/2.0/UDP iftgw.example.com",
            "Via: SIP/2.0/UDP iftgw2.example.com",
        ),
        (
            "From: <sip:+13035551111@ift.client.example.net;user=phone>",
            "From: <sip:+13035551111@ift.client.example.net;user=phone>;tag=1",
        ),
        (
            "To: sip:+16505552222@ss1.example.net;user=phone",
            "To: sip:+16505552222@ss1.example.net;user=phone;tag=2",
        ),
    ] {
        assert_ne!(
            TransactionKey::server(&edit(&inv, from, to)).unwrap(),
            key,
            "{to}"
        );
    }

    let t0 = Instant::now();
    let mut txns = Transactions::new(TimerConfig::default());
    let Received::Request { id, .. } = txns.receive(t0, phone(), inv.clone()).unwrap() else {
        panic!("a new request");
    };
    assert_eq!(events(&mut txns), ["tx 100"]);
    assert!(
        matches!(txns.receive(t0 + ms(500), phone(), inv.clone()).unwrap(), Received::Existing(i) if i == id)
    );
    assert_eq!(events(&mut txns), ["tx 100"]);

    // A CANCEL built the RFC 2543 way targets the INVITE.
    let cancel = cancel_for(&inv).unwrap();
    let Received::Cancel {
        id: cancel_id,
        invite: Some(target),
        ..
    } = txns.receive(t0 + ms(600), phone(), cancel).unwrap()
    else {
        panic!("a CANCEL for the INVITE");
    };
    assert_eq!(target, id);
    assert_ne!(cancel_id, id);

    let busy = ResponseBuilder::reply(&inv, 487)
        .to_tag("pbx-2543")
        .build()
        .unwrap();
    txns.respond(t0 + ms(700), id, busy.clone()).unwrap();
    assert_eq!(events(&mut txns), ["tx 487"]);
    // An ACK with another To tag is not for this transaction.
    let stray_ack = ack_for_failure(&inv, &edit(&busy, "tag=pbx-2543", "tag=other")).unwrap();
    assert!(matches!(
        txns.receive(t0 + ms(800), phone(), stray_ack).unwrap(),
        Received::Ack(_)
    ));
    assert_eq!(txns.state(id), Some(State::Completed));
    // The ACK carries the To tag of our response, which the INVITE lacked.
    let ack = ack_for_failure(&inv, &busy).unwrap();
    assert!(TransactionKey::server(&ack).unwrap().is_rfc2543());
    assert!(
        matches!(txns.receive(t0 + ms(900), phone(), ack).unwrap(), Received::Existing(i) if i == id)
    );
    assert_eq!(txns.state(id), Some(State::Confirmed));
    assert!(events(&mut txns).is_empty());
}

#[test]
fn rfc2543_ack_for_a_2xx_reaches_the_tu_in_accepted() {
    let inv = rfc4475("inv2543");
    let t0 = Instant::now();
    let mut txns = Transactions::new(TimerConfig::default());
    let Received::Request { id, .. } = txns.receive(t0, phone(), inv.clone()).unwrap() else {
        panic!("a new request");
    };
    let ok = ResponseBuilder::reply(&inv, 200)
        .to_tag("pbx-ok")
        .build()
        .unwrap();
    txns.respond(t0 + ms(10), id, ok.clone()).unwrap();
    // Answered before the table was polled: the 200 goes without a 100.
    assert_eq!(events(&mut txns), ["tx 200"]);
    // Built like an RFC 2543 ACK: same Via, To tag of the 2xx.
    let ack = ack_for_failure(&inv, &ok).unwrap();
    assert!(
        matches!(txns.receive(t0 + ms(20), phone(), ack).unwrap(), Received::Existing(i) if i == id)
    );
    assert_eq!(events(&mut txns), ["ev Ack"]);
    assert_eq!(txns.state(id), Some(State::Accepted));
}

#[test]
fn cancel_ack_stray_and_new_requests_through_the_table() {
    let t0 = Instant::now();
    let mut txns = Transactions::new(TimerConfig::default());
    let inv = invite("z9hG4bK74bf9", "pc33.atlanta.example.com");
    let Received::Request { id, request } = txns.receive(t0, phone(), inv.clone()).unwrap() else {
        panic!("a new request");
    };
    assert_eq!(request.as_bytes(), inv.as_bytes());
    assert_eq!(txns.state(id), Some(State::Proceeding));
    assert_eq!(events(&mut txns), ["tx 100"]);

    // CANCEL: its own transaction, pointing at the INVITE's.
    let cancel = cancel_for(&inv).unwrap();
    let Received::Cancel {
        id: cancel_id,
        request,
        invite: target,
    } = txns.receive(t0 + ms(100), phone(), cancel.clone()).unwrap()
    else {
        panic!("a CANCEL");
    };
    assert_eq!(target, Some(id));
    assert_eq!(request.method(), Some(&Method::Cancel));
    // Its retransmission goes to the CANCEL's transaction, not a new one.
    assert!(
        matches!(txns.receive(t0 + ms(150), phone(), cancel.clone()).unwrap(), Received::Existing(i) if i == cancel_id)
    );
    txns.respond(
        t0 + ms(200),
        cancel_id,
        ResponseBuilder::reply(&cancel, 200)
            .to_tag("p")
            .build()
            .unwrap(),
    )
    .unwrap();
    let terminated = ResponseBuilder::reply(&inv, 487)
        .to_tag("p")
        .build()
        .unwrap();
    txns.respond(t0 + ms(200), id, terminated.clone()).unwrap();
    assert_eq!(events(&mut txns), ["tx 200", "tx 487"]);
    // A CANCEL for an INVITE this table never saw.
    let orphan = cancel_for(&invite("z9hG4bKother", "pc33.atlanta.example.com")).unwrap();
    assert!(matches!(
        txns.receive(t0 + ms(250), phone(), orphan).unwrap(),
        Received::Cancel { invite: None, .. }
    ));

    // ACK for the 487 matches the INVITE (same branch) and confirms it.
    let ack = ack_for_failure(&inv, &terminated).unwrap();
    assert!(
        matches!(txns.receive(t0 + ms(300), phone(), ack).unwrap(), Received::Existing(i) if i == id)
    );
    assert_eq!(txns.state(id), Some(State::Confirmed));
    // An ACK with a new branch (a 2xx ACK) matches nothing: for the dialog layer.
    let ack2xx = edit(
        &ack_for_failure(&inv, &terminated).unwrap(),
        "z9hG4bK74bf9",
        "z9hG4bKack2xx",
    );
    assert!(matches!(
        txns.receive(t0 + ms(300), phone(), ack2xx).unwrap(),
        Received::Ack(_)
    ));
    // A response to nothing we sent.
    let stray = ResponseBuilder::reply(&inv, 200)
        .to_tag("x")
        .build()
        .unwrap();
    assert!(matches!(
        txns.receive(t0 + ms(300), phone(), stray).unwrap(),
        Received::StrayResponse(_)
    ));
    // Unmatchable: no Via.
    let bare = Message::parse(&b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n"[..]).unwrap();
    assert!(matches!(
        txns.receive(t0, phone(), bare),
        Err(TransactionError::Key(KeyError::Header(_)))
    ));
}

#[test]
fn the_table_only_touches_expired_transactions_and_frees_finished_ones() {
    let t0 = Instant::now();
    let mut txns = Transactions::new(TimerConfig::default());
    let server = Peer::new(Transport::Udp, "203.0.113.5:5060".parse().unwrap());
    let mut ids = Vec::new();
    for (i, start) in [0u64, 100, 200].into_iter().enumerate() {
        let req = RequestBuilder::new(Method::Options, "sip:203.0.113.5")
            .header(
                HeaderName::Via,
                ViaValue {
                    transport: "UDP",
                    sent_by: "192.0.2.10:5060",
                    branch: &format!("z9hG4bKopt{i}"),
                },
            )
            .header(HeaderName::MaxForwards, 70)
            .header(HeaderName::From, "<sip:pbx@example.com>;tag=k")
            .header(HeaderName::To, "<sip:203.0.113.5>")
            .header(HeaderName::CallId, format!("keepalive-{i}"))
            .header(HeaderName::CSeq, "1 OPTIONS")
            .build()
            .unwrap();
        ids.push(
            txns.send_request(t0 + ms(start), server, req.clone())
                .unwrap(),
        );
        // The same branch again is refused.
        assert!(
            matches!(txns.send_request(t0 + ms(start), server, req), Err(TransactionError::Duplicate(d)) if d == ids[i])
        );
    }
    assert_eq!(txns.len(), 3);
    assert_eq!(events(&mut txns), ["tx OPTIONS"; 3]);
    assert_eq!(txns.poll_timeout(), Some(t0 + ms(500)));
    // At 600 only the first two are due.
    txns.handle_timeout(t0 + ms(600));
    let due: Vec<_> = std::iter::from_fn(|| txns.poll_output())
        .map(|(id, _)| id)
        .collect();
    assert_eq!(due, [ids[0], ids[1]]);
    assert_eq!(txns.poll_timeout(), Some(t0 + ms(700)));
    // A transport error ends one; a response completes another.
    txns.transport_error(t0 + ms(650), ids[2]);
    assert_eq!(events(&mut txns), ["ev TransportError", "ev Terminated"]);
    assert_eq!(txns.state(ids[2]), None);
    txns.transport_error(t0 + ms(650), ids[2]); // late report: ignored
    assert_eq!(txns.len(), 2);
    assert!(matches!(
        txns.respond(t0, ids[0], invite("z9hG4bKx", "h")),
        Err(TransactionError::NotAServerTransaction)
    ));
    assert!(matches!(
        txns.respond(t0, ids[2], invite("z9hG4bKx", "h")),
        Err(TransactionError::UnknownTransaction(_))
    ));
    // Run everything out: Timer F for the rest; the table ends empty.
    while let Some(at) = txns.poll_timeout() {
        txns.handle_timeout(at);
    }
    assert!(txns.is_empty());
    let tail = events(&mut txns);
    assert_eq!(tail.iter().filter(|e| *e == "ev Timeout(F)").count(), 2);
    assert_eq!(tail.iter().filter(|e| *e == "ev Terminated").count(), 2);
}

#[test]
fn cancelling_a_client_invite_through_the_table() {
    let t0 = Instant::now();
    let mut txns = Transactions::new(TimerConfig::default());
    let next_hop = Peer::new(Transport::Tcp, "203.0.113.9:5060".parse().unwrap());
    // A proxied INVITE: two Vias, a Route set.
    let inv = invite("z9hG4bKleg2", "pbx.example.com");
    let id = txns.send_request(t0, next_hop, inv.clone()).unwrap();
    // §9.1: not before a provisional response.
    assert_eq!(
        txns.cancel(t0 + ms(50), id),
        Err(TransactionError::NotCancellable {
            state: State::Calling
        })
    );
    let ringing = ResponseBuilder::reply(&inv, 180)
        .to_tag("far")
        .build()
        .unwrap();
    assert!(
        matches!(txns.receive(t0 + ms(100), next_hop, ringing).unwrap(), Received::Existing(i) if i == id)
    );
    assert_eq!(events(&mut txns), ["tx INVITE", "ev Provisional 180"]);

    let cancel_id = txns.cancel(t0 + ms(200), id).unwrap();
    let out: Vec<_> = std::iter::from_fn(|| txns.poll_output()).collect();
    let [
        (
            cid,
            Output::Transmit {
                peer,
                message: cancel,
            },
        ),
    ] = &out[..]
    else {
        panic!("expected the CANCEL: {out:?}");
    };
    assert_eq!((*cid, *peer), (cancel_id, next_hop));
    // §9.1: Request-URI, Call-ID, To, From, CSeq number, top Via, Route.
    assert_eq!(cancel.method(), Some(&Method::Cancel));
    assert_eq!(cancel.request_uri_str(), inv.request_uri_str());
    assert_eq!(
        cancel.header_lines(HeaderName::Via).collect::<Vec<_>>(),
        ["SIP/2.0/UDP pbx.example.com;branch=z9hG4bKleg2;rport"]
    );
    assert_eq!(
        cancel.header(HeaderName::Route),
        Some("<sip:edge.example.com;lr>")
    );
    for h in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
        assert_eq!(cancel.header(h), inv.header(h), "{h}");
    }
    assert_eq!(cancel.header(HeaderName::CSeq), Some("314159 CANCEL"));
    assert_eq!(cancel.max_forwards().unwrap(), Some(70));

    // 200 for the CANCEL, 487 for the INVITE (ACKed by the transaction).
    let cancel_ok = ResponseBuilder::reply(cancel, 200)
        .to_tag("far")
        .build()
        .unwrap();
    assert!(
        matches!(txns.receive(t0 + ms(250), next_hop, cancel_ok).unwrap(), Received::Existing(i) if i == cancel_id)
    );
    let terminated = ResponseBuilder::reply(&inv, 487)
        .to_tag("far")
        .build()
        .unwrap();
    assert!(
        matches!(txns.receive(t0 + ms(260), next_hop, terminated).unwrap(), Received::Existing(i) if i == id)
    );
    // TCP: Timers K and D are zero, both transactions are gone.
    assert_eq!(
        events(&mut txns),
        [
            "ev Final 200",
            "ev Terminated",
            "tx ACK",
            "ev Final 487",
            "ev Terminated"
        ]
    );
    assert!(txns.is_empty());
    assert_eq!(
        txns.cancel(t0 + ms(300), id),
        Err(TransactionError::UnknownTransaction(id))
    );
}
