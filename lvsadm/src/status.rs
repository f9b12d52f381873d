//! `lvsadm status | vrrp | sync | feedback`: what each daemon reports on its control socket,
//! for people. `--json` prints the daemon's answer as it is, for scripts.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use lvs_proto::{directord, feedbackd, syncd, vrrpd};
use serde::Serialize;
use serde::de::DeserializeOwned;

const TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn ask<Req: Serialize, Resp: DeserializeOwned + Serialize>(
    socket_dir: &Path,
    daemon: &str,
    request: &Req,
    json: bool,
    render: impl FnOnce(&Resp) -> String,
) -> ExitCode {
    let path = lvs_proto::socket_path(socket_dir, daemon);
    match lvs_proto::call::<_, Resp>(&path, request, TIMEOUT) {
        Ok(response) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&response).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(response) => {
            print!("{}", render(&response));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lvsadm: {daemon}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `lvsadm drain|maint|enable SERVICE REAL`: directord applies it at once and keeps it in its
/// state directory, so reloads and restarts keep it.
pub fn admin(
    socket_dir: &Path,
    service: &str,
    real: std::net::SocketAddr,
    state: directord::AdminState,
) -> ExitCode {
    let request = directord::Request::Admin {
        service: service.to_owned(),
        real,
        state,
    };
    ask(
        socket_dir,
        "directord",
        &request,
        false,
        |_: &directord::Response| format!("{service} {real}: {}\n", state.as_str()),
    )
}

/// Services per status request. At thousands of services the whole status is megabytes of
/// JSON that directord would build between two health checks; a page at a time keeps each
/// answer short, and each page is printed before the next is asked for.
const STATUS_PAGE: usize = 100;

pub fn directord(socket_dir: &Path, json: bool) -> ExitCode {
    let path = lvs_proto::socket_path(socket_dir, "directord");
    let mut whole: Option<directord::Status> = None;
    let mut from = 0;
    loop {
        let request = directord::Request::Status {
            from,
            limit: Some(STATUS_PAGE),
        };
        let page = match lvs_proto::call::<_, directord::Response>(&path, &request, TIMEOUT) {
            Ok(directord::Response::Status(status)) => status,
            Ok(_) => {
                eprintln!("lvsadm: directord: unexpected reply");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("lvsadm: directord: {e}");
                return ExitCode::FAILURE;
            }
        };
        // A directord that does not page answers everything with no `next`.
        let next = page.next.filter(|&next| next > from);
        if json {
            match &mut whole {
                Some(status) => status.services.extend(page.services),
                None => whole = Some(page),
            }
        } else {
            if from == 0 {
                println!("directord: {}", page.config.display());
            }
            print!("{}", render_services(&page.services));
            if next.is_none() && !page.probe_unknown.is_empty() {
                println!(
                    "probes without a result (director short of a resource; health kept): {}",
                    counts(&page.probe_unknown)
                );
            }
        }
        match next {
            Some(next) => from = next,
            None => break,
        }
    }
    if let Some(mut status) = whole {
        status.next = None;
        let response = directord::Response::Status(status);
        println!(
            "{}",
            serde_json::to_string_pretty(&response).unwrap_or_default()
        );
    }
    ExitCode::SUCCESS
}

fn render_services(services: &[directord::ServiceStatus]) -> String {
    let mut out = String::new();
    for service in services {
        let _ = writeln!(
            out,
            "{} ({}) {}{}",
            service.name,
            service.service,
            service.scheduler,
            if service.in_kernel {
                ""
            } else {
                "  [not in the kernel table]"
            }
        );
        for s in &service.servers {
            let weight = s.kernel_weight.map_or("-".to_owned(), |w| w.to_string());
            let _ = writeln!(
                out,
                "  -> {:<28} {:<5} weight {:>5} of {:<5} {}{}{}",
                s.address,
                if s.fallback {
                    "sorry"
                } else if let Some(admin) = s.admin {
                    admin.as_str()
                } else if s.up {
                    "up"
                } else {
                    "down"
                },
                weight,
                s.configured_weight,
                s.health,
                last_check(s),
                s.feedback
                    .as_ref()
                    .map(|f| format!("; feedback {f}"))
                    .unwrap_or_default()
            );
        }
    }
    out
}

/// "emfile 3, enobufs 1"
fn counts(by_cause: &std::collections::BTreeMap<String, u64>) -> String {
    by_cause
        .iter()
        .map(|(cause, n)| format!("{cause} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last probe's latency, after its result ("; last check <result> (<latency> ms)") when
/// that says more than the state's reason.
fn last_check(s: &directord::ServerStatus) -> String {
    match (&s.last_check, s.latency_ms) {
        (Some(check), Some(ms)) if *check == s.health => format!(" ({ms:.1} ms)"),
        (Some(check), Some(ms)) => format!("; last check {check} ({ms:.1} ms)"),
        _ => String::new(),
    }
}

pub fn vrrp(socket_dir: &Path, json: bool) -> ExitCode {
    vrrp_with_frr(socket_dir, json, None)
}

/// [`vrrp`], and for announced VIPs what FRR's bgpd (instance `frr_pathspace`, or the
/// default one) says of them.
pub fn vrrp_with_frr(socket_dir: &Path, json: bool, frr_pathspace: Option<&str>) -> ExitCode {
    ask(
        socket_dir,
        "vrrpd",
        &vrrpd::Request::Status,
        json,
        |status: &vrrpd::Status| {
            let mut out = render_vrrp(status);
            if let Some(announce) = &status.announce {
                let vips: Vec<std::net::IpAddr> = announce.vips.iter().map(|v| v.address).collect();
                out.push_str(&crate::routing::frr_view(frr_pathspace, &vips));
            }
            out
        },
    )
}

/// `lvsadm vrrp force-backup|release NAME`: vrrpd keeps it in its state directory, applies it
/// and answers its status after the change.
pub fn force_backup(socket_dir: &Path, name: &str, forced: bool) -> ExitCode {
    let name = name.to_owned();
    let request = if forced {
        vrrpd::Request::ForceBackup { name }
    } else {
        vrrpd::Request::Release { name }
    };
    ask(socket_dir, "vrrpd", &request, false, render_vrrp)
}

fn render_vrrp(status: &vrrpd::Status) -> String {
    let mut out = String::new();
    for i in &status.instances {
        let _ = writeln!(
            out,
            "{} {} vrid {}: {}{} priority {}/{} master {} VIPs {}",
            i.name,
            i.interface,
            i.vrid,
            i.state,
            if i.forced_backup { " (forced)" } else { "" },
            i.priority,
            i.configured_priority,
            i.master.map_or("-".to_owned(), |m| m.to_string()),
            i.virtual_addresses.join(" ")
        );
        let c = &i.counters;
        let _ = writeln!(
            out,
            "  adverts sent {} received {}, transitions {}, became master {}",
            c.adverts_sent, c.adverts_received, c.transitions, c.became_master
        );
        for (cause, n) in &c.drops {
            let _ = writeln!(out, "  dropped {n} ({cause})");
        }
    }
    if let Some(d) = &status.directord {
        let checks: Vec<String> = d.checks.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            out,
            "directord {} (weight {} while down; checks: {}){}",
            if d.up { "up" } else { "DOWN" },
            d.weight,
            checks.join(", "),
            d.last_error
                .as_ref()
                .map_or(String::new(), |e| format!("; last error: {e}"))
        );
    }
    for b in &status.bfd {
        let _ = writeln!(
            out,
            "bfd {} peer {}{}: {} (remote {}, diag {}), tx {:.1} ms, detection {:.1} ms",
            b.name,
            b.peer.map_or("-".to_owned(), |p| p.to_string()),
            if b.multihop { " multihop" } else { "" },
            b.state,
            b.remote_state,
            b.diag,
            b.tx_interval_ms,
            b.detection_time_ms
        );
        let _ = writeln!(
            out,
            "  packets sent {} received {}, transitions {}",
            b.packets_sent, b.packets_received, b.transitions
        );
        for (cause, n) in &b.drops {
            let _ = writeln!(out, "  dropped {n} ({cause})");
        }
    }
    if let Some(announce) = &status.announce {
        out.push_str(&crate::routing::text(announce));
    }
    out
}

pub fn sync(socket_dir: &Path, json: bool) -> ExitCode {
    ask(
        socket_dir,
        "syncd",
        &syncd::Request::Status,
        json,
        |response: &syncd::Response| {
            let syncd::Response::Status(s) = response else {
                return "unexpected reply\n".to_owned();
            };
            let c = &s.counters;
            let mut out = format!(
                "syncd: {} ({}) on {} syncid {} group {} v{}, kernel daemons: {}\n\
             mirror {} connection(s), lag {}\n\
             sent {} msg / {} entries, received {} msg / {} entries, observed from the kernel {} msg\n\
             resyncs sent {} received {}\n",
                s.role,
                s.role_source,
                s.interface,
                s.syncid,
                s.group,
                s.version,
                if s.kernel_daemons.is_empty() {
                    "none".to_owned()
                } else {
                    s.kernel_daemons.join(", ")
                },
                s.mirror_size,
                s.lag_ms.map_or("-".to_owned(), |ms| format!("{ms} ms")),
                c.messages_sent,
                c.entries_sent,
                c.messages_received,
                c.entries_received,
                c.kernel_messages_observed,
                c.resyncs_sent,
                c.resyncs_received,
            );
            for (cause, n) in &c.drops {
                let _ = writeln!(out, "dropped {n} ({cause})");
            }
            out
        },
    )
}

pub fn feedback(socket_dir: &Path, json: bool) -> ExitCode {
    ask(
        socket_dir,
        "feedbackd",
        &feedbackd::Request::Status,
        json,
        |status: &feedbackd::Status| {
            let mut out = String::new();
            for a in &status.agents {
                let _ = writeln!(
                    out,
                    "{:<24} agent {:<24} {:<5} weight {:>5} of {:<5} last {:?}\n  {}{}",
                    a.real,
                    a.agent,
                    a.state,
                    a.weight,
                    a.configured_weight,
                    a.last_reply.as_deref().unwrap_or("-"),
                    a.why,
                    a.last_error
                        .as_ref()
                        .map(|e| format!("; {e}"))
                        .unwrap_or_default()
                );
            }
            if !status.directord_failures.is_empty() {
                let _ = writeln!(
                    out,
                    "hand-overs directord did not take: {}",
                    counts(&status.directord_failures)
                );
            }
            out
        },
    )
}

/// One screen: VRRP, the IPVS table with health and weights, sync, feedback — each from its
/// daemon, and a line saying so when a daemon is not running here.
/// Shows one daemon's section.
/// One daemon's part of `lvsadm status`.
type Section<'a> = dyn Fn(&Path, bool) -> ExitCode + 'a;

/// The daemons a config needs running: those with a section to serve.
pub fn needed_daemons(config: &lvs_config::Config) -> Vec<&'static str> {
    let mut needed = Vec::new();
    if !config.vrrp.instance.is_empty() || config.announce.is_some() {
        needed.push("vrrpd");
    }
    if !config.virtual_servers.is_empty() {
        needed.push("directord");
    }
    if config.sync.is_some() {
        needed.push("syncd");
    }
    if config.feedback.is_some() {
        needed.push("feedbackd");
    }
    needed
}

/// Every daemon's status. Fails (EX_UNAVAILABLE) when a daemon in `needed` does not answer, so
/// it serves as a health check; without a config to say what is needed, when none answers.
pub fn all(socket_dir: &Path, needed: Option<&[&str]>, frr_pathspace: Option<&str>) -> ExitCode {
    let vrrp = |dir: &Path, json: bool| vrrp_with_frr(dir, json, frr_pathspace);
    let sections: [(&str, &Section<'_>); 4] = [
        ("vrrpd", &vrrp),
        ("directord", &directord),
        ("syncd", &sync),
        ("feedbackd", &feedback),
    ];
    let mut reached = 0;
    let mut missing = Vec::new();
    for (daemon, show) in sections {
        println!("== {daemon}");
        let wanted = needed.is_none_or(|n| n.contains(&daemon));
        let socket = lvs_proto::socket_path(socket_dir, daemon);
        let answered = if !socket.exists() {
            if wanted {
                println!("not running (no {})", socket.display());
            } else {
                println!("not configured");
            }
            false
        } else {
            show(socket_dir, false) == ExitCode::SUCCESS
        };
        if answered {
            reached += 1;
        } else if wanted {
            missing.push(daemon);
        }
    }
    let healthy = match needed {
        Some(_) => missing.is_empty(),
        None => reached > 0,
    };
    if healthy {
        return ExitCode::SUCCESS;
    }
    if needed.is_some() {
        eprintln!(
            "lvsadm status: the config needs {}, not answering",
            missing.join(", ")
        );
    }
    ExitCode::from(lvs_config::EX_UNAVAILABLE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    fn page(from: usize, count: usize, next: Option<usize>) -> String {
        let services: Vec<_> = (from..from + count)
            .map(|i| {
                serde_json::json!({"name": format!("s{i}"), "service": format!("tcp 192.0.2.1:{i}"),
                    "scheduler": "wlc", "in_kernel": true, "servers": []})
            })
            .collect();
        let status = serde_json::json!({"config": "/etc/d.toml", "services": services,
            "next": next, "last_apply": {"requests": 0, "sendmsg_calls": 0, "failures": []}});
        format!("{}\n", serde_json::json!({ "ok": status }))
    }

    /// `lvsadm status` asks directord for a page of services at a time, following `next`
    /// until there is none, so no single answer is the whole table.
    #[test]
    fn directord_status_is_read_page_by_page() {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(lvs_proto::socket_path(dir.path(), "directord")).unwrap();
        let server = std::thread::spawn(move || {
            let mut asked = Vec::new();
            for answer in [
                page(0, STATUS_PAGE, Some(STATUS_PAGE)),
                page(STATUS_PAGE, STATUS_PAGE, Some(2 * STATUS_PAGE)),
                page(2 * STATUS_PAGE, 3, None),
            ] {
                let (stream, _) = listener.accept().unwrap();
                let mut request = String::new();
                BufReader::new(&stream).read_line(&mut request).unwrap();
                (&stream).write_all(answer.as_bytes()).unwrap();
                asked.push(request);
            }
            asked
        });
        assert_eq!(directord(dir.path(), true), ExitCode::SUCCESS);
        let asked = server.join().unwrap();
        let expected: Vec<String> = [0, STATUS_PAGE, 2 * STATUS_PAGE]
            .iter()
            .map(|&from| {
                let request = directord::Request::Status {
                    from,
                    limit: Some(STATUS_PAGE),
                };
                format!("{}\n", serde_json::to_string(&request).unwrap())
            })
            .collect();
        assert_eq!(asked, expected);
        assert!(
            asked[0].starts_with("{\"cmd\":\"status\",\"limit\":100}"),
            "{}",
            asked[0]
        );
    }

    /// `lvsadm status` is a health check: it fails while a daemon the config needs does not
    /// answer, and a daemon the config does not need is not one. Caught: it succeeded as soon
    /// as any daemon answered, so a director with a dead vrrpd looked healthy.
    #[test]
    fn status_fails_while_a_needed_daemon_is_away() {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(lvs_proto::socket_path(dir.path(), "directord")).unwrap();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (stream, _) = listener.accept().unwrap();
                let mut request = String::new();
                BufReader::new(&stream).read_line(&mut request).unwrap();
                (&stream).write_all(page(0, 1, None).as_bytes()).unwrap();
            }
        });
        assert_eq!(
            all(dir.path(), Some(&["directord"]), None),
            ExitCode::SUCCESS
        );
        assert_eq!(
            all(dir.path(), Some(&["vrrpd", "directord"]), None),
            ExitCode::from(lvs_config::EX_UNAVAILABLE)
        );
        server.join().unwrap();
        // Nothing answers any more; nothing needed is still healthy, anything needed is not.
        assert_eq!(all(dir.path(), Some(&[]), None), ExitCode::SUCCESS);
        assert_eq!(
            all(dir.path(), None, None),
            ExitCode::from(lvs_config::EX_UNAVAILABLE)
        );
    }

    #[test]
    fn the_daemons_a_config_needs() {
        let config = lvs_config::parse(
            "[[virtual_server]]\naddress = \"192.0.2.1:80\"\n[[virtual_server.real]]\naddress = \"198.51.100.1:80\"\n",
            "test",
        )
        .unwrap();
        assert_eq!(needed_daemons(&config), ["directord"]);
        assert!(needed_daemons(&lvs_config::Config::default()).is_empty());
        // A director that announces VIPs over BGP needs vrrpd even without a VRRP instance.
        let announcing = lvs_config::parse(
            "[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.1:80\"\n\
             [[virtual_server.real]]\naddress = \"198.51.100.1:80\"\n\
             [[announce.vip]]\naddress = \"192.0.2.1\"\nservices = [\"web\"]\n",
            "test",
        )
        .unwrap();
        assert_eq!(needed_daemons(&announcing), ["vrrpd", "directord"]);
    }
}
