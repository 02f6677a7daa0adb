//! What `GET /api/sessions` shows of a call in progress: its parties, its
//! legs and where each stands. A read-only snapshot, taken by the engine
//! between inputs ([`crate::engine::Control`]).

use cdr::{SessionId, TargetId, TenantId, UnixMillis};

use super::caller::CallerState;
use super::fork::TargetState;
use super::{Phase, Session};

/// Where a call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Nobody answered yet (for an originated call: the caller's devices
    /// are ringing).
    Ringing,
    /// An originated call whose caller answered: the callee is ringing.
    CallingCallee,
    Answered,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Ringing => "ringing",
            SessionState::CallingCallee => "calling_callee",
            SessionState::Answered => "answered",
        }
    }
}

/// Which side of the call a leg is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegRole {
    /// The caller's INVITE, answered by the PBX.
    Caller,
    /// A device of the caller the PBX called (a REST-originated call).
    CallerDevice,
    /// A target rung for the callee (forwarding and redirects included).
    Callee,
}

impl LegRole {
    pub fn as_str(self) -> &'static str {
        match self {
            LegRole::Caller => "caller",
            LegRole::CallerDevice => "caller_device",
            LegRole::Callee => "callee",
        }
    }
}

/// Where a leg stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegState {
    /// INVITEd, nothing but `100 Trying` back.
    Calling,
    /// Ringing (a 18x came).
    Ringing,
    Answered,
    /// Over for this call (failed, cancelled, lost the race, hung up).
    Ended,
}

impl LegState {
    pub fn as_str(self) -> &'static str {
        match self {
            LegState::Calling => "calling",
            LegState::Ringing => "ringing",
            LegState::Answered => "answered",
            LegState::Ended => "ended",
        }
    }
}

/// One leg of a call in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegView {
    pub role: LegRole,
    /// The CDR target id (`None` for an inbound caller leg).
    pub target_id: Option<TargetId>,
    /// The extension this leg is for.
    pub number: String,
    /// The contact URI the INVITE went to, or the caller's address.
    pub destination: String,
    pub state: LegState,
}

/// A call in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionView {
    pub id: SessionId,
    pub tenant: TenantId,
    pub caller: String,
    pub callee: String,
    pub state: SessionState,
    /// Placed by `POST /api/sessions`.
    pub originated: bool,
    pub user_data: String,
    pub started_at: UnixMillis,
    /// In the order the PBX started them (the caller leg first).
    pub legs: Vec<LegView>,
}

impl Session {
    /// The call as `GET /api/sessions` shows it; `None` once it is over.
    pub(crate) fn view(&self) -> Option<SessionView> {
        let state = match (self.phase, &self.origin) {
            (Phase::Over, _) => return None,
            (Phase::Answered(_), _) => SessionState::Answered,
            (Phase::Ringing, Some(o)) if o.answered_device().is_some() => {
                SessionState::CallingCallee
            }
            (Phase::Ringing, _) => SessionState::Ringing,
        };
        let answered = matches!(self.phase, Phase::Answered(_));
        let caller = self.caller.as_ref().map(|c| LegView {
            role: LegRole::Caller,
            target_id: None,
            number: self.caller_party.user.clone(),
            destination: c.leg.peer.to_string(),
            state: match c.state {
                CallerState::Waiting => LegState::Ringing,
                CallerState::Answered => LegState::Answered,
                CallerState::Refused => LegState::Ended,
            },
        });
        let targets = self.targets.iter().enumerate().map(|(i, t)| LegView {
            role: if self.is_caller_device(i) {
                LegRole::CallerDevice
            } else {
                LegRole::Callee
            },
            target_id: Some(t.id),
            number: t.number.clone(),
            destination: t.destination.clone(),
            state: match t.state {
                TargetState::Calling | TargetState::Trying => LegState::Calling,
                TargetState::Early => LegState::Ringing,
                TargetState::Answered if answered || self.is_answered_device(i) => {
                    LegState::Answered
                }
                _ => LegState::Ended,
            },
        });
        Some(SessionView {
            id: self.id,
            tenant: self.tenant.id,
            caller: self.caller_party.user.clone(),
            callee: self.callee_party.user.clone(),
            state,
            originated: self.origin.is_some(),
            user_data: self
                .origin
                .as_ref()
                .map(|o| o.user_data.clone())
                .unwrap_or_default(),
            started_at: UnixMillis(self.started_ms),
            legs: caller.into_iter().chain(targets).collect(),
        })
    }
}
