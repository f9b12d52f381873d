//! vrrp_instance, vrrp_script, vrrp_sync_group and their global defaults.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use lvs_config::{
    Auth, Duration, Garp, RouteType, SyncGroup, TrackBfd, TrackFile, TrackInterface, TrackProcess,
    TrackScript, Vip, VirtualRoute, VirtualRule, VrrpInstance,
};

use super::parse::Node;
use super::{Context, ErrorKind, ImportError, ip, number, number_between, required_arg, timer};

/// global_defs values that instances inherit.
#[derive(Debug, Clone)]
pub(super) struct Globals {
    pub version: u8,
    pub garp: Garp,
    /// The priority keepalived gives the next IPv4 / IPv6 rule that names none: 16384, then
    /// one less for each (vrrp_iprule.c).
    pub next_rule_priority: [u32; 2],
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            version: 2,
            garp: Garp::default(),
            next_rule_priority: [16384, 16384],
        }
    }
}

/// What a vrrp_instance block says, before the instance is checked and completed.
struct Draft {
    name: String,
    interface: Option<String>,
    vrid: Option<u8>,
    priority: Option<u8>,
    master: bool,
    version: u8,
    advert: Option<Duration>,
    preempt: bool,
    preempt_delay: Duration,
    addresses: Vec<(Node, IpNet)>,
    /// Addresses with options, or excluded from adverts.
    vips: Vec<Vip>,
    routes: Vec<VirtualRoute>,
    rules: Vec<VirtualRule>,
    peers: Vec<IpAddr>,
    source: Option<IpAddr>,
    auth: Option<Auth>,
    garp: Garp,
    vmac: bool,
    vmac_interface: Option<String>,
    notifies: Notifies,
    interfaces: Vec<TrackInterface>,
    scripts: Vec<TrackScript>,
    files: Vec<TrackFile>,
    processes: Vec<TrackProcess>,
    bfd: Vec<TrackBfd>,
    /// What the importer changed, as comments above the imported block.
    comments: Vec<String>,
}

type Directive = fn(&mut Context, &mut Draft, &Node) -> Result<(), ImportError>;

/// The vrrp_instance directives that carry over, each with what it sets.
const DIRECTIVES: &[(&str, Directive)] = &[
    ("state", |_, d, n| {
        d.master = match required_arg(n, 1, "MASTER or BACKUP")? {
            "MASTER" => true,
            "BACKUP" => false,
            other => return Err(bad(n, format!("state is MASTER or BACKUP, got {other:?}"))),
        };
        Ok(())
    }),
    ("interface", |_, d, n| {
        d.interface = Some(required_arg(n, 1, "an interface")?.to_owned());
        Ok(())
    }),
    ("virtual_router_id", |_, d, n| {
        d.vrid = Some(nonzero(n, "virtual_router_id is 1..255")?);
        Ok(())
    }),
    ("priority", |_, d, n| {
        d.priority = Some(nonzero(n, "priority is 1..255")?);
        Ok(())
    }),
    ("advert_int", |_, d, n| {
        d.advert = Some(timer(n, 1)?);
        Ok(())
    }),
    ("version", |_, d, n| {
        d.version = number(n, 1)?;
        if d.version != 2 && d.version != 3 {
            return Err(bad(n, "version is 2 or 3"));
        }
        Ok(())
    }),
    ("nopreempt", |_, d, _| {
        d.preempt = false;
        Ok(())
    }),
    ("preempt", |_, d, _| {
        d.preempt = true;
        Ok(())
    }),
    ("preempt_delay", |_, d, n| {
        d.preempt_delay = timer(n, 1)?;
        Ok(())
    }),
    ("authentication", |ctx, d, n| {
        d.auth = ctx.authentication(n)?;
        Ok(())
    }),
    ("virtual_ipaddress", |ctx, d, n| {
        ctx.virtual_addresses(d, n, true)
    }),
    ("virtual_ipaddress_excluded", |ctx, d, n| {
        ctx.virtual_addresses(d, n, false)
    }),
    ("unicast_peer", |ctx, d, n| {
        for entry in n.children() {
            d.peers.push(ip(entry, entry.key())?);
            if entry.words.len() > 1 {
                ctx.skip(entry, "peer options are ignored");
            }
        }
        Ok(())
    }),
    ("virtual_routes", |ctx, d, n| {
        for entry in n.children() {
            d.routes.extend(ctx.virtual_route(entry)?);
        }
        Ok(())
    }),
    ("virtual_rules", |ctx, d, n| {
        for entry in n.children() {
            d.rules.extend(ctx.virtual_rule(entry)?);
        }
        Ok(())
    }),
    ("unicast_src_ip", source_address),
    ("mcast_src_ip", source_address),
    ("track_interface", |_, d, n| {
        for entry in n.children() {
            d.interfaces.push(TrackInterface {
                name: entry.key().to_owned(),
                weight: track_weight(entry)?,
            });
        }
        Ok(())
    }),
    ("track_script", |ctx, d, n| {
        for entry in n.children() {
            if let Some(mut script) = ctx.script(entry)? {
                if entry.arg(1) == Some("weight") {
                    script.weight = track_weight(entry)?;
                }
                d.scripts.push(script);
            }
        }
        Ok(())
    }),
    ("track_file", |ctx, d, n| {
        for entry in n.children() {
            d.files.extend(ctx.track_file(entry)?);
        }
        Ok(())
    }),
    ("track_process", |ctx, d, n| {
        for entry in n.children() {
            d.processes.extend(ctx.track_process(entry)?);
        }
        Ok(())
    }),
    ("track_bfd", |ctx, d, n| {
        for entry in n.children() {
            if let Some(&weight) = ctx.bfd_weights.get(entry.key()) {
                let weight = match entry.arg(1) {
                    Some("weight") => track_weight(entry)?,
                    _ => weight,
                };
                if entry.arg(3) == Some("reverse") {
                    ctx.skip(
                        entry,
                        "reverse weights are not supported; the weight applies as without reverse",
                    );
                }
                d.bfd.push(TrackBfd {
                    name: entry.key().to_owned(),
                    weight,
                });
            } else {
                ctx.skip(entry, "no bfd_instance of this name; not tracked");
            }
        }
        Ok(())
    }),
    ("notify", |ctx, d, n| d.notifies.set(ctx, n)),
    ("notify_master", |ctx, d, n| d.notifies.set(ctx, n)),
    ("notify_backup", |ctx, d, n| d.notifies.set(ctx, n)),
    ("notify_fault", |ctx, d, n| d.notifies.set(ctx, n)),
    ("notify_stop", |ctx, d, n| d.notifies.set(ctx, n)),
    ("garp_master_delay", |_, d, n| {
        d.garp.delay = timer(n, 1)?;
        Ok(())
    }),
    ("garp_master_repeat", |_, d, n| {
        d.garp.repeat = number(n, 1)?;
        Ok(())
    }),
    ("garp_interval", |_, d, n| {
        d.garp.spacing = timer(n, 1)?;
        Ok(())
    }),
    ("garp_master_refresh", |_, d, n| {
        let refresh = timer(n, 1)?;
        d.garp.refresh = (!refresh.is_zero()).then_some(refresh);
        Ok(())
    }),
    ("garp_lower_prio_repeat", |_, d, n| {
        d.garp.lower_prio_repeat = Some(number(n, 1)?);
        Ok(())
    }),
    ("garp_lower_prio_delay", |_, d, n| {
        d.garp.lower_prio_delay = Some(timer(n, 1)?);
        Ok(())
    }),
    ("use_vmac", |_, d, n| {
        d.vmac = true;
        d.vmac_interface = n.arg(1).map(str::to_owned);
        Ok(())
    }),
    ("lvs_sync_daemon_interface", |ctx, d, n| {
        let interface = required_arg(n, 1, "an interface")?.to_owned();
        ctx.sync_daemon
            .push((n.at.clone(), interface, d.name.clone(), Vec::new()));
        Ok(())
    }),
    // vrrpd sets it on every interface it uses.
    ("promote_secondaries", |_, _, _| Ok(())),
];

/// The vrrp_instance directives that do not carry over, with what happens instead.
const NOT_CARRIED: &[(&str, &str)] = &[
    (
        "notify_master_rx_lower_pri",
        "no script when a lower-priority master is heard; the master sends gratuitous ARPs again (garp_lower_prio_repeat)",
    ),
    ("smtp_alert", "ignored: no e-mail alerts"),
    (
        "dont_track_primary",
        "the instance goes to FAULT when its interface is down",
    ),
];

fn bad(node: &Node, message: impl Into<String>) -> ImportError {
    ImportError::new(&node.at, ErrorKind::BadValue, message)
}

/// A u8 that must not be 0 (a VRID, a priority); `what` is the error.
fn nonzero(node: &Node, what: &str) -> Result<u8, ImportError> {
    match number(node, 1)? {
        0 => Err(bad(node, what)),
        n => Ok(n),
    }
}

fn source_address(_: &mut Context, d: &mut Draft, n: &Node) -> Result<(), ImportError> {
    d.source = Some(ip(n, required_arg(n, 1, "an address")?)?);
    Ok(())
}

impl Context {
    pub(super) fn vrrp_instance(&mut self, node: &Node) -> Result<(), ImportError> {
        let mark = self.out.mark();
        let mut draft = Draft {
            name: required_arg(node, 1, "an instance name")?.to_owned(),
            interface: None,
            vrid: None,
            priority: None,
            master: false,
            version: self.globals.version,
            advert: None,
            preempt: true,
            preempt_delay: Duration::ZERO,
            addresses: Vec::new(),
            vips: Vec::new(),
            routes: Vec::new(),
            rules: Vec::new(),
            peers: Vec::new(),
            source: None,
            auth: None,
            garp: self.globals.garp.clone(),
            vmac: false,
            vmac_interface: None,
            notifies: Notifies::default(),
            interfaces: Vec::new(),
            scripts: Vec::new(),
            files: Vec::new(),
            processes: Vec::new(),
            bfd: Vec::new(),
            comments: Vec::new(),
        };
        for child in node.children() {
            let key = child.key();
            if let Some((_, directive)) = DIRECTIVES.iter().find(|(k, _)| *k == key) {
                directive(self, &mut draft, child)?;
            } else {
                let instead = NOT_CARRIED
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map_or("ignored", |(_, instead)| instead);
                self.skip(child, instead);
            }
        }
        if let Some(instance) = self.complete(node, draft)? {
            let (instance, comments) = instance;
            let mut block = self.out.block(node.at.clone(), instance, mark);
            block.comments = comments;
            self.out.instances.push(block);
        }
        Ok(())
    }

    /// `ADDR[/LEN] [dev D] [label L] [scope S] [brd B]` lines: plain advertised ones go to
    /// `virtual_addresses`, the others (options, or `advertised` false) to `vips`.
    fn virtual_addresses(
        &mut self,
        draft: &mut Draft,
        node: &Node,
        advertised: bool,
    ) -> Result<(), ImportError> {
        for entry in node.children() {
            let address = vip(entry)?;
            let mut options = Vip {
                advertised,
                ..Vip::plain(address)
            };
            let mut words = entry.words[1..].iter();
            while let Some(word) = words.next() {
                let mut value = || {
                    words
                        .next()
                        .map(String::as_str)
                        .ok_or_else(|| bad(entry, format!("{word} needs a value")))
                };
                match word.as_str() {
                    "dev" => options.dev = Some(value()?.to_owned()),
                    "label" => options.label = Some(value()?.to_owned()),
                    "scope" => {
                        let text = value()?;
                        options.scope = Some(text.parse().map_err(|e| bad(entry, format!("{e}")))?);
                    }
                    "no_track" => options.track = false,
                    "brd" | "broadcast" => {
                        let text = value()?;
                        options.broadcast = Some(text.parse().map_err(|_| {
                            bad(entry, format!("brd needs an IPv4 address, got {text:?}"))
                        })?);
                    }
                    other => {
                        self.skip(entry, &format!("address option {other:?} is ignored"));
                        break;
                    }
                }
            }
            let listed = draft
                .addresses
                .iter()
                .any(|(_, a)| a.addr() == address.addr())
                || draft
                    .vips
                    .iter()
                    .any(|v| v.address.addr() == address.addr());
            if listed {
                // keepalived keeps the first, options and all.
                self.skip(entry, "the address is listed twice; the first is kept");
            } else if options == Vip::plain(address) {
                draft.addresses.push((entry.clone(), address));
            } else {
                draft.vips.push(options);
            }
        }
        Ok(())
    }

    /// A `virtual_routes` line: `[blackhole|unreachable|prohibit] [src A] [to] DEST [via|gw G]
    /// [dev D] [scope S] [table T] [metric N]`; None (reported) for what vrrpd cannot add.
    fn virtual_route(&mut self, entry: &Node) -> Result<Option<VirtualRoute>, ImportError> {
        let mut route = VirtualRoute {
            to: IpNet::from(std::net::IpAddr::from([0, 0, 0, 0])),
            kind: RouteType::Unicast,
            via: None,
            dev: None,
            src: None,
            table: None,
            metric: None,
            scope: None,
            track: true,
        };
        let mut to = None;
        let mut words = entry.words.iter().map(String::as_str);
        while let Some(word) = words.next() {
            let mut value = || {
                words
                    .next()
                    .ok_or_else(|| bad(entry, format!("{word} needs a value")))
            };
            match word {
                "blackhole" => route.kind = RouteType::Blackhole,
                "unreachable" => route.kind = RouteType::Unreachable,
                "prohibit" => route.kind = RouteType::Prohibit,
                "src" => route.src = Some(ip(entry, value()?)?),
                "to" => to = Some(value()?.to_owned()),
                "via" | "gw" => route.via = Some(ip(entry, value()?)?),
                "dev" | "oif" => route.dev = Some(value()?.to_owned()),
                "scope" => {
                    route.scope = Some(value()?.parse().map_err(|e| bad(entry, format!("{e}")))?);
                }
                "table" => route.table = Some(route_number(entry, value()?)?),
                "metric" | "preference" | "priority" => {
                    route.metric = Some(route_number(entry, value()?)?);
                }
                "no_track" => route.track = false,
                _ if to.is_none() && (word == "default" || word.contains(['.', ':'])) => {
                    to = Some(word.to_owned());
                }
                _ => {
                    self.skip(
                        entry,
                        &format!("route option {word:?} is not supported; the route is left out"),
                    );
                    return Ok(None);
                }
            }
        }
        let Some(to) = to else {
            return Err(bad(entry, "a route needs a destination"));
        };
        let to = if to == "default" {
            "0.0.0.0/0"
        } else {
            to.as_str()
        };
        route.to = to
            .parse::<IpNet>()
            .or_else(|_| ip(entry, to).map(IpNet::from))?;
        Ok(Some(route))
    }

    /// A `virtual_rules` line, numbered as keepalived numbers a rule without a priority;
    /// None (reported) for what keepalived or vrrpd cannot add.
    fn virtual_rule(&mut self, entry: &Node) -> Result<Option<VirtualRule>, ImportError> {
        match parse_rule(entry) {
            Ok(mut rule) => {
                self.number_rule(&mut rule);
                Ok(Some(rule))
            }
            Err(why) => {
                self.skip(entry, &format!("{why}; the rule is left out"));
                Ok(None)
            }
        }
    }

    /// keepalived numbers the rules without a priority in file order, 16384 down, static
    /// ones included (vrrp_iprule.c).
    fn number_rule(&mut self, rule: &mut VirtualRule) {
        if rule.priority.is_none() {
            let v6 = rule.from.or(rule.to).is_some_and(|n| n.addr().is_ipv6());
            let next = &mut self.globals.next_rule_priority[usize::from(v6)];
            rule.priority = Some(*next);
            *next = next.saturating_sub(1);
        }
    }

    /// `static_rules` are not imported, but their numbers are taken all the same.
    pub(super) fn number_static_rules(&mut self, node: &Node) {
        for entry in node.children() {
            if let Ok(mut rule) = parse_rule(entry) {
                self.number_rule(&mut rule);
            }
        }
    }

    /// The instance as keepalived would run it, with a comment for each value it settles
    /// differently from what the file says; None when there is nothing to import.
    fn complete(
        &mut self,
        node: &Node,
        mut d: Draft,
    ) -> Result<Option<(VrrpInstance, Vec<String>)>, ImportError> {
        let Some(interface) = d.interface.take() else {
            return Err(bad(
                node,
                format!("vrrp_instance {} has no interface", d.name),
            ));
        };
        let Some(vrid) = d.vrid else {
            return Err(bad(
                node,
                format!("vrrp_instance {} has no virtual_router_id", d.name),
            ));
        };
        // keepalived: no priority means 255 (address owner) for state MASTER, 100 otherwise.
        let priority = d.priority.unwrap_or_else(|| {
            let p = if d.master { 255 } else { 100 };
            d.comments.push(format!(
                "priority not given: keepalived uses {p} for state {}",
                if d.master { "MASTER" } else { "BACKUP" }
            ));
            p
        });
        let virtual_addresses = self.one_family(std::mem::take(&mut d.addresses));
        let first_advertised = virtual_addresses
            .first()
            .copied()
            .or_else(|| d.vips.iter().find(|v| v.advertised).map(|v| v.address));
        if first_advertised.is_some_and(|a| a.addr().is_ipv6()) && d.version == 2 {
            d.comments
                .push("IPv6 addresses: VRRP version 3, as keepalived switches to".to_owned());
            d.version = 3;
        }
        if d.version == 3 && d.auth.is_some() {
            d.comments.push(
                "authentication dropped: VRRPv3 has none (keepalived ignores it too)".to_owned(),
            );
            d.auth = None;
        }
        let advert_interval = match d.advert {
            None => Duration::from_secs(1),
            Some(a) if d.version == 2 && (a.get().subsec_nanos() != 0 || a.is_zero()) => {
                let secs = a.get().as_secs_f64().round().max(1.0) as u64;
                d.comments.push(format!(
                    "advert_int rounded to {secs}s: VRRPv2 counts whole seconds"
                ));
                Duration::from_secs(secs)
            }
            Some(a) => a,
        };
        if d.master && !d.preempt {
            d.comments.push(
                "nopreempt dropped: keepalived clears it for an instance that starts as MASTER"
                    .to_owned(),
            );
            d.preempt = true;
        }
        if priority == 255 && !d.preempt {
            d.comments.push(
                "nopreempt dropped: the address owner (priority 255) always preempts".to_owned(),
            );
            d.preempt = true;
        }
        if first_advertised.is_none() {
            self.skip(node, "the instance has no virtual address; not imported");
            return Ok(None);
        }
        let instance = VrrpInstance {
            name: d.name,
            interface,
            vrid,
            priority,
            version: d.version,
            advert_interval,
            preempt: d.preempt,
            preempt_delay: d.preempt_delay,
            virtual_addresses,
            vips: d.vips,
            routes: d.routes,
            rules: d.rules,
            unicast_peers: d.peers,
            source_address: d.source,
            auth: d.auth,
            garp: d.garp,
            virtual_mac: d.vmac,
            virtual_mac_interface: d.vmac_interface,
            notify: None,
            notify_master: d.notifies.master,
            notify_backup: d.notifies.backup,
            notify_fault: d.notifies.fault,
            notify_stop: d.notifies.stop,
            notify_state: d.notifies.state,
            track_interfaces: d.interfaces,
            track_scripts: d.scripts,
            track_files: d.files,
            track_processes: d.processes,
            track_services: Vec::new(),
            track_bfd: d.bfd,
            bfd_takeover: None,
        };
        Ok(Some((instance, d.comments)))
    }

    /// The addresses of the first one's family, each once; the others are reported.
    fn one_family(&mut self, addresses: Vec<(Node, IpNet)>) -> Vec<IpNet> {
        let family_v6 = addresses.first().map(|(_, a)| a.addr().is_ipv6());
        let mut seen = HashSet::new();
        let mut kept = Vec::new();
        for (entry, address) in addresses {
            if Some(address.addr().is_ipv6()) != family_v6 {
                self.skip(&entry, "an instance holds one address family; left out");
            } else if !seen.insert(address.addr()) {
                self.skip(&entry, "the address is listed twice; added once");
            } else {
                kept.push(address);
            }
        }
        kept
    }

    fn authentication(&mut self, node: &Node) -> Result<Option<Auth>, ImportError> {
        let mut kind = None;
        let mut password = None;
        for child in node.children() {
            match child.key() {
                "auth_type" => kind = child.arg(1).map(str::to_owned),
                "auth_pass" => password = child.arg(1).map(str::to_owned),
                _ => self.skip(child, "ignored"),
            }
        }
        match kind.as_deref() {
            Some("PASS") => {
                let mut password = password.unwrap_or_default();
                if password.is_empty() {
                    self.skip(node, "PASS without auth_pass; no authentication");
                    return Ok(None);
                }
                // keepalived sends at most 8 bytes of the password.
                while password.len() > 8 {
                    password.pop();
                }
                Ok(Some(Auth::Pass { password }))
            }
            Some("AH") => {
                self.skip(
                    node,
                    "IPsec AH authentication does not exist here; adverts are sent without authentication",
                );
                Ok(None)
            }
            _ => {
                self.skip(node, "no auth_type PASS or AH; no authentication");
                Ok(None)
            }
        }
    }

    fn script(&mut self, entry: &Node) -> Result<Option<TrackScript>, ImportError> {
        let Some(definition) = self.scripts.get(entry.key()).cloned() else {
            self.skip(entry, "no vrrp_script of this name; not tracked");
            return Ok(None);
        };
        let mut script = TrackScript {
            command: String::new(),
            interval: Duration::from_secs(1),
            timeout: None,
            rise: 1,
            fall: 1,
            weight: 0,
        };
        for child in definition.children() {
            match child.key() {
                "script" => script.command = required_arg(child, 1, "a command")?.to_owned(),
                "interval" => script.interval = timer(child, 1)?,
                "timeout" => script.timeout = Some(timer(child, 1)?),
                "weight" => {
                    script.weight = number(child, 1)?;
                    if child.arg(2) == Some("reverse") {
                        self.skip(child, "reverse weights are not supported; the weight applies as without reverse (a negative one while the script fails, a positive one while it succeeds)");
                    }
                }
                "rise" => script.rise = number(child, 1)?,
                "fall" => script.fall = number(child, 1)?,
                "user" => self.skip(child, "the script runs as vrrpd's user"),
                "init_fail" => self.skip(child, "the script starts as succeeding"),
                _ => self.skip(child, "ignored"),
            }
        }
        if script.command.is_empty() {
            self.skip(
                &definition,
                "the vrrp_script has no script line; not tracked",
            );
            return Ok(None);
        }
        if script.interval.is_zero() {
            script.interval = Duration::from_secs(1);
        }
        Ok(Some(script))
    }

    fn track_file(&mut self, entry: &Node) -> Result<Option<TrackFile>, ImportError> {
        let Some(definition) = self.track_files.get(entry.key()).cloned() else {
            self.skip(entry, "no vrrp_track_file of this name; not tracked");
            return Ok(None);
        };
        let mut path = None;
        let mut weight = 1;
        for child in definition.children() {
            match child.key() {
                "file" => path = Some(required_arg(child, 1, "a path")?.into()),
                "weight" => weight = number(child, 1)?,
                _ => self.skip(child, "ignored"),
            }
        }
        if entry.arg(1) == Some("weight") {
            weight = number(entry, 2)?;
        }
        Ok(path.map(|path| TrackFile { path, weight }))
    }

    fn track_process(&mut self, entry: &Node) -> Result<Option<TrackProcess>, ImportError> {
        let Some(definition) = self.track_processes.get(entry.key()).cloned() else {
            self.skip(entry, "no vrrp_track_process of this name; not tracked");
            return Ok(None);
        };
        let mut name = None;
        let mut weight = 0;
        for child in definition.children() {
            match child.key() {
                "process" => name = Some(required_arg(child, 1, "a process name")?.to_owned()),
                "weight" => weight = number(child, 1)?,
                _ => self.skip(child, "ignored"),
            }
        }
        if entry.arg(1) == Some("weight") {
            weight = number(entry, 2)?;
        }
        Ok(name.map(|name| TrackProcess { name, weight }))
    }

    pub(super) fn sync_group(&mut self, node: &Node) -> Result<(), ImportError> {
        let mark = self.out.mark();
        let name = required_arg(node, 1, "a group name")?.to_owned();
        let mut instances = Vec::new();
        let mut notifies = Notifies::default();
        for child in node.children() {
            match child.key() {
                "group" => {
                    for member in child.children() {
                        let known = self
                            .out
                            .instances
                            .iter()
                            .any(|b| b.value.name == member.key());
                        let taken = self
                            .out
                            .sync_groups
                            .iter()
                            .any(|g| g.value.instances.iter().any(|i| i == member.key()));
                        if !known {
                            self.skip(
                                member,
                                "no imported vrrp_instance of this name; left out of the group",
                            );
                        } else if taken || instances.iter().any(|i| i == member.key()) {
                            self.skip(member, "the instance is already in a sync group; left out");
                        } else {
                            instances.push(member.key().to_owned());
                        }
                    }
                }
                "notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => {
                    notifies.set(self, child)?;
                }
                _ => self.skip(
                    child,
                    "ignored (keepalived 2 lists members inside group { })",
                ),
            }
        }
        if instances.is_empty() {
            self.skip(node, "the group has no usable member; not imported");
            return Ok(());
        }
        let group = SyncGroup {
            name,
            instances,
            notify: None,
            notify_master: notifies.master,
            notify_backup: notifies.backup,
            notify_fault: notifies.fault,
            notify_stop: notifies.stop,
            notify_state: notifies.state,
        };
        let block = self.out.block(node.at.clone(), group, mark);
        self.out.sync_groups.push(block);
        Ok(())
    }
}

/// keepalived's notify scripts of an instance or a group, kept as written: vrrpd calls them
/// with keepalived's arguments (`notify` becomes `notify_state`).
#[derive(Default)]
struct Notifies {
    master: Option<String>,
    backup: Option<String>,
    fault: Option<String>,
    stop: Option<String>,
    state: Option<String>,
}

impl Notifies {
    fn set(&mut self, ctx: &mut Context, node: &Node) -> Result<(), ImportError> {
        let command = script_command(ctx, node)?;
        let slot = match node.key() {
            "notify_master" => &mut self.master,
            "notify_backup" => &mut self.backup,
            "notify_fault" => &mut self.fault,
            "notify_stop" => &mut self.stop,
            _ => &mut self.state,
        };
        *slot = Some(command);
        Ok(())
    }
}

/// A script directive's command line: its first word after the keyword (quoted when it has
/// arguments: keepalived splits it at its spaces, as vrrpd does). The words after it are
/// keepalived's `[username [groupname]]`.
pub(super) fn script_command(ctx: &mut Context, node: &Node) -> Result<String, ImportError> {
    let command = required_arg(node, 1, "a script")?.to_owned();
    if node.words.len() > 2 {
        ctx.skip(
            node,
            "the user and group to run it as are ignored: it runs as vrrpd's user",
        );
    }
    Ok(command)
}

/// Why a `virtual_rules` line is left out: the importer's note says so.
#[derive(Debug, thiserror::Error)]
enum RuleError {
    #[error("invalid address {0:?} (keepalived skips the rule too)")]
    Address(String),
    #[error("expected a number, got {0:?}")]
    Number(String),
    #[error("{0} needs a value")]
    NoValue(String),
    #[error("rule option {0:?} is not supported")]
    Option(String),
    #[error("a rule without a table is not supported")]
    NoTable,
}

/// `[from A] [to B] table|lookup T [priority|preference|prio N]`, or why not.
fn parse_rule(entry: &Node) -> Result<VirtualRule, RuleError> {
    let mut rule = VirtualRule {
        from: None,
        to: None,
        table: 0,
        priority: None,
    };
    let net = |text: &str| {
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| RuleError::Address(text.to_owned()))
    };
    let number = |text: &str| {
        text.parse::<u32>()
            .map_err(|_| RuleError::Number(text.to_owned()))
    };
    let mut words = entry.words.iter().map(String::as_str);
    while let Some(word) = words.next() {
        let value = words
            .next()
            .ok_or_else(|| RuleError::NoValue(word.to_owned()))?;
        match word {
            "from" => rule.from = Some(net(value)?),
            "to" => rule.to = Some(net(value)?),
            "table" | "lookup" => rule.table = number(value)?,
            "priority" | "preference" | "prio" => rule.priority = Some(number(value)?),
            _ => return Err(RuleError::Option(word.to_owned())),
        }
    }
    if rule.table == 0 {
        return Err(RuleError::NoTable);
    }
    Ok(rule)
}

fn route_number(entry: &Node, text: &str) -> Result<u32, ImportError> {
    text.parse()
        .map_err(|_| bad(entry, format!("expected a number, got {text:?}")))
}

/// `weight N` after an object name; 0 (FAULT while failing) when absent.
fn track_weight(entry: &Node) -> Result<i32, ImportError> {
    match entry.arg(1) {
        Some("weight") => number_between(entry, 2, "tracking weight", -254i32, 254),
        _ => Ok(0),
    }
}

/// A virtual_ipaddress entry: `ADDR[/LEN] [options]`; no length means a host route.
fn vip(entry: &Node) -> Result<IpNet, ImportError> {
    let text = entry.key();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    let address: IpAddr = ip(entry, text)?;
    Ok(IpNet::from(address))
}
