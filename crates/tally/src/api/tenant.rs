//! `/api/tenant`: the tenant's own settings, for the tenant it acts in
//! (a tenant principal's own; the system admin's `X-Tenant-Id`).
//!
//! ```text
//! GET /api/tenant    any role of the tenant
//! PUT /api/tenant    Admin: {"name"?, "sip_domain"?, "time_zone"?, "retention_days"?}
//! ```
//!
//! PUT changes the fields the body names and keeps the others: this
//! resource is a settings object that grows with features (webhook
//! settings join it), and a client that knows only some of them must not
//! reset the rest. Same shape as [`super::tenants`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::json;

use super::auth::ClientAddr;
use super::resource::{Body, Scope};
use super::tenants::{FIELDS, TenantJson, apply, tenant_json};
use super::{ApiError, ApiState, Role};

async fn load(state: &ApiState, scope: &Scope) -> Result<store::Tenant, ApiError> {
    state
        .store
        .tenant(scope.tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))
}

pub async fn get(
    State(state): State<ApiState>,
    scope: Scope,
) -> Result<Json<TenantJson>, ApiError> {
    scope.require(&Role::ALL)?;
    Ok(Json(tenant_json(load(&state, &scope).await?)))
}

pub async fn put(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<Json<TenantJson>, ApiError> {
    scope.require(&[Role::Admin])?;
    let mut tenant = load(&state, &scope).await?;
    let body = Body::parse(&body, &FIELDS)?;
    apply(&mut tenant, &body, false)?;
    state.provisioner.update_tenant(&tenant).await?;
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "tenant.update",
            &format!("tenant:{}", tenant.id),
            source,
            json!({ "fields": FIELDS.iter().filter(|f| body.has(f)).collect::<Vec<_>>() }),
        )
        .await;
    Ok(Json(tenant_json(tenant)))
}
