//! The REST API (SPEC §7): identity (sign-in, tokens, API keys, audit
//! log), provisioning, and the CDR reads. It moves to the `api` crate of
//! DESIGN.md's layout when the REST work grows it.
//!
//! | route | who |
//! |---|---|
//! | `POST /api/login/oauth/token`, `POST /api/login/oauth/revoke` | anyone ([`auth`]) |
//! | `/api/tenants`, `/api/tenants/{tenant_id}` | system admin ([`tenants`]) |
//! | `/api/users[/{user_id}]`, `/api/tenants/{tenant_id}/users[/{user_id}]` | tenant `Admin`; system admin ([`users`]) |
//! | `GET /api/tenant` | every tenant role; `PUT`: `Admin` ([`tenant`]) |
//! | `GET`, `PATCH /api/user` | a signed-in tenant user: its own profile ([`user`]) |
//! | `/api/api_keys[/{key_id}]` | tenant `Admin` ([`api_keys`]) |
//! | `GET /api/audit_logs` | tenant `Admin`; system admin ([`audit`]) |
//! | `GET /api/recordings[/{id}[/download]]`, `DELETE /api/recordings/{id}` | tenant `Admin`, `QueueManager`; `StandardUser` own calls; delete `Admin` ([`recordings`]) |
//! | `GET /api/cdrs`, `GET /api/cdrs/{id}`, `GET /api/cdrs/export` | tenant `Admin` and `QueueManager`; the system admin names the tenant with `X-Tenant-Id` ([`cdrs`]) |
//! | `GET /api/user/cdrs[/{id}]`, `POST /api/user/cdrs/sync_tokens`, `POST /api/user/cdrs/sync_tokens/{token}/diff` | any tenant user, own calls only ([`user_cdrs`]) |
//! | `GET /wsi` | WebSocket (SPEC §6): `auth` command, then `subscribe` ([`wsi`]) |
//! | `/api/trunks[/{trunk_id}]` | tenant `Admin`; system admin with `X-Tenant-Id` ([`trunks`]) |
//! | `/api/inbound_rules[/{rule_id}]` | tenant `Admin`; system admin with `X-Tenant-Id` ([`inbound_rules`]) |
//! | `/api/outbound_rules[/{rule_id}]`, `/api/users/{user_id}/outbound`, `/api/tenant/outbound` | tenant `Admin`; system admin with `X-Tenant-Id` ([`outbound_rules`]) |
//! | `GET/PUT /api/tenant/cdr_event`, `/api/tenant/webhook/…` | tenant admin, or the system admin with `X-Tenant-Id` ([`webhooks`]) |
//! | `POST /api/sessions`, `GET /api/sessions[/{id}]`, `POST /api/sessions/{id}/destroy` | tenant `Admin`; `StandardUser` own calls; `GET` also `QueueManager`; system admin with `X-Tenant-Id` ([`sessions`]) |
//!
//! Routes are added through [`openapi::Api`], which documents each one in
//! the OpenAPI 3.1 document served at `GET /api/openapi.json`.
//!
//! Every error has SPEC's shape ([`ApiError`]), including unknown routes
//! and methods.
//!
//! # The pattern of a provisioning resource
//!
//! One module per resource (`users.rs` is the model; trunks, rules, ring
//! groups, queues and IVRs repeat it):
//!
//! - **Scope.** Handlers take a [`resource::Scope`] extractor: the tenant
//!   the request acts in (a tenant principal's own; the system admin's
//!   `{tenant_id}` path parameter or `X-Tenant-Id`) and who acts. A
//!   tenant principal naming another tenant, or an id of another tenant's
//!   row, gets 404, never 403: every store read takes the tenant id, so a
//!   foreign row is simply not found.
//! - **Roles.** The first line of each handler is
//!   `scope.require(&[Role::…])?` (403 for other roles; the system admin
//!   passes). The role matrix test (`tests/identity.rs`) lists every
//!   route × role.
//! - **Verbs.** `GET /api/things?top=&skip=` → `{count, items}`
//!   ([`resource::ListQuery`]); `POST` → 201 with the resource; `GET`,
//!   `PUT` (every field; absent optional fields reset to defaults),
//!   `PATCH` (the fields given) → 200 with the resource; `DELETE` → 204.
//! - **Bodies.** [`resource::Body`] reads a JSON object field by field
//!   and refuses unknown fields, so every mistake is `VALIDATE_FAILED`
//!   with `detail.field`. The field rules live in [`crate::provision`]
//!   (shared with `--demo`), which also writes the store first, then the
//!   running engine, before the answer.
//! - **Conflicts.** Unique constraints answer 409 `ALREADY_EXISTS` naming
//!   the field.
//! - **Audit.** Every change calls [`ApiState::audit`] with the actor,
//!   an action such as `user.update`, the target and the client address.
//! - **Routes.** Added in [`api`] with their [`Doc`], under
//!   `/api/things` and, when the system admin should reach them by path,
//!   `/api/tenants/{tenant_id}/things` with the same handlers.

pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod cdrs;
mod error;
pub(crate) mod inbound_rules;
pub(crate) mod ivrs;
pub(crate) mod numbered;
pub mod openapi;
pub(crate) mod outbound_rules;
pub(crate) mod prompts;
pub(crate) mod queues;
pub(crate) mod recordings;
pub(crate) mod resource;
pub(crate) mod ring_groups;
pub mod server;
mod sessions;
mod tenant;
pub(crate) mod tenants;
pub(crate) mod trunks;
mod user;
pub(crate) mod user_cdrs;
pub(crate) mod users;
mod webhook_allow;
pub mod webhooks;
mod wsi;

use std::sync::Arc;

use axum::Router;
use store::Store;

use crate::admin::SystemAdmin;
use crate::provision::Provisioner;
pub use auth::{Principal, Role, clear_system_account_locks};
pub use error::ApiError;
pub use openapi::{Api, Doc};
pub use server::HttpLimits;
pub use wsi::WsiSettings;

/// Password checks at once (argon2id: 19 MiB and a core each).
pub const LOGIN_SLOTS: usize = 2;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct ApiState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub provisioner: Arc<Provisioner>,
    pub admin: SystemAdmin,
    /// The WebSocket subscriptions (`/wsi`) and their settings.
    pub wsi: WsiSettings,
    /// Password checks running at once: each argon2id verification holds
    /// 19 MiB and a core for tens of milliseconds, so a login flood must
    /// queue, not fan out over the blocking thread pool.
    login_slots: tokio::sync::Semaphore,
    /// The system admin's security settings.
    pub policy: Policy,
    /// Webhook replays in flight (api/webhooks.rs).
    replays: webhooks::Replays,
    /// Bumped at every identity change on this node (api/wsi.rs re-checks
    /// its sessions); other nodes' changes are seen by the periodic check.
    identity_epoch: tokio::sync::watch::Sender<u64>,
    /// The webhook dispatcher, set once at start-up (api/webhooks.rs).
    webhooks: std::sync::OnceLock<Arc<crate::delivery::Webhooks>>,
    /// The `register` trunks' live registration state, set once at
    /// start-up (api/trunks.rs).
    trunk_states: std::sync::OnceLock<crate::trunks::live::LiveStates>,
    /// Reloads the engine's trunks after a change (api/trunks.rs).
    trunk_reload: std::sync::OnceLock<std::sync::Arc<crate::trunks::reload::TrunkReload>>,
    /// Where recording files are, set once at start-up (api/recordings.rs).
    recordings_dir: std::sync::OnceLock<std::path::PathBuf>,
    /// Where prompts are and the library calls play them from, set once
    /// at start-up (api/prompts.rs).
    prompts: std::sync::OnceLock<prompts::Prompts>,
}

impl std::ops::Deref for ApiState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl ApiState {
    pub fn new(
        store: Store,
        provisioner: Arc<Provisioner>,
        admin: SystemAdmin,
        wsi: WsiSettings,
        policy: Policy,
    ) -> Self {
        ApiState(Arc::new(Inner {
            store,
            provisioner,
            admin,
            wsi,
            policy,
            login_slots: tokio::sync::Semaphore::new(LOGIN_SLOTS),
            identity_epoch: tokio::sync::watch::Sender::new(0),
            replays: webhooks::Replays::default(),
            webhooks: std::sync::OnceLock::new(),
            trunk_states: std::sync::OnceLock::new(),
            trunk_reload: std::sync::OnceLock::new(),
            recordings_dir: std::sync::OnceLock::new(),
            prompts: std::sync::OnceLock::new(),
        }))
    }
}

impl ApiState {
    /// Something about users, tokens, keys or tenants changed.
    pub fn identity_changed(&self) {
        self.identity_epoch.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees each [`ApiState::identity_changed`].
    pub fn identity_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.identity_epoch.subscribe()
    }
}

/// The system admin's security settings the API applies (config
/// `[http]` and `[identity]`).
#[derive(Clone, Debug)]
pub struct Policy {
    /// How CDR exports are bounded (finding 1): how many run at once per
    /// tenant and in all, and their deadlines.
    pub exports: Arc<store::ExportSlots>,
    /// The absolute lifetime of a sign-in (finding 5): its refresh tokens
    /// stop working this long after the password was checked.
    pub session_lifetime: std::time::Duration,
    /// Whether a tenant's `sip_domain` may be an IP address (finding 3).
    pub allow_ip_sip_domains: bool,
}

/// The tenant roles, as SPEC §7 spells them.
const ROLES: [&str; 3] = ["Admin", "QueueManager", "StandardUser"];

/// What a tenant's `sip_domain` change does to its users' SIP passwords.
const SIP_DOMAIN_IS_THE_REALM: &str = "The sip_domain is the digest realm, and only the \
    digest hashes of SIP passwords are stored: changing it leaves every user of the tenant \
    without a usable SIP password (sip_password_set false) until each sip_password is set \
    again; their phones are refused meanwhile.";

/// `schema` or `null`.
fn nullable(schema: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"anyOf": [schema, {"type": "null"}]})
}

/// The API's routes and their OpenAPI documentation, built together
/// ([`openapi::Api`]): a route cannot be added without its [`Doc`].
pub fn api() -> Api {
    use openapi::schema::*;
    use serde_json::json;
    let cdr_query = |doc: Doc| {
        doc.query(
            "filter",
            string(),
            "OData subset: eq ne gt ge lt le, and or not, parentheses, startswith endswith \
             contains; fields caller callee started_at ended_at direction status_code did_cid \
             trunk session_id call_status. Strings in single quotes ('' for a quote).",
        )
        .query(
            "orderby",
            string(),
            "Up to 4 keys `field [asc|desc]`, comma-separated (default `started_at desc`).",
        )
        .query(
            "search",
            string(),
            "Free text over caller, callee, did_cid and session_id (any term matches).",
        )
    };
    let cdr_list_query = |doc: Doc| {
        cdr_query(doc)
            .query("top", int_range(1, 100), "Page size (1–100, default 100).")
            .query("skip", non_negative(), "Rows to skip.")
            .query(
                "count",
                one_of_strings(&["true", "false"]),
                "Whether to count the matching rows (default true; false omits `count`).",
            )
            .query(
                "after",
                id(),
                "Keyset cursor: the last CDR id of the previous page, same order.",
            )
    };
    let cdr_page = |item: serde_json::Value| {
        object(
            &[("count", non_negative()), ("items", array(item))],
            &["items"],
        )
    };
    let tenant = object(
        &[
            ("id", id()),
            ("name", string()),
            ("sip_domain", string()),
            ("time_zone", text("IANA time zone name")),
            ("retention_days", nullable(int_range(1, 36_500))),
            (
                "pickup_code",
                text("Group call pickup feature code (default *8)"),
            ),
            (
                "directed_pickup_prefix",
                text("Directed call pickup prefix, dialled before the extension (default **)"),
            ),
            (
                "agent_login_code",
                text("Queue agent login code, alone or followed by a queue's number (default *45)"),
            ),
            (
                "agent_logout_code",
                text(
                    "Queue agent logout code, alone or followed by a queue's number (default *46)",
                ),
            ),
            ("recording", boolean()),
            ("created_at", date_time()),
        ],
        &[
            "id",
            "name",
            "sip_domain",
            "time_zone",
            "retention_days",
            "pickup_code",
            "directed_pickup_prefix",
            "agent_login_code",
            "agent_logout_code",
            "recording",
            "created_at",
        ],
    );
    let tenant_body = |required: &[&str]| {
        closed_object(
            &[
                ("name", string()),
                ("sip_domain", string()),
                ("time_zone", text("IANA time zone name (default UTC)")),
                ("retention_days", nullable(int_range(1, 36_500))),
                (
                    "pickup_code",
                    text("Group call pickup code: '*' then '*' or digits, up to 8 (default *8)"),
                ),
                (
                    "directed_pickup_prefix",
                    text(
                        "Directed call pickup prefix: '*' then '*' or digits, up to 8 (default **)",
                    ),
                ),
                (
                    "agent_login_code",
                    text("Queue agent login code: '*' then '*' or digits, up to 8 (default *45)"),
                ),
                (
                    "agent_logout_code",
                    text("Queue agent logout code: '*' then '*' or digits, up to 8 (default *46)"),
                ),
                ("recording", boolean()),
            ],
            required,
        )
    };
    let (cdr_event_body, cdr_event_view) = webhooks::cdr_event_schemas();
    let mut tenant_settings_body = tenant_body(&[]);
    tenant_settings_body["properties"]["cdr_event"] = cdr_event_body;
    let mut tenant_settings = tenant.clone();
    tenant_settings["properties"]["cdr_event"] = cdr_event_view;
    let forwarding_rule = object(
        &[
            (
                "condition",
                one_of_strings(&["always", "busy", "no_answer", "unavailable"]),
            ),
            ("destination", string()),
            ("enabled", boolean()),
        ],
        &["condition", "destination", "enabled"],
    );
    let user = object(
        &[
            ("id", id()),
            ("tenant_id", id()),
            ("extension", string()),
            ("username", nullable(string())),
            ("display_name", string()),
            ("email", string()),
            ("role", one_of_strings(&ROLES)),
            ("ring_timeout", non_negative()),
            ("forwarding", array(forwarding_rule.clone())),
            (
                "max_concurrent_calls",
                nullable(int_range(
                    1,
                    i64::from(crate::provision::MAX_CONCURRENT_CALLS),
                )),
            ),
            ("pickup_group", text("Call pickup group; empty: none")),
            ("recording", boolean()),
            ("enabled", boolean()),
            ("has_password", boolean()),
            (
                "sip_password_set",
                serde_json::json!({
                    "type": "boolean",
                    "description": "Whether a SIP password is set for the tenant's current \
                        sip_domain. Only its digest hashes are stored, and they include the \
                        domain: changing the tenant's sip_domain makes this false until the \
                        sip_password is set again (and a new extension needs it too)."
                }),
            ),
            ("created_at", date_time()),
            ("updated_at", date_time()),
        ],
        &[
            "id",
            "tenant_id",
            "extension",
            "username",
            "display_name",
            "email",
            "role",
            "ring_timeout",
            "forwarding",
            "max_concurrent_calls",
            "pickup_group",
            "recording",
            "enabled",
            "has_password",
            "sip_password_set",
            "created_at",
            "updated_at",
        ],
    );
    let user_body = |required: &[&str]| {
        closed_object(
            &[
                ("extension", string()),
                ("sip_password", string()),
                (
                    "password",
                    nullable(text(
                        "The web password (not the SIP password); null removes it.",
                    )),
                ),
                ("username", nullable(string())),
                ("display_name", string()),
                ("email", string()),
                ("role", one_of_strings(&ROLES)),
                ("ring_timeout", int_range(5, 600)),
                ("forwarding", array(forwarding_rule.clone())),
                (
                    "max_concurrent_calls",
                    nullable(int_range(
                        1,
                        i64::from(crate::provision::MAX_CONCURRENT_CALLS),
                    )),
                ),
                (
                    "pickup_group",
                    text("Call pickup group: up to 32 letters, digits, '.', '_', '-'; empty: none"),
                ),
                ("recording", boolean()),
                ("enabled", boolean()),
            ],
            required,
        )
    };
    let api_key = object(
        &[
            ("id", id()),
            ("name", string()),
            ("role", one_of_strings(&ROLES)),
            ("prefix", string()),
            ("created_at", date_time()),
            ("last_used_at", nullable(date_time())),
        ],
        &["id", "name", "role", "prefix", "created_at", "last_used_at"],
    );
    let mut api_key_created = api_key.clone();
    api_key_created["properties"]["key"] = text("The key, shown only this once.");
    api_key_created["required"] = json!([
        "id",
        "name",
        "role",
        "prefix",
        "created_at",
        "last_used_at",
        "key"
    ]);
    let audit_entry = object(
        &[
            ("id", id()),
            ("tenant_id", nullable(id())),
            ("at", date_time()),
            ("actor", string()),
            ("action", string()),
            ("target", string()),
            ("source", string()),
            ("detail", any()),
        ],
        &[
            "id",
            "tenant_id",
            "at",
            "actor",
            "action",
            "target",
            "source",
            "detail",
        ],
    );
    let paged = |doc: Doc| {
        doc.query("top", int_range(1, 100), "Page size (1–100, default 100).")
            .query("skip", non_negative(), "Rows to skip.")
    };
    let users_at = |api: Api, base: &'static str, one: &'static str, scoped: bool| {
        let doc = |d: Doc| if scoped { d.tenant_scoped() } else { d };
        api.get(
            base,
            users::list,
            paged(doc(Doc::new("Users", "List the tenant's users (Admin)")))
                .json(200, page(user.clone())),
        )
        .post(
            base,
            users::create,
            doc(Doc::new("Users", "Create a user (Admin)"))
                .json_body(user_body(&["extension", "sip_password"]))
                .json(201, user.clone()),
        )
        .get(
            one,
            users::get,
            doc(Doc::new("Users", "Read a user (Admin)")).json(200, user.clone()),
        )
        .put(
            one,
            users::put,
            doc(Doc::new("Users", "Replace a user (Admin)"))
                .json_body(user_body(&["extension", "sip_password"]))
                .json(200, user.clone()),
        )
        .patch(
            one,
            users::patch,
            doc(Doc::new("Users", "Change some fields of a user (Admin)"))
                .json_body(user_body(&[]))
                .json(200, user.clone()),
        )
        .delete(
            one,
            users::delete,
            doc(Doc::new("Users", "Delete a user (Admin)")).empty(204),
        )
    };
    let api = Api::new()
        .post(
            "/api/login/oauth/token",
            auth::login,
            Doc::new("Identity", "Sign in (password grant) or refresh a token")
                .public()
                .describe(
                    "PortSIP-compatible. A failed sign-in answers 400 `UNAUTHORIZED`; \
                     a locked-out account or address 429 `TOO_MANY_ATTEMPTS` with `Retry-After`.",
                )
                .form_body(object(
                    &[
                        ("grant_type", one_of_strings(&["password", "refresh_token"])),
                        ("username", text("The system admin's name, or a user's extension number or username.")),
                        ("password", string()),
                        ("domain", text("The tenant's SIP domain (tenant users).")),
                        ("refresh_token", string()),
                    ],
                    &["grant_type"],
                ))
                .json(200, reference("Token")),
        )
        .post(
            "/api/login/oauth/revoke",
            auth::revoke,
            Doc::new("Identity", "Revoke a token and every token of its sign-in (RFC 7009)")
                .public()
                .form_body(object(
                    &[("token", string()), ("token_type_hint", string())],
                    &["token"],
                ))
                .empty(200),
        )
        .get(
            "/api/tenants",
            tenants::list,
            paged(Doc::new("Tenants", "List tenants (system admin)")).json(200, page(tenant.clone())),
        )
        .post(
            "/api/tenants",
            tenants::create,
            Doc::new("Tenants", "Create a tenant (system admin)")
                .json_body(tenant_body(&["name", "sip_domain"]))
                .json(201, tenant.clone()),
        )
        .get(
            "/api/tenants/{tenant_id}",
            tenants::get,
            Doc::new("Tenants", "Read a tenant (system admin)").json(200, tenant.clone()),
        )
        .put(
            "/api/tenants/{tenant_id}",
            tenants::put,
            Doc::new("Tenants", "Replace a tenant (system admin)")
                .describe(SIP_DOMAIN_IS_THE_REALM)
                .json_body(tenant_body(&["name", "sip_domain"]))
                .json(200, tenant.clone()),
        )
        .patch(
            "/api/tenants/{tenant_id}",
            tenants::patch,
            Doc::new("Tenants", "Change some fields of a tenant (system admin)")
                .describe(SIP_DOMAIN_IS_THE_REALM)
                .json_body(tenant_body(&[]))
                .json(200, tenant.clone()),
        )
        .delete(
            "/api/tenants/{tenant_id}",
            tenants::delete,
            Doc::new("Tenants", "Delete a tenant and all its data (system admin)").empty(204),
        )
        .get(
            "/api/tenant",
            tenant::get,
            Doc::new("Tenant", "Read the tenant's settings")
                .describe("`cdr_event` (the webhook configuration, secrets masked) is included for the tenant's Admin and the system admin only.")
                .tenant_scoped()
                .json(200, tenant_settings.clone()),
        )
        .put(
            "/api/tenant",
            tenant::put,
            Doc::new("Tenant", "Change the tenant's settings (Admin; absent fields are kept)")
                .describe("`cdr_event` is validated and stored as by `PUT /api/tenant/cdr_event`.")
                .tenant_scoped()
                .json_body(tenant_settings_body)
                .json(200, tenant_settings),
        )
        .get(
            "/api/user",
            user::get,
            Doc::new("Users", "Read the signed-in user's own profile (any tenant user)")
                .json(200, user.clone()),
        )
        .patch(
            "/api/user",
            user::patch,
            Doc::new("Users", "Change the signed-in user's own profile")
                .describe("A new `password` needs `current_password`, and ends every sign-in of the user.")
                .json_body(closed_object(
                    &[
                        ("display_name", string()),
                        ("email", string()),
                        ("forwarding", array(forwarding_rule.clone())),
                        ("password", string()),
                        ("current_password", string()),
                    ],
                    &[],
                ))
                .json(200, user.clone()),
        )
        .get(
            "/api/api_keys",
            api_keys::list,
            Doc::new("API keys", "List the tenant's API keys (Admin)")
                .tenant_scoped()
                .json(200, page(api_key.clone())),
        )
        .post(
            "/api/api_keys",
            api_keys::create,
            Doc::new("API keys", "Create an API key; the key is in this answer only (Admin)")
                .tenant_scoped()
                .json_body(closed_object(
                    &[("name", string()), ("role", one_of_strings(&ROLES))],
                    &["name", "role"],
                ))
                .json(201, api_key_created),
        )
        .get(
            "/api/api_keys/{key_id}",
            api_keys::get,
            Doc::new("API keys", "Read an API key (Admin)")
                .tenant_scoped()
                .json(200, api_key),
        )
        .delete(
            "/api/api_keys/{key_id}",
            api_keys::delete,
            Doc::new("API keys", "Revoke an API key (Admin)")
                .tenant_scoped()
                .empty(204),
        )
        .get(
            "/api/audit_logs",
            audit::list,
            paged(Doc::new(
                "Audit",
                "The audit log, newest first (Admin; the system admin: system entries, or a tenant's with X-Tenant-Id)",
            ))
            .header("X-Tenant-Id", id(), "The tenant whose entries the system admin reads (absent: system entries).")
            .json(200, page(audit_entry)),
        );
    let api = users_at(api, "/api/users", "/api/users/{user_id}", true);
    let api = users_at(
        api,
        "/api/tenants/{tenant_id}/users",
        "/api/tenants/{tenant_id}/users/{user_id}",
        false,
    );
    api.get(
        "/api/cdrs",
        cdrs::list,
        cdr_list_query(Doc::new("CDRs", "List the tenant's CDRs (Admin, QueueManager)"))
            .tenant_scoped()
            .json(200, cdr_page(reference("Cdr"))),
    )
    .get(
        "/api/cdrs/export",
        cdrs::export,
        cdr_query(Doc::new(
            "CDRs",
            "Export every matching CDR as CSV (tenant time zone) or JSON Lines (UTC)",
        ))
        .query_required(
            "format",
            one_of_strings(&["csv", "jsonl"]),
            "csv: RFC 4180 with a header row; jsonl: one list item per line.",
        )
        .tenant_scoped()
        .content(200, "text/csv", string())
        .content(200, "application/jsonl", string()),
    )
    .get(
        "/api/cdrs/{id}",
        cdrs::detail,
        Doc::new("CDRs", "Read one CDR with its call targets")
            .tenant_scoped()
            .json(200, items(reference("CdrDetail"))),
    )
    .get(
        "/api/user/cdrs",
        user_cdrs::list,
        cdr_list_query(Doc::new(
            "User CDRs",
            "List the signed-in user's own CDRs (placed, received, or rung as a target)",
        ))
        .json(200, cdr_page(reference("Cdr"))),
    )
    .get(
        "/api/user/cdrs/{id}",
        user_cdrs::detail,
        Doc::new("User CDRs", "Read one of the user's own CDRs (`items` is an object)")
            .json(200, object(&[("items", reference("Cdr"))], &["items"])),
    )
    .post(
        "/api/user/cdrs/sync_tokens",
        user_cdrs::create_sync_token,
        Doc::new("User CDRs", "Create a personal CDR sync token")
            .query(
                "date_from",
                date_time(),
                "The first diff holds the user's calls since then.",
            )
            .json(201, object(&[("token", string())], &["token"])),
    )
    .post(
        "/api/user/cdrs/sync_tokens/{token}/diff",
        user_cdrs::diff,
        Doc::new(
            "User CDRs",
            "The user's CDRs committed since the token, and the next token (403: start a full sync)",
        )
        .json(
            200,
            object(
                &[
                    ("token", string()),
                    (
                        "items",
                        array(object(
                            &[
                                ("id", id()),
                                ("change_type", one_of_strings(&["CREATED", "UPDATED", "DELETED"])),
                                ("items", array(reference("Cdr"))),
                            ],
                            &["id", "change_type", "items"],
                        )),
                    ),
                    ("has_more", boolean()),
                ],
                &["token", "items", "has_more"],
            ),
        ),
    )
        .webhooks()
        .webhook_allow()
        .trunks()
        .inbound_rules()
        .outbound_rules()
        .ring_groups()
        .prompts()
        .ivrs()
        .queues()
        .recordings()
        .sessions()
}

pub fn router(state: ApiState) -> Router {
    api()
        .undocumented("/wsi", axum::routing::get(wsi::upgrade))
        .into_router()
        // The web console: pages, not API operations (crate::console).
        .merge(crate::console::router(state.clone()))
        .fallback(|| async { ApiError::not_found("resource") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
}
