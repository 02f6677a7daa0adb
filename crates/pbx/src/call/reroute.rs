//! Moving a call on to another destination: a user's forwarding rules
//! (always, busy, no answer, unavailable; SPEC §3), followed redirects
//! (a target's 3xx) and ring groups (a stage of their own, see
//! `group.rs`).
//!
//! A session rings one *stage* at a time: the devices of one destination,
//! started together. When the stage is over without an answer (every
//! device refused, the ring timeout passed, nothing could be reached), the
//! destination's forwarding rule for that outcome, if it has one, starts
//! the next stage: new targets of the same session, each with the
//! `reroute_reason` that moved the call there, and a `call_update_info`
//! naming the new callee. Without a rule the caller hears the outcome
//! (the stage's best failure, `408`, `480`).
//!
//! # Decisions
//!
//! - **Busy** is every device of the stage refusing with 486, 600 or 603,
//!   or the destination being at its `max_concurrent_calls` (its devices
//!   are not rung; without a busy rule the caller hears `486`);
//!   **unavailable** is no live binding, or every device failing with 408,
//!   480, 503 or a transport error (which the fork counts as 503). A stage
//!   with mixed failures (one busy, one unreachable) is neither: the caller
//!   hears the best failure, as without forwarding.
//! - **Always** skips the user's devices: no target is created for it; the
//!   CDR's `callee` is still the number dialled (SPEC §2: the first
//!   destination inside the PBX).
//! - **Destinations** are an extension of the tenant, or a `sip:` URI in
//!   the tenant's domain (its user part is the extension). Anything else
//!   is an external number: it leaves by the tenant's outbound rules
//!   (`trunk.rs`; the forwarding user's outbound permission applies), and
//!   with no rule for it the call ends `404` and the engine reports why
//!   (`RoutingNotice`).
//! - **Loops and chains.** A call moves at most [`MAX_HOPS`] times, and
//!   never back to a destination it already rang: either ends the call
//!   with `482 Loop Detected` (and its CDR), the status RFC 3261 §16.3
//!   gives a request that loops.
//! - **Redirects** (a target answering 3xx) are followed to the first
//!   Contact when it is a `sip:` URI in the tenant's domain whose user part
//!   is a number of the tenant, at most [`MAX_REDIRECTS`] times per call,
//!   and only when the redirecting target was the last one racing (a 3xx
//!   from one device while another still rings is a failure of that
//!   device, as before: the caller cannot be in two stages at once). The
//!   target ends `redirected` (`TargetEnded`), `call_update_info` names the
//!   new callee, and the new destination is a stage like a forward's, its
//!   targets with `reroute_reason: REDIRECT`. A redirect that is not
//!   followed (outside the tenant, unknown number, a number the call
//!   already rang, too many) is the target's failure with its 3xx code,
//!   reported as a [`RoutingNotice`]; the caller then hears `480` (3xx are
//!   not relayed, see `fork.rs`), or the stage's forwarding applies.

use cdr::{CallEventKind, CallType, EndReason, NoAnswerCause, Party, RerouteReason, TargetEnd};

use super::Session;
use super::effect::{Ctx, Effect};
use crate::directory::{ForwardCondition, Forwarding};
use crate::router::{Contact, Route};

/// How many times one call may be moved on (forwarding chains, redirects).
pub const MAX_HOPS: usize = 5;

/// How many 3xx one call follows.
pub const MAX_REDIRECTS: usize = 3;

/// Why the engine did not move a call where a rule said (reported, not an
/// error of the PBX).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoutingNotice {
    #[error("forward of {from} to {destination:?}: no outbound rule takes it: 404")]
    ExternalWithoutTrunk { from: String, destination: String },
    /// An outbound call refused before any trunk was tried (`trunk.rs`).
    #[error("outbound call to {number:?} refused: {refusal}")]
    OutboundRefused {
        number: String,
        refusal: crate::routing::OutboundRefusal,
    },
    /// A trunk of an outbound rule skipped: where its INVITEs go is not
    /// known (its host did not resolve).
    #[error("trunk {trunk:?} skipped: its address is not resolved")]
    TrunkUnresolved { trunk: String },
    #[error("forward of {from} to {destination:?} would loop: 482")]
    Loop { from: String, destination: String },
    /// A queue's callback request given up: its callback calls did not
    /// connect (`queue_callback.rs`).
    #[error("queue {queue}: callback to {number:?} dropped, its attempts used up")]
    CallbackDropped { queue: String, number: String },
    #[error("call moved {hops} times, the most allowed: 482")]
    TooManyHops { hops: usize },
    #[error("redirect of {from} to {contact:?} not followed: {why}")]
    RedirectNotFollowed {
        from: String,
        contact: String,
        why: NotFollowed,
    },
}

/// Why a 3xx was not followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotFollowed {
    #[error("no usable Contact")]
    NoContact,
    #[error("not a number of the tenant (needs a trunk)")]
    OutsideTenant,
    #[error("the call already rang that number (a loop)")]
    Loop,
    #[error("{MAX_REDIRECTS} redirects already followed")]
    TooMany,
    #[error("other devices of the destination are still ringing")]
    OthersRinging,
    #[error("a ring group member's redirect would take the call out of the group")]
    RingGroupMember,
}

/// The destination whose devices are ringing now.
#[derive(Clone, Debug, Default)]
pub(super) struct Stage {
    /// Its number (what forwarding rules were set on).
    pub extension: String,
    pub forwarding: Forwarding,
    /// Index of its first failure in `Session::failures`.
    pub first_failure: usize,
    /// Set when the destination is a ring group.
    /// Boxed: only ring groups have one (issue 18: memory per live call).
    pub group: Option<Box<super::group::GroupRing>>,
}

/// What ended a stage without an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StageOutcome {
    Busy,
    NoAnswer,
    Unreachable,
    /// Mixed failures: no forwarding rule applies.
    Failed,
}

impl StageOutcome {
    pub(super) fn condition(self) -> Option<(ForwardCondition, RerouteReason)> {
        match self {
            StageOutcome::Busy => Some((ForwardCondition::Busy, RerouteReason::ForwardingBusy)),
            StageOutcome::NoAnswer => Some((
                ForwardCondition::NoAnswer,
                RerouteReason::ForwardingNoAnswer,
            )),
            StageOutcome::Unreachable => Some((
                ForwardCondition::Unavailable,
                RerouteReason::ForwardingNotReachable,
            )),
            StageOutcome::Failed => None,
        }
    }

    /// The outcome of a stage whose devices all failed with `codes`.
    pub(super) fn of_failures(codes: impl Iterator<Item = u16>) -> StageOutcome {
        let (mut busy, mut unreachable, mut any) = (true, true, false);
        for code in codes {
            any = true;
            busy &= matches!(code, 486 | 600 | 603);
            unreachable &= matches!(code, 408 | 480 | 503);
        }
        match (any, busy, unreachable) {
            (false, _, _) => StageOutcome::Unreachable,
            (true, true, _) => StageOutcome::Busy,
            (true, _, true) => StageOutcome::Unreachable,
            _ => StageOutcome::Failed,
        }
    }
}

impl Session {
    /// Rings (or forwards) what `route` names: the first stage of the call,
    /// or the next one with `reason` on its targets.
    pub(super) fn ring_route(
        &mut self,
        cx: &mut Ctx<'_>,
        route: Route,
        reason: Option<RerouteReason>,
    ) {
        match route {
            Route::NotFound => self.fail_caller(cx, 404, "Not Found", EndReason::NotApplicable),
            Route::Group(group) => self.ring_group(cx, group, reason),
            Route::Ivr(ivr) => self.enter_ivr(cx, *ivr, reason),
            Route::Queue(queue) => self.enter_queue(cx, *queue, reason),
            Route::AgentCode(call) => self.answer_agent_code(cx, *call),
            Route::Unavailable {
                extension,
                forwarding,
                ..
            } => self.not_rung(cx, extension, forwarding, StageOutcome::Unreachable),
            Route::Busy {
                extension,
                forwarding,
                ..
            } => self.not_rung(cx, extension, forwarding, StageOutcome::Busy),
            Route::Extension {
                extension,
                ring_timeout,
                contacts,
                forwarding,
                ..
            } => {
                let always = forwarding.to(ForwardCondition::Always).map(str::to_owned);
                self.stage = Stage {
                    extension: extension.clone(),
                    forwarding,
                    first_failure: self.failures.len(),
                    group: None,
                };
                if let Some(destination) = always {
                    return self.forward(cx, RerouteReason::ForwardingUnconditional, &destination);
                }
                self.ring_contacts(cx, &extension, contacts, reason);
                if !self.targets.iter().any(|t| t.state.is_open()) {
                    // Not one INVITE could be sent.
                    self.stage_over(cx, StageOutcome::Unreachable);
                } else {
                    self.timers
                        .set(super::Timer::RingTimeout, cx.clk.now + ring_timeout);
                }
            }
        }
    }

    /// A destination whose devices are not rung (`outcome` says why): its
    /// stage is over at once.
    fn not_rung(
        &mut self,
        cx: &mut Ctx<'_>,
        extension: String,
        forwarding: Forwarding,
        outcome: StageOutcome,
    ) {
        self.stage = Stage {
            extension,
            forwarding,
            first_failure: self.failures.len(),
            group: None,
        };
        self.stage_over(cx, outcome);
    }

    fn ring_contacts(
        &mut self,
        cx: &mut Ctx<'_>,
        extension: &str,
        contacts: Vec<Contact>,
        reason: Option<RerouteReason>,
    ) {
        let max_forwards = self.max_forwards();
        for contact in self.reachable(contacts) {
            self.add_target(
                cx,
                extension,
                contact,
                max_forwards,
                reason,
                CallType::Normal,
            );
        }
    }

    /// The contacts this call may ring: all of them, unless the caller asked
    /// for `sips:` (RFC 3261 §26.2.2: TLS on every hop), when only devices
    /// bound over TLS (or registered with a `sips:` Contact) are. None
    /// left is the stage unreachable, as with no binding at all.
    pub(super) fn reachable(&self, contacts: Vec<Contact>) -> Vec<Contact> {
        if !self.caller_wants_sips() {
            return contacts;
        }
        contacts
            .into_iter()
            .filter(|c| {
                c.peer.transport == sip::transport::Transport::Tls
                    || c.uri
                        .get(..5)
                        .is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
            })
            .collect()
    }

    /// The caller's INVITE named a `sips:` Request-URI.
    fn caller_wants_sips(&self) -> bool {
        self.caller.as_ref().is_some_and(|c| {
            c.invite
                .request_uri_str()
                .and_then(|u| u.get(..5))
                .is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
        })
    }

    /// The stage ended without an answer: forward if its destination says
    /// so, else give the caller the outcome.
    pub(super) fn stage_over(&mut self, cx: &mut Ctx<'_>, outcome: StageOutcome) {
        if self.queue_round_over(cx) {
            // A queue's agents did not answer: the caller waits on.
            return;
        }
        if self.stage.group.is_some() {
            // One member's devices failed: the group decides what is next.
            return self.group_step_failed(cx);
        }
        if let Some((condition, reason)) = outcome.condition()
            && let Some(destination) = self.stage.forwarding.to(condition).map(str::to_owned)
        {
            return self.forward(cx, reason, &destination);
        }
        self.refuse(cx, outcome);
    }

    /// The caller hears the outcome of a stage nothing moves on.
    pub(super) fn refuse(&mut self, cx: &mut Ctx<'_>, outcome: StageOutcome) {
        match outcome {
            StageOutcome::NoAnswer => {
                self.fail_caller(cx, 408, "Request Timeout", EndReason::NotApplicable)
            }
            StageOutcome::Unreachable if self.failures.len() == self.stage.first_failure => {
                self.fail_caller(cx, 480, "Temporarily Unavailable", EndReason::NotApplicable)
            }
            // At its call limit: nothing was rung.
            StageOutcome::Busy if self.failures.len() == self.stage.first_failure => {
                self.fail_caller(cx, 486, "Busy Here", EndReason::NotApplicable)
            }
            _ => {
                let (code, reason) =
                    super::fork::best_failure(&self.failures[self.stage.first_failure..]);
                self.fail_caller(cx, code, &reason, EndReason::NotApplicable)
            }
        }
    }

    /// Moves the call to `destination` because of `reason`.
    pub(super) fn forward(&mut self, cx: &mut Ctx<'_>, reason: RerouteReason, destination: &str) {
        let from = self.stage.extension.clone();
        self.hops += 1;
        if self.hops > MAX_HOPS {
            cx.fx.push(Effect::Notice(RoutingNotice::TooManyHops {
                hops: self.hops,
            }));
            return self.fail_caller(cx, 482, "Loop Detected", EndReason::NotApplicable);
        }
        let Some(number) = self.internal_number(destination) else {
            return self.forward_external(cx, reason, from, destination);
        };
        if self.visited.contains(&number) {
            cx.fx.push(Effect::Notice(RoutingNotice::Loop {
                from,
                destination: destination.to_owned(),
            }));
            return self.fail_caller(cx, 482, "Loop Detected", EndReason::NotApplicable);
        }
        let route = cx.dir.route(cx.clk.now, self.tenant.id, &number);
        if route == Route::NotFound {
            return self.forward_external(cx, reason, from, destination);
        }
        self.move_to(cx, (number, route), reason);
    }

    /// Target `i` answered 3xx (first Contact `contact`): follow it
    /// (true: the target ended `redirected` and the new destination rings)
    /// or report why not (false: the caller treats it as a failure).
    pub(super) fn follow_redirect(
        &mut self,
        cx: &mut Ctx<'_>,
        i: usize,
        contact: Option<String>,
    ) -> bool {
        let from = self.stage.extension.clone();
        let contact_text = contact.clone().unwrap_or_default();
        let why = match self.redirect_to(cx, i, contact) {
            Ok(route) => {
                let target = self.targets[i].id;
                cx.emit(CallEventKind::TargetEnded(TargetEnd {
                    target,
                    reason: EndReason::Redirected,
                    cost: None,
                    quality: None,
                }));
                self.redirects += 1;
                self.hops += 1;
                self.move_to(cx, route, RerouteReason::Redirect);
                return true;
            }
            Err(why) => why,
        };
        cx.fx
            .push(Effect::Notice(RoutingNotice::RedirectNotFollowed {
                from,
                contact: contact_text,
                why,
            }));
        false
    }

    /// Where a 3xx from target `i` to `contact` leads, if it is followed.
    fn redirect_to(
        &self,
        cx: &Ctx<'_>,
        i: usize,
        contact: Option<String>,
    ) -> Result<(String, Route), NotFollowed> {
        let others = self
            .targets
            .iter()
            .enumerate()
            .any(|(j, t)| j != i && t.state.is_open());
        if others {
            return Err(NotFollowed::OthersRinging);
        }
        if self.stage.group.is_some() {
            return Err(NotFollowed::RingGroupMember);
        }
        if self.redirects >= MAX_REDIRECTS || self.hops >= MAX_HOPS {
            return Err(NotFollowed::TooMany);
        }
        let contact = contact.ok_or(NotFollowed::NoContact)?;
        if !contact.starts_with("sip:") {
            return Err(NotFollowed::OutsideTenant);
        }
        let number = self
            .internal_number(&contact)
            .ok_or(NotFollowed::OutsideTenant)?;
        if self.visited.contains(&number) {
            return Err(NotFollowed::Loop);
        }
        match cx.dir.route(cx.clk.now, self.tenant.id, &number) {
            Route::NotFound => Err(NotFollowed::OutsideTenant),
            route => Ok((number, route)),
        }
    }

    /// The call moves to `number` (routed as `route`) because of `reason`:
    /// `call_update_info` names the new callee, then its stage starts.
    pub(super) fn move_to(
        &mut self,
        cx: &mut Ctx<'_>,
        (number, route): (String, Route),
        reason: RerouteReason,
    ) {
        let display_name = match &route {
            Route::Extension { display_name, .. }
            | Route::Unavailable { display_name, .. }
            | Route::Busy { display_name, .. } => display_name.clone(),
            Route::Group(group) => group.name.clone(),
            Route::Ivr(ivr) => ivr.name.clone(),
            Route::Queue(queue) => queue.name.clone(),
            Route::NotFound | Route::AgentCode(_) => String::new(),
        };
        // The stage left behind stops timing.
        self.timers.stop_ringing();
        self.visited.push(number.clone());
        cx.emit(CallEventKind::IdentityChanged {
            caller: None,
            callee: Some(Party {
                user: number,
                display_name,
                domain: self.tenant.domain.clone(),
            }),
        });
        self.ring_route(cx, route, Some(reason));
    }

    /// The extension a forwarding destination names inside the tenant, or
    /// `None` for an external number.
    fn internal_number(&self, destination: &str) -> Option<String> {
        internal_number(&self.tenant.domain, destination)
    }

    /// The ring timeout passed: every open target stops ringing.
    pub(super) fn ring_timed_out(&mut self, cx: &mut Ctx<'_>) {
        self.stop_all(cx, NoAnswerCause::RingTimeout);
        self.stage_over(cx, StageOutcome::NoAnswer);
    }
}

/// The number a forwarding destination names inside the tenant of
/// `domain` (a plain number, or a `sip:` URI in that domain), or `None`
/// for a URI elsewhere.
pub(super) fn internal_number(domain: &str, destination: &str) -> Option<String> {
    let number = match destination.strip_prefix("sip:") {
        Some(uri) => {
            let (user, host) = uri.split_once('@')?;
            let host = host.split([';', '?', ':']).next().unwrap_or(host);
            if !host.eq_ignore_ascii_case(domain) {
                return None;
            }
            user
        }
        None => destination,
    };
    (!number.is_empty()).then(|| number.to_owned())
}

#[cfg(test)]
mod tests {
    use super::StageOutcome::{self, *};

    fn of(codes: &[u16]) -> StageOutcome {
        StageOutcome::of_failures(codes.iter().copied())
    }

    #[test]
    fn outcomes_of_failed_stages() {
        assert_eq!(of(&[486]), Busy);
        assert_eq!(of(&[486, 603, 600]), Busy);
        assert_eq!(of(&[408, 503]), Unreachable);
        assert_eq!(of(&[480]), Unreachable);
        assert_eq!(of(&[]), Unreachable);
        assert_eq!(of(&[486, 480]), Failed);
        assert_eq!(of(&[404]), Failed);
    }
}
