//! Benchmark, inside one UML boot: loading and listing a large IPVS table with `ipvsadm` and
//! with `lvsadm`, from the same restore file, flushing in between. Prints medians and ratios.
//!
//! Run: `cargo build --release --bins && cargo bench -p lvs-tests --bench ipvs_restore`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use lvs_tests::netns::Netns;
use lvs_tests::uml::{self, Case};

const REPEATS: usize = 3;

fn main() -> ExitCode {
    uml::bench(&[
        Case::new("restore_and_list", restore_and_list).with_timeout(Duration::from_secs(1500))
    ])
}

/// `services` TCP services on 192.0.2.100 ports 1.., each with `dests` NAT destinations.
fn restore_file(services: u32, dests: u32) -> String {
    let mut text = String::new();
    for port in 1..=services {
        let _ = writeln!(text, "-A -t 192.0.2.100:{port} -s wrr");
        for d in 0..dests {
            let _ = writeln!(
                text,
                "-a -t 192.0.2.100:{port} -r 198.51.100.{}:80 -m -w 1",
                11 + d
            );
        }
    }
    text
}

fn timed(ns: &Netns, argv: &[&str], input: Option<&Path>) -> Result<Duration, String> {
    let mut command = ns.command(argv);
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    if let Some(input) = input {
        command.stdin(std::fs::File::open(input).map_err(|e| e.to_string())?);
    } else {
        command.stdin(Stdio::null());
    }
    let started = Instant::now();
    let output = command.output().map_err(|e| format!("{argv:?}: {e}"))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "{argv:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(elapsed)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn restore_and_list() -> Result<(), String> {
    let lvsadm = lvs_tests::workspace_bin("lvsadm");
    let lvsadm = lvsadm.to_str().ok_or("utf-8 path")?;
    let ns = Netns::new("bench")?;
    ns.ip(&["link", "add", "dummy0", "type", "dummy"])?;
    ns.addr("dummy0", "198.51.100.1/24")?;
    ns.ip(&["addr", "add", "192.0.2.100/32", "dev", "lo"])?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;

    println!(
        "{:<22} {:>12} {:>12} {:>8}   {:>12} {:>12} {:>8}",
        "table", "ipvsadm -R", "lvsadm -R", "ratio", "ipvsadm -Sn", "lvsadm -Sn", "ratio"
    );
    for (services, dests) in [(1000, 10), (10000, 1)] {
        let file = dir.path().join(format!("{services}x{dests}.rules"));
        std::fs::write(&file, restore_file(services, dests)).map_err(|e| e.to_string())?;
        let expected_lines = services * (dests + 1);
        let mut restore = [Vec::new(), Vec::new()];
        let mut list = [Vec::new(), Vec::new()];
        for _ in 0..REPEATS {
            for (i, tool) in ["ipvsadm", lvsadm].into_iter().enumerate() {
                Command::new("ip")
                    .args(["netns", "exec", ns.name(), "ipvsadm", "-C"])
                    .status()
                    .map_err(|e| e.to_string())?;
                restore[i].push(timed(&ns, &[tool, "-R"], Some(&file))?);
                let saved = ns.stdout(&["ipvsadm", "-Sn"])?;
                if saved.lines().count() != expected_lines as usize {
                    return Err(format!(
                        "{tool} -R loaded {} lines, expected {expected_lines}",
                        saved.lines().count()
                    ));
                }
                list[i].push(timed(&ns, &[tool, "-Sn"], None)?);
            }
        }
        let [ipvsadm_r, lvsadm_r] = restore.map(median);
        let [ipvsadm_l, lvsadm_l] = list.map(median);
        println!(
            "{:<22} {:>10.0}ms {:>10.0}ms {:>7.1}x   {:>10.0}ms {:>10.0}ms {:>7.1}x",
            format!("{services} x {dests} dests"),
            ipvsadm_r.as_secs_f64() * 1e3,
            lvsadm_r.as_secs_f64() * 1e3,
            ipvsadm_r.as_secs_f64() / lvsadm_r.as_secs_f64(),
            ipvsadm_l.as_secs_f64() * 1e3,
            lvsadm_l.as_secs_f64() * 1e3,
            ipvsadm_l.as_secs_f64() / lvsadm_l.as_secs_f64(),
        );
    }
    println!(
        "(medians of {REPEATS}; ratio = ipvsadm time / lvsadm time, above 1 means lvsadm is faster)"
    );
    Command::new("ip")
        .args(["netns", "exec", ns.name(), "ipvsadm", "-C"])
        .status()
        .map_err(|e| e.to_string())?;
    Ok(())
}
