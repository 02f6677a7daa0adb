//! What a proxy pays to look at a message: parse it, then read the top Via
//! branch, the From and To tags, Call-ID, CSeq (number and method) and the
//! Contact URI. The same work with Tally's `sip`, with `rsipstack` (the SIP
//! stack under rustpbx, which parses with its own `rsipstack::sip` module, a
//! fork of `rsip`) and with `rsip`.
//!
//! Every parser starts from a `&[u8]` datagram. Ours copies it into a fresh
//! `Bytes` first (what a receive path without a pooled buffer does), so its
//! figure includes one allocation and a memcpy the others do in their own way.
//! The baselines use their cheapest public path: `rsipstack`'s typed parsers
//! straight from the header text, `rsip`'s `typed()`.
//!
//! Before timing, each message goes through all three once and the extracted
//! values must agree, so no parser is timed doing less than the others. (The
//! Contacts carry no `;transport=udp`: rsipstack's Contact parser deletes that
//! parameter, and URI headers, from the URI it returns, so the values would
//! differ; see README.md.)
//!
//! `cargo bench -p sip-compare --bench parse`

use std::fmt::Display;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

/// A realistic INVITE from a softphone, with an SDP offer.
fn invite() -> Vec<u8> {
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
fn ok_200() -> Vec<u8> {
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
struct Read<'a> {
    branch: &'a dyn Display,
    from_tag: &'a dyn Display,
    to_tag: Option<&'a dyn Display>,
    call_id: &'a dyn Display,
    cseq: u32,
    method: &'a dyn Display,
    contact: &'a dyn Display,
}

impl Read<'_> {
    fn text(&self) -> [String; 7] {
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
fn tally<R>(raw: &[u8], f: impl FnOnce(Read<'_>) -> R) -> R {
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
fn rsipstack<R>(raw: &[u8], f: impl FnOnce(Read<'_>) -> R) -> R {
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
fn rsip<R>(raw: &[u8], f: impl FnOnce(Read<'_>) -> R) -> R {
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

/// Parse only: what each parser does before anyone reads a header.
fn parse_only(c: &mut Criterion, name: &str, raw: &[u8]) {
    let mut g = c.benchmark_group(format!("parse_only/{name}"));
    g.bench_function("sip", |b| {
        b.iter(|| {
            sip::Message::parse(bytes_copy(black_box(raw)))
                .map(black_box)
                .is_ok()
        })
    });
    g.bench_function("rsipstack", |b| {
        b.iter(|| {
            rsipstack::sip::SipMessage::try_from(black_box(raw))
                .map(black_box)
                .is_ok()
        })
    });
    g.bench_function("rsip", |b| {
        b.iter(|| {
            rsip::SipMessage::try_from(black_box(raw))
                .map(black_box)
                .is_ok()
        })
    });
    g.finish();
}

fn proxy_read(c: &mut Criterion, name: &str, raw: &[u8]) {
    // Same values from all three, or the comparison means nothing.
    let ours = tally(raw, |r| r.text());
    assert_eq!(
        rsipstack(raw, |r| r.text()),
        ours,
        "rsipstack disagrees on {name}"
    );
    assert_eq!(rsip(raw, |r| r.text()), ours, "rsip disagrees on {name}");
    eprintln!("{name}: {} bytes, reads {ours:?}", raw.len());

    let mut g = c.benchmark_group(format!("proxy_read/{name}"));
    g.bench_function("sip", |b| {
        b.iter(|| {
            tally(black_box(raw), |r| {
                black_box(&r);
            })
        })
    });
    g.bench_function("rsipstack", |b| {
        b.iter(|| {
            rsipstack(black_box(raw), |r| {
                black_box(&r);
            })
        })
    });
    g.bench_function("rsip", |b| {
        b.iter(|| {
            rsip(black_box(raw), |r| {
                black_box(&r);
            })
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    for (name, raw) in [("invite_sdp", invite()), ("ok200_sdp", ok_200())] {
        proxy_read(c, name, &raw);
        parse_only(c, name, &raw);
    }
}

criterion_group!(parse, benches);
criterion_main!(parse);
