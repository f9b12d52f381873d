//! vrrpd at scale (issue 20 item 5): a pair holding 255 VRRP instances of 20 VIPs each (5,100
//! VIPs), the master killed with SIGKILL, and the backup's takeover of every instance timed
//! from the wire; keepalived on the same instances in the same run for comparison.
//!
//! Address plan: the three IPv4 documentation /24s hold at most 762 hosts, far short of 5,100
//! VIPs, so the pair speaks VRRPv3 over IPv6 in the documentation prefix 2001:db8::/32 (RFC
//! 3849): the hosts are 2001:db8::11 and ::12 on one /64, instance `v` (VRID `v`) holds
//! 2001:db8::v:1 .. 2001:db8::v:20 as /128s. IPv6's gratuitous ARP is the unsolicited
//! neighbour advertisement (RFC 5798 section 6.4.2), so "GARP" below is an NA for a VIP.
//!
//! Figures, all from one tcpdump of the LAN's bridge (kernel timestamps), counted from the
//! killed master's last advert, where every backup instance's Master_Down timer starts at the
//! latest: the backup's first advert of its first and of its last instance, the first NA of
//! the last VIP to be announced, and the last NA of the takeover burst (the `repeat`-th NA of
//! the VIP that got it last). Also the VIPs each side holds (rtnetlink, via `ip -o addr`), and
//! each daemon's CPU and resident memory at steady state (master and backup) and the backup's
//! CPU during the takeover.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::Ipv6Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::keepalived::Keepalived;
use crate::lan::{Lan, mac_of};
use crate::netns::Netns;
use crate::pair::rss_kb;
use crate::pcap::{self, Tcpdump};
use crate::process::{Guarded, wait_for};
use crate::procstat::{clock_ticks_per_second, cpu_ticks, process_tree};
use crate::vrrp_capture::now;

/// The size issue 20 asks for.
pub const FULL_INSTANCES: usize = 255;
pub const FULL_VIPS_PER_INSTANCE: usize = 20;
/// Announcements per VIP in the takeover burst: keepalived's `garp_master_repeat` default,
/// which vrrpd's `garp.repeat` shares.
pub const GARP_REPEAT: usize = 5;

const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_VRRP: u8 = 112;
const IPPROTO_ICMPV6: u8 = 58;
const ICMPV6_NEIGHBOUR_ADVERT: u8 = 136;
/// What tcpdump keeps: VRRP, and ICMPv6 NAs without extension headers (what both daemons send).
const FILTER: &str = "ip6 proto 112 or (ip6 proto 58 and ip6[40] == 136)";

/// How many instances of how many VIPs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub instances: usize,
    pub vips: usize,
    /// The advert interval in centiseconds (VRRPv3).
    pub centis: u16,
}

impl Spec {
    pub const FULL: Spec = Spec {
        instances: FULL_INSTANCES,
        vips: FULL_VIPS_PER_INSTANCE,
        centis: 100,
    };

    pub fn total_vips(self) -> usize {
        self.instances * self.vips
    }

    /// VRIDs 1..=instances.
    pub fn vrids(self) -> impl Iterator<Item = u8> {
        (1..=self.instances).map(|v| u8::try_from(v).expect("at most 255 instances"))
    }

    /// VIP `k` (0-based) of the instance with `vrid`: 2001:db8::vrid:(k+1).
    pub fn vip(vrid: u8, k: usize) -> Ipv6Addr {
        Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            u16::from(vrid),
            u16::try_from(k + 1).expect("few VIPs per instance"),
        )
    }

    /// Whether `addr` is one of the VIPs of some spec: the hosts' own addresses have 0 there.
    pub fn is_vip(addr: Ipv6Addr) -> bool {
        let s = addr.segments();
        s[..6] == [0x2001, 0xdb8, 0, 0, 0, 0] && s[6] != 0 && s[7] != 0
    }

    /// director.toml for one side: VRRPv3, keepalived's GARP defaults.
    pub fn vrrpd_toml(self, socket_dir: &str, priority: u8) -> String {
        let mut text = format!("[control]\nsocket_dir = \"{socket_dir}\"\n");
        for vrid in self.vrids() {
            let vips: Vec<String> = (0..self.vips)
                .map(|k| format!("\"{}/128\"", Self::vip(vrid, k)))
                .collect();
            let _ = write!(
                text,
                "\n[[vrrp.instance]]\nname = \"VI_{vrid}\"\ninterface = \"eth0\"\nvrid = {vrid}\n\
                 priority = {priority}\nversion = 3\nadvert_interval = \"{}ms\"\n\
                 virtual_addresses = [{}]\n",
                u32::from(self.centis) * 10,
                vips.join(", ")
            );
        }
        text
    }

    /// keepalived.conf for one side: the same instances (both start as BACKUP, the priority
    /// elects, as vrrpd does).
    pub fn keepalived_conf(self, router_id: &str, priority: u8) -> String {
        let mut text = format!("global_defs {{\n  router_id {router_id}\n}}\n");
        for vrid in self.vrids() {
            let _ = write!(
                text,
                "vrrp_instance VI_{vrid} {{\n  state BACKUP\n  interface eth0\n  \
                 virtual_router_id {vrid}\n  priority {priority}\n  version 3\n  \
                 advert_int {}.{:02}\n  virtual_ipaddress {{\n",
                self.centis / 100,
                self.centis % 100
            );
            for k in 0..self.vips {
                let _ = writeln!(text, "    {}/128", Self::vip(vrid, k));
            }
            text.push_str("  }\n}\n");
        }
        text
    }
}

/// A frame of interest on the LAN, with the kernel's timestamp.
pub type Frame = pcap::Frame<Kind>;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Advert {
        vrid: u8,
        priority: u8,
    },
    /// An unsolicited neighbour advertisement for `target`.
    Announce {
        target: Ipv6Addr,
    },
}

/// The IPv6 adverts and neighbour advertisements of an Ethernet pcap.
pub fn frames(pcap: &[u8]) -> Result<Vec<Frame>, String> {
    pcap::ethernet_frames(pcap, decode)
}

fn decode(frame: &[u8]) -> Option<([u8; 6], Kind)> {
    let src_mac: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
    if u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) != ETHERTYPE_IPV6 {
        return None;
    }
    let ip = frame.get(14..)?;
    let payload = ip.get(40..)?;
    let kind = match *ip.get(6)? {
        IPPROTO_VRRP => Kind::Advert {
            vrid: *payload.get(1)?,
            priority: *payload.get(2)?,
        },
        IPPROTO_ICMPV6 if *payload.first()? == ICMPV6_NEIGHBOUR_ADVERT => {
            let target: [u8; 16] = payload.get(8..24)?.try_into().ok()?;
            Kind::Announce {
                target: Ipv6Addr::from(target),
            }
        }
        _ => return None,
    };
    Some((src_mac, kind))
}

/// The takeover as captured, times in seconds from the old master's last advert.
#[derive(Clone, Debug, PartialEq)]
pub struct Takeover {
    /// The old master's last advert before the kill, on the capture's clock.
    pub reference: f64,
    /// From the kill (the test's wall clock) to the reference: negative.
    pub kill_to_reference: f64,
    /// Instances whose first advert from the new master was captured after the kill.
    pub instances: usize,
    pub first_instance: f64,
    pub last_instance: f64,
    /// VIPs announced at least once by the new master after the kill.
    pub announced: usize,
    /// The first announcement of the VIP announced last.
    pub all_announced: f64,
    /// VIPs announced `repeat` times, and the `repeat`-th announcement of the last of them:
    /// the end of the takeover burst.
    pub burst_complete: usize,
    pub burst_end: f64,
}

/// `new_mac` taking over from `old_mac` after the kill at `at`; `None` until the capture holds
/// at least one advert of each side.
pub fn takeover(
    frames: &[Frame],
    at: f64,
    old_mac: [u8; 6],
    new_mac: [u8; 6],
    repeat: usize,
) -> Option<Takeover> {
    let reference = frames
        .iter()
        .filter(|f| f.ts < at && f.src_mac == old_mac)
        .rfind(|f| matches!(f.kind, Kind::Advert { .. }))?
        .ts;
    let mut first_advert: BTreeMap<u8, f64> = BTreeMap::new();
    let mut announces: HashMap<Ipv6Addr, Vec<f64>> = HashMap::new();
    for f in frames.iter().filter(|f| f.ts >= at && f.src_mac == new_mac) {
        match f.kind {
            Kind::Advert { vrid, priority } if priority > 0 => {
                first_advert.entry(vrid).or_insert(f.ts);
            }
            Kind::Advert { .. } => {}
            Kind::Announce { target } => announces.entry(target).or_default().push(f.ts),
        }
    }
    let since = |ts: f64| ts - reference;
    let fold = |times: &mut dyn Iterator<Item = f64>, pick: fn(f64, f64) -> f64| {
        times.reduce(pick).map_or(f64::NAN, since)
    };
    let burst: Vec<f64> = announces
        .values()
        .filter_map(|t| t.get(repeat.checked_sub(1)?).copied())
        .collect();
    Some(Takeover {
        reference,
        kill_to_reference: reference - at,
        instances: first_advert.len(),
        first_instance: fold(&mut first_advert.values().copied(), f64::min),
        last_instance: fold(&mut first_advert.values().copied(), f64::max),
        announced: announces.len(),
        all_announced: fold(&mut announces.values().map(|t| t[0]), f64::max),
        burst_complete: burst.len(),
        burst_end: fold(&mut burst.iter().copied(), f64::max),
    })
}

/// The longest pause between consecutive adverts of each instance (by VRID) that `mac` sent,
/// from its first: a pause of 3 intervals lets a peer's backup take over.
pub fn advert_gaps(frames: &[Frame], mac: [u8; 6]) -> BTreeMap<u8, f64> {
    let mut last: BTreeMap<u8, f64> = BTreeMap::new();
    let mut gaps: BTreeMap<u8, f64> = BTreeMap::new();
    for f in frames.iter().filter(|f| f.src_mac == mac) {
        if let Kind::Advert { vrid, priority } = f.kind
            && priority > 0
            && let Some(previous) = last.insert(vrid, f.ts)
        {
            let gap = gaps.entry(vrid).or_insert(0.0);
            *gap = gap.max(f.ts - previous);
        }
    }
    gaps
}

/// What a lone vrrpd did from its start until its VIPs were all held and announced.
#[derive(Clone, Debug, PartialEq)]
pub struct Alone {
    /// Each instance's longest pause between adverts.
    pub gaps: BTreeMap<u8, f64>,
    pub held: usize,
    pub announced: usize,
    /// From the start until every VIP was held.
    pub all_held: Duration,
}

/// One vrrpd, priority 150 and no peer, on `spec`: it elects itself for every instance and
/// adds every VIP; the LAN's capture says whether its adverts kept their schedule meanwhile.
pub fn master_alone(spec: Spec, dir: &Path) -> Result<Alone, String> {
    let lan = Lan::new6(&[("sl", "2001:db8::11/64")])?;
    let host = lan.host(0);
    let mut tcpdump = Tcpdump::start(&lan.bridge, "br0", FILTER, dir, "alone")?;
    let mac = parse_mac(&mac_of(host)?)?;
    let started = Instant::now();
    let _vrrpd = Running::start(Daemon::Vrrpd, spec, host, dir, "sl", 150)?;
    let total = spec.total_vips();
    let all_held = wait_for(LIMIT, || {
        (vips_held(host).ok()? == total).then(|| started.elapsed())
    })
    .ok_or_else(|| format!("{:?} of {total} VIPs held", vips_held(host)))?;
    // Every VIP announced, and a few more intervals of adverts after the last address.
    let announced = wait_for(LIMIT, || {
        let frames = frames(&tcpdump.read().ok()?).ok()?;
        let targets: std::collections::HashSet<Ipv6Addr> = frames
            .iter()
            .filter_map(|f| match f.kind {
                Kind::Announce { target } if f.src_mac == mac => Some(target),
                _ => None,
            })
            .collect();
        (targets.len() == total).then_some(total)
    })
    .unwrap_or(0);
    std::thread::sleep(Duration::from_millis(u64::from(spec.centis) * 10 * 5));
    tcpdump.end();
    Ok(Alone {
        gaps: advert_gaps(&frames(&tcpdump.read()?)?, mac),
        held: vips_held(host)?,
        announced,
        all_held,
    })
}

/// How many of the scale VIPs `host` holds on `eth0`.
pub fn vips_held(host: &Netns) -> Result<usize, String> {
    let out = host.stdout(&["ip", "-6", "-o", "addr", "show", "dev", "eth0"])?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet6")?;
            words.next()?.split('/').next()?.parse::<Ipv6Addr>().ok()
        })
        .filter(|addr| Spec::is_vip(*addr))
        .count())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Daemon {
    Vrrpd,
    Keepalived,
}

impl Daemon {
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Vrrpd => "vrrpd",
            Daemon::Keepalived => "keepalived",
        }
    }
}

enum Running {
    Vrrpd(Guarded),
    Keepalived(Keepalived),
}

impl Running {
    fn start(
        daemon: Daemon,
        spec: Spec,
        host: &Netns,
        dir: &Path,
        name: &str,
        priority: u8,
    ) -> Result<Self, String> {
        let write = |file: &str, text: String| {
            let path = dir.join(file);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok::<_, String>(path)
        };
        match daemon {
            Daemon::Vrrpd => {
                let sockets = dir.join(name);
                let toml = spec.vrrpd_toml(&sockets.display().to_string(), priority);
                let config = write(&format!("{name}.toml"), toml)?;
                let binary = crate::workspace_bin("vrrpd");
                let mut command =
                    host.command(&[binary.as_os_str(), "--config".as_ref(), config.as_os_str()]);
                command
                    .env("LVS_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                Guarded::spawn(&mut command).map(Running::Vrrpd)
            }
            Daemon::Keepalived => {
                let config = write(
                    &format!("{name}.conf"),
                    spec.keepalived_conf(name, priority),
                )?;
                Keepalived::start_quiet(host, dir, &config).map(Running::Keepalived)
            }
        }
    }

    /// Every process of the daemon (keepalived: the parent and its VRRP child).
    fn pids(&self) -> Vec<u32> {
        match self {
            Running::Vrrpd(guard) => vec![guard.pid()],
            Running::Keepalived(k) => process_tree(k.pid()),
        }
    }

    /// SIGKILL to the process that speaks VRRP.
    fn crash(&self) -> Result<(), String> {
        match self {
            Running::Vrrpd(guard) => {
                guard.signal(libc::SIGKILL);
                Ok(())
            }
            Running::Keepalived(k) => k.crash(),
        }
    }
}

/// CPU seconds and resident memory of a set of processes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Usage {
    /// CPU time over the window, as a share of one core.
    pub cpu: f64,
    pub rss_kb: u64,
}

fn ticks(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| cpu_ticks(p)).sum()
}

fn rss(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&p| rss_kb(p)).sum()
}

/// Both sides' CPU share over `window`, and their RSS at its end.
fn steady(master: &[u32], backup: &[u32], window: Duration) -> [Usage; 2] {
    let before = [ticks(master), ticks(backup)];
    let start = Instant::now();
    std::thread::sleep(window);
    let seconds = start.elapsed().as_secs_f64();
    let after = [ticks(master), ticks(backup)];
    let cpu = |i: usize| (after[i] - before[i]) as f64 / clock_ticks_per_second() / seconds;
    [
        Usage {
            cpu: cpu(0),
            rss_kb: rss(master),
        },
        Usage {
            cpu: cpu(1),
            rss_kb: rss(backup),
        },
    ]
}

/// What one daemon's run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    pub daemon: Daemon,
    pub spec: Spec,
    /// From the start of both until the master holds every VIP.
    pub elected: f64,
    /// VIPs the backup held as well, `SETTLE` after the master held them all (should be 0),
    /// and from the start until it held none.
    pub dual_vips: usize,
    pub single_master: f64,
    /// At steady state (after the second GARP burst): master, backup.
    pub steady: [Usage; 2],
    pub takeover: Takeover,
    /// VIPs the backup holds after the takeover, and when it held all (test's clock, from
    /// the kill).
    pub backup_vips: usize,
    pub backup_all_vips: f64,
    /// The backup's CPU seconds from the kill until its burst ended.
    pub takeover_cpu: f64,
}

/// How long to wait for an election, a takeover or a burst at this size.
const LIMIT: Duration = Duration::from_secs(240);
/// The second takeover burst (garp delay, 5 s) must be over before the steady window.
const SETTLE: Duration = Duration::from_secs(7);
const STEADY_WINDOW: Duration = Duration::from_secs(10);

/// Runs one daemon's pair on a fresh LAN: elect, settle, measure, kill the master, time the
/// takeover. `dir` holds configs, pid files and the capture.
pub fn run(daemon: Daemon, spec: Spec, dir: &Path) -> Result<Figures, String> {
    let tag = match daemon {
        Daemon::Vrrpd => "sv",
        Daemon::Keepalived => "sk",
    };
    let lan = Lan::new6(&[
        (&format!("{tag}a"), "2001:db8::11/64"),
        (&format!("{tag}b"), "2001:db8::12/64"),
    ])?;
    let (a, b) = (lan.host(0), lan.host(1));
    let started = Instant::now();
    let master = Running::start(daemon, spec, a, dir, &format!("{tag}a"), 150)?;
    let backup = Running::start(daemon, spec, b, dir, &format!("{tag}b"), 100)?;
    let total = spec.total_vips();
    wait_for(LIMIT, || (vips_held(a).ok()? == total).then_some(())).ok_or_else(|| {
        format!(
            "{}: the master holds {:?} of {total} VIPs after {LIMIT:?}",
            daemon.name(),
            vips_held(a)
        )
    })?;
    let elected = started.elapsed().as_secs_f64();
    std::thread::sleep(SETTLE);
    // Both sides holding VIPs is the failure this size can provoke (a master too busy to
    // advertise): counted, then given time to resolve, so the takeover is still measured.
    let dual_vips = vips_held(b)?;
    let single = wait_for(LIMIT, || {
        (vips_held(b).ok()? == 0).then(|| started.elapsed())
    });
    let single_master = single.map_or(f64::NAN, |t| t.as_secs_f64());
    let steady = steady(&master.pids(), &backup.pids(), STEADY_WINDOW);
    let mut tcpdump = Tcpdump::start(&lan.bridge, "br0", FILTER, dir, &format!("{tag}-lan"))?;
    // Two seconds of the master's adverts before the kill: the reference is the last of them.
    std::thread::sleep(Duration::from_secs(2));
    let macs = [parse_mac(&mac_of(a)?)?, parse_mac(&mac_of(b)?)?];
    let backup_pids = backup.pids();
    let ticks_before = ticks(&backup_pids);
    let at = now();
    master.crash()?;
    let killed = Instant::now();
    let backup_all_vips = wait_for(LIMIT, || {
        (vips_held(b).ok()? == total).then(|| killed.elapsed().as_secs_f64())
    });
    let captured = wait_for(LIMIT, || {
        let frames = frames(&tcpdump.read().ok()?).ok()?;
        takeover(&frames, at, macs[0], macs[1], GARP_REPEAT)
            .filter(|t| t.burst_complete == total && t.instances == spec.instances)
    });
    let takeover_cpu = (ticks(&backup_pids) - ticks_before) as f64 / clock_ticks_per_second();
    tcpdump.end();
    let takeover = match captured {
        Some(t) => t,
        // Report what did happen rather than nothing: the figures show what is missing.
        None => takeover(
            &frames(&tcpdump.read()?)?,
            at,
            macs[0],
            macs[1],
            GARP_REPEAT,
        )
        .ok_or_else(|| format!("{}: no takeover captured", daemon.name()))?,
    };
    Ok(Figures {
        daemon,
        spec,
        elected,
        dual_vips,
        single_master,
        steady,
        takeover,
        backup_vips: vips_held(b)?,
        backup_all_vips: backup_all_vips.unwrap_or(f64::NAN),
        takeover_cpu,
    })
}

fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("MAC {text}: {e}"))?;
    bytes
        .try_into()
        .map_err(|_| format!("MAC {text}: not six bytes"))
}

/// A line of the report: its label and the figure it shows.
type Row = (&'static str, fn(&Figures) -> f64);

/// The figures side by side, keepalived's over ours as the ratio (above 1: vrrpd is faster or
/// lighter).
pub fn report(ours: &Figures, theirs: &Figures) -> String {
    let rows: [Row; 14] = [
        ("master elected, all VIPs held (s)", |f| f.elected),
        ("VIPs on the backup too, 7 s later", |f| f.dual_vips as f64),
        ("single master from the start (s)", |f| f.single_master),
        ("takeover: first instance's advert", |f| {
            f.takeover.first_instance
        }),
        ("takeover: last instance's advert", |f| {
            f.takeover.last_instance
        }),
        ("takeover: every VIP announced once", |f| {
            f.takeover.all_announced
        }),
        ("takeover: last GARP (NA) of the burst", |f| {
            f.takeover.burst_end
        }),
        ("takeover: backup holds every VIP (from kill)", |f| {
            f.backup_all_vips
        }),
        ("backup CPU during the takeover (s)", |f| f.takeover_cpu),
        ("master CPU at steady state (% of a core)", |f| {
            f.steady[0].cpu * 100.0
        }),
        ("backup CPU at steady state (% of a core)", |f| {
            f.steady[1].cpu * 100.0
        }),
        ("master RSS (MB)", |f| f.steady[0].rss_kb as f64 / 1024.0),
        ("backup RSS (MB)", |f| f.steady[1].rss_kb as f64 / 1024.0),
        ("kill to the master's last advert (s)", |f| {
            f.takeover.kill_to_reference
        }),
    ];
    let mut out = format!(
        "vrrpd at scale: {} instances x {} VIPs = {} VIPs (VRRPv3, IPv6, adverts every {} ms, \
         GARP repeat {GARP_REPEAT}); times from the killed master's last advert\n\
         {:<46} {:>10} {:>10} {:>8}\n",
        ours.spec.instances,
        ours.spec.vips,
        ours.spec.total_vips(),
        u32::from(ours.spec.centis) * 10,
        "",
        "vrrpd",
        "keepalived",
        "ratio"
    );
    for (label, value) in rows {
        let (o, t) = (value(ours), value(theirs));
        let _ = writeln!(out, "{label:<46} {o:>10.3} {t:>10.3} {:>8.2}", t / o);
    }
    for f in [ours, theirs] {
        let t = &f.takeover;
        let _ = writeln!(
            out,
            "{}: instances taken over {}/{}, VIPs announced {}/{total}, with the full burst \
             {}/{total}, held by the backup {}/{total}",
            f.daemon.name(),
            t.instances,
            f.spec.instances,
            t.announced,
            t.burst_complete,
            f.backup_vips,
            total = f.spec.total_vips(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: [u8; 6] = [2, 0, 0, 0, 0, 0x11];
    const NEW: [u8; 6] = [2, 0, 0, 0, 0, 0x12];

    fn ethernet(src: [u8; 6], next_header: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0, 0, 0, 0x12];
        f.extend_from_slice(&src);
        f.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let mut ip = vec![0x60, 0, 0, 0, 0, payload.len() as u8, next_header, 255];
        ip.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, src[5]]);
        ip.extend_from_slice(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12).octets());
        f.extend_from_slice(&ip);
        f.extend_from_slice(payload);
        f
    }

    fn advert(src: [u8; 6], vrid: u8, priority: u8) -> Vec<u8> {
        ethernet(src, IPPROTO_VRRP, &[0x31, vrid, priority, 1, 0, 100, 0, 0])
    }

    fn na(src: [u8; 6], target: Ipv6Addr) -> Vec<u8> {
        let mut icmp = vec![ICMPV6_NEIGHBOUR_ADVERT, 0, 0, 0, 0x20, 0, 0, 0];
        icmp.extend_from_slice(&target.octets());
        icmp.extend_from_slice(&[2, 1]);
        icmp.extend_from_slice(&src);
        ethernet(src, IPPROTO_ICMPV6, &icmp)
    }

    fn at(ts: f64, data: &[u8]) -> Frame {
        let (src_mac, kind) = decode(data).expect("decodable");
        Frame { ts, src_mac, kind }
    }

    #[test]
    fn decodes_v6_adverts_and_neighbour_advertisements_only() {
        assert_eq!(
            at(1.0, &advert(OLD, 7, 150)).kind,
            Kind::Advert {
                vrid: 7,
                priority: 150
            }
        );
        let vip = Spec::vip(7, 3);
        assert_eq!(at(1.0, &na(NEW, vip)).kind, Kind::Announce { target: vip });
        // A neighbour solicitation (135) and an IPv4 frame are not of interest.
        let mut ns = na(NEW, vip);
        ns[14 + 40] = 135;
        assert_eq!(decode(&ns), None);
        let mut v4 = advert(OLD, 7, 150);
        v4[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        assert_eq!(decode(&v4), None);
    }

    /// Two instances of two VIPs, the burst two NAs long: every figure from the frames.
    #[test]
    fn times_the_last_instance_and_the_end_of_the_burst_from_the_last_advert() {
        let v = |vrid, k| Spec::vip(vrid, k);
        let frames = [
            at(9.0, &advert(OLD, 1, 150)),
            at(9.5, &advert(OLD, 2, 150)),
            at(13.1, &advert(NEW, 1, 100)),
            at(13.101, &na(NEW, v(1, 0))),
            at(13.102, &na(NEW, v(1, 1))),
            at(13.103, &na(NEW, v(1, 0))),
            at(13.6, &advert(NEW, 2, 100)),
            at(13.601, &na(NEW, v(2, 0))),
            at(13.602, &na(NEW, v(2, 1))),
            at(13.603, &na(NEW, v(2, 0))),
            at(13.604, &na(NEW, v(1, 1))),
            // The old master's NA (a frame it sent before dying) is not the new one's.
            at(13.7, &na(OLD, v(2, 1))),
        ];
        let t = takeover(&frames, 10.0, OLD, NEW, 2).unwrap();
        assert!((t.reference - 9.5).abs() < 1e-9);
        assert!((t.kill_to_reference + 0.5).abs() < 1e-9);
        assert_eq!((t.instances, t.announced, t.burst_complete), (2, 4, 3));
        assert!((t.first_instance - 3.6).abs() < 1e-9);
        assert!((t.last_instance - 4.1).abs() < 1e-9);
        assert!((t.all_announced - 4.102).abs() < 1e-9);
        assert!((t.burst_end - 4.104).abs() < 1e-9);
        // Nothing of the old master before the kill: no figure rather than a wrong one.
        assert_eq!(takeover(&frames, 9.0, OLD, NEW, 2), None);
    }

    #[test]
    fn advert_gaps_are_per_instance_and_ignore_the_other_sender_and_goodbyes() {
        let frames = [
            at(1.0, &advert(OLD, 1, 150)),
            at(1.05, &advert(OLD, 2, 150)),
            at(1.1, &advert(OLD, 1, 150)),
            at(1.15, &advert(NEW, 2, 100)),
            at(1.6, &advert(OLD, 2, 150)),
            at(1.65, &advert(OLD, 1, 0)),
            at(1.7, &advert(OLD, 1, 150)),
        ];
        let gaps = advert_gaps(&frames, OLD);
        assert_eq!(gaps.len(), 2);
        assert!((gaps[&1] - 0.6).abs() < 1e-9);
        assert!((gaps[&2] - 0.55).abs() < 1e-9);
    }

    #[test]
    fn configs_name_every_vip_once_and_vrrpd_accepts_its_own() {
        let spec = Spec {
            instances: 3,
            vips: 2,
            centis: 10,
        };
        let toml = spec.vrrpd_toml("/run/x", 150);
        assert_eq!(toml.matches("[[vrrp.instance]]").count(), 3);
        assert!(toml.contains("\"2001:db8::3:2/128\""));
        assert!(toml.contains("advert_interval = \"100ms\""));
        let conf = spec.keepalived_conf("ka", 150);
        assert_eq!(conf.matches("vrrp_instance").count(), 3);
        assert_eq!(conf.matches("/128").count(), 6);
        assert!(conf.contains("advert_int 0.10\n"));
        let full = Spec::FULL.vrrpd_toml("/run/x", 100);
        let config = lvs_config::parse(&full, "scale.toml").unwrap_or_else(|e| panic!("{e}"));
        let vips: usize = config
            .vrrp
            .instance
            .iter()
            .map(|i| i.virtual_addresses.len())
            .sum();
        assert_eq!(vips, 5_100);
        assert!(!Spec::is_vip("2001:db8::11".parse().unwrap()));
        assert!(Spec::is_vip(Spec::vip(255, 19)));
    }
}
