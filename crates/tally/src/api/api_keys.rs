//! `/api/api_keys`: a tenant's API keys for integrations (tenant admin, or
//! the system admin with `X-Tenant-Id`).
//!
//! ```text
//! GET    /api/api_keys              {count, items: [key]}, by name
//! POST   /api/api_keys              {"name", "role"} → 201 key + "key": the secret, shown this once
//! GET    /api/api_keys/{key_id}
//! DELETE /api/api_keys/{key_id}     204: revoked at once
//! ```
//!
//! A key is `{id, name, role, prefix, created_at, last_used_at}`: `prefix`
//! is the secret's first characters, to recognise it; `last_used_at` is
//! kept to the minute. The secret (`tally_` + 64 hex digits, 256 random
//! bits) is stored as its SHA-256 and is a bearer token standing for the
//! tenant with the key's role ([`super::auth`]).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use store::StoreError;

use super::auth::{API_KEY_PREFIX, ClientAddr, token_hash};
use super::resource::{Body, Scope, path_id, rfc3339};
use super::{ApiError, ApiState, Role};
use crate::{clock, provision, random};

const MANAGERS: &[Role] = &[Role::Admin];
/// Characters of the secret kept to recognise it (prefix + 8 hex digits).
const SHOWN: usize = API_KEY_PREFIX.len() + 8;

#[derive(Serialize)]
pub struct KeyJson {
    id: cdr::Id,
    name: String,
    role: String,
    prefix: String,
    created_at: String,
    last_used_at: Option<String>,
}

fn key_json(k: store::ApiKey) -> KeyJson {
    KeyJson {
        id: k.id,
        name: k.name,
        role: k.role,
        prefix: k.prefix,
        created_at: rfc3339(k.created_at),
        last_used_at: k.last_used_at.map(rfc3339),
    }
}

fn key_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::validate(
            "name",
            "must be 1 to 64 characters without control characters",
        ));
    }
    Ok(name.to_owned())
}

pub async fn list(State(state): State<ApiState>, scope: Scope) -> Result<Json<Value>, ApiError> {
    scope.require(MANAGERS)?;
    let items: Vec<KeyJson> = state
        .store
        .api_keys(scope.tenant_id)
        .await?
        .into_iter()
        .map(key_json)
        .collect();
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

pub async fn create(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<
    (
        StatusCode,
        [(axum::http::HeaderName, &'static str); 1],
        Json<Value>,
    ),
    ApiError,
> {
    scope.require(MANAGERS)?;
    let body = Body::parse(&body, &["name", "role"])?;
    let name = key_name(body.required("name")?)?;
    let role = provision::role(body.required("role")?)?;
    let secret = format!(
        "{API_KEY_PREFIX}{}",
        random::token().map_err(ApiError::internal)?
    );
    let key = store::ApiKey {
        id: state.provisioner.next_id(),
        tenant_id: scope.tenant_id,
        name,
        role: role.as_str().to_owned(),
        prefix: secret[..SHOWN].to_owned(),
        created_at: clock::unix_millis(),
        last_used_at: None,
    };
    match state.store.create_api_key(&key, &token_hash(&secret)).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::already_exists(
                "name",
                format!("an API key named {:?} exists", key.name),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "api_key.create",
            &format!("api-key:{}", key.id),
            source,
            json!({ "name": key.name, "role": key.role }),
        )
        .await;
    let mut out = serde_json::to_value(key_json(key)).map_err(ApiError::internal)?;
    out["key"] = Value::String(secret);
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(out),
    ))
}

async fn find(
    state: &ApiState,
    scope: &Scope,
    params: &HashMap<String, String>,
) -> Result<store::ApiKey, ApiError> {
    let id: cdr::Id = path_id(params, "key_id", "API key")?;
    state
        .store
        .api_key(scope.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("API key"))
}

pub async fn get(
    State(state): State<ApiState>,
    scope: Scope,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<KeyJson>, ApiError> {
    scope.require(MANAGERS)?;
    Ok(Json(key_json(find(&state, &scope, &params).await?)))
}

pub async fn delete(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    scope.require(MANAGERS)?;
    let key = find(&state, &scope, &params).await?;
    if !state.store.delete_api_key(scope.tenant_id, key.id).await? {
        return Err(ApiError::not_found("API key"));
    }
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "api_key.delete",
            &format!("api-key:{}", key.id),
            source,
            json!({ "name": key.name }),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
