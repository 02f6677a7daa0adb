//! The closed sets of SPEC.md and their wire spellings.
//!
//! Each enum maps to each of its spellings in exactly one `match`; parsing is
//! derived from that same `match` (it searches `ALL`), so a spelling can
//! never be written one way and read another. Serde (the store's journal of
//! open sessions) goes through the same spellings.

use std::fmt;

/// A spelling that does not name any value of the enum it was parsed as.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownSpelling {
    /// What was being parsed, e.g. `"direction"`.
    pub kind: &'static str,
    /// The text that was given.
    pub value: String,
}

fn parse_by<T: Copy>(
    kind: &'static str,
    all: &[T],
    spell: impl Fn(T) -> &'static str,
    text: &str,
) -> Result<T, UnknownSpelling> {
    all.iter()
        .copied()
        .find(|value| spell(*value) == text)
        .ok_or_else(|| UnknownSpelling {
            kind,
            value: text.to_owned(),
        })
}

/// Serde for a vocabulary enum through one of its SPEC spellings, so what is
/// persisted uses the contract's words (stable), not Rust identifiers.
macro_rules! serde_by_spelling {
    ($ty:ty, $spell:expr, $parse:expr) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str($spell(*self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_by_spelling!(
    Direction,
    |d: Direction| d.event_spelling(DirectionVocabulary::Classic),
    Direction::parse_event
);
serde_by_spelling!(CallType, CallType::as_str, CallType::parse);
serde_by_spelling!(EndReason, EndReason::event_spelling, EndReason::parse_event);
serde_by_spelling!(
    RerouteReason,
    RerouteReason::rest_spelling,
    RerouteReason::parse_rest
);

serde_by_spelling!(
    RecordingFailure,
    RecordingFailure::as_str,
    RecordingFailure::parse
);

/// Why a call that was to be recorded has no recording (Tally addition:
/// `recording_error.reason` in the CDR; DESIGN.md, "How media is
/// relayed").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordingFailure {
    /// The disk (or the user's quota) filled up before any audio was kept.
    DiskFull,
    /// The recordings directory or file could not be created or written
    /// (permissions, a file where a directory should be, any other I/O
    /// error).
    Unwritable,
    /// The call was relayed and answered, but no audio reached the file.
    NoAudio,
    /// No RTP ports were free: the call went on unrelayed.
    NoPorts,
    /// The media relay is off (`media.anchor = "never"`, or no
    /// `media.address` could be found).
    MediaOff,
    /// The call is of a kind the PBX does not relay (calls started over
    /// REST).
    NotRelayed,
    /// The relay could not be started (its sockets failed).
    RelayFailed,
    /// The file was written but its `recordings` row was not; the file
    /// stays on disk.
    StoreFailed,
}

impl RecordingFailure {
    pub const ALL: [Self; 8] = [
        Self::DiskFull,
        Self::Unwritable,
        Self::NoAudio,
        Self::NoPorts,
        Self::MediaOff,
        Self::NotRelayed,
        Self::RelayFailed,
        Self::StoreFailed,
    ];

    /// Same spelling in events, REST and the store.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DiskFull => "disk_full",
            Self::Unwritable => "unwritable",
            Self::NoAudio => "no_audio",
            Self::NoPorts => "no_ports",
            Self::MediaOff => "media_off",
            Self::NotRelayed => "not_relayed",
            Self::RelayFailed => "relay_failed",
            Self::StoreFailed => "store_failed",
        }
    }

    pub fn parse(text: &str) -> Result<Self, UnknownSpelling> {
        parse_by("recording failure", &Self::ALL, Self::as_str, text)
    }

    /// The failure an I/O error writing a recording means: `disk_full`
    /// for ENOSPC (and EDQUOT), `unwritable` for anything else.
    pub fn of_io(error: &std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Self::DiskFull,
            _ => Self::Unwritable,
        }
    }
}

/// Which words the real-time events use for [`Direction`] (SPEC §2, config
/// `events.direction_vocabulary`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DirectionVocabulary {
    /// `ext` / `in` / `out` / `in2out`: every published PortSIP example and
    /// the deployed integrations.
    #[default]
    Classic,
    /// `internal` / `inbound` / `outbound` / `inbound_outbound`: PortSIP's
    /// Event Reference from its 2026-07 edit (config value `"v22.6"`).
    V22_6,
}

impl DirectionVocabulary {
    pub const ALL: [Self; 2] = [Self::Classic, Self::V22_6];

    /// The config spelling (`events.direction_vocabulary`). SPEC names only
    /// `"v22.6"`; the default is spelled `"classic"`.
    pub const fn config_spelling(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::V22_6 => "v22.6",
        }
    }

    pub fn parse_config(text: &str) -> Result<Self, UnknownSpelling> {
        parse_by(
            "direction vocabulary",
            &Self::ALL,
            Self::config_spelling,
            text,
        )
    }
}

/// Which way a call crossed the PBX; decided once, at routing (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Extension to extension (or to an IVR, queue, ring group).
    Extension,
    /// From a trunk into the PBX.
    Inbound,
    /// From the PBX out to a trunk.
    Outbound,
    /// Came in from a trunk and left by a trunk.
    InboundOutbound,
}

impl Direction {
    pub const ALL: [Self; 4] = [
        Self::Extension,
        Self::Inbound,
        Self::Outbound,
        Self::InboundOutbound,
    ];

    /// The event spelling in the given vocabulary.
    pub const fn event_spelling(self, vocabulary: DirectionVocabulary) -> &'static str {
        match (vocabulary, self) {
            (DirectionVocabulary::Classic, Self::Extension) => "ext",
            (DirectionVocabulary::Classic, Self::Inbound) => "in",
            (DirectionVocabulary::Classic, Self::Outbound) => "out",
            (DirectionVocabulary::Classic, Self::InboundOutbound) => "in2out",
            (DirectionVocabulary::V22_6, Self::Extension) => "internal",
            (DirectionVocabulary::V22_6, Self::Inbound) => "inbound",
            (DirectionVocabulary::V22_6, Self::Outbound) => "outbound",
            (DirectionVocabulary::V22_6, Self::InboundOutbound) => "inbound_outbound",
        }
    }

    /// The REST spelling (SPEC §7).
    pub const fn rest_spelling(self) -> &'static str {
        match self {
            Self::Extension => "EXTENSION_CALL",
            Self::Inbound => "INBOUND_CALL",
            Self::Outbound => "OUTBOUND_CALL",
            Self::InboundOutbound => "INBOUND_OUTBOUND_CALL",
        }
    }

    /// Parses an event spelling of either vocabulary (the two do not
    /// overlap, so a reader need not know which one the writer used).
    pub fn parse_event(text: &str) -> Result<Self, UnknownSpelling> {
        DirectionVocabulary::ALL
            .iter()
            .find_map(|vocabulary| {
                parse_by(
                    "direction",
                    &Self::ALL,
                    |d| d.event_spelling(*vocabulary),
                    text,
                )
                .ok()
            })
            .ok_or_else(|| UnknownSpelling {
                kind: "direction",
                value: text.to_owned(),
            })
    }

    pub fn parse_rest(text: &str) -> Result<Self, UnknownSpelling> {
        parse_by("direction", &Self::ALL, Self::rest_spelling, text)
    }
}

/// Final status of a whole call (`call_status`, SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallStatus {
    /// Some target answered (an IVR or queue answering counts).
    Answered,
    /// Rang out (408) or the caller cancelled (487).
    NoAnswer,
    /// Rejected, unknown, unreachable: any other final failure.
    Fail,
}

impl CallStatus {
    pub const ALL: [Self; 3] = [Self::Answered, Self::NoAnswer, Self::Fail];

    /// Same spelling in events and REST (SPEC names only this one).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::NoAnswer => "noanswer",
            Self::Fail => "fail",
        }
    }

    pub fn parse(text: &str) -> Result<Self, UnknownSpelling> {
        parse_by("call status", &Self::ALL, Self::as_str, text)
    }

    /// The status of a call that no target answered, from the final code
    /// the PBX sent the caller (SPEC §2): ring timeout (408) and cancel
    /// (487) are `noanswer`, everything else (486, 603, 404, 480, 5xx…) is
    /// `fail`.
    pub const fn of_unanswered(final_code: u16) -> Self {
        match final_code {
            408 | 487 => Self::NoAnswer,
            _ => Self::Fail,
        }
    }
}

/// Final status of one target (`call_targets[].status`, SPEC §2). PortSIP
/// documents no `fail` here: a failed target is `noanswer` with a non-zero
/// `status_code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetStatus {
    Answered,
    NoAnswer,
}

impl TargetStatus {
    pub const ALL: [Self; 2] = [Self::Answered, Self::NoAnswer];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::NoAnswer => "noanswer",
        }
    }

    pub fn parse(text: &str) -> Result<Self, UnknownSpelling> {
        parse_by("target status", &Self::ALL, Self::as_str, text)
    }
}

/// Why a target was rung (`call_targets[].call_type`, SPEC §2; SPEC's
/// spellings win over PortSIP's later `callback_call`/`queue_callback_call`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallType {
    Normal,
    RingGroup,
    Queue,
    Callback,
    QueueCallback,
}

impl CallType {
    pub const ALL: [Self; 5] = [
        Self::Normal,
        Self::RingGroup,
        Self::Queue,
        Self::Callback,
        Self::QueueCallback,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal_call",
            Self::RingGroup => "ring_group_call",
            Self::Queue => "queue_call",
            Self::Callback => "callback",
            Self::QueueCallback => "queue_callback",
        }
    }

    pub fn parse(text: &str) -> Result<Self, UnknownSpelling> {
        parse_by("call type", &Self::ALL, Self::as_str, text)
    }
}

/// Why a target leg or a whole session ended: target `end_reason` and call
/// `ended_reason` share this vocabulary (SPEC §2, §3).
///
/// Event spellings follow SPEC (`caller_disconnect`, as in every PortSIP
/// example, not the Event Reference's `caller_disconnected`). REST
/// spellings follow PortSIP's OpenAPI enum (`CALLER_DISCONNECTED`,
/// `CONSULT_TRANSFER_COMPLETED` for an attended transfer…), and
/// [`NotApplicable`](Self::NotApplicable) is `""` there, as in PortSIP's
/// REST example for a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    CallerDisconnect,
    CalleeDisconnect,
    /// The caller cancelled before anyone answered.
    Cancelled,
    /// The transferor hung up after the transfer's NOTIFY reported 200.
    BlindTransferComplete,
    AttendedTransferComplete,
    /// Torn down because of a REFER (blind transfer, IVR/queue hand-off).
    Referred,
    /// Replaced by an attended transfer or a call pickup.
    Replaced,
    /// Answered with a 3xx the PBX followed.
    Redirected,
    /// Unknown or not applicable (failed, lost a fork, recovered after a
    /// crash). Spelled `None` in events.
    NotApplicable,
}

impl EndReason {
    pub const ALL: [Self; 9] = [
        Self::CallerDisconnect,
        Self::CalleeDisconnect,
        Self::Cancelled,
        Self::BlindTransferComplete,
        Self::AttendedTransferComplete,
        Self::Referred,
        Self::Replaced,
        Self::Redirected,
        Self::NotApplicable,
    ];

    pub const fn event_spelling(self) -> &'static str {
        match self {
            Self::CallerDisconnect => "caller_disconnect",
            Self::CalleeDisconnect => "callee_disconnect",
            Self::Cancelled => "cancelled",
            Self::BlindTransferComplete => "blind_transfer_complete",
            Self::AttendedTransferComplete => "attended_transfer_complete",
            Self::Referred => "referred",
            Self::Replaced => "replaced",
            Self::Redirected => "redirected",
            Self::NotApplicable => "None",
        }
    }

    pub const fn rest_spelling(self) -> &'static str {
        match self {
            Self::CallerDisconnect => "CALLER_DISCONNECTED",
            Self::CalleeDisconnect => "CALLEE_DISCONNECTED",
            Self::Cancelled => "CANCELLED",
            Self::BlindTransferComplete => "BLIND_TRANSFER_COMPLETED",
            Self::AttendedTransferComplete => "CONSULT_TRANSFER_COMPLETED",
            Self::Referred => "REFERRED",
            Self::Replaced => "REPLACED",
            Self::Redirected => "REDIRECTED",
            Self::NotApplicable => "",
        }
    }

    pub fn parse_event(text: &str) -> Result<Self, UnknownSpelling> {
        parse_by("end reason", &Self::ALL, Self::event_spelling, text)
    }

    pub fn parse_rest(text: &str) -> Result<Self, UnknownSpelling> {
        parse_by("end reason", &Self::ALL, Self::rest_spelling, text)
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.event_spelling())
    }
}

/// Why the PBX moved a call on to another target (REST `reroute_reason`,
/// SPEC §3). Only REST spells it; `""` when the call was never rerouted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RerouteReason {
    ForwardingNoAnswer,
    ForwardingBusy,
    ForwardingNotReachable,
    ForwardingUnconditional,
    /// The previous target answered 3xx and the PBX followed it.
    Redirect,
}

impl RerouteReason {
    pub const ALL: [Self; 5] = [
        Self::ForwardingNoAnswer,
        Self::ForwardingBusy,
        Self::ForwardingNotReachable,
        Self::ForwardingUnconditional,
        Self::Redirect,
    ];

    pub const fn rest_spelling(self) -> &'static str {
        match self {
            Self::ForwardingNoAnswer => "FORWARDING_NO_ANSWER",
            Self::ForwardingBusy => "FORWARDING_BUSY",
            Self::ForwardingNotReachable => "FORWARDING_NOT_REACHABLE",
            Self::ForwardingUnconditional => "FORWARDING_UNCONDITIONAL",
            Self::Redirect => "REDIRECT",
        }
    }

    pub fn parse_rest(text: &str) -> Result<Self, UnknownSpelling> {
        parse_by("reroute reason", &Self::ALL, Self::rest_spelling, text)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Every value spells distinctly and parses back to itself.
    fn round_trips<T: Copy + Eq + std::fmt::Debug>(
        all: &[T],
        spell: impl Fn(T) -> &'static str,
        parse: impl Fn(&str) -> Result<T, UnknownSpelling>,
    ) {
        let spellings: HashSet<_> = all.iter().map(|v| spell(*v)).collect();
        assert_eq!(spellings.len(), all.len(), "duplicate spelling");
        for value in all {
            assert_eq!(parse(spell(*value)), Ok(*value));
        }
        assert!(parse("no such spelling").is_err());
    }

    #[test]
    fn direction_spellings_round_trip() {
        for vocabulary in DirectionVocabulary::ALL {
            round_trips(
                &Direction::ALL,
                |d| d.event_spelling(vocabulary),
                Direction::parse_event,
            );
        }
        round_trips(
            &Direction::ALL,
            Direction::rest_spelling,
            Direction::parse_rest,
        );
        let classic: Vec<_> = Direction::ALL
            .iter()
            .map(|d| d.event_spelling(DirectionVocabulary::Classic))
            .collect();
        assert_eq!(classic, ["ext", "in", "out", "in2out"]);
        let v22_6: Vec<_> = Direction::ALL
            .iter()
            .map(|d| d.event_spelling(DirectionVocabulary::V22_6))
            .collect();
        assert_eq!(
            v22_6,
            ["internal", "inbound", "outbound", "inbound_outbound"]
        );
        assert!(Direction::parse_event("EXTENSION_CALL").is_err());
        assert_eq!(
            Direction::parse_rest("x"),
            Err(UnknownSpelling {
                kind: "direction",
                value: "x".into()
            })
        );
    }

    #[test]
    fn recording_failure_spellings_round_trip() {
        round_trips(
            &RecordingFailure::ALL,
            RecordingFailure::as_str,
            RecordingFailure::parse,
        );
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(RecordingFailure::of_io(&full), RecordingFailure::DiskFull);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            RecordingFailure::of_io(&denied),
            RecordingFailure::Unwritable
        );
        assert_eq!(
            serde_json::to_string(&RecordingFailure::NoPorts).unwrap(),
            "\"no_ports\""
        );
    }

    #[test]
    fn vocabulary_config_round_trips() {
        round_trips(
            &DirectionVocabulary::ALL,
            DirectionVocabulary::config_spelling,
            DirectionVocabulary::parse_config,
        );
        assert_eq!(
            DirectionVocabulary::parse_config("v22.6"),
            Ok(DirectionVocabulary::V22_6)
        );
    }

    #[test]
    fn status_and_type_spellings_round_trip() {
        round_trips(&CallStatus::ALL, CallStatus::as_str, CallStatus::parse);
        round_trips(
            &TargetStatus::ALL,
            TargetStatus::as_str,
            TargetStatus::parse,
        );
        round_trips(&CallType::ALL, CallType::as_str, CallType::parse);
        assert_eq!(CallType::parse("callback"), Ok(CallType::Callback));
        assert!(CallType::parse("callback_call").is_err());
    }

    #[test]
    fn end_reason_spellings_round_trip() {
        round_trips(
            &EndReason::ALL,
            EndReason::event_spelling,
            EndReason::parse_event,
        );
        round_trips(
            &EndReason::ALL,
            EndReason::rest_spelling,
            EndReason::parse_rest,
        );
        assert_eq!(EndReason::parse_event("None"), Ok(EndReason::NotApplicable));
        assert_eq!(EndReason::parse_rest(""), Ok(EndReason::NotApplicable));
        assert_eq!(EndReason::CallerDisconnect.to_string(), "caller_disconnect");
    }

    #[test]
    fn reroute_reason_spellings_round_trip() {
        round_trips(
            &RerouteReason::ALL,
            RerouteReason::rest_spelling,
            RerouteReason::parse_rest,
        );
    }

    #[test]
    fn unanswered_status_follows_the_final_code() {
        assert_eq!(CallStatus::of_unanswered(487), CallStatus::NoAnswer);
        assert_eq!(CallStatus::of_unanswered(408), CallStatus::NoAnswer);
        for code in [404, 480, 486, 503, 603] {
            assert_eq!(CallStatus::of_unanswered(code), CallStatus::Fail);
        }
    }
}
