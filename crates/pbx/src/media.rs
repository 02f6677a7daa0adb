//! Media anchoring, as the engine sees it (DESIGN.md, "How media is
//! relayed"): when a call's RTP goes through the PBX's relay, what the SDP
//! each party receives says, and what the engine asks of the runtime's
//! relay ([`MediaCommand`], through [`crate::Output::Media`]).
//!
//! The engine does no IO here. Ports come from a [`RelayPorts`] the runtime
//! lends the engine ([`crate::Engine::set_media`]): reserving is a plain
//! synchronous call that returns two RTP port numbers (the runtime binds the
//! sockets there and parks them under the session until the
//! [`MediaCommand::Open`] that follows in the same step takes them). The
//! virtual-clock tests lend a counter. Without a `RelayPorts` nothing is
//! anchored.
//!
//! # When a call is anchored (`media.anchor`)
//!
//! Decided once, when the caller's INVITE has been routed:
//!
//! - `never`: SDP passes end to end (a recording asked for is not made);
//! - `always`: every call is relayed;
//! - `auto` (default): relayed when the call may be recorded (see below),
//!   or when a party is behind NAT: the caller's INVITE SDP names another
//!   IP than the INVITE came from, or a device rung registered from
//!   another IP than its Contact names.
//!
//! Not anchored: calls the PBX originated over REST (their caller is a
//! device the PBX INVITEs without SDP, RFC 3725 flow I) and calls whose
//! relay ports could not be reserved (the pool is exhausted: the call goes
//! on unrelayed, and unrecorded).
//!
//! # Which calls are recorded
//!
//! A call is recorded when its tenant has the `recording` flag, when its
//! caller (a user of the tenant) or its first destination (the CDR's
//! callee) has it, or when a user who has it answers. The last one is
//! only known later, so the decision at routing time looks ahead: when
//! any user the routing plan can reach records (the first destination's
//! forwarding rules, followed to their destinations' rules, ring group
//! members and no-answer destinations, as far as the call's hop
//! limit), the call is anchored and recorded *provisionally*
//! ([`RecordingPlan::provisional`]): the WAV covers the call from the
//! start, and is kept (with its row and CDR link) only if a recording
//! user answers ([`MediaCommand::Record`]); otherwise it is deleted when
//! the call ends. Transfers and pickups do not change the decision.
//!
//! When a call that should be recorded cannot be (not anchored: no ports,
//! the relay off), the CDR says why in `recording_error`; the runtime
//! adds the errors only it sees (disk full, unwritable, no audio).
//!
//! # The rewrite
//!
//! The first audio `m=` section is relayed: its port becomes the relay
//! side's port, every `c=` and the `o=` address become the relay's
//! address, an `a=rtcp` is rewritten to port + 1. Codecs and every other
//! line are unchanged. Other `m=` sections (video, T.38) cannot reach the
//! party through an address that is now the relay's, so their port is set
//! to 0 (declined, RFC 3264 §8.2) rather than left pointing nowhere. A
//! body that is not SDP, or has no audio, is copied unchanged.

use std::net::{IpAddr, SocketAddr};

use cdr::SessionId;
use sip::sdp::SessionDescription;

/// `media.anchor`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Anchor {
    #[default]
    Auto,
    Always,
    Never,
}

impl Anchor {
    /// Whether a call is relayed; see the module doc.
    pub fn decide(self, recorded: bool, behind_nat: bool) -> bool {
        match self {
            Anchor::Never => false,
            Anchor::Always => true,
            Anchor::Auto => recorded || behind_nat,
        }
    }
}

/// Reserves relay ports for a call, synchronously (see the module doc).
pub trait RelayPorts: Send {
    /// Two RTP ports (side A for the caller, side B for the callee; RTCP
    /// on each + 1), kept for `session` until the runtime applies its
    /// [`MediaCommand::Open`]; `None` when none are free.
    fn reserve(&mut self, session: SessionId) -> Option<[u16; 2]>;
}

/// How the engine anchors media: the rule and the relay's address (what
/// the rewritten SDP names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaPolicy {
    pub anchor: Anchor,
    pub address: IpAddr,
}

/// Which party a relay side serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The caller.
    A = 0,
    /// The callee (the target that answered; before that, whichever target
    /// sent SDP last).
    B = 1,
}

/// What the signalling says about a party.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    /// Its RTP address from SDP (`c=` and `m=`), `None` before its SDP
    /// (or on hold at `0.0.0.0`).
    pub rtp: Option<SocketAddr>,
    /// Its RTCP address (`a=rtcp`, or RTP + 1).
    pub rtcp: Option<SocketAddr>,
    /// Signalling came from another IP than the SDP names.
    pub behind_nat: bool,
    /// Payload type → encoding name, from its SDP's `m=`/`a=rtpmap`.
    pub codecs: Vec<(u8, String)>,
}

/// A call to record: what its `recordings` row needs besides the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingPlan {
    pub caller: String,
    pub callee: String,
    /// When the session started (Unix ms).
    pub started_ms: u64,
    /// Recorded only in case: no party that records is in the call yet,
    /// but the routing plan can reach one (a forward, a ring group
    /// member). The relay records from the start; the recording is kept
    /// if a [`MediaCommand::Record`] follows (such a party answered), else
    /// it is deleted at the end, without a row or a CDR link.
    pub provisional: bool,
}

/// What the engine asks of the relay of one session
/// ([`crate::Output::Media`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCommand {
    /// Start the relay on the ports [`RelayPorts::reserve`] gave.
    Open {
        ports: [u16; 2],
        recording: Option<RecordingPlan>,
    },
    /// A party's SDP (offer, answer, re-INVITE, UPDATE, ACK).
    Party(Side, Party),
    /// The call was answered: the RTP timeout runs from now.
    Answered,
    /// A party whose calls are recorded answered a call recorded only
    /// in case ([`RecordingPlan::provisional`]): keep the recording.
    Record,
    /// The session ended (its `SessionEnded` is in the same step): stop,
    /// and complete the CDR with the relay's report.
    Stop,
    /// The PBX holds the caller (an IVR): play this to side A, drop side
    /// B's audio, report the caller's digits (`Input::Digit`).
    Play(crate::apps::Playback),
    /// Stop playing (a digit barged in); still holding the caller.
    Quiet,
    /// The caller is bridged with side B again: relay both ways.
    Bridge,
}

/// The first audio section, where the relay applies.
fn audio_index(sdp: &SessionDescription) -> Option<usize> {
    sdp.media
        .iter()
        .position(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)
}

/// What a party's SDP says about where its audio is, as the relay needs it;
/// `signalling_ip` is the source IP of the SIP message that carried it.
pub fn party_from_sdp(sdp: &SessionDescription, signalling_ip: IpAddr) -> Party {
    let Some(i) = audio_index(sdp) else {
        return Party::default();
    };
    let m = &sdp.media[i];
    let ip = sdp.media_connection(m).and_then(|c| c.ip());
    let rtp = ip
        .filter(|ip| !ip.is_unspecified())
        .map(|ip| SocketAddr::new(ip, m.port));
    let rtcp = match m.rtcp() {
        Some(r) => r
            .connection
            .as_ref()
            .and_then(|c| c.ip())
            .or(ip)
            .map(|ip| SocketAddr::new(ip, r.port)),
        None => rtp.map(|a| SocketAddr::new(a.ip(), a.port().saturating_add(1))),
    };
    let behind_nat = ip.is_some_and(|ip| ip.to_canonical() != signalling_ip.to_canonical());
    let codecs = m
        .codecs()
        .into_iter()
        .filter_map(|(pt, map)| map.map(|map| (pt, map.encoding)))
        .collect();
    Party {
        rtp,
        rtcp,
        behind_nat,
        codecs,
    }
}

/// Rewrites `sdp` so its audio goes to the relay at `ip:port`; see the
/// module doc. Returns false (and leaves the body alone) when it has no
/// audio section to relay.
pub fn anchor_sdp(sdp: &mut SessionDescription, ip: IpAddr, port: u16) -> bool {
    let Some(i) = audio_index(sdp) else {
        return false;
    };
    sdp.set_connection_address(ip);
    sdp.set_origin_address(ip);
    for (j, m) in sdp.media.iter_mut().enumerate() {
        if j == i {
            m.set_port(port);
            if m.rtcp().is_some() {
                m.set_rtcp(port.saturating_add(1), Some(ip));
            }
        } else {
            m.set_port(0);
        }
    }
    true
}

/// A session's relay, as the engine keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Anchored {
    pub ports: [u16; 2],
    pub address: IpAddr,
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=rtcp:4005\r\n\
        m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn party_and_nat() {
        let sdp = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        let p = party_from_sdp(&sdp, ip("192.0.2.10"));
        assert_eq!(p.rtp, Some("192.0.2.10:4000".parse().unwrap()));
        assert_eq!(p.rtcp, Some("192.0.2.10:4005".parse().unwrap()));
        assert!(!p.behind_nat);
        assert_eq!(
            p.codecs,
            vec![
                (0, "PCMU".into()),
                (8, "PCMA".into()),
                (101, "telephone-event".into())
            ]
        );
        // Signalling from elsewhere: behind NAT. IPv4-mapped is the same host.
        assert!(party_from_sdp(&sdp, ip("203.0.113.7")).behind_nat);
        assert!(!party_from_sdp(&sdp, ip("::ffff:192.0.2.10")).behind_nat);
        assert!(!Anchor::Auto.decide(false, false));
        assert!(Anchor::Auto.decide(true, false) && Anchor::Auto.decide(false, true));
        assert!(Anchor::Always.decide(false, false) && !Anchor::Never.decide(true, true));
    }

    #[test]
    fn rewrite_keeps_codecs_and_declines_other_streams() {
        let mut sdp = SessionDescription::parse(OFFER.as_bytes()).unwrap();
        let relay = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
        assert!(anchor_sdp(&mut sdp, relay, 30000));
        let text = String::from_utf8(sdp.to_bytes()).unwrap();
        let again = SessionDescription::parse(text.as_bytes()).unwrap();
        let p = party_from_sdp(&again, relay);
        assert_eq!(p.rtp, Some("198.51.100.1:30000".parse().unwrap()));
        assert_eq!(p.rtcp, Some("198.51.100.1:30001".parse().unwrap()));
        assert_eq!(p.codecs.len(), 3);
        assert!(text.contains("o=alice 1 1 IN IP4 198.51.100.1"), "{text}");
        assert!(!text.contains("192.0.2.10"), "{text}");
        assert_eq!(again.media[1].port, 0);
        // No audio: nothing to relay, body untouched.
        let mut video_only = SessionDescription::parse(
            b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=video 4002 RTP/AVP 96\r\n",
        )
        .unwrap();
        let before = video_only.clone();
        assert!(!anchor_sdp(&mut video_only, relay, 30000));
        assert_eq!(video_only, before);
        assert_eq!(party_from_sdp(&video_only, relay), Party::default());
    }
}
