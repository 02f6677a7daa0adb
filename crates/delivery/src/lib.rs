//! Everything Tally sends to the outside world about calls, read from the
//! store's transactional outbox (DESIGN.md, "The CDR pipeline", step 4).
//!
//! - [`relay`]: tails the outbox in commit order and fans each committed
//!   event out to live subscribers in this process.
//! - [`hub`]: WebSocket subscriptions (SPEC §6): resume from the store,
//!   then live from the relay, into a bounded per-connection queue; and
//!   the outbox retention task ([`hub::retention`]).
//! - [`webhook`]: the webhook dispatcher (SPEC §5): per-tenant endpoints,
//!   signed POSTs, retries, the delivery log, the SSRF guard.
//!
//! Nothing here reads an event before the transaction that wrote it has
//! committed, so nothing is ever pushed that a crash could take back.
//!
//! # Dependencies of the webhook client
//!
//! hyper 1 (client connection API only; the same hyper axum already
//! brings) over a `TcpStream` this crate dials itself, so the SSRF guard
//! decides the address and nothing can follow a redirect or resolve
//! twice; reqwest would add a second connection stack and its own
//! resolver. TLS is rustls with the ring provider (no aws-lc-rs: no cmake
//! or C++ toolchain, smaller build) and the Mozilla roots compiled in
//! (`webpki-roots`: the same trust on every machine, no dependency on the
//! host's CA bundle; operators add private roots with
//! `[webhooks] extra_ca_file`). `sip` provides the digest client.

pub mod hub;
pub mod relay;
pub mod webhook;

pub use hub::retention::{Retention, RetentionError};
pub use hub::{End, Hub, HubConfig, Request, Subscription};
pub use relay::{Relay, RelayConfig};
