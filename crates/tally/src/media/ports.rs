//! The RTP port pool: even ports from `media.rtp_ports`, RTCP on the next
//! odd one, bound as a pair.
//!
//! A [`PortPair`] owns its two sockets and gives its port back to the pool
//! when dropped, so every way a relay ends (hang-up, timeout, a panicking
//! task, shutdown) releases it. A crash needs nothing at start-up: the
//! ports are sockets, the kernel closes them with the process, and the pool
//! starts empty. Ports another process holds are skipped (bind fails) and
//! tried again on a later round.
//!
//! The pool is only touched when a call opens or closes a relay, never per
//! packet, so a plain mutex is enough.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, PoisonError};

/// Shared by every relay of the node.
#[derive(Clone, Debug)]
pub struct PortPool {
    inner: Arc<Mutex<PoolState>>,
    bind: IpAddr,
}

#[derive(Debug)]
struct PoolState {
    first: u16,
    /// `in_use[i]`: port `first + 2i` is allocated.
    in_use: Vec<bool>,
    next: usize,
    allocated: usize,
}

/// An RTP socket on an even port and its RTCP socket on the next port
/// (non-blocking), with the lease that keeps the port ours.
#[derive(Debug)]
pub struct PortPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    pub lease: PortLease,
}

/// The pool's record that a port pair is taken; dropping it gives the pair
/// back (drop it with, or after, the sockets).
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    pool: Arc<Mutex<PoolState>>,
}

impl PortPool {
    /// Even ports in `first..=last` (an odd `first` is rounded up; a pair
    /// needs `last` to be at least its RTCP port), bound on `bind`.
    pub fn new(bind: IpAddr, first: u16, last: u16) -> PortPool {
        let first = first.saturating_add(first % 2);
        let pairs = if last > first {
            usize::from((last - first).div_ceil(2))
        } else {
            0
        };
        PortPool {
            inner: Arc::new(Mutex::new(PoolState {
                first,
                in_use: vec![false; pairs],
                next: 0,
                allocated: 0,
            })),
            bind,
        }
    }

    /// Binds the next free pair. Fails when every pair is in use or cannot
    /// be bound.
    pub fn allocate(&self) -> io::Result<PortPair> {
        let mut state = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let pairs = state.in_use.len();
        for _ in 0..pairs {
            let i = state.next;
            state.next = (state.next + 1) % pairs;
            if state.in_use[i] {
                continue;
            }
            let Ok(offset) = u16::try_from(2 * i) else {
                continue;
            };
            let port = state.first + offset;
            let Ok(rtp) = bind(self.bind, port) else {
                continue;
            };
            let Ok(rtcp) = bind(self.bind, port + 1) else {
                continue;
            };
            state.in_use[i] = true;
            state.allocated += 1;
            return Ok(PortPair {
                rtp,
                rtcp,
                lease: PortLease {
                    port,
                    pool: Arc::clone(&self.inner),
                },
            });
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "no free RTP port pair ({pairs} in the range, {} ours)",
                state.allocated
            ),
        ))
    }

    /// Pairs currently allocated (tests and the benchmark).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn in_use(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allocated
    }
}

fn bind(ip: IpAddr, port: u16) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, port))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

impl PortPair {
    /// The RTP port (RTCP is `port() + 1`).
    pub fn port(&self) -> u16 {
        self.lease.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut state = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        let i = usize::from((self.port - state.first) / 2);
        if let Some(slot) = state.in_use.get_mut(i)
            && *slot
        {
            *slot = false;
            state.allocated -= 1;
        }
    }
}

/// A pool of 4 loopback pairs for test `slot` (0..10), in 40000–49999 so
/// it never meets the SIP ports (20000–29999) the end-to-end tests use;
/// the process id spreads concurrent test binaries apart.
#[cfg(test)]
pub fn test_range(slot: u16) -> (u16, u16) {
    let base = 40_000 + (std::process::id() % 100) as u16 * 100 + slot * 10;
    (base, base + 7)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn range(n: u16) -> (u16, u16) {
        test_range(n)
    }

    #[test]
    fn pairs_are_even_released_on_drop_and_skip_taken_ports() {
        let (first, last) = range(0);
        let pool = PortPool::new(LOOPBACK, first + 1, last);
        // 4 pairs in 8 ports, starting at the even port above `first + 1`.
        let a = pool.allocate().unwrap();
        assert_eq!(a.port() % 2, 0);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), a.port() + 1);
        let b = pool.allocate().unwrap();
        let c = pool.allocate().unwrap();
        assert_eq!(pool.in_use(), 3);
        // Another process holds the last pair's RTCP port: skipped.
        let blocker = UdpSocket::bind((LOOPBACK, last)).ok();
        if blocker.is_some() {
            assert!(pool.allocate().is_err());
        }
        drop(b);
        assert_eq!(pool.in_use(), 2);
        let d = pool.allocate().unwrap();
        assert_eq!(pool.in_use(), 3);
        drop((a, c, d));
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn many_calls_leave_nothing_allocated() {
        let (first, last) = range(1);
        let pool = PortPool::new(LOOPBACK, first, last);
        for _ in 0..1000 {
            let pair = pool.allocate().unwrap();
            let other = pool.allocate().unwrap();
            drop((pair, other));
        }
        assert_eq!(pool.in_use(), 0);
        assert!(PortPool::new(LOOPBACK, 5, 4).allocate().is_err());
    }
}
