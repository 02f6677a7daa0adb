//! Start-up and shut-down of `tally serve`.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdr::{Snowflake, TenantId, UnixMillis};
use pbx::{BindingRecord, Engine, EngineConfig, Extension};
use sha2::{Digest, Sha256};
use sip::transport::Transport;
use store::{RecoveryScope, Store, WriterConfig};
use tokio::net::{TcpListener, UdpSocket};

use crate::cli::Options;
use crate::{core, http, random};

pub const DEMO_DOMAIN: &str = "demo.tally.local";
const DEMO_EXTENSIONS: [&str; 5] = ["101", "102", "103", "104", "105"];
const TOKEN_FILE: &str = "admin-token.sha256";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub async fn serve(options: Options) -> Result<(), BoxError> {
    std::fs::create_dir_all(&options.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", options.data_dir.display()))?;
    let url = options
        .database
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", options.data_dir.join("tally.db").display()));
    let store = Store::open(&url)
        .await
        .map_err(|e| format!("cannot open the store: {e}"))?;
    let writer = store.spawn_writer(WriterConfig::default());

    let report = writer
        .recover_open_sessions(RecoveryScope::Node(options.node), UnixMillis(unix_ms()))
        .await?;
    if !report.recovered.is_empty() || !report.failed.is_empty() {
        tracing::warn!(
            recovered = report.recovered.len(),
            failed = report.failed.len(),
            "closed sessions left open by the previous run"
        );
    }

    let token_hash = admin_token(&options.data_dir)?;

    let sip_socket = UdpSocket::bind(options.sip_addr)
        .await
        .map_err(|e| format!("cannot bind SIP {}: {e}", options.sip_addr))?;
    let sip_local = sip_socket.local_addr()?;
    let advertised = options
        .advertise
        .clone()
        .unwrap_or_else(|| advertised_addr(sip_local));

    if options.demo {
        demo(&store, options.node, &advertised).await?;
    }

    let mut nonce_key = [0u8; 32];
    random::fill(&mut nonce_key);
    let mut engine = Engine::new(EngineConfig::new(
        options.node,
        nonce_key,
        random::u64(),
        &advertised,
    ))?;
    load_directory(&store, &mut engine).await?;
    restore_registrations(&store, &mut engine).await?;

    let http_listener = TcpListener::bind(options.http_addr)
        .await
        .map_err(|e| format!("cannot bind HTTP {}: {e}", options.http_addr))?;
    let http_local = http_listener.local_addr()?;
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(http::run(
        http_listener,
        http::AppState::new(store.clone(), token_hash),
        http_stop_rx,
    ));

    // Before `ready`: from here on a SIGTERM is a clean shutdown.
    let shutdown = core::shutdown_signal();
    println!("SIP listening on udp {sip_local} (advertised as {advertised})");
    println!("REST listening on http://{http_local}/api");
    println!("ready");
    std::io::stdout().flush().ok();
    tracing::info!(%sip_local, %http_local, "tally serving");

    let stats = core::run(sip_socket, engine, writer.clone(), store.clone(), shutdown).await;
    tracing::info!(
        received = stats.received,
        unparsable = stats.unparsable,
        sent = stats.sent,
        "SIP stopped"
    );

    let _ = http_stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(5), http_task).await {
        Ok(Ok(Err(error))) => tracing::warn!("HTTP server: {error}"),
        Err(_) => tracing::warn!("HTTP server did not stop in time"),
        _ => {}
    }
    drop(writer);
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The address phones reach the PBX at: the bound address, or this host's
/// outbound address when bound to the unspecified address.
fn advertised_addr(bound: SocketAddr) -> String {
    if !bound.ip().is_unspecified() {
        return bound.to_string();
    }
    let ip = StdUdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    SocketAddr::new(ip, bound.port()).to_string()
}

/// The admin API token: created, printed once and stored as a SHA-256 hash
/// in the data directory on first start. Returns the hash.
fn admin_token(data_dir: &Path) -> Result<[u8; 32], BoxError> {
    let path = data_dir.join(TOKEN_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim();
        let mut hash = [0u8; 32];
        if text.len() == 64 {
            for (i, byte) in hash.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                    .map_err(|_| format!("{} is corrupt", path.display()))?;
            }
            println!(
                "Admin API token: (set at first start; delete {} to make a new one)",
                path.display()
            );
            return Ok(hash);
        }
        return Err(format!("{} is corrupt", path.display()).into());
    }
    let mut secret = [0u8; 32];
    random::fill(&mut secret);
    let token = random::hex(&secret);
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    std::fs::write(&path, random::hex(&hash) + "\n")
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!("Admin API token: {token}");
    println!("  (shown once; stored hashed in {})", path.display());
    Ok(hash)
}

/// Creates the demo tenant and its extensions, or finds them; prints the
/// credentials.
async fn demo(store: &Store, node: u16, advertised: &str) -> Result<(), BoxError> {
    let mut ids = Snowflake::new(node)?;
    let now = UnixMillis(unix_ms());
    let tenant = match store.tenant_by_sip_domain(DEMO_DOMAIN).await? {
        Some(tenant) => tenant,
        None => {
            let tenant = store::Tenant {
                id: TenantId::from(ids.next(now)),
                name: "Demo".into(),
                sip_domain: DEMO_DOMAIN.into(),
                created_at: now,
            };
            store.create_tenant(&tenant).await?;
            tenant
        }
    };
    let mut rows = Vec::new();
    for extension in DEMO_EXTENSIONS {
        let user = match store.user_by_extension(tenant.id, extension).await? {
            Some(user) => user,
            None => {
                let user = store::User {
                    id: ids.next(now),
                    tenant_id: tenant.id,
                    extension: extension.into(),
                    display_name: format!("Demo {extension}"),
                    sip_password: random::password(12),
                    ring_timeout_secs: store::DEFAULT_RING_TIMEOUT_SECS,
                    enabled: true,
                    created_at: now,
                };
                store.create_user(&user).await?;
                user
            }
        };
        rows.push((user.extension, user.sip_password));
    }
    println!("Demo tenant {DEMO_DOMAIN} (tenant id {})", tenant.id);
    println!("SIP server: {advertised} (UDP), domain {DEMO_DOMAIN}");
    println!("  extension  password");
    for (extension, password) in rows {
        println!("  {extension:<9}  {password}");
    }
    std::io::stdout().flush().ok();
    Ok(())
}

async fn load_directory(store: &Store, engine: &mut Engine) -> Result<(), BoxError> {
    let directory = engine.directory_mut();
    let (mut tenants, mut users) = (0, 0);
    for tenant in store.tenants().await? {
        directory.upsert_tenant(pbx::Tenant {
            id: tenant.id,
            name: tenant.name.clone(),
            domain: tenant.sip_domain.clone(),
        })?;
        tenants += 1;
        for user in store.users_of_tenant(tenant.id).await? {
            directory.upsert_user(pbx::User {
                tenant_id: user.tenant_id,
                extension: Extension::new(user.extension),
                display_name: user.display_name,
                password: user.sip_password,
                ring_timeout: Duration::from_secs(u64::from(user.ring_timeout_secs)),
                enabled: user.enabled,
            })?;
            users += 1;
        }
    }
    tracing::info!(tenants, users, "directory loaded");
    Ok(())
}

async fn restore_registrations(store: &Store, engine: &mut Engine) -> Result<(), BoxError> {
    let now_ms = unix_ms();
    let mut records = Vec::new();
    for r in store.all_live_registrations(UnixMillis(now_ms)).await? {
        let (Ok(transport), Ok(source)) = (r.transport.parse::<Transport>(), r.received.parse())
        else {
            tracing::warn!(extension = %r.extension, "skipping an unreadable registration");
            continue;
        };
        records.push(BindingRecord {
            tenant_id: r.tenant_id,
            extension: r.extension,
            key: r.binding_key,
            contact_uri: r.contact_uri,
            instance: r.instance_id,
            reg_id: r.reg_id,
            q: None,
            expires_unix: r.expires_at.0 / 1000,
            transport,
            source,
            call_id: r.call_id,
            cseq: r.cseq,
        });
    }
    let count = records.len();
    let report = engine
        .registrar_mut()
        .restore(Instant::now(), now_ms / 1000, records);
    tracing::info!(count, ?report, "registrations restored");
    Ok(())
}

/// The store's row for a live binding.
pub fn registration_of(record: &BindingRecord, now_ms: u64) -> store::Registration {
    store::Registration {
        tenant_id: record.tenant_id,
        extension: record.extension.clone(),
        binding_key: record.key.clone(),
        contact_uri: record.contact_uri.clone(),
        instance_id: record.instance.clone(),
        reg_id: record.reg_id,
        received: record.source.to_string(),
        transport: record.transport.as_str().to_owned(),
        call_id: record.call_id.clone(),
        cseq: record.cseq,
        user_agent: String::new(),
        expires_at: UnixMillis(record.expires_unix.saturating_mul(1000)),
        updated_at: UnixMillis(now_ms),
    }
}
