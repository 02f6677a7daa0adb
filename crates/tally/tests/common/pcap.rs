//! The audio SIPp plays as a caller (`play_pcap_audio`), written by the
//! test itself with the `media` crate: a libpcap file of RTP in
//! Ethernet/IPv4/UDP frames, one 20 ms PCMU packet of silence after
//! another, with RFC 4733 telephone-events (payload type 101, 100 ms,
//! End sent three times) in place of the audio while a key is pressed.
//! SIPp replays each packet's UDP payload at its capture time to the
//! PBX's media address; the addresses in the frames do not matter.

use std::path::Path;

use media::dtmf::{EventSender, key_event};
use media::rtp::RtpHeader;

/// 20 ms at 8 kHz.
const TICKS: u16 = 160;
const SSRC: u32 = 0x5a5a_0101;

/// Writes `path`: `total_ms` of RTP with `keys` pressed (each at its
/// millisecond, a multiple of 20).
pub fn digits(path: &Path, keys: &[(u32, char)], total_ms: u32) {
    let mut packets: Vec<(u64, Vec<u8>)> = Vec::new();
    let (mut seq, mut ts) = (1u16, 0u32);
    let mut at_ms = 0u32;
    let mut buf = [0u8; 256];
    while at_ms < total_ms {
        if let Some((_, key)) = keys.iter().find(|(t, _)| *t == at_ms) {
            // The key's event packets replace the audio for its duration,
            // all with the RTP timestamp of its start.
            let event = key_event(*key).expect("a DTMF key");
            let start = ts;
            for (marker, payload) in EventSender::new(event, 10, 800, TICKS) {
                let h = RtpHeader {
                    marker,
                    payload_type: 101,
                    sequence: seq,
                    timestamp: start,
                    ssrc: SSRC,
                };
                let n = h.write(&payload, &mut buf).expect("fits");
                packets.push((u64::from(at_ms) * 1000, buf[..n].to_vec()));
                seq = seq.wrapping_add(1);
                at_ms += 20;
                ts = ts.wrapping_add(u32::from(TICKS));
            }
            continue;
        }
        let h = RtpHeader {
            marker: at_ms == 0,
            payload_type: 0,
            sequence: seq,
            timestamp: ts,
            ssrc: SSRC,
        };
        // 0xFF: PCMU silence.
        let n = h.write(&[0xFF; TICKS as usize], &mut buf).expect("fits");
        packets.push((u64::from(at_ms) * 1000, buf[..n].to_vec()));
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(u32::from(TICKS));
        at_ms += 20;
    }
    std::fs::write(path, pcap(&packets)).expect("write the pcap");
}

/// A libpcap file (microseconds, Ethernet) of UDP datagrams from
/// 10.0.0.1:4000 to 10.0.0.2:4002, at their times (µs).
fn pcap(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (at_us, payload) in packets {
        let udp_len = 8 + payload.len();
        let ip_len = 20 + udp_len;
        let mut frame = Vec::with_capacity(14 + ip_len);
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00]);
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&4000u16.to_be_bytes());
        frame.extend_from_slice(&4002u16.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&0u16.to_be_bytes());
        frame.extend_from_slice(payload);
        out.extend_from_slice(&((at_us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((at_us % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

/// The IPv4 header checksum (RFC 791).
fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
