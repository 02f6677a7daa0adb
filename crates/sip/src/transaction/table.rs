//! [`Transactions`]: every live transaction of one shard, the index that
//! routes received messages to them, and one deadline index for all their
//! timers.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::message::{Message, Method};
use crate::transport::Peer;

use super::client::ClientTransaction;
use super::key::TransactionKey;
use super::requests::cancel_for;
use super::server::ServerTransaction;
use super::timer::TimerConfig;
use super::{Input, Output, State, TransactionError, TransactionLimits};

/// Names a transaction within one [`Transactions`] table. Ids are never
/// reused, so a late event for a finished transaction cannot reach a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(u64);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "txn-{}", self.0)
    }
}

/// What [`Transactions::receive`] made of a message.
#[derive(Debug)]
pub enum Received {
    /// It belonged to a live transaction: a response, a retransmitted
    /// request, an ACK for a non-2xx. Whatever the TU must see of it is
    /// queued in [`Transactions::poll_output`].
    Existing(TransactionId),
    /// A new request (not ACK, not CANCEL): server transaction `id` holds it
    /// now; answer it with [`Transactions::respond`]. An INVITE has already
    /// been answered `100 Trying`.
    Request { id: TransactionId, request: Message },
    /// A new CANCEL, in server transaction `id` of its own. `invite` is the
    /// INVITE server transaction it cancels (§9.2), `None` when there is none
    /// (the TU answers 481). The TU answers the CANCEL itself (200), and the
    /// INVITE with 487 if it is still unanswered.
    Cancel {
        id: TransactionId,
        request: Message,
        invite: Option<TransactionId>,
    },
    /// A new request (CANCEL included) the table did not take because a
    /// cap is reached (the module's "Caps"): no state was kept. Answer it
    /// with [`super::overload_response`] (`503`, `Retry-After`), or drop it.
    Overloaded {
        request: Message,
        limit: Limit,
        retry_after: Duration,
    },
    /// An ACK matching no transaction: the ACK for a 2xx (§17.1.1.3: its
    /// own transaction), for the dialog layer.
    Ack(Message),
    /// A response matching no client transaction: a 2xx retransmitted after
    /// Timer M, or a response to a request Tally never sent. RFC 6026 §7.1
    /// says a UA drops it; the TU decides (and logs).
    StrayResponse(Message),
}

/// Which cap refused a request ([`Received::Overloaded`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`TransactionLimits::max_server`].
    Total,
    /// [`TransactionLimits::max_server_per_source`].
    PerSource,
}

/// Counters of one table, for metrics: the live ones are gauges, the
/// others count since the table was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransactionStats {
    pub server: usize,
    pub client: usize,
    /// Requests refused by [`Limit::Total`].
    pub refused_total: u64,
    /// Requests refused by [`Limit::PerSource`].
    pub refused_per_source: u64,
    /// Rejections (and their retransmissions) not sent because they were
    /// larger than the request's budget ([`super::reply_fits`]).
    pub suppressed: u64,
}

/// The key a per-source cap counts by: an IPv4 address, or an IPv6 /64
/// (one subscriber's allocation; counting single IPv6 addresses would let
/// one host take 2^64 shares).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Boxed: a transaction holds whole messages, and the table moves entries.
#[derive(Debug)]
enum Txn {
    Client(Box<ClientTransaction>),
    Server(Box<ServerTransaction>),
}

impl Txn {
    fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), TransactionError> {
        match self {
            Txn::Client(t) => t.handle_input(now, input),
            Txn::Server(t) => t.handle_input(now, input),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Txn::Client(t) => t.handle_timeout(now),
            Txn::Server(t) => t.handle_timeout(now),
        }
    }

    fn poll_output(&mut self) -> Option<Output> {
        match self {
            Txn::Client(t) => t.poll_output(),
            Txn::Server(t) => t.poll_output(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Txn::Client(t) => t.poll_timeout(),
            Txn::Server(t) => t.poll_timeout(),
        }
    }

    fn state(&self) -> State {
        match self {
            Txn::Client(t) => t.state(),
            Txn::Server(t) => t.state(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    key: TransactionKey,
    /// A server transaction's [`source_key`], counted in the per-source cap.
    source: Option<IpAddr>,
    /// The deadline this transaction has in the index, kept to remove it.
    deadline: Option<Instant>,
    txn: Txn,
}

/// The transaction layer of one shard: client and server transactions by
/// key, with one ordered index of their deadlines so that
/// [`Transactions::handle_timeout`] touches only the transactions whose
/// timers expired. A transaction is dropped the moment it terminates.
#[derive(Debug)]
pub struct Transactions {
    config: TimerConfig,
    next_id: u64,
    entries: HashMap<TransactionId, Entry>,
    by_key: HashMap<TransactionKey, TransactionId>,
    deadlines: BTreeSet<(Instant, TransactionId)>,
    outputs: VecDeque<(TransactionId, Output)>,
    limits: TransactionLimits,
    /// Live server transactions per [`source_key`].
    per_source: HashMap<IpAddr, usize>,
    /// Server transactions created since the last `poll_output`: their
    /// outputs (an INVITE's `100`) wait until the TU has had its say.
    fresh: Vec<TransactionId>,
    stats: TransactionStats,
}

impl Transactions {
    /// A table with the default [`TransactionLimits`].
    pub fn new(config: TimerConfig) -> Transactions {
        Transactions::with_limits(config, TransactionLimits::default())
    }

    pub fn with_limits(config: TimerConfig, limits: TransactionLimits) -> Transactions {
        Transactions {
            config,
            next_id: 0,
            entries: HashMap::new(),
            by_key: HashMap::new(),
            deadlines: BTreeSet::new(),
            outputs: VecDeque::new(),
            limits,
            per_source: HashMap::new(),
            fresh: Vec::new(),
            stats: TransactionStats::default(),
        }
    }

    /// Live transactions and what the caps and budgets refused.
    pub fn stats(&self) -> TransactionStats {
        self.stats
    }

    /// Routes a message received from `peer`. It should have passed
    /// [`crate::validate::check_request`] or
    /// [`crate::validate::check_response`]; a message the matching rules
    /// cannot read (no Via, no CSeq…) is an error, and nothing changes.
    pub fn receive(
        &mut self,
        now: Instant,
        peer: Peer,
        message: Message,
    ) -> Result<Received, TransactionError> {
        if message.is_response() {
            let key = TransactionKey::response(&message)?;
            return Ok(match self.by_key.get(&key).copied() {
                Some(id) => {
                    self.feed(now, id, message);
                    Received::Existing(id)
                }
                None => Received::StrayResponse(message),
            });
        }
        let key = TransactionKey::server(&message)?;
        let method = message.method();
        let is_ack = method == Some(&Method::Ack);
        if let Some(id) = self.find_server(&key, is_ack) {
            self.feed(now, id, message);
            return Ok(Received::Existing(id));
        }
        if is_ack {
            return Ok(Received::Ack(message));
        }
        let cancels = if method == Some(&Method::Cancel) {
            Some(
                self.by_key
                    .get(&TransactionKey::cancel_target(&message)?)
                    .copied(),
            )
        } else {
            None
        };
        let source = source_key(peer.addr.ip());
        let limit = if self.stats.server >= self.limits.max_server {
            Some(Limit::Total)
        } else if self.per_source.get(&source).copied().unwrap_or(0)
            >= self.limits.max_server_per_source
        {
            Some(Limit::PerSource)
        } else {
            None
        };
        if let Some(limit) = limit {
            match limit {
                Limit::Total => self.stats.refused_total += 1,
                Limit::PerSource => self.stats.refused_per_source += 1,
            }
            return Ok(Received::Overloaded {
                request: message,
                limit,
                retry_after: self.limits.retry_after,
            });
        }
        let txn = ServerTransaction::new(peer, &message, self.config)?;
        let id = self.insert(key, Some(source), Txn::Server(Box::new(txn)));
        Ok(match cancels {
            Some(invite) => Received::Cancel {
                id,
                request: message,
                invite,
            },
            None => Received::Request {
                id,
                request: message,
            },
        })
    }

    /// Starts a client transaction sending `request` to `peer`. The request
    /// must carry a fresh RFC 3261 branch (the caller's randomness) and must
    /// not be an ACK: the ACK for a 2xx is sent outside any transaction
    /// (§17.1.1.3), the one for a non-2xx by the INVITE transaction itself.
    pub fn send_request(
        &mut self,
        now: Instant,
        peer: Peer,
        request: Message,
    ) -> Result<TransactionId, TransactionError> {
        let key = TransactionKey::client(&request)?;
        if let Some(&id) = self.by_key.get(&key) {
            return Err(TransactionError::Duplicate(id));
        }
        let txn = ClientTransaction::new(now, peer, request, self.config)?;
        Ok(self.insert(key, None, Txn::Client(Box::new(txn))))
    }

    /// Sends the TU's response in server transaction `id`.
    pub fn respond(
        &mut self,
        now: Instant,
        id: TransactionId,
        response: Message,
    ) -> Result<(), TransactionError> {
        let entry = self
            .entries
            .get_mut(&id)
            .ok_or(TransactionError::UnknownTransaction(id))?;
        let result = entry.txn.handle_input(now, Input::Respond(response));
        self.settle(id);
        result
    }

    /// Cancels INVITE client transaction `id` (§9.1): the CANCEL, built by
    /// [`cancel_for`], goes to the INVITE's peer in a client transaction of
    /// its own (whose id is returned), and the INVITE gives up 64·T1 later
    /// unless a final response (normally 487) arrives. Only in Proceeding:
    /// before a provisional response a CANCEL must not be sent (wait for the
    /// [`TransactionEvent::Provisional`](super::TransactionEvent::Provisional)),
    /// after a final one there is nothing left to cancel.
    pub fn cancel(
        &mut self,
        now: Instant,
        id: TransactionId,
    ) -> Result<TransactionId, TransactionError> {
        let entry = self
            .entries
            .get_mut(&id)
            .ok_or(TransactionError::UnknownTransaction(id))?;
        entry.txn.handle_input(now, Input::CancelSent)?;
        let Txn::Client(invite) = &entry.txn else {
            // Refused above: only a client transaction accepts CancelSent.
            return Err(TransactionError::NotCancellable {
                state: entry.txn.state(),
            });
        };
        let peer = invite.peer();
        // CancelSent passed: the INVITE is in Proceeding, request kept.
        let cancel = match invite.request() {
            Some(request) => cancel_for(request).map_err(TransactionError::InvalidRequest),
            None => Err(TransactionError::NotCancellable {
                state: invite.state(),
            }),
        };
        self.settle(id);
        self.send_request(now, peer, cancel?)
    }

    /// Reports that the transport could not deliver a message transaction
    /// `id` sent. A report for a transaction that is gone is ignored: it
    /// raced with the transaction's end.
    pub fn transport_error(&mut self, now: Instant, id: TransactionId) {
        if let Some(entry) = self.entries.get_mut(&id) {
            // Never refused: TransportError is valid in every state.
            let _ = entry.txn.handle_input(now, Input::TransportError);
            self.settle(id);
        }
    }

    /// Fires every timer due at `now`, in deadline order.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            due.push(id);
        }
        for id in due {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.deadline = None;
                entry.txn.handle_timeout(now);
                self.settle(id);
            }
        }
    }

    /// The next message to send or event for the TU, with the transaction it
    /// comes from (report a failed send with [`Transactions::transport_error`]).
    /// Call it after the TU has handled what [`Transactions::receive`]
    /// returned: a new INVITE the TU has not answered by then gets its
    /// `100 Trying` here.
    pub fn poll_output(&mut self) -> Option<(TransactionId, Output)> {
        for id in std::mem::take(&mut self.fresh) {
            self.settle(id);
        }
        self.outputs.pop_front()
    }

    /// When [`Transactions::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(at, _)| at)
    }

    /// The state of a live transaction; `None` once it has terminated.
    pub fn state(&self, id: TransactionId) -> Option<State> {
        self.entries.get(&id).map(|e| e.txn.state())
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find_server(&self, key: &TransactionKey, is_ack: bool) -> Option<TransactionId> {
        if let Some(&id) = self.by_key.get(key) {
            return Some(id);
        }
        if !is_ack {
            return None;
        }
        // An RFC 2543 ACK carries the To tag of the response, which the
        // INVITE did not have (§17.2.3).
        let (invite_key, ack_to_tag) = key.rfc2543_ack_fallback()?;
        let id = *self.by_key.get(&invite_key)?;
        let Txn::Server(invite) = &self.entries.get(&id)?.txn else {
            return None;
        };
        let sent_tag = invite.sent_to_tag()?;
        (sent_tag == ack_to_tag).then_some(id)
    }

    fn feed(&mut self, now: Instant, id: TransactionId, message: Message) {
        if let Some(entry) = self.entries.get_mut(&id) {
            // Never refused: a received message is absorbed if out of place.
            let _ = entry.txn.handle_input(now, Input::Received(message));
            self.settle(id);
        }
    }

    fn insert(&mut self, key: TransactionKey, source: Option<IpAddr>, txn: Txn) -> TransactionId {
        let id = TransactionId(self.next_id);
        self.next_id += 1;
        let server = matches!(txn, Txn::Server(_));
        if server {
            self.stats.server += 1;
        } else {
            self.stats.client += 1;
        }
        if let Some(source) = source {
            *self.per_source.entry(source).or_default() += 1;
        }
        self.by_key.insert(key.clone(), id);
        self.entries.insert(
            id,
            Entry {
                key,
                source,
                deadline: None,
                txn,
            },
        );
        if server {
            // Settled at the next poll_output, after the TU answered or not.
            self.fresh.push(id);
        } else {
            self.settle(id);
        }
        id
    }

    /// After a transaction acted: queue its outputs, move its deadline in
    /// the index, and drop it if it terminated.
    fn settle(&mut self, id: TransactionId) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        while let Some(out) = entry.txn.poll_output() {
            self.outputs.push_back((id, out));
        }
        if let Txn::Server(t) = &mut entry.txn {
            self.stats.suppressed += u64::from(t.take_suppressed());
        }
        let next = entry.txn.poll_timeout();
        if next != entry.deadline {
            if let Some(old) = entry.deadline {
                self.deadlines.remove(&(old, id));
            }
            if let Some(new) = next {
                self.deadlines.insert((new, id));
            }
            entry.deadline = next;
        }
        if entry.txn.state() == State::Terminated {
            if let Some(old) = entry.deadline {
                self.deadlines.remove(&(old, id));
            }
            if let Some(entry) = self.entries.remove(&id) {
                self.by_key.remove(&entry.key);
                match entry.txn {
                    Txn::Server(_) => self.stats.server -= 1,
                    Txn::Client(_) => self.stats.client -= 1,
                }
                if let Some(source) = entry.source
                    && let Some(n) = self.per_source.get_mut(&source)
                {
                    *n -= 1;
                    if *n == 0 {
                        self.per_source.remove(&source);
                    }
                }
            }
        }
    }
}
