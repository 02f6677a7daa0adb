//! The transports SIP runs over, as the transaction layer needs to know them:
//! whether the network may lose a message (so the transaction retransmits) and
//! how the transport is spelled in a Via. Sockets, connections and framing
//! live in the binary; here a transport is only a name and a property.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use thiserror::Error;

/// A SIP transport (RFC 3261 §18, RFC 7118 for WebSocket).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    /// SIP over WebSocket (RFC 7118).
    Ws,
    /// SIP over secure WebSocket (RFC 7118).
    Wss,
}

impl Transport {
    /// Whether the transport delivers or reports failure, so that the
    /// transaction layer does not retransmit (RFC 3261 §17.1.1.2: Timers A,
    /// E and G are not armed, D, I, J and K are zero).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The spelling in a Via header (`SIP/2.0/<this>`), RFC 3261 §20.42 and
    /// RFC 7118 §5.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Via transport token Tally does not speak (`SCTP`, `DTLS`, an extension).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("unsupported transport {0:?}")]
pub struct UnknownTransport(pub String);

impl FromStr for Transport {
    type Err = UnknownTransport;

    /// Parses a Via transport token; tokens are case-insensitive (RFC 3261 §7.3.1).
    fn from_str(token: &str) -> Result<Transport, UnknownTransport> {
        [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Ws,
            Transport::Wss,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(token))
        .ok_or_else(|| UnknownTransport(token.to_owned()))
    }
}

/// The other end of a message: where it came from, or where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl Peer {
    pub fn new(transport: Transport, addr: SocketAddr) -> Peer {
        Peer { transport, addr }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_spelling_round_trips() {
        for t in [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Ws,
            Transport::Wss,
        ] {
            assert_eq!(t.as_str().parse::<Transport>(), Ok(t));
            assert_eq!(t.as_str().to_ascii_lowercase().parse::<Transport>(), Ok(t));
            assert_eq!(t.is_reliable(), t != Transport::Udp);
        }
        assert_eq!(
            "SCTP".parse::<Transport>(),
            Err(UnknownTransport("SCTP".into()))
        );
        assert!("".parse::<Transport>().is_err());
        let p = Peer::new(Transport::Tls, "192.0.2.1:5061".parse().unwrap());
        assert_eq!(p.to_string(), "TLS:192.0.2.1:5061");
    }
}
