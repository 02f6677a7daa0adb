//! Tally's SIP protocol core (DESIGN.md: `crates/sip`).
//!
//! Everything the PBX needs to speak SIP, with no I/O, no clock and no
//! runtime: the caller feeds bytes and time in and takes messages, timers and
//! events out. The registrar, the B2BUA and the transports in the binary are
//! thin shells around these values.
//!
//! - [`message`]: a received message, indexed over its buffer; typed header
//!   views in [`headers`], URIs in [`uri`], header names in [`header`].
//! - [`validate`]: what a UAS checks before it trusts a request, and the
//!   `400` it answers otherwise.
//! - [`builder`]: writing requests and responses (RFC 3261 §8.2.6 included).
//! - [`framing`]: cutting TCP/TLS streams into messages; RFC 5626 keep-alives.
//! - [`sdp`]: SDP parsing and the rewrites a B2BUA and media relay make.
//! - [`dialog`]: RFC 3261 §12 dialogs, one per B2BUA leg.
//! - [`transaction`]: RFC 3261 §17 transactions (with RFC 6026), over [`transport`] peers.
//! - [`auth`]: digest authentication, server and client (RFC 3261 §22, RFC 7616, RFC 8760).

//!
//! # Robustness
//!
//! Every parser here answers hostile input with a typed error, never a panic,
//! and works within [`Limits`]. The RFC 4475 torture messages are a test
//! suite (`tests/rfc4475.rs`), and two cargo-fuzz targets live in `fuzz/` at
//! the repository root (outside the workspace, since they need nightly):
//!
//! ```text
//! cargo install cargo-fuzz
//! cd fuzz
//! cargo +nightly fuzz run message -- -max_total_time=600 -max_len=8192
//! cargo +nightly fuzz run sdp -- -max_total_time=600 -max_len=4096
//! ```
//!
//! Seed the message corpus with `cp crates/sip/tests/data/rfc4475/*.dat
//! fuzz/corpus/message/`. Every crash found is fixed and its input kept under
//! `tests/fuzz_regressions/` where a test replays it.

pub mod auth;
pub mod builder;
pub mod dialog;
pub mod error;
pub mod framing;
pub mod header;
pub mod headers;
pub mod message;
pub mod sdp;
pub mod text;
pub mod transaction;
pub mod transport;
pub mod uri;
pub mod validate;

pub use builder::{RequestBuilder, ResponseBuilder};
pub use error::{ParseError, ValueError};
pub use header::HeaderName;
pub use message::{Limits, Message, Method};
pub use uri::{Host, SipUri, Uri};
