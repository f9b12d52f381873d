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

/// Whether the netns lane and these tools are here; a skip is printed, and is a failure when
/// lanes are required.
fn can_run(tools: &[&str]) -> bool {
    if !lane_available("netns", netns_missing()) {
        return false;
    }
    for tool in tools {
        if lvs_tests::process::which(tool).is_none() {
            assert!(!lvs_tests::lanes_required(), "{tool} is required");
            eprintln!("SKIPPED: {tool} missing");
            return false;
        }
    }
    true
}

#[test]
fn haproxy_follows_our_agent() -> Result<(), String> {
    if !can_run(&["haproxy", "socat", "busybox"]) {
        return Ok(());
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
    // Two samples are needed for a first figure.
    let before = wait_for(Duration::from_secs(10), || {
        ask(&ns).and_then(|l| reply_percent(&l))
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
    let after = reply_percent(&line).ok_or_else(|| format!("no percentage in {line:?}"))?;
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

/// The first word of the agent's reply (ready, drain or maint), once the reply has settled on
/// `want` (signals and file changes take effect at the next sample at the latest).
fn settles_on(ns: &Netns, want: &str) -> Result<String, String> {
    let mut last = None;
    wait_for(Duration::from_secs(10), || {
        last = ask(ns);
        last.clone().filter(|line| line.starts_with(want))
    })
    .ok_or_else(|| format!("the agent never replied {want:?}; last reply {last:?}"))
}

#[test]
fn signals_drain_and_undrain_a_running_agent() -> Result<(), String> {
    if !can_run(&["busybox"]) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ns = Netns::new("sig")?;
    let load = dir.path().join("load");
    std::fs::write(&load, "60\n").map_err(|e| e.to_string())?;
    let config = agent_config(
        dir.path(),
        &format!("report = \"command\"\ncommand = \"cat {}\"", load.display()),
    )?;
    let agent = start_agent(&ns, &config)?;
    println!("computed: {}", settles_on(&ns, "ready 60% up")?.trim_end());

    agent.signal(libc::SIGUSR1);
    println!("SIGUSR1: {}", settles_on(&ns, "drain 60% up")?.trim_end());
    // The file's maint is stronger than the signalled drain; its ready is not.
    let override_file = dir.path().join("override");
    std::fs::write(&override_file, "maint\n").map_err(|e| e.to_string())?;
    println!("file maint: {}", settles_on(&ns, "maint")?.trim_end());
    std::fs::write(&override_file, "ready\n").map_err(|e| e.to_string())?;
    println!("file ready: {}", settles_on(&ns, "drain")?.trim_end());
    // A reload keeps the signalled drain.
    agent.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    println!("after SIGHUP: {}", settles_on(&ns, "drain")?.trim_end());

    agent.signal(libc::SIGUSR2);
    // Back to the file's ready (the ceiling), then, with the file gone, to the measurement.
    println!("SIGUSR2: {}", settles_on(&ns, "ready 100% up")?.trim_end());
    std::fs::remove_file(&override_file).map_err(|e| e.to_string())?;
    println!("no file: {}", settles_on(&ns, "ready 60% up")?.trim_end());
    let mut agent = agent;
    assert!(
        agent.try_status().is_none(),
        "the agent must survive the signals: {:?}",
        agent.try_status()
    );
    Ok(())
}

/// The weight in an agent reply ("ready 40% up" -> 40).
fn reply_percent(line: &str) -> Option<u32> {
    line.split_whitespace()
        .find_map(|w| w.strip_suffix('%'))
        .and_then(|p| p.parse().ok())
}

#[test]
fn established_connections_lower_the_reported_weight() -> Result<(), String> {
    if !can_run(&["socat", "busybox"]) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ns = Netns::new("conn")?;
    // The command pins the other headroom at 100%, so the connection count alone moves it.
    let config = agent_config(
        dir.path(),
        "report = \"command\"\ncommand = \"echo 100\"\n\
         [agent.connections]\nports = [8080]\nmax_connections = 10",
    )?;
    let _agent = start_agent(&ns, &config)?;
    let weight_becomes = |want: u32| {
        let mut last = None;
        wait_for(Duration::from_secs(10), || {
            last = ask(&ns);
            last.as_deref()
                .and_then(reply_percent)
                .filter(|p| *p == want)
        })
        .ok_or_else(|| format!("the agent never reported {want}%; last reply {last:?}"))
    };
    weight_becomes(100)?;
    let _server = ns.spawn(&[
        "socat",
        "TCP-LISTEN:8080,bind=127.0.0.1,reuseaddr,fork",
        "SYSTEM:sleep 120",
    ])?;
    wait_for(Duration::from_secs(5), || {
        ns.run(&["socat", "-u", "/dev/null", "TCP:127.0.0.1:8080"])
            .ok()
    })
    .ok_or("the socat server never listened")?;
    // Each client holds one established connection; the server side's socket has local port
    // 8080 and is the one counted.
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(ns.spawn(&["socat", "TCP:127.0.0.1:8080", "SYSTEM:sleep 120"])?);
    }
    weight_becomes(40)?;
    println!(
        "6 of 10 connections: {}",
        ask(&ns).unwrap_or_default().trim_end()
    );
    clients.truncate(3);
    weight_becomes(70)?;
    println!(
        "3 of 10 connections: {}",
        ask(&ns).unwrap_or_default().trim_end()
    );
    clients.clear();
    weight_becomes(100)?;
    Ok(())
}
