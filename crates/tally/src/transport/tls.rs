//! SIP over TLS (RFC 3261 §26): the TLS listener (`[sip] tls_port`,
//! usually 5061) beside the TCP one, on rustls with the ring provider (the
//! build `delivery` already uses for webhooks).
//!
//! A TLS connection is a TCP connection with a handshake in front: once
//! the handshake is done it is served by the same code
//! ([`Tcp::serve_connection`]: framing, keep-alive pings, the idle
//! timeout), under the same caps (`tcp_max_connections` and its
//! per-source share, counted separately for TLS), and requests to a phone
//! registered over TLS go back on its connection (the binding's source is
//! the connection, DESIGN.md "Runtime").
//!
//! **Certificates** are read from PEM files (`tls_cert`: the chain, leaf
//! first; `tls_key`: PKCS#8, PKCS#1 or SEC1) at start-up, where a bad
//! pair stops the start, and again on `SIGHUP`, where a bad pair is
//! logged and the one in use stays: a renewal that went wrong must not
//! take TLS down. Connections already open keep the certificate they
//! were made with.
//!
//! **Not yet** (README "Security"): the PBX does not open TLS connections
//! itself; a phone registered over TLS whose connection closed is
//! unreachable until it connects again (a transport error fails the call
//! leg at once), and `sips:` URIs are not treated specially.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sip::transport::{Peer, Transport};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::tcp::{SEND_QUEUE, Tcp};

/// Longest wait for a client's TLS handshake; a connection that does not
/// finish it in time is closed (it holds a connection slot meanwhile).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server certificate in use, and where to read it again.
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl Certificates {
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<Certificates>> {
        let config = server_config(cert, key)?;
        Ok(Arc::new(Certificates {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(config)),
        }))
    }

    /// Reads the files again; on an error the certificate in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = Arc::new(server_config(&self.cert, &self.key)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        let config = self.current.read().unwrap_or_else(PoisonError::into_inner);
        TlsAcceptor::from(Arc::clone(&config))
    }
}

fn server_config(cert: &Path, key: &Path) -> anyhow::Result<ServerConfig> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    if chain.is_empty() {
        bail!("{}: no certificate in it", cert.display());
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the TLS key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .with_context(|| {
            format!(
                "{} and {} do not make a certificate and its key",
                cert.display(),
                key.display()
            )
        })
}

/// Re-reads the certificate on every `SIGHUP` until the process ends.
pub fn reload_on_hangup(certs: Arc<Certificates>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).context("watching SIGHUP")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match certs.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "TLS certificate reload failed: keeping the one in use"
                ),
            }
        }
    });
    Ok(())
}

/// Accepts TLS connections until the server stops.
pub async fn serve(listener: TcpListener, tcp: Arc<Tcp>, certs: Arc<Certificates>) {
    let mut stop_accepting = tcp.stop_signal();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop_accepting.wait_for(|s| *s) => return,
        };
        let (stream, from) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "TLS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (queue, outgoing) = mpsc::channel(SEND_QUEUE);
        if let Err(e) = tcp.admit(Transport::Tls, from, queue.clone()) {
            tracing::warn!(peer = %from, error = %e, "too many TLS connections: closing a new one");
            crate::metrics::tcp_refused();
            continue;
        }
        let acceptor = certs.acceptor();
        let tcp = Arc::clone(&tcp);
        // The handshake on its own task: a slow client must not hold up
        // the accept loop.
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let peer = Peer::new(Transport::Tls, from);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let (reader, writer) = tokio::io::split(tls);
                    tcp.serve_connection(reader, writer, peer, queue, outgoing)
                        .await;
                }
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "TLS handshake failed");
                    tcp.forget(peer, &queue);
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    tcp.forget(peer, &queue);
                }
            }
        });
    }
}
