//! Prometheus exposition for every daemon: `GET /metrics` on `control.metrics`, each daemon on
//! its own port offset (directord +0, vrrpd +1, syncd +2, feedbackd +3) so one setting serves
//! the whole director.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Port offsets from `control.metrics`.
pub fn address(base: SocketAddr, daemon: &str) -> SocketAddr {
    let offset = match daemon {
        "vrrpd" => 1,
        "syncd" => 2,
        "feedbackd" => 3,
        _ => 0,
    };
    SocketAddr::new(base.ip(), base.port().saturating_add(offset))
}

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What one scrape may hold: a client that sends no request, or reads no reply, is cut off
/// after a timeout, and no more than `max_connections` are served at once (the others wait in
/// the kernel's backlog), so slow or stuck clients cannot use up the daemon's descriptors.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 32,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    daemon: String,
}

/// What every daemon publishes besides its own series: `lvs_director_build_info` (1, with the
/// version and the daemon's name, for dashboards that tell releases apart) and the standard
/// `process_*` series client_golang's process collector has, which prometheus-client lacks.
pub fn register_common(registry: &mut Registry) {
    let daemon = std::env::current_exe()
        .ok()
        .and_then(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let build: Family<BuildLabels, Gauge> = Family::default();
    build
        .get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            daemon,
        })
        .set(1);
    registry.register(
        "lvs_director_build_info",
        "1, labelled with the running lvs-director version and daemon",
        build,
    );
    registry.register_collector(Box::new(ProcessCollector));
}

/// Reads /proc/self on each scrape, as client_golang's process collector does.
#[derive(Debug)]
struct ProcessCollector;

/// The process's figures, from /proc/self.
#[derive(Debug, Default, PartialEq)]
struct ProcessStat {
    cpu_seconds: f64,
    start_time_seconds: f64,
    virtual_bytes: f64,
    resident_bytes: f64,
}

impl ProcessStat {
    /// Parses /proc/self/stat; `btime` is the boot time (seconds since the epoch).
    fn parse(stat: &str, btime: f64, ticks: f64, page: f64) -> Option<ProcessStat> {
        // The command name, field 2, may hold spaces and parentheses: count from its end.
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Field n of proc(5) is fields[n - 3] here.
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        Some(ProcessStat {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            start_time_seconds: btime + field(22)? / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
        })
    }

    fn read() -> Option<ProcessStat> {
        use nix::time::{ClockId, clock_gettime};
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The boot time as the wall clock minus the time since boot (CLOCK_BOOTTIME, the clock
        // of stat's start time), not /proc/stat's btime: a unit with ProcSubset=pid
        // (feedbackd's) cannot read /proc/stat.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        let since_boot = Duration::from(clock_gettime(ClockId::CLOCK_BOOTTIME).ok()?);
        let btime = now.checked_sub(since_boot)?.as_secs_f64();
        use nix::unistd::{SysconfVar, sysconf};
        let ticks = sysconf(SysconfVar::CLK_TCK).ok().flatten()?;
        let page = sysconf(SysconfVar::PAGE_SIZE).ok().flatten()?;
        ProcessStat::parse(&stat, btime, ticks as f64, page as f64)
    }
}

fn encode_gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        // A /proc that cannot be read leaves the series out rather than failing the scrape.
        if let Some(stat) = ProcessStat::read() {
            let cpu = ConstCounter::new(stat.cpu_seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                cpu.metric_type(),
            )?)?;
            for (name, help, value) in [
                (
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds",
                    stat.start_time_seconds,
                ),
                (
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes",
                    stat.virtual_bytes,
                ),
                (
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes",
                    stat.resident_bytes,
                ),
            ] {
                encode_gauge(&mut encoder, name, help, value)?;
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let open = fds.count() as f64;
            encode_gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                open,
            )?;
        }
        if let Ok((soft, _)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            encode_gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors",
                soft as f64,
            )?;
        }
        Ok(())
    }
}

/// Serves `registry` at `/metrics` until `shutdown` (hyper: [`crate::http`]); other paths get a
/// 404. A daemon that also serves `/status.json` or pages builds its own [`crate::http::Routes`].
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Mutex<Registry>>,
    shutdown: CancellationToken,
) {
    serve_with(listener, registry, shutdown, Limits::default()).await;
}

/// [`serve`] with other limits.
pub async fn serve_with(
    listener: TcpListener,
    registry: Arc<Mutex<Registry>>,
    shutdown: CancellationToken,
    limits: Limits,
) {
    crate::http::serve(
        listener,
        crate::http::Routes::new(registry),
        shutdown,
        limits,
    )
    .await;
}

/// The scrape for a client whose Accept header is `accept`, with its content type:
/// OpenMetrics for those that ask for it (Prometheus does), else Prometheus's text format
/// 0.0.4, which older scrapers, `promtool check metrics` and node_exporter's textfile
/// collector read.
pub fn encode(
    registry: &Mutex<Registry>,
    accept: &str,
) -> Result<(&'static str, String), std::fmt::Error> {
    let mut body = String::new();
    let registry = registry.lock().map_err(|_| std::fmt::Error)?;
    prometheus_client::encoding::text::encode(&mut body, &registry)?;
    if accept.contains("application/openmetrics-text") {
        Ok((CONTENT_TYPE, body))
    } else {
        Ok((TEXT_CONTENT_TYPE, openmetrics_to_text(&body)))
    }
}

const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text as prometheus-client writes it, in Prometheus's 0.0.4 format: a counter
/// family is named with its `_total` there (OpenMetrics names it without), and 0.0.4 has
/// neither `# UNIT` nor `# EOF`. Samples are the same in both.
fn openmetrics_to_text(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" counter"))
        {
            counters.insert(name);
        }
    }
    let mut text = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                text.push_str(&format!("{prefix}{name}{suffix} {tail}"));
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn serves_the_registry() {
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        registry.register("adverts_sent", "Adverts sent", counter.clone());
        counter.inc_by(3);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            Arc::new(Mutex::new(registry)),
            shutdown.clone(),
        ));

        let fetch = |path: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.unwrap();
            reply
        };
        let metrics = fetch("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
        assert!(metrics.contains("adverts_sent_total 3"), "{metrics}");
        // Every daemon's scrape carries the build and process series.
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            metrics.contains(&format!(
                "lvs_director_build_info{{version=\"{version}\",daemon="
            )),
            "{metrics}"
        );
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(
                metrics.lines().any(|l| l.starts_with(name)),
                "{name}: {metrics}"
            );
        }
        // This test's process started moments ago, by the wall clock.
        let started: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            (now - 600.0..=now + 1.0).contains(&started),
            "{started} {now}"
        );
        assert!(fetch("/").await.starts_with("HTTP/1.1 404"));
        shutdown.cancel();
    }

    /// `registry` served on a loopback port; cancel the token to stop.
    async fn serve_on(registry: Registry, limits: Limits) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_with(
            listener,
            Arc::new(Mutex::new(registry)),
            shutdown.clone(),
            limits,
        ));
        (addr, shutdown)
    }

    // Caught: the reply was written with no timeout, so a client that asked and never read
    // (or a slow one) held its connection and descriptor for ever; enough of them and the
    // daemon ran out of descriptors, which made probes fail.
    #[tokio::test]
    async fn a_client_that_does_not_read_is_cut_off_and_others_are_served() {
        use prometheus_client::encoding::EncodeLabelSet;
        use prometheus_client::metrics::family::Family;
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        struct Labels {
            server: String,
        }
        // A reply of 16 MB: more than the socket buffers between a server and a client that
        // does not read can hold (loopback's send buffer grows to 4 MB, tcp_wmem).
        let padding = "x".repeat(360);
        let mut registry = Registry::default();
        let family: Family<Labels, Counter> = Family::default();
        registry.register("probes", "Probes by server", family.clone());
        for i in 0..40_000 {
            family
                .get_or_create(&Labels {
                    server: format!("192.0.2.{}:{}/{padding}", i % 250, 1000 + i),
                })
                .inc();
        }
        let limits = Limits {
            max_connections: 4,
            read_timeout: Duration::from_millis(300),
            write_timeout: Duration::from_millis(300),
        };
        let (addr, shutdown) = serve_on(registry, limits).await;

        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stuck = socket.connect(addr).await.unwrap();
        stuck
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        // One that connects and says nothing.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();

        // Others are served meanwhile.
        let mut other = tokio::net::TcpStream::connect(addr).await.unwrap();
        other
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), other.read_to_end(&mut reply))
            .await
            .expect("a scrape beside a stuck client")
            .unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
        let full = reply.len();

        tokio::time::sleep(Duration::from_millis(600)).await;
        // The server gave up on both: the stuck reader finds the end of a truncated reply,
        // the silent one an end with nothing.
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(3), stuck.read_to_end(&mut got)).await;
        let Ok(read) = read else {
            panic!("the server still holds a client that does not read");
        };
        // A reset is as good as an end here.
        let _ = read;
        assert!(got.len() < full, "{} of {full} bytes", got.len());
        let mut nothing = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), silent.read_to_end(&mut nothing))
            .await
            .expect("the server still holds a client that sends nothing")
            .unwrap();
        assert!(nothing.is_empty());
        shutdown.cancel();
    }

    // Caught: no cap on connections; each one cost a descriptor and a task.
    #[tokio::test]
    async fn connections_beyond_the_cap_wait() {
        let limits = Limits {
            max_connections: 2,
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        };
        let (addr, shutdown) = serve_on(Registry::default(), limits).await;
        let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        third
            .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let waited =
            tokio::time::timeout(Duration::from_millis(500), third.read_to_end(&mut reply)).await;
        assert!(waited.is_err(), "served beyond the cap");
        drop(_a);
        tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut reply))
            .await
            .expect("served once a slot is free")
            .unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 200 OK"));
        shutdown.cancel();
    }

    // A command name with spaces and parentheses would shift the fields if the line were
    // split from its start: they are counted from the name's closing parenthesis.
    #[test]
    fn process_stat_counts_fields_from_the_end_of_the_command_name() {
        let mut line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 ".to_owned();
        // utime 250, stime 50 (fields 14, 15), then 16..21, starttime 1000 (22),
        // vsize 8 MiB (23), rss 300 pages (24).
        line.push_str("250 50 0 0 20 0 1 0 1000 8388608 300 18446744073709551615");
        let stat = ProcessStat::parse(&line, 1_700_000_000.0, 100.0, 4096.0).unwrap();
        assert_eq!(
            stat,
            ProcessStat {
                cpu_seconds: 3.0,
                start_time_seconds: 1_700_000_010.0,
                virtual_bytes: 8_388_608.0,
                resident_bytes: 1_228_800.0,
            }
        );
        assert_eq!(ProcessStat::parse("4242 (cut", 0.0, 100.0, 4096.0), None);
    }

    // promtool and pre-OpenMetrics scrapers read 0.0.4, where a counter's family carries its
    // `_total`: without the rewrite they saw `x_total` samples under a `x` family.
    #[test]
    fn text_format_unless_openmetrics_is_asked_for() {
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        registry.register("adverts_sent", "Adverts sent", counter.clone());
        counter.inc();
        let registry = Mutex::new(registry);
        let (kind, text) = encode(&registry, "*/*").unwrap();
        assert_eq!(kind, TEXT_CONTENT_TYPE);
        assert_eq!(
            text,
            "# HELP adverts_sent_total Adverts sent.\n# TYPE adverts_sent_total counter\nadverts_sent_total 1\n"
        );
        let (kind, open) = encode(
            &registry,
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )
        .unwrap();
        assert_eq!(kind, CONTENT_TYPE);
        assert!(open.contains("# TYPE adverts_sent counter\n"), "{open}");
        assert!(open.ends_with("# EOF\n"), "{open}");
    }

    #[test]
    fn each_daemon_has_its_port() {
        let base: SocketAddr = "127.0.0.1:9542".parse().unwrap();
        assert_eq!(address(base, "directord").port(), 9542);
        assert_eq!(address(base, "vrrpd").port(), 9543);
        assert_eq!(address(base, "feedbackd").port(), 9545);
    }
}
