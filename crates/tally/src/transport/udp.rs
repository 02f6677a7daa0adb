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
        }
    }
}
