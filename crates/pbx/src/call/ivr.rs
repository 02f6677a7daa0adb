//! An IVR holding the call (`call/app.rs` answers it): the greeting, the
//! caller's choice, retries, the timeout destination, goodbye.
//!
//! # Decisions
//!
//! - **A menu key is taken as soon as it is pressed** (barge-in: the
//!   prompt stops at the first digit). With dial-by-extension on, digits
//!   that do not start with a menu key are collected as an extension,
//!   ended by `#` or the inter-digit timeout; a number of the tenant
//!   (extension, ring group, IVR) is rung, anything else is an invalid
//!   choice.
//! - **The digit timeout runs from the end of the prompt** (the engine
//!   knows each prompt's duration, so it needs no word from the relay).
//! - **Invalid choice**: the invalid prompt, then the greeting again;
//!   **no choice**: the timeout destination, or the greeting again when
//!   there is none. After `retries` repeats, goodbye and the PBX hangs
//!   up (the IVR target ends `callee_disconnect`). A destination that no
//!   longer exists is an invalid choice.
//! - **Loops are bounded**: one call enters IVRs at most
//!   [`MAX_IVR_ENTRIES`] times (menus leading to menus, timeout
//!   destinations leading back); past that the IVR says goodbye
//!   (`RoutingNotice::TooManyHops`). IVR numbers are not "visited" for
//!   the forwarding loop check, so a forward back to the main menu works.

use cdr::{EndReason, RerouteReason};

use super::Session;
use super::app::{App, AppKind};
use super::effect::{Ctx, Effect};
use super::reroute::{RoutingNotice, Stage, StageOutcome};
use super::timer::Timer;
use crate::apps::{BuiltinPrompt, Ivr, IvrDestination, MAX_IVR_ENTRIES, PromptRef};
use crate::router::Route;

/// Where an IVR is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Playing its prompts, then waiting for the first digit.
    Menu,
    /// Collecting an extension (dial by extension).
    Collecting,
    /// Saying goodbye; the PBX hangs up when it is over.
    Goodbye,
}

/// One IVR's run in a call.
#[derive(Debug)]
pub(super) struct IvrRun {
    ivr: Ivr,
    digits: String,
    tries: u32,
    step: Step,
}

impl Session {
    /// The call reaches IVR `ivr`: answered at once (the caller's 200 if
    /// nobody answered it yet), a target of its own, its greeting.
    pub(super) fn enter_ivr(&mut self, cx: &mut Ctx<'_>, ivr: Ivr, reason: Option<RerouteReason>) {
        let number = ivr.number.to_string();
        self.stage = Stage {
            extension: number.clone(),
            forwarding: Default::default(),
            first_failure: self.failures.len(),
            group: None,
        };
        self.timers.stop_ringing();
        let answer = match self.app_can_answer() {
            Ok(answer) => answer,
            Err(488) => {
                // Its offer has no G.711: the IVR cannot talk to it.
                return self.fail_caller(cx, 488, "Not Acceptable Here", EndReason::NotApplicable);
            }
            // Not relayed: the IVR is out of reach.
            Err(_) => return self.stage_over(cx, StageOutcome::Unreachable),
        };
        self.apps.entries += 1;
        self.visited.retain(|n| *n != number);
        let target = self.app_target(cx, &number, reason);
        self.apps.current = Some(App {
            target,
            number: number.clone(),
            kind: AppKind::Ivr(IvrRun {
                ivr,
                digits: String::new(),
                tries: 0,
                step: Step::Menu,
            }),
        });
        // Open and answered first (SPEC: the IVR answers at once), then
        // the caller's 200.
        if let Some(answer) = answer {
            self.app_answer(cx, answer);
        }
        self.menu(cx, false);
    }

    fn run(&mut self) -> Option<&mut IvrRun> {
        match self.apps.current.as_mut().map(|a| &mut a.kind) {
            Some(AppKind::Ivr(run)) => Some(run),
            _ => None,
        }
    }

    /// Plays the greeting (after the invalid prompt when `invalid`) and
    /// waits for a digit.
    fn menu(&mut self, cx: &mut Ctx<'_>, invalid: bool) {
        let Some(run) = self.run() else { return };
        run.step = Step::Menu;
        run.digits.clear();
        let (greeting, bad, timeout) = (run.ivr.greeting, run.ivr.invalid, run.ivr.digit_timeout);
        let mut prompts = Vec::new();
        let mut length = greeting.duration + timeout;
        if invalid {
            prompts.push(bad.source);
            length += bad.duration;
        }
        prompts.push(greeting.source);
        self.play(cx, prompts, false);
        self.timers.set(Timer::App, cx.clk.now + length);
    }

    /// Goodbye (after the invalid prompt when `invalid`), then the PBX
    /// hangs up.
    fn goodbye(&mut self, cx: &mut Ctx<'_>, invalid: bool) {
        let Some(run) = self.run() else { return };
        run.step = Step::Goodbye;
        let mut prompts = Vec::new();
        let mut length = BuiltinPrompt::Goodbye.duration();
        if invalid {
            prompts.push(run.ivr.invalid.source);
            length += run.ivr.invalid.duration;
        }
        prompts.push(PromptRef::Builtin(BuiltinPrompt::Goodbye));
        self.play(cx, prompts, false);
        self.timers.set(Timer::App, cx.clk.now + length);
    }

    /// An invalid choice (or no choice without a timeout destination):
    /// the menu again, or goodbye after the last retry (the invalid
    /// prompt first, either way).
    fn retry(&mut self, cx: &mut Ctx<'_>, invalid: bool) {
        let Some(run) = self.run() else { return };
        run.tries += 1;
        if run.tries > run.ivr.retries {
            return self.goodbye(cx, invalid);
        }
        self.menu(cx, invalid);
    }

    pub(super) fn ivr_digit(&mut self, cx: &mut Ctx<'_>, digit: char) {
        let Some(run) = self.run() else { return };
        match run.step {
            Step::Goodbye => {}
            Step::Menu => {
                // Barge-in: the prompt stops.
                cx.fx.push(Effect::Media(crate::media::MediaCommand::Quiet));
                if let Some(dest) = run.ivr.menu.get(&digit).cloned() {
                    return self.choose(cx, dest);
                }
                if run.ivr.dial_by_extension && digit.is_ascii_digit() {
                    run.step = Step::Collecting;
                    run.digits.push(digit);
                    let timeout = run.ivr.digit_timeout;
                    self.timers.set(Timer::App, cx.clk.now + timeout);
                    return;
                }
                self.retry(cx, true);
            }
            Step::Collecting => {
                if digit == '#' {
                    let number = std::mem::take(&mut run.digits);
                    return self.dial(cx, number);
                }
                if !digit.is_ascii_digit() || run.digits.len() >= 16 {
                    return self.retry(cx, true);
                }
                run.digits.push(digit);
                let timeout = run.ivr.digit_timeout;
                self.timers.set(Timer::App, cx.clk.now + timeout);
            }
        }
    }

    pub(super) fn ivr_timer(&mut self, cx: &mut Ctx<'_>) {
        let Some(run) = self.run() else { return };
        match run.step {
            Step::Goodbye => self.app_hang_up(cx, EndReason::CalleeDisconnect),
            Step::Collecting => {
                let number = std::mem::take(&mut run.digits);
                self.dial(cx, number);
            }
            Step::Menu => match run.ivr.timeout_destination.clone() {
                Some(dest) => self.choose(cx, dest),
                None => self.retry(cx, false),
            },
        }
    }

    fn choose(&mut self, cx: &mut Ctx<'_>, dest: IvrDestination) {
        match dest {
            IvrDestination::HangUp => self.goodbye(cx, false),
            IvrDestination::Number(number) => self.dial(cx, number),
        }
    }

    /// Hands the call to `number` if it is one of the tenant's.
    fn dial(&mut self, cx: &mut Ctx<'_>, number: String) {
        let own = self.apps.current.as_ref().map(|a| a.number.clone());
        let route = cx.dir.route(cx.clk.now, self.tenant.id, &number);
        if route == Route::NotFound || own.as_deref() == Some(number.as_str()) {
            return self.retry(cx, true);
        }
        if matches!(route, Route::Ivr(_) | Route::Queue(_)) && self.apps.entries >= MAX_IVR_ENTRIES
        {
            cx.fx.push(Effect::Notice(RoutingNotice::TooManyHops {
                hops: self.apps.entries,
            }));
            return self.goodbye(cx, false);
        }
        self.app_hand_off(cx, number, route);
    }
}
