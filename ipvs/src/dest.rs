//! Real servers: the attributes nested in IPVS_CMD_ATTR_DEST and their typed form.

use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{DefaultNla, Nla, NlaBuffer, Parseable};

use crate::attr;
use crate::constants::*;
use crate::error::DecodeError;
use crate::service::AddressFamily;
use crate::stats::{Stats, StatsNla, nested_emit, nested_len};

/// How packets reach a real server (`IP_VS_CONN_F_*` forwarding bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardMethod {
    /// NAT (`-m`).
    Masq,
    /// The director itself.
    Local,
    /// IP-in-IP / GUE / GRE (`-i`).
    Tunnel,
    /// Direct routing (`-g`).
    Route,
}

impl ForwardMethod {
    pub fn to_u32(self) -> u32 {
        match self {
            ForwardMethod::Masq => IP_VS_CONN_F_MASQ,
            ForwardMethod::Local => IP_VS_CONN_F_LOCALNODE,
            ForwardMethod::Tunnel => IP_VS_CONN_F_TUNNEL,
            ForwardMethod::Route => IP_VS_CONN_F_DROUTE,
        }
    }

    pub fn from_u32(v: u32) -> Result<Self, DecodeError> {
        match v & IP_VS_CONN_F_FWD_MASK {
            IP_VS_CONN_F_MASQ => Ok(ForwardMethod::Masq),
            IP_VS_CONN_F_LOCALNODE => Ok(ForwardMethod::Local),
            IP_VS_CONN_F_TUNNEL => Ok(ForwardMethod::Tunnel),
            IP_VS_CONN_F_DROUTE => Ok(ForwardMethod::Route),
            _ => Err(DecodeError::UnknownForwardMethod(v)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ForwardMethod::Masq => "Masq",
            ForwardMethod::Local => "Local",
            ForwardMethod::Tunnel => "Tunnel",
            ForwardMethod::Route => "Route",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TunnelType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunnelType {
    pub fn to_u8(self) -> u8 {
        match self {
            TunnelType::Ipip => IP_VS_CONN_F_TUNNEL_TYPE_IPIP,
            TunnelType::Gue => IP_VS_CONN_F_TUNNEL_TYPE_GUE,
            TunnelType::Gre => IP_VS_CONN_F_TUNNEL_TYPE_GRE,
        }
    }

    pub fn from_u8(v: u8) -> Result<Self, DecodeError> {
        match v {
            IP_VS_CONN_F_TUNNEL_TYPE_IPIP => Ok(TunnelType::Ipip),
            IP_VS_CONN_F_TUNNEL_TYPE_GUE => Ok(TunnelType::Gue),
            IP_VS_CONN_F_TUNNEL_TYPE_GRE => Ok(TunnelType::Gre),
            other => Err(DecodeError::UnknownTunnelType(other)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        }
    }
}

/// Tunnel encapsulation flags (`IP_VS_TUNNEL_ENCAP_FLAG_*`); no bit set means no checksum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TunnelFlags(pub u16);

impl TunnelFlags {
    pub const NOCSUM: TunnelFlags = TunnelFlags(IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM);
    pub const CSUM: TunnelFlags = TunnelFlags(IP_VS_TUNNEL_ENCAP_FLAG_CSUM);
    pub const REMCSUM: TunnelFlags = TunnelFlags(IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM);

    pub fn contains(self, other: TunnelFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

/// One attribute nested in IPVS_CMD_ATTR_DEST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestNla {
    Addr([u8; 16]),
    /// Host order here, network order on the wire.
    Port(u16),
    FwdMethod(u32),
    Weight(u32),
    UThresh(u32),
    LThresh(u32),
    ActiveConns(u32),
    InactConns(u32),
    PersistConns(u32),
    Stats(Vec<StatsNla>),
    AddrFamily(u16),
    Stats64(Vec<StatsNla>),
    TunType(u8),
    /// Host order here, network order on the wire.
    TunPort(u16),
    TunFlags(u16),
    Other(DefaultNla),
}

impl Nla for DestNla {
    fn value_len(&self) -> usize {
        match self {
            DestNla::Addr(_) => 16,
            DestNla::Port(_)
            | DestNla::AddrFamily(_)
            | DestNla::TunPort(_)
            | DestNla::TunFlags(_) => 2,
            DestNla::TunType(_) => 1,
            DestNla::FwdMethod(_)
            | DestNla::Weight(_)
            | DestNla::UThresh(_)
            | DestNla::LThresh(_)
            | DestNla::ActiveConns(_)
            | DestNla::InactConns(_)
            | DestNla::PersistConns(_) => 4,
            DestNla::Stats(n) | DestNla::Stats64(n) => nested_len(n),
            DestNla::Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            DestNla::Addr(_) => IPVS_DEST_ATTR_ADDR,
            DestNla::Port(_) => IPVS_DEST_ATTR_PORT,
            DestNla::FwdMethod(_) => IPVS_DEST_ATTR_FWD_METHOD,
            DestNla::Weight(_) => IPVS_DEST_ATTR_WEIGHT,
            DestNla::UThresh(_) => IPVS_DEST_ATTR_U_THRESH,
            DestNla::LThresh(_) => IPVS_DEST_ATTR_L_THRESH,
            DestNla::ActiveConns(_) => IPVS_DEST_ATTR_ACTIVE_CONNS,
            DestNla::InactConns(_) => IPVS_DEST_ATTR_INACT_CONNS,
            DestNla::PersistConns(_) => IPVS_DEST_ATTR_PERSIST_CONNS,
            DestNla::Stats(_) => IPVS_DEST_ATTR_STATS,
            DestNla::AddrFamily(_) => IPVS_DEST_ATTR_ADDR_FAMILY,
            DestNla::Stats64(_) => IPVS_DEST_ATTR_STATS64,
            DestNla::TunType(_) => IPVS_DEST_ATTR_TUN_TYPE,
            DestNla::TunPort(_) => IPVS_DEST_ATTR_TUN_PORT,
            DestNla::TunFlags(_) => IPVS_DEST_ATTR_TUN_FLAGS,
            DestNla::Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            DestNla::Addr(a) => buf[..16].copy_from_slice(a),
            DestNla::Port(v) | DestNla::TunPort(v) => buf[..2].copy_from_slice(&v.to_be_bytes()),
            DestNla::AddrFamily(v) | DestNla::TunFlags(v) => {
                buf[..2].copy_from_slice(&v.to_ne_bytes());
            }
            DestNla::TunType(v) => buf[0] = *v,
            DestNla::FwdMethod(v)
            | DestNla::Weight(v)
            | DestNla::UThresh(v)
            | DestNla::LThresh(v)
            | DestNla::ActiveConns(v)
            | DestNla::InactConns(v)
            | DestNla::PersistConns(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            DestNla::Stats(n) | DestNla::Stats64(n) => nested_emit(n, buf),
            DestNla::Other(o) => o.emit_value(buf),
        }
    }
}

impl DestNla {
    pub fn parse(nla: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        Ok(match nla.kind() {
            IPVS_DEST_ATTR_ADDR => DestNla::Addr(attr::raw_addr(nla, "IPVS_DEST_ATTR_ADDR")?),
            IPVS_DEST_ATTR_PORT => DestNla::Port(attr::be16(nla, "IPVS_DEST_ATTR_PORT")?),
            IPVS_DEST_ATTR_FWD_METHOD => {
                DestNla::FwdMethod(attr::u32(nla, "IPVS_DEST_ATTR_FWD_METHOD")?)
            }
            IPVS_DEST_ATTR_WEIGHT => DestNla::Weight(attr::u32(nla, "IPVS_DEST_ATTR_WEIGHT")?),
            IPVS_DEST_ATTR_U_THRESH => DestNla::UThresh(attr::u32(nla, "IPVS_DEST_ATTR_U_THRESH")?),
            IPVS_DEST_ATTR_L_THRESH => DestNla::LThresh(attr::u32(nla, "IPVS_DEST_ATTR_L_THRESH")?),
            IPVS_DEST_ATTR_ACTIVE_CONNS => {
                DestNla::ActiveConns(attr::u32(nla, "IPVS_DEST_ATTR_ACTIVE_CONNS")?)
            }
            IPVS_DEST_ATTR_INACT_CONNS => {
                DestNla::InactConns(attr::u32(nla, "IPVS_DEST_ATTR_INACT_CONNS")?)
            }
            IPVS_DEST_ATTR_PERSIST_CONNS => {
                DestNla::PersistConns(attr::u32(nla, "IPVS_DEST_ATTR_PERSIST_CONNS")?)
            }
            IPVS_DEST_ATTR_STATS => DestNla::Stats(StatsNla::parse_all(nla.value())?),
            IPVS_DEST_ATTR_ADDR_FAMILY => {
                DestNla::AddrFamily(attr::u16(nla, "IPVS_DEST_ATTR_ADDR_FAMILY")?)
            }
            IPVS_DEST_ATTR_STATS64 => DestNla::Stats64(StatsNla::parse_all(nla.value())?),
            IPVS_DEST_ATTR_TUN_TYPE => DestNla::TunType(attr::u8(nla, "IPVS_DEST_ATTR_TUN_TYPE")?),
            IPVS_DEST_ATTR_TUN_PORT => {
                DestNla::TunPort(attr::be16(nla, "IPVS_DEST_ATTR_TUN_PORT")?)
            }
            IPVS_DEST_ATTR_TUN_FLAGS => {
                DestNla::TunFlags(attr::u16(nla, "IPVS_DEST_ATTR_TUN_FLAGS")?)
            }
            _ => DestNla::Other(
                DefaultNla::parse(nla).map_err(|e| DecodeError::Attribute(e.to_string()))?,
            ),
        })
    }

    pub fn parse_all(buf: &[u8]) -> Result<Vec<Self>, DecodeError> {
        attr::iter(buf)
            .map(|n| n.and_then(|n| DestNla::parse(&n)))
            .collect()
    }
}

/// A real server of a service. The address family follows `addr`: an IPv6 server behind
/// an IPv4 service (tunnel forwarding only) is allowed by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub addr: IpAddr,
    pub port: u16,
    pub fwd: ForwardMethod,
    pub weight: u32,
    /// Upper connection threshold, 0 = none.
    pub u_threshold: u32,
    /// Lower connection threshold, 0 = none.
    pub l_threshold: u32,
    pub tun_type: TunnelType,
    /// GUE destination port.
    pub tun_port: u16,
    pub tun_flags: TunnelFlags,
    /// Reply-only counters.
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persist_conns: u32,
    /// Boxed: 80 bytes a destination that a table kept for its weights does not fill.
    pub stats: Option<Box<Stats>>,
}

impl Destination {
    pub fn new(addr: SocketAddr, fwd: ForwardMethod, weight: u32) -> Self {
        Destination {
            addr: addr.ip(),
            port: addr.port(),
            fwd,
            weight,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunnelType::Ipip,
            tun_port: 0,
            tun_flags: TunnelFlags::NOCSUM,
            active_conns: 0,
            inactive_conns: 0,
            persist_conns: 0,
            stats: None,
        }
    }

    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    pub fn af(&self) -> AddressFamily {
        AddressFamily::of(&self.addr)
    }

    pub fn with_thresholds(mut self, upper: u32, lower: u32) -> Self {
        self.u_threshold = upper;
        self.l_threshold = lower;
        self
    }

    pub fn with_tunnel(mut self, tun_type: TunnelType, port: u16, flags: TunnelFlags) -> Self {
        self.tun_type = tun_type;
        self.tun_port = port;
        self.tun_flags = flags;
        self
    }

    /// Identifying attributes only (what DEL_DEST needs).
    pub fn key_nlas(addr: SocketAddr) -> Vec<DestNla> {
        vec![
            DestNla::AddrFamily(AddressFamily::of(&addr.ip()).to_u16()),
            DestNla::Addr(attr::raw_from_addr(&addr.ip())),
            DestNla::Port(addr.port()),
        ]
    }

    /// The settings, after the address in ipvsadm's requests and in the kernel's dumps alike.
    fn setting_nlas(&self) -> [DestNla; 7] {
        [
            DestNla::FwdMethod(self.fwd.to_u32()),
            DestNla::Weight(self.weight),
            DestNla::TunType(self.tun_type.to_u8()),
            DestNla::TunPort(self.tun_port),
            DestNla::TunFlags(self.tun_flags.0),
            DestNla::UThresh(self.u_threshold),
            DestNla::LThresh(self.l_threshold),
        ]
    }

    /// Attributes for NEW_DEST / SET_DEST, in ipvsadm's order.
    pub fn to_nlas(&self) -> Vec<DestNla> {
        let mut nlas = Self::key_nlas(self.socket_addr());
        nlas.extend(self.setting_nlas());
        nlas
    }

    /// Attributes as the kernel fills them in a dump, counters included.
    pub fn to_reply_nlas(&self) -> Vec<DestNla> {
        let mut nlas = vec![
            DestNla::Addr(attr::raw_from_addr(&self.addr)),
            DestNla::Port(self.port),
        ];
        nlas.extend(self.setting_nlas());
        nlas.extend([
            DestNla::ActiveConns(self.active_conns),
            DestNla::InactConns(self.inactive_conns),
            DestNla::PersistConns(self.persist_conns),
            DestNla::AddrFamily(self.af().to_u16()),
        ]);
        if let Some(stats) = &self.stats {
            nlas.push(DestNla::Stats(stats.to_nlas32()));
            nlas.push(DestNla::Stats64(stats.to_nlas64()));
        }
        nlas
    }

    /// `service_af` is used when the attributes carry no IPVS_DEST_ATTR_ADDR_FAMILY (old
    /// kernels, where a destination always had its service's family).
    pub fn from_nlas(nlas: &[DestNla], service_af: AddressFamily) -> Result<Self, DecodeError> {
        let mut af = service_af;
        let (mut addr, mut port) = (None, None);
        for n in nlas {
            match n {
                DestNla::AddrFamily(v) => af = AddressFamily::from_u16(*v)?,
                DestNla::Addr(a) => addr = Some(*a),
                DestNla::Port(p) => port = Some(*p),
                _ => {}
            }
        }
        let addr = addr.ok_or(DecodeError::MissingAttr("IPVS_DEST_ATTR_ADDR"))?;
        let port = port.ok_or(DecodeError::MissingAttr("IPVS_DEST_ATTR_PORT"))?;
        let addr = attr::addr_from_raw(af.to_u16(), &addr)?;
        let mut d = Destination::new(SocketAddr::new(addr, port), ForwardMethod::Masq, 0);
        let (mut stats32, mut stats64) = (None, None);
        for n in nlas {
            match n {
                DestNla::FwdMethod(v) => d.fwd = ForwardMethod::from_u32(*v)?,
                DestNla::Weight(v) => d.weight = *v,
                DestNla::UThresh(v) => d.u_threshold = *v,
                DestNla::LThresh(v) => d.l_threshold = *v,
                DestNla::ActiveConns(v) => d.active_conns = *v,
                DestNla::InactConns(v) => d.inactive_conns = *v,
                DestNla::PersistConns(v) => d.persist_conns = *v,
                DestNla::TunType(v) => d.tun_type = TunnelType::from_u8(*v)?,
                DestNla::TunPort(v) => d.tun_port = *v,
                DestNla::TunFlags(v) => d.tun_flags = TunnelFlags(*v),
                DestNla::Stats(s) => stats32 = Some(Stats::from_nlas(s)),
                DestNla::Stats64(s) => stats64 = Some(Stats::from_nlas(s)),
                _ => {}
            }
        }
        d.stats = stats64.or(stats32).map(Box::new);
        Ok(d)
    }
}
