//! Users (extensions) of a tenant: the tenant admin's, in its own tenant
//! (`/api/users`), or the system admin's (`/api/tenants/{tenant_id}/users`,
//! or `/api/users` with `X-Tenant-Id`). Other roles are refused (403); a
//! user of another tenant answers 404.
//!
//! ```text
//! GET    /api/users?top=&skip=     {count, items: [user]}, by extension
//! POST   /api/users                {"extension", "sip_password", …} → 201
//! GET    /api/users/{user_id}
//! PUT    /api/users/{user_id}      every field (extension and sip_password required;
//!                                  others reset to their defaults, except the web password)
//! PATCH  /api/users/{user_id}      the fields given
//! DELETE /api/users/{user_id}      204
//! ```
//!
//! Fields: `extension` (1–32 digits, unique in the tenant), `sip_password`
//! (write-only), `password` (the web password, write-only; `null` removes
//! it; see [`super::auth`] for why it is not the SIP password), `username`
//! (optional sign-in name, unique in the tenant), `display_name`, `email`,
//! `role` (`Admin`, `QueueManager`, `StandardUser`; default
//! `StandardUser`), `ring_timeout` (seconds, 5–600, default 30),
//! `forwarding` (rules, see [`crate::provision::forwarding`], applied by
//! the engine), `max_concurrent_calls` (1–1000, `null` for no limit, the
//! default: at the limit a call to the user is busy, and its busy
//! forwarding rule applies), `pickup_group` (call pickup group, up to 32
//! letters, digits, `.`, `_`, `-`; `""`, the default: none), `recording`,
//! `enabled`.
//! Responses add `id`, `tenant_id`, `has_password`, `created_at`,
//! `updated_at`, never a password.
//!
//! Every change reaches the running call engine before the answer: a
//! deleted or disabled user can no longer register or be called, a
//! disabled user's tokens are revoked, and a changed web password revokes
//! the user's sign-ins.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::ClientAddr;
use super::resource::{Body, ListQuery, Scope, path_id, rfc3339};
use super::{ApiError, ApiState, Role};
use crate::admin;
use crate::provision::{self, UserFields};

pub const FIELDS: [&str; 13] = [
    "extension",
    "sip_password",
    "password",
    "username",
    "display_name",
    "email",
    "role",
    "ring_timeout",
    "forwarding",
    "max_concurrent_calls",
    "pickup_group",
    "recording",
    "enabled",
];

/// Who may manage users.
const MANAGERS: &[Role] = &[Role::Admin];

/// A user as REST shows it: everything but the passwords.
#[derive(Serialize)]
pub struct UserJson {
    id: cdr::Id,
    tenant_id: cdr::TenantId,
    extension: String,
    username: Option<String>,
    display_name: String,
    email: String,
    role: String,
    /// Seconds.
    ring_timeout: u32,
    forwarding: Value,
    /// `None`: no limit.
    max_concurrent_calls: Option<u32>,
    /// Call pickup group (`""`: none).
    pickup_group: String,
    recording: bool,
    enabled: bool,
    /// Whether a web password is set (the user can sign in).
    has_password: bool,
    /// Whether a SIP password is set for the tenant's current domain: the
    /// store keeps only its digest HA1s, which name the domain (the
    /// realm), so changing the tenant's `sip_domain` makes this `false`
    /// for every user until their `sip_password` is set again.
    sip_password_set: bool,
    created_at: String,
    updated_at: String,
}

pub fn user_json(u: store::User) -> UserJson {
    UserJson {
        id: u.id,
        tenant_id: u.tenant_id,
        extension: u.extension,
        username: u.username,
        display_name: u.display_name,
        email: u.email,
        role: u.role,
        ring_timeout: u.ring_timeout_secs,
        forwarding: serde_json::from_str(&u.forwarding).unwrap_or_else(|_| json!([])),
        max_concurrent_calls: u.max_concurrent_calls,
        pickup_group: u.pickup_group,
        recording: u.recording,
        enabled: u.enabled,
        has_password: u.password_hash.is_some(),
        sip_password_set: !u.sip.md5.is_empty(),
        created_at: rfc3339(u.created_at),
        updated_at: rfc3339(u.updated_at),
    }
}

/// Applies `body` to `fields`: every field when `full` (PUT: absent
/// optional fields take their defaults, except the web password, which is
/// kept), the fields given otherwise. The web password is hashed here (on
/// the blocking pool); returns whether it changed.
async fn apply(fields: &mut UserFields, body: &Body, full: bool) -> Result<bool, ApiError> {
    let defaults = UserFields::new(String::new(), String::new());
    let given = |f: &str| full || body.has(f);
    if given("extension") {
        fields.extension = provision::extension(body.required("extension")?)?;
    }
    if given("sip_password") {
        fields.sip_password = Some(provision::sip_password(body.required("sip_password")?)?);
    }
    if given("display_name") {
        fields.display_name = provision::display_name(body.string("display_name")?.unwrap_or(""))?;
    }
    if given("email") {
        fields.email = provision::email(body.string("email")?.unwrap_or(""))?;
    }
    if given("username") {
        fields.username = body
            .string("username")?
            .map(provision::username)
            .transpose()?;
    }
    if given("role") {
        fields.role = match body.string("role")? {
            Some(r) => provision::role(r)?,
            None => defaults.role,
        };
    }
    if given("ring_timeout") {
        fields.ring_timeout_secs = match body.number("ring_timeout")? {
            Some(secs) => provision::ring_timeout(secs)?,
            None => defaults.ring_timeout_secs,
        };
    }
    if given("forwarding") {
        fields.forwarding = match body.value("forwarding") {
            None | Some(Value::Null) => defaults.forwarding,
            Some(rules) => provision::forwarding(rules)?,
        };
    }
    if given("max_concurrent_calls") {
        fields.max_concurrent_calls = body
            .number("max_concurrent_calls")?
            .map(provision::max_calls)
            .transpose()?;
    }
    if given("pickup_group") {
        fields.pickup_group = match body.string("pickup_group")? {
            None => defaults.pickup_group,
            Some(g) => provision::pickup_group(g)?,
        };
    }
    if given("recording") {
        fields.recording = body.boolean("recording")?.unwrap_or(defaults.recording);
    }
    if given("enabled") {
        fields.enabled = body.boolean("enabled")?.unwrap_or(defaults.enabled);
    }
    // The web password: only when named (PUT keeps it too).
    if body.has("password") {
        fields.password_hash = match body.string("password")? {
            None => None,
            Some(p) => {
                let p = provision::web_password(p)?;
                let hash = tokio::task::spawn_blocking(move || admin::hash_password(&p))
                    .await
                    .map_err(ApiError::internal)?
                    .map_err(ApiError::internal)?;
                Some(hash)
            }
        };
        return Ok(true);
    }
    Ok(false)
}

/// 409 naming `username` when another user of the tenant has it (the
/// database's unique index would answer too, naming `extension`).
async fn username_free(
    state: &ApiState,
    scope: &Scope,
    fields: &UserFields,
    own: Option<cdr::Id>,
) -> Result<(), ApiError> {
    if let Some(name) = &fields.username
        && let Some(other) = state.store.user_by_login(scope.tenant_id, name).await?
        && Some(other.id) != own
    {
        return Err(ApiError::already_exists(
            "username",
            format!("username {name} exists in this tenant"),
        ));
    }
    Ok(())
}

async fn find(
    state: &ApiState,
    scope: &Scope,
    params: &HashMap<String, String>,
) -> Result<store::User, ApiError> {
    let id: cdr::Id = path_id(params, "user_id", "user")?;
    state
        .store
        .user(scope.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

pub async fn list(
    State(state): State<ApiState>,
    scope: Scope,
    ListQuery(page): ListQuery,
) -> Result<Json<Value>, ApiError> {
    scope.require(MANAGERS)?;
    let count = state.store.count_users(scope.tenant_id).await?;
    let items: Vec<UserJson> = state
        .store
        .user_page(scope.tenant_id, page.top, page.skip)
        .await?
        .into_iter()
        .map(user_json)
        .collect();
    Ok(Json(json!({ "count": count, "items": items })))
}

pub async fn create(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<(StatusCode, Json<UserJson>), ApiError> {
    scope.require(MANAGERS)?;
    let body = Body::parse(&body, &FIELDS)?;
    let mut fields = UserFields::new(String::new(), String::new());
    apply(&mut fields, &body, true).await?;
    username_free(&state, &scope, &fields, None).await?;
    let user = state
        .provisioner
        .create_user(scope.tenant_id, fields)
        .await?;
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "user.create",
            &format!("user:{}", user.id),
            source,
            json!({ "extension": user.extension, "role": user.role }),
        )
        .await;
    Ok((StatusCode::CREATED, Json(user_json(user))))
}

pub async fn get(
    State(state): State<ApiState>,
    scope: Scope,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<UserJson>, ApiError> {
    scope.require(MANAGERS)?;
    Ok(Json(user_json(find(&state, &scope, &params).await?)))
}

async fn update(
    state: ApiState,
    scope: Scope,
    source: ClientAddr,
    params: HashMap<String, String>,
    body: Bytes,
    full: bool,
) -> Result<Json<UserJson>, ApiError> {
    scope.require(MANAGERS)?;
    let old = find(&state, &scope, &params).await?;
    let body = Body::parse(&body, &FIELDS)?;
    let mut fields = UserFields::of(&old);
    let password_changed = apply(&mut fields, &body, full).await?;
    username_free(&state, &scope, &fields, Some(old.id)).await?;
    let user = state.provisioner.update_user(&old, fields).await?;
    if password_changed {
        state
            .store
            .revoke_user_tokens(user.id, crate::clock::unix_millis())
            .await?;
    }
    let changed: Vec<&str> = FIELDS.iter().copied().filter(|f| body.has(f)).collect();
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "user.update",
            &format!("user:{}", user.id),
            source.0,
            json!({ "extension": user.extension, "fields": changed }),
        )
        .await;
    Ok(Json(user_json(user)))
}

pub async fn put(
    State(state): State<ApiState>,
    scope: Scope,
    source: ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<UserJson>, ApiError> {
    update(state, scope, source, params, body, true).await
}

pub async fn patch(
    State(state): State<ApiState>,
    scope: Scope,
    source: ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<UserJson>, ApiError> {
    update(state, scope, source, params, body, false).await
}

pub async fn delete(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    scope.require(MANAGERS)?;
    let user = find(&state, &scope, &params).await?;
    state.provisioner.delete_user(&user).await?;
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "user.delete",
            &format!("user:{}", user.id),
            source,
            json!({ "extension": user.extension }),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
