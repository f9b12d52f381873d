//! The tokio shell around [`syncd::engine::Engine`]: the sync port, the injector, the packet
//! tap, the kernel's own sync daemons (netlink), /proc snapshots, vrrpd following and the
//! control socket.
//!
//! The kernel sync daemons are started to match the role and left running on exit: kernel
//! to kernel sync on a shared link keeps working without syncd, and a restarted syncd adopts
//! daemons that already match its config.

mod metrics;
mod net;
mod reload;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lvs_config::{Config, Sync as SyncConfig, SyncRole};
use lvs_control::syncd::{Dump, Entry, Event, Request, Response, SnapshotTaken, Status};
use lvs_ipvs::{Daemon, DaemonState, IpvsClient, ServiceKey};
use syncd::engine::{Action, Engine, EngineConfig, Role};
use syncd::wire::ProtocolVersion;
use syncd::{Connection, FwdMethod, capture, procfs};
use tokio::net::UdpSocket;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

const IP_VS_CONN: &str = "/proc/net/ip_vs_conn";
const HELLO_INTERVAL: Duration = Duration::from_secs(3);
const RESYNC_INTERVAL: Duration = Duration::from_secs(5);
const FOLLOW_RETRY: Duration = Duration::from_secs(2);
/// How often the interface's addresses are re-read (they tell our own datagrams apart).
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
    engine: Engine,
    client: IpvsClient,
    unicast_socket: Arc<UdpSocket>,
    inject_socket: UdpSocket,
    own_addrs: Vec<IpAddr>,
    events: broadcast::Sender<Event>,
    metrics: metrics::Metrics,
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

    /// Runs exactly the kernel daemon of `role`: the other one stopped, a running one with
    /// other settings restarted, a matching one adopted.
    fn apply_kernel_role(&mut self, role: Role) -> Result<(), String> {
        let (want, other) = match role {
            Role::Master => (DaemonState::Master, DaemonState::Backup),
            Role::Backup => (DaemonState::Backup, DaemonState::Master),
        };
        let wanted = self.kernel_daemon(want);
        let running = self
            .client
            .daemons()
            .map_err(|e| format!("listing kernel sync daemons: {e}"))?;
        let mut matching = false;
        for daemon in &running {
            if daemon.state == other {
                self.client
                    .stop_daemon(other)
                    .map_err(|e| format!("stopping the kernel {} daemon: {e}", other.as_str()))?;
                info!("stopped the kernel {} sync daemon", other.as_str());
            } else if daemon.mcast_ifn == wanted.mcast_ifn
                && daemon.syncid == wanted.syncid
                && daemon
                    .mcast_group
                    .is_none_or(|g| Some(g) == wanted.mcast_group)
                && daemon
                    .mcast_port
                    .is_none_or(|p| Some(p) == wanted.mcast_port)
            {
                matching = true;
            } else {
                self.client
                    .stop_daemon(want)
                    .map_err(|e| format!("stopping the kernel {} daemon: {e}", want.as_str()))?;
                info!(
                    "stopped a kernel {} sync daemon with other settings",
                    want.as_str()
                );
            }
        }
        if matching {
            info!("kept the running kernel {} sync daemon", want.as_str());
            return Ok(());
        }
        self.client
            .start_daemon(&wanted)
            .map_err(|e| format!("starting the kernel {} daemon: {e}", want.as_str()))?;
        info!(
            "started the kernel {} sync daemon on {} (syncid {}, group {})",
            want.as_str(),
            self.sync.interface,
            self.sync.syncid,
            self.group
        );
        Ok(())
    }

    /// Enters `role`: kernel daemons, engine, and as master a snapshot pushed to the peers.
    /// A repeated report of the current role (vrrpd reconnected) only re-checks the kernel
    /// daemons, unless `entering` (at start).
    fn set_role(&mut self, role: Role, entering: bool) {
        let old = self.engine.role();
        if let Err(e) = self.apply_kernel_role(role) {
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
        if role == Role::Master
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
        let new = match lvs_config::load(&path) {
            Ok(config) => config.sync,
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
        let plan = reload::plan(&self.sync, &new);
        if !plan.restart.is_empty() {
            warn!(
                "SIGHUP: [sync] {} changed and take effect on restart only (the sockets, \
                 packet tap and vrrpd subscription are set up at start); running with the old \
                 values",
                plan.restart.join(", ")
            );
        }
        if plan.applied.is_empty() {
            info!("SIGHUP: no [sync] change to apply");
            return;
        }
        let old_role = self.sync.role.clone();
        self.sync = plan.effective;
        if plan.applied.contains(&"ttl")
            && let Err(e) =
                net::set_inject_ttl(&self.inject_socket, self.group.is_ipv6(), self.sync.ttl)
        {
            warn!("SIGHUP: ttl {} on the injector socket: {e}", self.sync.ttl);
        }
        let now = Instant::now();
        self.engine.reconfigure(engine_config(&self.sync), now);
        if plan.kernel_daemon {
            // Its settings are fixed when it starts: stop it so the role check below starts
            // it again with the new ones.
            let running = match self.engine.role() {
                Role::Master => DaemonState::Master,
                Role::Backup => DaemonState::Backup,
            };
            if let Err(e) = self.client.stop_daemon(running) {
                warn!(
                    "SIGHUP: stopping the kernel {} daemon: {e}",
                    running.as_str()
                );
            }
        }
        let role = match (&self.sync.role, old_role) {
            (SyncRole::Master, old) if old != SyncRole::Master => Some(Role::Master),
            (SyncRole::Backup, old) if old != SyncRole::Backup => Some(Role::Backup),
            _ => None,
        };
        match role {
            Some(role) => self.set_role(role, false),
            None if plan.kernel_daemon => {
                if let Err(e) = self.apply_kernel_role(self.engine.role()) {
                    warn!("SIGHUP: {e}");
                }
            }
            None => {}
        }
        info!("SIGHUP: applied [sync] {}", plan.applied.join(", "));
    }

    /// Reads the kernel's table into the mirror (and, as master, resyncs the peers with it).
    fn snapshot(&mut self) -> Result<usize, String> {
        let text = std::fs::read_to_string(IP_VS_CONN).map_err(|e| format!("{IP_VS_CONN}: {e}"))?;
        let rows = procfs::parse(&text).map_err(|e| format!("{IP_VS_CONN}: {e}"))?;
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
                if self.own_addrs.contains(&from.ip()) {
                    return;
                }
                self.engine.handle_group(&payload, now);
            }
            Input::Observed(payload) => {
                // In the backup role the only local sender to the group is our injector.
                if self.engine.role() == Role::Master {
                    self.engine.handle_observed(&payload, now);
                }
            }
            Input::Role(role) => self.set_role(role, false),
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
            }
        }
        self.metrics.publish(
            self.engine.counters(),
            self.engine.mirror().len(),
            self.engine.role() == Role::Master,
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
            role_source: self.role_source.clone(),
            interface: self.sync.interface.clone(),
            syncid: self.sync.syncid,
            group: self.sync.group,
            version: self.sync.version,
            peers: self.sync.peers.clone(),
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

    fn handle(&mut self, request: &Request) -> Result<Response, String> {
        match request {
            Request::Status => Ok(Response::Status(Box::new(self.status()))),
            Request::Dump => Ok(Response::Dump(self.dump())),
            Request::Snapshot => {
                if self.engine.role() != Role::Master {
                    return Err(
                        "a snapshot of the kernel table is taken in the master role only; \
                                a backup's table comes from its master"
                            .to_owned(),
                    );
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
    fn read(client: &mut IpvsClient) -> Result<ForwardingMethods, String> {
        let mut methods = ForwardingMethods {
            by_service: HashMap::new(),
            by_dest: HashMap::new(),
        };
        let services = client
            .services()
            .map_err(|e| format!("listing IPVS services: {e}"))?;
        for service in services {
            let dests = client
                .destinations(&service.key)
                .map_err(|e| format!("listing destinations of {}: {e}", service.key))?;
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

fn engine_config(sync: &SyncConfig) -> EngineConfig {
    EngineConfig {
        sync_id: sync.syncid,
        version: if sync.version == 0 {
            ProtocolVersion::V0
        } else {
            ProtocolVersion::V1
        },
        max_len: usize::from(sync.maxlen),
        peers: sync.peers.clone(),
        hello_interval: HELLO_INTERVAL,
        resync_interval: RESYNC_INTERVAL,
        resync_rate: sync.resync_rate,
    }
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
fn one_family(sync: &SyncConfig) -> Result<SocketAddr, String> {
    if let Some(peer) = sync
        .peers
        .iter()
        .find(|p| p.is_ipv6() != sync.group.is_ipv6())
    {
        return Err(format!(
            "sync peer {peer}: not of the sync group {}'s family; syncd talks to its peers \
             from one socket of that family",
            sync.group
        ));
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
) -> Result<(), String> {
    use lvs_control::vrrpd;
    let mut events = lvs_control::subscribe::<vrrpd::Event>(path)
        .await
        .map_err(|e| e.to_string())?;
    let status: vrrpd::Status = lvs_control::call_async(path, &vrrpd::Request::Status)
        .await
        .map_err(|e| e.to_string())?;
    let state = status
        .instances
        .iter()
        .find(|i| i.name == instance)
        .map(|i| i.state.clone())
        .ok_or_else(|| format!("vrrpd has no instance {instance:?}"))?;
    info!("VRRP instance {instance} is {state}");
    let _ = inputs.send(Input::Role(role_of_vrrp_state(&state))).await;
    while let Some(event) = events.recv().await {
        match event.map_err(|e| e.to_string())? {
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
    Err("the event stream ended".to_owned())
}

/// Runs until SIGTERM/SIGINT.
pub async fn run(config: Config, config_path: PathBuf) -> Result<(), String> {
    let sync = config
        .sync
        .clone()
        .ok_or("the config has no [sync] section")?;
    let group = one_family(&sync)?;
    let ifindex = net::if_index(&sync.interface)
        .map_err(|e| format!("sync interface {}: {e}", sync.interface))?;
    let (initial_role, role_source, follow) = match &sync.role {
        SyncRole::Master => (Role::Master, "static".to_owned(), None),
        SyncRole::Backup => (Role::Backup, "static".to_owned(), None),
        // Until vrrpd says otherwise: a backup never sends, so it cannot do harm.
        SyncRole::Follow(instance) => (
            Role::Backup,
            format!("follow {instance}"),
            Some(instance.clone()),
        ),
    };
    let client = IpvsClient::connect().map_err(|e| format!("IPVS netlink: {e}"))?;
    let unicast_socket = Arc::new(
        net::unicast_socket(group).map_err(|e| format!("sync port {}: {e}", group.port()))?,
    );
    let ports = sync_ports(group.port());
    if ports > 1 {
        info!(
            "net.ipv4.vs.sync_ports is {ports}: the kernel syncs on ports {} to {}",
            group.port(),
            group.port() + (ports - 1)
        );
    }
    let mut group_sockets = Vec::new();
    for port in group.port()..=group.port() + (ports - 1) {
        let at = SocketAddr::new(group.ip(), port);
        group_sockets.push(
            net::group_socket(at, ifindex)
                .map_err(|e| format!("sync group {at} on {}: {e}", sync.interface))?,
        );
    }
    let inject_socket = net::inject_socket(group, ifindex, sync.ttl)
        .map_err(|e| format!("injector socket: {e}"))?;
    let tap = net::Tap::open(ifindex, group.is_ipv6(), group.port(), ports)
        .map_err(|e| format!("packet tap on {}: {e}", sync.interface))?;

    let (inputs_tx, mut inputs) = mpsc::channel::<Input>(1024);
    tokio::spawn(receive_datagrams(
        unicast_socket.clone(),
        Input::Unicast,
        inputs_tx.clone(),
    ));
    for socket in group_sockets {
        tokio::spawn(receive_datagrams(
            Arc::new(socket),
            Input::Group,
            inputs_tx.clone(),
        ));
    }
    tokio::spawn(observe_kernel_master(tap, group, ports, inputs_tx.clone()));
    let socket_dir = config.control.socket_dir.clone();
    if let Some(instance) = follow {
        let path = lvs_control::socket_path(&socket_dir, "vrrpd");
        tokio::spawn(follow_vrrpd(path, instance, inputs_tx.clone()));
    }

    let (events, _) = broadcast::channel(256);
    let engine = Engine::new(engine_config(&sync), initial_role, Instant::now());
    let own_addrs = net::local_addrs(&sync.interface);
    let mut syncd = Syncd {
        sync,
        config_path,
        group,
        role_source,
        engine,
        client,
        unicast_socket,
        inject_socket,
        own_addrs,
        events: events.clone(),
        metrics: metrics::Metrics::new(),
    };
    if let Some(base) = config.control.metrics {
        let addr = lvs_control::metrics::address(base, "syncd");
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("metrics on {addr}: {e}"))?;
        let mut registry = prometheus_client::registry::Registry::default();
        syncd.metrics.register(&mut registry);
        tokio::spawn(lvs_control::metrics::serve(
            listener,
            Arc::new(std::sync::Mutex::new(registry)),
            CancellationToken::new(),
        ));
        info!("metrics on http://{addr}/metrics");
    }
    syncd.set_role(initial_role, true);
    syncd.flush().await;

    let lvs_control::daemon::ControlSocket {
        mut requests,
        shutdown,
        path: socket,
    } = lvs_control::daemon::serve_control::<Request, Response, _>(
        &config.control,
        "syncd",
        events,
    )?;

    let mut hangup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut refresh = tokio::time::interval(ADDRESS_REFRESH);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let mut watchdog = lvs_control::daemon::Watchdog::from_env();
    info!("serving {}", socket.display());

    loop {
        let timer = syncd.engine.poll_timeout().map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            Into::into,
        );
        tokio::select! {
            Some(input) = inputs.recv() => syncd.handle_input(input),
            Some(incoming) = requests.recv() => {
                let response = syncd.handle(&incoming.request);
                incoming.reply(response);
            }
            () = tokio::time::sleep_until(timer) => syncd.engine.handle_timeout(Instant::now()),
            _ = refresh.tick() => syncd.own_addrs = net::local_addrs(&syncd.sync.interface),
            () = watchdog.ping_when_due() => {}
            _ = hangup.recv() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                syncd.reload();
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
        syncd.flush().await;
    }
    shutdown.cancel();
    let _ = std::fs::remove_file(&socket);
    info!("stopped; the kernel sync daemons keep running");
    Ok(())
}
