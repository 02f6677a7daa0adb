//! The recordings page (SPEC §8): the tenant's recordings (a standard
//! user's own calls), newest first, each with a player, and the player's
//! audio route.
//!
//! Everything goes through the REST recording handlers
//! (`api::recordings::{list, download, delete}`) with the console
//! session's scope, so the page lists exactly what `GET /api/recordings`
//! would for the same principal. A browser's `<audio>` cannot send a
//! bearer token, so the player's source is
//! `/console/recordings/{id}/audio`: the REST download (with `Range`, so
//! the player can seek) authenticated by the session cookie.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cdr::UnixMillis;
use maud::{Markup, html};

use super::cdrs::duration;
use super::{action_button, text};
use crate::api::recordings::READERS;
use crate::api::resource::Scope;
use crate::api::{ApiState, Role};
use crate::console::Console;
use crate::console::layout::{PageError, Shell};

const PATH: &str = "/console/recordings";
/// Recordings per page.
const PAGE: &str = "50";

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(PATH, get(page))
        .route("/console/recordings/{id}/audio", get(audio))
        .route("/console/recordings/{id}/delete", post(delete))
}

/// A player for recording `id` and its download link.
pub fn player(id: &str, duration_secs: u64) -> Markup {
    let src = format!("/console/recordings/{id}/audio");
    html! {
        audio controls preload="none" src=(src) { a href=(src) { "Download the recording" } }
        p { a href=(src) download=(format!("recording-{id}.wav")) { "Download the recording" } " (" (duration(duration_secs)) ")" }
    }
}

/// The REST scope of the signed-in principal for recordings.
async fn scope(state: &ApiState, shell: &Shell) -> Result<Scope, PageError> {
    let tenant_id = shell.tenant_for(state, &READERS).await?;
    Ok(Scope {
        tenant_id,
        principal: shell.console.principal,
    })
}

async fn page(
    State(state): State<ApiState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = scope(&state, &shell).await?;
    let admin = matches!(
        shell.console.principal,
        crate::api::Principal::SystemAdmin
            | crate::api::Principal::Tenant {
                role: Role::Admin,
                ..
            }
    );
    let number = params
        .get("number")
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    let mut rest = HashMap::from([("top".to_owned(), PAGE.to_owned())]);
    if let Some(n) = &number {
        rest.insert("number".to_owned(), n.clone());
    }
    if let Some(after) = params.get("after").filter(|a| !a.is_empty()) {
        rest.insert("after".to_owned(), after.clone());
    }
    let (items, error) =
        match crate::api::recordings::list(State(state.clone()), scope, Query(rest)).await {
            Ok(json) => (
                super::json(json)["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
                None,
            ),
            Err(e) if e.status() == axum::http::StatusCode::BAD_REQUEST => {
                (Vec::new(), Some(e.message().to_owned()))
            }
            Err(e) => return Err(e.into()),
        };
    let started = |item: &serde_json::Value| {
        store::query::filter::parse_time(&text(item, "started_at"))
            .and_then(|ms| u64::try_from(ms).ok())
            .map(|ms| shell.time(Some(UnixMillis(ms))))
            .unwrap_or_default()
    };
    let query = |extra: &[(&str, &str)]| {
        let mut out = form_urlencoded::Serializer::new(String::new());
        if let Some(n) = &number {
            out.append_pair("number", n);
        }
        for (k, v) in extra {
            out.append_pair(k, v);
        }
        out.finish()
    };
    let next = (items.len().to_string() == PAGE)
        .then(|| items.last().map(|i| query(&[("after", &text(i, "id"))])))
        .flatten();
    let csrf = shell.console.csrf.clone();
    let body = html! {
        h1 { "Recordings" }
        form.filters method="get" action=(PATH) role="search" aria-label="Filter recordings" {
            div { label for="r-number" { "Number" } input #r-number type="text" name="number" value=(number.as_deref().unwrap_or("")) size="10"; }
            div.actions { button type="submit" { "Filter" } a href=(PATH) { "Clear" } }
        }
        @if let Some(error) = &error { p.error role="alert" { (error) } }
        div.scroll {
            table #recordings {
                caption { "Recorded calls, newest first. Times in " (shell.zone_name) "." }
                thead { tr {
                    th scope="col" { "Start" }
                    th scope="col" { "Caller" }
                    th scope="col" { "Callee" }
                    th.num scope="col" { "Duration" }
                    th scope="col" { "Recording" }
                    th scope="col" { "Call" }
                    @if admin { th scope="col" { span.help { "Actions" } } }
                } }
                tbody {
                    @for item in &items {
                        @let id = text(item, "id");
                        tr id=(format!("rec-{id}")) {
                            td { (started(item)) }
                            td { (text(item, "caller")) }
                            td { (text(item, "callee")) }
                            td.num { (duration(item["duration"].as_u64().unwrap_or(0))) }
                            td { (player(&id, item["duration"].as_u64().unwrap_or(0))) }
                            td { a href=(format!("/console/cdrs?session={}", text(item, "session_id"))) { "The call" } }
                            @if admin {
                                td { (action_button(&format!("/console/recordings/{id}/delete"), &csrf, "Delete",
                                    &format!("Delete the recording of {} → {}", text(item, "caller"), text(item, "callee")))) }
                            }
                        }
                    }
                    @if items.is_empty() { tr.empty { td colspan=(if admin { 7 } else { 6 }) { "No recordings match." } } }
                }
            }
        }
        nav.actions aria-label="Pages" {
            @if params.contains_key("after") { a href=(format!("{PATH}?{}", query(&[]))) { "First page" } }
            @if let Some(next) = next { a href=(format!("{PATH}?{next}")) rel="next" { "Older recordings" } }
        }
    };
    Ok(shell.page("Recordings", PATH, body).into_response())
}

/// The WAV file, as `GET /api/recordings/{id}/download` serves it
/// (`Range` included), for the session's principal.
async fn audio(
    State(state): State<ApiState>,
    console: Console,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = scope(&state, &shell).await?;
    Ok(crate::api::recordings::download(State(state), scope, Path(id), headers).await?)
}

async fn delete(
    State(state): State<ApiState>,
    console: Console,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let scope = scope(&state, &shell).await?;
    crate::api::recordings::delete(State(state), scope, Path(id)).await?;
    Ok(Redirect::to(PATH).into_response())
}
