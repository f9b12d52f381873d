//! syncd's control API: `<socket_dir>/syncd.sock`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Role, counters, mirror size and lag.
    Status,
    /// Every entry of the mirror table, as a kernel backup fed by this syncd would hold it.
    Dump,
    /// Re-read /proc/net/ip_vs_conn into the mirror (master role only).
    Snapshot,
}

/// Status is for the socket's group too; anything that changes state is root's.
impl crate::Access for Request {
    fn read_only(&self) -> bool {
        matches!(self, Request::Status | Request::Dump)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    Status(Box<Status>),
    Dump(Dump),
    Snapshot(SnapshotTaken),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// "master" or "backup".
    pub role: String,
    /// "static" or "follow <vrrp instance>".
    pub role_source: String,
    pub interface: String,
    pub syncid: u8,
    pub group: SocketAddr,
    /// Wire version syncd sends (0 or 1).
    pub version: u8,
    pub peers: Vec<SocketAddr>,
    /// Kernel sync daemons running in syncd's namespace: "master" and/or "backup".
    pub kernel_daemons: Vec<String>,
    pub mirror_size: usize,
    /// Milliseconds since the newest update reached the mirror; `None` before the first.
    pub lag_ms: Option<u64>,
    pub counters: Counters,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Sync messages (and the entries in them) sent to peers, resyncs included.
    pub messages_sent: u64,
    pub entries_sent: u64,
    /// Sync messages accepted from peers or the group.
    pub messages_received: u64,
    pub entries_received: u64,
    /// Datagrams the local kernel master sent, seen on the sync interface.
    pub kernel_messages_observed: u64,
    pub kernel_entries_observed: u64,
    /// Messages handed to the local kernel backup.
    pub messages_injected: u64,
    pub hellos_sent: u64,
    pub hellos_received: u64,
    pub resyncs_sent: u64,
    pub resyncs_received: u64,
    pub snapshots: u64,
    pub snapshot_entries: u64,
    pub entries_expired: u64,
    /// Received entries whose timeout was above the kernel's longest for their state.
    #[serde(default)]
    pub timeouts_clamped: u64,
    /// Dropped datagrams or entries by cause: the codec's error labels, plus syncd's own
    /// (sync_id, hello_*, send_*, ipv6_in_v0, group_source, unknown_peer, mirror_full,
    /// auth_*, ...).
    pub drops: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dump {
    pub entries: Vec<Entry>,
}

/// One mirrored connection, with the fields /proc/net/ip_vs_conn shows plus the flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// "TCP", "UDP", "SCTP" or "IP" (fwmark templates).
    pub protocol: String,
    pub client: SocketAddr,
    pub virtual_addr: SocketAddr,
    pub dest: SocketAddr,
    /// The kernel's state name (ESTABLISHED, TIME_WAIT, UDP, ASSURED, ...).
    pub state: String,
    /// masq, local, tunnel, route, bypass.
    pub forwarding: String,
    pub template: bool,
    pub flags: u32,
    pub fwmark: u32,
    /// Seconds left before the mirror drops it.
    pub expires: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotTaken {
    pub entries: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The sync role changed and the kernel daemons were switched.
    Role { old: String, new: String },
    /// A full resync was sent to a peer that announced itself.
    ResyncSent { peer: SocketAddr, entries: usize },
}
