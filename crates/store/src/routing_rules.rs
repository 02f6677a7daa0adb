//! Routing rules (issue 10): DID rules per trunk (inbound) and the
//! tenant's ordered outbound rules with their trunk lists.
//!
//! References are checked inside the write's transaction, before anything
//! is written: a rule naming a trunk or an extension the tenant does not
//! have is refused whole ([`RuleWrite`]), never half-written. The foreign
//! keys are the second fence (a trunk deleted meanwhile).

use cdr::{Id, TenantId, UnixMillis};

use crate::Store;
use crate::convert::{db_id, db_ms, db_u64, get_id, get_ms, get_u32};
use crate::db::{Conn, Row, args, with_conn, with_write_tx};
use crate::directory::bump_version;
use crate::error::StoreError;

/// A DID (or a block of DIDs) of a trunk and where its calls go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundRule {
    pub id: Id,
    pub tenant_id: TenantId,
    pub trunk_id: Id,
    pub did: String,
    /// `exact` or `prefix`.
    pub match_kind: String,
    /// `extension` (ring groups, IVRs and queues later).
    pub destination_kind: String,
    pub destination: String,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// One outbound rule of a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundRule {
    pub id: Id,
    pub tenant_id: TenantId,
    pub name: String,
    /// Rules are evaluated by ascending priority (then id).
    pub priority: u32,
    pub pattern: String,
    /// Empty: every caller.
    pub from_extensions: Vec<String>,
    pub strip_digits: u32,
    pub prepend: String,
    pub caller_id: String,
    /// In failover order.
    pub trunks: Vec<Id>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// What a rule write did. The refusals wrote nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleWrite {
    Written,
    /// No such rule in the tenant (update).
    NotFound,
    /// The tenant has no trunk with this id.
    UnknownTrunk(Id),
    /// The tenant has no user with this extension.
    UnknownExtension(String),
}

async fn trunk_exists(conn: &mut impl Conn, tenant: i64, trunk: Id) -> Result<bool, StoreError> {
    Ok(conn
        .fetch_optional(
            "SELECT id FROM trunks WHERE id = $1 AND tenant_id = $2",
            &args![db_id("trunk_id", trunk)?, tenant],
        )
        .await?
        .is_some())
}

async fn extension_exists(
    conn: &mut impl Conn,
    tenant: i64,
    extension: &str,
) -> Result<bool, StoreError> {
    Ok(conn
        .fetch_optional(
            "SELECT id FROM users WHERE tenant_id = $1 AND extension = $2",
            &args![tenant, extension],
        )
        .await?
        .is_some())
}

async fn ring_group_exists(
    conn: &mut impl Conn,
    tenant: i64,
    number: &str,
) -> Result<bool, StoreError> {
    Ok(conn
        .fetch_optional(
            "SELECT id FROM ring_groups WHERE tenant_id = $1 AND number = $2",
            &args![tenant, number],
        )
        .await?
        .is_some())
}

// Inbound ---------------------------------------------------------------------

fn inbound_from_row(row: &impl Row) -> Result<InboundRule, StoreError> {
    Ok(InboundRule {
        id: get_id(row, "id")?,
        tenant_id: get_id(row, "tenant_id")?,
        trunk_id: get_id(row, "trunk_id")?,
        did: row.text("did")?,
        match_kind: row.text("match_kind")?,
        destination_kind: row.text("destination_kind")?,
        destination: row.text("destination")?,
        created_at: get_ms(row, "created_at")?,
        updated_at: get_ms(row, "updated_at")?,
    })
}

/// The DIDs whose rules ring `number` as a `kind` destination (`ring_group`,
/// `ivr`, `queue`), in order: what keeps that number's owner from being
/// deleted.
pub(crate) async fn dids_ringing(
    conn: &mut impl Conn,
    tenant: i64,
    kind: &str,
    number: &str,
) -> Result<Vec<String>, StoreError> {
    conn.fetch_all(
        "SELECT did FROM inbound_rules WHERE tenant_id = $1 \
         AND destination_kind = $2 AND destination = $3 ORDER BY did",
        &args![tenant, kind, number],
    )
    .await?
    .iter()
    .map(|r| r.text("did"))
    .collect::<Result<_, _>>()
    .map_err(StoreError::from)
}

/// The references of an inbound rule, checked in the write's transaction.
async fn check_inbound(conn: &mut impl Conn, rule: &InboundRule) -> Result<RuleWrite, StoreError> {
    let tenant = db_id("tenant_id", rule.tenant_id.id())?;
    if !trunk_exists(conn, tenant, rule.trunk_id).await? {
        return Ok(RuleWrite::UnknownTrunk(rule.trunk_id));
    }
    let exists = match rule.destination_kind.as_str() {
        "extension" => extension_exists(conn, tenant, &rule.destination).await?,
        "ring_group" => ring_group_exists(conn, tenant, &rule.destination).await?,
        "ivr" => crate::ivrs::is_ivr(conn, tenant, &rule.destination, None).await?,
        "queue" => crate::queues::is_queue(conn, tenant, &rule.destination, None).await?,
        _ => true,
    };
    if !exists {
        return Ok(RuleWrite::UnknownExtension(rule.destination.clone()));
    }
    Ok(RuleWrite::Written)
}

async fn write_inbound(
    conn: &mut impl Conn,
    rule: &InboundRule,
    create: bool,
) -> Result<RuleWrite, StoreError> {
    let checked = check_inbound(conn, rule).await?;
    if checked != RuleWrite::Written {
        return Ok(checked);
    }
    // Both statements bind the same values; `$8` is the creation time on
    // insert and the change time on update.
    let at = if create {
        rule.created_at
    } else {
        rule.updated_at
    };
    let values = args![
        db_id("rule_id", rule.id)?,
        db_id("tenant_id", rule.tenant_id.id())?,
        db_id("trunk_id", rule.trunk_id)?,
        rule.did.as_str(),
        rule.match_kind.as_str(),
        rule.destination_kind.as_str(),
        rule.destination.as_str(),
        db_ms("updated_at", at)?,
    ];
    let n = if create {
        conn.execute(
            "INSERT INTO inbound_rules (id, tenant_id, trunk_id, did, match_kind, \
             destination_kind, destination, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            &values,
        )
        .await?
    } else {
        conn.execute(
            "UPDATE inbound_rules SET trunk_id = $3, did = $4, match_kind = $5, \
             destination_kind = $6, destination = $7, updated_at = $8 \
             WHERE id = $1 AND tenant_id = $2",
            &values,
        )
        .await?
    };
    if n == 0 {
        return Ok(RuleWrite::NotFound);
    }
    bump_version(conn).await?;
    Ok(RuleWrite::Written)
}

// Outbound --------------------------------------------------------------------

fn outbound_from_row(row: &impl Row) -> Result<OutboundRule, StoreError> {
    let from: Vec<String> = serde_json::from_str(&row.text("from_extensions")?)
        .map_err(|e| StoreError::Corrupt(format!("from_extensions: {e}")))?;
    Ok(OutboundRule {
        id: get_id(row, "id")?,
        tenant_id: get_id(row, "tenant_id")?,
        name: row.text("name")?,
        priority: get_u32(row, "priority")?,
        pattern: row.text("pattern")?,
        from_extensions: from,
        strip_digits: get_u32(row, "strip_digits")?,
        prepend: row.text("prepend")?,
        caller_id: row.text("caller_id")?,
        trunks: Vec::new(),
        created_at: get_ms(row, "created_at")?,
        updated_at: get_ms(row, "updated_at")?,
    })
}

/// Fills each rule's trunk list (one query for all of them).
async fn attach_trunks(
    conn: &mut impl Conn,
    tenant: Option<TenantId>,
    rules: &mut [OutboundRule],
) -> Result<(), StoreError> {
    let rows = match tenant {
        Some(t) => {
            conn.fetch_all(
                "SELECT rt.rule_id, rt.trunk_id FROM outbound_rule_trunks rt \
                 JOIN outbound_rules r ON r.id = rt.rule_id \
                 WHERE r.tenant_id = $1 ORDER BY rt.rule_id, rt.position",
                &args![db_id("tenant_id", t.id())?],
            )
            .await?
        }
        None => {
            conn.fetch_all(
                "SELECT rule_id, trunk_id FROM outbound_rule_trunks ORDER BY rule_id, position",
                &args![],
            )
            .await?
        }
    };
    for row in &rows {
        let rule: Id = get_id(row, "rule_id")?;
        let trunk: Id = get_id(row, "trunk_id")?;
        if let Some(r) = rules.iter_mut().find(|r| r.id == rule) {
            r.trunks.push(trunk);
        }
    }
    Ok(())
}

async fn write_outbound(
    conn: &mut impl Conn,
    rule: &OutboundRule,
    create: bool,
) -> Result<RuleWrite, StoreError> {
    let tenant = db_id("tenant_id", rule.tenant_id.id())?;
    for trunk in &rule.trunks {
        if !trunk_exists(conn, tenant, *trunk).await? {
            return Ok(RuleWrite::UnknownTrunk(*trunk));
        }
    }
    for extension in &rule.from_extensions {
        if !extension_exists(conn, tenant, extension).await? {
            return Ok(RuleWrite::UnknownExtension(extension.clone()));
        }
    }
    let id = db_id("rule_id", rule.id)?;
    let from = serde_json::Value::from(rule.from_extensions.clone()).to_string();
    let values = args![
        id,
        tenant,
        rule.name.as_str(),
        i64::from(rule.priority),
        rule.pattern.as_str(),
        from.as_str(),
        i64::from(rule.strip_digits),
        rule.prepend.as_str(),
        rule.caller_id.as_str(),
        db_ms(
            "updated_at",
            if create {
                rule.created_at
            } else {
                rule.updated_at
            }
        )?,
    ];
    // As for DID rules: `$10` is the creation time on insert, the change
    // time on update.
    let n = if create {
        conn.execute(
            "INSERT INTO outbound_rules (id, tenant_id, name, priority, pattern, \
             from_extensions, strip_digits, prepend, caller_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
            &values,
        )
        .await?
    } else {
        conn.execute(
            "UPDATE outbound_rules SET name = $3, priority = $4, pattern = $5, \
             from_extensions = $6, strip_digits = $7, prepend = $8, caller_id = $9, \
             updated_at = $10 WHERE id = $1 AND tenant_id = $2",
            &values,
        )
        .await?
    };
    if n == 0 {
        return Ok(RuleWrite::NotFound);
    }
    conn.execute(
        "DELETE FROM outbound_rule_trunks WHERE rule_id = $1",
        &args![id],
    )
    .await?;
    for (position, trunk) in rule.trunks.iter().enumerate() {
        conn.execute(
            "INSERT INTO outbound_rule_trunks (rule_id, position, trunk_id) VALUES ($1, $2, $3)",
            &args![
                id,
                db_u64("position", position as u64)?,
                db_id("trunk_id", *trunk)?
            ],
        )
        .await?;
    }
    bump_version(conn).await?;
    Ok(RuleWrite::Written)
}

async fn outbound_rules(
    conn: &mut impl Conn,
    tenant: Option<TenantId>,
) -> Result<Vec<OutboundRule>, StoreError> {
    let rows = match tenant {
        Some(t) => {
            conn.fetch_all(
                "SELECT * FROM outbound_rules WHERE tenant_id = $1 ORDER BY priority, id",
                &args![db_id("tenant_id", t.id())?],
            )
            .await?
        }
        None => {
            conn.fetch_all(
                "SELECT * FROM outbound_rules ORDER BY tenant_id, priority, id",
                &args![],
            )
            .await?
        }
    };
    let mut rules: Vec<OutboundRule> = rows
        .iter()
        .map(outbound_from_row)
        .collect::<Result<_, _>>()?;
    attach_trunks(conn, tenant, &mut rules).await?;
    Ok(rules)
}

impl Store {
    /// Creates a DID rule; [`StoreError::Conflict`] if the trunk has the
    /// same DID with the same match already.
    pub async fn create_inbound_rule(&self, rule: &InboundRule) -> Result<RuleWrite, StoreError> {
        with_write_tx!(&self.pool, |conn| write_inbound(&mut *conn, rule, true))
    }

    /// Replaces a DID rule (matched by id and tenant).
    pub async fn update_inbound_rule(&self, rule: &InboundRule) -> Result<RuleWrite, StoreError> {
        with_write_tx!(&self.pool, |conn| write_inbound(&mut *conn, rule, false))
    }

    /// `false` if the tenant has no such rule.
    pub async fn delete_inbound_rule(&self, tenant: TenantId, id: Id) -> Result<bool, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let n = conn
                .execute(
                    "DELETE FROM inbound_rules WHERE id = $1 AND tenant_id = $2",
                    &args![db_id("rule_id", id)?, db_id("tenant_id", tenant.id())?],
                )
                .await?;
            if n > 0 {
                bump_version(&mut *conn).await?;
            }
            Ok::<bool, StoreError>(n > 0)
        })
    }

    pub async fn inbound_rule(
        &self,
        tenant: TenantId,
        id: Id,
    ) -> Result<Option<InboundRule>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_optional(
                "SELECT * FROM inbound_rules WHERE id = $1 AND tenant_id = $2",
                &args![db_id("rule_id", id)?, db_id("tenant_id", tenant.id())?],
            )
            .await?
            .map(|row| inbound_from_row(&row))
            .transpose()
        })
    }

    /// A page of the tenant's DID rules (optionally of one trunk), by DID.
    pub async fn inbound_rule_page(
        &self,
        tenant: TenantId,
        trunk: Option<Id>,
        top: u32,
        skip: u64,
    ) -> Result<(u64, Vec<InboundRule>), StoreError> {
        let trunk = trunk.map(|t| db_id("trunk_id", t)).transpose()?;
        with_conn!(&self.pool, |conn| async {
            let tenant = db_id("tenant_id", tenant.id())?;
            let count = conn
                .fetch_optional(
                    "SELECT COUNT(*) AS n FROM inbound_rules WHERE tenant_id = $1 \
                     AND ($2 IS NULL OR trunk_id = $2)",
                    &args![tenant, trunk],
                )
                .await?
                .ok_or_else(|| StoreError::Corrupt("COUNT returned no row".into()))?;
            let items = conn
                .fetch_all(
                    "SELECT * FROM inbound_rules WHERE tenant_id = $1 \
                     AND ($2 IS NULL OR trunk_id = $2) \
                     ORDER BY did, id LIMIT $3 OFFSET $4",
                    &args![tenant, trunk, i64::from(top), db_u64("skip", skip)?],
                )
                .await?
                .iter()
                .map(inbound_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, StoreError>((crate::convert::get_u64(&count, "n")?, items))
        })
    }

    /// Every DID rule of every tenant: what the engine loads.
    pub async fn all_inbound_rules(&self) -> Result<Vec<InboundRule>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_all(
                "SELECT * FROM inbound_rules ORDER BY tenant_id, id",
                &args![],
            )
            .await?
            .iter()
            .map(inbound_from_row)
            .collect()
        })
    }

    /// Creates an outbound rule with its trunk list, in one transaction;
    /// [`StoreError::Conflict`] if the tenant has a rule of that name.
    pub async fn create_outbound_rule(&self, rule: &OutboundRule) -> Result<RuleWrite, StoreError> {
        with_write_tx!(&self.pool, |conn| write_outbound(&mut *conn, rule, true))
    }

    /// Replaces an outbound rule and its trunk list.
    pub async fn update_outbound_rule(&self, rule: &OutboundRule) -> Result<RuleWrite, StoreError> {
        with_write_tx!(&self.pool, |conn| write_outbound(&mut *conn, rule, false))
    }

    /// `false` if the tenant has no such rule.
    pub async fn delete_outbound_rule(&self, tenant: TenantId, id: Id) -> Result<bool, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let id = db_id("rule_id", id)?;
            let tenant = db_id("tenant_id", tenant.id())?;
            conn.execute(
                "DELETE FROM outbound_rule_trunks WHERE rule_id IN \
                 (SELECT id FROM outbound_rules WHERE id = $1 AND tenant_id = $2)",
                &args![id, tenant],
            )
            .await?;
            let n = conn
                .execute(
                    "DELETE FROM outbound_rules WHERE id = $1 AND tenant_id = $2",
                    &args![id, tenant],
                )
                .await?;
            if n > 0 {
                bump_version(&mut *conn).await?;
            }
            Ok::<bool, StoreError>(n > 0)
        })
    }

    /// Every outbound rule of a tenant, in evaluation order.
    pub async fn outbound_rules_of_tenant(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<OutboundRule>, StoreError> {
        with_conn!(&self.pool, |conn| outbound_rules(conn, Some(tenant)))
    }

    /// Every outbound rule of every tenant, by tenant, in evaluation order.
    pub async fn all_outbound_rules(&self) -> Result<Vec<OutboundRule>, StoreError> {
        with_conn!(&self.pool, |conn| outbound_rules(conn, None))
    }
}

/// Who may dial out: a user's `outbound_allowed` and `outbound_caller_id`
/// (columns of `users`, read and written here so that they stay the
/// outbound routing's concern).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserOutbound {
    pub tenant_id: TenantId,
    pub user_id: Id,
    pub extension: String,
    /// New users may dial out (migration default).
    pub allowed: bool,
    /// Presented on trunks when the outbound rule has no caller ID.
    pub caller_id: String,
}

fn user_outbound_from_row(row: &impl Row) -> Result<UserOutbound, StoreError> {
    Ok(UserOutbound {
        tenant_id: get_id(row, "tenant_id")?,
        user_id: get_id(row, "id")?,
        extension: row.text("extension")?,
        allowed: row.boolean("outbound_allowed")?,
        caller_id: row.text("outbound_caller_id")?,
    })
}

impl Store {
    /// The user's outbound settings (`None` for another tenant's user).
    pub async fn user_outbound(
        &self,
        tenant: TenantId,
        user: Id,
    ) -> Result<Option<UserOutbound>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_optional(
                "SELECT id, tenant_id, extension, outbound_allowed, outbound_caller_id \
                 FROM users WHERE tenant_id = $1 AND id = $2",
                &args![db_id("tenant_id", tenant.id())?, db_id("user_id", user)?],
            )
            .await?
            .map(|row| user_outbound_from_row(&row))
            .transpose()
        })
    }

    /// Sets a user's outbound settings; `false` if the tenant has no such
    /// user.
    pub async fn set_user_outbound(&self, settings: &UserOutbound) -> Result<bool, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let n = conn
                .execute(
                    "UPDATE users SET outbound_allowed = $3, outbound_caller_id = $4 \
                     WHERE tenant_id = $1 AND id = $2",
                    &args![
                        db_id("tenant_id", settings.tenant_id.id())?,
                        db_id("user_id", settings.user_id)?,
                        settings.allowed,
                        settings.caller_id.as_str(),
                    ],
                )
                .await?;
            if n > 0 {
                bump_version(&mut *conn).await?;
            }
            Ok::<bool, StoreError>(n > 0)
        })
    }

    /// Every user's outbound settings: what the engine loads.
    pub async fn all_user_outbound(&self) -> Result<Vec<UserOutbound>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_all(
                "SELECT id, tenant_id, extension, outbound_allowed, outbound_caller_id \
                 FROM users ORDER BY tenant_id, extension",
                &args![],
            )
            .await?
            .iter()
            .map(user_outbound_from_row)
            .collect()
        })
    }

    /// The tenant's limit of outbound calls at once: `None` if there is
    /// no such tenant, `Some(None)` for no limit.
    pub async fn tenant_outbound_limit(
        &self,
        tenant: TenantId,
    ) -> Result<Option<Option<u32>>, StoreError> {
        with_conn!(&self.pool, |conn| async {
            conn.fetch_optional(
                "SELECT max_outbound_calls FROM tenants WHERE id = $1",
                &args![db_id("tenant_id", tenant.id())?],
            )
            .await?
            .map(|row| {
                row.opt_int("max_outbound_calls")?
                    .map(|v| {
                        u32::try_from(v)
                            .map_err(|_| StoreError::Corrupt(format!("max_outbound_calls = {v}")))
                    })
                    .transpose()
            })
            .transpose()
        })
    }

    /// Sets the tenant's outbound limit; `false` if there is no such tenant.
    pub async fn set_tenant_outbound_limit(
        &self,
        tenant: TenantId,
        limit: Option<u32>,
    ) -> Result<bool, StoreError> {
        with_write_tx!(&self.pool, |conn| async {
            let n = conn
                .execute(
                    "UPDATE tenants SET max_outbound_calls = $2 WHERE id = $1",
                    &args![db_id("tenant_id", tenant.id())?, limit.map(i64::from)],
                )
                .await?;
            if n > 0 {
                bump_version(&mut *conn).await?;
            }
            Ok::<bool, StoreError>(n > 0)
        })
    }
}
