//! Webhook configuration, delivery log and replay (SPEC §5):
//!
//! | route | what |
//! |---|---|
//! | `GET /api/tenant/cdr_event` | the tenant's `cdr_event` endpoint (secrets masked) and its state |
//! | `PUT /api/tenant/cdr_event` | replace it (validated field by field; a new `secret` keeps the old one signing 24 h) |
//! | `GET /api/tenant/webhook/deliveries?top=&skip=` | deliveries, newest first, each with its attempt log |
//! | `POST /api/tenant/webhook/deliveries/{id}/retry` | one more attempt of a delivery (`id` = its `event_id`) now |
//! | `POST /api/tenant/webhook/replay?from_sequence=N` | send every event with `sequence > N` again (one replay per tenant at a time, [`MAX_REPLAYS`] per node: 429 `BUSY` with `Retry-After` beyond; done in paced batches) |
//! | `POST /api/tenant/webhook/test` | send a `test` event now and answer with the outcome |
//!
//! Allowed: the tenant's admin, or the system admin naming the tenant in
//! `X-Tenant-Id`; other roles get 403, an unknown tenant 404.
//! [`cdr_event_view`] and [`put_cdr_event`] are also what `GET/PUT
//! /api/tenant` embed as its `cdr_event` field.

use std::collections::HashMap;
use std::sync::Arc;

use ::delivery::webhook::{EndpointConfig, TestError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use cdr::{TenantId, UnixMillis, rest_time};
use serde_json::{Value, json};
use store::{Delivery, WebhookEndpoint};

use super::openapi::schema::*;
use super::{Api, ApiError, ApiState, Doc, Principal, Role};
use crate::delivery::Webhooks;

const MAX_TOP: u32 = 100;
/// Most outbox events one replay request schedules.
const MAX_REPLAY: u32 = 100_000;
/// Replays running at once on a node; each tenant runs one at a time
/// (security review, finding 8).
pub const MAX_REPLAYS: usize = 4;
/// Pause between two replay batches (`store::REPLAY_BATCH` sequences):
/// paces a tenant's replay to at most 50,000 events a second and lets the
/// CDR writer take the write lock in between.
const REPLAY_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// The replays in flight: one per tenant, [`MAX_REPLAYS`] in all.
#[derive(Debug, Default)]
pub struct Replays(std::sync::Mutex<std::collections::HashSet<TenantId>>);

/// A running replay; its place is free again when this drops.
struct ReplayTurn<'a>(&'a Replays, TenantId);

impl Replays {
    fn start(&self, tenant: TenantId) -> Option<ReplayTurn<'_>> {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if running.len() >= MAX_REPLAYS || !running.insert(tenant) {
            return None;
        }
        Some(ReplayTurn(self, tenant))
    }
}

impl Drop for ReplayTurn<'_> {
    fn drop(&mut self) {
        let mut running = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        running.remove(&self.1);
    }
}

fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}

/// The `cdr_event` request body and view schemas, shared by
/// `/api/tenant/cdr_event` and the `cdr_event` field of `/api/tenant`.
pub fn cdr_event_schemas() -> (Value, Value) {
    use super::openapi::schema::*;
    let auth = one_of_strings(&["DISABLE", "BASIC", "DIGEST", "BEARER"]);
    let event_types = json!({"type": ["array", "null"], "items": {"type": "string"}});
    let config_body = object(
        &[
            ("enabled", boolean()),
            ("url", string()),
            ("auth", auth.clone()),
            ("username", string()),
            ("password", text("`********` keeps the stored password.")),
            ("token", text("`********` keeps the stored token.")),
            (
                "secret",
                json!({"type": ["string", "null"], "description": "`whsec_…`; `********` keeps the stored one; a new one keeps the old one signing for 24 h."}),
            ),
            ("event_types", event_types.clone()),
        ],
        &["enabled"],
    );
    let view = object(
        &[
            ("enabled", boolean()),
            ("url", string()),
            ("auth", auth),
            ("username", string()),
            ("password", string()),
            ("token", string()),
            ("secret", nullable("string")),
            ("event_types", event_types),
            ("disabled_reason", nullable("string")),
            ("disabled_at", optional_time()),
            ("failing_since", optional_time()),
        ],
        &["enabled", "url", "auth"],
    );
    (config_body, view)
}

impl Api {
    /// The webhook routes with their documentation.
    pub fn webhooks(self) -> Self {
        let (config_body, view) = cdr_event_schemas();
        let log = object(
            &[
                ("kind", one_of_strings(&["attempt", "endpoint_disabled"])),
                ("attempt", nullable("integer")),
                ("trigger", string()),
                ("at", date_time()),
                ("duration_ms", nullable("integer")),
                ("outcome", string()),
                ("http_status", nullable("integer")),
                ("response", nullable("string")),
                ("error", nullable("string")),
                ("next_attempt_at", optional_time()),
            ],
            &["kind", "at", "outcome"],
        );
        let delivery = object(
            &[
                ("id", string()),
                ("event_id", string()),
                ("event_type", string()),
                ("sequence", non_negative()),
                (
                    "status",
                    one_of_strings(&["pending", "delivered", "failed"]),
                ),
                ("attempts", non_negative()),
                ("created_at", date_time()),
                ("next_attempt_at", optional_time()),
                ("last_http_status", nullable("integer")),
                ("last_error", nullable("string")),
                ("log", array(log)),
            ],
            &["id", "event_type", "status", "attempts", "log"],
        );
        let who = "The tenant's admin, or the system admin naming the tenant in `X-Tenant-Id`.";
        self.get(
            "/api/tenant/cdr_event",
            get_cdr_event,
            Doc::new(
                "Webhooks",
                "Read the tenant's webhook (Event URL) configuration",
            )
            .describe(who)
            .tenant_scoped()
            .json(200, view.clone()),
        )
        .put(
            "/api/tenant/cdr_event",
            put_cdr_event_route,
            Doc::new(
                "Webhooks",
                "Set the tenant's webhook (Event URL) configuration",
            )
            .describe(who)
            .tenant_scoped()
            .json_body(config_body)
            .json(200, view),
        )
        .get(
            "/api/tenant/webhook/deliveries",
            deliveries,
            Doc::new(
                "Webhooks",
                "List webhook deliveries, newest first, with their attempt logs",
            )
            .describe(who)
            .tenant_scoped()
            .query("top", int_range(1, 100), "Page size (1–100, default 100).")
            .query("skip", non_negative(), "Rows to skip.")
            .json(200, page(delivery)),
        )
        .post(
            "/api/tenant/webhook/deliveries/{id}/retry",
            retry,
            Doc::new(
                "Webhooks",
                "Attempt one delivery again now (id = its event_id)",
            )
            .describe(who)
            .tenant_scoped()
            .json(202, object(&[("id", string())], &["id"])),
        )
        .post(
            "/api/tenant/webhook/replay",
            replay,
            Doc::new(
                "Webhooks",
                "Send every event with a sequence above from_sequence again",
            )
            .describe(who)
            .tenant_scoped()
            .query(
                "from_sequence",
                non_negative(),
                "Replay events with a greater sequence (required).",
            )
            .json(
                202,
                object(
                    &[
                        ("from_sequence", non_negative()),
                        ("scheduled", non_negative()),
                    ],
                    &["from_sequence", "scheduled"],
                ),
            ),
        )
        .post(
            "/api/tenant/webhook/test",
            send_test,
            Doc::new("Webhooks", "Send a test event now and report the outcome")
                .describe(who)
                .tenant_scoped()
                .json(
                    200,
                    object(
                        &[
                            ("event_id", string()),
                            ("delivered", boolean()),
                            ("outcome", string()),
                            ("http_status", nullable("integer")),
                            ("duration_ms", non_negative()),
                            ("response", nullable("string")),
                            ("error", nullable("string")),
                        ],
                        &["event_id", "delivered", "outcome"],
                    ),
                ),
        )
    }
}

impl ApiState {
    /// Hands the API the running dispatcher (once, at start-up).
    pub fn set_webhooks(&self, webhooks: Arc<Webhooks>) {
        let _ = self.0.webhooks.set(webhooks);
    }

    pub(super) fn webhooks(&self) -> Result<&Webhooks, ApiError> {
        self.0
            .webhooks
            .get()
            .map(|w| &**w)
            .ok_or_else(|| ApiError::internal("the webhook dispatcher is not running"))
    }
}

/// The tenant whose webhooks a request manages.
async fn scope(
    state: &ApiState,
    principal: Principal,
    headers: &HeaderMap,
) -> Result<TenantId, ApiError> {
    super::resource::tenant_scope(state, principal, headers, &[Role::Admin]).await
}

fn now() -> UnixMillis {
    UnixMillis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64,
    )
}

fn stored_config(row: &WebhookEndpoint) -> Result<EndpointConfig, ApiError> {
    EndpointConfig::from_stored(row).map_err(ApiError::internal)
}

/// The `cdr_event` object of `GET /api/tenant`: the configuration (secrets
/// masked) plus what the dispatcher decided (`disabled_reason`,
/// `disabled_at`, `failing_since`).
pub async fn cdr_event_view(state: &ApiState, tenant: TenantId) -> Result<Value, ApiError> {
    let Some(row) = state.store.webhook_endpoint(tenant).await? else {
        return Ok(json!({
            "enabled": false, "url": "", "auth": "DISABLE", "username": "", "password": "",
            "token": "", "secret": null, "event_types": null, "disabled_reason": null,
            "disabled_at": "", "failing_since": ""
        }));
    };
    let mut view = stored_config(&row)?.view();
    view["disabled_reason"] = json!(row.disabled_reason);
    view["disabled_at"] = json!(rest_time(row.disabled_at));
    view["failing_since"] = json!(rest_time(row.failing_since));
    Ok(view)
}

/// Validates and stores a `cdr_event` object for `tenant` (the body of
/// `PUT /api/tenant/cdr_event`, or the `cdr_event` field of `PUT
/// /api/tenant`). Validation errors name their field.
pub async fn put_cdr_event(
    state: &ApiState,
    tenant: TenantId,
    body: &Value,
) -> Result<(), ApiError> {
    let webhooks = state.webhooks()?;
    let previous = state.store.webhook_endpoint(tenant).await?;
    let current = previous.as_ref().map(stored_config).transpose()?;
    // The node's allow-list plus the tenant's (finding 14).
    let own = state
        .store
        .tenant_webhook_allow(tenant)
        .await?
        .unwrap_or_default();
    let allow = ::delivery::webhook::AllowList::parse(&own)
        .map(|own| webhooks.allow.with(&own))
        .unwrap_or_else(|_| webhooks.allow.clone());
    let config = EndpointConfig::from_json(body, current.as_ref(), &allow)
        .map_err(|e| ApiError::validate(e.field, e.message))?;
    let row = config.to_stored(tenant, previous.as_ref(), now());
    match state.store.put_webhook_endpoint(&row).await {
        Err(store::StoreError::MissingReference(_)) => return Err(ApiError::not_found("tenant")),
        other => other?,
    }
    webhooks.dispatcher.endpoint_changed(tenant);
    Ok(())
}

pub async fn get_cdr_event(
    State(state): State<ApiState>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope(&state, principal, &headers).await?;
    Ok(Json(cdr_event_view(&state, tenant).await?))
}

pub async fn put_cdr_event_route(
    State(state): State<ApiState>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope(&state, principal, &headers).await?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::validate("body", format!("is not JSON ({e})")))?;
    put_cdr_event(&state, tenant, &body).await?;
    Ok(Json(cdr_event_view(&state, tenant).await?))
}

fn number<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    field: &str,
) -> Result<Option<T>, ApiError> {
    query
        .get(field)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::validate(field, "must be a whole number"))
        })
        .transpose()
}

fn delivery_item(d: &Delivery) -> Value {
    let log: Vec<Value> = d
        .log
        .iter()
        .map(|l| {
            json!({
                "kind": l.kind,
                "attempt": l.attempt,
                "trigger": l.trigger,
                "at": rest_time(Some(l.at)),
                "duration_ms": l.duration_ms,
                "outcome": l.outcome,
                "http_status": l.http_status,
                "response": l.response,
                "error": l.error,
                "next_attempt_at": rest_time(l.next_attempt_at),
            })
        })
        .collect();
    json!({
        "id": d.event_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "sequence": d.sequence,
        "status": d.status.as_str(),
        "attempts": d.attempts,
        "created_at": rest_time(Some(d.created_at)),
        "next_attempt_at": rest_time(d.next_attempt_at),
        "last_http_status": d.last_http_status,
        "last_error": d.last_error,
        "log": log,
    })
}

pub async fn deliveries(
    State(state): State<ApiState>,
    principal: Principal,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    if let Some(unknown) = query
        .keys()
        .find(|k| !["top", "skip"].contains(&k.as_str()))
    {
        return Err(ApiError::validate(
            unknown,
            "is not a parameter of this listing",
        ));
    }
    let top = number::<u32>(&query, "top")?.unwrap_or(MAX_TOP);
    if !(1..=MAX_TOP).contains(&top) {
        return Err(ApiError::validate("top", format!("must be 1 to {MAX_TOP}")));
    }
    let skip = number::<u64>(&query, "skip")?.unwrap_or(0);
    if skip > i64::MAX as u64 {
        return Err(ApiError::validate("skip", "is too large"));
    }
    let tenant = scope(&state, principal, &headers).await?;
    let count = state.store.count_webhook_deliveries(tenant).await?;
    let items: Vec<Value> = state
        .store
        .webhook_deliveries(tenant, top, skip)
        .await?
        .iter()
        .map(delivery_item)
        .collect();
    Ok(Json(json!({ "count": count, "items": items })))
}

pub async fn retry(
    State(state): State<ApiState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = scope(&state, principal, &headers).await?;
    let webhooks = state.webhooks()?;
    if id.len() > 64
        || !state
            .store
            .retry_webhook_delivery(tenant, &id, now())
            .await?
    {
        return Err(ApiError::not_found("delivery"));
    }
    webhooks.dispatcher.deliveries_due(tenant);
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))))
}

pub async fn replay(
    State(state): State<ApiState>,
    principal: Principal,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let from = number::<u64>(&query, "from_sequence")?
        .ok_or_else(|| ApiError::validate("from_sequence", "is required"))?;
    if from > i64::MAX as u64 {
        return Err(ApiError::validate("from_sequence", "is too large"));
    }
    if let Some(unknown) = query.keys().find(|k| *k != "from_sequence") {
        return Err(ApiError::validate(unknown, "is not a parameter of replay"));
    }
    let tenant = scope(&state, principal, &headers).await?;
    let webhooks = state.webhooks()?;
    let row = state.store.webhook_endpoint(tenant).await?;
    let Some(row) = row.filter(|r| !r.url.is_empty()) else {
        return Err(ApiError::validate(
            "cdr_event",
            "no webhook endpoint is configured",
        ));
    };
    let _turn = state
        .replays
        .start(tenant)
        .ok_or_else(|| ApiError::busy("a replay of this tenant (or too many in all) is running"))?;
    let scheduled = state
        .store
        .replay_webhooks(
            tenant,
            from,
            row.event_types.as_deref(),
            now(),
            MAX_REPLAY,
            REPLAY_PAUSE,
        )
        .await?;
    webhooks.dispatcher.deliveries_due(tenant);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "from_sequence": from, "scheduled": scheduled })),
    ))
}

pub async fn send_test(
    State(state): State<ApiState>,
    principal: Principal,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope(&state, principal, &headers).await?;
    let webhooks = state.webhooks()?;
    let sent = match webhooks.dispatcher.send_test(tenant).await {
        Ok(sent) => sent,
        Err(TestError::NotConfigured) => {
            return Err(ApiError::validate(
                "cdr_event",
                "no webhook endpoint is configured",
            ));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    Ok(Json(json!({
        "event_id": sent.event_id,
        "delivered": sent.delivered,
        "outcome": sent.outcome,
        "http_status": sent.http_status,
        "duration_ms": sent.duration_ms,
        "response": sent.response,
        "error": sent.error,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(n: u64) -> TenantId {
        TenantId::from(cdr::Id::from_u64(n))
    }

    #[test]
    fn one_replay_per_tenant_and_a_few_in_all() {
        let replays = Replays::default();
        let first = replays.start(tenant(1)).expect("free");
        assert!(replays.start(tenant(1)).is_none(), "one per tenant");
        let others: Vec<_> = (2..=MAX_REPLAYS as u64)
            .map(|n| replays.start(tenant(n)).expect("room"))
            .collect();
        assert!(replays.start(tenant(99)).is_none(), "node cap");
        drop(first);
        assert!(replays.start(tenant(1)).is_some(), "free again");
        drop(others);
    }
}
