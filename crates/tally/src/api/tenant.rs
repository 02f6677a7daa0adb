//! `/api/tenant`: the tenant's own settings, for the tenant it acts in
//! (a tenant principal's own; the system admin's `X-Tenant-Id`).
//!
//! ```text
//! GET /api/tenant    any role of the tenant
//! PUT /api/tenant    Admin: {"name"?, "sip_domain"?, "time_zone"?, "retention_days"?,
//!                    "pickup_code"?, "directed_pickup_prefix"?, "agent_login_code"?,
//!                    "agent_logout_code"?, "recording"?, "cdr_event"?}
//! ```
//!
//! Only the system admin changes `sip_domain` (a tenant `Admin` giving a
//! different one gets 403 `FORBIDDEN` with `detail.field`).
//!
//! `cdr_event` is the webhook configuration of SPEC §5, the same object as
//! `/api/tenant/cdr_event` ([`super::webhooks`]); it is shown to the Admin
//! and the system admin only (it names the receiver and its credentials,
//! masked). A PUT validates the tenant fields first, then stores
//! `cdr_event`, then the tenant fields: a body with a bad field changes
//! nothing.
//!
//! PUT changes the fields the body names and keeps the others: this
//! resource is a settings object that grows with features (webhook
//! settings join it), and a client that knows only some of them must not
//! reset the rest. Same shape as [`super::tenants`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Value, json};

use super::auth::ClientAddr;
use super::resource::{Body, Scope};
use super::tenants::{FIELDS, apply, tenant_json};
use super::{ApiError, ApiState, Principal, Role, webhooks};

async fn load(state: &ApiState, scope: &Scope) -> Result<store::Tenant, ApiError> {
    state
        .store
        .tenant(scope.tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))
}

fn sees_webhooks(principal: Principal) -> bool {
    matches!(
        principal,
        Principal::SystemAdmin
            | Principal::Tenant {
                role: Role::Admin,
                ..
            }
    )
}

async fn settings(
    state: &ApiState,
    scope: &Scope,
    tenant: store::Tenant,
) -> Result<Value, ApiError> {
    let mut json = serde_json::to_value(tenant_json(tenant)).map_err(ApiError::internal)?;
    if sees_webhooks(scope.principal) {
        json["cdr_event"] = webhooks::cdr_event_view(state, scope.tenant_id).await?;
    }
    Ok(json)
}

pub async fn get(State(state): State<ApiState>, scope: Scope) -> Result<Json<Value>, ApiError> {
    scope.require(&Role::ALL)?;
    let tenant = load(&state, &scope).await?;
    Ok(Json(settings(&state, &scope, tenant).await?))
}

pub async fn put(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    scope.require(&[Role::Admin])?;
    let mut tenant = load(&state, &scope).await?;
    let mut allowed = FIELDS.to_vec();
    allowed.push("cdr_event");
    let body = Body::parse(&body, &allowed)?;
    // The SIP domain routes every request of the tenant's phones; a tenant
    // admin taking another name (the PBX's own address, say) could capture
    // other tenants' calls (security review, finding 3). Sending the
    // current value back, as a GET-then-PUT client does, is fine.
    if body.has("sip_domain") && !matches!(scope.principal, Principal::SystemAdmin) {
        let given = body.required("sip_domain")?;
        let given = given.strip_suffix('.').unwrap_or(given);
        if !given.eq_ignore_ascii_case(&tenant.sip_domain) {
            return Err(ApiError::forbidden_field(
                "sip_domain",
                "only the system admin changes a tenant's SIP domain",
            ));
        }
    }
    apply(&mut tenant, &body, false, state.policy.allow_ip_sip_domains)?;
    if let Some(cdr_event) = body.value("cdr_event") {
        webhooks::put_cdr_event(&state, scope.tenant_id, cdr_event).await?;
    }
    state.provisioner.update_tenant(&tenant).await?;
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "tenant.update",
            &format!("tenant:{}", tenant.id),
            source,
            json!({ "fields": allowed.iter().filter(|f| body.has(f)).collect::<Vec<_>>() }),
        )
        .await;
    Ok(Json(settings(&state, &scope, tenant).await?))
}
