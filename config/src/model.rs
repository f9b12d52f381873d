//! The typed shape of director.toml. Every table refuses unknown keys: a misspelt key is an
//! error, never a silently ignored setting.
//!
//! Defaults follow what keepalived and ldirectord users expect; each one says whose default it is.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

use crate::values::{
    AgentReport, CheckType, Duration, Family, Forwarding, GroupMember, InitialState, Netmask,
    OnFailure, Percent, Protocol, Scheduler, ServiceFlag,
};

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub control: Control,
    #[serde(default)]
    pub ipvs: Ipvs,
    #[serde(default)]
    pub vrrp: Vrrp,
    #[serde(default, rename = "virtual_server")]
    pub virtual_servers: Vec<VirtualServer>,
    pub sync: Option<Sync>,
    pub feedback: Option<Feedback>,
    pub agent: Option<Agent>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Each daemon serves `<socket_dir>/<daemon>.sock`.
    #[serde(default = "default_socket_dir")]
    pub socket_dir: PathBuf,
    /// Prometheus endpoint; off when absent.
    pub metrics: Option<SocketAddr>,
    /// A group whose members may read status and events on the control sockets (mode 0660);
    /// changes stay root-only. Absent: the sockets are 0600, root only.
    #[serde(default)]
    pub group: Option<String>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            socket_dir: default_socket_dir(),
            metrics: None,
            group: None,
        }
    }
}

fn default_socket_dir() -> PathBuf {
    PathBuf::from("/run/lvs-director")
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ipvs {
    /// `net.ipv4.vs.*` values directord applies at start and on reload.
    #[serde(default)]
    pub sysctl: BTreeMap<String, SysctlValue>,
    /// When true, directord removes services the config does not name; by default it leaves
    /// alone what it did not create, so a hand-made service survives a reload.
    #[serde(default)]
    pub own_whole_table: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum SysctlValue {
    Int(i64),
    List(Vec<i64>),
}

impl std::fmt::Display for SysctlValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SysctlValue::Int(v) => write!(f, "{v}"),
            SysctlValue::List(vs) => {
                let words: Vec<String> = vs.iter().map(i64::to_string).collect();
                f.write_str(&words.join(" "))
            }
        }
    }
}

// ---------------------------------------------------------------- vrrpd

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Vrrp {
    #[serde(default)]
    pub instance: Vec<VrrpInstance>,
    #[serde(default)]
    pub sync_group: Vec<SyncGroup>,
    /// Run vrrpd's event loop at this SCHED_RR priority (1..99), so a busy machine cannot delay
    /// an advert or a takeover; absent: normal scheduling. keepalived's `vrrp_rt_priority`,
    /// off by default there too.
    pub rt_priority: Option<u8>,
    /// With `rt_priority`: the CPU time vrrpd may use without blocking before the kernel stops
    /// it (RLIMIT_RTTIME), so a runaway real-time loop cannot freeze the machine.
    /// keepalived's `vrrp_rlimit_rttime`, with its default of 10 ms.
    #[serde(default = "default_rlimit_rttime")]
    pub rlimit_rttime: Duration,
    /// Lock vrrpd's memory (mlockall) so it is never paged out; keepalived's `vrrp_no_swap`,
    /// off by default there too.
    #[serde(default)]
    pub no_swap: bool,
    /// Whether directord answers on its control socket: a VIP over a dead or wedged
    /// directord's table (frozen or empty) is worth less than the peer's.
    #[serde(default)]
    pub track_directord: TrackDirectord,
}

/// `[vrrp] track_directord`: vrrpd asks directord for its status every `interval`; no answer
/// within `timeout` counts as down, and so does every instance's tracking (keepalived style).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackDirectord {
    /// Absent: on when the file has virtual servers (directord then has a table to keep).
    pub enabled: Option<bool>,
    /// 0: every instance goes to FAULT while directord is down; negative: its priority is
    /// lowered by that much (-254..-1), as a keepalived tracking weight.
    #[serde(default)]
    pub weight: i32,
    #[serde(default = "default_track_directord_interval")]
    pub interval: Duration,
    #[serde(default = "default_track_directord_interval")]
    pub timeout: Duration,
}

fn default_track_directord_interval() -> Duration {
    Duration::from_secs(1)
}

impl Default for TrackDirectord {
    fn default() -> Self {
        TrackDirectord {
            enabled: None,
            weight: 0,
            interval: default_track_directord_interval(),
            timeout: default_track_directord_interval(),
        }
    }
}

impl Config {
    /// Whether vrrpd tracks directord (see [`TrackDirectord`]).
    pub fn tracks_directord(&self) -> bool {
        self.vrrp
            .track_directord
            .enabled
            .unwrap_or(!self.virtual_servers.is_empty())
    }
}

fn default_rlimit_rttime() -> Duration {
    Duration::from_millis(10)
}

impl Default for Vrrp {
    fn default() -> Self {
        Vrrp {
            instance: Vec::new(),
            sync_group: Vec::new(),
            rt_priority: None,
            rlimit_rttime: default_rlimit_rttime(),
            no_swap: false,
            track_directord: TrackDirectord::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstance {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// keepalived's default priority.
    #[serde(default = "default_priority")]
    pub priority: u8,
    #[serde(default = "default_vrrp_version")]
    pub version: u8,
    #[serde(default = "default_advert_interval")]
    pub advert_interval: Duration,
    #[serde(default = "yes")]
    pub preempt: bool,
    #[serde(default)]
    pub preempt_delay: Duration,
    pub virtual_addresses: Vec<IpNet>,
    /// Empty: multicast to 224.0.0.18 / ff02::12.
    #[serde(default)]
    pub unicast_peers: Vec<IpAddr>,
    /// Source address for adverts; the interface's primary address when absent.
    pub source_address: Option<IpAddr>,
    pub auth: Option<Auth>,
    #[serde(default)]
    pub garp: Garp,
    /// Use the VRRP virtual MAC 00-00-5E-00-01-{vrid} (IPv6: 00-00-5E-00-02-{vrid}) on a
    /// macvlan over `interface` that holds the VIPs and sends the adverts (keepalived use_vmac).
    #[serde(default)]
    pub virtual_mac: bool,
    /// The macvlan's name; `vrrp.{vrid}` as keepalived names it (IPv6: `vrrp6.{vrid}`, so
    /// both families of one VRID can coexist). Only with `virtual_mac`.
    pub virtual_mac_interface: Option<String>,
    /// Called with: instance, old state, new state.
    pub notify: Option<String>,
    #[serde(default)]
    pub track_interfaces: Vec<TrackInterface>,
    #[serde(default)]
    pub track_scripts: Vec<TrackScript>,
    #[serde(default)]
    pub track_files: Vec<TrackFile>,
    #[serde(default)]
    pub track_processes: Vec<TrackProcess>,
    /// Virtual servers whose quorum the instance tracks (no keepalived equivalent): a
    /// director whose services lost quorum is worth less than its peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_services: Vec<TrackService>,
}

impl VrrpInstance {
    /// An instance's family is its VIPs' (validation refuses mixed lists).
    pub fn is_ipv6(&self) -> bool {
        self.virtual_addresses
            .first()
            .is_some_and(|vip| vip.addr().is_ipv6())
    }

    /// The macvlan a `virtual_mac` instance runs on: keepalived's `vrrp.<vrid>` unless named.
    pub fn virtual_mac_name(&self) -> Option<String> {
        if !self.virtual_mac {
            return None;
        }
        Some(match &self.virtual_mac_interface {
            Some(name) => name.clone(),
            None if self.is_ipv6() => format!("vrrp6.{}", self.vrid),
            None => format!("vrrp.{}", self.vrid),
        })
    }
}

fn default_priority() -> u8 {
    100
}
fn default_vrrp_version() -> u8 {
    2
}
fn default_advert_interval() -> Duration {
    Duration::from_secs(1)
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "lowercase")]
pub enum Auth {
    None,
    /// RFC 3768 simple text password, at most 8 bytes, VRRPv2 only.
    Pass {
        password: String,
    },
}

/// Gratuitous ARP / unsolicited NA on becoming master; keepalived's garp_master_* defaults.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Garp {
    /// Packets per burst (garp_master_repeat).
    #[serde(default = "default_garp_repeat")]
    pub repeat: u32,
    /// Gap between packets of a burst (garp_interval).
    #[serde(default)]
    pub spacing: Duration,
    /// Second burst this long after becoming master (garp_master_delay); "0s" disables it.
    #[serde(default = "default_garp_delay")]
    pub delay: Duration,
    /// Repeat a burst this often while master (garp_master_refresh); off when absent.
    pub refresh: Option<Duration>,
    /// Packets per burst a master sends on hearing a lower-priority master, as after a
    /// partition heals (garp_lower_prio_repeat); `repeat` when absent.
    pub lower_prio_repeat: Option<u32>,
    /// That burst's second one, this long after (garp_lower_prio_delay); `delay` when absent,
    /// "0s" disables it.
    pub lower_prio_delay: Option<Duration>,
}

impl Default for Garp {
    fn default() -> Self {
        Garp {
            repeat: default_garp_repeat(),
            spacing: Duration::ZERO,
            delay: default_garp_delay(),
            refresh: None,
            lower_prio_repeat: None,
            lower_prio_delay: None,
        }
    }
}

fn default_garp_repeat() -> u32 {
    5
}
fn default_garp_delay() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackInterface {
    pub name: String,
    /// keepalived semantics: a negative weight is added to the priority while the interface is
    /// down, a positive one while it is up; 0 puts the instance in FAULT while it is down.
    #[serde(default)]
    pub weight: i32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackScript {
    pub command: String,
    #[serde(default = "default_script_interval")]
    pub interval: Duration,
    pub timeout: Option<Duration>,
    #[serde(default = "one")]
    pub rise: u32,
    #[serde(default = "one")]
    pub fall: u32,
    /// keepalived semantics: a negative weight is added to the priority while the script fails,
    /// a positive one while it succeeds; 0 puts the instance in FAULT while it fails.
    #[serde(default)]
    pub weight: i32,
}

fn default_script_interval() -> Duration {
    Duration::from_secs(1)
}
fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackFile {
    /// The file holds an integer; weight x value is added to the priority (keepalived track_file).
    pub path: PathBuf,
    #[serde(default = "one_i32")]
    pub weight: i32,
}

fn one_i32() -> i32 {
    1
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackService {
    /// The virtual server's `name` (a group's services share it: all must hold quorum).
    pub service: String,
    /// 0: the instance goes to FAULT while the service is below quorum; negative: its
    /// priority drops by that much; positive: it rises by that much while quorum holds.
    #[serde(default)]
    pub weight: i32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrackProcess {
    /// Process name as in /proc/<pid>/comm.
    pub name: String,
    #[serde(default)]
    pub weight: i32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncGroup {
    pub name: String,
    pub instances: Vec<String>,
    pub notify: Option<String>,
}

// ---------------------------------------------------------------- directord

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualServer {
    pub name: Option<String>,
    pub address: Option<SocketAddr>,
    pub fwmark: Option<u32>,
    /// Address family of a fwmark service.
    pub family: Option<Family>,
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// ldirectord's default scheduler.
    #[serde(default = "default_scheduler")]
    pub scheduler: Scheduler,
    /// ldirectord's default forwarding method (gate).
    #[serde(default = "default_forwarding")]
    pub forwarding: Forwarding,
    pub persistence: Option<Duration>,
    pub netmask: Option<Netmask>,
    #[serde(default)]
    pub flags: Vec<ServiceFlag>,
    /// Persistence engine (only "sip" exists in the kernel).
    pub persistence_engine: Option<String>,
    /// ldirectord's quiescent = yes.
    #[serde(default = "default_on_failure")]
    pub on_failure: OnFailure,
    pub fallback: Option<SocketAddr>,
    pub check: Option<Check>,
    #[serde(default)]
    pub real: Vec<RealServer>,
    /// keepalived quorum: the least sum of live real servers' weights the service works with;
    /// below it the fallback (sorry server) takes the service. keepalived's default, 1, is
    /// "while any real server is live".
    #[serde(default = "default_quorum", skip_serializing_if = "is_default_quorum")]
    pub quorum: u32,
    /// keepalived hysteresis: quorum is gained at `quorum + hysteresis` and lost below
    /// `quorum - hysteresis`, so a service on the edge does not flap.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hysteresis: u32,
    /// keepalived quorum_up: run (`/bin/sh -c`) when the service gains its quorum, and at
    /// start when it has it (keepalived's "Gained quorum" at start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_up: Option<String>,
    /// keepalived quorum_down: run when the service loses it, and at start when it starts
    /// without it and has a fallback (keepalived's "Starting with quorum down").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_down: Option<String>,
    /// keepalived omega: at shutdown (SIGTERM), run the notify_down of every live real server
    /// and then quorum_down, each given a second. The table is left as it is (directord
    /// never empties it on the way out), unlike keepalived, which removes its services.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub omega: bool,
    /// keepalived ha_suspend: the service's checks pause while its virtual address is not on
    /// this host (the VRRP backup), its real servers keeping their state. Address services
    /// only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ha_suspend: bool,
    /// keepalived virtual_server_group: instead of `address`/`fwmark`, the services this block
    /// stands for, one per member, with one set of checks for all of them. Loading expands it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<GroupMember>,
    /// Set by loading on the services a group expanded to: the index of their block.
    #[serde(skip)]
    pub group_of: Option<usize>,
}

fn default_protocol() -> Protocol {
    Protocol::Tcp
}
fn default_scheduler() -> Scheduler {
    Scheduler::Wrr
}
fn default_forwarding() -> Forwarding {
    Forwarding::Dr
}
fn default_quorum() -> u32 {
    1
}
fn is_default_quorum(quorum: &u32) -> bool {
    *quorum == 1
}
fn is_zero(n: &u32) -> bool {
    *n == 0
}
fn default_on_failure() -> OnFailure {
    OnFailure::Quiescent
}

/// What a file's `[[virtual_server]]` with none of its keys set would be (it has neither
/// address nor fwmark, which validation refuses): the defaults the importers start from.
impl Default for VirtualServer {
    fn default() -> Self {
        VirtualServer {
            name: None,
            address: None,
            fwmark: None,
            family: None,
            protocol: default_protocol(),
            scheduler: default_scheduler(),
            forwarding: default_forwarding(),
            persistence: None,
            netmask: None,
            flags: Vec::new(),
            persistence_engine: None,
            on_failure: default_on_failure(),
            fallback: None,
            check: None,
            real: Vec::new(),
            quorum: default_quorum(),
            hysteresis: 0,
            quorum_up: None,
            quorum_down: None,
            omega: false,
            ha_suspend: false,
            group: Vec::new(),
            group_of: None,
        }
    }
}

impl VirtualServer {
    /// How operators and logs name the service: its name, or what ipvsadm would print.
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match (self.address, self.fwmark) {
            (Some(addr), _) => format!("{} {addr}", self.protocol),
            (None, Some(mark)) => format!("fwmark {mark}"),
            (None, None) => "virtual server".to_owned(),
        }
    }

    /// A group block's family: its first address member's, else `family`.
    pub fn is_group_ipv6(&self) -> bool {
        self.group
            .iter()
            .find_map(|m| match m {
                GroupMember::Address { first, .. } => Some(first.is_ipv6()),
                GroupMember::Fwmark(_) => None,
            })
            .unwrap_or(self.family == Some(Family::Inet6))
    }

    /// The family of the service; for fwmark services, `family` (IPv4 unless said otherwise).
    pub fn is_ipv6(&self) -> bool {
        match self.address {
            Some(addr) => addr.is_ipv6(),
            None if !self.group.is_empty() => self.is_group_ipv6(),
            None => self.family == Some(Family::Inet6),
        }
    }

    /// The virtual port real servers are checked against: the address's, or a group's first
    /// address member's.
    pub fn virtual_port(&self) -> Option<u16> {
        let group_port = || {
            self.group.iter().find_map(|m| match m {
                GroupMember::Address { first, .. } => Some(first.port()),
                GroupMember::Fwmark(_) => None,
            })
        };
        self.address.map(|a| a.port()).or_else(group_port)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RealServer {
    pub address: SocketAddr,
    /// ipvsadm's and ldirectord's default weight.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Overrides the service's forwarding method.
    pub forwarding: Option<Forwarding>,
    /// Upper connection threshold (ipvsadm -x); 0 is no limit.
    #[serde(default)]
    pub upper_threshold: u32,
    /// Lower connection threshold (ipvsadm -y).
    #[serde(default)]
    pub lower_threshold: u32,
    /// Overrides the service's check; timing keys it leaves out are inherited.
    pub check: Option<Check>,
    /// Overrides the service's `on_failure` for this real server (keepalived's
    /// inhibit_on_failure inside real_server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
    /// keepalived notify_up: run (`/bin/sh -c`) when this entry's check brings it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_up: Option<String>,
    /// keepalived notify_down: run when this entry's check takes it down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_down: Option<String>,
}

fn default_weight() -> u32 {
    1
}

/// One table for every check kind; validation refuses keys that do not apply to `type`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    #[serde(rename = "type")]
    pub kind: Option<CheckType>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    /// Wait between a failed attempt and its retry (keepalived delay_before_retry).
    pub retry_delay: Option<Duration>,
    pub initial: Option<InitialState>,
    /// Check a different port than the real server's (keepalived connect_port).
    pub port: Option<u16>,
    /// Most bytes a negotiate check reads from the server.
    pub max_bytes: Option<u32>,
    // http / https / sip
    pub method: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub expect_status: Option<Vec<String>>,
    pub expect_body: Option<String>,
    pub tls_verify: Option<bool>,
    pub sni: Option<String>,
    // tcp / udp and the line protocols
    pub send: Option<String>,
    pub expect: Option<String>,
    // dns
    pub query: Option<String>,
    pub record_type: Option<String>,
    pub expect_rcode: Option<String>,
    // ldap / mysql / pgsql / radius / pop / imap / ftp
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
    pub secret: Option<String>,
    // external
    pub command: Option<String>,
    /// The command's exit code sets the weight (keepalived misc_dynamic).
    pub dynamic_weight: Option<bool>,
}

// ---------------------------------------------------------------- syncd

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sync {
    pub interface: String,
    #[serde(default)]
    pub syncid: u8,
    pub role: SyncRole,
    #[serde(default = "default_sync_group")]
    pub group: SocketAddr,
    #[serde(default = "default_sync_version")]
    pub version: u8,
    #[serde(default = "default_sync_maxlen")]
    pub maxlen: u16,
    #[serde(default = "one_u8")]
    pub ttl: u8,
    /// Other directors' syncd: an address, which syncd reaches at `unicast_port`, or an
    /// address and port (that must be `unicast_port`: every director reads this config).
    #[serde(default)]
    pub peers: Vec<SyncPeer>,
    /// The port syncd receives its peers' unicast on; absent: the group's port.
    pub unicast_port: Option<u16>,
    /// Entries per second a full resync sends to one peer (0: all at once).
    #[serde(default = "default_sync_resync_rate")]
    pub resync_rate: u32,
    /// Senders whose messages to the sync group are learned, besides the peers; absent: the
    /// subnets of the sync interface's own addresses. Anyone else on the group could fill
    /// the mirror, which is resynced to the peers and injected into their kernels.
    pub group_sources: Option<Vec<IpNet>>,
    /// Most entries the mirror holds. When full, new entries are refused (and counted) while
    /// entries already held keep being updated, so the connections synced first stay right.
    #[serde(default = "default_sync_max_entries")]
    pub max_entries: u32,
    /// File holding a shared key (at least 16 bytes, readable by root only): unicast between
    /// syncd peers then carries an HMAC-SHA256 tag, and datagrams without a valid one are
    /// dropped. Kept out of this file, which is world-readable.
    pub key_file: Option<PathBuf>,
}

impl Sync {
    /// The port syncd receives unicast on, and its peers' port unless they name one.
    pub fn unicast_port(&self) -> u16 {
        self.unicast_port.unwrap_or(self.group.port())
    }

    /// Where each peer's syncd is reached.
    pub fn peer_addrs(&self) -> Vec<SocketAddr> {
        let port = self.unicast_port();
        self.peers
            .iter()
            .map(|p| SocketAddr::new(p.ip, p.port.unwrap_or(port)))
            .collect()
    }
}

/// A peer in `[sync] peers`: `"192.0.2.12"`, `"2001:db8::12"`, or with a port
/// `"192.0.2.12:8848"`, `"[2001:db8::12]:8848"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPeer {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl std::str::FromStr for SyncPeer {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(SyncPeer { ip, port: None });
        }
        s.parse::<SocketAddr>()
            .map(|at| SyncPeer {
                ip: at.ip(),
                port: Some(at.port()),
            })
            .map_err(|_| {
                format!(
                    "peer {s:?} is not an address or address:port \
                     (\"192.0.2.12\", \"[2001:db8::12]:8848\")"
                )
            })
    }
}

impl std::fmt::Display for SyncPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => SocketAddr::new(self.ip, port).fmt(f),
            None => self.ip.fmt(f),
        }
    }
}

impl Serialize for SyncPeer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SyncPeer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Two million entries: about 200 MB of mirror at the most (87 to 100 bytes an entry,
/// measured by `cargo test -p syncd --bench codec`), above what most director pairs sync,
/// and far below what fills a director's memory.
fn default_sync_max_entries() -> u32 {
    2_000_000
}

/// 100,000 entries/s: a million-entry table in ten seconds at about 30 Mbit/s, instead of
/// one burst that overruns the peer's socket buffer.
fn default_sync_resync_rate() -> u32 {
    100_000
}
fn default_sync_group() -> SocketAddr {
    SocketAddr::from(([224, 0, 0, 81], 8848))
}
fn default_sync_version() -> u8 {
    1
}
fn default_sync_maxlen() -> u16 {
    1472
}
fn one_u8() -> u8 {
    1
}

/// `role = "master" | "backup"` or `role = { follow = "VI_1" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRole {
    Master,
    Backup,
    Follow(String),
}

/// Written the way it is read, so a serialized config parses again.
impl Serialize for SyncRole {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            SyncRole::Master => serializer.serialize_str("master"),
            SyncRole::Backup => serializer.serialize_str("backup"),
            SyncRole::Follow(instance) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("follow", instance)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for SyncRole {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Follow {
            follow: String,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Fixed(String),
            Follow(Follow),
        }
        let raw = Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "role must be \"master\", \"backup\" or { follow = \"<vrrp instance>\" }",
            )
        })?;
        match raw {
            Raw::Fixed(s) if s == "master" => Ok(SyncRole::Master),
            Raw::Fixed(s) if s == "backup" => Ok(SyncRole::Backup),
            Raw::Fixed(s) => Err(serde::de::Error::custom(format!(
                "unknown role {s:?}; expected \"master\", \"backup\" or {{ follow = \"<vrrp instance>\" }}"
            ))),
            Raw::Follow(f) => Ok(SyncRole::Follow(f.follow)),
        }
    }
}

// ---------------------------------------------------------------- feedbackd

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    #[serde(default = "default_feedback_interval")]
    pub interval: Duration,
    #[serde(default = "default_feedback_timeout")]
    pub timeout: Duration,
    /// EWMA factor on reported load, 0 < smoothing <= 1 (1: no smoothing).
    #[serde(default = "default_smoothing")]
    pub smoothing: f64,
    #[serde(default = "default_min_weight")]
    pub min_weight: Percent,
    #[serde(default = "default_max_weight")]
    pub max_weight: Percent,
    /// Changes smaller than this share of the configured weight are not applied.
    #[serde(default = "default_hysteresis")]
    pub hysteresis: Percent,
    /// At most one weight change per real server this often.
    #[serde(default = "default_min_change_interval")]
    pub min_change_interval: Duration,
    #[serde(default = "default_lost_after")]
    pub lost_after: Duration,
    #[serde(default)]
    pub agent: Vec<FeedbackAgent>,
}

fn default_feedback_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_feedback_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_smoothing() -> f64 {
    0.3
}
fn default_min_weight() -> Percent {
    Percent(10.0)
}
fn default_max_weight() -> Percent {
    Percent(100.0)
}
fn default_hysteresis() -> Percent {
    Percent(5.0)
}
fn default_min_change_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_lost_after() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackAgent {
    /// The real server (as written under a virtual_server) whose weight this agent drives.
    pub real: SocketAddr,
    pub address: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    #[serde(default = "default_agent_listen")]
    pub listen: SocketAddr,
    #[serde(default = "default_agent_report")]
    pub report: AgentReport,
    #[serde(default = "default_agent_window")]
    pub window: Duration,
    /// Its first output line is the reply when `report = "command"`.
    pub command: Option<String>,
    /// Operator override: a file holding drain, maint, ready or down#reason.
    #[serde(default = "default_agent_override")]
    pub override_file: PathBuf,
    /// Also report headroom by established TCP connections on local ports.
    pub connections: Option<AgentConnections>,
}

/// Load as connections: established TCP connections whose local port is one of `ports` (IPv4
/// and IPv6), against `max_connections`. 0 connections is 100% idle, `max_connections` is 0%;
/// like every signal, it only lowers the reported weight when it is the smallest headroom.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConnections {
    pub ports: Vec<u16>,
    pub max_connections: u32,
}

fn default_agent_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 3333))
}
fn default_agent_report() -> AgentReport {
    AgentReport::Cpu
}
fn default_agent_window() -> Duration {
    Duration::from_secs(5)
}
fn default_agent_override() -> PathBuf {
    PathBuf::from("/run/lvs-director-agent/agent.override")
}
