//! Ring groups (issue 9): a number of a tenant's extension space that
//! rings some of its users, `ring_all`, `hunt` or `round_robin`.
//!
//! The store keeps what the API validated and checks, in the writing
//! transaction, what only the database knows: the number is no user's
//! extension and no other group's, every member is a user of the tenant,
//! and the no-answer destination is a user or a group of the tenant. The
//! engine reads groups through its directory, which the runtime fills
//! from [`Store::all_ring_groups`]; every write bumps the directory
//! version, so other nodes sharing the database reload them.
//!
//! A user deleted (or renumbered) after a group listed it stays listed:
//! the engine skips a member that is no user, as it skips one without a
//! device, and the API shows the list as written.

use cdr::{Id, TenantId, UnixMillis};

use crate::Store;
use crate::convert::{db_id, db_ms, db_u64, get_id, get_ms, get_u32};
use crate::db::{Conn, Row, args, with_conn, with_write_tx};
use crate::directory::bump_version;
use crate::error::StoreError;

/// A ring group of a tenant, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingGroup {
    pub id: Id,
    pub tenant_id: TenantId,
    /// In the extension space: no user of the tenant has it.
    pub number: String,
    pub name: String,
    /// `ring_all`, `hunt` or `round_robin`.
    pub strategy: String,
    /// Extensions of the tenant, in ringing order.
    pub members: Vec<String>,
    pub member_timeout_secs: u32,
    pub timeout_secs: u32,
    /// An extension or a group number of the tenant; `None`: hang up.
    pub no_answer: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// What deleting a ring group did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingGroupDeletion {
    Deleted,
    NotFound,
    /// DID rules ring it (their DIDs); nothing was deleted.
    InUse(Vec<String>),
}

/// What a ring-group write did. The refusals wrote nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingGroupWrite {
    Written,
    /// No such group in the tenant (update).
    NotFound,
    /// The number is a user's extension or another group's number.
    NumberTaken,
    /// This member is no user of the tenant.
    UnknownMember(String),
    /// The no-answer destination is neither a user nor a group of the
    /// tenant.
    UnknownDestination(String),
}

fn from_row(row: &impl Row) -> Result<RingGroup, StoreError> {
    let members: Vec<String> = serde_json::from_str(&row.text("members")?)
        .map_err(|e| StoreError::Corrupt(format!("ring group members: {e}")))?;
    Ok(RingGroup {
        id: get_id(row, "id")?,
        tenant_id: get_id(row, "tenant_id")?,
        number: row.text("number")?,
        name: row.text("name")?,
        strategy: row.text("strategy")?,
        members,
        member_timeout_secs: get_u32(row, "member_timeout_secs")?,
        timeout_secs: get_u32(row, "timeout_secs")?,
        no_answer: row.opt_text("no_answer")?,
        created_at: get_ms(row, "created_at")?,
        updated_at: get_ms(row, "updated_at")?,
    })
}

/// Whether `number` is a user's extension in `tenant`, a group's other
/// than `except`, or an IVR's (`ivrs.rs`: they share the space).
pub(crate) async fn number_used(
    conn: &mut impl Conn,
    tenant: i64,
    number: &str,
    except: Option<i64>,
) -> Result<bool, StoreError> {
    Ok(user_or_group(conn, tenant, number, except).await?
        || crate::ivrs::is_ivr(conn, tenant, number, None).await?
        || crate::queues::is_queue(conn, tenant, number, None).await?)
}

/// Whether `number` is a user's extension in `tenant`, or a group's other
/// than `except`.
pub(crate) async fn user_or_group(
    conn: &mut impl Conn,
    tenant: i64,
    number: &str,
    except: Option<i64>,
) -> Result<bool, StoreError> {
    let user = conn
        .fetch_optional(
            "SELECT id FROM users WHERE tenant_id = $1 AND extension = $2",
            &args![tenant, number],
        )
        .await?;
    if user.is_some() {
        return Ok(true);
    }
    Ok(conn
        .fetch_optional(
            "SELECT id FROM ring_groups WHERE tenant_id = $1 AND number = $2 AND id <> $3",
            &args![tenant, number, except.unwrap_or(-1)],
        )
        .await?
        .is_some())
}

/// Whether `number` is a ring group or an IVR of `tenant` (user writes
/// refuse it).
pub(crate) async fn is_group(
    conn: &mut impl Conn,
    tenant: TenantId,
    number: &str,
) -> Result<bool, StoreError> {
    let t = db_id("tenant_id", tenant.id())?;
    if crate::ivrs::is_ivr(conn, t, number, None).await?
        || crate::queues::is_queue(conn, t, number, None).await?
    {
        return Ok(true);
    }
    Ok(conn
        .fetch_optional(
            "SELECT id FROM ring_groups WHERE tenant_id = $1 AND number = $2",
            &args![db_id("tenant_id", tenant.id())?, number],
        )
        .await?
        .is_some())
}

/// The references a group write needs, checked in its transaction.
async fn check(conn: &mut impl Conn, g: &RingGroup) -> Result<RingGroupWrite, StoreError> {
    let tenant = db_id("tenant_id", g.tenant_id.id())?;
    let id = db_id("ring_group_id", g.id)?;
    if number_used(conn, tenant, &g.number, Some(id)).await? {
        return Ok(RingGroupWrite::NumberTaken);
    }
    for member in &g.members {
        let found = conn
            .fetch_optional(
                "SELECT id FROM users WHERE tenant_id = $1 AND extension = $2",
                &args![tenant, member.as_str()],
            )
            .await?;
        if found.is_none() {
            return Ok(RingGroupWrite::UnknownMember(member.clone()));
        }
    }
    if let Some(destination) = &g.no_answer
        && !number_used(conn, tenant, destination, Some(id)).await?
    {
        return Ok(RingGroupWrite::UnknownDestination(destination.clone()));
    }
    Ok(RingGroupWrite::Written)
}

async fn insert(conn: &mut impl Conn, g: &RingGroup) -> Result<(), StoreError> {
    let members = serde_json::Value::from(g.members.clone()).to_string();
    conn.execute(
        "INSERT INTO ring_groups (id, tenant_id, number, name, strategy, members, \
         member_timeout_secs, timeout_secs, no_answer, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &args![
            db_id("ring_group_id", g.id)?,
            db_id("tenant_id", g.tenant_id.id())?,
            g.number.as_str(),
            g.name.as_str(),
            g.strategy.as_str(),
            members.as_str(),
            i64::from(g.member_timeout_secs),
            i64::from(g.timeout_secs),
            g.no_answer.as_deref(),
            db_ms("created_at", g.created_at)?,
            db_ms("updated_at", g.updated_at)?,
        ],
    )
    .await?;
    Ok(())
}

async fn update(conn: &mut impl Conn, g: &RingGroup) -> Result<bool, StoreError> {
    let members = serde_json::Value::from(g.members.clone()).to_string();
    let n = conn
        .execute(
            "UPDATE ring_groups SET number = $3, name = $4, strategy = $5, members = $6, \
             member_timeout_secs = $7, timeout_secs = $8, no_answer = $9, updated_at = $10 \
             WHERE id = $1 AND tenant_id = $2",
            &args![
                db_id("ring_group_id", g.id)?,
                db_id("tenant_id", g.tenant_id.id())?,
                g.number.as_str(),
                g.name.as_str(),
                g.strategy.as_str(),
                members.as_str(),
                i64::from(g.member_timeout_secs),
                i64::from(g.timeout_secs),
                g.no_answer.as_deref(),
                db_ms("updated_at", g.updated_at)?,
            ],
        )
        .await?;
    Ok(n > 0)
}

/// Deletes a tenant's groups (its deletion).
pub(crate) async fn delete_tenant_rows(
    conn: &mut impl Conn,
    tenant: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM ring_groups WHERE tenant_id = $1",
        &args![tenant],
    )
    .await?;
    Ok(())
}

impl Store {
    /// Writes a new group unless a check refuses it ([`RingGroupWrite`]);
    /// [`StoreError::MissingReference`] if the tenant is unknown.
    pub async fn create_ring_group(&self, group: &RingGroup) -> Result<RingGroupWrite, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let verdict = check(&mut *conn, group).await?;
            if verdict == RingGroupWrite::Written {
                insert(&mut *conn, group).await?;
                bump_version(&mut *conn).await?;
            }
            Ok::<RingGroupWrite, StoreError>(verdict)
        })
    }

    /// Replaces every field but the ids and `created_at`.
    pub async fn update_ring_group(&self, group: &RingGroup) -> Result<RingGroupWrite, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let mut verdict = check(&mut *conn, group).await?;
            if verdict == RingGroupWrite::Written {
                if update(&mut *conn, group).await? {
                    bump_version(&mut *conn).await?;
                } else {
                    verdict = RingGroupWrite::NotFound;
                }
            }
            Ok::<RingGroupWrite, StoreError>(verdict)
        })
    }

    /// Deletes the tenant's group `id`, unless a DID rule rings it.
    pub async fn delete_ring_group(
        &self,
        tenant: TenantId,
        id: Id,
    ) -> Result<RingGroupDeletion, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let tenant_id = db_id("tenant_id", tenant.id())?;
            let number = conn
                .fetch_optional(
                    "SELECT number FROM ring_groups WHERE id = $1 AND tenant_id = $2",
                    &args![db_id("ring_group_id", id)?, tenant_id],
                )
                .await?;
            let Some(number) = number else {
                return Ok(RingGroupDeletion::NotFound);
            };
            let number = number.text("number")?;
            let dids = crate::routing_rules::dids_ringing(
                &mut *conn,
                tenant_id,
                "ring_group",
                number.as_str(),
            )
            .await?;
            if !dids.is_empty() {
                return Ok(RingGroupDeletion::InUse(dids));
            }
            let n = conn
                .execute(
                    "DELETE FROM ring_groups WHERE id = $1 AND tenant_id = $2",
                    &args![
                        db_id("ring_group_id", id)?,
                        db_id("tenant_id", tenant.id())?
                    ],
                )
                .await?;
            if n > 0 {
                bump_version(&mut *conn).await?;
            }
            Ok::<RingGroupDeletion, StoreError>(match n {
                0 => RingGroupDeletion::NotFound,
                _ => RingGroupDeletion::Deleted,
            })
        })
    }

    /// The tenant's group `id` (`None` for another tenant's).
    pub async fn ring_group(
        &self,
        tenant: TenantId,
        id: Id,
    ) -> Result<Option<RingGroup>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_optional(
                "SELECT * FROM ring_groups WHERE tenant_id = $1 AND id = $2",
                &args![
                    db_id("tenant_id", tenant.id())?,
                    db_id("ring_group_id", id)?
                ],
            )
            .await?
            .map(|row| from_row(&row))
            .transpose()
        })
    }

    /// A page of the tenant's groups, by number.
    pub async fn ring_group_page(
        &self,
        tenant: TenantId,
        top: u32,
        skip: u64,
    ) -> Result<Vec<RingGroup>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_all(
                "SELECT * FROM ring_groups WHERE tenant_id = $1 ORDER BY number, id \
                 LIMIT $2 OFFSET $3",
                &args![
                    db_id("tenant_id", tenant.id())?,
                    i64::from(top),
                    db_u64("skip", skip)?
                ],
            )
            .await?
            .iter()
            .map(from_row)
            .collect()
        })
    }

    pub async fn count_ring_groups(&self, tenant: TenantId) -> Result<u64, StoreError> {
        with_conn!(&self.pool, |conn| async {
            let row = conn
                .fetch_optional(
                    "SELECT COUNT(*) AS n FROM ring_groups WHERE tenant_id = $1",
                    &args![db_id("tenant_id", tenant.id())?],
                )
                .await?
                .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
            crate::convert::get_u64(&row, "n")
        })
    }

    /// Every group of every tenant: what the engine's directory loads.
    pub async fn all_ring_groups(&self) -> Result<Vec<RingGroup>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_all(
                "SELECT * FROM ring_groups ORDER BY tenant_id, number",
                &args![],
            )
            .await?
            .iter()
            .map(from_row)
            .collect()
        })
    }
}
