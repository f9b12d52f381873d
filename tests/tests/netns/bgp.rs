//! Active-active directors announced over BGP through FRR (issue 18), routing only: a router
//! (FRR bgpd, ECMP) and two directors (FRR with `lvsadm routing-config --engine frr` applied
//! through vtysh, and vrrpd with `[announce]`), each in its own namespace on one LAN.
//!
//! directord needs IPVS, which this kernel lacks; each director's directord socket is served
//! here by the test, answering the quorum request vrrpd asks every 200 ms as directord's loop
//! would, so the test can take a service's quorum away or make directord vanish. The same
//! with the real directord and IPVS is the UML proof's (next step of issue 18).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lvs_tests::bird::{self, Bird};
use lvs_tests::frr::{self, Frr};
use lvs_tests::netns::{Netns, veth};
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::{lane_available, workspace_bin};
use lvsadm::routing::NAME;

const VIP: &str = "192.0.2.100";
const PREFIX: &str = "192.0.2.100/32";
/// An IPv6 VIP beside it: its routes and the engines' IPv6 parts of the snippet (the router
/// has IPv4 sessions only, so it is checked in the director's own BGP table).
const VIP6: &str = "2001:db8::100";
const ROUTER: &str = "203.0.113.1";
const DIRECTORS: [&str; 2] = ["203.0.113.11", "203.0.113.12"];
/// The director running BIRD instead of FRR.
const BIRD_DIRECTOR: &str = "203.0.113.13";

/// directord's control socket as vrrpd sees it: `{"cmd":"quorum"}` answered with the `web`
/// service's quorum as the test sets it; gone (connection refused) once dropped.
struct Directord {
    quorum: Arc<AtomicBool>,
    running: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    socket: PathBuf,
}

impl Directord {
    fn serve(dir: &Path) -> Result<Directord, String> {
        let socket = dir.join("directord.sock");
        let listener = UnixListener::bind(&socket).map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let quorum = Arc::new(AtomicBool::new(true));
        let running = Arc::new(AtomicBool::new(true));
        let (held, live) = (quorum.clone(), running.clone());
        let thread = std::thread::spawn(move || {
            while live.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut request = String::new();
                let _ = BufReader::new(&stream).read_line(&mut request);
                let reply = format!(
                    "{{\"ok\":{{\"quorum\":{{\"web\":{}}}}}}}\n",
                    held.load(Ordering::Relaxed)
                );
                let _ = (&stream).write_all(reply.as_bytes());
            }
        });
        Ok(Directord {
            quorum,
            running,
            thread: Some(thread),
            socket,
        })
    }
}

impl Drop for Directord {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn vrrpd_config(dir: &Path) -> String {
    format!(
        r#"[control]
socket_dir = "{dir}"
state_dir = "{dir}"
[vrrp]
track_directord = {{ interval = "200ms", timeout = "200ms" }}
[[virtual_server]]
name = "web"
address = "{VIP}:80"
[[virtual_server.real]]
address = "198.51.100.11:80"
[announce]
[[announce.vip]]
address = "{VIP}"
services = ["web"]
communities = ["65001:100"]
med = 50
[[announce.vip]]
address = "{VIP6}"
services = ["web"]
"#,
        dir = dir.display()
    )
}

/// Polls the router's installed next hops for the VIP until they are `want`; the time taken.
fn until_hops(router: &Frr, want: &[&str], limit: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let mut last = Vec::new();
    wait_for(limit, || {
        last = router.fib_next_hops(PREFIX).ok()?;
        (last == want).then_some(())
    })
    .ok_or_else(|| format!("router's next hops for {PREFIX}: {last:?}, wanted {want:?}"))?;
    Ok(start.elapsed())
}

struct Director {
    /// Its address on the router's LAN, and its link there.
    address: String,
    link: String,
    dir: tempfile::TempDir,
    config: PathBuf,
    vrrpd: Option<Guarded>,
    directord: Option<Directord>,
    /// The routing engine (FRR or BIRD), held until the director drops.
    _engine: Box<dyn std::any::Any>,
    netns: Netns,
}

/// A director at `address` on the router's LAN: the engine (FRR, or BIRD with `bird`) with
/// its BGP session to the router and our snippet, directord's socket, vrrpd.
fn director(n: usize, address: &str, lan: &Netns, bird: bool) -> Result<Director, String> {
    let netns = Netns::new(&format!("bgpd{n}"))?;
    let (here, there) = (format!("d{n}"), format!("r{n}"));
    veth(&netns, &here, lan, &there)?;
    lan.attach(&there, "br0")?;
    netns.addr(&here, &format!("{address}/24"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = dir.path().join("director.toml");
    std::fs::write(&config, vrrpd_config(dir.path())).map_err(|e| e.to_string())?;
    let engine = if bird {
        let bird: Box<dyn std::any::Any> = Box::new(Bird::start(
            &netns,
            &bird::director_config(address, ROUTER, &frr::snippet(&config, "bird")?),
        )?);
        bird
    } else {
        let frr = Frr::start(&netns)?;
        frr.apply(&frr::director_config(
            address,
            ROUTER,
            NAME,
            &frr::snippet(&config, "frr")?,
        ))?;
        Box::new(frr)
    };
    let directord = Directord::serve(dir.path())?;
    let vrrpd = lvs_tests::daemon::start(&netns, "vrrpd", &config, &dir.path().join("vrrpd.sock"))?;
    Ok(Director {
        address: address.to_owned(),
        link: here,
        dir,
        config,
        vrrpd: Some(vrrpd),
        directord: Some(directord),
        _engine: engine,
        netns,
    })
}

/// What the unit's ExecStopPost does after vrrpd died: `vrrpd --release-vips`.
fn release(director: &Director) -> Result<(), String> {
    let mut release = director.netns.command(&[
        workspace_bin("vrrpd").as_os_str(),
        "--release-vips".as_ref(),
        "--config".as_ref(),
        director.config.as_os_str(),
    ]);
    lvs_tests::process::run(&mut release).map(drop)
}

/// The router: FRR with a session to each of `directors`, ECMP over up to 8 paths with the
/// layer-4 hash; with `bfd`, a BFD session to each at the snippet's 100 ms x 3.
fn router(lan: &Netns, directors: &[&str], bfd: bool) -> Result<Frr, String> {
    lan.bridge("br0")?;
    lan.addr("br0", &format!("{ROUTER}/24"))?;
    lan.sysctl("net.ipv4.ip_forward=1")?;
    lan.sysctl("net.ipv4.fib_multipath_hash_policy=1")?;
    let frr = Frr::start(lan)?;
    frr.apply(&frr::router_config(ROUTER, directors, NAME, bfd))?;
    Ok(frr)
}

/// The router learns the VIP from both directors (ECMP, both in its kernel FIB, with the
/// snippet's community) and spreads a client's connections over them, and loses a director's
/// path when: a service it announces for loses quorum, directord vanishes, the operator drains
/// it (`lvsadm announce drain`, also across a restart), vrrpd is killed -9 and the unit's
/// ExecStopPost (`vrrpd --release-vips`) runs, the director dies whole (BFD), and vrrpd stops.
/// Each withdrawal's time to the router's FIB is printed; the health ones are bounded by the
/// probe interval and timeout (0.4 s) plus FRR's propagation, held to 3 s. Without vrrpd's
/// routes, health tracking or sweep, the router would keep (or never get) the path and this
/// fails.
#[test]
fn directors_announce_the_vip_over_bgp_while_healthy() -> Result<(), String> {
    if !lane_available("netns", lvs_tests::netns_missing())
        || !lane_available("frr", frr::missing())
    {
        return Ok(());
    }
    let lan = Netns::new("bgpr")?;
    let router = router(&lan, &DIRECTORS, true)?;
    let client = client(&lan)?;
    let mut d = [
        director(0, DIRECTORS[0], &lan, false)?,
        director(1, DIRECTORS[1], &lan, false)?,
    ];
    let both = DIRECTORS;

    let took = until_hops(&router, &both, Duration::from_secs(30))?;
    println!("router: {PREFIX} via both directors {took:?} after the last start");
    let bgp = router.json(&format!("show ip bgp {PREFIX} json"))?;
    assert!(
        bgp.to_string().contains("65001:100") && bgp.to_string().contains("\"metric\":50"),
        "the snippet's community and MED reach the router: {bgp}"
    );
    let frr0 = d[0]._engine.downcast_ref::<Frr>().ok_or("not FRR")?;
    wait_for(Duration::from_secs(5), || {
        let table = frr0
            .json(&format!("show bgp ipv6 unicast {VIP6}/128 json"))
            .ok()?;
        table.get("paths").is_some().then_some(())
    })
    .ok_or("FRR did not take the IPv6 VIP's kernel route into BGP")?;
    spread(&client, &d)?;

    health_withdraws(&router, &mut d[0], both[1])?;
    drain_withdraws(&router, &mut d[1], both[0])?;
    kill_and_release(&router, &mut d[0], both[1])?;
    restart(&mut d[0])?;
    until_hops(&router, &both, Duration::from_secs(3))?;
    let took = dead_director(&router, &d[1], &[both[0]])?;
    println!(
        "director 2 dead (link down, kill -9 of FRR and vrrpd): gone from the router in {took:?}"
    );
    d[0].vrrpd.take();
    until_hops(&router, &[], Duration::from_secs(3))?;
    Ok(())
}

/// A client behind the router (198.51.100.2, the router 198.51.100.1).
fn client(lan: &Netns) -> Result<Netns, String> {
    let client = Netns::new("bgpc")?;
    veth(&client, "c0", lan, "rc")?;
    lan.addr("rc", "198.51.100.1/24")?;
    client.addr("c0", "198.51.100.2/24")?;
    client.default_route("198.51.100.1")?;
    Ok(client)
}

/// Each director serves its own name on port 80 of the VIP (taken as local through vrrpd's
/// route alone: no address); the client opens 200 connections to the VIP from as many source
/// ports, which the router's layer-4 hash spreads. Each director must answer 30-70 % of them
/// (a fair split's standard deviation is 3.5 %).
fn spread(client: &Netns, d: &[Director; 2]) -> Result<(), String> {
    let mut servers = Vec::new();
    for (n, director) in d.iter().enumerate() {
        director.netns.default_route(ROUTER)?;
        std::fs::write(director.dir.path().join("index.html"), format!("d{n}\n"))
            .map_err(|e| e.to_string())?;
        let www = director.dir.path().to_string_lossy().into_owned();
        servers.push(
            director
                .netns
                .spawn(&["busybox", "httpd", "-f", "-p", "80", "-h", &www])?,
        );
    }
    let fetch =
        format!("for i in $(seq 200); do busybox wget -q -O - http://{VIP}/ || echo failed; done");
    wait_for(Duration::from_secs(5), || {
        client
            .sh(&format!("busybox wget -q -O - http://{VIP}/"))
            .ok()
    })
    .ok_or("no answer through the VIP")?;
    let answers = client.sh(&fetch)?;
    let count = |name: &str| answers.lines().filter(|l| *l == name).count();
    let (first, second) = (count("d0"), count("d1"));
    println!("200 connections to the VIP: director 1 answered {first}, director 2 {second}");
    for share in [first, second] {
        assert!((60..=140).contains(&share), "uneven spread:\n{answers}");
    }
    assert_eq!(first + second, 200, "every connection answered");
    Ok(())
}

/// A service below quorum, then directord gone, on `director`: withdrawn each time, back after.
fn health_withdraws(router: &Frr, director: &mut Director, other: &str) -> Result<(), String> {
    let bound = Duration::from_secs(3);
    let both = DIRECTORS;
    let quorum = director
        .directord
        .as_ref()
        .ok_or("no directord")?
        .quorum
        .clone();
    quorum.store(false, Ordering::Relaxed);
    let took = until_hops(router, &[other], bound)?;
    println!("web below quorum on director 1: withdrawn from the router in {took:?}");
    quorum.store(true, Ordering::Relaxed);
    until_hops(router, &both, bound)?;

    director.directord = None;
    let took = until_hops(router, &[other], bound)?;
    println!("directord gone on director 1: withdrawn in {took:?}");
    director.directord = Some(Directord::serve(director.dir.path())?);
    until_hops(router, &both, bound)?;
    Ok(())
}

/// `lvsadm announce drain` withdraws, also across a restart of vrrpd; `resume` announces.
fn drain_withdraws(router: &Frr, director: &mut Director, other: &str) -> Result<(), String> {
    let bound = Duration::from_secs(3);
    let lvsadm = workspace_bin("lvsadm");
    let drain = |verb: &str, who: &Director| {
        let mut command = std::process::Command::new(&lvsadm);
        command
            .args(["announce", verb, VIP, "--config"])
            .arg(&who.config);
        lvs_tests::process::run_stdout(&mut command)
    };
    let said = drain("drain", director)?;
    assert!(said.contains("WITHDRAWN (drained)"), "{said}");
    let took = until_hops(router, &[other], bound)?;
    println!("lvsadm announce drain on director 2: withdrawn in {took:?}");
    restart(director)?;
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        router.fib_next_hops(PREFIX)?,
        [other],
        "drained after a restart"
    );
    drain("resume", director)?;
    until_hops(router, &DIRECTORS, bound)?;
    Ok(())
}

/// kill -9 of vrrpd leaves the route (FRR goes on announcing it) until `--release-vips`.
fn kill_and_release(router: &Frr, director: &mut Director, other: &str) -> Result<(), String> {
    director
        .vrrpd
        .as_ref()
        .ok_or("no vrrpd")?
        .signal(libc::SIGKILL);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        router.fib_next_hops(PREFIX)?,
        DIRECTORS,
        "after kill -9 the kernel route stays, and FRR keeps announcing it"
    );
    let started = Instant::now();
    release(director)?;
    until_hops(router, &[other], Duration::from_secs(3))?;
    println!(
        "kill -9 of vrrpd on director 1, then its ExecStopPost (--release-vips): withdrawn {:?} after it ran",
        started.elapsed()
    );
    let left = director.netns.sh("ip route show table all proto 250")?;
    assert!(
        left.trim().is_empty(),
        "--release-vips sweeps every route: {left}"
    );
    Ok(())
}

/// vrrpd stopped (if running) and started again on the director's config.
fn restart(director: &mut Director) -> Result<(), String> {
    director.vrrpd.take();
    director.vrrpd = Some(lvs_tests::daemon::start(
        &director.netns,
        "vrrpd",
        &director.config,
        &director.dir.path().join("vrrpd.sock"),
    )?);
    Ok(())
}

/// A director dies whole: its link goes down and every process of its stack is killed -9, so
/// no BGP NOTIFICATION, no withdrawal and no TCP close reach the router; only BFD (100 ms x 3)
/// can tell it. Returns how long the router kept the dead director as a next hop; held to a
/// second (the BGP hold time alone would be minutes).
fn dead_director(router: &Frr, dead: &Director, survivors: &[&str]) -> Result<Duration, String> {
    wait_for(Duration::from_secs(20), || {
        router.bfd_up().ok().filter(|up| up.contains(&dead.address))
    })
    .ok_or("the router's BFD session to the director never came up")?;
    let started = Instant::now();
    dead.netns.ip(&["link", "set", &dead.link, "down"])?;
    dead.vrrpd.as_ref().ok_or("no vrrpd")?.signal(libc::SIGKILL);
    if let Some(frr) = dead._engine.downcast_ref::<Frr>() {
        frr.kill();
    }
    if let Some(bird) = dead._engine.downcast_ref::<Bird>() {
        bird.kill();
    }
    until_hops(router, survivors, Duration::from_secs(1))?;
    Ok(started.elapsed())
}

/// The same with BIRD 2 as the director's engine: the snippet's kernel protocol learns the
/// route of our protocol number (`krt_source`) and its filter exports it with the community;
/// the router loses it when the service loses quorum, after kill -9 plus `--release-vips`, and
/// through BFD (the snippet's `protocol bfd`, 100 ms x 3, against FRR's bfdd) when the
/// director dies whole.
/// BIRD must also accept the whole snippet (`bird -p`) and start with it.
#[test]
fn a_bird_director_announces_the_vip_over_bgp_while_healthy() -> Result<(), String> {
    if !lane_available("netns", lvs_tests::netns_missing())
        || !lane_available("frr", frr::missing())
        || !lane_available("bird", bird::missing())
    {
        return Ok(());
    }
    let lan = Netns::new("bgpr")?;
    let router = router(&lan, &[BIRD_DIRECTOR], true)?;
    let mut d = director(2, BIRD_DIRECTOR, &lan, true)?;
    let bound = Duration::from_secs(3);

    let took = until_hops(&router, &[BIRD_DIRECTOR], Duration::from_secs(30))?;
    println!("router: {PREFIX} via the BIRD director {took:?} after its start");
    let bgp = router.json(&format!("show ip bgp {PREFIX} json"))?;
    assert!(
        bgp.to_string().contains("65001:100") && bgp.to_string().contains("\"metric\":50"),
        "BIRD's filter sets the community and the MED: {bgp}"
    );
    let bird = d._engine.downcast_ref::<Bird>().ok_or("not BIRD")?;
    let learned = wait_for(Duration::from_secs(5), || {
        bird.birdc(&format!("show route {VIP6}/128 all"))
            .ok()
            .filter(|out| out.contains("lvs_vips_ipv6"))
    })
    .ok_or("BIRD did not learn the IPv6 VIP's route")?;
    assert!(learned.contains("Kernel.source: 250"), "{learned}");

    let quorum = d.directord.as_ref().ok_or("no directord")?.quorum.clone();
    quorum.store(false, Ordering::Relaxed);
    let took = until_hops(&router, &[], bound)?;
    println!("web below quorum on the BIRD director: withdrawn in {took:?}");
    quorum.store(true, Ordering::Relaxed);
    until_hops(&router, &[BIRD_DIRECTOR], bound)?;

    d.vrrpd.as_ref().ok_or("no vrrpd")?.signal(libc::SIGKILL);
    let started = Instant::now();
    release(&d)?;
    until_hops(&router, &[], bound)?;
    println!(
        "kill -9 of vrrpd, then --release-vips, on the BIRD director: withdrawn {:?} after it ran",
        started.elapsed()
    );
    restart(&mut d)?;
    until_hops(&router, &[BIRD_DIRECTOR], bound)?;
    let took = dead_director(&router, &d, &[])?;
    println!("the BIRD director dead (link down, kill -9 of BIRD and vrrpd): gone in {took:?}");
    Ok(())
}

/// vrrpd's routes on one director, no engine: a start sweeps a route of our protocol that an
/// earlier run left (`198.51.100.77`), both routes of a VIP carry the configured protocol
/// number, and a reload (SIGHUP) that swaps one VIP for another takes the old one's routes
/// away and gives the new one its own, announced at once when healthy.
#[test]
fn vrrpd_sweeps_at_start_and_follows_a_reload() -> Result<(), String> {
    if !lane_available("netns", lvs_tests::netns_missing()) {
        return Ok(());
    }
    let netns = Netns::new("bgpv")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = dir.path().join("director.toml");
    let text = |vip: &str| {
        vrrpd_config(dir.path())
            .replace("[announce]\n", "[announce]\nprotocol = 251\n")
            .replace(&format!("\"{VIP}\""), &format!("\"{vip}\""))
    };
    std::fs::write(&config, text(VIP)).map_err(|e| e.to_string())?;
    netns.ip(&[
        "route",
        "add",
        "198.51.100.77/32",
        "dev",
        "lo",
        "proto",
        "251",
    ])?;
    let _directord = Directord::serve(dir.path())?;
    let vrrpd = lvs_tests::daemon::start(&netns, "vrrpd", &config, &dir.path().join("vrrpd.sock"))?;
    let routes = || {
        netns
            .sh("ip route show table all proto 251; ip -6 route show table all proto 251")
            .unwrap_or_default()
    };
    let has = |routes: &str, vip: &str| {
        routes.contains(&format!("local {vip} dev lo table local"))
            && routes
                .lines()
                .any(|l| l.starts_with(&format!("{vip} dev lo")) && !l.contains("table"))
    };
    wait_for(Duration::from_secs(5), || {
        let now = routes();
        (has(&now, VIP) && has(&now, VIP6)).then_some(())
    })
    .ok_or_else(|| format!("the VIPs' two routes of protocol 251:\n{}", routes()))?;
    assert!(
        !routes().contains("198.51.100.77"),
        "the earlier run's route is swept"
    );

    std::fs::write(&config, text("192.0.2.101")).map_err(|e| e.to_string())?;
    vrrpd.signal(libc::SIGHUP);
    wait_for(Duration::from_secs(5), || {
        let now = routes();
        (has(&now, "192.0.2.101") && !now.contains(&format!("{VIP} "))).then_some(())
    })
    .ok_or_else(|| format!("after the reload:\n{}", routes()))?;
    assert!(has(&routes(), VIP6), "the kept VIP keeps its routes");
    Ok(())
}
