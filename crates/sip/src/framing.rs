//! Cutting a byte stream (TCP, TLS) into SIP messages (RFC 3261 §18.3) and
//! recognising RFC 5626 keep-alives between them.
//!
//! On a stream, Content-Length is mandatory and is the only thing that tells
//! where a message ends. A framing error cannot be recovered from (there is no
//! way to find the next message), so the connection owner closes the
//! connection after one; it may first answer with
//! [`crate::validate::reject_unparsable`] when the error came with a legible
//! request.
//!
//! Keep-alives (RFC 5626 §4.4.1): a double CRLF between messages is a ping,
//! to be answered with a single CRLF; a single CRLF followed by anything but
//! another CRLF is a pong. A lone CRLF at the end of what has arrived so far
//! is ambiguous (a pong, or half a ping split across segments): on a flow
//! where we sent pings ([`StreamFramer::expect_pongs`]) it is a pong at once,
//! since the peer's pong must not wait for bytes that may never come; on any
//! other flow the framer waits for the next bytes.
//!
//! WebSocket (RFC 7118) needs no framer: each WebSocket message is one SIP
//! message and goes straight to [`crate::Message::parse_with`].

use bytes::{Bytes, BytesMut};

use crate::error::ParseError;
use crate::header::HeaderName;
use crate::message::Limits;
use crate::text::parse_u32;

/// What the framer found next in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// One complete message (start line to end of body), to be parsed.
    Message(Bytes),
    /// `CRLFCRLF`: answer with [`PONG`].
    Ping,
    /// `CRLF`: the answer to a ping we sent.
    Pong,
}

/// The keep-alive answer to a [`Frame::Ping`].
pub const PONG: &[u8] = b"\r\n";
/// A keep-alive ping.
pub const PING: &[u8] = b"\r\n\r\n";

/// Accumulates stream bytes and yields frames.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    /// Where the search for the end of the header section resumes, so that a
    /// message arriving in many small segments is scanned once.
    scanned: usize,
    expect_pongs: bool,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buf: BytesMut::with_capacity(4096),
            limits,
            scanned: 0,
            expect_pongs: false,
        }
    }

    /// Marks this flow as one where we send pings (we are the client of the
    /// flow), so that a lone CRLF is taken as a pong without waiting.
    pub fn expect_pongs(&mut self, yes: bool) {
        self.expect_pongs = yes;
    }

    /// Appends received bytes. Never fails: limits are enforced by
    /// [`StreamFramer::next_frame`], which sees the bytes in context.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ParseError> {
        if self.buf.starts_with(b"\r\n") {
            if self.buf.starts_with(PING) {
                let _ = self.buf.split_to(4);
                self.scanned = 0;
                return Ok(Some(Frame::Ping));
            }
            let maybe_half_ping =
                self.buf.len() == 2 || (self.buf.len() == 3 && self.buf[2] == b'\r');
            if maybe_half_ping && !(self.expect_pongs && self.buf.len() == 2) {
                return Ok(None);
            }
            let _ = self.buf.split_to(2);
            self.scanned = 0;
            return Ok(Some(Frame::Pong));
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let Some(head_len) = self.find_head_end()? else {
            return Ok(None);
        };
        let content_length = content_length(&self.buf[..head_len])?;
        let total = head_len + content_length;
        if total > self.limits.max_message_size {
            return Err(ParseError::TooLarge {
                size: total,
                limit: self.limits.max_message_size,
            });
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        self.scanned = 0;
        Ok(Some(Frame::Message(self.buf.split_to(total).freeze())))
    }

    /// Length of the header section including its closing empty line.
    fn find_head_end(&mut self) -> Result<Option<usize>, ParseError> {
        let from = self.scanned.saturating_sub(3);
        if let Some(i) = memchr::memmem::find(&self.buf[from..], b"\r\n\r\n") {
            return Ok(Some(from + i + 4));
        }
        self.scanned = self.buf.len();
        if self.buf.len() > self.limits.max_message_size {
            return Err(ParseError::TooLarge {
                size: self.buf.len(),
                limit: self.limits.max_message_size,
            });
        }
        // A line that never ends is refused as soon as it is too long.
        let last_nl = memchr::memrchr(b'\n', &self.buf).map_or(0, |i| i + 1);
        if self.buf.len() - last_nl > self.limits.max_line_length {
            return Err(ParseError::LineTooLong(self.limits.max_line_length));
        }
        Ok(None)
    }
}

/// The single Content-Length of a header section (mandatory on streams).
fn content_length(head: &[u8]) -> Result<usize, ParseError> {
    let head = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
    let mut found = None;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if HeaderName::from_wire(name.trim_end_matches([' ', '\t'])) == HeaderName::ContentLength {
            if found.is_some() {
                return Err(ParseError::DuplicateContentLength);
            }
            let v = value.trim_matches([' ', '\t']);
            found = Some(parse_u32(v).map_err(ParseError::ContentLength)? as usize);
        }
    }
    found.ok_or(ParseError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    const OPTIONS: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 4\r\n\r\nabcd";

    fn limits() -> Limits {
        Limits {
            max_message_size: 1024,
            max_headers: 32,
            max_line_length: 200,
        }
    }

    #[test]
    fn byte_by_byte_and_back_to_back() {
        let mut f = StreamFramer::new(limits());
        let mut stream = Vec::new();
        stream.extend_from_slice(PING);
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(PONG);
        stream.extend_from_slice(OPTIONS);
        let mut frames = Vec::new();
        for b in &stream {
            f.push(&[*b]);
            while let Some(fr) = f.next_frame().unwrap() {
                frames.push(fr);
            }
        }
        assert_eq!(frames.len(), 5);
        assert_eq!(frames[0], Frame::Ping);
        assert_eq!(frames[3], Frame::Pong);
        for i in [1, 2, 4] {
            let Frame::Message(m) = &frames[i] else {
                panic!()
            };
            assert_eq!(&m[..], OPTIONS);
            assert_eq!(Message::parse(m.clone()).unwrap().body(), b"abcd");
        }
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn lone_crlf_is_a_pong_only_where_pongs_are_expected() {
        let mut f = StreamFramer::new(limits());
        f.push(PONG);
        assert_eq!(f.next_frame(), Ok(None));
        f.expect_pongs(true);
        assert_eq!(f.next_frame(), Ok(Some(Frame::Pong)));
        assert_eq!(f.next_frame(), Ok(None));
    }

    #[test]
    fn all_at_once() {
        let mut f = StreamFramer::new(limits());
        let mut s = OPTIONS.to_vec();
        s.extend_from_slice(OPTIONS);
        s.extend_from_slice(&OPTIONS[..20]);
        f.push(&s);
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Message(_)))));
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Message(_)))));
        assert_eq!(f.next_frame(), Ok(None));
        f.push(&OPTIONS[20..]);
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Message(_)))));
    }

    #[test]
    fn content_length_is_mandatory_single_and_bounded() {
        let mut f = StreamFramer::new(limits());
        f.push(b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n");
        assert_eq!(f.next_frame(), Err(ParseError::MissingContentLength));
        let mut f = StreamFramer::new(limits());
        f.push(b"BYE sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 1\r\n\r\nx");
        assert_eq!(f.next_frame(), Err(ParseError::DuplicateContentLength));
        let mut f = StreamFramer::new(limits());
        f.push(b"BYE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n");
        assert!(matches!(f.next_frame(), Err(ParseError::ContentLength(_))));
        let mut f = StreamFramer::new(limits());
        f.push(b"BYE sip:a@b SIP/2.0\r\nContent-Length: 5000\r\n\r\n");
        assert!(matches!(f.next_frame(), Err(ParseError::TooLarge { .. })));
    }

    #[test]
    fn endless_line_and_endless_headers_are_refused_early() {
        let mut f = StreamFramer::new(limits());
        f.push(&[b'a'; 201]);
        assert_eq!(f.next_frame(), Err(ParseError::LineTooLong(200)));
        let mut f = StreamFramer::new(limits());
        for _ in 0..100 {
            f.push(b"X-Filler: 0123456789\r\n");
            if let Err(e) = f.next_frame() {
                assert!(matches!(e, ParseError::TooLarge { .. }));
                return;
            }
        }
        panic!("never refused");
    }
}
