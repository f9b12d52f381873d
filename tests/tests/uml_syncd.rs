//! UML lane: syncd between two directors with real IPVS kernels.
//!
//! Namespaces: client `c` (192.0.2.2) -> director A (VIP 192.0.2.100, NAT) -> real server
//! `r` (198.51.100.11:8080, busybox httpd). Director B has the same service but no traffic.
//! A and B share the sync link 203.0.113.0/24 (A s0 .1, B s1 .2).
//!
//! To prove that syncd carries the updates (and not the kernels between themselves), the
//! relay cases give B's syncd and kernel backup another group and port (224.0.0.82:8849)
//! than A's kernel master uses (224.0.0.81:8848): B's kernel can only learn through syncd B,
//! which gets A's updates by unicast from syncd A. Every syncd here receives its peers'
//! unicast on `unicast_port = 8849`, so peers are written without a port, as in a config
//! both directors share.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use lvs_tests::daemon::{self, control};
use lvs_tests::netns::{Netns, veth};
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::uml::{self, Case};
use serde_json::{Value, json};

type Lane = fn() -> Result<(), String>;

fn main() -> ExitCode {
    let cases: [(&'static str, Lane); 10] = [
        (
            "syncd_relays_master_to_backup",
            syncd_relays_master_to_backup,
        ),
        ("syncd_resyncs_a_late_backup", syncd_resyncs_a_late_backup),
        (
            "syncd_observes_kernel_to_kernel_sync",
            syncd_observes_kernel_to_kernel_sync,
        ),
        ("syncd_follows_the_vrrp_role", syncd_follows_the_vrrp_role),
        ("syncd_reloads_sync_on_sighup", syncd_reloads_sync_on_sighup),
        (
            "syncd_hears_every_sync_port_of_the_kernel",
            syncd_hears_every_sync_port_of_the_kernel,
        ),
        (
            "syncd_syncs_over_an_ipv6_group",
            syncd_syncs_over_an_ipv6_group,
        ),
        (
            "syncd_learns_the_group_only_from_its_sources",
            syncd_learns_the_group_only_from_its_sources,
        ),
        (
            "syncd_says_when_its_hellos_go_unanswered",
            syncd_says_when_its_hellos_go_unanswered,
        ),
        (
            "syncd_restarting_without_vrrpd_keeps_the_kernel_master",
            syncd_restarting_without_vrrpd_keeps_the_kernel_master,
        ),
    ];
    uml::main(&cases.map(|(name, run)| Case::new(name, run).with_timeout(Duration::from_secs(90))))
}

const VIP: &str = "192.0.2.100";

struct Site {
    client: Netns,
    a: Netns,
    b: Netns,
    _real: Netns,
    run: PathBuf,
    _www: tempfile::TempDir,
    _httpd: Guarded,
}

fn site() -> Result<Site, String> {
    let client = Netns::new("c")?;
    let a = Netns::new("a")?;
    let b = Netns::new("b")?;
    let real = Netns::new("r")?;
    veth(&client, "c0", &a, "a0")?;
    client.addr("c0", "192.0.2.2/24")?;
    client.default_route("192.0.2.1")?;
    a.addr("a0", "192.0.2.1/24")?;
    veth(&a, "a1", &real, "r0")?;
    a.addr("a1", "198.51.100.1/24")?;
    real.addr("r0", "198.51.100.11/24")?;
    real.default_route("198.51.100.1")?;
    veth(&a, "s0", &b, "s1")?;
    a.addr("s0", "203.0.113.1/24")?;
    b.addr("s1", "203.0.113.2/24")?;
    for director in [&a, &b] {
        director.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
        director.sysctl("net.ipv4.ip_forward=1")?;
        director.run(&["ipvsadm", "-A", "-t", &format!("{VIP}:80"), "-s", "rr"])?;
        director.run(&[
            "ipvsadm",
            "-a",
            "-t",
            &format!("{VIP}:80"),
            "-r",
            "198.51.100.11:8080",
            "-m",
        ])?;
    }
    let www = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(www.path().join("index.html"), "real\n").map_err(|e| e.to_string())?;
    let httpd = real.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        www.path().to_str().unwrap_or_default(),
    ])?;
    let run = PathBuf::from(format!("/run/lvs-syncd-test-{}", std::process::id()));
    for side in ["a", "b"] {
        std::fs::create_dir_all(run.join(side)).map_err(|e| e.to_string())?;
    }
    Ok(Site {
        client,
        a,
        b,
        _real: real,
        run,
        _www: www,
        _httpd: httpd,
    })
}

fn config(socket_dir: &Path, interface: &str, role: &str, group: &str, peers: &[&str]) -> String {
    config_with_role(socket_dir, interface, &format!("{role:?}"), group, peers)
}

fn config_with_role(
    socket_dir: &Path,
    interface: &str,
    role: &str,
    group: &str,
    peers: &[&str],
) -> String {
    let peers: Vec<String> = peers.iter().map(|p| format!("{p:?}")).collect();
    format!(
        "[control]\nsocket_dir = {dir:?}\n\n[sync]\ninterface = {interface:?}\nsyncid = 5\n\
         role = {role}\ngroup = {group:?}\nunicast_port = 8849\npeers = [{peers}]\n",
        dir = socket_dir.display().to_string(),
        peers = peers.join(", "),
    )
}

/// Connections that stay ESTABLISHED: each sends an incomplete request (its third packet
/// into the director, which is when a kernel master first syncs a connection) and waits.
fn hold_connections(client: &Netns, count: usize) -> Result<Guarded, String> {
    let script = format!(
        "import socket, time\n\
         held = []\n\
         for _ in range({count}):\n\
         \x20   s = socket.create_connection(('{VIP}', 80))\n\
         \x20   s.sendall(b'GET / HTTP/1.1\\r\\nHost: vip\\r\\n')\n\
         \x20   held.append(s)\n\
         time.sleep(300)\n"
    );
    client.spawn(&["python3", "-c", &script])
}

fn fetch(client: &Netns, times: usize) -> Result<(), String> {
    for _ in 0..times {
        let body = client.stdout(&[
            "busybox",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{VIP}/"),
        ])?;
        if body != "real\n" {
            return Err(format!("unexpected body {body:?}"));
        }
    }
    Ok(())
}

/// (protocol, client, virtual, destination, state) of every row of /proc/net/ip_vs_conn,
/// addresses and ports as the kernel prints them.
type Row = (String, String, String, String, String);

fn table(director: &Netns) -> Result<BTreeSet<Row>, String> {
    let text = director.stdout(&["cat", "/proc/net/ip_vs_conn"])?;
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() >= 8).then(|| {
                (
                    f[0].to_owned(),
                    format!("{}:{}", f[1], f[2]),
                    format!("{}:{}", f[3], f[4]),
                    format!("{}:{}", f[5], f[6]),
                    f[7].to_owned(),
                )
            })
        })
        .collect())
}

fn established(rows: &BTreeSet<Row>) -> usize {
    rows.iter().filter(|r| r.4 == "ESTABLISHED").count()
}

/// Waits until `rows` (a kernel's table, a mirror) shows at least `count` ESTABLISHED
/// connections, and returns them.
fn await_established(
    count: usize,
    limit: Duration,
    mut rows: impl FnMut() -> Result<BTreeSet<Row>, String>,
) -> Option<BTreeSet<Row>> {
    wait_for(limit, || rows().ok().filter(|t| established(t) >= count))
}

/// The mirror as the same kind of rows, from syncd's `dump`.
fn dump_rows(socket: &Path) -> Result<BTreeSet<Row>, String> {
    let dump = control(socket, &json!({"cmd": "dump"}))?;
    let hex = |addr: &str| -> Result<String, String> {
        let sa: std::net::SocketAddrV4 = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        Ok(format!("{:08X}:{:04X}", u32::from(*sa.ip()), sa.port()))
    };
    let mut rows = BTreeSet::new();
    for entry in dump["entries"].as_array().ok_or("dump without entries")? {
        let field = |k: &str| entry[k].as_str().unwrap_or_default().to_owned();
        rows.insert((
            field("protocol"),
            hex(&field("client"))?,
            hex(&field("virtual_addr"))?,
            hex(&field("dest"))?,
            field("state"),
        ));
    }
    Ok(rows)
}

fn show(rows: &BTreeSet<Row>) -> String {
    rows.iter()
        .map(|r| format!("  {} {} {} {} {}", r.0, r.1, r.2, r.3, r.4))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until `b_rows` holds every row of A's table, then returns both.
fn converge(
    a: &Netns,
    mut b_rows: impl FnMut() -> Result<BTreeSet<Row>, String>,
    limit: Duration,
) -> Result<(BTreeSet<Row>, BTreeSet<Row>), String> {
    let mut last = (BTreeSet::new(), BTreeSet::new());
    let done = wait_for(limit, || {
        let a_rows = table(a).ok()?;
        let b = b_rows().ok()?;
        let ok = !a_rows.is_empty() && a_rows.is_subset(&b);
        last = (a_rows, b);
        ok.then(|| last.clone())
    });
    done.ok_or_else(|| {
        format!(
            "did not converge.\nA's table:\n{}\nthe other side:\n{}",
            show(&last.0),
            show(&last.1)
        )
    })
}

/// Link counters, kernel messages and sync settings, for a failure report.
fn diagnose(site: &Site) -> String {
    let script = "ip -s link show s0 2>&1; ip -s link show s1 2>&1; ipvsadm -L --daemon; \
                  cat /proc/sys/net/ipv4/vs/sync_threshold /proc/sys/net/ipv4/vs/sync_version; \
                  cat /proc/net/ip_vs_conn_sync; dmesg | tail -n 15";
    format!(
        "--- A ---\n{}\n--- B ---\n{}",
        site.a.sh(script).unwrap_or_else(|e| e),
        site.b.sh(script).unwrap_or_else(|e| e)
    )
}

/// B's side of the relay cases: a group and port of its own, so it can learn only from A's
/// syncd, its peer.
fn relay_backup_config(site: &Site) -> String {
    config(
        &site.run.join("b"),
        "s1",
        "backup",
        "224.0.0.82:8849",
        &["203.0.113.1"],
    )
}

/// Writes a shared key, readable by root only, and returns the `key_file` line naming it.
fn with_key(site: &Site) -> Result<String, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = site.run.join("sync.key");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, b"a shared key for the sync test\n")
        .map_err(|e| e.to_string())?;
    Ok(format!("key_file = {:?}\n", path.display().to_string()))
}

fn counter(status: &Value, name: &str) -> u64 {
    status["counters"][name].as_u64().unwrap_or(0)
}

fn syncd_relays_master_to_backup() -> Result<(), String> {
    let site = site()?;
    let a_text = config(
        &site.run.join("a"),
        "s0",
        "master",
        "224.0.0.81:8848",
        &["203.0.113.2"],
    );
    let b_text = relay_backup_config(&site);
    let a_text = a_text.replace("[control]\n", "[control]\nmetrics = \"127.0.0.1:9100\"\n");
    let (_syncd_a, socket_a) =
        daemon::start_with_config(&site.a, "syncd", &site.run.join("a"), &a_text)?;
    let (_syncd_b, socket_b) =
        daemon::start_with_config(&site.b, "syncd", &site.run.join("b"), &b_text)?;
    let daemons_a = site.a.stdout(&["ipvsadm", "-L", "--daemon"])?;
    let daemons_b = site.b.stdout(&["ipvsadm", "-L", "--daemon"])?;
    println!("A: {daemons_a}B: {daemons_b}");
    if !daemons_a.contains("master sync daemon") || daemons_a.contains("backup") {
        return Err(format!("A must run the kernel master only: {daemons_a}"));
    }
    if !daemons_b.contains("backup sync daemon") || daemons_b.contains("master") {
        return Err(format!("B must run the kernel backup only: {daemons_b}"));
    }

    let _held = hold_connections(&site.client, 3)?;
    fetch(&site.client, 2)?;
    await_established(3, Duration::from_secs(10), || table(&site.a))
        .ok_or("A never had the 3 held connections ESTABLISHED")?;
    let (a_rows, b_rows) = converge(&site.a, || table(&site.b), Duration::from_secs(20))?;
    println!("A:\n{}\nB:\n{}", show(&a_rows), show(&b_rows));
    if established(&b_rows) < 3 {
        return Err("B lacks the held ESTABLISHED connections".to_owned());
    }
    let status_a = control(&socket_a, &json!({"cmd": "status"}))?;
    let status_b = control(&socket_b, &json!({"cmd": "status"}))?;
    println!("syncd A: {status_a}\nsyncd B: {status_b}");
    if counter(&status_a, "kernel_messages_observed") == 0
        || counter(&status_a, "messages_sent") == 0
    {
        return Err("syncd A neither observed nor forwarded".to_owned());
    }
    if counter(&status_b, "messages_injected") == 0 || counter(&status_b, "resyncs_received") == 0 {
        return Err("syncd B neither injected nor got its resync".to_owned());
    }
    // The same counters on Prometheus (control.metrics + 2 for syncd).
    let metrics = site.a.stdout(&[
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1:9102/metrics",
    ])?;
    let sent = metrics
        .lines()
        .find_map(|l| l.strip_prefix("syncd_messages_sent_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    if sent.is_none_or(|n| n == 0) || !metrics.contains("syncd_master 1") {
        return Err(format!("metrics of syncd A:\n{metrics}"));
    }
    // The sync lag for dashboards and alerts: the newest update is a moment old, not 0.
    let updated = metrics
        .lines()
        .find_map(|l| l.strip_prefix("syncd_last_update_timestamp_seconds "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs_f64();
    if !(now - 120.0..=now + 5.0).contains(&updated) {
        return Err(format!("last update {updated}, now {now}:\n{metrics}"));
    }
    lvs_tests::promtool::check_metrics(&metrics)?;
    lvs_tests::promtool::check_exported(&metrics, &["syncd_"])?;

    // Garbage on the sync port is counted by cause and changes nothing.
    site.a.run(&[
        "python3",
        "-c",
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for m in (b'\\x00\\x05\\x00\\x30\\x01\\x01\\x00\\x00', b'LVSH\\x01\\x07\\x05\\x00\\x00\\x00\\x00\\x00', b'\\x01'):\n\
         \x20   s.sendto(m, ('203.0.113.2', 8849))",
    ])?;
    let drops = wait_for(Duration::from_secs(5), || {
        let status = control(&socket_b, &json!({"cmd": "status"})).ok()?;
        let drops = status["counters"]["drops"].clone();
        (drops["size_mismatch"].as_u64().is_some()
            && drops["hello_kind"].as_u64().is_some()
            && drops["header_truncated"].as_u64().is_some())
        .then_some(drops)
    })
    .ok_or("malformed datagrams were not counted by cause")?;
    println!("drops on B: {drops}");
    control(&socket_b, &json!({"cmd": "status"}))
        .map_err(|e| format!("syncd B after garbage: {e}"))?;
    Ok(())
}

fn syncd_resyncs_a_late_backup() -> Result<(), String> {
    let site = site()?;
    let a_text = config(
        &site.run.join("a"),
        "s0",
        "master",
        "224.0.0.81:8848",
        &["203.0.113.2"],
    );
    let b_text = relay_backup_config(&site);
    // Both with the shared key: hellos, the resync and its notice all carry its tag.
    let key = with_key(&site)?;
    let (a_text, b_text) = (format!("{a_text}{key}"), format!("{b_text}{key}"));
    // Held before syncd A runs: only A's snapshot of /proc/net/ip_vs_conn knows them.
    let _early = hold_connections(&site.client, 2)?;
    await_established(2, Duration::from_secs(10), || table(&site.a))
        .ok_or("A never had the 2 early connections ESTABLISHED")?;
    let (_syncd_a, socket_a) =
        daemon::start_with_config(&site.a, "syncd", &site.run.join("a"), &a_text)?;
    // Made while syncd A watches, with nobody to forward to yet.
    let _late = hold_connections(&site.client, 2)?;
    await_established(4, Duration::from_secs(15), || dump_rows(&socket_a))
        .ok_or("syncd A's mirror never held all 4 connections")?;
    if established(&table(&site.b)?) != 0 {
        return Err("B has connections before its syncd runs".to_owned());
    }

    let (_syncd_b, socket_b) =
        daemon::start_with_config(&site.b, "syncd", &site.run.join("b"), &b_text)?;
    let (a_rows, b_rows) = converge(&site.a, || table(&site.b), Duration::from_secs(20))?;
    println!("A:\n{}\nB:\n{}", show(&a_rows), show(&b_rows));
    if established(&b_rows) < 4 {
        return Err("B lacks held ESTABLISHED connections".to_owned());
    }
    let status_a = control(&socket_a, &json!({"cmd": "status"}))?;
    let status_b = control(&socket_b, &json!({"cmd": "status"}))?;
    println!("syncd A: {status_a}\nsyncd B: {status_b}");
    if counter(&status_a, "snapshot_entries") < 2 || counter(&status_a, "resyncs_sent") == 0 {
        return Err("syncd A did not snapshot and resync".to_owned());
    }
    if counter(&status_b, "resyncs_received") == 0 {
        return Err("syncd B got no resync".to_owned());
    }
    // An unsigned hello from A's address is dropped for its missing tag.
    site.a.run(&[
        "python3",
        "-c",
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.sendto(b'LVSH\\x01\\x01\\x05\\x00\\x00\\x00\\x00\\x00' + bytes(32), ('203.0.113.2', 8849))",
    ])?;
    wait_for(Duration::from_secs(5), || {
        let status = control(&socket_b, &json!({"cmd": "status"})).ok()?;
        status["counters"]["drops"]["auth_bad_tag"]
            .as_u64()
            .map(drop)
    })
    .ok_or("an unsigned datagram to a keyed syncd was not dropped as auth_bad_tag")?;
    // On demand: the master re-reads the kernel's table; a backup refuses.
    let taken = control(&socket_a, &json!({"cmd": "snapshot"}))?;
    if taken["entries"].as_u64().is_none_or(|n| n < 4) {
        return Err(format!("snapshot on demand: {taken}"));
    }
    match control(&socket_b, &json!({"cmd": "snapshot"})) {
        Err(e) if e.contains("master role only") => {}
        other => return Err(format!("a backup must refuse a snapshot: {other:?}")),
    }
    Ok(())
}

fn syncd_observes_kernel_to_kernel_sync() -> Result<(), String> {
    let site = site()?;
    let a_text = config(&site.run.join("a"), "s0", "master", "224.0.0.81:8848", &[]);
    site.b.run(&[
        "ipvsadm",
        "--start-daemon",
        "backup",
        "--mcast-interface",
        "s1",
        "--syncid",
        "5",
    ])?;
    let (_syncd_a, socket_a) =
        daemon::start_with_config(&site.a, "syncd", &site.run.join("a"), &a_text)?;
    let _held = hold_connections(&site.client, 3)?;
    fetch(&site.client, 2)?;
    await_established(3, Duration::from_secs(10), || table(&site.a))
        .ok_or("A never had the 3 held connections ESTABLISHED")?;
    // The kernel backup learns straight from the kernel master...
    converge(&site.a, || table(&site.b), Duration::from_secs(20))
        .map_err(|e| format!("{e}\n{}", diagnose(&site)))?;
    // ...and syncd A, only listening, decoded the same table.
    let (a_rows, mirror) = converge(&site.a, || dump_rows(&socket_a), Duration::from_secs(10))?;
    println!(
        "A:\n{}\nsyncd A's mirror:\n{}",
        show(&a_rows),
        show(&mirror)
    );
    if a_rows != mirror {
        return Err("syncd A's mirror has entries A's table does not".to_owned());
    }
    let status = control(&socket_a, &json!({"cmd": "status"}))?;
    println!("syncd A: {status}");
    if counter(&status, "snapshot_entries") != 0 || counter(&status, "kernel_entries_observed") == 0
    {
        return Err("the mirror must come from observed messages, not a snapshot".to_owned());
    }

    // A syncd backup on B adopts the kernel backup started by hand and learns the group's
    // messages without handing them to its kernel a second time.
    let b_text = config(&site.run.join("b"), "s1", "backup", "224.0.0.81:8848", &[]);
    let (_syncd_b, socket_b) =
        daemon::start_with_config(&site.b, "syncd", &site.run.join("b"), &b_text)?;
    let _more = hold_connections(&site.client, 2)?;
    await_established(5, Duration::from_secs(10), || table(&site.a))
        .ok_or("A never had the 2 more connections ESTABLISHED")?;
    let learned = await_established(2, Duration::from_secs(10), || dump_rows(&socket_b))
        .ok_or("syncd B did not learn the 2 new connections from the group")?;
    let a_rows = table(&site.a)?;
    if !learned.is_subset(&a_rows) {
        return Err(format!(
            "syncd B learned rows A does not have:\n{}\nA:\n{}",
            show(&learned),
            show(&a_rows)
        ));
    }
    let status_b = control(&socket_b, &json!({"cmd": "status"}))?;
    println!("syncd B: {status_b}");
    if counter(&status_b, "messages_received") == 0 || counter(&status_b, "messages_injected") != 0
    {
        return Err("syncd B must learn the group's messages and inject none".to_owned());
    }
    if status_b["kernel_daemons"] != json!(["backup"]) {
        return Err(format!(
            "B's kernel daemons: {}",
            status_b["kernel_daemons"]
        ));
    }
    Ok(())
}

/// A stand-in for vrrpd's control socket: answers `status` with one instance in `state` and
/// streams `State` events to subscribers when [`FakeVrrpd::transition`] is called.
struct FakeVrrpd {
    state: std::sync::Arc<std::sync::Mutex<String>>,
    subscribers: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
}

impl FakeVrrpd {
    fn serve(path: &Path, state: &str) -> Result<FakeVrrpd, String> {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::os::unix::net::UnixListener::bind(path).map_err(|e| e.to_string())?;
        let fake = FakeVrrpd {
            state: std::sync::Arc::new(std::sync::Mutex::new(state.to_owned())),
            subscribers: std::sync::Arc::default(),
        };
        let (state, subscribers) = (fake.state.clone(), fake.subscribers.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (state, subscribers) = (state.clone(), subscribers.clone());
                std::thread::spawn(move || {
                    let Ok(mut writer) = stream.try_clone() else {
                        return;
                    };
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        if line.trim() == "\"subscribe\"" {
                            if let Ok(clone) = writer.try_clone() {
                                subscribers
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .push(clone);
                            }
                            continue;
                        }
                        let current = state.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        let status = lvs_control::vrrpd::Status {
                            bfd: Vec::new(),
                            instances: vec![lvs_control::vrrpd::InstanceStatus {
                                name: "VI_1".to_owned(),
                                interface: "a0".to_owned(),
                                vrid: 51,
                                state: current,
                                configured_priority: 100,
                                priority: 100,
                                master: None,
                                virtual_addresses: vec![format!("{VIP}/32")],
                                counters: lvs_control::vrrpd::Counters::default(),
                                forced_backup: false,
                            }],
                            interfaces: Vec::new(),
                            directord: None,
                            announce: None,
                        };
                        let reply = json!({ "ok": status });
                        if writeln!(writer, "{reply}").is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(fake)
    }

    fn transition(&self, new: &str) {
        use std::io::Write;
        let old = std::mem::replace(
            &mut *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            new.to_owned(),
        );
        let event = serde_json::to_string(&lvs_control::vrrpd::Event::State {
            instance: "VI_1".to_owned(),
            old,
            new: new.to_owned(),
        })
        .unwrap_or_default();
        for subscriber in self
            .subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
        {
            let _ = writeln!(subscriber, "{event}");
        }
    }
}

fn wait_role(director: &Netns, socket: &Path, role: &str) -> Result<Value, String> {
    let other = if role == "master" { "backup" } else { "master" };
    wait_for(Duration::from_secs(10), || {
        let status = control(socket, &json!({"cmd": "status"})).ok()?;
        let daemons = director.stdout(&["ipvsadm", "-L", "--daemon"]).ok()?;
        (status["role"] == role
            && daemons.contains(&format!("{role} sync daemon"))
            && !daemons.contains(&format!("{other} sync daemon")))
        .then_some(status)
    })
    .ok_or_else(|| {
        format!(
            "syncd did not become {role} with only the kernel {role} daemon: {:?} / {:?}",
            control(socket, &json!({"cmd": "status"})),
            director.stdout(&["ipvsadm", "-L", "--daemon"])
        )
    })
}

fn syncd_follows_the_vrrp_role() -> Result<(), String> {
    let site = site()?;
    let dir = site.run.join("a");
    let vrrpd = FakeVrrpd::serve(&dir.join("vrrpd.sock"), "MASTER")?;
    let text = format!(
        "[[vrrp.instance]]\nname = \"VI_1\"\ninterface = \"a0\"\nvrid = 51\n\
         virtual_addresses = [\"{VIP}/32\"]\n\n{}",
        config_with_role(&dir, "s0", "{ follow = \"VI_1\" }", "224.0.0.81:8848", &[],)
    );
    let (_syncd, socket) = daemon::start_with_config(&site.a, "syncd", &site.run.join("a"), &text)?;
    let status = wait_role(&site.a, &socket, "master")?;
    if status["role_source"] != "follow VI_1" {
        return Err(format!("role source: {}", status["role_source"]));
    }
    let _held = hold_connections(&site.client, 2)?;
    let mirrored = wait_for(Duration::from_secs(10), || {
        let status = control(&socket, &json!({"cmd": "status"})).ok()?;
        let size = status["mirror_size"].as_u64()?;
        (size >= 2).then_some(size)
    })
    .ok_or("the mirror never held the held connections")?;

    vrrpd.transition("BACKUP");
    let status = wait_role(&site.a, &socket, "backup")?;
    println!("after BACKUP: {status}");
    if status["mirror_size"].as_u64() != Some(mirrored) {
        return Err(format!(
            "a master turned backup must keep its mirror of {mirrored}: {status}"
        ));
    }
    vrrpd.transition("MASTER");
    let status = wait_role(&site.a, &socket, "master")?;
    println!("after MASTER: {status}");
    Ok(())
}

/// SIGHUP with a new [sync]: A's master syncd gains B as a peer and a new maxlen without a
/// restart, so B's kernel learns connections A's syncd only had in its mirror; a changed
/// group is named in the log as waiting for a restart, and the running group keeps working.
fn syncd_reloads_sync_on_sighup() -> Result<(), String> {
    let site = site()?;
    let dir_a = site.run.join("a");
    let a_text = config(&dir_a, "s0", "master", "224.0.0.81:8848", &[]);
    let b_text = relay_backup_config(&site);
    let config_a = dir_a.join("director.toml");
    std::fs::write(&config_a, &a_text).map_err(|e| e.to_string())?;
    let log_a = dir_a.join("syncd.log");
    let socket_a = dir_a.join("syncd.sock");
    let syncd_a = daemon::start_logged(&site.a, "syncd", &config_a, &socket_a, Some(&log_a))?;
    let (_syncd_b, socket_b) =
        daemon::start_with_config(&site.b, "syncd", &site.run.join("b"), &b_text)?;

    let _held = hold_connections(&site.client, 2)?;
    await_established(2, Duration::from_secs(15), || dump_rows(&socket_a))
        .ok_or("syncd A's mirror never held the 2 connections")?;
    // B asked, and A, with no peers configured, refused.
    wait_for(Duration::from_secs(15), || {
        let status = control(&socket_a, &json!({"cmd": "status"})).ok()?;
        status["counters"]["drops"]["hello_unknown_peer"]
            .as_u64()
            .filter(|n| *n > 0)
    })
    .ok_or("A never heard B's hello")?;
    if established(&table(&site.b)?) != 0 {
        return Err("B has connections before A knows it as a peer".to_owned());
    }

    let reloaded = config(&dir_a, "s0", "master", "224.0.0.81:8850", &["203.0.113.2"])
        .replace("syncid = 5\n", "syncid = 5\nmaxlen = 1000\n");
    std::fs::write(&config_a, reloaded).map_err(|e| e.to_string())?;
    syncd_a.signal(libc::SIGHUP);

    let (a_rows, b_rows) = converge(&site.a, || table(&site.b), Duration::from_secs(20))
        .map_err(|e| format!("{e}\n{}", diagnose(&site)))?;
    println!("A:\n{}\nB:\n{}", show(&a_rows), show(&b_rows));
    let status = control(&socket_a, &json!({"cmd": "status"}))?;
    println!("syncd A after SIGHUP: {status}");
    if status["peers"] != json!(["203.0.113.2:8849"]) || counter(&status, "resyncs_sent") == 0 {
        return Err(format!("A did not take its new peer: {status}"));
    }
    if counter(
        &control(&socket_b, &json!({"cmd": "status"}))?,
        "resyncs_received",
    ) == 0
    {
        return Err("B's table came without a resync".to_owned());
    }
    if status["group"] != "224.0.0.81:8848" {
        return Err(format!("the group changes on restart only: {status}"));
    }
    let daemons = site.a.stdout(&["ipvsadm", "-L", "--daemon"])?;
    println!("A: {daemons}");
    if !daemons.contains("master sync daemon") || !daemons.contains("maxlen=1000") {
        return Err(format!(
            "A's kernel master must run with maxlen 1000: {daemons}"
        ));
    }
    // New connections still flow through the running group and the new peer.
    let _more = hold_connections(&site.client, 2)?;
    await_established(4, Duration::from_secs(20), || table(&site.b))
        .ok_or_else(|| format!("B never had the 2 later connections\n{}", diagnose(&site)))?;
    let log = std::fs::read_to_string(&log_a).map_err(|e| e.to_string())?;
    if !log.contains("[sync] group changed and take effect on restart only")
        || !log.contains("applied [sync] maxlen, peers")
    {
        return Err(format!(
            "syncd A's log does not say what the reload did:\n{log}"
        ));
    }
    Ok(())
}

/// With net.ipv4.vs.sync_ports = 2 the kernel master spreads connections over two threads
/// that send to the group's port and the next one (`get_mcast_sockaddr`: port + id), picked
/// per connection. syncd must hear both, or its mirror misses about half the table; and
/// B's syncd, a backup, must learn from the group on both ports.
fn syncd_hears_every_sync_port_of_the_kernel() -> Result<(), String> {
    let site = site()?;
    for director in [&site.a, &site.b] {
        director.sysctl("net.ipv4.vs.sync_ports=2")?;
    }
    // Twelve connections: the chance that all go through one thread is 2 in 4096. B's
    // kernel backup has two threads too, one on each port.
    learn_from_the_group(&site, "224.0.0.81:8848", 12)
}

/// The sync link in IPv6 only (link-local addresses, group ff02::81): the kernel master on A
/// sends there, syncd A's tap decodes it into its mirror, B's kernel backup (started by
/// syncd B on the same group) and syncd B learn the table from it.
fn syncd_syncs_over_an_ipv6_group() -> Result<(), String> {
    let site = site()?;
    for (director, link) in [(&site.a, "s0"), (&site.b, "s1")] {
        // The kernel master sends from the link-local address once DAD has finished.
        wait_for(Duration::from_secs(20), || {
            let addrs = director
                .stdout(&["ip", "-6", "addr", "show", "dev", link, "scope", "link"])
                .ok()?;
            (addrs.contains("inet6 fe80") && !addrs.contains("tentative")).then_some(())
        })
        .ok_or(format!("no usable link-local address on {link}"))?;
    }
    learn_from_the_group(&site, "[ff02::81]:8848", 3)?;
    let daemons = site.a.stdout(&["ipvsadm", "-L", "--daemon"])?;
    println!("A: {daemons}");
    if !daemons.contains("ff02::81") {
        return Err(format!(
            "A's kernel master was not on the IPv6 group: {daemons}"
        ));
    }
    Ok(())
}

/// syncd A master and syncd B backup on `group` without peers, `count` connections held
/// through A: syncd A's mirror (from its packet tap), B's kernel backup and syncd B (from
/// the group, injecting nothing) must all come to hold A's table.
fn learn_from_the_group(site: &Site, group: &str, count: usize) -> Result<(), String> {
    let a_text = config(&site.run.join("a"), "s0", "master", group, &[]);
    let b_text = config(&site.run.join("b"), "s1", "backup", group, &[]);
    let (_syncd_a, socket_a) =
        daemon::start_with_config(&site.a, "syncd", &site.run.join("a"), &a_text)?;
    let (_syncd_b, socket_b) =
        daemon::start_with_config(&site.b, "syncd", &site.run.join("b"), &b_text)?;
    let _held = hold_connections(&site.client, count)?;
    await_established(count, Duration::from_secs(15), || table(&site.a)).ok_or(format!(
        "A never had the {count} held connections ESTABLISHED"
    ))?;
    let (a_rows, mirror) = converge(&site.a, || dump_rows(&socket_a), Duration::from_secs(20))
        .map_err(|e| format!("syncd A: {e}\n{}", diagnose(site)))?;
    println!(
        "A:\n{}\nsyncd A's mirror:\n{}",
        show(&a_rows),
        show(&mirror)
    );
    converge(&site.a, || table(&site.b), Duration::from_secs(20))
        .map_err(|e| format!("B's kernel: {e}\n{}", diagnose(site)))?;
    converge(&site.a, || dump_rows(&socket_b), Duration::from_secs(20))
        .map_err(|e| format!("syncd B: {e}\n{}", diagnose(site)))?;
    let status_b = control(&socket_b, &json!({"cmd": "status"}))?;
    if counter(&status_b, "messages_received") == 0 || counter(&status_b, "messages_injected") != 0
    {
        return Err(format!(
            "syncd B must learn the group's messages and inject none: {status_b}"
        ));
    }
    Ok(())
}

/// Sends `count` ESTABLISHED TCP entries (client 192.0.2.2, ports from `first_port`, to the
/// VIP and the real server) in kernel v1 format, syncid 5, to the group 224.0.0.81:8848 on
/// A's sync link, from A's address `source`, each with `timeout` seconds.
fn send_to_group(
    site: &Site,
    source: &str,
    count: u32,
    first_port: u32,
    timeout: u32,
) -> Result<(), String> {
    let script = "import socket, struct, sys\n\
        src, count, first, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])\n\
        ip = socket.inet_aton\n\
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
        s.bind((src, 0))\n\
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, ip(src))\n\
        entries = [struct.pack('!BBHIHHHHII', 0, 6, 36, 0, 1, first + i, 80, 8080, 0, timeout)\n\
        \x20          + ip('192.0.2.2') + ip('192.0.2.100') + ip('198.51.100.11') for i in range(count)]\n\
        for at in range(0, count, 40):\n\
        \x20   chunk = entries[at:at + 40]\n\
        \x20   body = b''.join(chunk)\n\
        \x20   s.sendto(struct.pack('!BBHBBH', 0, 5, 8 + len(body), len(chunk), 1, 0) + body, ('224.0.0.81', 8848))\n";
    site.a.run(&[
        "python3",
        "-c",
        script,
        source,
        &count.to_string(),
        &first_port.to_string(),
        &timeout.to_string(),
    ])?;
    Ok(())
}

/// Caught (issue 15, defect 4): syncd learned entries from anyone on the sync group, into a
/// mirror without bound, with whatever timeout the wire said (up to 2^32 s), and resynced
/// them to its peers' kernels. B's syncd (sync link 203.0.113.0/24, default group_sources)
/// must drop what a host outside the link's subnet sends and count it; learn what a link
/// host sends, up to max_entries, with the timeouts clamped.
fn syncd_learns_the_group_only_from_its_sources() -> Result<(), String> {
    let site = site()?;
    // A stranger on the sync link: an address outside B's subnet, on A's side of the link.
    site.a.addr("s0", "192.0.2.250/32")?;
    let b_dir = site.run.join("b");
    let b_text = config(&b_dir, "s1", "backup", "224.0.0.81:8848", &[]);
    let (syncd_b, socket_b) = daemon::start_with_config(&site.b, "syncd", &b_dir, &b_text)?;
    send_to_group(&site, "192.0.2.250", 10, 41000, 900)?;
    let status = wait_for(Duration::from_secs(10), || {
        let status = control(&socket_b, &json!({"cmd": "status"})).ok()?;
        status["counters"]["drops"]["group_source"]
            .as_u64()
            .is_some_and(|n| n >= 1)
            .then_some(status)
    })
    .ok_or_else(|| {
        format!(
            "the stranger's message was not dropped as group_source: {:?}",
            control(&socket_b, &json!({"cmd": "status"}))
        )
    })?;
    if status["mirror_size"] != 0 || counter(&status, "messages_received") != 0 {
        return Err(format!("syncd B learned from a stranger: {status}"));
    }
    // A host of the link is heard: the path works, so the drop above was the filter's.
    send_to_group(&site, "203.0.113.1", 3, 42000, 900)?;
    wait_for(Duration::from_secs(10), || {
        let status = control(&socket_b, &json!({"cmd": "status"})).ok()?;
        (status["mirror_size"] == 3).then_some(())
    })
    .ok_or("syncd B did not learn from a host of the sync link")?;
    drop(syncd_b);

    // A flood from a link host with timeouts of 2^32 - 1 s into a mirror of 50.
    let b_text = format!("{b_text}max_entries = 50\n");
    let (_syncd_b, socket_b) = daemon::start_with_config(&site.b, "syncd", &b_dir, &b_text)?;
    send_to_group(&site, "203.0.113.1", 400, 43000, u32::MAX)?;
    let status = wait_for(Duration::from_secs(10), || {
        let status = control(&socket_b, &json!({"cmd": "status"})).ok()?;
        (status["counters"]["drops"]["mirror_full"].as_u64() == Some(350)).then_some(status)
    })
    .ok_or_else(|| {
        format!(
            "the flood was not capped at 50 entries: {:?}",
            control(&socket_b, &json!({"cmd": "status"}))
        )
    })?;
    println!("syncd B after the flood: {status}");
    // Every entry received was clamped, held or refused.
    if status["mirror_size"] != 50 || counter(&status, "timeouts_clamped") != 400 {
        return Err(format!(
            "mirror of 50 with clamped timeouts expected: {status}"
        ));
    }
    let dump = control(&socket_b, &json!({"cmd": "dump"}))?;
    let longest = dump["entries"]
        .as_array()
        .ok_or("dump without entries")?
        .iter()
        .filter_map(|e| e["expires"].as_u64())
        .max();
    // The kernel's ESTABLISHED timeout (15 minutes unless ipvsadm --set says otherwise).
    if longest.is_none_or(|s| s > 900) {
        return Err(format!(
            "timeouts not clamped to 900 s: longest {longest:?}"
        ));
    }
    Ok(())
}

/// Caught (issue 15, defect 13): a backup whose peer has no syncd listening at the port it
/// is reached on said hello forever and logged nothing. B's peer A runs no syncd: within
/// four hellos (3 s apart) B's log says so, naming the peer and the port.
fn syncd_says_when_its_hellos_go_unanswered() -> Result<(), String> {
    let site = site()?;
    let dir = site.run.join("b");
    let config_b = dir.join("director.toml");
    let text = config(&dir, "s1", "backup", "224.0.0.81:8848", &["203.0.113.1"]);
    std::fs::write(&config_b, text).map_err(|e| e.to_string())?;
    let log = dir.join("syncd.log");
    let _syncd_b = daemon::start_logged(
        &site.b,
        "syncd",
        &config_b,
        &dir.join("syncd.sock"),
        Some(&log),
    )?;
    wait_for(Duration::from_secs(15), || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("3 hellos to 203.0.113.1:8849 got no resync")
            .then_some(())
    })
    .ok_or_else(|| {
        format!(
            "no warning about unanswered hellos in B's log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    })
}

/// Caught (issue 15, defect 10): syncd restarting in follow mode took the backup role until
/// vrrpd answered, and so stopped the master's kernel sync daemon (and started a backup
/// one): with vrrpd away, the backup director got no more updates. Now the kernel daemons
/// stay as they are until vrrpd says the role.
fn syncd_restarting_without_vrrpd_keeps_the_kernel_master() -> Result<(), String> {
    let site = site()?;
    let dir = site.run.join("a");
    let vrrpd_socket = dir.join("vrrpd.sock");
    let vrrpd = FakeVrrpd::serve(&vrrpd_socket, "MASTER")?;
    let text = format!(
        "[[vrrp.instance]]\nname = \"VI_1\"\ninterface = \"a0\"\nvrid = 51\n\
         virtual_addresses = [\"{VIP}/32\"]\n\n{}",
        config_with_role(&dir, "s0", "{ follow = \"VI_1\" }", "224.0.0.81:8848", &[])
    );
    let (syncd, socket) = daemon::start_with_config(&site.a, "syncd", &dir, &text)?;
    wait_role(&site.a, &socket, "master")?;
    // syncd dies, and vrrpd is away (its socket gone) when syncd comes back.
    syncd.signal(libc::SIGKILL);
    drop(syncd);
    drop(vrrpd);
    std::fs::remove_file(&vrrpd_socket).map_err(|e| e.to_string())?;
    let (_syncd, socket) = daemon::start_with_config(&site.a, "syncd", &dir, &text)?;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        let daemons = site.a.stdout(&["ipvsadm", "-L", "--daemon"])?;
        if !daemons.contains("master sync daemon") || daemons.contains("backup sync daemon") {
            return Err(format!(
                "syncd, restarted without vrrpd, changed the kernel daemons: {daemons}"
            ));
        }
    }
    let status = control(&socket, &json!({"cmd": "status"}))?;
    println!("syncd without vrrpd: {status}");
    if status["role_source"] != "follow VI_1 (not heard yet)" {
        return Err(format!(
            "the status must say the role is not known: {status}"
        ));
    }
    // vrrpd is back and says BACKUP: now syncd acts on it.
    let _vrrpd = FakeVrrpd::serve(&vrrpd_socket, "BACKUP")?;
    wait_role(&site.a, &socket, "backup")?;
    Ok(())
}
