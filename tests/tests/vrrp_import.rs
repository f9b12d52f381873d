//! netns lane: keepalived as the oracle for what `lvsadm import` makes of VRRP.
//!
//! For every Debian keepalived sample with `vrrp_instance` blocks, two directors A and B run
//! keepalived with the sample, then vrrpd with the sample imported by `lvsadm import`. Each
//! pair must elect the same master per instance (the state of every instance on both nodes is
//! compared, BACKUP and FAULT included, with its effective priority, which tracking weights
//! move: keepalived logs each change, vrrpd reports it in its status) and leave each node
//! holding the same virtual addresses (`ip -br addr`, with prefix length).
//!
//! Both implementations see exactly the same two files, prepared once:
//!
//! - Addresses: the samples use 192.168.200/24, 192.168.201/24 and 10.1.0/24; they are mapped
//!   to 192.0.2/24, 198.51.100/24 and 203.0.113/24 (host part kept), and any other address
//!   left in the file fails the test, so all traffic stays in documentation ranges inside the
//!   namespaces made here.
//! - Left out (lines blanked): `virtual_server` and `virtual_server_group` (the IPVS side,
//!   which `keepalived --vrrp` does not read and `uml_import` compares), `static_ipaddress`,
//!   `static_routes`, `static_rules` (addresses, routes and rules that do not follow the
//!   election, and that the importer reports as unsupported), `virtual_routes` and
//!   `virtual_rules` (the samples' gateways lie outside the address mapping, one route is
//!   multipath and one rule's address is malformed; the `routes` module compares them on a
//!   file of its own), `notify*` lines (scripts that do not exist here; the `notify` module
//!   compares the calls) and `lvs_sync_daemon_interface` (IPVS connection sync, covered by
//!   syncd's own lanes).
//! - Added: `promote_secondaries` in every instance. vrrpd always sets it on its interfaces;
//!   keepalived does only when told, and without it a backup instance giving up its VIP (as
//!   one does when both nodes start together and briefly both claim it) makes the kernel drop
//!   every later address of that subnet, those of the instances that are master included.
//! - `vrrp_script` commands become `/bin/true` on both nodes: the samples probe sshd, haproxy
//!   and local ports, which would make the result depend on the host. Their weights still
//!   apply (all scripts succeed, so positive weights are added, negative ones are not).
//! - Conditional `@ID` lines: keepalived runs with `--config-id` naming no sample's ID, and the
//!   importer, given none, leaves `@ID` lines out and keeps `@^ID` ones: the same lines.
//!
//! A runs the file as it is. B's file is derived from it, instance by instance, so that each
//! instance has a natural owner: the state is swapped (MASTER <-> BACKUP, no state counting as
//! BACKUP) and the priority is set to A's base priority (keepalived's default when absent: 255
//! for MASTER, 100 for BACKUP) minus 10 where A is MASTER and plus 10 where A is BACKUP,
//! within 1..=254. Every `state`/`priority` line of the instance, conditional ones included, is
//! replaced by these two.
//!
//! Then, for the samples that track interfaces no instance runs on (`track_interface`), those
//! links go down on the node that is master of the first instance, and the pair must settle
//! the same way again: FAULT for the instances tracking them without weight, priorities moved
//! for those with one.
//!
//! Every interface a sample names (eth0..eth3 and the VLAN name eth0.1, here a plain veth of
//! that name) is a link of its own between A and B, through a bridge in a third namespace.
//! Addresses are compared with the interface holding them (the vmac interface `vrrp.<vrid>`
//! included, and the device a VIP's `dev` names).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lvs_tests::daemon::{control, start_logged};
use lvs_tests::netns::{Netns, veth};
use lvs_tests::process::{Guarded, which};
use lvs_tests::{lane_available, netns_missing};
use lvsadm::import::{self, Source};

/// The instance the addresses and routes oracles run, up to its first VIP: master A on eth0,
/// VRRPv3 at 100 ms; each file goes on with its own addresses and blocks.
macro_rules! vi1_master_head {
    () => {
        r#"vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 51
  priority 150
  version 3
  advert_int 0.1
  virtual_ipaddress {
    192.0.2.100/24
"#
    };
}

#[path = "vrrp_import/addresses.rs"]
mod addresses;
#[path = "vrrp_import/notify.rs"]
mod notify;
#[path = "vrrp_import/routes.rs"]
mod routes;

/// A scratch directory and a LAN of IPv4 hosts (`(role, cidr)`, each with eth0 on one bridge)
/// with keepalived at hand; `None` when the lane is missing here.
fn scratch_lan(
    hosts: &[(&str, &str)],
) -> Result<Option<(tempfile::TempDir, lvs_tests::lan::Lan)>, String> {
    if !lane_available("netns", missing()) {
        return Ok(None);
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    Ok(Some((dir, lvs_tests::lan::Lan::new(hosts)?)))
}

/// Where [`imported_vrrpd`] serves its metrics, inside its namespace (control.metrics + 1).
const METRICS: &str = "http://127.0.0.1:19641/metrics";

/// vrrpd in `host` on what `lvsadm import --strict` makes of `config`, its control socket in
/// `<dir>/<tag>`, its metrics at [`METRICS`].
fn imported_vrrpd(host: &Netns, dir: &Path, config: &Path, tag: &str) -> Result<Guarded, String> {
    let imported =
        import::import(Source::Keepalived, config, true).map_err(|e| format!("import: {e}"))?;
    let toml = dir.join(format!("{tag}.toml"));
    // Metrics on the namespace's own loopback: vrrpd's are at METRICS.
    let control = format!(
        "\n[control]\nsocket_dir = \"{}/{tag}\"\nmetrics = \"127.0.0.1:19640\"\n",
        dir.display()
    );
    std::fs::write(&toml, imported.toml + &control).map_err(|e| e.to_string())?;
    let vrrpd = lvs_tests::workspace_bin("vrrpd");
    host.spawn(&[vrrpd.as_os_str(), "--config".as_ref(), toml.as_os_str()])
}

/// The samples with `vrrp_instance` blocks; `every_vrrp_sample_is_covered` keeps this complete.
const SAMPLES: &[&str] = &[
    "SSL_GET",
    "conditional_conf",
    "sample",
    "track_interface",
    "vrrp",
    "vrrp.localcheck",
    "vrrp.lvs_syncd",
    "vrrp.routes",
    "vrrp.rules",
    "vrrp.scripts",
    "vrrp.static_ipaddress",
    "vrrp.sync",
];

/// Each interface a sample names, and A's and B's own address on it.
const LINKS: &[(&str, [&str; 2])] = &[
    ("eth0", ["192.0.2.201/24", "192.0.2.202/24"]),
    ("eth1", ["198.51.100.201/24", "198.51.100.202/24"]),
    ("eth2", ["203.0.113.65/26", "203.0.113.66/26"]),
    ("eth3", ["203.0.113.129/26", "203.0.113.130/26"]),
    ("eth0.1", ["203.0.113.193/26", "203.0.113.194/26"]),
];

const ADDRESS_MAP: &[(&str, &str)] = &[
    ("192.168.200.", "192.0.2."),
    ("192.168.201.", "198.51.100."),
    ("10.1.0.", "203.0.113."),
];

/// Addresses that may stay as they are: documentation ranges and loopback.
const ALLOWED: &[&str] = &["192.0.2.", "198.51.100.", "203.0.113.", "127."];

const LEFT_OUT_BLOCKS: &[&str] = &[
    "virtual_server",
    "virtual_server_group",
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "virtual_routes",
    "virtual_rules",
];

const LEFT_OUT_LINES: &[&str] = &[
    "notify",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "lvs_sync_daemon_interface",
];

/// Selects no `@ID` line of any sample.
const CONFIG_ID: &str = "lvs-oracle";

/// An election has settled when nothing changed for this long.
const STABLE: Duration = Duration::from_secs(6);
/// The slowest sample advertises every 12 s: its backup waits 3 intervals before taking over.
const SETTLE_LIMIT: Duration = Duration::from_secs(120);

const NODES: [&str; 2] = ["A", "B"];

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lvsadm/tests/import-fixtures/keepalived-samples")
}

fn missing() -> Option<String> {
    netns_missing().or_else(|| {
        which("keepalived")
            .is_none()
            .then(|| "keepalived is not installed".to_owned())
    })
}

/// The first word of a config line and the rest, after an optional `@ID`/`@^ID` prefix;
/// `conditional` says whether the line is left out without a matching config id.
struct Line<'a> {
    keyword: &'a str,
    conditional: bool,
}

fn line_of(text: &str) -> Line<'_> {
    let code = text.split(['#', '!']).next().unwrap_or("");
    let mut words = code.split_whitespace();
    let first = words.next().unwrap_or("");
    match first.strip_prefix('@') {
        Some(id) => Line {
            keyword: words.next().unwrap_or(""),
            conditional: !id.starts_with('^'),
        },
        None => Line {
            keyword: first,
            conditional: false,
        },
    }
}

fn braces(text: &str) -> (usize, usize) {
    let code = text.split(['#', '!']).next().unwrap_or("");
    (code.matches('{').count(), code.matches('}').count())
}

/// The sample as both implementations get it on A: blocks and lines left out (blanked),
/// scripts replaced, addresses mapped into documentation ranges.
fn prepare(sample: &str) -> Result<String, String> {
    let mut out = Vec::new();
    let mut skipping = 0usize;
    for text in sample.lines() {
        let line = line_of(text);
        let (open, close) = braces(text);
        if skipping == 0 && open > 0 && LEFT_OUT_BLOCKS.contains(&line.keyword) {
            skipping = open - close.min(open);
            out.push(String::new());
            continue;
        }
        if skipping > 0 {
            skipping = (skipping + open).saturating_sub(close);
            out.push(String::new());
            continue;
        }
        if LEFT_OUT_LINES.contains(&line.keyword) {
            out.push(String::new());
        } else if line.keyword == "vrrp_instance" {
            out.push(text.to_owned());
            out.push("    promote_secondaries".to_owned());
        } else if line.keyword == "script" {
            let at = text.find("script").unwrap_or(0);
            out.push(format!("{}script /bin/true", &text[..at]));
        } else {
            out.push(text.to_owned());
        }
    }
    map_addresses(&(out.join("\n") + "\n"))
}

/// Maps the samples' private ranges onto documentation ones; any other IPv4 address is an
/// error, so nothing can leak out of the test's ranges.
fn map_addresses(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        out.push_str(&rest[..start]);
        let token_len = rest[start..]
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len() - start);
        let token = &rest[start..start + token_len];
        let preceded = out
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !preceded && token.split('.').count() == 4 {
            let mapped = ADDRESS_MAP
                .iter()
                .find_map(|(from, to)| token.strip_prefix(from).map(|host| format!("{to}{host}")))
                .or_else(|| {
                    ALLOWED
                        .iter()
                        .any(|d| token.starts_with(d))
                        .then(|| token.to_owned())
                })
                .ok_or_else(|| format!("{token} is outside the address mapping"))?;
            out.push_str(&mapped);
        } else {
            out.push_str(token);
        }
        rest = &rest[start + token_len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The file as its vrrp_instance blocks (`Ok`, with their lines) and the lines between them.
fn split_instances(config: &str) -> Vec<Result<Vec<&str>, &str>> {
    let mut parts = Vec::new();
    let mut instance: Option<Vec<&str>> = None;
    let mut depth = 0usize;
    for text in config.lines() {
        let (open, close) = braces(text);
        if let Some(lines) = &mut instance {
            lines.push(text);
            depth = (depth + open).saturating_sub(close);
            if depth == 0 {
                parts.extend(instance.take().map(Ok));
            }
        } else if line_of(text).keyword == "vrrp_instance" && open > close {
            depth = open - close;
            instance = Some(vec![text]);
        } else {
            parts.push(Err(text));
        }
    }
    parts
}

/// B's file: in every vrrp_instance, the state swapped and the priority moved 10 past A's.
fn peer(prepared: &str) -> String {
    let lines: Vec<String> = split_instances(prepared)
        .into_iter()
        .flat_map(|part| match part {
            Ok(instance) => swapped(&instance),
            Err(line) => vec![line.to_owned()],
        })
        .collect();
    lines.join("\n") + "\n"
}

/// Indices of the `state` and `priority` lines directly in an instance block, conditional or
/// not.
fn state_lines(lines: &[&str]) -> Vec<usize> {
    let mut depth = 0usize;
    let mut found = Vec::new();
    for (i, text) in lines.iter().enumerate() {
        let keyword = line_of(text).keyword;
        if i > 0 && depth == 1 && (keyword == "state" || keyword == "priority") {
            found.push(i);
        }
        let (open, close) = braces(text);
        depth = (depth + open).saturating_sub(close);
    }
    found
}

/// Whether the instance starts as MASTER, and its base priority as keepalived reads them (no
/// `@ID` line applies; without a priority, 255 for MASTER and 100 otherwise).
fn base(lines: &[&str]) -> (bool, i32) {
    let mut master = false;
    let mut priority = None;
    for i in state_lines(lines) {
        let line = line_of(lines[i]);
        let value = lines[i].split_whitespace().last().unwrap_or("");
        match line.keyword {
            _ if line.conditional => {}
            "state" => master = value == "MASTER",
            _ => priority = value.parse::<i32>().ok(),
        }
    }
    (master, priority.unwrap_or(if master { 255 } else { 100 }))
}

/// Every instance's base priority in a file.
fn base_priorities(config: &str) -> BTreeMap<String, i32> {
    split_instances(config)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|lines| {
            let name = lines[0].split_whitespace().nth(1)?;
            Some((name.to_owned(), base(&lines).1))
        })
        .collect()
}

fn swapped(lines: &[&str]) -> Vec<String> {
    let (master, base) = base(lines);
    let replaced = state_lines(lines);
    let mut kept: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, text)| {
            if replaced.contains(&i) {
                String::new()
            } else {
                (*text).to_owned()
            }
        })
        .collect();
    let (state, priority) = if master {
        ("BACKUP", base - 10)
    } else {
        ("MASTER", base + 10)
    };
    let derived = format!("    state {state}\n    priority {}", priority.clamp(1, 254));
    kept.insert(1, derived);
    kept
}

/// Interfaces listed in a `track_interface` block that no instance uses as its `interface`:
/// taking them down moves tracking alone.
fn tracked_only(config: &str) -> Vec<String> {
    let mut used = BTreeSet::new();
    let mut tracked = BTreeSet::new();
    let mut depth = 0usize;
    for text in config.lines() {
        let line = line_of(text);
        let (open, close) = braces(text);
        if depth > 0 {
            depth = (depth + open).saturating_sub(close);
            if depth > 0 && !line.keyword.is_empty() && !line.conditional {
                tracked.insert(line.keyword.to_owned());
            }
        } else if line.keyword == "track_interface" && open > close {
            depth = open - close;
        } else if line.keyword == "interface"
            && let Some(name) = text.split_whitespace().nth(1)
        {
            used.insert(name.to_owned());
        }
    }
    tracked.difference(&used).cloned().collect()
}

/// A and B, with one link per interface name through bridges in a third namespace.
struct Pair {
    nodes: Vec<Netns>,
    _lan: Netns,
}

impl Pair {
    fn new() -> Result<Self, String> {
        let lan = Netns::new("vrrpimp-lan")?;
        let nodes = vec![Netns::new("vrrpimp-a")?, Netns::new("vrrpimp-b")?];
        for (l, (name, addresses)) in LINKS.iter().enumerate() {
            let bridge = format!("br{l}");
            lan.bridge(&bridge)?;
            for (n, node) in nodes.iter().enumerate() {
                let port = format!("p{l}n{n}");
                veth(node, name, &lan, &port)?;
                lan.attach(&port, &bridge)?;
                node.addr(name, addresses[n])?;
            }
        }
        Ok(Pair { nodes, _lan: lan })
    }
}

/// keepalived logs to the console; its state changes are read from there.
fn spawn_logged(node: &Netns, argv: &[&std::ffi::OsStr], log: &Path) -> Result<Guarded, String> {
    let file = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let copy = file.try_clone().map_err(|e| e.to_string())?;
    let mut command = node.command(argv);
    command.stdout(file).stderr(copy);
    Guarded::spawn(&mut command)
}

/// What a pair settled on: each instance's state on A and B, and each node's addresses beyond
/// its own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    states: BTreeMap<String, [String; 2]>,
    addresses: [BTreeSet<String>; 2],
}

impl Outcome {
    fn elected(&self) -> bool {
        !self.states.is_empty()
            && self
                .states
                .values()
                .all(|s| s.iter().filter(|s| s.starts_with("MASTER")).count() == 1)
    }

    fn describe(&self) -> String {
        let mut text = String::new();
        for (instance, [a, b]) in &self.states {
            text += &format!("  {instance}: A {a}, B {b}\n");
        }
        for (node, addresses) in NODES.iter().zip(&self.addresses) {
            let list: Vec<&str> = addresses.iter().map(String::as_str).collect();
            text += &format!("  {node} holds [{}]\n", list.join(" "));
        }
        text
    }
}

/// Addresses on the node that are not its own link addresses (nor loopback or link-local), as
/// `interface:address`.
fn held(node: &Netns, own: usize) -> Result<BTreeSet<String>, String> {
    let out = node.stdout(&["ip", "-br", "addr"])?;
    let own: BTreeSet<&str> = LINKS.iter().map(|(_, a)| a[own]).collect();
    let mut held = BTreeSet::new();
    for line in out.lines() {
        let mut words = line.split_whitespace();
        let interface = words.next().unwrap_or("").split('@').next().unwrap_or("");
        for address in words.skip(1) {
            if own.contains(address)
                || address.starts_with("fe80:")
                || address.starts_with("127.")
                || address == "::1/128"
            {
                continue;
            }
            held.insert(format!("{interface}:{address}"));
        }
    }
    Ok(held)
}

/// How an instance stands on a node: its state, with its effective priority unless FAULT
/// (where it does not count).
fn standing(state: &str, priority: i64) -> String {
    if state == "FAULT" {
        state.to_owned()
    } else {
        format!("{state} {priority}")
    }
}

/// The last state keepalived logged for each instance, with the effective priority it last
/// logged a change to (the base priority from the file until it logs one).
fn keepalived_states(log: &Path, bases: &BTreeMap<String, i32>) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut states = BTreeMap::new();
    let mut priorities: BTreeMap<&str, i64> = bases
        .iter()
        .map(|(name, base)| (name.as_str(), i64::from(*base)))
        .collect();
    for line in text.lines() {
        let Some((_, after)) = line.split_once(": (") else {
            continue;
        };
        let Some((instance, event)) = after.split_once(") ") else {
            continue;
        };
        if let Some(state) = event.strip_prefix("Entering ") {
            let state = state.split_whitespace().next().unwrap_or("");
            states.insert(instance.to_owned(), state.to_owned());
        } else if let Some(change) = event.strip_prefix("Changing effective priority from ")
            && let Some(to) = change
                .split_whitespace()
                .last()
                .and_then(|p| p.parse().ok())
            && let Some(priority) = priorities.get_mut(instance)
        {
            *priority = to;
        }
    }
    states
        .into_iter()
        .map(|(name, state)| {
            let priority = priorities.get(name.as_str()).copied().unwrap_or(0);
            let standing = standing(&state, priority);
            (name, standing)
        })
        .collect()
}

fn vrrpd_states(socket: &Path) -> BTreeMap<String, String> {
    let Ok(status) = control(socket, &serde_json::json!({"cmd": "status"})) else {
        return BTreeMap::new();
    };
    status["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let standing = standing(i["state"].as_str()?, i["priority"].as_i64()?);
            Some((i["name"].as_str()?.to_owned(), standing))
        })
        .collect()
}

/// Polls until every instance has one master and nothing changed for [`STABLE`].
fn settle(
    pair: &Pair,
    states: &dyn Fn(usize) -> BTreeMap<String, String>,
) -> Result<Outcome, String> {
    let started = Instant::now();
    let mut last: Option<(Outcome, Instant)> = None;
    loop {
        let per_node = [states(0), states(1)];
        let names: BTreeSet<&String> = per_node.iter().flat_map(BTreeMap::keys).collect();
        let none = String::from("-");
        let outcome = Outcome {
            states: names
                .into_iter()
                .map(|name| {
                    let of = |n: usize| per_node[n].get(name).unwrap_or(&none).clone();
                    (name.clone(), [of(0), of(1)])
                })
                .collect(),
            addresses: [held(&pair.nodes[0], 0)?, held(&pair.nodes[1], 1)?],
        };
        let since = match last.take() {
            Some((previous, since)) if previous == outcome => since,
            _ => Instant::now(),
        };
        if outcome.elected() && since.elapsed() >= STABLE {
            return Ok(outcome);
        }
        if started.elapsed() > SETTLE_LIMIT {
            return Err(format!(
                "no settled election within {SETTLE_LIMIT:?}:\n{}",
                outcome.describe()
            ));
        }
        last = Some((outcome, since));
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The first election; then, if there are `tracked_only` links, the one after they go down on
/// the master of the first instance.
fn elections(
    pair: &Pair,
    states: &dyn Fn(usize) -> BTreeMap<String, String>,
    tracked_only: &[String],
) -> Result<Vec<Outcome>, String> {
    let first = settle(pair, states)?;
    if tracked_only.is_empty() {
        return Ok(vec![first]);
    }
    let node = first
        .states
        .values()
        .next()
        .and_then(|s| s.iter().position(|s| s.starts_with("MASTER")))
        .unwrap_or(0);
    for link in tracked_only {
        pair.nodes[node].ip(&["link", "set", link, "down"])?;
    }
    // Both notice a link going down at once (netlink); the pause only keeps the unchanged
    // first outcome from counting as settled before they have.
    std::thread::sleep(Duration::from_secs(2));
    let second = settle(pair, states).map_err(|e| {
        format!(
            "after {} went down on {}: {e}",
            tracked_only.join(" "),
            NODES[node]
        )
    })?;
    Ok(vec![first, second])
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Ends both daemons the way an operator would and reports how the pair had settled.
fn finish(
    mut daemons: Vec<Guarded>,
    outcome: Result<Vec<Outcome>, String>,
    logs: &[PathBuf],
) -> Result<Vec<Outcome>, String> {
    for daemon in &mut daemons {
        daemon.signal(libc::SIGTERM);
    }
    for daemon in &mut daemons {
        daemon.wait_timeout(Duration::from_secs(15))?;
    }
    outcome.map_err(|e| {
        let logs: Vec<String> = logs
            .iter()
            .map(|l| format!("--- {}\n{}", l.display(), tail(l)))
            .collect();
        format!("{e}\n{}", logs.join("\n"))
    })
}

/// One node's daemon, where it logs, and how to read how its instances stand.
struct Started {
    daemon: Guarded,
    log: PathBuf,
    states: Box<dyn Fn() -> BTreeMap<String, String>>,
}

type Start = fn(&Netns, usize, &Path, &Path) -> Result<Started, String>;

fn keepalived(node: &Netns, n: usize, dir: &Path, config: &Path) -> Result<Started, String> {
    let bases = base_priorities(&std::fs::read_to_string(config).map_err(|e| e.to_string())?);
    let log = dir.join(format!("keepalived-{}.log", NODES[n]));
    let pid = dir.join(format!("keepalived-{}.pid", NODES[n]));
    let vrrp_pid = dir.join(format!("keepalived-{}.vrrp.pid", NODES[n]));
    let argv: [&std::ffi::OsStr; 12] = [
        "keepalived".as_ref(),
        "--dont-fork".as_ref(),
        "--log-console".as_ref(),
        "--vrrp".as_ref(),
        "--config-id".as_ref(),
        CONFIG_ID.as_ref(),
        "--use-file".as_ref(),
        config.as_os_str(),
        "--pid".as_ref(),
        pid.as_os_str(),
        "--vrrp_pid".as_ref(),
        vrrp_pid.as_os_str(),
    ];
    let daemon = spawn_logged(node, &argv, &log)?;
    let read = log.clone();
    Ok(Started {
        daemon,
        log,
        states: Box::new(move || keepalived_states(&read, &bases)),
    })
}

/// vrrpd on the file `lvsadm import` makes of `config`.
fn vrrpd(node: &Netns, n: usize, dir: &Path, config: &Path) -> Result<Started, String> {
    let imported = import::import(Source::Keepalived, config, false)
        .map_err(|e| format!("import {}: {e}", config.display()))?;
    let sockets_dir = dir.join(format!("vrrpd-{}", NODES[n]));
    let toml = dir.join(format!("{}.toml", NODES[n]));
    let control = format!("\n[control]\nsocket_dir = \"{}\"\n", sockets_dir.display());
    std::fs::write(&toml, imported.toml + &control).map_err(|e| e.to_string())?;
    let log = dir.join(format!("vrrpd-{}.log", NODES[n]));
    let socket = sockets_dir.join("vrrpd.sock");
    let daemon = start_logged(node, "vrrpd", &toml, &socket, Some(&log))?;
    Ok(Started {
        daemon,
        log,
        states: Box::new(move || vrrpd_states(&socket)),
    })
}

/// Starts one implementation on both nodes and returns how their elections settled.
fn run_pair(
    start: Start,
    dir: &Path,
    configs: &[PathBuf; 2],
    tracked_only: &[String],
) -> Result<Vec<Outcome>, String> {
    // A fresh pair of namespaces for each implementation, dropped after the daemons.
    let pair = Pair::new()?;
    let mut started = Vec::new();
    for (n, node) in pair.nodes.iter().enumerate() {
        started.push(start(node, n, dir, &configs[n])?);
    }
    let outcome = elections(&pair, &|n| (started[n].states)(), tracked_only);
    let logs: Vec<PathBuf> = started.iter().map(|s| s.log.clone()).collect();
    finish(
        started.into_iter().map(|s| s.daemon).collect(),
        outcome,
        &logs,
    )
}

/// The oracle for one sample.
fn same_election(sample: &str) -> Result<(), String> {
    if !lane_available("netns", missing()) {
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let original = std::fs::read_to_string(samples_dir().join(format!("keepalived.conf.{sample}")))
        .map_err(|e| e.to_string())?;
    let a = prepare(&original).map_err(|e| format!("{sample}: {e}"))?;
    let b = peer(&a);
    let configs = [dir.path().join("A.conf"), dir.path().join("B.conf")];
    std::fs::write(&configs[0], &a).map_err(|e| e.to_string())?;
    std::fs::write(&configs[1], &b).map_err(|e| e.to_string())?;

    let down = tracked_only(&a);
    let expected = run_pair(keepalived, dir.path(), &configs, &down)
        .map_err(|e| format!("keepalived: {e}"))?;
    let got = run_pair(vrrpd, dir.path(), &configs, &down).map_err(|e| format!("vrrpd: {e}"))?;
    let describe = |outcomes: &[Outcome]| -> String {
        let phases = [
            "first election".to_owned(),
            format!("{} down", down.join(" ")),
        ];
        outcomes
            .iter()
            .zip(phases)
            .map(|(o, phase)| format!(" {phase}:\n{}", o.describe()))
            .collect()
    };
    if expected != got {
        let logs: Vec<String> = NODES
            .iter()
            .map(|n| dir.path().join(format!("vrrpd-{n}.log")))
            .map(|l| format!("--- {}\n{}", l.display(), tail(&l)))
            .collect();
        return Err(format!(
            "{sample}: the elections differ\nkeepalived:\n{}vrrpd (imported):\n{}{}",
            describe(&expected),
            describe(&got),
            logs.join("\n")
        ));
    }
    assert!(
        expected[0].addresses.iter().any(|a| !a.is_empty()),
        "{sample}: no node holds an address"
    );
    println!("{sample}: same elections\n{}", describe(&expected));
    Ok(())
}

#[test]
fn every_vrrp_sample_is_covered() {
    let mut with_vrrp = Vec::new();
    for entry in std::fs::read_dir(samples_dir()).expect("samples") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if let Some(sample) = name.strip_prefix("keepalived.conf.")
            && text.contains("vrrp_instance")
        {
            with_vrrp.push(sample.to_owned());
        }
    }
    with_vrrp.sort();
    let mut listed: Vec<String> = SAMPLES.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(with_vrrp, listed);
}

#[test]
fn tracked_only_interfaces_are_those_no_instance_runs_on() {
    let config = "vrrp_instance X {\n  interface eth0\n  track_interface {\n    eth0\n    eth2 weight -2\n    eth3\n  }\n}\n";
    assert_eq!(tracked_only(config), ["eth2", "eth3"]);
}

#[test]
fn peer_swaps_state_and_moves_priority() {
    let a = "vrrp_instance X {\n    state MASTER\n    priority 100\n    track_script {\n      chk weight 2\n    }\n}\n\
             vrrp_instance Y {\n@high priority 170\n    nopreempt\n}\n";
    let b = peer(a);
    let lines: Vec<&str> = b.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines,
        [
            "vrrp_instance X {",
            "state BACKUP",
            "priority 90",
            "track_script {",
            "chk weight 2",
            "}",
            "}",
            "vrrp_instance Y {",
            "state MASTER",
            "priority 110",
            "nopreempt",
            "}",
        ]
    );
}

#[test]
fn addresses_outside_the_mapping_are_refused() {
    assert_eq!(
        map_addresses("a 192.168.200.16/25 b 10.1.0.254 c 192.0.2.1").as_deref(),
        Ok("a 192.0.2.16/25 b 203.0.113.254 c 192.0.2.1")
    );
    assert!(map_addresses("gw 192.168.100.1").is_err());
    assert_eq!(
        map_addresses("advert_int 1.5").as_deref(),
        Ok("advert_int 1.5")
    );
}

macro_rules! oracle {
    ($($test:ident => $sample:literal,)*) => {
        $(
            #[test]
            fn $test() -> Result<(), String> {
                same_election($sample)
            }
        )*
    };
}

oracle! {
    ssl_get => "SSL_GET",
    conditional_conf => "conditional_conf",
    sample => "sample",
    track_interface => "track_interface",
    vrrp => "vrrp",
    vrrp_localcheck => "vrrp.localcheck",
    vrrp_lvs_syncd => "vrrp.lvs_syncd",
    vrrp_routes => "vrrp.routes",
    vrrp_rules => "vrrp.rules",
    vrrp_scripts => "vrrp.scripts",
    vrrp_static_ipaddress => "vrrp.static_ipaddress",
    vrrp_sync => "vrrp.sync",
}
