//! What the PBX answers itself (issue 14): IVRs (auto attendants) as the
//! engine reads them, and the prompts it plays.
//!
//! An IVR is a number in the tenant's extension space (users, ring groups
//! and IVRs share it). The call engine answers it at once with the relay's
//! SDP (`call/app.rs`), plays its greeting, collects the caller's digits
//! (RFC 4733 from the relay, or SIP INFO) and hands the call on
//! (`call/ivr.rs`). The runtime fills the IVRs from the store like ring
//! groups, and turns each [`PromptRef`] into audio (`tally/src/media/`).

use std::collections::BTreeMap;
use std::time::Duration;

use cdr::{Id, TenantId};

use crate::directory::Extension;

/// The prompts shipped in the binary (generated from tones, see
/// DESIGN.md "IVRs and queues").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinPrompt {
    /// The default greeting: "make your choice".
    Menu,
    /// "That choice is not valid."
    Invalid,
    /// Played before the PBX hangs up.
    Goodbye,
    /// "Please hold" (a destination is being rung).
    PleaseHold,
    /// Ringback, looped while the next destination rings.
    Ringback,
    /// Music on hold (queues), looped.
    Moh,
    /// An agent's feature code logged it in (rising two tones).
    LoggedIn,
    /// An agent's feature code logged it out (falling two tones).
    LoggedOut,
}

impl BuiltinPrompt {
    pub const ALL: [BuiltinPrompt; 8] = [
        BuiltinPrompt::Menu,
        BuiltinPrompt::Invalid,
        BuiltinPrompt::Goodbye,
        BuiltinPrompt::PleaseHold,
        BuiltinPrompt::Ringback,
        BuiltinPrompt::Moh,
        BuiltinPrompt::LoggedIn,
        BuiltinPrompt::LoggedOut,
    ];

    /// How long it plays (the runtime generates exactly this much audio).
    pub const fn duration(self) -> Duration {
        Duration::from_millis(match self {
            BuiltinPrompt::Menu => 1800,
            BuiltinPrompt::Invalid => 800,
            BuiltinPrompt::Goodbye => 800,
            BuiltinPrompt::PleaseHold => 1000,
            BuiltinPrompt::Ringback => 3000,
            BuiltinPrompt::Moh => 4000,
            BuiltinPrompt::LoggedIn | BuiltinPrompt::LoggedOut => 600,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            BuiltinPrompt::Menu => "menu",
            BuiltinPrompt::Invalid => "invalid",
            BuiltinPrompt::Goodbye => "goodbye",
            BuiltinPrompt::PleaseHold => "please_hold",
            BuiltinPrompt::Ringback => "ringback",
            BuiltinPrompt::Moh => "moh",
            BuiltinPrompt::LoggedIn => "logged_in",
            BuiltinPrompt::LoggedOut => "logged_out",
        }
    }

    pub fn from_name(name: &str) -> Option<BuiltinPrompt> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// As a [`Prompt`] (its duration is known).
    pub const fn prompt(self) -> Prompt {
        Prompt {
            source: PromptRef::Builtin(self),
            duration: self.duration(),
        }
    }
}

/// Which audio to play.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PromptRef {
    Builtin(BuiltinPrompt),
    /// A prompt a tenant uploaded (`/api/prompts`), by id.
    Tenant(Id),
    /// "You are caller number N" (a queue's position announcement), made
    /// from tones: see [`caller_number_tones`].
    CallerNumber(u32),
}

/// The lead-in of "you are caller number N": a 950 Hz chime.
pub const CALLER_NUMBER_LEAD_IN_HZ: f64 = 950.0;
/// The pips that count N out, digit by digit.
pub const CALLER_NUMBER_PIP_HZ: f64 = 1400.0;

/// "You are caller number N" as tone segments (Hz, ms; 0 Hz is silence):
/// a 950 Hz chime (400 ms) and 400 ms of silence, then each decimal
/// digit of N counted out as 1400 Hz pips (120 ms on, 180 ms off; `0` is
/// ten pips), digits 600 ms apart, and 400 ms of silence before the music
/// resumes. Caller 3 hears the chime and three pips; caller 12 one pip, a
/// pause, two pips. Built here, once, so the engine's timing
/// ([`caller_number_duration`]) and the runtime's audio agree.
pub fn caller_number_tones(n: u32) -> Vec<(f64, u32)> {
    let mut out = vec![(CALLER_NUMBER_LEAD_IN_HZ, 400), (0.0, 400)];
    for (i, digit) in n.to_string().bytes().enumerate() {
        if i > 0 {
            out.push((0.0, 600));
        }
        let pips = match digit - b'0' {
            0 => 10,
            d => d,
        };
        for _ in 0..pips {
            out.push((CALLER_NUMBER_PIP_HZ, 120));
            out.push((0.0, 180));
        }
    }
    out.push((0.0, 400));
    out
}

/// How long "you are caller number N" plays.
pub fn caller_number_duration(n: u32) -> Duration {
    Duration::from_millis(
        caller_number_tones(n)
            .iter()
            .map(|(_, ms)| u64::from(*ms))
            .sum(),
    )
}

/// A prompt and how long it plays: the engine times the IVR's digit
/// timeout from the end of its greeting without asking the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub source: PromptRef,
    pub duration: Duration,
}

/// Where an IVR choice (or its timeout) sends the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IvrDestination {
    /// A number of the tenant: an extension, a ring group, another IVR.
    Number(String),
    /// The PBX says goodbye and hangs up.
    HangUp,
}

/// An IVR of a tenant (see the module doc and DESIGN.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ivr {
    pub tenant_id: TenantId,
    pub number: Extension,
    pub name: String,
    pub greeting: Prompt,
    /// Played after a choice that is not in the menu.
    pub invalid: Prompt,
    /// One key (`0`–`9`, `*`, `#`) → destination; a key of the menu is
    /// taken as soon as it is pressed.
    pub menu: BTreeMap<char, IvrDestination>,
    /// Digits that do not start with a menu key are collected as an
    /// extension, ended by `#` or the inter-digit timeout.
    pub dial_by_extension: bool,
    /// How long the IVR waits for a (next) digit after its greeting.
    pub digit_timeout: Duration,
    /// How many times the menu is played again after an invalid choice or
    /// a timeout with no timeout destination, before goodbye.
    pub retries: u32,
    /// Where the call goes when the caller chooses nothing; `None`: the
    /// menu is played again (a retry).
    pub timeout_destination: Option<IvrDestination>,
}

/// How many times one call may enter an IVR (menus leading to menus, an
/// IVR's timeout destination leading back to it): past that the PBX says
/// goodbye and hangs up (`RoutingNotice::TooManyHops`).
pub const MAX_IVR_ENTRIES: usize = 8;

/// The G.711 law of the caller's audio while the PBX plays to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum G711 {
    Pcmu,
    Pcma,
}

impl G711 {
    pub const fn name(self) -> &'static str {
        match self {
            G711::Pcmu => "PCMU",
            G711::Pcma => "PCMA",
        }
    }
}

/// What the relay plays to the caller (side A): the prompts in order,
/// the last one looped when `repeat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Playback {
    pub prompts: Vec<PromptRef>,
    pub repeat: bool,
    /// The payload type and law agreed with the caller.
    pub payload_type: u8,
    pub law: G711,
    /// The caller's telephone-event payload type, if it offered one.
    pub events: Option<u8>,
}

/// How a queue picks the agents it rings for its longest-waiting caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueStrategy {
    /// Every free agent at once.
    RingAll,
    /// The free agent whose last queue call ended longest ago (never:
    /// first).
    LongestIdle,
    /// The free agent after the one offered last, in the queue's order.
    RoundRobin,
    /// The free agent who took the fewest queue calls (on this node).
    FewestCalls,
}

impl QueueStrategy {
    pub const NAMES: [&'static str; 4] =
        ["ring_all", "longest_idle", "round_robin", "fewest_calls"];

    pub fn parse(name: &str) -> Option<QueueStrategy> {
        Some(match name {
            "ring_all" => QueueStrategy::RingAll,
            "longest_idle" => QueueStrategy::LongestIdle,
            "round_robin" => QueueStrategy::RoundRobin,
            "fewest_calls" => QueueStrategy::FewestCalls,
            _ => return None,
        })
    }
}

/// A call queue of a tenant (see DESIGN.md "IVRs and queues").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queue {
    pub tenant_id: TenantId,
    pub number: Extension,
    pub name: String,
    pub strategy: QueueStrategy,
    /// The queue's agents in order, and which of them are logged in.
    pub agents: Vec<Extension>,
    pub logged_in: Vec<Extension>,
    /// How long an agent (or, ring all, every agent) rings per offer.
    pub agent_timeout: Duration,
    /// An agent is not offered a call for this long after a queue call.
    pub wrap_up: Duration,
    /// The longest a caller waits, then `overflow` (or the PBX hangs up).
    pub max_wait: Option<Duration>,
    /// Callers waiting at most; one more goes to `overflow`, or hears
    /// busy (486; an answered caller is hung up).
    pub max_length: Option<u32>,
    pub overflow: Option<IvrDestination>,
    /// Music on hold, looped.
    pub moh: Prompt,
    /// Every this long a waiting caller hears its position ("you are
    /// caller number N", [`PromptRef::CallerNumber`]), then the music
    /// again; `None`: never.
    pub announce_position: Option<Duration>,
    /// A waiting caller may press 1 to be called back when an agent is
    /// free; this many callback calls are tried at most. `None`: no
    /// callback offered.
    pub callback_attempts: Option<u32>,
}

/// IVRs or queues of every tenant, by number.
#[derive(Clone, Debug)]
pub(crate) struct ByNumber<T> {
    by_tenant: std::collections::HashMap<TenantId, BTreeMap<Extension, T>>,
}

impl<T> Default for ByNumber<T> {
    fn default() -> Self {
        ByNumber {
            by_tenant: Default::default(),
        }
    }
}

impl<T> ByNumber<T> {
    /// `tenant`'s, by number.
    pub(crate) fn of_tenant(&self, tenant: TenantId) -> impl Iterator<Item = &T> {
        self.by_tenant
            .get(&tenant)
            .into_iter()
            .flat_map(|m| m.values())
    }

    pub(crate) fn upsert(&mut self, tenant: TenantId, number: Extension, value: T) {
        self.by_tenant
            .entry(tenant)
            .or_default()
            .insert(number, value);
    }

    pub(crate) fn remove(&mut self, tenant: TenantId, number: &str) -> Option<T> {
        self.by_tenant.get_mut(&tenant)?.remove(number)
    }

    pub(crate) fn remove_tenant(&mut self, tenant: TenantId) {
        self.by_tenant.remove(&tenant);
    }

    pub(crate) fn get(&self, tenant: TenantId, number: &str) -> Option<&T> {
        self.by_tenant.get(&tenant)?.get(number)
    }

    pub(crate) fn get_mut(&mut self, tenant: TenantId, number: &str) -> Option<&mut T> {
        self.by_tenant.get_mut(&tenant)?.get_mut(number)
    }
}
