//! The tokio shell around the sans-IO [`vrrpd::instance::Instance`]: sockets, addresses,
//! gratuitous ARP / unsolicited NA, notify hooks and signals. IPv4 instances (VRRPv2 and v3)
//! and IPv6 ones (VRRPv3), multicast or unicast peers.

mod announce;
mod bfd_sessions;
mod directord;
mod error;
mod forced;
mod link;
mod metrics;
mod notify;
mod realtime;
mod routes;
mod socket;
mod timer;
mod tracking;
mod vips;
mod vmac;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use lvs_config::{Auth as ConfigAuth, Config, SyncGroup, Vip, VrrpInstance};
use lvs_control::daemon::SetupError;
use lvs_control::ratelimit::{self, Repeats};
use lvs_control::vrrpd::{
    Counters, DirectordStatus, Event, InstanceStatus, InterfaceStatus, Request, Status,
};
use rtnetlink::Handle;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, error, info, warn};
use vrrpd::instance::{Action, GarpConfig, Instance, InstanceConfig, State};
use vrrpd::rx;
use vrrpd::wire::{Auth, IpPair, Packet, VRRP_GROUP_V4, VRRP_GROUP_V6, Version};

use error::{Error, ReleaseFailure};
use link::Link;
use metrics::Metrics;
use notify::Notifier;
use socket::VrrpSocket;
use timer::PreciseTimer;
use tracking::{ScriptResult, Tracking};
use vmac::Vmac;

struct Running {
    /// Unique for the daemon's life, so results of a replaced instance's scripts are ignored.
    id: u64,
    config: VrrpInstance,
    core: Instance,
    tracking: Tracking,
    link: usize,
    /// Unicast peers of the instance's family; empty for multicast.
    peers: Vec<IpAddr>,
    counters: Counters,
    metrics: Metrics,
    scripts: Vec<tokio::task::JoinHandle<()>>,
    /// What the instance's own tracking says, before its sync group has a say.
    own_fault: bool,
    /// The macvlan holding the VIPs when `virtual_mac` is on.
    vmac: Option<Vmac>,
    /// Every VIP, with the index in `interfaces` of its own `dev` (None: the instance's).
    placed: Vec<(Vip, Option<usize>)>,
    /// The generation of the address job (add or remove) the address task has not finished
    /// yet, and the gratuitous ARP bursts waiting for it.
    pending: Option<u64>,
    address_generation: u64,
    deferred_garps: u32,
    /// Transitions whose notifies wait for the pending address job, as keepalived runs
    /// `notify_master` once its addresses are in (a script may bind to them) and
    /// `notify_backup` once they are out.
    deferred_notifies: Vec<(State, State)>,
}

impl Running {
    fn dropped(&mut self, cause: &str) {
        *self.counters.drops.entry(cause.to_owned()).or_default() += 1;
        self.metrics.dropped(&self.config.name, cause);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for script in &self.scripts {
            script.abort();
        }
    }
}

struct Interface {
    link: Link,
    /// Opened on first use by an instance of that family.
    v4: Option<Arc<VrrpSocket>>,
    v6: Option<Arc<VrrpSocket>>,
    /// Drops no instance can be charged with (see [`InterfaceStatus`]).
    drops: BTreeMap<String, u64>,
    metrics: Metrics,
    /// How many instances run a vmac over this interface, and its ARP settings from before
    /// the first of them, put back when the last one goes (as keepalived does).
    vmacs: usize,
    base_settings: Option<vmac::BaseSettings>,
}

impl Interface {
    fn dropped(&mut self, cause: &str) {
        *self.drops.entry(cause.to_owned()).or_default() += 1;
        self.metrics.interface_dropped(&self.link.name, cause);
    }
}

struct Daemon {
    config_path: PathBuf,
    sync_groups: Vec<SyncGroup>,
    handle: Handle,
    /// The task that adds and removes VIPs, in order, off the event loop.
    vips: mpsc::UnboundedSender<vips::Job>,
    interfaces: Vec<Interface>,
    instances: Vec<Running>,
    next_id: u64,
    datagrams: mpsc::Sender<Datagram>,
    scripts: mpsc::Sender<ScriptResult>,
    events: broadcast::Sender<Event>,
    metrics: Metrics,
    realtime: realtime::Applied,
    /// `[vrrp] track_directord`, when on.
    directord: Option<directord::Watch>,
    directord_results: mpsc::Sender<directord::ProbeResult>,
    /// Dropped packets are counted one by one but logged once per instance (or interface) and
    /// cause, then summed per interval: a flood must not flood the journal.
    rx_logs: Repeats<(String, &'static str)>,
    /// Notify scripts and FIFO.
    notifier: Notifier,
    /// Each sync group's state as last notified (see [`vrrpd::notify::group_state`]).
    group_states: BTreeMap<String, State>,
    /// `lvsadm vrrp force-backup`, kept in the state directory.
    forced: forced::Forced,
    /// `[announce]`: VIPs announced over BGP by the routing engine.
    announce: Option<announce::Announcing>,
    /// `[[bfd.session]]`, on their own thread.
    bfd: bfd_sessions::Sessions,
}

impl Daemon {
    /// What every instance's tracking makes of directord: its weight and whether it is up.
    fn directord_tracking(&self) -> Option<(i32, bool)> {
        self.directord.as_ref().map(|w| (w.settings.weight, w.up))
    }

    /// Starts, stops or retunes the watch on directord as `config` says; returns whether it
    /// changed, and then every instance's tracking has been made anew with it.
    async fn configure_directord(&mut self, config: &Config, first_answer: bool) -> bool {
        let wanted = config
            .tracks_directord()
            .then(|| config.vrrp.track_directord.clone());
        if wanted.as_ref() == self.directord.as_ref().map(|w| &w.settings) {
            return false;
        }
        self.directord = match wanted {
            Some(settings) => Some(
                directord::Watch::start(
                    settings,
                    &config.control.socket_dir,
                    self.directord_results.clone(),
                    first_answer,
                    &self.metrics,
                )
                .await,
            ),
            None => None,
        };
        self.metrics
            .set_directord_up(self.directord.as_ref().map(|w| w.up));
        let tracking = self.directord_tracking();
        for running in &mut self.instances {
            let mut fresh = Tracking::new(&device_tracked(&running.config), tracking);
            fresh.carry_over(&running.tracking);
            running.tracking = fresh;
        }
        true
    }

    /// One request on the control socket.
    async fn answer(&mut self, incoming: lvs_control::Incoming<Request, Status>) {
        match incoming.request {
            Request::Status => incoming.reply_ok(status(self)),
            Request::ForceBackup { ref name } | Request::Release { ref name } => {
                let forced = matches!(incoming.request, Request::ForceBackup { .. });
                let done = self.force_backup(name, forced, Instant::now());
                incoming.reply(done.map(|()| status(self)));
            }
            Request::Announce { drain, vip } => {
                let done = match self.announce.as_mut() {
                    Some(announcing) => announcing.drain(vip, drain),
                    None => Err(announce::AnnounceError::NoAnnounce),
                };
                self.update_announce().await;
                incoming.reply(done.map(|()| status(self)));
            }
        }
    }

    /// Announces and withdraws `[announce]` VIPs as directord's last answer says.
    async fn update_announce(&mut self) {
        if let Some(announcing) = &mut self.announce {
            let directord = self.directord.as_ref().map(|w| (w.up, &w.quorum));
            announcing.update(&self.handle, directord, false).await;
        }
    }

    /// `[announce]` as `config` says: started, reconfigured or stopped.
    async fn configure_announce(&mut self, config: &Config) {
        match (&mut self.announce, &config.announce) {
            (Some(announcing), Some(wanted)) => announcing.configure(&self.handle, wanted).await,
            (None, Some(wanted)) => {
                let state_dir = &config.control.state_dir;
                let metrics = self.metrics.clone();
                self.announce = Some(
                    announce::Announcing::start(&self.handle, wanted, state_dir, metrics).await,
                );
            }
            (Some(announcing), None) => {
                announcing.stop(&self.handle).await;
                self.announce = None;
            }
            (None, None) => {}
        }
        self.update_announce().await;
    }

    /// One answer (or silence) from directord.
    fn directord_probed(&mut self, result: &directord::ProbeResult, now: Instant) {
        let Some(watch) = &mut self.directord else {
            return;
        };
        let changed = watch.record(result, &self.metrics);
        let up = watch.up;
        let mut moved = false;
        for running in &mut self.instances {
            if changed {
                running.tracking.set_directord(up);
            }
            moved |= running.tracking.set_services(&watch.quorum);
        }
        if changed {
            self.metrics.set_directord_up(Some(up));
        }
        if changed || moved {
            self.apply_tracking(now);
        }
    }

    /// Prepares and launches every instance, as vrrpd starts.
    async fn launch_all(&mut self, instances: &[VrrpInstance]) -> Result<(), Error> {
        let all: Vec<&VrrpInstance> = instances.iter().collect();
        let prepared = self.prepare_all(&all).await?;
        let now = Instant::now();
        for ready in prepared {
            self.launch(ready, now).await?;
        }
        Ok(())
    }

    /// A reload's `[[bfd.session]]`: restarted sessions start Down, and so does what tracks them.
    fn reload_bfd(&mut self, wanted: &[lvs_config::BfdSession]) {
        if self.bfd.reload(wanted, self.realtime.priority()) {
            for running in &mut self.instances {
                running.tracking.set_bfd(&self.bfd.up);
            }
        }
    }

    /// A BFD session came up or went down: instances tracking it move.
    fn bfd_changed(&mut self, change: bfd_sessions::Change) {
        let bfd_sessions::Change {
            session,
            up,
            path_failed,
        } = change;
        let now = Instant::now();
        if let Some(peer) = self.bfd.peer(&session).filter(|_| path_failed) {
            for running in &mut self.instances {
                if running.config.bfd_takeover.as_ref() == Some(&session) {
                    running.core.peer_down(now, peer);
                }
            }
        }
        self.bfd.up.insert(session, up);
        let mut moved = false;
        for running in &mut self.instances {
            moved |= running.tracking.set_bfd(&self.bfd.up);
        }
        if moved {
            self.apply_tracking(now);
        }
    }

    /// The scheduling and memory locking `vrrp` asks for, each refusal counted.
    fn apply_realtime(&mut self, vrrp: &lvs_config::Vrrp) {
        let (applied, refused) = realtime::apply(vrrp, self.realtime);
        if applied.priority() != self.realtime.priority() {
            let _ = self.vips.send(vips::Job::Schedule(applied.priority()));
        }
        self.realtime = applied;
        for e in refused {
            self.metrics.scheduling(e.cause());
        }
    }

    /// The interface's index in `interfaces`, opening it on first use and, with `socket`,
    /// its socket of the family (with a receiver task).
    fn interface(&mut self, name: &str, ipv6: bool, socket: bool) -> Result<usize, Error> {
        let index = match self.interfaces.iter().position(|i| i.link.name == name) {
            Some(index) => index,
            None => {
                let link = Link::open(name).map_err(|source| Error::Interface {
                    name: name.to_owned(),
                    source,
                })?;
                if let Err(e) = link::promote_secondaries(name) {
                    warn!(
                        "interface {name}: cannot set promote_secondaries, removing a VIP may remove others of its subnet: {e}"
                    );
                }
                self.interfaces.push(Interface {
                    link,
                    v4: None,
                    v6: None,
                    drops: BTreeMap::new(),
                    metrics: self.metrics.clone(),
                    vmacs: 0,
                    base_settings: None,
                });
                self.interfaces.len() - 1
            }
        };
        let interface = &mut self.interfaces[index];
        let slot = if ipv6 {
            &mut interface.v6
        } else {
            &mut interface.v4
        };
        if socket && slot.is_none() {
            let ifindex = interface.link.index;
            let opened = if ipv6 {
                VrrpSocket::open_v6(name, ifindex)
            } else {
                VrrpSocket::open_v4(name, ifindex)
            };
            let socket = Arc::new(opened.map_err(|source| Error::Socket {
                name: name.to_owned(),
                source,
            })?);
            spawn_receiver(
                index,
                false,
                name.to_owned(),
                Arc::clone(&socket),
                self.datagrams.clone(),
            );
            *slot = Some(socket);
        }
        Ok(index)
    }

    /// Everything an instance needs that can fail (its interface and socket, its advert
    /// source, its virtual MAC), made without touching a running instance, so a reload can
    /// check every new instance before it changes anything.
    async fn prepare(&mut self, instance: &VrrpInstance) -> Result<Prepared, Error> {
        let ipv6 = instance.is_ipv6();
        // A multicast vmac instance hears its peer on the macvlan (see vmac.rs), not here.
        let on_base = !instance.virtual_mac || !instance.unicast_peers.is_empty();
        let link = self
            .interface(&instance.interface, ipv6, on_base)
            .map_err(|e| Error::Instance {
                instance: instance.name.clone(),
                source: Box::new(e),
            })?;
        let mut placed = Vec::new();
        for vip in instance.all_vips() {
            let on = match &vip.dev {
                Some(dev) if *dev != instance.interface => Some(
                    self.interface(dev, vip.address.addr().is_ipv6(), false)
                        .map_err(|e| Error::Instance {
                            instance: instance.name.clone(),
                            source: Box::new(e),
                        })?,
                ),
                _ => None,
            };
            placed.push((vip, on));
        }
        let core =
            Instance::new(instance_config(instance)?).map_err(|source| Error::InstanceConfig {
                instance: instance.name.clone(),
                source,
            })?;
        // The macvlan of an instance this one replaces has its name: made once that one is gone.
        let vmac_deferred = instance.virtual_mac_name().is_some_and(|name| {
            self.instances
                .iter()
                .any(|r| r.vmac.as_ref().is_some_and(|v| v.link.name == name))
        });
        let vmac = if vmac_deferred {
            None
        } else {
            self.create_vmac(instance, link, core.config().primary_addr)
                .await
                .map_err(|source| Error::Vmac {
                    instance: instance.name.clone(),
                    source,
                })?
        };
        let peers = instance
            .unicast_peers
            .iter()
            .copied()
            .filter(|peer| peer.is_ipv6() == ipv6)
            .collect();
        Ok(Prepared {
            config: instance.clone(),
            core,
            link,
            peers,
            vmac,
            vmac_deferred,
            placed,
        })
    }

    /// Undoes what [`prepare`](Self::prepare) made, for a reload that is refused.
    async fn discard(&mut self, prepared: Prepared) {
        if let Some(made) = prepared.vmac {
            self.remove_vmac(&prepared.config.name, prepared.link, made)
                .await;
        }
    }

    /// Runs a prepared instance: from here it takes part in the election.
    async fn launch(&mut self, prepared: Prepared, now: Instant) -> Result<(), Error> {
        let Prepared {
            config: instance,
            core,
            link,
            peers,
            mut vmac,
            vmac_deferred,
            placed,
        } = prepared;
        if vmac_deferred {
            vmac = self
                .create_vmac(&instance, link, core.config().primary_addr)
                .await
                .map_err(|source| Error::Vmac {
                    instance: instance.name.clone(),
                    source,
                })?;
        }
        let id = self.next_id;
        self.next_id += 1;
        let mut running = Running {
            id,
            tracking: {
                let mut tracking =
                    Tracking::new(&device_tracked(&instance), self.directord_tracking());
                tracking.set_bfd(&self.bfd.up);
                tracking
            },
            scripts: tracking::spawn_scripts(id, &instance, &self.scripts),
            config: instance,
            core,
            link,
            peers,
            counters: Counters::default(),
            metrics: self.metrics.clone(),
            own_fault: false,
            vmac,
            placed,
            pending: None,
            address_generation: 0,
            deferred_garps: 0,
            deferred_notifies: Vec::new(),
        };
        running.metrics.describe(
            &running.config.name,
            &running.config.interface,
            running.config.vrid,
            &running.config.virtual_addresses,
        );
        running
            .metrics
            .set_state(&running.config.name, running.core.state());
        running.tracking.poll();
        if self.forced.contains(&running.config.name) {
            info!(instance = %running.config.name, "forced to BACKUP (lvsadm vrrp release ends it)");
            running.core.set_forced_backup(now, true);
        }
        self.instances.push(running);
        // Tracking first: startup consults the fault, the group's included.
        self.apply_tracking(now);
        if let Some(running) = self.instances.last_mut() {
            running.core.startup(now);
            info!(instance = %running.config.name, "started as {}", running.core.state().as_str());
        }
        Ok(())
    }

    /// Prepares every instance of `wanted`; if any cannot be, undoes the others and says why
    /// for each that failed.
    async fn prepare_all(&mut self, wanted: &[&VrrpInstance]) -> Result<Vec<Prepared>, Error> {
        let mut prepared = Vec::new();
        let mut failed = Vec::new();
        for instance in wanted {
            match self.prepare(instance).await {
                Ok(ready) => prepared.push(ready),
                Err(e) => failed.push(e),
            }
        }
        if failed.is_empty() {
            return Ok(prepared);
        }
        for ready in prepared {
            self.discard(ready).await;
        }
        Err(Error::Prepare(failed))
    }

    /// A reload changed fields of a running instance that do not take part in the election
    /// (notify, tracking, gratuitous ARP): applied as it runs, with no transition.
    fn change_in_place(&mut self, index: usize, new: &VrrpInstance, now: Instant) {
        let directord = self.directord_tracking();
        let running = &mut self.instances[index];
        let old = std::mem::replace(&mut running.config, new.clone());
        if old.garp != new.garp {
            running.core.set_garp(now, garp_config(new));
        }
        let tracking_changed = old.track_interfaces != new.track_interfaces
            || old.track_files != new.track_files
            || old.track_processes != new.track_processes
            || old.track_scripts != new.track_scripts
            || old.track_bfd != new.track_bfd;
        if tracking_changed {
            // A new id: results of the old scripts still on their way belong to no one.
            running.id = self.next_id;
            self.next_id += 1;
            for script in running.scripts.drain(..) {
                script.abort();
            }
            let mut tracking = Tracking::new(&device_tracked(new), directord);
            tracking.carry_over(&running.tracking);
            tracking.poll();
            tracking.set_bfd(&self.bfd.up);
            running.tracking = tracking;
            running.scripts = tracking::spawn_scripts(running.id, new, &self.scripts);
        }
        info!(instance = %new.name, "changed in place, still {}", running.core.state().as_str());
    }

    async fn create_vmac(
        &mut self,
        instance: &VrrpInstance,
        link: usize,
        primary: IpAddr,
    ) -> Result<Option<Vmac>, vmac::VmacError> {
        let Some(name) = instance.virtual_mac_name() else {
            return Ok(None);
        };
        let interface = &mut self.interfaces[link];
        let ll_source = match primary {
            IpAddr::V6(source) => Some(source),
            IpAddr::V4(_) => None,
        };
        if ll_source.is_none() && interface.base_settings.is_none() {
            interface.base_settings = Some(vmac::configure_base(&interface.link.name)?);
        }
        let multicast = instance.unicast_peers.is_empty();
        let created = vmac::create(
            &self.handle,
            &interface.link,
            &name,
            instance.vrid,
            ll_source,
            multicast,
        )
        .await;
        match created {
            Ok(mut made) => {
                if let Some(socket) = &made.socket {
                    made.receiver = Some(spawn_receiver(
                        link,
                        true,
                        name.clone(),
                        Arc::clone(socket),
                        self.datagrams.clone(),
                    ));
                }
                interface.vmacs += 1;
                info!(instance = %instance.name, "virtual MAC {} on {name}", made.link.mac);
                Ok(Some(made))
            }
            Err(e) => {
                self.release_base(link);
                Err(e)
            }
        }
    }

    /// Puts the base interface's ARP settings back once no vmac runs over it.
    fn release_base(&mut self, link: usize) {
        let interface = &mut self.interfaces[link];
        if interface.vmacs == 0
            && let Some(settings) = interface.base_settings.take()
            && let Err(e) = vmac::restore_base(settings)
        {
            warn!("restoring ARP settings of {}: {e}", interface.link.name);
        }
    }

    /// Indices in `instances` of the members of `name`'s sync group, itself included.
    fn group_members(&self, name: &str) -> Vec<usize> {
        let Some(group) = self
            .sync_groups
            .iter()
            .find(|g| g.instances.iter().any(|n| n == name))
        else {
            return Vec::new();
        };
        group
            .instances
            .iter()
            .filter_map(|member| self.instances.iter().position(|r| r.config.name == *member))
            .collect()
    }

    /// Priority and fault of every instance from its tracking, faults spread over sync groups.
    fn apply_tracking(&mut self, now: Instant) {
        let mut priorities = Vec::with_capacity(self.instances.len());
        for index in 0..self.instances.len() {
            let grouped = !self
                .group_members(&self.instances[index].config.name)
                .is_empty();
            let running = &mut self.instances[index];
            let tracked = running.tracking.tracked();
            let tracked = if grouped {
                vrrpd::sync::member_tracking(&tracked)
            } else {
                tracked
            };
            let (priority, fault) = vrrpd::track::evaluate(running.config.priority, &tracked);
            running.own_fault = fault;
            priorities.push(priority);
        }
        for (index, priority) in priorities.into_iter().enumerate() {
            let members = self.group_members(&self.instances[index].config.name);
            let fault = self.instances[index].own_fault
                || vrrpd::sync::group_fault(members.iter().map(|&m| self.instances[m].own_fault));
            let running = &mut self.instances[index];
            if priority != running.core.priority() {
                info!(instance = %running.config.name, "priority {} -> {priority} by tracking", running.core.priority());
            }
            running.core.set_priority(now, priority);
            running
                .metrics
                .set_priority(&running.config.name, running.core.priority());
            running.core.set_fault(now, fault);
        }
    }

    /// Holds every grouped backup whose group is not all ready for mastership, releasing
    /// (and so promoting) the ready ones once it is.
    fn hold_sync_groups(&mut self, now: Instant) {
        for group in &self.sync_groups {
            let members: Vec<usize> = group
                .instances
                .iter()
                .filter_map(|member| self.instances.iter().position(|r| r.config.name == *member))
                .collect();
            let wants: Vec<bool> = members
                .iter()
                .map(|&m| self.instances[m].core.wants_master())
                .collect();
            for (k, &m) in members.iter().enumerate() {
                let others_ready = wants.iter().enumerate().all(|(j, w)| j == k || *w);
                self.instances[m].core.set_master_hold(now, !others_ready);
            }
        }
    }

    /// Carries out every instance's actions, letting sync groups react to the transitions
    /// (and carrying out what that caused) until nothing is left.
    async fn carry_out_all(&mut self) {
        let now = Instant::now();
        loop {
            self.hold_sync_groups(now);
            let mut dropped_to_backup = Vec::new();
            for index in 0..self.instances.len() {
                // The other masters' VIPs cost O(instances x VIPs) to gather: at 255 x 20 it
                // was 1.3 M copies per wake-up when gathered for every instance, every time.
                if !self.instances[index].core.has_actions() {
                    continue;
                }
                let protected = masters_vips(&self.instances, Some(index));
                let running = &mut self.instances[index];
                let transitions = carry_out(
                    running,
                    &mut self.interfaces,
                    &self.vips,
                    &self.events,
                    &protected,
                )
                .await;
                for (old, new) in transitions {
                    notify_in_order(&mut self.notifier, running, old, new);
                    if old == State::Master && new == State::Backup {
                        dropped_to_backup.push(running.config.name.clone());
                    }
                }
            }
            self.notify_groups(None);
            let mut yielded = false;
            for name in dropped_to_backup {
                let members = self.group_members(&name);
                let states: Vec<State> = members
                    .iter()
                    .map(|&m| self.instances[m].core.state())
                    .collect();
                for k in vrrpd::sync::must_yield(State::Master, State::Backup, &states) {
                    let running = &mut self.instances[members[k]];
                    info!(instance = %running.config.name, "sync group: following {name} to BACKUP");
                    running.core.yield_mastership(now);
                    yielded = true;
                }
            }
            if !yielded {
                break;
            }
        }
    }

    /// Once a second: the summaries of rate-limited drop logs, and tracking polled.
    fn tick(&mut self, now: Instant) {
        for ((source, cause), n) in self.rx_logs.summaries(now) {
            log_dropped(
                &source,
                cause,
                &format_args!(
                    "{n} more packets dropped ({cause}) in the last {:?}",
                    ratelimit::DEFAULT_INTERVAL
                ),
            );
        }
        let mut changed = false;
        for running in &mut self.instances {
            changed |= running.tracking.poll();
        }
        if changed {
            self.apply_tracking(now);
        }
    }

    /// Announced VIPs are withdrawn first (the router moves their flows while the rest
    /// stops); every instance leaves (STOP notified), its VIPs, routes and rules removed by the
    /// address task before vrrpd goes on; then the groups.
    async fn stop_all(&mut self) {
        if let Some(announcing) = &mut self.announce {
            announcing.stop(&self.handle).await;
        }
        while !self.instances.is_empty() {
            self.stop(0).await;
        }
        vips::flush(&self.vips).await;
        self.notify_groups(Some(State::Initialize));
        self.notifier.close();
    }

    /// Notifies each sync group whose state changed, from its members' states; `to` forces
    /// one state on every group (STOP, as Initialize, when vrrpd stops).
    fn notify_groups(&mut self, to: Option<State>) {
        for group in &self.sync_groups {
            let members: Vec<State> = group
                .instances
                .iter()
                .filter_map(|m| self.instances.iter().find(|r| r.config.name == *m))
                .map(|r| r.core.state())
                .collect();
            let Some(new) = to.or_else(|| vrrpd::notify::group_state(&members)) else {
                continue;
            };
            let old = self
                .group_states
                .insert(group.name.clone(), new)
                .unwrap_or(State::Initialize);
            if old == new {
                continue;
            }
            info!(group = %group.name, "sync group {} -> {}", old.as_str(), new.as_str());
            let notice = vrrpd::notify::Notice {
                subject: vrrpd::notify::Subject::Group,
                name: &group.name,
                state: new,
                priority: 0,
            };
            self.notifier.notify(
                group.notify_scripts(),
                group.notify.as_deref(),
                old,
                &notice,
            );
        }
    }

    /// The address task added an instance's VIPs: its gratuitous ARPs may go out now, unless
    /// it has left MASTER (or added again) since.
    fn vips_done(&mut self, done: vips::Done) {
        let Some(running) = self.instances.iter_mut().find(|r| r.id == done.instance) else {
            return;
        };
        if running.pending != Some(done.generation) {
            return;
        }
        running.pending = None;
        for _ in 0..std::mem::take(&mut running.deferred_garps) {
            announce(running, &mut self.interfaces);
        }
        for (old, new) in std::mem::take(&mut running.deferred_notifies) {
            notify_instance(&mut self.notifier, running, old, new);
        }
    }

    /// Leaves gracefully: a master sends priority 0 and drops its addresses.
    async fn stop(&mut self, index: usize) {
        let mut running = self.instances.remove(index);
        running.core.shutdown();
        let protected = masters_vips(&self.instances, None);
        let transitions = carry_out(
            &mut running,
            &mut self.interfaces,
            &self.vips,
            &self.events,
            &protected,
        )
        .await;
        for (old, new) in std::mem::take(&mut running.deferred_notifies)
            .into_iter()
            .chain(transitions)
        {
            notify_instance(&mut self.notifier, &running, old, new);
        }
        running
            .metrics
            .forget(&running.config.name, running.counters.drops.keys().cloned());
        if let Some(made) = running.vmac.take() {
            // The VIPs go before their macvlan, or removing them would fail on a missing link.
            vips::flush(&self.vips).await;
            self.remove_vmac(&running.config.name, running.link, made)
                .await;
        }
        info!(instance = %running.config.name, "stopped");
    }

    /// Removes an instance's macvlan (with the VIPs on it), and puts the base interface's ARP
    /// settings back once no vmac runs over it.
    async fn remove_vmac(&mut self, instance: &str, link: usize, made: Vmac) {
        let name = made.link.name.clone();
        if let Err(e) = vmac::remove(&self.handle, made).await {
            warn!(instance, "removing {name}: {e}");
        }
        self.interfaces[link].vmacs -= 1;
        self.release_base(link);
    }

    /// All or nothing: every new or changed instance is prepared (interface, socket, advert
    /// source, virtual MAC) before a running one is touched; if any cannot be, the running
    /// config stays as it was. Then instances whose election settings did not change keep
    /// running, those whose other fields changed (notify, tracking, gratuitous ARP) change in
    /// place, with no transition; changed ones restart, removed ones leave, new ones start.
    async fn reload(&mut self) -> Result<(), Error> {
        let config = lvs_config::load(&self.config_path)?;
        let wanted = &config.vrrp.instance;
        let mut in_place = Vec::new();
        let mut restart = Vec::new();
        let mut to_start = Vec::new();
        for instance in wanted {
            match self
                .instances
                .iter()
                .position(|r| r.config.name == instance.name)
            {
                Some(index) if self.instances[index].config == *instance => {}
                Some(index) if same_election(&self.instances[index].config, instance) => {
                    in_place.push((index, instance));
                }
                Some(index) => {
                    restart.push(index);
                    to_start.push(instance);
                }
                None => to_start.push(instance),
            }
        }
        let prepared = self.prepare_all(&to_start).await?;

        self.apply_realtime(&config.vrrp);
        self.notifier.configure(&config.vrrp);
        self.sync_groups.clone_from(&config.vrrp.sync_group);
        self.configure_directord(&config, false).await;
        self.configure_announce(&config).await;
        self.reload_bfd(&config.bfd.session);
        let now = Instant::now();
        for (index, instance) in in_place {
            self.change_in_place(index, instance, now);
        }
        let gone: Vec<String> = self
            .instances
            .iter()
            .enumerate()
            .filter(|&(i, r)| {
                restart.contains(&i) || !wanted.iter().any(|w| w.name == r.config.name)
            })
            .map(|(_, r)| r.config.name.clone())
            .collect();
        for name in gone {
            if let Some(index) = self.instances.iter().position(|r| r.config.name == name) {
                self.stop(index).await;
            }
        }
        let mut failed = Vec::new();
        for ready in prepared {
            if let Err(e) = self.launch(ready, now).await {
                failed.push(e);
            }
        }
        self.apply_tracking(now);
        if !failed.is_empty() {
            // Only a virtual MAC made after its old instance went can fail here.
            return Err(Error::Prepare(failed));
        }
        info!("reloaded {}", self.config_path.display());
        Ok(())
    }
}

/// Whether two configs of an instance differ at most in what does not take part in the
/// election (notify, tracking, gratuitous ARP), so a reload can change them in place.
fn same_election(old: &VrrpInstance, new: &VrrpInstance) -> bool {
    let mut election = new.clone();
    election.notify.clone_from(&old.notify);
    election.notify_master.clone_from(&old.notify_master);
    election.notify_backup.clone_from(&old.notify_backup);
    election.notify_fault.clone_from(&old.notify_fault);
    election.notify_stop.clone_from(&old.notify_stop);
    election.notify_state.clone_from(&old.notify_state);
    election.garp = old.garp.clone();
    election.track_interfaces.clone_from(&old.track_interfaces);
    election.track_files.clone_from(&old.track_files);
    election.track_processes.clone_from(&old.track_processes);
    election.track_scripts.clone_from(&old.track_scripts);
    election.track_bfd.clone_from(&old.track_bfd);
    // Read when a session goes down, not by the election: adding or dropping it is no reason
    // to leave mastership.
    election.bfd_takeover.clone_from(&old.bfd_takeover);
    election == *old
}

/// An instance ready to run, not yet taking part in the election.
struct Prepared {
    config: VrrpInstance,
    core: Instance,
    link: usize,
    peers: Vec<IpAddr>,
    vmac: Option<Vmac>,
    /// The macvlan's name is held by the instance this one replaces: made at launch.
    vmac_deferred: bool,
    placed: Vec<(Vip, Option<usize>)>,
}

/// `vrrpd --release-vips`: what a stopping master does to its interfaces, for a run that could
/// not (kill -9, OOM, watchdog abort), so the unit's `ExecStopPost=` leaves no VIP behind.
/// Every instance's VIPs go from its interface, and its macvlan (with the VIPs on it) when it
/// has a virtual MAC. A clean stop already released them (systemd says `SERVICE_RESULT=success`),
/// and the peer may hold them by now: then nothing is done.
pub async fn release_vips(config: Config, _config_path: PathBuf) -> Result<(), Error> {
    if std::env::var("SERVICE_RESULT").is_ok_and(|result| result == "success") {
        return Ok(());
    }
    let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::Rtnetlink)?;
    tokio::spawn(connection);
    let mut failed = Vec::new();
    for instance in &config.vrrp.instance {
        if let Some(name) = instance.virtual_mac_name() {
            match vmac::remove_stale(&handle, &name).await {
                Ok(true) => info!(instance = %instance.name, "removed macvlan {name}"),
                Ok(false) => {}
                Err(source) => failed.push(ReleaseFailure::Macvlan {
                    instance: instance.name.clone(),
                    name,
                    source,
                }),
            }
        }
        routes::remove(&handle, &instance.name, &instance.routes, &instance.rules).await;
        for vip in instance.all_vips() {
            let interface = vip.dev.as_deref().unwrap_or(&instance.interface);
            // An interface that is gone took its addresses with it.
            let Some(index) = link::index_of(interface) else {
                continue;
            };
            match link::del_address(&handle, index, vip.address.addr(), vip.address.prefix_len())
                .await
            {
                Ok(removed) => {
                    if removed > 0 {
                        info!(instance = %instance.name, "removed {} from {interface}", vip.address);
                    }
                }
                Err(source) => failed.push(ReleaseFailure::Address {
                    instance: instance.name.clone(),
                    vip: vip.address,
                    source,
                }),
            }
        }
    }
    if let Some(wanted) = &config.announce {
        match announce::sweep(&handle, wanted.protocol).await {
            Ok(0) => {}
            Ok(n) => info!(
                "removed {n} announced routes of protocol {}",
                wanted.protocol
            ),
            Err(source) => failed.push(ReleaseFailure::Announce(source)),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Release(failed))
    }
}

pub async fn run(config: Config, config_path: PathBuf) -> Result<(), Error> {
    if config.vrrp.instance.is_empty() && config.announce.is_none() {
        return Err(Error::NoInstances);
    }
    // Before any real-time running: the kernel's warning at half of rlimit_rttime (SIGXCPU)
    // would otherwise end vrrpd.
    let mut rttime = signal(SignalKind::from_raw(libc::SIGXCPU)).map_err(SetupError::Signal)?;
    let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::Rtnetlink)?;
    tokio::spawn(connection);
    let (vips, mut vips_done) = vips::spawn().map_err(Error::Rtnetlink)?;
    let (datagram_tx, mut datagrams) = mpsc::channel::<Datagram>(256);
    let (script_tx, mut script_results) = mpsc::channel::<ScriptResult>(64);
    let (directord_tx, mut directord_results) = mpsc::channel(4);
    let (events, _) = broadcast::channel(64);
    let metrics = Metrics::new();
    let (bfd, mut bfd_changes) = bfd_sessions::Sessions::new(&metrics.registry());
    let mut daemon = Daemon {
        config_path,
        sync_groups: config.vrrp.sync_group.clone(),
        handle,
        vips,
        interfaces: Vec::new(),
        instances: Vec::new(),
        next_id: 0,
        datagrams: datagram_tx,
        scripts: script_tx,
        events: events.clone(),
        metrics: metrics.clone(),
        realtime: realtime::Applied::default(),
        directord: None,
        directord_results: directord_tx,
        rx_logs: Repeats::new(ratelimit::DEFAULT_INTERVAL),
        notifier: Notifier::new(metrics),
        group_states: BTreeMap::new(),
        forced: forced::Forced::load_reporting(&config.control.state_dir),
        announce: None,
        bfd,
    };
    daemon.apply_realtime(&config.vrrp);
    daemon
        .bfd
        .start(&config.bfd.session, daemon.realtime.priority())?;
    daemon.notifier.configure(&config.vrrp);
    daemon.configure_directord(&config, true).await;
    daemon.configure_announce(&config).await;
    daemon.launch_all(&config.vrrp.instance).await?;

    let mut terminate = signal(SignalKind::terminate()).map_err(SetupError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(SetupError::Signal)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(SetupError::Signal)?;
    let lvs_control::daemon::ControlSocket {
        mut requests,
        shutdown,
        path: socket_path,
    } = lvs_control::daemon::serve_control::<Request, Status, _>(&config.control, "vrrpd", events)?;
    serve_metrics(&config, &daemon.metrics, &shutdown).await?;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let mut watchdog = lvs_control::daemon::Watchdog::from_env();

    let mut poll_tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let timer = PreciseTimer::new().map_err(Error::Timer)?;
    loop {
        daemon.carry_out_all().await;
        let deadline = daemon
            .instances
            .iter()
            .filter_map(|r| r.core.poll_timeout())
            .min();
        let sleep = sleep_until(&timer, deadline);
        tokio::select! {
            () = sleep => {
                let now = Instant::now();
                for running in &mut daemon.instances {
                    running.core.handle_timeout(now);
                }
            }
            Some(datagram) = datagrams.recv() => {
                dispatch(&mut daemon, &datagram);
            }
            Some(done) = vips_done.recv() => daemon.vips_done(done),
            Some(change) = bfd_changes.recv() => daemon.bfd_changed(change),
            _ = poll_tick.tick() => daemon.tick(Instant::now()),
            Some(result) = directord_results.recv() => {
                daemon.directord_probed(&result, Instant::now());
                daemon.update_announce().await;
            }
            Some(result) = script_results.recv() => {
                if let Some(running) = daemon.instances.iter_mut().find(|r| r.id == result.instance)
                    && running.tracking.script_result(result.script, result.success)
                {
                    daemon.apply_tracking(Instant::now());
                }
            }
            Some(incoming) = requests.recv() => daemon.answer(incoming).await,
            _ = hangup.recv() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
                if let Err(e) = daemon.reload().await {
                    error!("reload refused, keeping the running config:\n{e}");
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = rttime.recv() => {
                warn!(
                    "vrrpd ran half its rlimit_rttime at real-time priority without blocking; at the whole it is killed"
                );
                daemon.metrics.scheduling("rttime_soft_limit");
            }
            () = watchdog.ping_when_due() => {}
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }

    daemon.stop_all().await;
    shutdown.cancel();
    let _ = std::fs::remove_file(&socket_path);
    Ok(())
}

impl Daemon {
    fn force_backup(
        &mut self,
        name: &str,
        forced: bool,
        now: Instant,
    ) -> Result<(), forced::ForceError> {
        let instances: Vec<&str> = self
            .instances
            .iter()
            .map(|r| r.config.name.as_str())
            .collect();
        let groups: Vec<(&str, &[String])> = self
            .sync_groups
            .iter()
            .map(|g| (g.name.as_str(), g.instances.as_slice()))
            .collect();
        let members = forced::Forced::resolve(name, &instances, &groups)?;
        self.forced.set(&members, forced)?;
        for running in &mut self.instances {
            if members.contains(&running.config.name) {
                let verb = if forced {
                    "forced to BACKUP"
                } else {
                    "released"
                };
                info!(instance = %running.config.name, "{verb} by the operator");
                running.core.set_forced_backup(now, forced);
            }
        }
        Ok(())
    }
}

/// Prometheus and /status.json on `control.metrics` (vrrpd's port: the base + 1), when
/// configured.
async fn serve_metrics(
    config: &Config,
    metrics: &Metrics,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<(), Error> {
    let Some(base) = config.control.metrics else {
        return Ok(());
    };
    let routes = lvs_control::http::Routes::new(metrics.registry()).with_daemon_status(
        &config.control,
        "vrrpd",
        &lvs_control::vrrpd::Request::Status,
    );
    lvs_control::http::start(base, "vrrpd", routes, shutdown.clone()).await?;
    Ok(())
}

/// Until the earliest instance timer (never without one), on the precise timer if it works.
async fn sleep_until(timer: &PreciseTimer, deadline: Option<Instant>) {
    match deadline {
        Some(at) => {
            if let Err(e) = timer.sleep_until(at).await {
                warn!("timerfd: {e}; falling back to tokio's timer");
                tokio::time::sleep_until(at.into()).await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Reads one interface's socket in its own task, so the main loop waits on a single channel.
/// `link` is the base interface's index, also for a vmac's socket (`via_vmac`).
fn spawn_receiver(
    link: usize,
    via_vmac: bool,
    name: String,
    socket: Arc<VrrpSocket>,
    tx: mpsc::Sender<Datagram>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut errors = Repeats::new(ratelimit::DEFAULT_INTERVAL);
        loop {
            match socket.recv(&mut buf).await {
                Ok(received) => {
                    let datagram = Datagram {
                        link,
                        via_vmac,
                        ip: received.ip,
                        ttl: received.ttl,
                        payload: received.payload.to_vec(),
                        arrived: received.arrived,
                    };
                    if tx.send(datagram).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let now = Instant::now();
                    for (kind, n) in errors.summaries(now) {
                        warn!("receive on {name}: {n} more errors ({kind}) not logged");
                    }
                    if let Some(unlogged) = errors.hit(e.kind(), now) {
                        warn!("receive on {name}: {e}{}", unlogged_note(unlogged));
                    }
                }
            }
        }
    })
}

struct Datagram {
    link: usize,
    via_vmac: bool,
    ip: IpPair,
    ttl: u8,
    payload: Vec<u8>,
    arrived: Instant,
}

fn dispatch(daemon: &mut Daemon, datagram: &Datagram) {
    let (link, ip, payload) = (datagram.link, datagram.ip, &datagram.payload[..]);
    let interface = &mut daemon.interfaces[link];
    let vrid = match Packet::new_checked(payload) {
        Ok(packet) => packet.vrid(),
        Err(e) => {
            interface.dropped(e.as_str());
            let message = format_args!("malformed VRRP packet from {}: {e}", ip.src());
            rx_log(
                &mut daemon.rx_logs,
                &interface.link.name,
                e.as_str(),
                &message,
            );
            return;
        }
    };
    // The same VRID over IPv4 and IPv6 are two different virtual routers (RFC 5798 5.2.3).
    let ipv6 = !ip.is_ipv4();
    let Some(running) = daemon
        .instances
        .iter_mut()
        .find(|r| r.link == link && r.config.vrid == vrid && r.config.is_ipv6() == ipv6)
    else {
        // RFC 3768 7.1: a VRID not configured here is discarded (and may be counted).
        interface.dropped("vrid_mismatch");
        let message = format_args!("advert for VRID {vrid} from {}: not ours", ip.src());
        rx_log(
            &mut daemon.rx_logs,
            &interface.link.name,
            "vrid_mismatch",
            &message,
        );
        return;
    };
    // A vmac instance hears its peer on the macvlan; a copy on the base (there for another
    // instance) is not its to count.
    if running.vmac.as_ref().is_some_and(|v| v.socket.is_some()) != datagram.via_vmac {
        return;
    }
    if !running.peers.is_empty() && !running.peers.contains(&ip.src()) {
        running.dropped("unknown_peer");
        let message = format_args!("advert from {}, not a configured peer", ip.src());
        rx_log(
            &mut daemon.rx_logs,
            &running.config.name,
            "unknown_peer",
            &message,
        );
        return;
    }
    match rx::validate(payload, &ip, datagram.ttl, running.core.config()) {
        Ok(valid) => {
            running.counters.adverts_received += 1;
            running
                .metrics
                .advert_received(&running.config.name, valid.repr.priority);
            if valid.address_mismatch {
                // Accepted as keepalived does, but counted: the two configs disagree.
                let cause = "address_list_mismatch_accepted";
                running.dropped(cause);
                let message = format_args!(
                    "advert from {} lists other addresses than ours (accepted)",
                    ip.src()
                );
                rx_log(&mut daemon.rx_logs, &running.config.name, cause, &message);
            }
            // The timers an advert resets run from its arrival: the wait for this task and the
            // main loop to be scheduled must not lengthen a backup's Master_Down.
            running
                .core
                .handle_advert(datagram.arrived, &valid.advert());
        }
        Err(reject) => {
            running.dropped(reject.as_str());
            let message = format_args!("dropped advert from {}: {reject}", ip.src());
            rx_log(
                &mut daemon.rx_logs,
                &running.config.name,
                reject.as_str(),
                &message,
            );
        }
    }
}

/// Logs a dropped packet of `source` (an instance, or an interface when no instance can be
/// charged with it) if it is the first of its cause in the current interval; the counters
/// have it anyway.
fn rx_log(
    repeats: &mut Repeats<(String, &'static str)>,
    source: &str,
    cause: &'static str,
    message: &std::fmt::Arguments<'_>,
) {
    if let Some(unlogged) = repeats.hit((source.to_owned(), cause), Instant::now()) {
        log_dropped(
            source,
            cause,
            &format_args!(
                "{message}{}; more of these are counted and summed every {:?}",
                unlogged_note(unlogged),
                ratelimit::DEFAULT_INTERVAL
            ),
        );
    }
}

/// Adverts for other VRIDs are normal on a LAN other routers share: said at debug level only.
/// Every other drop means a misconfigured or hostile peer: a warning.
fn log_dropped(source: &str, cause: &str, message: &std::fmt::Arguments<'_>) {
    if cause == "vrid_mismatch" {
        debug!("{source}: {message}");
    } else {
        warn!("{source}: {message}");
    }
}

fn unlogged_note(unlogged: u64) -> String {
    if unlogged == 0 {
        String::new()
    } else {
        format!(" ({unlogged} more before this were not logged)")
    }
}

fn status(daemon: &Daemon) -> Status {
    let interfaces = &daemon.interfaces;
    let instances = daemon
        .instances
        .iter()
        .map(|running| InstanceStatus {
            name: running.config.name.clone(),
            interface: interfaces[running.link].link.name.clone(),
            vrid: running.config.vrid,
            state: running.core.state().as_str().to_owned(),
            configured_priority: running.config.priority,
            priority: running.core.priority(),
            master: running.core.master_addr(),
            // Every address held while master, the `vips` (other devices, excluded) too.
            virtual_addresses: running
                .placed
                .iter()
                .map(|(vip, _)| vip.address.to_string())
                .collect(),
            counters: running.counters.clone(),
            forced_backup: running.core.forced_backup(),
        })
        .collect();
    let interfaces = interfaces
        .iter()
        .map(|interface| InterfaceStatus {
            name: interface.link.name.clone(),
            drops: interface.drops.clone(),
        })
        .collect();
    let directord = daemon.directord.as_ref().map(|watch| DirectordStatus {
        up: watch.up,
        weight: watch.settings.weight,
        checks: watch.checks.clone(),
        last_error: watch.last_error.clone(),
    });
    Status {
        instances,
        interfaces,
        directord,
        announce: daemon.announce.as_ref().map(announce::Announcing::status),
        bfd: daemon.bfd.status(),
    }
}

/// The VIPs, by base interface, of every MASTER instance but `except`: an instance removing
/// its addresses (on entering BACKUP or FAULT, maybe without ever having added them) must not
/// take one a master holds.
fn masters_vips(instances: &[Running], except: Option<usize>) -> Vec<(usize, IpAddr)> {
    instances
        .iter()
        .enumerate()
        .filter(|&(i, r)| Some(i) != except && r.core.state() == State::Master)
        .flat_map(|(_, r)| {
            r.placed
                .iter()
                .map(|(vip, on)| (on.unwrap_or(r.link), vip.address.addr()))
        })
        .collect()
}

/// The instance with the devices of its VIPs and routes among its tracked interfaces, as
/// keepalived tracks them (see [`VrrpInstance::device_tracking`]).
fn device_tracked(instance: &VrrpInstance) -> VrrpInstance {
    let mut tracked = instance.clone();
    tracked.track_interfaces.extend(instance.device_tracking());
    tracked
}

/// Where a VIP goes: its own `dev`, else the instance's macvlan or interface.
fn vip_link<'a>(running: &'a Running, interfaces: &'a [Interface], on: Option<usize>) -> &'a Link {
    match on {
        Some(index) => &interfaces[index].link,
        None => running
            .vmac
            .as_ref()
            .map_or(&interfaces[running.link].link, |v| &v.link),
    }
}

/// Asks the address task to add every VIP on its own link, then the routes and rules; the
/// gratuitous ARPs wait for its answer ([`Daemon::vips_done`]).
fn add_vips(
    running: &mut Running,
    interfaces: &[Interface],
    vips: &mpsc::UnboundedSender<vips::Job>,
) {
    let generation = next_address_job(running);
    let placed = running
        .placed
        .iter()
        .map(|(vip, on)| (vip.clone(), target(vip_link(running, interfaces, *on))))
        .collect();
    let config = &running.config;
    let _ = vips.send(vips::Job::Add {
        instance: running.id,
        generation,
        name: config.name.clone(),
        vips: placed,
        routes: config.routes.clone(),
        rules: config.rules.clone(),
    });
}

/// Asks the address task to remove the routes and rules, then the VIPs (but those in
/// `protected`, a master's) wherever they are. A vmac instance's VIPs live on the macvlan;
/// the base is swept too, for a crashed run that had no virtual MAC.
fn remove_vips(
    running: &mut Running,
    interfaces: &[Interface],
    vips: &mpsc::UnboundedSender<vips::Job>,
    protected: &[(usize, IpAddr)],
) {
    // Leaving MASTER: ARPs still waiting for the addresses must not go out.
    running.deferred_garps = 0;
    let generation = next_address_job(running);
    let placed = running
        .placed
        .iter()
        .filter(|(vip, on)| !protected.contains(&(on.unwrap_or(running.link), vip.address.addr())))
        .map(|(vip, on)| {
            let base = on.map_or(&interfaces[running.link].link, |i| &interfaces[i].link);
            let vmac = running
                .vmac
                .as_ref()
                .filter(|_| on.is_none())
                .map(|v| &v.link);
            let links = std::iter::once(base).chain(vmac).map(target).collect();
            (vip.clone(), links)
        })
        .collect();
    let config = &running.config;
    let _ = vips.send(vips::Job::Remove {
        instance: running.id,
        generation,
        name: config.name.clone(),
        vips: placed,
        routes: config.routes.clone(),
        rules: config.rules.clone(),
    });
}

fn target(link: &Link) -> vips::Target {
    vips::Target {
        index: link.index,
        name: link.name.clone(),
    }
}

/// Gratuitous ARP (IPv6: unsolicited NA) for every VIP from the link that holds it; from the
/// vmac, the frames carry the virtual MAC as source and sender.
fn announce(running: &mut Running, interfaces: &mut [Interface]) {
    let primary = running.core.config().primary_addr;
    // Whether the instance's own link forwards IPv6 (the NA's router flag), read once per
    // burst, not per VIP; a VIP on another device reads its own.
    let own_router = primary.is_ipv6()
        && match &running.vmac {
            Some(vmac) => vmac.link.forwards_v6(),
            None => interfaces[running.link].link.forwards_v6(),
        };
    for (vip, on) in &running.placed {
        let link = match (on, &mut running.vmac) {
            (Some(index), _) => &mut interfaces[*index].link,
            (None, Some(vmac)) => &mut vmac.link,
            (None, None) => &mut interfaces[running.link].link,
        };
        let sent = match (vip.address.addr(), primary) {
            (IpAddr::V4(v4), _) => link.gratuitous_arp(v4),
            (IpAddr::V6(v6), _) if on.is_some() => match link::link_local_ipv6(&link.name) {
                Some(source) => {
                    let router = link.forwards_v6();
                    link.unsolicited_na(source, v6, router)
                }
                None => continue,
            },
            (IpAddr::V6(v6), IpAddr::V6(source)) => link.unsolicited_na(source, v6, own_router),
            (IpAddr::V6(_), IpAddr::V4(_)) => continue,
        };
        if let Err(e) = sent {
            warn!(instance = %running.config.name, "announcing {}: {e}", vip.address);
        }
    }
}

/// The generation of an address job about to be sent; the instance's ARPs and notifies wait
/// for it, and an earlier job's answer no longer counts.
fn next_address_job(running: &mut Running) -> u64 {
    running.address_generation += 1;
    running.pending = Some(running.address_generation);
    running.address_generation
}

/// A transition's notifies, in the order they happened, each once the address job its
/// transition sent is done ([`Daemon::vips_done`] runs them).
fn notify_in_order(notifier: &mut Notifier, running: &mut Running, old: State, new: State) {
    if running.pending.is_some() {
        running.deferred_notifies.push((old, new));
        return;
    }
    for (old, new) in std::mem::take(&mut running.deferred_notifies) {
        notify_instance(notifier, running, old, new);
    }
    notify_instance(notifier, running, old, new);
}

/// keepalived's notifies for an instance's transition, with its effective priority.
fn notify_instance(notifier: &mut Notifier, running: &Running, old: State, new: State) {
    let notice = vrrpd::notify::Notice {
        subject: vrrpd::notify::Subject::Instance,
        name: &running.config.name,
        state: new,
        priority: running.core.priority(),
    };
    notifier.notify(
        running.config.notify_scripts(),
        running.config.notify.as_deref(),
        old,
        &notice,
    );
}

async fn carry_out(
    running: &mut Running,
    interfaces: &mut [Interface],
    vips: &mpsc::UnboundedSender<vips::Job>,
    events: &broadcast::Sender<Event>,
    protected: &[(usize, IpAddr)],
) -> Vec<(State, State)> {
    let mut transitions = Vec::new();
    while let Some(action) = running.core.poll_action() {
        let interface = &mut interfaces[running.link];
        match action {
            Action::StateChanged { old, new } => {
                transitions.push((old, new));
                running.counters.transitions += 1;
                running.metrics.transition(&running.config.name, old, new);
                if new == State::Master {
                    running.counters.became_master += 1;
                }
                info!(instance = %running.config.name, "{} -> {}", old.as_str(), new.as_str());
                let _ = events.send(Event::State {
                    instance: running.config.name.clone(),
                    old: old.as_str().to_owned(),
                    new: new.as_str().to_owned(),
                });
            }
            Action::SendAdvert { priority } => {
                let repr = running.core.advert(priority);
                let src = running.core.config().primary_addr;
                let socket = match running.vmac.as_ref().and_then(|v| v.socket.as_ref()) {
                    Some(socket) => Some(socket),
                    None if src.is_ipv4() => interface.v4.as_ref(),
                    None => interface.v6.as_ref(),
                };
                let Some(socket) = socket else { continue };
                let destinations = if running.peers.is_empty() {
                    vec![if src.is_ipv4() {
                        IpAddr::V4(VRRP_GROUP_V4)
                    } else {
                        IpAddr::V6(VRRP_GROUP_V6)
                    }]
                } else {
                    running.peers.clone()
                };
                for dst in destinations {
                    let Some(ip) = IpPair::new(src, dst) else {
                        continue;
                    };
                    let mut bytes = vec![0u8; repr.buffer_len()];
                    repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), &ip);
                    match socket.send(&bytes, src, dst) {
                        Ok(()) => {
                            running.counters.adverts_sent += 1;
                            running.metrics.advert_sent(&running.config.name, priority);
                        }
                        Err(e) => warn!(instance = %running.config.name, "advert to {dst}: {e}"),
                    }
                }
            }
            Action::AddVips => {
                add_vips(running, interfaces, vips);
            }
            Action::RemoveVips => remove_vips(running, interfaces, vips, protected),
            Action::SendGratuitousArp { .. } if running.pending.is_some() => {
                running.deferred_garps += 1;
            }
            Action::SendGratuitousArp { .. } => announce(running, interfaces),
        }
    }
    transitions
}

fn instance_config(instance: &VrrpInstance) -> Result<InstanceConfig, Error> {
    let version = if instance.version == 3 {
        Version::V3
    } else {
        Version::V2
    };
    let primary_addr = match instance.source_address {
        Some(addr) => addr,
        None if instance.is_ipv6() => link::link_local_ipv6(&instance.interface)
            .map(IpAddr::V6)
            .ok_or_else(|| Error::NoLinkLocal {
                instance: instance.name.clone(),
                interface: instance.interface.clone(),
            })?,
        None => link::primary_ipv4(&instance.interface)
            .map(IpAddr::V4)
            .ok_or_else(|| Error::NoIpv4 {
                instance: instance.name.clone(),
                interface: instance.interface.clone(),
            })?,
    };
    let auth = match &instance.auth {
        None | Some(ConfigAuth::None) => Auth::None,
        Some(ConfigAuth::Pass { password }) => {
            Auth::simple(password).ok_or_else(|| Error::PasswordTooLong(instance.name.clone()))?
        }
    };
    let garp = garp_config(instance);
    Ok(InstanceConfig {
        vrid: instance.vrid,
        version,
        priority: instance.priority,
        advert_interval: instance.advert_interval.get(),
        preempt: instance.preempt,
        preempt_delay: instance.preempt_delay.get(),
        primary_addr,
        vips: instance.advertised().map(|net| net.addr()).collect(),
        auth,
        garp,
    })
}

fn garp_config(instance: &VrrpInstance) -> GarpConfig {
    GarpConfig {
        repeat: instance.garp.repeat,
        spacing: instance.garp.spacing.get(),
        delay: Some(instance.garp.delay.get()).filter(|d| !d.is_zero()),
        refresh: instance.garp.refresh.map(lvs_config::Duration::get),
        lower_prio_repeat: instance
            .garp
            .lower_prio_repeat
            .unwrap_or(instance.garp.repeat),
        lower_prio_delay: Some(
            instance
                .garp
                .lower_prio_delay
                .unwrap_or(instance.garp.delay)
                .get(),
        )
        .filter(|d| !d.is_zero()),
        ..GarpConfig::default()
    }
}
