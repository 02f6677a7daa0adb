//! Ring groups (SPEC §3, "ring group"): a number of the tenant that rings
//! some of its users, as one stage of the session (see `reroute.rs`).
//!
//! The group itself is never a target: each device of each member rung is
//! one, with `call_type: ring_group_call` and the member's number as its
//! `callee`; the call's `callee` stays the group's number when the group
//! was dialled (SPEC §2: the first destination inside the PBX).
//!
//! ```text
//!   group stage starts ── GroupTimeout set (the group's `timeout`)
//!     ring_all:    every member's devices at once
//!     hunt:        member 1 ─(member_timeout or all its devices failed)─▶ member 2 ─▶ …
//!     round_robin: as hunt, starting after the member who answered last
//!   a device answers ─▶ bridged as usual; the group remembers the member
//!   GroupTimeout, or no member left ─▶ the no-answer destination, or 480
//! ```
//!
//! # Decisions
//!
//! - **A member is skipped** (not rung, no target) when it is at its
//!   `max_concurrent_calls`, disabled, has no live binding, or no INVITE
//!   could be sent to any of its devices; and when it is the caller (a
//!   member calling its own group does not ring itself).
//! - **The group's timers replace the members' ring timeouts**: a member
//!   rings for `member_timeout` (hunt, round robin) or until the group's
//!   `timeout` (ring all), whatever its own ring timeout.
//! - **Members' forwarding rules do not apply inside a group.** The group
//!   is the routing decision: a member's "always" or "no answer" rule
//!   would move the whole call away from the group (and its other
//!   members) on one member's behalf. A member who does not answer is the
//!   group's next step; the group's own no-answer destination is where an
//!   unanswered call goes.
//! - **Hunt and round robin go through the members once.** The group ends
//!   when its `timeout` passes or when no member is left, whichever comes
//!   first; a member rings for `member_timeout` (or until every device of
//!   it failed).
//! - **The no-answer destination takes every unanswered end** (the group
//!   timeout, the members exhausted, every member busy or unreachable) as
//!   a new stage; its targets' `reroute_reason` says why:
//!   `FORWARDING_NO_ANSWER` when some member rang out or the group timed
//!   out, `FORWARDING_BUSY` when every member was busy (at its limit or
//!   refusing with 486/600/603), `FORWARDING_NOT_REACHABLE` when none could
//!   be reached. Without a destination the caller hears `480` when the
//!   group rang out, `486` when every member was busy, else the best
//!   failure of the members' devices (`480` if none was rung).
//! - **Round robin's memory is the engine's, in memory** (per node, per
//!   group: the last member who answered, [`LastAnswered`]). It is lost on
//!   restart and not shared between nodes; the order then starts at the
//!   first member again, which is harmless for spreading calls.
//! - **A member's 3xx is not followed**: it would move the call out of
//!   the group on one member's behalf; it is that device's failure.
//! - **Call counting** ([`crate::router::ActiveCalls`]): while a hunt or
//!   round-robin member rings, the call counts against that member; a
//!   ring-all group's members count once one answered (a session holds at
//!   most two users: the caller and one callee).

use std::collections::HashMap;
use std::time::Instant;

use cdr::{CallType, NoAnswerCause, RerouteReason, TenantId};

use super::effect::{Ctx, Effect};
use super::reroute::StageOutcome;
use super::timer::Timer;
use super::{Phase, Session};
use crate::directory::{RingGroup, RingStrategy};
use crate::router::Route;

/// The member of each ring group who answered its last answered call, per
/// tenant: what round robin starts after. Kept by the engine (a session
/// reports answers with [`Effect::GroupAnswered`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct LastAnswered {
    by_group: HashMap<(TenantId, String), String>,
}

impl LastAnswered {
    pub(crate) fn get(&self, tenant: TenantId, group: &str) -> Option<&str> {
        self.by_group
            .get(&(tenant, group.to_owned()))
            .map(String::as_str)
    }

    pub(crate) fn record(&mut self, tenant: TenantId, group: String, member: String) {
        self.by_group.insert((tenant, group), member);
    }
}

/// A ring group ringing now: the group part of a session's stage.
#[derive(Clone, Debug)]
pub(super) struct GroupRing {
    number: String,
    strategy: RingStrategy,
    /// The members in the order this call rings them.
    order: Vec<String>,
    /// The next member of `order` to ring.
    next: usize,
    member_timeout: std::time::Duration,
    no_answer: Option<String>,
    /// The `reroute_reason` that moved the call into the group, on every
    /// member's targets.
    reason: Option<RerouteReason>,
    /// The member ringing now (hunt, round robin).
    current: Option<String>,
    /// Target index → member, for every target the group added.
    rung: Vec<(usize, String)>,
    /// The member who answered.
    answered: Option<String>,
    /// When the current step ends (hunt, round robin).
    step_until: Option<Instant>,
    /// Some member rang out (its step ended with nobody answering).
    rang_out: bool,
    /// The members skipped, as the failure each stands for (486 at its
    /// call limit, 480 unreachable).
    skipped: Vec<u16>,
}

impl GroupRing {
    /// The member the call counts against now (see the module decisions).
    pub(super) fn holding(&self) -> Option<&str> {
        match (&self.answered, self.strategy) {
            (Some(m), _) => Some(m),
            (None, RingStrategy::RingAll) => None,
            (None, _) => self.current.as_deref(),
        }
    }
}

/// The order `group`'s members ring in for a call, given the member who
/// answered its last call.
fn ring_order(group: &RingGroup, last: Option<&str>) -> Vec<String> {
    let mut order: Vec<String> = group.members.iter().map(|m| m.to_string()).collect();
    if group.strategy == RingStrategy::RoundRobin
        && let Some(i) = last.and_then(|l| order.iter().position(|m| m == l))
    {
        order.rotate_left(i + 1);
    }
    order
}

impl Session {
    /// Starts ringing `group` (the stage the call is in now), its member
    /// targets carrying `reason`.
    pub(super) fn ring_group(
        &mut self,
        cx: &mut Ctx<'_>,
        group: RingGroup,
        reason: Option<RerouteReason>,
    ) {
        let last = cx
            .dir
            .last_answered
            .get(self.tenant.id, group.number.as_str());
        let order = ring_order(&group, last);
        self.stage = super::reroute::Stage {
            extension: group.number.to_string(),
            forwarding: Default::default(),
            first_failure: self.failures.len(),
            group: Some(Box::new(GroupRing {
                number: group.number.to_string(),
                strategy: group.strategy,
                order,
                next: 0,
                member_timeout: group.member_timeout,
                no_answer: group.no_answer.clone(),
                reason,
                current: None,
                rung: Vec::new(),
                answered: None,
                step_until: None,
                rang_out: false,
                skipped: Vec::new(),
            })),
        };
        if !self.transfer_rings() {
            // A transfer's ring timer bounds the group (`transfer_route.rs`).
            self.timers
                .set(Timer::GroupTimeout, cx.clk.now + group.timeout);
        }
        self.ring_next_member(cx);
    }

    /// Rings the next member(s) that can be rung: every member for
    /// ring all, the next one for hunt and round robin. With none left,
    /// the group is over.
    fn ring_next_member(&mut self, cx: &mut Ctx<'_>) {
        self.timers.stop(Timer::GroupStep);
        let Some(g) = self.stage.group.as_mut() else {
            return;
        };
        g.current = None;
        g.step_until = None;
        let all = g.strategy == RingStrategy::RingAll;
        let mut any = false;
        while let Some(member) = self.next_member() {
            if member == self.caller_party.user || self.in_transferred_call(&member) {
                continue;
            }
            let route = cx.dir.route(cx.clk.now, self.tenant.id, &member);
            let rung = match route {
                Route::Extension { contacts, .. } => {
                    let first = self.targets.len();
                    let max_forwards = self.max_forwards();
                    let reason = self.stage.group.as_ref().and_then(|g| g.reason);
                    for contact in self.reachable(contacts) {
                        self.add_target(
                            cx,
                            &member,
                            contact,
                            max_forwards,
                            reason,
                            CallType::RingGroup,
                        );
                    }
                    let opened: Vec<usize> = (first..self.targets.len())
                        .filter(|&i| self.targets[i].state.is_open())
                        .collect();
                    let g = self.stage.group.as_mut().expect("a group stage");
                    g.rung.extend(opened.iter().map(|&i| (i, member.clone())));
                    if opened.is_empty() {
                        // Not one INVITE could be sent.
                        g.skipped.push(480);
                    }
                    !opened.is_empty()
                }
                Route::Busy { .. } => {
                    self.skip(486);
                    false
                }
                _ => {
                    self.skip(480);
                    false
                }
            };
            if rung {
                any = true;
                if !all {
                    let g = self.stage.group.as_mut().expect("a group stage");
                    let until = cx.clk.now + g.member_timeout;
                    g.current = Some(member);
                    g.step_until = Some(until);
                    self.timers.set(Timer::GroupStep, until);
                    return;
                }
            }
        }
        if !any {
            self.group_over(cx);
        }
    }

    fn next_member(&mut self) -> Option<String> {
        let g = self.stage.group.as_mut()?;
        let member = g.order.get(g.next)?.clone();
        g.next += 1;
        Some(member)
    }

    fn skip(&mut self, code: u16) {
        if let Some(g) = self.stage.group.as_mut() {
            g.skipped.push(code);
        }
    }

    /// Every device rung in the current step failed: the next member
    /// (none left for ring all: the group is over).
    pub(super) fn group_step_failed(&mut self, cx: &mut Ctx<'_>) {
        self.ring_next_member(cx);
    }

    /// [`Timer::GroupStep`] (due `at`): the member ringing now rang out.
    pub(super) fn group_step_timed_out(&mut self, cx: &mut Ctx<'_>, at: Instant) {
        if (self.phase != Phase::Ringing && !self.transfer_rings())
            || self.stage.group.as_ref().and_then(|g| g.step_until) != Some(at)
        {
            // A step of a group the call already left.
            return;
        }
        self.stop_all(cx, NoAnswerCause::RingTimeout);
        if let Some(g) = self.stage.group.as_mut() {
            g.rang_out = true;
        }
        self.ring_next_member(cx);
    }

    /// [`Timer::GroupTimeout`]: the group rang out.
    pub(super) fn group_timed_out(&mut self, cx: &mut Ctx<'_>) {
        if self.phase != Phase::Ringing {
            return;
        }
        let Some(g) = self.stage.group.as_mut() else {
            return;
        };
        g.rang_out = true;
        self.stop_all(cx, NoAnswerCause::RingTimeout);
        self.group_over(cx);
    }

    /// Target `i` won the race: if a group rang it, the group remembers the
    /// member (this call's holds, and round robin's next start).
    pub(super) fn group_member_answered(&mut self, cx: &mut Ctx<'_>, i: usize) {
        let Some(g) = self.stage.group.as_mut() else {
            return;
        };
        let Some((_, member)) = g.rung.iter().find(|(t, _)| *t == i) else {
            return;
        };
        g.answered = Some(member.clone());
        cx.fx.push(Effect::GroupAnswered {
            group: g.number.clone(),
            member: member.clone(),
        });
    }

    /// Nobody in the group answered: the no-answer destination, or the
    /// caller hears why (see the module decisions).
    fn group_over(&mut self, cx: &mut Ctx<'_>) {
        self.timers.stop(Timer::GroupStep);
        self.timers.stop(Timer::GroupTimeout);
        let Some(g) = self.stage.group.take() else {
            return;
        };
        let failed = self.failures[self.stage.first_failure..]
            .iter()
            .map(|(c, _)| *c);
        let outcome = if g.rang_out {
            StageOutcome::NoAnswer
        } else {
            StageOutcome::of_failures(failed.chain(g.skipped.iter().copied()))
        };
        if self.transfer_rings() {
            return self.transfer_group_over(cx, outcome);
        }
        if let Some(destination) = g.no_answer {
            let reason = match outcome {
                StageOutcome::Busy => RerouteReason::ForwardingBusy,
                StageOutcome::Unreachable => RerouteReason::ForwardingNotReachable,
                StageOutcome::NoAnswer | StageOutcome::Failed => RerouteReason::ForwardingNoAnswer,
            };
            return self.forward(cx, reason, &destination);
        }
        match outcome {
            StageOutcome::NoAnswer => self.fail_caller(
                cx,
                480,
                "Temporarily Unavailable",
                cdr::EndReason::NotApplicable,
            ),
            other => self.refuse(cx, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::directory::Extension;

    fn group(strategy: RingStrategy) -> RingGroup {
        RingGroup {
            tenant_id: TenantId::from(cdr::Id::from_u64(1)),
            number: "600".into(),
            name: "Sales".into(),
            strategy,
            members: ["101", "102", "103"].map(Extension::from).to_vec(),
            member_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            no_answer: None,
        }
    }

    #[test]
    fn round_robin_starts_after_the_last_answerer() {
        let rr = group(RingStrategy::RoundRobin);
        assert_eq!(ring_order(&rr, None), ["101", "102", "103"]);
        assert_eq!(ring_order(&rr, Some("101")), ["102", "103", "101"]);
        assert_eq!(ring_order(&rr, Some("103")), ["101", "102", "103"]);
        // A member who left the group: from the first again.
        assert_eq!(ring_order(&rr, Some("109")), ["101", "102", "103"]);
        // Hunt always starts at the first member.
        let hunt = group(RingStrategy::Hunt);
        assert_eq!(ring_order(&hunt, Some("101")), ["101", "102", "103"]);
    }

    #[test]
    fn the_call_counts_against_the_member_it_rings_or_the_one_who_answered() {
        let mut g = GroupRing {
            number: "600".into(),
            strategy: RingStrategy::Hunt,
            order: vec![],
            next: 0,
            member_timeout: Duration::from_secs(10),
            no_answer: None,
            reason: None,
            current: Some("102".into()),
            rung: vec![],
            answered: None,
            step_until: None,
            rang_out: false,
            skipped: vec![],
        };
        assert_eq!(g.holding(), Some("102"));
        g.strategy = RingStrategy::RingAll;
        assert_eq!(g.holding(), None);
        g.answered = Some("103".into());
        assert_eq!(g.holding(), Some("103"));
    }
}
