//! syncd's protocol logic, sans-IO: what to do with a datagram from a peer or the group, with
//! a message the local kernel master sent, with a table snapshot, and when timers fire.
//! The daemon feeds inputs with the current time, then drains [`Engine::poll_action`] and
//! arms a timer for [`Engine::poll_timeout`].
//!
//! - Master: every entry the local kernel master sends is learned into the mirror and
//!   forwarded to the unicast peers (re-packed with the configured version, sync id and
//!   maximum length). A peer's hello is answered with the whole mirror, then a `ResyncDone`
//!   (see [`crate::wire::hello`]), at most once per [`EngineConfig::resync_interval`] per peer.
//!   The table goes out at [`EngineConfig::resync_rate`] entries per second from a token
//!   bucket, walking the mirror with a cursor rather than copying it, so a million-entry
//!   resync neither bursts onto the link nor doubles our memory; live updates are not held
//!   back by it.
//! - Backup: sync messages a peer sends by unicast are learned and handed unchanged to the
//!   local kernel backup; messages to the group are only learned (the kernel backup, a
//!   member of the group, has them already); hellos go to every peer at start and every
//!   [`EngineConfig::hello_interval`] until a `ResyncDone` arrives.
//!
//! - Both (active-active directors in a full mesh): the master's forwarding and answering
//!   and the backup's injecting and asking, at once.
//!
//! Either role keeps the mirror across a role change, so a backup promoted to master can
//! resync the next backup.
//!
//! What is learned is trusted as far as it has to be, since the mirror is resynced to peers
//! and injected into their kernels: the group is heard only from [`EngineConfig::group_sources`]
//! and the peers; unicast only from the peers, and with a [`EngineConfig::key`] only with a
//! valid tag; timeouts are clamped to the longest the kernel gives the entry's state; and
//! the mirror holds at most [`EngineConfig::max_entries`] (when full, new entries are refused
//! and counted, entries already held keep being updated). Each refusal is counted by cause.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use lvs_proto::syncd::Counters;

use crate::auth::Key;
use crate::conn::{Connection, TimeoutCeilings, max_timeout_secs};
use crate::mirror::{Cursor, Mirror};
use crate::wire::{self, MessageBuilder, ProtocolVersion, Scope, hello};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Backup,
    /// Master and backup at once, for a full mesh of active-active directors: what the local
    /// kernel master sends goes to every peer, what a peer sends goes to the local kernel
    /// backup; hellos are both sent (at start) and answered.
    Both,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Backup => "backup",
            Role::Both => "both",
        }
    }

    /// Whether the local kernel's entries go to the peers (and hellos are answered).
    pub fn sends(self) -> bool {
        matches!(self, Role::Master | Role::Both)
    }

    /// Whether the peers' entries go to the local kernel (and the table is asked for).
    pub fn receives(self) -> bool {
        matches!(self, Role::Backup | Role::Both)
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub sync_id: u8,
    pub version: ProtocolVersion,
    pub max_len: usize,
    pub peers: Vec<SocketAddr>,
    pub hello_interval: Duration,
    pub resync_interval: Duration,
    /// Entries per second a resync sends to one peer; 0 sends the whole table at once.
    pub resync_rate: u32,
    /// Senders whose messages to the group are learned, besides the peers.
    pub group_sources: Vec<IpNet>,
    /// Most entries the mirror holds.
    pub max_entries: usize,
    /// Longest timeouts the local kernel gives; received entries are clamped to them.
    pub ceilings: TimeoutCeilings,
    /// Shared key: unicast to and from peers carries an HMAC tag (see [`crate::auth`]).
    pub key: Option<Key>,
}

/// Why a datagram or entry was refused before it reached the mirror; each cause has its
/// own drop counter (the label of [`Refused::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("message to the group from a sender neither in group_sources nor a peer")]
    GroupSource,
    #[error("unicast from an address that is no configured peer")]
    UnknownPeer,
    #[error("new entry refused: the mirror holds max_entries")]
    MirrorFull,
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::GroupSource => "group_source",
            Refused::UnknownPeer => "unknown_peer",
            Refused::MirrorFull => "mirror_full",
            Refused::Auth(e) => e.as_str(),
        }
    }
}

/// Hellos that go unanswered this many times in a row are reported, then at most once per
/// [`UNANSWERED_REPORT_EVERY`]: a peer at a port where no syncd listens never answers, and
/// nothing else would say so.
const UNANSWERED_REPORT_AFTER: u32 = 3;
const UNANSWERED_REPORT_EVERY: Duration = Duration::from_secs(60);

/// How often a paced resync wakes at the most: fewer, fuller messages than a wake per entry.
const RESYNC_TICK: Duration = Duration::from_millis(10);
/// A paced resync waits until it can fill about a message (v1 IPv4 entries are 36 B).
const RESYNC_MIN_BATCH: f64 = 32.0;

/// A resync under way to one peer.
#[derive(Debug)]
struct Resync {
    peer: SocketAddr,
    cursor: Cursor,
    sent: usize,
    /// Entries that may go out now; refilled at the rate, capped at a tenth of a second's.
    tokens: f64,
    refilled: Instant,
    next_at: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A datagram for a peer's syncd (sync messages, hellos).
    SendPeer { to: SocketAddr, payload: Vec<u8> },
    /// A sync message for the local kernel backup daemon.
    Inject { payload: Vec<u8> },
    /// A full resync went to `peer` (for the event stream).
    ResyncSent { peer: SocketAddr, entries: usize },
    /// `hellos` hellos in a row to `peers` got no resync back (for a warning).
    HellosUnanswered { peers: Vec<SocketAddr>, hellos: u32 },
}

#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    role: Role,
    mirror: Mirror,
    counters: Counters,
    last_update: Option<Instant>,
    awaiting_resync: bool,
    next_hello: Option<Instant>,
    /// Hellos sent since the last resync arrived (or since we started asking).
    unanswered: u32,
    reported_unanswered: Option<Instant>,
    last_resync: HashMap<SocketAddr, Instant>,
    resyncs: Vec<Resync>,
    actions: VecDeque<Action>,
}

impl Engine {
    pub fn new(config: EngineConfig, role: Role, now: Instant) -> Engine {
        let mut engine = Engine {
            config,
            role: Role::Master,
            mirror: Mirror::new(),
            counters: Counters::default(),
            last_update: None,
            awaiting_resync: false,
            next_hello: None,
            unanswered: 0,
            reported_unanswered: None,
            last_resync: HashMap::new(),
            resyncs: Vec::new(),
            actions: VecDeque::new(),
        };
        engine.set_role(role, now);
        engine
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Takes a reloaded config. Resyncs to peers no longer configured stop; a master sends
    /// the table to peers that are new, a backup asks them for it.
    pub fn reconfigure(&mut self, config: EngineConfig, now: Instant) {
        let added: Vec<SocketAddr> = config
            .peers
            .iter()
            .filter(|peer| !self.config.peers.contains(peer))
            .copied()
            .collect();
        self.config = config;
        let peers = &self.config.peers;
        self.resyncs.retain(|r| peers.contains(&r.peer));
        self.last_resync.retain(|peer, _| peers.contains(peer));
        if self.role.receives() && peers.is_empty() {
            self.awaiting_resync = false;
            self.next_hello = None;
        } else if self.role.receives() && !added.is_empty() {
            self.awaiting_resync = true;
            self.next_hello = Some(now);
        }
        if self.role.sends() {
            for peer in added {
                self.resync(peer, now, false);
            }
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Age of the newest update in the mirror.
    pub fn lag(&self, now: Instant) -> Option<Duration> {
        self.last_update.map(|at| now.saturating_duration_since(at))
    }

    pub fn awaiting_resync(&self) -> bool {
        self.awaiting_resync
    }

    /// Counts a drop the daemon saw (a send that failed, a datagram it could not read).
    pub fn record_drop(&mut self, cause: &str) {
        *self.counters.drops.entry(cause.to_owned()).or_default() += 1;
    }

    pub fn set_role(&mut self, role: Role, now: Instant) {
        self.role = role;
        match role {
            Role::Master => {
                self.awaiting_resync = false;
                self.next_hello = None;
            }
            Role::Backup | Role::Both => {
                // A backup sends no table: resyncs under way stop here.
                if role == Role::Backup {
                    self.resyncs.clear();
                }
                self.unanswered = 0;
                self.reported_unanswered = None;
                self.awaiting_resync = !self.config.peers.is_empty();
                self.next_hello = self.awaiting_resync.then_some(now);
            }
        }
    }

    /// The next thing to do; with a key, what goes to a peer is signed here, once for all.
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front()?;
        Some(match (action, &self.config.key) {
            (Action::SendPeer { to, payload }, Some(key)) => Action::SendPeer {
                to,
                payload: key.sign(payload),
            },
            (action, _) => action,
        })
    }

    /// The group's allowed senders changed (the default follows the interface's subnets).
    pub fn set_group_sources(&mut self, sources: Vec<IpNet>) {
        self.config.group_sources = sources;
    }

    /// The local kernel's timeouts changed (read from it now and then).
    pub fn set_ceilings(&mut self, ceilings: TimeoutCeilings) {
        self.config.ceilings = ceilings;
    }

    fn refuse(&mut self, cause: Refused) {
        self.record_drop(cause.as_str());
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.mirror.next_expiry(), self.next_hello]
            .into_iter()
            .flatten()
            .chain(self.resyncs.iter().map(|r| r.next_at))
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.pace_resyncs(now);
        self.counters.entries_expired += self.mirror.expire(now).len() as u64;
        if let Some(at) = self.next_hello
            && at <= now
        {
            if self.awaiting_resync && self.role.receives() {
                self.report_unanswered(now);
                self.unanswered = self.unanswered.saturating_add(1);
                let payload = hello::Repr::Hello {
                    sync_id: self.config.sync_id,
                }
                .to_bytes();
                for &to in &self.config.peers {
                    self.counters.hellos_sent += 1;
                    self.actions.push_back(Action::SendPeer {
                        to,
                        payload: payload.clone(),
                    });
                }
                self.next_hello = Some(now + self.config.hello_interval);
            } else {
                self.next_hello = None;
            }
        }
    }

    /// A datagram the local kernel master sent on the sync interface.
    pub fn handle_observed(&mut self, payload: &[u8], now: Instant) {
        let Some(conns) = self.decode(payload) else {
            return;
        };
        self.counters.kernel_messages_observed += 1;
        self.counters.kernel_entries_observed += conns.len() as u64;
        if self.role.sends() && !self.config.peers.is_empty() {
            let messages = self.build(&conns);
            let peers = self.config.peers.clone();
            for to in peers {
                self.send_messages(to, &messages);
            }
        }
        self.learn(conns, now);
    }

    /// A unicast datagram on the sync port: a peer's hello or resync notice, or a sync
    /// message (an update or part of a resync). Only configured peers are heard: a backup
    /// hands what it accepts to its kernel, which must not take orders from anyone.
    pub fn handle_unicast(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) {
        let payload = match &self.config.key {
            Some(key) => match key.verify(datagram) {
                Ok(payload) => payload,
                Err(e) => return self.refuse(e.into()),
            },
            None => datagram,
        };
        if hello::is_hello(payload) {
            self.handle_hello(from, payload, now);
            return;
        }
        if self.peer_of(from).is_none() {
            self.refuse(Refused::UnknownPeer);
            return;
        }
        let Some((conns, clamped)) = self.accept(payload) else {
            return;
        };
        // Handed on as sent, unless a timeout had to be clamped: then as we learned it.
        let injected = match self.role.receives() {
            true if clamped => self.build(&conns).into_iter().map(|(m, _)| m).collect(),
            true => vec![payload.to_vec()],
            false => Vec::new(),
        };
        self.learn(conns, now);
        for payload in injected {
            self.counters.messages_injected += 1;
            self.actions.push_back(Action::Inject { payload });
        }
    }

    /// A sync message to the group on the sync interface, from another host's kernel
    /// master. Learned only: the local kernel backup is a member of the same group and
    /// already has it. Datagrams this host sent itself must be filtered out by the caller.
    /// Only the group sources and the peers are heard: the group is open to anyone on the
    /// link.
    pub fn handle_group(&mut self, from: SocketAddr, payload: &[u8], now: Instant) {
        if hello::is_hello(payload) {
            self.record_drop("hello_via_group");
            return;
        }
        let allowed = self
            .config
            .group_sources
            .iter()
            .any(|net| net.contains(&from.ip()))
            || self.peer_of(from).is_some();
        if !allowed {
            self.refuse(Refused::GroupSource);
            return;
        }
        if let Some((conns, _)) = self.accept(payload) {
            self.learn(conns, now);
        }
    }

    /// Decodes a received sync message, with its timeouts clamped; true in the second place
    /// if a clamp changed one.
    fn accept(&mut self, payload: &[u8]) -> Option<(Vec<Connection>, bool)> {
        let mut conns = self.decode(payload)?;
        self.counters.messages_received += 1;
        self.counters.entries_received += conns.len() as u64;
        let mut clamped = false;
        for conn in &mut conns {
            let max = max_timeout_secs(
                conn.protocol,
                conn.state,
                conn.is_template(),
                &self.config.ceilings,
            );
            if conn.timeout > max {
                conn.timeout = max;
                self.counters.timeouts_clamped += 1;
                clamped = true;
            }
        }
        Some((conns, clamped))
    }

    /// The kernel's whole table, read by the daemon: learned, and in the master role sent to
    /// every peer as a resync so backups catch up with what synced before syncd watched.
    pub fn load_snapshot(&mut self, conns: Vec<Connection>, now: Instant) {
        self.counters.snapshots += 1;
        self.counters.snapshot_entries = conns.len() as u64;
        self.learn(conns, now);
        if self.role.sends() {
            for peer in self.config.peers.clone() {
                self.resync(peer, now, false);
            }
        }
    }

    fn handle_hello(&mut self, from: SocketAddr, payload: &[u8], now: Instant) {
        let repr = match hello::Packet::new_checked(payload).and_then(|p| hello::Repr::parse(&p)) {
            Ok(repr) => repr,
            Err(e) => {
                self.record_drop(e.as_str());
                return;
            }
        };
        // Only configured peers get the table: a hello from anywhere else could be used to
        // make us send it to whoever asks.
        let Some(peer) = self.peer_of(from) else {
            self.record_drop("hello_unknown_peer");
            return;
        };
        match repr {
            hello::Repr::Hello { sync_id } => {
                self.counters.hellos_received += 1;
                if !self.role.sends() {
                    self.record_drop("hello_not_master");
                } else if !wire::sync_id_accepted(sync_id, self.config.sync_id) {
                    self.record_drop("sync_id");
                } else if self.last_resync.get(&peer).is_some_and(|at| {
                    now.saturating_duration_since(*at) < self.config.resync_interval
                }) {
                    self.record_drop("hello_rate_limited");
                } else {
                    self.resync(peer, now, true);
                }
            }
            hello::Repr::ResyncDone { .. } => {
                self.counters.resyncs_received += 1;
                self.awaiting_resync = false;
                self.next_hello = None;
                self.unanswered = 0;
                self.reported_unanswered = None;
            }
        }
    }

    /// Says that hellos go unanswered, once enough have and not too often.
    fn report_unanswered(&mut self, now: Instant) {
        if self.unanswered < UNANSWERED_REPORT_AFTER
            || self
                .reported_unanswered
                .is_some_and(|at| now.saturating_duration_since(at) < UNANSWERED_REPORT_EVERY)
        {
            return;
        }
        self.reported_unanswered = Some(now);
        self.actions.push_back(Action::HellosUnanswered {
            peers: self.config.peers.clone(),
            hellos: self.unanswered,
        });
    }

    /// The peer a datagram came from: its configured address, matched by IP since the
    /// source port need not be the one it listens on.
    fn peer_of(&self, from: SocketAddr) -> Option<SocketAddr> {
        let peers = &self.config.peers;
        peers
            .iter()
            .find(|p| **p == from)
            .or_else(|| peers.iter().find(|p| p.ip() == from.ip()))
            .copied()
    }

    /// Starts sending the whole mirror to `peer` (again from the start if a resync to it is
    /// under way). Only resyncs a peer asked for count against its rate limit: one we push
    /// at start may have reached nobody.
    fn resync(&mut self, peer: SocketAddr, now: Instant, requested: bool) {
        if requested {
            self.last_resync.insert(peer, now);
        }
        let fresh = Resync {
            peer,
            cursor: Cursor::default(),
            sent: 0,
            tokens: self.resync_burst(),
            refilled: now,
            next_at: now,
        };
        match self.resyncs.iter_mut().find(|r| r.peer == peer) {
            Some(under_way) => *under_way = fresh,
            None => self.resyncs.push(fresh),
        }
        self.pace_resyncs(now);
    }

    /// Entries a resync may send at once: a tenth of a second's worth.
    fn resync_burst(&self) -> f64 {
        (f64::from(self.config.resync_rate) / 10.0).max(1.0)
    }

    /// Sends what each due resync's bucket allows; a finished one is closed with a
    /// `ResyncDone` that counts what it sent.
    fn pace_resyncs(&mut self, now: Instant) {
        let rate = f64::from(self.config.resync_rate);
        let burst = self.resync_burst();
        let mut i = 0;
        while i < self.resyncs.len() {
            let resync = &mut self.resyncs[i];
            if resync.next_at > now {
                i += 1;
                continue;
            }
            let mut batch = Vec::new();
            if rate == 0.0 {
                self.mirror
                    .resync_batch(&mut resync.cursor, now, usize::MAX, &mut batch);
            } else {
                let elapsed = now.saturating_duration_since(resync.refilled);
                resync.tokens = (resync.tokens + rate * elapsed.as_secs_f64()).min(burst);
                resync.refilled = now;
                self.mirror.resync_batch(
                    &mut resync.cursor,
                    now,
                    resync.tokens as usize,
                    &mut batch,
                );
                resync.tokens -= batch.len() as f64;
                let wait = ((RESYNC_MIN_BATCH.min(burst) - resync.tokens) / rate).max(0.0);
                resync.next_at = now + RESYNC_TICK.max(Duration::from_secs_f64(wait));
            }
            resync.sent += batch.len();
            let (peer, done, sent) = (resync.peer, resync.cursor.is_done(), resync.sent);
            let messages = self.build(&batch);
            self.send_messages(peer, &messages);
            if done {
                self.resyncs.swap_remove(i);
                self.finish_resync(peer, sent);
            } else {
                i += 1;
            }
        }
    }

    fn finish_resync(&mut self, peer: SocketAddr, entries: usize) {
        let done = hello::Repr::ResyncDone {
            sync_id: self.config.sync_id,
            entries: u32::try_from(entries).unwrap_or(u32::MAX),
        };
        self.actions.push_back(Action::SendPeer {
            to: peer,
            payload: done.to_bytes(),
        });
        self.counters.resyncs_sent += 1;
        self.actions.push_back(Action::ResyncSent { peer, entries });
    }

    /// Resyncs under way, as (peer, entries sent so far).
    pub fn resyncs_in_progress(&self) -> impl Iterator<Item = (SocketAddr, usize)> + '_ {
        self.resyncs.iter().map(|r| (r.peer, r.sent))
    }

    fn send_messages(&mut self, to: SocketAddr, messages: &[(Vec<u8>, usize)]) {
        for (payload, entries) in messages {
            self.counters.messages_sent += 1;
            self.counters.entries_sent += *entries as u64;
            self.actions.push_back(Action::SendPeer {
                to,
                payload: payload.clone(),
            });
        }
    }

    /// Messages carrying `conns`, each with its entry count.
    fn build(&mut self, conns: &[Connection]) -> Vec<(Vec<u8>, usize)> {
        let mut builder = MessageBuilder::new(self.config.version, self.config.sync_id)
            .with_max_len(self.config.max_len);
        let mut out = Vec::new();
        let mut finish = |message: Option<Vec<u8>>, pending: usize| {
            if let Some(message) = message {
                out.push((message, pending));
            }
        };
        for conn in conns {
            let pending = builder.pending();
            match builder.push(conn) {
                Ok(done) => finish(done, pending),
                Err(e) => self.record_drop(e.as_str()),
            }
        }
        let pending = builder.pending();
        finish(builder.flush(), pending);
        out
    }

    /// Decodes a sync message, counting a dropped datagram or skipped entries by cause and
    /// refusing another sync id the way a kernel backup does.
    fn decode(&mut self, payload: &[u8]) -> Option<Vec<Connection>> {
        let decoded = match wire::decode(payload) {
            Ok(decoded) => decoded,
            Err(e) => {
                self.record_drop(e.as_str());
                return None;
            }
        };
        for issue in &decoded.issues {
            if issue.scope() == Scope::Entry {
                self.record_drop(issue.as_str());
            }
        }
        if !wire::sync_id_accepted(self.config.sync_id, decoded.sync_id) {
            self.record_drop("sync_id");
            return None;
        }
        Some(decoded.conns)
    }

    fn learn(&mut self, conns: Vec<Connection>, now: Instant) {
        if !conns.is_empty() {
            self.last_update = Some(now);
        }
        for conn in conns {
            // Refreshes of what is held go on when full: those connections stay right.
            if self.mirror.len() >= self.config.max_entries && !self.mirror.holds(&conn) {
                self.refuse(Refused::MirrorFull);
                continue;
            }
            self.mirror.apply(conn, now);
        }
    }
}
