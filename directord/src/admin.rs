//! The operator's drains and maintenance (`lvsadm drain|maint|enable SERVICE REAL`): kept in
//! `<state_dir>/admin.json`, so they outlive reloads and restarts (a hand edit with
//! `ipvsadm -e -w 0` is undone by the next reconcile; this is not), and resolved against the
//! config to the entries they name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lvs_config::{Config, VirtualServer};
use lvs_control::state::{self, StateError};
use lvs_ipvs::ServiceKey;
use lvs_proto::directord::AdminState;
use serde::{Deserialize, Serialize};

use crate::table::service_key;

const FILE: &str = "admin.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    service: String,
    real: SocketAddr,
    state: AdminState,
}

/// Why an operator's request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no virtual server named {0:?} (a name, or a label such as \"tcp 192.0.2.100:80\")")]
    NoService(String),
    #[error("{real} is not a real server of {service}")]
    NoReal { service: String, real: SocketAddr },
    #[error("cannot keep it: {0}")]
    Save(#[from] StateError),
}

#[derive(Debug, Default)]
pub struct Admin {
    path: PathBuf,
    /// By the service's name or label as the operator gave it, and the real server.
    entries: BTreeMap<(String, SocketAddr), AdminState>,
}

impl Admin {
    /// What `state_dir` holds; a missing file is nothing held. A file that does not parse is
    /// reported and left as it is (nothing held until the next change rewrites it).
    pub fn load(state_dir: &Path) -> (Admin, Option<String>) {
        let path = state_dir.join(FILE);
        let (entries, problem) = match state::load::<Vec<Entry>>(&path) {
            Ok(entries) => (entries, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let entries = entries
            .into_iter()
            .map(|e| ((e.service, e.real), e.state))
            .collect();
        (Admin { path, entries }, problem)
    }

    /// Sets one entry's state (enabled forgets it) and writes the file before answering, so a
    /// crash right after cannot lose it.
    pub fn set(
        &mut self,
        config: &Config,
        service: &str,
        real: SocketAddr,
        state: AdminState,
    ) -> Result<(), AdminError> {
        let vs = config
            .virtual_servers
            .iter()
            .find(|vs| names(vs, service))
            .ok_or_else(|| AdminError::NoService(service.to_owned()))?;
        if !vs.real.iter().any(|r| r.address == real) {
            return Err(AdminError::NoReal {
                service: service.to_owned(),
                real,
            });
        }
        let key = (service.to_owned(), real);
        let before = self.entries.get(&key).copied();
        match state {
            AdminState::Enabled => self.entries.remove(&key),
            other => self.entries.insert(key.clone(), other),
        };
        self.save().inspect_err(|_| {
            // Not kept, so not applied either.
            match before {
                Some(old) => self.entries.insert(key.clone(), old),
                None => self.entries.remove(&key),
            };
        })
    }

    fn save(&self) -> Result<(), AdminError> {
        let entries: Vec<Entry> = self
            .entries
            .iter()
            .map(|((service, real), state)| Entry {
                service: service.clone(),
                real: *real,
                state: *state,
            })
            .collect();
        Ok(state::save(&self.path, &entries)?)
    }

    /// Every entry the config has, by its table key; entries naming what the config no longer
    /// has are kept (a later config may have them again) but apply to nothing.
    pub fn resolve(&self, config: &Config) -> BTreeMap<(ServiceKey, SocketAddr), AdminState> {
        let mut resolved = BTreeMap::new();
        for vs in &config.virtual_servers {
            let Some(key) = service_key(vs) else { continue };
            for ((service, real), state) in &self.entries {
                if names(vs, service) && vs.real.iter().any(|r| r.address == *real) {
                    resolved.insert((key, *real), *state);
                }
            }
        }
        resolved
    }
}

/// Whether the operator's `service` is this one: by its name, or by its label as
/// `lvsadm status` shows it ("TCP 192.0.2.100:80").
fn names(vs: &VirtualServer, service: &str) -> bool {
    vs.name.as_deref() == Some(service) || vs.label() == service
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[[virtual_server]]
name = "web"
address = "192.0.2.100:80"

[[virtual_server.real]]
address = "198.51.100.11:80"

[[virtual_server.real]]
address = "198.51.100.12:80"
"#;

    #[test]
    fn states_are_kept_across_a_restart_and_named_either_way() {
        let config = lvs_config::parse(CONFIG, "t.toml").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (mut admin, problem) = Admin::load(dir.path());
        assert!(problem.is_none());
        let real: SocketAddr = "198.51.100.11:80".parse().unwrap();
        admin.set(&config, "web", real, AdminState::Drain).unwrap();
        let other: SocketAddr = "198.51.100.12:80".parse().unwrap();
        admin
            .set(&config, "TCP 192.0.2.100:80", other, AdminState::Maint)
            .unwrap_err();
        admin
            .set(
                &config,
                &config.virtual_servers[0].label(),
                other,
                AdminState::Maint,
            )
            .unwrap();
        // A restart reads the file back.
        let (again, problem) = Admin::load(dir.path());
        assert!(problem.is_none());
        let key = service_key(&config.virtual_servers[0]).unwrap();
        let resolved = again.resolve(&config);
        assert_eq!(resolved.get(&(key, real)), Some(&AdminState::Drain));
        assert_eq!(resolved.get(&(key, other)), Some(&AdminState::Maint));
        // Enable forgets the entry.
        let mut again = again;
        again
            .set(&config, "web", real, AdminState::Enabled)
            .unwrap();
        assert_eq!(again.resolve(&config).len(), 1);
    }

    #[test]
    fn unknown_services_and_servers_are_refused() {
        let config = lvs_config::parse(CONFIG, "t.toml").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (mut admin, _) = Admin::load(dir.path());
        let stranger: SocketAddr = "198.51.100.99:80".parse().unwrap();
        assert!(matches!(
            admin.set(&config, "mail", stranger, AdminState::Drain),
            Err(AdminError::NoService(_))
        ));
        assert!(matches!(
            admin.set(&config, "web", stranger, AdminState::Drain),
            Err(AdminError::NoReal { .. })
        ));
        assert!(
            !dir.path().join(FILE).exists(),
            "nothing written for a refusal"
        );
    }

    #[test]
    fn a_damaged_file_is_reported_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        let (admin, problem) = Admin::load(dir.path());
        assert!(problem.is_some());
        assert!(admin.entries.is_empty());
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE)).unwrap(),
            "{not json"
        );
    }
}
