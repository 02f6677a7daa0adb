//! The HTTP server of the REST API, `/wsi` and the console: hyper's HTTP/1
//! connection over a TCP (or, with a certificate, TLS) stream, each
//! request handed to the axum router.
//!
//! It replaces `axum::serve`, which has no limits, for the security
//! review's findings 1 and 10:
//!
//! - **Connection cap** (`http.max_connections`): a connection is accepted
//!   only while fewer are open; the rest wait in the kernel's backlog, so a
//!   flood of idle sockets cannot exhaust descriptors or memory.
//! - **Header-read timeout** (`http.header_read_secs`): a client must send
//!   a request's headers (and finish a TLS handshake) within it, and an
//!   idle keep-alive connection is closed after it (hyper's
//!   `header_read_timeout`, which also runs between requests).
//! - **Write deadline** (`http.write_stall_secs`): a client that takes no
//!   byte of a response for that long is disconnected ([`WriteDeadline`]).
//!   Together with the export's own stall deadline (`store::ExportLimits`)
//!   a client that stops reading an export gives back both its pooled
//!   connection and its socket.
//! - **HTTPS** when `http.tls_cert_file` and `http.tls_key_file` name PEM
//!   files: rustls with the ring provider (as the webhook client), TLS 1.2
//!   and 1.3, HTTP/1.1 by ALPN. Without them the server speaks plain HTTP
//!   (behind a TLS-terminating proxy, or on loopback as by default).
//!
//! Shutdown: when `stop` turns true the listener closes, each connection
//! finishes its request in flight and closes (hyper's graceful shutdown),
//! and [`serve`] returns once every connection has ended.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tower_service::Service as _;

/// The server's limits (config `[http]`).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_read: Duration,
    pub write_stall: Duration,
}

/// Why the HTTPS configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0} holds no certificate")]
    NoCertificate(String),
    #[error("the certificate and key cannot be used: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A rustls server configuration from a PEM certificate chain and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsSetupError::Read { path, source }
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(read(cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read(cert))?;
    if chain.is_empty() {
        return Err(TlsSetupError::NoCertificate(cert.display().to_string()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(read(key))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` until `stop` turns true, then lets the
/// open connections finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut connections = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&open).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let (router, tls, stop) = (router.clone(), tls.clone(), stop.clone());
        connections.spawn(async move {
            let _permit = permit;
            if let Err(error) = connection(stream, peer, router, limits, tls, stop).await {
                tracing::debug!(%peer, %error, "HTTP connection ended");
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Returns once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: HttpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let _ = stream.set_nodelay(true);
    let stream = WriteDeadline::new(stream, limits.write_stall);
    match tls {
        None => http(TokioIo::new(stream), peer, false, router, limits, stop).await,
        Some(acceptor) => {
            let stream = tokio::time::timeout(limits.header_read, acceptor.accept(stream))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake too slow"))??;
            http(TokioIo::new(stream), peer, true, router, limits, stop).await
        }
    }
}

async fn http<I>(
    io: I,
    peer: SocketAddr,
    secure: bool,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // What `into_make_service_with_connect_info` gave handlers.
        request.extensions_mut().insert(ConnectInfo(peer));
        if secure {
            // The console marks its cookies `Secure` on these.
            request
                .extensions_mut()
                .insert(crate::console::session::TlsConnection);
        }
        let mut router = router.clone();
        async move { router.call(request).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => done?,
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await?;
        }
    }
    Ok(())
}

/// A stream whose writes fail once one has waited `stall` without the
/// peer taking a byte: a client that stops reading is disconnected
/// instead of holding its connection (and what feeds it) for ever.
pub struct WriteDeadline<S> {
    inner: S,
    stall: Duration,
    /// Armed while a write is pending; dropped on progress.
    waiting: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, stall: Duration) -> Self {
        Self {
            inner,
            stall,
            waiting: None,
        }
    }

    /// `poll` made progress: disarm; it is pending: arm (once) and fail
    /// when the deadline passes.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.waiting = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let stall = self.stall;
                let timer = self
                    .waiting
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took nothing within the write deadline",
                )))
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test]
    async fn a_peer_that_reads_nothing_fails_the_write_after_the_deadline() {
        // A 1-byte duplex pipe whose other end is never read.
        let (near, _far) = tokio::io::duplex(1);
        let mut stream = WriteDeadline::new(near, Duration::from_millis(100));
        let started = std::time::Instant::now();
        let error = stream.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn progress_resets_the_deadline() {
        let (near, mut far) = tokio::io::duplex(8);
        let mut stream = WriteDeadline::new(near, Duration::from_millis(200));
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt as _;
            let mut got = 0;
            let mut buf = [0u8; 8];
            while got < 64 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                got += far.read(&mut buf).await.unwrap();
            }
            got
        });
        // Takes ~400 ms in all, more than the deadline, but never stalls
        // for 200 ms at once.
        stream.write_all(&[0u8; 64]).await.unwrap();
        assert_eq!(reader.await.unwrap(), 64);
    }
}
