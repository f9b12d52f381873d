//! What vrrpd does to an interface: virtual addresses by rtnetlink, gratuitous ARP through an
//! AF_PACKET socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use pnet::datalink::{
    self, Channel, Config as ChannelConfig, DataLinkSender, MacAddr, NetworkInterface,
};
use pnet::packet::MutablePacket;
use pnet::packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet::packet::ethernet::{EtherTypes, MutableEthernetPacket};
use rtnetlink::Handle;

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

/// The first IPv4 address of an interface: the advert source when none is configured.
pub fn primary_ipv4(name: &str) -> Option<Ipv4Addr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifaddr| {
        if ifaddr.interface_name != name {
            return None;
        }
        ifaddr.address?.as_sockaddr_in().map(|sin| sin.ip())
    })
}

pub async fn add_address(
    handle: &Handle,
    index: u32,
    addr: IpAddr,
    prefix: u8,
) -> Result<(), rtnetlink::Error> {
    match handle.address().add(index, addr, prefix).execute().await {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
        other => other,
    }
}

pub async fn del_address(
    handle: &Handle,
    index: u32,
    addr: IpAddr,
) -> Result<(), rtnetlink::Error> {
    let mut found = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .set_address_filter(addr)
        .execute();
    while let Some(message) = found.try_next().await? {
        handle.address().del(message).execute().await?;
    }
    Ok(())
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
}
