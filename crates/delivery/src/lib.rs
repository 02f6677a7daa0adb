//! Everything Tally sends to the outside world about calls, read from the
//! store's transactional outbox (DESIGN.md, "The CDR pipeline", step 4).
//!
//! - [`relay`]: tails the outbox in commit order and fans each committed
//!   event out to live subscribers in this process.
//! - [`hub`]: WebSocket subscriptions (SPEC §6): resume from the store,
//!   then live from the relay, into a bounded per-connection queue; and
//!   the outbox retention task ([`hub::retention`]).
//!
//! Nothing here reads an event before the transaction that wrote it has
//! committed, so nothing is ever pushed that a crash could take back.

pub mod hub;
pub mod relay;

pub use hub::retention::Retention;
pub use hub::{End, Hub, HubConfig, Request, Subscription};
pub use relay::{Relay, RelayConfig};
