//! Why a datagram is not a valid RTP or RTCP packet.

/// What was wrong with a packet; each variant names the peer's mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("packet is {len} bytes, shorter than its {needed}-byte header")]
    TooShort { len: usize, needed: usize },
    #[error("version is {0}, only 2 is RTP/RTCP (RFC 3550 §5.1)")]
    Version(u8),
    #[error("padding length {padding} does not fit in {available} bytes")]
    Padding { padding: usize, available: usize },
    #[error("header extension runs past the end of the packet")]
    Extension,
    #[error("RTCP packet length {declared} words runs past the {available} bytes left")]
    RtcpLength { declared: usize, available: usize },
    #[error("RTCP packet type {pt} with {count} report blocks does not fit its length")]
    ReportBlocks { pt: u8, count: u8 },
    #[error("RTCP compound packet must start with SR or RR, found type {0}")]
    CompoundStart(u8),
    #[error("telephone-event payload is {0} bytes, must be 4")]
    TelephoneEvent(usize),
    #[error("not a PCM16 WAV file: {0}")]
    Wav(&'static str),
}
