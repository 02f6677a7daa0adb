//! The core task: one UDP socket, one engine, one loop.
//!
//! ```text
//! socket ──datagram──▶ Message::parse ──▶ Engine::handle_input
//! timer  ──deadline──▶ Engine::handle_timeout
//! Engine::poll_output ─▶ Transmit: send_to │ CallEvent: cdr::Builder → persister
//!                        BindingChanges: persister │ Event: log
//! ```
//!
//! Nothing the loop does waits on the database: CDR commands and binding
//! changes go, in order, over an unbounded channel to one persister task,
//! which enqueues each command with the store writer (keeping a session's
//! commands in order) and awaits the commits beside it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cdr::{Builder, SessionId, TenantId};
use pbx::{BindingChange, Engine, EngineEvent, Input, Output};
use sip::Message;
use sip::transport::{Peer, Transport};
use store::{SessionEvents, Store, StoreWriter};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::setup::{registration_of, unix_ms};

/// Counters of one run, logged at shutdown.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: u64,
    pub unparsable: u64,
    pub sent: u64,
    pub send_errors: u64,
    pub commits: u64,
}

enum Persist {
    Cdr(SessionEvents),
    Bindings(Vec<BindingChange>),
}

/// Runs until SIGINT or SIGTERM, then drains what is still to persist.
pub async fn run(
    socket: UdpSocket,
    mut engine: Engine,
    writer: StoreWriter,
    store: Store,
    shutdown: impl std::future::Future<Output = ()>,
) -> Stats {
    let (persist_tx, persist_rx) = mpsc::unbounded_channel();
    let persister = tokio::spawn(persist(persist_rx, writer, store));
    let mut builders: HashMap<SessionId, (TenantId, Builder)> = HashMap::new();
    let mut stats = Stats::default();
    let mut buf = vec![0u8; 65_535];
    tokio::pin!(shutdown);
    let far = Duration::from_secs(3600);

    loop {
        let deadline = engine
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(deadline.into()) => {
                engine.handle_timeout(Instant::now(), unix_ms());
            }
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, addr)) => {
                    stats.received += 1;
                    match Message::parse(buf[..len].to_vec()) {
                        Ok(message) => engine.handle_input(
                            Instant::now(),
                            unix_ms(),
                            Input::Received { peer: Peer::new(Transport::Udp, addr), message },
                        ),
                        Err(error) => {
                            stats.unparsable += 1;
                            tracing::debug!(%addr, %error, "dropped an unparsable datagram");
                        }
                    }
                }
                // ICMP errors surface here on some systems; nothing to do.
                Err(error) => tracing::debug!(%error, "UDP receive error"),
            },
        }
        drain(&mut engine, &socket, &mut builders, &persist_tx, &mut stats).await;
    }

    tracing::info!(
        open_sessions = builders.len(),
        "shutting down: flushing the store"
    );
    drop(persist_tx);
    match persister.await {
        Ok(commits) => stats.commits = commits,
        Err(error) => tracing::error!(%error, "persister task failed"),
    }
    stats
}

async fn drain(
    engine: &mut Engine,
    socket: &UdpSocket,
    builders: &mut HashMap<SessionId, (TenantId, Builder)>,
    persist_tx: &mpsc::UnboundedSender<Persist>,
    stats: &mut Stats,
) {
    while let Some(output) = engine.poll_output() {
        match output {
            Output::Transmit { peer, message } => {
                // UDP sends do not wait on the peer; a full buffer is the
                // only thing that can make this yield.
                match socket.send_to(message.as_bytes(), peer.addr).await {
                    Ok(_) => stats.sent += 1,
                    Err(error) => {
                        stats.send_errors += 1;
                        tracing::debug!(%error, addr = %peer.addr, "send failed");
                        engine.handle_input(
                            Instant::now(),
                            unix_ms(),
                            Input::TransportError { peer },
                        );
                    }
                }
            }
            Output::CallEvent {
                session,
                tenant,
                event,
            } => {
                let (_, builder) = builders
                    .entry(session)
                    .or_insert_with(|| (tenant, Builder::new()));
                match builder.apply(event.clone()) {
                    Ok(wire) => {
                        let finished = builder.is_finished();
                        let _ = persist_tx.send(Persist::Cdr(SessionEvents {
                            session_id: session,
                            tenant_id: tenant,
                            events: vec![event],
                            wire,
                        }));
                        if finished {
                            builders.remove(&session);
                        }
                    }
                    Err(error) => {
                        tracing::error!(%session, %error, "CDR builder refused an event");
                    }
                }
            }
            Output::BindingChanges(changes) => {
                let _ = persist_tx.send(Persist::Bindings(changes));
            }
            Output::Event(event) => log_event(&event),
        }
    }
}

fn log_event(event: &EngineEvent) {
    match event {
        EngineEvent::Internal { .. } => tracing::error!(?event, "engine"),
        EngineEvent::Dropped { .. } => tracing::debug!(?event, "engine"),
        _ => tracing::info!(?event, "engine"),
    }
}

/// Applies persistence work in the order the core produced it. Returns how
/// many CDR commands were committed.
async fn persist(
    mut rx: mpsc::UnboundedReceiver<Persist>,
    writer: StoreWriter,
    store: Store,
) -> u64 {
    let mut pending = tokio::task::JoinSet::new();
    let mut committed = 0;
    while let Some(work) = rx.recv().await {
        match work {
            Persist::Cdr(command) => {
                let session = command.session_id;
                match writer.enqueue(command).await {
                    Ok(commit) => {
                        pending.spawn(async move {
                            commit
                                .await
                                .map_err(
                                    |error| tracing::error!(%session, %error, "CDR commit failed"),
                                )
                                .is_ok()
                        });
                    }
                    Err(error) => tracing::error!(%session, %error, "CDR enqueue failed"),
                }
            }
            Persist::Bindings(changes) => {
                let now = unix_ms();
                for change in changes {
                    let r = &change.record;
                    let result = if change.kind.is_live() {
                        store.upsert_registration(&registration_of(r, now)).await
                    } else {
                        store
                            .remove_registration(r.tenant_id, &r.extension, &r.key)
                            .await
                            .map(|_| ())
                    };
                    if let Err(error) = result {
                        tracing::warn!(extension = %r.extension, %error, "registration not persisted");
                    }
                }
            }
        }
        // Reap finished commits so the set stays small.
        while let Some(done) = pending.try_join_next() {
            if matches!(done, Ok(true)) {
                committed += 1;
            }
        }
    }
    while let Some(done) = pending.join_next().await {
        if matches!(done, Ok(true)) {
            committed += 1;
        }
    }
    committed
}

/// SIGINT or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: `serve` calls it before it announces
/// `ready`, so a signal sent right after that is never the default (fatal)
/// action.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let streams = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (mut term, mut int) = streams;
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(i) => {
                        i.recv().await;
                    }
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            tokio::select! {
                () = term => {}
                () = int => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received");
    }
}
