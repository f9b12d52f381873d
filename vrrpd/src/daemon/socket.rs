//! The VRRP socket of one interface: raw IP protocol 112, TTL 255, joined to 224.0.0.18 there.
//! IPv4 raw sockets deliver the IP header with each packet, which is where the receive checks
//! find the TTL and the addresses.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use vrrpd::wire::{IP_PROTO_VRRP, IpPair, VRRP_GROUP_V4, VRRP_TTL};

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
}

/// A received VRRP payload with what its IP header said.
pub struct Received<'a> {
    pub ip: IpPair,
    pub ttl: u8,
    pub payload: &'a [u8],
}

impl VrrpSocket {
    pub fn open_v4(interface: &str, ifindex: u32) -> io::Result<Self> {
        let socket = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(i32::from(IP_PROTO_VRRP))),
        )?;
        socket.bind_device(Some(interface.as_bytes()))?;
        socket.set_multicast_ttl_v4(u32::from(VRRP_TTL))?;
        socket.set_ttl_v4(u32::from(VRRP_TTL))?;
        socket.set_multicast_loop_v4(false)?;
        socket.join_multicast_v4_n(&VRRP_GROUP_V4, &InterfaceIndexOrAddress::Index(ifindex))?;
        socket.set_nonblocking(true)?;
        // SAFETY: the socket is owned by the AsyncFd from here on, so its descriptor stays open
        // and the same for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)?;
        Ok(VrrpSocket { fd })
    }

    pub fn send_v4(&self, payload: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        let addr = SocketAddr::V4(SocketAddrV4::new(dst, 0));
        self.fd.get_ref().send_to(payload, &addr.into()).map(drop)
    }

    /// Waits for the next datagram; one whose IP header is unreadable comes back as an error.
    pub async fn recv<'b>(&self, buf: &'b mut [u8]) -> io::Result<Received<'b>> {
        let len = loop {
            let mut guard = self.fd.readable().await?;
            // SAFETY: recv only writes initialised bytes into the buffer and reports how many;
            // u8 and MaybeUninit<u8> have the same layout.
            let uninit =
                unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [MaybeUninit<u8>]) };
            match guard.try_io(|fd| fd.get_ref().recv(uninit)) {
                Ok(result) => break result?,
                Err(_would_block) => continue,
            }
        };
        parse_ipv4(&buf[..len])
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short or non-IPv4 header"))
    }
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
