//! `feedbackd --agent`: answers every TCP connection with one agent-check line. The line is
//! computed by a sampler once a second and cached, so a connection never waits on a
//! measurement and costs one write.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use lvs_config::{Agent, AgentReport};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::procstat::{IdleWindow, LoadAvg, MemInfo, ProcStat};
use crate::report::{self, Measurements, Override, ReportSettings};

const SAMPLE_EVERY: Duration = Duration::from_secs(1);

pub async fn run(config: &lvs_config::Config, agent: Agent) -> Result<super::Exit, String> {
    let listener = TcpListener::bind(agent.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", agent.listen))?;
    let line = Arc::new(RwLock::new(String::new()));
    let replies = Counter::<u64>::default();
    let mut registry = Registry::default();
    registry.register(
        "feedbackd_agent_replies",
        "Agent-check replies sent",
        replies.clone(),
    );
    super::serve_metrics(config, registry).await?;

    let mut sampler = Sampler::new(&agent);
    sampler.sample(&line).await;
    let sampler_task = tokio::spawn({
        let line = Arc::clone(&line);
        async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                sampler.sample(&line).await;
            }
        }
    });
    info!("agent listening on {}", agent.listen);
    super::notify_ready();
    super::spawn_watchdog();
    let serve = async {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!("accept: {e}");
                    continue;
                }
            };
            replies.inc();
            // A fresh connection's send buffer is empty, so the one short line goes out in a
            // single non-blocking write and the socket closes on drop: no task, no timer.
            // Only a reply the kernel would not take at once gets a bounded task.
            let reply = line.read().map(|l| l.clone()).unwrap_or_default();
            match stream.try_write(reply.as_bytes()) {
                Ok(n) if n == reply.len() => {}
                Ok(n) => spawn_rest(stream, reply[n..].to_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => spawn_rest(stream, reply),
                Err(_) => {}
            }
        }
    };
    let exit = tokio::select! {
        () = serve => super::Exit::Terminate,
        exit = super::signalled() => exit,
    };
    sampler_task.abort();
    Ok(exit)
}

fn spawn_rest(mut stream: tokio::net::TcpStream, rest: String) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = stream.write_all(rest.as_bytes()).await;
            let _ = stream.shutdown().await;
        })
        .await;
    });
}

struct Sampler {
    report: AgentReport,
    command: Option<String>,
    override_file: std::path::PathBuf,
    idle: IdleWindow,
    last_override: Override,
    last_why: String,
}

impl Sampler {
    fn new(agent: &Agent) -> Self {
        Sampler {
            report: agent.report,
            command: agent.command.clone(),
            override_file: agent.override_file.clone(),
            idle: IdleWindow::new(agent.window.get()),
            last_override: Override::None,
            last_why: String::new(),
        }
    }

    async fn sample(&mut self, line: &RwLock<String>) {
        let measurements = self.measure().await;
        let operator = self.read_override();
        let built = report::build(&measurements, &operator, &ReportSettings::default());
        if built.why != self.last_why {
            info!(
                "reporting {} ({})",
                built.reply.to_line().trim_end(),
                built.why
            );
            self.last_why.clone_from(&built.why);
        }
        if let Ok(mut current) = line.write() {
            *current = built.reply.to_line();
        }
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
        m
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
        match Override::parse(&content) {
            Ok(parsed) => self.last_override = parsed,
            Err(e) => warn!(
                "{}: {e}; keeping the previous override",
                self.override_file.display()
            ),
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
