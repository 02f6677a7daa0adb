//! The webhook dispatcher in `tally serve` (SPEC §5; the `delivery`
//! crate's [`Dispatcher`]).
//!
//! Started after the store writer (it follows the writer's
//! `committed_global_sequence` and polls for other nodes' commits), it
//! runs beside call processing and never holds it up. At shutdown it stops
//! after the CDR commit task has committed everything, so the last calls'
//! events are fanned out first; attempts in flight get
//! [`STOP_GRACE`], and whatever is still pending is sent after the next
//! start, with the same `webhook-id`.
//!
//! The `[webhooks]` section of the configuration (see [`crate::config`])
//! sets the SSRF allow-list, extra TLS roots, the concurrency per
//! endpoint, the lease and (for tests) a shortened retry schedule.

use std::time::Duration;

use ::delivery::webhook::client::{ClientConfig, parse_pem_roots, tls_config};
use ::delivery::webhook::{AllowList, Dispatcher, DispatcherConfig, RetryPolicy};
use anyhow::Context as _;
use store::Store;
use tokio::sync::watch;

use crate::config::Config;

/// How long attempts in flight may finish at shutdown.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// The running dispatcher and what the REST API needs beside it.
pub struct Webhooks {
    pub dispatcher: Dispatcher,
    /// The SSRF allow-list, also applied when a URL is configured.
    pub allow: AllowList,
}

impl Webhooks {
    pub async fn start(
        config: &Config,
        store: &Store,
        committed: watch::Receiver<u64>,
    ) -> anyhow::Result<Webhooks> {
        let settings = &config.webhooks;
        let allow = AllowList::parse(&settings.allow)
            .map_err(|e| anyhow::anyhow!("webhooks.allow: {e}"))?;
        let mut client = ClientConfig::new(allow.clone());
        if let Some(path) = &settings.extra_ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("webhooks.extra_ca_file {}", path.display()))?;
            let roots = parse_pem_roots(&pem)
                .map_err(|e| anyhow::anyhow!("webhooks.extra_ca_file {}: {e}", path.display()))?;
            client.tls = tls_config(&roots);
        }
        let mut dispatcher = DispatcherConfig::new(config.node, client);
        dispatcher.concurrency = settings.concurrency;
        dispatcher.lease = Duration::from_secs(settings.lease_secs);
        dispatcher.retention = Duration::from_secs(settings.retention_days * 24 * 3600);
        let mut policy = RetryPolicy {
            auto_disable_after: Duration::from_secs(settings.auto_disable_secs),
            ..RetryPolicy::default()
        };
        if let Some(schedule) = &settings.retry_schedule_ms {
            policy.delays = schedule
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect();
        }
        dispatcher.policy = policy;
        let dispatcher = Dispatcher::start(store.clone(), committed, dispatcher)
            .await
            .context("starting the webhook dispatcher")?;
        Ok(Webhooks { dispatcher, allow })
    }

    pub async fn stop(&self) {
        self.dispatcher.stop(STOP_GRACE).await;
    }
}
