//! Why an SDP body was rejected.

use thiserror::Error;

/// A rejected SDP body. Every variant tied to a line carries its 1-based
/// number, so the B2BUA can answer `488 Not Acceptable Here` with a reason
/// phrase that tells the peer exactly what it sent wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// The body has no lines at all.
    #[error("SDP body is empty")]
    Empty,
    /// SDP text is UTF-8 (RFC 8866 §5); this line holds an invalid sequence.
    #[error("line {line}: SDP is not valid UTF-8")]
    NotUtf8 { line: usize },
    /// More lines than [`MAX_LINES`](super::MAX_LINES).
    #[error("SDP has more than {max} lines")]
    TooManyLines { max: usize },
    /// More `m=` sections than [`MAX_MEDIA`](super::MAX_MEDIA).
    #[error("line {line}: more than {max} media sections")]
    TooManyMedia { line: usize, max: usize },
    /// The line is not `<letter>=<value>` with a lowercase ASCII letter.
    #[error("line {line}: expected `<type>=<value>` with a lowercase type letter")]
    NotALine { line: usize },
    /// A line that may appear once per section appeared again.
    #[error("line {line}: duplicate {kind}= line")]
    Duplicate { line: usize, kind: char },
    /// A session-only line (`v= o= s= u= e= p= t= r= z=`) after the first `m=`.
    #[error("line {line}: {kind}= line is not allowed in a media section")]
    SessionLineInMedia { line: usize, kind: char },
    /// The body has no `o=` line.
    #[error("SDP has no o= line")]
    MissingOrigin,
    /// The line is recognised but its value is malformed.
    #[error("line {line}: {problem}")]
    Invalid { line: usize, problem: &'static str },
}

impl SdpError {
    /// The 1-based line number the error is about, when there is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            SdpError::Empty | SdpError::TooManyLines { .. } | SdpError::MissingOrigin => None,
            SdpError::NotUtf8 { line }
            | SdpError::TooManyMedia { line, .. }
            | SdpError::NotALine { line }
            | SdpError::Duplicate { line, .. }
            | SdpError::SessionLineInMedia { line, .. }
            | SdpError::Invalid { line, .. } => Some(*line),
        }
    }
}
