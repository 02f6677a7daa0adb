//! `a=` lines: the handful a B2BUA and media relay act on are typed, every
//! other attribute is kept verbatim so it passes through untouched.

use std::fmt;

use super::Connection;
use super::parse::{connection, fields, number};

/// One `a=` line, at session or media level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// `a=rtpmap:<pt> <encoding>/<clock>[/<channels>]` (RFC 8866 §6.6).
    RtpMap(RtpMap),
    /// `a=fmtp:<format> <params>` (RFC 8866 §6.15).
    Fmtp(Fmtp),
    /// `a=ptime:<ms>` with an integer value. A fractional value (RFC 8866
    /// allows one) is kept as [`Attribute::Other`].
    Ptime(u32),
    /// `a=maxptime:<ms>` with an integer value; fractional ones are kept as
    /// [`Attribute::Other`].
    MaxPtime(u32),
    /// `a=sendrecv`, `a=sendonly`, `a=recvonly`, `a=inactive` (RFC 3264).
    Direction(Direction),
    /// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605).
    Rtcp(Rtcp),
    /// `a=rtcp-mux` (RFC 5761).
    RtcpMux,
    /// Any other attribute, verbatim: `a=<name>` or `a=<name>:<value>`.
    Other { name: String, value: Option<String> },
}

impl Attribute {
    /// The attribute name as written on the wire (`rtpmap`, `sendonly`, ...).
    pub fn name(&self) -> &str {
        match self {
            Attribute::RtpMap(_) => "rtpmap",
            Attribute::Fmtp(_) => "fmtp",
            Attribute::Ptime(_) => "ptime",
            Attribute::MaxPtime(_) => "maxptime",
            Attribute::Direction(direction) => direction.as_str(),
            Attribute::Rtcp(_) => "rtcp",
            Attribute::RtcpMux => "rtcp-mux",
            Attribute::Other { name, .. } => name,
        }
    }

    /// Parses the text after `a=`. The error is the reason phrase.
    pub(super) fn parse(text: &str) -> Result<Self, &'static str> {
        let (name, value) = match text.split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (text, None),
        };
        if name.is_empty() {
            return Err("a= line has no attribute name");
        }
        let direction = match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        };
        match (name, value, direction) {
            (_, None, Some(direction)) => Ok(Attribute::Direction(direction)),
            ("rtcp-mux", None, _) => Ok(Attribute::RtcpMux),
            ("rtpmap", Some(value), _) => RtpMap::parse(value).map(Attribute::RtpMap),
            ("rtpmap", None, _) => Err("a=rtpmap has no value"),
            ("fmtp", Some(value), _) => Fmtp::parse(value).map(Attribute::Fmtp),
            ("fmtp", None, _) => Err("a=fmtp has no value"),
            ("ptime", Some(value), _) => {
                milliseconds(name, value, Attribute::Ptime, "a=ptime is not a number")
            }
            ("ptime", None, _) => Err("a=ptime has no value"),
            ("maxptime", Some(value), _) => milliseconds(
                name,
                value,
                Attribute::MaxPtime,
                "a=maxptime is not a number",
            ),
            ("maxptime", None, _) => Err("a=maxptime has no value"),
            ("rtcp", Some(value), _) => Rtcp::parse(value).map(Attribute::Rtcp),
            ("rtcp", None, _) => Err("a=rtcp has no value"),
            _ => Ok(Attribute::Other {
                name: name.to_owned(),
                value: value.map(str::to_owned),
            }),
        }
    }
}

/// `ptime`/`maxptime`: integer milliseconds become typed; a decimal value
/// (legal since RFC 8866) stays verbatim rather than failing the call.
fn milliseconds(
    name: &str,
    value: &str,
    typed: fn(u32) -> Attribute,
    problem: &'static str,
) -> Result<Attribute, &'static str> {
    let trimmed = value.trim_matches(' ');
    if let Some(ms) = number::<u32>(trimmed) {
        return Ok(typed(ms));
    }
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let decimal = match trimmed.split_once('.') {
        Some((whole, fraction)) => all_digits(whole) && all_digits(fraction),
        None => all_digits(trimmed),
    };
    if decimal {
        Ok(Attribute::Other {
            name: name.to_owned(),
            value: Some(value.to_owned()),
        })
    } else {
        Err(problem)
    }
}

impl fmt::Display for Attribute {
    /// The text after `a=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::RtpMap(rtpmap) => write!(f, "rtpmap:{rtpmap}"),
            Attribute::Fmtp(fmtp) => write!(f, "fmtp:{fmtp}"),
            Attribute::Ptime(ms) => write!(f, "ptime:{ms}"),
            Attribute::MaxPtime(ms) => write!(f, "maxptime:{ms}"),
            Attribute::Direction(direction) => f.write_str(direction.as_str()),
            Attribute::Rtcp(rtcp) => write!(f, "rtcp:{rtcp}"),
            Attribute::RtcpMux => f.write_str("rtcp-mux"),
            Attribute::Other { name, value: None } => f.write_str(name),
            Attribute::Other {
                name,
                value: Some(value),
            } => write!(f, "{name}:{value}"),
        }
    }
}

/// `a=rtpmap`: what an RTP payload type number means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// 0..=127.
    pub payload_type: u8,
    /// Encoding name as written (`PCMU`, `opus`, `telephone-event`).
    pub encoding: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channel count, when given.
    pub channels: Option<u16>,
}

impl RtpMap {
    /// The RFC 3551 §6 meaning of a static payload type, which applies when
    /// the SDP carries no `a=rtpmap` for it (`m=audio 4000 RTP/AVP 0 8`).
    pub fn for_static_payload_type(payload_type: u8) -> Option<RtpMap> {
        let (encoding, clock_rate, channels) = match payload_type {
            0 => ("PCMU", 8000, None),
            3 => ("GSM", 8000, None),
            4 => ("G723", 8000, None),
            5 => ("DVI4", 8000, None),
            6 => ("DVI4", 16000, None),
            7 => ("LPC", 8000, None),
            8 => ("PCMA", 8000, None),
            9 => ("G722", 8000, None),
            10 => ("L16", 44100, Some(2)),
            11 => ("L16", 44100, None),
            12 => ("QCELP", 8000, None),
            13 => ("CN", 8000, None),
            14 => ("MPA", 90000, None),
            15 => ("G728", 8000, None),
            16 => ("DVI4", 11025, None),
            17 => ("DVI4", 22050, None),
            18 => ("G729", 8000, None),
            25 => ("CelB", 90000, None),
            26 => ("JPEG", 90000, None),
            28 => ("nv", 90000, None),
            31 => ("H261", 90000, None),
            32 => ("MPV", 90000, None),
            33 => ("MP2T", 90000, None),
            34 => ("H263", 90000, None),
            _ => return None,
        };
        Some(RtpMap {
            payload_type,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
        })
    }

    fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim_matches(' ');
        let (payload_type, rest) = value
            .split_once(' ')
            .ok_or("a=rtpmap must be `<payload type> <encoding>/<clock rate>`")?;
        let payload_type = number::<u8>(payload_type)
            .filter(|pt| *pt <= 127)
            .ok_or("a=rtpmap payload type is not a number from 0 to 127")?;
        let mut parts = rest.trim_start_matches(' ').split('/');
        let encoding = parts
            .next()
            .filter(|name| !name.is_empty() && !name.contains(' '))
            .ok_or("a=rtpmap encoding name is missing or has a space")?;
        let clock_rate = parts
            .next()
            .and_then(number::<u32>)
            .ok_or("a=rtpmap clock rate is not a number")?;
        let channels = match parts.next() {
            None => None,
            Some(channels) => {
                Some(number::<u16>(channels).ok_or("a=rtpmap channel count is not a number")?)
            }
        };
        if parts.next().is_some() {
            return Err("a=rtpmap has too many `/` parts");
        }
        Ok(RtpMap {
            payload_type,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
        })
    }
}

impl fmt::Display for RtpMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        )?;
        match self.channels {
            Some(channels) => write!(f, "/{channels}"),
            None => Ok(()),
        }
    }
}

/// `a=fmtp`: format parameters, kept as one string (`0-16`,
/// `minptime=10;useinbandfec=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// The format this applies to; an RTP payload type for RTP media.
    pub format: String,
    /// Everything after the format and its separating space(s).
    pub params: String,
}

impl Fmtp {
    /// The format as an RTP payload type, when it is one.
    pub fn payload_type(&self) -> Option<u8> {
        number(&self.format)
    }

    fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim_start_matches(' ');
        let (format, params) = match value.split_once(' ') {
            Some((format, params)) => (format, params.trim_start_matches(' ')),
            None => (value, ""),
        };
        if format.is_empty() {
            return Err("a=fmtp has no format");
        }
        Ok(Fmtp {
            format: format.to_owned(),
            params: params.to_owned(),
        })
    }
}

impl fmt::Display for Fmtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format)?;
        if self.params.is_empty() {
            Ok(())
        } else {
            write!(f, " {}", self.params)
        }
    }
}

/// Media direction (RFC 3264 §5.1), from the sender's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The attribute name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `a=rtcp` (RFC 3605): where RTCP goes when it is not RTP port + 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    pub port: u16,
    /// The RTCP address, when it differs from the media's `c=`.
    pub connection: Option<Connection>,
}

impl Rtcp {
    fn parse(value: &str) -> Result<Self, &'static str> {
        let value = value.trim_matches(' ');
        let (port, address) = match value.split_once(' ') {
            Some((port, address)) => (port, Some(address)),
            None => (value, None),
        };
        let port = number::<u16>(port).ok_or("a=rtcp port is not a number")?;
        let connection = match address {
            None => None,
            Some(address) => Some(
                connection(address)
                    .map_err(|_| "a=rtcp address must be `<nettype> <addrtype> <address>`")?,
            ),
        };
        Ok(Rtcp { port, connection })
    }
}

impl fmt::Display for Rtcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.port)?;
        match &self.connection {
            Some(connection) => write!(f, " {connection}"),
            None => Ok(()),
        }
    }
}

/// The first direction attribute in a list, if any.
pub(super) fn direction_in(attributes: &[Attribute]) -> Option<Direction> {
    attributes.iter().find_map(|attribute| match attribute {
        Attribute::Direction(direction) => Some(*direction),
        _ => None,
    })
}

/// Leaves exactly one direction attribute, where the first one was (or at the
/// end when there was none), so the rest of the order is undisturbed.
pub(super) fn set_direction_in(attributes: &mut Vec<Attribute>, direction: Direction) {
    let at = attributes
        .iter()
        .position(|attribute| matches!(attribute, Attribute::Direction(_)))
        .unwrap_or(attributes.len());
    attributes.retain(|attribute| !matches!(attribute, Attribute::Direction(_)));
    attributes.insert(at.min(attributes.len()), Attribute::Direction(direction));
}

/// Drops every direction attribute.
pub(super) fn remove_direction_in(attributes: &mut Vec<Attribute>) {
    attributes.retain(|attribute| !matches!(attribute, Attribute::Direction(_)));
}

/// `a=rtcp-fb:<pt> ...` names a payload type in its first field; `*` means all.
pub(super) fn rtcp_fb_payload_type(value: &str) -> Option<u8> {
    fields(value).next().and_then(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str) -> Attribute {
        let attribute = Attribute::parse(text).expect("valid attribute");
        assert_eq!(attribute.to_string(), text);
        attribute
    }

    #[test]
    fn typed_attributes_round_trip() {
        assert_eq!(
            roundtrip("rtpmap:96 opus/48000/2"),
            Attribute::RtpMap(RtpMap {
                payload_type: 96,
                encoding: "opus".into(),
                clock_rate: 48000,
                channels: Some(2),
            })
        );
        assert_eq!(
            roundtrip("fmtp:101 0-16"),
            Attribute::Fmtp(Fmtp {
                format: "101".into(),
                params: "0-16".into()
            })
        );
        assert_eq!(roundtrip("ptime:20"), Attribute::Ptime(20));
        assert_eq!(roundtrip("maxptime:150"), Attribute::MaxPtime(150));
        assert_eq!(
            roundtrip("inactive"),
            Attribute::Direction(Direction::Inactive)
        );
        assert_eq!(roundtrip("rtcp-mux"), Attribute::RtcpMux);
        assert_eq!(
            roundtrip("rtcp:53020"),
            Attribute::Rtcp(Rtcp {
                port: 53020,
                connection: None
            })
        );
        assert!(matches!(
            roundtrip("rtcp:53020 IN IP4 126.16.64.4"),
            Attribute::Rtcp(Rtcp {
                port: 53020,
                connection: Some(_)
            })
        ));
    }

    #[test]
    fn unknown_and_odd_attributes_stay_verbatim() {
        for text in [
            "ice-ufrag:F7gI",
            "candidate:1 1 UDP 2130706431 10.0.1.1 8998 typ host",
            "sendrecv:odd",
            "rtcp-mux:odd",
            "ptime:22.5",
            "x-empty:",
        ] {
            assert!(matches!(roundtrip(text), Attribute::Other { .. }), "{text}");
        }
    }

    #[test]
    fn malformed_typed_attributes_are_rejected() {
        for text in [
            "rtpmap:96",
            "rtpmap:128 foo/8000",
            "rtpmap:x PCMU/8000",
            "rtpmap:0 PCMU",
            "rtpmap:0 PCMU/eight",
            "rtpmap:0 /8000",
            "rtpmap:0 PCMU/8000/1/2",
            "rtpmap:0 PCMU/8000/x",
            "rtpmap",
            "fmtp:",
            "fmtp:   ",
            "ptime:fast",
            "rtcp:port",
            "rtcp:5000 IN IP4",
            ":value",
        ] {
            assert!(Attribute::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn lenient_spacing_is_normalised() {
        let attribute = Attribute::parse("rtpmap:0  PCMU/8000 ").expect("lenient");
        assert_eq!(attribute.to_string(), "rtpmap:0 PCMU/8000");
        let attribute = Attribute::parse("fmtp:101   0-15").expect("lenient");
        assert_eq!(attribute.to_string(), "fmtp:101 0-15");
    }

    #[test]
    fn static_payload_types() {
        let pcma = RtpMap::for_static_payload_type(8).expect("PCMA");
        assert_eq!((pcma.encoding.as_str(), pcma.clock_rate), ("PCMA", 8000));
        assert!(RtpMap::for_static_payload_type(96).is_none());
    }
}
