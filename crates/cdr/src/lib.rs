//! Tally's call detail record model: the vocabulary of a CDR and the pure
//! builder that produces it.
//!
//! # Place in the pipeline (DESIGN.md, "The CDR pipeline")
//!
//! ```text
//! pbx ──CallEvent──▶ cdr::Builder ──WireEvent──▶ store (CDR row + outbox, sequence) ──▶ delivery
//! ```
//!
//! 1. The call engine (crate `pbx`) emits a [`CallEvent`] for every fact a
//!    CDR needs: session started, target added / ringing / answered / no
//!    answer / failed / ended, identity changed, session ended, session
//!    recovered after a crash.
//! 2. A [`Builder`] per session folds them, applying SPEC §2/§3's rules in
//!    one place, and returns the PortSIP event objects of SPEC §4 as
//!    [`WireEvent`]s; at session end it returns `call_cdr`, which carries
//!    the finished [`CdrRecord`].
//! 3. The store (a later crate) commits the record and one outbox row per
//!    wire event in one transaction, assigning each its per-tenant
//!    `sequence`, and serializes it with [`WireEvent::to_json`] under the
//!    deployment's [`WireProfile`].
//! 4. REST reads the stored record back through [`CdrRecord::rest_item`] /
//!    [`CdrRecord::rest_detail`].
//!
//! This crate is pure: no I/O, no tokio, no SQL, no clock reads, no
//! randomness. Times come in with the events, ids come from a [`Snowflake`]
//! the caller drives with its clock, and event ids are derived, not drawn
//! ([`EventId`]). Replaying the same events yields byte-identical output,
//! which is what lets a restart rebuild a session from a journal and lets
//! receivers deduplicate.
//!
//! # Decisions where SPEC is silent
//!
//! Each is documented where it is implemented:
//!
//! * durations are differences of the second-resolution times the record
//!   shows ([`UnixMillis::whole_seconds_since`]);
//! * event `time` is when the event happened, for every event type;
//!   `caller`/`callee` are SIP URIs in `call_start` and `call_update_info`
//!   (`sip:<user>@<domain>`, as SPEC §4 prescribes), user parts elsewhere
//!   ([`WireEvent`]);
//! * keys follow PortSIP's order with Tally additions last; `sequence` is
//!   a number ([`WireEvent`]);
//! * `event_id` is a UUIDv8 derived from (session id, ordinal) ([`EventId`]);
//! * `next_session` reserves two sequence values so `cdr_id` is never
//!   handed out ([`Snowflake::next_session`]);
//! * call-level `ring_time` ignores rings after the call was answered;
//!   recovery closes open legs with `None`/0, emits only `call_cdr`, and an
//!   unanswered recovered call is `fail` with `"0"` ([`Builder`]);
//! * the call-level trunk comes from the first trunk leg when routing gave
//!   none ([`TargetAdded::trunk_name`]);
//! * the engine states *why* a leg stopped ringing and the builder derives
//!   its code and reason ([`NoAnswerCause`]);
//! * REST `reroute_reason` is the first reroute's
//!   ([`CdrRecord::reroute_reason`]); REST `end_reason` uses PortSIP's
//!   OpenAPI enum and `""` for `None` ([`EndReason`]); REST `id` is the
//!   `cdr_id` ([`RestCdr`]);
//! * the default direction vocabulary's config spelling is `"classic"`
//!   ([`DirectionVocabulary`]).

mod builder;
mod event;
mod id;
mod record;
mod rest;
mod time;
mod vocab;
mod wire;

pub use builder::{BuildError, Builder, TargetPhase};
pub use event::{
    CallEvent, CallEventKind, NoAnswerCause, Party, Quality, Recording, RecordingError, SessionEnd,
    SessionStart, TargetAdded, TargetEnd,
};
pub use id::{
    CdrId, Id, InvalidNode, NODE_COUNT, ParseIdError, SEQUENCES_PER_MS, SNOWFLAKE_EPOCH, SessionId,
    Snowflake, SplitMix64, TargetId, TenantId,
};
pub use record::{CdrRecord, TargetRecord};
pub use rest::RestCdr;
pub use time::{UnixMillis, event_time, rest_time};
pub use vocab::{
    CallStatus, CallType, Direction, DirectionVocabulary, EndReason, RecordingFailure,
    RerouteReason, TargetStatus, UnknownSpelling,
};
pub use wire::{EncodeError, EventId, EventType, WireEvent, WireProfile};
