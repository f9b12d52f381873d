//! The IPVS table as directord reasons about it: what the config, health and feedback want
//! ([`desired`]), and what the kernel has, in one shape so the two can be compared.

use std::collections::{BTreeMap, BTreeSet};
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
                        destinations: BTreeMap::new(),
                    });
                entry.service.clone_from(service);
            }
            Request::DelService(key) => {
                self.services.remove(key);
            }
            Request::AddDestination(key, destination)
            | Request::EditDestination(key, destination) => {
                if let Some(service) = self.services.get_mut(key) {
                    service
                        .destinations
                        .insert(destination.socket_addr(), destination.clone());
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
    pub destinations: BTreeMap<SocketAddr, Destination>,
}

/// What health checks and feedback say about one real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerState {
    pub up: bool,
    /// A weight from feedback or from a dynamic-weight check; the configured one otherwise.
    pub weight: Option<u32>,
}

impl ServerState {
    pub const UP: ServerState = ServerState {
        up: true,
        weight: None,
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

/// The table the config asks for, given each real server's state. A failed health check always
/// wins over feedback: a down server is quiesced (weight 0) or removed as the service says; the
/// fallback server is in the table exactly when no real server is up.
pub fn desired(config: &Config, state: impl Fn(&ServerId) -> ServerState) -> Table {
    let mut table = Table::default();
    for vs in &config.virtual_servers {
        let Some(key) = service_key(vs) else { continue };
        let mut destinations = BTreeMap::new();
        let mut any_up = false;
        for real in &vs.real {
            let server = state(&(key, real.address));
            let weight = match (server.up, vs.on_failure) {
                (true, _) => server.weight.unwrap_or(real.weight),
                (false, OnFailure::Quiescent) => 0,
                (false, OnFailure::Remove) => continue,
            };
            any_up |= server.up && weight > 0;
            let fwd = forward_method(real.forwarding.unwrap_or(vs.forwarding));
            let destination = Destination::new(real.address, fwd, weight)
                .with_thresholds(real.upper_threshold, real.lower_threshold);
            destinations.insert(real.address, destination);
        }
        if let Some(fallback) = vs.fallback
            && !any_up
        {
            destinations.insert(
                fallback,
                Destination::new(fallback, forward_method(vs.forwarding), 1),
            );
        }
        table.services.insert(
            key,
            TableService {
                service: service(vs, key),
                destinations,
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
    use lvs_ipvs::Service;

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
        assert_eq!(service.destinations[&real].weight, 9);
        table.apply(&Request::GetServices);
        assert_eq!(table.services.len(), 1, "a read changes nothing");
        table.apply(&Request::DelService(key));
        assert!(table.services.is_empty());
    }
}
