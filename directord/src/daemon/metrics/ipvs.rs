//! The IPVS table in node_exporter's names and labels (collector/ipvs_linux.go), read on each
//! scrape as node_exporter does, so dashboards and alerts written for node_exporter's ipvs
//! collector read directord unchanged.
//!
//! Per real server: `node_ipvs_backend_weight`, `node_ipvs_backend_connections_active` and
//! `_inactive`, labelled `local_address`, `local_port`, `remote_address`, `remote_port`,
//! `proto`, `local_mark` with node_exporter's values: `proto` TCP, UDP, SCTP or FWM; for a
//! fwmark service an empty `local_address`, `local_port` 0 and the mark in `local_mark` as
//! /proc/net/ip_vs writes it (8 upper-case hex digits), else an empty `local_mark`. They come
//! from the kernel over generic netlink (the figures /proc/net/ip_vs prints); node_exporter
//! cannot parse IPv6 services there, these are given with addresses as Rust writes them.
//! Totals: `node_ipvs_connections_total`, `node_ipvs_incoming_packets_total`,
//! `_outgoing_packets_total`, `_incoming_bytes_total`, `_outgoing_bytes_total` from
//! /proc/net/ip_vs_stats, as node_exporter reads them.

use std::sync::atomic::{AtomicU64, Ordering};

use lvs_ipvs::{IpvsClient, Protocol, Service, ServiceKey};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub local_address: String,
    pub local_port: String,
    pub remote_address: String,
    pub remote_port: String,
    pub proto: String,
    pub local_mark: String,
}

/// One real server's row, as node_exporter publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub labels: BackendLabels,
    pub weight: u64,
    pub active: u64,
    pub inactive: u64,
}

/// The service half of node_exporter's labels.
fn service_labels(key: &ServiceKey) -> (String, String, String, String) {
    match *key {
        ServiceKey::Inet {
            protocol,
            addr,
            port,
            ..
        } => {
            let proto = match protocol {
                Protocol::Other(n) => n.to_string(),
                known => known.as_str().to_uppercase(),
            };
            (addr.to_string(), port.to_string(), proto, String::new())
        }
        ServiceKey::Fwmark { mark, .. } => (
            String::new(),
            "0".to_owned(),
            "FWM".to_owned(),
            format!("{mark:08X}"),
        ),
    }
}

/// The rows of every real server of `services`, given each service's destinations.
pub fn backends<'a>(
    services: impl IntoIterator<Item = (&'a Service, &'a [lvs_ipvs::Destination])>,
) -> Vec<Backend> {
    let mut rows = Vec::new();
    for (service, dests) in services {
        let (local_address, local_port, proto, local_mark) = service_labels(&service.key);
        for dest in dests {
            rows.push(Backend {
                labels: BackendLabels {
                    local_address: local_address.clone(),
                    local_port: local_port.clone(),
                    remote_address: dest.addr.to_string(),
                    remote_port: dest.port.to_string(),
                    proto: proto.clone(),
                    local_mark: local_mark.clone(),
                },
                weight: u64::from(dest.weight),
                active: u64::from(dest.active_conns),
                inactive: u64::from(dest.inactive_conns),
            });
        }
    }
    rows
}

/// /proc/net/ip_vs_stats's totals: connections, packets in and out, bytes in and out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals([u64; 5]);

impl Totals {
    /// The third line holds the five totals in hex, as procfs (and node_exporter) read it.
    pub fn parse(text: &str) -> Option<Totals> {
        let fields: Vec<u64> = text
            .lines()
            .nth(2)?
            .split_whitespace()
            .map(|f| u64::from_str_radix(f, 16).ok())
            .collect::<Option<_>>()?;
        Some(Totals(fields.get(..5)?.try_into().ok()?))
    }
}

const TOTALS: [(&str, &str); 5] = [
    (
        "node_ipvs_connections",
        "The total number of connections made.",
    ),
    (
        "node_ipvs_incoming_packets",
        "The total number of incoming packets.",
    ),
    (
        "node_ipvs_outgoing_packets",
        "The total number of outgoing packets.",
    ),
    (
        "node_ipvs_incoming_bytes",
        "The total amount of incoming data.",
    ),
    (
        "node_ipvs_outgoing_bytes",
        "The total amount of outgoing data.",
    ),
];

const BACKEND: [(&str, &str); 3] = [
    (
        "node_ipvs_backend_connections_active",
        "The current active connections by local and remote address.",
    ),
    (
        "node_ipvs_backend_connections_inactive",
        "The current inactive connections by local and remote address.",
    ),
    (
        "node_ipvs_backend_weight",
        "The current backend weight by local and remote address.",
    ),
];

/// Reads the kernel's table on each scrape. A read that fails leaves the series out of that
/// scrape (as node_exporter does) and is counted in `directord_ipvs_scrape_failures_total`.
#[derive(Debug, Default)]
pub struct IpvsCollector {
    failures: AtomicU64,
}

impl IpvsCollector {
    fn read_backends() -> Result<Vec<Backend>, lvs_ipvs::Error> {
        let mut client = IpvsClient::connect()?;
        let services = client.services()?;
        let mut tables = Vec::with_capacity(services.len());
        for service in services {
            let dests = client.destinations(&service.key)?;
            tables.push((service, dests));
        }
        Ok(backends(tables.iter().map(|(s, d)| (s, d.as_slice()))))
    }

    fn encode_backends(
        encoder: &mut DescriptorEncoder<'_>,
        rows: &[Backend],
    ) -> Result<(), std::fmt::Error> {
        for (i, (name, help)) in BACKEND.into_iter().enumerate() {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for row in rows {
                let value = [row.active, row.inactive, row.weight][i];
                ConstGauge::new(value as i64).encode(family.encode_family(&row.labels)?)?;
            }
        }
        Ok(())
    }
}

impl Collector for IpvsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let totals = std::fs::read_to_string("/proc/net/ip_vs_stats")
            .ok()
            .and_then(|text| Totals::parse(&text));
        match totals {
            Some(Totals(values)) => {
                for ((name, help), value) in TOTALS.into_iter().zip(values) {
                    let counter = ConstCounter::new(value);
                    counter.encode(encoder.encode_descriptor(
                        name,
                        help,
                        None,
                        counter.metric_type(),
                    )?)?;
                }
            }
            None => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        match Self::read_backends() {
            Ok(rows) => Self::encode_backends(&mut encoder, &rows)?,
            Err(e) => {
                tracing::debug!("metrics: reading the IPVS table: {e}");
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        let failures = ConstCounter::new(self.failures.load(Ordering::Relaxed));
        failures.encode(encoder.encode_descriptor(
            "directord_ipvs_scrape_failures",
            "Scrapes that could not read /proc/net/ip_vs_stats or the IPVS table (the node_ipvs_ series are left out of those)",
            None,
            failures.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lvs_ipvs::{AddressFamily, Destination, ForwardMethod};

    // /proc/net/ip_vs_stats from a 6.1 kernel after a few fetches through a service.
    const STATS: &str = "   Total Incoming Outgoing         Incoming         Outgoing\n   Conns  Packets  Packets            Bytes            Bytes\n       3       1C       14             10D0             2A8E\n\n Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s\n       0        0        0                0                0\n";

    #[test]
    fn totals_are_the_third_line_in_hex() {
        assert_eq!(
            Totals::parse(STATS),
            Some(Totals([3, 0x1c, 0x14, 0x10d0, 0x2a8e]))
        );
        assert_eq!(Totals::parse("   Total\n   Conns\n"), None);
        assert_eq!(Totals::parse("a\nb\n  3 zz 1 1 1\n"), None);
    }

    // node_exporter's labels: upper-case protocol, fwmark services by mark with no address.
    #[test]
    fn rows_carry_node_exporters_labels() {
        let tcp = Service::new(
            ServiceKey::Inet {
                af: AddressFamily::Inet,
                protocol: Protocol::Tcp,
                addr: "192.0.2.100".parse().unwrap(),
                port: 80,
            },
            "wrr",
        );
        let fwm = Service::new(
            ServiceKey::Fwmark {
                af: AddressFamily::Inet,
                mark: 10,
            },
            "rr",
        );
        let mut real =
            Destination::new("198.51.100.2:8080".parse().unwrap(), ForwardMethod::Masq, 5);
        real.active_conns = 2;
        real.inactive_conns = 7;
        let other = Destination::new("198.51.100.3:0".parse().unwrap(), ForwardMethod::Route, 1);
        let reals = [real];
        let others = [other];
        let rows = backends([(&tcp, &reals[..]), (&fwm, &others[..])]);
        assert_eq!(
            rows[0],
            Backend {
                labels: BackendLabels {
                    local_address: "192.0.2.100".into(),
                    local_port: "80".into(),
                    remote_address: "198.51.100.2".into(),
                    remote_port: "8080".into(),
                    proto: "TCP".into(),
                    local_mark: String::new(),
                },
                weight: 5,
                active: 2,
                inactive: 7,
            }
        );
        assert_eq!(rows[1].labels.proto, "FWM");
        assert_eq!(rows[1].labels.local_address, "");
        assert_eq!(rows[1].labels.local_port, "0");
        assert_eq!(rows[1].labels.local_mark, "0000000A");
    }
}
