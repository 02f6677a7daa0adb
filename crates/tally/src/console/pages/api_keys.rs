//! API keys: the REST `api_keys` handlers, rendered. A new key is shown
//! once, on the page that created it, as REST answers it once.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde_json::json;

use super::{action_button, admin_scope, fixable, items_table, text, with_status};
use crate::api::auth::ClientAddr;
use crate::api::{ApiState, Role};
use crate::console::Console;
use crate::console::layout::{PageError, Shell, csrf_field, form_error, notice};

const PATH: &str = "/console/api-keys";

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(PATH, get(page).post(create))
        .route("/console/api-keys/{key_id}/delete", post(delete))
}

async fn render(
    state: ApiState,
    shell: Shell,
    message: Option<Markup>,
) -> Result<Response, PageError> {
    let scope = admin_scope(&state, &shell).await?;
    let list = super::json(crate::api::api_keys::list(State(state), scope).await?);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let csrf = shell.console.csrf.clone();
    let body = html! {
        h1 { "API keys" }
        @if let Some(m) = message { (m) }
        (items_table(
            "Keys of this tenant (UTC times).",
            &items,
            &[("name", "Name"), ("role", "Role"), ("prefix", "Starts with"), ("created_at", "Created"), ("last_used_at", "Last used")],
            |item| action_button(&format!("/console/api-keys/{}/delete", text(item, "id")), &csrf, "Revoke", &format!("Revoke key {}", text(item, "name"))),
        ))
        h2 #new-key { "New key" }
        form.stack method="post" action=(PATH) aria-labelledby="new-key" {
            (csrf_field(&csrf))
            label for="k-name" { "Name" }
            input #k-name name="name" type="text" required;
            label for="k-role" { "Role" }
            select #k-role name="role" {
                @for role in Role::ALL { option value=(role.as_str()) { (role.as_str()) } }
            }
            div.actions { button type="submit" { "Create key" } }
        }
    };
    Ok(shell.page("API keys", PATH, body).into_response())
}

async fn page(State(state): State<ApiState>, console: Console) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    render(state, shell, None).await
}

async fn create(
    State(state): State<ApiState>,
    console: Console,
    ClientAddr(source): ClientAddr,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = admin_scope(&state, &shell).await?;
    let body = json!({
        "name": form.get("name").cloned().unwrap_or_default(),
        "role": form.get("role").cloned().unwrap_or_default(),
    });
    let result = crate::api::api_keys::create(
        State(state.clone()),
        scope,
        ClientAddr(source),
        Bytes::from(body.to_string()),
    )
    .await;
    match result {
        Ok((_, _, created)) => {
            let created = super::json(created);
            let message = html! {
                (notice("Key created. Copy it now: it is not shown again."))
                p { label for="new-key-value" { "The new key" } input #new-key-value type="text" readonly size="72" value=(text(&created, "key")); }
            };
            render(state, shell, Some(message)).await
        }
        Err(e) => {
            let (status, message) = fixable(e)?;
            Ok(with_status(
                render(state, shell, Some(form_error(&message))).await?,
                status,
            ))
        }
    }
}

async fn delete(
    State(state): State<ApiState>,
    console: Console,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = admin_scope(&state, &shell).await?;
    crate::api::api_keys::delete(State(state), scope, ClientAddr(source), Path(params)).await?;
    Ok(Redirect::to(PATH).into_response())
}
