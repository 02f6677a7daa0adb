//! IVRs (auto attendants, issue 14): numbers of a tenant's extension space
//! the PBX answers itself, and the prompts tenants upload for them.
//!
//! As for ring groups, the store keeps what the API validated and checks
//! in the writing transaction what only the database knows: the number is
//! no user's, group's or other IVR's; every destination (menu keys, the
//! timeout destination) is a user, group or IVR of the tenant; the
//! greeting is a prompt of the tenant. Every write bumps the directory
//! version (the engine's directory holds IVRs). A prompt an IVR plays, or
//! an IVR a DID rule rings, cannot be deleted.

use std::collections::BTreeMap;

use cdr::{Id, TenantId, UnixMillis};

use crate::Store;
use crate::convert::{db_id, db_ms, db_u64, get_id, get_ms, get_opt_id, get_u32, get_u64};
use crate::db::{Conn, Row, args, with_conn, with_write_tx};
use crate::directory::bump_version;
use crate::error::StoreError;

/// The menu destination that hangs up.
pub const HANG_UP: &str = "hangup";

/// An IVR of a tenant, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ivr {
    pub id: Id,
    pub tenant_id: TenantId,
    pub number: String,
    pub name: String,
    /// `None`: the built-in menu prompt.
    pub greeting_prompt_id: Option<Id>,
    /// Key → a number of the tenant or [`HANG_UP`].
    pub menu: BTreeMap<String, String>,
    pub dial_by_extension: bool,
    pub digit_timeout_secs: u32,
    pub retries: u32,
    /// A number of the tenant, [`HANG_UP`], or `None` (the menu again).
    pub timeout_destination: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// The columns of a [`PromptRow`] (not its audio: listing prompts reads
/// no blobs).
macro_rules! prompt_columns {
    () => {
        "id, tenant_id, name, duration_ms, size_bytes, created_at"
    };
}

/// A tenant's prompt, as stored (its audio is a file, see the migration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptRow {
    pub id: Id,
    pub tenant_id: TenantId,
    pub name: String,
    pub duration_ms: u64,
    pub size_bytes: u64,
    pub created_at: UnixMillis,
}

/// What an IVR write did. The refusals wrote nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IvrWrite {
    Written,
    NotFound,
    /// The number is a user's, a ring group's or another IVR's.
    NumberTaken,
    /// This destination (menu key or timeout) is no number of the tenant.
    UnknownDestination {
        field: String,
        number: String,
    },
    /// The greeting is no prompt of the tenant.
    UnknownPrompt(Id),
}

/// What deleting an IVR, a queue or a prompt did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppDeletion {
    Deleted,
    NotFound,
    /// Still used (DID rules' DIDs, IVRs' numbers); nothing was deleted.
    InUse(Vec<String>),
}

fn ivr_from_row(row: &impl Row) -> Result<Ivr, StoreError> {
    let menu: BTreeMap<String, String> = serde_json::from_str(&row.text("menu")?)
        .map_err(|e| StoreError::Corrupt(format!("ivr menu: {e}")))?;
    Ok(Ivr {
        id: get_id(row, "id")?,
        tenant_id: get_id(row, "tenant_id")?,
        number: row.text("number")?,
        name: row.text("name")?,
        greeting_prompt_id: get_opt_id(row, "greeting_prompt_id")?,
        menu,
        dial_by_extension: row.boolean("dial_by_extension")?,
        digit_timeout_secs: get_u32(row, "digit_timeout_secs")?,
        retries: get_u32(row, "retries")?,
        timeout_destination: row.opt_text("timeout_destination")?,
        created_at: get_ms(row, "created_at")?,
        updated_at: get_ms(row, "updated_at")?,
    })
}

fn prompt_from_row(row: &impl Row) -> Result<PromptRow, StoreError> {
    Ok(PromptRow {
        id: get_id(row, "id")?,
        tenant_id: get_id(row, "tenant_id")?,
        name: row.text("name")?,
        duration_ms: get_u64(row, "duration_ms")?,
        size_bytes: get_u64(row, "size_bytes")?,
        created_at: get_ms(row, "created_at")?,
    })
}

/// Whether `number` is an IVR of `tenant` other than `except`.
pub(crate) async fn is_ivr(
    conn: &mut impl Conn,
    tenant: i64,
    number: &str,
    except: Option<i64>,
) -> Result<bool, StoreError> {
    Ok(conn
        .fetch_optional(
            "SELECT id FROM ivrs WHERE tenant_id = $1 AND number = $2 AND id <> $3",
            &args![tenant, number, except.unwrap_or(-1)],
        )
        .await?
        .is_some())
}

async fn check(conn: &mut impl Conn, ivr: &Ivr) -> Result<IvrWrite, StoreError> {
    let tenant = db_id("tenant_id", ivr.tenant_id.id())?;
    let id = db_id("ivr_id", ivr.id)?;
    if crate::ring_groups::user_or_group(conn, tenant, &ivr.number, None).await?
        || crate::queues::is_queue(conn, tenant, &ivr.number, None).await?
        || is_ivr(conn, tenant, &ivr.number, Some(id)).await?
    {
        return Ok(IvrWrite::NumberTaken);
    }
    let destinations = ivr
        .menu
        .iter()
        .map(|(k, d)| (format!("menu.{k}"), d))
        .chain(
            ivr.timeout_destination
                .iter()
                .map(|d| ("timeout_destination".to_owned(), d)),
        );
    for (field, number) in destinations {
        if number == HANG_UP || *number == ivr.number {
            // Itself: refused by the API; the engine treats it as invalid.
            continue;
        }
        let known = crate::ring_groups::number_used(conn, tenant, number, None).await?;
        if !known {
            return Ok(IvrWrite::UnknownDestination {
                field,
                number: number.clone(),
            });
        }
    }
    if let Some(prompt) = ivr.greeting_prompt_id {
        let found = conn
            .fetch_optional(
                "SELECT id FROM prompts WHERE tenant_id = $1 AND id = $2",
                &args![tenant, db_id("greeting_prompt_id", prompt)?],
            )
            .await?;
        if found.is_none() {
            return Ok(IvrWrite::UnknownPrompt(prompt));
        }
    }
    Ok(IvrWrite::Written)
}

async fn write(conn: &mut impl Conn, ivr: &Ivr, create: bool) -> Result<bool, StoreError> {
    let menu = serde_json::to_string(&ivr.menu)
        .map_err(|e| StoreError::Corrupt(format!("ivr menu: {e}")))?;
    let greeting = ivr
        .greeting_prompt_id
        .map(|p| db_id("greeting_prompt_id", p))
        .transpose()?;
    let sql = if create {
        "INSERT INTO ivrs (id, tenant_id, number, name, greeting_prompt_id, menu, \
         dial_by_extension, digit_timeout_secs, retries, timeout_destination, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    } else {
        "UPDATE ivrs SET number = $3, name = $4, greeting_prompt_id = $5, menu = $6, \
         dial_by_extension = $7, digit_timeout_secs = $8, retries = $9, \
         timeout_destination = $10, updated_at = $12 \
         WHERE id = $1 AND tenant_id = $2 AND created_at = $11"
    };
    let n = conn
        .execute(
            sql,
            &args![
                db_id("ivr_id", ivr.id)?,
                db_id("tenant_id", ivr.tenant_id.id())?,
                ivr.number.as_str(),
                ivr.name.as_str(),
                greeting,
                menu.as_str(),
                ivr.dial_by_extension,
                i64::from(ivr.digit_timeout_secs),
                i64::from(ivr.retries),
                ivr.timeout_destination.as_deref(),
                db_ms("created_at", ivr.created_at)?,
                db_ms("updated_at", ivr.updated_at)?,
            ],
        )
        .await?;
    Ok(n > 0)
}

/// Deletes a tenant's IVRs and prompts (its deletion).
pub(crate) async fn delete_tenant_rows(
    conn: &mut impl Conn,
    tenant: i64,
) -> Result<(), StoreError> {
    conn.execute("DELETE FROM ivrs WHERE tenant_id = $1", &args![tenant])
        .await?;
    conn.execute("DELETE FROM prompts WHERE tenant_id = $1", &args![tenant])
        .await?;
    Ok(())
}

impl Store {
    /// Writes a new IVR unless a check refuses it ([`IvrWrite`]).
    pub async fn create_ivr(&self, ivr: &Ivr) -> Result<IvrWrite, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let verdict = check(&mut *conn, ivr).await?;
            if verdict == IvrWrite::Written {
                write(&mut *conn, ivr, true).await?;
                bump_version(&mut *conn).await?;
            }
            Ok::<IvrWrite, StoreError>(verdict)
        })
    }

    /// Replaces every field but the ids and `created_at`.
    pub async fn update_ivr(&self, ivr: &Ivr) -> Result<IvrWrite, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let mut verdict = check(&mut *conn, ivr).await?;
            if verdict == IvrWrite::Written {
                if write(&mut *conn, ivr, false).await? {
                    bump_version(&mut *conn).await?;
                } else {
                    verdict = IvrWrite::NotFound;
                }
            }
            Ok::<IvrWrite, StoreError>(verdict)
        })
    }

    /// Deletes the tenant's IVR `id`, unless a DID rule rings it.
    pub async fn delete_ivr(&self, tenant: TenantId, id: Id) -> Result<AppDeletion, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let tenant_id = db_id("tenant_id", tenant.id())?;
            let row = conn
                .fetch_optional(
                    "SELECT number FROM ivrs WHERE id = $1 AND tenant_id = $2",
                    &args![db_id("ivr_id", id)?, tenant_id],
                )
                .await?;
            let Some(row) = row else {
                return Ok(AppDeletion::NotFound);
            };
            let number = row.text("number")?;
            let dids =
                crate::routing_rules::dids_ringing(&mut *conn, tenant_id, "ivr", number.as_str())
                    .await?;
            if !dids.is_empty() {
                return Ok(AppDeletion::InUse(dids));
            }
            conn.execute(
                "DELETE FROM ivrs WHERE id = $1 AND tenant_id = $2",
                &args![db_id("ivr_id", id)?, tenant_id],
            )
            .await?;
            bump_version(&mut *conn).await?;
            Ok::<AppDeletion, StoreError>(AppDeletion::Deleted)
        })
    }

    /// The tenant's IVR `id` (`None` for another tenant's).
    pub async fn ivr(&self, tenant: TenantId, id: Id) -> Result<Option<Ivr>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_optional(
                "SELECT * FROM ivrs WHERE tenant_id = $1 AND id = $2",
                &args![db_id("tenant_id", tenant.id())?, db_id("ivr_id", id)?],
            )
            .await?
            .map(|row| ivr_from_row(&row))
            .transpose()
        })
    }

    /// A page of the tenant's IVRs, by number, and how many it has.
    pub async fn ivr_page(
        &self,
        tenant: TenantId,
        top: u32,
        skip: u64,
    ) -> Result<(u64, Vec<Ivr>), StoreError> {
        with_conn!(&self.pool, |conn| async {
            let t = db_id("tenant_id", tenant.id())?;
            let count = conn
                .fetch_optional(
                    "SELECT COUNT(*) AS n FROM ivrs WHERE tenant_id = $1",
                    &args![t],
                )
                .await?
                .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
            let items = conn
                .fetch_all(
                    "SELECT * FROM ivrs WHERE tenant_id = $1 ORDER BY number, id \
                     LIMIT $2 OFFSET $3",
                    &args![t, i64::from(top), db_u64("skip", skip)?],
                )
                .await?
                .iter()
                .map(ivr_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, StoreError>((get_u64(&count, "n")?, items))
        })
    }

    /// Every IVR of every tenant: what the engine's directory loads.
    pub async fn all_ivrs(&self) -> Result<Vec<Ivr>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_all("SELECT * FROM ivrs ORDER BY tenant_id, number", &args![])
                .await?
                .iter()
                .map(ivr_from_row)
                .collect()
        })
    }

    /// Records an uploaded prompt with its audio (`wav`, the 8 kHz WAV
    /// its file holds, for the other nodes); `false` when the tenant
    /// already has a prompt of that name.
    pub async fn insert_prompt(&self, p: &PromptRow, wav: &[u8]) -> Result<bool, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let tenant = db_id("tenant_id", p.tenant_id.id())?;
            let taken = conn
                .fetch_optional(
                    "SELECT id FROM prompts WHERE tenant_id = $1 AND name = $2",
                    &args![tenant, p.name.as_str()],
                )
                .await?;
            if taken.is_some() {
                return Ok(false);
            }
            conn.execute(
                "INSERT INTO prompts (id, tenant_id, name, duration_ms, size_bytes, created_at, \
                 audio) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &args![
                    db_id("prompt_id", p.id)?,
                    tenant,
                    p.name.as_str(),
                    db_u64("duration_ms", p.duration_ms)?,
                    db_u64("size_bytes", p.size_bytes)?,
                    db_ms("created_at", p.created_at)?,
                    wav,
                ],
            )
            .await?;
            Ok::<bool, StoreError>(true)
        })
    }

    /// Prompt `id`'s stored audio (a WAV), if it has some.
    pub async fn prompt_audio(&self, id: Id) -> Result<Option<Vec<u8>>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            let row = conn
                .fetch_optional(
                    "SELECT audio FROM prompts WHERE id = $1",
                    &args![db_id("prompt_id", id)?],
                )
                .await?;
            Ok::<_, StoreError>(match row {
                Some(row) => row.opt_bytes("audio")?,
                None => None,
            })
        })
    }

    /// The tenant's prompt `id`.
    pub async fn prompt(&self, tenant: TenantId, id: Id) -> Result<Option<PromptRow>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_optional(
                concat!(
                    "SELECT ",
                    prompt_columns!(),
                    " FROM prompts WHERE tenant_id = $1 AND id = $2"
                ),
                &args![db_id("tenant_id", tenant.id())?, db_id("prompt_id", id)?],
            )
            .await?
            .map(|row| prompt_from_row(&row))
            .transpose()
        })
    }

    /// The tenant's prompts by name (every one when `tenant` is `None`).
    pub async fn prompts(&self, tenant: Option<TenantId>) -> Result<Vec<PromptRow>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            let rows = match tenant {
                Some(t) => {
                    conn.fetch_all(
                        concat!(
                            "SELECT ",
                            prompt_columns!(),
                            " FROM prompts WHERE tenant_id = $1 ORDER BY name, id"
                        ),
                        &args![db_id("tenant_id", t.id())?],
                    )
                    .await?
                }
                None => {
                    conn.fetch_all(
                        concat!(
                            "SELECT ",
                            prompt_columns!(),
                            " FROM prompts ORDER BY tenant_id, id"
                        ),
                        &args![],
                    )
                    .await?
                }
            };
            rows.iter().map(prompt_from_row).collect()
        })
    }

    /// Deletes the tenant's prompt `id` unless an IVR plays it.
    pub async fn delete_prompt(&self, tenant: TenantId, id: Id) -> Result<AppDeletion, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let t = db_id("tenant_id", tenant.id())?;
            let p = db_id("prompt_id", id)?;
            let users: Vec<String> = conn
                .fetch_all(
                    "SELECT number FROM ivrs WHERE tenant_id = $1 AND greeting_prompt_id = $2 \
                     ORDER BY number",
                    &args![t, p],
                )
                .await?
                .iter()
                .map(|r| r.text("number"))
                .collect::<Result<_, _>>()?;
            let queues: Vec<String> = conn
                .fetch_all(
                    "SELECT number FROM queues WHERE tenant_id = $1 AND moh_prompt_id = $2 \
                     ORDER BY number",
                    &args![t, p],
                )
                .await?
                .iter()
                .map(|r| r.text("number"))
                .collect::<Result<_, _>>()?;
            let users: Vec<String> = users.into_iter().chain(queues).collect();
            if !users.is_empty() {
                return Ok(AppDeletion::InUse(users));
            }
            let n = conn
                .execute(
                    "DELETE FROM prompts WHERE tenant_id = $1 AND id = $2",
                    &args![t, p],
                )
                .await?;
            Ok::<AppDeletion, StoreError>(match n {
                0 => AppDeletion::NotFound,
                _ => AppDeletion::Deleted,
            })
        })
    }
}
