//! Trunks, and the inbound (DID) and outbound rules that route calls
//! through them: the REST `trunks`, `inbound_rules` and `outbound_rules`
//! handlers, rendered. One page per resource; each lists, creates (its
//! form's fields become the REST body, see [`super::form`]) and deletes.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::html;
use serde_json::Value;

use super::form::{self, Field, Kind, Mode, Options};
use super::{action_button, admin_scope, fixable, items_table, paging, text, with_status};
use crate::api::auth::ClientAddr;
use crate::api::resource::Scope;
use crate::api::{ApiError, ApiState};
use crate::console::Console;
use crate::console::layout::{PageError, Shell, form_error};

const TRUNKS: &str = "/console/trunks";
const INBOUND: &str = "/console/inbound-rules";
const OUTBOUND: &str = "/console/outbound-rules";

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(TRUNKS, get(trunks_page).post(trunk_create))
        .route(
            "/console/trunks/{trunk_id}",
            get(trunk_edit).post(trunk_save),
        )
        .route("/console/trunks/{trunk_id}/delete", post(trunk_delete))
        .route(INBOUND, get(inbound_page).post(inbound_create))
        .route(
            "/console/inbound-rules/{rule_id}/delete",
            post(inbound_delete),
        )
        .route(OUTBOUND, get(outbound_page).post(outbound_create))
        .route(
            "/console/outbound-rules/{rule_id}/delete",
            post(outbound_delete),
        )
}

const TRUNK_FIELDS: &[Field] = &[
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

const INBOUND_FIELDS: &[Field] = &[
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
    Field::new("destination", "Destination extension", Kind::Text).required(),
];

const OUTBOUND_FIELDS: &[Field] = &[
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
async fn trunk_options(state: &ApiState, scope: Scope) -> Result<Options, PageError> {
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
fn live(status: &Value) -> String {
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

async fn trunks_render(
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

async fn rules_render(
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

async fn trunks_page(
    State(state): State<ApiState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    trunks_render(state, shell, &params, None).await
}

async fn inbound_page(
    State(state): State<ApiState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    rules_render(state, shell, true, &params, None).await
}

async fn outbound_page(
    State(state): State<ApiState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    rules_render(state, shell, false, &params, None).await
}

/// Which resource a create or delete acts on.
#[derive(Clone, Copy)]
enum Resource {
    Trunk,
    Inbound,
    Outbound,
}

impl Resource {
    fn path(self) -> &'static str {
        match self {
            Resource::Trunk => TRUNKS,
            Resource::Inbound => INBOUND,
            Resource::Outbound => OUTBOUND,
        }
    }

    fn fields(self) -> &'static [Field] {
        match self {
            Resource::Trunk => TRUNK_FIELDS,
            Resource::Inbound => INBOUND_FIELDS,
            Resource::Outbound => OUTBOUND_FIELDS,
        }
    }

    async fn create(
        self,
        state: &ApiState,
        scope: Scope,
        source: ClientAddr,
        body: Bytes,
    ) -> Result<(), ApiError> {
        let state = State(state.clone());
        match self {
            Resource::Trunk => crate::api::trunks::create(state, scope, source, body)
                .await
                .map(drop),
            Resource::Inbound => crate::api::inbound_rules::create(state, scope, source, body)
                .await
                .map(drop),
            Resource::Outbound => crate::api::outbound_rules::create(state, scope, source, body)
                .await
                .map(drop),
        }
    }

    async fn delete(
        self,
        state: &ApiState,
        scope: Scope,
        source: ClientAddr,
        params: HashMap<String, String>,
    ) -> Result<(), ApiError> {
        let (state, params) = (State(state.clone()), Path(params));
        match self {
            Resource::Trunk => crate::api::trunks::delete(state, scope, source, params)
                .await
                .map(drop),
            Resource::Inbound => crate::api::inbound_rules::delete(state, scope, source, params)
                .await
                .map(drop),
            Resource::Outbound => crate::api::outbound_rules::delete(state, scope, source, params)
                .await
                .map(drop),
        }
    }

    /// The page again, with `error` over its form.
    async fn render(
        self,
        state: ApiState,
        shell: Shell,
        error: String,
    ) -> Result<Response, PageError> {
        let none = HashMap::new();
        match self {
            Resource::Trunk => trunks_render(state, shell, &none, Some(error)).await,
            Resource::Inbound => rules_render(state, shell, true, &none, Some(error)).await,
            Resource::Outbound => rules_render(state, shell, false, &none, Some(error)).await,
        }
    }
}

/// A create form posted: the REST create, then the list, or the form
/// again with REST's message (400, 409).
async fn create(
    resource: Resource,
    state: ApiState,
    console: Console,
    source: ClientAddr,
    form: Vec<(String, String)>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = admin_scope(&state, &shell).await?;
    let result = match form::body(resource.fields(), &form, Mode::Create) {
        Ok(body) => {
            resource
                .create(&state, scope, source, Bytes::from(body.to_string()))
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(Redirect::to(resource.path()).into_response()),
        Err(e) => {
            let (status, message) = fixable(e)?;
            Ok(with_status(
                resource.render(state, shell, message).await?,
                status,
            ))
        }
    }
}

/// A delete button posted: the REST delete; a refusal a person can act
/// on (a trunk an outbound rule still uses: 409) is shown on the page.
async fn delete(
    resource: Resource,
    state: ApiState,
    console: Console,
    source: ClientAddr,
    params: HashMap<String, String>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = admin_scope(&state, &shell).await?;
    match resource.delete(&state, scope, source, params).await {
        Ok(()) => Ok(Redirect::to(resource.path()).into_response()),
        Err(e) => {
            let (status, message) = fixable(e)?;
            Ok(with_status(
                resource.render(state, shell, message).await?,
                status,
            ))
        }
    }
}

async fn trunk_create(
    State(state): State<ApiState>,
    console: Console,
    source: ClientAddr,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    create(Resource::Trunk, state, console, source, form).await
}

async fn inbound_create(
    State(state): State<ApiState>,
    console: Console,
    source: ClientAddr,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    create(Resource::Inbound, state, console, source, form).await
}

async fn outbound_create(
    State(state): State<ApiState>,
    console: Console,
    source: ClientAddr,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    create(Resource::Outbound, state, console, source, form).await
}

async fn trunk_delete(
    State(state): State<ApiState>,
    console: Console,
    source: ClientAddr,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, PageError> {
    delete(Resource::Trunk, state, console, source, params).await
}

async fn inbound_delete(
    State(state): State<ApiState>,
    console: Console,
    source: ClientAddr,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, PageError> {
    delete(Resource::Inbound, state, console, source, params).await
}

async fn outbound_delete(
    State(state): State<ApiState>,
    console: Console,
    source: ClientAddr,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, PageError> {
    delete(Resource::Outbound, state, console, source, params).await
}

/// One trunk's edit form, filled from `GET /api/trunks/{id}` (the
/// password is write-only: empty keeps it), with its live state.
async fn trunk_edit_render(
    state: ApiState,
    shell: Shell,
    params: HashMap<String, String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let scope = admin_scope(&state, &shell).await?;
    let trunk = super::json(crate::api::trunks::get(State(state), scope, Path(params)).await?);
    let action = format!("/console/trunks/{}", text(&trunk, "id"));
    let title = format!("Trunk {}", text(&trunk, "name"));
    let csrf = shell.console.csrf.clone();
    let body = html! {
        p { a href=(TRUNKS) { "← Trunks" } }
        h1 #edit-trunk { (title) }
        p { "Status: " (live(&trunk["status"])) }
        @if let Some(e) = &error { (form_error(e)) }
        (form::render_with(&action, &csrf, "edit-trunk", TRUNK_FIELDS, &Options::new(), &trunk, "Save"))
    };
    Ok(shell.page(&title, TRUNKS, body).into_response())
}

async fn trunk_edit(
    State(state): State<ApiState>,
    console: Console,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    trunk_edit_render(state, shell, params, None).await
}

async fn trunk_save(
    State(state): State<ApiState>,
    console: Console,
    source: ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = admin_scope(&state, &shell).await?;
    let result = match form::body(TRUNK_FIELDS, &form, Mode::Edit) {
        Ok(body) => crate::api::trunks::patch(
            State(state.clone()),
            scope,
            source,
            Path(params.clone()),
            Bytes::from(body.to_string()),
        )
        .await
        .map(drop),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(Redirect::to(TRUNKS).into_response()),
        Err(e) => {
            let (status, message) = fixable(e)?;
            Ok(with_status(
                trunk_edit_render(state, shell, params, Some(message)).await?,
                status,
            ))
        }
    }
}
