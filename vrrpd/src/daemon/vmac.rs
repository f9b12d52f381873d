//! The virtual MAC (keepalived's `use_vmac`): a macvlan over the instance's interface with
//! the address 00-00-5E-00-01-{VRID} (IPv6: 00-00-5E-00-02-{VRID}). The VIPs live on it, and
//! the adverts, gratuitous ARPs and neighbour advertisements leave from it, so after a failover
//! the clients' neighbour entries already point at the right MAC and only the switches have
//! to relearn the port.
//!
//! Adverts are received on the macvlan too, as keepalived does: a frame whose source is the
//! macvlan's own MAC (the peer's adverts, sent from the same virtual MAC) is handed to the
//! private-mode macvlan alone, never to the base interface. With unicast peers, which address
//! the base interface, adverts go and come on the base (keepalived's vmac_xmit_base).
//!
//! Made as keepalived makes it: private mode, created down, kernel settings first, then up;
//! kept for the daemon's life in every state and removed when the instance stops.

use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use tokio::task::JoinHandle;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage, MacVlanMode};
use rtnetlink::{Handle, LinkMacVlan, LinkUnspec};
use vrrpd::wire::virtual_mac;

use super::link::{self, Link};
use super::socket::VrrpSocket;

#[derive(Debug, thiserror::Error)]
pub enum VmacError {
    #[error("{0} exists and is not a macvlan: refusing to replace it")]
    NotMacvlan(String),
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    #[error("macvlan {0} vanished right after it was made")]
    Vanished(String),
    #[error("{path}: {source}")]
    Sysctl { path: String, source: io::Error },
    #[error("{what} on {name}: {source}")]
    Open {
        what: &'static str,
        name: String,
        source: io::Error,
    },
}

/// A macvlan this daemon made and removes.
pub struct Vmac {
    /// Its index and its (virtual) MAC, and the sender of gratuitous ARPs / NAs from it.
    pub link: Link,
    /// Adverts with the virtual MAC as Ethernet source, and the peer's; none with unicast peers.
    pub socket: Option<Arc<VrrpSocket>>,
    /// Reads `socket` into the daemon's channel.
    pub receiver: Option<JoinHandle<()>>,
}

impl Drop for Vmac {
    fn drop(&mut self) {
        if let Some(receiver) = &self.receiver {
            receiver.abort();
        }
    }
}

/// What a vmac needs set on its base interface, saved to be put back by [`restore_base`].
pub struct BaseSettings(Vec<(String, String)>);

/// The base interface (IPv4 only) must not answer ARP for the VIPs, which are on the macvlan
/// (arp_ignore), nor for its own addresses on the macvlan's behalf (arp_filter), as keepalived
/// sets it; or clients would learn the base MAC instead of the virtual one. Beyond keepalived:
/// the base's own ARP requests must not name a VIP as sender (arp_announce 2 names the base's
/// address), since replies from a VIP leave through the base by the older connected route,
/// and a client asked "who has <client>, tell <VIP>" would repoint the VIP at the base MAC.
const BASE_SYSCTLS: [(&str, &str); 3] = [
    ("arp_ignore", "1"),
    ("arp_filter", "1"),
    ("arp_announce", "2"),
];

/// keepalived's settings on an IPv4 macvlan: answer ARP only for its own addresses (the
/// VIPs), accept the peer's packets sourced from a local address, accept packets although the
/// macvlan has no address of the sender's subnet until it is master, and keep the other VIPs
/// when the first one is removed.
const VMAC_SYSCTLS: [(&str, &str); 4] = [
    ("arp_ignore", "1"),
    ("accept_local", "1"),
    ("rp_filter", "0"),
    ("promote_secondaries", "1"),
];

fn ipv4_conf(interface: &str, key: &str) -> String {
    format!("/proc/sys/net/ipv4/conf/{interface}/{key}")
}

fn ipv6_conf(interface: &str, key: &str) -> String {
    format!("/proc/sys/net/ipv6/conf/{interface}/{key}")
}

fn write_sysctl(path: String, value: &str) -> Result<(), VmacError> {
    std::fs::write(&path, value).map_err(|source| VmacError::Sysctl { path, source })
}

/// Sets the base interface's ARP settings, returning what they were.
pub fn configure_base(base: &str) -> Result<BaseSettings, VmacError> {
    let mut saved = Vec::new();
    for (key, value) in BASE_SYSCTLS {
        let path = ipv4_conf(base, key);
        let old = std::fs::read_to_string(&path).map_err(|source| VmacError::Sysctl {
            path: path.clone(),
            source,
        })?;
        write_sysctl(path.clone(), value)?;
        saved.push((path, old.trim().to_owned()));
    }
    Ok(BaseSettings(saved))
}

/// Puts back what [`configure_base`] changed, once the base carries no vmac any more.
pub fn restore_base(settings: BaseSettings) -> Result<(), VmacError> {
    for (path, value) in settings.0 {
        write_sysctl(path, &value)?;
    }
    Ok(())
}

async fn find(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, rtnetlink::Error> {
    let mut found = handle.link().get().match_name(name.to_owned()).execute();
    match found.try_next().await {
        Ok(message) => Ok(message),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_macvlan(message: &LinkMessage) -> bool {
    message.attributes.iter().any(|attribute| {
        matches!(attribute, LinkAttribute::LinkInfo(infos)
            if infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::MacVlan))))
    })
}

/// Makes the macvlan `name` over `base` for `vrid`, replacing a macvlan of that name left
/// behind (a crashed run leaves one, with its VIPs still on it). `ll_source` is the IPv6
/// instance's advert source, which the macvlan gets as its only link-local address so that
/// adverts leave from a non-VIP address with the virtual MAC (RFC 5798 section 7.4).
pub async fn create(
    handle: &Handle,
    base: &Link,
    name: &str,
    vrid: u8,
    ll_source: Option<Ipv6Addr>,
    multicast: bool,
) -> Result<Vmac, VmacError> {
    remove_stale(handle, name).await?;
    let ipv6 = ll_source.is_some();
    handle
        .link()
        .add(
            LinkMacVlan::new(name, base.index, MacVlanMode::Private)
                .address(virtual_mac(vrid, ipv6).to_vec())
                .build(),
        )
        .execute()
        .await?;
    let index = find(handle, name)
        .await?
        .ok_or_else(|| VmacError::Vanished(name.to_owned()))?
        .header
        .index;
    // Settings before the link comes up, so it never runs a moment without them.
    let settings = configure(name, ll_source.is_some());
    let up = async {
        settings?;
        if let Some(source) = ll_source {
            link::add_address(handle, index, IpAddr::V6(source), 64).await?;
        }
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await?;
        open(name, index, ll_source, multicast)
    };
    match up.await {
        Ok(vmac) => Ok(vmac),
        Err(e) => {
            let _ = handle.link().del(index).execute().await;
            Err(e)
        }
    }
}

fn configure(name: &str, ipv6: bool) -> Result<(), VmacError> {
    if ipv6 {
        // No EUI-64 link-local from the virtual MAC: both routers would have the same one.
        write_sysctl(ipv6_conf(name, "addr_gen_mode"), "1")
    } else {
        for (key, value) in VMAC_SYSCTLS {
            write_sysctl(ipv4_conf(name, key), value)?;
        }
        // An IPv4 vmac needs no IPv6, whose address autoconfiguration and MLD reports would
        // come from the virtual MAC on the backup too and pull the switch's port to it.
        write_sysctl(ipv6_conf(name, "disable_ipv6"), "1")
    }
}

fn open(
    name: &str,
    index: u32,
    ll_source: Option<Ipv6Addr>,
    multicast: bool,
) -> Result<Vmac, VmacError> {
    let opened = |what, source| VmacError::Open {
        what,
        name: name.to_owned(),
        source,
    };
    let link = Link::open(name).map_err(|e| opened("packet socket", e))?;
    let socket = if multicast {
        let socket = match ll_source {
            Some(_) => VrrpSocket::open_v6(name, index),
            None => VrrpSocket::open_v4(name, index),
        }
        .map_err(|e| opened("VRRP socket", e))?;
        Some(Arc::new(socket))
    } else {
        None
    };
    Ok(Vmac {
        link,
        socket,
        receiver: None,
    })
}

/// Removes the macvlan `name` (and the VIPs on it) that a crashed run left behind; returns
/// whether there was one. Anything else of that name is not ours to remove.
pub async fn remove_stale(handle: &Handle, name: &str) -> Result<bool, VmacError> {
    let Some(stale) = find(handle, name).await? else {
        return Ok(false);
    };
    if !is_macvlan(&stale) {
        return Err(VmacError::NotMacvlan(name.to_owned()));
    }
    handle.link().del(stale.header.index).execute().await?;
    Ok(true)
}

/// Removes the macvlan, and with it the VIPs still on it.
pub async fn remove(handle: &Handle, vmac: Vmac) -> Result<(), VmacError> {
    handle.link().del(vmac.link.index).execute().await?;
    Ok(())
}
