//! Ring groups (issue 9): numbers of a tenant's extension space that ring
//! some of its users, managed by its `Admin` or by the system admin
//! naming the tenant in `X-Tenant-Id`. Other roles get 403; another
//! tenant's group 404.
//!
//! ```text
//! GET    /api/ring_groups?top=&skip=       {count, items: [group]}, by number
//! POST   /api/ring_groups                  {"number", "name", "members", …} → 201
//! GET    /api/ring_groups/{ring_group_id}
//! PUT    /api/ring_groups/{ring_group_id}  every field (absent optional ones take
//!                                          their defaults)
//! PATCH  /api/ring_groups/{ring_group_id}  the fields given
//! DELETE /api/ring_groups/{ring_group_id}  204
//! ```
//!
//! Fields: `number` (1–32 digits, no user's extension and no other
//! group's number in the tenant: 409 `ALREADY_EXISTS` otherwise), `name`
//! (1–64 characters), `strategy` (`ring_all`, `hunt`, `round_robin`;
//! default `ring_all`), `members` (1–50 distinct extensions of the
//! tenant's users, in ringing order), `member_timeout` (seconds each
//! member rings in `hunt` and `round_robin`, 5–300, default 20),
//! `timeout` (seconds the whole group rings, 5–3600, default 60),
//! `no_answer` (where an unanswered call goes: an extension or another
//! group of the tenant; `null`, the default: the caller hears 480).
//!
//! A write reaches the running engine at once (the directory is handed
//! to it again) and other nodes at their next directory sync.

use serde::Serialize;
use serde_json::json;
use store::{Store, StoreError};

use super::numbered::{self, Docs, Numbered};
use super::openapi::schema::*;
use super::resource::{Body, Scope, rfc3339};
use super::trunks::short_text;
use super::{Api, ApiError, nullable};
use crate::clock;

pub const FIELDS: [&str; 7] = [
    "number",
    "name",
    "strategy",
    "members",
    "member_timeout",
    "timeout",
    "no_answer",
];

const STRATEGIES: [&str; 3] = ["ring_all", "hunt", "round_robin"];
const DEFAULT_MEMBER_TIMEOUT: u32 = 20;
const DEFAULT_TIMEOUT: u32 = 60;
const MEMBER_TIMEOUT: (u64, u64) = (5, 300);
const TIMEOUT: (u64, u64) = (5, 3600);
const MAX_MEMBERS: usize = 50;

/// A ring group as REST shows it.
#[derive(Serialize)]
pub struct RingGroupJson {
    id: cdr::Id,
    tenant_id: cdr::TenantId,
    number: String,
    name: String,
    strategy: String,
    members: Vec<String>,
    member_timeout: u32,
    timeout: u32,
    no_answer: Option<String>,
    created_at: String,
    updated_at: String,
}

fn group_json(g: store::RingGroup) -> RingGroupJson {
    RingGroupJson {
        id: g.id,
        tenant_id: g.tenant_id,
        number: g.number,
        name: g.name,
        strategy: g.strategy,
        members: g.members,
        member_timeout: g.member_timeout_secs,
        timeout: g.timeout_secs,
        no_answer: g.no_answer,
        created_at: rfc3339(g.created_at),
        updated_at: rfc3339(g.updated_at),
    }
}

fn seconds(
    body: &Body,
    field: &str,
    (min, max): (u64, u64),
    default: u32,
) -> Result<u32, ApiError> {
    match body.number(field)? {
        None => Ok(default),
        Some(s) if (min..=max).contains(&s) => Ok(s as u32),
        Some(_) => Err(ApiError::validate(
            field,
            format!("must be {min} to {max} seconds"),
        )),
    }
}

/// Applies `body` to `g`: every field when `full` (PUT), the fields given
/// otherwise.
fn apply(g: &mut store::RingGroup, body: &Body, full: bool) -> Result<(), ApiError> {
    let given = |f: &str| full || body.has(f);
    if given("number") {
        g.number = numbered::number("number", body.required("number")?)?;
    }
    if given("name") {
        let name = short_text("name", body.required("name")?, 64)?;
        if name.is_empty() {
            return Err(ApiError::validate("name", "must not be empty"));
        }
        g.name = name;
    }
    if given("strategy") {
        g.strategy = match body.string("strategy")? {
            None => "ring_all".to_owned(),
            Some(s) if STRATEGIES.contains(&s) => s.to_owned(),
            Some(_) => {
                return Err(ApiError::validate(
                    "strategy",
                    "must be ring_all, hunt or round_robin",
                ));
            }
        };
    }
    if given("members") {
        g.members = numbered::extensions(body, "members", MAX_MEMBERS)?;
    }
    if given("member_timeout") {
        g.member_timeout_secs = seconds(
            body,
            "member_timeout",
            MEMBER_TIMEOUT,
            DEFAULT_MEMBER_TIMEOUT,
        )?;
    }
    if given("timeout") {
        g.timeout_secs = seconds(body, "timeout", TIMEOUT, DEFAULT_TIMEOUT)?;
    }
    if given("no_answer") {
        g.no_answer = match body.string("no_answer")? {
            None | Some("") => None,
            Some(d) => Some(numbered::number("no_answer", d)?),
        };
    }
    if g.no_answer.as_deref() == Some(g.number.as_str()) {
        return Err(ApiError::validate(
            "no_answer",
            "must not be the group itself",
        ));
    }
    Ok(())
}

fn blank(scope: &Scope, id: cdr::Id) -> store::RingGroup {
    let now = clock::unix_millis();
    store::RingGroup {
        id,
        tenant_id: scope.tenant_id,
        number: String::new(),
        name: String::new(),
        strategy: "ring_all".into(),
        members: Vec::new(),
        member_timeout_secs: DEFAULT_MEMBER_TIMEOUT,
        timeout_secs: DEFAULT_TIMEOUT,
        no_answer: None,
        created_at: now,
        updated_at: now,
    }
}

/// The API's answer to a refused write.
fn refused(write: store::RingGroupWrite, g: &store::RingGroup) -> ApiError {
    match write {
        store::RingGroupWrite::NumberTaken => ApiError::already_exists(
            "number",
            format!(
                "{} is a user's extension or another ring group's number in this tenant",
                g.number
            ),
        ),
        store::RingGroupWrite::UnknownMember(m) => {
            ApiError::validate("members", format!("{m} is no user of this tenant"))
        }
        store::RingGroupWrite::UnknownDestination(d) => ApiError::validate(
            "no_answer",
            format!("{d} is neither a user nor a ring group of this tenant"),
        ),
        store::RingGroupWrite::NotFound | store::RingGroupWrite::Written => {
            ApiError::not_found("ring group")
        }
    }
}

impl Numbered for store::RingGroup {
    const NOUN: &'static str = "ring group";
    const KIND: &'static str = "ring_group";
    const ID_PARAM: &'static str = "ring_group_id";
    const FIELDS: &'static [&'static str] = &FIELDS;
    type Json = RingGroupJson;
    const DOCS: Docs = Docs {
        tag: "Ring groups",
        list: "List the tenant's ring groups (Admin)",
        create: "Create a ring group; 409 when the number is taken (Admin)",
        get: "Read a ring group (Admin)",
        put: "Replace a ring group (Admin)",
        patch: "Change some fields of a ring group (Admin)",
        delete: "Delete a ring group; 409 while a DID rule rings it (Admin)",
    };

    numbered::row_methods!();
    fn json(self) -> RingGroupJson {
        group_json(self)
    }
    async fn fetch(
        store: &Store,
        tenant: cdr::TenantId,
        id: cdr::Id,
    ) -> Result<Option<Self>, StoreError> {
        store.ring_group(tenant, id).await
    }
    async fn page(
        store: &Store,
        tenant: cdr::TenantId,
        top: u32,
        skip: u64,
    ) -> Result<(u64, Vec<Self>), StoreError> {
        let count = store.count_ring_groups(tenant).await?;
        Ok((count, store.ring_group_page(tenant, top, skip).await?))
    }
    async fn write(
        store: &Store,
        group: &Self,
        create: bool,
    ) -> Result<Result<(), ApiError>, StoreError> {
        let written = if create {
            store.create_ring_group(group).await?
        } else {
            store.update_ring_group(group).await?
        };
        Ok(match written {
            store::RingGroupWrite::Written => Ok(()),
            other => Err(refused(other, group)),
        })
    }
    async fn remove(store: &Store, group: &Self) -> Result<Result<(), ApiError>, StoreError> {
        Ok(
            match store.delete_ring_group(group.tenant_id, group.id).await? {
                store::RingGroupDeletion::Deleted => Ok(()),
                store::RingGroupDeletion::NotFound => Err(ApiError::not_found("ring group")),
                store::RingGroupDeletion::InUse(dids) => Err(ApiError::in_use(
                    "number",
                    format!("DID rules ring this group: {}", dids.join(", ")),
                )),
            },
        )
    }
}

impl Api {
    /// The ring-group routes with their documentation.
    pub fn ring_groups(self) -> Self {
        let digits = || {
            let mut s = text("1 to 32 digits");
            s["pattern"] = json!("^[0-9]{1,32}$");
            s
        };
        let members = || {
            let mut s = array(digits());
            s["minItems"] = json!(1);
            s["maxItems"] = json!(MAX_MEMBERS);
            s
        };
        let group = object(
            &[
                ("id", id()),
                ("tenant_id", id()),
                ("number", string()),
                ("name", string()),
                ("strategy", one_of_strings(&STRATEGIES)),
                ("members", array(string())),
                (
                    "member_timeout",
                    int_range(MEMBER_TIMEOUT.0 as i64, MEMBER_TIMEOUT.1 as i64),
                ),
                ("timeout", int_range(TIMEOUT.0 as i64, TIMEOUT.1 as i64)),
                ("no_answer", nullable(string())),
                ("created_at", date_time()),
                ("updated_at", date_time()),
            ],
            &[
                "id",
                "tenant_id",
                "number",
                "name",
                "strategy",
                "members",
                "member_timeout",
                "timeout",
                "no_answer",
                "created_at",
                "updated_at",
            ],
        );
        let body = |required: &[&str]| {
            closed_object(
                &[
                    ("number", digits()),
                    ("name", string()),
                    ("strategy", one_of_strings(&STRATEGIES)),
                    ("members", members()),
                    (
                        "member_timeout",
                        int_range(MEMBER_TIMEOUT.0 as i64, MEMBER_TIMEOUT.1 as i64),
                    ),
                    ("timeout", int_range(TIMEOUT.0 as i64, TIMEOUT.1 as i64)),
                    (
                        "no_answer",
                        nullable(text(
                            "An extension or a ring group of the tenant; null: hang up (480)",
                        )),
                    ),
                ],
                required,
            )
        };
        self.numbered::<store::RingGroup>(
            ("/api/ring_groups", "/api/ring_groups/{ring_group_id}"),
            group,
            body,
            &["number", "name", "members"],
        )
    }
}
