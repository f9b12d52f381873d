//! The active-active proof of issue 18, on a real IPVS kernel (UML): the cases of the
//! `uml_activeactive` lane, also run by the `scaleout` bench beside the director pair's.
//!
//! client (198.51.100.2) -> router (FRR bgpd + bfdd, ECMP over the directors with the layer-4
//! hash) -> 3 directors (IPVS `mh` with `mh-port`, `sloppy_tcp`, the same 4 real servers and
//! weights on each; our directord, vrrpd announcing the VIP, syncd in full mesh; FRR or BIRD
//! announcing what vrrpd installs) -> 4 real servers (DR: the VIP on lo, arp_ignore and
//! arp_announce), all on one LAN behind the router, answering the client directly.
//!
//! The load is one python process (tests/src/activeactive/flows.py) per role: each real
//! server answers every line with its name; the client holds 1,000 long-lived flows that each
//! exchange a line every 2 s and reports any that broke (error, close, no answer within 6 s,
//! or an answer from another real server). Every figure is printed for the CI log. The load
//! runs at nice 19: it stands for clients and servers elsewhere, and must not take the one
//! CPU of UML from the directors' and the router's daemons (BFD at 100 ms x 3 among them).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bird::{self, Bird};
use crate::frr::{self, Frr};
use crate::netns::{Netns, veth};
use crate::process::{Guarded, wait_for};
use crate::uml::{self, Case};
use lvsadm::routing::NAME;
use serde_json::Value;

const VIP: &str = "192.0.2.100";
const ROUTER: &str = "203.0.113.1";
const DIRECTORS: [&str; 3] = ["203.0.113.11", "203.0.113.12", "203.0.113.13"];
const REALS: [&str; 4] = [
    "203.0.113.21",
    "203.0.113.22",
    "203.0.113.23",
    "203.0.113.24",
];
const FLOWS: usize = 1000;
/// Source ports mapped to real servers before and after one is removed.
const PORTS: u32 = 1200;
const LOAD: &str = include_str!("activeactive/flows.py");

/// The proof's cases: with FRR on the directors (every step), then with BIRD (spread and a
/// director's death).
pub const CASES: [Case; 2] = [
    Case::new("active_active_directors_over_frr", over_frr).with_timeout(Duration::from_secs(240)),
    Case::new("active_active_directors_over_bird", over_bird)
        .with_timeout(Duration::from_secs(180)),
];

#[derive(Clone, Copy, PartialEq)]
enum Engine {
    Frr,
    Bird,
}

/// The routing engine a director runs, ended (by PID) when dropped.
enum Routing {
    Frr(Frr),
    Bird(Bird),
}

impl Routing {
    fn pids(&self) -> Vec<u32> {
        match self {
            Routing::Frr(frr) => frr.pids(),
            Routing::Bird(bird) => vec![bird.pid()],
        }
    }

    fn kill(&self) {
        match self {
            Routing::Frr(frr) => frr.kill(),
            Routing::Bird(bird) => bird.kill(),
        }
    }
}

/// One director. Field order is drop order: daemons, then the engine, then the namespace.
struct Director {
    daemons: Vec<Guarded>,
    routing: Option<Routing>,
    link: String,
    dir: PathBuf,
    netns: Netns,
}

fn director_toml(dir: &Path, n: usize) -> String {
    let peers: Vec<String> = DIRECTORS
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != n)
        .map(|(_, d)| format!("\"{d}\""))
        .collect();
    let reals: String = REALS
        .iter()
        .map(|r| format!("[[virtual_server.real]]\naddress = \"{r}:80\"\n"))
        .collect();
    format!(
        r#"[control]
socket_dir = "{dir}"
state_dir = "{dir}"
[ipvs.sysctl]
sloppy_tcp = 1
[vrrp]
track_directord = {{ interval = "200ms", timeout = "500ms" }}
[sync]
interface = "d{n}"
syncid = 7
role = "both"
peers = [{peers}]
[[virtual_server]]
name = "web"
address = "{VIP}:80"
scheduler = "mh"
flags = ["mh-port"]
forwarding = "dr"
on_failure = "remove"
check = {{ type = "connect", interval = "500ms", timeout = "300ms", rise = 1, fall = 1 }}
{reals}[announce]
[[announce.vip]]
address = "{VIP}"
services = ["web"]
"#,
        dir = dir.display(),
        peers = peers.join(", ")
    )
}

impl Director {
    /// Director `n` on the router's LAN (its bridge `br0`), its daemons and engine started.
    fn start(n: usize, router: &Netns, engine: Engine) -> Result<Director, String> {
        let netns = Netns::new(&format!("aad{n}"))?;
        let link = format!("d{n}");
        let there = format!("r{n}");
        veth(&netns, &link, router, &there)?;
        router.attach(&there, "br0")?;
        netns.addr(&link, &format!("{}/24", DIRECTORS[n]))?;
        netns.default_route(ROUTER)?;
        let dir = PathBuf::from(format!("/run/lvs-aa-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("director.toml"), director_toml(&dir, n))
            .map_err(|e| e.to_string())?;
        let mut director = Director {
            daemons: Vec::new(),
            routing: None,
            link,
            dir,
            netns,
        };
        director.start_stack(n, engine)?;
        Ok(director)
    }

    fn config(&self) -> PathBuf {
        self.dir.join("director.toml")
    }

    /// directord (IPVS, its sysctls), syncd, vrrpd, then the routing engine.
    fn start_stack(&mut self, n: usize, engine: Engine) -> Result<(), String> {
        let config = self.config();
        for daemon in ["directord", "syncd", "vrrpd"] {
            let socket = self.dir.join(format!("{daemon}.sock"));
            let log = self.dir.join(format!("{daemon}.log"));
            self.daemons.push(crate::daemon::start_logged(
                &self.netns,
                daemon,
                &config,
                &socket,
                Some(&log),
            )?);
        }
        let address = DIRECTORS[n];
        let routing = match engine {
            Engine::Frr => {
                let frr = Frr::start(&self.netns)?;
                let snippet = frr::snippet(&config, "frr")?;
                frr.apply(&frr::director_config(address, ROUTER, NAME, &snippet))?;
                Routing::Frr(frr)
            }
            Engine::Bird => {
                let snippet = frr::snippet(&config, "bird")?;
                Routing::Bird(Bird::start(
                    &self.netns,
                    &bird::director_config(address, ROUTER, &snippet),
                )?)
            }
        };
        favour(&routing.pids())?;
        self.routing = Some(routing);
        Ok(())
    }

    /// The whole stack dies at once: link down, kill -9 of every daemon and the engine, so
    /// nothing says goodbye (no NOTIFICATION, no withdrawal, no TCP close).
    /// Returns when the link went down, as seconds of the day (see [`secs_of_day`]).
    fn die(&self) -> Result<f64, String> {
        let down = self.netns.link_down_now(&self.link)?;
        for daemon in &self.daemons {
            daemon.signal(libc::SIGKILL);
        }
        if let Some(routing) = &self.routing {
            routing.kill();
        }
        Ok(secs_of_day(down))
    }

    /// Back after [`Director::die`]: link up, a fresh stack (vrrpd sweeps and re-adds its
    /// routes, directord adopts the table the kernel kept).
    fn revive(&mut self, n: usize, engine: Engine) -> Result<(), String> {
        self.daemons.clear();
        self.routing = None;
        self.netns.ip(&["link", "set", &self.link, "up"])?;
        self.start_stack(n, engine)
    }

    /// Connections this director scheduled itself (synced ones are not counted), from the
    /// service's `Conns` in `ipvsadm -Ln --stats`.
    fn scheduled(&self) -> Result<u64, String> {
        self.stat(2)
    }

    /// Packets this director forwarded for the VIP (`InPkts`).
    fn packets(&self) -> Result<u64, String> {
        self.stat(3)
    }

    fn stat(&self, column: usize) -> Result<u64, String> {
        let stats = self.netns.stdout(&["ipvsadm", "-Ln", "--stats"])?;
        stats
            .lines()
            .find(|l| l.starts_with(&format!("TCP  {VIP}:80")))
            .and_then(|l| l.split_whitespace().nth(column)?.parse().ok())
            .ok_or_else(|| format!("no stats for the VIP:\n{stats}"))
    }

    /// lvsadm in the director's namespace (where its IPVS table is) on its config.
    fn lvsadm_command(&self, args: &[&str]) -> std::process::Command {
        let mut command = self
            .netns
            .command(&[crate::workspace_bin("lvsadm").as_os_str()]);
        command.args(args).arg("--config").arg(self.config());
        command
    }

    fn lvsadm(&self, args: &[&str]) -> Result<String, String> {
        crate::process::run_stdout(&mut self.lvsadm_command(args))
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        self.daemons.clear();
        self.routing = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Routing daemons run at nice -10 (the load at 19): in UML they share one CPU with the
/// load generators and every other daemon, and BFD at 100 ms x 3 takes a 300 ms stall of
/// bfdd for a dead peer; on a director they would have cores of their own.
fn favour(pids: &[u32]) -> Result<(), String> {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let mut renice = std::process::Command::new("renice");
    renice.args(["-n", "-10", "-p"]).args(&pids);
    crate::process::run(&mut renice).map(drop)
}

/// The whole site. Field order is drop order: load, directors, router's engine, namespaces.
struct Site {
    servers: Vec<Guarded>,
    directors: Vec<Director>,
    router_frr: Frr,
    reals: Vec<Netns>,
    client: Netns,
    router: Netns,
    load: tempfile::TempDir,
}

impl Site {
    fn build(engine: Engine) -> Result<Site, String> {
        let router = Netns::new("aar")?;
        router.bridge("br0")?;
        router.addr("br0", &format!("{ROUTER}/24"))?;
        router.sysctl("net.ipv4.ip_forward=1")?;
        router.sysctl("net.ipv4.fib_multipath_hash_policy=1")?;
        let router_frr = Frr::start(&router)?;
        favour(&router_frr.pids())?;
        if std::env::var_os("LVS_AA_DEBUG").is_some() {
            router_frr.apply(
                "log timestamp precision 3\ndebug bfd peer\ndebug bgp neighbor-events\n\
                 debug bgp zebra\ndebug zebra rib\n",
            )?;
        }
        router_frr.apply(&frr::router_config(ROUTER, &DIRECTORS, NAME, true))?;
        let client = Netns::new("aac")?;
        veth(&client, "c0", &router, "rc")?;
        router.addr("rc", "198.51.100.1/24")?;
        client.addr("c0", "198.51.100.2/24")?;
        client.default_route("198.51.100.1")?;
        let load = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::write(load.path().join("flows.py"), LOAD).map_err(|e| e.to_string())?;
        let mut site = Site {
            servers: Vec::new(),
            directors: Vec::new(),
            router_frr,
            reals: Vec::new(),
            client,
            router,
            load,
        };
        for (n, address) in REALS.iter().enumerate() {
            site.real_server(n, address)?;
        }
        for n in 0..DIRECTORS.len() {
            let director = Director::start(n, &site.router, engine)?;
            site.directors.push(director);
        }
        Ok(site)
    }

    /// Real server `n`: DR (the VIP on lo, answered but never ARPed for), its replies
    /// straight to the router; a python server answering with its name, `rs<n>`.
    fn real_server(&mut self, n: usize, address: &str) -> Result<(), String> {
        let netns = Netns::new(&format!("aas{n}"))?;
        veth(&netns, "e0", &self.router, &format!("s{n}"))?;
        self.router.attach(&format!("s{n}"), "br0")?;
        for setting in [
            "net.ipv4.conf.all.arp_ignore=1",
            "net.ipv4.conf.all.arp_announce=2",
        ] {
            netns.sysctl(setting)?;
        }
        netns.addr("e0", &format!("{address}/24"))?;
        netns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
        netns.default_route(ROUTER)?;
        let script = self.script();
        self.servers.push(netns.spawn(&[
            "nice",
            "-n19",
            "python3",
            script.as_str(),
            "serve",
            &format!("rs{n}"),
            "80",
        ])?);
        self.reals.push(netns);
        Ok(())
    }

    fn script(&self) -> String {
        self.load.path().join("flows.py").display().to_string()
    }

    /// The router's installed next hops for the VIP.
    fn hops(&self) -> Result<Vec<String>, String> {
        self.router_frr.fib_next_hops(&format!("{VIP}/32"))
    }

    fn until_hops(&self, want: &[&str], limit: Duration) -> Result<Duration, String> {
        let started = Instant::now();
        let mut last = Vec::new();
        wait_for(limit, || {
            last = self.hops().ok()?;
            (last == want).then_some(())
        })
        .ok_or_else(|| format!("router's next hops for {VIP}: {last:?}, wanted {want:?}"))?;
        Ok(started.elapsed())
    }

    /// `flows.py probe` from the client: new connections at `rate`/s for `secs` s; the
    /// count opened and answered.
    fn probe(&self, rate: u32, secs: u32) -> Result<(u64, u64, Value), String> {
        let out = self.client.stdout(&[
            "nice",
            "-n19",
            "python3",
            &self.script(),
            "probe",
            VIP,
            "80",
            &rate.to_string(),
            &secs.to_string(),
        ])?;
        let v: Value = serde_json::from_str(out.trim()).map_err(|e| format!("{e}: {out}"))?;
        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
        Ok((n("opened"), n("answered"), v["errors"].clone()))
    }

    /// `flows.py map`: which real server answers a connection from each of `count` source
    /// ports from 20000 (below the ephemeral range, so no flow of the client holds one).
    fn map(&self, count: u32) -> Result<serde_json::Map<String, Value>, String> {
        let out = self.client.stdout(&[
            "nice",
            "-n19",
            "python3",
            &self.script(),
            "map",
            VIP,
            "80",
            "20000",
            &count.to_string(),
        ])?;
        match serde_json::from_str(out.trim()) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(format!("flows.py map said: {out}")),
        }
    }
}

/// The client's long-lived flows (`flows.py hold`), stopped when dropped.
struct Hold {
    process: Guarded,
    dir: tempfile::TempDir,
}

impl Hold {
    fn start(site: &Site) -> Result<Hold, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let folder = dir.path().display().to_string();
        let process = site.client.spawn(&[
            "nice",
            "-n19",
            "python3",
            &site.script(),
            "hold",
            VIP,
            "80",
            &FLOWS.to_string(),
            &folder,
        ])?;
        Ok(Hold { process, dir })
    }

    fn status(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("status.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The flows broken so far, with why.
    fn broken(&self) -> Result<Vec<(String, String)>, String> {
        let status = self.status().ok_or("flows.py wrote no status")?;
        let broken = status["broken"].as_object().cloned().unwrap_or_default();
        Ok(broken
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
            .collect())
    }

    /// Waits until every flow is open and answered once.
    fn until_up(&self, limit: Duration) -> Result<Value, String> {
        wait_for(limit, || {
            let status = self.status()?;
            let up = status["up"].as_u64()? as usize;
            let broken = status["broken"].as_object()?.len();
            (up + broken >= FLOWS).then_some(status)
        })
        .ok_or_else(|| format!("flows not all up: {:?}", self.status()))
    }

    /// Every flow exchanges a line now: returns once all were answered or broke (a stalled
    /// flow breaks after flows.py's 6 s timeout).
    fn settle(&self) -> Result<(), String> {
        let id = SWEEP
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string();
        std::fs::write(self.dir.path().join("sweep"), &id).map_err(|e| e.to_string())?;
        wait_for(Duration::from_secs(10), || {
            (self.status()?["swept"].as_str()? == id).then_some(())
        })
        .ok_or_else(|| format!("sweep {id} not answered: {:?}", self.status()))
    }
}

static SWEEP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

impl Drop for Hold {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.path().join("stop"), "");
        let _ = self.process.wait_timeout(Duration::from_secs(5));
    }
}

/// `ip -ts monitor OBJECT` in a namespace, into a file, ended when dropped.
struct Monitor {
    _process: Guarded,
    file: PathBuf,
}

impl Monitor {
    fn start(netns: &Netns, object: &str, dir: &Path) -> Result<Monitor, String> {
        let file = dir.join(format!("monitor-{}-{object}.log", netns.name()));
        let out = std::fs::File::create(&file).map_err(|e| e.to_string())?;
        let mut command = netns.command(&["ip", "-ts", "monitor", object]);
        command.stdout(out);
        Ok(Monitor {
            _process: Guarded::spawn(&mut command)?,
            file,
        })
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap_or_default()
    }

    /// The stamp of the first event at or after `at` whose line `matches`.
    fn first_after(&self, at: f64, matches: impl Fn(&str) -> bool) -> Option<f64> {
        self.text()
            .lines()
            .filter(|l| matches(l))
            .filter_map(stamp_secs)
            .find(|stamp| *stamp >= at)
    }
}

/// Seconds of the day in a `[YYYY-MM-DDTHH:MM:SS.ffffff]` stamp of `ip -ts monitor`.
fn stamp_secs(line: &str) -> Option<f64> {
    let stamp = line.strip_prefix('[')?.split(']').next()?;
    let time = stamp.split('T').nth(1)?;
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// A wall-clock instant as seconds of the day (UTC), to compare with [`stamp_secs`].
fn secs_of_day(at: std::time::SystemTime) -> f64 {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    since.as_secs_f64() % 86_400.0
}

fn over_frr() -> Result<(), String> {
    proof(Engine::Frr)
}

fn over_bird() -> Result<(), String> {
    proof(Engine::Bird)
}

fn proof(engine: Engine) -> Result<(), String> {
    if let Some(missing) = uml::tools_missing(&["python3", "ipvsadm", "vtysh", "bird"]) {
        return Err(missing);
    }
    let started = Instant::now();
    let mut site = Site::build(engine)?;
    let took = site.until_hops(&DIRECTORS, Duration::from_secs(40))?;
    eprintln!(
        "[{engine}] router: {VIP}/32 via all 3 directors {:.1} s after the site's start ({took:?} waited)",
        started.elapsed().as_secs_f64(),
        engine = name(engine)
    );
    let hold = Hold::start(&site)?;
    let status = hold.until_up(Duration::from_secs(60))?;
    eprintln!(
        "[{}] {FLOWS} long-lived flows up; real servers: {}",
        name(engine),
        status["servers"]
    );
    let phase = |what: &str, since: Instant| {
        eprintln!(
            "[{}] {what} took {:.1} s",
            name(engine),
            since.elapsed().as_secs_f64()
        );
        Instant::now()
    };
    let mut at = phase("start and 1,000 flows", started);
    spread(&site, engine)?;
    mesh(&site, engine)?;
    lvsadm_status(&site, engine, "advertised")?;
    at = phase("(a), mesh and status", at);
    failure(&site, &hold, engine)?;
    at = phase("(b)", at);
    if engine == Engine::Frr {
        revival(&mut site, &hold)?;
        at = phase("(c)", at);
        drain(&site, &hold)?;
        at = phase("(d)", at);
        real_server_removed(&mut site, &hold)?;
        phase("(e)", at);
    }
    eprintln!(
        "[{}] proof done in {:.1} s",
        name(engine),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn name(engine: Engine) -> &'static str {
    match engine {
        Engine::Frr => "FRR",
        Engine::Bird => "BIRD",
    }
}

/// (a) The 1,000 flows over the 3 directors, counted from each one's IPVS stats: each within
/// +-15 % of a third (a fair split's standard deviation is 15 flows of 333: the bound is
/// 3.3 sigma).
fn spread(site: &Site, engine: Engine) -> Result<(), String> {
    // The kernel folds its counters in every 2 s.
    let mut counts = Vec::new();
    wait_for(Duration::from_secs(5), || {
        counts = site
            .directors
            .iter()
            .map(Director::scheduled)
            .collect::<Result<Vec<u64>, String>>()
            .ok()?;
        (counts.iter().sum::<u64>() >= FLOWS as u64).then_some(())
    });
    let total: u64 = counts.iter().sum();
    // A BGP session that went down and up since the start would have moved flows (and had
    // them scheduled again where they landed): shown beside the counts.
    let summary = site.router_frr.json("show bgp ipv4 unicast summary json")?;
    let uptimes: Vec<String> = DIRECTORS
        .iter()
        .map(|d| {
            let peer = &summary["peers"][*d];
            format!(
                "{d} up {:.1} s",
                peer["peerUptimeMsec"].as_f64().unwrap_or(0.0) / 1000.0
            )
        })
        .collect();
    eprintln!("[{}] (a) router's BGP sessions: {uptimes:?}", name(engine));
    eprintln!(
        "[{}] (a) connections scheduled per director (ipvsadm -Ln --stats): {counts:?}, total {total}",
        name(engine)
    );
    let third = total as f64 / 3.0;
    for (n, count) in counts.iter().enumerate() {
        let off = (*count as f64 - third) / third;
        eprintln!(
            "[{}] (a) director {n}: {count} flows, {:+.1} % from a third",
            name(engine),
            off * 100.0
        );
        if off.abs() > 0.15 {
            return Err(format!("director {n} has {count} of {total} flows"));
        }
    }
    if total < FLOWS as u64 {
        return Err(format!("only {total} of {FLOWS} flows in the IPVS tables"));
    }
    Ok(())
}

/// `lvsadm status` on director 0: vrrpd's state of the VIP and, with FRR, bgpd's view: the
/// session to the router and whether the VIP is sent there (`sent`: "advertised" or "NOT
/// advertised").
fn lvsadm_status(site: &Site, engine: Engine, sent: &str) -> Result<(), String> {
    let d0 = &site.directors[0];
    let said = d0.lvsadm(&["status", "--frr-pathspace", d0.netns.name()])?;
    let vip = said
        .lines()
        .filter(|l| l.starts_with("announce ") || l.starts_with("bgp "))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("[{}] lvsadm status on director 0:\n{vip}", name(engine));
    let bgp =
        format!("bgp (FRR) ipv4 neighbor {ROUTER} (AS 65000): Established; {VIP}/32 {sent}\n");
    let announced = sent == "advertised";
    let state = if announced { "announced" } else { "WITHDRAWN" };
    if !said.contains(&format!("announce {VIP} (proto 250): {state}")) {
        return Err(format!("lvsadm status does not say {state}:\n{said}"));
    }
    if (engine == Engine::Frr) != said.contains(&bgp) || said.contains("vtysh:") {
        return Err(format!("lvsadm status, FRR's part:\n{said}"));
    }
    Ok(())
}

/// syncd in full mesh (`role = "both"`): each director's kernel runs the master and the
/// backup sync daemons, syncd has handed its peers' entries to the local kernel backup, and
/// each IPVS table holds (nearly) every flow, not only its own third, so a flow that moves
/// finds its entry there.
fn mesh(site: &Site, engine: Engine) -> Result<(), String> {
    let tag = name(engine);
    for (n, director) in site.directors.iter().enumerate() {
        let daemons = director.netns.stdout(&["ipvsadm", "-L", "--daemon"])?;
        let status = crate::daemon::control(
            &director.dir.join("syncd.sock"),
            &serde_json::json!({"cmd": "status"}),
        )?;
        let injected = status["counters"]["messages_injected"]
            .as_u64()
            .ok_or_else(|| format!("no counters in syncd's status: {status}"))?;
        let entries = wait_for(Duration::from_secs(10), || {
            let table = director
                .netns
                .stdout(&["cat", "/proc/net/ip_vs_conn"])
                .ok()?;
            let entries = table.lines().filter(|l| l.starts_with("TCP")).count();
            (entries * 10 >= FLOWS * 9).then_some(entries)
        });
        eprintln!(
            "[{tag}] syncd mesh: director {n}: kernel sync daemons {:?}, {injected} messages \
             from peers injected, {entries:?} entries in its IPVS table ({} scheduled by itself)",
            daemons.lines().collect::<Vec<_>>(),
            director.scheduled()?
        );
        if !(daemons.contains("master") && daemons.contains("backup")) || injected == 0 {
            return Err(format!("director {n} is no full-mesh sync member"));
        }
        if entries.is_none() {
            return Err(format!("director {n} lacks the other directors' entries"));
        }
    }
    Ok(())
}

/// (b) Director 2 dies whole under the 1,000 flows while new connections keep coming: the
/// router's route through it gone <= 400 ms after its link went down (`ip -ts monitor route`
/// in the router), >= 99.9 % of the flows unbroken, >= 99 % of the new connections answered.
fn failure(site: &Site, hold: &Hold, engine: Engine) -> Result<(), String> {
    let tag = name(engine);
    wait_for(Duration::from_secs(20), || {
        site.router_frr
            .bfd_up()
            .ok()
            .filter(|up| up.len() == DIRECTORS.len())
    })
    .ok_or("the router's BFD sessions did not all come up")?;
    let before = hold.broken()?.len();
    let routes = Monitor::start(&site.router, "route", hold.dir.path())?;
    std::thread::sleep(Duration::from_millis(300));
    let client = std::thread::scope(|scope| -> Result<_, String> {
        let probe = scope.spawn(|| site.probe(20, 4));
        std::thread::sleep(Duration::from_millis(500));
        let down_at = site.directors[2].die()?;
        let probe = probe.join().map_err(|_| "probe thread panicked")?;
        Ok((down_at, probe))
    })?;
    let (down_at, probe) = client;
    site.until_hops(&DIRECTORS[..2], Duration::from_secs(2))?;
    // From the instant the link went down to the router's route change as `ip -ts monitor`
    // stamps it on receipt (a late wake-up of the monitor only adds to it).
    let gone_at = routes
        .first_after(down_at, |l| l.contains(VIP))
        .ok_or_else(|| format!("no route change for {VIP}:\n{}", routes.text()))?;
    let took_ms = (gone_at - down_at) * 1000.0;
    eprintln!(
        "[{tag}] (b) director 2 dead: the router's route changed {took_ms:.0} ms after its \
         link went down"
    );
    eprintln!("[{tag}] (b) router's monitor:\n{}", routes.text());
    if std::env::var_os("LVS_AA_DEBUG").is_some() {
        for daemon in ["bfdd", "bgpd", "zebra"] {
            eprintln!("--- router {daemon}\n{}", site.router_frr.log(daemon));
        }
    }
    let (opened, answered, errors) = probe?;
    eprintln!(
        "[{tag}] (b) new connections during the failure: {answered} of {opened} answered {errors}"
    );
    hold.settle()?;
    let broken = hold.broken()?;
    let lost = broken.len() - before;
    eprintln!(
        "[{tag}] (b) established flows broken by the failure: {lost} of {FLOWS} ({:.2} % kept): {:?}",
        100.0 * (FLOWS - lost) as f64 / FLOWS as f64,
        broken.iter().take(5).collect::<Vec<_>>()
    );
    if took_ms > 400.0 {
        return Err(format!("the router kept the dead path {took_ms:.0} ms"));
    }
    if lost * 1000 > FLOWS {
        return Err(format!("{lost} of {FLOWS} flows broke"));
    }
    if answered * 100 < opened * 99 {
        return Err(format!(
            "only {answered} of {opened} new connections answered"
        ));
    }
    Ok(())
}

/// (c) Director 2 comes back: the router spreads over 3 again, which moves about a third of
/// the flows onto it mid-stream (it forwards their packets: its InPkts grow); none breaks.
fn revival(site: &mut Site, hold: &Hold) -> Result<(), String> {
    let before = hold.broken()?.len();
    let started = Instant::now();
    site.directors[2].revive(2, Engine::Frr)?;
    site.until_hops(&DIRECTORS, Duration::from_secs(30))?;
    eprintln!(
        "[FRR] (c) director 2 back in the router's ECMP {:.1} s after its restart",
        started.elapsed().as_secs_f64()
    );
    // The counters are the kernel's, kept across the restart; folded in every 2 s.
    let packets = site.directors[2].packets()?;
    hold.settle()?;
    std::thread::sleep(Duration::from_secs(2));
    let forwarded = site.directors[2].packets()? - packets;
    let lost = hold.broken()?.len() - before;
    eprintln!(
        "[FRR] (c) flows broken by the return: {lost}; packets director 2 forwarded for the \
         flows since: {forwarded}"
    );
    if lost != 0 || forwarded == 0 {
        return Err(format!(
            "{lost} flows broke, director 2 forwarded {forwarded} packets"
        ));
    }
    Ok(())
}

/// (d) `lvsadm announce drain` on director 0: withdrawn, its flows move to the others,
/// none breaks; then resumed. `--wait` returns once no packet reaches the VIP there (the
/// synced entries of the moved flows stay active, so active connections alone would never
/// reach 0), and with no time to wait exits 75 saying the flows are still there.
fn drain(site: &Site, hold: &Hold) -> Result<(), String> {
    let before = hold.broken()?.len();
    let d0 = &site.directors[0];
    // --wait's failure path first: with no time to wait, the flows are still here.
    let output = d0
        .lvsadm_command(&["announce", "drain", VIP, "--wait", "--timeout", "0s"])
        .output()
        .map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&output.stdout);
    eprintln!("[FRR] (d) lvsadm announce drain --wait --timeout 0s: {said}");
    if output.status.code() != Some(75) || !said.contains("not drained") {
        return Err(format!("drain --wait with no time: {:?}", output.status));
    }
    let took = site.until_hops(&DIRECTORS[1..], Duration::from_secs(5))?;
    eprintln!("[FRR] (d) lvsadm announce drain on director 0: withdrawn in {took:?}");
    lvsadm_status(site, Engine::Frr, "NOT advertised")?;
    let started = Instant::now();
    let said = d0.lvsadm(&[
        "announce",
        "drain",
        VIP,
        "--wait",
        "--quiet",
        "3s",
        "--timeout",
        "30s",
    ])?;
    eprintln!(
        "[FRR] (d) lvsadm announce drain --wait returned after {:.1} s: {said}",
        started.elapsed().as_secs_f64()
    );
    if !said.contains("drained after") {
        return Err(format!("drain --wait said: {said}"));
    }
    hold.settle()?;
    let lost = hold.broken()?.len() - before;
    eprintln!("[FRR] (d) flows broken by the drain: {lost}");
    d0.lvsadm(&["announce", "resume", VIP])?;
    site.until_hops(&DIRECTORS, Duration::from_secs(5))?;
    if lost != 0 {
        return Err(format!("{lost} flows broke in a drain"));
    }
    Ok(())
}

/// (e) Real server 3 stops: the directors' checks remove it everywhere (`on_failure =
/// "remove"`, so `mh` rebuilds its table over 3 servers); of 1,200 fixed source ports mapped
/// before and after, those that were on it move, and the share of the others that moved is
/// measured against the 1/N = 25 % a modulo rehash would move (held to 5 %). The
/// established flows on the others must not break.
fn real_server_removed(site: &mut Site, hold: &Hold) -> Result<(), String> {
    let before_map = site.map(PORTS)?;
    let broken = hold.broken()?;
    let (broken_before, elsewhere_before) = (broken.len(), not_on_rs3(&broken));
    site.servers.remove(3);
    let removed = || {
        site.directors.iter().all(|d| {
            d.netns
                .stdout(&["ipvsadm", "-Ln"])
                .is_ok_and(|t| !t.contains(REALS[3]))
        })
    };
    wait_for(Duration::from_secs(10), || removed().then_some(()))
        .ok_or("real server 3 not removed on every director")?;
    hold.settle()?;
    let after_map = site.map(PORTS)?;
    let (mut on_removed, mut others, mut others_moved) = (0, 0, 0);
    for (port, was) in &before_map {
        let now = after_map.get(port).and_then(Value::as_str).unwrap_or("");
        if was.as_str() == Some("rs3") {
            on_removed += 1;
        } else {
            others += 1;
            if Some(now) != was.as_str() {
                others_moved += 1;
            }
        }
    }
    let errors = after_map
        .values()
        .filter(|v| v.as_str().is_some_and(|s| s.starts_with("error")))
        .count();
    let broken = hold.broken()?;
    let lost = broken.len() - broken_before;
    let lost_elsewhere = not_on_rs3(&broken) - elsewhere_before;
    let share = others_moved as f64 / others.max(1) as f64;
    eprintln!(
        "[FRR] (e) real server 3 out: {on_removed} of {PORTS} ports were on it ({:.1} %, 1/N = 25 %); \
         of the {others} others {others_moved} moved ({:.2} %); {errors} new connections failed; \
         established flows broken: {lost}, {lost_elsewhere} of them not on rs3",
        on_removed as f64 * 100.0 / f64::from(PORTS),
        share * 100.0
    );
    if errors != 0 || share > 0.05 || lost_elsewhere != 0 {
        return Err(format!(
            "{errors} connections failed, {:.1} % of the others moved, {lost_elsewhere} flows \
             on other real servers broke",
            share * 100.0
        ));
    }
    Ok(())
}

/// Broken flows that were not on real server 3.
fn not_on_rs3(broken: &[(String, String)]) -> usize {
    broken
        .iter()
        .filter(|(_, why)| !why.starts_with("rs3:"))
        .count()
}
