//! The store writer: one thread per node that commits the CDR pipeline's
//! commands in group transactions (DESIGN.md, "The CDR pipeline", step 3).
//!
//! Call engine shards send [`SessionEvents`] through a bounded channel
//! (back-pressure: a full queue makes `enqueue` wait), one command at a
//! time ([`StoreWriter::enqueue`]) or many in one message
//! ([`StoreWriter::enqueue_batch`], one answer for all of them). The
//! thread takes whatever is queued, up to [`WriterConfig::max_batch`]
//! commands (waiting [`WriterConfig::linger`] for more, if set), writes
//! them all in **one** transaction, commits, and only then answers each
//! command with the sequences it was given.
//!
//! The writer has a connection of its own, never one of the pool's (issue
//! 17, finding 1: readers holding every pooled connection must not stop
//! CDR commits), opened on its own thread: on SQLite a `rusqlite`
//! connection whose statements run in place (`lite.rs`: no hop to a
//! driver thread per statement, one wake-up per batch), on PostgreSQL a
//! sqlx connection driven by the thread's own single-threaded runtime. A
//! connection that cannot be opened (or is lost) is opened again with
//! back-off while commands wait in the queue. Under load, commands that arrive while a
//! transaction commits form the next batch, so the number of transactions
//! grows far slower than the number of commands without adding latency
//! when the PBX is quiet.
//!
//! Failures:
//!
//! * a transient error (lock wait timed out, serialization failure,
//!   deadlock, lost connection) rolls the transaction back and the same
//!   batch is tried again, up to [`WriterConfig::max_attempts`] times with
//!   doubling back-off; then every command of the batch gets
//!   [`StoreError::CommitFailed`];
//! * any other error means some command in the batch is refused (a unique
//!   or foreign key violation, events for a closed session). The batch is
//!   rolled back and each of its commands is then committed in a
//!   transaction of its own, so one bad command fails alone instead of
//!   taking the other calls' events down with it.
//!
//! Either way a command is all or nothing: its outbox rows, journal, CDR
//! and sequence numbers commit together or not at all, and rolled-back
//! sequence numbers are reused by the next transaction, so each tenant's
//! sequence stays gap-free.
//!
//! Correctness does not depend on there being a single writer: sequences
//! are assigned under row locks inside the transaction, so several nodes
//! sharing a PostgreSQL database (each with its own writer) stay gap-free
//! and ordered. One writer per node is about throughput: it turns many
//! small transactions into few large ones.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdr::WireProfile;
use sqlx::Connection as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::Store;
use crate::commit::{self, Assigned, Prepared, SessionEvents, prepare};
use crate::db::WriterTarget;
use crate::error::StoreError;
use crate::lite::LiteConn;
use crate::pg_commit;

/// How the writer batches and retries.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// How events are spelled in the outbox (configuration
    /// `events.direction_vocabulary`, PortSIP compat). Applies to rows
    /// written from now on; committed rows keep the bytes they were
    /// delivered with.
    pub profile: WireProfile,
    /// Messages (single commands or batches) that may wait for the writer
    /// before `enqueue` waits.
    pub queue_capacity: usize,
    /// Most commands in one transaction (a batch enqueued as one message
    /// is never split to honour it).
    pub max_batch: usize,
    /// How long to wait for more commands after the first one of a batch.
    /// Zero (the default) commits what is queued at once: batching then
    /// comes from commands that queue up while the previous transaction
    /// commits, which costs no latency when the PBX is quiet.
    pub linger: Duration,
    /// Attempts per transaction while the error is transient (≥ 1).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one (capped
    /// at one second).
    pub retry_backoff: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            profile: WireProfile::tally(),
            queue_capacity: 4096,
            max_batch: 512,
            linger: Duration::ZERO,
            max_attempts: 5,
            retry_backoff: Duration::from_millis(10),
        }
    }
}

/// What the writer assigned to one committed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The tenant `sequence` of each wire event of the command, in order
    /// (consecutive: a command's events are never interleaved with
    /// another's).
    pub sequences: Vec<u64>,
}

/// Counters since the writer started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Commands committed.
    pub commands: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// Transactions tried again after a transient error.
    pub retries: u64,
    /// Commands answered with an error after they were queued.
    pub failed_commands: u64,
    /// Batches split into one transaction per command after a refusal.
    pub split_batches: u64,
    /// The most commands committed in one transaction.
    pub largest_batch: u64,
    /// Times the writer's own connection was (re)opened.
    pub connects: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commands: AtomicU64,
    transactions: AtomicU64,
    retries: AtomicU64,
    failed_commands: AtomicU64,
    split_batches: AtomicU64,
    largest_batch: AtomicU64,
    connects: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

type Outcome = Result<Committed, StoreError>;

/// Where a message's answer goes.
#[derive(Debug)]
enum Reply {
    One(oneshot::Sender<Outcome>),
    Many(oneshot::Sender<Vec<Outcome>>),
}

/// One message on the queue: one command, or a batch with one answer.
#[derive(Debug)]
struct Request {
    commands: Vec<Prepared>,
    reply: Reply,
}

/// A handle on a store's writer thread. Clone it for every shard; the
/// thread stops once every handle is dropped and the queue is drained.
#[derive(Clone, Debug)]
pub struct StoreWriter {
    pub(crate) store: Store,
    queue: mpsc::Sender<Request>,
    counters: Arc<Counters>,
    committed: watch::Receiver<u64>,
}

/// A queued command's answer: resolves once its transaction committed (or
/// failed for good). Dropping it does not withdraw the command.
#[derive(Debug)]
pub struct PendingCommit(oneshot::Receiver<Outcome>);

impl Future for PendingCommit {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(StoreError::WriterClosed)))
    }
}

/// The answers to a batch queued with [`StoreWriter::enqueue_batch`]: one
/// per command, in order. Dropping it does not withdraw the commands.
#[derive(Debug)]
pub struct PendingBatch {
    answer: oneshot::Receiver<Vec<Outcome>>,
    len: usize,
}

impl Future for PendingBatch {
    type Output = Vec<Outcome>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let len = self.len;
        Pin::new(&mut self.answer).poll(cx).map(|answer| {
            answer.unwrap_or_else(|_| (0..len).map(|_| Err(StoreError::WriterClosed)).collect())
        })
    }
}

impl StoreWriter {
    /// Starts the writer thread; it opens its own connection to `target`.
    pub(crate) fn spawn(store: Store, target: WriterTarget, config: WriterConfig) -> Self {
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let (committed_tx, committed) = watch::channel(0);
        let task = WriterTask {
            target,
            config,
            counters: Arc::clone(&counters),
            committed: committed_tx,
        };
        let spawned = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || task.run(receiver));
        if let Err(error) = spawned {
            // The receiver went down with the closure: every enqueue
            // answers WriterClosed, which callers handle as a store fault.
            tracing::error!(%error, "cannot start the store writer thread");
        }
        Self {
            store,
            queue,
            counters,
            committed,
        }
    }

    /// Checks `command` and queues it; waits only for room in the queue.
    /// A command that contradicts itself is refused here, before queueing.
    pub async fn enqueue(&self, command: SessionEvents) -> Result<PendingCommit, StoreError> {
        let prepared = prepare(command)?;
        let (answer, pending) = oneshot::channel();
        self.queue
            .send(Request {
                commands: vec![prepared],
                reply: Reply::One(answer),
            })
            .await
            .map_err(|_| StoreError::WriterClosed)?;
        Ok(PendingCommit(pending))
    }

    /// Queues `commands` as one message with one answer (one wake-up of
    /// the writer and one of the caller for all of them). They commit in
    /// order, in one transaction when none is refused; each still commits
    /// or fails on its own, as with [`StoreWriter::enqueue`]. A command
    /// that contradicts itself is answered at once with its error (the
    /// others are queued).
    pub async fn enqueue_batch(
        &self,
        commands: Vec<SessionEvents>,
    ) -> Result<PendingBatch, StoreError> {
        let len = commands.len();
        let mut refused: Vec<(usize, StoreError)> = Vec::new();
        let mut prepared = Vec::with_capacity(len);
        for (i, command) in commands.into_iter().enumerate() {
            match prepare(command) {
                Ok(p) => prepared.push(p),
                Err(error) => refused.push((i, error)),
            }
        }
        let (answer, pending) = oneshot::channel();
        if !prepared.is_empty() {
            self.queue
                .send(Request {
                    commands: prepared,
                    reply: Reply::Many(answer),
                })
                .await
                .map_err(|_| StoreError::WriterClosed)?;
        } else {
            let _ = answer.send(Vec::new());
        }
        if refused.is_empty() {
            return Ok(PendingBatch {
                answer: pending,
                len,
            });
        }
        // Put the refusals back in their places once the rest is answered.
        let (merged_tx, merged) = oneshot::channel();
        tokio::spawn(async move {
            let mut queued = PendingBatch {
                answer: pending,
                len: len - refused.len(),
            }
            .await
            .into_iter();
            let mut refused = refused.into_iter().peekable();
            let all = (0..len)
                .map(|i| match refused.next_if(|(at, _)| *at == i) {
                    Some((_, error)) => Err(error),
                    None => queued.next().unwrap_or(Err(StoreError::WriterClosed)),
                })
                .collect();
            let _ = merged_tx.send(all);
        });
        Ok(PendingBatch {
            answer: merged,
            len,
        })
    }

    /// Queues `command` and waits until it is committed.
    pub async fn commit(&self, command: SessionEvents) -> Result<Committed, StoreError> {
        self.enqueue(command).await?.await
    }

    pub fn stats(&self) -> WriterStats {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        WriterStats {
            commands: get(&c.commands),
            transactions: get(&c.transactions),
            retries: get(&c.retries),
            failed_commands: get(&c.failed_commands),
            split_batches: get(&c.split_batches),
            largest_batch: get(&c.largest_batch),
            connects: get(&c.connects),
        }
    }

    /// The highest `global_sequence` this writer has committed (0 before
    /// its first commit). A wake-up for readers of the outbox on this
    /// node; they still read the rows from the store.
    pub fn committed_global_sequence(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }
}

/// The writer's own connection.
enum WriterConn {
    Sqlite(LiteConn),
    Postgres(sqlx::PgConnection),
}

impl WriterConn {
    async fn open(target: &WriterTarget) -> Result<Self, StoreError> {
        Ok(match target {
            WriterTarget::Sqlite { path, lock_wait } => {
                Self::Sqlite(LiteConn::open(path, *lock_wait)?)
            }
            WriterTarget::Postgres(options) => {
                Self::Postgres(sqlx::PgConnection::connect_with(options).await?)
            }
        })
    }

    /// One transaction for `batch`: committed, or rolled back with the
    /// error.
    async fn write_batch(
        &mut self,
        batch: &[&Prepared],
        profile: &WireProfile,
        now: i64,
    ) -> Result<Assigned, StoreError> {
        match self {
            Self::Sqlite(conn) => {
                conn.begin()?;
                let written = commit::write_batch(conn, batch, profile, now).await;
                let committed = match written {
                    Ok(assigned) => conn.commit().map(|()| assigned).map_err(StoreError::from),
                    Err(error) => Err(error),
                };
                if committed.is_err() {
                    conn.rollback();
                }
                committed
            }
            Self::Postgres(conn) => {
                let mut tx = conn.begin().await?;
                let assigned = pg_commit::write_batch(&mut tx, batch, profile, now).await?;
                tx.commit().await?;
                Ok(assigned)
            }
        }
    }

    /// After the connection was lost during a batch's `COMMIT`, whether
    /// that commit took effect anyway (the database applied it and died,
    /// or the answer was lost on the way): its outbox rows are there.
    /// `Some` with what it assigned when they are all there, `None` when
    /// none is (not committed: write it again); a batch without outbox
    /// rows cannot be told and is written again (its journal rows would
    /// then refuse it as a duplicate, leaving the session to recovery).
    /// Only PostgreSQL: SQLite runs in this thread, nothing is in doubt.
    async fn committed_before(
        &mut self,
        batch: &[&Prepared],
    ) -> Result<Option<Assigned>, StoreError> {
        let Self::Postgres(conn) = self else {
            return Ok(None);
        };
        let ids: Vec<String> = batch
            .iter()
            .flat_map(|p| p.command.wire.iter().map(|w| w.event_id().to_string()))
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT event_id, sequence, global_sequence FROM outbox WHERE event_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let found: std::collections::HashMap<&str, (i64, i64)> = rows
            .iter()
            .map(|(id, seq, global)| (id.as_str(), (*seq, *global)))
            .collect();
        let mut sequences = Vec::with_capacity(batch.len());
        let mut last_global = None;
        for p in batch {
            let mut of_command = Vec::with_capacity(p.command.wire.len());
            for w in &p.command.wire {
                let id = w.event_id().to_string();
                let (seq, global) = found.get(id.as_str()).copied().ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "batch in doubt after a lost connection: event {id} missing, others committed"
                    ))
                })?;
                of_command.push(u64::try_from(seq).unwrap_or_default());
                let global = u64::try_from(global).unwrap_or_default();
                last_global = Some(last_global.map_or(global, |g: u64| g.max(global)));
            }
            sequences.push(of_command);
        }
        Ok(Some(Assigned {
            sequences,
            last_global,
        }))
    }

    /// Whether the connection still answers (after an error).
    async fn alive(&mut self) -> bool {
        match self {
            Self::Sqlite(_) => true,
            Self::Postgres(conn) => conn.ping().await.is_ok(),
        }
    }
}

struct WriterTask {
    target: WriterTarget,
    config: WriterConfig,
    counters: Arc<Counters>,
    committed: watch::Sender<u64>,
}

/// Reconnection back-off bounds.
const CONNECT_BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(5));

impl WriterTask {
    /// The thread's body: a single-threaded runtime drives the queue, the
    /// linger timer and (PostgreSQL) the connection's socket; SQLite's
    /// statements run in place.
    fn run(self, mut queue: mpsc::Receiver<Request>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "cannot start the store writer's runtime");
                return;
            }
        };
        runtime.block_on(self.serve(&mut queue));
    }

    async fn serve(&self, queue: &mut mpsc::Receiver<Request>) {
        let max_batch = self.config.max_batch.max(1);
        let mut conn: Option<WriterConn> = None;
        let mut batch: Vec<Request> = Vec::new();
        while let Some(request) = queue.recv().await {
            let mut commands = request.commands.len();
            batch.push(request);
            while commands < max_batch {
                match queue.try_recv() {
                    Ok(request) => {
                        commands += request.commands.len();
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            if !self.config.linger.is_zero() {
                let deadline = Instant::now() + self.config.linger;
                while commands < max_batch {
                    match tokio::time::timeout_at(deadline, queue.recv()).await {
                        Ok(Some(request)) => {
                            commands += request.commands.len();
                            batch.push(request);
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            self.commit(&mut conn, std::mem::take(&mut batch)).await;
        }
    }

    /// The writer's connection, opened (again) if needed, with back-off
    /// until it opens.
    async fn connection<'c>(&self, conn: &'c mut Option<WriterConn>) -> &'c mut WriterConn {
        let mut backoff = CONNECT_BACKOFF.0;
        let opened = loop {
            if let Some(open) = conn.take() {
                break open;
            }
            match WriterConn::open(&self.target).await {
                Ok(opened) => {
                    Counters::add(&self.counters.connects, 1);
                    break opened;
                }
                Err(error) => {
                    tracing::error!(%error, ?backoff, "the store writer cannot connect; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(CONNECT_BACKOFF.1);
                }
            }
        };
        conn.insert(opened)
    }

    /// Commits the commands of `requests` and answers every request.
    async fn commit(&self, conn: &mut Option<WriterConn>, requests: Vec<Request>) {
        let prepared: Vec<&Prepared> = requests.iter().flat_map(|r| &r.commands).collect();
        let mut outcomes = match self.try_commit(conn, &prepared).await {
            Ok(assigned) => self.committed(&prepared, assigned),
            Err((_, error)) if prepared.len() > 1 && !error.is_transient() => {
                tracing::warn!(
                    commands = prepared.len(),
                    %error,
                    "outbox batch refused; committing its commands one by one"
                );
                Counters::add(&self.counters.split_batches, 1);
                let mut outcomes = Vec::with_capacity(prepared.len());
                for command in &prepared {
                    match self.try_commit(conn, &[*command]).await {
                        Ok(assigned) => outcomes.extend(self.committed(&[*command], assigned)),
                        Err((attempts, error)) => {
                            outcomes.extend(self.failed(&[*command], attempts, error))
                        }
                    }
                }
                outcomes
            }
            Err((attempts, error)) => self.failed(&prepared, attempts, error),
        }
        .into_iter();
        for request in requests {
            let n = request.commands.len();
            // The caller may have stopped waiting; the commit stands.
            match request.reply {
                Reply::One(answer) => {
                    let outcome = outcomes.next().unwrap_or(Err(StoreError::WriterClosed));
                    let _ = answer.send(outcome);
                }
                Reply::Many(answer) => {
                    let _ = answer.send(outcomes.by_ref().take(n).collect());
                }
            }
        }
    }

    /// One transaction for `batch`, tried again while the error is
    /// transient. On failure: the attempts made and the last error.
    async fn try_commit(
        &self,
        conn: &mut Option<WriterConn>,
        batch: &[&Prepared],
    ) -> Result<Assigned, (u32, StoreError)> {
        let max_attempts = self.config.max_attempts.max(1);
        let mut attempt = 1;
        // The connection died under the previous attempt: it may have
        // committed (issue 15: PostgreSQL restarted mid-load).
        let mut in_doubt = false;
        loop {
            let open = self.connection(conn).await;
            let result = match in_doubt {
                true => match open.committed_before(batch).await {
                    Ok(Some(assigned)) => {
                        tracing::warn!(
                            commands = batch.len(),
                            "a batch in doubt after a lost connection had committed"
                        );
                        Ok(assigned)
                    }
                    Ok(None) => {
                        open.write_batch(batch, &self.config.profile, now_ms())
                            .await
                    }
                    Err(error) => Err(error),
                },
                false => {
                    open.write_batch(batch, &self.config.profile, now_ms())
                        .await
                }
            };
            if result.is_err() && !open.alive().await {
                tracing::warn!("the store writer's connection is gone; reconnecting");
                *conn = None;
                in_doubt = true;
            }
            match result {
                Ok(assigned) => {
                    Counters::add(&self.counters.transactions, 1);
                    return Ok(assigned);
                }
                Err(error) if error.is_transient() && attempt < max_attempts => {
                    let backoff = self
                        .config
                        .retry_backoff
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(Duration::from_secs(1));
                    tracing::warn!(
                        attempt,
                        commands = batch.len(),
                        %error,
                        ?backoff,
                        "outbox transaction failed; retrying"
                    );
                    Counters::add(&self.counters.retries, 1);
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
                Err(error) => return Err((attempt, error)),
            }
        }
    }

    fn committed(&self, commands: &[&Prepared], assigned: Assigned) -> Vec<Outcome> {
        let n = commands.len() as u64;
        Counters::add(&self.counters.commands, n);
        self.counters.largest_batch.fetch_max(n, Ordering::Relaxed);
        if let Some(last) = assigned.last_global {
            self.committed.send_replace(last);
        }
        commands
            .iter()
            .zip(assigned.sequences)
            .map(|(prepared, sequences)| {
                let command = &prepared.command;
                tracing::debug!(
                    session_id = %command.session_id,
                    tenant_id = %command.tenant_id,
                    ?sequences,
                    closed = command.record().is_some(),
                    "committed"
                );
                Ok(Committed { sequences })
            })
            .collect()
    }

    fn failed(&self, commands: &[&Prepared], attempts: u32, error: StoreError) -> Vec<Outcome> {
        Counters::add(&self.counters.failed_commands, commands.len() as u64);
        let source = Arc::new(error);
        commands
            .iter()
            .map(|prepared| {
                let command = &prepared.command;
                tracing::error!(
                    session_id = %command.session_id,
                    tenant_id = %command.tenant_id,
                    attempts,
                    error = %source,
                    "session events not committed"
                );
                Err(StoreError::CommitFailed {
                    attempts,
                    source: Arc::clone(&source),
                })
            })
            .collect()
    }
}

/// Wall-clock commit time for `outbox.created_at`.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| i64::try_from(since.as_millis()).ok())
        .unwrap_or(0)
}
