//! Prompts (issue 14): audio a tenant uploads for its IVRs, managed by its
//! `Admin` (or the system admin naming the tenant in `X-Tenant-Id`).
//!
//! ```text
//! GET    /api/prompts                     {count, items: [prompt]}, by name
//! POST   /api/prompts?name=NAME           the WAV as the body (audio/wav) → 201
//! GET    /api/prompts/{prompt_id}
//! DELETE /api/prompts/{prompt_id}         204; 409 while an IVR plays it
//! ```
//!
//! An upload is a WAV of 16-bit PCM, mono, 8000 or 16000 Hz, at most
//! 2,000,000 bytes and 120 s (`VALIDATE_FAILED` naming `body` otherwise,
//! with what is wrong: another format, stereo, another rate, too long).
//! It is stored decoded at 8 kHz under `<data_dir>/prompts/<tenant>/<id>.wav`
//! and, for the other nodes sharing the database, in its row; it is
//! played from memory. Every node loads the prompts it lacks (and drops
//! the deleted ones) every 2 s ([`sync_prompts`]): from its file when it
//! has one, else from the row. `name`: 1–64 characters, unique in the tenant
//! (409 `ALREADY_EXISTS`). The built-in prompts (`menu`, `invalid`,
//! `goodbye`, `please_hold`, `ringback`) need no upload.

use std::collections::HashMap;
use std::path::PathBuf;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::ClientAddr;
use super::openapi::schema::*;
use super::resource::{Scope, path_id, rfc3339};
use super::trunks::{MANAGERS, short_text};
use super::{Api, ApiError, ApiState, Doc};
use crate::clock;
use crate::media::prompts::{Audio, PromptLibrary, decode_wav};

/// A prompt as REST shows it.
#[derive(Serialize)]
pub struct PromptJson {
    id: cdr::Id,
    tenant_id: cdr::TenantId,
    name: String,
    duration_ms: u64,
    size_bytes: u64,
    created_at: String,
}

fn prompt_json(p: store::PromptRow) -> PromptJson {
    PromptJson {
        id: p.id,
        tenant_id: p.tenant_id,
        name: p.name,
        duration_ms: p.duration_ms,
        size_bytes: p.size_bytes,
        created_at: rfc3339(p.created_at),
    }
}

/// Where prompts are kept, and the library calls play them from.
pub struct Prompts {
    pub dir: PathBuf,
    pub library: PromptLibrary,
}

impl ApiState {
    /// Set once at start-up (`serve.rs`).
    pub fn set_prompts(&self, prompts: Prompts) {
        let _ = self.0.prompts.set(prompts);
    }

    /// Deletes a deleted tenant's prompt files (its rows went with the
    /// tenant) and forgets their audio. Failures are logged.
    pub(crate) async fn delete_tenant_prompts(&self, tenant: cdr::TenantId) {
        let Some(p) = self.0.prompts.get() else {
            return;
        };
        let dir = p.dir.join(tenant.to_string());
        if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
            while let Ok(Some(e)) = entries.next_entry().await {
                let id = e.path().file_stem().and_then(|s| s.to_str()?.parse().ok());
                if let Some(id) = id {
                    p.library.remove(id);
                }
            }
        }
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(tenant_id = %tenant, dir = %dir.display(), error = %e, "tenant's prompts not deleted")
            }
        }
    }

    fn prompts(&self) -> Result<&Prompts, ApiError> {
        self.0
            .prompts
            .get()
            .ok_or_else(|| ApiError::unavailable("prompts are not configured on this node"))
    }
}

/// The file of a tenant's prompt.
pub fn prompt_path(dir: &std::path::Path, tenant: cdr::TenantId, id: cdr::Id) -> PathBuf {
    dir.join(tenant.to_string()).join(format!("{id}.wav"))
}

/// Loads every stored prompt into `library` (start-up). A prompt with
/// neither a file here nor audio in its row is logged and skipped: IVRs
/// then play nothing for that greeting.
pub async fn load_all(
    store: &store::Store,
    dir: &std::path::Path,
    library: &PromptLibrary,
) -> Result<usize, store::StoreError> {
    let mut n = 0;
    for p in store.prompts(None).await? {
        n += usize::from(load_one(store, dir, library, &p).await);
    }
    Ok(n)
}

/// Loads prompt `p` into `library`: its file, else its row's audio.
async fn load_one(
    store: &store::Store,
    dir: &std::path::Path,
    library: &PromptLibrary,
    p: &store::PromptRow,
) -> bool {
    let path = prompt_path(dir, p.tenant_id, p.id);
    let wav = match tokio::fs::read(&path).await {
        Ok(bytes) => Some(bytes),
        Err(_) => match store.prompt_audio(p.id).await {
            Ok(audio) => audio,
            Err(e) => {
                tracing::warn!(prompt_id = %p.id, error = %e, "prompt audio not read");
                return false;
            }
        },
    };
    let Some(wav) = wav else {
        tracing::warn!(prompt_id = %p.id, path = %path.display(), "prompt not loaded: no file here and no audio stored");
        return false;
    };
    match decode_wav(&wav) {
        Ok(pcm) => {
            library.insert(p.id, Audio::from_pcm(&pcm));
            true
        }
        Err(e) => {
            tracing::warn!(prompt_id = %p.id, error = %e, "prompt not loaded");
            false
        }
    }
}

/// Keeps `library` in step with the prompts stored by any node: every
/// [`crate::directory::DIRECTORY_SYNC`] it loads the prompts it lacks and
/// drops the deleted ones (a prompt uploaded on another node plays here
/// within seconds). Ends when `stop` turns true.
pub async fn sync_prompts(
    store: store::Store,
    dir: PathBuf,
    library: PromptLibrary,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(crate::directory::DIRECTORY_SYNC);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let stored = match store.prompts(None).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the prompts");
                continue;
            }
        };
        let held = library.ids();
        for p in stored.iter().filter(|p| !held.contains(&p.id)) {
            if load_one(&store, &dir, &library, p).await {
                tracing::info!(prompt_id = %p.id, tenant_id = %p.tenant_id, "prompt loaded from the store");
            }
        }
        for gone in held
            .iter()
            .filter(|id| !stored.iter().any(|p| p.id == **id))
        {
            library.remove(*gone);
        }
    }
}

/// An 8 kHz PCM16 mono WAV of `pcm`.
fn wav_bytes(pcm: &[i16]) -> std::io::Result<Vec<u8>> {
    let mut w = media::wav::WavWriter::new(std::io::Cursor::new(Vec::new()), 1, 8000)?;
    w.write_samples(pcm)?;
    Ok(w.finish()?.into_inner())
}

pub async fn list(State(state): State<ApiState>, scope: Scope) -> Result<Json<Value>, ApiError> {
    scope.require(MANAGERS)?;
    let items: Vec<PromptJson> = state
        .store
        .prompts(Some(scope.tenant_id))
        .await?
        .into_iter()
        .map(prompt_json)
        .collect();
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

pub async fn create(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<(StatusCode, Json<PromptJson>), ApiError> {
    scope.require(MANAGERS)?;
    let name = short_text(
        "name",
        query
            .get("name")
            .ok_or_else(|| ApiError::validate("name", "is required"))?,
        64,
    )?;
    if name.is_empty() {
        return Err(ApiError::validate("name", "must not be empty"));
    }
    let pcm = decode_wav(&body).map_err(|e| ApiError::validate("body", e))?;
    let prompts = state.prompts()?;
    let id = state.provisioner.next_id();
    let path = prompt_path(&prompts.dir, scope.tenant_id, id);
    let bytes = wav_bytes(&pcm).map_err(ApiError::internal)?;
    let size_bytes = bytes.len() as u64;
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(ApiError::internal)?;
    }
    tokio::fs::write(&path, &bytes)
        .await
        .map_err(ApiError::internal)?;
    let row = store::PromptRow {
        id,
        tenant_id: scope.tenant_id,
        name,
        duration_ms: pcm.len() as u64 / 8,
        size_bytes,
        created_at: clock::unix_millis(),
    };
    let written = state.store.insert_prompt(&row, &bytes).await;
    if !matches!(written, Ok(true)) {
        // Nothing half-written: the file goes with the refused row.
        let _ = tokio::fs::remove_file(&path).await;
    }
    if !written? {
        return Err(ApiError::already_exists(
            "name",
            format!("this tenant already has a prompt named {:?}", row.name),
        ));
    }
    prompts.library.insert(id, Audio::from_pcm(&pcm));
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "prompt.create",
            &format!("prompt:{id}"),
            source,
            json!({ "name": row.name, "duration_ms": row.duration_ms }),
        )
        .await;
    Ok((StatusCode::CREATED, Json(prompt_json(row))))
}

async fn find(
    state: &ApiState,
    scope: &Scope,
    params: &HashMap<String, String>,
) -> Result<store::PromptRow, ApiError> {
    let id: cdr::Id = path_id(params, "prompt_id", "prompt")?;
    state
        .store
        .prompt(scope.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("prompt"))
}

pub async fn get(
    State(state): State<ApiState>,
    scope: Scope,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<PromptJson>, ApiError> {
    scope.require(MANAGERS)?;
    Ok(Json(prompt_json(find(&state, &scope, &params).await?)))
}

pub async fn delete(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    scope.require(MANAGERS)?;
    let p = find(&state, &scope, &params).await?;
    match state.store.delete_prompt(scope.tenant_id, p.id).await? {
        store::AppDeletion::Deleted => {}
        store::AppDeletion::NotFound => return Err(ApiError::not_found("prompt")),
        store::AppDeletion::InUse(ivrs) => {
            return Err(ApiError::in_use(
                "prompt_id",
                format!("IVRs play this prompt: {}", ivrs.join(", ")),
            ));
        }
    }
    if let Ok(prompts) = state.prompts() {
        prompts.library.remove(p.id);
        let _ = tokio::fs::remove_file(prompt_path(&prompts.dir, p.tenant_id, p.id)).await;
    }
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "prompt.delete",
            &format!("prompt:{}", p.id),
            source,
            json!({ "name": p.name }),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

impl Api {
    /// The prompt routes with their documentation.
    pub fn prompts(self) -> Self {
        let prompt = object(
            &[
                ("id", id()),
                ("tenant_id", id()),
                ("name", string()),
                ("duration_ms", non_negative()),
                ("size_bytes", non_negative()),
                ("created_at", date_time()),
            ],
            &[
                "id",
                "tenant_id",
                "name",
                "duration_ms",
                "size_bytes",
                "created_at",
            ],
        );
        let (base, one) = ("/api/prompts", "/api/prompts/{prompt_id}");
        self.get(
            base,
            list,
            Doc::new("Prompts", "List the tenant's prompts (Admin)")
                .tenant_scoped()
                .json(200, page(prompt.clone())),
        )
        .post(
            base,
            create,
            Doc::new(
                "Prompts",
                "Upload a prompt: a WAV, 16-bit PCM mono, 8 or 16 kHz, at most 120 s (Admin)",
            )
            .tenant_scoped()
            .query_required("name", text("1 to 64 characters"), "The prompt's name.")
            // Any Content-Type is read as the file (`audio/wav` is what
            // clients send; the schema names the generic binary type).
            .raw_body(
                "application/octet-stream",
                json!({"type": "string", "format": "binary"}),
            )
            .json(201, prompt.clone()),
        )
        .get(
            one,
            get,
            Doc::new("Prompts", "Read a prompt (Admin)")
                .tenant_scoped()
                .json(200, prompt),
        )
        .delete(
            one,
            delete,
            Doc::new(
                "Prompts",
                "Delete a prompt; 409 while an IVR plays it (Admin)",
            )
            .tenant_scoped()
            .empty(204),
        )
    }
}
