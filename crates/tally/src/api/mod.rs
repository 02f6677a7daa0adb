//! The REST API (SPEC §7), the part `tally serve` needs today: login,
//! provisioning of tenants and users, and the CDR reads. It moves to the
//! `api` crate of DESIGN.md's layout when the REST work grows it.
//!
//! | route | who |
//! |---|---|
//! | `POST /api/login/oauth/token` | anyone (form: `grant_type`, `username`, `password`) |
//! | `POST /api/tenants`, `GET /api/tenants/{id}` | system admin |
//! | `POST /api/tenants/{id}/users` | system admin |
//! | `GET /api/cdrs`, `GET /api/cdrs/{id}`, `GET /api/cdrs/export` | tenant Admin and QueueManager; the system admin names the tenant with `X-Tenant-Id` |
//! | `GET /api/user/cdrs`, `GET /api/user/cdrs/{id}`, `POST /api/user/cdrs/sync_tokens`, `POST /api/user/cdrs/sync_tokens/{token}/diff` | any tenant user, own calls only |
//!
//! Every error has SPEC's shape ([`ApiError`]), including unknown routes
//! and methods.

mod auth;
mod cdrs;
mod error;
mod tenants;
mod user_cdrs;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use store::Store;

use crate::admin::SystemAdmin;
use crate::provision::Provisioner;
pub use auth::{Principal, Role};
pub use error::ApiError;

const LOGIN_SLOTS: usize = 2;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct ApiState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub provisioner: Arc<Provisioner>,
    pub admin: SystemAdmin,
    tokens: auth::Tokens,
    /// Password checks running at once: each argon2id verification holds
    /// 19 MiB and a core for tens of milliseconds, so a login flood must
    /// queue, not fan out over the blocking thread pool.
    login_slots: tokio::sync::Semaphore,
}

impl std::ops::Deref for ApiState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl ApiState {
    pub fn new(store: Store, provisioner: Arc<Provisioner>, admin: SystemAdmin) -> Self {
        ApiState(Arc::new(Inner {
            store,
            provisioner,
            admin,
            tokens: auth::Tokens::default(),
            login_slots: tokio::sync::Semaphore::new(LOGIN_SLOTS),
        }))
    }
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/login/oauth/token", post(auth::login))
        .route("/api/tenants", post(tenants::create_tenant))
        .route("/api/tenants/{id}", get(tenants::get_tenant))
        .route("/api/tenants/{id}/users", post(tenants::create_user))
        .route("/api/cdrs", get(cdrs::list))
        .route("/api/cdrs/export", get(cdrs::export))
        .route("/api/cdrs/{id}", get(cdrs::detail))
        .route("/api/user/cdrs", get(user_cdrs::list))
        .route("/api/user/cdrs/{id}", get(user_cdrs::detail))
        .route(
            "/api/user/cdrs/sync_tokens",
            post(user_cdrs::create_sync_token),
        )
        .route(
            "/api/user/cdrs/sync_tokens/{token}/diff",
            post(user_cdrs::diff),
        )
        .fallback(|| async { ApiError::not_found("resource") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
}
