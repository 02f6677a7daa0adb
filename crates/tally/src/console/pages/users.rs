//! Users and extensions: the REST `users` handlers, rendered. The form's
//! fields become the same JSON body `POST /api/users` reads, so the
//! validation messages are REST's, naming the field.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde_json::{Map, Value, json};

use super::{action_button, admin_scope, fixable, items_table, paging, text, with_status};
use crate::api::auth::ClientAddr;
use crate::api::{ApiError, ApiState, Role};
use crate::console::Console;
use crate::console::layout::{PageError, Shell, csrf_field, form_error};

const PATH: &str = "/console/users";

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(PATH, get(page).post(create))
        .route("/console/users/{user_id}/delete", post(delete))
}

async fn render(
    state: ApiState,
    shell: Shell,
    params: &HashMap<String, String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let scope = admin_scope(&state, &shell).await?;
    let list = super::json(crate::api::users::list(State(state), scope, paging(params)).await?);
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let csrf = shell.console.csrf.clone();
    let body = html! {
        h1 { "Users and extensions" }
        (items_table(
            &format!("{} users.", text(&list, "count")),
            &items,
            &[("extension", "Extension"), ("display_name", "Name"), ("username", "Username"), ("email", "E-mail"),
              ("role", "Role"), ("ring_timeout", "Ring timeout (s)"), ("enabled", "Enabled"), ("has_password", "Can sign in")],
            |item| action_button(&format!("/console/users/{}/delete", text(item, "id")), &csrf, "Delete", &format!("Delete user {}", text(item, "extension"))),
        ))
        h2 #new-user { "New user" }
        @if let Some(e) = &error { (form_error(e)) }
        (new_user_form(&csrf))
    };
    Ok(shell.page("Users", PATH, body).into_response())
}

fn new_user_form(csrf: &str) -> Markup {
    html! {
        form.stack method="post" action=(PATH) aria-labelledby="new-user" {
            (csrf_field(csrf))
            label for="u-extension" { "Extension" }
            input #u-extension name="extension" type="text" required;
            label for="u-display" { "Display name" }
            input #u-display name="display_name" type="text";
            label for="u-email" { "E-mail" }
            input #u-email name="email" type="text";
            label for="u-sip" { "SIP password" }
            input #u-sip name="sip_password" type="password" required autocomplete="new-password";
            label for="u-password" { "Web password (optional: lets the user sign in)" }
            input #u-password name="password" type="password" autocomplete="new-password";
            label for="u-role" { "Role" }
            select #u-role name="role" {
                @for role in Role::ALL { option value=(role.as_str()) selected[role == Role::StandardUser] { (role.as_str()) } }
            }
            label for="u-ring" { "Ring timeout (seconds)" }
            input #u-ring name="ring_timeout" type="number" min="5" max="600" value="30";
            div.actions { button type="submit" { "Create user" } }
        }
    }
}

async fn page(
    State(state): State<ApiState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    render(state, shell, &params, None).await
}

/// The form as the REST body: empty optional fields are left out, the
/// ring timeout is a number.
fn body(form: &HashMap<String, String>) -> Result<Value, ApiError> {
    let mut body = Map::new();
    for field in [
        "extension",
        "display_name",
        "email",
        "sip_password",
        "password",
        "role",
    ] {
        if let Some(v) = form.get(field).filter(|v| !v.is_empty()) {
            body.insert(field.to_owned(), json!(v));
        }
    }
    if let Some(v) = form.get("ring_timeout").filter(|v| !v.is_empty()) {
        let n: u64 = v
            .parse()
            .map_err(|_| ApiError::validate("ring_timeout", "must be a whole number"))?;
        body.insert("ring_timeout".to_owned(), json!(n));
    }
    Ok(Value::Object(body))
}

async fn create(
    State(state): State<ApiState>,
    console: Console,
    ClientAddr(source): ClientAddr,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = admin_scope(&state, &shell).await?;
    let result = match body(&form) {
        Ok(body) => crate::api::users::create(
            State(state.clone()),
            scope,
            ClientAddr(source),
            Bytes::from(body.to_string()),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(Redirect::to(PATH).into_response()),
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
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = admin_scope(&state, &shell).await?;
    crate::api::users::delete(State(state), scope, ClientAddr(source), Path(params)).await?;
    Ok(Redirect::to(PATH).into_response())
}
