//! The workloads of `parse.rs`, shared with `examples/proxy_loop.rs` (which
//! runs one in a plain loop, for instruction counts under callgrind: the
//! only figure that does not move with the load on a shared machine).
//!
//! Every parser starts from a `&[u8]` datagram. Ours copies it into a fresh
//! buffer first (what a receive path without a pooled buffer does), so its
//! figure includes one allocation and a memcpy the others do in their own way.
//! The baselines use their cheapest public path: `rsipstack`'s typed parsers
//! straight from the header text, `rsip`'s `typed()`.

use std::fmt::Display;
use std::hint::black_box;

/// A realistic INVITE from a softphone, with an SDP offer.
pub fn invite() -> Vec<u8> {
    let sdp = "v=0\r\n\
        o=alice 2890844526 1 IN IP4 192.0.2.10\r\n\
        s=-\r\n\
        c=IN IP4 192.0.2.10\r\n\
        t=0 0\r\n\
        m=audio 49170 RTP/AVP 0 8 101\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\n";
    format!(
        "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9a3c1e;rport\r\n\
        Max-Forwards: 70\r\n\
        To: Bob <sip:bob@biloxi.com>\r\n\
        From: \"Alice\" <sip:alice@atlanta.com>;tag=9fxced76sl\r\n\
        Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:alice@192.0.2.10:5060;ob>\r\n\
        Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\n\
        Supported: replaces, timer, 100rel\r\n\
        User-Agent: Linphone/5.2.5\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: {}\r\n\
        \r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

/// The 200 OK that answers it through one proxy, with the SDP answer.
pub fn ok_200() -> Vec<u8> {
    let sdp = "v=0\r\n\
        o=bob 2808844564 2808844564 IN IP4 198.51.100.20\r\n\
        s=-\r\n\
        c=IN IP4 198.51.100.20\r\n\
        t=0 0\r\n\
        m=audio 31000 RTP/AVP 0 101\r\n\
        a=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\n\
        a=ptime:20\r\n\
        a=sendrecv\r\n";
    format!(
        "SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK2d4790.1;received=203.0.113.5\r\n\
        Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9a3c1e;rport=5060;received=192.0.2.10\r\n\
        Record-Route: <sip:203.0.113.5;lr>\r\n\
        To: Bob <sip:bob@biloxi.com>;tag=a6c85cf\r\n\
        From: \"Alice\" <sip:alice@atlanta.com>;tag=9fxced76sl\r\n\
        Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:bob@198.51.100.20:5060>\r\n\
        Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\n\
        Supported: replaces, timer\r\n\
        Server: Tally/0.1\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: {}\r\n\
        \r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

/// The values a proxy reads, each as the parser's own type behind `Display`
/// (turned into text only for the agreement check, never while timing).
pub struct Read<'a> {
    branch: &'a dyn Display,
    from_tag: &'a dyn Display,
    to_tag: Option<&'a dyn Display>,
    call_id: &'a dyn Display,
    cseq: u32,
    method: &'a dyn Display,
    contact: &'a dyn Display,
}

impl Read<'_> {
    pub fn text(&self) -> [String; 7] {
        [
            self.branch.to_string(),
            self.from_tag.to_string(),
            self.to_tag.map_or_else(|| "-".into(), ToString::to_string),
            self.call_id.to_string(),
            self.cseq.to_string(),
            self.method.to_string(),
            self.contact.to_string(),
        ]
    }
}

/// Tally's parser: index the message, then read each field by type.
pub fn tally<R>(raw: &[u8], f: impl FnOnce(Read<'_>) -> R) -> R {
    let msg = sip::Message::parse(bytes_copy(raw)).expect("parse");
    let via = msg.via().expect("Via");
    let from = msg.from().expect("From");
    let to = msg.to().expect("To");
    let cseq = msg.cseq().expect("CSeq");
    let call_id = msg.call_id().expect("Call-ID");
    let contact = msg.contacts().next().expect("Contact").expect("Contact");
    let contact = &contact.addr().expect("not *").uri;
    let branch = via.branch().expect("branch");
    let from_tag = from.tag().expect("From tag");
    let to_tag = to.tag();
    f(Read {
        branch: &branch,
        from_tag: &from_tag,
        to_tag: to_tag.as_ref().map(|t| t as &dyn Display),
        call_id: &call_id,
        cseq: cseq.seq,
        method: &cseq.method,
        contact,
    })
}

fn bytes_copy(raw: &[u8]) -> Vec<u8> {
    // `Message::parse` takes `impl Into<Bytes>`: a Vec becomes Bytes without
    // another copy.
    raw.to_vec()
}

/// rsipstack 0.7 (`rsipstack::sip`): headers are stored as strings, typed on
/// demand.
pub fn rsipstack<R>(raw: &[u8], f: impl FnOnce(Read<'_>) -> R) -> R {
    use rsipstack::sip::prelude::*;
    use rsipstack::sip::{SipMessage, typed};
    let msg = SipMessage::try_from(raw).expect("parse");
    let via = typed::Via::parse(msg.via_header().expect("Via").value().trim()).expect("Via");
    let from = typed::From::parse(msg.from_header().expect("From").value().trim()).expect("From");
    let to = typed::To::parse(msg.to_header().expect("To").value().trim()).expect("To");
    let cseq = typed::CSeq::parse(msg.cseq_header().expect("CSeq").value().trim()).expect("CSeq");
    let call_id = msg.call_id_header().expect("Call-ID").value();
    let contact = typed::Contact::parse(msg.contact_header().expect("Contact").value().trim())
        .expect("Contact");
    let branch = via.branch().expect("branch");
    let from_tag = from.tag().expect("From tag");
    f(Read {
        branch,
        from_tag,
        to_tag: to.tag().map(|t| t as &dyn Display),
        call_id: &call_id,
        cseq: cseq.seq,
        method: &cseq.method,
        contact: &contact.uri,
    })
}

/// rsip 0.4: nom tokenizers, untyped headers typed on demand.
pub fn rsip<R>(raw: &[u8], f: impl FnOnce(Read<'_>) -> R) -> R {
    use rsip::prelude::*;
    let msg = rsip::SipMessage::try_from(raw).expect("parse");
    let via = msg.via_header().expect("Via").typed().expect("Via");
    let from = msg.from_header().expect("From").typed().expect("From");
    let to = msg.to_header().expect("To").typed().expect("To");
    let cseq = msg.cseq_header().expect("CSeq").typed().expect("CSeq");
    let call_id = msg.call_id_header().expect("Call-ID").value();
    let contact = msg
        .contact_header()
        .expect("Contact")
        .typed()
        .expect("Contact");
    let branch = via.branch().expect("branch");
    let from_tag = from.tag().expect("From tag");
    f(Read {
        branch,
        from_tag,
        to_tag: to.tag().map(|t| t as &dyn Display),
        call_id: &call_id,
        cseq: cseq.seq,
        method: &cseq.method,
        contact: &contact.uri,
    })
}

/// A named workload over one datagram.
pub type Workload = (&'static str, fn(&[u8]));

/// The proxy's reads, results black-boxed: what `proxy_read` times.
pub const PROXY_READ: [Workload; 3] = [
    ("sip", |raw| {
        tally(raw, |r| {
            black_box(&r);
        })
    }),
    ("rsipstack", |raw| {
        rsipstack(raw, |r| {
            black_box(&r);
        })
    }),
    ("rsip", |raw| {
        rsip(raw, |r| {
            black_box(&r);
        })
    }),
];

/// Parsing alone, before anyone reads a header: what `parse_only` times.
pub const PARSE_ONLY: [Workload; 3] = [
    ("sip", |raw| {
        black_box(sip::Message::parse(bytes_copy(raw)).is_ok());
    }),
    ("rsipstack", |raw| {
        black_box(rsipstack::sip::SipMessage::try_from(raw).is_ok());
    }),
    ("rsip", |raw| {
        black_box(rsip::SipMessage::try_from(raw).is_ok());
    }),
];

/// A named message builder.
pub type Message = (&'static str, fn() -> Vec<u8>);

/// The benchmark's messages.
pub const MESSAGES: [Message; 2] = [("invite_sdp", invite), ("ok200_sdp", ok_200)];
