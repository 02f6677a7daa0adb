//! Committing the CDR facts the engine emits (DESIGN.md, "The CDR
//! pipeline", steps 2 and 3): one `cdr::Builder` per session folds its
//! `CallEvent`s into wire events, and the store writer commits them.
//!
//! Per session at most one command is in flight, so a session's commands
//! commit in order, and the facts that arrive meanwhile are sent together
//! in the next one. Across sessions the task batches: when a fact wakes it,
//! it lets the next [`CommitConfig::linger`] (`events.commit_linger_ms`,
//! 20 ms) of facts gather, takes
//! every fact queued, and sends the commands of every session that has
//! something to send as **one** message to the writer
//! ([`StoreWriter::enqueue_batch`]: one wake-up of the writer, one answer
//! back), with at most [`MAX_BATCHES_IN_FLIGHT`] such messages
//! outstanding, so the next batch builds up while the writer commits.
//!
//! Failures (issue 17, finding 1): a command that failed is sent again,
//! before anything newer of its session, as the store requires.
//! Transient failures (a lock wait, a lost connection, a database that is
//! down) are retried **for as long as they last**, with back-off doubling
//! to [`CommitConfig::max_backoff`] (5 s); nothing is given up, and each failure is logged and
//! counted ([`CommitCounters`]). A command the store refuses for good (a
//! constraint: a bug, not a fault) cannot succeed by retrying: it is
//! logged, counted and its session dropped here; the session's journal
//! then ends early and the periodic recovery closes it with a `recovered`
//! CDR.
//!
//! Periodic recovery (finding M7): every [`CommitConfig::recovery_every`]
//! the task closes the open sessions of its scope that it no longer
//! carries and that have been idle for [`RECOVERY_IDLE`]
//! ([`StoreWriter::recover_orphans`]), as the start-up recovery does after
//! a crash.
//!
//! The queue from the shard ([`facts_queue`]) is bounded by a rule rather
//! than by dropping: facts are never refused (each is part of a call's
//! record), but while more than [`FACTS_HIGH_WATER`] wait, the shard
//! refuses **new** calls (`503` with `Retry-After`: the shard tells the
//! engine, `pbx::Input::Overload`, when [`FactSender::congested`] changes).
//! Calls in progress emit a bounded number of facts each, so the queue
//! stays within the high-water mark plus those, and a database that
//! cannot keep up turns into refused calls, not into memory.
//!
//! The task ends when the shard is gone and every fact it handed over is
//! committed, which is what "finish committing" at shutdown waits for.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use cdr::{Builder, CallEvent, SessionId, TenantId, UnixMillis, WireEvent};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use store::{RecoveryScope, SessionEvents, StoreError, StoreWriter};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Span;

use crate::clock;
use crate::shard::SessionFact;

/// Batches sent to the writer and not yet answered: one committing, one
/// queued behind it, while the next one builds up here.
pub const MAX_BATCHES_IN_FLIGHT: usize = 2;
/// Facts taken from the queue per wake-up.
const FACTS_PER_WAKE: usize = 4096;
/// How long a session the task does not carry must have been idle before
/// the periodic recovery closes it.
pub const RECOVERY_IDLE: Duration = Duration::from_secs(60);

/// Facts waiting in the queue above which new calls are refused.
pub const FACTS_HIGH_WATER: usize = 50_000;

/// The shard's end of the fact queue.
#[derive(Clone, Debug)]
pub struct FactSender {
    queue: mpsc::UnboundedSender<SessionFact>,
    waiting: Arc<AtomicUsize>,
}

/// The CDR task's end of the fact queue.
pub struct FactReceiver {
    queue: mpsc::UnboundedReceiver<SessionFact>,
    waiting: Arc<AtomicUsize>,
}

/// The queue from the shard to the CDR task (see the module doc).
pub fn facts_queue() -> (FactSender, FactReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let waiting = Arc::new(AtomicUsize::new(0));
    (
        FactSender {
            queue: tx,
            waiting: Arc::clone(&waiting),
        },
        FactReceiver { queue: rx, waiting },
    )
}

impl FactSender {
    /// Queues `fact`; never refuses it while the task runs. Returns
    /// whether the task is still there.
    pub fn send(&self, fact: SessionFact) -> bool {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        if self.queue.send(fact).is_err() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Whether new calls must be refused: more than [`FACTS_HIGH_WATER`]
    /// facts wait for the CDR task.
    pub fn congested(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > FACTS_HIGH_WATER
    }
}

impl FactReceiver {
    async fn recv_many(&mut self, buffer: &mut Vec<SessionFact>, limit: usize) -> usize {
        let n = self.queue.recv_many(buffer, limit).await;
        self.waiting.fetch_sub(n, Ordering::Relaxed);
        n
    }

    /// Moves what is queued now into `buffer`, until it holds `limit`.
    fn take_ready(&mut self, buffer: &mut Vec<SessionFact>, limit: usize) {
        while buffer.len() < limit {
            match self.queue.try_recv() {
                Ok(fact) => {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    buffer.push(fact);
                }
                Err(_) => break,
            }
        }
    }
}

/// How the task runs.
#[derive(Clone, Debug)]
pub struct CommitConfig {
    /// The sessions the periodic recovery may close (as at start-up).
    pub scope: RecoveryScope,
    /// How often it runs; `None` turns it off.
    pub recovery_every: Option<Duration>,
    /// How long facts may gather after the first one before they are
    /// sent (see `run`): a few milliseconds of CDR latency for far fewer
    /// wake-ups and transactions at low and medium load.
    pub linger: Duration,
    /// Wait before the first retry of a failed command, doubled per
    /// attempt up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl CommitConfig {
    /// Production settings for `scope`: recovery every `recovery_every`,
    /// facts gathered for 20 ms (the default of `events.commit_linger_ms`),
    /// retries after 100 ms doubling to 5 s.
    pub fn new(scope: RecoveryScope, recovery_every: Option<Duration>) -> Self {
        Self {
            scope,
            recovery_every,
            linger: Duration::from_millis(20),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Counters since start (plain atomics, for logs and for metrics).
#[derive(Debug, Default)]
pub struct CommitCounters {
    /// Commands committed.
    pub committed: AtomicU64,
    /// Failed attempts that will be tried again.
    pub retries: AtomicU64,
    /// Sessions whose last attempt failed and that wait for the next one
    /// (a gauge).
    pub waiting: AtomicU64,
    /// Commands the store refused for good (their sessions are left to
    /// recovery).
    pub refused: AtomicU64,
    /// Sessions closed by the periodic recovery.
    pub recovered: AtomicU64,
    /// Periodic recovery runs that could not list the open sessions.
    pub recovery_failures: AtomicU64,
}

impl CommitCounters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }
}

struct OpenSession {
    tenant: TenantId,
    builder: Builder,
    span: Span,
    /// Accepted by the builder, not yet sent.
    events: Vec<CallEvent>,
    wire: Vec<WireEvent>,
    /// The command being committed, kept to send again if it fails.
    in_flight: Option<SessionEvents>,
    /// Failed attempts in a row at the command in front.
    failures: u32,
    /// Waiting for a retry time (not sent before it).
    backing_off: bool,
    /// Listed in `ready`.
    ready: bool,
}

type BatchFuture = Pin<Box<dyn Future<Output = Vec<(SessionId, Result<(), StoreError>)>> + Send>>;

struct Task {
    writer: StoreWriter,
    first_backoff: Duration,
    max_backoff: Duration,
    counters: Arc<CommitCounters>,
    /// Boxed, as the engine's sessions are: the map keeps up to twice its
    /// length in slots, and an `OpenSession` is large.
    sessions: HashMap<SessionId, Box<OpenSession>>,
    /// Sessions that may have something to send, in the order they became
    /// ready.
    ready: Vec<SessionId>,
    in_flight: FuturesUnordered<BatchFuture>,
    /// Retry times, earliest first.
    retries: BTreeMap<Instant, Vec<SessionId>>,
}

/// Commits facts until `facts` closes and nothing is left to commit.
pub async fn run(
    mut facts: FactReceiver,
    writer: StoreWriter,
    config: CommitConfig,
    counters: Arc<CommitCounters>,
) {
    let mut task = Task {
        writer,
        first_backoff: config.first_backoff,
        max_backoff: config.max_backoff,
        counters,
        sessions: HashMap::new(),
        ready: Vec::new(),
        in_flight: FuturesUnordered::new(),
        retries: BTreeMap::new(),
    };
    let mut recovery = config.recovery_every.map(|every| {
        let mut interval = tokio::time::interval_at(Instant::now() + every, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut recovering: Option<tokio::task::JoinHandle<()>> = None;
    let mut buffer = Vec::with_capacity(FACTS_PER_WAKE);
    let mut open = true;
    let far = Duration::from_secs(3600);
    while open || !task.in_flight.is_empty() || !task.retries.is_empty() || !task.ready.is_empty() {
        let next_retry = task.retries.keys().next().copied();
        tokio::select! {
            biased;
            Some(outcomes) = task.in_flight.next(), if !task.in_flight.is_empty() => {
                for (id, result) in outcomes {
                    task.completed(id, result);
                }
            }
            received = facts.recv_many(&mut buffer, FACTS_PER_WAKE), if open => {
                if received == 0 {
                    open = false;
                } else if !config.linger.is_zero() {
                    // Let the facts of the next few milliseconds gather in
                    // the queue (no wake-up per fact), then take them all:
                    // one batch, one transaction, one wake-up of the
                    // writer and of the outbox readers behind it.
                    tokio::time::sleep(config.linger).await;
                    facts.take_ready(&mut buffer, FACTS_PER_WAKE);
                }
                for fact in buffer.drain(..) {
                    task.accept(fact);
                }
            }
            _ = tokio::time::sleep_until(next_retry.unwrap_or_else(|| Instant::now() + far)),
                if next_retry.is_some() => {
                task.retry_due(Instant::now());
            }
            _ = tick(&mut recovery), if recovery.is_some() && open => {
                if recovering.as_ref().is_none_or(|r| r.is_finished()) {
                    recovering = Some(task.spawn_recovery(config.scope));
                }
            }
        }
        task.send_ready().await;
    }
    if let Some(recovering) = recovering {
        recovering.abort();
    }
    let unfinished = task
        .sessions
        .values()
        .filter(|s| !s.builder.is_finished())
        .count();
    tracing::debug!(
        unfinished,
        "CDR commits finished; open sessions stay journaled"
    );
}

/// The next tick of the periodic recovery; never, without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Task {
    fn accept(&mut self, fact: SessionFact) {
        let session = self.sessions.entry(fact.session).or_insert_with(|| {
            Box::new(OpenSession {
                tenant: fact.tenant,
                builder: Builder::new(),
                span: fact.span.clone(),
                events: Vec::new(),
                wire: Vec::new(),
                in_flight: None,
                failures: 0,
                backing_off: false,
                ready: false,
            })
        });
        match session.builder.apply(fact.event.clone()) {
            Ok(wire) => {
                session.events.push(fact.event);
                session.wire.extend(wire);
                if !session.ready {
                    session.ready = true;
                    self.ready.push(fact.session);
                }
            }
            // The builder refuses only sequences a correct engine never
            // produces; it is unchanged, so the session goes on without it.
            Err(e) => {
                session.span.in_scope(|| {
                    tracing::error!(error = %e, event = fact.event.kind.name(), "CDR builder refused an event")
                });
                if session.builder.session_id().is_none() {
                    // Not even started: nothing to commit, ever.
                    self.sessions.remove(&fact.session);
                }
            }
        }
    }

    /// Sends the next command of every ready session, all in one batch.
    async fn send_ready(&mut self) {
        if self.ready.is_empty() || self.in_flight.len() >= MAX_BATCHES_IN_FLIGHT {
            return;
        }
        let mut commands = Vec::new();
        for id in std::mem::take(&mut self.ready) {
            let Some(session) = self.sessions.get_mut(&id) else {
                continue;
            };
            session.ready = false;
            if session.in_flight.is_some() || session.backing_off {
                // Listed again when its command is answered or its retry
                // is due.
                continue;
            }
            if session.events.is_empty() && session.wire.is_empty() {
                if session.builder.is_finished() {
                    self.sessions.remove(&id);
                }
                continue;
            }
            let command = SessionEvents {
                session_id: id,
                tenant_id: session.tenant,
                events: std::mem::take(&mut session.events),
                wire: std::mem::take(&mut session.wire),
            };
            session.in_flight = Some(command.clone());
            commands.push(command);
        }
        if commands.is_empty() {
            return;
        }
        let ids: Vec<SessionId> = commands.iter().map(|c| c.session_id).collect();
        match self.writer.enqueue_batch(commands).await {
            Ok(pending) => self.in_flight.push(Box::pin(async move {
                let outcomes = crate::metrics::cdr_commit(pending).await;
                ids.into_iter()
                    .zip(outcomes)
                    .map(|(id, outcome)| (id, outcome.map(|_| ())))
                    .collect()
            })),
            Err(_) => {
                for id in ids {
                    self.completed(id, Err(StoreError::WriterClosed));
                }
            }
        }
    }

    fn mark_ready(&mut self, id: SessionId) {
        if let Some(session) = self.sessions.get_mut(&id)
            && !session.ready
        {
            session.ready = true;
            self.ready.push(id);
        }
    }

    fn completed(&mut self, id: SessionId, result: Result<(), StoreError>) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(command) = session.in_flight.take() else {
            return;
        };
        let error = match result {
            Ok(()) => {
                CommitCounters::add(&self.counters.committed, 1);
                if session.failures > 0 {
                    CommitCounters::sub(&self.counters.waiting, 1);
                    session.span.in_scope(|| {
                        tracing::info!(
                            attempts = session.failures + 1,
                            "CDR facts committed after retrying"
                        )
                    });
                }
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
                // Whatever came meanwhile, or the session's removal.
                self.mark_ready(id);
                return;
            }
            Err(e) => e,
        };
        if !error.is_transient() {
            if session.failures > 0 {
                CommitCounters::sub(&self.counters.waiting, 1);
            }
            CommitCounters::add(&self.counters.refused, 1);
            session.span.in_scope(|| {
                tracing::error!(
                    error = %error,
                    events = command.events.len(),
                    "the store refused CDR facts; the session is left to recovery"
                )
            });
            // What came after depends on what was refused: the journal
            // would have a hole. Drop the session; the periodic recovery
            // closes what was committed.
            self.sessions.remove(&id);
            return;
        }
        if session.failures == 0 {
            CommitCounters::add(&self.counters.waiting, 1);
        }
        session.failures = session.failures.saturating_add(1);
        CommitCounters::add(&self.counters.retries, 1);
        let backoff = self
            .first_backoff
            .saturating_mul(1 << (session.failures - 1).min(16))
            .min(self.max_backoff);
        session.span.in_scope(|| {
            tracing::warn!(error = %error, attempt = session.failures, ?backoff, "CDR commit failed; retrying")
        });
        // Put the command back in front of what came after it.
        let mut events = command.events;
        events.append(&mut session.events);
        session.events = events;
        let mut wire = command.wire;
        wire.append(&mut session.wire);
        session.wire = wire;
        session.backing_off = true;
        self.retries
            .entry(Instant::now() + backoff)
            .or_default()
            .push(id);
    }

    fn retry_due(&mut self, now: Instant) {
        let later = self.retries.split_off(&(now + Duration::from_nanos(1)));
        let due = std::mem::replace(&mut self.retries, later);
        for id in due.into_values().flatten() {
            if let Some(session) = self.sessions.get_mut(&id) {
                session.backing_off = false;
            }
            self.mark_ready(id);
        }
    }

    /// Closes, in the background, the open sessions this task does not
    /// carry (see the module doc).
    fn spawn_recovery(&self, scope: RecoveryScope) -> tokio::task::JoinHandle<()> {
        // The snapshot first, then the idle limit behind it.
        let live: HashSet<SessionId> = self.sessions.keys().copied().collect();
        let before = UnixMillis(clock::unix_ms().saturating_sub(RECOVERY_IDLE.as_millis() as u64));
        let writer = self.writer.clone();
        let counters = Arc::clone(&self.counters);
        tokio::spawn(async move {
            match writer.recover_orphans(scope, before, &live).await {
                Ok(report) => {
                    CommitCounters::add(&counters.recovered, report.recovered.len() as u64);
                    for r in &report.recovered {
                        tracing::warn!(session_id = %r.session_id, tenant_id = %r.tenant_id, cdr_id = %r.cdr_id, "orphaned call closed with a recovered CDR");
                    }
                    for (session, error) in &report.failed {
                        tracing::error!(session_id = %session, error = %error, "orphaned call could not be closed; will retry");
                    }
                }
                Err(error) => {
                    CommitCounters::add(&counters.recovery_failures, 1);
                    tracing::error!(%error, "periodic recovery could not list open sessions");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use cdr::{
        CallEventKind, CallType, Direction, EndReason, Id, NoAnswerCause, Party, SessionEnd,
        SessionStart, Snowflake, TargetAdded, TargetId,
    };
    use sqlx::Connection;
    use store::{Store, StoreOptions, Tenant, WriterConfig};

    use super::*;

    const T0: u64 = 1_795_874_587_123;

    fn tenant_id() -> TenantId {
        TenantId::from(Id::from_u64(883_611_252_155_219_969))
    }

    struct Db {
        dir: std::path::PathBuf,
        url: String,
    }

    impl Db {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "tally-cdr-commit-{name}-{}-{}",
                std::process::id(),
                clock::unix_ms()
            ));
            let url = format!("sqlite://{}", dir.join("tally.db").display());
            Db { dir, url }
        }

        async fn open(&self) -> Store {
            let options = StoreOptions {
                lock_wait: Duration::from_millis(20),
                ..StoreOptions::default()
            };
            let store = Store::open_with(&self.url, &options).await.unwrap();
            store
                .create_tenant(&Tenant::new(tenant_id(), "t", "t.example", UnixMillis(T0)))
                .await
                .unwrap();
            store
        }
    }

    impl Drop for Db {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn party(user: &str) -> Party {
        Party {
            user: user.into(),
            display_name: String::new(),
            domain: "t.example".into(),
        }
    }

    /// A whole unanswered call's facts, `start` ms after T0.
    fn call_facts(ids: &mut Snowflake, start: u64, whole: bool) -> (SessionId, Vec<SessionFact>) {
        let at = |ms: u64| UnixMillis(T0 + start + ms);
        let session = ids.next_session(at(0));
        let target = TargetId::from(ids.next(at(0)));
        let mut kinds = vec![
            CallEventKind::SessionStarted(Box::new(SessionStart {
                session_id: session,
                tenant_id: tenant_id(),
                tenant_name: "t".into(),
                call_id: format!("{session}@test"),
                direction: Direction::Extension,
                caller: party("101"),
                callee: party("102"),
                did: String::new(),
                trunk_name: String::new(),
                outbound_caller_id: String::new(),
                user_data: String::new(),
                caller_user: None,
                callee_user: None,
            })),
            CallEventKind::TargetAdded(Box::new(TargetAdded {
                target,
                call_type: CallType::Normal,
                caller: "101".into(),
                callee: "102".into(),
                destination: "sip:102@127.0.0.1".into(),
                trunk_name: String::new(),
                outbound_caller_id: String::new(),
                did: String::new(),
                reroute_reason: None,
                user: None,
            })),
        ];
        if whole {
            kinds.push(CallEventKind::TargetNoAnswer {
                target,
                cause: NoAnswerCause::RingTimeout,
            });
            kinds.push(CallEventKind::SessionEnded(SessionEnd {
                status_code: 408,
                reason: EndReason::NotApplicable,
                recording: None,
                recording_error: None,
            }));
        }
        let facts = kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| SessionFact {
                session,
                tenant: tenant_id(),
                event: CallEvent::new(at(i as u64), kind),
                span: Span::none(),
            })
            .collect();
        (session, facts)
    }

    fn fast(recovery_every: Option<Duration>) -> CommitConfig {
        CommitConfig {
            first_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            ..CommitConfig::new(RecoveryScope::AllNodes, recovery_every)
        }
    }

    /// Issue 17, finding 1: the old task gave a call's records up after 8
    /// failed attempts. A database locked for far longer than 8 attempts
    /// take now only delays them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_are_retried_until_the_store_takes_them() {
        let db = Db::new("retry");
        let store = db.open().await;
        let writer = store.spawn_writer(WriterConfig {
            max_attempts: 1,
            ..WriterConfig::default()
        });
        // Another connection holds SQLite's write lock for 1.5 s.
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&db.url).unwrap();
        let mut locker = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut locker)
            .await
            .unwrap();

        let (tx, rx) = facts_queue();
        let counters = Arc::new(CommitCounters::default());
        let task = tokio::spawn(run(rx, writer.clone(), fast(None), Arc::clone(&counters)));
        let mut ids = Snowflake::new(3).unwrap();
        let (session, facts) = call_facts(&mut ids, 0, true);
        for fact in facts {
            assert!(tx.send(fact));
        }
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(store.count_cdrs(tenant_id()).await.unwrap(), 0);
        assert_eq!(counters.waiting.load(Ordering::Relaxed), 1);
        sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();

        drop(tx);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the task ends once everything is committed")
            .unwrap();
        let retries = counters.retries.load(Ordering::Relaxed);
        assert!(retries > 8, "only {retries} retries in 1.5 s");
        assert_eq!(counters.waiting.load(Ordering::Relaxed), 0);
        assert_eq!(counters.refused.load(Ordering::Relaxed), 0);
        assert!(
            store
                .get_cdr(tenant_id(), session.cdr_id())
                .await
                .unwrap()
                .is_some()
        );
        assert!(store.open_sessions().await.unwrap().is_empty());
    }

    /// Finding M7: an open session nobody carries any more is closed while
    /// the node runs; a call the task still carries is not, however long
    /// it has been quiet.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn periodic_recovery_closes_orphans_and_spares_live_calls() {
        let db = Db::new("orphans");
        let store = db.open().await;
        let writer = store.spawn_writer(WriterConfig::default());
        let mut ids = Snowflake::new(4).unwrap();

        // An orphan: journaled by an earlier task, then forgotten.
        let (orphan, facts) = call_facts(&mut ids, 0, false);
        let (tx, rx) = facts_queue();
        for fact in facts {
            tx.send(fact);
        }
        drop(tx);
        run(rx, writer.clone(), fast(None), Arc::default()).await;
        assert_eq!(store.open_sessions().await.unwrap().len(), 1);

        // A live call, as old and as quiet, carried by the running task.
        let (tx, rx) = facts_queue();
        let counters = Arc::new(CommitCounters::default());
        let task = tokio::spawn(run(
            rx,
            writer.clone(),
            fast(Some(Duration::from_millis(100))),
            Arc::clone(&counters),
        ));
        let (live, facts) = call_facts(&mut ids, 10, false);
        for fact in facts {
            tx.send(fact);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while counters.recovered.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cdr = store.get_cdr(tenant_id(), orphan.cdr_id()).await.unwrap();
        assert!(cdr.is_some_and(|c| c.recovered), "the orphan is closed");
        // Several more rounds: the live call stays open.
        tokio::time::sleep(Duration::from_millis(350)).await;
        let open: Vec<SessionId> = store
            .open_sessions()
            .await
            .unwrap()
            .iter()
            .map(|s| s.session_id)
            .collect();
        assert_eq!(open, vec![live]);
        assert_eq!(counters.recovered.load(Ordering::Relaxed), 1);
        drop(tx);
        task.await.unwrap();
    }

    #[test]
    fn new_calls_are_refused_above_the_high_water_mark_until_the_task_catches_up() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, mut rx) = facts_queue();
        let mut ids = Snowflake::new(5).unwrap();
        let (_, facts) = call_facts(&mut ids, 0, false);
        let fact = || SessionFact {
            session: facts[0].session,
            tenant: facts[0].tenant,
            event: facts[0].event.clone(),
            span: Span::none(),
        };
        for _ in 0..FACTS_HIGH_WATER {
            assert!(tx.send(fact()));
        }
        assert!(!tx.congested(), "at the mark, not above it");
        assert!(tx.send(fact()), "a fact is never refused");
        assert!(tx.congested());
        let mut buffer = Vec::new();
        let taken = runtime.block_on(rx.recv_many(&mut buffer, 10));
        assert_eq!(taken, 10);
        assert!(!tx.congested());
        drop(rx);
        assert!(!tx.send(fact()), "the task is gone");
    }
}
