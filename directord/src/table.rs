//! The IPVS table as directord reasons about it: what the config, health and feedback want
//! ([`desired`]), and what the kernel has, in one shape so the two can be compared.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use lvs_config::{Config, Family, Forwarding, OnFailure, Protocol, ServiceFlag, VirtualServer};
use lvs_ipvs::{
    AddressFamily, Destination, ForwardMethod, Protocol as IpvsProtocol, Request, Service,
    ServiceFlags, ServiceKey,
};

/// Services and their destinations, keyed as the kernel keys them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub services: BTreeMap<ServiceKey, TableService>,
}

impl Table {
    /// What the kernel's table becomes once it has accepted `request`: how the cache of it
    /// follows directord's own writes without reading it back. Counters are not tracked.
    pub fn apply(&mut self, request: &Request) {
        match request {
            Request::AddService(service) | Request::EditService(service) => {
                let entry = self
                    .services
                    .entry(service.key)
                    .or_insert_with(|| TableService {
                        service: service.clone(),
                        destinations: Destinations::default(),
                    });
                entry.service.clone_from(service);
            }
            Request::DelService(key) => {
                self.services.remove(key);
            }
            Request::AddDestination(key, destination)
            | Request::EditDestination(key, destination) => {
                if let Some(service) = self.services.get_mut(key) {
                    service.destinations.insert(destination.clone());
                }
            }
            Request::DelDestination(key, addr) => {
                if let Some(service) = self.services.get_mut(key) {
                    service.destinations.remove(addr);
                }
            }
            Request::Flush => self.services.clear(),
            // Reads, counters and sync daemons leave the table as it is.
            _ => {}
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableService {
    pub service: Service,
    pub destinations: Destinations,
}

/// A service's destinations, sorted by address: a map in the order a `BTreeMap` keyed by
/// address iterates, without its nodes. The kernel cache holds every entry of the table
/// (37,298 at keepalived#2318's size) for the daemon's life; in B-tree nodes they took 6 MB,
/// here 64 bytes each (the key is the destination's own address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Destinations(Vec<Destination>);

impl Destinations {
    fn find(&self, addr: &SocketAddr) -> Result<usize, usize> {
        self.0.binary_search_by_key(addr, Destination::socket_addr)
    }

    pub fn get(&self, addr: &SocketAddr) -> Option<&Destination> {
        self.find(addr).ok().map(|at| &self.0[at])
    }

    pub fn get_mut(&mut self, addr: &SocketAddr) -> Option<&mut Destination> {
        self.find(addr).ok().map(|at| &mut self.0[at])
    }

    pub fn contains_key(&self, addr: &SocketAddr) -> bool {
        self.find(addr).is_ok()
    }

    /// Adds `destination`, or replaces the one at its address (returned).
    pub fn insert(&mut self, destination: Destination) -> Option<Destination> {
        match self.find(&destination.socket_addr()) {
            Ok(at) => Some(std::mem::replace(&mut self.0[at], destination)),
            Err(at) => {
                // Grown by an eighth, not doubled: a cached service keeps what it reserved.
                if self.0.len() == self.0.capacity() {
                    self.0.reserve_exact(self.0.len() / 8 + 1);
                }
                self.0.insert(at, destination);
                None
            }
        }
    }

    pub fn remove(&mut self, addr: &SocketAddr) -> Option<Destination> {
        self.find(addr).ok().map(|at| self.0.remove(at))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// In address order.
    pub fn values(&self) -> std::slice::Iter<'_, Destination> {
        self.0.iter()
    }

    pub fn keys(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.0.iter().map(Destination::socket_addr)
    }
}

/// As a map collects: the last of two destinations at one address wins.
impl FromIterator<Destination> for Destinations {
    fn from_iter<I: IntoIterator<Item = Destination>>(iter: I) -> Self {
        let mut all: Vec<Destination> = iter.into_iter().collect();
        all.reverse();
        // Stable: of equal addresses the last given comes first now, and dedup keeps it.
        all.sort_by_key(Destination::socket_addr);
        all.dedup_by_key(|d| d.socket_addr());
        all.shrink_to_fit();
        Destinations(all)
    }
}

/// What health checks and feedback say about one real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerState {
    pub up: bool,
    /// A weight from feedback or from a dynamic-weight check; the configured one otherwise.
    pub weight: Option<u32>,
    /// In maintenance (`lvsadm maint`): out of the service whatever its health.
    pub removed: bool,
}

impl ServerState {
    pub const UP: ServerState = ServerState {
        up: true,
        weight: None,
        removed: false,
    };
}

/// One real server of one service.
pub type ServerId = (ServiceKey, SocketAddr);

pub fn service_key(vs: &VirtualServer) -> Option<ServiceKey> {
    match (vs.address, vs.fwmark) {
        (Some(address), None) => Some(ServiceKey::inet(protocol(vs.protocol), address)),
        (None, Some(mark)) => {
            let af = if vs.family == Some(Family::Inet6) {
                AddressFamily::Inet6
            } else {
                AddressFamily::Inet
            };
            Some(ServiceKey::fwmark(af, mark))
        }
        _ => None,
    }
}

fn protocol(protocol: Protocol) -> IpvsProtocol {
    match protocol {
        Protocol::Tcp => IpvsProtocol::Tcp,
        Protocol::Udp => IpvsProtocol::Udp,
        Protocol::Sctp => IpvsProtocol::Sctp,
    }
}

pub fn forward_method(forwarding: Forwarding) -> ForwardMethod {
    match forwarding {
        Forwarding::Dr => ForwardMethod::Route,
        Forwarding::Nat => ForwardMethod::Masq,
        Forwarding::Tun => ForwardMethod::Tunnel,
    }
}

/// The service attributes the config sets, as NEW_SERVICE would carry them.
pub fn service(vs: &VirtualServer, key: ServiceKey) -> Service {
    let mut service = Service::new(key, vs.scheduler.as_str());
    if let Some(timeout) = vs.persistence {
        service = service.persistent(u32::try_from(timeout.get().as_secs()).unwrap_or(u32::MAX));
    }
    if let Some(netmask) = vs.netmask {
        service.netmask = match key.af() {
            AddressFamily::Inet => u32::from(netmask.ipv4_mask()),
            AddressFamily::Inet6 => u32::from(netmask.prefix_len),
        };
    }
    for flag in &vs.flags {
        service.flags |= match flag {
            ServiceFlag::ShFallback => ServiceFlags::SH_FALLBACK,
            ServiceFlag::ShPort => ServiceFlags::SH_PORT,
            ServiceFlag::MhFallback => ServiceFlags::MH_FALLBACK,
            ServiceFlag::MhPort => ServiceFlags::MH_PORT,
            ServiceFlag::OnePacket => ServiceFlags::ONEPACKET,
        };
    }
    service.pe_name.clone_from(&vs.persistence_engine);
    service
}

/// Every real server the config names (fallbacks included), per service: what directord owns.
pub fn configured(config: &Config) -> BTreeMap<ServiceKey, BTreeSet<SocketAddr>> {
    config
        .virtual_servers
        .iter()
        .filter_map(|vs| {
            let key = service_key(vs)?;
            let reals = vs.real.iter().map(|real| real.address).chain(vs.fallback);
            Some((key, reals.collect()))
        })
        .collect()
}

/// The sum of the weights of `vs`'s live real servers, what keepalived holds against the
/// quorum (weigh_live_realservers).
pub fn live_weight(
    vs: &VirtualServer,
    key: ServiceKey,
    state: impl Fn(&ServerId) -> ServerState,
) -> u64 {
    vs.real
        .iter()
        .map(|real| {
            let server = state(&(key, real.address));
            if server.up {
                u64::from(server.weight.unwrap_or(real.weight))
            } else {
                0
            }
        })
        .sum()
}

/// Whether a service's live weight reaches its quorum, given the state it was in: gained at
/// `quorum + hysteresis`, lost at none or below `quorum - hysteresis` (keepalived's
/// update_quorum_state); at start (`was` none) the gain rule decides (set_quorum_states).
pub fn quorum_up(vs: &VirtualServer, live: u64, was: Option<bool>) -> bool {
    let (quorum, hysteresis) = (i64::from(vs.quorum), i64::from(vs.hysteresis));
    let live = i64::try_from(live).unwrap_or(i64::MAX);
    match was {
        Some(true) => live > 0 && live >= quorum - hysteresis,
        Some(false) | None => live >= quorum + hysteresis,
    }
}

/// A service gained or lost its quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumChange {
    pub key: ServiceKey,
    pub up: bool,
    /// The live weight that decided it.
    pub live: u64,
}

/// Every service's quorum state, kept from one table to the next for the hysteresis.
#[derive(Debug, Clone, Default)]
pub struct Quorums {
    up: HashMap<ServiceKey, bool>,
}

impl Quorums {
    /// Follows the live weights; returns the services that gained or lost quorum since the
    /// last update, and those first seen with it, or without it and with a fallback.
    pub fn update(
        &mut self,
        config: &Config,
        state: impl Fn(&ServerId) -> ServerState,
    ) -> Vec<QuorumChange> {
        let mut next = HashMap::with_capacity(self.up.len());
        let mut changes = Vec::new();
        for vs in &config.virtual_servers {
            let Some(key) = service_key(vs) else { continue };
            let live = live_weight(vs, key, &state);
            let was = self.up.get(&key).copied();
            let up = quorum_up(vs, live, was);
            // keepalived also says so at start (its quorum_up or quorum_down runs): "Gained
            // quorum" when it is met, "Starting with quorum down" when it is not and a sorry
            // server takes the service (found against keepalived 2.2.7 in uml_import).
            let at_start = was.is_none() && (up || vs.fallback.is_some());
            if was.is_some_and(|was| was != up) || at_start {
                changes.push(QuorumChange { key, up, live });
            }
            next.insert(key, up);
        }
        self.up = next;
        changes
    }

    /// The service's quorum state, once seen.
    pub fn is_up(&self, key: &ServiceKey) -> Option<bool> {
        self.up.get(key).copied()
    }
}

/// The table the config asks for, given each real server's state, without a memory of quorum
/// (no hysteresis across calls): [`desired_with`] and fresh [`Quorums`].
pub fn desired(config: &Config, state: impl Fn(&ServerId) -> ServerState) -> Table {
    desired_with(config, state, &Quorums::default())
}

/// The table the config asks for, given each real server's state and each service's quorum.
/// A failed health check always wins over feedback: a down server is quiesced (weight 0) or
/// removed as its entry or the service says. A service below its quorum with a fallback (sorry
/// server) has the fallback alone, its live servers taken out the same way, as keepalived
/// does; without a fallback, losing quorum changes nothing in the table.
pub fn desired_with(
    config: &Config,
    state: impl Fn(&ServerId) -> ServerState,
    quorums: &Quorums,
) -> Table {
    let mut table = Table::default();
    for vs in &config.virtual_servers {
        let Some(key) = service_key(vs) else { continue };
        let up = quorums
            .is_up(&key)
            .unwrap_or_else(|| quorum_up(vs, live_weight(vs, key, &state), None));
        let sorry = vs.fallback.filter(|_| !up);
        let mut destinations = Vec::with_capacity(vs.real.len() + 1);
        for real in &vs.real {
            let server = state(&(key, real.address));
            if server.removed {
                continue;
            }
            let in_pool = server.up && sorry.is_none();
            let weight = match (in_pool, real.on_failure.unwrap_or(vs.on_failure)) {
                (true, _) => server.weight.unwrap_or(real.weight),
                (false, OnFailure::Quiescent) => 0,
                (false, OnFailure::Remove) => continue,
            };
            let fwd = forward_method(real.forwarding.unwrap_or(vs.forwarding));
            let destination = Destination::new(real.address, fwd, weight)
                .with_thresholds(real.upper_threshold, real.lower_threshold);
            destinations.push(destination);
        }
        if let Some(fallback) = sorry {
            destinations.push(Destination::new(fallback, forward_method(vs.forwarding), 1));
        }
        table.services.insert(
            key,
            TableService {
                service: service(vs, key),
                destinations: destinations.into_iter().collect(),
            },
        );
    }
    table
}

/// Same service in the terms the config controls (the kernel adds HASHED and counters).
pub fn same_service(a: &Service, b: &Service) -> bool {
    let settable = |s: &Service| s.flags.without(ServiceFlags::HASHED);
    a.key == b.key
        && a.scheduler == b.scheduler
        && settable(a) == settable(b)
        && a.timeout == b.timeout
        && a.netmask == b.netmask
        && a.pe_name == b.pe_name
}

/// Same destination in the terms the config controls (counters and connections aside).
pub fn same_destination(a: &Destination, b: &Destination) -> bool {
    let tunnel = |d: &Destination| {
        (d.fwd == ForwardMethod::Tunnel).then_some((d.tun_type, d.tun_port, d.tun_flags))
    };
    a.addr == b.addr
        && a.port == b.port
        && a.fwd == b.fwd
        && a.weight == b.weight
        && a.u_threshold == b.u_threshold
        && a.l_threshold == b.l_threshold
        && tunnel(a) == tunnel(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four real servers of weight 10 each, quorum 25 with hysteresis 5: gained at 30 live,
    /// lost below 20; a sorry server; r4 removed on failure while the service quiesces.
    const QUORUM: &str = r#"
[[virtual_server]]
address = "192.0.2.100:80"
forwarding = "nat"
quorum = 25
hysteresis = 5
fallback = "198.51.100.250:80"
real = [
  { address = "198.51.100.1:80", weight = 10 },
  { address = "198.51.100.2:80", weight = 10 },
  { address = "198.51.100.3:80", weight = 10 },
  { address = "198.51.100.4:80", weight = 10, on_failure = "remove" },
]
"#;

    fn live(n: u8) -> impl Fn(&ServerId) -> ServerState {
        move |(_, addr): &ServerId| ServerState {
            up: addr
                .ip()
                .to_string()
                .rsplit('.')
                .next()
                .unwrap()
                .parse::<u8>()
                .unwrap()
                <= n,
            weight: None,
            removed: false,
        }
    }

    fn weights(table: &Table) -> Vec<(u8, u32)> {
        let service = table.services.values().next().unwrap();
        service
            .destinations
            .values()
            .map(|d| {
                (
                    d.addr
                        .to_string()
                        .rsplit('.')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap(),
                    d.weight,
                )
            })
            .collect()
    }

    // keepalived's quorum with hysteresis: starting at 3 live (30) it is up; 2 live (20) keeps
    // it (not below 25 - 5); 1 live (10) loses it: the sorry server alone, the live server
    // quiesced, the removable one gone; back at 2 live (20) it stays lost until 30.
    #[test]
    fn quorum_follows_the_live_weight_with_hysteresis() {
        let config = lvs_config::parse(QUORUM, "q.toml").unwrap();
        let mut quorums = Quorums::default();
        let mut step = |n: u8| {
            let changes = quorums.update(&config, live(n));
            (
                changes.iter().map(|c| (c.up, c.live)).collect::<Vec<_>>(),
                weights(&desired_with(&config, live(n), &quorums)),
            )
        };
        assert_eq!(
            step(3),
            (vec![(true, 30)], vec![(1, 10), (2, 10), (3, 10)]),
            "gained at start, as keepalived says"
        );
        assert_eq!(step(2), (vec![], vec![(1, 10), (2, 10), (3, 0)]));
        assert_eq!(
            step(1),
            (vec![(false, 10)], vec![(1, 0), (2, 0), (3, 0), (250, 1)])
        );
        assert_eq!(step(2), (vec![], vec![(1, 0), (2, 0), (3, 0), (250, 1)]));
        assert_eq!(step(3), (vec![(true, 30)], vec![(1, 10), (2, 10), (3, 10)]));
        assert_eq!(step(4).1, vec![(1, 10), (2, 10), (3, 10), (4, 10)]);
        // Without a memory of the last state, 20 live is below quorum + hysteresis.
        assert_eq!(
            weights(&desired(&config, live(2))),
            vec![(1, 0), (2, 0), (3, 0), (250, 1)]
        );
    }

    // Without a sorry server, losing quorum changes nothing in the table (keepalived only
    // runs its scripts then).
    #[test]
    fn without_a_sorry_server_quorum_changes_only_the_state() {
        let config = lvs_config::parse(
            &QUORUM.replace("fallback = \"198.51.100.250:80\"\n", ""),
            "q.toml",
        )
        .unwrap();
        let mut quorums = Quorums::default();
        quorums.update(&config, live(4));
        let changes = quorums.update(&config, live(1));
        assert_eq!(changes.len(), 1);
        assert_eq!(
            weights(&desired_with(&config, live(1), &quorums)),
            vec![(1, 10), (2, 0), (3, 0)]
        );
    }

    /// The cache follows each accepted write as the kernel's table would: services appear
    /// empty and keep their destinations across an edit, destinations are added, edited and
    /// removed in place, and a deleted service takes its destinations with it.
    #[test]
    fn applying_requests_follows_the_kernel() {
        let key = ServiceKey::inet(IpvsProtocol::Tcp, "192.0.2.100:80".parse().unwrap());
        let real: SocketAddr = "198.51.100.11:80".parse().unwrap();
        let other: SocketAddr = "198.51.100.12:80".parse().unwrap();
        let mut table = Table::default();
        table.apply(&Request::AddService(Service::new(key, "wrr")));
        table.apply(&Request::AddDestination(
            key,
            Destination::new(real, ForwardMethod::Masq, 5),
        ));
        table.apply(&Request::AddDestination(
            key,
            Destination::new(other, ForwardMethod::Masq, 1),
        ));
        table.apply(&Request::EditService(Service::new(key, "lc")));
        table.apply(&Request::EditDestination(
            key,
            Destination::new(real, ForwardMethod::Masq, 9),
        ));
        table.apply(&Request::DelDestination(key, other));
        let service = &table.services[&key];
        assert_eq!(service.service.scheduler, "lc");
        assert_eq!(service.destinations.len(), 1);
        assert_eq!(service.destinations.get(&real).unwrap().weight, 9);
        table.apply(&Request::GetServices);
        assert_eq!(table.services.len(), 1, "a read changes nothing");
        table.apply(&Request::DelService(key));
        assert!(table.services.is_empty());
    }

    /// The sorted destinations behave as the map they replace: address order whatever the
    /// insertion order (so plans come out in the same order), the last of two at one address
    /// wins when collected, an insert at a known address replaces, and lookups of absent
    /// addresses miss. Checked against a BTreeMap fed the same operations.
    #[test]
    fn destinations_are_the_map_they_replace() {
        let at = |last: u8, port: u16, weight: u32| {
            let addr = SocketAddr::new([198, 51, 100, last].into(), port);
            Destination::new(addr, ForwardMethod::Masq, weight)
        };
        let given = [
            at(12, 80, 1),
            at(11, 443, 2),
            at(11, 80, 3),
            at(12, 80, 4),
            at(200, 1, 5),
            at(9, 65535, 6),
        ];
        let mut map = BTreeMap::new();
        for d in &given {
            map.insert(d.socket_addr(), d.clone());
        }
        let mut ours: Destinations = given.iter().cloned().collect();
        let same = |ours: &Destinations, map: &BTreeMap<SocketAddr, Destination>| {
            assert_eq!(
                ours.values().collect::<Vec<_>>(),
                map.values().collect::<Vec<_>>()
            );
            assert_eq!(
                ours.keys().collect::<Vec<_>>(),
                map.keys().copied().collect::<Vec<_>>()
            );
            assert_eq!(ours.len(), map.len());
        };
        same(&ours, &map);
        assert_eq!(ours.get(&given[0].socket_addr()).unwrap().weight, 4);
        let replaced = ours.insert(at(11, 80, 7));
        map.insert(given[2].socket_addr(), at(11, 80, 7));
        assert_eq!(replaced.map(|d| d.weight), Some(3));
        assert_eq!(ours.insert(at(10, 80, 8)), None);
        map.insert(at(10, 80, 8).socket_addr(), at(10, 80, 8));
        same(&ours, &map);
        let gone = given[4].socket_addr();
        assert_eq!(ours.remove(&gone).map(|d| d.weight), Some(5));
        map.remove(&gone);
        same(&ours, &map);
        assert!(!ours.contains_key(&gone) && ours.get(&gone).is_none());
        assert!(ours.remove(&gone).is_none());
        ours.get_mut(&given[1].socket_addr()).unwrap().weight = 0;
        assert_eq!(ours.get(&given[1].socket_addr()).unwrap().weight, 0);
    }
}
