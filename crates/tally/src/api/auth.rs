//! Logging in and bearer tokens (SPEC §7, PortSIP's
//! `POST /api/login/oauth/token`).
//!
//! Tokens are random opaque strings (256 bits) kept in this process's
//! memory: access tokens live 30 minutes (`expires_in: 1800`, as PortSIP),
//! refresh tokens 24 hours and are rotated on use. A restart signs every
//! client out, which is acceptable for the system admin; the REST identity
//! work replaces the maps with a store table (hashed tokens, shared by the
//! nodes) behind the same [`Tokens`] surface, and adds tenant users
//! (`domain` in the login form) as further [`Principal`]s.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Form;
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use cdr::TenantId;
use serde_json::json;

use super::{ApiError, ApiState};
use crate::random;

pub const ACCESS_TTL: Duration = Duration::from_secs(30 * 60);
pub const REFRESH_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Tokens held at most; beyond it the oldest grants are dropped first.
const MAX_GRANTS: usize = 100_000;

/// A role of SPEC §7. The system admin's is implied by
/// [`Principal::SystemAdmin`]; the other three belong to tenant users and
/// API keys.
// Constructed once tenant users sign in (issue 5's identity work).
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The tenant admin: everything in its tenant.
    Admin,
    /// Tenant CDRs and reports, read-only.
    QueueManager,
    /// Own profile, own CDRs, own recordings.
    StandardUser,
}

#[allow(dead_code)]
impl Role {
    /// SPEC §7's spelling (`Admin`, `QueueManager`, `StandardUser`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::QueueManager => "QueueManager",
            Role::StandardUser => "StandardUser",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Role::Admin, Role::QueueManager, Role::StandardUser]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// Who a request (or a WebSocket connection) acts for.
#[allow(dead_code)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    SystemAdmin,
    /// A tenant user signed in with its password (`user` is its id), or a
    /// tenant API key (`user` is `None`).
    Tenant {
        tenant_id: TenantId,
        user: Option<cdr::Id>,
        role: Role,
    },
}

#[allow(dead_code)]
impl Principal {
    /// The tenant this principal belongs to (`None` for the system admin).
    pub fn tenant(self) -> Option<TenantId> {
        match self {
            Principal::SystemAdmin => None,
            Principal::Tenant { tenant_id, .. } => Some(tenant_id),
        }
    }
}

#[derive(Clone, Copy)]
struct Grant {
    principal: Principal,
    expires: Instant,
}

#[derive(Default)]
struct Maps {
    access: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
}

/// The live tokens.
#[derive(Default)]
pub struct Tokens {
    maps: Mutex<Maps>,
}

/// A fresh pair, as the login endpoint returns it.
pub struct Issued {
    access: String,
    refresh: String,
}

impl Tokens {
    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn issue(&self, principal: Principal) -> Result<Issued, ApiError> {
        let access = random::token().map_err(ApiError::internal)?;
        let refresh = random::token().map_err(ApiError::internal)?;
        let now = Instant::now();
        let mut guard = self.maps();
        let maps = &mut *guard;
        for map in [&mut maps.access, &mut maps.refresh] {
            map.retain(|_, g| g.expires > now);
            if map.len() >= MAX_GRANTS {
                let mut by_age: Vec<(Instant, String)> =
                    map.iter().map(|(t, g)| (g.expires, t.clone())).collect();
                by_age.sort();
                for (_, t) in by_age.into_iter().take(MAX_GRANTS / 10) {
                    map.remove(&t);
                }
            }
        }
        maps.access.insert(
            access.clone(),
            Grant {
                principal,
                expires: now + ACCESS_TTL,
            },
        );
        maps.refresh.insert(
            refresh.clone(),
            Grant {
                principal,
                expires: now + REFRESH_TTL,
            },
        );
        Ok(Issued { access, refresh })
    }

    fn check(&self, access: &str) -> Option<Principal> {
        let maps = self.maps();
        maps.access
            .get(access)
            .filter(|g| g.expires > Instant::now())
            .map(|g| g.principal)
    }

    /// Spends a refresh token (each works once).
    fn redeem(&self, refresh: &str) -> Option<Principal> {
        self.maps()
            .refresh
            .remove(refresh)
            .filter(|g| g.expires > Instant::now())
            .map(|g| g.principal)
    }
}

impl IntoResponse for Issued {
    fn into_response(self) -> Response {
        Json(json!({
            "access_token": self.access,
            "refresh_token": self.refresh,
            "expires_in": ACCESS_TTL.as_secs(),
            "token_type": "Bearer",
        }))
        .into_response()
    }
}

/// `POST /api/login/oauth/token`, form-encoded: `grant_type=password`
/// with `username` and `password`, or `grant_type=refresh_token` with
/// `refresh_token`. PortSIP's `scope` and `client_id` are accepted and
/// ignored.
pub async fn login(
    State(state): State<ApiState>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Result<Issued, ApiError> {
    let Form(form) = form.map_err(|e| ApiError::validate("body", e.body_text()))?;
    let field = |name: &str| {
        form.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::validate(name, "is required"))
    };
    match field("grant_type")?.as_str() {
        "password" => {
            let username = field("username")?.clone();
            let password = field("password")?.clone();
            if form.get("domain").is_some_and(|d| !d.is_empty()) {
                // Tenant users sign in with their domain; they come with
                // the REST identity work (`authenticate_password`).
                return Err(ApiError::login_failed());
            }
            let principal = state
                .authenticate_password(&username, &password, None)
                .await?;
            state.tokens.issue(principal)
        }
        "refresh_token" => {
            let refresh = field("refresh_token")?;
            match state.tokens.redeem(refresh) {
                Some(principal) => state.tokens.issue(principal),
                None => Err(ApiError::login_failed()),
            }
        }
        other => Err(ApiError::validate(
            "grant_type",
            format!("unsupported grant type {other:?} (password or refresh_token)"),
        )),
    }
}

/// Every authenticated handler takes a `Principal`: the bearer token's.
impl FromRequestParts<ApiState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                let (scheme, token) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| ApiError::unauthorized("Authorization must be \"Bearer <token>\""))?;
        state
            .authenticate_token(token)
            .await
            .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))
    }
}

impl ApiState {
    /// Checks a password: the system admin's when `domain` is `None`, a
    /// tenant user's (by extension number or username, in the tenant whose
    /// SIP domain is `domain`) otherwise. Throttled and audited here, so
    /// REST login and the WebSocket `auth` command (SPEC §6) share one
    /// door. A wrong password, an unknown user and an unknown domain all
    /// answer the same [`ApiError::login_failed`].
    pub async fn authenticate_password(
        &self,
        username: &str,
        password: &str,
        domain: Option<&str>,
    ) -> Result<Principal, ApiError> {
        if domain.is_some() {
            return Err(ApiError::login_failed());
        }
        let admin = self.admin.clone();
        let _slot = self
            .login_slots
            .acquire()
            .await
            .map_err(ApiError::internal)?;
        let (username, password) = (username.to_owned(), password.to_owned());
        let ok = tokio::task::spawn_blocking(move || admin.verify(&username, &password))
            .await
            .map_err(ApiError::internal)?;
        if !ok {
            tracing::info!("REST login failed");
            return Err(ApiError::login_failed());
        }
        Ok(Principal::SystemAdmin)
    }

    /// The principal a bearer access token (or API key) stands for, if it
    /// is valid now.
    pub async fn authenticate_token(&self, token: &str) -> Option<Principal> {
        self.tokens.check(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_check_and_refresh_once() {
        let tokens = Tokens::default();
        let issued = tokens.issue(Principal::SystemAdmin).unwrap();
        assert_eq!(tokens.check(&issued.access), Some(Principal::SystemAdmin));
        assert_eq!(
            tokens.check(&issued.refresh),
            None,
            "a refresh token is not an access token"
        );
        assert_eq!(tokens.check("nonsense"), None);
        assert_eq!(tokens.redeem(&issued.refresh), Some(Principal::SystemAdmin));
        assert_eq!(
            tokens.redeem(&issued.refresh),
            None,
            "refresh tokens work once"
        );
    }
}
