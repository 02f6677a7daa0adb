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
use crate::header::{HeaderName, is_valid_name};
use crate::headers::{CSeq, Contact, NameAddr, Via};
use crate::text::{CommaSplit, parse_u32};
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

/// A SIP method. Unknown methods are kept by name (RFC 4475 §3.1.1.3).
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
    /// The start line and headers, validated UTF-8, folding replaced by spaces.
    head: Box<str>,
    start: StartLine,
    headers: Vec<HeaderEntry>,
    body: Range<usize>,
}

fn span(r: &Range<u32>) -> Range<usize> {
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
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        let skip = raw
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .unwrap_or(raw.len());
        let bytes = &raw[..];

        // Find the end of the header section: the first empty line.
        let mut pos = skip;
        let mut head_end = None;
        let mut body_start = 0;
        let mut lines = 0usize;
        while pos < bytes.len() {
            let nl = match memchr::memchr(b'\n', &bytes[pos..]) {
                Some(i) => pos + i,
                None => break,
            };
            let mut line_end = nl;
            if line_end > pos && bytes[line_end - 1] == b'\r' {
                line_end -= 1;
            }
            if line_end - pos > limits.max_line_length {
                return Err(ParseError::LineTooLong(limits.max_line_length));
            }
            if line_end == pos {
                head_end = Some(pos);
                body_start = nl + 1;
                break;
            }
            lines += 1;
            if lines > limits.max_headers.saturating_add(1) * 4 {
                // Bounds the work on pathological folding; the real header
                // count is checked below.
                return Err(ParseError::TooManyHeaders(limits.max_headers));
            }
            pos = nl + 1;
        }
        if head_end.is_none() && pos == bytes.len() && bytes.ends_with(b"\n") && pos > skip {
            // The header section runs to the end of the datagram without the
            // empty line (RFC 4475's baddn.dat is such a message): no body.
            head_end = Some(bytes.len());
            body_start = bytes.len();
        }
        let head_end = head_end.ok_or_else(|| {
            if bytes.len() - skip > limits.max_line_length && memchr::memchr(b'\n', &bytes[skip..]).is_none() {
                ParseError::LineTooLong(limits.max_line_length)
            } else {
                ParseError::Incomplete
            }
        })?;
        let head_bytes = &bytes[skip..head_end];
        let head = std::str::from_utf8(head_bytes).map_err(|_| ParseError::NotUtf8)?;
        let mut head: String = head.to_owned();

        // Index the start line and the header lines. Offsets are into `head`.
        let mut headers: Vec<HeaderEntry> = Vec::with_capacity(16);
        let hb = head.as_bytes();
        let first_nl = memchr::memchr(b'\n', hb).unwrap_or(hb.len());
        let first_end = if first_nl > 0 && hb.get(first_nl - 1) == Some(&b'\r') {
            first_nl - 1
        } else {
            first_nl
        };
        let start = parse_start_line(&head[..first_end])?;
        let mut folded = false;
        let mut content_length: Option<usize> = None;
        let mut p = (first_nl + 1).min(hb.len());
        while p < hb.len() {
            let nl = memchr::memchr(b'\n', &hb[p..]).map_or(hb.len(), |i| p + i);
            let mut end = nl;
            if end > p && hb[end - 1] == b'\r' {
                end -= 1;
            }
            let line = &hb[p..end];
            if line[0] == b' ' || line[0] == b'\t' {
                // Continuation of the previous header (RFC 3261 §7.3.1).
                let last = headers.last_mut().ok_or(ParseError::StartLine(
                    "continuation line before the first header",
                ))?;
                folded = true;
                let trimmed_end = rtrim(hb, p, end);
                if trimmed_end > p {
                    if last.value.start == last.value.end {
                        // The value starts on the continuation line.
                        last.value.start = ltrim(hb, p, trimmed_end) as u32;
                    }
                    last.value.end = trimmed_end as u32;
                }
            } else {
                let colon = memchr::memchr(b':', line)
                    .map(|i| p + i)
                    .ok_or(ParseError::HeaderWithoutColon)?;
                let name_end = rtrim(hb, p, colon);
                let name = &head[p..name_end];
                if !is_valid_name(name) {
                    return Err(ParseError::HeaderName);
                }
                let kind = HeaderName::from_wire(name);
                let vstart = ltrim(hb, colon + 1, end);
                let vend = rtrim(hb, vstart, end);
                headers.push(HeaderEntry {
                    name: kind,
                    name_span: p as u32..name_end as u32,
                    value: vstart as u32..vend as u32,
                });
                if headers.len() > limits.max_headers {
                    return Err(ParseError::TooManyHeaders(limits.max_headers));
                }
            }
            p = nl + 1;
        }
        if folded {
            // Turn the CR/LF of folded lines into spaces: same length, so every
            // offset stays valid, and readers never see line breaks.
            let mut v = std::mem::take(&mut head).into_bytes();
            for h in &headers {
                for b in &mut v[span(&h.value)] {
                    if *b == b'\r' || *b == b'\n' {
                        *b = b' ';
                    }
                }
            }
            // Only ASCII bytes were replaced by ASCII bytes.
            head = String::from_utf8(v).map_err(|_| ParseError::NotUtf8)?;
        }
        for h in headers.iter().filter(|h| h.name == HeaderName::ContentLength) {
            if content_length.is_some() {
                return Err(ParseError::DuplicateContentLength);
            }
            let v = &head[span(&h.value)];
            let n = parse_u32(v).map_err(ParseError::ContentLength)?;
            content_length = Some(n as usize);
        }
        let available = bytes.len() - body_start;
        let body = match content_length {
            Some(n) if n > available => {
                return Err(ParseError::BodyTooShort {
                    declared: n,
                    actual: available,
                });
            }
            // RFC 3261 §18.3: octets past Content-Length are discarded.
            Some(n) => body_start..body_start + n,
            None => body_start..bytes.len(),
        };
        // Re-base header offsets from `head` (which started at `skip`) is not
        // needed: all header reads go through `head`.
        Ok(Message {
            raw,
            head: head.into_boxed_str(),
            start,
            headers,
            body,
        })
    }

    /// The message as received.
    pub fn as_bytes(&self) -> &Bytes {
        &self.raw
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
            StartLine::Request { uri, .. } => Some(&self.head[span(uri)]),
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
            StartLine::Response { reason, .. } => Some(&self.head[span(reason)]),
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
            name: &self.head[span(&h.name_span)],
            value: &self.head[span(&h.value)],
        })
    }

    /// Values of every line of a known header, in order.
    pub fn header_lines(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| &self.head[span(&h.value)])
    }

    /// The value of the first line of a known header.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.header_lines(name).next()
    }

    /// The value of the only line of a header that must appear at most once.
    pub fn single(&self, name: HeaderName) -> Result<Option<&str>, ParseError> {
        let mut it = self.header_lines(name);
        let first = it.next();
        if it.next().is_some() {
            return Err(ParseError::DuplicateHeader(name));
        }
        Ok(first)
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
                        || self.head[span(&h.name_span)].eq_ignore_ascii_case(name))
            })
            .map(|h| &self.head[span(&h.value)])
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
            StartLine::Request { method, uri } => format!("{method} {}", &self.head[span(uri)]),
            StartLine::Response { code, reason } => format!("{code} {}", &self.head[span(reason)]),
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
        && s[..4].eq_ignore_ascii_case("SIP/")
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
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case("SIP/") {
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
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("");
    let uri = parts.next().ok_or(ParseError::StartLine("no Request-URI"))?;
    let version = parts.next().ok_or(ParseError::StartLine("no SIP version"))?;
    if parts.next().is_some() {
        return Err(ParseError::StartLine("extra white space in the request line"));
    }
    let method = Method::from_token(method).ok_or(ParseError::StartLine("invalid method"))?;
    if uri.is_empty() || uri.contains('\t') {
        return Err(ParseError::StartLine("empty Request-URI"));
    }
    is_sip_version(version)?;
    let uri_start = (method.as_str().len() + 1) as u32;
    Ok(StartLine::Request {
        method,
        uri: uri_start..uri_start + uri.len() as u32,
    })
}
