//! netns lane: vrrpd between namespaces on a bridge, against itself and against keepalived.

use std::path::Path;
use std::time::Duration;

use lvs_tests::netns::{Netns, veth};
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::{lane_available, netns_missing, workspace_bin};

const VIP: &str = "192.0.2.100";

/// A LAN: a bridge in its own namespace, and hosts each with `eth0` plugged into it.
struct Lan {
    hosts: Vec<Netns>,
    bridge: Netns,
}

impl Lan {
    fn new(hosts: &[(&str, &str)]) -> Result<Self, String> {
        let bridge = Netns::new("lan")?;
        bridge.bridge("br0")?;
        let mut made = Vec::new();
        for (i, (role, cidr)) in hosts.iter().enumerate() {
            let host = Netns::new(role)?;
            let port = format!("p{i}");
            veth(&host, "eth0", &bridge, &port)?;
            bridge.attach(&port, "br0")?;
            host.addr("eth0", cidr)?;
            made.push(host);
        }
        Ok(Lan {
            hosts: made,
            bridge,
        })
    }

    fn host(&self, i: usize) -> &Netns {
        &self.hosts[i]
    }
}

fn has_vip(host: &Netns) -> bool {
    host.stdout(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .is_ok_and(|out| out.contains(&format!(" {VIP}/")))
}

fn mac_of(host: &Netns) -> Result<String, String> {
    let out = host.stdout(&["cat", "/sys/class/net/eth0/address"])?;
    Ok(out.trim().to_owned())
}

fn neighbour_mac(host: &Netns, ip: &str) -> Option<String> {
    let out = host
        .stdout(&["ip", "neigh", "show", ip, "dev", "eth0"])
        .ok()?;
    let words: Vec<&str> = out.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "lladdr")
        .and_then(|i| words.get(i + 1))
        .map(|mac| (*mac).to_owned())
}

fn vrrpd_config(
    dir: &Path,
    name: &str,
    priority: u8,
    extra: &str,
) -> Result<std::path::PathBuf, String> {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[control]\nsocket_dir = \"{dir}/{name}\"\n\n[[vrrp.instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvrid = 51\n\
         priority = {priority}\n{interval}virtual_addresses = [\"{VIP}/24\"]\n{extra}\n",
        dir = dir.display(),
        interval = if extra.contains("advert_interval") {
            ""
        } else {
            "advert_interval = \"1s\"\n"
        },
    );
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Ok(path)
}

fn vrrpd_status(dir: &Path, name: &str) -> Result<serde_json::Value, String> {
    let socket = dir.join(name).join("vrrpd.sock");
    lvs_control::call(
        &socket,
        &serde_json::json!({"cmd": "status"}),
        Duration::from_secs(2),
    )
    .map_err(|e| e.to_string())
}

fn start_vrrpd(host: &Netns, config: &Path) -> Result<Guarded, String> {
    let vrrpd = workspace_bin("vrrpd");
    host.spawn(&[vrrpd.as_os_str(), "--config".as_ref(), config.as_os_str()])
}

fn keepalived_config(
    dir: &Path,
    name: &str,
    state: &str,
    priority: u8,
) -> Result<std::path::PathBuf, String> {
    keepalived_config_with(dir, name, state, priority, &KeepalivedMode::V2)
}

/// How a keepalived instance speaks: the version, its advert_int, and v2 auth.
enum KeepalivedMode {
    V2,
    V2Pass(&'static str),
    V3Centis(u16),
}

impl KeepalivedMode {
    fn keepalived_lines(&self) -> String {
        match self {
            KeepalivedMode::V2 => "  advert_int 1\n".to_owned(),
            KeepalivedMode::V2Pass(password) => format!(
                "  advert_int 1\n  authentication {{\n    auth_type PASS\n    auth_pass {password}\n  }}\n"
            ),
            KeepalivedMode::V3Centis(cs) => {
                format!("  version 3\n  advert_int {}.{:02}\n", cs / 100, cs % 100)
            }
        }
    }

    /// The same settings for vrrpd; `advert_interval` overrides the 1 s default line.
    fn vrrpd_lines(&self) -> String {
        match self {
            KeepalivedMode::V2 => String::new(),
            KeepalivedMode::V2Pass(password) => {
                format!("auth = {{ type = \"pass\", password = \"{password}\" }}")
            }
            KeepalivedMode::V3Centis(cs) => {
                format!(
                    "version = 3\nadvert_interval = \"{}ms\"",
                    u32::from(*cs) * 10
                )
            }
        }
    }

    /// Master_Down_Interval at priority 100 plus slack for a loaded machine.
    fn takeover(&self) -> Duration {
        match self {
            KeepalivedMode::V2 | KeepalivedMode::V2Pass(_) => TAKEOVER,
            KeepalivedMode::V3Centis(cs) => {
                Duration::from_millis(u64::from(*cs) * 10 * 4) + Duration::from_secs(3)
            }
        }
    }
}

fn keepalived_config_with(
    dir: &Path,
    name: &str,
    state: &str,
    priority: u8,
    mode: &KeepalivedMode,
) -> Result<std::path::PathBuf, String> {
    let path = dir.join(format!("{name}.conf"));
    let text = format!(
        "global_defs {{\n  router_id {name}\n  enable_script_security\n}}\n\
         vrrp_instance VI_1 {{\n  state {state}\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n\
         {lines}  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n",
        lines = mode.keepalived_lines()
    );
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Ok(path)
}

fn start_keepalived(host: &Netns, dir: &Path, config: &Path) -> Result<Guarded, String> {
    let pid = dir.join(format!("{}.pid", host.name()));
    let vrrp_pid = dir.join(format!("{}.vrrp.pid", host.name()));
    host.spawn(&[
        "keepalived".as_ref(),
        "--dont-fork".as_ref(),
        "--log-console".as_ref(),
        "--vrrp".as_ref(),
        "--use-file".as_ref(),
        config.as_os_str(),
        "--pid".as_ref(),
        pid.as_os_str(),
        "--vrrp_pid".as_ref(),
        vrrp_pid.as_os_str(),
    ])
}

/// Time for a backup at priority 100 to declare the master down (3.609 s) plus slack for a
/// loaded machine.
const TAKEOVER: Duration = Duration::from_secs(10);

#[test]
fn vrrpd_pair_fails_over_and_repoints_the_clients_arp_cache() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lan = Lan::new(&[
        ("va", "192.0.2.11/24"),
        ("vb", "192.0.2.12/24"),
        ("vc", "192.0.2.50/24"),
    ])?;
    let (a, b, client) = (lan.host(0), lan.host(1), lan.host(2));
    let master = start_vrrpd(a, &vrrpd_config(dir.path(), "a", 150, "")?)?;
    let _backup = start_vrrpd(b, &vrrpd_config(dir.path(), "b", 100, "")?)?;

    wait_for(TAKEOVER, || has_vip(a).then_some(()))
        .ok_or("the priority-150 vrrpd never took the VIP")?;
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        has_vip(a) && !has_vip(b),
        "the VIP must be on exactly one node"
    );

    client.run(&["ping", "-c", "1", "-W", "2", VIP])?;
    let mac_a = mac_of(a)?;
    assert_eq!(neighbour_mac(client, VIP).as_deref(), Some(mac_a.as_str()));

    master.signal(libc::SIGKILL);
    wait_for(TAKEOVER, || has_vip(b).then_some(())).ok_or("the backup never took over")?;
    let mac_b = mac_of(b)?;
    // The client sent nothing since: only the new master's gratuitous ARP can have done this.
    let repointed = wait_for(Duration::from_secs(3), || {
        (neighbour_mac(client, VIP).as_deref() == Some(mac_b.as_str())).then_some(())
    });
    assert!(
        repointed.is_some(),
        "client's neighbour entry: {:?}, want {mac_b}",
        neighbour_mac(client, VIP)
    );
    let status = vrrpd_status(dir.path(), "b")?;
    let instance = &status["instances"][0];
    assert_eq!(instance["state"], "MASTER", "{status}");
    assert_eq!(instance["counters"]["became_master"], 1, "{status}");
    assert!(
        instance["counters"]["adverts_received"].as_u64() > Some(0),
        "{status}"
    );
    Ok(())
}

#[test]
fn keepalived_master_and_vrrpd_backup_interoperate() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lan = Lan::new(&[("ka", "192.0.2.21/24"), ("kb", "192.0.2.22/24")])?;
    let (a, b) = (lan.host(0), lan.host(1));
    let keepalived = start_keepalived(
        a,
        dir.path(),
        &keepalived_config(dir.path(), "ka", "MASTER", 150)?,
    )?;
    let _vrrpd = start_vrrpd(b, &vrrpd_config(dir.path(), "kb", 100, "")?)?;

    wait_for(TAKEOVER, || has_vip(a).then_some(())).ok_or("keepalived never took the VIP")?;
    // Well past vrrpd's Master_Down_Interval: it must be hearing keepalived and staying backup.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        has_vip(a) && !has_vip(b),
        "vrrpd must stay backup under a higher-priority keepalived"
    );

    keepalived.signal(libc::SIGKILL);
    wait_for(TAKEOVER, || has_vip(b).then_some(()))
        .ok_or("vrrpd did not take over from keepalived")?;
    Ok(())
}

#[test]
fn vrrpd_master_and_keepalived_backup_interoperate() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lan = Lan::new(&[("ra", "192.0.2.31/24"), ("rb", "192.0.2.32/24")])?;
    let (a, b) = (lan.host(0), lan.host(1));
    let vrrpd = start_vrrpd(a, &vrrpd_config(dir.path(), "ra", 150, "")?)?;
    let _keepalived = start_keepalived(
        b,
        dir.path(),
        &keepalived_config(dir.path(), "rb", "BACKUP", 100)?,
    )?;

    wait_for(TAKEOVER, || has_vip(a).then_some(())).ok_or("vrrpd never took the VIP")?;
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        has_vip(a) && !has_vip(b),
        "keepalived must stay backup under a higher-priority vrrpd"
    );

    // A graceful stop sends priority 0: keepalived takes over after its skew time, not 3 intervals.
    vrrpd.signal(libc::SIGTERM);
    let started = std::time::Instant::now();
    wait_for(TAKEOVER, || has_vip(b).then_some(()))
        .ok_or("keepalived did not take over from vrrpd")?;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "takeover after priority 0 took {took:?}, expected about skew time"
    );
    assert!(!has_vip(a), "a stopping vrrpd must remove its VIP");
    Ok(())
}

#[test]
fn tshark_decodes_our_adverts_without_a_malformed_flag() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    if lvs_tests::process::which("tshark").is_none()
        || lvs_tests::process::which("tcpdump").is_none()
    {
        assert!(
            !lvs_tests::lanes_required(),
            "tshark and tcpdump are required"
        );
        eprintln!("SKIPPED: tshark or tcpdump missing");
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lan = Lan::new(&[("ta", "192.0.2.41/24")])?;
    let pcap = dir.path().join("vrrp.pcap");
    let pcap_arg = pcap.to_str().ok_or("utf-8 path")?;
    let mut capture = lan.bridge.spawn(&[
        "tcpdump",
        "-i",
        "br0",
        "-U",
        "-w",
        pcap_arg,
        "ip proto 112 or arp",
    ])?;
    let auth = "auth = { type = \"pass\", password = \"s3cret\" }";
    let _vrrpd = start_vrrpd(lan.host(0), &vrrpd_config(dir.path(), "ta", 150, auth)?)?;
    wait_for(TAKEOVER, || has_vip(lan.host(0)).then_some(())).ok_or("vrrpd never became master")?;
    std::thread::sleep(Duration::from_secs(3));
    capture.end();
    let decoded = lvs_tests::process::run_stdout(std::process::Command::new("tshark").args([
        "-r",
        pcap_arg,
        "-Y",
        "vrrp",
        "-T",
        "fields",
        "-e",
        "vrrp.version",
        "-e",
        "vrrp.prio",
        "-e",
        "vrrp.checksum.status",
        "-e",
        "vrrp.auth_string",
        "-e",
        "_ws.malformed",
    ]))?;
    println!("{decoded}");
    let lines: Vec<&str> = decoded.lines().collect();
    assert!(
        lines.len() >= 2,
        "expected several adverts, tshark decoded: {decoded}"
    );
    for line in lines {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.first(), Some(&"2"), "{line}");
        assert_eq!(fields.get(1), Some(&"150"), "{line}");
        assert_eq!(
            fields.get(2),
            Some(&"1"),
            "checksum status must be Good (1): {line}"
        );
        assert_eq!(fields.get(3), Some(&"s3cret"), "{line}");
        assert!(
            fields.get(4).is_none_or(|m| m.is_empty()),
            "malformed: {line}"
        );
    }
    Ok(())
}

#[test]
fn tracking_moves_priority_and_forces_fault() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lan = Lan::new(&[("xa", "192.0.2.51/24"), ("xb", "192.0.2.52/24")])?;
    let (a, b) = (lan.host(0), lan.host(1));
    a.ip(&[
        "link", "add", "trk0", "type", "veth", "peer", "name", "trk1",
    ])?;
    a.ip(&["link", "set", "trk1", "up"])?;
    a.ip(&["link", "set", "trk0", "up"])?;
    let flag = dir.path().join("upstream-ok");
    std::fs::write(&flag, "").map_err(|e| e.to_string())?;
    let tracking = format!(
        "track_scripts = [{{ command = \"test -e {}\", interval = \"1s\", weight = -60 }}]\n\
         track_interfaces = [{{ name = \"trk0\", weight = 0 }}]",
        flag.display()
    );
    let _a = start_vrrpd(a, &vrrpd_config(dir.path(), "xa", 150, &tracking)?)?;
    let _b = start_vrrpd(b, &vrrpd_config(dir.path(), "xb", 100, "")?)?;
    let only = |winner: &Netns, loser: &Netns| (has_vip(winner) && !has_vip(loser)).then_some(());

    wait_for(TAKEOVER, || only(a, b)).ok_or("a (150) never became the only master")?;

    std::fs::remove_file(&flag).map_err(|e| e.to_string())?;
    wait_for(TAKEOVER, || only(b, a))
        .ok_or("a failing script (-60: 150 -> 90) must hand over to b (100)")?;
    assert_eq!(
        vrrpd_status(dir.path(), "xa")?["instances"][0]["priority"],
        90
    );

    std::fs::write(&flag, "").map_err(|e| e.to_string())?;
    wait_for(TAKEOVER, || only(a, b)).ok_or("a must preempt again once its script succeeds")?;

    a.ip(&["link", "set", "trk0", "down"])?;
    wait_for(TAKEOVER, || only(b, a))
        .ok_or("a tracked interface with weight 0 going down must force FAULT")?;
    assert_eq!(
        vrrpd_status(dir.path(), "xa")?["instances"][0]["state"],
        "FAULT"
    );
    a.ip(&["link", "set", "trk0", "up"])?;
    wait_for(TAKEOVER, || only(a, b)).ok_or("a must come back from FAULT and preempt")?;
    Ok(())
}

#[test]
fn sighup_reload_keeps_an_unchanged_master_and_refuses_a_bad_file() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lan = Lan::new(&[("ha", "192.0.2.61/24")])?;
    let a = lan.host(0);
    let config = vrrpd_config(dir.path(), "ha", 150, "")?;
    let vrrpd = start_vrrpd(a, &config)?;
    wait_for(TAKEOVER, || has_vip(a).then_some(())).ok_or("vrrpd never became master")?;
    let transitions =
        |status: &serde_json::Value| status["instances"][0]["counters"]["transitions"].clone();
    let before = vrrpd_status(dir.path(), "ha")?;

    vrrpd.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_secs(2));
    let after = vrrpd_status(dir.path(), "ha")?;
    assert_eq!(
        transitions(&after),
        transitions(&before),
        "an unchanged reload must not flap: {after}"
    );
    assert!(has_vip(a));

    let good = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
    std::fs::write(&config, good.replace("vrid = 51", "vrid = 0")).map_err(|e| e.to_string())?;
    vrrpd.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_secs(2));
    let after_bad = vrrpd_status(dir.path(), "ha")?;
    assert_eq!(after_bad["instances"][0]["state"], "MASTER", "{after_bad}");
    assert_eq!(
        transitions(&after_bad),
        transitions(&before),
        "a refused reload must change nothing"
    );
    assert!(has_vip(a));
    Ok(())
}

/// Samples both nodes for `period`: the master must hold the VIP and the backup must not, at
/// every sample (no dual master, no gap).
fn steady_single_master(master: &Netns, backup: &Netns, period: Duration) -> Result<(), String> {
    let end = std::time::Instant::now() + period;
    let mut samples = 0;
    while std::time::Instant::now() < end {
        let (m, b) = (has_vip(master), has_vip(backup));
        if !m || b {
            return Err(format!(
                "after {samples} good samples: master has VIP {m}, backup has VIP {b}"
            ));
        }
        samples += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// vrrpd accepted every advert from keepalived: nothing dropped, some received.
fn vrrpd_heard_peer_cleanly(dir: &Path, name: &str) -> Result<(), String> {
    let status = vrrpd_status(dir, name)?;
    let counters = &status["instances"][0]["counters"];
    if counters["drops"].as_object().is_some_and(|d| !d.is_empty()) {
        return Err(format!("vrrpd dropped adverts: {status}"));
    }
    if counters["adverts_received"].as_u64() < Some(1) {
        return Err(format!("vrrpd received no adverts: {status}"));
    }
    Ok(())
}

/// keepalived and vrrpd in one mode, one of them master (priority 150) and the other backup
/// (100): correct election, a steady single master, then failover to the backup (kill -9 of a
/// keepalived master; SIGTERM of a vrrpd master, which must hand over after skew time).
fn interop(mode: &KeepalivedMode, keepalived_master: bool, tag: &str) -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (ka, vr) = (format!("{tag}k"), format!("{tag}v"));
    let lan = Lan::new(&[(&ka, "192.0.2.71/24"), (&vr, "192.0.2.72/24")])?;
    let (k, v) = (lan.host(0), lan.host(1));
    let (k_prio, v_prio) = if keepalived_master {
        (150, 100)
    } else {
        (100, 150)
    };
    let state = if keepalived_master {
        "MASTER"
    } else {
        "BACKUP"
    };
    let vrrpd_conf = vrrpd_config(dir.path(), &vr, v_prio, &mode.vrrpd_lines())?;
    let keepalived_conf = keepalived_config_with(dir.path(), &ka, state, k_prio, mode)?;
    // The intended master starts first so the backup never sees an empty LAN for long.
    let (keepalived, vrrpd) = if keepalived_master {
        let k_proc = start_keepalived(k, dir.path(), &keepalived_conf)?;
        wait_for(TAKEOVER, || has_vip(k).then_some(())).ok_or("keepalived never took the VIP")?;
        (k_proc, start_vrrpd(v, &vrrpd_conf)?)
    } else {
        let v_proc = start_vrrpd(v, &vrrpd_conf)?;
        wait_for(TAKEOVER, || has_vip(v).then_some(())).ok_or("vrrpd never took the VIP")?;
        (start_keepalived(k, dir.path(), &keepalived_conf)?, v_proc)
    };
    let (master, backup) = if keepalived_master { (k, v) } else { (v, k) };
    // Past the joining backup's Master_Down_Interval, then watched for a few seconds more.
    std::thread::sleep(mode.takeover().min(Duration::from_secs(5)));
    steady_single_master(master, backup, Duration::from_secs(3))?;
    if keepalived_master {
        vrrpd_heard_peer_cleanly(dir.path(), &vr)?;
        let status = vrrpd_status(dir.path(), &vr)?;
        assert_eq!(status["instances"][0]["state"], "BACKUP", "{status}");
        keepalived.signal(libc::SIGKILL);
        wait_for(mode.takeover(), || has_vip(v).then_some(()))
            .ok_or("vrrpd did not take over from keepalived")?;
        let status = vrrpd_status(dir.path(), &vr)?;
        assert_eq!(status["instances"][0]["state"], "MASTER", "{status}");
        drop(vrrpd);
    } else {
        let status = vrrpd_status(dir.path(), &vr)?;
        assert_eq!(status["instances"][0]["state"], "MASTER", "{status}");
        vrrpd.signal(libc::SIGTERM);
        let started = std::time::Instant::now();
        wait_for(mode.takeover(), || has_vip(k).then_some(()))
            .ok_or("keepalived did not take over from vrrpd")?;
        let took = started.elapsed();
        assert!(
            took < mode.takeover() / 2,
            "takeover after priority 0 took {took:?}, expected about skew time"
        );
        wait_for(Duration::from_secs(2), || (!has_vip(v)).then_some(()))
            .ok_or("a stopping vrrpd must remove its VIP")?;
        drop(keepalived);
    }
    Ok(())
}

#[test]
fn interop_v2_pass_keepalived_master() -> Result<(), String> {
    interop(&KeepalivedMode::V2Pass("s3cret"), true, "i2a")
}

#[test]
fn interop_v2_pass_vrrpd_master() -> Result<(), String> {
    interop(&KeepalivedMode::V2Pass("s3cret"), false, "i2b")
}

#[test]
fn interop_v3_10cs_keepalived_master() -> Result<(), String> {
    interop(&KeepalivedMode::V3Centis(10), true, "i3a")
}

#[test]
fn interop_v3_10cs_vrrpd_master() -> Result<(), String> {
    interop(&KeepalivedMode::V3Centis(10), false, "i3b")
}

/// Sends hand-made VRRPv2 frames onto the LAN from the namespace it runs in (AF_PACKET on
/// eth0), each argument naming one. All but "short" claim VRID 51 and the VIP; the hostile ones
/// carry priority 254 so that accepting any of them would unseat the master.
const CRAFT_PY: &str = r#"
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
def vrrp(vrid=51, prio=254, pw=b's3cret', good_sum=True):
    body = struct.pack('!BBBBBBH', 0x21, vrid, prio, 1, 1, 1, 0) + socket.inet_aton('192.0.2.100') + pw.ljust(8, b'\0')
    c = csum(body) if good_sum else csum(body) ^ 0x5a5a
    return body[:6] + struct.pack('!H', c) + body[8:]
def ip(payload, ttl=255):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 0, 0, ttl, 112, 0,
                    socket.inet_aton(sys.argv[1]), socket.inet_aton('224.0.0.18'))
    return h[:10] + struct.pack('!H', csum(h)) + h[12:] + payload
mac = open('/sys/class/net/eth0/address').read().strip().replace(':', '')
eth = bytes.fromhex('01005e000012' + mac) + b'\x08\x00'
frames = {
    'short': ip(vrrp()[:4]),
    'bad_checksum': ip(vrrp(good_sum=False)),
    'wrong_vrid': ip(vrrp(vrid=52)),
    'ttl': ip(vrrp(), ttl=64),
    'wrong_password': ip(vrrp(pw=b'guess')),
    'valid_low_priority': ip(vrrp(prio=1)),
}
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('eth0', 0))
for name in sys.argv[2:]:
    s.send(eth + frames[name])
"#;

#[test]
fn crafted_bad_packets_are_dropped_and_counted_in_status_and_metrics() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lan = Lan::new(&[("da", "192.0.2.81/24"), ("dx", "192.0.2.66/24")])?;
    let (a, attacker) = (lan.host(0), lan.host(1));
    let auth = "auth = { type = \"pass\", password = \"s3cret\" }";
    let config = vrrpd_config(dir.path(), "da", 150, auth)?;
    // control.metrics is the base port: vrrpd serves on base + 1.
    let text = std::fs::read_to_string(&config).map_err(|e| e.to_string())?;
    let text = text.replacen(
        "[control]\n",
        "[control]\nmetrics = \"127.0.0.1:19540\"\n",
        1,
    );
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let _vrrpd = start_vrrpd(a, &config)?;
    wait_for(TAKEOVER, || has_vip(a).then_some(())).ok_or("vrrpd never became master")?;
    let before = vrrpd_status(dir.path(), "da")?;

    let mut argv = vec!["python3", "-c", CRAFT_PY, "192.0.2.66"];
    for name in [
        "short",
        "bad_checksum",
        "wrong_vrid",
        "ttl",
        "wrong_password",
        "valid_low_priority",
    ] {
        argv.extend([name; 3]);
    }
    attacker.run(&argv)?;
    // Long enough for a unseated master to have dropped its VIP.
    std::thread::sleep(Duration::from_secs(2));

    let status = vrrpd_status(dir.path(), "da")?;
    let instance = &status["instances"][0];
    let drops = &instance["counters"]["drops"];
    assert_eq!(drops["bad_checksum"], 3, "{status}");
    assert_eq!(drops["ttl"], 3, "{status}");
    assert_eq!(drops["auth_failure"], 3, "{status}");
    let link_drops = &status["interfaces"][0]["drops"];
    assert_eq!(status["interfaces"][0]["name"], "eth0", "{status}");
    assert_eq!(link_drops["too_short"], 3, "{status}");
    assert_eq!(link_drops["vrid_mismatch"], 3, "{status}");
    // The well-formed low-priority ones prove the injection path reaches vrrpd at all.
    let received = |s: &serde_json::Value| {
        s["instances"][0]["counters"]["adverts_received"]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(received(&status), received(&before) + 3, "{status}");
    assert_eq!(instance["state"], "MASTER", "{status}");
    assert_eq!(instance["counters"]["became_master"], 1, "{status}");
    assert!(has_vip(a), "the master must keep its VIP");

    // The same numbers over Prometheus, fetched inside the namespace.
    let metrics = a.stdout(&[
        "python3",
        "-c",
        "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:19541/metrics', timeout=5).read().decode())",
    ])?;
    for line in [
        "vrrp_state{instance=\"VI_1\",state=\"MASTER\"} 1",
        "vrrp_state{instance=\"VI_1\",state=\"BACKUP\"} 0",
        "vrrp_became_master_total{instance=\"VI_1\"} 1",
        "vrrp_transitions_total{instance=\"VI_1\"} 2",
        "vrrp_priority{instance=\"VI_1\"} 150",
        "vrrp_drops_total{instance=\"VI_1\",cause=\"ttl\"} 3",
        "vrrp_drops_total{instance=\"VI_1\",cause=\"auth_failure\"} 3",
        "vrrp_drops_total{instance=\"VI_1\",cause=\"bad_checksum\"} 3",
        "vrrp_interface_drops_total{interface=\"eth0\",cause=\"too_short\"} 3",
        "vrrp_interface_drops_total{interface=\"eth0\",cause=\"vrid_mismatch\"} 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line}:\n{metrics}"
        );
    }
    let sent = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vrrp_adverts_sent_total{instance=\"VI_1\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(sent > Some(0), "{metrics}");
    Ok(())
}

#[test]
fn partition_gives_two_masters_and_healing_leaves_one_within_an_interval() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lan = Lan::new(&[("pa", "192.0.2.91/24"), ("pb", "192.0.2.92/24")])?;
    let (a, b) = (lan.host(0), lan.host(1));
    let _a = start_vrrpd(a, &vrrpd_config(dir.path(), "pa", 150, "")?)?;
    let _b = start_vrrpd(b, &vrrpd_config(dir.path(), "pb", 100, "")?)?;
    wait_for(TAKEOVER, || (has_vip(a) && !has_vip(b)).then_some(()))
        .ok_or("a (150) never became the only master")?;

    // Isolated bridge ports cannot reach each other: a partition that leaves both links up,
    // as a broken switch would, rather than a carrier loss either side could notice.
    let isolate = |on: &str| -> Result<(), String> {
        for port in ["p0", "p1"] {
            lan.bridge
                .run(&["bridge", "link", "set", "dev", port, "isolated", on])?;
        }
        Ok(())
    };
    isolate("on")?;
    wait_for(TAKEOVER, || (has_vip(a) && has_vip(b)).then_some(()))
        .ok_or("during the partition b must become master too")?;
    assert_eq!(
        vrrpd_status(dir.path(), "pb")?["instances"][0]["state"],
        "MASTER"
    );

    isolate("off")?;
    let healed = std::time::Instant::now();
    wait_for(Duration::from_secs(5), || {
        (has_vip(a) && !has_vip(b)).then_some(())
    })
    .ok_or("after healing the VIP must end up only on a")?;
    let took = healed.elapsed();
    // One 1 s advert interval, plus the time to notice by polling `ip addr`.
    assert!(
        took < Duration::from_millis(1300),
        "one master only {took:?} after healing, expected within one advert interval"
    );
    assert_eq!(
        vrrpd_status(dir.path(), "pb")?["instances"][0]["state"],
        "BACKUP"
    );
    assert_eq!(
        vrrpd_status(dir.path(), "pa")?["instances"][0]["state"],
        "MASTER"
    );
    steady_single_master(a, b, Duration::from_secs(3))?;
    println!("single master {took:?} after healing");
    Ok(())
}

const VIP6: &str = "2001:db8::100";

impl Lan {
    /// Hosts with IPv6 addresses (`2001:db8::/64`) and duplicate address detection off, so
    /// their link-local and global addresses are usable as soon as the links are up.
    fn new6(hosts: &[(&str, &str)]) -> Result<Self, String> {
        let bridge = Netns::new("lan6")?;
        bridge.bridge("br0")?;
        // Snooping would make ff02::12 delivery depend on MLD timing; a plain switch floods.
        bridge.ip(&[
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        let mut made = Vec::new();
        for (i, (role, cidr)) in hosts.iter().enumerate() {
            let host = Netns::new(role)?;
            host.sysctl("net.ipv6.conf.all.accept_dad=0")?;
            host.sysctl("net.ipv6.conf.default.accept_dad=0")?;
            let port = format!("p{i}");
            veth(&host, "eth0", &bridge, &port)?;
            bridge.attach(&port, "br0")?;
            host.ip(&["addr", "add", cidr, "dev", "eth0", "nodad"])?;
            host.ip(&["link", "set", "eth0", "up"])?;
            made.push(host);
        }
        Ok(Lan {
            hosts: made,
            bridge,
        })
    }
}

fn has_vip6(host: &Netns) -> bool {
    host.stdout(&["ip", "-6", "-o", "addr", "show", "dev", "eth0"])
        .is_ok_and(|out| out.contains(&format!(" {VIP6}/")))
}

fn vrrpd_config6(dir: &Path, name: &str, priority: u8) -> Result<std::path::PathBuf, String> {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "[control]\nsocket_dir = \"{dir}/{name}\"\n\n[[vrrp.instance]]\nname = \"VI_6\"\ninterface = \"eth0\"\nvrid = 51\n\
         version = 3\npriority = {priority}\nadvert_interval = \"1s\"\nvirtual_addresses = [\"{VIP6}/64\"]\n",
        dir = dir.display()
    );
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Ok(path)
}

fn keepalived_config6(
    dir: &Path,
    name: &str,
    state: &str,
    priority: u8,
) -> Result<std::path::PathBuf, String> {
    let path = dir.join(format!("{name}.conf"));
    let text = format!(
        "global_defs {{\n  router_id {name}\n  enable_script_security\n}}\n\
         vrrp_instance VI_6 {{\n  state {state}\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n\
         version 3\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP6}/64\n  }}\n}}\n"
    );
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Ok(path)
}

fn neighbour6_mac(host: &Netns, ip: &str) -> Option<String> {
    let out = host
        .stdout(&["ip", "-6", "neigh", "show", ip, "dev", "eth0"])
        .ok()?;
    let words: Vec<&str> = out.split_whitespace().collect();
    words
        .iter()
        .position(|w| *w == "lladdr")
        .and_then(|i| words.get(i + 1))
        .map(|mac| (*mac).to_owned())
}

#[test]
fn ipv6_vrrpd_pair_fails_over_and_repoints_the_clients_neighbour_entry() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lan = Lan::new6(&[
        ("6a", "2001:db8::11/64"),
        ("6b", "2001:db8::12/64"),
        ("6c", "2001:db8::50/64"),
    ])?;
    let (a, b, client) = (lan.host(0), lan.host(1), lan.host(2));
    let pcap = dir.path().join("vrrp6.pcap");
    let pcap_arg = pcap.to_str().ok_or("utf-8 path")?;
    let mut capture = lan.bridge.spawn(&[
        "tcpdump",
        "-i",
        "br0",
        "-U",
        "-w",
        pcap_arg,
        "ip6 proto 112 or icmp6",
    ])?;
    let master = start_vrrpd(a, &vrrpd_config6(dir.path(), "6a", 150)?)?;
    let _backup = start_vrrpd(b, &vrrpd_config6(dir.path(), "6b", 100)?)?;

    wait_for(TAKEOVER, || has_vip6(a).then_some(()))
        .ok_or("the priority-150 vrrpd never took the IPv6 VIP")?;
    std::thread::sleep(Duration::from_secs(2));
    steady_single_master6(a, b)?;

    client.run(&["ping", "-6", "-c", "1", "-W", "2", VIP6])?;
    let mac_a = mac_of(a)?;
    assert_eq!(
        neighbour6_mac(client, VIP6).as_deref(),
        Some(mac_a.as_str())
    );

    master.signal(libc::SIGKILL);
    wait_for(TAKEOVER, || has_vip6(b).then_some(())).ok_or("the backup never took over")?;
    let mac_b = mac_of(b)?;
    // Only the new master's unsolicited neighbour advertisement can have done this.
    let repointed = wait_for(Duration::from_secs(3), || {
        (neighbour6_mac(client, VIP6).as_deref() == Some(mac_b.as_str())).then_some(())
    });
    assert!(
        repointed.is_some(),
        "client's neighbour entry: {:?}, want {mac_b}",
        neighbour6_mac(client, VIP6)
    );
    let status = vrrpd_status(dir.path(), "6b")?;
    let instance = &status["instances"][0];
    assert_eq!(instance["state"], "MASTER", "{status}");
    assert!(
        instance["counters"]["drops"]
            .as_object()
            .is_some_and(|d| d.is_empty()),
        "{status}"
    );
    assert!(
        instance["counters"]["adverts_received"].as_u64() > Some(0),
        "{status}"
    );
    std::thread::sleep(Duration::from_millis(500));
    capture.end();

    // tshark must find our IPv6 adverts and neighbour advertisements well-formed.
    let decoded = lvs_tests::process::run_stdout(std::process::Command::new("tshark").args([
        "-r",
        pcap_arg,
        "-Y",
        "vrrp || icmpv6.type == 136",
        "-T",
        "fields",
        "-e",
        "ipv6.hlim",
        "-e",
        "vrrp.checksum.status",
        "-e",
        "icmpv6.checksum.status",
        "-e",
        "icmpv6.nd.na.flag.o",
        "-e",
        "_ws.malformed",
    ]))?;
    let (mut adverts, mut nas) = (0, 0);
    for line in decoded.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.first(), Some(&"255"), "hop limit: {line}");
        if fields.get(1).is_some_and(|f| !f.is_empty()) {
            assert_eq!(fields[1], "1", "VRRP checksum must be Good: {line}");
            adverts += 1;
        } else {
            assert_eq!(fields.get(2), Some(&"1"), "ICMPv6 checksum: {line}");
            assert!(
                fields.get(3).is_some_and(|o| *o == "1" || *o == "True"),
                "override flag: {line}"
            );
            nas += 1;
        }
        assert!(
            fields.get(4).is_none_or(|m| m.is_empty()),
            "malformed: {line}"
        );
    }
    assert!(
        adverts >= 2 && nas >= 2,
        "adverts {adverts}, NAs {nas}:\n{decoded}"
    );
    Ok(())
}

fn steady_single_master6(master: &Netns, backup: &Netns) -> Result<(), String> {
    let end = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < end {
        let (m, b) = (has_vip6(master), has_vip6(backup));
        if !m || b {
            return Err(format!("master has VIP {m}, backup has VIP {b}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// keepalived (VRRPv3 over IPv6) as backup under a vrrpd master, then the reverse by a
/// graceful hand-over: keepalived must accept our adverts (checksum over the IPv6
/// pseudo-header, hop limit 255, link-local source) and our priority 0.
#[test]
fn ipv6_vrrpd_master_and_keepalived_backup_interoperate() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lan = Lan::new6(&[("6v", "2001:db8::21/64"), ("6k", "2001:db8::22/64")])?;
    let (v, k) = (lan.host(0), lan.host(1));
    let vrrpd = start_vrrpd(v, &vrrpd_config6(dir.path(), "6v", 150)?)?;
    wait_for(TAKEOVER, || has_vip6(v).then_some(())).ok_or("vrrpd never took the IPv6 VIP")?;
    let _keepalived = start_keepalived(
        k,
        dir.path(),
        &keepalived_config6(dir.path(), "6k", "BACKUP", 100)?,
    )?;
    std::thread::sleep(Duration::from_secs(5));
    // Past keepalived's Master_Down_Interval: still backup means it accepts our adverts.
    steady_single_master6(v, k)?;

    vrrpd.signal(libc::SIGTERM);
    let started = std::time::Instant::now();
    wait_for(TAKEOVER, || has_vip6(k).then_some(()))
        .ok_or("keepalived did not take over from vrrpd")?;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "takeover after priority 0 took {took:?}, expected about skew time"
    );
    wait_for(Duration::from_secs(2), || (!has_vip6(v)).then_some(()))
        .ok_or("a stopping vrrpd must remove its IPv6 VIP")?;
    Ok(())
}

/// Two instances in one sync group on each node: a fault in one of a's instances (a tracked
/// interface, weighted, which a group turns into a fault) takes both to FAULT, so b holds
/// both VIPs; when it clears, a takes both back.
#[test]
fn sync_group_members_fail_over_together() -> Result<(), String> {
    if !lane_available("netns", netns_missing()) {
        return Ok(());
    }
    const VIP2: &str = "192.0.2.101";
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let lan = Lan::new(&[("sa", "192.0.2.111/24"), ("sb", "192.0.2.112/24")])?;
    let (a, b) = (lan.host(0), lan.host(1));
    a.ip(&[
        "link", "add", "trk0", "type", "veth", "peer", "name", "trk1",
    ])?;
    a.ip(&["link", "set", "trk1", "up"])?;
    a.ip(&["link", "set", "trk0", "up"])?;
    let config = |name: &str, priority: u8, track: &str| -> Result<std::path::PathBuf, String> {
        let path = dir.path().join(format!("{name}.toml"));
        let text = format!(
            "[control]\nsocket_dir = \"{dir}/{name}\"\n\n\
             [[vrrp.instance]]\nname = \"VI_1\"\ninterface = \"eth0\"\nvrid = 51\npriority = {priority}\n\
             virtual_addresses = [\"{VIP}/24\"]\n{track}\n\n\
             [[vrrp.instance]]\nname = \"VI_2\"\ninterface = \"eth0\"\nvrid = 52\npriority = {priority}\n\
             virtual_addresses = [\"{VIP2}/24\"]\n\n\
             [[vrrp.sync_group]]\nname = \"G\"\ninstances = [\"VI_1\", \"VI_2\"]\n",
            dir = dir.path().display()
        );
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        Ok(path)
    };
    let track = "track_interfaces = [{ name = \"trk0\", weight = -60 }]";
    let _a = start_vrrpd(a, &config("sa", 150, track)?)?;
    let _b = start_vrrpd(b, &config("sb", 100, "")?)?;
    let holds = |host: &Netns, vip: &str| {
        host.stdout(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
            .is_ok_and(|out| out.contains(&format!(" {vip}/")))
    };
    let all_on = |winner: &Netns, loser: &Netns| {
        (holds(winner, VIP) && holds(winner, VIP2) && !holds(loser, VIP) && !holds(loser, VIP2))
            .then_some(())
    };
    wait_for(TAKEOVER, || all_on(a, b)).ok_or("a never held both VIPs")?;

    a.ip(&["link", "set", "trk0", "down"])?;
    wait_for(TAKEOVER, || all_on(b, a))
        .ok_or("VI_1's fault must take VI_2 along: b must hold both VIPs")?;
    let status = vrrpd_status(dir.path(), "sa")?;
    assert_eq!(status["instances"][0]["state"], "FAULT", "{status}");
    assert_eq!(status["instances"][1]["state"], "FAULT", "{status}");
    // The weight did not apply: a group member's priority stays put.
    assert_eq!(status["instances"][0]["priority"], 150, "{status}");

    a.ip(&["link", "set", "trk0", "up"])?;
    wait_for(TAKEOVER, || all_on(a, b)).ok_or("a must take both back once the fault clears")?;
    let status = vrrpd_status(dir.path(), "sb")?;
    assert_eq!(status["instances"][0]["state"], "BACKUP", "{status}");
    assert_eq!(status["instances"][1]["state"], "BACKUP", "{status}");
    Ok(())
}
