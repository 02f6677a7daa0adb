//! `CallEvent`: what the call engine tells the CDR builder.

use serde::{Deserialize, Serialize};

use crate::id::{Id, SessionId, TargetId, TenantId};
use crate::time::UnixMillis;
use crate::vocab::{CallType, Direction, EndReason, RecordingFailure, RerouteReason};

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
///
/// Serde is the store's journal format for open sessions (replayed into a
/// builder after a crash): ids are decimal strings, times Unix
/// milliseconds, the kind is tagged `"type"` with [`CallEventKind::name`],
/// and closed sets use their SPEC spellings, so the journal does not depend
/// on Rust identifiers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
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
    #[serde(rename = "target_noanswer")]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub user: String,
    pub display_name: String,
    pub domain: String,
}

impl Party {
    /// `sip:<user>@<domain>`, the spelling of `call_start` and
    /// `call_update_info` (SPEC §4); `sip:<user>` when the domain is unknown.
    pub fn sip_uri(&self) -> String {
        if self.domain.is_empty() {
            format!("sip:{}", self.user)
        } else {
            format!("sip:{}@{}", self.user, self.domain)
        }
    }
}

/// Everything known when a session starts (SPEC §2 call-level identity).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The user (of the tenant) who placed the call, when it is one: what
    /// `/api/user/cdrs` matches on, so a reused extension does not inherit
    /// the calls of its previous owner. Internal: not on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_user: Option<Id>,
    /// The user the call was placed to (the first destination), when it is
    /// one. Internal, like `caller_user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callee_user: Option<Id>,
}

/// A target the PBX sent an INVITE to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The user this leg rang, when it is one (not a trunk or a URI).
    /// Internal: not on the wire (see `SessionStart::caller_user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Id>,
}

/// Why the PBX stopped calling a target that had not answered. The builder
/// turns it into the target's `status_code` and `end_reason` (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetEnd {
    pub target: TargetId,
    pub reason: EndReason,
    /// Billing result for this leg, when billing is on.
    pub cost: Option<f64>,
    /// Media statistics, when the PBX relayed the media.
    pub quality: Option<Quality>,
}

/// Media statistics of a relayed leg (Tally addition to the target object).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    pub codec: String,
    pub packets: u64,
    pub lost: u64,
    pub jitter_ms: f64,
    pub mos: f64,
}

/// A finished recording of the session (Tally addition to `call_cdr`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    pub id: Id,
    /// Authenticated download link.
    pub url: String,
    /// Whole seconds of audio.
    pub duration: u64,
}

/// Why a call that was to be recorded has no recording (Tally addition to
/// `call_cdr`, next to `recording`; absent when nothing was to be recorded
/// or the recording exists).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingError {
    pub reason: RecordingFailure,
    /// What went wrong, for people (the I/O error, the port range…).
    pub detail: String,
}

/// How the session ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnd {
    /// The final response the PBX sent to the caller's INVITE: 2xx when the
    /// call was answered (the CDR then says `"0"`), else the failure (`486`,
    /// `404`, `480`, `487` after a cancel, `408` after a ring timeout…).
    pub status_code: u16,
    /// `caller_disconnect`, `callee_disconnect`, a transfer completion for
    /// answered calls; `cancelled` or `None` for unanswered ones.
    pub reason: EndReason,
    pub recording: Option<Recording>,
    /// Why `recording` is missing when the call was to be recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_error: Option<RecordingError>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{CallType, Direction, EndReason, RecordingFailure, RerouteReason};

    fn id(raw: u64) -> Id {
        Id::from_u64(raw)
    }

    /// One event of every kind, with every optional part present somewhere.
    fn every_kind() -> Vec<CallEvent> {
        let target = TargetId::from(id(1_179_059_904_569_155_584));
        let party = |user: &str| Party {
            user: user.into(),
            display_name: format!("User {user}"),
            domain: "acme.example".into(),
        };
        let kinds = vec![
            CallEventKind::SessionStarted(Box::new(SessionStart {
                session_id: SessionId::from(id(1_179_059_904_569_151_488)),
                tenant_id: TenantId::from(id(883_611_252_155_219_968)),
                tenant_name: "acme".into(),
                call_id: "3c26a1f1e7b94f0a@10.0.0.5".into(),
                direction: Direction::InboundOutbound,
                caller: party("101"),
                callee: party("102"),
                did: "4420".into(),
                trunk_name: "carrier".into(),
                outbound_caller_id: "+4420".into(),
                user_data: "{\"crm\":7}".into(),
                caller_user: Some(id(7_001)),
                callee_user: None,
            })),
            CallEventKind::TargetAdded(Box::new(TargetAdded {
                target,
                call_type: CallType::QueueCallback,
                caller: "101".into(),
                callee: "102".into(),
                destination: "sip:102@10.0.0.7:5062".into(),
                trunk_name: String::new(),
                outbound_caller_id: String::new(),
                did: String::new(),
                reroute_reason: Some(RerouteReason::ForwardingNotReachable),
                user: None,
            })),
            CallEventKind::TargetRinging { target },
            CallEventKind::TargetAnswered { target },
            CallEventKind::TargetNoAnswer {
                target,
                cause: NoAnswerCause::AnsweredElsewhere,
            },
            CallEventKind::TargetFailed {
                target,
                status_code: 486,
            },
            CallEventKind::TargetEnded(TargetEnd {
                target,
                reason: EndReason::AttendedTransferComplete,
                cost: Some(0.125),
                quality: Some(Quality {
                    codec: "PCMA".into(),
                    packets: 1500,
                    lost: 3,
                    jitter_ms: 4.5,
                    mos: 4.25,
                }),
            }),
            CallEventKind::IdentityChanged {
                caller: None,
                callee: Some(party("103")),
            },
            CallEventKind::SessionEnded(SessionEnd {
                status_code: 200,
                reason: EndReason::NotApplicable,
                recording: Some(Recording {
                    id: id(42),
                    url: "https://pbx/rec/42".into(),
                    duration: 61,
                }),
                recording_error: Some(RecordingError {
                    reason: RecordingFailure::DiskFull,
                    detail: "No space left on device (os error 28)".into(),
                }),
            }),
            CallEventKind::SessionRecovered,
        ];
        kinds
            .into_iter()
            .zip(0..)
            .map(|(kind, i)| CallEvent::new(UnixMillis(1_795_874_587_123 + i), kind))
            .collect()
    }

    #[test]
    fn every_kind_round_trips_through_json() {
        for event in every_kind() {
            let text = serde_json::to_string(&event).unwrap();
            let back: CallEvent = serde_json::from_str(&text).unwrap();
            assert_eq!(back, event, "{text}");
            let tag: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(tag["kind"]["type"], event.kind.name(), "{text}");
        }
    }

    #[test]
    fn journal_uses_spec_spellings() {
        let events = every_kind();
        let json = |i: usize| serde_json::to_value(&events[i]).unwrap();
        assert_eq!(
            json(1),
            serde_json::json!({
                "at": 1_795_874_587_124u64,
                "kind": {
                    "type": "target_added",
                    "target": "1179059904569155584",
                    "call_type": "queue_callback",
                    "caller": "101",
                    "callee": "102",
                    "destination": "sip:102@10.0.0.7:5062",
                    "trunk_name": "",
                    "outbound_caller_id": "",
                    "did": "",
                    "reroute_reason": "FORWARDING_NOT_REACHABLE",
                }
            })
        );
        assert_eq!(json(0)["kind"]["direction"], "in2out");
        // User ids are decimal strings like every id; absent ones are left
        // out, so journals written before them read back as `None`.
        assert_eq!(json(0)["kind"]["caller_user"], "7001");
        assert!(json(0)["kind"].get("callee_user").is_none());
        assert_eq!(json(4)["kind"]["cause"], "answered_elsewhere");
        assert_eq!(json(6)["kind"]["reason"], "attended_transfer_complete");
        assert_eq!(json(8)["kind"]["reason"], "None");
        assert_eq!(
            json(8)["kind"]["recording_error"],
            serde_json::json!({"reason": "disk_full", "detail": "No space left on device (os error 28)"})
        );
        // Journals written before `recording_error` read back as `None`.
        let mut old = json(8);
        old["kind"]
            .as_object_mut()
            .unwrap()
            .remove("recording_error");
        let back: CallEvent = serde_json::from_value(old).unwrap();
        match back.kind {
            CallEventKind::SessionEnded(end) => assert_eq!(end.recording_error, None),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            json(9),
            serde_json::json!({"at": 1_795_874_587_132u64, "kind": {"type": "session_recovered"}})
        );
    }

    #[test]
    fn journal_rejects_unknown_spellings() {
        let bad = r#"{"at":1,"kind":{"type":"session_started","session_id":"1","tenant_id":"2",
            "tenant_name":"","call_id":"","direction":"sideways","caller":{"user":"","display_name":"","domain":""},
            "callee":{"user":"","display_name":"","domain":""},"did":"","trunk_name":"",
            "outbound_caller_id":"","user_data":""}}"#;
        let error = serde_json::from_str::<CallEvent>(bad).unwrap_err();
        assert!(error.to_string().contains("sideways"), "{error}");
        assert!(serde_json::from_str::<CallEvent>(r#"{"at":1,"kind":{"type":"nope"}}"#).is_err());
    }
}
