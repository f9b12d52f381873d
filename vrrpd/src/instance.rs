//! One VRRP virtual router instance: the state machine of RFC 3768 / RFC 5798
//! section 6, with keepalived's Fault state, preemption delay and gratuitous
//! ARP schedule.
//!
//! Sans-IO: every input takes `now`; effects come out of
//! [`Instance::poll_action`] and the next deadline out of
//! [`Instance::poll_timeout`]. The daemon calls
//! [`Instance::handle_timeout`] when that deadline passes.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::wire::{Addresses, Auth, Body, Repr, Version};

/// Priority of the router that owns the virtual addresses.
pub const PRIORITY_OWNER: u8 = 255;
/// Priority a master sends when it stops being master.
pub const PRIORITY_STOP: u8 = 0;

/// Gratuitous ARP (IPv6: unsolicited neighbour advertisement) schedule after
/// becoming master. Defaults are keepalived's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarpConfig {
    /// Packets per burst (keepalived `garp_master_repeat`, 5).
    pub repeat: u32,
    /// Gap between the packets of one burst (keepalived `garp_interval`, 0).
    pub spacing: Duration,
    /// Second burst this long after becoming master (`garp_master_delay`, 5 s);
    /// `None` sends only the first.
    pub delay: Option<Duration>,
    /// Repeat a burst this often while master (`garp_master_refresh`, off).
    pub refresh: Option<Duration>,
    /// Packets per refresh burst (`garp_master_refresh_repeat`, 1).
    pub refresh_repeat: u32,
    /// Packets per burst on hearing a lower-priority master (`garp_lower_prio_repeat`,
    /// `repeat` by default).
    pub lower_prio_repeat: u32,
    /// Its second burst this long after (`garp_lower_prio_delay`, `delay` by default).
    pub lower_prio_delay: Option<Duration>,
}

impl Default for GarpConfig {
    fn default() -> Self {
        GarpConfig {
            repeat: 5,
            spacing: Duration::ZERO,
            delay: Some(Duration::from_secs(5)),
            refresh: None,
            refresh_repeat: 1,
            lower_prio_repeat: 5,
            lower_prio_delay: Some(Duration::from_secs(5)),
        }
    }
}

/// What the protocol needs to know about one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    pub vrid: u8,
    pub version: Version,
    /// Configured (base) priority, 1..=255; 255 only for the address owner.
    pub priority: u8,
    /// v2: whole seconds 1..=255; v3: a multiple of 10 ms up to 40.95 s.
    pub advert_interval: Duration,
    /// keepalived `preempt` (true) / `nopreempt` (false). The owner always preempts.
    pub preempt: bool,
    /// keepalived `preempt_delay`: after startup, or after first hearing a
    /// lower-priority master, keep deferring to it this long.
    pub preempt_delay: Duration,
    /// Our own address on the interface: the advert source, and the tie-breaker
    /// when priorities are equal.
    pub primary_addr: IpAddr,
    /// Virtual addresses, all of one family (IPv4 for v2).
    pub vips: Vec<IpAddr>,
    /// v2 only.
    pub auth: Auth,
    pub garp: GarpConfig,
}

/// An [`InstanceConfig`] the protocol cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("vrid 0 is not a valid virtual router id (1..=255)")]
    VridZero,
    #[error("priority 0 is reserved for a master that is leaving")]
    PriorityZero,
    #[error("VRRPv2 advert interval must be whole seconds in 1..=255, not {0:?}")]
    AdvertIntervalV2(Duration),
    #[error("VRRPv3 advert interval must be a multiple of 10 ms in 10 ms..=40.95 s, not {0:?}")]
    AdvertIntervalV3(Duration),
    #[error("VRRPv2 is IPv4-only (RFC 3768)")]
    V2NeedsIpv4,
    #[error("virtual addresses and the primary address must all be one family")]
    MixedFamilies,
    #[error("at most 255 virtual addresses fit an advertisement, not {0}")]
    TooManyVips(usize),
    #[error("VRRPv3 has no authentication")]
    AuthOnV3,
}

impl InstanceConfig {
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::VridZero);
        }
        if self.priority == 0 {
            return Err(ConfigError::PriorityZero);
        }
        let ms = self.advert_interval.as_millis();
        match self.version {
            Version::V2 => {
                if self.advert_interval.subsec_nanos() != 0
                    || !(1..=255).contains(&self.advert_interval.as_secs())
                {
                    return Err(ConfigError::AdvertIntervalV2(self.advert_interval));
                }
                let all_v4 = self.primary_addr.is_ipv4() && self.vips.iter().all(IpAddr::is_ipv4);
                if !all_v4 {
                    return Err(ConfigError::V2NeedsIpv4);
                }
            }
            Version::V3 => {
                let whole_cs = self.advert_interval.as_nanos().is_multiple_of(10_000_000);
                if !whole_cs || !(10..=40_950).contains(&ms) {
                    return Err(ConfigError::AdvertIntervalV3(self.advert_interval));
                }
                if self.auth != Auth::None {
                    return Err(ConfigError::AuthOnV3);
                }
            }
        }
        let family = self.primary_addr.is_ipv4();
        if self.vips.iter().any(|a| a.is_ipv4() != family) {
            return Err(ConfigError::MixedFamilies);
        }
        if self.vips.len() > 255 {
            return Err(ConfigError::TooManyVips(self.vips.len()));
        }
        Ok(())
    }

    /// The advertisement this instance sends with `priority`. Assumes
    /// [`check`](Self::check) passed.
    pub fn advert(&self, priority: u8) -> Repr {
        let v4: Vec<_> = self
            .vips
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .collect();
        let body = match self.version {
            Version::V2 => Body::V2 {
                advert_int: u8::try_from(self.advert_interval.as_secs()).unwrap_or(u8::MAX),
                auth: self.auth,
                addrs: v4,
            },
            Version::V3 => {
                let cs = (self.advert_interval.as_millis() / 10).min(0x0fff) as u16;
                let addrs = if self.primary_addr.is_ipv4() {
                    Addresses::V4(v4)
                } else {
                    Addresses::V6(
                        self.vips
                            .iter()
                            .filter_map(|a| match a {
                                IpAddr::V6(a) => Some(*a),
                                IpAddr::V4(_) => None,
                            })
                            .collect(),
                    )
                };
                Body::V3 {
                    max_advert_int: cs,
                    addrs,
                }
            }
        };
        Repr {
            vrid: self.vrid,
            priority,
            body,
        }
    }

    fn preempts(&self) -> bool {
        self.preempt || self.priority == PRIORITY_OWNER
    }
}

/// Instance state. `Fault` is keepalived's: tracking says this router must not
/// be master, so it neither advertises nor holds the addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    Fault,
}

impl State {
    /// Stable name for notify scripts, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

/// Which gratuitous ARP burst a packet belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GarpBurst {
    /// Right on becoming master.
    Takeover,
    /// `GarpConfig::delay` after becoming master.
    Delayed,
    /// Periodic `GarpConfig::refresh`.
    Refresh,
    /// On hearing a lower-priority master, and `GarpConfig::lower_prio_delay` after: the
    /// other one (a partition healing) may have drawn the neighbours' entries to itself.
    LowerPriority,
}

/// An effect the daemon must carry out, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Always the first action of a transition.
    StateChanged { old: State, new: State },
    /// Send [`Instance::advert`]`(priority)` to the VRRP group (TTL 255).
    SendAdvert { priority: u8 },
    /// Add the virtual addresses to the interface.
    AddVips,
    /// Remove the virtual addresses from the interface, if there: also on entering Backup or
    /// Fault from anywhere, as a crashed run may have left them.
    RemoveVips,
    /// Send one gratuitous ARP (IPv6: unsolicited NA) for every virtual address,
    /// now. `index` counts 0.. within the burst, so `index == 0` starts one.
    SendGratuitousArp { burst: GarpBurst, index: u32 },
}

/// A validated advertisement, as far as the state machine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advert {
    pub priority: u8,
    /// IP source of the advertisement.
    pub src: IpAddr,
    /// The sender's advertisement interval (v3: learned by a backup).
    pub interval: Duration,
}

/// One virtual router.
#[derive(Debug)]
pub struct Instance {
    cfg: InstanceConfig,
    state: State,
    /// Effective priority: the configured one moved by tracking.
    priority: u8,
    fault: bool,
    /// The master's interval: our own, or in v3 the one a backup learned.
    master_adver_int: Duration,
    master_down_at: Option<Instant>,
    adver_at: Option<Instant>,
    /// While set and in the future, a backup defers to lower-priority masters.
    preempt_until: Option<Instant>,
    /// Pending gratuitous ARPs, ordered by due time.
    garp_queue: VecDeque<(Instant, GarpBurst, u32)>,
    garp_refresh_at: Option<Instant>,
    master_addr: Option<IpAddr>,
    /// Set by a sync group while another member is not ready to be master.
    hold: bool,
    /// Master_Down ran out while held: the instance would be master now.
    ready: bool,
    /// The operator's `lvsadm vrrp force-backup`: never master until released.
    forced_backup: bool,
    /// When the master's last advert was accepted, for a BFD-driven takeover.
    last_advert_at: Option<Instant>,
    actions: VecDeque<Action>,
}

impl Instance {
    pub fn new(cfg: InstanceConfig) -> Result<Instance, ConfigError> {
        cfg.check()?;
        Ok(Instance {
            priority: cfg.priority,
            master_adver_int: cfg.advert_interval,
            cfg,
            state: State::Initialize,
            fault: false,
            master_down_at: None,
            adver_at: None,
            preempt_until: None,
            garp_queue: VecDeque::new(),
            garp_refresh_at: None,
            master_addr: None,
            hold: false,
            ready: false,
            forced_backup: false,
            last_advert_at: None,
            actions: VecDeque::new(),
        })
    }

    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Effective priority.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The advertisement to send for [`Action::SendAdvert`].
    pub fn advert(&self, priority: u8) -> Repr {
        self.cfg.advert(priority)
    }

    /// The interval Master_Down is derived from (v3: learned from the master).
    pub fn master_advert_interval(&self) -> Duration {
        self.master_adver_int
    }

    /// Source of the last advertisement accepted as a backup, or our own address
    /// while master.
    pub fn master_addr(&self) -> Option<IpAddr> {
        self.master_addr
    }

    /// Skew_Time. v2 (RFC 3768): (256 - Priority) / 256 s. v3 (RFC 5798):
    /// ((256 - Priority) * Master_Adver_Interval) / 256. Computed in
    /// nanoseconds, which is exact for v2 and for v3 at centisecond intervals.
    pub fn skew_time(&self) -> Duration {
        let weight = u128::from(256 - u16::from(self.priority));
        let base = match self.cfg.version {
            Version::V2 => Duration::from_secs(1),
            Version::V3 => self.master_adver_int,
        };
        let nanos = weight * base.as_nanos() / 256;
        Duration::from_nanos(nanos as u64)
    }

    /// Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        3 * self.master_adver_int + self.skew_time()
    }

    /// Next effect to carry out, `None` when there is nothing left.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Whether [`poll_action`](Self::poll_action) has anything: the shell skips instances
    /// with nothing to carry out (hundreds of them, most of the time).
    pub fn has_actions(&self) -> bool {
        !self.actions.is_empty()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.master_down_at,
            self.adver_at,
            self.garp_queue.front().map(|&(at, _, _)| at),
            self.garp_refresh_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Leave Initialize: the owner becomes master at once, everyone else waits
    /// as backup for Master_Down_Interval. Ignored unless in Initialize.
    ///
    /// Entering Backup or Fault removes the addresses even though this instance never added
    /// them: a run that crashed while master (kill -9, OOM, watchdog abort) left them on the
    /// interface, and both routers would answer ARP for them (keepalived removes them at start).
    pub fn startup(&mut self, now: Instant) {
        if self.state != State::Initialize {
            return;
        }
        if self.fault {
            self.transition(State::Fault);
            self.actions.push_back(Action::RemoveVips);
        } else {
            self.enter_from_idle(now);
        }
    }

    /// Stop: a master says goodbye with priority 0 and drops the addresses.
    pub fn shutdown(&mut self) {
        match self.state {
            State::Initialize => {}
            State::Master => self.leave_master(State::Initialize, true),
            State::Backup | State::Fault => {
                self.transition(State::Initialize);
                self.clear_timers();
            }
        }
    }

    /// A validated advertisement for this instance (see [`crate::rx::validate`]).
    pub fn handle_advert(&mut self, now: Instant, advert: &Advert) {
        match self.state {
            // keepalived likewise ignores adverts while in fault: tracking,
            // not the peer, decides when to leave it.
            State::Initialize | State::Fault => {}
            State::Backup => self.backup_rx(now, advert),
            State::Master => self.master_rx(now, advert),
        }
        self.drain_garps(now);
    }

    /// Run whatever timers are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Backup => {
                if self.master_down_at.is_some_and(|at| at <= now) {
                    if self.forced_backup {
                        // No master left, and this one may not be it: nobody holds the addresses.
                        self.master_down_at = None;
                        self.master_addr = None;
                    } else if self.hold {
                        self.ready = true;
                        self.master_down_at = None;
                    } else {
                        self.become_master(now);
                    }
                }
            }
            State::Master => {
                if let Some(at) = self.adver_at.filter(|&at| at <= now) {
                    self.actions.push_back(Action::SendAdvert {
                        priority: self.priority,
                    });
                    self.adver_at = Some(next_tick(at, self.cfg.advert_interval, now));
                }
                let refresh = self.cfg.garp.refresh;
                if let (Some(at), Some(period)) =
                    (self.garp_refresh_at.filter(|&at| at <= now), refresh)
                {
                    self.schedule_burst(now, GarpBurst::Refresh, self.cfg.garp.refresh_repeat);
                    self.garp_refresh_at = Some(next_tick(at, period, now));
                }
            }
            State::Initialize | State::Fault => {}
        }
        self.drain_garps(now);
    }

    /// Tracking moved the effective priority. A non-owner is kept in 1..=254 as
    /// keepalived does. A master advertises the new priority at once rather than
    /// at its next tick, so a preempting backup learns of it sooner.
    pub fn set_priority(&mut self, now: Instant, priority: u8) {
        let max = if self.cfg.priority == PRIORITY_OWNER {
            PRIORITY_OWNER
        } else {
            PRIORITY_OWNER - 1
        };
        let priority = priority.clamp(1, max);
        if priority == self.priority {
            return;
        }
        self.priority = priority;
        if self.state == State::Master {
            self.actions.push_back(Action::SendAdvert { priority });
            self.adver_at = Some(now + self.cfg.advert_interval);
        }
    }

    /// A reload changed only the gratuitous ARP schedule: bursts already queued keep their
    /// times, a master's periodic refresh follows the new period from now. No transition.
    pub fn set_garp(&mut self, now: Instant, garp: GarpConfig) {
        let refresh_changed = garp.refresh != self.cfg.garp.refresh;
        self.cfg.garp = garp;
        if refresh_changed && self.state == State::Master {
            self.garp_refresh_at = self.cfg.garp.refresh.map(|period| now + period);
        }
    }

    /// A sync group pulls this master down with a member that lost mastership: it leaves
    /// with priority 0, so the peer takes over after its skew time, and waits as backup.
    /// Ignored unless master.
    pub fn yield_mastership(&mut self, now: Instant) {
        if self.state != State::Master {
            return;
        }
        self.leave_master(State::Backup, true);
        self.master_down_at = Some(now + self.master_down_interval());
    }

    /// Whether this instance is master or would be (its Master_Down ran out while held):
    /// what a sync group asks before letting any member become master.
    pub fn wants_master(&self) -> bool {
        self.state == State::Master || (self.state == State::Backup && self.ready)
    }

    /// A BFD session to `peer` went down (`bfd_takeover`). If `peer` is the master this backup
    /// follows, Master_Down is cut to one advert interval after its last advert: the backup
    /// takes over as soon as one advert is missed rather than three plus Skew_Time. An advert
    /// still heard (BFD alone lost, a filter on its port) restores the full Master_Down, so a
    /// lost BFD session alone never makes a second master.
    pub fn peer_down(&mut self, now: Instant, peer: IpAddr) {
        if self.state != State::Backup || self.master_addr != Some(peer) {
            return;
        }
        let Some(last) = self.last_advert_at else {
            return;
        };
        let fast = (last + self.master_adver_int).max(now);
        if self.master_down_at.is_some_and(|at| fast < at) {
            self.master_down_at = Some(fast);
        }
    }

    /// Whether the operator forced this instance to backup.
    pub fn forced_backup(&self) -> bool {
        self.forced_backup
    }

    /// The operator's `lvsadm vrrp force-backup` (true) and `release` (false), for director
    /// maintenance. Forced, a master leaves as on shutdown (priority 0, so the peer takes over
    /// after its skew time) and the instance stays backup, following the master's adverts but
    /// never taking over, even as the address owner or with no master left. Released, it
    /// counts Master_Down afresh (the owner takes over at once), as a backup that just started.
    pub fn set_forced_backup(&mut self, now: Instant, forced: bool) {
        if forced == self.forced_backup {
            return;
        }
        self.forced_backup = forced;
        match (forced, self.state) {
            (true, State::Master) => self.leave_master(State::Backup, true),
            (true, State::Backup) => self.ready = false,
            (false, State::Backup) if self.priority == PRIORITY_OWNER => self.become_master(now),
            (false, State::Backup) => {
                self.master_down_at = Some(now + self.master_down_interval());
            }
            // Initialize and Fault consult the flag when they end.
            _ => {}
        }
        self.drain_garps(now);
    }

    /// A sync group holds a backup whose Master_Down runs out until every member wants to
    /// be master (keepalived's rule, which prefers backup to thrashing). Releasing the hold
    /// of a ready instance makes it master now.
    pub fn set_master_hold(&mut self, now: Instant, hold: bool) {
        self.hold = hold;
        if !hold && self.ready && self.state == State::Backup {
            self.become_master(now);
        }
    }

    /// Tracking declared a fault (or cleared it). Entering Fault, a master
    /// sends priority 0 and drops the addresses, as keepalived does; leaving
    /// it behaves like startup.
    pub fn set_fault(&mut self, now: Instant, fault: bool) {
        if fault == self.fault {
            return;
        }
        self.fault = fault;
        match (fault, self.state) {
            (true, State::Master) => self.leave_master(State::Fault, true),
            (true, State::Backup) => {
                self.transition(State::Fault);
                self.actions.push_back(Action::RemoveVips);
                self.clear_timers();
            }
            (false, State::Fault) => self.enter_from_idle(now),
            // Initialize: startup() consults `fault`. Fault/clear races are no-ops.
            _ => {}
        }
        self.drain_garps(now);
    }

    fn enter_from_idle(&mut self, now: Instant) {
        if self.priority == PRIORITY_OWNER && !self.forced_backup {
            self.become_master(now);
            return;
        }
        self.transition(State::Backup);
        self.actions.push_back(Action::RemoveVips);
        self.master_adver_int = self.cfg.advert_interval;
        self.master_addr = None;
        self.master_down_at = Some(now + self.master_down_interval());
        self.preempt_until =
            (!self.cfg.preempt_delay.is_zero()).then(|| now + self.cfg.preempt_delay);
    }

    fn backup_rx(&mut self, now: Instant, advert: &Advert) {
        if advert.priority == PRIORITY_STOP {
            // RFC 3768 6.4.2: the master is leaving, take over after Skew_Time
            // so the highest-priority backup wins.
            self.master_down_at = Some(now + self.skew_time());
            return;
        }
        let delay_running =
            !self.cfg.preempt_delay.is_zero() && self.preempt_until.is_none_or(|until| now < until);
        if !self.cfg.preempts() || advert.priority >= self.priority || delay_running {
            if self.cfg.version == Version::V3 && !advert.interval.is_zero() {
                self.master_adver_int = advert.interval;
            }
            self.master_down_at = Some(now + self.master_down_interval());
            self.master_addr = Some(advert.src);
            self.last_advert_at = Some(now);
            // A live master again: no longer ready to take over.
            self.ready = false;
            if !self.cfg.preempt_delay.is_zero() {
                if advert.priority >= self.priority {
                    self.preempt_until = None;
                } else if self.preempt_until.is_none() {
                    self.preempt_until = Some(now + self.cfg.preempt_delay);
                }
            }
        }
        // Otherwise a lower-priority master is discarded and Master_Down runs out.
    }

    fn master_rx(&mut self, now: Instant, advert: &Advert) {
        if advert.priority == PRIORITY_STOP {
            // RFC 3768 6.4.3: another router thinks it is leaving mastership;
            // reassert ours at once.
            self.actions.push_back(Action::SendAdvert {
                priority: self.priority,
            });
            self.adver_at = Some(now + self.cfg.advert_interval);
            return;
        }
        let ours = self.cfg.primary_addr;
        let higher = advert.priority > self.priority
            || (advert.priority == self.priority && advert.src > ours);
        if higher {
            // A higher-priority master is already advertising: no priority 0 advert.
            self.leave_master(State::Backup, false);
            if self.cfg.version == Version::V3 && !advert.interval.is_zero() {
                self.master_adver_int = advert.interval;
            }
            self.master_addr = Some(advert.src);
            self.master_down_at = Some(now + self.master_down_interval());
        } else if advert.src != ours {
            // Lower priority (or equal with a lower address): keepalived answers
            // at once so the other router backs off without waiting a tick, and announces
            // the addresses again: while both were master (a partition that healed) the
            // other one's gratuitous ARPs drew the neighbours to it, and as it backs off it
            // leaves them pointing at a router that no longer holds the addresses.
            self.actions.push_back(Action::SendAdvert {
                priority: self.priority,
            });
            let garp = &self.cfg.garp;
            let (repeat, delay) = (garp.lower_prio_repeat, garp.lower_prio_delay);
            self.schedule_burst(now, GarpBurst::LowerPriority, repeat);
            if let Some(delay) = delay {
                self.schedule_burst(now + delay, GarpBurst::LowerPriority, repeat);
            }
        }
        // Equal priority from our own address is a looped-back copy: ignore.
    }

    fn become_master(&mut self, now: Instant) {
        self.ready = false;
        self.transition(State::Master);
        self.clear_timers();
        self.master_adver_int = self.cfg.advert_interval;
        self.master_addr = Some(self.cfg.primary_addr);
        // RFC 3768 6.4.2 order: the advert first, so the other routers stop counting down
        // without waiting for the addresses to be configured; then the addresses, which must be
        // in place before the gratuitous ARPs draw traffic here.
        self.actions.push_back(Action::SendAdvert {
            priority: self.priority,
        });
        self.actions.push_back(Action::AddVips);
        self.adver_at = Some(now + self.cfg.advert_interval);
        let garp = self.cfg.garp.clone();
        self.schedule_burst(now, GarpBurst::Takeover, garp.repeat);
        if let Some(delay) = garp.delay {
            self.schedule_burst(now + delay, GarpBurst::Delayed, garp.repeat);
        }
        self.garp_refresh_at = garp.refresh.map(|period| now + period);
        self.drain_garps(now);
    }

    /// Gives up the addresses; with `stop_advert`, a priority 0 advert tells the backups to
    /// take over after their skew time rather than a whole Master_Down interval.
    fn leave_master(&mut self, to: State, stop_advert: bool) {
        self.transition(to);
        if stop_advert {
            self.actions.push_back(Action::SendAdvert {
                priority: PRIORITY_STOP,
            });
        }
        self.actions.push_back(Action::RemoveVips);
        self.clear_timers();
        self.master_adver_int = self.cfg.advert_interval;
        self.master_addr = None;
    }

    fn transition(&mut self, new: State) {
        let old = self.state;
        self.state = new;
        self.actions.push_back(Action::StateChanged { old, new });
    }

    fn clear_timers(&mut self) {
        self.ready = false;
        self.master_down_at = None;
        self.adver_at = None;
        self.preempt_until = None;
        self.garp_queue.clear();
        self.garp_refresh_at = None;
    }

    fn schedule_burst(&mut self, start: Instant, burst: GarpBurst, count: u32) {
        for index in 0..count {
            let at = start + self.cfg.garp.spacing * index;
            let pos = self.garp_queue.partition_point(|&(due, _, _)| due <= at);
            self.garp_queue.insert(pos, (at, burst, index));
        }
    }

    fn drain_garps(&mut self, now: Instant) {
        while let Some(&(at, burst, index)) = self.garp_queue.front() {
            if at > now {
                break;
            }
            self.garp_queue.pop_front();
            self.actions
                .push_back(Action::SendGratuitousArp { burst, index });
        }
    }
}

/// The tick after `at`, skipping ticks missed while the daemon was late so a
/// stall does not cause a burst of catch-up advertisements.
fn next_tick(at: Instant, period: Duration, now: Instant) -> Instant {
    let next = at + period;
    if next <= now { now + period } else { next }
}
