//! The queue dispatcher (`call/queue.rs` has the rules): after every
//! input and timeout the engine offers each queue's waiting callers, the
//! longest waiting first, to the agents free now (logged in, not ringing
//! for another caller, in no call, out of wrap-up, with a live device),
//! and the session rings them; a callback request waiting its turn gets
//! a callback call the engine originates (`call/queue_callback.rs`). An
//! engine decision over sessions, like pickup: no session looks at
//! another.

use cdr::{Party, TenantId, UnixMillis};

use super::{Engine, EngineEvent, Output};
use crate::apps::Queue;
use crate::call::{Ctx, Offer, Originate, RoutingNotice, Session, TenantInfo};
use crate::context::Clock;
use crate::router::{Contact, Route, route};

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
        for offer in offers {
            match offer {
                Offer::Ring(session, agents) => {
                    self.run(session, clk, |s, cx| s.queue_ring(cx, agents))
                }
                Offer::Callback {
                    tenant,
                    queue,
                    request,
                    agent,
                } => self.call_back(clk, tenant, &queue, &request, agent),
            }
        }
        self.drain(clk);
    }

    /// Originates the callback call for `request`: `agent` first, then
    /// the caller (`call/queue_callback.rs`).
    fn call_back(
        &mut self,
        clk: Clock,
        tenant: TenantId,
        queue: &Queue,
        request: &crate::call::Callback,
        (agent, contacts): (String, Vec<Contact>),
    ) {
        let key = (tenant, queue.number.to_string());
        let info = self.directory.tenant(tenant).map(|t| TenantInfo {
            id: t.id,
            name: t.name.clone(),
            domain: t.domain.clone(),
        });
        let user = self
            .directory
            .user(tenant, &agent)
            .map(|u| u.display_name.clone());
        let (Some(info), Some(display_name)) = (info, user) else {
            if let Some(dropped) = self.queues.callback_not_started(&key, request.origin) {
                self.out.push_back(Output::Event(EngineEvent::Routing {
                    session: request.origin,
                    notice: RoutingNotice::CallbackDropped {
                        queue: dropped.queue,
                        number: dropped.number,
                    },
                }));
            }
            return;
        };
        let session_id = self.sv.snowflake.next_session(UnixMillis(clk.unix_ms));
        let domain = info.domain.clone();
        let start = Originate {
            session_id,
            tenant: info,
            caller: Party {
                user: agent.clone(),
                display_name,
                domain: domain.clone(),
            },
            callee: Party {
                user: request.number.clone(),
                display_name: request.display_name.clone(),
                domain,
            },
            contacts,
            ring_timeout: queue.agent_timeout,
            user_data: String::new(),
            caller_id: Some(queue.name.clone()),
            queue_callback: Some(crate::call::CallbackLeg {
                external: request.external,
                wrap_up: queue.wrap_up,
            }),
        };
        let dir = lookup!(self);
        let mut cx = Ctx {
            clk,
            sv: &mut self.sv,
            dir,
            fx: &mut self.effects,
        };
        let session = Session::originate(&mut cx, start);
        self.queues
            .callback_started(&key, request.origin, session_id, &agent);
        self.apply(session_id, session.tenant_id());
        self.sessions.insert(session_id, Box::new(session));
        self.settle(session_id);
    }
}
