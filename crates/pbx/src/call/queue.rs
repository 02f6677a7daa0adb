//! A call queue holding the call (`app.rs` answers it): music on hold
//! while the engine offers the caller to free agents (`engine/queues.rs`
//! decides who, across the queue's waiting sessions), each agent rung a
//! `queue_call` target; the first to answer is bridged and the queue
//! target ends `referred`.
//!
//! # Decisions
//!
//! - **The engine dispatches, the session rings.** Which caller goes to
//!   which agent is a decision over several sessions (the longest waiting
//!   caller first, an agent offered one call at a time), so the engine
//!   keeps the waiting lists and the agents' state (`QueueBook`, written
//!   only from [`QueueEffect`]s) and hands a session the agents to ring
//!   ([`Session::queue_ring`]). Sessions never look at each other.
//! - **An offer** rings the agents' devices for the queue's
//!   `agent_timeout` (`Timer::QueueAgent`); rung out or refused, the
//!   agents are free again and the engine offers the caller anew (another
//!   agent first, when one is free). Agents' forwarding rules do not
//!   apply (as in ring groups).
//! - **Max wait**: the overflow destination, or the PBX hangs up
//!   (`callee_disconnect`); **max length**: one more caller goes to the
//!   overflow destination, or hears busy (`486`; a caller an IVR answered
//!   is hung up).
//! - **Abandoned**: the caller hanging up while queued ends the queue
//!   target `caller_disconnect` with the call `answered` (SPEC §3), the
//!   agents ringing `cancelled`.
//! - **Position announcements**: every `announce_position` a waiting
//!   caller hears "you are caller number N" (N its place in the waiting
//!   list, `QueueBook::position`) in place of the music, which then
//!   starts again (`Timer::QueueAnnounce`; the audio is tones,
//!   `apps::caller_number_tones`).

use std::time::Duration;

use cdr::{CallType, EndReason, NoAnswerCause, RerouteReason};

use super::Session;
use super::app::{App, AppKind};
use super::effect::{Ctx, Effect};
use super::reroute::{Stage, StageOutcome};
use super::timer::Timer;
use crate::apps::{BuiltinPrompt, IvrDestination, MAX_IVR_ENTRIES, PromptRef, Queue};
use crate::router::Route;

pub(crate) use super::queue_book::{Agents, Callback};

/// One queue's run in a call.
#[derive(Debug)]
pub(crate) struct QueueRun {
    pub(super) queue: Queue,
    /// The agents rung now.
    pub(super) ringing: Vec<String>,
    /// The caller asked to be called back: it hears goodbye, then the PBX
    /// hangs up (`queue_callback.rs`).
    pub(super) leaving: bool,
}

/// What a session tells the engine's dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueueEffect {
    /// The caller waits in `queue`.
    Join { queue: String },
    /// These agents ring for the caller.
    Ringing { agents: Vec<String> },
    /// They stopped ringing without answering.
    RingOver,
    /// The caller left the queue (answered, overflowed, hung up).
    Leave,
    /// `agent` answered; its wrap-up starts when the call ends.
    Connected { agent: String, wrap_up: Duration },
    /// The caller asked to be called back: the request takes its place.
    Callback(Box<Callback>),
    /// A callback call bridged its agent and caller: the request is done.
    CallbackConnected { agent: String, wrap_up: Duration },
}

impl Session {
    /// The call reaches queue `queue`: answered at once (unless it is
    /// full), music on hold, and the engine offers it to agents.
    pub(super) fn enter_queue(
        &mut self,
        cx: &mut Ctx<'_>,
        queue: Queue,
        reason: Option<RerouteReason>,
    ) {
        let number = queue.number.to_string();
        self.stage = Stage {
            extension: number.clone(),
            forwarding: Default::default(),
            first_failure: self.failures.len(),
            group: None,
        };
        self.timers.stop_ringing();
        let waiting = cx.dir.queues.waiting(self.tenant.id, &number);
        if queue.max_length.is_some_and(|max| waiting >= max as usize) {
            return self.queue_full(cx, queue);
        }
        let answer = match self.app_can_answer() {
            Ok(answer) => answer,
            Err(488) => {
                return self.fail_caller(cx, 488, "Not Acceptable Here", EndReason::NotApplicable);
            }
            Err(_) => return self.stage_over(cx, StageOutcome::Unreachable),
        };
        self.apps.entries += 1;
        self.visited.retain(|n| *n != number);
        let target = self.app_target(cx, &number, reason);
        let (moh, max_wait, announce) = (queue.moh.source, queue.max_wait, queue.announce_position);
        self.apps.current = Some(App {
            target,
            number: number.clone(),
            kind: AppKind::Queue(QueueRun {
                queue,
                ringing: Vec::new(),
                leaving: false,
            }),
        });
        if let Some(answer) = answer {
            self.app_answer(cx, answer);
        }
        self.play(
            cx,
            vec![PromptRef::Builtin(BuiltinPrompt::PleaseHold), moh],
            true,
        );
        if let Some(wait) = max_wait {
            self.timers.set(Timer::App, cx.clk.now + wait);
        }
        if let Some(every) = announce {
            self.timers.set(Timer::QueueAnnounce, cx.clk.now + every);
        }
        cx.fx
            .push(Effect::Queue(QueueEffect::Join { queue: number }));
    }

    /// [`Timer::QueueAnnounce`]: the caller hears its place in the
    /// waiting list ("you are caller number N"), then the music from its
    /// start; the next announcement is due `announce_position` later.
    pub(super) fn queue_announce(&mut self, cx: &mut Ctx<'_>) {
        if !self.in_app() {
            return;
        }
        let Some(run) = self.run_mut() else { return };
        let (moh, every) = (run.queue.moh.source, run.queue.announce_position);
        let Some(every) = every else { return };
        self.timers.set(Timer::QueueAnnounce, cx.clk.now + every);
        let Some(position) = cx.dir.queues.position(self.id) else {
            return;
        };
        self.play(cx, vec![PromptRef::CallerNumber(position), moh], true);
    }

    pub(super) fn run_mut(&mut self) -> Option<&mut QueueRun> {
        match self.apps.current.as_mut().map(|a| &mut a.kind) {
            Some(AppKind::Queue(run)) => Some(run),
            _ => None,
        }
    }

    /// The engine offers the caller to `agents` (extension and devices).
    pub(crate) fn queue_ring(&mut self, cx: &mut Ctx<'_>, agents: Agents) {
        if !self.in_app() {
            return;
        }
        let Some(run) = self.run_mut() else { return };
        if !run.ringing.is_empty() {
            return;
        }
        let timeout = run.queue.agent_timeout;
        run.ringing = agents.iter().map(|(a, _)| a.clone()).collect();
        let rung = run.ringing.clone();
        cx.fx
            .push(Effect::Queue(QueueEffect::Ringing { agents: rung }));
        self.stage.first_failure = self.failures.len();
        let max_forwards = self.max_forwards();
        let first = self.targets.len();
        for (agent, contacts) in agents {
            for contact in self.reachable(contacts) {
                self.add_target(cx, &agent, contact, max_forwards, None, CallType::Queue);
            }
        }
        if !self.targets[first..].iter().any(|t| t.state.is_open()) {
            return self.queue_round_end(cx);
        }
        self.timers.set(Timer::QueueAgent, cx.clk.now + timeout);
    }

    /// Every agent rung failed (`stage_over`): true when this call is
    /// queued (the caller waits on).
    pub(super) fn queue_round_over(&mut self, cx: &mut Ctx<'_>) -> bool {
        if !self.in_app() || self.run_mut().is_none() {
            return false;
        }
        self.queue_round_end(cx);
        true
    }

    /// [`Timer::QueueAgent`]: the agents rang out.
    pub(super) fn queue_agents_timed_out(&mut self, cx: &mut Ctx<'_>) {
        if self.in_app() && self.run_mut().is_some() {
            self.queue_round_end(cx);
        }
    }

    pub(super) fn queue_round_end(&mut self, cx: &mut Ctx<'_>) {
        self.timers.stop(Timer::QueueAgent);
        self.stop_all(cx, NoAnswerCause::RingTimeout);
        if let Some(run) = self.run_mut() {
            run.ringing.clear();
        }
        cx.fx.push(Effect::Queue(QueueEffect::RingOver));
    }

    /// Target `callee` answered: if it is a queue's agent, the queue
    /// target ends `referred` and the agent is the call's destination now.
    pub(super) fn queue_connected(&mut self, cx: &mut Ctx<'_>, callee: usize) {
        let wrap_up = match self.run_mut() {
            Some(run) => run.queue.wrap_up,
            None => return,
        };
        let agent = self.targets[callee].number.clone();
        self.timers.stop(Timer::QueueAgent);
        self.app_end(cx, EndReason::Referred);
        self.stage.extension = agent.clone();
        cx.fx
            .push(Effect::Queue(QueueEffect::Connected { agent, wrap_up }));
    }

    /// [`Timer::App`] of a queue: the caller waited `max_wait`, or heard
    /// goodbye after asking to be called back.
    pub(super) fn queue_waited_too_long(&mut self, cx: &mut Ctx<'_>) {
        let overflow = match self.run_mut() {
            Some(run) if run.leaving => {
                return self.app_hang_up(cx, EndReason::CalleeDisconnect);
            }
            Some(run) => run.queue.overflow.clone(),
            None => return,
        };
        self.timers.stop(Timer::QueueAgent);
        self.stop_all(cx, NoAnswerCause::RingTimeout);
        match self.overflow_route(cx, overflow) {
            Some((number, route)) => self.app_hand_off(cx, number, route),
            None => self.app_hang_up(cx, EndReason::CalleeDisconnect),
        }
    }

    /// Where an overflow destination leads, if anywhere.
    fn overflow_route(
        &self,
        cx: &Ctx<'_>,
        overflow: Option<IvrDestination>,
    ) -> Option<(String, Route)> {
        let Some(IvrDestination::Number(n)) = overflow else {
            return None;
        };
        let route = cx.dir.route(cx.clk.now, self.tenant.id, &n);
        let app = matches!(route, Route::Ivr(_) | Route::Queue(_));
        if route == Route::NotFound || (app && self.apps.entries >= MAX_IVR_ENTRIES) {
            return None;
        }
        Some((n, route))
    }

    /// A full queue: the overflow destination, or busy.
    fn queue_full(&mut self, cx: &mut Ctx<'_>, queue: Queue) {
        let own = queue.number.to_string();
        match self
            .overflow_route(cx, queue.overflow.clone())
            .filter(|(n, _)| *n != own)
        {
            Some((number, route)) => {
                self.timers.stop_ringing();
                if !matches!(route, Route::Ivr(_) | Route::Queue(_)) {
                    self.visited.push(number.clone());
                }
                cx.emit(cdr::CallEventKind::IdentityChanged {
                    caller: None,
                    callee: Some(cdr::Party {
                        user: number,
                        display_name: String::new(),
                        domain: self.tenant.domain.clone(),
                    }),
                });
                self.ring_route(cx, route, None);
            }
            None => self.fail_caller(cx, 486, "Busy Here", EndReason::NotApplicable),
        }
    }
}
