//! The audit log page: `GET /api/audit_logs` rendered (the system admin
//! sees the chosen tenant's entries).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::html;

use super::{items_table, json, paging, tenant_headers};
use crate::api::{ApiState, Role};
use crate::console::Console;
use crate::console::layout::{PageError, Shell};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/console/audit", get(page))
}

async fn page(
    State(state): State<ApiState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let tenant = shell.tenant_for(&state, &[Role::Admin]).await?;
    let principal = shell.console.principal;
    let list = json(
        crate::api::audit::list(
            State(state),
            principal,
            tenant_headers(tenant),
            paging(&params),
        )
        .await?,
    );
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let body = html! {
        h1 { "Audit log" }
        (items_table(
            &format!("Newest first; {} entries in all (UTC times).", super::text(&list, "count")),
            &items,
            &[("at", "When"), ("actor", "Who"), ("action", "Action"), ("target", "Target"), ("source", "From"), ("detail", "Detail")],
            |_| html! {},
        ))
    };
    Ok(shell
        .page("Audit log", "/console/audit", body)
        .into_response())
}
