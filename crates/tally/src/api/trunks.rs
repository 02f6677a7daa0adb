//! Trunks (issue 10): a tenant's carrier accounts, managed by its `Admin`
//! or by the system admin naming the tenant in `X-Tenant-Id`. Other roles
//! get 403; another tenant's trunk 404.
//!
//! ```text
//! GET    /api/trunks?top=&skip=    {count, items: [trunk]}, by name
//! POST   /api/trunks               {"name", "kind", "host", …} → 201
//! GET    /api/trunks/{trunk_id}
//! PUT    /api/trunks/{trunk_id}    every field (absent optional fields take their
//!                                  defaults, except the password, which is kept)
//! PATCH  /api/trunks/{trunk_id}    the fields given
//! DELETE /api/trunks/{trunk_id}    204, with its DID rules; 409 IN_USE while an
//!                                  outbound rule lists it
//! ```
//!
//! Fields: `name` (1–64 characters, unique in the tenant; the CDR's
//! `trunk_name`), `kind` (`register`: Tally registers with `username`
//! and `password`, both then required; `ip`: the carrier sends from
//! `source_addresses`, then required), `host` (DNS name or IP address),
//! `port` (default 5060), `transport` (`udp`, `tcp`; default `udp`),
//! `username`, `auth_username` (the digest user when it differs),
//! `password` (write-only: responses say `has_password`), `realm`,
//! `from_domain`, `caller_id` (the default outbound caller ID),
//! `country_code` (stripped from inbound numbers), `max_calls` (`null`:
//! no limit), `outbound_proxy` (`host[:port]`), `source_addresses`
//! (addresses or networks, `198.51.100.0/24`), `source_port` (`null`:
//! any), `register_expires` (60–86400 s, default 3600), `enabled`.
//!
//! A host that does not resolve is not refused here (DNS may follow the
//! provisioning); the trunk's live state reports it, and calls routed to
//! it fail over or end in a `fail` CDR.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::ClientAddr;
use super::openapi::schema::*;
use super::resource::{Body, ListQuery, Scope, path_id, rfc3339};
use super::{Api, ApiError, ApiState, Doc, Role, nullable};
use crate::clock;
use crate::trunks::live::{LiveState, LiveStates};

pub const FIELDS: [&str; 18] = [
    "name",
    "kind",
    "host",
    "port",
    "transport",
    "username",
    "auth_username",
    "password",
    "realm",
    "from_domain",
    "caller_id",
    "country_code",
    "max_calls",
    "outbound_proxy",
    "source_addresses",
    "source_port",
    "register_expires",
    "enabled",
];

/// Who may manage trunks and routing rules.
pub(super) const MANAGERS: &[Role] = &[Role::Admin];

const DEFAULT_PORT: u16 = 5060;
const DEFAULT_REGISTER_EXPIRES: u32 = 3600;
const MAX_CALLS: u64 = 100_000;

/// A trunk as REST shows it: everything but the password.
#[derive(Serialize)]
pub struct TrunkJson {
    id: cdr::Id,
    tenant_id: cdr::TenantId,
    name: String,
    kind: String,
    host: String,
    port: u16,
    transport: String,
    username: String,
    auth_username: String,
    has_password: bool,
    realm: String,
    from_domain: String,
    caller_id: String,
    country_code: String,
    max_calls: Option<u32>,
    outbound_proxy: Option<String>,
    source_addresses: Vec<String>,
    source_port: Option<u16>,
    register_expires: u32,
    enabled: bool,
    created_at: String,
    updated_at: String,
}

fn trunk_json(t: store::Trunk) -> TrunkJson {
    TrunkJson {
        id: t.id,
        tenant_id: t.tenant_id,
        name: t.name,
        kind: t.kind,
        host: t.host,
        port: t.port,
        transport: t.transport,
        username: t.username,
        auth_username: t.auth_username,
        has_password: !t.password.is_empty(),
        realm: t.realm,
        from_domain: t.from_domain,
        caller_id: t.caller_id,
        country_code: t.country_code,
        max_calls: t.max_calls,
        outbound_proxy: t.outbound_proxy,
        source_addresses: t.source_addresses,
        source_port: t.source_port,
        register_expires: t.register_expires,
        enabled: t.enabled,
        created_at: rfc3339(t.created_at),
        updated_at: rfc3339(t.updated_at),
    }
}

/// Text of at most `max` characters, no control characters, trimmed.
pub(super) fn short_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    if value.chars().count() > max {
        return Err(ApiError::validate(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::validate(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// A host: an IP address (IPv6 with or without brackets) or a DNS name
/// (RFC 1123 labels), lowercased.
fn host(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim().trim_end_matches('.');
    let bare = value.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if value.is_empty() || value.len() > 253 || !value.split('.').all(label_ok) {
        return Err(ApiError::validate(
            field,
            "must be a DNS name or an IP address",
        ));
    }
    Ok(value.to_ascii_lowercase())
}

/// `host` or `host:port` (`[v6]:port`).
fn host_port(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    let (h, port) = match value.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, Some(p)),
        _ => (value, None),
    };
    let h = host(field, h)?;
    let h = if h.contains(':') { format!("[{h}]") } else { h };
    match port {
        None => Ok(h),
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => Ok(format!("{h}:{p}")),
            _ => Err(ApiError::validate(
                field,
                "has a port that is not 1 to 65535",
            )),
        },
    }
}

fn port(field: &str, value: u64) -> Result<u16, ApiError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::validate(field, "must be 1 to 65535"))
}

/// Digits with an optional leading `+` (caller IDs, prefixes).
pub(super) fn number(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = value.trim();
    let digits = value.strip_prefix('+').unwrap_or(value);
    if value.len() > max
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (value.starts_with('+') && digits.is_empty())
    {
        return Err(ApiError::validate(
            field,
            format!("must be digits, optionally after a +, at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// Applies `body` to `t`: every field when `full` (PUT), the fields given
/// otherwise. The password only when named.
fn apply(t: &mut store::Trunk, body: &Body, full: bool) -> Result<(), ApiError> {
    let given = |f: &str| full || body.has(f);
    if given("name") {
        let name = short_text("name", body.required("name")?, 64)?;
        if name.is_empty() {
            return Err(ApiError::validate("name", "must not be empty"));
        }
        t.name = name;
    }
    if given("kind") {
        let kind = body.required("kind")?;
        t.kind = pbx::trunk::TrunkKind::parse(kind)
            .ok_or_else(|| ApiError::validate("kind", "must be register or ip"))?
            .as_str()
            .to_owned();
    }
    if given("host") {
        t.host = host("host", body.required("host")?)?;
    }
    if given("port") {
        t.port = match body.number("port")? {
            Some(p) => port("port", p)?,
            None => DEFAULT_PORT,
        };
    }
    if given("transport") {
        t.transport = match body.string("transport")? {
            None => "udp".to_owned(),
            Some(s) => pbx::trunk::TrunkTransport::parse(s)
                .ok_or_else(|| ApiError::validate("transport", "must be udp or tcp"))?
                .as_str()
                .to_owned(),
        };
    }
    for (field, slot, max) in [
        ("username", &mut t.username, 128),
        ("auth_username", &mut t.auth_username, 128),
        ("realm", &mut t.realm, 128),
    ] {
        if given(field) {
            *slot = short_text(field, body.string(field)?.unwrap_or(""), max)?;
        }
    }
    if given("from_domain") {
        t.from_domain = match body.string("from_domain")?.unwrap_or("") {
            "" => String::new(),
            d => host("from_domain", d)?,
        };
    }
    if given("caller_id") {
        t.caller_id = number("caller_id", body.string("caller_id")?.unwrap_or(""), 32)?;
    }
    if given("country_code") {
        let code = body.string("country_code")?.unwrap_or("").trim();
        if code.len() > 4 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::validate(
                "country_code",
                "must be 1 to 4 digits, or empty",
            ));
        }
        t.country_code = code.to_owned();
    }
    if given("max_calls") {
        t.max_calls = match body.number("max_calls")? {
            None => None,
            Some(n) if (1..=MAX_CALLS).contains(&n) => Some(n as u32),
            Some(_) => {
                return Err(ApiError::validate(
                    "max_calls",
                    format!("must be 1 to {MAX_CALLS}, or null for no limit"),
                ));
            }
        };
    }
    if given("outbound_proxy") {
        t.outbound_proxy = match body.string("outbound_proxy")? {
            None | Some("") => None,
            Some(p) => Some(host_port("outbound_proxy", p)?),
        };
    }
    if given("source_addresses") {
        let list = body.strings("source_addresses")?.unwrap_or_default();
        if list.len() > 64 {
            return Err(ApiError::validate(
                "source_addresses",
                "must list at most 64 networks",
            ));
        }
        t.source_addresses = list
            .iter()
            .map(|s| {
                s.trim()
                    .parse::<pbx::trunk::SourceNet>()
                    .map(|net| net.to_string())
                    .map_err(|e| ApiError::validate("source_addresses", e))
            })
            .collect::<Result<_, _>>()?;
    }
    if given("source_port") {
        t.source_port = body
            .number("source_port")?
            .map(|p| port("source_port", p))
            .transpose()?;
    }
    if given("register_expires") {
        t.register_expires = match body.number("register_expires")? {
            None => DEFAULT_REGISTER_EXPIRES,
            Some(s) if (60..=86_400).contains(&s) => s as u32,
            Some(_) => {
                return Err(ApiError::validate(
                    "register_expires",
                    "must be 60 to 86400",
                ));
            }
        };
    }
    if given("enabled") {
        t.enabled = body.boolean("enabled")?.unwrap_or(true);
    }
    if body.has("password") {
        let p = body.string("password")?.unwrap_or("");
        if p.chars().count() > 128 || p.chars().any(char::is_control) {
            return Err(ApiError::validate(
                "password",
                "must be at most 128 characters, no control characters",
            ));
        }
        t.password = p.to_owned();
    }
    // What one field cannot say alone.
    match t.kind.as_str() {
        "register" if t.username.is_empty() => Err(ApiError::validate(
            "username",
            "is required for a register trunk",
        )),
        "register" if t.password.is_empty() => Err(ApiError::validate(
            "password",
            "is required for a register trunk",
        )),
        "ip" if t.source_addresses.is_empty() => Err(ApiError::validate(
            "source_addresses",
            "must list the carrier's addresses for an ip trunk",
        )),
        _ => Ok(()),
    }
}

fn blank(scope: &Scope, id: cdr::Id) -> store::Trunk {
    let now = clock::unix_millis();
    store::Trunk {
        id,
        tenant_id: scope.tenant_id,
        name: String::new(),
        kind: String::new(),
        host: String::new(),
        port: DEFAULT_PORT,
        transport: "udp".into(),
        username: String::new(),
        auth_username: String::new(),
        password: String::new(),
        realm: String::new(),
        from_domain: String::new(),
        caller_id: String::new(),
        country_code: String::new(),
        max_calls: None,
        outbound_proxy: None,
        source_addresses: Vec::new(),
        source_port: None,
        register_expires: DEFAULT_REGISTER_EXPIRES,
        enabled: true,
        created_at: now,
        updated_at: now,
    }
}

fn name_taken(name: &str) -> ApiError {
    ApiError::already_exists(
        "name",
        format!("a trunk named {name} exists in this tenant"),
    )
}

async fn find(
    state: &ApiState,
    scope: &Scope,
    params: &HashMap<String, String>,
) -> Result<store::Trunk, ApiError> {
    let id: cdr::Id = path_id(params, "trunk_id", "trunk")?;
    state
        .store
        .trunk(scope.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("trunk"))
}

pub async fn list(
    State(state): State<ApiState>,
    scope: Scope,
    ListQuery(page): ListQuery,
) -> Result<Json<Value>, ApiError> {
    scope.require(MANAGERS)?;
    let count = state.store.count_trunks(scope.tenant_id).await?;
    let items: Vec<TrunkJson> = state
        .store
        .trunk_page(scope.tenant_id, page.top, page.skip)
        .await?
        .into_iter()
        .map(trunk_json)
        .collect();
    Ok(Json(json!({ "count": count, "items": items })))
}

pub async fn create(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<(StatusCode, Json<TrunkJson>), ApiError> {
    scope.require(MANAGERS)?;
    let body = Body::parse(&body, &FIELDS)?;
    let mut trunk = blank(&scope, state.provisioner.next_id());
    apply(&mut trunk, &body, true)?;
    match state.store.create_trunk(&trunk).await {
        Ok(()) => {}
        Err(store::StoreError::Conflict(_)) => return Err(name_taken(&trunk.name)),
        Err(e) => return Err(e.into()),
    }
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "trunk.create",
            &format!("trunk:{}", trunk.id),
            source,
            json!({ "name": trunk.name, "kind": trunk.kind, "host": trunk.host }),
        )
        .await;
    state.trunks_changed().await;
    Ok((StatusCode::CREATED, Json(trunk_json(trunk))))
}

impl ApiState {
    /// Hands the API the registrations' live state (once, at start-up).
    pub fn set_trunk_states(&self, states: LiveStates) {
        let _ = self.0.trunk_states.set(states);
    }

    /// Hands the API what reloads the engine's trunks (once, at start-up).
    pub fn set_trunk_reload(&self, reload: std::sync::Arc<crate::trunks::reload::TrunkReload>) {
        let _ = self.0.trunk_reload.set(reload);
    }

    /// A trunk, DID rule, outbound rule or outbound permission changed in
    /// the store: the engine and the live tasks take it before the answer
    /// goes (a failure is logged; the next change carries this one too).
    pub(crate) async fn trunks_changed(&self) {
        let Some(reload) = self.0.trunk_reload.get() else {
            return;
        };
        if let Err(e) = reload.reload().await {
            tracing::warn!(error = %e, "trunks not reloaded after a change");
        }
    }

    /// A trunk's live registration state, if it is registering.
    fn trunk_state(&self, trunk: cdr::Id) -> Option<LiveState> {
        let states = self.0.trunk_states.get()?;
        states.lock().ok()?.get(&trunk).cloned()
    }
}

/// One trunk with its live state (`status` is `null` for disabled trunks
/// and those provisioned since the start; `registration` is `null` for
/// `ip` trunks).
pub async fn get(
    State(state): State<ApiState>,
    scope: Scope,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    scope.require(MANAGERS)?;
    let trunk = find(&state, &scope, &params).await?;
    let live = state.trunk_state(trunk.id);
    let mut body = serde_json::to_value(trunk_json(trunk)).map_err(ApiError::internal)?;
    body["status"] = json!(live);
    Ok(Json(body))
}

async fn update(
    state: ApiState,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    params: HashMap<String, String>,
    body: Bytes,
    full: bool,
) -> Result<Json<TrunkJson>, ApiError> {
    scope.require(MANAGERS)?;
    let old = find(&state, &scope, &params).await?;
    let body = Body::parse(&body, &FIELDS)?;
    let mut trunk = if full {
        // PUT: defaults for what is absent, but the password is kept.
        store::Trunk {
            password: old.password.clone(),
            created_at: old.created_at,
            ..blank(&scope, old.id)
        }
    } else {
        old.clone()
    };
    apply(&mut trunk, &body, full)?;
    trunk.updated_at = clock::unix_millis();
    match state.store.update_trunk(&trunk).await {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::not_found("trunk")),
        Err(store::StoreError::Conflict(_)) => return Err(name_taken(&trunk.name)),
        Err(e) => return Err(e.into()),
    }
    let changed: Vec<&str> = FIELDS.iter().copied().filter(|f| body.has(f)).collect();
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "trunk.update",
            &format!("trunk:{}", trunk.id),
            source,
            json!({ "name": trunk.name, "fields": changed }),
        )
        .await;
    state.trunks_changed().await;
    Ok(Json(trunk_json(trunk)))
}

pub async fn put(
    State(state): State<ApiState>,
    scope: Scope,
    source: ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<TrunkJson>, ApiError> {
    update(state, scope, source, params, body, true).await
}

pub async fn patch(
    State(state): State<ApiState>,
    scope: Scope,
    source: ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<TrunkJson>, ApiError> {
    update(state, scope, source, params, body, false).await
}

pub async fn delete(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    scope.require(MANAGERS)?;
    let trunk = find(&state, &scope, &params).await?;
    match state.store.delete_trunk(scope.tenant_id, trunk.id).await? {
        store::TrunkDeletion::Deleted => {}
        store::TrunkDeletion::NotFound => return Err(ApiError::not_found("trunk")),
        store::TrunkDeletion::InUse(rules) => {
            return Err(ApiError::in_use(
                "trunk_id",
                format!("outbound rules use this trunk: {}", rules.join(", ")),
            ));
        }
    }
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "trunk.delete",
            &format!("trunk:{}", trunk.id),
            source,
            json!({ "name": trunk.name }),
        )
        .await;
    state.trunks_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

impl Api {
    /// The trunk routes with their documentation.
    pub fn trunks(self) -> Self {
        let trunk = object(
            &[
                ("id", id()),
                ("tenant_id", id()),
                ("name", string()),
                ("kind", one_of_strings(&["register", "ip"])),
                ("host", string()),
                ("port", int_range(1, 65_535)),
                ("transport", one_of_strings(&["udp", "tcp"])),
                ("username", string()),
                ("auth_username", string()),
                ("has_password", boolean()),
                ("realm", string()),
                ("from_domain", string()),
                ("caller_id", string()),
                ("country_code", string()),
                ("max_calls", nullable(int_range(1, MAX_CALLS as i64))),
                ("outbound_proxy", nullable(string())),
                ("source_addresses", array(string())),
                ("source_port", nullable(int_range(1, 65_535))),
                ("register_expires", int_range(60, 86_400)),
                ("enabled", boolean()),
                ("created_at", date_time()),
                ("updated_at", date_time()),
            ],
            &[
                "id",
                "tenant_id",
                "name",
                "kind",
                "host",
                "port",
                "transport",
                "username",
                "auth_username",
                "has_password",
                "realm",
                "from_domain",
                "caller_id",
                "country_code",
                "max_calls",
                "outbound_proxy",
                "source_addresses",
                "source_port",
                "register_expires",
                "enabled",
                "created_at",
                "updated_at",
            ],
        );
        let registration = object(
            &[
                (
                    "registration",
                    one_of_strings(&["registering", "registered", "failed"]),
                ),
                ("last_error", nullable(string())),
                ("failures", non_negative()),
                ("seconds_left", nullable(non_negative())),
            ],
            &["registration", "last_error", "failures", "seconds_left"],
        );
        let mut with_status = trunk.clone();
        with_status["properties"]["status"] = object(
            &[("registration", nullable(registration))],
            &["registration"],
        );
        let body = |required: &[&str]| {
            closed_object(
                &[
                    ("name", string()),
                    ("kind", one_of_strings(&["register", "ip"])),
                    ("host", text("DNS name or IP address of the carrier")),
                    ("port", int_range(1, 65_535)),
                    ("transport", one_of_strings(&["udp", "tcp"])),
                    ("username", string()),
                    ("auth_username", string()),
                    ("password", nullable(text("Write-only; never returned."))),
                    ("realm", string()),
                    ("from_domain", string()),
                    ("caller_id", string()),
                    ("country_code", string()),
                    ("max_calls", nullable(int_range(1, MAX_CALLS as i64))),
                    ("outbound_proxy", nullable(text("host[:port]"))),
                    (
                        "source_addresses",
                        array(text("IP address or network (CIDR)")),
                    ),
                    ("source_port", nullable(int_range(1, 65_535))),
                    ("register_expires", int_range(60, 86_400)),
                    ("enabled", boolean()),
                ],
                required,
            )
        };
        let paged = |doc: Doc| {
            doc.query("top", int_range(1, 100), "Page size (1–100, default 100).")
                .query("skip", non_negative(), "Rows to skip.")
        };
        let (base, one) = ("/api/trunks", "/api/trunks/{trunk_id}");
        self.get(
            base,
            list,
            paged(Doc::new("Trunks", "List the tenant's trunks (Admin)"))
                .tenant_scoped()
                .json(200, page(trunk.clone())),
        )
        .post(
            base,
            create,
            Doc::new("Trunks", "Create a trunk (Admin)")
                .tenant_scoped()
                .json_body(body(&["name", "kind", "host"]))
                .json(201, trunk.clone()),
        )
        .get(
            one,
            get,
            Doc::new(
                "Trunks",
                "Read a trunk with its live registration state (Admin)",
            )
            .tenant_scoped()
            .json(200, with_status),
        )
        .put(
            one,
            put,
            Doc::new(
                "Trunks",
                "Replace a trunk; the password is kept unless given (Admin)",
            )
            .tenant_scoped()
            .json_body(body(&["name", "kind", "host"]))
            .json(200, trunk.clone()),
        )
        .patch(
            one,
            patch,
            Doc::new("Trunks", "Change some fields of a trunk (Admin)")
                .tenant_scoped()
                .json_body(body(&[]))
                .json(200, trunk),
        )
        .delete(
            one,
            delete,
            Doc::new(
                "Trunks",
                "Delete a trunk and its DID rules; 409 while an outbound rule uses it (Admin)",
            )
            .tenant_scoped()
            .empty(204),
        )
    }
}
