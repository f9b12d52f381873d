//! Picking the local kernel master's sync messages out of the IPv4 packets an AF_PACKET
//! socket (SOCK_DGRAM, so without the link-layer header) sees leaving the sync interface.
//!
//! The kernel master turns multicast loop off on its socket, so no local UDP socket ever
//! receives what it sends; the packet tap is the only place to read it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a captured packet is not a sync message for our group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    #[error("shorter than an IPv4 header")]
    Truncated,
    #[error("not of the sync group's IP family")]
    OtherFamily,
    #[error("not UDP")]
    NotUdp,
    #[error("a fragment")]
    Fragment,
    #[error("not addressed to the sync group and port")]
    OtherDestination,
    #[error("UDP length disagrees with the packet")]
    BadLength,
}

impl Skip {
    /// Only malformed packets are worth counting; other traffic on the interface is not ours.
    pub fn is_malformed(self) -> bool {
        matches!(self, Skip::Truncated | Skip::BadLength)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Skip::Truncated => "capture_truncated",
            Skip::OtherFamily => "capture_other_family",
            Skip::NotUdp => "capture_not_udp",
            Skip::Fragment => "capture_fragment",
            Skip::OtherDestination => "capture_other_destination",
            Skip::BadLength => "capture_bad_length",
        }
    }
}

const IPV4_MIN_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;
const PROTO_UDP: u8 = 17;

/// The UDP payload of `packet` if it is an unfragmented IPv4/UDP datagram, or an IPv6 one
/// with UDP right after the fixed header (as the kernel master sends), to `group`.
/// `ports` is net.ipv4.vs.sync_ports: a kernel master with n threads sends to the group's
/// port and the n - 1 after it, one per thread (`get_mcast_sockaddr`).
pub fn sync_payload(packet: &[u8], group: SocketAddr, ports: u16) -> Result<&[u8], Skip> {
    let (dst, udp) = match (packet.first().map(|b| b >> 4), group) {
        (None, _) => return Err(Skip::Truncated),
        (Some(4), SocketAddr::V4(_)) => ipv4_udp(packet)?,
        (Some(6), SocketAddr::V6(_)) => ipv6_udp(packet)?,
        _ => return Err(Skip::OtherFamily),
    };
    if udp.len() < UDP_HEADER {
        return Err(Skip::Truncated);
    }
    let port = u16::from_be_bytes([udp[2], udp[3]]);
    let first = group.port();
    if dst != group.ip() || port < first || u32::from(port) >= u32::from(first) + u32::from(ports) {
        return Err(Skip::OtherDestination);
    }
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if len < UDP_HEADER || len > udp.len() {
        return Err(Skip::BadLength);
    }
    Ok(&udp[UDP_HEADER..len])
}

/// Destination and the IP payload (to its total length) of an IPv4 packet carrying UDP.
fn ipv4_udp(packet: &[u8]) -> Result<(IpAddr, &[u8]), Skip> {
    if packet.len() < IPV4_MIN_HEADER {
        return Err(Skip::Truncated);
    }
    let header = usize::from(packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if header < IPV4_MIN_HEADER || total < header || total > packet.len() {
        return Err(Skip::Truncated);
    }
    if packet[9] != PROTO_UDP {
        return Err(Skip::NotUdp);
    }
    // More-fragments bit or a fragment offset: a sync message never needs fragmenting.
    if u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0 {
        return Err(Skip::Fragment);
    }
    let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    Ok((dst.into(), &packet[header..total]))
}

/// The same for IPv6. Extension headers (a fragment header among them) are not followed:
/// the kernel master's datagrams have none, so such a packet is not one of its messages.
fn ipv6_udp(packet: &[u8]) -> Result<(IpAddr, &[u8]), Skip> {
    if packet.len() < IPV6_HEADER {
        return Err(Skip::Truncated);
    }
    let payload = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    if IPV6_HEADER + payload > packet.len() {
        return Err(Skip::Truncated);
    }
    if packet[6] != PROTO_UDP {
        return Err(Skip::NotUdp);
    }
    let dst: [u8; 16] = packet[24..40].try_into().expect("16 bytes");
    Ok((
        Ipv6Addr::from(dst).into(),
        &packet[IPV6_HEADER..IPV6_HEADER + payload],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        Ipv4Addr::new(224, 0, 0, 81),
        8848,
    ));

    /// An IPv4/UDP packet as the kernel master sends it: 203.0.113.1 -> 224.0.0.81:8848,
    /// TTL 1, DF, carrying a 4-byte payload.
    fn packet() -> Vec<u8> {
        let mut p = vec![
            0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x01, 0x11, 0x00, 0x00, 203, 0, 113, 1,
            224, 0, 0, 81, // IPv4
            0x9c, 0x40, 0x22, 0x90, 0x00, 0x0c, 0x00, 0x00, // UDP 40000 -> 8848, len 12
            1, 2, 3, 4,
        ];
        p.extend_from_slice(&[0xee; 6]); // link padding past the IP total length
        p
    }

    #[test]
    fn extracts_the_payload() {
        assert_eq!(sync_payload(&packet(), GROUP, 1), Ok(&[1u8, 2, 3, 4][..]));
    }

    #[test]
    fn every_sync_port_of_a_multi_threaded_master_counts() {
        let mut next = packet();
        next[23] = 0x91; // 8849
        assert_eq!(sync_payload(&next, GROUP, 2), Ok(&[1u8, 2, 3, 4][..]));
        next[23] = 0x92; // 8850: a third thread's, not ours with two
        assert_eq!(sync_payload(&next, GROUP, 2), Err(Skip::OtherDestination));
        next[23] = 0x8f; // 8847
        assert_eq!(sync_payload(&next, GROUP, 2), Err(Skip::OtherDestination));
    }

    #[test]
    fn skips_everything_else() {
        let p = packet();
        assert_eq!(sync_payload(&p[..19], GROUP, 1), Err(Skip::Truncated));
        let mut other = p.clone();
        other[9] = 6;
        assert_eq!(sync_payload(&other, GROUP, 1), Err(Skip::NotUdp));
        let mut other = p.clone();
        other[23] = 0x91;
        assert_eq!(sync_payload(&other, GROUP, 1), Err(Skip::OtherDestination));
        let mut other = p.clone();
        other[19] = 82;
        assert_eq!(sync_payload(&other, GROUP, 1), Err(Skip::OtherDestination));
        let mut other = p.clone();
        other[6] = 0x20;
        assert_eq!(sync_payload(&other, GROUP, 1), Err(Skip::Fragment));
        let mut other = p.clone();
        other[25] = 0x40;
        assert_eq!(sync_payload(&other, GROUP, 1), Err(Skip::BadLength));
        let mut other = p;
        other[0] = 0x65;
        assert_eq!(sync_payload(&other, GROUP, 1), Err(Skip::OtherFamily));
    }

    /// The same datagram over IPv6, fe80::1 -> ff02::81:8848, hop limit 1.
    fn packet6() -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0x00, 0x0c, 17, 1];
        p.extend_from_slice(&Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).octets());
        p.extend_from_slice(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x81).octets());
        p.extend_from_slice(&[0x9c, 0x40, 0x22, 0x90, 0x00, 0x0c, 0x00, 0x00, 1, 2, 3, 4]);
        p
    }

    #[test]
    fn ipv6_groups_are_heard_too() {
        let group: SocketAddr = "[ff02::81]:8848".parse().unwrap();
        let p = packet6();
        assert_eq!(sync_payload(&p, group, 1), Ok(&[1u8, 2, 3, 4][..]));
        assert_eq!(sync_payload(&p[..39], group, 1), Err(Skip::Truncated));
        // Payload length past the packet.
        assert_eq!(sync_payload(&p[..50], group, 1), Err(Skip::Truncated));
        let mut other = p.clone();
        other[6] = 44; // a fragment header first
        assert_eq!(sync_payload(&other, group, 1), Err(Skip::NotUdp));
        let mut other = p.clone();
        other[39] = 0x82;
        assert_eq!(sync_payload(&other, group, 1), Err(Skip::OtherDestination));
        // Each family only with a group of its own.
        assert_eq!(sync_payload(&p, GROUP, 1), Err(Skip::OtherFamily));
        assert_eq!(sync_payload(&packet(), group, 1), Err(Skip::OtherFamily));
    }
}
