//! Virtual services: the attributes nested in IPVS_CMD_ATTR_SERVICE and their typed form.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::{BitOr, BitOrAssign};

use netlink_packet_core::{DefaultNla, Nla, NlaBuffer, Parseable};

use crate::attr;
use crate::constants::*;
use crate::error::DecodeError;
use crate::stats::{Stats, StatsNla, nested_emit, nested_len};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressFamily {
    Inet,
    Inet6,
}

impl AddressFamily {
    pub fn to_u16(self) -> u16 {
        match self {
            AddressFamily::Inet => AF_INET,
            AddressFamily::Inet6 => AF_INET6,
        }
    }

    pub fn from_u16(v: u16) -> Result<Self, DecodeError> {
        match v {
            AF_INET => Ok(AddressFamily::Inet),
            AF_INET6 => Ok(AddressFamily::Inet6),
            other => Err(DecodeError::UnknownAddressFamily(other)),
        }
    }

    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        }
    }
}

/// Transport protocol of an address/port service (IP protocol numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Other(u16),
}

impl Protocol {
    pub fn to_u16(self) -> u16 {
        match self {
            Protocol::Tcp => IPPROTO_TCP,
            Protocol::Udp => IPPROTO_UDP,
            Protocol::Sctp => IPPROTO_SCTP,
            Protocol::Other(v) => v,
        }
    }

    pub fn from_u16(v: u16) -> Self {
        match v {
            IPPROTO_TCP => Protocol::Tcp,
            IPPROTO_UDP => Protocol::Udp,
            IPPROTO_SCTP => Protocol::Sctp,
            other => Protocol::Other(other),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
            Protocol::Other(_) => "other",
        }
    }
}

/// Service flags (`IP_VS_SVC_F_*`). The SCHED bits mean different things per scheduler:
/// sh-fallback/sh-port for `sh`, mh-fallback/mh-port for `mh`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ServiceFlags(pub u32);

impl ServiceFlags {
    pub const NONE: ServiceFlags = ServiceFlags(0);
    pub const PERSISTENT: ServiceFlags = ServiceFlags(IP_VS_SVC_F_PERSISTENT);
    /// Set by the kernel on every service in its table; ignored on input.
    pub const HASHED: ServiceFlags = ServiceFlags(IP_VS_SVC_F_HASHED);
    pub const ONEPACKET: ServiceFlags = ServiceFlags(IP_VS_SVC_F_ONEPACKET);
    pub const SCHED1: ServiceFlags = ServiceFlags(IP_VS_SVC_F_SCHED1);
    pub const SCHED2: ServiceFlags = ServiceFlags(IP_VS_SVC_F_SCHED2);
    pub const SCHED3: ServiceFlags = ServiceFlags(IP_VS_SVC_F_SCHED3);
    pub const SH_FALLBACK: ServiceFlags = Self::SCHED1;
    pub const SH_PORT: ServiceFlags = Self::SCHED2;
    pub const MH_FALLBACK: ServiceFlags = Self::SCHED1;
    pub const MH_PORT: ServiceFlags = Self::SCHED2;

    pub fn bits(self) -> u32 {
        self.0
    }

    pub fn contains(self, other: ServiceFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn without(self, other: ServiceFlags) -> ServiceFlags {
        ServiceFlags(self.0 & !other.0)
    }
}

impl BitOr for ServiceFlags {
    type Output = ServiceFlags;
    fn bitor(self, rhs: ServiceFlags) -> ServiceFlags {
        ServiceFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for ServiceFlags {
    fn bitor_assign(&mut self, rhs: ServiceFlags) {
        self.0 |= rhs.0;
    }
}

/// `struct ip_vs_flags`: the kernel applies `(old & !mask) | (flags & mask)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlagsMask {
    pub flags: u32,
    pub mask: u32,
}

impl FlagsMask {
    pub const LEN: usize = 8;
}

/// One attribute nested in IPVS_CMD_ATTR_SERVICE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceNla {
    Af(u16),
    Protocol(u16),
    /// `union nf_inet_addr`, always 16 bytes on the wire.
    Addr([u8; 16]),
    /// Host order here, network order on the wire.
    Port(u16),
    Fwmark(u32),
    SchedName(String),
    Flags(FlagsMask),
    /// Persistence timeout in seconds.
    Timeout(u32),
    /// The attribute as the kernel reads it (`nla_get_be32` does not swap): for IPv4 the
    /// mask's bytes in network order, for IPv6 the prefix length as a host-order u32.
    /// [`Service`] converts; this keeps the raw value so both re-emit exactly.
    Netmask(u32),
    Stats(Vec<StatsNla>),
    PeName(String),
    Stats64(Vec<StatsNla>),
    Other(DefaultNla),
}

impl Nla for ServiceNla {
    fn value_len(&self) -> usize {
        match self {
            ServiceNla::Af(_) | ServiceNla::Protocol(_) | ServiceNla::Port(_) => 2,
            ServiceNla::Addr(_) => 16,
            ServiceNla::Fwmark(_) | ServiceNla::Timeout(_) | ServiceNla::Netmask(_) => 4,
            ServiceNla::SchedName(s) | ServiceNla::PeName(s) => s.len() + 1,
            ServiceNla::Flags(_) => FlagsMask::LEN,
            ServiceNla::Stats(n) | ServiceNla::Stats64(n) => nested_len(n),
            ServiceNla::Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            ServiceNla::Af(_) => IPVS_SVC_ATTR_AF,
            ServiceNla::Protocol(_) => IPVS_SVC_ATTR_PROTOCOL,
            ServiceNla::Addr(_) => IPVS_SVC_ATTR_ADDR,
            ServiceNla::Port(_) => IPVS_SVC_ATTR_PORT,
            ServiceNla::Fwmark(_) => IPVS_SVC_ATTR_FWMARK,
            ServiceNla::SchedName(_) => IPVS_SVC_ATTR_SCHED_NAME,
            ServiceNla::Flags(_) => IPVS_SVC_ATTR_FLAGS,
            ServiceNla::Timeout(_) => IPVS_SVC_ATTR_TIMEOUT,
            ServiceNla::Netmask(_) => IPVS_SVC_ATTR_NETMASK,
            ServiceNla::Stats(_) => IPVS_SVC_ATTR_STATS,
            ServiceNla::PeName(_) => IPVS_SVC_ATTR_PE_NAME,
            ServiceNla::Stats64(_) => IPVS_SVC_ATTR_STATS64,
            ServiceNla::Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            ServiceNla::Af(v) | ServiceNla::Protocol(v) => {
                buf[..2].copy_from_slice(&v.to_ne_bytes());
            }
            ServiceNla::Port(v) => buf[..2].copy_from_slice(&v.to_be_bytes()),
            ServiceNla::Addr(a) => buf[..16].copy_from_slice(a),
            ServiceNla::Fwmark(v) | ServiceNla::Timeout(v) => {
                buf[..4].copy_from_slice(&v.to_ne_bytes());
            }
            ServiceNla::Netmask(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            ServiceNla::SchedName(s) | ServiceNla::PeName(s) => attr::emit_string(buf, s),
            ServiceNla::Flags(f) => {
                buf[..4].copy_from_slice(&f.flags.to_ne_bytes());
                buf[4..8].copy_from_slice(&f.mask.to_ne_bytes());
            }
            ServiceNla::Stats(n) | ServiceNla::Stats64(n) => nested_emit(n, buf),
            ServiceNla::Other(o) => o.emit_value(buf),
        }
    }
}

impl ServiceNla {
    pub fn parse(nla: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        Ok(match nla.kind() {
            IPVS_SVC_ATTR_AF => ServiceNla::Af(attr::u16(nla, "IPVS_SVC_ATTR_AF")?),
            IPVS_SVC_ATTR_PROTOCOL => {
                ServiceNla::Protocol(attr::u16(nla, "IPVS_SVC_ATTR_PROTOCOL")?)
            }
            IPVS_SVC_ATTR_ADDR => ServiceNla::Addr(attr::raw_addr(nla, "IPVS_SVC_ATTR_ADDR")?),
            IPVS_SVC_ATTR_PORT => ServiceNla::Port(attr::be16(nla, "IPVS_SVC_ATTR_PORT")?),
            IPVS_SVC_ATTR_FWMARK => ServiceNla::Fwmark(attr::u32(nla, "IPVS_SVC_ATTR_FWMARK")?),
            IPVS_SVC_ATTR_SCHED_NAME => {
                ServiceNla::SchedName(attr::string(nla, "IPVS_SVC_ATTR_SCHED_NAME")?)
            }
            IPVS_SVC_ATTR_FLAGS => {
                let v = nla.value();
                if v.len() != FlagsMask::LEN {
                    return Err(DecodeError::AttrLength {
                        attr: "IPVS_SVC_ATTR_FLAGS",
                        expected: FlagsMask::LEN,
                        got: v.len(),
                    });
                }
                ServiceNla::Flags(FlagsMask {
                    flags: u32::from_ne_bytes([v[0], v[1], v[2], v[3]]),
                    mask: u32::from_ne_bytes([v[4], v[5], v[6], v[7]]),
                })
            }
            IPVS_SVC_ATTR_TIMEOUT => ServiceNla::Timeout(attr::u32(nla, "IPVS_SVC_ATTR_TIMEOUT")?),
            IPVS_SVC_ATTR_NETMASK => ServiceNla::Netmask(attr::u32(nla, "IPVS_SVC_ATTR_NETMASK")?),
            IPVS_SVC_ATTR_STATS => ServiceNla::Stats(StatsNla::parse_all(nla.value())?),
            IPVS_SVC_ATTR_PE_NAME => {
                ServiceNla::PeName(attr::string(nla, "IPVS_SVC_ATTR_PE_NAME")?)
            }
            IPVS_SVC_ATTR_STATS64 => ServiceNla::Stats64(StatsNla::parse_all(nla.value())?),
            _ => ServiceNla::Other(
                DefaultNla::parse(nla).map_err(|e| DecodeError::Attribute(e.to_string()))?,
            ),
        })
    }

    pub fn parse_all(buf: &[u8]) -> Result<Vec<Self>, DecodeError> {
        attr::iter(buf)
            .map(|n| n.and_then(|n| ServiceNla::parse(&n)))
            .collect()
    }
}

/// What identifies a virtual service in the kernel table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    Inet {
        af: AddressFamily,
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    Fwmark {
        af: AddressFamily,
        mark: u32,
    },
}

impl ServiceKey {
    pub fn inet(protocol: Protocol, addr: SocketAddr) -> Self {
        ServiceKey::Inet {
            af: AddressFamily::of(&addr.ip()),
            protocol,
            addr: addr.ip(),
            port: addr.port(),
        }
    }

    pub fn tcp(addr: SocketAddr) -> Self {
        Self::inet(Protocol::Tcp, addr)
    }

    pub fn udp(addr: SocketAddr) -> Self {
        Self::inet(Protocol::Udp, addr)
    }

    pub fn sctp(addr: SocketAddr) -> Self {
        Self::inet(Protocol::Sctp, addr)
    }

    pub fn fwmark(af: AddressFamily, mark: u32) -> Self {
        ServiceKey::Fwmark { af, mark }
    }

    pub fn af(&self) -> AddressFamily {
        match self {
            ServiceKey::Inet { af, .. } | ServiceKey::Fwmark { af, .. } => *af,
        }
    }

    /// The identifying attributes, in the order ipvsadm sends them.
    pub fn to_nlas(&self) -> Vec<ServiceNla> {
        match self {
            ServiceKey::Inet {
                af,
                protocol,
                addr,
                port,
            } => vec![
                ServiceNla::Af(af.to_u16()),
                ServiceNla::Protocol(protocol.to_u16()),
                ServiceNla::Addr(attr::raw_from_addr(addr)),
                ServiceNla::Port(*port),
            ],
            ServiceKey::Fwmark { af, mark } => {
                vec![ServiceNla::Af(af.to_u16()), ServiceNla::Fwmark(*mark)]
            }
        }
    }

    /// The key plus the placeholder options ipvsadm sends where the kernel only looks at
    /// the key (destination commands, delete, zero): empty scheduler, no flags, timeout 0,
    /// the family's full netmask. Sending them keeps our requests byte-identical to
    /// ipvsadm's; the kernel ignores them.
    pub fn to_nlas_with_placeholders(&self) -> Vec<ServiceNla> {
        let mut nlas = self.to_nlas();
        nlas.push(ServiceNla::SchedName(String::new()));
        nlas.push(ServiceNla::Flags(FlagsMask {
            flags: 0,
            mask: u32::MAX,
        }));
        nlas.push(ServiceNla::Timeout(0));
        let af = self.af();
        nlas.push(ServiceNla::Netmask(netmask_to_wire(
            af,
            Service::default_netmask(af),
        )));
        nlas
    }

    pub fn from_nlas(nlas: &[ServiceNla]) -> Result<Self, DecodeError> {
        let (mut af, mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
        for n in nlas {
            match n {
                ServiceNla::Af(v) => af = Some(*v),
                ServiceNla::Protocol(v) => protocol = Some(*v),
                ServiceNla::Addr(v) => addr = Some(*v),
                ServiceNla::Port(v) => port = Some(*v),
                ServiceNla::Fwmark(v) => fwmark = Some(*v),
                _ => {}
            }
        }
        let af = AddressFamily::from_u16(af.ok_or(DecodeError::MissingAttr("IPVS_SVC_ATTR_AF"))?)?;
        // The kernel identifies by fwmark whenever one is present and non-zero.
        if let Some(mark) = fwmark.filter(|m| *m != 0) {
            return Ok(ServiceKey::Fwmark { af, mark });
        }
        let protocol = protocol.ok_or(DecodeError::MissingAttr("IPVS_SVC_ATTR_PROTOCOL"))?;
        let addr = addr.ok_or(DecodeError::MissingAttr("IPVS_SVC_ATTR_ADDR"))?;
        let port = port.ok_or(DecodeError::MissingAttr("IPVS_SVC_ATTR_PORT"))?;
        Ok(ServiceKey::Inet {
            af,
            protocol: Protocol::from_u16(protocol),
            addr: attr::addr_from_raw(af.to_u16(), &addr)?,
            port,
        })
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Inet {
                protocol,
                addr,
                port,
                ..
            } => {
                write!(f, "{} {}", protocol.as_str(), SocketAddr::new(*addr, *port))
            }
            ServiceKey::Fwmark {
                af: AddressFamily::Inet,
                mark,
            } => write!(f, "fwmark {mark}"),
            ServiceKey::Fwmark {
                af: AddressFamily::Inet6,
                mark,
            } => {
                write!(f, "fwmark {mark} ipv6")
            }
        }
    }
}

/// A virtual service: its key, its scheduling options and, in kernel replies, counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    pub scheduler: String,
    pub pe_name: Option<String>,
    pub flags: ServiceFlags,
    /// Which flag bits this request sets; kernel replies carry all ones.
    pub flags_mask: u32,
    /// Persistence timeout in seconds (only meaningful with [`ServiceFlags::PERSISTENT`]).
    pub timeout: u32,
    /// Persistence granularity: an IPv4 mask in host order (`0xffff_ff00` for /24), or
    /// for IPv6 a prefix length.
    pub netmask: u32,
    /// Counters from a kernel reply: the 64-bit set when present, else the 32-bit one.
    pub stats: Option<Stats>,
}

impl Service {
    pub fn new(key: ServiceKey, scheduler: impl Into<String>) -> Self {
        Service {
            key,
            scheduler: scheduler.into(),
            pe_name: None,
            flags: ServiceFlags::NONE,
            flags_mask: u32::MAX,
            timeout: 0,
            netmask: Self::default_netmask(key.af()),
            stats: None,
        }
    }

    /// What ipvsadm uses when no `-M` is given: all ones for IPv4, /128 for IPv6.
    pub fn default_netmask(af: AddressFamily) -> u32 {
        match af {
            AddressFamily::Inet => u32::MAX,
            AddressFamily::Inet6 => 128,
        }
    }

    pub fn persistent(mut self, timeout: u32) -> Self {
        self.flags |= ServiceFlags::PERSISTENT;
        self.timeout = timeout;
        self
    }

    pub fn with_netmask(mut self, netmask: u32) -> Self {
        self.netmask = netmask;
        self
    }

    pub fn with_flags(mut self, flags: ServiceFlags) -> Self {
        self.flags |= flags;
        self
    }

    pub fn with_pe(mut self, pe_name: impl Into<String>) -> Self {
        self.pe_name = Some(pe_name.into());
        self
    }

    /// Attributes for NEW_SERVICE / SET_SERVICE, in ipvsadm's order. Counters are never
    /// sent.
    pub fn to_nlas(&self) -> Vec<ServiceNla> {
        let mut nlas = self.key.to_nlas();
        nlas.push(ServiceNla::SchedName(self.scheduler.clone()));
        if let Some(pe) = &self.pe_name {
            nlas.push(ServiceNla::PeName(pe.clone()));
        }
        nlas.push(ServiceNla::Flags(FlagsMask {
            flags: self.flags.0,
            mask: self.flags_mask,
        }));
        nlas.push(ServiceNla::Timeout(self.timeout));
        nlas.push(ServiceNla::Netmask(netmask_to_wire(
            self.key.af(),
            self.netmask,
        )));
        nlas
    }

    /// Attributes as the kernel fills them in a reply, counters included.
    pub fn to_reply_nlas(&self) -> Vec<ServiceNla> {
        let mut nlas = self.to_nlas();
        if let Some(stats) = &self.stats {
            nlas.push(ServiceNla::Stats(stats.to_nlas32()));
            nlas.push(ServiceNla::Stats64(stats.to_nlas64()));
        }
        nlas
    }

    pub fn from_nlas(nlas: &[ServiceNla]) -> Result<Self, DecodeError> {
        let key = ServiceKey::from_nlas(nlas)?;
        let mut svc = Service::new(key, String::new());
        let (mut stats32, mut stats64) = (None, None);
        for n in nlas {
            match n {
                ServiceNla::SchedName(s) => svc.scheduler = s.clone(),
                ServiceNla::PeName(s) => svc.pe_name = Some(s.clone()),
                ServiceNla::Flags(f) => {
                    svc.flags = ServiceFlags(f.flags);
                    svc.flags_mask = f.mask;
                }
                ServiceNla::Timeout(t) => svc.timeout = *t,
                ServiceNla::Netmask(m) => svc.netmask = netmask_from_wire(key.af(), *m),
                ServiceNla::Stats(s) => stats32 = Some(Stats::from_nlas(s)),
                ServiceNla::Stats64(s) => stats64 = Some(Stats::from_nlas(s)),
                _ => {}
            }
        }
        svc.stats = stats64.or(stats32);
        Ok(svc)
    }
}

/// IPv4 masks travel in network order, IPv6 prefix lengths in host order (ipvsadm puts
/// both with `NLA_PUT_U32`, the kernel reads both with `nla_get_be32`, which is a plain
/// load). `netmask` is what [`Service::netmask`] holds.
pub fn netmask_to_wire(af: AddressFamily, netmask: u32) -> u32 {
    match af {
        AddressFamily::Inet => u32::from_ne_bytes(netmask.to_be_bytes()),
        AddressFamily::Inet6 => netmask,
    }
}

pub fn netmask_from_wire(af: AddressFamily, raw: u32) -> u32 {
    match af {
        AddressFamily::Inet => u32::from_be_bytes(raw.to_ne_bytes()),
        AddressFamily::Inet6 => raw,
    }
}
