//! The registration runtime: one task per enabled `register` trunk,
//! driving `pbx::trunk_registration::TrunkRegistration` with a UDP socket
//! of its own and the clock, and publishing each trunk's live state for
//! `GET /api/trunks/{id}`.
//!
//! # Decisions and gaps
//!
//! - **A socket per trunk** (an ephemeral port on the SIP bind address):
//!   REGISTER responses come back to the task without passing through the
//!   shard. The Contact names the PBX's SIP port, where the carrier's
//!   INVITEs go. A carrier that sends calls to the registration's source
//!   address instead (NAT-style) is not served yet.
//! - **UDP only, no retransmission**: an attempt unanswered for 32 s fails
//!   and backs off. TCP trunks report `failed` with that reason.
//! - **DNS**: A/AAAA through `tokio::net::lookup_host` before each
//!   REGISTER, first address; SRV is not looked up yet.
//! - **Trunks are read at start-up**: provisioning changes reach the
//!   registration after a restart (the engine wiring will replace this).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cdr::Id;
use pbx::trunk::{Trunk, TrunkKind, TrunkTransport};
use pbx::trunk_registration::{RegistrationOutput, RegistrationState, TrunkRegistration};
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// A trunk's registration as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LiveState {
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

/// Every running registration's live state, by trunk id.
pub type LiveStates = Arc<Mutex<HashMap<Id, LiveState>>>;

fn publish(states: &LiveStates, trunk: Id, state: LiveState) {
    if let Ok(mut map) = states.lock() {
        map.insert(trunk, state);
    }
}

fn live(state: &RegistrationState, failures: u32, now: Instant) -> LiveState {
    match state {
        RegistrationState::Registering => LiveState {
            registration: "registering",
            last_error: None,
            failures,
            seconds_left: None,
        },
        RegistrationState::Registered { until } => LiveState {
            registration: "registered",
            last_error: None,
            failures,
            seconds_left: Some(until.saturating_duration_since(now).as_secs()),
        },
        RegistrationState::Failed { error, retry_at } => LiveState {
            registration: "failed",
            last_error: Some(error.to_string()),
            failures,
            seconds_left: Some(retry_at.saturating_duration_since(now).as_secs()),
        },
    }
}

/// Starts one task per enabled `register` trunk. `bind` is the SIP bind
/// address, `contact` the `host:port` the PBX advertises.
pub fn spawn<'a>(
    trunks: impl Iterator<Item = &'a Trunk>,
    bind: IpAddr,
    contact: &str,
    stop: watch::Receiver<bool>,
) -> (LiveStates, Vec<tokio::task::JoinHandle<()>>) {
    let states = LiveStates::default();
    let mut tasks = Vec::new();
    for trunk in trunks.filter(|t| t.enabled && t.kind == TrunkKind::Register) {
        let (trunk, states_, stop) = (trunk.clone(), Arc::clone(&states), stop.clone());
        let contact = contact.to_owned();
        tasks.push(tokio::spawn(async move {
            run(trunk, bind, contact, states_, stop).await;
        }));
    }
    (states, tasks)
}

/// Where requests go: the outbound proxy if set, else the host.
async fn resolve(trunk: &Trunk) -> Option<SocketAddr> {
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
    mut stop: watch::Receiver<bool>,
) {
    let failed = |why: &str| LiveState {
        registration: "failed",
        last_error: Some(why.to_owned()),
        failures: 0,
        seconds_left: None,
    };
    if trunk.transport == TrunkTransport::Tcp {
        publish(
            &states,
            trunk.id.0,
            failed("registration over TCP is not supported yet"),
        );
        return;
    }
    let socket = match UdpSocket::bind(SocketAddr::new(bind, 0)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(trunk = %trunk.name, error = %e, "cannot open the trunk's registration socket");
            publish(&states, trunk.id.0, failed("cannot open a socket"));
            return;
        }
    };
    let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    let host = contact
        .rsplit_once(':')
        .map_or(contact.as_str(), |(h, _)| h);
    let sent_by = format!("{host}:{port}");
    let seed = crate::random::u64().unwrap_or_else(|_| u64::from(port) ^ trunk.id.0.as_u64());
    let mut client = TrunkRegistration::new(&trunk, &sent_by, &contact, seed, Instant::now());
    let mut buf = vec![0u8; 65_535];
    loop {
        while let Some(output) = client.poll_output() {
            let now = Instant::now();
            match output {
                RegistrationOutput::Send(message) => {
                    let sent = match resolve(&trunk).await {
                        Some(to) => socket.send_to(message.as_bytes(), to).await.is_ok(),
                        None => false,
                    };
                    if !sent {
                        tracing::debug!(trunk = %trunk.name, host = %trunk.host, "REGISTER not sent (unresolved or unreachable)");
                        client.handle_transport_error(now);
                    }
                }
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
                    publish(&states, trunk.id.0, live(&state, client.failures(), now));
                }
            }
        }
        let deadline = client
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(60));
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((n, _from)) = received else { continue };
                if let Ok(message) = sip::message::Message::parse(buf[..n].to_vec())
                    && message.is_response()
                {
                    client.handle_response(Instant::now(), &message);
                }
            }
            _ = tokio::time::sleep_until(deadline) => client.handle_timeout(Instant::now()),
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
