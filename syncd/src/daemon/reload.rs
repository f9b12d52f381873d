//! What a SIGHUP's new [sync] section changes, and which of it a running syncd can take.
//!
//! Live: peers, syncid, version, maxlen, ttl, resync_rate, group_sources, max_entries,
//! key_file, and a static role. Restart only: the interface, group and unicast_port (the
//! sockets, packet tap and kernel daemon's interface are bound at start) and a role that
//! starts or stops following vrrpd (its subscription task).

use lvs_config::{Sync as SyncConfig, SyncRole};

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Keys whose new values are in effect after the reload.
    pub applied: Vec<&'static str>,
    /// Keys that changed but keep their running values until a restart.
    pub restart: Vec<&'static str>,
    /// The kernel sync daemon must be restarted to take the new syncid, maxlen or ttl.
    pub kernel_daemon: bool,
    /// What syncd runs with now: the new section, with the restart-only keys as they were.
    pub effective: SyncConfig,
}

pub fn plan(running: &SyncConfig, new: &SyncConfig) -> Plan {
    let mut applied = Vec::new();
    let mut restart = Vec::new();
    let mut effective = new.clone();
    let mut note = |changed: bool, key: &'static str, live: bool| {
        if changed {
            if live { &mut applied } else { &mut restart }.push(key);
        }
    };
    note(running.interface != new.interface, "interface", false);
    note(running.group != new.group, "group", false);
    note(
        running.unicast_port() != new.unicast_port(),
        "unicast_port",
        false,
    );
    let static_roles =
        !matches!(running.role, SyncRole::Follow(_)) && !matches!(new.role, SyncRole::Follow(_));
    note(running.role != new.role, "role", static_roles);
    note(running.syncid != new.syncid, "syncid", true);
    note(running.version != new.version, "version", true);
    note(running.maxlen != new.maxlen, "maxlen", true);
    note(running.ttl != new.ttl, "ttl", true);
    note(running.peers != new.peers, "peers", true);
    note(running.resync_rate != new.resync_rate, "resync_rate", true);
    note(
        running.group_sources != new.group_sources,
        "group_sources",
        true,
    );
    note(running.max_entries != new.max_entries, "max_entries", true);
    note(running.key_file != new.key_file, "key_file", true);
    if restart.contains(&"interface") {
        effective.interface = running.interface.clone();
    }
    if restart.contains(&"group") {
        effective.group = running.group;
    }
    if restart.contains(&"unicast_port") {
        // Its socket stays: peers without a port keep resolving to the port it listens on.
        effective.unicast_port = running.unicast_port;
        if effective.unicast_port() != running.unicast_port() {
            effective.unicast_port = Some(running.unicast_port());
        }
    }
    if restart.contains(&"role") {
        effective.role = running.role.clone();
    }
    let kernel_daemon = applied
        .iter()
        .any(|key| matches!(*key, "syncid" | "maxlen" | "ttl"));
    Plan {
        applied,
        restart,
        kernel_daemon,
        effective,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> SyncConfig {
        let config = lvs_config::parse(&format!("[sync]\n{text}"), "test").unwrap();
        config.sync.unwrap()
    }

    #[test]
    fn live_keys_apply_and_the_kernel_daemon_restarts_for_its_own() {
        let running = section(
            "interface = \"s0\"\nrole = \"master\"\nsyncid = 5\npeers = [\"203.0.113.2:8848\"]",
        );
        let new = section(
            "interface = \"s0\"\nrole = \"backup\"\nsyncid = 6\nmaxlen = 1000\nresync_rate = 10\n\
             peers = [\"203.0.113.3:8848\"]",
        );
        let plan = plan(&running, &new);
        assert_eq!(
            plan.applied,
            ["role", "syncid", "maxlen", "peers", "resync_rate"]
        );
        assert!(plan.restart.is_empty());
        assert!(plan.kernel_daemon);
        assert_eq!(plan.effective, new);
    }

    #[test]
    fn sockets_and_vrrpd_following_wait_for_a_restart() {
        let mut running = section("interface = \"s0\"\nrole = \"backup\"");
        // Built here: a config naming a VRRP instance also needs its [[vrrp_instance]].
        running.role = SyncRole::Follow("VI_1".to_owned());
        let new = section(
            "interface = \"s1\"\nrole = \"master\"\ngroup = \"224.0.0.82:8849\"\nresync_rate = 5",
        );
        let plan = plan(&running, &new);
        // The unicast port follows the group's unless set: it changes with it.
        assert_eq!(plan.restart, ["interface", "group", "unicast_port", "role"]);
        assert_eq!(plan.applied, ["resync_rate"]);
        assert!(!plan.kernel_daemon);
        assert_eq!(
            plan.effective,
            SyncConfig {
                resync_rate: 5,
                ..running
            }
        );
    }
}
