//! Receiving UDP datagrams in batches: one `recvmmsg(2)` call takes every
//! datagram waiting in the socket, up to [`BATCH`], where `recv_from`
//! takes one per system call and per wake-up of the listener task (issue
//! 18: under load most of the PBX's CPU went on such hand-offs). Linux
//! only; elsewhere the listener receives one datagram at a time.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Most datagrams taken by one call.
pub const BATCH: usize = 16;

/// Room for one datagram (the UDP maximum, as `recv_from` had).
const SLOT: usize = 65_535;

/// Buffers for [`BATCH`] datagrams and their senders. The kernel's
/// descriptors (`mmsghdr`, `iovec`) point into these and live only for the
/// call, on its stack, so the batch can be held across `.await`.
pub struct RecvBatch {
    buffers: Vec<u8>,
    senders: Vec<libc::sockaddr_storage>,
    lens: [usize; BATCH],
    received: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            buffers: vec![0; BATCH * SLOT],
            // SAFETY: sockaddr_storage is plain old data; all zeroes is a
            // valid (AF_UNSPEC) value.
            senders: vec![unsafe { std::mem::zeroed() }; BATCH],
            lens: [0; BATCH],
            received: 0,
        }
    }
}

impl RecvBatch {
    /// Takes the datagrams waiting on `fd` (non-blocking: `WouldBlock`
    /// when there is none); returns how many it took.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.received = 0;
        // SAFETY: all-zero iovec and mmsghdr are valid values (null
        // pointers, zero lengths); every pointer set below points into
        // `self`'s buffers, which outlive the call and are not otherwise
        // borrowed during it.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (chunk, sender)) in self
            .buffers
            .chunks_exact_mut(SLOT)
            .zip(self.senders.iter_mut())
            .enumerate()
        {
            iovecs[i].iov_base = chunk.as_mut_ptr().cast();
            iovecs[i].iov_len = SLOT;
            let header = &mut headers[i].msg_hdr;
            header.msg_name = std::ptr::from_mut(sender).cast();
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = &mut iovecs[i];
            header.msg_iovlen = 1;
        }
        // SAFETY: `headers` holds BATCH valid descriptors (above); the
        // kernel writes at most `iov_len` bytes into each buffer and at
        // most `msg_namelen` into each sender.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = usize::try_from(n).unwrap_or(0).min(BATCH);
        for (len, header) in self.lens.iter_mut().zip(&headers).take(n) {
            *len = (header.msg_len as usize).min(SLOT);
        }
        self.received = n;
        Ok(n)
    }

    /// The datagrams of the last [`recv`](Self::recv), in arrival order;
    /// one whose sender is not an IP address is left out.
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.buffers
            .chunks_exact(SLOT)
            .zip(&self.senders)
            .zip(&self.lens)
            .take(self.received)
            .filter_map(|((buffer, sender), &len)| Some((&buffer[..len], socket_addr(sender)?)))
    }
}

/// The sender's address as the kernel wrote it.
fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which
            // it is large and aligned enough for.
            let v4 = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                u32::from_be(v6.sin6_flowinfo),
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn takes_every_waiting_datagram_with_its_sender_and_would_block_after() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let to = receiver.local_addr().unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let big = vec![b'x'; 9_000];
        a.send_to(b"OPTIONS one", to).unwrap();
        b.send_to(&big, to).unwrap();
        a.send_to(b"", to).unwrap();
        let mut batch = RecvBatch::default();
        let mut got = Vec::new();
        // Loopback delivers at once; a few tries absorb scheduling.
        for _ in 0..100 {
            match batch.recv(receiver.as_raw_fd()) {
                Ok(_) => got.extend(batch.datagrams().map(|(d, from)| (d.to_vec(), from))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if got.len() == 3 {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
        let a_addr = a.local_addr().unwrap();
        let b_addr = b.local_addr().unwrap();
        assert_eq!(
            got,
            vec![
                (b"OPTIONS one".to_vec(), a_addr),
                (big, b_addr),
                (Vec::new(), a_addr)
            ]
        );
        let error = batch.recv(receiver.as_raw_fd()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(batch.datagrams().count(), 0, "nothing left from before");
    }

    #[test]
    fn more_than_a_batch_takes_several_calls_in_order() {
        let receiver = std::net::UdpSocket::bind("[::1]:0").unwrap();
        receiver.set_nonblocking(true).unwrap();
        let to = receiver.local_addr().unwrap();
        let sender = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let total = BATCH + 5;
        for i in 0..total {
            sender.send_to(i.to_string().as_bytes(), to).unwrap();
        }
        let mut batch = RecvBatch::default();
        let mut got = Vec::new();
        let mut calls = 0;
        for _ in 0..100 {
            match batch.recv(receiver.as_raw_fd()) {
                Ok(n) => {
                    assert!(n <= BATCH);
                    calls += 1;
                    for (data, from) in batch.datagrams() {
                        assert_eq!(from, sender.local_addr().unwrap());
                        got.push(String::from_utf8(data.to_vec()).unwrap());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if got.len() == total {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        }
        let expected: Vec<String> = (0..total).map(|i| i.to_string()).collect();
        assert_eq!(got, expected);
        assert!(calls >= 2, "at most BATCH per call");
    }
}
