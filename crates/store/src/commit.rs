//! One group-commit transaction: sequences, outbox rows, open-session
//! journal, CDR rows.
//!
//! Everything here runs inside a transaction the writer opened; an error
//! anywhere rolls all of it back, sequence counters included, which is
//! what keeps sequences gap-free.

use std::collections::BTreeMap;

use cdr::{CallEvent, CdrRecord, EventType, SessionId, TenantId, WireEvent, WireProfile};

use crate::cdrs;
use crate::convert::{db_id, db_ms};
use crate::db::{Conn, Row, args};
use crate::error::StoreError;

/// What one writer command carries: the facts of one session since the
/// previous command, and what the builder made of them.
///
/// The engine applies [`CallEvent`]s to the session's [`cdr::Builder`] and
/// hands both sides to the writer:
///
/// * `events`: the events the builder accepted, in order. While the
///   session is open they are journaled, so a restart can replay them into
///   a new builder ([`StoreWriter::recover_open_sessions`](crate::StoreWriter::recover_open_sessions)).
/// * `wire`: the builder's output for them, in order. Each becomes one
///   outbox row with the tenant's next `sequence`.
///
/// A command that failed was not committed at all, journal included: send
/// it again before the session's next command, or a restart would replay
/// a journal with a hole in it.
///
/// When `wire` ends with `call_cdr` the command closes the session: the
/// CDR that event carries is inserted (with its targets) and the session's
/// open state is deleted, in the same transaction. The CDR is taken from
/// the event rather than passed beside it so the row and the event
/// delivered cannot disagree.
#[derive(Clone, Debug)]
pub struct SessionEvents {
    pub session_id: SessionId,
    pub tenant_id: TenantId,
    pub events: Vec<CallEvent>,
    pub wire: Vec<WireEvent>,
}

impl SessionEvents {
    /// The CDR this command commits, if it closes the session.
    pub fn record(&self) -> Option<&CdrRecord> {
        self.wire.last().and_then(WireEvent::cdr)
    }
}

/// A command checked and converted, ready to go into any transaction.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) command: SessionEvents,
    pub(crate) session: i64,
    pub(crate) tenant: i64,
    /// The events as journal JSON; empty when the command closes the
    /// session (nothing is journaled for a closed session).
    pub(crate) journal: Vec<String>,
    pub(crate) first_at: i64,
    pub(crate) last_at: i64,
}

pub(crate) fn prepare(command: SessionEvents) -> Result<Prepared, StoreError> {
    let invalid = |reason: String| StoreError::InvalidCommand {
        session: command.session_id,
        reason,
    };
    for wire in &command.wire {
        if wire.session_id() != command.session_id || wire.tenant_id() != command.tenant_id {
            return Err(invalid(format!(
                "{} {} belongs to session {} of tenant {}, not tenant {}",
                wire.event_type(),
                wire.event_id(),
                wire.session_id(),
                wire.tenant_id(),
                command.tenant_id
            )));
        }
    }
    let cdr_events = command
        .wire
        .iter()
        .filter(|w| w.event_type() == EventType::CallCdr)
        .count();
    let closes = command.record().is_some();
    if cdr_events > usize::from(closes) {
        return Err(invalid(
            "call_cdr must be the last wire event, and only one".into(),
        ));
    }
    if !closes && !command.wire.is_empty() && command.events.is_empty() {
        return Err(invalid(
            "wire events without the call events that produced them: the session could not be \
             rebuilt after a crash"
                .into(),
        ));
    }
    let journal = if closes {
        Vec::new()
    } else {
        command
            .events
            .iter()
            .map(|event| {
                serde_json::to_string(event)
                    .map_err(|e| invalid(format!("cannot journal {}: {e}", event.kind.name())))
            })
            .collect::<Result<_, _>>()?
    };
    let times = command
        .events
        .iter()
        .map(|e| e.at)
        .chain(command.wire.iter().map(WireEvent::time));
    let first_at = times.clone().min().unwrap_or_default();
    let last_at = times.max().unwrap_or_default();
    Ok(Prepared {
        session: db_id("session_id", command.session_id.id())?,
        tenant: db_id("tenant_id", command.tenant_id.id())?,
        journal,
        first_at: db_ms("event time", first_at)?,
        last_at: db_ms("event time", last_at)?,
        command,
    })
}

/// What one transaction assigned.
#[derive(Debug)]
pub(crate) struct Assigned {
    /// Per command, in batch order: the per-tenant sequence of each of its
    /// wire events.
    pub(crate) sequences: Vec<Vec<u64>>,
    /// The highest global sequence written, if any row was.
    pub(crate) last_global: Option<u64>,
}

/// Writes `batch` (in order) into the open transaction on `conn`.
///
/// Lock order, the same in every transaction so concurrent writers (other
/// nodes on a shared PostgreSQL) never deadlock: the global counter row
/// first, then each tenant's counter row in tenant order. Holding the
/// global row until commit also serializes outbox commits, so commit order
/// is sequence order: once a reader sees sequence `n`, every smaller
/// sequence is visible too.
pub(crate) async fn write_batch(
    conn: &mut impl Conn,
    batch: &[&Prepared],
    profile: &WireProfile,
    now: i64,
) -> Result<Assigned, StoreError> {
    let mut counters = reserve(conn, batch).await?;
    let mut sequences = Vec::with_capacity(batch.len());
    for p in batch {
        let record = p.command.record();
        if record.is_none() && !p.command.wire.is_empty() {
            open_session(conn, p).await?;
        }
        let mut assigned = Vec::with_capacity(p.command.wire.len());
        for wire in &p.command.wire {
            let (seq, global) = counters.take(p.tenant)?;
            let seq_u64 = counter_value("tenant_sequences.last_sequence", seq)?;
            let payload = wire.to_json(seq_u64, profile)?;
            let event_id = wire.event_id().to_string();
            conn.execute(
                "INSERT INTO outbox (tenant_id, sequence, global_sequence, event_id, event_type, \
                 session_id, created_at, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &args![
                    p.tenant,
                    seq,
                    global,
                    event_id.as_str(),
                    wire.event_type().as_str(),
                    p.session,
                    now,
                    payload.as_str(),
                ],
            )
            .await?;
            assigned.push(seq_u64);
        }
        match record {
            Some(record) => close_session(conn, p, record).await?,
            None => journal(conn, p).await?,
        }
        sequences.push(assigned);
    }
    Ok(Assigned {
        sequences,
        last_global: counters.last_global()?,
    })
}

/// The sequence ranges one transaction reserved: the batch's wire events
/// take them in order with [`Reserved::take`].
pub(crate) struct Reserved {
    total: i64,
    next_global: i64,
    next_sequence: BTreeMap<i64, i64>,
}

impl Reserved {
    /// The next (tenant sequence, global sequence) for a wire event of
    /// `tenant`.
    pub(crate) fn take(&mut self, tenant: i64) -> Result<(i64, i64), StoreError> {
        let sequence = self.next_sequence.get_mut(&tenant).ok_or_else(|| {
            StoreError::Corrupt("no sequence range for a tenant in the batch".into())
        })?;
        let taken = (*sequence, self.next_global);
        *sequence += 1;
        self.next_global += 1;
        Ok(taken)
    }

    /// The highest global sequence of the batch, if it has any wire event.
    pub(crate) fn last_global(&self) -> Result<Option<u64>, StoreError> {
        (self.total > 0)
            .then(|| counter_value("global_sequence.last_sequence", self.next_global - 1))
            .transpose()
    }
}

/// Reserves the batch's sequence ranges: the global counter row first,
/// then each tenant's in tenant order (the lock order described on
/// [`write_batch`]).
pub(crate) async fn reserve(
    conn: &mut impl Conn,
    batch: &[&Prepared],
) -> Result<Reserved, StoreError> {
    let mut per_tenant: BTreeMap<i64, i64> = BTreeMap::new();
    let mut total: i64 = 0;
    for p in batch {
        let n = i64::try_from(p.command.wire.len()).map_err(|_| StoreError::OutOfRange {
            field: "wire events",
            value: p.command.wire.len() as u64,
        })?;
        *per_tenant.entry(p.tenant).or_default() += n;
        total += n;
    }

    let mut next_global = 0;
    if total > 0 {
        let row = conn
            .fetch_optional(
                "UPDATE global_sequence SET last_sequence = last_sequence + $1 WHERE id = 1 \
                 RETURNING last_sequence",
                &args![total],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("global_sequence has no row".into()))?;
        next_global = row.int("last_sequence")? - total + 1;
    }
    let mut next_sequence: BTreeMap<i64, i64> = BTreeMap::new();
    for (&tenant, &n) in per_tenant.iter().filter(|(_, n)| **n > 0) {
        let row = conn
            .fetch_optional(
                "INSERT INTO tenant_sequences (tenant_id, last_sequence) VALUES ($1, $2) \
                 ON CONFLICT (tenant_id) DO UPDATE \
                 SET last_sequence = tenant_sequences.last_sequence + excluded.last_sequence \
                 RETURNING last_sequence",
                &args![tenant, n],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("tenant_sequences upsert returned no row".into()))?;
        next_sequence.insert(tenant, row.int("last_sequence")? - n + 1);
    }

    Ok(Reserved {
        total,
        next_global,
        next_sequence,
    })
}

/// A sequence derived from a counter row; negative only if the row was
/// tampered with.
pub(crate) fn counter_value(counter: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{counter} gave {value}")))
}

/// Creates the session's open-state row or moves its last activity
/// forward; refuses a session whose CDR is already committed (events after
/// the end would otherwise leave an orphan that recovery closes twice).
async fn open_session(conn: &mut impl Conn, p: &Prepared) -> Result<(), StoreError> {
    let touched = conn
        .execute(
            "INSERT INTO sessions (session_id, tenant_id, started_at, last_activity_at) \
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM cdrs WHERE session_id = $1) \
             ON CONFLICT (session_id) DO UPDATE SET last_activity_at = CASE \
             WHEN excluded.last_activity_at > sessions.last_activity_at \
             THEN excluded.last_activity_at ELSE sessions.last_activity_at END",
            &args![p.session, p.tenant, p.first_at, p.last_at],
        )
        .await?;
    if touched == 0 {
        return Err(StoreError::SessionClosed(p.command.session_id));
    }
    Ok(())
}

async fn journal(conn: &mut impl Conn, p: &Prepared) -> Result<(), StoreError> {
    for event in &p.journal {
        conn.execute(
            "INSERT INTO session_events (session_id, ordinal, event) \
             SELECT $1, COALESCE(MAX(ordinal) + 1, 0), $2 FROM session_events \
             WHERE session_id = $1",
            &args![p.session, event.as_str()],
        )
        .await?;
    }
    Ok(())
}

async fn close_session(
    conn: &mut impl Conn,
    p: &Prepared,
    record: &CdrRecord,
) -> Result<(), StoreError> {
    cdrs::insert(conn, record).await?;
    conn.execute(
        "DELETE FROM session_events WHERE session_id = $1",
        &args![p.session],
    )
    .await?;
    conn.execute(
        "DELETE FROM sessions WHERE session_id = $1",
        &args![p.session],
    )
    .await?;
    Ok(())
}
