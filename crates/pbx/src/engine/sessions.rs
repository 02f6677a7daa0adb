//! Running sessions: the transaction layer's outputs routed to the
//! sessions owning them, a session run with the services lent, the
//! effects it returned applied (the only place the engine's indexes and
//! output change on a session's behalf), and the session settled: its
//! deadline moved, its held users counted, and dropped once it ended.

use cdr::{SessionId, TenantId};
use sip::transaction::{Output as TxnOutput, TransactionEvent};

use super::{Engine, EngineEvent, Held, Output, Owner};
use crate::call::{Ctx, Effect, Session};
use crate::context::Clock;

impl Engine {
    /// Routes the transaction layer's outputs until none is left: messages
    /// to the runtime, events to the sessions owning the transactions.
    pub(super) fn drain(&mut self, clk: Clock) {
        while let Some((id, out)) = self.sv.txns.poll_output() {
            match out {
                TxnOutput::Transmit { peer, message } => {
                    self.out.push_back(Output::Transmit { peer, message })
                }
                // An ACK that matched an INVITE server transaction in
                // Accepted (a peer reusing the INVITE's branch, RFC 6026):
                // the same ACK as any other for the dialog layer.
                TxnOutput::Event(TransactionEvent::Ack(ack)) => self.on_ack(clk, None, ack),
                TxnOutput::Event(TransactionEvent::Terminated) => {
                    self.acks.remove(&id);
                    if let Some(owner) = self.owners.remove(&id) {
                        if let Some(s) = self.sessions.get_mut(&owner.session) {
                            s.txn_terminated(id);
                        }
                        self.settle(owner.session);
                    }
                }
                TxnOutput::Event(event) => {
                    let Some(owner) = self.owners.get(&id).copied() else {
                        continue;
                    };
                    if self.sessions.contains_key(&owner.session) {
                        self.run(owner.session, clk, |s, cx| {
                            s.on_txn_event(cx, id, owner.role, event)
                        });
                    } else if let TransactionEvent::Final(ok) = event
                        && let Some((peer, ack)) = self.acks.get(&id)
                        && let Some(ack) = ack.again_for(&ok)
                    {
                        // The session is gone; its target's 2xx came again
                        // (the ACK was lost): the same ACK again.
                        self.out.push_back(Output::Transmit {
                            peer: *peer,
                            message: ack,
                        });
                    }
                }
            }
        }
    }

    /// Runs `f` on session `id` (if it still exists) with the services
    /// lent, applies the effects it returned, and settles it.
    pub(super) fn run(
        &mut self,
        id: SessionId,
        clk: Clock,
        f: impl FnOnce(&mut Session, &mut Ctx<'_>),
    ) {
        if let Some(s) = self.sessions.get_mut(&id) {
            let mut cx = Ctx {
                clk,
                sv: &mut self.sv,
                dir: lookup!(self),
                fx: &mut self.effects,
            };
            f(s, &mut cx);
            let tenant = s.tenant_id();
            self.apply(id, tenant);
        }
        self.settle(id);
    }

    /// Applies the effects session `session` left in `self.effects`, in
    /// order: the only place the engine's indexes and output change on a
    /// session's behalf.
    pub(super) fn apply(&mut self, session: SessionId, tenant: TenantId) {
        for effect in self.effects.drain(..) {
            match effect {
                Effect::Transmit { peer, message } => {
                    self.out.push_back(Output::Transmit { peer, message })
                }
                Effect::CallEvent(event) => self.out.push_back(Output::CallEvent {
                    session,
                    tenant,
                    event,
                }),
                Effect::Own { txn, peer, role } => {
                    self.owners.insert(
                        txn,
                        Owner {
                            session,
                            peer,
                            role,
                        },
                    );
                }
                Effect::Index { key, leg } => {
                    self.dialogs.insert(key, (session, leg));
                }
                Effect::GroupAnswered { group, member } => {
                    self.last_answered.record(tenant, group, member)
                }
                Effect::Queue(e) => self.queues.apply(session, tenant, e),
                Effect::Media(command) => self.out.push_back(Output::Media {
                    session,
                    tenant,
                    command,
                }),
                Effect::Notice(notice) => self
                    .out
                    .push_back(Output::Event(EngineEvent::Routing { session, notice })),
                Effect::Internal(detail) => {
                    self.out.push_back(Output::Event(EngineEvent::Internal {
                        session: Some(session),
                        detail,
                    }))
                }
            }
        }
    }

    /// After a session acted: move its deadline in the index, and drop it
    /// once it has ended and nothing of it is left in flight.
    pub(super) fn settle(&mut self, id: SessionId) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        // Owned copies only when what the session holds changed (rare:
        // start, a new stage, the end), not on every message.
        let holds = s.holds();
        let unchanged = match self.held.get(&id) {
            Some([a, b]) => [a.as_deref(), b.as_deref()] == holds,
            None => holds == [None, None],
        };
        let changed = (!unchanged).then(|| holds.map(|h| h.map(str::to_owned)));
        let tenant = s.tenant_id();
        let next = s.next_deadline();
        let finished = s.is_finished();
        if s.is_over()
            && let Some(dropped) = self.queues.session_over(id)
        {
            self.out.push_back(Output::Event(EngineEvent::Routing {
                session: id,
                notice: crate::call::RoutingNotice::CallbackDropped {
                    queue: dropped.queue,
                    number: dropped.number,
                },
            }));
        }
        let trunks = s.trunks_held();
        if let Some(holds) = changed {
            self.count(id, tenant, holds);
        }
        self.count_trunks(id, tenant, trunks);
        let old = self.indexed.get(&id).copied();
        if old != next || finished {
            if let Some(old) = old {
                self.deadlines.remove(&(old, id));
                self.indexed.remove(&id);
            }
            if let (Some(at), false) = (next, finished) {
                self.deadlines.insert((at, id));
                self.indexed.insert(id, at);
            }
        }
        if finished && let Some(s) = self.sessions.remove(&id) {
            for key in s.dialog_keys() {
                self.dialogs.remove(key);
            }
            for (txn, peer, ack) in s.lingering_acks() {
                if self.owners.contains_key(&txn) {
                    self.acks.insert(txn, (peer, ack));
                }
            }
        }
    }

    /// Moves session `id`'s counts in [`ActiveCalls`] to the users it holds
    /// now (`holds`, from [`Session::holds`]).
    pub(super) fn count(&mut self, id: SessionId, tenant: TenantId, holds: Held) {
        if let Some(old) = self.held.remove(&id) {
            for ext in old.iter().flatten() {
                self.active.remove(tenant, ext);
            }
        }
        for ext in holds.iter().flatten() {
            self.active.add(tenant, ext);
        }
        if holds != Held::default() {
            self.held.insert(id, holds);
        }
    }
}
