//! Blind transfer to a ring group and to a number outside (issue 13
//! leftovers; `call/transfer_route.rs`), played on the virtual clock with
//! the exact `call_cdr` of each: C reached through the outbound rule's
//! trunks (failover from a trunk answering 503), the referrer's outbound
//! permission, C as the members of a hunt group (the referrer and an
//! unregistered member skipped), a group whose every member is busy (the
//! transfer fails, the call is recalled).
//!
//! Cast: 101 (Tom, A) calls 102 (Jason, B), who answers at +5870 and
//! REFERs at +10000; 103 (Ann) at 10.0.0.9. Trunks as in `trunks.rs`:
//! carrier A 198.51.100.50:5060, carrier B 192.0.2.80:5070, rule
//! `0ZXXXXXXXX` → `+33…` by A then B.

#![recursion_limit = "256"]

mod common;

use std::time::Duration;

use cdr::Id;
use common::golden::*;
use common::*;
use pbx::routing::DialPattern;
use pbx::trunk::{
    OutboundPolicy, OutboundRule, Trunk, TrunkId, TrunkKind, TrunkTransport, Trunks, UserOutbound,
};
use pbx::{Extension, Input, RingGroup, RingStrategy};
use serde_json::{Value, json};
use sip::{HeaderName, Message, Method};

const ANN: &str = "10.0.0.9:5066";
const CARRIER_A: &str = "198.51.100.50:5060";
const CARRIER_B: &str = "192.0.2.80:5070";
const SDP_C: &str = "v=0\r\no=c 3 3 IN IP4 192.0.2.99\r\ns=-\r\nc=IN IP4 192.0.2.99\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=sendrecv\r\n";
const SDP_A2: &str = "v=0\r\no=101 2 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n";

fn id_at(offset: i64, seq: u64) -> String {
    let ms = (T0 as i64 + offset - 1_514_764_800_000) as u64;
    ((ms << 22) | (1 << 12) | seq).to_string()
}

fn trunk(id: u64, name: &str, host: &str, port: u16) -> Trunk {
    Trunk {
        id: TrunkId(Id::from_u64(id)),
        tenant_id: tenant_id(),
        name: name.into(),
        kind: TrunkKind::Ip,
        host: host.into(),
        port,
        transport: TrunkTransport::Udp,
        username: "acct77".into(),
        auth_username: String::new(),
        password: "carrier-secret".into(),
        realm: String::new(),
        from_domain: "sip.carrier.example".into(),
        caller_id: String::new(),
        country_code: "33".into(),
        max_calls: None,
        outbound_proxy: None,
        sources: vec![],
        source_port: None,
        register_expires: 3600,
        enabled: true,
    }
}

/// The trunks and the national rule; 102 may call out (with its caller
/// ID) when `allowed`.
fn trunks(allowed: bool) -> Trunks {
    let list = vec![
        trunk(1, "carrier-a", "198.51.100.50", 5060),
        trunk(2, "carrier-b", "192.0.2.80", 5070),
    ];
    let mut policy = OutboundPolicy::default();
    policy.users.insert(
        Extension::new("102"),
        UserOutbound {
            allowed,
            caller_id: "+33100000102".into(),
        },
    );
    let national = OutboundRule {
        id: Id::from_u64(21),
        name: "national".into(),
        pattern: DialPattern::parse("0ZXXXXXXXX").unwrap(),
        from_extensions: vec![],
        strip: 1,
        prepend: "+33".into(),
        trunks: list.iter().map(|t| t.id).collect(),
        caller_id: String::new(),
    };
    let mut table = Trunks::new();
    table.replace_tenant(tenant_id(), list, vec![], vec![national]);
    table.set_outbound_policy(tenant_id(), policy);
    table
}

fn with_headers(text: &str, headers: &str) -> String {
    text.replacen("Content-Length:", &format!("{headers}Content-Length:"), 1)
}

/// Bob REFERs to `to`: the PBX's answer, and the NOTIFYs (answered 200).
fn refer(
    bench: &mut Bench,
    bob: &mut Phone,
    b_call: &mut Call,
    to: &str,
) -> (Message, Vec<String>) {
    let text = bob.request(b_call, "REFER", None);
    bench.send(
        bob.peer,
        &with_headers(&text, &format!("Refer-To: <sip:{to}@acme.example>\r\n")),
    );
    let mut got = bench.take(bob.peer);
    let i = got.iter().position(|m| m.status().is_some()).unwrap();
    let answer = got.remove(i);
    (answer, notifies(bench, bob, b_call, got))
}

/// The sipfrag status lines of `got`'s NOTIFYs, each answered 200.
fn notifies(bench: &mut Bench, bob: &Phone, b_call: &Call, got: Vec<Message>) -> Vec<String> {
    got.into_iter()
        .filter(|m| is(m, Method::Notify))
        .map(|n| {
            bench.send(bob.peer, &bob.respond(b_call, &n, 200, None));
            String::from_utf8_lossy(n.body()).trim_end().to_owned()
        })
        .collect()
}

/// A is re-INVITEd with C's offer and answers; C gets its ACK with A's
/// answer (the last message `c` got).
fn join(bench: &mut Bench, alice: &mut Phone, a_call: &mut Call, c: &Phone) {
    let reinvite = bench.take_one(alice.peer);
    assert!(is(&reinvite, Method::Invite), "{}", reinvite.summary());
    assert_eq!(reinvite.body(), SDP_C.as_bytes());
    bench.at(bench.now + 50);
    bench.send(
        alice.peer,
        &alice.respond(a_call, &reinvite, 200, Some(SDP_A2)),
    );
    assert!(is(&bench.take_one(alice.peer), Method::Ack));
    let ack = bench.take(c.peer).pop().unwrap();
    assert!(is(&ack, Method::Ack), "{}", ack.summary());
    assert_eq!(ack.body(), SDP_A2.as_bytes());
}

fn reasons(cdr: &Value) -> Vec<Value> {
    cdr["call_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            json!([
                t["callee"],
                t["call_type"],
                t["status"],
                t["status_code"],
                t["end_reason"]
            ])
        })
        .collect()
}

/// 102 REFERs to 0612345678: carrier A is INVITEd without SDP (102's
/// caller ID at the trunk's domain) and answers 503, carrier B rings and
/// answers at +13000; A and C are joined, 102 hangs up at +13500, 101 at
/// +20000.
#[test]
fn a_blind_transfer_to_an_outside_number_leaves_by_the_trunks() {
    let (mut cast, mut a_call, mut b_call) = answered();
    cast.bench
        .input(Input::ReplaceTrunks(Box::new(trunks(true))));
    let Cast { bench, alice, bob } = &mut cast;
    let mut a = Phone::new("carrier", "", udp(CARRIER_A));
    let mut b = Phone::new("carrier", "", udp(CARRIER_B));
    bench.at(10_000);
    let (answer, lines) = refer(bench, bob, &mut b_call, "0612345678");
    assert_eq!(answer.status(), Some(202), "{}", answer.summary());
    assert_eq!(lines, ["SIP/2.0 100 Trying"]);
    let first = bench.take_one(a.peer);
    assert!(is(&first, Method::Invite));
    assert!(first.body().is_empty(), "late offer to C");
    assert_eq!(
        first.request_uri_str(),
        Some("sip:+33612345678@198.51.100.50")
    );
    assert_eq!(
        first.from().unwrap().uri.to_string(),
        "sip:+33100000102@sip.carrier.example",
        "the referrer's caller ID"
    );
    let first_call = a.incoming(&first);
    bench.at(10_020);
    bench.send(a.peer, &a.respond(&first_call, &first, 503, None));
    assert!(is(&bench.take_one(a.peer), Method::Ack));
    let second = bench.take_one(b.peer);
    assert!(is(&second, Method::Invite), "{}", second.summary());
    assert_eq!(
        second.request_uri_str(),
        Some("sip:+33612345678@192.0.2.80:5070")
    );
    let mut c_call = b.incoming(&second);
    bench.at(10_200);
    bench.send(b.peer, &b.respond(&c_call, &second, 180, None));
    bench.at(13_000);
    bench.send(b.peer, &b.respond(&c_call, &second, 200, Some(SDP_C)));
    join(bench, alice, &mut a_call, &b);
    let got = bench.take(bob.peer);
    assert_eq!(notifies(bench, bob, &b_call, got), ["SIP/2.0 200 OK"]);
    let trunk_b = TrunkId(Id::from_u64(2));
    assert_eq!(bench.engine.trunk_calls().of(trunk_b), 1);
    assert_eq!(bench.engine.trunk_calls().outbound(tenant_id()), 1);
    bench.at(13_500);
    bench.send(bob.peer, &bob.request(&mut b_call, "BYE", None));
    assert_eq!(bench.take_one(bob.peer).status(), Some(200));
    assert_eq!(bench.engine.trunk_calls().of(trunk_b), 1, "C still talks");
    bench.at(20_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(b.peer);
    assert!(is(&bye, Method::Bye));
    bench.send(b.peer, &b.respond(&c_call, &bye, 200, None));
    let _ = &mut c_call;
    assert!(bench.engine.trunk_calls().is_empty(), "no trunk call left");

    let updates: Vec<Value> = bench
        .json()
        .into_iter()
        .filter(|e| e["event_type"] == "call_update_info")
        .collect();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["callee"], "sip:+33612345678@acme.example");
    let trunk_target = |id: &str, trunk: &str, dest: &str, times, status: (&str, u16, &str)| {
        let mut t = target(
            (id, CDR, "normal_call"),
            ("+33612345678", dest),
            times,
            ("0", if status.0 == "answered" { "7" } else { "0" }),
            status,
        );
        t["trunk_name"] = json!(trunk);
        t["outbound_caller_id"] = json!("+33100000102");
        if status.0 == "answered" {
            t["ring_duration"] = json!("3");
        }
        t
    };
    let failed = trunk_target(
        &id_at(10_000, 0),
        "carrier-a",
        "sip:+33612345678@198.51.100.50",
        ("1795874597", "0", "0", "1795874597"),
        ("noanswer", 503, "None"),
    );
    let answered = trunk_target(
        &id_at(10_020, 0),
        "carrier-b",
        "sip:+33612345678@192.0.2.80:5070",
        ("1795874597", "1795874597", "1795874600", "1795874607"),
        ("answered", 0, "caller_disconnect"),
    );
    let actual = cdr_of(bench, 0);
    let seq = actual["sequence"].as_u64().unwrap() as u32;
    let mut expected = call(
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
            failed,
            answered,
        ],
        seq,
    );
    // An internal call transferred out stays `ext`; its trunk is the
    // first trunk leg's.
    expected["trunk_name"] = json!("carrier-a");
    expected["outbound_caller_id"] = json!("+33100000102");
    golden(&actual, expected);
}

/// Who may send the call out: 102 without outbound permission gets 403
/// and a number no rule takes 404; nothing changes, the call goes on.
#[test]
fn a_transfer_out_is_the_referrers_call_out() {
    let (mut cast, mut a_call, mut b_call) = answered();
    cast.bench
        .input(Input::ReplaceTrunks(Box::new(trunks(false))));
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let (answer, lines) = refer(bench, bob, &mut b_call, "0612345678");
    assert_eq!(answer.status(), Some(403), "{}", answer.summary());
    assert_eq!(answer.reason_phrase(), Some("Outbound Calls Not Allowed"));
    assert!(lines.is_empty());
    let (answer, _) = refer(bench, bob, &mut b_call, "999");
    assert_eq!(answer.status(), Some(404), "{}", answer.summary());
    assert!(bench.take(alice.peer).is_empty());
    // The call goes on: A and B still talk.
    bench.at(11_000);
    let info = alice.request(
        &mut a_call,
        "INFO",
        Some(("application/dtmf-relay", "Signal=1\r\n")),
    );
    bench.send(alice.peer, &info);
    let relayed = bench.take_one(bob.peer);
    assert!(is(&relayed, Method::Info));
    assert!(bench.engine.trunk_calls().is_empty());
}

fn group(bench: &mut Bench, strategy: RingStrategy, members: &[&str]) {
    bench
        .engine
        .directory_mut()
        .upsert_group(RingGroup {
            tenant_id: tenant_id(),
            number: Extension::new("600"),
            name: "Sales".into(),
            strategy,
            members: members.iter().map(|m| Extension::new(*m)).collect(),
            member_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(25),
            no_answer: Some("104".into()),
        })
        .unwrap();
}

/// 102 REFERs to hunt group 600 (102, 104, 103): 102 is the referrer and
/// 104 has no device, so 103 rings (a `ring_group_call` target) and
/// answers at +13000; call_update_info names Ann.
#[test]
fn a_blind_transfer_to_a_ring_group_rings_its_members() {
    let (mut cast, mut a_call, mut b_call) = answered();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    cast.bench.register(&mut ann);
    group(&mut cast.bench, RingStrategy::Hunt, &["102", "104", "103"]);
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let (answer, lines) = refer(bench, bob, &mut b_call, "600");
    assert_eq!(answer.status(), Some(202), "{}", answer.summary());
    assert_eq!(lines, ["SIP/2.0 100 Trying"]);
    let invite = bench.take_one(ann.peer);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    assert!(invite.body().is_empty());
    assert!(
        invite
            .header(HeaderName::From)
            .unwrap()
            .contains("sip:101@")
    );
    let mut c_call = ann.incoming(&invite);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 180, None));
    bench.at(13_000);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 200, Some(SDP_C)));
    join(bench, alice, &mut a_call, &ann);
    let got = bench.take(bob.peer);
    assert_eq!(notifies(bench, bob, &b_call, got), ["SIP/2.0 200 OK"]);
    bench.at(13_500);
    bench.send(bob.peer, &bob.request(&mut b_call, "BYE", None));
    assert_eq!(bench.take_one(bob.peer).status(), Some(200));
    bench.at(20_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(ann.peer);
    bench.send(ann.peer, &ann.respond(&c_call, &bye, 200, None));
    let _ = &mut c_call;

    let update = bench
        .json()
        .into_iter()
        .find(|e| e["event_type"] == "call_update_info")
        .expect("call_update_info");
    assert_eq!(
        (&update["callee"], &update["callee_display_name"]),
        (&json!("sip:103@acme.example"), &json!("Ann"))
    );
    let actual = cdr_of(bench, 0);
    let seq = actual["sequence"].as_u64().unwrap() as u32;
    let expected = call(
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
                (&id_at(10_000, 0), CDR, "ring_group_call"),
                ("103", ANN_URI),
                ("1795874597", "1795874597", "1795874600", "1795874607"),
                ("3", "7"),
                ("answered", 0, "caller_disconnect"),
            ),
        ],
        seq,
    );
    golden(&actual, expected);
}

/// A ring-all group whose one member refuses (486): the NOTIFY says 486,
/// the group's no-answer destination does not apply, and the call is
/// recalled to 102 (A↔B go on; A hangs up at +20000).
#[test]
fn a_ring_group_that_nobody_answers_fails_the_transfer() {
    let (mut cast, mut a_call, mut b_call) = answered();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    cast.bench.register(&mut ann);
    group(&mut cast.bench, RingStrategy::RingAll, &["103"]);
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let (answer, _) = refer(bench, bob, &mut b_call, "600");
    assert_eq!(answer.status(), Some(202));
    let invite = bench.take_one(ann.peer);
    let c_call = ann.incoming(&invite);
    bench.at(11_000);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 486, None));
    assert!(is(&bench.take(ann.peer).pop().unwrap(), Method::Ack));
    let got = bench.take(bob.peer);
    assert_eq!(
        notifies(bench, bob, &b_call, got),
        ["SIP/2.0 486 Busy Here"]
    );
    assert!(bench.take(alice.peer).is_empty(), "A stays with B");
    bench.at(20_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(bob.peer);
    assert!(is(&bye, Method::Bye));
    let actual = cdr_of(bench, 0);
    let seq = actual["sequence"].as_u64().unwrap() as u32;
    golden(
        &actual,
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
                target(
                    (&id_at(10_000, 0), CDR, "ring_group_call"),
                    ("103", ANN_URI),
                    ("1795874597", "0", "0", "1795874598"),
                    ("0", "0"),
                    ("noanswer", 486, "None"),
                ),
            ],
            seq,
        ),
    );
}

/// Every trunk fails (503, then a transport error): the NOTIFY says 480
/// (no trunk left, as a caller would hear), the call is recalled to 102,
/// and both attempts are C's failed targets with their codes.
#[test]
fn a_transfer_out_that_no_trunk_takes_is_recalled() {
    let (mut cast, mut a_call, mut b_call) = answered();
    cast.bench
        .input(Input::ReplaceTrunks(Box::new(trunks(true))));
    let Cast { bench, alice, bob } = &mut cast;
    let mut a = Phone::new("carrier", "", udp(CARRIER_A));
    let mut b = Phone::new("carrier", "", udp(CARRIER_B));
    bench.at(10_000);
    let (answer, _) = refer(bench, bob, &mut b_call, "0612345678");
    assert_eq!(answer.status(), Some(202));
    let first = bench.take_one(a.peer);
    let first_call = a.incoming(&first);
    bench.send(a.peer, &a.respond(&first_call, &first, 503, None));
    assert!(is(&bench.take_one(a.peer), Method::Ack));
    let second = bench.take_one(b.peer);
    let second_call = b.incoming(&second);
    bench.send(b.peer, &b.respond(&second_call, &second, 500, None));
    assert!(is(&bench.take(b.peer).pop().unwrap(), Method::Ack));
    let got = bench.take(bob.peer);
    assert_eq!(
        notifies(bench, bob, &b_call, got),
        ["SIP/2.0 480 Temporarily Unavailable"]
    );
    assert!(bench.take(alice.peer).is_empty(), "A stays with B");
    assert!(bench.engine.trunk_calls().is_empty());
    bench.at(20_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    assert!(is(&bench.take_one(bob.peer), Method::Bye));
    let actual = cdr_of(bench, 0);
    let seq = actual["sequence"].as_u64().unwrap() as u32;
    let failed = |id: &str, trunk: &str, dest: &str, code: u16| {
        let mut t = target(
            (id, CDR, "normal_call"),
            ("+33612345678", dest),
            ("1795874597", "0", "0", "1795874597"),
            ("0", "0"),
            ("noanswer", code, "None"),
        );
        t["trunk_name"] = json!(trunk);
        t["outbound_caller_id"] = json!("+33100000102");
        t
    };
    let mut expected = call(
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
            failed(
                &id_at(10_000, 0),
                "carrier-a",
                "sip:+33612345678@198.51.100.50",
                503,
            ),
            failed(
                &id_at(10_000, 1),
                "carrier-b",
                "sip:+33612345678@192.0.2.80:5070",
                500,
            ),
        ],
        seq,
    );
    // The failed trunk legs still name the call's first trunk.
    expected["trunk_name"] = json!("carrier-a");
    expected["outbound_caller_id"] = json!("+33100000102");
    golden(&actual, expected);
}

/// A hunt group steps through its members during a transfer: 103 rings
/// for its `member_timeout` (10 s) and rings out, then 104 (registered
/// for the test) answers; 103's target ends as a ring-out.
#[test]
fn a_transfer_to_a_hunt_group_steps_through_its_members() {
    let (mut cast, mut a_call, mut b_call) = answered();
    let mut ann = Phone::new("103", "Ann", udp(ANN));
    cast.bench.register(&mut ann);
    let mut eve = Phone::new("104", "Bob", udp("10.0.0.12:5072"));
    cast.bench.register(&mut eve);
    group(&mut cast.bench, RingStrategy::Hunt, &["103", "104"]);
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    let (answer, _) = refer(bench, bob, &mut b_call, "600");
    assert_eq!(answer.status(), Some(202));
    let invite = bench.take_one(ann.peer);
    let c_call = ann.incoming(&invite);
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 180, None));
    assert!(bench.take(eve.peer).is_empty(), "one member at a time");
    bench.at(20_000);
    let cancel = bench
        .take(ann.peer)
        .into_iter()
        .find(|m| is(m, Method::Cancel))
        .expect("103 rang out");
    bench.send(ann.peer, &ann.respond(&c_call, &cancel, 200, None));
    bench.send(ann.peer, &ann.respond(&c_call, &invite, 487, None));
    let invite = bench
        .take(eve.peer)
        .into_iter()
        .find(|m| is(m, Method::Invite))
        .expect("then 104");
    let mut e_call = eve.incoming(&invite);
    bench.at(21_000);
    bench.send(eve.peer, &eve.respond(&e_call, &invite, 200, Some(SDP_C)));
    join(bench, alice, &mut a_call, &eve);
    let got = bench.take(bob.peer);
    assert_eq!(notifies(bench, bob, &b_call, got), ["SIP/2.0 200 OK"]);
    bench.at(30_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let _ = &mut e_call;
    // 102 was released by the PBX (it never hung up).
    bench.at(40_000);
    let cdr = cdr_of(bench, 0);
    assert_eq!(
        reasons(&cdr),
        [
            json!([
                "102",
                "normal_call",
                "answered",
                0,
                "blind_transfer_complete"
            ]),
            json!(["103", "ring_group_call", "noanswer", 408, "None"]),
            json!(["104", "ring_group_call", "answered", 0, "caller_disconnect"]),
        ]
    );
}
