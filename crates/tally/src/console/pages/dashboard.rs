//! The dashboard (`/console`): per tenant, the calls in progress, calls
//! per minute and the webhook backlog. The system admin sees every
//! tenant; a tenant's admin and queue manager their own.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use cdr::{TenantId, UnixMillis};
use maud::html;
use store::CdrScope;

use crate::api::cdrs::{READERS, parse_query, records};
use crate::api::{ApiState, Principal, Role};
use crate::clock;
use crate::console::Console;
use crate::console::layout::{PageError, Shell};

/// The window "calls per minute" averages over.
const WINDOW_MINUTES: u64 = 15;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/console", get(page))
}

struct Figures {
    active: usize,
    last_minute: u64,
    per_minute: f64,
    backlog: u64,
}

/// Calls that ended since `since`, counted by the CDR query REST uses.
async fn ended_since(
    state: &ApiState,
    tenant: TenantId,
    since: UnixMillis,
) -> Result<u64, PageError> {
    let params = HashMap::from([
        (
            "filter".to_owned(),
            format!("ended_at ge '{}'", since.to_rfc3339()),
        ),
        ("top".to_owned(), "1".to_owned()),
    ]);
    let query = parse_query(&params)?;
    Ok(records(state, tenant, &CdrScope::Tenant, &query)
        .await?
        .count
        .unwrap_or(0))
}

async fn figures(
    state: &ApiState,
    tenant: TenantId,
    open: &HashMap<TenantId, usize>,
) -> Result<Figures, PageError> {
    let now = clock::unix_millis().0;
    let minute = ended_since(state, tenant, UnixMillis(now.saturating_sub(60_000))).await?;
    let window = ended_since(
        state,
        tenant,
        UnixMillis(now.saturating_sub(WINDOW_MINUTES * 60_000)),
    )
    .await?;
    Ok(Figures {
        active: open.get(&tenant).copied().unwrap_or(0),
        last_minute: minute,
        per_minute: window as f64 / WINDOW_MINUTES as f64,
        backlog: state.store.pending_webhook_deliveries(tenant).await?,
    })
}

async fn page(State(state): State<ApiState>, console: Console) -> Result<Response, PageError> {
    // A standard user has no tenant-wide figures: it starts at its own
    // calls; everyone else starts here.
    if let Principal::Tenant {
        role: Role::StandardUser,
        ..
    } = console.principal
    {
        return Ok(axum::response::Redirect::to("/console/cdrs").into_response());
    }
    let shell = Shell::load(&state, console).await?;
    let mut open: HashMap<TenantId, usize> = HashMap::new();
    for session in state.store.open_sessions().await? {
        *open.entry(session.tenant_id).or_default() += 1;
    }
    let tenants: Vec<(TenantId, String)> = match shell.console.principal {
        Principal::SystemAdmin => shell.tenants.clone(),
        Principal::Tenant { .. } => {
            let id = shell.tenant_for(&state, &READERS).await?;
            vec![(
                id,
                shell
                    .tenant
                    .as_ref()
                    .map(|(_, n)| n.clone())
                    .unwrap_or_default(),
            )]
        }
    };
    let mut rows = Vec::new();
    for (id, name) in &tenants {
        rows.push((*id, name.clone(), figures(&state, *id, &open).await?));
    }
    if rows.is_empty() && matches!(shell.console.principal, Principal::SystemAdmin) {
        return Ok(Redirect::to("/console/tenants").into_response());
    }
    let body = html! {
        h1 { "Dashboard" }
        div.cards {
            div.card { div.big { (rows.iter().map(|r| r.2.active).sum::<usize>()) } "calls in progress" }
            div.card { div.big { (rows.iter().map(|r| r.2.last_minute).sum::<u64>()) } "calls ended in the last minute" }
            div.card { div.big { (format!("{:.1}", rows.iter().map(|r| r.2.per_minute).sum::<f64>())) } "calls per minute (last " (WINDOW_MINUTES) " min)" }
            div.card { div.big { (rows.iter().map(|r| r.2.backlog).sum::<u64>()) } "webhook deliveries waiting" }
        }
        h2 { "By tenant" }
        table {
            thead { tr {
                th scope="col" { "Tenant" } th.num scope="col" { "In progress" } th.num scope="col" { "Last minute" }
                th.num scope="col" { "Per minute" } th.num scope="col" { "Webhook backlog" }
            } }
            tbody {
                @for (id, name, f) in &rows {
                    tr {
                        th scope="row" { (name) " " span.help { "(" (id) ")" } }
                        td.num { (f.active) }
                        td.num { (f.last_minute) }
                        td.num { (format!("{:.1}", f.per_minute)) }
                        td.num { (f.backlog) }
                    }
                }
            }
        }
    };
    Ok(shell.page("Dashboard", "/console", body).into_response())
}
