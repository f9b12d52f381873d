//! The VRRP sockets of one interface: raw IP protocol 112, TTL / hop limit 255, joined to
//! 224.0.0.18 or ff02::12 there.
//!
//! IPv4 raw sockets deliver the IP header with each packet, which is where the receive checks
//! find the TTL and the addresses. IPv6 raw sockets deliver only the payload, so the hop limit
//! and the destination (needed for the checksum's pseudo-header) come as control messages, and
//! the link-local source is set per packet the same way.
//!
//! Each packet also carries the kernel's receive timestamp: a backup's Master_Down timer runs
//! from when the master's advert arrived, not from when a busy machine got round to reading it.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, SockaddrIn6, SockaddrLike, recvmsg,
    sendmsg, setsockopt, sockopt,
};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use vrrpd::wire::{IP_PROTO_VRRP, IpPair, VRRP_GROUP_V4, VRRP_GROUP_V6, VRRP_TTL};

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
    ipv6: bool,
}

/// A received VRRP payload with what its IP header said.
pub struct Received<'a> {
    pub ip: IpPair,
    pub ttl: u8,
    pub payload: &'a [u8],
    /// When the kernel received it.
    pub arrived: Instant,
}

/// The longest a packet may have waited in the socket, by its timestamp, to be dated by it. The
/// timestamp is on the wall clock, which can be stepped; a step forward must not make an advert
/// look older than it is by more than this, or a backup would time Master_Down from too early
/// and take over from a live master. A reader delayed longer than this is timed from here.
const MAX_QUEUED: Duration = Duration::from_millis(250);

/// The monotonic time at which a packet stamped `stamp` (wall clock) arrived.
pub fn arrival(stamp: Option<nix::sys::time::TimeSpec>) -> Instant {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let Some(stamp) = stamp else { return now };
    let stamped = UNIX_EPOCH + Duration::from(stamp);
    // A stamp ahead of the clock (a step backwards since) means it just arrived.
    let queued = wall.duration_since(stamped).unwrap_or_default();
    now.checked_sub(queued.min(MAX_QUEUED)).unwrap_or(now)
}

impl VrrpSocket {
    pub fn open_v4(interface: &str, ifindex: u32) -> io::Result<Self> {
        let socket = raw_v4(interface)?;
        socket.join_multicast_v4_n(&VRRP_GROUP_V4, &InterfaceIndexOrAddress::Index(ifindex))?;
        Self::register(socket, ifindex, false)
    }

    pub fn open_v6(interface: &str, ifindex: u32) -> io::Result<Self> {
        let socket = raw_v6(interface, ifindex)?;
        socket.join_multicast_v6(&VRRP_GROUP_V6, ifindex)?;
        // The hop limit and the destination of each packet arrive as control messages.
        setsockopt(&socket, sockopt::Ipv6RecvHopLimit, &true).map_err(io::Error::from)?;
        setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
        Self::register(socket, ifindex, true)
    }

    fn register(socket: Socket, ifindex: u32, ipv6: bool) -> io::Result<Self> {
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
        socket.set_nonblocking(true)?;
        // SAFETY: the socket is owned by the AsyncFd from here on, so its descriptor stays open
        // and the same for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)?;
        Ok(VrrpSocket { fd, ifindex, ipv6 })
    }

    /// Sends one VRRP message from `src` (IPv6: the link-local address the checksum was
    /// computed with, set per packet rather than left to source selection).
    pub fn send(&self, payload: &[u8], src: IpAddr, dst: IpAddr) -> io::Result<()> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                // ipi_spec_dst is the source of a raw socket's datagram; the interface stays
                // the one the socket is bound to. On a vmac, which has no address of its own
                // until it holds the VIPs, this is what keeps the base address as the source.
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(src.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let addr = SockaddrIn::from(SocketAddrV4::new(dst, 0));
                self.send_with(payload, ControlMessage::Ipv4PacketInfo(&info), &addr)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: src.octets(),
                    },
                    ipi6_ifindex: self.ifindex,
                };
                let addr = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, self.ifindex));
                self.send_with(payload, ControlMessage::Ipv6PacketInfo(&info), &addr)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination of different families",
            )),
        }
    }

    fn send_with(
        &self,
        payload: &[u8],
        info: ControlMessage<'_>,
        addr: &impl SockaddrLike,
    ) -> io::Result<()> {
        sendmsg(
            self.fd.get_ref().as_raw_fd(),
            &[IoSlice::new(payload)],
            &[info],
            MsgFlags::empty(),
            Some(addr),
        )
        .map(drop)
        .map_err(io::Error::from)
    }

    /// Waits for the next datagram; one whose addressing is unreadable comes back as an error.
    pub async fn recv<'b>(&self, buf: &'b mut [u8]) -> io::Result<Received<'b>> {
        if self.ipv6 {
            return self.recv_v6(buf).await;
        }
        let (len, stamp) = loop {
            let mut guard = self.fd.readable().await?;
            let received = guard.try_io(|fd| {
                let mut iov = [IoSliceMut::new(&mut buf[..])];
                let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
                let msg = recvmsg::<()>(
                    fd.get_ref().as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::empty(),
                )
                .map_err(io::Error::from)?;
                Ok((msg.bytes, timestamp(msg.cmsgs().map_err(io::Error::from)?)))
            });
            match received {
                Ok(result) => break result?,
                Err(_would_block) => continue,
            }
        };
        let mut received = parse_ipv4(&buf[..len]).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "short or non-IPv4 header")
        })?;
        received.arrived = arrival(stamp);
        Ok(received)
    }
}

impl VrrpSocket {
    async fn recv_v6<'b>(&self, buf: &'b mut [u8]) -> io::Result<Received<'b>> {
        let (len, src, dst, hops, stamp) = loop {
            let mut guard = self.fd.readable().await?;
            let received = guard.try_io(|fd| {
                let mut iov = [IoSliceMut::new(&mut buf[..])];
                let mut cmsg =
                    nix::cmsg_space!(libc::c_int, libc::in6_pktinfo, nix::sys::time::TimeSpec);
                let msg = recvmsg::<SockaddrIn6>(
                    fd.get_ref().as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::empty(),
                )
                .map_err(io::Error::from)?;
                let (mut dst, mut hops, mut stamp) = (None, None, None);
                for cmsg in msg.cmsgs().map_err(io::Error::from)? {
                    match cmsg {
                        ControlMessageOwned::Ipv6HopLimit(limit) => hops = Some(limit),
                        ControlMessageOwned::Ipv6PacketInfo(info) => {
                            dst = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                        }
                        ControlMessageOwned::ScmTimestampns(at) => stamp = Some(at),
                        _ => {}
                    }
                }
                Ok((msg.bytes, msg.address.map(|a| a.ip()), dst, hops, stamp))
            });
            match received {
                Ok(result) => break result?,
                Err(_would_block) => continue,
            }
        };
        let (Some(src), Some(dst), Some(hops)) = (src, dst, hops) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "IPv6 datagram without its source, destination or hop limit",
            ));
        };
        Ok(Received {
            ip: IpPair::V6 { src, dst },
            // Anything outside 0..=255 cannot happen; map it to a value the check rejects.
            ttl: u8::try_from(hops).unwrap_or(0),
            payload: &buf[..len],
            arrived: arrival(stamp),
        })
    }
}

/// The receive timestamp among a packet's control messages.
fn timestamp(cmsgs: impl Iterator<Item = ControlMessageOwned>) -> Option<nix::sys::time::TimeSpec> {
    cmsgs.into_iter().find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(at) => Some(at),
        _ => None,
    })
}

/// A raw protocol-112 socket that sends and hears on `interface` only.
fn raw(domain: Domain, interface: &str) -> io::Result<Socket> {
    let socket = Socket::new(
        domain,
        Type::RAW,
        Some(Protocol::from(i32::from(IP_PROTO_VRRP))),
    )?;
    socket.bind_device(Some(interface.as_bytes()))?;
    Ok(socket)
}

fn raw_v4(interface: &str) -> io::Result<Socket> {
    let socket = raw(Domain::IPV4, interface)?;
    socket.set_multicast_ttl_v4(u32::from(VRRP_TTL))?;
    socket.set_ttl_v4(u32::from(VRRP_TTL))?;
    socket.set_multicast_loop_v4(false)?;
    Ok(socket)
}

fn raw_v6(interface: &str, ifindex: u32) -> io::Result<Socket> {
    let socket = raw(Domain::IPV6, interface)?;
    socket.set_multicast_hops_v6(u32::from(VRRP_TTL))?;
    socket.set_unicast_hops_v6(u32::from(VRRP_TTL))?;
    socket.set_multicast_loop_v6(false)?;
    socket.set_multicast_if_v6(ifindex)?;
    Ok(socket)
}

fn parse_ipv4(packet: &[u8]) -> Option<Received<'_>> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(first & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    if header_len < 20 || total_len < header_len || packet.len() < header_len {
        return None;
    }
    let end = total_len.min(packet.len());
    let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    Some(Received {
        ip: IpPair::V4 { src, dst },
        ttl: packet[8],
        payload: &packet[header_len..end],
        arrived: Instant::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_gives_ttl_addresses_and_payload() {
        let mut packet = vec![
            0x45, 0, 0, 24, 0, 0, 0, 0, 255, 112, 0, 0, 192, 0, 2, 1, 224, 0, 0, 18,
        ];
        packet.extend_from_slice(&[0x21, 51, 100, 1]);
        let received = parse_ipv4(&packet).unwrap();
        assert_eq!(received.ttl, 255);
        assert_eq!(received.payload, &[0x21, 51, 100, 1]);
        assert_eq!(
            received.ip,
            IpPair::V4 {
                src: Ipv4Addr::new(192, 0, 2, 1),
                dst: Ipv4Addr::new(224, 0, 0, 18)
            }
        );
        assert!(parse_ipv4(&packet[..10]).is_none());
    }
}
