//! vrrpd's Prometheus metrics, served by [`lvs_control::metrics::serve`] on `control.metrics`
//! with vrrpd's port offset (+1). They move at the same places as the control socket's
//! [`lvs_control::vrrpd::Counters`], so the two never disagree.
//!
//! Besides vrrpd's own `vrrp_*` series, the same events feed the series keepalived-exporter
//! (github.com/mehdy/keepalived-exporter, internal/collector/collector.go) publishes for
//! keepalived, with its names, labels and meanings, so dashboards and alerts written for
//! keepalived read vrrpd unchanged. Not filled, for want of a counterpart in vrrpd:
//! `keepalived_gratuitous_arp_delay_total` (keepalived exports a config value there),
//! `keepalived_script_status`/`_state`, `keepalived_vrrp_excluded_state` and
//! `keepalived_exporter_check_script_status`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vrrpd::instance::State;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabel {
    instance: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    instance: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    instance: String,
    cause: String,
}

/// keepalived-exporter's labels on its per-instance counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KaLabels {
    iname: String,
    intf: String,
    vrid: String,
}

/// keepalived-exporter's labels on `keepalived_vrrp_state`: one series per VIP.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KaStateLabels {
    iname: String,
    intf: String,
    vrid: String,
    ip_address: String,
}

/// What keepalived-exporter labels an instance with, recorded when it starts.
#[derive(Debug, Clone)]
struct KaInstance {
    labels: KaLabels,
    vips: Vec<String>,
}

/// keepalived's own counters (vrrp_stats in keepalived/vrrp/vrrp.h), as the exporter names
/// them without `_total`, which the registry adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum KaCounter {
    AdvertRcvd,
    AdvertSent,
    BecomeMaster,
    ReleaseMaster,
    PacketLenErr,
    AdvertIntervalErr,
    IpTtlErr,
    InvalidTypeRcvd,
    AddrListErr,
    InvalidAuthtype,
    AuthtypeMismatch,
    AuthFailure,
    PriZeroRcvd,
    PriZeroSent,
}

impl KaCounter {
    const ALL: [KaCounter; 14] = [
        KaCounter::AdvertRcvd,
        KaCounter::AdvertSent,
        KaCounter::BecomeMaster,
        KaCounter::ReleaseMaster,
        KaCounter::PacketLenErr,
        KaCounter::AdvertIntervalErr,
        KaCounter::IpTtlErr,
        KaCounter::InvalidTypeRcvd,
        KaCounter::AddrListErr,
        KaCounter::InvalidAuthtype,
        KaCounter::AuthtypeMismatch,
        KaCounter::AuthFailure,
        KaCounter::PriZeroRcvd,
        KaCounter::PriZeroSent,
    ];

    fn name_and_help(self) -> (&'static str, &'static str) {
        match self {
            KaCounter::AdvertRcvd => (
                "keepalived_advertisements_received",
                "Advertisements received",
            ),
            KaCounter::AdvertSent => ("keepalived_advertisements_sent", "Advertisements sent"),
            KaCounter::BecomeMaster => ("keepalived_become_master", "Became master"),
            KaCounter::ReleaseMaster => ("keepalived_release_master", "Released master"),
            KaCounter::PacketLenErr => ("keepalived_packet_length_errors", "Packet length errors"),
            KaCounter::AdvertIntervalErr => (
                "keepalived_advertisements_interval_errors",
                "Advertisement interval errors",
            ),
            KaCounter::IpTtlErr => ("keepalived_ip_ttl_errors", "TTL errors"),
            KaCounter::InvalidTypeRcvd => {
                ("keepalived_invalid_type_received", "Invalid type errors")
            }
            KaCounter::AddrListErr => ("keepalived_address_list_errors", "Address list errors"),
            KaCounter::InvalidAuthtype => (
                "keepalived_authentication_invalid",
                "Authentication invalid",
            ),
            KaCounter::AuthtypeMismatch => (
                "keepalived_authentication_mismatch",
                "Authentication mismatch",
            ),
            KaCounter::AuthFailure => (
                "keepalived_authentication_failure",
                "Authentication failure",
            ),
            KaCounter::PriZeroRcvd => (
                "keepalived_priority_zero_received",
                "Priority zero received",
            ),
            KaCounter::PriZeroSent => ("keepalived_priority_zero_sent", "Priority zero sent"),
        }
    }

    /// The keepalived counter a drop cause of vrrpd's moves, where keepalived counts that
    /// cause at all (keepalived/vrrp/vrrp.c, vrrp_check_packet). keepalived keeps checksum,
    /// version, VRID and family errors in counters the exporter does not publish. One
    /// departure: keepalived never moves advert_interval_err (it drops a VRRPv2 interval
    /// mismatch uncounted); vrrpd counts those there, as the name promises.
    fn for_drop(cause: &str) -> Option<KaCounter> {
        Some(match cause {
            "too_short" | "address_count_mismatch" => KaCounter::PacketLenErr,
            "bad_type" => KaCounter::InvalidTypeRcvd,
            "ttl" => KaCounter::IpTtlErr,
            "auth_ah_deprecated" | "auth_type_unknown" => KaCounter::InvalidAuthtype,
            "auth_type_mismatch" => KaCounter::AuthtypeMismatch,
            "auth_failure" => KaCounter::AuthFailure,
            "address_list_mismatch" | "address_list_mismatch_accepted" => KaCounter::AddrListErr,
            "advert_interval_mismatch" | "zero_interval" => KaCounter::AdvertIntervalErr,
            _ => return None,
        })
    }
}

/// keepalived's state numbering (VRRP_STATE_* in keepalived/include/vrrp.h), which the
/// exporter publishes as is.
fn keepalived_state(state: State) -> i64 {
    match state {
        State::Initialize => 0,
        State::Backup => 1,
        State::Master => 2,
        State::Fault => 3,
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InterfaceDropLabels {
    interface: String,
    cause: String,
}

const STATES: [State; 4] = [
    State::Initialize,
    State::Backup,
    State::Master,
    State::Fault,
];

/// Handles on every vrrpd metric; clones share the same series.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    state: Family<StateLabels, Gauge>,
    priority: Family<InstanceLabel, Gauge>,
    transitions: Family<InstanceLabel, Counter>,
    became_master: Family<InstanceLabel, Counter>,
    adverts_sent: Family<InstanceLabel, Counter>,
    adverts_received: Family<InstanceLabel, Counter>,
    drops: Family<DropLabels, Counter>,
    interface_drops: Family<InterfaceDropLabels, Counter>,
    scheduling: Family<CauseLabel, Counter>,
    directord_up: Gauge,
    directord_checks: Family<ResultLabel, Counter>,
    notify_failures: Family<CauseLabel, Counter>,
    ka_instances: Arc<Mutex<HashMap<String, KaInstance>>>,
    ka_state: Family<KaStateLabels, Gauge>,
    ka_counters: Arc<HashMap<KaCounter, Family<KaLabels, Counter>>>,
    announced: Family<VipLabel, Gauge>,
    announce_errors: Family<CauseLabel, Counter>,
}

/// `[announce]`: one series per announced VIP.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VipLabel {
    vip: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

impl Metrics {
    pub fn new() -> Self {
        let mut top = Registry::default();
        let metrics = Metrics {
            registry: Arc::new(Mutex::new(Registry::default())),
            state: Family::default(),
            priority: Family::default(),
            transitions: Family::default(),
            became_master: Family::default(),
            adverts_sent: Family::default(),
            adverts_received: Family::default(),
            drops: Family::default(),
            interface_drops: Family::default(),
            scheduling: Family::default(),
            directord_up: Gauge::default(),
            directord_checks: Family::default(),
            notify_failures: Family::default(),
            ka_instances: Arc::default(),
            ka_state: Family::default(),
            ka_counters: Arc::new(
                KaCounter::ALL
                    .into_iter()
                    .map(|c| (c, Family::default()))
                    .collect(),
            ),
            announced: Family::default(),
            announce_errors: Family::default(),
        };
        metrics.register_keepalived(&mut top);
        let registry = top.sub_registry_with_prefix("vrrp");
        registry.register(
            "state",
            "1 for the state the instance is in (INIT, BACKUP, MASTER, FAULT), 0 for the others",
            metrics.state.clone(),
        );
        registry.register(
            "priority",
            "Effective priority (configured, moved by tracking)",
            metrics.priority.clone(),
        );
        registry.register(
            "transitions",
            "State transitions",
            metrics.transitions.clone(),
        );
        registry.register(
            "became_master",
            "Transitions into MASTER",
            metrics.became_master.clone(),
        );
        registry.register(
            "adverts_sent",
            "Advertisements sent",
            metrics.adverts_sent.clone(),
        );
        registry.register(
            "adverts_received",
            "Advertisements received and accepted",
            metrics.adverts_received.clone(),
        );
        registry.register(
            "scheduling",
            "Settings of rt_priority, rlimit_rttime and no_swap the kernel refused, and warnings at half of rlimit_rttime, by cause",
            metrics.scheduling.clone(),
        );
        registry.register(
            "drops",
            "Received packets dropped, by cause",
            metrics.drops.clone(),
        );
        registry.register(
            "interface_drops",
            "Received packets no instance could be charged with (unreadable, unknown VRID), by cause",
            metrics.interface_drops.clone(),
        );
        registry.register(
            "directord_up",
            "track_directord: 1 while directord answers on its control socket in time, 0 while not, -1 when not tracked",
            metrics.directord_up.clone(),
        );
        registry.register(
            "directord_checks",
            "track_directord: status requests to directord by result (answered, timeout, unreachable, malformed_reply)",
            metrics.directord_checks.clone(),
        );
        registry.register(
            "notify_failures",
            "Notify scripts not run and FIFO lines not written, by cause (command, insecure, spawn, fifo)",
            metrics.notify_failures.clone(),
        );
        registry.register(
            "announced",
            "[announce]: 1 while the VIP's route is installed for the routing engine to announce, 0 while withdrawn",
            metrics.announced.clone(),
        );
        registry.register(
            "announce_errors",
            "[announce]: route changes the kernel refused and drains not kept, by cause (add_route, del_route, dump_routes, no_loopback, state_file)",
            metrics.announce_errors.clone(),
        );
        *metrics.registry.lock().expect("fresh mutex") = top;
        metrics
    }

    fn register_keepalived(&self, registry: &mut Registry) {
        // Constant while vrrpd serves: the exporter's 0 means it could not read keepalived,
        // and a vrrpd that does not answer leaves Prometheus's `up` at 0 instead.
        let up: Gauge = Gauge::default();
        up.set(1);
        registry.register("keepalived_up", "Status", up);
        registry.register(
            "keepalived_vrrp_state",
            "State of vrrp (keepalived's numbering: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT), one series per virtual address",
            self.ka_state.clone(),
        );
        for counter in KaCounter::ALL {
            let (name, help) = counter.name_and_help();
            registry.register(name, help, self.ka_counters[&counter].clone());
        }
    }

    /// Records the labels keepalived-exporter would give the instance, and sets its series
    /// to zero so a dashboard sees them before the first event.
    pub fn describe(&self, instance: &str, interface: &str, vrid: u8, vips: &[IpNet]) {
        let described = KaInstance {
            labels: KaLabels {
                iname: instance.to_owned(),
                intf: interface.to_owned(),
                vrid: vrid.to_string(),
            },
            vips: vips.iter().map(keepalived_address).collect(),
        };
        for family in self.ka_counters.values() {
            let _ = family.get_or_create(&described.labels);
        }
        self.ka_instances
            .lock()
            .expect("metrics lock")
            .insert(instance.to_owned(), described);
    }

    fn ka_inc(&self, instance: &str, counter: KaCounter) {
        let instances = self.ka_instances.lock().expect("metrics lock");
        if let Some(described) = instances.get(instance) {
            self.ka_counters[&counter]
                .get_or_create(&described.labels)
                .inc();
        }
    }

    /// One series per VIP as the exporter has it; an instance without VIPs gets one with an
    /// empty `ip_address`, as the exporter does for keepalived releases that list none.
    fn ka_state_labels(described: &KaInstance) -> Vec<KaStateLabels> {
        let vips: Vec<&str> = if described.vips.is_empty() {
            vec![""]
        } else {
            described.vips.iter().map(String::as_str).collect()
        };
        vips.into_iter()
            .map(|ip| KaStateLabels {
                iname: described.labels.iname.clone(),
                intf: described.labels.intf.clone(),
                vrid: described.labels.vrid.clone(),
                ip_address: ip.to_owned(),
            })
            .collect()
    }

    pub fn registry(&self) -> Arc<Mutex<Registry>> {
        Arc::clone(&self.registry)
    }

    pub fn set_state(&self, instance: &str, state: State) {
        for s in STATES {
            let labels = StateLabels {
                instance: instance.to_owned(),
                state: s.as_str().to_owned(),
            };
            self.state.get_or_create(&labels).set(i64::from(s == state));
        }
        let instances = self.ka_instances.lock().expect("metrics lock");
        if let Some(described) = instances.get(instance) {
            for labels in Self::ka_state_labels(described) {
                self.ka_state
                    .get_or_create(&labels)
                    .set(keepalived_state(state));
            }
        }
    }

    pub fn set_priority(&self, instance: &str, priority: u8) {
        self.priority
            .get_or_create(&label(instance))
            .set(i64::from(priority));
    }

    pub fn transition(&self, instance: &str, old: State, new: State) {
        self.transitions.get_or_create(&label(instance)).inc();
        if new == State::Master {
            self.became_master.get_or_create(&label(instance)).inc();
            self.ka_inc(instance, KaCounter::BecomeMaster);
        }
        if old == State::Master && new != State::Master {
            self.ka_inc(instance, KaCounter::ReleaseMaster);
        }
        self.set_state(instance, new);
    }

    /// An advert with `priority` went out.
    pub fn advert_sent(&self, instance: &str, priority: u8) {
        self.adverts_sent.get_or_create(&label(instance)).inc();
        self.ka_inc(instance, KaCounter::AdvertSent);
        if priority == 0 {
            self.ka_inc(instance, KaCounter::PriZeroSent);
        }
    }

    /// An advert with `priority` passed validation.
    pub fn advert_received(&self, instance: &str, priority: u8) {
        self.adverts_received.get_or_create(&label(instance)).inc();
        self.ka_inc(instance, KaCounter::AdvertRcvd);
        if priority == 0 {
            self.ka_inc(instance, KaCounter::PriZeroRcvd);
        }
    }

    pub fn dropped(&self, instance: &str, cause: &str) {
        let labels = DropLabels {
            instance: instance.to_owned(),
            cause: cause.to_owned(),
        };
        self.drops.get_or_create(&labels).inc();
        if let Some(counter) = KaCounter::for_drop(cause) {
            self.ka_inc(instance, counter);
        }
        // keepalived counts an advert as received once its type, version, length and
        // authentication pass, before it compares the address list.
        if cause == "address_list_mismatch" {
            self.ka_inc(instance, KaCounter::AdvertRcvd);
        }
    }

    /// `[announce]`: whether `vip` is announced; `None` removes its series (a VIP reloaded away).
    pub fn set_announced(&self, vip: std::net::IpAddr, announced: Option<bool>) {
        let label = VipLabel {
            vip: vip.to_string(),
        };
        match announced {
            Some(up) => {
                self.announced.get_or_create(&label).set(i64::from(up));
            }
            None => {
                self.announced.remove(&label);
            }
        }
    }

    pub fn announce_failed(&self, cause: &str) {
        self.announce_errors
            .get_or_create(&CauseLabel {
                cause: cause.to_owned(),
            })
            .inc();
    }

    /// `None`: directord is not tracked.
    pub fn set_directord_up(&self, up: Option<bool>) {
        self.directord_up.set(up.map_or(-1, i64::from));
    }

    pub fn directord_checked(&self, result: &str) {
        self.directord_checks
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    pub fn scheduling(&self, cause: &str) {
        self.scheduling
            .get_or_create(&CauseLabel {
                cause: cause.to_owned(),
            })
            .inc();
    }

    pub fn notify_failed(&self, cause: &str) {
        self.notify_failures
            .get_or_create(&CauseLabel {
                cause: cause.to_owned(),
            })
            .inc();
    }

    pub fn interface_dropped(&self, interface: &str, cause: &str) {
        let labels = InterfaceDropLabels {
            interface: interface.to_owned(),
            cause: cause.to_owned(),
        };
        self.interface_drops.get_or_create(&labels).inc();
    }

    /// An instance that stops (or restarts on reload) starts its series afresh, as its
    /// control-socket counters do.
    pub fn forget(&self, instance: &str, causes: impl IntoIterator<Item = String>) {
        let one = label(instance);
        for family in [
            &self.transitions,
            &self.became_master,
            &self.adverts_sent,
            &self.adverts_received,
        ] {
            family.remove(&one);
        }
        self.priority.remove(&one);
        for s in STATES {
            self.state.remove(&StateLabels {
                instance: instance.to_owned(),
                state: s.as_str().to_owned(),
            });
        }
        for cause in causes {
            self.drops.remove(&DropLabels {
                instance: instance.to_owned(),
                cause,
            });
        }
        let described = self
            .ka_instances
            .lock()
            .expect("metrics lock")
            .remove(instance);
        if let Some(described) = described {
            for family in self.ka_counters.values() {
                family.remove(&described.labels);
            }
            for labels in Self::ka_state_labels(&described) {
                self.ka_state.remove(&labels);
            }
        }
    }
}

/// A virtual address as keepalived writes it (ipaddresstos in vrrp_ipaddress.c): the prefix
/// length only when it is not a host's.
fn keepalived_address(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

fn label(instance: &str) -> InstanceLabel {
    InstanceLabel {
        instance: instance.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(metrics: &Metrics) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &metrics.registry.lock().unwrap())
            .unwrap();
        out
    }

    #[test]
    fn state_is_one_hot_and_forgetting_removes_the_series() {
        let metrics = Metrics::new();
        metrics.transition("VI_1", State::Initialize, State::Backup);
        metrics.transition("VI_1", State::Backup, State::Master);
        metrics.dropped("VI_1", "ttl");
        metrics.interface_dropped("eth0", "vrid_mismatch");
        let out = text(&metrics);
        assert!(
            out.contains("vrrp_state{instance=\"VI_1\",state=\"MASTER\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("vrrp_state{instance=\"VI_1\",state=\"BACKUP\"} 0"),
            "{out}"
        );
        assert!(
            out.contains("vrrp_transitions_total{instance=\"VI_1\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("vrrp_became_master_total{instance=\"VI_1\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("vrrp_drops_total{instance=\"VI_1\",cause=\"ttl\"} 1"),
            "{out}"
        );
        assert!(
            out.contains(
                "vrrp_interface_drops_total{interface=\"eth0\",cause=\"vrid_mismatch\"} 1"
            ),
            "{out}"
        );
        metrics.forget("VI_1", ["ttl".to_owned()]);
        let out = text(&metrics);
        assert!(!out.contains("instance=\"VI_1\""), "{out}");
        assert!(out.contains("interface=\"eth0\""), "{out}");
    }

    /// `[announce]`: a VIP's series follows its announcement and goes with it; refusals are
    /// counted by cause.
    #[test]
    fn announced_vips_and_refusals() {
        let metrics = Metrics::new();
        let vip: std::net::IpAddr = "192.0.2.100".parse().unwrap();
        metrics.set_announced(vip, Some(false));
        assert!(text(&metrics).contains("vrrp_announced{vip=\"192.0.2.100\"} 0"));
        metrics.set_announced(vip, Some(true));
        metrics.announce_failed("add_route");
        let out = text(&metrics);
        assert!(
            out.contains("vrrp_announced{vip=\"192.0.2.100\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("vrrp_announce_errors_total{cause=\"add_route\"} 1"),
            "{out}"
        );
        metrics.set_announced(vip, None);
        assert!(!text(&metrics).contains("vrrp_announced{"));
    }

    // What keepalived-exporter's dashboards read: keepalived's state numbers, one state series
    // per VIP, and keepalived's counters moved by the events keepalived counts them for.
    #[test]
    fn keepalived_exporter_series_follow_keepalived_counting() {
        let metrics = Metrics::new();
        let vips: Vec<IpNet> = vec![
            "192.0.2.100/32".parse().unwrap(),
            "192.0.2.101/24".parse().unwrap(),
        ];
        metrics.describe("VI_1", "eth0", 51, &vips);
        metrics.set_state("VI_1", State::Initialize);
        let labels = "iname=\"VI_1\",intf=\"eth0\",vrid=\"51\"";
        let out = text(&metrics);
        assert!(out.contains("keepalived_up 1"), "{out}");
        assert!(
            out.contains(&format!(
                "keepalived_vrrp_state{{{labels},ip_address=\"192.0.2.100\"}} 0"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!("keepalived_release_master_total{{{labels}}} 0")),
            "{out}"
        );

        metrics.transition("VI_1", State::Initialize, State::Backup);
        metrics.advert_received("VI_1", 100);
        metrics.advert_received("VI_1", 0);
        metrics.transition("VI_1", State::Backup, State::Master);
        metrics.advert_sent("VI_1", 100);
        for cause in [
            "ttl",
            "auth_failure",
            "address_list_mismatch",
            "bad_checksum",
            "advert_interval_mismatch",
        ] {
            metrics.dropped("VI_1", cause);
        }
        metrics.advert_sent("VI_1", 0);
        metrics.transition("VI_1", State::Master, State::Backup);
        let out = text(&metrics);
        for (name, value) in [
            ("keepalived_become_master_total", 1),
            ("keepalived_release_master_total", 1),
            ("keepalived_advertisements_sent_total", 2),
            ("keepalived_priority_zero_sent_total", 1),
            ("keepalived_priority_zero_received_total", 1),
            // The one with a foreign address list counts as received, as in keepalived.
            ("keepalived_advertisements_received_total", 3),
            ("keepalived_address_list_errors_total", 1),
            ("keepalived_ip_ttl_errors_total", 1),
            ("keepalived_authentication_failure_total", 1),
            ("keepalived_advertisements_interval_errors_total", 1),
            ("keepalived_packet_length_errors_total", 0),
        ] {
            let line = format!("{name}{{{labels}}} {value}");
            assert!(out.lines().any(|l| l == line), "missing {line}:\n{out}");
        }
        assert!(
            out.contains(&format!(
                "keepalived_vrrp_state{{{labels},ip_address=\"192.0.2.100\"}} 1"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "keepalived_vrrp_state{{{labels},ip_address=\"192.0.2.101/24\"}} 1"
            )),
            "{out}"
        );

        metrics.forget("VI_1", Vec::new());
        assert!(!text(&metrics).contains("iname=\"VI_1\""));
    }
}
