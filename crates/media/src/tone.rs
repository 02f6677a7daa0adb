//! Tones: sine and dual-tone generation, and the Goertzel detector.
//!
//! The end-to-end tests send a tone through the relay and check its
//! frequency in the recording; IVRs will play and detect DTMF with the same
//! functions.

use std::f64::consts::TAU;

/// DTMF row and column frequencies (ITU-T Q.23).
const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// A sine generator that keeps its phase across calls, so packets join
/// without clicks.
#[derive(Debug, Clone)]
pub struct Tone {
    freqs: [f64; 2],
    amplitude: f64,
    sample_rate: f64,
    n: u64,
}

impl Tone {
    /// One frequency; `amplitude` is the peak as a fraction of full scale.
    pub fn sine(freq: f64, amplitude: f64, sample_rate: u32) -> Self {
        Tone {
            freqs: [freq, 0.0],
            amplitude: amplitude.clamp(0.0, 1.0),
            sample_rate: f64::from(sample_rate.max(1)),
            n: 0,
        }
    }

    /// The DTMF pair for `key`, each at half of `amplitude`.
    pub fn dtmf(key: char, amplitude: f64, sample_rate: u32) -> Option<Self> {
        let key = key.to_ascii_uppercase();
        let (r, c) = (0..16)
            .map(|i| (i / 4, i % 4))
            .find(|(r, c)| KEYS[*r][*c] == key)?;
        Some(Tone {
            freqs: [ROWS[r], COLS[c]],
            amplitude: amplitude.clamp(0.0, 1.0) / 2.0,
            sample_rate: f64::from(sample_rate.max(1)),
            n: 0,
        })
    }

    /// Fills `out` with the next samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        for s in out {
            let t = self.n as f64 / self.sample_rate;
            let v: f64 = self
                .freqs
                .iter()
                .filter(|f| **f > 0.0)
                .map(|f| (TAU * f * t).sin())
                .sum();
            *s = (v * self.amplitude * f64::from(i16::MAX)).round() as i16;
            self.n += 1;
        }
    }
}

/// The power of `freq` in `samples` (Goertzel), normalised by the block
/// length so blocks of different sizes compare.
pub fn goertzel(samples: &[i16], freq: f64, sample_rate: u32) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let coeff = 2.0 * (TAU * freq / f64::from(sample_rate.max(1))).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in samples {
        let s0 = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power / (samples.len() as f64).powi(2)
}

/// Of `candidates`, the frequency with the most power, if it holds at
/// least `share` (0–1) of the block's total energy; `None` for silence,
/// noise or speech.
pub fn dominant(samples: &[i16], candidates: &[f64], sample_rate: u32, share: f64) -> Option<f64> {
    let energy: f64 =
        samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len().max(1) as f64;
    if energy < 1.0 {
        return None;
    }
    let (f, p) = candidates
        .iter()
        .map(|f| (*f, goertzel(samples, *f, sample_rate)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    // A pure sine of amplitude A has mean energy A²/2 and Goertzel power
    // A²/4 with this normalisation.
    (2.0 * p / energy >= share).then_some(f)
}

/// The DTMF key in a block (≥ 20 ms at 8 kHz), if one is clearly there.
pub fn detect_dtmf(samples: &[i16], sample_rate: u32) -> Option<char> {
    let best = |fs: &[f64; 4]| {
        let powers = fs.map(|f| goertzel(samples, f, sample_rate));
        let (i, p) = powers
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, p)| (i, *p))?;
        // The winner must stand well above the others in its group.
        let others = powers
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, q)| *q)
            .fold(0.0, f64::max);
        (p > 8.0 * others && p > 1000.0).then_some(i)
    };
    let r = best(&ROWS)?;
    let c = best(&COLS)?;
    Some(KEYS[r][c])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_tone_is_found_and_others_are_not() {
        let mut tone = Tone::sine(1000.0, 0.5, 8000);
        let mut block = [0i16; 800];
        tone.fill(&mut block);
        let cands = [400.0, 800.0, 1000.0, 1200.0, 2000.0];
        assert_eq!(dominant(&block, &cands, 8000, 0.8), Some(1000.0));
        // Silence and white-ish noise have no dominant tone.
        assert_eq!(dominant(&[0; 800], &cands, 8000, 0.8), None);
        let mut x: u32 = 1;
        let noise: Vec<i16> = (0..800)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as i16
            })
            .collect();
        assert_eq!(dominant(&noise, &cands, 8000, 0.8), None);
    }

    #[test]
    fn dtmf_keys_round_trip() {
        for key in "0123456789*#ABCD".chars() {
            let mut block = [0i16; 320];
            Tone::dtmf(key, 0.5, 8000).unwrap().fill(&mut block);
            assert_eq!(detect_dtmf(&block, 8000), Some(key));
        }
        assert!(Tone::dtmf('x', 0.5, 8000).is_none());
        let mut block = [0i16; 320];
        Tone::sine(770.0, 0.5, 8000).fill(&mut block);
        assert_eq!(detect_dtmf(&block, 8000), None);
    }
}
