//! The location service: where each user's devices can be reached.
//!
//! A user (an address of record, [`Aor`]) has any number of [`Binding`]s, one
//! per registered device, each with its own expiry. The registrar writes
//! bindings ([`Location::register`], RFC 3261 §10.3 step 7); the router reads
//! the live ones ([`Location::lookup`]); the runtime sweeps expired ones
//! ([`Location::expire`]) and persists every change so that a restart keeps
//! the registrations ([`Location::export`], [`Location::import`]).
//!
//! # Decisions
//!
//! - **Binding identity** ([`BindingKey`]): the `+sip.instance` of the Contact
//!   when present (RFC 5626 §6, RFC 5627: one binding per device, whatever
//!   address it registers from), else the contact URI compared per RFC 3261
//!   §19.1.4 as far as a canonical key allows: scheme, user (unescaped),
//!   password, host (case-insensitive), port (absent ≠ 5060), and the
//!   `transport`, `maddr` and `user` parameters (case-insensitive). Other
//!   parameters and URI headers do not distinguish bindings. `reg-id` is
//!   stored but does not split a device into several bindings: Tally does
//!   not claim RFC 5626 outbound, so each instance has one flow.
//! - **Target = where the REGISTER came from.** Every binding records the
//!   transport and address the REGISTER really arrived from
//!   ([`Binding::source`]) and requests for it go there
//!   ([`Binding::target`]), whatever host the Contact names: that is the
//!   address RFC 3581 `received`/`rport` would report, it reaches phones
//!   behind NAT, and on TCP/TLS/WS it is the connection the phone keeps open.
//!   The contact URI is still the Request-URI of those requests.
//! - **Order checks** (RFC 3261 §10.3 steps 6 and 7): a REGISTER with the
//!   Call-ID of an existing binding must carry a higher CSeq, else the whole
//!   request is refused ([`LocationError::OutOfOrder`]) and nothing changes;
//!   another Call-ID (the phone rebooted) simply replaces the binding.
//!   Expired bindings that were not swept yet count as absent.
//! - **Bounded**: at most `max_bindings_per_user` bindings per user. A
//!   REGISTER that would exceed it *evicts* the user's bindings that expire
//!   soonest (the least recently refreshed) among those it does not name,
//!   reported as [`ChangeKind::Evicted`]. Refusing instead would lock a user
//!   out behind stale bindings of its own devices (a phone that changed port
//!   without `+sip.instance` leaves one behind each time), which is worse than
//!   dropping a binding that was going to expire first. A single REGISTER
//!   naming more live contacts than the cap is refused
//!   ([`LocationError::TooManyContacts`]). The number of users is bounded by
//!   the directory, so the whole table is bounded.
//! - **Time**: expiries are [`Instant`]s (monotonic, what timers use); the
//!   exported form ([`BindingRecord`]) carries absolute Unix seconds, so a
//!   record written before a restart means the same moment after it. Each
//!   call passes both clocks' readings of the same `now`.
//! - [`Location::expire`] scans every binding (O(n)); the runtime calls it
//!   every second or so. Lookups never return an expired binding, so a late
//!   sweep only delays the `Expired` change, never routes to a dead device.

use std::collections::{BTreeMap, HashSet};
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cdr::TenantId;
use sip::ValueError;
use sip::transport::{Peer, Transport};
use sip::uri::{Host, SipUri, Uri};

use crate::directory::Extension;

mod shared;
pub use shared::SharedReport;

/// Cap on a user's bindings when the configuration does not say otherwise.
pub const DEFAULT_MAX_BINDINGS_PER_USER: usize = 10;

/// An address of record: one user of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Aor {
    pub tenant: TenantId,
    pub extension: Extension,
}

impl fmt::Display for Aor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@tenant {}", self.extension, self.tenant)
    }
}

/// What makes two contacts of one user the same binding (see the module
/// doc). Its text ([`BindingKey::as_str`]) is stable and is what the store
/// keys a binding by, with the tenant and extension: `<urn:uuid:…>` for an
/// instance, a canonical `sip:`/`sips:` URI otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingKey(String);

impl BindingKey {
    /// The key of a contact: its `+sip.instance` (without the angle brackets,
    /// as [`sip::headers::Contact::instance`] returns it) when it has one,
    /// else its URI in canonical form.
    pub fn new(contact: &SipUri<'_>, instance: Option<&str>) -> BindingKey {
        match instance {
            Some(instance) => BindingKey(format!("<{instance}>")),
            None => BindingKey(canonical_uri(contact)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the key is a device's `+sip.instance`.
    pub fn is_instance(&self) -> bool {
        self.0.starts_with('<')
    }
}

impl fmt::Display for BindingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `scheme:user:password@host:port;maddr=…;transport=…;user=…` with escapes
/// normalised, case folded where RFC 3261 §19.1.4 ignores it.
fn canonical_uri(u: &SipUri<'_>) -> String {
    let mut out = String::with_capacity(u.as_str().len());
    out.push_str(if u.secure { "sips:" } else { "sip:" });
    if let Some(user) = u.user_unescaped() {
        escape_into(&mut out, &user);
        if let Some(p) = u.password {
            out.push(':');
            escape_into(&mut out, p.as_bytes());
        }
        out.push('@');
    }
    match u.host {
        Host::Name(n) => out.push_str(&n.to_ascii_lowercase()),
        other => {
            let _ = write!(out, "{other}");
        }
    }
    if let Some(port) = u.port {
        let _ = write!(out, ":{port}");
    }
    for name in ["maddr", "transport", "user"] {
        if let Some(p) = u.params.param(name) {
            out.push(';');
            out.push_str(name);
            if let Some(v) = p.value {
                out.push('=');
                out.push_str(&v.to_ascii_lowercase());
            }
        }
    }
    out
}

/// %-escapes every byte that is not unreserved, upper-case hex: one spelling
/// per byte string.
fn escape_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// One registered device of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub key: BindingKey,
    /// The Contact URI as the device wrote it (without `<>` and header
    /// parameters): the Request-URI of requests sent to it.
    pub contact_uri: String,
    /// `+sip.instance`, without quotes and angle brackets.
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    /// `q` in thousandths (`q=0.5` → 500).
    pub q: Option<u16>,
    pub expires_at: Instant,
    /// Transport and address the REGISTER arrived from.
    pub source: Peer,
    /// The REGISTER's Path (RFC 3327), one `<uri>` per proxy, nearest the
    /// registrar first: the Route of every request sent to the device, so
    /// it goes back through the proxy the device registered through
    /// (Kamailio in front of a cluster). Empty when it came directly.
    pub path: Vec<String>,
    /// Call-ID and CSeq of the REGISTER that last wrote this binding.
    pub call_id: String,
    pub cseq: u32,
}

impl Binding {
    /// Where requests for this binding are sent (see the module doc).
    pub fn target(&self) -> Peer {
        self.source
    }

    pub fn is_live(&self, now: Instant) -> bool {
        self.expires_at > now
    }

    /// Time left before it expires, zero once expired.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }
}

/// One contact of a REGISTER, checked and resolved by the registrar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactUpdate {
    pub key: BindingKey,
    pub contact_uri: String,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    pub q: Option<u16>,
    /// Seconds the binding lives from now; zero removes it.
    pub expires: u32,
}

/// What a REGISTER asks of a user's bindings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterContacts {
    /// `Contact: *` with `Expires: 0`.
    RemoveAll,
    /// Add, refresh or (with expiry zero) remove each contact.
    Update(Vec<ContactUpdate>),
}

/// A REGISTER as the location service needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration<'a> {
    pub call_id: &'a str,
    pub cseq: u32,
    pub source: Peer,
    /// The REGISTER's Path values ([`Binding::path`]).
    pub path: Vec<String>,
    pub contacts: RegisterContacts,
}

/// What happened to a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A new binding: persist it.
    Added,
    /// An existing binding rewritten (new expiry, maybe a new address): persist it.
    Refreshed,
    /// Unregistered (expiry zero or `Contact: *`): delete it.
    Removed,
    /// Dropped to make room under the per-user cap: delete it.
    Evicted,
    /// Its expiry passed: delete it.
    Expired,
}

impl ChangeKind {
    /// Whether the binding exists after this change (store: upsert, else delete).
    pub fn is_live(self) -> bool {
        matches!(self, ChangeKind::Added | ChangeKind::Refreshed)
    }
}

/// A change to persist, with the binding as it is (or was) in exported form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingChange {
    pub kind: ChangeKind,
    pub record: BindingRecord,
}

/// A binding as plain data, for the store: the primary key is
/// (`tenant_id`, `extension`, `key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindingRecord {
    pub tenant_id: TenantId,
    pub extension: String,
    /// [`BindingKey::as_str`]. Written for the store's benefit; [`Location::import`]
    /// recomputes it from `contact_uri` and `instance`.
    pub key: String,
    pub contact_uri: String,
    pub instance: Option<String>,
    pub reg_id: Option<u32>,
    pub q: Option<u16>,
    /// Absolute expiry, Unix seconds.
    pub expires_unix: u64,
    pub transport: Transport,
    pub source: SocketAddr,
    /// [`Binding::path`].
    pub path: Vec<String>,
    pub call_id: String,
    pub cseq: u32,
}

impl BindingRecord {
    fn new(aor: &Aor, b: &Binding, now: Instant, now_unix: u64) -> BindingRecord {
        let expires_unix = if b.expires_at >= now {
            now_unix.saturating_add(b.remaining(now).as_secs())
        } else {
            now_unix.saturating_sub(now.duration_since(b.expires_at).as_secs())
        };
        BindingRecord {
            tenant_id: aor.tenant,
            extension: aor.extension.as_str().to_owned(),
            key: b.key.as_str().to_owned(),
            contact_uri: b.contact_uri.clone(),
            instance: b.instance.clone(),
            reg_id: b.reg_id,
            q: b.q,
            expires_unix,
            transport: b.source.transport,
            source: b.source.addr,
            path: b.path.clone(),
            call_id: b.call_id.clone(),
            cseq: b.cseq,
        }
    }
}

/// Why [`Location::register`] refused a REGISTER; nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    /// RFC 3261 §10.3 step 7: same Call-ID, CSeq not above the stored one.
    #[error("CSeq {cseq} is not above {stored}, stored for Call-ID {call_id:?}")]
    OutOfOrder {
        call_id: String,
        cseq: u32,
        stored: u32,
    },
    #[error("{count} contacts in one registration, at most {max} allowed")]
    TooManyContacts { count: usize, max: usize },
}

/// Why [`Location::import`] skipped a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("contact URI does not parse: {0}")]
    BadContactUri(ValueError),
    #[error("contact URI is not a sip: or sips: URI")]
    NotSipContact,
    #[error("invalid Call-ID")]
    BadCallId,
    #[error("empty extension")]
    EmptyExtension,
    #[error("user already has {max} bindings")]
    TooManyBindings { max: usize },
    #[error("expiry out of range")]
    ExpiryOutOfRange,
}

/// A record [`Location::import`] did not restore, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRecord {
    pub record: BindingRecord,
    pub reason: ImportError,
}

/// What [`Location::import`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub restored: usize,
    /// Records whose expiry had passed; skipped, not an error.
    pub expired: usize,
    pub rejected: Vec<RejectedRecord>,
}

/// Every user's bindings.
#[derive(Clone, Debug)]
pub struct Location {
    /// Ordered maps, so sweeps and exports come out in the same order on
    /// every run (deterministic simulations and tests).
    users: BTreeMap<TenantId, BTreeMap<Extension, Vec<Binding>>>,
    max_per_user: usize,
}

impl Default for Location {
    fn default() -> Self {
        Location::new(DEFAULT_MAX_BINDINGS_PER_USER)
    }
}

impl Location {
    /// A location service keeping at most `max_bindings_per_user` (at least 1)
    /// bindings per user.
    pub fn new(max_bindings_per_user: usize) -> Self {
        Location {
            users: BTreeMap::new(),
            max_per_user: max_bindings_per_user.max(1),
        }
    }

    /// The live bindings of a user, in the order they were first registered.
    pub fn lookup(
        &self,
        now: Instant,
        tenant: TenantId,
        extension: &str,
    ) -> impl Iterator<Item = &Binding> + '_ {
        self.users
            .get(&tenant)
            .and_then(|m| m.get(extension))
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(move |b| b.is_live(now))
    }

    /// Bindings held, expired ones not yet swept included.
    pub fn binding_count(&self) -> usize {
        self.users
            .values()
            .flat_map(BTreeMap::values)
            .map(Vec::len)
            .sum()
    }

    /// Applies a REGISTER to `aor`'s bindings (RFC 3261 §10.3 steps 6–7),
    /// all or nothing. Returns the changes to persist: expired bindings of
    /// this user swept on the way, then what the request did, then evictions.
    pub fn register(
        &mut self,
        now: Instant,
        now_unix: u64,
        aor: &Aor,
        reg: Registration<'_>,
    ) -> Result<Vec<BindingChange>, LocationError> {
        let contacts = match reg.contacts {
            RegisterContacts::RemoveAll => None,
            RegisterContacts::Update(updates) => Some(last_per_key(updates)),
        };
        self.check(now, aor, reg.call_id, reg.cseq, contacts.as_deref())?;

        let mut changes = Vec::new();
        let record = |kind, b: &Binding| BindingChange {
            kind,
            record: BindingRecord::new(aor, b, now, now_unix),
        };
        let by_ext = self.users.entry(aor.tenant).or_default();
        let list = by_ext.entry(aor.extension.clone()).or_default();
        list.retain(|b| {
            let live = b.is_live(now);
            if !live {
                changes.push(record(ChangeKind::Expired, b));
            }
            live
        });
        match contacts {
            None => {
                for b in list.drain(..) {
                    changes.push(record(ChangeKind::Removed, &b));
                }
            }
            Some(updates) => {
                let named: HashSet<&BindingKey> = updates.iter().map(|u| &u.key).collect();
                for u in &updates {
                    let pos = list.iter().position(|b| b.key == u.key);
                    if u.expires == 0 {
                        if let Some(p) = pos {
                            let b = list.remove(p);
                            changes.push(record(ChangeKind::Removed, &b));
                        }
                        continue;
                    }
                    // The registrar clamps expiries to hours; a u32 of seconds
                    // cannot overflow an Instant, but no panic either way.
                    let expires_at = now
                        .checked_add(Duration::from_secs(u64::from(u.expires)))
                        .unwrap_or(now);
                    let b = Binding {
                        key: u.key.clone(),
                        contact_uri: u.contact_uri.clone(),
                        instance: u.instance.clone(),
                        reg_id: u.reg_id,
                        q: u.q,
                        expires_at,
                        source: reg.source,
                        path: reg.path.clone(),
                        call_id: reg.call_id.to_owned(),
                        cseq: reg.cseq,
                    };
                    match pos {
                        Some(p) => {
                            changes.push(record(ChangeKind::Refreshed, &b));
                            list[p] = b;
                        }
                        None => {
                            changes.push(record(ChangeKind::Added, &b));
                            list.push(b);
                        }
                    }
                }
                // `check` made sure the request alone fits, so there is
                // always an unnamed binding to evict while over the cap.
                while list.len() > self.max_per_user {
                    let Some(p) = list
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| !named.contains(&b.key))
                        .min_by_key(|(_, b)| b.expires_at)
                        .map(|(p, _)| p)
                    else {
                        break;
                    };
                    let b = list.remove(p);
                    changes.push(record(ChangeKind::Evicted, &b));
                }
            }
        }
        if list.is_empty() {
            by_ext.remove(aor.extension.as_str());
            if by_ext.is_empty() {
                self.users.remove(&aor.tenant);
            }
        }
        Ok(changes)
    }

    /// The checks of [`Location::register`], before anything changes.
    fn check(
        &self,
        now: Instant,
        aor: &Aor,
        call_id: &str,
        cseq: u32,
        updates: Option<&[ContactUpdate]>,
    ) -> Result<(), LocationError> {
        if let Some(updates) = updates {
            let count = updates.iter().filter(|u| u.expires > 0).count();
            if count > self.max_per_user {
                return Err(LocationError::TooManyContacts {
                    count,
                    max: self.max_per_user,
                });
            }
        }
        let in_order = |b: &Binding| {
            if b.call_id == call_id && cseq <= b.cseq {
                Err(LocationError::OutOfOrder {
                    call_id: call_id.to_owned(),
                    cseq,
                    stored: b.cseq,
                })
            } else {
                Ok(())
            }
        };
        for b in self.lookup(now, aor.tenant, aor.extension.as_str()) {
            match updates {
                // Step 6: `*` removes every binding, each subject to the check.
                None => in_order(b)?,
                Some(updates) => {
                    if updates.iter().any(|u| u.key == b.key) {
                        in_order(b)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Forgets every binding of a user (deleted, or renumbered: its devices
    /// must not ring for whoever gets the number next); returns how many.
    /// Nothing to persist: the store deletes a user's rows itself.
    pub fn remove_user(&mut self, tenant: TenantId, extension: &str) -> usize {
        let Some(by_ext) = self.users.get_mut(&tenant) else {
            return 0;
        };
        let removed = by_ext.remove(extension).map_or(0, |list| list.len());
        if by_ext.is_empty() {
            self.users.remove(&tenant);
        }
        removed
    }

    /// Forgets every binding of a tenant's users; returns how many.
    pub fn remove_tenant(&mut self, tenant: TenantId) -> usize {
        self.users
            .remove(&tenant)
            .map_or(0, |by_ext| by_ext.values().map(Vec::len).sum())
    }

    /// Removes every binding whose expiry has passed and returns them.
    pub fn expire(&mut self, now: Instant, now_unix: u64) -> Vec<BindingChange> {
        let mut changes = Vec::new();
        for (tenant, by_ext) in &mut self.users {
            for (ext, list) in by_ext.iter_mut() {
                list.retain(|b| {
                    let live = b.is_live(now);
                    if !live {
                        let aor = Aor {
                            tenant: *tenant,
                            extension: ext.clone(),
                        };
                        changes.push(BindingChange {
                            kind: ChangeKind::Expired,
                            record: BindingRecord::new(&aor, b, now, now_unix),
                        });
                    }
                    live
                });
            }
            by_ext.retain(|_, list| !list.is_empty());
        }
        self.users.retain(|_, by_ext| !by_ext.is_empty());
        changes
    }

    /// Every live binding as plain data (absolute Unix expiries).
    pub fn export(&self, now: Instant, now_unix: u64) -> Vec<BindingRecord> {
        let mut out = Vec::new();
        for (tenant, by_ext) in &self.users {
            for (ext, list) in by_ext {
                let aor = Aor {
                    tenant: *tenant,
                    extension: ext.clone(),
                };
                out.extend(
                    list.iter()
                        .filter(|b| b.is_live(now))
                        .map(|b| BindingRecord::new(&aor, b, now, now_unix)),
                );
            }
        }
        out
    }

    /// Restores exported bindings (after a restart). Records are checked as
    /// untrusted input: expired ones are skipped, remaining lifetimes are
    /// capped at `max_remaining` (a clock that jumped, a corrupted row), a
    /// record for a binding already held replaces it, and the per-user cap
    /// holds.
    pub fn import(
        &mut self,
        now: Instant,
        now_unix: u64,
        max_remaining: Duration,
        records: impl IntoIterator<Item = BindingRecord>,
    ) -> ImportReport {
        let mut report = ImportReport::default();
        for record in records {
            if record.expires_unix <= now_unix {
                report.expired += 1;
                continue;
            }
            match self.import_one(now, now_unix, max_remaining, &record) {
                Ok(()) => report.restored += 1,
                Err(reason) => report.rejected.push(RejectedRecord { record, reason }),
            }
        }
        report
    }

    fn import_one(
        &mut self,
        now: Instant,
        now_unix: u64,
        max_remaining: Duration,
        r: &BindingRecord,
    ) -> Result<(), ImportError> {
        if r.extension.is_empty() {
            return Err(ImportError::EmptyExtension);
        }
        sip::headers::parse_call_id(&r.call_id).map_err(|_| ImportError::BadCallId)?;
        let uri = Uri::parse(&r.contact_uri).map_err(ImportError::BadContactUri)?;
        let Uri::Sip(sip_uri) = uri else {
            return Err(ImportError::NotSipContact);
        };
        let key = BindingKey::new(&sip_uri, r.instance.as_deref());
        let remaining = Duration::from_secs(r.expires_unix - now_unix).min(max_remaining);
        let expires_at = now
            .checked_add(remaining)
            .ok_or(ImportError::ExpiryOutOfRange)?;
        let binding = Binding {
            key,
            contact_uri: r.contact_uri.clone(),
            instance: r.instance.clone(),
            reg_id: r.reg_id,
            q: r.q,
            expires_at,
            source: Peer::new(r.transport, r.source),
            path: r.path.clone(),
            call_id: r.call_id.clone(),
            cseq: r.cseq,
        };
        let max = self.max_per_user;
        let list = self
            .users
            .entry(r.tenant_id)
            .or_default()
            .entry(Extension::new(r.extension.as_str()))
            .or_default();
        if let Some(existing) = list.iter_mut().find(|b| b.key == binding.key) {
            *existing = binding;
        } else if list.len() >= max {
            return Err(ImportError::TooManyBindings { max });
        } else {
            list.push(binding);
        }
        Ok(())
    }
}

/// The updates with, for a key named twice, only its last occurrence (in
/// the position of that last occurrence).
fn last_per_key(updates: Vec<ContactUpdate>) -> Vec<ContactUpdate> {
    let mut seen = HashSet::new();
    let mut out: Vec<ContactUpdate> = updates
        .into_iter()
        .rev()
        .filter(|u| seen.insert(u.key.clone()))
        .collect();
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdr::Id;

    fn sip(s: &str) -> SipUri<'_> {
        match Uri::parse(s) {
            Ok(Uri::Sip(u)) => u,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn key(s: &str) -> BindingKey {
        BindingKey::new(&sip(s), None)
    }

    #[test]
    fn uri_keys_follow_rfc3261_comparison() {
        // Equal: host and scheme case, escapes, parameter case, other params.
        assert_eq!(
            key("sip:101@Phone.Example.COM:5062;transport=UDP"),
            key("SIP:101@phone.example.com:5062;transport=udp;ob")
        );
        assert_eq!(key("sip:%61lice@h"), key("sip:alice@h"));
        assert_eq!(key("sip:a@h;lr;x=1"), key("sip:a@h"));
        // Different: user case, port present or not, transport, scheme, maddr.
        assert_ne!(key("sip:Alice@h"), key("sip:alice@h"));
        assert_ne!(key("sip:a@h"), key("sip:a@h:5060"));
        assert_ne!(key("sip:a@h;transport=tcp"), key("sip:a@h;transport=udp"));
        assert_ne!(key("sip:a@h"), key("sips:a@h"));
        assert_ne!(key("sip:a@h"), key("sip:a@h;maddr=192.0.2.1"));
        assert_eq!(
            key("sip:101@[2001:DB8::1]:5060").as_str(),
            "sip:101@[2001:db8::1]:5060"
        );
    }

    #[test]
    fn instance_keys_ignore_the_uri() {
        let a = BindingKey::new(&sip("sip:101@192.0.2.1"), Some("urn:uuid:1"));
        let b = BindingKey::new(&sip("sip:101@198.51.100.7:5070"), Some("urn:uuid:1"));
        assert_eq!(a, b);
        assert!(a.is_instance());
        assert_eq!(a.as_str(), "<urn:uuid:1>");
        assert!(!key("sip:a@h").is_instance());
    }

    fn aor() -> Aor {
        Aor {
            tenant: TenantId::from(Id::from_u64(7)),
            extension: "101".into(),
        }
    }

    fn update(uri: &str, expires: u32) -> ContactUpdate {
        ContactUpdate {
            key: key(uri),
            contact_uri: uri.to_owned(),
            instance: None,
            reg_id: None,
            q: None,
            expires,
        }
    }

    fn source() -> Peer {
        Peer::new(Transport::Udp, "203.0.113.5:40000".parse().unwrap())
    }

    fn reg(call_id: &str, cseq: u32, updates: Vec<ContactUpdate>) -> Registration<'_> {
        Registration {
            call_id,
            cseq,
            source: source(),
            path: Vec::new(),
            contacts: RegisterContacts::Update(updates),
        }
    }

    #[test]
    fn cap_evicts_the_binding_that_expires_first() {
        let t0 = Instant::now();
        let mut loc = Location::new(2);
        let a = aor();
        loc.register(t0, 1000, &a, reg("c1", 1, vec![update("sip:a@h1", 100)]))
            .unwrap();
        loc.register(t0, 1000, &a, reg("c2", 1, vec![update("sip:a@h2", 50)]))
            .unwrap();
        let changes = loc
            .register(t0, 1000, &a, reg("c3", 1, vec![update("sip:a@h3", 100)]))
            .unwrap();
        let kinds: Vec<_> = changes
            .iter()
            .map(|c| (c.kind, c.record.contact_uri.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ChangeKind::Added, "sip:a@h3"),
                (ChangeKind::Evicted, "sip:a@h2")
            ]
        );
        assert_eq!(loc.binding_count(), 2);
        // One request naming more live contacts than the cap is refused whole.
        let too_many = vec![
            update("sip:a@x1", 60),
            update("sip:a@x2", 60),
            update("sip:a@x3", 60),
        ];
        assert_eq!(
            loc.register(t0, 1000, &a, reg("c4", 1, too_many)),
            Err(LocationError::TooManyContacts { count: 3, max: 2 })
        );
        assert_eq!(loc.binding_count(), 2);
    }

    #[test]
    fn duplicate_contacts_in_one_request_keep_the_last() {
        let t0 = Instant::now();
        let mut loc = Location::new(1);
        let a = aor();
        let changes = loc
            .register(
                t0,
                1000,
                &a,
                reg("c1", 1, vec![update("sip:a@h", 60), update("sip:a@H", 120)]),
            )
            .unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].record.expires_unix, 1120);
    }

    #[test]
    fn expired_bindings_are_swept_on_register_and_never_looked_up() {
        let t0 = Instant::now();
        let mut loc = Location::default();
        let a = aor();
        loc.register(t0, 1000, &a, reg("c1", 1, vec![update("sip:a@h1", 60)]))
            .unwrap();
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(loc.lookup(t1, a.tenant, "101").count(), 0);
        // Same Call-ID, lower CSeq: allowed, the old binding is gone.
        let changes = loc
            .register(t1, 1060, &a, reg("c1", 1, vec![update("sip:a@h1", 60)]))
            .unwrap();
        let kinds: Vec<_> = changes.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [ChangeKind::Expired, ChangeKind::Added]);
        assert_eq!(changes[0].record.expires_unix, 1060);
    }

    #[test]
    fn removed_users_and_tenants_lose_their_bindings() {
        let t0 = Instant::now();
        let mut loc = Location::default();
        let a = aor();
        let b = Aor {
            extension: "102".into(),
            ..aor()
        };
        let other = Aor {
            tenant: TenantId::from(Id::from_u64(8)),
            ..aor()
        };
        for aor in [&a, &b, &other] {
            loc.register(t0, 1000, aor, reg("c1", 1, vec![update("sip:a@h1", 60)]))
                .unwrap();
        }
        assert_eq!(loc.remove_user(a.tenant, "101"), 1);
        assert_eq!(loc.remove_user(a.tenant, "101"), 0);
        assert_eq!(loc.lookup(t0, a.tenant, "101").count(), 0);
        assert_eq!(loc.lookup(t0, b.tenant, "102").count(), 1);
        assert_eq!(loc.remove_tenant(a.tenant), 1);
        assert_eq!(loc.lookup(t0, b.tenant, "102").count(), 0);
        assert_eq!(
            loc.lookup(t0, other.tenant, "101").count(),
            1,
            "other tenants keep theirs"
        );
        assert_eq!(loc.remove_tenant(a.tenant), 0);
    }

    #[test]
    fn import_checks_records() {
        let t0 = Instant::now();
        let mut loc = Location::new(1);
        let a = aor();
        let good = BindingRecord {
            tenant_id: a.tenant,
            extension: "101".into(),
            key: String::new(),
            contact_uri: "sip:101@192.0.2.1:5062".into(),
            instance: None,
            reg_id: None,
            q: None,
            expires_unix: 2000,
            transport: Transport::Udp,
            source: "203.0.113.5:40000".parse().unwrap(),
            path: vec!["<sip:127.0.0.1:5070;lr>".into()],
            call_id: "abc".into(),
            cseq: 3,
        };
        let records = vec![
            BindingRecord {
                contact_uri: "tel:+1555".into(),
                ..good.clone()
            },
            BindingRecord {
                contact_uri: "sip:".into(),
                ..good.clone()
            },
            BindingRecord {
                call_id: "a b".into(),
                ..good.clone()
            },
            BindingRecord {
                expires_unix: 1000,
                ..good.clone()
            },
            BindingRecord {
                expires_unix: u64::MAX,
                ..good.clone()
            },
            BindingRecord {
                contact_uri: "sip:101@192.0.2.2".into(),
                ..good.clone()
            },
        ];
        let report = loc.import(t0, 1000, Duration::from_secs(7200), records);
        assert_eq!(report.restored, 1);
        assert_eq!(report.expired, 1);
        let reasons: Vec<_> = report.rejected.iter().map(|r| r.reason.clone()).collect();
        assert_eq!(reasons[0], ImportError::NotSipContact);
        assert!(matches!(reasons[1], ImportError::BadContactUri(_)));
        assert_eq!(reasons[2], ImportError::BadCallId);
        assert_eq!(reasons[3], ImportError::TooManyBindings { max: 1 });
        // The far-future expiry was capped.
        let b = loc.lookup(t0, a.tenant, "101").next().unwrap();
        assert_eq!(b.remaining(t0), Duration::from_secs(7200));
        assert_eq!(b.path, ["<sip:127.0.0.1:5070;lr>"], "the Path survives");
    }
}
