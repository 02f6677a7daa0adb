//! One-way effects: what a session asks of the engine (quinn-proto's
//! `EndpointEvent`). A session never touches the engine's indexes or its
//! output queue; it pushes [`Effect`]s into the [`Ctx`] it was lent, and the
//! engine applies them, in order, once the session returns. That keeps the
//! dependency one way (`engine` → `call`) and makes every cross-session
//! feature (pickup, Replaces, queue agents) an engine decision.

use cdr::{CallEvent, CallEventKind, TenantId, UnixMillis};
use sip::Message;
use sip::builder::ResponseBuilder;
use sip::transaction::TransactionId;
use sip::transport::Peer;

use super::group::LastAnswered;
use super::{LegRef, TxnRole};
use crate::context::{Clock, InternalError, Services};
use crate::directory::Directory;
use crate::location::Location;
use crate::router::{ActiveCalls, Route};

/// A dialog as the engine indexes it: Call-ID and the PBX's own tag, which
/// is what an in-dialog request carries in To (and a response in From).
pub(crate) type DialogKey = (String, String);

/// What a session asks the engine to do.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Send `message` to `peer` outside any transaction (ACKs, 2xx
    /// retransmissions).
    Transmit { peer: Peer, message: Message },
    /// A CDR fact of this session.
    CallEvent(CallEvent),
    /// Route the events of transaction `txn` to this session.
    Own {
        txn: TransactionId,
        peer: Peer,
        role: TxnRole,
    },
    /// Route requests of dialog `key` to `leg` of this session.
    Index { key: DialogKey, leg: LegRef },
    /// Something that should not happen (reported, never panics).
    Internal(InternalError),
    /// A rule could not be followed as written (reported; the call ends
    /// cleanly).
    Notice(super::RoutingNotice),
    /// `member` answered a call to ring group `group` (of the session's
    /// tenant): round robin starts after it next time.
    GroupAnswered { group: String, member: String },
    /// A command for this session's media relay (`call/media.rs`).
    Media(crate::media::MediaCommand),
    /// For the engine's queue dispatcher (`call/queue.rs`).
    Queue(super::queue::QueueEffect),
}

/// What a session is lent for one input: the clock, the engine's services,
/// a read-only view of who numbers are (to reroute a call: forwarding,
/// redirects) and the list its effects go to.
pub(crate) struct Ctx<'a> {
    pub clk: Clock,
    pub sv: &'a mut Services,
    pub dir: Lookup<'a>,
    pub fx: &'a mut Vec<Effect>,
}

/// The directory, the location service and the users' call counts,
/// read-only: what [`crate::router::route`] needs.
#[derive(Clone, Copy)]
pub(crate) struct Lookup<'a> {
    pub directory: &'a Directory,
    pub location: &'a Location,
    pub active: &'a ActiveCalls,
    /// Trunks and outbound rules, and the calls through them
    /// ([`Lookup::outbound`] in `trunk.rs`).
    pub trunks: &'a crate::trunk::Trunks,
    pub trunk_calls: &'a crate::trunk::TrunkCalls,
    /// Who answered each ring group last (round robin).
    pub last_answered: &'a LastAnswered,
    /// Queues' waiting callers (a queue's `max_length`).
    pub queues: &'a super::queue_book::QueueBook,
}

impl Lookup<'_> {
    /// The stored id of the user with `extension` in `tenant`, if any: what
    /// the CDR records as the user's (see `cdr::SessionStart::caller_user`).
    pub(crate) fn user_id(&self, tenant: TenantId, extension: &str) -> Option<cdr::Id> {
        self.directory.user(tenant, extension).map(|u| u.id)
    }

    /// Routes `dialled` in `tenant` now.
    pub(crate) fn route(&self, now: std::time::Instant, tenant: TenantId, dialled: &str) -> Route {
        crate::router::route(
            self.directory,
            self.location,
            self.active,
            now,
            tenant,
            dialled,
        )
    }
}

impl Ctx<'_> {
    pub(crate) fn transmit(&mut self, peer: Peer, message: Message) {
        self.fx.push(Effect::Transmit { peer, message });
    }

    pub(crate) fn emit(&mut self, kind: CallEventKind) {
        let event = CallEvent::new(UnixMillis(self.clk.unix_ms), kind);
        self.fx.push(Effect::CallEvent(event));
    }

    pub(crate) fn internal(&mut self, error: InternalError) {
        self.fx.push(Effect::Internal(error));
    }

    /// Answers server transaction `id`; what does not build or is refused
    /// is reported, not sent.
    pub(crate) fn respond(&mut self, id: TransactionId, b: ResponseBuilder) -> Option<Message> {
        match self.sv.respond(self.clk.now, id, b) {
            Ok(m) => Some(m),
            Err(e) => {
                self.internal(e);
                None
            }
        }
    }

    /// Answers `request` with `code` and its default reason phrase.
    pub(crate) fn reply(&mut self, id: TransactionId, request: &Message, code: u16) {
        self.respond(id, ResponseBuilder::reply(request, code));
    }
}
