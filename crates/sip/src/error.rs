//! Errors of the message layer. Each says what the peer did wrong, in words fit
//! for the reason phrase of a `400 Bad Request`.

use thiserror::Error;

use crate::header::HeaderName;

/// Why a header value (or a URI) could not be read as its type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    #[error("unterminated <")]
    UnterminatedAngle,
    #[error("invalid %-escape")]
    BadEscape,
    #[error("not a number")]
    NotANumber,
    #[error("number too large")]
    NumberTooLarge,
    #[error("empty value")]
    Empty,
    #[error("invalid host")]
    BadHost,
    #[error("invalid port")]
    BadPort,
    #[error("invalid URI: {0}")]
    BadUri(&'static str),
    #[error("{0}")]
    Unexpected(&'static str),
}

/// Why a datagram or framed stream message is not a SIP message we can use.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("message too large ({size} > {limit} bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("too many header fields (limit {0})")]
    TooManyHeaders(usize),
    #[error("header line too long (limit {0} bytes)")]
    LineTooLong(usize),
    #[error("message is not valid UTF-8 in its start line or headers")]
    NotUtf8,
    #[error("no empty line after the header fields")]
    Incomplete,
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    #[error("unsupported SIP version")]
    Version,
    #[error("malformed status code")]
    StatusCode,
    #[error("header line without a colon")]
    HeaderWithoutColon,
    #[error("CR without LF in the header section")]
    BareCr,
    #[error("invalid header field name")]
    HeaderName,
    #[error("invalid Content-Length: {0}")]
    ContentLength(ValueError),
    #[error("more than one Content-Length")]
    DuplicateContentLength,
    #[error("Content-Length {declared} larger than the body ({actual} bytes)")]
    BodyTooShort { declared: usize, actual: usize },
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    #[error("missing {0} header")]
    MissingHeader(HeaderName),
    #[error("more than one {0} header")]
    DuplicateHeader(HeaderName),
    #[error("invalid {0} header: {1}")]
    BadHeader(HeaderName, ValueError),
    #[error("invalid Request-URI: {0}")]
    BadRequestUri(ValueError),
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
}

impl ParseError {
    /// The status code a UAS answers a request with this defect with.
    pub fn status_code(&self) -> u16 {
        match self {
            ParseError::Version => 505,
            ParseError::TooLarge { .. } => 513,
            _ => 400,
        }
    }

    /// A reason phrase for the response: the error text, limited to printable
    /// ASCII so that it can never break the status line.
    pub fn reason_phrase(&self) -> String {
        let s: String = self
            .to_string()
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        let mut out = String::from("Bad Request (");
        if self.status_code() != 400 {
            out.clear();
            out.push_str(match self.status_code() {
                505 => "Version Not Supported (",
                _ => "Message Too Large (",
            });
        }
        out.push_str(&s);
        out.push(')');
        out
    }
}
