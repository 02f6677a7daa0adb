//! REST CDR reads (SPEC §7): `GET /api/cdrs` and `GET /api/cdrs/{id}`.
//!
//! Interim identity: one admin API token (printed at first start, stored
//! hashed in the data directory) and the tenant named by `X-Tenant-Id`.
//! The REST work replaces both with real logins, API keys and roles.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cdr::{CdrId, TenantId};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use store::Store;
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct AppState {
    store: Store,
    token_hash: Arc<[u8; 32]>,
}

impl AppState {
    pub fn new(store: Store, token_hash: [u8; 32]) -> Self {
        Self {
            store,
            token_hash: Arc::new(token_hash),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/cdrs", get(list_cdrs))
        .route("/api/cdrs/{id}", get(get_cdr))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such resource")
        })
        .with_state(state)
}

pub async fn run(
    listener: TcpListener,
    state: AppState,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = stop.await;
        })
        .await
}

/// The SPEC §7 error shape.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "REST request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"errors": [{"code": self.code, "message": self.message, "detail": {}}]});
        (self.status, Json(body)).into_response()
    }
}

/// Checks the bearer token and returns the tenant the request names.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<TenantId, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing bearer token",
        ));
    };
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    // Compare hashes without an early exit.
    let diff = hash
        .iter()
        .zip(state.token_hash.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff != 0 {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "invalid token",
        ));
    }
    let tenant: TenantId = headers
        .get("x-tenant-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::validation("missing X-Tenant-Id header"))?
        .trim()
        .parse()
        .map_err(|_| ApiError::validation("X-Tenant-Id is not a tenant id"))?;
    match state.store.tenant(tenant).await {
        Ok(Some(_)) => Ok(tenant),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "TENANT_NOT_FOUND",
            "no such tenant",
        )),
        Err(error) => Err(ApiError::internal(error)),
    }
}

fn number<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    name: &str,
    default: T,
) -> Result<T, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| ApiError::validation(format!("{name} must be a non-negative integer"))),
    }
}

async fn list_cdrs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers).await?;
    let top: u32 = number(&query, "top", 100)?;
    if !(1..=100).contains(&top) {
        return Err(ApiError::validation("top must be between 1 and 100"));
    }
    let skip: u64 = number(&query, "skip", 0)?;
    let count = state
        .store
        .count_cdrs(tenant)
        .await
        .map_err(ApiError::internal)?;
    let records = state
        .store
        .list_cdrs(tenant, top, skip, None)
        .await
        .map_err(ApiError::internal)?;
    let items = records
        .iter()
        .map(|r| serde_json::to_value(r.rest_item()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    Ok(Json(json!({"count": count, "items": items})))
}

async fn get_cdr(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &headers).await?;
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "CDR_NOT_FOUND", "no such CDR");
    let id: CdrId = id.parse().map_err(|_| not_found())?;
    let record = state
        .store
        .get_cdr(tenant, id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(not_found)?;
    let detail = serde_json::to_value(record.rest_detail()).map_err(ApiError::internal)?;
    Ok(Json(json!({"items": [detail]})))
}
