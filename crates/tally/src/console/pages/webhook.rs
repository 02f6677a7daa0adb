//! The Event URL page (SPEC §5, §8): the tenant's webhook configuration,
//! a test send, the delivery log with retry, and replay from a sequence.
//! Each action is the REST handler of `/api/tenant/cdr_event` and
//! `/api/tenant/webhook/…`, called with the page's principal and tenant.
//!
//! Secrets are write-only: the password, token and signing secret fields
//! are always empty; left empty they send `********`, which REST reads as
//! "keep the stored one".

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use cdr::{EventType, TenantId};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::{json, tenant_headers, text};
use crate::api::webhooks;
use crate::api::{ApiError, ApiState, Role};
use crate::console::Console;
use crate::console::layout::{PageError, Shell, csrf_field, form_error, notice};

const PATH: &str = "/console/webhook";
const KEEP: &str = "********";
const MODES: [(&str, &str); 4] = [
    ("DISABLE", "None"),
    ("BASIC", "HTTP Basic"),
    ("DIGEST", "HTTP Digest"),
    ("BEARER", "Bearer token"),
];
/// Deliveries shown.
const LOG_ROWS: u32 = 25;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(PATH, get(page).post(save))
        .route("/console/webhook/test", post(test))
        .route("/console/webhook/replay", post(replay))
        .route("/console/webhook/deliveries/{id}/retry", post(retry))
}

async fn tenant(state: &ApiState, shell: &Shell) -> Result<TenantId, PageError> {
    shell.tenant_for(state, &[Role::Admin]).await
}

fn config_form(csrf: &str, view: &Value) -> Markup {
    let mode = text(view, "auth");
    let types: Option<Vec<String>> = view["event_types"].as_array().map(|a| {
        a.iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect()
    });
    let secret_set = |field: &str| !text(view, field).is_empty();
    html! {
        form.stack method="post" action=(PATH) aria-labelledby="config" {
            (csrf_field(csrf))
            label { input type="checkbox" name="enabled" value="true" checked[view["enabled"] == true]; " Send events to this URL" }
            label for="w-url" { "Event URL" }
            input #w-url name="url" type="url" value=(text(view, "url")) placeholder="https://example.com/tally-events";
            label for="w-auth" { "Authentication" }
            select #w-auth name="auth" data-auth-mode {
                @for (value, label) in MODES { option value=(value) selected[mode == value] { (label) } }
            }
            fieldset data-auth-fields="BASIC DIGEST" {
                legend { "User and password (Basic, Digest)" }
                label for="w-user" { "User" }
                input #w-user name="username" type="text" value=(text(view, "username")) autocomplete="off";
                label for="w-pass" { "Password" }
                input #w-pass name="password" type="password" autocomplete="new-password"
                    placeholder=(if secret_set("password") { "stored: leave empty to keep" } else { "" });
            }
            fieldset data-auth-fields="BEARER" {
                legend { "Bearer token" }
                label for="w-token" { "Token" }
                input #w-token name="token" type="password" autocomplete="off"
                    placeholder=(if secret_set("token") { "stored: leave empty to keep" } else { "" });
            }
            label for="w-secret" { "Signing secret (whsec_…)" }
            input #w-secret name="secret" type="password" autocomplete="off"
                placeholder=(if secret_set("secret") { "stored: leave empty to keep" } else { "none: events are not signed" });
            fieldset {
                legend { "Events to send" }
                @for t in EventType::ALL {
                    label { input type="checkbox" name="event_types" value=(t.as_str())
                        checked[types.as_ref().is_none_or(|list| list.iter().any(|x| x == t.as_str()))]; " " (t.as_str()) }
                }
            }
            div.actions { button type="submit" { "Save" } }
        }
    }
}

fn deliveries_table(csrf: &str, shell: &Shell, items: &[Value]) -> Markup {
    html! {
        div.scroll {
            table aria-labelledby="log" {
                thead { tr {
                    th scope="col" { "Created (UTC)" } th scope="col" { "Event" } th.num scope="col" { "Sequence" }
                    th scope="col" { "Status" } th.num scope="col" { "Attempts" } th.num scope="col" { "HTTP status" }
                    th scope="col" { "Response / error" } th scope="col" { span.help { "Actions" } }
                } }
                tbody {
                    @for d in items {
                        @let last = d["log"].as_array().and_then(|l| l.last()).cloned().unwrap_or(Value::Null);
                        tr {
                            td { (text(d, "created_at")) }
                            td { (text(d, "event_type")) }
                            td.num { (text(d, "sequence")) }
                            td class=(format!("status-{}", text(d, "status"))) { (text(d, "status")) }
                            td.num { (text(d, "attempts")) }
                            td.num { (text(d, "last_http_status")) }
                            td { code { (excerpt(&text(&last, "response"), &text(d, "last_error"))) } }
                            td {
                                form.inline method="post" action=(format!("/console/webhook/deliveries/{}/retry", text(d, "id"))) {
                                    (csrf_field(csrf))
                                    button.secondary type="submit" aria-label=(format!("Retry delivery of event {}", text(d, "sequence"))) { "Retry" }
                                }
                            }
                        }
                    }
                    @if items.is_empty() { tr { td colspan="8" { "No deliveries yet." } } }
                }
            }
        }
        p.help { "Times in UTC; call times elsewhere are in " (shell.zone_name) "." }
    }
}

/// At most 200 characters of the response body (or the error).
fn excerpt(response: &str, error: &str) -> String {
    let text = if response.is_empty() { error } else { response };
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

async fn render(
    state: ApiState,
    shell: Shell,
    message: Option<Markup>,
) -> Result<Response, PageError> {
    let tenant = tenant(&state, &shell).await?;
    let view = webhooks::cdr_event_view(&state, tenant).await?;
    let query = HashMap::from([("top".to_owned(), LOG_ROWS.to_string())]);
    let log = json(
        webhooks::deliveries(
            State(state.clone()),
            shell.console.principal,
            tenant_headers(tenant),
            Query(query),
        )
        .await?,
    );
    let items = log["items"].as_array().cloned().unwrap_or_default();
    let csrf = shell.console.csrf.clone();
    let disabled = text(&view, "disabled_reason");
    let body = html! {
        h1 { "Event URL" }
        @if let Some(m) = message { (m) }
        @if !disabled.is_empty() {
            p.error role="alert" { "Sending stopped: " (disabled) ". Save the configuration to start again." }
        }
        h2 #config { "Configuration" }
        (config_form(&csrf, &view))
        h2 { "Test" }
        form.inline method="post" action="/console/webhook/test" {
            (csrf_field(&csrf))
            button type="submit" { "Send test event" }
        }
        h2 #log { "Deliveries" }
        p.help { (text(&log, "count")) " deliveries; the newest " (LOG_ROWS) " are shown." }
        (deliveries_table(&csrf, &shell, &items))
        h2 #replay-heading { "Replay" }
        form.stack method="post" action="/console/webhook/replay" aria-labelledby="replay-heading" {
            (csrf_field(&csrf))
            label for="from-sequence" { "Send every event after sequence" }
            input #from-sequence name="from_sequence" type="number" min="0" required;
            div.actions { button type="submit" { "Replay" } }
        }
    };
    Ok(shell.page("Event URL", PATH, body).into_response())
}

/// A REST error a person can fix is shown on the page; others are pages.
async fn outcome(
    state: ApiState,
    shell: Shell,
    result: Result<Markup, ApiError>,
) -> Result<Response, PageError> {
    match result {
        Ok(message) => render(state, shell, Some(message)).await,
        Err(e) => {
            let (status, message) = super::fixable(e)?;
            Ok(super::with_status(
                render(state, shell, Some(form_error(&message))).await?,
                status,
            ))
        }
    }
}

async fn page(State(state): State<ApiState>, console: Console) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    render(state, shell, None).await
}

/// The form as the `cdr_event` body REST reads; `stored` is the current
/// view, which says which secrets exist (an empty field keeps those).
fn config_body(form: &[(String, String)], stored: &Value) -> Value {
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let kept = |name: &str| match get(name) {
        "" if !text(stored, name).is_empty() => json!(KEEP),
        "" if name == "secret" => Value::Null,
        v => json!(v),
    };
    let types: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "event_types")
        .map(|(_, v)| v.as_str())
        .collect();
    json!({
        "enabled": get("enabled") == "true",
        "url": get("url"),
        "auth": get("auth"),
        "username": get("username"),
        "password": kept("password"),
        "token": kept("token"),
        "secret": kept("secret"),
        // Every type ticked is "all", which also takes types added later.
        "event_types": if types.len() == EventType::ALL.len() { Value::Null } else { json!(types) },
    })
}

async fn save(
    State(state): State<ApiState>,
    console: Console,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let tenant = tenant(&state, &shell).await?;
    let stored = webhooks::cdr_event_view(&state, tenant).await?;
    let result = webhooks::put_cdr_event(&state, tenant, &config_body(&form, &stored))
        .await
        .map(|()| notice("Saved."));
    outcome(state, shell, result).await
}

async fn test(State(state): State<ApiState>, console: Console) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let tenant = tenant(&state, &shell).await?;
    let result = webhooks::send_test(
        State(state.clone()),
        shell.console.principal,
        tenant_headers(tenant),
    )
    .await
    .map(|answer| {
        let sent = json(answer);
        let status = text(&sent, "http_status");
        if sent["delivered"] == true {
            notice(&format!("Test event delivered (HTTP {status})."))
        } else {
            form_error(&format!(
                "Test event not delivered: {} {} {}",
                text(&sent, "outcome"),
                status,
                excerpt(&text(&sent, "response"), &text(&sent, "error"))
            ))
        }
    });
    outcome(state, shell, result).await
}

async fn retry(
    State(state): State<ApiState>,
    console: Console,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let tenant = tenant(&state, &shell).await?;
    let result = webhooks::retry(
        State(state.clone()),
        shell.console.principal,
        tenant_headers(tenant),
        Path(id),
    )
    .await
    .map(|_| notice("The delivery is being sent again."));
    outcome(state, shell, result).await
}

async fn replay(
    State(state): State<ApiState>,
    console: Console,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    let tenant = tenant(&state, &shell).await?;
    let query = form
        .get("from_sequence")
        .map(|v| HashMap::from([("from_sequence".to_owned(), v.trim().to_owned())]))
        .unwrap_or_default();
    let result = webhooks::replay(
        State(state.clone()),
        shell.console.principal,
        tenant_headers(tenant),
        Query(query),
    )
    .await
    .map(|(_, answer)| {
        let scheduled = text(&json(answer), "scheduled");
        notice(&format!("{scheduled} events scheduled to be sent again."))
    });
    outcome(state, shell, result).await
}
