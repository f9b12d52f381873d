//! `[[bfd.session]]`: the BFD sessions vrrpd runs, a thin shell around the sans-IO
//! [`bfd::Session`].
//!
//! They run on a thread of their own (with its own single-threaded runtime and timerfd),
//! not on vrrpd's event loop: at 10 ms x 3 a session is down after 30 ms of silence, and
//! the loop's own work (netlink address changes, notify scripts, reloads) must not be able
//! to delay a packet that long. It runs at vrrpd's `rt_priority`, set by the thread itself
//! (SCHED_RESET_ON_FORK starts every new thread at normal priority). `status` and the
//! metrics read what the thread last wrote.

mod socket;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bfd::auth::{AuthConfig, AuthKind};
use bfd::session::{Event, Session, SessionConfig};
use lvs_config::{BfdAuthType, BfdSession};
use lvs_control::vrrpd::BfdSessionStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::timer::PreciseTimer;
use socket::{Received, RxSocket, TxSocket};

/// Why the BFD sessions could not start.
#[derive(Debug, thiserror::Error)]
pub enum BfdError {
    #[error("bfd session {session}: key_file {path}: {source}")]
    KeyFile {
        session: String,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("bfd session {session}: {source}")]
    Key {
        session: String,
        source: bfd::auth::AuthConfigError,
    },
    #[error("bfd session {session}: {source}")]
    Config {
        session: String,
        source: bfd::session::ConfigError,
    },
    #[error("bfd session {session}: socket: {source}")]
    Socket {
        session: String,
        source: std::io::Error,
    },
    #[error("bfd: cannot listen on UDP {port}: {source}")]
    Listen { port: u16, source: std::io::Error },
    #[error("bfd: cannot start its thread: {0}")]
    Thread(std::io::Error),
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabel {
    session: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    session: String,
    cause: String,
}

/// Registered once, when vrrpd starts: a reload restarts the sessions, not the series.
#[derive(Clone, Default)]
struct Metrics {
    up: Family<SessionLabel, Gauge>,
    transitions: Family<SessionLabel, Counter>,
    sent: Family<SessionLabel, Counter>,
    received: Family<SessionLabel, Counter>,
    drops: Family<DropLabels, Counter>,
}

impl Metrics {
    fn register(registry: &Mutex<Registry>) -> Metrics {
        let metrics = Metrics::default();
        metrics.register_in(&mut registry.lock().unwrap_or_else(|e| e.into_inner()));
        metrics
    }

    fn register_in(&self, registry: &mut Registry) {
        let bfd = registry.sub_registry_with_prefix("bfd");
        bfd.register(
            "session_up",
            "1 while the BFD session is Up, 0 while not",
            self.up.clone(),
        );
        bfd.register(
            "transitions",
            "BFD session state changes",
            self.transitions.clone(),
        );
        bfd.register(
            "packets_sent",
            "BFD control packets sent",
            self.sent.clone(),
        );
        bfd.register(
            "packets_received",
            "BFD control packets accepted",
            self.received.clone(),
        );
        bfd.register(
            "drops",
            "BFD packets discarded, by cause (ttl, auth_digest, your_discriminator, send_error, ...)",
            self.drops.clone(),
        );
    }
}

/// The running sessions: dropping it stops them (each sends AdminDown first).
struct Bfd {
    /// What it runs, for a reload to compare.
    sessions: Vec<BfdSession>,
    status: Arc<Mutex<Vec<BfdSessionStatus>>>,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bfd {
    fn status(&self) -> Vec<BfdSessionStatus> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Bfd {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the event loop holds of BFD: the running sessions (restarted by a reload), the
/// series registered once, and each session's last reported state for `track_bfd`.
/// A session went Up or left it, for what tracks it.
#[derive(Debug)]
pub struct Change {
    pub session: String,
    pub up: bool,
    /// Down for a reason that may be the path or the peer failing. Not when the peer said
    /// AdminDown (its operator, a reload, a graceful stop): RFC 5882 3.2 forbids taking that
    /// for a forwarding failure, so it must not cut a backup's wait for the master.
    pub path_failed: bool,
}

pub struct Sessions {
    running: Option<Bfd>,
    metrics: Metrics,
    changes: mpsc::UnboundedSender<Change>,
    /// Up or not, by session name.
    pub up: std::collections::BTreeMap<String, bool>,
}

impl Sessions {
    /// No sessions yet, and the receiving end of their Up/Down crossings.
    pub fn new(registry: &Mutex<Registry>) -> (Sessions, mpsc::UnboundedReceiver<Change>) {
        let (changes, crossings) = mpsc::unbounded_channel();
        let sessions = Sessions {
            running: None,
            metrics: Metrics::register(registry),
            changes,
            up: std::collections::BTreeMap::new(),
        };
        (sessions, crossings)
    }

    pub fn start(
        &mut self,
        wanted: &[BfdSession],
        rt_priority: Option<u8>,
    ) -> Result<(), BfdError> {
        self.running = start(wanted, &self.metrics, rt_priority, self.changes.clone())?;
        Ok(())
    }

    /// Restarts the sessions when `wanted` differs from what runs (the old ones send
    /// AdminDown, so their peers see no failure); if the new ones cannot start, the old ones
    /// run again. Returns whether anything changed (every session then starts Down).
    pub fn reload(&mut self, wanted: &[BfdSession], rt_priority: Option<u8>) -> bool {
        let running = self.running.as_ref().map_or(&[][..], |b| &b.sessions[..]);
        if running == wanted {
            return false;
        }
        let old = self
            .running
            .take()
            .map(|b| b.sessions.clone())
            .unwrap_or_default();
        if let Err(e) = self.start(wanted, rt_priority) {
            error!("{e}; the BFD sessions run on as before");
            if let Err(e) = self.start(&old, rt_priority) {
                error!("{e}: no BFD sessions run");
            }
        }
        self.up.clear();
        true
    }

    pub fn status(&self) -> Vec<BfdSessionStatus> {
        self.running.as_ref().map(Bfd::status).unwrap_or_default()
    }

    /// The peer of the running session `name`.
    pub fn peer(&self, name: &str) -> Option<std::net::IpAddr> {
        let sessions = self.running.as_ref().map_or(&[][..], |b| &b.sessions[..]);
        sessions.iter().find(|s| s.name == name).map(|s| s.peer)
    }
}

struct Running {
    config: BfdSession,
    core: Session,
    tx: TxSocket,
    ifindex: Option<u32>,
    status: BfdSessionStatus,
}

fn auth_config(session: &BfdSession) -> Result<Option<AuthConfig>, BfdError> {
    let Some(auth) = &session.authentication else {
        return Ok(None);
    };
    let key = match (&auth.key, &auth.key_file) {
        (Some(key), _) => key.clone().into_bytes(),
        (None, Some(path)) => {
            let mut text = std::fs::read(path).map_err(|source| BfdError::KeyFile {
                session: session.name.clone(),
                path: path.clone(),
                source,
            })?;
            if text.last() == Some(&b'\n') {
                text.pop();
            }
            text
        }
        (None, None) => Vec::new(),
    };
    let kind = match auth.kind {
        BfdAuthType::Password => AuthKind::SimplePassword,
        BfdAuthType::Md5 => AuthKind::KeyedMd5,
        BfdAuthType::MeticulousMd5 => AuthKind::MeticulousMd5,
        BfdAuthType::Sha1 => AuthKind::KeyedSha1,
        BfdAuthType::MeticulousSha1 => AuthKind::MeticulousSha1,
    };
    AuthConfig::new(kind, auth.key_id, &key)
        .map(Some)
        .map_err(|source| BfdError::Key {
            session: session.name.clone(),
            source,
        })
}

fn prepare(config: &BfdSession, now: Instant) -> Result<Running, BfdError> {
    let cfg = SessionConfig {
        desired_min_tx: config.interval.get(),
        required_min_rx: config.required_min_rx(),
        detect_mult: config.multiplier,
        passive: config.passive,
        auth: auth_config(config)?,
    };
    let core = Session::new(cfg, fastrand::u64(..), now).map_err(|source| BfdError::Config {
        session: config.name.clone(),
        source,
    })?;
    let socket_error = |source| BfdError::Socket {
        session: config.name.clone(),
        source,
    };
    let tx = TxSocket::open(
        config.peer,
        config.local_address,
        config.interface.as_deref(),
    )
    .map_err(socket_error)?;
    let ifindex = match &config.interface {
        Some(name) => {
            Some(nix::net::if_::if_nametoindex(name.as_str()).map_err(|e| socket_error(e.into()))?)
        }
        None => None,
    };
    let status = BfdSessionStatus {
        name: config.name.clone(),
        peer: Some(config.peer),
        multihop: config.multihop,
        ..BfdSessionStatus::default()
    };
    Ok(Running {
        config: config.clone(),
        core,
        tx,
        ifindex,
        status,
    })
}

/// Opens every session's sockets and starts the thread; `None` without sessions.
fn start(
    sessions: &[BfdSession],
    metrics: &Metrics,
    rt_priority: Option<u8>,
    changes: mpsc::UnboundedSender<Change>,
) -> Result<Option<Bfd>, BfdError> {
    if sessions.is_empty() {
        return Ok(None);
    }
    let now = Instant::now();
    let running = sessions
        .iter()
        .map(|s| prepare(s, now))
        .collect::<Result<Vec<_>, _>>()?;
    let mut listeners = Vec::new();
    for (ipv6, multihop) in [(false, false), (false, true), (true, false), (true, true)] {
        if running
            .iter()
            .any(|r| r.config.peer.is_ipv6() == ipv6 && r.config.multihop == multihop)
        {
            let port = if multihop {
                bfd::PORT_MULTIHOP
            } else {
                bfd::PORT_SINGLE_HOP
            };
            let rx =
                RxSocket::open(ipv6, port).map_err(|source| BfdError::Listen { port, source })?;
            listeners.push(Arc::new((rx, multihop)));
        }
    }
    let status = Arc::new(Mutex::new(
        running.iter().map(|r| r.status.clone()).collect(),
    ));
    let stop = CancellationToken::new();
    let mut shell = Shell {
        sessions: running,
        metrics: metrics.clone(),
        changes,
        status: Arc::clone(&status),
    };
    let token = stop.clone();
    let thread = std::thread::Builder::new()
        .name("bfd".to_owned())
        .spawn(move || {
            if rt_priority.is_some()
                && let Err(e) = super::realtime::schedule(rt_priority)
            {
                warn!("bfd: {e}");
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime builds");
            runtime.block_on(shell.run(listeners, token));
        })
        .map_err(BfdError::Thread)?;
    Ok(Some(Bfd {
        sessions: sessions.to_vec(),
        status,
        stop,
        thread: Some(thread),
    }))
}

struct Shell {
    /// Sessions crossing Up, by name, for `track_bfd` in the event loop.
    changes: mpsc::UnboundedSender<Change>,
    sessions: Vec<Running>,
    metrics: Metrics,
    status: Arc<Mutex<Vec<BfdSessionStatus>>>,
}

struct Datagram {
    bytes: Vec<u8>,
    received: Received,
    multihop: bool,
}

type Listener = Arc<(RxSocket, bool)>;

impl Shell {
    async fn run(&mut self, listeners: Vec<Listener>, stop: CancellationToken) {
        let (tx, mut datagrams) = mpsc::channel::<Datagram>(256);
        for listener in &listeners {
            tokio::spawn(receive(Arc::clone(listener), tx.clone()));
        }
        let timer = match PreciseTimer::new() {
            Ok(timer) => Some(timer),
            Err(e) => {
                warn!("bfd: timerfd: {e}; using tokio's millisecond timer");
                None
            }
        };
        loop {
            let deadline = self
                .sessions
                .iter()
                .filter_map(|s| s.core.poll_timeout())
                .min();
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                Some(datagram) = datagrams.recv() => self.dispatch(&datagram),
                () = sleep_until(timer.as_ref(), deadline) => {
                    // A packet that arrived before the deadline counts, even if this
                    // thread was too late to read it: first whatever the receivers
                    // queued, then what is still in the sockets.
                    while let Ok(datagram) = datagrams.try_recv() {
                        self.dispatch(&datagram);
                    }
                    for listener in &listeners {
                        while let Some(datagram) = read_queued(listener) {
                            self.dispatch(&datagram);
                        }
                    }
                    let now = Instant::now();
                    for i in 0..self.sessions.len() {
                        self.sessions[i].core.handle_timeout(now);
                        self.flush(i);
                    }
                }
            }
        }
        // The peer sees AdminDown (diag 7) rather than a failure.
        let now = Instant::now();
        for i in 0..self.sessions.len() {
            self.sessions[i].core.admin(bfd::Admin::Down, now);
            self.flush(i);
        }
    }

    fn dispatch(&mut self, datagram: &Datagram) {
        let r = &datagram.received;
        let Some(i) = self.sessions.iter().position(|s| {
            s.config.peer == r.src
                && s.config.multihop == datagram.multihop
                && (s.ifindex.is_none() || s.ifindex == r.ifindex)
        }) else {
            return;
        };
        // RFC 5881 section 5: single-hop packets must arrive with TTL 255 (off-link
        // senders cannot forge that); RFC 5883 leaves multihop TTL to configuration.
        if !datagram.multihop && r.ttl != Some(bfd::TTL_SINGLE_HOP) {
            self.dropped(i, "ttl");
            return;
        }
        let session = &mut self.sessions[i];
        match session.core.handle_packet(&datagram.bytes, r.arrived) {
            Ok(()) => {
                session.status.packets_received += 1;
                self.metrics
                    .received
                    .get_or_create(&label(&session.config.name))
                    .inc();
            }
            Err(e) => self.dropped(i, e.as_str()),
        }
        self.flush(i);
    }

    fn dropped(&mut self, i: usize, cause: &str) {
        let session = &mut self.sessions[i];
        *session.status.drops.entry(cause.to_owned()).or_default() += 1;
        self.metrics
            .drops
            .get_or_create(&DropLabels {
                session: session.config.name.clone(),
                cause: cause.to_owned(),
            })
            .inc();
        self.publish(i);
    }

    /// Sends what the session queued, reports its state changes, refreshes its status.
    fn flush(&mut self, i: usize) {
        let session = &mut self.sessions[i];
        let port = if session.config.multihop {
            bfd::PORT_MULTIHOP
        } else {
            bfd::PORT_SINGLE_HOP
        };
        let to = SocketAddr::new(session.config.peer, port);
        let name = label(&session.config.name);
        let mut failed = 0;
        while let Some(packet) = session.core.poll_transmit() {
            match session.tx.send(&packet, to) {
                Ok(()) => {
                    session.status.packets_sent += 1;
                    self.metrics.sent.get_or_create(&name).inc();
                }
                Err(_) => failed += 1,
            }
        }
        while let Some(Event::StateChange { from, to, diag }) = session.core.poll_event() {
            info!(
                session = %session.config.name,
                "BFD {} -> {} ({})", from.as_str(), to.as_str(), diag.as_str()
            );
            session.status.transitions += 1;
            self.metrics.transitions.get_or_create(&name).inc();
            let up = to == bfd::State::Up;
            self.metrics.up.get_or_create(&name).set(i64::from(up));
            if up != (from == bfd::State::Up) {
                let _ = self.changes.send(Change {
                    session: session.config.name.clone(),
                    up,
                    path_failed: !up && session.core.remote_state() != bfd::State::AdminDown,
                });
            }
        }
        for _ in 0..failed {
            self.dropped(i, "send_error");
        }
        self.publish(i);
    }

    fn publish(&mut self, i: usize) {
        let session = &mut self.sessions[i];
        let core = &session.core;
        let s = &mut session.status;
        s.state = core.state().as_str().to_owned();
        s.remote_state = core.remote_state().as_str().to_owned();
        s.diag = core.local_diag().as_str().to_owned();
        s.local_discriminator = core.local_discriminator();
        s.remote_discriminator = core.remote_discriminator();
        s.tx_interval_ms = core.tx_interval().as_secs_f64() * 1e3;
        s.detection_time_ms = core.detection_time().as_secs_f64() * 1e3;
        if let Some(slot) = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(i)
        {
            slot.clone_from(s);
        }
    }
}

/// Reads one listener in its own task, so the loop waits on a single channel.
async fn receive(listener: Listener, tx: mpsc::Sender<Datagram>) {
    let (socket, multihop) = (&listener.0, listener.1);
    let mut buf = [0u8; 512];
    loop {
        match socket.recv(&mut buf).await {
            Ok(received) => {
                let datagram = Datagram {
                    bytes: buf[..received.len].to_vec(),
                    received,
                    multihop,
                };
                if tx.send(datagram).await.is_err() {
                    return;
                }
            }
            Err(e) => warn!("bfd: receive: {e}"),
        }
    }
}

/// A datagram still in the socket, without waiting.
fn read_queued(listener: &Listener) -> Option<Datagram> {
    let mut buf = [0u8; 512];
    let received = listener.0.try_recv(&mut buf).ok()?;
    Some(Datagram {
        bytes: buf[..received.len].to_vec(),
        received,
        multihop: listener.1,
    })
}

fn label(name: &str) -> SessionLabel {
    SessionLabel {
        session: name.to_owned(),
    }
}

async fn sleep_until(timer: Option<&PreciseTimer>, deadline: Option<Instant>) {
    match (deadline, timer) {
        (None, _) => std::future::pending().await,
        (Some(at), Some(timer)) => {
            if timer.sleep_until(at).await.is_err() {
                tokio::time::sleep_until(at.into()).await;
            }
        }
        (Some(at), None) => tokio::time::sleep_until(at.into()).await,
    }
}
