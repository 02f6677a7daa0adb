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
//!   keeps the waiting lists and the agents' state ([`QueueBook`], written
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
//!   list, [`QueueBook::position`]) in place of the music, which then
//!   starts again (`Timer::QueueAnnounce`; the audio is tones,
//!   `apps::caller_number_tones`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use cdr::{CallType, EndReason, NoAnswerCause, RerouteReason, SessionId, TenantId};

use super::Session;
use super::app::{App, AppKind};
use super::effect::{Ctx, Effect};
use super::reroute::{Stage, StageOutcome};
use super::timer::Timer;
use crate::apps::{BuiltinPrompt, IvrDestination, MAX_IVR_ENTRIES, PromptRef, Queue};
use crate::router::{Contact, Route};

/// One queue's run in a call.
#[derive(Debug)]
pub(crate) struct QueueRun {
    queue: Queue,
    /// The agents rung now.
    ringing: Vec<String>,
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
}

/// An agent as the dispatcher sees it (this node's memory).
#[derive(Debug, Default, Clone)]
pub(crate) struct AgentState {
    ringing_for: Option<SessionId>,
    last_end: Option<Instant>,
    wrap_until: Option<Instant>,
    calls: u32,
}

type Key = (TenantId, String);

/// Agents to ring: extension and devices.
pub(crate) type Agents = Vec<(String, Vec<Contact>)>;

/// The queues' waiting callers and agents, kept by the engine (see the
/// module doc). A restart forgets it: callers then are gone too, and
/// agents start idle.
#[derive(Debug, Default)]
pub(crate) struct QueueBook {
    waiting: HashMap<Key, VecDeque<SessionId>>,
    joined: HashMap<SessionId, Key>,
    agents: HashMap<Key, AgentState>,
    /// Agents each waiting caller was offered to (a new offer prefers
    /// others).
    tried: HashMap<SessionId, HashSet<String>>,
    /// Calls bridged with an agent: (tenant, agent, wrap-up).
    connected: HashMap<SessionId, (TenantId, String, Duration)>,
    /// Calls that ended with an agent, whose wrap-up starts at the next
    /// dispatch (the engine's clock).
    ended: Vec<(TenantId, String, Duration)>,
    /// The agent offered last, per queue (round robin).
    last_offered: HashMap<Key, String>,
}

impl QueueBook {
    /// Callers waiting in `queue` now.
    pub(crate) fn waiting(&self, tenant: TenantId, queue: &str) -> usize {
        self.waiting
            .get(&(tenant, queue.to_owned()))
            .map_or(0, VecDeque::len)
    }

    /// `session`'s place (1 = next) in its queue's waiting list.
    pub(crate) fn position(&self, session: SessionId) -> Option<u32> {
        let key = self.joined.get(&session)?;
        let at = self.waiting.get(key)?.iter().position(|s| *s == session)?;
        u32::try_from(at + 1).ok()
    }

    pub(crate) fn apply(&mut self, session: SessionId, tenant: TenantId, effect: QueueEffect) {
        match effect {
            QueueEffect::Join { queue } => {
                let key = (tenant, queue);
                self.waiting
                    .entry(key.clone())
                    .or_default()
                    .push_back(session);
                self.joined.insert(session, key);
            }
            QueueEffect::Ringing { agents } => {
                let tried = self.tried.entry(session).or_default();
                for a in agents {
                    tried.insert(a.clone());
                    self.agents.entry((tenant, a)).or_default().ringing_for = Some(session);
                }
            }
            QueueEffect::RingOver => self.free_agents_of(session),
            QueueEffect::Leave => self.leave(session),
            QueueEffect::Connected { agent, wrap_up } => {
                let state = self.agents.entry((tenant, agent.clone())).or_default();
                state.calls += 1;
                state.ringing_for = None;
                self.connected.insert(session, (tenant, agent, wrap_up));
            }
        }
    }

    fn free_agents_of(&mut self, session: SessionId) {
        for a in self.agents.values_mut() {
            if a.ringing_for == Some(session) {
                a.ringing_for = None;
            }
        }
    }

    fn leave(&mut self, session: SessionId) {
        self.free_agents_of(session);
        self.tried.remove(&session);
        if let Some(key) = self.joined.remove(&session)
            && let Some(list) = self.waiting.get_mut(&key)
        {
            list.retain(|s| *s != session);
            if list.is_empty() {
                self.waiting.remove(&key);
            }
        }
    }

    /// Session `session` ended (any way): it leaves its queue, and an
    /// agent it was bridged with starts its wrap-up.
    pub(crate) fn session_over(&mut self, session: SessionId) {
        if self.joined.contains_key(&session) {
            self.leave(session);
        }
        if let Some(c) = self.connected.remove(&session) {
            self.ended.push(c);
        }
    }

    /// The earliest end of a wrap-up while callers wait (a dispatch is
    /// due then; [`QueueBook::offers`] clears the wrap-ups that ended).
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        if self.waiting.is_empty() {
            return None;
        }
        self.agents.values().filter_map(|a| a.wrap_until).min()
    }

    /// Who to ring now: for each queue, its waiting callers in order, each
    /// not ringing anybody yet, with the free agents its strategy picks
    /// (ring all: every one; else one). `agent` says whether an
    /// extension can take a call now and where its devices are.
    pub(crate) fn offers(
        &mut self,
        now: Instant,
        queue_of: impl Fn(&Key) -> Option<Queue>,
        agent: impl Fn(TenantId, &str) -> Option<Vec<Contact>>,
    ) -> Vec<(SessionId, Agents)> {
        for (tenant, ext, wrap_up) in std::mem::take(&mut self.ended) {
            let a = self.agents.entry((tenant, ext)).or_default();
            a.last_end = Some(now);
            a.wrap_until = Some(now + wrap_up);
        }
        for a in self.agents.values_mut() {
            if a.wrap_until.is_some_and(|w| w <= now) {
                a.wrap_until = None;
            }
        }
        let mut out = Vec::new();
        let keys: Vec<Key> = self.waiting.keys().cloned().collect();
        for key in keys {
            let Some(queue) = queue_of(&key) else {
                continue;
            };
            let tenant = key.0;
            let mut free: Agents = queue
                .agents
                .iter()
                .filter(|a| queue.logged_in.contains(a))
                .filter_map(|a| {
                    let state = self.agents.get(&(tenant, a.to_string()));
                    let busy = state.is_some_and(|s| {
                        s.ringing_for.is_some() || s.wrap_until.is_some_and(|w| w > now)
                    });
                    if busy {
                        return None;
                    }
                    agent(tenant, a.as_str()).map(|c| (a.to_string(), c))
                })
                .collect();
            let sessions: Vec<SessionId> = self.waiting[&key].iter().copied().collect();
            for session in sessions {
                let ringing = self.agents.values().any(|a| a.ringing_for == Some(session));
                if ringing {
                    continue;
                }
                if free.is_empty() {
                    break;
                }
                let picked = match queue.strategy {
                    crate::apps::QueueStrategy::RingAll => std::mem::take(&mut free),
                    strategy => {
                        let i = self.pick(&key, session, &free, &queue, strategy);
                        vec![free.remove(i)]
                    }
                };
                if let Some((last, _)) = picked.last() {
                    self.last_offered.insert(key.clone(), last.clone());
                }
                out.push((session, picked));
            }
        }
        out
    }

    /// The index in `free` of the agent `strategy` offers `session` to:
    /// among those it was not offered to yet (all, once each was).
    fn pick(
        &mut self,
        key: &Key,
        session: SessionId,
        free: &[(String, Vec<Contact>)],
        queue: &Queue,
        strategy: crate::apps::QueueStrategy,
    ) -> usize {
        use crate::apps::QueueStrategy::*;
        let tried = self.tried.entry(session).or_default();
        if free.iter().all(|(a, _)| tried.contains(a)) {
            tried.clear();
        }
        let fresh: Vec<usize> = (0..free.len())
            .filter(|&i| !tried.contains(&free[i].0))
            .collect();
        let state = |a: &str| self.agents.get(&(key.0, a.to_owned()));
        let position = |a: &str| queue.agents.iter().position(|x| x.as_str() == a);
        match strategy {
            LongestIdle => *fresh
                .iter()
                .min_by_key(|&&i| {
                    (
                        state(&free[i].0).and_then(|s| s.last_end),
                        position(&free[i].0),
                    )
                })
                .unwrap_or(&0),
            FewestCalls => *fresh
                .iter()
                .min_by_key(|&&i| {
                    (
                        state(&free[i].0).map_or(0, |s| s.calls),
                        position(&free[i].0),
                    )
                })
                .unwrap_or(&0),
            RoundRobin | RingAll => {
                let after = self
                    .last_offered
                    .get(key)
                    .and_then(|a| position(a))
                    .map_or(0, |p| p + 1);
                let n = queue.agents.len().max(1);
                *fresh
                    .iter()
                    .min_by_key(|&&i| (position(&free[i].0).unwrap_or(0) + n - after % n) % n)
                    .unwrap_or(&0)
            }
        }
    }
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

    fn run_mut(&mut self) -> Option<&mut QueueRun> {
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

    fn queue_round_end(&mut self, cx: &mut Ctx<'_>) {
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

    /// [`Timer::App`] of a queue: the caller waited `max_wait`.
    pub(super) fn queue_waited_too_long(&mut self, cx: &mut Ctx<'_>) {
        let overflow = match self.run_mut() {
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
