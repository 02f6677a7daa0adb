//! `Builder`: one session's `CallEvent`s in, wire events and the CDR out.

use std::fmt;

use crate::event::{
    CallEvent, CallEventKind, NoAnswerCause, Party, Quality, Recording, RecordingError, SessionEnd,
    SessionStart, TargetAdded, TargetEnd,
};
use crate::id::{SessionId, TargetId};
use crate::record::{CdrRecord, TargetRecord};
use crate::time::UnixMillis;
use crate::vocab::{CallStatus, EndReason};
use crate::wire::{CallIdentity, EventType, Payload, SessionHeader, TargetLeg, WireEvent};

/// Where a target is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TargetPhase {
    /// INVITE sent, no ringing yet.
    Calling,
    Ringing,
    Answered,
    Ended,
}

impl fmt::Display for TargetPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Calling => "calling",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Ended => "ended",
        })
    }
}

/// An event the builder refuses: the sequence is not one a correct call
/// engine produces. The builder is unchanged.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BuildError {
    #[error("{event} before session_started")]
    NotStarted { event: &'static str },
    #[error("session {0} already started")]
    AlreadyStarted(SessionId),
    #[error("{event} after session {session} ended")]
    AfterSessionEnded {
        session: SessionId,
        event: &'static str,
    },
    #[error("{event} for unknown target {target}")]
    UnknownTarget {
        target: TargetId,
        event: &'static str,
    },
    #[error("target {0} added twice")]
    DuplicateTarget(TargetId),
    #[error("{event} not allowed for target {target} while it is {phase}")]
    InvalidTransition {
        target: TargetId,
        event: &'static str,
        phase: TargetPhase,
    },
    #[error("target {target} cannot end with {reason} while it is {phase}")]
    TargetEndReason {
        target: TargetId,
        reason: EndReason,
        phase: TargetPhase,
    },
    #[error("target {target} failed with status code {status_code}, expected 300..=699")]
    TargetStatusCode { target: TargetId, status_code: u16 },
    #[error("identity_changed carries neither caller nor callee")]
    EmptyIdentityChange,
    #[error("session cannot end while target {target} is still {phase}")]
    TargetStillActive {
        target: TargetId,
        phase: TargetPhase,
    },
    #[error("final response {status_code} does not fit a call that was {}", answered_word(*.answered))]
    FinalResponse { status_code: u16, answered: bool },
    #[error("session cannot end with {reason}: the call was {}", answered_word(*.answered))]
    SessionEndReason { reason: EndReason, answered: bool },
    #[error("{field} must be a finite number")]
    NotFinite { field: &'static str },
    #[error("more than {} events in one session", u32::MAX)]
    TooManyEvents,
}

fn answered_word(answered: bool) -> &'static str {
    if answered { "answered" } else { "not answered" }
}

/// Folds one session's [`CallEvent`]s into [`WireEvent`]s and, at the end,
/// the [`CdrRecord`].
///
/// SPEC §2/§3's rules live here, once:
///
/// * call-level `ring_time` is the first ring **before the call was
///   answered** (a queue agent ringing after the IVR answered is not
///   ringback the caller heard; SPEC says "first target rang" and is silent
///   on rings after answer); `answered_time` is the first answer;
/// * a target answering without a 18x rang at its `answered_time`, and so
///   did the call when nothing rang before that first answer (SPEC §2);
/// * `callee` stays the first destination; `call_update_info` reports the
///   current identity, the CDR keeps the original;
/// * a target's `status_code`/`end_reason` come from how it stopped:
///   ring timeout 408/`None`, caller cancel 487/`cancelled`, fork loser
///   0/`None`, failure `<code>`/`None`;
/// * `call_status` is `answered` if any target answered, else `noanswer`
///   for 408/487 and `fail` for any other final code;
/// * recovery after a crash closes every open leg at the last activity with
///   `end_reason` `None` and `status_code` 0, and emits only the `call_cdr`
///   (no made-up target events); a recovered call nobody answered is `fail`
///   with `status_code` `"0"`, because the caller never got a final
///   response from the PBX ("0" as in "did not happen", like the times).
///
/// Every `apply` is atomic: on error nothing changed, no ordinal was used,
/// and the caller may go on (or, if it cannot repair the sequence, close the
/// session with [`CallEventKind::SessionRecovered`], which is accepted in
/// any state after the start, so a record is never lost).
///
/// Wall clocks step backwards; the builder never lets time run backwards
/// inside a session: an event stamped before the previous one is taken as
/// happening at the previous one's time, so `start ≤ ring ≤ answer ≤ end`
/// holds in every record.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    session: Option<Session>,
}

impl Builder {
    /// A builder waiting for `SessionStarted`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event and returns the wire events it produces (today
    /// always exactly one) in emission order.
    pub fn apply(&mut self, event: CallEvent) -> Result<Vec<WireEvent>, BuildError> {
        let CallEvent { at, kind } = event;
        match (kind, &mut self.session) {
            (CallEventKind::SessionStarted(_), Some(session)) => {
                Err(BuildError::AlreadyStarted(session.header.session_id))
            }
            (CallEventKind::SessionStarted(start), None) => {
                let (session, wire) = Session::start(at, *start);
                self.session = Some(session);
                Ok(vec![wire])
            }
            (kind, None) => Err(BuildError::NotStarted { event: kind.name() }),
            (kind, Some(session)) => session.apply(at, kind).map(|wire| vec![wire]),
        }
    }

    pub fn session_id(&self) -> Option<SessionId> {
        self.session.as_ref().map(|s| s.header.session_id)
    }

    /// The time of the last accepted event: what the store keeps so that a
    /// restart can close the session at its last activity.
    pub fn last_activity(&self) -> Option<UnixMillis> {
        self.session.as_ref().map(|s| s.last_at)
    }

    /// The finished CDR, once the session ended or was recovered.
    pub fn record(&self) -> Option<&CdrRecord> {
        self.session.as_ref().and_then(|s| s.record.as_deref())
    }

    pub fn is_finished(&self) -> bool {
        self.record().is_some()
    }
}

#[derive(Clone, Debug)]
struct Session {
    header: SessionHeader,
    start: SessionStart,
    started_at: UnixMillis,
    /// Identity as `call_update_info` reports it (starts as the original).
    /// `None`: still the original (`start`'s); most calls never change it,
    /// and a copy cost every open session its strings (issue 18).
    current_caller: Option<Party>,
    current_callee: Option<Party>,
    /// Call-level trunk; adopted from the first trunk target if empty.
    trunk_name: String,
    outbound_caller_id: String,
    ring_time: Option<UnixMillis>,
    answered_time: Option<UnixMillis>,
    targets: Vec<Target>,
    last_at: UnixMillis,
    next_ordinal: u32,
    /// Boxed: empty while the call is live, and ~500 bytes inline in
    /// every open session (issue 18: memory per live call).
    record: Option<Box<CdrRecord>>,
}

#[derive(Clone, Debug)]
struct Target {
    added: TargetAdded,
    start_time: UnixMillis,
    ring_time: Option<UnixMillis>,
    answered_time: Option<UnixMillis>,
    end: Option<LegEnd>,
}

#[derive(Clone, Debug)]
struct LegEnd {
    at: UnixMillis,
    status_code: u16,
    reason: EndReason,
    cost: Option<f64>,
    quality: Option<Quality>,
}

impl Target {
    fn phase(&self) -> TargetPhase {
        if self.end.is_some() {
            TargetPhase::Ended
        } else if self.answered_time.is_some() {
            TargetPhase::Answered
        } else if self.ring_time.is_some() {
            TargetPhase::Ringing
        } else {
            TargetPhase::Calling
        }
    }

    fn leg(&self) -> TargetLeg {
        let a = &self.added;
        TargetLeg {
            target: a.target,
            destination: a.destination.clone(),
            caller: a.caller.clone(),
            callee: a.callee.clone(),
            did: a.did.clone(),
            outbound_caller_id: a.outbound_caller_id.clone(),
        }
    }

    /// The finished target; a leg still open is closed at `at` with `None`
    /// and no failure code (only recovery leaves legs open).
    fn record(&self, at: UnixMillis) -> TargetRecord {
        let a = &self.added;
        let (ended_time, status_code, end_reason, cost, quality) = match &self.end {
            Some(end) => (
                end.at,
                end.status_code,
                end.reason,
                end.cost,
                end.quality.clone(),
            ),
            None => (at, 0, EndReason::NotApplicable, None, None),
        };
        TargetRecord {
            id: a.target,
            call_type: a.call_type,
            caller: a.caller.clone(),
            callee: a.callee.clone(),
            destination: a.destination.clone(),
            start_time: self.start_time,
            ring_time: self.ring_time,
            answered_time: self.answered_time,
            ended_time,
            status_code,
            end_reason,
            trunk_name: a.trunk_name.clone(),
            outbound_caller_id: a.outbound_caller_id.clone(),
            did: a.did.clone(),
            reroute_reason: a.reroute_reason,
            cost,
            quality,
            user: a.user,
        }
    }
}

/// Only transfers, disconnects and "not applicable" end an answered leg;
/// an unanswered leg is ended by a pickup (`replaced`) or a followed 3xx
/// (`redirected`). Cancels and rejections have their own events.
fn end_reason_fits(reason: EndReason, phase: TargetPhase) -> bool {
    match phase {
        TargetPhase::Answered => !matches!(reason, EndReason::Cancelled | EndReason::Redirected),
        TargetPhase::Calling | TargetPhase::Ringing => {
            matches!(reason, EndReason::Replaced | EndReason::Redirected)
        }
        TargetPhase::Ended => false,
    }
}

fn require_finite(value: Option<f64>, field: &'static str) -> Result<(), BuildError> {
    match value {
        Some(v) if !v.is_finite() => Err(BuildError::NotFinite { field }),
        _ => Ok(()),
    }
}

impl Session {
    fn start(at: UnixMillis, start: SessionStart) -> (Self, WireEvent) {
        let header = SessionHeader {
            session_id: start.session_id,
            cdr_id: start.session_id.cdr_id(),
            tenant_id: start.tenant_id,
            direction: start.direction,
        };
        let session = Self {
            header,
            current_caller: None,
            current_callee: None,
            trunk_name: start.trunk_name.clone(),
            outbound_caller_id: start.outbound_caller_id.clone(),
            started_at: at,
            ring_time: None,
            answered_time: None,
            targets: Vec::new(),
            last_at: at,
            next_ordinal: 1,
            record: None,
            start,
        };
        let payload = Payload::CallStart {
            identity: session.identity(),
            call_id: session.start.call_id.clone(),
            user_data: session.start.user_data.clone(),
        };
        let wire = WireEvent::new(EventType::CallStart, 0, header, at, payload);
        (session, wire)
    }

    fn identity(&self) -> CallIdentity {
        CallIdentity {
            caller: self
                .current_caller
                .as_ref()
                .unwrap_or(&self.start.caller)
                .clone(),
            callee: self
                .current_callee
                .as_ref()
                .unwrap_or(&self.start.callee)
                .clone(),
            did: self.start.did.clone(),
            outbound_caller_id: self.outbound_caller_id.clone(),
        }
    }

    fn apply(&mut self, at: UnixMillis, kind: CallEventKind) -> Result<WireEvent, BuildError> {
        let event = kind.name();
        if self.record.is_some() {
            return Err(BuildError::AfterSessionEnded {
                session: self.header.session_id,
                event,
            });
        }
        let ordinal = self.next_ordinal;
        let next_ordinal = ordinal.checked_add(1).ok_or(BuildError::TooManyEvents)?;
        let at = at.max(self.last_at);
        // Each arm validates before it mutates, so an error leaves `self`
        // untouched.
        let (event_type, payload) = match kind {
            CallEventKind::SessionStarted(_) => {
                return Err(BuildError::AlreadyStarted(self.header.session_id));
            }
            CallEventKind::TargetAdded(added) => self.add_target(at, *added)?,
            CallEventKind::TargetRinging { target } => {
                let ring_before_answer = self.answered_time.is_none();
                let t = self.target_in(target, event, &[TargetPhase::Calling])?;
                t.ring_time = Some(at);
                let leg = t.leg();
                if ring_before_answer {
                    self.ring_time.get_or_insert(at);
                }
                (EventType::TargetRinging, Payload::Target(leg))
            }
            CallEventKind::TargetAnswered { target } => {
                let first_answer = self.answered_time.is_none();
                let t =
                    self.target_in(target, event, &[TargetPhase::Calling, TargetPhase::Ringing])?;
                // An answer without a 18x (an IVR, auto-answer) counts as
                // ringing at the answer (SPEC §2 `ring_time`).
                t.ring_time.get_or_insert(at);
                t.answered_time = Some(at);
                let leg = t.leg();
                if first_answer {
                    self.ring_time.get_or_insert(at);
                }
                self.answered_time.get_or_insert(at);
                (EventType::TargetAnswer, Payload::Target(leg))
            }
            CallEventKind::TargetNoAnswer { target, cause } => {
                let (status_code, reason) = match cause {
                    NoAnswerCause::RingTimeout => (408, EndReason::NotApplicable),
                    NoAnswerCause::CallerCancelled => (487, EndReason::Cancelled),
                    NoAnswerCause::AnsweredElsewhere => (0, EndReason::NotApplicable),
                };
                let t =
                    self.target_in(target, event, &[TargetPhase::Calling, TargetPhase::Ringing])?;
                t.end = Some(LegEnd {
                    at,
                    status_code,
                    reason,
                    cost: None,
                    quality: None,
                });
                (EventType::TargetNoAnswer, Payload::Target(t.leg()))
            }
            CallEventKind::TargetFailed {
                target,
                status_code,
            } => {
                let t =
                    self.target_in(target, event, &[TargetPhase::Calling, TargetPhase::Ringing])?;
                if !(300..=699).contains(&status_code) {
                    return Err(BuildError::TargetStatusCode {
                        target,
                        status_code,
                    });
                }
                t.end = Some(LegEnd {
                    at,
                    status_code,
                    reason: EndReason::NotApplicable,
                    cost: None,
                    quality: None,
                });
                (EventType::TargetFail, Payload::Target(t.leg()))
            }
            CallEventKind::TargetEnded(end) => self.end_target(at, end)?,
            CallEventKind::IdentityChanged { caller, callee } => {
                if caller.is_none() && callee.is_none() {
                    return Err(BuildError::EmptyIdentityChange);
                }
                if let Some(caller) = caller {
                    self.current_caller = Some(caller);
                }
                if let Some(callee) = callee {
                    self.current_callee = Some(callee);
                }
                (
                    EventType::CallUpdateInfo,
                    Payload::CallUpdateInfo(self.identity()),
                )
            }
            CallEventKind::SessionEnded(end) => self.end_session(at, end)?,
            CallEventKind::SessionRecovered => {
                let (status, status_code) = match self.answered_time {
                    Some(_) => (CallStatus::Answered, 0),
                    // The caller got no final response from us; 0 says so
                    // the way "0" times say "did not happen".
                    None => (CallStatus::Fail, 0),
                };
                let record = self.finish(
                    at,
                    status,
                    status_code,
                    EndReason::NotApplicable,
                    (None, None),
                    true,
                );
                (EventType::CallCdr, Payload::CallCdr(Box::new(record)))
            }
        };
        self.next_ordinal = next_ordinal;
        self.last_at = at;
        Ok(WireEvent::new(
            event_type,
            ordinal,
            self.header,
            at,
            payload,
        ))
    }

    /// The target `id`, if it is in one of `phases`.
    fn target_in(
        &mut self,
        target: TargetId,
        event: &'static str,
        phases: &[TargetPhase],
    ) -> Result<&mut Target, BuildError> {
        let t = self
            .targets
            .iter_mut()
            .find(|t| t.added.target == target)
            .ok_or(BuildError::UnknownTarget { target, event })?;
        let phase = t.phase();
        if phases.contains(&phase) {
            Ok(t)
        } else {
            Err(BuildError::InvalidTransition {
                target,
                event,
                phase,
            })
        }
    }

    fn add_target(
        &mut self,
        at: UnixMillis,
        added: TargetAdded,
    ) -> Result<(EventType, Payload), BuildError> {
        if self.targets.iter().any(|t| t.added.target == added.target) {
            return Err(BuildError::DuplicateTarget(added.target));
        }
        if self.trunk_name.is_empty() && !added.trunk_name.is_empty() {
            self.trunk_name = added.trunk_name.clone();
            self.outbound_caller_id = added.outbound_caller_id.clone();
        }
        let target = Target {
            added,
            start_time: at,
            ring_time: None,
            answered_time: None,
            end: None,
        };
        let leg = target.leg();
        // Grown one at a time: most calls have one or two targets, and a
        // doubling `Vec` keeps four slots from the first push (issue 18:
        // memory per live call).
        self.targets.reserve_exact(1);
        self.targets.push(target);
        Ok((EventType::TargetAdd, Payload::Target(leg)))
    }

    fn end_target(
        &mut self,
        at: UnixMillis,
        end: TargetEnd,
    ) -> Result<(EventType, Payload), BuildError> {
        let TargetEnd {
            target,
            reason,
            cost,
            quality,
        } = end;
        require_finite(cost, "cost")?;
        if let Some(q) = &quality {
            require_finite(Some(q.jitter_ms), "quality.jitter_ms")?;
            require_finite(Some(q.mos), "quality.mos")?;
        }
        let t = self.target_in(
            target,
            "target_ended",
            &[
                TargetPhase::Calling,
                TargetPhase::Ringing,
                TargetPhase::Answered,
            ],
        )?;
        let phase = t.phase();
        if !end_reason_fits(reason, phase) {
            return Err(BuildError::TargetEndReason {
                target,
                reason,
                phase,
            });
        }
        t.end = Some(LegEnd {
            at,
            status_code: 0,
            reason,
            cost,
            quality,
        });
        Ok((EventType::TargetEnd, Payload::Target(t.leg())))
    }

    fn end_session(
        &mut self,
        at: UnixMillis,
        end: SessionEnd,
    ) -> Result<(EventType, Payload), BuildError> {
        let SessionEnd {
            status_code,
            reason,
            recording,
            recording_error,
        } = end;
        if let Some(open) = self.targets.iter().find(|t| t.end.is_none()) {
            return Err(BuildError::TargetStillActive {
                target: open.added.target,
                phase: open.phase(),
            });
        }
        let answered = self.answered_time.is_some();
        let code_fits = if answered {
            (200..=299).contains(&status_code)
        } else {
            (300..=699).contains(&status_code)
                && (reason != EndReason::Cancelled || status_code == 487)
        };
        if !code_fits {
            return Err(BuildError::FinalResponse {
                status_code,
                answered,
            });
        }
        let reason_fits = if answered {
            reason != EndReason::Cancelled
        } else {
            matches!(reason, EndReason::Cancelled | EndReason::NotApplicable)
        };
        if !reason_fits {
            return Err(BuildError::SessionEndReason { reason, answered });
        }
        let (status, cdr_code) = if answered {
            (CallStatus::Answered, 0)
        } else {
            (CallStatus::of_unanswered(status_code), status_code)
        };
        let record = self.finish(
            at,
            status,
            cdr_code,
            reason,
            (recording, recording_error),
            false,
        );
        Ok((EventType::CallCdr, Payload::CallCdr(Box::new(record))))
    }

    /// Builds the record, keeps a copy, and returns it.
    fn finish(
        &mut self,
        at: UnixMillis,
        call_status: CallStatus,
        status_code: u16,
        ended_reason: EndReason,
        (recording, recording_error): (Option<Recording>, Option<RecordingError>),
        recovered: bool,
    ) -> CdrRecord {
        let s = &self.start;
        let record = CdrRecord {
            session_id: self.header.session_id,
            cdr_id: self.header.cdr_id,
            tenant_id: self.header.tenant_id,
            tenant_name: s.tenant_name.clone(),
            call_id: s.call_id.clone(),
            direction: s.direction,
            caller: s.caller.clone(),
            callee: s.callee.clone(),
            did: s.did.clone(),
            trunk_name: self.trunk_name.clone(),
            outbound_caller_id: self.outbound_caller_id.clone(),
            start_time: self.started_at,
            ring_time: self.ring_time,
            answered_time: self.answered_time,
            ended_time: at,
            call_status,
            status_code,
            ended_reason,
            user_data: s.user_data.clone(),
            recording,
            recording_error,
            recovered,
            targets: self.targets.iter().map(|t| t.record(at)).collect(),
            caller_user: s.caller_user,
            callee_user: s.callee_user,
        };
        self.record = Some(Box::new(record.clone()));
        record
    }
}

#[cfg(test)]
mod tests {
    /// An open session's builder is held for the whole call by the CDR
    /// commit task (issue 18: 100,000 answered calls in < 1 GiB); what
    /// most calls leave empty (the finished record, a changed identity)
    /// stays out of line.
    #[test]
    fn an_open_session_stays_within_its_memory_budget() {
        let size = std::mem::size_of::<super::Builder>();
        assert!(size <= 700, "{size}");
    }
}
