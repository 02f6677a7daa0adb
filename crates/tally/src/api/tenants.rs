//! `/api/tenants`: the system admin's tenants (list with paging, read,
//! create, replace, change, delete). Tenant principals are refused (403);
//! their own tenant is [`super::tenant`] (`/api/tenant`).
//!
//! ```text
//! GET    /api/tenants?top=&skip=      {count, items: [tenant]}
//! POST   /api/tenants                 {"name", "sip_domain", "time_zone"?, "retention_days"?} → 201
//! GET    /api/tenants/{tenant_id}
//! PUT    /api/tenants/{tenant_id}     every field (name and sip_domain required; others reset to defaults)
//! PATCH  /api/tenants/{tenant_id}     the fields given
//! DELETE /api/tenants/{tenant_id}     204: the tenant and all its data, its phones stop at once
//! ```
//!
//! Changing `sip_domain` changes the digest realm: the users' stored SIP
//! password hashes no longer answer, so every user's `sip_password_set`
//! turns `false` until its `sip_password` is set again (DESIGN.md,
//! "Storage").
//!
//! A tenant is `{id, name, sip_domain, time_zone, retention_days,
//! pickup_code, directed_pickup_prefix, agent_login_code,
//! agent_logout_code, recording, created_at}`; the queue agents' codes
//! default to `*45` and `*46`;
//! `time_zone` is an IANA name (default `UTC`), `retention_days` whole
//! days or `null` (keep CDRs forever), `recording` (default `false`):
//! every call of the tenant is recorded (the media is relayed).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::json;

use super::auth::ClientAddr;
use super::resource::{Body, ListQuery, rfc3339, system_admin};
use super::{ApiError, ApiState, Principal};
use crate::provision::{self, NewTenant};

pub const FIELDS: [&str; 9] = [
    "name",
    "sip_domain",
    "time_zone",
    "retention_days",
    "pickup_code",
    "directed_pickup_prefix",
    "agent_login_code",
    "agent_logout_code",
    "recording",
];

/// A tenant as REST shows it (keys in this order).
#[derive(Serialize)]
pub struct TenantJson {
    id: cdr::TenantId,
    name: String,
    sip_domain: String,
    time_zone: String,
    retention_days: Option<u32>,
    /// Call pickup feature codes: group pickup, and the directed pickup
    /// prefix (followed by an extension).
    pickup_code: String,
    directed_pickup_prefix: String,
    /// Queue agents' login and logout feature codes (alone: every queue
    /// of the agent; followed by a queue's number: that queue).
    agent_login_code: String,
    agent_logout_code: String,
    /// Every call of the tenant is recorded.
    recording: bool,
    created_at: String,
}

pub fn tenant_json(t: store::Tenant) -> TenantJson {
    TenantJson {
        id: t.id,
        name: t.name,
        sip_domain: t.sip_domain,
        time_zone: t.time_zone,
        retention_days: t.retention_days,
        pickup_code: t.pickup_code,
        directed_pickup_prefix: t.directed_pickup_prefix,
        agent_login_code: t.agent_login_code,
        agent_logout_code: t.agent_logout_code,
        recording: t.recording,
        created_at: rfc3339(t.created_at),
    }
}

/// The tenant `id` names, or 404 (an id that does not parse names nothing).
async fn tenant(state: &ApiState, id: &str) -> Result<store::Tenant, ApiError> {
    let id = id.parse().map_err(|_| ApiError::not_found("tenant"))?;
    state
        .store
        .tenant(id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))
}

/// Applies `body` to `tenant`: every field when `full` (PUT: absent
/// optional fields take their defaults), the fields given otherwise. An
/// IP address as `sip_domain` only with `allow_ip`.
pub fn apply(
    tenant: &mut store::Tenant,
    body: &Body,
    full: bool,
    allow_ip: bool,
) -> Result<(), ApiError> {
    if full || body.has("name") {
        tenant.name = provision::tenant_name(body.required("name")?)?;
    }
    if full || body.has("sip_domain") {
        let domain = body.required("sip_domain")?;
        tenant.sip_domain = if allow_ip {
            provision::sip_domain_or_ip(domain)?
        } else {
            provision::sip_domain(domain)?
        };
    }
    if full || body.has("time_zone") {
        tenant.time_zone = match body.string("time_zone")? {
            Some(tz) => provision::time_zone(tz)?,
            None if full => store::DEFAULT_TIME_ZONE.to_owned(),
            None => return Err(ApiError::validate("time_zone", "must be a string")),
        };
    }
    if full || body.has("retention_days") {
        tenant.retention_days = body
            .number("retention_days")?
            .map(provision::retention_days)
            .transpose()?;
    }
    for (field, default) in [
        ("pickup_code", store::DEFAULT_PICKUP_CODE),
        (
            "directed_pickup_prefix",
            store::DEFAULT_DIRECTED_PICKUP_PREFIX,
        ),
        ("agent_login_code", store::DEFAULT_AGENT_LOGIN_CODE),
        ("agent_logout_code", store::DEFAULT_AGENT_LOGOUT_CODE),
    ] {
        if full || body.has(field) {
            let code = match body.string(field)? {
                Some(c) => provision::feature_code(field, c)?,
                None => default.to_owned(),
            };
            match field {
                "pickup_code" => tenant.pickup_code = code,
                "agent_login_code" => tenant.agent_login_code = code,
                "agent_logout_code" => tenant.agent_logout_code = code,
                _ => tenant.directed_pickup_prefix = code,
            }
        }
    }
    if full || body.has("recording") {
        tenant.recording = body.boolean("recording")?.unwrap_or(false);
    }
    if tenant
        .directed_pickup_prefix
        .starts_with(&tenant.pickup_code)
        || tenant
            .pickup_code
            .starts_with(&tenant.directed_pickup_prefix)
    {
        return Err(ApiError::validate(
            "directed_pickup_prefix",
            "must not begin with the pickup code, nor the pickup code with it",
        ));
    }
    Ok(())
}

pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    ListQuery(page): ListQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    system_admin(principal)?;
    let count = state.store.count_tenants().await?;
    let items: Vec<TenantJson> = state
        .store
        .tenant_page(page.top, page.skip)
        .await?
        .into_iter()
        .map(tenant_json)
        .collect();
    Ok(Json(json!({ "count": count, "items": items })))
}

pub async fn create(
    State(state): State<ApiState>,
    principal: Principal,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<(StatusCode, Json<TenantJson>), ApiError> {
    system_admin(principal)?;
    let body = Body::parse(&body, &FIELDS)?;
    let mut fields = store::Tenant::new(
        cdr::TenantId::from(cdr::Id::from_u64(0)),
        "",
        "",
        cdr::UnixMillis(0),
    );
    apply(&mut fields, &body, true, state.policy.allow_ip_sip_domains)?;
    let tenant = state
        .provisioner
        .create_tenant(NewTenant {
            name: fields.name,
            sip_domain: fields.sip_domain,
            time_zone: fields.time_zone,
            retention_days: fields.retention_days,
            pickup_code: fields.pickup_code,
            directed_pickup_prefix: fields.directed_pickup_prefix,
            recording: fields.recording,
        })
        .await?;
    state
        .audit(
            None,
            &principal.actor(),
            "tenant.create",
            &format!("tenant:{}", tenant.id),
            source,
            json!({ "name": tenant.name, "sip_domain": tenant.sip_domain }),
        )
        .await;
    Ok((StatusCode::CREATED, Json(tenant_json(tenant))))
}

pub async fn get(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<TenantJson>, ApiError> {
    system_admin(principal)?;
    Ok(Json(tenant_json(tenant(&state, &id).await?)))
}

async fn update(
    state: ApiState,
    principal: Principal,
    source: ClientAddr,
    id: String,
    body: Bytes,
    full: bool,
) -> Result<Json<TenantJson>, ApiError> {
    system_admin(principal)?;
    let mut tenant = tenant(&state, &id).await?;
    let body = Body::parse(&body, &FIELDS)?;
    apply(&mut tenant, &body, full, state.policy.allow_ip_sip_domains)?;
    state.provisioner.update_tenant(&tenant).await?;
    state
        .audit(
            None,
            &principal.actor(),
            "tenant.update",
            &format!("tenant:{}", tenant.id),
            source.0,
            json!({ "fields": FIELDS.iter().filter(|f| body.has(f)).collect::<Vec<_>>() }),
        )
        .await;
    Ok(Json(tenant_json(tenant)))
}

pub async fn put(
    State(state): State<ApiState>,
    principal: Principal,
    source: ClientAddr,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<TenantJson>, ApiError> {
    update(state, principal, source, id, body, true).await
}

pub async fn patch(
    State(state): State<ApiState>,
    principal: Principal,
    source: ClientAddr,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<TenantJson>, ApiError> {
    update(state, principal, source, id, body, false).await
}

pub async fn delete(
    State(state): State<ApiState>,
    principal: Principal,
    ClientAddr(source): ClientAddr,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    system_admin(principal)?;
    let tenant = tenant(&state, &id).await?;
    state.provisioner.delete_tenant(tenant.id).await?;
    state.delete_tenant_recordings(tenant.id).await;
    state.delete_tenant_prompts(tenant.id).await;
    state
        .audit(
            None,
            &principal.actor(),
            "tenant.delete",
            &format!("tenant:{}", tenant.id),
            source,
            json!({ "name": tenant.name, "sip_domain": tenant.sip_domain }),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
