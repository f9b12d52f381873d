//! `feedbackd --agent`: answers every TCP connection with one agent-check line. The line is
//! computed by a sampler once a second and published to the listener thread
//! ([`super::listener`]), so a connection never waits on a measurement and costs three syscalls.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lvs_config::{Agent, AgentConnections, AgentReport};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use super::listener::{CauseLabels, ListenerMetrics, Published, ReplyListener};
use feedbackd::error::Error;
use feedbackd::procstat::{IdleWindow, LoadAvg, MemInfo, ProcStat};
use feedbackd::report::{self, Measurements, Override, ReportLog, ReportSettings, SignalOverride};
use feedbackd::sockdiag;

const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// SIGUSR1's drain. Process-wide, so a reload (SIGHUP), which runs [`run`] again, keeps it.
static SIGNAL_DRAIN: AtomicBool = AtomicBool::new(false);

fn signal_override() -> SignalOverride {
    if SIGNAL_DRAIN.load(Ordering::Relaxed) {
        SignalOverride::Drain
    } else {
        SignalOverride::None
    }
}

pub async fn run(config: &lvs_config::Config, agent: Agent) -> Result<super::Exit, Error> {
    // Before anything answers: once the agent is seen up, these signals must not kill it.
    let (mut drain, mut undrain) = match (
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
    ) {
        (Ok(drain), Ok(undrain)) => (drain, undrain),
        (Err(e), _) | (_, Err(e)) => return Err(Error::Signals(e)),
    };
    let measure_failures = Family::<CauseLabels, Counter>::default();
    let mut sampler = Sampler::new(&agent, measure_failures.clone());
    let published = Arc::new(Published::new(&sampler.sample().await));
    let metrics = ListenerMetrics::default();
    let mut registry = Registry::default();
    registry.register(
        "feedbackd_agent_measure_failures",
        "Measurements that could not be taken, by cause",
        measure_failures,
    );
    registry.register(
        "feedbackd_agent_replies",
        "Agent-check replies sent",
        metrics.replies.clone(),
    );
    registry.register(
        "feedbackd_agent_reply_failures",
        "Connections that got no reply, by cause",
        metrics.failures.clone(),
    );
    let listener = ReplyListener::start(
        agent.listen,
        Arc::clone(&published),
        metrics,
        tokio::runtime::Handle::current(),
    )
    .map_err(|source| Error::Listen {
        addr: agent.listen,
        source,
    })?;
    let http = super::serve_metrics(config, registry, false).await?;
    info!("agent listening on {}", agent.listen);
    super::notify_ready();
    let sampling = async {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            // A signal takes effect at once, not at the next tick.
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = drain.recv() => {
                    SIGNAL_DRAIN.store(true, Ordering::Relaxed);
                    info!("SIGUSR1: draining until SIGUSR2");
                }
                Some(()) = undrain.recv() => {
                    SIGNAL_DRAIN.store(false, Ordering::Relaxed);
                    info!("SIGUSR2: signalled drain lifted");
                }
            }
            published.set(&sampler.sample().await);
        }
    };
    let exit = tokio::select! {
        () = sampling => super::Exit::Terminate,
        exit = super::signalled() => exit,
    };
    // Closes the ports before a reload binds them again.
    listener.stop();
    if let Some(http) = http {
        http.stop().await;
    }
    Ok(exit)
}

struct Sampler {
    report: AgentReport,
    command: Option<String>,
    override_file: std::path::PathBuf,
    connections: Option<AgentConnections>,
    settings: ReportSettings,
    idle: IdleWindow,
    last_override: Override,
    /// The override file's parse error last logged, while it lasts.
    override_error: Option<String>,
    logged: ReportLog,
    /// Measurement failures by cause (so far only the connection count's).
    failures: Family<CauseLabels, Counter>,
    connections_failing: bool,
}

impl Sampler {
    fn new(agent: &Agent, failures: Family<CauseLabels, Counter>) -> Self {
        Sampler {
            report: agent.report,
            command: agent.command.clone(),
            override_file: agent.override_file.clone(),
            connections: agent.connections.clone(),
            settings: ReportSettings {
                max_connections: agent.connections.as_ref().map(|c| c.max_connections),
                ..ReportSettings::default()
            },
            idle: IdleWindow::new(agent.window.get()),
            last_override: Override::None,
            override_error: None,
            logged: ReportLog::default(),
            failures,
            connections_failing: false,
        }
    }

    /// Measures and returns the reply line.
    async fn sample(&mut self) -> Vec<u8> {
        let measurements = self.measure().await;
        let file = self.read_override();
        let (operator, by_signal) = report::effective_override(&file, signal_override());
        let mut built = report::build(&measurements, &operator, &self.settings);
        if by_signal {
            built.why = format!("SIGUSR1: {}", built.why);
        }
        if self.logged.worth_logging(&built.reply) {
            info!(
                "reporting {} ({})",
                built.reply.to_line().trim_end(),
                built.why
            );
        }
        built.reply.to_line().into_bytes()
    }

    async fn measure(&mut self) -> Measurements {
        let mut m = Measurements::default();
        match self.report {
            AgentReport::Cpu => {
                if let Some(stat) = read("/proc/stat").and_then(|t| ProcStat::parse(&t).ok()) {
                    self.idle.push(Instant::now(), stat.total);
                }
                m.cpu_idle_percent = self.idle.idle_percent();
            }
            AgentReport::Load => {
                let cpus = read("/proc/stat")
                    .and_then(|t| ProcStat::parse(&t).ok())
                    .map_or(1, |s| s.online_cpus());
                m.load_per_core = read("/proc/loadavg")
                    .and_then(|t| LoadAvg::parse(&t).ok())
                    .map(|l| l.per_core(cpus));
            }
            AgentReport::Command => m.command_percent = self.run_command().await,
        }
        m.mem_available_percent = read("/proc/meminfo")
            .and_then(|t| MemInfo::parse(&t).ok())
            .map(|mi| mi.available_percent());
        m.established_connections = self.count_connections();
        m
    }

    /// A failing count leaves the signal out (the others still report) and is logged once
    /// per failure streak.
    fn count_connections(&mut self) -> Option<u64> {
        let connections = self.connections.as_ref()?;
        match sockdiag::count_established(&connections.ports) {
            Ok(n) => {
                if std::mem::take(&mut self.connections_failing) {
                    info!("counting connections works again");
                }
                Some(n)
            }
            Err(e) => {
                self.failures
                    .get_or_create(&CauseLabels::new(e.as_str()))
                    .inc();
                if !std::mem::replace(&mut self.connections_failing, true) {
                    warn!("cannot count connections: {e}; reporting without them");
                }
                None
            }
        }
    }

    /// The command prints a percentage (e.g. "73" or "73%") on its first line.
    async fn run_command(&self) -> Option<f64> {
        let command = self.command.as_ref()?;
        let mut words = command.split_whitespace();
        let program = words.next()?;
        let output = tokio::time::timeout(
            SAMPLE_EVERY,
            tokio::process::Command::new(program)
                .args(words)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .ok()?
        .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines()
            .next()?
            .trim()
            .trim_end_matches('%')
            .parse()
            .ok()
    }

    /// An unreadable file means no override; a file that does not parse keeps the last one.
    fn read_override(&mut self) -> Override {
        let Some(content) = read_path(&self.override_file) else {
            self.last_override = Override::None;
            return Override::None;
        };
        // Read every second: a broken file is said once per distinct error, not per sample.
        match Override::parse(&content) {
            Ok(parsed) => {
                self.last_override = parsed;
                if self.override_error.take().is_some() {
                    info!("{}: readable again", self.override_file.display());
                }
            }
            Err(e) => {
                let error = e.to_string();
                if self.override_error.as_ref() != Some(&error) {
                    warn!(
                        "{}: {error}; keeping the previous override",
                        self.override_file.display()
                    );
                    self.override_error = Some(error);
                }
            }
        }
        self.last_override.clone()
    }
}

fn read(path: &str) -> Option<String> {
    read_path(Path::new(path))
}

fn read_path(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}
