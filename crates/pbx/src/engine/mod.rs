//! The call engine of one shard: every SIP message the PBX receives goes in,
//! every message it sends, every CDR fact and every registration change
//! comes out. Sans-IO in the str0m / quinn-proto style (DESIGN.md, "Sans-IO
//! cores"):
//!
//! ```text
//! runtime ──Input::Received / TransportError /
//!           Drain / HangUpAll / directory changes ─▶ Engine::handle_input(now, now_unix_ms, _)
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
//! crate's `call` module. A session is lent the [`Services`] (transaction
//! table, id sources, addresses) for one input and hands back
//! `call::Effect`s; only the engine writes its indexes (which session owns
//! a transaction, a dialog) and its output queue.
//!
//! # Policy that lives here, not in the runtime
//!
//! - **Shutdown** ([`Input::Drain`]): new calls (INVITEs outside a dialog)
//!   get `503` with `Warning: 399 tally "Shutting down"`, sent statelessly
//!   (a retransmission gets another); calls in progress go on until none is
//!   left ([`Engine::is_drained`]) or the grace period ends, when the engine
//!   hangs up the rest itself, as for [`Input::HangUpAll`], and reports
//!   [`EngineEvent::GraceOver`].
//! - **Overload** ([`Input::Overload`]): while the runtime reports it (its
//!   CDR queue is past its high-water mark), new calls get `503` with
//!   `Retry-After: 5` and `Warning: 399 tally "Overloaded"`, statelessly;
//!   calls in progress go on, so their records are never refused.
//! - **Directory changes that drop bindings** ([`Input::RemoveTenant`],
//!   [`Input::RemoveUser`], [`Input::ReplaceDirectory`]): a user or tenant
//!   that leaves the directory loses its bindings in the same step, so its
//!   devices never ring for the number's next owner.
//!
//! # One shard for now
//!
//! DESIGN.md's runtime runs N shards, each owning its calls outright. This
//! engine is one shard's state; the runtime runs one. Sharding later means:
//! N engines sharing the registrar's location (read-mostly), the shard
//! number encoded in the Call-IDs and branches the engine generates (so
//! responses and in-dialog requests route back without a lookup), and
//! new INVITEs spread by Call-ID hash.

/// The read-only view of directory, location and counts a session routes
/// through ([`Lookup`]), borrowed field by field so that the services
/// (`self.sv`) can be lent mutably beside it. One definition for every
/// place the engine runs or starts a session.
macro_rules! lookup {
    ($engine:expr) => {
        $crate::call::Lookup {
            directory: &$engine.directory,
            location: $engine.registrar.location(),
            active: &$engine.active,
            trunks: &$engine.trunks,
            trunk_calls: &$engine.trunk_calls,
            last_answered: &$engine.last_answered,
            queues: &$engine.queues,
        }
    };
}

mod agent_codes;
mod auth;
mod control;
mod pickup;
mod queues;
mod sessions;
mod transfer;
mod trunks;

pub use trunks::TrunkRefusal;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use cdr::{CallEvent, InvalidNode, SessionId, Snowflake, SplitMix64, TenantId};
use sip::builder::ResponseBuilder;
use sip::dialog::DialogId;
use sip::transaction::{
    Received, TimerConfig, TransactionError, TransactionId, TransactionLimits, TransactionStats,
    overload_response, reply_fits,
};
use sip::transport::{Peer, Transport};
use sip::validate::{check_request, check_response};
use sip::{HeaderName, Message, Method, ParseError};

use crate::call::{Ctx, DialogKey, Effect, LastAnswered, LegRef, Session, TxnRole};
pub use crate::context::ALLOW;
use crate::context::{Clock, InternalError, Services};
use crate::directory::Directory;
use crate::ids::{IdGenerator, IdSource};
use crate::location::BindingChange;
use crate::router::ActiveCalls;
pub use agent_codes::AgentLogin;
pub use control::{Control, ControlReply, Originate, OriginateError};

/// The users one session counts against (see [`Session::holds`]).
type Held = [Option<String>; 2];
use crate::registrar::{
    AuthFailure, RegisterError, Registrar, RegistrarConfig, RegistrarEvent, SourceKey,
};

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
    /// `transfer.on_failure`: what a failed blind transfer leaves.
    pub transfer_on_failure: crate::call::TransferOnFailure,
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
            transfer_on_failure: Default::default(),
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
    /// The node is stopping: refuse new calls, let the calls in progress
    /// end by themselves for up to `grace`, then hang up the rest (see the
    /// module documentation).
    Drain { grace: Duration },
    /// The runtime cannot take more calls for now (its CDR queue is past
    /// its high-water mark) or can again: while `true`, new calls get `503`
    /// with `Retry-After` (see the module documentation).
    Overload(bool),
    /// The node is stopping and the calls still in progress must end now,
    /// with whole CDRs rather than `recovered` ones at the next start (see
    /// [`Engine::handle_input`]).
    HangUpAll,
    /// A tenant left the directory: it and its bindings are forgotten.
    RemoveTenant(TenantId),
    /// A user left the directory: it and its bindings are forgotten.
    RemoveUser { tenant: TenantId, extension: String },
    /// The whole directory, reloaded from the store (another node changed
    /// it): users and tenants missing from it lose their bindings.
    ReplaceDirectory(Box<Directory>),
    /// Trunks, DID and outbound rules and outbound permissions, reloaded
    /// after a provisioning change: new calls route with them (calls in
    /// progress keep the trunks they had).
    ReplaceTrunks(Box<crate::trunk::Trunks>),
    /// The live side's word on a trunk: `down` (its registration failed,
    /// or its OPTIONS keep-alives go unanswered) or up again. A trunk
    /// down is skipped by outbound routing without an INVITE.
    TrunkDown {
        trunk: crate::trunk::TrunkId,
        down: bool,
    },
    /// The relay of `session` saw no RTP for its timeout: the call is
    /// hung up (`call/media.rs`).
    MediaTimeout { session: SessionId },
    /// The caller of `session` pressed `digit` (RFC 4733, reported by the
    /// relay while the PBX holds the call: an IVR).
    Digit { session: SessionId, digit: char },
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
    /// An agent's feature code changed its queues' state: to persist.
    AgentLogin(AgentLogin),
    /// A command for the media relay of `session` (see [`crate::media`]).
    Media {
        session: SessionId,
        tenant: TenantId,
        command: crate::media::MediaCommand,
    },
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
    Dropped { peer: Peer, reason: DropReason },
    /// The shutdown's grace period ended with `calls` still in progress;
    /// the engine hung them up.
    GraceOver { calls: usize },
    /// A call could not be moved where a forwarding rule said (an external
    /// number without trunks, a loop): the call ended, its CDR says how.
    Routing {
        session: SessionId,
        notice: crate::call::RoutingNotice,
    },
    /// A carrier's INVITE refused (its source is a trunk's): no DID rule,
    /// the trunk at its call limit.
    TrunkCallRefused {
        peer: Peer,
        trunk: String,
        reason: TrunkRefusal,
    },
    /// Something the engine could not do that should not happen (a message
    /// it built did not parse, a transaction refused it). Each is a bug.
    Internal {
        session: Option<SessionId>,
        detail: InternalError,
    },
}

/// Why a message was dropped without an answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// A request too broken to answer (no Via, From, To, Call-ID or CSeq
    /// to echo).
    #[error("unanswerable request: {0}")]
    UnanswerableRequest(ParseError),
    #[error("invalid response: {0}")]
    InvalidResponse(ParseError),
    /// The transaction layer could not match it (no usable Via or CSeq).
    #[error("unmatchable message: {0}")]
    Unmatchable(TransactionError),
    #[error("unanswerable REGISTER: {0}")]
    UnanswerableRegister(ParseError),
    /// An ACK for no dialog the PBX knows (its summary line).
    #[error("ACK outside any dialog: {0}")]
    AckOutsideDialog(String),
    /// A response no transaction waits for (its summary line).
    #[error("stray response: {0}")]
    StrayResponse(String),
    /// A new request past a transaction cap whose `503` would have been
    /// larger than the request (no amplification).
    #[error("transaction cap ({0:?}) reached")]
    TransactionCap(sip::transaction::Limit),
}

/// Why [`Engine::new`] refused its configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Node(#[from] InvalidNode),
}

/// Which transaction belongs to which session, and why.
#[derive(Clone, Copy, Debug)]
struct Owner {
    session: SessionId,
    peer: Peer,
    role: TxnRole,
}

/// Where the engine stands in a shutdown ([`Input::Drain`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shutdown {
    Running,
    /// New calls are refused; what is left is hung up at `until`.
    Draining {
        until: Instant,
    },
    /// The grace period ended and `hung_up` calls were hung up.
    GraceOver {
        hung_up: usize,
    },
}

/// The call engine of one shard. See the module documentation.
pub struct Engine {
    sv: Services,
    out: VecDeque<Output>,
    /// Effects of the session being run, applied when it returns.
    effects: Vec<Effect>,
    owners: HashMap<TransactionId, Owner>,
    /// ACKs of dropped sessions' targets, by INVITE client transaction,
    /// until it ends: a 2xx retransmitted there is ACKed again
    /// ([`Session::lingering_acks`]).
    acks: HashMap<TransactionId, (Peer, crate::call::SentAck)>,
    dialogs: HashMap<DialogKey, (SessionId, LegRef)>,
    registrar: Registrar,
    directory: Directory,
    /// Boxed: a `Session` is ~2.9 KB, and a map of values keeps up to twice
    /// its length in slots (and both tables while it grows); a box is 8 bytes
    /// per slot (issue 18: memory per live call).
    sessions: HashMap<SessionId, Box<Session>>,
    /// How many calls each user is in, and which users each session counts
    /// against (what [`Session::holds`] said when it last settled).
    active: ActiveCalls,
    held: HashMap<SessionId, Held>,
    /// Trunks and routing rules (`trunks.rs`), the calls through them, and
    /// which trunks each session counts against.
    trunks: crate::trunk::Trunks,
    trunk_calls: crate::trunk::TrunkCalls,
    trunk_held: HashMap<SessionId, crate::call::TrunkUse>,
    /// Who answered each ring group last (round robin; `call/group.rs`).
    last_answered: LastAnswered,
    /// Queues' waiting callers and agents (`engine/queues.rs`).
    queues: crate::call::QueueBook,
    /// Session deadlines (ring timeouts, 2xx retransmissions), ordered.
    deadlines: BTreeSet<(Instant, SessionId)>,
    /// The deadline each session has in `deadlines`.
    indexed: HashMap<SessionId, Instant>,
    sweep_interval: Duration,
    next_sweep: Option<Instant>,
    shutdown: Shutdown,
    /// [`Input::Overload`]: new calls are refused while set.
    overloaded: bool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("sessions", &self.sessions.len())
            .field("transactions", &self.sv.txns.len())
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
        let mut sv = Services::new(
            config.timers,
            config.transaction_limits,
            IdSource::new(SplitMix64::mix(config.seed ^ 0x656e_6769_6e65)),
            ids,
            config.advertised,
        );
        sv.transfer_on_failure = config.transfer_on_failure;
        Engine {
            sv,
            out: VecDeque::new(),
            effects: Vec::new(),
            owners: HashMap::new(),
            acks: HashMap::new(),
            dialogs: HashMap::new(),
            registrar: Registrar::new(
                config.registrar,
                config.nonce_key,
                SplitMix64::mix(config.seed ^ 0x7265_6769_7374_6172),
            ),
            directory: Directory::new(),
            sessions: HashMap::new(),
            active: ActiveCalls::default(),
            last_answered: LastAnswered::default(),
            queues: Default::default(),
            held: HashMap::new(),
            trunks: Default::default(),
            trunk_calls: Default::default(),
            trunk_held: HashMap::new(),
            deadlines: BTreeSet::new(),
            indexed: HashMap::new(),
            sweep_interval: config.sweep_interval.max(Duration::from_millis(1)),
            next_sweep: None,
            shutdown: Shutdown::Running,
            overloaded: false,
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
        self.sv.txns.len()
    }

    /// The transaction table's counters, for metrics.
    pub fn transaction_stats(&self) -> TransactionStats {
        self.sv.txns.stats()
    }

    /// Anchors media with `policy`, reserving relay ports from `ports`
    /// (see [`crate::media`]); without this, no call is anchored.
    pub fn set_media(
        &mut self,
        policy: crate::media::MediaPolicy,
        ports: Box<dyn crate::media::RelayPorts>,
    ) {
        self.sv.media = Some(policy);
        self.sv.relay_ports = Some(ports);
        self.sv.media_off = None;
    }

    /// The runtime relays no media, because of `why` (`media.anchor =
    /// "never"`, no `media.address`): a call that should be recorded says
    /// so in its CDR (`recording_error`, `media_off`).
    pub fn set_media_off(&mut self, why: impl Into<String>) {
        self.sv.media = None;
        self.sv.relay_ports = None;
        self.sv.media_off = Some(why.into());
    }

    /// Calls in progress: sessions that have not emitted `SessionEnded`.
    pub fn calls_in_progress(&self) -> usize {
        self.sessions.values().filter(|s| !s.is_over()).count()
    }

    /// After [`Input::Drain`]: no call is in progress any more (they ended,
    /// or the grace period ended and they were hung up). The runtime may
    /// stop; ended calls still absorbing retransmissions are not waited for.
    pub fn is_drained(&self) -> bool {
        self.shutdown != Shutdown::Running && self.calls_in_progress() == 0
    }

    /// How many calls the engine hung up when the shutdown's grace period
    /// ended (0 while running, or if they all ended by themselves).
    pub fn hung_up_at_grace_end(&self) -> usize {
        match self.shutdown {
            Shutdown::GraceOver { hung_up } => hung_up,
            _ => 0,
        }
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
            Input::Drain { grace } => {
                if self.shutdown == Shutdown::Running {
                    self.shutdown = Shutdown::Draining { until: now + grace };
                }
            }
            Input::Overload(overloaded) => self.overloaded = overloaded,
            Input::HangUpAll => self.hang_up_all(clk),
            Input::RemoveTenant(id) => {
                self.directory.remove_tenant(id);
                self.registrar.forget_tenant(id);
            }
            Input::RemoveUser { tenant, extension } => {
                self.directory.remove_user(tenant, &extension);
                self.registrar.forget_user(tenant, &extension);
            }
            Input::ReplaceDirectory(new) => self.replace_directory(*new),
            Input::ReplaceTrunks(trunks) => self.replace_trunks(*trunks),
            Input::TrunkDown { trunk, down } => self.trunk_calls.set_down(trunk, down),
            Input::MediaTimeout { session } => {
                self.run(session, clk, |s, cx| s.media_timed_out(cx))
            }
            Input::Digit { session, digit } => {
                self.run(session, clk, |s, cx| s.on_digit(cx, digit))
            }
        }
        self.drain(clk);
        self.dispatch_queues(clk);
    }

    /// Swaps in a reloaded directory; bindings of users and tenants it no
    /// longer has are forgotten.
    fn replace_directory(&mut self, new: Directory) {
        let old = &self.directory;
        let gone_tenants: Vec<TenantId> = old
            .tenant_ids()
            .filter(|t| new.tenant(*t).is_none())
            .collect();
        let gone_users: Vec<(TenantId, String)> = old
            .user_keys()
            .filter(|(t, e)| new.tenant(*t).is_some() && new.user(*t, e.as_str()).is_none())
            .map(|(t, e)| (t, e.as_str().to_owned()))
            .collect();
        self.directory = new;
        for tenant in gone_tenants {
            self.registrar.forget_tenant(tenant);
        }
        for (tenant, extension) in gone_users {
            self.registrar.forget_user(tenant, &extension);
        }
    }

    /// [`Input::HangUpAll`]: the PBX ends every call in progress itself.
    /// An answered call gets BYE on both legs and ends with `None` (no
    /// party hung up); a call still ringing gets `503` on the caller leg
    /// and CANCEL to every target, each target failing with 487. The CDR
    /// facts are emitted at once (a session ends when its BYE is sent), so
    /// the runtime can commit them and stop without waiting for answers.
    fn hang_up_all(&mut self, clk: Clock) {
        let mut ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        // In creation order, so that a run replays identically.
        ids.sort_unstable();
        for id in ids {
            self.run(id, clk, |s, cx| s.hang_up_all(cx));
        }
    }

    /// Time passed: fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, now_unix_ms: u64) {
        let clk = Clock {
            now,
            unix_ms: now_unix_ms,
        };
        self.sv.txns.handle_timeout(now);
        self.drain(clk);
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.indexed.remove(&id);
            self.run(id, clk, |s, cx| s.on_timeout(cx));
            self.drain(clk);
        }
        if let Shutdown::Draining { until } = self.shutdown
            && until <= now
        {
            let calls = self.calls_in_progress();
            self.shutdown = Shutdown::GraceOver { hung_up: calls };
            self.event(EngineEvent::GraceOver { calls });
            self.hang_up_all(clk);
            self.drain(clk);
        }
        if self.next_sweep.is_some_and(|at| at <= now) {
            self.next_sweep = Some(now + self.sweep_interval);
            let changes = self.registrar.handle_timeout(now, clk.unix_secs());
            if !changes.is_empty() {
                self.out.push_back(Output::BindingChanges(changes));
            }
        }
        self.dispatch_queues(clk);
    }

    /// The next output, if any. Drain it in a loop after every input and
    /// timeout.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Engine::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let grace_end = match self.shutdown {
            Shutdown::Draining { until } => Some(until),
            _ => None,
        };
        [
            self.sv.txns.poll_timeout(),
            self.deadlines.first().map(|&(at, _)| at),
            self.next_sweep,
            grace_end,
            self.queues.next_wake(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn on_message(&mut self, clk: Clock, peer: Peer, message: Message) {
        if message.is_request() {
            if let Err(e) = check_request(&message) {
                let tag = self.sv.ids.tag();
                match sip::validate::reject(&message, &e, &tag).filter(|r| {
                    reply_fits(peer.transport, message.as_bytes().len(), r.as_bytes().len())
                }) {
                    Some(r) => self.out.push_back(Output::Transmit { peer, message: r }),
                    None => self.dropped(peer, DropReason::UnanswerableRequest(e)),
                }
                return;
            }
            if (self.shutdown != Shutdown::Running || self.overloaded) && is_new_call(&message) {
                return self.refuse_new_call(peer, &message);
            }
        } else if let Err(e) = check_response(&message) {
            self.dropped(peer, DropReason::InvalidResponse(e));
            return;
        }
        let received = match self.sv.txns.receive(clk.now, peer, message) {
            Ok(r) => r,
            Err(e) => return self.dropped(peer, DropReason::Unmatchable(e)),
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
            } => {
                let tag = self.sv.ids.tag();
                match overload_response(&request, &tag, retry_after, peer.transport) {
                    Some(r) => self.out.push_back(Output::Transmit { peer, message: r }),
                    None => self.dropped(peer, DropReason::TransactionCap(limit)),
                }
            }
            Received::Ack(ack) => self.on_ack(clk, Some(peer), ack),
            Received::StrayResponse(response) => self.on_stray_response(clk, peer, response),
        }
    }

    /// `503` for an INVITE that would start a call while shutting down or
    /// overloaded, sent statelessly: a retransmission gets another `503`.
    fn refuse_new_call(&mut self, peer: Peer, request: &Message) {
        let tag = self.sv.ids.tag();
        let mut response = ResponseBuilder::reply(request, 503).to_tag(tag);
        response = match self.shutdown {
            Shutdown::Running => response
                .header_named("Retry-After", "5")
                .header_named("Warning", "399 tally \"Overloaded\""),
            _ => response.header_named("Warning", "399 tally \"Shutting down\""),
        };
        let response = response.build();
        match response {
            Ok(message) => self.out.push_back(Output::Transmit { peer, message }),
            Err(error) => self.internal(
                None,
                InternalError::Unbuildable {
                    what: crate::context::Written::Response,
                    error,
                },
            ),
        }
    }

    fn on_request(&mut self, clk: Clock, peer: Peer, id: TransactionId, request: Message) {
        let Some(method) = request.method().cloned() else {
            return;
        };
        let in_dialog = request.to().is_ok_and(|to| to.tag().is_some());
        if method == Method::Refer {
            // Transfers (`transfer.rs`): REFER only inside a call.
            return self.on_refer(clk, peer, id, request, in_dialog);
        }
        if in_dialog {
            match self.dialog_owner(&request) {
                Some((sid, leg)) => self.run(sid, clk, |s, cx| s.on_request(cx, leg, id, request)),
                None => self.reply(clk, id, &request, 481, None),
            }
            return;
        }
        match method {
            Method::Register => self.on_register(clk, peer, id, request),
            Method::Options => {
                let tag = self.sv.ids.tag();
                let b = ResponseBuilder::reply(&request, 200)
                    .to_tag(tag)
                    .header(HeaderName::Allow, ALLOW)
                    .header(HeaderName::Accept, "application/sdp");
                self.respond(clk, id, b);
            }
            Method::Invite => self.on_invite(clk, peer, id, request),
            Method::Bye | Method::Update | Method::Info | Method::Prack => {
                self.reply(clk, id, &request, 481, None)
            }
            Method::Other(_) => self.reply(clk, id, &request, 501, None),
            _ => self.reply(clk, id, &request, 405, Some(ALLOW)),
        }
    }

    /// The session and leg whose dialog `message` belongs to.
    fn dialog_owner(&self, message: &Message) -> Option<(SessionId, LegRef)> {
        DialogId::of_received(message)
            .ok()
            .and_then(|d| self.dialogs.get(&(d.call_id, d.local_tag)).copied())
    }

    /// Answers server transaction `id` outside any session.
    fn respond(&mut self, clk: Clock, id: TransactionId, response: ResponseBuilder) {
        if let Err(e) = self.sv.respond(clk.now, id, response) {
            self.internal(None, e);
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
        let tag = self.sv.ids.tag();
        let mut b = ResponseBuilder::reply(request, code).to_tag(tag);
        if let Some(allow) = allow {
            b = b.header(HeaderName::Allow, allow);
        }
        self.respond(clk, id, b);
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
                if let Err(error) = self.sv.txns.respond(clk.now, id, o.response) {
                    self.internal(
                        None,
                        InternalError::Refused {
                            what: crate::context::Written::Response,
                            error,
                        },
                    );
                }
                if !o.changes.is_empty() {
                    self.out.push_back(Output::BindingChanges(o.changes));
                }
                for e in o.events {
                    self.event(EngineEvent::Registrar(e));
                }
            }
            Err(RegisterError::Unanswerable(e)) => {
                self.dropped(peer, DropReason::UnanswerableRegister(e))
            }
            Err(e) => self.internal(None, InternalError::Register(e)),
        }
    }

    fn on_invite(&mut self, clk: Clock, peer: Peer, id: TransactionId, request: Message) {
        let Some(request) = self.trunk_invite(clk, peer, id, request) else {
            return;
        };
        let caller = match self.authenticate_invite(clk, peer, &request) {
            auth::InviteAuth::Caller(caller) => caller,
            auth::InviteAuth::Refused(response) => {
                self.respond(clk, id, response);
                return;
            }
        };
        let dialled = request
            .request_uri()
            .and_then(Result::ok)
            .and_then(|u| u.sip().and_then(|s| s.user_unescaped()))
            .and_then(|u| String::from_utf8(u.into_owned()).ok())
            .unwrap_or_default();
        // Pickup feature codes and Replaces join another call (`pickup.rs`).
        let Some((request, caller)) = self.feature_invite(clk, peer, id, request, caller, &dialled)
        else {
            return;
        };
        let session_id = self.sv.snowflake.next_session(cdr::UnixMillis(clk.unix_ms));
        let dir = lookup!(self);
        let route = dir.route(clk.now, caller.tenant.id, &dialled);
        // A number no extension has may leave by a trunk.
        let outbound = match route {
            crate::router::Route::NotFound => {
                let user = Some(caller.party.user.as_str());
                dir.outbound(caller.tenant.id, user, user, &dialled)
            }
            _ => None,
        };
        let direction = match outbound {
            Some(_) => cdr::Direction::Outbound,
            None => cdr::Direction::Extension,
        };
        let mut cx = Ctx {
            clk,
            sv: &mut self.sv,
            dir,
            fx: &mut self.effects,
        };
        let session = Session::start(
            &mut cx,
            crate::call::Start {
                session_id,
                tenant: caller.tenant,
                caller: caller.party,
                dialled,
                peer,
                invite: request,
                server: id,
                route,
                direction,
                inbound: None,
                outbound,
            },
        );
        self.apply(session_id, session.tenant_id());
        self.sessions.insert(session_id, Box::new(session));
        self.settle(session_id);
    }

    fn on_cancel(
        &mut self,
        clk: Clock,
        id: TransactionId,
        request: Message,
        invite: Option<TransactionId>,
    ) {
        let owner = invite.and_then(|i| self.owners.get(&i).copied());
        match owner {
            Some(Owner {
                session,
                role: TxnRole::CallerInvite,
                ..
            }) => self.run(session, clk, |s, cx| s.on_cancel(cx, id, &request)),
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
    fn on_ack(&mut self, clk: Clock, peer: Option<Peer>, ack: Message) {
        match self.dialog_owner(&ack) {
            Some((sid, leg)) => self.run(sid, clk, |s, cx| s.on_ack(cx, leg, &ack)),
            None => {
                if let Some(peer) = peer {
                    self.dropped(peer, DropReason::AckOutsideDialog(ack.summary()));
                }
            }
        }
    }

    fn on_stray_response(&mut self, clk: Clock, peer: Peer, response: Message) {
        // A 2xx to an INVITE after Timer M: the peer did not get our ACK.
        let is_2xx_invite = response.status().is_some_and(|c| (200..300).contains(&c))
            && response.cseq().is_ok_and(|c| c.method == Method::Invite);
        match self.dialog_owner(&response) {
            Some((sid, leg)) if is_2xx_invite => {
                self.run(sid, clk, |s, cx| s.on_stray_2xx(cx, leg, &response))
            }
            _ => self.dropped(peer, DropReason::StrayResponse(response.summary())),
        }
    }

    fn on_transport_error(&mut self, clk: Clock, peer: Peer) {
        let mut failed: Vec<TransactionId> = self
            .owners
            .iter()
            .filter(|(_, o)| o.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        // In creation order, so that a run replays identically.
        failed.sort_unstable();
        for id in failed {
            self.sv.txns.transport_error(clk.now, id);
        }
    }

    /// The users each calls count against (see [`ActiveCalls`]); for tests
    /// and metrics.
    pub fn active_calls(&self) -> &ActiveCalls {
        &self.active
    }

    pub(crate) fn event(&mut self, event: EngineEvent) {
        self.out.push_back(Output::Event(event));
    }

    fn internal(&mut self, session: Option<SessionId>, detail: InternalError) {
        self.event(EngineEvent::Internal { session, detail });
    }

    fn dropped(&mut self, peer: Peer, reason: DropReason) {
        self.event(EngineEvent::Dropped { peer, reason });
    }
}

/// An INVITE outside any dialog: a new call.
fn is_new_call(message: &Message) -> bool {
    message.method() == Some(&Method::Invite) && message.to().is_ok_and(|to| to.tag().is_none())
}
