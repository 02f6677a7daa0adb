//! Call recordings (SPEC §7):
//!
//! | route | what |
//! |---|---|
//! | `GET /api/recordings?from=&to=&number=&top=&after=` | the tenant's recordings, newest first |
//! | `GET /api/recordings/{id}` | one recording |
//! | `GET /api/recordings/{id}/download` | the WAV file; `Range: bytes=…` answers 206 so a player can seek |
//! | `DELETE /api/recordings/{id}` | the row, then the file (Admin) |
//!
//! Who sees what: the tenant's `Admin` and `QueueManager` every recording
//! of the tenant; a `StandardUser` only recordings of calls its extension
//! placed or took (caller or callee); the system admin names the tenant in
//! `X-Tenant-Id`. Another tenant's id, or a call that is not the user's,
//! answers 404. `after` is the `id` of the last item of the previous page
//! (keyset paging by start time, then id).
//!
//! The console's recordings page and player call these handlers with the
//! console session's scope (`console/pages/recordings.rs`), so a browser
//! plays a recording with its session cookie and the same rules.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::PathBuf;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cdr::{Id, UnixMillis};
use serde_json::{Value, json};
use store::{Recording, RecordingFilter};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::openapi::schema::*;
use super::resource::{MAX_TOP, Paging, Scope, rfc3339};
use super::{Api, ApiError, ApiState, Doc, Role};

/// Bytes read from the file per body chunk.
const CHUNK: usize = 64 * 1024;

impl Api {
    /// The recording routes with their documentation.
    pub fn recordings(self) -> Self {
        let recording = object(
            &[
                ("id", id()),
                ("session_id", id()),
                ("caller", string()),
                ("callee", string()),
                ("started_at", date_time()),
                ("duration", non_negative()),
                ("duration_ms", non_negative()),
                ("size", non_negative()),
                ("url", text("The authenticated download link.")),
            ],
            &[
                "id",
                "session_id",
                "caller",
                "callee",
                "started_at",
                "duration",
                "url",
            ],
        );
        self.get(
            "/api/recordings",
            list,
            Doc::new(
                "Recordings",
                "List the tenant's recordings, newest first (StandardUser: own calls only)",
            )
            .query("from", date_time(), "Started at or after (RFC 3339).")
            .query("to", date_time(), "Started before (RFC 3339).")
            .query("number", string(), "Caller or callee is this number.")
            .query(
                "top",
                int_range(1, i64::from(MAX_TOP)),
                "Page size (default 100).",
            )
            .query("after", id(), "The id of the previous page's last item.")
            .tenant_scoped()
            .json(
                200,
                object(
                    &[
                        ("count", non_negative()),
                        ("items", array(recording.clone())),
                    ],
                    &["count", "items"],
                ),
            ),
        )
        .get(
            "/api/recordings/{id}",
            detail,
            Doc::new("Recordings", "Read one recording")
                .tenant_scoped()
                .json(200, recording),
        )
        .get(
            "/api/recordings/{id}/download",
            download,
            Doc::new(
                "Recordings",
                "Download the WAV file (PCM16 8 kHz stereo: left caller, right callee)",
            )
            .header(
                "Range",
                string(),
                "`bytes=first-last`, `bytes=first-` or `bytes=-suffix`: answers 206.",
            )
            .tenant_scoped()
            .content(200, "audio/wav", string())
            .content(206, "audio/wav", string()),
        )
        .delete(
            "/api/recordings/{id}",
            delete,
            Doc::new("Recordings", "Delete a recording and its file (Admin)")
                .tenant_scoped()
                .empty(204),
        )
    }
}

impl ApiState {
    /// Where recordings live (set once at start-up); files are named by
    /// the path stored with each row.
    pub fn set_recordings_dir(&self, dir: PathBuf) {
        let _ = self.0.recordings_dir.set(dir);
    }

    /// Deletes a deleted tenant's recording files: the directory named by
    /// its id under the recordings directory (its rows went with the
    /// tenant, `store::delete_tenant`). Failures are logged; the tenant
    /// stays deleted.
    pub(crate) async fn delete_tenant_recordings(&self, tenant: cdr::TenantId) {
        let Some(dir) = self.0.recordings_dir.get() else {
            return;
        };
        let dir = dir.join(tenant.to_string());
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => tracing::info!(tenant_id = %tenant, "tenant's recordings deleted"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(tenant_id = %tenant, dir = %dir.display(), error = %e, "tenant's recordings not deleted")
            }
        }
    }

    fn recording_file(&self, r: &Recording) -> Result<PathBuf, ApiError> {
        let dir = self
            .0
            .recordings_dir
            .get()
            .ok_or_else(|| ApiError::internal("the recordings directory is not configured"))?;
        // Stored paths are written by the PBX, but never let one climb out.
        if r.path
            .split(['/', '\\'])
            .any(|part| part == ".." || part.is_empty())
        {
            return Err(ApiError::internal("recording path is not relative"));
        }
        Ok(dir.join(&r.path))
    }
}

/// Who may read recordings (StandardUser: its own calls).
pub(crate) const READERS: [Role; 3] = [Role::Admin, Role::QueueManager, Role::StandardUser];

/// What a principal may see: everything of the tenant, or (StandardUser)
/// calls of its own extension.
async fn own_extension(state: &ApiState, scope: &Scope) -> Result<Option<String>, ApiError> {
    scope.require(&READERS)?;
    scope.standard_user_extension(state).await
}

fn view(r: &Recording) -> Value {
    json!({
        "id": r.id.to_string(),
        "session_id": r.session_id.to_string(),
        "caller": r.caller,
        "callee": r.callee,
        "started_at": rfc3339(r.started_at),
        "duration": r.duration_ms / 1000,
        "duration_ms": r.duration_ms,
        "size": r.size_bytes,
        "url": format!("/api/recordings/{}/download", r.id),
    })
}

fn time_param(query: &HashMap<String, String>, name: &str) -> Result<Option<UnixMillis>, ApiError> {
    query
        .get(name)
        .map(|v| {
            store::query::filter::parse_time(v.trim())
                .and_then(|ms| u64::try_from(ms).ok())
                .map(UnixMillis)
                .ok_or_else(|| ApiError::validate(name, "must be an RFC 3339 time"))
        })
        .transpose()
}

pub(crate) async fn list(
    State(state): State<ApiState>,
    scope: Scope,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let own = own_extension(&state, &scope).await?;
    // `top` as every list reads it (keyset paging here: `skip` unused).
    let top = Paging::of(&query)?.top;
    let after = match query.get("after") {
        None => None,
        Some(v) => {
            let id: Id = v
                .parse()
                .map_err(|_| ApiError::validate("after", "must be a recording id"))?;
            let r = state
                .store
                .recording(scope.tenant_id, id)
                .await?
                .ok_or_else(|| ApiError::validate("after", "names no recording of this tenant"))?;
            Some((r.started_at, r.id))
        }
    };
    let number = query.get("number").map(|n| n.trim().to_owned());
    if number.as_deref() == Some("") {
        return Err(ApiError::validate("number", "must not be empty"));
    }
    let filter = RecordingFilter {
        from: time_param(&query, "from")?,
        to: time_param(&query, "to")?,
        number,
        own,
        after,
    };
    let items: Vec<Value> = state
        .store
        .recordings(scope.tenant_id, &filter, top)
        .await?
        .iter()
        .map(view)
        .collect();
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

/// The recording, if this principal may see it (404 otherwise).
async fn visible(state: &ApiState, scope: &Scope, id: &str) -> Result<Recording, ApiError> {
    let own = own_extension(state, scope).await?;
    let id: Id = id.parse().map_err(|_| ApiError::not_found("recording"))?;
    let r = state
        .store
        .recording(scope.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("recording"))?;
    match own {
        Some(ext) if r.caller != ext && r.callee != ext => Err(ApiError::not_found("recording")),
        _ => Ok(r),
    }
}

async fn detail(
    State(state): State<ApiState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = visible(&state, &scope, &id).await?;
    Ok(Json(view(&r)))
}

pub(crate) async fn delete(
    State(state): State<ApiState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    scope.require(&[Role::Admin])?;
    let id: Id = id.parse().map_err(|_| ApiError::not_found("recording"))?;
    let r = state
        .store
        .delete_recording(scope.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("recording"))?;
    // The row is gone; a file already missing is not an error.
    let path = state.recording_file(&r)?;
    if let Err(e) = tokio::fs::remove_file(&path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "recording file not deleted");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `Range: bytes=…` against a file of `len` bytes: the inclusive range to
/// send, `Ok(None)` for the whole file, `Err(())` when unsatisfiable.
fn byte_range(header: Option<&HeaderValue>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = header.and_then(|h| h.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        // Another unit: ignore the header (RFC 9110 §14.2).
        return Ok(None);
    };
    // One range only; several are answered with the first.
    let spec = spec.split(',').next().unwrap_or("").trim();
    let (first, last) = spec.split_once('-').ok_or(())?;
    let range = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (first, "") => (first.parse().map_err(|_| ())?, len.saturating_sub(1)),
        (first, last) => {
            let first: u64 = first.parse().map_err(|_| ())?;
            let last: u64 = last.parse().map_err(|_| ())?;
            if last < first {
                return Err(());
            }
            (first, last.min(len.saturating_sub(1)))
        }
    };
    if range.0 >= len {
        return Err(());
    }
    Ok(Some(range))
}

pub(crate) async fn download(
    State(state): State<ApiState>,
    scope: Scope,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let r = visible(&state, &scope, &id).await?;
    let path = state.recording_file(&r)?;
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found("recording file"));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let (status, first, last) = match byte_range(headers.get(header::RANGE), len) {
        Ok(None) => (StatusCode::OK, 0, len.saturating_sub(1)),
        Ok(Some((first, last))) => (StatusCode::PARTIAL_CONTENT, first, last),
        Err(()) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response());
        }
    };
    let count = if len == 0 { 0 } else { last - first + 1 };
    file.seek(SeekFrom::Start(first))
        .await
        .map_err(ApiError::internal)?;
    // Stream the range in chunks: a long call's file never sits in memory.
    let body = futures_util::stream::unfold((file, count), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
        byte_range(Some(&HeaderValue::from_str(v).unwrap()), len)
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range(None, 100), Ok(None));
        assert_eq!(range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(range("bytes=-500", 100), Ok(Some((0, 99))));
        assert_eq!(range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(range("bytes=0-0, 5-6", 100), Ok(Some((0, 0))));
        assert_eq!(range("items=0-9", 100), Ok(None));
        assert_eq!(range("bytes=100-", 100), Err(()));
        assert_eq!(range("bytes=9-1", 100), Err(()));
        assert_eq!(range("bytes=-0", 100), Err(()));
        assert_eq!(range("bytes=x-1", 100), Err(()));
        assert_eq!(range("bytes=5", 100), Err(()));
        assert_eq!(range("bytes=0-", 0), Err(()));
    }
}
