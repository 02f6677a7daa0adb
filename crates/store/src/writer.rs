//! The store writer: one task per node that commits the CDR pipeline's
//! commands in group transactions (DESIGN.md, "The CDR pipeline", step 3).
//!
//! Call engine shards send [`SessionEvents`] through a bounded channel
//! (back-pressure: a full queue makes `enqueue` wait). The task takes
//! whatever is queued, up to [`WriterConfig::max_batch`] commands (waiting
//! [`WriterConfig::linger`] for more, if set), writes them all in **one**
//! transaction, commits, and only then answers each command with the
//! sequences it was given. Under load, commands that arrive while a
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
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::Store;
use crate::commit::{Assigned, Prepared, SessionEvents, prepare};
use crate::error::StoreError;

/// How the writer batches and retries.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// How events are spelled in the outbox (configuration
    /// `events.direction_vocabulary`, PortSIP compat). Applies to rows
    /// written from now on; committed rows keep the bytes they were
    /// delivered with.
    pub profile: WireProfile,
    /// Commands that may wait for the writer before `enqueue` waits.
    pub queue_capacity: usize,
    /// Most commands in one transaction.
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
}

#[derive(Debug, Default)]
struct Counters {
    commands: AtomicU64,
    transactions: AtomicU64,
    retries: AtomicU64,
    failed_commands: AtomicU64,
    split_batches: AtomicU64,
    largest_batch: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

type Answer = oneshot::Sender<Result<Committed, StoreError>>;

#[derive(Debug)]
struct Job {
    prepared: Prepared,
    answer: Answer,
}

/// A handle on a store's writer task. Clone it for every shard; the task
/// stops once every handle is dropped and the queue is drained.
#[derive(Clone, Debug)]
pub struct StoreWriter {
    pub(crate) store: Store,
    queue: mpsc::Sender<Job>,
    counters: Arc<Counters>,
    committed: watch::Receiver<u64>,
}

/// A queued command's answer: resolves once its transaction committed (or
/// failed for good). Dropping it does not withdraw the command.
#[derive(Debug)]
pub struct PendingCommit(oneshot::Receiver<Result<Committed, StoreError>>);

impl Future for PendingCommit {
    type Output = Result<Committed, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(StoreError::WriterClosed)))
    }
}

impl StoreWriter {
    /// Starts the writer task on the current tokio runtime.
    pub(crate) fn spawn(store: Store, config: WriterConfig) -> Self {
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let (committed_tx, committed) = watch::channel(0);
        let task = WriterTask {
            store: store.clone(),
            config,
            counters: Arc::clone(&counters),
            committed: committed_tx,
        };
        tokio::spawn(task.run(receiver));
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
            .send(Job { prepared, answer })
            .await
            .map_err(|_| StoreError::WriterClosed)?;
        Ok(PendingCommit(pending))
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
        }
    }

    /// The highest `global_sequence` this writer has committed (0 before
    /// its first commit). A wake-up for readers of the outbox on this
    /// node; they still read the rows from the store.
    pub fn committed_global_sequence(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }
}

struct WriterTask {
    store: Store,
    config: WriterConfig,
    counters: Arc<Counters>,
    committed: watch::Sender<u64>,
}

impl WriterTask {
    async fn run(self, mut queue: mpsc::Receiver<Job>) {
        let max_batch = self.config.max_batch.max(1);
        let mut batch = Vec::with_capacity(max_batch);
        while let Some(job) = queue.recv().await {
            batch.push(job);
            while batch.len() < max_batch {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if !self.config.linger.is_zero() {
                let deadline = Instant::now() + self.config.linger;
                while batch.len() < max_batch {
                    match tokio::time::timeout_at(deadline, queue.recv()).await {
                        Ok(Some(job)) => batch.push(job),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            self.commit(std::mem::take(&mut batch)).await;
        }
    }

    /// Commits `jobs` and answers every one of them.
    async fn commit(&self, jobs: Vec<Job>) {
        let prepared: Vec<&Prepared> = jobs.iter().map(|job| &job.prepared).collect();
        match self.try_commit(&prepared).await {
            Ok(assigned) => self.answer_committed(jobs, assigned),
            Err((_, error)) if jobs.len() > 1 && !error.is_transient() => {
                tracing::warn!(
                    commands = jobs.len(),
                    %error,
                    "outbox batch refused; committing its commands one by one"
                );
                Counters::add(&self.counters.split_batches, 1);
                for job in jobs {
                    let result = self.try_commit(&[&job.prepared]).await;
                    match result {
                        Ok(assigned) => self.answer_committed(vec![job], assigned),
                        Err((attempts, error)) => {
                            self.answer_failed(vec![job], attempts, error);
                        }
                    }
                }
            }
            Err((attempts, error)) => self.answer_failed(jobs, attempts, error),
        }
    }

    /// One transaction for `batch`, tried again while the error is
    /// transient. On failure: the attempts made and the last error.
    async fn try_commit(&self, batch: &[&Prepared]) -> Result<Assigned, (u32, StoreError)> {
        let max_attempts = self.config.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self
                .store
                .write_batch(batch, &self.config.profile, now_ms())
                .await
            {
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

    fn answer_committed(&self, jobs: Vec<Job>, assigned: Assigned) {
        let n = jobs.len() as u64;
        Counters::add(&self.counters.commands, n);
        self.counters.largest_batch.fetch_max(n, Ordering::Relaxed);
        if let Some(last) = assigned.last_global {
            self.committed.send_replace(last);
        }
        for (job, sequences) in jobs.into_iter().zip(assigned.sequences) {
            let command = &job.prepared.command;
            tracing::debug!(
                session_id = %command.session_id,
                tenant_id = %command.tenant_id,
                ?sequences,
                closed = command.record().is_some(),
                "committed"
            );
            // The engine may have stopped waiting; the commit stands.
            let _ = job.answer.send(Ok(Committed { sequences }));
        }
    }

    fn answer_failed(&self, jobs: Vec<Job>, attempts: u32, error: StoreError) {
        Counters::add(&self.counters.failed_commands, jobs.len() as u64);
        let source = Arc::new(error);
        for job in jobs {
            let command = &job.prepared.command;
            tracing::error!(
                session_id = %command.session_id,
                tenant_id = %command.tenant_id,
                attempts,
                error = %source,
                "session events not committed"
            );
            let _ = job.answer.send(Err(StoreError::CommitFailed {
                attempts,
                source: Arc::clone(&source),
            }));
        }
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
