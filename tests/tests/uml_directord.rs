//! UML lane: directord owning a real IPVS table.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use lvs_tests::netns::{Netns, veth};
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::uml::{self, Case};
use serde_json::{Value, json};

fn main() -> ExitCode {
    uml::main(&[
        Case::new(
            "health_checks_quiesce_remove_and_fall_back",
            health_checks_quiesce_remove_and_fall_back,
        )
        .with_timeout(Duration::from_secs(120)),
        Case::new(
            "directord_owns_the_table_by_difference",
            directord_owns_the_table_by_difference,
        )
        .with_timeout(Duration::from_secs(120)),
    ])
}

/// Client, director and two NAT real servers, each serving a body naming itself.
struct Site {
    client: Netns,
    director: Netns,
    reals: Vec<Netns>,
    _www: tempfile::TempDir,
    _httpd: Vec<Guarded>,
}

fn site() -> Result<Site, String> {
    site_with(2)
}

fn site_with(n: usize) -> Result<Site, String> {
    let client = Netns::new("c")?;
    let director = Netns::new("d")?;
    veth(&client, "c0", &director, "d0")?;
    client.addr("c0", "192.0.2.2/24")?;
    client.default_route("192.0.2.1")?;
    director.addr("d0", "192.0.2.1/24")?;
    director.ip(&["addr", "add", "192.0.2.100/32", "dev", "lo"])?;
    director.sysctl("net.ipv4.ip_forward=1")?;
    director.bridge("br1")?;
    director.ip(&["addr", "add", "198.51.100.1/24", "dev", "br1"])?;
    let www = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut reals = Vec::new();
    let mut httpd = Vec::new();
    for i in 0..n {
        let real = Netns::new(&format!("r{i}"))?;
        let port = format!("dp{i}");
        veth(&real, "r0", &director, &port)?;
        director.attach(&port, "br1")?;
        real.addr("r0", &format!("198.51.100.{}/24", 11 + i))?;
        real.default_route("198.51.100.1")?;
        let root = www.path().join(format!("r{i}"));
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        std::fs::write(root.join("index.html"), format!("real-{i}\n"))
            .map_err(|e| e.to_string())?;
        httpd.push(real.spawn(&[
            "busybox",
            "httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            root.to_str().unwrap_or_default(),
        ])?);
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

fn control(socket: &Path, request: &Value) -> Result<Value, String> {
    lvs_control::call(socket, request, Duration::from_secs(5)).map_err(|e| e.to_string())
}

fn start(director: &Netns, config: &Path, socket: &Path) -> Result<Guarded, String> {
    let directord = lvs_tests::workspace_bin("directord");
    let process = director.spawn(&[
        directord.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ])?;
    wait_for(Duration::from_secs(10), || {
        control(socket, &json!({"cmd": "status"})).ok()
    })
    .ok_or("directord did not answer on its control socket")?;
    Ok(process)
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

    let metrics = site.director.stdout(&[
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1:9542/metrics",
    ])?;
    for expected in [
        "directord_server_weight{service=\"tcp 192.0.2.100:80\",real=\"198.51.100.12:8080\"} 70",
        "directord_health_transitions_total{service=\"tcp 192.0.2.100:80\",real=\"198.51.100.11:8080\"} 2",
        "directord_reloads_total{result=\"refused\"} 1",
    ] {
        if !metrics.contains(expected) {
            return Err(format!("metrics lack {expected}:\n{metrics}"));
        }
    }

    // kill -9 and restart: the table stays exactly as it was, and the restart changes nothing.
    write_config(&config, &run, &CONFIG.replace("weight = 50", "weight = 70"))?;
    let before_crash = save(&site.director)?;
    directord.signal(libc::SIGKILL);
    directord.wait_timeout(Duration::from_secs(5))?;
    if save(&site.director)? != before_crash {
        return Err("kill -9 changed the table".to_owned());
    }
    let _directord = start(&site.director, &config, &socket)?;
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
    println!(
        "{}",
        serde_json::to_string_pretty(&status).unwrap_or_default()
    );
    drop(site.reals);
    Ok(())
}

const HEALTH_CONFIG: &str = r#"
[control]
socket_dir = "SOCKET_DIR"

[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
scheduler = "rr"
forwarding = "nat"
on_failure = "quiescent"
fallback = "198.51.100.250:8080"
check = { type = "http", path = "/", expect_body = "real-", interval = "500ms", timeout = "400ms", rise = 2, fall = 2 }

[[virtual_server.real]]
address = "198.51.100.11:8080"
weight = 10

[[virtual_server.real]]
address = "198.51.100.12:8080"
weight = 10

[[virtual_server.real]]
address = "198.51.100.13:8080"
weight = 10

[[virtual_server]]
name = "api"
address = "192.0.2.100:81"
scheduler = "rr"
forwarding = "nat"
on_failure = "remove"
check = { type = "connect", interval = "500ms", timeout = "400ms", rise = 2, fall = 2 }

[[virtual_server.real]]
address = "198.51.100.11:8080"

[[virtual_server.real]]
address = "198.51.100.12:8080"

[[virtual_server.real]]
address = "198.51.100.13:8080"
"#;

fn fetch(client: &Netns, port: u16) -> Result<String, String> {
    // busybox wget -T crashes under UML; coreutils timeout bounds it instead.
    client.stdout(&[
        "timeout",
        "5",
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://192.0.2.100:{port}/"),
    ])
}

/// Real HTTP checks drive the kernel table: a dead server is quiesced in one service and
/// removed from another, comes back after `rise` passes, and the sorry server answers only
/// while every real server is down.
fn health_checks_quiesce_remove_and_fall_back() -> Result<(), String> {
    let mut site = site_with(3)?;
    // The sorry server, on the real-server LAN.
    let sorry = Netns::new("sorry")?;
    veth(&sorry, "s0", &site.director, "dps")?;
    site.director.attach("dps", "br1")?;
    sorry.addr("s0", "198.51.100.250/24")?;
    sorry.default_route("198.51.100.1")?;
    let sorry_www = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(sorry_www.path().join("index.html"), "sorry\n").map_err(|e| e.to_string())?;
    let _sorry_httpd = sorry.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        sorry_www.path().to_str().unwrap_or_default(),
    ])?;

    let run = PathBuf::from(format!("/run/lvs-directord-health-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let config = run.join("director.toml");
    write_config(&config, &run, HEALTH_CONFIG)?;
    let socket = run.join("directord.sock");
    let _directord = start(&site.director, &config, &socket)?;
    let table = || save(&site.director).unwrap_or_default();
    let settle = |what: &str, ok: &dyn Fn(&str) -> bool| {
        wait_for(Duration::from_secs(15), || ok(&table()).then_some(()))
            .ok_or_else(|| format!("{what}; table:\n{}", table()))
    };

    settle("three healthy servers in web", &|t: &str| {
        t.matches("-m -w 10").count() == 3
    })?;
    let www_root = site._www.path().join("r0");

    // r0's listener stops: quiesced in web (weight 0), removed from api; no new request reaches it.
    site._httpd.remove(0);
    settle("r0 quiesced in web and removed from api", &|t: &str| {
        t.contains("-a -t 192.0.2.100:80 -r 198.51.100.11:8080 -m -w 0")
            && !t.contains("-a -t 192.0.2.100:81 -r 198.51.100.11:8080")
    })?;
    for _ in 0..6 {
        let body = fetch(&site.client, 80)?;
        if body == "real-0\n" {
            return Err("a quiesced server got a new request".to_owned());
        }
    }

    // It starts again: back after rise checks, in both services.
    site._httpd.insert(
        0,
        site.reals[0].spawn(&[
            "busybox",
            "httpd",
            "-f",
            "-p",
            "8080",
            "-h",
            www_root.to_str().unwrap_or_default(),
        ])?,
    );
    settle("r0 back in both services", &|t: &str| {
        t.contains("-r 198.51.100.11:8080 -m -w 10")
            && t.contains("-a -t 192.0.2.100:81 -r 198.51.100.11:8080")
    })?;

    // Every real server down: the fallback answers.
    site._httpd.clear();
    settle("fallback in web", &|t: &str| {
        t.contains("-r 198.51.100.250:8080 -m -w 1")
    })?;
    let body = wait_for(Duration::from_secs(5), || fetch(&site.client, 80).ok())
        .ok_or("no answer via the VIP")?;
    if body != "sorry\n" {
        return Err(format!("expected the sorry server, got {body:?}"));
    }
    println!("{}", table());
    Ok(())
}
