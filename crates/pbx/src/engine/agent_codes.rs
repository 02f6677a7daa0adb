//! The agents' login and logout feature codes (issue 14): an extension
//! dials the tenant's `*45` (log in) or `*46` (log out), alone (every
//! queue it is an agent of) or followed by a queue's number. The engine
//! changes its directory at once (the next dispatch sees it) and emits
//! [`Output::AgentLogin`], which the runtime commits to the store (that
//! bumps the directory version: other nodes load it); the call is
//! answered by the PBX, which plays a short confirmation and hangs up
//! (`call/agent_code.rs`).
//!
//! # Decisions
//!
//! - A code naming no queue the caller is an agent of (or an unknown
//!   queue) changes nothing: the caller hears "invalid" instead of the
//!   confirmation. Logging in twice, or out when logged out, confirms
//!   (the state is what was asked).
//! - Only an extension dialling the code itself does this: a forward or
//!   an IVR choice leading to `*45` is routed as a number (none: 404).

use sip::Message;
use sip::transaction::TransactionId;
use sip::transport::Peer;

use super::auth::Caller;
use super::{Engine, Output};
use crate::call::{AgentCodeCall, Ctx, Session};
use crate::context::Clock;
use crate::router::Route;

/// An agent logged in or out by feature code, for the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentLogin {
    pub tenant: cdr::TenantId,
    pub extension: String,
    /// The queues' numbers whose state changed to `on`.
    pub queues: Vec<String>,
    pub on: bool,
}

impl Engine {
    /// `caller` dialled an agent code (`dialled`): log in (`on`) or out of
    /// `queue` (`None`: every queue it is an agent of), then the call.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn agent_code(
        &mut self,
        clk: Clock,
        peer: Peer,
        id: TransactionId,
        request: Message,
        caller: Caller,
        dialled: String,
        (on, queue): (bool, Option<String>),
    ) {
        let tenant = caller.tenant.id;
        let extension = caller.party.user.clone();
        let queues: Vec<String> = self
            .directory
            .queues_of(tenant)
            .filter(|q| queue.as_deref().is_none_or(|n| q.number.as_str() == n))
            .filter(|q| q.agents.iter().any(|a| a.as_str() == extension))
            .map(|q| q.number.to_string())
            .collect();
        for q in &queues {
            self.directory.set_agent(tenant, q, &extension, on);
        }
        let changed = !queues.is_empty();
        if changed {
            self.out.push_back(Output::AgentLogin(AgentLogin {
                tenant,
                extension,
                queues,
                on,
            }));
        }
        let session_id = self.sv.snowflake.next_session(cdr::UnixMillis(clk.unix_ms));
        let route = Route::AgentCode(Box::new(AgentCodeCall {
            code: dialled.clone(),
            on,
            changed,
        }));
        let dir = lookup!(self);
        let mut cx = Ctx {
            clk,
            sv: &mut self.sv,
            dir,
            fx: &mut self.effects,
        };
        let session = Session::start(
            &mut cx,
            crate::call::Start {
                session_id,
                tenant: caller.tenant,
                caller: caller.party,
                dialled,
                peer,
                invite: request,
                server: id,
                route,
                direction: cdr::Direction::Extension,
                inbound: None,
                outbound: None,
            },
        );
        self.apply(session_id, session.tenant_id());
        self.sessions.insert(session_id, Box::new(session));
        self.settle(session_id);
    }
}
