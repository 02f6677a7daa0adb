//! The REST API (SPEC §7), the part `tally serve` needs today: login,
//! provisioning of tenants and users, and the CDR reads. It moves to the
//! `api` crate of DESIGN.md's layout when the REST work grows it.
//!
//! | route | who |
//! |---|---|
//! | `POST /api/login/oauth/token` | anyone (form: `grant_type`, `username`, `password`) |
//! | `POST /api/tenants`, `GET /api/tenants/{id}` | system admin |
//! | `POST /api/tenants/{id}/users` | system admin |
//! | `GET /api/cdrs`, `GET /api/cdrs/{id}` | tenant-scoped: the system admin names the tenant with `X-Tenant-Id` |
//! | `GET/PUT /api/tenant/cdr_event`, `/api/tenant/webhook/…` | tenant admin, or the system admin with `X-Tenant-Id` ([`webhooks`]) |
//!
//! Every error has SPEC's shape ([`ApiError`]), including unknown routes
//! and methods.

mod auth;
mod cdrs;
mod error;
mod tenants;
pub mod webhooks;

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
    /// The webhook dispatcher, set once at start-up (api/webhooks.rs).
    webhooks: std::sync::OnceLock<Arc<crate::delivery::Webhooks>>,
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
            webhooks: std::sync::OnceLock::new(),
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
        .route("/api/cdrs/{id}", get(cdrs::detail))
        .route(
            "/api/tenant/cdr_event",
            get(webhooks::get_cdr_event).put(webhooks::put_cdr_event_route),
        )
        .route("/api/tenant/webhook/deliveries", get(webhooks::deliveries))
        .route(
            "/api/tenant/webhook/deliveries/{id}/retry",
            post(webhooks::retry),
        )
        .route("/api/tenant/webhook/replay", post(webhooks::replay))
        .route("/api/tenant/webhook/test", post(webhooks::send_test))
        .fallback(|| async { ApiError::not_found("resource") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
}
