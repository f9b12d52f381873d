//! The director pair as an operator runs it, end to end, in a real IPVS kernel (UML): a client,
//! two directors each running directord, vrrpd, syncd and feedbackd from one config file, and
//! three real servers (HTTP, an echo service, a feedback agent). The master is killed while
//! established connections are flowing; the backup takes over and the flows survive; the
//! master comes back and takes over again.
//!
//! This is both a test (in `make test`) and the demo (`make demo` prints its narrative).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lvs_tests::netns::{Netns, veth};
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::uml::{self, Case};

fn main() -> ExitCode {
    uml::main(&[
        Case::new("director_pair_fails_over_with_live_traffic", director_pair)
            .with_timeout(Duration::from_secs(600)),
    ])
}

const VIP: &str = "192.0.2.100";
const REALS: [&str; 3] = ["192.0.2.21", "192.0.2.22", "192.0.2.23"];
const FLOWS: usize = 1000;

/// Echo server for the long-lived flows: one asyncio process, not one per connection.
const ECHO_SERVER: &str = r#"
import asyncio
async def echo(r, w):
    while data := await r.readline():
        w.write(data)
        await w.drain()
async def main():
    server = await asyncio.start_server(echo, '0.0.0.0', 7)
    await server.serve_forever()
asyncio.run(main())
"#;

/// Holds FLOWS connections to the VIP's echo service; every second each sends a line and
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

struct Director {
    ns: Netns,
    config: PathBuf,
    run: PathBuf,
    daemons: Vec<Guarded>,
}

impl Director {
    fn start(&mut self) -> Result<(), String> {
        for daemon in ["directord", "vrrpd", "syncd", "feedbackd"] {
            let bin = lvs_tests::workspace_bin(daemon);
            self.daemons.push(self.ns.spawn(&[
                bin.as_os_str(),
                "--config".as_ref(),
                self.config.as_os_str(),
            ])?);
        }
        Ok(())
    }

    fn kill_all(&mut self) {
        for daemon in &self.daemons {
            daemon.signal(libc::SIGKILL);
        }
        self.daemons.clear();
    }

    fn lvsadm(&self, what: &str) -> String {
        let lvsadm = lvs_tests::workspace_bin("lvsadm");
        self.ns
            .stdout(&[
                lvsadm.as_os_str(),
                what.as_ref(),
                "--config".as_ref(),
                self.config.as_os_str(),
            ])
            .unwrap_or_else(|e| e)
    }

    fn vrrp_state(&self) -> String {
        let socket = self.run.join("vrrpd.sock");
        lvs_control::call::<_, serde_json::Value>(
            &socket,
            &serde_json::json!({"cmd": "status"}),
            Duration::from_secs(2),
        )
        .map(|s| {
            s["instances"][0]["state"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .unwrap_or_else(|_| "down".to_owned())
    }
}

fn config(run: &Path, me: &str, peer: &str, priority: u8) -> String {
    let mut text = format!(
        r#"# director {me}
[control]
socket_dir = "{run}"

[[vrrp.instance]]
name = "VI_1"
interface = "eth0"
vrid = 51
priority = {priority}
advert_interval = "1s"
virtual_addresses = ["{VIP}/24"]
garp = {{ repeat = 3, delay = "2s" }}

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

fn say(started: Instant, text: &str) {
    println!("[{:>6.2}s] {text}", started.elapsed().as_secs_f64());
}

fn alive(status: &Path) -> Option<(u64, usize)> {
    let text = std::fs::read_to_string(status).ok()?;
    let last = text.lines().last()?;
    let mut words = last.split_whitespace();
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn fetch(client: &Netns) -> Option<String> {
    // busybox wget -T crashes under UML; coreutils timeout bounds it instead.
    client
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

fn director_pair() -> Result<(), String> {
    let t0 = Instant::now();
    let run = PathBuf::from(format!("/run/lvs-demo-{}", std::process::id()));
    let lan = Netns::new("lan")?;
    lan.bridge("br0")?;
    let mut port = 0;
    let mut plug = |host: &Netns, cidr: &str| -> Result<(), String> {
        port += 1;
        let p = format!("p{port}");
        veth(host, "eth0", &lan, &p)?;
        lan.attach(&p, "br0")?;
        host.addr("eth0", cidr)
    };
    let client = Netns::new("client")?;
    plug(&client, "192.0.2.2/24")?;

    say(
        t0,
        "three real servers: HTTP on :80, an echo service on :7, a feedback agent on :3333 (DR: the VIP on lo)",
    );
    let mut reals = Vec::new();
    let mut services = Vec::new();
    let feedbackd = lvs_tests::workspace_bin("feedbackd");
    for (i, ip) in REALS.iter().enumerate() {
        let real = Netns::new(&format!("real{i}"))?;
        plug(&real, &format!("{ip}/24"))?;
        real.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])?;
        real.sysctl("net.ipv4.conf.all.arp_ignore=1")?;
        real.sysctl("net.ipv4.conf.all.arp_announce=2")?;
        let dir = run.join(format!("real{i}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("index.html"), format!("real-{i}\n")).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("load"), if i == 2 { "30\n" } else { "90\n" })
            .map_err(|e| e.to_string())?;
        std::fs::write(
            dir.join("agent.toml"),
            format!(
                "[control]\nsocket_dir = \"{d}\"\n[agent]\nlisten = \"{ip}:3333\"\nreport = \"command\"\n\
                 command = \"cat {d}/load\"\noverride_file = \"{d}/override\"\n",
                d = dir.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let agent_config = dir.join("agent.toml");
        services.push(real.spawn(&[
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            dir.to_str().unwrap_or_default(),
        ])?);
        services.push(real.spawn(&["python3", "-c", ECHO_SERVER])?);
        services.push(real.spawn(&[
            feedbackd.as_os_str(),
            "--agent".as_ref(),
            "--config".as_ref(),
            agent_config.as_os_str(),
        ])?);
        reals.push(real);
    }

    let mut directors = Vec::new();
    for (name, ip, peer, priority) in [
        ("A", "192.0.2.11", "192.0.2.12", 150),
        ("B", "192.0.2.12", "192.0.2.11", 100),
    ] {
        let ns = Netns::new(&format!("dir{name}"))?;
        plug(&ns, &format!("{ip}/24"))?;
        let dir = run.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let config_path = dir.join("director.toml");
        std::fs::write(&config_path, config(&dir, name, peer, priority))
            .map_err(|e| e.to_string())?;
        directors.push(Director {
            ns,
            config: config_path,
            run: dir,
            daemons: Vec::new(),
        });
    }
    say(
        t0,
        "two directors, each running directord, vrrpd, syncd and feedbackd from one director.toml",
    );
    for director in &mut directors {
        director.start()?;
    }
    let (a, b) = (0, 1);
    wait_for(Duration::from_secs(60), || {
        (directors[a].vrrp_state() == "MASTER" && directors[b].vrrp_state() == "BACKUP")
            .then_some(())
    })
    .ok_or_else(|| {
        format!(
            "no election: A {} B {}",
            directors[a].vrrp_state(),
            directors[b].vrrp_state()
        )
    })?;
    say(
        t0,
        &format!(
            "VRRP elected A (priority 150) master, B backup:\n{}{}",
            directors[a].lvsadm("vrrp"),
            directors[b].lvsadm("vrrp")
        ),
    );
    wait_for(Duration::from_secs(60), || {
        let status = directors[a].lvsadm("feedback");
        (status.matches("ready").count() == 3).then_some(status)
    })
    .ok_or("the agents were not all heard")?;
    std::thread::sleep(Duration::from_secs(3));
    say(
        t0,
        &format!(
            "the IPVS table on A, with health and the agents' weights (real 2 reports 30% load headroom):\n{}",
            directors[a].lvsadm("table")
        ),
    );
    say(
        t0,
        &format!("feedback on A:\n{}", directors[a].lvsadm("feedback")),
    );

    let mut bodies = Vec::new();
    for _ in 0..6 {
        bodies.push(
            fetch(&client)
                .ok_or("HTTP through the VIP failed")?
                .trim()
                .to_owned(),
        );
    }
    say(t0, &format!("HTTP through the VIP: {}", bodies.join(", ")));

    let flow_status = run.join("flows");
    let _flows = client.spawn(&[
        "python3",
        "-c",
        ECHO_CLIENT,
        &FLOWS.to_string(),
        VIP,
        flow_status.to_str().unwrap_or_default(),
    ])?;
    wait_for(Duration::from_secs(120), || {
        alive(&flow_status).filter(|(round, n)| *round >= 3 && *n == FLOWS)
    })
    .ok_or_else(|| {
        format!(
            "the {FLOWS} echo flows did not all come up: {:?}",
            alive(&flow_status)
        )
    })?;
    wait_for(Duration::from_secs(60), || {
        let sync = directors[b].lvsadm("sync");
        sync.split_whitespace()
            .skip_while(|w| *w != "mirror")
            .nth(1)
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n >= FLOWS)
            .map(|_| sync)
    })
    .ok_or_else(|| {
        format!(
            "B's syncd never mirrored the flows:\n{}",
            directors[b].lvsadm("sync")
        )
    })?;
    say(
        t0,
        &format!(
            "{FLOWS} long-lived echo flows through A; B's syncd mirrors them:\n{}",
            directors[b].lvsadm("sync")
        ),
    );

    // Every daemon on both directors reloads during traffic: no flap, no flow lost.
    let transitions = |d: &Director| -> String {
        let socket = d.run.join("vrrpd.sock");
        lvs_control::call::<_, serde_json::Value>(
            &socket,
            &serde_json::json!({"cmd": "status"}),
            Duration::from_secs(2),
        )
        .map(|s| s["instances"][0]["counters"]["transitions"].to_string())
        .unwrap_or_default()
    };
    let before_reload = (transitions(&directors[a]), transitions(&directors[b]));
    for director in &directors {
        for daemon in &director.daemons {
            daemon.signal(libc::SIGHUP);
        }
    }
    let round = alive(&flow_status).map_or(0, |(r, _)| r);
    let (_, after_reload) = wait_for(Duration::from_secs(120), || {
        alive(&flow_status).filter(|(r, _)| *r >= round + 3)
    })
    .ok_or("the echo flows stopped reporting after the reload")?;
    let after = (transitions(&directors[a]), transitions(&directors[b]));
    say(
        t0,
        &format!(
            "SIGHUP to all eight daemons during traffic: {after_reload}/{FLOWS} flows, VRRP transitions {before_reload:?} -> {after:?}"
        ),
    );
    if after_reload != FLOWS || after != before_reload {
        return Err("a reload during traffic must not lose flows or flap VRRP".to_owned());
    }
    say(
        t0,
        &format!(
            "one screen on B, `lvsadm status`:\n{}",
            directors[b].lvsadm("status")
        ),
    );
    let rss: Vec<String> = ["directord", "vrrpd", "syncd", "feedbackd"]
        .iter()
        .zip(&directors[b].daemons)
        .map(|(name, daemon)| format!("{name} {} kB", rss_kb(daemon.pid()).unwrap_or(0)))
        .collect();
    say(t0, &format!("resident memory on B: {}", rss.join(", ")));

    // The master dies: every daemon killed and its link gone, as when a machine fails.
    let killed = Instant::now();
    directors[a].kill_all();
    directors[a].ns.ip(&["link", "set", "eth0", "down"])?;
    say(t0, "A fails: kill -9 of its four daemons and its link down");
    wait_for(Duration::from_secs(20), || {
        (directors[b].vrrp_state() == "MASTER").then_some(())
    })
    .ok_or("B never became master")?;
    let takeover = killed.elapsed();
    // kill -9 lands anywhere between two adverts, so the backup's Master_Down timer (3.609 s at
    // priority 100) runs from the last advert it heard: at most the RFC bound after the kill.
    // The bound is measured to the millisecond by vrrpd's failover benchmark on the host; here
    // a slow, shared UML adds scheduling delay, so the test allows 1.5 s on top and prints
    // the figure.
    if takeover > Duration::from_millis(3609 + 1500) {
        return Err(format!(
            "takeover took {takeover:?}, far beyond the RFC bound of 3.609 s"
        ));
    }
    wait_for(Duration::from_secs(30), || fetch(&client))
        .ok_or("no HTTP through the VIP after the takeover")?;
    let serving = killed.elapsed();
    let before = alive(&flow_status).map_or(0, |(round, _)| round);
    let (_, survived) = wait_for(Duration::from_secs(120), || {
        alive(&flow_status).filter(|(round, _)| *round >= before + 3)
    })
    .ok_or("the echo flows stopped reporting")?;
    say(
        t0,
        &format!(
            "B became master {:.2}s after the failure and served new HTTP after {:.2}s; {survived}/{FLOWS} established flows still echo through B",
            takeover.as_secs_f64(),
            serving.as_secs_f64()
        ),
    );
    say(t0, &format!("B now:\n{}", directors[b].lvsadm("vrrp")));
    if survived != FLOWS {
        return Err(format!(
            "{} of {FLOWS} flows were lost in the failover",
            FLOWS - survived
        ));
    }

    // The master comes back and, with the higher priority, takes over again.
    directors[a].ns.ip(&["link", "set", "eth0", "up"])?;
    let restored = Instant::now();
    directors[a].start()?;
    wait_for(Duration::from_secs(60), || {
        (directors[a].vrrp_state() == "MASTER" && directors[b].vrrp_state() == "BACKUP")
            .then_some(())
    })
    .ok_or_else(|| {
        format!(
            "A did not take over again: A {} B {}",
            directors[a].vrrp_state(),
            directors[b].vrrp_state()
        )
    })?;
    let back = restored.elapsed();
    let before = alive(&flow_status).map_or(0, |(round, _)| round);
    let (_, after_restore) = wait_for(Duration::from_secs(120), || {
        alive(&flow_status).filter(|(round, _)| *round >= before + 3)
    })
    .ok_or("the echo flows stopped reporting")?;
    say(
        t0,
        &format!(
            "A restarted and preempted {:.2}s later; {after_restore}/{FLOWS} flows still echo (A learned them from B's syncd)",
            back.as_secs_f64()
        ),
    );
    fetch(&client).ok_or("no HTTP through the VIP after the master came back")?;
    say(
        t0,
        "done; namespaces and processes are removed as this test ends",
    );
    if after_restore != FLOWS {
        return Err(format!(
            "{} of {FLOWS} flows were lost when the master came back",
            FLOWS - after_restore
        ));
    }
    drop(services);
    Ok(())
}
