//! Everything Tally sends to the outside world about calls, read from the
//! store's transactional outbox (DESIGN.md, "The CDR pipeline", step 4).
//!
//! - [`relay`]: tails the outbox in commit order and fans each committed
//!   event out to live subscribers in this process.
//! - [`webhook`]: the webhook dispatcher (SPEC §5): per-tenant endpoints,
//!   signed POSTs, retries, the delivery log, the SSRF guard.
//!
//! Nothing here reads an event before the transaction that wrote it has
//! committed, so nothing is ever pushed that a crash could take back.

pub mod relay;
pub mod webhook;

pub use relay::{Relay, RelayConfig};
