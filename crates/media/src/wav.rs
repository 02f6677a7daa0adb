//! An incremental PCM16 WAV writer, and the reader the tests use.
//!
//! A recording is written while the call runs; if the process dies, the file
//! must still play. The RIFF and `data` sizes are therefore rewritten (and
//! the sink flushed) every `sync_frames` frames, one second of audio by
//! default, so a crash loses at most the audio since that point. The
//! writer works on any `Write + Seek` (a file in the binary, a `Cursor` in
//! tests); it never opens anything itself.

use std::io::{self, Seek, SeekFrom, Write};

use crate::ParseError;

const HEADER_LEN: u64 = 44;

/// Writes interleaved 16-bit little-endian PCM with a valid header.
#[derive(Debug)]
pub struct WavWriter<W: Write + Seek> {
    sink: W,
    channels: u16,
    sample_rate: u32,
    data_bytes: u64,
    synced_bytes: u64,
    sync_frames: u64,
    scratch: Vec<u8>,
}

impl<W: Write + Seek> WavWriter<W> {
    /// Writes the header (sizes zero) at the start of `sink`.
    pub fn new(mut sink: W, channels: u16, sample_rate: u32) -> io::Result<Self> {
        let channels = channels.max(1);
        sink.seek(SeekFrom::Start(0))?;
        sink.write_all(&header(channels, sample_rate, 0))?;
        sink.flush()?;
        Ok(WavWriter {
            sink,
            channels,
            sample_rate,
            data_bytes: 0,
            synced_bytes: 0,
            sync_frames: u64::from(sample_rate),
            scratch: Vec::new(),
        })
    }

    /// Appends interleaved samples (a multiple of the channel count; a
    /// trailing partial frame is dropped so channels never swap).
    pub fn write_samples(&mut self, samples: &[i16]) -> io::Result<()> {
        let whole = samples.len() - samples.len() % usize::from(self.channels);
        // The data chunk size is a u32: stop at 4 GiB rather than wrap.
        let room = (u64::from(u32::MAX) - HEADER_LEN - self.data_bytes) / 2;
        let n = whole.min(usize::try_from(room).unwrap_or(usize::MAX));
        self.scratch.clear();
        self.scratch
            .extend(samples[..n].iter().flat_map(|s| s.to_le_bytes()));
        self.sink.write_all(&self.scratch)?;
        self.data_bytes += self.scratch.len() as u64;
        let frame_bytes = 2 * u64::from(self.channels);
        if self.data_bytes - self.synced_bytes >= self.sync_frames * frame_bytes {
            self.sync()?;
        }
        Ok(())
    }

    /// Rewrites the sizes in the header and flushes the sink.
    pub fn sync(&mut self) -> io::Result<()> {
        let h = header(self.channels, self.sample_rate, self.data_bytes as u32);
        self.sink.seek(SeekFrom::Start(4))?;
        self.sink.write_all(&h[4..8])?;
        self.sink.seek(SeekFrom::Start(40))?;
        self.sink.write_all(&h[40..44])?;
        self.sink.seek(SeekFrom::End(0))?;
        self.sink.flush()?;
        self.synced_bytes = self.data_bytes;
        Ok(())
    }

    /// Frames written so far (one sample per channel each).
    pub fn frames(&self) -> u64 {
        self.data_bytes / (2 * u64::from(self.channels))
    }

    /// Seconds of audio written so far.
    pub fn duration_secs(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate)
    }

    /// Syncs the header a last time and gives the sink back.
    pub fn finish(mut self) -> io::Result<W> {
        self.sync()?;
        Ok(self.sink)
    }
}

fn header(channels: u16, sample_rate: u32, data_bytes: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    let block_align = channels * 2;
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(data_bytes.saturating_add(36)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    h
}

/// A PCM16 WAV file read back: its format and its samples per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    pub sample_rate: u32,
    /// `channels[c]` holds channel `c`'s samples.
    pub channels: Vec<Vec<i16>>,
}

impl Wav {
    /// Parses a canonical PCM16 WAV (what [`WavWriter`] writes; other
    /// chunks before `data` are skipped). Samples beyond the header's
    /// `data` size, written after the last sync, are ignored as a player
    /// would.
    pub fn parse(bytes: &[u8]) -> Result<Wav, ParseError> {
        let u16_at = |i: usize| {
            bytes
                .get(i..i + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
        };
        let u32_at = |i: usize| {
            bytes
                .get(i..i + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
            return Err(ParseError::Wav("no RIFF/WAVE header"));
        }
        let mut at: usize = 12;
        let mut format = None;
        loop {
            if at.checked_add(8).is_none_or(|end| end > bytes.len()) {
                return Err(ParseError::Wav("no data chunk"));
            }
            let id = &bytes[at..at + 4];
            let size = u32_at(at + 4).ok_or(ParseError::Wav("truncated chunk header"))? as usize;
            let body = at + 8;
            if id == b"fmt " {
                if body.checked_add(16).is_none_or(|end| end > bytes.len()) {
                    return Err(ParseError::Wav("truncated fmt"));
                }
                let tag = u16_at(body).ok_or(ParseError::Wav("truncated fmt"))?;
                let channels = u16_at(body + 2).ok_or(ParseError::Wav("truncated fmt"))?;
                let rate = u32_at(body + 4).ok_or(ParseError::Wav("truncated fmt"))?;
                let bits = u16_at(body + 14).ok_or(ParseError::Wav("truncated fmt"))?;
                if tag != 1 || bits != 16 || channels == 0 {
                    return Err(ParseError::Wav("not 16-bit PCM"));
                }
                format = Some((channels, rate));
            } else if id == b"data" {
                let (channels, sample_rate) = format.ok_or(ParseError::Wav("data before fmt"))?;
                let data = bytes
                    .get(body..body.saturating_add(size))
                    .ok_or(ParseError::Wav("data chunk runs past the end"))?;
                let n = usize::from(channels);
                let mut out = vec![Vec::with_capacity(data.len() / 2 / n); n];
                for (i, s) in data.chunks_exact(2).enumerate() {
                    out[i % n].push(i16::from_le_bytes([s[0], s[1]]));
                }
                return Ok(Wav {
                    sample_rate,
                    channels: out,
                });
            }
            at = body.saturating_add(size).saturating_add(size % 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn header_is_valid_after_each_second_and_at_the_end() {
        let mut w = WavWriter::new(Cursor::new(Vec::new()), 2, 8000).unwrap();
        // Half a second: the header still says 0 (the last sync).
        w.write_samples(&[1i16, -1].repeat(4000)).unwrap();
        assert_eq!(Wav::parse(w.sink.get_ref()).unwrap().channels[0].len(), 0);
        // Past one second: synced, the file plays everything written.
        w.write_samples(&[2i16, -2].repeat(4001)).unwrap();
        let wav = Wav::parse(w.sink.get_ref()).unwrap();
        assert_eq!(wav.sample_rate, 8000);
        assert_eq!(wav.channels[0].len(), 8001);
        assert_eq!(wav.channels[1][8000], -2);
        // A partial frame is dropped, not written across channels.
        w.write_samples(&[7, 8, 9]).unwrap();
        assert_eq!(w.frames(), 8002);
        let bytes = w.finish().unwrap().into_inner();
        assert_eq!(bytes.len(), 44 + 8002 * 4);
        let wav = Wav::parse(&bytes).unwrap();
        assert_eq!((wav.channels[0][8001], wav.channels[1][8001]), (7, 8));
        assert_eq!(
            u32::from_le_bytes(bytes[4..8].try_into().unwrap()),
            36 + 8002 * 4
        );
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(Wav::parse(b"").is_err());
        assert!(Wav::parse(b"RIFF\0\0\0\0WAVE").is_err());
        let mut w = WavWriter::new(Cursor::new(Vec::new()), 1, 8000).unwrap();
        w.write_samples(&[5; 10]).unwrap();
        let mut bytes = w.finish().unwrap().into_inner();
        bytes.truncate(50); // data size says 20 bytes, 6 remain
        assert_eq!(
            Wav::parse(&bytes),
            Err(ParseError::Wav("data chunk runs past the end"))
        );
        bytes[34] = 8; // 8-bit
        assert_eq!(Wav::parse(&bytes), Err(ParseError::Wav("not 16-bit PCM")));
    }
}
