//! directord's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use directord::check::{DownLabels, UnknownLabels};

mod ipvs;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    pub service: String,
    pub real: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Netlink requests sent to change the table.
    pub ipvs_requests: Counter,
    /// Of those, refused by the kernel.
    pub ipvs_failures: Counter,
    pub reloads: Family<ResultLabels, Counter>,
    pub health_transitions: Family<ServerLabels, Counter>,
    /// 1 while the real server counts as up (health and feedback together).
    pub server_up: Family<ServerLabels, Gauge>,
    /// The weight directord wants for it (0 when quiesced).
    pub server_weight: Family<ServerLabels, Gauge>,
    /// Probes that could not be made for want of a director resource (health unchanged).
    pub probe_unknown: Family<UnknownLabels, Counter>,
    /// Probes that found a real server down, by cause.
    pub probe_down: Family<DownLabels, Counter>,
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(ipvs::IpvsCollector::default()));
        let registry = registry.sub_registry_with_prefix("directord");
        registry.register(
            "ipvs_requests",
            "Netlink requests sent to change the IPVS table",
            self.ipvs_requests.clone(),
        );
        registry.register(
            "ipvs_failures",
            "Table changes the kernel refused",
            self.ipvs_failures.clone(),
        );
        registry.register("reloads", "Config reloads by result", self.reloads.clone());
        registry.register(
            "health_transitions",
            "Real-server health changes",
            self.health_transitions.clone(),
        );
        registry.register(
            "server_up",
            "1 while a real server counts as up",
            self.server_up.clone(),
        );
        registry.register(
            "server_weight",
            "The weight directord wants for a real server",
            self.server_weight.clone(),
        );
        registry.register(
            "probe_unknown",
            "Probes without a result because the director ran short of descriptors, buffers \
             or memory; health is left as it was",
            self.probe_unknown.clone(),
        );
        registry.register(
            "probe_down",
            "Probes that found a real server down, by cause (timeout, refused, status, \
             mismatch, rejected...)",
            self.probe_down.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use directord::check::DownCause;

    #[test]
    fn probe_down_is_exposed_by_cause() {
        let metrics = Metrics::default();
        metrics
            .probe_down
            .get_or_create(&DownLabels {
                cause: DownCause::ReadLimit,
            })
            .inc();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("directord_probe_down_total{cause=\"read_limit\"} 1"),
            "{text}"
        );
    }
}
