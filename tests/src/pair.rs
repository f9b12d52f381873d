//! The director pair as an operator runs it, as a topology of namespaces inside the UML guest:
//! a client, two directors each running directord, vrrpd, syncd and feedbackd from one config
//! file, and three real servers (HTTP, an echo service, a feedback agent), all on one bridge.
//!
//! Shared by the end-to-end test (`tests/director_pair.rs`) and its benchmark
//! (`benches/director_pair.rs`); the binaries come from a directory the caller names, so the
//! test runs the debug build and the benchmark the release build.

use std::cell::Cell;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::netns::{Netns, veth};
use crate::process::{Guarded, wait_for};
use crate::vrrp_capture::Capture;

pub const VIP: &str = "192.0.2.100";
pub const REALS: [&str; 3] = ["192.0.2.21", "192.0.2.22", "192.0.2.23"];
/// What each director runs, in start order (the table before the addresses that draw traffic).
pub const DAEMONS: [&str; 4] = ["directord", "vrrpd", "syncd", "feedbackd"];
/// Index of director A (priority 150, the preferred master) and B (priority 100) in
/// [`Pair::directors`].
pub const A: usize = 0;
pub const B: usize = 1;
/// directord's HTTP port on every director (`control.metrics`): its status page is at `/`.
pub const HTTP_PORT: u16 = 9542;
/// Each director's address on the LAN, the source of its VRRP adverts; indexed by [`A`], [`B`].
pub const DIRECTOR_IPS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(192, 0, 2, 11), Ipv4Addr::new(192, 0, 2, 12)];

/// A real server's services in one asyncio process: the echo service on :7 for the
/// long-lived flows, and HTTP/1.0 on :80 answering every request with DIR/index.html. Not
/// busybox httpd: it forks per connection, which under UML costs more CPU than the new
/// connections the benchmark opens every 20 ms can leave it.
const REAL_SERVER: &str = r#"
import asyncio, sys
PAGE = open(sys.argv[1] + '/index.html', 'rb').read()
REPLY = b'HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n' % len(PAGE) + PAGE
async def echo(r, w):
    while data := await r.readline():
        w.write(data)
        await w.drain()
async def http(r, w):
    try:
        await r.readuntil(b'\r\n\r\n')
        w.write(REPLY)
        await w.drain()
    except Exception:
        pass
    w.close()
async def main():
    servers = [await asyncio.start_server(echo, '0.0.0.0', 7),
               await asyncio.start_server(http, '0.0.0.0', 80)]
    await asyncio.gather(*(s.serve_forever() for s in servers))
asyncio.run(main())
"#;

/// Holds N connections to the VIP's echo service; every second each sends a line and
/// waits for it back. TCP retransmits across a failover, so a flow only counts as dead when its
/// echo does not come back within 20 s or the connection breaks. Writes "round alive" lines.
const ECHO_CLIENT: &str = r#"
import asyncio, sys, time
N, VIP, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3]
async def main():
    flows = []
    for i in range(N):
        flows.append(await asyncio.open_connection(VIP, 7))
    alive = [True] * N
    rnd = 0
    while True:
        rnd += 1
        async def one(i):
            r, w = flows[i]
            try:
                w.write(b'ping %d\n' % rnd)
                await w.drain()
                line = await asyncio.wait_for(r.readline(), 20)
                return line == b'ping %d\n' % rnd
            except Exception:
                return False
        results = await asyncio.gather(*(one(i) for i in range(N) if alive[i]))
        idx = [i for i in range(N) if alive[i]]
        for i, ok in zip(idx, results):
            alive[i] = ok
        with open(OUT, 'a') as f:
            f.write('%d %d\n' % (rnd, sum(alive)))
        await asyncio.sleep(1)
asyncio.run(main())
"#;

/// Opens a new HTTP connection to the VIP every PERIOD seconds until OUT.stop exists, each
/// given LIMIT seconds (SYN retransmits included) to bring back a real server's page, then
/// waits for the stragglers. OUT.ready appears once the first is opened. One line per attempt:
/// "start end ok" (wall-clock seconds, so the caller can place them against its own clock).
const PROBER: &str = r#"
import asyncio, os, sys, time
VIP, PERIOD, LIMIT, OUT = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
out = open(OUT, 'w')
async def fetch():
    r, w = await asyncio.open_connection(VIP, 80)
    w.write(b'GET / HTTP/1.0\r\nHost: vip\r\n\r\n')
    await w.drain()
    body = await r.read()
    w.close()
    return b'real-' in body
async def attempt():
    start = time.time()
    try:
        ok = await asyncio.wait_for(fetch(), LIMIT)
    except Exception:
        ok = False
    out.write('%.6f %.6f %d\n' % (start, time.time(), ok))
async def main():
    tasks = []
    t0 = time.monotonic()
    n = 0
    while not os.path.exists(OUT + '.stop'):
        tasks.append(asyncio.ensure_future(attempt()))
        if n == 0:
            open(OUT + '.ready', 'w').close()
        n += 1
        await asyncio.sleep(max(0.0, t0 + n * PERIOD - time.monotonic()))
    await asyncio.gather(*tasks)
    out.close()
asyncio.run(main())
"#;

/// One director: its namespace, config and the daemons it runs, by name.
pub struct Director {
    pub daemons: Vec<(&'static str, Guarded)>,
    pub ns: Netns,
    pub config: PathBuf,
    pub run: PathBuf,
    bins: PathBuf,
}

impl Director {
    /// Starts every daemon of [`DAEMONS`] that is not running.
    pub fn start(&mut self) -> Result<(), String> {
        for daemon in DAEMONS {
            if self.daemon(daemon).is_none() {
                self.start_daemon(daemon)?;
            }
        }
        Ok(())
    }

    pub fn start_daemon(&mut self, daemon: &'static str) -> Result<(), String> {
        let bin = self.bins.join(daemon);
        let guard = self.ns.spawn(&[
            bin.as_os_str(),
            "--config".as_ref(),
            self.config.as_os_str(),
        ])?;
        self.daemons.push((daemon, guard));
        Ok(())
    }

    pub fn daemon(&self, name: &str) -> Option<&Guarded> {
        self.daemons
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, guard)| guard)
    }

    /// kill -9 of every daemon, as when the machine dies.
    pub fn kill_all(&mut self) {
        for (_, daemon) in &self.daemons {
            daemon.signal(libc::SIGKILL);
        }
        self.daemons.clear();
    }

    /// Sends `signal` to one daemon and, within `limit`, reaps it; its guard is gone either way.
    pub fn stop_daemon(
        &mut self,
        name: &str,
        signal: libc::c_int,
        limit: Duration,
    ) -> Result<(), String> {
        let at = self
            .daemons
            .iter()
            .position(|(n, _)| *n == name)
            .ok_or_else(|| format!("{name} is not running"))?;
        let (_, mut guard) = self.daemons.remove(at);
        guard.signal(signal);
        guard.wait_timeout(limit).map(drop)
    }

    pub fn lvsadm(&self, what: &str) -> String {
        let lvsadm = self.bins.join("lvsadm");
        self.ns
            .stdout(&[
                lvsadm.as_os_str(),
                what.as_ref(),
                "--config".as_ref(),
                self.config.as_os_str(),
            ])
            .unwrap_or_else(|e| e)
    }

    fn vrrp_instance(&self) -> Option<serde_json::Value> {
        crate::daemon::control(
            &self.run.join("vrrpd.sock"),
            &serde_json::json!({"cmd": "status"}),
        )
        .ok()
        .map(|mut s| s["instances"][0].take())
    }

    /// VI_1's state as vrrpd reports it, "down" when vrrpd does not answer.
    pub fn vrrp_state(&self) -> String {
        self.vrrp_instance().map_or_else(
            || "down".to_owned(),
            |i| i["state"].as_str().unwrap_or("?").to_owned(),
        )
    }

    /// One of VI_1's counters (transitions, adverts_received, ...), None when vrrpd does not
    /// answer.
    pub fn vrrp_counter(&self, name: &str) -> Option<u64> {
        self.vrrp_instance()
            .and_then(|i| i["counters"][name].as_u64())
    }

    /// Returns just after this director hears the next advert: an event timed from there
    /// has the whole advert interval ahead of it, the worst case for a backup's Master_Down.
    pub fn next_advert(&self, limit: Duration) -> Result<(), String> {
        let heard = self.vrrp_counter("adverts_received");
        wait_for(limit, || {
            let now = self.vrrp_counter("adverts_received");
            (now.is_some() && now > heard).then_some(())
        })
        .ok_or_else(|| "no advert heard".to_owned())
    }

    /// The scheduling policy of one daemon's main thread (SCHED_RESET_ON_FORK masked off).
    pub fn policy(&self, name: &str) -> Option<libc::c_int> {
        let pid = self.daemon(name)?.pid() as libc::pid_t;
        // SAFETY: sched_getscheduler only reads the policy of a process we started.
        let policy = unsafe { libc::sched_getscheduler(pid) };
        (policy >= 0).then_some(policy & !libc::SCHED_RESET_ON_FORK)
    }

    /// Resident set size of each running daemon, in kB.
    pub fn rss_kb(&self) -> Vec<(&'static str, u64)> {
        self.daemons
            .iter()
            .map(|(name, d)| (*name, rss_kb(d.pid()).unwrap_or(0)))
            .collect()
    }
}

/// How the backup learns that the master is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detection {
    /// VRRPv2 adverts every second, keepalived's default: Master_Down is 3.609 s at B.
    Vrrp,
    /// VRRPv3 adverts every 50 ms and `bfd_takeover` over an authenticated BFD session
    /// between the directors at `interval_ms` x 3.
    Bfd { interval_ms: u32 },
}

impl Detection {
    /// The `[[vrrp.instance]]` timing lines, and what follows the instance.
    fn vrrp(self, me: Ipv4Addr, peer: &str) -> (String, String) {
        match self {
            Detection::Vrrp => ("advert_interval = \"1s\"\n".to_owned(), String::new()),
            Detection::Bfd { interval_ms } => (
                "version = 3\nadvert_interval = \"50ms\"\nbfd_takeover = \"peer\"\n".to_owned(),
                format!(
                    "\n[[bfd.session]]\nname = \"peer\"\npeer = \"{peer}\"\nlocal_address = \"{me}\"\n\
                     interface = \"eth0\"\ninterval = \"{interval_ms}ms\"\nmultiplier = 3\n\
                     authentication = {{ type = \"meticulous-sha1\", key_id = 1, key = \"pair-key\" }}\n"
                ),
            ),
        }
    }
}

fn config(
    run: &Path,
    me: &str,
    ip: Ipv4Addr,
    peer: &str,
    priority: u8,
    detection: Detection,
) -> String {
    let (timing, bfd) = detection.vrrp(ip, peer);
    let mut text = format!(
        r#"# director {me}
[control]
socket_dir = "{run}"
# HTTP: each daemon's /metrics and /status.json, directord's status page on :9542.
metrics = "0.0.0.0:{HTTP_PORT}"

# Adverts and takeovers on time while the director forwards 1,000 flows (keepalived's
# vrrp_rt_priority). The limit is far above the 10 ms default: a debug build starting in UML,
# whose kernel (HZ=100) charges real-time use in 10 ms ticks, runs longer than that unblocked.
[vrrp]
rt_priority = 50
rlimit_rttime = "1s"

[[vrrp.instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = {priority}
{timing}virtual_addresses = ["{VIP}/24"]
garp = {{ repeat = 3, delay = "2s" }}
{bfd}
[[virtual_server]]
name = "web"
address = "{VIP}:80"
scheduler = "wrr"
forwarding = "dr"
check = {{ type = "http", path = "/", expect_body = "real-", interval = "1s", timeout = "800ms" }}
"#,
        run = run.display()
    );
    for real in REALS {
        text.push_str(&format!(
            "\n[[virtual_server.real]]\naddress = \"{real}:80\"\nweight = 100\n"
        ));
    }
    text.push_str(&format!(
        "\n[[virtual_server]]\nname = \"echo\"\naddress = \"{VIP}:7\"\nscheduler = \"rr\"\nforwarding = \"dr\"\n\
         check = {{ type = \"connect\", interval = \"1s\", timeout = \"800ms\" }}\n"
    ));
    for real in REALS {
        text.push_str(&format!(
            "\n[[virtual_server.real]]\naddress = \"{real}:7\"\nweight = 100\n"
        ));
    }
    text.push_str(&format!(
        "\n[sync]\ninterface = \"eth0\"\nsyncid = 5\nrole = {{ follow = \"VI_1\" }}\npeers = [\"{peer}:8848\"]\n\
         \n[feedback]\ninterval = \"1s\"\ntimeout = \"800ms\"\nsmoothing = 1.0\nmin_change_interval = \"1s\"\n"
    ));
    for real in REALS {
        text.push_str(&format!(
            "\n[[feedback.agent]]\nreal = \"{real}:80\"\naddress = \"{real}:3333\"\n"
        ));
    }
    text
}

/// Resident set size of a process, in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The whole topology. Fields drop in order: processes before the namespaces they run in.
pub struct Pair {
    /// The feedback agents (`feedbackd --agent`), one per real server.
    pub agents: Vec<Guarded>,
    services: Vec<Guarded>,
    pub directors: Vec<Director>,
    pub reals: Vec<Netns>,
    pub client: Netns,
    lan: Netns,
    ports: Cell<u32>,
    pub run: PathBuf,
}

impl Pair {
    /// Builds the namespaces, starts the real servers' services and writes each director's
    /// config; the directors' daemons are not started yet. `bins` holds the workspace's
    /// binaries (directord, vrrpd, syncd, feedbackd, lvsadm).
    pub fn build(bins: &Path) -> Result<Pair, String> {
        Self::build_with(bins, Detection::Vrrp)
    }

    /// As [`Pair::build`], the directors detecting a dead master by `detection`.
    pub fn build_with(bins: &Path, detection: Detection) -> Result<Pair, String> {
        for bin in DAEMONS.iter().chain(&["lvsadm"]) {
            if !bins.join(bin).exists() {
                return Err(format!(
                    "{} is not built (cargo build --workspace --bins, with --release for benchmarks)",
                    bins.join(bin).display()
                ));
            }
        }
        let lan = Netns::new("lan")?;
        lan.bridge("br0")?;
        let mut pair = Pair {
            agents: Vec::new(),
            services: Vec::new(),
            directors: Vec::new(),
            reals: Vec::new(),
            client: Netns::new("client")?,
            lan,
            ports: Cell::new(0),
            run: PathBuf::from(format!("/run/lvs-pair-{}", std::process::id())),
        };
        pair.plug(&pair.client, "192.0.2.2/24")?;

        let feedbackd = bins.join("feedbackd");
        for (i, ip) in REALS.iter().enumerate() {
            let real = pair.attach_host(&format!("real{i}"), &format!("{ip}/24"))?;
            real.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
            real.sysctl("net.ipv4.conf.all.arp_ignore=1")?;
            real.sysctl("net.ipv4.conf.all.arp_announce=2")?;
            let dir = pair.run.join(format!("real{i}"));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            std::fs::write(dir.join("index.html"), format!("real-{i}\n"))
                .map_err(|e| e.to_string())?;
            std::fs::write(dir.join("load"), if i == 2 { "30\n" } else { "90\n" })
                .map_err(|e| e.to_string())?;
            let agent_config = dir.join("agent.toml");
            std::fs::write(
                &agent_config,
                format!(
                    "[control]\nsocket_dir = \"{d}\"\n[agent]\nlisten = \"{ip}:3333\"\nreport = \"command\"\n\
                     command = \"cat {d}/load\"\noverride_file = \"{d}/override\"\n",
                    d = dir.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            pair.services.push(real.spawn(&[
                "python3",
                "-c",
                REAL_SERVER,
                dir.to_str().unwrap_or_default(),
            ])?);
            pair.agents.push(real.spawn(&[
                feedbackd.as_os_str(),
                "--agent".as_ref(),
                "--config".as_ref(),
                agent_config.as_os_str(),
            ])?);
            pair.reals.push(real);
        }

        for (name, ip, peer, priority) in [
            ("A", DIRECTOR_IPS[A], DIRECTOR_IPS[B], 150),
            ("B", DIRECTOR_IPS[B], DIRECTOR_IPS[A], 100),
        ] {
            let ns = pair.attach_host(&format!("dir{name}"), &format!("{ip}/24"))?;
            let dir = pair.run.join(name);
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let config_path = dir.join("director.toml");
            std::fs::write(
                &config_path,
                config(&dir, name, ip, &peer.to_string(), priority, detection),
            )
            .map_err(|e| e.to_string())?;
            pair.directors.push(Director {
                daemons: Vec::new(),
                ns,
                config: config_path,
                run: dir,
                bins: bins.to_owned(),
            });
        }
        Ok(pair)
    }

    /// Puts `interface` of the namespace the test runs in (the UML guest's link to the host,
    /// [`crate::uml::UPLINK`]) on the LAN's bridge: the host's end is then a host on the LAN.
    pub fn attach_uplink(&self, interface: &str) -> Result<(), String> {
        crate::process::run(std::process::Command::new("ip").args([
            "link",
            "set",
            interface,
            "netns",
            self.lan.name(),
        ]))?;
        self.lan.attach(interface, "br0")
    }

    /// A new namespace whose eth0 is on the LAN with address `cidr`.
    pub fn attach_host(&self, role: &str, cidr: &str) -> Result<Netns, String> {
        let host = Netns::new(role)?;
        self.plug(&host, cidr)?;
        Ok(host)
    }

    fn plug(&self, host: &Netns, cidr: &str) -> Result<(), String> {
        let port = format!("p{}", self.ports.get() + 1);
        self.ports.set(self.ports.get() + 1);
        veth(host, "eth0", &self.lan, &port)?;
        self.lan.attach(&port, "br0")?;
        host.addr("eth0", cidr)
    }

    /// Starts recording VRRP and ARP on the LAN's bridge, every director's frames included.
    pub fn capture_vrrp(&self) -> Result<Capture, String> {
        Capture::start(&self.lan, "br0", &self.run, "vrrp")
    }

    /// Waits until A is master and B backup (the steady state, after an election or a
    /// preemption).
    pub fn wait_a_master(&self, limit: Duration) -> Result<(), String> {
        let (a, b) = (&self.directors[A], &self.directors[B]);
        wait_for(limit, || {
            (a.vrrp_state() == "MASTER" && b.vrrp_state() == "BACKUP").then_some(())
        })
        .ok_or_else(|| {
            format!(
                "A is not master and B backup: A {} B {}",
                a.vrrp_state(),
                b.vrrp_state()
            )
        })
    }

    /// Waits until `director` reports MASTER; returns when it did.
    pub fn wait_master(&self, director: usize, limit: Duration) -> Result<Instant, String> {
        wait_for(limit, || {
            (self.directors[director].vrrp_state() == "MASTER").then(Instant::now)
        })
        .ok_or_else(|| format!("director {director} never became master"))
    }

    /// Waits until A's feedbackd hears all three agents.
    pub fn wait_agents(&self, limit: Duration) -> Result<(), String> {
        wait_for(limit, || {
            let status = self.directors[A].lvsadm("feedback");
            (status.matches("ready").count() == REALS.len()).then_some(())
        })
        .ok_or_else(|| "the agents were not all heard".to_owned())
    }

    /// One HTTP GET through the VIP, bounded to 3 s.
    pub fn fetch(&self) -> Option<String> {
        // busybox wget -T crashes under UML; coreutils timeout bounds it instead.
        self.client
            .stdout(&[
                "timeout",
                "3",
                "busybox",
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://{VIP}/"),
            ])
            .ok()
    }

    /// Opens `n` long-lived echo flows through the VIP and waits until all of them have echoed
    /// three rounds and B's syncd mirrors them.
    pub fn start_flows(&self, n: usize) -> Result<Flows, String> {
        let status = self.run.join("flows");
        let process = self.client.spawn(&[
            "python3",
            "-c",
            ECHO_CLIENT,
            &n.to_string(),
            VIP,
            status.to_str().unwrap_or_default(),
        ])?;
        let flows = Flows {
            _process: process,
            status,
        };
        wait_for(Duration::from_secs(120), || {
            flows
                .alive()
                .filter(|(round, alive)| *round >= 3 && *alive == n)
        })
        .ok_or_else(|| {
            format!(
                "the {n} echo flows did not all come up: {:?}",
                flows.alive()
            )
        })?;
        self.wait_mirrored(n)?;
        Ok(flows)
    }

    /// Waits until B's syncd mirrors at least `n` connections.
    pub fn wait_mirrored(&self, n: usize) -> Result<(), String> {
        let b = &self.directors[B];
        wait_for(Duration::from_secs(60), || {
            b.lvsadm("sync")
                .split_whitespace()
                .skip_while(|w| *w != "mirror")
                .nth(1)
                .and_then(|m| m.parse::<usize>().ok())
                .filter(|m| *m >= n)
        })
        .map(drop)
        .ok_or_else(|| format!("B's syncd never mirrored the flows:\n{}", b.lvsadm("sync")))
    }

    /// Starts opening a new HTTP connection to the VIP every `period`, each allowed `limit`
    /// to be answered; returns once the first is opened.
    pub fn start_prober(&self, period: Duration, limit: Duration) -> Result<Prober, String> {
        let out = self.run.join("prober");
        let [ready, stop] = [".ready", ".stop"].map(|ext| {
            let mut name = out.clone().into_os_string();
            name.push(ext);
            PathBuf::from(name)
        });
        for file in [&ready, &stop] {
            let _ = std::fs::remove_file(file);
        }
        let process = self.client.spawn(&[
            "python3",
            "-c",
            PROBER,
            VIP,
            &period.as_secs_f64().to_string(),
            &limit.as_secs_f64().to_string(),
            out.to_str().unwrap_or_default(),
        ])?;
        let prober = Prober {
            process,
            out,
            stop,
            limit: limit + Duration::from_secs(30),
        };
        wait_for(Duration::from_secs(30), || ready.exists().then_some(()))
            .ok_or("the prober did not start")?;
        Ok(prober)
    }
}

/// The long-lived echo flows.
pub struct Flows {
    _process: Guarded,
    status: PathBuf,
}

impl Flows {
    /// The last completed round and how many flows were alive in it.
    pub fn alive(&self) -> Option<(u64, usize)> {
        let text = std::fs::read_to_string(&self.status).ok()?;
        let last = text.lines().last()?;
        let mut words = last.split_whitespace();
        Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
    }

    /// Waits for three more complete rounds and returns how many flows are alive.
    pub fn settle(&self) -> Result<usize, String> {
        let before = self.alive().map_or(0, |(round, _)| round);
        wait_for(Duration::from_secs(120), || {
            self.alive().filter(|(round, _)| *round >= before + 3)
        })
        .map(|(_, alive)| alive)
        .ok_or_else(|| "the echo flows stopped reporting".to_owned())
    }
}

/// New connections opened at a fixed rate, across an event.
pub struct Prober {
    process: Guarded,
    out: PathBuf,
    stop: PathBuf,
    limit: Duration,
}

/// One new connection: when it was opened and answered, relative to the event.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    pub start: f64,
    pub end: f64,
    pub ok: bool,
}

impl Prober {
    /// Stops opening connections, waits for the last ones to be answered or given up, and
    /// returns every attempt, times in seconds relative to `event` (negative: before it).
    pub fn finish(mut self, event: SystemTime) -> Result<Vec<Attempt>, String> {
        std::fs::write(&self.stop, "").map_err(|e| e.to_string())?;
        self.process.wait_timeout(self.limit)?;
        let zero = event
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs_f64();
        let text = std::fs::read_to_string(&self.out).map_err(|e| e.to_string())?;
        let attempts: Vec<Attempt> = text
            .lines()
            .filter_map(|line| {
                let mut w = line.split_whitespace();
                Some(Attempt {
                    start: w.next()?.parse::<f64>().ok()? - zero,
                    end: w.next()?.parse::<f64>().ok()? - zero,
                    ok: w.next()? == "1",
                })
            })
            .collect();
        if attempts.is_empty() {
            return Err(format!(
                "the prober wrote nothing to {}",
                self.out.display()
            ));
        }
        Ok(attempts)
    }
}

/// The time since `started`, for narratives.
pub fn say(started: Instant, text: &str) {
    println!("[{:>6.2}s] {text}", started.elapsed().as_secs_f64());
}
