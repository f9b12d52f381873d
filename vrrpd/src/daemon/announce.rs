//! `[announce]` on the kernel (issue 18): the routes FRR or BIRD redistribute over BGP.
//!
//! Per VIP two routes, both with the configured protocol number (`proto 250`):
//! - `local VIP dev lo table local`, held from start to stop: the director takes the VIP's
//!   packets as its own (IPVS sees them at LOCAL_IN) without the VIP being an address. An
//!   address would give FRR's zebra a connected route for the VIP, which it prefers to the
//!   kernel route, so the kernel route would never be redistributed; and it stays while the
//!   VIP is withdrawn so flows the router still sends during a drain are served.
//! - `VIP dev lo` in the main table while announced: what the engine learns (zebra and BIRD's
//!   kernel protocol read the main table) and redistributes.
//!
//! A start (and `vrrpd --release-vips`, the unit's ExecStopPost after a kill -9) removes every
//! route of the protocol: a crashed run's announcements must not outlive it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::TryStreamExt;
use lvs_config::Announce;
use lvs_control::vrrpd::{AnnounceStatus, AnnouncedVip};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::route::{RouteMessage, RouteProtocol, RouteScope, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};
use tracing::{info, warn};
use vrrpd::announce::{Announcer, Change, Inputs, Withdrawn};

use super::link;
use super::metrics::Metrics;
use super::routes::{absent, exists};

/// The kernel's local routing table (RT_TABLE_LOCAL).
const LOCAL_TABLE: u32 = 255;

/// What the announcer could not do: a route the kernel refused, or the drains' file.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    #[error(transparent)]
    State(#[from] lvs_control::state::StateError),
    #[error("{0} is not an [announce] VIP of this director")]
    NotAnnounced(IpAddr),
    #[error("no [announce] in vrrpd's config")]
    NoAnnounce,
    #[error("there is no loopback device \"lo\"")]
    NoLoopback,
    #[error("adding the route to {vip}: {source}")]
    Add {
        vip: IpAddr,
        source: rtnetlink::Error,
    },
    #[error("removing the route to {vip}: {source}")]
    Del {
        vip: IpAddr,
        source: rtnetlink::Error,
    },
    #[error("listing routes: {0}")]
    Dump(rtnetlink::Error),
}

impl AnnounceError {
    /// The per-cause counter.
    pub fn cause(&self) -> &'static str {
        match self {
            AnnounceError::State(_) => "state_file",
            AnnounceError::NotAnnounced(_) | AnnounceError::NoAnnounce => "not_announced",
            AnnounceError::NoLoopback => "no_loopback",
            AnnounceError::Add { .. } => "add_route",
            AnnounceError::Del { .. } => "del_route",
            AnnounceError::Dump(_) => "dump_routes",
        }
    }
}

/// The operator's drains, in `<state_dir>/announce.json` so that a restarted vrrpd (systemd's
/// restart after a crash, a reboot) does not announce a VIP the operator took out.
const STATE_FILE: &str = "announce.json";

/// The announcer and its routes.
pub struct Announcing {
    protocol: u8,
    core: Announcer,
    drained: BTreeSet<IpAddr>,
    state_file: PathBuf,
    errors: BTreeMap<String, u64>,
    metrics: Metrics,
}

/// The drains kept in `path`; none when it is missing.
fn load_drains(path: &Path) -> Result<BTreeSet<IpAddr>, AnnounceError> {
    Ok(lvs_control::state::load(path)?)
}

/// Writes the drains whole (a partial file renamed over the old one).
fn save_drains(path: &Path, drained: &BTreeSet<IpAddr>) -> Result<(), AnnounceError> {
    Ok(lvs_control::state::save(path, drained)?)
}

fn host_prefix(vip: IpAddr) -> u8 {
    if vip.is_ipv4() { 32 } else { 128 }
}

/// The VIP's route in `table`: `local` (taken as this host's) or unicast over lo.
fn route(vip: IpAddr, protocol: u8, table: u32) -> Result<RouteMessage, AnnounceError> {
    let lo = link::index_of("lo").ok_or(AnnounceError::NoLoopback)?;
    let (kind, scope) = if table == LOCAL_TABLE {
        (RouteType::Local, RouteScope::Host)
    } else {
        (RouteType::Unicast, RouteScope::Link)
    };
    let builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(vip, host_prefix(vip))
        .map_err(|e| AnnounceError::Add {
            vip,
            source: rtnetlink::Error::InvalidIp(e.to_string().into_bytes()),
        })?;
    Ok(builder
        .output_interface(lo)
        .table_id(table)
        .scope(scope)
        .kind(kind)
        .protocol(RouteProtocol::from(protocol))
        .build())
}

async fn add(handle: &Handle, vip: IpAddr, protocol: u8, table: u32) -> Result<(), AnnounceError> {
    match handle
        .route()
        .add(route(vip, protocol, table)?)
        .execute()
        .await
    {
        Err(e) if !exists(&e) => Err(AnnounceError::Add { vip, source: e }),
        _ => Ok(()),
    }
}

async fn del(handle: &Handle, vip: IpAddr, protocol: u8, table: u32) -> Result<(), AnnounceError> {
    match handle
        .route()
        .del(route(vip, protocol, table)?)
        .execute()
        .await
    {
        Err(e) if !absent(&e) => Err(AnnounceError::Del { vip, source: e }),
        _ => Ok(()),
    }
}

/// Removes every route of `protocol`, in every table and both families: what a crashed or
/// killed run left. Returns how many went.
pub async fn sweep(handle: &Handle, protocol: u8) -> Result<usize, AnnounceError> {
    let mut removed = 0;
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut request = match family {
            AddressFamily::Inet => RouteMessageBuilder::<Ipv4Addr>::new().build(),
            _ => RouteMessageBuilder::<Ipv6Addr>::new().build(),
        };
        // Every table, not only main: the local routes are in table local.
        request.header.table = 0;
        let ours: Vec<RouteMessage> = handle
            .route()
            .get(request)
            .execute()
            .try_filter(|r| std::future::ready(u8::from(r.header.protocol) == protocol))
            .try_collect()
            .await
            .map_err(AnnounceError::Dump)?;
        for message in ours {
            match handle.route().del(message).execute().await {
                Ok(()) => removed += 1,
                Err(e) if absent(&e) => {}
                Err(source) => {
                    return Err(AnnounceError::Del {
                        vip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                        source,
                    });
                }
            }
        }
    }
    Ok(removed)
}

impl Announcing {
    /// Sweeps what an earlier run left, then takes every VIP's packets as local; nothing is
    /// announced until directord has answered.
    pub async fn start(
        handle: &Handle,
        config: &Announce,
        state_dir: &Path,
        metrics: Metrics,
    ) -> Announcing {
        for vip in &config.vip {
            metrics.set_announced(vip.address, Some(false));
        }
        let mut announcing = Announcing {
            metrics,
            protocol: config.protocol,
            core: Announcer::new(&config.vip, Instant::now()),
            drained: BTreeSet::new(),
            state_file: state_dir.join(STATE_FILE),
            errors: BTreeMap::new(),
        };
        match load_drains(&announcing.state_file) {
            Ok(drained) => announcing.drained = drained,
            // Nothing drained rather than no announcement: the file is rewritten at the next
            // drain or resume.
            Err(e) => announcing.failed(&e),
        }
        if !announcing.drained.is_empty() {
            info!(
                "drained by the operator, not announced: {:?}",
                announcing.drained
            );
        }
        match sweep(handle, config.protocol).await {
            Ok(0) => {}
            Ok(n) => info!(
                "removed {n} routes of protocol {} left by an earlier run",
                config.protocol
            ),
            Err(e) => announcing.failed(&e),
        }
        let vips: Vec<IpAddr> = config.vip.iter().map(|v| v.address).collect();
        for vip in vips {
            if let Err(e) = add(handle, vip, config.protocol, LOCAL_TABLE).await {
                announcing.failed(&e);
            }
        }
        announcing
    }

    fn failed(&mut self, error: &AnnounceError) {
        warn!("announce: {error}");
        *self.errors.entry(error.cause().to_owned()).or_default() += 1;
        self.metrics.announce_failed(error.cause());
    }

    /// Brings the routes to what directord's state (`None`: not tracked or not heard yet),
    /// the drains and `stopping` say.
    pub async fn update(
        &mut self,
        handle: &Handle,
        directord: Option<(bool, &BTreeMap<String, bool>)>,
        stopping: bool,
    ) {
        let empty = BTreeMap::new();
        let inputs = Inputs {
            directord_up: directord.map(|(up, _)| up),
            quorum: directord.map_or(&empty, |(_, quorum)| quorum),
            drained: &self.drained,
            stopping,
        };
        let changes = self.core.update(inputs, Instant::now());
        self.apply(handle, changes).await;
    }

    async fn apply(&mut self, handle: &Handle, changes: Vec<Change>) {
        for change in changes {
            let result = match &change {
                Change::Announce(vip) => {
                    info!("announcing {vip}");
                    add(handle, *vip, self.protocol, u32::from(libc::RT_TABLE_MAIN)).await
                }
                Change::Withdraw(vip, why) => {
                    info!("withdrawing {vip}: {}", reason(why));
                    del(handle, *vip, self.protocol, u32::from(libc::RT_TABLE_MAIN)).await
                }
            };
            if let Err(e) = result {
                self.failed(&e);
                self.core.failed(&change);
            }
            if let Some(vip) = self.core.vips().iter().find(|v| match &change {
                Change::Announce(a) | Change::Withdraw(a, _) => v.address == *a,
            }) {
                self.metrics
                    .set_announced(vip.address, Some(vip.announced()));
            }
        }
    }

    /// `lvsadm announce drain|resume [VIP]`, kept in the state file before it applies (a drain
    /// that could not be kept is refused, so a restart cannot undo it behind the operator).
    pub fn drain(&mut self, vip: Option<IpAddr>, drain: bool) -> Result<(), AnnounceError> {
        let all: Vec<IpAddr> = self.core.vips().iter().map(|v| v.address).collect();
        let chosen = match vip {
            Some(vip) if !all.contains(&vip) => return Err(AnnounceError::NotAnnounced(vip)),
            Some(vip) => vec![vip],
            None => all,
        };
        let mut wanted = self.drained.clone();
        for vip in chosen {
            if drain {
                wanted.insert(vip);
            } else {
                wanted.remove(&vip);
            }
        }
        save_drains(&self.state_file, &wanted).inspect_err(|e| self.failed(e))?;
        self.drained = wanted;
        Ok(())
    }

    /// A reload: new VIPs taken as local, removed ones withdrawn and let go. A changed
    /// protocol number takes effect at the next start.
    pub async fn configure(&mut self, handle: &Handle, config: &Announce) {
        if config.protocol != self.protocol {
            warn!(
                "announce: protocol {} takes effect at vrrpd's next start; the routes keep {}",
                config.protocol, self.protocol
            );
        }
        let old: Vec<IpAddr> = self.core.vips().iter().map(|v| v.address).collect();
        let gone = self.core.configure(&config.vip, Instant::now());
        self.apply(handle, gone).await;
        let new: Vec<IpAddr> = config.vip.iter().map(|v| v.address).collect();
        for vip in old.iter().filter(|v| !new.contains(v)) {
            self.metrics.set_announced(*vip, None);
            if let Err(e) = del(handle, *vip, self.protocol, LOCAL_TABLE).await {
                self.failed(&e);
            }
        }
        for vip in new.iter().filter(|v| !old.contains(v)) {
            self.metrics.set_announced(*vip, Some(false));
            if let Err(e) = add(handle, *vip, self.protocol, LOCAL_TABLE).await {
                self.failed(&e);
            }
        }
    }

    /// Withdraws everything, then lets the VIPs' packets go.
    pub async fn stop(&mut self, handle: &Handle) {
        self.update(handle, None, true).await;
        match sweep(handle, self.protocol).await {
            Ok(_) => {}
            Err(e) => self.failed(&e),
        }
    }

    pub fn status(&self) -> AnnounceStatus {
        let now = Instant::now();
        AnnounceStatus {
            protocol: self.protocol,
            vips: self
                .core
                .vips()
                .iter()
                .map(|vip| AnnouncedVip {
                    address: vip.address,
                    announced: vip.announced(),
                    reason: vip.withdrawn.as_ref().map(|w| w.as_str().to_owned()),
                    service: match &vip.withdrawn {
                        Some(Withdrawn::NoQuorum(service)) => Some(service.clone()),
                        _ => None,
                    },
                    drained: self.drained.contains(&vip.address),
                    for_secs: now.duration_since(vip.since).as_secs_f64(),
                })
                .collect(),
            errors: self.errors.clone(),
        }
    }
}

fn reason(why: &Withdrawn) -> String {
    match why {
        Withdrawn::NoQuorum(service) => format!("{service} is below quorum"),
        other => other.as_str().replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The drains survive as written; a missing file is no drain; a file that does not parse
    /// or cannot be written is an error (counted as `state_file`), never a silent empty set
    /// written over the operator's drains.
    #[test]
    fn drains_are_kept_in_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(STATE_FILE);
        assert_eq!(load_drains(&path).unwrap(), BTreeSet::new());
        let drained: BTreeSet<IpAddr> = [
            "192.0.2.100".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ]
        .into();
        save_drains(&path, &drained).unwrap();
        assert_eq!(load_drains(&path).unwrap(), drained);
        std::fs::write(&path, "[\"not an address\"]").unwrap();
        let error = load_drains(&path).unwrap_err();
        assert_eq!(error.cause(), "state_file");
        let blocked = dir.path().join("file").join(STATE_FILE);
        std::fs::write(dir.path().join("file"), "").unwrap();
        assert!(save_drains(&blocked, &drained).is_err());
    }
}
