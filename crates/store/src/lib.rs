//! Tally's durable store: the directory, the registrar's bindings, the
//! open state of calls, the CDRs, the transactional outbox, and the REST
//! identity (system account, hashed tokens, API keys, sign-in throttling,
//! audit log: modules `identity` and `audit`), on SQLite (embedded
//! default) or PostgreSQL (shared by several nodes).
//!
//! # Place in DESIGN.md's picture
//!
//! ```text
//! pbx ──CallEvent──▶ cdr::Builder ──WireEvent──▶ StoreWriter ──▶ CDR rows + outbox (sequence)
//!                                                                      │
//!                               delivery (relay, webhooks, WebSocket) ◀┘  api (REST reads)
//! ```
//!
//! This crate is step 3 of "The CDR pipeline": the single [`StoreWriter`]
//! per node commits, in one transaction per batch (group commit), each
//! session's journaled [`cdr::CallEvent`]s while it is open, one outbox
//! row per [`cdr::WireEvent`] with the tenant's next gap-free `sequence`,
//! and at session end the CDR with its targets. Nothing is acknowledged,
//! and so nothing can be delivered, before it is committed. The `delivery`
//! crate reads the outbox ([`Store::outbox_after`],
//! [`Store::outbox_since_global`]); the `api` crate reads CDRs
//! ([`Store::list_cdrs`], [`Store::get_cdr`]) and spells them with
//! [`cdr::CdrRecord::rest_item`].
//!
//! After a crash, [`StoreWriter::recover_open_sessions`] replays each open
//! session's journal into a [`cdr::Builder`] and closes it with a
//! `recovered` CDR (SPEC §3).
//!
//! # Two databases, one set of SQL
//!
//! [`Store`] holds a SQLite or a PostgreSQL pool (sqlx, native drivers).
//! Every statement is written once with `$n` placeholders, which both
//! accept, against a small internal connection trait that both drivers
//! implement; values are always bound, never formatted into SQL.
//! Migrations are per backend (the DDL types differ), embedded in the
//! binary, kept in lockstep, and run by [`Store::open`].
//!
//! SQLite runs in WAL mode with `synchronous = NORMAL`: readers never
//! block the writer, and a commit survives a process crash; a power cut
//! can lose the last few commits (never corrupt the file). That is the
//! embedded default's trade; PostgreSQL is the durable choice.
//!
//! All ids are the cdr crate's 64-bit Snowflake ids, stored as signed
//! 64-bit integers; all times are Unix milliseconds.

mod audit;
mod cdrs;
mod commit;
mod console;
mod convert;
mod db;
mod directory;
mod error;
mod export;
mod fanout;
mod identity;
mod ivrs;
mod lite;
mod nodes;
mod outbox;
mod pg_commit;
pub mod query;
mod queue_stats;
mod queues;
mod recordings;
mod recovery;
mod registrations;
mod ring_groups;
mod routing_rules;
mod secrets;
mod sip_credentials;
mod sync;
mod trunks;
mod webhook_allow;
mod webhooks;
mod writer;

use cdr::{CdrId, CdrRecord, Id, SessionId, TenantId, UnixMillis};

pub use audit::AuditEntry;
pub use cdrs::CdrPage;
pub use commit::SessionEvents;
pub use db::{Backend, PoolWaits, StoreOptions, pool_waits};
pub use directory::{
    DEFAULT_AGENT_LOGIN_CODE, DEFAULT_AGENT_LOGOUT_CODE, DEFAULT_DIRECTED_PICKUP_PREFIX,
    DEFAULT_PICKUP_CODE, DEFAULT_RING_TIMEOUT_SECS, DEFAULT_TIME_ZONE, SipHashes, Tenant, User,
};
pub use error::StoreError;
pub use export::{ExportFormat, ExportLimits, ExportSlot, ExportSlots, ExportZone, UnknownZone};
pub use fanout::{OUTBOX_CHANNEL, OutboxListener};
pub use identity::{AccessGrant, ApiKey, NewToken, Refresh, Rotation, TokenOwner};
pub use ivrs::{AppDeletion, HANG_UP, Ivr, IvrWrite, PromptRow};
pub use nodes::{Heartbeat, NodeRow, TakeOver};
pub use outbox::OutboxEvent;
pub use query::{CdrQuery, CdrScope, QueryError};
pub use queue_stats::QueueStats;
pub use queues::{AgentLogin, Queue, QueueWrite};
pub use recordings::{Recording, RecordingFilter};
pub use recovery::{OpenSession, RecoveredSession, RecoveryReport, RecoveryScope};
pub use registrations::Registration;
pub use ring_groups::{RingGroup, RingGroupDeletion, RingGroupWrite};
pub use routing_rules::{InboundRule, OutboundRule, RuleWrite, UserOutbound};
pub use secrets::{SEALED_PREFIX, SealReport, SecretKey, is_sealed};
pub use sip_credentials::PlaintextSipPassword;
pub use sync::SyncDiff;
pub use trunks::{Trunk, TrunkDeletion};
pub use webhooks::{
    AttemptRecord, ClaimedDelivery, Delivery, DeliveryStatus, EndpointChange, FanOut, LogEntry,
    WebhookEndpoint,
};
pub use writer::{Committed, PendingBatch, PendingCommit, StoreWriter, WriterConfig, WriterStats};

use db::{Pool, with_conn, with_write_tx};
use query::deadline::{with_read_conn, with_read_snapshot};

/// Runs a write transaction again (up to 5 times, short back-off) while it
/// fails with a transient error: webhook transactions touch several
/// delivery rows, and on PostgreSQL two of them (a replay and a batch of
/// outcomes, say) can deadlock; the loser is simply tried again.
macro_rules! retry_transient {
    ($tx:expr) => {{
        let mut attempt = 0u32;
        loop {
            let result: Result<_, StoreError> = async { $tx }.await;
            match result {
                Err(e) if e.is_transient() && attempt < 4 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                }
                other => break other,
            }
        }
    }};
}

/// Sequences one transaction of a webhook replay covers.
pub const REPLAY_BATCH: u64 = 500;

/// A handle on the database. Cheap to clone (a pool inside).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// [`StoreOptions::lock_wait`], for the writer's own connection.
    lock_wait: std::time::Duration,
    /// The deadline of a read on the query paths (`query::deadline`).
    read_timeout: std::time::Duration,
    /// Seals the secrets the PBX reads back (module `secrets`).
    sealer: secrets::Sealer,
}

impl Store {
    /// Opens `sqlite:PATH` / `sqlite://PATH` (creating the file and its
    /// directory) or `postgres://…`, and brings the schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &StoreOptions::default()).await
    }

    pub async fn open_with(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        Ok(Self {
            pool: Pool::open(url, options).await?,
            lock_wait: options.lock_wait,
            read_timeout: options.read_timeout,
            sealer: secrets::Sealer::default(),
        })
    }

    /// This store, sealing the secrets it writes with `key` and opening
    /// sealed ones with it (module `secrets`; `None`: plaintext).
    pub fn with_secret_key(mut self, key: Option<&SecretKey>) -> Self {
        self.sealer = secrets::Sealer::new(key);
        self
    }

    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts this store's writer: a thread of its own with its own
    /// connection (see [`StoreWriter`]). One per node; clone the handle
    /// for each shard.
    pub fn spawn_writer(&self, config: WriterConfig) -> StoreWriter {
        StoreWriter::spawn(
            self.clone(),
            self.pool.writer_target(self.lock_wait),
            config,
        )
    }

    // Directory --------------------------------------------------------------

    /// Fails with [`StoreError::Conflict`] if the id or the SIP domain is
    /// taken.
    pub async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            directory::create_tenant(&mut *conn, tenant).await?;
            directory::bump_version(&mut *conn).await
        })
    }

    /// The directory's version: it moves with every change of a tenant or
    /// a user (see [`Store::create_tenant`] and the others), so a node can
    /// tell cheaply whether to reload.
    pub async fn directory_version(&self) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| directory::version(conn))
    }

    /// Every user of every tenant, by tenant and extension.
    pub async fn all_users(&self) -> Result<Vec<User>, StoreError> {
        with_conn!(&self.pool, |conn| directory::all_users(conn))
    }

    pub async fn tenant(&self, id: TenantId) -> Result<Option<Tenant>, StoreError> {
        with_conn!(&self.pool, |conn| directory::tenant(conn, id))
    }

    /// The tenant whose SIP domain is `domain` (case-insensitive).
    pub async fn tenant_by_sip_domain(&self, domain: &str) -> Result<Option<Tenant>, StoreError> {
        with_conn!(&self.pool, |conn| directory::tenant_by_sip_domain(
            conn, domain
        ))
    }

    /// Fails with [`StoreError::Conflict`] if the extension is taken in the
    /// tenant, [`StoreError::NumberTaken`] if a ring group has it,
    /// [`StoreError::MissingReference`] if the tenant is unknown.
    pub async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            if ring_groups::is_group(&mut *conn, user.tenant_id, &user.extension).await? {
                return Err(StoreError::NumberTaken(user.extension.clone()));
            }
            directory::create_user(&mut *conn, user).await?;
            directory::bump_version(&mut *conn).await
        })
    }

    pub async fn user_by_extension(
        &self,
        tenant_id: TenantId,
        extension: &str,
    ) -> Result<Option<User>, StoreError> {
        with_conn!(&self.pool, |conn| directory::user_by_extension(
            conn, tenant_id, extension
        ))
    }

    /// Every tenant, by id: what the engine's directory loads at start-up.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        with_conn!(&self.pool, |conn| directory::tenants(conn))
    }

    /// Every user of a tenant, by extension.
    pub async fn users_of_tenant(&self, tenant_id: TenantId) -> Result<Vec<User>, StoreError> {
        with_conn!(&self.pool, |conn| directory::users_of(conn, tenant_id))
    }

    /// A page of tenants, by id.
    pub async fn tenant_page(&self, top: u32, skip: u64) -> Result<Vec<Tenant>, StoreError> {
        with_conn!(&self.pool, |conn| directory::tenant_page(conn, top, skip))
    }

    pub async fn count_tenants(&self) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| directory::count_tenants(conn))
    }

    /// Replaces a tenant's name, domain and settings; `false` if there is
    /// no such tenant, [`StoreError::Conflict`] if the domain is taken.
    pub async fn update_tenant(&self, tenant: &Tenant) -> Result<bool, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let found = directory::update_tenant(&mut *conn, tenant).await?;
            directory::bump_version(&mut *conn).await?;
            Ok::<bool, StoreError>(found)
        })
    }

    /// Deletes a tenant and everything it owns (users, registrations,
    /// tokens, API keys, CDRs, outbox) in one transaction; `false` if
    /// there was no such tenant. Rows of features without a cascade here
    /// make it fail with [`StoreError::MissingReference`] (nothing
    /// deleted).
    pub async fn delete_tenant(&self, id: TenantId) -> Result<bool, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let found = directory::delete_tenant(&mut *conn, id).await?;
            directory::bump_version(&mut *conn).await?;
            Ok::<bool, StoreError>(found)
        })
    }

    /// The tenant's user `id` (`None` for another tenant's).
    pub async fn user(&self, tenant_id: TenantId, id: Id) -> Result<Option<User>, StoreError> {
        with_conn!(&self.pool, |conn| directory::user(conn, tenant_id, id))
    }

    /// The user who signs in as `login` (extension number or username).
    pub async fn user_by_login(
        &self,
        tenant_id: TenantId,
        login: &str,
    ) -> Result<Option<User>, StoreError> {
        with_conn!(&self.pool, |conn| directory::user_by_login(
            conn, tenant_id, login
        ))
    }

    /// A page of a tenant's users, by extension.
    pub async fn user_page(
        &self,
        tenant_id: TenantId,
        top: u32,
        skip: u64,
    ) -> Result<Vec<User>, StoreError> {
        with_conn!(&self.pool, |conn| directory::user_page(
            conn, tenant_id, top, skip
        ))
    }

    pub async fn count_users(&self, tenant_id: TenantId) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| directory::count_users(conn, tenant_id))
    }

    /// Replaces a user (matched by id and tenant); `false` if there is none,
    /// [`StoreError::Conflict`] if its extension or username is taken. A
    /// new extension drops the old number's registrations; a disabled user
    /// loses its tokens.
    pub async fn update_user(&self, user: &User) -> Result<bool, StoreError> {
        let now = user.updated_at;
        with_write_tx!(&self.pool, |conn| async {
            if ring_groups::is_group(&mut *conn, user.tenant_id, &user.extension).await? {
                return Err(StoreError::NumberTaken(user.extension.clone()));
            }
            let found = directory::update_user(&mut *conn, user).await?;
            if found && !user.enabled {
                identity::revoke_user_tokens(&mut *conn, user.id, now).await?;
            }
            directory::bump_version(&mut *conn).await?;
            Ok::<bool, StoreError>(found)
        })
    }

    /// Deletes a user with its registrations and tokens; `false` if the
    /// tenant has no such user.
    pub async fn delete_user(&self, tenant_id: TenantId, id: Id) -> Result<bool, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let found = directory::delete_user(&mut *conn, tenant_id, id).await?;
            directory::bump_version(&mut *conn).await?;
            Ok::<bool, StoreError>(found)
        })
    }

    // Audit log --------------------------------------------------------------

    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        with_conn!(&self.pool, |conn| audit::append(conn, entry))
    }

    /// A tenant's audit entries (`None`: the system's), newest first.
    pub async fn audit_page(
        &self,
        tenant_id: Option<TenantId>,
        top: u32,
        skip: u64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        with_conn!(&self.pool, |conn| audit::page(conn, tenant_id, top, skip))
    }

    pub async fn count_audit(&self, tenant_id: Option<TenantId>) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| audit::count(conn, tenant_id))
    }

    // Registrations ----------------------------------------------------------

    /// Inserts the binding or replaces the one with the same key. Fails
    /// with [`StoreError::MissingReference`] if the extension is unknown.
    pub async fn upsert_registration(&self, registration: &Registration) -> Result<(), StoreError> {
        with_conn!(&self.pool, |conn| registrations::upsert(conn, registration))
    }

    /// Removes one binding; `false` if there was none.
    pub async fn remove_registration(
        &self,
        tenant_id: TenantId,
        extension: &str,
        binding_key: &str,
    ) -> Result<bool, StoreError> {
        with_conn!(&self.pool, |conn| registrations::remove(
            conn,
            tenant_id,
            extension,
            binding_key
        ))
    }

    /// Removes every binding of an extension (`Contact: *`); returns how
    /// many there were.
    pub async fn remove_registrations(
        &self,
        tenant_id: TenantId,
        extension: &str,
    ) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| registrations::remove_all(
            conn, tenant_id, extension
        ))
    }

    /// The extension's bindings that expire after `now`.
    pub async fn live_registrations(
        &self,
        tenant_id: TenantId,
        extension: &str,
        now: UnixMillis,
    ) -> Result<Vec<Registration>, StoreError> {
        with_conn!(&self.pool, |conn| registrations::live_of(
            conn, tenant_id, extension, now
        ))
    }

    /// Every binding that expires after `now`: what the location service
    /// loads at start-up.
    pub async fn all_live_registrations(
        &self,
        now: UnixMillis,
    ) -> Result<Vec<Registration>, StoreError> {
        with_conn!(&self.pool, |conn| registrations::live(conn, now))
    }

    /// Deletes bindings that expired at or before `now`; returns how many.
    /// Every registration row written after `after`, live or removed
    /// (nodes sharing the database follow each other's bindings).
    pub async fn registrations_updated_since(
        &self,
        after: UnixMillis,
    ) -> Result<Vec<Registration>, StoreError> {
        with_conn!(&self.pool, |conn| registrations::updated_since(conn, after))
    }

    /// Removes a binding by expiring its row at `now` (a tombstone the
    /// other nodes read); `false` if there was no live row.
    pub async fn tombstone_registration(
        &self,
        tenant_id: TenantId,
        extension: &str,
        binding_key: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        with_conn!(&self.pool, |conn| registrations::tombstone(
            conn,
            tenant_id,
            extension,
            binding_key,
            now
        ))
    }

    pub async fn remove_expired_registrations(&self, now: UnixMillis) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| registrations::remove_expired(conn, now))
    }

    // CDRs -------------------------------------------------------------------

    /// One tenant's CDRs, newest first (`started_at`, then `cdr_id`), with
    /// their targets: `top` of them after skipping `skip`. With `after`,
    /// the listing starts strictly after that CDR (keyset paging: stable
    /// while new calls end; [`StoreError::UnknownCursor`] if the tenant has
    /// no such CDR).
    pub async fn list_cdrs(
        &self,
        tenant_id: TenantId,
        top: u32,
        skip: u64,
        after: Option<CdrId>,
    ) -> Result<Vec<CdrRecord>, StoreError> {
        with_read_conn!(&self.pool, self.read_timeout, |conn| cdrs::list(
            conn, tenant_id, top, skip, after
        ))
    }

    /// The tenant's CDR `cdr_id` with its targets; `None` if the tenant has
    /// no such CDR (another tenant's id included).
    pub async fn get_cdr(
        &self,
        tenant_id: TenantId,
        cdr_id: CdrId,
    ) -> Result<Option<CdrRecord>, StoreError> {
        with_read_conn!(&self.pool, self.read_timeout, |conn| cdrs::get(
            conn, tenant_id, cdr_id
        ))
    }

    /// How many CDRs the tenant has (REST `count`).
    pub async fn count_cdrs(&self, tenant_id: TenantId) -> Result<u64, StoreError> {
        with_read_conn!(&self.pool, self.read_timeout, |conn| cdrs::count(
            conn, tenant_id
        ))
    }

    // CDR queries (REST) -----------------------------------------------------

    /// One page of `query` over the tenant's CDRs in `scope`, with their
    /// targets (see [`query`] for the options). An `after` naming no CDR of
    /// the tenant fails with [`StoreError::UnknownCursor`].
    pub async fn query_cdrs(
        &self,
        tenant_id: TenantId,
        scope: &CdrScope,
        query: &CdrQuery,
    ) -> Result<CdrPage, StoreError> {
        let backend = self.backend();
        with_read_snapshot!(&self.pool, self.read_timeout, |conn| cdrs::query(
            conn, backend, tenant_id, scope, query
        ))
    }

    /// The plan of the statement selecting a page of `query` (SQLite's
    /// `EXPLAIN QUERY PLAN`, PostgreSQL's `EXPLAIN`), one line per step.
    pub async fn explain_cdr_page(
        &self,
        tenant_id: TenantId,
        scope: &CdrScope,
        query: &CdrQuery,
    ) -> Result<Vec<String>, StoreError> {
        let backend = self.backend();
        with_read_conn!(&self.pool, self.read_timeout, |conn| cdrs::explain_page(
            conn, backend, tenant_id, scope, query
        ))
    }

    /// Every CDR matching `query`'s filter, search and order (paging
    /// options are ignored), as CSV or JSON Lines chunks, streamed with
    /// constant memory (see the export module). Must be called inside a
    /// tokio runtime: the query runs on a task of its own, holding `slot`,
    /// which stops when the stream is dropped, when the client takes
    /// nothing for the slot's `stall`, or after its `total`.
    pub fn export_cdrs(
        &self,
        tenant_id: TenantId,
        scope: CdrScope,
        query: CdrQuery,
        format: ExportFormat,
        zone: ExportZone,
        slot: ExportSlot,
    ) -> Result<
        impl futures_util::Stream<Item = Result<Vec<u8>, StoreError>> + Send + Unpin + 'static,
        StoreError,
    > {
        let tenant = convert::db_id("tenant_id", tenant_id.id())?;
        Ok(export::start(
            self.pool.clone(),
            tenant,
            scope,
            query,
            format,
            zone,
            slot,
        ))
    }

    /// The extension of the tenant's user `user_id` (`None` if there is no
    /// such user in that tenant): whose CDRs `/api/user/cdrs` shows.
    pub async fn user_extension(
        &self,
        tenant_id: TenantId,
        user_id: cdr::Id,
    ) -> Result<Option<String>, StoreError> {
        with_conn!(&self.pool, |conn| cdrs::user_extension(
            conn, tenant_id, user_id
        ))
    }

    /// Stores a personal CDR sync token (see the sync module); `date_from`
    /// asks for the user's calls since then. `token` is the caller's
    /// random opaque string.
    pub async fn create_cdr_sync_token(
        &self,
        tenant_id: TenantId,
        user_id: cdr::Id,
        token: &str,
        date_from: Option<UnixMillis>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let date_from = date_from
            .map(|at| convert::db_ms("date_from", at))
            .transpose()?;
        let now = convert::db_ms("now", now)?;
        with_conn!(&self.pool, |conn| sync::create(
            conn, tenant_id, user_id, token, date_from, now
        ))
    }

    /// The changes since `token` of the user's CDRs (the user with
    /// `extension`), stored under `next_token`; `None` if the token is
    /// forgotten (the API answers 403).
    #[allow(clippy::too_many_arguments)]
    pub async fn cdr_sync_diff(
        &self,
        tenant_id: TenantId,
        user_id: cdr::Id,
        token: &str,
        next_token: &str,
        now: UnixMillis,
    ) -> Result<Option<SyncDiff>, StoreError> {
        let now = convert::db_ms("now", now)?;
        with_read_conn!(&self.pool, self.read_timeout, |conn| sync::diff(
            conn, tenant_id, user_id, token, next_token, now
        ))
    }

    // Outbox -----------------------------------------------------------------

    /// The tenant's events with `sequence > after_sequence`, in sequence
    /// order, at most `limit`: WebSocket resume (`from_sequence`) and
    /// webhook replay.
    pub async fn outbox_after(
        &self,
        tenant_id: TenantId,
        after_sequence: u64,
        limit: u32,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        with_conn!(&self.pool, |conn| outbox::after(
            conn,
            tenant_id,
            after_sequence,
            limit
        ))
    }

    /// Every tenant's events with `global_sequence > after_global_sequence`,
    /// in commit order, at most `limit`: the relay's tail of the outbox.
    pub async fn outbox_since_global(
        &self,
        after_global_sequence: u64,
        limit: u32,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        with_conn!(&self.pool, |conn| outbox::since_global(
            conn,
            after_global_sequence,
            limit
        ))
    }

    /// The highest `global_sequence` committed so far (0 for an empty
    /// outbox): where a relay that wants only new events starts.
    pub async fn outbox_last_global_sequence(&self) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| outbox::last_global(conn))
    }

    // Webhooks (SPEC §5; the `delivery` crate's dispatcher) -----------------
    // See `webhooks.rs` for the fan-out, lease and outcome protocol.

    /// Creates or replaces the tenant's `cdr_event` endpoint.
    /// [`StoreError::MissingReference`] if the tenant is unknown.
    pub async fn put_webhook_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        with_conn!(&self.pool, |conn| webhooks::put_endpoint(
            conn,
            &self.sealer,
            endpoint
        ))
    }

    pub async fn webhook_endpoint(
        &self,
        tenant_id: TenantId,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        with_conn!(&self.pool, |conn| webhooks::endpoint(
            conn,
            &self.sealer,
            tenant_id
        ))
    }

    /// Every tenant's endpoint, by tenant id.
    pub async fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        with_conn!(&self.pool, |conn| webhooks::endpoints(conn, &self.sealer))
    }

    /// Turns the endpoint off with `reason` and logs `endpoint_disabled`;
    /// `false` if it was already off.
    pub async fn disable_webhook_endpoint(
        &self,
        tenant_id: TenantId,
        reason: &str,
        at: UnixMillis,
    ) -> Result<bool, StoreError> {
        retry_transient!(with_write_tx!(&self.pool, |conn| webhooks::disable(
            conn, tenant_id, reason, at, None
        )))
    }

    /// One fan-out transaction: deliveries for at most `limit` outbox
    /// events after the shared cursor.
    pub async fn webhook_fan_out(&self, limit: u32, now: UnixMillis) -> Result<FanOut, StoreError> {
        retry_transient!(with_write_tx!(&self.pool, |conn| webhooks::fan_out(
            conn, limit, now
        )))
    }

    /// Leases up to `limit` due deliveries of the tenant to `owner` until
    /// `lease_until`, in sequence order.
    pub async fn claim_webhook_deliveries(
        &self,
        tenant_id: TenantId,
        owner: &str,
        now: UnixMillis,
        lease_until: UnixMillis,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        retry_transient!(with_write_tx!(&self.pool, |conn| webhooks::claim(
            conn,
            tenant_id,
            owner,
            now,
            lease_until,
            limit
        )))
    }

    /// When the tenant's next pending delivery is due.
    pub async fn next_webhook_due(
        &self,
        tenant_id: TenantId,
    ) -> Result<Option<UnixMillis>, StoreError> {
        with_conn!(&self.pool, |conn| webhooks::next_due(conn, tenant_id))
    }

    /// Tenants with pending deliveries.
    pub async fn tenants_with_pending_webhooks(&self) -> Result<Vec<TenantId>, StoreError> {
        with_conn!(&self.pool, |conn| webhooks::pending_tenants(conn))
    }

    /// Writes finished attempts in one transaction; per record, whether
    /// `owner` still held the lease (otherwise nothing was written for it).
    pub async fn record_webhook_attempts(
        &self,
        owner: &str,
        records: &[AttemptRecord],
    ) -> Result<Vec<bool>, StoreError> {
        retry_transient!(with_write_tx!(&self.pool, |conn| webhooks::record(
            conn, owner, records
        )))
    }

    /// A delivery outside the outbox (a test event), leased to `owner`.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_leased_webhook_delivery(
        &self,
        tenant_id: TenantId,
        event_id: &str,
        event_type: &str,
        payload: &str,
        owner: &str,
        now: UnixMillis,
        lease_until: UnixMillis,
    ) -> Result<i64, StoreError> {
        with_conn!(&self.pool, |conn| webhooks::insert_leased(
            conn,
            tenant_id,
            event_id,
            event_type,
            payload,
            owner,
            now,
            lease_until
        ))
    }

    /// Makes the tenant's delivery of `event_id` due now (manual retry);
    /// `false` if there is none.
    pub async fn retry_webhook_delivery(
        &self,
        tenant_id: TenantId,
        event_id: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        with_conn!(&self.pool, |conn| webhooks::retry(
            conn, tenant_id, event_id, now
        ))
    }

    /// Replays the tenant's events with `sequence > from_sequence` (at
    /// most `max` sequences), in transactions of [`REPLAY_BATCH`]
    /// sequences with `pause` between two, so a large replay never holds
    /// the write lock the CDR writer needs for long (security review,
    /// finding 8). Returns how many deliveries were scheduled.
    pub async fn replay_webhooks(
        &self,
        tenant_id: TenantId,
        from_sequence: u64,
        event_types: Option<&[String]>,
        now: UnixMillis,
        max: u32,
        pause: std::time::Duration,
    ) -> Result<u64, StoreError> {
        let last = with_conn!(&self.pool, |conn| webhooks::last_sequence(conn, tenant_id))?;
        let end = last.min(from_sequence.saturating_add(u64::from(max)));
        let mut after = from_sequence;
        let mut scheduled = 0;
        while after < end {
            let upto = end.min(after + REPLAY_BATCH);
            scheduled += retry_transient!(with_write_tx!(&self.pool, |conn| {
                webhooks::replay_batch(conn, tenant_id, after, upto, event_types, now)
            }))?;
            after = upto;
            if after < end {
                tokio::time::sleep(pause).await;
            }
        }
        Ok(scheduled)
    }

    /// The tenant's deliveries, newest first, with their logs.
    pub async fn webhook_deliveries(
        &self,
        tenant_id: TenantId,
        top: u32,
        skip: u64,
    ) -> Result<Vec<Delivery>, StoreError> {
        with_conn!(&self.pool, |conn| webhooks::list(
            conn, tenant_id, top, skip
        ))
    }

    pub async fn count_webhook_deliveries(&self, tenant_id: TenantId) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| webhooks::count_deliveries(
            conn, tenant_id
        ))
    }

    /// The tenant's delivery of `event_id`, with its log.
    pub async fn webhook_delivery(
        &self,
        tenant_id: TenantId,
        event_id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        with_conn!(&self.pool, |conn| webhooks::delivery(
            conn, tenant_id, event_id
        ))
    }
    /// Frees every delivery lease `owner` holds (at start-up and after a
    /// stop that abandoned attempts); returns how many.
    pub async fn release_webhook_leases(&self, owner: &str) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| webhooks::release_leases(conn, owner))
    }
    /// Deletes finished deliveries (and their logs) last changed before
    /// `before`; returns how many deliveries went.
    pub async fn prune_webhook_deliveries(&self, before: UnixMillis) -> Result<u64, StoreError> {
        retry_transient!(with_write_tx!(&self.pool, |conn| webhooks::prune(
            conn, before
        )))
    }
    // End of webhooks ---------------------------------------------------------

    // Open sessions ----------------------------------------------------------

    /// Sessions with open state and no CDR yet.
    pub async fn open_sessions(&self) -> Result<Vec<OpenSession>, StoreError> {
        with_conn!(&self.pool, |conn| recovery::open_sessions(conn))
    }

    pub(crate) async fn session_journal(
        &self,
        session_id: SessionId,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        with_conn!(&self.pool, |conn| recovery::session_journal(
            conn, session_id
        ))
    }
}
