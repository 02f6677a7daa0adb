//! Every input the message fuzzer (`fuzz/fuzz_targets/message.rs`) ever
//! crashed on, replayed through the same reads the fuzz target performs.

use sip::header::HeaderName;
use sip::validate::{check_request, check_response, reject, reject_unparsable};
use sip::{Limits, Message, ResponseBuilder};

fn exercise(data: &[u8]) {
    match Message::parse(data.to_vec()) {
        Err(e) => {
            if let Some(resp) = reject_unparsable(data, &e) {
                Message::parse(resp).expect("our 400 must parse");
            }
        }
        Ok(m) => {
            let _ = m.request_uri();
            for v in m.vias().flatten() {
                let _ = (v.branch(), v.rport(), v.received(), v.sent_by());
            }
            let _ = (m.from(), m.to(), m.call_id(), m.cseq(), m.max_forwards());
            for c in m.contacts().flatten() {
                let _ = (c.expires(), c.q(), c.instance(), c.reg_id());
            }
            for _ in m.name_addrs(HeaderName::Route) {}
            if m.is_request() {
                match check_request(&m) {
                    Ok(()) => {
                        ResponseBuilder::reply(&m, 200)
                            .to_tag("fz")
                            .build()
                            .expect("a response to a valid request must build");
                    }
                    Err(e) => {
                        if let Some(r) = reject(&m, &e, "fz") {
                            Message::parse(r.as_bytes().clone()).expect("our 400 must parse");
                        }
                    }
                }
            } else {
                let _ = check_response(&m);
            }
        }
    }
    let mut f = sip::framing::StreamFramer::new(Limits::default());
    f.push(data);
    while let Ok(Some(_)) = f.next_frame() {}
}

#[test]
fn replay_every_crasher() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions/message");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        exercise(&data);
        n += 1;
    }
    assert!(n > 0, "the regression corpus is empty");
}
