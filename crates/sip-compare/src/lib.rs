//! Comparisons of Tally's SIP parser (`crates/sip`) with other Rust SIP
//! parsers; nothing here ships. The work is in the targets:
//!
//! - `benches/parse.rs`: criterion benchmark of what a proxy reads from an
//!   INVITE and a 200 OK, against `rsipstack` (rustpbx's stack) and `rsip`.
//! - `tests/differential.rs`: the RFC 4475 torture messages and generated
//!   valid messages through `sip`, `sipx-sip` and `ezk-sip-types`, with every
//!   disagreement explained.
//!
//! The comparison crates are dev-dependencies, so `cargo build` of the
//! workspace never compiles them. See README.md for the findings.
