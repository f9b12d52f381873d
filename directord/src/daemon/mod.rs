//! The directord service loop: keeps the kernel's IPVS table equal to what config, health
//! checks and feedback want, by difference only.
//!
//! It never flushes. On start it adopts the table it finds: servers present with a weight are
//! taken as up at that weight (so a restart, even after kill -9, changes nothing), servers
//! absent start in their check's initial state. SIGTERM leaves the table as it is.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lvs_config::Config;
use lvs_control::daemon::SetupError;
pub use lvs_control::directord::{
    Event, FeedbackState, Request, Response, ServerStatus, ServiceStatus, Status,
};
use lvs_ipvs::{IpvsClient, ServiceKey};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use self::metrics::{Metrics, ResultLabels, ServerLabels};
use directord::check;
use directord::error::Error;
use directord::kernel;
use directord::reconcile::{Ownership, plan};
use directord::table::{ServerId, ServerState, Table, configured, desired, service_key};
use lvs_control::directord::Applied;

mod metrics;

const SYSCTL_ROOT: &str = "/proc/sys/net/ipv4/vs";

#[derive(Debug, Clone)]
struct Health {
    up: bool,
    detail: String,
}

#[derive(Debug, Clone, Copy)]
struct Feedback {
    weight: Option<u32>,
    state: FeedbackState,
}

pub struct Director {
    config: Config,
    config_path: PathBuf,
    client: IpvsClient,
    health: HashMap<ServerId, Health>,
    /// What the probes found last, for status; set once the checker runs.
    checks: Option<check::HealthView<ServerId>>,
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
    /// Bumped by every accepted reload, so the checker follows the config.
    generation: u64,
}

impl Director {
    pub fn new(
        config: Config,
        config_path: PathBuf,
        events: broadcast::Sender<Event>,
    ) -> Result<Self, Error> {
        let mut client = IpvsClient::connect().map_err(Error::Netlink)?;
        let kernel = kernel::read_table(&mut client).map_err(Error::ReadTable)?;
        let mut director = Director {
            config,
            config_path,
            client,
            health: HashMap::new(),
            checks: None,
            feedback: HashMap::new(),
            adopted: HashMap::new(),
            previously_owned: BTreeMap::new(),
            last_apply: Applied::default(),
            events,
            metrics: Metrics::default(),
            check_weights: HashMap::new(),
            generation: 0,
        };
        director.adopt(&kernel);
        Ok(director)
    }

    /// Takes the kernel's word for every configured server it already has.
    fn adopt(&mut self, kernel: &Table) {
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
                let health = match found {
                    Some(d) if d.weight > 0 => {
                        if d.weight != real.weight {
                            self.adopted.insert(id, d.weight);
                        }
                        Health {
                            up: true,
                            detail: "adopted from the kernel table".to_owned(),
                        }
                    }
                    Some(_) => Health {
                        up: false,
                        detail: "adopted from the kernel table at weight 0".to_owned(),
                    },
                    None => Health {
                        up: initial_up,
                        detail: "initial state".to_owned(),
                    },
                };
                self.health.insert(id, health);
            }
        }
    }

    fn state_of(&self, id: &ServerId) -> ServerState {
        let health = self.health.get(id).is_none_or(|h| h.up);
        let feedback = self.feedback.get(&id.1);
        let up = health && !matches!(feedback.map(|f| f.state), Some(FeedbackState::Down));
        let weight = match feedback {
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
        ServerState { up, weight }
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

    /// Makes the kernel match; returns what was sent.
    pub fn reconcile(&mut self) -> Result<Applied, Error> {
        let current = kernel::read_table(&mut self.client).map_err(Error::ReadTable)?;
        let want = desired(&self.config, |id| self.state_of(id));
        let requests = plan(&want, &current, &self.ownership());
        let changes: Vec<String> = requests.iter().map(kernel::describe).collect();
        for change in &changes {
            info!("{change}");
        }
        let applied = kernel::apply(&mut self.client, &requests).map_err(Error::Apply)?;
        for failure in &applied.failures {
            warn!("{failure}");
        }
        self.metrics.ipvs_requests.inc_by(applied.requests as u64);
        self.metrics
            .ipvs_failures
            .inc_by(applied.failures.len() as u64);
        for (key, service) in &want.services {
            for (addr, destination) in &service.destinations {
                let labels = ServerLabels {
                    service: key.to_string(),
                    real: addr.to_string(),
                };
                let up = self.health.get(&(*key, *addr)).is_none_or(|h| h.up);
                self.metrics
                    .server_up
                    .get_or_create(&labels)
                    .set(i64::from(up));
                self.metrics
                    .server_weight
                    .get_or_create(&labels)
                    .set(i64::from(destination.weight));
            }
        }
        if !changes.is_empty() {
            let _ = self.events.send(Event::Applied { changes });
        }
        self.last_apply = applied.clone();
        Ok(applied)
    }

    /// Re-reads the config; a bad one is refused and the running one stays.
    pub fn reload(&mut self) -> Result<Applied, Error> {
        let new = match lvs_config::load(&self.config_path) {
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
        for (key, reals) in configured(&self.config) {
            self.previously_owned.entry(key).or_default().extend(reals);
        }
        // A changed configured weight overrides what was adopted at start.
        let weights: HashMap<ServerId, u32> = new
            .virtual_servers
            .iter()
            .filter_map(|vs| service_key(vs).map(|key| (vs, key)))
            .flat_map(|(vs, key)| vs.real.iter().map(move |r| ((key, r.address), r.weight)))
            .collect();
        let old_weights: HashMap<ServerId, u32> = self
            .config
            .virtual_servers
            .iter()
            .filter_map(|vs| service_key(vs).map(|key| (vs, key)))
            .flat_map(|(vs, key)| vs.real.iter().map(move |r| ((key, r.address), r.weight)))
            .collect();
        self.adopted
            .retain(|id, _| weights.get(id) == old_weights.get(id));
        self.config = new;
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
        self.reconcile()
            .inspect_err(|e| warn!("after the reload: {e}"))
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
        for id in ids {
            let before = self.health.insert(
                id,
                Health {
                    up,
                    detail: detail.to_owned(),
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

    /// Every configured real server's check, starting from the health directord holds now
    /// (adopted from the kernel, or the last result).
    pub fn check_servers(&self) -> Vec<(ServerId, check::Server)> {
        let mut servers = Vec::new();
        for vs in &self.config.virtual_servers {
            let Some(key) = service_key(vs) else { continue };
            for real in &vs.real {
                let id = (key, real.address);
                match check::Server::from_config(vs, real) {
                    Ok(mut server) => {
                        server.initial_up = self.health.get(&id).map(|h| h.up);
                        servers.push((id, server));
                    }
                    Err(e) => warn!(
                        "{} in {key}: check not runnable, left unchecked: {e}",
                        real.address
                    ),
                }
            }
        }
        servers
    }

    /// A health check result: the server went up or down, or its dynamic weight moved.
    /// Health changes that arrived together are applied with one reconcile: each reconcile
    /// reads and diffs the whole table, so one per event would cost O(servers) per change and
    /// fall behind exactly when many servers change at once (start, a switch failing, a
    /// starved checker), turning slow checks into more timeouts.
    pub fn check_events(
        &mut self,
        events: impl IntoIterator<Item = check::Event<ServerId>>,
    ) -> Result<Applied, Error> {
        for event in events {
            self.note_health(event);
        }
        self.reconcile()
    }

    fn note_health(&mut self, event: check::Event<ServerId>) {
        let (key, real) = event.id;
        match event.weight {
            Some(weight) => self.check_weights.insert(event.id, weight),
            None => self.check_weights.remove(&event.id),
        };
        self.adopted.remove(&event.id);
        let before = self.health.insert(
            event.id,
            Health {
                up: event.up,
                detail: event.detail.clone(),
            },
        );
        if before.is_none_or(|h| h.up != event.up) {
            info!(
                "{real} in {key} is {} ({})",
                if event.up { "up" } else { "down" },
                event.detail
            );
            let labels = ServerLabels {
                service: key.to_string(),
                real: real.to_string(),
            };
            self.metrics.health_transitions.get_or_create(&labels).inc();
            let _ = self.events.send(Event::Health {
                real,
                up: event.up,
                detail: event.detail,
            });
        }
    }

    fn status(&mut self) -> Result<Status, Error> {
        let kernel = kernel::read_table(&mut self.client).map_err(Error::Status)?;
        let mut services = Vec::new();
        for vs in &self.config.virtual_servers {
            let Some(key) = service_key(vs) else { continue };
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
                        .and_then(|view| view.get(&id))
                        .filter(|probed| probed.probes > 0);
                    ServerStatus {
                        address: real.address,
                        configured_weight: real.weight,
                        kernel_weight: kernel_weight(&real.address),
                        up: self.state_of(&id).up,
                        health: health.map_or_else(|| "no check".to_owned(), |h| h.detail.clone()),
                        last_check: probed.as_ref().map(|p| p.detail.clone()),
                        latency_ms: probed
                            .and_then(|p| p.latency)
                            .map(|l| l.as_secs_f64() * 1000.0),
                        feedback: self.feedback.get(&real.address).map(|f| match f.weight {
                            Some(w) => format!("{:?} weight {w}", f.state).to_lowercase(),
                            None => format!("{:?}", f.state).to_lowercase(),
                        }),
                        fallback: false,
                    }
                })
                .collect();
            if let Some(fallback) = vs.fallback {
                servers.push(ServerStatus {
                    address: fallback,
                    configured_weight: 1,
                    kernel_weight: kernel_weight(&fallback),
                    up: true,
                    health: "fallback: in the table only while every real server is down"
                        .to_owned(),
                    last_check: None,
                    latency_ms: None,
                    feedback: None,
                    fallback: true,
                });
            }
            services.push(ServiceStatus {
                name: vs.label(),
                service: key.to_string(),
                scheduler: vs.scheduler.to_string(),
                in_kernel: in_kernel.is_some(),
                servers,
            });
        }
        Ok(Status {
            config: self.config_path.clone(),
            services,
            last_apply: self.last_apply.clone(),
            probe_unknown: check::unknown_counts(&self.metrics.probe_unknown)
                .into_iter()
                .map(|(cause, n)| (cause.as_str().to_owned(), n))
                .collect(),
        })
    }

    fn handle(&mut self, request: Request) -> Result<Response, Error> {
        match request {
            Request::Status => self.status().map(Response::Status),
            Request::Reload => self.reload().map(Response::Applied),
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
                self.reconcile().map(Response::Applied)
            }
            Request::Health {
                service,
                real,
                up,
                detail,
            } => {
                self.set_health(service.as_deref(), real, up, &detail)?;
                self.reconcile().map(Response::Applied)
            }
        }
    }
}

/// Runs until SIGTERM/SIGINT. The table is left as it is on the way out.
pub async fn run(config: Config, config_path: PathBuf) -> Result<(), Error> {
    let (events, _) = broadcast::channel(256);
    let mut director = Director::new(config, config_path, events.clone())?;
    director.apply_sysctls();
    let applied = director.reconcile()?;
    info!("table reconciled at start: {} change(s)", applied.requests);

    if let Some(base) = director.config.control.metrics {
        let addr = lvs_control::metrics::address(base, "directord");
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SetupError::Metrics { addr, source })?;
        let mut registry = prometheus_client::registry::Registry::default();
        director.metrics.register(&mut registry);
        let registry = std::sync::Arc::new(std::sync::Mutex::new(registry));
        tokio::spawn(lvs_control::metrics::serve(
            listener,
            registry,
            CancellationToken::new(),
        ));
        info!("metrics on http://{addr}/metrics");
    }
    let lvs_control::daemon::ControlSocket {
        mut requests,
        shutdown,
        path: socket,
    } = lvs_control::daemon::serve_control::<Request, Response, _>(
        &director.config.control,
        "directord",
        events,
    )?;

    let (check_tx, mut check_events) = mpsc::channel::<check::Event<ServerId>>(1024);
    let mut checker = check::Scheduler::with_counters(
        check::ProbeContext::system(),
        check_tx,
        check::ProbeCounters {
            unknown: director.metrics.probe_unknown.clone(),
            down: director.metrics.probe_down.clone(),
        },
        tokio::time::Instant::now(),
    );
    checker.update(director.check_servers(), tokio::time::Instant::now());
    director.checks = Some(checker.view());
    director.metrics.watch_checks(checker.view());
    let mut checked_generation = director.generation;
    release_config_peak();
    // Health changes waiting for the next reconcile, and when it may run.
    let mut held = Vec::new();
    let mut next_apply = tokio::time::Instant::now();
    let mut apply_failures =
        lvs_control::limits::RateLimit::new(std::time::Duration::from_secs(10));

    let mut hangup = signal(SignalKind::hangup()).map_err(SetupError::Signal)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(SetupError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(SetupError::Signal)?;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let mut watchdog = lvs_control::daemon::Watchdog::from_env();
    info!("serving {}", socket.display());

    loop {
        if director.generation != checked_generation {
            checker.update(director.check_servers(), tokio::time::Instant::now());
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
                    next_apply = apply_health(&mut director, &mut held, &mut apply_failures);
                }
            }
            () = tokio::time::sleep_until(next_apply), if !held.is_empty() => {
                next_apply = apply_health(&mut director, &mut held, &mut apply_failures);
            }
            Some(incoming) = requests.recv() => {
                let response = director.handle(incoming.request.clone());
                incoming.reply(response);
            }
            _ = hangup.recv() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                // reload() logs and counts both a refusal and a failure to apply.
                let _ = director.reload();
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
            () = watchdog.ping_when_due() => {}
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    shutdown.cancel();
    let _ = std::fs::remove_file(&socket);
    info!("stopped; the IPVS table is left as it is");
    Ok(())
}

/// Applies the health changes held with one reconcile; returns when the next may run. A
/// reconcile reads the whole kernel table, so with thousands of servers changing state it is
/// kept to half of the time at most: changes arriving meanwhile wait for at most one
/// reconcile's duration and then go together, instead of starving the checks that found them.
fn apply_health(
    director: &mut Director,
    held: &mut Vec<check::Event<ServerId>>,
    failures: &mut lvs_control::limits::RateLimit,
) -> tokio::time::Instant {
    let started = tokio::time::Instant::now();
    // A kernel that keeps refusing would otherwise log once per batch of health events.
    if let Err(e) = director.check_events(held.drain(..))
        && let Some(held_back) = failures.allow(std::time::Instant::now())
    {
        warn!("{e} ({held_back} more since the last report)");
    }
    let now = tokio::time::Instant::now();
    now + (now - started)
}

/// Hands the heap that loading a config left free back to the system. Parsing a config of
/// thousands of real servers and diffing it against the kernel's table peaks at several times
/// what the daemon keeps, and malloc returns only the top of the heap by itself: without this,
/// RSS stays at that peak for the life of the daemon.
fn release_config_peak() {
    // SAFETY: malloc_trim only walks and releases glibc's own free lists.
    unsafe { libc::malloc_trim(0) };
}
