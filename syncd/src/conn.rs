//! The connection a sync entry describes, independent of the wire version that carried it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// IP protocol number of a connection (`cp->protocol`).
///
/// Kept as the raw number: the kernel syncs whatever it has, and fwmark templates carry
/// `IPPROTO_IP` (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Protocol(pub u8);

impl Protocol {
    /// Fwmark persistence templates use protocol 0 with the mark in place of the VIP.
    pub const IP: Protocol = Protocol(0);
    pub const TCP: Protocol = Protocol(6);
    pub const UDP: Protocol = Protocol(17);
    pub const SCTP: Protocol = Protocol(132);

    /// The name /proc/net/ip_vs_conn prints (`ip_vs_proto_name`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::IP => "IP",
            Protocol::TCP => "TCP",
            Protocol::UDP => "UDP",
            Protocol::SCTP => "SCTP",
            _ => "ERR!",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Forwarding method, the low three bits of the connection flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FwdMethod {
    Masq,
    Local,
    Tunnel,
    Route,
    Bypass,
    /// 5..=7: not defined by the kernel, kept so flags survive a round trip.
    Unknown(u8),
}

impl FwdMethod {
    pub fn from_bits(bits: u32) -> FwdMethod {
        match (bits & ConnFlags::FWD_MASK) as u8 {
            0 => FwdMethod::Masq,
            1 => FwdMethod::Local,
            2 => FwdMethod::Tunnel,
            3 => FwdMethod::Route,
            4 => FwdMethod::Bypass,
            n => FwdMethod::Unknown(n),
        }
    }

    pub fn bits(self) -> u32 {
        match self {
            FwdMethod::Masq => 0,
            FwdMethod::Local => 1,
            FwdMethod::Tunnel => 2,
            FwdMethod::Route => 3,
            FwdMethod::Bypass => 4,
            FwdMethod::Unknown(n) => u32::from(n) & ConnFlags::FWD_MASK,
        }
    }
}

/// Connection flags (`IP_VS_CONN_F_*`), as sent: version 1 carries 32 bits, version 0 only 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnFlags(pub u32);

impl ConnFlags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const SYNC: u32 = 0x0020;
    /// Never sent: the kernel masks it off before syncing.
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const OUT_SEQ: u32 = 0x0200;
    pub const IN_SEQ: u32 = 0x0400;
    pub const SEQ_MASK: u32 = 0x0600;
    pub const NO_CPORT: u32 = 0x0800;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
    /// Bits a kernel backup keeps from a received entry (`IP_VS_CONN_F_BACKUP_MASK`).
    pub const BACKUP_MASK: u32 = Self::FWD_MASK
        | Self::NOOUTPUT
        | Self::INACTIVE
        | Self::SEQ_MASK
        | Self::NO_CPORT
        | Self::TEMPLATE;

    pub fn fwd_method(self) -> FwdMethod {
        FwdMethod::from_bits(self.0)
    }

    pub fn with_fwd_method(self, method: FwdMethod) -> ConnFlags {
        ConnFlags((self.0 & !Self::FWD_MASK) | method.bits())
    }

    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }

    pub fn is_template(self) -> bool {
        self.contains(Self::TEMPLATE)
    }

    pub fn is_inactive(self) -> bool {
        self.contains(Self::INACTIVE)
    }
}

/// Client, virtual and destination addresses: one family for all three, as in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addrs {
    V4 {
        client: Ipv4Addr,
        virtual_addr: Ipv4Addr,
        dest: Ipv4Addr,
    },
    V6 {
        client: Ipv6Addr,
        virtual_addr: Ipv6Addr,
        dest: Ipv6Addr,
    },
}

impl Addrs {
    /// `None` when the families differ: a sync entry has one family bit for all three.
    pub fn new(client: IpAddr, virtual_addr: IpAddr, dest: IpAddr) -> Option<Addrs> {
        match (client, virtual_addr, dest) {
            (IpAddr::V4(client), IpAddr::V4(virtual_addr), IpAddr::V4(dest)) => Some(Addrs::V4 {
                client,
                virtual_addr,
                dest,
            }),
            (IpAddr::V6(client), IpAddr::V6(virtual_addr), IpAddr::V6(dest)) => Some(Addrs::V6 {
                client,
                virtual_addr,
                dest,
            }),
            _ => None,
        }
    }

    /// Client, virtual and destination address of an IPv4 entry.
    pub fn v4(&self) -> Option<(Ipv4Addr, Ipv4Addr, Ipv4Addr)> {
        match *self {
            Addrs::V4 {
                client,
                virtual_addr,
                dest,
            } => Some((client, virtual_addr, dest)),
            Addrs::V6 { .. } => None,
        }
    }

    pub fn is_ipv6(&self) -> bool {
        matches!(self, Addrs::V6 { .. })
    }

    pub fn client(&self) -> IpAddr {
        match *self {
            Addrs::V4 { client, .. } => client.into(),
            Addrs::V6 { client, .. } => client.into(),
        }
    }

    pub fn virtual_addr(&self) -> IpAddr {
        match *self {
            Addrs::V4 { virtual_addr, .. } => virtual_addr.into(),
            Addrs::V6 { virtual_addr, .. } => virtual_addr.into(),
        }
    }

    pub fn dest(&self) -> IpAddr {
        match *self {
            Addrs::V4 { dest, .. } => dest.into(),
            Addrs::V6 { dest, .. } => dest.into(),
        }
    }
}

/// One direction's TCP sequence adjustment (`struct ip_vs_seq`), used by application
/// helpers such as ip_vs_ftp that rewrite payload lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq {
    pub init_seq: u32,
    pub delta: u32,
    pub previous_delta: u32,
}

/// Sequence data of both directions (`struct ip_vs_sync_conn_options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqData {
    pub in_seq: Seq,
    pub out_seq: Seq,
}

impl SeqData {
    pub const LEN: usize = 24;

    /// The six words in the kernel's order (`struct ip_vs_sync_conn_options`): in, then out.
    pub fn words(&self) -> [u32; 6] {
        [
            self.in_seq.init_seq,
            self.in_seq.delta,
            self.in_seq.previous_delta,
            self.out_seq.init_seq,
            self.out_seq.delta,
            self.out_seq.previous_delta,
        ]
    }

    pub fn from_words(w: [u32; 6]) -> SeqData {
        SeqData {
            in_seq: Seq {
                init_seq: w[0],
                delta: w[1],
                previous_delta: w[2],
            },
            out_seq: Seq {
                init_seq: w[3],
                delta: w[4],
                previous_delta: w[5],
            },
        }
    }

    /// Reads the block with `word` decoding each 4-byte word (the formats differ in byte order).
    pub fn read(block: &[u8], word: fn([u8; 4]) -> u32) -> SeqData {
        SeqData::from_words(std::array::from_fn(|i| {
            let mut a = [0; 4];
            a.copy_from_slice(&block[4 * i..4 * i + 4]);
            word(a)
        }))
    }

    /// Writes the block with `word` encoding each word.
    pub fn write(&self, block: &mut [u8], word: fn(u32) -> [u8; 4]) {
        for (i, w) in self.words().into_iter().enumerate() {
            block[4 * i..4 * i + 4].copy_from_slice(&word(w));
        }
    }
}

/// A connection (or persistence template) as the sync protocol describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    pub protocol: Protocol,
    pub addrs: Addrs,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    /// Version 1 only; version 0 receivers see 0.
    pub fwmark: u32,
    pub flags: ConnFlags,
    /// Protocol state number (TCP: 1 = ESTABLISHED, ...); templates: 0 NONE, 1 ASSURED.
    pub state: u16,
    /// Seconds. Version 0 carries none: 0 means "the receiver's default for this state".
    pub timeout: u32,
    pub seq: Option<SeqData>,
    /// Persistence-engine data (e.g. the SIP Call-ID), at most 255 bytes.
    pub pe_data: Option<Vec<u8>>,
    /// Persistence-engine name (e.g. "sip"), at most 16 bytes.
    pub pe_name: Option<Vec<u8>>,
}

impl Connection {
    /// An ESTABLISHED TCP connection forwarded by NAT, with the kernel's 900 s timeout: what
    /// a master syncs most, and what tests and benchmarks build by the thousand. `None` when
    /// the three addresses are not of one family.
    pub fn tcp(client: SocketAddr, virtual_addr: SocketAddr, dest: SocketAddr) -> Option<Self> {
        Some(Connection {
            protocol: Protocol::TCP,
            addrs: Addrs::new(client.ip(), virtual_addr.ip(), dest.ip())?,
            cport: client.port(),
            vport: virtual_addr.port(),
            dport: dest.port(),
            fwmark: 0,
            flags: ConnFlags::default().with_fwd_method(FwdMethod::Masq),
            state: 1,
            timeout: 900,
            seq: None,
            pe_data: None,
            pe_name: None,
        })
    }

    pub fn client(&self) -> SocketAddr {
        SocketAddr::new(self.addrs.client(), self.cport)
    }

    pub fn virtual_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addrs.virtual_addr(), self.vport)
    }

    pub fn dest(&self) -> SocketAddr {
        SocketAddr::new(self.addrs.dest(), self.dport)
    }

    pub fn is_template(&self) -> bool {
        self.flags.is_template()
    }

    pub fn fwd_method(&self) -> FwdMethod {
        self.flags.fwd_method()
    }

    /// The state name /proc/net/ip_vs_conn prints for this entry (`ip_vs_state_name`).
    pub fn state_name(&self) -> &'static str {
        state_name(self.protocol, self.state, self.is_template())
    }
}

const TCP_STATE_NAMES: [&str; 11] = [
    "NONE",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "SYNACK",
];

const UDP_STATE_NAMES: [&str; 1] = ["UDP"];

const SCTP_STATE_NAMES: [&str; 13] = [
    "NONE",
    "INIT1",
    "INIT",
    "COOKIE_SENT",
    "COOKIE_REPLIED",
    "COOKIE_WAIT",
    "COOKIE_ECHOED",
    "ESTABLISHED",
    "SHUTDOWN_SENT",
    "SHUTDOWN_RECEIVED",
    "SHUTDOWN_ACK_SENT",
    "REJECTED",
    "CLOSED",
];

/// Kernel state names, so entries can be compared with /proc/net/ip_vs_conn.
pub fn state_name(protocol: Protocol, state: u16, template: bool) -> &'static str {
    let state = usize::from(state);
    if template {
        return ["NONE", "ASSURED"].get(state).copied().unwrap_or("ERR!");
    }
    match protocol {
        Protocol::TCP => TCP_STATE_NAMES.get(state).copied().unwrap_or("ERR!"),
        Protocol::UDP => UDP_STATE_NAMES.get(state).copied().unwrap_or("ERR!"),
        Protocol::SCTP => SCTP_STATE_NAMES.get(state).copied().unwrap_or("ERR!"),
        Protocol::IP => "HOST",
        _ => "ERR!",
    }
}

/// Inverse of [`state_name`], for tools that read /proc/net/ip_vs_conn.
pub fn state_from_name(protocol: Protocol, name: &str, template: bool) -> Option<u16> {
    let names: &[&str] = if template {
        &["NONE", "ASSURED"]
    } else {
        match protocol {
            Protocol::TCP => &TCP_STATE_NAMES,
            Protocol::UDP => &UDP_STATE_NAMES,
            Protocol::SCTP => &SCTP_STATE_NAMES,
            _ => &[],
        }
    };
    names.iter().position(|n| *n == name).map(|i| i as u16)
}

/// Number of states the kernel accepts for a non-template entry of this protocol
/// (`pp->num_states`); `None` for protocols a kernel backup rejects outright.
pub fn num_states(protocol: Protocol) -> Option<u16> {
    match protocol {
        Protocol::TCP => Some(TCP_STATE_NAMES.len() as u16),
        Protocol::UDP => Some(UDP_STATE_NAMES.len() as u16),
        Protocol::SCTP => Some(SCTP_STATE_NAMES.len() as u16),
        _ => None,
    }
}

/// The timeout a kernel backup applies when an entry carries none (version 0): the
/// protocol's default for the state, 3 minutes for templates (`ip_vs_proc_conn`).
pub fn default_timeout_secs(protocol: Protocol, state: u16, template: bool) -> u32 {
    const TCP: [u32; 11] = [
        2,
        15 * 60,
        2 * 60,
        60,
        2 * 60,
        2 * 60,
        10,
        60,
        30,
        2 * 60,
        2 * 60,
    ];
    const SCTP: [u32; 13] = [2, 1, 1, 1, 1, 1, 1, 15 * 60, 1, 1, 1, 1, 10];
    const FALLBACK: u32 = 3 * 60;
    if template {
        return FALLBACK;
    }
    let state = usize::from(state);
    match protocol {
        Protocol::TCP => TCP.get(state).copied().unwrap_or(FALLBACK),
        Protocol::UDP => 5 * 60,
        Protocol::SCTP => SCTP.get(state).copied().unwrap_or(FALLBACK),
        _ => FALLBACK,
    }
}

/// The longest timeouts the local kernel gives entries in the states whose timeout an
/// operator can change: `ipvsadm --set tcp tcpfin udp` (`ip_vs_set_timeout`) and a
/// service's persistence timeout, which its templates take. The daemon reads them from the
/// kernel; the defaults are the kernel's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutCeilings {
    /// TCP ESTABLISHED (`tcp_timeouts`: 15 minutes).
    pub tcp: u32,
    /// TCP FIN_WAIT (2 minutes).
    pub tcp_fin: u32,
    /// UDP (`udp_timeouts`: 5 minutes).
    pub udp: u32,
    /// Persistence templates: the longest persistence timeout of the services, at least the
    /// 3 minutes a kernel backup gives a template that carries none.
    pub template: u32,
}

impl Default for TimeoutCeilings {
    fn default() -> Self {
        TimeoutCeilings {
            tcp: 15 * 60,
            tcp_fin: 2 * 60,
            udp: 5 * 60,
            template: 3 * 60,
        }
    }
}

/// The longest timeout the kernel would give an entry of this protocol and state: the
/// operator-set values of `ceilings` where the kernel lets them be changed, else the fixed
/// values of its state tables (ip_vs_proto_tcp.c `tcp_timeouts`, ip_vs_proto_sctp.c
/// `sctp_timeouts`), which a kernel master also sends. A sync message may say up to 2^32 s,
/// which a kernel backup would take as it is.
pub fn max_timeout_secs(
    protocol: Protocol,
    state: u16,
    template: bool,
    ceilings: &TimeoutCeilings,
) -> u32 {
    const TCP_ESTABLISHED: u16 = 1;
    const TCP_FIN_WAIT: u16 = 4;
    if template {
        return ceilings
            .template
            .max(default_timeout_secs(protocol, state, true));
    }
    match (protocol, state) {
        (Protocol::TCP, TCP_ESTABLISHED) => ceilings.tcp,
        (Protocol::TCP, TCP_FIN_WAIT) => ceilings.tcp_fin,
        (Protocol::UDP, _) => ceilings.udp,
        _ => default_timeout_secs(protocol, state, false),
    }
}
