//! The IPVS generic netlink message: command, top-level attributes, the `GenlFamily`
//! impl, and [`Request`], the typed builder for every command the client sends.

use std::net::SocketAddr;

use netlink_packet_core::{
    DefaultNla, Emitable, NLA_F_NESTED, Nla, NlaBuffer, Parseable, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader};

use crate::attr;
use crate::config::Timeouts;
use crate::constants::*;
use crate::daemon::{Daemon, DaemonNla, DaemonState};
use crate::dest::{DestNla, Destination};
use crate::error::{DecodeError, Operation};
use crate::info::Info;
use crate::service::{AddressFamily, Service, ServiceKey, ServiceNla};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpvsCmd {
    NewService,
    SetService,
    DelService,
    GetService,
    NewDest,
    SetDest,
    DelDest,
    GetDest,
    NewDaemon,
    DelDaemon,
    GetDaemon,
    SetConfig,
    GetConfig,
    /// Only used by the kernel, as the command of the GET_INFO reply.
    SetInfo,
    GetInfo,
    Zero,
    Flush,
}

impl IpvsCmd {
    pub fn to_u8(self) -> u8 {
        match self {
            IpvsCmd::NewService => IPVS_CMD_NEW_SERVICE,
            IpvsCmd::SetService => IPVS_CMD_SET_SERVICE,
            IpvsCmd::DelService => IPVS_CMD_DEL_SERVICE,
            IpvsCmd::GetService => IPVS_CMD_GET_SERVICE,
            IpvsCmd::NewDest => IPVS_CMD_NEW_DEST,
            IpvsCmd::SetDest => IPVS_CMD_SET_DEST,
            IpvsCmd::DelDest => IPVS_CMD_DEL_DEST,
            IpvsCmd::GetDest => IPVS_CMD_GET_DEST,
            IpvsCmd::NewDaemon => IPVS_CMD_NEW_DAEMON,
            IpvsCmd::DelDaemon => IPVS_CMD_DEL_DAEMON,
            IpvsCmd::GetDaemon => IPVS_CMD_GET_DAEMON,
            IpvsCmd::SetConfig => IPVS_CMD_SET_CONFIG,
            IpvsCmd::GetConfig => IPVS_CMD_GET_CONFIG,
            IpvsCmd::SetInfo => IPVS_CMD_SET_INFO,
            IpvsCmd::GetInfo => IPVS_CMD_GET_INFO,
            IpvsCmd::Zero => IPVS_CMD_ZERO,
            IpvsCmd::Flush => IPVS_CMD_FLUSH,
        }
    }

    pub fn from_u8(v: u8) -> Result<Self, DecodeError> {
        Ok(match v {
            IPVS_CMD_NEW_SERVICE => IpvsCmd::NewService,
            IPVS_CMD_SET_SERVICE => IpvsCmd::SetService,
            IPVS_CMD_DEL_SERVICE => IpvsCmd::DelService,
            IPVS_CMD_GET_SERVICE => IpvsCmd::GetService,
            IPVS_CMD_NEW_DEST => IpvsCmd::NewDest,
            IPVS_CMD_SET_DEST => IpvsCmd::SetDest,
            IPVS_CMD_DEL_DEST => IpvsCmd::DelDest,
            IPVS_CMD_GET_DEST => IpvsCmd::GetDest,
            IPVS_CMD_NEW_DAEMON => IpvsCmd::NewDaemon,
            IPVS_CMD_DEL_DAEMON => IpvsCmd::DelDaemon,
            IPVS_CMD_GET_DAEMON => IpvsCmd::GetDaemon,
            IPVS_CMD_SET_CONFIG => IpvsCmd::SetConfig,
            IPVS_CMD_GET_CONFIG => IpvsCmd::GetConfig,
            IPVS_CMD_SET_INFO => IpvsCmd::SetInfo,
            IPVS_CMD_GET_INFO => IpvsCmd::GetInfo,
            IPVS_CMD_ZERO => IpvsCmd::Zero,
            IPVS_CMD_FLUSH => IpvsCmd::Flush,
            other => return Err(DecodeError::UnknownCommand(other)),
        })
    }
}

/// A top-level attribute. The numbering depends on the command: the GET_INFO reply
/// (SET_INFO) reuses 1 and 2 for the info attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpvsNla {
    Service(Vec<ServiceNla>),
    Dest(Vec<DestNla>),
    Daemon(Vec<DaemonNla>),
    TimeoutTcp(u32),
    TimeoutTcpFin(u32),
    TimeoutUdp(u32),
    InfoVersion(u32),
    InfoConnTabSize(u32),
    Other(DefaultNla),
}

impl Nla for IpvsNla {
    fn value_len(&self) -> usize {
        match self {
            IpvsNla::Service(n) => n.as_slice().buffer_len(),
            IpvsNla::Dest(n) => n.as_slice().buffer_len(),
            IpvsNla::Daemon(n) => n.as_slice().buffer_len(),
            IpvsNla::TimeoutTcp(_)
            | IpvsNla::TimeoutTcpFin(_)
            | IpvsNla::TimeoutUdp(_)
            | IpvsNla::InfoVersion(_)
            | IpvsNla::InfoConnTabSize(_) => 4,
            IpvsNla::Other(o) => o.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            IpvsNla::Service(_) => IPVS_CMD_ATTR_SERVICE,
            IpvsNla::Dest(_) => IPVS_CMD_ATTR_DEST,
            IpvsNla::Daemon(_) => IPVS_CMD_ATTR_DAEMON,
            IpvsNla::TimeoutTcp(_) => IPVS_CMD_ATTR_TIMEOUT_TCP,
            IpvsNla::TimeoutTcpFin(_) => IPVS_CMD_ATTR_TIMEOUT_TCP_FIN,
            IpvsNla::TimeoutUdp(_) => IPVS_CMD_ATTR_TIMEOUT_UDP,
            IpvsNla::InfoVersion(_) => IPVS_INFO_ATTR_VERSION,
            IpvsNla::InfoConnTabSize(_) => IPVS_INFO_ATTR_CONN_TAB_SIZE,
            IpvsNla::Other(o) => o.kind(),
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            IpvsNla::Service(n) => n.as_slice().emit(buf),
            IpvsNla::Dest(n) => n.as_slice().emit(buf),
            IpvsNla::Daemon(n) => n.as_slice().emit(buf),
            IpvsNla::TimeoutTcp(v)
            | IpvsNla::TimeoutTcpFin(v)
            | IpvsNla::TimeoutUdp(v)
            | IpvsNla::InfoVersion(v)
            | IpvsNla::InfoConnTabSize(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            IpvsNla::Other(o) => o.emit_value(buf),
        }
    }
}

impl IpvsNla {
    fn is_nest(&self) -> bool {
        matches!(
            self,
            IpvsNla::Service(_) | IpvsNla::Dest(_) | IpvsNla::Daemon(_)
        )
    }

    pub fn parse(nla: &NlaBuffer<&[u8]>, cmd: IpvsCmd) -> Result<Self, DecodeError> {
        if cmd == IpvsCmd::SetInfo {
            return Ok(match nla.kind() {
                IPVS_INFO_ATTR_VERSION => {
                    IpvsNla::InfoVersion(attr::u32(nla, "IPVS_INFO_ATTR_VERSION")?)
                }
                IPVS_INFO_ATTR_CONN_TAB_SIZE => {
                    IpvsNla::InfoConnTabSize(attr::u32(nla, "IPVS_INFO_ATTR_CONN_TAB_SIZE")?)
                }
                _ => IpvsNla::Other(
                    DefaultNla::parse(nla).map_err(|e| DecodeError::Attribute(e.to_string()))?,
                ),
            });
        }
        Ok(match nla.kind() {
            IPVS_CMD_ATTR_SERVICE => IpvsNla::Service(ServiceNla::parse_all(nla.value())?),
            IPVS_CMD_ATTR_DEST => IpvsNla::Dest(DestNla::parse_all(nla.value())?),
            IPVS_CMD_ATTR_DAEMON => IpvsNla::Daemon(DaemonNla::parse_all(nla.value())?),
            IPVS_CMD_ATTR_TIMEOUT_TCP => {
                IpvsNla::TimeoutTcp(attr::u32(nla, "IPVS_CMD_ATTR_TIMEOUT_TCP")?)
            }
            IPVS_CMD_ATTR_TIMEOUT_TCP_FIN => {
                IpvsNla::TimeoutTcpFin(attr::u32(nla, "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN")?)
            }
            IPVS_CMD_ATTR_TIMEOUT_UDP => {
                IpvsNla::TimeoutUdp(attr::u32(nla, "IPVS_CMD_ATTR_TIMEOUT_UDP")?)
            }
            _ => IpvsNla::Other(
                DefaultNla::parse(nla).map_err(|e| DecodeError::Attribute(e.to_string()))?,
            ),
        })
    }
}

/// Emits an [`IpvsNla`] with NLA_F_NESTED on its nests, as libnl's `nla_nest_start` does
/// in ipvsadm's requests (the kernel's replies use `nla_nest_start_noflag`).
struct Flagged<'a>(&'a IpvsNla);

impl Nla for Flagged<'_> {
    fn value_len(&self) -> usize {
        self.0.value_len()
    }
    fn kind(&self) -> u16 {
        self.0.kind() | NLA_F_NESTED
    }
    fn emit_value(&self, buf: &mut [u8]) {
        self.0.emit_value(buf);
    }
}

/// The payload of an IPVS generic netlink message (after the genl header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: IpvsCmd,
    pub nlas: Vec<IpvsNla>,
    /// Whether the nests carry NLA_F_NESTED: true in what we (and ipvsadm) send, false in
    /// what the kernel sends. Recorded on parse so both re-emit byte for byte.
    pub nested_flag: bool,
}

impl IpvsMessage {
    /// A request: nests flagged like libnl does. (The flag is only recorded when there is
    /// a nest, so parse and build agree on nest-less messages.)
    pub fn new(cmd: IpvsCmd, nlas: Vec<IpvsNla>) -> Self {
        let nested_flag = nlas.iter().any(IpvsNla::is_nest);
        IpvsMessage {
            cmd,
            nlas,
            nested_flag,
        }
    }

    /// A message as the kernel builds it (nests unflagged).
    pub fn kernel(cmd: IpvsCmd, nlas: Vec<IpvsNla>) -> Self {
        IpvsMessage {
            cmd,
            nlas,
            nested_flag: false,
        }
    }

    pub fn service_nlas(&self) -> Option<&[ServiceNla]> {
        self.nlas.iter().find_map(|n| match n {
            IpvsNla::Service(s) => Some(s.as_slice()),
            _ => None,
        })
    }

    pub fn dest_nlas(&self) -> Option<&[DestNla]> {
        self.nlas.iter().find_map(|n| match n {
            IpvsNla::Dest(s) => Some(s.as_slice()),
            _ => None,
        })
    }

    pub fn daemon_nlas(&self) -> Option<&[DaemonNla]> {
        self.nlas.iter().find_map(|n| match n {
            IpvsNla::Daemon(s) => Some(s.as_slice()),
            _ => None,
        })
    }

    /// The service this message carries (NEW_SERVICE replies, service requests).
    pub fn service(&self) -> Result<Service, DecodeError> {
        Service::from_nlas(
            self.service_nlas()
                .ok_or(DecodeError::MissingAttr("IPVS_CMD_ATTR_SERVICE"))?,
        )
    }

    /// The destination this message carries; `service_af` as in [`Destination::from_nlas`].
    pub fn destination(&self, service_af: AddressFamily) -> Result<Destination, DecodeError> {
        Destination::from_nlas(
            self.dest_nlas()
                .ok_or(DecodeError::MissingAttr("IPVS_CMD_ATTR_DEST"))?,
            service_af,
        )
    }

    pub fn daemon(&self) -> Result<Daemon, DecodeError> {
        Daemon::from_nlas(
            self.daemon_nlas()
                .ok_or(DecodeError::MissingAttr("IPVS_CMD_ATTR_DAEMON"))?,
        )
    }

    pub fn timeouts(&self) -> Timeouts {
        let mut t = Timeouts::default();
        for n in &self.nlas {
            match n {
                IpvsNla::TimeoutTcp(v) => t.tcp = Some(*v),
                IpvsNla::TimeoutTcpFin(v) => t.tcp_fin = Some(*v),
                IpvsNla::TimeoutUdp(v) => t.udp = Some(*v),
                _ => {}
            }
        }
        t
    }

    pub fn info(&self) -> Result<Info, DecodeError> {
        let mut version = None;
        let mut size = None;
        for n in &self.nlas {
            match n {
                IpvsNla::InfoVersion(v) => version = Some(*v),
                IpvsNla::InfoConnTabSize(v) => size = Some(*v),
                _ => {}
            }
        }
        Ok(Info {
            version: version.ok_or(DecodeError::MissingAttr("IPVS_INFO_ATTR_VERSION"))?,
            conn_tab_size: size.ok_or(DecodeError::MissingAttr("IPVS_INFO_ATTR_CONN_TAB_SIZE"))?,
        })
    }

    /// Parses the payload that follows the genl header; the typed-error twin of the
    /// `ParseableParametrized` impl.
    pub fn parse(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let cmd = IpvsCmd::from_u8(header.cmd)?;
        let mut nested_flag = false;
        let mut nlas = Vec::new();
        for nla in attr::iter(buf) {
            let nla = nla?;
            nested_flag |= nla.nested_flag();
            nlas.push(IpvsNla::parse(&nla, cmd)?);
        }
        Ok(IpvsMessage {
            cmd,
            nlas,
            nested_flag,
        })
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }

    fn command(&self) -> u8 {
        self.cmd.to_u8()
    }

    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.nlas.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        let mut off = 0;
        for nla in &self.nlas {
            let len = nla.buffer_len();
            if self.nested_flag && nla.is_nest() {
                Flagged(nla).emit(&mut buffer[off..off + len]);
            } else {
                nla.emit(&mut buffer[off..off + len]);
            }
            off += len;
        }
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(
        buf: &[u8],
        header: GenlHeader,
    ) -> Result<Self, netlink_packet_core::DecodeError> {
        IpvsMessage::parse(buf, header).map_err(Into::into)
    }
}

/// Everything the client can ask of the kernel, typed. [`Request::message`] builds the
/// exact payload; the client adds the netlink and genl headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    GetInfo,
    GetServices,
    GetService(ServiceKey),
    AddService(Service),
    EditService(Service),
    DelService(ServiceKey),
    GetDestinations(ServiceKey),
    AddDestination(ServiceKey, Destination),
    EditDestination(ServiceKey, Destination),
    DelDestination(ServiceKey, SocketAddr),
    GetDaemons,
    StartDaemon(Daemon),
    StopDaemon(DaemonState),
    GetTimeouts,
    SetTimeouts(Timeouts),
    ZeroService(ServiceKey),
    ZeroAll,
    Flush,
}

impl Request {
    pub fn operation(&self) -> Operation {
        match self {
            Request::GetInfo => Operation::GetInfo,
            Request::GetServices => Operation::GetServices,
            Request::GetService(_) => Operation::GetService,
            Request::AddService(_) => Operation::AddService,
            Request::EditService(_) => Operation::EditService,
            Request::DelService(_) => Operation::DelService,
            Request::GetDestinations(_) => Operation::GetDestinations,
            Request::AddDestination(..) => Operation::AddDestination,
            Request::EditDestination(..) => Operation::EditDestination,
            Request::DelDestination(..) => Operation::DelDestination,
            Request::GetDaemons => Operation::GetDaemons,
            Request::StartDaemon(_) => Operation::StartDaemon,
            Request::StopDaemon(_) => Operation::StopDaemon,
            Request::GetTimeouts => Operation::GetTimeouts,
            Request::SetTimeouts(_) => Operation::SetTimeouts,
            Request::ZeroService(_) => Operation::ZeroService,
            Request::ZeroAll => Operation::ZeroAll,
            Request::Flush => Operation::Flush,
        }
    }

    /// Sent with NLM_F_DUMP: the kernel answers with NLM_F_MULTI parts and NLMSG_DONE.
    pub fn is_dump(&self) -> bool {
        matches!(
            self,
            Request::GetServices | Request::GetDestinations(_) | Request::GetDaemons
        )
    }

    pub fn message(&self) -> IpvsMessage {
        use IpvsCmd as C;
        let (cmd, nlas) = match self {
            Request::GetInfo => (C::GetInfo, vec![]),
            Request::GetServices => (C::GetService, vec![]),
            Request::GetService(key) => (C::GetService, vec![IpvsNla::Service(key.to_nlas())]),
            Request::AddService(s) => (C::NewService, vec![IpvsNla::Service(s.to_nlas())]),
            Request::EditService(s) => (C::SetService, vec![IpvsNla::Service(s.to_nlas())]),
            Request::DelService(key) => (
                C::DelService,
                vec![IpvsNla::Service(key.to_nlas_with_placeholders())],
            ),
            Request::GetDestinations(key) => (C::GetDest, vec![IpvsNla::Service(key.to_nlas())]),
            Request::AddDestination(key, d) => (
                C::NewDest,
                vec![
                    IpvsNla::Service(key.to_nlas_with_placeholders()),
                    IpvsNla::Dest(d.to_nlas()),
                ],
            ),
            Request::EditDestination(key, d) => (
                C::SetDest,
                vec![
                    IpvsNla::Service(key.to_nlas_with_placeholders()),
                    IpvsNla::Dest(d.to_nlas()),
                ],
            ),
            Request::DelDestination(key, addr) => (
                C::DelDest,
                vec![
                    IpvsNla::Service(key.to_nlas_with_placeholders()),
                    IpvsNla::Dest(Destination::key_nlas(*addr)),
                ],
            ),
            Request::GetDaemons => (C::GetDaemon, vec![]),
            Request::StartDaemon(d) => (C::NewDaemon, vec![IpvsNla::Daemon(d.to_nlas())]),
            // ipvsadm also sends an empty interface and sync id 0; the kernel only reads
            // the state.
            Request::StopDaemon(state) => (
                C::DelDaemon,
                vec![IpvsNla::Daemon(vec![
                    DaemonNla::State(state.to_u32()),
                    DaemonNla::McastIfn(String::new()),
                    DaemonNla::SyncId(0),
                ])],
            ),
            Request::GetTimeouts => (C::GetConfig, vec![]),
            Request::SetTimeouts(t) => {
                let mut nlas = Vec::new();
                if let Some(v) = t.tcp {
                    nlas.push(IpvsNla::TimeoutTcp(v));
                }
                if let Some(v) = t.tcp_fin {
                    nlas.push(IpvsNla::TimeoutTcpFin(v));
                }
                if let Some(v) = t.udp {
                    nlas.push(IpvsNla::TimeoutUdp(v));
                }
                (C::SetConfig, nlas)
            }
            Request::ZeroService(key) => (
                C::Zero,
                vec![IpvsNla::Service(key.to_nlas_with_placeholders())],
            ),
            Request::ZeroAll => (C::Zero, vec![]),
            Request::Flush => (C::Flush, vec![]),
        };
        IpvsMessage::new(cmd, nlas)
    }
}
