//! directord's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use directord::check::scheduler::ServerHealth;
use directord::check::{CheckId, DownLabels, HealthView, UnknownLabels};
use directord::table::ServerId;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
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
    /// Each real-server entry's health and wanted weight, as the last reconcile left them.
    pub servers: Servers,
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
    Arc<Mutex<HashMap<CheckId, Arc<[ServerId]>>>>,
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
        // Borrowed for the scrape: a copy of the map and a label set per entry cost megabytes
        // on every scrape at 37,298 entries. A reload waits for the scrape to end.
        let entries = self.1.lock().map_err(|_| std::fmt::Error)?;
        let each = |f: &mut dyn FnMut(&ServerId, &ServerHealth) -> Result<(), std::fmt::Error>| {
            let mut result = Ok(());
            view.for_each(|check, health| {
                for id in entries.get(check).map_or(&[][..], |e| &e[..]) {
                    if result.is_ok() {
                        result = f(id, health);
                    }
                }
            });
            result
        };
        let mut latency = encoder.encode_descriptor(
            "directord_check_latency_seconds",
            "How long the last health check of a real server took",
            None,
            MetricType::Gauge,
        )?;
        each(&mut |id, health| match health.latency {
            Some(took) => ConstGauge::new(took.as_secs_f64())
                .encode(latency.encode_family(&server_labels(id))?),
            None => Ok(()),
        })?;
        let mut probes = encoder.encode_descriptor(
            "directord_checks",
            "Health checks made of a real server",
            None,
            MetricType::Counter,
        )?;
        each(&mut |id, health| {
            ConstCounter::new(health.probes).encode(probes.encode_family(&server_labels(id))?)
        })
    }
}

/// One real-server entry as the gauges show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerRow {
    pub id: ServerId,
    pub up: bool,
    pub weight: u32,
}

/// `directord_server_up` and `directord_server_weight`, encoded at scrape time from the rows
/// the last reconcile published. A gauge family kept two label sets of two Strings and two
/// gauges per entry (12 MB at 37,298 entries); a row is 64 bytes and the labels are written
/// straight into the scrape.
#[derive(Clone, Default)]
pub struct Servers(Arc<Mutex<Arc<Vec<ServerRow>>>>);

impl std::fmt::Debug for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Servers")
    }
}

impl Servers {
    /// Replaces the rows; a scrape under way finishes with the ones it took.
    pub fn publish(&self, rows: Vec<ServerRow>) {
        if let Ok(mut held) = self.0.lock() {
            *held = Arc::new(rows);
        }
    }
}

impl Collector for Servers {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Taken, not held: the daemon publishes after every reconcile. The help ends with the
        // full stop that `Registry::register` added to the families these replace.
        let rows = Arc::clone(&*self.0.lock().map_err(|_| std::fmt::Error)?);
        let gauges: [(&str, &str, RowValue); 2] = [
            (
                "directord_server_up",
                "1 while a real server counts as up.",
                |row| i64::from(row.up),
            ),
            (
                "directord_server_weight",
                "The weight directord wants for a real server.",
                |row| i64::from(row.weight),
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for row in rows.iter() {
                ConstGauge::new(value(row))
                    .encode(family.encode_family(&server_labels(&row.id))?)?;
            }
        }
        Ok(())
    }
}

/// One gauge's value of a row.
type RowValue = fn(&ServerRow) -> i64;

/// A label value written from its Display form, without a String per sample.
struct Shown<'a>(&'a dyn std::fmt::Display);

impl EncodeLabelValue for Shown<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        write!(encoder, "{}", self.0)
    }
}

/// The labels of [`ServerLabels`], borrowed.
fn server_labels((key, real): &ServerId) -> [(&'static str, Shown<'_>); 2] {
    [("service", Shown(key)), ("real", Shown(real))]
}

impl Metrics {
    /// Publishes the checker's latency and probe counts from now on.
    pub fn watch_checks(&self, view: HealthView<CheckId>) {
        let _ = self.checks.0.set(view);
    }

    /// The entries each shared check answers for, as of the latest (re)load.
    pub fn check_entries(&self, entries: HashMap<CheckId, Arc<[ServerId]>>) {
        if let Ok(mut held) = self.checks.1.lock() {
            *held = entries;
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(ipvs::IpvsCollector::default()));
        registry.register_collector(Box::new(self.checks.clone()));
        registry.register_collector(Box::new(self.servers.clone()));
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

    /// The gauges encoded from published rows read exactly as the gauge families they
    /// replace did (names, help, labels and values, which monitoring/ and the UML tests
    /// query), and a publish replaces every row: an entry gone from the table goes from the
    /// scrape too.
    #[test]
    fn server_gauges_are_encoded_from_the_published_rows() {
        use lvs_ipvs::{Protocol, ServiceKey};
        let key = ServiceKey::inet(Protocol::Tcp, "192.0.2.100:80".parse().unwrap());
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let row = |real: &str, up, weight| ServerRow {
            id: (key, real.parse().unwrap()),
            up,
            weight,
        };
        metrics.servers.publish(vec![
            row("198.51.100.11:8080", true, 70),
            row("198.51.100.12:8080", false, 0),
        ]);
        let scrape = || {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
            text
        };
        let text = scrape();
        let expected = "\
# HELP directord_server_up 1 while a real server counts as up.
# TYPE directord_server_up gauge
directord_server_up{service=\"tcp 192.0.2.100:80\",real=\"198.51.100.11:8080\"} 1
directord_server_up{service=\"tcp 192.0.2.100:80\",real=\"198.51.100.12:8080\"} 0
# HELP directord_server_weight The weight directord wants for a real server.
# TYPE directord_server_weight gauge
directord_server_weight{service=\"tcp 192.0.2.100:80\",real=\"198.51.100.11:8080\"} 70
directord_server_weight{service=\"tcp 192.0.2.100:80\",real=\"198.51.100.12:8080\"} 0
";
        assert!(text.contains(expected), "{text}");
        metrics
            .servers
            .publish(vec![row("198.51.100.12:8080", true, 5)]);
        let text = scrape();
        assert!(!text.contains("198.51.100.11:8080"), "{text}");
        assert!(
            text.contains(
                "directord_server_weight{service=\"tcp 192.0.2.100:80\",real=\"198.51.100.12:8080\"} 5"
            ),
            "{text}"
        );
    }

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
