//! Text to [`SessionDescription`]: line splitting, the per-section state
//! machine and the field parsers shared with `attribute`.

use std::str::FromStr;

use super::{
    Attribute, Bandwidth, Connection, MediaDescription, Origin, RawLine, SdpError,
    SessionDescription, Timing,
};

/// Most lines accepted in one body. Far above any real offer (a WebRTC offer
/// with audio, video and a data channel is ~150 lines); bounds the work one
/// message can cause.
pub const MAX_LINES: usize = 4096;

/// Most `m=` sections accepted in one body.
pub const MAX_MEDIA: usize = 64;

pub(super) fn parse(input: &[u8]) -> Result<SessionDescription, SdpError> {
    let text = std::str::from_utf8(input).map_err(|error| SdpError::NotUtf8 {
        line: 1 + input
            .iter()
            .take(error.valid_up_to())
            .filter(|b| **b == b'\n')
            .count(),
    })?;
    // A trailing CRLF (or several: some stacks pad the body) ends the last
    // line; it does not start an empty one.
    let text = text.trim_end_matches(['\r', '\n']);
    if text.is_empty() {
        return Err(SdpError::Empty);
    }
    let mut builder = Builder::default();
    let mut lines = 0;
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        if number > MAX_LINES {
            return Err(SdpError::TooManyLines { max: MAX_LINES });
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        let invalid = |problem| SdpError::Invalid {
            line: number,
            problem,
        };
        if line.is_empty() {
            return Err(invalid("empty line"));
        }
        if line.contains(['\r', '\0']) {
            return Err(invalid("CR or NUL inside a line"));
        }
        let kind = match line.as_bytes() {
            [kind @ b'a'..=b'z', b'=', ..] => char::from(*kind),
            _ => return Err(SdpError::NotALine { line: number }),
        };
        // The first two bytes are ASCII, so byte 2 is a char boundary.
        let value = line.get(2..).unwrap_or_default();
        builder.line(number, kind, value)?;
        lines = number;
    }
    builder.finish(lines)
}

/// The description under construction. Lines may come in any order within a
/// section; serialization writes them back in RFC 8866 order.
#[derive(Default)]
struct Builder {
    version_seen: bool,
    origin: Option<Origin>,
    name: Option<String>,
    information: Option<String>,
    uri: Option<String>,
    emails: Vec<String>,
    phones: Vec<String>,
    connection: Option<Connection>,
    bandwidths: Vec<Bandwidth>,
    timings: Vec<Timing>,
    key: Option<String>,
    attributes: Vec<Attribute>,
    other_lines: Vec<RawLine>,
    media: Vec<MediaDescription>,
}

impl Builder {
    fn line(&mut self, number: usize, kind: char, value: &str) -> Result<(), SdpError> {
        let invalid = |problem| SdpError::Invalid {
            line: number,
            problem,
        };
        if !self.version_seen {
            if kind != 'v' {
                return Err(invalid("SDP must start with v=0"));
            }
            if value.trim_matches(' ') != "0" {
                return Err(invalid("unsupported SDP version, only v=0 exists"));
            }
            self.version_seen = true;
            return Ok(());
        }
        if kind == 'm' {
            if self.media.len() >= MAX_MEDIA {
                return Err(SdpError::TooManyMedia {
                    line: number,
                    max: MAX_MEDIA,
                });
            }
            self.media.push(media(value).map_err(invalid)?);
            return Ok(());
        }
        if let Some(media) = self.media.last_mut() {
            return media_line(media, number, kind, value);
        }
        match kind {
            'v' => Err(SdpError::Duplicate { line: number, kind }),
            'o' => once(
                &mut self.origin,
                origin(value).map_err(invalid)?,
                number,
                kind,
            ),
            's' => once(&mut self.name, value.to_owned(), number, kind),
            'i' => once(&mut self.information, value.to_owned(), number, kind),
            'u' => once(&mut self.uri, value.to_owned(), number, kind),
            'e' => {
                self.emails.push(value.to_owned());
                Ok(())
            }
            'p' => {
                self.phones.push(value.to_owned());
                Ok(())
            }
            'c' => once(
                &mut self.connection,
                connection(value).map_err(invalid)?,
                number,
                kind,
            ),
            'b' => {
                self.bandwidths.push(bandwidth(value).map_err(invalid)?);
                Ok(())
            }
            't' => {
                self.timings.push(timing(value).map_err(invalid)?);
                Ok(())
            }
            'r' | 'z' => {
                let timing = self
                    .timings
                    .last_mut()
                    .ok_or_else(|| invalid("r= or z= line before any t= line"))?;
                timing.adjustments.push(RawLine {
                    kind,
                    value: value.to_owned(),
                });
                Ok(())
            }
            'k' => once(&mut self.key, value.to_owned(), number, kind),
            'a' => {
                self.attributes
                    .push(Attribute::parse(value).map_err(invalid)?);
                Ok(())
            }
            _ => {
                self.other_lines.push(RawLine {
                    kind,
                    value: value.to_owned(),
                });
                Ok(())
            }
        }
    }

    fn finish(self, lines: usize) -> Result<SessionDescription, SdpError> {
        // The repairs below add lines; what we write must parse again.
        let added = usize::from(self.name.is_none()) + usize::from(self.timings.is_empty());
        if lines + added > MAX_LINES {
            return Err(SdpError::TooManyLines { max: MAX_LINES });
        }
        let mut timings = self.timings;
        if timings.is_empty() {
            // Some phones omit t=; what we send on is always valid.
            timings.push(Timing {
                start: 0,
                stop: 0,
                adjustments: Vec::new(),
            });
        }
        Ok(SessionDescription {
            origin: self.origin.ok_or(SdpError::MissingOrigin)?,
            name: self.name.unwrap_or_else(|| "-".to_owned()),
            information: self.information,
            uri: self.uri,
            emails: self.emails,
            phones: self.phones,
            connection: self.connection,
            bandwidths: self.bandwidths,
            timings,
            key: self.key,
            attributes: self.attributes,
            other_lines: self.other_lines,
            media: self.media,
        })
    }
}

fn media_line(
    media: &mut MediaDescription,
    number: usize,
    kind: char,
    value: &str,
) -> Result<(), SdpError> {
    let invalid = |problem| SdpError::Invalid {
        line: number,
        problem,
    };
    match kind {
        'i' => once(&mut media.information, value.to_owned(), number, kind),
        'c' => {
            media.connections.push(connection(value).map_err(invalid)?);
            Ok(())
        }
        'b' => {
            media.bandwidths.push(bandwidth(value).map_err(invalid)?);
            Ok(())
        }
        'k' => once(&mut media.key, value.to_owned(), number, kind),
        'a' => {
            media
                .attributes
                .push(Attribute::parse(value).map_err(invalid)?);
            Ok(())
        }
        'v' | 'o' | 's' | 'u' | 'e' | 'p' | 't' | 'r' | 'z' => {
            Err(SdpError::SessionLineInMedia { line: number, kind })
        }
        _ => {
            media.other_lines.push(RawLine {
                kind,
                value: value.to_owned(),
            });
            Ok(())
        }
    }
}

fn once<T>(slot: &mut Option<T>, value: T, line: usize, kind: char) -> Result<(), SdpError> {
    if slot.is_some() {
        return Err(SdpError::Duplicate { line, kind });
    }
    *slot = Some(value);
    Ok(())
}

/// Space-separated fields; runs of spaces count as one separator.
pub(super) fn fields(value: &str) -> impl Iterator<Item = &str> {
    value.split(' ').filter(|field| !field.is_empty())
}

/// A decimal number made of ASCII digits only (`str::parse` would also
/// take a leading `+`).
pub(super) fn number<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn origin(value: &str) -> Result<Origin, &'static str> {
    let mut fields = fields(value);
    let (
        Some(username),
        Some(session_id),
        Some(session_version),
        Some(net_type),
        Some(addr_type),
        Some(address),
        None,
    ) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    )
    else {
        return Err(
            "o= must be `<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`",
        );
    };
    Ok(Origin {
        username: username.to_owned(),
        session_id: number(session_id).ok_or("o= sess-id is not a number")?,
        session_version: number(session_version).ok_or("o= sess-version is not a number")?,
        net_type: net_type.to_owned(),
        addr_type: addr_type.to_owned(),
        address: address.to_owned(),
    })
}

pub(super) fn connection(value: &str) -> Result<Connection, &'static str> {
    let mut fields = fields(value);
    let (Some(net_type), Some(addr_type), Some(address), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err("c= must be `<nettype> <addrtype> <address>`");
    };
    Ok(Connection {
        net_type: net_type.to_owned(),
        addr_type: addr_type.to_owned(),
        address: address.to_owned(),
    })
}

fn bandwidth(value: &str) -> Result<Bandwidth, &'static str> {
    let (bw_type, bandwidth) = value
        .split_once(':')
        .filter(|(bw_type, _)| !bw_type.is_empty())
        .ok_or("b= must be `<bwtype>:<bandwidth>`")?;
    Ok(Bandwidth {
        bw_type: bw_type.to_owned(),
        bandwidth: number(bandwidth.trim_matches(' ')).ok_or("b= bandwidth is not a number")?,
    })
}

fn timing(value: &str) -> Result<Timing, &'static str> {
    let mut fields = fields(value);
    let (Some(start), Some(stop), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err("t= must be `<start-time> <stop-time>`");
    };
    Ok(Timing {
        start: number(start).ok_or("t= start time is not a number")?,
        stop: number(stop).ok_or("t= stop time is not a number")?,
        adjustments: Vec::new(),
    })
}

fn media(value: &str) -> Result<MediaDescription, &'static str> {
    let mut fields = fields(value);
    let (Some(media), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err("m= must be `<media> <port> <proto> <fmt> ...`");
    };
    let (port, port_count) = match port.split_once('/') {
        Some((port, count)) => (
            port,
            Some(number(count).ok_or("m= port count is not a number")?),
        ),
        None => (port, None),
    };
    Ok(MediaDescription {
        media: media.to_owned(),
        port: number(port).ok_or("m= port is not a number")?,
        port_count,
        proto: proto.to_owned(),
        formats: fields.map(str::to_owned).collect(),
        information: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
        other_lines: Vec::new(),
    })
}
