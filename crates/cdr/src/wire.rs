//! `WireEvent`: the PortSIP event objects of SPEC §4 and the `call_cdr` of
//! SPEC §2, ready to be committed and serialized.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::event::{Party, Recording, RecordingError};
use crate::id::{CdrId, SessionId, TargetId, TenantId};
use crate::record::{CdrRecord, TargetJson};
use crate::time::{UnixMillis, event_time};
use crate::vocab::{Direction, DirectionVocabulary, UnknownSpelling};

/// The `event_type` of a wire event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    CallStart,
    CallUpdateInfo,
    TargetAdd,
    TargetRinging,
    TargetAnswer,
    TargetNoAnswer,
    TargetFail,
    TargetEnd,
    CallCdr,
}

impl EventType {
    pub const ALL: [Self; 9] = [
        Self::CallStart,
        Self::CallUpdateInfo,
        Self::TargetAdd,
        Self::TargetRinging,
        Self::TargetAnswer,
        Self::TargetNoAnswer,
        Self::TargetFail,
        Self::TargetEnd,
        Self::CallCdr,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CallStart => "call_start",
            Self::CallUpdateInfo => "call_update_info",
            Self::TargetAdd => "cdr_target_add",
            Self::TargetRinging => "cdr_target_ringing",
            Self::TargetAnswer => "cdr_target_answer",
            Self::TargetNoAnswer => "cdr_target_noanswer",
            Self::TargetFail => "cdr_target_fail",
            Self::TargetEnd => "cdr_target_end",
            Self::CallCdr => "call_cdr",
        }
    }

    /// Parses an `event_type` (e.g. from a webhook's `event_types` filter).
    pub fn parse(text: &str) -> Result<Self, UnknownSpelling> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| UnknownSpelling {
                kind: "event type",
                value: text.to_owned(),
            })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `event_id` of a wire event: a UUIDv8 (RFC 9562 §5.8) derived from
/// the session id and the event's ordinal within the session (0 for
/// `call_start`, then 1, 2… in emission order).
///
/// Deterministic on purpose: no randomness is needed, a retry or a replay
/// of the same session's `CallEvent`s after a crash yields the same ids (so
/// receivers and the store can deduplicate), and distinct (session,
/// ordinal) pairs never share an id. Layout (bit 127 first):
///
/// ```text
/// session_id[63..16] (48) | version 0b1000 (4) | session_id[15..4] (12)
/// | variant 0b10 (2) | session_id[3..0] (4) | 0 (26) | ordinal (32)
/// ```
///
/// The 26 zero bits are what a future family of derived ids (e.g.
/// extension events) would set to stay disjoint from this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u128);

impl EventId {
    pub const fn for_session_event(session: SessionId, ordinal: u32) -> Self {
        let s = session.id().as_u64() as u128;
        Self(
            ((s >> 16) << 80)
                | (0x8 << 76)
                | (((s >> 4) & 0xfff) << 64)
                | (0b10 << 62)
                | ((s & 0xf) << 58)
                | ordinal as u128,
        )
    }

    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The session id this event id was derived from.
    pub fn session_id(self) -> SessionId {
        let v = self.0;
        let s = ((v >> 80) << 16) | (((v >> 64) & 0xfff) << 4) | ((v >> 58) & 0xf);
        SessionId::from(crate::id::Id::from_u64(s as u64))
    }

    /// The ordinal of the event within its session.
    pub const fn ordinal(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for EventId {
    /// Lowercase 8-4-4-4-12 hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            v >> 96,
            (v >> 80) & 0xffff,
            (v >> 64) & 0xffff,
            (v >> 48) & 0xffff,
            v & 0xffff_ffff_ffff
        )
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// How events are spelled for a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WireProfile {
    /// `events.direction_vocabulary`.
    pub direction_vocabulary: DirectionVocabulary,
    /// `events.misspelt_destination`: target events also carry PortSIP's
    /// misspelt `destiantion` key (same value as `destination`), so
    /// integrations written against PortSIP work unchanged. On by default
    /// (SPEC §4); a deployment whose consumers are all new may drop it.
    pub misspelt_destination: bool,
}

impl WireProfile {
    /// SPEC §4's default: classic directions, and the misspelt key sent.
    pub const fn tally() -> Self {
        Self {
            direction_vocabulary: DirectionVocabulary::Classic,
            misspelt_destination: true,
        }
    }
}

impl Default for WireProfile {
    fn default() -> Self {
        Self::tally()
    }
}

/// A wire event could not be encoded as JSON. Not expected to happen (the
/// builder rejects non-finite numbers), but surfaced rather than hidden.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {event_type} as JSON: {source}")]
pub struct EncodeError {
    pub event_type: EventType,
    #[source]
    pub source: serde_json::Error,
}

/// The identity fields every event but `call_cdr` repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SessionHeader {
    pub session_id: SessionId,
    pub cdr_id: CdrId,
    pub tenant_id: TenantId,
    pub direction: Direction,
}

/// Who is calling whom, as `call_start` and `call_update_info` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CallIdentity {
    pub caller: Party,
    pub callee: Party,
    pub did: String,
    pub outbound_caller_id: String,
}

/// The fields of a target event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TargetLeg {
    pub target: TargetId,
    pub destination: String,
    pub caller: String,
    pub callee: String,
    pub did: String,
    pub outbound_caller_id: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Payload {
    CallStart {
        identity: CallIdentity,
        call_id: String,
        user_data: String,
    },
    CallUpdateInfo(CallIdentity),
    Target(TargetLeg),
    CallCdr(Box<CdrRecord>),
}

/// One event for the outside world (SPEC §4, or the `call_cdr` of SPEC §2),
/// before its `sequence` is known.
///
/// A `WireEvent` holds typed data, not JSON, because two things are only
/// known later: the per-tenant `sequence` (assigned by the store when it
/// commits the outbox row) and the [`WireProfile`] (configuration). The
/// store calls [`WireEvent::to_json`] with both. The JSON is one object, no
/// envelope, keys in PortSIP's documented order followed by Tally's
/// additions (`recording`, `recording_error`, `recovered`, then `event_id`,
/// `sequence`).
///
/// Where SPEC is silent:
///
/// * `time` is when the event happened, on every event type (PortSIP's
///   docs copy "call start time" onto update and target events);
/// * `caller`/`callee` are SIP URIs (`sip:101@acme.example`) in
///   `call_start` and `call_update_info`, as in PortSIP's `call_start`
///   example, and user parts (`101`) in target events and `call_cdr`, as
///   in PortSIP's `call_cdr` example (SPEC §4);
/// * `sequence` is a JSON number (a resume offset, not an id);
/// * target events carry exactly SPEC §4's fields; the leg's outcome
///   (status, code, reason) is in `call_cdr.call_targets`.
#[derive(Clone, Debug, PartialEq)]
pub struct WireEvent {
    event_type: EventType,
    event_id: EventId,
    header: SessionHeader,
    time: UnixMillis,
    payload: Payload,
}

impl WireEvent {
    pub(crate) fn new(
        event_type: EventType,
        ordinal: u32,
        header: SessionHeader,
        time: UnixMillis,
        payload: Payload,
    ) -> Self {
        Self {
            event_type,
            event_id: EventId::for_session_event(header.session_id, ordinal),
            header,
            time,
            payload,
        }
    }

    pub fn event_type(&self) -> EventType {
        self.event_type
    }

    pub fn event_id(&self) -> EventId {
        self.event_id
    }

    pub fn tenant_id(&self) -> TenantId {
        self.header.tenant_id
    }

    pub fn session_id(&self) -> SessionId {
        self.header.session_id
    }

    /// When it happened (for `call_cdr`: the session's `ended_time`).
    pub fn time(&self) -> UnixMillis {
        self.time
    }

    /// The target a `cdr_target_*` event is about.
    pub fn target_id(&self) -> Option<TargetId> {
        match &self.payload {
            Payload::Target(leg) => Some(leg.target),
            _ => None,
        }
    }

    /// The finished CDR, on `call_cdr`.
    pub fn cdr(&self) -> Option<&CdrRecord> {
        match &self.payload {
            Payload::CallCdr(record) => Some(record),
            _ => None,
        }
    }

    /// The event's JSON object, with the `sequence` the store assigned.
    pub fn to_json(&self, sequence: u64, profile: &WireProfile) -> Result<String, EncodeError> {
        let h = &self.header;
        let direction = h.direction.event_spelling(profile.direction_vocabulary);
        let event_type = self.event_type.as_str();
        let time = event_time(Some(self.time));
        let event_id = self.event_id;
        let encoded = match &self.payload {
            Payload::CallStart {
                identity,
                call_id,
                user_data,
            } => serde_json::to_string(&CallStartJson {
                event_type,
                time,
                session_id: h.session_id,
                cdr_id: h.cdr_id,
                tenant_id: h.tenant_id,
                direction,
                call_id,
                caller: identity.caller.sip_uri(),
                caller_display_name: &identity.caller.display_name,
                callee: identity.callee.sip_uri(),
                callee_display_name: &identity.callee.display_name,
                did: &identity.did,
                outbound_caller_id: &identity.outbound_caller_id,
                user_data,
                event_id,
                sequence,
            }),
            Payload::CallUpdateInfo(identity) => serde_json::to_string(&CallUpdateInfoJson {
                event_type,
                time,
                session_id: h.session_id,
                cdr_id: h.cdr_id,
                tenant_id: h.tenant_id,
                direction,
                caller: identity.caller.sip_uri(),
                caller_display_name: &identity.caller.display_name,
                callee: identity.callee.sip_uri(),
                callee_display_name: &identity.callee.display_name,
                did: &identity.did,
                outbound_caller_id: &identity.outbound_caller_id,
                event_id,
                sequence,
            }),
            Payload::Target(leg) => serde_json::to_string(&TargetEventJson {
                event_type,
                time,
                session_id: h.session_id,
                cdr_id: h.cdr_id,
                tenant_id: h.tenant_id,
                direction,
                destination: &leg.destination,
                destiantion: profile
                    .misspelt_destination
                    .then_some(leg.destination.as_str()),
                caller: &leg.caller,
                callee: &leg.callee,
                did: &leg.did,
                outbound_caller_id: &leg.outbound_caller_id,
                target_id: leg.target,
                event_id,
                sequence,
            }),
            Payload::CallCdr(record) => {
                serde_json::to_string(&call_cdr_json(record, direction, event_id, sequence))
            }
        };
        encoded.map_err(|source| EncodeError {
            event_type: self.event_type,
            source,
        })
    }
}

fn call_cdr_json<'a>(
    r: &'a CdrRecord,
    direction: &'static str,
    event_id: EventId,
    sequence: u64,
) -> CallCdrJson<'a> {
    CallCdrJson {
        event_type: EventType::CallCdr.as_str(),
        session_id: r.session_id,
        cdr_id: r.cdr_id,
        call_id: &r.call_id,
        tenant_id: r.tenant_id,
        tenant_name: &r.tenant_name,
        direction,
        caller: &r.caller.user,
        caller_display_name: &r.caller.display_name,
        caller_domain: &r.caller.domain,
        callee: &r.callee.user,
        callee_display_name: &r.callee.display_name,
        callee_domain: &r.callee.domain,
        did: &r.did,
        did_cid: &r.did,
        outbound_caller_id: &r.outbound_caller_id,
        trunk_name: &r.trunk_name,
        start_time: event_time(Some(r.start_time)),
        ring_time: event_time(r.ring_time),
        answered_time: event_time(r.answered_time),
        ended_time: event_time(Some(r.ended_time)),
        ring_duration: r.ring_duration().to_string(),
        talk_duration: r.talk_duration(),
        call_status: r.call_status.as_str(),
        status_code: r.status_code.to_string(),
        ended_reason: r.ended_reason.event_spelling(),
        end_reason: r.ended_reason.event_spelling(),
        user_data: &r.user_data,
        recording: r.recording.as_ref(),
        recording_error: r.recording_error.as_ref(),
        recovered: r.recovered,
        call_targets: r
            .targets
            .iter()
            .map(|t| t.to_json(r.cdr_id, direction))
            .collect(),
        event_id,
        sequence,
    }
}

#[derive(Serialize)]
struct CallStartJson<'a> {
    event_type: &'static str,
    time: String,
    session_id: SessionId,
    cdr_id: CdrId,
    tenant_id: TenantId,
    direction: &'static str,
    call_id: &'a str,
    /// A SIP URI (SPEC §4).
    caller: String,
    caller_display_name: &'a str,
    callee: String,
    callee_display_name: &'a str,
    did: &'a str,
    outbound_caller_id: &'a str,
    user_data: &'a str,
    event_id: EventId,
    sequence: u64,
}

#[derive(Serialize)]
struct CallUpdateInfoJson<'a> {
    event_type: &'static str,
    time: String,
    session_id: SessionId,
    cdr_id: CdrId,
    tenant_id: TenantId,
    direction: &'static str,
    /// A SIP URI (SPEC §4).
    caller: String,
    caller_display_name: &'a str,
    callee: String,
    callee_display_name: &'a str,
    did: &'a str,
    outbound_caller_id: &'a str,
    event_id: EventId,
    sequence: u64,
}

#[derive(Serialize)]
struct TargetEventJson<'a> {
    event_type: &'static str,
    time: String,
    session_id: SessionId,
    cdr_id: CdrId,
    tenant_id: TenantId,
    direction: &'static str,
    destination: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    destiantion: Option<&'a str>,
    caller: &'a str,
    callee: &'a str,
    did: &'a str,
    outbound_caller_id: &'a str,
    target_id: TargetId,
    event_id: EventId,
    sequence: u64,
}

#[derive(Serialize)]
struct CallCdrJson<'a> {
    event_type: &'static str,
    session_id: SessionId,
    cdr_id: CdrId,
    call_id: &'a str,
    tenant_id: TenantId,
    tenant_name: &'a str,
    direction: &'static str,
    caller: &'a str,
    caller_display_name: &'a str,
    caller_domain: &'a str,
    callee: &'a str,
    callee_display_name: &'a str,
    callee_domain: &'a str,
    did: &'a str,
    did_cid: &'a str,
    outbound_caller_id: &'a str,
    trunk_name: &'a str,
    start_time: String,
    ring_time: String,
    answered_time: String,
    ended_time: String,
    ring_duration: String,
    talk_duration: u64,
    call_status: &'static str,
    status_code: String,
    ended_reason: &'static str,
    /// Same value as `ended_reason`: PortSIP's table and examples disagree
    /// on the key, so both are sent (SPEC §2).
    end_reason: &'static str,
    user_data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    recording: Option<&'a Recording>,
    /// Why `recording` is missing when the call was to be recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    recording_error: Option<&'a RecordingError>,
    #[serde(skip_serializing_if = "is_false")]
    recovered: bool,
    call_targets: Vec<TargetJson<'a>>,
    event_id: EventId,
    sequence: u64,
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::id::Id;

    fn session(raw: u64) -> SessionId {
        SessionId::from(Id::from_u64(raw))
    }

    #[test]
    fn event_type_spellings_round_trip() {
        let spellings: HashSet<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(spellings.len(), EventType::ALL.len());
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Ok(t));
        }
        assert!(EventType::parse("target_add").is_err());
    }

    #[test]
    fn event_id_is_a_uuid_v8_with_a_known_layout() {
        let id = EventId::for_session_event(session(0x0123_4567_89ab_cdef), 0x1122_3344);
        assert_eq!(id.to_string(), "01234567-89ab-8cde-bc00-000011223344");
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "8", "version nibble");
        assert!(
            matches!(&text[19..20], "8" | "9" | "a" | "b"),
            "variant bits"
        );
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"01234567-89ab-8cde-bc00-000011223344\""
        );
    }

    #[test]
    fn event_id_is_stable_and_decodes_back() {
        let s = session(885_337_248_273_272_832);
        assert_eq!(
            EventId::for_session_event(s, 3),
            EventId::for_session_event(s, 3)
        );
        for raw in [0, 1, 15, 16, 0xffff, u64::MAX, 885_337_248_273_272_832] {
            for ordinal in [0, 1, u32::MAX] {
                let id = EventId::for_session_event(session(raw), ordinal);
                assert_eq!(id.session_id(), session(raw));
                assert_eq!(id.ordinal(), ordinal);
                assert_eq!((id.as_u128() >> 76) & 0xf, 8);
                assert_eq!((id.as_u128() >> 62) & 0b11, 0b10);
            }
        }
    }

    #[test]
    fn event_ids_differ_across_sessions_and_ordinals() {
        let mut seen = HashSet::new();
        for raw in [
            0u64,
            1,
            2,
            16,
            1 << 16,
            885_337_248_273_272_832,
            885_337_248_273_272_833,
        ] {
            for ordinal in 0..64 {
                assert!(seen.insert(EventId::for_session_event(session(raw), ordinal)));
            }
        }
    }

    #[test]
    fn the_default_profile_sends_the_misspelt_key_with_classic_directions() {
        assert_eq!(WireProfile::default(), WireProfile::tally());
        assert!(WireProfile::default().misspelt_destination);
        assert_eq!(
            WireProfile::default().direction_vocabulary,
            DirectionVocabulary::Classic
        );
    }
}
