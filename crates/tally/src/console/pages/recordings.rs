//! The recordings page. Recordings are the media issue's
//! (`/api/recordings`); until they exist the page says so. A CDR's
//! recording, when present, already plays on its detail page.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::html;

use crate::api::ApiState;
use crate::api::cdrs::READERS;
use crate::console::Console;
use crate::console::layout::{PageError, Shell};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/console/recordings", get(page))
}

async fn page(State(state): State<ApiState>, console: Console) -> Result<Response, PageError> {
    let shell = Shell::load(&state, console).await?;
    shell.tenant_for(&state, &READERS).await?;
    let body = html! {
        h1 { "Recordings" }
        p { "Recordings are not available yet: this Tally does not record calls. \
             When recording arrives, recorded calls are listed here and play on their call's page." }
    };
    Ok(shell
        .page("Recordings", "/console/recordings", body)
        .into_response())
}
