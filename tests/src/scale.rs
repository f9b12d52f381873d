//! A director at the size where keepalived users report it failing (acassen/keepalived#2318):
//! 2,284 virtual services and 37,298 real-server entries over 2,300 distinct real servers, each
//! real server listed in about 16 services. [`Spec`] says how big, [`Table`] is the generated
//! table, and it renders as a director.toml and as the keepalived.conf of the same table.
//!
//! Everything is a function of the index of a service or a real server, so the same spec gives
//! the same bytes on every run and a benchmark's figures refer to one table.
//!
//! Address plan (documentation ranges only). The three /24s are far too small for 2,284 VIPs,
//! so there is one VIP per range and services differ by port: service `i` is
//! `VIPS[i % 3]:(SERVICE_PORT_BASE + i / 3)`. Real server `r` is
//! `198.51.100.(REAL_HOST_BASE + r % REAL_HOSTS):(REAL_PORT_BASE + r / REAL_HOSTS)`: 230 hosts
//! with up to ten ports each at full size. Real ports differ from the virtual ones, so the
//! services forward by NAT (DR could not change the port).
//!
//! Checks belong to the real server, as in practice (a web server is checked the same way in
//! every service that lists it): real `r` is checked by TCP connect, HTTP or an external command
//! according to [`Mix`]. So the services that share a real server share its check, which is
//! what a checker can deduplicate. Some services come in groups of two (keepalived's
//! `virtual_server_group`; the director.toml written here lists them as two services with the
//! same real servers, which directord probes once all the same; `lvsadm import` of the
//! keepalived.conf makes each group one `group = [...]` block).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

/// The size keepalived#2318 reports.
pub const FULL_SERVICES: usize = 2_284;
pub const FULL_ENTRIES: usize = 37_298;
pub const FULL_REALS: usize = 2_300;

/// One VIP per documentation range.
pub const VIPS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(192, 0, 2, 1),
    Ipv4Addr::new(198, 51, 100, 1),
    Ipv4Addr::new(203, 0, 113, 1),
];
pub const SERVICE_PORT_BASE: u16 = 10_000;
/// Real servers live on 198.51.100.(REAL_HOST_BASE ..+ REAL_HOSTS).
pub const REAL_NET: [u8; 3] = [198, 51, 100];
pub const REAL_HOST_BASE: u8 = 10;
pub const REAL_HOSTS: usize = 230;
pub const REAL_PORT_BASE: u16 = 20_000;
/// Every GROUP_EVERY-th service starts a group of two.
const GROUP_EVERY: usize = 25;

/// Kind of check of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    Tcp,
    Http,
    External,
}

/// Share of real servers checked each way, in percent; the rest are TCP connect checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub http_percent: usize,
    pub external_percent: usize,
}

impl Mix {
    /// Mostly TCP connect, a share of HTTP, a few external commands.
    pub const REALISTIC: Mix = Mix {
        http_percent: 15,
        external_percent: 2,
    };
    /// TCP connect only (what a checks-per-second figure compares most plainly).
    pub const TCP_ONLY: Mix = Mix {
        http_percent: 0,
        external_percent: 0,
    };

    /// The check of real server `r`: spread over the indices (not in runs), so every size has
    /// its share of each kind.
    pub fn of(self, r: usize) -> Check {
        let slot = (r * 37) % 100;
        if slot < self.external_percent {
            Check::External
        } else if slot < self.external_percent + self.http_percent {
            Check::Http
        } else {
            Check::Tcp
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub services: usize,
    pub entries: usize,
    pub reals: usize,
    /// None: no checks at all (every real server is up as listed).
    pub checks: Option<Mix>,
    pub interval_secs: u32,
    pub timeout_secs: u32,
    /// The external check's command (keepalived misc_path).
    pub external_command: String,
    /// Weights of this share of the entries, in percent, are changed (a reload's new file).
    pub changed_percent: usize,
    /// Every entry gets an invalid weight: one error per real-server entry, for the
    /// validator's error path.
    pub broken: bool,
}

impl Spec {
    /// The reported size: 2,284 services, 37,298 entries, 2,300 real servers.
    pub fn full() -> Spec {
        Spec::services(FULL_SERVICES)
    }

    /// `n` services, with entries and real servers in the full size's proportions (about
    /// 16.3 entries per service, each real server in about 16 services).
    pub fn services(n: usize) -> Spec {
        let n = n.max(1);
        let entries = (n * FULL_ENTRIES + FULL_SERVICES / 2) / FULL_SERVICES;
        let reals = (n * FULL_REALS + FULL_SERVICES / 2) / FULL_SERVICES;
        Spec {
            services: n,
            entries: entries.max(n),
            // A service lists distinct real servers, so there are at least as many as the
            // largest service has entries.
            reals: reals.max(entries.div_ceil(n)).min(REAL_HOSTS * 1000),
            checks: Some(Mix::REALISTIC),
            interval_secs: 5,
            timeout_secs: 2,
            external_command: "/bin/true".to_owned(),
            changed_percent: 0,
            broken: false,
        }
    }

    pub fn table(&self) -> Table {
        Table::generate(self)
    }
}

/// One real-server entry of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Index of the real server (0..spec.reals).
    pub real: usize,
    pub address: SocketAddrV4,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub address: SocketAddrV4,
    pub scheduler: &'static str,
    pub entries: Vec<Entry>,
    /// Index of the group this service belongs to, if any.
    pub group: Option<usize>,
}

/// The generated table, and the spec it came from.
#[derive(Debug, Clone)]
pub struct Table {
    pub spec: Spec,
    pub services: Vec<Service>,
}

/// The address of real server `r`.
pub fn real_address(r: usize) -> SocketAddrV4 {
    let [a, b, c] = REAL_NET;
    let host = REAL_HOST_BASE + (r % REAL_HOSTS) as u8;
    let port = REAL_PORT_BASE + (r / REAL_HOSTS) as u16;
    SocketAddrV4::new(Ipv4Addr::new(a, b, c, host), port)
}

/// The address of service `i`.
pub fn service_address(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(
        VIPS[i % VIPS.len()],
        SERVICE_PORT_BASE + (i / VIPS.len()) as u16,
    )
}

fn scheduler(i: usize) -> &'static str {
    match i % 10 {
        0 => "wlc",
        1 => "rr",
        _ => "wrr",
    }
}

/// The weight of entry `e` (its index over the whole table) of real server `r`.
fn weight(r: usize, e: usize) -> u32 {
    1 + ((r * 7 + e * 13) % 100) as u32
}

impl Table {
    fn generate(spec: &Spec) -> Table {
        let n = spec.services;
        // Service i lists `base` or `base + 1` entries so that the total is exact.
        let base = spec.entries / n;
        let extra = spec.entries % n;
        let count = |i: usize| base + usize::from(i < extra);
        let mut services = Vec::with_capacity(n);
        // Real servers are dealt round the ring 0..reals; a service takes the next `count`
        // of them (all distinct, as count <= reals), so each real server lands in about
        // entries/reals services. A group's second member repeats the first one's list.
        let mut next_real = 0;
        let mut group = 0;
        let mut i = 0;
        let mut entry_index = 0;
        while i < n {
            let in_group = i % GROUP_EVERY == 0 && i + 1 < n && count(i) == count(i + 1);
            let members = if in_group { 2 } else { 1 };
            let reals: Vec<usize> = (0..count(i))
                .map(|k| (next_real + k) % spec.reals)
                .collect();
            next_real = (next_real + count(i)) % spec.reals;
            // A group is one keepalived block: its members share entries, weights included.
            let entries: Vec<Entry> = reals
                .iter()
                .map(|&r| {
                    let e = entry_index;
                    entry_index += 1;
                    let mut weight = weight(r, e);
                    if spec.changed_percent > 0 && (e * 7) % 100 < spec.changed_percent {
                        weight += 100;
                    }
                    if spec.broken {
                        weight += 70_000;
                    }
                    Entry {
                        real: r,
                        address: real_address(r),
                        weight,
                    }
                })
                .collect();
            for member in 0..members {
                services.push(Service {
                    address: service_address(i + member),
                    scheduler: scheduler(i),
                    entries: entries.clone(),
                    group: in_group.then_some(group),
                });
            }
            group += usize::from(in_group);
            i += members;
        }
        Table {
            spec: spec.clone(),
            services,
        }
    }

    pub fn entry_count(&self) -> usize {
        self.services.iter().map(|s| s.entries.len()).sum()
    }

    /// Entries whose weight differs in `other`, a table of the same size (a reload's changes).
    pub fn weights_changed(&self, other: &Table) -> usize {
        self.services
            .iter()
            .flat_map(|s| &s.entries)
            .zip(other.services.iter().flat_map(|s| &s.entries))
            .filter(|(a, b)| a.weight != b.weight)
            .count()
    }

    /// Distinct real servers the table lists.
    pub fn distinct_reals(&self) -> usize {
        let mut seen = vec![false; self.spec.reals];
        for entry in self.services.iter().flat_map(|s| &s.entries) {
            seen[entry.real] = true;
        }
        seen.iter().filter(|s| **s).count()
    }

    /// The check of real server `r`, if checks are on.
    pub fn check(&self, r: usize) -> Option<Check> {
        self.spec.checks.map(|mix| mix.of(r))
    }

    /// The table as `ipvsadm -Sn` lists it: `-A -t VIP:PORT -s SCHED` and
    /// `-a -t VIP:PORT -r REAL:PORT -m -w W` lines, sorted (the kernel's order is a hash's).
    pub fn ipvsadm_lines(&self) -> Vec<String> {
        let mut lines = Vec::with_capacity(self.services.len() + self.entry_count());
        for service in &self.services {
            lines.push(format!(
                "-A -t {} -s {}",
                service.address, service.scheduler
            ));
            for entry in &service.entries {
                lines.push(format!(
                    "-a -t {} -r {} -m -w {}",
                    service.address, entry.address, entry.weight
                ));
            }
        }
        lines.sort();
        lines
    }

    /// director.toml; `socket_dir` for the control sockets.
    pub fn director_toml(&self, socket_dir: &str) -> String {
        let spec = &self.spec;
        let mut text = String::with_capacity(self.entry_count() * 80);
        let _ = writeln!(
            text,
            "# Generated by lvs_tests::scale: {} services, {} real-server entries, {} real servers.\n\
             [control]\nsocket_dir = \"{socket_dir}\"",
            self.services.len(),
            self.entry_count(),
            self.distinct_reals()
        );
        // keepalived's `retry 1` (its default) is fall = 2, as `lvsadm import` maps it.
        let timing = format!(
            "interval = \"{}s\", timeout = \"{}s\", fall = 2, retry_delay = \"1s\"",
            spec.interval_secs, spec.timeout_secs
        );
        for service in &self.services {
            let _ = writeln!(
                text,
                "\n[[virtual_server]]\naddress = \"{}\"\nscheduler = \"{}\"\nforwarding = \"nat\"",
                service.address, service.scheduler
            );
            if spec.checks.is_some() {
                let _ = writeln!(text, "check = {{ type = \"connect\", {timing} }}");
            }
            for entry in &service.entries {
                let _ = write!(
                    text,
                    "\n[[virtual_server.real]]\naddress = \"{}\"\nweight = {}\n",
                    entry.address, entry.weight
                );
                match self.check(entry.real) {
                    Some(Check::Http) => text.push_str(
                        "check = { type = \"http\", path = \"/\", expect_status = [\"200\"] }\n",
                    ),
                    Some(Check::External) => {
                        let _ = writeln!(
                            text,
                            "check = {{ type = \"external\", command = \"{}\" }}",
                            spec.external_command
                        );
                    }
                    Some(Check::Tcp) | None => {}
                }
            }
        }
        text
    }

    /// The same table as keepalived.conf: groups as virtual_server_group, each entry with its
    /// real server's check.
    pub fn keepalived_conf(&self) -> String {
        let spec = &self.spec;
        let mut text = String::with_capacity(self.entry_count() * 120);
        text.push_str("# Generated by lvs_tests::scale.\n");
        // Without both, keepalived drops every MISC_CHECK (it has no keepalived_script user
        // here) or refuses to run them as root (--config-test exits 5 or 6).
        if (0..spec.reals).any(|r| self.check(r) == Some(Check::External)) {
            text.push_str("global_defs {\n  script_user root\n  enable_script_security\n}\n");
        }
        let mut i = 0;
        while i < self.services.len() {
            let service = &self.services[i];
            let header = match service.group {
                Some(g) => {
                    let _ = writeln!(text, "virtual_server_group G{g} {{");
                    for member in self.services[i..].iter().take_while(|s| s.group == Some(g)) {
                        let _ =
                            writeln!(text, "  {} {}", member.address.ip(), member.address.port());
                    }
                    text.push_str("}\n");
                    format!("group G{g}")
                }
                None => format!("{} {}", service.address.ip(), service.address.port()),
            };
            let members = match service.group {
                Some(g) => self.services[i..]
                    .iter()
                    .take_while(|s| s.group == Some(g))
                    .count(),
                None => 1,
            };
            let _ = write!(
                text,
                "virtual_server {header} {{\n  delay_loop {}\n  lb_algo {}\n  lb_kind NAT\n  protocol TCP\n",
                spec.interval_secs, service.scheduler
            );
            for entry in &service.entries {
                let _ = write!(
                    text,
                    "  real_server {} {} {{\n    weight {}\n",
                    entry.address.ip(),
                    entry.address.port(),
                    entry.weight
                );
                let timeout = spec.timeout_secs;
                match self.check(entry.real) {
                    Some(Check::Tcp) => {
                        let _ = write!(
                            text,
                            "    TCP_CHECK {{\n      connect_timeout {timeout}\n      retry 1\n      delay_before_retry 1\n    }}\n"
                        );
                    }
                    Some(Check::Http) => {
                        let _ = write!(
                            text,
                            "    HTTP_GET {{\n      url {{\n        path /\n        status_code 200\n      }}\n      connect_timeout {timeout}\n      retry 1\n      delay_before_retry 1\n    }}\n"
                        );
                    }
                    Some(Check::External) => {
                        let _ = write!(
                            text,
                            "    MISC_CHECK {{\n      misc_path \"{}\"\n      misc_timeout {timeout}\n      retry 1\n      delay_before_retry 1\n    }}\n",
                            spec.external_command
                        );
                    }
                    None => {}
                }
                text.push_str("  }\n");
            }
            text.push_str("}\n");
            i += members;
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    #[test]
    fn the_full_size_is_exactly_the_reported_one() {
        let table = Spec::full().table();
        assert_eq!(table.services.len(), 2_284);
        assert_eq!(table.entry_count(), 37_298);
        assert_eq!(table.distinct_reals(), 2_300);
        // Each real server is in about 16 services.
        let mut per_real = vec![0usize; 2_300];
        for entry in table.services.iter().flat_map(|s| &s.entries) {
            per_real[entry.real] += 1;
        }
        let (min, max) = (per_real.iter().min(), per_real.iter().max());
        assert!(
            min >= Some(&14) && max <= Some(&22),
            "{min:?}..{max:?} services per real"
        );
        // Distinct addresses, all in documentation ranges.
        let mut keys: Vec<_> = table.services.iter().map(|s| s.address).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 2_284);
        let groups = table.services.iter().filter(|s| s.group.is_some()).count();
        assert!(groups > 100, "{groups} services in groups");
        let mix: HashMap<Check, usize> = (0..2_300).fold(HashMap::new(), |mut m, r| {
            *m.entry(table.check(r).unwrap()).or_default() += 1;
            m
        });
        assert!(mix[&Check::Tcp] > mix[&Check::Http] && mix[&Check::Http] > mix[&Check::External]);
        assert!(mix[&Check::External] > 0);
    }

    #[test]
    fn generation_is_deterministic_and_sizes_scale() {
        assert_eq!(
            Spec::full().table().director_toml("/run/x"),
            Spec::full().table().director_toml("/run/x")
        );
        let small = Spec::services(50).table();
        assert_eq!(small.services.len(), 50);
        assert_eq!(small.entry_count(), 50 * 37_298 / 2_284 + 1);
        assert!(small.distinct_reals() >= 49);
    }

    #[test]
    fn the_director_toml_is_valid_and_the_broken_one_has_an_error_per_entry() {
        let table = Spec::services(200).table();
        let config = lvs_config::parse(&table.director_toml("/run/x"), "scale.toml")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.virtual_servers.len(), 200);
        let broken = Spec {
            broken: true,
            ..Spec::services(200)
        }
        .table();
        let error = lvs_config::parse(&broken.director_toml("/run/x"), "scale.toml").unwrap_err();
        assert_eq!(error.diagnostics().len(), broken.entry_count());
    }

    /// The error path stays linear at the full size: one error per real-server entry (37,298
    /// diagnostics) costs about what the valid file costs, not minutes. Caught: every
    /// diagnostic was located by counting the newlines from the start of the text, so this
    /// file took 37 s in release (minutes in debug) against 0.15 s for the valid one. The
    /// bound is a ratio to the valid file parsed in the same process (linear: about 3x;
    /// quadratic: hundreds), so it holds on a slow or loaded machine; the figures themselves
    /// are the scale benchmark's.
    #[test]
    fn every_entry_broken_at_full_size_gives_every_error_in_linear_time() {
        let valid = Spec::full().table().director_toml("/run/x");
        let broken_table = Spec {
            broken: true,
            ..Spec::full()
        }
        .table();
        let broken = broken_table.director_toml("/run/x");

        let started = std::time::Instant::now();
        lvs_config::parse(&valid, "scale.toml").unwrap_or_else(|e| panic!("{e}"));
        let valid_time = started.elapsed();
        let started = std::time::Instant::now();
        let error = lvs_config::parse(&broken, "scale.toml").unwrap_err();
        let broken_time = started.elapsed();

        let diagnostics = error.diagnostics();
        assert_eq!(diagnostics.len(), FULL_ENTRIES);
        // Each points at its own weight line, in file order.
        let lines: Vec<&str> = broken.lines().collect();
        for pair in diagnostics.windows(2) {
            assert!(pair[0].line < pair[1].line, "{} then {}", pair[0], pair[1]);
        }
        for diagnostic in diagnostics {
            assert!(
                lines[diagnostic.line - 1].starts_with("weight = 7")
                    && diagnostic.column == 10
                    && diagnostic.message.contains("weight"),
                "{diagnostic}"
            );
        }
        assert!(
            broken_time < valid_time * 10 + std::time::Duration::from_secs(1),
            "{FULL_ENTRIES} errors took {broken_time:?}, the valid file {valid_time:?}"
        );
    }

    #[test]
    fn a_reload_changes_about_the_share_of_weights_asked() {
        let before = Spec::full().table();
        let after = Spec {
            changed_percent: 1,
            ..Spec::full()
        }
        .table();
        let changed = before.weights_changed(&after);
        assert!((300..=450).contains(&changed), "{changed} weights changed");
    }

    /// The generated reload (1 % of the weights changed, checks of every kind, groups) parsed
    /// block by block against the running config is the whole-file parse, and parses only the
    /// blocks that changed: what directord's SIGHUP does at this size.
    #[test]
    fn a_reload_parses_only_the_changed_services_to_the_same_config() {
        let spec = Spec::services(400);
        let running = lvs_config::parse(&spec.table().director_toml("/run/x"), "a.toml").unwrap();
        let changed = Spec {
            changed_percent: 1,
            ..spec
        }
        .table()
        .director_toml("/run/x");
        let (got, reparsed) = lvs_config::reparse::reparse(&changed, "b.toml", &running);
        let whole = lvs_config::parse(&changed, "b.toml").unwrap();
        assert_eq!(got.unwrap(), whole);
        let reparsed = reparsed.expect("cut into blocks");
        assert!(
            reparsed.parsed > 0 && reparsed.parsed < reparsed.kept,
            "{reparsed:?}"
        );
    }

    /// The keepalived.conf reads back, through `lvsadm import`, to the table the director.toml
    /// holds: the same services, schedulers, real servers, weights and checks.
    #[test]
    fn lvsadm_import_of_the_keepalived_conf_gives_the_same_table() {
        let table = Spec::services(120).table();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keepalived.conf");
        std::fs::write(&path, table.keepalived_conf()).unwrap();
        let imported = lvsadm::import::import(lvsadm::import::Source::Keepalived, &path, false)
            .unwrap_or_else(|e| panic!("{e}"));
        // Only keepalived's script user and security have no equivalent (directord runs
        // scripts as its own user).
        assert!(
            imported
                .unsupported
                .iter()
                .all(|u| u.directive == "enable_script_security"
                    || u.directive.starts_with("script_user")),
            "{:?}",
            imported.unsupported
        );
        let from_keepalived = lvs_config::parse(&imported.toml, "imported").unwrap();
        let ours = lvs_config::parse(&table.director_toml("/run/x"), "scale.toml").unwrap();
        let (theirs, ours) = (summarise(&from_keepalived), summarise(&ours));
        for (service, expected) in &ours {
            assert_eq!(theirs.get(service), Some(expected), "service {service}");
        }
        assert_eq!(theirs.len(), ours.len());
        assert!(table.services.iter().any(|s| s.group.is_some()));
    }

    type Summary = BTreeMap<String, (String, BTreeMap<String, (u32, String)>)>;

    /// Service → (scheduler, real → (weight, check type)).
    fn summarise(config: &lvs_config::Config) -> Summary {
        config
            .virtual_servers
            .iter()
            .map(|vs| {
                let reals = vs
                    .real
                    .iter()
                    .map(|real| {
                        let kind = real
                            .check
                            .as_ref()
                            .and_then(|c| c.kind)
                            .or(vs.check.as_ref().and_then(|c| c.kind));
                        let forwarding = real.forwarding.unwrap_or(vs.forwarding);
                        (
                            real.address.to_string(),
                            (real.weight, format!("{kind:?} {forwarding}")),
                        )
                    })
                    .collect();
                (
                    vs.address.unwrap().to_string(),
                    (vs.scheduler.to_string(), reals),
                )
            })
            .collect()
    }
}
