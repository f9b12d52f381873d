//! Benchmark, inside one UML boot: directord's health checker against keepalived's, on the same
//! targets. N TCP-connect and N HTTP checks at a 1 s interval (timeout 1 s) against one local
//! listener serving N TCP ports and N HTTP ports; each checker runs alone while we read its CPU
//! time and RSS from /proc (keepalived: the parent and its checker child together) and the
//! listener counts the checks each target receives, which gives checks/s and whether every
//! target was checked on schedule. Prints a row per run, then medians and the CPU ratio.
//!
//! Run: `cargo build --release --bins && cargo bench -p lvs-tests --bench checkbench`
//! (one size only: `-- --exact checks_100`, `checks_1000` or `checks_5000`).

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use lvs_tests::check_targets::Listener;
use lvs_tests::netns::Netns;
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::procstat::{
    clock_ticks_per_second, context_switches, cpu_ticks, guest_idle, process_tree,
};
use lvs_tests::uml::{self, Case};

/// Runs of each checker per size, alternating, so a disturbance of the shared machine does not
/// land on one checker only; the summary takes medians.
const REPEATS: usize = 3;
/// LVS_CHECKBENCH_REPEATS overrides REPEATS (1 for a quick look).
fn repeats() -> usize {
    std::env::var("LVS_CHECKBENCH_REPEATS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(REPEATS)
}

/// Time after the table is complete before measuring: the first round of checks and the
/// checker's start-up allocations are not the steady state.
const WARM_UP: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(20);
/// The listener's address and where its two port ranges start; IPVS real servers name them.
const LISTENER: &str = "198.51.100.1";
const TCP_BASE: u16 = 10000;
const HTTP_BASE: u16 = 20000;
const VIP: &str = "192.0.2.100";

fn main() -> ExitCode {
    uml::bench(&[
        // Below the sizes the issue names: a load one UML CPU carries with room to spare, so
        // the steady-state cost of a check compares without either checker saturated.
        Case::new("checks_100", || compare(100)).with_timeout(Duration::from_secs(600)),
        Case::new("checks_1000", || compare(1000)).with_timeout(Duration::from_secs(900)),
        Case::new("checks_5000", || compare(5000)).with_timeout(Duration::from_secs(1200)),
    ])
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Checker {
    Directord,
    Keepalived,
}

impl Checker {
    fn name(self) -> &'static str {
        match self {
            Checker::Directord => "directord",
            Checker::Keepalived => "keepalived",
        }
    }
}

/// What one run measured.
struct Run {
    checker: Checker,
    checks_per_s: f64,
    /// Share of the 2N targets checked at least WINDOW/interval - 1 times in the window.
    on_schedule: f64,
    /// Fewest checks any target received in the window.
    min_checks: u64,
    cpu_percent: f64,
    rss_mb: f64,
    /// Destinations with a weight above 0 at the end of the window, of 2N.
    up: usize,
    /// HTTP connections per second the listener closed without a whole request.
    abandoned_per_s: f64,
    listener_cpu_percent: f64,
    /// Times the checker's threads were switched out, per check: its wake-ups, which UML makes
    /// dear (a host context switch each).
    switches_per_check: f64,
    /// Share of UML's CPU left idle: near 0 means the figures are those of a saturated CPU.
    idle: f64,
}

fn compare(n: u16) -> Result<(), String> {
    lvs_tests::check_targets::raise_fd_limit(65536)?;
    let ns = Netns::new("checkbench")?;
    ns.ip(&["addr", "add", &format!("{LISTENER}/24"), "dev", "lo"])?;
    // TCP ports first, then HTTP ports.
    let listener_ip: std::net::IpAddr = LISTENER.parse().map_err(|e| format!("{e}"))?;
    let targets = (0..n)
        .map(|i| (SocketAddr::new(listener_ip, TCP_BASE + i), false))
        .chain((0..n).map(|i| (SocketAddr::new(listener_ip, HTTP_BASE + i), true)))
        .collect();
    let listener = Listener::start(&ns, targets)?;
    let dir = tempfile::Builder::new()
        .prefix("lvs-checkbench-")
        .tempdir_in("/run")
        .map_err(|e| e.to_string())?;
    let directord_config = dir.path().join("director.toml");
    fs::write(&directord_config, directord_config_text(dir.path(), n))
        .map_err(|e| e.to_string())?;
    let keepalived_config = dir.path().join("keepalived.conf");
    fs::write(&keepalived_config, keepalived_config_text(n)).map_err(|e| e.to_string())?;

    println!(
        "N = {n}: {n} TCP-connect + {n} HTTP checks, interval 1 s, timeout 1 s; expected {} checks/s",
        2 * u32::from(n)
    );
    println!(
        "{:<11} {:>9} {:>12} {:>10} {:>10} {:>7} {:>7} {:>11} {:>12} {:>7} {:>12}",
        "checker",
        "checks/s",
        "on schedule",
        "min/target",
        "abandoned/s",
        "CPU %",
        "RSS MB",
        "up",
        "listener CPU%",
        "idle %",
        "switch/check"
    );
    let mut runs = Vec::new();
    for _ in 0..repeats() {
        for checker in [Checker::Directord, Checker::Keepalived] {
            let config = match checker {
                Checker::Directord => &directord_config,
                Checker::Keepalived => &keepalived_config,
            };
            let run = measure(&ns, &listener, checker, config, dir.path(), n)?;
            println!(
                "{:<11} {:>9.0} {:>11.1}% {:>10} {:>11.0} {:>7.1} {:>7.1} {:>11} {:>12.1} {:>7.1} {:>12.2}",
                checker.name(),
                run.checks_per_s,
                run.on_schedule * 100.0,
                run.min_checks,
                run.abandoned_per_s,
                run.cpu_percent,
                run.rss_mb,
                format!("{}/{}", run.up, 2 * usize::from(n)),
                run.listener_cpu_percent,
                run.idle * 100.0,
                run.switches_per_check,
            );
            runs.push(run);
        }
    }
    summary(n, &runs);
    drop(listener);
    Ok(())
}

fn summary(n: u16, runs: &[Run]) {
    let median_of = |checker: Checker, value: fn(&Run) -> f64| {
        let mut values: Vec<f64> = runs
            .iter()
            .filter(|r| r.checker == checker)
            .map(value)
            .collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!(
        "\n{:>6} {:<11} {:>10} {:>12} {:>8} {:>8} {:>18}",
        "N", "checker", "checks/s", "on schedule", "CPU %", "RSS MB", "CPU ms/1000 checks"
    );
    for checker in [Checker::Directord, Checker::Keepalived] {
        println!(
            "{n:>6} {:<11} {:>10.0} {:>11.1}% {:>8.1} {:>8.1} {:>18.0}",
            checker.name(),
            median_of(checker, |r| r.checks_per_s),
            median_of(checker, |r| r.on_schedule) * 100.0,
            median_of(checker, |r| r.cpu_percent),
            median_of(checker, |r| r.rss_mb),
            median_of(checker, cost_per_1000),
        );
    }
    let ratio = median_of(Checker::Keepalived, |r| r.cpu_percent)
        / median_of(Checker::Directord, |r| r.cpu_percent);
    let checks_ratio = median_of(Checker::Directord, |r| r.checks_per_s)
        / median_of(Checker::Keepalived, |r| r.checks_per_s);
    let cost_ratio = median_of(Checker::Keepalived, cost_per_1000)
        / median_of(Checker::Directord, cost_per_1000);
    println!(
        "N = {n}: CPU keepalived / directord = {ratio:.2}x, per check {cost_ratio:.2}x \
         (medians of {}); checks/s directord / keepalived = {checks_ratio:.2}; \
         CPU % is of UML's one CPU, shared with the listener and the kernel's TCP work",
        repeats()
    );
}

/// CPU milliseconds a checker spent per 1,000 checks the listener saw: the cost per check,
/// which still compares when a saturated CPU holds both checkers below the schedule.
fn cost_per_1000(run: &Run) -> f64 {
    run.cpu_percent * 10_000.0 / run.checks_per_s
}

/// Starts `checker`, waits for its table and warm-up, measures one window, stops it and
/// empties the table for the next run.
fn measure(
    ns: &Netns,
    listener: &Listener,
    checker: Checker,
    config: &Path,
    dir: &Path,
    n: u16,
) -> Result<Run, String> {
    let log = dir.join(format!("{}.log", checker.name()));
    let argv: Vec<std::ffi::OsString> = match checker {
        Checker::Directord => vec![
            lvs_tests::workspace_bin("directord").into(),
            "--config".into(),
            config.into(),
        ],
        Checker::Keepalived => lvs_tests::keepalived::checker_argv(config, dir),
    };
    let log_file = fs::File::create(&log).map_err(|e| e.to_string())?;
    let mut command = ns.command(&argv);
    command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file);
    let mut process = Guarded::spawn(&mut command)?;
    let with_log = |why: String| {
        let text = fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        // The whole log goes beside the case's results on the host (the guest's /run dies
        // with it); a checker starting up logs a line per server, more than a tail shows.
        let kept = std::env::var_os("LVS_UML_RESULTS")
            .map(|dir| Path::new(&dir).join(format!("{}-{n}.log", checker.name())))
            .filter(|kept| fs::write(kept, &text).is_ok())
            .map_or_else(String::new, |kept| {
                format!(" (whole log: {})", kept.display())
            });
        format!(
            "{}: {why}\n--- last lines of its log{kept} ---\n{}",
            checker.name(),
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    };

    let destinations = 2 * usize::from(n);
    let started = Instant::now();
    wait_for(Duration::from_secs(120), || {
        (up_destinations(ns).ok()? == destinations).then_some(())
    })
    .ok_or_else(|| with_log(format!("the table never held {destinations} destinations")))?;
    let loaded = started.elapsed();
    std::thread::sleep(WARM_UP);
    if let Some(status) = process.try_status() {
        return Err(with_log(format!("exited during warm-up: {status}")));
    }

    let pids = process_tree(process.pid());
    let cpu_before: u64 = pids.iter().filter_map(|&p| cpu_ticks(p)).sum();
    let switches_before: u64 = pids.iter().map(|&p| context_switches(p)).sum();
    let listener_before = cpu_ticks(std::process::id()).unwrap_or(0);
    let idle_before = guest_idle()?;
    let tracer = std::env::var_os("LVS_CHECKBENCH_STRACE")
        .map(|_| Strace::attach(&pids, &dir.join(format!("strace-{}.txt", checker.name()))))
        .transpose()?;
    let checks_before = listener.snapshot();
    let window_start = Instant::now();
    std::thread::sleep(WINDOW);
    let checks_after = listener.snapshot();
    let syscalls = tracer.map(Strace::finish).transpose()?;
    let cpu_after: u64 = pids.iter().filter_map(|&p| cpu_ticks(p)).sum();
    let switches_after: u64 = pids.iter().map(|&p| context_switches(p)).sum();
    let listener_after = cpu_ticks(std::process::id()).unwrap_or(0);
    let idle_after = guest_idle()?;
    let elapsed = window_start.elapsed().as_secs_f64();
    let rss_kb: u64 = pids
        .iter()
        .filter_map(|&p| lvs_tests::pair::rss_kb(p))
        .sum();
    let up = up_destinations(ns)?;
    let latencies = match checker {
        Checker::Directord => probe_latencies(dir).unwrap_or_else(|e| format!("; status: {e}")),
        Checker::Keepalived => String::new(),
    };
    if let Some(status) = process.try_status() {
        return Err(with_log(format!("exited while measured: {status}")));
    }

    let mut per_target: Vec<u64> = checks_after
        .iter()
        .zip(&checks_before)
        .map(|(a, b)| a - b)
        .collect();
    let abandoned = per_target.pop().unwrap_or(0);
    let total: u64 = per_target.iter().sum();
    if total == 0 {
        return Err(with_log(
            "the listener saw no checks in the window".to_owned(),
        ));
    }
    // A 1 s interval gives WINDOW checks per target; one fewer allows for where the window
    // cuts the period.
    let due = WINDOW.as_secs() - 1;
    let on_time = per_target.iter().filter(|&&c| c >= due).count();
    let ticks_per_s = clock_ticks_per_second();
    if let Some((calls, table)) = syscalls {
        println!(
            "  {} under strace: {:.1} syscalls per check ({calls} in {total} checks); the CPU and \
             rate figures of a traced run are not comparable\n{table}",
            checker.name(),
            calls as f64 / total as f64
        );
    }
    process.end();
    println!(
        "  ({} table of {destinations} loaded and all up after {:.1}s; {} processes measured{latencies})",
        checker.name(),
        loaded.as_secs_f64(),
        pids.len()
    );
    ns.run(&["ipvsadm", "-C"])?;
    // Lets connections of the stopped checker finish before the next one is counted.
    std::thread::sleep(Duration::from_secs(2));
    Ok(Run {
        checker,
        checks_per_s: total as f64 / elapsed,
        on_schedule: on_time as f64 / per_target.len() as f64,
        min_checks: per_target.iter().copied().min().unwrap_or(0),
        cpu_percent: (cpu_after - cpu_before) as f64 / ticks_per_s / elapsed * 100.0,
        rss_mb: rss_kb as f64 / 1024.0,
        up,
        abandoned_per_s: abandoned as f64 / elapsed,
        listener_cpu_percent: (listener_after - listener_before) as f64 / ticks_per_s / elapsed
            * 100.0,
        switches_per_check: (switches_after - switches_before) as f64 / total as f64,
        idle: (idle_after.0 - idle_before.0) as f64 / (idle_after.1 - idle_before.1).max(1) as f64,
    })
}

/// The median and slowest of directord's last probe per server, from its status: how long a
/// check takes under this load, whatever the CPU figures say.
fn probe_latencies(dir: &Path) -> Result<String, String> {
    // A status of thousands of servers from a checker that has the CPU saturated takes
    // seconds (it reads the kernel's table too).
    let status: serde_json::Value = lvs_control::call(
        &dir.join("directord.sock"),
        &serde_json::json!({ "cmd": "status" }),
        Duration::from_secs(60),
    )
    .map_err(|e| e.to_string())?;
    let mut latencies: Vec<f64> = status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|service| service["servers"].as_array().into_iter().flatten())
        .filter_map(|server| server["latency_ms"].as_f64())
        .collect();
    if latencies.is_empty() {
        return Ok("; no probe latencies in its status".to_owned());
    }
    latencies.sort_by(f64::total_cmp);
    Ok(format!(
        "; last probe per server: median {:.1} ms, 99th percentile {:.1} ms, slowest {:.1} ms",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        latencies[latencies.len() - 1]
    ))
}

/// Destinations in the namespace's IPVS table with a weight above 0 (directord quiesces a
/// failed server to 0, keepalived removes it).
fn up_destinations(ns: &Netns) -> Result<usize, String> {
    let table = ns.stdout(&["ipvsadm", "-Sn"])?;
    Ok(table
        .lines()
        .filter(|l| l.starts_with("-a ") && !l.ends_with(" -w 0"))
        .count())
}

/// keepalived's checkers default to `retry 1`: a server goes down on its second failure in a
/// row, as `lvsadm import` maps it (`fall = 2`); directord's own default is ldirectord's
/// `fall = 1`, which would compare a stricter checker with a laxer one.
fn directord_config_text(dir: &Path, n: u16) -> String {
    let mut text = format!("[control]\nsocket_dir = \"{}\"\n", dir.display());
    for (port, base, check) in [
        (
            80,
            TCP_BASE,
            r#"{ type = "connect", interval = "1s", timeout = "1s", fall = 2, retry_delay = "1s" }"#,
        ),
        (
            8080,
            HTTP_BASE,
            r#"{ type = "http", path = "/", expect_status = ["200"], interval = "1s", timeout = "1s", fall = 2, retry_delay = "1s" }"#,
        ),
    ] {
        let _ = write!(
            text,
            "\n[[virtual_server]]\naddress = \"{VIP}:{port}\"\nscheduler = \"wrr\"\n\
             forwarding = \"nat\"\ncheck = {check}\n"
        );
        for i in 0..n {
            let _ = write!(
                text,
                "\n[[virtual_server.real]]\naddress = \"{LISTENER}:{}\"\nweight = 1\n",
                base + i
            );
        }
    }
    text
}

/// The same services and checks in keepalived's terms: delay_loop is its interval,
/// connect_timeout its timeout.
fn keepalived_config_text(n: u16) -> String {
    let mut text = String::from("global_defs {\n  router_id checkbench\n}\n");
    for (port, base, check) in [
        (80, TCP_BASE, "TCP_CHECK {\n      connect_timeout 1\n    }"),
        (
            8080,
            HTTP_BASE,
            "HTTP_GET {\n      url {\n        path /\n        status_code 200\n      }\n      connect_timeout 1\n    }",
        ),
    ] {
        let _ = write!(
            text,
            "virtual_server {VIP} {port} {{\n  delay_loop 1\n  lb_algo wrr\n  lb_kind NAT\n  protocol TCP\n"
        );
        for i in 0..n {
            let _ = write!(
                text,
                "  real_server {LISTENER} {} {{\n    weight 1\n    {check}\n  }}\n",
                base + i
            );
        }
        text.push_str("}\n");
    }
    text
}

/// `strace -c` attached to a checker's processes for the window (LVS_CHECKBENCH_STRACE set):
/// the syscalls a check costs, which UML makes the bulk of a check's CPU.
struct Strace {
    process: Guarded,
    output: std::path::PathBuf,
}

impl Strace {
    fn attach(pids: &[u32], output: &Path) -> Result<Self, String> {
        let mut command = std::process::Command::new("strace");
        command.args(["-c", "-f", "-qq", "-o"]).arg(output);
        for pid in pids {
            command.arg("-p").arg(pid.to_string());
        }
        command.stdin(Stdio::null()).stdout(Stdio::null());
        let process = Guarded::spawn(&mut command)?;
        // strace needs a moment to attach to every thread.
        std::thread::sleep(Duration::from_secs(1));
        Ok(Strace {
            process,
            output: output.to_owned(),
        })
    }

    /// Detaches; the total number of calls and strace's table.
    fn finish(self) -> Result<(u64, String), String> {
        // SAFETY: kill(2) of the strace we started; SIGINT makes it detach and write its table.
        unsafe { libc::kill(self.process.pid() as i32, libc::SIGINT) };
        wait_for(Duration::from_secs(30), || {
            fs::read_to_string(&self.output)
                .ok()
                .filter(|t| t.contains("total"))
        })
        .map(|table| {
            let calls = table
                .lines()
                .find(|l| l.ends_with("total"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
                .unwrap_or(0);
            (calls, table)
        })
        .ok_or_else(|| "strace wrote no table".to_owned())
    }
}
