//! vrrp_instance, vrrp_script, vrrp_sync_group and their global defaults.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use lvs_config::{
    Auth, Duration, Garp, SyncGroup, TrackFile, TrackInterface, TrackProcess, TrackScript,
    VrrpInstance,
};

use super::parse::Node;
use super::{Context, ErrorKind, ImportError, ip, number, number_between, required_arg, timer};

/// global_defs values that instances inherit.
#[derive(Debug, Clone)]
pub(super) struct Globals {
    pub version: u8,
    pub garp: Garp,
}

impl Default for Globals {
    fn default() -> Self {
        Globals {
            version: 2,
            garp: Garp::default(),
        }
    }
}

impl Context {
    pub(super) fn vrrp_instance(&mut self, node: &Node) -> Result<(), ImportError> {
        let mark = self.out.mark();
        let name = required_arg(node, 1, "an instance name")?.to_owned();
        let mut interface = None;
        let mut vrid = None;
        let mut priority: Option<u8> = None;
        let mut master = false;
        let mut version = self.globals.version;
        let mut advert: Option<Duration> = None;
        let mut preempt = true;
        let mut preempt_delay = Duration::ZERO;
        let mut addresses: Vec<(Node, IpNet)> = Vec::new();
        let mut peers = Vec::new();
        let mut source = None;
        let mut auth = None;
        let mut garp = self.globals.garp.clone();
        let mut vmac = false;
        let mut vmac_interface = None;
        let mut notify = None;
        let mut interfaces = Vec::new();
        let mut scripts = Vec::new();
        let mut files = Vec::new();
        let mut processes = Vec::new();
        let mut comments = Vec::new();
        for child in node.children() {
            match child.key() {
                "state" => match required_arg(child, 1, "MASTER or BACKUP")? {
                    "MASTER" => master = true,
                    "BACKUP" => master = false,
                    other => {
                        return Err(ImportError::new(
                            &child.at,
                            ErrorKind::BadValue,
                            format!("state is MASTER or BACKUP, got {other:?}"),
                        ));
                    }
                },
                "interface" => interface = Some(required_arg(child, 1, "an interface")?.to_owned()),
                "virtual_router_id" => {
                    let id: u8 = number(child, 1)?;
                    if id == 0 {
                        return Err(ImportError::new(
                            &child.at,
                            ErrorKind::BadValue,
                            "virtual_router_id is 1..255",
                        ));
                    }
                    vrid = Some(id);
                }
                "priority" => {
                    let p: u8 = number(child, 1)?;
                    if p == 0 {
                        return Err(ImportError::new(
                            &child.at,
                            ErrorKind::BadValue,
                            "priority is 1..255",
                        ));
                    }
                    priority = Some(p);
                }
                "advert_int" => advert = Some(timer(child, 1)?),
                "version" => {
                    version = number(child, 1)?;
                    if version != 2 && version != 3 {
                        return Err(ImportError::new(
                            &child.at,
                            ErrorKind::BadValue,
                            "version is 2 or 3",
                        ));
                    }
                }
                "nopreempt" => preempt = false,
                "preempt" => preempt = true,
                "preempt_delay" => preempt_delay = timer(child, 1)?,
                "authentication" => auth = self.authentication(child)?,
                "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                    if child.key() == "virtual_ipaddress_excluded" {
                        self.skip(
                            child,
                            "the addresses are added as ordinary virtual addresses, so adverts list them too",
                        );
                    }
                    for entry in child.children() {
                        addresses.push((entry.clone(), vip(entry)?));
                        if entry.words.len() > 1 {
                            self.skip(
                                entry,
                                "the address goes on the instance's interface without label, scope or broadcast options",
                            );
                        }
                    }
                }
                "unicast_peer" => {
                    for entry in child.children() {
                        peers.push(ip(entry, entry.key())?);
                        if entry.words.len() > 1 {
                            self.skip(entry, "peer options are ignored");
                        }
                    }
                }
                "unicast_src_ip" | "mcast_src_ip" => {
                    source = Some(ip(child, required_arg(child, 1, "an address")?)?);
                }
                "track_interface" => {
                    for entry in child.children() {
                        interfaces.push(TrackInterface {
                            name: entry.key().to_owned(),
                            weight: track_weight(entry)?,
                        });
                    }
                }
                "track_script" => {
                    for entry in child.children() {
                        let Some(mut script) = self.script(entry)? else {
                            continue;
                        };
                        if entry.arg(1) == Some("weight") {
                            script.weight = track_weight(entry)?;
                        }
                        scripts.push(script);
                    }
                }
                "track_file" => {
                    for entry in child.children() {
                        if let Some(file) = self.track_file(entry)? {
                            files.push(file);
                        }
                    }
                }
                "track_process" => {
                    for entry in child.children() {
                        if let Some(process) = self.track_process(entry)? {
                            processes.push(process);
                        }
                    }
                }
                "notify" => {
                    notify = Some(required_arg(child, 1, "a script")?.to_owned());
                    self.skip(
                        child,
                        "the script is called with (instance, old state, new state), not keepalived's (type, name, state, priority)",
                    );
                }
                "notify_master"
                | "notify_backup"
                | "notify_fault"
                | "notify_stop"
                | "notify_master_rx_lower_pri" => self.skip(
                    child,
                    "no per-state script; use notify, called with (instance, old state, new state)",
                ),
                "garp_master_delay" => garp.delay = timer(child, 1)?,
                "garp_master_repeat" => garp.repeat = number(child, 1)?,
                "garp_interval" => garp.spacing = timer(child, 1)?,
                "garp_master_refresh" => {
                    let refresh = timer(child, 1)?;
                    garp.refresh = (!refresh.is_zero()).then_some(refresh);
                }
                "use_vmac" => {
                    vmac = true;
                    vmac_interface = child.arg(1).map(str::to_owned);
                }
                "lvs_sync_daemon_interface" => {
                    let interface = required_arg(child, 1, "an interface")?.to_owned();
                    self.sync_daemon
                        .push((child.at.clone(), interface, name.clone(), Vec::new()));
                }
                "virtual_routes" | "virtual_rules" => self.skip(
                    child,
                    "routes and rules do not follow the VRRP state; configure them separately",
                ),
                "smtp_alert" => self.skip(child, "ignored: no e-mail alerts"),
                // vrrpd sets it on every interface it uses.
                "promote_secondaries" => {}
                "dont_track_primary" => self.skip(
                    child,
                    "the instance goes to FAULT when its interface is down",
                ),
                _ => self.skip(child, "ignored"),
            }
        }
        let Some(interface) = interface else {
            return Err(ImportError::new(
                &node.at,
                ErrorKind::BadValue,
                format!("vrrp_instance {name} has no interface"),
            ));
        };
        let Some(vrid) = vrid else {
            return Err(ImportError::new(
                &node.at,
                ErrorKind::BadValue,
                format!("vrrp_instance {name} has no virtual_router_id"),
            ));
        };
        // keepalived: no priority means 255 (address owner) for state MASTER, 100 otherwise.
        let priority = priority.unwrap_or_else(|| {
            let p = if master { 255 } else { 100 };
            comments.push(format!(
                "priority not given: keepalived uses {p} for state {}",
                if master { "MASTER" } else { "BACKUP" }
            ));
            p
        });
        let mut virtual_addresses: Vec<IpNet> = Vec::new();
        let family_v6 = addresses.first().map(|(_, a)| matches!(a, IpNet::V6(_)));
        let mut seen = HashSet::new();
        for (entry, address) in addresses {
            if Some(matches!(address, IpNet::V6(_))) != family_v6 {
                self.skip(&entry, "an instance holds one address family; left out");
            } else if !seen.insert(address.addr()) {
                self.skip(&entry, "the address is listed twice; added once");
            } else {
                virtual_addresses.push(address);
            }
        }
        if family_v6 == Some(true) && version == 2 {
            comments.push("IPv6 addresses: VRRP version 3, as keepalived switches to".to_owned());
            version = 3;
        }
        if version == 3 && auth.is_some() {
            comments.push(
                "authentication dropped: VRRPv3 has none (keepalived ignores it too)".to_owned(),
            );
            auth = None;
        }
        let advert_interval = match advert {
            None => Duration::from_secs(1),
            Some(d) if version == 2 && (d.get().subsec_nanos() != 0 || d.is_zero()) => {
                let secs = d.get().as_secs_f64().round().max(1.0) as u64;
                comments.push(format!(
                    "advert_int rounded to {secs}s: VRRPv2 counts whole seconds"
                ));
                Duration::from_secs(secs)
            }
            Some(d) => d,
        };
        if master && !preempt {
            comments.push(
                "nopreempt dropped: keepalived clears it for an instance that starts as MASTER"
                    .to_owned(),
            );
            preempt = true;
        }
        if priority == 255 && !preempt {
            comments.push(
                "nopreempt dropped: the address owner (priority 255) always preempts".to_owned(),
            );
            preempt = true;
        }
        if virtual_addresses.is_empty() {
            self.skip(node, "the instance has no virtual address; not imported");
            return Ok(());
        }
        let instance = VrrpInstance {
            name,
            interface,
            vrid,
            priority,
            version,
            advert_interval,
            preempt,
            preempt_delay,
            virtual_addresses,
            unicast_peers: peers,
            source_address: source,
            auth,
            garp,
            virtual_mac: vmac,
            virtual_mac_interface: vmac_interface,
            notify,
            track_interfaces: interfaces,
            track_scripts: scripts,
            track_files: files,
            track_processes: processes,
        };
        let mut block = self.out.block(node.at.clone(), instance, mark);
        block.comments = comments;
        self.out.instances.push(block);
        Ok(())
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
        let mut notify = None;
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
                "notify" => {
                    notify = Some(required_arg(child, 1, "a script")?.to_owned());
                    self.skip(
                        child,
                        "the script is called with (group, old state, new state), not keepalived's arguments",
                    );
                }
                "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" => self.skip(
                    child,
                    "no per-state script; use notify, called with (group, old state, new state)",
                ),
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
            notify,
        };
        let block = self.out.block(node.at.clone(), group, mark);
        self.out.sync_groups.push(block);
        Ok(())
    }
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
