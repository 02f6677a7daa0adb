//! Each parser, driven the way its own stack drives it on a datagram, with
//! its verdict and values mapped into [`Verdict`].
//!
//! A verdict is "accept" when the library's parser and its own validation
//! (where it has one) take the message and every compared field reads.

use bytes::Bytes;

use crate::view::{AddrView, Fields, Start, UriView, Verdict, ViaView, ip_host, lossy};

/// Names the parsers go by in the disagreement table.
pub const TALLY: &str = "sip";
pub const SIPX: &str = "sipx-sip";
pub const EZK: &str = "ezk-sip-types";

fn verdict(r: Result<Fields, String>) -> Verdict {
    match r {
        Ok(f) => Verdict::Accept(Box::new(f)),
        Err(e) => Verdict::Reject(e),
    }
}

// ---- Tally -----------------------------------------------------------------

/// `Message::parse`, then `check_request`/`check_response` (what the
/// transaction layer runs before acting on a message).
pub fn tally(raw: &[u8]) -> Verdict {
    verdict(tally_fields(raw))
}

fn tally_fields(raw: &[u8]) -> Result<Fields, String> {
    use sip::validate::{check_request, check_response};
    let msg = sip::Message::parse(raw.to_vec()).map_err(|e| format!("parse: {e}"))?;
    if msg.is_request() {
        check_request(&msg)
    } else {
        check_response(&msg)
    }
    .map_err(|e| format!("check: {e}"))?;
    let e = |e: sip::ParseError| e.to_string();
    let start = match msg.method() {
        Some(m) => Start::Request {
            method: m.as_str().to_owned(),
            uri: tally_uri(
                &msg.request_uri()
                    .ok_or("no Request-URI")?
                    .map_err(|e| e.to_string())?,
            ),
        },
        None => Start::Response {
            code: msg.status().ok_or("no status")?,
        },
    };
    let via = msg.via().map_err(e)?;
    let cseq = msg.cseq().map_err(e)?;
    Ok(Fields {
        start,
        via: ViaView {
            transport: via.transport.to_ascii_uppercase(),
            host: tally_host(&via.host),
            port: via.port,
            branch: via.branch().map(str::to_owned),
        },
        from: tally_addr(&msg.from().map_err(e)?),
        to: tally_addr(&msg.to().map_err(e)?),
        call_id: msg.call_id().map_err(e)?.to_owned(),
        cseq: cseq.seq,
        cseq_method: cseq.method.as_str().to_owned(),
    })
}

fn tally_host(h: &sip::Host<'_>) -> String {
    match h {
        sip::Host::Name(n) => (*n).to_owned(),
        other => ip_host(other.ip().expect("an address")),
    }
}

fn tally_uri(u: &sip::Uri<'_>) -> UriView {
    match u {
        sip::Uri::Sip(s) => UriView::Sip {
            secure: s.secure,
            user: s.user_unescaped().map(|u| lossy(&u)),
            host: tally_host(&s.host),
            port: s.port,
        },
        other => UriView::Other(other.as_str().to_owned()),
    }
}

fn tally_addr(a: &sip::headers::NameAddr<'_>) -> AddrView {
    AddrView {
        display: a.display.as_ref().map(|d| d.to_string()),
        uri: tally_uri(&a.uri),
        tag: a.tag().map(str::to_owned),
    }
}

// ---- sipx-sip ----------------------------------------------------------------

/// `parse_datagram` with datagram limits, then `validate` (findings a proxy
/// may repair, i.e. a missing Max-Forwards, do not count as a refusal).
pub fn sipx(raw: &[u8]) -> Verdict {
    verdict(sipx_fields(raw))
}

fn sipx_fields(raw: &[u8]) -> Result<Fields, String> {
    use sipx_sip::headers::{From, To};
    use sipx_sip::{CSeq, CallId, Limits, Message, Via, parse_datagram, validate};
    let msg = parse_datagram(Bytes::copy_from_slice(raw), &Limits::datagram())
        .map_err(|e| format!("parse: {e}"))?;
    let findings: Vec<_> = validate(&msg)
        .into_iter()
        .filter(|f| !f.is_repairable())
        .collect();
    if !findings.is_empty() {
        return Err(format!("validate: {findings:?}"));
    }
    let start = match &msg {
        Message::Request(r) => Start::Request {
            method: lossy(r.method.as_bytes()),
            uri: sipx_uri(&r.uri),
        },
        Message::Response(r) => Start::Response {
            code: r.status.code(),
        },
    };
    let h = msg.headers();
    fn need<T>(v: Option<Result<T, sipx_sip::HeaderError>>, name: &str) -> Result<T, String> {
        v.ok_or(format!("no {name}"))?
            .map_err(|e| format!("{name}: {e}"))
    }
    let via: Via = need(h.typed(), "Via")?;
    let from: From = need(h.typed(), "From")?;
    let to: To = need(h.typed(), "To")?;
    let call_id: CallId = need(h.typed(), "Call-ID")?;
    let cseq: CSeq = need(h.typed(), "CSeq")?;
    Ok(Fields {
        start,
        via: ViaView {
            transport: lossy(&via.transport).to_ascii_uppercase(),
            host: sipx_host(&via.host),
            port: via.port,
            branch: via.branch().map(lossy),
        },
        from: sipx_addr(&from),
        to: sipx_addr(&to),
        call_id: lossy(&call_id.0),
        cseq: cseq.sequence,
        cseq_method: lossy(cseq.method.as_bytes()),
    })
}

fn sipx_host(h: &sipx_sip::Host) -> String {
    match h {
        sipx_sip::Host::Ip(ip) => ip_host(*ip),
        name => name.to_string(),
    }
}

fn sipx_uri(u: &sipx_sip::Uri) -> UriView {
    use sipx_sip::Scheme;
    match (u.scheme(), u.host()) {
        (Scheme::Sip | Scheme::Sips, Some(host)) => UriView::Sip {
            secure: matches!(u.scheme(), Scheme::Sips),
            user: u.decoded_user().map(|d| lossy(&d)),
            host: sipx_host(host),
            port: u.port(),
        },
        _ => UriView::Other(lossy(&u.to_bytes())),
    }
}

fn sipx_addr(a: &sipx_sip::Address) -> AddrView {
    AddrView {
        display: a.display_name.as_deref().map(lossy),
        uri: sipx_uri(&a.uri),
        tag: a.tag().map(lossy),
    }
}

// ---- ezk-sip-types -------------------------------------------------------------

/// ezk-sip-types has no whole-message parser: ezk-sip-core's transports cut
/// the head into lines with `PullParser`, parse the first as a
/// `MessageLine` and the others as `Line`s into `Headers`, and take the body
/// by Content-Length (to the end of the datagram when it is absent). This
/// does the same, then reads the typed headers.
pub fn ezk(raw: &[u8]) -> Verdict {
    verdict(ezk_fields(raw))
}

fn ezk_fields(raw: &[u8]) -> Result<Fields, String> {
    use ezk_sip_types::header::typed::{CSeq, CallID, ContentLength, FromTo, Via};
    use ezk_sip_types::msg::{Line, MessageLine, PullParser};
    use ezk_sip_types::parse::Parse;
    use ezk_sip_types::{Headers, Name};

    let buffer = Bytes::copy_from_slice(raw);
    let mut lines = PullParser::new(&buffer, 0);
    let mut start = None;
    let mut headers = Headers::new();
    for line in &mut lines {
        let line = line.map_err(|_| "incomplete head".to_owned())?;
        let line = std::str::from_utf8(line).map_err(|_| "head is not UTF-8".to_owned())?;
        if start.is_none() {
            let (_, l) =
                MessageLine::parse(&buffer)(line).map_err(|e| format!("start line: {e}"))?;
            start = Some(l);
        } else {
            let (_, l) = Line::parse(&buffer, line).map_err(|e| format!("header line: {e}"))?;
            headers.insert(l.name, l.value);
        }
    }
    let head_end = lines.head_end();
    if let Ok(len) = headers.get_named::<ContentLength>()
        && buffer.len() < head_end + len.0
    {
        return Err("body shorter than Content-Length".into());
    }
    let start = match start.ok_or("no start line")? {
        MessageLine::Request(r) => Start::Request {
            method: r.method.to_string(),
            uri: ezk_uri(&r.uri),
        },
        MessageLine::Response(s) => Start::Response {
            code: s.code.into_u16(),
        },
    };
    let e = |e: ezk_sip_types::header::HeaderError| e.to_string();
    let via: Via = headers.get_named().map_err(e)?;
    let from: FromTo = headers.get(Name::FROM).map_err(e)?;
    let to: FromTo = headers.get(Name::TO).map_err(e)?;
    let call_id: CallID = headers.get_named().map_err(e)?;
    let cseq: CSeq = headers.get_named().map_err(e)?;
    Ok(Fields {
        start,
        via: ViaView {
            transport: via.transport.to_ascii_uppercase(),
            host: ezk_host(&via.sent_by.host),
            port: via.sent_by.port,
            branch: via.params.get_val("branch").map(|b| b.to_string()),
        },
        from: ezk_addr(&from),
        to: ezk_addr(&to),
        call_id: call_id.0.to_string(),
        cseq: cseq.cseq,
        cseq_method: cseq.method.to_string(),
    })
}

fn ezk_host(h: &ezk_sip_types::host::Host) -> String {
    use ezk_sip_types::host::Host;
    match h {
        Host::IP4(a) => ip_host((*a).into()),
        Host::IP6(a) => ip_host((*a).into()),
        Host::Name(n) => n.to_string(),
    }
}

fn ezk_uri(u: &ezk_sip_types::uri::SipUri) -> UriView {
    use ezk_sip_types::uri::SipUriUserPart;
    UriView::Sip {
        secure: u.sips,
        user: match &u.user_part {
            SipUriUserPart::Empty => None,
            SipUriUserPart::User(u) => Some(u.to_string()),
            SipUriUserPart::UserPw(up) => Some(up.user.to_string()),
        },
        host: ezk_host(&u.host_port.host),
        port: u.host_port.port,
    }
}

fn ezk_addr(a: &ezk_sip_types::header::typed::FromTo) -> AddrView {
    AddrView {
        display: a.uri.name.as_ref().map(|n| n.to_string()),
        uri: ezk_uri(&a.uri.uri),
        tag: a.tag.as_ref().map(|t| t.to_string()),
    }
}
