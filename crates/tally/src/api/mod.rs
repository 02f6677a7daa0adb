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
//!
//! Routes are added through [`openapi::Api`], which documents each one in
//! the OpenAPI 3.1 document served at `GET /api/openapi.json`.
//!
//! Every error has SPEC's shape ([`ApiError`]), including unknown routes
//! and methods.

mod auth;
mod cdrs;
mod error;
pub mod openapi;
mod tenants;

use std::sync::Arc;

use axum::Router;
use store::Store;

use crate::admin::SystemAdmin;
use crate::provision::Provisioner;
pub use auth::{Principal, Role};
pub use error::ApiError;
pub use openapi::{Api, Doc};

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

/// The API's routes and their OpenAPI documentation, built together
/// ([`openapi::Api`]): a route cannot be added without its [`Doc`].
pub fn api() -> Api {
    use openapi::schema::*;
    let cdr_list_query = |doc: Doc| {
        doc.query("top", int_range(1, 100), "Page size (1–100, default 100).")
            .query("skip", non_negative(), "Rows to skip.")
            .query(
                "after",
                id(),
                "Keyset cursor: the last CDR id of the previous page.",
            )
    };
    let tenant = object(
        &[
            ("id", id()),
            ("name", string()),
            ("sip_domain", string()),
            ("created_at", date_time()),
        ],
        &["id", "name", "sip_domain", "created_at"],
    );
    let user = object(
        &[
            ("id", id()),
            ("tenant_id", id()),
            ("extension", string()),
            ("display_name", string()),
            ("ring_timeout", non_negative()),
            ("enabled", boolean()),
            ("created_at", date_time()),
        ],
        &[
            "id",
            "tenant_id",
            "extension",
            "display_name",
            "ring_timeout",
            "enabled",
        ],
    );
    Api::new()
        .post(
            "/api/login/oauth/token",
            auth::login,
            Doc::new("Identity", "Sign in (password grant) or refresh a token")
                .public()
                .describe("PortSIP-compatible. A failed sign-in answers 400 `UNAUTHORIZED`.")
                .form_body(object(
                    &[
                        ("grant_type", one_of_strings(&["password", "refresh_token"])),
                        ("username", string()),
                        ("password", string()),
                        ("domain", text("The tenant's SIP domain (tenant users).")),
                        ("refresh_token", string()),
                    ],
                    &["grant_type"],
                ))
                .json(200, reference("Token")),
        )
        .post(
            "/api/tenants",
            tenants::create_tenant,
            Doc::new("Tenants", "Create a tenant (system admin)")
                .json_body(closed_object(
                    &[("name", string()), ("sip_domain", string())],
                    &["name", "sip_domain"],
                ))
                .json(201, tenant.clone()),
        )
        .get(
            "/api/tenants/{id}",
            tenants::get_tenant,
            Doc::new("Tenants", "Read a tenant (system admin)").json(200, tenant),
        )
        .post(
            "/api/tenants/{id}/users",
            tenants::create_user,
            Doc::new(
                "Users",
                "Create a user (extension) in a tenant (system admin)",
            )
            .json_body(closed_object(
                &[
                    ("extension", string()),
                    ("sip_password", string()),
                    ("display_name", string()),
                    ("ring_timeout", non_negative()),
                    ("enabled", boolean()),
                ],
                &["extension", "sip_password"],
            ))
            .json(201, user),
        )
        .get(
            "/api/cdrs",
            cdrs::list,
            cdr_list_query(Doc::new("CDRs", "List the tenant's CDRs, newest first"))
                .tenant_scoped()
                .json(200, page(reference("Cdr"))),
        )
        .get(
            "/api/cdrs/{id}",
            cdrs::detail,
            Doc::new("CDRs", "Read one CDR with its call targets")
                .tenant_scoped()
                .json(200, items(reference("CdrDetail"))),
        )
}

pub fn router(state: ApiState) -> Router {
    api()
        .into_router()
        .fallback(|| async { ApiError::not_found("resource") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
}
