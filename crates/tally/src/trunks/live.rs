//! The trunks' live side: one task per enabled trunk that runs its
//! registration (`register` trunks: `pbx::trunk_registration`) and its
//! OPTIONS keep-alive (`pbx::trunk_keepalive`) with the clock, and
//! publishes what they say for `GET /api/trunks/{id}`.
//!
//! # Decisions
//!
//! - **The PBX's own SIP sockets and connections** ([`Net`]): requests
//!   leave from the SIP port (UDP) or on a connection the task opens to
//!   the carrier and hands to the TCP transport (TCP), and the answers
//!   come back to the task by their Call-ID (`transport::Taps`), not
//!   through the shard. So the address the PBX registered from is its
//!   SIP address: a carrier that sends its calls there (UDP), or down the
//!   registration's connection (TCP, RFC 5626-style reuse), reaches the
//!   engine like any INVITE, and the PBX's INVITEs to a TCP carrier go
//!   down that same connection. Via and Contact name the advertised SIP
//!   address.
//! - **Retransmission** over UDP is the sans-IO clients' (Timer E), and a
//!   REGISTER unanswered for 32 s fails and backs off; a probe unanswered
//!   for 5 s is a miss (two make the trunk down).
//! - **TCP**: the connection is opened before the first request (a
//!   refused or timed-out connect is a transport error at once); when it
//!   closes, the next request opens another, and a registered trunk
//!   registers again at once (checked every [`TCP_CHECK`]) so the
//!   carrier has a live path for its calls. The OPTIONS probes every 30 s
//!   keep the connection from idling out.
//! - **DNS** ([`super::dns`]): SRV then A/AAAA, resolved when a round of
//!   registration starts (or probing, for `ip` trunks), every
//!   [`RESOLVE_EVERY`] at most otherwise. A registration that fails with
//!   no answer, a transport error, 408 or 5xx moves to the next target at
//!   once; when every target failed the client backs off and the next
//!   round starts again from the first.
//! - **Provisioning restarts a trunk's task** ([`Supervisor::reconcile`],
//!   after every change, `super::reload`): its registration starts over
//!   with the new settings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cdr::Id;
use pbx::trunk::{Trunk, TrunkKind, TrunkTransport};
use pbx::trunk_keepalive::{KeepAlive, KeepAliveOutput, Reachability};
use pbx::trunk_registration::{
    RegistrationError, RegistrationOutput, RegistrationState, TrunkRegistration,
};
use serde::Serialize;
use sip::Message;
use sip::transport::{Peer, Transport};
use tokio::sync::{mpsc, watch};

use super::dns::Resolver;
use crate::transport::{Inbound, Transmitter, tcp::Tcp};

/// How often a TCP trunk's task checks that its connection is open.
pub const TCP_CHECK: Duration = Duration::from_secs(2);
/// At most one registration per this long because a TCP connection was
/// lost (a carrier that closes every connection must not get a REGISTER
/// every [`TCP_CHECK`]); the regular refresh still runs.
pub const RECONNECT_EVERY: Duration = Duration::from_secs(30);
/// How long resolved targets are used before they are looked up again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(300);

/// What the tasks send and receive with: the PBX's transports.
#[derive(Clone, Debug)]
pub struct Net {
    pub transmitter: Transmitter,
    pub tcp: Arc<Tcp>,
    /// Where answers are routed to the tasks (`Inbound::taps`).
    pub inbound: Arc<Inbound>,
    pub resolver: Resolver,
}

/// A trunk's registration as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegistrationView {
    /// `registering`, `registered` or `failed`.
    pub registration: &'static str,
    /// Why the last attempt failed, until one succeeds.
    pub last_error: Option<String>,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// Seconds until the registration expires (registered), or until the
    /// next attempt (failed), when the state was last published.
    pub seconds_left: Option<u64>,
}

/// What the OPTIONS probes say.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OptionsView {
    /// `unknown`, `up` or `down`.
    pub state: &'static str,
    /// Round trip of the last answered probe, milliseconds.
    pub rtt_ms: Option<u64>,
}

/// A trunk's live state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveState {
    /// `None` for `ip` trunks.
    pub registration: Option<RegistrationView>,
    pub options: OptionsView,
}

impl LiveState {
    /// Down for routing: its registration failed, or its OPTIONS
    /// keep-alives go unanswered. Not yet known (registering, no probe
    /// answered yet) is not down: the first call may find out.
    pub fn is_down(&self) -> bool {
        self.registration
            .as_ref()
            .is_some_and(|r| r.registration == "failed")
            || self.options.state == "down"
    }
}

/// Every running trunk's live state, by trunk id.
pub type LiveStates = Arc<Mutex<HashMap<Id, LiveState>>>;

/// Where a trunk's task reports that it went down or came up again (the
/// engine skips a trunk down: `pbx::Input::TrunkDown`).
pub type DownReports = tokio::sync::mpsc::UnboundedSender<(Id, bool)>;

fn update(states: &LiveStates, trunk: Id, change: impl FnOnce(&mut LiveState)) {
    if let Ok(mut map) = states.lock() {
        let entry = map.entry(trunk).or_insert(LiveState {
            registration: None,
            options: OptionsView {
                state: "unknown",
                rtt_ms: None,
            },
        });
        change(entry);
    }
}

fn registration_view(state: &RegistrationState, failures: u32, now: Instant) -> RegistrationView {
    match state {
        RegistrationState::Registering => RegistrationView {
            registration: "registering",
            last_error: None,
            failures,
            seconds_left: None,
        },
        RegistrationState::Registered { until } => RegistrationView {
            registration: "registered",
            last_error: None,
            failures,
            seconds_left: Some(until.saturating_duration_since(now).as_secs()),
        },
        RegistrationState::Failed { error, retry_at } => RegistrationView {
            registration: "failed",
            last_error: Some(error.to_string()),
            failures,
            seconds_left: Some(retry_at.saturating_duration_since(now).as_secs()),
        },
    }
}

fn options_view(state: Reachability) -> OptionsView {
    match state {
        Reachability::Unknown => OptionsView {
            state: "unknown",
            rtt_ms: None,
        },
        Reachability::Up { rtt } => OptionsView {
            state: "up",
            rtt_ms: Some(u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX)),
        },
        Reachability::Down => OptionsView {
            state: "down",
            rtt_ms: None,
        },
    }
}

/// The running tasks, one per enabled trunk, kept in step with the
/// provisioned trunks ([`Supervisor::reconcile`]): a trunk created,
/// changed or enabled starts (again), one deleted or disabled stops and
/// leaves the live states.
pub struct Supervisor {
    states: LiveStates,
    net: Net,
    contact: String,
    tasks: HashMap<Id, Running>,
    reports: Option<DownReports>,
}

struct Running {
    trunk: Trunk,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Supervisor {
    /// No task yet. `contact` is the `host:port` the PBX advertises.
    pub fn new(net: Net, contact: &str) -> Self {
        Supervisor {
            states: LiveStates::default(),
            net,
            contact: contact.to_owned(),
            tasks: HashMap::new(),
            reports: None,
        }
    }

    /// Tasks started from now on report their trunk going down or up to
    /// `reports`.
    pub fn report_to(&mut self, reports: DownReports) {
        self.reports = Some(reports);
    }

    /// What the tasks publish, for the API.
    pub fn states(&self) -> LiveStates {
        Arc::clone(&self.states)
    }

    /// Stops the tasks of trunks that are gone, disabled or changed, and
    /// starts those of enabled trunks without one.
    pub fn reconcile<'a>(&mut self, trunks: impl Iterator<Item = &'a Trunk>) {
        let wanted: HashMap<Id, &Trunk> =
            trunks.filter(|t| t.enabled).map(|t| (t.id.0, t)).collect();
        let stale: Vec<Id> = self
            .tasks
            .iter()
            .filter(|(id, r)| wanted.get(id).is_none_or(|t| **t != r.trunk))
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(r) = self.tasks.remove(&id) {
                let _ = r.stop.send(true);
                r.task.abort();
            }
            if let Ok(mut map) = self.states.lock() {
                map.remove(&id);
            }
            // Stopped (deleted, disabled, changed): not down any more; a
            // changed trunk's new task reports afresh.
            if let Some(reports) = &self.reports {
                let _ = reports.send((id, false));
            }
        }
        for (id, trunk) in wanted {
            if self.tasks.contains_key(&id) {
                continue;
            }
            let (stop, stopped) = watch::channel(false);
            let task = tokio::spawn(run(
                trunk.clone(),
                self.net.clone(),
                self.contact.clone(),
                Arc::clone(&self.states),
                self.reports.clone(),
                stopped,
            ));
            self.tasks.insert(
                id,
                Running {
                    trunk: trunk.clone(),
                    stop,
                    task,
                },
            );
        }
    }

    /// Stops every task and waits for them.
    pub async fn shutdown(&mut self) {
        for (_, r) in self.tasks.drain() {
            let _ = r.stop.send(true);
            let _ = r.task.await;
        }
    }
}

/// Removes a task's taps when it ends, however it ends (aborted too).
struct TapGuard {
    inbound: Arc<Inbound>,
    call_ids: Vec<String>,
}

impl Drop for TapGuard {
    fn drop(&mut self) {
        for id in &self.call_ids {
            self.inbound.taps.remove(id);
        }
    }
}

/// Whether a failed registration should try the carrier's next server
/// at once (RFC 3263 §4.3: no answer, a transport error, 503; 408 and
/// other 5xx likewise, as outbound calls fail over).
fn fails_over(error: &RegistrationError) -> bool {
    match error {
        RegistrationError::NoResponse | RegistrationError::Transport => true,
        RegistrationError::Rejected(code) => *code == 408 || (500..600).contains(code),
        _ => false,
    }
}

/// Where the task sends: the resolved targets and the one in use.
struct Targets {
    list: Vec<SocketAddr>,
    index: usize,
    resolved_at: Option<Instant>,
    error: Option<String>,
}

impl Targets {
    fn current(&self) -> Option<SocketAddr> {
        self.list.get(self.index).copied()
    }

    async fn refresh(&mut self, resolver: &Resolver, trunk: &Trunk) {
        let fresh = self
            .resolved_at
            .is_some_and(|at| at.elapsed() < RESOLVE_EVERY && !self.list.is_empty());
        if fresh {
            return;
        }
        let looked_up =
            tokio::time::timeout(super::RESOLVE_TIMEOUT, resolver.trunk_targets(trunk)).await;
        self.resolved_at = Some(Instant::now());
        match looked_up {
            Ok(Ok(list)) => {
                if list != self.list {
                    tracing::debug!(trunk = %trunk.name, targets = ?list, "trunk targets");
                    self.index = 0;
                }
                self.list = list;
                self.error = None;
            }
            Ok(Err(e)) => {
                tracing::warn!(trunk = %trunk.name, host = %trunk.host, error = %e, "trunk host does not resolve");
                self.error = Some(e.to_string());
                self.list.clear();
            }
            Err(_) => {
                tracing::warn!(trunk = %trunk.name, host = %trunk.host, "trunk host: DNS timed out");
                self.error = Some("DNS timed out".to_owned());
                self.list.clear();
            }
        }
    }
}

async fn run(
    trunk: Trunk,
    net: Net,
    contact: String,
    states: LiveStates,
    reports: Option<DownReports>,
    mut stop: watch::Receiver<bool>,
) {
    let id = trunk.id.0;
    // What was last reported: a change of "down" goes to the engine.
    let mut reported = false;
    let mut report = |states: &LiveStates| {
        let down = states
            .lock()
            .ok()
            .and_then(|m| m.get(&id).map(LiveState::is_down))
            .unwrap_or(false);
        if down != reported {
            reported = down;
            if let Some(r) = &reports {
                let _ = r.send((id, down));
            }
        }
    };
    let registers = trunk.kind == TrunkKind::Register;
    let transport = match trunk.transport {
        TrunkTransport::Udp => Transport::Udp,
        TrunkTransport::Tcp => Transport::Tcp,
    };
    let seed = crate::random::u64().unwrap_or_else(|_| id.as_u64());
    let now = Instant::now();
    let mut registration =
        registers.then(|| TrunkRegistration::new(&trunk, &contact, &contact, seed, now));
    let mut keepalive = KeepAlive::new(&trunk, &contact, seed.rotate_left(17), now);
    let (tap, mut answers) = mpsc::unbounded_channel::<Message>();
    let mut call_ids = vec![keepalive.call_id().to_owned()];
    call_ids.extend(registration.as_ref().map(|r| r.call_id().to_owned()));
    for call_id in &call_ids {
        net.inbound.taps.add(call_id, tap.clone());
    }
    let _guard = TapGuard {
        inbound: Arc::clone(&net.inbound),
        call_ids,
    };
    drop(tap);
    // A register trunk shows `registering` from the start.
    let first = registration
        .as_ref()
        .map(|c| registration_view(c.state(), 0, now));
    update(&states, id, |s| s.registration = first);
    let mut targets = Targets {
        list: Vec::new(),
        index: 0,
        resolved_at: None,
        error: None,
    };
    // Targets tried (and failed) in this round of registration.
    let mut failed_in_round = 0usize;
    // The connection registered on (TCP), to notice it closing, and when
    // that last made the trunk register again.
    let mut registered_on: Option<SocketAddr> = None;
    let mut reconnected: Option<Instant> = None;
    loop {
        let mut outgoing = Vec::new();
        if let Some(client) = registration.as_mut() {
            while let Some(output) = client.poll_output() {
                match output {
                    RegistrationOutput::Send(m) => outgoing.push((m, true)),
                    RegistrationOutput::Changed(state) => {
                        match &state {
                            RegistrationState::Failed { error, .. } => {
                                tracing::warn!(trunk = %trunk.name, tenant_id = %trunk.tenant_id, %error, target = ?targets.current(), "trunk registration failed");
                                registered_on = None;
                                failed_in_round += 1;
                                if fails_over(error) && failed_in_round < targets.list.len() {
                                    targets.index = (targets.index + 1) % targets.list.len();
                                    tracing::info!(trunk = %trunk.name, target = ?targets.current(), "trying the carrier's next server");
                                    client.register_now(Instant::now());
                                    // Still registering: not shown as failed
                                    // (nor reported down) while another
                                    // server is tried.
                                    continue;
                                } else {
                                    // Backing off; the next round starts
                                    // from the best target, looked up again.
                                    failed_in_round = 0;
                                    targets.index = 0;
                                    targets.resolved_at = None;
                                }
                            }
                            RegistrationState::Registered { .. } => {
                                tracing::info!(trunk = %trunk.name, tenant_id = %trunk.tenant_id, target = ?targets.current(), "trunk registered");
                                failed_in_round = 0;
                                registered_on = targets.current();
                            }
                            RegistrationState::Registering => {}
                        }
                        let mut view = registration_view(&state, client.failures(), Instant::now());
                        if let (Some(e), Some(last)) = (&targets.error, view.last_error.as_mut()) {
                            *last = format!("{last} ({e})");
                        }
                        update(&states, id, |s| s.registration = Some(view));
                    }
                }
            }
        }
        while let Some(output) = keepalive.poll_output() {
            match output {
                KeepAliveOutput::Send(m) => outgoing.push((*m, false)),
                KeepAliveOutput::Changed(state) => {
                    if state == Reachability::Down {
                        tracing::warn!(trunk = %trunk.name, tenant_id = %trunk.tenant_id, "trunk does not answer OPTIONS: down");
                    }
                    update(&states, id, |s| s.options = options_view(state));
                }
            }
        }
        report(&states);
        if !outgoing.is_empty() {
            // A new registration round (or the first probe of an ip trunk)
            // looks the host up again; otherwise every RESOLVE_EVERY.
            targets.refresh(&net.resolver, &trunk).await;
            for (message, is_register) in outgoing {
                let sent = send(&net, transport, targets.current(), message).await;
                if let Err(e) = &sent {
                    tracing::debug!(trunk = %trunk.name, host = %trunk.host, error = %e, register = is_register, "trunk request not sent");
                }
                // A probe opened a new connection under a registration
                // bound to the old one: register on this one.
                if sent == Ok(true)
                    && !is_register
                    && let Some(client) = registration.as_mut()
                    && registered_on.is_some()
                {
                    registered_on = None;
                    if reconnected.is_none_or(|at| at.elapsed() >= RECONNECT_EVERY) {
                        tracing::info!(trunk = %trunk.name, "new connection to the carrier: registering again");
                        reconnected = Some(Instant::now());
                        client.register_now(Instant::now());
                    }
                }
                if sent.is_err()
                    && is_register
                    && let Some(client) = registration.as_mut()
                {
                    client.handle_transport_error(Instant::now());
                }
            }
            continue;
        }
        let mut deadline = [
            registration.as_ref().and_then(|r| r.poll_timeout()),
            keepalive.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(tokio::time::Instant::from_std)
        .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(60));
        if transport == Transport::Tcp && registered_on.is_some() {
            deadline = deadline.min(tokio::time::Instant::now() + TCP_CHECK);
        }
        tokio::select! {
            Some(message) = answers.recv() => {
                let now = Instant::now();
                let for_registration = registration
                    .as_mut()
                    .is_some_and(|r| r.handle_response(now, &message));
                if !for_registration {
                    keepalive.handle_response(now, &message);
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                if let Some(r) = registration.as_mut() {
                    r.handle_timeout(now);
                }
                keepalive.handle_timeout(now);
                if let (Some(peer), Some(client)) = (registered_on, registration.as_mut())
                    && transport == Transport::Tcp
                    && !net.tcp.is_open(peer)
                    && reconnected.is_none_or(|at| at.elapsed() >= RECONNECT_EVERY)
                {
                    tracing::info!(trunk = %trunk.name, %peer, "the registration's connection closed: registering again");
                    registered_on = None;
                    reconnected = Some(now);
                    client.register_now(now);
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Sends `message` to `to` over `transport`, opening the connection
/// first on TCP; `true` when a new connection was opened for it.
async fn send(
    net: &Net,
    transport: Transport,
    to: Option<SocketAddr>,
    message: Message,
) -> Result<bool, String> {
    let to = to.ok_or_else(|| "the host does not resolve".to_owned())?;
    let opened = match transport {
        Transport::Tcp => net.tcp.open(to).await.map_err(|e| e.to_string())?,
        _ => false,
    };
    net.transmitter
        .send(
            Peer::new(transport, to),
            Bytes::copy_from_slice(message.as_bytes()),
        )
        .map_err(|e| e.to_string())?;
    Ok(opened)
}
