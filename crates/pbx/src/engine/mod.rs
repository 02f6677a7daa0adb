//! The call engine of one shard: every SIP message the PBX receives goes in,
//! every message it sends, every CDR fact and every registration change
//! comes out. Sans-IO in the str0m / quinn-proto style (DESIGN.md, "Sans-IO
//! cores"):
//!
//! ```text
//! runtime ──Input::Received / TransportError──▶ Engine::handle_input(now, now_unix_ms, _)
//! runtime ──────── timer wheel fires ─────────▶ Engine::handle_timeout(now, now_unix_ms)
//! runtime ◀── Output::Transmit / CallEvent / BindingChanges / Event ── Engine::poll_output()
//! runtime ◀──────────── next deadline ──────── Engine::poll_timeout()
//! ```
//!
//! The engine reads no clock (both readings of "now" are passed in: an
//! [`Instant`] for timers, Unix milliseconds for CDR times and digest
//! nonces), opens no socket and draws no randomness (tags, branches and
//! Call-IDs come from the configured seed, session and target ids from a
//! [`Snowflake`] with the configured node number).
//!
//! # What it owns
//!
//! - the [`Transactions`] table (RFC 3261 §17) every message goes through;
//! - the [`Registrar`] (with its location service) and the [`Directory`]
//!   the runtime fills ([`Engine::directory_mut`]);
//! - the sessions (module `call`): one B2BUA call each, with its caller
//!   leg and its targets, indexed by dialog and by transaction.
//!
//! # What the runtime does with the outputs
//!
//! - [`Output::Transmit`]: send the message to the peer (on its connection
//!   for TCP/TLS/WS). A failed send is reported back as
//!   [`Input::TransportError`].
//! - [`Output::CallEvent`]: fold into the session's `cdr::Builder` and commit
//!   through the store (DESIGN.md, "The CDR pipeline"). Events come in the
//!   order the builder expects; every session that emits `SessionStarted`
//!   ends with exactly one `SessionEnded`.
//! - [`Output::BindingChanges`]: persist (upsert live, delete the others).
//! - [`Output::Event`]: log once, count.
//!
//! # Requests, in the order the engine decides
//!
//! 1. [`sip::validate::check_request`] / [`check_response`]: a defective
//!    request gets the `400` of [`sip::validate::reject`], sent statelessly;
//!    a defective response is dropped ([`EngineEvent::Dropped`]).
//! 2. The transaction layer absorbs retransmissions and routes responses.
//! 3. A request with a To tag belongs to a dialog: the session that owns
//!    the dialog handles it, else `481`.
//! 4. Out of dialog: `REGISTER` → registrar; `OPTIONS` → `200` with
//!    `Allow`; `INVITE` → a new call (authentication, then routing);
//!    dialog-only methods (`BYE`, `UPDATE`, `INFO`, `PRACK`) → `481`;
//!    other known methods → `405`; unknown methods → `501`.
//!
//! INVITE authentication is in the `auth` submodule; call handling in the
//! crate's `call` module.
//!
//! # One shard for now
//!
//! DESIGN.md's runtime runs N shards, each owning its calls outright. This
//! engine is one shard's state; the runtime runs one. Sharding later means:
//! N engines sharing the registrar's location (read-mostly), the shard
//! number encoded in the Call-IDs and branches the engine generates (so
//! responses and in-dialog requests route back without a lookup), and
//! new INVITEs spread by Call-ID hash.

mod auth;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use cdr::{CallEvent, InvalidNode, SessionId, Snowflake, TenantId};
use sip::builder::{ResponseBuilder, ViaValue};
use sip::dialog::{DialogId, Local};
use sip::transaction::{
    Output as TxnOutput, Received, TimerConfig, TransactionEvent, TransactionId, TransactionLimits,
    TransactionStats, Transactions, overload_response, reply_fits,
};
use sip::transport::{Peer, Transport};
use sip::validate::{check_request, check_response};
use sip::{HeaderName, Message, Method};

use crate::call::{LegRef, Session, TxnRole};
use crate::directory::Directory;
use crate::ids::{IdGenerator, IdSource, mix};
use crate::location::BindingChange;
use crate::registrar::{
    AuthFailure, RegisterError, Registrar, RegistrarConfig, RegistrarEvent, SourceKey,
};

/// The methods the PBX handles, for `Allow` (RFC 3261 §20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER";

/// Settings of an [`Engine`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// This node's number in Snowflake ids (< 1024), unique in the cluster.
    pub node: u16,
    /// The digest nonce key, shared by the nodes of a cluster.
    pub nonce_key: [u8; 32],
    /// Seed of every tag, branch, Call-ID and nonce salt (random per process).
    pub seed: u64,
    /// `host:port` the PBX writes in Via and Contact, per transport (the
    /// address phones reach it at). A transport without an entry uses the
    /// first entry.
    pub advertised: Vec<(Transport, String)>,
    pub registrar: RegistrarConfig,
    pub timers: TimerConfig,
    /// Caps on server transactions (503 beyond them).
    pub transaction_limits: TransactionLimits,
    /// How often expired bindings are swept.
    pub sweep_interval: Duration,
}

impl EngineConfig {
    /// Defaults for everything but the node, the key, the seed and the address.
    pub fn new(node: u16, nonce_key: [u8; 32], seed: u64, advertised: &str) -> Self {
        EngineConfig {
            node,
            nonce_key,
            seed,
            advertised: vec![(Transport::Udp, advertised.to_owned())],
            registrar: RegistrarConfig::default(),
            timers: TimerConfig::default(),
            transaction_limits: TransactionLimits::default(),
            sweep_interval: Duration::from_secs(1),
        }
    }
}

/// What the runtime feeds the engine.
// Nearly every input is a message: boxing it would cost an allocation per
// message to save bytes on the rare transport error.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Input {
    /// A message parsed from a datagram or a stream, with where it came from.
    Received { peer: Peer, message: Message },
    /// A message the engine asked to send to `peer` could not be delivered
    /// (ICMP unreachable, connection refused or reset, TLS failure).
    TransportError { peer: Peer },
    /// The node is stopping and the calls still in progress must end now,
    /// with whole CDRs rather than `recovered` ones at the next start (see
    /// [`Engine::handle_input`]).
    HangUpAll,
}

/// What the engine asks of the runtime.
#[derive(Clone, Debug)]
pub enum Output {
    Transmit {
        peer: Peer,
        message: Message,
    },
    /// A CDR fact about `session`, to fold with `cdr::Builder`.
    CallEvent {
        session: SessionId,
        tenant: TenantId,
        event: CallEvent,
    },
    /// Registration changes to persist, in order.
    BindingChanges(Vec<BindingChange>),
    Event(EngineEvent),
}

/// Something worth a log line and a counter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineEvent {
    /// From the registrar (REGISTER authentication failures, blocks).
    Registrar(RegistrarEvent),
    /// An INVITE failed authentication (counted by the same throttle as
    /// REGISTER failures).
    InviteAuthFailed {
        source: SourceKey,
        reason: AuthFailure,
        tenant: Option<TenantId>,
        user: Option<String>,
    },
    /// That INVITE failure blocked its source until `until`.
    SourceBlocked { source: SourceKey, until: Instant },
    /// An INVITE refused unread because its source is blocked.
    InviteRefusedBlocked { source: SourceKey, until: Instant },
    /// A message was dropped without an answer.
    Dropped { peer: Peer, reason: String },
    /// Something the engine could not do that should not happen (a message
    /// it built did not parse, a transaction refused it). Each is a bug.
    Internal {
        session: Option<SessionId>,
        detail: String,
    },
}

/// Why [`Engine::new`] refused its configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Node(#[from] InvalidNode),
}

/// The two readings of "now" every entry point gets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    pub now: Instant,
    pub unix_ms: u64,
}

impl Clock {
    pub(crate) fn unix_secs(&self) -> u64 {
        self.unix_ms / 1000
    }
}

/// Which transaction belongs to which session, and why.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owner {
    pub session: SessionId,
    pub peer: Peer,
    pub role: TxnRole,
}

/// A dialog as the engine indexes it: Call-ID and the PBX's own tag, which
/// is what an in-dialog request carries in To (and a response in From).
pub(crate) type DialogKey = (String, String);

/// Via and Contact for one request the PBX sends.
pub(crate) struct LocalParts {
    transport: Transport,
    pub sent_by: String,
    pub branch: String,
    pub contact: String,
}

impl LocalParts {
    pub(crate) fn local(&self) -> Local<'_> {
        Local {
            via: self.via(),
            contact: &self.contact,
        }
    }

    pub(crate) fn via(&self) -> ViaValue<'_> {
        ViaValue {
            transport: self.transport.as_str(),
            sent_by: &self.sent_by,
            branch: &self.branch,
        }
    }
}

/// Everything a session needs besides itself: the transaction table, the
/// output queue, the id sources and the indexes that route messages to it.
pub(crate) struct Shared {
    pub txns: Transactions,
    pub out: VecDeque<Output>,
    pub ids: IdSource,
    /// Session and target ids.
    pub snowflake: Box<dyn IdGenerator>,
    pub timers: TimerConfig,
    advertised: Vec<(Transport, String)>,
    pub owners: HashMap<TransactionId, Owner>,
    pub dialogs: HashMap<DialogKey, (SessionId, LegRef)>,
}

impl Shared {
    /// `host:port` for Via and Contact on `transport`.
    pub(crate) fn sent_by(&self, transport: Transport) -> &str {
        self.advertised
            .iter()
            .find(|(t, _)| *t == transport)
            .or(self.advertised.first())
            .map_or("tally.invalid", |(_, a)| a.as_str())
    }

    /// The PBX's Contact on `transport`.
    pub(crate) fn contact(&self, transport: Transport) -> String {
        let sent_by = self.sent_by(transport);
        match transport {
            Transport::Udp => format!("<sip:tally@{sent_by}>"),
            t => format!(
                "<sip:tally@{sent_by};transport={}>",
                t.as_str().to_ascii_lowercase()
            ),
        }
    }

    /// Via (with a fresh branch) and Contact for a request sent on `transport`.
    pub(crate) fn local_parts(&mut self, transport: Transport) -> LocalParts {
        LocalParts {
            transport,
            sent_by: self.sent_by(transport).to_owned(),
            branch: self.ids.branch(),
            contact: self.contact(transport),
        }
    }

    pub(crate) fn event(&mut self, event: EngineEvent) {
        self.out.push_back(Output::Event(event));
    }

    pub(crate) fn internal(&mut self, session: Option<SessionId>, detail: impl Into<String>) {
        self.event(EngineEvent::Internal {
            session,
            detail: detail.into(),
        });
    }

    /// Answers server transaction `id`; a response that does not build or
    /// that the transaction refuses is reported, not sent.
    pub(crate) fn respond(
        &mut self,
        clk: Clock,
        session: Option<SessionId>,
        id: TransactionId,
        response: ResponseBuilder,
    ) -> Option<Message> {
        let message = match response.build() {
            Ok(m) => m,
            Err(e) => {
                self.internal(session, format!("response does not build: {e}"));
                return None;
            }
        };
        match self.txns.respond(clk.now, id, message.clone()) {
            Ok(()) => Some(message),
            Err(e) => {
                self.internal(session, format!("{id} refused a response: {e}"));
                None
            }
        }
    }
}

/// The call engine of one shard. See the module documentation.
pub struct Engine {
    shared: Shared,
    registrar: Registrar,
    directory: Directory,
    sessions: HashMap<SessionId, Session>,
    /// Session deadlines (ring timeouts, 2xx retransmissions), ordered.
    deadlines: BTreeSet<(Instant, SessionId)>,
    /// The deadline each session has in `deadlines`.
    indexed: HashMap<SessionId, Instant>,
    sweep_interval: Duration,
    next_sweep: Option<Instant>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("sessions", &self.sessions.len())
            .field("transactions", &self.shared.txns.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine whose session and target ids come from a [`Snowflake`]
    /// of its own for `config.node`.
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        let snowflake = Snowflake::new(config.node)?;
        Ok(Engine::with_ids(config, Box::new(snowflake)))
    }

    /// An engine whose session and target ids come from `ids`: the node's
    /// one generator, shared with whatever else makes ids on the node
    /// (`config.node` is then not used).
    pub fn with_ids(config: EngineConfig, ids: Box<dyn IdGenerator>) -> Engine {
        let snowflake = ids;
        Engine {
            shared: Shared {
                txns: Transactions::with_limits(config.timers, config.transaction_limits),
                out: VecDeque::new(),
                ids: IdSource::new(mix(config.seed ^ 0x656e_6769_6e65)),
                snowflake,
                timers: config.timers,
                advertised: config.advertised,
                owners: HashMap::new(),
                dialogs: HashMap::new(),
            },
            registrar: Registrar::new(
                config.registrar,
                config.nonce_key,
                mix(config.seed ^ 0x7265_6769_7374_6172),
            ),
            directory: Directory::new(),
            sessions: HashMap::new(),
            deadlines: BTreeSet::new(),
            indexed: HashMap::new(),
            sweep_interval: config.sweep_interval.max(Duration::from_millis(1)),
            next_sweep: None,
        }
    }

    /// The directory, for the runtime to fill from the store and keep in
    /// step with provisioning.
    pub fn directory_mut(&mut self) -> &mut Directory {
        &mut self.directory
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// The registrar and, through it, the location service.
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// The registrar, e.g. to [`Registrar::restore`] persisted bindings.
    pub fn registrar_mut(&mut self) -> &mut Registrar {
        &mut self.registrar
    }

    /// Sessions held: calls in progress and ended calls still absorbing
    /// retransmissions.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Live transactions.
    pub fn transactions(&self) -> usize {
        self.shared.txns.len()
    }

    /// The transaction table's counters, for metrics.
    pub fn transaction_stats(&self) -> TransactionStats {
        self.shared.txns.stats()
    }

    /// Feeds one input.
    pub fn handle_input(&mut self, now: Instant, now_unix_ms: u64, input: Input) {
        let clk = Clock {
            now,
            unix_ms: now_unix_ms,
        };
        self.next_sweep.get_or_insert(now + self.sweep_interval);
        match input {
            Input::Received { peer, message } => self.on_message(clk, peer, message),
            Input::TransportError { peer } => self.on_transport_error(clk, peer),
            Input::HangUpAll => self.hang_up_all(clk),
        }
        self.drain(clk);
    }

    /// Calls in progress: sessions that have not emitted `SessionEnded`.
    pub fn calls_in_progress(&self) -> usize {
        self.sessions.values().filter(|s| !s.is_over()).count()
    }

    /// [`Input::HangUpAll`]: the PBX ends every call in progress itself.
    /// An answered call gets BYE on both legs and ends with `None` (no
    /// party hung up); a call still ringing gets `503` on the caller leg
    /// and CANCEL to every target, each target failing with 503. The CDR
    /// facts are emitted at once (a session ends when its BYE is sent), so
    /// the runtime can commit them and stop without waiting for answers.
    fn hang_up_all(&mut self, clk: Clock) {
        let mut ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        // In creation order, so that a run replays identically.
        ids.sort_unstable();
        for id in ids {
            if let Some(s) = self.sessions.get_mut(&id) {
                s.hang_up_all(&mut self.shared, clk);
            }
            self.settle(id);
        }
    }

    /// Time passed: fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, now_unix_ms: u64) {
        let clk = Clock {
            now,
            unix_ms: now_unix_ms,
        };
        self.shared.txns.handle_timeout(now);
        self.drain(clk);
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.indexed.remove(&id);
            if let Some(s) = self.sessions.get_mut(&id) {
                s.on_timeout(&mut self.shared, clk);
            }
            self.settle(id);
            self.drain(clk);
        }
        if self.next_sweep.is_some_and(|at| at <= now) {
            self.next_sweep = Some(now + self.sweep_interval);
            let changes = self.registrar.handle_timeout(now, clk.unix_secs());
            if !changes.is_empty() {
                self.shared.out.push_back(Output::BindingChanges(changes));
            }
        }
    }

    /// The next output, if any. Drain it in a loop after every input and
    /// timeout.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.shared.out.pop_front()
    }

    /// When [`Engine::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.shared.txns.poll_timeout(),
            self.deadlines.first().map(|&(at, _)| at),
            self.next_sweep,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_message(&mut self, clk: Clock, peer: Peer, message: Message) {
        if message.is_request() {
            if let Err(e) = check_request(&message) {
                let tag = self.shared.ids.tag();
                match sip::validate::reject(&message, &e, &tag).filter(|r| {
                    reply_fits(peer.transport, message.as_bytes().len(), r.as_bytes().len())
                }) {
                    Some(r) => self
                        .shared
                        .out
                        .push_back(Output::Transmit { peer, message: r }),
                    None => self.dropped(peer, format!("unanswerable request: {e}")),
                }
                return;
            }
        } else if let Err(e) = check_response(&message) {
            self.dropped(peer, format!("invalid response: {e}"));
            return;
        }
        let received = match self.shared.txns.receive(clk.now, peer, message) {
            Ok(r) => r,
            Err(e) => return self.dropped(peer, format!("unmatchable message: {e}")),
        };
        match received {
            Received::Existing(_) => {}
            Received::Request { id, request } => self.on_request(clk, peer, id, request),
            Received::Cancel {
                id,
                request,
                invite,
            } => self.on_cancel(clk, id, request, invite),
            Received::Overloaded {
                request,
                limit,
                retry_after,
            } => match overload_response(
                &request,
                &self.shared.ids.tag(),
                retry_after,
                peer.transport,
            ) {
                Some(r) => self
                    .shared
                    .out
                    .push_back(Output::Transmit { peer, message: r }),
                None => self.dropped(peer, format!("transaction cap ({limit:?}) reached")),
            },
            Received::Ack(ack) => self.on_ack(Some(peer), ack),
            Received::StrayResponse(response) => self.on_stray_response(peer, response),
        }
    }

    fn on_request(&mut self, clk: Clock, peer: Peer, id: TransactionId, request: Message) {
        let Some(method) = request.method().cloned() else {
            return;
        };
        let in_dialog = request.to().is_ok_and(|to| to.tag().is_some());
        if in_dialog {
            let owner = DialogId::of_received(&request)
                .ok()
                .and_then(|d| self.shared.dialogs.get(&(d.call_id, d.local_tag)).copied());
            match owner {
                Some((sid, leg)) => {
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        s.on_request(&mut self.shared, clk, leg, id, request);
                    }
                    self.settle(sid);
                }
                None => self.reply(clk, id, &request, 481, None),
            }
            return;
        }
        match method {
            Method::Register => self.on_register(clk, peer, id, request),
            Method::Options => {
                let tag = self.shared.ids.tag();
                let b = ResponseBuilder::reply(&request, 200)
                    .to_tag(tag)
                    .header(HeaderName::Allow, ALLOW)
                    .header(HeaderName::Accept, "application/sdp");
                self.shared.respond(clk, None, id, b);
            }
            Method::Invite => self.on_invite(clk, peer, id, request),
            Method::Bye | Method::Update | Method::Info | Method::Prack => {
                self.reply(clk, id, &request, 481, None)
            }
            Method::Other(_) => self.reply(clk, id, &request, 501, None),
            _ => self.reply(clk, id, &request, 405, Some(ALLOW)),
        }
    }

    /// A response with the default reason phrase (and `Allow` for a 405).
    fn reply(
        &mut self,
        clk: Clock,
        id: TransactionId,
        request: &Message,
        code: u16,
        allow: Option<&str>,
    ) {
        let tag = self.shared.ids.tag();
        let mut b = ResponseBuilder::reply(request, code).to_tag(tag);
        if let Some(allow) = allow {
            b = b.header(HeaderName::Allow, allow);
        }
        self.shared.respond(clk, None, id, b);
    }

    fn on_register(&mut self, clk: Clock, peer: Peer, id: TransactionId, request: Message) {
        let outcome = self.registrar.handle_register(
            &self.directory,
            clk.now,
            clk.unix_secs(),
            peer,
            &request,
        );
        match outcome {
            Ok(o) => {
                if let Err(e) = self.shared.txns.respond(clk.now, id, o.response) {
                    self.shared
                        .internal(None, format!("{id} refused a REGISTER response: {e}"));
                }
                if !o.changes.is_empty() {
                    self.shared.out.push_back(Output::BindingChanges(o.changes));
                }
                for e in o.events {
                    self.shared.event(EngineEvent::Registrar(e));
                }
            }
            Err(RegisterError::Unanswerable(e)) => {
                self.dropped(peer, format!("unanswerable REGISTER: {e}"))
            }
            Err(e) => self.shared.internal(None, format!("REGISTER: {e}")),
        }
    }

    fn on_invite(&mut self, clk: Clock, peer: Peer, id: TransactionId, request: Message) {
        let caller = match self.authenticate_invite(clk, peer, &request) {
            auth::InviteAuth::Caller(caller) => caller,
            auth::InviteAuth::Refused(response) => {
                self.shared.respond(clk, None, id, response);
                return;
            }
        };
        let dialled = request
            .request_uri()
            .and_then(Result::ok)
            .and_then(|u| u.sip().and_then(|s| s.user_unescaped()))
            .and_then(|u| String::from_utf8(u.into_owned()).ok())
            .unwrap_or_default();
        let route = crate::router::route(
            &self.directory,
            self.registrar.location(),
            clk.now,
            caller.tenant.id,
            &dialled,
        );
        let session_id = self
            .shared
            .snowflake
            .next_session(cdr::UnixMillis(clk.unix_ms));
        let session = Session::start(
            &mut self.shared,
            clk,
            crate::call::Start {
                session_id,
                tenant: caller.tenant,
                caller: caller.party,
                dialled,
                peer,
                invite: request,
                server: id,
                route,
            },
        );
        self.sessions.insert(session_id, session);
        self.settle(session_id);
    }

    fn on_cancel(
        &mut self,
        clk: Clock,
        id: TransactionId,
        request: Message,
        invite: Option<TransactionId>,
    ) {
        let owner = invite.and_then(|i| self.shared.owners.get(&i).copied());
        match owner {
            Some(Owner {
                session,
                role: TxnRole::CallerInvite,
                ..
            }) => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.on_cancel(&mut self.shared, clk, id, &request);
                }
                self.settle(session);
            }
            // The INVITE is known but already answered (or was answered by
            // the engine itself, e.g. a 407): the CANCEL succeeds, changes
            // nothing (RFC 3261 §9.2).
            _ if invite.is_some() => self.reply(clk, id, &request, 200, None),
            _ => self.reply(clk, id, &request, 481, None),
        }
    }

    /// An ACK for a 2xx, routed by its dialog; `peer` when it came from
    /// the network rather than through a transaction (which answered
    /// anything it needed to).
    fn on_ack(&mut self, peer: Option<Peer>, ack: Message) {
        let owner = DialogId::of_received(&ack)
            .ok()
            .and_then(|d| self.shared.dialogs.get(&(d.call_id, d.local_tag)).copied());
        match owner {
            Some((sid, leg)) => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.on_ack(&mut self.shared, leg, &ack);
                }
                self.settle(sid);
            }
            None => {
                if let Some(peer) = peer {
                    self.dropped(peer, format!("ACK outside any dialog: {}", ack.summary()));
                }
            }
        }
    }

    fn on_stray_response(&mut self, peer: Peer, response: Message) {
        // A 2xx to an INVITE after Timer M: the peer did not get our ACK.
        let owner = DialogId::of_received(&response)
            .ok()
            .and_then(|d| self.shared.dialogs.get(&(d.call_id, d.local_tag)).copied());
        let is_2xx_invite = response.status().is_some_and(|c| (200..300).contains(&c))
            && response.cseq().is_ok_and(|c| c.method == Method::Invite);
        match owner {
            Some((sid, leg)) if is_2xx_invite => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.on_stray_2xx(&mut self.shared, leg, &response);
                }
            }
            _ => self.dropped(peer, format!("stray response: {}", response.summary())),
        }
    }

    fn on_transport_error(&mut self, clk: Clock, peer: Peer) {
        let mut failed: Vec<TransactionId> = self
            .shared
            .owners
            .iter()
            .filter(|(_, o)| o.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        // In creation order, so that a run replays identically.
        failed.sort_unstable();
        for id in failed {
            self.shared.txns.transport_error(clk.now, id);
        }
    }

    /// Routes the transaction layer's outputs until none is left: messages
    /// to the runtime, events to the sessions owning the transactions.
    fn drain(&mut self, clk: Clock) {
        while let Some((id, out)) = self.shared.txns.poll_output() {
            match out {
                TxnOutput::Transmit { peer, message } => self
                    .shared
                    .out
                    .push_back(Output::Transmit { peer, message }),
                // An ACK that matched an INVITE server transaction in
                // Accepted (a peer reusing the INVITE's branch, RFC 6026):
                // the same ACK as any other for the dialog layer.
                TxnOutput::Event(TransactionEvent::Ack(ack)) => self.on_ack(None, ack),
                TxnOutput::Event(TransactionEvent::Terminated) => {
                    if let Some(owner) = self.shared.owners.remove(&id) {
                        if let Some(s) = self.sessions.get_mut(&owner.session) {
                            s.txn_terminated(id);
                        }
                        self.settle(owner.session);
                    }
                }
                TxnOutput::Event(event) => {
                    if let Some(owner) = self.shared.owners.get(&id).copied() {
                        if let Some(s) = self.sessions.get_mut(&owner.session) {
                            s.on_txn_event(&mut self.shared, clk, id, owner.role, event);
                        }
                        self.settle(owner.session);
                    }
                }
            }
        }
    }

    /// After a session acted: move its deadline in the index, and drop it
    /// once it has ended and nothing of it is left in flight.
    fn settle(&mut self, id: SessionId) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        let next = s.next_deadline();
        let finished = s.is_finished();
        let old = self.indexed.get(&id).copied();
        if old != next || finished {
            if let Some(old) = old {
                self.deadlines.remove(&(old, id));
                self.indexed.remove(&id);
            }
            if let (Some(at), false) = (next, finished) {
                self.deadlines.insert((at, id));
                self.indexed.insert(id, at);
            }
        }
        if finished && let Some(s) = self.sessions.remove(&id) {
            for key in s.dialog_keys() {
                self.shared.dialogs.remove(key);
            }
        }
    }

    fn dropped(&mut self, peer: Peer, reason: String) {
        self.shared.event(EngineEvent::Dropped { peer, reason });
    }
}
