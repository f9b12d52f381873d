//! Packet formats, smoltcp style: a borrowed [`vrrp::Packet`] view with checked
//! accessors and an owned [`vrrp::Repr`] with `parse` / `emit`.

pub mod checksum;
pub mod vrrp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use vrrp::{Addresses, Auth, Body, Error, Packet, Repr, Version};

/// IP protocol number of VRRP (both versions).
pub const IP_PROTO_VRRP: u8 = 112;
/// TTL / hop limit VRRP packets are sent with and must arrive with.
pub const VRRP_TTL: u8 = 255;
/// IPv4 multicast group of VRRP.
pub const VRRP_GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP (link-local scope).
pub const VRRP_GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// The source and destination of the IP packet that carries a VRRP message.
///
/// VRRPv3 folds them into its checksum (pseudo-header); for VRRPv2 only the
/// family matters, because RFC 3768 is IPv4-only. Keeping both addresses in one
/// family-typed value makes a mixed IPv4/IPv6 pair unrepresentable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpPair {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl IpPair {
    /// `None` when `src` and `dst` are of different families.
    pub fn new(src: IpAddr, dst: IpAddr) -> Option<IpPair> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Some(IpPair::V4 { src, dst }),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Some(IpPair::V6 { src, dst }),
            _ => None,
        }
    }

    pub fn src(&self) -> IpAddr {
        match *self {
            IpPair::V4 { src, .. } => IpAddr::V4(src),
            IpPair::V6 { src, .. } => IpAddr::V6(src),
        }
    }

    pub fn dst(&self) -> IpAddr {
        match *self {
            IpPair::V4 { dst, .. } => IpAddr::V4(dst),
            IpPair::V6 { dst, .. } => IpAddr::V6(dst),
        }
    }

    pub fn is_ipv4(&self) -> bool {
        matches!(self, IpPair::V4 { .. })
    }
}

/// Virtual router MAC address: 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID}
/// for IPv6 (RFC 5798 section 7.3).
pub fn virtual_mac(vrid: u8, ipv6: bool) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, if ipv6 { 0x02 } else { 0x01 }, vrid]
}
