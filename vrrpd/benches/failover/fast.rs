//! Sub-100 ms failover (issue 19): a master's crash (kill -9 of its whole stack) and its link
//! going down (its bridge port down, a pulled cable), with vrrpd's `bfd_takeover` over an
//! authenticated BFD session at 10 ms x 3, against keepalived at its fastest VRRP (v3, 10 cs)
//! and keepalived with BFD tracking (its `track_bfd` only reweights or faults an instance, so
//! its backup still waits Master_Down). Then false failovers: the pair left alone with both
//! cores saturated by stress-ng, for each BFD timer from the fastest until one holds.
//!
//! Timed on the wire, on the backup's bridge port (it sees the master's unicast BFD, the
//! adverts and the gratuitous ARPs): from the dead master's last packet of any kind to the
//! backup's first advert and first gratuitous ARP.
//!
//! Each event is one cycle of a running pair: the master (a, 150, preempting) goes, the backup
//! (b, 100) takes over, a comes back (restarted, or its link up) and takes the VIP back; the
//! next event waits until b is a settled backup again.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use lvs_control::vrrpd::Status;
use lvs_tests::keepalived::Keepalived;
use lvs_tests::lan::{Lan, holds};
use lvs_tests::netns::Netns;
use lvs_tests::pcap::{self, Tcpdump};
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::vrrp_capture::{self, Kind};

use super::{A, B, VIP, percentile, release_vip, spawn_vrrpd};

/// The VRRP interval paired with BFD: `bfd_takeover` waits one missed advert, so the advert
/// interval bounds the takeover once BFD has said the master is gone (10 ms x 3 = 30 ms).
const VRRP_MS: u32 = 50;
/// vrrpd's and keepalived's VRRP and BFD processes at SCHED_RR 50.
const RT_PRIORITY: u8 = 50;
/// The target for vrrpd with BFD, first GARP after the master's last packet.
const TARGET_MEDIAN_MS: f64 = 50.0;
const TARGET_P99_MS: f64 = 100.0;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stack {
    /// vrrpd, VRRPv3 at 50 ms, `bfd_takeover` over meticulous-SHA1 BFD at the given ms x 3.
    Vrrpd { bfd_ms: u32 },
    /// keepalived VRRPv3 at 10 cs, no BFD.
    KeepalivedV3,
    /// keepalived VRRPv3 at 10 cs with a `bfd_instance` at 10 ms x 3 to the peer, tracked.
    KeepalivedBfd,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    Kill,
    LinkDown,
}

impl Stack {
    fn label(self) -> String {
        match self {
            Stack::Vrrpd { bfd_ms } => format!("vrrpd v3 {VRRP_MS}ms + BFD {bfd_ms}ms x3"),
            Stack::KeepalivedV3 => "keepalived v3 10cs".to_owned(),
            Stack::KeepalivedBfd => "keepalived v3 10cs + track_bfd 10ms x3".to_owned(),
        }
    }
}

/// One director of the pair as it runs now.
enum Director {
    Vrrpd(Guarded),
    Keepalived(Keepalived),
}

struct Pair<'a> {
    lan: &'a Lan,
    dir: PathBuf,
    stack: Stack,
    a: Director,
    // Runs for as long as the pair does; only a is failed and restarted.
    _b: Director,
}

fn peer_of(me: Ipv4Addr) -> Ipv4Addr {
    if me == A { B } else { A }
}

fn vrrpd_config(dir: &Path, name: &str, me: Ipv4Addr, priority: u8, bfd_ms: u32) -> String {
    format!(
        "[control]\nsocket_dir = \"{dir}/{name}\"\n\n[vrrp]\nrt_priority = {RT_PRIORITY}\n\n\
         [[vrrp.instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvrid = 51\n\
         priority = {priority}\nversion = 3\nadvert_interval = \"{VRRP_MS}ms\"\n\
         virtual_addresses = [\"{VIP}/24\"]\nbfd_takeover = \"peer\"\n\n\
         [[bfd.session]]\nname = \"peer\"\npeer = \"{peer}\"\nlocal_address = \"{me}\"\n\
         interface = \"eth0\"\ninterval = \"{bfd_ms}ms\"\nmultiplier = 3\n\
         authentication = {{ type = \"meticulous-sha1\", key_id = 1, key = \"bench-key\" }}\n",
        dir = dir.display(),
        peer = peer_of(me),
    )
}

fn keepalived_config(name: &str, me: Ipv4Addr, priority: u8, bfd: bool) -> String {
    let (bfd_instance, track) = if bfd {
        (
            format!(
                "bfd_instance peer {{\n  neighbor_ip {peer}\n  source_ip {me}\n  min_rx 10\n  \
                 min_tx 10\n  multiplier 3\n}}\n",
                peer = peer_of(me)
            ),
            "  track_bfd {\n    peer weight -20\n  }\n",
        )
    } else {
        (String::new(), "")
    };
    format!(
        "global_defs {{\n  router_id {name}\n  vrrp_rt_priority {RT_PRIORITY}\n  \
         bfd_rt_priority {RT_PRIORITY}\n}}\n{bfd_instance}vrrp_instance VI_1 {{\n  state BACKUP\n  \
         interface eth0\n  virtual_router_id 51\n  priority {priority}\n  version 3\n  \
         advert_int 0.10\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n{track}}}\n"
    )
}

impl<'a> Pair<'a> {
    fn start(lan: &'a Lan, dir: &Path, stack: Stack) -> Result<Self, String> {
        let a = start(lan.host(0), dir, stack, "a", A, 150)?;
        wait_for(Duration::from_secs(5), || {
            holds(lan.host(0), VIP).then_some(())
        })
        .ok_or("a never became master")?;
        let b = start(lan.host(1), dir, stack, "b", B, 100)?;
        let pair = Pair {
            lan,
            dir: dir.to_owned(),
            stack,
            a,
            _b: b,
        };
        pair.settled()?;
        Ok(pair)
    }

    /// a master, b a backup whose BFD session to a is Up at the configured timers, and some
    /// adverts more, so b's Master_Down runs from a fresh advert.
    fn settled(&self) -> Result<(), String> {
        let (a, b) = (self.lan.host(0), self.lan.host(1));
        wait_for(Duration::from_secs(10), || {
            (holds(a, VIP) && !holds(b, VIP)).then_some(())
        })
        .ok_or("a did not take the VIP back")?;
        match self.stack {
            Stack::Vrrpd { bfd_ms } => {
                let fast = |s: &Status| {
                    s.bfd.first().is_some_and(|bfd| {
                        bfd.state == "up" && bfd.tx_interval_ms == f64::from(bfd_ms)
                    }) && s.instances.first().is_some_and(|i| i.state == "BACKUP")
                };
                wait_for(Duration::from_secs(10), || {
                    status(&self.dir, "b").filter(fast).map(|_| ())
                })
                .ok_or_else(|| format!("b not settled: {:?}", status(&self.dir, "b")))?;
            }
            // keepalived's BFD has no status to ask; at 10 ms it is Up within the settle.
            Stack::KeepalivedV3 | Stack::KeepalivedBfd => {}
        }
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }

    /// The fault on a; returns its time on the capture's clock.
    fn fail(&self, fault: Fault) -> Result<f64, String> {
        let at = vrrp_capture::now();
        match fault {
            Fault::Kill => match &self.a {
                Director::Vrrpd(vrrpd) => vrrpd.signal(libc::SIGKILL),
                Director::Keepalived(keepalived) => keepalived.crash_all()?,
            },
            Fault::LinkDown => {
                self.lan.bridge.ip(&["link", "set", "p0", "down"])?;
            }
        }
        Ok(at)
    }

    /// b holds the VIP, then a comes back and takes it again.
    fn recover(&mut self, fault: Fault) -> Result<(), String> {
        let (a, b) = (self.lan.host(0), self.lan.host(1));
        wait_for(Duration::from_secs(5), || holds(b, VIP).then_some(()))
            .ok_or("b never took over")?;
        // The rest of b's first gratuitous ARP burst goes out before a competes again.
        std::thread::sleep(Duration::from_millis(100));
        match fault {
            Fault::Kill => {
                // A crashed machine comes back without the address it held.
                release_vip(&[a]);
                self.a = start(a, &self.dir, self.stack, "a", A, 150)?;
            }
            Fault::LinkDown => {
                self.lan.bridge.ip(&["link", "set", "p0", "up"])?;
            }
        }
        self.settled()
    }
}

fn start(
    host: &Netns,
    dir: &Path,
    stack: Stack,
    name: &str,
    me: Ipv4Addr,
    priority: u8,
) -> Result<Director, String> {
    match stack {
        Stack::Vrrpd { bfd_ms } => {
            let path = dir.join(format!("{name}.toml"));
            std::fs::write(&path, vrrpd_config(dir, name, me, priority, bfd_ms))
                .map_err(|e| e.to_string())?;
            spawn_vrrpd(host, &path).map(Director::Vrrpd)
        }
        Stack::KeepalivedV3 | Stack::KeepalivedBfd => {
            let bfd = stack == Stack::KeepalivedBfd;
            let path = dir.join(format!("{name}.conf"));
            std::fs::write(&path, keepalived_config(name, me, priority, bfd))
                .map_err(|e| e.to_string())?;
            let started = if bfd {
                Keepalived::start_with_bfd(host, dir, &path)
            } else {
                Keepalived::start_quiet(host, dir, &path)
            };
            started.map(Director::Keepalived)
        }
    }
}

fn status(dir: &Path, name: &str) -> Option<Status> {
    let socket = dir.join(name).join("vrrpd.sock");
    lvs_control::call(
        &socket,
        &serde_json::json!({"cmd": "status"}),
        Duration::from_secs(2),
    )
    .ok()
}

/// One takeover as the wire saw it, in seconds since the epoch.
struct Takeover {
    at: f64,
    last_of_a: f64,
    advert: f64,
    garp: f64,
}

/// Any IPv4 frame from a (its BFD and its adverts), by source address.
fn from_a(frame: &[u8]) -> Option<([u8; 6], ())> {
    let src_mac: [u8; 6] = frame.get(6..12)?.try_into().ok()?;
    let is_ipv4 = frame.get(12..14)? == [0x08, 0x00];
    let src: [u8; 4] = frame.get(14 + 12..14 + 16)?.try_into().ok()?;
    (is_ipv4 && Ipv4Addr::from(src) == A).then_some((src_mac, ()))
}

fn takeover(capture: &[u8], at: f64) -> Result<Takeover, String> {
    let frames = vrrp_capture::frames(capture)?;
    let first = frames
        .iter()
        .filter(|f| f.ts >= at)
        .find(|f| matches!(f.kind, Kind::Advert { src, priority, .. } if src == B && priority > 0))
        .ok_or("no advert from b after the fault")?;
    let garp = frames
        .iter()
        .filter(|f| f.ts >= at && f.src_mac == first.src_mac)
        .find(|f| matches!(f.kind, Kind::GratuitousArp { .. }))
        .ok_or("no gratuitous ARP from b after the fault")?;
    let last_of_a = pcap::ethernet_frames(capture, from_a)?
        .iter()
        .filter(|f| f.ts < first.ts)
        .map(|f| f.ts)
        .next_back()
        .ok_or("nothing from a before b's takeover")?;
    Ok(Takeover {
        at,
        last_of_a,
        advert: first.ts,
        garp: garp.ts,
    })
}

/// `events` faults of one kind on one stack; the takeovers the capture shows.
fn run_events(
    lan: &Lan,
    dir: &Path,
    stack: Stack,
    fault: Fault,
    events: usize,
) -> Result<Vec<Takeover>, String> {
    let filter = "ip proto 112 or arp or udp port 3784";
    let name = format!("{:?}-{:?}", stack, fault).replace([' ', '{', '}', ':'], "");
    let mut capture = Tcpdump::start(&lan.bridge, "p1", filter, dir, &name)?;
    let mut pair = Pair::start(lan, dir, stack)?;
    let mut times = Vec::with_capacity(events);
    let mut failed = 0;
    while times.len() < events && failed < 5 {
        let at = pair.fail(fault)?;
        match pair.recover(fault) {
            Ok(()) => times.push(at),
            Err(e) => {
                failed += 1;
                eprintln!("{}: {fault:?} event failed: {e}", stack.label());
                // The old pair goes first: two vrrpds in one host would both answer.
                drop(pair);
                release_vip(&[lan.host(0), lan.host(1)]);
                let _ = lan.bridge.ip(&["link", "set", "p0", "up"]);
                pair = Pair::start(lan, dir, stack)?;
            }
        }
    }
    drop(pair);
    // Frames still in tcpdump's buffer reach the file before it ends.
    std::thread::sleep(Duration::from_secs(1));
    let bytes = capture.read()?;
    capture.end();
    release_vip(&[lan.host(0), lan.host(1)]);
    let mut takeovers = Vec::new();
    for at in times {
        match takeover(&bytes, at) {
            Ok(t) => takeovers.push(t),
            Err(e) => eprintln!("{}: {fault:?} at {at:.3}: {e}", stack.label()),
        }
    }
    Ok(takeovers)
}

fn row(table: &mut String, stack: Stack, fault: Fault, takeovers: &[Takeover]) {
    let ms = |f: &dyn Fn(&Takeover) -> f64| -> Vec<f64> {
        takeovers.iter().map(|t| f(t) * 1e3).collect()
    };
    let mut advert = ms(&|t| t.advert - t.last_of_a);
    let mut garp = ms(&|t| t.garp - t.last_of_a);
    let mut from_fault = ms(&|t| t.garp - t.at);
    let (g50, g99) = (percentile(&mut garp, 50.0), percentile(&mut garp, 99.0));
    let verdict = match stack {
        Stack::Vrrpd { bfd_ms: 10 } if g50 <= TARGET_MEDIAN_MS && g99 <= TARGET_P99_MS => "met",
        Stack::Vrrpd { bfd_ms: 10 } => "MISSED",
        _ => "",
    };
    let _ = writeln!(
        table,
        "{:<40} {:<5} {:>4} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>7}",
        stack.label(),
        if fault == Fault::Kill { "kill" } else { "link" },
        takeovers.len(),
        percentile(&mut advert, 50.0),
        percentile(&mut advert, 99.0),
        g50,
        g99,
        percentile(&mut from_fault, 50.0),
        percentile(&mut from_fault, 99.0),
        verdict,
    );
}

/// The takeover table: vrrpd + BFD over `events` events of each fault, keepalived's two
/// stacks over `peer_events`.
pub fn takeovers(lan: &Lan, dir: &Path, events: usize, peer_events: usize) -> String {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<40} {:<5} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "stack",
        "fault",
        "n",
        "adv p50",
        "adv p99",
        "garp p50",
        "garp p99",
        "flt p50",
        "flt p99",
        "target"
    );
    let stacks = [
        (Stack::Vrrpd { bfd_ms: 10 }, events),
        (Stack::KeepalivedV3, peer_events),
        (Stack::KeepalivedBfd, peer_events),
    ];
    for (stack, n) in stacks {
        for fault in [Fault::Kill, Fault::LinkDown] {
            match run_events(lan, dir, stack, fault, n) {
                Ok(takeovers) => row(&mut table, stack, fault, &takeovers),
                Err(e) => {
                    let _ = writeln!(table, "{:<40} {fault:?}: failed: {e}", stack.label());
                }
            }
        }
    }
    table
}

/// What one quiet window under load did to b, the backup.
struct Quiet {
    took_over: u64,
    bfd_downs: u64,
    bfd_drops: u64,
}

fn quiet_window(lan: &Lan, dir: &Path, bfd_ms: u32, window: Duration) -> Result<Quiet, String> {
    let pair = Pair::start(lan, dir, Stack::Vrrpd { bfd_ms })?;
    let counters = |s: &Status| {
        let instance = s.instances.first();
        let bfd = s.bfd.first();
        (
            instance.map_or(0, |i| i.counters.became_master),
            bfd.map_or(0, |b| b.transitions),
            bfd.map_or(0, |b| b.drops.values().sum::<u64>()),
        )
    };
    let before = status(dir, "b").map(|s| counters(&s)).ok_or("no status")?;
    let mut stress = Guarded::spawn(
        std::process::Command::new("stress-ng")
            .args(["--cpu", "2", "--timeout"])
            .arg(format!("{}s", window.as_secs()))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    let end = Instant::now() + window;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(1));
    }
    stress.end();
    let after = status(dir, "b").map(|s| counters(&s)).ok_or("no status")?;
    drop(pair);
    release_vip(&[lan.host(0), lan.host(1)]);
    Ok(Quiet {
        took_over: after.0 - before.0,
        // Each loss is Up -> Down, then Down -> Init -> Up or Down -> Up back.
        bfd_downs: (after.1 - before.1).div_ceil(2),
        bfd_drops: after.2 - before.2,
    })
}

/// False failovers with both cores saturated: the pair at BFD 10 ms x 3 for `window`; if b
/// took over or its session went down, the next slower timer, until one holds.
pub fn false_failovers(lan: &Lan, dir: &Path, window: Duration) -> String {
    let mut out = format!(
        "false failovers, {} s per timer, stress-ng --cpu 2, vrrpd at SCHED_RR {RT_PRIORITY}, \
         VRRPv3 {VRRP_MS} ms, meticulous SHA1:\n",
        window.as_secs()
    );
    for bfd_ms in [10, 20, 50, 100] {
        match quiet_window(lan, dir, bfd_ms, window) {
            Ok(q) => {
                let held = q.took_over == 0 && q.bfd_downs == 0;
                let _ = writeln!(
                    out,
                    "  BFD {bfd_ms} ms x 3: {} takeover(s) by the backup, {} session loss(es), \
                     {} packet(s) dropped: {}",
                    q.took_over,
                    q.bfd_downs,
                    q.bfd_drops,
                    if held { "holds" } else { "does NOT hold" }
                );
                if held {
                    break;
                }
            }
            Err(e) => {
                let _ = writeln!(out, "  BFD {bfd_ms} ms x 3: failed: {e}");
                break;
            }
        }
    }
    out
}
