//! Trunks, and the inbound (DID) and outbound rules that route calls
//! through them: the REST `trunks`, `inbound_rules` and `outbound_rules`
//! handlers, rendered: the list pages and the forms' fields; creating,
//! editing (trunks) and deleting are [`super::crud`]'s.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::Value;

use super::crud::{self, Resource};
use super::form::{self, Field, Kind, Options};
use super::{action_button, admin_scope, items_table, paging, text};
use crate::api::ApiState;
use crate::api::resource::Scope;
use crate::console::layout::{PageError, Shell, form_error};

pub(super) const TRUNKS: &str = "/console/trunks";
pub(super) const INBOUND: &str = "/console/inbound-rules";
pub(super) const OUTBOUND: &str = "/console/outbound-rules";

pub fn routes() -> Router<ApiState> {
    Router::new()
        .merge(crud::routes(Resource::Trunk))
        .merge(crud::routes(Resource::Inbound))
        .merge(crud::routes(Resource::Outbound))
}

pub(super) const TRUNK_FIELDS: &[Field] = &[
    Field::new("name", "Name", Kind::Text).required(),
    Field::new(
        "kind",
        "Kind",
        Kind::Select(&[
            ("register", "register (Tally registers to the carrier)"),
            ("ip", "ip (the carrier sends from known addresses)"),
        ]),
    ),
    Field::new("host", "Host", Kind::Text).required(),
    Field::new("port", "Port (default 5060)", Kind::Number),
    Field::new(
        "transport",
        "Transport",
        Kind::Select(&[("udp", "UDP"), ("tcp", "TCP")]),
    ),
    Field::new("username", "Username", Kind::Text),
    Field::new("auth_username", "Auth username (if different)", Kind::Text),
    Field::new("password", "Password", Kind::Password),
    Field::new("realm", "Realm", Kind::Text),
    Field::new("from_domain", "From domain", Kind::Text),
    Field::new("caller_id", "Default outbound caller ID", Kind::Text),
    Field::new(
        "source_addresses",
        "Source addresses or networks (ip trunks)",
        Kind::List,
    ),
    Field::new("max_calls", "Maximum concurrent calls", Kind::Number),
    Field::new("enabled", "Enabled", Kind::Flag),
];

pub(super) const INBOUND_FIELDS: &[Field] = &[
    Field::new("trunk_id", "Trunk", Kind::Choice).required(),
    Field::new("did", "DID (number dialled)", Kind::Text).required(),
    Field::new(
        "match",
        "Match",
        Kind::Select(&[
            ("exact", "exact"),
            ("prefix", "prefix (a block of numbers)"),
        ]),
    ),
    Field::new(
        "destination_type",
        "Destination type",
        Kind::Select(&[
            ("extension", "extension"),
            ("ring_group", "ring group"),
            ("ivr", "IVR"),
            ("queue", "queue"),
            (
                "external",
                "outside number (out again by the outbound rules)",
            ),
        ]),
    ),
    Field::new(
        "destination",
        "Destination (extension, ring group, IVR or queue number, or outside number)",
        Kind::Text,
    )
    .required(),
];

pub(super) const OUTBOUND_FIELDS: &[Field] = &[
    Field::new("name", "Name", Kind::Text).required(),
    Field::new("pattern", "Pattern (X Z N [1-5] . !)", Kind::Text).required(),
    Field::new("priority", "Priority (lower first)", Kind::Number),
    Field::new(
        "from_extensions",
        "Only from these extensions (empty: all)",
        Kind::List,
    ),
    Field::new("strip_digits", "Digits to strip", Kind::Number),
    Field::new("prepend", "Prepend", Kind::Text),
    Field::new("caller_id", "Caller ID", Kind::Text),
    Field::new("trunks", "Trunks, tried in this order", Kind::Choices).required(),
];

/// The tenant's trunks as select options (id, name).
pub(super) async fn trunk_options(state: &ApiState, scope: Scope) -> Result<Options, PageError> {
    let list = super::json(
        crate::api::trunks::list(State(state.clone()), scope, paging(&HashMap::new())).await?,
    );
    let trunks = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (text(t, "id"), text(t, "name")))
        .collect::<Vec<_>>();
    Ok(HashMap::from([
        ("trunk_id", trunks.clone()),
        ("trunks", trunks),
    ]))
}

/// A trunk's live state in a few words (`GET /api/trunks/{id}`'s
/// `status`).
pub(super) fn live(status: &Value) -> String {
    if status.is_null() {
        return "not running (disabled, or provisioned since the start)".to_owned();
    }
    let mut parts = Vec::new();
    if let Some(reg) = status.get("registration").filter(|r| !r.is_null()) {
        parts.push(format!("registration {}", text(reg, "registration")));
        let error = text(reg, "last_error");
        if !error.is_empty() {
            parts.push(format!("last error: {error}"));
        }
    }
    let options = &status["options"];
    let mut keepalive = format!("keep-alive {}", text(options, "state"));
    if let Some(rtt) = options.get("rtt_ms").and_then(Value::as_u64) {
        keepalive.push_str(&format!(" ({rtt} ms)"));
    }
    parts.push(keepalive);
    parts.join("; ")
}

pub(super) async fn trunks_render(
    state: ApiState,
    shell: Shell,
    params: &HashMap<String, String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let scope = admin_scope(&state, &shell).await?;
    let list =
        super::json(crate::api::trunks::list(State(state.clone()), scope, paging(params)).await?);
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    // Each trunk's live state, as its REST detail shows it.
    for item in &mut items {
        let id = HashMap::from([("trunk_id".to_owned(), text(item, "id"))]);
        let detail =
            super::json(crate::api::trunks::get(State(state.clone()), scope, Path(id)).await?);
        item["live"] = Value::String(live(&detail["status"]));
    }
    let csrf = shell.console.csrf.clone();
    let body = html! {
        h1 { "Trunks" }
        (items_table(
            &format!("{} trunks.", text(&list, "count")),
            &items,
            &[("name", "Name"), ("kind", "Kind"), ("host", "Host"), ("port", "Port"), ("transport", "Transport"),
              ("max_calls", "Max calls"), ("enabled", "Enabled"), ("live", "Status")],
            |item| html! {
                a href=(format!("/console/trunks/{}", text(item, "id"))) aria-label=(format!("Edit trunk {}", text(item, "name"))) { "Edit" }
                " "
                (action_button(&format!("/console/trunks/{}/delete", text(item, "id")), &csrf, "Delete", &format!("Delete trunk {}", text(item, "name"))))
            },
        ))
        p { a href=(INBOUND) { "Inbound rules (DIDs)" } " · " a href=(OUTBOUND) { "Outbound rules" } }
        h2 #new-trunk { "New trunk" }
        @if let Some(e) = &error { (form_error(e)) }
        (form::render(TRUNKS, &csrf, "new-trunk", TRUNK_FIELDS, &Options::new(), "Create trunk"))
    };
    Ok(shell.page("Trunks", TRUNKS, body).into_response())
}

pub(super) async fn rules_render(
    state: ApiState,
    shell: Shell,
    inbound: bool,
    params: &HashMap<String, String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let scope = admin_scope(&state, &shell).await?;
    let list = if inbound {
        crate::api::inbound_rules::list(State(state.clone()), scope, Query(params.clone())).await?
    } else {
        crate::api::outbound_rules::list(State(state.clone()), scope, paging(params)).await?
    };
    let list = super::json(list);
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    let options = trunk_options(&state, scope).await?;
    let name_of = |id: &str| {
        options["trunks"]
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| id.to_owned())
    };
    for item in &mut items {
        let trunks = match &item["trunks"] {
            Value::Array(ids) => ids
                .iter()
                .map(|t| name_of(t.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(" → "),
            _ => name_of(&text(item, "trunk_id")),
        };
        item["trunk_names"] = Value::String(trunks);
        if let Value::Array(from) = &item["from_extensions"] {
            let from: Vec<_> = from.iter().filter_map(Value::as_str).collect();
            item["from_extensions"] = Value::String(from.join(", "));
        }
    }
    let csrf = shell.console.csrf.clone();
    let (title, path, columns, fields, delete): (_, _, &[(&str, &str)], _, _) = if inbound {
        (
            "Inbound rules",
            INBOUND,
            &[
                ("did", "DID"),
                ("match", "Match"),
                ("trunk_names", "Trunk"),
                ("destination_type", "Destination type"),
                ("destination", "Destination"),
            ],
            INBOUND_FIELDS,
            "/console/inbound-rules",
        )
    } else {
        (
            "Outbound rules",
            OUTBOUND,
            &[
                ("priority", "Priority"),
                ("name", "Name"),
                ("pattern", "Pattern"),
                ("from_extensions", "From"),
                ("strip_digits", "Strip"),
                ("prepend", "Prepend"),
                ("caller_id", "Caller ID"),
                ("trunk_names", "Trunks"),
            ],
            OUTBOUND_FIELDS,
            "/console/outbound-rules",
        )
    };
    let body = html! {
        h1 { (title) }
        p { a href=(TRUNKS) { "← Trunks" } }
        (items_table(
            &format!("{} rules{}.", text(&list, "count"), if inbound { "" } else { ", in the order they are tried" }),
            &items,
            columns,
            |item| action_button(&format!("{delete}/{}/delete", text(item, "id")), &csrf, "Delete",
                &format!("Delete rule {}", if inbound { text(item, "did") } else { text(item, "name") })),
        ))
        h2 #new-rule { "New rule" }
        @if options["trunks"].is_empty() {
            p { "Create a trunk first." }
        } @else {
            @if let Some(e) = &error { (form_error(e)) }
            (form::render(path, &csrf, "new-rule", fields, &options, "Create rule"))
        }
    };
    Ok(shell.page(title, TRUNKS, body).into_response())
}
