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

pub mod builder;
pub mod dialog;
pub mod error;
pub mod header;
pub mod headers;
pub mod message;
pub mod text;
pub mod uri;
pub mod validate;

pub use builder::{RequestBuilder, ResponseBuilder};
pub use error::{ParseError, ValueError};
pub use header::HeaderName;
pub use message::{Limits, Message, Method};
pub use uri::{Host, SipUri, Uri};
