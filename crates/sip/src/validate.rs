//! What a UAS or proxy checks before it trusts a message, and the answer to a
//! request that fails: a `400 Bad Request` (or `505`, `513`) whose reason
//! phrase names the defect (RFC 3261 §8.2, §16.3).
//!
//! [`Message::parse`] only guarantees framing. [`check_request`] and
//! [`check_response`] read, by type, every header the transaction, dialog and
//! call layers depend on, so that those layers can treat their reads as
//! infallible in practice and a defect is reported once, here.

use crate::builder::ResponseBuilder;
use crate::error::{ParseError, ValueError};
use crate::header::HeaderName;
use crate::headers::{MediaType, parse_date};
use crate::message::{Message, Method};
use crate::uri::Uri;

/// Headers every request and response must carry (RFC 3261 §8.1.1).
fn check_common(msg: &Message) -> Result<(), ParseError> {
    msg.via()?;
    for v in msg.vias() {
        v?;
    }
    msg.from()?;
    msg.to()?;
    msg.call_id()?;
    msg.cseq()?;
    if let Some(ct) = msg.single(HeaderName::ContentType)? {
        MediaType::parse(ct).map_err(|e| ParseError::BadHeader(HeaderName::ContentType, e))?;
    } else if !msg.body().is_empty() && msg.is_request() {
        return Err(ParseError::MissingHeader(HeaderName::ContentType));
    }
    Ok(())
}

/// Checks a request before any layer acts on it.
pub fn check_request(msg: &Message) -> Result<(), ParseError> {
    let method = msg.method().ok_or(ParseError::StartLine("not a request"))?;
    let uri = msg
        .request_uri()
        .unwrap_or(Err(ValueError::Empty))
        .map_err(ParseError::BadRequestUri)?;
    if let Uri::Sip(u) = &uri
        && u.headers.is_some()
    {
        // RFC 3261 §19.1.5: headers are not allowed in a Request-URI.
        return Err(ParseError::BadRequestUri(ValueError::BadUri(
            "headers are not allowed in a Request-URI",
        )));
    }
    check_common(msg)?;
    if msg.cseq()?.method != *method {
        return Err(ParseError::CSeqMethodMismatch);
    }
    msg.max_forwards()?;
    for c in msg.contacts() {
        c?;
    }
    msg.seconds(HeaderName::Expires)?;
    if let Some(d) = msg.single(HeaderName::Date)? {
        parse_date(d).map_err(|e| ParseError::BadHeader(HeaderName::Date, e))?;
    }
    for r in msg.name_addrs(HeaderName::Route) {
        r?;
    }
    if matches!(method, Method::Invite) && msg.contacts().next().is_none() {
        // RFC 3261 §8.1.1.8: an INVITE must have exactly one Contact. RFC
        // 2543 peers (RFC 4475 §3.4.1) omitted it; accept that.
    }
    Ok(())
}

/// Checks a response before the transaction layer matches it.
pub fn check_response(msg: &Message) -> Result<(), ParseError> {
    if msg.is_request() {
        return Err(ParseError::StartLine("not a response"));
    }
    check_common(msg)?;
    for c in msg.contacts() {
        c?;
    }
    Ok(())
}

/// The response to send for a request that failed [`check_request`].
///
/// `None` when the request lacks what a response must echo (then it is
/// dropped and counted, RFC 3261 §8.2 leaves no other choice) or when it is an
/// ACK, which is never answered.
pub fn reject(req: &Message, err: &ParseError, to_tag: &str) -> Option<Message> {
    if matches!(req.method(), Some(Method::Ack) | None) {
        return None;
    }
    let reason = err.reason_phrase();
    // Echoing needs a top Via, From, To, Call-ID and CSeq that at least exist.
    for h in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ] {
        req.header(h)?;
    }
    let mut b = ResponseBuilder::for_request(req, err.status_code(), reason);
    if req.to().is_ok() {
        b = b.to_tag(to_tag);
    }
    b.build().ok()
}

/// The response for a datagram [`Message::parse`] refused, when enough of it
/// is legible to answer: the header lines are scanned leniently (the start
/// line is what failed, or a header the parser could not frame) and echoed.
pub fn reject_unparsable(raw: &[u8], err: &ParseError) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(raw).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    if start.len() >= 4 && start.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        return None; // never answer a response
    }
    if start.starts_with("ACK ") {
        return None;
    }
    let mut out = format!("SIP/2.0 {} {}\r\n", err.status_code(), err.reason_phrase());
    let mut seen = [false; 5];
    let wanted = [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ];
    for line in lines {
        // Folded continuation lines are skipped: the echo stays conservative.
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let kind = HeaderName::from_wire(name.trim_end());
        if let Some(i) = wanted.iter().position(|w| *w == kind) {
            let value = value.trim();
            if value.is_empty() || value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return None;
            }
            if kind != HeaderName::Via && seen[i] {
                return None;
            }
            seen[i] = true;
            out.push_str(kind.as_str());
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
    }
    if !seen.iter().all(|s| *s) {
        return None;
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    // What we send must itself parse.
    Message::parse(out.clone().into_bytes()).ok()?;
    Some(out.into_bytes())
}
