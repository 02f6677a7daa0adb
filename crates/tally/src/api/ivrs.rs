//! IVRs (auto attendants, issue 14): numbers of a tenant's extension space
//! the PBX answers itself, managed by its `Admin` (or the system admin
//! naming the tenant in `X-Tenant-Id`). Other roles get 403; another
//! tenant's IVR 404.
//!
//! ```text
//! GET    /api/ivrs?top=&skip=    {count, items: [ivr]}, by number
//! POST   /api/ivrs               {"number", "name", "menu", …} → 201
//! GET    /api/ivrs/{ivr_id}
//! PUT    /api/ivrs/{ivr_id}      every field (absent optional ones: defaults)
//! PATCH  /api/ivrs/{ivr_id}      the fields given
//! DELETE /api/ivrs/{ivr_id}      204; 409 while a DID rule rings it
//! ```
//!
//! Fields: `number` (1–32 digits, no user's, ring group's or other IVR's
//! number: 409 `ALREADY_EXISTS`), `name` (1–64 characters),
//! `greeting_prompt_id` (a prompt of the tenant, `/api/prompts`; `null`,
//! the default: the built-in menu prompt), `menu` (an object: key `0`–`9`,
//! `*` or `#` → a number of the tenant (extension, ring group, IVR) or
//! `"hangup"`; not the IVR itself), `dial_by_extension` (default false),
//! `digit_timeout` (seconds, 1–60, default 5), `retries` (0–5, default 2),
//! `timeout_destination` (a number of the tenant or `"hangup"`; `null`,
//! the default: the menu again). The engine's behaviour is in
//! `pbx/src/call/ivr.rs` and DESIGN.md "IVRs and queues".

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use store::{Store, StoreError};

use super::numbered::{self, Docs, Numbered};
use super::openapi::schema::*;
use super::resource::{Body, Scope, rfc3339};
use super::trunks::short_text;
use super::{Api, ApiError, nullable};
use crate::clock;

pub const FIELDS: [&str; 8] = [
    "number",
    "name",
    "greeting_prompt_id",
    "menu",
    "dial_by_extension",
    "digit_timeout",
    "retries",
    "timeout_destination",
];

const DIGIT_TIMEOUT: (u64, u64) = (1, 60);
const DEFAULT_DIGIT_TIMEOUT: u32 = 5;
const RETRIES: (u64, u64) = (0, 5);
const DEFAULT_RETRIES: u32 = 2;
const KEYS: &str = "0123456789*#";

/// An IVR as REST shows it.
#[derive(Serialize)]
pub struct IvrJson {
    id: cdr::Id,
    tenant_id: cdr::TenantId,
    number: String,
    name: String,
    greeting_prompt_id: Option<cdr::Id>,
    menu: BTreeMap<String, String>,
    dial_by_extension: bool,
    digit_timeout: u32,
    retries: u32,
    timeout_destination: Option<String>,
    created_at: String,
    updated_at: String,
}

fn ivr_json(i: store::Ivr) -> IvrJson {
    IvrJson {
        id: i.id,
        tenant_id: i.tenant_id,
        number: i.number,
        name: i.name,
        greeting_prompt_id: i.greeting_prompt_id,
        menu: i.menu,
        dial_by_extension: i.dial_by_extension,
        digit_timeout: i.digit_timeout_secs,
        retries: i.retries,
        timeout_destination: i.timeout_destination,
        created_at: rfc3339(i.created_at),
        updated_at: rfc3339(i.updated_at),
    }
}

/// A destination: a number or `"hangup"`.
fn destination(field: &str, value: &str) -> Result<String, ApiError> {
    match value.trim() {
        store::HANG_UP => Ok(store::HANG_UP.to_owned()),
        v => crate::provision::extension(v).map_err(|_| {
            ApiError::validate(field, "must be a number (1 to 32 digits) or \"hangup\"")
        }),
    }
}

fn bounded(
    body: &Body,
    field: &str,
    (min, max): (u64, u64),
    default: u32,
) -> Result<u32, ApiError> {
    match body.number(field)? {
        None => Ok(default),
        Some(n) if (min..=max).contains(&n) => Ok(n as u32),
        Some(_) => Err(ApiError::validate(field, format!("must be {min} to {max}"))),
    }
}

/// Applies `body` to `i`: every field when `full` (PUT), those given
/// otherwise.
fn apply(i: &mut store::Ivr, body: &Body, full: bool) -> Result<(), ApiError> {
    let given = |f: &str| full || body.has(f);
    if given("number") {
        i.number = numbered::number("number", body.required("number")?)?;
    }
    if given("name") {
        let name = short_text("name", body.required("name")?, 64)?;
        if name.is_empty() {
            return Err(ApiError::validate("name", "must not be empty"));
        }
        i.name = name;
    }
    if given("greeting_prompt_id") {
        i.greeting_prompt_id = match body.string("greeting_prompt_id")? {
            None | Some("") => None,
            Some(id) => Some(
                id.parse()
                    .map_err(|_| ApiError::validate("greeting_prompt_id", "must be a prompt id"))?,
            ),
        };
    }
    if given("menu") {
        let mut menu = BTreeMap::new();
        match body.value("menu") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    if key.chars().count() != 1 || !KEYS.contains(key.as_str()) {
                        return Err(ApiError::validate(
                            "menu",
                            format!("key {key:?} must be one of 0-9, * or #"),
                        ));
                    }
                    let Value::String(d) = value else {
                        return Err(ApiError::validate(
                            "menu",
                            format!("key {key}: must be a number or \"hangup\""),
                        ));
                    };
                    menu.insert(key.clone(), destination("menu", d)?);
                }
            }
            Some(_) => return Err(ApiError::validate("menu", "must be an object")),
        }
        i.menu = menu;
    }
    if given("dial_by_extension") {
        i.dial_by_extension = body.boolean("dial_by_extension")?.unwrap_or(false);
    }
    if given("digit_timeout") {
        i.digit_timeout_secs =
            bounded(body, "digit_timeout", DIGIT_TIMEOUT, DEFAULT_DIGIT_TIMEOUT)?;
    }
    if given("retries") {
        i.retries = bounded(body, "retries", RETRIES, DEFAULT_RETRIES)?;
    }
    if given("timeout_destination") {
        i.timeout_destination = match body.string("timeout_destination")? {
            None | Some("") => None,
            Some(d) => Some(destination("timeout_destination", d)?),
        };
    }
    if i.menu.values().any(|d| *d == i.number) {
        return Err(ApiError::validate(
            "menu",
            "must not lead to the IVR itself",
        ));
    }
    if i.timeout_destination.as_deref() == Some(i.number.as_str()) {
        return Err(ApiError::validate(
            "timeout_destination",
            "must not be the IVR itself",
        ));
    }
    Ok(())
}

fn blank(scope: &Scope, id: cdr::Id) -> store::Ivr {
    let now = clock::unix_millis();
    store::Ivr {
        id,
        tenant_id: scope.tenant_id,
        number: String::new(),
        name: String::new(),
        greeting_prompt_id: None,
        menu: BTreeMap::new(),
        dial_by_extension: false,
        digit_timeout_secs: DEFAULT_DIGIT_TIMEOUT,
        retries: DEFAULT_RETRIES,
        timeout_destination: None,
        created_at: now,
        updated_at: now,
    }
}

fn refused(write: store::IvrWrite, i: &store::Ivr) -> ApiError {
    match write {
        store::IvrWrite::NumberTaken => ApiError::already_exists(
            "number",
            format!(
                "{} is a user's, a ring group's or another IVR's number in this tenant",
                i.number
            ),
        ),
        store::IvrWrite::UnknownDestination { field, number } => {
            let field = if field.starts_with("menu") {
                "menu"
            } else {
                "timeout_destination"
            };
            ApiError::validate(field, format!("{number} is no number of this tenant"))
        }
        store::IvrWrite::UnknownPrompt(id) => ApiError::validate(
            "greeting_prompt_id",
            format!("{id} is no prompt of this tenant"),
        ),
        store::IvrWrite::NotFound | store::IvrWrite::Written => ApiError::not_found("IVR"),
    }
}

impl Numbered for store::Ivr {
    const NOUN: &'static str = "IVR";
    const KIND: &'static str = "ivr";
    const ID_PARAM: &'static str = "ivr_id";
    const FIELDS: &'static [&'static str] = &FIELDS;
    type Json = IvrJson;
    const DOCS: Docs = Docs {
        tag: "IVRs",
        list: "List the tenant's IVRs (Admin)",
        create: "Create an IVR; 409 when the number is taken (Admin)",
        get: "Read an IVR (Admin)",
        put: "Replace an IVR (Admin)",
        patch: "Change some fields of an IVR (Admin)",
        delete: "Delete an IVR; 409 while a DID rule rings it (Admin)",
    };

    numbered::row_methods!();
    fn json(self) -> IvrJson {
        ivr_json(self)
    }
    async fn fetch(
        store: &Store,
        tenant: cdr::TenantId,
        id: cdr::Id,
    ) -> Result<Option<Self>, StoreError> {
        store.ivr(tenant, id).await
    }
    async fn page(
        store: &Store,
        tenant: cdr::TenantId,
        top: u32,
        skip: u64,
    ) -> Result<(u64, Vec<Self>), StoreError> {
        store.ivr_page(tenant, top, skip).await
    }
    async fn write(
        store: &Store,
        ivr: &Self,
        create: bool,
    ) -> Result<Result<(), ApiError>, StoreError> {
        let written = if create {
            store.create_ivr(ivr).await?
        } else {
            store.update_ivr(ivr).await?
        };
        Ok(match written {
            store::IvrWrite::Written => Ok(()),
            other => Err(refused(other, ivr)),
        })
    }
    async fn remove(store: &Store, ivr: &Self) -> Result<Result<(), ApiError>, StoreError> {
        Ok(match store.delete_ivr(ivr.tenant_id, ivr.id).await? {
            store::AppDeletion::Deleted => Ok(()),
            store::AppDeletion::NotFound => Err(ApiError::not_found("IVR")),
            store::AppDeletion::InUse(dids) => Err(ApiError::in_use(
                "number",
                format!("DID rules ring this IVR: {}", dids.join(", ")),
            )),
        })
    }
}

impl Api {
    /// The IVR routes with their documentation.
    pub fn ivrs(self) -> Self {
        let digits = || {
            let mut s = text("1 to 32 digits");
            s["pattern"] = json!("^[0-9]{1,32}$");
            s
        };
        let dest = || {
            let mut s = text("A number of the tenant (extension, ring group, IVR) or \"hangup\"");
            s["pattern"] = json!("^([0-9]{1,32}|hangup)$");
            s
        };
        let menu = || {
            let mut s = json!({ "type": "object", "additionalProperties": dest() });
            s["propertyNames"] = json!({ "pattern": "^[0-9*#]$" });
            s
        };
        let ivr = object(
            &[
                ("id", id()),
                ("tenant_id", id()),
                ("number", string()),
                ("name", string()),
                ("greeting_prompt_id", nullable(id())),
                (
                    "menu",
                    json!({ "type": "object", "additionalProperties": string() }),
                ),
                ("dial_by_extension", boolean()),
                (
                    "digit_timeout",
                    int_range(DIGIT_TIMEOUT.0 as i64, DIGIT_TIMEOUT.1 as i64),
                ),
                ("retries", int_range(RETRIES.0 as i64, RETRIES.1 as i64)),
                ("timeout_destination", nullable(string())),
                ("created_at", date_time()),
                ("updated_at", date_time()),
            ],
            &[
                "id",
                "tenant_id",
                "number",
                "name",
                "greeting_prompt_id",
                "menu",
                "dial_by_extension",
                "digit_timeout",
                "retries",
                "timeout_destination",
                "created_at",
                "updated_at",
            ],
        );
        let body = |required: &[&str]| {
            closed_object(
                &[
                    ("number", digits()),
                    ("name", string()),
                    ("greeting_prompt_id", nullable(id())),
                    ("menu", menu()),
                    ("dial_by_extension", boolean()),
                    (
                        "digit_timeout",
                        int_range(DIGIT_TIMEOUT.0 as i64, DIGIT_TIMEOUT.1 as i64),
                    ),
                    ("retries", int_range(RETRIES.0 as i64, RETRIES.1 as i64)),
                    ("timeout_destination", nullable(dest())),
                ],
                required,
            )
        };
        self.numbered::<store::Ivr>(
            ("/api/ivrs", "/api/ivrs/{ivr_id}"),
            ivr,
            body,
            &["number", "name"],
        )
    }
}
