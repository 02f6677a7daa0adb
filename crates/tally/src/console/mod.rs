//! The web console (SPEC §8, DESIGN.md "The console"): server-rendered
//! pages under `/console` on the API port, `/` redirecting there.
//!
//! It is a second renderer over the REST API, not a second
//! implementation: a page authenticates with the REST sign-in
//! ([`crate::api`]'s `login` handler: the same throttling, lock-out and
//! audit), turns its session cookie into the same [`Principal`] a bearer
//! token gives, and then reads and writes through the REST handlers or the
//! functions they share (`cdrs::records`, `resource::tenant_scope_named`,
//! the webhook functions), so roles, tenant scope and validation are the
//! REST API's own. Where a REST handler returns JSON, the page renders
//! that JSON.
//!
//! | module | what |
//! |---|---|
//! | [`session`] | sign-in/out, session cookies, CSRF, the [`Console`] every page takes |
//! | [`assets`] | CSS and JS compiled into the binary, served under content-hashed URLs |
//! | [`layout`] | the page shell: navigation, tenant switcher, time formatting, error pages |
//! | [`pages`] | one module per page or resource; adding a resource is adding a file there |
//!
//! Templates are `maud` (compile-time checked, escaped by default, plain
//! Rust functions: a page's parts are functions it calls). The few
//! scripts (live CDR rows over server-sent events, the webhook form's
//! auth fields) are one small file of our own, [`assets`]; every page
//! works without it except the live rows.

pub mod assets;
pub mod layout;
pub mod pages;
pub mod session;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;

use crate::api::{ApiState, Principal};
pub use session::Console;

/// The console's routes, with the session middleware (which also checks
/// the CSRF token of every form post).
pub fn router(state: ApiState) -> Router<ApiState> {
    let pages = pages::routes()
        .merge(session::routes())
        .layer(axum::middleware::from_fn_with_state(
            state,
            session::middleware,
        ))
        .route("/console/assets/{file}", get(assets::serve));
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .merge(pages)
}

/// Whether the principal is the system admin.
pub fn is_system_admin(principal: Principal) -> bool {
    matches!(principal, Principal::SystemAdmin)
}
