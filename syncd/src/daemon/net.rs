//! syncd's sockets: the sync port for peers' unicast, the group, the injector that hands
//! messages to the local kernel backup, and the packet tap that sees the local kernel
//! master's messages.
//!
//! Handing messages to the kernel backup by multicast with IP_MULTICAST_LOOP on was
//! verified in UML (tests/tests/uml_syncd.rs, where the backup's group differs from the
//! master's, so syncd is its only source): the looped copy is delivered to the kernel
//! backup's socket like a datagram from the wire.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;

pub fn if_index(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

/// Addresses of `interface` with their prefixes: the addresses recognise our own datagrams
/// coming back, the subnets are who may send to the group unless `group_sources` says.
pub fn local_nets(interface: &str) -> Vec<IpNet> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and free once.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut at = head;
        while !at.is_null() {
            let ifa = &*at;
            at = ifa.ifa_next;
            if ifa.ifa_addr.is_null() {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name);
            if name.to_bytes() != interface.as_bytes() {
                continue;
            }
            let mask = ifa.ifa_netmask;
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let addr = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                    let prefix = if mask.is_null() {
                        32
                    } else {
                        let m = &*(mask as *const libc::sockaddr_in);
                        u32::from_be(m.sin_addr.s_addr).count_ones() as u8
                    };
                    out.extend(Ipv4Net::new(addr, prefix).ok().map(IpNet::V4));
                }
                libc::AF_INET6 => {
                    let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let addr = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                    let prefix = if mask.is_null() {
                        128
                    } else {
                        let m = &*(mask as *const libc::sockaddr_in6);
                        u128::from_be_bytes(m.sin6_addr.s6_addr).count_ones() as u8
                    };
                    out.extend(Ipv6Net::new(addr, prefix).ok().map(IpNet::V6));
                }
                _ => {}
            }
        }
        libc::freeifaddrs(head);
    }
    out
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
    fd: AsyncFd<OwnedFd>,
}

impl Tap {
    /// Taps UDP to `ports` ports from `port` on (one per kernel master thread).
    pub fn open(ifindex: u32, ipv6: bool, port: u16, ports: u16) -> io::Result<Tap> {
        // Outgoing packets reach only ETH_P_ALL taps (`dev_queue_xmit_nit`); the filter
        // below keeps IPv4.
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2); the result is checked and owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        attach_filter(&fd, ipv6, port, ports)?;
        // SAFETY: sockaddr_ll is plain data; zero is a valid starting value.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the length given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: an OwnedFd is open for its whole life and always returns the same fd.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(Tap { fd })
    }

    /// The next packet this host sent on the interface (received ones are skipped).
    pub async fn recv_outgoing(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let result = guard.try_io(|fd| {
                // SAFETY: plain data, zero-initialised, filled by recvfrom.
                let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
                let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                // SAFETY: buf and sll are valid for the lengths passed.
                let n = unsafe {
                    libc::recvfrom(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&mut sll as *mut libc::sockaddr_ll).cast(),
                        &mut len,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok((n as usize, sll.sll_pkttype))
            });
            match result {
                Ok(Ok((n, kind))) if kind == libc::PACKET_OUTGOING => return Ok(n),
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// `ip and udp and dst portrange <port>-<port + ports - 1>` on a packet starting at the
/// network header, fragments refused; for IPv6, `ip6` with UDP as the first next header.
fn attach_filter(fd: &OwnedFd, ipv6: bool, port: u16, ports: u16) -> io::Result<()> {
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
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
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
    let program: &[libc::sock_filter] = if ipv6 { &ipv6_program } else { &ipv4_program };
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `program`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
