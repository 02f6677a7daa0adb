//! `tally serve`: start-up in dependency order, the tasks, and shutdown.
//!
//! Start-up: data directory → store (migrations) → stored secrets checked
//! against the secret key and sealed → system admin (its hash
//! is in the store) → the store's writer → recovery of calls a crash interrupted → engine with the
//! directory and the registrations from the store → sockets → tasks →
//! `--demo` → wait for SIGINT/SIGTERM.
//!
//! Shutdown: the shard refuses new calls and waits (up to the grace
//! period) for calls in progress, then hangs up those left (BYE on both
//! legs, whole CDRs); the REST server finishes its requests;
//! then the SIP listeners close, the CDR and registration tasks commit
//! everything they were handed, and the store closes. Exit code 0.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use pbx::{Engine, EngineConfig};
use sip::Limits;
use sip::transport::Transport;
use store::{Backend, RecoveryScope, Store, WriterConfig};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::admin::{Setup, SystemAdmin};
use crate::api::{self, ApiState};
use crate::cli::ServeArgs;
use crate::config::Config;
use crate::directory::{load_directory, sync_directory};
use crate::ids::NodeIds;
use crate::media::calls::{MediaCalls, MediaEvents};
use crate::provision::{Provisioner, hash_plaintext_sip_passwords};
use crate::shard::Shard;
use crate::sip_thread::{SipRuntime, SipThread, UdpReader};
use crate::transport::{Inbound, Transmitter, tcp, tls, udp};
use crate::{bindings, cdr_commit, clock, demo, random};

/// Secrets at rest (README "Secrets at rest"): before anything reads a
/// webhook or a trunk, every sealed secret must open with this node's key
/// (else the start fails, naming the row), and with a key the plaintext
/// ones left from before it are sealed; without one, a warning says what
/// is stored in plaintext.
async fn seal_secrets(store: &Store) -> anyhow::Result<()> {
    let report = store.seal_secrets().await.context(
        "checking the stored secrets against the secret key \
         (TALLY_SECRET_KEY or [security] secret_key_file)",
    )?;
    if store.seals_secrets() {
        if report.sealed_now > 0 {
            tracing::info!(
                secrets = report.sealed_now,
                "plaintext secrets in the database sealed with the secret key"
            );
        }
    } else {
        tracing::warn!(
            plaintext = report.plaintext,
            "NO SECRET KEY: webhook credentials and trunk passwords are stored in PLAINTEXT \
             in the database; set TALLY_SECRET_KEY or [security] secret_key_file \
             (32 bytes, hex or base64) to encrypt them"
        );
    }
    Ok(())
}

/// Messages that may wait for the shard.
const SHARD_QUEUE: usize = 8192;
/// How often calls this node no longer carries are closed while it runs
/// (the start-up recovery, repeated: `cdr_commit`).
const RECOVERY_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // Before any port is open: a SIGTERM that arrives as soon as the API
    // answers must find the handler, not the default action.
    let mut shutdown = ShutdownSignal::install()?;
    match crate::fd_limit::raise() {
        Some(files) => tracing::info!(files, "open-file limit (RLIMIT_NOFILE)"),
        None => tracing::warn!("cannot read the open-file limit (RLIMIT_NOFILE)"),
    }
    let config = args.config;
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    // The store, and the calls a crash left open.
    let url = config.database_url();
    let secret_key = crate::secret_key::load(&config)?;
    let store = Store::open(&url)
        .await
        .with_context(|| format!("cannot open the database {}", redact(&url)))?
        .with_secret_key(secret_key.as_ref());
    seal_secrets(&store).await?;
    let (admin, admin_setup) = SystemAdmin::ensure(
        &store,
        &config.data_dir,
        &config.admin.username,
        args.admin_password.as_deref(),
    )
    .await?;
    let writer = store.spawn_writer(WriterConfig {
        profile: config.wire_profile()?,
        ..WriterConfig::default()
    });
    let committed = writer.committed_global_sequence();
    // One SQLite file has one node; on PostgreSQL a node closes only its
    // own calls, never those of nodes still running.
    let scope = match store.backend() {
        Backend::Sqlite => RecoveryScope::AllNodes,
        _ => RecoveryScope::Node(config.node),
    };
    // Several nodes on PostgreSQL: this node's liveness row, written
    // before the recovery so that a survivor's claim on its previous life
    // is cleared (closing a session twice is refused by the store anyway).
    let liveness = match store.backend() {
        Backend::Sqlite => None,
        _ => {
            let liveness = crate::cluster::liveness::Liveness {
                store: store.clone(),
                writer: writer.clone(),
                node: config.node,
                address: advertised_address(&config),
                heartbeat: config.cluster_heartbeat(),
                lease: config.cluster_lease(),
            };
            liveness
                .start()
                .await
                .context("writing this node's liveness row")?;
            Some(liveness)
        }
    };
    let recovery = writer
        .recover_open_sessions(scope, clock::unix_millis())
        .await
        .context("recovering interrupted calls")?;
    for r in &recovery.recovered {
        tracing::info!(session_id = %r.session_id, tenant_id = %r.tenant_id, cdr_id = %r.cdr_id, "interrupted call closed with a recovered CDR");
    }
    for (session, error) in &recovery.failed {
        tracing::error!(session_id = %session, error = %error, "interrupted call could not be closed; will retry at the next start");
    }

    // Migration 0007's second half: SIP passwords still in plaintext
    // become digest HA1s before anything reads the directory.
    let hashed = hash_plaintext_sip_passwords(&store)
        .await
        .context("hashing plaintext SIP passwords")?;
    if hashed > 0 {
        tracing::info!(
            users = hashed,
            "SIP passwords replaced by their digest hashes"
        );
    }

    // The engine, with the directory and the registrations.
    let advertised = advertised_address(&config);
    let mut engine_config = EngineConfig::new(
        config.node,
        random::bytes::<32>()?,
        random::u64()?,
        &advertised,
    );
    engine_config
        .advertised
        .push((Transport::Tcp, advertised.clone()));
    let digest_offers = config.digest_offers()?;
    engine_config.registrar.digest_offer = digest_offers.default;
    engine_config.registrar.allow_digest_without_qop = config.sip.allow_digest_without_qop;
    engine_config.transaction_limits = config.transaction_limits();
    engine_config.transfer_on_failure = config.transfer.on_failure.into();
    if let Some(port) = config.sip.tls_port {
        let host = advertised
            .rsplit_once(':')
            .map_or(advertised.as_str(), |(h, _)| h);
        engine_config
            .advertised
            .push((Transport::Tls, format!("{host}:{port}")));
    }
    // One id generator for the node: sessions, targets, tenants, users.
    let ids = NodeIds::new(config.node)?;
    let mut engine = Engine::with_ids(engine_config, Box::new(ids.clone()));
    for (domain, offer) in &digest_offers.tenants {
        engine
            .registrar_mut()
            .set_tenant_digest_offer(domain, *offer);
    }
    // The version first: a change made while loading shows as a newer one.
    let directory_version = store
        .directory_version()
        .await
        .context("reading the directory version")?;
    let (directory, tenants, users) = load_directory(&store)
        .await
        .context("reading the directory")?;
    *engine.directory_mut() = directory;
    tracing::info!(tenants, users, "directory loaded");
    // Reloaded after each provisioning change (`trunks::reload`).
    let resolver = crate::trunks::dns::Resolver::new(config.trunks.dns_server);
    let trunks = crate::trunks::load(&store, &resolver)
        .await
        .context("loading the trunks and routing rules")?;
    *engine.trunks_mut() = trunks.clone();
    let restored_at = clock::unix_millis();
    bindings::restore(&store, &mut engine).await?;
    // Tenant prompts (IVR greetings), played from memory (issue 14).
    let prompts_dir = config.data_dir.join("prompts");
    let prompts = crate::media::prompts::PromptLibrary::default();
    let loaded = crate::api::prompts::load_all(&store, &prompts_dir, &prompts)
        .await
        .context("loading the prompts")?;
    tracing::info!(prompts = loaded, "prompts loaded");
    let media = media_runtime(&config, &advertised, &store, &ids, &mut engine)?
        .map(|(calls, events)| (calls.with_prompts(prompts.clone()), events));

    // Sockets: fail before anything is running if a port is taken.
    let sip_addr = config.sip_addr();
    // The shard and the UDP reader run on a thread of their own
    // (`sip_thread.rs`); the socket is registered with its runtime.
    let sip_runtime = SipRuntime::new()?;
    let udp_socket = match config.sip.udp {
        true => Some(
            sip_runtime.udp_socket(
                StdUdpSocket::bind(sip_addr)
                    .with_context(|| format!("cannot listen for SIP on UDP {sip_addr}"))?,
            )?,
        ),
        false => None,
    };
    if let Some(socket) = &udp_socket {
        udp::raise_receive_buffer(socket);
    }
    let tcp_listener = match config.sip.tcp {
        true => Some(
            TcpListener::bind(sip_addr)
                .await
                .with_context(|| format!("cannot listen for SIP on TCP {sip_addr}"))?,
        ),
        false => None,
    };
    let tls_listener = match (
        config.sip.tls_port,
        &config.sip.tls_cert,
        &config.sip.tls_key,
    ) {
        (Some(port), Some(cert), Some(key)) => {
            let certs = tls::Certificates::load(cert, key)?;
            tls::reload_on_hangup(Arc::clone(&certs))?;
            let addr = SocketAddr::new(config.sip.bind, port);
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for SIP on TLS {addr}"))?;
            Some((listener, certs, port))
        }
        _ => None,
    };
    let http_tls = config.http_tls()?;
    let https = http_tls.is_some();
    let http_addr = config.http_addr();
    let http_listener = TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("cannot listen for HTTP on {http_addr}"))?;
    let metrics_listener = match config.metrics.listen {
        Some(addr) => Some((
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?,
            config.metrics_access()?,
        )),
        None => None,
    };

    // Tasks.
    let (stop_tx, stop) = watch::channel(false);
    let (close_tx, close) = watch::channel(false);
    let (shard_tx, shard_rx) = mpsc::channel(SHARD_QUEUE);
    let (facts_tx, facts_rx) = cdr_commit::facts_queue();
    let (bindings_tx, bindings_rx) = mpsc::unbounded_channel();
    let inbound = Arc::new(Inbound::new(Limits::default(), random::u64()?));
    let tcp = tcp::Tcp::new(
        Arc::clone(&inbound),
        shard_tx.clone(),
        close.clone(),
        config.tcp_limits(),
    );
    if tls_listener.is_some() {
        // Calls to phones registered over TLS whose connection closed.
        let client = tls::client_config(config.sip.tls_phone_ca.as_deref())?;
        tcp.connect_to_phones_with(client);
    }
    let transmitter = Transmitter::new(udp_socket.clone(), Arc::clone(&tcp));

    // Events: the relay follows the outbox from here (what is older is
    // read from the store by whoever resumes); retention prunes it.
    // Several nodes: the relay also wakes when another node commits.
    let (relay_wake, fanout) = match (&liveness, config.cluster.notify) {
        (Some(_), true) => crate::cluster::fanout::start(&store, committed.clone()),
        _ => (committed.clone(), Vec::new()),
    };
    let relay = ::delivery::Relay::spawn(
        store.clone(),
        relay_wake,
        ::delivery::RelayConfig::default(),
    )
    .await
    .context("starting the outbox relay")?;
    let retention = config.retention()?.spawn(store.clone());
    crate::metrics::install(
        Arc::clone(&inbound),
        Arc::clone(&tcp),
        committed.clone(),
        relay.position(),
    );
    let metrics_server = metrics_listener.map(|(listener, access)| {
        tokio::spawn(crate::metrics::serve(listener, access, stop.clone()))
    });
    let hub = ::delivery::Hub::new(
        store.clone(),
        relay.clone(),
        ::delivery::HubConfig {
            queue: config.wsi.send_queue,
            ..::delivery::HubConfig::default()
        },
    );
    let wsi = hub.clone();
    let commit_counters = Arc::new(cdr_commit::CommitCounters::default());
    let commits = tokio::spawn(cdr_commit::run(
        facts_rx,
        writer,
        cdr_commit::CommitConfig {
            linger: std::time::Duration::from_millis(config.events.commit_linger_ms),
            ..cdr_commit::CommitConfig::new(scope, Some(RECOVERY_EVERY))
        },
        Arc::clone(&commit_counters),
    ));
    let webhooks = Arc::new(crate::delivery::Webhooks::start(&config, &store, committed).await?);
    let shared_location = liveness.is_some();
    let persisted = tokio::spawn(bindings::persist(
        bindings_rx,
        store.clone(),
        shared_location,
    ));
    let trunk_net = crate::trunks::live::Net {
        transmitter: transmitter.clone(),
        tcp: Arc::clone(&tcp),
        inbound: Arc::clone(&inbound),
        resolver: resolver.clone(),
    };
    let (agent_logins_tx, agent_logins_rx) = mpsc::unbounded_channel();
    tokio::spawn(crate::apps::persist_agent_logins(
        agent_logins_rx,
        store.clone(),
    ));
    let mut shard = Shard::new(engine, transmitter, facts_tx, bindings_tx)
        .with_spawner(tokio::runtime::Handle::current())
        .with_agent_logins(agent_logins_tx);
    if let Some(media) = media {
        shard = shard.with_media(media);
    }
    let udp_reader = udp_socket.map(|socket| UdpReader {
        socket,
        inbound: Arc::clone(&inbound),
        shard: shard_tx.clone(),
    });
    let mut sip_thread = SipThread::start(
        sip_runtime,
        shard,
        shard_rx,
        stop.clone(),
        config.shutdown_grace(),
        udp_reader,
        close.clone(),
    )?;
    let trunk_reload = Arc::new(crate::trunks::reload::TrunkReload::new(
        store.clone(),
        shard_tx.clone(),
        crate::trunks::live::Supervisor::new(trunk_net, &advertised),
        resolver,
        &trunks,
    ));
    let liveness = liveness.map(|l| tokio::spawn(l.run(stop.clone())));
    let location = shared_location.then(|| {
        tokio::spawn(crate::cluster::location::follow(
            store.clone(),
            shard_tx.clone(),
            restored_at,
            stop.clone(),
        ))
    });
    let directory_sync = tokio::spawn(sync_directory(
        store.clone(),
        shard_tx.clone(),
        directory_version,
        stop.clone(),
    ));

    let mut listeners = Vec::new();
    if let Some(listener) = tcp_listener {
        listeners.push(tokio::spawn(tcp::serve(listener, Arc::clone(&tcp))));
    }
    if let Some((listener, certs, _)) = tls_listener {
        listeners.push(tokio::spawn(tls::serve(listener, Arc::clone(&tcp), certs)));
    }

    let provisioner = Arc::new(Provisioner::new(store.clone(), shard_tx, ids));
    let wsi_settings = api::WsiSettings {
        hub,
        ping_every: config.wsi_ping(),
        revalidate_every: config.wsi_revalidate(),
    };
    let api_state = ApiState::new(
        store.clone(),
        Arc::clone(&provisioner),
        admin.clone(),
        wsi_settings,
        config.api_policy(),
    );
    api_state.set_webhooks(Arc::clone(&webhooks));
    let recordings_dir = config.recordings_dir();
    api_state.set_recordings_dir(recordings_dir.clone());
    tokio::spawn(crate::api::prompts::sync_prompts(
        store.clone(),
        prompts_dir.clone(),
        prompts.clone(),
        stop.clone(),
    ));
    api_state.set_prompts(crate::api::prompts::Prompts {
        dir: prompts_dir,
        library: prompts,
    });
    let recording_retention = crate::media::retention::spawn(
        store.clone(),
        recordings_dir,
        config.recordings.retention_days,
    );
    api_state.set_trunk_states(trunk_reload.states());
    api_state.set_trunk_reload(Arc::clone(&trunk_reload));
    let http = tokio::spawn(api::server::serve(
        http_listener,
        api::router(api_state),
        config.http_limits(),
        http_tls,
        stop.clone(),
    ));

    tracing::info!(
        sip = %sip_addr,
        udp = config.sip.udp,
        tcp = config.sip.tcp,
        advertised = %advertised,
        http = %http_addr,
        https,
        database = %redact(&url),
        node = config.node,
        "tally is running"
    );
    match admin_setup {
        Setup::Created {
            generated: Some(password),
        } => println!(
            "System admin created: username {:?}, password {:?}. It is shown only this once; \
             `tally serve --admin-password …` resets it.",
            admin.username, password
        ),
        Setup::Created { generated: None } => {
            tracing::info!(username = %admin.username, "system admin created")
        }
        Setup::Reset => tracing::info!(username = %admin.username, "system admin password reset"),
        Setup::Imported => tracing::info!(
            username = %admin.username,
            "system admin password moved from {} into the store",
            crate::admin::LEGACY_FILE
        ),
        Setup::Existing => {}
    }
    if args.demo {
        let demo = demo::provision(&provisioner, &store)
            .await
            .context("provisioning the demo tenant")?;
        print!("{}", demo.credentials(&advertised));
    }
    drop(provisioner);

    shutdown.recv().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    wsi.close();
    let calls_hung_up = sip_thread.shard_stopped().await?;
    let _ = directory_sync.await;
    if let Some(liveness) = liveness {
        let _ = liveness.await;
    }
    if let Some(location) = location {
        let _ = location.await;
    }
    trunk_reload.shutdown().await;
    let _ = close_tx.send(true);
    for listener in listeners {
        let _ = listener.await;
    }
    sip_thread.join().await?;
    if let Err(e) = http.await.context("the HTTP task failed")? {
        tracing::warn!(error = %e, "HTTP server error");
    }
    if let Some(m) = metrics_server
        && let Err(e) = m.await.context("the metrics task failed")?
    {
        tracing::warn!(error = %e, "metrics server error");
    }
    commits.await.context("the CDR commit task failed")?;
    webhooks.stop().await;
    persisted.await.context("the registration task failed")?;
    relay.stop();
    retention.abort();
    for task in fanout {
        task.abort();
    }
    if let Some(task) = recording_retention {
        task.abort();
    }
    store.close().await;
    tracing::info!(
        calls_hung_up,
        rejected = inbound.counters.rejected.load(Ordering::Relaxed),
        dropped = inbound.counters.dropped.load(Ordering::Relaxed),
        overload = inbound.counters.overload.load(Ordering::Relaxed),
        cdr_commands = commit_counters.committed.load(Ordering::Relaxed),
        cdr_retries = commit_counters.retries.load(Ordering::Relaxed),
        cdr_refused = commit_counters.refused.load(Ordering::Relaxed),
        "stopped"
    );
    Ok(())
}

/// `host:port` for Via and Contact.
fn advertised_address(config: &Config) -> String {
    let port = config.sip.port;
    if let Some(a) = &config.sip.advertise {
        return if a.parse::<SocketAddr>().is_ok() {
            a.clone()
        } else if let Ok(ip) = a.parse::<IpAddr>() {
            SocketAddr::new(ip, port).to_string()
        } else if a.contains(':') {
            a.clone()
        } else {
            format!("{a}:{port}")
        };
    }
    let ip = if config.sip.bind.is_unspecified() {
        primary_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    } else {
        config.sip.bind
    };
    SocketAddr::new(ip, port).to_string()
}

/// The address this host would use to reach the outside: "connecting" a
/// UDP socket only picks a route and sends nothing. The target is in
/// TEST-NET-1 (RFC 5737), never a real host.
fn primary_ip() -> Option<IpAddr> {
    let socket = StdUdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(192, 0, 2, 1), 5060)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere), watched from the start.
struct ShutdownSignal {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    #[cfg(unix)]
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignal {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    #[cfg(unix)]
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }

    #[cfg(not(unix))]
    fn install() -> anyhow::Result<Self> {
        Ok(ShutdownSignal {})
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The media relay (`media/calls.rs`) lent to the engine, unless
/// `media.anchor = "never"` or no relay address can be found.
fn media_runtime(
    config: &Config,
    advertised: &str,
    store: &store::Store,
    ids: &NodeIds,
    engine: &mut Engine,
) -> anyhow::Result<Option<(MediaCalls, MediaEvents)>> {
    if config.media.anchor == crate::media::Anchor::Never {
        engine.set_media_off("media.anchor is \"never\"");
        return Ok(None);
    }
    let host = advertised.rsplit_once(':').map_or(advertised, |(h, _)| h);
    let address = config
        .media
        .address
        .or_else(|| Some(config.sip.bind).filter(|ip| !ip.is_unspecified()))
        .or_else(|| host.trim_matches(['[', ']']).parse().ok());
    let Some(address) = address else {
        tracing::warn!(
            advertised = %advertised,
            "media not anchored: set media.address (the IP phones send RTP to)"
        );
        engine.set_media_off("no media.address (the IP phones send RTP to) could be found");
        return Ok(None);
    };
    let (first, last) = config.rtp_ports()?;
    let bind = if config.sip.bind.is_unspecified() {
        config.sip.bind
    } else {
        address
    };
    let pool = crate::media::ports::PortPool::new(bind, first, last);
    let (calls, events) = MediaCalls::new(
        pool,
        std::time::Duration::from_secs(config.media.rtp_timeout_secs),
        crate::media::calls::Recordings {
            dir: config.recordings_dir(),
            store: store.clone(),
            ids: ids.clone(),
        },
    );
    engine.set_media(
        pbx::media::MediaPolicy {
            anchor: config.media.anchor.into(),
            address,
        },
        Box::new(calls.ports()),
    );
    Ok(Some((calls, events)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_stay_out_of_logs() {
        assert_eq!(
            redact("postgres://tally:secret@db:5432/tally"),
            "postgres://tally:***@db:5432/tally"
        );
        assert_eq!(redact("postgres://db/tally"), "postgres://db/tally");
        assert_eq!(
            redact("sqlite:./tally-data/tally.db"),
            "sqlite:./tally-data/tally.db"
        );
    }

    #[test]
    fn advertised_addresses_get_the_sip_port() {
        let mut c = Config::default();
        c.sip.bind = "127.0.0.1".parse().unwrap();
        c.sip.port = 5080;
        assert_eq!(advertised_address(&c), "127.0.0.1:5080");
        c.sip.advertise = Some("pbx.example.com".into());
        assert_eq!(advertised_address(&c), "pbx.example.com:5080");
        c.sip.advertise = Some("pbx.example.com:5099".into());
        assert_eq!(advertised_address(&c), "pbx.example.com:5099");
        c.sip.advertise = Some("2001:db8::1".into());
        assert_eq!(advertised_address(&c), "[2001:db8::1]:5080");
    }
}
