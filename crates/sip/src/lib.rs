//! Tally's SIP protocol core.
pub mod sdp;
