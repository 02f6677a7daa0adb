//! `GET /api/audit_logs?top=&skip=`: the audit log, newest first
//! (`{count, items}`): sign-ins, failed sign-ins, reused refresh tokens,
//! and every configuration change made through this API.
//!
//! Tenant-scoped: a tenant admin reads its tenant's entries; the system
//! admin reads the system entries (its own actions, sign-ins to no
//! tenant), or a tenant's with `X-Tenant-Id`. Other roles are refused.
//!
//! An entry is `{id, tenant_id (null for system entries), at, actor,
//! action, target, source, detail}`: `actor` is `system-admin`,
//! `user:<id>`, `api-key`, or for a failed sign-in the name that was
//! tried; `source` the client's address when known; `detail` an object.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::resource::{ListQuery, TENANT_HEADER, require, rfc3339};
use super::{ApiError, ApiState, Principal, Role};

pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    headers: HeaderMap,
    ListQuery(page): ListQuery,
) -> Result<Json<Value>, ApiError> {
    require(principal, &[Role::Admin])?;
    let tenant = match principal.tenant() {
        Some(own) => Some(own),
        None => match headers.get(TENANT_HEADER) {
            None => None,
            Some(raw) => {
                let id = raw
                    .to_str()
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .ok_or_else(|| ApiError::validate("X-Tenant-Id", "must be a tenant id"))?;
                if state.store.tenant(id).await?.is_none() {
                    return Err(ApiError::not_found("tenant"));
                }
                Some(id)
            }
        },
    };
    let count = state.store.count_audit(tenant).await?;
    let items: Vec<Value> = state
        .store
        .audit_page(tenant, page.top, page.skip)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id.to_string(),
                "tenant_id": e.tenant_id.map(|t| t.to_string()),
                "at": rfc3339(e.at),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "source": e.source,
                "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or_else(|_| json!({})),
            })
        })
        .collect();
    Ok(Json(json!({ "count": count, "items": items })))
}
