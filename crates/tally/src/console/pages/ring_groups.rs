//! Ring groups: the REST `ring_groups` handlers, rendered. The list page
//! and the form's fields are here; creating, editing and deleting are
//! [`super::crud`]'s.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::Value;

use super::crud::{self, Resource};
use super::form::{self, Field, Kind, Options};
use super::{action_button, admin_scope, items_table, paging, text};
use crate::api::ApiState;
use crate::console::layout::{PageError, Shell, form_error};

pub(super) const PATH: &str = "/console/ring-groups";

pub(super) const FIELDS: &[Field] = &[
    Field::new("number", "Number", Kind::Text).required(),
    Field::new("name", "Name", Kind::Text).required(),
    Field::new(
        "strategy",
        "Strategy",
        Kind::Select(&[
            ("ring_all", "ring all members at once"),
            ("hunt", "hunt: one member after another, in order"),
            (
                "round_robin",
                "round robin: start after the member who answered last",
            ),
        ]),
    ),
    Field::new("members", "Members (extensions, in order)", Kind::List).required(),
    Field::new(
        "member_timeout",
        "Seconds each member rings (hunt, round robin; default 20)",
        Kind::Number,
    ),
    Field::new(
        "timeout",
        "Seconds the group rings (default 60)",
        Kind::Number,
    ),
    Field::new(
        "no_answer",
        "When nobody answers, go to (an extension or a group; empty: hang up)",
        Kind::Text,
    ),
];

pub fn routes() -> Router<ApiState> {
    crud::routes(Resource::RingGroup)
}

pub(super) async fn render(
    state: ApiState,
    shell: Shell,
    params: &HashMap<String, String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let scope = admin_scope(&state, &shell).await?;
    let list = super::json(
        crate::api::numbered::list::<store::RingGroup>(State(state), scope, paging(params)).await?,
    );
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    for item in &mut items {
        if let Value::Array(members) = &item["members"] {
            let members: Vec<_> = members.iter().filter_map(Value::as_str).collect();
            item["members"] = Value::String(members.join(", "));
        }
    }
    let csrf = shell.console.csrf.clone();
    let body = html! {
        h1 { "Ring groups" }
        (items_table(
            &format!("{} ring groups.", text(&list, "count")),
            &items,
            &[("number", "Number"), ("name", "Name"), ("strategy", "Strategy"), ("members", "Members"),
              ("member_timeout", "Member timeout (s)"), ("timeout", "Timeout (s)"), ("no_answer", "No answer")],
            |item| html! {
                a href=(format!("{PATH}/{}", text(item, "id"))) aria-label=(format!("Edit ring group {}", text(item, "number"))) { "Edit" }
                " "
                (action_button(&format!("{PATH}/{}/delete", text(item, "id")), &csrf, "Delete", &format!("Delete ring group {}", text(item, "number"))))
            },
        ))
        h2 #new-group { "New ring group" }
        @if let Some(e) = &error { (form_error(e)) }
        (form::render(PATH, &csrf, "new-group", FIELDS, &Options::new(), "Create ring group"))
    };
    Ok(shell.page("Ring groups", PATH, body).into_response())
}
