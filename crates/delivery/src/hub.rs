//! The WebSocket hub (SPEC §6): one [`Subscription`] per subscribed
//! connection, fed from the store (resume) and then from the [`Relay`]
//! (live), into a bounded queue the connection drains.
//!
//! # Resume without gap or duplicate
//!
//! A subscription names its tenants and, per tenant, an optional cursor:
//! the last `sequence` the client has (`from_sequence`), or none for "live
//! from now". With a cursor the subscription's task:
//!
//! 1. replays from the store ([`Store::outbox_after`]), page by page, every
//!    tenant's events merged in `global_sequence` (commit) order, advancing
//!    the cursors, with back-pressure (it waits for the client) — as many
//!    passes as it takes until a pass finds less than a page;
//! 2. subscribes to the relay's broadcast, *then* reads the store once more
//!    after the cursors. An event committed after that read is broadcast
//!    after the subscription, so it arrives live; one committed before it
//!    is in the read. Nothing falls between the two;
//! 3. goes live: per tenant, an event whose `sequence` is not above the
//!    cursor was already replayed and is skipped, so nothing arrives twice.
//!
//! Pass 1 runs without a broadcast receiver, so a long replay cannot make
//! the receiver lag; only what commits during the short pass 2 waits in it.
//!
//! `recovered` (SPEC §6 item 4) is false when retention already deleted an
//! event the client asked for: the tenant had assigned a `sequence` above
//! the cursor before the first read, and that read does not start at
//! cursor + 1 (the store keeps a suffix of the outbox, see
//! [`store::Store::outbox_prune`]). The replay then starts at the oldest
//! event still stored.
//!
//! # Slow consumers
//!
//! Live events go into the connection's queue ([`HubConfig::queue`]
//! events). A queue that stays full for [`HubConfig::overflow_after`] (a
//! short grace, so that a burst the relay delivers at once or a scheduling
//! hiccup does not close a healthy connection), or a broadcast receiver
//! that lagged behind the relay, ends the subscription with
//! [`End::Overflow`] / [`End::Lagged`]: the socket closes with 4008 and the
//! client resumes from the last `sequence` it has. Events still queued are
//! dropped at that point rather than drained: the client is too slow for
//! them anyway and will replay them.
//!
//! Each subscription has its own broadcast receiver, so every event wakes
//! every subscribed connection once, whichever its tenants; the filter is a
//! map lookup. That is the right trade for up to a few thousand
//! connections per node (see `benches/README.md`); a tenant-indexed fan-out
//! would be the next step past that.

pub mod retention;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use cdr::TenantId;
use store::{OutboxEvent, Store, StoreError};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};

use crate::relay::Relay;

/// How a subscription buffers and reads.
#[derive(Clone, Debug)]
pub struct HubConfig {
    /// Events a connection may have queued before it is closed (SPEC §6's
    /// bounded send queue).
    pub queue: usize,
    /// How long a full queue may stay full before the connection is
    /// closed.
    pub overflow_after: Duration,
    /// Events read from the store per query while replaying.
    pub replay_page: u32,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue: 1024,
            overflow_after: Duration::from_secs(1),
            replay_page: 500,
        }
    }
}

/// Subscriptions to the events of a process's relay. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Hub {
    store: Store,
    relay: Relay,
    config: HubConfig,
    /// Set once by [`Hub::close`]; every connection watches it.
    closing: Arc<watch::Sender<bool>>,
}

/// What to subscribe to: each tenant with the last `sequence` the client
/// already has (`None`: live events only, from now on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub tenants: BTreeMap<TenantId, Option<u64>>,
}

impl Request {
    /// `tenants`, each resumed after `from_sequence` (or live only).
    pub fn new(tenants: impl IntoIterator<Item = TenantId>, from_sequence: Option<u64>) -> Self {
        Self {
            tenants: tenants.into_iter().map(|t| (t, from_sequence)).collect(),
        }
    }
}

/// Why a subscription ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The connection's queue was full (WebSocket close code 4008).
    Overflow,
    /// The subscription fell behind the relay's buffer (also 4008).
    Lagged,
    /// The relay stopped (the process is shutting down).
    RelayStopped,
    /// The store could not be read while replaying.
    StoreFailed,
}

impl End {
    /// The WebSocket close code for this end: 4008 when the client was
    /// too slow and should resume, 1011 (internal error) or 1001 (going
    /// away) otherwise.
    pub fn close_code(self) -> u16 {
        match self {
            End::Overflow | End::Lagged => 4008,
            End::RelayStopped => 1001,
            End::StoreFailed => 1011,
        }
    }
}

/// A live subscription: the events in order, then its [`End`]. Dropping it
/// stops its task.
#[derive(Debug)]
pub struct Subscription {
    /// False when an event after a requested `from_sequence` is no longer
    /// stored (older than retention).
    pub recovered: bool,
    events: mpsc::Receiver<Arc<OutboxEvent>>,
    end: watch::Receiver<Option<End>>,
    live: watch::Receiver<bool>,
}

impl Subscription {
    /// The next event, or why there are no more. An overflow is reported
    /// as soon as it happens, before the events still queued.
    pub async fn next(&mut self) -> Result<Arc<OutboxEvent>, End> {
        loop {
            if let Some(end) = *self.end.borrow_and_update() {
                if matches!(end, End::Overflow | End::Lagged) {
                    return Err(end);
                }
                // A normal end: deliver what is queued first.
                return self.events.try_recv().map_err(|_| end);
            }
            tokio::select! {
                biased;
                changed = self.end.changed() => {
                    if changed.is_err() {
                        // The task is gone without saying why: it panicked.
                        return self.events.try_recv().map_err(|_| End::RelayStopped);
                    }
                }
                event = self.events.recv() => {
                    // `None` only after the task set its end.
                    if let Some(event) = event {
                        return Ok(event);
                    }
                    let end = (*self.end.borrow()).unwrap_or(End::RelayStopped);
                    return Err(end);
                }
            }
        }
    }
}

impl Subscription {
    /// An event already queued, without waiting: `None` when none is, or
    /// when the subscription overflowed (then [`Subscription::next`] says
    /// so). Lets a connection write a burst with one flush.
    pub fn try_next(&mut self) -> Option<Arc<OutboxEvent>> {
        if matches!(*self.end.borrow(), Some(End::Overflow | End::Lagged)) {
            return None;
        }
        self.events.try_recv().ok()
    }

    /// Resolves once the replay is done and the subscription follows the
    /// relay (at once for a live-only one); never if it ends before.
    pub async fn caught_up(&self) {
        let mut live = self.live.clone();
        if live.wait_for(|l| *l).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves when the subscription overflows or lags, and never
    /// otherwise: lets a connection stop waiting on a socket whose client
    /// does not read.
    pub async fn overflowed(&mut self) -> End {
        loop {
            if let Some(end @ (End::Overflow | End::Lagged)) = *self.end.borrow_and_update() {
                return end;
            }
            if self.end.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Hub {
    pub fn new(store: Store, relay: Relay, config: HubConfig) -> Self {
        Self {
            store,
            relay,
            config,
            closing: Arc::new(watch::Sender::new(false)),
        }
    }

    /// The process is stopping: every subscription ends with
    /// [`End::RelayStopped`] (close code 1001) and [`Hub::closing`]
    /// resolves for connections without one. New subscriptions end at
    /// once.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`Hub::close`] was called.
    pub async fn closing(&self) {
        let mut closing = self.closing.subscribe();
        // The sender lives in `self`: `wait_for` cannot fail here.
        let _ = closing.wait_for(|c| *c).await;
    }

    /// Starts a subscription. Returns once `recovered` is known (the first
    /// store read is done), so the caller can answer the subscribe command
    /// before any event.
    pub async fn subscribe(&self, request: Request) -> Result<Subscription, StoreError> {
        let page = self.config.replay_page.max(1);
        let mut streams = Vec::new();
        let mut live_only = Vec::new();
        let mut recovered = true;
        for (&tenant, &from) in &request.tenants {
            let Some(from) = from else {
                live_only.push(tenant);
                continue;
            };
            let last_before = self.store.outbox_last_sequence(tenant).await?;
            let first = self.store.outbox_after(tenant, from, page).await?;
            if last_before > from && first.first().map(|e| e.sequence) != Some(from + 1) {
                recovered = false;
            }
            streams.push(Stream::new(tenant, from, first, page));
        }
        let (tx, events) = mpsc::channel(self.config.queue.max(1));
        let (end_tx, end) = watch::channel(None);
        let (live_tx, live) = watch::channel(false);
        let mut task = Task {
            closing: self.closing.subscribe(),
            store: self.store.clone(),
            relay: self.relay.clone(),
            page,
            overflow_after: self.config.overflow_after,
            tx,
            live: live_tx,
            streams,
            live_only,
        };
        tokio::spawn(async move {
            let end = task.run().await;
            if let Some(end) = end {
                let _ = end_tx.send(Some(end));
            }
            // The queue's sender goes only now: a consumer that finds the
            // queue closed finds the end already set.
            drop(task);
        });
        Ok(Subscription {
            recovered,
            events,
            end,
            live,
        })
    }
}

/// One tenant's replay: its cursor and the page read ahead.
struct Stream {
    tenant: TenantId,
    cursor: u64,
    page: VecDeque<OutboxEvent>,
    /// The last read found less than a page: the store had no more then.
    drained: bool,
}

impl Stream {
    fn new(tenant: TenantId, cursor: u64, first: Vec<OutboxEvent>, page: u32) -> Self {
        let drained = first.len() < page as usize;
        Self {
            tenant,
            cursor,
            page: first.into(),
            drained,
        }
    }
}

struct Task {
    closing: watch::Receiver<bool>,
    store: Store,
    relay: Relay,
    page: u32,
    overflow_after: Duration,
    tx: mpsc::Sender<Arc<OutboxEvent>>,
    live: watch::Sender<bool>,
    streams: Vec<Stream>,
    live_only: Vec<TenantId>,
}

/// The consumer dropped its subscription: nothing to report to anyone.
struct Gone;

impl Task {
    /// Runs until the subscription ends; `None` when the consumer left.
    async fn run(&mut self) -> Option<End> {
        let mut closing = self.closing.clone();
        tokio::select! {
            end = self.follow() => end,
            // An error means every `Hub` handle is gone: keep following.
            Ok(_) = closing.wait_for(|c| *c) => Some(End::RelayStopped),
        }
    }

    async fn follow(&mut self) -> Option<End> {
        // Pass 1: replay with back-pressure until a pass finds little.
        if !self.streams.is_empty() {
            loop {
                match self.replay().await {
                    Ok(n) if n < self.page as usize => break,
                    Ok(_) => self.refill(),
                    Err(ReplayError::Gone) => return None,
                    Err(ReplayError::Store(e)) => {
                        tracing::warn!(error = %e, "wsi replay: store read failed");
                        return Some(End::StoreFailed);
                    }
                }
            }
        }
        // Pass 2: subscribe, then read once more; then live.
        let mut live = self.relay.subscribe();
        if !self.streams.is_empty() {
            self.refill();
            match self.replay().await {
                Ok(_) => {}
                Err(ReplayError::Gone) => return None,
                Err(ReplayError::Store(e)) => {
                    tracing::warn!(error = %e, "wsi replay: store read failed");
                    return Some(End::StoreFailed);
                }
            }
        }
        let mut cursors: BTreeMap<TenantId, Option<u64>> = self
            .streams
            .iter()
            .map(|s| (s.tenant, Some(s.cursor)))
            .collect();
        cursors.extend(self.live_only.iter().map(|&t| (t, None)));
        self.live.send_replace(true);
        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                () = self.tx.closed() => return None,
            };
            let event = match received {
                Ok(event) => event,
                Err(RecvError::Lagged(_)) => return Some(End::Lagged),
                Err(RecvError::Closed) => return Some(End::RelayStopped),
            };
            let Some(cursor) = cursors.get_mut(&event.tenant_id) else {
                continue;
            };
            if let Some(c) = *cursor {
                if event.sequence <= c {
                    continue;
                }
                if event.sequence > c + 1 {
                    // Only after a resume that retention cut short
                    // (`recovered` was false): the hole is gone from the
                    // store too. Anything still stored is sent first
                    // rather than skipped.
                    tracing::debug!(tenant_id = %event.tenant_id, cursor = c, sequence = event.sequence, "wsi: live event after a gap");
                    match self.fill(event.tenant_id, c, event.sequence).await {
                        Ok(Some(end)) => return Some(end),
                        Ok(None) => {}
                        Err(Gone) => return None,
                    }
                }
            }
            *cursor = Some(event.sequence);
            if let Err(end) = self.offer(event).await {
                return end;
            }
        }
    }

    /// Queues a live event, waiting at most `overflow_after` for room.
    /// `Err(None)`: the consumer is gone.
    async fn offer(&self, event: Arc<OutboxEvent>) -> Result<(), Option<End>> {
        match self.tx.try_send(event) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(None),
            Err(mpsc::error::TrySendError::Full(event)) => {
                match self.tx.send_timeout(event, self.overflow_after).await {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(Some(End::Overflow)),
                    Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(None),
                }
            }
        }
    }

    /// Marks every stream as worth reading again.
    fn refill(&mut self) {
        for s in &mut self.streams {
            s.drained = false;
        }
    }

    /// Sends every stored event after the cursors, merged in commit order;
    /// returns how many it sent.
    async fn replay(&mut self) -> Result<usize, ReplayError> {
        let mut sent = 0;
        loop {
            for s in &mut self.streams {
                if s.page.is_empty() && !s.drained {
                    let page = self
                        .store
                        .outbox_after(s.tenant, s.cursor, self.page)
                        .await?;
                    s.drained = page.len() < self.page as usize;
                    s.page = page.into();
                }
            }
            let next = self
                .streams
                .iter_mut()
                .filter(|s| !s.page.is_empty())
                .min_by_key(|s| s.page[0].global_sequence);
            let Some(stream) = next else {
                return Ok(sent);
            };
            let Some(event) = stream.page.pop_front() else {
                return Ok(sent);
            };
            stream.cursor = event.sequence;
            self.tx
                .send(Arc::new(event))
                .await
                .map_err(|_| ReplayError::Gone)?;
            sent += 1;
        }
    }

    /// Sends the tenant's stored events with `after < sequence < before`
    /// (without waiting: this is the live path).
    async fn fill(&self, tenant: TenantId, after: u64, before: u64) -> Result<Option<End>, Gone> {
        let mut cursor = after;
        while cursor + 1 < before {
            let limit = u32::try_from(before - cursor - 1)
                .unwrap_or(u32::MAX)
                .min(self.page);
            let page = match self.store.outbox_after(tenant, cursor, limit).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "wsi: store read failed");
                    return Ok(Some(End::StoreFailed));
                }
            };
            if page.is_empty() {
                return Ok(None);
            }
            for event in page {
                if event.sequence >= before {
                    return Ok(None);
                }
                cursor = event.sequence;
                match self.offer(Arc::new(event)).await {
                    Ok(()) => {}
                    Err(Some(end)) => return Ok(Some(end)),
                    Err(None) => return Err(Gone),
                }
            }
        }
        Ok(None)
    }
}

enum ReplayError {
    Gone,
    Store(StoreError),
}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> Self {
        ReplayError::Store(e)
    }
}
