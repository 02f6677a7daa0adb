//! Outbound rules and who may dial out (issue 10). Same access as
//! [`super::trunks`].
//!
//! ```text
//! GET    /api/outbound_rules?top=&skip=   {count, items: [rule]}, in evaluation order
//! POST   /api/outbound_rules              {"name", "pattern", "trunks", …} → 201
//! GET    /api/outbound_rules/{rule_id}
//! PUT    /api/outbound_rules/{rule_id}    every field
//! PATCH  /api/outbound_rules/{rule_id}    the fields given
//! DELETE /api/outbound_rules/{rule_id}    204
//! GET    /api/users/{user_id}/outbound    {"outbound_allowed", "outbound_caller_id"}
//! PUT    /api/users/{user_id}/outbound
//! GET    /api/tenant/outbound             {"max_outbound_calls"}
//! PUT    /api/tenant/outbound
//! ```
//!
//! Rule fields: `name` (unique in the tenant), `priority` (rules are tried
//! by ascending priority; default: after the last rule), `pattern` (see
//! `pbx::routing::pattern`: `X`, `Z`, `N`, `[1-5]`, `.`, `!`; a malformed
//! one is `VALIDATE_FAILED` with the position), `from_extensions` (only
//! these callers; empty: all), `strip_digits`, `prepend`, `caller_id`
//! (presented on the trunk; empty: the user's, else the trunk's), `trunks`
//! (1–10 trunk ids of the tenant, tried in order).
//!
//! # Decision: who may dial out is its own small resource
//!
//! A user's `outbound_allowed` (default true) and `outbound_caller_id`,
//! and the tenant's `max_outbound_calls`, are columns of `users` and
//! `tenants` but are read and written here, through
//! `/api/users/{user_id}/outbound` and `/api/tenant/outbound`: they are
//! outbound routing's concern, and the user and tenant resources stay as
//! they are.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::ClientAddr;
use super::inbound_rules::refused;
use super::openapi::schema::*;
use super::resource::{Body, ListQuery, Scope, path_id, rfc3339};
use super::trunks::{MANAGERS, number, short_text};
use super::{Api, ApiError, ApiState, Doc, nullable};
use crate::clock;

pub const FIELDS: [&str; 8] = [
    "name",
    "priority",
    "pattern",
    "from_extensions",
    "strip_digits",
    "prepend",
    "caller_id",
    "trunks",
];

const MAX_TRUNKS: usize = 10;
const PRIORITY_STEP: u32 = 10;
const MAX_PRIORITY: u64 = 1_000_000;

#[derive(Serialize)]
pub struct OutboundRuleJson {
    id: cdr::Id,
    tenant_id: cdr::TenantId,
    name: String,
    priority: u32,
    pattern: String,
    from_extensions: Vec<String>,
    strip_digits: u32,
    prepend: String,
    caller_id: String,
    trunks: Vec<cdr::Id>,
    created_at: String,
    updated_at: String,
}

fn rule_json(r: store::OutboundRule) -> OutboundRuleJson {
    OutboundRuleJson {
        id: r.id,
        tenant_id: r.tenant_id,
        name: r.name,
        priority: r.priority,
        pattern: r.pattern,
        from_extensions: r.from_extensions,
        strip_digits: r.strip_digits,
        prepend: r.prepend,
        caller_id: r.caller_id,
        trunks: r.trunks,
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    }
}

fn apply(r: &mut store::OutboundRule, body: &Body, full: bool) -> Result<(), ApiError> {
    let given = |f: &str| full || body.has(f);
    if given("name") {
        let name = short_text("name", body.required("name")?, 64)?;
        if name.is_empty() {
            return Err(ApiError::validate("name", "must not be empty"));
        }
        r.name = name;
    }
    if body.has("priority") {
        r.priority = match body.number("priority")? {
            Some(p) if p <= MAX_PRIORITY => p as u32,
            Some(_) => {
                return Err(ApiError::validate(
                    "priority",
                    format!("must be 0 to {MAX_PRIORITY}"),
                ));
            }
            None => r.priority,
        };
    }
    if given("pattern") {
        let pattern = pbx::routing::DialPattern::parse(body.required("pattern")?.trim())
            .map_err(|e| ApiError::validate("pattern", e))?;
        r.pattern = pattern.as_str().to_owned();
    }
    if given("from_extensions") {
        let list = body.strings("from_extensions")?.unwrap_or_default();
        let mut extensions = Vec::with_capacity(list.len());
        for e in list {
            let e = crate::provision::extension(&e)
                .map_err(|i| ApiError::validate("from_extensions", i.message))?;
            if !extensions.contains(&e) {
                extensions.push(e);
            }
        }
        r.from_extensions = extensions;
    }
    if given("strip_digits") {
        r.strip_digits = match body.number("strip_digits")? {
            None => 0,
            Some(n) if n <= 32 => n as u32,
            Some(_) => return Err(ApiError::validate("strip_digits", "must be 0 to 32")),
        };
    }
    if given("prepend") {
        let p = body.string("prepend")?.unwrap_or("").trim();
        if p.len() > 32 || !p.bytes().all(|b| b.is_ascii_digit() || b"+*#".contains(&b)) {
            return Err(ApiError::validate(
                "prepend",
                "must be at most 32 digits, +, * or #",
            ));
        }
        r.prepend = p.to_owned();
    }
    if given("caller_id") {
        r.caller_id = number("caller_id", body.string("caller_id")?.unwrap_or(""), 32)?;
    }
    if given("trunks") {
        let list = body
            .strings("trunks")?
            .ok_or_else(|| ApiError::validate("trunks", "is required"))?;
        if list.is_empty() || list.len() > MAX_TRUNKS {
            return Err(ApiError::validate(
                "trunks",
                format!("must list 1 to {MAX_TRUNKS} trunk ids"),
            ));
        }
        let mut trunks = Vec::with_capacity(list.len());
        for t in list {
            let id: cdr::Id = t
                .parse()
                .map_err(|_| ApiError::validate("trunks", format!("{t:?} is not an id")))?;
            if trunks.contains(&id) {
                return Err(ApiError::validate(
                    "trunks",
                    format!("lists trunk {id} twice"),
                ));
            }
            trunks.push(id);
        }
        r.trunks = trunks;
    }
    Ok(())
}

fn name_taken(name: &str) -> ApiError {
    ApiError::already_exists(
        "name",
        format!("an outbound rule named {name} exists in this tenant"),
    )
}

async fn find(
    state: &ApiState,
    scope: &Scope,
    params: &HashMap<String, String>,
) -> Result<store::OutboundRule, ApiError> {
    let id: cdr::Id = path_id(params, "rule_id", "outbound rule")?;
    state
        .store
        .outbound_rules_of_tenant(scope.tenant_id)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::not_found("outbound rule"))
}

pub async fn list(
    State(state): State<ApiState>,
    scope: Scope,
    ListQuery(page): ListQuery,
) -> Result<Json<Value>, ApiError> {
    scope.require(MANAGERS)?;
    // A tenant has tens of rules, never thousands: read them all (with
    // their trunk lists, in one query) and page here.
    let rules = state
        .store
        .outbound_rules_of_tenant(scope.tenant_id)
        .await?;
    let count = rules.len();
    let items: Vec<OutboundRuleJson> = rules
        .into_iter()
        .skip(usize::try_from(page.skip).unwrap_or(usize::MAX))
        .take(page.top as usize)
        .map(rule_json)
        .collect();
    Ok(Json(json!({ "count": count, "items": items })))
}

pub async fn create(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<(StatusCode, Json<OutboundRuleJson>), ApiError> {
    scope.require(MANAGERS)?;
    let body = Body::parse(&body, &FIELDS)?;
    let last = state
        .store
        .outbound_rules_of_tenant(scope.tenant_id)
        .await?
        .iter()
        .map(|r| r.priority)
        .max();
    let now = clock::unix_millis();
    let mut rule = store::OutboundRule {
        id: state.provisioner.next_id(),
        tenant_id: scope.tenant_id,
        name: String::new(),
        priority: last.map_or(PRIORITY_STEP, |p| p.saturating_add(PRIORITY_STEP)),
        pattern: String::new(),
        from_extensions: Vec::new(),
        strip_digits: 0,
        prepend: String::new(),
        caller_id: String::new(),
        trunks: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    apply(&mut rule, &body, true)?;
    match state.store.create_outbound_rule(&rule).await {
        Ok(outcome) => refused(outcome, "outbound rule", "trunks", "from_extensions")?,
        Err(store::StoreError::Conflict(_)) => return Err(name_taken(&rule.name)),
        Err(e) => return Err(e.into()),
    }
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "outbound_rule.create",
            &format!("outbound_rule:{}", rule.id),
            source,
            json!({ "name": rule.name, "pattern": rule.pattern, "trunks": rule.trunks }),
        )
        .await;
    state.trunks_changed().await;
    Ok((StatusCode::CREATED, Json(rule_json(rule))))
}

pub async fn get(
    State(state): State<ApiState>,
    scope: Scope,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<OutboundRuleJson>, ApiError> {
    scope.require(MANAGERS)?;
    Ok(Json(rule_json(find(&state, &scope, &params).await?)))
}

async fn update(
    state: ApiState,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    params: HashMap<String, String>,
    body: Bytes,
    full: bool,
) -> Result<Json<OutboundRuleJson>, ApiError> {
    scope.require(MANAGERS)?;
    let mut rule = find(&state, &scope, &params).await?;
    let body = Body::parse(&body, &FIELDS)?;
    if full {
        // PUT: what is absent takes its default (the priority is kept).
        rule.from_extensions.clear();
        rule.strip_digits = 0;
        rule.prepend.clear();
        rule.caller_id.clear();
    }
    apply(&mut rule, &body, full)?;
    rule.updated_at = clock::unix_millis();
    match state.store.update_outbound_rule(&rule).await {
        Ok(outcome) => refused(outcome, "outbound rule", "trunks", "from_extensions")?,
        Err(store::StoreError::Conflict(_)) => return Err(name_taken(&rule.name)),
        Err(e) => return Err(e.into()),
    }
    let changed: Vec<&str> = FIELDS.iter().copied().filter(|f| body.has(f)).collect();
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "outbound_rule.update",
            &format!("outbound_rule:{}", rule.id),
            source,
            json!({ "name": rule.name, "fields": changed }),
        )
        .await;
    state.trunks_changed().await;
    Ok(Json(rule_json(rule)))
}

pub async fn put(
    State(state): State<ApiState>,
    scope: Scope,
    source: ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<OutboundRuleJson>, ApiError> {
    update(state, scope, source, params, body, true).await
}

pub async fn patch(
    State(state): State<ApiState>,
    scope: Scope,
    source: ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<OutboundRuleJson>, ApiError> {
    update(state, scope, source, params, body, false).await
}

pub async fn delete(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    scope.require(MANAGERS)?;
    let rule = find(&state, &scope, &params).await?;
    if !state
        .store
        .delete_outbound_rule(scope.tenant_id, rule.id)
        .await?
    {
        return Err(ApiError::not_found("outbound rule"));
    }
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "outbound_rule.delete",
            &format!("outbound_rule:{}", rule.id),
            source,
            json!({ "name": rule.name }),
        )
        .await;
    state.trunks_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

// Who may dial out --------------------------------------------------------------

fn user_outbound_json(u: &store::UserOutbound) -> Value {
    json!({
        "user_id": u.user_id,
        "extension": u.extension,
        "outbound_allowed": u.allowed,
        "outbound_caller_id": u.caller_id,
    })
}

async fn find_user_outbound(
    state: &ApiState,
    scope: &Scope,
    params: &HashMap<String, String>,
) -> Result<store::UserOutbound, ApiError> {
    let id: cdr::Id = path_id(params, "user_id", "user")?;
    state
        .store
        .user_outbound(scope.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

pub async fn get_user_outbound(
    State(state): State<ApiState>,
    scope: Scope,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    scope.require(MANAGERS)?;
    let settings = find_user_outbound(&state, &scope, &params).await?;
    Ok(Json(user_outbound_json(&settings)))
}

pub async fn put_user_outbound(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    scope.require(MANAGERS)?;
    let mut settings = find_user_outbound(&state, &scope, &params).await?;
    let body = Body::parse(&body, &["outbound_allowed", "outbound_caller_id"])?;
    settings.allowed = body.boolean("outbound_allowed")?.unwrap_or(true);
    settings.caller_id = number(
        "outbound_caller_id",
        body.string("outbound_caller_id")?.unwrap_or(""),
        32,
    )?;
    if !state.store.set_user_outbound(&settings).await? {
        return Err(ApiError::not_found("user"));
    }
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "user.outbound",
            &format!("user:{}", settings.user_id),
            source,
            json!({ "outbound_allowed": settings.allowed, "outbound_caller_id": settings.caller_id }),
        )
        .await;
    state.trunks_changed().await;
    Ok(Json(user_outbound_json(&settings)))
}

async fn tenant_limit(state: &ApiState, scope: &Scope) -> Result<Option<u32>, ApiError> {
    state
        .store
        .tenant_outbound_limit(scope.tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))
}

pub async fn get_tenant_outbound(
    State(state): State<ApiState>,
    scope: Scope,
) -> Result<Json<Value>, ApiError> {
    scope.require(MANAGERS)?;
    let limit = tenant_limit(&state, &scope).await?;
    Ok(Json(json!({ "max_outbound_calls": limit })))
}

pub async fn put_tenant_outbound(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    scope.require(MANAGERS)?;
    let body = Body::parse(&body, &["max_outbound_calls"])?;
    let limit = match body.number("max_outbound_calls")? {
        None => None,
        Some(n) if (1..=100_000).contains(&n) => Some(n as u32),
        Some(_) => {
            return Err(ApiError::validate(
                "max_outbound_calls",
                "must be 1 to 100000, or null for no limit",
            ));
        }
    };
    if !state
        .store
        .set_tenant_outbound_limit(scope.tenant_id, limit)
        .await?
    {
        return Err(ApiError::not_found("tenant"));
    }
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "tenant.outbound",
            &format!("tenant:{}", scope.tenant_id),
            source,
            json!({ "max_outbound_calls": limit }),
        )
        .await;
    state.trunks_changed().await;
    Ok(Json(json!({ "max_outbound_calls": limit })))
}

impl Api {
    /// The outbound rule and outbound permission routes.
    pub fn outbound_rules(self) -> Self {
        let rule = object(
            &[
                ("id", id()),
                ("tenant_id", id()),
                ("name", string()),
                ("priority", non_negative()),
                ("pattern", string()),
                ("from_extensions", array(string())),
                ("strip_digits", int_range(0, 32)),
                ("prepend", string()),
                ("caller_id", string()),
                ("trunks", array(id())),
                ("created_at", date_time()),
                ("updated_at", date_time()),
            ],
            &[
                "id",
                "tenant_id",
                "name",
                "priority",
                "pattern",
                "from_extensions",
                "strip_digits",
                "prepend",
                "caller_id",
                "trunks",
                "created_at",
                "updated_at",
            ],
        );
        let body = |required: &[&str]| {
            closed_object(
                &[
                    ("name", string()),
                    ("priority", int_range(0, MAX_PRIORITY as i64)),
                    (
                        "pattern",
                        text("X = 0-9, Z = 1-9, N = 2-9, [1-5], . = one or more, ! = zero or more"),
                    ),
                    ("from_extensions", array(string())),
                    ("strip_digits", int_range(0, 32)),
                    ("prepend", string()),
                    ("caller_id", string()),
                    ("trunks", array(id())),
                ],
                required,
            )
        };
        let user_outbound = object(
            &[
                ("user_id", id()),
                ("extension", string()),
                ("outbound_allowed", boolean()),
                ("outbound_caller_id", string()),
            ],
            &[
                "user_id",
                "extension",
                "outbound_allowed",
                "outbound_caller_id",
            ],
        );
        let tenant_outbound = object(
            &[("max_outbound_calls", nullable(int_range(1, 100_000)))],
            &["max_outbound_calls"],
        );
        let (base, one) = ("/api/outbound_rules", "/api/outbound_rules/{rule_id}");
        self.get(
            base,
            list,
            Doc::new(
                "Outbound rules",
                "List the tenant's outbound rules in evaluation order (Admin)",
            )
            .query("top", int_range(1, 100), "Page size (1–100, default 100).")
            .query("skip", non_negative(), "Rows to skip.")
            .tenant_scoped()
            .json(200, page(rule.clone())),
        )
        .post(
            base,
            create,
            Doc::new("Outbound rules", "Create an outbound rule (Admin)")
                .tenant_scoped()
                .json_body(body(&["name", "pattern", "trunks"]))
                .json(201, rule.clone()),
        )
        .get(
            one,
            get,
            Doc::new("Outbound rules", "Read an outbound rule (Admin)")
                .tenant_scoped()
                .json(200, rule.clone()),
        )
        .put(
            one,
            put,
            Doc::new("Outbound rules", "Replace an outbound rule (Admin)")
                .tenant_scoped()
                .json_body(body(&["name", "pattern", "trunks"]))
                .json(200, rule.clone()),
        )
        .patch(
            one,
            patch,
            Doc::new(
                "Outbound rules",
                "Change some fields of an outbound rule (Admin)",
            )
            .tenant_scoped()
            .json_body(body(&[]))
            .json(200, rule),
        )
        .delete(
            one,
            delete,
            Doc::new("Outbound rules", "Delete an outbound rule (Admin)")
                .tenant_scoped()
                .empty(204),
        )
        .get(
            "/api/users/{user_id}/outbound",
            get_user_outbound,
            Doc::new(
                "Outbound rules",
                "Whether a user may dial out, and its caller ID (Admin)",
            )
            .tenant_scoped()
            .json(200, user_outbound.clone()),
        )
        .put(
            "/api/users/{user_id}/outbound",
            put_user_outbound,
            Doc::new(
                "Outbound rules",
                "Set whether a user may dial out, and its caller ID (Admin)",
            )
            .tenant_scoped()
            .json_body(closed_object(
                &[
                    ("outbound_allowed", boolean()),
                    ("outbound_caller_id", string()),
                ],
                &[],
            ))
            .json(200, user_outbound),
        )
        .get(
            "/api/tenant/outbound",
            get_tenant_outbound,
            Doc::new(
                "Outbound rules",
                "The tenant's limit of outbound calls at once (Admin)",
            )
            .tenant_scoped()
            .json(200, tenant_outbound.clone()),
        )
        .put(
            "/api/tenant/outbound",
            put_tenant_outbound,
            Doc::new(
                "Outbound rules",
                "Set the tenant's limit of outbound calls at once (Admin)",
            )
            .tenant_scoped()
            .json_body(closed_object(
                &[("max_outbound_calls", nullable(int_range(1, 100_000)))],
                &[],
            ))
            .json(200, tenant_outbound),
        )
    }
}
