//! In-band DTMF: keys heard in the audio itself (ITU-T Q.23 tones), for
//! G.711 callers that offered no RFC 4733 telephone-event. Sans-IO: the
//! relay feeds the caller's decoded samples (or G.711 payloads) and gets
//! each key once, when it has lasted long enough.
//!
//! # Decisions
//!
//! - **Goertzel over blocks of [`BLOCK`] samples** (105 at 8 kHz,
//!   13.1 ms; 697 and 770 Hz, the closest pair, are then about one bin
//!   apart, where each one's filter nulls the other), not overlapping. Each block is tested for the eight DTMF frequencies and
//!   their second harmonics.
//! - **A block holds a key** when, in both the row and the column group:
//!   the strongest tone is at least [`MIN_TONE_POWER`] (-40 dBFS per
//!   tone) and 6 dB above the group's others; the twist (column over row
//!   power) is within -8 dB (reverse) and +4 dB (normal), Q.24's common
//!   limits; the two tones carry at least [`MIN_TONE_SHARE`] of the
//!   block's energy (speech and music spread theirs); and neither tone's
//!   second harmonic reaches a tenth of its power (voiced speech is rich in
//!   harmonics; a DTMF tone is a pure sine). Together these are the usual
//!   talk-off guards.
//! - **Duration**: a key is reported when [`MIN_BLOCKS`] consecutive
//!   blocks hold it (39 ms: a 40 ms tone, Q.24's shortest to accept,
//!   always fills three), once; it is released after [`MIN_GAP_BLOCKS`]
//!   blocks without it (a 40 ms pause), so a key held long is one digit,
//!   two presses are two, and a tone of 30 ms or less is none.

use std::f64::consts::TAU;

use crate::g711::Law;

/// Samples per analysis block at 8 kHz.
pub const BLOCK: usize = 105;
/// Consecutive blocks a key must hold to be reported.
pub const MIN_BLOCKS: u32 = 3;
/// Consecutive blocks without the key before the same key can be
/// reported again.
pub const MIN_GAP_BLOCKS: u32 = 3;
/// The least power (normalised Goertzel, see [`crate::tone::goertzel`])
/// of each tone: a sine of amplitude A gives A²/4, so about 320 of
/// 32767 (-40 dBFS) at least.
pub const MIN_TONE_POWER: f64 = 25_000.0;
/// The least share of the block's energy the two tones carry.
pub const MIN_TONE_SHARE: f64 = 0.7;
/// Normal twist (column stronger than row) allowed, as a power ratio
/// (+4 dB).
const MAX_NORMAL_TWIST: f64 = 2.512;
/// Reverse twist (row stronger than column) allowed (+8 dB).
const MAX_REVERSE_TWIST: f64 = 6.31;
/// The strongest tone of a group over each other one (+6 dB).
const MIN_GROUP_RATIO: f64 = 4.0;
/// A tone's second harmonic over the tone, at most (-10 dB).
const MAX_HARMONIC: f64 = 0.1;

const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
const RATE: f64 = 8000.0;

/// The streaming detector of one caller's audio (8 kHz).
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    block: [i16; BLOCK],
    filled: usize,
    /// What the last blocks held (a key or none), and for how many.
    candidate: Option<char>,
    run: u32,
    /// The key reported and not released yet.
    reported: Option<char>,
    gap: u32,
    /// Scratch for decoding G.711 payloads.
    pcm: Vec<i16>,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfDetector {
    pub fn new() -> Self {
        DtmfDetector {
            block: [0; BLOCK],
            filled: 0,
            candidate: None,
            run: 0,
            reported: None,
            gap: 0,
            pcm: Vec::new(),
        }
    }

    /// Feeds 8 kHz samples; `on_key` gets each key once, as it is
    /// recognised.
    pub fn push(&mut self, mut samples: &[i16], mut on_key: impl FnMut(char)) {
        while !samples.is_empty() {
            let n = (BLOCK - self.filled).min(samples.len());
            self.block[self.filled..self.filled + n].copy_from_slice(&samples[..n]);
            self.filled += n;
            samples = &samples[n..];
            if self.filled == BLOCK {
                self.filled = 0;
                let key = block_key(&self.block);
                if let Some(k) = self.step(key) {
                    on_key(k);
                }
            }
        }
    }

    /// Feeds a G.711 payload in `law`.
    pub fn push_g711(&mut self, law: Law, payload: &[u8], on_key: impl FnMut(char)) {
        let mut pcm = std::mem::take(&mut self.pcm);
        pcm.resize(payload.len(), 0);
        let n = law.decode_into(payload, &mut pcm);
        self.push(&pcm[..n], on_key);
        self.pcm = pcm;
    }

    /// One block's verdict into the duration rules: the key to report now.
    fn step(&mut self, key: Option<char>) -> Option<char> {
        if key == self.candidate {
            self.run += 1;
        } else {
            self.candidate = key;
            self.run = 1;
        }
        if let Some(held) = self.reported {
            if key == Some(held) {
                self.gap = 0;
                return None;
            }
            self.gap += 1;
            if self.gap < MIN_GAP_BLOCKS {
                return None;
            }
            self.reported = None;
        }
        let key = key.filter(|_| self.run >= MIN_BLOCKS)?;
        self.reported = Some(key);
        self.gap = 0;
        Some(key)
    }
}

/// The Goertzel power of `freq` in `block`, normalised as
/// [`crate::tone::goertzel`] is.
fn power(block: &[i16], freq: f64) -> f64 {
    let coeff = 2.0 * (TAU * freq / RATE).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in block {
        let s0 = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (block.len() as f64).powi(2)
}

/// The strongest tone of `group` and its power, when it stands out.
fn strongest(block: &[i16], group: &[f64; 4]) -> Option<(usize, f64)> {
    let p = group.map(|f| power(block, f));
    let (i, best) = p
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let others = p
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .all(|(_, q)| best >= MIN_GROUP_RATIO * q);
    (best >= MIN_TONE_POWER && others).then_some((i, best))
}

/// The key one block holds, if it passes every check of the module doc.
fn block_key(block: &[i16]) -> Option<char> {
    let (r, row) = strongest(block, &ROWS)?;
    let (c, col) = strongest(block, &COLS)?;
    if col > MAX_NORMAL_TWIST * row || row > MAX_REVERSE_TWIST * col {
        return None;
    }
    let energy = block.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / block.len() as f64;
    // A sine's normalised power is half its mean energy.
    if 2.0 * (row + col) < MIN_TONE_SHARE * energy {
        return None;
    }
    if power(block, 2.0 * ROWS[r]) > MAX_HARMONIC * row
        || power(block, 2.0 * COLS[c]) > MAX_HARMONIC * col
    {
        return None;
    }
    Some(KEYS[r][c])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::Tone;

    /// A deterministic noise source (uniform, ±`amplitude`).
    struct Noise(u32);

    impl Noise {
        fn next(&mut self, amplitude: f64) -> f64 {
            self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            ((self.0 >> 8) as f64 / f64::from(1u32 << 24) * 2.0 - 1.0) * amplitude
        }
    }

    /// `ms` of `key` at `amplitude` (each tone half of it), `row_gain`
    /// scaling the row tone (twist), with noise added.
    fn key(key: char, ms: usize, amplitude: f64, noise: f64, seed: u32) -> Vec<i16> {
        let n = ms * 8;
        let mut tone = vec![0i16; n];
        Tone::dtmf(key, amplitude, 8000).unwrap().fill(&mut tone);
        let mut rng = Noise(seed);
        tone.iter()
            .map(|s| (f64::from(*s) + rng.next(noise)).clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    fn silence(ms: usize) -> Vec<i16> {
        vec![0; ms * 8]
    }

    fn detect(samples: &[i16]) -> Vec<char> {
        let mut d = DtmfDetector::new();
        let mut keys = Vec::new();
        // In 20 ms packets, as the relay feeds it.
        for packet in samples.chunks(160) {
            d.push(packet, |k| keys.push(k));
        }
        keys
    }

    #[test]
    fn every_key_is_heard_once_in_either_law() {
        for k in "0123456789*#ABCD".chars() {
            let mut audio = silence(40);
            audio.extend(key(k, 100, 0.5, 0.0, 1));
            audio.extend(silence(100));
            assert_eq!(detect(&audio), vec![k], "{k}");
            for law in [Law::Pcmu, Law::Pcma] {
                let mut coded = vec![0u8; audio.len()];
                law.encode_into(&audio, &mut coded);
                let mut d = DtmfDetector::new();
                let mut keys = Vec::new();
                for packet in coded.chunks(160) {
                    d.push_g711(law, packet, |k| keys.push(k));
                }
                assert_eq!(keys, vec![k], "{k} {law:?}");
            }
        }
    }

    #[test]
    fn keys_in_noise_are_heard_and_presses_count_apart() {
        // About 20 dB signal to noise, two presses of 5 and one of 9, a
        // long one held for a second: 5, 5, 9.
        let mut audio = key('5', 80, 0.3, 1500.0, 2);
        audio.extend(key('5', 60, 0.0, 1500.0, 3));
        audio.extend(key('5', 80, 0.3, 1500.0, 4));
        audio.extend(key('9', 60, 0.0, 1500.0, 5));
        audio.extend(key('9', 1000, 0.3, 1500.0, 6));
        audio.extend(silence(60));
        assert_eq!(detect(&audio), vec!['5', '5', '9']);
    }

    #[test]
    fn too_short_too_weak_or_twisted_tones_are_not_keys() {
        // 30 ms: shorter than two blocks.
        let mut audio = key('1', 30, 0.5, 0.0, 1);
        audio.extend(silence(200));
        assert_eq!(detect(&audio), Vec::<char>::new(), "too short");
        // -45 dBm0-ish: too weak.
        assert_eq!(detect(&key('1', 200, 0.01, 0.0, 1)), Vec::<char>::new());
        // The column 12 dB above the row: more than the +4 dB allowed.
        let n = 1600;
        let (mut row, mut col) = (vec![0i16; n], vec![0i16; n]);
        Tone::sine(697.0, 0.05, 8000).fill(&mut row);
        Tone::sine(1209.0, 0.2, 8000).fill(&mut col);
        let twisted: Vec<i16> = row.iter().zip(&col).map(|(a, b)| a + b).collect();
        assert_eq!(detect(&twisted), Vec::<char>::new(), "twist");
        // Within limits (row 3 dB above the column): heard.
        Tone::sine(697.0, 0.2, 8000).fill(&mut row);
        Tone::sine(1209.0, 0.14, 8000).fill(&mut col);
        let fine: Vec<i16> = row.iter().zip(&col).map(|(a, b)| a + b).collect();
        assert_eq!(detect(&fine), vec!['1']);
    }

    /// Speech-like signals do not make keys (talk-off): voiced vowels
    /// (a 100–250 Hz fundamental gliding, with harmonics shaped by
    /// formants that pass near the DTMF frequencies), noise bursts
    /// (fricatives), and music on hold's notes.
    #[test]
    fn speech_and_music_do_not_trigger() {
        let mut rng = Noise(7);
        let mut audio = Vec::new();
        let mut phase = 0.0f64;
        // Ten seconds of "vowels": formants (F1, F2) near row/column tones.
        let vowels = [
            (700.0, 1220.0),
            (770.0, 1340.0),
            (850.0, 1480.0),
            (940.0, 1630.0),
            (300.0, 2300.0),
            (500.0, 900.0),
        ];
        for i in 0..10 * 8000 {
            let t = i as f64 / 8000.0;
            let f0 = 100.0 + 75.0 * (1.0 + (TAU * 0.7 * t).sin());
            phase += TAU * f0 / 8000.0;
            let (f1, f2) = vowels[(i / 4000) % vowels.len()];
            let mut v = 0.0;
            for h in 1..=30 {
                let fh = f0 * h as f64;
                if fh > 3800.0 {
                    break;
                }
                let gain = |f: f64, fc: f64| 1.0 / (1.0 + ((fh - fc) / (f * 0.15)).powi(2));
                let a = gain(f1, f1) + gain(f2, f2) * 0.7;
                v += a * (phase * h as f64).sin();
            }
            let envelope = 0.5 + 0.5 * (TAU * 3.0 * t).sin().abs();
            audio.push((v * 2500.0 * envelope + rng.next(300.0)) as i16);
        }
        // Fricative-like noise bursts.
        for _ in 0..8000 {
            audio.push(rng.next(8000.0) as i16);
        }
        assert_eq!(detect(&audio), Vec::<char>::new(), "talk-off");
        // A chord of two DTMF frequencies with strong harmonics (a
        // buzzy, voiced sound) is no key either.
        let mut buzzy = vec![0i16; 8000];
        for (i, s) in buzzy.iter_mut().enumerate() {
            let t = i as f64 / 8000.0;
            let wave = |f: f64| {
                (1..=4)
                    .map(|h| (TAU * f * h as f64 * t).sin() / h as f64)
                    .sum::<f64>()
            };
            *s = ((wave(697.0) + wave(1209.0)) * 5000.0) as i16;
        }
        assert_eq!(detect(&buzzy), Vec::<char>::new(), "harmonics");
    }
}
