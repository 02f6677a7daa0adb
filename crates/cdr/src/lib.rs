//! Tally's call detail record model (work in progress).

mod id;
mod time;
mod vocab;

pub use id::{
    CdrId, Id, InvalidNode, NODE_COUNT, ParseIdError, SEQUENCES_PER_MS, SNOWFLAKE_EPOCH, SessionId,
    Snowflake, TargetId, TenantId,
};
pub use time::{UnixMillis, event_time, rest_time};
pub use vocab::{
    CallStatus, CallType, Direction, DirectionVocabulary, EndReason, RerouteReason, TargetStatus,
    UnknownSpelling,
};
