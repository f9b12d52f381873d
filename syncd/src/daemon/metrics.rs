//! syncd's Prometheus metrics: the engine's counters, published after each turn of the loop.

use lvs_control::syncd::Counters;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabels {
    pub cause: String,
}

/// Each counter paired with the engine field it follows.
type Field = (&'static str, &'static str, fn(&Counters) -> u64);

const FIELDS: &[Field] = &[
    ("messages_sent", "Sync messages sent to peers", |c| {
        c.messages_sent
    }),
    ("entries_sent", "Entries sent to peers", |c| c.entries_sent),
    (
        "messages_received",
        "Sync messages accepted from peers or the group",
        |c| c.messages_received,
    ),
    (
        "entries_received",
        "Entries accepted from peers or the group",
        |c| c.entries_received,
    ),
    (
        "kernel_messages_observed",
        "Messages the local kernel master sent",
        |c| c.kernel_messages_observed,
    ),
    (
        "kernel_entries_observed",
        "Entries the local kernel master sent",
        |c| c.kernel_entries_observed,
    ),
    (
        "messages_injected",
        "Messages handed to the local kernel backup",
        |c| c.messages_injected,
    ),
    ("hellos_sent", "Hellos sent to peers", |c| c.hellos_sent),
    ("hellos_received", "Hellos received from peers", |c| {
        c.hellos_received
    }),
    ("resyncs_sent", "Full resyncs sent", |c| c.resyncs_sent),
    ("resyncs_received", "Full resyncs received", |c| {
        c.resyncs_received
    }),
    (
        "snapshots",
        "Snapshots of /proc/net/ip_vs_conn taken",
        |c| c.snapshots,
    ),
    ("entries_expired", "Mirror entries expired", |c| {
        c.entries_expired
    }),
    (
        "timeouts_clamped",
        "Received entries whose timeout was clamped to the kernel's longest for the state",
        |c| c.timeouts_clamped,
    ),
];

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Vec<Counter>,
    drops: Family<CauseLabels, Counter>,
    mirror_entries: Gauge,
    master: Gauge,
    /// When the newest update reached the mirror, in seconds since the epoch (0: none yet).
    last_update: Gauge<f64, std::sync::atomic::AtomicU64>,
    published: Counters,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            counters: FIELDS.iter().map(|_| Counter::default()).collect(),
            ..Metrics::default()
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        let registry = registry.sub_registry_with_prefix("syncd");
        for ((name, help, _), counter) in FIELDS.iter().zip(&self.counters) {
            registry.register(*name, *help, counter.clone());
        }
        registry.register(
            "drops",
            "Dropped datagrams or entries by cause",
            self.drops.clone(),
        );
        registry.register(
            "mirror_entries",
            "Entries in the mirror table",
            self.mirror_entries.clone(),
        );
        registry.register("master", "1 in the master role", self.master.clone());
        // A timestamp rather than a lag: a gauge set at each turn of the loop would stand
        // still while the loop idles, the timestamp stays true until the next update.
        registry.register(
            "last_update_timestamp_seconds",
            "When the newest connection update reached the mirror (seconds since the epoch, 0 before the first); time() minus this is the sync lag",
            self.last_update.clone(),
        );
    }

    /// Brings the metrics up to `counters` (which only grow).
    /// `lag`: the age of the newest update in the mirror, if any.
    pub fn publish(
        &mut self,
        counters: &Counters,
        mirror_entries: usize,
        master: bool,
        lag: Option<std::time::Duration>,
    ) {
        if let Some(lag) = lag {
            let at = std::time::SystemTime::now()
                .checked_sub(lag)
                .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok());
            if let Some(at) = at {
                self.last_update.set(at.as_secs_f64());
            }
        }
        for ((_, _, get), counter) in FIELDS.iter().zip(&self.counters) {
            counter.inc_by(get(counters).saturating_sub(get(&self.published)));
        }
        for (cause, n) in &counters.drops {
            let before = self.published.drops.get(cause).copied().unwrap_or(0);
            if *n > before {
                self.drops
                    .get_or_create(&CauseLabels {
                        cause: cause.clone(),
                    })
                    .inc_by(n - before);
            }
        }
        self.mirror_entries
            .set(i64::try_from(mirror_entries).unwrap_or(i64::MAX));
        self.master.set(i64::from(master));
        self.published = counters.clone();
    }
}
