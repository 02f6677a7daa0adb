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
//!  Input::Received / TransportError / Drain / HangUpAll / directory changes,
//!  handle_timeout
//!                          │
//!   engine::Engine ────────▼──────────────────────────────── one shard
//!   │ validate ─▶ sip::transaction::Transactions
//!   │               ├─ REGISTER ─▶ registrar::Registrar ─▶ location::Location
//!   │               ├─ OPTIONS, 405/481/501 answered here            │ reads
//!   │               └─ INVITE ─▶ auth ─▶ router::route ◀─────────────┘
//!   │                                     ▼
//!   │               call::Session: caller leg + one leg per target
//!   └──────────────────────────────────────┬─────────────────────────
//!                                          ▼
//!  Output::Transmit, Output::CallEvent (cdr), Output::BindingChanges,
//!  Output::Event
//! ```
//!
//! - [`directory`]: tenants (one SIP domain each) and their users, filled
//!   by the runtime from the store.
//! - [`location`]: each user's registered devices (bindings), their expiry,
//!   and their export/import for persistence.
//! - [`registrar`]: REGISTER with digest authentication, expiry rules, NAT
//!   targets and a throttle on sources that keep failing.
//! - [`router`]: what a dialled number is (today: an extension of the
//!   caller's tenant and the devices to ring).
//! - [`engine`]: the [`Engine`] the runtime drives (`handle_input`,
//!   `handle_timeout`, `poll_output`, `poll_timeout`), owning the
//!   transaction table, the registrar, the directory and the calls.
//! - [`trunk`]: each tenant's trunks, DID rules and outbound rules,
//!   filled by the runtime from the store like the directory.
//! - [`trunk_registration`]: the sans-IO registration client of a
//!   `register` trunk (digest, refresh, back-off);
//!   [`trunk_keepalive`]: its OPTIONS probes (up/down, RTT).
//! - [`routing`]: dial patterns, number normalisation, inbound trunk and
//!   DID matching, outbound rule selection and the failover policy.
//! - `call` (private): one B2BUA session, its legs and targets, and the
//!   `cdr::CallEvent`s it emits in the order `cdr::Builder` expects; split
//!   by concern (`fork`, `caller`, `bridge`, `unacked`, `timer`), handing
//!   the engine one-way effects.
//! - `context` (private): what the engine lends a session for one input
//!   (clock, transaction table, id sources, the PBX's addresses) and the
//!   [`InternalError`]s it may report.
//!
//! Still to come on the same surface: trunks (`in`, `out`, `in2out`),
//! transfers, pickup, queues, IVRs,
//! media anchoring.

pub mod apps;
mod call;
mod context;
pub mod directory;
pub mod engine;
mod ids;
pub mod location;
pub mod media;
pub mod registrar;
pub mod router;
pub mod routing;
pub mod trunk;
pub mod trunk_keepalive;
pub mod trunk_registration;
mod trunk_retransmit;

pub use apps::{BuiltinPrompt, Ivr, IvrDestination, Prompt, PromptRef, Queue, QueueStrategy};
pub use call::{
    AgentCodeCall, LegRole, LegState, LegView, NotFollowed, RELEASE_AFTER, RoutingNotice,
    SessionState, SessionView, TransferOnFailure,
};
pub use context::{InternalError, Written};
pub use directory::{
    Directory, Extension, Feature, FeatureCodes, ForwardCondition, Forwarding, RingGroup,
    RingStrategy, SipCredentials, Tenant, User,
};
pub use engine::{
    AgentLogin, Control, ControlReply, DropReason, Engine, EngineConfig, EngineError, EngineEvent,
    Input, Originate, OriginateError, Output, TrunkRefusal,
};
pub use ids::IdGenerator;
pub use location::{
    Aor, Binding, BindingChange, BindingRecord, ChangeKind, Location, SharedReport,
};
pub use registrar::{DigestOffer, RegisterOutcome, Registrar, RegistrarConfig, RegistrarEvent};
