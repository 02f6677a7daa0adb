//! Call queues (issue 14): numbers of a tenant's extension space whose
//! callers wait for its agents. As for IVRs, the writing transaction
//! checks what only the database knows: the number is nobody else's,
//! every agent is a user of the tenant, the overflow destination is a
//! number of the tenant, the music on hold a prompt of the tenant. Agents
//! log in and out with [`Store::set_queue_agent`]. Every write bumps the
//! directory version (the engine's directory holds queues).

use cdr::{Id, TenantId, UnixMillis};

use crate::Store;
use crate::convert::{db_id, db_ms, db_u64, get_id, get_ms, get_opt_id, get_u32, get_u64};
use crate::db::{Conn, Row, args, with_conn, with_write_tx};
use crate::directory::bump_version;
use crate::error::StoreError;
use crate::ivrs::{AppDeletion, HANG_UP};

/// A queue of a tenant, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queue {
    pub id: Id,
    pub tenant_id: TenantId,
    pub number: String,
    pub name: String,
    /// `ring_all`, `longest_idle`, `round_robin` or `fewest_calls`.
    pub strategy: String,
    pub agents: Vec<String>,
    pub logged_in: Vec<String>,
    pub agent_timeout_secs: u32,
    pub wrap_up_secs: u32,
    pub max_wait_secs: Option<u32>,
    pub max_length: Option<u32>,
    pub overflow: Option<String>,
    pub moh_prompt_id: Option<Id>,
    /// Seconds between a waiting caller's position announcements; 0:
    /// none.
    pub announce_position_secs: u32,
    /// Callback calls tried at most for a caller who pressed 1; 0: no
    /// callback offered.
    pub callback_attempts: u32,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// What a queue write did. The refusals wrote nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueWrite {
    Written,
    NotFound,
    NumberTaken,
    /// This agent is no user of the tenant.
    UnknownAgent(String),
    UnknownDestination(String),
    UnknownPrompt(Id),
}

/// What logging an agent in or out did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentLogin {
    Done(Box<Queue>),
    /// No such queue in the tenant.
    NotFound,
    /// The extension is not one of the queue's agents.
    NotAnAgent,
}

fn json_list(row: &impl Row, column: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(&row.text(column)?)
        .map_err(|e| StoreError::Corrupt(format!("queue {column}: {e}")))
}

fn opt_u32(row: &impl Row, column: &str) -> Result<Option<u32>, StoreError> {
    row.opt_int(column)?
        .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("queue {column}"))))
        .transpose()
}

fn from_row(row: &impl Row) -> Result<Queue, StoreError> {
    Ok(Queue {
        id: get_id(row, "id")?,
        tenant_id: get_id(row, "tenant_id")?,
        number: row.text("number")?,
        name: row.text("name")?,
        strategy: row.text("strategy")?,
        agents: json_list(row, "agents")?,
        logged_in: json_list(row, "logged_in")?,
        agent_timeout_secs: get_u32(row, "agent_timeout_secs")?,
        wrap_up_secs: get_u32(row, "wrap_up_secs")?,
        max_wait_secs: opt_u32(row, "max_wait_secs")?,
        max_length: opt_u32(row, "max_length")?,
        overflow: row.opt_text("overflow")?,
        moh_prompt_id: get_opt_id(row, "moh_prompt_id")?,
        announce_position_secs: get_u32(row, "announce_position_secs")?,
        callback_attempts: get_u32(row, "callback_attempts")?,
        created_at: get_ms(row, "created_at")?,
        updated_at: get_ms(row, "updated_at")?,
    })
}

/// Whether `number` is a queue of `tenant` other than `except`.
pub(crate) async fn is_queue(
    conn: &mut impl Conn,
    tenant: i64,
    number: &str,
    except: Option<i64>,
) -> Result<bool, StoreError> {
    Ok(conn
        .fetch_optional(
            "SELECT id FROM queues WHERE tenant_id = $1 AND number = $2 AND id <> $3",
            &args![tenant, number, except.unwrap_or(-1)],
        )
        .await?
        .is_some())
}

async fn check(conn: &mut impl Conn, q: &Queue) -> Result<QueueWrite, StoreError> {
    let tenant = db_id("tenant_id", q.tenant_id.id())?;
    let id = db_id("queue_id", q.id)?;
    if crate::ring_groups::user_or_group(conn, tenant, &q.number, None).await?
        || crate::ivrs::is_ivr(conn, tenant, &q.number, None).await?
        || is_queue(conn, tenant, &q.number, Some(id)).await?
    {
        return Ok(QueueWrite::NumberTaken);
    }
    for agent in &q.agents {
        let found = conn
            .fetch_optional(
                "SELECT id FROM users WHERE tenant_id = $1 AND extension = $2",
                &args![tenant, agent.as_str()],
            )
            .await?;
        if found.is_none() {
            return Ok(QueueWrite::UnknownAgent(agent.clone()));
        }
    }
    if let Some(d) = q
        .overflow
        .as_deref()
        .filter(|d| *d != HANG_UP && *d != q.number)
        && !crate::ring_groups::number_used(conn, tenant, d, None).await?
    {
        return Ok(QueueWrite::UnknownDestination(d.to_owned()));
    }
    if let Some(prompt) = q.moh_prompt_id {
        let found = conn
            .fetch_optional(
                "SELECT id FROM prompts WHERE tenant_id = $1 AND id = $2",
                &args![tenant, db_id("moh_prompt_id", prompt)?],
            )
            .await?;
        if found.is_none() {
            return Ok(QueueWrite::UnknownPrompt(prompt));
        }
    }
    Ok(QueueWrite::Written)
}

async fn write(conn: &mut impl Conn, q: &Queue, create: bool) -> Result<bool, StoreError> {
    let list = |v: &Vec<String>| serde_json::Value::from(v.clone()).to_string();
    let (agents, logged_in) = (list(&q.agents), list(&q.logged_in));
    let moh = q
        .moh_prompt_id
        .map(|p| db_id("moh_prompt_id", p))
        .transpose()?;
    let sql = if create {
        "INSERT INTO queues (id, tenant_id, number, name, strategy, agents, logged_in, \
         agent_timeout_secs, wrap_up_secs, max_wait_secs, max_length, overflow, moh_prompt_id, \
         created_at, updated_at, announce_position_secs, callback_attempts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    } else {
        "UPDATE queues SET number = $3, name = $4, strategy = $5, agents = $6, logged_in = $7, \
         agent_timeout_secs = $8, wrap_up_secs = $9, max_wait_secs = $10, max_length = $11, \
         overflow = $12, moh_prompt_id = $13, updated_at = $15, announce_position_secs = $16, \
         callback_attempts = $17 \
         WHERE id = $1 AND tenant_id = $2 AND created_at = $14"
    };
    let n = conn
        .execute(
            sql,
            &args![
                db_id("queue_id", q.id)?,
                db_id("tenant_id", q.tenant_id.id())?,
                q.number.as_str(),
                q.name.as_str(),
                q.strategy.as_str(),
                agents.as_str(),
                logged_in.as_str(),
                i64::from(q.agent_timeout_secs),
                i64::from(q.wrap_up_secs),
                q.max_wait_secs.map(i64::from),
                q.max_length.map(i64::from),
                q.overflow.as_deref(),
                moh,
                db_ms("created_at", q.created_at)?,
                db_ms("updated_at", q.updated_at)?,
                i64::from(q.announce_position_secs),
                i64::from(q.callback_attempts),
            ],
        )
        .await?;
    Ok(n > 0)
}

pub(crate) async fn delete_tenant_rows(
    conn: &mut impl Conn,
    tenant: i64,
) -> Result<(), StoreError> {
    conn.execute("DELETE FROM queues WHERE tenant_id = $1", &args![tenant])
        .await?;
    Ok(())
}

async fn fetch(
    conn: &mut impl Conn,
    tenant: TenantId,
    id: Id,
) -> Result<Option<Queue>, StoreError> {
    conn.fetch_optional(
        "SELECT * FROM queues WHERE tenant_id = $1 AND id = $2",
        &args![db_id("tenant_id", tenant.id())?, db_id("queue_id", id)?],
    )
    .await?
    .map(|row| from_row(&row))
    .transpose()
}

impl Store {
    pub async fn create_queue(&self, q: &Queue) -> Result<QueueWrite, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let verdict = check(&mut *conn, q).await?;
            if verdict == QueueWrite::Written {
                write(&mut *conn, q, true).await?;
                bump_version(&mut *conn).await?;
            }
            Ok::<QueueWrite, StoreError>(verdict)
        })
    }

    pub async fn update_queue(&self, q: &Queue) -> Result<QueueWrite, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let mut verdict = check(&mut *conn, q).await?;
            if verdict == QueueWrite::Written {
                if write(&mut *conn, q, false).await? {
                    bump_version(&mut *conn).await?;
                } else {
                    verdict = QueueWrite::NotFound;
                }
            }
            Ok::<QueueWrite, StoreError>(verdict)
        })
    }

    /// Deletes the tenant's queue `id`, unless a DID rule rings it.
    pub async fn delete_queue(&self, tenant: TenantId, id: Id) -> Result<AppDeletion, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let tenant_id = db_id("tenant_id", tenant.id())?;
            let Some(queue) = fetch(&mut *conn, tenant, id).await? else {
                return Ok(AppDeletion::NotFound);
            };
            let dids = crate::routing_rules::dids_ringing(
                &mut *conn,
                tenant_id,
                "queue",
                queue.number.as_str(),
            )
            .await?;
            if !dids.is_empty() {
                return Ok(AppDeletion::InUse(dids));
            }
            conn.execute(
                "DELETE FROM queues WHERE id = $1 AND tenant_id = $2",
                &args![db_id("queue_id", id)?, tenant_id],
            )
            .await?;
            bump_version(&mut *conn).await?;
            Ok::<AppDeletion, StoreError>(AppDeletion::Deleted)
        })
    }

    pub async fn queue(&self, tenant: TenantId, id: Id) -> Result<Option<Queue>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            fetch(&mut *conn, tenant, id).await
        })
    }

    /// A page of the tenant's queues, by number, and how many it has.
    pub async fn queue_page(
        &self,
        tenant: TenantId,
        top: u32,
        skip: u64,
    ) -> Result<(u64, Vec<Queue>), StoreError> {
        with_conn!(&self.pool, |conn| async {
            let t = db_id("tenant_id", tenant.id())?;
            let count = conn
                .fetch_optional(
                    "SELECT COUNT(*) AS n FROM queues WHERE tenant_id = $1",
                    &args![t],
                )
                .await?
                .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
            let items = conn
                .fetch_all(
                    "SELECT * FROM queues WHERE tenant_id = $1 ORDER BY number, id \
                     LIMIT $2 OFFSET $3",
                    &args![t, i64::from(top), db_u64("skip", skip)?],
                )
                .await?
                .iter()
                .map(from_row)
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, StoreError>((get_u64(&count, "n")?, items))
        })
    }

    /// Every queue of every tenant: what the engine's directory loads.
    pub async fn all_queues(&self) -> Result<Vec<Queue>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_all("SELECT * FROM queues ORDER BY tenant_id, number", &args![])
                .await?
                .iter()
                .map(from_row)
                .collect()
        })
    }

    /// As [`Store::set_queue_agent`], naming the queue by its number (an
    /// agent's feature code, from the engine).
    pub async fn set_queue_agent_by_number(
        &self,
        tenant: TenantId,
        number: &str,
        extension: &str,
        on: bool,
        at: UnixMillis,
    ) -> Result<AgentLogin, StoreError> {
        let found = with_conn!(&self.pool, |conn| async {
            conn.fetch_optional(
                "SELECT id FROM queues WHERE tenant_id = $1 AND number = $2",
                &args![db_id("tenant_id", tenant.id())?, number],
            )
            .await?
            .map(|row| get_id(&row, "id"))
            .transpose()
        })?;
        match found {
            Some(id) => self.set_queue_agent(tenant, id, extension, on, at).await,
            None => Ok(AgentLogin::NotFound),
        }
    }

    /// Logs agent `extension` in (`on`) or out of the tenant's queue `id`.
    pub async fn set_queue_agent(
        &self,
        tenant: TenantId,
        id: Id,
        extension: &str,
        on: bool,
        at: UnixMillis,
    ) -> Result<AgentLogin, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let Some(mut q) = fetch(&mut *conn, tenant, id).await? else {
                return Ok(AgentLogin::NotFound);
            };
            if !q.agents.iter().any(|a| a == extension) {
                return Ok(AgentLogin::NotAnAgent);
            }
            q.logged_in.retain(|a| a != extension);
            if on {
                q.logged_in.push(extension.to_owned());
            }
            q.updated_at = at;
            let logged_in = serde_json::Value::from(q.logged_in.clone()).to_string();
            conn.execute(
                "UPDATE queues SET logged_in = $3, updated_at = $4 WHERE id = $1 AND tenant_id = $2",
                &args![
                    db_id("queue_id", id)?,
                    db_id("tenant_id", tenant.id())?,
                    logged_in.as_str(),
                    db_ms("updated_at", at)?
                ],
            )
            .await?;
            bump_version(&mut *conn).await?;
            Ok::<AgentLogin, StoreError>(AgentLogin::Done(Box::new(q)))
        })
    }
}
