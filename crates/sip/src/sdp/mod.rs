//! SDP session descriptions (RFC 8866, which obsoletes RFC 4566): parse,
//! inspect, rewrite, serialize.
//!
//! # Place in Tally
//!
//! Tally is a B2BUA. When a call's media is not anchored, the offer/answer
//! bodies pass from leg to leg untouched and this module only reads them
//! (codecs for the CDR, `is_hold()` for call state). When media is anchored
//! (recording, IVR, queue music, NAT), the relay owns a port pair per leg and
//! the call engine rewrites each body before forwarding it: the connection
//! address and media ports become the relay's, `a=rtcp` is pointed at the
//! relay, the direction may change (music on hold), codecs are narrowed to
//! what the relay can transcode, and `o=` sess-version is bumped for each
//! re-offer on a leg (RFC 3264 §8). [`SessionDescription`] is the owned model
//! for that: parsed once from the message body, edited with the rewriters,
//! written back with [`SessionDescription::to_bytes`].
//!
//! # Decisions
//!
//! - **Round trip.** Serialising a parsed canonical body (CRLF line ends,
//!   single spaces, lines in RFC 8866 order) reproduces it byte for byte.
//!   Unknown attributes and unknown line types are kept verbatim, in their
//!   order. Non-canonical input is normalised, and the normal form is stable:
//!   `parse(to_bytes(parse(x)))` serializes to the same bytes (fuzzed).
//! - **Normalisations.** LF-only line ends and trailing blank lines are
//!   accepted; output is always CRLF. Runs of spaces between fields become one
//!   space. Numbers lose leading zeros (`o=` ids are `u64`). Lines out of RFC
//!   order within a section are written back in RFC order. Unknown line types
//!   (`y=`, `f=` of GB28181) are written at the end of their section; `r=`
//!   and `z=` stay, verbatim, after the `t=` they followed.
//! - **Required lines.** `v=0` must be the first line and `o=` must be
//!   present; a body without either is not SDP. Some phones omit `s=` or
//!   `t=`: a missing `s=` becomes `s=-` and a missing `t=` becomes `t=0 0`,
//!   so what Tally sends on is always valid. `c=` is not required (a section
//!   without an effective `c=` reports no connection).
//! - **Strictness.** A line that is not `<lowercase letter>=<value>`, an
//!   empty line in the middle, a CR or NUL inside a line, a duplicated
//!   single-valued line (`o= s= i= u= c= k=` at session level, `i= k=` in a
//!   media section), a session-only line after the first `m=`, or a malformed
//!   value of a typed line (`o= c= b= t= m=`, `a=rtpmap`, `a=fmtp`,
//!   `a=ptime`, `a=maxptime`, `a=rtcp`) is rejected with [`SdpError`] naming
//!   the line. Everything else is kept rather than judged.
//! - **Typed attributes.** `rtpmap`, `fmtp`, integer `ptime`/`maxptime`, the
//!   four directions, `rtcp` and `rtcp-mux` are parsed into [`Attribute`]
//!   variants; a fractional `ptime` (legal since RFC 8866) and flag
//!   attributes given an unexpected value are kept as [`Attribute::Other`].
//! - **Hold.** A stream is on hold when its effective direction is
//!   `sendonly` or `inactive`, or its effective `c=` is `0.0.0.0` (RFC 2543)
//!   unless ICE is in use, where that address is only a placeholder
//!   (RFC 8839). A body is a hold when every active stream (port ≠ 0) is.
//! - **Bounds.** At most [`MAX_LINES`] lines and [`MAX_MEDIA`] media
//!   sections; the caller bounds the body size. Memory is linear in the input.
//! - **Strings in the model are trusted.** Fields are public; values placed in
//!   them by code must not contain CR or LF. Values from [`SessionDescription::parse`]
//!   never do.
//!
//! # Fuzzing
//!
//! `fuzz/fuzz_targets/sdp.rs` parses arbitrary bytes and checks that the
//! normal form is stable and that every accessor and rewriter holds up:
//!
//! ```text
//! cargo +nightly fuzz run sdp -- -max_total_time=600 -max_len=4096 -jobs=1
//! ```
//!
//! Crashers go to `crates/sip/tests/fuzz_regressions/sdp/`, which
//! `tests/sdp_fuzz_regressions.rs` replays on every `cargo test`.

mod attribute;
mod error;
mod parse;
mod write;

use std::net::{IpAddr, Ipv4Addr};

pub use attribute::{Attribute, Direction, Fmtp, Rtcp, RtpMap};
pub use error::SdpError;
pub use parse::{MAX_LINES, MAX_MEDIA};

/// A whole SDP body: session-level lines and the media sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=`; `-` when the body had none.
    pub name: String,
    /// `i=`.
    pub information: Option<String>,
    /// `u=`.
    pub uri: Option<String>,
    /// `e=` lines, verbatim.
    pub emails: Vec<String>,
    /// `p=` lines, verbatim.
    pub phones: Vec<String>,
    /// Session-level `c=`, the default for media sections without their own.
    pub connection: Option<Connection>,
    /// `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines with their `r=`/`z=`; never empty after parsing.
    pub timings: Vec<Timing>,
    /// `k=`, verbatim (obsolete but passed through).
    pub key: Option<String>,
    /// Session-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Session-level lines of unknown type, in order.
    pub other_lines: Vec<RawLine>,
    /// `m=` sections, in order (their index is the RFC 3264 stream index).
    pub media: Vec<MediaDescription>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: u64,
    pub session_version: u64,
    pub net_type: String,
    pub addr_type: String,
    pub address: String,
}

/// `c=<nettype> <addrtype> <address>`, also the tail of `a=rtcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `IN` for the Internet.
    pub net_type: String,
    /// `IP4` or `IP6`.
    pub addr_type: String,
    /// An IP address or host name, with `/ttl[/count]` for multicast.
    pub address: String,
}

impl Connection {
    /// `IN IP4 <ip>` or `IN IP6 <ip>`.
    pub fn from_ip(ip: IpAddr) -> Self {
        Connection {
            net_type: "IN".to_owned(),
            addr_type: addr_type(ip).to_owned(),
            address: ip.to_string(),
        }
    }

    /// The address as an IP, ignoring a multicast `/ttl` suffix; `None` for a
    /// host name.
    pub fn ip(&self) -> Option<IpAddr> {
        let address = self
            .address
            .split_once('/')
            .map_or(self.address.as_str(), |(address, _)| address);
        address.parse().ok()
    }

    /// `0.0.0.0`: the RFC 2543 way to put a call on hold.
    pub fn is_legacy_hold(&self) -> bool {
        self.ip() == Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// `b=<bwtype>:<bandwidth>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// `AS`, `CT`, `TIAS`, ...
    pub bw_type: String,
    pub bandwidth: u64,
}

/// `t=<start> <stop>` and the `r=`/`z=` lines that followed it, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub start: u64,
    pub stop: u64,
    pub adjustments: Vec<RawLine>,
}

/// A line kept verbatim: `<kind>=<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    pub kind: char,
    pub value: String,
}

/// One `m=` section and the lines up to the next `m=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application`, `image`, ...
    pub media: String,
    /// 0 means the stream is rejected or disabled (RFC 3264 §5.1).
    pub port: u16,
    /// The `/2` of `m=video 49170/2 ...`.
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, `udptl`, ...
    pub proto: String,
    /// The format list: payload type numbers for RTP, in preference order.
    pub formats: Vec<String>,
    /// `i=`.
    pub information: Option<String>,
    /// Media-level `c=` lines (several only for layered multicast).
    pub connections: Vec<Connection>,
    /// `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `k=`, verbatim.
    pub key: Option<String>,
    /// `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Lines of unknown type, in order.
    pub other_lines: Vec<RawLine>,
}

impl SessionDescription {
    /// Parses a message body. See the module docs for what is accepted.
    pub fn parse(input: &[u8]) -> Result<Self, SdpError> {
        parse::parse(input)
    }

    /// The body to put in a SIP message: RFC 8866 order, CRLF line ends.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// The session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        attribute::direction_in(&self.attributes)
    }

    /// Where `media`'s RTP goes: its own first `c=`, else the session `c=`.
    pub fn media_connection<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connections.first().or(self.connection.as_ref())
    }

    /// `media`'s direction: its own attribute, else the session-level one,
    /// else `sendrecv` (RFC 3264 §5.1).
    pub fn media_direction(&self, media: &MediaDescription) -> Direction {
        media
            .direction()
            .or_else(|| self.direction())
            .unwrap_or(Direction::SendRecv)
    }

    /// Whether `media` is on hold: `sendonly` or `inactive` (RFC 3264 §8.4),
    /// or an effective `c=` of `0.0.0.0` (RFC 2543). With ICE (`a=ice-ufrag`),
    /// `c=IN IP4 0.0.0.0` only means "see the candidates" (RFC 8839 §4.2.1)
    /// and is not hold.
    pub fn media_is_hold(&self, media: &MediaDescription) -> bool {
        let uses_ice = |attributes: &[Attribute]| {
            attributes
                .iter()
                .any(|attribute| attribute.name() == "ice-ufrag")
        };
        matches!(
            self.media_direction(media),
            Direction::SendOnly | Direction::Inactive
        ) || (self
            .media_connection(media)
            .is_some_and(Connection::is_legacy_hold)
            && !uses_ice(&media.attributes)
            && !uses_ice(&self.attributes))
    }

    /// Whether this body puts the call on hold: it has at least one active
    /// stream (port ≠ 0) and every active stream is on hold. Turning video off
    /// while audio flows is not hold.
    pub fn is_hold(&self) -> bool {
        let mut active = self.media.iter().filter(|media| media.port != 0).peekable();
        active.peek().is_some() && active.all(|media| self.media_is_hold(media))
    }

    /// Points all media at `ip` (the relay, when anchoring): sets the session
    /// `c=` and replaces each media section's `c=` lines with one for `ip`.
    /// A session `c=` is added when some section had no `c=` of its own and
    /// so relied on it. The address type follows the IP version.
    pub fn set_connection_address(&mut self, ip: IpAddr) {
        let connection = Connection::from_ip(ip);
        let mut relies_on_session = self.media.is_empty();
        for media in &mut self.media {
            if media.connections.is_empty() {
                relies_on_session = true;
            } else {
                media.connections = vec![connection.clone()];
            }
        }
        if relies_on_session || self.connection.is_some() {
            self.connection = Some(connection);
        }
    }

    /// Sets the `o=` address (and its address type) to `ip`, so the body
    /// does not leak the other leg's address.
    pub fn set_origin_address(&mut self, ip: IpAddr) {
        self.origin.net_type = "IN".to_owned();
        self.origin.addr_type = addr_type(ip).to_owned();
        self.origin.address = ip.to_string();
    }

    /// Sets every media section's direction to `direction` and drops any
    /// session-level direction, so the effective direction is `direction`
    /// everywhere. With no media sections, sets the session-level direction.
    pub fn set_direction(&mut self, direction: Direction) {
        if self.media.is_empty() {
            attribute::set_direction_in(&mut self.attributes, direction);
            return;
        }
        attribute::remove_direction_in(&mut self.attributes);
        for media in &mut self.media {
            media.set_direction(direction);
        }
    }

    /// Increments `o=` sess-version, as every new offer in a dialog must
    /// (RFC 3264 §8). Wraps at `u64::MAX` rather than panic.
    pub fn bump_version(&mut self) {
        self.origin.session_version = self.origin.session_version.wrapping_add(1);
    }
}

impl MediaDescription {
    /// This section's own direction attribute, if any. For the effective
    /// direction use [`SessionDescription::media_direction`].
    pub fn direction(&self) -> Option<Direction> {
        attribute::direction_in(&self.attributes)
    }

    /// The formats that are RTP payload type numbers (0..=127), in m= order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|format| parse::number::<u8>(format))
            .filter(|pt| *pt <= 127)
    }

    /// What `payload_type` means: its `a=rtpmap`, else the RFC 3551 static
    /// assignment (0 PCMU, 8 PCMA, 9 G722, 18 G729, ...).
    pub fn rtpmap(&self, payload_type: u8) -> Option<RtpMap> {
        self.attributes
            .iter()
            .find_map(|attribute| match attribute {
                Attribute::RtpMap(rtpmap) if rtpmap.payload_type == payload_type => {
                    Some(rtpmap.clone())
                }
                _ => None,
            })
            .or_else(|| RtpMap::for_static_payload_type(payload_type))
    }

    /// Every payload type of the m= line with its meaning, in m= order.
    pub fn codecs(&self) -> Vec<(u8, Option<RtpMap>)> {
        self.payload_types()
            .map(|pt| (pt, self.rtpmap(pt)))
            .collect()
    }

    /// The `a=fmtp` parameters of `payload_type` (`0-16` for DTMF).
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.attributes
            .iter()
            .find_map(|attribute| match attribute {
                Attribute::Fmtp(fmtp) if fmtp.payload_type() == Some(payload_type) => {
                    Some(fmtp.params.as_str())
                }
                _ => None,
            })
    }

    /// The RFC 4733 `telephone-event/8000` payload type, the first offered.
    /// Its events are in [`fmtp`](Self::fmtp) (`0-16`; absent means `0-15`).
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.payload_types().find(|pt| {
            self.rtpmap(*pt).is_some_and(|rtpmap| {
                rtpmap.encoding.eq_ignore_ascii_case("telephone-event") && rtpmap.clock_rate == 8000
            })
        })
    }

    /// `a=ptime`, in milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        self.attributes
            .iter()
            .find_map(|attribute| match attribute {
                Attribute::Ptime(ms) => Some(*ms),
                _ => None,
            })
    }

    /// `a=maxptime`, in milliseconds.
    pub fn max_ptime(&self) -> Option<u32> {
        self.attributes
            .iter()
            .find_map(|attribute| match attribute {
                Attribute::MaxPtime(ms) => Some(*ms),
                _ => None,
            })
    }

    /// `a=rtcp`: where RTCP goes when it is not RTP port + 1.
    pub fn rtcp(&self) -> Option<&Rtcp> {
        self.attributes
            .iter()
            .find_map(|attribute| match attribute {
                Attribute::Rtcp(rtcp) => Some(rtcp),
                _ => None,
            })
    }

    /// Whether RTP and RTCP share the port (`a=rtcp-mux`).
    pub fn rtcp_mux(&self) -> bool {
        self.attributes
            .iter()
            .any(|attribute| matches!(attribute, Attribute::RtcpMux))
    }

    /// The first attribute named `name` (any variant; `rtpmap`, `sendonly`,
    /// `ice-ufrag`, ...).
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|attribute| attribute.name() == name)
    }

    /// Sets the RTP port; a port count (`/2`) is kept.
    pub fn set_port(&mut self, port: u16) {
        self.port = port;
    }

    /// Makes `a=rtcp` say `port` (and `ip`, when given): replaces the first
    /// `a=rtcp`, drops any others, or appends one when there was none.
    pub fn set_rtcp(&mut self, port: u16, ip: Option<IpAddr>) {
        let rtcp = Attribute::Rtcp(Rtcp {
            port,
            connection: ip.map(Connection::from_ip),
        });
        let mut placed = false;
        self.attributes.retain_mut(|attribute| {
            if !matches!(attribute, Attribute::Rtcp(_)) {
                return true;
            }
            if placed {
                return false;
            }
            *attribute = rtcp.clone();
            placed = true;
            true
        });
        if !placed {
            self.attributes.push(rtcp);
        }
    }

    /// Makes this section's direction `direction`, in place of any direction
    /// attributes it had.
    pub fn set_direction(&mut self, direction: Direction) {
        attribute::set_direction_in(&mut self.attributes, direction);
    }

    /// Narrows the offer to the payload types in `keep`: other numeric formats
    /// leave the m= line, and their `a=rtpmap`, `a=fmtp` and `a=rtcp-fb`
    /// lines go with them. Non-numeric formats are untouched. If nothing is
    /// left, the caller should reject the stream (port 0, RFC 3264 §6).
    pub fn retain_payload_types(&mut self, keep: &[u8]) {
        let kept = |pt: u8| keep.contains(&pt);
        self.formats
            .retain(|format| parse::number::<u8>(format).is_none_or(kept));
        self.attributes.retain(|attribute| match attribute {
            Attribute::RtpMap(rtpmap) => kept(rtpmap.payload_type),
            Attribute::Fmtp(fmtp) => fmtp.payload_type().is_none_or(kept),
            Attribute::Other {
                name,
                value: Some(value),
            } if name == "rtcp-fb" => attribute::rtcp_fb_payload_type(value).is_none_or(kept),
            _ => true,
        });
    }
}
