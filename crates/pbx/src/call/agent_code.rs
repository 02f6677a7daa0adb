//! The call of an agent's login or logout feature code
//! (`engine/agent_codes.rs` changed the state): the PBX answers it as an
//! application (`app.rs`), plays the confirmation (rising tones: logged
//! in; falling: logged out; "invalid" when nothing changed) and hangs up.
//!
//! # The CDR
//!
//! `callee` the code dialled (`*45`, `*45700`), `direction` `ext`, one
//! target: the code, `normal_call`, answered at once and ended
//! `callee_disconnect` (the PBX hung up); the call `answered`,
//! `ended_reason` `callee_disconnect`. The caller hanging up first ends
//! both `caller_disconnect`; the state changed either way.

use cdr::EndReason;

use super::Session;
use super::app::{App, AppKind};
use super::effect::Ctx;
use super::reroute::StageOutcome;
use super::timer::Timer;
use crate::apps::{BuiltinPrompt, PromptRef};

/// What an agent code did, for its call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentCodeCall {
    /// The number dialled.
    pub code: String,
    /// Logged in (else out).
    pub on: bool,
    /// Some queue's state was set (else the code named none of the
    /// caller's queues).
    pub changed: bool,
}

impl Session {
    /// Answers the agent code's call and plays its confirmation.
    pub(super) fn answer_agent_code(&mut self, cx: &mut Ctx<'_>, call: AgentCodeCall) {
        let answer = match self.app_can_answer() {
            Ok(answer) => answer,
            Err(488) => {
                return self.fail_caller(cx, 488, "Not Acceptable Here", EndReason::NotApplicable);
            }
            Err(_) => return self.stage_over(cx, StageOutcome::Unreachable),
        };
        let target = self.app_target(cx, &call.code, None);
        self.apps.current = Some(App {
            target,
            number: call.code.clone(),
            kind: AppKind::AgentCode,
        });
        if let Some(answer) = answer {
            self.app_answer(cx, answer);
        }
        let prompt = match (call.changed, call.on) {
            (false, _) => BuiltinPrompt::Invalid,
            (true, true) => BuiltinPrompt::LoggedIn,
            (true, false) => BuiltinPrompt::LoggedOut,
        };
        self.play(cx, vec![PromptRef::Builtin(prompt)], false);
        self.timers.set(Timer::App, cx.clk.now + prompt.duration());
    }
}
