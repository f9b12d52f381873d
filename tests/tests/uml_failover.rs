//! UML lane: the failover that matters to users. A client holds 1,000 long-lived TCP
//! connections through director A (NAT, then DR) to echo servers; director B's sync starts only after
//! they exist; then A fails and B takes over. With syncd every connection must still echo
//! through B; with the kernel's sync daemons alone the late backup never learns them.
//!
//! Namespaces: a switch `sw` with two bridges. Front `br0`: client `c` 192.0.2.2, A a0
//! 192.0.2.1, B b0 192.0.2.3; the VIP 192.0.2.100/24 lives on the active director's front
//! port. Back `br1`: real servers r1 198.51.100.11 and r2 198.51.100.12, A a1 198.51.100.1,
//! B b1 198.51.100.3; the real servers' gateway 198.51.100.254 moves with the VIP, because
//! NAT replies must come back through the director that holds the connection. Sync link:
//! A s0 203.0.113.1 - B s1 203.0.113.2. In the DR variant the real servers sit on the front
//! bridge instead (192.0.2.11, .12, the VIP on their loopback, ARP for it ignored) and answer
//! the client directly, so only the VIP matters.
//!
//! As in uml_syncd, A's kernel master and B's syncd/kernel backup use different groups
//! (224.0.0.81:8848 vs 224.0.0.82:8849), so B's kernel can only learn through syncd.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, ExitCode, Stdio};
use std::time::Duration;

use lvs_tests::daemon::{self, control};
use lvs_tests::netns::{Netns, veth};
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::uml::{self, Case};
use serde_json::{Value, json};

fn main() -> ExitCode {
    let case = |name, run| Case::new(name, run).with_timeout(Duration::from_secs(300));
    uml::main(&[
        case("nat_failover_with_syncd_keeps_every_connection", || {
            failover_with_syncd_keeps_every_connection(Method::Nat)
        }),
        case(
            "nat_failover_with_kernel_sync_alone_loses_a_late_backup",
            || failover_with_kernel_sync_alone_loses_a_late_backup(Method::Nat),
        ),
        case("dr_failover_with_syncd_keeps_every_connection", || {
            failover_with_syncd_keeps_every_connection(Method::Dr)
        }),
        case(
            "dr_failover_with_kernel_sync_alone_loses_a_late_backup",
            || failover_with_kernel_sync_alone_loses_a_late_backup(Method::Dr),
        ),
        Case::new(
            "a_master_whose_directord_stops_hands_over_and_takes_back",
            a_master_whose_directord_stops_hands_over_and_takes_back,
        )
        .with_timeout(Duration::from_secs(120)),
        Case::new(
            "a_master_whose_service_loses_quorum_hands_over",
            a_master_whose_service_loses_quorum_hands_over,
        )
        .with_timeout(Duration::from_secs(120)),
    ])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Nat,
    Dr,
}

impl Method {
    fn real_servers(self) -> [&'static str; 2] {
        match self {
            Method::Nat => ["198.51.100.11", "198.51.100.12"],
            Method::Dr => ["192.0.2.11", "192.0.2.12"],
        }
    }

    /// DR cannot change the port: the real server sees the VIP's.
    fn port(self) -> u16 {
        match self {
            Method::Nat => 8080,
            Method::Dr => 80,
        }
    }

    fn ipvsadm_flag(self) -> &'static str {
        match self {
            Method::Nat => "-m",
            Method::Dr => "-g",
        }
    }
}

const CONNECTIONS: usize = 1000;
const VIP: &str = "192.0.2.100";
/// The real servers' default gateway: held by whichever director holds the VIP.
const INNER_GATEWAY: &str = "198.51.100.254";

/// One asyncio process echoes every connection: UML has one slow CPU.
const ECHO_SERVER: &str = r#"
import asyncio, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(4096)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(echo, '0.0.0.0', int(sys.argv[1]), backlog=2048)
    await server.serve_forever()
asyncio.run(main())
"#;

/// Opens argv[1] connections to argv[2]:80 (each sends a line and reads its echo, so the
/// director has seen the third packet that makes a kernel master sync it), then answers
/// `probe <tag> <seconds>` on stdin with `alive=<n> reset=<n> silent=<n>` on stdout: a
/// connection is alive when its line comes back intact within the time.
const ECHO_CLIENT: &str = r#"
import resource, selectors, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
count, vip = int(sys.argv[1]), sys.argv[2]
conns = []
for i in range(count):
    try:
        s = socket.create_connection((vip, 80), timeout=5)
        s.setblocking(False)
        conns.append(s)
    except OSError:
        conns.append(None)

def probe(tag, limit):
    sel = selectors.DefaultSelector()
    want, got = {}, {}
    reset = 0
    for i, s in enumerate(conns):
        if s is None:
            reset += 1
            continue
        line = f'{tag} {i}\n'.encode()
        try:
            s.send(line)
        except OSError:
            s.close(); conns[i] = None; reset += 1
            continue
        want[i], got[i] = line, b''
        sel.register(s, selectors.EVENT_READ, i)
    alive = 0
    deadline = time.monotonic() + limit
    while want and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            i, s = key.data, key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b''
            got[i] += data
            if data and got[i] == want[i]:
                alive += 1
                sel.unregister(s); del want[i]
            elif not data or not want[i].startswith(got[i]):
                sel.unregister(s); s.close(); conns[i] = None; del want[i]
                reset += 1
    for i in want:
        sel.unregister(conns[i])
    sel.close()
    return alive, reset, len(want)

for command in sys.stdin:
    words = command.split()
    if words and words[0] == 'probe':
        alive, reset, silent = probe(words[1], float(words[2]))
        print(f'alive={alive} reset={reset} silent={silent}', flush=True)
"#;

struct Site {
    method: Method,
    client: Netns,
    a: Netns,
    b: Netns,
    reals: Vec<Netns>,
    _switch: Netns,
    run: PathBuf,
}

fn site(method: Method) -> Result<Site, String> {
    let switch = Netns::new("sw")?;
    let client = Netns::new("c")?;
    let a = Netns::new("a")?;
    let b = Netns::new("b")?;
    let reals = vec![Netns::new("r1")?, Netns::new("r2")?];
    switch.bridge("br0")?;
    switch.bridge("br1")?;
    let front = [(&client, "c0", "pc"), (&a, "a0", "pa0"), (&b, "b0", "pb0")];
    for (host, inside, port) in front {
        veth(host, inside, &switch, port)?;
        switch.attach(port, "br0")?;
    }
    let reals_bridge = match method {
        Method::Nat => "br1",
        Method::Dr => "br0",
    };
    for (real, port) in reals.iter().zip(["pr1", "pr2"]) {
        veth(real, "r0", &switch, port)?;
        switch.attach(port, reals_bridge)?;
    }
    for (host, inside, port) in [(&a, "a1", "pa1"), (&b, "b1", "pb1")] {
        veth(host, inside, &switch, port)?;
        switch.attach(port, "br1")?;
    }
    client.addr("c0", "192.0.2.2/24")?;
    a.addr("a0", "192.0.2.1/24")?;
    b.addr("b0", "192.0.2.3/24")?;
    a.addr("a1", "198.51.100.1/24")?;
    b.addr("b1", "198.51.100.3/24")?;
    for (real, address) in reals.iter().zip(method.real_servers()) {
        real.addr("r0", &format!("{address}/24"))?;
        match method {
            Method::Nat => real.default_route(INNER_GATEWAY)?,
            Method::Dr => {
                real.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
                real.sysctl("net.ipv4.conf.all.arp_ignore=1")?;
                real.sysctl("net.ipv4.conf.all.arp_announce=2")?;
            }
        }
    }
    veth(&a, "s0", &b, "s1")?;
    a.addr("s0", "203.0.113.1/24")?;
    b.addr("s1", "203.0.113.2/24")?;
    for director in [&a, &b] {
        director.sysctl("net.ipv4.ip_forward=1")?;
        director.run(&["ipvsadm", "-A", "-t", &format!("{VIP}:80"), "-s", "rr"])?;
        for real in method.real_servers() {
            director.run(&[
                "ipvsadm",
                "-a",
                "-t",
                &format!("{VIP}:80"),
                "-r",
                &format!("{real}:{}", method.port()),
                method.ipvsadm_flag(),
            ])?;
        }
    }
    take_addresses(&a, "a0", "a1")?;
    let run = PathBuf::from(format!("/run/lvs-failover-test-{}", std::process::id()));
    for side in ["a", "b"] {
        std::fs::create_dir_all(run.join(side)).map_err(|e| e.to_string())?;
    }
    Ok(Site {
        method,
        client,
        a,
        b,
        reals,
        _switch: switch,
        run,
    })
}

/// The active director's addresses: the VIP in front, the real servers' gateway behind.
fn take_addresses(director: &Netns, front: &str, back: &str) -> Result<(), String> {
    director.ip(&["addr", "add", &format!("{VIP}/24"), "dev", front])?;
    director.ip(&["addr", "add", &format!("{INNER_GATEWAY}/24"), "dev", back])?;
    Ok(())
}

/// A dies (both its links go down) and B takes its addresses. Flushing the neighbours of the
/// client and the real servers stands in for the gratuitous ARP vrrpd would send.
fn fail_over(site: &Site) -> Result<(), String> {
    site.a.ip(&["link", "set", "a0", "down"])?;
    site.a.ip(&["link", "set", "a1", "down"])?;
    take_addresses(&site.b, "b0", "b1")?;
    for host in std::iter::once(&site.client).chain(&site.reals) {
        host.ip(&["neigh", "flush", "all"])?;
    }
    Ok(())
}

fn echo_servers(site: &Site) -> Result<Vec<Guarded>, String> {
    let servers = site
        .reals
        .iter()
        .map(|real| {
            let port = site.method.port().to_string();
            real.spawn(&["python3", "-c", ECHO_SERVER, &port])
        })
        .collect::<Result<Vec<_>, _>>()?;
    let port = format!(":{} ", site.method.port());
    for (real, address) in site.reals.iter().zip(site.method.real_servers()) {
        wait_for(Duration::from_secs(20), || {
            real.sh("ss -ltn")
                .ok()
                .filter(|listening| listening.contains(&port))
        })
        .ok_or(format!("echo server {address} never listened"))?;
    }
    Ok(servers)
}

/// The client process with its command pipe.
struct Client {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    _process: Guarded,
}

#[derive(Debug, Clone, Copy)]
struct Probe {
    alive: usize,
    reset: usize,
    silent: usize,
}

impl Client {
    fn start(site: &Site) -> Result<Client, String> {
        let count = CONNECTIONS.to_string();
        let mut command = site
            .client
            .command(&["python3", "-c", ECHO_CLIENT, &count, VIP]);
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut process = Guarded::spawn(&mut command)?;
        let stdin = process.child_mut().stdin.take().ok_or("client stdin")?;
        let stdout = process.child_mut().stdout.take().ok_or("client stdout")?;
        Ok(Client {
            stdin,
            stdout: BufReader::new(stdout),
            _process: process,
        })
    }

    fn probe(&mut self, tag: &str, limit: Duration) -> Result<Probe, String> {
        writeln!(self.stdin, "probe {tag} {}", limit.as_secs_f64())
            .map_err(|e| format!("client stdin: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("client stdout: {e}"))?;
        let field = |name: &str| -> Result<usize, String> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .ok_or(format!("client answered {line:?}"))
        };
        Ok(Probe {
            alive: field("alive")?,
            reset: field("reset")?,
            silent: field("silent")?,
        })
    }
}

/// Opens the connections and proves each echoes through A.
fn connect_through_a(site: &Site) -> Result<Client, String> {
    let mut client = Client::start(site)?;
    let probe = client.probe("before", Duration::from_secs(60))?;
    println!("through A: {probe:?}");
    if probe.alive != CONNECTIONS {
        return Err(format!(
            "only {} of {CONNECTIONS} connections echo through A",
            probe.alive
        ));
    }
    let held = established_to_client(&site.a)?;
    println!("A's table: {held} ESTABLISHED connections from the client");
    if held < CONNECTIONS {
        return Err(format!("A holds {held} connections, not {CONNECTIONS}"));
    }
    Ok(client)
}

/// ESTABLISHED rows of /proc/net/ip_vs_conn for the client (C0000202 = 192.0.2.2).
fn established_to_client(director: &Netns) -> Result<usize, String> {
    let text = director.stdout(&["cat", "/proc/net/ip_vs_conn"])?;
    Ok(text
        .lines()
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() >= 8 && f[0] == "TCP" && f[1] == "C0000202" && f[7] == "ESTABLISHED"
        })
        .count())
}

fn failover_probe(site: &Site, client: &mut Client) -> Result<Probe, String> {
    fail_over(site)?;
    // A connection B does not know draws a RST from B's own stack at once; one it knows
    // echoes after an ARP round, so the limit only bounds a hang.
    let probe = client.probe("after", Duration::from_secs(60))?;
    println!(
        "after failover to B: {} of {CONNECTIONS} connections echo ({} reset, {} silent)",
        probe.alive, probe.reset, probe.silent
    );
    Ok(probe)
}

fn config(socket_dir: &Path, interface: &str, role: &str, group: &str, peer: &str) -> String {
    format!(
        "[control]\nsocket_dir = {dir:?}\n\n[sync]\ninterface = {interface:?}\nsyncid = 5\n\
         role = {role:?}\ngroup = {group:?}\nunicast_port = 8849\npeers = [{peer:?}]\n",
        dir = socket_dir.display().to_string(),
    )
}

fn daemons(director: &Netns) -> Result<BTreeSet<String>, String> {
    let text = director.stdout(&["ipvsadm", "-L", "--daemon"])?;
    Ok(["master", "backup"]
        .into_iter()
        .filter(|role| text.contains(&format!("{role} sync daemon")))
        .map(str::to_owned)
        .collect())
}

fn failover_with_syncd_keeps_every_connection(method: Method) -> Result<(), String> {
    let site = site(method)?;
    let _servers = echo_servers(&site)?;
    let a_text = config(
        &site.run.join("a"),
        "s0",
        "master",
        "224.0.0.81:8848",
        "203.0.113.2",
    );
    let (_syncd_a, socket_a) =
        daemon::start_with_config(&site.a, "syncd", &site.run.join("a"), &a_text)?;
    let mut client = connect_through_a(&site)?;
    if !daemons(&site.b)?.is_empty() {
        return Err("B must have no sync daemon before its syncd starts".to_owned());
    }

    let b_text = config(
        &site.run.join("b"),
        "s1",
        "backup",
        "224.0.0.82:8849",
        "203.0.113.1",
    );
    let (_syncd_b, socket_b) =
        daemon::start_with_config(&site.b, "syncd", &site.run.join("b"), &b_text)?;
    let learned = wait_for(Duration::from_secs(60), || {
        established_to_client(&site.b)
            .ok()
            .filter(|n| *n >= CONNECTIONS)
    });
    let status_a = control(&socket_a, &json!({"cmd": "status"}))?;
    let status_b = control(&socket_b, &json!({"cmd": "status"}))?;
    println!("syncd A: {status_a}\nsyncd B: {status_b}");
    let learned = learned.ok_or_else(|| {
        format!(
            "B's kernel learned {:?} of {CONNECTIONS} connections",
            established_to_client(&site.b)
        )
    })?;
    println!("B's table before failover: {learned} ESTABLISHED connections from the client");
    let counter = |status: &Value, name: &str| status["counters"][name].as_u64().unwrap_or(0);
    if counter(&status_b, "resyncs_received") == 0 || counter(&status_b, "messages_injected") == 0 {
        return Err("B's kernel must have learned through syncd B's resync".to_owned());
    }

    let probe = failover_probe(&site, &mut client)?;
    if probe.alive != CONNECTIONS {
        return Err(format!(
            "{} of {CONNECTIONS} connections lost in the failover",
            CONNECTIONS - probe.alive
        ));
    }
    // And they keep working: a second round through B.
    let again = client.probe("again", Duration::from_secs(60))?;
    println!("second round through B: {again:?}");
    if again.alive != CONNECTIONS {
        return Err(format!("second round through B: {again:?}"));
    }
    Ok(())
}

/// Why syncd exists: the kernel master syncs a connection on its 3rd packet (then every 50th),
/// so a kernel backup that starts afterwards hears at most what was still queued on A, and
/// the failover resets the rest. The assertion is on the count observed, which varies with
/// that queue.
fn failover_with_kernel_sync_alone_loses_a_late_backup(method: Method) -> Result<(), String> {
    let site = site(method)?;
    let _servers = echo_servers(&site)?;
    site.a.run(&[
        "ipvsadm",
        "--start-daemon",
        "master",
        "--mcast-interface",
        "s0",
        "--syncid",
        "5",
    ])?;
    let mut client = connect_through_a(&site)?;
    site.b.run(&[
        "ipvsadm",
        "--start-daemon",
        "backup",
        "--mcast-interface",
        "s1",
        "--syncid",
        "5",
    ])?;
    // Time for anything still queued on A to reach B.
    std::thread::sleep(Duration::from_secs(10));
    let learned = established_to_client(&site.b)?;
    println!("B's kernel backup learned {learned} of {CONNECTIONS} connections before failover");

    let probe = failover_probe(&site, &mut client)?;
    let lost = CONNECTIONS - probe.alive;
    if lost == 0 {
        return Err(format!(
            "the kernel's sync alone kept all {CONNECTIONS} connections: this case no longer \
             shows why syncd exists"
        ));
    }
    println!("kernel sync alone: {lost} of {CONNECTIONS} connections lost");
    Ok(())
}

/// Directors A (192.0.2.1) and B (192.0.2.3) on one LAN, as namespaces named `names`.
fn lan(names: [&str; 2]) -> Result<lvs_tests::lan::Lan, String> {
    lvs_tests::lan::Lan::new(&[(names[0], "192.0.2.1/24"), (names[1], "192.0.2.3/24")])
}

/// directord and vrrpd on A (priority 150) and B (100), each on the config `config` writes
/// for its directory and priority: (directord, vrrpd, config path, directory) per director.
fn tracked_pair(
    lan: &lvs_tests::lan::Lan,
    scratch: &Path,
    config: impl Fn(&Path, u8) -> String,
) -> Result<Vec<(Guarded, Guarded, PathBuf, PathBuf)>, String> {
    let mut daemons = Vec::new();
    for (i, name, priority) in [(0, "a", 150), (1, "b", 100)] {
        let dir = scratch.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join("director.toml");
        std::fs::write(&path, config(&dir, priority)).map_err(|e| e.to_string())?;
        let host = lan.host(i);
        let directord = daemon::start(host, "directord", &path, &dir.join("directord.sock"))?;
        let vrrpd = daemon::start(host, "vrrpd", &path, &dir.join("vrrpd.sock"))?;
        daemons.push((directord, vrrpd, path, dir));
    }
    Ok(daemons)
}

/// VI_1's state as the vrrpd on `socket` reports it (or why it could not say).
fn vrrp_state(socket: &Path) -> String {
    control(socket, &json!({"cmd": "status"}))
        .map(|s| {
            s["instances"][0]["state"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .unwrap_or_else(|e| e)
}

/// Some when director `want` is MASTER and the other is not.
fn only_master(sockets: &[PathBuf], want: usize) -> Option<()> {
    (vrrp_state(&sockets[want]) == "MASTER" && vrrp_state(&sockets[1 - want]) != "MASTER")
        .then_some(())
}

/// B's Master_Down_Interval at priority 100 and 1 s adverts (3 x 1 s + 156/256 s).
const MASTER_DOWN: Duration = Duration::from_millis(3609);

/// A director's vrrpd (VI_1, 1 s adverts) and directord with one NAT service: vrrpd tracks
/// directord by default because the file has a virtual server.
fn tracked_config(socket_dir: &Path, priority: u8) -> String {
    format!(
        r#"[control]
socket_dir = "{dir}"

[[vrrp.instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = {priority}
advert_interval = "1s"
virtual_addresses = ["{VIP}/24"]

[[virtual_server]]
name = "web"
address = "{VIP}:80"
forwarding = "nat"
check = {{ type = "off" }}

[[virtual_server.real]]
address = "192.0.2.50:8080"
"#,
        dir = socket_dir.display()
    )
}

/// Caught: vrrpd kept (or took) the VIP over a dead or wedged directord, whose table is frozen
/// or gone. With directord tracked (on by default with virtual servers, weight 0 = FAULT):
/// SIGSTOP of A's directord hands the VIP to B within B's Master_Down, counted from the stop;
/// SIGCONT gives it back (A preempts); kill -9 hands it over again, and a new directord back.
fn a_master_whose_directord_stops_hands_over_and_takes_back() -> Result<(), String> {
    let (lan, scratch) = (
        lan(["ta", "tb"])?,
        tempfile::tempdir().map_err(|e| e.to_string())?,
    );
    let a = lan.host(0);
    let mut daemons = tracked_pair(&lan, scratch.path(), tracked_config)?;
    let sockets: Vec<PathBuf> = daemons.iter().map(|d| d.3.join("vrrpd.sock")).collect();
    let state = |i: usize| vrrp_state(&sockets[i]);
    let holder = |want: usize| only_master(&sockets, want);
    wait_for(Duration::from_secs(20), || holder(0)).ok_or("A never became the only master")?;

    let handed_over = |event: &str| -> Result<Duration, String> {
        let at = std::time::Instant::now();
        wait_for(MASTER_DOWN + Duration::from_secs(5), || holder(1)).ok_or_else(|| {
            format!(
                "after {event} B never took over: A {}, B {}",
                state(0),
                state(1)
            )
        })?;
        let took = at.elapsed();
        println!("{event} of A's directord: B master after {took:?} (Master_Down {MASTER_DOWN:?})");
        if took > MASTER_DOWN {
            return Err(format!("after {event} B took {took:?}, over Master_Down"));
        }
        Ok(took)
    };
    daemons[0].0.signal(libc::SIGSTOP);
    handed_over("SIGSTOP")?;
    let status = control(&sockets[0], &json!({"cmd": "status"}))?;
    if status["instances"][0]["state"] != "FAULT" || status["directord"]["up"] != false {
        return Err(format!("A must be in FAULT with directord down: {status}"));
    }
    if status["directord"]["checks"]["timeout"].as_u64() < Some(1) {
        return Err(format!("a wedged directord is a timeout: {status}"));
    }
    daemons[0].0.signal(libc::SIGCONT);
    wait_for(Duration::from_secs(15), || holder(0)).ok_or("A never took the VIP back")?;

    daemons[0].0.signal(libc::SIGKILL);
    daemons[0].0.end();
    handed_over("kill -9")?;
    let dir = scratch.path().join("a");
    daemons[0].0 = daemon::start(a, "directord", &daemons[0].2, &dir.join("directord.sock"))?;
    wait_for(Duration::from_secs(15), || holder(0))
        .ok_or("A never took the VIP back from a restarted directord")?;
    let status = control(&sockets[0], &json!({"cmd": "status"}))?;
    if status["directord"]["checks"]["unreachable"].as_u64() < Some(1) {
        return Err(format!("a dead directord is unreachable: {status}"));
    }
    Ok(())
}

/// A's and B's director.toml for the quorum tracking case: service "web" whose one real
/// server's check is the existence of `flag`, and VI_1 tracking web's quorum at -60.
fn quorum_tracked_config(socket_dir: &Path, priority: u8, flag: &Path) -> String {
    tracked_config(socket_dir, priority)
        .replace(
            "virtual_addresses = [",
            "track_services = [{ service = \"web\", weight = -60 }]\nvirtual_addresses = [",
        )
        .replace(
            "check = { type = \"off\" }",
            &format!(
                "check = {{ type = \"external\", command = \"test -e {}\", interval = \"300ms\", timeout = \"1s\" }}",
                flag.display()
            ),
        )
}

/// A VRRP instance tracks a service's quorum (`track_services`): when A's only real server
/// fails its check, web loses quorum, A's priority drops by 60 (150 -> 90, below B's 100)
/// and B takes the VIP; when the server passes again A preempts back. directord reports the
/// quorum, vrrpd reads it on its directord watch.
fn a_master_whose_service_loses_quorum_hands_over() -> Result<(), String> {
    let (lan, scratch) = (
        lan(["qa", "qb"])?,
        tempfile::tempdir().map_err(|e| e.to_string())?,
    );
    let daemons = tracked_pair(&lan, scratch.path(), |dir, priority| {
        std::fs::write(dir.join("real-is-up"), "").expect("scratch is writable");
        quorum_tracked_config(dir, priority, &dir.join("real-is-up"))
    })?;
    let flag = daemons[0].3.join("real-is-up");
    let sockets: Vec<PathBuf> = daemons.iter().map(|d| d.3.join("vrrpd.sock")).collect();
    let status = |i: usize| control(&sockets[i], &json!({"cmd": "status"}));
    let holder = |want: usize| only_master(&sockets, want);
    wait_for(Duration::from_secs(20), || holder(0)).ok_or("A never became the only master")?;

    std::fs::remove_file(&flag).map_err(|e| e.to_string())?;
    let lost = std::time::Instant::now();
    wait_for(MASTER_DOWN + Duration::from_secs(8), || holder(1)).ok_or_else(|| {
        format!(
            "B never took over after A's service lost quorum: A {}",
            status(0).map_or_else(|e| e, |s| s.to_string())
        )
    })?;
    println!(
        "A's service lost quorum: B master after {:?}",
        lost.elapsed()
    );
    let a = status(0)?;
    if a["instances"][0]["priority"] != 90 {
        return Err(format!(
            "A's priority must be 150 - 60 while web is below quorum: {a}"
        ));
    }

    std::fs::write(&flag, "").map_err(|e| e.to_string())?;
    wait_for(Duration::from_secs(15), || holder(0))
        .ok_or("A never took the VIP back when its service regained quorum")?;
    Ok(())
}
