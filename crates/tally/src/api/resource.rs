//! What every provisioning resource module shares: reading a JSON body
//! field by field, paging, the tenant a request acts in, role checks, and
//! how provisioning errors answer. See the module docs of [`super`] for
//! the pattern a resource follows.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use cdr::TenantId;
use serde_json::{Map, Value};

use super::{ApiError, ApiState, Principal, Role};
use crate::provision::{Invalid, ProvisionError};

/// `X-Tenant-Id`: the tenant a system admin acts in.
pub const TENANT_HEADER: &str = "x-tenant-id";
pub const MAX_TOP: u32 = 100;

/// A JSON object body, read one named field at a time, so every mistake
/// is a `VALIDATE_FAILED` naming its field, unknown fields included (a
/// typo such as `ring_timout` must not silently fall back to the default).
pub struct Body(Map<String, Value>);

impl Body {
    pub fn parse(bytes: &[u8], allowed: &[&str]) -> Result<Body, ApiError> {
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

    /// Whether the body names `field` (`null` included).
    pub fn has(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// The raw value, `null` included.
    pub fn value(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }

    pub fn string(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::validate(field, "must be a string")),
        }
    }

    pub fn required(&self, field: &str) -> Result<&str, ApiError> {
        self.string(field)?
            .ok_or_else(|| ApiError::validate(field, "is required"))
    }

    pub fn number(&self, field: &str) -> Result<Option<u64>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| ApiError::validate(field, "must be a whole number")),
        }
    }

    /// An array of strings (`null` and absent: `None`).
    pub fn strings(&self, field: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| ApiError::validate(field, "must be an array of strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ApiError::validate(field, "must be an array of strings")),
        }
    }

    pub fn boolean(&self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::validate(field, "must be true or false")),
        }
    }
}

/// `top` (1–100, default 100) and `skip` of a list.
pub struct Paging {
    pub top: u32,
    pub skip: u64,
}

impl Paging {
    pub fn of(query: &HashMap<String, String>) -> Result<Paging, ApiError> {
        let top = match query.get("top") {
            None => MAX_TOP,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|t| (1..=MAX_TOP).contains(t))
                .ok_or_else(|| ApiError::validate("top", format!("must be 1 to {MAX_TOP}")))?,
        };
        let skip = match query.get("skip") {
            None => 0,
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| *s <= i64::MAX as u64)
                .ok_or_else(|| ApiError::validate("skip", "must be a whole number"))?,
        };
        Ok(Paging { top, skip })
    }
}

/// The list query (`top`, `skip`), as an extractor.
pub struct ListQuery(pub Paging);

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(query) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::validate("query", e.body_text()))?;
        Ok(ListQuery(Paging::of(&query)?))
    }
}

/// The path's named parameters (`{tenant_id}`, `{user_id}`…).
pub async fn path_params(parts: &mut Parts) -> HashMap<String, String> {
    Path::<HashMap<String, String>>::from_request_parts(parts, &())
        .await
        .map(|Path(p)| p)
        .unwrap_or_default()
}

/// An id from the path; one that does not parse names nothing (404).
pub fn path_id<T: std::str::FromStr>(
    params: &HashMap<String, String>,
    name: &str,
    what: &str,
) -> Result<T, ApiError> {
    params
        .get(name)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::not_found(what))
}

/// Who acts, and in which tenant: a tenant user or API key in its own; the
/// system admin in the tenant of the path's `{tenant_id}` or of
/// `X-Tenant-Id`. A tenant principal naming another tenant in the path,
/// like an unknown tenant, gets 404.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    pub tenant_id: TenantId,
    pub principal: Principal,
}

impl Scope {
    /// Refused (403) unless the system admin or a tenant principal with one
    /// of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        require(self.principal, roles)
    }

    /// A StandardUser's own extension, to which its views are narrowed
    /// (its calls, its recordings); `None` for the other roles. A user
    /// without an extension any more is refused (403).
    pub async fn standard_user_extension(
        &self,
        state: &ApiState,
    ) -> Result<Option<String>, ApiError> {
        match self.principal {
            Principal::Tenant {
                role: Role::StandardUser,
                tenant_id,
                user,
            } => {
                let user = user.ok_or_else(ApiError::forbidden)?;
                let ext = state
                    .store
                    .user_extension(tenant_id, user)
                    .await?
                    .ok_or_else(ApiError::forbidden)?;
                Ok(Some(ext))
            }
            _ => Ok(None),
        }
    }
}

/// The system admin may do everything; a tenant principal what its role
/// is listed for.
pub fn require(principal: Principal, roles: &[Role]) -> Result<(), ApiError> {
    match principal {
        Principal::SystemAdmin => Ok(()),
        Principal::Tenant { role, .. } if roles.contains(&role) => Ok(()),
        Principal::Tenant { .. } => Err(ApiError::forbidden()),
    }
}

/// The system admin only (the `/api/tenants` resource).
pub fn system_admin(principal: Principal) -> Result<(), ApiError> {
    match principal {
        Principal::SystemAdmin => Ok(()),
        Principal::Tenant { .. } => Err(ApiError::forbidden()),
    }
}

/// The system admin's `X-Tenant-Id`, if sent.
pub fn tenant_header(headers: &HeaderMap) -> Result<Option<TenantId>, ApiError> {
    let Some(raw) = headers.get(TENANT_HEADER) else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::validate("X-Tenant-Id", "must be a tenant id"))
}

/// The tenant a handler that reads the principal and headers itself acts
/// in, refused (403) unless the principal is the system admin (naming an
/// existing tenant in `X-Tenant-Id`, else 404) or has one of `roles`. The
/// same rule as [`Scope`] for routes without a `{tenant_id}`.
pub async fn tenant_scope(
    state: &ApiState,
    principal: Principal,
    headers: &HeaderMap,
    roles: &[Role],
) -> Result<TenantId, ApiError> {
    let named = match principal {
        Principal::SystemAdmin => tenant_header(headers)?,
        Principal::Tenant { .. } => None,
    };
    tenant_scope_named(state, principal, named, roles).await
}

/// [`tenant_scope`] with the system admin's tenant given (the console's
/// tenant switcher) instead of read from `X-Tenant-Id`; a tenant
/// principal always acts in its own tenant.
pub async fn tenant_scope_named(
    state: &ApiState,
    principal: Principal,
    named: Option<TenantId>,
    roles: &[Role],
) -> Result<TenantId, ApiError> {
    require(principal, roles)?;
    match principal {
        Principal::Tenant { tenant_id, .. } => Ok(tenant_id),
        Principal::SystemAdmin => {
            let id = named.ok_or_else(|| {
                ApiError::validate("X-Tenant-Id", "is required for the system admin")
            })?;
            match state.store.tenant(id).await {
                Ok(Some(_)) => Ok(id),
                Ok(None) | Err(store::StoreError::OutOfRange { .. }) => {
                    Err(ApiError::not_found("tenant"))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

impl FromRequestParts<ApiState> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let params = path_params(parts).await;
        let named = if params.contains_key("tenant_id") {
            Some(path_id::<TenantId>(&params, "tenant_id", "tenant")?)
        } else {
            None
        };
        let tenant_id = match (principal, named) {
            (Principal::Tenant { tenant_id, .. }, None) => {
                return Ok(Scope {
                    tenant_id,
                    principal,
                });
            }
            (Principal::Tenant { tenant_id, .. }, Some(named)) => {
                if named != tenant_id {
                    return Err(ApiError::not_found("tenant"));
                }
                return Ok(Scope {
                    tenant_id,
                    principal,
                });
            }
            (Principal::SystemAdmin, Some(named)) => named,
            (Principal::SystemAdmin, None) => tenant_header(&parts.headers)?.ok_or_else(|| {
                ApiError::validate("X-Tenant-Id", "is required for the system admin")
            })?,
        };
        match state.store.tenant(tenant_id).await? {
            Some(_) => Ok(Scope {
                tenant_id,
                principal,
            }),
            None => Err(ApiError::not_found("tenant")),
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
            ProvisionError::SipPasswordRequired => {
                ApiError::validate("sip_password", e.to_string())
            }
            ProvisionError::UnknownUser => ApiError::not_found("user"),
            ProvisionError::TenantInUse(_) => ApiError::in_use("tenant", e.to_string()),
            ProvisionError::Store(e) => ApiError::internal(e),
            ProvisionError::Engine(_) => ApiError::internal(e),
        }
    }
}

/// Milliseconds as REST shows times.
pub fn rfc3339(at: cdr::UnixMillis) -> String {
    at.to_rfc3339()
}
