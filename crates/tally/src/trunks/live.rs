//! The trunks' live side: one task per enabled trunk that runs its
//! registration (`register` trunks: `pbx::trunk_registration`) and its
//! OPTIONS keep-alive (`pbx::trunk_keepalive`) with a UDP socket of its
//! own and the clock, and publishes what they say for
//! `GET /api/trunks/{id}`.
//!
//! # Decisions and gaps
//!
//! - **A socket per trunk** (an ephemeral port on the SIP bind address):
//!   answers come back to the task without passing through the shard. The
//!   Contact names the PBX's SIP port, where the carrier's INVITEs go. A
//!   carrier that sends calls to the registration's source address
//!   instead (NAT-style) is not served yet.
//! - **UDP only, no retransmission**: a REGISTER unanswered for 32 s fails
//!   and backs off; a probe unanswered for 5 s is a miss (two make the
//!   trunk down). TCP trunks show `failed` / `unknown` with the reason.
//! - **DNS**: A/AAAA through `tokio::net::lookup_host` before each
//!   request, first address; SRV is not looked up yet (a carrier that
//!   publishes only SRV needs its host and port given).
//! - **Provisioning restarts a trunk's task** ([`Supervisor::reconcile`],
//!   after every change, `super::reload`): its registration starts over
//!   with the new settings.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cdr::Id;
use pbx::trunk::{Trunk, TrunkKind, TrunkTransport};
use pbx::trunk_keepalive::{KeepAlive, KeepAliveOutput, Reachability};
use pbx::trunk_registration::{RegistrationOutput, RegistrationState, TrunkRegistration};
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::watch;

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
    bind: IpAddr,
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
    /// No task yet. `bind` is the SIP bind address, `contact` the
    /// `host:port` the PBX advertises.
    pub fn new(bind: IpAddr, contact: &str) -> Self {
        Supervisor {
            states: LiveStates::default(),
            bind,
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
            let (trunk_, states, contact) = (
                trunk.clone(),
                Arc::clone(&self.states),
                self.contact.clone(),
            );
            let bind = self.bind;
            let reports = self.reports.clone();
            let task = tokio::spawn(run(trunk_, bind, contact, states, reports, stopped));
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

/// Where requests go: the outbound proxy if set, else the host.
pub(crate) async fn resolve(trunk: &Trunk) -> Option<SocketAddr> {
    let target = match &trunk.outbound_proxy {
        Some(proxy) if proxy.contains(']') || proxy.matches(':').count() == 1 => proxy.clone(),
        Some(proxy) => format!("{proxy}:5060"),
        None if trunk.host.contains(':') => format!("[{}]:{}", trunk.host, trunk.port),
        None => format!("{}:{}", trunk.host, trunk.port),
    };
    tokio::net::lookup_host(target).await.ok()?.next()
}

async fn run(
    trunk: Trunk,
    bind: IpAddr,
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
    let unsupported = |why: &str| RegistrationView {
        registration: "failed",
        last_error: Some(why.to_owned()),
        failures: 0,
        seconds_left: None,
    };
    let registers = trunk.kind == TrunkKind::Register;
    if trunk.transport == TrunkTransport::Tcp {
        update(&states, id, |s| {
            s.registration =
                registers.then(|| unsupported("registration over TCP is not supported yet"))
        });
        report(&states);
        return;
    }
    let socket = match UdpSocket::bind(SocketAddr::new(bind, 0)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(trunk = %trunk.name, error = %e, "cannot open the trunk's socket");
            update(&states, id, |s| {
                s.registration = registers.then(|| unsupported("cannot open a socket"))
            });
            report(&states);
            return;
        }
    };
    let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    let host = contact
        .rsplit_once(':')
        .map_or(contact.as_str(), |(h, _)| h);
    let sent_by = format!("{host}:{port}");
    let seed = crate::random::u64().unwrap_or_else(|_| u64::from(port) ^ id.as_u64());
    let now = Instant::now();
    let mut registration =
        registers.then(|| TrunkRegistration::new(&trunk, &sent_by, &contact, seed, now));
    let mut keepalive = KeepAlive::new(&trunk, &sent_by, seed.rotate_left(17), now);
    update(&states, id, |_| {});
    let mut buf = vec![0u8; 65_535];
    loop {
        let mut outgoing = Vec::new();
        if let Some(client) = registration.as_mut() {
            while let Some(output) = client.poll_output() {
                match output {
                    RegistrationOutput::Send(m) => outgoing.push((m, true)),
                    RegistrationOutput::Changed(state) => {
                        match &state {
                            RegistrationState::Failed { error, .. } => {
                                tracing::warn!(trunk = %trunk.name, tenant_id = %trunk.tenant_id, %error, "trunk registration failed")
                            }
                            RegistrationState::Registered { .. } => {
                                tracing::info!(trunk = %trunk.name, tenant_id = %trunk.tenant_id, "trunk registered")
                            }
                            RegistrationState::Registering => {}
                        }
                        let view = registration_view(&state, client.failures(), Instant::now());
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
            let to = resolve(&trunk).await;
            for (message, is_register) in outgoing {
                let sent = match to {
                    Some(to) => socket.send_to(message.as_bytes(), to).await.is_ok(),
                    None => false,
                };
                if !sent && is_register {
                    tracing::debug!(trunk = %trunk.name, host = %trunk.host, "REGISTER not sent (unresolved or unreachable)");
                    if let Some(client) = registration.as_mut() {
                        client.handle_transport_error(Instant::now());
                    }
                }
            }
            continue;
        }
        let deadline = [
            registration.as_ref().and_then(|r| r.poll_timeout()),
            keepalive.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(tokio::time::Instant::from_std)
        .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(60));
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((n, _from)) = received else { continue };
                if let Ok(message) = sip::message::Message::parse(buf[..n].to_vec())
                    && message.is_response()
                {
                    let now = Instant::now();
                    let for_registration = registration
                        .as_mut()
                        .is_some_and(|r| r.handle_response(now, &message));
                    if !for_registration {
                        keepalive.handle_response(now, &message);
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                let now = Instant::now();
                if let Some(r) = registration.as_mut() {
                    r.handle_timeout(now);
                }
                keepalive.handle_timeout(now);
            }
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
