//! `CdrRecord`: the finished CDR as typed data.

use serde::Serialize;

use crate::event::{Party, Quality, Recording, RecordingError};
use crate::id::{CdrId, Id, SessionId, TargetId, TenantId};
use crate::time::{UnixMillis, event_time};
use crate::vocab::{CallStatus, CallType, Direction, EndReason, RerouteReason, TargetStatus};

/// One finished call (SPEC §2).
///
/// The builder produces one at session end; the store persists it (with
/// millisecond times) and the two outward spellings are derived from it:
/// the `call_cdr` event ([`WireEvent`](crate::WireEvent)) and the REST item
/// ([`CdrRecord::rest_item`]). Durations are computed, never stored, so
/// they cannot disagree with the times.
#[derive(Clone, Debug, PartialEq)]
pub struct CdrRecord {
    pub session_id: SessionId,
    pub cdr_id: CdrId,
    pub tenant_id: TenantId,
    pub tenant_name: String,
    pub call_id: String,
    pub direction: Direction,
    /// The original `From`.
    pub caller: Party,
    /// The first destination inside the PBX (never the final answerer).
    pub callee: Party,
    /// Spelled as both `did` and `did_cid`.
    pub did: String,
    pub trunk_name: String,
    pub outbound_caller_id: String,
    pub start_time: UnixMillis,
    /// When the first target rang before the call was answered.
    pub ring_time: Option<UnixMillis>,
    /// When the first target answered.
    pub answered_time: Option<UnixMillis>,
    pub ended_time: UnixMillis,
    pub call_status: CallStatus,
    /// The final code the PBX sent the caller; 0 when answered (and when a
    /// crash left the caller without one).
    pub status_code: u16,
    pub ended_reason: EndReason,
    pub user_data: String,
    pub recording: Option<Recording>,
    /// Why there is no `recording` when the call was to be recorded.
    pub recording_error: Option<RecordingError>,
    /// Closed on restart after a crash (SPEC §3).
    pub recovered: bool,
    /// In the order the PBX started them.
    pub targets: Vec<TargetRecord>,
    /// The users who placed and were first called (see
    /// [`SessionStart::caller_user`](crate::SessionStart)): stored, never
    /// on the wire.
    pub caller_user: Option<Id>,
    pub callee_user: Option<Id>,
}

impl CdrRecord {
    /// Seconds from `ring_time` to `answered_time` (or `ended_time`); 0 if
    /// nothing rang.
    pub fn ring_duration(&self) -> u64 {
        ring_duration(self.ring_time, self.answered_time, self.ended_time)
    }

    /// Seconds from `answered_time` to `ended_time`; 0 if unanswered.
    pub fn talk_duration(&self) -> u64 {
        talk_duration(self.answered_time, self.ended_time)
    }

    /// The REST `reroute_reason` of the whole call: the reason of the
    /// **first** reroute, i.e. why the call left its first destination
    /// (SPEC shows one value per CDR and is silent on calls rerouted twice).
    pub fn reroute_reason(&self) -> Option<RerouteReason> {
        self.targets.iter().find_map(|t| t.reroute_reason)
    }
}

/// One target of a finished call (SPEC §2 `call_targets[]`).
#[derive(Clone, Debug, PartialEq)]
pub struct TargetRecord {
    pub id: TargetId,
    pub call_type: CallType,
    pub caller: String,
    pub callee: String,
    pub destination: String,
    pub start_time: UnixMillis,
    pub ring_time: Option<UnixMillis>,
    pub answered_time: Option<UnixMillis>,
    pub ended_time: UnixMillis,
    /// The leg's SIP failure code; 0 if none (answered, or cancelled by the
    /// PBX because another target won).
    pub status_code: u16,
    pub end_reason: EndReason,
    pub trunk_name: String,
    pub outbound_caller_id: String,
    pub did: String,
    /// Not part of the target object on the wire; feeds the REST
    /// `reroute_reason`.
    pub reroute_reason: Option<RerouteReason>,
    pub cost: Option<f64>,
    pub quality: Option<Quality>,
    /// The user the leg rang, if any: stored, never on the wire.
    pub user: Option<Id>,
}

impl TargetRecord {
    /// `answered` if the target ever answered, else `noanswer`.
    pub fn status(&self) -> TargetStatus {
        if self.answered_time.is_some() {
            TargetStatus::Answered
        } else {
            TargetStatus::NoAnswer
        }
    }

    pub fn ring_duration(&self) -> u64 {
        ring_duration(self.ring_time, self.answered_time, self.ended_time)
    }

    pub fn talk_duration(&self) -> u64 {
        talk_duration(self.answered_time, self.ended_time)
    }

    /// The target object of `call_cdr.call_targets` and of the REST detail,
    /// with the call's `cdr_id` and `direction` (spelled by the caller)
    /// repeated, as SPEC §2's target table lists them.
    pub(crate) fn to_json(&self, cdr_id: CdrId, direction: &'static str) -> TargetJson<'_> {
        TargetJson {
            id: self.id,
            cdr_id,
            direction,
            call_type: self.call_type.as_str(),
            caller: &self.caller,
            callee: &self.callee,
            destination: &self.destination,
            start_time: event_time(Some(self.start_time)),
            ring_time: event_time(self.ring_time),
            answered_time: event_time(self.answered_time),
            ended_time: event_time(Some(self.ended_time)),
            ring_duration: self.ring_duration().to_string(),
            talk_duration: self.talk_duration().to_string(),
            status: self.status().as_str(),
            status_code: self.status_code,
            end_reason: self.end_reason.event_spelling(),
            did: &self.did,
            outbound_caller_id: &self.outbound_caller_id,
            trunk_name: &self.trunk_name,
            cost: self.cost,
            quality: self.quality.as_ref(),
        }
    }
}

fn ring_duration(ring: Option<UnixMillis>, answered: Option<UnixMillis>, ended: UnixMillis) -> u64 {
    ring.map_or(0, |ring| {
        answered.unwrap_or(ended).whole_seconds_since(ring)
    })
}

fn talk_duration(answered: Option<UnixMillis>, ended: UnixMillis) -> u64 {
    answered.map_or(0, |answered| ended.whole_seconds_since(answered))
}

/// `call_targets[]` element, keys in PortSIP's example order. Durations are
/// strings and `status_code` a number: PortSIP quirks SPEC keeps.
#[derive(Serialize)]
pub(crate) struct TargetJson<'a> {
    id: TargetId,
    cdr_id: CdrId,
    direction: &'static str,
    call_type: &'static str,
    caller: &'a str,
    callee: &'a str,
    destination: &'a str,
    start_time: String,
    ring_time: String,
    answered_time: String,
    ended_time: String,
    ring_duration: String,
    talk_duration: String,
    status: &'static str,
    status_code: u16,
    end_reason: &'static str,
    did: &'a str,
    outbound_caller_id: &'a str,
    trunk_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality: Option<&'a Quality>,
}
