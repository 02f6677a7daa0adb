//! Create, edit and delete for the provisioning resources whose forms are
//! declared with [`super::form`] (trunks, DID and outbound rules, ring
//! groups): one set of handlers, each a REST handler called with the
//! console's scope. A resource gives its list path, its fields, its REST
//! calls and its list page ([`Resource`]); [`routes`] wires
//!
//! ```text
//! GET  {path}                 the list page, with the new-item form
//! POST {path}                 create (the form as the REST body)
//! GET  {path}/{id}            the edit form, filled from REST (editable ones)
//! POST {path}/{id}            save (a PATCH of the fields shown)
//! POST {path}/{id}/delete     delete
//! ```
//!
//! A refusal a person can act on (400, 409: the REST message, naming the
//! field) shows the page again with it; any other is an error page.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{Markup, html};
use serde_json::Value;

use super::form::{self, Field, Mode, Options};
use super::{admin_scope, fixable, text, with_status};
use crate::api::auth::ClientAddr;
use crate::api::resource::Scope;
use crate::api::{ApiError, ApiState};
use crate::console::Console;
use crate::console::layout::{PageError, Shell, form_error};

/// A resource managed through [`super::form`] forms.
#[derive(Clone, Copy, Debug)]
pub(super) enum Resource {
    Trunk,
    Inbound,
    Outbound,
    RingGroup,
}

type Params = HashMap<String, String>;

impl Resource {
    /// Its list page.
    pub(super) fn path(self) -> &'static str {
        match self {
            Resource::Trunk => super::trunks::TRUNKS,
            Resource::Inbound => super::trunks::INBOUND,
            Resource::Outbound => super::trunks::OUTBOUND,
            Resource::RingGroup => super::ring_groups::PATH,
        }
    }

    fn fields(self) -> &'static [Field] {
        match self {
            Resource::Trunk => super::trunks::TRUNK_FIELDS,
            Resource::Inbound => super::trunks::INBOUND_FIELDS,
            Resource::Outbound => super::trunks::OUTBOUND_FIELDS,
            Resource::RingGroup => super::ring_groups::FIELDS,
        }
    }

    /// The REST path parameter naming one item.
    fn id_param(self) -> &'static str {
        match self {
            Resource::Trunk => "trunk_id",
            Resource::Inbound | Resource::Outbound => "rule_id",
            Resource::RingGroup => "ring_group_id",
        }
    }

    /// Whether it has an edit form (rules are deleted and made again).
    fn editable(self) -> bool {
        matches!(self, Resource::Trunk | Resource::RingGroup)
    }

    /// An item's heading on its edit page.
    fn title(self, item: &Value) -> String {
        match self {
            Resource::Trunk => format!("Trunk {}", text(item, "name")),
            Resource::RingGroup => {
                format!(
                    "Ring group {} ({})",
                    text(item, "number"),
                    text(item, "name")
                )
            }
            Resource::Inbound => format!("DID {}", text(item, "did")),
            Resource::Outbound => format!("Outbound rule {}", text(item, "name")),
        }
    }

    /// What the edit page shows above the form (a trunk's live state).
    fn detail(self, item: &Value) -> Markup {
        match self {
            Resource::Trunk => html! { p { "Status: " (super::trunks::live(&item["status"])) } },
            _ => html! {},
        }
    }

    /// The list page, with `error` over its new-item form.
    async fn list_page(
        self,
        state: ApiState,
        shell: Shell,
        params: &Params,
        error: Option<String>,
    ) -> Result<Response, PageError> {
        use super::trunks::{rules_render, trunks_render};
        match self {
            Resource::Trunk => trunks_render(state, shell, params, error).await,
            Resource::Inbound => rules_render(state, shell, true, params, error).await,
            Resource::Outbound => rules_render(state, shell, false, params, error).await,
            Resource::RingGroup => super::ring_groups::render(state, shell, params, error).await,
        }
    }

    /// Options of its `Choice`/`Choices` fields.
    async fn options(self, state: &ApiState, scope: Scope) -> Result<Options, PageError> {
        match self {
            Resource::Inbound | Resource::Outbound => {
                super::trunks::trunk_options(state, scope).await
            }
            _ => Ok(Options::new()),
        }
    }

    async fn create(
        self,
        state: &ApiState,
        scope: Scope,
        source: ClientAddr,
        body: Bytes,
    ) -> Result<(), ApiError> {
        use crate::api::{inbound_rules, numbered, outbound_rules, trunks};
        let state = State(state.clone());
        match self {
            Resource::Trunk => trunks::create(state, scope, source, body).await.map(drop),
            Resource::Inbound => inbound_rules::create(state, scope, source, body)
                .await
                .map(drop),
            Resource::Outbound => outbound_rules::create(state, scope, source, body)
                .await
                .map(drop),
            Resource::RingGroup => numbered::create::<store::RingGroup>(state, scope, source, body)
                .await
                .map(drop),
        }
    }

    async fn get(self, state: &ApiState, scope: Scope, params: Params) -> Result<Value, ApiError> {
        use crate::api::{inbound_rules, numbered, outbound_rules, trunks};
        let (state, params) = (State(state.clone()), Path(params));
        Ok(match self {
            Resource::Trunk => super::json(trunks::get(state, scope, params).await?),
            Resource::Inbound => super::json(inbound_rules::get(state, scope, params).await?),
            Resource::Outbound => super::json(outbound_rules::get(state, scope, params).await?),
            Resource::RingGroup => {
                super::json(numbered::get::<store::RingGroup>(state, scope, params).await?)
            }
        })
    }

    async fn patch(
        self,
        state: &ApiState,
        scope: Scope,
        source: ClientAddr,
        params: Params,
        body: Bytes,
    ) -> Result<(), ApiError> {
        use crate::api::{inbound_rules, numbered, outbound_rules, trunks};
        let (state, params) = (State(state.clone()), Path(params));
        match self {
            Resource::Trunk => trunks::patch(state, scope, source, params, body)
                .await
                .map(drop),
            Resource::Inbound => inbound_rules::patch(state, scope, source, params, body)
                .await
                .map(drop),
            Resource::Outbound => outbound_rules::patch(state, scope, source, params, body)
                .await
                .map(drop),
            Resource::RingGroup => {
                numbered::patch::<store::RingGroup>(state, scope, source, params, body)
                    .await
                    .map(drop)
            }
        }
    }

    async fn delete(
        self,
        state: &ApiState,
        scope: Scope,
        source: ClientAddr,
        params: Params,
    ) -> Result<(), ApiError> {
        use crate::api::{inbound_rules, numbered, outbound_rules, trunks};
        let (state, params) = (State(state.clone()), Path(params));
        match self {
            Resource::Trunk => trunks::delete(state, scope, source, params).await.map(drop),
            Resource::Inbound => inbound_rules::delete(state, scope, source, params)
                .await
                .map(drop),
            Resource::Outbound => outbound_rules::delete(state, scope, source, params)
                .await
                .map(drop),
            Resource::RingGroup => {
                numbered::delete::<store::RingGroup>(state, scope, source, params)
                    .await
                    .map(drop)
            }
        }
    }
}

/// The routes of `resource` (see the module docs).
pub(super) fn routes(resource: Resource) -> Router<ApiState> {
    let path = resource.path();
    let one = format!("{path}/{{{}}}", resource.id_param());
    let mut router = Router::new()
        .route(
            path,
            get(
                move |State(state): State<ApiState>,
                      console: Console,
                      Query(params): Query<Params>| async move {
                    let shell = Shell::load(&state, console).await?;
                    resource.list_page(state, shell, &params, None).await
                },
            )
            .post(
                move |State(state): State<ApiState>,
                      console: Console,
                      source: ClientAddr,
                      Form(form): Form<Vec<(String, String)>>| {
                    create(resource, state, console, source, form)
                },
            ),
        )
        .route(
            &format!("{one}/delete"),
            post(
                move |State(state): State<ApiState>,
                      console: Console,
                      source: ClientAddr,
                      Path(params): Path<Params>| {
                    delete(resource, state, console, source, params)
                },
            ),
        );
    if resource.editable() {
        router = router.route(
            &one,
            get(
                move |State(state): State<ApiState>,
                      console: Console,
                      Path(params): Path<Params>| async move {
                    let shell = Shell::load(&state, console).await?;
                    edit_page(resource, state, shell, params, None).await
                },
            )
            .post(
                move |State(state): State<ApiState>,
                      console: Console,
                      source: ClientAddr,
                      Path(params): Path<Params>,
                      Form(form): Form<Vec<(String, String)>>| {
                    save(resource, state, console, source, params, form)
                },
            ),
        );
    }
    router
}

/// The list after a write REST took; after a refusal a person can act on
/// (400, 409), `page` (the form again) with REST's message and status;
/// any other refusal is an error page.
async fn outcome<F: Future<Output = Result<Response, PageError>>>(
    result: Result<(), ApiError>,
    resource: Resource,
    page: impl FnOnce(String) -> F,
) -> Result<Response, PageError> {
    match result {
        Ok(()) => Ok(Redirect::to(resource.path()).into_response()),
        Err(e) => {
            let (status, message) = fixable(e)?;
            Ok(with_status(page(message).await?, status))
        }
    }
}

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
    let none = Params::new();
    outcome(result, resource, |message| {
        resource.list_page(state, shell, &none, Some(message))
    })
    .await
}

async fn delete(
    resource: Resource,
    state: ApiState,
    console: Console,
    source: ClientAddr,
    params: Params,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = admin_scope(&state, &shell).await?;
    let result = resource.delete(&state, scope, source, params).await;
    let none = Params::new();
    outcome(result, resource, |message| {
        resource.list_page(state, shell, &none, Some(message))
    })
    .await
}

/// One item's edit form, filled from its REST detail (write-only fields,
/// passwords, stay empty: empty keeps them).
async fn edit_page(
    resource: Resource,
    state: ApiState,
    shell: Shell,
    params: Params,
    error: Option<String>,
) -> Result<Response, PageError> {
    let scope = admin_scope(&state, &shell).await?;
    let item = resource.get(&state, scope, params).await?;
    let options = resource.options(&state, scope).await?;
    let action = format!("{}/{}", resource.path(), text(&item, "id"));
    let title = resource.title(&item);
    let csrf = shell.console.csrf.clone();
    let body = html! {
        p { a href=(resource.path()) { "← Back to the list" } }
        h1 #edit-item { (title) }
        (resource.detail(&item))
        @if let Some(e) = &error { (form_error(e)) }
        (form::render_with(&action, &csrf, "edit-item", resource.fields(), &options, &item, "Save"))
    };
    Ok(shell.page(&title, resource.path(), body).into_response())
}

async fn save(
    resource: Resource,
    state: ApiState,
    console: Console,
    source: ClientAddr,
    params: Params,
    form: Vec<(String, String)>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = admin_scope(&state, &shell).await?;
    let result = match form::body(resource.fields(), &form, Mode::Edit) {
        Ok(body) => {
            resource
                .patch(
                    &state,
                    scope,
                    source,
                    params.clone(),
                    Bytes::from(body.to_string()),
                )
                .await
        }
        Err(e) => Err(e),
    };
    outcome(result, resource, |message| {
        edit_page(resource, state, shell, params, Some(message))
    })
    .await
}
