//! The SIP thread (issue 18, DESIGN.md "Runtime"): the shard and the UDP
//! socket's reader run together on one OS thread of their own, under a
//! current-thread tokio runtime.
//!
//! On the shared multi-thread runtime a datagram crossed from the task
//! that read it to the shard's task, often on the other worker, and every
//! such hand-off could wake a parked worker (a futex wake and a context
//! switch, the largest cost per call at low rates: `perf` showed the
//! scheduler, not SIP, on top). Here the reader and the shard take turns
//! on one thread: a datagram is parsed and handled without leaving it,
//! and the thread sleeps in `epoll_wait` only when both are idle.
//!
//! Everything else stays on the main runtime: the REST API, the TCP and
//! TLS connections (their frames reach the shard through its queue, as
//! before), the CDR commit task, delivery, and the media relays. What the
//! shard starts while handling an input (a relay, an outbound TCP
//! connection) is spawned on the main runtime ([`Shard::with_spawner`]),
//! so RTP never competes with signalling for this thread.
//!
//! The UDP socket is registered with this thread's reactor; the
//! [`crate::transport::Transmitter`] sends on it from any thread
//! (`try_send_to` needs no reactor turn), so trunk keep-alives sent from
//! the main runtime leave from the same port. The thread lives until
//! `close` (after the shard has stopped and the trunks have unregistered),
//! so the socket outlives every sender.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use crate::shard::{Shard, ShardInput};
use crate::transport::{Inbound, udp};

/// The SIP thread's runtime, before the thread starts: sockets that its
/// reader serves must be made inside it ([`SipRuntime::udp_socket`]).
pub struct SipRuntime(tokio::runtime::Runtime);

impl SipRuntime {
    pub fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the SIP thread's runtime")?;
        Ok(SipRuntime(runtime))
    }

    /// `socket` registered with this runtime's reactor.
    pub fn udp_socket(&self, socket: std::net::UdpSocket) -> anyhow::Result<Arc<UdpSocket>> {
        let _inside = self.0.enter();
        socket
            .set_nonblocking(true)
            .context("SIP UDP socket: non-blocking mode")?;
        Ok(Arc::new(
            UdpSocket::from_std(socket).context("SIP UDP socket: registering it")?,
        ))
    }
}

/// What the UDP reader needs.
pub struct UdpReader {
    pub socket: Arc<UdpSocket>,
    pub inbound: Arc<Inbound>,
    pub shard: mpsc::Sender<ShardInput>,
}

/// The running thread.
pub struct SipThread {
    /// The shard's result: the calls it hung up when the grace ended.
    shard_done: oneshot::Receiver<usize>,
    thread: std::thread::JoinHandle<()>,
}

impl SipThread {
    /// Starts the thread: the shard runs until stopped and drained (see
    /// [`Shard::run`]); the reader, if any, until `close`.
    pub fn start(
        runtime: SipRuntime,
        shard: Shard,
        input: mpsc::Receiver<ShardInput>,
        stop: watch::Receiver<bool>,
        grace: Duration,
        reader: Option<UdpReader>,
        close: watch::Receiver<bool>,
    ) -> anyhow::Result<SipThread> {
        let (done_tx, shard_done) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("sip".to_owned())
            .spawn(move || {
                let runtime = runtime.0;
                runtime.block_on(async move {
                    let shard = async move {
                        let hung_up = shard.run(input, stop, grace).await;
                        let _ = done_tx.send(hung_up);
                    };
                    let reader = async move {
                        if let Some(r) = reader {
                            udp::serve(r.socket, r.inbound, r.shard, close).await;
                        }
                    };
                    tokio::join!(shard, reader);
                });
            })
            .context("cannot start the SIP thread")?;
        Ok(SipThread { shard_done, thread })
    }

    /// Waits for the shard to stop; the calls it hung up at the end.
    pub async fn shard_stopped(&mut self) -> anyhow::Result<usize> {
        (&mut self.shard_done)
            .await
            .context("the shard stopped without a result (it panicked)")
    }

    /// Waits for the thread to end (after `close`).
    pub async fn join(self) -> anyhow::Result<()> {
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .context("joining the SIP thread")?
            .map_err(|_| anyhow::anyhow!("the SIP thread panicked"))
    }
}
