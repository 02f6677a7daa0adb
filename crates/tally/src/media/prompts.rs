//! Prompts as the relay plays them (issue 14): audio decoded and encoded
//! once, shared by every call that plays it.
//!
//! - **Built-in prompts are made from tones** at first use
//!   ([`builtin`]): reproducible sample for sample, no recording and no
//!   licence to ship, each with its own frequency so a test (or a person)
//!   can tell them apart: menu 600 Hz (three 0.5 s beeps), invalid
//!   1100 Hz (two short beeps), goodbye 500 Hz then 400 Hz, please hold
//!   800 Hz, ringback 425 Hz (1 s on, 2 s off, looped), an agent logged
//!   in 1000 then 1300 Hz (rising), logged out 1300 then 1000 Hz. Their durations
//!   are the engine's (`pbx::BuiltinPrompt::duration`), which times the
//!   IVR's digit timeout from them. See DESIGN.md "IVRs and queues".
//! - **Tenant prompts** (`/api/prompts`) are WAV files, 8 or 16 kHz PCM16
//!   mono (16 kHz is decimated to 8 kHz with a 2-tap average), held in a
//!   [`PromptLibrary`] once decoded; the store keeps the file.
//! - Each prompt is kept in both G.711 laws: a packet is a slice of it,
//!   never an encoding per packet.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use cdr::Id;
use media::g711::Law;
use media::tone::Tone;
use pbx::BuiltinPrompt;
use pbx::apps::G711;

/// The longest prompt a tenant may upload.
pub const MAX_PROMPT_SECS: u32 = 120;
/// The largest WAV a tenant may upload (120 s of 16 kHz PCM16 and a
/// header).
pub const MAX_PROMPT_BYTES: usize = 4 * 1024 * 1024;

/// One prompt, ready to send.
#[derive(Debug)]
pub struct Audio {
    pcmu: Box<[u8]>,
    pcma: Box<[u8]>,
}

impl Audio {
    /// From 8 kHz samples (padded with silence to whole 20 ms packets).
    pub fn from_pcm(samples: &[i16]) -> Audio {
        let mut pcm = samples.to_vec();
        let rest = pcm.len() % 160;
        if rest != 0 || pcm.is_empty() {
            pcm.resize(pcm.len() + 160 - rest, 0);
        }
        let encode = |law: Law| {
            let mut out = vec![0u8; pcm.len()];
            law.encode_into(&pcm, &mut out);
            out.into_boxed_slice()
        };
        Audio {
            pcmu: encode(Law::Pcmu),
            pcma: encode(Law::Pcma),
        }
    }

    /// The encoded samples in `law`.
    pub fn encoded(&self, law: G711) -> &[u8] {
        match law {
            G711::Pcmu => &self.pcmu,
            G711::Pcma => &self.pcma,
        }
    }

    /// Length in milliseconds.
    #[cfg(test)]
    pub fn duration_ms(&self) -> u64 {
        self.pcmu.len() as u64 / 8
    }
}

/// Why an upload is not a prompt.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromptError {
    #[error("not a WAV file of 16-bit PCM: {0}")]
    NotWav(String),
    #[error("{0} Hz: a prompt must be 8000 or 16000 Hz")]
    SampleRate(u32),
    #[error("{0} channels: a prompt must be mono")]
    Channels(usize),
    #[error("the prompt is empty")]
    Empty,
    #[error("{secs:.1} s: a prompt may last {MAX_PROMPT_SECS} s at most")]
    TooLong { secs: f64 },
    #[error("{0} bytes: a prompt file may be {MAX_PROMPT_BYTES} bytes at most")]
    TooLarge(usize),
}

/// Decodes an uploaded WAV into 8 kHz samples (checks in the order a user
/// can fix them).
pub fn decode_wav(bytes: &[u8]) -> Result<Vec<i16>, PromptError> {
    if bytes.len() > MAX_PROMPT_BYTES {
        return Err(PromptError::TooLarge(bytes.len()));
    }
    let wav = media::wav::Wav::parse(bytes).map_err(|e| PromptError::NotWav(e.to_string()))?;
    if wav.channels.len() != 1 {
        return Err(PromptError::Channels(wav.channels.len()));
    }
    let samples = &wav.channels[0];
    let pcm: Vec<i16> = match wav.sample_rate {
        8000 => samples.clone(),
        16000 => samples
            .chunks(2)
            .map(|c| ((i32::from(c[0]) + i32::from(*c.get(1).unwrap_or(&c[0]))) / 2) as i16)
            .collect(),
        other => return Err(PromptError::SampleRate(other)),
    };
    if pcm.is_empty() {
        return Err(PromptError::Empty);
    }
    let secs = pcm.len() as f64 / 8000.0;
    if secs > f64::from(MAX_PROMPT_SECS) {
        return Err(PromptError::TooLong { secs });
    }
    Ok(pcm)
}

/// Segments of a built-in prompt: (frequency, ms), 0 Hz is silence.
fn pattern(p: BuiltinPrompt) -> &'static [(f64, u32)] {
    match p {
        BuiltinPrompt::Menu => &[
            (600.0, 500),
            (0.0, 100),
            (600.0, 500),
            (0.0, 100),
            (600.0, 500),
            (0.0, 100),
        ],
        BuiltinPrompt::Invalid => &[(1100.0, 300), (0.0, 100), (1100.0, 300), (0.0, 100)],
        BuiltinPrompt::Goodbye => &[(500.0, 350), (400.0, 350), (0.0, 100)],
        BuiltinPrompt::PleaseHold => &[(800.0, 900), (0.0, 100)],
        BuiltinPrompt::Ringback => &[(425.0, 1000), (0.0, 2000)],
        BuiltinPrompt::Moh => &[
            (523.0, 500),
            (659.0, 500),
            (784.0, 500),
            (659.0, 500),
            (523.0, 1000),
            (0.0, 1000),
        ],
        BuiltinPrompt::LoggedIn => &[(1000.0, 250), (1300.0, 250), (0.0, 100)],
        BuiltinPrompt::LoggedOut => &[(1300.0, 250), (1000.0, 250), (0.0, 100)],
    }
}

/// The 8 kHz samples of a built-in prompt.
pub fn builtin_pcm(p: BuiltinPrompt) -> Vec<i16> {
    tones_pcm(pattern(p))
}

/// 8 kHz samples of tone segments (Hz, ms; 0 Hz is silence).
fn tones_pcm(segments: &[(f64, u32)]) -> Vec<i16> {
    let mut out = Vec::new();
    for &(freq, ms) in segments {
        let n = (ms * 8) as usize;
        let start = out.len();
        out.resize(start + n, 0);
        if freq > 0.0 {
            Tone::sine(freq, 0.3, 8000).fill(&mut out[start..]);
        }
    }
    out
}

/// A built-in prompt, made once per process.
pub fn builtin(p: BuiltinPrompt) -> Arc<Audio> {
    static ALL: OnceLock<Vec<(BuiltinPrompt, Arc<Audio>)>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        BuiltinPrompt::ALL
            .iter()
            .map(|p| (*p, Arc::new(Audio::from_pcm(&builtin_pcm(*p)))))
            .collect()
    });
    all.iter()
        .find(|(q, _)| *q == p)
        .map(|(_, a)| Arc::clone(a))
        .expect("every built-in prompt is made")
}

/// "You are caller number `n`" (`pbx::apps::caller_number_tones`), made
/// once per number and kept: a queue's callers hear the same few numbers
/// again and again.
pub fn caller_number(n: u32) -> Arc<Audio> {
    static MADE: OnceLock<std::sync::Mutex<HashMap<u32, Arc<Audio>>>> = OnceLock::new();
    let made = MADE.get_or_init(Default::default);
    let mut made = made
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Arc::clone(made.entry(n).or_insert_with(|| {
        Arc::new(Audio::from_pcm(&tones_pcm(
            &pbx::apps::caller_number_tones(n),
        )))
    }))
}

/// Tenant prompts in memory, by id: filled at start-up and on upload,
/// read when a call plays one (a lock per play command, never per packet).
#[derive(Clone, Default)]
pub struct PromptLibrary {
    prompts: Arc<RwLock<HashMap<Id, Arc<Audio>>>>,
}

impl PromptLibrary {
    pub fn insert(&self, id: Id, audio: Audio) {
        self.prompts
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id, Arc::new(audio));
    }

    /// The tenant prompts held now.
    pub fn ids(&self) -> Vec<Id> {
        self.prompts
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .copied()
            .collect()
    }

    pub fn remove(&self, id: Id) {
        self.prompts
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&id);
    }

    /// The audio of `prompt`; `None` for a tenant prompt not loaded.
    pub fn get(&self, prompt: pbx::PromptRef) -> Option<Arc<Audio>> {
        match prompt {
            pbx::PromptRef::Builtin(p) => Some(builtin(p)),
            pbx::PromptRef::CallerNumber(n) => Some(caller_number(n)),
            pbx::PromptRef::Tenant(id) => self
                .prompts
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&id)
                .cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use media::tone::dominant;

    use super::*;

    #[test]
    fn builtins_last_what_the_engine_times_and_have_their_own_tone() {
        for p in BuiltinPrompt::ALL {
            let audio = builtin(p);
            assert_eq!(
                audio.duration_ms(),
                p.duration().as_millis() as u64,
                "{p:?}"
            );
            let pcm = builtin_pcm(p);
            assert_eq!(pcm, builtin_pcm(p), "reproducible");
        }
        let cands = [425.0, 500.0, 600.0, 800.0, 1100.0];
        let first = |p| dominant(&builtin_pcm(p)[..800], &cands, 8000, 0.7);
        assert_eq!(first(BuiltinPrompt::Menu), Some(600.0));
        assert_eq!(first(BuiltinPrompt::Invalid), Some(1100.0));
        assert_eq!(first(BuiltinPrompt::Ringback), Some(425.0));
    }

    /// "You are caller number 12": the 950 Hz chime, then one 1400 Hz
    /// pip, a pause, two pips, as long as the engine times it.
    #[test]
    fn caller_numbers_count_out_their_digits_in_pips() {
        let audio = caller_number(12);
        assert_eq!(
            audio.duration_ms(),
            pbx::apps::caller_number_duration(12).as_millis() as u64
        );
        let pcm = tones_pcm(&pbx::apps::caller_number_tones(12));
        assert_eq!(
            dominant(&pcm[..3200], &[950.0, 1400.0], 8000, 0.7),
            Some(950.0)
        );
        assert_eq!(pip_groups(&pcm), vec![1, 2]);
        assert_eq!(
            pip_groups(&tones_pcm(&pbx::apps::caller_number_tones(3))),
            vec![3]
        );
        assert_eq!(
            pip_groups(&tones_pcm(&pbx::apps::caller_number_tones(10))),
            vec![1, 10]
        );
    }

    /// Pips counted per digit: 20 ms frames where 1400 Hz dominates,
    /// a group ends at 400 ms without one.
    fn pip_groups(pcm: &[i16]) -> Vec<usize> {
        let mut groups = Vec::new();
        let (mut count, mut on, mut quiet) = (0, false, 0);
        for f in pcm.chunks_exact(160) {
            let pip = dominant(f, &[950.0, 1400.0], 8000, 0.6) == Some(1400.0);
            if pip && !on {
                count += 1;
            }
            quiet = if pip { 0 } else { quiet + 1 };
            on = pip;
            if quiet == 20 && count > 0 {
                groups.push(count);
                count = 0;
            }
        }
        groups
    }

    fn wav(rate: u32, channels: u16, samples: usize) -> Vec<u8> {
        let mut w =
            media::wav::WavWriter::new(std::io::Cursor::new(Vec::new()), channels, rate).unwrap();
        w.write_samples(&vec![1000i16; samples * usize::from(channels)])
            .unwrap();
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn uploads_are_checked() {
        assert_eq!(decode_wav(&wav(8000, 1, 8000)).unwrap().len(), 8000);
        assert_eq!(decode_wav(&wav(16000, 1, 16000)).unwrap().len(), 8000);
        assert_eq!(
            decode_wav(&wav(44100, 1, 100)),
            Err(PromptError::SampleRate(44100))
        );
        assert_eq!(
            decode_wav(&wav(8000, 2, 100)),
            Err(PromptError::Channels(2))
        );
        assert_eq!(decode_wav(&wav(8000, 1, 0)), Err(PromptError::Empty));
        assert!(matches!(
            decode_wav(&wav(8000, 1, 8000 * 121)),
            Err(PromptError::TooLong { .. })
        ));
        assert!(matches!(
            decode_wav(b"ID3\x03 this is an mp3"),
            Err(PromptError::NotWav(_))
        ));
        assert!(matches!(
            decode_wav(&vec![0u8; MAX_PROMPT_BYTES + 1]),
            Err(PromptError::TooLarge(_))
        ));
    }
}
