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
    uml::main(&[Case::new(
        "keepalived_and_directord_build_the_same_table",
        keepalived_and_directord_build_the_same_table,
    )
    .with_timeout(Duration::from_secs(240))])
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
