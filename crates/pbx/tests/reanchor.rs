//! Re-anchoring (issue 11 leftover): when a transfer or a pickup
//! re-bridges a relayed call, the relay follows. Played on the virtual
//! clock with `media.anchor = always`: the SDP each party gets names the
//! relay (side A's port to A, side B's to the newcomer), and the relay is
//! told the newcomer's SDP as its side's party (`MediaCommand::Party`), so
//! A's audio reaches C, and the relay (and its recording) goes on until
//! the call ends, stopped once.
//!
//! Ports: side A 30004, side B 30006 (the test's counter).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use cdr::SessionId;
use common::*;
use pbx::media::{Anchor, MediaCommand, MediaPolicy, Party, RelayPorts, Side};
use sip::sdp::SessionDescription;
use sip::{HeaderName, Message, Method};

const RELAY: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10));
const ANN: &str = "10.0.0.9:5066";
const SDP_C: &str = "v=0\r\no=103 3 3 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8\r\na=sendrecv\r\n";
const SDP_A2: &str = "v=0\r\no=101 2 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4002 RTP/AVP 8\r\na=sendrecv\r\n";

#[derive(Clone, Default)]
struct Ports(Arc<Mutex<Vec<SessionId>>>);

impl RelayPorts for Ports {
    fn reserve(&mut self, session: SessionId) -> Option<[u16; 2]> {
        let mut reserved = self.0.lock().unwrap();
        reserved.push(session);
        let base = 30_000 + 4 * reserved.len() as u16;
        Some([base, base + 2])
    }
}

/// The cast with every call relayed, and Ann (103) registered.
fn anchored_cast() -> (Cast, Phone) {
    let mut bench = Bench::new();
    bench.engine.set_media(
        MediaPolicy {
            anchor: Anchor::Always,
            address: RELAY,
        },
        Box::new(Ports::default()),
    );
    let mut cast = Cast::on(bench);
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    cast.bench.register(&mut ann);
    (cast, ann)
}

/// (address, audio port, payload types) of a message's SDP.
fn audio(m: &Message) -> (IpAddr, u16, Vec<String>) {
    let sdp = SessionDescription::parse(m.body()).expect("an SDP body");
    let a = sdp.media.iter().find(|m| m.media == "audio").unwrap();
    let ip = sdp.media_connection(a).and_then(|c| c.ip()).unwrap();
    (ip, a.port, a.formats.clone())
}

fn party(rtp: &str, codecs: &[(u8, &str)]) -> Party {
    let rtp: SocketAddr = rtp.parse().unwrap();
    Party {
        rtp: Some(rtp),
        rtcp: Some(SocketAddr::new(rtp.ip(), rtp.port() + 1)),
        behind_nat: false,
        codecs: codecs
            .iter()
            .map(|(pt, n)| (*pt, (*n).to_owned()))
            .collect(),
    }
}

/// The relay's commands from the `from`-th on.
fn commands(bench: &Bench, from: usize) -> Vec<MediaCommand> {
    bench.media[from..].iter().map(|(_, c)| c.clone()).collect()
}

fn with_headers(text: &str, headers: &str) -> String {
    text.replacen("Content-Length:", &format!("{headers}Content-Length:"), 1)
}

/// 101 → 102 answered through the relay (side B's port offered to Bob,
/// side A's in the 200 to Alice), then 102 REFERs to 103, who answers
/// with its own offer: Alice's re-INVITE names the relay, Ann's ACK
/// names the relay, and the relay learns Ann as side B's party and
/// Alice's new SDP as side A's.
#[test]
fn a_blind_transfer_moves_the_relays_side_b_to_c() {
    let (mut cast, mut ann) = anchored_cast();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    let mut a_call = bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    assert_eq!(audio(&invite).0, RELAY);
    assert_eq!(audio(&invite).1, 30_006);
    let mut b_call = bob.incoming(&invite);
    bench.at(200);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    assert_eq!((audio(&ok).0, audio(&ok).1), (RELAY, 30_004));
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    let before = bench.media.len();

    // Bob refers the call to Ann.
    bench.at(10_000);
    let text = bob.request(&mut b_call, "REFER", None);
    bench.send(
        bob.peer,
        &with_headers(&text, "Refer-To: <sip:103@acme.example>\r\n"),
    );
    let got = bench.take(bob.peer);
    assert_eq!(got[0].status(), Some(202));
    bench.send(bob.peer, &bob.respond(&b_call, &got[1], 200, None));
    let c_invite = bench.take(ann.peer).remove(0);
    assert!(is(&c_invite, Method::Invite));
    assert!(c_invite.body().is_empty(), "late offer to C");
    let mut c_call = ann.incoming(&c_invite);
    bench.at(13_000);
    bench.send(ann.peer, &ann.respond(&c_call, &c_invite, 200, Some(SDP_C)));
    // Alice is offered Ann's codecs at the relay's side A.
    let reinvite = bench.take_one(alice.peer);
    assert!(is(&reinvite, Method::Invite), "{}", reinvite.summary());
    assert_eq!(audio(&reinvite), (RELAY, 30_004, vec!["8".into()]));
    assert!(!String::from_utf8_lossy(reinvite.body()).contains("10.0.0.9"));
    bench.send(
        alice.peer,
        &alice.respond(&a_call, &reinvite, 200, Some(SDP_A2)),
    );
    assert!(is(&bench.take_one(alice.peer), Method::Ack));
    // Ann's ACK carries Alice's answer at the relay's side B.
    // (After Ann's INVITE retransmissions: the clock jumped.)
    let ack = bench.take(ann.peer).pop().unwrap();
    assert!(is(&ack, Method::Ack), "{}", ack.summary());
    assert_eq!(audio(&ack), (RELAY, 30_006, vec!["8".into()]));
    assert!(!String::from_utf8_lossy(ack.body()).contains("10.0.0.5"));
    assert_eq!(
        commands(bench, before),
        vec![
            MediaCommand::Party(Side::B, party("10.0.0.9:6000", &[(8, "PCMA")])),
            MediaCommand::Party(Side::A, party("10.0.0.5:4002", &[(8, "PCMA")])),
        ]
    );
    // Bob leaves; the relay goes on (no Stop) until Alice hangs up.
    let n = bench.take(bob.peer);
    for m in n.iter().filter(|m| is(m, Method::Notify)) {
        bench.send(bob.peer, &bob.respond(&b_call, m, 200, None));
    }
    bench.at(13_500);
    bench.send(bob.peer, &bob.request(&mut b_call, "BYE", None));
    assert_eq!(bench.take_one(bob.peer).status(), Some(200));
    assert!(!bench.media.iter().any(|(_, c)| *c == MediaCommand::Stop));
    bench.at(20_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(ann.peer);
    assert!(is(&bye, Method::Bye));
    bench.send(ann.peer, &ann.respond(&c_call, &bye, 200, None));
    let _ = &mut c_call;
    let stops = bench
        .media
        .iter()
        .filter(|(_, c)| *c == MediaCommand::Stop)
        .count();
    assert_eq!(stops, 1);
    let cdr = bench.cdr();
    let reasons: Vec<_> = cdr["call_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["callee"].clone(), t["end_reason"].clone()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("102".into(), "blind_transfer_complete".into()),
            ("103".into(), "caller_disconnect".into())
        ]
    );
}

/// 101 → 102 rings (relayed); 103 in 102's pickup group dials `**102`:
/// Alice's INVITE is answered on hold, her re-INVITE carries Ann's offer
/// at the relay's side A, Ann's 200 Alice's answer at side B, and the
/// relay learns both.
#[test]
fn a_pickup_puts_the_picker_on_the_relays_side_b() {
    let (mut cast, mut ann) = anchored_cast();
    for ext in ["102", "103"] {
        let d = cast.bench.engine.directory_mut();
        let mut u = d.user(tenant_id(), ext).unwrap().clone();
        u.pickup_group = "sales".into();
        d.upsert_user(u).unwrap();
    }
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    let mut a_call = bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    let b_call = bob.incoming(&invite);
    bench.at(210);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 180, None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(180));
    let before = bench.media.len();

    bench.at(3_000);
    let mut c_call = ann.call("**102", Some(SDP_C));
    bench.send(ann.peer, &ann.invite(&mut c_call, None));
    let challenge = bench.take_one(ann.peer);
    bench.send(ann.peer, &ann.ack_failure(&c_call, &challenge));
    bench.at(3_040);
    let text = ann.invite(&mut c_call, Some(&challenge));
    bench.send(ann.peer, &text);
    let cancel = bench.take_one(bob.peer);
    assert!(is(&cancel, Method::Cancel));
    bench.send(bob.peer, &bob.respond(&b_call, &cancel, 200, None));
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 487, None));
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200), "{}", ok.summary());
    bench.at(3_100);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    let reinvite = bench.take_one(alice.peer);
    assert!(is(&reinvite, Method::Invite), "{}", reinvite.summary());
    assert_eq!(audio(&reinvite), (RELAY, 30_004, vec!["8".into()]));
    bench.send(
        alice.peer,
        &alice.respond(&a_call, &reinvite, 200, Some(SDP_A2)),
    );
    let ok = bench
        .take(ann.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .expect("the picker's 200");
    assert_eq!(audio(&ok), (RELAY, 30_006, vec!["8".into()]));
    assert!(ok.header(HeaderName::XSessionId).is_some());
    bench.send(ann.peer, &ann.ack(&mut c_call, &ok, None));
    assert!(is(&bench.take_one(alice.peer), Method::Ack));
    assert_eq!(
        commands(bench, before),
        vec![
            MediaCommand::Answered,
            MediaCommand::Party(Side::B, party("10.0.0.9:6000", &[(8, "PCMA")])),
            MediaCommand::Party(Side::A, party("10.0.0.5:4002", &[(8, "PCMA")])),
        ]
    );
    bench.at(20_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    assert!(is(&bench.take_one(ann.peer), Method::Bye));
    assert_eq!(bench.media.last().unwrap().1, MediaCommand::Stop);
}

fn tag_of(header: &str) -> String {
    header
        .split(";tag=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// An attended transfer between two relayed calls: S1 (101 ↔ 102, ports
/// 30004/30006) and S2 (102 → 103, 30008/30010). When S2 hands C over its
/// relay stops (once, in that step); C's offer reaches A at S1's side A,
/// A's answer reaches C at S1's side B, and S1's relay learns both.
#[test]
fn an_attended_transfer_moves_c_to_the_first_calls_relay() {
    use sip::dialog::refer_to_with_replaces;
    use sip::headers::Replaces;
    let (mut cast, mut ann) = anchored_cast();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    let mut a_call = bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    let mut b_call = bob.incoming(&invite);
    bench.at(200);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    // The consultation, 102 → 103, relayed too.
    bench.at(8_000);
    let mut b2 = bench.dial(bob, "103");
    let invite = bench.take_one(ann.peer);
    assert_eq!(audio(&invite).1, 30_010, "S2's side B");
    let c_call = ann.incoming(&invite);
    bench.at(9_000);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 200, Some(SDP_C)));
    let ok = bench
        .take(bob.peer)
        .into_iter()
        .find(|m| m.status() == Some(200))
        .unwrap();
    bench.send(bob.peer, &bob.ack(&mut b2, &ok, None));
    let _ = bench.take(ann.peer);
    let s1 = bench.media[0].0;
    let s2 = bench
        .media
        .iter()
        .map(|(s, _)| *s)
        .find(|s| *s != s1)
        .expect("S2 is relayed");
    let before = bench.media.len();

    bench.at(10_000);
    let replaces = Replaces {
        call_id: b2.call_id.clone(),
        to_tag: tag_of(&b2.remote),
        from_tag: tag_of(&b2.local),
        early_only: false,
    };
    let refer_to = refer_to_with_replaces("sip:103@acme.example", &replaces);
    let text = bob.request(&mut b_call, "REFER", None);
    bench.send(
        bob.peer,
        &with_headers(&text, &format!("Refer-To: {refer_to}\r\n")),
    );
    let got = bench.take(bob.peer);
    assert_eq!(got[0].status(), Some(202));
    // S2's relay stopped with S2, in the REFER's step.
    let s2_stops: Vec<_> = bench.media[before..]
        .iter()
        .filter(|(s, c)| *s == s2 && *c == MediaCommand::Stop)
        .collect();
    assert_eq!(s2_stops.len(), 1, "{:?}", &bench.media[before..]);
    let reinvite = bench.take_one(ann.peer);
    assert!(is(&reinvite, Method::Invite) && reinvite.body().is_empty());
    bench.send(ann.peer, &ann.respond(&c_call, &reinvite, 200, Some(SDP_C)));
    let a_reinvite = bench.take_one(alice.peer);
    assert_eq!(audio(&a_reinvite), (RELAY, 30_004, vec!["8".into()]));
    bench.send(
        alice.peer,
        &alice.respond(&a_call, &a_reinvite, 200, Some(SDP_A2)),
    );
    let ack = bench.take(ann.peer).pop().unwrap();
    assert!(is(&ack, Method::Ack), "{}", ack.summary());
    assert_eq!(audio(&ack), (RELAY, 30_006, vec!["8".into()]));
    let s1_commands: Vec<MediaCommand> = bench.media[before..]
        .iter()
        .filter(|(s, _)| *s == s1)
        .map(|(_, c)| c.clone())
        .collect();
    assert_eq!(
        s1_commands,
        vec![
            MediaCommand::Party(Side::B, party("10.0.0.9:6000", &[(8, "PCMA")])),
            MediaCommand::Party(Side::A, party("10.0.0.5:4002", &[(8, "PCMA")])),
        ]
    );
}
