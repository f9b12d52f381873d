//! Counting established TCP connections on local ports through the kernel's sock_diag netlink
//! family (`NETLINK_SOCK_DIAG`, `SOCK_DIAG_BY_FAMILY`), the interface `ss` uses.
//!
//! The kernel filters by state (only ESTABLISHED sockets are dumped); the port match is done
//! here on the fixed-size `inet_diag_msg` header, which is cheaper than having the kernel format
//! every socket as text in /proc/net/tcp and parsing it back. The wire code is sans-IO: build a
//! request, feed every received datagram to [`Dump::feed`]; [`count_established`] is the thin
//! blocking shell around a netlink socket.
//!
//! Layouts (linux/netlink.h, linux/inet_diag.h), native endian except ports and addresses:
//! ```text
//! nlmsghdr          len u32 | type u16 | flags u16 | seq u32 | pid u32            16 bytes
//! inet_diag_req_v2  family u8 | protocol u8 | ext u8 | pad u8 | states u32 | id   56 bytes
//! inet_diag_sockid  sport be16 | dport be16 | src [u32;4] | dst [u32;4] | if u32 | cookie [u32;2]
//! inet_diag_msg     family u8 | state u8 | timer u8 | retrans u8 | id | expires, rqueue,
//!                   wqueue, uid, inode u32                                        72 bytes
//! ```

use std::io;

pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

const NLMSG_HDR_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const IPPROTO_TCP: u8 = 6;
const TCP_ESTABLISHED: u32 = 1;
const REQ_LEN: usize = 56;
/// Family, state, timer, retrans, then the socket id starting with the local port.
const MSG_SPORT_OFFSET: usize = 4;
const MSG_MIN_LEN: usize = 72;

/// Why a dump could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink message truncated or misaligned at byte {0}")]
    Truncated(usize),
    #[error("kernel refused the sock_diag dump: errno {0}")]
    Kernel(i32),
    #[error("sock_diag socket: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// Stable label for per-cause counters.
    pub fn as_str(&self) -> &'static str {
        match self {
            Error::Truncated(_) => "truncated",
            Error::Kernel(_) => "kernel",
            Error::Io(_) => "io",
        }
    }
}

/// The dump request: all TCP sockets of `family` in state ESTABLISHED.
pub fn request(family: u8, seq: u32) -> [u8; NLMSG_HDR_LEN + REQ_LEN] {
    let mut buf = [0u8; NLMSG_HDR_LEN + REQ_LEN];
    buf[0..4].copy_from_slice(&((NLMSG_HDR_LEN + REQ_LEN) as u32).to_ne_bytes());
    buf[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    buf[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    let req = &mut buf[NLMSG_HDR_LEN..];
    req[0] = family;
    req[1] = IPPROTO_TCP;
    req[4..8].copy_from_slice(&(1u32 << TCP_ESTABLISHED).to_ne_bytes());
    buf
}

/// One dump's progress: the count so far over datagrams.
#[derive(Debug)]
pub struct Dump<'a> {
    seq: u32,
    ports: &'a [u16],
    pub established: u64,
}

impl<'a> Dump<'a> {
    pub fn new(seq: u32, ports: &'a [u16]) -> Self {
        Dump {
            seq,
            ports,
            established: 0,
        }
    }

    /// Counts the sockets of one datagram; `Ok(true)` when the dump is complete.
    pub fn feed(&mut self, datagram: &[u8]) -> Result<bool, Error> {
        let mut at = 0;
        while at < datagram.len() {
            let header = datagram
                .get(at..at + NLMSG_HDR_LEN)
                .ok_or(Error::Truncated(at))?;
            let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let kind = u16::from_ne_bytes([header[4], header[5]]);
            let seq = u32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
            let message = datagram
                .get(at..at + len)
                .filter(|_| len >= NLMSG_HDR_LEN)
                .ok_or(Error::Truncated(at))?;
            let payload = &message[NLMSG_HDR_LEN..];
            // Replies to an earlier, abandoned dump on the same socket are skipped.
            if seq == self.seq {
                match kind {
                    NLMSG_DONE => return Ok(true),
                    NLMSG_ERROR => {
                        let errno = payload
                            .get(0..4)
                            .map(|e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]))
                            .ok_or(Error::Truncated(at))?;
                        return Err(Error::Kernel(errno.saturating_neg()));
                    }
                    SOCK_DIAG_BY_FAMILY => {
                        if payload.len() < MSG_MIN_LEN {
                            return Err(Error::Truncated(at));
                        }
                        let sport = u16::from_be_bytes([
                            payload[MSG_SPORT_OFFSET],
                            payload[MSG_SPORT_OFFSET + 1],
                        ]);
                        if self.ports.contains(&sport) {
                            self.established += 1;
                        }
                    }
                    _ => {}
                }
            }
            // Messages are padded to 4 bytes (NLMSG_ALIGN).
            at += (len + 3) & !3;
        }
        Ok(false)
    }
}

/// Established TCP connections (IPv4 and IPv6) whose local port is in `ports`.
pub fn count_established(ports: &[u16]) -> Result<u64, Error> {
    use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_SOCK_DIAG};
    let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    for (seq, family) in [(1, AF_INET), (2, AF_INET6)] {
        socket.send_to(&request(family, seq), &SocketAddr::new(0, 0), 0)?;
        let mut dump = Dump::new(seq, ports);
        loop {
            let n = match socket.recv(&mut &mut buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            match dump.feed(&buf[..n]) {
                Ok(true) => break,
                Ok(false) => {}
                // A host without IPv6 has no IPv6 sockets to count.
                Err(Error::Kernel(libc::ENOENT | libc::EAFNOSUPPORT)) if family == AF_INET6 => {
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        total += dump.established;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    /// Count over a capture's datagrams, each stored as a u32 length then its bytes.
    fn count_capture(bytes: &[u8], seq: u32, ports: &[u16]) -> Result<(u64, bool), Error> {
        let mut dump = Dump::new(seq, ports);
        let mut at = 0;
        while at < bytes.len() {
            let n = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            at += 4;
            if dump.feed(&bytes[at..at + n])? {
                return Ok((dump.established, true));
            }
            at += n;
        }
        Ok((dump.established, false))
    }

    #[test]
    fn request_layout() {
        let r = request(AF_INET6, 7);
        assert_eq!(r.len(), 72);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes(r[4..6].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(r[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(r[8..12].try_into().unwrap()), 7);
        assert_eq!(&r[16..20], &[10, 6, 0, 0]);
        assert_eq!(u32::from_ne_bytes(r[20..24].try_into().unwrap()), 2);
        assert!(r[24..].iter().all(|b| *b == 0));
    }

    /// A real kernel's answer (tests/fixtures/sockdiag-capture.py): 3 connections to
    /// 127.0.0.1:8080, 2 to :8443 and 1 to [::1]:8080. Both ends are local, so the dump also
    /// holds the client sockets; their local port is ephemeral and they must not count.
    #[test]
    fn counts_by_local_port_in_a_captured_dump() {
        let v4 = fixture("sockdiag-inet-established.bin");
        assert_eq!(count_capture(&v4, 1, &[8080]).unwrap(), (3, true));
        assert_eq!(count_capture(&v4, 1, &[8080, 8443]).unwrap(), (5, true));
        assert_eq!(count_capture(&v4, 1, &[9]).unwrap(), (0, true));
        // Another dump's sequence number counts nothing and never ends this one.
        assert_eq!(count_capture(&v4, 99, &[8080]).unwrap(), (0, false));
        let v6 = fixture("sockdiag-inet6-established.bin");
        assert_eq!(count_capture(&v6, 2, &[8080]).unwrap(), (1, true));
    }

    #[test]
    fn malformed_datagrams_are_errors_not_panics() {
        let v4 = fixture("sockdiag-inet-established.bin");
        let first = &v4[4..4 + u32::from_le_bytes(v4[0..4].try_into().unwrap()) as usize];
        for cut in 1..first.len() {
            let mut dump = Dump::new(1, &[8080]);
            // Cut anywhere: either a clean error or (cut on a message boundary) a partial count.
            if let Err(e) = dump.feed(&first[..cut]) {
                assert_eq!(e.as_str(), "truncated");
            }
        }
        // A length field below the header size must not loop forever.
        let mut bad = request(AF_INET, 1).to_vec();
        bad[0..4].copy_from_slice(&4u32.to_ne_bytes());
        assert!(matches!(
            Dump::new(1, &[80]).feed(&bad),
            Err(Error::Truncated(0))
        ));
        // The kernel's refusal carries its errno.
        let mut error = [0u8; 36];
        error[0..4].copy_from_slice(&36u32.to_ne_bytes());
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error[8..12].copy_from_slice(&1u32.to_ne_bytes());
        error[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert!(matches!(
            Dump::new(1, &[80]).feed(&error),
            Err(Error::Kernel(libc::ENOENT))
        ));
    }
}
