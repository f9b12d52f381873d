//! `ipvsadm -S` / `ipvsadm -Sn` save files: `-A` lines become virtual servers, `-a` lines their
//! real servers. No health check is written, so directord reproduces the saved table as it is.
//!
//! Each line is read by the grammar of `lvsadm -R` ([`crate::ipvsadm::args::parse`]), so a
//! file imports exactly when it restores, with the same defaults (wlc, 300 s persistence,
//! direct routing and its port rule); this module only maps the parsed service and
//! destination onto director.toml.

use std::collections::HashMap;
use std::net::SocketAddr;

use lvs_config::{
    Duration, Family, Forwarding, Netmask, OnFailure, Protocol, RealServer, Scheduler, ServiceFlag,
    VirtualServer,
};
use lvs_ipvs::{
    AddressFamily, Destination, ForwardMethod, Service, ServiceFlags, ServiceKey, TunnelFlags,
    TunnelType,
};

use super::{ErrorKind, ImportError, Origin, Output};
use crate::ipvsadm::args::{self, Cmd};

pub(crate) fn convert(text: &str, file: &str) -> Result<Output, ImportError> {
    let mut out = Output::default();
    let mut index: HashMap<ServiceKey, usize> = HashMap::new();
    for (n, raw) in text.lines().enumerate() {
        let at = Origin::new(file, n + 1);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if !matches!(
            words[0].as_str(),
            "-A" | "--add-service" | "-a" | "--add-server"
        ) {
            return Err(ImportError::new(
                &at,
                ErrorKind::Syntax,
                format!(
                    "expected an -A or -a line as ipvsadm -S writes them, found {:?}",
                    words[0]
                ),
            ));
        }
        let invocation = args::parse(&words).map_err(|e| bad(&at, e.0))?;
        let mark = out.mark();
        match (invocation.cmd, invocation.service, invocation.dest) {
            (Cmd::AddService, Some(service), _) => {
                let key = service.key;
                if index.contains_key(&key) {
                    return Err(bad(&at, "service is added twice"));
                }
                let service = virtual_server(&service, &at, &mut out)?;
                index.insert(key, out.virtual_servers.len());
                let block = out.block(at, service, mark);
                out.virtual_servers.push(block);
            }
            (Cmd::AddDest, _, Some(dest)) => {
                let Some(&i) = invocation.key.as_ref().and_then(|key| index.get(key)) else {
                    return Err(bad(&at, "real server for a service that no -A line added"));
                };
                if let Some(tunnel) = tunnel_options(&dest) {
                    out.unsupported(
                        &at,
                        tunnel,
                        "the real server is reached over a plain IPIP tunnel",
                    );
                }
                let block = &mut out.virtual_servers[i];
                block.value.real.push(real_server(&dest));
                block.children.push(at);
                block.notes.end = out.unsupported.len();
            }
            _ => return Err(bad(&at, "incomplete command")),
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

/// A parsed `-A` as a virtual server; scheduler flags the model has no name for are noted.
fn virtual_server(
    service: &Service,
    at: &Origin,
    out: &mut Output,
) -> Result<VirtualServer, ImportError> {
    let scheduler: Scheduler = service
        .scheduler
        .parse()
        .map_err(|e: lvs_config::UnknownName| bad(at, e.to_string()))?;
    let (address, fwmark, family, protocol) = match service.key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
            ..
        } => {
            let protocol = match protocol {
                lvs_ipvs::Protocol::Tcp => Protocol::Tcp,
                lvs_ipvs::Protocol::Udp => Protocol::Udp,
                lvs_ipvs::Protocol::Sctp => Protocol::Sctp,
                lvs_ipvs::Protocol::Other(n) => {
                    return Err(bad(
                        at,
                        format!("protocol {n} has no name in director.toml"),
                    ));
                }
            };
            (Some(SocketAddr::new(addr, port)), None, None, protocol)
        }
        ServiceKey::Fwmark { af, mark } => (
            None,
            Some(mark),
            (af == AddressFamily::Inet6).then_some(Family::Inet6),
            Protocol::Tcp,
        ),
    };
    let af = service.key.af();
    // -M: the grammar leaves the default (a host's mask) when none is given.
    let netmask = (service.netmask != Service::default_netmask(af)).then(|| match af {
        AddressFamily::Inet6 => Netmask {
            prefix_len: service.netmask as u8,
            dotted: false,
        },
        _ => Netmask {
            prefix_len: service.netmask.count_ones() as u8,
            dotted: true,
        },
    });
    let mut flags = Vec::new();
    if service.flags.contains(ServiceFlags::ONEPACKET) {
        flags.push(ServiceFlag::OnePacket);
    }
    for (bit, name) in [
        (ServiceFlags::SCHED1, "flag-1"),
        (ServiceFlags::SCHED2, "flag-2"),
        (ServiceFlags::SCHED3, "flag-3"),
    ] {
        if service.flags.contains(bit) {
            match sched_flag(name, scheduler) {
                Some(flag) => flags.push(flag),
                None => out.unsupported(at, format!("-b {name}"), "the flag is not set"),
            }
        }
    }
    Ok(VirtualServer {
        name: None,
        address,
        fwmark,
        family,
        protocol,
        scheduler,
        forwarding: Forwarding::Dr,
        persistence: service
            .flags
            .contains(ServiceFlags::PERSISTENT)
            .then(|| Duration::from_secs(u64::from(service.timeout))),
        netmask,
        flags,
        persistence_engine: service.pe_name.clone(),
        on_failure: OnFailure::Quiescent,
        fallback: None,
        check: None,
        real: Vec::new(),
        ..VirtualServer::default()
    })
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

fn real_server(dest: &Destination) -> RealServer {
    let forwarding = match dest.fwd {
        ForwardMethod::Masq => Forwarding::Nat,
        ForwardMethod::Tunnel => Forwarding::Tun,
        ForwardMethod::Route | ForwardMethod::Local => Forwarding::Dr,
    };
    RealServer {
        address: SocketAddr::new(dest.addr, dest.port),
        weight: dest.weight,
        forwarding: Some(forwarding),
        upper_threshold: dest.u_threshold,
        lower_threshold: dest.l_threshold,
        check: None,
        on_failure: None,
        notify_up: None,
        notify_down: None,
    }
}

/// The tunnel options of a `-a` as ipvsadm -S writes them, when the tunnel is not plain
/// IPIP (the only one the model has); `None` for IPIP, whose checksum flags do not apply.
fn tunnel_options(dest: &Destination) -> Option<String> {
    if dest.fwd != ForwardMethod::Tunnel || dest.tun_type == TunnelType::Ipip {
        return None;
    }
    let mut options = vec![format!(
        "--tun-type {}",
        match dest.tun_type {
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
            TunnelType::Ipip => "ipip",
        }
    )];
    if dest.tun_port != 0 {
        options.push(format!("--tun-port {}", dest.tun_port));
    }
    for (flag, name) in [
        (TunnelFlags::NOCSUM, "--tun-nocsum"),
        (TunnelFlags::CSUM, "--tun-csum"),
        (TunnelFlags::REMCSUM, "--tun-remcsum"),
    ] {
        if dest.tun_flags == flag {
            options.push(name.to_owned());
        }
    }
    Some(options.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvsadm::restore;

    // Caught: the importer had a grammar of its own, looser than -R's, so files that
    // `lvsadm -R` refuses imported anyway (a repeated option silently took the last value).
    #[test]
    fn a_file_imports_exactly_when_it_restores() {
        for (file, refused_at, says) in [
            (
                "-A -t 192.0.2.1:80 -s wlc -s rr\n",
                1,
                "Multiple 'scheduler' options specified",
            ),
            (
                "-A -t 192.0.2.1:80\n-a -t 192.0.2.1:80 -r 198.51.100.1:80 -m --tun-type gue\n",
                2,
                "tunnel options need the ipip forwarding method (-i)",
            ),
            (
                "-A -t 192.0.2.1:80\n-a -t 192.0.2.1:80 -r 198.51.100.1:80 -w 1 --bogus\n",
                2,
                "unrecognized option '--bogus'",
            ),
        ] {
            let restored = restore::parse(file).unwrap_err();
            assert_eq!(restored, [format!("line {refused_at}: {says}")]);
            let imported = convert(file, "t.save").unwrap_err();
            assert_eq!(
                (imported.line, imported.kind, imported.message.as_str()),
                (refused_at, ErrorKind::BadValue, says),
                "{file}"
            );
        }
        let good = "-A -u 192.0.2.1:53 -s sh -b sh-port\n-a -u 192.0.2.1:53 -r 198.51.100.1 -m\n";
        assert!(restore::parse(good).is_ok());
        let out = convert(good, "t.save").unwrap();
        let service = &out.virtual_servers[0].value;
        assert_eq!(service.flags, [ServiceFlag::ShPort]);
        // -R's rule: a real server without a port takes the service's.
        assert_eq!(
            service.real[0].address,
            "198.51.100.1:53".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(service.forwarding, Forwarding::Nat);
    }
}
