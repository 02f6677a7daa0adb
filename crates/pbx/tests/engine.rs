//! The engine outside calls: REGISTER, OPTIONS, malformed requests,
//! methods it does not handle, and how an INVITE is authenticated.

mod common;

use common::*;
use pbx::EngineEvent;
use pbx::registrar::AuthFailure;
use sip::{HeaderName, Method};

const OPTIONS: &str = "OPTIONS sip:acme.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-opt-1;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:monitor@10.0.0.9>;tag=m1\r\n\
To: <sip:acme.example>\r\n\
Call-ID: options-1@10.0.0.9\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

fn with_method(text: &str, method: &str) -> String {
    text.replacen("OPTIONS", method, 1)
        .replace("CSeq: 1 OPTIONS", &format!("CSeq: 1 {method}"))
}

#[test]
fn register_goes_to_the_registrar_and_reports_bindings() {
    let mut bench = Bench::new();
    let mut phone = Phone::new("101", "Tom", udp(ALICE));
    bench.register(&mut phone);
    assert_eq!(bench.binding_changes, 1);
    let bindings: Vec<_> = bench
        .engine
        .registrar()
        .location()
        .lookup(bench.instant_now(), tenant_id(), "101")
        .collect();
    assert_eq!(bindings.len(), 1);
}

#[test]
fn options_outside_a_dialog_is_answered_with_allow() {
    let mut bench = Bench::new();
    let peer = udp("10.0.0.9:5060");
    bench.send(peer, OPTIONS);
    let ok = bench.take_one(peer);
    assert_eq!(ok.status(), Some(200));
    let allow = ok.header(HeaderName::Allow).unwrap();
    for m in [
        "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE",
    ] {
        assert!(allow.contains(m), "{allow}");
    }
    assert!(ok.to().unwrap().tag().is_some());
}

#[test]
fn unsupported_methods_get_405_or_501_dialog_methods_481_and_refer_403() {
    let mut bench = Bench::new();
    let peer = udp("10.0.0.9:5060");
    for (method, code) in [
        ("SUBSCRIBE", 405),
        ("MESSAGE", 405),
        ("PUBLISH", 405),
        // Transfers only of calls (`transfer.rs`).
        ("REFER", 403),
        ("FROBNICATE", 501),
        ("BYE", 481),
        ("INFO", 481),
        ("UPDATE", 481),
    ] {
        bench.send(peer, &with_method(OPTIONS, method));
        let r = bench.take_one(peer);
        assert_eq!(r.status(), Some(code), "{method}");
        if code == 405 {
            assert!(r.header(HeaderName::Allow).is_some(), "{method}");
        }
    }
}

#[test]
fn in_dialog_request_for_an_unknown_dialog_gets_481() {
    let mut bench = Bench::new();
    let peer = udp("10.0.0.9:5060");
    let bye = with_method(OPTIONS, "BYE")
        .replace("To: <sip:acme.example>", "To: <sip:acme.example>;tag=nope");
    bench.send(peer, &bye);
    assert_eq!(bench.take_one(peer).status(), Some(481));
}

#[test]
fn malformed_requests_get_400_naming_the_defect_or_are_dropped() {
    let mut bench = Bench::new();
    let peer = udp("10.0.0.9:5060");
    // CSeq names another method.
    bench.send(peer, &OPTIONS.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"));
    let r = bench.take_one(peer);
    assert_eq!(r.status(), Some(400));
    assert!(
        r.reason_phrase().unwrap().starts_with("Bad Request"),
        "{}",
        r.summary()
    );
    // No Call-ID: nothing to echo, so no answer at all.
    bench.send(
        peer,
        &OPTIONS.replace("Call-ID: options-1@10.0.0.9\r\n", ""),
    );
    assert!(bench.take(peer).is_empty());
    assert!(
        bench
            .engine_events
            .iter()
            .any(|e| matches!(e, EngineEvent::Dropped { .. })),
        "{:?}",
        bench.engine_events
    );
}

#[test]
fn invite_is_challenged_with_407_md5_only_by_default() {
    let mut cast = Cast::new();
    let Cast { bench, alice, .. } = &mut cast;
    let mut call = alice.call("102", Some(SDP_A));
    let text = alice.invite(&mut call, None);
    bench.send(alice.peer, &text);
    let r = bench.take_one(alice.peer);
    assert_eq!(r.status(), Some(407));
    let challenges: Vec<_> = r
        .challenges(HeaderName::ProxyAuthenticate)
        .collect::<Result<_, _>>()
        .unwrap();
    // The registrar's default offer: MD5 alone, which libre-based phones
    // need (RegistrarConfig::digest_offer), with qop=auth.
    assert_eq!(challenges.len(), 1);
    assert_eq!(challenges[0].algorithm, sip::auth::Algorithm::Md5);
    assert_eq!(challenges[0].qop, [sip::auth::Qop::Auth]);
    assert_eq!(challenges[0].realm, DOMAIN);
    assert!(
        bench.call_events.is_empty(),
        "no session before authentication"
    );
}

#[test]
fn invite_with_a_wrong_password_gets_403_and_counts_as_a_failure() {
    let mut cast = Cast::new();
    let Cast { bench, .. } = &mut cast;
    let mut mallory = Phone::new("101", "Tom", udp("192.0.2.66:5060"));
    mallory.set_password("guess");
    let mut call = mallory.call("102", None);
    let text = mallory.invite(&mut call, None);
    bench.send(mallory.peer, &text);
    let challenge = bench.take_one(mallory.peer);
    bench.send(mallory.peer, &mallory.ack_failure(&call, &challenge));
    let text = mallory.invite(&mut call, Some(&challenge));
    bench.send(mallory.peer, &text);
    assert_eq!(bench.take_one(mallory.peer).status(), Some(403));
    assert!(bench.engine_events.iter().any(|e| matches!(
        e,
        EngineEvent::InviteAuthFailed {
            reason: AuthFailure::WrongPassword,
            ..
        }
    )));
    assert!(bench.call_events.is_empty());
}

/// Security review, finding 12: `403` for unknown callers and `407` for
/// known ones told a scanner which extensions exist.
#[test]
fn an_unknown_caller_is_challenged_like_a_known_one_and_refused_alike() {
    let mut bench = Bench::new();
    let mut answers = Vec::new();
    for (ext, source) in [("555", "192.0.2.66:5060"), ("101", "192.0.2.67:5060")] {
        let mut phone = Phone::new(ext, "Eve", udp(source));
        phone.set_password("guess-guess");
        let mut call = phone.call("102", None);
        let text = phone.invite(&mut call, None);
        bench.send(phone.peer, &text);
        let challenge = bench.take_one(phone.peer);
        assert_eq!(challenge.status(), Some(407), "{ext}");
        let shape: Vec<String> = challenge
            .challenges(HeaderName::ProxyAuthenticate)
            .map(|c| {
                let c = c.unwrap();
                format!("{} {} {:?} {}", c.realm, c.algorithm, c.qop, c.nonce.len())
            })
            .collect();
        bench.send(phone.peer, &phone.ack_failure(&call, &challenge));
        let text = phone.invite(&mut call, Some(&challenge));
        bench.send(phone.peer, &text);
        let refusal = bench.take_one(phone.peer);
        answers.push((
            shape,
            refusal.status(),
            refusal.reason_phrase().map(str::to_owned),
        ));
    }
    assert_eq!(answers[0], answers[1], "unknown vs known: {answers:?}");
    assert_eq!(answers[0].1, Some(403));
    let reasons: Vec<AuthFailure> = bench
        .engine_events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::InviteAuthFailed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [AuthFailure::UnknownUser, AuthFailure::WrongPassword]
    );
}

/// `phone` calls 102 and answers the challenge; the final status.
fn answered_invite(bench: &mut Bench, phone: &mut Phone) -> Option<u16> {
    let mut call = phone.call("102", None);
    let text = phone.invite(&mut call, None);
    bench.send(phone.peer, &text);
    let challenge = bench.take_one(phone.peer);
    let text = phone.invite(&mut call, Some(&challenge));
    bench.send(phone.peer, &text);
    bench.take_one(phone.peer).status()
}

/// Security review, finding 2: failures count per (source, user), so forged
/// packets naming one user (or users that do not exist) never lock the
/// address out for the others.
#[test]
fn failures_for_one_user_do_not_block_the_source_for_another() {
    let mut bench = Bench::new();
    for ext in ["101", "555", "556", "557", "558", "559"] {
        let mut mallory = Phone::new(ext, "Tom", udp("192.0.2.66:5060"));
        mallory.set_password("guess-guess");
        for _ in 0..5 {
            assert_eq!(answered_invite(&mut bench, &mut mallory), Some(403));
        }
    }
    // 103's phone at the same address still gets its challenge.
    let mut phone = Phone::new("103", "Carol", udp("192.0.2.66:5060"));
    let mut call = phone.call("102", None);
    let text = phone.invite(&mut call, None);
    bench.send(phone.peer, &text);
    assert_eq!(bench.take_one(phone.peer).status(), Some(407));
}

#[test]
fn repeated_failures_block_the_source_for_invite_and_register() {
    let mut bench = Bench::new();
    let mut mallory = Phone::new("101", "Tom", udp("192.0.2.66:5060"));
    mallory.set_password("guess");
    for _ in 0..5 {
        assert_eq!(answered_invite(&mut bench, &mut mallory), Some(403));
    }
    assert!(
        bench
            .engine_events
            .iter()
            .any(|e| matches!(e, EngineEvent::SourceBlocked { .. }))
    );
    // Now even a REGISTER from there is refused unread.
    let text = mallory.register(None);
    bench.send(mallory.peer, &text);
    let r = bench.take_one(mallory.peer);
    assert_eq!(r.status(), Some(403), "{}", r.summary());
}

#[test]
fn invite_requiring_an_extension_gets_420() {
    let mut cast = Cast::new();
    let Cast { bench, alice, .. } = &mut cast;
    let mut call = alice.call("102", None);
    let text = alice.invite(&mut call, None).replace(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nRequire: 100rel\r\n",
    );
    bench.send(alice.peer, &text);
    let r = bench.take_one(alice.peer);
    assert_eq!(r.status(), Some(420));
    assert_eq!(r.header(HeaderName::Unsupported), Some("100rel"));
}

#[test]
fn cancel_for_an_unknown_invite_gets_481() {
    let mut cast = Cast::new();
    let Cast { bench, alice, .. } = &mut cast;
    let mut call = alice.call("102", None);
    let _ = alice.invite(&mut call, None);
    bench.send(alice.peer, &alice.cancel(&call));
    let r = bench.take_one(alice.peer);
    assert_eq!(r.status(), Some(481));
    assert_eq!(r.cseq().unwrap().method, Method::Cancel);
}

#[test]
fn configuration_and_timer_surface() {
    use pbx::{Engine, EngineConfig, EngineError};
    let bad = Engine::new(EngineConfig::new(1024, [0; 32], 1, PBX));
    assert!(matches!(bad, Err(EngineError::Node(_))));
    let engine = Engine::new(EngineConfig::new(1023, [0; 32], 1, PBX)).unwrap();
    assert_eq!(engine.poll_timeout(), None, "nothing to wake up for yet");
    assert_eq!(engine.sessions(), 0);
    // After an input, the registrar's sweep keeps a deadline.
    let mut bench = Bench::new();
    bench.send(udp("10.0.0.9:5060"), OPTIONS);
    let next = bench.engine.poll_timeout().unwrap();
    assert!(next > bench.instant_now());
    // Transactions finish and leave nothing behind.
    bench.at(bench.now + 40_000);
    assert_eq!(bench.engine.transactions(), 0);
}
