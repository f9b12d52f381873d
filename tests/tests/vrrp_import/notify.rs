//! keepalived's notify scripts and notify FIFO, with keepalived as the oracle: one
//! keepalived.conf with per-state scripts (`notify_master` ... `notify_stop`), `notify`,
//! a quoted script with arguments, a sync group with its own scripts, `notify_fifo` and
//! `notify_fifo_script`, `enable_script_security` with one script world-writable (never run; vrrpd counts each
//! refusal in `vrrp_notify_failures_total{cause="insecure"}`), run by keepalived and then by vrrpd on what `lvsadm import --strict`
//! makes of it, on the same host, through the same state changes: start (BACKUP then
//! MASTER), the tracked link down (FAULT, spread over the group), up again (BACKUP, MASTER)
//! and a graceful stop (STOP). Every script records its name and arguments in one file; the
//! FIFO is read by the test. Each phase's calls and FIFO lines, as sets (the scripts run
//! concurrently), must be keepalived's, and the FIFO must be left in place (or not) as
//! keepalived leaves it.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use lvs_tests::keepalived::Keepalived;
use lvs_tests::netns::Netns;
use lvs_tests::process::wait_for;

/// VRRPv3 at 100 ms, so each phase settles in well under a second.
const CONFIG: &str = r#"global_defs {
  enable_script_security
  script_user root
  notify_fifo @DIR@/fifo
  notify_fifo_script @DIR@/fifo_script
}
vrrp_sync_group G1 {
  group {
    VI_1
    VI_2
  }
  notify_master @DIR@/group_master
  notify_backup @DIR@/group_backup
  notify_fault @DIR@/group_fault
  notify_stop @DIR@/group_stop
  notify @DIR@/group_notify
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 150
  version 3
  advert_int 0.1
  track_interface {
    trk0
  }
  virtual_ipaddress {
    192.0.2.100/24
  }
  notify_master @DIR@/master
  notify_backup @DIR@/backup
  notify_fault "@DIR@/fault with 'two words' and more"
  notify_stop @DIR@/stop
  notify @DIR@/notify
}
vrrp_instance VI_2 {
  state BACKUP
  interface eth0
  virtual_router_id 52
  priority 140
  version 3
  advert_int 0.1
  virtual_ipaddress {
    192.0.2.101/24
  }
  notify @DIR@/notify
}
vrrp_instance VI_3 {
  state BACKUP
  interface eth0
  virtual_router_id 53
  priority 130
  version 3
  advert_int 0.1
  virtual_ipaddress {
    192.0.2.102/24
  }
  notify_master @DIR@/master
  notify @DIR@/notify
}
"#;

const SCRIPTS: &[&str] = &[
    "fifo_script",
    "group_master",
    "group_backup",
    "group_fault",
    "group_stop",
    "group_notify",
    "master",
    "backup",
    "fault",
    "stop",
    "notify",
];

/// What one implementation did: per phase, the script calls and the FIFO lines, sorted; and
/// whether the FIFO was gone a second after it stopped.
#[derive(Debug, PartialEq)]
struct Recording {
    phases: Vec<(&'static str, Vec<String>, Vec<String>)>,
    fifo_removed: bool,
}

enum Daemon {
    Keepalived(Keepalived),
    Vrrpd(lvs_tests::process::Guarded),
}

#[test]
fn notify_scripts_and_fifo_are_called_as_keepalived_calls_them() -> Result<(), String> {
    let Some((dir, lan)) = super::scratch_lan(&[("nf", "192.0.2.91/24")])? else {
        return Ok(());
    };
    let dir = dir.path();
    let host = lan.host(0);
    host.ip(&[
        "link", "add", "trk0", "type", "veth", "peer", "name", "trk1",
    ])?;
    host.ip(&["link", "set", "trk1", "up"])?;
    host.ip(&["link", "set", "trk0", "up"])?;
    for script in SCRIPTS {
        write_script(dir, script)?;
    }
    // Anyone may change it: with enable_script_security neither runs it.
    std::fs::set_permissions(
        dir.join("backup"),
        std::os::unix::fs::PermissionsExt::from_mode(0o757),
    )
    .map_err(|e| e.to_string())?;
    let config = dir.join("keepalived.conf");
    std::fs::write(&config, CONFIG.replace("@DIR@", &dir.display().to_string()))
        .map_err(|e| e.to_string())?;

    let keepalived = Daemon::Keepalived(Keepalived::start(host, dir, &config)?);
    let expected = record(host, dir, keepalived)?;

    let vrrpd = super::imported_vrrpd(host, dir, &config, "vrrpd")?;
    let got = record(host, dir, Daemon::Vrrpd(vrrpd))?;

    assert!(
        !expected.phases[0].1.iter().any(|c| c == "backup"),
        "keepalived ran the world-writable script: {expected:#?}"
    );
    // Not a comparison of two empty logs: keepalived made every kind of call.
    let first = &expected.phases[0].1;
    let fifo_script = format!("fifo_script [{}/fifo]", dir.display());
    assert!(first.contains(&fifo_script), "{expected:#?}");
    assert!(
        expected.phases[1]
            .1
            .contains(&"fault [with] [two words] [and] [more]".to_owned()),
        "{expected:#?}"
    );
    assert_eq!(got, expected);
    Ok(())
}

/// vrrpd counted each refusal of the world-writable script (at start and at link up).
fn refusals_counted(host: &Netns) -> Result<(), String> {
    let code = format!(
        "import urllib.request; print(urllib.request.urlopen('{}', timeout=5).read().decode())",
        super::METRICS
    );
    let metrics = host.stdout(&["python3", "-c", &code])?;
    let line = "vrrp_notify_failures_total{cause=\"insecure\"} 2";
    if metrics.lines().any(|l| l == line) {
        Ok(())
    } else {
        Err(format!("no {line} in:\n{metrics}"))
    }
}

fn write_script(dir: &Path, name: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let log = dir.join("calls.log");
    // One line, one write, each argument bracketed: concurrent scripts do not interleave, and
    // a quoted argument with a space shows as one.
    let text = format!(
        "#!/bin/sh\nline=\"${{0##*/}}\"\nfor a in \"$@\"; do line=\"$line [$a]\"; done\necho \"$line\" >> {}\n",
        log.display()
    );
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())
}

/// Runs the phases on `daemon`, started already, and stops it.
fn record(host: &Netns, dir: &Path, mut daemon: Daemon) -> Result<Recording, String> {
    let calls = dir.join("calls.log");
    let _ = std::fs::remove_file(&calls);
    let fifo_path = dir.join("fifo");
    wait_for(Duration::from_secs(10), || fifo_path.exists().then_some(()))
        .ok_or("the notify FIFO was never made")?;
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo_path)
        .map_err(|e| format!("{}: {e}", fifo_path.display()))?;
    let mut seen = 0;
    let mut phases = Vec::new();
    let steps: [(&str, &str); 4] = [
        ("start", "group_notify [GROUP] [G1] [MASTER] [0]"),
        ("link down", "group_notify [GROUP] [G1] [FAULT] [0]"),
        ("link up", "group_notify [GROUP] [G1] [MASTER] [0]"),
        ("stop", "group_notify [GROUP] [G1] [STOP] [0]"),
    ];
    for (phase, until) in steps {
        match phase {
            "link down" => drop(host.ip(&["link", "set", "trk0", "down"])?),
            "link up" => drop(host.ip(&["link", "set", "trk0", "up"])?),
            "stop" => match &mut daemon {
                Daemon::Keepalived(k) => k.leave(),
                Daemon::Vrrpd(v) => {
                    refusals_counted(host)?;
                    v.signal(libc::SIGTERM);
                }
            },
            _ => {}
        }
        let lines = settle(&calls, seen, until)?;
        seen += lines.len();
        let mut lines = lines;
        lines.sort();
        let mut fifo_lines = read_available(&mut fifo)?;
        fifo_lines.sort();
        phases.push((phase, lines, fifo_lines));
    }
    match daemon {
        Daemon::Vrrpd(mut v) => drop(v.wait_timeout(Duration::from_secs(5))?),
        // Already leaving: dropping it waits for the exit (SIGKILL after 2 s).
        Daemon::Keepalived(k) => drop(k),
    }
    std::thread::sleep(Duration::from_secs(1));
    let fifo_removed = !fifo_path.exists();
    let _ = std::fs::remove_file(&fifo_path);
    Ok(Recording {
        phases,
        fifo_removed,
    })
}

/// The calls after the first `seen`, once `until` is among them and nothing more came for
/// half a second.
fn settle(calls: &Path, seen: usize, until: &str) -> Result<Vec<String>, String> {
    let new = || -> Vec<String> {
        std::fs::read_to_string(calls)
            .unwrap_or_default()
            .lines()
            .skip(seen)
            .map(str::to_owned)
            .collect()
    };
    wait_for(Duration::from_secs(15), || {
        new().iter().any(|l| l == until).then_some(())
    })
    .ok_or_else(|| format!("no {until:?} in {:?}", new()))?;
    let mut last = new();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = new();
        if now == last {
            return Ok(now);
        }
        last = now;
    }
}

fn read_available(fifo: &mut std::fs::File) -> Result<Vec<String>, String> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match fifo.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e.to_string()),
        }
    }
    let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
    Ok(text.lines().map(str::to_owned).collect())
}
