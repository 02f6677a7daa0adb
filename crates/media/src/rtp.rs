//! RTP data packets (RFC 3550 §5.1), parsed in place.
//!
//! A relay reads the header, keeps the payload where it is and forwards the
//! datagram unchanged, so [`RtpPacket`] only borrows the buffer. Writing goes
//! through [`RtpHeader::write`] into a caller buffer, with no allocation.

use crate::ParseError;

/// The fixed header is 12 bytes.
pub const HEADER_LEN: usize = 12;

/// A parsed RTP packet, borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    /// The contributing sources, 4 bytes each (`csrc_count` of them).
    csrc: &'a [u8],
    /// The header extension: its profile-defined 16 bits and its words.
    pub extension: Option<(u16, &'a [u8])>,
    /// The payload, padding removed.
    pub payload: &'a [u8],
    /// Padding bytes at the end (the last byte counts them).
    pub padding: u8,
}

/// The fields of the fixed header a relay and a monitor use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// True when a datagram looks like RTCP rather than RTP (RFC 5761 §4):
/// RTCP packet types 200–204 fall where RTP's marker+payload type would be
/// 72–76, which no audio profile assigns.
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (192..=223).contains(&datagram[1])
}

impl<'a> RtpPacket<'a> {
    /// Parses `datagram`; never panics, whatever its bytes.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, ParseError> {
        if datagram.len() < HEADER_LEN {
            return Err(ParseError::TooShort {
                len: datagram.len(),
                needed: HEADER_LEN,
            });
        }
        let b0 = datagram[0];
        let version = b0 >> 6;
        if version != 2 {
            return Err(ParseError::Version(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = usize::from(b0 & 0x0f);
        let header = RtpHeader {
            marker: datagram[1] & 0x80 != 0,
            payload_type: datagram[1] & 0x7f,
            sequence: u16::from_be_bytes([datagram[2], datagram[3]]),
            timestamp: u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]),
            ssrc: u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]),
        };
        let mut at = HEADER_LEN + 4 * csrc_count;
        if datagram.len() < at {
            return Err(ParseError::TooShort {
                len: datagram.len(),
                needed: at,
            });
        }
        let csrc = &datagram[HEADER_LEN..at];
        let extension = if has_extension {
            let Some(ext) = datagram.get(at..at + 4) else {
                return Err(ParseError::Extension);
            };
            let profile = u16::from_be_bytes([ext[0], ext[1]]);
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            let start = at + 4;
            let end = start + 4 * words;
            let Some(body) = datagram.get(start..end) else {
                return Err(ParseError::Extension);
            };
            at = end;
            Some((profile, body))
        } else {
            None
        };
        let mut end = datagram.len();
        let mut padding = 0;
        if has_padding {
            // RFC 3550 §5.1: the last octet counts the padding, itself
            // included, so zero is invalid.
            let count = datagram[end - 1];
            let available = end - at;
            if count == 0 || usize::from(count) > available {
                return Err(ParseError::Padding {
                    padding: usize::from(count),
                    available,
                });
            }
            padding = count;
            end -= usize::from(count);
        }
        Ok(RtpPacket {
            header,
            csrc,
            extension,
            payload: &datagram[at..end],
            padding,
        })
    }

    /// The contributing sources.
    pub fn csrcs(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.csrc
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

impl RtpHeader {
    /// Writes a 12-byte header (no CSRCs, no extension, no padding) and
    /// `payload` into `out`; returns the length written, or `None` when
    /// `out` is too small.
    pub fn write(&self, payload: &[u8], out: &mut [u8]) -> Option<usize> {
        let len = HEADER_LEN + payload.len();
        let out = out.get_mut(..len)?;
        out[0] = 0x80;
        out[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7f);
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        out[HEADER_LEN..].copy_from_slice(payload);
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 0xfffe,
            timestamp: 0xdead_beef,
            ssrc: 0x0102_0304,
        };
        let mut buf = [0u8; 64];
        let n = h.write(&[1, 2, 3], &mut buf).unwrap();
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, &[1, 2, 3]);
        assert!(!is_rtcp(&buf[..n]));
        assert!(h.write(&[0; 60], &mut buf).is_none());
    }

    #[test]
    fn csrc_extension_and_padding() {
        let mut d = vec![0xb1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        d.extend_from_slice(&[0, 0, 0, 9]); // one CSRC
        d.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension, 1 word
        d.extend_from_slice(&[0xaa, 0xbb]); // payload
        d.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let p = RtpPacket::parse(&d).unwrap();
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![9]);
        assert_eq!(p.extension, Some((0xbede, &[1u8, 2, 3, 4][..])));
        assert_eq!(p.payload, &[0xaa, 0xbb]);
        assert_eq!(p.padding, 3);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(
            RtpPacket::parse(&[0x80; 11]),
            Err(ParseError::TooShort {
                len: 11,
                needed: 12
            })
        );
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(ParseError::Version(1)));
        // 15 CSRCs declared, none present.
        assert!(matches!(
            RtpPacket::parse(&[0x8f; 12]),
            Err(ParseError::TooShort { needed: 72, .. })
        ));
        // Extension header missing.
        let mut d = [0u8; 12];
        d[0] = 0x90;
        assert_eq!(RtpPacket::parse(&d), Err(ParseError::Extension));
        // Padding of zero, and padding longer than the packet body.
        let mut d = [0u8; 13];
        d[0] = 0xa0;
        assert!(matches!(
            RtpPacket::parse(&d),
            Err(ParseError::Padding { .. })
        ));
        d[12] = 2;
        assert!(matches!(
            RtpPacket::parse(&d),
            Err(ParseError::Padding { .. })
        ));
    }

    #[test]
    fn rtcp_demultiplexing() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(is_rtcp(&[0x81, 201, 0, 7]));
        assert!(!is_rtcp(&[0x80, 0]));
        assert!(!is_rtcp(&[0x80, 0x80 | 101]));
    }
}
