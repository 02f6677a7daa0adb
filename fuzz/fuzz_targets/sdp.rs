//! SDP parser and rewriters on arbitrary bytes: never panic, and the normal
//! form is stable (serialize, reparse, serialize gives the same bytes and the
//! same model).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use sip::sdp::{Direction, SessionDescription};

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = SessionDescription::parse(data) else {
        return;
    };
    let first = sdp.to_bytes();
    let again = match SessionDescription::parse(&first) {
        Ok(again) => again,
        Err(error) => panic!("serialized SDP does not reparse: {error}"),
    };
    assert_eq!(first, again.to_bytes(), "serialization is not idempotent");
    assert_eq!(sdp, again, "reparse gives a different model");

    // Accessors.
    let _ = sdp.is_hold();
    let _ = sdp.direction();
    for media in &sdp.media {
        let _ = sdp.media_connection(media).map(|c| c.ip());
        let _ = sdp.media_direction(media);
        let _ = sdp.media_is_hold(media);
        let _ = media.codecs();
        if let Some(pt) = media.telephone_event_pt() {
            let _ = media.fmtp(pt);
        }
        let _ = (
            media.ptime(),
            media.max_ptime(),
            media.rtcp(),
            media.rtcp_mux(),
        );
        let _ = media.attribute("rtpmap");
    }

    // Rewriters: the result must still be valid and stable.
    let mut rewritten = sdp;
    let relay = if data.len() % 2 == 0 {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))
    } else {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10))
    };
    rewritten.set_connection_address(relay);
    rewritten.set_origin_address(relay);
    rewritten.bump_version();
    rewritten.set_direction(Direction::SendOnly);
    let keep: Vec<u8> = data.iter().take(4).map(|b| b % 128).collect();
    for (index, media) in rewritten.media.iter_mut().enumerate() {
        media.set_port(40000u16.wrapping_add(index as u16 * 2));
        media.set_rtcp(40001u16.wrapping_add(index as u16 * 2), Some(relay));
        media.retain_payload_types(&keep);
    }
    assert!(rewritten.media.is_empty() || rewritten.is_hold());
    let bytes = rewritten.to_bytes();
    match SessionDescription::parse(&bytes) {
        Ok(reparsed) => {
            assert_eq!(bytes, reparsed.to_bytes(), "rewritten SDP is not stable");
            assert_eq!(rewritten, reparsed, "rewritten SDP reparses differently");
        }
        Err(error) => panic!("rewritten SDP does not reparse: {error}"),
    }
});
