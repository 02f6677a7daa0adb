//! A received SIP message: the bytes as they came, plus an index of the start
//! line and header fields. Header values are parsed into types only when asked
//! (Kamailio's lesson: do no work for headers nobody reads).
//!
//! [`Message::parse`] checks what framing and routing cannot do without: the
//! start line, header syntax (`name: value`, folding), UTF-8, and
//! Content-Length (a single, non-negative value no larger than the body: on a
//! datagram transport anything else is mis-framing). Everything else is checked
//! when read; [`crate::validate::check_request`] reads what a UAS relies on and
//! turns the first defect into a `400` with a reason phrase.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;

use crate::error::{ParseError, ValueError};
use crate::header::HeaderName;
use crate::headers::{CSeq, Contact, NameAddr, Via};
use crate::text::{CommaSplit, class, parse_u32, span};
use crate::uri::Uri;

/// Bounds on what the parser accepts, so that hostile input cannot make it
/// allocate or work without limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Whole message, start line to end of body.
    pub max_message_size: usize,
    /// Number of header lines (a folded header counts once).
    pub max_headers: usize,
    /// One physical line of the start line or header section.
    pub max_line_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 65_535,
            max_headers: 256,
            max_line_length: 16 * 1024,
        }
    }
}

/// A SIP method. Unknown methods are kept by name (RFC 4475 §3.1.1.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Refer,
    Notify,
    Subscribe,
    Message,
    Prack,
    Publish,
    Other(Box<str>),
}

impl Method {
    /// Parses a method token (methods are case-sensitive, RFC 3261 §7.1).
    pub fn from_token(s: &str) -> Option<Method> {
        Some(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            "PRACK" => Method::Prack,
            "PUBLISH" => Method::Publish,
            other if crate::text::is_token(other) => Method::Other(other.into()),
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Prack => "PRACK",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum StartLine {
    Request { method: Method, uri: Range<u32> },
    Response { code: u16, reason: Range<u32> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct HeaderEntry {
    name: HeaderName,
    name_span: Range<u32>,
    value: Range<u32>,
}

/// One header line as received: its name as written, its classification and
/// its value (folding turned into spaces, surrounding white space trimmed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderField<'a> {
    pub kind: HeaderName,
    pub name: &'a str,
    pub value: &'a str,
}

/// A parsed SIP request or response.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The message exactly as received (what a proxy would forward).
    raw: Bytes,
    /// The start line and headers, validated UTF-8, folding replaced by
    /// spaces: a slice of `raw` itself when nothing was folded (no copy: the
    /// messages a call keeps for its whole life cost their size once, not
    /// twice), else a buffer of its own. Read through [`Message::head`].
    head: Bytes,
    start: StartLine,
    /// Exactly as long as the message has lines (a boxed slice, not the
    /// parser's growing `Vec`): a call keeps its INVITEs for its whole life
    /// (issue 18: memory per live call).
    headers: Box<[HeaderEntry]>,
    /// Index in `headers` of the first line of each known header
    /// (`NONE` when absent), so the headers every layer reads are O(1).
    first: [u16; HeaderName::COUNT],
    /// Bit per known header that appears on more than one line.
    repeated: u64,
    body: Range<usize>,
}

const NONE: u16 = u16::MAX;

fn span_of(r: &Range<u32>) -> Range<usize> {
    r.start as usize..r.end as usize
}

impl Message {
    /// Parses one datagram (or one message cut from a stream by
    /// [`crate::framing::StreamFramer`]) with the default [`Limits`].
    pub fn parse(raw: impl Into<Bytes>) -> Result<Message, ParseError> {
        Self::parse_with(raw.into(), &Limits::default())
    }

    pub fn parse_with(raw: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        if raw.len() > limits.max_message_size {
            return Err(ParseError::TooLarge {
                size: raw.len(),
                limit: limits.max_message_size,
            });
        }
        let b = &raw[..];
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        let skip = b
            .iter()
            .position(|&c| c != b'\r' && c != b'\n')
            .ok_or(ParseError::Incomplete)?;
        // One pass over the header section; offsets are relative to `skip`,
        // where `head` will start. Structure bytes are ASCII, so every offset
        // is a char boundary once the section is known to be UTF-8.
        let line_end = |from: usize| -> (usize, usize) {
            // (end of line content, start of next line)
            match memchr::memchr(b'\n', &b[from..]) {
                Some(i) => {
                    let nl = from + i;
                    let end = if nl > from && b[nl - 1] == b'\r' {
                        nl - 1
                    } else {
                        nl
                    };
                    (end, nl + 1)
                }
                None => (b.len(), b.len()),
            }
        };
        let (first_end, mut p) = line_end(skip);
        if first_end - skip > limits.max_line_length {
            return Err(ParseError::LineTooLong(limits.max_line_length));
        }
        if p == b.len() && first_end == b.len() {
            return Err(ParseError::Incomplete);
        }
        let start = parse_start_line(
            std::str::from_utf8(&b[skip..first_end]).map_err(|_| ParseError::NotUtf8)?,
        )?;
        let mut headers: Vec<HeaderEntry> = Vec::with_capacity(20);
        let mut first = [NONE; HeaderName::COUNT];
        let mut repeated = 0u64;
        let max_headers = limits.max_headers.min(usize::from(NONE) - 1);
        let limits = &Limits {
            max_headers,
            ..*limits
        };
        let mut folded = false;
        let mut content_length: Option<usize> = None;
        let rel = |x: usize| (x - skip) as u32;
        let (head_end, body_start) = loop {
            if p >= b.len() {
                // The header section runs to the end of the datagram without
                // the empty line (RFC 4475's baddn.dat is such a message):
                // accepted on datagrams as a message with no body. The stream
                // framer never hands over such a message.
                if b.last() == Some(&b'\n') {
                    break (b.len(), b.len());
                }
                return Err(ParseError::Incomplete);
            }
            let c = b[p];
            if c == b'\n' {
                break (p, p + 1);
            }
            if c == b'\r' && b.get(p + 1) == Some(&b'\n') {
                break (p, p + 2);
            }
            let (end, next) = line_end(p);
            if end - p > limits.max_line_length {
                return Err(ParseError::LineTooLong(limits.max_line_length));
            }
            if next == b.len() && end == b.len() {
                return Err(ParseError::Incomplete);
            }
            if c == b' ' || c == b'\t' {
                // Continuation of the previous header (RFC 3261 §7.3.1).
                let last = headers.last_mut().ok_or(ParseError::StartLine(
                    "continuation line before the first header",
                ))?;
                folded = true;
                let trimmed_end = rtrim(b, p, end);
                if trimmed_end > p {
                    if last.value.start == last.value.end {
                        // The value starts on the continuation line.
                        last.value.start = rel(ltrim(b, p, trimmed_end));
                    }
                    last.value.end = rel(trimmed_end);
                }
            } else {
                let name_end = p + span(&b[p..end], class::TOKEN);
                let colon = ltrim(b, name_end, end);
                if colon == end {
                    return Err(ParseError::HeaderWithoutColon);
                }
                if b[colon] != b':' || name_end == p {
                    return Err(ParseError::HeaderName);
                }
                let kind = HeaderName::from_wire_bytes(&b[p..name_end]);
                let vstart = ltrim(b, colon + 1, end);
                let vend = rtrim(b, vstart, end);
                if kind == HeaderName::ContentLength {
                    if content_length.is_some() {
                        return Err(ParseError::DuplicateContentLength);
                    }
                    // An index, not the span: a folded value grows later.
                    content_length = Some(headers.len());
                }
                if headers.len() == limits.max_headers {
                    return Err(ParseError::TooManyHeaders(limits.max_headers));
                }
                if kind != HeaderName::Other {
                    let slot = &mut first[kind as usize];
                    if *slot == NONE {
                        *slot = headers.len() as u16;
                    } else {
                        repeated |= 1 << kind as u32;
                    }
                }
                headers.push(HeaderEntry {
                    name: kind,
                    name_span: rel(p)..rel(name_end),
                    value: rel(vstart)..rel(vend),
                });
            }
            p = next;
        };
        let head_bytes = &b[skip..head_end];
        // A CR is only ever half of a line break (RFC 3261 §25.1: not even a
        // quoted-pair may hold one); a bare CR would end up inside a value.
        for i in memchr::memchr_iter(b'\r', head_bytes) {
            if head_bytes.get(i + 1) != Some(&b'\n') {
                return Err(ParseError::BareCr);
            }
        }
        let text = std::str::from_utf8(head_bytes).map_err(|_| ParseError::NotUtf8)?;
        let head = if folded {
            // Turn the CR/LF of folded lines into spaces: same length, so every
            // offset stays valid, and readers never see line breaks.
            let mut v = text.as_bytes().to_vec();
            for h in &headers {
                for c in &mut v[span_of(&h.value)] {
                    if *c == b'\r' || *c == b'\n' {
                        *c = b' ';
                    }
                }
            }
            Bytes::from(v)
        } else {
            raw.slice(skip..head_end)
        };
        // Only ASCII bytes were replaced by ASCII bytes, so this holds; the
        // check (on the rare folded message only) keeps `head()` sound even if
        // that loop ever changes.
        let text = if folded {
            std::str::from_utf8(&head).map_err(|_| ParseError::NotUtf8)?
        } else {
            text
        };
        let available = b.len() - body_start;
        let body = match content_length {
            None => body_start..b.len(),
            Some(i) => {
                let n = parse_u32(&text[span_of(&headers[i].value)])
                    .map_err(ParseError::ContentLength)? as usize;
                if n > available {
                    return Err(ParseError::BodyTooShort {
                        declared: n,
                        actual: available,
                    });
                }
                // RFC 3261 §18.3: octets past Content-Length are discarded.
                body_start..body_start + n
            }
        };
        Ok(Message {
            raw,
            head,
            start,
            headers: headers.into_boxed_slice(),
            first,
            repeated,
            body,
        })
    }

    /// The message as received.
    pub fn as_bytes(&self) -> &Bytes {
        &self.raw
    }

    /// The start line and header section as text (see the `head` field).
    fn head(&self) -> &str {
        // SAFETY: `head` is set only by `parse_with`, to bytes that
        // `std::str::from_utf8` accepted there (the slice of `raw` it
        // checked, or the folded copy checked again), and `Bytes` never
        // changes what it holds.
        unsafe { std::str::from_utf8_unchecked(&self.head) }
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// The request method, `None` for a response.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI text, `None` for a response.
    pub fn request_uri_str(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(&self.head()[span_of(uri)]),
            StartLine::Response { .. } => None,
        }
    }

    /// The parsed Request-URI (`None` for a response).
    pub fn request_uri(&self) -> Option<Result<Uri<'_>, ValueError>> {
        self.request_uri_str().map(Uri::parse)
    }

    /// The status code, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason_phrase(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(&self.head()[span_of(reason)]),
            StartLine::Request { .. } => None,
        }
    }

    pub fn body(&self) -> &[u8] {
        &self.raw[self.body.clone()]
    }

    /// The body as a cheap, reference-counted slice of the received buffer.
    pub fn body_bytes(&self) -> Bytes {
        self.raw.slice(self.body.clone())
    }

    /// Every header line in order.
    pub fn fields(&self) -> impl Iterator<Item = HeaderField<'_>> + '_ {
        self.headers.iter().map(|h| HeaderField {
            kind: h.name,
            name: &self.head()[span_of(&h.name_span)],
            value: &self.head()[span_of(&h.value)],
        })
    }

    /// Values of every line of a known header, in order.
    pub fn header_lines(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        let from = match name {
            HeaderName::Other => 0,
            known => match self.first[known as usize] {
                NONE => self.headers.len(),
                i => usize::from(i),
            },
        };
        self.headers[from..]
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| &self.head()[span_of(&h.value)])
    }

    /// The value of the first line of a known header.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        if name == HeaderName::Other {
            return self.header_lines(name).next();
        }
        match self.first[name as usize] {
            NONE => None,
            i => Some(&self.head()[span_of(&self.headers[usize::from(i)].value)]),
        }
    }

    /// The value of the only line of a header that must appear at most once.
    pub fn single(&self, name: HeaderName) -> Result<Option<&str>, ParseError> {
        if name != HeaderName::Other && self.repeated & (1 << name as u32) != 0 {
            return Err(ParseError::DuplicateHeader(name));
        }
        Ok(self.header(name))
    }

    /// Values of every line of a header by its wire name (any case; use this
    /// for extension headers).
    pub fn header_lines_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        let kind = HeaderName::from_wire(name);
        self.headers
            .iter()
            .filter(move |h| {
                h.name == kind
                    && (kind != HeaderName::Other
                        || self.head()[span_of(&h.name_span)].eq_ignore_ascii_case(name))
            })
            .map(|h| &self.head()[span_of(&h.value)])
    }

    pub fn header_named<'s>(&'s self, name: &'s str) -> Option<&'s str> {
        self.header_lines_named(name).next()
    }

    /// The comma-separated elements of every line of a list header.
    pub fn list(&self, name: HeaderName) -> impl Iterator<Item = Result<&str, ValueError>> + '_ {
        self.header_lines(name).flat_map(CommaSplit::new)
    }

    fn required(&self, name: HeaderName) -> Result<&str, ParseError> {
        self.single(name)?.ok_or(ParseError::MissingHeader(name))
    }

    fn typed<'s, T>(
        &'s self,
        name: HeaderName,
        f: impl FnOnce(&'s str) -> Result<T, ValueError>,
    ) -> Result<T, ParseError> {
        f(self.required(name)?).map_err(|e| ParseError::BadHeader(name, e))
    }

    /// Every Via value, topmost first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> + '_ {
        self.list(HeaderName::Via).map(|v| {
            v.and_then(Via::parse)
                .map_err(|e| ParseError::BadHeader(HeaderName::Via, e))
        })
    }

    /// The topmost Via.
    pub fn via(&self) -> Result<Via<'_>, ParseError> {
        self.vias()
            .next()
            .unwrap_or(Err(ParseError::MissingHeader(HeaderName::Via)))
    }

    pub fn from(&self) -> Result<NameAddr<'_>, ParseError> {
        self.typed(HeaderName::From, NameAddr::parse)
    }

    pub fn to(&self) -> Result<NameAddr<'_>, ParseError> {
        self.typed(HeaderName::To, NameAddr::parse)
    }

    pub fn call_id(&self) -> Result<&str, ParseError> {
        self.typed(HeaderName::CallId, crate::headers::parse_call_id)
    }

    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        self.typed(HeaderName::CSeq, CSeq::parse)
    }

    /// `Max-Forwards`, if present.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        match self.single(HeaderName::MaxForwards)? {
            None => Ok(None),
            Some(v) => crate::headers::parse_max_forwards(v)
                .map(Some)
                .map_err(|e| ParseError::BadHeader(HeaderName::MaxForwards, e)),
        }
    }

    /// Every Contact value in order (`*` included).
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, ParseError>> + '_ {
        self.list(HeaderName::Contact).map(|v| {
            v.and_then(Contact::parse)
                .map_err(|e| ParseError::BadHeader(HeaderName::Contact, e))
        })
    }

    /// Name-addr values of a list header such as Route, Record-Route or
    /// P-Asserted-Identity.
    pub fn name_addrs(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.list(name).map(move |v| {
            v.and_then(NameAddr::parse)
                .map_err(|e| ParseError::BadHeader(name, e))
        })
    }

    /// Option tags of Supported / Require / Proxy-Require / Unsupported, or
    /// the methods of Allow.
    pub fn tokens(&self, name: HeaderName) -> impl Iterator<Item = Result<&str, ParseError>> + '_ {
        self.list(name).map(move |v| {
            v.and_then(|t| {
                if crate::text::is_token(t) {
                    Ok(t)
                } else {
                    Err(ValueError::Unexpected("not a token"))
                }
            })
            .map_err(|e| ParseError::BadHeader(name, e))
        })
    }

    /// Whether Supported (or Require) lists `tag`.
    pub fn has_option(&self, name: HeaderName, tag: &str) -> bool {
        self.tokens(name)
            .any(|t| t.is_ok_and(|t| t.eq_ignore_ascii_case(tag)))
    }

    /// A header holding a number of seconds (Expires, Min-Expires).
    pub fn seconds(&self, name: HeaderName) -> Result<Option<u32>, ParseError> {
        match self.single(name)? {
            None => Ok(None),
            Some(v) => parse_u32(v)
                .map(Some)
                .map_err(|e| ParseError::BadHeader(name, e)),
        }
    }

    /// Digest credentials of every `Authorization` (or, with
    /// `HeaderName::ProxyAuthorization`, `Proxy-Authorization`) line. A line
    /// with another scheme is an error item, not skipped: the caller decides.
    pub fn credentials(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<crate::auth::Credentials, crate::auth::ParseError>> + '_ {
        self.header_lines(name).map(crate::auth::Credentials::parse)
    }

    /// Digest challenges of every `WWW-Authenticate` (or `Proxy-Authenticate`) line.
    pub fn challenges(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<crate::auth::Challenge, crate::auth::ParseError>> + '_ {
        self.header_lines(name).map(crate::auth::Challenge::parse)
    }

    /// Session-Expires (RFC 4028), if present.
    pub fn session_expires(&self) -> Result<Option<crate::headers::SessionExpires>, ParseError> {
        self.single(HeaderName::SessionExpires)?
            .map(|v| {
                crate::headers::SessionExpires::parse(v)
                    .map_err(|e| ParseError::BadHeader(HeaderName::SessionExpires, e))
            })
            .transpose()
    }

    /// Retry-After, if present.
    pub fn retry_after(&self) -> Result<Option<crate::headers::RetryAfter>, ParseError> {
        self.single(HeaderName::RetryAfter)?
            .map(|v| {
                crate::headers::RetryAfter::parse(v)
                    .map_err(|e| ParseError::BadHeader(HeaderName::RetryAfter, e))
            })
            .transpose()
    }

    /// Refer-To (RFC 3515) with any embedded Replaces decoded.
    pub fn refer_to(&self) -> Result<Option<crate::headers::ReferTo<'_>>, ParseError> {
        self.single(HeaderName::ReferTo)?
            .map(|v| {
                crate::headers::ReferTo::parse(v)
                    .map_err(|e| ParseError::BadHeader(HeaderName::ReferTo, e))
            })
            .transpose()
    }

    /// Referred-By (RFC 3892).
    pub fn referred_by(&self) -> Result<Option<NameAddr<'_>>, ParseError> {
        self.single(HeaderName::ReferredBy)?
            .map(|v| {
                NameAddr::parse(v).map_err(|e| ParseError::BadHeader(HeaderName::ReferredBy, e))
            })
            .transpose()
    }

    /// Replaces (RFC 3891).
    pub fn replaces(&self) -> Result<Option<crate::headers::Replaces>, ParseError> {
        self.single(HeaderName::Replaces)?
            .map(|v| {
                crate::headers::Replaces::parse(v)
                    .map_err(|e| ParseError::BadHeader(HeaderName::Replaces, e))
            })
            .transpose()
    }

    /// Content-Length as declared (the body length when absent).
    pub fn content_length(&self) -> usize {
        self.body.len()
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header(HeaderName::ContentType)
    }

    /// A short text for logs: start line and Call-ID.
    pub fn summary(&self) -> String {
        let first = match &self.start {
            StartLine::Request { method, uri } => {
                format!("{method} {}", &self.head()[span_of(uri)])
            }
            StartLine::Response { code, reason } => {
                format!("{code} {}", &self.head()[span_of(reason)])
            }
        };
        match self.header(HeaderName::CallId) {
            Some(c) => format!("{first} (Call-ID {c})"),
            None => first,
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("summary", &self.summary())
            .field("bytes", &self.raw.len())
            .finish()
    }
}

fn rtrim(b: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && crate::text::is_ws(b[end - 1]) {
        end -= 1;
    }
    end
}

fn ltrim(b: &[u8], mut start: usize, end: usize) -> usize {
    while start < end && crate::text::is_ws(b[start]) {
        start += 1;
    }
    start
}

fn is_sip_version(s: &str) -> Result<(), ParseError> {
    if s.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    let looks_like_version = s.len() > 4
        && s.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/")
        && s[4..].split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    if looks_like_version {
        Err(ParseError::Version)
    } else {
        Err(ParseError::StartLine("invalid SIP version"))
    }
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    if line.len() >= 4 && line.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let (version, rest) = line
            .split_once(' ')
            .ok_or(ParseError::StartLine("no status code"))?;
        is_sip_version(version)?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::StatusCode);
        }
        let code: u16 = code.parse().map_err(|_| ParseError::StatusCode)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::StatusCode);
        }
        if reason.bytes().any(|b| b < b' ' && b != b'\t') {
            return Err(ParseError::StartLine("control character in reason phrase"));
        }
        let reason_start = (line.len() - reason.len()) as u32;
        return Ok(StartLine::Response {
            code,
            reason: reason_start..line.len() as u32,
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP
    // between elements, none at the end (RFC 4475 §3.1.2.9, §3.1.2.10).
    let b = line.as_bytes();
    let sp1 = memchr::memchr(b' ', b).ok_or(ParseError::StartLine("no Request-URI"))?;
    let sp2 = memchr::memchr(b' ', &b[sp1 + 1..])
        .map(|i| sp1 + 1 + i)
        .ok_or(ParseError::StartLine("no SIP version"))?;
    if memchr::memchr(b' ', &b[sp2 + 1..]).is_some() {
        return Err(ParseError::StartLine(
            "extra white space in the request line",
        ));
    }
    let (method, uri, version) = (&line[..sp1], &line[sp1 + 1..sp2], &line[sp2 + 1..]);
    let method = Method::from_token(method).ok_or(ParseError::StartLine("invalid method"))?;
    if uri.is_empty() || memchr::memchr(b'\t', uri.as_bytes()).is_some() {
        return Err(ParseError::StartLine("empty Request-URI"));
    }
    is_sip_version(version)?;
    let uri_start = (method.as_str().len() + 1) as u32;
    Ok(StartLine::Request {
        method,
        uri: uri_start..uri_start + uri.len() as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nSubject: a\r\n b\r\nCall-ID: x\r\nContent-Length: 2\r\n\r\nhi";

    fn within(part: &[u8], whole: &[u8]) -> bool {
        let (p, w) = (part.as_ptr() as usize, whole.as_ptr() as usize);
        p >= w && p + part.len() <= w + whole.len()
    }

    #[test]
    fn an_unfolded_head_is_read_from_the_received_bytes() {
        let raw = INVITE.replace("\r\n b", " b");
        let m = Message::parse(raw.into_bytes()).unwrap();
        assert!(within(&m.head, m.as_bytes()), "the head was copied");
        assert_eq!(m.header(HeaderName::Subject), Some("a b"));
        assert_eq!(m.body(), b"hi");
    }

    #[test]
    fn a_folded_head_gets_its_own_buffer_with_spaces() {
        let m = Message::parse(INVITE.as_bytes().to_vec()).unwrap();
        assert!(!within(&m.head, m.as_bytes()));
        assert_eq!(m.header(HeaderName::Subject), Some("a   b"));
        assert_eq!(m.request_uri_str(), Some("sip:bob@example.com"));
        assert_eq!(m.body(), b"hi");
    }
}
