//! Fuzzes the message parser and every typed read a proxy or UAS performs.
//! Invariants: nothing panics; a message that parses and validates can be
//! answered, and the answer parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::framing::StreamFramer;
use sip::header::HeaderName;
use sip::validate::{check_request, check_response, reject, reject_unparsable};
use sip::{Limits, Message, ResponseBuilder};

fuzz_target!(|data: &[u8]| {
    match Message::parse(data.to_vec()) {
        Err(e) => {
            if let Some(resp) = reject_unparsable(data, &e) {
                Message::parse(resp).expect("our 400 must parse");
            }
        }
        Ok(m) => exercise(&m),
    }
    // The same bytes as a stream, cut at an arbitrary point.
    let mut f = StreamFramer::new(Limits::default());
    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    f.push(&data[..cut]);
    let _ = f.next_frame();
    f.push(&data[cut..]);
    while let Ok(Some(_)) = f.next_frame() {}
});

fn exercise(m: &Message) {
    let _ = m.request_uri();
    for v in m.vias() {
        if let Ok(v) = v {
            let _ = (v.branch(), v.rport(), v.received(), v.sent_by());
        }
    }
    let _ = (m.from(), m.to(), m.call_id(), m.cseq(), m.max_forwards());
    for c in m.contacts().flatten() {
        let _ = (c.expires(), c.q(), c.instance(), c.reg_id());
    }
    for h in [
        HeaderName::Route,
        HeaderName::RecordRoute,
        HeaderName::PAssertedIdentity,
    ] {
        for _ in m.name_addrs(h) {}
    }
    for _ in m.tokens(HeaderName::Supported) {}
    if let Some(r) = m.header(HeaderName::ReferTo) {
        let _ = sip::headers::ReferTo::parse(r);
    }
    if let Some(r) = m.header(HeaderName::Replaces) {
        let _ = sip::headers::Replaces::parse(r);
    }
    if let Some(r) = m.header(HeaderName::SessionExpires) {
        let _ = sip::headers::SessionExpires::parse(r);
    }
    if let Some(r) = m.header(HeaderName::RetryAfter) {
        let _ = sip::headers::RetryAfter::parse(r);
    }
    if let Some(r) = m.header(HeaderName::Date) {
        let _ = sip::headers::parse_date(r);
    }
    if m.is_request() {
        match check_request(m) {
            Ok(()) => {
                let r = ResponseBuilder::reply(m, 200).to_tag("fz").build();
                r.expect("a response to a valid request must build");
            }
            Err(e) => {
                if let Some(r) = reject(m, &e, "fz") {
                    Message::parse(r.as_bytes().clone()).expect("our 400 must parse");
                }
            }
        }
    } else {
        let _ = check_response(m);
    }
}
