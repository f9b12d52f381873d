//! netns lane: feedbackd's agent against a peer we did not write (haproxy's agent-check), and
//! against real CPU load.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use lvs_tests::netns::Netns;
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::{lane_available, netns_missing, workspace_bin};

fn agent_config(dir: &Path, extra: &str) -> Result<std::path::PathBuf, String> {
    let path = dir.join("agent.toml");
    let text = format!(
        "[control]\nsocket_dir = \"{dir}\"\n\n[agent]\nlisten = \"127.0.0.1:3333\"\noverride_file = \"{dir}/override\"\n{extra}\n",
        dir = dir.display()
    );
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Ok(path)
}

fn start_agent(ns: &Netns, config: &Path) -> Result<Guarded, String> {
    let feedbackd = workspace_bin("feedbackd");
    ns.spawn(&[
        feedbackd.as_os_str(),
        "--agent".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ])
}

/// One agent-check reply, read as haproxy would.
fn ask(ns: &Netns) -> Option<String> {
    ns.stdout(&["busybox", "nc", "127.0.0.1", "3333"])
        .ok()
        .filter(|line| line.ends_with('\n'))
}

/// haproxy's view of server s1: (weight, status) from `show stat`.
fn haproxy_server(ns: &Netns, socket: &Path) -> Option<(String, String)> {
    let out = ns
        .sh(&format!(
            "echo 'show stat' | socat stdio unix-connect:{}",
            socket.display()
        ))
        .ok()?;
    let header: Vec<&str> = out
        .lines()
        .next()?
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("web,s1,"))?
        .split(',')
        .collect();
    let field = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| row.get(i))
            .map(|v| (*v).to_owned())
    };
    Some((field("weight")?, field("status")?))
}

#[test]
fn haproxy_follows_our_agent() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    for tool in ["haproxy", "socat", "busybox"] {
        if lvs_tests::process::which(tool).is_none() {
            assert!(!lvs_tests::lanes_required(), "{tool} is required");
            eprintln!("SKIPPED: {tool} missing");
            return Ok(());
        }
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ns = Netns::new("hap")?;
    let load = dir.path().join("load");
    std::fs::write(&load, "40\n").map_err(|e| e.to_string())?;
    let config = agent_config(
        dir.path(),
        &format!("report = \"command\"\ncommand = \"cat {}\"", load.display()),
    )?;
    let _agent = start_agent(&ns, &config)?;
    wait_for(Duration::from_secs(5), || ask(&ns)).ok_or("the agent never answered")?;

    let stats = dir.path().join("haproxy.sock");
    let haproxy_cfg = dir.path().join("haproxy.cfg");
    std::fs::write(
        &haproxy_cfg,
        format!(
            "global\n  stats socket {} mode 600 level admin\n\
             defaults\n  mode tcp\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n\
             backend web\n  server s1 127.0.0.1:8080 weight 100 check inter 300ms agent-check agent-port 3333 agent-inter 300ms\n",
            stats.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    // A real server for haproxy's own check, so its status column is meaningful.
    let _server = ns.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        dir.path().to_str().unwrap_or_default(),
    ])?;
    let _haproxy = ns.spawn(&[
        "haproxy",
        "-db",
        "-f",
        haproxy_cfg.to_str().unwrap_or_default(),
    ])?;

    // haproxy keeps the weight column while draining and says so in the status column.
    let settled = |want_weight: &str, want_status: &str| {
        wait_for(Duration::from_secs(10), || {
            haproxy_server(&ns, &stats).filter(|(w, s)| {
                (want_weight == "*" || w == want_weight) && s.starts_with(want_status)
            })
        })
    };
    settled("40", "UP").ok_or_else(|| {
        format!(
            "haproxy did not take 40%: {:?}",
            haproxy_server(&ns, &stats)
        )
    })?;
    std::fs::write(&load, "70\n").map_err(|e| e.to_string())?;
    settled("70", "UP").ok_or_else(|| {
        format!(
            "haproxy did not follow to 70%: {:?}",
            haproxy_server(&ns, &stats)
        )
    })?;
    std::fs::write(dir.path().join("override"), "drain\n").map_err(|e| e.to_string())?;
    settled("*", "DRAIN")
        .ok_or_else(|| format!("haproxy did not drain: {:?}", haproxy_server(&ns, &stats)))?;
    std::fs::write(dir.path().join("override"), "").map_err(|e| e.to_string())?;
    settled("70", "UP").ok_or_else(|| {
        format!(
            "haproxy did not come back up: {:?}",
            haproxy_server(&ns, &stats)
        )
    })?;
    std::fs::write(dir.path().join("override"), "down #disk full\n").map_err(|e| e.to_string())?;
    wait_for(Duration::from_secs(10), || {
        haproxy_server(&ns, &stats).filter(|(_, s)| s.starts_with("DOWN"))
    })
    .ok_or_else(|| {
        format!(
            "haproxy did not take the server down: {:?}",
            haproxy_server(&ns, &stats)
        )
    })?;
    Ok(())
}

#[test]
fn the_reported_percentage_drops_under_cpu_load() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ns = Netns::new("cpu")?;
    let config = agent_config(dir.path(), "report = \"cpu\"\nwindow = \"2s\"")?;
    let _agent = start_agent(&ns, &config)?;
    let percent = |line: &str| -> Option<u32> {
        line.split_whitespace()
            .find_map(|w| w.strip_suffix('%'))
            .and_then(|p| p.parse().ok())
    };
    // Two samples are needed for a first figure.
    let before = wait_for(Duration::from_secs(10), || {
        ask(&ns).and_then(|l| percent(&l))
    })
    .ok_or("the agent never reported a percentage")?;
    let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let mut burners = Vec::new();
    for _ in 0..cpus * 2 {
        burners.push(ns.spawn(&["sh", "-c", "while :; do :; done"])?);
    }
    std::thread::sleep(Duration::from_secs(4));
    let mut line = String::new();
    let mut stream = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "busybox",
            "nc",
            "127.0.0.1",
            "3333",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    stream
        .stdout
        .take()
        .ok_or("stdout")?
        .read_to_string(&mut line)
        .map_err(|e| e.to_string())?;
    let _ = stream.wait();
    drop(burners);
    let after = percent(&line).ok_or_else(|| format!("no percentage in {line:?}"))?;
    println!("idle-based weight before load {before}%, under load {after}%");
    assert!(
        after <= 15,
        "every CPU busy must report the floor (10%), got {after}% ({line:?})"
    );
    assert!(
        after < before || before <= 15,
        "the percentage must drop: {before}% -> {after}%"
    );
    Ok(())
}
