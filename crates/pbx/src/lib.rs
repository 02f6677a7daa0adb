//! Tally's call engine (DESIGN.md: `crates/pbx`).
//!
//! The PBX's decisions, as sans-IO values driven by plain function calls:
//! the caller passes in parsed SIP messages, the time and the transport
//! address a message came from, and takes out responses, changes to persist
//! and events to log. No sockets, no clock reads, no randomness beyond what
//! the caller injects (DESIGN.md, "Sans-IO cores"); the binary's runtime is
//! a thin shell that feeds these values and stores what they return.
//!
//! ```text
//!            REGISTER                         INVITE (later: router, B2BUA)
//! socket ──▶ registrar::Registrar ──writes──▶ location::Location ◀──reads── router
//!                 │   reads                         │
//!                 ▼                                 ▼ BindingChange / BindingRecord
//!          directory::Directory ◀── store     store (bindings survive a restart)
//! ```
//!
//! - [`directory`]: tenants (one SIP domain each) and their users, filled
//!   by the runtime from the store.
//! - [`location`]: each user's registered devices (bindings), their expiry,
//!   and their export/import for persistence.
//! - [`registrar`]: REGISTER with digest authentication, expiry rules, NAT
//!   targets and a throttle on sources that keep failing.
//!
//! Routing, the B2BUA call state machine and its features come next, on top
//! of the same directory and location; they emit `cdr::CallEvent`s.

mod call;
pub mod directory;
pub mod engine;
mod ids;
pub mod location;
pub mod registrar;
pub mod router;

pub use directory::{Directory, Extension, Tenant, User};
pub use engine::{Engine, EngineConfig, EngineError, EngineEvent, Input, Output};
pub use location::{Aor, Binding, BindingChange, BindingRecord, ChangeKind, Location};
pub use registrar::{RegisterOutcome, Registrar, RegistrarConfig, RegistrarEvent};
