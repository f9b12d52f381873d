//! The directord service loop: keeps the kernel's IPVS table equal to what config, health
//! checks and feedback want, by difference only.
//!
//! It never flushes. On start it adopts the table it finds: servers present with a weight are
//! taken as up at that weight (so a restart, even after kill -9, changes nothing), servers
//! absent start in their check's initial state. SIGTERM leaves the table as it is.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use directord::admin::Admin;
use lvs_config::Config;
use lvs_control::daemon::SetupError;
pub use lvs_control::directord::{
    AdminState, Event, FeedbackState, QuorumReport, Request, Response, ServerStatus, ServiceStatus,
    Status,
};
use lvs_ipvs::{IpvsClient, ServiceKey};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use self::metrics::{Metrics, ResultLabels, ServerLabels, ServerRow};
use directord::cache::{self, KernelCache};
use directord::check;
use directord::error::Error;
use directord::kernel::{self, NetlinkThread};
use directord::reconcile::Ownership;
use directord::table::{
    Quorums, ServerId, ServerState, Table, configured, desired_with, service_key,
};
use lvs_control::directord::Applied;

mod metrics;
pub mod page;
mod scripts;

const SYSCTL_ROOT: &str = "/proc/sys/net/ipv4/vs";

#[derive(Debug, Clone)]
struct Health {
    up: bool,
    /// Shared by the entries one result or one start-up state speaks for: a String each was
    /// 37,298 copies of a few words.
    detail: Arc<str>,
}

#[derive(Debug, Clone, Copy)]
struct Feedback {
    weight: Option<u32>,
    state: FeedbackState,
}

pub struct Director {
    config: Config,
    config_path: PathBuf,
    netlink: NetlinkThread,
    /// The kernel's table as of directord's last dump and its own writes since.
    kernel: KernelCache,
    /// Ordered, not hashed: built in one go at start, a B-tree packs an entry in 80 bytes
    /// where a HashMap's table, rounded up to a power of two, took 140 (5.3 MB at 37,298).
    health: BTreeMap<ServerId, Health>,
    /// What the probes found last, for status; set once the checker runs.
    checks: Option<check::HealthView<check::CheckId>>,
    /// One probe per (real server, check), and the entries each answers for.
    shared: check::Checks<ServerId>,
    feedback: HashMap<SocketAddr, Feedback>,
    /// Weights found in the kernel at start, kept until feedback or a config change says otherwise.
    adopted: HashMap<ServerId, u32>,
    /// Servers of earlier configs: still directord's to remove after a reload dropped them.
    previously_owned: BTreeMap<ServiceKey, BTreeSet<SocketAddr>>,
    last_apply: Applied,
    events: broadcast::Sender<Event>,
    pub metrics: Metrics,
    /// Weights set by dynamic-weight checks (keepalived misc_dynamic).
    check_weights: HashMap<ServerId, u32>,
    /// Each service's quorum state, for keepalived's hysteresis.
    quorums: Quorums,
    /// Real servers' notify_up / notify_down, by entry.
    real_scripts: HashMap<ServerId, scripts::RealScripts>,
    /// ha_suspend services whose virtual address is not on this host: not checked.
    suspended: BTreeSet<ServiceKey>,
    /// Bumped by every accepted reload, so the checker follows the config.
    generation: u64,
    /// The operator's drains and maintenance, as kept in the state directory...
    admin: Admin,
    /// ...and resolved against the running config.
    admin_states: BTreeMap<ServerId, AdminState>,
}

impl Director {
    pub fn new(
        config: Config,
        config_path: PathBuf,
        events: broadcast::Sender<Event>,
    ) -> Result<Self, Error> {
        let mut client = IpvsClient::connect().map_err(Error::Netlink)?;
        // Read here, before the runtime has anything else to do, so the first reconcile
        // diffs against it instead of dumping again.
        let table = kernel::read_table(&mut client).map_err(Error::ReadTable)?;
        let mut cache = KernelCache::new(verify_every(&config));
        cache.dumped(table, std::time::Instant::now());
        let netlink = NetlinkThread::spawn(client).map_err(|source| {
            Error::Netlink(lvs_ipvs::Error::Io {
                context: "netlink thread",
                source,
            })
        })?;
        let mut director = Director {
            config,
            config_path,
            netlink,
            kernel: cache,
            health: BTreeMap::new(),
            checks: None,
            shared: check::Checks::new(),
            feedback: HashMap::new(),
            adopted: HashMap::new(),
            previously_owned: BTreeMap::new(),
            last_apply: Applied::default(),
            events,
            metrics: Metrics::default(),
            check_weights: HashMap::new(),
            quorums: Quorums::default(),
            real_scripts: HashMap::new(),
            suspended: BTreeSet::new(),
            generation: 0,
            admin: Admin::default(),
            admin_states: BTreeMap::new(),
        };
        director.load_admin();
        let kernel = std::mem::take(&mut director.kernel);
        director.adopt(kernel.table());
        director.kernel = kernel;
        director.real_scripts = scripts::real_scripts(&director.config);
        Ok(director)
    }

    /// Takes the kernel's word for every configured server it already has.
    fn adopt(&mut self, kernel: &Table) {
        let [adopted, adopted_at_0, initial]: [Arc<str>; 3] = [
            "adopted from the kernel table".into(),
            "adopted from the kernel table at weight 0".into(),
            "initial state".into(),
        ];
        let mut health = Vec::new();
        for vs in &self.config.virtual_servers {
            let Some(key) = service_key(vs) else { continue };
            for real in &vs.real {
                let id = (key, real.address);
                let found = kernel
                    .services
                    .get(&key)
                    .and_then(|s| s.destinations.get(&real.address));
                let initial_up = vs.check.as_ref().and_then(|c| c.initial)
                    != Some(lvs_config::InitialState::Down);
                let state = match found {
                    Some(d) if d.weight > 0 => {
                        if d.weight != real.weight {
                            self.adopted.insert(id, d.weight);
                        }
                        Health {
                            up: true,
                            detail: Arc::clone(&adopted),
                        }
                    }
                    Some(_) => Health {
                        up: false,
                        detail: Arc::clone(&adopted_at_0),
                    },
                    None => Health {
                        up: initial_up,
                        detail: Arc::clone(&initial),
                    },
                };
                health.push((id, state));
            }
        }
        // Collected from one list, the B-tree is bulk-built with full nodes; what is adopted
        // comes last and so wins over anything held before, as inserting it did.
        let mut all: Vec<_> = std::mem::take(&mut self.health).into_iter().collect();
        all.append(&mut health);
        self.health = all.into_iter().collect();
    }

    /// Reads the operator's drains and maintenance from the state directory, as a start or
    /// a reload (which may name another `state_dir`) finds them.
    fn load_admin(&mut self) {
        let (admin, problem) = Admin::load(&self.config.control.state_dir);
        if let Some(problem) = problem {
            error!("operator states not read (the file is left as it is): {problem}");
        }
        self.admin = admin;
        self.admin_states = self.admin.resolve(&self.config);
        for ((key, real), state) in &self.admin_states {
            info!("{key} {real}: {} (lvsadm)", state.as_str());
        }
    }

    fn state_of(&self, id: &ServerId) -> ServerState {
        let admin = self.admin_states.get(id).copied().unwrap_or_default();
        let health = self.health.get(id).is_none_or(|h| h.up) && admin != AdminState::Maint;
        let feedback = self.feedback.get(&id.1);
        let up = health && !matches!(feedback.map(|f| f.state), Some(FeedbackState::Down));
        let weight = match feedback {
            _ if admin == AdminState::Drain => Some(0),
            Some(Feedback {
                state: FeedbackState::Drain,
                ..
            }) => Some(0),
            Some(Feedback {
                state: FeedbackState::Up,
                weight,
            }) => *weight,
            _ => self.adopted.get(id).copied(),
        };
        ServerState {
            up,
            weight,
            removed: admin == AdminState::Maint,
        }
    }

    fn ownership(&self) -> Ownership {
        let mut servers = configured(&self.config);
        for (key, reals) in &self.previously_owned {
            servers
                .entry(*key)
                .or_default()
                .extend(reals.iter().copied());
        }
        Ownership {
            whole_table: self.config.ipvs.own_whole_table,
            servers,
        }
    }

    /// Makes the kernel match by difference from the cached table; returns what was sent.
    pub async fn reconcile(&mut self) -> Result<Applied, Error> {
        let want = self.desired_table();
        let owned = self.ownership();
        let now = std::time::Instant::now();
        let synced = cache::sync(&mut self.kernel, &mut self.netlink, &want, &owned, now).await?;
        if synced.dumped {
            self.metrics.ipvs_dumps.inc();
        }
        for change in &synced.changes {
            info!("{change}");
        }
        let applied = synced.applied;
        for failure in &applied.failures {
            warn!("{failure}");
        }
        self.metrics.ipvs_requests.inc_by(applied.requests as u64);
        self.metrics
            .ipvs_failures
            .inc_by(applied.failures.len() as u64);
        self.server_metrics(&want);
        if !synced.changes.is_empty() {
            let _ = self.events.send(Event::Applied {
                changes: synced.changes,
            });
        }
        self.last_apply = applied.clone();
        Ok(applied)
    }

    /// The table config, health and feedback ask for, following each service's quorum.
    fn desired_table(&mut self) -> Table {
        let mut quorums = std::mem::take(&mut self.quorums);
        let changes = quorums.update(&self.config, |id| self.state_of(id));
        self.quorums = quorums;
        for change in changes {
            let vs = self
                .config
                .virtual_servers
                .iter()
                .find(|vs| service_key(vs) == Some(change.key));
            let (quorum, hysteresis) = vs.map_or((1, 0), |vs| (vs.quorum, vs.hysteresis));
            let what = format!(
                "{} {} quorum: live weight {} against quorum {quorum} +/- {hysteresis}",
                change.key,
                if change.up { "gained" } else { "lost" },
                change.live
            );
            info!("{what}");
            let script = vs.and_then(|vs| {
                if change.up {
                    vs.quorum_up.as_deref()
                } else {
                    vs.quorum_down.as_deref()
                }
            });
            if let Some(script) = script {
                scripts::run(script, what);
            }
        }
        desired_with(&self.config, |id| self.state_of(id), &self.quorums)
    }

    /// keepalived ha_suspend: rereads the host's addresses; true when a service's checks
    /// must pause or resume (the checker then follows, its entries keeping their state).
    fn follow_ha_suspend(&mut self) -> bool {
        let watched: Vec<(ServiceKey, std::net::IpAddr)> = self
            .config
            .virtual_servers
            .iter()
            .filter(|vs| vs.ha_suspend)
            .filter_map(|vs| Some((service_key(vs)?, vs.address?.ip())))
            .collect();
        if watched.is_empty() && self.suspended.is_empty() {
            return false;
        }
        let local: BTreeSet<std::net::IpAddr> = nix::ifaddrs::getifaddrs()
            .map(|addrs| {
                addrs
                    .filter_map(|a| a.address)
                    .filter_map(|a| {
                        a.as_sockaddr_in()
                            .map(|v4| std::net::IpAddr::V4(v4.ip()))
                            .or_else(|| a.as_sockaddr_in6().map(|v6| std::net::IpAddr::V6(v6.ip())))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let suspended: BTreeSet<ServiceKey> = watched
            .into_iter()
            .filter(|(_, vip)| !local.contains(vip))
            .map(|(key, _)| key)
            .collect();
        if suspended == self.suspended {
            return false;
        }
        for key in suspended.symmetric_difference(&self.suspended) {
            let pausing = suspended.contains(key);
            info!(
                "{key}: checks {} (ha_suspend: its address is {} this host)",
                if pausing { "paused" } else { "resumed" },
                if pausing { "not on" } else { "on" }
            );
        }
        self.suspended = suspended;
        true
    }

    /// keepalived omega: what runs at shutdown, in order: for each omega service, the
    /// notify_down of its live real servers, then its quorum_down.
    fn omega_scripts(&self) -> Vec<(String, String)> {
        let mut scripts = Vec::new();
        for vs in self.config.virtual_servers.iter().filter(|vs| vs.omega) {
            let Some(key) = service_key(vs) else { continue };
            for real in &vs.real {
                let id = (key, real.address);
                if let Some(down) = &real.notify_down
                    && self.state_of(&id).up
                {
                    scripts.push((
                        down.clone(),
                        format!("{} in {key} at shutdown", real.address),
                    ));
                }
            }
            if let Some(down) = &vs.quorum_down {
                scripts.push((down.clone(), format!("{key} quorum at shutdown")));
            }
        }
        scripts
    }

    /// Each named service's quorum as the last table computed it.
    fn quorum_report(&self) -> QuorumReport {
        let mut quorum = std::collections::BTreeMap::new();
        for vs in &self.config.virtual_servers {
            let (Some(name), Some(key)) = (&vs.name, service_key(vs)) else {
                continue;
            };
            let up = self.quorums.is_up(&key).unwrap_or(true);
            let held = quorum.entry(name.clone()).or_insert(true);
            *held &= up;
        }
        QuorumReport { quorum }
    }

    /// Publishes every entry's gauges: rebuilt whole, a few milliseconds at 37,298 entries,
    /// so an entry whose health changed without a table change, or that left the config,
    /// shows as it is.
    fn server_metrics(&self, want: &Table) {
        // Sized first: collected from the nested iterators, the Vec doubled its way to 4 MB
        // of which 2 MB stayed unused until the next reconcile.
        let mut rows =
            Vec::with_capacity(want.services.values().map(|s| s.destinations.len()).sum());
        rows.extend(want.services.iter().flat_map(|(key, service)| {
            service.destinations.values().map(move |d| {
                let id = (*key, d.socket_addr());
                ServerRow {
                    id,
                    up: self.health.get(&id).is_none_or(|h| h.up),
                    weight: d.weight,
                }
            })
        }));
        self.metrics.servers.publish(rows);
    }

    /// Re-reads the config; a bad one is refused and the running one stays.
    pub async fn reload(&mut self) -> Result<Applied, Error> {
        // Only the services whose text changed are parsed (the parser was most of a reload).
        let (loaded, reparsed) = lvs_config::reload(&self.config_path, &self.config);
        if let Some(reparsed) = reparsed {
            info!(
                "reload: {} service block(s) parsed, {} unchanged",
                reparsed.parsed, reparsed.kept
            );
        }
        let new = match loaded {
            Ok(config) => config,
            Err(e) => {
                let error = e.to_string();
                self.metrics
                    .reloads
                    .get_or_create(&ResultLabels {
                        result: "refused".to_owned(),
                    })
                    .inc();
                error!("reload refused, keeping the running config:\n{error}");
                let _ = self.events.send(Event::ReloadRejected {
                    error: error.clone(),
                });
                return Err(e.into());
            }
        };
        self.remember_dropped(&new);
        // A changed configured weight overrides what was adopted at start. Only the adopted
        // entries are looked up: mapping every entry of both configs cost 50 ms at 37,298.
        if !self.adopted.is_empty() {
            let weights = adopted_weights(&new, &self.adopted);
            let old_weights = adopted_weights(&self.config, &self.adopted);
            self.adopted
                .retain(|id, _| weights.get(id) == old_weights.get(id));
        }
        self.config = new;
        self.load_admin();
        self.real_scripts = scripts::real_scripts(&self.config);
        self.generation += 1;
        self.kernel
            .set_verify_every(verify_every(&self.config), std::time::Instant::now());
        self.metrics
            .reloads
            .get_or_create(&ResultLabels {
                result: "applied".to_owned(),
            })
            .inc();
        self.apply_sysctls();
        let _ = self.events.send(Event::Reloaded {
            config: self.config_path.clone(),
        });
        info!("reloaded {}", self.config_path.display());
        let applied = self
            .reconcile()
            .await
            .inspect_err(|e| warn!("after the reload: {e}"));
        // Two configs were alive at once: give the peak back, or RSS stays there.
        release_config_peak();
        applied
    }

    /// Keeps the servers that `new` no longer configures as directord's to remove. Only those:
    /// the ones it still configures are owned through it, and keeping every entry of every
    /// past config cost 3 MB at 37,298 entries.
    fn remember_dropped(&mut self, new: &Config) {
        let kept = configured(new);
        for (key, reals) in configured(&self.config) {
            let still = kept.get(&key);
            let dropped = reals
                .into_iter()
                .filter(|r| still.is_none_or(|s| !s.contains(r)));
            self.previously_owned
                .entry(key)
                .or_default()
                .extend(dropped);
        }
        self.previously_owned.retain(|key, reals| {
            if let Some(still) = kept.get(key) {
                reals.retain(|r| !still.contains(r));
            }
            !reals.is_empty() || !kept.contains_key(key)
        });
    }

    pub fn apply_sysctls(&self) {
        for failure in kernel::apply_sysctls(Path::new(SYSCTL_ROOT), &self.config.ipvs.sysctl) {
            warn!("sysctl {failure}");
        }
    }

    fn set_health(
        &mut self,
        service: Option<&str>,
        real: SocketAddr,
        up: bool,
        detail: &str,
    ) -> Result<(), Error> {
        let ids: Vec<ServerId> = self
            .config
            .virtual_servers
            .iter()
            .filter(|vs| service.is_none_or(|name| vs.name.as_deref() == Some(name)))
            .filter_map(|vs| service_key(vs).filter(|_| vs.real.iter().any(|r| r.address == real)))
            .map(|key| (key, real))
            .collect();
        if ids.is_empty() {
            return Err(Error::NotAReal(real));
        }
        let shared: Arc<str> = detail.into();
        for id in ids {
            let before = self.health.insert(
                id,
                Health {
                    up,
                    detail: Arc::clone(&shared),
                },
            );
            if before.is_none_or(|h| h.up != up) {
                info!(
                    "{real} in {} is {} ({detail})",
                    id.0,
                    if up { "up" } else { "down" }
                );
                let labels = ServerLabels {
                    service: id.0.to_string(),
                    real: real.to_string(),
                };
                self.metrics.health_transitions.get_or_create(&labels).inc();
                let _ = self.events.send(Event::Health {
                    real,
                    up,
                    detail: detail.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The shared checks of every configured real server, each starting from the health its
    /// entries hold now (adopted from the kernel, or the last result).
    pub fn check_servers(&mut self) -> Vec<(check::CheckId, check::Server)> {
        let entries = self.check_entries();
        let servers = self.shared.update(entries);
        self.metrics
            .check_entries(self.shared.all_entries().collect());
        servers
    }

    /// An entry new to a check that is already running (a service added by a reload next to
    /// others sharing its real server) takes the state that check holds, since no transition
    /// will tell it. True when one joined a check that holds its server down.
    fn join_running_checks(&mut self, view: &check::HealthView<check::CheckId>) -> bool {
        let mut joined_down = false;
        for vs in &self.config.virtual_servers {
            let Some(key) = service_key(vs) else { continue };
            for real in &vs.real {
                let id = (key, real.address);
                if self.health.contains_key(&id) {
                    continue;
                }
                let Some(running) = self.shared.check_of(&id).and_then(|c| view.get(&c)) else {
                    continue;
                };
                joined_down |= !running.up;
                self.health.insert(
                    id,
                    Health {
                        up: running.up,
                        detail: running.detail.into(),
                    },
                );
            }
        }
        joined_down
    }

    /// Every configured real-server entry's check, but those of suspended services.
    fn check_entries(&self) -> Vec<(ServerId, check::Server)> {
        let mut servers = Vec::new();
        for (id, server) in check::dedup::entries(&self.config) {
            if self.suspended.contains(&id.0) {
                continue;
            }
            match server {
                Ok(mut server) => {
                    server.initial_up = self.health.get(&id).map(|h| h.up);
                    servers.push((id, server));
                }
                Err(e) => warn!(
                    "{} in {}: check not runnable, left unchecked: {e}",
                    id.1, id.0
                ),
            }
        }
        servers
    }

    /// A health check result: the server went up or down, or its dynamic weight moved.
    /// Health changes that arrived together are applied with one reconcile: each reconcile
    /// reads and diffs the whole table, so one per event would cost O(servers) per change and
    /// fall behind exactly when many servers change at once (start, a switch failing, a
    /// starved checker), turning slow checks into more timeouts.
    pub async fn check_events(
        &mut self,
        events: impl IntoIterator<Item = check::Event<check::CheckId>>,
    ) -> Result<Applied, Error> {
        for event in events {
            // A shared probe's result is every entry's that it answers for.
            let entries = self.shared.entries(event.id).to_vec();
            let detail: Arc<str> = event.detail.into();
            for id in entries {
                self.note_health(id, event.up, event.weight, &detail);
            }
        }
        self.reconcile().await
    }

    fn note_health(&mut self, id: ServerId, up: bool, weight: Option<u32>, detail: &Arc<str>) {
        let (key, real) = id;
        match weight {
            Some(weight) => self.check_weights.insert(id, weight),
            None => self.check_weights.remove(&id),
        };
        self.adopted.remove(&id);
        let before = self.health.insert(
            id,
            Health {
                up,
                detail: Arc::clone(detail),
            },
        );
        if before.is_none_or(|h| h.up != up) {
            info!(
                "{real} in {key} is {} ({detail})",
                if up { "up" } else { "down" },
            );
            let script = self.real_scripts.get(&id).and_then(|s| {
                if up {
                    s.up.as_deref()
                } else {
                    s.down.as_deref()
                }
            });
            if let Some(script) = script {
                let state = if up { "up" } else { "down" };
                scripts::run(script, format!("{real} in {key} {state}"));
            }
            let labels = ServerLabels {
                service: key.to_string(),
                real: real.to_string(),
            };
            self.metrics.health_transitions.get_or_create(&labels).inc();
            let _ = self.events.send(Event::Health {
                real,
                up,
                detail: detail.to_string(),
            });
        }
    }

    /// One page of services (`limit` of them from the `from`-th, in config order; all when no
    /// limit). The kernel side is the cached table: exact for directord's own writes, and for
    /// out-of-band changes as of the last verify.
    fn status(&self, from: usize, limit: Option<usize>) -> Status {
        let configured = self
            .config
            .virtual_servers
            .iter()
            .filter_map(|vs| service_key(vs).map(|key| (vs, key)));
        let total = configured.clone().count();
        let end = limit.map_or(total, |limit| from.saturating_add(limit).min(total));
        let services = configured
            .skip(from)
            .take(end.saturating_sub(from))
            .map(|(vs, key)| self.service_status(vs, key))
            .collect();
        Status {
            config: self.config_path.clone(),
            services,
            next: (end < total).then_some(end),
            last_apply: self.last_apply.clone(),
            probe_unknown: check::unknown_counts(&self.metrics.probe_unknown)
                .into_iter()
                .map(|(cause, n)| (cause.as_str().to_owned(), n))
                .collect(),
        }
    }

    fn service_status(&self, vs: &lvs_config::VirtualServer, key: ServiceKey) -> ServiceStatus {
        let kernel = self.kernel.table();
        let in_kernel = kernel.services.get(&key);
        let kernel_weight = |addr: &SocketAddr| {
            in_kernel
                .and_then(|s| s.destinations.get(addr))
                .map(|d| d.weight)
        };
        let mut servers: Vec<ServerStatus> = vs
            .real
            .iter()
            .map(|real| {
                let id = (key, real.address);
                let health = self.health.get(&id);
                let probed = self
                    .checks
                    .as_ref()
                    .zip(self.shared.check_of(&id))
                    .and_then(|(view, check)| view.get(&check))
                    .filter(|probed| probed.probes > 0);
                ServerStatus {
                    address: real.address,
                    configured_weight: real.weight,
                    kernel_weight: kernel_weight(&real.address),
                    up: self.state_of(&id).up,
                    health: health.map_or_else(|| "no check".to_owned(), |h| h.detail.to_string()),
                    last_check: probed.as_ref().map(|p| p.detail.clone()),
                    latency_ms: probed
                        .and_then(|p| p.latency)
                        .map(|l| l.as_secs_f64() * 1000.0),
                    feedback: self.feedback.get(&real.address).map(|f| match f.weight {
                        Some(w) => format!("{:?} weight {w}", f.state).to_lowercase(),
                        None => format!("{:?}", f.state).to_lowercase(),
                    }),
                    fallback: false,
                    admin: self.admin_states.get(&id).copied(),
                }
            })
            .collect();
        if let Some(fallback) = vs.fallback {
            servers.push(ServerStatus {
                address: fallback,
                configured_weight: 1,
                kernel_weight: kernel_weight(&fallback),
                up: true,
                health: "fallback: in the table only while every real server is down".to_owned(),
                last_check: None,
                latency_ms: None,
                feedback: None,
                fallback: true,
                admin: None,
            });
        }
        ServiceStatus {
            name: vs.label(),
            service: key.to_string(),
            scheduler: vs.scheduler.to_string(),
            in_kernel: in_kernel.is_some(),
            servers,
        }
    }

    async fn handle(&mut self, request: Request) -> Result<Response, Error> {
        match request {
            Request::Status { from, limit } => Ok(Response::Status(self.status(from, limit))),
            Request::Quorum => Ok(Response::Quorum(self.quorum_report())),
            Request::Ping => Ok(Response::Done {}),
            Request::Reload => self.reload().await.map(Response::Applied),
            Request::Feedback {
                real,
                weight,
                state,
            } => {
                if !self
                    .config
                    .virtual_servers
                    .iter()
                    .any(|vs| vs.real.iter().any(|r| r.address == real))
                {
                    return Err(Error::NotAReal(real));
                }
                if state == FeedbackState::Lost {
                    self.feedback.remove(&real);
                } else {
                    self.feedback.insert(real, Feedback { weight, state });
                }
                self.adopted.retain(|(_, addr), _| *addr != real);
                self.reconcile().await.map(Response::Applied)
            }
            Request::Admin {
                service,
                real,
                state,
            } => {
                self.admin.set(&self.config, &service, real, state)?;
                self.admin_states = self.admin.resolve(&self.config);
                info!("{service} {real}: {} (lvsadm)", state.as_str());
                self.reconcile().await.map(Response::Applied)
            }
            Request::Health {
                service,
                real,
                up,
                detail,
            } => {
                self.set_health(service.as_deref(), real, up, &detail)?;
                self.reconcile().await.map(Response::Applied)
            }
        }
    }
}

/// directord's HTTP listener on `control.metrics`: Prometheus, /status.json and the live
/// status page (`page`).
async fn serve_metrics(director: &Director) -> Result<(), Error> {
    let Some(base) = director.config.control.metrics else {
        return Ok(());
    };
    let mut registry = prometheus_client::registry::Registry::default();
    director.metrics.register(&mut registry);
    let control = &director.config.control;
    let routes =
        lvs_control::http::Routes::new(std::sync::Arc::new(std::sync::Mutex::new(registry)))
            .with_daemon_status(control, "directord", &Request::STATUS)
            .with_pages(page::StatusPage::start(control.socket_dir.clone()));
    lvs_control::http::start(base, "directord", routes, CancellationToken::new()).await?;
    Ok(())
}

/// The health checker, running the config's shared checks; their results come on the
/// returned channel.
fn start_checks(
    director: &mut Director,
) -> (
    check::Scheduler<check::CheckId>,
    mpsc::Receiver<check::Event<check::CheckId>>,
) {
    let (check_tx, check_events) = mpsc::channel::<check::Event<check::CheckId>>(1024);
    let mut checker = check::Scheduler::with_counters(
        check::ProbeContext::system(),
        check_tx,
        check::ProbeCounters {
            unknown: director.metrics.probe_unknown.clone(),
            down: director.metrics.probe_down.clone(),
        },
        tokio::time::Instant::now(),
    );
    director.follow_ha_suspend();
    let servers = director.check_servers();
    checker.update(servers, tokio::time::Instant::now());
    director.checks = Some(checker.view());
    director.metrics.watch_checks(checker.view());
    (checker, check_events)
}

/// Runs until SIGTERM/SIGINT. The table is left as it is on the way out.
pub async fn run(config: Config, config_path: PathBuf) -> Result<(), Error> {
    // First: at thousands of services start takes seconds, and a SIGHUP meanwhile (a deploy
    // tool reloading right after a restart) would otherwise end the process by default.
    // Signals caught before the loop are handled once it runs.
    let mut hangup = signal(SignalKind::hangup()).map_err(SetupError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(SetupError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(SetupError::Signal)?;
    let (events, _) = broadcast::channel(256);
    let mut director = Director::new(config, config_path, events.clone())?;
    director.apply_sysctls();
    let applied = director.reconcile().await?;
    info!("table reconciled at start: {} change(s)", applied.requests);

    serve_metrics(&director).await?;
    let lvs_control::daemon::ControlSocket {
        mut requests,
        shutdown,
        path: socket,
    } = lvs_control::daemon::serve_control::<Request, Response, _>(
        &director.config.control,
        "directord",
        events,
    )?;

    let (mut checker, mut check_events) = start_checks(&mut director);
    let mut addresses = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut checked_generation = director.generation;
    release_config_peak();
    // Health changes waiting for the next reconcile, and when it may run.
    let mut held = Vec::new();
    let mut next_apply = tokio::time::Instant::now();
    let mut apply_failures =
        lvs_control::limits::RateLimit::new(std::time::Duration::from_secs(10));

    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let mut watchdog = lvs_control::daemon::Watchdog::from_env();
    info!("serving {}", socket.display());

    loop {
        let verify_at = director.kernel.next_verify();
        if director.generation != checked_generation {
            let servers = director.check_servers();
            checker.update(servers, tokio::time::Instant::now());
            // The reload's reconcile took such entries as up; they follow their check now.
            if director.join_running_checks(&checker.view())
                && let Err(e) = director.reconcile().await
            {
                warn!("after the reload: {e}");
            }
            checked_generation = director.generation;
            release_config_peak();
        }
        tokio::select! {
            Some(event) = check_events.recv() => {
                held.push(event);
                while let Ok(more) = check_events.try_recv() {
                    held.push(more);
                }
                if tokio::time::Instant::now() >= next_apply {
                    next_apply = apply_health(&mut director, &mut held, &mut apply_failures).await;
                }
            }
            () = tokio::time::sleep_until(next_apply), if !held.is_empty() => {
                next_apply = apply_health(&mut director, &mut held, &mut apply_failures).await;
            }
            () = sleep_until_std(verify_at), if verify_at.is_some() => {
                // The cache is due for a dump: reconcile reads the table and repairs it.
                if let Err(e) = director.reconcile().await {
                    warn!("verifying the IPVS table: {e}");
                }
            }
            Some(incoming) = requests.recv() => {
                let response = director.handle(incoming.request.clone()).await;
                incoming.reply(response);
            }
            _ = hangup.recv() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                // reload() logs and counts both a refusal and a failure to apply.
                let _ = director.reload().await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
            () = watchdog.ping_when_due() => {}
            _ = addresses.tick() => {
                if director.follow_ha_suspend() {
                    director.generation += 1;
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    shutdown.cancel();
    for (command, why) in director.omega_scripts() {
        scripts::run_within(&command, &why, scripts::AT_SHUTDOWN).await;
    }
    let _ = std::fs::remove_file(&socket);
    info!("stopped; the IPVS table is left as it is");
    Ok(())
}

/// Applies the health changes held with one reconcile; returns when the next may run. A
/// reconcile reads the whole kernel table, so with thousands of servers changing state it is
/// kept to half of the time at most: changes arriving meanwhile wait for at most one
/// reconcile's duration and then go together, instead of starving the checks that found them.
async fn apply_health(
    director: &mut Director,
    held: &mut Vec<check::Event<check::CheckId>>,
    failures: &mut lvs_control::limits::RateLimit,
) -> tokio::time::Instant {
    let started = tokio::time::Instant::now();
    // A kernel that keeps refusing would otherwise log once per batch of health events.
    if let Err(e) = director.check_events(held.drain(..)).await
        && let Some(held_back) = failures.allow(std::time::Instant::now())
    {
        warn!("{e} ({held_back} more since the last report)");
    }
    let now = tokio::time::Instant::now();
    now + (now - started)
}

/// The configured weight of each entry of `config` that `adopted` holds.
fn adopted_weights(config: &Config, adopted: &HashMap<ServerId, u32>) -> HashMap<ServerId, u32> {
    config
        .virtual_servers
        .iter()
        .filter_map(|vs| service_key(vs).map(|key| (vs, key)))
        .flat_map(|(vs, key)| vs.real.iter().map(move |r| ((key, r.address), r.weight)))
        .filter(|(id, _)| adopted.contains_key(id))
        .collect()
}

/// `[ipvs] verify_interval`, 0 meaning never.
fn verify_every(config: &Config) -> Option<std::time::Duration> {
    let every = config.ipvs.verify_interval;
    (!every.is_zero()).then(|| every.get())
}

/// Sleeps until `at` (a std instant, as the sans-IO cache keeps time); forever when None.
async fn sleep_until_std(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Hands the heap that loading a config left free back to the system. Parsing a config of
/// thousands of real servers and diffing it against the kernel's table peaks at several times
/// what the daemon keeps, and malloc returns only the top of the heap by itself: without this,
/// RSS stays at that peak for the life of the daemon.
fn release_config_peak() {
    // SAFETY: malloc_trim only walks and releases glibc's own free lists.
    unsafe { libc::malloc_trim(0) };
}
