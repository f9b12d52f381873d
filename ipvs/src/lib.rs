//! The IPVS generic netlink family ("IPVS", version 1): attribute codecs in the
//! rust-netlink style (`Nla`, `Emitable`, `ParseableParametrized`), typed values
//! ([`Service`], [`Destination`], [`Daemon`], [`Timeouts`], [`Info`], [`Stats`]),
//! sans-IO framing ([`codec`]) and a blocking client ([`IpvsClient`]) with a batch API.
//!
//! Wire facts (checked against Linux 6.1 `ip_vs_ctl.c` and captures of ipvsadm 1.31):
//! addresses are 16-byte `union nf_inet_addr` (IPv4 in the first 4 bytes); ports, the
//! tunnel port and the netmask are network order inside u16/u32 attributes; everything
//! else is host order; the kernel's statistics nests may contain IPVS_STATS_ATTR_PAD.

mod attr;
pub mod client;
pub mod codec;
pub mod config;
pub mod conn_table;
pub mod constants;
pub mod daemon;
pub mod dest;
pub mod error;
pub mod info;
pub mod message;
pub mod service;
pub mod stats;

pub use client::{BatchReport, IpvsClient};
pub use config::Timeouts;
pub use daemon::{Daemon, DaemonNla, DaemonState};
pub use dest::{DestNla, Destination, ForwardMethod, TunnelFlags, TunnelType};
pub use error::{DecodeError, Error, KernelError, Operation, ipvs_strerror};
pub use info::Info;
pub use message::{IpvsCmd, IpvsMessage, IpvsNla, Request};
pub use service::{
    AddressFamily, FlagsMask, Protocol, Service, ServiceFlags, ServiceKey, ServiceNla,
};
pub use stats::{Stats, StatsField, StatsNla, StatsValue};
