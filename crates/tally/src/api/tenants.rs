//! Provisioning over REST: `POST /api/tenants`, `GET /api/tenants/{id}`,
//! `POST /api/tenants/{id}/users` (system admin only).
//!
//! Bodies are JSON objects read field by field, so every mistake is a
//! `VALIDATE_FAILED` naming its field, unknown fields included (a typo such
//! as `ring_timout` must not silently fall back to the default).
//!
//! ```text
//! POST /api/tenants        {"name": "Acme", "sip_domain": "acme.example.com"}
//! POST /api/tenants/{id}/users
//!     {"extension": "101", "sip_password": "…", "display_name": "Alice",
//!      "ring_timeout": 30, "enabled": true}
//! ```
//!
//! Responses echo the resource without the SIP password.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{ApiError, ApiState, Principal};
use crate::provision::{self, Invalid, NewTenant, NewUser, ProvisionError};

/// A JSON object body, read one named field at a time.
struct Body(Map<String, Value>);

impl Body {
    fn parse(bytes: &[u8], allowed: &[&str]) -> Result<Body, ApiError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::validate("body", format!("is not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(ApiError::validate("body", "must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::validate(
                unknown,
                format!("unknown field (allowed: {})", allowed.join(", ")),
            ));
        }
        Ok(Body(map))
    }

    fn string(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::validate(field, "must be a string")),
        }
    }

    fn required(&self, field: &str) -> Result<&str, ApiError> {
        self.string(field)?
            .ok_or_else(|| ApiError::validate(field, "is required"))
    }

    fn number(&self, field: &str) -> Result<Option<u64>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| ApiError::validate(field, "must be a whole number")),
        }
    }

    fn boolean(&self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::validate(field, "must be true or false")),
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::validate(e.field, e.message)
    }
}

impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> Self {
        match e {
            ProvisionError::DomainTaken(_) => ApiError::already_exists("sip_domain", e.to_string()),
            ProvisionError::ExtensionTaken(_) => {
                ApiError::already_exists("extension", e.to_string())
            }
            ProvisionError::UnknownTenant => ApiError::not_found("tenant"),
            ProvisionError::Store(e) => ApiError::internal(e),
            ProvisionError::Engine(_) => ApiError::internal(e),
        }
    }
}

/// A tenant as REST shows it (keys in this order).
#[derive(Serialize)]
pub struct TenantJson {
    id: cdr::TenantId,
    name: String,
    sip_domain: String,
    created_at: String,
}

fn tenant_json(t: store::Tenant) -> TenantJson {
    TenantJson {
        id: t.id,
        name: t.name,
        sip_domain: t.sip_domain,
        created_at: t.created_at.to_rfc3339(),
    }
}

/// A user as REST shows it: everything but the SIP password.
#[derive(Serialize)]
pub struct UserJson {
    id: cdr::Id,
    tenant_id: cdr::TenantId,
    extension: String,
    display_name: String,
    /// Seconds.
    ring_timeout: u32,
    enabled: bool,
    created_at: String,
}

fn user_json(u: store::User) -> UserJson {
    UserJson {
        id: u.id,
        tenant_id: u.tenant_id,
        extension: u.extension,
        display_name: u.display_name,
        ring_timeout: u.ring_timeout_secs,
        enabled: u.enabled,
        created_at: u.created_at.to_rfc3339(),
    }
}

/// The system admin only, for now; tenant admins get their own scope with
/// the REST identity work.
fn system_admin(principal: Principal) -> Result<(), ApiError> {
    match principal {
        Principal::SystemAdmin => Ok(()),
        Principal::Tenant { .. } => Err(ApiError::forbidden()),
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

pub async fn create_tenant(
    State(state): State<ApiState>,
    principal: Principal,
    body: Bytes,
) -> Result<(StatusCode, Json<TenantJson>), ApiError> {
    system_admin(principal)?;
    let body = Body::parse(&body, &["name", "sip_domain"])?;
    let new = NewTenant {
        name: provision::tenant_name(body.required("name")?)?,
        sip_domain: provision::sip_domain(body.required("sip_domain")?)?,
    };
    let tenant = state.provisioner.create_tenant(new).await?;
    Ok((StatusCode::CREATED, Json(tenant_json(tenant))))
}

pub async fn get_tenant(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<TenantJson>, ApiError> {
    system_admin(principal)?;
    Ok(Json(tenant_json(tenant(&state, &id).await?)))
}

pub async fn create_user(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<UserJson>), ApiError> {
    system_admin(principal)?;
    let tenant_id = tenant(&state, &id).await?.id;
    let body = Body::parse(
        &body,
        &[
            "extension",
            "sip_password",
            "display_name",
            "ring_timeout",
            "enabled",
        ],
    )?;
    let new = NewUser {
        extension: provision::extension(body.required("extension")?)?,
        sip_password: provision::sip_password(body.required("sip_password")?)?,
        display_name: provision::display_name(body.string("display_name")?.unwrap_or(""))?,
        ring_timeout_secs: match body.number("ring_timeout")? {
            Some(secs) => provision::ring_timeout(secs)?,
            None => store::DEFAULT_RING_TIMEOUT_SECS,
        },
        enabled: body.boolean("enabled")?.unwrap_or(true),
    };
    let user = state.provisioner.create_user(tenant_id, new).await?;
    Ok((StatusCode::CREATED, Json(user_json(user))))
}
