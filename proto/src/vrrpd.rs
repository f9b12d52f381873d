//! vrrpd's control API: `<socket_dir>/vrrpd.sock`. directord and syncd subscribe to its events
//! to follow the VRRP role.
//!
//! The same counters are on Prometheus at `control.metrics` with vrrpd's port offset, +1 (see
//! `lvs_control::metrics::address`: directord +0, vrrpd +1, syncd +2, feedbackd +3), as
//! `vrrp_state{instance,state}`, `vrrp_priority`, `vrrp_transitions_total`,
//! `vrrp_became_master_total`, `vrrp_adverts_sent_total`, `vrrp_adverts_received_total`,
//! `vrrp_drops_total{instance,cause}` and `vrrp_interface_drops_total{interface,cause}`;
//! with `[announce]`, `vrrp_announced{vip}` and `vrrp_announce_errors_total{cause}`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    /// `lvsadm vrrp force-backup NAME`: the instance (or every instance of the sync group) gives
    /// up mastership and stays backup, kept in the state directory until `Release`. Answers the
    /// status after the change.
    ForceBackup {
        name: String,
    },
    /// `lvsadm vrrp release NAME`: the election decides again.
    Release {
        name: String,
    },
    /// `lvsadm announce drain|resume [VIP]`: withdraw an announced VIP (`drain`), or let it be
    /// announced again; every `[announce]` VIP when `vip` is absent. Answered with the status.
    Announce {
        drain: bool,
        #[serde(default)]
        vip: Option<IpAddr>,
    },
}

/// Status is for the socket's group too; anything that changes state is root's.
impl crate::Access for Request {
    fn read_only(&self) -> bool {
        matches!(self, Request::Status)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub instances: Vec<InstanceStatus>,
    /// Packets no instance can be charged with: unreadable before the VRID, or for a VRID
    /// not configured on the interface.
    #[serde(default)]
    pub interfaces: Vec<InterfaceStatus>,
    /// `[vrrp] track_directord`; absent when vrrpd does not track directord.
    #[serde(default)]
    pub directord: Option<DirectordStatus>,
    /// `[announce]`: each VIP announced over BGP (through the routing engine) or not.
    #[serde(default)]
    pub announce: Option<AnnounceStatus>,
    /// `[[bfd.session]]`, in config order.
    #[serde(default)]
    pub bfd: Vec<BfdSessionStatus>,
}

/// What vrrpd announces for the routing engine to redistribute.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnnounceStatus {
    /// The kernel route protocol number of the VIP routes.
    pub protocol: u8,
    pub vips: Vec<AnnouncedVip>,
    /// Route changes the kernel refused, by cause (add_route, del_route, ...).
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnnouncedVip {
    pub address: IpAddr,
    pub announced: bool,
    /// Why not, when withdrawn: starting, directord_down, no_quorum, drained, stopping,
    /// route_failed (the kernel refused the route; tried again at the next probe).
    pub reason: Option<String>,
    /// The service below quorum, with `no_quorum`.
    pub service: Option<String>,
    pub drained: bool,
    /// Seconds since it was last announced or withdrawn.
    pub for_secs: f64,
}

/// One BFD session as vrrpd's BFD thread last saw it (also on Prometheus as
/// `bfd_session_up{session}`, `bfd_transitions_total`, `bfd_packets_sent_total`,
/// `bfd_packets_received_total` and `bfd_drops_total{session,cause}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BfdSessionStatus {
    pub name: String,
    pub peer: Option<IpAddr>,
    pub multihop: bool,
    /// admin_down, down, init or up.
    pub state: String,
    pub remote_state: String,
    /// Why the session last went down (RFC 5880 diagnostic: detection_time_expired, ...).
    pub diag: String,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    /// Negotiated transmit interval before jitter, and detection time, in milliseconds.
    pub tx_interval_ms: f64,
    pub detection_time_ms: f64,
    pub transitions: u64,
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Discarded packets by cause (ttl, auth_digest, your_discriminator, ...).
    pub drops: BTreeMap<String, u64>,
}

/// What vrrpd's watch on directord has seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectordStatus {
    /// Whether directord answered its last status request in time.
    pub up: bool,
    /// The weight applied to every instance while it does not (0: FAULT).
    pub weight: i32,
    /// Probes by outcome: answered, timeout, unreachable, malformed_reply.
    pub checks: BTreeMap<String, u64>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InterfaceStatus {
    pub name: String,
    /// Dropped packets by cause (too_short, vrid_mismatch, ...).
    pub drops: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// INIT, BACKUP, MASTER or FAULT.
    pub state: String,
    pub configured_priority: u8,
    pub priority: u8,
    pub master: Option<IpAddr>,
    pub virtual_addresses: Vec<String>,
    pub counters: Counters,
    /// Held in BACKUP by `lvsadm vrrp force-backup` until released.
    #[serde(default)]
    pub forced_backup: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub transitions: u64,
    pub became_master: u64,
    /// Dropped adverts by cause (ttl, auth_failure, vrid_mismatch, ...).
    pub drops: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// On every transition. A follower subscribes first, then asks for `Status`, so it misses
    /// nothing between the two.
    State {
        instance: String,
        old: String,
        new: String,
    },
}
