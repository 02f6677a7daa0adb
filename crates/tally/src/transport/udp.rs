//! The UDP listener: one socket for receiving and for every datagram the
//! PBX sends, so replies leave from the port phones sent to.

use std::sync::Arc;

use bytes::Bytes;
use sip::transport::{Peer, Transport};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::{Counters, Inbound, Verdict, is_keepalive};
use crate::shard::ShardInput;

/// Largest datagram read (the UDP maximum; SIP messages are far smaller,
/// and [`Inbound`]'s limits refuse oversized ones precisely).
const MAX_DATAGRAM: usize = 65_535;

/// The receive buffer asked of the kernel: about a second of datagrams at
/// 2,500 calls/s (7 received per call, ~1 KB each, with the kernel's
/// bookkeeping doubling it), so a burst that arrives while the PBX is busy
/// waits in the socket instead of being dropped (the default, ~200 KB,
/// dropped hundreds of datagrams a second at 1,500 calls/s). Linux caps
/// it at `net.core.rmem_max`; what was granted is logged.
pub const RECEIVE_BUFFER: usize = 16 << 20;

/// Asks for [`RECEIVE_BUFFER`] bytes of receive buffer on `socket` and
/// logs what the kernel granted; returns it (0 if it cannot be read).
pub fn raise_receive_buffer(socket: &UdpSocket) -> usize {
    let socket = socket2::SockRef::from(socket);
    if let Err(e) = socket.set_recv_buffer_size(RECEIVE_BUFFER) {
        tracing::warn!(error = %e, "cannot set the SIP UDP socket's receive buffer");
    }
    match socket.recv_buffer_size() {
        Ok(granted) => {
            if granted < RECEIVE_BUFFER {
                tracing::warn!(
                    granted,
                    wanted = RECEIVE_BUFFER,
                    "SIP UDP receive buffer smaller than wanted: raise net.core.rmem_max \
                     (sysctl) so bursts are not dropped"
                );
            } else {
                tracing::info!(granted, "SIP UDP receive buffer");
            }
            granted
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the SIP UDP socket's receive buffer size");
            0
        }
    }
}

/// Reads datagrams until `stop` turns true.
pub async fn serve(
    socket: Arc<UdpSocket>,
    inbound: Arc<Inbound>,
    shard: mpsc::Sender<ShardInput>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (len, from) = match received {
            Ok(r) => r,
            // ICMP errors surface here on some systems; they concern an
            // earlier send, not this socket's health.
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        let data = &buf[..len];
        if is_keepalive(data) {
            continue;
        }
        let peer = Peer::new(Transport::Udp, from);
        match inbound.judge(Bytes::copy_from_slice(data)) {
            Verdict::Forward(message) => match shard.try_send(ShardInput::Sip { peer, message }) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    Counters::bump(&inbound.counters.overload);
                    tracing::warn!(%peer, "shard queue full: datagram dropped");
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            },
            Verdict::Answer { response, reason } => {
                tracing::info!(%peer, %reason, "rejected request");
                if let Err(e) = socket.send_to(&response, from).await {
                    tracing::debug!(%peer, error = %e, "could not send a rejection");
                }
            }
            Verdict::Drop(reason) => tracing::debug!(%peer, %reason, "dropped message"),
            Verdict::Tapped => {}
        }
    }
}
