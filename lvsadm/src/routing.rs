//! The routing engine's side of `[announce]` (issue 18): `lvsadm routing-config --engine
//! frr|bird` prints what FRR or BIRD needs to redistribute exactly the VIP routes vrrpd
//! installs, with their BGP attributes and a BFD profile; `lvsadm announce drain|resume`
//! withdraws a VIP and lets it be announced again; `lvsadm vrrp` shows the announcements.
//!
//! FRR 8.4 cannot match a kernel route's protocol number: zebra files every kernel route of a
//! protocol it does not own as "kernel". So the route-map matches `source-protocol kernel` and
//! a prefix-list of exactly the configured VIPs, one route-map entry per VIP with its own
//! attributes. BIRD 2 can: its kernel protocol learns the routes and `krt_source` is their
//! protocol number.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

use lvs_config::{Announce, AnnounceVip};
use lvs_proto::vrrpd;

/// The route-map (FRR) and filter (BIRD) name, and the BFD profile's.
pub const NAME: &str = "LVS-VIPS";
/// BFD timers for a fast withdrawal (issue 18: 100 ms x 3, a dead director is gone from the
/// router in about 300 ms).
pub const BFD_INTERVAL_MS: u32 = 100;
pub const BFD_MULTIPLIER: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    Frr,
    Bird,
}

fn host(vip: IpAddr) -> String {
    match vip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

/// FRR (frr.conf / vtysh syntax): prefix-lists, the route-map, the BFD profile and, with
/// `asn`, the `router bgp` lines that redistribute through it (merged into the operator's
/// `router bgp` of that number); without it, those lines as comments to copy.
pub fn frr(announce: &Announce, asn: Option<u32>) -> String {
    let mut out = format!(
        "! lvs-director: VIPs vrrpd announces as kernel routes (proto {}); `lvsadm routing-config --engine frr`\n",
        announce.protocol
    );
    for (i, vip) in announce.vip.iter().enumerate() {
        let family = if vip.address.is_ipv4() { "ip" } else { "ipv6" };
        let _ = writeln!(
            out,
            "{family} prefix-list {NAME}-{} seq 5 permit {}",
            i + 1,
            host(vip.address)
        );
    }
    for (i, vip) in announce.vip.iter().enumerate() {
        let family = if vip.address.is_ipv4() { "ip" } else { "ipv6" };
        let _ = writeln!(out, "route-map {NAME} permit {}", (i + 1) * 10);
        let _ = writeln!(out, " match source-protocol kernel");
        let _ = writeln!(out, " match {family} address prefix-list {NAME}-{}", i + 1);
        frr_attributes(&mut out, vip);
        out.push_str("exit\n");
    }
    let _ = write!(
        out,
        "bfd\n profile {NAME}\n  detect-multiplier {BFD_MULTIPLIER}\n  receive-interval {BFD_INTERVAL_MS}\n  transmit-interval {BFD_INTERVAL_MS}\n exit\nexit\n"
    );
    let comment = if asn.is_some() { "" } else { "! " };
    let _ = writeln!(
        out,
        "{comment}router bgp {}",
        asn.map_or("ASN".to_owned(), |n| n.to_string())
    );
    let _ = writeln!(
        out,
        "{comment} ! each neighbor toward the router: neighbor ROUTER bfd profile {NAME}"
    );
    for (family, v4) in [("ipv4", true), ("ipv6", false)] {
        if announce.vip.iter().any(|v| v.address.is_ipv4() == v4) {
            let _ = writeln!(out, "{comment} address-family {family} unicast");
            let _ = writeln!(out, "{comment}  redistribute kernel route-map {NAME}");
            let _ = writeln!(out, "{comment} exit-address-family");
        }
    }
    let _ = writeln!(out, "{comment}exit");
    out
}

fn frr_attributes(out: &mut String, vip: &AnnounceVip) {
    if let Some(med) = vip.med {
        let _ = writeln!(out, " set metric {med}");
    }
    if let Some(pref) = vip.local_pref {
        let _ = writeln!(out, " set local-preference {pref}");
    }
    if !vip.communities.is_empty() {
        let list: Vec<String> = vip.communities.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, " set community {} additive", list.join(" "));
    }
}

/// BIRD 2 (bird.conf): a kernel protocol per family that learns the routes of our protocol
/// number, the export filter with each VIP's attributes, a BFD protocol, and a BGP template to
/// derive the sessions from (`protocol bgp r1 from lvs_director { neighbor ...; local as ...; }`).
pub fn bird(announce: &Announce) -> String {
    let proto = announce.protocol;
    let mut out = format!(
        "# lvs-director: VIPs vrrpd announces as kernel routes (proto {proto}); `lvsadm routing-config --engine bird`\n\
         # If bird.conf has a kernel protocol on the main table already, add `learn;` and this\n\
         # import to it instead: BIRD syncs one kernel table per protocol.\n"
    );
    for (family, v4) in [("ipv4", true), ("ipv6", false)] {
        if announce.vip.iter().any(|v| v.address.is_ipv4() == v4) {
            let _ = write!(
                out,
                "protocol kernel lvs_vips_{family} {{\n  learn;\n  {family} {{ import where krt_source = {proto}; export none; }};\n}}\n"
            );
        }
    }
    let _ = writeln!(out, "filter lvs_vips {{");
    let _ = writeln!(
        out,
        "  if proto != \"lvs_vips_ipv4\" && proto != \"lvs_vips_ipv6\" then reject;"
    );
    for vip in &announce.vip {
        let mut set = String::new();
        if let Some(med) = vip.med {
            let _ = write!(set, " bgp_med = {med};");
        }
        if let Some(pref) = vip.local_pref {
            let _ = write!(set, " bgp_local_pref = {pref};");
        }
        for community in &vip.communities {
            let (asn, value) = community.halves();
            let _ = write!(set, " bgp_community.add(({asn},{value}));");
        }
        let _ = writeln!(
            out,
            "  if net = {} then {{{set} accept; }}",
            host(vip.address)
        );
    }
    let _ = writeln!(out, "  reject;\n}}");
    let _ = write!(
        out,
        "protocol bfd lvs_bfd {{\n  interface \"*\" {{ interval {BFD_INTERVAL_MS} ms; multiplier {BFD_MULTIPLIER}; }};\n}}\n"
    );
    // BIRD closes a session whose BFD session is down, then waits `error wait time` (60 s at
    // first by default) before it tries again: a BFD session still coming up at the start
    // cost a director a minute out of the router's paths (seen in the netns test).
    let _ = writeln!(
        out,
        "template bgp lvs_director {{\n  bfd on;\n  error wait time 1, 30;\n  connect retry time 5;"
    );
    for (family, v4) in [("ipv4", true), ("ipv6", false)] {
        if announce.vip.iter().any(|v| v.address.is_ipv4() == v4) {
            let _ = writeln!(
                out,
                "  {family} {{ import none; export filter lvs_vips; }};"
            );
        }
    }
    out.push_str("}\n");
    out
}

/// `lvsadm routing-config`: the snippet for the config's `[announce]` VIPs.
pub fn run(config: &lvs_config::ConfigArgs, engine: Engine, asn: Option<u32>) -> ExitCode {
    let config = match config.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(lvs_config::EX_CONFIG as u8);
        }
    };
    let Some(announce) = config.announce.filter(|a| !a.vip.is_empty()) else {
        eprintln!("lvsadm: the config announces no VIP ([[announce.vip]])");
        return ExitCode::from(lvs_config::EX_CONFIG as u8);
    };
    print!(
        "{}",
        match engine {
            Engine::Frr => frr(&announce, asn),
            Engine::Bird => bird(&announce),
        }
    );
    ExitCode::SUCCESS
}

/// `lvsadm announce drain|resume [VIP]`.
pub fn drain(socket_dir: &Path, vip: Option<IpAddr>, drain: bool) -> ExitCode {
    crate::status::ask(
        socket_dir,
        "vrrpd",
        &vrrpd::Request::Announce { drain, vip },
        false,
        |status: &vrrpd::Status| status.announce.as_ref().map_or(String::new(), text),
    )
}

/// What `lvsadm announce drain --wait` reads of a VIP's IPVS services: their destinations'
/// active connections and the packets they received (the kernel's counter, folded in every
/// 2 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VipLoad {
    pub active: u64,
    pub inpkts: u64,
}

/// Why a drain is over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Drained {
    /// No active connection is left here.
    NoConnections,
    /// No packet arrived for this long: the flows moved to other directors (whose synced
    /// entries still count as active here) or finished.
    Quiet(std::time::Duration),
}

/// Decides, reading by reading, when a withdrawn VIP is drained: sans-IO, the caller reads
/// the kernel and the clock.
#[derive(Debug)]
pub struct DrainWatch {
    quiet: std::time::Duration,
    last: Option<(u64, std::time::Instant)>,
}

impl DrainWatch {
    pub fn new(quiet: std::time::Duration) -> Self {
        DrainWatch { quiet, last: None }
    }

    /// One reading at `now`; `Some` once drained.
    pub fn observe(&mut self, load: VipLoad, now: std::time::Instant) -> Option<Drained> {
        if load.active == 0 {
            return Some(Drained::NoConnections);
        }
        match self.last {
            Some((inpkts, since)) if inpkts == load.inpkts => {
                let quiet = now.saturating_duration_since(since);
                (quiet >= self.quiet).then_some(Drained::Quiet(quiet))
            }
            _ => {
                self.last = Some((load.inpkts, now));
                None
            }
        }
    }
}

/// The load of the IPVS services at `vips` (any port and protocol) in this host's kernel.
fn vip_load(
    client: &mut lvs_ipvs::IpvsClient,
    vips: &[IpAddr],
) -> Result<VipLoad, lvs_ipvs::Error> {
    let mut load = VipLoad {
        active: 0,
        inpkts: 0,
    };
    for service in client.services()? {
        let lvs_ipvs::ServiceKey::Inet { addr, .. } = service.key else {
            continue;
        };
        if !vips.contains(&addr) {
            continue;
        }
        load.inpkts += service.stats.map_or(0, |s| s.inpkts);
        for dest in client.destinations(&service.key)? {
            load.active += u64::from(dest.active_conns);
        }
    }
    Ok(load)
}

/// `lvsadm announce drain --wait`: after the withdrawal, polls the kernel every 500 ms until
/// [`DrainWatch`] says drained (exit 0) or `timeout` passes (exit 75, EX_TEMPFAIL).
pub fn wait_drained(
    config: &lvs_config::ConfigArgs,
    vip: Option<IpAddr>,
    timeout: std::time::Duration,
    quiet: std::time::Duration,
) -> ExitCode {
    let vips: Vec<IpAddr> = match vip {
        Some(vip) => vec![vip],
        None => match config.load() {
            Ok(c) => c
                .announce
                .map(|a| a.vip.iter().map(|v| v.address).collect())
                .unwrap_or_default(),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(lvs_config::EX_CONFIG as u8);
            }
        },
    };
    let mut client = match lvs_ipvs::IpvsClient::connect() {
        Ok(client) => client,
        Err(e) => {
            eprintln!("lvsadm: IPVS: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    let mut watch = DrainWatch::new(quiet);
    loop {
        let load = match vip_load(&mut client, &vips) {
            Ok(load) => load,
            Err(e) => {
                eprintln!("lvsadm: IPVS: {e}");
                return ExitCode::FAILURE;
            }
        };
        let now = std::time::Instant::now();
        let waited = now.saturating_duration_since(started).as_secs_f64();
        if let Some(drained) = watch.observe(load, now) {
            let why = match drained {
                Drained::NoConnections => "no active connection left".to_owned(),
                Drained::Quiet(q) => format!(
                    "no packet for {:.1}s ({} active entries, synced or finishing)",
                    q.as_secs_f64(),
                    load.active
                ),
            };
            println!("drained after {waited:.1}s: {why}");
            return ExitCode::SUCCESS;
        }
        if now.saturating_duration_since(started) >= timeout {
            println!(
                "not drained after {waited:.1}s: {} active connections, packets still arriving",
                load.active
            );
            return ExitCode::from(75);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// What FRR's bgpd on this director says of the announced VIPs, from its JSON: for each BGP
/// neighbor of the VIPs' address families, its session state and which VIPs it is sent
/// (`summary`: `show bgp <afi> unicast summary json`; `advertised`: per neighbor, `show bgp
/// <afi> unicast neighbors N advertised-routes json`). A VIP vrrpd announces but no
/// established neighbor is sent reaches no router.
pub fn render_frr(
    afi: &str,
    summary: &serde_json::Value,
    advertised: &[(String, serde_json::Value)],
    vips: &[IpAddr],
) -> String {
    let mut out = String::new();
    let Some(peers) = summary["peers"].as_object() else {
        return out;
    };
    for (peer, about) in peers {
        let state = about["state"].as_str().unwrap_or("unknown");
        let sent = advertised
            .iter()
            .find(|(p, _)| p == peer)
            .and_then(|(_, a)| a["advertisedRoutes"].as_object());
        let vips: Vec<String> = vips
            .iter()
            .map(|vip| {
                let prefix = match vip {
                    IpAddr::V4(_) => format!("{vip}/32"),
                    IpAddr::V6(_) => format!("{vip}/128"),
                };
                let to = if sent.is_some_and(|s| s.contains_key(&prefix)) {
                    "advertised"
                } else {
                    "NOT advertised"
                };
                format!("{prefix} {to}")
            })
            .collect();
        let _ = writeln!(
            out,
            "bgp (FRR) {afi} neighbor {peer} (AS {}): {state}{}{}",
            about["remoteAs"],
            if vips.is_empty() { "" } else { "; " },
            vips.join(", ")
        );
    }
    out
}

/// Why FRR's view could not be read.
#[derive(Debug, thiserror::Error)]
enum VtyshError {
    #[error("{0}")]
    Spawn(std::io::Error),
    #[error("{0}")]
    Failed(String),
    #[error("{command}: {source}")]
    Json {
        command: String,
        source: serde_json::Error,
    },
}

impl VtyshError {
    /// vtysh is not installed, or no FRR daemon answers it: FRR does not run here.
    fn frr_absent(&self) -> bool {
        match self {
            VtyshError::Spawn(e) => e.kind() == std::io::ErrorKind::NotFound,
            VtyshError::Failed(said) => {
                said.contains("No such file") || said.contains("failed to connect")
            }
            VtyshError::Json { .. } => false,
        }
    }
}

/// [`render_frr`] for the VIPs of each family, from `vtysh` (`-N pathspace` when given).
/// Empty when vtysh is not installed or reaches no FRR daemon (FRR does not run here); any
/// other failure is said in one line.
pub fn frr_view(pathspace: Option<&str>, vips: &[IpAddr]) -> String {
    let vtysh = |command: &str| -> Result<serde_json::Value, VtyshError> {
        let mut vtysh = std::process::Command::new("vtysh");
        if let Some(name) = pathspace {
            vtysh.args(["-N", name]);
        }
        let output = vtysh
            .args(["-c", command])
            .output()
            .map_err(VtyshError::Spawn)?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            return Err(VtyshError::Failed(said));
        }
        serde_json::from_slice(&output.stdout).map_err(|source| VtyshError::Json {
            command: command.to_owned(),
            source,
        })
    };
    let mut out = String::new();
    for (afi, v4) in [("ipv4", true), ("ipv6", false)] {
        let family: Vec<IpAddr> = vips.iter().copied().filter(|v| v.is_ipv4() == v4).collect();
        if family.is_empty() {
            continue;
        }
        let summary = match vtysh(&format!("show bgp {afi} unicast summary json")) {
            Ok(summary) => summary,
            // No vtysh, or no FRR running here (BIRD may announce instead).
            Err(e) if e.frr_absent() => return String::new(),
            Err(e) => {
                let _ = writeln!(out, "bgp (FRR): vtysh: {e}");
                continue;
            }
        };
        let peers: Vec<String> = summary["peers"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let advertised: Vec<(String, serde_json::Value)> = peers
            .into_iter()
            .filter_map(|peer| {
                let show =
                    format!("show bgp {afi} unicast neighbors {peer} advertised-routes json");
                vtysh(&show).ok().map(|a| (peer, a))
            })
            .collect();
        out.push_str(&render_frr(afi, &summary, &advertised, &family));
    }
    out
}

/// The announcements, one line per VIP, for `lvsadm vrrp` and `lvsadm announce`.
pub fn text(announce: &vrrpd::AnnounceStatus) -> String {
    let mut out = String::new();
    for vip in &announce.vips {
        let state = if vip.announced {
            "announced".to_owned()
        } else {
            let reason = vip.reason.as_deref().unwrap_or("withdrawn");
            match &vip.service {
                Some(service) => format!("WITHDRAWN ({reason}: {service})"),
                None => format!("WITHDRAWN ({reason})"),
            }
        };
        let _ = writeln!(
            out,
            "announce {} (proto {}): {state} for {:.1}s{}",
            vip.address,
            announce.protocol,
            vip.for_secs,
            if vip.drained { ", drained" } else { "" }
        );
    }
    for (cause, n) in &announce.errors {
        let _ = writeln!(out, "  route changes refused: {n} ({cause})");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FRR's view: each neighbor's state and, per VIP, whether bgpd sends it there (from the
    /// JSON FRR 8.4 prints, trimmed); a neighbor that is not established is sent nothing.
    #[test]
    fn frr_view_says_which_neighbor_is_sent_which_vip() {
        let summary = serde_json::json!({"peers": {
            "203.0.113.1": {"remoteAs": 65000, "state": "Established", "pfxSnt": 1},
            "203.0.113.2": {"remoteAs": 65000, "state": "Active", "pfxSnt": 0}
        }});
        let advertised = vec![(
            "203.0.113.1".to_owned(),
            serde_json::json!({"advertisedRoutes": {"192.0.2.100/32": {"addrPrefix": "192.0.2.100"}}}),
        )];
        let vips: Vec<IpAddr> = vec![
            "192.0.2.100".parse().unwrap(),
            "192.0.2.101".parse().unwrap(),
        ];
        let text = render_frr("ipv4", &summary, &advertised, &vips);
        assert_eq!(
            text,
            "bgp (FRR) ipv4 neighbor 203.0.113.1 (AS 65000): Established; 192.0.2.100/32 advertised, 192.0.2.101/32 NOT advertised\n\
             bgp (FRR) ipv4 neighbor 203.0.113.2 (AS 65000): Active; 192.0.2.100/32 NOT advertised, 192.0.2.101/32 NOT advertised\n"
        );
        assert_eq!(render_frr("ipv4", &serde_json::json!({}), &[], &vips), "");
    }

    /// A drain is over when no connection is left, or when the VIP's packet counter stood
    /// still for the quiet time (flows moved; synced entries of flows served elsewhere stay
    /// active); a counter that moves restarts the quiet time.
    #[test]
    fn a_drain_ends_with_no_connections_or_no_packets_for_the_quiet_time() {
        use std::time::{Duration, Instant};
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let load = |active, inpkts| VipLoad { active, inpkts };
        let mut watch = DrainWatch::new(s(5));
        assert_eq!(watch.observe(load(10, 100), t0), None);
        assert_eq!(watch.observe(load(10, 100), t0 + s(4)), None);
        assert_eq!(
            watch.observe(load(10, 150), t0 + s(6)),
            None,
            "packets came"
        );
        assert_eq!(watch.observe(load(10, 150), t0 + s(10)), None);
        assert_eq!(
            watch.observe(load(10, 150), t0 + s(11)),
            Some(Drained::Quiet(s(5)))
        );
        let mut watch = DrainWatch::new(s(5));
        assert_eq!(
            watch.observe(load(0, 150), t0),
            Some(Drained::NoConnections)
        );
    }

    fn announce() -> Announce {
        let text = r#"
[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
[[virtual_server.real]]
address = "198.51.100.11:80"
[announce]
protocol = 251
[[announce.vip]]
address = "192.0.2.100"
services = ["web"]
med = 50
local_pref = 200
communities = ["65000:100", "no-export"]
[[announce.vip]]
address = "2001:db8::100"
services = ["web"]
"#;
        lvs_config::parse(text, "t.toml").unwrap().announce.unwrap()
    }

    /// Each VIP gets its own prefix-list and route-map entry with its attributes; IPv6 VIPs
    /// go through `ipv6` lists and the ipv6 address family; the BFD profile is 100 ms x 3.
    /// (Whether FRR accepts the text is `tests/tests/bgp.rs`'s, with vtysh and bgpd.)
    #[test]
    fn frr_snippet_names_each_vip_with_its_attributes() {
        let text = frr(&announce(), Some(65001));
        for line in [
            "ip prefix-list LVS-VIPS-1 seq 5 permit 192.0.2.100/32",
            "ipv6 prefix-list LVS-VIPS-2 seq 5 permit 2001:db8::100/128",
            "route-map LVS-VIPS permit 10\n match source-protocol kernel\n match ip address prefix-list LVS-VIPS-1\n set metric 50\n set local-preference 200\n set community 65000:100 no-export additive\nexit",
            "route-map LVS-VIPS permit 20\n match source-protocol kernel\n match ipv6 address prefix-list LVS-VIPS-2\nexit",
            "  detect-multiplier 3\n  receive-interval 100\n  transmit-interval 100",
            "router bgp 65001\n",
            " address-family ipv6 unicast\n  redistribute kernel route-map LVS-VIPS",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
        assert!(
            frr(&announce(), None).contains("! router bgp ASN"),
            "without --asn the router bgp part is a comment"
        );
    }

    /// A config that announces nothing, or is invalid, prints no snippet and exits 78
    /// (EX_CONFIG): an engine config without the route-map would redistribute nothing, or
    /// everything, silently.
    #[test]
    fn no_snippet_without_announced_vips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("director.toml");
        let args = lvs_config::ConfigArgs { path: path.clone() };
        let refused = ExitCode::from(lvs_config::EX_CONFIG as u8);
        std::fs::write(&path, "").unwrap();
        assert_eq!(run(&args, Engine::Frr, None), refused);
        std::fs::write(&path, "[announce]\nprotocol = 186\n").unwrap();
        assert_eq!(run(&args, Engine::Bird, None), refused);
    }

    /// BIRD learns routes of the configured protocol number only, and sets MED, local
    /// preference and communities (well-known ones by number) per VIP.
    #[test]
    fn bird_snippet_learns_our_protocol_and_sets_attributes() {
        let text = bird(&announce());
        for line in [
            "ipv4 { import where krt_source = 251; export none; };",
            "ipv6 { import where krt_source = 251; export none; };",
            "if net = 192.0.2.100/32 then { bgp_med = 50; bgp_local_pref = 200; bgp_community.add((65000,100)); bgp_community.add((65535,65281)); accept; }",
            "if net = 2001:db8::100/128 then { accept; }",
            "interval 100 ms; multiplier 3;",
            "ipv6 { import none; export filter lvs_vips; };",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
    }
}
