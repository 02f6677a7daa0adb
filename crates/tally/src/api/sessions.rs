//! `/api/sessions`: call control (SPEC §7). The engine decides; these
//! handlers check who asks, read the body, and carry the command to the
//! shard and its answer back (`pbx::Control`, `Provisioner::control`).
//!
//! ```text
//! POST /api/sessions               {"caller", "callee", "user_data"?, "caller_id"?} → 201 {"id"}
//! GET  /api/sessions               {count, items: [session]}: calls in progress, oldest first
//! GET  /api/sessions/{id}          one call in progress
//! POST /api/sessions/{id}/destroy  204: every leg hung up (CANCEL ringing, BYE answered)
//! ```
//!
//! Who: the tenant `Admin` (or the system admin with `X-Tenant-Id`) for
//! any call; a `StandardUser` originates only with its own extension as
//! the caller, and sees and destroys only calls its extension is in (as
//! caller or rung); a `QueueManager` reads.
//!
//! # Decisions
//!
//! - **Refusals change nothing** (no INVITE, no CDR): an unknown caller or
//!   callee, or the callee being the caller, is `400 VALIDATE_FAILED`
//!   naming the field; a caller with no registered device (or disabled) is
//!   `409 CALLER_UNAVAILABLE`, one at its call limit `409 CALLER_BUSY`:
//!   the request was right, the caller cannot be rung now. A node that is
//!   stopping or overloaded answers `503` with `Retry-After`. Once a
//!   device was INVITEd, everything else (nobody answers, the callee is
//!   busy) is in the call's CDR.
//! - **Destroy's CDR** says `ended_reason: None` (no party hung up); see
//!   `pbx::engine::control`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use cdr::SessionId;
use pbx::{Control, ControlReply, OriginateError, SessionView};
use serde_json::{Value, json};

use super::auth::ClientAddr;
use super::openapi::schema::*;
use super::resource::{Body, Scope, path_id, rfc3339};
use super::{Api, ApiError, ApiState, Doc, Role};

const FIELDS: &[&str] = &["caller", "callee", "user_data", "caller_id"];
const PLACERS: &[Role] = &[Role::Admin, Role::StandardUser];
const READERS: &[Role] = &[Role::Admin, Role::QueueManager, Role::StandardUser];
/// Longest `user_data` echoed into events and CDRs.
const MAX_USER_DATA: usize = 1024;

impl Api {
    /// The `/api/sessions` routes and their documentation.
    pub fn sessions(self) -> Self {
        let leg = object(
            &[
                (
                    "role",
                    one_of_strings(&["caller", "caller_device", "callee"]),
                ),
                ("target_id", nullable(id())),
                ("number", string()),
                ("destination", string()),
                (
                    "state",
                    one_of_strings(&["calling", "ringing", "answered", "ended"]),
                ),
            ],
            &["role", "target_id", "number", "destination", "state"],
        );
        let session = object(
            &[
                ("id", id()),
                ("caller", string()),
                ("callee", string()),
                (
                    "state",
                    one_of_strings(&["ringing", "calling_callee", "answered"]),
                ),
                ("originated", boolean()),
                ("user_data", string()),
                ("started_at", date_time()),
                ("legs", array(leg)),
            ],
            &[
                "id",
                "caller",
                "callee",
                "state",
                "originated",
                "user_data",
                "started_at",
                "legs",
            ],
        );
        self.post(
            "/api/sessions",
            create,
            Doc::new("Sessions", "Originate a call: ring the caller, then the callee (Admin; StandardUser as the caller)")
                .describe(
                    "The caller's registered devices are rung first; when one answers, the callee is \
                     called as if the caller dialled it, and the two are bridged. `user_data` is echoed \
                     in `call_start` and `call_cdr`. 400 names an unknown `caller` or `callee`; 409 \
                     `CALLER_UNAVAILABLE` (no registered device) or `CALLER_BUSY` (at its call limit) \
                     places no call and records nothing.",
                )
                .tenant_scoped()
                .json_body(closed_object(
                    &[
                        ("caller", text("The extension rung first.")),
                        ("callee", text("The number it is connected to.")),
                        ("user_data", text("At most 1024 characters, echoed in the events and the CDR.")),
                        ("caller_id", text("The display name the callee is shown (default: the caller's).")),
                    ],
                    &["caller", "callee"],
                ))
                .json(201, object(&[("id", id())], &["id"])),
        )
        .get(
            "/api/sessions",
            list,
            Doc::new("Sessions", "The tenant's calls in progress with their legs (StandardUser: its own)")
                .tenant_scoped()
                .json(200, page(session.clone())),
        )
        .get(
            "/api/sessions/{id}",
            get,
            Doc::new("Sessions", "One call in progress")
                .tenant_scoped()
                .json(200, session),
        )
        .post(
            "/api/sessions/{id}/destroy",
            destroy,
            Doc::new("Sessions", "Hang up every leg of a call (Admin; StandardUser its own)")
                .describe("Ringing legs are CANCELled, answered ones get BYE; the CDR follows with `ended_reason: None`.")
                .tenant_scoped()
                .empty(204),
        )
    }
}

fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

/// A `caller`/`callee` number: 1 to 64 characters, no spaces or controls.
fn number<'a>(body: &'a Body, field: &str) -> Result<&'a str, ApiError> {
    let n = body.required(field)?;
    if n.is_empty() || n.len() > 64 || n.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::validate(
            field,
            "must be 1 to 64 characters without spaces or control characters",
        ));
    }
    Ok(n)
}

/// The StandardUser's own extension (`None` for the other roles).
async fn own_extension(state: &ApiState, scope: &Scope) -> Result<Option<String>, ApiError> {
    scope.standard_user_extension(state).await
}

/// Whether `own` (a StandardUser's extension) is in the call.
fn involves(v: &SessionView, own: &str) -> bool {
    v.caller == own || v.callee == own || v.legs.iter().any(|l| l.number == own)
}

fn view(v: &SessionView) -> Value {
    let legs: Vec<Value> = v
        .legs
        .iter()
        .map(|l| {
            json!({
                "role": l.role.as_str(),
                "target_id": l.target_id.map(|t| t.to_string()),
                "number": l.number,
                "destination": l.destination,
                "state": l.state.as_str(),
            })
        })
        .collect();
    json!({
        "id": v.id.to_string(),
        "caller": v.caller,
        "callee": v.callee,
        "state": v.state.as_str(),
        "originated": v.originated,
        "user_data": v.user_data,
        "started_at": rfc3339(v.started_at),
        "legs": legs,
    })
}

async fn control(state: &ApiState, command: Control) -> Result<ControlReply, ApiError> {
    Ok(state.provisioner.control(command).await?)
}

fn unexpected(reply: ControlReply) -> ApiError {
    ApiError::internal(format!("unexpected engine reply {reply:?}"))
}

fn refused(e: OriginateError) -> ApiError {
    match e {
        OriginateError::UnknownTenant => ApiError::not_found("tenant"),
        OriginateError::UnknownCaller => {
            ApiError::validate("caller", "is not an extension of the tenant")
        }
        OriginateError::UnknownCallee => {
            ApiError::validate("callee", "is not a number of the tenant")
        }
        OriginateError::CalleeIsCaller => ApiError::validate("callee", "is the caller"),
        OriginateError::CallerUnavailable => ApiError::conflict(
            "CALLER_UNAVAILABLE",
            "caller",
            "the caller has no registered device (or is disabled): no call was placed",
        ),
        OriginateError::CallerBusy => ApiError::conflict(
            "CALLER_BUSY",
            "caller",
            "the caller is in as many calls as it may be: no call was placed",
        ),
        OriginateError::NotAccepting => ApiError::unavailable(e),
    }
}

pub async fn create(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    scope.require(PLACERS)?;
    let body = Body::parse(&body, FIELDS)?;
    let caller = number(&body, "caller")?.to_owned();
    let callee = number(&body, "callee")?.to_owned();
    let user_data = body.string("user_data")?.unwrap_or_default().to_owned();
    if user_data.chars().count() > MAX_USER_DATA || user_data.chars().any(char::is_control) {
        return Err(ApiError::validate(
            "user_data",
            format!("must be at most {MAX_USER_DATA} characters without control characters"),
        ));
    }
    let caller_id = body.string("caller_id")?.map(str::to_owned);
    if let Some(shown) = &caller_id
        && (shown.chars().count() > 64 || shown.chars().any(char::is_control))
    {
        return Err(ApiError::validate(
            "caller_id",
            "must be at most 64 characters without control characters",
        ));
    }
    if let Some(own) = own_extension(&state, &scope).await?
        && own != caller
    {
        return Err(ApiError::forbidden_field(
            "caller",
            "a StandardUser may only place calls with itself as the caller",
        ));
    }
    let command = Control::Originate(pbx::Originate {
        tenant: scope.tenant_id,
        caller: caller.clone(),
        callee: callee.clone(),
        user_data,
        caller_id,
    });
    let id = match control(&state, command).await? {
        ControlReply::Originated(Ok(id)) => id,
        ControlReply::Originated(Err(e)) => return Err(refused(e)),
        other => return Err(unexpected(other)),
    };
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "session.originate",
            &format!("session:{id}"),
            source,
            json!({ "caller": caller, "callee": callee }),
        )
        .await;
    Ok((StatusCode::CREATED, Json(json!({ "id": id.to_string() }))))
}

pub async fn list(State(state): State<ApiState>, scope: Scope) -> Result<Json<Value>, ApiError> {
    scope.require(READERS)?;
    let own = own_extension(&state, &scope).await?;
    let views = match control(
        &state,
        Control::ListSessions {
            tenant: scope.tenant_id,
        },
    )
    .await?
    {
        ControlReply::Sessions(v) => v,
        other => return Err(unexpected(other)),
    };
    let items: Vec<Value> = views
        .iter()
        .filter(|v| own.as_deref().is_none_or(|own| involves(v, own)))
        .map(view)
        .collect();
    Ok(Json(json!({ "count": items.len(), "items": items })))
}

/// The call in progress the path names, if the principal may see it.
async fn find(
    state: &ApiState,
    scope: &Scope,
    params: &HashMap<String, String>,
) -> Result<SessionView, ApiError> {
    let id: SessionId = path_id(params, "id", "session")?;
    let own = own_extension(state, scope).await?;
    let command = Control::Session {
        tenant: scope.tenant_id,
        id,
    };
    match control(state, command).await? {
        ControlReply::Session(Some(v)) if own.as_deref().is_none_or(|own| involves(&v, own)) => {
            Ok(v)
        }
        ControlReply::Session(_) => Err(ApiError::not_found("session")),
        other => Err(unexpected(other)),
    }
}

pub async fn get(
    State(state): State<ApiState>,
    scope: Scope,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    scope.require(READERS)?;
    Ok(Json(view(&find(&state, &scope, &params).await?)))
}

pub async fn destroy(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    scope.require(PLACERS)?;
    let v = find(&state, &scope, &params).await?;
    let command = Control::Destroy {
        tenant: scope.tenant_id,
        id: v.id,
    };
    match control(&state, command).await? {
        ControlReply::Destroyed(true) => {}
        // It ended meanwhile.
        ControlReply::Destroyed(false) => return Err(ApiError::not_found("session")),
        other => return Err(unexpected(other)),
    }
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "session.destroy",
            &format!("session:{}", v.id),
            source,
            json!({ "caller": v.caller, "callee": v.callee }),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
