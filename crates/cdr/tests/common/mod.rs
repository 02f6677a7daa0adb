//! A scripted call: feeds `CallEvent`s with concrete millisecond times into
//! a `Builder` and keeps every wire event it returns.
//!
//! Fixture: tenant `acme`, extension 101 (Tom) calls extension 102 (Jason)
//! at 2026-11-28T14:03:07.123Z; offsets are milliseconds after that.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use cdr::{
    BuildError, Builder, CallEvent, CallEventKind, CallType, Direction, EndReason, Id,
    NoAnswerCause, Party, SessionEnd, SessionId, SessionStart, Snowflake, TargetAdded, TargetEnd,
    TargetId, TenantId, UnixMillis, WireEvent, WireProfile,
};
use serde_json::{Value, json};

/// 2026-11-28T14:03:07.123Z.
pub const T0: u64 = 1_795_874_587_123;

pub fn at(offset_ms: u64) -> UnixMillis {
    UnixMillis(T0 + offset_ms)
}

/// The session id node 1 hands out at T0 (pinned in the golden JSON as
/// "1179059904569151488").
pub fn session_id() -> SessionId {
    let mut snowflake = Snowflake::new(1).unwrap();
    snowflake.next_session(at(0))
}

/// A target id made by node 1 at `T0 + offset_ms`.
pub fn target_id(offset_ms: u64) -> TargetId {
    let mut snowflake = Snowflake::new(1).unwrap();
    TargetId::from(snowflake.next(at(offset_ms)))
}

pub fn tenant_id() -> TenantId {
    TenantId::from(Id::from_u64(883_611_252_155_219_968))
}

pub fn party(user: &str, display_name: &str) -> Party {
    Party {
        user: user.into(),
        display_name: display_name.into(),
        domain: "acme.example".into(),
    }
}

pub fn ext_call_start() -> SessionStart {
    SessionStart {
        session_id: session_id(),
        tenant_id: tenant_id(),
        tenant_name: "acme".into(),
        call_id: "3c26a1f1e7b94f0a@10.0.0.5".into(),
        direction: Direction::Extension,
        caller: party("101", "Tom"),
        callee: party("102", "Jason"),
        did: String::new(),
        trunk_name: String::new(),
        outbound_caller_id: String::new(),
        user_data: String::new(),
        caller_user: None,
        callee_user: None,
    }
}

pub fn target_to(target: TargetId, callee: &str, destination: &str) -> TargetAdded {
    TargetAdded {
        target,
        call_type: CallType::Normal,
        caller: "101".into(),
        callee: callee.into(),
        destination: destination.into(),
        trunk_name: String::new(),
        outbound_caller_id: String::new(),
        did: String::new(),
        reroute_reason: None,
        user: None,
    }
}

/// A call being scripted.
#[derive(Default)]
pub struct Call {
    pub builder: Builder,
    pub events: Vec<WireEvent>,
}

impl Call {
    /// A call whose session started at T0 with `start`.
    pub fn started_with(start: SessionStart) -> Self {
        let mut call = Self::default();
        call.apply(0, CallEventKind::SessionStarted(Box::new(start)));
        call
    }

    /// 101 → 102, extension to extension.
    pub fn ext() -> Self {
        Self::started_with(ext_call_start())
    }

    pub fn try_apply(&mut self, offset_ms: u64, kind: CallEventKind) -> Result<(), BuildError> {
        let wire = self.builder.apply(CallEvent::new(at(offset_ms), kind))?;
        self.events.extend(wire);
        Ok(())
    }

    pub fn apply(&mut self, offset_ms: u64, kind: CallEventKind) -> &mut Self {
        if let Err(error) = self.try_apply(offset_ms, kind) {
            panic!("rejected at +{offset_ms} ms: {error}");
        }
        self
    }

    pub fn add(&mut self, offset_ms: u64, added: TargetAdded) -> &mut Self {
        self.apply(offset_ms, CallEventKind::TargetAdded(Box::new(added)))
    }

    /// Adds a target to 102 at `destination`.
    pub fn add_102(&mut self, offset_ms: u64, target: TargetId, destination: &str) -> &mut Self {
        self.add(offset_ms, target_to(target, "102", destination))
    }

    pub fn ring(&mut self, offset_ms: u64, target: TargetId) -> &mut Self {
        self.apply(offset_ms, CallEventKind::TargetRinging { target })
    }

    pub fn answer(&mut self, offset_ms: u64, target: TargetId) -> &mut Self {
        self.apply(offset_ms, CallEventKind::TargetAnswered { target })
    }

    pub fn no_answer(
        &mut self,
        offset_ms: u64,
        target: TargetId,
        cause: NoAnswerCause,
    ) -> &mut Self {
        self.apply(offset_ms, CallEventKind::TargetNoAnswer { target, cause })
    }

    pub fn fail(&mut self, offset_ms: u64, target: TargetId, status_code: u16) -> &mut Self {
        self.apply(
            offset_ms,
            CallEventKind::TargetFailed {
                target,
                status_code,
            },
        )
    }

    pub fn end_target(&mut self, offset_ms: u64, target: TargetId, reason: EndReason) -> &mut Self {
        self.apply(
            offset_ms,
            CallEventKind::TargetEnded(TargetEnd {
                target,
                reason,
                cost: None,
                quality: None,
            }),
        )
    }

    pub fn end(&mut self, offset_ms: u64, status_code: u16, reason: EndReason) -> &mut Self {
        self.apply(
            offset_ms,
            CallEventKind::SessionEnded(SessionEnd {
                status_code,
                reason,
                recording: None,
                recording_error: None,
            }),
        )
    }

    /// Each event's JSON, as the store would serialize it with sequence
    /// numbers 1, 2, 3… under `profile`.
    pub fn json_with(&self, profile: &WireProfile) -> Vec<Value> {
        self.events
            .iter()
            .zip(1..)
            .map(|(event, sequence)| {
                let text = event.to_json(sequence, profile).unwrap();
                serde_json::from_str(&text).unwrap()
            })
            .collect()
    }

    pub fn json(&self) -> Vec<Value> {
        self.json_with(&WireProfile::tally())
    }

    /// The `call_cdr` object (the last event).
    pub fn cdr_json(&self) -> Value {
        let all = self.json();
        let last = all.last().cloned().unwrap_or(Value::Null);
        assert_eq!(last["event_type"], "call_cdr");
        last
    }

    /// Key fields of every event, in emission order: `event_type`, `time`
    /// (for `call_cdr`: `ended_time`), `target_id` when present, and the
    /// ordinal encoded in the `event_id`.
    pub fn timeline(&self) -> Vec<Value> {
        self.events
            .iter()
            .zip(self.json())
            .map(|(event, json)| {
                let time = json.get("time").or_else(|| json.get("ended_time"));
                let mut key = json!({
                    "event_type": json["event_type"],
                    "time": time,
                    "ordinal": event.event_id().ordinal(),
                });
                if let Some(target) = json.get("target_id") {
                    key["target_id"] = target.clone();
                }
                key
            })
            .collect()
    }
}
