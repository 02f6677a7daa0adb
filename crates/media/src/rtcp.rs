//! RTCP (RFC 3550 §6): sender and receiver reports with their report blocks.
//!
//! A datagram is a compound packet; [`packets`] walks it without copying and
//! yields each packet, SR and RR decoded, the rest (SDES, BYE, APP, RTPFB…)
//! as [`RtcpPacket::Other`] for the relay to pass on untouched. Writing goes
//! into caller buffers.

use crate::ParseError;

/// Packet types (RFC 3550 §12.1).
pub const SR: u8 = 200;
pub const RR: u8 = 201;

const BLOCK_LEN: usize = 24;
const SENDER_INFO_LEN: usize = 20;

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost; 24-bit signed on the wire (duplicates can
    /// make it negative), clamped to that range when written.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles << 16 | seq).
    pub highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP time, 0 when none.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// The sender information of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    pub ntp_timestamp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// One packet of a compound RTCP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        blocks: ReportBlocks<'a>,
    },
    ReceiverReport {
        ssrc: u32,
        blocks: ReportBlocks<'a>,
    },
    /// Any other type, its body (after the 4-byte header) untouched.
    Other {
        packet_type: u8,
        count: u8,
        body: &'a [u8],
    },
}

/// The report blocks of an SR or RR, decoded as they are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a>(&'a [u8]);

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;

    fn next(&mut self) -> Option<ReportBlock> {
        let (b, rest) = self.0.split_first_chunk::<BLOCK_LEN>()?;
        self.0 = rest;
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        // Sign-extend the 24-bit count.
        let lost = (i32::from_be_bytes([b[5], b[6], b[7], 0])) >> 8;
        Some(ReportBlock {
            ssrc: word(0),
            fraction_lost: b[4],
            cumulative_lost: lost,
            highest_sequence: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.len() / BLOCK_LEN;
        (n, Some(n))
    }
}

impl ExactSizeIterator for ReportBlocks<'_> {}

/// Walks a compound RTCP datagram. The first packet must be an SR or RR
/// (RFC 3550 §6.1); every length is checked before it is used.
pub fn packets(datagram: &[u8]) -> Packets<'_> {
    Packets {
        rest: datagram,
        first: true,
    }
}

/// The iterator [`packets`] returns; it stops after the first error.
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    rest: &'a [u8],
    first: bool,
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<RtcpPacket<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = self.parse_one();
        if result.is_err() {
            self.rest = &[];
        }
        Some(result)
    }
}

impl<'a> Packets<'a> {
    fn parse_one(&mut self) -> Result<RtcpPacket<'a>, ParseError> {
        let d = self.rest;
        if d.len() < 4 {
            return Err(ParseError::TooShort {
                len: d.len(),
                needed: 4,
            });
        }
        let version = d[0] >> 6;
        if version != 2 {
            return Err(ParseError::Version(version));
        }
        let count = d[0] & 0x1f;
        let packet_type = d[1];
        if self.first && packet_type != SR && packet_type != RR {
            return Err(ParseError::CompoundStart(packet_type));
        }
        self.first = false;
        let words = usize::from(u16::from_be_bytes([d[2], d[3]]));
        let len = 4 * (words + 1);
        if len > d.len() {
            return Err(ParseError::RtcpLength {
                declared: words,
                available: d.len(),
            });
        }
        let mut body = &d[4..len];
        self.rest = &d[len..];
        if d[0] & 0x20 != 0 {
            let pad = usize::from(body.last().copied().unwrap_or(0));
            if pad == 0 || pad > body.len() {
                return Err(ParseError::Padding {
                    padding: pad,
                    available: body.len(),
                });
            }
            body = &body[..body.len() - pad];
        }
        let word = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let blocks_len = usize::from(count) * BLOCK_LEN;
        match packet_type {
            SR => {
                if body.len() < 4 + SENDER_INFO_LEN + blocks_len {
                    return Err(ParseError::ReportBlocks {
                        pt: packet_type,
                        count,
                    });
                }
                let info = SenderInfo {
                    ntp_timestamp: (u64::from(word(body, 4)) << 32) | u64::from(word(body, 8)),
                    rtp_timestamp: word(body, 12),
                    packet_count: word(body, 16),
                    octet_count: word(body, 20),
                };
                let start = 4 + SENDER_INFO_LEN;
                Ok(RtcpPacket::SenderReport {
                    ssrc: word(body, 0),
                    info,
                    blocks: ReportBlocks(&body[start..start + blocks_len]),
                })
            }
            RR => {
                if body.len() < 4 + blocks_len {
                    return Err(ParseError::ReportBlocks {
                        pt: packet_type,
                        count,
                    });
                }
                Ok(RtcpPacket::ReceiverReport {
                    ssrc: word(body, 0),
                    blocks: ReportBlocks(&body[4..4 + blocks_len]),
                })
            }
            _ => Ok(RtcpPacket::Other {
                packet_type,
                count,
                body,
            }),
        }
    }
}

/// Writes an SR with `blocks` (at most 31) into `out`; returns its length,
/// or `None` when `out` is too small or there are too many blocks.
pub fn write_sender_report(
    ssrc: u32,
    info: &SenderInfo,
    blocks: &[ReportBlock],
    out: &mut [u8],
) -> Option<usize> {
    let len = 8 + SENDER_INFO_LEN + blocks.len() * BLOCK_LEN;
    let at = write_head(SR, blocks.len(), len, ssrc, out)?;
    let out = &mut out[at..len];
    out[0..8].copy_from_slice(&info.ntp_timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
    out[12..16].copy_from_slice(&info.packet_count.to_be_bytes());
    out[16..20].copy_from_slice(&info.octet_count.to_be_bytes());
    write_blocks(blocks, &mut out[SENDER_INFO_LEN..]);
    Some(len)
}

/// Writes an RR with `blocks` (at most 31) into `out`; returns its length.
pub fn write_receiver_report(ssrc: u32, blocks: &[ReportBlock], out: &mut [u8]) -> Option<usize> {
    let len = 8 + blocks.len() * BLOCK_LEN;
    let at = write_head(RR, blocks.len(), len, ssrc, out)?;
    write_blocks(blocks, &mut out[at..len]);
    Some(len)
}

fn write_head(pt: u8, count: usize, len: usize, ssrc: u32, out: &mut [u8]) -> Option<usize> {
    let count = u8::try_from(count).ok().filter(|c| *c < 32)?;
    if out.len() < len {
        return None;
    }
    let words = u16::try_from(len / 4 - 1).ok()?;
    out[0] = 0x80 | count;
    out[1] = pt;
    out[2..4].copy_from_slice(&words.to_be_bytes());
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    Some(8)
}

fn write_blocks(blocks: &[ReportBlock], out: &mut [u8]) {
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(BLOCK_LEN)) {
        let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff);
        o[0..4].copy_from_slice(&b.ssrc.to_be_bytes());
        o[4] = b.fraction_lost;
        o[5..8].copy_from_slice(&lost.to_be_bytes()[1..]);
        o[8..12].copy_from_slice(&b.highest_sequence.to_be_bytes());
        o[12..16].copy_from_slice(&b.jitter.to_be_bytes());
        o[16..20].copy_from_slice(&b.last_sr.to_be_bytes());
        o[20..24].copy_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u32, lost: i32) -> ReportBlock {
        ReportBlock {
            ssrc: n,
            fraction_lost: 25,
            cumulative_lost: lost,
            highest_sequence: 0x0001_0005,
            jitter: 80,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        }
    }

    #[test]
    fn sender_report_round_trips_in_a_compound() {
        let info = SenderInfo {
            ntp_timestamp: 0xe6a0_0000_8000_0000,
            rtp_timestamp: 160,
            packet_count: 50,
            octet_count: 8000,
        };
        let mut buf = [0u8; 256];
        let n = write_sender_report(7, &info, &[block(1, 3), block(2, -2)], &mut buf).unwrap();
        assert_eq!(n, 8 + 20 + 48);
        // Append an SDES-like packet: 1 word of body.
        buf[n..n + 8].copy_from_slice(&[0x81, 202, 0, 1, 0, 0, 0, 7]);
        let all: Vec<_> = packets(&buf[..n + 8]).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 2);
        match all[0] {
            RtcpPacket::SenderReport {
                ssrc,
                info: i,
                blocks,
            } => {
                assert_eq!(ssrc, 7);
                assert_eq!(i, info);
                assert_eq!(blocks.collect::<Vec<_>>(), vec![block(1, 3), block(2, -2)]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            all[1],
            RtcpPacket::Other { packet_type: 202, count: 1, body } if body == [0, 0, 0, 7]
        ));
    }

    #[test]
    fn receiver_report_clamps_cumulative_loss() {
        let mut buf = [0u8; 64];
        let n = write_receiver_report(9, &[block(1, i32::MAX)], &mut buf).unwrap();
        let Some(Ok(RtcpPacket::ReceiverReport {
            ssrc: 9,
            mut blocks,
        })) = packets(&buf[..n]).next()
        else {
            panic!("not an RR");
        };
        assert_eq!(blocks.next().unwrap().cumulative_lost, 0x7f_ffff);
        assert!(write_receiver_report(9, &[block(1, 0); 32], &mut [0u8; 1024]).is_none());
        assert!(write_receiver_report(9, &[block(1, 0)], &mut [0u8; 31]).is_none());
    }

    #[test]
    fn rejects_malformed() {
        fn first(d: &[u8]) -> Result<RtcpPacket<'_>, ParseError> {
            packets(d).next().unwrap()
        }
        assert_eq!(
            first(&[0x80, 200]),
            Err(ParseError::TooShort { len: 2, needed: 4 })
        );
        assert_eq!(first(&[0x40, 200, 0, 0]), Err(ParseError::Version(1)));
        assert_eq!(
            first(&[0x80, 202, 0, 0]),
            Err(ParseError::CompoundStart(202))
        );
        assert!(matches!(
            first(&[0x80, 201, 0, 9, 0, 0, 0, 0]),
            Err(ParseError::RtcpLength { .. })
        ));
        // RR claiming two blocks in one word of body.
        assert!(matches!(
            first(&[0x82, 201, 0, 1, 0, 0, 0, 1]),
            Err(ParseError::ReportBlocks { pt: 201, count: 2 })
        ));
        // Padding bit with a zero count.
        assert!(matches!(
            first(&[0xa0, 201, 0, 1, 0, 0, 0, 0]),
            Err(ParseError::Padding { .. })
        ));
        // After an error the walk stops.
        let mut it = packets(&[0x80, 202, 0, 0, 0x80, 201, 0, 1, 0, 0, 0, 1]);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }
}
