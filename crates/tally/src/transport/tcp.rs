//! The TCP listener: one task per connection reading frames with
//! [`StreamFramer`] (answering RFC 5626 keep-alive pings), and one writer
//! task per connection draining the queue the [`Transmitter`](super::Transmitter)
//! fills. Responses and requests to a peer go on the connection it opened.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sip::framing::{Frame, PONG, StreamFramer};
use sip::transport::{Peer, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::{Connections, Inbound, Verdict};
use crate::shard::ShardInput;

/// Messages that may wait for one connection's writer.
const SEND_QUEUE: usize = 256;

/// Accepts connections until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    inbound: Arc<Inbound>,
    connections: Arc<Connections>,
    shard: mpsc::Sender<ShardInput>,
    stop: watch::Receiver<bool>,
) {
    let mut stop_accepting = stop.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop_accepting.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, from)) => {
                tokio::spawn(connection(
                    stream,
                    from,
                    Arc::clone(&inbound),
                    Arc::clone(&connections),
                    shard.clone(),
                    stop.clone(),
                ));
            }
            // Out of file descriptors and the like: the listener itself is
            // fine; back off a little rather than spin.
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    from: SocketAddr,
    inbound: Arc<Inbound>,
    connections: Arc<Connections>,
    shard: mpsc::Sender<ShardInput>,
    mut stop: watch::Receiver<bool>,
) {
    let peer = Peer::new(Transport::Tcp, from);
    // SIP messages are small and latency matters more than segment count.
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (queue, mut outgoing) = mpsc::channel::<Bytes>(SEND_QUEUE);
    connections.insert(from, queue.clone());
    let write_task = tokio::spawn(async move {
        while let Some(data) = outgoing.recv().await {
            if writer.write_all(&data).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    tracing::debug!(%peer, "connection opened");

    let mut framer = StreamFramer::new(inbound.limits());
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let read = tokio::select! {
            r = reader.read(&mut buf) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        match read {
            Ok(0) => break,
            Ok(n) => framer.push(&buf[..n]),
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
                Ok(Some(Frame::Message(raw))) => match inbound.judge(raw) {
                    Verdict::Forward(message) => {
                        if shard.send(ShardInput::Sip { peer, message }).await.is_err() {
                            break 'read;
                        }
                    }
                    Verdict::Answer { response, reason } => {
                        tracing::info!(%peer, %reason, "rejected request");
                        if queue.send(response).await.is_err() {
                            break 'read;
                        }
                    }
                    Verdict::Drop(reason) => tracing::debug!(%peer, %reason, "dropped message"),
                },
                // Nothing after a framing error can be trusted to start a
                // message (sip::framing): close the connection.
                Err(e) => {
                    tracing::info!(%peer, error = %e, "framing error: closing the connection");
                    break 'read;
                }
            }
        }
    }
    connections.remove(from, &queue);
    drop(queue);
    // The writer ends once the shard's copies of the queue are gone too,
    // after sending what was queued.
    let _ = write_task.await;
    tracing::debug!(%peer, "connection closed");
}
