//! `/api/user`: the signed-in user's own profile (SPEC §7: every tenant
//! role sees and edits its own profile). Principals without a user (the
//! system admin, API keys) have none: 404.
//!
//! ```text
//! GET   /api/user    the user (same shape as in `/api/users`)
//! PATCH /api/user    {"display_name"?, "email"?, "forwarding"?,
//!                     "password"? + "current_password"}
//! ```
//!
//! Role, extension, SIP password and the rest stay the tenant admin's. A
//! new web password needs the current one (checked like a sign-in:
//! throttled, audited) and ends every sign-in of the user, this one
//! included.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Value, json};

use super::auth::ClientAddr;
use super::resource::Body;
use super::users::{UserJson, user_json};
use super::{ApiError, ApiState, Principal};
use crate::provision::{self, UserFields};
use crate::{admin, clock};

const FIELDS: [&str; 5] = [
    "display_name",
    "email",
    "forwarding",
    "password",
    "current_password",
];

async fn me(state: &ApiState, principal: Principal) -> Result<store::User, ApiError> {
    match principal {
        Principal::Tenant {
            tenant_id,
            user: Some(id),
            ..
        } => state
            .store
            .user(tenant_id, id)
            .await?
            .ok_or_else(|| ApiError::not_found("user")),
        _ => Err(ApiError::not_found("user")),
    }
}

pub async fn get(
    State(state): State<ApiState>,
    principal: Principal,
) -> Result<Json<UserJson>, ApiError> {
    Ok(Json(user_json(me(&state, principal).await?)))
}

pub async fn patch(
    State(state): State<ApiState>,
    principal: Principal,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<Json<UserJson>, ApiError> {
    let old = me(&state, principal).await?;
    let body = Body::parse(&body, &FIELDS)?;
    let mut fields = UserFields::of(&old);
    if body.has("display_name") {
        fields.display_name = provision::display_name(body.string("display_name")?.unwrap_or(""))?;
    }
    if body.has("email") {
        fields.email = provision::email(body.string("email")?.unwrap_or(""))?;
    }
    if body.has("forwarding") {
        fields.forwarding = match body.value("forwarding") {
            None | Some(Value::Null) => "[]".to_owned(),
            Some(rules) => provision::forwarding(rules)?,
        };
    }
    let new_password = match body.string("password")? {
        Some(p) => Some(provision::web_password(p)?),
        None if body.has("password") => {
            return Err(ApiError::validate("password", "must be a string"));
        }
        None => None,
    };
    if let Some(password) = &new_password {
        let current = body
            .string("current_password")?
            .ok_or_else(|| ApiError::validate("current_password", "is required"))?;
        let tenant = state
            .store
            .tenant(old.tenant_id)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
        // The current password, checked like a sign-in (throttled, audited).
        state
            .authenticate_password_from(source, &old.extension, current, Some(&tenant.sip_domain))
            .await
            .map_err(|e| match e.is_login_failure() {
                true => ApiError::validate("current_password", "is wrong"),
                false => e,
            })?;
        let password = password.clone();
        fields.password_hash = Some(
            tokio::task::spawn_blocking(move || admin::hash_password(&password))
                .await
                .map_err(ApiError::internal)?
                .map_err(ApiError::internal)?,
        );
    } else if body.has("current_password") {
        return Err(ApiError::validate(
            "current_password",
            "is only for changing the password",
        ));
    }
    let user = state.provisioner.update_user(&old, fields).await?;
    if new_password.is_some() {
        state
            .store
            .revoke_user_tokens(user.id, clock::unix_millis())
            .await?;
    }
    let changed: Vec<&str> = FIELDS
        .iter()
        .copied()
        .filter(|f| *f != "current_password" && body.has(f))
        .collect();
    state
        .audit(
            Some(user.tenant_id),
            &principal.actor(),
            "user.update",
            &format!("user:{}", user.id),
            source,
            json!({ "extension": user.extension, "fields": changed }),
        )
        .await;
    Ok(Json(user_json(user)))
}
