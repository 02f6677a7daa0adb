//! baresip's blind transfer in the interop matrix (issue 16, "later
//! features join the matrix"; issue 13): baresip 101 calls baresip 102,
//! 102 transfers the call with `/transfer` (ctrl_tcp's `transfer`
//! command: REFER with Refer-To, then the NOTIFYs), the PBX calls 103
//! (baresip or Linphone, auto-answer) without SDP and joins it with 101
//! by a re-INVITE. 101 and 103 hear each other's tone after the
//! transfer; the CDR read back over REST is exact: 102
//! `blind_transfer_complete`, 103 a new answered target, each reaching the
//! device that registered.

use std::time::Duration;

use serde_json::Value;

use super::*;

/// The last `secs` seconds of a recording hold `expected` (clearly above
/// `other`): what a party heard after the transfer.
fn assert_heard_last(recording: &Path, secs: u32, expected: u32, other: u32) {
    let (samples, rate) = read_wav(recording);
    let tail = (secs * rate) as usize;
    assert!(
        samples.len() > tail,
        "{}: under {secs} s of audio",
        recording.display()
    );
    let tail = &samples[samples.len() - tail..];
    let heard = tone_level(tail, rate, expected);
    let echo = tone_level(tail, rate, other);
    assert!(
        heard > 500.0 && heard > 20.0 * echo.max(1.0),
        "{}: {expected} Hz at {heard:.1}, {other} Hz at {echo:.1} in the last {secs} s",
        recording.display()
    );
}

/// The exact CDR of a call 101 → 102 that 102 blind-transferred to 103
/// and 101 hung up: two answered targets, at the devices that registered.
fn assert_transferred_cdr(cdr: &Value, contact_102: &str, contact_103: &str) {
    assert_eq!(cdr["caller"], "101", "{cdr}");
    assert_eq!(cdr["callee"], "102", "{cdr}");
    assert_eq!(cdr["direction"], "EXTENSION_CALL", "{cdr}");
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert_eq!(cdr["status_code"], 0, "{cdr}");
    assert_eq!(cdr["end_reason"], "CALLER_DISCONNECTED", "{cdr}");
    assert!(cdr.get("recovered").is_none(), "{cdr}");
    let targets = cdr["call_targets"].as_array().expect("call_targets");
    let got: Vec<Value> = targets
        .iter()
        .map(|t| {
            serde_json::json!([
                t["callee"],
                t["caller"],
                t["call_type"],
                t["status"],
                t["status_code"],
                t["end_reason"],
                t["destination"]
            ])
        })
        .collect();
    assert_eq!(
        got,
        [
            serde_json::json!([
                "102",
                "101",
                "normal_call",
                "answered",
                0,
                "blind_transfer_complete",
                contact_102
            ]),
            serde_json::json!([
                "103",
                "101",
                "normal_call",
                "answered",
                0,
                "caller_disconnect",
                contact_103
            ]),
        ],
        "{cdr}"
    );
    // 103 was added once the transfer started, and answered after 102
    // did; the call's talk covers both.
    let secs = |v: &Value| v.as_str().and_then(|s| s.parse::<u64>().ok()).unwrap();
    assert!(secs(&targets[1]["start_time"]) >= secs(&targets[0]["answered_time"]));
    assert!(secs(&targets[1]["answered_time"]) <= secs(&targets[1]["ended_time"]));
    assert!(secs(&targets[0]["ended_time"]) <= secs(&targets[1]["ended_time"]));
}

#[derive(Clone, Copy)]
enum Third {
    Baresip,
    Linphone,
}

fn baresip_blind_transfer(test: &str, third: Third, t: Transport) {
    if !installed("baresip", test)
        || (matches!(third, Third::Linphone) && !installed("linphonec", test))
    {
        return;
    }
    let dir = TempDir::new(test);
    let demo = demo(dir.path(), &[]);
    let pbx = demo.server.sip;
    let mut a = Baresip::start(
        &dir.path().join("a"),
        "101",
        &demo.password("101"),
        t,
        pbx,
        TONE_101,
        None,
    );
    let mut b = Baresip::start(
        &dir.path().join("b"),
        "102",
        &demo.password("102"),
        t,
        pbx,
        TONE_102,
        None,
    );
    let (mut c_baresip, c_linphone) = match third {
        Third::Baresip => (
            Some(Baresip::start(
                &dir.path().join("c"),
                "103",
                &demo.password("103"),
                t,
                pbx,
                TONE_103,
                None,
            )),
            None,
        ),
        Third::Linphone => (
            None,
            Some(Linphone::start(
                &dir.path().join("l"),
                "103",
                &demo.password("103"),
                t,
                pbx,
                TONE_103,
            )),
        ),
    };
    wait_registered(&demo, "101", t);
    let contact_102 = wait_registered(&demo, "102", t);
    let contact_103 = wait_registered(&demo, "103", t);

    a.command("dial", &format!("sip:102@{DEMO_DOMAIN}"));
    b.wait_event("CALL_ESTABLISHED", None);
    a.wait_event("CALL_ESTABLISHED", None);
    std::thread::sleep(Duration::from_secs(2));

    // 102 transfers; 103 answers; 102's call ends when the NOTIFY says so.
    a.clear_events();
    b.clear_events();
    b.command("transfer", &format!("sip:103@{DEMO_DOMAIN}"));
    match (&mut c_baresip, &c_linphone) {
        (Some(c), _) => {
            c.wait_event("CALL_ESTABLISHED", None);
        }
        (_, Some(l)) => wait_for("103 (Linphone) to answer", || {
            l.log().contains(" connected.").then_some(())
        }),
        _ => unreachable!(),
    }
    // 101 takes 103's offer in the PBX's re-INVITE.
    a.wait_event("CALL_REMOTE_SDP", Some("offer"));
    b.wait_event("CALL_CLOSED", None);
    std::thread::sleep(Duration::from_secs(3));
    a.command("hangup", "");
    match (&mut c_baresip, &c_linphone) {
        (Some(c), _) => {
            c.wait_event("CALL_CLOSED", None);
        }
        (_, Some(l)) => wait_for("103 (Linphone) to see the hang-up", || {
            l.log().contains(" ended (").then_some(())
        }),
        _ => unreachable!(),
    }
    std::thread::sleep(Duration::from_millis(500));

    let cdrs = cdrs(&demo.admin(), 1);
    assert_transferred_cdr(&cdrs[0], &contact_102, &contact_103);
    // Tones after the transfer: 101 hears 103, 103 hears 101.
    let c_heard = match (&c_baresip, &c_linphone) {
        (Some(c), _) => c.received_audio(),
        (_, Some(l)) => l.received_audio(),
        _ => unreachable!(),
    };
    assert_heard(&c_heard, TONE_101, TONE_103);
    assert_heard_last(&a.received_audio(), 2, TONE_103, TONE_101);
    // The PBX's decision is blind_transfer_complete, never `referred`.
    assert!(!cdrs[0].to_string().contains("\"referred\""));
}

#[test]
fn baresip_blind_transfer_to_baresip_over_udp() {
    baresip_blind_transfer(
        "baresip_blind_transfer_to_baresip_over_udp",
        Third::Baresip,
        Transport::Udp,
    );
}

#[test]
fn baresip_blind_transfer_to_baresip_over_tcp() {
    baresip_blind_transfer(
        "baresip_blind_transfer_to_baresip_over_tcp",
        Third::Baresip,
        Transport::Tcp,
    );
}

#[test]
fn baresip_blind_transfer_to_linphone_over_udp() {
    baresip_blind_transfer(
        "baresip_blind_transfer_to_linphone_over_udp",
        Third::Linphone,
        Transport::Udp,
    );
}
