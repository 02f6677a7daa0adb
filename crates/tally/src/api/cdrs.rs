//! CDR reads (SPEC §7): `GET /api/cdrs` (newest first, `top` 1–100
//! default 100, `skip`, keyset `after=<id>`; `{count, items}`) and
//! `GET /api/cdrs/{id}` (`{items:[detail]}` with `call_targets`), spelled by
//! the cdr crate's `rest_item`/`rest_detail`.
//!
//! Tenant-scoped: the system admin names the tenant in `X-Tenant-Id`; a
//! CDR of another tenant, like an unknown one, answers 404. `filter`,
//! `orderby` and `search` are refused with `VALIDATE_FAILED` until the
//! REST work implements them: ignoring a filter would return rows the
//! client asked not to see.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use cdr::{CdrId, TenantId};
use serde_json::{Value, json};

use super::{ApiError, ApiState, Principal, Role};

pub const TENANT_HEADER: &str = "x-tenant-id";
const MAX_TOP: u32 = 100;

/// The tenant a request reads.
async fn scope(
    state: &ApiState,
    principal: Principal,
    headers: &HeaderMap,
) -> Result<TenantId, ApiError> {
    match principal {
        Principal::SystemAdmin => {
            let raw = headers
                .get(TENANT_HEADER)
                .ok_or_else(|| {
                    ApiError::validate("X-Tenant-Id", "is required for the system admin")
                })?
                .to_str()
                .map_err(|_| ApiError::validate("X-Tenant-Id", "must be a tenant id"))?;
            let id: TenantId = raw
                .trim()
                .parse()
                .map_err(|_| ApiError::validate("X-Tenant-Id", "must be a tenant id"))?;
            match state.store.tenant(id).await? {
                Some(_) => Ok(id),
                None => Err(ApiError::not_found("tenant")),
            }
        }
        Principal::Tenant {
            tenant_id,
            role: Role::Admin | Role::QueueManager,
            ..
        } => Ok(tenant_id),
        Principal::Tenant {
            role: Role::StandardUser,
            ..
        } => Err(ApiError::forbidden()),
    }
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

pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    for unsupported in ["filter", "orderby", "search"] {
        if query.contains_key(unsupported) {
            return Err(ApiError::validate(unsupported, "is not supported yet"));
        }
    }
    let top = number::<u32>(&query, "top")?.unwrap_or(MAX_TOP);
    if !(1..=MAX_TOP).contains(&top) {
        return Err(ApiError::validate("top", format!("must be 1 to {MAX_TOP}")));
    }
    let skip = number::<u64>(&query, "skip")?.unwrap_or(0);
    let after: Option<CdrId> = query
        .get("after")
        .map(|a| {
            a.parse()
                .map_err(|_| ApiError::validate("after", "must be a CDR id"))
        })
        .transpose()?;
    let tenant = scope(&state, principal, &headers).await?;
    let count = state.store.count_cdrs(tenant).await?;
    let records = match state.store.list_cdrs(tenant, top, skip, after).await {
        Err(store::StoreError::UnknownCursor(_)) => {
            return Err(ApiError::validate("after", "names no CDR of this tenant"));
        }
        other => other?,
    };
    let items: Vec<_> = records.iter().map(|r| r.rest_item()).collect();
    Ok(Json(json!({ "count": count, "items": items })))
}

pub async fn detail(
    State(state): State<ApiState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = scope(&state, principal, &headers).await?;
    let id: CdrId = id.parse().map_err(|_| ApiError::not_found("CDR"))?;
    let record = state
        .store
        .get_cdr(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("CDR"))?;
    Ok(Json(json!({ "items": [record.rest_detail()] })))
}
