//! directord's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use directord::check::{CheckId, DownLabels, HealthView, UnknownLabels};
use directord::table::ServerId;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

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
    /// Whole-table reads: start, periodic verify, after a netlink error.
    pub ipvs_dumps: Counter,
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
    /// The checker's view, once checks run.
    checks: Checks,
}

/// The health checker's per-server view, read on each scrape: the checker's view (by shared check) and the entries each check answers for, which a
/// reload changes.
#[derive(Clone, Default)]
struct Checks(
    Arc<OnceLock<HealthView<CheckId>>>,
    Arc<Mutex<HashMap<CheckId, Vec<ServerId>>>>,
);

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Checks")
    }
}

impl Collector for Checks {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(view) = self.0.get() else {
            return Ok(());
        };
        let entries = self.1.lock().map(|e| e.clone()).unwrap_or_default();
        let mut rows = Vec::new();
        view.for_each(|check, health| {
            for (key, real) in entries.get(check).map_or(&[][..], Vec::as_slice) {
                let labels = ServerLabels {
                    service: key.to_string(),
                    real: real.to_string(),
                };
                rows.push((labels, health.latency, health.probes));
            }
        });
        let mut latency = encoder.encode_descriptor(
            "directord_check_latency_seconds",
            "How long the last health check of a real server took",
            None,
            MetricType::Gauge,
        )?;
        for (labels, took, _) in &rows {
            if let Some(took) = took {
                ConstGauge::new(took.as_secs_f64()).encode(latency.encode_family(labels)?)?;
            }
        }
        let mut probes = encoder.encode_descriptor(
            "directord_checks",
            "Health checks made of a real server",
            None,
            MetricType::Counter,
        )?;
        for (labels, _, count) in &rows {
            ConstCounter::new(*count).encode(probes.encode_family(labels)?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// Publishes the checker's latency and probe counts from now on.
    pub fn watch_checks(&self, view: HealthView<CheckId>) {
        let _ = self.checks.0.set(view);
    }

    /// The entries each shared check answers for, as of the latest (re)load.
    pub fn check_entries(&self, entries: HashMap<CheckId, Vec<ServerId>>) {
        if let Ok(mut held) = self.checks.1.lock() {
            *held = entries;
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(ipvs::IpvsCollector::default()));
        registry.register_collector(Box::new(self.checks.clone()));
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
        registry.register(
            "ipvs_dumps",
            "Whole IPVS table reads (start, periodic verify, after a netlink error)",
            self.ipvs_dumps.clone(),
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
