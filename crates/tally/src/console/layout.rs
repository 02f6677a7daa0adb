//! The page shell every console page shares: the document, the
//! navigation (built from [`super::pages::NAV`]), the system admin's
//! tenant switcher, times in the tenant's zone, error pages and the
//! security headers.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cdr::{TenantId, UnixMillis};
use maud::{DOCTYPE, Markup, html};
use store::ExportZone;

use super::pages::{NAV, Nav, Who};
use super::{Console, assets};
use crate::api::{ApiError, ApiState, Principal, Role};

/// A page's shared data: who looks, at which tenant, in which zone.
pub struct Shell {
    pub console: Console,
    /// The tenant the page shows (checked), with its name.
    pub tenant: Option<(TenantId, String)>,
    /// Every tenant, for the system admin's switcher.
    pub tenants: Vec<(TenantId, String)>,
    zone: ExportZone,
    pub zone_name: String,
}

impl Shell {
    /// Loads what the shell shows. A system admin who has not chosen a
    /// tenant (or whose choice no longer exists) looks at the first one.
    pub async fn load(state: &ApiState, console: Console) -> Result<Shell, PageError> {
        let tenants = match console.principal {
            Principal::SystemAdmin => state
                .store
                .tenants()
                .await?
                .into_iter()
                .map(|t| (t.id, t.name))
                .collect(),
            Principal::Tenant { .. } => Vec::new(),
        };
        let mut tenant = match console.tenant {
            Some(id) => state.store.tenant(id).await.ok().flatten(),
            None => None,
        };
        if tenant.is_none()
            && let Some((first, _)) = tenants.first()
        {
            tenant = state.store.tenant(*first).await?;
        }
        let (zone, zone_name) = match &tenant {
            Some(t) => (
                ExportZone::named(&t.time_zone).unwrap_or_else(|_| ExportZone::utc()),
                t.time_zone.clone(),
            ),
            None => (ExportZone::utc(), "UTC".to_owned()),
        };
        Ok(Shell {
            console,
            tenant: tenant.map(|t| (t.id, t.name)),
            tenants,
            zone,
            zone_name,
        })
    }

    /// The tenant the page acts in, checked with the REST rule for
    /// `roles` (a tenant principal's own; the system admin's choice).
    pub async fn tenant_for(
        &self,
        state: &ApiState,
        roles: &[Role],
    ) -> Result<TenantId, PageError> {
        if matches!(self.console.principal, Principal::SystemAdmin) && self.tenant.is_none() {
            return Err(PageError::ChooseTenant);
        }
        let named = self.tenant.as_ref().map(|(id, _)| *id);
        Ok(
            crate::api::resource::tenant_scope_named(state, self.console.principal, named, roles)
                .await?,
        )
    }

    /// `2026-11-28 15:03:07` in the tenant's zone; `""` for `None`.
    pub fn time(&self, at: Option<UnixMillis>) -> String {
        let mut text = String::new();
        self.zone.format(at, &mut text);
        // `2026-11-28T15:03:07.123+01:00`: the zone is named on the page.
        text.truncate(19);
        text.replace('T', " ")
    }

    /// The shell around a page's `body`; `path` marks the current page
    /// in the navigation.
    pub fn page(&self, title: &str, path: &str, body: Markup) -> Markup {
        let principal = self.console.principal;
        let nav: Vec<&Nav> = NAV.iter().filter(|n| n.who.allows(principal)).collect();
        let who = match principal {
            Principal::SystemAdmin => "system admin".to_owned(),
            Principal::Tenant { role, .. } => role.as_str().to_owned(),
        };
        document(
            title,
            html! {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Tally" }
                    nav aria-label="Main" {
                        ul {
                            @for item in &nav {
                                li {
                                    a href=(item.path) aria-current=[(item.path == path).then_some("page")] { (item.label) }
                                }
                            }
                        }
                    }
                    div.account {
                        @if matches!(principal, Principal::SystemAdmin) {
                            form.switcher method="post" action="/console/tenant" {
                                (csrf_field(&self.console.csrf))
                                input type="hidden" name="back" value=(path);
                                label for="tenant-switch" { "Tenant" }
                                select #tenant-switch name="tenant" data-autosubmit {
                                    @if self.tenant.is_none() { option value="" selected { "Choose…" } }
                                    @for (id, name) in &self.tenants {
                                        option value=(id) selected[self.tenant.as_ref().is_some_and(|(t, _)| t == id)] { (name) }
                                    }
                                }
                                button type="submit" { "Switch" }
                            }
                        } @else if let Some((_, name)) = &self.tenant {
                            span { (name) }
                        }
                        span.role { (who) }
                        form method="post" action="/console/sign-out" {
                            (csrf_field(&self.console.csrf))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    (body)
                }
            },
        )
    }
}

/// The hidden CSRF field every form carries ([`super::session`]).
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// A whole HTML document.
fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tally" }
                link rel="stylesheet" href=(assets::url("console.css"));
                script src=(assets::url("console.js")) defer {}
            }
            body { (body) }
        }
    }
}

/// A page without navigation (sign-in, errors before sign-in).
pub fn bare(title: &str, body: Markup) -> Markup {
    document(title, body)
}

/// The headers every console answer carries: no inline script or style
/// can run (CSP), no framing, no sniffing, pages never cached (assets set
/// their own long cache).
pub fn security_headers(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name, value| {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
         base-uri 'none'",
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::CACHE_CONTROL, "no-store");
}

/// Why a page cannot be shown, as an HTML page with a fitting status.
#[derive(Debug)]
pub enum PageError {
    /// An error of the REST layer (404 for another tenant's id, 403 for a
    /// role, 400 naming a field…), shown with its status and message.
    Api(ApiError),
    /// The system admin has not chosen a tenant yet.
    ChooseTenant,
    Plain(StatusCode, String),
}

impl PageError {
    pub fn new(status: StatusCode, message: &str) -> Self {
        PageError::Plain(status, message.to_owned())
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        PageError::Api(ApiError::internal(error))
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError::Api(e)
    }
}

impl From<store::StoreError> for PageError {
    fn from(e: store::StoreError) -> Self {
        PageError::Api(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match &self {
            PageError::Api(e) => (
                e.status(),
                match e.status() {
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::FORBIDDEN => "Not allowed",
                    StatusCode::BAD_REQUEST => "Cannot do that",
                    _ => "Something went wrong",
                },
                e.message().to_owned(),
            ),
            PageError::ChooseTenant => (
                StatusCode::OK,
                "Choose a tenant",
                "Choose the tenant to look at with the tenant switcher at the top of the page."
                    .to_owned(),
            ),
            PageError::Plain(status, message) => (*status, "Cannot do that", message.clone()),
        };
        let body = html! {
            main.narrow #main {
                h1 { (heading) }
                p role="alert" { (message) }
                p { a href="/console" { "Back to the console" } }
            }
        };
        (status, document(heading, body)).into_response()
    }
}

/// A small "label: value" table of facts.
pub fn facts(rows: &[(&str, String)]) -> Markup {
    html! {
        dl.facts {
            @for (label, value) in rows {
                dt { (label) }
                dd { (value) }
            }
        }
    }
}

/// A notice after a form was sent (`role=status` so screen readers hear it).
pub fn notice(text: &str) -> Markup {
    html! { p.notice role="status" { (text) } }
}

/// An error after a form was sent.
pub fn form_error(text: &str) -> Markup {
    html! { p.error role="alert" { (text) } }
}

impl Who {
    pub fn allows(self, principal: Principal) -> bool {
        match (self, principal) {
            (_, Principal::SystemAdmin) => true,
            (Who::SystemAdmin, Principal::Tenant { .. }) => false,
            (Who::Roles(roles), Principal::Tenant { role, .. }) => roles.contains(&role),
        }
    }
}
