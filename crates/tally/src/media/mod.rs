//! The media runtime (DESIGN.md, "How media is relayed"): the port pool
//! ([`ports`]), one relay task per anchored call ([`relay`]), the engine's
//! media commands applied and the CDR completed with the relay's report
//! ([`calls`]), recording retention ([`retention`]).
//!
//! When to anchor and the SDP rewrite are the engine's (`pbx::media`);
//! what a packet means (RTP, loss, jitter, G.711, WAV, MOS) is the sans-IO
//! `media` crate's; this module only owns sockets, files and time.

pub mod calls;
pub mod player;
pub mod ports;
pub mod prompts;
pub mod relay;
pub mod retention;

use serde::Deserialize;

/// `media.anchor`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Anchor {
    #[default]
    Auto,
    Always,
    Never,
}

impl From<Anchor> for pbx::media::Anchor {
    fn from(a: Anchor) -> Self {
        match a {
            Anchor::Auto => pbx::media::Anchor::Auto,
            Anchor::Always => pbx::media::Anchor::Always,
            Anchor::Never => pbx::media::Anchor::Never,
        }
    }
}
