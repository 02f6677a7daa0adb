//! The two requests that are derived from an INVITE rather than written by
//! the TU: the ACK for a non-2xx final response (§17.1.1.3), which the INVITE
//! client transaction sends itself, and the CANCEL (§9.1), which the TU sends
//! in a client transaction of its own.

use crate::builder::RequestBuilder;
use crate::error::{ParseError, ValueError};
use crate::header::HeaderName;
use crate::message::{Message, Method};

/// What a request derived from an INVITE copies: Request-URI, the top Via
/// only (the branch ties it to the INVITE's transaction), the Route set,
/// From, Call-ID and the CSeq number; `to` is given.
fn derived(invite: &Message, method: Method, to: &str) -> Result<Message, ParseError> {
    if invite.method() != Some(&Method::Invite) {
        return Err(ParseError::StartLine("not an INVITE"));
    }
    let uri = invite
        .request_uri_str()
        .ok_or(ParseError::StartLine("not a request"))?;
    let top_via = invite
        .list(HeaderName::Via)
        .next()
        .unwrap_or(Err(ValueError::Empty))
        .map_err(|e| ParseError::BadHeader(HeaderName::Via, e))?;
    let from = invite
        .single(HeaderName::From)?
        .ok_or(ParseError::MissingHeader(HeaderName::From))?;
    let cseq = invite.cseq()?;
    let mut b = RequestBuilder::new(method.clone(), uri).header(HeaderName::Via, top_via);
    for route in invite.header_lines(HeaderName::Route) {
        b = b.header(HeaderName::Route, route);
    }
    b.header(HeaderName::MaxForwards, 70)
        .header(HeaderName::From, from)
        .header(HeaderName::To, to)
        .header(HeaderName::CallId, invite.call_id()?)
        .header(HeaderName::CSeq, format_args!("{} {method}", cseq.seq))
        .build()
}

/// The ACK for a 300–699 response to `invite` (RFC 3261 §17.1.1.3): the
/// INVITE's Request-URI, top Via, Route set, From, Call-ID and CSeq number,
/// the To of the response (it carries the UAS's tag).
pub fn ack_for_failure(invite: &Message, response: &Message) -> Result<Message, ParseError> {
    let to = response
        .single(HeaderName::To)?
        .ok_or(ParseError::MissingHeader(HeaderName::To))?;
    derived(invite, Method::Ack, to)
}

/// The CANCEL for `invite` (RFC 3261 §9.1): the INVITE's Request-URI, top
/// Via, Route set, From, To, Call-ID and CSeq number. Send it in a client
/// transaction of its own, and only once a provisional response arrived.
pub fn cancel_for(invite: &Message) -> Result<Message, ParseError> {
    let to = invite
        .single(HeaderName::To)?
        .ok_or(ParseError::MissingHeader(HeaderName::To))?;
    derived(invite, Method::Cancel, to)
}
