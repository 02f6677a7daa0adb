//! One call's RTP relay: a task owning both parties' port pairs.
//!
//! Party A (the caller) is given side A's port in the SDP the PBX sends it,
//! party B (the callee) side B's. What arrives on side A is A's audio: it is
//! measured (`media::stream`), recorded when asked, and sent to B from side
//! B's socket, so each party only ever sees the port it was given.
//!
//! # Latching (symmetric RTP)
//!
//! Each side learns where its party really sends from:
//!
//! - a party whose SDP address is its signalling source address is
//!   trusted to send from that IP: packets from any other IP are dropped,
//!   the first one from that IP (any port: phones often send from a port
//!   other than the one they listen on) is latched;
//! - a party behind NAT (signalling source IP differs from its SDP address)
//!   cannot know its public address, so its first packet from anywhere is
//!   latched;
//! - once latched, packets from elsewhere are dropped, unless the latched
//!   source has been silent for [`RELATCH_AFTER`] and the newcomer passes
//!   the rule above (NAT rebinding, a phone changing ports);
//! - until a party is latched, what is meant for it goes to its SDP
//!   address; afterwards, to the latched source (RTP and RTCP separately).
//!
//! A new SDP from a party (re-INVITE) clears its latch. An SDP naming
//! another address than the side's party had is another party taking the
//! side (a transfer or pickup re-bridged the call): the old party's
//! latched sources are refused from then on, so its packets (it may stream
//! until it hangs up) cannot latch again in place of the newcomer's.
//!
//! # Timeout
//!
//! After [`Command::Answered`], a call where no party sent RTP for
//! `timeout` ends: the task stops and reports [`EndCause::Timeout`] on its
//! event queue, and the call is hung up with a CDR. Before the answer there
//! is no timeout (ringing has its own).
//!
//! # Hot path
//!
//! One receive buffer on the stack, header parsed in place, one `send_to`;
//! no allocation (the recording timeline grows to its hold window once),
//! no lock. Each readiness wake-up drains a socket until it would block.

use std::fs::File;
use std::io::{self, BufWriter};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use media::g711::Law;
use media::quality;
use media::recorder::{Channel, Timeline};
use media::rtp::{RtpPacket, is_rtcp};
use media::stream::ReceiveStats;
use media::wav::WavWriter;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::ports::{PortLease, PortPair};

/// A latched source silent this long may be replaced by a new one.
pub const RELATCH_AFTER: Duration = Duration::from_secs(2);
/// How often the task looks at the clock when idle (timeout, recording).
const TICK: Duration = Duration::from_millis(200);
/// Audio kept back in the recording timeline for late packets.
const RECORDING_HOLD_MS: u64 = 200;

pub use pbx::media::{Party, Side};

/// Where a call recording goes.
#[derive(Debug, Clone)]
pub struct RecordingTarget {
    pub path: PathBuf,
}

/// Commands to a running relay.
#[derive(Debug)]
pub enum Command {
    /// A party's SDP (offer, answer or re-INVITE).
    Party(Side, Party),
    /// The call was answered: arm the RTP timeout.
    Answered,
    /// The call ended: stop and report.
    Stop(oneshot::Sender<Report>),
    /// The PBX holds the caller (an IVR): see `media/player.rs`.
    App(AppCommand),
}

/// What the PBX does with a caller it holds.
pub enum AppCommand {
    /// Play to side A; digits go to `on_digit` (kept from the first Play).
    Play {
        player: super::player::Player,
        events: Option<u8>,
        on_digit: super::player::DigitSink,
    },
    /// Stop playing.
    Quiet,
    /// Relay both ways again.
    Bridge,
}

impl std::fmt::Debug for AppCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AppCommand::Play { .. } => "Play",
            AppCommand::Quiet => "Quiet",
            AppCommand::Bridge => "Bridge",
        })
    }
}

/// Why a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    Stopped,
    Timeout,
}

/// What one party sent, as the relay saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamReport {
    pub codec: Option<String>,
    pub packets: u64,
    pub lost: u64,
    pub jitter_ms: f64,
    pub mos: f64,
    /// Datagrams dropped because they came from an unexpected source.
    pub rejected: u64,
    pub latched: Option<SocketAddr>,
}

/// How a recording went.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingReport {
    pub path: PathBuf,
    pub duration_secs: f64,
    /// Why the recording is missing or cut short (disk full, unwritable).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub end: EndCause,
    pub streams: [StreamReport; 2],
    pub recording: Option<RecordingReport>,
}

/// Sent on the event queue when a relay ends by itself.
#[derive(Debug)]
pub struct TimedOut<K> {
    pub key: K,
    pub report: Report,
}

/// The handle the signalling side keeps.
#[derive(Debug)]
pub struct RelayHandle {
    commands: mpsc::UnboundedSender<Command>,
    #[cfg_attr(not(test), allow(dead_code))]
    ports: [u16; 2],
}

impl RelayHandle {
    /// The RTP port of a side (tests and the benchmark; the engine has
    /// the ports from its reservation).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn port(&self, side: Side) -> u16 {
        self.ports[side as usize]
    }

    pub fn send(&self, command: Command) {
        // A relay that ended (timed out) has already reported.
        let _ = self.commands.send(command);
    }

    /// Stops the relay and waits for its report; `None` when it had
    /// already ended by itself (its report went to the event queue).
    pub async fn stop(self) -> Option<Report> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Stop(tx)).ok()?;
        rx.await.ok()
    }
}

/// Starts a relay over two port pairs. `on_timeout` receives the report
/// when the relay ends by itself; the pairs are released when it ends
/// either way.
pub fn spawn<K: Send + 'static>(
    key: K,
    pairs: [PortPair; 2],
    timeout: Duration,
    recording: Option<RecordingTarget>,
    on_timeout: mpsc::UnboundedSender<TimedOut<K>>,
) -> io::Result<RelayHandle> {
    let ports = [pairs[0].port(), pairs[1].port()];
    let [a, b] = pairs;
    let sides = [SideState::new(a)?, SideState::new(b)?];
    let (tx, rx) = mpsc::unbounded_channel();
    let relay = Relay {
        sides,
        epoch: Instant::now(),
        timeout,
        armed: false,
        last_rtp: Instant::now(),
        recorder: recording.map(Recorder::open),
        app: None,
    };
    tokio::spawn(async move {
        if let Some(report) = relay.run(rx).await {
            let _ = on_timeout.send(TimedOut { key, report });
        }
    });
    Ok(RelayHandle {
        commands: tx,
        ports,
    })
}

struct SideState {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    /// Declared after the sockets: dropped after them, so the pool never
    /// hands out a port still bound.
    _lease: PortLease,
    party: Party,
    latched_rtp: Option<(SocketAddr, Instant)>,
    latched_rtcp: Option<(SocketAddr, Instant)>,
    /// The last RTP address an SDP named for this side (hold's none
    /// aside): a new one is a new party.
    known_rtp: Option<SocketAddr>,
    /// A replaced party's RTP and RTCP sources, refused.
    refused: [Option<SocketAddr>; 2],
    stats: ReceiveStats,
    payload_type: Option<u8>,
    rejected: u64,
}

impl SideState {
    fn new(pair: PortPair) -> io::Result<SideState> {
        Ok(SideState {
            rtp: UdpSocket::from_std(pair.rtp)?,
            rtcp: UdpSocket::from_std(pair.rtcp)?,
            _lease: pair.lease,
            party: Party::default(),
            latched_rtp: None,
            latched_rtcp: None,
            known_rtp: None,
            refused: [None, None],
            stats: ReceiveStats::new(8000),
            payload_type: None,
            rejected: 0,
        })
    }

    /// A new SDP for this side's party (see the module doc): the latch is
    /// cleared, and a party that moved to another address leaves its old
    /// sources refused.
    fn set_party(&mut self, party: Party) {
        if party.rtp.is_some() && self.known_rtp.is_some() && party.rtp != self.known_rtp {
            self.refused = [
                self.latched_rtp.map(|(a, _)| a),
                self.latched_rtcp.map(|(a, _)| a),
            ];
        }
        if party.rtp.is_some() {
            self.known_rtp = party.rtp;
        }
        self.party = party;
        self.latched_rtp = None;
        self.latched_rtcp = None;
    }

    /// The latching rule of the module doc; updates the latch.
    fn accept(&mut self, rtcp: bool, from: SocketAddr, now: Instant) -> bool {
        if self.refused[usize::from(rtcp)] == Some(from) {
            return false;
        }
        let expected_ip = if rtcp {
            self.party.rtcp
        } else {
            self.party.rtp
        }
        .map(|a| a.ip());
        let behind_nat = self.party.behind_nat;
        let latch = if rtcp {
            &mut self.latched_rtcp
        } else {
            &mut self.latched_rtp
        };
        if let Some((addr, last)) = latch
            && *addr == from
        {
            *last = now;
            return true;
        }
        let ip_ok = behind_nat || expected_ip.is_none_or(|ip| same_ip(ip, from.ip()));
        let free = latch.is_none_or(|(_, last)| now.duration_since(last) >= RELATCH_AFTER);
        if ip_ok && free {
            *latch = Some((from, now));
            return true;
        }
        false
    }

    /// Where to send what is meant for this side's party.
    fn destination(&self, rtcp: bool) -> Option<SocketAddr> {
        if rtcp {
            self.latched_rtcp.map(|(a, _)| a).or(self.party.rtcp)
        } else {
            self.latched_rtp.map(|(a, _)| a).or(self.party.rtp)
        }
    }

    fn codec_name(&self, pt: u8) -> Option<String> {
        self.party
            .codecs
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, name)| name.clone())
            .or_else(|| static_codec(pt).map(str::to_owned))
    }

    fn law(&self, pt: u8) -> Option<Law> {
        match self.party.codecs.iter().find(|(p, _)| *p == pt) {
            Some((_, name)) if name.eq_ignore_ascii_case("PCMU") => Some(Law::Pcmu),
            Some((_, name)) if name.eq_ignore_ascii_case("PCMA") => Some(Law::Pcma),
            Some(_) => None,
            None => Law::from_payload_type(pt),
        }
    }

    fn report(&self) -> StreamReport {
        let codec = self.payload_type.and_then(|pt| self.codec_name(pt));
        let jitter_ms = (self.stats.jitter_ms() * 100.0).round() / 100.0;
        let mos = quality::mos(
            codec.as_deref().unwrap_or("PCMU"),
            self.stats.loss_ratio(),
            jitter_ms,
        );
        StreamReport {
            codec,
            packets: self.stats.packets(),
            lost: self.stats.lost(),
            jitter_ms,
            mos,
            rejected: self.rejected,
            latched: self.latched_rtp.map(|(a, _)| a),
        }
    }
}

/// IPv4 and its IPv4-mapped IPv6 form are the same host (a dual-stack
/// socket reports the latter).
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

fn static_codec(pt: u8) -> Option<&'static str> {
    match pt {
        0 => Some("PCMU"),
        8 => Some("PCMA"),
        9 => Some("G722"),
        18 => Some("G729"),
        _ => None,
    }
}

struct Recorder {
    path: PathBuf,
    writer: Option<WavWriter<BufWriter<File>>>,
    timeline: Timeline,
    scratch: Vec<i16>,
    error: Option<String>,
}

impl Recorder {
    fn open(target: RecordingTarget) -> Recorder {
        let mut recorder = Recorder {
            path: target.path,
            writer: None,
            // The timeline's origin is the relay's epoch (0 ns).
            timeline: Timeline::new(0, RECORDING_HOLD_MS),
            scratch: Vec::with_capacity(2 * 8000),
            error: None,
        };
        let opened = recorder
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| File::create(&recorder.path))
            .and_then(|f| WavWriter::new(BufWriter::new(f), 2, 8000));
        match opened {
            Ok(w) => recorder.writer = Some(w),
            Err(e) => recorder.fail(&e),
        }
        recorder
    }

    /// Disk full or unwritable: the call goes on without its recording;
    /// logged once, the reason goes into the report.
    fn fail(&mut self, e: &io::Error) {
        tracing::warn!(path = %self.path.display(), error = %e, "recording stopped");
        self.error = Some(e.to_string());
        self.writer = None;
    }

    fn write_ready(&mut self, now_ns: u64, all: bool) {
        if self.writer.is_none() {
            return;
        }
        self.scratch.clear();
        if all {
            self.timeline.drain_all(now_ns, &mut self.scratch);
        } else {
            self.timeline.drain_ready(now_ns, &mut self.scratch);
        }
        if let Some(w) = &mut self.writer
            && let Err(e) = w.write_samples(&self.scratch)
        {
            self.fail(&e);
        }
    }

    fn finish(mut self, now_ns: u64) -> RecordingReport {
        self.write_ready(now_ns, true);
        let mut duration_secs = 0.0;
        if let Some(w) = self.writer.take() {
            duration_secs = w.duration_secs();
            if let Err(e) = w.finish() {
                self.fail(&e);
            }
        }
        RecordingReport {
            path: self.path,
            duration_secs,
            error: self.error,
        }
    }
}

struct Relay {
    sides: [SideState; 2],
    epoch: Instant,
    timeout: Duration,
    armed: bool,
    last_rtp: Instant,
    recorder: Option<Recorder>,
    /// The PBX holds the caller (`player.rs`).
    app: Option<super::player::App>,
}

impl Relay {
    /// Relays until stopped (the report goes to the `Stop`'s reply) or
    /// timed out (the report is returned).
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) -> Option<Report> {
        let mut buf = [0u8; 2048];
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One played packet every 20 ms (late ticks catch up: the caller's
        // jitter buffer wants the stream's pace, not gaps).
        let mut play = tokio::time::interval(super::player::PACKET_TIME);
        loop {
            // Commands first: a party's SDP must apply before the packets
            // that follow it are judged.
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    Some(Command::Party(side, party)) => {
                        self.sides[side as usize].set_party(party);
                    }
                    Some(Command::Answered) => {
                        self.armed = true;
                        self.last_rtp = Instant::now();
                    }
                    Some(Command::App(app)) => self.on_app(app),
                    Some(Command::Stop(reply)) => {
                        let report = self.finish(EndCause::Stopped);
                        // The sockets and port leases go before the reply,
                        // so whoever waited on `stop` finds them released.
                        drop(self);
                        let _ = reply.send(report);
                        return None;
                    }
                    // The handle is gone without a Stop: the call's owner
                    // ended; nothing waits for a report, but the recording
                    // is still closed properly.
                    None => {
                        self.finish(EndCause::Stopped);
                        return None;
                    }
                },
                _ = play.tick(), if self.app.as_ref().is_some_and(|a| a.is_playing()) => self.play_packet(&mut buf),
                r = self.sides[0].rtp.readable() => if r.is_ok() { self.drain(Side::A, false, &mut buf) },
                r = self.sides[1].rtp.readable() => if r.is_ok() { self.drain(Side::B, false, &mut buf) },
                r = self.sides[0].rtcp.readable() => if r.is_ok() { self.drain(Side::A, true, &mut buf) },
                r = self.sides[1].rtcp.readable() => if r.is_ok() { self.drain(Side::B, true, &mut buf) },
                _ = tick.tick() => {
                    let now = Instant::now();
                    if self.armed && now.duration_since(self.last_rtp) >= self.timeout {
                        return Some(self.finish(EndCause::Timeout));
                    }
                    let now_ns = self.ns(now);
                    if let Some(r) = &mut self.recorder {
                        r.write_ready(now_ns, false);
                    }
                }
            }
        }
    }

    fn ns(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Receives until the socket would block; forwards what is accepted.
    fn drain(&mut self, side: Side, rtcp: bool, buf: &mut [u8; 2048]) {
        let i = side as usize;
        let other = 1 - i;
        loop {
            let socket = if rtcp {
                &self.sides[i].rtcp
            } else {
                &self.sides[i].rtp
            };
            let (n, from) = match socket.try_recv_from(buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // ICMP errors from an earlier send surface here; the next
                // datagram is unaffected.
                Err(_) => continue,
            };
            let now = Instant::now();
            let s = &mut self.sides[i];
            if !s.accept(rtcp, from, now) {
                s.rejected += 1;
                continue;
            }
            let datagram = &buf[..n];
            if !rtcp && !is_rtcp(datagram) {
                self.last_rtp = now;
                if let Ok(p) = RtpPacket::parse(datagram) {
                    let arrival = self.ns(now);
                    let s = &mut self.sides[i];
                    s.stats
                        .on_packet(p.header.sequence, p.header.timestamp, arrival);
                    let law = s.law(p.header.payload_type);
                    if law.is_some() || s.payload_type.is_none() {
                        s.payload_type = Some(p.header.payload_type);
                    }
                    if let (Some(law), Some(rec)) = (law, &mut self.recorder) {
                        let mut pcm = [0i16; 2048];
                        let k = law.decode_into(p.payload, &mut pcm);
                        let channel = if side == Side::A {
                            Channel::Caller
                        } else {
                            Channel::Callee
                        };
                        rec.timeline
                            .push(channel, arrival, p.header.timestamp, &pcm[..k]);
                    }
                }
            }
            if let Some(app) = &mut self.app {
                // The PBX holds the caller: nothing is forwarded, the
                // caller's telephone-events are its digits.
                if side == Side::A
                    && !rtcp
                    && let Ok(p) = RtpPacket::parse(datagram)
                {
                    app.on_caller_packet(p.header.payload_type, p.header.timestamp, p.payload);
                }
                continue;
            }
            let out = &self.sides[other];
            if let Some(dest) = out.destination(rtcp) {
                let socket = if rtcp { &out.rtcp } else { &out.rtp };
                // A full send buffer drops the packet, as the network would.
                let _ = socket.try_send_to(datagram, dest);
            }
        }
    }

    fn on_app(&mut self, command: AppCommand) {
        match command {
            AppCommand::Play {
                player,
                events,
                on_digit,
            } => {
                let ssrc =
                    0x7a11_0000 ^ u32::from(self.sides[0].rtp.local_addr().map_or(0, |a| a.port()));
                self.app
                    .get_or_insert_with(|| super::player::App::new(on_digit, ssrc))
                    .play(player, events);
            }
            AppCommand::Quiet => {
                if let Some(app) = &mut self.app {
                    app.quiet();
                }
            }
            AppCommand::Bridge => self.app = None,
        }
    }

    /// Sends the caller the next packet of what plays.
    fn play_packet(&mut self, buf: &mut [u8; 2048]) {
        let Some(app) = &mut self.app else {
            return;
        };
        let Some(n) = app.next_packet(buf) else {
            return;
        };
        let a = &self.sides[0];
        if let Some(dest) = a.destination(false) {
            // A full send buffer drops the packet, as the network would.
            let _ = a.rtp.try_send_to(&buf[..n], dest);
        }
    }

    fn finish(&mut self, end: EndCause) -> Report {
        let now_ns = self.ns(Instant::now());
        Report {
            end,
            streams: [self.sides[0].report(), self.sides[1].report()],
            recording: self.recorder.take().map(|r| r.finish(now_ns)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, UdpSocket as StdSocket};

    use media::rtp::RtpHeader;
    use media::tone::{Tone, dominant};
    use media::wav::Wav;

    use super::super::ports::{PortPool, test_range};
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    struct Phone {
        socket: StdSocket,
        tone: Tone,
        seq: u16,
    }

    impl Phone {
        fn new(freq: f64) -> Phone {
            let socket = StdSocket::bind((LOOPBACK, 0)).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            Phone {
                socket,
                tone: Tone::sine(freq, 0.4, 8000),
                seq: 1000,
            }
        }

        fn addr(&self) -> SocketAddr {
            self.socket.local_addr().unwrap()
        }

        fn party(&self) -> Party {
            Party {
                rtp: Some(self.addr()),
                rtcp: None,
                behind_nat: false,
                codecs: vec![(0, "PCMU".into()), (101, "telephone-event".into())],
            }
        }

        /// One 20 ms PCMU packet of the tone; `send` false skips it on the
        /// wire (a loss) but advances sequence and time.
        fn packet(&mut self, to: SocketAddr, send: bool) {
            let mut pcm = [0i16; 160];
            self.tone.fill(&mut pcm);
            let mut payload = [0u8; 160];
            Law::Pcmu.encode_into(&pcm, &mut payload);
            let h = RtpHeader {
                marker: false,
                payload_type: 0,
                sequence: self.seq,
                timestamp: u32::from(self.seq) * 160,
                ssrc: 0x1234,
            };
            self.seq = self.seq.wrapping_add(1);
            let mut buf = [0u8; 200];
            let n = h.write(&payload, &mut buf).unwrap();
            if send {
                self.socket.send_to(&buf[..n], to).unwrap();
            }
        }

        fn drain(&self) -> usize {
            self.socket.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 2048];
            let mut n = 0;
            while self.socket.recv_from(&mut buf).is_ok() {
                n += 1;
            }
            self.socket.set_nonblocking(false).unwrap();
            n
        }
    }

    fn relay(
        slot: u16,
        timeout: Duration,
        recording: Option<RecordingTarget>,
    ) -> (
        PortPool,
        RelayHandle,
        mpsc::UnboundedReceiver<TimedOut<u32>>,
    ) {
        let (first, last) = test_range(slot);
        let pool = PortPool::new(LOOPBACK, first, last);
        let pairs = [pool.allocate().unwrap(), pool.allocate().unwrap()];
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = spawn(7, pairs, timeout, recording, tx).unwrap();
        (pool, handle, rx)
    }

    fn relay_addr(h: &RelayHandle, side: Side) -> SocketAddr {
        SocketAddr::new(LOOPBACK, h.port(side))
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tally-relay-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn relays_both_ways_measures_and_records_the_tones() {
        let dir = temp_dir("tones");
        let path = dir.join("call.wav");
        let (pool, h, _events) = relay(
            0,
            Duration::from_secs(60),
            Some(RecordingTarget { path: path.clone() }),
        );
        let (mut a, mut b) = (Phone::new(1000.0), Phone::new(440.0));
        h.send(Command::Party(Side::A, a.party()));
        h.send(Command::Party(Side::B, b.party()));
        h.send(Command::Answered);
        // One second of audio each way, sent over 0.4 s (the timeline keeps
        // RTP time as long as it stays within a second of arrival time).
        for _ in 0..50 {
            a.packet(relay_addr(&h, Side::A), true);
            b.packet(relay_addr(&h, Side::B), true);
            tokio::time::sleep(Duration::from_millis(8)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(b.drain(), 50, "B hears A");
        assert_eq!(a.drain(), 50, "A hears B");
        let report = h.stop().await.unwrap();
        assert_eq!(report.end, EndCause::Stopped);
        let [ra, rb] = &report.streams;
        assert_eq!(
            (ra.packets, ra.lost, ra.codec.as_deref()),
            (50, 0, Some("PCMU"))
        );
        assert_eq!(ra.latched, Some(a.addr()));
        assert_eq!(rb.packets, 50);
        assert!(ra.mos > 4.0, "{ra:?}");
        let rec = report.recording.unwrap();
        assert_eq!(rec.error, None);
        assert!(rec.duration_secs >= 1.0, "{rec:?}");
        let wav = Wav::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!((wav.sample_rate, wav.channels.len()), (8000, 2));
        // Find the spoken second in each channel and check its frequency.
        let cands = [440.0, 700.0, 1000.0, 1500.0];
        let loudest = |ch: &[i16]| {
            ch.chunks_exact(800)
                .filter_map(|block| dominant(block, &cands, 8000, 0.7))
                .collect::<Vec<_>>()
        };
        let left = loudest(&wav.channels[0]);
        let right = loudest(&wav.channels[1]);
        assert!(
            left.len() >= 8 && left.iter().all(|f| *f == 1000.0),
            "{left:?}"
        );
        assert!(
            right.len() >= 8 && right.iter().all(|f| *f == 440.0),
            "{right:?}"
        );
        assert_eq!(pool.in_use(), 0, "ports released");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn loss_is_counted_and_lowers_the_mos() {
        let (_pool, h, _events) = relay(1, Duration::from_secs(60), None);
        let (mut a, b) = (Phone::new(1000.0), Phone::new(440.0));
        h.send(Command::Party(Side::A, a.party()));
        h.send(Command::Party(Side::B, b.party()));
        for i in 0..200 {
            // Every 10th packet lost (never the first two: probation).
            a.packet(relay_addr(&h, Side::A), i < 2 || i % 10 != 5);
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(b.drain(), 180);
        let report = h.stop().await.unwrap();
        let ra = &report.streams[0];
        assert_eq!((ra.packets, ra.lost), (180, 20));
        let clean = media::quality::mos("PCMU", 0.0, ra.jitter_ms);
        assert!(ra.mos < clean - 0.5, "{} vs {clean}", ra.mos);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_party_sending_from_another_port_is_latched_and_strangers_are_not() {
        let (_pool, h, _events) = relay(2, Duration::from_secs(60), None);
        let (mut a, mut b) = (Phone::new(1000.0), Phone::new(440.0));
        // A's SDP names a port nobody sends from; A really uses `a`.
        let listening = StdSocket::bind((LOOPBACK, 0)).unwrap();
        let mut party_a = a.party();
        party_a.rtp = Some(listening.local_addr().unwrap());
        h.send(Command::Party(Side::A, party_a.clone()));
        h.send(Command::Party(Side::B, b.party()));
        // Before A speaks, B's audio goes to A's SDP address.
        b.packet(relay_addr(&h, Side::B), true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        listening.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        assert!(
            listening.recv_from(&mut buf).is_ok(),
            "sent to the SDP address before latching"
        );
        a.packet(relay_addr(&h, Side::A), true);
        a.packet(relay_addr(&h, Side::A), true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(b.drain(), 2);
        // Now B's audio goes to where A really sends from.
        b.packet(relay_addr(&h, Side::B), true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(a.drain(), 1);
        assert!(listening.recv_from(&mut buf).is_err());
        // A stranger on another IP (127.0.0.2) is dropped while A is live.
        if let Ok(stranger) = StdSocket::bind(("127.0.0.2", 0)) {
            let mut s = Phone::new(1000.0);
            s.socket = stranger;
            s.packet(relay_addr(&h, Side::A), true);
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(b.drain(), 0);
            let report = h.stop().await.unwrap();
            assert_eq!(report.streams[0].rejected, 1);
            assert_eq!(report.streams[0].latched, Some(a.addr()));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn behind_nat_any_source_is_latched() {
        let (_pool, h, _events) = relay(3, Duration::from_secs(60), None);
        let (b, mut natted) = (Phone::new(440.0), Phone::new(1000.0));
        // The SDP says a private address the relay cannot reach.
        let party = Party {
            rtp: Some("10.9.9.9:4000".parse().unwrap()),
            rtcp: None,
            behind_nat: true,
            codecs: Vec::new(),
        };
        h.send(Command::Party(Side::A, party));
        h.send(Command::Party(Side::B, b.party()));
        natted.packet(relay_addr(&h, Side::A), true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(b.drain(), 1);
        let report = h.stop().await.unwrap();
        assert_eq!(report.streams[0].latched, Some(natted.addr()));
        // Without NAT the same packet would have been refused.
        let (_pool, h, _events) = relay(4, Duration::from_secs(60), None);
        h.send(Command::Party(
            Side::A,
            Party {
                rtp: Some("10.9.9.9:4000".parse().unwrap()),
                ..Party::default()
            },
        ));
        natted.packet(relay_addr(&h, Side::A), true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(h.stop().await.unwrap().streams[0].rejected, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn silence_after_answer_times_out_and_frees_the_ports() {
        let (pool, h, mut events) = relay(5, Duration::from_millis(300), None);
        // Not armed before the answer.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(events.try_recv().is_err());
        h.send(Command::Answered);
        let ended = tokio::time::timeout(Duration::from_secs(3), events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((ended.key, ended.report.end), (7, EndCause::Timeout));
        assert_eq!(pool.in_use(), 0);
        // Stopping a relay that already ended is harmless.
        assert!(h.stop().await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_unwritable_recording_does_not_stop_the_call() {
        let dir = temp_dir("unwritable");
        // The "directory" is a file: the recording cannot be created.
        std::fs::write(dir.join("file"), b"x").unwrap();
        let path = dir.join("file").join("call.wav");
        let (_pool, h, _events) = relay(6, Duration::from_secs(60), Some(RecordingTarget { path }));
        let (mut a, b) = (Phone::new(1000.0), Phone::new(440.0));
        h.send(Command::Party(Side::A, a.party()));
        h.send(Command::Party(Side::B, b.party()));
        for _ in 0..5 {
            a.packet(relay_addr(&h, Side::A), true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(b.drain(), 5);
        let rec = h.stop().await.unwrap().recording.unwrap();
        assert!(rec.error.is_some());
        assert_eq!(rec.duration_secs, 0.0);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A transfer re-bridges side B to a new party while the old one still
    /// streams (both behind NAT, so any source could latch): the old
    /// party's source is refused, the newcomer's audio reaches A and A's
    /// reaches the newcomer. A party's own re-INVITEs (hold, then resume)
    /// refuse nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_replaced_party_cannot_latch_again() {
        let (_pool, h, _events) = relay(9, Duration::from_secs(60), None);
        let (mut a, mut old, mut new) = (Phone::new(440.0), Phone::new(1000.0), Phone::new(700.0));
        let natted = |p: &Phone| Party {
            behind_nat: true,
            ..p.party()
        };
        h.send(Command::Party(Side::A, a.party()));
        h.send(Command::Party(Side::B, natted(&old)));
        old.packet(relay_addr(&h, Side::B), true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(a.drain(), 1, "the first party is heard");
        // The newcomer's SDP takes side B; the old party streams on first.
        h.send(Command::Party(Side::B, natted(&new)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        for _ in 0..5 {
            old.packet(relay_addr(&h, Side::B), true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(a.drain(), 0, "the replaced party is refused");
        for _ in 0..5 {
            new.packet(relay_addr(&h, Side::B), true);
            old.packet(relay_addr(&h, Side::B), true);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(a.drain(), 5, "only the newcomer is heard");
        a.packet(relay_addr(&h, Side::A), true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!((new.drain(), old.drain()), (1, 0), "A reaches the newcomer");
        // Hold (no address) and resume (the same address): not a new party.
        let mut held = natted(&new);
        held.rtp = None;
        h.send(Command::Party(Side::B, held));
        h.send(Command::Party(Side::B, natted(&new)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        new.packet(relay_addr(&h, Side::B), true);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(a.drain(), 1, "the same party after hold and resume");
        let report = h.stop().await.unwrap();
        assert_eq!(report.streams[1].latched, Some(new.addr()));
    }
}
