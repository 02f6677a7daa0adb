//! The node's one Snowflake id generator (SPEC §1), shared by everything
//! on the node that makes ids: the call engine (sessions, targets) and
//! provisioning (tenants, users).
//!
//! Two generators with the same node number could hand out the same id in
//! the same millisecond; one generator behind a mutex cannot. The lock is
//! held for a few arithmetic operations, taken once per session or target
//! by the shard and once per created tenant or user by the REST tasks, so
//! it never contends in practice.

use std::sync::{Arc, Mutex, PoisonError};

use cdr::{Id, InvalidNode, SessionId, Snowflake, UnixMillis};

/// A handle on the node's generator; clones share it.
#[derive(Clone, Debug)]
pub struct NodeIds(Arc<Mutex<Snowflake>>);

impl NodeIds {
    pub fn new(node: u16) -> Result<Self, InvalidNode> {
        Ok(NodeIds(Arc::new(Mutex::new(Snowflake::new(node)?))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snowflake> {
        // A Snowflake is consistent after every method: a panicking holder
        // cannot have left it half-updated.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next id at `now`.
    pub fn next(&self, now: UnixMillis) -> Id {
        self.lock().next(now)
    }

    /// The next session id at `now` (its `cdr_id` is reserved with it).
    pub fn next_session(&self, now: UnixMillis) -> SessionId {
        self.lock().next_session(now)
    }
}

impl pbx::IdGenerator for NodeIds {
    fn next_id(&mut self, now: UnixMillis) -> Id {
        NodeIds::next(self, now)
    }

    fn next_session(&mut self, now: UnixMillis) -> SessionId {
        NodeIds::next_session(self, now)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use pbx::IdGenerator as _;

    #[test]
    fn clones_share_one_sequence() {
        let provisioning = NodeIds::new(3).unwrap();
        let mut engine = provisioning.clone();
        let now = UnixMillis(1_795_874_587_123);
        let mut seen = HashSet::new();
        for _ in 0..3_000 {
            // The same millisecond everywhere: separate generators would
            // collide at once.
            let session = engine.next_session(now);
            assert!(seen.insert(session.id()));
            assert!(
                seen.insert(session.cdr_id().id()),
                "a cdr_id was handed out"
            );
            assert!(seen.insert(engine.next_id(now)));
            assert!(seen.insert(provisioning.next(now)));
        }
        assert!(seen.iter().all(|id| id.node() == 3));
    }

    #[test]
    fn the_node_number_is_checked() {
        assert!(NodeIds::new(1023).is_ok());
        assert!(NodeIds::new(1024).is_err());
    }
}
