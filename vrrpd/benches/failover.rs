//! Failover benchmark, vrrpd against keepalived in the same run (`cargo bench -p vrrpd`, as
//! root; `FAILOVER_REPEATS=n` to change the 5 repeats).
//!
//! Namespaces a (master, priority 150) and b (backup, priority 100) and an observer share a
//! bridge. Each trial starts a fresh pair, lets it settle, then either kills the master with
//! SIGKILL (for keepalived: its VRRP child, which does the protocol work) or stops it with
//! SIGTERM. The observer's tcpdump timestamps say when b's first advertisement and first
//! gratuitous ARP appeared; the event time is taken on the same (realtime) clock just before
//! the signal.
//!
//! After a kill, the backup's timer started at the master's last advertisement, so the
//! interval from that advertisement is what RFC 3768 bounds (3 x interval + skew: 3.609 s
//! at 1 s, 0.361 s at 10 cs, priority 100); the time from the kill is shorter by however long
//! before the kill that advertisement went out. After SIGTERM the bound is the skew time
//! from the master's priority-0 advertisement (0.609 s, 61 ms).
//!
//! Then (module `fast`) the sub-100 ms part: vrrpd with BFD at 10 ms x 3 over >= 200 crashes
//! and link losses, keepalived's fastest stacks beside it, and false failovers under load.
//! `FAILOVER_PARTS=rfc,bfd,quiet` (default: all) picks parts; `FAILOVER_BFD_EVENTS` (200),
//! `FAILOVER_PEER_EVENTS` (50, each keepalived stack) and `FAILOVER_QUIET_SECS` (600) size them.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use lvs_tests::keepalived::Keepalived;
use lvs_tests::lan::{Lan, holds};
use lvs_tests::netns::Netns;
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::vrrp_capture::{self, Capture, Frame, Leave};

#[path = "failover/fast.rs"]
mod fast;

const VIP: &str = "192.0.2.100";
const A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);

#[derive(Clone, Copy, PartialEq)]
enum Daemon {
    Vrrpd,
    Keepalived,
}

#[derive(Clone, Copy)]
struct Mode {
    name: &'static str,
    version: u8,
    centis: u32,
}

const MODES: [Mode; 2] = [
    Mode {
        name: "v2 1s",
        version: 2,
        centis: 100,
    },
    Mode {
        name: "v3 10cs",
        version: 3,
        centis: 10,
    },
];

#[derive(Clone, Copy, PartialEq)]
enum Event {
    Kill,
    Term,
}

impl Mode {
    fn interval(self) -> Duration {
        Duration::from_millis(u64::from(self.centis) * 10)
    }

    /// Skew_Time at priority 100: (256 - 100) / 256 of a second (v2) or of the interval (v3).
    fn skew(self) -> Duration {
        let base = if self.version == 2 {
            Duration::from_secs(1)
        } else {
            self.interval()
        };
        base * 156 / 256
    }

    fn bound(self, event: Event) -> Duration {
        match event {
            Event::Kill => 3 * self.interval() + self.skew(),
            Event::Term => self.skew(),
        }
    }
}

/// a, b and the observer, on ports p0, p1, p2.
fn lan() -> Result<Lan, String> {
    Lan::new(&[
        ("fa", "192.0.2.11/24"),
        ("fb", "192.0.2.12/24"),
        ("fo", "192.0.2.99/24"),
    ])
}

fn has_vip(host: &Netns) -> bool {
    holds(host, VIP)
}

fn start(
    daemon: Daemon,
    mode: Mode,
    host: &Netns,
    dir: &Path,
    name: &str,
    priority: u8,
) -> Result<Running, String> {
    let config = match daemon {
        Daemon::Vrrpd => {
            let path = dir.join(format!("{name}.toml"));
            std::fs::write(
                &path,
                format!(
                    "[control]\nsocket_dir = \"{dir}/{name}\"\n\n[[vrrp.instance]]\nname = \"VI_1\"\n\
                     interface = \"eth0\"\nvrid = 51\npriority = {priority}\nversion = {version}\n\
                     advert_interval = \"{ms}ms\"\nvirtual_addresses = [\"{VIP}/24\"]\n",
                    dir = dir.display(),
                    version = mode.version,
                    ms = mode.centis * 10,
                ),
            )
            .map_err(|e| e.to_string())?;
            path
        }
        Daemon::Keepalived => {
            let path = dir.join(format!("{name}.conf"));
            let version = if mode.version == 3 {
                "  version 3\n"
            } else {
                ""
            };
            std::fs::write(
                &path,
                format!(
                    "global_defs {{\n  router_id {name}\n}}\nvrrp_instance VI_1 {{\n  state BACKUP\n\
                     interface eth0\n  virtual_router_id 51\n  priority {priority}\n{version}\
                     advert_int {}.{:02}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n",
                    mode.centis / 100,
                    mode.centis % 100
                ),
            )
            .map_err(|e| e.to_string())?;
            path
        }
    };
    match daemon {
        Daemon::Vrrpd => spawn_vrrpd(host, &config).map(Running::Vrrpd),
        Daemon::Keepalived => Keepalived::start_quiet(host, dir, &config).map(Running::Keepalived),
    }
}

/// Removes the VIP from `hosts`: a killed master leaves it behind (as a crashed machine's
/// kernel would, until it reboots), and the next trial starts clean.
fn release_vip(hosts: &[&Netns]) {
    for host in hosts {
        let _ = host.ip(&["addr", "del", &format!("{VIP}/24"), "dev", "eth0"]);
    }
}

/// The vrrpd under test in `host`, quiet: the benchmark's output is its table.
fn spawn_vrrpd(host: &Netns, config: &Path) -> Result<Guarded, String> {
    let mut command = host.command(&[
        env!("CARGO_BIN_EXE_vrrpd").as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    command
        .env("LVS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Guarded::spawn(&mut command)
}

enum Running {
    Vrrpd(Guarded),
    Keepalived(Keepalived),
}

impl Running {
    /// Whom to signal, and with what, for `event`. SIGKILL must hit the process that runs the
    /// protocol: keepalived's VRRP child, which the parent would otherwise stop gracefully
    /// (priority 0) when it dies.
    fn target(&self, event: Event) -> Result<(libc::pid_t, libc::c_int), String> {
        let signal = match event {
            Event::Kill => libc::SIGKILL,
            Event::Term => libc::SIGTERM,
        };
        let pid = match (self, event) {
            (Running::Vrrpd(guard), _) => guard.pid() as libc::pid_t,
            (Running::Keepalived(keepalived), Event::Kill) => keepalived.vrrp_pid()?,
            (Running::Keepalived(keepalived), Event::Term) => keepalived.pid() as libc::pid_t,
        };
        Ok((pid, signal))
    }
}

struct Trial {
    daemon: Daemon,
    mode: Mode,
    event: Event,
    at: f64,
}

struct Measured {
    /// From the signal to b's first advertisement / gratuitous ARP.
    advert: f64,
    garp: f64,
    /// From a's last advertisement (kill) or its priority-0 one (term) to b's first advert.
    from_reference: f64,
    /// From the signal to a's reference advertisement (term: how fast the master says goodbye).
    to_reference: f64,
}

fn measure(trial: &Trial, frames: &[Frame]) -> Option<Measured> {
    let leave = match trial.event {
        Event::Kill => Leave::Died,
        Event::Term => Leave::Goodbye,
    };
    let takeover = vrrp_capture::takeover(frames, trial.at, A, B, leave)?;
    Some(Measured {
        advert: takeover.from_event(),
        garp: takeover.garp? - trial.at,
        from_reference: takeover.interval(),
        to_reference: takeover.event_to_reference(),
    })
}

/// The nearest-rank percentile `p` (0-100] of `values`; NaN when empty.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn run_trial(
    lan: &Lan,
    dir: &Path,
    daemon: Daemon,
    mode: Mode,
    event: Event,
    n: usize,
) -> Result<Trial, String> {
    let tag = format!(
        "{}{}{}{n}",
        if daemon == Daemon::Vrrpd { "v" } else { "k" },
        mode.version,
        if event == Event::Kill { "k" } else { "t" }
    );
    let (a_name, b_name) = (format!("{tag}a"), format!("{tag}b"));
    let master = start(daemon, mode, lan.host(0), dir, &a_name, 150)?;
    let settle = 4 * mode.interval() + Duration::from_secs(2);
    wait_for(settle, || has_vip(lan.host(0)).then_some(())).ok_or("a never became master")?;
    let backup = start(daemon, mode, lan.host(1), dir, &b_name, 100)?;
    // Past b's own Master_Down_Interval, so it is a settled backup.
    std::thread::sleep(4 * mode.interval() + Duration::from_millis(500));
    if has_vip(lan.host(1)) || !has_vip(lan.host(0)) {
        return Err("the pair did not settle with a as master".to_owned());
    }
    let (pid, signal) = master.target(event)?;
    let at = vrrp_capture::now();
    // SAFETY: kill(2) on a process this benchmark started and has not reaped.
    unsafe { libc::kill(pid, signal) };
    wait_for(Duration::from_secs(10), || {
        has_vip(lan.host(1)).then_some(())
    })
    .ok_or("b never took over")?;
    // The rest of the first gratuitous ARP burst.
    std::thread::sleep(Duration::from_millis(300));
    drop(backup);
    drop(master);
    release_vip(&[lan.host(0), lan.host(1)]);
    Ok(Trial {
        daemon,
        mode,
        event,
        at,
    })
}

fn main() -> Result<(), String> {
    // `cargo test` also runs benches in test mode (with --bench absent): nothing to do there.
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    if let Some(reason) = lvs_tests::netns_missing() {
        eprintln!("SKIPPED: {reason}");
        return Ok(());
    }
    let number = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let parts = std::env::var("FAILOVER_PARTS").unwrap_or_else(|_| "rfc,bfd,quiet".to_owned());
    let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lan = lan()?;
    if part("rfc") {
        rfc_bound(&lan, dir.path(), number("FAILOVER_REPEATS", 5))?;
    }
    if part("bfd") {
        let (events, peer_events) = (
            number("FAILOVER_BFD_EVENTS", 200),
            number("FAILOVER_PEER_EVENTS", 50),
        );
        println!(
            "\nsub-100 ms: percentiles in ms from the dead master's last packet (BFD or advert) \
             to the backup's first advert (adv) and first gratuitous ARP (garp), and from the \
             fault to that ARP (flt); target for vrrpd + BFD 10 ms x 3: garp p50 <= 50, p99 <= 100"
        );
        print!("{}", fast::takeovers(&lan, dir.path(), events, peer_events));
    }
    if part("quiet") {
        let window = Duration::from_secs(number("FAILOVER_QUIET_SECS", 600) as u64);
        println!();
        print!("{}", fast::false_failovers(&lan, dir.path(), window));
    }
    Ok(())
}

/// The RFC-bound table: vrrpd and keepalived, fresh pairs, `repeats` of each trial.
fn rfc_bound(lan: &Lan, dir: &Path, repeats: usize) -> Result<(), String> {
    let mut capture = Capture::start(lan.host(2), "eth0", dir, "observer")?;

    let mut trials = Vec::new();
    for mode in MODES {
        for event in [Event::Kill, Event::Term] {
            for n in 0..repeats {
                // Interleaved, so drift in machine load hits both daemons alike.
                for daemon in [Daemon::Vrrpd, Daemon::Keepalived] {
                    match run_trial(lan, dir, daemon, mode, event, n) {
                        Ok(trial) => trials.push(trial),
                        Err(e) => eprintln!("trial failed: {e}"),
                    }
                }
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let frames = capture.frames()?;
    capture.end();
    if let Ok(keep) = std::env::var("FAILOVER_CAPTURE") {
        std::fs::copy(dir.join("observer.pcap"), &keep).map_err(|e| format!("{keep}: {e}"))?;
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<8} {:<5} {:<10} {:>3} {:>11} {:>11} {:>9} {:>9} {:>10} {:>10} {:>7}",
        "mode",
        "event",
        "daemon",
        "n",
        "advert(ms)",
        "garp(ms)",
        "garp-adv",
        "sig->ref",
        "ref->adv",
        "RFC bound",
        "ratio"
    );
    for mode in MODES {
        for event in [Event::Kill, Event::Term] {
            let mut medians = Vec::new();
            for daemon in [Daemon::Vrrpd, Daemon::Keepalived] {
                let measured: Vec<Measured> = trials
                    .iter()
                    .filter(|t| t.daemon == daemon && t.mode.version == mode.version)
                    .filter(|t| t.event == event)
                    .filter_map(|t| measure(t, &frames))
                    .collect();
                let mut advert: Vec<f64> = measured.iter().map(|m| m.advert).collect();
                let mut garp: Vec<f64> = measured.iter().map(|m| m.garp).collect();
                let mut gap: Vec<f64> = measured.iter().map(|m| m.garp - m.advert).collect();
                let mut reference: Vec<f64> = measured.iter().map(|m| m.from_reference).collect();
                let mut signal: Vec<f64> = measured.iter().map(|m| m.to_reference).collect();
                let row = (
                    median(&mut advert) * 1e3,
                    median(&mut garp) * 1e3,
                    median(&mut gap) * 1e3,
                    median(&mut reference) * 1e3,
                    median(&mut signal) * 1e3,
                );
                medians.push(row);
                let ratio = if daemon == Daemon::Keepalived {
                    let ours = medians[0].3;
                    format!("{:.3}", ours / row.3)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    table,
                    "{:<8} {:<5} {:<10} {:>3} {:>11.1} {:>11.1} {:>9.1} {:>9.1} {:>10.1} {:>10.1} {:>7}",
                    mode.name,
                    if event == Event::Kill { "kill" } else { "term" },
                    if daemon == Daemon::Vrrpd {
                        "vrrpd"
                    } else {
                        "keepalived"
                    },
                    measured.len(),
                    row.0,
                    row.1,
                    row.2,
                    row.4,
                    row.3,
                    mode.bound(event).as_secs_f64() * 1e3,
                    ratio
                );
            }
        }
    }
    println!(
        "medians over {repeats} repeats; advert/garp: from the signal to b's first advert / \
         gratuitous ARP; sig->ref: from the signal to a's reference advert (negative for kill: \
         its last one went out before); ref->adv: from a's last advert (kill) or its priority-0 \
         advert (term) to b's first advert, the interval the RFC bounds; ratio: \
         vrrpd/keepalived of ref->adv"
    );
    print!("{table}");
    Ok(())
}
