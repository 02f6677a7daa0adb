//! Who a dialled number is: the router the call engine asks before it
//! creates any target.
//!
//! Today a number is an extension of the caller's tenant, rung on every
//! live binding of its user (SPEC §3, "two devices"). Ring groups, queues,
//! IVRs, forwarding rules and outbound rules will be more [`Route`]
//! variants; the engine's match on them is where each feature plugs in.
//!
//! # Decisions
//!
//! - **Numbers are looked up in the caller's tenant only.** A tenant never
//!   reaches another tenant's extensions by dialling; cross-tenant calls
//!   would go out by a trunk.
//! - **A disabled user is unavailable (`480`), not unknown (`404`).** The
//!   number exists in the tenant's plan; disabling it is an administrative
//!   state, like a phone being unplugged.
//! - **Bindings in registration order**, which is the order the location
//!   service keeps them in; that fixes the order of the targets, hence of
//!   `call_targets`, in the CDR.
//! - **A user at its `max_concurrent_calls` is busy** ([`Route::Busy`]),
//!   its devices are not rung, and its busy forwarding rule applies. A call
//!   counts against each user it involves: the caller, and the destination
//!   whose devices ring or answered (not one the call was forwarded away
//!   from). The engine keeps the counts ([`ActiveCalls`]) from what each
//!   session says it holds after every input.
//! - **A ring group is a number too** ([`Route::Group`]): a number that
//!   is no user's is looked up among the tenant's ring groups. Its members
//!   are routed one by one when the group rings them (`call/group.rs`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cdr::TenantId;
use sip::transport::Peer;

use crate::directory::{Directory, Forwarding, RingGroup, User};
use crate::location::Location;

/// One device to ring: the contact URI (the Request-URI of the INVITE and
/// the target's `destination` in the CDR) and where to send it (the
/// address its REGISTER came from, for NAT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub uri: String,
    pub peer: Peer,
    /// Route header values of requests to it: the binding's Path (RFC 3327).
    pub route: Vec<String>,
}

/// What a dialled number routes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// An enabled extension with at least one live binding: ring them all,
    /// for at most `ring_timeout`.
    Extension {
        extension: String,
        display_name: String,
        ring_timeout: Duration,
        contacts: Vec<Contact>,
        forwarding: Forwarding,
    },
    /// An extension that exists but cannot be rung now: no live binding,
    /// or the user is disabled (`480`). A disabled user forwards nothing:
    /// disabling a number switches it off, rules included.
    Unavailable {
        extension: String,
        display_name: String,
        forwarding: Forwarding,
    },
    /// An extension whose user is in as many calls as it may be
    /// (`max_concurrent_calls`): busy without ringing (`486`).
    Busy {
        extension: String,
        display_name: String,
        forwarding: Forwarding,
    },
    /// A ring group of the tenant: its members ring per its strategy.
    Group(RingGroup),
    /// An IVR of the tenant: the PBX answers it (`call/ivr.rs`).
    Ivr(Box<crate::apps::Ivr>),
    /// A call queue of the tenant: the PBX answers it and offers the
    /// caller to its agents (`call/queue.rs`, `engine/queues.rs`).
    Queue(Box<crate::apps::Queue>),
    /// An agent's login or logout feature code, already applied: the
    /// PBX answers and confirms (`call/agent_code.rs`). Never routed to
    /// by number; the engine starts such a call itself.
    AgentCode(Box<crate::call::AgentCodeCall>),
    /// No such number in the tenant (`404`).
    NotFound,
}

/// How many calls each user is in now (see the module's decisions): kept
/// by the engine, read when a call is routed.
#[derive(Clone, Debug, Default)]
pub struct ActiveCalls {
    counts: HashMap<(TenantId, String), u32>,
}

impl ActiveCalls {
    /// The calls `extension` of `tenant` is in.
    pub fn of(&self, tenant: TenantId, extension: &str) -> u32 {
        // A tuple key cannot be borrowed as (TenantId, &str); the owned
        // lookup key is only built for users with a limit.
        self.counts
            .get(&(tenant, extension.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn add(&mut self, tenant: TenantId, extension: &str) {
        *self
            .counts
            .entry((tenant, extension.to_owned()))
            .or_default() += 1;
    }

    pub(crate) fn remove(&mut self, tenant: TenantId, extension: &str) {
        let key = (tenant, extension.to_owned());
        if let Some(n) = self.counts.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&key);
            }
        }
    }

    /// Users in at least one call.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Routes `dialled` (the Request-URI user, unescaped) for a caller of
/// `tenant`.
pub fn route(
    directory: &Directory,
    location: &Location,
    active: &ActiveCalls,
    now: Instant,
    tenant: TenantId,
    dialled: &str,
) -> Route {
    let Some(user) = directory.user(tenant, dialled) else {
        if let Some(ivr) = directory.ivr(tenant, dialled) {
            return Route::Ivr(Box::new(ivr.clone()));
        }
        if let Some(queue) = directory.queue(tenant, dialled) {
            return Route::Queue(Box::new(queue.clone()));
        }
        return match directory.group(tenant, dialled) {
            Some(group) => Route::Group(group.clone()),
            None => Route::NotFound,
        };
    };
    let unavailable = |user: &User, forwarding: Forwarding| Route::Unavailable {
        extension: user.extension.to_string(),
        display_name: user.display_name.clone(),
        forwarding,
    };
    if !user.enabled {
        return unavailable(user, Forwarding::default());
    }
    if let Some(max) = user.max_concurrent_calls
        && active.of(tenant, user.extension.as_str()) >= max
    {
        return Route::Busy {
            extension: user.extension.to_string(),
            display_name: user.display_name.clone(),
            forwarding: user.forwarding.clone(),
        };
    }
    let contacts: Vec<Contact> = location
        .lookup(now, tenant, user.extension.as_str())
        .map(|b| Contact {
            uri: b.contact_uri.clone(),
            peer: b.target(),
            route: b.path.clone(),
        })
        .collect();
    if contacts.is_empty() {
        return unavailable(user, user.forwarding.clone());
    }
    Route::Extension {
        extension: user.extension.to_string(),
        display_name: user.display_name.clone(),
        ring_timeout: user.ring_timeout,
        contacts,
        forwarding: user.forwarding.clone(),
    }
}
