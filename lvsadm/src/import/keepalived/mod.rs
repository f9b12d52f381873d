//! keepalived.conf to director.toml.
//!
//! keepalived's defaults are not ours (scheduler wlc, NAT, removal on failure, 60 s checks,
//! UDP when no protocol is given...), so every value that decides behaviour is written out
//! explicitly, resolved the way keepalived resolves it (checker over real server over virtual
//! server over the checker type's default).

mod bfd;
mod checks;
mod parse;
mod vrrp;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use lvs_config::{
    Duration, Family, Forwarding, Netmask, OnFailure, Protocol, RealServer, Scheduler, ServiceFlag,
    VirtualServer,
};

use super::ipvsadm::{sched_flag, settle_forwarding};
use super::{ErrorKind, ImportError, Options, Origin, Output};
use parse::Node;

pub(crate) fn convert(path: &Path, options: &Options) -> Result<Output, ImportError> {
    let mut out = Output::default();
    let tree = parse::parse(path, options, &mut out)?;
    let mut ctx = Context {
        out,
        scripts: HashMap::new(),
        track_files: HashMap::new(),
        track_processes: HashMap::new(),
        groups: HashMap::new(),
        globals: vrrp::Globals::default(),
        sync_daemon: Vec::new(),
        service_keys: HashSet::new(),
        bfd_weights: HashMap::new(),
    };
    for node in &tree {
        match node.key() {
            "global_defs" => ctx.global_defs(node)?,
            "vrrp_script" => {
                let name = required_arg(node, 1, "a script name")?;
                ctx.scripts.insert(name.to_owned(), node.clone());
            }
            "vrrp_track_file" | "track_file" if node.children.is_some() => {
                let name = required_arg(node, 1, "a name")?;
                ctx.track_files.insert(name.to_owned(), node.clone());
            }
            "vrrp_track_process" => {
                let name = required_arg(node, 1, "a name")?;
                ctx.track_processes.insert(name.to_owned(), node.clone());
            }
            "virtual_server_group" => {
                let name = required_arg(node, 1, "a group name")?;
                ctx.groups.insert(name.to_owned(), node.clone());
            }
            // Before the instances, whose track_bfd names them.
            "bfd_instance" => ctx.bfd_instance(node)?,
            _ => {}
        }
    }
    for node in &tree {
        match node.key() {
            "global_defs"
            | "vrrp_script"
            | "vrrp_track_file"
            | "vrrp_track_process"
            | "virtual_server_group"
            | "bfd_instance" => {}
            "track_file" if node.children.is_some() => {}
            "vrrp_instance" => ctx.vrrp_instance(node)?,
            "vrrp_sync_group" => {}
            "virtual_server" => ctx.virtual_server(node)?,
            key => ctx.top_level_other(node, key)?,
        }
    }
    // Sync groups name instances, which must all be known first.
    for node in tree.iter().filter(|n| n.key() == "vrrp_sync_group") {
        ctx.sync_group(node)?;
    }
    ctx.sync_daemon_section();
    Ok(ctx.out)
}

struct Context {
    out: Output,
    scripts: HashMap<String, Node>,
    track_files: HashMap<String, Node>,
    track_processes: HashMap<String, Node>,
    groups: HashMap<String, Node>,
    globals: vrrp::Globals,
    /// lvs_sync_daemon settings: (where, interface, instance, options).
    sync_daemon: Vec<(Origin, String, String, Vec<String>)>,
    service_keys: HashSet<String>,
    /// `bfd_instance` names, which `track_bfd` must name, with the weight a `track_bfd`
    /// entry without its own takes (keepalived's `weight` in the bfd_instance, 0 if none).
    bfd_weights: HashMap<String, i32>,
}

// ---------------------------------------------------------------- value helpers

fn required_arg<'n>(node: &'n Node, i: usize, what: &str) -> Result<&'n str, ImportError> {
    node.arg(i).ok_or_else(|| {
        ImportError::new(
            &node.at,
            ErrorKind::BadValue,
            format!("{} needs {what}", node.key()),
        )
    })
}

fn number<T: std::str::FromStr>(node: &Node, i: usize) -> Result<T, ImportError> {
    let text = required_arg(node, i, "a number")?;
    text.parse().map_err(|_| {
        ImportError::new(
            &node.at,
            ErrorKind::BadValue,
            format!("{} needs a number in range, got {text:?}", node.key()),
        )
    })
}

/// A number that must lie in `lo..=hi`; `what` names it in the error.
fn number_between<T>(node: &Node, i: usize, what: &str, lo: T, hi: T) -> Result<T, ImportError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = number(node, i)?;
    if n < lo || n > hi {
        return Err(ImportError::new(
            &node.at,
            ErrorKind::BadValue,
            format!("{what} is between {lo} and {hi}"),
        ));
    }
    Ok(n)
}

/// keepalived TIMERs are seconds, fractions allowed ("0.5"), kept to the millisecond.
fn timer(node: &Node, i: usize) -> Result<Duration, ImportError> {
    let text = required_arg(node, i, "a time in seconds")?;
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => {
            Ok(Duration::from_millis((secs * 1000.0).round() as u64))
        }
        _ => Err(ImportError::new(
            &node.at,
            ErrorKind::BadValue,
            format!("{} needs a time in seconds, got {text:?}", node.key()),
        )),
    }
}

/// keepalived's optional BOOL argument: absent means true.
fn flag(node: &Node) -> Result<bool, ImportError> {
    match node.arg(1) {
        None | Some("true" | "on" | "yes") => Ok(true),
        Some("false" | "off" | "no") => Ok(false),
        Some(other) => Err(ImportError::new(
            &node.at,
            ErrorKind::BadValue,
            format!(
                "{} takes a boolean (on/off, true/false, yes/no), got {other:?}",
                node.key()
            ),
        )),
    }
}

fn ip(node: &Node, text: &str) -> Result<IpAddr, ImportError> {
    text.parse().map_err(|_| {
        ImportError::new(
            &node.at,
            ErrorKind::BadAddress,
            format!("invalid IP address {text:?}"),
        )
    })
}

fn port(node: &Node, text: &str) -> Result<u16, ImportError> {
    text.parse().map_err(|_| {
        ImportError::new(
            &node.at,
            ErrorKind::BadAddress,
            format!("invalid port {text:?}"),
        )
    })
}

/// `IP [PORT]` at words i and i+1.
fn ip_port(node: &Node, i: usize) -> Result<SocketAddr, ImportError> {
    let address = ip(node, required_arg(node, i, "an IP address")?)?;
    let p = match node.arg(i + 1) {
        Some(text) => port(node, text)?,
        None => 0,
    };
    Ok(SocketAddr::new(address, p))
}

impl Context {
    /// Reports a directive this importer does not carry over; `instead` says what happens.
    fn skip(&mut self, node: &Node, instead: &str) {
        let mut directive = node.text();
        if directive.len() > 72 {
            let cut = (0..=72)
                .rev()
                .find(|i| directive.is_char_boundary(*i))
                .unwrap_or(0);
            directive.truncate(cut);
            directive.push_str("...");
        }
        self.out.unsupported(&node.at, directive, instead);
    }

    fn top_level_other(&mut self, node: &Node, key: &str) -> Result<(), ImportError> {
        if key == "static_rules" {
            self.number_static_rules(node);
        }
        let instead = match key {
            "static_ipaddress" | "static_routes" | "static_rules" => {
                "not managed: configure static addresses, routes and rules with the system's network configuration"
            }
            "virtual_routes" | "virtual_rules" => "not managed: routes follow no VRRP state here",
            "SSL" => {
                "ignored: https checks use the system's TLS defaults and do not verify certificates"
            }
            "linkbeat_interfaces" | "interface_up_down_delays" => {
                "ignored: interface state comes from netlink without debouncing"
            }
            "net_namespace"
            | "net_namespace_ipvs"
            | "instance"
            | "use_pid_dir"
            | "namespace_with_ipvs" => "ignored: run the daemons in the namespace instead",
            "garp_group" => "ignored: gratuitous ARP timing is per instance (garp)",
            "vrrp_track_file" | "vrrp_track_process" | "track_file" => {
                "ignored: only tracked files and processes named by an instance are imported"
            }
            "child_wait_time" | "checker_processes" => "ignored",
            _ if node.children.is_some() => {
                return Err(ImportError::new(
                    &node.at,
                    ErrorKind::UnknownBlock,
                    format!("unknown block \"{key}\"; keepalived has no such top-level section"),
                ));
            }
            _ => "ignored: not a top-level keepalived keyword",
        };
        self.skip(node, instead);
        Ok(())
    }

    fn global_defs(&mut self, node: &Node) -> Result<(), ImportError> {
        for child in node.children() {
            match child.key() {
                "vrrp_version" => {
                    let version: u8 = number(child, 1)?;
                    if version != 2 && version != 3 {
                        return Err(ImportError::new(
                            &child.at,
                            ErrorKind::BadValue,
                            "vrrp_version is 2 or 3",
                        ));
                    }
                    self.globals.version = version;
                }
                "vrrp_garp_master_delay" => self.globals.garp.delay = timer(child, 1)?,
                "vrrp_garp_master_repeat" => self.globals.garp.repeat = number(child, 1)?,
                "vrrp_garp_interval" => self.globals.garp.spacing = timer(child, 1)?,
                "vrrp_garp_lower_prio_repeat" => {
                    self.globals.garp.lower_prio_repeat = Some(number(child, 1)?);
                }
                "vrrp_garp_lower_prio_delay" => {
                    self.globals.garp.lower_prio_delay = Some(timer(child, 1)?);
                }
                "vrrp_garp_master_refresh" => {
                    let refresh = timer(child, 1)?;
                    self.globals.garp.refresh = (!refresh.is_zero()).then_some(refresh);
                }
                "lvs_sync_daemon" => {
                    let interface = required_arg(child, 1, "an interface")?.to_owned();
                    let instance = required_arg(child, 2, "a VRRP instance")?.to_owned();
                    let rest = child.words[3..].to_vec();
                    self.sync_daemon
                        .push((child.at.clone(), interface, instance, rest));
                }
                "vrrp_rt_priority" => {
                    let priority = number_between(child, 1, "vrrp_rt_priority", 1i64, 99)?;
                    self.scheduling(child).rt_priority = Some(priority as u8);
                }
                // keepalived's unit is the kernel's: microseconds.
                "vrrp_rlimit_rttime" => {
                    let micros: u64 = number(child, 1)?;
                    self.scheduling(child).rlimit_rttime = Some(lvs_config::Duration(
                        std::time::Duration::from_micros(micros),
                    ));
                }
                "vrrp_no_swap" => self.scheduling(child).no_swap = true,
                "notify_fifo" | "vrrp_notify_fifo" => self.notify_fifo(child)?,
                "notify_fifo_script" | "vrrp_notify_fifo_script" => {
                    let command = vrrp::script_command(self, child)?;
                    let scheduling = self.scheduling(child);
                    if scheduling.notify_fifo_script.is_none() {
                        scheduling.notify_fifo_script = Some(command);
                    } else {
                        self.skip(child, "vrrpd starts one FIFO script; this one is left out");
                    }
                }
                "router_id" => self.skip(child, "ignored: the directors are named by their VRRP source addresses"),
                "notification_email" | "notification_email_from" | "smtp_server"
                | "smtp_helo_name" | "smtp_connect_timeout" | "smtp_alert"
                | "smtp_alert_vrrp" | "smtp_alert_checker" => {
                    self.skip(child, "ignored: no e-mail alerts; watch the state events and metrics instead");
                }
                "enable_script_security" => self.scheduling(child).script_security = true,
                // vrrpd runs its scripts as itself, root: what `script_user root` asks.
                "script_user" if child.words[1..].iter().all(|w| w == "root") => {}
                "script_user" => {
                    self.skip(child, "ignored: scripts run as vrrpd's user (root)");
                }
                "lvs_flush" | "lvs_flush_onstop" => self.skip(
                    child,
                    "ignored: directord leaves services it did not create alone (see [ipvs] own_whole_table)",
                ),
                _ => self.skip(child, "ignored"),
            }
        }
        Ok(())
    }

    /// keepalived writes its VRRP lines to both `notify_fifo` and `vrrp_notify_fifo`; vrrpd
    /// writes them to one FIFO, the first given.
    fn notify_fifo(&mut self, node: &Node) -> Result<(), ImportError> {
        let path = std::path::PathBuf::from(required_arg(node, 1, "a FIFO path")?);
        if node.words.len() > 2 {
            self.skip(
                node,
                "the FIFO's user and group are ignored: vrrpd's user owns it",
            );
        }
        let scheduling = self.scheduling(node);
        if scheduling.notify_fifo.is_none() {
            scheduling.notify_fifo = Some(path);
        } else {
            self.skip(node, "vrrpd writes to one FIFO; this one is left out");
        }
        if node.key() == "notify_fifo" {
            self.out.remarks.push(format!(
                "{}: notify_fifo gets vrrpd's VRRP lines; directord writes no LVS lines to it",
                node.at
            ));
        }
        Ok(())
    }

    /// `[vrrp]`'s own keys, started at the first global_defs directive that sets one.
    fn scheduling(&mut self, node: &Node) -> &mut super::emit::VrrpScheduling {
        let mark = self.out.mark();
        let block = self.out.block(
            node.at.clone(),
            super::emit::VrrpScheduling::default(),
            mark,
        );
        &mut self.out.vrrp_scheduling.get_or_insert(block).value
    }

    // ------------------------------------------------------------ virtual servers

    fn virtual_server(&mut self, node: &Node) -> Result<(), ImportError> {
        let mark = self.out.mark();
        let targets = match node.arg(1) {
            Some("group") => {
                let name = required_arg(node, 2, "a group name")?;
                match self.groups.get(name).cloned() {
                    Some(group) => {
                        let targets = self.expand_group(&group)?;
                        return self.group_service(node, targets, mark);
                    }
                    None => {
                        self.skip(
                            node,
                            "names a virtual_server_group that is not defined; not imported (keepalived ignores it too)",
                        );
                        return Ok(());
                    }
                }
            }
            Some("fwmark") => vec![Target::Mark(number(node, 2)?, None)],
            Some(_) => vec![Target::Addr(ip_port(node, 1)?)],
            None => {
                return Err(ImportError::new(
                    &node.at,
                    ErrorKind::BadValue,
                    "virtual_server needs an address, fwmark N or group NAME",
                ));
            }
        };
        let Some((settings, template)) = self.service_template(node)? else {
            return Ok(());
        };
        for target in targets {
            let mut service = template.value.clone();
            match target {
                Target::Addr(addr) => {
                    service.address = Some(addr);
                    if addr.port() == 0 && service.persistence.is_none() {
                        // keepalived: "zero port only valid for persistent services - setting"
                        service.persistence = Some(Duration::from_secs(360));
                    }
                }
                Target::Mark(mark, family) => {
                    service.fwmark = Some(mark);
                    let v6 = family.map_or_else(
                        || {
                            settings.family == Some(Family::Inet6)
                                || service.real.first().is_some_and(|r| r.address.is_ipv6())
                        },
                        |f| f == Family::Inet6,
                    );
                    service.family = v6.then_some(Family::Inet6);
                }
            }
            if let Err(reason) = self.fit_reals(&mut service, node) {
                self.skip(node, &reason.to_string());
                continue;
            }
            let key = match (service.address, service.fwmark) {
                (Some(addr), _) => format!("{} {addr}", service.protocol),
                (None, Some(m)) => format!("fwmark {m} {}", service.is_ipv6()),
                _ => unreachable!("a target always sets address or fwmark"),
            };
            if !self.service_keys.insert(key.clone()) {
                self.skip(
                    node,
                    &format!("{key} is defined again; only the first definition is imported"),
                );
                continue;
            }
            let mut block = self.out.block(node.at.clone(), service, mark);
            block.children = template.children.clone();
            block.comments = template.comments.clone();
            self.out.virtual_servers.push(block);
        }
        Ok(())
    }

    /// The block's settings and the service every target of it shares; none when it has no
    /// real server (keepalived ignores such a virtual server).
    fn service_template(
        &mut self,
        node: &Node,
    ) -> Result<Option<(ServiceSettings, super::emit::Block<VirtualServer>)>, ImportError> {
        let settings = self.service_settings(node)?;
        if settings.reals.is_empty() {
            self.skip(
                node,
                "has no real_server; not imported (keepalived ignores such a virtual server)",
            );
            return Ok(None);
        }
        let template = self.build_service(node, &settings)?;
        Ok(Some((settings, template)))
    }

    /// A `virtual_server group NAME` as one block whose `group` lists the members: one set of
    /// checks for all of them, as keepalived runs them.
    fn group_service(
        &mut self,
        node: &Node,
        targets: Vec<Target>,
        mark: usize,
    ) -> Result<(), ImportError> {
        let Some((settings, template)) = self.service_template(node)? else {
            return Ok(());
        };
        let mut service = template.value.clone();
        let mut addresses = Vec::new();
        for target in targets {
            let key = match target {
                Target::Addr(addr) => format!("{} {addr}", service.protocol),
                Target::Mark(m, family) => format!("fwmark {m} {:?}", family.or(settings.family)),
            };
            if !self.service_keys.insert(key.clone()) {
                self.skip(
                    node,
                    &format!("{key} is defined again; only the first definition is imported"),
                );
                continue;
            }
            match target {
                Target::Addr(addr) => {
                    if addr.port() == 0 && service.persistence.is_none() {
                        // keepalived: "zero port only valid for persistent services - setting"
                        service.persistence = Some(Duration::from_secs(360));
                    }
                    addresses.push(addr);
                }
                Target::Mark(m, family) => {
                    service.group.push(lvs_config::GroupMember::Fwmark(m));
                    if family.is_some() && service.family.is_none() {
                        service.family = family.filter(|f| *f == Family::Inet6);
                    }
                }
            }
        }
        let mut members = compact_ranges(&addresses);
        members.append(&mut service.group);
        service.group = members;
        if service.group.is_empty() {
            return Ok(());
        }
        if service
            .group
            .iter()
            .any(|m| matches!(m, lvs_config::GroupMember::Address { .. }))
        {
            service.family = None;
        } else if service.family.is_none()
            && (settings.family == Some(Family::Inet6)
                || service.real.first().is_some_and(|r| r.address.is_ipv6()))
        {
            service.family = Some(Family::Inet6);
        }
        if let Err(reason) = self.fit_reals(&mut service, node) {
            self.skip(node, &reason.to_string());
            return Ok(());
        }
        let mut block = self.out.block(node.at.clone(), service, mark);
        block.children = template.children;
        block.comments = template.comments;
        self.out.virtual_servers.push(block);
        Ok(())
    }

    /// Drops what the model cannot hold for this particular address (family mismatches,
    /// DR port rewrites); `Err` when nothing usable is left.
    fn fit_reals(&mut self, service: &mut VirtualServer, node: &Node) -> Result<(), NoRealFits> {
        let v6 = service.is_ipv6();
        let vport = service.virtual_port().filter(|p| *p != 0);
        let mut kept = Vec::new();
        for mut real in std::mem::take(&mut service.real) {
            if real.address.is_ipv6() != v6 {
                self.skip(
                    node,
                    &format!(
                        "real server {} is not the service's address family; left out",
                        real.address
                    ),
                );
                continue;
            }
            let method = real.forwarding.unwrap_or(service.forwarding);
            if let Some(vport) = vport
                && method != Forwarding::Nat
                && real.address.port() != 0
                && real.address.port() != vport
            {
                self.skip(
                    node,
                    &format!(
                        "real server {} on another port with {method} forwarding; the virtual port {vport} is used, as the kernel does",
                        real.address
                    ),
                );
                real.address.set_port(vport);
            }
            if method == Forwarding::Nat
                && real.address.port() == 0
                && let Some(vport) = vport
            {
                real.address.set_port(vport);
            }
            kept.push(real);
        }
        if kept.is_empty() {
            return Err(NoRealFits);
        }
        service.real = kept;
        if let Some(fallback) = service.fallback
            && (fallback.is_ipv6() != v6 || service.real.iter().any(|r| r.address == fallback))
        {
            self.skip(
                node,
                &format!(
                    "sorry_server {fallback} is another family or also a real server; left out"
                ),
            );
            service.fallback = None;
        }
        Ok(())
    }

    fn expand_group(&mut self, group: &Node) -> Result<Vec<Target>, ImportError> {
        const MAX_EXPANSION: usize = 1024;
        let mut targets = Vec::new();
        for entry in group.children() {
            if entry.key() == "fwmark" {
                let family = match entry.arg(2) {
                    Some("inet") => Some(Family::Inet),
                    Some("inet6") => Some(Family::Inet6),
                    _ => None,
                };
                targets.push(Target::Mark(number(entry, 1)?, family));
                continue;
            }
            let p = match entry.arg(1) {
                Some(text) => port(entry, text)?,
                None => 0,
            };
            let addresses = address_range(entry, entry.key())?;
            if addresses.len() > MAX_EXPANSION {
                self.skip(
                    entry,
                    &format!("a range of more than {MAX_EXPANSION} addresses; left out"),
                );
                continue;
            }
            targets.extend(
                addresses
                    .into_iter()
                    .map(|a| Target::Addr(SocketAddr::new(a, p))),
            );
        }
        Ok(targets)
    }

    fn service_settings(&mut self, node: &Node) -> Result<ServiceSettings, ImportError> {
        let mut s = ServiceSettings::default();
        for child in node.children() {
            match child.key() {
                "lb_algo" | "lvs_sched" => {
                    let name = required_arg(child, 1, "a scheduler")?;
                    match name.parse::<Scheduler>() {
                        Ok(scheduler) => s.scheduler = Some(scheduler),
                        Err(_) => self.skip(
                            child,
                            "the kernel scheduler is not one directord knows; keepalived's default wlc is used",
                        ),
                    }
                }
                "lb_kind" | "lvs_method" => {
                    s.forwarding = Some(self.forwarding(child)?);
                }
                "persistence_timeout" => {
                    let secs = match child.arg(1) {
                        Some(_) => number::<u64>(child, 1)?,
                        None => 360,
                    };
                    s.persistence = (secs > 0).then(|| Duration::from_secs(secs));
                }
                "persistence_granularity" => {
                    let text = required_arg(child, 1, "a netmask")?;
                    s.netmask = Some(
                        text.parse::<Netmask>()
                            .map_err(|e| ImportError::new(&child.at, ErrorKind::BadAddress, e))?,
                    );
                }
                "persistence_engine" => {
                    s.engine = Some(required_arg(child, 1, "an engine name")?.to_owned());
                }
                "protocol" => {
                    let name = required_arg(child, 1, "TCP, UDP or SCTP")?;
                    s.protocol = Some(name.to_ascii_lowercase().parse().map_err(
                        |e: lvs_config::UnknownName| {
                            ImportError::new(&child.at, ErrorKind::BadValue, e.to_string())
                        },
                    )?);
                }
                "ops" => s.flags.push((child.clone(), "ops".to_owned())),
                "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" | "flag-1" | "flag-2"
                | "flag-3" => s.flags.push((child.clone(), child.key().to_owned())),
                "alpha" => s.timing.alpha = Some(flag(child)?),
                "virtualhost" => {
                    s.virtualhost = Some(required_arg(child, 1, "a host name")?.to_owned());
                }
                "sorry_server" => s.sorry = Some(ip_port(child, 1)?),
                "sorry_server_lvs_method" => {
                    s.sorry_method = Some((child.clone(), self.forwarding(child)?));
                }
                "inhibit_on_failure" => s.inhibit = Some(flag(child)?),
                "ip_family" => {
                    s.family = match child.arg(1) {
                        Some("inet") => Some(Family::Inet),
                        Some("inet6") => Some(Family::Inet6),
                        _ => {
                            return Err(ImportError::new(
                                &child.at,
                                ErrorKind::BadValue,
                                "ip_family is inet or inet6",
                            ));
                        }
                    }
                }
                "quorum" => s.quorum = Some(number_between(child, 1, "quorum", 1u32, u32::MAX)?),
                "hysteresis" => s.hysteresis = Some(number(child, 1)?),
                "quorum_up" => s.quorum_up = Some(self.notify_script(child)?),
                "quorum_down" => s.quorum_down = Some(self.notify_script(child)?),
                "omega" => s.omega = flag(child)?,
                "ha_suspend" => s.ha_suspend = flag(child)?,
                "smtp_alert" | "snmp_name" => self.skip(child, "ignored"),
                "sorry_server_inhibit" => self.skip(
                    child,
                    "the sorry server is removed, not set to weight 0, when real servers return",
                ),
                "real_server" => s.reals.push(child.clone()),
                key if checks::timing_key(key) => s.timing.read(child, self)?,
                _ => self.skip(child, "ignored"),
            }
        }
        Ok(s)
    }

    /// A checker notify script (`notify_up`, `quorum_down`...): the command as keepalived
    /// runs it; a user and group after it are not taken (scripts run as directord's user).
    fn notify_script(&mut self, node: &Node) -> Result<String, ImportError> {
        let command = required_arg(node, 1, "a script")?.to_owned();
        if node.words.len() > 2 {
            self.skip(
                node,
                "the user and group are not taken: the script runs as directord's user",
            );
        }
        Ok(command)
    }

    fn forwarding(&mut self, node: &Node) -> Result<Forwarding, ImportError> {
        let method = match required_arg(node, 1, "NAT, DR or TUN")? {
            "NAT" => Forwarding::Nat,
            "DR" => Forwarding::Dr,
            "TUN" => Forwarding::Tun,
            other => {
                return Err(ImportError::new(
                    &node.at,
                    ErrorKind::BadValue,
                    format!("{} is NAT, DR or TUN, got {other:?}", node.key()),
                ));
            }
        };
        if node.words.len() > 2 && node.words[2..] != ["type", "ipip"] {
            self.skip(
                node,
                "the tunnel type and checksum options are not set; a plain IPIP tunnel is used",
            );
        }
        Ok(method)
    }

    /// The service as every target of the block shares it; address or fwmark is set later.
    /// The service's flags that apply to its scheduler and protocol, each once.
    fn service_flags(
        &mut self,
        s: &ServiceSettings,
        scheduler: Scheduler,
        protocol: Protocol,
    ) -> Vec<ServiceFlag> {
        let mut flags = Vec::new();
        for (flag_node, name) in &s.flags {
            let parsed = match name.as_str() {
                "flag-1" | "flag-2" | "flag-3" => sched_flag(name, scheduler),
                other => other.parse::<ServiceFlag>().ok(),
            };
            match parsed {
                Some(ServiceFlag::OnePacket) if protocol != Protocol::Udp => self.skip(
                    flag_node,
                    "one-packet scheduling needs UDP; left out (keepalived resets it too)",
                ),
                Some(f @ (ServiceFlag::ShFallback | ServiceFlag::ShPort))
                    if scheduler != Scheduler::Sh =>
                {
                    self.skip(
                        flag_node,
                        &format!("{f} applies to the sh scheduler only; left out"),
                    );
                }
                Some(f @ (ServiceFlag::MhFallback | ServiceFlag::MhPort))
                    if scheduler != Scheduler::Mh =>
                {
                    self.skip(
                        flag_node,
                        &format!("{f} applies to the mh scheduler only; left out"),
                    );
                }
                Some(f) if !flags.contains(&f) => flags.push(f),
                Some(_) => {}
                None => self.skip(flag_node, "no such flag for this scheduler; left out"),
            }
        }
        flags
    }

    /// The real servers, each once, where each came from, and the service's on-failure
    /// behaviour: the real servers' inhibit_on_failure when they agree, else the majority's,
    /// the others carrying their own.
    fn service_reals(
        &mut self,
        s: &ServiceSettings,
    ) -> Result<(Vec<RealServer>, Vec<Origin>, bool), ImportError> {
        let mut reals = Vec::new();
        let mut children = Vec::new();
        let mut inhibits = Vec::new();
        let mut seen = HashSet::new();
        for real_node in &s.reals {
            let Some(real) = self.real_server(real_node, s)? else {
                continue;
            };
            if !seen.insert(real.server.address) {
                self.skip(
                    real_node,
                    "the same real server is listed twice; only the first is imported",
                );
                continue;
            }
            children.push(real_node.at.clone());
            inhibits.push((real_node.clone(), real.inhibit));
            reals.push(real.server);
        }
        let majority = inhibits.iter().filter(|(_, i)| *i).count() * 2 > inhibits.len();
        let inhibit = if inhibits.iter().all(|(_, i)| *i == inhibits[0].1) && !inhibits.is_empty() {
            inhibits[0].1
        } else {
            majority
        };
        // The odd ones out keep their own, as keepalived's per-real inhibit_on_failure.
        for (real, (_, own)) in reals.iter_mut().zip(&inhibits) {
            if *own != inhibit {
                real.on_failure = Some(if *own {
                    OnFailure::Quiescent
                } else {
                    OnFailure::Remove
                });
            }
        }
        Ok((reals, children, inhibit))
    }

    fn build_service(
        &mut self,
        node: &Node,
        s: &ServiceSettings,
    ) -> Result<super::Block<VirtualServer>, ImportError> {
        let scheduler = s.scheduler.unwrap_or(Scheduler::Wlc);
        let mut comments = Vec::new();
        if s.scheduler.is_none() {
            comments.push("lb_algo not given: keepalived's default wlc".to_owned());
        }
        let is_fwmark = node.arg(1) == Some("fwmark");
        let protocol = match s.protocol {
            Some(p) => p,
            None if is_fwmark => Protocol::Tcp,
            None => {
                comments.push("protocol not given: keepalived creates a UDP service".to_owned());
                Protocol::Udp
            }
        };
        let flags = self.service_flags(s, scheduler, protocol);
        let forwarding = s.forwarding.unwrap_or_else(|| {
            comments.push("lb_kind not given: keepalived's default NAT".to_owned());
            Forwarding::Nat
        });
        if let Some((method_node, method)) = &s.sorry_method
            && *method != forwarding
        {
            self.skip(
                method_node,
                &format!("the sorry server uses the service's {forwarding} forwarding"),
            );
        }
        let (mut reals, children, inhibit) = self.service_reals(s)?;
        // One check for the service when every real server has the same one.
        let service_check = match reals.first().and_then(|r| r.check.clone()) {
            Some(first) if reals.iter().all(|r| r.check.as_ref() == Some(&first)) => {
                for real in &mut reals {
                    real.check = None;
                }
                Some(first)
            }
            _ => None,
        };
        let mut service = VirtualServer {
            name: None,
            address: None,
            fwmark: None,
            family: None,
            protocol,
            scheduler,
            forwarding,
            persistence: s.persistence,
            netmask: s.netmask.filter(|_| s.persistence.is_some()),
            flags,
            persistence_engine: s.engine.clone().filter(|_| s.persistence.is_some()),
            on_failure: if inhibit {
                OnFailure::Quiescent
            } else {
                OnFailure::Remove
            },
            fallback: s.sorry,
            check: service_check.map(|c| *c),
            real: reals,
            quorum: s.quorum.unwrap_or(1),
            hysteresis: s.hysteresis.unwrap_or(0),
            quorum_up: s.quorum_up.clone(),
            quorum_down: s.quorum_down.clone(),
            omega: s.omega,
            ha_suspend: s.ha_suspend,
            group: Vec::new(),
            group_of: None,
        };
        if s.netmask.is_some() && s.persistence.is_none() {
            comments.push(
                "persistence_granularity without persistence_timeout has no effect; left out"
                    .to_owned(),
            );
        }
        settle_forwarding(&mut service);
        let mut block = self.out.block(node.at.clone(), service, self.out.mark());
        block.children = children;
        block.comments = comments;
        Ok(block)
    }

    fn real_server(
        &mut self,
        node: &Node,
        s: &ServiceSettings,
    ) -> Result<Option<ConvertedReal>, ImportError> {
        let address = ip_port(node, 1)?;
        let mut weight = 1u32;
        let mut forwarding = None;
        let mut upper = 0;
        let mut lower = 0;
        let mut inhibit = s.inhibit.unwrap_or(false);
        let mut timing = s.timing.clone();
        let mut virtualhost = s.virtualhost.clone();
        let mut checkers = Vec::new();
        let (mut notify_up, mut notify_down) = (None, None);
        for child in node.children() {
            match child.key() {
                "weight" => weight = number_between(child, 1, "weight", 0i64, 65535)? as u32,
                "lvs_method" => forwarding = Some(self.forwarding(child)?),
                "uthreshold" => upper = number(child, 1)?,
                "lthreshold" => lower = number(child, 1)?,
                "inhibit_on_failure" => inhibit = flag(child)?,
                "virtualhost" => {
                    virtualhost = Some(required_arg(child, 1, "a host name")?.to_owned());
                }
                "notify_up" => notify_up = Some(self.notify_script(child)?),
                "notify_down" => notify_down = Some(self.notify_script(child)?),
                "smtp_alert" | "snmp_name" => self.skip(child, "ignored"),
                key if checks::timing_key(key) => timing.read(child, self)?,
                key if checks::is_checker(key) => checkers.push(child.clone()),
                _ => self.skip(child, "ignored"),
            }
        }
        let mut check = None;
        for checker in &checkers {
            if check.is_some() {
                self.skip(
                    checker,
                    "only one check per real server: the first supported one is used",
                );
                continue;
            }
            check = checks::convert(self, checker, &timing, virtualhost.as_deref(), address)?;
        }
        Ok(Some(ConvertedReal {
            server: RealServer {
                address,
                weight,
                forwarding,
                upper_threshold: upper,
                lower_threshold: lower,
                check: check.map(Box::new),
                on_failure: None,
                notify_up,
                notify_down,
            },
            inhibit,
        }))
    }

    fn sync_daemon_section(&mut self) {
        let entries = std::mem::take(&mut self.sync_daemon);
        let mut first = true;
        for (at, interface, instance, options) in entries {
            let node = Node {
                words: [
                    vec![
                        "lvs_sync_daemon".to_owned(),
                        interface.clone(),
                        instance.clone(),
                    ],
                    options.clone(),
                ]
                .concat(),
                at: at.clone(),
                children: None,
            };
            if !first {
                self.skip(&node, "only one [sync] section exists; the first is used");
                continue;
            }
            let Some(vrid) = self
                .out
                .instances
                .iter()
                .find(|b| b.value.name == instance)
                .map(|b| b.value.vrid)
            else {
                self.skip(
                    &node,
                    "names a VRRP instance that was not imported; no [sync] section",
                );
                continue;
            };
            first = false;
            let mark = self.out.mark();
            let mut sync = lvs_config::Sync {
                interface,
                syncid: vrid,
                role: lvs_config::SyncRole::Follow(instance),
                group: SocketAddr::from(([224, 0, 0, 81], 8848)),
                version: 1,
                maxlen: 1472,
                ttl: 1,
                peers: Vec::new(),
                unicast_port: None,
                resync_rate: 100_000,
                group_sources: None,
                max_entries: 2_000_000,
                key_file: None,
            };
            let mut comments = vec![
                "syncid defaults to the instance's virtual_router_id, as in keepalived".to_owned(),
            ];
            let mut words = options.iter();
            while let Some(word) = words.next() {
                let value = words.next().map(String::as_str).unwrap_or("");
                let ok = match word.as_str() {
                    "id" => value.parse().map(|v| sync.syncid = v).is_ok(),
                    "maxlen" => value
                        .parse::<u16>()
                        .ok()
                        .filter(|v| (64..=65507).contains(v))
                        .map(|v| sync.maxlen = v)
                        .is_some(),
                    "port" => value.parse().map(|p| sync.group.set_port(p)).is_ok(),
                    "ttl" => value.parse().map(|t| sync.ttl = t).is_ok(),
                    "group" => value.parse().map(|g| sync.group.set_ip(g)).is_ok(),
                    _ => false,
                };
                if !ok {
                    self.out.unsupported(
                        &at,
                        format!("lvs_sync_daemon {word} {value}"),
                        "left at the [sync] default",
                    );
                }
            }
            if word_given(&options, "id") {
                comments.clear();
            }
            let mut block = self.out.block(at, sync, mark);
            block.comments = comments;
            self.out.sync = Some(block);
        }
    }
}

fn word_given(options: &[String], word: &str) -> bool {
    options.iter().step_by(2).any(|w| w == word)
}

enum Target {
    Addr(SocketAddr),
    Mark(u32, Option<Family>),
}

#[derive(Default)]
struct ServiceSettings {
    scheduler: Option<Scheduler>,
    forwarding: Option<Forwarding>,
    persistence: Option<Duration>,
    netmask: Option<Netmask>,
    engine: Option<String>,
    protocol: Option<Protocol>,
    flags: Vec<(Node, String)>,
    virtualhost: Option<String>,
    sorry: Option<SocketAddr>,
    sorry_method: Option<(Node, Forwarding)>,
    inhibit: Option<bool>,
    quorum: Option<u32>,
    hysteresis: Option<u32>,
    quorum_up: Option<String>,
    quorum_down: Option<String>,
    omega: bool,
    ha_suspend: bool,
    family: Option<Family>,
    timing: checks::Timing,
    reals: Vec<Node>,
}

struct ConvertedReal {
    server: RealServer,
    inhibit: bool,
}

/// A virtual_server_group address entry: `A`, `A-LAST` (last byte, or last 16 bits for IPv6),
/// `A-B` (two full addresses) or `A/prefix`.
fn address_range(node: &Node, text: &str) -> Result<Vec<IpAddr>, ImportError> {
    let bad = || {
        ImportError::new(
            &node.at,
            ErrorKind::BadAddress,
            format!("invalid address or range {text:?}"),
        )
    };
    if let Ok(single) = text.parse::<IpAddr>() {
        return Ok(vec![single]);
    }
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net.hosts().take(1 << 16).collect());
    }
    let (start, end) = text.rsplit_once('-').ok_or_else(bad)?;
    let start: IpAddr = start.parse().map_err(|_| bad())?;
    let last: u128 = match (start, end.parse::<IpAddr>()) {
        (_, Ok(full)) if full.is_ipv4() == start.is_ipv4() => to_u128(full),
        (IpAddr::V4(v4), _) => {
            let octet: u8 = end.parse().map_err(|_| bad())?;
            u128::from(u32::from(v4) & !0xff | u32::from(octet))
        }
        (IpAddr::V6(v6), _) => {
            let word = u16::from_str_radix(end, 16).map_err(|_| bad())?;
            u128::from(v6) & !0xffff | u128::from(word)
        }
    };
    let first = to_u128(start);
    if last < first {
        return Err(ImportError::new(
            &node.at,
            ErrorKind::BadAddress,
            format!("range {text:?} ends before it starts"),
        ));
    }
    Ok((first..=last.min(first + (1 << 16)))
        .map(|n| match start {
            IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(n as u32)),
            IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(n)),
        })
        .collect())
}

/// Group members from addresses in keepalived's order: runs of consecutive IPv4 addresses
/// on one port within one /24 become a range, as keepalived's `A-LAST port` wrote them.
fn compact_ranges(addresses: &[SocketAddr]) -> Vec<lvs_config::GroupMember> {
    let mut members: Vec<lvs_config::GroupMember> = Vec::new();
    for &address in addresses {
        if let (Some(lvs_config::GroupMember::Address { first, last }), IpAddr::V4(next)) =
            (members.last_mut(), address.ip())
            && let IpAddr::V4(start) = first.ip()
            && first.port() == address.port()
        {
            let end = match last {
                Some(IpAddr::V4(end)) => *end,
                _ => start,
            };
            let follows = u32::from(end).checked_add(1) == Some(u32::from(next));
            if follows && start.octets()[..3] == next.octets()[..3] {
                *last = Some(IpAddr::V4(next));
                continue;
            }
        }
        members.push(lvs_config::GroupMember::Address {
            first: address,
            last: None,
        });
    }
    members
}

fn to_u128(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A service none of whose real servers the model can hold: it is left out of the import.
#[derive(Debug, thiserror::Error)]
#[error("no real server fits the service; not imported")]
struct NoRealFits;
