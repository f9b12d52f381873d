//! The fault soak: the end-to-end pair ([`crate::pair`]) with established flows and a new
//! connection every 20 ms, while faults are injected one after another at random (kill -9 and
//! SIGSTOP of any daemon, a director's link down, loss and delay on its link, reloads with good
//! and broken configs, a daemon's fd limit cut to what it has open). After each fault is lifted
//! the pair must come back to its steady state on its own; meanwhile, and over the whole run,
//! the invariants below are checked from the wire and the kernel, and every breach is a
//! violation, printed by invariant:
//!
//! - **no holder**: on the LAN's bridge (kernel timestamps) the gap between two adverts of any
//!   master is at most Master_Down + 20 ms;
//! - **two holders**: from `ip monitor address` on both directors, both hold the VIP only while a
//!   fault separates them (a dead or stopped vrrpd, a link down or lossy) and for at most one
//!   advert interval after it heals; otherwise only for the instant of a handover;
//! - **table**: nlmon on both directors sees no FLUSH and no DEL_SERVICE, ever; healthy real
//!   servers keep a weight while a daemon runs out of file descriptors;
//! - **flows**: no established flow is lost unless the master's link failed meanwhile;
//! - **wedged**: every daemon of both directors answers on its control socket and the pair is
//!   back in its steady state (A master, B backup, both tables whole, the client served through
//!   the VIP) within 40 s of each fault being lifted, and no daemon exits on its own.
//!
//! Shared by the CI version (`tests/soak.rs`, 60 s) and the benchmark (`benches/soak.rs`,
//! 10 minutes); `LVS_SOAK_SECS`, `LVS_SOAK_FLOWS` and `LVS_SOAK_SEED` override both.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::nlmon;
use crate::pair::{A, B, DAEMONS, DIRECTOR_IPS, Pair, REALS, VIP, say};
use crate::process::{Guarded, wait_for};
use crate::vrrp_capture::{self, Kind};

/// A's and B's VRRP timers (priority 150 and 100, 1 s adverts): B's Master_Down bounds a gap.
const ADVERT: f64 = 1.0;
const MASTER_DOWN: f64 = 3.609;
/// How far past its bound a gap may go, timed on the wire (the end-to-end test's tolerance).
const WIRE_TOLERANCE: f64 = 0.020;
/// A handover adds the VIP on the new master before the old one hears its advert and removes
/// its own: both hold it for that instant. `ip monitor` events are timed as the test reads
/// them, so this also covers the reader's delay on a loaded one-CPU guest.
const HANDOVER: f64 = 0.100;
const RECOVERY: Duration = Duration::from_secs(40);
/// systemd's RestartSec in the shipped units: a killed daemon comes back this much later.
const RESTART_SEC: Duration = Duration::from_secs(1);

pub struct Settings {
    pub duration: Duration,
    pub flows: usize,
    pub seed: u64,
}

impl Settings {
    /// The defaults, unless `LVS_SOAK_SECS`, `LVS_SOAK_FLOWS` or `LVS_SOAK_SEED` say otherwise.
    pub fn from_env(secs: u64, flows: usize) -> Settings {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let seed = var("LVS_SOAK_SEED").unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        Settings {
            duration: Duration::from_secs(var("LVS_SOAK_SECS").unwrap_or(secs)),
            flows: var("LVS_SOAK_FLOWS").map_or(flows, |f| f as usize),
            seed,
        }
    }
}

/// Durations drawn between `low` and `high` milliseconds.
fn millis(rng: &mut fastrand::Rng, low: u64, high: u64) -> Duration {
    Duration::from_millis(rng.u64(low..=high))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FaultKind {
    Kill,
    Stop,
    LinkDown,
    Netem,
    Reload,
    BrokenReload,
    FdLimit,
}

const KINDS: [FaultKind; 7] = [
    FaultKind::Kill,
    FaultKind::Stop,
    FaultKind::LinkDown,
    FaultKind::Netem,
    FaultKind::Reload,
    FaultKind::BrokenReload,
    FaultKind::FdLimit,
];

impl FaultKind {
    fn label(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill -9 of a daemon",
            FaultKind::Stop => "SIGSTOP of a daemon",
            FaultKind::LinkDown => "a director's link down",
            FaultKind::Netem => "loss and delay on a director's link",
            FaultKind::Reload => "reload, good config",
            FaultKind::BrokenReload => "reload, broken config",
            FaultKind::FdLimit => "fd limit cut to what is open",
        }
    }
}

/// A fault that separates the directors' views of each other, while it lasts: both may then
/// hold the VIP. Times are seconds since the epoch.
#[derive(Clone, Copy, Debug)]
struct Window {
    start: f64,
    heal: f64,
    partition: bool,
    /// The master's (A's) link failed: its flows may be lost with it. A backup's link says
    /// nothing about the flows, which do not cross it.
    master_link: bool,
}

#[derive(Default)]
pub struct Report {
    faults: BTreeMap<&'static str, u32>,
    violations: BTreeMap<&'static str, Vec<String>>,
    notes: Vec<String>,
}

impl Report {
    fn violation(&mut self, invariant: &'static str, what: String) {
        self.violations.entry(invariant).or_default().push(what);
    }

    pub fn violation_count(&self) -> usize {
        self.violations.values().map(Vec::len).sum()
    }

    pub fn render(&self) -> String {
        let mut out = String::from("faults injected, by kind:\n");
        for (kind, n) in &self.faults {
            let _ = writeln!(out, "  {n:>4}  {kind}");
        }
        let _ = writeln!(out, "violations, by invariant (must all be 0):");
        for invariant in ["no holder", "two holders", "table", "flows", "wedged"] {
            let found = self
                .violations
                .get(invariant)
                .map_or(&[][..], Vec::as_slice);
            let _ = writeln!(out, "  {:>4}  {invariant}", found.len());
            for what in found.iter().take(10) {
                let _ = writeln!(out, "          {what}");
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "{note}");
        }
        out
    }
}

fn epoch() -> f64 {
    vrrp_capture::now()
}

/// When a director held the VIP, from `ip -o monitor address dev eth0` in its namespace: each
/// line is timed as it is read.
struct VipMonitor {
    _process: Guarded,
    events: Arc<Mutex<Vec<(f64, bool)>>>,
}

impl VipMonitor {
    fn start(ns: &crate::netns::Netns) -> Result<VipMonitor, String> {
        let mut command = ns.command(&["ip", "-o", "monitor", "address", "dev", "eth0"]);
        command.stdout(Stdio::piped());
        let mut process = Guarded::spawn(&mut command)?;
        let stdout = process
            .child_mut()
            .stdout
            .take()
            .ok_or("ip monitor has no stdout")?;
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let needle = format!(" {VIP}/");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains(&needle) {
                    let held = !line.starts_with("Deleted");
                    if let Ok(mut events) = sink.lock() {
                        events.push((epoch(), held));
                    }
                }
            }
        });
        Ok(VipMonitor {
            _process: process,
            events,
        })
    }

    /// Spans (start, end) during which the VIP was held, up to `until`.
    fn spans(&self, until: f64) -> Vec<(f64, f64)> {
        let events = self.events.lock().map(|e| e.clone()).unwrap_or_default();
        let mut spans = Vec::new();
        let mut since = None;
        for (ts, held) in events {
            match (held, since) {
                (true, None) => since = Some(ts),
                (false, Some(start)) => {
                    spans.push((start, ts));
                    since = None;
                }
                _ => {}
            }
        }
        if let Some(start) = since {
            spans.push((start, until));
        }
        spans
    }
}

/// Runs the soak and returns its report; an `Err` is a harness failure, not a violation.
pub fn run(bins: &Path, settings: &Settings) -> Result<Report, String> {
    let t0 = Instant::now();
    let mut report = Report::default();
    // Seeded, so a run with violations can be replayed.
    let mut rng = fastrand::Rng::with_seed(settings.seed);
    say(
        t0,
        &format!(
            "soak: {}s of faults, {} flows, seed {} (LVS_SOAK_SEED replays it)",
            settings.duration.as_secs(),
            settings.flows,
            settings.seed
        ),
    );
    let mut pair = Pair::build(bins)?;
    let monitors = [
        VipMonitor::start(&pair.directors[A].ns)?,
        VipMonitor::start(&pair.directors[B].ns)?,
    ];
    let family = lvs_ipvs::IpvsClient::connect()
        .map(|client| client.family_id())
        .map_err(|e| format!("IPVS family: {e}"))?;
    let netlink = [
        nlmon::Capture::start(&pair.directors[A].ns, "nlmon0", &pair.run)?,
        nlmon::Capture::start(&pair.directors[B].ns, "nlmon1", &pair.run)?,
    ];
    for director in &mut pair.directors {
        director.start()?;
    }
    pair.wait_a_master(Duration::from_secs(60))?;
    pair.wait_agents(Duration::from_secs(60))?;
    let good_configs: Vec<String> = pair
        .directors
        .iter()
        .map(|d| std::fs::read_to_string(&d.config).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    recover(&mut pair, &mut report, "the start")?;
    let flows = pair.start_flows(settings.flows)?;
    let prober = pair.start_prober(Duration::from_millis(20), Duration::from_secs(10))?;
    let capture = pair.capture_vrrp()?;
    let soak_start = epoch();
    say(
        t0,
        "steady state: A master, B backup, flows up; faults begin",
    );

    let mut windows: Vec<Window> = Vec::new();
    let mut alive = settings.flows;
    let mut last_flow_check = epoch();
    let mut order = Vec::new();
    let started = Instant::now();
    while started.elapsed() < settings.duration {
        if order.is_empty() {
            order = KINDS.to_vec();
            rng.shuffle(&mut order);
        }
        let kind = order.pop().expect("refilled above");
        let director = rng.usize(..2);
        let daemon = DAEMONS[rng.usize(..DAEMONS.len())];
        let hold = millis(&mut rng, 1000, 5000);
        let start = epoch();
        let what = inject(
            &mut pair,
            &mut report,
            kind,
            director,
            daemon,
            hold,
            &good_configs[director],
        )?;
        let heal = epoch();
        *report.faults.entry(kind.label()).or_default() += 1;
        let partition = match kind {
            FaultKind::Kill | FaultKind::Stop => daemon == "vrrpd",
            FaultKind::LinkDown | FaultKind::Netem => true,
            _ => false,
        };
        windows.push(Window {
            start,
            heal,
            partition,
            master_link: kind == FaultKind::LinkDown && director == A,
        });
        say(t0, &format!("fault: {what}"));
        recover(&mut pair, &mut report, &what)?;
        // Flows: one that dies is seen dead when its echo times out (20 s), so a loss is laid
        // against every fault since the last check, and a failed link among them excuses it.
        if let Some((_, now_alive)) = flows.alive()
            && now_alive < alive
        {
            let lost = alive - now_alive;
            let linked = windows
                .iter()
                .any(|w| w.master_link && w.heal >= last_flow_check - 25.0);
            if linked {
                report
                    .notes
                    .push(format!("{lost} flows lost through a failed link ({what})"));
            } else {
                report.violation("flows", format!("{lost} flows lost around: {what}"));
            }
            alive = now_alive;
            last_flow_check = epoch();
        }
        std::thread::sleep(millis(&mut rng, 500, 2000));
    }
    say(t0, "faults end; settling");
    let end_alive = flows.settle()?;
    if end_alive < alive {
        let linked = windows
            .iter()
            .any(|w| w.master_link && w.heal >= last_flow_check - 25.0);
        let lost = alive - end_alive;
        if linked {
            report.notes.push(format!(
                "{lost} flows lost through a failed link at the end"
            ));
        } else {
            report.violation("flows", format!("{lost} flows lost at the end"));
        }
    }
    let end = epoch();

    let frames = capture.frames()?;
    check_wire(&frames, soak_start, end, &mut report);
    check_holders(&monitors, &windows, soak_start, end, &mut report);
    for (director, capture) in netlink.into_iter().enumerate() {
        for request in capture.finish(family)? {
            use lvs_ipvs::IpvsCmd;
            if matches!(request.cmd, IpvsCmd::Flush | IpvsCmd::DelService) {
                report.violation(
                    "table",
                    format!("director {}: {request}", ["A", "B"][director]),
                );
            }
        }
    }
    let attempts = prober.finish(SystemTime::now())?;
    let answered = attempts.iter().filter(|a| a.ok).count();
    report.notes.push(format!(
        "flows alive at the end: {end_alive} of {}; new connections answered: {answered} of {} ({:.2} %)",
        settings.flows,
        attempts.len(),
        100.0 * answered as f64 / attempts.len().max(1) as f64
    ));
    Ok(report)
}

/// Applies one fault, holds it, lifts it; returns what it was.
fn inject(
    pair: &mut Pair,
    report: &mut Report,
    kind: FaultKind,
    at: usize,
    daemon: &'static str,
    hold: Duration,
    good_config: &str,
) -> Result<String, String> {
    let name = ["A", "B"][at];
    let director = &mut pair.directors[at];
    let what = match kind {
        FaultKind::Kill => {
            let pid = director.daemon(daemon).map(Guarded::pid);
            director.stop_daemon(daemon, libc::SIGKILL, Duration::from_secs(5))?;
            std::thread::sleep(RESTART_SEC);
            director.start_daemon(daemon)?;
            format!("kill -9 {name}'s {daemon} (pid {pid:?}), restarted {RESTART_SEC:?} later")
        }
        FaultKind::Stop => {
            let process = director.daemon(daemon).ok_or("not running")?;
            process.signal(libc::SIGSTOP);
            std::thread::sleep(hold);
            process.signal(libc::SIGCONT);
            format!("SIGSTOP {name}'s {daemon} for {hold:?}")
        }
        FaultKind::LinkDown => {
            director.ns.ip(&["link", "set", "eth0", "down"])?;
            std::thread::sleep(hold);
            director.ns.ip(&["link", "set", "eth0", "up"])?;
            format!("{name}'s link down for {hold:?}")
        }
        FaultKind::Netem => {
            director.ns.run(&[
                "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "loss", "5%", "delay",
                "20ms", "10ms",
            ])?;
            std::thread::sleep(hold);
            director
                .ns
                .run(&["tc", "qdisc", "del", "dev", "eth0", "root"])?;
            format!("5 % loss and 20±10 ms delay on {name}'s link for {hold:?}")
        }
        FaultKind::Reload => {
            for (_, process) in &director.daemons {
                process.signal(libc::SIGHUP);
            }
            format!("SIGHUP to {name}'s daemons, config unchanged")
        }
        FaultKind::BrokenReload => {
            let broken = format!("{good_config}\n[vrrp.unknown_section\n");
            std::fs::write(&director.config, broken).map_err(|e| e.to_string())?;
            for (_, process) in &director.daemons {
                process.signal(libc::SIGHUP);
            }
            std::thread::sleep(hold);
            std::fs::write(&director.config, good_config).map_err(|e| e.to_string())?;
            format!("SIGHUP to {name}'s daemons with a broken config, held {hold:?}")
        }
        FaultKind::FdLimit => {
            let pid = director.daemon(daemon).ok_or("not running")?.pid();
            let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map_err(|e| e.to_string())?
                .count();
            let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))
                .map_err(|e| e.to_string())?;
            let (soft, hard) = limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| {
                    let mut words = l.split_whitespace().skip(3);
                    Some((words.next()?.to_owned(), words.next()?.to_owned()))
                })
                .ok_or("no fd limit in /proc/PID/limits")?;
            let cut = format!("--nofile={}:{}", open + 1, open + 1);
            crate::process::run(std::process::Command::new("prlimit").args([
                "--pid",
                &pid.to_string(),
                &cut,
            ]))?;
            std::thread::sleep(hold);
            // Healthy real servers keep their weight while directord cannot open sockets.
            if at == A {
                let table = pair.directors[A].ns.stdout(&["ipvsadm", "-Ln"])?;
                let weights = destination_weights(&table);
                if weights.contains(&0) || weights.len() != 2 * REALS.len() {
                    report.violation(
                        "table",
                        format!("A's table while its {daemon} had no free fd: weights {weights:?}"),
                    );
                }
            }
            crate::process::run(std::process::Command::new("prlimit").args([
                "--pid",
                &pid.to_string(),
                &format!("--nofile={soft}:{hard}"),
            ]))?;
            format!(
                "fd limit of {name}'s {daemon} cut to {} for {hold:?}",
                open + 1
            )
        }
    };
    Ok(what)
}

/// The weights of a table's destinations, from `ipvsadm -Ln`.
fn destination_weights(table: &str) -> Vec<u32> {
    table
        .lines()
        .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress"))
        .filter_map(|l| l.split_whitespace().nth(3)?.parse().ok())
        .collect()
}

/// Waits for the steady state after a fault: every daemon alive and answering, A master, B
/// backup, both tables whole. A daemon that died on its own is a violation, and is started
/// again so the soak goes on.
fn recover(pair: &mut Pair, report: &mut Report, after: &str) -> Result<(), String> {
    for (at, director) in pair.directors.iter_mut().enumerate() {
        let mut dead = Vec::new();
        for (name, process) in &mut director.daemons {
            if let Some(status) = process.try_status() {
                dead.push((*name, status));
            }
        }
        for (name, status) in dead {
            report.violation(
                "wedged",
                format!(
                    "{}'s {name} exited on its own ({status}) after: {after}",
                    ["A", "B"][at]
                ),
            );
            director.daemons.retain(|(n, _)| *n != name);
            director.start_daemon(name)?;
        }
    }
    let steady = wait_for(RECOVERY, || {
        let answering = pair.directors.iter().all(|d| {
            DAEMONS.iter().all(|daemon| {
                crate::daemon::control(
                    &d.run.join(format!("{daemon}.sock")),
                    &serde_json::json!({"cmd": "status"}),
                )
                .is_ok()
            })
        });
        let roles = pair.directors[A].vrrp_state() == "MASTER"
            && pair.directors[B].vrrp_state() == "BACKUP";
        let tables = pair.directors.iter().all(|d| {
            d.ns.stdout(&["ipvsadm", "-Ln"]).is_ok_and(|t| {
                let weights = destination_weights(&t);
                weights.len() == 2 * REALS.len() && weights.iter().all(|w| *w > 0)
            })
        });
        // The client reaches the service: its neighbour entry for the VIP leads to the master.
        (answering && roles && tables && pair.fetch().is_some()).then_some(())
    });
    if steady.is_none() {
        let state: Vec<String> = pair
            .directors
            .iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d.vrrp_state(),
                    d.lvsadm("status").replace('\n', " | ")
                )
            })
            .collect();
        report.violation(
            "wedged",
            format!(
                "no steady state within {RECOVERY:?} after: {after}; {}",
                state.join(" ;; ")
            ),
        );
    }
    Ok(())
}

/// No holder: the longest silence of every master on the wire.
fn check_wire(frames: &[vrrp_capture::Frame], from: f64, to: f64, report: &mut Report) {
    let adverts: Vec<(f64, Ipv4Addr)> = frames
        .iter()
        .filter_map(|f| match f.kind {
            Kind::Advert {
                src,
                vrid: 51,
                priority,
            } if priority > 0 && f.ts >= from && f.ts <= to => Some((f.ts, src)),
            _ => None,
        })
        .collect();
    let mut longest: f64 = 0.0;
    for pair in adverts.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        longest = longest.max(gap);
        if gap > MASTER_DOWN + WIRE_TOLERANCE {
            report.violation(
                "no holder",
                format!(
                    "no advert for {gap:.3}s (bound {MASTER_DOWN}s + {WIRE_TOLERANCE}s) after {}'s at {:.3}s into the soak",
                    pair[0].1,
                    pair[0].0 - from
                ),
            );
        }
    }
    let by: Vec<String> = DIRECTOR_IPS
        .iter()
        .map(|ip| {
            format!(
                "{ip} {}",
                adverts.iter().filter(|(_, src)| src == ip).count()
            )
        })
        .collect();
    report.notes.push(format!(
        "adverts on the wire: {}; longest gap {longest:.3}s (bound {:.3}s)",
        by.join(", "),
        MASTER_DOWN + WIRE_TOLERANCE
    ));
}

/// Two holders: the spans both directors held the VIP, each allowed only while a partition
/// fault lasted and one advert interval after it healed (or the instant of a handover).
fn check_holders(
    monitors: &[VipMonitor; 2],
    windows: &[Window],
    from: f64,
    to: f64,
    report: &mut Report,
) {
    let a = monitors[A].spans(to);
    let b = monitors[B].spans(to);
    let mut longest: f64 = 0.0;
    let mut count = 0;
    for &(a_start, a_end) in &a {
        for &(b_start, b_end) in &b {
            let (start, end) = (a_start.max(b_start), a_end.min(b_end));
            if end <= start || end < from {
                continue;
            }
            count += 1;
            longest = longest.max(end - start);
            let healed = windows
                .iter()
                .filter(|w| w.partition && w.start <= end && w.heal + ADVERT + HANDOVER >= start)
                .map(|w| w.heal)
                .fold(f64::NEG_INFINITY, f64::max);
            let allowed = if healed.is_finite() {
                healed + ADVERT + HANDOVER
            } else {
                start + HANDOVER
            };
            if end > allowed {
                report.violation(
                    "two holders",
                    format!(
                        "A and B both held {VIP} for {:.3}s from {:.3}s into the soak ({:.3}s past what is allowed)",
                        end - start,
                        start - from,
                        end - allowed
                    ),
                );
            }
        }
    }
    report.notes.push(format!(
        "VIP held by both: {count} times, longest {longest:.3}s"
    ));
}
