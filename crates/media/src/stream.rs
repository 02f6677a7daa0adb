//! One received RTP stream's statistics (RFC 3550 Appendix A).
//!
//! [`ReceiveStats`] is fed every packet of one SSRC with its arrival time
//! (passed in, never read from a clock) and keeps what a monitor and an RTCP
//! receiver report need:
//!
//! - sequence validation and the extended highest sequence across the 16-bit
//!   wrap (A.1, with its constants `MIN_SEQUENTIAL = 2`,
//!   `MAX_DROPOUT = 3000`, `MAX_MISORDER = 100`);
//! - cumulative and interval loss (A.3);
//! - interarrival jitter (A.8, in its integer form scaled by 16, so values
//!   are exact and reproducible);
//! - duplicates and reordered packets, found with a 128-packet window behind
//!   the highest sequence.
//!
//! Decision: a duplicate is counted apart and NOT in `received`. RFC 3550
//! counts it, which lets duplicates hide loss (cumulative loss can go
//! negative); a PBX reporting `lost` wants the packets that never came.

use crate::rtcp::ReportBlock;

const MIN_SEQUENTIAL: u8 = 2;
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;
const WINDOW: u32 = 128;

/// What one packet was to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// In sequence, or a gap forward (the missing ones count as lost).
    InOrder,
    /// Older than the highest sequence seen and not seen before.
    Reordered,
    /// Seen before (or too old to tell; counted as a duplicate then).
    Duplicate,
    /// The source is still on probation (A.1): not yet counted.
    Probation,
    /// A jump too large to believe; a second packet following it restarts
    /// the sequence (A.1's `bad_seq`).
    Jump,
    /// That second packet came: the stream restarted at it.
    Restarted,
}

/// Statistics of one received stream; see the module doc.
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    clock_rate: u32,
    probation: u8,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    received: u64,
    packets: u64,
    duplicates: u64,
    reordered: u64,
    expected_prior: u64,
    received_prior: u64,
    transit: Option<i64>,
    jitter_q4: u64,
    /// Bit `i` set: extended sequence `max - i` was received.
    window: u128,
    started: bool,
}

impl ReceiveStats {
    /// A stream whose RTP timestamps tick `clock_rate` times a second (8000
    /// for G.711 and telephone-events).
    pub fn new(clock_rate: u32) -> Self {
        ReceiveStats {
            clock_rate: clock_rate.max(1),
            probation: MIN_SEQUENTIAL,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: SEQ_MOD + 1,
            received: 0,
            packets: 0,
            duplicates: 0,
            reordered: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_q4: 0,
            window: 0,
            started: false,
        }
    }

    /// Records one packet: its sequence number, RTP timestamp, and arrival
    /// time in nanoseconds since any fixed origin.
    pub fn on_packet(&mut self, seq: u16, rtp_timestamp: u32, arrival_ns: u64) -> Verdict {
        self.packets += 1;
        let verdict = self.update_seq(seq);
        if matches!(
            verdict,
            Verdict::InOrder | Verdict::Reordered | Verdict::Restarted | Verdict::Probation
        ) {
            self.update_jitter(rtp_timestamp, arrival_ns);
        }
        verdict
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.window = 1;
    }

    /// RFC 3550 A.1 `update_seq`, extended with the duplicate window.
    fn update_seq(&mut self, seq: u16) -> Verdict {
        if !self.started {
            // A.1: `init_seq(s, seq); s->max_seq = seq - 1; s->probation = MIN_SEQUENTIAL`.
            self.started = true;
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return Verdict::InOrder;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return Verdict::Probation;
        }
        if udelta == 0 {
            self.duplicates += 1;
            return Verdict::Duplicate;
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += SEQ_MOD;
            }
            self.max_seq = seq;
            let shift = u32::from(udelta);
            self.window = if shift >= WINDOW {
                0
            } else {
                self.window << shift
            } | 1;
            self.received += 1;
            return Verdict::InOrder;
        }
        if udelta <= (SEQ_MOD - u32::from(MAX_MISORDER)) as u16 {
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets after a jump: the source restarted.
                self.init_seq(seq);
                self.received += 1;
                return Verdict::Restarted;
            }
            self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
            return Verdict::Jump;
        }
        // Behind the highest by 1..=MAX_MISORDER.
        let behind = u32::from(self.max_seq.wrapping_sub(seq));
        let extended = self.extended_max().checked_sub(u64::from(behind));
        let before_base = extended.is_none_or(|e| e < u64::from(self.base_seq));
        let bit = 1u128 << behind.min(WINDOW - 1);
        if before_base || self.window & bit != 0 {
            self.duplicates += 1;
            return Verdict::Duplicate;
        }
        self.window |= bit;
        self.received += 1;
        self.reordered += 1;
        Verdict::Reordered
    }

    /// RFC 3550 A.8, integer form: `J += |D| - ((J + 8) >> 4)`, J scaled by 16.
    fn update_jitter(&mut self, rtp_timestamp: u32, arrival_ns: u64) {
        let arrival = (u128::from(arrival_ns) * u128::from(self.clock_rate) / 1_000_000_000) as u64;
        // Transit in timestamp units, modulo 2^32 like the timestamps.
        let transit = i64::from(arrival.wrapping_sub(u64::from(rtp_timestamp)) as u32);
        if let Some(prev) = self.transit {
            let mut d = (transit - prev).unsigned_abs();
            // A wrap of the 32-bit transit is a small negative difference.
            if d > 1 << 31 {
                d = (1 << 32) - d;
            }
            self.jitter_q4 = (self.jitter_q4 + d).saturating_sub((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Extended highest sequence number (cycles plus the 16-bit sequence).
    pub fn extended_max(&self) -> u64 {
        u64::from(self.cycles) + u64::from(self.max_seq)
    }

    /// Packets expected since the base sequence (A.3); 0 on probation.
    pub fn expected(&self) -> u64 {
        if self.probation > 0 {
            return 0;
        }
        (self.extended_max() + 1).saturating_sub(u64::from(self.base_seq))
    }

    /// Packets received and counted (no duplicates, none on probation).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Every datagram this stream was fed, whatever its verdict.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Cumulative loss (A.3): expected minus received, never negative here
    /// since duplicates are not counted as received.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Interarrival jitter in timestamp units (A.8's `jitter >> 4`).
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter_q4 >> 4).unwrap_or(u32::MAX)
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter_q4 as f64 / 16.0 * 1000.0 / f64::from(self.clock_rate)
    }

    /// Loss as a fraction of expected packets, 0.0 to 1.0.
    pub fn loss_ratio(&self) -> f64 {
        let expected = self.expected();
        if expected == 0 {
            0.0
        } else {
            self.lost() as f64 / expected as f64
        }
    }

    /// A reception report block for `ssrc` (A.3's interval fraction), moving
    /// the interval on. `last_sr`/`delay_since_last_sr` are left for the
    /// caller, who knows the SR times.
    pub fn report_block(&mut self, ssrc: u32) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval == 0 {
            0
        } else {
            u8::try_from((lost_interval << 8) / expected_interval).unwrap_or(u8::MAX)
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: i32::try_from(self.lost()).unwrap_or(i32::MAX),
            highest_sequence: self.extended_max() as u32,
            jitter: self.jitter(),
            last_sr: 0,
            delay_since_last_sr: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn feed(s: &mut ReceiveStats, seqs: impl IntoIterator<Item = u16>) -> Vec<Verdict> {
        seqs.into_iter()
            .map(|q| s.on_packet(q, u32::from(q) * 160, u64::from(q) * 20 * MS))
            .collect()
    }

    #[test]
    fn probation_then_in_order() {
        let mut s = ReceiveStats::new(8000);
        assert_eq!(
            feed(&mut s, [10, 11, 12]),
            [Verdict::Probation, Verdict::InOrder, Verdict::InOrder]
        );
        assert_eq!(
            (s.expected(), s.received(), s.lost(), s.packets()),
            (2, 2, 0, 3)
        );
        // A source that starts out of order stays on probation.
        let mut s = ReceiveStats::new(8000);
        assert_eq!(
            feed(&mut s, [5, 9, 10]),
            [Verdict::Probation, Verdict::Probation, Verdict::InOrder]
        );
    }

    #[test]
    fn loss_duplicates_and_reorder() {
        let mut s = ReceiveStats::new(8000);
        let v = feed(&mut s, [1, 2, 3, 5, 6, 4, 6, 4, 9, 10]);
        assert_eq!(v[5], Verdict::Reordered);
        assert_eq!(v[6], Verdict::Duplicate);
        assert_eq!(v[7], Verdict::Duplicate);
        // Expected 2..=10 (9), received 2,3,5,6,4,9,10 (7): 7 and 8 lost.
        assert_eq!((s.expected(), s.received(), s.lost()), (9, 7, 2));
        assert_eq!((s.duplicates(), s.reordered()), (2, 1));
        let rb = s.report_block(42);
        assert_eq!(rb.cumulative_lost, 2);
        assert_eq!(rb.fraction_lost, 56); // (2 << 8) / 9
        assert_eq!(rb.highest_sequence, 10);
        // The next interval starts clean.
        feed(&mut s, [11, 12]);
        assert_eq!(s.report_block(42).fraction_lost, 0);
    }

    #[test]
    fn sequence_wraps_into_cycles() {
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, [65534, 65535, 0, 1]);
        assert_eq!(s.extended_max(), 65536 + 1);
        assert_eq!((s.expected(), s.lost()), (3, 0));
        // A late packet from before the wrap is a reorder, not a jump.
        feed(&mut s, [3]);
        assert_eq!(s.on_packet(2, 0, 0), Verdict::Reordered);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.report_block(1).highest_sequence, 0x0001_0003);
    }

    #[test]
    fn jump_then_restart() {
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, [100, 101, 102]);
        assert_eq!(s.on_packet(40000, 0, 0), Verdict::Jump);
        assert_eq!(s.on_packet(40001, 0, 0), Verdict::Restarted);
        assert_eq!(s.on_packet(40002, 0, 0), Verdict::InOrder);
        assert_eq!(
            (s.expected(), s.received(), s.extended_max()),
            (2, 2, 40002)
        );
        // A single stray jump does not move the stream.
        assert_eq!(s.on_packet(9, 0, 0), Verdict::Jump);
        assert_eq!(s.on_packet(40003, 0, 0), Verdict::InOrder);
    }

    /// RFC 3550 A.8 by hand: packets every 20 ms (160 ticks) arriving
    /// alternately 0 and 5 ms late, so |D| = 40 ticks each time after the
    /// first; J(n) = J(n-1) + (40 - J(n-1)) / 16 in the integer form.
    #[test]
    fn jitter_follows_rfc3550_a8() {
        let mut s = ReceiveStats::new(8000);
        let mut expected_q4: u64 = 0;
        for i in 0..200u64 {
            let late = if i % 2 == 1 { 5 * MS } else { 0 };
            s.on_packet(i as u16, (i * 160) as u32, i * 20 * MS + late);
            if i > 0 {
                expected_q4 = expected_q4 + 40 - ((expected_q4 + 8) >> 4);
            }
            assert_eq!(s.jitter_q4, expected_q4, "packet {i}");
        }
        // Converges to |D| = 40 ticks = 5 ms.
        assert_eq!(s.jitter(), 40 - 1);
        assert!((s.jitter_ms() - 5.0).abs() < 0.1, "{}", s.jitter_ms());
        // A steady stream has none.
        let mut s = ReceiveStats::new(8000);
        feed(&mut s, 0..100);
        assert_eq!(s.jitter(), 0);
    }

    #[test]
    fn jitter_survives_timestamp_wrap() {
        let mut s = ReceiveStats::new(8000);
        let start = u32::MAX - 160 * 10;
        for i in 0..40u32 {
            s.on_packet(
                i as u16,
                start.wrapping_add(i * 160),
                u64::from(i) * 20 * MS,
            );
        }
        assert_eq!(s.jitter(), 0);
    }
}
