//! Prometheus metrics: what the node counts, and `GET /metrics` on a
//! listener of its own (DESIGN.md, "Runtime"; README, "Security").
//!
//! Two kinds of value, one registry (`prometheus-client`, the Prometheus
//! org's crate, no global state of its own):
//!
//! - **Events**, counted where they happen by a one-line call into this
//!   module (`metrics::call_started()`, `metrics::cdr_commit(…)`,
//!   `metrics::tcp_refused()`, `metrics::ws_subscriber()`), so other
//!   modules carry no metric types and merges stay one line each.
//! - **Samples** read at scrape time from where the numbers already live:
//!   the transports' [`Counters`](crate::transport::Counters), the relay's
//!   position against the writer's last commit (outbox lag), and the
//!   shard's engine figures (calls, registrations, transactions), which
//!   the shard copies here at most once a second ([`engine`]) because only
//!   the shard may read its engine.
//!
//! Calls per second is `rate(tally_calls_started_total[1m])`: Prometheus
//! derives rates from counters; a gauge of "per second" would be a
//! smoothed guess made twice.
//!
//! **Access.** The metrics reveal traffic levels, so they are off the
//! public API: their own `[metrics] listen` address (off by default), and
//! a scrape must come from an `allow`ed network or carry the configured
//! bearer token; anything else is `401` (token configured) or `403`.
//!
//! Webhook attempts by result and the store pools' waits are counted by
//! the delivery and store crates themselves (process-wide atomics) and
//! read here at scrape time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use delivery::webhook::guard::Cidr;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::transport::Inbound;
use crate::transport::tcp::Tcp;

/// How often the shard copies its engine's figures ([`engine`]).
const ENGINE_SAMPLE_EVERY: Duration = Duration::from_secs(1);

struct Metrics {
    registry: Registry,
    calls_started: Counter,
    cdr_commit: Histogram,
    tcp_refused: Counter,
    ws_subscribers: Gauge,
    sampled: Arc<Sampled>,
}

/// What is read at scrape time.
#[derive(Debug, Default)]
struct Sampled {
    sources: OnceLock<Sources>,
    calls_active: AtomicI64,
    registrations: AtomicI64,
    server_transactions: AtomicI64,
    client_transactions: AtomicI64,
    refused_total: AtomicU64,
    refused_per_source: AtomicU64,
    suppressed: AtomicU64,
    /// Milliseconds after [`START`] of the last engine sample.
    sampled_at: AtomicU64,
}

#[derive(Debug)]
struct Sources {
    inbound: Arc<Inbound>,
    tcp: Arc<Tcp>,
    committed: watch::Receiver<u64>,
    relayed: watch::Receiver<u64>,
}

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("tally");
    let calls_started = Counter::default();
    registry.register(
        "calls_started",
        "Calls accepted (sessions started); rate() gives calls per second",
        calls_started.clone(),
    );
    // 1 ms to about 16 s: a group commit takes milliseconds, a struggling
    // store seconds.
    let cdr_commit = Histogram::new(exponential_buckets(0.001, 2.0, 15));
    registry.register(
        "cdr_commit_seconds",
        "From handing a session's CDR facts to the store writer to their COMMIT",
        cdr_commit.clone(),
    );
    let tcp_refused = Counter::default();
    registry.register(
        "sip_tcp_connections_refused",
        "SIP TCP connections closed at accept: over sip.tcp_max_connections or its per-source cap",
        tcp_refused.clone(),
    );
    let ws_subscribers = Gauge::default();
    registry.register(
        "wsi_subscribers",
        "Open /wsi WebSocket connections",
        ws_subscribers.clone(),
    );
    let sampled = Arc::new(Sampled::default());
    registry.register_collector(Box::new(Arc::clone(&sampled)));
    Metrics {
        registry,
        calls_started,
        cdr_commit,
        tcp_refused,
        ws_subscribers,
        sampled,
    }
});

/// Connects the scrape-time samples to their sources (once, at start-up).
pub fn install(
    inbound: Arc<Inbound>,
    tcp: Arc<Tcp>,
    committed: watch::Receiver<u64>,
    relayed: watch::Receiver<u64>,
) {
    let _ = METRICS.sampled.sources.set(Sources {
        inbound,
        tcp,
        committed,
        relayed,
    });
}

/// A call was accepted (its `SessionStarted`).
pub fn call_started() {
    METRICS.calls_started.inc();
}

/// Awaits a CDR commit, recording how long it took.
pub async fn cdr_commit<F: Future>(commit: F) -> F::Output {
    let started = Instant::now();
    let out = commit.await;
    METRICS.cdr_commit.observe(started.elapsed().as_secs_f64());
    out
}

/// A TCP connection was refused at accept.
pub fn tcp_refused() {
    METRICS.tcp_refused.inc();
}

/// Counts a `/wsi` connection while the returned guard lives.
#[must_use]
pub fn ws_subscriber() -> impl Drop {
    struct Subscriber;
    impl Drop for Subscriber {
        fn drop(&mut self) {
            METRICS.ws_subscribers.dec();
        }
    }
    METRICS.ws_subscribers.inc();
    Subscriber
}

/// Copies the engine's figures, at most once per [`ENGINE_SAMPLE_EVERY`]
/// (the shard calls it after every input; counting calls in progress
/// walks the sessions).
pub fn engine(engine: &pbx::Engine) {
    let s = &METRICS.sampled;
    let now = u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX);
    let last = s.sampled_at.load(Ordering::Relaxed);
    if last != 0 && now < last + ENGINE_SAMPLE_EVERY.as_millis() as u64 {
        return;
    }
    s.sampled_at.store(now.max(1), Ordering::Relaxed);
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let stats = engine.transaction_stats();
    s.calls_active
        .store(gauge(engine.calls_in_progress()), Ordering::Relaxed);
    s.registrations.store(
        gauge(engine.registrar().location().binding_count()),
        Ordering::Relaxed,
    );
    s.server_transactions
        .store(gauge(stats.server), Ordering::Relaxed);
    s.client_transactions
        .store(gauge(stats.client), Ordering::Relaxed);
    s.refused_total
        .store(stats.refused_total, Ordering::Relaxed);
    s.refused_per_source
        .store(stats.refused_per_source, Ordering::Relaxed);
    s.suppressed.store(stats.suppressed, Ordering::Relaxed);
}

impl Collector for Sampled {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let load = |a: &AtomicI64| ConstGauge::new(a.load(Ordering::Relaxed));
        let count = |a: &AtomicU64| ConstCounter::new(a.load(Ordering::Relaxed));
        let help = "Calls in progress (sampled each second)";
        family(
            &mut e,
            "calls_active",
            help,
            [(None, load(&self.calls_active))],
        )?;
        let help = "Live registration bindings (sampled each second)";
        family(
            &mut e,
            "registrations",
            help,
            [(None, load(&self.registrations))],
        )?;
        let help = "Live SIP transactions (sampled each second)";
        let kinds = [
            (Some(("kind", "server")), load(&self.server_transactions)),
            (Some(("kind", "client")), load(&self.client_transactions)),
        ];
        family(&mut e, "sip_transactions", help, kinds)?;
        let help = "New SIP requests refused (503 or dropped) at a transaction cap";
        let limits = [
            (Some(("limit", "total")), count(&self.refused_total)),
            (
                Some(("limit", "per_source")),
                count(&self.refused_per_source),
            ),
        ];
        family(&mut e, "sip_transactions_refused", help, limits)?;
        let help = "SIP rejections not sent on UDP because they were larger than the request";
        family(
            &mut e,
            "sip_replies_suppressed",
            help,
            [(None, count(&self.suppressed))],
        )?;
        let help = "Webhook delivery attempts by result (the delivery log's outcome)";
        let results = delivery::webhook::stats::attempts()
            .map(|(result, n)| (Some(("result", result)), ConstCounter::new(n)));
        family(&mut e, "webhook_attempts", help, results)?;
        let waits = store::pool_waits();
        let help = "Store connections handed out by the pools (each one waited for)";
        family(
            &mut e,
            "store_pool_acquires",
            help,
            [(None, ConstCounter::new(waits.acquired))],
        )?;
        let help = "Seconds spent waiting for store pool connections; \
                    rate() over the acquires' rate() is the mean wait";
        family(
            &mut e,
            "store_pool_wait_seconds",
            help,
            [(None, ConstCounter::new(waits.waited.as_secs_f64()))],
        )?;
        let help = "Store pool waits that ended at the acquire timeout (answered 503)";
        family(
            &mut e,
            "store_pool_timeouts",
            help,
            [(None, ConstCounter::new(waits.timed_out))],
        )?;
        let Some(sources) = self.sources.get() else {
            return Ok(());
        };
        let counters = &sources.inbound.counters;
        let help = "SIP messages the transports answered with a rejection (rejected) or dropped \
                    (dropped: unanswerable; queue_full: UDP datagrams lost to a full shard queue)";
        let outcomes = [
            (Some(("outcome", "rejected")), count(&counters.rejected)),
            (Some(("outcome", "dropped")), count(&counters.dropped)),
            (Some(("outcome", "queue_full")), count(&counters.overload)),
        ];
        family(&mut e, "sip_transport_refused", help, outcomes)?;
        let gauge = |n: u64| ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
        let open = gauge(sources.tcp.connections.len() as u64);
        let help = "Open SIP TCP connections, accepted and opened";
        family(&mut e, "sip_tcp_connections", help, [(None, open)])?;
        let lag = gauge(
            sources
                .committed
                .borrow()
                .saturating_sub(*sources.relayed.borrow()),
        );
        let help = "Events committed to the outbox and not yet broadcast by the relay";
        family(&mut e, "outbox_lag_events", help, [(None, lag)])
    }
}

/// One metric: a single value (label `None`) or one value per label.
fn family<M: EncodeMetric>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (Option<(&'static str, &'static str)>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut values = values.into_iter().peekable();
    let Some(kind) = values.peek().map(|(_, m)| m.metric_type()) else {
        return Ok(());
    };
    let mut descriptor = e.encode_descriptor(name, help, None, kind)?;
    for (label, metric) in values {
        match label {
            Some(label) => metric.encode(descriptor.encode_family(&[label])?)?,
            // A single value takes the descriptor's encoder whole.
            None => return metric.encode(descriptor),
        }
    }
    Ok(())
}

/// Who may scrape (see the module doc).
#[derive(Clone, Debug)]
pub struct Access {
    pub allow: Vec<Cidr>,
    /// SHA-256 of the bearer token, compared digest to digest so the
    /// comparison's timing says nothing about the token.
    pub token_sha256: Option<[u8; 32]>,
}

impl Access {
    pub fn new(allow: Vec<Cidr>, token: Option<&str>) -> Self {
        Access {
            allow,
            token_sha256: token.map(|t| Sha256::digest(t.as_bytes()).into()),
        }
    }

    fn permits(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<(), StatusCode> {
        if self.allow.iter().any(|c| c.contains(peer.ip())) {
            return Ok(());
        }
        let Some(expected) = self.token_sha256 else {
            return Err(StatusCode::FORBIDDEN);
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(t) if <[u8; 32]>::from(Sha256::digest(t.trim().as_bytes())) == expected => Ok(()),
            _ => Err(StatusCode::UNAUTHORIZED),
        }
    }
}

/// The scrape: the registry in the OpenMetrics text format.
pub fn render() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &METRICS.registry);
    out
}

async fn scrape(
    State(access): State<Arc<Access>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(status) = access.permits(peer, &headers) {
        tracing::debug!(%peer, %status, "metrics scrape refused");
        let mut r = status.into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        return r;
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(),
    )
        .into_response()
}

/// Serves `GET /metrics` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    access: Access,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(Arc::new(access));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> SocketAddr {
        format!("{ip}:40000").parse().unwrap()
    }

    #[test]
    fn access_needs_an_allowed_network_or_the_token() {
        let a = Access::new(vec!["10.0.0.0/8".parse().unwrap()], Some("s3cret"));
        let none = HeaderMap::new();
        assert_eq!(a.permits(peer("10.1.2.3"), &none), Ok(()));
        assert_eq!(
            a.permits(peer("192.0.2.1"), &none),
            Err(StatusCode::UNAUTHORIZED)
        );
        let mut good = HeaderMap::new();
        good.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(a.permits(peer("192.0.2.1"), &good), Ok(()));
        let mut bad = HeaderMap::new();
        bad.insert(header::AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert_eq!(
            a.permits(peer("192.0.2.1"), &bad),
            Err(StatusCode::UNAUTHORIZED)
        );
        let no_token = Access::new(vec![], None);
        assert_eq!(
            no_token.permits(peer("127.0.0.1"), &good),
            Err(StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn the_scrape_is_openmetrics_text() {
        call_started();
        let text = render();
        assert!(
            text.contains("# TYPE tally_calls_started counter"),
            "{text}"
        );
        assert!(text.contains("tally_cdr_commit_seconds_bucket"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
