//! Blind transfer (SPEC §3 "blind transfer: target B REFERs to C"), played
//! as SIP messages on the virtual clock: the REFER's checks, the NOTIFYs,
//! the late offer to C and the re-INVITE of A, the exact `call_cdr` of each
//! row (completed by the callee, by the caller, C busy and recalled, C
//! ringing out with `on_failure = hangup`), the races and the bad input.
//!
//! Cast: 101 (Tom, A) calls 102 (Jason, B, desk phone 10.0.0.7), who
//! answers at +5870; 103 (Ann, C, ring timeout 20 s) at 10.0.0.9.
//! Times: REFER at +10000 (Unix s 1795874597), C rings at once, answers
//! at +13000 (…600), A answers the re-INVITE at +13050, B hangs up at
//! +13500, A at +20000 (…607).

#![recursion_limit = "256"]

mod common;

use common::golden::*;
use common::*;
use pbx::{EngineConfig, TransferOnFailure};
use serde_json::{Value, json};
use sip::{HeaderName, Message, Method};

const ANN: &str = "10.0.0.9:5066";
const SDP_C: &str = "v=0\r\no=103 3 3 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=sendrecv\r\n";
const SDP_A2: &str = "v=0\r\no=101 2 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n";

/// The id node 1's Snowflake gives the `seq`-th id of the millisecond
/// `offset` ms after T0.
fn id_at(offset: i64, seq: u64) -> String {
    let ms = (T0 as i64 + offset - 1_514_764_800_000) as u64;
    ((ms << 22) | (1 << 12) | seq).to_string()
}

/// `text` (a request a phone wrote) with `headers` added.
fn with_headers(text: &str, headers: &str) -> String {
    text.replacen("Content-Length:", &format!("{headers}Content-Length:"), 1)
}

/// An answered call 101 → 102, plus 103 registered.
fn answered_with_ann() -> (Cast, Call, Call, Phone) {
    let (mut cast, a_call, b_call) = answered();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    cast.bench.register(&mut ann);
    (cast, a_call, b_call, ann)
}

/// `phone` sends REFER on `call` to `refer_to` (`None`: no Refer-To):
/// the PBX's final answer, and what else came (a NOTIFY).
fn refer(
    bench: &mut Bench,
    phone: &mut Phone,
    call: &mut Call,
    refer_to: Option<&str>,
) -> (Message, Vec<Message>) {
    let text = phone.request(call, "REFER", None);
    let text = match refer_to {
        Some(to) => with_headers(&text, &format!("Refer-To: {to}\r\n")),
        None => text,
    };
    bench.send(phone.peer, &text);
    let mut got = bench.take(phone.peer);
    let i = got
        .iter()
        .position(|m| m.status().is_some())
        .expect("an answer to the REFER");
    (got.remove(i), got)
}

/// A NOTIFY the referrer got: its sipfrag status line and
/// Subscription-State; answered 200.
fn notify_of(bench: &mut Bench, phone: &Phone, call: &Call, n: &Message) -> (String, String) {
    assert!(is(n, Method::Notify), "{}", n.summary());
    assert!(n.header_named("Event").unwrap().starts_with("refer;id="));
    assert_eq!(n.content_type(), Some("message/sipfrag;version=2.0"));
    bench.send(phone.peer, &phone.respond(call, n, 200, None));
    let body = String::from_utf8(n.body().to_vec()).unwrap();
    (
        body.trim_end().to_owned(),
        n.header_named("Subscription-State").unwrap().to_owned(),
    )
}

/// The next NOTIFY the referrer gets.
fn notify(bench: &mut Bench, phone: &Phone, call: &Call) -> (String, String) {
    let n = bench.take_one(phone.peer);
    notify_of(bench, phone, call, &n)
}

/// `phone` REFERs `call` to 103 and gets 202 and NOTIFY 100.
fn refer_to_ann(bench: &mut Bench, phone: &mut Phone, call: &mut Call) {
    let (answer, rest) = refer(bench, phone, call, Some("<sip:103@acme.example>"));
    assert_eq!(answer.status(), Some(202), "{}", answer.summary());
    assert_eq!(rest.len(), 1, "one NOTIFY");
    assert_eq!(
        notify_of(bench, phone, call, &rest[0]),
        ("SIP/2.0 100 Trying".into(), "active;expires=60".into())
    );
}

/// C gets the INVITE (no SDP: late offer), rings, and answers `after` ms
/// later with its offer.
fn c_answers(bench: &mut Bench, ann: &mut Phone, after: i64) -> (Call, Message) {
    // The first INVITE (later ones are retransmissions).
    let invite = bench.take(ann.peer).remove(0);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    assert!(invite.body().is_empty(), "C is INVITEd without SDP");
    let call = ann.incoming(&invite);
    bench.send(ann.peer, &ann.respond(&call, &invite, 180, None));
    bench.at(bench.now + after);
    bench.send(ann.peer, &ann.respond(&call, &invite, 200, Some(SDP_C)));
    (call, invite)
}

/// The remaining party (`phone`) gets the re-INVITE with C's offer and
/// answers it 50 ms later; C gets its ACK with that answer.
fn join(bench: &mut Bench, phone: &mut Phone, call: &mut Call, ann: &Phone) {
    let reinvite = bench.take_one(phone.peer);
    assert!(is(&reinvite, Method::Invite), "{}", reinvite.summary());
    assert_eq!(reinvite.body(), SDP_C.as_bytes(), "C's offer");
    assert!(reinvite.header(HeaderName::XSessionId).is_some());
    bench.at(bench.now + 50);
    bench.send(
        phone.peer,
        &phone.respond(call, &reinvite, 200, Some(SDP_A2)),
    );
    assert!(is(&bench.take_one(phone.peer), Method::Ack));
    let ack = bench.take_one(ann.peer);
    assert!(is(&ack, Method::Ack), "{}", ack.summary());
    assert_eq!(ack.body(), SDP_A2.as_bytes(), "A's answer in C's ACK");
}

/// `phone` hangs up `call`; the PBX answers 200 and sends BYE to `other`,
/// which answers it.
fn hang_up(bench: &mut Bench, phone: &mut Phone, call: &mut Call, other: &Phone, o_call: &Call) {
    let bye = phone.request(call, "BYE", None);
    bench.send(phone.peer, &bye);
    assert_eq!(bench.take_one(phone.peer).status(), Some(200));
    let bye = bench.take_one(other.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    bench.send(other.peer, &other.respond(o_call, &bye, 200, None));
}

fn reasons(cdr: &Value) -> Vec<Value> {
    cdr["call_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!([t["callee"], t["status"], t["status_code"], t["end_reason"]]))
        .collect()
}

/// B (the callee) REFERs to C; C answers; B hangs up after the NOTIFY
/// 200; A and C talk; A hangs up.
#[test]
fn blind_transfer_by_the_callee() {
    let (mut cast, mut a_call, mut b_call, mut ann) = answered_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    refer_to_ann(bench, bob, &mut b_call);
    let (mut c_call, c_invite) = c_answers(bench, &mut ann, 3000);
    assert!(
        c_invite
            .header(HeaderName::From)
            .unwrap()
            .contains("sip:101@")
    );
    join(bench, alice, &mut a_call, &ann);
    assert_eq!(
        notify(bench, bob, &b_call),
        (
            "SIP/2.0 200 OK".into(),
            "terminated;reason=noresource".into()
        )
    );
    bench.at(13_500);
    let bye = bob.request(&mut b_call, "BYE", None);
    bench.send(bob.peer, &bye);
    assert_eq!(bench.take_one(bob.peer).status(), Some(200));
    assert!(bench.take(alice.peer).is_empty(), "A stays in the call");
    // In-dialog requests now go between A and C.
    bench.at(15_000);
    let info = alice.request(
        &mut a_call,
        "INFO",
        Some(("application/dtmf-relay", "Signal=1\r\n")),
    );
    bench.send(alice.peer, &info);
    let relayed = bench.take_one(ann.peer);
    assert!(is(&relayed, Method::Info));
    bench.send(ann.peer, &ann.respond(&c_call, &relayed, 200, None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    bench.at(20_000);
    hang_up(bench, alice, &mut a_call, &ann, &c_call);
    let _ = &mut c_call;

    assert_eq!(
        bench.timeline(),
        [
            "call_start",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_answer",
            "cdr_target_add",
            "cdr_target_ringing",
            "cdr_target_answer",
            "call_update_info",
            "cdr_target_end",
            "cdr_target_end",
            "call_cdr"
        ]
    );
    let update = bench
        .json()
        .into_iter()
        .find(|e| e["event_type"] == "call_update_info")
        .unwrap();
    assert_eq!(update["caller"], "sip:101@acme.example", "{update}");
    assert_eq!(update["callee"], "sip:103@acme.example", "{update}");
    assert_eq!(update["callee_display_name"], "Ann");
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("102", "Jason"),
            ("1795874587", "1795874587", "1795874592", "1795874607"),
            ("5", 15),
            ("answered", "0", "caller_disconnect"),
            vec![
                target(
                    ("1179059904569151490", CDR, "normal_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "1795874592", "1795874600"),
                    ("5", "8"),
                    ("answered", 0, "blind_transfer_complete"),
                ),
                target(
                    (&id_at(10_000, 0), CDR, "normal_call"),
                    ("103", ANN_URI),
                    ("1795874597", "1795874597", "1795874600", "1795874607"),
                    ("3", "7"),
                    ("answered", 0, "caller_disconnect"),
                ),
            ],
            11,
        ),
    );
}

/// A (the caller) REFERs B to C: C is shown B's number, joins with B; A's
/// leg (not a target) is released; C then hangs up.
#[test]
fn blind_transfer_by_the_caller() {
    let (mut cast, mut a_call, mut b_call, mut ann) = answered_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    refer_to_ann(bench, alice, &mut a_call);
    let (mut c_call, c_invite) = c_answers(bench, &mut ann, 3000);
    assert!(
        c_invite
            .header(HeaderName::From)
            .unwrap()
            .contains("sip:102@"),
        "C sees B: {}",
        c_invite.header(HeaderName::From).unwrap()
    );
    join(bench, bob, &mut b_call, &ann);
    assert_eq!(notify(bench, alice, &a_call).0, "SIP/2.0 200 OK");
    bench.at(13_500);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    assert!(bench.take(bob.peer).is_empty(), "B stays in the call");
    bench.at(20_000);
    hang_up(bench, &mut ann, &mut c_call, bob, &b_call);

    let update = bench
        .json()
        .into_iter()
        .find(|e| e["event_type"] == "call_update_info")
        .unwrap();
    assert_eq!(update["caller"], "sip:102@acme.example", "{update}");
    assert_eq!(update["callee"], "sip:103@acme.example", "{update}");
    let mut c = target(
        (&id_at(10_000, 0), CDR, "normal_call"),
        ("103", ANN_URI),
        ("1795874597", "1795874597", "1795874600", "1795874607"),
        ("3", "7"),
        ("answered", 0, "caller_disconnect"),
    );
    c["caller"] = json!("102");
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("102", "Jason"),
            ("1795874587", "1795874587", "1795874592", "1795874607"),
            ("5", 15),
            ("answered", "0", "caller_disconnect"),
            vec![
                target(
                    ("1179059904569151490", CDR, "normal_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "1795874592", "1795874607"),
                    ("5", "15"),
                    ("answered", 0, "caller_disconnect"),
                ),
                c,
            ],
            11,
        ),
    );
}

/// C is busy: B's NOTIFY says 486 and the call stays A↔B (recall, the
/// default); B hangs up later.
#[test]
fn transfer_target_busy_is_recalled_to_the_referrer() {
    let (mut cast, mut a_call, mut b_call, mut ann) = answered_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    refer_to_ann(bench, bob, &mut b_call);
    let invite = bench.take_one(ann.peer);
    let c_call = ann.incoming(&invite);
    bench.at(11_000);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 486, None));
    assert!(bench.take(ann.peer).iter().any(|m| is(m, Method::Ack)));
    assert_eq!(
        notify(bench, bob, &b_call),
        (
            "SIP/2.0 486 Busy Here".into(),
            "terminated;reason=noresource".into()
        )
    );
    assert!(bench.take(alice.peer).is_empty(), "A is not touched");
    // A and B go on talking: B's re-INVITE (off hold) reaches A.
    bench.at(12_000);
    let reinvite = bob.request(&mut b_call, "INVITE", Some(("application/sdp", SDP_B)));
    bench.send(bob.peer, &reinvite);
    assert!(is(&bench.take_one(alice.peer), Method::Invite));
    bench.at(20_000);
    let _ = &mut a_call;
    let bye = bob.request(&mut b_call, "BYE", None);
    bench.send(bob.peer, &bye);
    let got = bench.take(bob.peer);
    assert!(got.iter().any(|m| m.status() == Some(200)));
    assert!(bench.take(alice.peer).iter().any(|m| is(m, Method::Bye)));

    assert!(
        !bench.timeline().contains(&"call_update_info".to_owned()),
        "no identity changed"
    );
    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("102", "Jason"),
            ("1795874587", "1795874587", "1795874592", "1795874607"),
            ("5", 15),
            ("answered", "0", "callee_disconnect"),
            vec![
                target(
                    ("1179059904569151490", CDR, "normal_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "1795874592", "1795874607"),
                    ("5", "15"),
                    ("answered", 0, "callee_disconnect"),
                ),
                target(
                    (&id_at(10_000, 0), CDR, "normal_call"),
                    ("103", ANN_URI),
                    ("1795874597", "0", "0", "1795874598"),
                    ("0", "0"),
                    ("noanswer", 486, "None"),
                ),
            ],
            8,
        ),
    );
}

/// `transfer.on_failure = "hangup"`: C rings out (20 s); B's NOTIFY says
/// 408 and the PBX hangs up A and B: the call ends `None`.
#[test]
fn transfer_target_rings_out_and_the_call_is_hung_up() {
    let mut config = EngineConfig::new(1, [0x42; 32], 42, PBX);
    config.transfer_on_failure = TransferOnFailure::Hangup;
    let mut cast = Cast::on(Bench::with_config(config));
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    let mut a_call = bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    let mut b_call = bob.incoming(&invite);
    bench.at(210);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 180, None));
    bench.at(5870);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ok = bench.take(alice.peer).pop().unwrap();
    bench.at(5900);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    let _ = bench.take(bob.peer);
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    bench.register(&mut ann);
    bench.at(10_000);
    refer_to_ann(bench, bob, &mut b_call);
    let invite = bench.take_one(ann.peer);
    let c_call = ann.incoming(&invite);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 180, None));
    bench.at(30_000);
    let cancel = bench.take_one(ann.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    let got = bench.take(bob.peer);
    assert_eq!(got.len(), 2, "NOTIFY, then BYE");
    let (line, state) = notify_of(bench, bob, &b_call, &got[0]);
    assert_eq!(line, "SIP/2.0 408 Request Timeout");
    assert_eq!(state, "terminated;reason=noresource");
    assert!(
        is(&got[1], Method::Bye),
        "B is hung up: {}",
        got[1].summary()
    );
    assert!(bench.take(alice.peer).iter().any(|m| is(m, Method::Bye)));

    golden(
        &cdr_of(bench, 0),
        call(
            (SESSION, CDR, CALL_ID),
            ("102", "Jason"),
            ("1795874587", "1795874587", "1795874592", "1795874617"),
            ("5", 25),
            ("answered", "0", "None"),
            vec![
                target(
                    ("1179059904569151490", CDR, "normal_call"),
                    ("102", DESK_URI),
                    ("1795874587", "1795874587", "1795874592", "1795874617"),
                    ("5", "25"),
                    ("answered", 0, "None"),
                ),
                target(
                    (&id_at(10_000, 0), CDR, "normal_call"),
                    ("103", ANN_URI),
                    ("1795874597", "1795874597", "0", "1795874617"),
                    ("20", "0"),
                    ("noanswer", 408, "None"),
                ),
            ],
            9,
        ),
    );
}

/// B hangs up right after the 202 (phones that do not wait for the
/// NOTIFY): its leg ends `blind_transfer_complete` then; C answers later
/// and joins A. No NOTIFY goes to the departed B.
#[test]
fn referrer_hangs_up_before_the_notify() {
    let (mut cast, mut a_call, mut b_call, mut ann) = answered_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    refer_to_ann(bench, bob, &mut b_call);
    bench.at(10_500);
    let bye = bob.request(&mut b_call, "BYE", None);
    bench.send(bob.peer, &bye);
    assert_eq!(bench.take_one(bob.peer).status(), Some(200));
    assert!(bench.take(alice.peer).is_empty(), "A waits for C");
    let (c_call, _) = c_answers(bench, &mut ann, 2500);
    join(bench, alice, &mut a_call, &ann);
    assert!(bench.take(bob.peer).is_empty(), "no NOTIFY to a gone B");
    bench.at(20_000);
    hang_up(bench, alice, &mut a_call, &ann, &c_call);
    assert_eq!(
        reasons(&cdr_of(bench, 0)),
        [
            json!(["102", "answered", 0, "blind_transfer_complete"]),
            json!(["103", "answered", 0, "caller_disconnect"])
        ]
    );
    assert_eq!(
        cdr_of(bench, 0)["call_targets"][0]["ended_time"],
        "1795874597"
    );
}

/// B hangs up after the 202 and C is busy: nobody to recall to, so A is
/// hung up and the call ends `None`.
#[test]
fn referrer_gone_and_target_busy_ends_the_call() {
    let (mut cast, mut a_call, mut b_call, mut ann) = answered_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    refer_to_ann(bench, bob, &mut b_call);
    let bye = bob.request(&mut b_call, "BYE", None);
    bench.send(bob.peer, &bye);
    let _ = bench.take(bob.peer);
    let invite = bench.take_one(ann.peer);
    let c_call = ann.incoming(&invite);
    bench.at(11_000);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 486, None));
    assert!(bench.take(alice.peer).iter().any(|m| is(m, Method::Bye)));
    let _ = &mut a_call;
    let cdr = cdr_of(bench, 0);
    assert_eq!(cdr["ended_reason"], "None");
    assert_eq!(
        reasons(&cdr),
        [
            json!(["102", "answered", 0, "blind_transfer_complete"]),
            json!(["103", "noanswer", 486, "None"])
        ]
    );
}

/// A hangs up while C rings: C is CANCELled (`cancelled`, 487), B gets
/// BYE; C's 200 crossing the CANCEL is ACKed and hung up.
#[test]
fn caller_hangs_up_while_the_transfer_target_rings_and_c_answers_after() {
    let (mut cast, mut a_call, mut b_call, mut ann) = answered_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    refer_to_ann(bench, bob, &mut b_call);
    let invite = bench.take_one(ann.peer);
    let c_call = ann.incoming(&invite);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 180, None));
    bench.at(12_000);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    assert!(bench.take(bob.peer).iter().any(|m| is(m, Method::Bye)));
    let cancel = bench.take_one(ann.peer);
    assert!(is(&cancel, Method::Cancel), "{}", cancel.summary());
    // C answers anyway, crossing the CANCEL.
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 200, Some(SDP_C)));
    let got = bench.take(ann.peer);
    assert!(
        got.iter().any(|m| is(m, Method::Ack)),
        "the late 2xx is ACKed"
    );
    assert!(got.iter().any(|m| is(m, Method::Bye)), "and hung up");
    let cdr = cdr_of(bench, 0);
    assert_eq!(cdr["ended_reason"], "caller_disconnect");
    assert_eq!(
        reasons(&cdr),
        [
            json!(["102", "answered", 0, "caller_disconnect"]),
            json!(["103", "noanswer", 487, "cancelled"])
        ]
    );
}

/// B never hangs up after the transfer: the PBX releases it 5 s after
/// the NOTIFY 200, and its leg ends `blind_transfer_complete` then.
#[test]
fn a_referrer_that_stays_is_released() {
    let (mut cast, mut a_call, mut b_call, mut ann) = answered_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    refer_to_ann(bench, bob, &mut b_call);
    let (c_call, _) = c_answers(bench, &mut ann, 3000);
    join(bench, alice, &mut a_call, &ann);
    let _ = notify(bench, bob, &b_call);
    bench.at(13_050 + pbx::RELEASE_AFTER.as_millis() as i64);
    let bye = bench.take_one(bob.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    bench.send(bob.peer, &bob.respond(&b_call, &bye, 200, None));
    bench.at(20_000);
    hang_up(bench, alice, &mut a_call, &ann, &c_call);
    let cdr = cdr_of(bench, 0);
    assert_eq!(
        cdr["call_targets"][0]["end_reason"],
        "blind_transfer_complete"
    );
    assert_eq!(cdr["call_targets"][0]["ended_time"], "1795874605");
}

/// A REFER while a relayed re-INVITE is pending gets 491; the call goes
/// on, and a REFER once it is over is accepted.
#[test]
fn refer_while_a_reinvite_is_pending_gets_491() {
    let (mut cast, mut a_call, mut b_call, _ann) = answered_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(9_000);
    let reinvite = alice.request(&mut a_call, "INVITE", Some(("application/sdp", SDP_A2)));
    bench.send(alice.peer, &reinvite);
    let relayed = bench.take_one(bob.peer);
    assert!(is(&relayed, Method::Invite));
    bench.at(9_100);
    let (answer, rest) = refer(bench, bob, &mut b_call, Some("<sip:103@acme.example>"));
    assert_eq!(answer.status(), Some(491), "{}", answer.summary());
    assert!(rest.is_empty());
    assert!(bench.take(ann_peer()).is_empty(), "C is not rung");
    // The re-INVITE completes; the REFER is tried again and accepted.
    bench.send(bob.peer, &bob.respond(&b_call, &relayed, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    bench.send(alice.peer, &alice.ack(&mut a_call, &ok, None));
    let _ = bench.take(bob.peer);
    bench.at(10_000);
    refer_to_ann(bench, bob, &mut b_call);
    assert!(is(&bench.take_one(ann_peer()), Method::Invite));
}

fn ann_peer() -> sip::transport::Peer {
    udp(ANN)
}

/// Bad REFERs get a clear 4xx each, and the call goes on untouched: A
/// hangs up at the end and the CDR is the plain answered call.
#[test]
fn bad_refers_are_refused_and_the_call_goes_on() {
    let (mut cast, mut a_call, mut b_call, _ann) = answered_with_ann();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let cases: [(Option<&str>, u16); 6] = [
        (None, 400),
        (Some("<not a uri"), 400),
        (Some("<sip:acme.example>"), 400),
        (Some("<sip:999@acme.example>"), 404),
        (Some("<sip:101@acme.example>"), 403),
        (Some("<sip:102@acme.example>"), 403),
    ];
    for (refer_to, code) in cases {
        let (answer, rest) = refer(bench, bob, &mut b_call, refer_to);
        assert_eq!(
            answer.status(),
            Some(code),
            "{refer_to:?}: {}",
            answer.summary()
        );
        assert!(rest.is_empty(), "{refer_to:?}: no NOTIFY");
    }
    // From a party not in the call: right dialog, another address.
    let mut intruder = Phone::new("104", "Bob", udp("192.0.2.66:5060"));
    let text = bob.request(&mut b_call, "REFER", None);
    let text = with_headers(&text, "Refer-To: <sip:103@acme.example>\r\n");
    bench.send(intruder.peer, &text);
    assert_eq!(bench.take_one(intruder.peer).status(), Some(403));
    // Outside any dialog.
    let mut stray = intruder.call("102", None);
    stray.remote_target = "sip:102@acme.example".into();
    let text = with_headers(
        &intruder.request(&mut stray, "REFER", None),
        "Refer-To: <sip:103@acme.example>\r\n",
    );
    bench.send(intruder.peer, &text);
    assert_eq!(bench.take_one(intruder.peer).status(), Some(403));
    // In a dialog the PBX does not know.
    stray.remote = format!("{};tag=nope", stray.remote);
    let text = with_headers(
        &intruder.request(&mut stray, "REFER", None),
        "Refer-To: <sip:103@acme.example>\r\n",
    );
    bench.send(intruder.peer, &text);
    assert_eq!(bench.take_one(intruder.peer).status(), Some(481));
    assert!(bench.take(ann_peer()).is_empty(), "C never rang");
    assert!(bench.take(alice.peer).is_empty(), "A never heard of it");
    bench.at(20_000);
    let bye = alice.request(&mut a_call, "BYE", None);
    bench.send(alice.peer, &bye);
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let cdr = cdr_of(bench, 0);
    assert_eq!(cdr["ended_reason"], "caller_disconnect");
    assert_eq!(
        reasons(&cdr),
        [json!(["102", "answered", 0, "caller_disconnect"])]
    );
}

/// The PBX's Allow names REFER and NOTIFY; a NOTIFY from a phone (the PBX
/// subscribes to nothing) gets 481.
#[test]
fn allow_names_refer_and_notify() {
    assert!(pbx::engine::ALLOW.contains("REFER") && pbx::engine::ALLOW.contains("NOTIFY"));
    let (mut cast, _a_call, mut b_call, _ann) = answered_with_ann();
    let Cast { bench, bob, .. } = &mut cast;
    let text = bob.request(&mut b_call, "NOTIFY", None);
    bench.send(bob.peer, &with_headers(&text, "Event: refer\r\n"));
    assert_eq!(bench.take_one(bob.peer).status(), Some(481));
}
