//! The queue dispatcher (`call/queue.rs` has the rules): after every
//! input and timeout the engine offers each queue's waiting callers, the
//! longest waiting first, to the agents free now (logged in, not ringing
//! for another caller, in no call, out of wrap-up, with a live device),
//! and the session rings them. An engine decision over sessions, like
//! pickup: no session looks at another.

use super::Engine;
use crate::context::Clock;
use crate::router::{Route, route};

impl Engine {
    pub(super) fn dispatch_queues(&mut self, clk: Clock) {
        let directory = &self.directory;
        let location = self.registrar.location();
        let active = &self.active;
        let offers = self.queues.offers(
            clk.now,
            |(tenant, number)| directory.queue(*tenant, number).cloned(),
            |tenant, ext| match route(directory, location, active, clk.now, tenant, ext) {
                Route::Extension { contacts, .. } if active.of(tenant, ext) == 0 => Some(contacts),
                _ => None,
            },
        );
        for (session, agents) in offers {
            self.run(session, clk, |s, cx| s.queue_ring(cx, agents));
        }
        self.drain(clk);
    }
}
