//! The difference between the table directord wants and the one the kernel has, as the fewest
//! netlink requests that close it. Sans-IO: tables in, requests out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use lvs_ipvs::{Request, ServiceKey};

use crate::table::{Table, same_destination, same_service};

/// What directord may delete: what it put there. Services and destinations it never
/// configured are the operator's, unless the config claims the whole table.
#[derive(Debug, Clone, Default)]
pub struct Ownership {
    pub whole_table: bool,
    pub servers: BTreeMap<ServiceKey, BTreeSet<SocketAddr>>,
}

impl Ownership {
    fn owns_service(&self, key: &ServiceKey) -> bool {
        self.whole_table || self.servers.contains_key(key)
    }

    fn owns_server(&self, key: &ServiceKey, addr: &SocketAddr) -> bool {
        self.whole_table
            || self
                .servers
                .get(key)
                .is_some_and(|reals| reals.contains(addr))
    }
}

/// Requests that turn `current` into `desired`: additions and edits first, so traffic always
/// has somewhere to go, then removals of what directord owns.
pub fn plan(desired: &Table, current: &Table, owned: &Ownership) -> Vec<Request> {
    let mut adds = Vec::new();
    let mut removals = Vec::new();
    for (key, want) in &desired.services {
        let Some(have) = current.services.get(key) else {
            adds.push(Request::AddService(want.service.clone()));
            adds.extend(
                want.destinations
                    .values()
                    .map(|d| Request::AddDestination(*key, d.clone())),
            );
            continue;
        };
        if !same_service(&want.service, &have.service) {
            adds.push(Request::EditService(want.service.clone()));
        }
        // New destinations (a fallback among them) before weights drop, within one service too.
        let mut edits = Vec::new();
        for destination in want.destinations.values() {
            match have.destinations.get(&destination.socket_addr()) {
                None => adds.push(Request::AddDestination(*key, destination.clone())),
                Some(existing) if !same_destination(destination, existing) => {
                    edits.push(Request::EditDestination(*key, destination.clone()));
                }
                Some(_) => {}
            }
        }
        adds.extend(edits);
        for addr in have.destinations.keys() {
            if !want.destinations.contains_key(&addr) && owned.owns_server(key, &addr) {
                removals.push(Request::DelDestination(*key, addr));
            }
        }
    }
    for key in current.services.keys() {
        if !desired.services.contains_key(key) && owned.owns_service(key) {
            removals.push(Request::DelService(*key));
        }
    }
    adds.extend(removals);
    adds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{all_up, config, owned, web_service};
    use crate::table::{ServerState, configured, desired};

    const CONFIG: &str = web_service!();

    fn names(requests: &[Request]) -> Vec<String> {
        requests
            .iter()
            .map(|r| match r {
                Request::AddService(s) => format!("add-service {}", s.key),
                Request::EditService(s) => format!("edit-service {}", s.key),
                Request::DelService(k) => format!("del-service {k}"),
                Request::AddDestination(_, d) => {
                    format!("add-dest {} w{}", d.socket_addr(), d.weight)
                }
                Request::EditDestination(_, d) => {
                    format!("edit-dest {} w{}", d.socket_addr(), d.weight)
                }
                Request::DelDestination(_, a) => format!("del-dest {a}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn an_empty_kernel_gets_the_whole_service() {
        let config = config(CONFIG);
        let plan = plan(&all_up(&config), &Table::default(), &owned(&config));
        assert_eq!(
            names(&plan),
            [
                "add-service tcp 192.0.2.100:80",
                "add-dest 198.51.100.11:80 w100",
                "add-dest 198.51.100.12:80 w50"
            ]
        );
    }

    #[test]
    fn a_matching_kernel_gets_nothing() {
        let config = config(CONFIG);
        let table = all_up(&config);
        assert!(plan(&table, &table, &owned(&config)).is_empty());
    }

    #[test]
    fn one_changed_weight_is_one_request() {
        let config_before = config(CONFIG);
        let config_after = config(&CONFIG.replace("weight = 50", "weight = 60"));
        let plan = plan(
            &all_up(&config_after),
            &all_up(&config_before),
            &owned(&config_after),
        );
        assert_eq!(names(&plan), ["edit-dest 198.51.100.12:80 w60"]);
    }

    #[test]
    fn down_servers_are_quiesced_or_removed_and_the_fallback_comes_in_when_all_are_down() {
        let config = config(CONFIG);
        let one_down = desired(&config, |(_, addr)| ServerState {
            up: addr.port() != 80 || addr.ip().to_string() != "198.51.100.11",
            weight: None,
            removed: false,
        });
        assert_eq!(
            names(&plan(&one_down, &all_up(&config), &owned(&config))),
            ["edit-dest 198.51.100.11:80 w0"]
        );

        let all_down = desired(&config, |_| ServerState {
            up: false,
            weight: None,
            removed: false,
        });
        assert_eq!(
            names(&plan(&all_down, &all_up(&config), &owned(&config))),
            [
                "add-dest 198.51.100.250:80 w1",
                "edit-dest 198.51.100.11:80 w0",
                "edit-dest 198.51.100.12:80 w0"
            ]
        );

        let remove = self::config(&CONFIG.replace(
            "forwarding = \"nat\"",
            "forwarding = \"nat\"\non_failure = \"remove\"",
        ));
        let removed = desired(&remove, |(_, addr)| ServerState {
            up: addr.port() == 80 && addr.ip().to_string() != "198.51.100.11",
            weight: None,
            removed: false,
        });
        assert_eq!(
            names(&plan(&removed, &all_up(&remove), &owned(&remove))),
            ["del-dest 198.51.100.11:80"]
        );
    }

    #[test]
    fn feedback_sets_the_weight_but_a_failed_check_wins() {
        let config = config(CONFIG);
        let fed = desired(&config, |_| ServerState {
            up: true,
            weight: Some(7),
            removed: false,
        });
        assert!(
            fed.services
                .values()
                .all(|s| s.destinations.values().all(|d| d.weight == 7))
        );
        let down = desired(&config, |_| ServerState {
            up: false,
            weight: Some(7),
            removed: false,
        });
        assert!(down.services.values().all(|s| {
            s.destinations
                .values()
                .all(|d| d.weight == 0 || d.port == 80 && d.weight == 1)
        }));
    }

    #[test]
    fn what_directord_did_not_create_is_left_alone() {
        let config = config(CONFIG);
        let mut kernel = all_up(&config);
        let foreign = lvs_config::parse(
            "[[virtual_server]]\naddress = \"192.0.2.200:443\"\n[[virtual_server.real]]\naddress = \"198.51.100.99:443\"\n",
            "foreign.toml",
        )
        .unwrap();
        kernel.services.extend(all_up(&foreign).services);
        let web = *kernel.services.keys().next().unwrap();
        let stray: SocketAddr = "198.51.100.77:80".parse().unwrap();
        kernel
            .services
            .get_mut(&web)
            .unwrap()
            .destinations
            .insert(lvs_ipvs::Destination::new(
                stray,
                lvs_ipvs::ForwardMethod::Masq,
                1,
            ));
        assert!(plan(&all_up(&config), &kernel, &owned(&config)).is_empty());

        let whole = Ownership {
            whole_table: true,
            ..owned(&config)
        };
        assert_eq!(
            names(&plan(&all_up(&config), &kernel, &whole)),
            [
                "del-dest 198.51.100.77:80",
                "del-service tcp 192.0.2.200:443"
            ]
        );
    }

    #[test]
    fn a_real_server_dropped_from_the_config_is_deleted_on_reload() {
        let before = config(CONFIG);
        let after = config(&CONFIG.replace(
            "[[virtual_server.real]]\naddress = \"198.51.100.12:80\"\nweight = 50\n",
            "",
        ));
        let mut owned = owned(&after);
        for (key, reals) in configured(&before) {
            owned.servers.entry(key).or_default().extend(reals);
        }
        assert_eq!(
            names(&plan(&all_up(&after), &all_up(&before), &owned)),
            ["del-dest 198.51.100.12:80"]
        );
    }

    #[test]
    fn service_settings_are_edited_in_place() {
        let before = config(CONFIG);
        let after = config(&CONFIG.replace(
            "scheduler = \"wrr\"",
            "scheduler = \"lc\"\npersistence = \"60s\"",
        ));
        let plan = plan(&all_up(&after), &all_up(&before), &owned(&after));
        assert_eq!(names(&plan), ["edit-service tcp 192.0.2.100:80"]);
        let Request::EditService(service) = &plan[0] else {
            unreachable!()
        };
        assert_eq!((service.scheduler.as_str(), service.timeout), ("lc", 60));
    }
}
