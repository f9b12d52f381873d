//! BFD's UDP sockets. Receiving: one per family and port (3784 single hop, 4784
//! multihop), with the TTL / hop limit and the arrival interface as control messages,
//! since RFC 5881 section 5 requires 255 on receipt. Sending: one per session, bound to
//! its local address and a source port in 49152-65535 (RFC 5881 section 4), TTL 255.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;

/// A received control packet with what the IP layer said about it.
pub struct Received {
    pub len: usize,
    /// When the kernel received it: a detection timer runs from there, not from when a
    /// busy thread got round to reading it.
    pub arrived: Instant,
    pub src: IpAddr,
    pub ttl: Option<u8>,
    pub ifindex: Option<u32>,
}

pub struct RxSocket {
    socket: tokio::net::UdpSocket,
}

impl RxSocket {
    pub fn open(ipv6: bool, port: u16) -> io::Result<RxSocket> {
        let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
        let socket = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        let addr = if ipv6 {
            socket.set_only_v6(true)?;
            setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true)?;
            setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)?;
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port)
        } else {
            setsockopt(&socket, sockopt::Ipv4RecvTtl, &true)?;
            setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?;
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)
        };
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true)?;
        socket.bind(&addr.into())?;
        socket.set_nonblocking(true)?;
        Ok(RxSocket {
            socket: tokio::net::UdpSocket::from_std(socket.into())?,
        })
    }

    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let fd = self.socket.as_raw_fd();
        self.socket
            .async_io(Interest::READABLE, || recv_one(fd, buf))
            .await
    }

    /// A datagram already queued, without waiting (`WouldBlock` when none is).
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let fd = self.socket.as_raw_fd();
        self.socket.try_io(Interest::READABLE, || recv_one(fd, buf))
    }
}

fn recv_one(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::c_int, libc::in6_pktinfo, nix::sys::time::TimeSpec);
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())?;
    let src = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no source address"))?;
    let (mut ttl, mut ifindex, mut stamp) = (None, None, None);
    for c in msg.cmsgs()? {
        match c {
            ControlMessageOwned::Ipv4Ttl(t) => ttl = u8::try_from(t).ok(),
            ControlMessageOwned::Ipv6HopLimit(h) => ttl = u8::try_from(h).ok(),
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                ifindex = u32::try_from(info.ipi_ifindex).ok();
            }
            ControlMessageOwned::Ipv6PacketInfo(info) => ifindex = Some(info.ipi6_ifindex),
            ControlMessageOwned::ScmTimestampns(at) => stamp = Some(at),
            _ => {}
        }
    }
    // An IPv4-mapped source on an IPv6 socket cannot happen: the socket is v6-only.
    Ok(Received {
        len: msg.bytes,
        arrived: crate::daemon::socket::arrival(stamp),
        src,
        ttl,
        ifindex,
    })
}

/// One session's sending socket.
pub struct TxSocket {
    socket: std::net::UdpSocket,
}

impl TxSocket {
    /// Bound to `local` (or the family's any) on the first free port of the RFC 5881 range
    /// from a random start, TTL 255, and to `interface` when given.
    pub fn open(
        peer: IpAddr,
        local: Option<IpAddr>,
        interface: Option<&str>,
    ) -> io::Result<TxSocket> {
        let domain = if peer.is_ipv6() {
            Domain::IPV6
        } else {
            Domain::IPV4
        };
        let socket = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
        if peer.is_ipv6() {
            socket.set_unicast_hops_v6(u32::from(bfd::TTL_SINGLE_HOP))?;
        } else {
            socket.set_ttl_v4(u32::from(bfd::TTL_SINGLE_HOP))?;
        }
        if let Some(name) = interface {
            socket.bind_device(Some(name.as_bytes()))?;
        }
        let ip = local.unwrap_or(if peer.is_ipv6() {
            Ipv6Addr::UNSPECIFIED.into()
        } else {
            Ipv4Addr::UNSPECIFIED.into()
        });
        let (first, last) = (*bfd::SOURCE_PORTS.start(), *bfd::SOURCE_PORTS.end());
        let span = u32::from(last - first) + 1;
        let start = fastrand::u32(..span);
        let mut last_error = None;
        for i in 0..span {
            let port = first + u16::try_from((start + i) % span).expect("in range");
            match socket.bind(&SocketAddr::new(ip, port).into()) {
                Ok(()) => {
                    socket.set_nonblocking(true)?;
                    return Ok(TxSocket {
                        socket: socket.into(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
    }

    /// Non-blocking: a full socket buffer drops the packet (counted by the caller), which
    /// BFD tolerates and a stalled event loop would not.
    pub fn send(&self, payload: &[u8], to: SocketAddr) -> io::Result<()> {
        self.socket.send_to(payload, to).map(drop)
    }
}
