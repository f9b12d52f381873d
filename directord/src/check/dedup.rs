//! One probe per (real server, check), however many services list the server: keepalived
//! probes every real-server entry of every virtual server (acassen/keepalived#2358), so a
//! server in 16 services is probed 16 times an interval with the same question. Here the
//! entries whose checks would send the same bytes to the same address share one probe, and
//! its result fans out to all of them.
//!
//! Sans-IO: [`Checks::update`] takes every entry's [`Server`] and returns the shared checks
//! for [`super::Scheduler::update`]; the daemon maps each result back with
//! [`Checks::entries`]. Ids are kept across updates for checks that stay, so a reload keeps
//! their health and streaks.

use std::collections::HashMap;
use std::sync::Arc;

use lvs_config::Config;

use super::scheduler::Server;
use super::spec::{CheckSpec, Kind, SpecError, Target};
use crate::table::{ServerId, service_key};

/// One shared check, as the scheduler knows it.
pub type CheckId = u32;

#[derive(Debug)]
struct Shared<E> {
    target: Target,
    spec: CheckSpec,
    /// Exactly sized and shared with the metrics, which list every entry's probes.
    entries: Arc<[E]>,
}

/// The shared checks and the entries each one answers for.
#[derive(Debug)]
pub struct Checks<E> {
    shared: HashMap<CheckId, Shared<E>>,
    /// Every entry's check, sorted by entry: a map of 37,298 entries held for the daemon's
    /// life, which as a HashMap took 4 MB (its table rounded up to 65,536 buckets).
    of_entry: Box<[(E, CheckId)]>,
    next: CheckId,
}

impl<E> Default for Checks<E> {
    fn default() -> Self {
        Checks {
            shared: HashMap::new(),
            of_entry: Box::default(),
            next: 0,
        }
    }
}

/// The check of `entry` in a sorted `of_entry`.
fn lookup<E: Ord>(of_entry: &[(E, CheckId)], entry: &E) -> Option<CheckId> {
    of_entry
        .binary_search_by(|(e, _)| e.cmp(entry))
        .ok()
        .map(|at| of_entry[at].1)
}

/// What makes two entries' probes the same: the address the probe goes to and the check
/// (compared whole, so its `address` (connect_ip), `port` and `bind` (bindto, bind_port) are
/// part of it: the same server probed from two sources is two probes). Only an external
/// command sees the virtual address (LVS_VIRTUAL_IP), and only it sees the real server's own
/// port when the check has a port of its own, so the others leave those out of the key. SMTP
/// host blocks go to the real server's own address and port for what they leave out, so such
/// a check is keyed by the real server, not by where its own connection goes.
pub fn probe_target(spec: &CheckSpec, target: Target) -> Target {
    match &spec.kind {
        Kind::External(_) => target,
        Kind::Smtp(smtp) if !smtp.hosts.is_empty() => Target::new(target.real),
        _ => Target::new(target.probe_addr(spec)),
    }
}

/// Every real-server entry of `config` with its check, before sharing. The services of one
/// group (keepalived virtual_server_group) show an external command the group's first
/// address, so the group runs each command once, as keepalived does.
pub fn entries(config: &Config) -> impl Iterator<Item = (ServerId, Result<Server, SpecError>)> {
    let mut group_address: HashMap<usize, Option<std::net::SocketAddr>> = HashMap::new();
    for vs in &config.virtual_servers {
        if let Some(block) = vs.group_of {
            let first = group_address.entry(block).or_insert(None);
            *first = first.or(vs.address);
        }
    }
    config.virtual_servers.iter().flat_map(move |vs| {
        let key = service_key(vs);
        let shown = vs
            .group_of
            .map(|block| group_address.get(&block).copied().flatten());
        vs.real.iter().filter_map(move |real| {
            let key = key?;
            let server = Server::from_config(vs, real).map(|mut server| {
                if let Some(address) = shown {
                    server.target.virtual_addr = address;
                }
                server
            });
            Some(((key, real.address), server))
        })
    })
}

/// Entries gathered under one probe during an update.
struct Gathered<E> {
    target: Target,
    spec: CheckSpec,
    entries: Vec<E>,
    /// The state the entries hold now; `None` once they disagree.
    initial: Option<bool>,
    agreed: bool,
}

impl<E: Clone + Ord> Checks<E> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the shared checks those of `entries` (every configured real-server entry, on
    /// start and on every reload); returns them for [`super::Scheduler::update`]. A check whose
    /// entries hold different states (adopted from the kernel at different weights) starts in
    /// the check's initial state and reports its first result, so every entry follows it.
    pub fn update(
        &mut self,
        entries: impl IntoIterator<Item = (E, Server)>,
    ) -> Vec<(CheckId, Server)> {
        let gathered = gather(entries);
        let mut old = std::mem::take(&mut self.shared);
        let old_of_entry = std::mem::take(&mut self.of_entry);
        let mut of_entry = Vec::with_capacity(old_of_entry.len());
        let mut out = Vec::with_capacity(gathered.len());
        for group in gathered {
            let id = self.id_for(&group, &mut old, &old_of_entry);
            of_entry.extend(group.entries.iter().map(|entry| (entry.clone(), id)));
            let mut server = Server::new(group.spec.clone(), group.target);
            server.initial_up = group.initial.filter(|_| group.agreed);
            server.report_first = !group.agreed;
            self.shared.insert(
                id,
                Shared {
                    target: group.target,
                    spec: group.spec,
                    entries: group.entries.into(),
                },
            );
            out.push((id, server));
        }
        drop(old_of_entry);
        // An entry listed twice keeps its last check, as the map's inserts did: reversed,
        // the last comes first through the stable sort, and dedup keeps the first.
        of_entry.reverse();
        of_entry.sort_by(|a, b| a.0.cmp(&b.0));
        of_entry.dedup_by(|a, b| a.0 == b.0);
        self.of_entry = of_entry.into_boxed_slice();
        out
    }

    /// The same check keeps its id; a changed one takes the id of its first entry's old check
    /// when nothing else claimed it (the scheduler then keeps its health and streak and takes
    /// the new check from the next probe, as it did per entry); anything else is new.
    fn id_for(
        &mut self,
        group: &Gathered<E>,
        old: &mut HashMap<CheckId, Shared<E>>,
        old_of_entry: &[(E, CheckId)],
    ) -> CheckId {
        let same = group.entries.iter().find_map(|entry| {
            let id = lookup(old_of_entry, entry)?;
            let check = old.get(&id)?;
            (check.target == group.target && check.spec == group.spec).then_some(id)
        });
        let reused = same.or_else(|| {
            let first = group.entries.first()?;
            lookup(old_of_entry, first).filter(|id| old.contains_key(id))
        });
        match reused {
            Some(id) => {
                old.remove(&id);
                id
            }
            None => {
                let id = self.next;
                self.next = self.next.wrapping_add(1);
                id
            }
        }
    }

    /// The entries `id` answers for (none once it is gone).
    pub fn entries(&self, id: CheckId) -> &[E] {
        self.shared.get(&id).map_or(&[], |s| &s.entries[..])
    }

    /// Every shared check with the entries it answers for (shared, not copied).
    pub fn all_entries(&self) -> impl Iterator<Item = (CheckId, Arc<[E]>)> + '_ {
        self.shared
            .iter()
            .map(|(id, s)| (*id, Arc::clone(&s.entries)))
    }

    /// The shared check of `entry`.
    pub fn check_of(&self, entry: &E) -> Option<CheckId> {
        lookup(&self.of_entry, entry)
    }

    /// How many probes run per round.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }
}

/// Groups entries by probe, in first-seen order. Checks are compared with `==` within the
/// entries of one address (usually a handful), so the check types need no hashing.
fn gather<E>(entries: impl IntoIterator<Item = (E, Server)>) -> Vec<Gathered<E>> {
    let mut gathered: Vec<Gathered<E>> = Vec::new();
    let mut by_target: HashMap<Target, Vec<usize>> = HashMap::new();
    for (entry, server) in entries {
        let target = probe_target(&server.spec, server.target);
        let state = server.initial_up.unwrap_or(server.spec.timing.initial_up);
        let slots = by_target.entry(target).or_default();
        let found = slots
            .iter()
            .copied()
            .find(|&i| gathered[i].spec == server.spec);
        match found {
            Some(i) => {
                let group = &mut gathered[i];
                group.entries.push(entry);
                group.agreed &= group.initial == Some(state);
            }
            None => {
                slots.push(gathered.len());
                gathered.push(Gathered {
                    target,
                    spec: server.spec,
                    entries: vec![entry],
                    initial: Some(state),
                    agreed: true,
                });
            }
        }
    }
    gathered
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn config(text: &str) -> Config {
        lvs_config::parse(text, "test.toml").expect("valid config")
    }

    fn servers(config: &Config) -> Vec<(ServerId, Server)> {
        entries(config).map(|(id, s)| (id, s.unwrap())).collect()
    }

    /// Three services over the same two real servers, all with the same connect check, and a
    /// fourth whose check differs for one of them.
    const SHARED: &str = r#"
[[virtual_server]]
address = "192.0.2.100:80"
check = { type = "connect", interval = "5s" }
real = [{ address = "198.51.100.11:80" }, { address = "198.51.100.12:80" }]

[[virtual_server]]
address = "192.0.2.101:80"
check = { type = "connect", interval = "5s" }
real = [{ address = "198.51.100.11:80" }, { address = "198.51.100.12:80" }]

[[virtual_server]]
address = "192.0.2.102:80"
check = { type = "connect", interval = "5s" }
real = [{ address = "198.51.100.11:80" }, { address = "198.51.100.12:80" }]

[[virtual_server]]
address = "192.0.2.103:80"
check = { type = "connect", interval = "5s" }
real = [{ address = "198.51.100.11:80", check = { type = "connect", interval = "1s" } }]
"#;

    // The six entries of the first three services cost two probes; the fourth service's own
    // interval makes a third; every entry maps back to its probe.
    #[test]
    fn entries_with_the_same_check_of_the_same_server_share_one_probe() {
        let config = config(SHARED);
        let mut checks = Checks::new();
        let shared = checks.update(servers(&config));
        assert_eq!(shared.len(), 3, "{shared:?}");
        let r11: SocketAddr = "198.51.100.11:80".parse().unwrap();
        let ids: Vec<ServerId> = servers(&config).into_iter().map(|(id, _)| id).collect();
        let first = checks.check_of(&ids[0]).unwrap();
        assert_eq!(checks.entries(first).len(), 3);
        assert!(checks.entries(first).iter().all(|(_, real)| *real == r11));
        let own = checks.check_of(ids.last().unwrap()).unwrap();
        assert_ne!(own, first);
        assert_eq!(checks.entries(own), &ids[6..]);
    }

    // An external command sees the virtual address, so two services' commands are two runs;
    // a check on a port of its own probes the same address whatever the entry's port.
    #[test]
    fn external_checks_keep_the_virtual_address_and_check_ports_merge_entries() {
        let config = config(
            r#"
[[virtual_server]]
address = "192.0.2.100:80"
check = { type = "external", command = "true" }
real = [{ address = "198.51.100.11:80" }]

[[virtual_server]]
address = "192.0.2.101:80"
check = { type = "external", command = "true" }
real = [{ address = "198.51.100.11:80" }]

[[virtual_server]]
address = "192.0.2.100:443"
check = { type = "connect", port = 9000 }
real = [{ address = "198.51.100.11:443" }]

[[virtual_server]]
address = "192.0.2.100:8443"
check = { type = "connect", port = 9000 }
real = [{ address = "198.51.100.11:8443" }]
"#,
        );
        let mut checks = Checks::new();
        assert_eq!(checks.update(servers(&config)).len(), 3);
    }

    // A check's address and bind are part of what it is: the same real server probed from
    // two source addresses (or ports) is two probes, two real servers whose checks connect
    // to the same address from the same source are one, and SMTP host blocks, which go to
    // their real server for what they leave out, keep real servers apart.
    #[test]
    fn address_and_bind_are_part_of_the_key() {
        let config = config(
            r#"
[[virtual_server]]
address = "192.0.2.100:80"
check = { type = "connect", bind_address = "192.0.2.5" }
real = [{ address = "198.51.100.11:80" }]

[[virtual_server]]
address = "192.0.2.101:80"
check = { type = "connect", bind_address = "192.0.2.6" }
real = [{ address = "198.51.100.11:80" }]

[[virtual_server]]
address = "192.0.2.102:80"
check = { type = "connect", bind_address = "192.0.2.6", bind_port = 4000 }
real = [{ address = "198.51.100.11:80" }]

[[virtual_server]]
address = "192.0.2.103:80"
check = { type = "connect", address = "198.51.100.50", port = 8080 }
real = [{ address = "198.51.100.11:80" }, { address = "198.51.100.12:80" }]

[[virtual_server]]
address = "192.0.2.104:25"
check = { type = "smtp", address = "198.51.100.50", hosts = [{ port = 587 }] }
real = [{ address = "198.51.100.11:25" }, { address = "198.51.100.12:25" }]
"#,
        );
        let mut checks = Checks::new();
        let shared = checks.update(servers(&config));
        let ids: Vec<ServerId> = servers(&config).into_iter().map(|(id, _)| id).collect();
        let of = |i: usize| checks.check_of(&ids[i]).unwrap();
        assert_ne!(of(0), of(1), "another bind address");
        assert_ne!(of(1), of(2), "another bind port");
        assert_eq!(of(3), of(4), "one connect_ip from the same source");
        assert_ne!(of(5), of(6), "SMTP hosts default to their real server");
        assert_eq!(shared.len(), 6, "{shared:?}");
        let smtp: Vec<SocketAddr> = shared
            .iter()
            .filter(|(_, s)| matches!(s.spec.kind, Kind::Smtp(_)))
            .map(|(_, s)| s.target.real)
            .collect();
        assert_eq!(
            smtp,
            [
                "198.51.100.11:25".parse().unwrap(),
                "198.51.100.12:25".parse::<SocketAddr>().unwrap()
            ]
        );
    }

    // A reload keeps the ids of checks that stay (so the scheduler keeps their health), gives
    // a changed check its entries' old id, and a new one a fresh id.
    #[test]
    fn ids_survive_updates() {
        let config1 = config(SHARED);
        let mut checks = Checks::new();
        let before: HashMap<CheckId, Target> = checks
            .update(servers(&config1))
            .into_iter()
            .map(|(id, s)| (id, s.target))
            .collect();
        let again: HashMap<CheckId, Target> = checks
            .update(servers(&config1))
            .into_iter()
            .map(|(id, s)| (id, s.target))
            .collect();
        assert_eq!(before, again);
        let changed = config(&SHARED.replace(r#"interval = "5s""#, r#"interval = "2s""#));
        let after: HashMap<CheckId, Target> = checks
            .update(servers(&changed))
            .into_iter()
            .map(|(id, s)| (id, s.target))
            .collect();
        assert_eq!(after, before, "changed checks keep their ids");
        let added = config(&format!(
            "{SHARED}\n[[virtual_server]]\naddress = \"192.0.2.104:80\"\n\
             real = [{{ address = \"198.51.100.13:80\" }}]\n"
        ));
        let grown = checks.update(servers(&added));
        assert_eq!(grown.len(), 4);
        assert!(grown.iter().any(|(id, _)| !before.contains_key(id)));
    }

    // Entries adopted from the kernel in different states: the shared check starts from its
    // own initial state and reports its first result, so all of them follow it; entries that
    // agree hand their state on and nothing extra is reported.
    #[test]
    fn entries_in_different_states_make_the_first_result_reported() {
        let config = config(SHARED);
        let mut states = servers(&config);
        for (i, (_, server)) in states.iter_mut().enumerate() {
            server.initial_up = Some(i != 0);
        }
        let mut checks = Checks::new();
        let shared = checks.update(states.clone());
        let disagreeing = checks.check_of(&states[0].0).unwrap();
        for (id, server) in &shared {
            let mixed = *id == disagreeing;
            assert_eq!(server.report_first, mixed, "{id}");
            assert_eq!(server.initial_up, (!mixed).then_some(true), "{id}");
        }
    }
}
