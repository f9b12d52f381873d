//! Benchmark, inside one UML boot: directord and keepalived 2.2.7 on the same table at the size
//! where keepalived users report it failing (acassen/keepalived#2318): 2,284 services and
//! 37,298 real-server entries over 2,300 real servers (`lvs_tests::scale`). For each daemon in
//! turn, on the same generated table:
//!
//! 1. start to the full table, no checks: from the spawn until the kernel's table (read from
//!    /proc/PID/net/ip_vs) is exactly the generated one;
//! 2. a reload (SIGHUP) with 1 % of the weights changed: until the kernel's table is right,
//!    and the IPVS requests it sent meanwhile (nlmon), against the number of changed entries;
//! 3. resident memory after that reload (keepalived: parent and checker child);
//! 4. checks at a 5 s interval (TCP connect, and HTTP for 15 % of the real servers) against
//!    2,300 listening ports: checks per second, against the per-entry schedule (entries / 5 s)
//!    and per real server (share of real servers checked at least once per interval), CPU
//!    per check, the guest's idle share;
//!
//! then `lvsadm -Ln` against `ipvsadm -Ln` on the full table, `lvsadm table` (directord's
//! status, read a page at a time), one status page, the quorum request (vrrpd's probe) and a ping on directord's socket, and `lvsadm check-config` on the valid file and on one with an error per entry
//! against `keepalived --config-test`. Each figure is printed with keepalived's and the ratio.
//!
//! External (MISC) checks are in the generated file but left out of the timed phase: a process
//! start costs ~15 ms in UML, so keepalived's one per entry would saturate the CPU by itself.
//!
//! Run: `cargo build --release --bins && cargo bench -p lvs-tests --bench scale` (about 6
//! minutes at full size). `LVS_SCALE_SERVICES=200` runs a small table (proportional entries and
//! real servers) for a quick look.

use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use lvs_ipvs::IpvsCmd;
use lvs_tests::check_targets::Listener;
use lvs_tests::netns::Netns;
use lvs_tests::nlmon::{Capture, IpvsRequest};
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::procstat::{clock_ticks_per_second, cpu_ticks, guest_idle, process_tree};
use lvs_tests::scale::{self, Check, Mix, Spec, Table};
use lvs_tests::uml::{self, Case};

/// Checks after the table is loaded and before the window: the first rounds and the
/// checker's start-up are not the steady state.
const WARM_UP: Duration = Duration::from_secs(10);
const WINDOW: Duration = Duration::from_secs(20);
/// Longest wait for a table to load or a reload to land.
const TABLE_LIMIT: Duration = Duration::from_secs(300);
const LIST_REPEATS: usize = 3;
/// Reloads after the first, timed from the capture alone.
const MORE_RELOADS: usize = 5;
/// How long a timed reload is left alone before the table is read to confirm it: longer than
/// either daemon's reload, so the read (about a second of UML's one CPU at this size) does not
/// slow the daemon it measures.
const RELOAD_QUIET: Duration = Duration::from_secs(3);

fn main() -> ExitCode {
    uml::bench(&[Case::new("scale", run).with_timeout(Duration::from_secs(2400))])
}

fn services() -> usize {
    std::env::var("LVS_SCALE_SERVICES")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(scale::FULL_SERVICES)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Daemon {
    Directord,
    Keepalived,
}

impl Daemon {
    fn name(self) -> &'static str {
        match self {
            Daemon::Directord => "directord",
            Daemon::Keepalived => "keepalived",
        }
    }
}

/// The files of one daemon: the table without checks, the same with 1 % of the weights
/// changed (the reload), and the table with checks.
struct Files {
    plain: String,
    changed: String,
    checked: String,
}

/// What one daemon measured.
#[derive(Default)]
struct Figures {
    start: f64,
    reload: f64,
    reload_writes: usize,
    reload_requests: usize,
    rss_mb: f64,
    checks_per_s: f64,
    on_schedule_reals: f64,
    cpu_percent: f64,
    idle: f64,
    status: Option<f64>,
    /// One page (100 services) of directord's status, the services' quorum (vrrpd's probe)
    /// and a ping, over its socket: medians.
    status_page: Option<f64>,
    quorum: Option<f64>,
    ping: Option<f64>,
    /// Whole-table reads (dumps) during the reload.
    reload_dumps: usize,
    /// Every timed reload (the first and [`MORE_RELOADS`]), from the capture.
    reloads: Vec<Reload>,
    /// One read of the kernel's full table the way the bench polls it (/proc/PID/net/ip_vs).
    table_read: f64,
}

/// One reload as the capture and the daemon's log saw it, in seconds from the SIGHUP.
#[derive(Debug, Clone, Copy, Default)]
struct Reload {
    writes: usize,
    /// Until the last IPVS write: the kernel applies a request within the sendmsg the tap
    /// records, so this is when the table was right, without the bench's polling in it.
    landed: Option<f64>,
    /// directord only, from its log: the changed blocks parsed, and the new config in place
    /// (validated, compared); diff and netlink are the rest up to `landed`.
    parsed: Option<f64>,
    swapped: Option<f64>,
}

fn run() -> Result<(), String> {
    lvs_tests::check_targets::raise_fd_limit(65536)?;
    let n = services();
    let base = Spec {
        checks: None,
        ..Spec::services(n)
    };
    let plain = base.table();
    let changed = Spec {
        changed_percent: 1,
        ..base.clone()
    }
    .table();
    let checked = Spec {
        checks: Some(Mix {
            http_percent: 15,
            external_percent: 0,
        }),
        ..base.clone()
    }
    .table();
    let changes = plain.weights_changed(&changed);

    let ns = Netns::new("scale")?;
    // A /24 on lo makes every address of it local: the real servers' listeners bind there.
    let [a, b, c] = scale::REAL_NET;
    ns.ip(&["addr", "add", &format!("{a}.{b}.{c}.1/24"), "dev", "lo"])?;
    let dir = tempfile::Builder::new()
        .prefix("lvs-scale-")
        .tempdir_in("/run")
        .map_err(|e| e.to_string())?;
    let socket_dir = dir.path().display().to_string();
    let directord_files = Files {
        plain: plain.director_toml(&socket_dir),
        changed: changed.director_toml(&socket_dir),
        checked: checked.director_toml(&socket_dir),
    };
    let keepalived_files = Files {
        plain: plain.keepalived_conf(),
        changed: changed.keepalived_conf(),
        checked: checked.keepalived_conf(),
    };
    let reals: Vec<usize> = (0..base.reals).collect();
    let targets = reals
        .iter()
        .map(|&r| {
            let http = checked.check(r) == Some(Check::Http);
            (SocketAddr::V4(scale::real_address(r)), http)
        })
        .collect();
    let listener = Listener::start(&ns, targets)?;
    let family = lvs_ipvs::IpvsClient::connect()
        .map(|client| client.family_id())
        .map_err(|e| format!("IPVS family: {e}"))?;

    println!(
        "{} services, {} real-server entries, {} real servers ({} in groups of two); \
         reload changes {changes} weights; checks every {} s: {} TCP + {} HTTP real servers, \
         schedule {:.0} checks/s per entry, {:.0}/s per real server",
        plain.services.len(),
        plain.entry_count(),
        plain.distinct_reals(),
        plain.services.iter().filter(|s| s.group.is_some()).count(),
        base.interval_secs,
        reals
            .iter()
            .filter(|&&r| checked.check(r) == Some(Check::Tcp))
            .count(),
        reals
            .iter()
            .filter(|&&r| checked.check(r) == Some(Check::Http))
            .count(),
        plain.entry_count() as f64 / f64::from(base.interval_secs),
        plain.distinct_reals() as f64 / f64::from(base.interval_secs),
    );

    let mut lists = None;
    let mut results = Vec::new();
    for daemon in [Daemon::Directord, Daemon::Keepalived] {
        let files = match daemon {
            Daemon::Directord => &directord_files,
            Daemon::Keepalived => &keepalived_files,
        };
        let run = Run {
            ns: &ns,
            dir: dir.path(),
            daemon,
        };
        let figures = run.measure(
            files,
            [&plain, &changed, &checked],
            &listener,
            family,
            &mut lists,
        )?;
        results.push(figures);
    }
    let (lvsadm_list, ipvsadm_list) = lists.unwrap_or_default();
    let check_config = check_config_times(&ns, dir.path(), &base)?;

    let [ours, theirs] = [&results[0], &results[1]];
    println!(
        "\n{:<58} {:>12} {:>12} {:>10}",
        "", "directord", "keepalived", "k / d"
    );
    let row = |what: &str, d: f64, k: f64, unit: &str| {
        let ratio = if d > 0.0 {
            format!("{:.2}x", k / d)
        } else {
            "-".to_owned()
        };
        println!("{what:<58} {d:>10.2}{unit:<2} {k:>10.2}{unit:<2} {ratio:>10}");
    };
    row(
        "start to the full table (no checks)",
        ours.start,
        theirs.start,
        "s",
    );
    row(
        "reload, 1 % of weights changed, until the table is right",
        ours.reload,
        theirs.reload,
        "s",
    );
    let landed = |f: &Figures| median(f.reloads.iter().filter_map(|r| r.landed).collect());
    row(
        &format!(
            "  until its last IPVS write (capture, no polling; median of {})",
            1 + MORE_RELOADS
        ),
        landed(ours),
        landed(theirs),
        "s",
    );
    for (figures, name) in [(ours, "directord"), (theirs, "keepalived")] {
        let all: Vec<String> = figures
            .reloads
            .iter()
            .map(|r| match r.landed {
                Some(t) => format!("{t:.2} s/{}w", r.writes),
                None => "-".to_owned(),
            })
            .collect();
        println!("{:<58} {}", format!("    {name}, each"), all.join(" "));
    }
    let step =
        |pick: fn(&Reload) -> Option<f64>| median(ours.reloads.iter().filter_map(pick).collect());
    println!(
        "{:<58} {:.3} / {:.3} / {:.3} s",
        "    directord: parse / config in place / diff+netlink (med.)",
        step(|r| r.parsed),
        step(|r| Some(r.swapped? - r.parsed?)),
        step(|r| Some(r.landed? - r.swapped?)),
    );
    row(
        "  one read of /proc/net/ip_vs, the bench's poll (full table)",
        ours.table_read,
        theirs.table_read,
        "s",
    );
    row(
        &format!("  IPVS writes sent during the reload ({changes} changes)"),
        ours.reload_writes as f64,
        theirs.reload_writes as f64,
        "",
    );
    row(
        "  IPVS writes per changed weight (goal: 1)",
        ours.reload_writes as f64 / changes.max(1) as f64,
        theirs.reload_writes as f64 / changes.max(1) as f64,
        "",
    );
    println!(
        "{:<58} {:>12} {:>12}",
        "  whole-table dumps by the daemon during the reload",
        ours.reload_dumps,
        theirs.reload_dumps
    );
    row(
        "  IPVS requests of any kind (dumps: tcpdump may drop some)",
        ours.reload_requests as f64,
        theirs.reload_requests as f64,
        "",
    );
    row(
        &format!("resident memory after {} reloads", 1 + MORE_RELOADS),
        ours.rss_mb,
        theirs.rss_mb,
        "MB",
    );
    println!(
        "{:<58} {:>12}",
        "  directord within the goal (<= 60 MB and <= keepalived's)",
        if ours.rss_mb <= 60.0_f64.min(theirs.rss_mb) {
            "yes"
        } else {
            "no"
        }
    );
    row(
        "checks per second (5 s interval)",
        ours.checks_per_s,
        theirs.checks_per_s,
        "",
    );
    let schedule = plain.entry_count() as f64 / f64::from(base.interval_secs);
    row(
        "  of the per-entry schedule",
        ours.checks_per_s / schedule * 100.0,
        theirs.checks_per_s / schedule * 100.0,
        "%",
    );
    // directord probes each (real server, check) once for all the services listing it.
    let per_real = plain.distinct_reals() as f64 / f64::from(base.interval_secs);
    row(
        "  of the per-real-server schedule (one probe per real server)",
        ours.checks_per_s / per_real * 100.0,
        theirs.checks_per_s / per_real * 100.0,
        "%",
    );
    row(
        "  real servers checked at least once per interval",
        ours.on_schedule_reals * 100.0,
        theirs.on_schedule_reals * 100.0,
        "%",
    );
    row(
        "  CPU (of UML's one CPU)",
        ours.cpu_percent,
        theirs.cpu_percent,
        "%",
    );
    row(
        "  CPU ms per 1,000 checks",
        ours.cpu_percent * 10_000.0 / ours.checks_per_s,
        theirs.cpu_percent * 10_000.0 / theirs.checks_per_s,
        "",
    );
    row(
        "  guest CPU idle",
        ours.idle * 100.0,
        theirs.idle * 100.0,
        "%",
    );
    row(
        "lvsadm -Ln vs ipvsadm -Ln, full table (median of 3)",
        lvsadm_list,
        ipvsadm_list,
        "s",
    );
    for (what, time) in [
        ("lvsadm table (directord's status, every page)", ours.status),
        (
            "  one status page of 100 services (goal < 0.2 s)",
            ours.status_page,
        ),
        (
            "  quorum (vrrpd's liveness and track_services probe)",
            ours.quorum,
        ),
        ("  ping", ours.ping),
    ] {
        if let Some(time) = time {
            println!("{what:<58} {time:>10.3}s  (no keepalived equivalent)");
        }
    }
    row(
        "check-config, valid (keepalived --config-test)",
        check_config.valid.0,
        check_config.valid.1,
        "s",
    );
    row(
        &format!(
            "check-config, {} errors (keepalived: its valid file)",
            plain.entry_count()
        ),
        check_config.broken,
        check_config.valid.1,
        "s",
    );
    println!(
        "(ratio k / d above 1: directord is faster or smaller; one run of each daemon in one \
         UML boot, UML timings vary up to ±30 %)"
    );
    drop(listener);
    Ok(())
}

struct Run<'a> {
    ns: &'a Netns,
    dir: &'a Path,
    daemon: Daemon,
}

impl Run<'_> {
    fn config_path(&self) -> PathBuf {
        self.dir.join(match self.daemon {
            Daemon::Directord => "director.toml",
            Daemon::Keepalived => "keepalived.conf",
        })
    }

    /// Replaces the config file at once, as an operator's editor or deploy tool would.
    fn install(&self, text: &str) -> Result<(), String> {
        let path = self.config_path();
        let staged = path.with_extension("new");
        fs::write(&staged, text).map_err(|e| e.to_string())?;
        fs::rename(&staged, &path).map_err(|e| e.to_string())
    }

    fn spawn(&self) -> Result<Guarded, String> {
        let config = self.config_path();
        let log = self.dir.join(format!("{}.log", self.daemon.name()));
        let argv: Vec<std::ffi::OsString> = match self.daemon {
            Daemon::Directord => vec![
                lvs_tests::workspace_bin("directord").into(),
                "--config".into(),
                config.into(),
            ],
            Daemon::Keepalived => lvs_tests::keepalived::checker_argv(&config, self.dir),
        };
        let log_file = fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut command = self.ns.command(&argv);
        command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file);
        Guarded::spawn(&mut command)
    }

    fn with_log(&self, why: &str) -> String {
        let log = self.dir.join(format!("{}.log", self.daemon.name()));
        let text = fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "{}: {why}\n--- last lines of its log ---\n{}",
            self.daemon.name(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    /// Waits until the kernel's table (as the daemon's namespace sees it) is `table`.
    fn wait_table(&self, daemon: &mut Guarded, table: &Table) -> Result<(), String> {
        let expected = expected_lines(table);
        let pid = daemon.pid();
        let mut last = String::new();
        let reached = wait_for(TABLE_LIMIT, || {
            let got = kernel_lines(pid).ok()?;
            if got == expected {
                return Some(());
            }
            last = format!(
                "{} of {} lines, {} differ",
                got.len(),
                expected.len(),
                got.iter().zip(&expected).filter(|(a, b)| a != b).count()
            );
            None
        });
        match reached {
            Some(()) => Ok(()),
            None => {
                let status = daemon.try_status();
                Err(self.with_log(&format!(
                    "the table never became the expected one ({last}; exited: {status:?})"
                )))
            }
        }
    }

    /// [`MORE_RELOADS`] reloads, alternating back to the plain file and to the changed one,
    /// each left alone for [`RELOAD_QUIET`], then confirmed by reading the table.
    fn timed_reloads(
        &self,
        daemon: &mut Guarded,
        files: &Files,
        [plain, changed]: [&Table; 2],
        family: u16,
    ) -> Result<Vec<Reload>, String> {
        let capture = Capture::start(self.ns, "nlmon0", self.dir)?;
        let mut hups = Vec::with_capacity(MORE_RELOADS);
        for i in 0..MORE_RELOADS {
            let (text, table) = if i % 2 == 0 {
                (&files.plain, plain)
            } else {
                (&files.changed, changed)
            };
            self.install(text)?;
            hups.push(unix_now());
            self.reload(daemon);
            std::thread::sleep(RELOAD_QUIET);
            self.wait_table(daemon, table)?;
        }
        let requests = capture.finish(family)?;
        self.ns.ip(&["link", "del", "nlmon0"])?;
        Ok(self.split_reloads(&hups, &requests))
    }

    /// Each reload's writes (those after its SIGHUP and before the next one) and its steps.
    fn split_reloads(&self, hups: &[f64], requests: &[IpvsRequest]) -> Vec<Reload> {
        let log = fs::read_to_string(self.dir.join(format!("{}.log", self.daemon.name())))
            .unwrap_or_default();
        let logged = |needle: &str| -> Vec<f64> {
            log.lines()
                .filter(|line| line.contains(needle))
                .filter_map(|line| seconds_of_day(line.split_whitespace().next()?))
                .collect()
        };
        let (parsed, swapped) = (logged("service block(s) parsed"), logged("reloaded "));
        hups.iter()
            .enumerate()
            .map(|(i, &hup)| {
                let end = hups.get(i + 1).copied().unwrap_or(f64::INFINITY);
                let writes: Vec<f64> = requests
                    .iter()
                    .map(|r| (r, r.at.as_secs_f64()))
                    .filter(|(r, at)| r.writes() && (hup..end).contains(at))
                    .map(|(_, at)| at)
                    .collect();
                // The log has the time of day only; a run does not cross midnight.
                let day = hup - hup % 86_400.0;
                let after = |times: &[f64]| {
                    times
                        .iter()
                        .map(|t| day + t - hup)
                        .find(|&t| t >= 0.0 && hup + t < end)
                };
                Reload {
                    writes: writes.len(),
                    landed: writes.iter().copied().reduce(f64::max).map(|t| t - hup),
                    parsed: after(&parsed),
                    swapped: after(&swapped),
                }
            })
            .collect()
    }

    fn reload(&self, daemon: &Guarded) {
        // directord reloads on SIGHUP; so does keepalived's parent, which tells its checker.
        daemon.signal(libc::SIGHUP);
    }

    fn stop(&self, mut daemon: Guarded) -> Result<(), String> {
        daemon.end();
        self.ns.run(&["ipvsadm", "-C"])?;
        // Lets the stopped daemon's connections finish before the next one is counted.
        std::thread::sleep(Duration::from_secs(2));
        Ok(())
    }

    fn measure(
        &self,
        files: &Files,
        [plain, changed, checked]: [&Table; 3],
        listener: &Listener,
        family: u16,
        lists: &mut Option<(f64, f64)>,
    ) -> Result<Figures, String> {
        let name = self.daemon.name();
        let mut figures = Figures::default();
        self.ns.run(&["ipvsadm", "-C"])?;

        // 1. Start to the full table.
        self.install(&files.plain)?;
        let started = Instant::now();
        let mut daemon = self.spawn()?;
        self.wait_table(&mut daemon, plain)?;
        figures.start = started.elapsed().as_secs_f64();
        println!("{name}: full table after {:.2} s", figures.start);
        if lists.is_none() {
            *lists = Some(list_times(self.ns)?);
        }

        // 2. Reload with 1 % of the weights changed, captured.
        let capture = Capture::start(self.ns, "nlmon0", self.dir)?;
        self.install(&files.changed)?;
        let started = Instant::now();
        let hup = unix_now();
        self.reload(&daemon);
        self.wait_table(&mut daemon, changed)?;
        figures.reload = started.elapsed().as_secs_f64();
        // Whatever the daemon still sends after the table is right counts too.
        std::thread::sleep(Duration::from_secs(2));
        let requests = capture.finish(family)?;
        self.ns.ip(&["link", "del", "nlmon0"])?;
        let mut by_command: HashMap<String, usize> = HashMap::new();
        for request in &requests {
            *by_command
                .entry(format!(
                    "{:?}{}",
                    request.cmd,
                    if request.dump { " (dump)" } else { "" }
                ))
                .or_default() += 1;
        }
        figures.reload_writes = requests.iter().filter(|r| r.writes()).count();
        figures.reload_dumps = requests
            .iter()
            .filter(|r| r.dump && r.port == daemon.pid())
            .count();
        figures.reload_requests = requests.len();
        figures.reloads = self.split_reloads(&[hup], &requests);
        let read = Instant::now();
        kernel_lines(daemon.pid())?;
        figures.table_read = read.elapsed().as_secs_f64();
        figures
            .reloads
            .extend(self.timed_reloads(&mut daemon, files, [plain, changed], family)?);
        for (i, reload) in figures.reloads.iter().enumerate() {
            println!("{name}: reload {} {reload:?}", i + 1);
        }
        let mut commands: Vec<_> = by_command.into_iter().collect();
        commands.sort();
        println!(
            "{name}: reload until the table was right {:.2} s; requests: {}",
            figures.reload,
            commands
                .iter()
                .map(|(cmd, count)| format!("{cmd} {count}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if requests
            .iter()
            .any(|r| matches!(r.cmd, IpvsCmd::Flush | IpvsCmd::DelService))
        {
            println!("{name}: the reload flushed or deleted services");
        }

        // 3. Memory after the reload.
        let pids = process_tree(daemon.pid());
        figures.rss_mb = pids
            .iter()
            .filter_map(|&p| lvs_tests::pair::rss_kb(p))
            .sum::<u64>() as f64
            / 1024.0;
        if self.daemon == Daemon::Directord {
            figures.status = Some(status_time(self.ns, &self.config_path())?);
            let socket = self.dir.join("directord.sock");
            let page = serde_json::json!({"cmd": "status", "limit": 100});
            figures.status_page = Some(control_time(&socket, &page)?);
            let quorum = serde_json::json!({"cmd": "quorum"});
            figures.quorum = Some(control_time(&socket, &quorum)?);
            figures.ping = Some(control_time(&socket, &serde_json::json!({"cmd": "ping"}))?);
        }
        self.stop(daemon)?;

        // 4. Checks at a 5 s interval.
        self.install(&files.checked)?;
        let mut daemon = self.spawn()?;
        self.wait_table(&mut daemon, checked)?;
        std::thread::sleep(WARM_UP);
        if let Some(status) = daemon.try_status() {
            return Err(self.with_log(&format!("exited during warm-up: {status}")));
        }
        let pids = process_tree(daemon.pid());
        let cpu_before: u64 = pids.iter().filter_map(|&p| cpu_ticks(p)).sum();
        let idle_before = guest_idle()?;
        let before = listener.snapshot();
        let window_start = Instant::now();
        std::thread::sleep(WINDOW);
        let after = listener.snapshot();
        let cpu_after: u64 = pids.iter().filter_map(|&p| cpu_ticks(p)).sum();
        let idle_after = guest_idle()?;
        let elapsed = window_start.elapsed().as_secs_f64();
        if let Some(status) = daemon.try_status() {
            return Err(self.with_log(&format!("exited while measured: {status}")));
        }
        if self.daemon == Daemon::Directord {
            // Health changes make directord recompute and write the table on its one thread:
            // at this size they are what can hold the probes back.
            let log = self.dir.join("directord.log");
            let text = fs::read_to_string(&log).unwrap_or_default();
            let count = |what: &str| text.lines().filter(|l| l.contains(what)).count();
            println!(
                "directord during the checks: {} down, {} up transitions logged; last lines:\n{}",
                count(") is down (").max(count(" is down (")),
                count(" is up ("),
                text.lines().rev().take(5).collect::<Vec<_>>().join("\n")
            );
        }
        let mut per_target: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        let abandoned = per_target.pop().unwrap_or(0);
        // Targets are real servers 0.., in order.
        let share_of = |kind: Check, due: u64| {
            let of_kind: Vec<u64> = per_target
                .iter()
                .enumerate()
                .filter(|(r, _)| checked.check(*r) == Some(kind))
                .map(|(_, &c)| c)
                .collect();
            of_kind.iter().filter(|&&c| c >= due).count() as f64 * 100.0
                / of_kind.len().max(1) as f64
        };
        let total: u64 = per_target.iter().sum();
        // At least once per interval; one fewer allows for where the window cuts the period.
        let due = WINDOW.as_secs() / u64::from(checked.spec.interval_secs) - 1;
        figures.checks_per_s = total as f64 / elapsed;
        figures.on_schedule_reals =
            per_target.iter().filter(|&&c| c >= due).count() as f64 / per_target.len() as f64;
        figures.cpu_percent =
            (cpu_after - cpu_before) as f64 / clock_ticks_per_second() / elapsed * 100.0;
        figures.idle =
            (idle_after.0 - idle_before.0) as f64 / (idle_after.1 - idle_before.1).max(1) as f64;
        println!(
            "{name}: {:.0} checks/s, {:.1} % of real servers on schedule (TCP {:.1} %, HTTP \
             {:.1} %), CPU {:.1} %, {abandoned} HTTP connections abandoned, {} processes",
            figures.checks_per_s,
            figures.on_schedule_reals * 100.0,
            share_of(Check::Tcp, due),
            share_of(Check::Http, due),
            figures.cpu_percent,
            pids.len()
        );
        self.stop(daemon)?;
        Ok(figures)
    }
}

/// The generated table as /proc/net/ip_vs lists it (hex address:port, weight), sorted.
fn expected_lines(table: &Table) -> Vec<String> {
    let hex = |a: SocketAddrV4| format!("{:08X}:{:04X}", u32::from(*a.ip()), a.port());
    let mut lines = Vec::with_capacity(table.services.len() + table.entry_count());
    for service in &table.services {
        let key = hex(service.address);
        lines.push(format!("TCP {key} {}", service.scheduler));
        for entry in &service.entries {
            lines.push(format!(
                "TCP {key} -> {} {}",
                hex(entry.address),
                entry.weight
            ));
        }
    }
    lines.sort();
    lines
}

/// The kernel's table in the namespace of `pid`, in [`expected_lines`]' form. /proc, not
/// netlink: the reload's capture then holds the daemon's requests only.
fn kernel_lines(pid: u32) -> Result<Vec<String>, String> {
    let text = fs::read_to_string(format!("/proc/{pid}/net/ip_vs")).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    let mut service = String::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["TCP", key, scheduler, ..] => {
                service = (*key).to_owned();
                lines.push(format!("TCP {key} {scheduler}"));
            }
            ["->", dest, _forward, weight, ..] if !service.is_empty() => {
                lines.push(format!("TCP {service} -> {dest} {weight}"));
            }
            _ => {}
        }
    }
    lines.sort();
    Ok(lines)
}

fn timed(ns: &Netns, argv: &[&str]) -> Result<f64, String> {
    let mut command = ns.command(argv);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let started = Instant::now();
    command.status().map_err(|e| format!("{argv:?}: {e}"))?;
    Ok(started.elapsed().as_secs_f64())
}

/// The middle sample (the upper of two); NaN when there are none.
fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `lvsadm -Ln` and `ipvsadm -Ln` on the loaded table, medians.
fn list_times(ns: &Netns) -> Result<(f64, f64), String> {
    let lvsadm = lvs_tests::workspace_bin("lvsadm");
    let lvsadm = lvsadm.to_str().ok_or("utf-8 path")?;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..LIST_REPEATS {
        ours.push(timed(ns, &[lvsadm, "-Ln"])?);
        theirs.push(timed(ns, &["ipvsadm", "-Ln"])?);
    }
    Ok((median(ours), median(theirs)))
}

/// `lvsadm table`: directord's status of every service and real server, over its socket.
fn status_time(ns: &Netns, config: &Path) -> Result<f64, String> {
    let lvsadm = lvs_tests::workspace_bin("lvsadm");
    let lvsadm = lvsadm.to_str().ok_or("utf-8 path")?;
    let config = config.to_str().ok_or("utf-8 path")?;
    let samples = (0..LIST_REPEATS)
        .map(|_| timed(ns, &[lvsadm, "table", "--config", config]))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(median(samples))
}

/// One request on a daemon's control socket, median of three round trips.
fn control_time(socket: &Path, request: &serde_json::Value) -> Result<f64, String> {
    let samples = (0..LIST_REPEATS)
        .map(|_| {
            let started = Instant::now();
            lvs_tests::daemon::control(socket, request).map(|_| started.elapsed().as_secs_f64())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(median(samples))
}

struct CheckConfig {
    /// directord's valid file, keepalived's.
    valid: (f64, f64),
    /// directord's file with an error per entry.
    broken: f64,
}

/// `lvsadm check-config` (valid, and with an error per entry) and `keepalived --config-test`
/// on the table with checks, medians of three.
fn check_config_times(ns: &Netns, dir: &Path, base: &Spec) -> Result<CheckConfig, String> {
    let lvsadm = lvs_tests::workspace_bin("lvsadm");
    let lvsadm = lvsadm.to_str().ok_or("utf-8 path")?;
    let checked = Spec {
        checks: Some(Mix::REALISTIC),
        ..base.clone()
    };
    let broken = Spec {
        broken: true,
        ..checked.clone()
    };
    let socket_dir = dir.display().to_string();
    let valid_toml = dir.join("valid.toml");
    let broken_toml = dir.join("broken.toml");
    let keepalived_conf = dir.join("valid-keepalived.conf");
    fs::write(&valid_toml, checked.table().director_toml(&socket_dir))
        .map_err(|e| e.to_string())?;
    fs::write(&broken_toml, broken.table().director_toml(&socket_dir))
        .map_err(|e| e.to_string())?;
    fs::write(&keepalived_conf, checked.table().keepalived_conf()).map_err(|e| e.to_string())?;
    let [valid_toml, broken_toml, keepalived_conf] =
        [&valid_toml, &broken_toml, &keepalived_conf].map(|p| p.display().to_string());
    // Each run's exit status is checked once: valid passes, broken fails with every error.
    let out = Command::new(lvsadm)
        .args(["check-config", "--config", &broken_toml])
        .output()
        .map_err(|e| e.to_string())?;
    let errors = String::from_utf8_lossy(&out.stderr).lines().count();
    if out.status.success() || errors != broken.table().entry_count() {
        return Err(format!(
            "check-config on the broken file: {:?}, {errors} lines",
            out.status
        ));
    }
    let mut ours = Vec::new();
    let mut broken_times = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..LIST_REPEATS {
        ours.push(timed(
            ns,
            &[lvsadm, "check-config", "--config", &valid_toml],
        )?);
        broken_times.push(timed(
            ns,
            &[lvsadm, "check-config", "--config", &broken_toml],
        )?);
        theirs.push(timed(
            ns,
            &[
                "keepalived",
                "--config-test",
                "--use-file",
                &keepalived_conf,
            ],
        )?);
    }
    if let Err(e) = ns.run(&[
        "keepalived",
        "--config-test",
        "--use-file",
        &keepalived_conf,
    ]) {
        println!("keepalived --config-test refused its file: {e}");
    }
    Ok(CheckConfig {
        valid: (median(ours), median(theirs)),
        broken: median(broken_times),
    })
}

/// Seconds since the Unix epoch, as the capture stamps its records.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `2026-12-05T06:47:17.180593Z` (a log line's first word) as seconds since midnight UTC.
fn seconds_of_day(stamp: &str) -> Option<f64> {
    let time = stamp.split_once('T')?.1.strip_suffix('Z')?;
    let mut parts = time.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}
