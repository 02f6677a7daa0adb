//! The queue dispatcher's memory ([`QueueBook`]): each queue's waiting
//! list (callers on hold and callback requests, in order), the agents'
//! state on this node, and who to offer to whom now ([`QueueBook::offers`]).
//! The engine keeps it and writes it only from the sessions'
//! [`QueueEffect`]s and from a session ending; `call/queue.rs` has the
//! rules, `call/queue_callback.rs` the callbacks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use cdr::{SessionId, TenantId};

use super::queue::QueueEffect;
use crate::apps::Queue;
use crate::router::Contact;

/// How long a callback whose agent or caller did not answer waits before
/// it is offered again.
pub const CALLBACK_RETRY_DELAY: Duration = Duration::from_secs(30);

/// An agent as the dispatcher sees it (this node's memory).
#[derive(Debug, Default, Clone)]
pub(crate) struct AgentState {
    ringing_for: Option<SessionId>,
    last_end: Option<Instant>,
    wrap_until: Option<Instant>,
    calls: u32,
}

pub(crate) type Key = (TenantId, String);

/// Agents to ring: extension and devices.
pub(crate) type Agents = Vec<(String, Vec<Contact>)>;

/// A caller who pressed 1 to be called back: it keeps its place in the
/// waiting list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Callback {
    /// The call that asked (its CDR ended when the PBX hung up).
    pub origin: SessionId,
    /// Whom to call back: an extension of the tenant, or (`external`) a
    /// number the outbound rules take.
    pub number: String,
    pub display_name: String,
    pub external: bool,
    /// Callback calls still allowed.
    pub attempts_left: u32,
    /// The callback call in progress.
    calling: Option<SessionId>,
    /// The last attempt failed: the next waits [`CALLBACK_RETRY_DELAY`]
    /// from the next dispatch on.
    failed: bool,
    not_before: Option<Instant>,
}

impl Callback {
    pub(crate) fn new(
        origin: SessionId,
        number: String,
        display_name: String,
        external: bool,
        attempts: u32,
    ) -> Callback {
        Callback {
            origin,
            number,
            display_name,
            external,
            attempts_left: attempts.max(1),
            calling: None,
            failed: false,
            not_before: None,
        }
    }
}

/// One place in a queue's waiting list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Waiter {
    /// A caller on hold.
    Caller(SessionId),
    /// A callback request (`queue_callback.rs`).
    Callback(Box<Callback>),
}

/// What the dispatcher offers now.
#[derive(Debug)]
pub(crate) enum Offer {
    /// Ring these agents for a caller on hold.
    Ring(SessionId, Agents),
    /// Call `agent` back for this request, then its caller.
    Callback {
        tenant: TenantId,
        queue: Box<Queue>,
        request: Box<Callback>,
        agent: (String, Vec<Contact>),
    },
}

/// A callback request given up: its attempts are used up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DroppedCallback {
    pub queue: String,
    pub number: String,
}

/// The queues' waiting callers and agents, kept by the engine (see the
/// module doc). A restart forgets it: callers then are gone too, callback
/// requests are lost (limitation), and agents start idle.
#[derive(Debug, Default)]
pub(crate) struct QueueBook {
    waiting: HashMap<Key, VecDeque<Waiter>>,
    joined: HashMap<SessionId, Key>,
    agents: HashMap<Key, AgentState>,
    /// Agents each waiting caller (or callback, by its origin) was offered
    /// to (a new offer prefers others).
    tried: HashMap<SessionId, HashSet<String>>,
    /// Calls bridged with an agent: (tenant, agent, wrap-up).
    connected: HashMap<SessionId, (TenantId, String, Duration)>,
    /// Calls that ended with an agent, whose wrap-up starts at the next
    /// dispatch (the engine's clock).
    ended: Vec<(TenantId, String, Duration)>,
    /// The agent offered last, per queue (round robin).
    last_offered: HashMap<Key, String>,
    /// Callback requests dropped, per queue, since start.
    dropped: HashMap<Key, u64>,
}

impl QueueBook {
    /// Callers waiting in `queue` now (callback requests included).
    pub(crate) fn waiting(&self, tenant: TenantId, queue: &str) -> usize {
        self.waiting
            .get(&(tenant, queue.to_owned()))
            .map_or(0, VecDeque::len)
    }

    /// Callback requests waiting in `queue` now, and dropped since start.
    pub(crate) fn callbacks(&self, tenant: TenantId, queue: &str) -> (usize, u64) {
        let key = (tenant, queue.to_owned());
        let waiting = self.waiting.get(&key).map_or(0, |l| {
            l.iter()
                .filter(|w| matches!(w, Waiter::Callback(_)))
                .count()
        });
        (waiting, self.dropped.get(&key).copied().unwrap_or(0))
    }

    /// `session`'s place (1 = next) in its queue's waiting list.
    pub(crate) fn position(&self, session: SessionId) -> Option<u32> {
        let key = self.joined.get(&session)?;
        let at = self
            .waiting
            .get(key)?
            .iter()
            .position(|w| *w == Waiter::Caller(session))?;
        u32::try_from(at + 1).ok()
    }

    pub(crate) fn apply(&mut self, session: SessionId, tenant: TenantId, effect: QueueEffect) {
        match effect {
            QueueEffect::Join { queue } => {
                let key = (tenant, queue);
                self.waiting
                    .entry(key.clone())
                    .or_default()
                    .push_back(Waiter::Caller(session));
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
                self.connect(session, tenant, agent, wrap_up)
            }
            QueueEffect::Callback(request) => {
                self.free_agents_of(session);
                if let Some(key) = self.joined.remove(&session)
                    && let Some(list) = self.waiting.get_mut(&key)
                    && let Some(place) = list.iter_mut().find(|w| **w == Waiter::Caller(session))
                {
                    *place = Waiter::Callback(request);
                }
            }
            QueueEffect::CallbackConnected { agent, wrap_up } => {
                for list in self.waiting.values_mut() {
                    list.retain(
                        |w| !matches!(w, Waiter::Callback(c) if c.calling == Some(session)),
                    );
                }
                self.waiting.retain(|_, l| !l.is_empty());
                self.connect(session, tenant, agent, wrap_up);
            }
        }
    }

    fn connect(&mut self, session: SessionId, tenant: TenantId, agent: String, wrap_up: Duration) {
        let state = self.agents.entry((tenant, agent.clone())).or_default();
        state.calls += 1;
        state.ringing_for = None;
        self.connected.insert(session, (tenant, agent, wrap_up));
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
            list.retain(|w| *w != Waiter::Caller(session));
            if list.is_empty() {
                self.waiting.remove(&key);
            }
        }
    }

    /// Session `session` ended (any way): it leaves its queue, an agent
    /// it was bridged with starts its wrap-up, and a callback call that
    /// did not connect counts an attempt (the request is dropped when
    /// none is left: returned, for the log).
    pub(crate) fn session_over(&mut self, session: SessionId) -> Option<DroppedCallback> {
        if self.joined.contains_key(&session) {
            self.leave(session);
        }
        if let Some(c) = self.connected.remove(&session) {
            self.ended.push(c);
            return None;
        }
        let mut dropped = None;
        for (key, list) in &mut self.waiting {
            let Some(i) = list
                .iter()
                .position(|w| matches!(w, Waiter::Callback(c) if c.calling == Some(session)))
            else {
                continue;
            };
            let Waiter::Callback(c) = &mut list[i] else {
                continue;
            };
            c.calling = None;
            c.attempts_left = c.attempts_left.saturating_sub(1);
            if c.attempts_left == 0 {
                let origin = c.origin;
                dropped = Some((
                    key.clone(),
                    DroppedCallback {
                        queue: key.1.clone(),
                        number: c.number.clone(),
                    },
                    origin,
                ));
                list.remove(i);
            } else {
                c.failed = true;
            }
            break;
        }
        self.free_agents_of(session);
        self.waiting.retain(|_, l| !l.is_empty());
        let (key, dropped, origin) = dropped?;
        self.tried.remove(&origin);
        *self.dropped.entry(key).or_default() += 1;
        Some(dropped)
    }

    /// The callback call `session` for `origin`'s request started,
    /// ringing `agent`.
    pub(crate) fn callback_started(
        &mut self,
        key: &Key,
        origin: SessionId,
        session: SessionId,
        agent: &str,
    ) {
        if let Some(list) = self.waiting.get_mut(key)
            && let Some(Waiter::Callback(c)) = list
                .iter_mut()
                .find(|w| matches!(w, Waiter::Callback(c) if c.origin == origin))
        {
            c.calling = Some(session);
        }
        self.tried
            .entry(origin)
            .or_default()
            .insert(agent.to_owned());
        self.agents
            .entry((key.0, agent.to_owned()))
            .or_default()
            .ringing_for = Some(session);
    }

    /// A callback call could not even start (its agent vanished): it
    /// counts as a failed attempt.
    pub(crate) fn callback_not_started(
        &mut self,
        key: &Key,
        origin: SessionId,
    ) -> Option<DroppedCallback> {
        let list = self.waiting.get_mut(key)?;
        let i = list
            .iter()
            .position(|w| matches!(w, Waiter::Callback(c) if c.origin == origin))?;
        let Waiter::Callback(c) = &mut list[i] else {
            return None;
        };
        c.attempts_left = c.attempts_left.saturating_sub(1);
        if c.attempts_left > 0 {
            c.failed = true;
            return None;
        }
        let number = c.number.clone();
        list.remove(i);
        if list.is_empty() {
            self.waiting.remove(key);
        }
        *self.dropped.entry(key.clone()).or_default() += 1;
        Some(DroppedCallback {
            queue: key.1.clone(),
            number,
        })
    }

    /// When a dispatch is due though nothing happens: a wrap-up ending or
    /// a callback's retry delay running out while callers wait.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        if self.waiting.is_empty() {
            return None;
        }
        let retries = self.waiting.values().flatten().filter_map(|w| match w {
            Waiter::Callback(c) if c.calling.is_none() => c.not_before,
            _ => None,
        });
        self.agents
            .values()
            .filter_map(|a| a.wrap_until)
            .chain(retries)
            .min()
    }

    /// Who to offer to whom now: for each queue, its waiting list in
    /// order; a caller not ringing anybody yet gets the free agents its
    /// strategy picks (ring all: every one; else one), a callback request
    /// not being called one agent (a callback rings one agent whatever
    /// the strategy: the agent is called first, alone). `agent` says
    /// whether an extension can take a call now and where its devices
    /// are.
    pub(crate) fn offers(
        &mut self,
        now: Instant,
        queue_of: impl Fn(&Key) -> Option<Queue>,
        agent: impl Fn(TenantId, &str) -> Option<Vec<Contact>>,
    ) -> Vec<Offer> {
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
        for w in self.waiting.values_mut().flatten() {
            if let Waiter::Callback(c) = w {
                if c.failed {
                    c.failed = false;
                    c.not_before = Some(now + CALLBACK_RETRY_DELAY);
                }
                if c.not_before.is_some_and(|t| t <= now) {
                    c.not_before = None;
                }
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
            let list: Vec<Waiter> = self.waiting[&key].iter().cloned().collect();
            for waiter in list {
                if free.is_empty() {
                    break;
                }
                match waiter {
                    Waiter::Caller(session) => {
                        let ringing = self.agents.values().any(|a| a.ringing_for == Some(session));
                        if ringing {
                            continue;
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
                        out.push(Offer::Ring(session, picked));
                    }
                    Waiter::Callback(c) => {
                        if c.calling.is_some() || c.not_before.is_some() {
                            continue;
                        }
                        let strategy = match queue.strategy {
                            crate::apps::QueueStrategy::RingAll => {
                                crate::apps::QueueStrategy::RoundRobin
                            }
                            s => s,
                        };
                        let i = self.pick(&key, c.origin, &free, &queue, strategy);
                        let agent = free.remove(i);
                        self.last_offered.insert(key.clone(), agent.0.clone());
                        out.push(Offer::Callback {
                            tenant,
                            queue: Box::new(queue.clone()),
                            request: c,
                            agent,
                        });
                    }
                }
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
