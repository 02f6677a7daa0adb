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

use std::time::{Duration, Instant};

use cdr::TenantId;
use sip::transport::Peer;

use crate::directory::{Directory, Forwarding, User};
use crate::location::Location;

/// One device to ring: the contact URI (the Request-URI of the INVITE and
/// the target's `destination` in the CDR) and where to send it (the
/// address its REGISTER came from, for NAT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub uri: String,
    pub peer: Peer,
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
    /// No such number in the tenant (`404`).
    NotFound,
}

/// Routes `dialled` (the Request-URI user, unescaped) for a caller of
/// `tenant`.
pub fn route(
    directory: &Directory,
    location: &Location,
    now: Instant,
    tenant: TenantId,
    dialled: &str,
) -> Route {
    let Some(user) = directory.user(tenant, dialled) else {
        return Route::NotFound;
    };
    let unavailable = |user: &User, forwarding: Forwarding| Route::Unavailable {
        extension: user.extension.to_string(),
        display_name: user.display_name.clone(),
        forwarding,
    };
    if !user.enabled {
        return unavailable(user, Forwarding::default());
    }
    let contacts: Vec<Contact> = location
        .lookup(now, tenant, user.extension.as_str())
        .map(|b| Contact {
            uri: b.contact_uri.clone(),
            peer: b.target(),
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
