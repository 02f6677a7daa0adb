//! A tenant's webhook allow-list (issue 17 finding 14):
//!
//! | route | what |
//! |---|---|
//! | `GET /api/tenants/{tenant_id}/webhook_allow` | `{"allow": ["10.0.0.0/8", …]}` |
//! | `PUT /api/tenants/{tenant_id}/webhook_allow` | replace it (same body) |
//!
//! System admin only: a tenant's `Admin` (or API key) gets 403, so no
//! tenant can open its own way into the PBX's network. The blocks are the
//! non-public addresses (see `delivery::webhook::guard`) that tenant's
//! webhook may reach on top of the node's `[webhooks] allow`; the SSRF
//! guard applies both when the URL is set and at every attempt. At most
//! [`MAX_ENTRIES`] addresses or CIDR blocks.

use ::delivery::webhook::Cidr;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use cdr::TenantId;
use serde_json::{Value, json};

use super::openapi::schema::*;
use super::resource::system_admin;
use super::{Api, ApiError, ApiState, Doc, Principal};
use crate::api::auth::ClientAddr;

/// Most entries in one tenant's list.
pub const MAX_ENTRIES: usize = 32;

fn tenant_id(id: &str) -> Result<TenantId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found("tenant"))
}

pub async fn get(
    State(state): State<ApiState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    system_admin(principal)?;
    let allow = state
        .store
        .tenant_webhook_allow(tenant_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(Json(json!({ "allow": allow })))
}

/// The `allow` field of `body`: addresses or CIDR blocks, in canonical
/// spelling, duplicates dropped.
fn parse(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::validate("body", format!("not JSON: {e}")))?;
    let Value::Object(fields) = body else {
        return Err(ApiError::validate("body", "must be an object"));
    };
    if let Some(unknown) = fields.keys().find(|k| *k != "allow") {
        return Err(ApiError::validate(unknown, "unknown field"));
    }
    let Some(Value::Array(items)) = fields.get("allow") else {
        return Err(ApiError::validate(
            "allow",
            "must be an array of addresses or CIDR blocks",
        ));
    };
    if items.len() > MAX_ENTRIES {
        return Err(ApiError::validate(
            "allow",
            format!("at most {MAX_ENTRIES} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let cidr: Cidr = item
            .as_str()
            .ok_or_else(|| ApiError::validate("allow", "entries must be strings"))?
            .parse()
            .map_err(|e| ApiError::validate("allow", e))?;
        let text = cidr.to_string();
        if !out.contains(&text) {
            out.push(text);
        }
    }
    Ok(out)
}

pub async fn put(
    State(state): State<ApiState>,
    principal: Principal,
    ClientAddr(source): ClientAddr,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    system_admin(principal)?;
    let tenant = tenant_id(&id)?;
    let allow = parse(&body)?;
    if !state.store.set_tenant_webhook_allow(tenant, &allow).await? {
        return Err(ApiError::not_found("tenant"));
    }
    if let Ok(webhooks) = state.webhooks() {
        webhooks.dispatcher.endpoint_changed(tenant);
    }
    state
        .audit(
            Some(tenant),
            &principal.actor(),
            "tenant.webhook_allow",
            &format!("tenant:{tenant}"),
            source,
            json!({ "allow": allow }),
        )
        .await;
    Ok(Json(json!({ "allow": allow })))
}

impl Api {
    /// The routes above with their documentation.
    pub fn webhook_allow(self) -> Self {
        let body = object(
            &[(
                "allow",
                array(text(
                    "An IP address or CIDR block, e.g. `10.0.0.0/8` or `fd00::/8`.",
                )),
            )],
            &["allow"],
        );
        let what = "The non-public addresses this tenant's webhook may reach, on top of \
                    the node's `[webhooks] allow` (SSRF guard). System admin only.";
        self.get(
            "/api/tenants/{tenant_id}/webhook_allow",
            get,
            Doc::new(
                "Tenants",
                "Read a tenant's webhook allow-list (system admin)",
            )
            .describe(what)
            .json(200, body.clone()),
        )
        .put(
            "/api/tenants/{tenant_id}/webhook_allow",
            put,
            Doc::new(
                "Tenants",
                "Set a tenant's webhook allow-list (system admin)",
            )
            .describe(what)
            .json_body(body.clone())
            .json(200, body),
        )
    }
}
