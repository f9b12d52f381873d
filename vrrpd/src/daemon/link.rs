//! What vrrpd does to an interface: virtual addresses by rtnetlink, gratuitous ARP and
//! unsolicited neighbour advertisements through an AF_PACKET socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use pnet::datalink::{
    self, Channel, Config as ChannelConfig, DataLinkSender, MacAddr, NetworkInterface,
};
use pnet::packet::MutablePacket;
use pnet::packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet::packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet::packet::icmpv6::{self, Icmpv6Packet};
use pnet::packet::ip::IpNextHeaderProtocols;
use pnet::packet::ipv6::MutableIpv6Packet;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};

/// One interface vrrpd manages.
pub struct Link {
    pub name: String,
    pub index: u32,
    pub mac: MacAddr,
    garp: Box<dyn DataLinkSender>,
}

impl Link {
    pub fn open(name: &str) -> io::Result<Self> {
        let interface: NetworkInterface = datalink::interfaces()
            .into_iter()
            .find(|i| i.name == name)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no interface {name}"))
            })?;
        let mac = interface.mac.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} has no MAC address"),
            )
        })?;
        let config = ChannelConfig {
            promiscuous: false,
            read_buffer_size: 1,
            ..ChannelConfig::default()
        };
        let garp = match datalink::channel(&interface, config)? {
            Channel::Ethernet(tx, _rx) => tx,
            _ => return Err(io::Error::other("unexpected channel type")),
        };
        Ok(Link {
            name: name.to_owned(),
            index: interface.index,
            mac,
            garp,
        })
    }

    /// One gratuitous ARP request for `vip`, as keepalived sends it: sender and target are the
    /// VIP, broadcast, so every neighbour that has an entry for the VIP repoints it at us.
    pub fn gratuitous_arp(&mut self, vip: Ipv4Addr) -> io::Result<()> {
        let frame = gratuitous_arp_frame(self.mac, vip);
        self.garp
            .send_to(&frame, None)
            .unwrap_or_else(|| Err(io::Error::other("no sender")))
    }
}

impl Link {
    /// One unsolicited neighbour advertisement for `vip` from our link-local `source`: the IPv6
    /// counterpart of the gratuitous ARP (RFC 5798 section 6.4.2). `router`: whether the
    /// interface forwards IPv6 ([`Link::forwards_v6`], read once per burst, not per VIP).
    pub fn unsolicited_na(
        &mut self,
        source: Ipv6Addr,
        vip: Ipv6Addr,
        router: bool,
    ) -> io::Result<()> {
        let frame = unsolicited_na_frame(self.mac, source, vip, router);
        self.garp
            .send_to(&frame, None)
            .unwrap_or_else(|| Err(io::Error::other("no sender")))
    }
}

impl Link {
    /// keepalived sets the NA's router flag only when the interface forwards IPv6, so a
    /// host-only pair does not make its neighbours list it as a router.
    pub fn forwards_v6(&self) -> bool {
        std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{}/forwarding", self.name))
            .is_ok_and(|value| value.trim() == "1")
    }
}

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ICMPV6_NEIGHBOUR_ADVERT: u8 = 136;
const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_OVERRIDE: u8 = 0x20;
const NDP_OPTION_TARGET_LL_ADDR: u8 = 2;
/// ICMPv6 header (4) + flags and reserved (4) + target (16) + target link-layer option (8).
const NA_LEN: usize = 32;

/// Ethernet / IPv6 (hop limit 255, to all nodes) / ICMPv6 neighbour advertisement with the
/// override flag, not solicited, and the target link-layer address option carrying our MAC:
/// what makes a neighbour that has an entry for `vip` repoint it at us.
pub fn unsolicited_na_frame(
    mac: MacAddr,
    source: Ipv6Addr,
    vip: Ipv6Addr,
    router: bool,
) -> [u8; 14 + 40 + NA_LEN] {
    let mut na = [0u8; NA_LEN];
    na[0] = ICMPV6_NEIGHBOUR_ADVERT;
    na[4] = NA_FLAG_OVERRIDE | if router { NA_FLAG_ROUTER } else { 0 };
    na[8..24].copy_from_slice(&vip.octets());
    na[24] = NDP_OPTION_TARGET_LL_ADDR;
    na[25] = 1; // in units of 8 bytes
    na[26..32].copy_from_slice(&mac.octets());
    let sum = icmpv6::checksum(
        &Icmpv6Packet::new(&na).expect("an NA holds an ICMPv6 header"),
        &source,
        &ALL_NODES,
    );
    na[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut frame = [0u8; 14 + 40 + NA_LEN];
    let mut ethernet = MutableEthernetPacket::new(&mut frame).expect("room for Ethernet");
    ethernet.set_destination(MacAddr::new(0x33, 0x33, 0, 0, 0, 1));
    ethernet.set_source(mac);
    ethernet.set_ethertype(EtherTypes::Ipv6);
    let mut ip = MutableIpv6Packet::new(ethernet.payload_mut()).expect("room for IPv6");
    ip.set_version(6);
    ip.set_payload_length(NA_LEN as u16);
    ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
    ip.set_hop_limit(255);
    ip.set_source(source);
    ip.set_destination(ALL_NODES);
    ip.payload_mut().copy_from_slice(&na);
    frame
}

pub fn gratuitous_arp_frame(mac: MacAddr, vip: Ipv4Addr) -> [u8; 42] {
    let mut frame = [0u8; 42];
    let mut ethernet = MutableEthernetPacket::new(&mut frame).expect("42 bytes hold an ARP frame");
    ethernet.set_destination(MacAddr::broadcast());
    ethernet.set_source(mac);
    ethernet.set_ethertype(EtherTypes::Arp);
    let mut arp = MutableArpPacket::new(ethernet.payload_mut()).expect("28 bytes of ARP");
    arp.set_hardware_type(ArpHardwareTypes::Ethernet);
    arp.set_protocol_type(EtherTypes::Ipv4);
    arp.set_hw_addr_len(6);
    arp.set_proto_addr_len(4);
    arp.set_operation(ArpOperations::Request);
    arp.set_sender_hw_addr(mac);
    arp.set_sender_proto_addr(vip);
    arp.set_target_hw_addr(MacAddr::broadcast());
    arp.set_target_proto_addr(vip);
    frame
}

/// The interface's index, if it exists.
pub fn index_of(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// The first IPv4 address of an interface: the advert source when none is configured.
pub fn primary_ipv4(name: &str) -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifaddr| {
        if ifaddr.interface_name != name {
            return None;
        }
        ifaddr.address?.as_sockaddr_in().map(|sin| sin.ip())
    })
}

/// The interface's link-local IPv6 address: the source of IPv6 adverts (RFC 5798 section 5.1.2.1).
pub fn link_local_ipv6(name: &str) -> Option<Ipv6Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifaddr| {
        if ifaddr.interface_name != name {
            return None;
        }
        let ip = ifaddr.address?.as_sockaddr_in6()?.ip();
        ip.is_unicast_link_local().then_some(ip)
    })
}

/// Makes the kernel keep the other addresses of a subnet when its primary one is deleted.
/// Without it, a backup instance removing its VIP 192.0.2.19/27 also takes away 192.0.2.20/27
/// of a master instance on the same interface, added after it and so a secondary of it.
/// keepalived sets the same on every interface it adds addresses to.
pub fn promote_secondaries(interface: &str) -> io::Result<()> {
    std::fs::write(
        format!("/proc/sys/net/ipv4/conf/{interface}/promote_secondaries"),
        "1",
    )
}

pub async fn add_address(
    handle: &Handle,
    index: u32,
    addr: IpAddr,
    prefix: u8,
) -> Result<(), rtnetlink::Error> {
    let mut request = handle.address().add(index, addr, prefix);
    if addr.is_ipv6() {
        // A VIP is moving to us, not new on the link: duplicate address detection would hold
        // it tentative for a second and might even see the old master's copy (keepalived
        // adds them NODAD too).
        request
            .message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match request.execute().await {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
        other => other,
    }
}

/// Removes `addr` from the interface if it is there; returns how many copies went.
///
/// First asked for by address and `prefix` (the configured one), which the kernel finds
/// without a dump; only when that finds nothing is the interface's list searched for a copy
/// with another prefix (a crashed run of an older config). A search per VIP was quadratic:
/// a master of 5,100 VIPs took minutes to leave, its event loop stalled all along.
pub async fn del_address(
    handle: &Handle,
    index: u32,
    addr: IpAddr,
    prefix: u8,
) -> Result<usize, rtnetlink::Error> {
    // The add request's message names exactly this address (IPv4: local and peer address),
    // which is what a delete must match.
    let mut template = handle.address().add(index, addr, prefix);
    let message = template.message_mut().clone();
    match handle.address().del(message).execute().await {
        Ok(()) => return Ok(1),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EADDRNOTAVAIL => {}
        Err(e) => return Err(e),
    }
    let mut found = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .set_address_filter(addr)
        .execute();
    let mut removed = 0;
    while let Some(message) = found.try_next().await? {
        handle.address().del(message).execute().await?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gratuitous_arp_is_a_broadcast_request_for_the_vip_itself() {
        let mac = MacAddr::new(0x02, 0, 0, 0, 0, 1);
        let frame = gratuitous_arp_frame(mac, Ipv4Addr::new(192, 0, 2, 100));
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x06, // ethernet
            0, 1, 0x08, 0, 6, 4, 0, 1, // ethernet/IPv4, request
            0x02, 0, 0, 0, 0, 1, 192, 0, 2, 100, // sender
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 192, 0, 2, 100, // target
        ];
        assert_eq!(frame, expected);
    }

    /// Field by field against RFC 4861 section 4.4, and the checksum by summing it back.
    #[test]
    fn unsolicited_na_overrides_and_carries_our_mac() {
        let mac = MacAddr::new(0x02, 0, 0, 0, 0, 1);
        let source = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
        let vip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
        let frame = unsolicited_na_frame(mac, source, vip, false);
        assert_eq!(
            &frame[..14],
            &[0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]
        );
        let ip = &frame[14..54];
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 32);
        assert_eq!((ip[6], ip[7]), (58, 255), "ICMPv6, hop limit 255");
        assert_eq!(&ip[8..24], &source.octets());
        assert_eq!(&ip[24..40], &ALL_NODES.octets());
        let na = &frame[54..];
        assert_eq!((na[0], na[1]), (136, 0));
        assert_eq!(na[4], 0x20, "override only: not solicited, not a router");
        assert_eq!(&na[8..24], &vip.octets());
        assert_eq!(&na[24..26], &[2, 1]);
        assert_eq!(&na[26..32], &[2, 0, 0, 0, 0, 1]);
        // The one's-complement sum over pseudo-header and message comes out as all ones.
        let mut sum: u32 = 0;
        let mut add = |bytes: &[u8]| {
            for pair in bytes.chunks(2) {
                sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
            }
        };
        add(&source.octets());
        add(&ALL_NODES.octets());
        add(&[0, 0, 0, 32, 0, 0, 0, 58]);
        add(na);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
        assert_eq!(unsolicited_na_frame(mac, source, vip, true)[54 + 4], 0xa0);
    }
}
