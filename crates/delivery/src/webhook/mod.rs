//! Webhook delivery (SPEC §5): each tenant's `cdr_event` endpoint gets
//! one signed POST per committed event, retried on a schedule, logged per
//! attempt, durable across restarts.
//!
//! - [`config`]: the endpoint configuration, validated field by field;
//! - [`sign`]: Standard Webhooks signatures (`webhook-id`,
//!   `webhook-timestamp`, `webhook-signature: v1,…`);
//! - [`schedule`]: what an answer means, the retry schedule with jitter,
//!   `Retry-After`, 404/410, auto-disable (sans-IO);
//! - [`guard`]: the SSRF guard and its allow-list;
//! - [`client`]: one attempt over hyper + rustls to a vetted address,
//!   digest included;
//! - [`dispatcher`]: the runtime: fan-out from the outbox, per-tenant
//!   workers, leases, the recorder;
//! - [`stats`]: attempts by result, for the binary's metrics.

pub mod client;
pub mod config;
pub mod dispatcher;
pub mod guard;
pub mod schedule;
pub mod sign;
pub mod stats;

pub use client::{AuthError, Client, ClientConfig, RootsError};
pub use config::{Auth, ConfigError, EndpointConfig};
pub use dispatcher::{Dispatcher, DispatcherConfig, EndpointError, TestError, TestSent};
pub use guard::{AllowList, Cidr, CidrError, Refusal};
pub use schedule::RetryPolicy;
pub use sign::{Secret, SecretError};
