//! The two-party timeline a stereo call recording is written from.
//!
//! Each party's packets arrive with jitter, reordered, with gaps and
//! silences (hold, VAD). [`Timeline`] places every packet's samples on a
//! common 8 kHz clock and hands out interleaved stereo frames (left = the
//! caller's side, right = the callee's) once they are `hold` behind `now`,
//! so late packets still find their place. Rules:
//!
//! - a party's first packet is placed by its arrival time; later ones by
//!   their RTP timestamp relative to that anchor, which keeps the audio
//!   free of the network's jitter;
//! - when timestamp and arrival disagree by more than a second (a new SSRC,
//!   a timestamp jump, long clock drift) the party is re-anchored on the
//!   arrival time;
//! - time nobody spoke in is silence, so the file's length is the call's
//!   length;
//! - samples for frames already handed out are dropped (too late).

use std::collections::VecDeque;

/// Which channel a party's audio goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Left: what the caller said.
    Caller = 0,
    /// Right: what the callee said.
    Callee = 1,
}

const RATE: u64 = 8000;

/// See the module doc.
#[derive(Debug, Clone)]
pub struct Timeline {
    origin_ns: u64,
    hold_frames: u64,
    /// Frames handed out so far; `pending[0]` is frame `emitted`.
    emitted: u64,
    pending: VecDeque<[i16; 2]>,
    anchors: [Option<(u32, u64)>; 2],
}

impl Timeline {
    /// A timeline starting at `origin_ns` that keeps `hold_ms` of audio
    /// back for late packets.
    pub fn new(origin_ns: u64, hold_ms: u64) -> Self {
        Timeline {
            origin_ns,
            hold_frames: hold_ms * RATE / 1000,
            emitted: 0,
            pending: VecDeque::new(),
            anchors: [None, None],
        }
    }

    fn frame_at(&self, ns: u64) -> u64 {
        (u128::from(ns.saturating_sub(self.origin_ns)) * u128::from(RATE) / 1_000_000_000) as u64
    }

    /// Places one packet's decoded samples.
    pub fn push(&mut self, channel: Channel, arrival_ns: u64, rtp_timestamp: u32, samples: &[i16]) {
        let arrived = self.frame_at(arrival_ns);
        let c = channel as usize;
        let frame = match self.anchors[c] {
            Some((ts, at)) => {
                let delta = i64::from(rtp_timestamp.wrapping_sub(ts) as i32);
                let placed = at.saturating_add_signed(delta);
                if placed.abs_diff(arrived) > RATE {
                    self.anchors[c] = Some((rtp_timestamp, arrived));
                    arrived
                } else {
                    placed
                }
            }
            None => {
                self.anchors[c] = Some((rtp_timestamp, arrived));
                arrived
            }
        };
        let skip = self.emitted.saturating_sub(frame);
        let Some(samples) = samples.get(usize::try_from(skip).unwrap_or(usize::MAX)..) else {
            return;
        };
        let start = usize::try_from(frame.max(self.emitted) - self.emitted).unwrap_or(usize::MAX);
        let end = start.saturating_add(samples.len());
        // Never let one bad timestamp grow the buffer beyond a few seconds.
        if end > 10 * RATE as usize + usize::try_from(self.hold_frames).unwrap_or(0) {
            return;
        }
        if self.pending.len() < end {
            self.pending.resize(end, [0, 0]);
        }
        for (slot, s) in self.pending.range_mut(start..end).zip(samples) {
            slot[c] = *s;
        }
    }

    /// Appends to `out` (interleaved) every frame at least `hold` older
    /// than `now_ns`, silence included.
    pub fn drain_ready(&mut self, now_ns: u64, out: &mut Vec<i16>) {
        let until = self.frame_at(now_ns).saturating_sub(self.hold_frames);
        self.drain_until(until, out);
    }

    /// Appends every frame up to `now_ns` and everything still pending: the
    /// call ended.
    pub fn drain_all(&mut self, now_ns: u64, out: &mut Vec<i16>) {
        let until = self
            .frame_at(now_ns)
            .max(self.emitted + self.pending.len() as u64);
        self.drain_until(until, out);
    }

    fn drain_until(&mut self, until: u64, out: &mut Vec<i16>) {
        let n = until.saturating_sub(self.emitted);
        let Ok(n) = usize::try_from(n) else { return };
        let from_pending = n.min(self.pending.len());
        out.reserve(2 * n);
        for frame in self.pending.drain(..from_pending) {
            out.extend_from_slice(&frame);
        }
        out.resize(out.len() + 2 * (n - from_pending), 0);
        self.emitted += n as u64;
    }

    /// Frames handed out so far.
    pub fn emitted_frames(&self) -> u64 {
        self.emitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn jittered_packets_land_by_timestamp() {
        let mut t = Timeline::new(1000 * MS, 100);
        // Caller: 20 ms packets, every other one 7 ms late, one reordered.
        for i in [0u32, 1, 3, 2, 4] {
            let late = if i % 2 == 1 { 7 * MS } else { 0 };
            let arrival = 1000 * MS + u64::from(i) * 20 * MS + late;
            t.push(
                Channel::Caller,
                arrival,
                5000 + i * 160,
                &[i as i16 + 1; 160],
            );
        }
        // Callee starts 40 ms in.
        t.push(Channel::Callee, 1040 * MS, 77, &[-9; 160]);
        let mut out = Vec::new();
        t.drain_ready(1200 * MS, &mut out);
        assert_eq!(out.len(), 2 * 800); // 100 ms ready
        let left: Vec<i16> = out.iter().step_by(2).copied().collect();
        let right: Vec<i16> = out.iter().skip(1).step_by(2).copied().collect();
        for i in 0..5 {
            assert!(
                left[i * 160..(i + 1) * 160]
                    .iter()
                    .all(|s| *s == i as i16 + 1),
                "packet {i}"
            );
        }
        assert!(right[..320].iter().all(|s| *s == 0));
        assert!(right[320..480].iter().all(|s| *s == -9));
        // Too late now: dropped, not written over what was handed out.
        t.push(Channel::Caller, 1210 * MS, 5000, &[99; 160]);
        t.drain_all(1300 * MS, &mut out);
        assert_eq!(t.emitted_frames(), 2400);
        assert!(!out.contains(&99));
    }

    #[test]
    fn silence_keeps_time_and_jumps_reanchor() {
        let mut t = Timeline::new(0, 0);
        t.push(Channel::Callee, 0, 0, &[1; 160]);
        // A timestamp 10 s ahead arriving 20 ms later is re-anchored.
        t.push(Channel::Callee, 20 * MS, 80_000, &[2; 160]);
        let mut out = Vec::new();
        t.drain_all(1000 * MS, &mut out);
        assert_eq!(out.len(), 2 * 8000);
        assert_eq!(out[2 * 160 + 1], 2);
        assert_eq!(out[2 * 400 + 1], 0);
    }
}
