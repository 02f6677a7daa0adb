//! Trunks and their routing rules as the call engine reads them: the
//! tenant's carriers, the DIDs each one delivers, and the ordered outbound
//! rules (DESIGN.md: `pbx` directory, "trunks, rules").
//!
//! Like the users of [`crate::directory`], the store is the source of
//! truth: the runtime fills a [`Trunks`] from it at start-up and replaces
//! a tenant's part after every provisioning change, so routing
//! ([`crate::routing`]) is a plain function call that never waits on SQL.
//!
//! # Decisions
//!
//! - **A tenant's trunks and rules are replaced together**
//!   ([`Trunks::replace_tenant`]): a rule always names trunks of the same
//!   load, never a half-applied change.
//! - **Where a carrier's INVITE comes from identifies the trunk.** `ip`
//!   trunks list their source networks (and optionally a port); a
//!   `register` trunk's carrier sends from the addresses its host resolves
//!   to, which the runtime writes with [`Trunks::set_resolved`], or names
//!   in its Request-URI the Contact the PBX registered
//!   ([`contact_user`]: an unguessable token per trunk, so a carrier
//!   calling from another address than its registrar's is still known,
//!   and nobody else is).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use cdr::{Id, TenantId};

use crate::directory::Extension;
use crate::routing::DialPattern;

/// A trunk's id (the store's row id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrunkId(pub Id);

impl fmt::Display for TrunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How the PBX and the carrier know each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrunkKind {
    /// The PBX registers to the carrier with digest credentials.
    Register,
    /// The carrier sends from known addresses; no registration.
    Ip,
}

impl TrunkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrunkKind::Register => "register",
            TrunkKind::Ip => "ip",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [TrunkKind::Register, TrunkKind::Ip]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// The transport the PBX uses toward the carrier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrunkTransport {
    Udp,
    Tcp,
}

impl TrunkTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            TrunkTransport::Udp => "udp",
            TrunkTransport::Tcp => "tcp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [TrunkTransport::Udp, TrunkTransport::Tcp]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// An address or a network (`203.0.113.7`, `198.51.100.0/24`,
/// `2001:db8::/32`) a carrier sends from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceNet {
    network: IpAddr,
    prefix: u8,
}

/// Why a source network does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceNetError {
    #[error("{0:?} is not an IP address")]
    Address(String),
    #[error("{0:?} is not a prefix length")]
    Prefix(String),
    #[error("prefix /{prefix} is longer than the address ({max} bits)")]
    PrefixTooLong { prefix: u8, max: u8 },
    #[error("{0} has bits set after its prefix (did you mean {1}?)")]
    HostBits(String, String),
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    let all = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    if prefix == 0 {
        0
    } else {
        all & !((1u128 << (width - prefix)) - 1)
    }
}

impl SourceNet {
    /// Whether `ip` is in the network. An IPv4-mapped IPv6 source
    /// (`::ffff:203.0.113.7`, what a dual-stack socket reports) counts as
    /// its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (net, width) = bits(self.network);
        let (addr, addr_width) = bits(ip);
        width == addr_width && (addr & mask(self.prefix, width)) == net
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl FromStr for SourceNet {
    type Err = SourceNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| SourceNetError::Address(addr.to_owned()))?;
        let (value, width) = bits(network);
        let prefix = match prefix {
            None => width,
            Some(p) => p
                .parse::<u8>()
                .map_err(|_| SourceNetError::Prefix(p.to_owned()))?,
        };
        if prefix > width {
            return Err(SourceNetError::PrefixTooLong { prefix, max: width });
        }
        if value & !mask(prefix, width) != 0 {
            let masked = value & mask(prefix, width);
            let base = match network {
                IpAddr::V4(_) => IpAddr::from((masked as u32).to_be_bytes()),
                IpAddr::V6(_) => IpAddr::from(masked.to_be_bytes()),
            };
            return Err(SourceNetError::HostBits(
                s.to_owned(),
                format!("{base}/{prefix}"),
            ));
        }
        Ok(SourceNet { network, prefix })
    }
}

impl fmt::Display for SourceNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (_, width) = bits(self.network);
        if self.prefix == width {
            write!(f, "{}", self.network)
        } else {
            write!(f, "{}/{}", self.network, self.prefix)
        }
    }
}

/// One carrier account of a tenant.
#[derive(Clone, PartialEq, Eq)]
pub struct Trunk {
    pub id: TrunkId,
    pub tenant_id: TenantId,
    /// Unique in the tenant; the CDR's `trunk_name`.
    pub name: String,
    pub kind: TrunkKind,
    /// The carrier's host name or address, and where its SIP listens.
    pub host: String,
    pub port: u16,
    pub transport: TrunkTransport,
    /// The user part of the From and of the registration's To.
    pub username: String,
    /// The digest user name, when the carrier's differs from `username`.
    pub auth_username: String,
    /// The PBX's password toward the carrier (not a user's: it must be
    /// usable to answer challenges, so it is kept as given).
    pub password: String,
    /// The digest realm to answer; empty: whatever the carrier offers.
    pub realm: String,
    /// The host of the From; empty: `host`.
    pub from_domain: String,
    /// The caller ID presented when neither the rule nor the user has one.
    pub caller_id: String,
    /// Country code stripped from inbound numbers (`33`; empty: none).
    pub country_code: String,
    /// Calls at once through this trunk, in and out; `None`: no limit.
    pub max_calls: Option<u32>,
    /// Where requests go instead of `host` (`host[:port]`).
    pub outbound_proxy: Option<String>,
    /// `ip` trunks: the networks the carrier sends from.
    pub sources: Vec<SourceNet>,
    /// `ip` trunks: the carrier's source port; `None`: any.
    pub source_port: Option<u16>,
    /// Registration lifetime asked of the carrier, seconds.
    pub register_expires: u32,
    /// A disabled trunk neither registers nor carries calls.
    pub enabled: bool,
}

impl Trunk {
    /// The digest user name to answer challenges with.
    pub fn auth_user(&self) -> &str {
        if self.auth_username.is_empty() {
            &self.username
        } else {
            &self.auth_username
        }
    }

    /// The host of the From header (and of the registration's AOR).
    pub fn from_host(&self) -> &str {
        if self.from_domain.is_empty() {
            &self.host
        } else {
            &self.from_domain
        }
    }
}

/// The password stays out of logs.
impl fmt::Debug for Trunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trunk")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// The user part of the Contact a `register` trunk registers
/// (`t` and 16 hex digits): derived from the trunk's id and password
/// (SHA-256), so it is stable across restarts and re-registrations and
/// cannot be guessed without the password. A carrier calling it names
/// the trunk; the engine takes such an INVITE as that trunk's whatever
/// its source address ([`crate::routing::route_inbound`]).
pub fn contact_user(trunk: &Trunk) -> String {
    let hash = sip::auth::ha1(
        sip::auth::DigestHash::Sha256,
        "tally-trunk-contact",
        &trunk.id.to_string(),
        &trunk.password,
    );
    format!("t{}", &hash[..16])
}

/// How a DID rule compares the called number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DidMatch {
    /// The whole number.
    Exact,
    /// Numbers starting with it (a block of DIDs).
    Prefix,
}

impl DidMatch {
    pub fn as_str(self) -> &'static str {
        match self {
            DidMatch::Exact => "exact",
            DidMatch::Prefix => "prefix",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [DidMatch::Exact, DidMatch::Prefix]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// Where an inbound call goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundDestination {
    /// An extension of the tenant.
    Extension(Extension),
    /// A ring group of the tenant, by its number (one number space with
    /// the extensions, so the router finds it the same way).
    RingGroup(Extension),
    /// A number outside the PBX, as dialled by an extension: the call
    /// leaves again by the tenant's outbound rules (`in2out`).
    External(String),
}

impl InboundDestination {
    /// The number the call is routed to.
    pub fn number(&self) -> &str {
        match self {
            InboundDestination::Extension(n) | InboundDestination::RingGroup(n) => n.as_str(),
            InboundDestination::External(n) => n,
        }
    }
}

/// A DID (or block of DIDs) of a trunk and where its calls go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundRule {
    pub id: Id,
    pub trunk_id: TrunkId,
    /// In the trunk's normalised form ([`crate::routing::normalise`]).
    pub did: String,
    pub matching: DidMatch,
    pub destination: InboundDestination,
}

/// One outbound rule of a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundRule {
    pub id: Id,
    pub name: String,
    pub pattern: DialPattern,
    /// Only calls from these extensions; empty: from any.
    pub from_extensions: Vec<Extension>,
    /// Leading characters removed from the dialled number.
    pub strip: usize,
    /// Put in front after stripping.
    pub prepend: String,
    /// Tried in this order.
    pub trunks: Vec<TrunkId>,
    /// The caller ID presented; empty: the user's, else the trunk's.
    pub caller_id: String,
}

/// One user's outbound settings (`users.outbound_allowed`,
/// `users.outbound_caller_id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserOutbound {
    pub allowed: bool,
    /// Presented on outbound calls when the rule has none; empty: the
    /// trunk's.
    pub caller_id: String,
}

impl Default for UserOutbound {
    /// New users may dial out (the column's default).
    fn default() -> Self {
        UserOutbound {
            allowed: true,
            caller_id: String::new(),
        }
    }
}

/// Who of a tenant may dial out, and how many at once: outbound routing's
/// own view of users and the tenant (DESIGN.md, "Who may dial out").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// `tenants.max_outbound_calls`; `None`: no limit.
    pub max_outbound_calls: Option<u32>,
    /// Users whose settings differ from [`UserOutbound::default`].
    pub users: HashMap<Extension, UserOutbound>,
}

impl OutboundPolicy {
    /// `extension`'s settings (the defaults for a user not listed).
    pub fn user(&self, extension: &str) -> UserOutbound {
        self.users.get(extension).cloned().unwrap_or_default()
    }
}

/// Calls in progress per trunk, and outbound calls per tenant: kept by
/// the engine from what each session says it holds, read when a call is
/// routed (a trunk at `max_calls` is skipped, a tenant at
/// `max_outbound_calls` refused).
#[derive(Clone, Debug, Default)]
pub struct TrunkCalls {
    per_trunk: HashMap<TrunkId, u32>,
    outbound: HashMap<TenantId, u32>,
    /// Trunks the runtime's live side reports down (registration failed,
    /// or OPTIONS keep-alives unanswered): skipped by outbound routing
    /// before any INVITE, like a trunk at its limit.
    down: std::collections::HashSet<TrunkId>,
}

impl TrunkCalls {
    /// Calls through `trunk` now, in and out.
    pub fn of(&self, trunk: TrunkId) -> u32 {
        self.per_trunk.get(&trunk).copied().unwrap_or(0)
    }

    /// Outbound calls of `tenant` now.
    pub fn outbound(&self, tenant: TenantId) -> u32 {
        self.outbound.get(&tenant).copied().unwrap_or(0)
    }

    /// Whether `trunk` is at its `max_calls`.
    pub fn at_limit(&self, trunk: &Trunk) -> bool {
        trunk.max_calls.is_some_and(|max| self.of(trunk.id) >= max)
    }

    /// Whether the live side reports `trunk` down.
    pub fn is_down(&self, trunk: TrunkId) -> bool {
        self.down.contains(&trunk)
    }

    /// What outbound routing makes of `trunk` now.
    pub fn availability(&self, trunk: &Trunk) -> crate::routing::outbound::Availability {
        use crate::routing::outbound::Availability;
        if self.is_down(trunk.id) {
            Availability::Down
        } else if self.at_limit(trunk) {
            Availability::AtLimit
        } else {
            Availability::Available
        }
    }

    /// The live side's word on `trunk`.
    pub(crate) fn set_down(&mut self, trunk: TrunkId, down: bool) {
        if down {
            self.down.insert(trunk);
        } else {
            self.down.remove(&trunk);
        }
    }

    /// Forgets trunks no longer provisioned.
    pub(crate) fn keep_only(&mut self, trunks: &Trunks) {
        self.down.retain(|id| trunks.all().any(|t| t.id == *id));
    }

    /// One more (`add`) or one less call through `trunk`.
    pub(crate) fn trunk(&mut self, trunk: TrunkId, add: bool) {
        step(&mut self.per_trunk, trunk, add);
    }

    /// One more or one less outbound call of `tenant`.
    pub(crate) fn tenant(&mut self, tenant: TenantId, add: bool) {
        step(&mut self.outbound, tenant, add);
    }

    /// No call through any trunk.
    pub fn is_empty(&self) -> bool {
        self.per_trunk.is_empty() && self.outbound.is_empty()
    }
}

fn step<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K, add: bool) {
    if add {
        *map.entry(key).or_default() += 1;
    } else if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

/// Every tenant's trunks and rules, indexed for routing.
#[derive(Clone, Debug, Default)]
pub struct Trunks {
    trunks: HashMap<TrunkId, Trunk>,
    by_tenant: HashMap<TenantId, Vec<TrunkId>>,
    /// Per trunk.
    inbound: HashMap<TrunkId, Vec<InboundRule>>,
    /// Per tenant, in evaluation order.
    outbound: HashMap<TenantId, Vec<OutboundRule>>,
    /// `register` trunks: the addresses their host resolved to.
    resolved: HashMap<TrunkId, Vec<IpAddr>>,
    /// Where INVITEs to a trunk go when its host (or outbound proxy) is a
    /// name: what the runtime resolved (SRV targets in RFC 3263 order,
    /// then each one's addresses).
    destinations: HashMap<TrunkId, Vec<SocketAddr>>,
    /// `register` trunks by the user part of the Contact they register
    /// ([`contact_user`]).
    contacts: HashMap<String, TrunkId>,
    /// Per tenant.
    policies: HashMap<TenantId, OutboundPolicy>,
}

impl Trunks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces everything of `tenant`: its trunks, their DID rules and
    /// its outbound rules (in order). Resolved addresses of trunks that
    /// stay are kept.
    pub fn replace_tenant(
        &mut self,
        tenant: TenantId,
        trunks: Vec<Trunk>,
        inbound: Vec<InboundRule>,
        outbound: Vec<OutboundRule>,
    ) {
        let kept: Vec<TrunkId> = trunks.iter().map(|t| t.id).collect();
        for id in self.by_tenant.remove(&tenant).unwrap_or_default() {
            if let Some(old) = self.trunks.remove(&id) {
                self.contacts.remove(&contact_user(&old));
            }
            self.inbound.remove(&id);
            if !kept.contains(&id) {
                self.resolved.remove(&id);
                self.destinations.remove(&id);
            }
        }
        for trunk in trunks.into_iter().filter(|t| t.tenant_id == tenant) {
            self.by_tenant.entry(tenant).or_default().push(trunk.id);
            if trunk.kind == TrunkKind::Register {
                self.contacts.insert(contact_user(&trunk), trunk.id);
            }
            self.trunks.insert(trunk.id, trunk);
        }
        for rule in inbound {
            if self.trunks.contains_key(&rule.trunk_id) {
                self.inbound.entry(rule.trunk_id).or_default().push(rule);
            }
        }
        self.outbound.insert(tenant, outbound);
    }

    /// Forgets a tenant's trunks and rules.
    pub fn remove_tenant(&mut self, tenant: TenantId) {
        self.replace_tenant(tenant, Vec::new(), Vec::new(), Vec::new());
        self.outbound.remove(&tenant);
        self.policies.remove(&tenant);
    }

    /// Sets who of `tenant` may dial out.
    pub fn set_outbound_policy(&mut self, tenant: TenantId, policy: OutboundPolicy) {
        self.policies.insert(tenant, policy);
    }

    /// `tenant`'s outbound settings, `None` when it has none stored (every
    /// user may dial out, no limit).
    pub fn outbound_policy(&self, tenant: TenantId) -> Option<&OutboundPolicy> {
        self.policies.get(&tenant)
    }

    /// Records where INVITEs to trunk `id` go (its host or outbound proxy,
    /// resolved by the runtime), in the order to try them.
    pub fn set_destinations(&mut self, id: TrunkId, addresses: Vec<SocketAddr>) {
        if self.trunks.contains_key(&id) && !addresses.is_empty() {
            self.destinations.insert(id, addresses);
        }
    }

    /// Where INVITEs to `trunk` go, in the order to try them (an outbound
    /// call fails over from one to the next like from one trunk to the
    /// next): its outbound proxy, else its host and port, when written as
    /// an address; else what the runtime resolved
    /// ([`Trunks::set_destinations`]); empty when nothing is known yet.
    pub fn destinations(&self, trunk: &Trunk) -> Vec<SocketAddr> {
        match self.literal_destination(trunk) {
            Some(address) => vec![address],
            None => self
                .destinations
                .get(&trunk.id)
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The first of [`Trunks::destinations`].
    pub fn destination(&self, trunk: &Trunk) -> Option<SocketAddr> {
        self.destinations(trunk).first().copied()
    }

    /// The `register` trunk whose registered Contact has `user` as user
    /// part ([`contact_user`]), if it is enabled.
    pub fn by_contact_user(&self, user: &str) -> Option<&Trunk> {
        self.contacts
            .get(user)
            .and_then(|id| self.trunks.get(id))
            .filter(|t| t.enabled)
    }

    fn literal_destination(&self, trunk: &Trunk) -> Option<SocketAddr> {
        match &trunk.outbound_proxy {
            Some(proxy) => proxy.parse::<SocketAddr>().ok().or_else(|| {
                proxy
                    .parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, 5060))
            }),
            None => trunk
                .host
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, trunk.port)),
        }
    }

    /// Records what a `register` trunk's host resolves to now.
    pub fn set_resolved(&mut self, id: TrunkId, addresses: Vec<IpAddr>) {
        if self.trunks.contains_key(&id) {
            self.resolved.insert(id, addresses);
        }
    }

    pub fn trunk(&self, id: TrunkId) -> Option<&Trunk> {
        self.trunks.get(&id)
    }

    /// A tenant's trunks (any order).
    pub fn of_tenant(&self, tenant: TenantId) -> impl Iterator<Item = &Trunk> + '_ {
        self.by_tenant
            .get(&tenant)
            .into_iter()
            .flatten()
            .filter_map(|id| self.trunks.get(id))
    }

    /// Every trunk (any order): what the registration client walks.
    pub fn all(&self) -> impl Iterator<Item = &Trunk> + '_ {
        self.trunks.values()
    }

    pub fn inbound_rules(&self, trunk: TrunkId) -> &[InboundRule] {
        self.inbound.get(&trunk).map_or(&[], Vec::as_slice)
    }

    pub fn outbound_rules(&self, tenant: TenantId) -> &[OutboundRule] {
        self.outbound.get(&tenant).map_or(&[], Vec::as_slice)
    }

    /// How specifically an enabled trunk claims a source (longer network
    /// prefix first), or `None` when it does not.
    pub(crate) fn source_match(&self, trunk: &Trunk, source: SocketAddr) -> Option<u8> {
        if !trunk.enabled {
            return None;
        }
        match trunk.kind {
            TrunkKind::Ip => {
                if trunk.source_port.is_some_and(|p| p != source.port()) {
                    return None;
                }
                trunk
                    .sources
                    .iter()
                    .filter(|net| net.contains(source.ip()))
                    .map(SourceNet::prefix)
                    .max()
            }
            TrunkKind::Register => {
                let ip = match source.ip() {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(source.ip(), IpAddr::V4),
                    v4 => v4,
                };
                let literal = trunk.host.parse::<IpAddr>().ok() == Some(ip);
                let resolved = self
                    .resolved
                    .get(&trunk.id)
                    .is_some_and(|list| list.contains(&ip));
                (literal || resolved).then_some(128)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> SourceNet {
        s.parse().unwrap()
    }

    #[test]
    fn source_networks_contain_their_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(net("198.51.100.0/24").contains(ip("198.51.100.77")));
        assert!(!net("198.51.100.0/24").contains(ip("198.51.101.1")));
        assert!(net("203.0.113.7").contains(ip("203.0.113.7")));
        assert!(!net("203.0.113.7").contains(ip("203.0.113.8")));
        assert!(net("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(
            !net("0.0.0.0/0").contains(ip("2001:db8::1")),
            "families differ"
        );
        assert!(net("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(
            net("203.0.113.7").contains(ip("::ffff:203.0.113.7")),
            "mapped IPv4 counts as IPv4"
        );
        assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(net("10.0.0.1").to_string(), "10.0.0.1");
    }

    #[test]
    fn malformed_source_networks_are_refused() {
        let e = |s: &str| s.parse::<SourceNet>().unwrap_err();
        assert_eq!(
            e("carrier.example"),
            SourceNetError::Address("carrier.example".into())
        );
        assert_eq!(e("10.0.0.0/x"), SourceNetError::Prefix("x".into()));
        assert_eq!(
            e("10.0.0.0/33"),
            SourceNetError::PrefixTooLong {
                prefix: 33,
                max: 32
            }
        );
        assert_eq!(
            e("10.0.0.1/8"),
            SourceNetError::HostBits("10.0.0.1/8".into(), "10.0.0.0/8".into())
        );
    }
}
