//! RFC 4733 telephone-events: DTMF digits carried as RTP payloads.
//!
//! One event is sent as several packets with the same RTP timestamp (the
//! event's start) and a growing duration; the last one has the End bit and
//! is sent three times (RFC 4733 §2.5.1.4). [`EventReceiver`] turns such a
//! stream into one [`Digit`] per event, whatever is lost or repeated;
//! [`EventSender`] writes the packets for a digit.

use crate::ParseError;

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// 0–9, 10 = `*`, 11 = `#`, 12–15 = A–D, others per RFC 4734.
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0, 0 to 63.
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn parse(payload: &[u8]) -> Result<Self, ParseError> {
        let [event, flags, d0, d1] = payload else {
            return Err(ParseError::TelephoneEvent(payload.len()));
        };
        Ok(TelephoneEvent {
            event: *event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([*d0, *d1]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }

    /// The key as a character, for the DTMF events 0–15.
    pub fn key(self) -> Option<char> {
        event_key(self.event)
    }
}

/// The key of a DTMF event code.
pub fn event_key(event: u8) -> Option<char> {
    b"0123456789*#ABCD"
        .get(usize::from(event))
        .map(|b| char::from(*b))
}

/// The event code of a DTMF key.
pub fn key_event(key: char) -> Option<u8> {
    b"0123456789*#ABCD"
        .iter()
        .position(|b| char::from(*b) == key.to_ascii_uppercase())
        .and_then(|p| u8::try_from(p).ok())
}

/// A completed (or abandoned) digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    pub event: u8,
    /// The event's RTP timestamp (its start).
    pub timestamp: u32,
    /// Its final duration in timestamp units.
    pub duration: u16,
    /// False when the event was cut short by a newer one before its End
    /// packet arrived (all three End packets lost).
    pub ended: bool,
}

/// Reassembles telephone-events into digits; see the module doc.
#[derive(Debug, Clone, Default)]
pub struct EventReceiver {
    /// The event in progress: (timestamp, event, duration).
    current: Option<(u32, u8, u16)>,
    /// The last event reported, so its repeated End packets are ignored.
    last_ended: Option<u32>,
}

impl EventReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one packet's RTP timestamp and payload; returns up to two
    /// digits (an abandoned one and a completed one). Malformed payloads
    /// are an error and change nothing.
    pub fn on_packet(
        &mut self,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<[Option<Digit>; 2], ParseError> {
        let ev = TelephoneEvent::parse(payload)?;
        let mut out = [None, None];
        if self.last_ended == Some(timestamp) {
            // A retransmitted End (or a late update) of a reported event.
            return Ok(out);
        }
        if let Some((ts, event, duration)) = self.current
            && ts != timestamp
        {
            // A new event started before the old one's End arrived.
            out[0] = Some(Digit {
                event,
                timestamp: ts,
                duration,
                ended: false,
            });
            self.current = None;
        }
        let duration = match self.current {
            Some((_, _, d)) => d.max(ev.duration),
            None => ev.duration,
        };
        if ev.end {
            out[1] = Some(Digit {
                event: ev.event,
                timestamp,
                duration,
                ended: true,
            });
            self.current = None;
            self.last_ended = Some(timestamp);
        } else {
            self.current = Some((timestamp, ev.event, duration));
        }
        Ok(out)
    }
}

/// The packets of one digit, in order: each item is the RTP marker bit
/// and the payload, all to be sent with the same RTP timestamp, one every
/// `packet_ticks` (160 at 8 kHz for 20 ms).
#[derive(Debug, Clone)]
pub struct EventSender {
    event: u8,
    volume: u8,
    total: u16,
    step: u16,
    sent: u16,
    end_sent: u8,
}

impl EventSender {
    /// A digit lasting `duration_ticks`, updated every `packet_ticks`.
    pub fn new(event: u8, volume: u8, duration_ticks: u16, packet_ticks: u16) -> Self {
        EventSender {
            event,
            volume: volume.min(63),
            total: duration_ticks.max(1),
            step: packet_ticks.max(1),
            sent: 0,
            end_sent: 0,
        }
    }
}

impl Iterator for EventSender {
    type Item = (bool, [u8; 4]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.end_sent == 3 {
            return None;
        }
        let first = self.sent == 0;
        self.sent = self.sent.saturating_add(self.step).min(self.total);
        let end = self.sent == self.total;
        if end {
            self.end_sent += 1;
        }
        let ev = TelephoneEvent {
            event: self.event,
            end,
            volume: self.volume,
            duration: self.sent,
        };
        Some((first, ev.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_write() {
        let ev = TelephoneEvent::parse(&[11, 0x8a, 0x03, 0x20]).unwrap();
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        assert_eq!(ev.key(), Some('#'));
        assert_eq!(ev.to_bytes(), [11, 0x8a, 0x03, 0x20]);
        // The reserved bit is ignored on receipt.
        assert!(!TelephoneEvent::parse(&[1, 0x4a, 0, 0]).unwrap().end);
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(ParseError::TelephoneEvent(3))
        );
        assert_eq!(key_event('d'), Some(15));
        assert_eq!(key_event('x'), None);
        assert_eq!(event_key(16), None);
    }

    #[test]
    fn sender_then_receiver_gives_one_digit() {
        let packets: Vec<_> = EventSender::new(5, 10, 800, 160).collect();
        // 160, 320, 480, 640, then 800 with End three times.
        assert_eq!(packets.len(), 7);
        assert!(packets[0].0 && !packets[1].0);
        assert_eq!(
            packets[4..]
                .iter()
                .filter(|(_, p)| p[1] & 0x80 != 0)
                .count(),
            3
        );
        let mut rx = EventReceiver::new();
        let digits: Vec<Digit> = packets
            .iter()
            .flat_map(|(_, p)| rx.on_packet(1000, p).unwrap())
            .flatten()
            .collect();
        assert_eq!(
            digits,
            [Digit {
                event: 5,
                timestamp: 1000,
                duration: 800,
                ended: true
            }]
        );
    }

    #[test]
    fn lost_end_packets_and_lost_start() {
        let mut rx = EventReceiver::new();
        // Digit 1: only updates, all End packets lost.
        assert_eq!(rx.on_packet(0, &[1, 10, 0, 160]).unwrap(), [None, None]);
        assert_eq!(rx.on_packet(0, &[1, 10, 1, 64]).unwrap(), [None, None]);
        // Digit 2: only its End arrives; digit 1 is reported abandoned first.
        let out = rx.on_packet(2000, &[2, 0x8a, 1, 64]).unwrap();
        assert_eq!(
            out,
            [
                Some(Digit {
                    event: 1,
                    timestamp: 0,
                    duration: 320,
                    ended: false
                }),
                Some(Digit {
                    event: 2,
                    timestamp: 2000,
                    duration: 320,
                    ended: true
                })
            ]
        );
        // Its retransmissions are ignored; garbage is an error and harmless.
        assert_eq!(rx.on_packet(2000, &[2, 0x8a, 1, 64]).unwrap(), [None, None]);
        assert!(rx.on_packet(2000, &[]).is_err());
        assert_eq!(rx.on_packet(2000, &[2, 0x8a, 1, 64]).unwrap(), [None, None]);
    }
}
