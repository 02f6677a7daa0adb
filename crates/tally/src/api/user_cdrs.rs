//! A tenant user's own CDRs (SPEC §7): `GET /api/user/cdrs`,
//! `GET /api/user/cdrs/{id}`, and the personal sync tokens
//! `POST /api/user/cdrs/sync_tokens` and
//! `POST /api/user/cdrs/sync_tokens/{token}/diff`.
//!
//! Who: any user signed in to a tenant, whatever its role; only its own
//! calls. "Own" is `store::CdrScope::User`, matched on the user's id the
//! PBX recorded on the CDR (never on the extension number, which a later
//! user may get: issue 17 finding 11): calls it placed, calls placed to it
//! (first destination), and calls that rang it as a target (forwarded to
//! it, ring group or queue member). The system admin and API keys, which
//! have no extension, get 403.
//!
//! * The list takes the same query options as `/api/cdrs` and answers
//!   `{count, items}`.
//! * The detail answers `{items: {…}}` (an object, PortSIP's
//!   `/user/cdrs/{id}` shape) with the list item's fields: no
//!   `call_targets`, which would show the contacts of other users' phones.
//!   Another user's CDR answers 404, as an unknown one.
//! * Sync: see `store::sync` for the semantics. `date_from` (RFC 3339) on
//!   creation asks for the calls since then. A diff answers
//!   `{token, items:[{id, change_type:"CREATED", items:[item]}], has_more}`;
//!   an unknown, expired or another user's token answers 403
//!   `INVALID_SYNC_TOKEN`, after which the client does a full sync.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cdr::{CdrId, Id, TenantId, UnixMillis};
use serde_json::{Value, json};
use store::CdrScope;

use super::cdrs::{page, parse_query};
use super::{ApiError, ApiState, Principal};
use crate::{clock, random};

/// The signed-in user: tenant and user id (a user without an extension,
/// which the store does not allow today, gets 403 like the system admin).
async fn own(state: &ApiState, principal: Principal) -> Result<(TenantId, Id), ApiError> {
    let Principal::Tenant {
        tenant_id,
        user: Some(user),
        ..
    } = principal
    else {
        return Err(ApiError::forbidden());
    };
    state
        .store
        .user_extension(tenant_id, user)
        .await?
        .ok_or_else(ApiError::forbidden)?;
    Ok((tenant_id, user))
}

/// The signed-in user's tenant and the store scope of its "own" calls
/// (the console's call pages list through it too).
pub(crate) async fn own_scope(
    state: &ApiState,
    principal: Principal,
) -> Result<(TenantId, CdrScope), ApiError> {
    let (tenant, user) = own(state, principal).await?;
    Ok((tenant, CdrScope::User(user)))
}

/// Whether the user's listing (`scope`) has the CDR of `session`.
pub(crate) async fn is_own(
    state: &ApiState,
    tenant: TenantId,
    scope: &CdrScope,
    session: cdr::SessionId,
) -> Result<bool, ApiError> {
    let session = i64::try_from(session.id().as_u64()).map_err(|_| ApiError::not_found("CDR"))?;
    let query = store::CdrQuery {
        filter: Some(store::query::Filter(store::query::Expr::Compare {
            field: store::query::Field::SessionId,
            op: store::query::Cmp::Eq,
            value: store::query::Value::Id(session),
        })),
        top: 1,
        count: false,
        ..store::CdrQuery::default()
    };
    let mine = state.store.query_cdrs(tenant, scope, &query).await?;
    Ok(!mine.records.is_empty())
}

pub async fn list(
    State(state): State<ApiState>,
    principal: Principal,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let query = parse_query(&params)?;
    let (tenant, scope) = own_scope(&state, principal).await?;
    page(&state, tenant, &scope, &query).await
}

pub async fn detail(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (tenant, scope) = own_scope(&state, principal).await?;
    let id: CdrId = id.parse().map_err(|_| ApiError::not_found("CDR"))?;
    let record = state
        .store
        .get_cdr(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("CDR"))?;
    // Is it the user's? Its session in the user's listing: "own" has one
    // definition, the store's.
    if !is_own(&state, tenant, &scope, record.session_id).await? {
        return Err(ApiError::not_found("CDR"));
    }
    Ok(Json(json!({ "items": record.rest_item() })))
}

/// 403 for a forgotten sync token: the client must start a full sync.
fn invalid_token() -> Response {
    let body = json!({ "errors": [{
        "code": "INVALID_SYNC_TOKEN",
        "message": "unknown or expired sync token: start a full sync",
        "detail": { "field": "token" },
    }]});
    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

pub async fn create_sync_token(
    State(state): State<ApiState>,
    principal: Principal,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let date_from = params
        .get("date_from")
        .map(|text| {
            store::query::filter::parse_time(text.trim())
                .and_then(|ms| u64::try_from(ms).ok())
                .map(UnixMillis)
                .ok_or_else(|| {
                    ApiError::validate("date_from", "must be an RFC 3339 date-time with an offset")
                })
        })
        .transpose()?;
    let (tenant, user) = own(&state, principal).await?;
    let token = random::token().map_err(ApiError::internal)?;
    state
        .store
        .create_cdr_sync_token(tenant, user, &token, date_from, clock::unix_millis())
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": token }))).into_response())
}

pub async fn diff(
    State(state): State<ApiState>,
    principal: Principal,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let (tenant, user) = own(&state, principal).await?;
    let next = random::token().map_err(ApiError::internal)?;
    let Some(diff) = state
        .store
        .cdr_sync_diff(tenant, user, &token, &next, clock::unix_millis())
        .await?
    else {
        return Ok(invalid_token());
    };
    let items: Vec<Value> = diff
        .created
        .iter()
        .map(|r| {
            json!({
                "id": r.cdr_id,
                "change_type": "CREATED",
                "items": [r.rest_item()],
            })
        })
        .collect();
    Ok(Json(json!({
        "token": diff.token,
        "items": items,
        "has_more": diff.has_more,
    }))
    .into_response())
}
