//! The identifiers the PBX writes into SIP messages: tags, branches,
//! Call-IDs and initial CSeq numbers, drawn from an injected seed.
//!
//! RFC 3261 wants tags and Call-IDs globally unique and hard to guess
//! (§19.3, §8.1.1.4) and branches unique per transaction with the
//! `z9hG4bK` magic cookie (§8.1.1.7). A [`SplitMix64`] stream over a seed the
//! runtime draws from the OS at start-up gives 64 well-mixed bits per draw
//! and never repeats within 2^64 draws; a fixed seed makes every message of
//! a test reproducible. Nothing is encoded in these values yet (DESIGN.md's
//! shard number in Call-IDs and branches comes with sharding).

use cdr::{Id, SessionId, Snowflake, SplitMix64, UnixMillis};
use sip::headers::MAGIC_COOKIE;

/// Where the engine takes its session and target ids (SPEC §1 Snowflake
/// ids). A [`Snowflake`] of its own by default ([`Engine::new`]); the
/// runtime passes one generator shared with everything else on the node
/// that makes ids ([`Engine::with_ids`]), so no two parts of one node can
/// ever hand out the same id, whatever their clocks do.
///
/// [`Engine::new`]: crate::Engine::new
/// [`Engine::with_ids`]: crate::Engine::with_ids
pub trait IdGenerator: Send {
    /// The next id at `now`.
    fn next_id(&mut self, now: UnixMillis) -> Id;
    /// The next session id at `now` (its successor, the `cdr_id`, is never
    /// handed out: [`Snowflake::next_session`]).
    fn next_session(&mut self, now: UnixMillis) -> SessionId;
}

impl IdGenerator for Snowflake {
    fn next_id(&mut self, now: UnixMillis) -> Id {
        self.next(now)
    }

    fn next_session(&mut self, now: UnixMillis) -> SessionId {
        Snowflake::next_session(self, now)
    }
}

/// A deterministic source of SIP identifiers.
#[derive(Clone, Debug)]
pub(crate) struct IdSource {
    rng: SplitMix64,
}

impl IdSource {
    pub(crate) fn new(seed: u64) -> Self {
        IdSource {
            rng: SplitMix64::new(seed),
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A From or To tag: 16 hex digits.
    pub(crate) fn tag(&mut self) -> String {
        format!("{:016x}", self.next_u64())
    }

    /// A branch for a new client transaction: the RFC 3261 magic cookie and
    /// 16 hex digits.
    pub(crate) fn branch(&mut self) -> String {
        format!("{MAGIC_COOKIE}{:016x}", self.next_u64())
    }

    /// A Call-ID for a new outgoing leg: 32 hex digits (128 bits).
    pub(crate) fn call_id(&mut self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }

    /// The first CSeq of requests the PBX sends in a dialog it did not
    /// start (RFC 3261 §8.1.1.5: below 2^31, better unpredictable).
    pub(crate) fn first_cseq(&mut self) -> u32 {
        // 30 bits, so a long call's re-INVITEs never approach 2^31.
        (self.next_u64() >> 34) as u32 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_have_their_shapes_and_differ() {
        let mut ids = IdSource::new(7);
        let (a, b) = (ids.tag(), ids.tag());
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        let branch = ids.branch();
        assert!(
            branch.starts_with("z9hG4bK") && branch.len() == 23,
            "{branch}"
        );
        assert_eq!(ids.call_id().len(), 32);
        let seq = ids.first_cseq();
        assert!((1..1 << 31).contains(&seq));
        // Same seed, same stream.
        assert_eq!(IdSource::new(7).tag(), a);
    }
}
