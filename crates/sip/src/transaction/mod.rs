//! The SIP transaction layer (RFC 3261 §17, updated by RFC 6026), sans-IO.
//!
//! DESIGN.md's "Sans-IO cores": a transaction is a value fed with
//! `handle_input(now, input)` and `handle_timeout(now)`, drained with
//! `poll_output()`, asked `poll_timeout()`. It reads no clock (`now` is
//! passed in), owns no socket (it emits [`Output::Transmit`] with the
//! [`Peer`] to send to) and draws no random numbers
//! (branches come with the request). The runtime in the binary feeds one
//! [`Transactions`] table per shard from its sockets and its timer wheel;
//! the dialog and call layers above are its TU.
//!
//! - [`ClientTransaction`]: INVITE (§17.1.1 and RFC 6026's Accepted state,
//!   Timer M) and non-INVITE (§17.1.2).
//! - [`ServerTransaction`]: INVITE (§17.2.1 and RFC 6026's Accepted state,
//!   Timer L) and non-INVITE (§17.2.2).
//! - [`TransactionKey`]: matching (§17.1.3, §17.2.3, the RFC 2543 fallback).
//! - [`Transactions`]: the table, routing received messages.
//! - [`TimerConfig`] and [`Timer`]: T1, T2, T4 and the timers derived from them.
//! - [`ack_for_failure`] and [`cancel_for`]: the requests derived from an INVITE.
//!
//! Decisions:
//!
//! - An INVITE server transaction sends `100 Trying` once the TU has taken
//!   the request on (the first `poll_output` after it was received), not
//!   after 200 ms of TU silence, and not at all when the TU answered at
//!   once: a challenge or a refusal goes alone (see
//!   [`ServerTransaction::new`]).
//! - **Amplification (UDP).** A source address on UDP is not verified, so
//!   what Tally sends to it unasked is bounded by what it received:
//!   a rejection (final status ≥ 300) is sent only if it is no larger than
//!   the request, or than [`REPLY_FLOOR`] bytes ([`reply_fits`]); a
//!   retransmitted request is answered again only within its own size;
//!   and a final non-2xx to an INVITE that got no provisional is not
//!   retransmitted on Timer G: the client, still in Calling, retransmits
//!   its INVITE (Timer A) and each copy is answered, as RFC 3261 §8.2.7's
//!   stateless UAS would. That covers the `407` challenge to an
//!   unauthenticated INVITE: no `100`, no Timer G, one response per request
//!   received.
//! - **Caps.** The table holds at most [`TransactionLimits::max_server`]
//!   server transactions, and [`TransactionLimits::max_server_per_source`]
//!   per source (an IPv4 address, an IPv6 /64). A new request beyond
//!   either is not taken: [`Received::Overloaded`] tells the TU, which
//!   answers `503` with `Retry-After` ([`overload_response`], within the
//!   same budget) and keeps no state. Client transactions are Tally's own
//!   and are not capped here.
//! - The first copy of a request is not an event: it creates the server
//!   transaction, so [`Transactions::receive`] returns it
//!   ([`Received::Request`]) together with the new id. Later copies are
//!   absorbed and answered with the last response.
//! - Responses go back to the peer the request came from (connection, or
//!   source address and port as RFC 3581 asks), never to a Via-derived
//!   address: that is what works through NAT, and a B2BUA has no upstream
//!   proxies to honour `maddr` for.
//! - The ACK for a 2xx is not part of the INVITE transaction (§17.1.1.3): the
//!   client passes every 2xx up in Accepted and the dialog layer ACKs it; on
//!   the server side an ACK that matches no transaction is handed to the TU
//!   ([`Received::Ack`]), one that does match an INVITE in Accepted (an RFC
//!   2543 peer, or one reusing the branch) becomes [`TransactionEvent::Ack`].
//! - Branches compare exactly, byte for byte: they are opaque identifiers
//!   echoed by the peer, and the magic cookie itself is case-sensitive.
//! - Retransmission deadlines are counted from the previous deadline, so
//!   they fall at exact multiples of T1; a runtime that wakes up late by
//!   more than an interval retransmits once, not in a burst.
//! - A transport error in Accepted is reported but does not end the
//!   transaction: RFC 6026 gives Accepted no such exit, and the transaction
//!   must stay to absorb INVITE retransmissions until Timer L.

mod client;
mod key;
mod requests;
mod server;
mod table;
mod timer;

use std::time::Duration;

use thiserror::Error;

use crate::builder::ResponseBuilder;
use crate::error::ParseError;
use crate::header::HeaderName;
use crate::message::Message;
use crate::transport::{Peer, Transport};

pub use client::ClientTransaction;
pub use key::{KeyError, Side, TransactionKey};
pub use requests::{ack_for_failure, cancel_for};
pub use server::ServerTransaction;
pub use table::{Limit, Received, TransactionId, TransactionStats, Transactions};
pub use timer::{Timer, TimerConfig};

/// Any response up to this size may answer a request on UDP, whatever the
/// request's size: a legitimate small REGISTER or INVITE draws a challenge
/// somewhat larger than itself (two `WWW-Authenticate`s), and this bounds
/// that to one unfragmented datagram per request received.
pub const REPLY_FLOOR: usize = 1_200;

/// Whether a rejection of `response_len` bytes may answer a request of
/// `request_len` bytes on `transport` (see the module's "Amplification").
/// Reliable transports went through a handshake: the source is real.
pub fn reply_fits(transport: Transport, request_len: usize, response_len: usize) -> bool {
    transport.is_reliable() || response_len <= request_len.max(REPLY_FLOOR)
}

/// The caps of a [`Transactions`] table (see the module's "Caps").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransactionLimits {
    /// Server transactions alive at once.
    pub max_server: usize,
    /// Server transactions alive at once from one source (IPv4 address,
    /// IPv6 /64).
    pub max_server_per_source: usize,
    /// What the `503` past a cap asks the client to wait.
    pub retry_after: Duration,
}

impl Default for TransactionLimits {
    /// 50,000 in all, 2,000 per source: a non-INVITE or an answered INVITE
    /// lives 32 s on UDP (Timers J and L), so one source at 2,000 is about
    /// 30 calls per second through one address (a trunk, a NATed office);
    /// raise it for a busier one.
    fn default() -> Self {
        TransactionLimits {
            max_server: 50_000,
            max_server_per_source: 2_000,
            retry_after: Duration::from_secs(5),
        }
    }
}

/// The `503 Service Unavailable` with `Retry-After` for a request
/// [`Received::Overloaded`] refused, sent statelessly; `None` when it
/// would not fit the request's budget ([`reply_fits`]) or the request has
/// too little to echo: drop it then.
pub fn overload_response(
    request: &Message,
    to_tag: &str,
    retry_after: Duration,
    transport: Transport,
) -> Option<Message> {
    let response = ResponseBuilder::reply(request, 503)
        .to_tag(to_tag)
        .header(HeaderName::RetryAfter, retry_after.as_secs().max(1))
        .build()
        .ok()?;
    reply_fits(
        transport,
        request.as_bytes().len(),
        response.as_bytes().len(),
    )
    .then_some(response)
}

/// The states of Figures 5–8 of RFC 3261 and RFC 6026's Accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// INVITE client: request sent, no response yet.
    Calling,
    /// Non-INVITE client: request sent, no response yet. Non-INVITE server:
    /// request received, no response sent yet.
    Trying,
    /// A provisional response received (client) or sent (server).
    Proceeding,
    /// A final response received (client) or sent (server); for INVITE, a
    /// non-2xx one.
    Completed,
    /// INVITE server: the ACK for the non-2xx final response arrived.
    Confirmed,
    /// INVITE, RFC 6026: a 2xx was received (client) or sent (server).
    Accepted,
    Terminated,
}

/// What a transaction is fed besides time.
#[derive(Clone, Debug)]
pub enum Input {
    /// A message from the network matched to this transaction: a response
    /// (client), a retransmission of the request or an ACK (server).
    Received(Message),
    /// A response from the TU (server transactions only).
    Respond(Message),
    /// The transport could not deliver what this transaction sent (ICMP
    /// unreachable, connection refused or reset, TLS failure).
    TransportError,
    /// The TU sent a CANCEL for this INVITE (client, Proceeding only: §9.1
    /// forbids a CANCEL before a provisional response). Without a final
    /// response 64·T1 later the transaction gives up: Timer B again.
    CancelSent,
}

/// What a transaction tells its TU.
#[derive(Clone, Debug)]
pub enum TransactionEvent {
    /// A 1xx to the request (client).
    Provisional(Message),
    /// A final response (client). For INVITE: the non-2xx one (already
    /// ACKed; its retransmissions are absorbed), or every 2xx, the first and
    /// any later ones (retransmissions and forks): the TU ACKs each.
    Final(Message),
    /// An ACK matched to an INVITE server transaction in Accepted (RFC 6026).
    Ack(Message),
    /// Timer B, F or H expired: no response (client) or no ACK (server).
    Timeout(Timer),
    /// The transport failed; the transaction has terminated unless it is in
    /// Accepted or Confirmed.
    TransportError,
    /// The transaction is over; nothing more comes from it.
    Terminated,
}

/// What a transaction asks of the world.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send `message` to `peer`.
    Transmit {
        peer: Peer,
        message: Message,
    },
    Event(TransactionEvent),
}

/// A request the transaction layer refuses.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TransactionError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("request Tally would send is invalid: {0}")]
    InvalidRequest(ParseError),
    #[error("expected a response")]
    NotAResponse,
    #[error("a client transaction sends no responses")]
    NotAServerTransaction,
    #[error("a {status} response cannot be sent in the {state:?} state")]
    ResponseNotAllowed { status: u16, state: State },
    #[error("the transaction has terminated")]
    Terminated,
    #[error("only an INVITE client transaction in Proceeding can be cancelled (state {state:?})")]
    NotCancellable { state: State },
    #[error("no live transaction {0}")]
    UnknownTransaction(TransactionId),
    #[error("transaction {0} already has this key (reused branch)")]
    Duplicate(TransactionId),
}

/// The next output of a transaction's queue. A transaction that lingers
/// (Completed, Confirmed, Accepted: up to 32 s per call on UDP, only to
/// absorb retransmissions) gives the queue's buffer back once it is empty:
/// it rarely sends again, and a drained queue keeps room for a few
/// messages, about a kilobyte per transaction (issue 18: memory per call).
fn drain(outputs: &mut std::collections::VecDeque<Output>, state: State) -> Option<Output> {
    let next = outputs.pop_front();
    if next.is_none()
        && outputs.capacity() > 0
        && matches!(state, State::Completed | State::Confirmed | State::Accepted)
    {
        *outputs = std::collections::VecDeque::new();
    }
    next
}

#[cfg(test)]
mod drain_tests {
    use super::*;
    use std::collections::VecDeque;

    fn queue() -> VecDeque<Output> {
        let mut q = VecDeque::new();
        q.push_back(Output::Event(TransactionEvent::Timeout(Timer::B)));
        q
    }

    #[test]
    fn a_lingering_transaction_frees_its_drained_queue() {
        for state in [State::Completed, State::Confirmed, State::Accepted] {
            let mut q = queue();
            assert!(drain(&mut q, state).is_some());
            assert!(q.capacity() > 0, "freed before it was empty");
            assert!(drain(&mut q, state).is_none());
            assert_eq!(q.capacity(), 0, "{state:?}");
        }
    }

    #[test]
    fn a_busy_transaction_keeps_its_queue() {
        for state in [State::Calling, State::Trying, State::Proceeding] {
            let mut q = queue();
            drain(&mut q, state);
            assert!(drain(&mut q, state).is_none());
            assert!(q.capacity() > 0, "{state:?}");
        }
    }
}
