//! syncd's sockets: the sync port for peers' unicast, the group, the injector that hands
//! messages to the local kernel backup, and the packet tap that sees the local kernel
//! master's messages.
//!
//! Handing messages to the kernel backup by multicast with IP_MULTICAST_LOOP on was
//! verified in UML (tests/tests/uml_syncd.rs, where the backup's group differs from the
//! master's, so syncd is its only source): the looped copy is delivered to the kernel
//! backup's socket like a datagram from the wire.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;

use ipnet::IpNet;
use nix::sys::socket::{LinkAddr, SockaddrStorage, recvfrom};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockFilter, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;

pub fn if_index(name: &str) -> io::Result<u32> {
    Ok(nix::net::if_::if_nametoindex(name)?)
}

/// Addresses of `interface` with their prefixes: the addresses recognise our own datagrams
/// coming back, the subnets are who may send to the group unless `group_sources` says.
pub fn local_nets(interface: &str) -> Vec<IpNet> {
    let Ok(addresses) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let ip = |at: &SockaddrStorage| -> Option<IpAddr> {
        let v4 = at.as_sockaddr_in().map(|a| IpAddr::V4(a.ip()));
        v4.or_else(|| at.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
    };
    let ones = |mask: IpAddr| match mask {
        IpAddr::V4(m) => u32::from(m).count_ones() as u8,
        IpAddr::V6(m) => u128::from(m).count_ones() as u8,
    };
    addresses
        .filter(|ifa| ifa.interface_name == interface)
        .filter_map(|ifa| {
            let addr = ip(ifa.address.as_ref()?)?;
            let full = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = ifa.netmask.as_ref().and_then(ip).map_or(full, ones);
            IpNet::new(addr, prefix).ok()
        })
        .collect()
}

/// The unicast port for peers: bound to the wildcard address, and (with IP_MULTICAST_ALL
/// off and no membership) deaf to the group, so what arrives here was sent to this host
/// alone. Of the sync group's family, like the peers.
pub fn unicast_socket(ipv6: bool, port: u16) -> io::Result<UdpSocket> {
    let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    let any: IpAddr = if ipv6 {
        socket.set_only_v6(true)?;
        socket.set_multicast_all_v6(false)?;
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        socket.set_multicast_all_v4(false)?;
        Ipv4Addr::UNSPECIFIED.into()
    };
    socket.bind(&SocketAddr::new(any, port).into())?;
    UdpSocket::from_std(socket.into())
}

/// The group on the sync interface at one port: bound to the group address (so only
/// datagrams to it arrive) and a member on that interface. The kernel backup's socket is bound the same way
/// and marked reusable, so both coexist and both get every datagram to the group.
pub fn group_socket(group: SocketAddr, ifindex: u32) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(group), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    match group {
        SocketAddr::V4(group) => {
            socket.set_multicast_all_v4(false)?;
            socket.bind(&SocketAddr::V4(group).into())?;
            socket.join_multicast_v4_n(group.ip(), &InterfaceIndexOrAddress::Index(ifindex))?;
        }
        SocketAddr::V6(group) => {
            socket.set_only_v6(true)?;
            socket.set_multicast_all_v6(false)?;
            // A link-local group needs its interface as the scope, as the kernel backup's
            // socket is bound.
            let at = SocketAddrV6::new(*group.ip(), group.port(), 0, ifindex);
            socket.bind(&SocketAddr::V6(at).into())?;
            socket.join_multicast_v6(group.ip(), ifindex)?;
        }
    }
    UdpSocket::from_std(socket.into())
}

/// Sends to the group on the sync interface with multicast loop on, so the local kernel
/// backup (a member of the group on that interface) receives what we send.
pub fn inject_socket(group: SocketAddr, ifindex: u32, ttl: u8) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(group), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    if group.is_ipv6() {
        socket.set_multicast_if_v6(ifindex)?;
        socket.set_multicast_loop_v6(true)?;
        socket.set_multicast_hops_v6(u32::from(ttl))?;
    } else {
        multicast_if_index(&socket, ifindex)?;
        socket.set_multicast_loop_v4(true)?;
        socket.set_multicast_ttl_v4(u32::from(ttl))?;
    }
    UdpSocket::from_std(socket.into())
}

/// TTL (IPv4) or hop limit (IPv6) of what the injector sends.
pub fn set_inject_ttl(socket: &UdpSocket, ipv6: bool, ttl: u8) -> io::Result<()> {
    let socket = socket2::SockRef::from(socket);
    if ipv6 {
        socket.set_multicast_hops_v6(u32::from(ttl))
    } else {
        socket.set_multicast_ttl_v4(u32::from(ttl))
    }
}

/// IP_MULTICAST_IF by interface index (`ip_mreqn`), which works before the interface has
/// an address.
fn multicast_if_index(socket: &Socket, ifindex: u32) -> io::Result<()> {
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: ifindex as i32,
    };
    // No safe setter takes an index here (socket2's set_multicast_if_v4 takes an address).
    // SAFETY: `mreqn` is a valid ip_mreqn of the length given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&mreqn as *const libc::ip_mreqn).cast(),
            size_of::<libc::ip_mreqn>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An AF_PACKET tap on the sync interface giving packets without link header, with a
/// classic BPF filter so only UDP of the group's family to the sync ports reaches user space.
pub struct Tap {
    fd: AsyncFd<Socket>,
}

impl Tap {
    /// Taps UDP to `ports` ports from `port` on (one per kernel master thread).
    pub fn open(ifindex: u32, ipv6: bool, port: u16, ports: u16) -> io::Result<Tap> {
        // Outgoing packets reach only ETH_P_ALL taps (`dev_queue_xmit_nit`); the filter
        // below keeps IPv4.
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let socket = Socket::new(
            Domain::PACKET,
            Type::DGRAM.nonblocking().cloexec(),
            Some(Protocol::from(i32::from(proto))),
        )?;
        attach_filter(&socket, ipv6, port, ports)?;
        let sll = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: proto,
            sll_ifindex: ifindex as i32,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        // No safe bind takes a sockaddr_ll (socket2 and nix build one only from raw memory).
        // SAFETY: `sll` is a valid sockaddr_ll of the length given.
        let rc = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the socket is owned by the AsyncFd from here on, so its descriptor stays open
        // and the same for the AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)?;
        Ok(Tap { fd })
    }

    /// The next packet this host sent on the interface (received ones are skipped).
    pub async fn recv_outgoing(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let result = guard.try_io(|fd| {
                let (n, from) = recvfrom::<LinkAddr>(fd.as_raw_fd(), buf)?;
                Ok((n, from.map(|from| from.pkttype())))
            });
            match result {
                Ok(Ok((n, Some(kind)))) if kind == libc::PACKET_OUTGOING => return Ok(n),
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// `ip and udp and dst portrange <port>-<port + ports - 1>` on a packet starting at the
/// network header, fragments refused; for IPv6, `ip6` with UDP as the first next header.
fn attach_filter(socket: &Socket, ipv6: bool, port: u16, ports: u16) -> io::Result<()> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const LD_H_ABS: u16 = 0x28; // BPF_LD | BPF_H | BPF_ABS
    const LD_H_IND: u16 = 0x48; // BPF_LD | BPF_H | BPF_IND
    const LDX_MSH: u16 = 0xb1; // BPF_LDX | BPF_B | BPF_MSH
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const SKF_AD_PROTOCOL: u32 = 0xffff_f000; // SKF_AD_OFF + SKF_AD_PROTOCOL
    let op = SockFilter::new;
    let last = u32::from(port) + u32::from(ports.max(1)) - 1;
    let ipv6_program = [
        op(LD_W_ABS, 0, 0, SKF_AD_PROTOCOL), // ethertype
        op(JEQ_K, 0, 6, 0x86dd),             // IPv6, else drop
        op(LD_B_ABS, 0, 0, 6),               // next header
        op(JEQ_K, 0, 4, 17),                 // UDP, else drop
        op(LD_H_ABS, 0, 0, 42),              // UDP destination port
        op(JGE_K, 0, 2, u32::from(port)),    // below ours: drop
        op(JGT_K, 1, 0, last),               // above ours: drop
        op(RET_K, 0, 0, 0xffff),
        op(RET_K, 0, 0, 0),
    ];
    let ipv4_program = [
        op(LD_W_ABS, 0, 0, SKF_AD_PROTOCOL), // ethertype
        op(JEQ_K, 0, 9, 0x0800),             // IPv4, else drop
        op(LD_B_ABS, 0, 0, 9),               // protocol
        op(JEQ_K, 0, 7, 17),                 // UDP, else drop
        op(LD_H_ABS, 0, 0, 6),               // flags and fragment offset
        op(JSET_K, 5, 0, 0x3fff),            // a fragment: drop
        op(LDX_MSH, 0, 0, 0),                // X = header length
        op(LD_H_IND, 0, 0, 2),               // UDP destination port
        op(JGE_K, 0, 2, u32::from(port)),    // below ours: drop
        op(JGT_K, 1, 0, last),               // above ours: drop
        op(RET_K, 0, 0, 0xffff),
        op(RET_K, 0, 0, 0),
    ];
    socket.attach_filter(if ipv6 { &ipv6_program } else { &ipv4_program })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn loopback_has_its_index_and_its_networks() {
        assert!(if_index("lo").unwrap() > 0);
        assert!(if_index("no-such-if0").is_err());
        let nets = local_nets("lo");
        assert!(nets.contains(&"127.0.0.1/8".parse().unwrap()), "{nets:?}");
        assert!(local_nets("no-such-if0").is_empty());
    }

    /// Needs CAP_NET_RAW for the packet socket, as the UML lane has; elsewhere it says so.
    #[tokio::test]
    async fn the_tap_sees_our_own_datagrams_to_the_sync_ports_only() {
        let port = 40_000 + port_offset();
        let tap = match Tap::open(if_index("lo").unwrap(), false, port, 2) {
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                assert!(!nix::unistd::geteuid().is_root(), "{e}");
                return;
            }
            tap => tap.unwrap(),
        };
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Outside the range first: the filter keeps it from user space.
        sender.send_to(b"other", ("127.0.0.1", port + 2)).unwrap();
        sender.send_to(b"sync", ("127.0.0.1", port + 1)).unwrap();
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(5), tap.recv_outgoing(&mut buf))
            .await
            .expect("the tap saw nothing")
            .unwrap();
        // IPv4 header (20 bytes on loopback), UDP header, then the payload.
        assert_eq!(&buf[20 + 2..20 + 4], &(port + 1).to_be_bytes());
        assert_eq!(&buf[28..n], b"sync");
    }

    /// A port offset from the process id, so parallel test runs do not share a range.
    fn port_offset() -> u16 {
        (std::process::id() % 20_000) as u16
    }
}
