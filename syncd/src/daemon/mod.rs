//! The tokio shell around [`syncd::engine::Engine`]: the sync port, the injector, the packet
//! tap, the kernel's own sync daemons (netlink), /proc snapshots, vrrpd following and the
//! control socket.
//!
//! The kernel sync daemons are started to match the role and left running on exit: kernel
//! to kernel sync on a shared link keeps working without syncd, and a restarted syncd adopts
//! daemons that already match its config. Following vrrpd, syncd leaves them as they are
//! until vrrpd has said the role: a restart while vrrpd is away must not stop the master's
//! kernel daemon (and the backup's updates with it) on a guess.

mod drops;
mod metrics;
mod net;
mod reload;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use lvs_config::{Config, Sync as SyncConfig, SyncRole};
use lvs_control::daemon::SetupError;
use lvs_control::syncd::{Dump, Entry, Event, Request, Response, SnapshotTaken, Status};
use lvs_ipvs::{Daemon, DaemonState, IpvsClient, ServiceFlags, ServiceKey};
use syncd::auth::Key;
use syncd::engine::{Action, Engine, EngineConfig, Role};
use syncd::error::Error;
use syncd::procfs::ToConnection;
use syncd::wire::ProtocolVersion;
use syncd::{Connection, FwdMethod, TimeoutCeilings, capture, procfs};
use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

const IP_VS_CONN: &str = "/proc/net/ip_vs_conn";
const HELLO_INTERVAL: Duration = Duration::from_secs(3);
const RESYNC_INTERVAL: Duration = Duration::from_secs(5);
const FOLLOW_RETRY: Duration = Duration::from_secs(2);
/// How often the interface's addresses (they tell our own datagrams apart, and are the
/// default group sources) and the kernel's timeouts are re-read.
const ADDRESS_REFRESH: Duration = Duration::from_secs(5);

enum Input {
    Unicast(SocketAddr, Vec<u8>),
    Group(SocketAddr, Vec<u8>),
    Observed(Vec<u8>),
    Role(Role),
    Drop(&'static str),
}

struct Syncd {
    sync: SyncConfig,
    config_path: PathBuf,
    group: SocketAddr,
    role_source: String,
    /// False while following vrrpd before it has said the role: the engine runs as a
    /// backup (it sends nothing that could do harm) and the kernel daemons are left alone.
    role_known: bool,
    engine: Engine,
    client: IpvsClient,
    unicast_socket: Arc<UdpSocket>,
    inject_socket: UdpSocket,
    own_nets: Vec<IpNet>,
    /// The shared key of the unicast path, read from `key_file` at start and on SIGHUP.
    key: Option<Key>,
    /// The longest persistence timeout of the config's virtual servers, in seconds.
    config_persistence: u32,
    events: broadcast::Sender<Event>,
    metrics: metrics::Metrics,
    drop_warnings: drops::DropWarnings,
}

impl Syncd {
    fn kernel_daemon(&self, state: DaemonState) -> Daemon {
        Daemon {
            state,
            mcast_ifn: self.sync.interface.clone(),
            syncid: u32::from(self.sync.syncid),
            sync_maxlen: Some(self.sync.maxlen),
            mcast_group: Some(self.group.ip()),
            mcast_port: Some(self.group.port()),
            mcast_ttl: Some(self.sync.ttl),
        }
    }

    /// Runs exactly the kernel daemons of `role` (both at once in [`Role::Both`]): the other
    /// one stopped, a running one with other settings restarted, a matching one adopted.
    fn apply_kernel_role(&mut self, role: Role) -> Result<(), Error> {
        let wanted = kernel_states(role);
        let running = self.client.daemons().map_err(Error::ListDaemons)?;
        let mut matching = Vec::new();
        for daemon in &running {
            let state = daemon.state;
            let settings = self.kernel_daemon(state);
            let same = daemon.mcast_ifn == settings.mcast_ifn
                && daemon.syncid == settings.syncid
                && daemon
                    .mcast_group
                    .is_none_or(|g| Some(g) == settings.mcast_group)
                && daemon
                    .mcast_port
                    .is_none_or(|p| Some(p) == settings.mcast_port);
            if wanted.contains(&state) && same {
                matching.push(state);
                continue;
            }
            self.client
                .stop_daemon(state)
                .map_err(|source| Error::StopDaemon { state, source })?;
            if wanted.contains(&state) {
                info!(
                    "stopped a kernel {} sync daemon with other settings",
                    state.as_str()
                );
            } else {
                info!("stopped the kernel {} sync daemon", state.as_str());
            }
        }
        for &state in wanted {
            if matching.contains(&state) {
                info!("kept the running kernel {} sync daemon", state.as_str());
                continue;
            }
            self.client
                .start_daemon(&self.kernel_daemon(state))
                .map_err(|source| Error::StartDaemon { state, source })?;
            info!(
                "started the kernel {} sync daemon on {} (syncid {}, group {})",
                state.as_str(),
                self.sync.interface,
                self.sync.syncid,
                self.group
            );
        }
        Ok(())
    }

    /// Enters `role`: kernel daemons, engine, and as master a snapshot pushed to the peers.
    /// A repeated report of the current role (vrrpd reconnected) only re-checks the kernel
    /// daemons, unless `entering` (at start).
    fn set_role(&mut self, role: Role, entering: bool) {
        let old = self.engine.role();
        if !self.role_known {
            info!("the role is not known yet: the kernel sync daemons are left as they are");
        } else if let Err(e) = self.apply_kernel_role(role) {
            warn!("{e}");
        }
        if old == role && !entering {
            return;
        }
        self.engine.set_role(role, Instant::now());
        if old != role {
            info!("role {} -> {}", old.as_str(), role.as_str());
            let _ = self.events.send(Event::Role {
                old: old.as_str().to_owned(),
                new: role.as_str().to_owned(),
            });
        }
        if let Err(e) = net::set_inject_ttl(
            &self.inject_socket,
            self.group.is_ipv6(),
            inject_ttl(role, self.sync.ttl),
        ) {
            warn!("ttl of the injector socket: {e}");
        }
        if role.sends()
            && let Err(e) = self.snapshot()
        {
            warn!("snapshot of {IP_VS_CONN}: {e}");
        }
    }

    /// SIGHUP: re-reads the config file and applies what changed in [sync] that a running
    /// syncd can take; the rest is named in a log line and waits for a restart. A config
    /// that does not load or validate changes nothing.
    fn reload(&mut self) {
        let path = self.config_path.clone();
        let (new, persistence) = match lvs_config::load(&path) {
            Ok(config) => (config.sync.clone(), longest_persistence(&config)),
            Err(e) => {
                error!("SIGHUP: reload refused, keeping the running [sync]:\n{e}");
                return;
            }
        };
        let Some(new) = new else {
            warn!(
                "SIGHUP: {} has no [sync] section any more; syncd keeps running as it is \
                 (stop it to stop syncing)",
                path.display()
            );
            return;
        };
        if let Err(e) = one_family(&new) {
            error!("SIGHUP: reload refused, keeping the running [sync]: {e}");
            return;
        }
        // Read again even if the path is unchanged: the key may have been rotated.
        let key = match new.key_file.as_deref().map(read_key).transpose() {
            Ok(key) => key,
            Err(e) => {
                error!("SIGHUP: reload refused, keeping the running [sync]: {e}");
                return;
            }
        };
        let key_changed = key != self.key;
        self.key = key;
        self.config_persistence = persistence;
        let plan = reload::plan(&self.sync, &new);
        if !plan.restart.is_empty() {
            warn!(
                "SIGHUP: [sync] {} changed and take effect on restart only (the sockets, \
                 packet tap and vrrpd subscription are set up at start); running with the old \
                 values",
                plan.restart.join(", ")
            );
        }
        if plan.applied.is_empty() && !key_changed {
            info!("SIGHUP: no [sync] change to apply");
            let ceilings = self.ceilings();
            self.engine.set_ceilings(ceilings);
            return;
        }
        let old_role = self.sync.role.clone();
        self.sync = plan.effective;
        if plan.applied.contains(&"ttl")
            && let Err(e) = net::set_inject_ttl(
                &self.inject_socket,
                self.group.is_ipv6(),
                inject_ttl(self.engine.role(), self.sync.ttl),
            )
        {
            warn!("SIGHUP: ttl {} on the injector socket: {e}", self.sync.ttl);
        }
        let now = Instant::now();
        let config = self.engine_config();
        self.engine.reconfigure(config, now);
        if plan.kernel_daemon && self.role_known {
            // Its settings are fixed when it starts: stop it so the role check below starts
            // it again with the new ones.
            for &running in kernel_states(self.engine.role()) {
                if let Err(e) = self.client.stop_daemon(running) {
                    warn!(
                        "SIGHUP: stopping the kernel {} daemon: {e}",
                        running.as_str()
                    );
                }
            }
        }
        let role = match (&self.sync.role, old_role) {
            (SyncRole::Master, old) if old != SyncRole::Master => Some(Role::Master),
            (SyncRole::Backup, old) if old != SyncRole::Backup => Some(Role::Backup),
            (SyncRole::Both, old) if old != SyncRole::Both => Some(Role::Both),
            _ => None,
        };
        match role {
            Some(role) => self.set_role(role, false),
            None if plan.kernel_daemon && self.role_known => {
                if let Err(e) = self.apply_kernel_role(self.engine.role()) {
                    warn!("SIGHUP: {e}");
                }
            }
            None => {}
        }
        if key_changed {
            info!("SIGHUP: read a new key from the key_file");
        }
        info!("SIGHUP: applied [sync] {}", plan.applied.join(", "));
    }

    fn engine_config(&mut self) -> EngineConfig {
        let (sources, ceilings) = (self.group_sources(), self.ceilings());
        engine_config(&self.sync, sources, ceilings, self.key.clone())
    }

    /// The configured group sources, else the sync interface's subnets.
    fn group_sources(&self) -> Vec<IpNet> {
        self.sync
            .group_sources
            .clone()
            .unwrap_or_else(|| self.own_nets.iter().map(IpNet::trunc).collect())
    }

    /// The local kernel's settable timeouts and its services' persistence, with the
    /// config's; what cannot be read keeps the kernel's default.
    fn ceilings(&mut self) -> TimeoutCeilings {
        let mut ceilings = TimeoutCeilings::default();
        match self.client.timeouts() {
            Ok(t) => {
                let positive =
                    |v: Option<u32>, default: u32| v.filter(|v| *v > 0).unwrap_or(default);
                ceilings.tcp = positive(t.tcp, ceilings.tcp);
                ceilings.tcp_fin = positive(t.tcp_fin, ceilings.tcp_fin);
                ceilings.udp = positive(t.udp, ceilings.udp);
            }
            Err(e) => debug!("reading the kernel's timeouts: {e}"),
        }
        let kernel_persistence = match self.client.services() {
            Ok(services) => services
                .iter()
                .filter(|s| s.flags.contains(ServiceFlags::PERSISTENT))
                .map(|s| s.timeout)
                .max()
                .unwrap_or(0),
            Err(e) => {
                debug!("listing IPVS services: {e}");
                0
            }
        };
        ceilings.template = ceilings
            .template
            .max(kernel_persistence)
            .max(self.config_persistence);
        ceilings
    }

    /// Every ADDRESS_REFRESH: the interface's addresses and the kernel's timeouts.
    fn refresh(&mut self) {
        self.own_nets = net::local_nets(&self.sync.interface);
        let sources = self.group_sources();
        self.engine.set_group_sources(sources);
        let ceilings = self.ceilings();
        self.engine.set_ceilings(ceilings);
    }

    /// Reads the kernel's table into the mirror (and, as master, resyncs the peers with it).
    fn snapshot(&mut self) -> Result<usize, Error> {
        let text = std::fs::read_to_string(IP_VS_CONN).map_err(|source| Error::ConnTableRead {
            path: IP_VS_CONN,
            source,
        })?;
        let rows = procfs::parse(&text).map_err(|source| Error::ConnTableParse {
            path: IP_VS_CONN,
            source,
        })?;
        let methods = ForwardingMethods::read(&mut self.client)?;
        let mut conns = Vec::with_capacity(rows.len());
        for row in &rows {
            match row.to_connection(methods.of(row)) {
                Some(conn) => conns.push(conn),
                None => self.engine.record_drop("snapshot_unusable_row"),
            }
        }
        let n = conns.len();
        self.engine.load_snapshot(conns, Instant::now());
        info!("snapshot: {n} entries from {IP_VS_CONN}");
        Ok(n)
    }

    fn handle_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Unicast(from, payload) => self.engine.handle_unicast(from, &payload, now),
            Input::Group(from, payload) => {
                // Our own injections come back through the group: not news.
                if self.own_nets.iter().any(|net| net.addr() == from.ip()) {
                    return;
                }
                self.engine.handle_group(from, &payload, now);
            }
            Input::Observed(payload) => {
                // In the backup role the only local sender to the group is our injector (in
                // the role both it sends with TTL 0, never onto the link, so the tap sees the
                // kernel master alone).
                if self.engine.role().sends() {
                    self.engine.handle_observed(&payload, now);
                }
            }
            Input::Role(role) => {
                self.role_known = true;
                self.set_role(role, false);
            }
            Input::Drop(cause) => self.engine.record_drop(cause),
        }
    }

    async fn flush(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::SendPeer { to, payload } => {
                    if let Err(e) = self.unicast_socket.send_to(&payload, to).await {
                        debug!("send to {to}: {e}");
                        self.engine.record_drop("send_peer");
                    }
                }
                Action::Inject { payload } => {
                    if let Err(e) = self.inject_socket.send_to(&payload, self.group).await {
                        debug!("inject: {e}");
                        self.engine.record_drop("send_inject");
                    }
                }
                Action::ResyncSent { peer, entries } => {
                    info!("resync of {entries} entries sent to {peer}");
                    let _ = self.events.send(Event::ResyncSent { peer, entries });
                }
                Action::HellosUnanswered { peers, hellos } => {
                    let peers: Vec<String> = peers.iter().map(ToString::to_string).collect();
                    warn!(
                        "{hellos} hellos to {} got no resync: no syncd master answers there \
                         (is a syncd listening at that port? peers without a port are reached \
                         at unicast_port {}; a key_file must match; is a peer master?)",
                        peers.join(", "),
                        self.sync.unicast_port()
                    );
                }
            }
        }
        for warning in self
            .drop_warnings
            .due(self.engine.counters(), Instant::now())
        {
            warn!("{warning}");
        }
        self.metrics.publish(
            self.engine.counters(),
            self.engine.mirror().len(),
            self.engine.role().sends(),
            self.engine.lag(Instant::now()),
        );
    }

    fn status(&mut self) -> Status {
        let kernel_daemons = match self.client.daemons() {
            Ok(daemons) => daemons
                .iter()
                .map(|d| d.state.as_str().to_owned())
                .collect(),
            Err(e) => vec![format!("unknown: {e}")],
        };
        let now = Instant::now();
        Status {
            role: self.engine.role().as_str().to_owned(),
            role_source: if self.role_known {
                self.role_source.clone()
            } else {
                format!("{} (not heard yet)", self.role_source)
            },
            interface: self.sync.interface.clone(),
            syncid: self.sync.syncid,
            group: self.sync.group,
            version: self.sync.version,
            peers: self.sync.peer_addrs(),
            kernel_daemons,
            mirror_size: self.engine.mirror().len(),
            lag_ms: self
                .engine
                .lag(now)
                .map(|lag| u64::try_from(lag.as_millis()).unwrap_or(u64::MAX)),
            counters: self.engine.counters().clone(),
        }
    }

    fn dump(&self) -> Dump {
        let now = Instant::now();
        let mut entries: Vec<Entry> = self
            .engine
            .mirror()
            .iter_remaining(now)
            .map(|(conn, left)| entry(&conn, left.as_secs()))
            .collect();
        entries.sort_by(|a, b| {
            (a.client, a.virtual_addr, &a.protocol).cmp(&(b.client, b.virtual_addr, &b.protocol))
        });
        Dump { entries }
    }

    fn handle(&mut self, request: &Request) -> Result<Response, Error> {
        match request {
            Request::Status => Ok(Response::Status(Box::new(self.status()))),
            Request::Dump => Ok(Response::Dump(self.dump())),
            Request::Snapshot => {
                if !self.engine.role().sends() {
                    return Err(Error::SnapshotOnBackup);
                }
                self.snapshot()
                    .map(|entries| Response::Snapshot(SnapshotTaken { entries }))
            }
        }
    }
}

fn entry(conn: &Connection, expires: u64) -> Entry {
    let forwarding = match conn.fwd_method() {
        FwdMethod::Masq => "masq".to_owned(),
        FwdMethod::Local => "local".to_owned(),
        FwdMethod::Tunnel => "tunnel".to_owned(),
        FwdMethod::Route => "route".to_owned(),
        FwdMethod::Bypass => "bypass".to_owned(),
        FwdMethod::Unknown(n) => format!("unknown({n})"),
    };
    Entry {
        protocol: conn.protocol.name().to_owned(),
        client: conn.client(),
        virtual_addr: conn.virtual_addr(),
        dest: conn.dest(),
        state: conn.state_name().to_owned(),
        forwarding,
        template: conn.is_template(),
        flags: conn.flags.0,
        fwmark: conn.fwmark,
        expires,
    }
}

/// The forwarding method of each destination, which /proc/net/ip_vs_conn does not show.
struct ForwardingMethods {
    by_service: HashMap<(IpAddr, u16, SocketAddr), FwdMethod>,
    by_dest: HashMap<SocketAddr, FwdMethod>,
}

impl ForwardingMethods {
    fn read(client: &mut IpvsClient) -> Result<ForwardingMethods, Error> {
        let mut methods = ForwardingMethods {
            by_service: HashMap::new(),
            by_dest: HashMap::new(),
        };
        let services = client.services().map_err(Error::ListServices)?;
        for service in services {
            let dests =
                client
                    .destinations(&service.key)
                    .map_err(|source| Error::ListDestinations {
                        key: service.key,
                        source,
                    })?;
            for dest in dests {
                let addr = SocketAddr::new(dest.addr, dest.port);
                let method = FwdMethod::from_bits(dest.fwd.to_u32());
                if let ServiceKey::Inet {
                    addr: vip, port, ..
                } = service.key
                {
                    methods.by_service.insert((vip, port, addr), method);
                }
                methods.by_dest.entry(addr).or_insert(method);
            }
        }
        Ok(methods)
    }

    /// The service's method for that destination; a fwmark service's (or a removed
    /// service's) connection takes any service's method for the destination, else NAT.
    fn of(&self, row: &procfs::ProcEntry) -> FwdMethod {
        let key = (row.virtual_addr.ip(), row.virtual_addr.port(), row.dest);
        self.by_service
            .get(&key)
            .or_else(|| self.by_dest.get(&row.dest))
            .copied()
            .unwrap_or(FwdMethod::Masq)
    }
}

fn engine_config(
    sync: &SyncConfig,
    group_sources: Vec<IpNet>,
    ceilings: TimeoutCeilings,
    key: Option<Key>,
) -> EngineConfig {
    EngineConfig {
        sync_id: sync.syncid,
        version: if sync.version == 0 {
            ProtocolVersion::V0
        } else {
            ProtocolVersion::V1
        },
        max_len: usize::from(sync.maxlen),
        peers: sync.peer_addrs(),
        hello_interval: HELLO_INTERVAL,
        resync_interval: RESYNC_INTERVAL,
        resync_rate: sync.resync_rate,
        group_sources,
        max_entries: usize::try_from(sync.max_entries).unwrap_or(usize::MAX),
        ceilings,
        key,
    }
}

/// The longest persistence timeout of the config's virtual servers, in seconds.
fn longest_persistence(config: &Config) -> u32 {
    config
        .virtual_servers
        .iter()
        .filter_map(|vs| vs.persistence)
        .map(|d| u32::try_from(d.get().as_secs()).unwrap_or(u32::MAX))
        .max()
        .unwrap_or(0)
}

/// The shared key in `path`, which only its owner may read: a key others can read is no
/// secret, and refusing it says so before the key leaks further.
fn read_key(path: &Path) -> Result<Key, Error> {
    use std::os::unix::fs::MetadataExt;
    let io_error = |source| Error::KeyFile {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io_error)?;
    if meta.mode() & 0o077 != 0 {
        return Err(Error::KeyReadable {
            path: path.to_owned(),
            mode: meta.mode() & 0o777,
        });
    }
    let bytes = std::fs::read(path).map_err(io_error)?;
    Key::from_file_contents(bytes).map_err(|source| Error::Key {
        path: path.to_owned(),
        source,
    })
}

/// How many ports the kernel's sync daemons use from the group's port on
/// (net.ipv4.vs.sync_ports, read at start: the kernel fixes it when its first sync daemon
/// starts). 1 when unreadable; within the kernel's limit of 64 and the port space.
fn sync_ports(first: u16) -> u16 {
    const SYNC_PORTS: &str = "/proc/sys/net/ipv4/vs/sync_ports";
    let configured = std::fs::read_to_string(SYNC_PORTS)
        .ok()
        .and_then(|text| text.trim().parse::<u16>().ok())
        .unwrap_or(1);
    configured.clamp(1, 64).min(u16::MAX - first + 1)
}

/// The sync group, checked against the peers: one socket of the group's family talks to
/// them all.
fn one_family(sync: &SyncConfig) -> Result<SocketAddr, Error> {
    if let Some(peer) = sync
        .peers
        .iter()
        .find(|p| p.ip.is_ipv6() != sync.group.is_ipv6())
    {
        return Err(Error::MixedFamilies {
            peer: *peer,
            group: sync.group,
        });
    }
    Ok(sync.group)
}

async fn receive_datagrams(
    socket: Arc<UdpSocket>,
    wrap: fn(SocketAddr, Vec<u8>) -> Input,
    inputs: mpsc::Sender<Input>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                if inputs.send(wrap(from, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                warn!("sync socket: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn observe_kernel_master(
    tap: net::Tap,
    group: SocketAddr,
    ports: u16,
    inputs: mpsc::Sender<Input>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let input = match tap.recv_outgoing(&mut buf).await {
            Ok(n) => match capture::sync_payload(&buf[..n], group, ports) {
                Ok(payload) => Input::Observed(payload.to_vec()),
                Err(skip) if skip.is_malformed() => Input::Drop(skip.as_str()),
                Err(_) => continue,
            },
            Err(e) => {
                warn!("packet tap: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if inputs.send(input).await.is_err() {
            return;
        }
    }
}

fn role_of_vrrp_state(state: &str) -> Role {
    if state == "MASTER" {
        Role::Master
    } else {
        Role::Backup
    }
}

/// Follows one VRRP instance: subscribe first, then ask for the state, so no transition
/// falls between the two; reconnects when vrrpd goes away, keeping the current role.
async fn follow_vrrpd(path: PathBuf, instance: String, inputs: mpsc::Sender<Input>) {
    loop {
        if let Err(e) = follow_once(&path, &instance, &inputs).await {
            warn!("following {instance} through {}: {e}", path.display());
        }
        if inputs.is_closed() {
            return;
        }
        tokio::time::sleep(FOLLOW_RETRY).await;
    }
}

async fn follow_once(
    path: &Path,
    instance: &str,
    inputs: &mpsc::Sender<Input>,
) -> Result<(), Error> {
    use lvs_control::vrrpd;
    let mut events = lvs_control::subscribe::<vrrpd::Event>(path).await?;
    let status: vrrpd::Status = lvs_control::call_async(path, &vrrpd::Request::Status).await?;
    let state = status
        .instances
        .iter()
        .find(|i| i.name == instance)
        .map(|i| i.state.clone())
        .ok_or_else(|| Error::NoInstance(instance.to_owned()))?;
    info!("VRRP instance {instance} is {state}");
    let _ = inputs.send(Input::Role(role_of_vrrp_state(&state))).await;
    while let Some(event) = events.recv().await {
        match event? {
            vrrpd::Event::State {
                instance: name,
                new,
                ..
            } if name == instance => {
                info!("VRRP instance {instance} is now {new}");
                let _ = inputs.send(Input::Role(role_of_vrrp_state(&new))).await;
            }
            _ => {}
        }
    }
    Err(Error::EventsEnded)
}

/// The sockets syncd reads and writes, opened before anything runs so a setup error stops
/// the start.
struct Sockets {
    unicast: Arc<UdpSocket>,
    groups: Vec<UdpSocket>,
    inject: UdpSocket,
    tap: net::Tap,
    ports: u16,
}

impl Sockets {
    fn open(sync: &SyncConfig, group: SocketAddr, ifindex: u32) -> Result<Self, Error> {
        let unicast_port = sync.unicast_port();
        let unicast = Arc::new(net::unicast_socket(group.is_ipv6(), unicast_port).map_err(
            |source| Error::UnicastSocket {
                port: unicast_port,
                source,
            },
        )?);
        let ports = sync_ports(group.port());
        if ports > 1 {
            info!(
                "net.ipv4.vs.sync_ports is {ports}: the kernel syncs on ports {} to {}",
                group.port(),
                group.port() + (ports - 1)
            );
        }
        let mut groups = Vec::new();
        for port in group.port()..=group.port() + (ports - 1) {
            let at = SocketAddr::new(group.ip(), port);
            groups.push(
                net::group_socket(at, ifindex).map_err(|source| Error::GroupSocket {
                    group: at,
                    interface: sync.interface.clone(),
                    source,
                })?,
            );
        }
        let inject = net::inject_socket(group, ifindex, sync.ttl).map_err(Error::InjectSocket)?;
        let tap =
            net::Tap::open(ifindex, group.is_ipv6(), group.port(), ports).map_err(|source| {
                Error::Tap {
                    interface: sync.interface.clone(),
                    source,
                }
            })?;
        Ok(Self {
            unicast,
            groups,
            inject,
            tap,
            ports,
        })
    }

    /// Starts the readers that feed `inputs`; returns the injector, which the daemon keeps.
    fn spawn_readers(self, group: SocketAddr, inputs: &mpsc::Sender<Input>) -> UdpSocket {
        tokio::spawn(receive_datagrams(
            self.unicast,
            Input::Unicast,
            inputs.clone(),
        ));
        for socket in self.groups {
            tokio::spawn(receive_datagrams(
                Arc::new(socket),
                Input::Group,
                inputs.clone(),
            ));
        }
        tokio::spawn(observe_kernel_master(
            self.tap,
            group,
            self.ports,
            inputs.clone(),
        ));
        self.inject
    }
}

/// The kernel sync daemons a role runs.
fn kernel_states(role: Role) -> &'static [DaemonState] {
    match role {
        Role::Master => &[DaemonState::Master],
        Role::Backup => &[DaemonState::Backup],
        Role::Both => &[DaemonState::Master, DaemonState::Backup],
    }
}

/// TTL of what the injector sends: in the role both, 0, so it reaches the local kernel
/// backup only; on the link, the other directors' kernel backups would take it (and hand
/// their own entries back to them), and the tap would take it for the local master's.
fn inject_ttl(role: Role, ttl: u8) -> u8 {
    if role == Role::Both { 0 } else { ttl }
}

/// The role syncd starts in, where it comes from, and the VRRP instance it follows if any.
fn initial_role(role: &SyncRole) -> (Role, String, Option<String>) {
    match role {
        SyncRole::Master => (Role::Master, "static".to_owned(), None),
        SyncRole::Backup => (Role::Backup, "static".to_owned(), None),
        SyncRole::Both => (Role::Both, "static".to_owned(), None),
        // Until vrrpd says otherwise: a backup never sends, so it cannot do harm.
        SyncRole::Follow(instance) => (
            Role::Backup,
            format!("follow {instance}"),
            Some(instance.clone()),
        ),
    }
}

fn log_start(syncd: &Syncd) {
    let peers: Vec<String> = syncd
        .sync
        .peer_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    let sources: Vec<String> = syncd
        .group_sources()
        .iter()
        .map(ToString::to_string)
        .collect();
    info!(
        "unicast on port {}; peers: [{}]; group heard from [{}] and the peers; \
         mirror of at most {} entries; unicast {}",
        syncd.sync.unicast_port(),
        peers.join(", "),
        sources.join(", "),
        syncd.sync.max_entries,
        if syncd.key.is_some() {
            "authenticated with the key_file"
        } else {
            "not authenticated (no key_file)"
        }
    );
}

/// Prometheus and /status.json on `control.metrics` (syncd's port: the base + 2).
async fn serve_metrics(
    base: SocketAddr,
    control: &lvs_config::Control,
    metrics: &metrics::Metrics,
) -> Result<(), SetupError> {
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let routes = lvs_control::http::Routes::new(Arc::new(std::sync::Mutex::new(registry)))
        .with_daemon_status(control, "syncd", &lvs_control::syncd::Request::Status);
    lvs_control::http::start(base, "syncd", routes, CancellationToken::new()).await?;
    Ok(())
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(config: Config, config_path: PathBuf) -> Result<(), Error> {
    let sync = config.sync.clone().ok_or(Error::NoSyncSection)?;
    let group = one_family(&sync)?;
    let ifindex = net::if_index(&sync.interface).map_err(|source| Error::Interface {
        interface: sync.interface.clone(),
        source,
    })?;
    let (initial_role, role_source, follow) = initial_role(&sync.role);
    let client = IpvsClient::connect().map_err(Error::Netlink)?;
    let sockets = Sockets::open(&sync, group, ifindex)?;
    let unicast_socket = sockets.unicast.clone();

    let (inputs_tx, inputs) = mpsc::channel::<Input>(1024);
    let inject_socket = sockets.spawn_readers(group, &inputs_tx);
    let following = follow.is_some();
    if let Some(instance) = follow {
        let path = lvs_control::socket_path(&config.control.socket_dir, "vrrpd");
        tokio::spawn(follow_vrrpd(path, instance, inputs_tx.clone()));
    }

    let key = sync.key_file.as_deref().map(read_key).transpose()?;
    let (events, _) = broadcast::channel(256);
    let own_nets = net::local_nets(&sync.interface);
    // Filled in by the refresh just below, which needs the whole daemon.
    let engine = Engine::new(
        engine_config(&sync, Vec::new(), TimeoutCeilings::default(), key.clone()),
        initial_role,
        Instant::now(),
    );
    let mut syncd = Syncd {
        role_known: !following,
        sync,
        config_path,
        group,
        role_source,
        engine,
        client,
        unicast_socket,
        inject_socket,
        own_nets,
        key,
        config_persistence: longest_persistence(&config),
        events: events.clone(),
        metrics: metrics::Metrics::new(),
        drop_warnings: drops::DropWarnings::default(),
    };
    syncd.refresh();
    log_start(&syncd);
    if let Some(base) = config.control.metrics {
        serve_metrics(base, &config.control, &syncd.metrics).await?;
    }
    syncd.set_role(initial_role, true);
    syncd.flush().await;

    let control = lvs_control::daemon::serve_control::<Request, Response, _>(
        &config.control,
        "syncd",
        events,
    )?;
    syncd.serve(inputs, control).await
}

impl Syncd {
    /// The event loop: inputs, control requests, the engine's timer and signals.
    async fn serve(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        control: lvs_control::daemon::ControlSocket<Request, Response>,
    ) -> Result<(), Error> {
        let lvs_control::daemon::ControlSocket {
            mut requests,
            shutdown,
            path: socket,
        } = control;
        let mut hangup = signal(SignalKind::hangup()).map_err(SetupError::Signal)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(SetupError::Signal)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(SetupError::Signal)?;
        let mut refresh = tokio::time::interval(ADDRESS_REFRESH);
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        let mut watchdog = lvs_control::daemon::Watchdog::from_env();
        info!("serving {}", socket.display());

        loop {
            let timer = self.engine.poll_timeout().map_or_else(
                || tokio::time::Instant::now() + Duration::from_secs(3600),
                Into::into,
            );
            tokio::select! {
                Some(input) = inputs.recv() => self.handle_input(input),
                Some(incoming) = requests.recv() => {
                    let response = self.handle(&incoming.request);
                    incoming.reply(response);
                }
                () = tokio::time::sleep_until(timer) => self.engine.handle_timeout(Instant::now()),
                _ = refresh.tick() => self.refresh(),
                () = watchdog.ping_when_due() => {}
                _ = hangup.recv() => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                    self.reload();
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
                }
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
            }
            self.flush().await;
        }
        shutdown.cancel();
        let _ = std::fs::remove_file(&socket);
        info!("stopped; the kernel sync daemons keep running");
        Ok(())
    }
}
