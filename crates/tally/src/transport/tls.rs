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
//! **Outbound** (RFC 5626 style, README "SIP over TLS"): a request to a
//! phone registered over TLS goes on the connection it registered on
//! while that is open. Once it has closed, the PBX opens a TLS connection
//! to the request's Request-URI (the binding's Contact: its IP address,
//! port 5061 when none is written) and routes the binding's later
//! requests there too while it stays open; a failed connect or handshake
//! is a transport error for the binding (the target fails with 503). A
//! Contact naming a host name is not resolved (a transport error):
//! phones register IP addresses. Phones' certificates are usually
//! self-signed, so by default they are not verified (the session is
//! encrypted, the phone not authenticated: what it receives is an
//! INVITE, not a credential); `[sip] tls_phone_ca` verifies them against
//! a CA, with the Contact's IP address as the name to match.
//!
//! **`sips:`** ([`requires_tls`]): a request whose Request-URI is `sips:`
//! never leaves on UDP or TCP; the transmitter refuses it (a transport
//! error: the target fails with 503).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use sip::transport::{Peer, Transport};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::SendError;
use super::tcp::{CONNECT_TIMEOUT, SEND_QUEUE, Tcp};

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

/// How the PBX checks phones' certificates when it connects to them (see
/// the module doc): against the CA in `phone_ca`, or not at all.
pub fn client_config(phone_ca: Option<&Path>) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match phone_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading [sip] tls_phone_ca {}", path.display()))?
            {
                let cert =
                    cert.with_context(|| format!("{}: a bad certificate", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("{}: not a usable CA", path.display()))?;
            }
            if roots.is_empty() {
                bail!("{}: no certificate in it", path.display());
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyPhoneCertificate(provider)))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts any certificate a phone presents, still checking that the
/// handshake is signed by its key (so the session is what it claims).
#[derive(Debug)]
struct AnyPhoneCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyPhoneCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The Request-URI of a request on the wire, if `data` is one.
fn request_uri(data: &[u8]) -> Option<&str> {
    if data.starts_with(b"SIP/") {
        return None;
    }
    let line = data.split(|&b| b == b'\r' || b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    line.split(' ').nth(1)
}

/// Whether `data` is a request that may only travel over TLS: its
/// Request-URI is `sips:` (RFC 3261 §26.2).
pub fn requires_tls(data: &[u8]) -> bool {
    request_uri(data).is_some_and(|uri| {
        uri.get(..5)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("sips:"))
    })
}

/// Where to open a TLS connection for the request `data`: its
/// Request-URI's IP address and port (5061 when none is written).
fn contact_address(data: &[u8]) -> Option<SocketAddr> {
    match sip::Uri::parse(request_uri(data)?).ok()? {
        sip::Uri::Sip(uri) => Some(SocketAddr::new(uri.host.ip()?, uri.port.unwrap_or(5061))),
        _ => None,
    }
}

impl Tcp {
    /// Lets the PBX open TLS connections to phones, with `client`'s
    /// verification (set once, at start-up).
    pub fn connect_to_phones_with(&self, client: Arc<ClientConfig>) {
        let _ = self.tls_client.set(client);
    }

    fn tls_routes(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<SocketAddr, SocketAddr>> {
        self.tls_routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The queue of the TLS connection to `peer`: the one it opened, else
    /// the one the PBX opened for it, else a new one to the Contact
    /// `data` (a request) is addressed to (see the module doc).
    pub(super) fn tls_queue_or_connect(
        self: &Arc<Self>,
        peer: SocketAddr,
        data: &Bytes,
    ) -> Result<mpsc::Sender<Bytes>, SendError> {
        if let Some(queue) = self.tls.queue(peer) {
            return Ok(queue);
        }
        let routed = self.tls_routes().get(&peer).copied();
        if let Some(queue) = routed.and_then(|to| self.tls.queue(to)) {
            return Ok(queue);
        }
        let (Some(client), false) = (self.tls_client.get(), *self.stop_signal().borrow()) else {
            return Err(SendError::NoConnection(peer));
        };
        let to = contact_address(data).ok_or(SendError::NoConnection(peer))?;
        self.tls_routes().insert(peer, to);
        if let Some(queue) = self.tls.queue(to) {
            return Ok(queue);
        }
        let (queue, outgoing) = mpsc::channel(SEND_QUEUE);
        self.admit(Transport::Tls, to, queue.clone())?;
        tokio::spawn(Arc::clone(self).outbound_tls(
            peer,
            to,
            Arc::clone(client),
            queue.clone(),
            outgoing,
        ));
        Ok(queue)
    }

    async fn outbound_tls(
        self: Arc<Self>,
        binding: SocketAddr,
        to: SocketAddr,
        client: Arc<ClientConfig>,
        queue: mpsc::Sender<Bytes>,
        outgoing: mpsc::Receiver<Bytes>,
    ) {
        let connect = async {
            let stream = TcpStream::connect(to).await?;
            let _ = stream.set_nodelay(true);
            TlsConnector::from(client)
                .connect(ServerName::IpAddress(to.ip().into()), stream)
                .await
        };
        let error = match tokio::time::timeout(CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT, connect).await {
            Ok(Ok(tls)) => {
                tracing::info!(peer = %to, %binding, "outbound TLS connection opened");
                let (reader, writer) = tokio::io::split(tls);
                let peer = Peer::new(Transport::Tls, to);
                Arc::clone(&self)
                    .serve_connection(reader, writer, peer, queue, outgoing)
                    .await;
                self.forget_route(binding, to);
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no connection and handshake in time".to_owned(),
        };
        tracing::info!(peer = %to, %binding, %error, "outbound TLS connection failed");
        self.tls.remove(to, &queue);
        self.forget_route(binding, to);
        drop(outgoing);
        self.transport_error(Peer::new(Transport::Tls, binding))
            .await;
    }

    fn forget_route(&self, binding: SocketAddr, to: SocketAddr) {
        let mut routes = self.tls_routes();
        if routes.get(&binding) == Some(&to) {
            routes.remove(&binding);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sips_request_uris_require_tls_and_name_the_contact() {
        let invite = b"INVITE sips:102@192.0.2.7:5071;transport=tls SIP/2.0\r\nVia: x\r\n\r\n";
        assert!(requires_tls(invite));
        assert_eq!(
            contact_address(invite),
            Some("192.0.2.7:5071".parse().unwrap())
        );
        let plain = b"BYE sip:102@[2001:db8::7];transport=tls SIP/2.0\r\n\r\n";
        assert!(!requires_tls(plain));
        assert_eq!(
            contact_address(plain),
            Some("[2001:db8::7]:5061".parse().unwrap())
        );
        assert!(!requires_tls(
            b"SIP/2.0 200 OK\r\nContact: <sips:a@b>\r\n\r\n"
        ));
        assert_eq!(
            contact_address(b"INVITE sip:102@phone.example SIP/2.0\r\n"),
            None
        );
        assert_eq!(contact_address(b"SIP/2.0 200 OK\r\n"), None);
        assert!(client_config(None).is_ok());
    }
}
