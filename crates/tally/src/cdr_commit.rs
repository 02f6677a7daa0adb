//! Committing the CDR facts the engine emits (DESIGN.md, "The CDR
//! pipeline", steps 2 and 3): one `cdr::Builder` per session folds its
//! `CallEvent`s into wire events, and the store writer commits them.
//!
//! Per session at most one command is in flight, so a session's commands
//! commit in order, and the facts that arrive meanwhile are sent together
//! in the next one (group commit happens across sessions in the writer).
//! A command that failed is sent again, before anything newer of its
//! session, as the store requires; transient failures are retried with
//! back-off, a command the store refuses for good is logged and dropped
//! (the session's journal then ends early, and recovery closes it).
//!
//! The task ends when the shard is gone and every fact it handed over is
//! committed (or given up), which is what "finish committing" at shutdown
//! waits for.

use std::collections::HashMap;
use std::time::Duration;

use cdr::{Builder, CallEvent, SessionId, TenantId, WireEvent};
use store::{SessionEvents, StoreError, StoreWriter};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Span;

use crate::shard::SessionFact;

/// Attempts at one command before its facts are given up.
const MAX_ATTEMPTS: u32 = 8;
/// Wait before the first retry, doubled per attempt, capped at 5 s.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

struct OpenSession {
    tenant: TenantId,
    builder: Builder,
    span: Span,
    /// Accepted by the builder, not yet sent.
    events: Vec<CallEvent>,
    wire: Vec<WireEvent>,
    /// The command being committed, kept to send again if it fails.
    in_flight: Option<SessionEvents>,
    failures: u32,
}

enum Done {
    Committed(SessionId, Result<(), StoreError>),
    RetryDue(SessionId),
}

/// Commits facts until `facts` closes and nothing is left in flight.
pub async fn run(mut facts: mpsc::UnboundedReceiver<SessionFact>, writer: StoreWriter) {
    let mut sessions: HashMap<SessionId, OpenSession> = HashMap::new();
    let mut pending: JoinSet<Done> = JoinSet::new();
    let mut open = true;
    while open || !pending.is_empty() {
        tokio::select! {
            fact = facts.recv(), if open => match fact {
                Some(fact) => {
                    let id = fact.session;
                    accept(&mut sessions, fact);
                    send(&mut sessions, &mut pending, &writer, id).await;
                }
                None => open = false,
            },
            Some(done) = pending.join_next(), if !pending.is_empty() => {
                let Ok(done) = done else { continue };
                match done {
                    Done::Committed(id, result) => {
                        completed(&mut sessions, &mut pending, id, result);
                        send(&mut sessions, &mut pending, &writer, id).await;
                    }
                    Done::RetryDue(id) => send(&mut sessions, &mut pending, &writer, id).await,
                }
            }
        }
    }
    let unfinished = sessions
        .values()
        .filter(|s| !s.builder.is_finished())
        .count();
    tracing::debug!(
        unfinished,
        "CDR commits finished; open sessions stay journaled"
    );
}

fn accept(sessions: &mut HashMap<SessionId, OpenSession>, fact: SessionFact) {
    let session = sessions.entry(fact.session).or_insert_with(|| OpenSession {
        tenant: fact.tenant,
        builder: Builder::new(),
        span: fact.span.clone(),
        events: Vec::new(),
        wire: Vec::new(),
        in_flight: None,
        failures: 0,
    });
    match session.builder.apply(fact.event.clone()) {
        Ok(wire) => {
            session.events.push(fact.event);
            session.wire.extend(wire);
        }
        // The builder refuses only sequences a correct engine never
        // produces; it is unchanged, so the session goes on without it.
        Err(e) => {
            session.span.in_scope(|| {
                tracing::error!(error = %e, event = fact.event.kind.name(), "CDR builder refused an event")
            });
            if session.builder.session_id().is_none() {
                // Not even started: nothing to commit, ever.
                sessions.remove(&fact.session);
            }
        }
    }
}

/// Sends the session's next command if none is in flight.
async fn send(
    sessions: &mut HashMap<SessionId, OpenSession>,
    pending: &mut JoinSet<Done>,
    writer: &StoreWriter,
    id: SessionId,
) {
    let Some(session) = sessions.get_mut(&id) else {
        return;
    };
    if session.in_flight.is_some() {
        return;
    }
    if session.events.is_empty() && session.wire.is_empty() {
        if session.builder.is_finished() {
            sessions.remove(&id);
        }
        return;
    }
    let command = SessionEvents {
        session_id: id,
        tenant_id: session.tenant,
        events: std::mem::take(&mut session.events),
        wire: std::mem::take(&mut session.wire),
    };
    session.in_flight = Some(command.clone());
    match writer.enqueue(command).await {
        Ok(commit) => {
            pending.spawn(async move {
                Done::Committed(id, crate::metrics::cdr_commit(commit).await.map(|_| ()))
            });
        }
        Err(e) => completed(sessions, pending, id, Err(e)),
    }
}

fn completed(
    sessions: &mut HashMap<SessionId, OpenSession>,
    pending: &mut JoinSet<Done>,
    id: SessionId,
    result: Result<(), StoreError>,
) {
    let Some(session) = sessions.get_mut(&id) else {
        return;
    };
    let Some(command) = session.in_flight.take() else {
        return;
    };
    let error = match result {
        Ok(()) => {
            session.failures = 0;
            if let Some(cdr) = command.record() {
                session.span.in_scope(|| {
                    tracing::info!(
                        cdr_id = %cdr.cdr_id,
                        call_status = cdr.call_status.as_str(),
                        status_code = cdr.status_code,
                        targets = cdr.targets.len(),
                        "CDR committed"
                    )
                });
            } else {
                session.span.in_scope(|| {
                    tracing::debug!(
                        events = command.events.len(),
                        last = command.events.last().map(|e| e.kind.name()),
                        "session events journaled"
                    )
                });
            }
            return;
        }
        Err(e) => e,
    };
    session.failures += 1;
    if !error.is_transient() || session.failures >= MAX_ATTEMPTS {
        session.span.in_scope(|| {
            tracing::error!(
                error = %error,
                events = command.events.len(),
                attempts = session.failures,
                "CDR facts could not be committed; giving them up"
            )
        });
        // What came after depends on what was lost: the journal would have
        // a hole. Drop the session; recovery closes what was committed.
        sessions.remove(&id);
        return;
    }
    session.span.in_scope(|| {
        tracing::warn!(error = %error, attempt = session.failures, "CDR commit failed; retrying")
    });
    // Put the command back in front of what came after it.
    let mut events = command.events;
    events.append(&mut session.events);
    session.events = events;
    let mut wire = command.wire;
    wire.append(&mut session.wire);
    session.wire = wire;
    let backoff = FIRST_BACKOFF
        .saturating_mul(1 << session.failures.min(6))
        .min(Duration::from_secs(5));
    pending.spawn(async move {
        tokio::time::sleep(backoff).await;
        Done::RetryDue(id)
    });
}
