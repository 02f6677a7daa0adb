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

use super::form::{self, Field, Kind, Mode};
use super::{action_button, admin_scope, fixable, items_table, paging, text, with_status};
use crate::api::auth::ClientAddr;
use crate::api::{ApiError, ApiState, Role};
use crate::console::Console;
use crate::console::layout::{PageError, Shell, csrf_field, form_error};

const PATH: &str = "/console/users";

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(PATH, get(page).post(create))
        .route("/console/users/{user_id}", get(edit_page).post(save))
        .route("/console/users/{user_id}/delete", post(delete))
}

/// The edit form's fields (`PATCH /api/users/{id}`); forwarding has its
/// own four inputs, one per condition.
const EDIT_FIELDS: &[Field] = &[
    Field::new("display_name", "Display name", Kind::Text),
    Field::new("email", "E-mail", Kind::Text),
    Field::new("username", "Sign-in name (optional)", Kind::Text),
    Field::new(
        "role",
        "Role",
        Kind::Select(&[
            ("Admin", "Admin"),
            ("QueueManager", "QueueManager"),
            ("StandardUser", "StandardUser"),
        ]),
    ),
    Field::new("ring_timeout", "Ring timeout (seconds)", Kind::Number),
    Field::new(
        "max_concurrent_calls",
        "Concurrent calls at most (empty: no limit)",
        Kind::Number,
    ),
    Field::new(
        "pickup_group",
        "Call pickup group (empty: none)",
        Kind::Text,
    ),
    Field::new("recording", "Record this user's calls", Kind::Flag),
    Field::new("enabled", "Enabled", Kind::Flag),
    Field::new(
        "sip_password",
        "New SIP password (empty: unchanged)",
        Kind::Password,
    ),
    Field::new(
        "password",
        "New web password (empty: unchanged)",
        Kind::Password,
    ),
];

/// Forwarding conditions with their labels; the form's inputs are
/// `fwd_<condition>`.
const FORWARD: [(&str, &str); 4] = [
    ("always", "Always"),
    ("busy", "When busy"),
    ("no_answer", "When not answered"),
    ("unavailable", "When unreachable"),
];

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
            |item| html! {
                a href=(format!("/console/users/{}", text(item, "id"))) aria-label=(format!("Edit user {}", text(item, "extension"))) { "Edit" }
                " "
                (action_button(&format!("/console/users/{}/delete", text(item, "id")), &csrf, "Delete", &format!("Delete user {}", text(item, "extension"))))
            },
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

/// One user's edit form, filled from `GET /api/users/{id}`.
async fn edit_render(
    state: ApiState,
    shell: Shell,
    params: HashMap<String, String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let scope = admin_scope(&state, &shell).await?;
    let user = super::json(crate::api::users::get(State(state), scope, Path(params)).await?);
    let id = text(&user, "id");
    let action = format!("/console/users/{id}");
    let forward = |condition: &str| {
        user["forwarding"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["condition"] == condition)
            .map(|r| text(r, "destination"))
            .unwrap_or_default()
    };
    let csrf = shell.console.csrf.clone();
    let title = format!("User {}", text(&user, "extension"));
    let body = html! {
        p { a href=(PATH) { "← Users" } }
        h1 #edit-user { (title) }
        @if let Some(e) = &error { (form_error(e)) }
        (form::render_with(&action, &csrf, "edit-user", EDIT_FIELDS, &form::Options::new(), &user, "Save"))
        h2 #forwarding { "Forwarding" }
        p.help { "An extension or a sip: address of this tenant; empty: no forwarding." }
        form.stack method="post" action=(action) aria-labelledby="forwarding" {
            (csrf_field(&csrf))
            input type="hidden" name="section" value="forwarding";
            @for (condition, label) in FORWARD {
                label for=(format!("fwd-{condition}")) { (label) }
                input #(format!("fwd-{condition}")) name=(format!("fwd_{condition}")) type="text" value=(forward(condition));
            }
            div.actions { button type="submit" { "Save forwarding" } }
        }
    };
    Ok(shell.page(&title, PATH, body).into_response())
}

async fn edit_page(
    State(state): State<ApiState>,
    console: Console,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    edit_render(state, shell, params, None).await
}

/// The posted edit form as the PATCH body: the user's fields, or (the
/// forwarding form) its rules.
fn patch_body(form: &[(String, String)]) -> Result<Value, ApiError> {
    if !form
        .iter()
        .any(|(k, v)| k == "section" && v == "forwarding")
    {
        return form::body(EDIT_FIELDS, form, Mode::Edit);
    }
    let rules: Vec<Value> = FORWARD
        .iter()
        .filter_map(|(condition, _)| {
            let name = format!("fwd_{condition}");
            let destination = form.iter().find(|(k, _)| *k == name)?.1.trim();
            (!destination.is_empty())
                .then(|| json!({"condition": condition, "destination": destination}))
        })
        .collect();
    Ok(json!({ "forwarding": rules }))
}

async fn save(
    State(state): State<ApiState>,
    console: Console,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = admin_scope(&state, &shell).await?;
    let result = match patch_body(&form) {
        Ok(body) => crate::api::users::patch(
            State(state.clone()),
            scope,
            ClientAddr(source),
            Path(params.clone()),
            Bytes::from(body.to_string()),
        )
        .await
        .map(drop),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(Redirect::to(PATH).into_response()),
        Err(e) => {
            let (status, message) = fixable(e)?;
            Ok(with_status(
                edit_render(state, shell, params, Some(message)).await?,
                status,
            ))
        }
    }
}
