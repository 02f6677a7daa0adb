//! G.711 µ-law and A-law (ITU-T G.711), on 16-bit linear PCM.
//!
//! Decoding is a 256-entry table built at compile time; encoding follows
//! the segment search of the reference implementation (µ-law: bias 0x84,
//! clip 32635; A-law: 13-bit magnitude, even bits inverted with 0x55).
//! Both codecs are 8 kHz, one byte per sample.

/// The two G.711 laws, with their static RTP payload types (RFC 3551).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// µ-law, payload type 0.
    Pcmu,
    /// A-law, payload type 8.
    Pcma,
}

impl Law {
    /// The law of a static payload type, if it is one.
    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Pcmu),
            8 => Some(Law::Pcma),
            _ => None,
        }
    }

    /// The encoding name as SDP's `a=rtpmap` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Law::Pcmu => "PCMU",
            Law::Pcma => "PCMA",
        }
    }

    pub fn payload_type(self) -> u8 {
        match self {
            Law::Pcmu => 0,
            Law::Pcma => 8,
        }
    }

    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Pcmu => ulaw_to_linear(code),
            Law::Pcma => alaw_to_linear(code),
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Pcmu => linear_to_ulaw(sample),
            Law::Pcma => linear_to_alaw(sample),
        }
    }

    /// Decodes `codes` into the front of `out`; returns how many samples
    /// were written (the shorter of the two).
    pub fn decode_into(self, codes: &[u8], out: &mut [i16]) -> usize {
        let table = match self {
            Law::Pcmu => &ULAW_TABLE,
            Law::Pcma => &ALAW_TABLE,
        };
        let n = codes.len().min(out.len());
        for (o, c) in out[..n].iter_mut().zip(codes) {
            *o = table[usize::from(*c)];
        }
        n
    }

    /// Encodes `samples` into the front of `out`; returns how many bytes
    /// were written.
    pub fn encode_into(self, samples: &[i16], out: &mut [u8]) -> usize {
        let n = samples.len().min(out.len());
        for (o, s) in out[..n].iter_mut().zip(samples) {
            *o = self.encode(*s);
        }
        n
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

static ULAW_TABLE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_decode_slow(i as u8);
        i += 1;
    }
    t
};

static ALAW_TABLE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_decode_slow(i as u8);
        i += 1;
    }
    t
};

const fn ulaw_decode_slow(code: u8) -> i16 {
    let u = !code;
    let mut t = (((u & 0x0f) as i32) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

const fn alaw_decode_slow(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0f) as i32) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TABLE[usize::from(code)]
}

pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TABLE[usize::from(code)]
}

pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let mask: u8 = if pcm < 0 {
        pcm = -pcm;
        0x7f
    } else {
        0xff
    };
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    // Segment = position of the highest set bit above bit 7 (pcm >= 0x84).
    let seg = (31 - pcm.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (pcm >> (seg + 3)) & 0x0f;
    ((seg << 4) as u8 | mantissa as u8) ^ mask
}

pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xd5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    // Segment ends 0x1f, 0x3f, …, 0xfff: the segment is the bit length
    // above 5.
    let bits = 32 - pcm.leading_zeros() as i32;
    let seg = (bits - 5).max(0);
    if seg >= 8 {
        return 0x7f ^ mask;
    }
    let mantissa = if seg < 2 {
        (pcm >> 1) & 0x0f
    } else {
        (pcm >> seg) & 0x0f
    };
    ((seg << 4) as u8 | mantissa as u8) ^ mask
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from the G.711 decoding tables (as printed in the reference
    /// implementation's comments and every codec table since).
    #[test]
    fn ulaw_known_vectors() {
        for (code, linear) in [
            (0x00u8, -32124i16),
            (0x0f, -16764),
            (0x10, -15996),
            (0x70, -120),
            (0x7e, -8),
            (0x7f, 0),
            (0x80, 32124),
            (0xf0, 120),
            (0xfe, 8),
            (0xff, 0),
        ] {
            assert_eq!(ulaw_to_linear(code), linear, "code {code:#04x}");
        }
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(-8), 0x7e);
    }

    #[test]
    fn alaw_known_vectors() {
        for (code, linear) in [
            (0xd5u8, 8i16),
            (0x55, -8),
            (0xaa, 32256),
            (0x2a, -32256),
            (0xd4, 24),
            (0xc5, 264),
            (0x80, 5504),
        ] {
            assert_eq!(alaw_to_linear(code), linear, "code {code:#04x}");
        }
        assert_eq!(linear_to_alaw(0), 0xd5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xaa);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2a);
    }

    #[test]
    fn every_code_round_trips() {
        for code in 0..=255u8 {
            // µ-law 0x7f is negative zero; it encodes back as positive zero.
            let expect = if code == 0x7f { 0xff } else { code };
            assert_eq!(
                linear_to_ulaw(ulaw_to_linear(code)),
                expect,
                "µ-law {code:#04x}"
            );
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn slices() {
        let mut pcm = [0i16; 4];
        assert_eq!(Law::Pcma.decode_into(&[0xd5, 0x55, 0xaa], &mut pcm), 3);
        assert_eq!(pcm, [8, -8, 32256, 0]);
        let mut codes = [0u8; 2];
        assert_eq!(Law::Pcmu.encode_into(&[0, 1, 2], &mut codes), 2);
        assert_eq!(codes, [0xff, 0xff]);
        assert_eq!(Law::from_payload_type(8), Some(Law::Pcma));
        assert_eq!(Law::from_payload_type(18), None);
    }
}
