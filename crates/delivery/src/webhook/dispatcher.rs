//! The webhook dispatcher: the runtime around the store's delivery tables
//! (`store::webhooks`), the [`Client`] and the [`RetryPolicy`].
//!
//! ```text
//! StoreWriter commit ─watch─▶ fan-out task ──(deliveries rows)──▶ store
//!        poll (other nodes) ─┘      │ wake(tenant)
//!                                   ▼
//!             one worker per tenant: claim due rows (lease) ─▶ attempts (≤ concurrency)
//!                                                                   │ AttemptRecord
//!                                       recorder task(s) ◀──────────┘ (batched transactions)
//! ```
//!
//! - **Never blocks call processing.** The dispatcher only reads what the
//!   writer committed; the writer never waits for it.
//! - **Isolation.** Each tenant (one endpoint) has its own worker task with
//!   at most [`DispatcherConfig::concurrency`] attempts in flight. A dead
//!   endpoint's worker sleeps until its next retry; a slow one holds only
//!   its own slots. Workers share the database pool and the recorder(s)
//!   ([`DispatcherConfig::recorders`]).
//! - **Durable.** A delivery exists in the store before its first attempt
//!   and changes state only in the recorder's transaction after the
//!   attempt. A crash (even `kill -9`) leaves leased rows: at start-up the
//!   node frees its own leases ([`store::Store::release_webhook_leases`]:
//!   the lease owner is `node-<n>`, unique per node), so everything pending
//!   is sent again with the same `webhook-id`. Only attempts in flight at
//!   the crash can arrive twice.
//! - **Several nodes on one PostgreSQL.** Fan-out is serialised by the
//!   cursor row; a delivery is attempted by the node holding its lease
//!   (`UPDATE … RETURNING` with the lease re-checked, see
//!   `store::webhooks`), and a dead node's leases expire after
//!   [`DispatcherConfig::lease`]. Each node polls for due work every
//!   [`DispatcherConfig::scan`], so deliveries another node fanned out are
//!   picked up too. Concurrency limits are per node.
//! - **Outbox retention.** Deliveries carry their own payload; only the
//!   fan-out reads the outbox, right after commit. A node down longer than
//!   the outbox retention (≥ 2 days) finds a gap and logs how many events
//!   it could not fan out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cdr::{TenantId, UnixMillis};
use http::{HeaderName, HeaderValue};
use serde_json::json;
use store::{
    AttemptRecord, ClaimedDelivery, DeliveryStatus, EndpointChange, Store, StoreError,
    WebhookEndpoint,
};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::client::{AuthState, Client, ClientConfig};
use super::config::{EndpointConfig, signing_secrets};
use super::guard::{AllowList, Cidr};
use super::schedule::{Answer, AttemptError, RetryPolicy, SplitMix64, jitter_rng};
use super::sign::signature_header;

/// How the dispatcher runs.
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// Lease owner name: unique per node (`node-<n>`).
    pub owner: String,
    pub policy: RetryPolicy,
    /// Attempts in flight per endpoint on this node.
    pub concurrency: usize,
    /// How long a claimed delivery is this node's (longer than an attempt
    /// can take, digest round trip included).
    pub lease: Duration,
    /// Outbox poll when no local commit wakes the fan-out.
    pub poll: Duration,
    /// How often to look for due deliveries this node has no worker for.
    pub scan: Duration,
    pub fan_out_batch: u32,
    /// Finished deliveries and their logs are kept this long.
    pub retention: Duration,
    /// Recorder tasks writing outcomes (each batches into one
    /// transaction). One is best on the 2-core reference machine, for
    /// PostgreSQL too (measured: 4 recorders were slower, CPU-bound); more
    /// may help a PostgreSQL on another host, where round trips dominate.
    pub recorders: usize,
    pub client: ClientConfig,
}

impl DispatcherConfig {
    pub fn new(node: u16, client: ClientConfig) -> Self {
        DispatcherConfig {
            owner: format!("node-{node}"),
            policy: RetryPolicy::default(),
            concurrency: 16,
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(500),
            scan: Duration::from_secs(5),
            fan_out_batch: 1000,
            retention: Duration::from_secs(30 * 24 * 3600),
            recorders: 1,
            client,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// An enabled endpoint, ready to send to.
struct Endpoint {
    row: WebhookEndpoint,
    url: url::Url,
    auth: AuthState,
    /// The SSRF guard's allow-list: the node's plus the tenant's.
    allow: AllowList,
    failing_since: Mutex<Option<u64>>,
    disabled: AtomicBool,
}

/// Why a stored endpoint cannot be sent to.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    #[error("url: {0}")]
    Url(#[from] url::ParseError),
    #[error(transparent)]
    Auth(#[from] super::client::AuthError),
}

impl Endpoint {
    /// The endpoint `row` describes. A `previous` endpoint with the same
    /// credentials passes its authentication state on: the periodic
    /// reload (another node may have changed the row) must not forget the
    /// receiver's digest challenge and cost a `401` round trip per reload.
    fn from_row(
        row: WebhookEndpoint,
        allow: AllowList,
        previous: Option<&Endpoint>,
    ) -> Result<Endpoint, EndpointError> {
        let config = EndpointConfig::from_stored(&row)?;
        let url = url::Url::parse(&row.url)?;
        let auth = match previous {
            Some(p)
                if (&p.row.auth, &p.row.username, &p.row.password)
                    == (&row.auth, &row.username, &row.password) =>
            {
                p.auth.clone()
            }
            _ => AuthState::from_auth(&config.auth)?,
        };
        Ok(Endpoint {
            allow,
            failing_since: Mutex::new(row.failing_since.map(|t| t.0)),
            disabled: AtomicBool::new(false),
            row,
            url,
            auth,
        })
    }
}

#[derive(Default)]
struct WorkerHandle {
    notify: Notify,
    reload: AtomicBool,
}

type RecordRequest = (AttemptRecord, oneshot::Sender<bool>);

struct Shared {
    store: Store,
    config: DispatcherConfig,
    client: Client,
    workers: Mutex<HashMap<TenantId, Arc<WorkerHandle>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// One queue per recorder task; a delivery always goes to the same one.
    recorders: Vec<mpsc::Sender<RecordRequest>>,
    stop: watch::Receiver<bool>,
    rng: Mutex<SplitMix64>,
}

impl Shared {
    /// The allow-list the tenant's deliveries are vetted with: the node's
    /// `[webhooks] allow` plus the tenant's own, set by the system admin.
    /// An entry that does not parse (written by hand) allows nothing.
    async fn allow_list(&self, tenant: TenantId) -> Result<AllowList, StoreError> {
        let entries = self
            .store
            .tenant_webhook_allow(tenant)
            .await?
            .unwrap_or_default();
        let own = AllowList(
            entries
                .iter()
                .filter_map(|e| match e.parse::<Cidr>() {
                    Ok(c) => Some(c),
                    Err(error) => {
                        tracing::warn!(tenant_id = %tenant, %error, "webhooks: tenant allow-list entry ignored");
                        None
                    }
                })
                .collect(),
        );
        Ok(self.config.client.allow.with(&own))
    }

    /// Wakes (starting if needed) the tenant's worker.
    fn wake(self: &Arc<Self>, tenant: TenantId, reload: bool) {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let handle = workers.entry(tenant).or_insert_with(|| {
            let handle = Arc::new(WorkerHandle::default());
            let task = tokio::spawn(worker(Arc::clone(self), tenant, Arc::clone(&handle)));
            self.tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(task);
            handle
        });
        if reload {
            handle.reload.store(true, Ordering::Release);
        }
        handle.notify.notify_one();
    }
}

/// The result of [`Dispatcher::send_test`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestSent {
    pub event_id: String,
    pub delivered: bool,
    pub outcome: &'static str,
    pub http_status: Option<u16>,
    pub duration_ms: u64,
    pub response: Option<String>,
    pub error: Option<String>,
}

/// Why a test event could not be tried at all.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("no cdr_event endpoint is configured")]
    NotConfigured,
    #[error("the stored endpoint is unusable: {0}")]
    Invalid(EndpointError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A running dispatcher. Stop it with [`Dispatcher::stop`].
pub struct Dispatcher {
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
    recorder_stop: watch::Sender<bool>,
    fan_out: Mutex<Option<JoinHandle<()>>>,
    recorders: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("owner", &self.shared.config.owner)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Frees this node's stale leases, then starts the fan-out (woken by
    /// `wake`, the writer's `committed_global_sequence`, and by a poll),
    /// the recorder, and a worker for every tenant with pending deliveries.
    pub async fn start(
        store: Store,
        wake: watch::Receiver<u64>,
        config: DispatcherConfig,
    ) -> Result<Dispatcher, StoreError> {
        let released = store.release_webhook_leases(&config.owner).await?;
        if released > 0 {
            tracing::info!(
                released,
                "webhooks: deliveries in flight at the last stop will be sent again"
            );
        }
        let (stop_tx, stop) = watch::channel(false);
        let (recorder_stop, recorder_stopped) = watch::channel(false);
        let mut recorder_txs = Vec::new();
        let mut recorders = Vec::new();
        for _ in 0..config.recorders.max(1) {
            let (tx, rx) = mpsc::channel(4096);
            recorder_txs.push(tx);
            recorders.push(tokio::spawn(recorder(
                store.clone(),
                config.owner.clone(),
                rx,
                recorder_stopped.clone(),
            )));
        }
        let shared = Arc::new(Shared {
            client: Client::new(config.client.clone()),
            store,
            config,
            workers: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            recorders: recorder_txs,
            stop,
            rng: Mutex::new(jitter_rng()),
        });
        let fan_out = tokio::spawn(fan_out(Arc::clone(&shared), wake));
        Ok(Dispatcher {
            shared,
            stop_tx,
            recorder_stop,
            fan_out: Mutex::new(Some(fan_out)),
            recorders: Mutex::new(recorders),
        })
    }

    /// The tenant's configuration changed: reload it and look for work.
    pub fn endpoint_changed(&self, tenant: TenantId) {
        self.shared.wake(tenant, true);
    }

    /// Deliveries of the tenant became due (retry, replay).
    pub fn deliveries_due(&self, tenant: TenantId) {
        self.shared.wake(tenant, false);
    }

    pub fn client_config(&self) -> &ClientConfig {
        &self.shared.config.client
    }

    /// Sends one `test` event to the tenant's endpoint now (enabled or
    /// not), logs the attempt like any other, and returns its outcome. No
    /// retries, and the endpoint's health is not touched.
    pub async fn send_test(&self, tenant: TenantId) -> Result<TestSent, TestError> {
        let shared = &self.shared;
        let row = shared
            .store
            .webhook_endpoint(tenant)
            .await?
            .filter(|r| !r.url.is_empty())
            .ok_or(TestError::NotConfigured)?;
        let allow = shared.allow_list(tenant).await?;
        let endpoint = Endpoint::from_row(row, allow, None).map_err(TestError::Invalid)?;
        let now = now_ms();
        let event_id = random_uuid();
        let payload = json!({
            "event_type": "test",
            "event_id": event_id,
            "time": (now / 1000).to_string(),
            "tenant_id": tenant.to_string(),
        })
        .to_string();
        let lease_until = now + shared.config.lease.as_millis() as u64;
        let id = shared
            .store
            .insert_leased_webhook_delivery(
                tenant,
                &event_id,
                "test",
                &payload,
                &shared.config.owner,
                UnixMillis(now),
                UnixMillis(lease_until),
            )
            .await?;
        let claimed = ClaimedDelivery {
            id,
            tenant_id: tenant,
            event_id: event_id.clone(),
            sequence: 0,
            event_type: "test".into(),
            payload,
            attempts: 0,
            trigger: "test".into(),
            created_at: UnixMillis(now),
            manual_requests: 0,
        };
        let record = attempt_once(shared, &endpoint, &claimed).await;
        shared
            .store
            .record_webhook_attempts(&shared.config.owner, std::slice::from_ref(&record))
            .await?;
        Ok(TestSent {
            event_id,
            delivered: record.status == DeliveryStatus::Delivered,
            outcome: leak_outcome(&record.outcome),
            http_status: record.http_status,
            duration_ms: record.duration_ms,
            response: record.response,
            error: record.error,
        })
    }

    /// Stops fanning out and claiming, gives attempts in flight `grace` to
    /// finish and be recorded, abandons the rest (their leases are freed,
    /// so the next start sends them again).
    /// Idempotent; later calls return at once.
    pub async fn stop(&self, grace: Duration) {
        let _ = self.stop_tx.send(true);
        let fan_out = self
            .fan_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(fan_out) = fan_out else { return };
        let _ = fan_out.await;
        let tasks: Vec<_> =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let deadline = tokio::time::Instant::now() + grace;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
        let _ = self.recorder_stop.send(true);
        let recorders: Vec<_> =
            std::mem::take(&mut *self.recorders.lock().unwrap_or_else(|p| p.into_inner()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        for recorder in recorders {
            let _ = tokio::time::timeout_at(deadline, recorder).await;
        }
        let shared = &self.shared;
        if let Err(e) = shared
            .store
            .release_webhook_leases(&shared.config.owner)
            .await
        {
            tracing::warn!(error = %e, "webhooks: could not free leases at stop; they expire");
        }
    }
}

fn leak_outcome(outcome: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "success",
        "http_error",
        "redirect",
        "not_found",
        "gone",
        "throttled",
        "timeout",
        "connect_error",
        "blocked",
        "tls_error",
        "protocol_error",
    ];
    KNOWN
        .iter()
        .find(|k| **k == outcome)
        .copied()
        .unwrap_or("unknown")
}

/// A random (version 4) UUID for events outside the outbox.
fn random_uuid() -> String {
    let mut b = [0u8; 16];
    if getrandom::getrandom(&mut b).is_err() {
        b = now_ms()
            .to_le_bytes()
            .repeat(2)
            .try_into()
            .unwrap_or([7; 16]);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

async fn fan_out(shared: Arc<Shared>, mut wake: watch::Receiver<u64>) {
    let mut stop = shared.stop.clone();
    let mut writer_gone = false;
    let mut failures = 0u32;
    let config = &shared.config;
    let mut last_scan: Option<Instant> = None;
    let mut last_prune: Option<Instant> = None;
    const PRUNE_EVERY: Duration = Duration::from_secs(3600);
    loop {
        if *stop.borrow() {
            break;
        }
        let mut more = false;
        match shared
            .store
            .webhook_fan_out(config.fan_out_batch, UnixMillis(now_ms()))
            .await
        {
            Ok(f) => {
                failures = 0;
                if f.missing > 0 {
                    tracing::warn!(
                        missing = f.missing,
                        cursor = f.cursor,
                        "webhooks: outbox events were pruned before they were fanned out"
                    );
                }
                for tenant in f.created.keys() {
                    shared.wake(*tenant, false);
                }
                more = f.read == config.fan_out_batch as usize;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!(error = %e, failures, "webhooks: fan-out failed, retrying");
                }
            }
        }
        if last_scan.is_none_or(|at| at.elapsed() >= config.scan) {
            last_scan = Some(Instant::now());
            match shared.store.tenants_with_pending_webhooks().await {
                Ok(tenants) => {
                    for tenant in tenants {
                        shared.wake(tenant, false);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhooks: scan for due deliveries failed"),
            }
        }
        if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            let before = now_ms().saturating_sub(config.retention.as_millis() as u64);
            match shared
                .store
                .prune_webhook_deliveries(UnixMillis(before))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(deliveries = n, "webhooks: pruned finished deliveries"),
                Err(e) => tracing::warn!(error = %e, "webhooks: pruning the delivery log failed"),
            }
        }
        if more {
            continue;
        }
        tokio::select! {
            changed = wake.changed(), if !writer_gone => {
                if changed.is_err() {
                    writer_gone = true;
                }
            }
            () = tokio::time::sleep(config.poll) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn worker(shared: Arc<Shared>, tenant: TenantId, handle: Arc<WorkerHandle>) {
    let mut stop = shared.stop.clone();
    let config = &shared.config;
    let mut endpoint: Option<Arc<Endpoint>> = None;
    let mut loaded = false;
    // Reloaded at least this often: another node may have changed it.
    let mut loaded_at = Instant::now();
    let mut running: JoinSet<()> = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let stale = loaded_at.elapsed() >= config.scan;
        if !loaded || stale || handle.reload.swap(false, Ordering::AcqRel) {
            loaded = true;
            loaded_at = Instant::now();
            let read = match shared.store.webhook_endpoint(tenant).await {
                Ok(Some(row)) if row.enabled => {
                    shared.allow_list(tenant).await.map(|a| Some((row, a)))
                }
                Ok(_) => Ok(None),
                Err(e) => Err(e),
            };
            endpoint = match read {
                Ok(Some((row, allow))) => match Endpoint::from_row(row, allow, endpoint.as_deref())
                {
                    Ok(e) => Some(Arc::new(e)),
                    Err(e) => {
                        tracing::warn!(tenant_id = %tenant, error = %e, "webhooks: endpoint unusable");
                        None
                    }
                },
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(tenant_id = %tenant, error = %e, "webhooks: cannot read the endpoint");
                    loaded = false;
                    None
                }
            };
        }
        if endpoint
            .as_ref()
            .is_some_and(|e| e.disabled.load(Ordering::Acquire))
        {
            endpoint = None;
        }
        let mut wake_at: Option<u64> = if loaded { None } else { Some(now_ms() + 1000) };
        // Claims refill half the slots or more at a time: one claim
        // transaction per several attempts, not one per attempt.
        let may_claim = running.len() <= config.concurrency / 2;
        if let Some(ep) = endpoint.as_ref().filter(|_| may_claim) {
            let free = config.concurrency.saturating_sub(running.len());
            let mut all_claimed = false;
            if free > 0 {
                let now = now_ms();
                match shared
                    .store
                    .claim_webhook_deliveries(
                        tenant,
                        &config.owner,
                        UnixMillis(now),
                        UnixMillis(now + config.lease.as_millis() as u64),
                        free as u32,
                    )
                    .await
                {
                    Ok(batch) => {
                        let full = batch.len() == free;
                        for delivery in batch {
                            let shared = Arc::clone(&shared);
                            let ep = Arc::clone(ep);
                            running.spawn(async move {
                                let record = attempt_once(&shared, &ep, &delivery).await;
                                let (tx, rx) = oneshot::channel();
                                let n = shared.recorders.len();
                                let queue = &shared.recorders
                                    [record.delivery_id.rem_euclid(n as i64) as usize];
                                if queue.send((record, tx)).await.is_ok() {
                                    let _ = rx.await;
                                }
                            });
                        }
                        // Not full: nothing else is due now; full: more may
                        // be, claimed when slots free.
                        all_claimed = !full;
                    }
                    Err(e) => {
                        tracing::warn!(tenant_id = %tenant, error = %e, "webhooks: claim failed");
                        wake_at = Some(now + 1000);
                    }
                }
            }
            if all_claimed && wake_at.is_none() {
                match shared.store.next_webhook_due(tenant).await {
                    Ok(Some(due)) => wake_at = Some(due.0.max(now_ms() + 5)),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(tenant_id = %tenant, error = %e, "webhooks: cannot read the next due time");
                        wake_at = Some(now_ms() + 1000);
                    }
                }
            }
        }
        let sleep = wake_at.map(|at| Duration::from_millis(at.saturating_sub(now_ms())));
        tokio::select! {
            () = handle.notify.notified() => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            () = tokio::time::sleep(sleep.unwrap_or_default()), if sleep.is_some() => {}
            _ = stop.changed() => {}
        }
    }
    // Stopping: let attempts in flight finish (Dispatcher::stop bounds it).
    while running.join_next().await.is_some() {}
}

/// One attempt of `delivery` to `ep`: sign, send, decide.
async fn attempt_once(shared: &Shared, ep: &Endpoint, delivery: &ClaimedDelivery) -> AttemptRecord {
    let started_ms = now_ms();
    let timestamp = started_ms / 1000;
    let body = Bytes::from(delivery.payload.clone());
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(3);
    let id_value = HeaderValue::try_from(delivery.event_id.as_str());
    let result = match id_value {
        Err(e) => Err(AttemptError::Protocol(format!("webhook-id: {e}"))),
        Ok(id) => {
            headers.push((HeaderName::from_static("webhook-id"), id));
            headers.push((
                HeaderName::from_static("webhook-timestamp"),
                HeaderValue::from(timestamp),
            ));
            let secrets = signing_secrets(&ep.row, UnixMillis(started_ms));
            let refs: Vec<_> = secrets.iter().collect();
            if let Some(sig) = signature_header(&refs, &delivery.event_id, timestamp, &body)
                && let Ok(v) = HeaderValue::try_from(sig)
            {
                headers.push((HeaderName::from_static("webhook-signature"), v));
            }
            shared
                .client
                .post_allowing(&ep.url, &headers, body, &ep.auth, &ep.allow)
                .await
        }
    };
    let finished = now_ms();
    let duration_ms = finished.saturating_sub(started_ms);
    let answer = match &result {
        Ok(a) => Ok(Answer {
            status: a.status,
            retry_after: a.retry_after.clone(),
        }),
        Err(e) => Err(e.clone()),
    };
    let attempt = delivery.attempts + 1;
    let failing = *ep.failing_since.lock().unwrap_or_else(|p| p.into_inner());
    let mut decision = {
        let mut rng = shared.rng.lock().unwrap_or_else(|p| p.into_inner());
        shared
            .config
            .policy
            .decide(attempt, &answer, finished, failing, &mut *rng)
    };
    if delivery.trigger == "test" {
        decision.endpoint = EndpointChange::Unchanged;
        decision.next_attempt_at = None;
        if decision.status == DeliveryStatus::Pending {
            decision.status = DeliveryStatus::Failed;
        }
    }
    {
        let mut f = ep.failing_since.lock().unwrap_or_else(|p| p.into_inner());
        match &decision.endpoint {
            EndpointChange::Healthy => *f = None,
            EndpointChange::Failing { at } => {
                f.get_or_insert(at.0);
            }
            EndpointChange::Disable { reason } => {
                ep.disabled.store(true, Ordering::Release);
                tracing::warn!(tenant_id = %delivery.tenant_id, reason = %reason, url = %ep.url, "webhooks: endpoint disabled");
            }
            EndpointChange::Unchanged => {}
        }
    }
    let (http_status, response, error) = match result {
        Ok(a) => (Some(a.status), Some(a.body), None),
        Err(e) => (None, None, Some(e.to_string())),
    };
    super::stats::attempted(decision.outcome);
    tracing::debug!(
        tenant_id = %delivery.tenant_id,
        event_id = %delivery.event_id,
        attempt,
        outcome = decision.outcome,
        http_status,
        "webhook attempt"
    );
    AttemptRecord {
        delivery_id: delivery.id,
        claimed_requests: delivery.manual_requests,
        tenant_id: delivery.tenant_id,
        attempt,
        trigger: delivery.trigger.clone(),
        at: UnixMillis(started_ms),
        duration_ms,
        outcome: decision.outcome.to_owned(),
        http_status,
        response,
        error,
        status: decision.status,
        next_attempt_at: decision.next_attempt_at.map(UnixMillis),
        endpoint: decision.endpoint,
    }
}

/// Writes finished attempts in batches; answers each with whether its
/// lease still held.
async fn recorder(
    store: Store,
    owner: String,
    mut rx: mpsc::Receiver<RecordRequest>,
    mut stop: watch::Receiver<bool>,
) {
    const MAX_BATCH: usize = 256;
    loop {
        // After the stop signal: drain what is queued, then end.
        let first = if *stop.borrow() {
            rx.try_recv().ok()
        } else {
            tokio::select! {
                biased;
                first = rx.recv() => first,
                _ = stop.changed() => rx.try_recv().ok(),
            }
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let records: Vec<AttemptRecord> = batch.iter().map(|(r, _)| r.clone()).collect();
        let mut failures = 0u32;
        let applied = loop {
            match store.record_webhook_attempts(&owner, &records).await {
                Ok(applied) => break applied,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, failures, "webhooks: cannot record attempts");
                    if failures >= 5 {
                        // The leases expire and the deliveries are tried
                        // again: a duplicate with the same webhook-id, never
                        // a loss.
                        break vec![false; records.len()];
                    }
                    tokio::time::sleep(Duration::from_millis(100 << failures)).await;
                }
            }
        };
        for ((_, tx), ok) in batch.into_iter().zip(applied) {
            let _ = tx.send(ok);
        }
    }
}
