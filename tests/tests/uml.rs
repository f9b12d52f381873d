//! UML lane: cases that need a kernel with IPVS. Run on the host; each case runs in the guest.

use std::process::ExitCode;

use lvs_tests::netns::{Netns, veth};
use lvs_tests::process::wait_for;
use lvs_tests::uml::{self, Case};

fn main() -> ExitCode {
    uml::main(&[
        Case::new(
            "ipvsadm_nat_service_forwards_http",
            ipvsadm_nat_service_forwards_http,
        ),
        Case::new(
            "ipvs_library_against_the_kernel",
            ipvs_library_against_the_kernel,
        )
        .with_timeout(std::time::Duration::from_secs(180)),
        Case::new(
            "lvsadm_nat_service_forwards_http",
            lvsadm_nat_service_forwards_http,
        ),
        Case::new(
            "announced_vip_is_served_by_ipvs",
            announced_vip_is_served_by_ipvs,
        ),
        Case::new("lvsadm_matches_ipvsadm", lvsadm_matches_ipvsadm)
            .with_timeout(std::time::Duration::from_secs(300)),
    ])
}

/// lvs-ipvs's self-test: every command of the genetlink client against the real kernel, the
/// table compared with `ipvsadm -Sn` along the way; it exits non-zero on any mismatch.
fn ipvs_library_against_the_kernel() -> Result<(), String> {
    let selftest = lvs_tests::workspace_example("ipvs_selftest");
    let output = lvs_tests::process::run(&mut std::process::Command::new(&selftest))?;
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    // Exit status already says pass; also refuse a run that checked (almost) nothing.
    let passed = report.lines().filter(|l| l.starts_with("ok ")).count();
    if passed < 100 || report.lines().any(|l| l.starts_with("FAIL")) {
        return Err(format!("the self-test passed only {passed} checks"));
    }
    Ok(())
}

/// Client, director and real server as namespaces; a NAT virtual service made with ipvsadm;
/// a real HTTP fetch through the VIP.
fn ipvsadm_nat_service_forwards_http() -> Result<(), String> {
    nat_service_forwards_http("ipvsadm")
}

/// The same with the service made by lvsadm, whose `-Ln --stats` must then show the traffic.
fn lvsadm_nat_service_forwards_http() -> Result<(), String> {
    let lvsadm = lvs_tests::workspace_bin("lvsadm");
    nat_service_forwards_http(lvsadm.to_str().ok_or("utf-8 path")?)
}

/// Client (192.0.2.2), director (192.0.2.1 and 198.51.100.1, forwarding) and real server
/// (198.51.100.2, its gateway the director) as namespaces: a NAT site.
fn nat_site() -> Result<(Netns, Netns, Netns), String> {
    let client = Netns::new("c")?;
    let director = Netns::new("d")?;
    let real = Netns::new("r")?;
    veth(&client, "c0", &director, "d0")?;
    veth(&director, "d1", &real, "r0")?;
    client.addr("c0", "192.0.2.2/24")?;
    client.default_route("192.0.2.1")?;
    director.addr("d0", "192.0.2.1/24")?;
    director.addr("d1", "198.51.100.1/24")?;
    director.sysctl("net.ipv4.ip_forward=1")?;
    real.addr("r0", "198.51.100.2/24")?;
    real.default_route("198.51.100.1")?;
    Ok((client, director, real))
}

/// Client, director and real server as namespaces; a NAT virtual service made with `tool`;
/// a real HTTP fetch through the VIP; the kernel's connection entry and counters.
fn nat_service_forwards_http(tool: &str) -> Result<(), String> {
    if let Some(missing) = uml::tools_missing(&["ipvsadm", "busybox"]) {
        return Err(missing);
    }
    let (client, director, real) = nat_site()?;
    director.ip(&["addr", "add", "192.0.2.100/32", "dev", "lo"])?;

    let www = tempfile::tempdir().map_err(|e| e.to_string())?;
    let body = format!("served-by-real-{}\n", std::process::id());
    std::fs::write(www.path().join("index.html"), &body).map_err(|e| e.to_string())?;
    let www_path = www.path().to_str().expect("utf-8 temp path");
    let _httpd = real.spawn(&["busybox", "httpd", "-f", "-p", "8080", "-h", www_path])?;
    wait_for(std::time::Duration::from_secs(5), || {
        real.stdout(&["busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/"])
            .ok()
    })
    .ok_or("busybox httpd did not start in the real-server namespace")?;

    director.run(&[tool, "-A", "-t", "192.0.2.100:80", "-s", "rr"])?;
    director.run(&[
        tool,
        "-a",
        "-t",
        "192.0.2.100:80",
        "-r",
        "198.51.100.2:8080",
        "-m",
    ])?;
    let table = director.stdout(&[tool, "-Ln"])?;
    println!("{table}");
    if !table.contains("198.51.100.2:8080") {
        return Err(format!("destination missing from the table:\n{table}"));
    }

    let fetched = client.stdout(&["busybox", "wget", "-q", "-O", "-", "http://192.0.2.100/"])?;
    if fetched != body {
        return Err(format!(
            "expected body {body:?} through the VIP, got {fetched:?}"
        ));
    }

    // The kernel's own record of the flow: client 192.0.2.2 -> VIP 192.0.2.100:80 -> real
    // 198.51.100.2:8080, in hex as /proc/net/ip_vs_conn prints it.
    let conns = director.stdout(&["cat", "/proc/net/ip_vs_conn"])?;
    println!("{conns}");
    let entry = conns.lines().find(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() >= 8
            && f[0] == "TCP"
            && f[1] == "C0000202"
            && f[3] == "C0000264"
            && f[4] == "0050"
            && f[5] == "C6336402"
            && f[6] == "1F90"
    });
    let entry = entry.ok_or_else(|| format!("no IPVS connection entry for the fetch:\n{conns}"))?;
    let state = entry.split_whitespace().nth(7).unwrap_or_default();
    if ![
        "ESTABLISHED",
        "FIN_WAIT",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
    ]
    .contains(&state)
    {
        return Err(format!("unexpected connection state {state} in {entry}"));
    }
    // Counters are folded in on the kernel's 2 s estimator tick.
    let moved = wait_for(std::time::Duration::from_secs(5), || {
        let stats = director.stdout(&[tool, "-Ln", "--stats"]).ok()?;
        let line = stats
            .lines()
            .find(|l| l.starts_with("TCP  192.0.2.100:80"))?
            .to_owned();
        let conns: u64 = line.split_whitespace().nth(2)?.parse().ok()?;
        (conns >= 1).then_some(stats)
    })
    .ok_or_else(|| format!("{tool} -Ln --stats never showed the connection"))?;
    println!("{moved}");
    director.run(&[tool, "-C"])?;
    Ok(())
}

/// lvsadm against ipvsadm on one real table: every scheduler, DR/NAT/TUN, TCP/UDP/SCTP/fwmark,
/// IPv4/IPv6, persistence, flags; each tool restoring the other's save; a malformed restore
/// applying nothing; error paths; counters after real traffic.
fn lvsadm_matches_ipvsadm() -> Result<(), String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../lvsadm/tests/uml/compare-ipvsadm.sh"
    );
    let lvsadm = lvs_tests::workspace_bin("lvsadm");
    let output = lvs_tests::process::run(
        std::process::Command::new("sh")
            .arg(script)
            .env("LVSADM", &lvsadm),
    )?;
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    if !report.contains("PASS: lvsadm matches ipvsadm") {
        return Err("the comparison did not report PASS".to_owned());
    }
    Ok(())
}

const ANNOUNCE_CONFIG: &str = r#"
[vrrp]
track_directord = { interval = "200ms", timeout = "500ms" }

[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
scheduler = "rr"
forwarding = "nat"
check = { type = "connect", interval = "300ms", timeout = "200ms", rise = 1, fall = 1 }

[[virtual_server.real]]
address = "198.51.100.2:8080"

[announce]
[[announce.vip]]
address = "192.0.2.100"
services = ["web"]
"#;

/// `[announce]` on a real IPVS kernel with the real directord (issue 18): vrrpd makes the VIP
/// this host's by a `local` route of its protocol, not an address (an address would give FRR's
/// zebra a connected route that hides the kernel route it must redistribute), and IPVS serves
/// it so: a client's fetch through the VIP reaches the real server. The main-table route the
/// routing engine redistributes is there while the service holds quorum, goes when the real
/// server's check fails (the local route stays, so flows the router still sends are served)
/// and comes back with it; at vrrpd's stop both go.
fn announced_vip_is_served_by_ipvs() -> Result<(), String> {
    use std::time::Duration;
    if let Some(missing) = uml::tools_missing(&["busybox"]) {
        return Err(missing);
    }
    let (client, director, real) = nat_site()?;
    let www = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(www.path().join("index.html"), "announced\n").map_err(|e| e.to_string())?;
    let www_path = www.path().to_str().ok_or("utf-8 path")?;
    let httpd = ["busybox", "httpd", "-f", "-p", "8080", "-h", www_path];
    let mut server = Some(real.spawn(&httpd)?);

    let run = std::path::PathBuf::from(format!("/run/lvs-announce-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let config = run.join("director.toml");
    let text = format!(
        "[control]\nsocket_dir = \"{}\"\n{ANNOUNCE_CONFIG}",
        run.display()
    );
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let _directord =
        lvs_tests::daemon::start(&director, "directord", &config, &run.join("directord.sock"))?;
    let mut vrrpd = lvs_tests::daemon::start(&director, "vrrpd", &config, &run.join("vrrpd.sock"))?;

    let announced = || {
        director
            .sh("ip route show table main proto 250")
            .unwrap_or_default()
            .contains("192.0.2.100 dev lo")
    };
    let local = || {
        director
            .sh("ip route show table local proto 250")
            .unwrap_or_default()
            .contains("local 192.0.2.100 dev lo")
    };
    wait_for(Duration::from_secs(10), || announced().then_some(()))
        .ok_or("vrrpd never announced the VIP once the check passed")?;
    let addresses = director.sh("ip -o addr show")?;
    if addresses.contains("192.0.2.100") || !local() {
        return Err(format!(
            "the VIP must be a local route, not an address:\n{addresses}"
        ));
    }
    let fetch = || client.stdout(&["busybox", "wget", "-q", "-O", "-", "http://192.0.2.100/"]);
    if fetch()? != "announced\n" {
        return Err("the fetch through the announced VIP failed".to_owned());
    }

    server.take();
    wait_for(Duration::from_secs(5), || (!announced()).then_some(()))
        .ok_or("the route stayed after the service lost quorum")?;
    if !local() {
        return Err("the local route went with the announcement".to_owned());
    }
    server = Some(real.spawn(&httpd)?);
    wait_for(Duration::from_secs(5), || announced().then_some(()))
        .ok_or("not announced again after the real server came back")?;
    if fetch()? != "announced\n" {
        return Err("the fetch after the re-announcement failed".to_owned());
    }
    vrrpd.end();
    let left = director.sh("ip route show table all proto 250")?;
    if !left.trim().is_empty() {
        return Err(format!("routes left after vrrpd stopped:\n{left}"));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&run);
    Ok(())
}
