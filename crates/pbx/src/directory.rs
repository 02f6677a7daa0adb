//! The directory as the call engine reads it: tenants (each with its own SIP
//! domain) and their users (extensions).
//!
//! The store is the source of truth; the runtime fills a [`Directory`] from it
//! at start-up and applies every provisioning change to it, so the sans-IO
//! cores look users up with a plain function call and never wait on SQL.
//!
//! # Decisions
//!
//! - **Domains are matched case-insensitively** (RFC 3261 §19.1.4: hosts
//!   compare without case), with a trailing dot ignored. Two tenants can never
//!   share a domain: [`Directory::upsert_tenant`] refuses it, because the
//!   domain is how a request finds its tenant.
//! - **Extensions are matched exactly.** They are the user part of a SIP URI,
//!   which is case-sensitive; in practice they are digits.
//! - Removing a tenant removes its users and its ring groups.
//! - **Ring groups share the extension space** with users (the API refuses
//!   a number used twice); should both ever exist, the user wins
//!   ([`crate::router::route`] looks users up first).

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use cdr::{Id, TenantId};

/// How long a call rings an extension before it counts as unanswered, when
/// the user has no setting of its own (SPEC §3: 30 s).
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(30);

/// An extension number: the user part of a user's SIP URI (`101` in
/// `sip:101@demo.tally.local`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Extension(String);

impl Extension {
    pub fn new(number: impl Into<String>) -> Self {
        Extension(number.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Extension {
    fn from(s: &str) -> Self {
        Extension(s.to_owned())
    }
}

/// Lets maps keyed by `Extension` be read with a `&str` (same hash as `String`).
impl Borrow<str> for Extension {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// One company: its own SIP domain, users, trunks and rules (SPEC: tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// The SIP domain its users register to, e.g. `demo.tally.local`. Also
    /// the digest realm of its challenges.
    pub domain: String,
}

/// A user of a tenant: one extension, registering from any number of devices.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub tenant_id: TenantId,
    /// The stored user's id: what its CDRs record as theirs (the extension
    /// may later belong to someone else).
    pub id: Id,
    pub extension: Extension,
    pub display_name: String,
    /// What its devices' digest answers are checked against.
    pub credentials: SipCredentials,
    /// How long a call rings this user before it rings out (SPEC §3).
    pub ring_timeout: Duration,
    /// A disabled user can neither register nor be called.
    pub enabled: bool,
    /// Where calls to this user go instead (SPEC §3, forwarding rows).
    pub forwarding: Forwarding,
    /// How many calls the user may be in at once, as caller or callee
    /// (ringing or answered); at the limit a call to it is busy. `None`:
    /// no limit.
    pub max_concurrent_calls: Option<u32>,
    /// Calls to and from this user are recorded (the media is relayed).
    pub recording: bool,
    /// The call pickup group this user belongs to (`""`: none). Group
    /// pickup (`*8`) takes a call ringing a user of the picker's group;
    /// directed pickup (`**<ext>`) one ringing `ext`, in the same group
    /// (DESIGN.md, "Call pickup").
    pub pickup_group: String,
}

/// A tenant's call pickup feature codes (DESIGN.md, "Call pickup"): what
/// a user dials to pick up a call ringing someone else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureCodes {
    /// Group pickup: a call ringing anyone of the picker's pickup group.
    pub group_pickup: String,
    /// Directed pickup: this prefix, then the extension ringing.
    pub directed_pickup: String,
    /// A queue agent logs in to all its queues (the code alone) or to one
    /// (the code, then the queue's number).
    pub agent_login: String,
    /// The same, to log out.
    pub agent_logout: String,
}

impl Default for FeatureCodes {
    fn default() -> Self {
        FeatureCodes {
            group_pickup: "*8".to_owned(),
            directed_pickup: "**".to_owned(),
            agent_login: "*45".to_owned(),
            agent_logout: "*46".to_owned(),
        }
    }
}

/// What a dialled number asks for, when it is a feature code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Pick up a call ringing the picker's pickup group.
    GroupPickup,
    /// Pick up a call ringing this extension.
    DirectedPickup(String),
    /// The caller logs in (`true`) or out of this queue (`None`: every
    /// queue it is an agent of).
    AgentLogin(bool, Option<String>),
}

impl FeatureCodes {
    /// The feature `dialled` asks for (the group code first), if any.
    pub fn feature(&self, dialled: &str) -> Option<Feature> {
        if !self.group_pickup.is_empty() && dialled == self.group_pickup {
            return Some(Feature::GroupPickup);
        }
        for (code, on) in [(&self.agent_login, true), (&self.agent_logout, false)] {
            match dialled.strip_prefix(code.as_str()) {
                Some("") if !code.is_empty() => return Some(Feature::AgentLogin(on, None)),
                Some(queue) if !code.is_empty() && queue.bytes().all(|b| b.is_ascii_digit()) => {
                    return Some(Feature::AgentLogin(on, Some(queue.to_owned())));
                }
                _ => {}
            }
        }
        match dialled.strip_prefix(self.directed_pickup.as_str()) {
            Some(ext) if !self.directed_pickup.is_empty() && !ext.is_empty() => {
                Some(Feature::DirectedPickup(ext.to_owned()))
            }
            _ => None,
        }
    }
}

/// When a forwarding rule applies (the stored rule's `condition`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ForwardCondition {
    /// Every call: the user's devices are not rung.
    Always,
    /// Every device refused the call (486, 600, 603).
    Busy,
    /// The user's ring timeout passed with nobody answering.
    NoAnswer,
    /// No device can be reached: no live binding, or every device failed
    /// with 408, 480, 503 or a transport error.
    Unavailable,
}

impl ForwardCondition {
    /// The stored spelling (`crate::provision::forwarding` in the binary
    /// writes these).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "always" => Some(ForwardCondition::Always),
            "busy" => Some(ForwardCondition::Busy),
            "no_answer" => Some(ForwardCondition::NoAnswer),
            "unavailable" => Some(ForwardCondition::Unavailable),
            _ => None,
        }
    }
}

/// A user's enabled forwarding rules: at most one destination per
/// condition. A destination is a number (an extension of the tenant, or an
/// external number) or a `sip:` URI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarding {
    rules: Vec<(ForwardCondition, String)>,
}

impl Forwarding {
    /// Sets (or, with `None`, clears) the destination for `condition`.
    pub fn set(&mut self, condition: ForwardCondition, destination: Option<String>) {
        self.rules.retain(|(c, _)| *c != condition);
        if let Some(d) = destination.filter(|d| !d.is_empty()) {
            self.rules.push((condition, d));
        }
    }

    /// Builder form of [`Forwarding::set`].
    pub fn with(mut self, condition: ForwardCondition, destination: &str) -> Self {
        self.set(condition, Some(destination.to_owned()));
        self
    }

    /// Where calls go when `condition` holds, if the user forwards them.
    pub fn to(&self, condition: ForwardCondition) -> Option<&str> {
        self.rules
            .iter()
            .find(|(c, _)| *c == condition)
            .map(|(_, d)| d.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every destination the rules name, whatever the condition.
    pub fn destinations(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|(_, d)| d.as_str())
    }
}

/// How a ring group rings its members (the stored `strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingStrategy {
    /// Every member's devices at once; the first to answer wins.
    RingAll,
    /// One member at a time, in order, `member_timeout` each.
    Hunt,
    /// Like hunt, but starting after the member who answered the group's
    /// last answered call.
    RoundRobin,
}

impl RingStrategy {
    /// The stored spelling (`ring_all`, `hunt`, `round_robin`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ring_all" => Some(RingStrategy::RingAll),
            "hunt" => Some(RingStrategy::Hunt),
            "round_robin" => Some(RingStrategy::RoundRobin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RingStrategy::RingAll => "ring_all",
            RingStrategy::Hunt => "hunt",
            RingStrategy::RoundRobin => "round_robin",
        }
    }
}

/// A ring group of a tenant: a number in the extension space that rings
/// some of the tenant's users (SPEC §3, "ring group").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingGroup {
    pub tenant_id: TenantId,
    pub number: Extension,
    pub name: String,
    pub strategy: RingStrategy,
    /// Extensions of the tenant, in ringing order.
    pub members: Vec<Extension>,
    /// How long hunt and round robin ring each member.
    pub member_timeout: Duration,
    /// How long the group rings in all before the no-answer destination.
    pub timeout: Duration,
    /// Where an unanswered call goes (an extension or another group of
    /// the tenant); `None`: the caller hears `480`.
    pub no_answer: Option<String>,
}

/// A user's SIP password as the PBX keeps it: the digest HA1s,
/// `H(extension:realm:password)` for MD5 and SHA-256 (RFC 7616), and the
/// realm they answer. Never the password: the store has none (DESIGN.md,
/// "SIP passwords are stored as digest HA1s").
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SipCredentials {
    pub realm: String,
    pub md5_ha1: String,
    pub sha256_ha1: String,
}

impl SipCredentials {
    /// The HA1s of `password` for `username` (the extension) in `realm`
    /// (the tenant's domain): what provisioning stores.
    pub fn from_password(username: &str, realm: &str, password: &str) -> Self {
        use sip::auth::{DigestHash, ha1};
        SipCredentials {
            realm: realm.to_owned(),
            md5_ha1: ha1(DigestHash::Md5, username, realm, password),
            sha256_ha1: ha1(DigestHash::Sha256, username, realm, password),
        }
    }

    /// Whether these answer challenges of `realm` (a tenant whose domain
    /// changed needs its users' passwords again; none set: never).
    pub fn answer(&self, realm: &str) -> bool {
        !self.md5_ha1.is_empty() && self.realm.eq_ignore_ascii_case(realm)
    }

    /// The secret a digest of `hash` is checked against.
    pub fn secret(&self, hash: sip::auth::DigestHash) -> sip::auth::UserSecret<'_> {
        match hash {
            sip::auth::DigestHash::Md5 => sip::auth::UserSecret::Md5Ha1(&self.md5_ha1),
            sip::auth::DigestHash::Sha256 => sip::auth::UserSecret::Sha256Ha1(&self.sha256_ha1),
        }
    }
}

/// Each HA1 is as good as the password for its realm: out of logs.
impl fmt::Debug for SipCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipCredentials")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// The credentials stay out of logs.
impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("tenant_id", &self.tenant_id)
            .field("id", &self.id)
            .field("extension", &self.extension)
            .field("display_name", &self.display_name)
            .field("ring_timeout", &self.ring_timeout)
            .field("enabled", &self.enabled)
            .field("forwarding", &self.forwarding)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("recording", &self.recording)
            .field("pickup_group", &self.pickup_group)
            .finish_non_exhaustive()
    }
}

/// Why a directory change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("domain {domain:?} already belongs to tenant {owner}")]
    DomainTaken { domain: String, owner: TenantId },
    #[error("tenant domain is empty")]
    EmptyDomain,
    #[error("tenant {0} does not exist")]
    UnknownTenant(TenantId),
}

/// Tenants and users, in memory, indexed the way SIP requests look them up.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    tenants: HashMap<TenantId, Tenant>,
    /// Normalised domain → tenant.
    by_domain: HashMap<String, TenantId>,
    users: HashMap<TenantId, HashMap<Extension, User>>,
    groups: HashMap<TenantId, HashMap<Extension, RingGroup>>,
    /// Feature codes of tenants that set their own.
    features: HashMap<TenantId, FeatureCodes>,
    /// Tenants whose every call is recorded (their `recording` flag).
    recorded: HashSet<TenantId>,
    /// IVRs and queues (`crate::apps`).
    ivrs: crate::apps::ByNumber<crate::apps::Ivr>,
    queues: crate::apps::ByNumber<crate::apps::Queue>,
}

/// The form domains are compared in: lower case, no trailing dot.
pub(crate) fn normalise_domain(domain: &str) -> String {
    domain.trim_end_matches('.').to_ascii_lowercase()
}

impl Directory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tenant or replaces the one with the same id (its users stay).
    pub fn upsert_tenant(&mut self, tenant: Tenant) -> Result<(), DirectoryError> {
        let domain = normalise_domain(&tenant.domain);
        if domain.is_empty() {
            return Err(DirectoryError::EmptyDomain);
        }
        if let Some(&owner) = self.by_domain.get(&domain)
            && owner != tenant.id
        {
            return Err(DirectoryError::DomainTaken {
                domain: tenant.domain,
                owner,
            });
        }
        if let Some(old) = self.tenants.get(&tenant.id) {
            self.by_domain.remove(&normalise_domain(&old.domain));
        }
        self.by_domain.insert(domain, tenant.id);
        self.tenants.insert(tenant.id, tenant);
        Ok(())
    }

    /// Removes a tenant and all its users.
    pub fn remove_tenant(&mut self, id: TenantId) -> Option<Tenant> {
        let tenant = self.tenants.remove(&id)?;
        self.by_domain.remove(&normalise_domain(&tenant.domain));
        self.users.remove(&id);
        self.groups.remove(&id);
        self.features.remove(&id);
        self.recorded.remove(&id);
        self.ivrs.remove_tenant(id);
        self.queues.remove_tenant(id);
        Some(tenant)
    }

    /// Adds a user or replaces the one with the same extension.
    pub fn upsert_user(&mut self, user: User) -> Result<(), DirectoryError> {
        if !self.tenants.contains_key(&user.tenant_id) {
            return Err(DirectoryError::UnknownTenant(user.tenant_id));
        }
        self.users
            .entry(user.tenant_id)
            .or_default()
            .insert(user.extension.clone(), user);
        Ok(())
    }

    pub fn remove_user(&mut self, tenant: TenantId, extension: &str) -> Option<User> {
        self.users.get_mut(&tenant)?.remove(extension)
    }

    /// Adds a ring group or replaces the one with the same number.
    pub fn upsert_group(&mut self, group: RingGroup) -> Result<(), DirectoryError> {
        if !self.tenants.contains_key(&group.tenant_id) {
            return Err(DirectoryError::UnknownTenant(group.tenant_id));
        }
        self.groups
            .entry(group.tenant_id)
            .or_default()
            .insert(group.number.clone(), group);
        Ok(())
    }

    pub fn remove_group(&mut self, tenant: TenantId, number: &str) -> Option<RingGroup> {
        self.groups.get_mut(&tenant)?.remove(number)
    }

    /// Adds an IVR or replaces the one with the same number.
    pub fn upsert_ivr(&mut self, ivr: crate::apps::Ivr) -> Result<(), DirectoryError> {
        if !self.tenants.contains_key(&ivr.tenant_id) {
            return Err(DirectoryError::UnknownTenant(ivr.tenant_id));
        }
        self.ivrs.upsert(ivr.tenant_id, ivr.number.clone(), ivr);
        Ok(())
    }

    /// Adds a queue or replaces the one with the same number.
    pub fn upsert_queue(&mut self, queue: crate::apps::Queue) -> Result<(), DirectoryError> {
        if !self.tenants.contains_key(&queue.tenant_id) {
            return Err(DirectoryError::UnknownTenant(queue.tenant_id));
        }
        self.queues
            .upsert(queue.tenant_id, queue.number.clone(), queue);
        Ok(())
    }

    pub fn remove_queue(&mut self, tenant: TenantId, number: &str) -> Option<crate::apps::Queue> {
        self.queues.remove(tenant, number)
    }

    /// The queue numbered `number` in `tenant`.
    pub fn queue(&self, tenant: TenantId, number: &str) -> Option<&crate::apps::Queue> {
        self.queues.get(tenant, number)
    }

    /// `tenant`'s queues, by number.
    pub fn queues_of(&self, tenant: TenantId) -> impl Iterator<Item = &crate::apps::Queue> {
        self.queues.of_tenant(tenant)
    }

    /// Logs agent `extension` in or out of queue `number` (a feature
    /// code); false when the queue has no such agent.
    pub fn set_agent(&mut self, tenant: TenantId, number: &str, extension: &str, on: bool) -> bool {
        let Some(q) = self.queues.get_mut(tenant, number) else {
            return false;
        };
        if !q.agents.iter().any(|a| a.as_str() == extension) {
            return false;
        }
        q.logged_in.retain(|a| a.as_str() != extension);
        if on {
            q.logged_in.push(Extension::new(extension));
        }
        true
    }

    pub fn remove_ivr(&mut self, tenant: TenantId, number: &str) -> Option<crate::apps::Ivr> {
        self.ivrs.remove(tenant, number)
    }

    /// The IVR numbered `number` in `tenant`.
    pub fn ivr(&self, tenant: TenantId, number: &str) -> Option<&crate::apps::Ivr> {
        self.ivrs.get(tenant, number)
    }

    /// Sets `tenant`'s feature codes (the defaults until then).
    pub fn set_feature_codes(&mut self, tenant: TenantId, codes: FeatureCodes) {
        self.features.insert(tenant, codes);
    }

    /// Sets `tenant`'s recording flag: every call of the tenant is
    /// recorded (not recorded until then).
    pub fn set_tenant_recording(&mut self, tenant: TenantId, recording: bool) {
        if recording {
            self.recorded.insert(tenant);
        } else {
            self.recorded.remove(&tenant);
        }
    }

    /// Whether every call of `tenant` is recorded.
    pub fn tenant_records(&self, tenant: TenantId) -> bool {
        self.recorded.contains(&tenant)
    }

    /// `tenant`'s feature codes.
    pub fn feature_codes(&self, tenant: TenantId) -> FeatureCodes {
        self.features.get(&tenant).cloned().unwrap_or_default()
    }

    /// The ring group numbered `number` in `tenant`.
    pub fn group(&self, tenant: TenantId, number: &str) -> Option<&RingGroup> {
        self.groups.get(&tenant)?.get(number)
    }

    pub fn tenant(&self, id: TenantId) -> Option<&Tenant> {
        self.tenants.get(&id)
    }

    /// The tenant whose SIP domain is `domain` (any case, trailing dot allowed).
    pub fn tenant_by_domain(&self, domain: &str) -> Option<&Tenant> {
        let id = self.by_domain.get(&normalise_domain(domain))?;
        self.tenants.get(id)
    }

    pub fn user(&self, tenant: TenantId, extension: &str) -> Option<&User> {
        self.users.get(&tenant)?.get(extension)
    }

    /// Every tenant's id (any order).
    pub fn tenant_ids(&self) -> impl Iterator<Item = TenantId> + '_ {
        self.tenants.keys().copied()
    }

    /// Every user's tenant and extension (any order): what a replacement
    /// directory is compared with to find removed users.
    pub fn user_keys(&self) -> impl Iterator<Item = (TenantId, &Extension)> + '_ {
        self.users
            .iter()
            .flat_map(|(t, users)| users.keys().map(move |e| (*t, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdr::Id;

    fn tenant(id: u64, domain: &str) -> Tenant {
        Tenant {
            id: TenantId::from(Id::from_u64(id)),
            name: format!("tenant {id}"),
            domain: domain.to_owned(),
        }
    }

    fn user(t: &Tenant, ext: &str) -> User {
        User {
            tenant_id: t.id,
            id: Id::from_u64(ext.parse().unwrap_or(1)),
            extension: ext.into(),
            display_name: format!("User {ext}"),
            credentials: SipCredentials::from_password(ext, &t.domain, "secret"),
            ring_timeout: DEFAULT_RING_TIMEOUT,
            enabled: true,
            forwarding: Forwarding::default(),
            max_concurrent_calls: None,
            recording: false,
            pickup_group: String::new(),
        }
    }

    #[test]
    fn feature_codes_name_group_and_directed_pickup() {
        let codes = FeatureCodes::default();
        assert_eq!(codes.feature("*8"), Some(Feature::GroupPickup));
        assert_eq!(
            codes.feature("**102"),
            Some(Feature::DirectedPickup("102".into()))
        );
        assert_eq!(codes.feature("**"), None);
        assert_eq!(codes.feature("102"), None);
        assert_eq!(codes.feature("*81"), None);
        assert_eq!(codes.feature("*45"), Some(Feature::AgentLogin(true, None)));
        assert_eq!(
            codes.feature("*46700"),
            Some(Feature::AgentLogin(false, Some("700".into())))
        );
        assert_eq!(codes.feature("*45x"), None);
        let own = FeatureCodes {
            group_pickup: "#5".into(),
            directed_pickup: String::new(),
            agent_login: "#7".into(),
            agent_logout: String::new(),
        };
        assert_eq!(own.feature("#5"), Some(Feature::GroupPickup));
        assert_eq!(own.feature("*8"), None);
        assert_eq!(own.feature("**102"), None);
        assert_eq!(own.feature("#7"), Some(Feature::AgentLogin(true, None)));
        assert_eq!(own.feature("*45"), None);
        let mut d = Directory::new();
        let t = tenant(1, "a.test");
        d.upsert_tenant(t.clone()).unwrap();
        assert_eq!(d.feature_codes(t.id), FeatureCodes::default());
        d.set_feature_codes(t.id, own.clone());
        assert_eq!(d.feature_codes(t.id), own);
        d.remove_tenant(t.id);
        assert_eq!(d.feature_codes(t.id), FeatureCodes::default());
    }

    #[test]
    fn domains_match_without_case_and_are_unique() {
        let mut d = Directory::new();
        let a = tenant(1, "Demo.Tally.Local");
        d.upsert_tenant(a.clone()).unwrap();
        assert_eq!(
            d.tenant_by_domain("demo.tally.local").map(|t| t.id),
            Some(a.id)
        );
        assert_eq!(
            d.tenant_by_domain("DEMO.tally.local.").map(|t| t.id),
            Some(a.id)
        );
        assert!(d.tenant_by_domain("other.local").is_none());
        assert_eq!(
            d.upsert_tenant(tenant(2, "demo.tally.local")),
            Err(DirectoryError::DomainTaken {
                domain: "demo.tally.local".into(),
                owner: a.id
            })
        );
        assert_eq!(
            d.upsert_tenant(tenant(3, ".")),
            Err(DirectoryError::EmptyDomain)
        );
        // Renaming the domain frees the old one.
        d.upsert_tenant(tenant(1, "new.tally.local")).unwrap();
        assert!(d.tenant_by_domain("demo.tally.local").is_none());
        d.upsert_tenant(tenant(2, "demo.tally.local")).unwrap();
    }

    #[test]
    fn users_belong_to_existing_tenants() {
        let mut d = Directory::new();
        let a = tenant(1, "a.local");
        let b = tenant(2, "b.local");
        assert_eq!(
            d.upsert_user(user(&a, "101")),
            Err(DirectoryError::UnknownTenant(a.id))
        );
        d.upsert_tenant(a.clone()).unwrap();
        d.upsert_tenant(b.clone()).unwrap();
        d.upsert_user(user(&a, "101")).unwrap();
        assert!(d.user(a.id, "101").is_some());
        assert!(d.user(b.id, "101").is_none(), "tenants do not share users");
        assert_eq!(
            d.remove_user(a.id, "101").map(|u| u.extension),
            Some("101".into())
        );
        d.upsert_user(user(&a, "102")).unwrap();
        d.remove_tenant(a.id);
        assert!(d.user(a.id, "102").is_none());
        assert!(d.tenant_by_domain("a.local").is_none());
    }

    #[test]
    fn groups_belong_to_existing_tenants_and_leave_with_them() {
        let mut d = Directory::new();
        let a = tenant(1, "a.local");
        let group = RingGroup {
            tenant_id: a.id,
            number: "600".into(),
            name: "Sales".into(),
            strategy: RingStrategy::Hunt,
            members: vec!["101".into()],
            member_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            no_answer: None,
        };
        assert_eq!(
            d.upsert_group(group.clone()),
            Err(DirectoryError::UnknownTenant(a.id))
        );
        d.upsert_tenant(a.clone()).unwrap();
        d.upsert_group(group.clone()).unwrap();
        assert_eq!(d.group(a.id, "600"), Some(&group));
        assert!(d.user(a.id, "600").is_none(), "a group is not a user");
        d.remove_tenant(a.id);
        assert!(d.group(a.id, "600").is_none());
        for s in [
            RingStrategy::RingAll,
            RingStrategy::Hunt,
            RingStrategy::RoundRobin,
        ] {
            assert_eq!(RingStrategy::parse(s.as_str()), Some(s));
        }
        assert_eq!(RingStrategy::parse("random"), None);
    }

    #[test]
    fn debug_hides_the_password() {
        let t = tenant(1, "a.local");
        let text = format!("{:?}", user(&t, "101"));
        assert!(!text.contains("secret"), "{text}");
    }
}
