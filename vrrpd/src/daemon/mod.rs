//! The tokio shell around the sans-IO [`vrrpd::instance::Instance`]: sockets, addresses,
//! gratuitous ARP, notify hooks and signals. IPv4 instances (VRRPv2 and v3), multicast or
//! unicast peers.

mod link;
mod socket;
mod tracking;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use lvs_config::{Auth as ConfigAuth, Config, VrrpInstance};
use lvs_control::Incoming;
use lvs_control::vrrpd::{Counters, Event, InstanceStatus, Request, Status};
use rtnetlink::Handle;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vrrpd::instance::{Action, GarpConfig, Instance, InstanceConfig, State};
use vrrpd::rx::{self, Reject};
use vrrpd::wire::{Auth, IpPair, Packet, VRRP_GROUP_V4, Version};

use link::Link;
use socket::VrrpSocket;
use tracking::{ScriptResult, Tracking};

struct Running {
    config: VrrpInstance,
    core: Instance,
    tracking: Tracking,
    link: usize,
    peers: Vec<Ipv4Addr>,
    counters: Counters,
}

struct Interface {
    link: Link,
    socket: Arc<VrrpSocket>,
}

pub async fn run(config: Config) -> Result<(), String> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("rtnetlink: {e}"))?;
    tokio::spawn(connection);

    let mut interfaces: Vec<Interface> = Vec::new();
    let mut instances = Vec::new();
    for instance in &config.vrrp.instance {
        let link = match interfaces
            .iter()
            .position(|i| i.link.name == instance.interface)
        {
            Some(index) => index,
            None => {
                let link = Link::open(&instance.interface).map_err(|e| {
                    format!("{}: interface {}: {e}", instance.name, instance.interface)
                })?;
                let socket = VrrpSocket::open_v4(&link.name, link.index).map_err(|e| {
                    format!(
                        "{}: VRRP socket on {}: {e}",
                        instance.name, instance.interface
                    )
                })?;
                interfaces.push(Interface {
                    link,
                    socket: Arc::new(socket),
                });
                interfaces.len() - 1
            }
        };
        let core = Instance::new(instance_config(instance)?)
            .map_err(|e| format!("{}: {e}", instance.name))?;
        let peers = instance
            .unicast_peers
            .iter()
            .filter_map(|peer| match peer {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .collect();
        instances.push(Running {
            config: instance.clone(),
            core,
            tracking: Tracking::new(instance),
            link,
            peers,
            counters: Counters::default(),
        });
    }
    if instances.is_empty() {
        return Err("no [[vrrp.instance]] in the config: nothing to do".to_owned());
    }

    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let (script_tx, mut script_results) = mpsc::channel::<ScriptResult>(64);
    let now = Instant::now();
    for (index, running) in instances.iter_mut().enumerate() {
        tracking::spawn_scripts(index, &running.config, &script_tx);
        running.tracking.poll();
        apply_tracking(running, now);
        running.core.startup(now);
        info!(instance = %running.config.name, "started as {}", running.core.state().as_str());
    }

    let (events, _) = broadcast::channel(64);
    let socket_path = lvs_control::socket_path(&config.control.socket_dir, "vrrpd");
    let listener = lvs_control::bind(&socket_path)
        .map_err(|e| format!("control socket {}: {e}", socket_path.display()))?;
    let shutdown = CancellationToken::new();
    let (requests_tx, mut requests) = mpsc::channel::<Incoming<Request, Status>>(16);
    tokio::spawn(lvs_control::serve(
        listener,
        requests_tx,
        events.clone(),
        shutdown.clone(),
    ));

    let mut datagrams = spawn_receivers(&interfaces);
    let mut poll_tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        for running in &mut instances {
            carry_out(running, &mut interfaces, &handle, &events).await;
        }
        let deadline = instances.iter().filter_map(|r| r.core.poll_timeout()).min();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {
                let now = Instant::now();
                for running in &mut instances {
                    running.core.handle_timeout(now);
                }
            }
            Some(datagram) = datagrams.recv() => {
                dispatch(&mut instances, datagram.link, datagram.ip, datagram.ttl, &datagram.payload);
            }
            _ = poll_tick.tick() => {
                let now = Instant::now();
                for running in &mut instances {
                    if running.tracking.poll() {
                        apply_tracking(running, now);
                    }
                }
            }
            Some(result) = script_results.recv() => {
                if let Some(running) = instances.get_mut(result.instance)
                    && running.tracking.script_result(result.script, result.success)
                {
                    apply_tracking(running, Instant::now());
                }
            }
            Some(incoming) = requests.recv() => {
                let Request::Status = incoming.request;
                incoming.reply(Ok(status(&instances, &interfaces)));
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }

    // Leaving: a master says priority 0 so the backup takes over after skew time only.
    for running in &mut instances {
        running.core.shutdown();
        carry_out(running, &mut interfaces, &handle, &events).await;
        info!(instance = %running.config.name, "stopped");
    }
    shutdown.cancel();
    let _ = std::fs::remove_file(&socket_path);
    Ok(())
}

/// One task per interface reads its socket, so the main loop waits on a single channel.
fn spawn_receivers(interfaces: &[Interface]) -> mpsc::Receiver<Datagram> {
    let (tx, rx) = mpsc::channel(256);
    for (link, interface) in interfaces.iter().enumerate() {
        let socket = Arc::clone(&interface.socket);
        let name = interface.link.name.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                match socket.recv(&mut buf).await {
                    Ok(received) => {
                        let datagram = Datagram {
                            link,
                            ip: received.ip,
                            ttl: received.ttl,
                            payload: received.payload.to_vec(),
                        };
                        if tx.send(datagram).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => warn!("receive on {name}: {e}"),
                }
            }
        });
    }
    rx
}

struct Datagram {
    link: usize,
    ip: IpPair,
    ttl: u8,
    payload: Vec<u8>,
}

fn dispatch(instances: &mut [Running], link: usize, ip: IpPair, ttl: u8, payload: &[u8]) {
    let vrid = match Packet::new_checked(payload) {
        Ok(packet) => packet.vrid(),
        Err(e) => {
            count_drop(instances.iter_mut().find(|r| r.link == link), e.as_str());
            debug!("malformed VRRP packet from {}: {e}", ip.src());
            return;
        }
    };
    let Some(running) = instances
        .iter_mut()
        .find(|r| r.link == link && r.config.vrid == vrid)
    else {
        // Another router's VRID on our link; not ours to judge.
        return;
    };
    if !running.peers.is_empty()
        && !running
            .peers
            .iter()
            .any(|peer| IpAddr::V4(*peer) == ip.src())
    {
        count_drop(Some(running), "unknown_peer");
        return;
    }
    match rx::validate(payload, &ip, ttl, running.core.config()) {
        Ok(valid) => {
            running.counters.adverts_received += 1;
            if valid.address_mismatch {
                // Accepted as keepalived does, but counted: the two configs disagree.
                *running
                    .counters
                    .drops
                    .entry("address_list_mismatch_accepted".to_owned())
                    .or_default() += 1;
                debug!(instance = %running.config.name, "advert from {} lists other addresses", ip.src());
            }
            running.core.handle_advert(Instant::now(), &valid.advert());
        }
        Err(reject) => {
            log_reject(&running.config.name, ip.src(), &reject);
            count_drop(Some(running), reject.as_str());
        }
    }
}

fn log_reject(instance: &str, src: IpAddr, reject: &Reject) {
    debug!(instance, "dropped advert from {src}: {reject}");
}

fn count_drop(running: Option<&mut Running>, cause: &str) {
    if let Some(running) = running {
        *running.counters.drops.entry(cause.to_owned()).or_default() += 1;
    }
}

fn apply_tracking(running: &mut Running, now: Instant) {
    let (priority, fault) =
        vrrpd::track::evaluate(running.config.priority, &running.tracking.tracked());
    if priority != running.core.priority() {
        info!(instance = %running.config.name, "priority {} -> {priority} by tracking", running.core.priority());
    }
    running.core.set_priority(now, priority);
    running.core.set_fault(now, fault);
}

fn status(instances: &[Running], interfaces: &[Interface]) -> Status {
    let instances = instances
        .iter()
        .map(|running| InstanceStatus {
            name: running.config.name.clone(),
            interface: interfaces[running.link].link.name.clone(),
            vrid: running.config.vrid,
            state: running.core.state().as_str().to_owned(),
            configured_priority: running.config.priority,
            priority: running.core.priority(),
            master: running.core.master_addr(),
            virtual_addresses: running
                .config
                .virtual_addresses
                .iter()
                .map(ToString::to_string)
                .collect(),
            counters: running.counters.clone(),
        })
        .collect();
    Status { instances }
}

async fn carry_out(
    running: &mut Running,
    interfaces: &mut [Interface],
    handle: &Handle,
    events: &broadcast::Sender<Event>,
) {
    while let Some(action) = running.core.poll_action() {
        let interface = &mut interfaces[running.link];
        match action {
            Action::StateChanged { old, new } => {
                running.counters.transitions += 1;
                if new == State::Master {
                    running.counters.became_master += 1;
                }
                info!(instance = %running.config.name, "{} -> {}", old.as_str(), new.as_str());
                let _ = events.send(Event::State {
                    instance: running.config.name.clone(),
                    old: old.as_str().to_owned(),
                    new: new.as_str().to_owned(),
                });
                notify(&running.config, old, new);
            }
            Action::SendAdvert { priority } => {
                let repr = running.core.advert(priority);
                let src = match running.core.config().primary_addr {
                    IpAddr::V4(v4) => v4,
                    IpAddr::V6(_) => continue,
                };
                let destinations = if running.peers.is_empty() {
                    vec![VRRP_GROUP_V4]
                } else {
                    running.peers.clone()
                };
                for dst in destinations {
                    let ip = IpPair::V4 { src, dst };
                    let mut bytes = vec![0u8; repr.buffer_len()];
                    repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), &ip);
                    match interface.socket.send_v4(&bytes, dst) {
                        Ok(()) => running.counters.adverts_sent += 1,
                        Err(e) => warn!(instance = %running.config.name, "advert to {dst}: {e}"),
                    }
                }
            }
            Action::AddVips => {
                for vip in &running.config.virtual_addresses {
                    if let Err(e) = link::add_address(
                        handle,
                        interface.link.index,
                        vip.addr(),
                        vip.prefix_len(),
                    )
                    .await
                    {
                        warn!(instance = %running.config.name, "adding {vip} to {}: {e}", interface.link.name);
                    }
                }
            }
            Action::RemoveVips => {
                for vip in &running.config.virtual_addresses {
                    if let Err(e) =
                        link::del_address(handle, interface.link.index, vip.addr()).await
                    {
                        warn!(instance = %running.config.name, "removing {vip} from {}: {e}", interface.link.name);
                    }
                }
            }
            Action::SendGratuitousArp { .. } => {
                for vip in &running.config.virtual_addresses {
                    if let IpAddr::V4(v4) = vip.addr()
                        && let Err(e) = interface.link.gratuitous_arp(v4)
                    {
                        warn!(instance = %running.config.name, "gratuitous ARP for {v4}: {e}");
                    }
                }
            }
        }
    }
}

/// keepalived-style notify: `<command> <instance> <old state> <new state>`, not waited for.
fn notify(config: &VrrpInstance, old: State, new: State) {
    let Some(command) = &config.notify else {
        return;
    };
    let mut words = command.split_whitespace();
    let Some(program) = words.next() else { return };
    let spawned = Command::new(program)
        .args(words)
        .args([config.name.as_str(), old.as_str(), new.as_str()])
        .spawn();
    match spawned {
        // Reaped by a thread so no zombie is left behind.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => warn!(instance = %config.name, "notify {command}: {e}"),
    }
}

fn instance_config(instance: &VrrpInstance) -> Result<InstanceConfig, String> {
    let version = if instance.version == 3 {
        Version::V3
    } else {
        Version::V2
    };
    let primary_addr = match instance.source_address {
        Some(addr) => addr,
        None => link::primary_ipv4(&instance.interface)
            .map(IpAddr::V4)
            .ok_or_else(|| {
                format!(
                    "{}: {} has no IPv4 address to send adverts from",
                    instance.name, instance.interface
                )
            })?,
    };
    let auth = match &instance.auth {
        None | Some(ConfigAuth::None) => Auth::None,
        Some(ConfigAuth::Pass { password }) => Auth::simple(password)
            .ok_or_else(|| format!("{}: password longer than 8 bytes", instance.name))?,
    };
    let garp = GarpConfig {
        repeat: instance.garp.repeat,
        spacing: instance.garp.spacing.get(),
        delay: Some(instance.garp.delay.get()).filter(|d| !d.is_zero()),
        refresh: instance.garp.refresh.map(lvs_config::Duration::get),
        ..GarpConfig::default()
    };
    Ok(InstanceConfig {
        vrid: instance.vrid,
        version,
        priority: instance.priority,
        advert_interval: instance.advert_interval.get(),
        preempt: instance.preempt,
        preempt_delay: instance.preempt_delay.get(),
        primary_addr,
        vips: instance
            .virtual_addresses
            .iter()
            .map(ipnet::IpNet::addr)
            .collect(),
        auth,
        garp,
    })
}
