//! SIP over TCP: connections phones open to the PBX, and connections the
//! PBX opens itself.
//!
//! Each connection is one task reading frames with [`StreamFramer`]
//! (answering RFC 5626 keep-alive pings) and one writer task draining the
//! queue the [`Transmitter`](super::Transmitter) fills. Requests and
//! responses to a peer go on the connection it opened (RFC 3261 §18.2.2,
//! and what reaches a phone behind NAT).
//!
//! **Outbound connections.** A message for a TCP peer with no open
//! connection (a phone registered over TCP whose connection has since
//! closed) opens one to the peer's address, which is the binding's
//! `received`/`rport` address: the source of its REGISTER. The queue is in
//! [`Connections`] at once, so whatever else is sent meanwhile waits behind
//! the first message; the connect is bounded by [`CONNECT_TIMEOUT`]. If it
//! fails, the queued messages are dropped and the shard gets
//! [`ShardInput::TransportError`] for the peer, like a failed write on an
//! open connection: the engine fails the transactions waiting on it.
//!
//! **Limits** (`[sip]` in the configuration): a connection with no bytes
//! read or written for `tcp_idle_secs` (default 600 s; keep-alive pings
//! count) is closed; at most `tcp_max_connections` (default 10 000,
//! inbound and outbound together) are open, and at most
//! `tcp_max_connections_per_source` (default 256) with one IP address, so
//! one host cannot take every descriptor: a connection accepted beyond
//! either is closed at once, an outbound one beyond it is not opened (a
//! transport error).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sip::framing::{Frame, PONG, StreamFramer};
use sip::transport::{Peer, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{Connections, Inbound, SendError, Verdict};
use crate::shard::ShardInput;

/// Messages that may wait for one connection's writer.
pub(super) const SEND_QUEUE: usize = 256;

/// Longest wait for an outbound connection to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The configurable limits (see the module doc).
#[derive(Clone, Copy, Debug)]
pub struct TcpLimits {
    pub idle: Duration,
    pub max_connections: usize,
    pub max_per_source: usize,
}

/// Everything a connection task needs; shared by the listener, every
/// connection and the [`Transmitter`](super::Transmitter).
#[derive(Debug)]
pub struct Tcp {
    pub connections: Connections,
    /// TLS connections (module `tls`): served like TCP ones once the
    /// handshake is done, counted apart.
    pub tls: Connections,
    inbound: Arc<Inbound>,
    shard: mpsc::Sender<ShardInput>,
    stop: watch::Receiver<bool>,
    limits: TcpLimits,
    /// Outbound TLS (module `tls`): how the PBX connects to phones, set
    /// when TLS is configured.
    pub(super) tls_client: std::sync::OnceLock<Arc<rustls::ClientConfig>>,
    /// A TLS binding's source (the connection the phone registered on) →
    /// the connection the PBX opened to its Contact after that one closed.
    pub(super) tls_routes: std::sync::Mutex<std::collections::HashMap<SocketAddr, SocketAddr>>,
}

impl Tcp {
    pub fn new(
        inbound: Arc<Inbound>,
        shard: mpsc::Sender<ShardInput>,
        stop: watch::Receiver<bool>,
        limits: TcpLimits,
    ) -> Arc<Tcp> {
        Arc::new(Tcp {
            connections: Connections::default(),
            tls: Connections::default(),
            inbound,
            shard,
            stop,
            limits,
            tls_client: std::sync::OnceLock::new(),
            tls_routes: std::sync::Mutex::default(),
        })
    }

    fn connections_for(&self, transport: Transport) -> &Connections {
        match transport {
            Transport::Tls => &self.tls,
            _ => &self.connections,
        }
    }

    /// Takes a new connection on `transport` into its table, within the
    /// caps (see the module doc).
    pub(super) fn admit(
        &self,
        transport: Transport,
        peer: SocketAddr,
        queue: mpsc::Sender<Bytes>,
    ) -> Result<(), SendError> {
        self.connections_for(transport).admit(
            peer,
            queue,
            self.limits.max_connections,
            self.limits.max_per_source,
        )
    }

    /// Forgets a connection that ends before it was served.
    pub(super) fn forget(&self, peer: Peer, queue: &mpsc::Sender<Bytes>) {
        self.connections_for(peer.transport)
            .remove(peer.addr, queue);
    }

    pub(super) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// The queue of the connection to `peer`, opening one if there is none.
    pub(super) fn queue_or_connect(
        self: &Arc<Self>,
        peer: SocketAddr,
    ) -> Result<mpsc::Sender<Bytes>, SendError> {
        if let Some(queue) = self.connections.queue(peer) {
            return Ok(queue);
        }
        if *self.stop.borrow() {
            return Err(SendError::NoConnection(peer));
        }
        let (queue, outgoing) = mpsc::channel(SEND_QUEUE);
        self.admit(Transport::Tcp, peer, queue.clone())?;
        tokio::spawn(Arc::clone(self).outbound(peer, queue.clone(), outgoing));
        Ok(queue)
    }

    /// Opens a connection to `peer` unless one is open, and waits until it
    /// is (or failed): what a trunk's registration over TCP starts with,
    /// so the carrier's answers and later its calls come down it, and
    /// the PBX's INVITEs to the carrier reuse it
    /// ([`Transmitter::send`](super::Transmitter::send) finds it by the
    /// carrier's address).
    ///
    /// `true` when a new connection was opened (the carrier's registration
    /// bound to the old one is then of no use for its calls).
    pub async fn open(self: &Arc<Self>, peer: SocketAddr) -> Result<bool, SendError> {
        if self.connections.queue(peer).is_some() {
            return Ok(false);
        }
        if *self.stop.borrow() {
            return Err(SendError::NoConnection(peer));
        }
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(peer))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if self.connections.queue(peer).is_some() {
            // Another task connected meanwhile: use its connection.
            return Ok(true);
        }
        let (queue, outgoing) = mpsc::channel(SEND_QUEUE);
        self.admit(Transport::Tcp, peer, queue.clone())?;
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        tracing::debug!(%peer, "connection to a trunk opened");
        tokio::spawn(Arc::clone(self).serve_connection(
            reader,
            writer,
            Peer::new(Transport::Tcp, peer),
            queue,
            outgoing,
        ));
        Ok(true)
    }

    /// Whether a connection to `peer` is open.
    pub fn is_open(&self, peer: SocketAddr) -> bool {
        self.connections.queue(peer).is_some()
    }

    async fn outbound(
        self: Arc<Self>,
        to: SocketAddr,
        queue: mpsc::Sender<Bytes>,
        outgoing: mpsc::Receiver<Bytes>,
    ) {
        let error = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await {
            Ok(Ok(stream)) => {
                tracing::debug!(peer = %to, "outbound connection opened");
                let _ = stream.set_nodelay(true);
                let (reader, writer) = stream.into_split();
                let peer = Peer::new(Transport::Tcp, to);
                return self
                    .serve_connection(reader, writer, peer, queue, outgoing)
                    .await;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        };
        tracing::info!(peer = %to, %error, "outbound TCP connection failed");
        self.connections.remove(to, &queue);
        drop(outgoing);
        self.transport_error(Peer::new(Transport::Tcp, to)).await;
    }

    pub(super) async fn transport_error(&self, peer: Peer) {
        let _ = self.shard.send(ShardInput::TransportError { peer }).await;
    }

    /// One connection, accepted or opened, until either side closes it,
    /// it idles out, or the server stops.
    /// The halves of a byte stream: a TCP connection's, or a TLS session's
    /// after its handshake (the caller sets `TCP_NODELAY`: SIP messages
    /// are small and latency matters more than segment count).
    pub(super) async fn serve_connection<R, W>(
        self: Arc<Self>,
        mut reader: R,
        mut writer: W,
        peer: Peer,
        queue: mpsc::Sender<Bytes>,
        mut outgoing: mpsc::Receiver<Bytes>,
    ) where
        R: AsyncRead + Unpin + Send,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let opened = Instant::now();
        // Milliseconds after `opened` of the last byte read or written.
        let activity = Arc::new(AtomicU64::new(0));
        let touch = {
            let activity = Arc::clone(&activity);
            move || {
                let ms = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX);
                activity.fetch_max(ms, Ordering::Relaxed);
            }
        };
        let write_task = {
            let touch = touch.clone();
            let this = Arc::clone(&self);
            tokio::spawn(async move {
                while let Some(data) = outgoing.recv().await {
                    if let Err(e) = writer.write_all(&data).await {
                        tracing::debug!(%peer, error = %e, "connection write failed");
                        // What was queued behind it is lost too: the
                        // engine fails the transactions waiting on it.
                        this.transport_error(peer).await;
                        break;
                    }
                    touch();
                }
                let _ = writer.shutdown().await;
            })
        };
        tracing::debug!(%peer, "connection opened");

        let mut stop = self.stop.clone();
        let idle = self.limits.idle;
        let mut framer = StreamFramer::new(self.inbound.limits());
        let mut buf = vec![0u8; 16 * 1024];
        'read: loop {
            let idle_at = opened + Duration::from_millis(activity.load(Ordering::Relaxed)) + idle;
            let read = tokio::select! {
                r = reader.read(&mut buf) => r,
                _ = stop.wait_for(|s| *s) => break,
                _ = tokio::time::sleep_until(idle_at) => {
                    let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                    if opened + last + idle <= Instant::now() {
                        tracing::debug!(%peer, idle_secs = idle.as_secs(), "idle connection closed");
                        break;
                    }
                    continue;
                }
            };
            match read {
                Ok(0) => break,
                Ok(n) => {
                    touch();
                    framer.push(&buf[..n]);
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "connection read failed");
                    break;
                }
            }
            loop {
                match framer.next_frame() {
                    Ok(None) => break,
                    Ok(Some(Frame::Ping)) => {
                        if queue.send(Bytes::from_static(PONG)).await.is_err() {
                            break 'read;
                        }
                    }
                    Ok(Some(Frame::Pong)) => {}
                    Ok(Some(Frame::Message(raw))) => match self.inbound.judge(raw) {
                        Verdict::Forward(message) => {
                            let input = ShardInput::Sip { peer, message };
                            if self.shard.send(input).await.is_err() {
                                break 'read;
                            }
                        }
                        Verdict::Answer { response, reason } => {
                            tracing::info!(%peer, %reason, "rejected request");
                            if queue.send(response).await.is_err() {
                                break 'read;
                            }
                        }
                        Verdict::Drop(reason) => {
                            tracing::debug!(%peer, %reason, "dropped message")
                        }
                        Verdict::Tapped => {}
                    },
                    // Nothing after a framing error can be trusted to start
                    // a message (sip::framing): close the connection.
                    Err(e) => {
                        tracing::info!(%peer, error = %e, "framing error: closing the connection");
                        break 'read;
                    }
                }
            }
        }
        self.forget(peer, &queue);
        drop(queue);
        // The writer ends once the shard's copies of the queue are gone
        // too, after sending what was queued.
        let _ = write_task.await;
        tracing::debug!(%peer, "connection closed");
    }
}

/// Accepts connections until `stop` turns true.
pub async fn serve(listener: TcpListener, tcp: Arc<Tcp>) {
    let mut stop_accepting = tcp.stop.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop_accepting.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, from)) => {
                let (queue, outgoing) = mpsc::channel(SEND_QUEUE);
                if let Err(e) = tcp.admit(Transport::Tcp, from, queue.clone()) {
                    tracing::warn!(peer = %from, error = %e, "too many TCP connections: closing a new one");
                    crate::metrics::tcp_refused();
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let (reader, writer) = stream.into_split();
                let peer = Peer::new(Transport::Tcp, from);
                tokio::spawn(
                    Arc::clone(&tcp).serve_connection(reader, writer, peer, queue, outgoing),
                );
            }
            // Out of file descriptors and the like: the listener itself is
            // fine; back off a little rather than spin.
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
