//! RTP and RTCP parsers on arbitrary bytes: never panic; a packet that
//! parses writes back to a packet that parses to the same fields; report
//! blocks written back read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::rtcp::{self, RtcpPacket};
use media::rtp::{RtpPacket, is_rtcp};

fuzz_target!(|data: &[u8]| {
    let _ = is_rtcp(data);
    if let Ok(p) = RtpPacket::parse(data) {
        let _ = p.csrcs().count();
        let mut buf = vec![0u8; 12 + p.payload.len()];
        let n = p
            .header
            .write(p.payload, &mut buf)
            .expect("buffer sized for it");
        let again = RtpPacket::parse(&buf[..n]).expect("written RTP reparses");
        assert_eq!(again.header, p.header);
        assert_eq!(again.payload, p.payload);
        let _ = media::dtmf::TelephoneEvent::parse(p.payload);
    }
    let mut out = [0u8; 1024];
    for packet in rtcp::packets(data) {
        let Ok(packet) = packet else { break };
        let (n, blocks) = match packet {
            RtcpPacket::SenderReport { ssrc, info, blocks } => {
                let b: Vec<_> = blocks.collect();
                (rtcp::write_sender_report(ssrc, &info, &b, &mut out), b)
            }
            RtcpPacket::ReceiverReport { ssrc, blocks } => {
                let b: Vec<_> = blocks.collect();
                (rtcp::write_receiver_report(ssrc, &b, &mut out), b)
            }
            RtcpPacket::Other { .. } => continue,
        };
        let n = n.expect("at most 31 blocks fit 1024 bytes");
        let reread = match rtcp::packets(&out[..n]).next() {
            Some(Ok(
                RtcpPacket::SenderReport { blocks, .. } | RtcpPacket::ReceiverReport { blocks, .. },
            )) => blocks.collect::<Vec<_>>(),
            other => panic!("written report does not reparse: {other:?}"),
        };
        assert_eq!(reread, blocks);
    }
    let _ = media::wav::Wav::parse(data);
});
