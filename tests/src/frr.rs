//! FRR (Debian `frr` 8.4) inside a test's namespace: zebra, bgpd and bfdd of one instance
//! (`-N <pathspace>`, so several run side by side), configured through vtysh as an operator
//! would, so a snippet that FRR refuses fails the test.
//!
//! The daemons drop to the `frr` user: their directory `/run/frr/<name>` is made theirs. Each
//! runs in the foreground under a [`Guarded`], ended by its PID when the instance drops.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::netns::Netns;
use crate::process::{self, Guarded, wait_for};

const DAEMONS: &str = "/usr/lib/frr";

/// Why FRR cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    for tool in [
        format!("{DAEMONS}/zebra"),
        format!("{DAEMONS}/bgpd"),
        format!("{DAEMONS}/bfdd"),
    ] {
        if !std::path::Path::new(&tool).exists() {
            return Some(format!("{tool} is not installed (Debian package frr)"));
        }
    }
    if process::which("vtysh").is_none() {
        return Some("vtysh is not installed (Debian package frr)".to_owned());
    }
    None
}

/// One FRR instance in a namespace. Field order: the daemons end before the directory goes.
pub struct Frr {
    name: String,
    netns_name: String,
    daemons: Vec<Guarded>,
    dir: PathBuf,
}

impl Frr {
    /// Starts zebra, then bgpd and bfdd, in `netns`, with empty configs; returns once vtysh
    /// reaches all three.
    pub fn start(netns: &Netns) -> Result<Frr, String> {
        let name = netns.name().to_owned();
        let dir = PathBuf::from(format!("/run/frr/{name}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        process::run(Command::new("chown").args(["frr:frr", &dir.to_string_lossy()]))?;
        let mut frr = Frr {
            name: name.clone(),
            netns_name: name,
            daemons: Vec::new(),
            dir,
        };
        for daemon in ["zebra", "bgpd", "bfdd"] {
            frr.spawn(netns, daemon)?;
            // bgpd and bfdd connect to zebra's socket, which must be there first.
            if daemon == "zebra" {
                let api = frr.dir.join("zserv.api");
                wait_for(Duration::from_secs(10), || api.exists().then_some(()))
                    .ok_or("zebra did not open zserv.api")?;
            }
        }
        wait_for(Duration::from_secs(10), || {
            frr.vtysh(&["show daemons"])
                .ok()
                .filter(|out| ["zebra", "bgpd", "bfdd"].iter().all(|d| out.contains(d)))
        })
        .ok_or(format!("vtysh -N {} does not reach the daemons", frr.name))?;
        Ok(frr)
    }

    fn spawn(&mut self, netns: &Netns, daemon: &str) -> Result<(), String> {
        let binary = format!("{DAEMONS}/{daemon}");
        let pid = self.dir.join(format!("{daemon}.pid"));
        let log = self.dir.join(format!("{daemon}.log"));
        let mut command = netns.command(&[
            binary.as_str(),
            "-N",
            &self.name,
            "-i",
            &pid.to_string_lossy(),
            "--log",
            &format!("file:{}", log.display()),
        ]);
        command.stdout(Stdio::null()).stderr(Stdio::null());
        self.daemons.push(Guarded::spawn(&mut command)?);
        Ok(())
    }

    /// vtysh with one `-c` per command; fails on a non-zero exit.
    pub fn vtysh(&self, commands: &[&str]) -> Result<String, String> {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.netns_name, "vtysh", "-N", &self.name])
            .args(commands.iter().flat_map(|c| ["-c", c]));
        process::run_stdout(&mut command)
    }

    /// Applies a config text through `vtysh -f`, each line to the daemon that owns it, as
    /// `frr-reload` and an operator's paste do; an unknown or refused line fails.
    pub fn apply(&self, config: &str) -> Result<(), String> {
        let file = self.dir.join("applied.conf");
        std::fs::write(&file, config).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut command = Command::new("ip");
        command.args([
            "netns",
            "exec",
            &self.netns_name,
            "vtysh",
            "-N",
            &self.name,
            "-f",
            &file.to_string_lossy(),
        ]);
        let output = command.output().map_err(|e| e.to_string())?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // vtysh -f reports each refused line as `line N: % ...` (and exits 2); a missing
        // /etc/frr/<name>/vtysh.conf is only a notice.
        if !output.status.success() || said.lines().any(|l| l.starts_with("line ")) {
            return Err(format!(
                "FRR refused the config ({}):\n{said}\n{config}",
                output.status
            ));
        }
        Ok(())
    }

    /// kill -9 of every daemon of the instance at once: a crashed routing engine, which
    /// sends no NOTIFICATION and withdraws nothing itself.
    pub fn kill(&self) {
        for daemon in &self.daemons {
            daemon.signal(libc::SIGKILL);
        }
    }

    /// The PIDs of the instance's daemons.
    pub fn pids(&self) -> Vec<u32> {
        self.daemons.iter().map(Guarded::pid).collect()
    }

    /// What `daemon` (zebra, bgpd, bfdd) has logged so far.
    pub fn log(&self, daemon: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{daemon}.log"))).unwrap_or_default()
    }

    /// The BFD peers whose session is up, from `show bfd peers json`.
    pub fn bfd_up(&self) -> Result<Vec<String>, String> {
        let peers = self.json("show bfd peers json")?;
        let mut up: Vec<String> = peers
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p.get("status").and_then(Value::as_str) == Some("up"))
            .filter_map(|p| p.get("peer").and_then(Value::as_str).map(str::to_owned))
            .collect();
        up.sort();
        Ok(up)
    }

    /// `show ... json`, parsed.
    pub fn json(&self, show: &str) -> Result<Value, String> {
        let out = self.vtysh(&[show])?;
        serde_json::from_str(&out).map_err(|e| format!("{show}: {e}: {out}"))
    }

    /// The next hops FRR has installed in the kernel for `prefix` (empty when it has no
    /// route to it), from `show ip route PREFIX json`.
    pub fn fib_next_hops(&self, prefix: &str) -> Result<Vec<String>, String> {
        let family = if prefix.contains(':') { "ipv6" } else { "ip" };
        let found = self.json(&format!("show {family} route {prefix} json"))?;
        let mut hops = Vec::new();
        for route in found
            .get(prefix)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if route.get("installed") != Some(&Value::Bool(true)) {
                continue;
            }
            for hop in route
                .get("nexthops")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if hop.get("fib") == Some(&Value::Bool(true))
                    && let Some(ip) = hop.get("ip").and_then(Value::as_str)
                {
                    hops.push(ip.to_owned());
                }
            }
        }
        hops.sort();
        Ok(hops)
    }
}

/// `lvsadm routing-config --engine ENGINE` (frr or bird) for a director's config, AS 65001.
pub fn snippet(config: &std::path::Path, engine: &str) -> Result<String, String> {
    let mut command = Command::new(crate::workspace_bin("lvsadm"));
    command
        .args([
            "routing-config",
            "--engine",
            engine,
            "--asn",
            "65001",
            "--config",
        ])
        .arg(config);
    process::run_stdout(&mut command)
}

/// The test router's BGP side: AS 65000 at `router_id`, a session to each of `directors`
/// (AS 65001, connect retried every second), ECMP over up to 8 paths; with `bfd`, a BFD
/// session to each with the `profile` the directors' snippet names, at its 100 ms x 3.
pub fn router_config(router_id: &str, directors: &[&str], profile: &str, bfd: bool) -> String {
    let neighbors: String = directors
        .iter()
        .map(|d| {
            let bfd = if bfd {
                format!(" neighbor {d} bfd profile {profile}\n")
            } else {
                String::new()
            };
            format!(" neighbor {d} remote-as 65001\n neighbor {d} timers connect 1\n{bfd}")
        })
        .collect();
    let profile = if bfd {
        format!(
            "bfd\n profile {profile}\n  receive-interval 100\n  transmit-interval 100\n exit\nexit\n"
        )
    } else {
        String::new()
    };
    format!(
        "{profile}router bgp 65000\n bgp router-id {router_id}\n no bgp ebgp-requires-policy\n\
         {neighbors} address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\nexit\n"
    )
}

/// A director's BGP side: AS 65001 at `address`, one session to the router (AS 65000) with
/// the snippet's BFD profile, then `snippet` (`lvsadm routing-config --engine frr`).
pub fn director_config(address: &str, router: &str, profile: &str, snippet: &str) -> String {
    format!(
        "router bgp 65001\n bgp router-id {address}\n no bgp ebgp-requires-policy\n \
         neighbor {router} remote-as 65000\n neighbor {router} timers connect 1\n \
         neighbor {router} advertisement-interval 0\n neighbor {router} bfd profile {profile}\n\
         exit\n{snippet}"
    )
}

impl Drop for Frr {
    fn drop(&mut self) {
        // Protocol daemons first, zebra last.
        while let Some(mut daemon) = self.daemons.pop() {
            daemon.end();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
