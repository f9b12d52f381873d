//! `ipvsadm -S` / `ipvsadm -Sn` save files: `-A` lines become virtual servers, `-a` lines their
//! real servers. No health check is written, so directord reproduces the saved table as it is.

use std::collections::HashMap;
use std::net::SocketAddr;

use lvs_config::{
    Duration, Family, Forwarding, Netmask, OnFailure, Protocol, RealServer, Scheduler, ServiceFlag,
    VirtualServer,
};

use super::{ErrorKind, ImportError, Origin, Output};

/// How ipvsadm names a service on its command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Addr(Protocol, SocketAddr),
    Mark(u32, Family),
}

pub(crate) fn convert(text: &str, file: &str) -> Result<Output, ImportError> {
    let mut out = Output::default();
    let mut index: HashMap<Key, usize> = HashMap::new();
    for (n, raw) in text.lines().enumerate() {
        let at = Origin::new(file, n + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let mark = out.mark();
        match words[0] {
            "-A" | "--add-service" => {
                let (key, service) = service_line(&words[1..], &at, &mut out)?;
                if index.contains_key(&key) {
                    return Err(ImportError::new(
                        &at,
                        ErrorKind::BadValue,
                        "service is added twice",
                    ));
                }
                index.insert(key, out.virtual_servers.len());
                let block = out.block(at, service, mark);
                out.virtual_servers.push(block);
            }
            "-a" | "--add-server" => {
                let (key, real, tunnel) = real_line(&words[1..], &at)?;
                let Some(&i) = index.get(&key) else {
                    return Err(ImportError::new(
                        &at,
                        ErrorKind::BadValue,
                        "real server for a service that no -A line added",
                    ));
                };
                if let Some(tunnel) = tunnel {
                    out.unsupported(
                        &at,
                        tunnel,
                        "the real server is reached over a plain IPIP tunnel",
                    );
                }
                let block = &mut out.virtual_servers[i];
                block.value.real.push(real);
                block.children.push(at);
                block.notes.end = out.unsupported.len();
            }
            other => {
                return Err(ImportError::new(
                    &at,
                    ErrorKind::Syntax,
                    format!("expected an -A or -a line as ipvsadm -S writes them, found {other:?}"),
                ));
            }
        }
    }
    for block in &mut out.virtual_servers {
        settle_forwarding(&mut block.value);
    }
    Ok(out)
}

/// The service's forwarding is the one most of its real servers use, so that only the odd ones
/// out carry their own.
pub(crate) fn settle_forwarding(service: &mut VirtualServer) {
    let methods = [Forwarding::Dr, Forwarding::Nat, Forwarding::Tun];
    let count = |m: Forwarding| {
        service
            .real
            .iter()
            .filter(|r| r.forwarding.unwrap_or(service.forwarding) == m)
            .count()
    };
    let first = service.real.first().map_or(service.forwarding, |r| {
        r.forwarding.unwrap_or(service.forwarding)
    });
    let best = methods.into_iter().fold(
        first,
        |best, m| if count(m) > count(best) { m } else { best },
    );
    for real in &mut service.real {
        let own = real.forwarding.unwrap_or(service.forwarding);
        real.forwarding = (own != best).then_some(own);
    }
    service.forwarding = best;
}

fn bad(at: &Origin, message: impl Into<String>) -> ImportError {
    ImportError::new(at, ErrorKind::BadValue, message)
}

fn value<'a>(words: &[&'a str], i: &mut usize, at: &Origin) -> Result<&'a str, ImportError> {
    *i += 1;
    words
        .get(*i)
        .copied()
        .ok_or_else(|| bad(at, format!("{} needs a value", words[*i - 1])))
}

fn number<T: std::str::FromStr>(text: &str, what: &str, at: &Origin) -> Result<T, ImportError> {
    text.parse()
        .map_err(|_| bad(at, format!("invalid {what} {text:?}")))
}

/// `ip:port`, `[v6]:port` or a bare address (port 0), as ipvsadm prints them with -n.
pub(crate) fn socket_addr(text: &str, at: &Origin) -> Result<SocketAddr, ImportError> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 0))
        .map_err(|_| {
            ImportError::new(
                at,
                ErrorKind::BadAddress,
                format!("invalid address {text:?}; expected ip:port or [ipv6]:port"),
            )
        })
}

/// Reads the service-naming options shared by -A and -a; returns true when `words[*i]` was one.
fn service_option(
    words: &[&str],
    i: &mut usize,
    at: &Origin,
    spec: &mut Option<(Option<Protocol>, String)>,
    inet6: &mut bool,
) -> Result<bool, ImportError> {
    let protocol = match words[*i] {
        "-t" | "--tcp-service" => Some(Protocol::Tcp),
        "-u" | "--udp-service" => Some(Protocol::Udp),
        "--sctp-service" => Some(Protocol::Sctp),
        "-f" | "--fwmark-service" => None,
        "-6" | "--ipv6" => {
            *inet6 = true;
            return Ok(true);
        }
        _ => return Ok(false),
    };
    let text = value(words, i, at)?;
    *spec = Some((protocol, text.to_owned()));
    Ok(true)
}

fn key_of(
    spec: Option<(Option<Protocol>, String)>,
    inet6: bool,
    at: &Origin,
) -> Result<Key, ImportError> {
    match spec {
        None => Err(bad(at, "no service given (-t, -u, --sctp-service or -f)")),
        Some((Some(protocol), text)) => Ok(Key::Addr(protocol, socket_addr(&text, at)?)),
        Some((None, text)) => {
            let mark: u32 = number(&text, "fwmark", at)?;
            Ok(Key::Mark(
                mark,
                if inet6 { Family::Inet6 } else { Family::Inet },
            ))
        }
    }
}

fn service_line(
    words: &[&str],
    at: &Origin,
    out: &mut Output,
) -> Result<(Key, VirtualServer), ImportError> {
    let mut spec = None;
    let mut inet6 = false;
    let mut scheduler = Scheduler::Wlc; // ipvsadm's default
    let mut persistence = None;
    let mut netmask = None;
    let mut flags = Vec::new();
    let mut engine = None;
    let mut i = 0;
    while i < words.len() {
        if service_option(words, &mut i, at, &mut spec, &mut inet6)? {
            i += 1;
            continue;
        }
        match words[i] {
            "-s" | "--scheduler" => {
                let name = value(words, &mut i, at)?;
                scheduler = name
                    .parse()
                    .map_err(|e: lvs_config::UnknownName| bad(at, e.to_string()))?;
            }
            "-p" | "--persistent" => {
                // The timeout is optional on the command line; ipvsadm's default is 300 s.
                let secs = match words.get(i + 1) {
                    Some(next) if next.bytes().all(|b| b.is_ascii_digit()) => {
                        i += 1;
                        number(next, "persistence timeout", at)?
                    }
                    _ => 300,
                };
                persistence = Some(Duration::from_secs(secs));
            }
            "-M" | "--netmask" => {
                let text = value(words, &mut i, at)?;
                netmask = Some(
                    text.parse::<Netmask>()
                        .map_err(|e| ImportError::new(at, ErrorKind::BadAddress, e))?,
                );
            }
            "-b" | "--sched-flags" => {
                for name in value(words, &mut i, at)?.split(',') {
                    match name {
                        "flag-1" | "flag-2" | "flag-3" => {
                            let named = sched_flag(name, scheduler);
                            match named {
                                Some(flag) => flags.push(flag),
                                None => {
                                    out.unsupported(
                                        at,
                                        format!("-b {name}"),
                                        "the flag is not set",
                                    );
                                }
                            }
                        }
                        _ => flags.push(
                            name.parse::<ServiceFlag>()
                                .map_err(|e| bad(at, e.to_string()))?,
                        ),
                    }
                }
            }
            "-o" | "--ops" => flags.push(ServiceFlag::OnePacket),
            "--pe" => engine = Some(value(words, &mut i, at)?.to_owned()),
            other => return Err(bad(at, format!("unknown service option {other:?}"))),
        }
        i += 1;
    }
    let key = key_of(spec, inet6, at)?;
    let (address, fwmark, family, protocol) = match &key {
        Key::Addr(protocol, addr) => (Some(*addr), None, None, *protocol),
        Key::Mark(mark, family) => (
            None,
            Some(*mark),
            (*family == Family::Inet6).then_some(Family::Inet6),
            Protocol::Tcp,
        ),
    };
    let service = VirtualServer {
        name: None,
        address,
        fwmark,
        family,
        protocol,
        scheduler,
        forwarding: Forwarding::Dr,
        persistence,
        netmask,
        flags,
        persistence_engine: engine,
        on_failure: OnFailure::Quiescent,
        fallback: None,
        check: None,
        real: Vec::new(),
    };
    Ok((key, service))
}

/// flag-N is how ipvsadm names sh-*/mh-* flags for other schedulers.
pub(crate) fn sched_flag(name: &str, scheduler: Scheduler) -> Option<ServiceFlag> {
    match (name, scheduler) {
        ("flag-1", Scheduler::Sh) => Some(ServiceFlag::ShFallback),
        ("flag-2", Scheduler::Sh) => Some(ServiceFlag::ShPort),
        ("flag-1", Scheduler::Mh) => Some(ServiceFlag::MhFallback),
        ("flag-2", Scheduler::Mh) => Some(ServiceFlag::MhPort),
        _ => None,
    }
}

fn real_line(
    words: &[&str],
    at: &Origin,
) -> Result<(Key, RealServer, Option<String>), ImportError> {
    let mut spec = None;
    let mut inet6 = false;
    let mut address = None;
    let mut forwarding = Forwarding::Dr; // ipvsadm's default (-g)
    let mut weight = 1;
    let mut upper = 0;
    let mut lower = 0;
    let mut tunnel: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if service_option(words, &mut i, at, &mut spec, &mut inet6)? {
            i += 1;
            continue;
        }
        match words[i] {
            "-r" | "--real-server" => {
                address = Some(socket_addr(value(words, &mut i, at)?, at)?);
            }
            "-g" | "--gatewaying" => forwarding = Forwarding::Dr,
            "-m" | "--masquerading" => forwarding = Forwarding::Nat,
            "-i" | "--ipip" => forwarding = Forwarding::Tun,
            "-w" | "--weight" => weight = number(value(words, &mut i, at)?, "weight", at)?,
            "-x" | "--u-threshold" => {
                upper = number(value(words, &mut i, at)?, "upper threshold", at)?;
            }
            "-y" | "--l-threshold" => {
                lower = number(value(words, &mut i, at)?, "lower threshold", at)?;
            }
            "--tun-type" => {
                let kind = value(words, &mut i, at)?;
                if kind != "ipip" {
                    tunnel.push(format!("--tun-type {kind}"));
                }
            }
            "--tun-port" => {
                let port = value(words, &mut i, at)?;
                tunnel.push(format!("--tun-port {port}"));
            }
            flag @ ("--tun-nocsum" | "--tun-csum" | "--tun-remcsum") => {
                tunnel.push(flag.to_owned());
            }
            other => return Err(bad(at, format!("unknown real server option {other:?}"))),
        }
        i += 1;
    }
    let key = key_of(spec, inet6, at)?;
    let Some(address) = address else {
        return Err(bad(at, "-a without -r <real server>"));
    };
    let real = RealServer {
        address,
        weight,
        forwarding: Some(forwarding),
        upper_threshold: upper,
        lower_threshold: lower,
        check: None,
    };
    let tunnel = (!tunnel.is_empty()).then(|| tunnel.join(" "));
    Ok((key, real, tunnel))
}
