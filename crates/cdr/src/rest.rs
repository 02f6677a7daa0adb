//! The REST spelling of a CDR (SPEC §7): `GET /api/cdrs` items and the
//! `GET /api/cdrs/{id}` detail.
//!
//! Field names follow PortSIP's REST CDR resource (`started_at`, `rang_at`,
//! `did_cid`, `trunk`, `duration`…) plus SPEC's additions (`session_id`,
//! `call_status`, the targets and recording in the detail). Times are RFC
//! 3339 UTC with milliseconds, `""` when absent. The api crate wraps items
//! in `{count, items}` itself.

use serde::Serialize;

use crate::event::{Recording, RecordingError};
use crate::id::{CdrId, SessionId};
use crate::record::{CdrRecord, TargetJson};
use crate::time::rest_time;
use crate::vocab::{DirectionVocabulary, RerouteReason};

/// One CDR as REST shows it. Serialize it; keys come out in declaration
/// order. Its `id` is the `cdr_id`; `call_status` and `session_id` are
/// SPEC additions to PortSIP's resource; `recovered` appears only when true.
/// PortSIP's `destination`, `service_number`, `cost` and `billed_account`
/// are left to the REST work.
#[derive(Serialize)]
pub struct RestCdr<'a> {
    /// The CDR id (`cdr_id`).
    id: CdrId,
    caller: &'a str,
    caller_domain: &'a str,
    caller_display_name: &'a str,
    callee: &'a str,
    callee_domain: &'a str,
    callee_display_name: &'a str,
    started_at: String,
    rang_at: String,
    answered_at: String,
    ended_at: String,
    call_id: &'a str,
    direction: &'static str,
    call_status: &'static str,
    end_reason: &'static str,
    reroute_reason: &'static str,
    status_code: u16,
    outbound_caller_id: &'a str,
    did_cid: &'a str,
    trunk: &'a str,
    /// Talk seconds.
    duration: u64,
    session_id: SessionId,
    user_data: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    recovered: bool,
    /// Detail form only: the §2 target objects, event spelling (their
    /// `direction` in the classic vocabulary: REST has no wire profile).
    #[serde(skip_serializing_if = "Option::is_none")]
    call_targets: Option<Vec<TargetJson<'a>>>,
    /// Detail form only, and only when the call was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    recording: Option<&'a Recording>,
    /// Detail form only: why a call that was to be recorded has no
    /// `recording`.
    #[serde(skip_serializing_if = "Option::is_none")]
    recording_error: Option<&'a RecordingError>,
}

impl CdrRecord {
    /// The list item of `GET /api/cdrs`.
    pub fn rest_item(&self) -> RestCdr<'_> {
        self.rest_item_with_reroute(self.reroute_reason())
    }

    /// The list item of a record read without its targets (the store's
    /// streaming export), whose `reroute_reason` the reader computed
    /// itself: [`CdrRecord::reroute_reason`] would see no targets.
    pub fn rest_item_with_reroute(&self, reroute_reason: Option<RerouteReason>) -> RestCdr<'_> {
        RestCdr {
            id: self.cdr_id,
            caller: &self.caller.user,
            caller_domain: &self.caller.domain,
            caller_display_name: &self.caller.display_name,
            callee: &self.callee.user,
            callee_domain: &self.callee.domain,
            callee_display_name: &self.callee.display_name,
            started_at: rest_time(Some(self.start_time)),
            rang_at: rest_time(self.ring_time),
            answered_at: rest_time(self.answered_time),
            ended_at: rest_time(Some(self.ended_time)),
            call_id: &self.call_id,
            direction: self.direction.rest_spelling(),
            call_status: self.call_status.as_str(),
            end_reason: self.ended_reason.rest_spelling(),
            reroute_reason: reroute_reason.map_or("", |r| r.rest_spelling()),
            status_code: self.status_code,
            outbound_caller_id: &self.outbound_caller_id,
            did_cid: &self.did,
            trunk: &self.trunk_name,
            duration: self.talk_duration(),
            session_id: self.session_id,
            user_data: &self.user_data,
            recovered: self.recovered,
            call_targets: None,
            recording: None,
            recording_error: None,
        }
    }

    /// The detail of `GET /api/cdrs/{id}`: the list item plus
    /// `call_targets` and, when recorded, `recording`.
    pub fn rest_detail(&self) -> RestCdr<'_> {
        RestCdr {
            call_targets: Some(
                self.targets
                    .iter()
                    .map(|t| {
                        t.to_json(
                            self.cdr_id,
                            self.direction.event_spelling(DirectionVocabulary::Classic),
                        )
                    })
                    .collect(),
            ),
            recording: self.recording.as_ref(),
            recording_error: self.recording_error.as_ref(),
            ..self.rest_item()
        }
    }
}
