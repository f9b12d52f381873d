//! The typed shape of director.toml. Every table refuses unknown keys: a misspelt key is an
//! error, never a silently ignored setting.
//!
//! Defaults follow what keepalived and ldirectord users expect; each one says whose default it is.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::values::{
    AgentReport, CheckType, Duration, Family, Forwarding, GroupMember, InitialState, Netmask,
    OnFailure, Percent, Protocol, RouteType, Scheduler, Scope, ServiceFlag,
};

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub control: Control,
    #[serde(default)]
    pub ipvs: Ipvs,
    #[serde(default)]
    pub vrrp: Vrrp,
    /// BFD sessions vrrpd runs to its peers.
    #[serde(default)]
    pub bfd: crate::bfd::Bfd,
    #[serde(default, rename = "virtual_server")]
    pub virtual_servers: Vec<VirtualServer>,
    pub sync: Option<Sync>,
    pub feedback: Option<Feedback>,
    pub agent: Option<Agent>,
    /// VIPs announced over BGP by a routing engine (issue 18); see [`crate::announce`].
    pub announce: Option<crate::announce::Announce>,
    /// Where each `[[virtual_server]]` block of the text went, for [`crate::reload`].
    #[serde(skip)]
    #[schemars(skip)]
    pub blocks: crate::reparse::BlockIndex,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Each daemon serves `<socket_dir>/<daemon>.sock`.
    #[serde(default = "default_socket_dir")]
    pub socket_dir: PathBuf,
    /// The daemons' HTTP listener (directord here, vrrpd +1, syncd +2, feedbackd +3): /metrics,
    /// /status.json, and directord's live status page at /; off when absent.
    pub metrics: Option<SocketAddr>,
    /// A group whose members may read status and events on the control sockets (mode 0660);
    /// changes stay root-only. Absent: the sockets are 0600, root only.
    #[serde(default)]
    pub group: Option<String>,
    /// Where the daemons keep what must outlive a restart: the operator's drains and
    /// maintenance (`lvsadm drain|maint|enable`, directord's `admin.json`), forced backups
    /// (`lvsadm vrrp force-backup|release`, vrrpd's `vrrp-forced.json`) and drained announced
    /// VIPs (`lvsadm announce drain`, vrrpd's `announce.json`). The units' StateDirectory.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            socket_dir: default_socket_dir(),
            metrics: None,
            group: None,
            state_dir: default_state_dir(),
        }
    }
}

fn default_socket_dir() -> PathBuf {
    PathBuf::from("/run/lvs-director")
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/lvs-director")
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ipvs {
    /// `net.ipv4.vs.*` values directord applies at start and on reload.
    #[serde(default)]
    pub sysctl: BTreeMap<String, SysctlValue>,
    /// When true, directord removes services the config does not name; by default it leaves
    /// alone what it did not create, so a hand-made service survives a reload.
    #[serde(default)]
    pub own_whole_table: bool,
    /// How often directord reads the whole kernel table back to check its cached copy (and
    /// repair out-of-band changes); between verifies it trusts its own writes. 0: only at
    /// start and after a netlink error, as keepalived (which never reads the table back).
    #[serde(default = "default_verify_interval")]
    pub verify_interval: Duration,
}

fn default_verify_interval() -> Duration {
    Duration::from_secs(60)
}

impl Default for Ipvs {
    fn default() -> Self {
        Ipvs {
            sysctl: BTreeMap::new(),
            own_whole_table: false,
            verify_interval: default_verify_interval(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
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
    /// A FIFO vrrpd writes a line to at every state change, in keepalived's format
    /// (`INSTANCE "VI_1" MASTER 150`, `GROUP "G1" BACKUP 0`); made (mode 0644) if absent.
    /// keepalived's `notify_fifo` / `vrrp_notify_fifo`.
    pub notify_fifo: Option<PathBuf>,
    /// Started with the FIFO's path as last argument when vrrpd starts, to read it.
    /// keepalived's `notify_fifo_script` / `vrrp_notify_fifo_script`.
    pub notify_fifo_script: Option<String>,
    /// Refuse to run a notify script (or the FIFO script) that anyone but root could change:
    /// the file or a directory above it not owned by root, or writable by a group other than
    /// root's or by all (a directory with the sticky bit excepted). keepalived's
    /// `enable_script_security`; off by default there too.
    #[serde(default)]
    pub script_security: bool,
}

/// `[vrrp] track_directord`: vrrpd asks directord for its status every `interval`; no answer
/// within `timeout` counts as down, and so does every instance's tracking (keepalived style).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackDirectord {
    /// Absent: on when the file has virtual servers (directord then has a table to keep).
    pub enabled: Option<bool>,
    /// 0: every instance goes to FAULT while directord is down; negative: its priority is
    /// lowered by that much (-254..-1), as a keepalived tracking weight.
    #[serde(default)]
    pub weight: i32,
    /// How often vrrpd asks directord.
    #[serde(default = "default_track_directord_interval")]
    pub interval: Duration,
    /// No answer within this counts as directord down.
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
            notify_fifo: None,
            notify_fifo_script: None,
            script_security: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VrrpInstance {
    /// The instance's name in logs, status, scripts and sync groups (keepalived's `vrrp_instance
    /// NAME`).
    pub name: String,
    /// The interface adverts are sent and heard on, and the VIPs live on (keepalived `interface`).
    /// The instance goes to FAULT while its link is down.
    pub interface: String,
    /// Virtual router id, 1..255, the same on every director of the pair (keepalived
    /// `virtual_router_id`).
    pub vrid: u8,
    /// keepalived's default priority.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// VRRP version: 2 (RFC 3768, IPv4) or 3 (RFC 5798, IPv4 and IPv6, centisecond adverts);
    /// keepalived `version`.
    #[serde(default = "default_vrrp_version")]
    pub version: u8,
    /// Time between adverts; whole seconds with version 2, down to 10ms with version 3 (keepalived
    /// `advert_int`).
    #[serde(default = "default_advert_interval")]
    pub advert_interval: Duration,
    /// A higher-priority backup takes over from a lower-priority master; false is keepalived's
    /// `nopreempt`.
    #[serde(default = "yes")]
    pub preempt: bool,
    /// After start, wait this long before preempting a lower-priority master (keepalived
    /// `preempt_delay`).
    #[serde(default)]
    pub preempt_delay: Duration,
    /// The VIPs, address/prefix, all of one family; version 2 is IPv4 only (keepalived
    /// `virtual_ipaddress`).
    pub virtual_addresses: Vec<IpNet>,
    /// Virtual addresses with keepalived's options (another device, label, scope, broadcast),
    /// or not advertised (keepalived's `virtual_ipaddress_excluded`): added and removed with
    /// the state like `virtual_addresses`, listed after them in adverts.
    #[serde(default)]
    pub vips: Vec<Vip>,
    /// Routes added while MASTER and removed otherwise (keepalived `virtual_routes`).
    #[serde(default)]
    pub routes: Vec<VirtualRoute>,
    /// Policy rules added while MASTER and removed otherwise (keepalived `virtual_rules`).
    #[serde(default)]
    pub rules: Vec<VirtualRule>,
    /// Empty: multicast to 224.0.0.18 / ff02::12.
    #[serde(default)]
    pub unicast_peers: Vec<IpAddr>,
    /// Source address for adverts; the interface's primary address when absent.
    pub source_address: Option<IpAddr>,
    /// RFC 3768 authentication, version 2 only: `{ type = "pass", password = "..." }` (keepalived
    /// `authentication { auth_type PASS }`); absent or `{ type = "none" }`: none.
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
    /// Run with no extra argument on entering MASTER (keepalived `notify_master`). Each script
    /// is a command line (words split as a shell would, quotes kept together), not waited for.
    pub notify_master: Option<String>,
    /// On entering BACKUP (keepalived `notify_backup`).
    pub notify_backup: Option<String>,
    /// On entering FAULT (keepalived `notify_fault`).
    pub notify_fault: Option<String>,
    /// When vrrpd stops (keepalived `notify_stop`).
    pub notify_stop: Option<String>,
    /// keepalived's `notify`: run at every state change with `INSTANCE <name>
    /// MASTER|BACKUP|FAULT|STOP <priority>`.
    pub notify_state: Option<String>,
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
    /// `[[bfd.session]]`s the instance tracks (keepalived `track_bfd`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track_bfd: Vec<crate::bfd::TrackBfd>,
    /// A single-hop `[[bfd.session]]` to the peer director (no keepalived equivalent): when it
    /// goes down while that peer is master, this backup takes over once one advert is missed
    /// instead of after Master_Down_Interval. An advert still heard (only BFD lost) keeps it
    /// backup, so BFD alone never makes two masters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_takeover: Option<String>,
}

/// A virtual address with keepalived's `virtual_ipaddress` options.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vip {
    /// The address/prefix (keepalived's `virtual_ipaddress` entry's first word).
    pub address: IpNet,
    /// The device that holds it; the instance's interface (or its macvlan) when absent
    /// (keepalived `dev`): a NAT director's inside gateway while VRRP runs outside.
    pub dev: Option<String>,
    /// keepalived `label`: `<device>` or `<device>:<anything>`, at most 15 bytes.
    pub label: Option<String>,
    /// keepalived `scope`; global when absent.
    pub scope: Option<Scope>,
    /// keepalived `brd` (IPv4); none when absent, as keepalived adds none.
    pub broadcast: Option<std::net::Ipv4Addr>,
    /// As keepalived, the instance is in FAULT while `dev` is down; false: not (`no_track`).
    #[serde(default = "yes")]
    pub track: bool,
    /// false: not listed in adverts, and of either family (keepalived
    /// `virtual_ipaddress_excluded`).
    #[serde(default = "yes")]
    pub advertised: bool,
}

/// A route that follows the VRRP state, as `ip route add [type] to [via] [dev] [src] [table]
/// [metric] [scope]` would add it, with keepalived's protocol (`proto keepalived`, 18), so
/// `ip route` shows the routes as keepalived's.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualRoute {
    /// The destination, address/prefix (`0.0.0.0/0` for a default route).
    pub to: IpNet,
    /// unicast (default), blackhole, unreachable or prohibit.
    #[serde(rename = "type", default = "unicast")]
    pub kind: RouteType,
    /// The gateway (`via`).
    pub via: Option<IpAddr>,
    /// The output device (`dev`); tracked as keepalived tracks it unless `track = false`.
    pub dev: Option<String>,
    /// The preferred source address (`src`), often one of the instance's VIPs.
    pub src: Option<IpAddr>,
    /// The main table when absent.
    pub table: Option<u32>,
    /// The route's metric (`metric`, the kernel's priority); 0 when absent.
    pub metric: Option<u32>,
    /// global when absent, as keepalived.
    pub scope: Option<Scope>,
    /// As keepalived, the instance is in FAULT while `dev` is down; false: not (`no_track`).
    #[serde(default = "yes")]
    pub track: bool,
}

fn unicast() -> RouteType {
    RouteType::Unicast
}

/// A policy rule that follows the VRRP state: `ip rule add [from] [to] table [priority]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualRule {
    /// Packets from this source, address/prefix (`from`); any when absent.
    pub from: Option<IpNet>,
    /// Packets to this destination, address/prefix (`to`); any when absent.
    pub to: Option<IpNet>,
    /// The routing table the rule looks up (`table`).
    pub table: u32,
    /// The kernel picks one when absent.
    pub priority: Option<u32>,
}

impl Vip {
    /// An address with no option: on the instance's interface, advertised.
    pub fn plain(address: IpNet) -> Vip {
        Vip {
            address,
            dev: None,
            label: None,
            scope: None,
            broadcast: None,
            advertised: true,
            track: true,
        }
    }
}

impl VrrpInstance {
    /// The devices keepalived tracks besides `track_interfaces`: those of the VIPs and routes
    /// on another device than the instance's (unless `track = false`), each at weight 0, so
    /// a NAT director whose inside link is down gives up mastership.
    pub fn device_tracking(&self) -> Vec<TrackInterface> {
        let vips = self
            .vips
            .iter()
            .filter(|v| v.track)
            .filter_map(|v| v.dev.as_ref());
        let routes = self
            .routes
            .iter()
            .filter(|r| r.track)
            .filter_map(|r| r.dev.as_ref());
        let mut tracked: Vec<TrackInterface> = Vec::new();
        for dev in vips.chain(routes) {
            let known = *dev == self.interface
                || self.track_interfaces.iter().any(|t| t.name == *dev)
                || tracked.iter().any(|t| t.name == *dev);
            if !known {
                tracked.push(TrackInterface {
                    name: dev.clone(),
                    weight: 0,
                });
            }
        }
        tracked
    }

    /// Every address the instance holds while master: `virtual_addresses` as plain `Vip`s,
    /// then `vips`.
    pub fn all_vips(&self) -> Vec<Vip> {
        self.virtual_addresses
            .iter()
            .map(|net| Vip::plain(*net))
            .chain(self.vips.iter().cloned())
            .collect()
    }

    /// What the adverts list: `virtual_addresses`, then the advertised `vips`.
    pub fn advertised(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.virtual_addresses
            .iter()
            .copied()
            .chain(self.vips.iter().filter(|v| v.advertised).map(|v| v.address))
    }

    /// An instance's family is its advertised VIPs' (validation refuses mixed lists).
    pub fn is_ipv6(&self) -> bool {
        self.advertised()
            .next()
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "lowercase")]
pub enum Auth {
    None,
    /// RFC 3768 simple text password, at most 8 bytes, VRRPv2 only.
    Pass {
        password: String,
    },
}

/// Gratuitous ARP / unsolicited NA on becoming master; keepalived's garp_master_* defaults.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackInterface {
    /// The interface whose link state is tracked (keepalived `track_interface`).
    pub name: String,
    /// keepalived semantics: a negative weight is added to the priority while the interface is
    /// down, a positive one while it is up; 0 puts the instance in FAULT while it is down.
    #[serde(default)]
    pub weight: i32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackScript {
    /// Run without a shell; exit 0 is success (keepalived `vrrp_script { script }`).
    pub command: String,
    /// Time between runs (keepalived `interval`).
    #[serde(default = "default_script_interval")]
    pub interval: Duration,
    /// A run taking longer fails (keepalived `timeout`); absent: `interval`.
    pub timeout: Option<Duration>,
    /// Consecutive successes before the script counts as up (keepalived `rise`).
    #[serde(default = "one")]
    pub rise: u32,
    /// Consecutive failures before the script counts as down (keepalived `fall`).
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackFile {
    /// The file holds an integer; weight x value is added to the priority (keepalived track_file).
    pub path: PathBuf,
    /// Multiplies the file's integer before it is added to the priority (keepalived `track_file`
    /// weight).
    #[serde(default = "one_i32")]
    pub weight: i32,
}

fn one_i32() -> i32 {
    1
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackService {
    /// The virtual server's `name` (a group's services share it: all must hold quorum).
    pub service: String,
    /// 0: the instance goes to FAULT while the service is below quorum; negative: its
    /// priority drops by that much; positive: it rises by that much while quorum holds.
    #[serde(default)]
    pub weight: i32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackProcess {
    /// Process name as in /proc/<pid>/comm.
    pub name: String,
    /// keepalived semantics: a negative weight is added to the priority while no such process runs,
    /// a positive one while one does; 0 puts the instance in FAULT while none runs (keepalived
    /// `track_process`).
    #[serde(default)]
    pub weight: i32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncGroup {
    /// The group's name in logs, status and scripts (keepalived `vrrp_sync_group NAME`).
    pub name: String,
    /// Instances that change state together: when one leaves MASTER, the others follow (keepalived
    /// `group`).
    pub instances: Vec<String>,
    /// Called with the group's name, old state and new state on each change of the group
    /// (keepalived `notify` in a sync group).
    pub notify: Option<String>,
    /// Run with no extra argument on entering MASTER (keepalived `notify_master`). Each script
    /// is a command line (words split as a shell would, quotes kept together), not waited for.
    pub notify_master: Option<String>,
    /// On entering BACKUP (keepalived `notify_backup`).
    pub notify_backup: Option<String>,
    /// On entering FAULT (keepalived `notify_fault`).
    pub notify_fault: Option<String>,
    /// When vrrpd stops (keepalived `notify_stop`).
    pub notify_stop: Option<String>,
    /// keepalived's `notify`: run at every state change with `GROUP <name>
    /// MASTER|BACKUP|FAULT|STOP <priority>` (a group's priority is 0).
    pub notify_state: Option<String>,
}

/// The scripts of an instance or a sync group, as keepalived runs them.
#[derive(Debug, Clone, Copy)]
pub struct NotifyScripts<'a> {
    pub master: Option<&'a str>,
    pub backup: Option<&'a str>,
    pub fault: Option<&'a str>,
    pub stop: Option<&'a str>,
    pub state: Option<&'a str>,
}

/// A script's command line as words, split as keepalived splits it (quotes group words);
/// `None` when it is empty or its quotes do not close.
pub fn command_words(command: &str) -> Option<Vec<String>> {
    shlex::split(command).filter(|words| !words.is_empty())
}

impl NotifyScripts<'_> {
    /// Each script with its key, for validation.
    pub fn keyed(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("notify_master", self.master),
            ("notify_backup", self.backup),
            ("notify_fault", self.fault),
            ("notify_stop", self.stop),
            ("notify_state", self.state),
        ]
    }
}

impl VrrpInstance {
    pub fn notify_scripts(&self) -> NotifyScripts<'_> {
        NotifyScripts {
            master: self.notify_master.as_deref(),
            backup: self.notify_backup.as_deref(),
            fault: self.notify_fault.as_deref(),
            stop: self.notify_stop.as_deref(),
            state: self.notify_state.as_deref(),
        }
    }
}

impl SyncGroup {
    pub fn notify_scripts(&self) -> NotifyScripts<'_> {
        NotifyScripts {
            master: self.notify_master.as_deref(),
            backup: self.notify_backup.as_deref(),
            fault: self.notify_fault.as_deref(),
            stop: self.notify_stop.as_deref(),
            state: self.notify_state.as_deref(),
        }
    }
}

// ---------------------------------------------------------------- directord

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtualServer {
    /// How logs, status and lvsadm name the service; default: what ipvsadm prints (`TCP
    /// 192.0.2.100:80`).
    pub name: Option<String>,
    /// The virtual address and port (ipvsadm -t/-u/--sctp-service; keepalived `virtual_server IP
    /// PORT`). Port 0 with persistence: all ports. Either this or `fwmark`.
    pub address: Option<SocketAddr>,
    /// A firewall-mark service instead of an address (ipvsadm -f; keepalived `virtual_server fwmark
    /// N`).
    pub fwmark: Option<u32>,
    /// Address family of a fwmark service.
    pub family: Option<Family>,
    /// Transport protocol (keepalived `protocol`; ldirectord `protocol`).
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// ldirectord's default scheduler.
    #[serde(default = "default_scheduler")]
    pub scheduler: Scheduler,
    /// ldirectord's default forwarding method (gate).
    #[serde(default = "default_forwarding")]
    pub forwarding: Forwarding,
    /// Persistent service: a client sticks to its real server for this long after its last
    /// connection (ipvsadm -p; keepalived `persistence_timeout`; ldirectord `persistent`). Absent:
    /// not persistent.
    pub persistence: Option<Duration>,
    /// Persistence granularity: clients in one such network share a real server (ipvsadm -M;
    /// keepalived `persistence_granularity`; ldirectord `netmask`).
    pub netmask: Option<Netmask>,
    /// Scheduler flags (ipvsadm -b): sh-fallback and sh-port need the sh scheduler, mh-fallback and
    /// mh-port mh; ops (one-packet scheduling) needs udp.
    #[serde(default)]
    pub flags: Vec<ServiceFlag>,
    /// Persistence engine (only "sip" exists in the kernel).
    pub persistence_engine: Option<String>,
    /// ldirectord's quiescent = yes.
    #[serde(default = "default_on_failure")]
    pub on_failure: OnFailure,
    /// Sorry server: added with weight 1 only while every real server is down (keepalived
    /// `sorry_server`; ldirectord `fallback`).
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RealServer {
    /// The real server's address and port (ipvsadm -r; keepalived `real_server IP PORT`; ldirectord
    /// `real`). Port 0 or the virtual port with dr and tun.
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
    /// Overrides the service's check; timing keys it leaves out are inherited. Boxed: a check
    /// is 600 bytes and most real servers have none of their own, so inline it was most of a
    /// real server's size (22 MB of 28 at 37,298 entries).
    pub check: Option<Box<Check>>,
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
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// The check kind: connect (TCP connect), http, https, tcp (send/expect), dns, smtp, pop, imap,
    /// ftp, ldap, mysql, pgsql, sip, radius, udp, ping, external (a command), on (always up), off
    /// (always down). keepalived TCP_CHECK, HTTP_GET, SSL_GET, SMTP_CHECK, DNS_CHECK, MISC_CHECK;
    /// ldirectord `checktype`/`service`.
    #[serde(rename = "type")]
    pub kind: Option<CheckType>,
    /// Time between checks of one real server; default 10s (keepalived `delay_loop`; ldirectord
    /// `checkinterval`).
    pub interval: Option<Duration>,
    /// A check taking longer fails; default 5s (keepalived `connect_timeout`; ldirectord
    /// `checktimeout`).
    pub timeout: Option<Duration>,
    /// Consecutive successes before a down server comes up; default 1, as keepalived and
    /// ldirectord, which bring a server back on its first success.
    pub rise: Option<u32>,
    /// Consecutive failures before an up server goes down; default 1 (keepalived `retry` + 1;
    /// ldirectord `failurecount`).
    pub fall: Option<u32>,
    /// Wait between a failed attempt and its retry (keepalived delay_before_retry).
    pub retry_delay: Option<Duration>,
    /// The state before the first result: up or down; default down for every kind but on
    /// (keepalived `alpha` starts down).
    pub initial: Option<InitialState>,
    /// Check a different port than the real server's (keepalived connect_port).
    pub port: Option<u16>,
    /// Check a different address than the real server's (keepalived connect_ip).
    pub address: Option<IpAddr>,
    /// The probe's source address (keepalived bindto); absent: the routing table's choice.
    pub bind_address: Option<IpAddr>,
    /// The probe's source port (keepalived bind_port); absent: an ephemeral port.
    pub bind_port: Option<u16>,
    /// Most bytes a negotiate check reads from the server.
    pub max_bytes: Option<u32>,
    // http / https / sip
    /// HTTP method; default GET (ldirectord `httpmethod`).
    pub method: Option<String>,
    /// http/https/sip: the request path, default /; ldap: the search base (keepalived `url { path
    /// }`; ldirectord `request`).
    pub path: Option<String>,
    /// http/https: the Host header (and the TLS SNI unless `sni` is set); default the real server's
    /// address (keepalived `virtualhost`; ldirectord `virtualhost`).
    pub host: Option<String>,
    /// Accepted HTTP status codes and ranges, e.g. ["200", "300-399"]; default 200-299 (keepalived
    /// `status_code`).
    pub expect_status: Option<Vec<String>>,
    /// A regular expression the body must match (ldirectord `receive`; keepalived `regex`).
    pub expect_body: Option<String>,
    /// MD5 of the body, 32 hex digits, as keepalived's digest and genhash print it.
    pub digest: Option<String>,
    /// Several pages, each fetched on its own connection; all must pass (keepalived's
    /// url blocks). The check's own path, digest, expect_status and expect_body then
    /// are defaults for them.
    pub url: Option<Vec<CheckUrl>>,
    /// https: verify the server's certificate against the system roots; default true.
    pub tls_verify: Option<bool>,
    /// https: the TLS server name; default `host`.
    pub sni: Option<String>,
    // smtp
    /// Name sent with EHLO / HELO (keepalived helo_name).
    pub helo_name: Option<String>,
    /// Several servers, each checked; all must pass (keepalived's SMTP_CHECK host blocks).
    pub hosts: Option<Vec<CheckHost>>,
    // tcp / udp and the line protocols
    /// tcp/udp: bytes to send, with C escapes (\r\n, \x00) as ldirectord's `request`.
    pub send: Option<String>,
    /// tcp/udp and the line protocols: a regular expression the reply must match (ldirectord
    /// `receive`).
    pub expect: Option<String>,
    // dns
    /// dns: the name to resolve (keepalived DNS_CHECK `name`; ldirectord `request`).
    pub query: Option<String>,
    /// dns: the record type asked for, A by default (keepalived `type`).
    pub record_type: Option<String>,
    /// dns: the response code that counts as success, NOERROR by default.
    pub expect_rcode: Option<String>,
    // ldap / mysql / pgsql / radius / pop / imap / ftp
    /// ldap, mysql, pgsql, radius, pop, imap, ftp: the login (ldirectord `login`).
    pub user: Option<String>,
    /// The login's password (ldirectord `passwd`).
    pub password: Option<String>,
    /// mysql, pgsql: the database to connect to (ldirectord `database`).
    pub database: Option<String>,
    /// radius: the shared secret (ldirectord `secret`).
    pub secret: Option<String>,
    // external
    /// external: the command, run without a shell with the real server's address and port appended;
    /// exit 0 is up (keepalived MISC_CHECK `misc_path`; ldirectord `checkcommand`).
    pub command: Option<String>,
    /// The command's exit code sets the weight (keepalived misc_dynamic).
    pub dynamic_weight: Option<bool>,
}

/// One page of an http / https check (keepalived's `url` block).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckUrl {
    /// The page's path; the check's `path` when absent (keepalived url `path`).
    pub path: Option<String>,
    /// Host header (keepalived's url virtualhost); the check's `host` when absent.
    pub host: Option<String>,
    /// Accepted status codes and ranges; the check's when absent (keepalived url `status_code`).
    pub expect_status: Option<Vec<String>>,
    /// A regular expression the body must match; the check's when absent (keepalived url `regex`).
    pub expect_body: Option<String>,
    /// MD5 of the page's body; the check's when absent (keepalived url `digest`).
    pub digest: Option<String>,
}

/// One server an smtp check talks to (keepalived's SMTP_CHECK `host` block); each key
/// absent is the real server's.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckHost {
    /// The server's address; the real server's when absent (keepalived host `connect_ip`).
    pub address: Option<IpAddr>,
    /// The server's port; the real server's when absent (keepalived host `connect_port`).
    pub port: Option<u16>,
    /// The probe's source address (keepalived host `bindto`).
    pub bind_address: Option<IpAddr>,
    /// The probe's source port (keepalived host `bind_port`).
    pub bind_port: Option<u16>,
}

// ---------------------------------------------------------------- syncd

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sync {
    /// The interface the kernel's sync daemons and syncd send and hear the sync group on (ipvsadm
    /// --mcast-interface; keepalived `lvs_sync_daemon`).
    pub interface: String,
    /// Sync id; messages with another id are ignored (ipvsadm --syncid); 0 accepts every id.
    #[serde(default)]
    pub syncid: u8,
    /// "master", "backup", or { follow = "VI_1" }: master while that VRRP instance is, backup
    /// otherwise (keepalived `lvs_sync_daemon IF INSTANCE`).
    pub role: SyncRole,
    /// Multicast group and port of the sync messages (ipvsadm --mcast-group/--mcast-port).
    #[serde(default = "default_sync_group")]
    pub group: SocketAddr,
    /// Sync message format: 1 (the kernel default, IPv6 and persistence engines) or 0
    /// (net.ipv4.vs.sync_version).
    #[serde(default = "default_sync_version")]
    pub version: u8,
    /// Largest sync message, in bytes (ipvsadm --sync-maxlen): the interface MTU less IP and UDP
    /// headers.
    #[serde(default = "default_sync_maxlen")]
    pub maxlen: u16,
    /// Multicast TTL of sync messages (ipvsadm --mcast-ttl).
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

crate::values::string_schema!(SyncPeer, "address or address:port");

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

/// `role = "master" | "backup" | "both"` or `role = { follow = "VI_1" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRole {
    Master,
    Backup,
    /// Master and backup at once: active-active directors in a full mesh of peers.
    Both,
    Follow(String),
}

impl JsonSchema for SyncRole {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SyncRole".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                { "type": "string", "enum": ["master", "backup", "both"] },
                {
                    "type": "object",
                    "properties": { "follow": { "type": "string" } },
                    "required": ["follow"]
                }
            ]
        })
    }
}

/// Written the way it is read, so a serialized config parses again.
impl Serialize for SyncRole {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            SyncRole::Master => serializer.serialize_str("master"),
            SyncRole::Backup => serializer.serialize_str("backup"),
            SyncRole::Both => serializer.serialize_str("both"),
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
                "role must be \"master\", \"backup\", \"both\" or { follow = \"<vrrp instance>\" }",
            )
        })?;
        match raw {
            Raw::Fixed(s) if s == "master" => Ok(SyncRole::Master),
            Raw::Fixed(s) if s == "backup" => Ok(SyncRole::Backup),
            Raw::Fixed(s) if s == "both" => Ok(SyncRole::Both),
            Raw::Fixed(s) => Err(serde::de::Error::custom(format!(
                "unknown role {s:?}; expected \"master\", \"backup\", \"both\" or {{ follow = \"<vrrp instance>\" }}"
            ))),
            Raw::Follow(f) => Ok(SyncRole::Follow(f.follow)),
        }
    }
}

// ---------------------------------------------------------------- feedbackd

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// Time between polls of each agent (haproxy `agent-inter`).
    #[serde(default = "default_feedback_interval")]
    pub interval: Duration,
    /// A poll without a reply within this fails.
    #[serde(default = "default_feedback_timeout")]
    pub timeout: Duration,
    /// EWMA factor on reported load, 0 < smoothing <= 1 (1: no smoothing).
    #[serde(default = "default_smoothing")]
    pub smoothing: f64,
    /// The lowest weight feedback sets, as a share of the configured weight (an idle-looking but
    /// loaded server keeps some traffic).
    #[serde(default = "default_min_weight")]
    pub min_weight: Percent,
    /// The highest weight feedback sets, as a share of the configured weight.
    #[serde(default = "default_max_weight")]
    pub max_weight: Percent,
    /// Changes smaller than this share of the configured weight are not applied.
    #[serde(default = "default_hysteresis")]
    pub hysteresis: Percent,
    /// At most one weight change per real server this often.
    #[serde(default = "default_min_change_interval")]
    pub min_change_interval: Duration,
    /// An agent that has not answered for this long is lost: the server keeps its configured weight
    /// and health decides.
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

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackAgent {
    /// The real server (as written under a virtual_server) whose weight this agent drives.
    pub real: SocketAddr,
    /// Where the agent answers (feedbackd --agent, or haproxy agent-check compatible),
    /// address:port.
    pub address: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Where the agent answers directors' polls (haproxy agent-check protocol).
    #[serde(default = "default_agent_listen")]
    pub listen: SocketAddr,
    /// What the reply is made of: cpu (idle share), load (load average against the CPU count), or
    /// command (its first line).
    #[serde(default = "default_agent_report")]
    pub report: AgentReport,
    /// The measurement window for cpu and load.
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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConnections {
    /// Local TCP ports whose established connections are counted.
    pub ports: Vec<u16>,
    /// The connection count that reads as 0% headroom.
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

#[cfg(test)]
mod tests {
    /// A real server is kept once per entry, 37,298 times at keepalived#2318's size: with its
    /// optional check inline it was 696 bytes (26 MB of config); boxed, the check costs a
    /// pointer for the entries that have none of their own.
    #[test]
    fn a_real_server_stays_small() {
        assert!(
            size_of::<super::RealServer>() <= 128,
            "{} bytes",
            size_of::<super::RealServer>()
        );
    }
}
