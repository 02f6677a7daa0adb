//! Writing requests and responses.
//!
//! Builders collect header lines as text and produce a parsed [`Message`], so
//! that everything Tally sends went through the same parser as everything it
//! receives: a builder bug surfaces as an error here, not as a malformed
//! packet on the wire. Values with CR or LF are refused (header injection).

use std::fmt::{self, Display, Write as _};

use bytes::Bytes;

use crate::error::{ParseError, ValueError};
use crate::header::HeaderName;
use crate::headers::NameAddr;
use crate::message::{Message, Method};

#[derive(Clone, Debug)]
enum Name {
    Known(HeaderName),
    Named(String),
}

#[derive(Clone, Debug)]
struct Fields {
    lines: Vec<(Name, String)>,
    body: Option<(String, Bytes)>,
    error: Option<ParseError>,
}

impl Fields {
    fn new() -> Self {
        Fields {
            lines: Vec::with_capacity(12),
            body: None,
            error: None,
        }
    }

    fn push(&mut self, name: Name, value: impl Display) {
        let value = value.to_string();
        if value.contains(['\r', '\n']) {
            let h = match &name {
                Name::Known(h) => *h,
                Name::Named(_) => HeaderName::Other,
            };
            self.error.get_or_insert(ParseError::BadHeader(
                h,
                ValueError::Unexpected("line break in a value"),
            ));
            return;
        }
        if let Name::Known(HeaderName::ContentLength) = name {
            // Content-Length is always computed from the body.
            return;
        }
        self.lines.push((name, value));
    }

    fn set(&mut self, name: HeaderName, value: impl Display) {
        self.lines
            .retain(|(n, _)| !matches!(n, Name::Known(h) if *h == name));
        self.push(Name::Known(name), value);
    }

    fn write(self, start_line: &str) -> Result<Message, ParseError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let body_len = self.body.as_ref().map_or(0, |(_, b)| b.len());
        // The exact size (the Content-Length line's digits at most 20), so
        // the buffer is allocated once and the message keeps no spare
        // capacity for as long as it is held.
        let name_len = |name: &Name| match name {
            Name::Known(h) => h.as_str().len(),
            Name::Named(s) => s.len(),
        };
        let size = start_line.len()
            + 2
            + self
                .lines
                .iter()
                .map(|(n, v)| name_len(n) + 2 + v.len() + 2)
                .sum::<usize>()
            + self
                .body
                .as_ref()
                .map_or(0, |(ct, _)| "Content-Type: ".len() + ct.len() + 2)
            + "Content-Length: ".len()
            + 20
            + 4
            + body_len;
        let mut out = String::with_capacity(size);
        out.push_str(start_line);
        out.push_str("\r\n");
        for (name, value) in &self.lines {
            let n = match name {
                Name::Known(h) => h.as_str(),
                Name::Named(s) => s.as_str(),
            };
            let _ = write!(out, "{n}: {value}\r\n");
        }
        if let Some((ct, _)) = &self.body {
            let _ = write!(out, "Content-Type: {ct}\r\n");
        }
        let _ = write!(out, "Content-Length: {body_len}\r\n\r\n");
        let mut bytes = out.into_bytes();
        if let Some((_, b)) = &self.body {
            bytes.extend_from_slice(b);
        }
        Message::parse(bytes)
    }
}

/// Builds a request.
#[derive(Clone, Debug)]
pub struct RequestBuilder {
    method: Method,
    uri: String,
    fields: Fields,
}

impl RequestBuilder {
    pub fn new(method: Method, uri: impl Display) -> Self {
        RequestBuilder {
            method,
            uri: uri.to_string(),
            fields: Fields::new(),
        }
    }

    pub fn build(self) -> Result<Message, ParseError> {
        if self.uri.contains([' ', '\r', '\n', '\t']) {
            return Err(ParseError::BadRequestUri(ValueError::BadUri("white space")));
        }
        self.fields
            .write(&format!("{} {} SIP/2.0", self.method, self.uri))
    }
}

/// Builds a response.
#[derive(Clone, Debug)]
pub struct ResponseBuilder {
    code: u16,
    reason: String,
    fields: Fields,
    to_tag: Option<String>,
}

impl ResponseBuilder {
    pub fn new(code: u16, reason: impl Display) -> Self {
        ResponseBuilder {
            code,
            reason: reason.to_string(),
            fields: Fields::new(),
            to_tag: None,
        }
    }

    /// A response to `req` per RFC 3261 §8.2.6.2: every Via in order, From,
    /// To, Call-ID and CSeq copied; Timestamp copied into a 100 (§8.2.6.1);
    /// Record-Route copied into a provisional (101–199) or 2xx response
    /// (§12.1.1: the responses that may establish a dialog, so the peer's
    /// route set goes through the proxies that record-routed, as Kamailio
    /// in front of a cluster does). Add the To tag with
    /// [`ResponseBuilder::to_tag`] for anything but 100.
    pub fn for_request(req: &Message, code: u16, reason: impl Display) -> Self {
        let mut b = ResponseBuilder::new(code, reason);
        for f in req.fields() {
            let copy = matches!(
                f.kind,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            ) || (code == 100 && f.kind == HeaderName::Timestamp)
                || ((101..300).contains(&code) && f.kind == HeaderName::RecordRoute);
            if copy {
                b.fields.push(Name::Known(f.kind), f.value);
            }
        }
        b
    }

    /// A response with the default reason phrase for `code`.
    pub fn reply(req: &Message, code: u16) -> Self {
        Self::for_request(req, code, default_reason(code))
    }

    /// Adds `;tag=…` to To unless it already has a tag (a response within a
    /// dialog, or a retransmitted request answered again).
    pub fn to_tag(mut self, tag: impl Display) -> Self {
        self.to_tag = Some(tag.to_string());
        self
    }

    pub fn build(mut self) -> Result<Message, ParseError> {
        if !(100..=699).contains(&self.code) {
            return Err(ParseError::StatusCode);
        }
        if self.reason.contains(['\r', '\n']) {
            return Err(ParseError::StartLine("line break in the reason phrase"));
        }
        if let Some(tag) = self.to_tag.take() {
            for (name, value) in &mut self.fields.lines {
                if matches!(name, Name::Known(HeaderName::To)) {
                    let has_tag = NameAddr::parse(value)
                        .map_err(|e| ParseError::BadHeader(HeaderName::To, e))?
                        .tag()
                        .is_some();
                    if !has_tag {
                        value.push_str(";tag=");
                        value.push_str(&tag);
                    }
                }
            }
        }
        self.fields
            .write(&format!("SIP/2.0 {} {}", self.code, self.reason))
    }
}

/// The header and body methods both builders share (one definition, so the
/// two cannot drift apart).
macro_rules! field_methods {
    ($builder:ty) => {
        impl $builder {
            /// Appends a header line.
            pub fn header(mut self, name: HeaderName, value: impl Display) -> Self {
                self.fields.push(Name::Known(name), value);
                self
            }

            /// Replaces every line of `name` with one line.
            pub fn set_header(mut self, name: HeaderName, value: impl Display) -> Self {
                self.fields.set(name, value);
                self
            }

            /// Appends an extension header by name.
            pub fn header_named(mut self, name: &str, value: impl Display) -> Self {
                if !crate::text::is_token(name) {
                    self.fields.error.get_or_insert(ParseError::HeaderName);
                }
                self.fields.push(Name::Named(name.to_owned()), value);
                self
            }

            /// Sets the body and its Content-Type (Content-Length is computed).
            pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
                self.fields.body = Some((content_type.to_owned(), body.into()));
                self
            }
        }
    };
}

field_methods!(RequestBuilder);
field_methods!(ResponseBuilder);

/// The reason phrases of RFC 3261 §21 and the extensions Tally uses.
pub fn default_reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => match code / 100 {
            1 => "Session Progress",
            2 => "OK",
            3 => "Redirection",
            4 => "Request Failure",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}

/// A Via value for a request Tally sends: `SIP/2.0/<transport> <sent-by>;branch=<branch>;rport`.
pub struct ViaValue<'a> {
    pub transport: &'a str,
    pub sent_by: &'a str,
    pub branch: &'a str,
}

impl Display for ViaValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SIP/2.0/{} {};branch={};rport",
            self.transport, self.sent_by, self.branch
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Via: SIP/2.0/UDP proxy.atlanta.com;branch=z9hG4bKnashds8\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Timestamp: 54\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn response_copies_the_rfc_8_2_6_headers() {
        let req = Message::parse(INVITE.as_bytes().to_vec()).unwrap();
        let r = ResponseBuilder::reply(&req, 180)
            .to_tag("a6c85cf")
            .build()
            .unwrap();
        assert_eq!(r.status(), Some(180));
        let vias: Vec<_> = r.header_lines(HeaderName::Via).collect();
        assert_eq!(vias.len(), 2);
        assert_eq!(r.via().unwrap().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(r.to().unwrap().tag(), Some("a6c85cf"));
        assert_eq!(r.from().unwrap().tag(), Some("1928301774"));
        assert_eq!(r.call_id().unwrap(), "a84b4c76e66710@pc33.atlanta.com");
        assert_eq!(r.cseq().unwrap().seq, 314159);
        assert!(r.header(HeaderName::Timestamp).is_none());
        assert!(r.header(HeaderName::Contact).is_none());
        let trying = ResponseBuilder::reply(&req, 100).build().unwrap();
        assert_eq!(trying.header(HeaderName::Timestamp), Some("54"));
        assert_eq!(trying.to().unwrap().tag(), None);
    }

    #[test]
    fn record_route_is_copied_into_responses_that_may_make_a_dialog() {
        let req = Message::parse(
            INVITE
                .replace(
                    "Contact:",
                    "Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>\r\n\
                     Record-Route: <sip:p0.example;lr>\r\nContact:",
                )
                .into_bytes(),
        )
        .unwrap();
        for code in [180, 200] {
            let r = ResponseBuilder::reply(&req, code)
                .to_tag("t")
                .build()
                .unwrap();
            let rr: Vec<_> = r.header_lines(HeaderName::RecordRoute).collect();
            assert_eq!(
                rr,
                [
                    "<sip:p2.example;lr>, <sip:p1.example;lr>",
                    "<sip:p0.example;lr>"
                ],
                "{code}: in order, as received"
            );
        }
        for code in [100, 407, 486] {
            let r = ResponseBuilder::reply(&req, code).build().unwrap();
            assert!(r.header(HeaderName::RecordRoute).is_none(), "{code}");
        }
    }

    #[test]
    fn to_tag_is_not_added_twice() {
        let req = Message::parse(
            INVITE
                .replace(
                    "To: Bob <sip:bob@biloxi.com>",
                    "To: <sip:bob@biloxi.com>;tag=x",
                )
                .into_bytes(),
        )
        .unwrap();
        let r = ResponseBuilder::reply(&req, 200)
            .to_tag("y")
            .build()
            .unwrap();
        assert_eq!(r.to().unwrap().tag(), Some("x"));
    }

    #[test]
    fn request_with_body_and_injection_refused() {
        let m = RequestBuilder::new(Method::Invite, "sip:bob@example.com")
            .header(
                HeaderName::Via,
                ViaValue {
                    transport: "UDP",
                    sent_by: "192.0.2.1:5060",
                    branch: "z9hG4bK1",
                },
            )
            .header(HeaderName::CallId, "c1")
            .header(HeaderName::ContentLength, 999)
            .body("application/sdp", &b"v=0\r\n"[..])
            .build()
            .unwrap();
        assert_eq!(m.body(), b"v=0\r\n");
        assert_eq!(m.header(HeaderName::ContentLength), Some("5"));
        assert_eq!(m.via().unwrap().rport(), Some(None));
        let bad = RequestBuilder::new(Method::Bye, "sip:a@b")
            .header(HeaderName::Subject, "x\r\nVia: evil")
            .build();
        assert!(bad.is_err());
        assert!(
            RequestBuilder::new(Method::Bye, "sip:a@b")
                .header_named("Bad Name", "v")
                .build()
                .is_err()
        );
        assert!(ResponseBuilder::new(700, "x").build().is_err());
    }
}
