//! Property tests: codec round trips, sequence arithmetic at the 16-bit
//! wrap, and parsers that never panic.

use media::g711::Law;
use media::rtcp;
use media::rtp::{RtpHeader, RtpPacket};
use media::stream::{ReceiveStats, Verdict};
use proptest::prelude::*;

proptest! {
    /// decode(encode(x)) is within one quantisation step of x: the step
    /// grows with the segment, so the bound is relative (1/16) plus the
    /// smallest step, and covers the clip at full scale.
    #[test]
    fn g711_encode_decode_stays_within_a_step(x in any::<i16>()) {
        for law in [Law::Pcmu, Law::Pcma] {
            let y = law.decode(law.encode(x));
            let err = (i32::from(x) - i32::from(y)).abs();
            prop_assert!(err <= i32::from(x).abs() / 16 + 16, "{law:?} {x} -> {y}");
            // Sign is kept (zero aside).
            prop_assert!(x.signum() * y.signum() >= 0, "{law:?} {x} -> {y}");
        }
    }

    /// A second pass loses nothing: what was decoded encodes and decodes
    /// to the same sample. (Compared as samples, not codes: µ-law has two
    /// codes for zero, 0xFF and 0x7F, and both decode to 0.)
    #[test]
    fn g711_second_pass_is_lossless(x in any::<i16>()) {
        for law in [Law::Pcmu, Law::Pcma] {
            let y = law.decode(law.encode(x));
            prop_assert_eq!(law.decode(law.encode(y)), y);
        }
    }

    /// Every code but µ-law's negative zero survives decode → encode.
    #[test]
    fn g711_codes_survive_a_round_trip(code in any::<u8>()) {
        prop_assert_eq!(Law::Pcma.encode(Law::Pcma.decode(code)), code);
        if code != 0x7f {
            prop_assert_eq!(Law::Pcmu.encode(Law::Pcmu.decode(code)), code);
        }
    }

    /// A stream starting anywhere (so across the wrap for many starts) with
    /// some packets dropped: the extended sequence climbs by exactly the
    /// count sent, and lost equals the dropped count.
    #[test]
    fn sequence_tracking_across_the_wrap(
        start in any::<u16>(),
        len in 3usize..2000,
        drops in proptest::collection::btree_set(2usize..2000, 0..50),
    ) {
        let mut s = ReceiveStats::new(8000);
        let mut dropped = 0u64;
        for i in 0..len {
            // Keep the last packet so loss at the tail is countable.
            if drops.contains(&i) && i + 1 < len {
                dropped += 1;
                continue;
            }
            let seq = start.wrapping_add(i as u16);
            let v = s.on_packet(seq, (i as u32).wrapping_mul(160), i as u64 * 20_000_000);
            prop_assert!(matches!(v, Verdict::InOrder | Verdict::Probation), "{i}: {v:?}");
        }
        // The first packet is probation (RFC 3550 A.1): the second starts
        // the count (`init_seq`: base = start + 1, cycles 0), so a stream
        // that wraps between the two (start = 65535) counts from 0.
        let ext_expected = u64::from(start.wrapping_add(1)) + len as u64 - 2;
        prop_assert_eq!(s.extended_max(), ext_expected);
        prop_assert_eq!(s.expected(), len as u64 - 1);
        prop_assert_eq!(s.lost(), dropped);
        prop_assert_eq!(s.packets(), len as u64 - dropped);
    }

    /// Every packet delivered twice and pairs swapped: duplicates and
    /// reorders are counted, nothing is lost, even across the wrap.
    #[test]
    fn duplicates_and_swaps_across_the_wrap(start in any::<u16>(), len in 4u16..400) {
        let mut s = ReceiveStats::new(8000);
        let mut order: Vec<u16> = (0..len).collect();
        // Swap pairs after the probation packets.
        for pair in order[2..].chunks_exact_mut(2) {
            pair.swap(0, 1);
        }
        for i in &order {
            let seq = start.wrapping_add(*i);
            s.on_packet(seq, 0, 0);
            s.on_packet(seq, 0, 0);
        }
        prop_assert_eq!(s.lost(), 0);
        prop_assert_eq!(s.duplicates(), u64::from(len) - 1);
        prop_assert_eq!(s.reordered(), u64::from((len - 2) / 2));
    }

    #[test]
    fn rtp_header_round_trips(
        marker in any::<bool>(),
        pt in 0u8..128,
        seq in any::<u16>(),
        ts in any::<u32>(),
        ssrc in any::<u32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let h = RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc };
        let mut buf = [0u8; 400];
        let n = h.write(&payload, &mut buf).unwrap();
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        prop_assert_eq!(p.header, h);
        prop_assert_eq!(p.payload, &payload[..]);
    }

    /// Arbitrary bytes never panic either parser.
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = RtpPacket::parse(&bytes);
        for p in rtcp::packets(&bytes) {
            if let Ok(rtcp::RtcpPacket::SenderReport { blocks, .. } | rtcp::RtcpPacket::ReceiverReport { blocks, .. }) = p {
                let _ = blocks.count();
            }
        }
        let _ = media::wav::Wav::parse(&bytes);
        let _ = media::dtmf::TelephoneEvent::parse(&bytes);
    }
}
