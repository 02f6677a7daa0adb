//! Queue callback (issue 14): a caller waiting in a queue that offers it
//! presses 1, hears goodbye and is hung up; its request keeps the
//! caller's place in the waiting list (`queue_book.rs`). When an agent is
//! free the engine originates the callback call: the agent first, then
//! (once the agent answered) the caller, bridged, every leg a
//! `queue_callback` target.
//!
//! ```text
//!  call 1 (the caller's):  queue target answered ── "1" ── goodbye ── BYE
//!                          queue target callee_disconnect, call callee_disconnect
//!  call 2 (the callback):  PBX ── INVITE ──▶ agent's devices     queue_callback targets
//!                              ◀── 200 ─── the agent
//!                              ── INVITE ─▶ the caller (extension, or the
//!                                           outbound rules' trunks)  queue_callback target
//!                              ◀── 200 ─── bridged: the request is done
//! ```
//!
//! # Decisions
//!
//! - **The caller's call** is answered (the queue answered it) and ends
//!   `callee_disconnect`, its queue target too: the PBX hung up, as after
//!   an IVR's goodbye. Agents ringing for it when it pressed 1 are
//!   CANCELled (`cancelled`). Its caller hanging up during the goodbye
//!   ends it `caller_disconnect`; the request stands.
//! - **The callback call** is a call the PBX originates as `POST
//!   /api/sessions` does (`originate.rs`: late offer, media end to end),
//!   with the agent as its caller: `caller` the agent's extension,
//!   `callee` the number called back, `direction` `ext` (or `out` when
//!   the number is outside, through the outbound rules as if the agent
//!   dialled it), `user_data` `""`. One agent is called per attempt
//!   (whatever the strategy), for the queue's `agent_timeout`; the caller
//!   is shown the queue's name as display name. Its CDR is the
//!   originate's: an agent who does not answer is a `noanswer` call, a
//!   caller who does not is an `answered` call whose caller's target
//!   carries the failure.
//! - **Bounded**: a callback call that does not bridge counts one of the
//!   queue's `callback_attempts`; the request is offered again
//!   [`super::queue_book::CALLBACK_RETRY_DELAY`] later, keeping its place,
//!   and is dropped (logged as a routing notice, counted in the queue's
//!   statistics) when none is left. Requests live in the node's memory: a
//!   restart loses them (limitation, as for the callers on hold).

use std::time::Duration;

use cdr::NoAnswerCause;

use super::Session;
use super::effect::{Ctx, Effect};
use super::queue::{Callback, QueueEffect};
use super::timer::Timer;
use crate::apps::{BuiltinPrompt, PromptRef};

/// The key a caller presses to be called back.
pub const CALLBACK_KEY: char = '1';

/// What a callback call keeps about its request.
#[derive(Clone, Debug)]
pub(crate) struct CallbackLeg {
    /// The number called back is outside the tenant (outbound rules).
    pub external: bool,
    pub wrap_up: Duration,
}

impl Session {
    /// A digit from a caller on hold: `1` asks for a callback when the
    /// queue offers it; other digits are ignored.
    pub(super) fn queue_digit(&mut self, cx: &mut Ctx<'_>, digit: char) {
        let external = self.trunk.inbound_name() != "";
        let (number, display_name) = (
            self.caller_party.user.clone(),
            self.caller_party.display_name.clone(),
        );
        let origin = self.id;
        let Some(run) = self.run_mut() else { return };
        let Some(attempts) = run.queue.callback_attempts else {
            return;
        };
        if digit != CALLBACK_KEY || run.leaving {
            return;
        }
        run.leaving = true;
        run.ringing.clear();
        self.timers.stop(Timer::QueueAgent);
        self.timers.stop(Timer::QueueAnnounce);
        self.stop_all(cx, NoAnswerCause::CallerCancelled);
        cx.fx.push(Effect::Queue(QueueEffect::Callback(Box::new(
            Callback::new(origin, number, display_name, external, attempts),
        ))));
        self.play(cx, vec![PromptRef::Builtin(BuiltinPrompt::Goodbye)], false);
        self.timers
            .set(Timer::App, cx.clk.now + BuiltinPrompt::Goodbye.duration());
    }

    /// The callback call bridged the agent and the caller.
    pub(super) fn callback_connected(&mut self, cx: &mut Ctx<'_>) {
        let Some(leg) = self.origin.as_ref().and_then(|o| o.queue_callback.clone()) else {
            return;
        };
        cx.fx.push(Effect::Queue(QueueEffect::CallbackConnected {
            agent: self.caller_party.user.clone(),
            wrap_up: leg.wrap_up,
        }));
    }
}
