//! Call queues (issue 14), managed by the tenant's `Admin` (or the system
//! admin naming the tenant in `X-Tenant-Id`); agents log in and out.
//!
//! ```text
//! GET    /api/queues?top=&skip=          {count, items: [queue]}, by number
//! POST   /api/queues                     {"number", "name", "agents", …} → 201
//! GET    /api/queues/{queue_id}
//! PUT    /api/queues/{queue_id}          every field (absent optional: defaults)
//! PATCH  /api/queues/{queue_id}          the fields given
//! DELETE /api/queues/{queue_id}          204
//! POST   /api/queues/{queue_id}/login    {"extension"} → the queue (200)
//! POST   /api/queues/{queue_id}/logout   {"extension"} → the queue (200)
//! ```
//!
//! Fields: `number` (1–32 digits, nobody else's in the extension space:
//! 409), `name`, `strategy` (`ring_all` default, `longest_idle`,
//! `round_robin`, `fewest_calls`), `agents` (1–50 distinct extensions of
//! the tenant's users), `agent_timeout` (5–300 s, default 20), `wrap_up`
//! (0–600 s, default 10), `max_wait` (10–7200 s or `null`: none),
//! `max_length` (1–1000 or `null`), `overflow` (a number of the tenant or
//! `"hangup"`; `null`: hang up after `max_wait`, busy past `max_length`),
//! `moh_prompt_id` (a prompt of the tenant; `null`: the built-in music),
//! `announce_position` (seconds between a waiting caller's "you are
//! caller number N", 15–600; 0, the default: none), `callback_attempts`
//! (0–5; more than 0 lets a waiting caller press 1 to be called back when
//! an agent is free, with at most this many callback calls; 0, the
//! default: no callback).
//! `logged_in` (read-only here) lists the agents logged in; an agent is
//! logged out when created. Login and logout: Admin and QueueManager for
//! any agent, a StandardUser for its own extension only; an extension that
//! is not one of the queue's agents is `VALIDATE_FAILED` on `extension`,
//! another tenant's queue 404.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use serde::Serialize;
use serde_json::{Value, json};
use store::{Store, StoreError};

use super::auth::ClientAddr;
use super::numbered::{self, Docs, Numbered};
use super::openapi::schema::*;
use super::resource::{Body, Scope, path_id, rfc3339};
use super::trunks::short_text;
use super::{Api, ApiError, ApiState, Doc, Role, nullable};
use crate::clock;

pub const FIELDS: [&str; 12] = [
    "number",
    "name",
    "strategy",
    "agents",
    "agent_timeout",
    "wrap_up",
    "max_wait",
    "max_length",
    "overflow",
    "moh_prompt_id",
    "announce_position",
    "callback_attempts",
];

const AGENT_TIMEOUT: (u64, u64) = (5, 300);
const WRAP_UP: (u64, u64) = (0, 600);
const MAX_WAIT: (u64, u64) = (10, 7200);
const MAX_LENGTH: (u64, u64) = (1, 1000);
/// Seconds between position announcements (0: none): longer than the
/// announcement of the last caller a full queue holds ("caller number
/// 1000", 12.3 s).
const ANNOUNCE_POSITION: (u64, u64) = (15, 600);
/// Callback calls tried at most (0: no callback offered).
const CALLBACK_ATTEMPTS: (u64, u64) = (0, 5);
const MAX_AGENTS: usize = 50;
const LOGIN_ROLES: [Role; 3] = [Role::Admin, Role::QueueManager, Role::StandardUser];

#[derive(Serialize)]
pub struct QueueJson {
    id: cdr::Id,
    tenant_id: cdr::TenantId,
    number: String,
    name: String,
    strategy: String,
    agents: Vec<String>,
    logged_in: Vec<String>,
    agent_timeout: u32,
    wrap_up: u32,
    max_wait: Option<u32>,
    max_length: Option<u32>,
    overflow: Option<String>,
    moh_prompt_id: Option<cdr::Id>,
    announce_position: u32,
    callback_attempts: u32,
    created_at: String,
    updated_at: String,
}

fn queue_json(q: store::Queue) -> QueueJson {
    QueueJson {
        id: q.id,
        tenant_id: q.tenant_id,
        number: q.number,
        name: q.name,
        strategy: q.strategy,
        agents: q.agents,
        logged_in: q.logged_in,
        agent_timeout: q.agent_timeout_secs,
        wrap_up: q.wrap_up_secs,
        max_wait: q.max_wait_secs,
        max_length: q.max_length,
        overflow: q.overflow,
        moh_prompt_id: q.moh_prompt_id,
        announce_position: q.announce_position_secs,
        callback_attempts: q.callback_attempts,
        created_at: rfc3339(q.created_at),
        updated_at: rfc3339(q.updated_at),
    }
}

fn bounded(body: &Body, field: &str, (min, max): (u64, u64)) -> Result<Option<u32>, ApiError> {
    match body.number(field)? {
        None => Ok(None),
        Some(n) if (min..=max).contains(&n) => Ok(Some(n as u32)),
        Some(_) => Err(ApiError::validate(field, format!("must be {min} to {max}"))),
    }
}

fn apply(q: &mut store::Queue, body: &Body, full: bool) -> Result<(), ApiError> {
    let given = |f: &str| full || body.has(f);
    if given("number") {
        q.number = numbered::number("number", body.required("number")?)?;
    }
    if given("name") {
        let name = short_text("name", body.required("name")?, 64)?;
        if name.is_empty() {
            return Err(ApiError::validate("name", "must not be empty"));
        }
        q.name = name;
    }
    if given("strategy") {
        q.strategy = match body.string("strategy")? {
            None => "ring_all".to_owned(),
            Some(s) if pbx::QueueStrategy::parse(s).is_some() => s.to_owned(),
            Some(_) => {
                return Err(ApiError::validate(
                    "strategy",
                    "must be ring_all, longest_idle, round_robin or fewest_calls",
                ));
            }
        };
    }
    if given("agents") {
        let agents = numbered::extensions(body, "agents", MAX_AGENTS)?;
        q.logged_in.retain(|a| agents.contains(a));
        q.agents = agents;
    }
    if given("agent_timeout") {
        q.agent_timeout_secs = bounded(body, "agent_timeout", AGENT_TIMEOUT)?.unwrap_or(20);
    }
    if given("wrap_up") {
        q.wrap_up_secs = bounded(body, "wrap_up", WRAP_UP)?.unwrap_or(10);
    }
    if given("max_wait") {
        q.max_wait_secs = bounded(body, "max_wait", MAX_WAIT)?;
    }
    if given("max_length") {
        q.max_length = bounded(body, "max_length", MAX_LENGTH)?;
    }
    if given("overflow") {
        q.overflow = match body.string("overflow")? {
            None | Some("") => None,
            Some(store::HANG_UP) => Some(store::HANG_UP.to_owned()),
            Some(d) => Some(numbered::number("overflow", d)?),
        };
    }
    if given("moh_prompt_id") {
        q.moh_prompt_id = match body.string("moh_prompt_id")? {
            None | Some("") => None,
            Some(id) => Some(
                id.parse()
                    .map_err(|_| ApiError::validate("moh_prompt_id", "must be a prompt id"))?,
            ),
        };
    }
    if given("announce_position") {
        q.announce_position_secs = match body.number("announce_position")? {
            None | Some(0) => 0,
            Some(n) if (ANNOUNCE_POSITION.0..=ANNOUNCE_POSITION.1).contains(&n) => n as u32,
            Some(_) => {
                return Err(ApiError::validate(
                    "announce_position",
                    format!(
                        "must be 0 (off) or {} to {} seconds",
                        ANNOUNCE_POSITION.0, ANNOUNCE_POSITION.1
                    ),
                ));
            }
        };
    }
    if given("callback_attempts") {
        q.callback_attempts = bounded(body, "callback_attempts", CALLBACK_ATTEMPTS)?.unwrap_or(0);
    }
    if q.overflow.as_deref() == Some(q.number.as_str()) {
        return Err(ApiError::validate(
            "overflow",
            "must not be the queue itself",
        ));
    }
    Ok(())
}

fn blank(scope: &Scope, id: cdr::Id) -> store::Queue {
    let now = clock::unix_millis();
    store::Queue {
        id,
        tenant_id: scope.tenant_id,
        number: String::new(),
        name: String::new(),
        strategy: "ring_all".into(),
        agents: Vec::new(),
        logged_in: Vec::new(),
        agent_timeout_secs: 20,
        wrap_up_secs: 10,
        max_wait_secs: None,
        max_length: None,
        overflow: None,
        moh_prompt_id: None,
        announce_position_secs: 0,
        callback_attempts: 0,
        created_at: now,
        updated_at: now,
    }
}

fn refused(write: store::QueueWrite, q: &store::Queue) -> ApiError {
    match write {
        store::QueueWrite::NumberTaken => ApiError::already_exists(
            "number",
            format!("{} is already a number of this tenant", q.number),
        ),
        store::QueueWrite::UnknownAgent(a) => {
            ApiError::validate("agents", format!("{a} is no user of this tenant"))
        }
        store::QueueWrite::UnknownDestination(d) => {
            ApiError::validate("overflow", format!("{d} is no number of this tenant"))
        }
        store::QueueWrite::UnknownPrompt(id) => {
            ApiError::validate("moh_prompt_id", format!("{id} is no prompt of this tenant"))
        }
        store::QueueWrite::NotFound | store::QueueWrite::Written => ApiError::not_found("queue"),
    }
}

async fn agent(
    state: ApiState,
    scope: Scope,
    source: Option<std::net::IpAddr>,
    params: HashMap<String, String>,
    body: Bytes,
    on: bool,
) -> Result<Json<QueueJson>, ApiError> {
    scope.require(&LOGIN_ROLES)?;
    let id: cdr::Id = path_id(&params, "queue_id", "queue")?;
    let body = Body::parse(&body, &["extension"])?;
    let extension = numbered::number("extension", body.required("extension")?)?;
    if let Some(own) = scope.standard_user_extension(&state).await?
        && own != extension
    {
        return Err(ApiError::forbidden_field(
            "extension",
            "a user logs in and out as itself only",
        ));
    }
    let at = clock::unix_millis();
    let q = match state
        .store
        .set_queue_agent(scope.tenant_id, id, &extension, on, at)
        .await?
    {
        store::AgentLogin::Done(q) => *q,
        store::AgentLogin::NotFound => return Err(ApiError::not_found("queue")),
        store::AgentLogin::NotAnAgent => {
            return Err(ApiError::validate(
                "extension",
                format!("{extension} is not an agent of this queue"),
            ));
        }
    };
    numbered::to_engine::<store::Queue>(&state).await;
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            if on { "queue.login" } else { "queue.logout" },
            &format!("queue:{}", q.id),
            source,
            json!({ "number": q.number, "extension": extension }),
        )
        .await;
    Ok(Json(queue_json(q)))
}

pub async fn login(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<QueueJson>, ApiError> {
    agent(state, scope, source, params, body, true).await
}

pub async fn logout(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<QueueJson>, ApiError> {
    agent(state, scope, source, params, body, false).await
}

/// Who may read a queue's statistics.
const STATS_ROLES: [Role; 2] = [Role::Admin, Role::QueueManager];
const DAY_MS: u64 = 24 * 3600 * 1000;

fn time_param(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<Option<cdr::UnixMillis>, ApiError> {
    query
        .get(name)
        .map(|v| {
            store::query::filter::parse_time(v.trim())
                .and_then(|ms| u64::try_from(ms).ok())
                .map(cdr::UnixMillis)
                .ok_or_else(|| ApiError::validate(name, "must be an RFC 3339 time"))
        })
        .transpose()
}

/// `GET /api/queues/{queue_id}/stats?from=&to=&service_level=`: waiting
/// now (this node's engine), and over the window (default: the last 24
/// hours) answered, abandoned, average and longest wait (seconds) and
/// the service level (the share of answered calls answered within
/// `service_level` seconds, default 20).
pub async fn stats(
    State(state): State<ApiState>,
    scope: Scope,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    scope.require(&STATS_ROLES)?;
    let q: store::Queue = numbered::find(&state, &scope, &params).await?;
    let now = clock::unix_millis();
    let to = time_param(&query, "to")?.unwrap_or(now);
    let from = time_param(&query, "from")?.unwrap_or(cdr::UnixMillis(to.0.saturating_sub(DAY_MS)));
    if from.0 > to.0 {
        return Err(ApiError::validate("from", "must not be after to"));
    }
    let level: u64 = match query.get("service_level") {
        None => 20,
        Some(v) => v
            .parse()
            .ok()
            .filter(|s| (1..=3600).contains(s))
            .ok_or_else(|| ApiError::validate("service_level", "must be 1 to 3600 seconds"))?,
    };
    let s = state
        .store
        .queue_stats(scope.tenant_id, &q.number, (from, to), level * 1000)
        .await?;
    let waiting = match state
        .provisioner
        .control(pbx::Control::QueueWaiting {
            tenant: scope.tenant_id,
            number: q.number.clone(),
        })
        .await?
    {
        pbx::ControlReply::Waiting(n) => n,
        other => {
            return Err(ApiError::internal(format!(
                "unexpected engine reply {other:?}"
            )));
        }
    };
    let (callbacks_waiting, callbacks_dropped) = match state
        .provisioner
        .control(pbx::Control::QueueCallbacks {
            tenant: scope.tenant_id,
            number: q.number.clone(),
        })
        .await?
    {
        pbx::ControlReply::Callbacks { waiting, dropped } => (waiting, dropped),
        other => {
            return Err(ApiError::internal(format!(
                "unexpected engine reply {other:?}"
            )));
        }
    };
    let percent = if s.answered == 0 {
        100.0
    } else {
        (s.answered_within as f64 * 1000.0 / s.answered as f64).round() / 10.0
    };
    Ok(Json(json!({
        "queue_id": q.id,
        "number": q.number,
        "from": super::resource::rfc3339(from),
        "to": super::resource::rfc3339(to),
        "waiting": waiting,
        "callbacks_waiting": callbacks_waiting,
        "callbacks_dropped": callbacks_dropped,
        "answered": s.answered,
        "abandoned": s.abandoned,
        "other": s.other,
        "average_wait": s.average_wait_ms / 1000,
        "longest_wait": s.longest_wait_ms / 1000,
        "service_level": { "seconds": level, "answered_within": s.answered_within, "percent": percent },
    })))
}

impl Numbered for store::Queue {
    const NOUN: &'static str = "queue";
    const KIND: &'static str = "queue";
    const ID_PARAM: &'static str = "queue_id";
    const FIELDS: &'static [&'static str] = &FIELDS;
    type Json = QueueJson;
    const DOCS: Docs = Docs {
        tag: "Queues",
        list: "List the tenant's queues (Admin)",
        create: "Create a queue; 409 when the number is taken (Admin)",
        get: "Read a queue (Admin)",
        put: "Replace a queue (Admin)",
        patch: "Change some fields of a queue (Admin)",
        delete: "Delete a queue; 409 while a DID rule rings it (Admin)",
    };

    numbered::row_methods!();
    fn json(self) -> QueueJson {
        queue_json(self)
    }
    async fn fetch(
        store: &Store,
        tenant: cdr::TenantId,
        id: cdr::Id,
    ) -> Result<Option<Self>, StoreError> {
        store.queue(tenant, id).await
    }
    async fn page(
        store: &Store,
        tenant: cdr::TenantId,
        top: u32,
        skip: u64,
    ) -> Result<(u64, Vec<Self>), StoreError> {
        store.queue_page(tenant, top, skip).await
    }
    async fn write(
        store: &Store,
        q: &Self,
        create: bool,
    ) -> Result<Result<(), ApiError>, StoreError> {
        let written = if create {
            store.create_queue(q).await?
        } else {
            store.update_queue(q).await?
        };
        Ok(match written {
            store::QueueWrite::Written => Ok(()),
            other => Err(refused(other, q)),
        })
    }
    async fn remove(store: &Store, q: &Self) -> Result<Result<(), ApiError>, StoreError> {
        Ok(match store.delete_queue(q.tenant_id, q.id).await? {
            store::AppDeletion::Deleted => Ok(()),
            store::AppDeletion::NotFound => Err(ApiError::not_found("queue")),
            store::AppDeletion::InUse(dids) => Err(ApiError::in_use(
                "number",
                format!("DID rules ring this queue: {}", dids.join(", ")),
            )),
        })
    }
}

impl Api {
    /// The queue routes with their documentation.
    pub fn queues(self) -> Self {
        let digits = || {
            let mut s = text("1 to 32 digits");
            s["pattern"] = json!("^[0-9]{1,32}$");
            s
        };
        let range = |(a, b): (u64, u64)| int_range(a as i64, b as i64);
        let announce = || {
            let mut s = text(
                "Seconds between a waiting caller's position announcements (\"you are caller number N\"); 0: none",
            );
            s["type"] = json!("integer");
            s["anyOf"] = json!([{"const": 0}, range(ANNOUNCE_POSITION)]);
            s
        };
        let queue = object(
            &[
                ("id", id()),
                ("tenant_id", id()),
                ("number", string()),
                ("name", string()),
                ("strategy", one_of_strings(&pbx::QueueStrategy::NAMES)),
                ("agents", array(string())),
                ("logged_in", array(string())),
                ("agent_timeout", range(AGENT_TIMEOUT)),
                ("wrap_up", range(WRAP_UP)),
                ("max_wait", nullable(range(MAX_WAIT))),
                ("max_length", nullable(range(MAX_LENGTH))),
                ("overflow", nullable(string())),
                ("moh_prompt_id", nullable(id())),
                ("announce_position", announce()),
                ("callback_attempts", range(CALLBACK_ATTEMPTS)),
                ("created_at", date_time()),
                ("updated_at", date_time()),
            ],
            &[
                "id",
                "tenant_id",
                "number",
                "name",
                "strategy",
                "agents",
                "logged_in",
                "agent_timeout",
                "wrap_up",
                "max_wait",
                "max_length",
                "overflow",
                "moh_prompt_id",
                "announce_position",
                "callback_attempts",
                "created_at",
                "updated_at",
            ],
        );
        let body = |required: &[&str]| {
            let mut agents = array(digits());
            agents["minItems"] = json!(1);
            agents["maxItems"] = json!(MAX_AGENTS);
            let mut overflow = text("A number of the tenant or \"hangup\"");
            overflow["pattern"] = json!("^([0-9]{1,32}|hangup)$");
            closed_object(
                &[
                    ("number", digits()),
                    ("name", string()),
                    ("strategy", one_of_strings(&pbx::QueueStrategy::NAMES)),
                    ("agents", agents),
                    ("agent_timeout", range(AGENT_TIMEOUT)),
                    ("wrap_up", range(WRAP_UP)),
                    ("max_wait", nullable(range(MAX_WAIT))),
                    ("max_length", nullable(range(MAX_LENGTH))),
                    ("overflow", nullable(overflow)),
                    ("moh_prompt_id", nullable(id())),
                    ("announce_position", announce()),
                    ("callback_attempts", range(CALLBACK_ATTEMPTS)),
                ],
                required,
            )
        };
        let who = closed_object(&[("extension", digits())], &["extension"]);
        self.numbered::<store::Queue>(("/api/queues", "/api/queues/{queue_id}"), queue.clone(), body, &["number", "name", "agents"])
        .post(
            "/api/queues/{queue_id}/login",
            login,
            Doc::new(
                "Queues",
                "Log an agent in (Admin, QueueManager; a StandardUser itself)",
            )
            .tenant_scoped()
            .json_body(who.clone())
            .json(200, queue.clone()),
        )
        .get(
            "/api/queues/{queue_id}/stats",
            stats,
            Doc::new(
                "Queues",
                "Queue statistics: waiting now, answered, abandoned, waits, service level (Admin, QueueManager)",
            )
            .tenant_scoped()
            .query("from", date_time(), "Calls started at or after (default: 24 hours before `to`).")
            .query("to", date_time(), "Calls started before (default: now).")
            .query("service_level", int_range(1, 3600), "Seconds an answer counts within (default 20).")
            .json(
                200,
                object(
                    &[
                        ("queue_id", id()),
                        ("number", string()),
                        ("from", date_time()),
                        ("to", date_time()),
                        ("waiting", non_negative()),
                        ("callbacks_waiting", non_negative()),
                        ("callbacks_dropped", non_negative()),
                        ("answered", non_negative()),
                        ("abandoned", non_negative()),
                        ("other", non_negative()),
                        ("average_wait", non_negative()),
                        ("longest_wait", non_negative()),
                        (
                            "service_level",
                            object(
                                &[
                                    ("seconds", non_negative()),
                                    ("answered_within", non_negative()),
                                    ("percent", json!({"type": "number"})),
                                ],
                                &["seconds", "answered_within", "percent"],
                            ),
                        ),
                    ],
                    &[
                        "queue_id",
                        "number",
                        "from",
                        "to",
                        "waiting",
                        "callbacks_waiting",
                        "callbacks_dropped",
                        "answered",
                        "abandoned",
                        "other",
                        "average_wait",
                        "longest_wait",
                        "service_level",
                    ],
                ),
            ),
        )
        .post(
            "/api/queues/{queue_id}/logout",
            logout,
            Doc::new(
                "Queues",
                "Log an agent out (Admin, QueueManager; a StandardUser itself)",
            )
            .tenant_scoped()
            .json_body(who)
            .json(200, queue),
        )
    }
}
