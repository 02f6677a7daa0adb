//! A MOS estimate from what a relay sees: loss, jitter and the codec.
//!
//! The ITU-T G.107 E-model, simplified the way passive VoIP monitors do it
//! (only the impairments a relay can measure; every other G.107 input at
//! its default):
//!
//! - `R = R0 − Id − Ie_eff`, with `R0 = 93.2` (G.107's default for all
//!   other inputs);
//! - delay impairment, the Cole–Rosenbluth fit of G.107:
//!   `Id = 0.024·d + 0.11·(d − 177.3)·H(d − 177.3)`, where `d` is the
//!   one-way delay in ms; a relay does not know the network delay, so `d`
//!   is estimated as a jitter buffer of `2 × jitter` plus 20 ms of
//!   packetisation plus 10 ms of processing, plus any delay the caller
//!   measured (RTCP round trip / 2);
//! - equipment impairment with random loss (G.107 §7.2, `BurstR = 1`):
//!   `Ie_eff = Ie + (95 − Ie) · Ppl / (Ppl + Bpl)`, `Ppl` the loss in
//!   percent; `Ie`/`Bpl` from G.113 Appendix I: G.711 with packet-loss
//!   concealment `Ie = 0, Bpl = 25.1`; G.729A `Ie = 11, Bpl = 19.0`;
//!   codecs without a G.113 entry (G.722, Opus…) are judged as G.711;
//! - MOS from R (G.107 Annex B): `1` below 0, `4.5` above 100, else
//!   `1 + 0.035·R + 7·10⁻⁶·R·(R − 60)·(100 − R)`.
//!
//! A perfect G.711 call scores 4.39 (R = 92.48).

const R0: f64 = 93.2;
const PACKETIZATION_MS: f64 = 20.0;
const PROCESSING_MS: f64 = 10.0;

/// A codec's G.113 impairment figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecImpairment {
    /// Equipment impairment factor with no loss.
    pub ie: f64,
    /// Packet-loss robustness factor.
    pub bpl: f64,
}

impl CodecImpairment {
    pub const G711: CodecImpairment = CodecImpairment { ie: 0.0, bpl: 25.1 };
    pub const G729A: CodecImpairment = CodecImpairment {
        ie: 11.0,
        bpl: 19.0,
    };

    /// By encoding name as in `a=rtpmap` (case-insensitive).
    pub fn for_codec(name: &str) -> CodecImpairment {
        if name.eq_ignore_ascii_case("G729") || name.eq_ignore_ascii_case("G729A") {
            Self::G729A
        } else {
            Self::G711
        }
    }
}

/// The R factor; `loss_ratio` 0.0–1.0, `jitter_ms` interarrival jitter,
/// `extra_delay_ms` any measured one-way delay (0 when unknown).
pub fn r_factor(
    codec: CodecImpairment,
    loss_ratio: f64,
    jitter_ms: f64,
    extra_delay_ms: f64,
) -> f64 {
    let d = 2.0 * jitter_ms.max(0.0) + PACKETIZATION_MS + PROCESSING_MS + extra_delay_ms.max(0.0);
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let ppl = (loss_ratio.clamp(0.0, 1.0)) * 100.0;
    let ie_eff = codec.ie + (95.0 - codec.ie) * ppl / (ppl + codec.bpl);
    R0 - id - ie_eff
}

/// MOS (1.0–4.5) from an R factor (G.107 Annex B).
pub fn mos_from_r(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + 7.0e-6 * r * (r - 60.0) * (100.0 - r)
    }
}

/// MOS for a codec by name, rounded to two decimals as the CDR shows it.
pub fn mos(codec: &str, loss_ratio: f64, jitter_ms: f64) -> f64 {
    let r = r_factor(
        CodecImpairment::for_codec(codec),
        loss_ratio,
        jitter_ms,
        0.0,
    );
    (mos_from_r(r) * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_points() {
        // G.107 Annex B: R = 93.2 is MOS 4.41; R = 50 is 2.58; R = 0 is 1.
        assert!((mos_from_r(93.2) - 4.41).abs() < 0.01);
        assert!((mos_from_r(50.0) - 2.58).abs() < 0.01);
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
        assert_eq!(mos_from_r(f64::NAN), 1.0);
        // A clean G.711 call: d = 30 ms, Id = 0.72, R = 92.48.
        assert!((r_factor(CodecImpairment::G711, 0.0, 0.0, 0.0) - 92.48).abs() < 1e-9);
        assert_eq!(mos("PCMU", 0.0, 0.0), 4.39);
    }

    #[test]
    fn loss_jitter_and_codec_lower_the_score() {
        let clean = mos("PCMA", 0.0, 0.0);
        let lossy = mos("PCMA", 0.05, 0.0);
        let very_lossy = mos("PCMA", 0.20, 0.0);
        let jittery = mos("PCMA", 0.0, 120.0);
        assert!(
            clean > lossy && lossy > very_lossy,
            "{clean} {lossy} {very_lossy}"
        );
        assert!(jittery < clean);
        // 5 % random loss on G.711 with PLC: Ie_eff = 95·5/30.1 = 15.78.
        let r = r_factor(CodecImpairment::G711, 0.05, 0.0, 0.0);
        assert!((r - (92.48 - 95.0 * 5.0 / 30.1)).abs() < 1e-9);
        assert!(mos("G729", 0.0, 0.0) < clean);
        assert!(mos("opus", 1.0, 1000.0) >= 1.0);
    }
}
