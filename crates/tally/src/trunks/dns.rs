//! Where a trunk's requests go (RFC 3263 §4): SRV records first, then
//! A/AAAA, in the order to try them.
//!
//! # Decisions
//!
//! - **A small DNS client of our own** (RFC 1035 messages over UDP on
//!   the tokio runtime, TCP when an answer is truncated) rather than a
//!   resolver crate: trunks need three record types from one configured
//!   server, and hickory-resolver would bring its protocol crate, its
//!   own caches and configuration for that. No cache: trunks are
//!   resolved at provisioning and by their live task before a
//!   registration round, a few queries a minute at most.
//! - **Which server**: `[trunks] dns_server` (`ip:port`) when set, for
//!   every lookup; else the first `nameserver` of `/etc/resolv.conf` for
//!   SRV, and the system resolver (`/etc/hosts` included) for A/AAAA.
//!   A name the configured server does not know is tried with the system
//!   resolver too.
//! - **SRV only for a name without a port**: a trunk whose host is a
//!   name and whose port is 5060 (the API's default, what "no port"
//!   means in a trunk) looks up `_sip._udp.<host>` or `_sip._tcp.<host>`;
//!   a trunk given another port goes straight to A/AAAA at that port, as
//!   RFC 3263 §4.2 says. Records are ordered by priority, and within one
//!   priority by weight with RFC 2782's weighted random draw; each
//!   target's addresses follow it. A single `.` target (the service is
//!   not offered) gives no address; no SRV record gives A/AAAA at 5060.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use pbx::trunk::{Trunk, TrunkTransport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one query waits for its answer (it is sent twice over UDP).
const QUERY_TIMEOUT: Duration = Duration::from_millis(1500);

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;

/// Why a name gave no address.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("no answer from the DNS server {0}")]
    NoAnswer(SocketAddr),
    #[error("malformed DNS answer: {0}")]
    Malformed(&'static str),
    #[error("{0} does not resolve")]
    NotFound(String),
    #[error("{0} publishes no SIP service (SRV target \".\")")]
    NoService(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One SRV record (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// A resource record of an answer, as far as trunks care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Srv(Srv),
    Cname(String),
    Other,
}

/// A parsed DNS response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub rcode: u8,
    pub truncated: bool,
    pub answers: Vec<Record>,
}

/// A query for `name`, type `qtype`, with id `id` (recursion desired).
pub fn query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l))
            .ok_or(DnsError::Malformed("a label is empty or longer than 63"))?;
        m.push(len);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    Ok(m)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, DnsError> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or(DnsError::Malformed("cut short"))
}

/// Reads the (possibly compressed) name at `at`; returns it and where the
/// bytes after it start.
fn name_at(b: &[u8], mut at: usize) -> Result<(String, usize), DnsError> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    // Each pointer must go backwards: no loop can form.
    let mut limit = at;
    loop {
        let len = *b.get(at).ok_or(DnsError::Malformed("cut short"))?;
        match len {
            0 => {
                return Ok((labels.join("."), end.unwrap_or(at + 1)));
            }
            l if l & 0xC0 == 0xC0 => {
                let target = usize::from(u16_at(b, at)? & 0x3FFF);
                if target >= limit {
                    return Err(DnsError::Malformed("a compression pointer goes forward"));
                }
                end.get_or_insert(at + 2);
                limit = target;
                at = target;
            }
            l if l & 0xC0 == 0 => {
                let label = b
                    .get(at + 1..at + 1 + usize::from(l))
                    .ok_or(DnsError::Malformed("cut short"))?;
                labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
                at += 1 + usize::from(l);
            }
            _ => return Err(DnsError::Malformed("unknown label type")),
        }
    }
}

/// Parses the answer to query `id`.
pub fn parse(id: u16, b: &[u8]) -> Result<Response, DnsError> {
    if u16_at(b, 0)? != id {
        return Err(DnsError::Malformed("another query's id"));
    }
    let flags = u16_at(b, 2)?;
    if flags & 0x8000 == 0 {
        return Err(DnsError::Malformed("not a response"));
    }
    let (questions, answers) = (u16_at(b, 4)?, u16_at(b, 6)?);
    let mut at = 12;
    for _ in 0..questions {
        at = name_at(b, at)?.1 + 4;
    }
    let mut records = Vec::new();
    for _ in 0..answers {
        let (_, after) = name_at(b, at)?;
        let rtype = u16_at(b, after)?;
        let len = usize::from(u16_at(b, after + 8)?);
        let data_at = after + 10;
        let data = b
            .get(data_at..data_at + len)
            .ok_or(DnsError::Malformed("cut short"))?;
        records.push(match (rtype, len) {
            (TYPE_A, 4) => Record::A(Ipv4Addr::new(data[0], data[1], data[2], data[3])),
            (TYPE_AAAA, 16) => {
                let octets: [u8; 16] = data.try_into().unwrap_or([0; 16]);
                Record::Aaaa(Ipv6Addr::from(octets))
            }
            (TYPE_SRV, 7..) => Record::Srv(Srv {
                priority: u16_at(b, data_at)?,
                weight: u16_at(b, data_at + 2)?,
                port: u16_at(b, data_at + 4)?,
                target: name_at(b, data_at + 6)?.0,
            }),
            (TYPE_CNAME, _) => Record::Cname(name_at(b, data_at)?.0),
            _ => Record::Other,
        });
        at = data_at + len;
    }
    Ok(Response {
        rcode: (flags & 0x000F) as u8,
        truncated: flags & 0x0200 != 0,
        answers: records,
    })
}

/// SRV records in the order to try them (RFC 2782): by priority, and
/// within a priority by a weighted random draw (`draw(n)` returns a
/// number in `0..=n`); weight 0 records come first in their draw as the
/// RFC asks, with a small chance to be picked.
pub fn srv_order(mut records: Vec<Srv>, mut draw: impl FnMut(u32) -> u32) -> Vec<Srv> {
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let mut group: Vec<Srv> = Vec::new();
        while records.first().is_some_and(|r| r.priority == priority) {
            group.push(records.remove(0));
        }
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = draw(total);
            let mut running = 0;
            let index = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            ordered.push(group.remove(index));
        }
    }
    ordered
}

/// Resolves trunk hosts (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    /// `[trunks] dns_server`.
    server: Option<SocketAddr>,
}

impl Resolver {
    pub fn new(server: Option<SocketAddr>) -> Self {
        Resolver { server }
    }

    /// The server SRV queries go to.
    fn srv_server(&self) -> Option<SocketAddr> {
        self.server.or_else(|| {
            let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
            conf.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .find_map(|ip| ip.trim().parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
        })
    }

    async fn ask(&self, server: SocketAddr, name: &str, qtype: u16) -> Result<Response, DnsError> {
        let id = crate::random::u64().map_or(0x5a5a, |r| r as u16);
        let message = query(id, name, qtype)?;
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(server).await?;
        let mut buf = vec![0u8; 4096];
        for _ in 0..2 {
            socket.send(&message).await?;
            let deadline = tokio::time::Instant::now() + QUERY_TIMEOUT;
            while let Ok(read) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                let Ok(n) = read else { break };
                // Another query's late answer is skipped.
                let Ok(response) = parse(id, &buf[..n]) else {
                    continue;
                };
                if response.truncated {
                    return self.ask_tcp(server, id, &message).await;
                }
                return Ok(response);
            }
        }
        Err(DnsError::NoAnswer(server))
    }

    async fn ask_tcp(
        &self,
        server: SocketAddr,
        id: u16,
        message: &[u8],
    ) -> Result<Response, DnsError> {
        let exchange = async {
            let mut stream = TcpStream::connect(server).await?;
            let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
            stream.write_all(&len.to_be_bytes()).await?;
            stream.write_all(message).await?;
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await?;
            let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut answer).await?;
            parse(id, &answer)
        };
        tokio::time::timeout(QUERY_TIMEOUT * 2, exchange)
            .await
            .map_err(|_| DnsError::NoAnswer(server))?
    }

    /// The addresses of `name` at `port`: IPv4 first, then IPv6.
    pub async fn addresses(&self, name: &str, port: u16) -> Result<Vec<SocketAddr>, DnsError> {
        if let Ok(ip) = name.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some(server) = self.server {
            let mut found = Vec::new();
            for qtype in [TYPE_A, TYPE_AAAA] {
                match self.ask(server, name, qtype).await {
                    Ok(r) => found.extend(r.answers.iter().filter_map(|a| match a {
                        Record::A(ip) => Some(SocketAddr::new(IpAddr::V4(*ip), port)),
                        Record::Aaaa(ip) => Some(SocketAddr::new(IpAddr::V6(*ip), port)),
                        _ => None,
                    })),
                    Err(e) => tracing::debug!(%name, error = %e, "DNS query failed"),
                }
            }
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let system = tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| DnsError::NotFound(name.to_owned()))?;
        let mut found: Vec<SocketAddr> = system.collect();
        found.sort_by_key(SocketAddr::is_ipv6);
        found.dedup();
        match found.is_empty() {
            true => Err(DnsError::NotFound(name.to_owned())),
            false => Ok(found),
        }
    }

    /// The SRV records of `_sip._<transport>.<name>`, in the order to try
    /// them; empty when there are none (or no server to ask).
    pub async fn srv(&self, name: &str, transport: TrunkTransport) -> Result<Vec<Srv>, DnsError> {
        let Some(server) = self.srv_server() else {
            return Ok(Vec::new());
        };
        let service = format!("_sip._{}.{name}", transport.as_str());
        let response = self.ask(server, &service, TYPE_SRV).await?;
        let records: Vec<Srv> = response
            .answers
            .into_iter()
            .filter_map(|r| match r {
                Record::Srv(s) => Some(s),
                _ => None,
            })
            .collect();
        Ok(srv_order(records, |n| {
            crate::random::u64().map_or(0, |r| (r % (u64::from(n) + 1)) as u32)
        }))
    }

    /// Where a request to `host` (`port` as the trunk gives it) goes, in
    /// the order to try: SRV targets for a name at the default port, else
    /// its addresses.
    pub async fn targets(
        &self,
        host: &str,
        port: u16,
        transport: TrunkTransport,
    ) -> Result<Vec<SocketAddr>, DnsError> {
        let literal = host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok();
        if !literal && port == 5060 {
            let records = match self.srv(host, transport).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(%host, error = %e, "SRV lookup failed: trying A/AAAA");
                    Vec::new()
                }
            };
            if records.len() == 1 && records[0].target.is_empty() {
                return Err(DnsError::NoService(host.to_owned()));
            }
            if !records.is_empty() {
                let mut all = Vec::new();
                for r in &records {
                    match self.addresses(&r.target, r.port).await {
                        Ok(found) => all.extend(found),
                        Err(e) => {
                            tracing::debug!(target = %r.target, error = %e, "SRV target does not resolve")
                        }
                    }
                }
                return match all.is_empty() {
                    true => Err(DnsError::NotFound(host.to_owned())),
                    false => Ok(all),
                };
            }
        }
        self.addresses(host, port).await
    }

    /// Where `trunk`'s requests go: its outbound proxy (`host[:port]`)
    /// if it has one, else its host and port.
    pub async fn trunk_targets(&self, trunk: &Trunk) -> Result<Vec<SocketAddr>, DnsError> {
        match &trunk.outbound_proxy {
            Some(proxy) => {
                let (host, port) = split_host_port(proxy);
                self.targets(host, port.unwrap_or(5060), trunk.transport)
                    .await
            }
            None => self.targets(&trunk.host, trunk.port, trunk.transport).await,
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(value: &str) -> (&str, Option<u16>) {
    if let Some(rest) = value.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').unwrap_or((rest, ""));
        return (host, tail.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match value.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (value, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer to `q` with the given records (name, type, data),
    /// compressing the owner name to the question's.
    fn answer(q: &[u8], flags: u16, records: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = q.to_vec();
        m[2..4].copy_from_slice(&(0x8180 | flags).to_be_bytes());
        m[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
        for (rtype, data) in records {
            m.extend_from_slice(&[0xC0, 12]);
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    fn srv_data(priority: u16, weight: u16, port: u16, target: &str) -> Vec<u8> {
        let mut d = Vec::new();
        for v in [priority, weight, port] {
            d.extend_from_slice(&v.to_be_bytes());
        }
        let q = query(0, target, 1).unwrap();
        d.extend_from_slice(&q[12..q.len() - 4]);
        d
    }

    #[test]
    fn queries_are_encoded_and_answers_parsed_with_compression() {
        let q = query(0x1234, "_sip._udp.Carrier.example", TYPE_SRV).unwrap();
        assert_eq!(&q[..2], &[0x12, 0x34]);
        assert_eq!(q[12], 4);
        assert_eq!(&q[13..17], b"_sip");
        let a = answer(
            &q,
            0,
            &[
                (TYPE_SRV, srv_data(10, 60, 5070, "sip1.carrier.example")),
                (TYPE_A, vec![192, 0, 2, 7]),
                (
                    TYPE_AAAA,
                    [0x20, 1, 0x0d, 0xb8]
                        .into_iter()
                        .chain([0; 11])
                        .chain([1])
                        .collect(),
                ),
                (99, vec![1, 2, 3]),
            ],
        );
        let r = parse(0x1234, &a).unwrap();
        assert_eq!(r.rcode, 0);
        assert!(!r.truncated);
        assert_eq!(
            r.answers,
            vec![
                Record::Srv(Srv {
                    priority: 10,
                    weight: 60,
                    port: 5070,
                    target: "sip1.carrier.example".into()
                }),
                Record::A(Ipv4Addr::new(192, 0, 2, 7)),
                Record::Aaaa("2001:db8::1".parse().unwrap()),
                Record::Other,
            ]
        );
    }

    #[test]
    fn broken_answers_are_errors_not_panics() {
        let q = query(7, "carrier.example", TYPE_A).unwrap();
        assert!(parse(8, &answer(&q, 0, &[])).is_err(), "another id");
        assert!(parse(7, &q).is_err(), "a query, not a response");
        let full = answer(&q, 0, &[(TYPE_A, vec![192, 0, 2, 7])]);
        for cut in 0..full.len() {
            assert!(parse(7, &full[..cut]).is_err(), "cut at {cut}");
        }
        // A pointer to itself (a loop) and one forwards.
        let mut looped = answer(&q, 0, &[(TYPE_A, vec![1, 1, 1, 1])]);
        let at = q.len();
        looped[at..at + 2].copy_from_slice(&[0xC0, at as u8]);
        assert!(parse(7, &looped).is_err());
        assert!(query(1, "a..b", TYPE_A).is_err(), "empty label");
        assert!(query(1, &"x".repeat(64), TYPE_A).is_err(), "long label");
        // The truncation bit is reported.
        assert!(parse(7, &answer(&q, 0x0200, &[])).unwrap().truncated);
    }

    #[test]
    fn srv_records_go_by_priority_then_weighted_draw() {
        let srv = |priority, weight, target: &str| Srv {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        };
        let records = vec![
            srv(20, 0, "backup"),
            srv(10, 10, "light"),
            srv(10, 90, "heavy"),
        ];
        // The draw picks the running sum it lands in: 0..=10 light, above heavy.
        let order = srv_order(records.clone(), |_| 50);
        let names: Vec<&str> = order.iter().map(|s| s.target.as_str()).collect();
        assert_eq!(names, ["heavy", "light", "backup"]);
        let order = srv_order(records.clone(), |_| 5);
        let names: Vec<&str> = order.iter().map(|s| s.target.as_str()).collect();
        assert_eq!(names, ["light", "heavy", "backup"]);
        // Whatever the draws, priority decides first.
        for d in 0..=100 {
            let order = srv_order(records.clone(), |n| d.min(n));
            assert_eq!(order.last().unwrap().target, "backup");
        }
        // Weight 0 only: in order, the draw is 0.
        let zeros = srv_order(vec![srv(1, 0, "a"), srv(1, 0, "b")], |n| n);
        assert_eq!(zeros[0].target, "a");
    }

    #[test]
    fn hosts_and_ports_split() {
        assert_eq!(split_host_port("proxy.example"), ("proxy.example", None));
        assert_eq!(
            split_host_port("proxy.example:5070"),
            ("proxy.example", Some(5070))
        );
        assert_eq!(
            split_host_port("[2001:db8::5]:5070"),
            ("2001:db8::5", Some(5070))
        );
        assert_eq!(split_host_port("[2001:db8::5]"), ("2001:db8::5", None));
        assert_eq!(split_host_port("2001:db8::5"), ("2001:db8::5", None));
    }
}
