//! The relay's side of an application call (an IVR holding the caller):
//! prompts played to side A as RTP, one 20 ms packet per tick, and the
//! caller's digits reported: its RFC 4733 telephone-events, or, when the
//! call agreed none, the DTMF tones heard in its G.711 audio
//! (`media::inband`, Goertzel).
//!
//! While an [`App`] is set the relay drops what either party sends
//! instead of forwarding it (side B may send early media while it rings;
//! the caller's audio has nobody to go to) and feeds side A's
//! telephone-events to the receiver. A packet is the RTP header and a
//! 160-byte slice of the prompt, already encoded: no allocation, no lock.

use std::sync::Arc;

use media::dtmf::{EventReceiver, event_key};
use media::g711::Law;
use media::inband::DtmfDetector;
use media::rtp::RtpHeader;
use pbx::apps::{G711, Playback};

use super::prompts::Audio;

/// Samples (bytes of G.711) per 20 ms packet.
const FRAME: usize = 160;
/// How often a packet is played.
pub const PACKET_TIME: std::time::Duration = std::time::Duration::from_millis(20);

/// Called with each digit the caller pressed.
pub type DigitSink = Box<dyn FnMut(char) + Send>;

/// What plays, and where it is.
pub struct Player {
    items: Vec<Arc<Audio>>,
    repeat: bool,
    law: G711,
    payload_type: u8,
    item: usize,
    offset: usize,
}

impl Player {
    /// `items` resolved from a [`Playback`] (missing prompts left out).
    pub fn new(items: Vec<Arc<Audio>>, playback: &Playback) -> Player {
        Player {
            items,
            repeat: playback.repeat,
            law: playback.law,
            payload_type: playback.payload_type,
            item: 0,
            offset: 0,
        }
    }

    /// The next 20 ms of audio, `None` once everything played.
    fn next_frame(&mut self) -> Option<&[u8]> {
        loop {
            let audio = self.items.get(self.item)?;
            let data = audio.encoded(self.law);
            if self.offset + FRAME <= data.len() {
                let at = self.offset;
                self.offset += FRAME;
                return Some(&self.items[self.item].encoded(self.law)[at..at + FRAME]);
            }
            self.offset = 0;
            if self.item + 1 < self.items.len() {
                self.item += 1;
            } else if self.repeat && !data.is_empty() {
                // The last prompt loops.
            } else {
                self.items.clear();
                return None;
            }
        }
    }
}

/// The relay's application state for one call.
pub struct App {
    player: Option<Player>,
    events_pt: Option<u8>,
    /// The caller's audio payload type and law (from the first play).
    audio: Option<(u8, G711)>,
    receiver: EventReceiver,
    /// In-band digits, used only while no telephone-event was agreed.
    tones: DtmfDetector,
    on_digit: DigitSink,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    /// The next packet starts a talkspurt (RTP marker).
    marker: bool,
}

impl App {
    pub fn new(on_digit: DigitSink, ssrc: u32) -> App {
        App {
            player: None,
            events_pt: None,
            audio: None,
            receiver: EventReceiver::new(),
            tones: DtmfDetector::new(),
            on_digit,
            ssrc,
            sequence: 0,
            timestamp: 0,
            marker: true,
        }
    }

    /// Plays `player` from its start (what played before stops).
    pub fn play(&mut self, player: Player, events_pt: Option<u8>) {
        self.audio = Some((player.payload_type, player.law));
        self.player = Some(player);
        self.events_pt = events_pt.or(self.events_pt);
        self.marker = true;
    }

    /// Stops playing (a digit barged in).
    pub fn quiet(&mut self) {
        self.player = None;
    }

    pub fn is_playing(&self) -> bool {
        self.player.is_some()
    }

    /// Writes the next packet into `buf`; its length, or `None` when
    /// nothing plays. The RTP clock runs on in silence too, so the caller
    /// sees one continuous stream.
    pub fn next_packet(&mut self, buf: &mut [u8]) -> Option<usize> {
        let player = self.player.as_mut()?;
        let payload_type = player.payload_type;
        let Some(frame) = player.next_frame() else {
            self.player = None;
            return None;
        };
        let header = RtpHeader {
            marker: self.marker,
            payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        let n = header.write(frame, buf)?;
        self.marker = false;
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        Some(n)
    }

    /// An RTP packet from the caller: a telephone-event is fed to the
    /// receiver and each completed digit reported once; without
    /// telephone-events, its G.711 audio goes to the tone detector.
    pub fn on_caller_packet(&mut self, payload_type: u8, timestamp: u32, payload: &[u8]) {
        if self.events_pt.is_none() {
            if let Some((pt, law)) = self.audio
                && pt == payload_type
            {
                let law = match law {
                    G711::Pcmu => Law::Pcmu,
                    G711::Pcma => Law::Pcma,
                };
                self.tones.push_g711(law, payload, &mut self.on_digit);
            }
            return;
        }
        if Some(payload_type) != self.events_pt {
            return;
        }
        let Ok(digits) = self.receiver.on_packet(timestamp, payload) else {
            return;
        };
        for d in digits.into_iter().flatten() {
            if let Some(key) = event_key(d.event) {
                (self.on_digit)(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use media::dtmf::{EventSender, key_event};
    use media::g711::Law;
    use media::rtp::RtpPacket;
    use media::tone::dominant;
    use pbx::{BuiltinPrompt, PromptRef};

    use super::super::prompts::builtin;
    use super::*;

    fn playback(repeat: bool) -> Playback {
        Playback {
            prompts: vec![PromptRef::Builtin(BuiltinPrompt::Invalid)],
            repeat,
            payload_type: 8,
            law: G711::Pcma,
            events: Some(101),
        }
    }

    #[test]
    fn plays_the_prompt_as_rtp_then_stops_or_loops() {
        let digits = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&digits);
        let mut app = App::new(Box::new(move |d| sink.lock().unwrap().push(d)), 7);
        let audio = builtin(BuiltinPrompt::Invalid);
        app.play(Player::new(vec![audio], &playback(false)), Some(101));
        let mut buf = [0u8; 400];
        let mut pcm = Vec::new();
        let mut seqs = Vec::new();
        while let Some(n) = app.next_packet(&mut buf) {
            let p = RtpPacket::parse(&buf[..n]).unwrap();
            assert_eq!((p.header.payload_type, p.payload.len()), (8, 160));
            seqs.push((p.header.sequence, p.header.timestamp, p.header.marker));
            let mut out = [0i16; 160];
            Law::Pcma.decode_into(p.payload, &mut out);
            pcm.extend_from_slice(&out);
        }
        // 0.8 s: 40 packets, in order, the marker on the first.
        assert_eq!(seqs.len(), 40);
        assert_eq!(seqs[0], (0, 0, true));
        assert_eq!(seqs[39], (39, 39 * 160, false));
        assert_eq!(
            dominant(&pcm[..800], &[600.0, 1100.0], 8000, 0.7),
            Some(1100.0)
        );
        assert!(!app.is_playing());
        // Looped: it goes on.
        app.play(
            Player::new(vec![builtin(BuiltinPrompt::Invalid)], &playback(true)),
            None,
        );
        for _ in 0..100 {
            assert!(app.next_packet(&mut buf).is_some());
        }
        app.quiet();
        assert!(app.next_packet(&mut buf).is_none());

        // Telephone-events: one digit per key press, End retransmissions
        // ignored, other payload types not events.
        for (ts, key) in [(1000u32, '5'), (3000, '#')] {
            for (_, payload) in EventSender::new(key_event(key).unwrap(), 10, 800, 160) {
                app.on_caller_packet(101, ts, &payload);
            }
        }
        app.on_caller_packet(0, 5000, &[0u8; 160]);
        assert_eq!(*digits.lock().unwrap(), vec!['5', '#']);
    }

    /// A caller that agreed no telephone-event: its DTMF tones, in its
    /// G.711 audio, are its digits; with telephone-events agreed the
    /// tones are only audio.
    #[test]
    fn without_telephone_events_tones_in_the_audio_are_digits() {
        let run = |events: Option<u8>| {
            let digits = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&digits);
            let mut app = App::new(Box::new(move |d| sink.lock().unwrap().push(d)), 7);
            let mut pb = playback(false);
            pb.events = events;
            app.play(
                Player::new(vec![builtin(BuiltinPrompt::Invalid)], &pb),
                events,
            );
            let mut pcm = vec![0i16; 8 * 400];
            media::tone::Tone::dtmf('7', 0.5, 8000)
                .unwrap()
                .fill(&mut pcm[8 * 100..8 * 220]);
            let mut alaw = vec![0u8; pcm.len()];
            Law::Pcma.encode_into(&pcm, &mut alaw);
            for (i, packet) in alaw.chunks(160).enumerate() {
                app.on_caller_packet(8, i as u32 * 160, packet);
            }
            digits.lock().unwrap().clone()
        };
        assert_eq!(run(None), vec!['7']);
        assert_eq!(run(Some(101)), Vec::<char>::new());
    }

    /// The relay task itself: plays to the caller's latched address,
    /// drops side B while holding the caller, reports the caller's digits,
    /// and relays again after `Bridge`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_relay_plays_hears_digits_and_bridges() {
        use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
        use std::time::Duration;

        use super::super::ports::{PortPool, test_range};
        use super::super::relay::{AppCommand, Command, spawn};
        use pbx::media::{Party, Side};

        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (first, last) = test_range(9);
        let pool = PortPool::new(lo, first, last);
        let pairs = [pool.allocate().unwrap(), pool.allocate().unwrap()];
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel::<super::super::relay::TimedOut<u8>>();
        let h = spawn(1u8, pairs, Duration::from_secs(60), None, tx).unwrap();
        let a = UdpSocket::bind((lo, 0)).unwrap();
        let b = UdpSocket::bind((lo, 0)).unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
        }
        let party = |s: &UdpSocket| Party {
            rtp: Some(s.local_addr().unwrap()),
            rtcp: None,
            behind_nat: false,
            codecs: vec![(0, "PCMU".into()), (101, "telephone-event".into())],
        };
        h.send(Command::Party(Side::A, party(&a)));
        h.send(Command::Party(Side::B, party(&b)));
        let (digit_tx, mut digit_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut pb = playback(false);
        (pb.payload_type, pb.law) = (0, G711::Pcmu);
        h.send(Command::App(AppCommand::Play {
            player: Player::new(vec![builtin(BuiltinPrompt::Invalid)], &pb),
            events: Some(101),
            on_digit: Box::new(move |d| {
                let _ = digit_tx.send(d);
            }),
        }));
        let relay_a = SocketAddr::new(lo, h.port(Side::A));
        let relay_b = SocketAddr::new(lo, h.port(Side::B));
        // B speaks while the PBX holds the caller: A must not hear it.
        let mut out = [0u8; 200];
        let hdr = |seq: u16, pt: u8| RtpHeader {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 9,
        };
        let n = hdr(1, 0).write(&[0xffu8; 160], &mut out).unwrap();
        b.send_to(&out[..n], relay_b).unwrap();
        // The caller presses 7 (RFC 4733).
        for (i, (_, payload)) in EventSender::new(key_event('7').unwrap(), 10, 800, 160).enumerate()
        {
            let n = hdr(100 + i as u16, 101).write(&payload, &mut out).unwrap();
            a.send_to(&out[..n], relay_a).unwrap();
        }
        let got = tokio::time::timeout(Duration::from_secs(5), digit_rx.recv())
            .await
            .unwrap();
        assert_eq!(got, Some('7'));
        // What A hears: the invalid prompt (1100 Hz), from the relay's A port.
        let a2 = a.try_clone().unwrap();
        let heard = tokio::task::spawn_blocking(move || {
            let mut pcm = Vec::new();
            let mut buf = [0u8; 400];
            while let Ok((n, from)) = a2.recv_from(&mut buf) {
                assert_eq!(from, relay_a);
                let p = RtpPacket::parse(&buf[..n]).unwrap();
                assert_eq!(p.header.payload_type, 0, "only the prompt reaches A");
                let mut dec = [0i16; 160];
                Law::Pcmu.decode_into(p.payload, &mut dec);
                pcm.extend_from_slice(&dec);
            }
            pcm
        })
        .await
        .unwrap();
        assert_eq!(heard.len(), 40 * 160, "0.8 s of prompt, nothing of B");
        assert_eq!(
            dominant(&heard[..800], &[600.0, 1100.0], 8000, 0.7),
            Some(1100.0)
        );
        // Bridged: B reaches A again.
        h.send(Command::App(AppCommand::Bridge));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = hdr(2, 0).write(&[0xffu8; 160], &mut out).unwrap();
        b.send_to(&out[..n], relay_b).unwrap();
        let mut buf = [0u8; 400];
        let (n, _) = a.recv_from(&mut buf).unwrap();
        assert_eq!(RtpPacket::parse(&buf[..n]).unwrap().header.ssrc, 9);
        let _ = h.stop().await;
    }
}
