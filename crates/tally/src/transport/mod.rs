//! SIP transports: UDP, TCP and TLS listeners on tokio (DESIGN.md, "Runtime").
//!
//! Parsing happens on the receiving task: every datagram or stream frame
//! is parsed with [`Message::parse_with`] and every request is checked with
//! [`sip::validate::check_request`] before it reaches the shard, so a
//! defective request is answered (`400` with a reason phrase naming the
//! defect, `505`, `513`) by the task that read it and counted, unless the
//! answer would be larger than the request (then it is dropped: no
//! amplification), and the shard only sees messages its layers can trust.
//! Responses are never answered: a broken one is dropped here
//! (unparsable) or by the engine.
//!
//! The shard's [`Output::Transmit`](pbx::Output::Transmit)s go back out
//! through a [`Transmitter`]: UDP from the listening socket (so replies are
//! symmetric to the source, which is what NATed phones need), TCP on the
//! connection the peer opened, or on one the PBX opens to it when that one
//! has closed (module [`tcp`]), TLS likewise, to the phone's Contact
//! (module [`tls`]). A `sips:` request goes over TLS or not at all.

pub mod tcp;
pub mod tls;
pub mod udp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use sip::transport::{Peer, Transport};
use sip::{Limits, Message};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// What the receiving task does with one datagram or frame.
pub enum Verdict {
    /// A message the shard can trust (a checked request, or a response).
    Forward(Message),
    /// Answer the sender with this, and go on.
    Answer { response: Bytes, reason: String },
    /// Nothing to answer (a broken response, an ACK, a request with too
    /// little to echo).
    Drop(String),
    /// A response handed to the task that sent its request ([`Taps`]).
    Tapped,
}

/// Tasks outside the shard that send requests through the PBX's own
/// sockets and connections (the trunks' registration and keep-alive:
/// `trunks::live`), by the Call-ID of their requests: the answers go to
/// them instead of the shard. Their requests leave from the SIP port, so
/// a carrier answers (and calls) the address the PBX registered from.
#[derive(Debug, Default)]
pub struct Taps {
    map: Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>,
}

impl Taps {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<Message>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Responses with `call_id` go to `to` from now on.
    pub fn add(&self, call_id: &str, to: mpsc::UnboundedSender<Message>) {
        self.lock().insert(call_id.to_owned(), to);
    }

    pub fn remove(&self, call_id: &str) {
        self.lock().remove(call_id);
    }

    /// Hands `response` to its tap; gives it back when it has none (or
    /// its task is gone).
    pub fn divert(&self, response: Message) -> Option<Message> {
        let Ok(call_id) = response.call_id() else {
            return Some(response);
        };
        let map = self.lock();
        match map.get(call_id) {
            Some(tap) => tap.send(response).err().map(|e| e.0),
            None => Some(response),
        }
    }
}

/// Counters of what the transports refused; logged at shutdown.
#[derive(Debug, Default)]
pub struct Counters {
    pub rejected: AtomicU64,
    pub dropped: AtomicU64,
    /// UDP messages dropped because the shard's queue was full (treated
    /// like packet loss: the peer retransmits).
    pub overload: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Parses and checks received bytes, and everything needed to answer a
/// defective request: limits, To tags, counters. Shared by every
/// receiving task.
#[derive(Debug)]
pub struct Inbound {
    limits: Limits,
    tag_seed: u64,
    tags: AtomicU64,
    pub counters: Counters,
    pub taps: Taps,
}

impl Inbound {
    pub fn new(limits: Limits, tag_seed: u64) -> Self {
        Inbound {
            limits,
            tag_seed,
            tags: AtomicU64::new(0),
            counters: Counters::default(),
            taps: Taps::default(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A fresh To tag for a stateless rejection.
    pub fn tag(&self) -> String {
        // A SplitMix64 stream over a per-process random seed, shared by
        // the transport tasks through the counter: unique and unguessable
        // enough for a tag, which RFC 3261 §19.3 only asks to be unique.
        let n = self.tags.fetch_add(1, Ordering::Relaxed);
        format!("{:x}", cdr::SplitMix64::draw(self.tag_seed, n))
    }

    pub fn judge(&self, raw: Bytes) -> Verdict {
        let message = match Message::parse_with(raw.clone(), &self.limits) {
            Ok(m) => m,
            Err(e) => {
                let answer = sip::validate::reject_unparsable(&raw, &e)
                    .filter(|r| within_budget(raw.len(), r.len()));
                return match answer {
                    Some(response) => {
                        Counters::bump(&self.counters.rejected);
                        Verdict::Answer {
                            response: Bytes::from(response),
                            reason: format!("unparsable request: {e}"),
                        }
                    }
                    None => {
                        Counters::bump(&self.counters.dropped);
                        Verdict::Drop(format!("unparsable message: {e}"))
                    }
                };
            }
        };
        if !message.is_request() {
            return match self.taps.divert(message) {
                Some(message) => Verdict::Forward(message),
                None => Verdict::Tapped,
            };
        }
        match sip::validate::check_request(&message) {
            Ok(()) => Verdict::Forward(message),
            Err(e) => match sip::validate::reject(&message, &e, &self.tag())
                .filter(|r| within_budget(message.as_bytes().len(), r.as_bytes().len()))
            {
                Some(response) => {
                    Counters::bump(&self.counters.rejected);
                    Verdict::Answer {
                        response: response.as_bytes().clone(),
                        reason: format!("{}: {e}", message.summary()),
                    }
                }
                None => {
                    Counters::bump(&self.counters.dropped);
                    Verdict::Drop(format!("unanswerable request: {e}"))
                }
            },
        }
    }
}

/// Whether a stateless rejection of `response` bytes may answer `request`
/// bytes. Judged by the UDP rule whatever the transport
/// (`sip::transaction::reply_fits`): a request that failed its checks
/// gets no more than it carried, on a stream too.
fn within_budget(request: usize, response: usize) -> bool {
    sip::transaction::reply_fits(Transport::Udp, request, response)
}

/// Why a message could not be handed to the network.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no {0} listener")]
    NoListener(Transport),
    #[error("no open connection to {0}")]
    NoConnection(SocketAddr),
    #[error("a sips: request cannot go over {0}")]
    NeedsTls(Transport),
    #[error("the connection's send queue is full")]
    ConnectionBacklog,
    #[error("{0} TCP connections are open already (sip.tcp_max_connections)")]
    TooManyConnections(usize),
    #[error("{1} TCP connections with {0} are open already (sip.tcp_max_connections_per_source)")]
    TooManyFromSource(IpAddr, usize),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The open TCP connections, by the peer's address, each with the queue
/// its writer task drains, and how many each IP address holds.
#[derive(Debug, Default)]
pub struct Connections {
    map: Mutex<ConnectionTable>,
}

#[derive(Debug, Default)]
struct ConnectionTable {
    queues: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionTable> {
        // The map stays consistent whatever a panicking holder did.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `peer`'s connection unless that would pass `max` in all or
    /// `max_per_source` for its IP address (checked and counted under one
    /// lock, so a burst of accepts cannot overshoot).
    pub fn admit(
        &self,
        peer: SocketAddr,
        queue: mpsc::Sender<Bytes>,
        max: usize,
        max_per_source: usize,
    ) -> Result<(), SendError> {
        let mut t = self.lock();
        if !t.queues.contains_key(&peer) {
            if t.queues.len() >= max {
                return Err(SendError::TooManyConnections(max));
            }
            let n = t.per_ip.get(&peer.ip()).copied().unwrap_or(0);
            if n >= max_per_source {
                return Err(SendError::TooManyFromSource(peer.ip(), max_per_source));
            }
            *t.per_ip.entry(peer.ip()).or_default() += 1;
        }
        t.queues.insert(peer, queue);
        Ok(())
    }

    /// Forgets `peer`'s connection if it is still the one with `queue`.
    pub fn remove(&self, peer: SocketAddr, queue: &mpsc::Sender<Bytes>) {
        let mut t = self.lock();
        if t.queues.get(&peer).is_some_and(|q| q.same_channel(queue)) {
            t.queues.remove(&peer);
            if let Some(n) = t.per_ip.get_mut(&peer.ip()) {
                *n -= 1;
                if *n == 0 {
                    t.per_ip.remove(&peer.ip());
                }
            }
        }
    }

    pub(crate) fn queue(&self, peer: SocketAddr) -> Option<mpsc::Sender<Bytes>> {
        self.lock().queues.get(&peer).cloned()
    }

    /// Open connections (and outbound ones being opened).
    pub fn len(&self) -> usize {
        self.lock().queues.len()
    }
}

/// Sends the shard's messages. Never waits: a UDP socket that cannot take
/// a datagram now is packet loss, a TCP connection whose queue is full is
/// a transport error the engine is told about; a TCP peer with no open
/// connection gets one opened in the background.
#[derive(Clone, Debug)]
pub struct Transmitter {
    udp: Option<Arc<UdpSocket>>,
    tcp: Arc<tcp::Tcp>,
}

impl Transmitter {
    pub fn new(udp: Option<Arc<UdpSocket>>, tcp: Arc<tcp::Tcp>) -> Self {
        Transmitter { udp, tcp }
    }

    pub fn send(&self, peer: Peer, data: Bytes) -> Result<(), SendError> {
        if peer.transport != Transport::Tls && tls::requires_tls(&data) {
            return Err(SendError::NeedsTls(peer.transport));
        }
        match peer.transport {
            Transport::Udp => {
                let socket = self
                    .udp
                    .as_ref()
                    .ok_or(SendError::NoListener(Transport::Udp))?;
                match socket.try_send_to(&data, peer.addr) {
                    Ok(_) => Ok(()),
                    // The socket buffer is full: lost, like on the wire.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Transport::Tcp => push(&self.tcp.queue_or_connect(peer.addr)?, data, peer.addr),
            Transport::Tls => push(
                &self.tcp.tls_queue_or_connect(peer.addr, &data)?,
                data,
                peer.addr,
            ),
            other => Err(SendError::NoListener(other)),
        }
    }
}

/// Queues `data` on a connection's writer without waiting.
fn push(queue: &mpsc::Sender<Bytes>, data: Bytes, peer: SocketAddr) -> Result<(), SendError> {
    queue.try_send(data).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => SendError::ConnectionBacklog,
        mpsc::error::TrySendError::Closed(_) => SendError::NoConnection(peer),
    })
}

/// Whether a datagram is only whitespace: the CRLF keep-alives many phones
/// send over UDP (RFC 5626 §4.4.1 defines them for streams; phones send
/// them on UDP too). Not SIP, not an error.
pub fn is_keepalive(data: &[u8]) -> bool {
    !data.is_empty()
        && data
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound() -> Inbound {
        Inbound::new(Limits::default(), 7)
    }

    #[test]
    fn a_defective_request_is_answered_with_its_defect() {
        let raw = "OPTIONS sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
                   From: <sip:a@b>;tag=1\r\nTo: <sip:pbx>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
                   Content-Length: 0\r\n\r\n";
        let Verdict::Answer { response, .. } = inbound().judge(Bytes::from(raw)) else {
            panic!("not answered");
        };
        let r = Message::parse(response).unwrap();
        assert_eq!(r.status(), Some(400));
        assert!(
            r.reason_phrase()
                .is_some_and(|p| !p.is_empty() && p != "Bad Request")
        );
    }

    #[test]
    fn responses_are_never_answered() {
        let broken = "SIP/2.0 2x0 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
                      From: <sip:a@b>;tag=1\r\nTo: <sip:pbx>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let v = inbound().judge(Bytes::from(broken));
        assert!(matches!(v, Verdict::Drop(_)));
    }

    #[test]
    fn responses_with_a_tap_go_to_it_and_others_to_the_shard() {
        let i = inbound();
        let (tx, mut rx) = mpsc::unbounded_channel();
        i.taps.add("trunk-reg-1", tx);
        let response = |call_id: &str| {
            Bytes::from(format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\n\
                 From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: {call_id}\r\n\
                 CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
            ))
        };
        assert!(matches!(i.judge(response("trunk-reg-1")), Verdict::Tapped));
        assert_eq!(rx.try_recv().unwrap().call_id().ok(), Some("trunk-reg-1"));
        assert!(matches!(i.judge(response("a-call")), Verdict::Forward(_)));
        // A request with the tapped Call-ID still goes to the shard.
        let request = "OPTIONS sip:pbx SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKy\r\n\
                       Max-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:pbx>\r\n\
                       Call-ID: trunk-reg-1\r\nCSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(i.judge(Bytes::from(request)), Verdict::Forward(_)));
        // Its task gone, or removed: to the shard again.
        drop(rx);
        assert!(matches!(
            i.judge(response("trunk-reg-1")),
            Verdict::Forward(_)
        ));
        i.taps.remove("trunk-reg-1");
        assert!(matches!(
            i.judge(response("trunk-reg-1")),
            Verdict::Forward(_)
        ));
    }

    #[test]
    fn keepalives_are_recognised() {
        assert!(is_keepalive(b"\r\n\r\n"));
        assert!(is_keepalive(b"\r\n"));
        assert!(!is_keepalive(b""));
        assert!(!is_keepalive(b"OPTIONS"));
    }

    #[test]
    fn tags_do_not_repeat() {
        let i = inbound();
        assert_ne!(i.tag(), i.tag());
    }
}
