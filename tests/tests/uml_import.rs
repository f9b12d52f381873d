//! UML lane: keepalived as the oracle for `lvsadm import`.
//!
//! For every Debian keepalived sample that defines virtual servers, keepalived (checker process
//! only) builds the IPVS table from the original file; then directord builds it from the
//! imported director.toml; `ipvsadm -Sn` must list the same services, schedulers, persistence,
//! flags, real servers, forwarding methods and weights.
//!
//! The health checks are taken out of both sides first: the samples check pages by MD5 digest
//! on addresses no test can serve, and a real server with no checker is simply up in keepalived,
//! as one with no check is in directord. What is compared is how the table is built.

use lvsadm::import;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use lvs_tests::netns::Netns;
use lvs_tests::process::{Guarded, wait_for};
use lvs_tests::uml::{self, Case};

fn main() -> ExitCode {
    uml::main(&[
        Case::new(
            "keepalived_and_directord_build_the_same_table",
            keepalived_and_directord_build_the_same_table,
        )
        .with_timeout(Duration::from_secs(240)),
        Case::new(
            "keepalived_and_directord_react_alike_below_quorum",
            keepalived_and_directord_react_alike_below_quorum,
        )
        .with_timeout(Duration::from_secs(120)),
        Case::new(
            "digests_and_url_blocks_judge_servers_as_keepalived_does",
            digests_and_url_blocks_judge_servers_as_keepalived_does,
        )
        .with_timeout(Duration::from_secs(90)),
        Case::new(
            "smtp_host_blocks_and_helo_name_as_keepalived_does",
            smtp_host_blocks_and_helo_name_as_keepalived_does,
        )
        .with_timeout(Duration::from_secs(90)),
    ])
}

const SAMPLES: &[&str] = &[
    "HTTP_GET.port",
    "IPv6",
    "PING_CHECK",
    "SMTP_CHECK",
    "SSL_GET",
    "UDP_CHECK",
    "fwmark",
    "inhibit",
    "misc_check",
    "misc_check_arg",
    "quorum",
    "sample",
    "status_code",
    "virtual_server_group",
    "virtualhost",
    "vrrp.lvs_syncd",
];

const CHECKERS: &[&str] = &[
    "HTTP_GET",
    "SSL_GET",
    "TCP_CHECK",
    "SMTP_CHECK",
    "DNS_CHECK",
    "MISC_CHECK",
    "UDP_CHECK",
    "PING_CHECK",
    "FILE_CHECK",
];

/// The sample without its checker blocks, line numbers kept (removed lines become blank).
fn without_checkers(text: &str) -> String {
    let mut depth = 0usize;
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split(['#', '!']).next().unwrap_or("");
        let starts = CHECKERS
            .iter()
            .any(|c| code.trim_start().starts_with(c) && code.contains('{'));
        if depth == 0 && !starts {
            out.push(line.to_owned());
            continue;
        }
        depth += code.matches('{').count();
        depth -= code.matches('}').count().min(depth);
        out.push(String::new());
    }
    out.join("\n") + "\n"
}

/// `ipvsadm -Sn` in an order-free form: each service line with its sorted real server lines.
fn canonical(save: &str) -> BTreeMap<String, Vec<String>> {
    let mut table: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut services = Vec::new();
    for line in save.lines() {
        if let Some(rest) = line.strip_prefix("-A ") {
            table.entry(rest.to_owned()).or_default();
            services.push(rest.to_owned());
        } else if let Some(rest) = line.strip_prefix("-a ") {
            let (service, real) = rest.split_once(" -r ").unwrap_or((rest, ""));
            let owner = services
                .iter()
                .find(|s| *s == service || s.starts_with(&format!("{service} ")))
                .cloned()
                .unwrap_or_else(|| service.to_owned());
            table.entry(owner).or_default().push(real.to_owned());
        }
    }
    for reals in table.values_mut() {
        reals.sort();
    }
    table
}

fn save(director: &Netns) -> Result<String, String> {
    director.stdout(&["ipvsadm", "-Sn"])
}

/// Waits until the table is non-empty and unchanged for a second.
fn settled(director: &Netns) -> Result<String, String> {
    let mut last = String::new();
    let mut stable = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(250));
        let now = save(director)?;
        if !now.is_empty() && now == last {
            stable += 1;
            if stable >= 4 {
                return Ok(now);
            }
        } else {
            stable = 0;
        }
        last = now;
    }
    Err(format!("the table did not settle:\n{last}"))
}

fn keepalived(director: &Netns, config: &Path, run: &Path) -> Result<Guarded, String> {
    let pid = run.join("keepalived.pid");
    let checkers = run.join("checkers.pid");
    director.spawn(&[
        "keepalived".as_ref(),
        "--check".as_ref(),
        "--dont-fork".as_ref(),
        "--log-console".as_ref(),
        "--use-file".as_ref(),
        config.as_os_str(),
        "--pid".as_ref(),
        pid.as_os_str(),
        "--checkers_pid".as_ref(),
        checkers.as_os_str(),
    ])
}

fn directord(director: &Netns, config: &Path) -> Result<Guarded, String> {
    let directord = lvs_tests::workspace_bin("directord");
    director.spawn(&[
        directord.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ])
}

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lvsadm/tests/import-fixtures/keepalived-samples")
}

fn keepalived_and_directord_build_the_same_table() -> Result<(), String> {
    let run = PathBuf::from(format!("/run/lvs-import-test-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let director = Netns::new("import")?;
    // Every real server address needs a route before IPVS accepts it as a destination.
    director.ip(&["link", "add", "d0", "type", "dummy"])?;
    director.ip(&["link", "set", "d0", "up"])?;
    director.ip(&["route", "add", "default", "dev", "d0"])?;
    director.ip(&["-6", "route", "add", "default", "dev", "d0"])?;
    let mut failures = Vec::new();
    for sample in SAMPLES {
        let original =
            std::fs::read_to_string(samples_dir().join(format!("keepalived.conf.{sample}")))
                .map_err(|e| e.to_string())?;
        let stripped = run.join(format!("{sample}.conf"));
        std::fs::write(&stripped, without_checkers(&original)).map_err(|e| e.to_string())?;

        director.run(&["ipvsadm", "-C"])?;
        let mut oracle = keepalived(&director, &stripped, &run)?;
        let expected = settled(&director);
        oracle.signal(libc::SIGTERM);
        oracle.wait_timeout(Duration::from_secs(10))?;
        let expected = expected?;
        director.run(&["ipvsadm", "-C"])?;

        let imported = import::import(import::Source::Keepalived, &stripped, false)
            .map_err(|e| format!("{sample}: {e}"))?;
        let toml = run.join(format!("{sample}.toml"));
        let control = format!("\n[control]\nsocket_dir = \"{}\"\n", run.display());
        std::fs::write(&toml, imported.toml + &control).map_err(|e| e.to_string())?;
        let mut ours = directord(&director, &toml)?;
        let socket = run.join("directord.sock");
        wait_for(Duration::from_secs(10), || socket.exists().then_some(()))
            .ok_or_else(|| format!("{sample}: directord did not start"))?;
        let got = settled(&director);
        ours.signal(libc::SIGTERM);
        ours.wait_timeout(Duration::from_secs(10))?;
        let _ = std::fs::remove_file(&socket);
        let got = got?;

        if canonical(&expected) == canonical(&got) {
            println!("{sample}: same table ({} lines)", expected.lines().count());
        } else {
            failures.push(format!(
                "{sample}:\nkeepalived:\n{expected}directord (imported):\n{got}"
            ));
        }
    }
    director.run(&["ipvsadm", "-C"])?;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// The quorum case as keepalived.conf: three real servers of weight 10 whose MISC_CHECK is the
/// existence of a flag file, quorum 25 +/- 5, a sorry server, r0 and r2 inhibited on failure,
/// and every notify script recording its call.
const QUORUM_CONF: &str = r#"
virtual_server 192.0.2.100 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    quorum 25
    hysteresis 5
    quorum_up "RUN/note quorum-up"
    quorum_down "RUN/note quorum-down"
    sorry_server 198.51.100.250 8080
    real_server 198.51.100.11 8080 {
        weight 10
        inhibit_on_failure
        notify_up "RUN/note up-r0"
        notify_down "RUN/note down-r0"
        MISC_CHECK {
            misc_path "/usr/bin/test -e RUN/r0"
            misc_timeout 1
        }
    }
    real_server 198.51.100.12 8080 {
        weight 10
        notify_down "RUN/note down-r1"
        MISC_CHECK {
            misc_path "/usr/bin/test -e RUN/r1"
            misc_timeout 1
        }
    }
    real_server 198.51.100.13 8080 {
        weight 10
        inhibit_on_failure
        MISC_CHECK {
            misc_path "/usr/bin/test -e RUN/r2"
            misc_timeout 1
        }
    }
}
"#;

/// Flags present or not at each step: all up; r0 down (20 live keeps quorum); r1 down (10:
/// lost, the sorry server); r0 back (20: still short of 30); r1 back (30: gained).
const QUORUM_STEPS: &[(&str, bool)] = &[("r0", false), ("r1", false), ("r0", true), ("r1", true)];

/// Runs the quorum steps under one daemon: the table after each step and the scripts called.
fn quorum_steps(
    director: &Netns,
    run: &Path,
    daemon: &dyn Fn() -> Result<Guarded, String>,
) -> Result<(Vec<String>, Vec<String>), String> {
    let log = run.join("notes");
    let _ = std::fs::remove_file(&log);
    for flag in ["r0", "r1", "r2"] {
        std::fs::write(run.join(flag), "").map_err(|e| e.to_string())?;
    }
    director.run(&["ipvsadm", "-C"])?;
    let mut process = daemon()?;
    let mut tables = vec![settled(director)?];
    for (flag, present) in QUORUM_STEPS {
        if *present {
            std::fs::write(run.join(flag), "").map_err(|e| e.to_string())?;
        } else {
            std::fs::remove_file(run.join(flag)).map_err(|e| e.to_string())?;
        }
        // A check round or two at delay_loop 1, then a table that holds still for a second.
        std::thread::sleep(Duration::from_secs(2));
        tables.push(settled(director)?);
    }
    process.signal(libc::SIGTERM);
    process.wait_timeout(Duration::from_secs(10))?;
    director.run(&["ipvsadm", "-C"])?;
    let mut notes: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    notes.sort();
    Ok((tables, notes))
}

/// keepalived as the oracle for quorum: the same keepalived.conf run by keepalived and, after
/// `lvsadm import`, by directord, through the same real-server failures: the same IPVS table
/// at every step (the sorry server in and out at the same moments, inhibited servers at
/// weight 0, the others removed) and the same notify and quorum scripts called.
fn keepalived_and_directord_react_alike_below_quorum() -> Result<(), String> {
    let run = PathBuf::from(format!("/run/lvs-import-quorum-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let note = run.join("note");
    std::fs::write(
        &note,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\n",
            run.join("notes").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    std::process::Command::new("chmod")
        .args(["+x", &note.display().to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    let conf = run.join("quorum.conf");
    std::fs::write(
        &conf,
        QUORUM_CONF.replace("RUN", &run.display().to_string()),
    )
    .map_err(|e| e.to_string())?;
    let director = Netns::new("quorum")?;
    director.ip(&["link", "add", "d0", "type", "dummy"])?;
    director.ip(&["link", "set", "d0", "up"])?;
    director.ip(&["route", "add", "default", "dev", "d0"])?;

    let theirs = quorum_steps(&director, &run, &|| keepalived(&director, &conf, &run))?;
    let imported = import::import(import::Source::Keepalived, &conf, false)
        .map_err(|e| format!("import: {e}"))?;
    let toml = run.join("quorum.toml");
    let control = format!("\n[control]\nsocket_dir = \"{}\"\n", run.display());
    std::fs::write(&toml, imported.toml.clone() + &control).map_err(|e| e.to_string())?;
    let ours = quorum_steps(&director, &run, &|| directord(&director, &toml))?;
    let _ = std::fs::remove_file(run.join("directord.sock"));

    let canonical_all = |tables: &[String]| tables.iter().map(|t| canonical(t)).collect::<Vec<_>>();
    if canonical_all(&theirs.0) != canonical_all(&ours.0) {
        return Err(format!(
            "tables differ step by step:\nkeepalived:\n{}\ndirectord:\n{}\nimported:\n{}",
            theirs.0.join("--\n"),
            ours.0.join("--\n"),
            imported.toml
        ));
    }
    if theirs.1 != ours.1 {
        return Err(format!(
            "scripts differ: keepalived {:?}, directord {:?}",
            theirs.1, ours.1
        ));
    }
    println!(
        "same {} tables; scripts {:?}\n{}",
        ours.0.len(),
        ours.1,
        ours.0.join("--\n")
    );
    Ok(())
}

/// Waits until the table has been the same for `quiet`, and `not_before` has passed (and
/// says what it is). keepalived's first checks come seconds after it fills the table.
fn unchanged_for(
    director: &Netns,
    quiet: Duration,
    not_before: Duration,
) -> Result<String, String> {
    let start = std::time::Instant::now();
    let mut last = save(director)?;
    let mut since = start;
    let deadline = since + Duration::from_secs(30);
    while since.elapsed() < quiet || start.elapsed() < not_before {
        if std::time::Instant::now() > deadline {
            return Err(format!("the table did not settle:\n{last}"));
        }
        std::thread::sleep(Duration::from_millis(200));
        let now = save(director)?;
        if now != last {
            last = now;
            since = std::time::Instant::now();
        }
    }
    Ok(last)
}

/// keepalived on `original`, then directord on its import (which must be one to one), in
/// `director`; each side's table once it has settled, `after` called as each side stops.
fn both_sides(
    director: &Netns,
    original: &Path,
    run: &Path,
    mut after: impl FnMut(&str) -> Result<(), String>,
) -> Result<(String, String), String> {
    director.run(&["ipvsadm", "-C"])?;
    let mut oracle = keepalived(director, original, run)?;
    // keepalived checked the servers up to 4 s after its start here (UML, one CPU).
    let expected = unchanged_for(director, Duration::from_secs(3), Duration::from_secs(8));
    oracle.signal(libc::SIGTERM);
    oracle.wait_timeout(Duration::from_secs(10))?;
    let expected = expected?;
    after("keepalived")?;
    director.run(&["ipvsadm", "-C"])?;

    let imported =
        import::import(import::Source::Keepalived, original, false).map_err(|e| e.to_string())?;
    if !imported.unsupported.is_empty() {
        return Err(format!(
            "not imported one to one: {:?}",
            imported.unsupported
        ));
    }
    let toml = original.with_extension("toml");
    let control = format!("\n[control]\nsocket_dir = \"{}\"\n", run.display());
    std::fs::write(&toml, imported.toml + &control).map_err(|e| e.to_string())?;
    let mut ours = directord(director, &toml)?;
    let got = unchanged_for(director, Duration::from_secs(3), Duration::from_secs(3));
    ours.signal(libc::SIGTERM);
    ours.wait_timeout(Duration::from_secs(10))?;
    let got = got?;
    after("directord")?;
    director.run(&["ipvsadm", "-C"])?;
    Ok((expected, got))
}

/// keepalived's table holds `real` alone, and directord's is the same.
fn keeps_only(expected: &str, got: &str, real: &str) -> Result<(), String> {
    let reals: Vec<String> = canonical(expected).into_values().flatten().collect();
    if reals.len() != 1 || !reals[0].starts_with(real) {
        return Err(format!(
            "keepalived was expected to keep {real} only:\n{expected}"
        ));
    }
    if canonical(expected) != canonical(got) {
        return Err(format!(
            "keepalived:\n{expected}directord (imported):\n{got}"
        ));
    }
    Ok(())
}

/// keepalived's HTTP_GET with two url blocks and a digest on each, run by keepalived on the
/// original file and by directord on the imported one, against the same two busybox web
/// servers: .11 serves both pages as digested, .12 serves the second page changed. keepalived
/// removes .12 (one url failing fails the check) and keeps .11; directord must build the
/// same table.
fn digests_and_url_blocks_judge_servers_as_keepalived_does() -> Result<(), String> {
    let run = PathBuf::from(format!("/run/lvs-digest-test-{}", std::process::id()));
    let director = Netns::new("digest")?;
    director.ip(&["link", "set", "lo", "up"])?;
    director.ip(&["link", "add", "d0", "type", "dummy"])?;
    director.ip(&["link", "set", "d0", "up"])?;
    let mut servers = Vec::new();
    for (host, second) in [("11", "page b\n"), ("12", "page b, changed\n")] {
        let root = run.join(host);
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        std::fs::write(root.join("a.html"), "page a\n").map_err(|e| e.to_string())?;
        std::fs::write(root.join("b.html"), second).map_err(|e| e.to_string())?;
        let address = format!("198.51.100.{host}");
        director.ip(&["addr", "add", &format!("{address}/32"), "dev", "d0"])?;
        servers.push(director.spawn(&[
            "busybox".as_ref(),
            "httpd".as_ref(),
            "-f".as_ref(),
            "-p".as_ref(),
            format!("{address}:80").as_ref(),
            "-h".as_ref(),
            root.as_os_str(),
        ])?);
    }
    // md5sum of "page a\n" and "page b\n"; both servers are checked alike.
    let real = |address: &str| {
        format!(
            "    real_server {address} 80 {{
        HTTP_GET {{
            url {{
                path /a.html
                digest 1a85c5d2b89ebf112364d20305564f76
            }}
            url {{
                path /b.html
                digest ff2a34a5dd0a614ea005acb7223d83f2
            }}
            connect_timeout 1
            retry 0
        }}
    }}
"
        )
    };
    let conf = format!(
        "virtual_server 192.0.2.100 80 {{
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
{}{}}}
",
        real("198.51.100.11"),
        real("198.51.100.12")
    );
    let original = run.join("digest.conf");
    std::fs::write(&original, conf).map_err(|e| e.to_string())?;
    let (expected, got) = both_sides(&director, &original, &run, |_| Ok(()))?;
    drop(servers);
    keeps_only(&expected, &got, "198.51.100.11:80")?;
    println!("same table: {}", got.replace('\n', " | "));
    Ok(())
}

/// A line server for SMTP checks: greets with `greeting`, answers HELO/EHLO 250 and QUIT
/// 221, and appends every line it is sent to `log`.
const SMTP_SERVER: &str = r#"
import socket, sys, threading
address, greeting, log = sys.argv[1], sys.argv[2], sys.argv[3]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((address, 25))
server.listen(16)
def serve(conn):
    with conn, conn.makefile("rb") as lines:
        conn.sendall(greeting.encode() + b"\r\n")
        for line in lines:
            with open(log, "ab") as f:
                f.write(line)
            verb = line[:4].upper()
            reply = b"221 bye" if verb == b"QUIT" else b"250 hello" if verb in (b"HELO", b"EHLO") else b"500 what"
            conn.sendall(reply + b"\r\n")
            if verb == b"QUIT":
                return
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

/// keepalived's SMTP_CHECK with helo_name and two host blocks, run by keepalived on the
/// original file and by directord on the imported one: .11's hosts both greet, .12's second
/// host refuses (554), .13 is checked itself as well and does not answer; keepalived keeps
/// .11 only, and greets with the configured name. directord must build the same table and
/// greet the hosts with the same name.
fn smtp_host_blocks_and_helo_name_as_keepalived_does() -> Result<(), String> {
    let run = PathBuf::from(format!("/run/lvs-smtp-test-{}", std::process::id()));
    std::fs::create_dir_all(&run).map_err(|e| e.to_string())?;
    let director = Netns::new("smtp")?;
    director.ip(&["link", "set", "lo", "up"])?;
    director.ip(&["link", "add", "d0", "type", "dummy"])?;
    director.ip(&["link", "set", "d0", "up"])?;
    let mut servers = Vec::new();
    for (host, greeting) in [("21", "220 one"), ("22", "220 two"), ("23", "554 no")] {
        let address = format!("198.51.100.{host}");
        director.ip(&["addr", "add", &format!("{address}/32"), "dev", "d0"])?;
        let log = run.join(format!("{host}.log"));
        servers.push(director.spawn(&[
            "python3".as_ref(),
            "-c".as_ref(),
            SMTP_SERVER.as_ref(),
            address.as_ref(),
            greeting.as_ref(),
            log.as_os_str(),
        ])?);
    }
    for real in ["11", "12", "13"] {
        director.ip(&["addr", "add", &format!("198.51.100.{real}/32"), "dev", "d0"])?;
    }
    // .11: both hosts greet. .12: its second host refuses. .13: both hosts greet, but
    // connect_timeout inside SMTP_CHECK makes keepalived 2.2.7 check .13 itself too, where
    // nothing listens. Each host block sets its connect_timeout: without one keepalived
    // 2.2.7 gives a host none (its reads time out at once).
    let real = |address: &str, second_host: &str, own_timeout: bool| {
        let own_timeout = if own_timeout {
            "            connect_timeout 3\n"
        } else {
            ""
        };
        format!(
            "    real_server {address} 25 {{
        SMTP_CHECK {{
{own_timeout}            retry 0
            helo_name mx-check.example.com
            host {{
                connect_ip 198.51.100.21
                connect_timeout 3
            }}
            host {{
                connect_ip {second_host}
                connect_timeout 3
            }}
        }}
    }}
"
        )
    };
    let conf = format!(
        "virtual_server 192.0.2.100 25 {{
    delay_loop 1
    lb_algo rr
    lb_kind DR
    protocol TCP
{}{}{}}}
",
        real("198.51.100.11", "198.51.100.22", false),
        real("198.51.100.12", "198.51.100.23", false),
        real("198.51.100.13", "198.51.100.22", true)
    );
    let original = run.join("smtp.conf");
    std::fs::write(&original, conf).map_err(|e| e.to_string())?;
    // The servers are up when their port answers.
    for host in ["21", "22", "23"] {
        let connect = format!("exec 3<>/dev/tcp/198.51.100.{host}/25");
        wait_for(Duration::from_secs(10), || {
            director
                .run(&["timeout", "1", "bash", "-c", &connect])
                .ok()
                .filter(|o| o.status.success())
        })
        .ok_or_else(|| format!("198.51.100.{host}:25 did not start"))?;
    }
    let greeted = |side: &str| -> Result<Vec<String>, String> {
        let mut names = Vec::new();
        for host in ["21", "22"] {
            let log = run.join(format!("{host}.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("HELO ").or_else(|| l.strip_prefix("EHLO ")))
                .map(|n| n.trim().to_owned())
                .ok_or_else(|| format!("{side} did not greet 198.51.100.{host}: {text:?}"))?;
            names.push(name);
        }
        Ok(names)
    };
    let mut names = Vec::new();
    let (expected, got) = both_sides(&director, &original, &run, |side| {
        names.push(greeted(side)?);
        Ok(())
    })?;
    drop(servers);
    keeps_only(&expected, &got, "198.51.100.11:25")?;
    let (keepalived_names, directord_names) = (&names[0], &names[1]);
    if keepalived_names != directord_names {
        return Err(format!(
            "keepalived greeted as {keepalived_names:?}, directord as {directord_names:?}"
        ));
    }
    println!(
        "same table: {}; both greet as {directord_names:?}",
        got.replace('\n', " | ")
    );
    Ok(())
}
