//! Which VIPs a director announces over BGP (`[announce]`, issue 18), as a sans-IO core: the
//! daemon feeds it what it knows of directord (alive, each service's quorum), the operator's
//! drains and `now`; it answers with the routes to add and remove. The daemon owns the
//! netlink side; the routing engine (FRR, BIRD) redistributes the routes.
//!
//! A VIP is announced only while directord answers, every service it names holds quorum and
//! the operator has not drained it: a director whose table is frozen, empty or below quorum
//! must not draw a share of the flows the router spreads over all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use lvs_config::AnnounceVip;

/// Why a VIP is not announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withdrawn {
    /// Not yet decided: nothing heard from directord since the start.
    Starting,
    /// directord does not answer (dead, or wedged).
    DirectordDown,
    /// This service (the first named one found) is below quorum, or unknown to directord.
    NoQuorum(String),
    /// `lvsadm announce drain`.
    Drained,
    /// vrrpd is stopping.
    Stopping,
    /// The kernel refused the route; tried again at the next update.
    RouteFailed,
}

impl Withdrawn {
    /// For status and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Withdrawn::Starting => "starting",
            Withdrawn::DirectordDown => "directord_down",
            Withdrawn::NoQuorum(_) => "no_quorum",
            Withdrawn::Drained => "drained",
            Withdrawn::Stopping => "stopping",
            Withdrawn::RouteFailed => "route_failed",
        }
    }
}

/// What the daemon knows when it asks.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// `None`: directord not heard from yet.
    pub directord_up: Option<bool>,
    /// Each named service's quorum, as directord last said.
    pub quorum: &'a BTreeMap<String, bool>,
    /// VIPs the operator drained.
    pub drained: &'a BTreeSet<IpAddr>,
    pub stopping: bool,
}

/// A route to add or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Announce(IpAddr),
    Withdraw(IpAddr, Withdrawn),
}

/// One VIP's state.
#[derive(Debug, Clone)]
pub struct VipState {
    pub address: IpAddr,
    pub services: Vec<String>,
    /// `None` while announced.
    pub withdrawn: Option<Withdrawn>,
    /// When it was last announced or withdrawn.
    pub since: Instant,
}

impl VipState {
    pub fn announced(&self) -> bool {
        self.withdrawn.is_none()
    }
}

/// Every configured VIP's announcement.
#[derive(Debug, Clone, Default)]
pub struct Announcer {
    vips: Vec<VipState>,
}

impl Announcer {
    /// Every VIP starts withdrawn: nothing is announced before directord has answered.
    pub fn new(vips: &[AnnounceVip], now: Instant) -> Announcer {
        let mut announcer = Announcer::default();
        announcer.configure(vips, now);
        announcer
    }

    /// A reload: VIPs kept keep their state, new ones start withdrawn, removed ones are
    /// returned to be withdrawn if they were announced.
    pub fn configure(&mut self, vips: &[AnnounceVip], now: Instant) -> Vec<Change> {
        let mut old = std::mem::take(&mut self.vips);
        self.vips = vips
            .iter()
            .map(|vip| {
                let kept = old
                    .iter()
                    .position(|state| state.address == vip.address)
                    .map(|at| old.swap_remove(at));
                VipState {
                    address: vip.address,
                    services: vip.services.clone(),
                    withdrawn: kept
                        .as_ref()
                        .map_or(Some(Withdrawn::Starting), |k| k.withdrawn.clone()),
                    since: kept.map_or(now, |k| k.since),
                }
            })
            .collect();
        old.into_iter()
            .filter(VipState::announced)
            .map(|gone| Change::Withdraw(gone.address, Withdrawn::Stopping))
            .collect()
    }

    pub fn vips(&self) -> &[VipState] {
        &self.vips
    }

    /// The kernel refused `change`: the VIP's state goes back to what the kernel has, so the
    /// next [`Announcer::update`] tries again (a withdrawal that did not happen must not be
    /// taken for one: the engine would go on announcing an unhealthy VIP).
    pub fn failed(&mut self, change: &Change) {
        let (address, withdrawn) = match change {
            Change::Announce(address) => (address, Some(Withdrawn::RouteFailed)),
            Change::Withdraw(address, _) => (address, None),
        };
        if let Some(vip) = self.vips.iter_mut().find(|v| v.address == *address) {
            vip.withdrawn = withdrawn;
        }
    }

    /// Brings every VIP to what `inputs` say; returns the routes to change, in config order.
    pub fn update(&mut self, inputs: Inputs<'_>, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        for vip in &mut self.vips {
            let wanted = verdict(vip, inputs);
            if wanted == vip.withdrawn {
                continue;
            }
            // A reason changing while withdrawn moves no route.
            let moved = wanted.is_none() != vip.withdrawn.is_none();
            vip.withdrawn.clone_from(&wanted);
            if moved {
                vip.since = now;
                changes.push(match wanted {
                    None => Change::Announce(vip.address),
                    Some(why) => Change::Withdraw(vip.address, why),
                });
            }
        }
        changes
    }
}

/// Whether `vip` should be announced (`None`) or why not, in order of precedence: the
/// operator's word and the stop before directord's health.
fn verdict(vip: &VipState, inputs: Inputs<'_>) -> Option<Withdrawn> {
    if inputs.stopping {
        return Some(Withdrawn::Stopping);
    }
    if inputs.drained.contains(&vip.address) {
        return Some(Withdrawn::Drained);
    }
    match inputs.directord_up {
        None => return Some(Withdrawn::Starting),
        Some(false) => return Some(Withdrawn::DirectordDown),
        Some(true) => {}
    }
    vip.services
        .iter()
        .find(|service| inputs.quorum.get(*service) != Some(&true))
        .map(|service| Withdrawn::NoQuorum(service.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn vip(address: &str, services: &[&str]) -> AnnounceVip {
        AnnounceVip {
            address: address.parse().unwrap(),
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            med: None,
            local_pref: None,
            communities: Vec::new(),
        }
    }

    fn quorum(pairs: &[(&str, bool)]) -> BTreeMap<String, bool> {
        pairs.iter().map(|(s, q)| ((*s).to_owned(), *q)).collect()
    }

    fn inputs<'a>(
        up: Option<bool>,
        quorum: &'a BTreeMap<String, bool>,
        drained: &'a BTreeSet<IpAddr>,
    ) -> Inputs<'a> {
        Inputs {
            directord_up: up,
            quorum,
            drained,
            stopping: false,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// Nothing is announced before directord answered, then a VIP is announced once all its
    /// services hold quorum, and withdrawn when one loses it or directord stops answering;
    /// each VIP follows its own services.
    #[test]
    fn a_vip_is_announced_while_its_services_hold_quorum_and_directord_answers() {
        let t0 = Instant::now();
        let mut announcer = Announcer::new(
            &[
                vip("192.0.2.100", &["web", "dns"]),
                vip("2001:db8::100", &["api"]),
            ],
            t0,
        );
        let none = BTreeSet::new();
        let all = quorum(&[("web", true), ("dns", true), ("api", true)]);
        assert_eq!(announcer.update(inputs(None, &all, &none), t0), []);
        assert_eq!(
            announcer.vips()[0].withdrawn,
            Some(Withdrawn::Starting),
            "no answer yet"
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            announcer.update(inputs(Some(true), &all, &none), t1),
            [
                Change::Announce(ip("192.0.2.100")),
                Change::Announce(ip("2001:db8::100"))
            ]
        );
        assert_eq!(announcer.vips()[0].since, t1);
        assert_eq!(
            announcer.update(inputs(Some(true), &all, &none), t1),
            [],
            "no change, no route moved"
        );
        let dns_down = quorum(&[("web", true), ("dns", false), ("api", true)]);
        assert_eq!(
            announcer.update(inputs(Some(true), &dns_down, &none), t1),
            [Change::Withdraw(
                ip("192.0.2.100"),
                Withdrawn::NoQuorum("dns".into())
            )]
        );
        let unknown = quorum(&[("api", true)]);
        assert_eq!(
            announcer.update(inputs(Some(true), &unknown, &none), t1),
            [],
            "still withdrawn, for another reason"
        );
        assert_eq!(
            announcer.vips()[0].withdrawn,
            Some(Withdrawn::NoQuorum("web".into())),
            "a service directord does not report counts as below quorum"
        );
        assert_eq!(
            announcer.update(inputs(Some(false), &all, &none), t1),
            [Change::Withdraw(
                ip("2001:db8::100"),
                Withdrawn::DirectordDown
            )]
        );
        assert_eq!(
            announcer.update(inputs(Some(true), &all, &none), t1),
            [
                Change::Announce(ip("192.0.2.100")),
                Change::Announce(ip("2001:db8::100"))
            ],
            "back when directord answers again with quorum"
        );
    }

    /// The operator's drain withdraws a healthy VIP and only it; lifting it announces it again;
    /// stopping withdraws everything, whatever the health.
    #[test]
    fn drain_and_stop_withdraw_whatever_the_health() {
        let t0 = Instant::now();
        let mut announcer = Announcer::new(
            &[vip("192.0.2.100", &["web"]), vip("192.0.2.101", &["web"])],
            t0,
        );
        let ok = quorum(&[("web", true)]);
        let mut drained = BTreeSet::new();
        assert_eq!(
            announcer
                .update(inputs(Some(true), &ok, &drained), t0)
                .len(),
            2
        );
        drained.insert(ip("192.0.2.101"));
        assert_eq!(
            announcer.update(inputs(Some(true), &ok, &drained), t0),
            [Change::Withdraw(ip("192.0.2.101"), Withdrawn::Drained)]
        );
        drained.clear();
        assert_eq!(
            announcer.update(inputs(Some(true), &ok, &drained), t0),
            [Change::Announce(ip("192.0.2.101"))]
        );
        let mut stopping = inputs(Some(true), &ok, &drained);
        stopping.stopping = true;
        assert_eq!(
            announcer.update(stopping, t0),
            [
                Change::Withdraw(ip("192.0.2.100"), Withdrawn::Stopping),
                Change::Withdraw(ip("192.0.2.101"), Withdrawn::Stopping)
            ]
        );
    }

    /// A route the kernel refused is tried again at the next update, an announcement and a
    /// withdrawal alike.
    #[test]
    fn a_refused_route_is_tried_again() {
        let t0 = Instant::now();
        let mut announcer = Announcer::new(&[vip("192.0.2.100", &["web"])], t0);
        let ok = quorum(&[("web", true)]);
        let down = quorum(&[("web", false)]);
        let none = BTreeSet::new();
        let announce = announcer.update(inputs(Some(true), &ok, &none), t0);
        announcer.failed(&announce[0]);
        assert_eq!(announcer.vips()[0].withdrawn, Some(Withdrawn::RouteFailed));
        assert_eq!(
            announcer.update(inputs(Some(true), &ok, &none), t0),
            announce,
            "announced again"
        );
        let withdraw = announcer.update(inputs(Some(true), &down, &none), t0);
        announcer.failed(&withdraw[0]);
        assert!(announcer.vips()[0].announced(), "the route is still there");
        assert_eq!(
            announcer.update(inputs(Some(true), &down, &none), t0),
            withdraw,
            "withdrawn again"
        );
    }

    /// A reload keeps a VIP's state (no withdraw-announce flap), starts a new one withdrawn
    /// and withdraws a removed one that was announced.
    #[test]
    fn a_reload_keeps_kept_vips_and_withdraws_removed_ones() {
        let t0 = Instant::now();
        let mut announcer = Announcer::new(
            &[vip("192.0.2.100", &["web"]), vip("192.0.2.101", &["web"])],
            t0,
        );
        let ok = quorum(&[("web", true)]);
        let none = BTreeSet::new();
        announcer.update(inputs(Some(true), &ok, &none), t0);
        let later = t0 + Duration::from_secs(5);
        let gone = announcer.configure(
            &[vip("192.0.2.100", &["web"]), vip("192.0.2.102", &["web"])],
            later,
        );
        assert_eq!(
            gone,
            [Change::Withdraw(ip("192.0.2.101"), Withdrawn::Stopping)]
        );
        assert!(announcer.vips()[0].announced());
        assert_eq!(announcer.vips()[0].since, t0, "kept, not re-announced");
        assert_eq!(announcer.vips()[1].withdrawn, Some(Withdrawn::Starting));
        assert_eq!(
            announcer.update(inputs(Some(true), &ok, &none), later),
            [Change::Announce(ip("192.0.2.102"))]
        );
    }
}
