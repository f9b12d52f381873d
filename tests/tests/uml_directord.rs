//! UML lane: directord owning a real IPVS table.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use lvs_ipvs::IpvsCmd;
use lvs_tests::daemon::{self, control};
use lvs_tests::netns::{Netns, veth};
use lvs_tests::nlmon::{Capture, IpvsRequest};
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::uml::{self, Case};
use serde_json::json;

fn main() -> ExitCode {
    uml::main(&[
        Case::new(
            "health_checks_quiesce_remove_and_fall_back_nat",
            health_checks_quiesce_remove_and_fall_back_nat,
        )
        .with_timeout(Duration::from_secs(120)),
        Case::new(
            "health_checks_quiesce_remove_and_fall_back_dr",
            health_checks_quiesce_remove_and_fall_back_dr,
        )
        .with_timeout(Duration::from_secs(120)),
        Case::new(
            "directord_owns_the_table_by_difference",
            directord_owns_the_table_by_difference,
        )
        .with_timeout(Duration::from_secs(120)),
        Case::new(
            "sighup_applies_exactly_the_difference",
            sighup_applies_exactly_the_difference,
        )
        .with_timeout(Duration::from_secs(120)),
        Case::new(
            "quorum_hysteresis_sorry_server_and_scripts",
            quorum_hysteresis_sorry_server_and_scripts,
        )
        .with_timeout(Duration::from_secs(120)),
        Case::new(
            "a_group_runs_its_external_check_once_per_interval",
            a_group_runs_its_external_check_once_per_interval,
        )
        .with_timeout(Duration::from_secs(60)),
        Case::new(
            "ha_suspend_checks_only_while_the_address_is_here",
            ha_suspend_checks_only_while_the_address_is_here,
        )
        .with_timeout(Duration::from_secs(60)),
        Case::new(
            "drain_and_maint_outlive_reload_and_restart",
            drain_and_maint_outlive_reload_and_restart,
        )
        .with_timeout(Duration::from_secs(60)),
    ])
}

/// How the director reaches its real servers, and what that asks of the site around it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Forward {
    Nat,
    Dr,
}

/// The virtual addresses the director (and, for DR, every real server) holds.
const VIPS: [&str; 2] = ["192.0.2.100", "192.0.2.101"];

impl Forward {
    /// NAT maps the virtual port to 8080; DR cannot change the port.
    fn real_port(self) -> u16 {
        match self {
            Forward::Nat => 8080,
            Forward::Dr => 80,
        }
    }

    /// The forwarding flag `ipvsadm -S` prints.
    fn flag(self) -> &'static str {
        match self {
            Forward::Nat => "-m",
            Forward::Dr => "-g",
        }
    }

    fn config_word(self) -> &'static str {
        match self {
            Forward::Nat => "nat",
            Forward::Dr => "dr",
        }
    }

    /// Two services on the same real servers: one port each for NAT; DR keeps the port, so
    /// the second service takes the second VIP.
    fn services(self) -> [&'static str; 2] {
        match self {
            Forward::Nat => ["192.0.2.100:80", "192.0.2.100:81"],
            Forward::Dr => ["192.0.2.100:80", "192.0.2.101:80"],
        }
    }
}

/// Client, director and real servers (on a bridge in the director), each serving a body
/// naming itself.
struct Site {
    client: Netns,
    director: Netns,
    reals: Vec<Netns>,
    _www: tempfile::TempDir,
    _httpd: Vec<Guarded>,
}

fn site() -> Result<Site, String> {
    site_with(2, Forward::Nat)
}

fn site_with(n: usize, forward: Forward) -> Result<Site, String> {
    let client = Netns::new("c")?;
    let director = Netns::new("d")?;
    for vip in VIPS {
        director.ip(&["addr", "add", &format!("{vip}/32"), "dev", "lo"])?;
    }
    director.sysctl("net.ipv4.ip_forward=1")?;
    director.bridge("br1")?;
    director.ip(&["addr", "add", "198.51.100.1/24", "dev", "br1"])?;
    match forward {
        Forward::Nat => {
            veth(&client, "c0", &director, "d0")?;
            client.addr("c0", "192.0.2.2/24")?;
            client.default_route("192.0.2.1")?;
            director.addr("d0", "192.0.2.1/24")?;
        }
        // The client sits on the real servers' LAN: a DR reply comes straight from a real
        // server with the VIP as its source, which the director would drop as a martian (it
        // holds that address) if it had to route it.
        Forward::Dr => {
            veth(&client, "c0", &director, "dpc")?;
            director.attach("dpc", "br1")?;
            client.addr("c0", "198.51.100.2/24")?;
            client.default_route("198.51.100.1")?;
        }
    }
    let www = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut reals = Vec::new();
    let mut httpd = Vec::new();
    for i in 0..n {
        let real = lan_host(&director, &format!("r{i}"), 11 + i, forward)?;
        let root = www.path().join(format!("r{i}"));
        httpd.push(serve(&real, &root, &format!("real-{i}\n"), forward)?);
        reals.push(real);
    }
    Ok(Site {
        client,
        director,
        reals,
        _www: www,
        _httpd: httpd,
    })
}

/// A host on the director's real-server LAN at 198.51.100.`host`. For DR it also holds the
/// VIPs on its loopback and, as DR needs, neither answers nor announces them in ARP: only the
/// director may own them on the LAN.
fn lan_host(director: &Netns, role: &str, host: usize, forward: Forward) -> Result<Netns, String> {
    let ns = Netns::new(role)?;
    let port = format!("dp{role}");
    veth(&ns, "r0", director, &port)?;
    director.attach(&port, "br1")?;
    ns.addr("r0", &format!("198.51.100.{host}/24"))?;
    ns.default_route("198.51.100.1")?;
    if forward == Forward::Dr {
        for vip in VIPS {
            ns.ip(&["addr", "add", &format!("{vip}/32"), "dev", "lo"])?;
        }
        for setting in [
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
            "net.ipv4.conf.r0.arp_ignore=1",
            "net.ipv4.conf.r0.arp_announce=2",
        ] {
            ns.sysctl(setting)?;
        }
    }
    Ok(ns)
}

/// busybox httpd in `ns` on the real-server port, serving `body` from `root`.
fn serve(ns: &Netns, root: &Path, body: &str, forward: Forward) -> Result<Guarded, String> {
    std::fs::create_dir_all(root).map_err(|e| e.to_string())?;
    std::fs::write(root.join("index.html"), body).map_err(|e| e.to_string())?;
    ns.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        &forward.real_port().to_string(),
        "-h",
        root.to_str().unwrap_or_default(),
    ])
}

/// directord's /metrics (control.metrics in the configs here), fetched in the director's
/// namespace.
fn scrape(director: &Netns) -> Result<String, String> {
    director.stdout(&[
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1:9542/metrics",
    ])
}

/// node_exporter's totals and connection counts against what ipvsadm reads from the same
/// kernel (the 4 fetches above went through the VIP), and the scrape passes promtool.
fn node_ipvs_agrees_with_the_kernel(director: &Netns, first: &str) -> Result<(), String> {
    let value = |metrics: &str, prefix: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    // The kernel folds its per-CPU counters into the totals every 2 s (the estimator), so
    // the fetches show up in a later scrape.
    let mut metrics = first.to_owned();
    wait_for(Duration::from_secs(6), || {
        metrics = scrape(director).ok()?;
        (value(&metrics, "node_ipvs_connections_total ") >= 4).then_some(())
    });
    let conns = value(&metrics, "node_ipvs_connections_total ");
    let packets = value(&metrics, "node_ipvs_incoming_packets_total ");
    if conns < 4 || packets < conns {
        return Err(format!(
            "node_ipvs totals {conns} conns, {packets} packets:\n{metrics}"
        ));
    }
    // ipvsadm -Ln: "  -> RIP:PORT Masq WEIGHT ACTIVE INACTIVE"; the scrape came after, and
    // the connections of the fetches are still counted (TIME_WAIT is inactive for minutes).
    let listing = director.stdout(&["ipvsadm", "-Ln"])?;
    let kernel: u64 = listing
        .lines()
        .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(f.get(4)?.parse::<u64>().ok()? + f.get(5)?.parse::<u64>().ok()?)
        })
        .sum();
    let ours = value(&metrics, "node_ipvs_backend_connections_active{")
        + value(&metrics, "node_ipvs_backend_connections_inactive{");
    if ours == 0 || ours != kernel {
        return Err(format!(
            "connections: {ours} in the scrape, {kernel} in ipvsadm:\n{listing}\n{metrics}"
        ));
    }
    lvs_tests::promtool::check_metrics(&metrics)
}

const CONFIG: &str = r#"
[control]
socket_dir = "SOCKET_DIR"
metrics = "127.0.0.1:9542"

[ipvs.sysctl]
expire_nodest_conn = 1

[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
scheduler = "wrr"
forwarding = "nat"

[[virtual_server.real]]
address = "198.51.100.11:8080"
weight = 100

[[virtual_server.real]]
address = "198.51.100.12:8080"
weight = 50
"#;

fn write_config(path: &Path, socket_dir: &Path, text: &str) -> Result<(), String> {
    std::fs::write(
        path,
        text.replace("SOCKET_DIR", &socket_dir.display().to_string()),
    )
    .map_err(|e| e.to_string())
}

fn save(director: &Netns) -> Result<String, String> {
    director.stdout(&["ipvsadm", "-Sn"])
}

fn start(director: &Netns, config: &Path, socket: &Path) -> Result<Guarded, String> {
    daemon::start(director, "directord", config, socket)
}

fn directord_owns_the_table_by_difference() -> Result<(), String> {
    let site = site()?;
    let run = PathBuf::from(format!("/run/lvs-directord-test-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let config = run.join("director.toml");
    let socket = run.join("directord.sock");
    write_config(&config, &run, CONFIG)?;

    // An operator's own service, which directord must never touch.
    site.director
        .run(&["ipvsadm", "-A", "-t", "192.0.2.100:443", "-s", "rr"])?;

    let mut directord = start(&site.director, &config, &socket)?;
    let expected = "-A -t 192.0.2.100:80 -s wrr\n\
                    -a -t 192.0.2.100:80 -r 198.51.100.11:8080 -m -w 100\n\
                    -a -t 192.0.2.100:80 -r 198.51.100.12:8080 -m -w 50\n\
                    -A -t 192.0.2.100:443 -s rr\n";
    let table = save(&site.director)?;
    if table != expected {
        return Err(format!(
            "table after start:\n{table}\nexpected:\n{expected}"
        ));
    }
    let sysctl = site
        .director
        .stdout(&["cat", "/proc/sys/net/ipv4/vs/expire_nodest_conn"])?;
    if sysctl.trim() != "1" {
        return Err(format!("expire_nodest_conn is {sysctl}"));
    }

    // Real traffic reaches both real servers through the VIP.
    let mut bodies = std::collections::BTreeSet::new();
    for _ in 0..6 {
        bodies.insert(site.client.stdout(&[
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            "http://192.0.2.100/",
        ])?);
    }
    if bodies.len() != 2 {
        return Err(format!(
            "expected both real servers to answer, got {bodies:?}"
        ));
    }

    // A reload that changes one weight is one request.
    write_config(&config, &run, &CONFIG.replace("weight = 50", "weight = 70"))?;
    let applied = control(&socket, &json!({"cmd": "reload"}))?;
    println!("reload: {applied}");
    if applied["requests"] != 1 || applied["sendmsg_calls"] != 1 {
        return Err(format!("a one-weight reload sent {applied}"));
    }
    let table = save(&site.director)?;
    if !table.contains("-r 198.51.100.12:8080 -m -w 70") || !table.contains("192.0.2.100:443") {
        return Err(format!("after reload:\n{table}"));
    }

    // A bad config is refused with its position and the running one stays.
    write_config(
        &config,
        &run,
        &CONFIG.replace("scheduler = \"wrr\"", "scheduler = \"wrrr\""),
    )?;
    let refused = control(&socket, &json!({"cmd": "reload"}));
    match refused {
        Err(e) if e.contains("director.toml:") && e.contains("unknown scheduler") => {
            println!("refused: {e}");
        }
        other => {
            return Err(format!(
                "a bad reload must be refused with file:line:col, got {other:?}"
            ));
        }
    }
    let before_crash = save(&site.director)?;
    if !before_crash.contains("-w 70") {
        return Err(format!(
            "the refused reload changed the table:\n{before_crash}"
        ));
    }

    // A failed server is quiesced, and comes back.
    let down = control(
        &socket,
        &json!({"cmd": "health", "real": "198.51.100.11:8080", "up": false, "detail": "test"}),
    )?;
    println!("down: {down}");
    if !save(&site.director)?.contains("-r 198.51.100.11:8080 -m -w 0") {
        return Err("a down server must be quiesced to weight 0".to_owned());
    }
    for _ in 0..4 {
        let body =
            site.client
                .stdout(&["busybox", "wget", "-q", "-O", "-", "http://192.0.2.100/"])?;
        if body != "real-1\n" {
            return Err(format!("a quiesced server got a new connection: {body}"));
        }
    }
    control(
        &socket,
        &json!({"cmd": "health", "real": "198.51.100.11:8080", "up": true, "detail": "test"}),
    )?;

    let metrics = scrape(&site.director)?;
    for expected in [
        "directord_server_weight{service=\"tcp 192.0.2.100:80\",real=\"198.51.100.12:8080\"} 70",
        "directord_health_transitions_total{service=\"tcp 192.0.2.100:80\",real=\"198.51.100.11:8080\"} 2",
        "directord_reloads_total{result=\"refused\"} 1",
        // node_exporter's ipvs series, read from the kernel: the weight the kernel holds.
        "node_ipvs_backend_weight{local_address=\"192.0.2.100\",local_port=\"80\",remote_address=\"198.51.100.12\",remote_port=\"8080\",proto=\"TCP\",local_mark=\"\"} 70",
    ] {
        if !metrics.contains(expected) {
            return Err(format!("metrics lack {expected}:\n{metrics}"));
        }
    }
    node_ipvs_agrees_with_the_kernel(&site.director, &metrics)?;

    // kill -9 and restart, recorded with nlmon: the table stays exactly as it was, and neither
    // the crash nor the restart sends a single write (no DEL, no FLUSH, no weight change).
    write_config(&config, &run, &CONFIG.replace("weight = 50", "weight = 70"))?;
    let before_crash = save(&site.director)?;
    let capture = Capture::start(&site.director, "nlmon0", &run)?;
    directord.signal(libc::SIGKILL);
    directord.wait_timeout(Duration::from_secs(5))?;
    if save(&site.director)? != before_crash {
        return Err("kill -9 changed the table".to_owned());
    }
    let restarted = start(&site.director, &config, &socket)?;
    let status = control(&socket, &json!({"cmd": "status"}))?;
    if status["last_apply"]["requests"] != 0 {
        return Err(format!(
            "a restart onto a matching table must send nothing, sent {}",
            status["last_apply"]
        ));
    }
    if save(&site.director)? != before_crash {
        return Err("the restart changed the table".to_owned());
    }
    let requests = capture.finish(ipvs_family()?)?;
    let writes = describe_writes(&requests);
    if !writes.is_empty() {
        return Err(format!(
            "kill -9 and restart sent writes to IPVS: {writes:#?}"
        ));
    }
    // The capture saw the restarted directord read the table, so its silence is not blindness.
    let reads = requests
        .iter()
        .filter(|r| r.port == restarted.pid() && r.cmd == IpvsCmd::GetService && r.dump)
        .count();
    if reads == 0 {
        return Err(format!(
            "nlmon saw no table dump from directord (pid {}): {requests:#?}",
            restarted.pid()
        ));
    }
    println!(
        "nlmon across kill -9 and restart: {} IPVS requests, {reads} service dump(s) by the new directord, no writes",
        requests.len()
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&status).unwrap_or_default()
    );
    drop(site.reals);
    Ok(())
}

/// The IPVS generic netlink family id, as the kernel resolves it for our own client.
fn ipvs_family() -> Result<u16, String> {
    lvs_ipvs::IpvsClient::connect()
        .map(|client| client.family_id())
        .map_err(|e| format!("IPVS family: {e}"))
}

/// The requests of a capture that change the table, as sorted lines.
fn describe_writes(requests: &[IpvsRequest]) -> Vec<String> {
    let mut writes: Vec<String> = requests
        .iter()
        .filter(|r| r.writes())
        .map(ToString::to_string)
        .collect();
    writes.sort();
    writes
}

/// Appended to CONFIG before the SIGHUP: a service the new config drops.
const OLD_SERVICE: &str = r#"
[[virtual_server]]
name = "old"
address = "192.0.2.100:81"
scheduler = "rr"
forwarding = "nat"

[[virtual_server.real]]
address = "198.51.100.11:8080"
weight = 1
"#;

/// Appended to CONFIG (with web's second weight changed) after the SIGHUP: a service it adds.
const NEW_SERVICE: &str = r#"
[[virtual_server]]
name = "new"
address = "192.0.2.100:82"
scheduler = "wlc"
forwarding = "nat"

[[virtual_server.real]]
address = "198.51.100.11:8080"
weight = 3

[[virtual_server.real]]
address = "198.51.100.12:8080"
weight = 4
"#;

/// `ipvsadm -Sn` lines in `a` and not in `b`.
fn lines_not_in(a: &str, b: &str) -> Vec<String> {
    let b: std::collections::BTreeSet<&str> = b.lines().collect();
    let mut only: Vec<String> = a
        .lines()
        .filter(|l| !b.contains(l))
        .map(str::to_owned)
        .collect();
    only.sort();
    only
}

fn sorted(lines: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    lines.sort();
    lines
}

/// SIGHUP with a config that adds a service, removes one and changes a weight sends exactly
/// those requests (seen on the wire with nlmon) and changes exactly those lines of the table,
/// leaving the operator's own service and destination alone. A broken config on SIGHUP changes
/// nothing, is logged with file:line:col, and status keeps showing the last good config.
fn sighup_applies_exactly_the_difference() -> Result<(), String> {
    let site = site()?;
    let run = PathBuf::from(format!("/run/lvs-directord-hup-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let config = run.join("director.toml");
    let socket = run.join("directord.sock");
    let log = run.join("directord.log");
    write_config(&config, &run, &format!("{CONFIG}{OLD_SERVICE}"))?;
    let after_hup = format!(
        "{}{NEW_SERVICE}",
        CONFIG.replace("weight = 50", "weight = 70")
    );
    // lvsadm finds the socket through a config of its own: the daemon's will be broken.
    let lvsadm_config = run.join("lvsadm.toml");
    write_config(
        &lvsadm_config,
        &run,
        "[control]\nsocket_dir = \"SOCKET_DIR\"\n",
    )?;

    // The operator's own service, and a destination of theirs in a service directord manages.
    site.director
        .run(&["ipvsadm", "-A", "-t", "192.0.2.100:443", "-s", "rr"])?;
    let directord =
        daemon::start_logged(&site.director, "directord", &config, &socket, Some(&log))?;
    site.director.run(&[
        "ipvsadm",
        "-a",
        "-t",
        "192.0.2.100:80",
        "-r",
        "198.51.100.99:8080",
        "-m",
        "-w",
        "5",
    ])?;
    let before = save(&site.director)?;
    if !before.contains("-A -t 192.0.2.100:81 -s rr") || !before.contains("-r 198.51.100.99:8080") {
        return Err(format!("table before the SIGHUP:\n{before}"));
    }
    let family = ipvs_family()?;

    let capture = Capture::start(&site.director, "nlmon0", &run)?;
    write_config(&config, &run, &after_hup)?;
    directord.signal(libc::SIGHUP);
    let after = wait_for(Duration::from_secs(15), || {
        let table = save(&site.director).ok()?;
        (!table.contains("192.0.2.100:81") && table.contains("-A -t 192.0.2.100:82"))
            .then_some(table)
    })
    .ok_or_else(|| {
        format!(
            "the SIGHUP was not applied:\n{}",
            save(&site.director).unwrap_or_default()
        )
    })?;
    let requests = capture.finish(family)?;
    let writes = describe_writes(&requests);
    // directord diffs against its cached table: the reload sends the changes and nothing else
    // (before the cache it dumped every service first, one GET_DEST per service).
    let by_directord: Vec<String> = requests
        .iter()
        .filter(|r| r.port == directord.pid())
        .map(ToString::to_string)
        .collect();
    if by_directord.len() != 5
        || requests
            .iter()
            .any(|r| r.port == directord.pid() && !r.writes())
    {
        return Err(format!(
            "the SIGHUP must cost directord exactly its 5 changes, no reads; it sent {by_directord:#?}"
        ));
    }
    let expected = sorted(&[
        "NewService tcp 192.0.2.100:82",
        "NewDest tcp 192.0.2.100:82 -> 198.51.100.11:8080 weight 3",
        "NewDest tcp 192.0.2.100:82 -> 198.51.100.12:8080 weight 4",
        "SetDest tcp 192.0.2.100:80 -> 198.51.100.12:8080 weight 70",
        "DelService tcp 192.0.2.100:81",
    ]);
    if writes != expected {
        return Err(format!(
            "the SIGHUP sent {writes:#?}\nexpected exactly {expected:#?}"
        ));
    }
    let gone = lines_not_in(&before, &after);
    let came = lines_not_in(&after, &before);
    let expected_gone = sorted(&[
        "-A -t 192.0.2.100:81 -s rr",
        "-a -t 192.0.2.100:81 -r 198.51.100.11:8080 -m -w 1",
        "-a -t 192.0.2.100:80 -r 198.51.100.12:8080 -m -w 50",
    ]);
    let expected_came = sorted(&[
        "-A -t 192.0.2.100:82 -s wlc",
        "-a -t 192.0.2.100:82 -r 198.51.100.11:8080 -m -w 3",
        "-a -t 192.0.2.100:82 -r 198.51.100.12:8080 -m -w 4",
        "-a -t 192.0.2.100:80 -r 198.51.100.12:8080 -m -w 70",
    ]);
    if gone != expected_gone || came != expected_came {
        return Err(format!(
            "the SIGHUP changed the table from\n{before}\nto\n{after}\n\
             (removed {gone:?}, added {came:?})"
        ));
    }
    println!("SIGHUP sent exactly: {writes:#?}");

    // A broken config: refused with its position, nothing sent, the last good one shown.
    let broken = after_hup.replace("scheduler = \"wlc\"", "scheduler = \"wlcc\"");
    // Where the diagnostic must point: the line of the bad value, the column of its quote.
    let (line, column) = broken
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("\"wlcc\"").map(|c| (i + 1, c + 1)))
        .ok_or("no broken line")?;
    let capture = Capture::start(&site.director, "nlmon1", &run)?;
    write_config(&config, &run, &broken)?;
    directord.signal(libc::SIGHUP);
    let logged = wait_for(Duration::from_secs(15), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("reload refused"))
    })
    .ok_or("directord did not log the refused reload")?;
    let position = format!("director.toml:{line}:{column}: ");
    let refusal = logged
        .lines()
        .skip_while(|l| !l.contains("reload refused"))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    if !refusal.contains(&position) || !refusal.contains("unknown scheduler") {
        return Err(format!(
            "the refusal must name {position}and the cause:\n{logged}"
        ));
    }
    println!("logged: {refusal}");
    // Proof that directord is past the reload: it answers, and the status comes after it.
    let status = control(&socket, &json!({"cmd": "status"}))?;
    let writes = describe_writes(&capture.finish(family)?);
    if !writes.is_empty() {
        return Err(format!("a refused reload sent {writes:#?}"));
    }
    if save(&site.director)? != after {
        return Err("a refused reload changed the table".to_owned());
    }
    let names: Vec<&str> = status["services"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["name"].as_str()).collect())
        .unwrap_or_default();
    if names != ["web", "new"] || status["services"][1]["scheduler"] != "wlc" {
        return Err(format!("status after a refused reload: {status}"));
    }
    let lvsadm = lvs_tests::workspace_bin("lvsadm");
    let shown = site.director.stdout(&[
        lvsadm.as_os_str(),
        "status".as_ref(),
        "--config".as_ref(),
        lvsadm_config.as_os_str(),
    ])?;
    if !shown.contains("new (tcp 192.0.2.100:82) wlc") || shown.contains("192.0.2.100:81") {
        return Err(format!("lvsadm status after a refused reload:\n{shown}"));
    }
    println!("lvsadm status:\n{shown}");
    verify_repairs_out_of_band_changes(&site.director, &directord, &config, &run, &after_hup)
}

/// With `verify_interval` short, an operator's `ipvsadm -e` on a server directord owns is
/// undone by the next verify (a whole-table read), with nothing else prompting directord.
fn verify_repairs_out_of_band_changes(
    director: &Netns,
    directord: &Guarded,
    config: &Path,
    run: &Path,
    text: &str,
) -> Result<(), String> {
    let text = text.replace(
        "[ipvs.sysctl]",
        "[ipvs]\nverify_interval = \"1s\"\n\n[ipvs.sysctl]",
    );
    write_config(config, run, &text)?;
    directord.signal(libc::SIGHUP);
    let owned = "-a -t 192.0.2.100:80 -r 198.51.100.12:8080 -m -w 70";
    wait_for(Duration::from_secs(15), || {
        save(director).ok().filter(|t| t.contains(owned))
    })
    .ok_or("the reload to verify_interval = 1s was not applied")?;
    let tampered = std::time::Instant::now();
    director.run(&[
        "ipvsadm",
        "-e",
        "-t",
        "192.0.2.100:80",
        "-r",
        "198.51.100.12:8080",
        "-m",
        "-w",
        "1",
    ])?;
    let repaired = wait_for(Duration::from_secs(10), || {
        save(director).ok().filter(|t| t.contains(owned))
    })
    .ok_or_else(|| {
        format!(
            "the verify did not put weight 70 back:\n{}",
            save(director).unwrap_or_default()
        )
    })?;
    if !repaired.contains("-r 198.51.100.99:8080") {
        return Err(format!(
            "the verify removed the operator's own server:\n{repaired}"
        ));
    }
    println!(
        "out-of-band weight change repaired by the verify after {:?}",
        tampered.elapsed()
    );
    // A ping: an empty answer, from the same loop that applies changes.
    let pong = control(&run.join("directord.sock"), &json!({"cmd": "ping"}))?;
    if pong != json!({}) {
        return Err(format!("ping answered {pong}"));
    }
    // vrrpd's probe (liveness and track_services): one flag per named service, no servers.
    let quorum = control(&run.join("directord.sock"), &json!({"cmd": "quorum"}))?;
    let held = quorum["quorum"].as_object().map(|q| {
        q.iter()
            .map(|(name, up)| (name.as_str(), up.is_boolean()))
            .collect::<Vec<_>>()
    });
    if held != Some(vec![("new", true), ("web", true)]) {
        return Err(format!("quorum answered {quorum}"));
    }
    // Status a page at a time: each answer says where the next page starts, the last none.
    let socket = run.join("directord.sock");
    let first = control(&socket, &json!({"cmd": "status", "limit": 1}))?;
    let second = control(&socket, &json!({"cmd": "status", "from": 1, "limit": 1}))?;
    let names = |page: &serde_json::Value| -> Vec<String> {
        page["services"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(|s| s["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    if names(&first) != ["web"]
        || first["next"] != 1
        || names(&second) != ["new"]
        || !second["next"].is_null()
    {
        return Err(format!("status pages: {first}\n{second}"));
    }
    Ok(())
}

const HEALTH_CONFIG: &str = r#"
[control]
socket_dir = "SOCKET_DIR"
metrics = "127.0.0.1:9542"

[[virtual_server]]
name = "web"
address = "WEB"
scheduler = "rr"
forwarding = "FORWARDING"
on_failure = "quiescent"
fallback = "198.51.100.250:PORT"
check = { type = "http", path = "/", expect_body = "real-", interval = "500ms", timeout = "400ms", rise = 2, fall = 2 }

[[virtual_server.real]]
address = "198.51.100.11:PORT"
weight = 10

[[virtual_server.real]]
address = "198.51.100.12:PORT"
weight = 10

[[virtual_server.real]]
address = "198.51.100.13:PORT"
weight = 10

[[virtual_server]]
name = "api"
address = "API"
scheduler = "rr"
forwarding = "FORWARDING"
on_failure = "remove"
check = { type = "connect", interval = "500ms", timeout = "400ms", rise = 2, fall = 2 }

[[virtual_server.real]]
address = "198.51.100.11:PORT"

[[virtual_server.real]]
address = "198.51.100.12:PORT"

[[virtual_server.real]]
address = "198.51.100.13:PORT"
"#;

/// What rise x interval and fall x interval (both 2 x 500 ms) allow in HEALTH_CONFIG, printed
/// next to what was measured: a shared UML is too slow for a timing assert.
const CHECKS_TIMES_INTERVAL: Duration = Duration::from_millis(2 * 500);

fn fetch(client: &Netns, service: &str) -> Result<String, String> {
    // busybox wget -T crashes under UML; coreutils timeout bounds it instead.
    client.stdout(&[
        "timeout",
        "5",
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{service}/"),
    ])
}

fn health_checks_quiesce_remove_and_fall_back_nat() -> Result<(), String> {
    health_checks_quiesce_remove_and_fall_back(Forward::Nat)
}

fn health_checks_quiesce_remove_and_fall_back_dr() -> Result<(), String> {
    health_checks_quiesce_remove_and_fall_back(Forward::Dr)
}

/// Real HTTP and connect checks drive the kernel table: a dead server is quiesced in one
/// service and removed from another, comes back after `rise` passes, and the sorry server
/// answers only while every real server is down.
fn health_checks_quiesce_remove_and_fall_back(forward: Forward) -> Result<(), String> {
    let mut site = site_with(3, forward)?;
    let [web, api] = forward.services();
    let port = forward.real_port();
    let flag = forward.flag();
    // The sorry server, on the real-server LAN.
    let sorry = lan_host(&site.director, "sorry", 250, forward)?;
    let sorry_www = tempfile::tempdir().map_err(|e| e.to_string())?;
    let _sorry_httpd = serve(&sorry, sorry_www.path(), "sorry\n", forward)?;

    let run = PathBuf::from(format!(
        "/run/lvs-directord-health-{forward:?}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let config = run.join("director.toml");
    let text = HEALTH_CONFIG
        .replace("WEB", web)
        .replace("API", api)
        .replace("FORWARDING", forward.config_word())
        .replace("PORT", &port.to_string());
    write_config(&config, &run, &text)?;
    let socket = run.join("directord.sock");
    let _directord = start(&site.director, &config, &socket)?;
    let table = || save(&site.director).unwrap_or_default();
    let settle = |what: &str, ok: &dyn Fn(&str) -> bool| {
        let started = std::time::Instant::now();
        wait_for(Duration::from_secs(15), || ok(&table()).then_some(()))
            .ok_or_else(|| format!("{what}; table:\n{}", table()))?;
        println!(
            "{what}: {:.2} s (rise or fall x interval = {:.2} s)",
            started.elapsed().as_secs_f64(),
            CHECKS_TIMES_INTERVAL.as_secs_f64()
        );
        Ok::<(), String>(())
    };
    let r0 = format!("-r 198.51.100.11:{port} {flag}");

    settle("three healthy servers in web", &|t: &str| {
        t.matches(&format!("{flag} -w 10")).count() == 3
    })?;
    let mut bodies = std::collections::BTreeSet::new();
    for _ in 0..6 {
        bodies.insert(fetch(&site.client, web)?);
    }
    if bodies.len() != 3 {
        return Err(format!(
            "expected all three real servers to answer, got {bodies:?}"
        ));
    }

    // r0's listener stops: quiesced in web (weight 0), removed from api; no new request reaches it.
    site._httpd.remove(0);
    settle("r0 quiesced in web and removed from api", &|t: &str| {
        t.contains(&format!("-a -t {web} {r0} -w 0")) && !t.contains(&format!("-a -t {api} {r0}"))
    })?;
    for service in [web, api] {
        for _ in 0..6 {
            if fetch(&site.client, service)? == "real-0\n" {
                return Err(format!("{service}: a failed server got a new request"));
            }
        }
    }

    // It starts again: back after rise checks, in both services, and serving again.
    let www_root = site._www.path().join("r0");
    site._httpd
        .insert(0, serve(&site.reals[0], &www_root, "real-0\n", forward)?);
    settle("r0 back in both services", &|t: &str| {
        t.contains(&format!("-a -t {web} {r0} -w 10")) && t.contains(&format!("-a -t {api} {r0}"))
    })?;
    for service in [web, api] {
        wait_for(Duration::from_secs(15), || {
            (fetch(&site.client, service).ok()? == "real-0\n").then_some(())
        })
        .ok_or_else(|| format!("{service}: r0 is back in the table but gets no request"))?;
    }

    // Every real server down: the fallback answers.
    site._httpd.clear();
    settle("fallback in web", &|t: &str| {
        t.contains(&format!("-r 198.51.100.250:{port} {flag} -w 1"))
    })?;
    let body = wait_for(Duration::from_secs(5), || fetch(&site.client, web).ok())
        .ok_or("no answer via the VIP")?;
    if body != "sorry\n" {
        return Err(format!("expected the sorry server, got {body:?}"));
    }
    println!("{}", table());
    every_real_down_in_the_metrics(&site.director, web, port)
}

/// What the dashboard and the all-down alert read: each real server's last check latency
/// (within the 400 ms timeout), its check count, and up at 0 for all three.
fn every_real_down_in_the_metrics(director: &Netns, web: &str, port: u16) -> Result<(), String> {
    let metrics = scrape(director)?;
    let sample = |name: &str, real: &str| {
        let prefix = format!("{name}{{service=\"tcp {web}\",real=\"{real}:{port}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse::<f64>().ok())
    };
    for real in ["198.51.100.11", "198.51.100.12", "198.51.100.13"] {
        let latency = sample("directord_check_latency_seconds", real);
        let checks = sample("directord_checks_total", real);
        let up = sample("directord_server_up", real);
        let fine = latency.is_some_and(|l| (0.0..=0.45).contains(&l))
            && checks.is_some_and(|c| c >= 4.0)
            && up == Some(0.0);
        if !fine {
            return Err(format!(
                "{real}: latency {latency:?}, checks {checks:?}, up {up:?}:\n{metrics}"
            ));
        }
    }
    lvs_tests::promtool::check_metrics(&metrics)?;
    // What monitoring/'s dashboard and alerts query of directord is in its scrape (probe
    // failures by cause only show once a probe has failed, as here).
    lvs_tests::promtool::check_exported(&metrics, &["directord_", "node_ipvs_"])
}

const QUORUM_CONFIG: &str = r#"
[control]
socket_dir = "SOCKET_DIR"

[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
scheduler = "rr"
forwarding = "nat"
on_failure = "quiescent"
quorum = 25
hysteresis = 5
quorum_up = "echo quorum-up web >> LOG"
quorum_down = "echo quorum-down web >> LOG"
omega = true
fallback = "198.51.100.250:8080"
check = { type = "connect", interval = "300ms", timeout = "250ms", rise = 1, fall = 1 }

[[virtual_server.real]]
address = "198.51.100.11:8080"
weight = 10
notify_up = "echo up r0 >> LOG"
notify_down = "echo down r0 >> LOG"

[[virtual_server.real]]
address = "198.51.100.12:8080"
weight = 10
on_failure = "remove"
notify_down = "echo down r1 >> LOG"

[[virtual_server.real]]
address = "198.51.100.13:8080"
weight = 10

# The same real servers and check: one probe each, whose result reaches both services.
[[virtual_server]]
name = "mirror"
address = "192.0.2.100:81"
scheduler = "rr"
forwarding = "nat"
on_failure = "remove"
check = { type = "connect", interval = "300ms", timeout = "250ms", rise = 1, fall = 1 }
real = [
  { address = "198.51.100.11:8080" },
  { address = "198.51.100.12:8080" },
  { address = "198.51.100.13:8080" },
]
"#;

/// keepalived's quorum with hysteresis on a real kernel table, read back with ipvsadm -Sn:
/// three real servers of weight 10, quorum 25 +/- 5. One down (20 live) keeps quorum; two
/// down (10) loses it, and the sorry server alone takes the service (the live server
/// quiesced, the failed `on_failure = "remove"` one gone); one back (20) is still short of
/// 30; both back gains it. quorum_up/quorum_down and the real servers' notify_up/notify_down
/// run at those moments (recorded by the scripts). A second service on the same real servers
/// and check follows every change from the same probes. With omega, SIGTERM runs the live
/// servers' notify_down and quorum_down, and leaves the table.
fn quorum_hysteresis_sorry_server_and_scripts() -> Result<(), String> {
    let mut site = site_with(3, Forward::Nat)?;
    let sorry = lan_host(&site.director, "sorry", 250, Forward::Nat)?;
    let sorry_www = tempfile::tempdir().map_err(|e| e.to_string())?;
    let _sorry_httpd = serve(&sorry, sorry_www.path(), "sorry\n", Forward::Nat)?;
    let run = PathBuf::from(format!("/run/lvs-directord-quorum-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let log = run.join("scripts.log");
    let config = run.join("director.toml");
    let text = QUORUM_CONFIG.replace("LOG", &log.display().to_string());
    write_config(&config, &run, &text)?;
    let socket = run.join("directord.sock");
    let mut directord = start(&site.director, &config, &socket)?;
    let table = || save(&site.director).unwrap_or_default();
    let calls = || {
        let mut lines: Vec<String> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    };
    let settle = |what: &str, ok: &dyn Fn(&str) -> bool, scripts: &[&str]| {
        wait_for(Duration::from_secs(15), || {
            let mut want: Vec<String> = scripts.iter().map(|s| (*s).to_owned()).collect();
            want.sort();
            (ok(&table()) && calls() == want).then_some(())
        })
        .ok_or_else(|| format!("{what}; table:\n{}\nscripts: {:?}", table(), calls()))
    };
    let web = "-t 192.0.2.100:80";
    let mirror = "-t 192.0.2.100:81";
    let has = |t: &str, service: &str, real: &str, weight: u32| {
        t.contains(&format!(
            "-a {service} -r 198.51.100.{real}:8080 -m -w {weight}"
        ))
    };
    let absent = |t: &str, service: &str, real: &str| {
        !t.contains(&format!("-a {service} -r 198.51.100.{real}:8080 "))
    };

    settle(
        "all up, quorum held, no sorry server",
        &|t| {
            ["11", "12", "13"]
                .iter()
                .all(|r| has(t, web, r, 10) && has(t, mirror, r, 1))
                && absent(t, web, "250")
        },
        &["quorum-up web"],
    )?;
    site._httpd.remove(0);
    settle(
        "r0 down: 20 live is not below 25 - 5",
        &|t| has(t, web, "11", 0) && has(t, web, "12", 10) && absent(t, mirror, "11"),
        &["down r0", "quorum-up web"],
    )?;
    site._httpd.remove(0);
    settle(
        "r1 down: 10 live, quorum lost, the sorry server alone",
        &|t| {
            has(t, web, "250", 1)
                && has(t, web, "11", 0)
                && absent(t, web, "12")
                && has(t, web, "13", 0)
                && has(t, mirror, "13", 1)
                && absent(t, mirror, "12")
        },
        &["down r0", "down r1", "quorum-down web", "quorum-up web"],
    )?;
    let www = site._www.path().to_owned();
    site._httpd.insert(
        0,
        serve(&site.reals[0], &www.join("r0"), "real-0\n", Forward::Nat)?,
    );
    settle(
        "r0 back: 20 live is short of 25 + 5, the sorry server stays",
        &|t| has(t, web, "250", 1) && has(t, web, "11", 0) && has(t, mirror, "11", 1),
        &[
            "down r0",
            "down r1",
            "quorum-down web",
            "quorum-up web",
            "up r0",
        ],
    )?;
    site._httpd.insert(
        1,
        serve(&site.reals[1], &www.join("r1"), "real-1\n", Forward::Nat)?,
    );
    settle(
        "r1 back: 30 live, quorum gained, the sorry server out",
        &|t| ["11", "12", "13"].iter().all(|r| has(t, web, r, 10)) && absent(t, web, "250"),
        &[
            "down r0",
            "down r1",
            "quorum-down web",
            "quorum-up web",
            "quorum-up web",
            "up r0",
        ],
    )?;
    // omega: SIGTERM runs the live real servers' notify_down (r0 and r1 have one), then
    // quorum_down, before directord exits; the table stays.
    let before = table();
    directord.signal(libc::SIGTERM);
    directord.wait_timeout(Duration::from_secs(10))?;
    let mut want = vec![
        "down r0",
        "down r0",
        "down r1",
        "down r1",
        "quorum-down web",
        "quorum-down web",
        "quorum-up web",
        "quorum-up web",
        "up r0",
    ];
    want.sort_unstable();
    if calls() != want {
        return Err(format!("omega at shutdown: scripts {:?}", calls()));
    }
    if table() != before {
        return Err(format!("the table changed at shutdown:\n{}", table()));
    }
    println!("{before}\nscripts: {:?}", calls());
    Ok(())
}

const GROUP_CONFIG: &str = r#"
[control]
socket_dir = "SOCKET_DIR"

[[virtual_server]]
name = "vsg"
group = ["192.0.2.100-103:80", "fwmark 7"]
forwarding = "nat"
check = { type = "external", command = "echo $LVS_REAL_IP >> LOG", interval = "300ms", timeout = "1s" }
real = [{ address = "198.51.100.11:8080" }, { address = "198.51.100.12:8080" }]
"#;

/// keepalived's virtual_server_group through the daemon: one block of five services (four
/// addresses and a fwmark) in the kernel, and its external check run once per real server
/// per interval for the whole group, counted by the command itself (one run per service and
/// real server would be five times as many).
fn a_group_runs_its_external_check_once_per_interval() -> Result<(), String> {
    let director = Netns::new("g")?;
    director.ip(&["link", "add", "d0", "type", "dummy"])?;
    director.ip(&["link", "set", "d0", "up"])?;
    director.ip(&["route", "add", "default", "dev", "d0"])?;
    let run = PathBuf::from(format!("/run/lvs-directord-group-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let log = run.join("runs");
    let config = run.join("director.toml");
    write_config(
        &config,
        &run,
        &GROUP_CONFIG.replace("LOG", &log.display().to_string()),
    )?;
    let socket = run.join("directord.sock");
    let _directord = start(&director, &config, &socket)?;
    let table = || save(&director).unwrap_or_default();
    wait_for(Duration::from_secs(15), || {
        (table().matches("-r 198.51.100.1").count() == 10).then_some(())
    })
    .ok_or_else(|| format!("five services of two real servers; table:\n{}", table()))?;
    let runs = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let before = runs();
    std::thread::sleep(Duration::from_secs(3));
    let during = runs() - before;
    // 3 s at 300 ms for 2 real servers: about 20 runs; one per service would be about 100.
    println!("{during} runs in 3 s for 2 real servers in a group of 5 services");
    if !(10..=30).contains(&during) {
        return Err(format!("{during} external check runs in 3 s"));
    }
    Ok(())
}

const HA_SUSPEND_CONFIG: &str = r#"
[control]
socket_dir = "SOCKET_DIR"

[[virtual_server]]
address = "192.0.2.100:80"
forwarding = "nat"
ha_suspend = true
check = { type = "external", command = "echo run >> LOG", interval = "200ms", timeout = "1s" }
real = [{ address = "198.51.100.11:8080" }]
"#;

/// keepalived's ha_suspend: the service's check runs only while its virtual address is on
/// the host (counted by the command): none while the address is absent, runs once it is
/// added, none again once it is removed; the real server stays in the table throughout.
fn ha_suspend_checks_only_while_the_address_is_here() -> Result<(), String> {
    let director = Netns::new("h")?;
    director.ip(&["link", "add", "d0", "type", "dummy"])?;
    director.ip(&["link", "set", "d0", "up"])?;
    director.ip(&["route", "add", "default", "dev", "d0"])?;
    let run = PathBuf::from(format!("/run/lvs-directord-ha-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let log = run.join("runs");
    let config = run.join("director.toml");
    let text = HA_SUSPEND_CONFIG.replace("LOG", &log.display().to_string());
    write_config(&config, &run, &text)?;
    let _directord = start(&director, &config, &run.join("directord.sock"))?;
    let in_table = || {
        save(&director)
            .unwrap_or_default()
            .contains("-r 198.51.100.11:8080")
    };
    wait_for(Duration::from_secs(15), || in_table().then_some(())).ok_or("no table")?;
    let runs = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };
    std::thread::sleep(Duration::from_secs(2));
    if runs() != 0 {
        return Err(format!("{} runs while the address is absent", runs()));
    }
    director.ip(&["addr", "add", "192.0.2.100/32", "dev", "lo"])?;
    wait_for(Duration::from_secs(5), || (runs() >= 3).then_some(()))
        .ok_or("no run once the address is here")?;
    director.ip(&["addr", "del", "192.0.2.100/32", "dev", "lo"])?;
    std::thread::sleep(Duration::from_millis(1500));
    let paused = runs();
    std::thread::sleep(Duration::from_millis(1500));
    if runs() != paused {
        return Err(format!("{} runs after the address left", runs() - paused));
    }
    if !in_table() {
        return Err("the real server left the table".to_owned());
    }
    println!("{paused} runs while the address was here, none before or after");
    Ok(())
}

const ADMIN_CONFIG: &str = r#"
[control]
socket_dir = "SOCKET_DIR"
state_dir = "SOCKET_DIR/state"

[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
forwarding = "nat"
real = [
  { address = "198.51.100.11:8080", weight = 10 },
  { address = "198.51.100.12:8080", weight = 20 },
  { address = "198.51.100.13:8080", weight = 30 },
]
"#;

/// `lvsadm drain|maint|enable`: a drained server stays at weight 0 and one in maintenance
/// leaves the table, through a reload and a kill -9 and restart of directord (kept in
/// `state_dir`), until `enable` gives it back. Caught when written: an operator's only tool
/// was `ipvsadm -e -w 0`, which directord's next reconcile undid.
fn drain_and_maint_outlive_reload_and_restart() -> Result<(), String> {
    let director = Netns::new("m")?;
    let run = PathBuf::from(format!("/run/lvs-directord-admin-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let config = run.join("director.toml");
    write_config(&config, &run, ADMIN_CONFIG)?;
    let socket = run.join("directord.sock");
    let mut directord = start(&director, &config, &socket)?;
    let lvsadm = lvs_tests::workspace_bin("lvsadm");
    let admin = |what: &str, real: &str| {
        director.stdout(&[
            lvsadm.as_os_str(),
            what.as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "web".as_ref(),
            real.as_ref(),
        ])
    };
    let table = || save(&director).unwrap_or_default();
    let expect = |what: &str, lines: &[&str]| {
        wait_for(Duration::from_secs(10), || {
            let now = table();
            lines
                .iter()
                .all(|line| match line.strip_prefix('!') {
                    Some(absent) => !now.contains(absent),
                    None => now.contains(line),
                })
                .then_some(())
        })
        .ok_or_else(|| format!("{what}; table:\n{}", table()))
    };
    expect(
        "three servers",
        &["198.51.100.11:8080 -m -w 10", "198.51.100.13:8080 -m -w 30"],
    )?;
    admin("drain", "198.51.100.11:8080")?;
    admin("maint", "198.51.100.13:8080")?;
    let held = [
        "198.51.100.11:8080 -m -w 0",
        "198.51.100.12:8080 -m -w 20",
        "!198.51.100.13:8080",
    ];
    expect("drained and in maintenance", &held)?;
    let shown = director.stdout(&[
        lvsadm.as_os_str(),
        "table".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ])?;
    if !shown.contains("drain") || !shown.contains("maint") {
        return Err(format!("lvsadm table does not show them:\n{shown}"));
    }
    director.run(&["kill", "-HUP", &directord.pid().to_string()])?;
    std::thread::sleep(Duration::from_secs(1));
    expect("after a reload", &held)?;
    director.run(&["kill", "-9", &directord.pid().to_string()])?;
    let _ = directord.child_mut().wait();
    drop(directord);
    let _ = std::fs::remove_file(&socket);
    let _directord = start(&director, &config, &socket)?;
    std::thread::sleep(Duration::from_secs(1));
    expect("after kill -9 and a restart", &held)?;
    admin("enable", "198.51.100.11:8080")?;
    admin("enable", "198.51.100.13:8080")?;
    expect(
        "enabled again",
        &["198.51.100.11:8080 -m -w 10", "198.51.100.13:8080 -m -w 30"],
    )?;
    if admin("drain", "198.51.100.99:8080").is_ok() {
        return Err("a server the service does not have was accepted".to_owned());
    }
    Ok(())
}
