//! The console's pages, one module per page or resource. Adding a
//! resource (queues, IVRs… as their REST resources land) is
//! adding a module here with its `routes()` and a [`Nav`] entry in
//! [`NAV`]; it reads and writes through its REST handlers, so its roles
//! and validation are theirs.

pub mod api_keys;
pub mod audit;
pub mod cdrs;
mod crud;
pub mod dashboard;
pub mod form;
pub mod recordings;
pub mod ring_groups;
pub mod tenants;
pub mod trunks;
pub mod users;
pub mod webhook;

use axum::Router;

use crate::api::{ApiState, Role};

/// Who sees a page in the navigation (the handlers check again, with the
/// REST rules).
#[derive(Clone, Copy, Debug)]
pub enum Who {
    SystemAdmin,
    /// These tenant roles, and the system admin.
    Roles(&'static [Role]),
}

/// One entry of the main navigation.
pub struct Nav {
    pub path: &'static str,
    pub label: &'static str,
    pub who: Who,
}

const ADMIN: &[Role] = &[Role::Admin];
const CDR_READERS: &[Role] = &crate::api::cdrs::READERS;
/// Every tenant role: a standard user's pages show its own calls and
/// recordings (REST `/api/user/cdrs`, `/api/recordings`).
const ALL_ROLES: &[Role] = &Role::ALL;

/// The main navigation, in the order shown.
pub const NAV: &[Nav] = &[
    Nav {
        path: "/console",
        label: "Dashboard",
        who: Who::Roles(CDR_READERS),
    },
    Nav {
        path: "/console/cdrs",
        label: "Calls",
        who: Who::Roles(ALL_ROLES),
    },
    Nav {
        path: "/console/recordings",
        label: "Recordings",
        who: Who::Roles(ALL_ROLES),
    },
    Nav {
        path: "/console/webhook",
        label: "Event URL",
        who: Who::Roles(ADMIN),
    },
    Nav {
        path: "/console/users",
        label: "Users",
        who: Who::Roles(ADMIN),
    },
    Nav {
        path: "/console/ring-groups",
        label: "Ring groups",
        who: Who::Roles(ADMIN),
    },
    Nav {
        path: "/console/trunks",
        label: "Trunks",
        who: Who::Roles(ADMIN),
    },
    Nav {
        path: "/console/api-keys",
        label: "API keys",
        who: Who::Roles(ADMIN),
    },
    Nav {
        path: "/console/audit",
        label: "Audit log",
        who: Who::Roles(ADMIN),
    },
    Nav {
        path: "/console/tenants",
        label: "Tenants",
        who: Who::SystemAdmin,
    },
];

pub fn routes() -> Router<ApiState> {
    Router::new()
        .merge(dashboard::routes())
        .merge(cdrs::routes())
        .merge(recordings::routes())
        .merge(webhook::routes())
        .merge(users::routes())
        .merge(api_keys::routes())
        .merge(audit::routes())
        .merge(tenants::routes())
        .merge(trunks::routes())
        .merge(ring_groups::routes())
}

/// A REST handler's JSON answer as a value to render.
pub(crate) fn json<T: serde::Serialize>(answer: axum::Json<T>) -> serde_json::Value {
    serde_json::to_value(answer.0).unwrap_or_default()
}

/// The `X-Tenant-Id` a REST handler that reads headers expects from the
/// system admin (tenant principals act in their own tenant whatever it
/// says).
pub(crate) fn tenant_headers(tenant: cdr::TenantId) -> axum::http::HeaderMap {
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(value) = axum::http::HeaderValue::from_str(&tenant.to_string()) {
        headers.insert(crate::api::resource::TENANT_HEADER, value);
    }
    headers
}

/// A field of a REST JSON item as text (`""` for null, absent).
pub(crate) fn text(item: &serde_json::Value, field: &str) -> String {
    match item.get(field) {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A table of REST list items: `columns` are (field, heading); `actions`
/// renders the last cell of each row.
pub(crate) fn items_table(
    caption: &str,
    items: &[serde_json::Value],
    columns: &[(&str, &str)],
    actions: impl Fn(&serde_json::Value) -> maud::Markup,
) -> maud::Markup {
    maud::html! {
        div.scroll {
            table {
                caption { (caption) }
                thead { tr {
                    @for (_, heading) in columns { th scope="col" { (heading) } }
                    th scope="col" { span.help { "Actions" } }
                } }
                tbody {
                    @for item in items {
                        tr {
                            @for (field, _) in columns { td { (text(item, field)) } }
                            td { (actions(item)) }
                        }
                    }
                    @if items.is_empty() { tr { td colspan=(columns.len() + 1) { "None yet." } } }
                }
            }
        }
    }
}

/// The `top`/`skip` of a console list page (`?skip=`), as the REST list
/// extractor gives it.
pub(crate) fn paging(
    params: &std::collections::HashMap<String, String>,
) -> crate::api::resource::ListQuery {
    let skip = params.get("skip").and_then(|s| s.parse().ok()).unwrap_or(0);
    crate::api::resource::ListQuery(crate::api::resource::Paging {
        top: crate::api::resource::MAX_TOP,
        skip,
    })
}

/// The REST `Scope` of a tenant-admin page (the system admin: the chosen
/// tenant).
pub(crate) async fn admin_scope(
    state: &ApiState,
    shell: &crate::console::layout::Shell,
) -> Result<crate::api::resource::Scope, crate::console::layout::PageError> {
    let tenant_id = shell.tenant_for(state, ADMIN).await?;
    Ok(crate::api::resource::Scope {
        tenant_id,
        principal: shell.console.principal,
    })
}

/// A REST error a person can fix on the form they sent (400, 409) is
/// shown there, with its status; any other is an error page.
pub(crate) fn fixable(
    e: crate::api::ApiError,
) -> Result<(axum::http::StatusCode, String), crate::console::layout::PageError> {
    use axum::http::StatusCode;
    match e.status() {
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT => Ok((e.status(), e.message().to_owned())),
        _ => Err(e.into()),
    }
}

/// `response` with `status` (a form shown again after a fixable error).
pub(crate) fn with_status(
    mut response: axum::response::Response,
    status: axum::http::StatusCode,
) -> axum::response::Response {
    *response.status_mut() = status;
    response
}

/// A one-button form posting to `action` (delete, revoke), labelled for
/// screen readers with what it acts on.
pub(crate) fn action_button(action: &str, csrf: &str, button: &str, label: &str) -> maud::Markup {
    maud::html! {
        form.inline method="post" action=(action) {
            (crate::console::layout::csrf_field(csrf))
            button.danger type="submit" aria-label=(label) { (button) }
        }
    }
}
