//! Tally's media core (DESIGN.md: `crates/media`).
//!
//! Everything the PBX does with audio, as values and plain functions: no
//! sockets, no clock reads, no runtime. The relay in the binary
//! (`crates/tally/src/media/`) owns the sockets and passes arrival times in;
//! this crate decides what a packet means.
//!
//! - [`rtp`] and [`rtcp`]: RFC 3550 packets, parsed in place (a parsed
//!   packet borrows the datagram) and written into caller buffers.
//! - [`stream`]: one received stream's statistics with the RFC 3550
//!   algorithms (A.1 sequence validation across wrap, A.3 loss, A.8 jitter),
//!   plus the duplicate and reorder counts a monitor wants.
//! - [`g711`]: µ-law and A-law (ITU-T G.711).
//! - [`dtmf`]: RFC 4733 telephone-events, received and generated.
//! - [`inband`]: DTMF keys heard in the audio (Goertzel), for callers
//!   without telephone-events.
//! - [`wav`] and [`recorder`]: an incremental PCM16 WAV writer whose header
//!   is valid at least once a second, and the two-party stereo timeline a
//!   call recording is written from.
//! - [`quality`]: a MOS estimate from loss, jitter and codec (simplified
//!   ITU-T G.107 E-model).
//! - [`tone`]: sine and dual-tone generation and a Goertzel detector (tests
//!   and, later, IVRs).
//!
//! # Robustness
//!
//! The RTP and RTCP parsers answer hostile input with a [`ParseError`],
//! never a panic; the `rtp` target in `fuzz/` (outside the workspace, it
//! needs nightly) runs them: `cd fuzz && cargo +nightly fuzz run rtp`.

pub mod dtmf;
pub mod g711;
pub mod inband;
pub mod quality;
pub mod recorder;
pub mod rtcp;
pub mod rtp;
pub mod stream;
pub mod tone;
pub mod wav;

mod error;

pub use error::ParseError;
pub use rtp::RtpPacket;
pub use stream::ReceiveStats;
