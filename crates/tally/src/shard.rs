//! The shard: the one task that owns the call engine's state (DESIGN.md,
//! "Runtime"; one shard for now).
//!
//! ```text
//! UDP/TCP tasks ──ShardInput::Sip──▶ ┌───────── shard ─────────┐ ──Transmit──▶ Transmitter
//! REST ─────ShardInput::Provision──▶ │ pbx::Engine             │ ──CallEvent──▶ cdr_commit (builder → store writer)
//!         sleep_until(poll_timeout)─▶│  (transactions,         │ ──BindingChanges──▶ bindings (store)
//!                                    │   registrar, calls)     │ ──Event──▶ log
//!                                    └─────────────────────────┘
//! ```
//!
//! The engine never waits: every output is handed on without blocking
//! (transmits are non-blocking sends, CDR facts and binding changes go
//! through queues to their own tasks), so a slow database delays records,
//! never SIP. A CDR queue over its high-water mark (`cdr_commit`,
//! "back-pressure") is reported to the engine ([`Input::Overload`]), which
//! then refuses new calls with `503` until the queue is below it again.
//!
//! Shutdown: once told to stop, the shard feeds the engine
//! [`Input::Drain`]; the engine's policy (module docs of `pbx::engine`)
//! answers new calls `503` and keeps serving the calls in progress until
//! none is left or the grace period ends, then hangs up the rest itself:
//! every one of them ends with its `SessionEnded` handed to the CDR task,
//! so they get whole CDRs, not `recovered` ones at the next start. The
//! shard stops as soon as [`Engine::is_drained`]; it does not wait for the
//! answers to the BYEs (a session ends when its BYE is sent).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cdr::{CallEvent, CallEventKind, SessionId, TenantId};
use pbx::directory::DirectoryError;
use pbx::{BindingChange, Engine, EngineEvent, Input, Output};
use sip::Message;
use sip::transport::Peer;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Span;

use crate::cdr_commit::FactSender;
use crate::clock;
use crate::media::calls::{MediaCalls, MediaEvent, MediaEvents};
use crate::transport::Transmitter;

/// What the shard is fed.
pub enum ShardInput {
    /// A message from the network, parsed and (if a request) checked.
    Sip { peer: Peer, message: Message },
    /// Messages to `peer` were lost on the way out (an outbound connection
    /// that did not open, a failed write).
    TransportError { peer: Peer },
    /// A provisioning change already committed to the store, applied to
    /// the engine's directory; the answer says when it is in effect.
    Provision {
        change: Provision,
        done: oneshot::Sender<Result<(), DirectoryError>>,
    },
    /// Call control from the REST API (`/api/sessions`): the engine
    /// decides and answers at once ([`Engine::control`]).
    Control {
        command: pbx::Control,
        reply: oneshot::Sender<pbx::ControlReply>,
    },
}

pub enum Provision {
    /// A tenant, its call pickup feature codes, and whether every call of
    /// it is recorded.
    Tenant(pbx::Tenant, pbx::FeatureCodes, bool),
    User(pbx::User),
    RemoveTenant(TenantId),
    RemoveUser {
        tenant: TenantId,
        extension: String,
    },
    /// The whole directory, reloaded from the store (another node changed
    /// it): users and tenants missing from it lose their bindings.
    Replace(Box<pbx::Directory>),
    /// Trunks, routing rules and outbound permissions, reloaded after a
    /// provisioning change (`trunks::reload`).
    Trunks(Box<pbx::trunk::Trunks>),
    /// A trunk's live task saw it go down or come up again.
    TrunkDown {
        trunk: pbx::trunk::TrunkId,
        down: bool,
    },
}

/// A CDR fact for the commit task, with the session's log span.
pub struct SessionFact {
    pub session: SessionId,
    pub tenant: TenantId,
    pub event: CallEvent,
    pub span: Span,
}

pub struct Shard {
    engine: Engine,
    transmitter: Transmitter,
    facts: FactSender,
    /// What the engine was last told of the CDR queue's congestion.
    overloaded: bool,
    bindings: mpsc::UnboundedSender<Vec<BindingChange>>,
    /// One span per call in progress (`session_id`, `tenant_id`): from
    /// `SessionStarted` to `SessionEnded`.
    spans: HashMap<SessionId, Span>,
    /// The relays of anchored calls (`media/calls.rs`), when media is on.
    media: Option<(MediaCalls, MediaEvents)>,
    /// Where what the shard starts runs (relays, outbound connections):
    /// the main runtime, when the shard has a thread of its own
    /// (`sip_thread.rs`).
    spawner: Option<tokio::runtime::Handle>,
    /// Agents' feature-code logins to persist (`apps::persist_agent_logins`).
    agent_logins: Option<mpsc::UnboundedSender<pbx::AgentLogin>>,
}

/// How long the shard waits at shutdown for stopped relays to report, so
/// their calls' last CDR facts are committed.
const MEDIA_STOP_WAIT: Duration = Duration::from_secs(5);

/// Rounds of "a send failed, tell the engine" per input; the engine
/// converges (failed transactions end), this only bounds a bug.
const MAX_TRANSPORT_ROUNDS: usize = 8;

impl Shard {
    pub fn new(
        engine: Engine,
        transmitter: Transmitter,
        facts: FactSender,
        bindings: mpsc::UnboundedSender<Vec<BindingChange>>,
    ) -> Self {
        Shard {
            engine,
            transmitter,
            facts,
            overloaded: false,
            bindings,
            spans: HashMap::new(),
            media: None,
            spawner: None,
            agent_logins: None,
        }
    }

    /// Spawns what the shard starts (relays, outbound TCP and TLS
    /// connections) on `runtime` instead of the one running the shard.
    pub fn with_spawner(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.spawner = Some(runtime);
        self
    }

    /// Persists agents' feature-code logins through `tx`.
    pub fn with_agent_logins(mut self, tx: mpsc::UnboundedSender<pbx::AgentLogin>) -> Self {
        self.agent_logins = Some(tx);
        self
    }

    /// Relays anchored calls' media through `media` (its ports must be the
    /// engine's `RelayPorts`).
    pub fn with_media(mut self, media: (MediaCalls, MediaEvents)) -> Self {
        self.media = Some(media);
        self
    }

    /// Runs until stopped and drained (see the module doc). Returns how
    /// many calls the engine hung up at the end of the grace period.
    pub async fn run(
        mut self,
        mut input: mpsc::Receiver<ShardInput>,
        mut stop: watch::Receiver<bool>,
        grace: Duration,
    ) -> usize {
        let mut draining = false;
        loop {
            // Calls in progress, not ended ones still absorbing
            // retransmissions (the engine holds those for up to 32 s).
            if self.engine.is_drained() {
                break;
            }
            let timer = self.engine.poll_timeout();
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s), if !draining => {
                    draining = true;
                    tracing::info!(
                        calls = self.engine.calls_in_progress(),
                        grace_secs = grace.as_secs(),
                        "refusing new calls; waiting for calls in progress"
                    );
                    let (now, unix_ms) = clock::now();
                    self.engine.handle_input(now, unix_ms, Input::Drain { grace });
                }
                received = input.recv() => match received {
                    Some(i) => self.on_input(i),
                    None => break,
                },
                _ = tokio::time::sleep_until(timer.unwrap_or(far).into()), if timer.is_some() => {
                    let (now, unix_ms) = clock::now();
                    self.engine.handle_timeout(now, unix_ms);
                }
                Some((event, report)) = media_event(&mut self.media) => self.on_media(event, report),
            }
            self.flush();
        }
        // Relays stopped by the last calls report before the shard goes,
        // so those calls' CDRs are whole.
        let deadline = tokio::time::Instant::now() + MEDIA_STOP_WAIT;
        while self.media.as_ref().is_some_and(|(m, _)| m.pending() > 0) {
            match tokio::time::timeout_at(deadline, media_event(&mut self.media)).await {
                Ok(Some((event, report))) => self.on_media(event, report),
                _ => break,
            }
            self.flush();
        }
        self.engine.hung_up_at_grace_end()
    }

    fn on_media(&mut self, event: MediaEvent, report: Option<crate::media::relay::Report>) {
        let _spawn_there = self.spawner.as_ref().map(|r| r.enter());
        let Some((media, _)) = self.media.as_mut() else {
            return;
        };
        let released = media.on_event(event, report);
        for fact in released.facts {
            self.facts.send(fact);
        }
        if let Some(session) = released.hang_up {
            let (now, unix_ms) = clock::now();
            self.engine
                .handle_input(now, unix_ms, Input::MediaTimeout { session });
        }
        if let Some((session, digit)) = released.digit {
            let (now, unix_ms) = clock::now();
            self.engine
                .handle_input(now, unix_ms, Input::Digit { session, digit });
        }
    }

    fn on_input(&mut self, input: ShardInput) {
        let (now, unix_ms) = clock::now();
        let congested = self.facts.congested();
        if congested != self.overloaded {
            self.overloaded = congested;
            tracing::warn!(
                overloaded = congested,
                "CDR queue past its high-water mark: new calls are refused while it is"
            );
            self.engine
                .handle_input(now, unix_ms, Input::Overload(congested));
        }
        let input = match input {
            ShardInput::Sip { peer, message } => Input::Received { peer, message },
            ShardInput::TransportError { peer } => Input::TransportError { peer },
            ShardInput::Provision { change, done } => {
                let (input, result) = match change {
                    Provision::Tenant(t, codes, recording) => {
                        let d = self.engine.directory_mut();
                        let id = t.id;
                        let r = d.upsert_tenant(t);
                        if r.is_ok() {
                            d.set_feature_codes(id, codes);
                            d.set_tenant_recording(id, recording);
                        }
                        (None, r)
                    }
                    Provision::User(u) => (None, self.engine.directory_mut().upsert_user(u)),
                    Provision::RemoveTenant(id) => (Some(Input::RemoveTenant(id)), Ok(())),
                    Provision::RemoveUser { tenant, extension } => {
                        (Some(Input::RemoveUser { tenant, extension }), Ok(()))
                    }
                    Provision::Replace(new) => (Some(Input::ReplaceDirectory(new)), Ok(())),
                    Provision::Trunks(new) => (Some(Input::ReplaceTrunks(new)), Ok(())),
                    Provision::TrunkDown { trunk, down } => {
                        (Some(Input::TrunkDown { trunk, down }), Ok(()))
                    }
                };
                if let Some(input) = input {
                    self.engine.handle_input(now, unix_ms, input);
                }
                let _ = done.send(result);
                return;
            }
            ShardInput::Control { command, reply } => {
                let _ = reply.send(self.engine.control(now, unix_ms, command));
                return;
            }
        };
        self.engine.handle_input(now, unix_ms, input);
    }

    /// Hands every output of the engine on.
    fn flush(&mut self) {
        let _spawn_there = self.spawner.as_ref().map(|r| r.enter());
        crate::metrics::engine(&self.engine);
        for _ in 0..MAX_TRANSPORT_ROUNDS {
            let mut failed: Vec<Peer> = Vec::new();
            while let Some(output) = self.engine.poll_output() {
                match output {
                    Output::Transmit { peer, message } => {
                        if let Err(e) = self.transmitter.send(peer, message.as_bytes().clone()) {
                            tracing::debug!(%peer, error = %e, "send failed");
                            if !failed.contains(&peer) {
                                failed.push(peer);
                            }
                        }
                    }
                    Output::CallEvent {
                        session,
                        tenant,
                        event,
                    } => self.call_event(session, tenant, event),
                    Output::BindingChanges(changes) => {
                        let _ = self.bindings.send(changes);
                    }
                    Output::AgentLogin(change) => {
                        if let Some(tx) = &self.agent_logins {
                            let _ = tx.send(change);
                        }
                    }
                    Output::Event(event) => log_engine_event(&event),
                    Output::Media {
                        session,
                        tenant,
                        command,
                    } => {
                        if let Some((media, _)) = self.media.as_mut() {
                            media.command(session, tenant, command);
                        }
                    }
                }
            }
            if failed.is_empty() {
                return;
            }
            let (now, unix_ms) = clock::now();
            for peer in failed {
                self.engine
                    .handle_input(now, unix_ms, Input::TransportError { peer });
            }
        }
    }

    fn call_event(&mut self, session: SessionId, tenant: TenantId, event: CallEvent) {
        let span = match &event.kind {
            CallEventKind::SessionStarted(start) => {
                let span =
                    tracing::info_span!("session", session_id = %session, tenant_id = %tenant);
                span.in_scope(|| {
                    tracing::info!(
                        call_id = %start.call_id,
                        caller = %start.caller.user,
                        callee = %start.callee.user,
                        "call started"
                    )
                });
                self.spans.insert(session, span.clone());
                crate::metrics::call_started();
                span
            }
            _ => self.spans.get(&session).cloned().unwrap_or_else(
                || tracing::info_span!("session", session_id = %session, tenant_id = %tenant),
            ),
        };
        span.in_scope(|| match &event.kind {
            CallEventKind::SessionEnded(end) => {
                tracing::info!(status_code = end.status_code, "call ended")
            }
            kind => tracing::debug!(event = kind.name(), "call event"),
        });
        if matches!(
            event.kind,
            CallEventKind::SessionEnded(_) | CallEventKind::SessionRecovered
        ) {
            self.spans.remove(&session);
        }
        let fact = SessionFact {
            session,
            tenant,
            event,
            span,
        };
        let fact = match self.media.as_mut() {
            Some((media, _)) => media.hold(fact),
            None => Some(fact),
        };
        if let Some(fact) = fact {
            self.facts.send(fact);
        }
    }
}

/// The next media event, or never when media is off.
async fn media_event(
    media: &mut Option<(MediaCalls, MediaEvents)>,
) -> Option<(MediaEvent, Option<crate::media::relay::Report>)> {
    match media {
        Some((_, events)) => events.next().await,
        None => std::future::pending().await,
    }
}

fn log_engine_event(event: &EngineEvent) {
    use pbx::RegistrarEvent;
    match event {
        EngineEvent::Registrar(RegistrarEvent::AuthFailed {
            source,
            reason,
            tenant,
            user,
        })
        | EngineEvent::InviteAuthFailed {
            source,
            reason,
            tenant,
            user,
        } => {
            let what = if matches!(event, EngineEvent::Registrar(_)) {
                "REGISTER"
            } else {
                "INVITE"
            };
            tracing::info!(
                source = %source.ip(),
                %reason,
                tenant_id = tenant.map(|t| t.to_string()),
                user = user.as_deref(),
                "{what} authentication failed"
            );
        }
        EngineEvent::Registrar(RegistrarEvent::SourceBlocked { source, user, .. }) => {
            tracing::warn!(source = %source.ip(), %user, "source blocked for this user after repeated authentication failures")
        }
        EngineEvent::SourceBlocked { source, .. } => {
            tracing::warn!(source = %source.ip(), "INVITE source blocked for its caller after repeated authentication failures")
        }
        EngineEvent::Registrar(RegistrarEvent::ChallengesUnanswered {
            tenant,
            user,
            device,
            method,
            challenges,
            offered,
        }) => {
            tracing::warn!(
                tenant_id = %tenant,
                %user,
                device = %device.addr,
                transport = %device.transport,
                %method,
                %offered,
                "{user} at {} was challenged {challenges} times and never answered; it may not support the offered digest algorithms ({offered})",
                device.addr
            )
        }
        EngineEvent::Registrar(RegistrarEvent::RefusedBlocked { source, .. })
        | EngineEvent::InviteRefusedBlocked { source, .. } => {
            tracing::debug!(source = %source.ip(), "request from a blocked source refused")
        }
        EngineEvent::Dropped { peer, reason } => tracing::debug!(%peer, %reason, "dropped"),
        EngineEvent::GraceOver { calls } => {
            tracing::warn!(calls, "grace period over: hanging up the calls in progress")
        }
        EngineEvent::Routing { session, notice } => tracing::warn!(
            session_id = %session,
            %notice,
            "call not routed as its rules say"
        ),
        EngineEvent::TrunkCallRefused {
            peer,
            trunk,
            reason,
        } => tracing::info!(%peer, trunk, %reason, "carrier's call refused"),
        EngineEvent::Internal { session, detail } => tracing::error!(
            session_id = session.map(|s| s.to_string()),
            %detail,
            "call engine internal error"
        ),
    }
}
