//! Benchmark of the director pair (the end-to-end topology of `tests/director_pair.rs`, from
//! [`lvs_tests::pair`]) inside one UML boot, with the release binaries:
//!
//! - graceful failover (SIGTERM of the master's vrrpd: priority 0, the backup takes over after
//!   its skew time) and kill -9 failover (all four daemons of the master killed, its link down),
//!   each repeated: on the wire (VRRP captured on the LAN's bridge), the time from the master's
//!   reference advert (its last one before a kill, its priority-0 one when stopped) to the
//!   backup's first advert as master, which the RFC bounds, and from the event to that advert;
//!   the time until the backup reports MASTER and until the first new HTTP answer,
//!   flows surviving of 1,000 long-lived echo flows, and the success of new connections opened
//!   every 20 ms from the event on. The references are the RFC 3768 timers of the backup
//!   (skew time, Master_Down_Interval); each event is timed just after an advert, so the
//!   Master_Down case is the worst one, not a random phase.
//! - idle resident memory of each daemon (target <= 15 MB), next to keepalived's processes
//!   running the same VRRP instance and virtual servers in the same boot.
//!
//! Run: `cargo build --release --bins && cargo bench -p lvs-tests --bench pair_failover`
//! (`LVS_BIN_DIR` names another folder of binaries).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use lvs_tests::netns::Netns;
use lvs_tests::pair::{A, Attempt, B, DIRECTOR_IPS, Flows, Pair, REALS, rss_kb};
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::uml::{self, Case};
use lvs_tests::vrrp_capture::{self, Capture, Leave, Takeover};

fn main() -> ExitCode {
    uml::bench(&[Case::new("pair_failover", pair_failover).with_timeout(Duration::from_secs(1800))])
}

const FLOWS: usize = 1000;
/// Each event's repeats: enough to see the spread of the takeover times, not just a median.
const REPEATS: usize = 5;
/// A new connection every PERIOD, counted over WINDOW from the event; each is given LIMIT to be
/// answered (SYN retransmits at 1 s, 3 s, 7 s included).
const PERIOD: Duration = Duration::from_millis(20);
const WINDOW: Duration = Duration::from_secs(5);
const LIMIT: Duration = Duration::from_secs(10);
/// The prober starts this long before the event (a baseline; then the event waits for the
/// next advert).
const LEAD: Duration = Duration::from_secs(1);
/// B's RFC 3768 timers at priority 100 with 1 s adverts.
const SKEW: f64 = 0.609;
const MASTER_DOWN: f64 = 3.609;
/// Idle resident memory each daemon should stay under.
const TARGET_KB: u64 = 15 * 1024;

#[derive(Clone, Copy, PartialEq)]
enum Event {
    Graceful,
    Kill,
}

impl Event {
    fn label(self) -> &'static str {
        match self {
            Event::Graceful => "graceful (SIGTERM vrrpd)",
            Event::Kill => "kill -9 (whole director)",
        }
    }

    fn reference(self) -> (&'static str, f64) {
        match self {
            Event::Graceful => ("skew time", SKEW),
            Event::Kill => ("Master_Down", MASTER_DOWN),
        }
    }

    fn leave(self) -> Leave {
        match self {
            Event::Graceful => Leave::Goodbye,
            Event::Kill => Leave::Died,
        }
    }
}

struct Run {
    /// B's takeover on the wire.
    wire: Takeover,
    /// From the event until B's vrrpd reports MASTER on its control socket.
    takeover: f64,
    first_http: Option<f64>,
    base: usize,
    survived: usize,
    /// New connections opened within WINDOW of the event: (opened, answered, answered < 1 s).
    window: (usize, usize, usize),
    /// Before the event: (opened, answered).
    before: (usize, usize),
}

fn bins() -> PathBuf {
    std::env::var_os("LVS_BIN_DIR").map_or_else(lvs_tests::workspace_bin_dir, PathBuf::from)
}

pub fn pair_failover() -> Result<(), String> {
    let bins = bins();
    println!("binaries: {}", bins.display());
    let mut pair = Pair::build(&bins)?;
    for director in &mut pair.directors {
        director.start()?;
    }
    pair.wait_a_master(Duration::from_secs(60))?;
    pair.wait_agents(Duration::from_secs(60))?;
    let capture = pair.capture_vrrp()?;

    // keepalived, the peer, in a namespace of its own on the same LAN: another VRID and VIP,
    // the same checks against the same real servers.
    let peer = keepalived(&pair)?;
    // Idle: elected, checks and feedback polling running, no client traffic.
    std::thread::sleep(Duration::from_secs(10));
    let idle = [pair.directors[A].rss_kb(), pair.directors[B].rss_kb()];
    let agents: Vec<u64> = pair
        .agents
        .iter()
        .map(|a| rss_kb(a.pid()).unwrap_or(0))
        .collect();
    let peer_rss = peer.rss_kb();
    drop(peer);

    let flows = pair.start_flows(FLOWS)?;
    std::thread::sleep(Duration::from_secs(3));
    let busy = [pair.directors[A].rss_kb(), pair.directors[B].rss_kb()];
    print_rss(&idle, &busy, &agents, &peer_rss);

    println!(
        "\nfailover, {FLOWS} established echo flows; a new HTTP connection every {} ms, counted for {} s from the event, each allowed {} s",
        PERIOD.as_millis(),
        WINDOW.as_secs(),
        LIMIT.as_secs()
    );
    println!(
        "{:<26} {:>10} {:>9} {:>10} {:>9} {:>14} {:>11} {:>20} {:>15} {:>14}",
        "event",
        "ref->B adv",
        "over RFC",
        "evt->B adv",
        "B master",
        "1st new HTTP",
        "flows",
        "new conns answered",
        "within 1 s",
        "before event"
    );
    let mut summary = String::new();
    for event in [Event::Graceful, Event::Kill] {
        let mut runs = Vec::new();
        for _ in 0..REPEATS {
            let run = fail_over(&mut pair, &flows, &capture, event)?;
            let (n, ok, fast) = run.window;
            println!(
                "{:<26} {:>9.4}s {:>6.1} ms {:>9.4}s {:>8.3}s {:>14} {:>11} {:>20} {:>15} {:>14}",
                event.label(),
                run.wire.interval(),
                (run.wire.interval() - event.reference().1) * 1e3,
                run.wire.from_event(),
                run.takeover,
                run.first_http
                    .map_or_else(|| "none".to_owned(), |t| format!("{t:.3}s")),
                format!("{}/{}", run.survived, run.base),
                format!("{ok}/{n} {:.1}%", percent(ok, n)),
                format!("{fast}/{n} {:.1}%", percent(fast, n)),
                format!("{}/{}", run.before.1, run.before.0),
            );
            runs.push(run);
            restore(&mut pair, &flows, event)?;
        }
        let takeover = median(runs.iter().map(|r| r.takeover).collect());
        let first = median(runs.iter().filter_map(|r| r.first_http).collect());
        let (name, reference) = event.reference();
        let over: Vec<f64> = runs
            .iter()
            .map(|r| (r.wire.interval() - reference) * 1e3)
            .collect();
        let wire = median(runs.iter().map(|r| r.wire.interval()).collect());
        let _ = writeln!(
            summary,
            "{:<26} on the wire, A's reference advert to B's first: {wire:.4}s = {:.4} x {name} ({reference:.3}s), over it by {:+.1} ms (max {:+.1} ms); event to B's first advert {:.3}s",
            event.label(),
            wire / reference,
            median(over.clone()),
            over.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            median(runs.iter().map(|r| r.wire.from_event()).collect()),
        );
        let (n, ok, fast) = runs.iter().fold((0, 0, 0), |s, r| {
            (s.0 + r.window.0, s.1 + r.window.1, s.2 + r.window.2)
        });
        let _ = writeln!(
            summary,
            "{:<26} B reports MASTER {takeover:.3}s after the event = {:.2} x {name} ({reference:.3}s); first new HTTP {first:.3}s; flows {}/{}; new connections answered {:.1}%, within 1 s {:.1}%",
            event.label(),
            takeover / reference,
            runs.iter().map(|r| r.survived).sum::<usize>(),
            runs.iter().map(|r| r.base).sum::<usize>(),
            percent(ok, n),
            percent(fast, n),
        );
    }
    println!("\nmedians of {REPEATS} (ratios against B's RFC 3768 timers):\n{summary}");
    Ok(())
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn median(mut samples: Vec<f64>) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn fail_over(
    pair: &mut Pair,
    flows: &Flows,
    capture: &Capture,
    event: Event,
) -> Result<Run, String> {
    let base = flows.settle()?;
    let prober = pair.start_prober(PERIOD, LIMIT)?;
    std::thread::sleep(LEAD);
    pair.directors[B].next_advert(Duration::from_secs(10))?;
    let at = SystemTime::now();
    let wire_at = vrrp_capture::now();
    let started = Instant::now();
    let a = &mut pair.directors[A];
    match event {
        Event::Graceful => a.stop_daemon("vrrpd", libc::SIGTERM, Duration::from_secs(10))?,
        Event::Kill => {
            a.kill_all();
            a.ns.ip(&["link", "set", "eth0", "down"])?;
        }
    }
    // Until its link is down a killed director's kernel still forwards; a new connection
    // counts as served by B only when opened after that.
    let gone = started.elapsed().as_secs_f64();
    let takeover = (pair.wait_master(B, Duration::from_secs(30))? - started).as_secs_f64();
    let [a_ip, b_ip] = DIRECTOR_IPS;
    let wire = capture.takeover(Duration::from_secs(10), wire_at, a_ip, b_ip, event.leave())?;
    std::thread::sleep(WINDOW.saturating_sub(started.elapsed()));
    let attempts = prober.finish(at)?;
    let survived = flows.settle()?;
    Ok(Run {
        wire,
        takeover,
        first_http: attempts
            .iter()
            .filter(|a| a.ok && a.start >= gone)
            .map(|a| a.end)
            .min_by(f64::total_cmp),
        base,
        survived,
        window: count(&attempts, 0.0, WINDOW.as_secs_f64()),
        before: {
            let (n, ok, _) = count(&attempts, f64::NEG_INFINITY, 0.0);
            (n, ok)
        },
    })
}

/// Attempts opened in [from, to): how many, how many answered, how many within 1 s.
fn count(attempts: &[Attempt], from: f64, to: f64) -> (usize, usize, usize) {
    let within: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.start >= from && a.start < to)
        .collect();
    (
        within.len(),
        within.iter().filter(|a| a.ok).count(),
        within
            .iter()
            .filter(|a| a.ok && a.end - a.start < 1.0)
            .count(),
    )
}

/// Brings A back (its vrrpd, or the whole director) and waits until it is master again with
/// B's syncd mirroring every flow, ready for the next event.
fn restore(pair: &mut Pair, flows: &Flows, event: Event) -> Result<(), String> {
    if event == Event::Kill {
        pair.directors[A].ns.ip(&["link", "set", "eth0", "up"])?;
    }
    pair.directors[A].start()?;
    pair.wait_a_master(Duration::from_secs(60))?;
    let alive = flows.settle()?;
    pair.wait_mirrored(alive)?;
    // Health checks and feedback of a restarted director settle before the next event.
    std::thread::sleep(Duration::from_secs(3));
    Ok(())
}

fn print_rss(
    idle: &[Vec<(&str, u64)>; 2],
    busy: &[Vec<(&str, u64)>; 2],
    agents: &[u64],
    peer: &[(&str, u64)],
) {
    println!(
        "\nresident memory (VmRSS, kB), release binaries; target <= {TARGET_KB} kB each when idle"
    );
    println!(
        "{:<22} {:>8} {:>8} {:>16} {:>16}",
        "daemon", "A idle", "B idle", "A 1,000 flows", "B 1,000 flows"
    );
    for (name, _) in &idle[A] {
        let cell = |v: &[Vec<(&str, u64)>; 2], d: usize| {
            v[d].iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, kb)| *kb)
        };
        let worst = cell(idle, A).max(cell(idle, B));
        println!(
            "{:<22} {:>8} {:>8} {:>16} {:>16}{}",
            name,
            cell(idle, A),
            cell(idle, B),
            cell(busy, A),
            cell(busy, B),
            if worst > TARGET_KB {
                "  over target"
            } else {
                ""
            }
        );
    }
    println!(
        "{:<22} {:>8} (each of {} real servers: {})",
        "feedbackd --agent",
        agents.iter().copied().max().unwrap_or(0),
        REALS.len(),
        agents
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ours = |names: &[&str]| -> u64 {
        idle[A]
            .iter()
            .filter(|(n, _)| names.contains(n))
            .map(|(_, kb)| kb)
            .sum()
    };
    let theirs: u64 = peer.iter().map(|(_, kb)| kb).sum();
    println!(
        "peer, keepalived 2.2 with the same VRRP instance and virtual servers, idle: {}; total {theirs} kB",
        peer.iter()
            .map(|(n, kb)| format!("{n} {kb} kB"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let vrrp_and_checks = ours(&["vrrpd", "directord"]);
    println!(
        "vrrpd + directord (what keepalived does) on A: {vrrp_and_checks} kB = {:.2} x keepalived; all four daemons {} kB = {:.2} x",
        vrrp_and_checks as f64 / theirs.max(1) as f64,
        ours(&["vrrpd", "directord", "syncd", "feedbackd"]),
        ours(&["vrrpd", "directord", "syncd", "feedbackd"]) as f64 / theirs.max(1) as f64
    );
}

/// keepalived running VRRP (VRID 52) and the two virtual servers with their checks, in its own
/// namespace: its three processes (parent, VRRP child, checker child).
struct Keepalived {
    process: Guarded,
    run: PathBuf,
    _ns: Netns,
}

impl Keepalived {
    fn rss_kb(&self) -> Vec<(&'static str, u64)> {
        let child = |file: &str| {
            std::fs::read_to_string(self.run.join(file))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .and_then(rss_kb)
                .unwrap_or(0)
        };
        vec![
            ("parent", rss_kb(self.process.pid()).unwrap_or(0)),
            ("vrrp", child("vrrp.pid")),
            ("checkers", child("checkers.pid")),
        ]
    }
}

fn keepalived(pair: &Pair) -> Result<Keepalived, String> {
    let ns = pair.attach_host("kad", "192.0.2.13/24")?;
    let run = pair.run.join("keepalived");
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let config = run.join("keepalived.conf");
    std::fs::write(&config, keepalived_config()).map_err(|e| e.to_string())?;
    let pid = |name: &str| run.join(name);
    let process = ns.spawn(&[
        "keepalived".as_ref(),
        "--dont-fork".as_ref(),
        "--log-console".as_ref(),
        "--use-file".as_ref(),
        config.as_os_str(),
        "--pid".as_ref(),
        pid("keepalived.pid").as_os_str(),
        "--vrrp_pid".as_ref(),
        pid("vrrp.pid").as_os_str(),
        "--checkers_pid".as_ref(),
        pid("checkers.pid").as_os_str(),
    ])?;
    let peer = Keepalived {
        process,
        run,
        _ns: ns,
    };
    wait_for(Duration::from_secs(30), || {
        peer.rss_kb().iter().all(|(_, kb)| *kb > 0).then_some(())
    })
    .ok_or("keepalived did not start its VRRP and checker processes")?;
    Ok(peer)
}

fn keepalived_config() -> String {
    let vip = "192.0.2.101";
    let mut text = format!(
        "global_defs {{\n  router_id kad\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 52\n  priority 100\n  advert_int 1\n  virtual_ipaddress {{\n    {vip}/24\n  }}\n}}\n"
    );
    let _ = writeln!(
        text,
        "virtual_server {vip} 80 {{\n  delay_loop 1\n  lb_algo wrr\n  lb_kind DR\n  protocol TCP"
    );
    for real in REALS {
        let _ = writeln!(
            text,
            "  real_server {real} 80 {{\n    weight 100\n    HTTP_GET {{\n      url {{\n        path /\n        status_code 200\n      }}\n      connect_timeout 1\n    }}\n  }}"
        );
    }
    text.push_str("}\n");
    let _ = writeln!(
        text,
        "virtual_server {vip} 7 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP"
    );
    for real in REALS {
        let _ = writeln!(
            text,
            "  real_server {real} 7 {{\n    weight 100\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}"
        );
    }
    text.push_str("}\n");
    text
}
