//! Routing calls to and from trunks, as pure functions over
//! [`crate::trunk::Trunks`] (DESIGN.md: `pbx` router; no I/O, no clock).
//!
//! - [`pattern`]: the PortSIP/Asterisk dial patterns of outbound rules.
//! - [`number`]: normalising carriers' numbers and rewriting dialled ones.
//! - [`inbound`]: which trunk a carrier's INVITE came from and which DID
//!   rule takes it (403 for an unknown source, 404 for no rule).
//! - [`outbound`]: which outbound rule a dialled number takes, the trunks
//!   to try in order, the caller ID to present, and when to fail over.
//!
//! The call engine calls these when it routes an INVITE; the trunks'
//! live state (registered, OPTIONS up/down, calls in progress) is the
//! runtime's, passed in as [`outbound::Availability`].

pub mod inbound;
pub mod number;
pub mod outbound;
pub mod pattern;

pub use inbound::{InboundRoute, route_inbound};
pub use number::{normalise, rewrite};
pub use outbound::{
    Attempt, Availability, OutboundPlan, OutboundRefusal, caller_id, fails_over, may_dial_out,
    select_rule,
};
pub use pattern::{DialPattern, PatternError};
