//! vrrpd's Prometheus metrics, served by [`lvs_control::metrics::serve`] on `control.metrics`
//! with vrrpd's port offset (+1). They move at the same places as the control socket's
//! [`lvs_control::vrrpd::Counters`], so the two never disagree.

use std::sync::{Arc, Mutex};

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
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vrrp");
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
        };
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
        *metrics.registry.lock().expect("fresh mutex") = registry;
        metrics
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
    }

    pub fn set_priority(&self, instance: &str, priority: u8) {
        self.priority
            .get_or_create(&label(instance))
            .set(i64::from(priority));
    }

    pub fn transition(&self, instance: &str, new: State) {
        self.transitions.get_or_create(&label(instance)).inc();
        if new == State::Master {
            self.became_master.get_or_create(&label(instance)).inc();
        }
        self.set_state(instance, new);
    }

    pub fn advert_sent(&self, instance: &str) {
        self.adverts_sent.get_or_create(&label(instance)).inc();
    }

    pub fn advert_received(&self, instance: &str) {
        self.adverts_received.get_or_create(&label(instance)).inc();
    }

    pub fn dropped(&self, instance: &str, cause: &str) {
        let labels = DropLabels {
            instance: instance.to_owned(),
            cause: cause.to_owned(),
        };
        self.drops.get_or_create(&labels).inc();
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
        metrics.transition("VI_1", State::Backup);
        metrics.transition("VI_1", State::Master);
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
}
