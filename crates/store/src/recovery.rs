//! Closing the calls a crash interrupted (SPEC §3: "on restart, every
//! session without a CDR is finalised with `ended_time` = last activity
//! seen, `ended_reason: None`, and `"recovered": true`").
//!
//! The journal of an open session holds the exact [`CallEvent`]s its
//! builder accepted. Replaying them into a fresh [`Builder`] restores the
//! builder as it was (the builder is pure, and event ids are derived from
//! the session id and the event's ordinal, so they come out the same); the
//! builder then closes the session on [`CallEventKind::SessionRecovered`]
//! and the resulting `call_cdr` is committed through the writer like any
//! other session end, outbox row included. Committing the CDR deletes the
//! journal in the same transaction, so running recovery again finds
//! nothing: it is idempotent.

use std::collections::HashSet;

use cdr::{Builder, CallEvent, CallEventKind, CdrId, SessionId, TenantId, UnixMillis};

use crate::commit::SessionEvents;
use crate::convert::{db_id, get_id, get_ms};
use crate::db::{Conn, Row, args};
use crate::error::StoreError;
use crate::writer::StoreWriter;

/// A session with open state in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSession {
    pub session_id: SessionId,
    pub tenant_id: TenantId,
    pub started_at: UnixMillis,
    pub last_activity_at: UnixMillis,
}

/// Which open sessions a node may close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryScope {
    /// Every open session: a single node, or a cluster restarting as a
    /// whole.
    AllNodes,
    /// Only sessions whose id this Snowflake node made. Nodes sharing a
    /// PostgreSQL database use this, so a restarting node never closes
    /// calls another node is still carrying.
    Node(u16),
}

impl RecoveryScope {
    fn includes(self, session: SessionId) -> bool {
        match self {
            Self::AllNodes => true,
            Self::Node(node) => session.id().node() == node,
        }
    }
}

/// What [`StoreWriter::recover_open_sessions`] did.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    pub recovered: Vec<RecoveredSession>,
    /// Sessions that could not be closed (their journal is left in place
    /// for a later attempt), with the reason.
    pub failed: Vec<(SessionId, StoreError)>,
}

/// One session closed by recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredSession {
    pub session_id: SessionId,
    pub tenant_id: TenantId,
    pub cdr_id: CdrId,
    /// `ended_time` of the CDR: the last activity seen.
    pub ended_at: UnixMillis,
    /// The tenant sequence of its `call_cdr` outbox row.
    pub sequence: u64,
}

impl StoreWriter {
    /// Closes every open session in `scope` whose last activity is before
    /// `now`, each with a CDR marked `recovered`. Run it at start-up, before
    /// the engine takes calls: `now` is then the moment the node (re)started,
    /// and a session touched at or after it belongs to a live engine.
    ///
    /// Returns an error only if the open sessions cannot be listed; a
    /// session that cannot be closed is reported in
    /// [`RecoveryReport::failed`] and the others are still closed.
    pub async fn recover_open_sessions(
        &self,
        scope: RecoveryScope,
        now: UnixMillis,
    ) -> Result<RecoveryReport, StoreError> {
        self.recover_orphans(scope, now, &HashSet::new()).await
    }

    /// [`recover_open_sessions`](Self::recover_open_sessions) while the
    /// node runs (finding M7 of issue 17): closes the open sessions in
    /// `scope` idle since before `before`, except `live`, the sessions the
    /// node's CDR task still carries. What is left is a session whose
    /// commands the store refused for good, or one a crashed engine of
    /// this node left (another node's, on a shared database, is never in
    /// `scope`).
    ///
    /// The caller takes the `live` snapshot before calling and picks
    /// `before` well behind it (a minute), so that a session whose first
    /// facts were still on their way to the CDR task at the snapshot
    /// (committed since, not in `live`) is not idle long enough to be
    /// closed.
    pub async fn recover_orphans(
        &self,
        scope: RecoveryScope,
        before: UnixMillis,
        live: &HashSet<SessionId>,
    ) -> Result<RecoveryReport, StoreError> {
        let mut report = RecoveryReport::default();
        // Queue every closing command first, then wait: the writer commits
        // them in a few group transactions rather than one per session.
        let mut pending = Vec::new();
        for session in self.store.open_sessions().await? {
            if !scope.includes(session.session_id)
                || session.last_activity_at >= before
                || live.contains(&session.session_id)
            {
                continue;
            }
            let queued = match self.rebuild(&session).await {
                Ok((command, recovered)) => self
                    .enqueue(command)
                    .await
                    .map(|commit| (recovered, commit)),
                Err(error) => Err(error),
            };
            match queued {
                Ok(queued) => pending.push(queued),
                Err(error) => {
                    report
                        .failed
                        .push(failure(session.session_id, session.tenant_id, error))
                }
            }
        }
        for (mut recovered, commit) in pending {
            let sequence = commit.await.and_then(|committed| {
                committed.sequences.last().copied().ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "session {}: no call_cdr sequence",
                        recovered.session_id
                    ))
                })
            });
            match sequence {
                Ok(sequence) => {
                    recovered.sequence = sequence;
                    report.recovered.push(recovered);
                }
                Err(error) => {
                    report
                        .failed
                        .push(failure(recovered.session_id, recovered.tenant_id, error))
                }
            }
        }
        Ok(report)
    }

    /// Replays the session's journal and closes it: the command that
    /// commits the recovered CDR, and what it will have recovered.
    async fn rebuild(
        &self,
        session: &OpenSession,
    ) -> Result<(SessionEvents, RecoveredSession), StoreError> {
        let mut builder = Builder::new();
        for (ordinal, text) in self.store.session_journal(session.session_id).await? {
            // A record must not be lost to one unreadable entry: skip it and
            // close the session with what is left.
            let replayed = serde_json::from_str::<CallEvent>(&text)
                .map_err(|e| e.to_string())
                .and_then(|event| builder.apply(event).map_err(|e| e.to_string()));
            if let Err(error) = replayed {
                tracing::warn!(
                    session_id = %session.session_id,
                    ordinal,
                    %error,
                    "skipping a journal entry the builder refuses"
                );
            }
        }
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!("journal of session {}: {what}", session.session_id))
        };
        let ended_at = builder
            .last_activity()
            .ok_or_else(|| corrupt("no session_started"))?;
        let recovered = CallEvent::new(ended_at, CallEventKind::SessionRecovered);
        let wire = builder
            .apply(recovered.clone())
            .map_err(|e| corrupt(&e.to_string()))?;
        let cdr_id = builder
            .record()
            .map(|record| record.cdr_id)
            .ok_or_else(|| corrupt("recovery produced no CDR"))?;
        let command = SessionEvents {
            session_id: session.session_id,
            tenant_id: session.tenant_id,
            events: vec![recovered],
            wire,
        };
        let recovered = RecoveredSession {
            session_id: session.session_id,
            tenant_id: session.tenant_id,
            cdr_id,
            ended_at,
            sequence: 0,
        };
        Ok((command, recovered))
    }
}

fn failure(
    session_id: SessionId,
    tenant_id: TenantId,
    error: StoreError,
) -> (SessionId, StoreError) {
    tracing::error!(
        %session_id,
        %tenant_id,
        %error,
        "cannot close the session after a restart"
    );
    (session_id, error)
}

/// Sessions with open state and no CDR, oldest first.
pub(crate) async fn open_sessions(conn: &mut impl Conn) -> Result<Vec<OpenSession>, StoreError> {
    conn.fetch_all(
        "SELECT s.session_id, s.tenant_id, s.started_at, s.last_activity_at FROM sessions s \
         WHERE NOT EXISTS (SELECT 1 FROM cdrs c WHERE c.session_id = s.session_id) \
         ORDER BY s.session_id",
        &[],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(OpenSession {
            session_id: get_id(row, "session_id")?,
            tenant_id: get_id(row, "tenant_id")?,
            started_at: get_ms(row, "started_at")?,
            last_activity_at: get_ms(row, "last_activity_at")?,
        })
    })
    .collect()
}

/// The journal of one session: (ordinal, event JSON) in order.
pub(crate) async fn session_journal(
    conn: &mut impl Conn,
    session_id: SessionId,
) -> Result<Vec<(i64, String)>, StoreError> {
    conn.fetch_all(
        "SELECT ordinal, event FROM session_events WHERE session_id = $1 ORDER BY ordinal",
        &args![db_id("session_id", session_id.id())?],
    )
    .await?
    .iter()
    .map(|row| Ok((row.int("ordinal")?, row.text("event")?)))
    .collect()
}
