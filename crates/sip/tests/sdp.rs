//! `sip::sdp`: round trips of real-world bodies, accessors, rewriters and
//! precise rejection of malformed input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sip::sdp::{Attribute, Direction, MAX_LINES, MAX_MEDIA, SdpError, SessionDescription};

/// A Linphone/Zoiper-style audio offer: static PCMU/PCMA, RFC 4733 DTMF.
const LINPHONE_OFFER: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.168.1.20\r\n\
s=Talk\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 7078 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=rtcp:7079\r\n\
a=sendrecv\r\n";

/// An IPv6 offer with G.722 and an RFC 3605 rtcp address.
const IPV6_OFFER: &str = "v=0\r\n\
o=- 3781337429 3781337430 IN IP6 2001:db8::20\r\n\
s=-\r\n\
c=IN IP6 2001:db8::20\r\n\
b=AS:84\r\n\
t=0 0\r\n\
m=audio 5004 RTP/AVP 9 0 8 101\r\n\
b=TIAS:64000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=rtcp:5005 IN IP6 2001:db8::20\r\n";

/// A browser offer: BUNDLE, ICE, DTLS, Opus, RED, video with RTX, data channel.
const WEBRTC_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1 2\r\n\
a=extmap-allow-mixed\r\n\
a=msid-semantic: WMS stream\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\n\
a=candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0\r\n\
a=ice-ufrag:F7gI\r\n\
a=ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n\
a=ice-options:trickle\r\n\
a=fingerprint:sha-256 49:66:12:17:0D:1C:91:AE:57:4C:C6:36:DD:D5:97:D2:7D:62:C9:9A:7F:B9:A3:F6:D1:40:F5:0B:8C:2A:B3:23\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
a=sendrecv\r\n\
a=msid:stream track-a\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=rtcp-fb:111 transport-cc\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=fmtp:63 111/111\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n\
a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
c=IN IP4 0.0.0.0\r\n\
b=AS:2500\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:96 goog-remb\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:2\r\n\
a=sctp-port:5000\r\n\
a=max-message-size:262144\r\n";

/// A hold re-INVITE (RFC 3264 §8.4): same o= sess-id, version bumped, sendonly.
const HOLD_REINVITE: &str = "v=0\r\n\
o=alice 2890844526 2890844527 IN IP4 192.168.1.20\r\n\
s=Talk\r\n\
c=IN IP4 192.168.1.20\r\n\
t=0 0\r\n\
m=audio 7078 RTP/AVP 0 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=sendonly\r\n";

/// An RFC 2543 hold: c=0.0.0.0, no direction attribute. Also carries r=/z=,
/// e=/p=/u=/i=/k= and unknown lines (GB28181 y=/f=).
const LEGACY_HOLD: &str = "v=0\r\n\
o=bob 53655765 2353687638 IN IP4 10.0.0.2\r\n\
s=Phone Call\r\n\
i=A call\r\n\
u=http://example.com/call\r\n\
e=bob@example.com\r\n\
p=+1 555 0100\r\n\
c=IN IP4 0.0.0.0\r\n\
t=2873397496 2873404696\r\n\
r=7d 1h 0 25h\r\n\
z=2882844526 -1h 2898848070 0\r\n\
k=prompt\r\n\
m=audio 3456 RTP/AVP 18 4 3\r\n\
i=voice\r\n\
k=prompt\r\n\
a=ptime:22.5\r\n\
a=x-unknown\r\n\
y=0100000001\r\n\
f=v/////a/1/8/1\r\n";

fn parse(text: &str) -> SessionDescription {
    SessionDescription::parse(text.as_bytes()).expect("test SDP parses")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test IP")
}

fn parse_err(text: &str) -> SdpError {
    SessionDescription::parse(text.as_bytes()).expect_err("test SDP is rejected")
}

// ---- round trips -------------------------------------------------------------

#[test]
fn realistic_bodies_round_trip_byte_for_byte() {
    for text in [
        LINPHONE_OFFER,
        IPV6_OFFER,
        WEBRTC_OFFER,
        HOLD_REINVITE,
        LEGACY_HOLD,
    ] {
        let sdp = parse(text);
        assert_eq!(sdp.to_string(), text);
        assert_eq!(sdp.to_bytes(), text.as_bytes());
    }
}

#[test]
fn lf_only_input_is_accepted_and_written_with_crlf() {
    let lf = LINPHONE_OFFER.replace("\r\n", "\n");
    assert_eq!(parse(&lf).to_string(), LINPHONE_OFFER);
}

#[test]
fn missing_final_line_end_and_trailing_blank_lines_are_accepted() {
    let trimmed = LINPHONE_OFFER.trim_end();
    assert_eq!(parse(trimmed).to_string(), LINPHONE_OFFER);
    let padded = format!("{LINPHONE_OFFER}\r\n\r\n");
    assert_eq!(parse(&padded).to_string(), LINPHONE_OFFER);
}

#[test]
fn missing_s_and_t_are_repaired() {
    let sdp = parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n");
    assert_eq!(sdp.name, "-");
    assert_eq!(sdp.timings.len(), 1);
    assert_eq!(
        sdp.to_string(),
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    );
}

#[test]
fn out_of_order_lines_and_extra_spaces_are_normalised_stably() {
    let messy = "v=0\no=-  1 1 IN IP4 10.0.0.1\nt=0 0\na=tool:x\ns=-\nc=IN IP4 10.0.0.1\n\
                 m=audio  4000  RTP/AVP 0  8\na=sendrecv\nc=IN IP4 10.0.0.2\n";
    let once = parse(messy).to_string();
    assert_eq!(
        once,
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\na=tool:x\r\n\
         m=audio 4000 RTP/AVP 0 8\r\nc=IN IP4 10.0.0.2\r\na=sendrecv\r\n"
    );
    assert_eq!(parse(&once).to_string(), once);
}

#[test]
fn unknown_attributes_and_lines_keep_their_order() {
    let sdp = parse(WEBRTC_OFFER);
    let names: Vec<&str> = sdp.attributes.iter().map(Attribute::name).collect();
    assert_eq!(names, ["group", "extmap-allow-mixed", "msid-semantic"]);
    assert_eq!(
        sdp.attributes[2],
        Attribute::Other {
            name: "msid-semantic".into(),
            value: Some(" WMS stream".into())
        }
    );
    let legacy = parse(LEGACY_HOLD);
    let kinds: Vec<char> = legacy.media[0].other_lines.iter().map(|l| l.kind).collect();
    assert_eq!(kinds, ['y', 'f']);
    assert_eq!(legacy.timings[0].adjustments.len(), 2);
}

// ---- model -------------------------------------------------------------------

#[test]
fn session_level_fields() {
    let sdp = parse(LEGACY_HOLD);
    assert_eq!(sdp.origin.username, "bob");
    assert_eq!(sdp.origin.session_id, 53655765);
    assert_eq!(sdp.origin.session_version, 2353687638);
    assert_eq!(
        (sdp.origin.net_type.as_str(), sdp.origin.addr_type.as_str()),
        ("IN", "IP4")
    );
    assert_eq!(sdp.origin.address, "10.0.0.2");
    assert_eq!(sdp.name, "Phone Call");
    assert_eq!(sdp.information.as_deref(), Some("A call"));
    assert_eq!(sdp.uri.as_deref(), Some("http://example.com/call"));
    assert_eq!(sdp.emails, ["bob@example.com"]);
    assert_eq!(sdp.phones, ["+1 555 0100"]);
    assert_eq!(sdp.key.as_deref(), Some("prompt"));
    assert_eq!(
        (sdp.timings[0].start, sdp.timings[0].stop),
        (2873397496, 2873404696)
    );
    let ipv6 = parse(IPV6_OFFER);
    assert_eq!(ipv6.bandwidths[0].bw_type, "AS");
    assert_eq!(ipv6.bandwidths[0].bandwidth, 84);
}

#[test]
fn media_line_fields() {
    let sdp = parse(WEBRTC_OFFER);
    assert_eq!(sdp.media.len(), 3);
    let audio = &sdp.media[0];
    assert_eq!(audio.media, "audio");
    assert_eq!(audio.port, 9);
    assert_eq!(audio.port_count, None);
    assert_eq!(audio.proto, "UDP/TLS/RTP/SAVPF");
    assert_eq!(
        audio.formats,
        ["111", "63", "9", "0", "8", "13", "110", "126"]
    );
    let data = &sdp.media[2];
    assert_eq!(data.proto, "UDP/DTLS/SCTP");
    assert_eq!(data.formats, ["webrtc-datachannel"]);
    assert_eq!(data.payload_types().count(), 0);

    let layered = parse(
        "v=0\r\no=- 1 1 IN IP4 224.2.1.1\r\ns=-\r\nt=0 0\r\nm=video 49170/2 RTP/AVP 31\r\nc=IN IP4 224.2.1.1/127\r\n",
    );
    assert_eq!(layered.media[0].port, 49170);
    assert_eq!(layered.media[0].port_count, Some(2));
    assert_eq!(
        layered.to_string().lines().nth(4),
        Some("m=video 49170/2 RTP/AVP 31")
    );
    assert_eq!(
        layered
            .media_connection(&layered.media[0])
            .and_then(|c| c.ip()),
        Some(ip("224.2.1.1"))
    );
}

// ---- accessors ---------------------------------------------------------------

#[test]
fn effective_connection_prefers_media_level() {
    let sdp = parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 31\r\nc=IN IP4 10.0.0.9\r\n",
    );
    let audio = sdp.media_connection(&sdp.media[0]).and_then(|c| c.ip());
    let video = sdp.media_connection(&sdp.media[1]).and_then(|c| c.ip());
    assert_eq!(audio, Some(ip("10.0.0.1")));
    assert_eq!(video, Some(ip("10.0.0.9")));

    let none =
        parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
    assert!(none.media_connection(&none.media[0]).is_none());

    let host = parse("v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 pbx.example.com\r\nt=0 0\r\n");
    assert_eq!(host.connection.as_ref().and_then(|c| c.ip()), None);
}

#[test]
fn ipv6_connection() {
    let sdp = parse(IPV6_OFFER);
    let connection = sdp.media_connection(&sdp.media[0]).expect("c=");
    assert_eq!(connection.addr_type, "IP6");
    assert_eq!(connection.ip(), Some(ip("2001:db8::20")));
    let rtcp = sdp.media[0].rtcp().expect("a=rtcp");
    assert_eq!(rtcp.port, 5005);
    assert_eq!(
        rtcp.connection.as_ref().and_then(|c| c.ip()),
        Some(ip("2001:db8::20"))
    );
}

#[test]
fn direction_falls_back_to_session_then_sendrecv() {
    let sdp = parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\na=recvonly\r\n\
         m=audio 4000 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 0\r\na=inactive\r\n",
    );
    assert_eq!(sdp.direction(), Some(Direction::RecvOnly));
    assert_eq!(sdp.media[0].direction(), None);
    assert_eq!(sdp.media_direction(&sdp.media[0]), Direction::RecvOnly);
    assert_eq!(sdp.media_direction(&sdp.media[1]), Direction::Inactive);

    let plain =
        parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
    assert_eq!(plain.media_direction(&plain.media[0]), Direction::SendRecv);

    let webrtc = parse(WEBRTC_OFFER);
    assert_eq!(webrtc.media[1].direction(), Some(Direction::RecvOnly));
}

#[test]
fn payload_types_with_static_and_dynamic_rtpmaps() {
    let sdp = parse(LINPHONE_OFFER);
    let audio = &sdp.media[0];
    assert_eq!(audio.payload_types().collect::<Vec<_>>(), [0, 8, 101]);
    let codecs: Vec<(u8, Option<(String, u32)>)> = audio
        .codecs()
        .into_iter()
        .map(|(pt, map)| (pt, map.map(|m| (m.encoding, m.clock_rate))))
        .collect();
    assert_eq!(
        codecs,
        [
            (0, Some(("PCMU".to_owned(), 8000))),
            (8, Some(("PCMA".to_owned(), 8000))),
            (101, Some(("telephone-event".to_owned(), 8000))),
        ]
    );

    let legacy = parse(LEGACY_HOLD);
    let names: Vec<String> = legacy.media[0]
        .codecs()
        .into_iter()
        .filter_map(|(_, map)| map.map(|m| m.encoding))
        .collect();
    assert_eq!(names, ["G729", "G723", "GSM"]);
    let g722 = parse(IPV6_OFFER).media[0].rtpmap(9).expect("G722");
    assert_eq!((g722.encoding.as_str(), g722.clock_rate), ("G722", 8000));

    let opus = parse(WEBRTC_OFFER).media[0].rtpmap(111).expect("opus");
    assert_eq!(
        (opus.encoding.as_str(), opus.clock_rate, opus.channels),
        ("opus", 48000, Some(2))
    );
}

#[test]
fn dynamic_payload_type_without_rtpmap_is_unknown() {
    let sdp =
        parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 96\r\n");
    assert_eq!(sdp.media[0].codecs()[1], (96, None));
}

#[test]
fn explicit_rtpmap_overrides_static_table() {
    let sdp = parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000/1\r\n",
    );
    assert_eq!(sdp.media[0].rtpmap(18).and_then(|m| m.channels), Some(1));
}

#[test]
fn telephone_event_and_its_fmtp() {
    let linphone = parse(LINPHONE_OFFER);
    assert_eq!(linphone.media[0].telephone_event_pt(), Some(101));
    assert_eq!(linphone.media[0].fmtp(101), Some("0-16"));
    assert_eq!(linphone.media[0].fmtp(0), None);

    // The 8 kHz one, not the 48 kHz one offered first.
    let webrtc = parse(WEBRTC_OFFER);
    assert_eq!(webrtc.media[0].telephone_event_pt(), Some(126));
    assert_eq!(webrtc.media[0].fmtp(126), None);
    assert_eq!(
        webrtc.media[0].fmtp(111),
        Some("minptime=10;useinbandfec=1")
    );
    assert_eq!(webrtc.media[1].telephone_event_pt(), None);
}

#[test]
fn ptime_rtcp_and_rtcp_mux() {
    let linphone = parse(LINPHONE_OFFER);
    let audio = &linphone.media[0];
    assert_eq!(audio.ptime(), Some(20));
    assert_eq!(audio.max_ptime(), Some(150));
    assert_eq!(audio.rtcp().map(|r| r.port), Some(7079));
    assert!(audio.rtcp().is_some_and(|r| r.connection.is_none()));
    assert!(!audio.rtcp_mux());

    let webrtc = parse(WEBRTC_OFFER);
    assert!(webrtc.media[0].rtcp_mux());
    assert_eq!(webrtc.media[0].ptime(), None);

    // A fractional ptime is kept verbatim, not typed.
    let legacy = parse(LEGACY_HOLD);
    assert_eq!(legacy.media[0].ptime(), None);
    assert_eq!(
        legacy.media[0].attribute("ptime"),
        Some(&Attribute::Other {
            name: "ptime".into(),
            value: Some("22.5".into())
        })
    );
}

#[test]
fn attribute_lookup_by_name() {
    let sdp = parse(WEBRTC_OFFER);
    assert_eq!(
        sdp.media[0].attribute("ice-ufrag"),
        Some(&Attribute::Other {
            name: "ice-ufrag".into(),
            value: Some("F7gI".into())
        })
    );
    assert_eq!(
        sdp.media[0].attribute("sendrecv"),
        Some(&Attribute::Direction(Direction::SendRecv))
    );
    assert!(sdp.media[0].attribute("nope").is_none());
}

#[test]
fn hold_detection() {
    assert!(!parse(LINPHONE_OFFER).is_hold());
    assert!(parse(HOLD_REINVITE).is_hold());
    assert!(parse(LEGACY_HOLD).is_hold());
    // ICE's c=0.0.0.0 placeholder is not legacy hold; a=sendonly still is.
    assert!(!parse(WEBRTC_OFFER).is_hold());
    let mut held = parse(WEBRTC_OFFER);
    held.set_direction(Direction::SendOnly);
    assert!(held.is_hold());

    let inactive = HOLD_REINVITE.replace("a=sendonly", "a=inactive");
    assert!(parse(&inactive).is_hold());
    let recvonly = HOLD_REINVITE.replace("a=sendonly", "a=recvonly");
    assert!(!parse(&recvonly).is_hold());

    // Video switched off while audio flows is not hold; disabled streams don't count.
    let video_off = format!("{LINPHONE_OFFER}m=video 4002 RTP/AVP 31\r\na=inactive\r\n");
    let sdp = parse(&video_off);
    assert!(!sdp.is_hold());
    assert!(sdp.media_is_hold(&sdp.media[1]));
    let video_rejected = format!("{HOLD_REINVITE}m=video 0 RTP/AVP 31\r\n");
    assert!(parse(&video_rejected).is_hold());

    // No active stream at all is not hold.
    let no_media = parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\na=sendonly\r\n");
    assert!(!no_media.is_hold());
}

// ---- rewriters ---------------------------------------------------------------

#[test]
fn set_connection_address_rewrites_session_and_media() {
    let mut sdp = parse(WEBRTC_OFFER);
    sdp.set_connection_address(ip("203.0.113.7"));
    // Every section had its own c=; no session c= is invented.
    assert!(sdp.connection.is_none());
    for media in &sdp.media {
        assert_eq!(media.connections.len(), 1);
        assert_eq!(
            sdp.media_connection(media).map(|c| c.to_string()),
            Some("IN IP4 203.0.113.7".to_owned())
        );
    }
    // The o= address is a separate choice.
    assert_eq!(sdp.origin.address, "127.0.0.1");

    let mut linphone = parse(LINPHONE_OFFER);
    linphone.set_connection_address(ip("203.0.113.7"));
    assert_eq!(
        linphone.connection.as_ref().map(|c| c.to_string()),
        Some("IN IP4 203.0.113.7".to_owned())
    );
    assert!(linphone.media[0].connections.is_empty());
}

#[test]
fn set_connection_address_switches_address_family() {
    let mut sdp = parse(LINPHONE_OFFER);
    sdp.set_connection_address(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
    sdp.set_origin_address(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
    let text = sdp.to_string();
    assert!(text.contains("c=IN IP6 2001:db8::1\r\n"), "{text}");
    assert!(
        text.contains("o=alice 2890844526 2890844526 IN IP6 2001:db8::1\r\n"),
        "{text}"
    );

    let mut ipv6 = parse(IPV6_OFFER);
    ipv6.set_connection_address(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
    assert_eq!(
        ipv6.connection.as_ref().map(|c| c.addr_type.as_str()),
        Some("IP4")
    );
}

#[test]
fn set_connection_address_adds_session_c_when_a_section_relied_on_it() {
    let mut sdp = parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 31\r\nc=IN IP4 10.0.0.9\r\nc=IN IP4 10.0.0.10\r\n",
    );
    sdp.set_connection_address(ip("192.0.2.1"));
    assert_eq!(
        sdp.connection.as_ref().and_then(|c| c.ip()),
        Some(ip("192.0.2.1"))
    );
    assert_eq!(sdp.media[1].connections.len(), 1);
    for media in &sdp.media {
        assert_eq!(
            sdp.media_connection(media).and_then(|c| c.ip()),
            Some(ip("192.0.2.1"))
        );
    }
}

#[test]
fn set_port_keeps_port_count() {
    let mut sdp = parse(LINPHONE_OFFER);
    sdp.media[0].set_port(40000);
    assert!(
        sdp.to_string()
            .contains("m=audio 40000 RTP/AVP 0 8 101\r\n")
    );
    let mut layered =
        parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 49170/2 RTP/AVP 31\r\n");
    layered.media[0].set_port(50000);
    assert!(
        layered
            .to_string()
            .contains("m=video 50000/2 RTP/AVP 31\r\n")
    );
}

#[test]
fn set_rtcp_replaces_in_place_or_appends() {
    let mut sdp = parse(LINPHONE_OFFER);
    sdp.media[0].set_rtcp(40001, Some(ip("203.0.113.7")));
    let text = sdp.to_string();
    assert!(
        text.contains("a=maxptime:150\r\na=rtcp:40001 IN IP4 203.0.113.7\r\na=sendrecv\r\n"),
        "{text}"
    );

    let mut ipv6 = parse(IPV6_OFFER);
    ipv6.media[0].set_rtcp(40001, None);
    assert!(ipv6.to_string().ends_with("a=rtcp:40001\r\n"));

    let mut none = parse(HOLD_REINVITE);
    none.media[0].set_rtcp(40001, None);
    assert_eq!(none.media[0].rtcp().map(|r| r.port), Some(40001));
    assert!(none.to_string().ends_with("a=sendonly\r\na=rtcp:40001\r\n"));
}

#[test]
fn set_direction_on_media_and_session() {
    let mut sdp = parse(LINPHONE_OFFER);
    sdp.media[0].set_direction(Direction::SendOnly);
    let text = sdp.to_string();
    assert!(text.ends_with("a=rtcp:7079\r\na=sendonly\r\n"), "{text}");
    assert!(sdp.is_hold());

    let mut session_level = parse(
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\na=sendonly\r\n\
         m=audio 4000 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 0\r\na=inactive\r\na=recvonly\r\n",
    );
    session_level.set_direction(Direction::SendRecv);
    assert_eq!(session_level.direction(), None);
    for media in &session_level.media {
        assert_eq!(media.direction(), Some(Direction::SendRecv));
        assert_eq!(session_level.media_direction(media), Direction::SendRecv);
    }
    assert!(!session_level.to_string().contains("inactive"));

    let mut no_media = parse("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n");
    no_media.set_direction(Direction::Inactive);
    assert_eq!(no_media.direction(), Some(Direction::Inactive));
}

#[test]
fn retain_payload_types_drops_formats_and_their_attributes() {
    let mut sdp = parse(WEBRTC_OFFER);
    sdp.media[0].retain_payload_types(&[0, 126]);
    let audio = &sdp.media[0];
    assert_eq!(audio.formats, ["0", "126"]);
    assert_eq!(audio.rtpmap(111), None);
    assert_eq!(audio.fmtp(111), None);
    assert!(audio.attribute("rtcp-fb").is_none());
    assert_eq!(audio.telephone_event_pt(), Some(126));
    // Unrelated attributes survive, in order.
    assert!(audio.attribute("ice-ufrag").is_some());
    assert!(audio.attribute("ssrc").is_some());

    let mut video = sdp.media[1].clone();
    video.retain_payload_types(&[96]);
    assert_eq!(video.formats, ["96"]);
    let fb: Vec<String> = video
        .attributes
        .iter()
        .filter(|a| a.name() == "rtcp-fb")
        .map(|a| a.to_string())
        .collect();
    assert_eq!(fb, ["rtcp-fb:96 goog-remb", "rtcp-fb:96 nack pli"]);
    assert!(video.fmtp(97).is_none());

    // Non-numeric formats are not payload types and stay.
    let mut data = sdp.media[2].clone();
    data.retain_payload_types(&[]);
    assert_eq!(data.formats, ["webrtc-datachannel"]);
}

#[test]
fn bump_version_increments_and_never_panics() {
    let mut sdp = parse(LINPHONE_OFFER);
    sdp.bump_version();
    assert_eq!(sdp.origin.session_version, 2890844527);
    assert_eq!(sdp.origin.session_id, 2890844526);
    assert!(
        sdp.to_string()
            .contains("o=alice 2890844526 2890844527 IN IP4 192.168.1.20\r\n")
    );
    sdp.origin.session_version = u64::MAX;
    sdp.bump_version();
    assert_eq!(sdp.origin.session_version, 0);
}

#[test]
fn anchoring_a_call_end_to_end() {
    // What the call engine does when it anchors media: relay address and
    // ports, codec narrowing, new version; the result reparses identically.
    let mut sdp = parse(LINPHONE_OFFER);
    let relay = ip("203.0.113.7");
    sdp.set_connection_address(relay);
    sdp.set_origin_address(relay);
    sdp.media[0].set_port(40000);
    sdp.media[0].set_rtcp(40001, None);
    sdp.media[0].retain_payload_types(&[8, 101]);
    sdp.bump_version();
    let expected = "v=0\r\n\
o=alice 2890844526 2890844527 IN IP4 203.0.113.7\r\n\
s=Talk\r\n\
c=IN IP4 203.0.113.7\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
m=audio 40000 RTP/AVP 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=rtcp:40001\r\n\
a=sendrecv\r\n";
    assert_eq!(sdp.to_string(), expected);
    assert_eq!(parse(expected), sdp);
}

// ---- errors ------------------------------------------------------------------

const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n";

#[test]
fn version_must_come_first_and_be_zero() {
    assert_eq!(
        parse_err("o=- 1 1 IN IP4 10.0.0.1\r\nv=0\r\n"),
        SdpError::Invalid {
            line: 1,
            problem: "SDP must start with v=0"
        }
    );
    assert_eq!(parse_err("v=1\r\no=- 1 1 IN IP4 h\r\n").line(), Some(1));
    assert_eq!(
        parse_err("v=0\r\no=- 1 1 IN IP4 h\r\nv=0\r\n"),
        SdpError::Duplicate { line: 3, kind: 'v' }
    );
}

#[test]
fn missing_origin_is_rejected() {
    assert_eq!(
        parse_err("v=0\r\ns=-\r\nt=0 0\r\n"),
        SdpError::MissingOrigin
    );
    assert_eq!(SdpError::MissingOrigin.to_string(), "SDP has no o= line");
}

#[test]
fn empty_bodies_are_rejected() {
    assert_eq!(parse_err(""), SdpError::Empty);
    assert_eq!(parse_err("\r\n\r\n"), SdpError::Empty);
}

#[test]
fn non_numeric_port_names_the_line() {
    let error = parse_err(&format!("{HEAD}m=audio port RTP/AVP 0\r\n"));
    assert_eq!(error.to_string(), "line 5: m= port is not a number");
    assert_eq!(error.line(), Some(5));
    assert_eq!(
        parse_err(&format!("{HEAD}m=audio 70000 RTP/AVP 0\r\n")).line(),
        Some(5)
    );
    assert_eq!(
        parse_err(&format!("{HEAD}m=audio 4000/x RTP/AVP 0\r\n")).to_string(),
        "line 5: m= port count is not a number"
    );
    assert_eq!(
        parse_err(&format!("{HEAD}m=audio 4000\r\n")).line(),
        Some(5)
    );
}

#[test]
fn bad_rtpmap_is_rejected() {
    for bad in [
        "a=rtpmap:101 telephone-event",
        "a=rtpmap:abc PCMU/8000",
        "a=rtpmap:300 PCMU/8000",
        "a=rtpmap:0 PCMU/fast",
        "a=rtpmap",
    ] {
        let error = parse_err(&format!("{HEAD}m=audio 4000 RTP/AVP 0\r\n{bad}\r\n"));
        assert_eq!(error.line(), Some(6), "{bad}");
        assert!(error.to_string().contains("rtpmap"), "{bad}: {error}");
    }
}

#[test]
fn malformed_typed_lines_are_rejected() {
    for (line, problem) in [
        ("o=- x 1 IN IP4 h", "o= sess-id is not a number"),
        ("c=IN IP4", "c= must be `<nettype> <addrtype> <address>`"),
        ("b=AS", "b= must be `<bwtype>:<bandwidth>`"),
        ("b=AS:lots", "b= bandwidth is not a number"),
        ("t=now 0", "t= start time is not a number"),
        ("a=ptime:soon", "a=ptime is not a number"),
        ("a=rtcp:x", "a=rtcp port is not a number"),
        ("a=", "a= line has no attribute name"),
        ("r=7d 1h", "r= or z= line before any t= line"),
    ] {
        let text = format!("v=0\r\n{line}\r\n");
        assert_eq!(
            parse_err(&text),
            SdpError::Invalid { line: 2, problem },
            "{line}"
        );
    }
}

#[test]
fn garbage_and_lines_without_equals_are_rejected() {
    for garbage in [
        "hello world",
        "a:rtpmap",
        "A=foo",
        "ab=cd",
        "=x",
        " a=x",
        "m",
    ] {
        assert_eq!(
            parse_err(&format!("{HEAD}{garbage}\r\n")),
            SdpError::NotALine { line: 5 },
            "{garbage}"
        );
    }
    assert_eq!(
        parse_err(&format!("{HEAD}m=audio 4000 RTP/AVP 0\r\njunk\r\n")).to_string(),
        "line 6: expected `<type>=<value>` with a lowercase type letter"
    );
}

#[test]
fn empty_lines_and_control_characters_are_rejected() {
    assert_eq!(
        parse_err("v=0\r\n\r\no=- 1 1 IN IP4 h\r\n"),
        SdpError::Invalid {
            line: 2,
            problem: "empty line"
        }
    );
    assert_eq!(
        parse_err("v=0\r\ns=a\rb\r\no=- 1 1 IN IP4 h\r\n").line(),
        Some(2)
    );
    assert_eq!(
        parse_err("v=0\r\ns=a\0b\r\no=- 1 1 IN IP4 h\r\n").line(),
        Some(2)
    );
}

#[test]
fn non_utf8_is_rejected_with_its_line() {
    let mut body = HEAD.as_bytes().to_vec();
    body.extend_from_slice(b"s=caf\xe9\r\n");
    assert_eq!(
        SessionDescription::parse(&body),
        Err(SdpError::NotUtf8 { line: 5 })
    );
}

#[test]
fn duplicates_and_misplaced_lines_are_rejected() {
    assert_eq!(
        parse_err(&format!("{HEAD}s=again\r\n")),
        SdpError::Duplicate { line: 5, kind: 's' }
    );
    assert_eq!(
        parse_err(&format!("{HEAD}c=IN IP4 h\r\nc=IN IP4 h\r\n")),
        SdpError::Duplicate { line: 6, kind: 'c' }
    );
    assert_eq!(
        parse_err(&format!("{HEAD}m=audio 4000 RTP/AVP 0\r\ni=a\r\ni=b\r\n")),
        SdpError::Duplicate { line: 7, kind: 'i' }
    );
    assert_eq!(
        parse_err(&format!("{HEAD}m=audio 4000 RTP/AVP 0\r\nt=0 0\r\n")),
        SdpError::SessionLineInMedia { line: 6, kind: 't' }
    );
}

#[test]
fn limits_are_enforced() {
    let mut many_media = HEAD.to_owned();
    for _ in 0..MAX_MEDIA {
        many_media.push_str("m=audio 4000 RTP/AVP 0\r\n");
    }
    assert_eq!(parse(&many_media).media.len(), MAX_MEDIA);
    many_media.push_str("m=audio 4000 RTP/AVP 0\r\n");
    assert_eq!(
        parse_err(&many_media),
        SdpError::TooManyMedia {
            line: 5 + MAX_MEDIA,
            max: MAX_MEDIA
        }
    );

    let mut many_lines = HEAD.to_owned();
    while many_lines.lines().count() < MAX_LINES {
        many_lines.push_str("a=x\r\n");
    }
    assert!(SessionDescription::parse(many_lines.as_bytes()).is_ok());
    many_lines.push_str("a=x\r\n");
    assert_eq!(
        parse_err(&many_lines),
        SdpError::TooManyLines { max: MAX_LINES }
    );

    // At the limit without t=: the repaired body would not parse again, so
    // it is refused up front.
    let mut no_t = many_lines.replace("t=0 0\r\n", "");
    while no_t.lines().count() > MAX_LINES {
        no_t.truncate(no_t.len() - "a=x\r\n".len());
    }
    assert_eq!(parse_err(&no_t), SdpError::TooManyLines { max: MAX_LINES });
    no_t.truncate(no_t.len() - "a=x\r\n".len());
    let repaired = parse(&no_t).to_bytes();
    assert!(SessionDescription::parse(&repaired).is_ok());
}
