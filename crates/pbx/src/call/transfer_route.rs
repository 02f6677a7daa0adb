//! Where a blind transfer rings C: the destination is routed like any
//! other of the tenant's, so C may be an extension, a ring group, or a
//! number outside that leaves by a trunk.
//!
//! ```text
//!  Refer-To number ─▶ an extension   its devices (normal_call), its ring timeout
//!                  ─▶ a ring group   its members as the group's strategy rings
//!                                    them (ring_group_call), the group's timeout
//!                  ─▶ an outbound    the rule's trunks in order, failover,
//!                     rule           a carrier's challenge answered once,
//!                                    OUTBOUND_RING_TIMEOUT
//!                  ─▶ nothing        404, nothing changes
//! ```
//!
//! # Decisions
//!
//! - **A number outside is the referrer's call out.** The outbound rule is
//!   chosen with the referrer's extension as the rules' "from these
//!   extensions", and the referrer's `outbound_allowed`, caller ID and the
//!   tenant's `max_outbound_calls` apply (as a forward to an external
//!   number applies the forwarding user's). A referrer that is no user of
//!   the tenant (a carrier's party) may not send the call out. A refusal
//!   answers the REFER with the refusal's status and reason (`403
//!   Outbound Calls Not Allowed`, `403 Outbound Call Limit Reached`, `503
//!   No Trunk Available`) and nothing changes.
//! - **Direction does not change** (SPEC §3: decided once at routing). An
//!   internal call (`ext`) transferred out stays `ext`, a call from a
//!   carrier (`in`) transferred out stays `in`; the trunk C is called by
//!   is on C's target (`trunk_name`, `outbound_caller_id`), and becomes
//!   the call's `trunk_name` when the call had none (the CDR's "first
//!   trunk leg").
//! - **One outbound trunk per call**: a call that already leaves by a
//!   trunk (an outbound call, or one forwarded out) is not transferred to
//!   another outside number (`403`): the engine counts one outbound trunk
//!   per session (`TrunkUse`).
//! - **A ring group rings as its strategy says** (`group.rs`), bounded by
//!   the group's `timeout`; members who are already parties of the call
//!   (the referrer, the party staying) are skipped. The group's no-answer
//!   destination does not apply: a group that nobody answers fails the
//!   transfer (NOTIFY `480`, `486` when every member was busy, else the
//!   best failure) and the call is recalled or hung up as for any failed
//!   transfer. `call_update_info` names the member who answered.
//! - C's targets are INVITEd without SDP in every case (late offer, the
//!   join of `transfer.rs`).

use cdr::CallType;

use super::effect::Ctx;
use super::reroute::StageOutcome;
use super::timer::Timer;
use super::transfer::Refusal;
use super::trunk::{OUTBOUND_RING_TIMEOUT, OutboundCall};
use super::{LegRef, Session};
use crate::router::Route;
use crate::routing::OutboundRefusal;

/// Where a transfer's C rings.
#[derive(Debug)]
pub(super) enum Destination {
    /// A number of the tenant, as the router sees it.
    Route(Route),
    /// A number outside, by the outbound rules' trunks.
    Trunk(OutboundCall),
}

impl Destination {
    /// C's display name as `call_update_info` first names it.
    pub(super) fn display_name(&self) -> String {
        match self {
            Destination::Route(
                Route::Extension { display_name, .. }
                | Route::Unavailable { display_name, .. }
                | Route::Busy { display_name, .. },
            ) => display_name.clone(),
            Destination::Route(Route::Group(g)) => g.name.clone(),
            _ => String::new(),
        }
    }
}

impl Session {
    /// Routes a transfer's `number` for the REFER sent on `leg` (see the
    /// module decisions).
    pub(super) fn transfer_destination(
        &self,
        cx: &Ctx<'_>,
        leg: LegRef,
        number: &str,
    ) -> Result<Destination, Refusal> {
        match cx.dir.route(cx.clk.now, self.tenant.id, number) {
            Route::NotFound => {
                let referrer = self.leg_number(leg).filter(|u| {
                    !self.leg_is_carrier(leg) && cx.dir.user_id(self.tenant.id, u).is_some()
                });
                let user = referrer.as_deref();
                let Some(call) = cx.dir.outbound(self.tenant.id, user, user, number) else {
                    return Err(Refusal(404, "Not Found"));
                };
                if self.leaves_by_trunk_already() {
                    return Err(Refusal(403, "Call Already Leaves By A Trunk"));
                }
                if let Some(refusal) = call.refusal {
                    return Err(refused(refusal));
                }
                Ok(Destination::Trunk(call))
            }
            Route::Ivr(_) => Err(Refusal(403, "Transfer To An IVR Not Supported")),
            Route::Queue(_) => Err(Refusal(403, "Transfer To A Queue Not Supported")),
            Route::AgentCode(_) => Err(Refusal(404, "Not Found")),
            route => Ok(Destination::Route(route)),
        }
    }

    /// Whether `leg` is a carrier's party (the caller of a call from a
    /// trunk, or a trunk attempt).
    fn leg_is_carrier(&self, leg: LegRef) -> bool {
        match leg {
            LegRef::Caller => !self.trunk.inbound_name().is_empty(),
            LegRef::Target(i) => self.is_trunk_attempt(i),
        }
    }

    /// Rings C at `destination` (the transfer is recorded): its targets,
    /// and the timer bounding them; none could be rung: the transfer
    /// failed.
    pub(super) fn ring_transfer(&mut self, cx: &mut Ctx<'_>, destination: Destination) {
        match destination {
            Destination::Route(Route::Extension {
                extension,
                ring_timeout,
                contacts,
                ..
            }) => {
                let max_forwards = self.max_forwards();
                for contact in self.reachable(contacts) {
                    self.add_target(
                        cx,
                        &extension,
                        contact,
                        max_forwards,
                        None,
                        CallType::Normal,
                    );
                }
                if self.transfer_targets_open() {
                    self.timers
                        .set(Timer::TransferRing, cx.clk.now + ring_timeout);
                } else {
                    self.transfer_failed(cx, 480);
                }
            }
            Destination::Route(Route::Group(group)) => {
                // The group's timer is the transfer's; `group_over` fails
                // the transfer when nobody answers.
                self.timers
                    .set(Timer::TransferRing, cx.clk.now + group.timeout);
                self.ring_group(cx, group, None);
            }
            Destination::Route(Route::Busy { .. }) => self.transfer_failed(cx, 486),
            Destination::Route(_) => self.transfer_failed(cx, 480),
            Destination::Trunk(call) => {
                if self.ring_trunks(cx, call) {
                    self.timers
                        .set(Timer::TransferRing, cx.clk.now + OUTBOUND_RING_TIMEOUT);
                } else {
                    self.transfer_failed(cx, 480);
                }
            }
        }
    }

    /// Some target of the transfer is still ringing.
    fn transfer_targets_open(&self) -> bool {
        let first = self.xfer.active.as_ref().map_or(0, |t| t.first);
        self.targets[first.min(self.targets.len())..]
            .iter()
            .any(|t| t.state.is_open())
    }

    /// A ring group that a transfer rang is over without an answer: the
    /// transfer failed with the group's outcome.
    pub(super) fn transfer_group_over(&mut self, cx: &mut Ctx<'_>, outcome: StageOutcome) {
        let code = match outcome {
            StageOutcome::NoAnswer => 480,
            StageOutcome::Busy => 486,
            StageOutcome::Unreachable => 480,
            StageOutcome::Failed => {
                let from = self.xfer.active.as_ref().map_or(0, |t| t.first_failure);
                match &self.failures[from.min(self.failures.len())..] {
                    [] => 480,
                    failures => super::fork::best_failure(failures).0,
                }
            }
        };
        self.transfer_failed(cx, code);
    }

    /// `member` of a ring group a transfer rings is already a party of the
    /// call (the referrer, or the party staying): not rung.
    pub(super) fn in_transferred_call(&self, member: &str) -> bool {
        self.xfer.active.as_ref().is_some_and(|t| {
            t.presented.0 == member || self.leg_number(t.referrer).as_deref() == Some(member)
        })
    }
}

/// The REFER's answer for an outbound refusal.
fn refused(refusal: OutboundRefusal) -> Refusal {
    let why = match refusal {
        OutboundRefusal::UserNotAllowed => "Outbound Calls Not Allowed",
        OutboundRefusal::TenantLimit => "Outbound Call Limit Reached",
        OutboundRefusal::NoRule => "No Outbound Route",
        OutboundRefusal::NoTrunk => "No Trunk Available",
    };
    Refusal(refusal.status(), why)
}
