//! `CallEvent`: what the call engine tells the CDR builder.

use crate::id::{Id, SessionId, TargetId, TenantId};
use crate::time::UnixMillis;
use crate::vocab::{CallType, Direction, EndReason, RerouteReason};

/// One fact about a session, with the moment it happened.
///
/// The engine (crate `pbx`) emits one of these for every fact the CDR
/// needs. The events say *what
/// happened* in PBX terms; the mapping to PortSIP's fields and SPEC §3's
/// rules (which status code a fork loser gets, when a call is `noanswer`
/// rather than `fail`…) lives in the [`Builder`](crate::Builder), once.
///
/// Events do not repeat the session id: one builder folds one session, and
/// the engine routes each event to the builder of its session.
#[derive(Clone, Debug, PartialEq)]
pub struct CallEvent {
    pub at: UnixMillis,
    pub kind: CallEventKind,
}

impl CallEvent {
    pub const fn new(at: UnixMillis, kind: CallEventKind) -> Self {
        Self { at, kind }
    }
}

/// The facts the engine reports.
#[derive(Clone, Debug, PartialEq)]
pub enum CallEventKind {
    /// The INVITE arrived and was routed (`direction` is known). Emits
    /// `call_start`. Must be the first event of a session.
    SessionStarted(Box<SessionStart>),
    /// The PBX sent an INVITE to a target. Emits `cdr_target_add`.
    TargetAdded(Box<TargetAdded>),
    /// The target sent 180/183. Emit it once per target. Emits
    /// `cdr_target_ringing`.
    TargetRinging { target: TargetId },
    /// The target answered (200), including IVRs and queues that answer at
    /// once. Emits `cdr_target_answer`.
    TargetAnswered { target: TargetId },
    /// The target rang (or was being called) and the PBX stopped calling
    /// it. Emits `cdr_target_noanswer`.
    TargetNoAnswer {
        target: TargetId,
        cause: NoAnswerCause,
    },
    /// The target answered the INVITE with a final failure (4xx–6xx, or a
    /// 3xx the PBX did not follow). Emits `cdr_target_fail`.
    TargetFailed { target: TargetId, status_code: u16 },
    /// The target's leg ended: an answered leg hung up, was transferred or
    /// replaced; or an unanswered leg was picked up by someone else
    /// (`Replaced`) or redirected with a 3xx the PBX followed
    /// (`Redirected`). Emits `cdr_target_end`.
    TargetEnded(TargetEnd),
    /// The caller's or callee's identity changed (transfer, PAI update).
    /// At least one side must be given. Emits `call_update_info`.
    IdentityChanged {
        caller: Option<Party>,
        callee: Option<Party>,
    },
    /// The last leg of the session is gone. Every target must have ended
    /// first. Emits `call_cdr`.
    SessionEnded(SessionEnd),
    /// After a crash: close the session with what is known. `at` is the
    /// last activity seen. Open targets end at `at` with `None`; the CDR
    /// has `ended_reason: None` and `"recovered": true`. Emits `call_cdr`.
    SessionRecovered,
}

impl CallEventKind {
    /// A short name for error messages and logs.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::SessionStarted(_) => "session_started",
            Self::TargetAdded(_) => "target_added",
            Self::TargetRinging { .. } => "target_ringing",
            Self::TargetAnswered { .. } => "target_answered",
            Self::TargetNoAnswer { .. } => "target_noanswer",
            Self::TargetFailed { .. } => "target_failed",
            Self::TargetEnded(_) => "target_ended",
            Self::IdentityChanged { .. } => "identity_changed",
            Self::SessionEnded(_) => "session_ended",
            Self::SessionRecovered => "session_recovered",
        }
    }
}

/// A party as the CDR names it: the user part, display name and host of a
/// SIP URI (`caller`, `caller_display_name`, `caller_domain`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Party {
    pub user: String,
    pub display_name: String,
    pub domain: String,
}

/// Everything known when a session starts (SPEC §2 call-level identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStart {
    pub session_id: SessionId,
    pub tenant_id: TenantId,
    pub tenant_name: String,
    /// Call-ID of the first INVITE that reached the PBX.
    pub call_id: String,
    pub direction: Direction,
    /// From the original `From`.
    pub caller: Party,
    /// The first destination inside the PBX; `domain` is the tenant's SIP
    /// domain. It stays the CDR's `callee` whatever happens later.
    pub callee: Party,
    /// The DID (user part of the trunk's `To`) for `in`/`in2out`, else `""`.
    pub did: String,
    /// The trunk the call came in by or (for `out`) leaves by, if known at
    /// routing; else `""` (see [`TargetAdded::trunk_name`]).
    pub trunk_name: String,
    pub outbound_caller_id: String,
    /// Echoed from `POST /api/sessions`, else `""`.
    pub user_data: String,
}

/// A target the PBX sent an INVITE to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetAdded {
    pub target: TargetId,
    pub call_type: CallType,
    /// The caller as presented to this target.
    pub caller: String,
    /// This target's number (`5000`, `102`, the external number).
    pub callee: String,
    /// The contact URI the INVITE went to, e.g. `sip:102@10.0.0.7:5062`.
    pub destination: String,
    /// The trunk of this leg, `""` for internal legs. The first target with
    /// a trunk supplies the call-level `trunk_name` and `outbound_caller_id`
    /// when the session started without one (an internal call forwarded to
    /// a mobile number is still `ext`, but did use a trunk).
    pub trunk_name: String,
    pub outbound_caller_id: String,
    pub did: String,
    /// Why the call was moved on to this target, if it was (REST only).
    pub reroute_reason: Option<RerouteReason>,
}

/// Why the PBX stopped calling a target that had not answered. The builder
/// turns it into the target's `status_code` and `end_reason` (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoAnswerCause {
    /// The target's ring timeout expired: `status_code` 408, `end_reason`
    /// `None`.
    RingTimeout,
    /// The caller cancelled: `status_code` 487, `end_reason` `cancelled`.
    CallerCancelled,
    /// Another target of the fork (or ring group) answered and the PBX
    /// cancelled this one: `status_code` 0, `end_reason` `None`.
    AnsweredElsewhere,
}

/// How a target leg ended, with what was measured on it.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetEnd {
    pub target: TargetId,
    pub reason: EndReason,
    /// Billing result for this leg, when billing is on.
    pub cost: Option<f64>,
    /// Media statistics, when the PBX relayed the media.
    pub quality: Option<Quality>,
}

/// Media statistics of a relayed leg (Tally addition to the target object).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Quality {
    pub codec: String,
    pub packets: u64,
    pub lost: u64,
    pub jitter_ms: f64,
    pub mos: f64,
}

/// A finished recording of the session (Tally addition to `call_cdr`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Recording {
    pub id: Id,
    /// Authenticated download link.
    pub url: String,
    /// Whole seconds of audio.
    pub duration: u64,
}

/// How the session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionEnd {
    /// The final response the PBX sent to the caller's INVITE: 2xx when the
    /// call was answered (the CDR then says `"0"`), else the failure (`486`,
    /// `404`, `480`, `487` after a cancel, `408` after a ring timeout…).
    pub status_code: u16,
    /// `caller_disconnect`, `callee_disconnect`, a transfer completion for
    /// answered calls; `cancelled` or `None` for unanswered ones.
    pub reason: EndReason,
    pub recording: Option<Recording>,
}
