//! Semantic rules: what TOML types cannot say. Each rule names the key path of the value at
//! fault, so the operator is sent to the line to change.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use crate::diagnostic::KeyPath;
use crate::model::*;
use crate::path;
use crate::values::{CheckType, Duration, Family, Forwarding, RouteType, Scheduler, ServiceFlag};

pub(crate) struct Issue {
    pub path: KeyPath,
    pub message: String,
}

#[derive(Default)]
struct Issues(Vec<Issue>);

impl Issues {
    fn add(&mut self, path: KeyPath, message: impl Into<String>) {
        self.0.push(Issue {
            path,
            message: message.into(),
        });
    }
}

pub(crate) fn validate(config: &Config) -> Vec<Issue> {
    let mut issues = Issues::default();
    control(&config.control, &mut issues);
    sysctls(&config.ipvs, &mut issues);
    vrrp(&config.vrrp, &mut issues);
    crate::bfd::validate(&config.bfd, &mut |path, message| issues.add(path, message));
    crate::bfd::validate_tracking(&config.bfd, &config.vrrp.instance, &mut |path, message| {
        issues.add(path, message);
    });
    virtual_servers(&config.virtual_servers, &mut issues);
    track_services(config, &mut issues);
    if let Some(sync) = &config.sync {
        sync_section(sync, &config.vrrp, &mut issues);
    }
    if let Some(feedback) = &config.feedback {
        feedback_section(feedback, &config.virtual_servers, &mut issues);
    }
    if let Some(agent) = &config.agent {
        agent_section(agent, &mut issues);
    }
    for (path, message) in crate::announce::problems(config) {
        issues.add(path, message);
    }
    issues.0
}

fn family_name(is_ipv6: bool) -> &'static str {
    if is_ipv6 { "IPv6" } else { "IPv4" }
}

fn control(control: &Control, issues: &mut Issues) {
    if control.metrics.is_some_and(|addr| addr.port() == 0) {
        issues.add(path!["control", "metrics"], "metrics port must not be 0");
    }
    if let Some(group) = &control.group {
        // What getgrnam can name: whether it exists is checked by each daemon at start.
        let valid = !group.is_empty()
            && group.len() <= 32
            && !group.starts_with('-')
            && group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            issues.add(
                path!["control", "group"],
                format!(
                    "{group:?} is not a group name (letters, digits, '_', '-', '.'; at most 32)"
                ),
            );
        }
    }
}

/// net.ipv4.vs.* as a 6.1 kernel lists them; strings such as est_cpulist are left to sysctl(8).
const INTEGER_SYSCTLS: &[&str] = &[
    "am_droprate",
    "amemthresh",
    "backup_only",
    "cache_bypass",
    "conn_reuse_mode",
    "conntrack",
    "drop_entry",
    "drop_packet",
    "est_nice",
    "expire_nodest_conn",
    "expire_quiescent_template",
    "ignore_tunneled",
    "lblc_expiration",
    "lblcr_expiration",
    "nat_icmp_send",
    "pmtu_disc",
    "run_estimation",
    "schedule_icmp",
    "secure_tcp",
    "sloppy_sctp",
    "sloppy_tcp",
    "sync_persist_mode",
    "sync_ports",
    "sync_qlen_max",
    "sync_refresh_period",
    "sync_retries",
    "sync_sock_size",
    "sync_version",
];
const PAIR_SYSCTLS: &[&str] = &["sync_threshold"];

fn sysctls(ipvs: &Ipvs, issues: &mut Issues) {
    let verify = ipvs.verify_interval;
    if !verify.is_zero() && verify.get() < std::time::Duration::from_secs(1) {
        issues.add(
            path!["ipvs", "verify_interval"],
            "verify_interval is 0 (never) or at least 1s: each verify reads the whole table",
        );
    }
    for (name, value) in &ipvs.sysctl {
        let at = path!["ipvs", "sysctl", name.as_str()];
        match value {
            SysctlValue::Int(_) if INTEGER_SYSCTLS.contains(&name.as_str()) => {}
            SysctlValue::List(pair) if PAIR_SYSCTLS.contains(&name.as_str()) => {
                if pair.len() != 2 {
                    issues.add(at, format!("{name} takes two numbers, e.g. [3, 50]"));
                }
            }
            _ if PAIR_SYSCTLS.contains(&name.as_str()) => {
                issues.add(at, format!("{name} takes two numbers, e.g. [3, 50]"));
            }
            _ if INTEGER_SYSCTLS.contains(&name.as_str()) => {
                issues.add(at, format!("{name} takes one integer"));
            }
            _ => issues.add(at, format!("unknown IPVS sysctl net.ipv4.vs.{name}")),
        }
    }
}

// ---------------------------------------------------------------- vrrp

fn vrrp(vrrp: &Vrrp, issues: &mut Issues) {
    let mut names = HashSet::new();
    let mut routers = HashMap::new();
    let mut vips: HashMap<IpAddr, &str> = HashMap::new();
    let mut vmacs = HashMap::new();
    for (i, instance) in vrrp.instance.iter().enumerate() {
        let at = path!["vrrp", "instance", i];
        if instance.name.is_empty() {
            issues.add(at.join("name"), "instance name must not be empty");
        } else if !names.insert(instance.name.as_str()) {
            issues.add(
                at.join("name"),
                format!("duplicate VRRP instance name {:?}", instance.name),
            );
        }
        if instance.interface.is_empty() {
            issues.add(at.join("interface"), "interface must not be empty");
        }
        vrrp_instance_numbers(instance, &at, issues);
        let Some(is_ipv6) = vrrp_addresses(instance, &at, issues) else {
            continue;
        };
        virtual_mac_interface(instance, &at, &mut vmacs, issues);

        let router = (instance.interface.as_str(), instance.vrid, is_ipv6);
        if let Some(other) = routers.insert(router, instance.name.as_str()) {
            issues.add(
                at.join("vrid"),
                format!(
                    "vrid {} on {} ({}) is already used by instance {other:?}",
                    instance.vrid,
                    instance.interface,
                    family_name(is_ipv6)
                ),
            );
        }
        let all =
            instance
                .virtual_addresses
                .iter()
                .enumerate()
                .map(|(j, vip)| (at.join("virtual_addresses").join(j), vip.addr()))
                .chain(
                    instance.vips.iter().enumerate().map(|(j, vip)| {
                        (at.join("vips").join(j).join("address"), vip.address.addr())
                    }),
                );
        for (path, vip) in all {
            if let Some(other) = vips.insert(vip, instance.name.as_str()) {
                let message = if other == instance.name {
                    format!("virtual address {vip} is listed twice")
                } else {
                    format!("virtual address {vip} is also held by instance {other:?}")
                };
                issues.add(path, message);
            }
        }
    }
    for (i, instance) in vrrp.instance.iter().enumerate() {
        notify_scripts(
            instance.notify_scripts(),
            &path!["vrrp", "instance", i],
            issues,
        );
    }
    for (g, group) in vrrp.sync_group.iter().enumerate() {
        notify_scripts(
            group.notify_scripts(),
            &path!["vrrp", "sync_group", g],
            issues,
        );
    }
    notify_fifo(vrrp, issues);
    sync_groups(vrrp, issues);
    if vrrp.rt_priority.is_some_and(|p| !(1..=99).contains(&p)) {
        issues.add(
            path!["vrrp", "rt_priority"],
            "rt_priority is a SCHED_RR priority, 1..99",
        );
    }
    if vrrp.rlimit_rttime.get() < std::time::Duration::from_micros(2) {
        issues.add(
            path!["vrrp", "rlimit_rttime"],
            "rlimit_rttime must be at least 2us (keepalived's minimum)",
        );
    }
    let track = &vrrp.track_directord;
    if !(-254..=0).contains(&track.weight) {
        issues.add(
            path!["vrrp", "track_directord", "weight"],
            "track_directord weight is 0 (FAULT while directord is down) or -254..-1 (priority lowered by that)",
        );
    }
    for (key, value) in [("interval", track.interval), ("timeout", track.timeout)] {
        if value.get() < std::time::Duration::from_millis(10) {
            issues.add(
                path!["vrrp", "track_directord", key],
                format!("track_directord {key} must be at least 10ms"),
            );
        }
    }
}

fn notify_scripts(scripts: NotifyScripts<'_>, at: &KeyPath, issues: &mut Issues) {
    for (key, command) in scripts.keyed() {
        if let Some(command) = command
            && command_words(command).is_none()
        {
            issues.add(
                at.join(key),
                format!(
                    "{key} {command:?} is not a command line (empty, or a quote is not closed)"
                ),
            );
        }
    }
}

fn notify_fifo(vrrp: &Vrrp, issues: &mut Issues) {
    if let Some(path) = &vrrp.notify_fifo
        && !path.is_absolute()
    {
        issues.add(
            path!["vrrp", "notify_fifo"],
            "notify_fifo must be an absolute path",
        );
    }
    if let Some(script) = &vrrp.notify_fifo_script {
        let at = path!["vrrp", "notify_fifo_script"];
        if vrrp.notify_fifo.is_none() {
            issues.add(
                at,
                "notify_fifo_script needs notify_fifo (the FIFO it reads)",
            );
        } else if command_words(script).is_none() {
            issues.add(
                at,
                format!("notify_fifo_script {script:?} is not a command line"),
            );
        }
    }
}

/// The macvlan name must be one the kernel accepts and belong to one instance only.
fn virtual_mac_interface<'a>(
    instance: &'a VrrpInstance,
    at: &KeyPath,
    vmacs: &mut HashMap<String, &'a str>,
    issues: &mut Issues,
) {
    let at = at.join("virtual_mac_interface");
    let Some(name) = instance.virtual_mac_name() else {
        if instance.virtual_mac_interface.is_some() {
            issues.add(at, "virtual_mac_interface needs virtual_mac = true");
        }
        return;
    };
    // IFNAMSIZ less the terminating NUL; '/' and whitespace cannot appear in a device name.
    if !interface_name_ok(&name) {
        issues.add(
            at,
            format!(
                "{name:?} is not a valid interface name (1 to 15 bytes, no '/', ':' or spaces)"
            ),
        );
    } else if name == instance.interface {
        issues.add(
            at,
            "the macvlan needs a name of its own, not the base interface's",
        );
    } else if let Some(other) = vmacs.insert(name.clone(), instance.name.as_str()) {
        issues.add(
            at,
            format!("macvlan {name:?} is also used by instance {other:?}"),
        );
    }
}

fn vrrp_instance_numbers(instance: &VrrpInstance, at: &KeyPath, issues: &mut Issues) {
    if instance.vrid == 0 {
        issues.add(at.join("vrid"), "vrid must be between 1 and 255");
    }
    match instance.priority {
        0 => issues.add(
            at.join("priority"),
            "priority 0 is reserved for a master that is leaving; use 1..254",
        ),
        255 if !instance.preempt => issues.add(
            at.join("preempt"),
            "priority 255 marks the address owner, which always preempts; remove preempt = false",
        ),
        _ => {}
    }
    let interval = instance.advert_interval.get();
    match instance.version {
        2 => {
            if interval.subsec_nanos() != 0 || interval.as_secs() == 0 || interval.as_secs() > 255 {
                issues.add(
                    at.join("advert_interval"),
                    "VRRPv2 advert_interval is whole seconds from 1s to 255s; use version = 3 for shorter intervals",
                );
            }
        }
        3 => {
            let centis = interval.as_millis();
            if !interval.as_nanos().is_multiple_of(10_000_000) || centis == 0 || centis > 40_950 {
                issues.add(
                    at.join("advert_interval"),
                    "VRRPv3 advert_interval is a multiple of 10ms from 10ms to 40.95s",
                );
            }
            if instance
                .auth
                .as_ref()
                .is_some_and(|auth| *auth != Auth::None)
            {
                issues.add(
                    at.join("auth"),
                    "VRRPv3 has no authentication (RFC 5798); remove auth",
                );
            }
        }
        other => issues.add(
            at.join("version"),
            format!("VRRP version {other} does not exist; use 2 or 3"),
        ),
    }
    if let Some(Auth::Pass { password }) = &instance.auth
        && (password.is_empty() || password.len() > 8)
    {
        issues.add(
            at.join("auth").join("password"),
            "a VRRPv2 password is 1 to 8 bytes",
        );
    }
    if instance.preempt_delay.get().as_secs() > 1000 {
        issues.add(
            at.join("preempt_delay"),
            "preempt_delay above 1000s is refused (keepalived's limit)",
        );
    }
    if instance.garp.repeat == 0 {
        issues.add(
            at.join("garp").join("repeat"),
            "garp repeat must be at least 1",
        );
    }
    if instance.garp.refresh.is_some_and(Duration::is_zero) {
        issues.add(
            at.join("garp").join("refresh"),
            "garp refresh must be above 0s; leave it out to disable",
        );
    }
    for (j, track) in instance.track_interfaces.iter().enumerate() {
        track_weight(track.weight, &at.join("track_interfaces").join(j), issues);
    }
    for (j, script) in instance.track_scripts.iter().enumerate() {
        let at = at.join("track_scripts").join(j);
        if script.command.trim().is_empty() {
            issues.add(at.join("command"), "command must not be empty");
        }
        if script.interval.is_zero() {
            issues.add(at.join("interval"), "interval must be above 0s");
        }
        if script.rise == 0 {
            issues.add(at.join("rise"), "rise must be at least 1");
        }
        if script.fall == 0 {
            issues.add(at.join("fall"), "fall must be at least 1");
        }
        track_weight(script.weight, &at, issues);
    }
    for (j, track) in instance.track_processes.iter().enumerate() {
        track_weight(track.weight, &at.join("track_processes").join(j), issues);
    }
}

/// Tracked services must be named virtual servers, and vrrpd must be asking directord.
fn track_services(config: &Config, issues: &mut Issues) {
    let names: HashSet<&str> = config
        .virtual_servers
        .iter()
        .filter_map(|vs| vs.name.as_deref())
        .collect();
    for (i, instance) in config.vrrp.instance.iter().enumerate() {
        for (j, track) in instance.track_services.iter().enumerate() {
            let at = path!["vrrp", "instance", i, "track_services", j];
            if !names.contains(track.service.as_str()) {
                issues.add(
                    at.join("service"),
                    format!("no virtual server is named {:?}", track.service),
                );
            }
            if !config.tracks_directord() {
                issues.add(
                    at.clone(),
                    "tracking a service needs [vrrp] track_directord on: vrrpd learns quorum from directord",
                );
            }
            track_weight(track.weight, &at, issues);
        }
    }
}

fn track_weight(weight: i32, at: &KeyPath, issues: &mut Issues) {
    if !(-254..=254).contains(&weight) {
        issues.add(
            at.join("weight"),
            "tracking weight must be between -254 and 254",
        );
    }
}

/// keepalived's address options: a device name the kernel takes, a label the kernel takes
/// for that device, a broadcast only for IPv4.
fn vip_options(instance: &VrrpInstance, at: &KeyPath, issues: &mut Issues) {
    for (j, vip) in instance.vips.iter().enumerate() {
        let at = at.join("vips").join(j);
        let dev = vip.dev.as_deref().unwrap_or(&instance.interface);
        if !interface_name_ok(dev) {
            issues.add(
                at.join("dev"),
                format!("{dev:?} is not an interface name (1 to 15 bytes, no '/', ':' or spaces)"),
            );
        }
        if let Some(label) = &vip.label {
            let ok = label.len() <= 15
                && (label == dev
                    || label
                        .strip_prefix(dev)
                        .is_some_and(|rest| rest.starts_with(':')));
            if !ok {
                issues.add(
                    at.join("label"),
                    format!(
                        "label {label:?} must be {dev:?} or start with \"{dev}:\", at most 15 bytes"
                    ),
                );
            }
        }
        if vip.broadcast.is_some() && vip.address.addr().is_ipv6() {
            issues.add(at.join("broadcast"), "broadcast is for IPv4 addresses");
        }
    }
}

/// Every address of a route or rule of one family; a gateway only on a unicast route.
fn routes_and_rules(instance: &VrrpInstance, at: &KeyPath, issues: &mut Issues) {
    for (j, route) in instance.routes.iter().enumerate() {
        let at = at.join("routes").join(j);
        let v6 = route.to.addr().is_ipv6();
        for (key, addr) in [("via", route.via), ("src", route.src)] {
            if addr.is_some_and(|a| a.is_ipv6() != v6) {
                issues.add(
                    at.join(key),
                    format!("{key} must be {} like to", family_name(v6)),
                );
            }
        }
        if route.kind != RouteType::Unicast && (route.via.is_some() || route.dev.is_some()) {
            issues.add(
                at.join("type"),
                format!("a {} route has no via or dev", route.kind),
            );
        }
        if route.dev.as_deref().is_some_and(|d| !interface_name_ok(d)) {
            issues.add(
                at.join("dev"),
                "not an interface name (1 to 15 bytes, no '/', ':' or spaces)",
            );
        }
        if route.table.is_some_and(|t| t == 0 || t == 255) {
            issues.add(
                at.join("table"),
                "table 0 is none and 255 the kernel's local table",
            );
        }
    }
    for (j, rule) in instance.rules.iter().enumerate() {
        let at = at.join("rules").join(j);
        if let (Some(from), Some(to)) = (rule.from, rule.to)
            && from.addr().is_ipv6() != to.addr().is_ipv6()
        {
            issues.add(at.join("to"), "from and to must be of one family");
        }
        if rule.table == 0 || rule.table == 255 {
            issues.add(
                at.join("table"),
                "table 0 is none and 255 the kernel's local table",
            );
        }
    }
}

fn interface_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && !name.contains(['/', ':'])
        && !name.contains(char::is_whitespace)
}

/// Checks the address lists; returns the instance's family when it has a consistent one.
fn vrrp_addresses(instance: &VrrpInstance, at: &KeyPath, issues: &mut Issues) -> Option<bool> {
    let advertised: Vec<(KeyPath, IpNet)> = instance
        .virtual_addresses
        .iter()
        .enumerate()
        .map(|(j, vip)| (at.join("virtual_addresses").join(j), *vip))
        .chain(
            instance
                .vips
                .iter()
                .enumerate()
                .filter(|(_, vip)| vip.advertised)
                .map(|(j, vip)| (at.join("vips").join(j).join("address"), vip.address)),
        )
        .collect();
    let Some((_, first)) = advertised.first() else {
        issues.add(
            at.join("virtual_addresses"),
            "an instance needs at least one advertised virtual address",
        );
        return None;
    };
    let is_ipv6 = matches!(first, IpNet::V6(_));
    for (path, vip) in &advertised {
        let vip_ipv6 = matches!(vip, IpNet::V6(_));
        if instance.version == 2 && vip_ipv6 {
            issues.add(
                path.clone(),
                "VRRPv2 carries IPv4 addresses only; use version = 3 for IPv6",
            );
            return None;
        }
        if vip_ipv6 != is_ipv6 {
            issues.add(
                path.clone(),
                "an instance's virtual addresses must all be IPv4 or all IPv6 (RFC 5798); use one instance per family",
            );
            return None;
        }
    }
    vip_options(instance, at, issues);
    routes_and_rules(instance, at, issues);
    for (j, peer) in instance.unicast_peers.iter().enumerate() {
        if peer.is_ipv6() != is_ipv6 {
            issues.add(
                at.join("unicast_peers").join(j),
                format!(
                    "unicast peer {peer} is not {} like the virtual addresses",
                    family_name(is_ipv6)
                ),
            );
        }
    }
    if let Some(source) = instance.source_address
        && source.is_ipv6() != is_ipv6
    {
        issues.add(
            at.join("source_address"),
            format!(
                "source_address {source} is not {} like the virtual addresses",
                family_name(is_ipv6)
            ),
        );
    }
    Some(is_ipv6)
}

fn sync_groups(vrrp: &Vrrp, issues: &mut Issues) {
    let instances: HashSet<&str> = vrrp.instance.iter().map(|i| i.name.as_str()).collect();
    let mut names = HashSet::new();
    let mut member_of: HashMap<&str, &str> = HashMap::new();
    for (g, group) in vrrp.sync_group.iter().enumerate() {
        let at = path!["vrrp", "sync_group", g];
        if !names.insert(group.name.as_str()) {
            issues.add(
                at.join("name"),
                format!("duplicate sync group name {:?}", group.name),
            );
        }
        if group.instances.is_empty() {
            issues.add(
                at.join("instances"),
                "a sync group needs at least one instance",
            );
        }
        for (j, name) in group.instances.iter().enumerate() {
            let at = at.join("instances").join(j);
            if !instances.contains(name.as_str()) {
                issues.add(
                    at,
                    format!("sync group names unknown VRRP instance {name:?}"),
                );
            } else if let Some(other) = member_of.insert(name.as_str(), group.name.as_str()) {
                issues.add(
                    at,
                    format!("instance {name:?} is already in sync group {other:?}"),
                );
            }
        }
    }
}

// ---------------------------------------------------------------- virtual servers

fn virtual_servers(services: &[VirtualServer], issues: &mut Issues) {
    let mut keys = HashMap::new();
    let mut names = HashSet::new();
    for (i, service) in services.iter().enumerate() {
        let at = path!["virtual_server", i];
        if let Some(name) = &service.name
            && !names.insert(name.as_str())
        {
            issues.add(
                at.join("name"),
                format!("duplicate virtual server name {name:?}"),
            );
        }
        if service.group.is_empty() {
            let Some(key) = single_key(service, &at, issues) else {
                continue;
            };
            let place = at.join(if service.address.is_some() {
                "address"
            } else {
                "fwmark"
            });
            unique_key(&mut keys, key, i, place, issues);
        } else {
            group_keys(service, i, &at, &mut keys, issues);
        }
        service_options(service, &at, issues);
        real_servers(service, &at, issues);
        if let Some(check) = &service.check {
            check_rules(check, None, &at.join("check"), issues);
        }
    }
}

/// The service's key from its address or fwmark, with what is wrong with them.
fn single_key(service: &VirtualServer, at: &KeyPath, issues: &mut Issues) -> Option<String> {
    match (service.address, service.fwmark) {
        (Some(_), Some(_)) => {
            issues.add(
                at.join("fwmark"),
                "a virtual server has either address or fwmark, not both",
            );
            None
        }
        (None, None) => {
            issues.add(
                at.clone(),
                "a virtual server needs address = \"ip:port\", fwmark = N or group = [...]",
            );
            None
        }
        (Some(address), None) => {
            if service.family.is_some() {
                issues.add(
                    at.join("family"),
                    "family applies to fwmark services only; the address gives it",
                );
            }
            port_zero(service, address, at.join("address"), issues);
            Some(format!("{} {address}", service.protocol))
        }
        (None, Some(mark)) => {
            if mark == 0 {
                issues.add(at.join("fwmark"), "fwmark must be above 0");
            }
            Some(format!(
                "fwmark {mark} {}",
                service.family.unwrap_or(Family::Inet)
            ))
        }
    }
}

fn port_zero(service: &VirtualServer, address: SocketAddr, place: KeyPath, issues: &mut Issues) {
    if address.port() == 0 && service.persistence.is_none() {
        issues.add(
            place,
            "port 0 (all ports) is only allowed for a persistent service; set persistence or a port",
        );
    }
}

fn unique_key(
    keys: &mut HashMap<String, usize>,
    key: String,
    i: usize,
    place: KeyPath,
    issues: &mut Issues,
) {
    match keys.get(&key) {
        Some(&other) if other != i => issues.add(
            place,
            format!("virtual service {key} is already defined by virtual_server[{other}]"),
        ),
        Some(_) => issues.add(place, format!("virtual service {key} is listed twice")),
        None => {
            keys.insert(key, i);
        }
    }
}

/// A group's members: each a service of the block's family, none defined twice.
fn group_keys(
    service: &VirtualServer,
    i: usize,
    at: &KeyPath,
    keys: &mut HashMap<String, usize>,
    issues: &mut Issues,
) {
    if service.address.is_some() || service.fwmark.is_some() {
        issues.add(
            at.join("group"),
            "a group stands for its members' services: leave out address and fwmark",
        );
    }
    let v6 = service.is_group_ipv6();
    for (j, member) in service.group.iter().enumerate() {
        let place = at.join("group").join(j);
        let services = member.expand();
        if services.len() > crate::values::GROUP_RANGE_MAX {
            issues.add(
                place,
                format!(
                    "a range of {} addresses; at most {} per member",
                    services.len(),
                    crate::values::GROUP_RANGE_MAX
                ),
            );
            continue;
        }
        for one in services {
            let key = match one {
                Ok(address) => {
                    if address.is_ipv6() != v6 {
                        issues.add(
                            place.clone(),
                            "a group's members are all IPv4 or all IPv6, like its real servers",
                        );
                        break;
                    }
                    port_zero(service, address, place.clone(), issues);
                    format!("{} {address}", service.protocol)
                }
                Err(0) => {
                    issues.add(place.clone(), "fwmark must be above 0");
                    break;
                }
                Err(mark) => format!(
                    "fwmark {mark} {}",
                    service
                        .family
                        .unwrap_or(if v6 { Family::Inet6 } else { Family::Inet })
                ),
            };
            unique_key(keys, key, i, place.clone(), issues);
        }
    }
}

fn service_options(service: &VirtualServer, at: &KeyPath, issues: &mut Issues) {
    if service.ha_suspend && service.address.is_none() && service.group.is_empty() {
        issues.add(
            at.join("ha_suspend"),
            "ha_suspend follows the service's address; a fwmark service has none",
        );
    }
    if service.quorum == 0 {
        issues.add(
            at.join("quorum"),
            "quorum is a live weight of at least 1 (keepalived's range too)",
        );
    }
    if let Some(timeout) = service.persistence
        && (timeout.get().as_secs() == 0 || timeout.get().subsec_nanos() != 0)
    {
        issues.add(
            at.join("persistence"),
            "persistence is whole seconds, at least 1s",
        );
    }
    if let Some(netmask) = service.netmask {
        if service.persistence.is_none() {
            issues.add(
                at.join("netmask"),
                "netmask only applies to a persistent service",
            );
        }
        if service.is_ipv6() && netmask.dotted {
            issues.add(
                at.join("netmask"),
                "an IPv6 service takes a prefix length (e.g. 64), not a dotted mask",
            );
        } else if !service.is_ipv6() && netmask.prefix_len > 32 {
            issues.add(at.join("netmask"), "an IPv4 netmask is at most 32 bits");
        }
    }
    let mut seen = HashSet::new();
    for (j, flag) in service.flags.iter().enumerate() {
        let at_flag = at.join("flags").join(j);
        if !seen.insert(*flag) {
            issues.add(at_flag.clone(), format!("flag {flag} is listed twice"));
            continue;
        }
        let needs = match flag {
            ServiceFlag::ShFallback | ServiceFlag::ShPort => Some(Scheduler::Sh),
            ServiceFlag::MhFallback | ServiceFlag::MhPort => Some(Scheduler::Mh),
            ServiceFlag::OnePacket => None,
        };
        if let Some(scheduler) = needs
            && service.scheduler != scheduler
        {
            issues.add(
                at_flag.clone(),
                format!("flag {flag} only applies to the {scheduler} scheduler"),
            );
        }
        if *flag == ServiceFlag::OnePacket && service.protocol != crate::values::Protocol::Udp {
            issues.add(
                at_flag.clone(),
                "one-packet scheduling (ops) applies to UDP services only",
            );
        }
    }
    if let Some(engine) = &service.persistence_engine {
        if engine != "sip" {
            issues.add(
                at.join("persistence_engine"),
                format!("unknown persistence engine {engine:?}; the kernel has \"sip\""),
            );
        } else if service.persistence.is_none() {
            issues.add(
                at.join("persistence_engine"),
                "a persistence engine needs persistence to be set",
            );
        }
    }
    if let Some(fallback) = service.fallback {
        if fallback.is_ipv6() != service.is_ipv6() {
            issues.add(
                at.join("fallback"),
                format!(
                    "fallback {fallback} is not {} like the service",
                    family_name(service.is_ipv6())
                ),
            );
        }
        if service.real.iter().any(|real| real.address == fallback) {
            issues.add(
                at.join("fallback"),
                "the fallback server is also a real server of this service",
            );
        }
    }
}

fn real_servers(service: &VirtualServer, at: &KeyPath, issues: &mut Issues) {
    let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
    for (j, real) in service.real.iter().enumerate() {
        let at = at.join("real").join(j);
        let address = real.address;
        if address.is_ipv6() != service.is_ipv6() {
            issues.add(
                at.join("address"),
                format!(
                    "real server {address} is {} but the service is {}",
                    family_name(address.is_ipv6()),
                    family_name(service.is_ipv6())
                ),
            );
        }
        if let Some(other) = seen.insert(address, j) {
            issues.add(
                at.join("address"),
                format!("real server {address} is already listed as real[{other}]"),
            );
        }
        let forwarding = real.forwarding.unwrap_or(service.forwarding);
        let virtual_port = service.virtual_port().filter(|port| *port != 0);
        match forwarding {
            Forwarding::Nat if address.port() == 0 && virtual_port.is_some() => {
                issues.add(at.join("address"), "a NAT real server needs a port");
            }
            Forwarding::Dr | Forwarding::Tun => {
                if let Some(port) = virtual_port
                    && address.port() != port
                    && address.port() != 0
                {
                    issues.add(
                        at.join("address"),
                        format!(
                            "{forwarding} forwarding cannot change the port: real port {} differs from the virtual port {port}; use nat or the same port",
                            address.port()
                        ),
                    );
                }
            }
            Forwarding::Nat => {}
        }
        if real.weight > 65535 {
            issues.add(at.join("weight"), "weight must be between 0 and 65535");
        }
        if real.upper_threshold > 0 && real.lower_threshold > real.upper_threshold {
            issues.add(
                at.join("lower_threshold"),
                "lower_threshold is above upper_threshold",
            );
        }
        if let Some(check) = &real.check {
            check_rules(check, service.check.as_ref(), &at.join("check"), issues);
        }
    }
}

// ---------------------------------------------------------------- health checks

/// Keys each check type takes beyond the common timing keys. Every probe but a ping and an
/// external command may be sent from a chosen source (keepalived's bindto and bind_port) and
/// go to another address (connect_ip) and port (connect_port); a ping to another address.
fn check_keys(kind: CheckType) -> Vec<&'static str> {
    use CheckType::*;
    const TO: &[&str] = &["port", "address"];
    const FROM: &[&str] = &["bind_address", "bind_port"];
    const PAGE: &[&str] = &[
        "max_bytes",
        "method",
        "path",
        "host",
        "expect_status",
        "expect_body",
        "digest",
        "url",
    ];
    const LOGIN: &[&str] = &["user", "password"];
    let groups: &[&[&str]] = match kind {
        Http => &[TO, FROM, PAGE],
        Https => &[TO, FROM, PAGE, &["tls_verify", "sni"]],
        Tcp => &[TO, FROM, &["max_bytes", "send", "expect"]],
        Udp => &[TO, FROM, &["max_bytes", "send", "expect"]],
        Dns => &[TO, FROM, &["query", "record_type", "expect_rcode"]],
        Smtp => &[
            TO,
            FROM,
            LOGIN,
            &["max_bytes", "expect", "helo_name", "hosts"],
        ],
        Pop | Imap | Ftp => &[TO, FROM, LOGIN, &["max_bytes", "expect"]],
        Ldap => &[TO, FROM, LOGIN, &["path"]],
        Mysql | Pgsql => &[TO, FROM, LOGIN, &["database", "query"]],
        Sip => &[TO, FROM, &["max_bytes", "host", "expect_status"]],
        Radius => &[TO, FROM, LOGIN, &["secret"]],
        Connect => &[TO, FROM],
        External => &[&["command", "dynamic_weight"]],
        Ping => &[&["address"]],
        On | Off => &[],
    };
    groups.concat()
}

/// The type-specific keys that are set, by name.
fn set_keys(check: &Check) -> Vec<&'static str> {
    let flags = [
        ("port", check.port.is_some()),
        ("address", check.address.is_some()),
        ("bind_address", check.bind_address.is_some()),
        ("bind_port", check.bind_port.is_some()),
        ("max_bytes", check.max_bytes.is_some()),
        ("method", check.method.is_some()),
        ("path", check.path.is_some()),
        ("host", check.host.is_some()),
        ("expect_status", check.expect_status.is_some()),
        ("expect_body", check.expect_body.is_some()),
        ("digest", check.digest.is_some()),
        ("url", check.url.is_some()),
        ("helo_name", check.helo_name.is_some()),
        ("hosts", check.hosts.is_some()),
        ("tls_verify", check.tls_verify.is_some()),
        ("sni", check.sni.is_some()),
        ("send", check.send.is_some()),
        ("expect", check.expect.is_some()),
        ("query", check.query.is_some()),
        ("record_type", check.record_type.is_some()),
        ("expect_rcode", check.expect_rcode.is_some()),
        ("user", check.user.is_some()),
        ("password", check.password.is_some()),
        ("database", check.database.is_some()),
        ("secret", check.secret.is_some()),
        ("command", check.command.is_some()),
        ("dynamic_weight", check.dynamic_weight.is_some()),
    ];
    flags
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(name, _)| name)
        .collect()
}

const DNS_RECORD_TYPES: &[&str] = &["A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT"];
const DNS_RCODES: &[&str] = &[
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
];

/// `inherited` is the service's check when `check` belongs to a real server.
fn check_rules(check: &Check, inherited: Option<&Check>, at: &KeyPath, issues: &mut Issues) {
    let Some(kind) = check.kind.or(inherited.and_then(|c| c.kind)) else {
        issues.add(at.clone(), "a check needs a type, e.g. type = \"connect\"");
        return;
    };
    let allowed = check_keys(kind);
    for key in set_keys(check) {
        if !allowed.contains(&key) {
            issues.add(
                at.join(key),
                format!("{key} does not apply to a {kind} check"),
            );
        }
    }
    for (key, value) in [("interval", check.interval), ("timeout", check.timeout)] {
        if value.is_some_and(Duration::is_zero) {
            issues.add(at.join(key), format!("{key} must be above 0s"));
        }
    }
    for (key, value) in [("rise", check.rise), ("fall", check.fall)] {
        if value == Some(0) {
            issues.add(at.join(key), format!("{key} must be at least 1"));
        }
    }
    route_rules(
        (
            check.address,
            check.port,
            check.bind_address,
            check.bind_port,
        ),
        at,
        issues,
    );
    if let Some(method) = &check.method
        && (method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()))
    {
        issues.add(
            at.join("method"),
            "method is an upper-case HTTP method such as GET or HEAD",
        );
    }
    let page = Page {
        // An ldap check's path is its search base.
        path: check.path.as_ref().filter(|_| kind != CheckType::Ldap),
        expect_status: check.expect_status.as_ref(),
        expect_body: check.expect_body.as_ref(),
        digest: check.digest.as_ref(),
    };
    page_rules(&page, at, issues);
    for (j, url) in check.url.iter().flatten().enumerate() {
        let page = Page {
            path: url.path.as_ref(),
            expect_status: url.expect_status.as_ref(),
            expect_body: url.expect_body.as_ref(),
            digest: url.digest.as_ref(),
        };
        page_rules(&page, &at.join("url").join(j), issues);
    }
    if check.url.as_ref().is_some_and(Vec::is_empty) {
        issues.add(
            at.join("url"),
            "url needs at least one page, or leave it out",
        );
    }
    for (j, host) in check.hosts.iter().flatten().enumerate() {
        let route = (host.address, host.port, host.bind_address, host.bind_port);
        route_rules(route, &at.join("hosts").join(j), issues);
    }
    if let Some(pattern) = &check.expect {
        pattern_rule(pattern, &at.join("expect"), issues);
    }
    if let Some(record) = &check.record_type
        && !DNS_RECORD_TYPES.contains(&record.as_str())
    {
        issues.add(
            at.join("record_type"),
            format!(
                "unknown DNS record type; expected one of {}",
                DNS_RECORD_TYPES.join(", ")
            ),
        );
    }
    if let Some(rcode) = &check.expect_rcode
        && !DNS_RCODES.contains(&rcode.as_str())
    {
        issues.add(
            at.join("expect_rcode"),
            format!(
                "unknown DNS rcode; expected one of {}",
                DNS_RCODES.join(", ")
            ),
        );
    }
    let own_or_inherited = |get: fn(&Check) -> bool| get(check) || inherited.is_some_and(get);
    match kind {
        CheckType::External if !own_or_inherited(|c| c.command.is_some()) => {
            issues.add(at.clone(), "an external check needs command = \"...\"");
        }
        CheckType::Dns if !own_or_inherited(|c| c.query.is_some()) => {
            issues.add(at.clone(), "a dns check needs query = \"name to resolve\"");
        }
        CheckType::Radius if !own_or_inherited(|c| c.secret.is_some()) => {
            issues.add(at.clone(), "a radius check needs secret = \"...\"");
        }
        CheckType::Mysql | CheckType::Pgsql
            if own_or_inherited(|c| c.query.is_some())
                && !own_or_inherited(|c| c.user.is_some()) =>
        {
            issues.add(at.clone(), "a query runs after a login: set user too");
        }
        _ => {}
    }
}

/// What one page of an http check says about the answer.
struct Page<'a> {
    path: Option<&'a String>,
    expect_status: Option<&'a Vec<String>>,
    expect_body: Option<&'a String>,
    digest: Option<&'a String>,
}

fn page_rules(page: &Page<'_>, at: &KeyPath, issues: &mut Issues) {
    if let Some(path) = page.path
        && !path.starts_with('/')
    {
        issues.add(at.join("path"), "an HTTP path starts with '/'");
    }
    for (j, range) in page.expect_status.iter().copied().flatten().enumerate() {
        if let Err(message) = parse_status_range(range) {
            issues.add(at.join("expect_status").join(j), message.to_string());
        }
    }
    if let Some(pattern) = page.expect_body {
        pattern_rule(pattern, &at.join("expect_body"), issues);
    }
    if let Some(digest) = page.digest
        && parse_digest(digest).is_none()
    {
        issues.add(
            at.join("digest"),
            "digest is an MD5 of 32 hex digits, as `lvsadm genhash` prints it",
        );
    }
}

fn pattern_rule(pattern: &str, at: &KeyPath, issues: &mut Issues) {
    if let Err(e) = regex::Regex::new(pattern) {
        let first_line = e
            .to_string()
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        issues.add(
            at.clone(),
            format!("invalid regular expression: {first_line}"),
        );
    }
}

/// Where a probe goes and comes from: (address, port, bind_address, bind_port).
fn route_rules(
    (address, port, bind_address, bind_port): (
        Option<IpAddr>,
        Option<u16>,
        Option<IpAddr>,
        Option<u16>,
    ),
    at: &KeyPath,
    issues: &mut Issues,
) {
    if port == Some(0) {
        issues.add(at.join("port"), "check port must not be 0");
    }
    if bind_port == Some(0) {
        issues.add(
            at.join("bind_port"),
            "bind_port must not be 0; leave it out for an ephemeral port",
        );
    }
    if let (Some(to), Some(from)) = (address, bind_address)
        && to.is_ipv4() != from.is_ipv4()
    {
        issues.add(
            at.join("bind_address"),
            format!("bind_address {from} is not of the same family as address {to}"),
        );
    }
}

/// A keepalived digest: 32 hex digits, either case, as the 16 bytes of an MD5.
pub fn parse_digest(text: &str) -> Option<[u8; 16]> {
    if text.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// An `expect_status` entry that is neither a code nor a range of codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status {0:?} is not a code or range such as \"200\" or \"200-299\" (100..599)")]
pub struct BadStatusRange(pub String);

/// "200" or "200-299", within 100..=599.
pub fn parse_status_range(text: &str) -> Result<(u16, u16), BadStatusRange> {
    let bad = || BadStatusRange(text.to_owned());
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (low.trim(), high.trim()),
        None => (text.trim(), text.trim()),
    };
    let low: u16 = low.parse().map_err(|_| bad())?;
    let high: u16 = high.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&low) || !(100..=599).contains(&high) || low > high {
        return Err(bad());
    }
    Ok((low, high))
}

// ---------------------------------------------------------------- sync, feedback, agent

fn sync_section(sync: &Sync, vrrp: &Vrrp, issues: &mut Issues) {
    if sync.interface.is_empty() {
        issues.add(path!["sync", "interface"], "interface must not be empty");
    }
    if let SyncRole::Follow(name) = &sync.role
        && !vrrp.instance.iter().any(|instance| &instance.name == name)
    {
        issues.add(
            path!["sync", "role"],
            format!("role follows unknown VRRP instance {name:?}"),
        );
    }
    if !sync.group.ip().is_multicast() {
        issues.add(
            path!["sync", "group"],
            format!("sync group {} is not a multicast address", sync.group.ip()),
        );
    }
    if sync.group.port() == 0 {
        issues.add(path!["sync", "group"], "sync group port must not be 0");
    }
    if sync.version > 1 {
        issues.add(path!["sync", "version"], "sync protocol version is 0 or 1");
    }
    if !(64..=65507).contains(&sync.maxlen) {
        issues.add(
            path!["sync", "maxlen"],
            "maxlen is a UDP payload size from 64 to 65507 bytes",
        );
    }
    if sync.ttl == 0 {
        issues.add(path!["sync", "ttl"], "ttl must be at least 1");
    }
    if sync.unicast_port == Some(0) {
        issues.add(path!["sync", "unicast_port"], "unicast_port must not be 0");
    }
    let listening = sync.unicast_port();
    for (j, peer) in sync.peers.iter().enumerate() {
        // Every director reads this same file, so each peer's syncd listens on this
        // config's unicast port: any other port reaches nobody, silently.
        match peer.port {
            Some(0) => issues.add(path!["sync", "peers", j], "peer port must not be 0"),
            Some(port) if port != listening => issues.add(
                path!["sync", "peers", j],
                format!(
                    "no syncd listens on port {port}: syncd receives peers' unicast on \
                     unicast_port {listening}{default}, and every director reads this config; \
                     write the peer without a port, or set unicast_port = {port}",
                    default = if sync.unicast_port.is_none() {
                        " (the group's port, as unicast_port is not set)"
                    } else {
                        ""
                    },
                ),
            ),
            _ => {}
        }
        if peer.ip.is_ipv6() != sync.group.is_ipv6() {
            issues.add(
                path!["sync", "peers", j],
                format!(
                    "peer {} is not of the sync group {}'s family; syncd talks to its peers \
                     from one socket of that family",
                    peer.ip,
                    sync.group.ip()
                ),
            );
        }
    }
    for (j, net) in sync.group_sources.iter().flatten().enumerate() {
        if net.addr().is_ipv6() != sync.group.is_ipv6() {
            issues.add(
                path!["sync", "group_sources", j],
                format!(
                    "{net} is not of the sync group {}'s family: no sender of it can reach the group",
                    sync.group.ip()
                ),
            );
        }
    }
    if sync.max_entries == 0 {
        issues.add(
            path!["sync", "max_entries"],
            "max_entries must be at least 1 (the mirror could hold nothing)",
        );
    }
    if let Some(path) = &sync.key_file
        && !path.is_absolute()
    {
        issues.add(
            path!["sync", "key_file"],
            format!("key_file {} must be an absolute path", path.display()),
        );
    }
}

fn feedback_section(feedback: &Feedback, services: &[VirtualServer], issues: &mut Issues) {
    if !(feedback.smoothing > 0.0 && feedback.smoothing <= 1.0) {
        issues.add(
            path!["feedback", "smoothing"],
            "smoothing is an EWMA factor above 0 and at most 1",
        );
    }
    if feedback.min_weight.0 > 100.0 {
        issues.add(
            path!["feedback", "min_weight"],
            "min_weight is at most 100%",
        );
    }
    if feedback.min_weight.0 > feedback.max_weight.0 {
        issues.add(
            path!["feedback", "max_weight"],
            "max_weight is below min_weight",
        );
    }
    for (key, value) in [
        ("interval", feedback.interval),
        ("timeout", feedback.timeout),
    ] {
        if value.is_zero() {
            issues.add(path!["feedback", key], format!("{key} must be above 0s"));
        }
    }
    if feedback.lost_after < feedback.interval {
        issues.add(
            path!["feedback", "lost_after"],
            "lost_after is shorter than the poll interval",
        );
    }
    let reals: HashSet<SocketAddr> = services
        .iter()
        .flat_map(|service| service.real.iter().map(|real| real.address))
        .collect();
    let mut seen = HashSet::new();
    for (j, agent) in feedback.agent.iter().enumerate() {
        let at = path!["feedback", "agent", j];
        if !reals.contains(&agent.real) {
            issues.add(
                at.join("real"),
                format!(
                    "real server {} is not a real server of any virtual_server",
                    agent.real
                ),
            );
        }
        if !seen.insert(agent.real) {
            issues.add(
                at.join("real"),
                format!("real server {} already has an agent", agent.real),
            );
        }
        if agent.address.port() == 0 {
            issues.add(at.join("address"), "agent port must not be 0");
        }
    }
}

fn agent_section(agent: &Agent, issues: &mut Issues) {
    if agent.listen.port() == 0 {
        issues.add(path!["agent", "listen"], "listen port must not be 0");
    }
    if agent.window.is_zero() {
        issues.add(path!["agent", "window"], "window must be above 0s");
    }
    if agent.report == crate::values::AgentReport::Command && agent.command.is_none() {
        issues.add(
            path!["agent", "report"],
            "report = \"command\" needs command = \"...\"",
        );
    }
    if let Some(connections) = &agent.connections {
        let at = path!["agent", "connections"];
        if connections.ports.is_empty() {
            issues.add(at.join("ports"), "ports must name at least one local port");
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, port) in connections.ports.iter().enumerate() {
            if *port == 0 {
                issues.add(at.join("ports").join(i), "port must not be 0");
            } else if !seen.insert(*port) {
                issues.add(
                    at.join("ports").join(i),
                    format!("port {port} is listed twice"),
                );
            }
        }
        if connections.max_connections == 0 {
            issues.add(
                at.join("max_connections"),
                "max_connections must be above 0 (it is the count that reports 0% idle)",
            );
        }
    }
}
