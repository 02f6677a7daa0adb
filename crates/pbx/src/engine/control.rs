//! Call control from outside SIP (`POST /api/sessions`, `GET
//! /api/sessions`, `POST /api/sessions/{id}/destroy`; SPEC §7): one
//! entry point, [`Engine::control`], that answers at once. The runtime
//! carries the command in and the reply back (the REST handler waits for
//! it); every decision (who may be called, what a destroy does to each
//! leg, what the CDR says) is made here, on the engine's clock, so the
//! virtual-clock tests cover it.
//!
//! # Decisions
//!
//! - **Originating checks what it can before anything is sent**, and a
//!   refusal changes nothing (no INVITE, no CDR): an unknown tenant,
//!   caller or callee, the callee being the caller, a caller with no
//!   registered device or disabled ([`OriginateError::CallerUnavailable`]:
//!   nobody could be rung, so there is no call to record), a caller at
//!   its `max_concurrent_calls`, a node that is stopping or overloaded.
//!   The callee is routed again when the caller answers (it may be busy,
//!   unavailable or forwarded then: that is in the CDR).
//! - **Listing** shows calls in progress (not the ended ones still
//!   absorbing retransmissions) of one tenant, oldest first.
//! - **Destroy** ends a call of the tenant as the PBX itself does at
//!   shutdown: BYE to answered legs, CANCEL to ringing ones; the CDR says
//!   `ended_reason: None` (no party hung up). See `Session::destroy`.

use cdr::{Party, SessionId, TenantId, UnixMillis};

use super::{Engine, Shutdown};
use crate::call::{Ctx, Originate as Start, Session, SessionView, TenantInfo};
use crate::context::Clock;
use crate::router::Route;

/// A call the PBX is asked to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Originate {
    pub tenant: TenantId,
    /// The extension rung first.
    pub caller: String,
    /// The number called, as if the caller dialled it.
    pub callee: String,
    /// Echoed in `call_start` and `call_cdr`.
    pub user_data: String,
    /// The display name the callee is shown (default: the caller's).
    pub caller_id: Option<String>,
}

/// What the runtime asks of the engine outside SIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    Originate(Originate),
    /// The tenant's calls in progress.
    ListSessions {
        tenant: TenantId,
    },
    /// One call in progress of the tenant.
    Session {
        tenant: TenantId,
        id: SessionId,
    },
    /// Hang up every leg of a call of the tenant.
    Destroy {
        tenant: TenantId,
        id: SessionId,
    },
    /// How many callers wait in the tenant's queue `number` (this node).
    QueueWaiting {
        tenant: TenantId,
        number: String,
    },
    /// The callback requests of the tenant's queue `number` (this node):
    /// waiting now, and dropped since start.
    QueueCallbacks {
        tenant: TenantId,
        number: String,
    },
    /// Bindings other nodes sharing the database wrote (issue 15): the
    /// location follows them ([`crate::Location::apply_shared`]).
    SharedBindings(Vec<crate::BindingRecord>),
}

/// The engine's answer to a [`Control`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlReply {
    Originated(Result<SessionId, OriginateError>),
    Sessions(Vec<SessionView>),
    /// `None`: no such call in progress in the tenant.
    Session(Option<SessionView>),
    /// Whether a call in progress of the tenant was found (and ended).
    Destroyed(bool),
    /// Callers waiting in a queue.
    Waiting(usize),
    /// A queue's callback requests waiting, and dropped since start.
    Callbacks {
        waiting: usize,
        dropped: u64,
    },
    /// What the location did with shared bindings.
    SharedBindings(crate::location::SharedReport),
}

/// Why a call was not originated (nothing was sent, nothing recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginateError {
    #[error("no such tenant")]
    UnknownTenant,
    #[error("the caller is not an extension of the tenant")]
    UnknownCaller,
    #[error("the callee is not a number of the tenant")]
    UnknownCallee,
    #[error("the callee is the caller")]
    CalleeIsCaller,
    #[error("the caller has no registered device (or is disabled)")]
    CallerUnavailable,
    #[error("the caller is in as many calls as it may be")]
    CallerBusy,
    #[error("the PBX is not accepting new calls (stopping or overloaded)")]
    NotAccepting,
}

impl Engine {
    /// Runs one call-control command now and answers it. Drain
    /// [`Engine::poll_output`] afterwards, as after an input.
    pub fn control(
        &mut self,
        now: std::time::Instant,
        now_unix_ms: u64,
        command: Control,
    ) -> ControlReply {
        let clk = Clock {
            now,
            unix_ms: now_unix_ms,
        };
        let reply = match command {
            Control::Originate(o) => ControlReply::Originated(self.originate(clk, o)),
            Control::ListSessions { tenant } => {
                let mut views: Vec<SessionView> = self
                    .sessions
                    .values()
                    .filter(|s| s.tenant_id() == tenant)
                    .filter_map(|s| s.view())
                    .collect();
                views.sort_by_key(|v| v.id);
                ControlReply::Sessions(views)
            }
            Control::Session { tenant, id } => ControlReply::Session(
                self.sessions
                    .get(&id)
                    .filter(|s| s.tenant_id() == tenant)
                    .and_then(|s| s.view()),
            ),
            Control::Destroy { tenant, id } => {
                let found = self
                    .sessions
                    .get(&id)
                    .is_some_and(|s| s.tenant_id() == tenant && !s.is_over());
                if found {
                    self.run(id, clk, |s, cx| s.destroy(cx));
                }
                ControlReply::Destroyed(found)
            }
            Control::QueueWaiting { tenant, number } => {
                ControlReply::Waiting(self.queues.waiting(tenant, &number))
            }
            Control::QueueCallbacks { tenant, number } => {
                let (waiting, dropped) = self.queues.callbacks(tenant, &number);
                ControlReply::Callbacks { waiting, dropped }
            }
            Control::SharedBindings(records) => ControlReply::SharedBindings(
                self.registrar
                    .apply_shared(clk.now, clk.unix_ms / 1000, records),
            ),
        };
        self.drain(clk);
        reply
    }

    fn originate(&mut self, clk: Clock, o: Originate) -> Result<SessionId, OriginateError> {
        if self.shutdown != Shutdown::Running || self.overloaded {
            return Err(OriginateError::NotAccepting);
        }
        let tenant = self
            .directory
            .tenant(o.tenant)
            .ok_or(OriginateError::UnknownTenant)?;
        let tenant = TenantInfo {
            id: tenant.id,
            name: tenant.name.clone(),
            domain: tenant.domain.clone(),
        };
        let dir = lookup!(self);
        let (caller, contacts, ring_timeout) = match dir.route(clk.now, tenant.id, &o.caller) {
            // The caller must be a person's extension, not a ring group.
            Route::NotFound
            | Route::Group(_)
            | Route::Ivr(_)
            | Route::Queue(_)
            | Route::AgentCode(_) => {
                return Err(OriginateError::UnknownCaller);
            }
            Route::Unavailable { .. } => return Err(OriginateError::CallerUnavailable),
            Route::Busy { .. } => return Err(OriginateError::CallerBusy),
            Route::Extension {
                extension,
                display_name,
                ring_timeout,
                contacts,
                ..
            } => (
                Party {
                    user: extension,
                    display_name,
                    domain: tenant.domain.clone(),
                },
                contacts,
                ring_timeout,
            ),
        };
        let callee = match self.directory.user(tenant.id, &o.callee) {
            None => return Err(OriginateError::UnknownCallee),
            Some(u) if u.extension.as_str() == caller.user => {
                return Err(OriginateError::CalleeIsCaller);
            }
            Some(u) => Party {
                user: u.extension.to_string(),
                display_name: u.display_name.clone(),
                domain: tenant.domain.clone(),
            },
        };
        let session_id = self.sv.snowflake.next_session(UnixMillis(clk.unix_ms));
        let mut cx = Ctx {
            clk,
            sv: &mut self.sv,
            dir,
            fx: &mut self.effects,
        };
        let session = Session::originate(
            &mut cx,
            Start {
                session_id,
                tenant,
                caller,
                callee,
                contacts,
                ring_timeout,
                user_data: o.user_data,
                caller_id: o.caller_id,
                queue_callback: None,
            },
        );
        self.apply(session_id, session.tenant_id());
        self.sessions.insert(session_id, Box::new(session));
        self.settle(session_id);
        Ok(session_id)
    }
}
