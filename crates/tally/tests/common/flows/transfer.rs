//! Flows where a call changes hands (SPEC §3: blind and attended
//! transfer, INVITE with Replaces, call pickup), played against a
//! `--demo` server by SIPp phones and the test's own [`Phone`], each
//! reading both sessions' CDRs back over REST. Shared by the SQLite and
//! PostgreSQL suites like the rest of `flows`.

use std::path::Path;

use serde_json::{Value, json};

use super::super::{Phone, Sipp, free_sip_port, wait_for_cdrs};
use super::{
    DEMO_DOMAIN, Demo, Hooks, assert_common, assert_events, finished, kinds, targets,
    with_hooks_allowed,
};

/// SIPp `scenario` places one call from `from` to `to`, in the
/// background (the caller of a call another phone joins).
fn spawn_call(demo: &Demo, scenario: &str, from: &str, to: &str) -> Sipp {
    Sipp::spawn(
        demo.server.sip,
        scenario,
        "u1",
        free_sip_port(),
        &[
            "-s",
            to,
            "-set",
            "caller",
            from,
            "-au",
            from,
            "-ap",
            &demo.password(from),
            "-auth_uri",
            &format!("{to}@{DEMO_DOMAIN}"),
        ],
    )
}

/// Waits (bounded) until `GET /api/sessions` shows a leg of `number`
/// ringing.
fn wait_ringing(demo: &Demo, number: &str) {
    let admin = demo.admin();
    let deadline = std::time::Instant::now() + super::super::WAIT;
    loop {
        let r = admin.get("/api/sessions");
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let ringing =
            v["items"].as_array().into_iter().flatten().any(|s| {
                s["legs"].as_array().into_iter().flatten().any(|l| {
                    l["number"] == number && l["state"] == "ringing" && l["role"] != "caller"
                })
            });
        if ringing {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "sessions: {v}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// SPEC §3 "call pickup", both codes on one server: 102 and 103 share a
/// pickup group (set over REST); 101 calls 102, whose phone rings; 103
/// dials `*8` (then, on a second call, `**102`) and takes the call. 102's
/// target ends `replaced`, 103 is a new answered target; the picker's
/// INVITE has no CDR of its own.
pub fn pickup(dir: &Path, extra: &[&str]) {
    let args = with_hooks_allowed(dir, extra);
    let demo = Demo::start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let hooks = Hooks::subscribe(&demo);
    let admin = demo.admin();
    let users = admin.get("/api/users").json();
    for ext in ["102", "103"] {
        let id = users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["extension"] == ext)
            .and_then(|u| u["id"].as_str())
            .unwrap()
            .to_owned();
        let r = admin.request(
            "PATCH",
            &format!("/api/users/{id}"),
            "application/json",
            &json!({"pickup_group": "sales"}).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["pickup_group"], "sales");
    }
    let mut seen: Vec<Value> = Vec::new();
    // One device of 102, rung on both calls.
    let port = free_sip_port();
    demo.register("102", port);
    for (n, code) in [(1u64, "*8"), (2, "**102")] {
        let callee = Sipp::spawn(demo.server.sip, "uas_cancelled.xml", "u1", port, &[]);
        let caller = spawn_call(&demo, "uac_rejoined.xml", "101", "102");
        wait_ringing(&demo, "102");
        demo.call("uac_pickup.xml", "103", code);
        finished(&demo, caller, "uac_rejoined.xml");
        finished(&demo, callee, "uas_cancelled.xml");
        // One CDR per call: the picker's INVITE has none of its own.
        let list = wait_for_cdrs(&admin, n);
        let id = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].clone())
            .find(|id| !seen.contains(id))
            .unwrap();
        seen.push(id.clone());
        let detail = admin.get(&format!("/api/cdrs/{}", id.as_str().unwrap()));
        assert_eq!(detail.status, 200, "{}", detail.body);
        let cdr = detail.json()["items"][0].clone();
        assert_common(&cdr);
        assert_eq!(
            (&cdr["call_status"], &cdr["end_reason"]),
            (&json!("answered"), &json!("CALLER_DISCONNECTED")),
            "{code}: {cdr}"
        );
        let got: Vec<Value> = targets(&cdr)
            .iter()
            .map(|t| json!([t["callee"], t["status"], t["end_reason"]]))
            .collect();
        assert_eq!(
            got,
            [
                json!(["102", "noanswer", "replaced"]),
                json!(["103", "answered", "caller_disconnect"])
            ],
            "{code}: {cdr}"
        );
        // The webhook: the picker is added and answers; no session of
        // the picker's own INVITE reaches it.
        let events = hooks.of_session(cdr["session_id"].as_str().expect("session"));
        assert_events(&events, &cdr);
        let k = kinds(&events);
        assert!(k.contains(&"cdr_target_answer".to_owned()), "{k:?}");
    }
    let sessions: std::collections::HashSet<String> = hooks
        .all()
        .iter()
        .filter_map(|e| e["session_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(sessions.len(), 2, "one session per call: {sessions:?}");
}

/// SPEC §3 "blind transfer": 101 calls 102, who answers and REFERs the
/// call to 103 (202, NOTIFY 100 then 200), then hangs up; 103 is INVITEd
/// without SDP, its offer reaches 101 in a re-INVITE; 101 hangs up. 102's
/// target ends `blind_transfer_complete`, 103 is a new answered target.
pub fn blind_transfer(dir: &Path, extra: &[&str]) {
    let args = with_hooks_allowed(dir, extra);
    let demo = Demo::start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let hooks = Hooks::subscribe(&demo);
    let target = demo.phone("103", "uas.xml");
    let port = free_sip_port();
    demo.register("102", port);
    let referrer = Sipp::spawn(
        demo.server.sip,
        "uas_refers.xml",
        "u1",
        port,
        &["-set", "target", "103"],
    );
    demo.call("uac_rejoined.xml", "101", "102");
    finished(&demo, referrer, "uas_refers.xml");
    finished(&demo, target, "uas.xml");
    let cdr = demo.only_cdr();
    assert_common(&cdr);
    assert_eq!(
        (&cdr["call_status"], &cdr["end_reason"]),
        (&json!("answered"), &json!("CALLER_DISCONNECTED")),
        "{cdr}"
    );
    let got: Vec<Value> = targets(&cdr)
        .iter()
        .map(|t| json!([t["callee"], t["status"], t["end_reason"]]))
        .collect();
    assert_eq!(
        got,
        [
            json!(["102", "answered", "blind_transfer_complete"]),
            json!(["103", "answered", "caller_disconnect"])
        ],
        "{cdr}"
    );
    // The webhook: 103 added after the REFER, the parties' change
    // announced (call_update_info naming 103) once 103 answered.
    let events = hooks.of_session(cdr["session_id"].as_str().expect("session"));
    assert_events(&events, &cdr);
    let k = kinds(&events);
    let update = events
        .iter()
        .find(|e| e["event_type"] == "call_update_info")
        .unwrap_or_else(|| panic!("no call_update_info: {k:?}"));
    assert_eq!(
        update["callee"],
        format!("sip:103@{DEMO_DOMAIN}"),
        "{update}"
    );
    let answers: Vec<usize> = k
        .iter()
        .enumerate()
        .filter(|(_, t)| *t == "cdr_target_answer")
        .map(|(i, _)| i)
        .collect();
    let at = k.iter().position(|t| t == "call_update_info").unwrap_or(0);
    assert!(answers.len() == 2 && answers[1] < at, "{k:?}");
}

/// SPEC §3 "attended transfer": 101 (SIPp) calls 102 (the test's phone),
/// who answers, consults 103 (SIPp) in a call of its own, then REFERs the
/// first call with Replaces naming the consultation: the PBX joins 101
/// and 103 and ends both of 102's legs. Both sessions' CDRs over REST.
pub fn attended_transfer(dir: &Path, extra: &[&str]) {
    let demo = Demo::start(dir, extra);
    let target = demo.phone("103", "uas_transferred.xml");
    let mut bob = Phone::new("102", &demo.password("102"), DEMO_DOMAIN, demo.server.sip);
    assert_eq!(bob.register(), 200);
    let caller = spawn_call(&demo, "uac_rejoined.xml", "101", "102");
    let s1 = bob.recv_request("INVITE");
    bob.reply(&s1, 180, "b1");
    bob.reply(&s1, 200, "b1");
    let _ack = bob.recv_request("ACK");
    // The consultation.
    let s2 = bob.invite("103", |_| {});
    assert_eq!(s2.status, 200);
    bob.ack(&s2, "103");
    let replaces = sip::headers::Replaces {
        call_id: s2.call_id.clone(),
        to_tag: s2.to_tag.clone(),
        from_tag: s2.from_tag.clone(),
        early_only: false,
    };
    let refer_to =
        sip::dialog::refer_to_with_replaces(&format!("sip:103@{DEMO_DOMAIN}"), &replaces);
    let pbx = super::super::phone::contact_uri(&s1).expect("Contact");
    let (from, to) = (
        s1.header_named("To").unwrap(),
        s1.header_named("From").unwrap(),
    );
    let call_id = s1.call_id().unwrap();
    let in_s1 = |method: &str, cseq: u32, extra: &str| {
        format!(
            "{method} {pbx} SIP/2.0\r\n{via}Max-Forwards: 70\r\nFrom: {from};tag=b1\r\n\
             To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{extra}\
             Content-Length: 0\r\n\r\n",
            via = bob.via(),
        )
    };
    bob.send(&in_s1(
        "REFER",
        1,
        &format!(
            "Contact: <sip:102@{}>\r\nRefer-To: {refer_to}\r\n",
            bob.addr()
        ),
    ));
    // 202; NOTIFY 100 and NOTIFY 200 on S1; BYE on S2: each answered.
    let (mut accepted, mut done, mut s2_bye) = (false, false, false);
    while !(accepted && done && s2_bye) {
        let m = bob.recv();
        match m.method().map(|m| m.as_str().to_owned()).as_deref() {
            None => accepted |= m.status() == Some(202),
            Some("NOTIFY") => {
                done |= m.body().starts_with(b"SIP/2.0 200");
                bob.reply(&m, 200, "b1");
            }
            Some("BYE") => {
                s2_bye |= m.call_id() == Ok(s2.call_id.as_str());
                bob.reply(&m, 200, "b1");
            }
            _ => {}
        }
    }
    bob.send(&in_s1("BYE", 2, ""));
    finished(&demo, caller, "uac_rejoined.xml");
    finished(&demo, target, "uas_transferred.xml");

    let admin = demo.admin();
    let list = wait_for_cdrs(&admin, 2);
    let detail = |callee: &str| {
        let id = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["callee"] == callee)
            .and_then(|c| c["id"].as_str())
            .unwrap_or_else(|| panic!("no CDR to {callee}: {list}"))
            .to_owned();
        admin.get(&format!("/api/cdrs/{id}")).json()["items"][0].clone()
    };
    let first = detail("102");
    assert_common(&first);
    assert_eq!(first["end_reason"], "CALLER_DISCONNECTED", "{first}");
    let got: Vec<Value> = targets(&first)
        .iter()
        .map(|t| json!([t["callee"], t["status"], t["end_reason"]]))
        .collect();
    assert_eq!(
        got,
        [
            json!(["102", "answered", "attended_transfer_complete"]),
            json!(["103", "answered", "caller_disconnect"])
        ],
        "{first}"
    );
    let consultation = detail("103");
    assert_eq!(consultation["caller"], "102", "{consultation}");
    assert_eq!(
        consultation["end_reason"], "CONSULT_TRANSFER_COMPLETED",
        "{consultation}"
    );
    let got: Vec<Value> = targets(&consultation)
        .iter()
        .map(|t| json!([t["callee"], t["status"], t["end_reason"]]))
        .collect();
    assert_eq!(
        got,
        [json!(["103", "answered", "replaced"])],
        "{consultation}"
    );
}

/// INVITE with Replaces from a phone (RFC 3891), the way some phones
/// complete an attended transfer: 101 (SIPp) calls 102, who answers and
/// consults 103; 103's phone sends the PBX an INVITE whose Replaces names
/// 102's first call. The same CDRs as REFER with Replaces.
pub fn invite_with_replaces(dir: &Path, extra: &[&str]) {
    let demo = Demo::start(dir, extra);
    let mut bob = Phone::new("102", &demo.password("102"), DEMO_DOMAIN, demo.server.sip);
    let mut ann = Phone::new("103", &demo.password("103"), DEMO_DOMAIN, demo.server.sip);
    assert_eq!(bob.register(), 200);
    assert_eq!(ann.register(), 200);
    let caller = spawn_call(&demo, "uac_rejoined.xml", "101", "102");
    let s1 = bob.recv_request("INVITE");
    bob.reply(&s1, 200, "b1");
    let _ack = bob.recv_request("ACK");
    // The consultation, 102 → 103.
    let answering = std::thread::spawn(move || {
        let invite = ann.recv_request("INVITE");
        ann.reply(&invite, 200, "c1");
        let _ack = ann.recv_request("ACK");
        (ann, invite)
    });
    let s2 = bob.invite("103", |_| {});
    assert_eq!(s2.status, 200);
    bob.ack(&s2, "103");
    let (ann, c_old) = answering.join().expect("103 answers");
    // 102 answers whatever the PBX sends it now (BYE on both calls).
    let hanging_up = std::thread::spawn(move || {
        for _ in 0..2 {
            let bye = bob.recv_request("BYE");
            bob.reply(&bye, 200, "b1");
        }
    });
    let pbx_tag = s1
        .from()
        .ok()
        .and_then(|f| f.tag().map(str::to_owned))
        .expect("PBX tag");
    let replaces = sip::headers::Replaces {
        call_id: s1.call_id().unwrap().to_owned(),
        to_tag: pbx_tag,
        from_tag: "b1".into(),
        early_only: false,
    };
    let call_id = format!("replacing-{}@test", ann.addr().port());
    let invite = |cseq: u32, auth: &str| {
        format!(
            "INVITE sip:102@{DEMO_DOMAIN} SIP/2.0\r\n{via}Max-Forwards: 70\r\n\
             From: <sip:103@{DEMO_DOMAIN}>;tag=r1\r\nTo: <sip:102@{DEMO_DOMAIN}>\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:103@{addr}>\r\n\
             Replaces: {replaces}\r\n{auth}Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            via = ann.via(),
            addr = ann.addr(),
            len = super::super::phone::SDP.len(),
            sdp = super::super::phone::SDP,
        )
    };
    ann.send(&invite(1, ""));
    let challenge = ann.recv_final();
    assert_eq!(challenge.status(), Some(407), "{}", challenge.summary());
    ann.send(&format!(
        "ACK sip:102@{DEMO_DOMAIN} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
         From: <sip:103@{DEMO_DOMAIN}>;tag=r1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        via = challenge.header_named("Via").unwrap(),
        to = challenge.header_named("To").unwrap(),
    ));
    let auth = ann.credentials(&challenge, "INVITE", &format!("sip:102@{DEMO_DOMAIN}"));
    ann.send(&invite(2, &auth));
    // The 200 (ACKed), the PBX's BYE of the consultation leg, then the
    // caller's BYE on the new dialog: each answered.
    let (mut joined, mut old_gone) = (false, false);
    loop {
        let m = ann.recv();
        if m.status() == Some(200) && m.cseq().is_ok_and(|c| c.method.as_str() == "INVITE") {
            assert!(!m.body().is_empty(), "the caller's answer");
            ann.send(&format!(
                "ACK {target} SIP/2.0\r\n{via}Max-Forwards: 70\r\n\
                 From: <sip:103@{DEMO_DOMAIN}>;tag=r1\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
                 CSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n",
                target = super::super::phone::contact_uri(&m).expect("Contact"),
                via = ann.via(),
                to = m.header_named("To").unwrap(),
            ));
            joined = true;
        } else if m.status().is_some_and(|s| s >= 300) {
            panic!("the INVITE with Replaces was refused: {}", m.summary());
        } else if m.method().is_some_and(|x| x.as_str() == "BYE") {
            ann.reply(&m, 200, "r1");
            if m.call_id() == c_old.call_id() {
                old_gone = true;
            } else {
                break;
            }
        }
    }
    assert!(joined && old_gone);
    hanging_up.join().expect("102 hung up on");
    finished(&demo, caller, "uac_rejoined.xml");

    let admin = demo.admin();
    let list = wait_for_cdrs(&admin, 2);
    let detail = |callee: &str| {
        let id = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["callee"] == callee)
            .and_then(|c| c["id"].as_str())
            .unwrap_or_else(|| panic!("no CDR to {callee}: {list}"))
            .to_owned();
        admin.get(&format!("/api/cdrs/{id}")).json()["items"][0].clone()
    };
    let ends = |cdr: &Value| -> Vec<Value> {
        targets(cdr)
            .iter()
            .map(|t| json!([t["callee"], t["status"], t["end_reason"]]))
            .collect()
    };
    let first = detail("102");
    assert_common(&first);
    assert_eq!(first["end_reason"], "CALLER_DISCONNECTED", "{first}");
    assert_eq!(
        ends(&first),
        [
            json!(["102", "answered", "attended_transfer_complete"]),
            json!(["103", "answered", "caller_disconnect"])
        ],
        "{first}"
    );
    let consultation = detail("103");
    assert_eq!(
        consultation["end_reason"], "CONSULT_TRANSFER_COMPLETED",
        "{consultation}"
    );
    assert_eq!(
        ends(&consultation),
        [json!(["103", "answered", "replaced"])],
        "{consultation}"
    );
}

/// The CDR detail of the tenant's call that is not one of `seen`, once
/// `seen.len() + 1` CDRs exist; its id is added to `seen`.
fn next_cdr(demo: &Demo, seen: &mut Vec<Value>) -> Value {
    let admin = demo.admin();
    let list = wait_for_cdrs(&admin, seen.len() as u64 + 1);
    let id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .find(|id| !seen.contains(id))
        .unwrap_or_else(|| panic!("no new CDR: {list}"));
    seen.push(id.clone());
    let detail = admin.get(&format!("/api/cdrs/{}", id.as_str().unwrap()));
    assert_eq!(detail.status, 200, "{}", detail.body);
    detail.json()["items"][0].clone()
}

/// The `call_update_info` of `cdr`'s session: its callee.
fn updated_callee(hooks: &Hooks, cdr: &Value) -> Value {
    let events = hooks.of_session(cdr["session_id"].as_str().expect("session"));
    assert_events(&events, cdr);
    let k = kinds(&events);
    let update = events
        .iter()
        .find(|e| e["event_type"] == "call_update_info")
        .unwrap_or_else(|| panic!("no call_update_info: {k:?}"));
    // Announced once C answered, after its cdr_target_answer.
    let at = k.iter().position(|t| t == "call_update_info").unwrap();
    let answers = k[..at].iter().filter(|t| *t == "cdr_target_answer").count();
    assert_eq!(answers, 2, "{k:?}");
    update["callee"].clone()
}

/// Blind transfer to a ring group and to a number outside (issue 13):
/// 101 calls 102, who REFERs the call to ring group 600 (`ring_all`: 103
/// and 104); both ring, 103 answers (104 is CANCELled), 101 and 103 talk.
/// Then, with a SIPp carrier provisioned as a trunk over REST, 101 calls
/// 105, who REFERs the call to 0612345678: the carrier gets `+33612345678` with the
/// rule's caller ID and answers. Both CDRs over REST: the members as
/// `ring_group_call` targets, the carrier's target with its trunk, the
/// call still an extension call; the webhook's `call_update_info` names
/// who answered.
pub fn blind_transfer_to_a_group_and_out(dir: &Path, extra: &[&str]) {
    let args = with_hooks_allowed(dir, extra);
    let demo = Demo::start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let hooks = Hooks::subscribe(&demo);
    let admin = demo.admin();
    let r = admin.post_json(
        "/api/ring_groups",
        &json!({"number": "600", "name": "Sales", "strategy": "ring_all",
               "members": ["103", "104"]}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let mut seen = Vec::new();

    // To the group.
    let answers = demo.phone("103", "uas.xml");
    let loses = demo.phone("104", "uas_cancelled.xml");
    let port = free_sip_port();
    demo.register("102", port);
    let referrer = Sipp::spawn(
        demo.server.sip,
        "uas_refers.xml",
        "u1",
        port,
        &["-set", "target", "600"],
    );
    demo.call("uac_rejoined.xml", "101", "102");
    finished(&demo, referrer, "uas_refers.xml");
    finished(&demo, answers, "uas.xml");
    finished(&demo, loses, "uas_cancelled.xml");
    let cdr = next_cdr(&demo, &mut seen);
    assert_common(&cdr);
    assert_eq!(cdr["end_reason"], "CALLER_DISCONNECTED", "{cdr}");
    let got: Vec<Value> = targets(&cdr)
        .iter()
        .map(|t| json!([t["callee"], t["call_type"], t["status"], t["end_reason"]]))
        .collect();
    assert_eq!(
        got,
        [
            json!(["102", "normal_call", "answered", "blind_transfer_complete"]),
            json!(["103", "ring_group_call", "answered", "caller_disconnect"]),
            json!(["104", "ring_group_call", "noanswer", "None"]),
        ],
        "{cdr}"
    );
    assert_eq!(
        updated_callee(&hooks, &cdr),
        format!("sip:103@{DEMO_DOMAIN}")
    );

    // Out by a trunk. The carrier is up before the trunk exists: the
    // trunk's first OPTIONS keep-alive (sent at once) is answered
    // (`carrier_uas.xml`: a SIPp "call" of its own, hence `-m 2` with the
    // INVITE) and never retransmitted into the call.
    let carrier_port = free_sip_port();
    let carrier = Sipp::spawn(
        demo.server.sip,
        "carrier_uas.xml",
        "u1",
        carrier_port,
        &["-m", "2"],
    );
    let r = admin.post_json(
        "/api/trunks",
        &json!({"name": "sipp-carrier", "kind": "ip", "host": "127.0.0.1",
                "port": carrier_port, "transport": "udp",
                "source_addresses": ["127.0.0.1"], "source_port": carrier_port,
                "country_code": "33"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let trunk = r.json()["id"].as_str().unwrap().to_owned();
    let r = admin.post_json(
        "/api/outbound_rules",
        &json!({"name": "national", "pattern": "0ZXXXXXXXX", "strip_digits": 1,
                "prepend": "+33", "trunks": [trunk], "caller_id": "+33100000999"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // 105 this time (SIPp's second call from 102's port would reuse the
    // first one's branches, which the PBX rightly takes as retransmissions).
    let port = free_sip_port();
    demo.register("105", port);
    let referrer = Sipp::spawn(
        demo.server.sip,
        "uas_refers.xml",
        "u1",
        port,
        &["-set", "target", "0612345678"],
    );
    let caller = spawn_call(&demo, "uac_rejoined.xml", "101", "105");
    finished(&demo, referrer, "uas_refers.xml");
    finished(&demo, caller, "uac_rejoined.xml");
    let (ok, log) = carrier.finish();
    assert!(ok, "carrier:\n{log}\n{}", demo.server.stderr());
    assert!(
        log.contains("INVITE sip:+33612345678@127.0.0.1:"),
        "the rewritten number at the trunk's host:\n{log}"
    );
    assert!(log.contains("+33100000999@"), "the caller ID:\n{log}");
    let cdr = next_cdr(&demo, &mut seen);
    // An internal call transferred out stays an extension call; its trunk
    // is the one C was reached by.
    assert_eq!(
        (&cdr["caller"], &cdr["callee"], &cdr["direction"]),
        (&json!("101"), &json!("105"), &json!("EXTENSION_CALL")),
        "{cdr}"
    );
    assert_eq!(cdr["end_reason"], "CALLER_DISCONNECTED", "{cdr}");
    assert_eq!(cdr["trunk"], "sipp-carrier", "{cdr}");
    let got: Vec<Value> = targets(&cdr)
        .iter()
        .map(|t| {
            json!([
                t["callee"],
                t["status"],
                t["end_reason"],
                t["trunk_name"],
                t["outbound_caller_id"]
            ])
        })
        .collect();
    assert_eq!(
        got,
        [
            json!(["105", "answered", "blind_transfer_complete", "", ""]),
            json!([
                "+33612345678",
                "answered",
                "caller_disconnect",
                "sipp-carrier",
                "+33100000999"
            ]),
        ],
        "{cdr}"
    );
    assert_eq!(
        updated_callee(&hooks, &cdr),
        format!("sip:+33612345678@{DEMO_DOMAIN}")
    );
}

/// A BLF pickup (issue 13): 102 and 103 share a pickup group; 101 (SIPp)
/// calls 102, whose phone (the test's own, so the dialog's Call-ID and
/// tags are known) rings; 103 (SIPp) presses its busy-lamp key: an INVITE
/// to 102 with `Replaces` naming that ringing dialog (`early-only`). The
/// PBX CANCELs 102's phone and joins 101 with 103. One CDR over REST: 102
/// `replaced`, 103 a new answered target; the webhook's events end in
/// that CDR and no session of the picker's INVITE reaches it.
pub fn blf_pickup(dir: &Path, extra: &[&str]) {
    let args = with_hooks_allowed(dir, extra);
    let demo = Demo::start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let hooks = Hooks::subscribe(&demo);
    let admin = demo.admin();
    let users = admin.get("/api/users").json();
    for ext in ["102", "103"] {
        let id = users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["extension"] == ext)
            .and_then(|u| u["id"].as_str())
            .unwrap()
            .to_owned();
        let r = admin.request(
            "PATCH",
            &format!("/api/users/{id}"),
            "application/json",
            &json!({"pickup_group": "sales"}).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut bob = Phone::new("102", &demo.password("102"), DEMO_DOMAIN, demo.server.sip);
    assert_eq!(bob.register(), 200);
    let caller = spawn_call(&demo, "uac_rejoined.xml", "101", "102");
    let invite = bob.recv_request("INVITE");
    bob.reply(&invite, 180, "b1");
    let pbx_tag = invite
        .from()
        .ok()
        .and_then(|f| f.tag().map(str::to_owned))
        .expect("PBX tag");
    let replaces = format!(
        "{};to-tag={pbx_tag};from-tag=b1;early-only",
        invite.call_id().unwrap()
    );
    // 102's phone is CANCELled: 200, then 487 for its INVITE.
    let cancelled = std::thread::spawn(move || {
        let cancel = bob.recv_request("CANCEL");
        bob.reply(&cancel, 200, "b1");
        bob.reply(&invite, 487, "b1");
        let _ack = bob.recv_request("ACK");
    });
    let (ok, log) = Sipp::spawn(
        demo.server.sip,
        "uac_pickup_replaces.xml",
        "u1",
        free_sip_port(),
        &[
            "-s",
            "102",
            "-set",
            "caller",
            "103",
            "-set",
            "replaces",
            &replaces,
            "-au",
            "103",
            "-ap",
            &demo.password("103"),
            "-auth_uri",
            &format!("102@{DEMO_DOMAIN}"),
        ],
    )
    .finish();
    assert!(
        ok,
        "SIPp uac_pickup_replaces.xml:\n{log}\n{}",
        demo.server.stderr()
    );
    assert!(log.contains("Replaces: "), "{log}");
    finished(&demo, caller, "uac_rejoined.xml");
    cancelled.join().expect("102's phone was CANCELled");

    let cdr = demo.only_cdr();
    assert_common(&cdr);
    assert_eq!(
        (&cdr["call_status"], &cdr["end_reason"]),
        (&json!("answered"), &json!("CALLER_DISCONNECTED")),
        "{cdr}"
    );
    let got: Vec<Value> = targets(&cdr)
        .iter()
        .map(|t| json!([t["callee"], t["status"], t["end_reason"]]))
        .collect();
    assert_eq!(
        got,
        [
            json!(["102", "noanswer", "replaced"]),
            json!(["103", "answered", "caller_disconnect"])
        ],
        "{cdr}"
    );
    let events = hooks.of_session(cdr["session_id"].as_str().expect("session"));
    assert_events(&events, &cdr);
    let sessions: std::collections::HashSet<String> = hooks
        .all()
        .iter()
        .filter_map(|e| e["session_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(sessions.len(), 1, "one session: {sessions:?}");
}

/// Attended transfer whose consultation C placed (issue 13): 101 (SIPp)
/// calls 102 (the test's phone), who answers; 103 (the test's phone)
/// calls 102, who answers that too; 102 REFERs the first call with
/// Replaces naming its leg of the second. The PBX re-INVITEs 103 on the
/// dialog it placed, joins it with 101 and ends both of 102's legs. Both
/// CDRs over REST: S1 102 `attended_transfer_complete` and 103 a new
/// answered target; S2 (103 → 102) ends `attended_transfer_complete`
/// (CONSULT_TRANSFER_COMPLETED) with its one target, 102, ended
/// `attended_transfer_complete`; the webhook's S1 `call_update_info`
/// names 103.
pub fn attended_transfer_consulted_by_c(dir: &Path, extra: &[&str]) {
    let args = with_hooks_allowed(dir, extra);
    let demo = Demo::start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let hooks = Hooks::subscribe(&demo);
    let mut bob = Phone::new("102", &demo.password("102"), DEMO_DOMAIN, demo.server.sip);
    let mut ann = Phone::new("103", &demo.password("103"), DEMO_DOMAIN, demo.server.sip);
    assert_eq!(bob.register(), 200);
    assert_eq!(ann.register(), 200);
    let caller = spawn_call(&demo, "uac_rejoined.xml", "101", "102");
    let s1 = bob.recv_request("INVITE");
    bob.reply(&s1, 180, "b1");
    bob.reply(&s1, 200, "b1");
    let _ack = bob.recv_request("ACK");
    // The consultation, placed by 103.
    let answering = std::thread::spawn(move || {
        let s2 = bob.recv_request("INVITE");
        bob.reply(&s2, 200, "b2");
        let _ack = bob.recv_request("ACK");
        (bob, s2)
    });
    let c2 = ann.invite("102", |_| {});
    assert_eq!(c2.status, 200);
    ann.ack(&c2, "102");
    let (bob, s2) = answering.join().expect("102 answers 103");
    // 103 takes the PBX's re-INVITE on its own dialog, then the BYE.
    let c2_call_id = c2.call_id.clone();
    let c_side = std::thread::spawn(move || {
        let reinvite = ann.recv_request("INVITE");
        assert_eq!(reinvite.call_id().ok(), Some(c2_call_id.as_str()));
        assert!(reinvite.body().is_empty(), "asked for an offer");
        ann.reply(&reinvite, 200, "x");
        let ack = ann.recv_request("ACK");
        assert!(!ack.body().is_empty(), "101's answer in the ACK");
        let bye = ann.recv_request("BYE");
        ann.reply(&bye, 200, "x");
        bye.call_id().map(str::to_owned).unwrap_or_default()
    });
    let pbx_tag = s2
        .from()
        .ok()
        .and_then(|f| f.tag().map(str::to_owned))
        .expect("PBX tag");
    let replaces = sip::headers::Replaces {
        call_id: s2.call_id().unwrap().to_owned(),
        to_tag: pbx_tag,
        from_tag: "b2".into(),
        early_only: false,
    };
    let refer_to =
        sip::dialog::refer_to_with_replaces(&format!("sip:103@{DEMO_DOMAIN}"), &replaces);
    let pbx = super::super::phone::contact_uri(&s1).expect("Contact");
    let (from, to) = (
        s1.header_named("To").unwrap(),
        s1.header_named("From").unwrap(),
    );
    let call_id = s1.call_id().unwrap();
    let in_s1 = |method: &str, cseq: u32, extra: &str| {
        format!(
            "{method} {pbx} SIP/2.0\r\n{via}Max-Forwards: 70\r\nFrom: {from};tag=b1\r\n\
             To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n{extra}\
             Content-Length: 0\r\n\r\n",
            via = bob.via(),
        )
    };
    bob.send(&in_s1(
        "REFER",
        1,
        &format!(
            "Contact: <sip:102@{}>\r\nRefer-To: {refer_to}\r\n",
            bob.addr()
        ),
    ));
    // 202; NOTIFY 100 and NOTIFY 200 on S1; BYE on S2: each answered.
    let (mut accepted, mut done, mut s2_bye) = (false, false, false);
    while !(accepted && done && s2_bye) {
        let m = bob.recv();
        match m.method().map(|m| m.as_str().to_owned()).as_deref() {
            None => {
                assert!(m.status() != Some(403), "refused: {}", m.summary());
                accepted |= m.status() == Some(202);
            }
            Some("NOTIFY") => {
                done |= m.body().starts_with(b"SIP/2.0 200");
                bob.reply(&m, 200, "b1");
            }
            Some("BYE") => {
                s2_bye |= m.call_id() == s2.call_id();
                bob.reply(&m, 200, "b1");
            }
            _ => {}
        }
    }
    bob.send(&in_s1("BYE", 2, ""));
    finished(&demo, caller, "uac_rejoined.xml");
    let bye_on = c_side.join().expect("103's side");
    assert_eq!(bye_on, c2.call_id, "101's BYE reached 103 on its dialog");

    let admin = demo.admin();
    let list = wait_for_cdrs(&admin, 2);
    let detail = |caller: &str| {
        let id = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["caller"] == caller)
            .and_then(|c| c["id"].as_str())
            .unwrap_or_else(|| panic!("no CDR from {caller}: {list}"))
            .to_owned();
        admin.get(&format!("/api/cdrs/{id}")).json()["items"][0].clone()
    };
    let first = detail("101");
    assert_common(&first);
    assert_eq!(first["end_reason"], "CALLER_DISCONNECTED", "{first}");
    let got: Vec<Value> = targets(&first)
        .iter()
        .map(|t| json!([t["callee"], t["status"], t["end_reason"]]))
        .collect();
    assert_eq!(
        got,
        [
            json!(["102", "answered", "attended_transfer_complete"]),
            json!(["103", "answered", "caller_disconnect"])
        ],
        "{first}"
    );
    let consultation = detail("103");
    assert_eq!(consultation["callee"], "102", "{consultation}");
    assert_eq!(
        consultation["end_reason"], "CONSULT_TRANSFER_COMPLETED",
        "{consultation}"
    );
    let got: Vec<Value> = targets(&consultation)
        .iter()
        .map(|t| json!([t["callee"], t["status"], t["end_reason"]]))
        .collect();
    assert_eq!(
        got,
        [json!(["102", "answered", "attended_transfer_complete"])],
        "{consultation}"
    );
    let events = hooks.of_session(first["session_id"].as_str().expect("session"));
    assert_events(&events, &first);
    let update = events
        .iter()
        .find(|e| e["event_type"] == "call_update_info")
        .unwrap_or_else(|| panic!("no call_update_info: {:?}", kinds(&events)));
    assert_eq!(update["callee"], format!("sip:103@{DEMO_DOMAIN}"));
    let events = hooks.of_session(consultation["session_id"].as_str().expect("session"));
    assert_events(&events, &consultation);
}
