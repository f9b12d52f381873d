//! Kernel connection-sync daemons: the attributes nested in IPVS_CMD_ATTR_DAEMON.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{DefaultNla, Nla, NlaBuffer, Parseable};

use crate::attr;
use crate::constants::*;
use crate::error::DecodeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DaemonState {
    Master,
    Backup,
}

impl DaemonState {
    pub fn to_u32(self) -> u32 {
        match self {
            DaemonState::Master => IP_VS_STATE_MASTER,
            DaemonState::Backup => IP_VS_STATE_BACKUP,
        }
    }

    pub fn from_u32(v: u32) -> Result<Self, DecodeError> {
        match v {
            IP_VS_STATE_MASTER => Ok(DaemonState::Master),
            IP_VS_STATE_BACKUP => Ok(DaemonState::Backup),
            other => Err(DecodeError::UnknownDaemonState(other)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DaemonState::Master => "master",
            DaemonState::Backup => "backup",
        }
    }
}

/// One attribute nested in IPVS_CMD_ATTR_DAEMON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonNla {
    State(u32),
    McastIfn(String),
    SyncId(u32),
    SyncMaxlen(u16),
    /// IPv4 group; the attribute is a `__be32`.
    McastGroup(Ipv4Addr),
    McastGroup6(Ipv6Addr),
    /// Host order (the kernel reads it with `nla_get_u16`).
    McastPort(u16),
    McastTtl(u8),
    Other(DefaultNla),
}

impl Nla for DaemonNla {
    fn value_len(&self) -> usize {
        match self {
            DaemonNla::State(_) | DaemonNla::SyncId(_) | DaemonNla::McastGroup(_) => 4,
            DaemonNla::McastIfn(s) => s.len() + 1,
            DaemonNla::SyncMaxlen(_) | DaemonNla::McastPort(_) => 2,
            DaemonNla::McastGroup6(_) => 16,
            DaemonNla::McastTtl(_) => 1,
            DaemonNla::Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            DaemonNla::State(_) => IPVS_DAEMON_ATTR_STATE,
            DaemonNla::McastIfn(_) => IPVS_DAEMON_ATTR_MCAST_IFN,
            DaemonNla::SyncId(_) => IPVS_DAEMON_ATTR_SYNC_ID,
            DaemonNla::SyncMaxlen(_) => IPVS_DAEMON_ATTR_SYNC_MAXLEN,
            DaemonNla::McastGroup(_) => IPVS_DAEMON_ATTR_MCAST_GROUP,
            DaemonNla::McastGroup6(_) => IPVS_DAEMON_ATTR_MCAST_GROUP6,
            DaemonNla::McastPort(_) => IPVS_DAEMON_ATTR_MCAST_PORT,
            DaemonNla::McastTtl(_) => IPVS_DAEMON_ATTR_MCAST_TTL,
            DaemonNla::Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            DaemonNla::State(v) | DaemonNla::SyncId(v) => {
                buf[..4].copy_from_slice(&v.to_ne_bytes());
            }
            DaemonNla::McastIfn(s) => attr::emit_string(buf, s),
            DaemonNla::SyncMaxlen(v) | DaemonNla::McastPort(v) => {
                buf[..2].copy_from_slice(&v.to_ne_bytes());
            }
            DaemonNla::McastGroup(a) => buf[..4].copy_from_slice(&a.octets()),
            DaemonNla::McastGroup6(a) => buf[..16].copy_from_slice(&a.octets()),
            DaemonNla::McastTtl(v) => buf[0] = *v,
            DaemonNla::Other(o) => o.emit_value(buf),
        }
    }
}

impl DaemonNla {
    pub fn parse(nla: &NlaBuffer<&[u8]>) -> Result<Self, DecodeError> {
        Ok(match nla.kind() {
            IPVS_DAEMON_ATTR_STATE => DaemonNla::State(attr::u32(nla, "IPVS_DAEMON_ATTR_STATE")?),
            IPVS_DAEMON_ATTR_MCAST_IFN => {
                DaemonNla::McastIfn(attr::string(nla, "IPVS_DAEMON_ATTR_MCAST_IFN")?)
            }
            IPVS_DAEMON_ATTR_SYNC_ID => {
                DaemonNla::SyncId(attr::u32(nla, "IPVS_DAEMON_ATTR_SYNC_ID")?)
            }
            IPVS_DAEMON_ATTR_SYNC_MAXLEN => {
                DaemonNla::SyncMaxlen(attr::u16(nla, "IPVS_DAEMON_ATTR_SYNC_MAXLEN")?)
            }
            IPVS_DAEMON_ATTR_MCAST_GROUP => DaemonNla::McastGroup(Ipv4Addr::from(attr::be32(
                nla,
                "IPVS_DAEMON_ATTR_MCAST_GROUP",
            )?)),
            IPVS_DAEMON_ATTR_MCAST_GROUP6 => {
                let v = nla.value();
                if v.len() != 16 {
                    return Err(DecodeError::AttrLength {
                        attr: "IPVS_DAEMON_ATTR_MCAST_GROUP6",
                        expected: 16,
                        got: v.len(),
                    });
                }
                let mut a = [0u8; 16];
                a.copy_from_slice(v);
                DaemonNla::McastGroup6(Ipv6Addr::from(a))
            }
            IPVS_DAEMON_ATTR_MCAST_PORT => {
                DaemonNla::McastPort(attr::u16(nla, "IPVS_DAEMON_ATTR_MCAST_PORT")?)
            }
            IPVS_DAEMON_ATTR_MCAST_TTL => {
                DaemonNla::McastTtl(attr::u8(nla, "IPVS_DAEMON_ATTR_MCAST_TTL")?)
            }
            _ => DaemonNla::Other(
                DefaultNla::parse(nla).map_err(|e| DecodeError::Attribute(e.to_string()))?,
            ),
        })
    }

    pub fn parse_all(buf: &[u8]) -> Result<Vec<Self>, DecodeError> {
        attr::iter(buf)
            .map(|n| n.and_then(|n| DaemonNla::parse(&n)))
            .collect()
    }
}

/// A sync daemon's configuration. Optional fields left `None` take the kernel defaults
/// (group 224.0.0.81, port 8848, TTL 1, max length from the interface MTU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    pub state: DaemonState,
    pub mcast_ifn: String,
    pub syncid: u32,
    pub sync_maxlen: Option<u16>,
    pub mcast_group: Option<IpAddr>,
    pub mcast_port: Option<u16>,
    pub mcast_ttl: Option<u8>,
}

impl Daemon {
    pub fn new(state: DaemonState, mcast_ifn: impl Into<String>, syncid: u32) -> Self {
        Daemon {
            state,
            mcast_ifn: mcast_ifn.into(),
            syncid,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        }
    }

    /// Attributes in the order ipvsadm and the kernel use.
    pub fn to_nlas(&self) -> Vec<DaemonNla> {
        let mut nlas = vec![
            DaemonNla::State(self.state.to_u32()),
            DaemonNla::McastIfn(self.mcast_ifn.clone()),
            DaemonNla::SyncId(self.syncid),
        ];
        if let Some(v) = self.sync_maxlen {
            nlas.push(DaemonNla::SyncMaxlen(v));
        }
        if let Some(v) = self.mcast_port {
            nlas.push(DaemonNla::McastPort(v));
        }
        if let Some(v) = self.mcast_ttl {
            nlas.push(DaemonNla::McastTtl(v));
        }
        match self.mcast_group {
            Some(IpAddr::V4(g)) => nlas.push(DaemonNla::McastGroup(g)),
            Some(IpAddr::V6(g)) => nlas.push(DaemonNla::McastGroup6(g)),
            None => {}
        }
        nlas
    }

    pub fn from_nlas(nlas: &[DaemonNla]) -> Result<Self, DecodeError> {
        let mut state = None;
        let mut d = Daemon::new(DaemonState::Master, String::new(), 0);
        for n in nlas {
            match n {
                DaemonNla::State(v) => state = Some(DaemonState::from_u32(*v)?),
                DaemonNla::McastIfn(s) => d.mcast_ifn = s.clone(),
                DaemonNla::SyncId(v) => d.syncid = *v,
                DaemonNla::SyncMaxlen(v) => d.sync_maxlen = Some(*v),
                DaemonNla::McastGroup(g) => d.mcast_group = Some(IpAddr::V4(*g)),
                DaemonNla::McastGroup6(g) => d.mcast_group = Some(IpAddr::V6(*g)),
                DaemonNla::McastPort(v) => d.mcast_port = Some(*v),
                DaemonNla::McastTtl(v) => d.mcast_ttl = Some(*v),
                DaemonNla::Other(_) => {}
            }
        }
        d.state = state.ok_or(DecodeError::MissingAttr("IPVS_DAEMON_ATTR_STATE"))?;
        Ok(d)
    }
}
