//! Webhook delivery state (SPEC §5): each tenant's `cdr_event` endpoint,
//! one delivery row per event, and the delivery log.
//!
//! The `delivery` crate's dispatcher drives these tables; nothing here
//! decides policy (when to retry, what a status code means). The shape:
//!
//! - **Fan-out** ([`fan_out`]): one transaction reads the outbox after the
//!   single `webhook_cursor` row, inserts a delivery (with its own copy of
//!   the payload) for every event whose tenant has an enabled endpoint
//!   accepting its type, and moves the cursor. The cursor row is updated
//!   first, which locks it, so nodes sharing a PostgreSQL fan out in turn
//!   and never twice (`ON CONFLICT DO NOTHING` on `(tenant_id, event_id)`
//!   is the second fence). The outbox's `global_sequence` is gap-free and
//!   visible in commit order, so a cursor never skips an event.
//! - **Claims** ([`claim`]): a node takes due deliveries of one tenant by
//!   writing its name and a lease deadline into them in one `UPDATE …
//!   RETURNING`. The outer `WHERE` repeats the lease condition, so when two
//!   nodes race for a row PostgreSQL re-checks it on the row the winner
//!   wrote and the loser skips it. A node that dies mid-attempt leaves a
//!   lease that expires; the row is then due again, with the same
//!   `event_id` (the `webhook-id`). This is portable SQL (SQLite has no
//!   `SKIP LOCKED`); a competing claim waits at most for one short
//!   statement.
//! - **Outcomes** ([`record`]): one transaction per batch of finished
//!   attempts writes the log rows and the deliveries' new state, only where
//!   the lease is still this node's.
//!
//! Payloads are copied into `webhook_deliveries` because retries run for
//! about two days and the outbox may be pruned after that.

use std::collections::HashMap;

use cdr::{TenantId, UnixMillis};

use crate::convert::{db_id, db_ms, get_id, get_ms, get_opt_ms, get_u64};
use crate::db::{Conn, Row, args};
use crate::error::StoreError;
use crate::secrets::{Sealer, webhook_place};

/// A tenant's `cdr_event` endpoint as stored. Validation is the delivery
/// crate's job; the store keeps what it is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub tenant_id: TenantId,
    pub enabled: bool,
    pub url: String,
    /// `DISABLE`, `BASIC`, `DIGEST` or `BEARER`.
    pub auth: String,
    pub username: String,
    pub password: String,
    pub token: String,
    /// `whsec_…`.
    pub secret: Option<String>,
    /// The secret replaced last, still signing until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<UnixMillis>,
    /// `None`: every event type.
    pub event_types: Option<Vec<String>>,
    /// Why the dispatcher disabled it (`gone`, `failing`).
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<UnixMillis>,
    /// First failure since the last success.
    pub failing_since: Option<UnixMillis>,
    pub updated_at: UnixMillis,
}

/// What happens to the delivery after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A delivery a node has leased and is about to attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub tenant_id: TenantId,
    pub event_id: String,
    pub sequence: u64,
    pub event_type: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// `scheduled`, or `manual` after a retry or replay request.
    pub trigger: String,
    /// When the event was committed.
    pub created_at: UnixMillis,
    /// The delivery's retry/replay request count when it was claimed
    /// (hand it back in [`AttemptRecord::claimed_requests`]).
    pub manual_requests: i64,
}

/// What an attempt did to the endpoint's health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointChange {
    Unchanged,
    /// A success: the endpoint is not failing any more.
    Healthy,
    /// A failure: failing since `at`, unless it already was.
    Failing {
        at: UnixMillis,
    },
    /// Turn it off (`gone`, `failing`) and log `endpoint_disabled`.
    Disable {
        reason: String,
    },
}

/// One finished attempt, to be written with [`record`].
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    /// [`ClaimedDelivery::manual_requests`]: if a retry or replay arrived
    /// since, the delivery stays due instead of taking this outcome.
    pub claimed_requests: i64,
    pub tenant_id: TenantId,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub trigger: String,
    pub at: UnixMillis,
    pub duration_ms: u64,
    pub outcome: String,
    pub http_status: Option<u16>,
    /// The first 4 KiB of the response body.
    pub response: Option<String>,
    pub error: Option<String>,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<UnixMillis>,
    pub endpoint: EndpointChange,
}

/// One row of the delivery log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub id: i64,
    /// `attempt` or `endpoint_disabled`.
    pub kind: String,
    pub attempt: Option<u32>,
    pub trigger: String,
    pub at: UnixMillis,
    pub duration_ms: Option<u64>,
    pub outcome: String,
    pub http_status: Option<u16>,
    pub response: Option<String>,
    pub error: Option<String>,
    pub next_attempt_at: Option<UnixMillis>,
}

/// A delivery with its log, for the REST API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub tenant_id: TenantId,
    pub event_id: String,
    pub sequence: u64,
    pub event_type: String,
    pub created_at: UnixMillis,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<UnixMillis>,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
    pub updated_at: UnixMillis,
    pub log: Vec<LogEntry>,
}

/// What one fan-out transaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FanOut {
    /// The cursor after the transaction.
    pub cursor: u64,
    /// Outbox events read.
    pub read: usize,
    /// Deliveries created, per tenant.
    pub created: HashMap<TenantId, usize>,
    /// Events the outbox no longer had (pruned before they were fanned
    /// out): the cursor jumped over them.
    pub missing: u64,
}

const ENDPOINT_COLUMNS: &str = "tenant_id, enabled, url, auth, username, password, token, secret, \
     previous_secret, previous_secret_until, event_types, disabled_reason, disabled_at, \
     failing_since, updated_at";

fn opt_i64(field: &'static str, at: Option<UnixMillis>) -> Result<Option<i64>, StoreError> {
    at.map(|at| db_ms(field, at)).transpose()
}

fn small(column: &str, value: Option<i64>) -> Result<Option<u16>, StoreError> {
    value
        .map(|v| {
            u16::try_from(v)
                .map_err(|_| StoreError::Corrupt(format!("{column} = {v} out of range")))
        })
        .transpose()
}

fn count(column: &str, value: i64) -> Result<u32, StoreError> {
    u32::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{column} = {value} out of range")))
}

fn endpoint_from_row(row: &impl Row, sealer: &Sealer) -> Result<WebhookEndpoint, StoreError> {
    let tenant = row.int("tenant_id")?;
    let open = |column: &str| -> Result<String, StoreError> {
        sealer.open(&webhook_place(column, tenant), &row.text(column)?)
    };
    let open_opt = |column: &str| -> Result<Option<String>, StoreError> {
        sealer.open_opt(&webhook_place(column, tenant), row.opt_text(column)?)
    };
    let event_types = row
        .opt_text("event_types")?
        .map(|text| {
            serde_json::from_str::<Vec<String>>(&text)
                .map_err(|e| StoreError::Corrupt(format!("webhook_endpoints.event_types: {e}")))
        })
        .transpose()?;
    Ok(WebhookEndpoint {
        tenant_id: get_id(row, "tenant_id")?,
        enabled: row.boolean("enabled")?,
        url: row.text("url")?,
        auth: row.text("auth")?,
        username: row.text("username")?,
        password: open("password")?,
        token: open("token")?,
        secret: open_opt("secret")?,
        previous_secret: open_opt("previous_secret")?,
        previous_secret_until: get_opt_ms(row, "previous_secret_until")?,
        event_types,
        disabled_reason: row.opt_text("disabled_reason")?,
        disabled_at: get_opt_ms(row, "disabled_at")?,
        failing_since: get_opt_ms(row, "failing_since")?,
        updated_at: get_ms(row, "updated_at")?,
    })
}

pub(crate) async fn put_endpoint(
    conn: &mut impl Conn,
    sealer: &Sealer,
    e: &WebhookEndpoint,
) -> Result<(), StoreError> {
    let tenant = db_id("tenant_id", e.tenant_id.id())?;
    let place = |column: &str| webhook_place(column, tenant);
    let password = sealer.seal(&place("password"), &e.password)?;
    let token = sealer.seal(&place("token"), &e.token)?;
    let secret = sealer.seal_opt(&place("secret"), e.secret.as_deref())?;
    let previous_secret =
        sealer.seal_opt(&place("previous_secret"), e.previous_secret.as_deref())?;
    let event_types = e
        .event_types
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|err| StoreError::Corrupt(format!("event_types: {err}")))?;
    conn.execute(
        "INSERT INTO webhook_endpoints (tenant_id, enabled, url, auth, username, password, \
             token, secret, previous_secret, previous_secret_until, event_types, \
             disabled_reason, disabled_at, failing_since, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (tenant_id) DO UPDATE SET enabled = excluded.enabled, \
             url = excluded.url, auth = excluded.auth, username = excluded.username, \
             password = excluded.password, token = excluded.token, secret = excluded.secret, \
             previous_secret = excluded.previous_secret, \
             previous_secret_until = excluded.previous_secret_until, \
             event_types = excluded.event_types, disabled_reason = excluded.disabled_reason, \
             disabled_at = excluded.disabled_at, failing_since = excluded.failing_since, \
             updated_at = excluded.updated_at",
        &args![
            tenant,
            e.enabled,
            e.url.as_str(),
            e.auth.as_str(),
            e.username.as_str(),
            password.as_str(),
            token.as_str(),
            secret.as_deref(),
            previous_secret.as_deref(),
            opt_i64("previous_secret_until", e.previous_secret_until)?,
            event_types.as_deref(),
            e.disabled_reason.as_deref(),
            opt_i64("disabled_at", e.disabled_at)?,
            opt_i64("failing_since", e.failing_since)?,
            db_ms("updated_at", e.updated_at)?,
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn endpoint(
    conn: &mut impl Conn,
    sealer: &Sealer,
    tenant_id: TenantId,
) -> Result<Option<WebhookEndpoint>, StoreError> {
    const SQL: &str = "SELECT tenant_id, enabled, url, auth, username, password, token, secret, \
     previous_secret, previous_secret_until, event_types, disabled_reason, disabled_at, \
     failing_since, updated_at FROM webhook_endpoints WHERE tenant_id = $1";
    debug_assert!(SQL.contains(ENDPOINT_COLUMNS));
    conn.fetch_optional(SQL, &args![db_id("tenant_id", tenant_id.id())?])
        .await?
        .as_ref()
        .map(|row| endpoint_from_row(row, sealer))
        .transpose()
}

pub(crate) async fn endpoints(
    conn: &mut impl Conn,
    sealer: &Sealer,
) -> Result<Vec<WebhookEndpoint>, StoreError> {
    conn.fetch_all(
        "SELECT tenant_id, enabled, url, auth, username, password, token, secret, \
         previous_secret, previous_secret_until, event_types, disabled_reason, disabled_at, \
         failing_since, updated_at FROM webhook_endpoints ORDER BY tenant_id",
        &args![],
    )
    .await?
    .iter()
    .map(|row| endpoint_from_row(row, sealer))
    .collect()
}

/// The enabled endpoints' event filters by tenant (`None`: every type):
/// what the fan-out needs, without opening any secret.
async fn enabled_filters(
    conn: &mut impl Conn,
) -> Result<HashMap<TenantId, Option<Vec<String>>>, StoreError> {
    conn.fetch_all(
        "SELECT tenant_id, event_types FROM webhook_endpoints WHERE enabled ORDER BY tenant_id",
        &args![],
    )
    .await?
    .iter()
    .map(|row| {
        let types = row
            .opt_text("event_types")?
            .map(|text| {
                serde_json::from_str::<Vec<String>>(&text)
                    .map_err(|e| StoreError::Corrupt(format!("webhook_endpoints.event_types: {e}")))
            })
            .transpose()?;
        Ok((get_id(row, "tenant_id")?, types))
    })
    .collect()
}

/// Fans out at most `limit` outbox events after the cursor.
pub(crate) async fn fan_out(
    conn: &mut impl Conn,
    limit: u32,
    now: UnixMillis,
) -> Result<FanOut, StoreError> {
    // Lock the cursor row before reading it (PostgreSQL; SQLite's
    // BEGIN IMMEDIATE already holds the database).
    let row = conn
        .fetch_optional(
            "UPDATE webhook_cursor SET last_global_sequence = last_global_sequence \
             WHERE id = 1 RETURNING last_global_sequence",
            &args![],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("webhook_cursor has no row".into()))?;
    let cursor = get_u64(&row, "last_global_sequence")?;
    let events = crate::outbox::since_global(conn, cursor, limit).await?;
    let mut out = FanOut {
        cursor,
        read: events.len(),
        ..FanOut::default()
    };
    let Some(last) = events.last().map(|e| e.global_sequence) else {
        return Ok(out);
    };
    let missing = events[0].global_sequence.saturating_sub(cursor + 1);
    out.missing = missing;
    let endpoints = enabled_filters(conn).await?;
    let now = db_ms("now", now)?;
    for event in &events {
        let Some(event_types) = endpoints.get(&event.tenant_id) else {
            continue;
        };
        let wanted = event_types
            .as_ref()
            .is_none_or(|types| types.iter().any(|t| t == event.event_type.as_str()));
        if !wanted {
            continue;
        }
        let inserted = conn
            .execute(
                "INSERT INTO webhook_deliveries (tenant_id, event_id, sequence, event_type, \
                 payload, created_at, status, attempts, next_attempt_at, updated_at, \
                 next_trigger) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, \
                 'scheduled') ON CONFLICT (tenant_id, event_id) DO NOTHING",
                &args![
                    db_id("tenant_id", event.tenant_id.id())?,
                    event.event_id.as_str(),
                    crate::convert::db_u64("sequence", event.sequence)?,
                    event.event_type.as_str(),
                    event.payload.as_str(),
                    db_ms("created_at", event.created_at)?,
                    now,
                ],
            )
            .await?;
        if inserted > 0 {
            *out.created.entry(event.tenant_id).or_default() += 1;
        }
    }
    conn.execute(
        "UPDATE webhook_cursor SET last_global_sequence = $1 WHERE id = 1",
        &args![crate::convert::db_u64("cursor", last)?],
    )
    .await?;
    out.cursor = last;
    Ok(out)
}

fn claimed_from_row(row: &impl Row) -> Result<ClaimedDelivery, StoreError> {
    Ok(ClaimedDelivery {
        id: row.int("id")?,
        tenant_id: get_id(row, "tenant_id")?,
        event_id: row.text("event_id")?,
        sequence: get_u64(row, "sequence")?,
        event_type: row.text("event_type")?,
        payload: row.text("payload")?,
        attempts: count("attempts", row.int("attempts")?)?,
        trigger: row.text("next_trigger")?,
        created_at: get_ms(row, "created_at")?,
        manual_requests: row.int("manual_requests")?,
    })
}

pub(crate) async fn claim(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    owner: &str,
    now: UnixMillis,
    lease_until: UnixMillis,
    limit: u32,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let mut claimed: Vec<ClaimedDelivery> = conn
        .fetch_all(
            "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 \
             WHERE id IN (SELECT id FROM webhook_deliveries WHERE tenant_id = $3 \
             AND status = 'pending' AND next_attempt_at <= $4 \
             AND (lease_until IS NULL OR lease_until <= $4) \
             ORDER BY next_attempt_at, id LIMIT $5) \
             AND status = 'pending' AND (lease_until IS NULL OR lease_until <= $4) \
             RETURNING id, tenant_id, event_id, sequence, event_type, payload, attempts, \
             next_trigger, created_at, manual_requests",
            &args![
                owner,
                db_ms("lease_until", lease_until)?,
                db_id("tenant_id", tenant_id.id())?,
                db_ms("now", now)?,
                i64::from(limit),
            ],
        )
        .await?
        .iter()
        .map(claimed_from_row)
        .collect::<Result<_, _>>()?;
    claimed.sort_by_key(|c| (c.sequence, c.id));
    Ok(claimed)
}

/// When the tenant's next pending delivery is due (a leased one: when its
/// lease ends).
pub(crate) async fn next_due(
    conn: &mut impl Conn,
    tenant_id: TenantId,
) -> Result<Option<UnixMillis>, StoreError> {
    let row = conn
        .fetch_optional(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at \
             THEN lease_until ELSE next_attempt_at END) AS due FROM webhook_deliveries \
             WHERE tenant_id = $1 AND status = 'pending'",
            &args![db_id("tenant_id", tenant_id.id())?],
        )
        .await?;
    match row {
        Some(row) => get_opt_ms(&row, "due"),
        None => Ok(None),
    }
}

/// Tenants with pending deliveries (what a starting dispatcher must
/// resume).
pub(crate) async fn pending_tenants(conn: &mut impl Conn) -> Result<Vec<TenantId>, StoreError> {
    conn.fetch_all(
        "SELECT DISTINCT tenant_id FROM webhook_deliveries WHERE status = 'pending' \
         ORDER BY tenant_id",
        &args![],
    )
    .await?
    .iter()
    .map(|row| get_id(row, "tenant_id"))
    .collect()
}

/// Writes finished attempts; returns, per record, whether it still held
/// its lease (a `false` means another node took the delivery over).
pub(crate) async fn record(
    conn: &mut impl Conn,
    owner: &str,
    records: &[AttemptRecord],
) -> Result<Vec<bool>, StoreError> {
    // Rows in id order, as every other multi-row writer here should, so
    // two transactions never wait on each other's rows crosswise.
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|&i| records[i].delivery_id);
    let mut applied = vec![false; records.len()];
    for i in order {
        let r = &records[i];
        let tenant = db_id("tenant_id", r.tenant_id.id())?;
        let at = db_ms("at", r.at)?;
        let next = opt_i64("next_attempt_at", r.next_attempt_at)?;
        let http_status = r.http_status.map(i64::from);
        let changed = conn
            .execute(
                "UPDATE webhook_deliveries SET \
                 status = CASE WHEN manual_requests = $9 THEN $1 ELSE 'pending' END, \
                 attempts = $2, \
                 next_attempt_at = CASE WHEN manual_requests = $9 THEN $3 ELSE $6 END, \
                 lease_owner = NULL, lease_until = NULL, last_http_status = $4, last_error = $5, \
                 updated_at = $6, \
                 next_trigger = CASE WHEN manual_requests = $9 THEN 'scheduled' ELSE 'manual' END \
                 WHERE id = $7 AND lease_owner = $8",
                &args![
                    r.status.as_str(),
                    i64::from(r.attempt),
                    next,
                    http_status,
                    r.error.as_deref(),
                    at,
                    r.delivery_id,
                    owner,
                    r.claimed_requests,
                ],
            )
            .await?;
        applied[i] = changed > 0;
        if changed == 0 {
            continue;
        }
        conn.execute(
            "INSERT INTO webhook_log (tenant_id, delivery_id, kind, attempt, trigger_kind, \
             logged_at, duration_ms, outcome, http_status, response, error, next_attempt_at) \
             VALUES ($1, $2, 'attempt', $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &args![
                tenant,
                r.delivery_id,
                i64::from(r.attempt),
                r.trigger.as_str(),
                at,
                crate::convert::db_u64("duration_ms", r.duration_ms)?,
                r.outcome.as_str(),
                http_status,
                r.response.as_deref(),
                r.error.as_deref(),
                next,
            ],
        )
        .await?;
        match &r.endpoint {
            EndpointChange::Unchanged => {}
            EndpointChange::Healthy => {
                conn.execute(
                    "UPDATE webhook_endpoints SET failing_since = NULL \
                     WHERE tenant_id = $1 AND failing_since IS NOT NULL",
                    &args![tenant],
                )
                .await?;
            }
            EndpointChange::Failing { at: since } => {
                conn.execute(
                    "UPDATE webhook_endpoints SET failing_since = $2 \
                     WHERE tenant_id = $1 AND failing_since IS NULL",
                    &args![tenant, db_ms("failing_since", *since)?],
                )
                .await?;
            }
            EndpointChange::Disable { reason } => {
                disable(conn, r.tenant_id, reason, r.at, Some(r.delivery_id)).await?;
            }
        }
    }
    Ok(applied)
}

/// Turns the endpoint off and logs `endpoint_disabled`; `false` if it was
/// already off.
pub(crate) async fn disable(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    reason: &str,
    at: UnixMillis,
    delivery_id: Option<i64>,
) -> Result<bool, StoreError> {
    let tenant = db_id("tenant_id", tenant_id.id())?;
    let at = db_ms("at", at)?;
    let changed = conn
        .execute(
            "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $2, \
             disabled_at = $3 WHERE tenant_id = $1 AND enabled",
            &args![tenant, reason, at],
        )
        .await?;
    if changed == 0 {
        return Ok(false);
    }
    conn.execute(
        "INSERT INTO webhook_log (tenant_id, delivery_id, kind, trigger_kind, logged_at, \
         outcome) VALUES ($1, $2, 'endpoint_disabled', 'scheduled', $3, $4)",
        &args![tenant, delivery_id, at, reason],
    )
    .await?;
    Ok(true)
}

/// Inserts a delivery outside the outbox (a test event), already leased by
/// `owner`; returns its id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_leased(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    event_id: &str,
    event_type: &str,
    payload: &str,
    owner: &str,
    now: UnixMillis,
    lease_until: UnixMillis,
) -> Result<i64, StoreError> {
    let now = db_ms("now", now)?;
    let row = conn
        .fetch_optional(
            "INSERT INTO webhook_deliveries (tenant_id, event_id, sequence, event_type, payload, \
             created_at, status, attempts, next_attempt_at, lease_owner, lease_until, \
             updated_at, next_trigger) VALUES ($1, $2, 0, $3, $4, $5, 'pending', 0, $5, $6, $7, \
             $5, 'test') RETURNING id",
            &args![
                db_id("tenant_id", tenant_id.id())?,
                event_id,
                event_type,
                payload,
                now,
                owner,
                db_ms("lease_until", lease_until)?,
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("insert returned no id".into()))?;
    Ok(row.int("id")?)
}

/// Makes one delivery due now as a manual retry; `false` if the tenant
/// has no delivery `event_id`.
pub(crate) async fn retry(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    event_id: &str,
    now: UnixMillis,
) -> Result<bool, StoreError> {
    let changed = conn
        .execute(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, \
             next_trigger = 'manual', updated_at = $3, manual_requests = manual_requests + 1 \
             WHERE tenant_id = $1 AND event_id = $2 AND sequence > 0",
            &args![
                db_id("tenant_id", tenant_id.id())?,
                event_id,
                db_ms("now", now)?
            ],
        )
        .await?;
    Ok(changed > 0)
}

/// The tenant's last committed `sequence` (0 before its first event).
pub(crate) async fn last_sequence(
    conn: &mut impl Conn,
    tenant_id: TenantId,
) -> Result<u64, StoreError> {
    match conn
        .fetch_optional(
            "SELECT last_sequence FROM tenant_sequences WHERE tenant_id = $1",
            &args![db_id("tenant_id", tenant_id.id())?],
        )
        .await?
    {
        Some(row) => get_u64(&row, "last_sequence"),
        None => Ok(0),
    }
}

/// One batch of a replay (security review, finding 8): the tenant's
/// events with `after < sequence <= upto`. Existing deliveries become due
/// now, and outbox events already fanned out without a delivery (the
/// endpoint was off, or filtered them) get one. Tenant sequences have no
/// gaps, so a batch touches at most `upto - after` rows of each table and
/// its transaction stays short. Returns how many deliveries were scheduled.
pub(crate) async fn replay_batch(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    after: u64,
    upto: u64,
    event_types: Option<&[String]>,
    now: UnixMillis,
) -> Result<u64, StoreError> {
    let tenant = db_id("tenant_id", tenant_id.id())?;
    let from = crate::convert::db_u64("from_sequence", after)?;
    let to = crate::convert::db_u64("upto", upto)?;
    let now_ms = db_ms("now", now)?;
    let mut scheduled = conn
        .execute(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3, \
             next_trigger = 'manual', updated_at = $3, manual_requests = manual_requests + 1 \
             WHERE tenant_id = $1 AND sequence > $2 AND sequence <= $4",
            &args![tenant, from, now_ms, to],
        )
        .await?;
    let row = conn
        .fetch_optional(
            "SELECT last_global_sequence FROM webhook_cursor WHERE id = 1",
            &args![],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("webhook_cursor has no row".into()))?;
    let cursor = get_u64(&row, "last_global_sequence")?;
    let width = u32::try_from(upto.saturating_sub(after)).unwrap_or(u32::MAX);
    let page = crate::outbox::after(conn, tenant_id, after, width).await?;
    for event in page
        .iter()
        .filter(|e| e.sequence <= upto && e.global_sequence <= cursor)
    {
        if event_types.is_some_and(|t| !t.iter().any(|t| t == event.event_type.as_str())) {
            continue;
        }
        scheduled += conn
            .execute(
                "INSERT INTO webhook_deliveries (tenant_id, event_id, sequence, event_type, \
                 payload, created_at, status, attempts, next_attempt_at, updated_at, \
                 next_trigger) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, \
                 'manual') ON CONFLICT (tenant_id, event_id) DO NOTHING",
                &args![
                    tenant,
                    event.event_id.as_str(),
                    crate::convert::db_u64("sequence", event.sequence)?,
                    event.event_type.as_str(),
                    event.payload.as_str(),
                    db_ms("created_at", event.created_at)?,
                    now_ms,
                ],
            )
            .await?;
    }
    Ok(scheduled)
}

fn delivery_from_row(row: &impl Row) -> Result<Delivery, StoreError> {
    let status = row.text("status")?;
    Ok(Delivery {
        id: row.int("id")?,
        tenant_id: get_id(row, "tenant_id")?,
        event_id: row.text("event_id")?,
        sequence: get_u64(row, "sequence")?,
        event_type: row.text("event_type")?,
        created_at: get_ms(row, "created_at")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery status {status:?}")))?,
        attempts: count("attempts", row.int("attempts")?)?,
        next_attempt_at: get_opt_ms(row, "next_attempt_at")?,
        last_http_status: small("last_http_status", row.opt_int("last_http_status")?)?,
        last_error: row.opt_text("last_error")?,
        updated_at: get_ms(row, "updated_at")?,
        log: Vec::new(),
    })
}

fn log_from_row(row: &impl Row) -> Result<(Option<i64>, LogEntry), StoreError> {
    Ok((
        row.opt_int("delivery_id")?,
        LogEntry {
            id: row.int("id")?,
            kind: row.text("kind")?,
            attempt: row
                .opt_int("attempt")?
                .map(|a| count("attempt", a))
                .transpose()?,
            trigger: row.text("trigger_kind")?,
            at: get_ms(row, "logged_at")?,
            duration_ms: row
                .opt_int("duration_ms")?
                .map(|d| u64::try_from(d).unwrap_or_default()),
            outcome: row.text("outcome")?,
            http_status: small("http_status", row.opt_int("http_status")?)?,
            response: row.opt_text("response")?,
            error: row.opt_text("error")?,
            next_attempt_at: get_opt_ms(row, "next_attempt_at")?,
        },
    ))
}

/// The tenant's deliveries, newest first (by id), with their logs.
pub(crate) async fn list(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    top: u32,
    skip: u64,
) -> Result<Vec<Delivery>, StoreError> {
    let tenant = db_id("tenant_id", tenant_id.id())?;
    let mut deliveries: Vec<Delivery> = conn
        .fetch_all(
            "SELECT id, tenant_id, event_id, sequence, event_type, created_at, status, attempts, \
             next_attempt_at, last_http_status, last_error, updated_at FROM webhook_deliveries \
             WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
            &args![
                tenant,
                i64::from(top),
                crate::convert::db_u64("skip", skip)?
            ],
        )
        .await?
        .iter()
        .map(delivery_from_row)
        .collect::<Result<_, _>>()?;
    let (Some(newest), Some(oldest)) = (deliveries.first(), deliveries.last()) else {
        return Ok(deliveries);
    };
    let (hi, lo) = (newest.id, oldest.id);
    let mut logs: HashMap<i64, Vec<LogEntry>> = HashMap::new();
    for row in conn
        .fetch_all(
            "SELECT id, delivery_id, kind, attempt, trigger_kind, logged_at, duration_ms, \
             outcome, http_status, response, error, next_attempt_at FROM webhook_log \
             WHERE tenant_id = $1 AND delivery_id >= $2 AND delivery_id <= $3 ORDER BY id",
            &args![tenant, lo, hi],
        )
        .await?
    {
        let (delivery, entry) = log_from_row(&row)?;
        if let Some(delivery) = delivery {
            logs.entry(delivery).or_default().push(entry);
        }
    }
    for d in &mut deliveries {
        d.log = logs.remove(&d.id).unwrap_or_default();
    }
    Ok(deliveries)
}

pub(crate) async fn count_deliveries(
    conn: &mut impl Conn,
    tenant_id: TenantId,
) -> Result<u64, StoreError> {
    let row = conn
        .fetch_optional(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE tenant_id = $1",
            &args![db_id("tenant_id", tenant_id.id())?],
        )
        .await?
        .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
    get_u64(&row, "n")
}

/// One delivery by event id, with its log.
pub(crate) async fn delivery(
    conn: &mut impl Conn,
    tenant_id: TenantId,
    event_id: &str,
) -> Result<Option<Delivery>, StoreError> {
    let tenant = db_id("tenant_id", tenant_id.id())?;
    let Some(row) = conn
        .fetch_optional(
            "SELECT id, tenant_id, event_id, sequence, event_type, created_at, status, attempts, \
             next_attempt_at, last_http_status, last_error, updated_at FROM webhook_deliveries \
             WHERE tenant_id = $1 AND event_id = $2",
            &args![tenant, event_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let mut d = delivery_from_row(&row)?;
    for row in conn
        .fetch_all(
            "SELECT id, delivery_id, kind, attempt, trigger_kind, logged_at, duration_ms, \
             outcome, http_status, response, error, next_attempt_at FROM webhook_log \
             WHERE delivery_id = $1 ORDER BY id",
            &args![d.id],
        )
        .await?
    {
        d.log.push(log_from_row(&row)?.1);
    }
    Ok(Some(d))
}

/// Frees every lease `owner` holds (a node starting again knows none of
/// its attempts is still running); returns how many.
pub(crate) async fn release_leases(conn: &mut impl Conn, owner: &str) -> Result<u64, StoreError> {
    Ok(conn
        .execute(
            "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL \
             WHERE lease_owner = $1",
            &args![owner],
        )
        .await?)
}

/// Deletes finished (delivered or failed) deliveries last changed before
/// `before`, with their logs; returns how many.
pub(crate) async fn prune(conn: &mut impl Conn, before: UnixMillis) -> Result<u64, StoreError> {
    let before = db_ms("before", before)?;
    conn.execute(
        "DELETE FROM webhook_log WHERE delivery_id IN (SELECT id FROM webhook_deliveries \
         WHERE status <> 'pending' AND updated_at < $1) OR (delivery_id IS NULL AND logged_at < $1)",
        &args![before],
    )
    .await?;
    Ok(conn
        .execute(
            "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at < $1",
            &args![before],
        )
        .await?)
}
