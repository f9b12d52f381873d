//! UML lane: feedback end to end. Agents on three real servers, feedbackd and directord on the
//! director; the IPVS weights in the kernel follow the agents.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use lvs_tests::netns::{Netns, veth};
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::uml::{self, Case};

fn main() -> ExitCode {
    uml::main(&[Case::new(
        "ipvs_weights_follow_the_agents",
        ipvs_weights_follow_the_agents,
    )
    .with_timeout(Duration::from_secs(150))])
}

const REALS: [&str; 3] = ["198.51.100.11", "198.51.100.12", "198.51.100.13"];

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The weight `ipvsadm -Ln` shows for a real server.
fn kernel_weight(director: &Netns, real: &str) -> Option<u32> {
    let table = director.stdout(&["ipvsadm", "-Ln"]).ok()?;
    let line = table.lines().find(|l| l.contains(&format!("{real}:80")))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// feedbackd's scrape (control.metrics + 3): the weight it handed directord for the busy
/// server is the one in the kernel, and the scrape has what monitoring/ queries of feedbackd.
fn feedback_weight_in_the_metrics(director: &Netns, kernel: &[u32; 3]) -> Result<(), String> {
    let url = "http://127.0.0.1:9545/metrics";
    let metrics = director.stdout(&["busybox", "wget", "-q", "-O", "-", url])?;
    let line = format!("feedbackd_weight{{real=\"{}:80\"}} {}", REALS[0], kernel[0]);
    if !metrics.lines().any(|l| l == line) {
        return Err(format!("missing {line}:\n{metrics}"));
    }
    lvs_tests::promtool::check_metrics(&metrics)?;
    lvs_tests::promtool::check_exported(&metrics, &["feedbackd_"])
}

fn ipvs_weights_follow_the_agents() -> Result<(), String> {
    let run = std::path::PathBuf::from(format!("/run/lvs-feedback-test-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let director = Netns::new("d")?;
    director.bridge("br1")?;
    director.ip(&["addr", "add", "198.51.100.1/24", "dev", "br1"])?;
    director.ip(&["addr", "add", "192.0.2.100/32", "dev", "lo"])?;
    let feedbackd = lvs_tests::workspace_bin("feedbackd");
    let directord = lvs_tests::workspace_bin("directord");

    let mut reals = Vec::new();
    let mut agents: Vec<Option<Guarded>> = Vec::new();
    for (i, ip) in REALS.iter().enumerate() {
        let real = Netns::new(&format!("r{i}"))?;
        let port = format!("dp{i}");
        veth(&real, "r0", &director, &port)?;
        director.attach(&port, "br1")?;
        real.addr("r0", &format!("{ip}/24"))?;
        let dir = run.join(format!("r{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        // Each agent reports the figure in its own file, so one server can be "busy" while the
        // others are idle on UML's single shared CPU.
        write(&dir.join("load"), "90\n")?;
        write(
            &dir.join("agent.toml"),
            &format!(
                "[control]\nsocket_dir = \"{d}\"\n[agent]\nlisten = \"{ip}:3333\"\nreport = \"command\"\n\
                 command = \"cat {d}/load\"\noverride_file = \"{d}/override\"\n",
                d = dir.display()
            ),
        )?;
        let config = dir.join("agent.toml");
        agents.push(Some(real.spawn(&[
            feedbackd.as_os_str(),
            "--agent".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ])?));
        reals.push(real);
    }

    let mut config = format!(
        "[control]\nsocket_dir = \"{}\"\nmetrics = \"127.0.0.1:9542\"\n\n[[virtual_server]]\naddress = \"192.0.2.100:80\"\nforwarding = \"dr\"\n",
        run.display()
    );
    for ip in REALS {
        config.push_str(&format!(
            "\n[[virtual_server.real]]\naddress = \"{ip}:80\"\nweight = 100\n"
        ));
    }
    config.push_str(
        "\n[feedback]\ninterval = \"500ms\"\ntimeout = \"400ms\"\nsmoothing = 1.0\nmin_change_interval = \"500ms\"\n\
         hysteresis = \"1%\"\nlost_after = \"4s\"\n",
    );
    for ip in REALS {
        config.push_str(&format!(
            "\n[[feedback.agent]]\nreal = \"{ip}:80\"\naddress = \"{ip}:3333\"\n"
        ));
    }
    let config_path = run.join("director.toml");
    write(&config_path, &config)?;
    let _directord = director.spawn(&[
        directord.as_os_str(),
        "--config".as_ref(),
        config_path.as_os_str(),
    ])?;
    wait_for(Duration::from_secs(10), || {
        kernel_weight(&director, REALS[0])
    })
    .ok_or("directord never built the table")?;
    let _feedbackd = director.spawn(&[
        feedbackd.as_os_str(),
        "--config".as_ref(),
        config_path.as_os_str(),
    ])?;

    let weights = || REALS.map(|ip| kernel_weight(&director, ip).unwrap_or(u32::MAX));
    wait_for(Duration::from_secs(20), || {
        (weights() == [90, 90, 90]).then_some(())
    })
    .ok_or_else(|| format!("the agents' 90% never reached the kernel: {:?}", weights()))?;

    // Real server 0 gets busy: its weight falls below the others.
    write(&run.join("r0/load"), "20\n")?;
    wait_for(Duration::from_secs(20), || {
        let w = weights();
        (w[0] < w[1] && w[0] < w[2] && w[0] <= 30).then_some(())
    })
    .ok_or_else(|| {
        format!(
            "a busy server's weight must fall below the others: {:?}",
            weights()
        )
    })?;
    println!("busy server: {:?}", weights());

    // A malformed reply changes nothing.
    write(&run.join("r1/load"), "not-a-number\n")?;
    std::thread::sleep(Duration::from_secs(3));
    let w = weights();
    if w[1] == 0 {
        return Err(format!("a malformed agent zeroed a healthy server: {w:?}"));
    }

    // A silent agent: after lost_after the server goes back to its configured weight, never 0.
    agents[2] = None;
    wait_for(Duration::from_secs(20), || {
        (weights()[2] == 100).then_some(())
    })
    .ok_or_else(|| {
        format!(
            "a lost agent must fall back to the configured weight: {:?}",
            weights()
        )
    })?;
    println!("after losing agent 2: {:?}", weights());
    let status: serde_json::Value = lvs_control::call(
        &run.join("feedbackd.sock"),
        &serde_json::json!({"cmd": "status"}),
        Duration::from_secs(3),
    )
    .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&status).unwrap_or_default()
    );
    feedback_weight_in_the_metrics(&director, &weights())?;
    drop(reals);
    Ok(())
}
