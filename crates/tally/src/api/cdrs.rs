//! Tenant CDR reads (SPEC §7): `GET /api/cdrs`, `GET /api/cdrs/{id}` and
//! `GET /api/cdrs/export`.
//!
//! Who: the tenant's `Admin` and `QueueManager`, and the system admin
//! naming the tenant in `X-Tenant-Id`; a `StandardUser` gets 403 (its own
//! calls are under `/api/user/cdrs`). A CDR of another tenant, like an
//! unknown one, answers 404.
//!
//! The list takes the query options of `store::query` (`filter`,
//! `orderby`, `top`, `skip`, `search`, `count`, `after`) and answers
//! `{count, items}` (`count` absent with `count=false`); a bad option
//! answers 400 `VALIDATE_FAILED` with `detail.field` naming it. Items are
//! the cdr crate's `rest_item`, the detail `{items:[rest_detail]}`.
//!
//! The export streams every matching row (`filter`, `search`, `orderby`;
//! paging options do not apply) as `format=csv` (times in the tenant's time
//! zone) or `format=jsonl` (the list items, UTC), with constant memory.
//! A tenant runs at most `http.exports_per_tenant` exports at once and the
//! node `http.exports_total` (below the store's pool size); one more
//! answers 429 `TOO_MANY_EXPORTS` with `Retry-After`. A client that takes
//! nothing for `http.write_stall_secs` loses its export and its
//! connection (`store::ExportLimits`).

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use cdr::{CdrId, TenantId};
use futures_util::TryStreamExt as _;
use serde_json::{Map, Value, json};
use store::{CdrPage, CdrQuery, CdrScope, ExportFormat, ExportZone, QueryError};

use super::{ApiError, ApiState, Principal, Role};

/// Who may read a tenant's CDRs in full (the console checks the same).
pub(crate) const READERS: [Role; 2] = [Role::Admin, Role::QueueManager];

/// The tenant whose CDRs a request may read in full.
async fn scope(
    state: &ApiState,
    principal: Principal,
    headers: &HeaderMap,
) -> Result<TenantId, ApiError> {
    super::resource::tenant_scope(state, principal, headers, &READERS).await
}

pub(super) fn query_error(error: QueryError) -> ApiError {
    ApiError::validate(error.param, error.message)
}

/// The query options of a listing.
pub(crate) fn parse_query(params: &HashMap<String, String>) -> Result<CdrQuery, ApiError> {
    CdrQuery::from_params(|name| params.get(name).map(String::as_str)).map_err(query_error)
}

/// Runs a listing; a cursor the tenant does not have is the client's
/// mistake. The REST list and the console's CDR page both read through it.
pub(crate) async fn records(
    state: &ApiState,
    tenant: TenantId,
    scope: &CdrScope,
    query: &CdrQuery,
) -> Result<CdrPage, ApiError> {
    match state.store.query_cdrs(tenant, scope, query).await {
        Err(store::StoreError::UnknownCursor(_)) => {
            Err(ApiError::validate("after", "names no CDR of this listing"))
        }
        other => Ok(other?),
    }
}

/// A listing as REST answers it.
pub(super) async fn page(
    state: &ApiState,
    tenant: TenantId,
    scope: &CdrScope,
    query: &CdrQuery,
) -> Result<Json<Value>, ApiError> {
    let CdrPage { count, records } = records(state, tenant, scope, query).await?;
    let mut body = Map::new();
    if let Some(count) = count {
        body.insert("count".into(), json!(count));
    }
    let items: Vec<_> = records.iter().map(|r| r.rest_item()).collect();
    body.insert("items".into(), json!(items));
    Ok(Json(Value::Object(body)))
}

pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let query = parse_query(&params)?;
    let tenant = scope(&state, principal, &headers).await?;
    page(&state, tenant, &CdrScope::Tenant, &query).await
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

/// The zone CSV times are written in: the tenant's `time_zone`. A name
/// this build's time zone database does not know (it was validated when
/// stored, so only after a database downgrade) falls back to UTC, with a
/// warning, rather than refusing the export.
pub(crate) async fn tenant_zone(
    state: &ApiState,
    tenant: TenantId,
) -> Result<ExportZone, ApiError> {
    let tenant = state
        .store
        .tenant(tenant)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(
        ExportZone::named(&tenant.time_zone).unwrap_or_else(|error| {
            tracing::warn!(tenant = %tenant.id, %error, "CSV export falls back to UTC");
            ExportZone::utc()
        }),
    )
}

pub async fn export(
    State(state): State<ApiState>,
    principal: Principal,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (format, query) = export_options(&params)?;
    let tenant = scope(&state, principal, &headers).await?;
    export_response(&state, tenant, format, query).await
}

/// An export's format and query from its parameters (paging options are
/// refused). Shared with the console's CSV link.
pub(crate) fn export_options(
    params: &HashMap<String, String>,
) -> Result<(ExportFormat, CdrQuery), ApiError> {
    let format = match params.get("format").map(String::as_str) {
        None => return Err(ApiError::validate("format", "is required: csv or jsonl")),
        Some(text) => ExportFormat::parse(text)
            .ok_or_else(|| ApiError::validate("format", "must be csv or jsonl"))?,
    };
    for paging in ["top", "skip", "after", "count"] {
        if params.contains_key(paging) {
            return Err(ApiError::validate(
                paging,
                "does not apply to an export, which has every matching row",
            ));
        }
    }
    Ok((format, parse_query(params)?))
}

/// Streams the tenant's matching CDRs as an attachment, in one of the
/// tenant's export slots (finding 1: a slow reader cannot starve the store).
pub(crate) async fn export_response(
    state: &ApiState,
    tenant: TenantId,
    format: ExportFormat,
    query: CdrQuery,
) -> Result<Response, ApiError> {
    let slot = state
        .policy
        .exports
        .try_acquire(tenant)
        .ok_or_else(ApiError::too_many_exports)?;
    let zone = tenant_zone(state, tenant).await?;
    let chunks = state
        .store
        .export_cdrs(tenant, CdrScope::Tenant, query, format, zone, slot)?
        .map_ok(bytes::Bytes::from);
    let disposition = format!(
        "attachment; filename=\"cdrs-{tenant}.{}\"",
        format.extension()
    );
    let mut response = Body::from_stream(chunks).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response_headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
