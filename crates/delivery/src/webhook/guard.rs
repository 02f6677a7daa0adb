//! The SSRF guard: a tenant's URL must not reach the PBX's own network.
//!
//! Every attempt resolves the host (A and AAAA), drops every address in a
//! non-public range, and dials only a survivor: the address checked is the
//! address connected to, so DNS rebinding between check and connect is
//! impossible, and redirects are never followed. The system admin can
//! allow-list CIDRs (`[webhooks] allow = ["127.0.0.1/32"]`) for on-premises
//! receivers; the tests use it for loopback.
//!
//! Refused: IPv4 0/8, 10/8, 100.64/10 (CGNAT, incl. 100.100.100.200
//! metadata), 127/8, 169.254/16 (link-local, incl. 169.254.169.254
//! metadata), 172.16/12, 192.0.0/24, 192.0.2/24, 192.88.99/24, 192.168/16,
//! 198.18/15, 198.51.100/24, 203.0.113/24, 224/4 (multicast), 240/4 (incl.
//! broadcast). IPv6 ::, ::1, ::/96 (IPv4-compatible), 64:ff9b:1::/48,
//! 100::/64, 2001::/23, 2001:db8::/32, fc00::/7 (ULA, incl. fd00:ec2::254
//! metadata), fe80::/10, fec0::/10, ff00::/8. Forms that embed an IPv4
//! address are judged by that address: IPv4-mapped ::ffff:a.b.c.d, NAT64
//! 64:ff9b::a.b.c.d, 6to4 2002:AABB:CCDD::.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;

/// One CIDR block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// `addr/prefix`, the spelling [`Cidr::from_str`] reads back.
impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (a >> shift) == (b >> shift)
}

/// Why an allow-list entry is not an address or a CIDR block.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IP address or CIDR")]
    NotAnAddress(String),
    #[error("{input:?}: prefix must be 0 to {max}")]
    Prefix { input: String, max: u8 },
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `a.b.c.d/n`, `x::y/n`, or a bare address (a /32 or /128).
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = canonical(
            IpAddr::from_str(addr.trim()).map_err(|_| CidrError::NotAnAddress(s.to_owned()))?,
        );
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| CidrError::Prefix {
                    input: s.to_owned(),
                    max,
                })?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

/// The system admin's exceptions to the guard.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList(pub Vec<Cidr>);

impl AllowList {
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, CidrError> {
        items
            .iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<_, _>>()
            .map(AllowList)
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// This list's blocks followed by `other`'s.
    pub fn with(&self, other: &AllowList) -> AllowList {
        AllowList(self.0.iter().chain(&other.0).copied().collect())
    }
}

/// IPv4-mapped IPv6 addresses as the IPv4 address they are.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Why `ip` may not be dialled, or `None` for a public address.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn in4(ip: Ipv4Addr, net: [u8; 4], prefix: u8) -> bool {
    prefix_eq(
        u32::from(Ipv4Addr::from(net)).into(),
        u32::from(ip).into(),
        prefix,
        32,
    )
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u8, &str)] = &[
        ([0, 0, 0, 0], 8, "unspecified (0/8)"),
        ([10, 0, 0, 0], 8, "private (10/8)"),
        ([100, 64, 0, 0], 10, "shared CGNAT (100.64/10)"),
        ([127, 0, 0, 0], 8, "loopback (127/8)"),
        ([169, 254, 0, 0], 16, "link-local or metadata (169.254/16)"),
        ([172, 16, 0, 0], 12, "private (172.16/12)"),
        ([192, 0, 0, 0], 24, "IETF protocol assignments (192.0.0/24)"),
        ([192, 0, 2, 0], 24, "documentation (192.0.2/24)"),
        ([192, 88, 99, 0], 24, "6to4 relay (192.88.99/24)"),
        ([192, 168, 0, 0], 16, "private (192.168/16)"),
        ([198, 18, 0, 0], 15, "benchmarking (198.18/15)"),
        ([198, 51, 100, 0], 24, "documentation (198.51.100/24)"),
        ([203, 0, 113, 0], 24, "documentation (203.0.113/24)"),
        ([224, 0, 0, 0], 4, "multicast (224/4)"),
        ([240, 0, 0, 0], 4, "reserved or broadcast (240/4)"),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in4(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    let in6 = |net: u128, prefix: u8| prefix_eq(net, bits, prefix, 128);
    let embedded = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    if in6(0, 96) {
        return Some("IPv4-compatible (::/96)");
    }
    if in6(0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96) {
        // NAT64: the gateway dials the embedded IPv4 address.
        return forbidden_v4(embedded).map(|_| "NAT64 of a non-public IPv4 address");
    }
    if in6(0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48) {
        return Some("local-use NAT64 (64:ff9b:1::/48)");
    }
    if in6(0x2002_0000_0000_0000_0000_0000_0000_0000, 16) {
        let v4 = Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32);
        return forbidden_v4(v4).map(|_| "6to4 of a non-public IPv4 address");
    }
    const RANGES: &[(u128, u8, &str)] = &[
        (
            0x0100_0000_0000_0000_0000_0000_0000_0000,
            64,
            "discard (100::/64)",
        ),
        (
            0x2001_0db8_0000_0000_0000_0000_0000_0000,
            32,
            "documentation (2001:db8::/32)",
        ),
        (
            0x2001_0000_0000_0000_0000_0000_0000_0000,
            23,
            "IETF protocol assignments (2001::/23)",
        ),
        (
            0xfc00_0000_0000_0000_0000_0000_0000_0000,
            7,
            "unique local (fc00::/7)",
        ),
        (
            0xfe80_0000_0000_0000_0000_0000_0000_0000,
            10,
            "link-local (fe80::/10)",
        ),
        (
            0xfec0_0000_0000_0000_0000_0000_0000_0000,
            10,
            "site-local (fec0::/10)",
        ),
        (
            0xff00_0000_0000_0000_0000_0000_0000_0000,
            8,
            "multicast (ff00::/8)",
        ),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in6(*net, *prefix))
        .map(|(_, _, why)| *why)
}

/// Why the guard refused every address of a host.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The first address refused, and what kind of address it is.
    #[error("{ip} is {why}")]
    Forbidden { ip: IpAddr, why: &'static str },
    #[error("the host has no address")]
    NoAddress,
}

/// The addresses that may be dialled, in the resolver's order; an error
/// naming the first refusal when none may.
pub fn vet(
    addrs: impl IntoIterator<Item = SocketAddr>,
    allow: &AllowList,
) -> Result<Vec<SocketAddr>, Refusal> {
    let mut refused = None;
    let mut ok = Vec::new();
    for addr in addrs {
        let ip = canonical(addr.ip());
        let addr = SocketAddr::new(ip, addr.port());
        match forbidden(ip) {
            Some(why) if !allow.allows(ip) => {
                refused.get_or_insert(Refusal::Forbidden { ip, why });
            }
            _ => {
                if !ok.contains(&addr) {
                    ok.push(addr);
                }
            }
        }
    }
    match (ok.is_empty(), refused) {
        (false, _) => Ok(ok),
        (true, Some(why)) => Err(why),
        (true, None) => Err(Refusal::NoAddress),
    }
}

/// Boxed future of a resolution.
pub type Resolving<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Name resolution, injectable so tests can make a name resolve anywhere.
pub trait Resolve: Send + Sync + std::fmt::Debug {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a>;
}

/// The system resolver (getaddrinfo on tokio's blocking pool).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// A fixed table of names (tests); unknown names do not resolve.
#[derive(Clone, Debug, Default)]
pub struct StaticResolver(pub HashMap<String, Vec<IpAddr>>);

impl Resolve for StaticResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a> {
        let found = self.0.get(&host.to_ascii_lowercase()).map(|ips| {
            ips.iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect::<Vec<_>>()
        });
        Box::pin(async move {
            found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "unknown host"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for bad in [
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "192.0.0.8",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:a00:1::",
            "2002:7f00:1::1",
            "::127.0.0.1",
            "2001:db8::1",
            "fec0::1",
            "100::1",
        ] {
            assert!(forbidden(ip(bad)).is_some(), "{bad} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for good in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(forbidden(ip(good)), None, "{good} is public");
        }
    }

    #[test]
    fn the_allow_list_lets_named_blocks_through_and_nothing_else() {
        let allow = AllowList::parse(&["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"]).unwrap();
        let addr = |s: &str| SocketAddr::new(ip(s), 80);
        assert_eq!(vet([addr("10.0.0.1")], &allow).unwrap(), [addr("10.0.0.1")]);
        assert_eq!(
            vet([addr("127.0.0.1")], &allow).unwrap(),
            [addr("127.0.0.1")]
        );
        // Mapped forms are the same address.
        assert_eq!(
            vet([addr("::ffff:127.0.0.1")], &allow).unwrap(),
            [addr("127.0.0.1")]
        );
        assert!(vet([addr("127.0.0.2")], &allow).is_err());
        assert!(vet([addr("192.168.0.1")], &allow).is_err());
        assert_eq!(vet([addr("fd00::5")], &allow).unwrap(), [addr("fd00::5")]);
        let none = AllowList::default();
        let err = vet([addr("10.0.0.1")], &none).unwrap_err().to_string();
        assert!(err.contains("10.0.0.1") && err.contains("private"), "{err}");
        assert_eq!(vet([], &none).unwrap_err(), Refusal::NoAddress);
        // A name with a private and a public address: only the public one.
        assert_eq!(
            vet([addr("10.0.0.1"), addr("8.8.8.8")], &none).unwrap(),
            [addr("8.8.8.8")]
        );
        assert!(vet([], &none).is_err());
    }

    #[test]
    fn cidrs_parse_and_refuse_nonsense() {
        assert!("10.0.0.0/8".parse::<Cidr>().is_ok());
        assert!("::1".parse::<Cidr>().is_ok());
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("example.com/8".parse::<Cidr>().is_err());
        assert!(AllowList::parse(&["10.0.0.0/8", "bogus"]).is_err());
    }
}
