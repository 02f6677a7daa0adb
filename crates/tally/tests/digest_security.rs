//! The security review's registrar and digest findings against the real
//! binary over UDP (issue 17): spoofed failures no longer lock an address
//! out (finding 2), INVITEs no longer tell which extensions exist (12), and
//! digest answers without `qop` are refused, or single-use when allowed
//! (13). Each failed before its fix.

mod common;

use std::time::Duration;

use sip::HeaderName;
use sip::auth::{Challenge, DigestClient};

use common::{Phone, Server, TempDir};

const DOMAIN: &str = "acme.example";

/// A server with tenant `acme.example` and users 101 and 102.
fn acme(dir: &std::path::Path, extra: &[&str]) -> Server {
    let server = Server::start(dir, extra);
    let admin = server.admin();
    let tenant = admin.create_tenant("Acme", DOMAIN);
    admin.create_user(&tenant, "101", "sip-secret-101");
    admin.create_user(&tenant, "102", "sip-secret-102");
    server
}

/// Finding 2: five failures "from" an address used to block it for every
/// user. Failures for unknown users, and for another user, now block only
/// what they named.
#[test]
fn failures_for_other_or_unknown_users_do_not_lock_the_address_out() {
    let dir = TempDir::new("digest-spoof");
    let server = acme(dir.path(), &[]);
    // All from 127.0.0.1, as forged UDP from a victim's address would be.
    for i in 0..10 {
        let mut forged = Phone::new(&format!("9{i:02}"), "guess-guess", DOMAIN, server.sip);
        assert_eq!(forged.register(), 404);
    }
    for _ in 0..5 {
        let mut forged = Phone::new("102", "guess-guess", DOMAIN, server.sip);
        assert_eq!(forged.register(), 403);
    }
    let mut forged = Phone::new("102", "sip-secret-102", DOMAIN, server.sip);
    assert_eq!(forged.register(), 403, "102 from here is blocked");
    let mut phone = Phone::new("101", "sip-secret-101", DOMAIN, server.sip);
    assert_eq!(phone.register(), 200, "101 from the same address is not");
    server.wait_stderr(|l| l.contains("source blocked for this user") && l.contains("user=102"));
}

/// Finding 12: `403` for an unknown caller, `407` for a known one.
#[test]
fn an_unknown_caller_gets_the_challenge_and_refusal_a_known_one_gets() {
    let dir = TempDir::new("digest-enum");
    let server = acme(dir.path(), &[]);
    let mut answers = Vec::new();
    for ext in ["555", "101"] {
        let phone = Phone::new(ext, "guess-guess", DOMAIN, server.sip);
        let first = phone.invite_status("102");
        let call = phone
            .try_invite("102", Duration::from_secs(5), |_| {})
            .expect("a final answer");
        answers.push((first, call.status));
    }
    assert_eq!(answers, [(407, 403), (407, 403)]);
}

/// A REGISTER from `phone`'s socket with `authorization` (a header line or
/// nothing); the final response.
fn register(phone: &Phone, cseq: u32, authorization: &str) -> sip::Message {
    let addr = phone.addr();
    phone.send(&format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {addr};branch=z9hG4bK-noqop-{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:101@{DOMAIN}>;tag=nq{cseq}\r\n\
         To: <sip:101@{DOMAIN}>\r\nCall-ID: noqop@test\r\nCSeq: {cseq} REGISTER\r\n\
         Contact: <sip:101@{addr}>\r\nExpires: 300\r\n{authorization}Content-Length: 0\r\n\r\n"
    ));
    phone.recv_final()
}

/// An RFC 2069 answer (no qop, no nonce count) to the 401 `challenge`.
fn answer_without_qop(challenge: &sip::Message) -> String {
    let mut ch: Challenge = challenge
        .challenges(HeaderName::WwwAuthenticate)
        .next()
        .expect("a challenge")
        .expect("it parses");
    ch.qop.clear();
    let c = DigestClient::new("101", "sip-secret-101")
        .respond(&ch, "REGISTER", &format!("sip:{DOMAIN}"), "cn")
        .expect("an answer");
    assert!(c.qop.is_none());
    format!("Authorization: {c}\r\n")
}

/// Finding 13: an answer without qop has no nonce count and could be
/// replayed for the nonce's lifetime.
#[test]
fn a_digest_answer_without_qop_is_refused_by_default() {
    let dir = TempDir::new("digest-noqop");
    let server = acme(dir.path(), &[]);
    let phone = Phone::new("101", "sip-secret-101", DOMAIN, server.sip);
    let challenge = register(&phone, 1, "");
    assert_eq!(challenge.status(), Some(401));
    let r = register(&phone, 2, &answer_without_qop(&challenge));
    assert_eq!(r.status(), Some(403));
    assert_eq!(
        r.reason_phrase(),
        Some("Forbidden (digest without qop=auth)")
    );
    server.wait_stderr(|l| l.contains("digest_without_qop"));
}

/// With `sip.allow_digest_without_qop`, legacy phones register, and each
/// nonce answers once: the same answer again is sent for a fresh nonce.
#[test]
fn a_digest_answer_without_qop_when_allowed_answers_once() {
    let dir = TempDir::new("digest-noqop-allowed");
    let config = dir.path().join("tally.toml");
    std::fs::write(&config, "[sip]\nallow_digest_without_qop = true\n").expect("config");
    let server = acme(dir.path(), &["--config", &config.to_string_lossy()]);
    let phone = Phone::new("101", "sip-secret-101", DOMAIN, server.sip);
    let challenge = register(&phone, 1, "");
    let answer = answer_without_qop(&challenge);
    assert_eq!(register(&phone, 2, &answer).status(), Some(200));
    let replay = register(&phone, 3, &answer);
    assert_eq!(replay.status(), Some(401));
    let again: Challenge = replay
        .challenges(HeaderName::WwwAuthenticate)
        .next()
        .expect("a challenge")
        .expect("it parses");
    assert!(again.stale, "a reused nonce is stale, not a failure");
}
