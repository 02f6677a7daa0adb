//! Tenants (system admin): the REST `tenants` handlers, rendered. Each
//! row can switch the tenant's `recording` flag (every call recorded) on
//! and off (a `PATCH` of that one field).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use serde_json::{Map, Value, json};

use super::{action_button, fixable, items_table, paging, text, with_status};
use crate::api::ApiState;
use crate::api::auth::ClientAddr;
use crate::console::Console;
use crate::console::layout::{PageError, Shell, csrf_field, form_error};

const PATH: &str = "/console/tenants";

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(PATH, get(page).post(create))
        .route("/console/tenants/{tenant_id}/delete", post(delete))
        .route("/console/tenants/{tenant_id}/recording", post(recording))
}

async fn render(
    state: ApiState,
    shell: Shell,
    params: &HashMap<String, String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let principal = shell.console.principal;
    let list =
        super::json(crate::api::tenants::list(State(state), principal, paging(params)).await?);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let csrf = shell.console.csrf.clone();
    let body = html! {
        h1 { "Tenants" }
        (items_table(
            &format!("{} tenants.", text(&list, "count")),
            &items,
            &[("name", "Name"), ("sip_domain", "SIP domain"), ("time_zone", "Time zone"), ("retention_days", "CDR retention (days)"), ("recording", "Records every call"), ("created_at", "Created (UTC)")],
            |item| {
                let (id, name) = (text(item, "id"), text(item, "name"));
                let on = item["recording"] == true;
                html! {
                    form.inline method="post" action=(format!("/console/tenants/{id}/recording")) {
                        (csrf_field(&csrf))
                        input type="hidden" name="recording" value=(if on { "false" } else { "true" });
                        button type="submit" aria-label=(format!("{} recording every call of tenant {name}", if on { "Stop" } else { "Start" })) {
                            (if on { "Stop recording" } else { "Record every call" })
                        }
                    }
                    (action_button(&format!("/console/tenants/{id}/delete"), &csrf, "Delete", &format!("Delete tenant {name}")))
                }
            },
        ))
        h2 #new-tenant { "New tenant" }
        @if let Some(e) = &error { (form_error(e)) }
        form.stack method="post" action=(PATH) aria-labelledby="new-tenant" {
            (csrf_field(&csrf))
            label for="t-name" { "Name" }
            input #t-name name="name" type="text" required;
            label for="t-domain" { "SIP domain" }
            input #t-domain name="sip_domain" type="text" required;
            label for="t-zone" { "Time zone (IANA name)" }
            input #t-zone name="time_zone" type="text" value="UTC";
            label for="t-recording" {
                input #t-recording name="recording" type="checkbox" value="true";
                " Record every call of this tenant"
            }
            div.actions { button type="submit" { "Create tenant" } }
        }
    };
    Ok(shell.page("Tenants", PATH, body).into_response())
}

async fn page(
    State(state): State<ApiState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    render(state, shell, &params, None).await
}

async fn create(
    State(state): State<ApiState>,
    console: Console,
    ClientAddr(source): ClientAddr,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let mut body = Map::new();
    for field in ["name", "sip_domain", "time_zone"] {
        if let Some(v) = form.get(field).filter(|v| !v.is_empty()) {
            body.insert(field.to_owned(), json!(v));
        }
    }
    body.insert(
        "recording".to_owned(),
        json!(form.get("recording").is_some_and(|v| v == "true")),
    );
    let result = crate::api::tenants::create(
        State(state.clone()),
        shell.console.principal,
        ClientAddr(source),
        Bytes::from(Value::Object(body).to_string()),
    )
    .await;
    match result {
        Ok(_) => Ok(Redirect::to(PATH).into_response()),
        Err(e) => {
            let (status, message) = fixable(e)?;
            Ok(with_status(
                render(state, shell, &HashMap::new(), Some(message)).await?,
                status,
            ))
        }
    }
}

async fn delete(
    State(state): State<ApiState>,
    console: Console,
    ClientAddr(source): ClientAddr,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    crate::api::tenants::delete(
        State(state),
        console.principal,
        ClientAddr(source),
        Path(id),
    )
    .await?;
    Ok(Redirect::to(PATH).into_response())
}

/// Switches a tenant's recording flag (`recording=true|false`).
async fn recording(
    State(state): State<ApiState>,
    console: Console,
    source: ClientAddr,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let on = form.get("recording").is_some_and(|v| v == "true");
    let _tenant = crate::api::tenants::patch(
        State(state),
        console.principal,
        source,
        Path(id),
        Bytes::from(json!({ "recording": on }).to_string()),
    )
    .await?;
    Ok(Redirect::to(PATH).into_response())
}
