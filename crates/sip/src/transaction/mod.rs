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
//! - An INVITE server transaction sends `100 Trying` the moment it is
//!   created, not after 200 ms of TU silence (see [`ServerTransaction::new`]).
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

use thiserror::Error;

use crate::error::ParseError;
use crate::message::Message;
use crate::transport::Peer;

pub use client::ClientTransaction;
pub use key::{KeyError, Side, TransactionKey};
pub use requests::{ack_for_failure, cancel_for};
pub use server::ServerTransaction;
pub use table::{Received, TransactionId, Transactions};
pub use timer::{Timer, TimerConfig};

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
